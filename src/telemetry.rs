//! Logs, traces and metrics.
//!
//! Logs are readable lines (coloured on a terminal only) or JSON, on stderr. Given an OTLP
//! endpoint (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`), spans (HTTP requests,
//! GraphQL operations, report jobs, loads) and metrics also go out by OTLP (gRPC). A report's trace continues from the `triggerReport` request into its job,
//! through the W3C `traceparent` stored with the report.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Readable logs on stderr for the one-shot commands: warnings only unless `RUST_LOG`
/// says otherwise (their own output says what happened).
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours())
        .try_init();
}

/// Colour codes only for a person at a terminal: in a file or a pipe they are noise.
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// How the server writes its logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Keeps the exporters alive; flushes them when dropped.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter.take() {
            let _ = meter.shutdown();
        }
    }
}

/// How a long-running command logs and exports telemetry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// Lines or JSON.
    pub format: LogFormat,
    /// A tracing filter (`RUST_LOG`'s syntax); `None`: info, the chattier libraries at warn.
    pub filter: Option<&'a str>,
    /// Where to send traces and metrics by OTLP; `None`: nowhere.
    pub otlp_endpoint: Option<&'a str>,
    /// Keep the metrics for a Prometheus scrape (`--metrics-bind`).
    pub prometheus: bool,
}

/// Logs for the long-running commands (`serve`, `worker`), plus OTLP export of traces and
/// metrics when an endpoint is given. A filter that does not parse is an error.
pub fn init_server(options: Options<'_>) -> anyhow::Result<Telemetry> {
    let filter = match options.filter {
        Some(filter) => EnvFilter::try_new(filter)
            .map_err(|e| anyhow::anyhow!("--log-filter (RUST_LOG) {filter:?}: {e}"))?,
        None => EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn,poem=info"),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colours());
    let fmt = match options.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let mut telemetry = Telemetry::default();
    let resource = Resource::builder().with_service_name("store-monitor").build();
    // One set of instruments, read by each exporter asked for: OTLP pushes them, a
    // Prometheus registry keeps them for `/metrics`.
    let mut meter = SdkMeterProvider::builder().with_resource(resource.clone());
    let mut metered = false;
    if options.prometheus {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()?;
        meter = meter.with_reader(reader);
        let _ = PROMETHEUS.set(registry);
        metered = true;
    }
    let otel = if let Some(endpoint) = options.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource)
            .build();
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        meter = meter.with_periodic_exporter(metrics);
        metered = true;
        let layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer("store-monitor"));
        telemetry.tracer = Some(tracer);
        Some(layer)
    } else {
        None
    };
    if metered {
        let meter = meter.build();
        global::set_meter_provider(meter.clone());
        register_build_info();
        telemetry.meter = Some(meter);
    }
    let exporting = otel.is_some();
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    if exporting {
        tracing::info!(
            endpoint = options.otlp_endpoint,
            "exporting traces and metrics by OTLP"
        );
    }
    Ok(telemetry)
}

use tracing_subscriber::Layer as _;

/// The registry `/metrics` reads, when `--metrics-bind` asked for one.
static PROMETHEUS: OnceLock<prometheus::Registry> = OnceLock::new();

/// The metrics in Prometheus's text format; `None` unless `--metrics-bind` asked for them.
pub fn prometheus_text() -> Option<anyhow::Result<String>> {
    let registry = PROMETHEUS.get()?;
    let encode = || {
        let mut text = String::new();
        prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text)?;
        anyhow::Ok(text)
    };
    Some(encode())
}

/// `store_monitor_build_info{version="…"} 1`: which build a process runs, for dashboards
/// that join it to the other series (and to see two versions during a rolling upgrade).
fn register_build_info() {
    global::meter("store-monitor")
        .u64_observable_gauge("store_monitor.build_info")
        .with_description("The running build: its version is the label; the value is 1")
        .with_callback(|gauge| gauge.observe(1, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]))
        .build();
}

/// The current span's trace context as a W3C `traceparent`, to carry into a job.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace that `traceparent` names.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// The service's metrics (no-ops unless an exporter is configured).
pub struct Metrics {
    reports: Counter<u64>,
    report_seconds: Histogram<f64>,
    rows_loaded: Counter<u64>,
    rows_rejected: Counter<u64>,
    out_of_scope: Counter<u64>,
    http_requests: Counter<u64>,
    http_seconds: Histogram<f64>,
    graphql_operations: Counter<u64>,
    polls_ingested: Counter<u64>,
    polls_rejected: Counter<u64>,
    webhook_attempts: Counter<u64>,
    webhook_seconds: Histogram<f64>,
    webhook_lag: Histogram<f64>,
    incident_polls: Counter<u64>,
}

/// How a report's job ended, as the metrics count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Computed.
    Complete,
    /// Finished at once with an equal report's result.
    Reused,
    /// Could not be computed.
    Failed,
    /// Stopped by `cancelReport`.
    Cancelled,
}

impl ReportOutcome {
    /// The metric's `outcome` attribute.
    pub fn name(self) -> &'static str {
        match self {
            ReportOutcome::Complete => "complete",
            ReportOutcome::Reused => "reused",
            ReportOutcome::Failed => "failed",
            ReportOutcome::Cancelled => "cancelled",
        }
    }
}

impl Metrics {
    /// A report's job ended; only a computed one's time says how long reports take.
    pub fn report_finished(&self, outcome: ReportOutcome, took: Duration) {
        self.reports.add(1, &[KeyValue::new("outcome", outcome.name())]);
        if outcome == ReportOutcome::Complete {
            self.report_seconds.record(took.as_secs_f64(), &[]);
        }
    }

    pub fn rows_loaded(&self, kind: &'static str, loaded: u64, rejected: u64) {
        self.rows_loaded.add(loaded, &[KeyValue::new("kind", kind)]);
        self.rows_rejected.add(rejected, &[KeyValue::new("kind", kind)]);
    }

    /// An API request answered. `route` is a pattern of the router's (a closed set); the
    /// method is one of HTTP's or "other", the status a number of three digits.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = [
            KeyValue::new("route", route.to_string()),
            KeyValue::new("method", one_of(method, STANDARD_METHODS)),
            KeyValue::new("status", i64::from(status)),
        ];
        self.http_requests.add(1, &labels);
        self.http_seconds.record(took.as_secs_f64(), &labels);
    }

    /// A GraphQL query or mutation over HTTP ran: `outcome` is "ok" or its first error's
    /// code, one of ours or "other".
    pub fn graphql_operation(&self, kind: &'static str, outcome: &str) {
        let labels = [
            KeyValue::new("kind", kind),
            KeyValue::new("outcome", one_of(outcome, OPERATION_OUTCOMES)),
        ];
        self.graphql_operations.add(1, &labels);
    }

    /// Polls a load (`source` "file") or a push ("push") stored, and rows it rejected.
    pub fn polls_ingested(&self, source: &'static str, stored: u64, rejected: u64) {
        self.polls_ingested
            .add(stored, &[KeyValue::new("source", source)]);
        self.polls_rejected
            .add(rejected, &[KeyValue::new("source", source)]);
    }

    /// An incident evaluation went back over stored polls: `read` from the database,
    /// `recalled` from what it knew.
    pub fn incident_polls(&self, read: u64, recalled: u64) {
        self.incident_polls
            .add(read, &[KeyValue::new("from", "database")]);
        self.incident_polls
            .add(recalled, &[KeyValue::new("from", "memory")]);
    }

    /// A webhook delivery attempt ended (delivered, retrying, failed, gone, refused).
    pub fn webhook_attempt(&self, outcome: &str, took: Duration) {
        let labels = [KeyValue::new("outcome", outcome.to_string())];
        self.webhook_attempts.add(1, &labels);
        self.webhook_seconds.record(took.as_secs_f64(), &labels);
    }

    /// A delivery attempt was answered (or failed) `lag` after its event was written:
    /// `attempt` is "first", "retry" (its wait by the retry schedule included) or
    /// "redelivery" (`redeliver`, maybe long after).
    pub fn webhook_lag(&self, attempt: &'static str, lag: Duration) {
        self.webhook_lag
            .record(lag.as_secs_f64(), &[KeyValue::new("attempt", attempt)]);
    }

    /// A scoped token asked for a store outside its groups (answered as absent).
    pub fn out_of_scope(&self) {
        self.out_of_scope.add(1, &[]);
    }
}

/// The methods of RFC 9110 and PATCH: a label from any other (a client may send whatever
/// token it likes, 5,000 of them grew `/metrics` from 25 KB to 4 MB) is "other".
const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// "ok" and the codes our doors answer (`graphql::error`, `http::graphql`, `http::ws`),
/// and async-graphql's own.
const OPERATION_OUTCOMES: &[&str] = &[
    "ok",
    "BAD_REQUEST",
    "BAD_USER_INPUT",
    "FORBIDDEN",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "IDEMPOTENCY_KEY_REUSED",
    "INTERNAL_SERVER_ERROR",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "PERSISTED_QUERY_NOT_FOUND",
    "REQUEST_TIMEOUT",
    "RESPONSE_TOO_LARGE",
    "SERVICE_UNAVAILABLE",
    "TOO_MANY_REQUESTS",
    "TOO_MANY_SUBSCRIPTIONS",
    "UNAUTHENTICATED",
];

/// `value` when it is one of `known`, else "other": every label comes from a closed set, so
/// no caller can make a series of its own.
fn one_of(value: &str, known: &[&'static str]) -> &'static str {
    known.iter().find(|k| **k == value).copied().unwrap_or("other")
}

/// The metrics, registered on first use with whatever meter provider is set by then.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = global::meter("store-monitor");
        Metrics {
            reports: meter
                .u64_counter("store_monitor.reports")
                .with_description("Reports finished, by outcome (complete, reused, failed, cancelled)")
                .build(),
            report_seconds: meter
                .f64_histogram("store_monitor.report.duration")
                .with_unit("s")
                .with_description("Time from a worker starting a report to its completion")
                .with_boundaries(vec![
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ])
                .build(),
            http_requests: meter
                .u64_counter("store_monitor.http.requests")
                .with_description("API requests answered, by route, method and status")
                .build(),
            http_seconds: meter
                .f64_histogram("store_monitor.http.request.duration")
                .with_unit("s")
                .with_description(
                    "Time to answer an API request (a WebSocket: its upgrade), by route, method and status",
                )
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
            rows_loaded: meter
                .u64_counter("store_monitor.rows_loaded")
                .with_description("Input rows loaded, by file kind")
                .build(),
            rows_rejected: meter
                .u64_counter("store_monitor.rows_rejected")
                .with_description("Input rows rejected, by file kind")
                .build(),
            graphql_operations: meter
                .u64_counter("store_monitor.graphql.operations")
                .with_description("GraphQL queries and mutations over HTTP, by kind and outcome (ok, or the first error's code)")
                .build(),
            polls_ingested: meter
                .u64_counter("store_monitor.polls.ingested")
                .with_description("Polls stored, by source (file, push)")
                .build(),
            polls_rejected: meter
                .u64_counter("store_monitor.polls.rejected")
                .with_description("Poll rows rejected, by source (file, push)")
                .build(),
            webhook_attempts: meter
                .u64_counter("store_monitor.webhook.deliveries")
                .with_description("Webhook delivery attempts, by outcome (delivered, retrying, failed, gone, refused)")
                .build(),
            webhook_seconds: meter
                .f64_histogram("store_monitor.webhook.delivery.duration")
                .with_unit("s")
                .with_description("Time from sending a webhook request to its answer (or failure), by outcome")
                .with_boundaries(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .build(),
            webhook_lag: meter
                .f64_histogram("store_monitor.webhook.delivery.lag")
                .with_unit("s")
                .with_description(
                    "Time from an incident event's writing to a delivery attempt's answer (or failure), by attempt (first, retry, redelivery)",
                )
                // A first attempt's seconds; a retry's minutes to a day (the schedule's).
                .with_boundaries(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 36000.0,
                    86400.0,
                ])
                .build(),
            incident_polls: meter
                .u64_counter("store_monitor.incidents.polls_read")
                .with_description(
                    "Stored polls the incident evaluator went back over for late polls, by where it found them (database, memory)",
                )
                .build(),
            out_of_scope: meter
                .u64_counter("store_monitor.out_of_scope_reads")
                .with_description("Stores a token scoped to store groups asked for outside its groups")
                .build(),
        }
    })
}

/// The latest readings; an `f64` is kept as its bits.
#[derive(Debug, Default)]
pub struct Readings {
    /// Report jobs waiting or running.
    pub queue_depth: AtomicU64,
    /// Seconds the oldest report job not yet started has waited.
    pub oldest_job_seconds: AtomicU64,
    /// Incidents open, every store's.
    pub incidents_open: AtomicU64,
    /// Seconds since the newest poll stored (NaN: no poll yet).
    pub newest_poll_age_seconds: AtomicU64,
    /// 1 while the database answers with every migration this build needs, else 0.
    pub ready: AtomicU64,
    /// Seconds the latest probe waited for a connection of each pool (work, api): near 0
    /// while a pool has one to spare, and as long as callers wait once it has none (sqlx
    /// does not count its waiters).
    pub acquire_wait_seconds: [AtomicU64; 2],
}

impl Readings {
    pub fn get(value: &AtomicU64) -> f64 {
        f64::from_bits(value.load(Ordering::Relaxed))
    }

    pub fn set(value: &AtomicU64, to: f64) {
        value.store(to.to_bits(), Ordering::Relaxed);
    }
}

/// The gauges: `readings` (refreshed by `jobs::gauges`) and each named pool's connections,
/// observed at each export or scrape.
pub fn register_gauges(readings: std::sync::Arc<Readings>, pools: [(&'static str, sqlx::PgPool); 2]) {
    let meter = global::meter("store-monitor");
    // Each callback is kept by the meter provider for its lifetime.
    let gauge =
        |name: &'static str, unit: &'static str, description: &'static str, read: fn(&Readings) -> f64| {
            let readings = readings.clone();
            meter
                .f64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |observer| {
                    let value = read(&readings);
                    if !value.is_nan() {
                        observer.observe(value, &[]);
                    }
                })
                .build();
        };
    gauge(
        "store_monitor.queue_depth",
        "",
        "Report jobs waiting or running",
        |r| Readings::get(&r.queue_depth),
    );
    gauge(
        "store_monitor.queue.oldest_job_age",
        "s",
        "How long the oldest report job not yet started has waited",
        |r| Readings::get(&r.oldest_job_seconds),
    );
    gauge(
        "store_monitor.incidents.open",
        "",
        "Incidents open now, every store's",
        |r| Readings::get(&r.incidents_open),
    );
    gauge(
        "store_monitor.polls.newest_age",
        "s",
        "Time since the newest poll stored (absent until there is one)",
        |r| Readings::get(&r.newest_poll_age_seconds),
    );
    gauge(
        "store_monitor.ready",
        "",
        "1 while the database answers with every migration this build needs (what /readyz says), else 0",
        |r| Readings::get(&r.ready),
    );
    let names = pools.clone().map(|(name, _)| name);
    let waits = readings.clone();
    meter
        .f64_observable_gauge("store_monitor.db.pool.acquire_wait")
        .with_unit("s")
        .with_description(
            "How long the latest probe (every 10 s) waited for a connection, by pool: callers wait once a pool is at its cap",
        )
        .with_callback(move |observer| {
            for (name, wait) in names.iter().zip(&waits.acquire_wait_seconds) {
                observer.observe(Readings::get(wait), &[KeyValue::new("pool", *name)]);
            }
        })
        .build();
    let pools = std::sync::Arc::new(pools);
    let each = pools.clone();
    meter
        .u64_observable_gauge("store_monitor.db.pool.connections")
        .with_description("Database connections open, by pool (api, work) and state (idle, in_use)")
        .with_callback(move |observer| {
            for (name, pool) in each.iter() {
                let (size, idle) = (u64::from(pool.size()), pool.num_idle() as u64);
                observer.observe(
                    idle,
                    &[KeyValue::new("pool", *name), KeyValue::new("state", "idle")],
                );
                observer.observe(
                    size.saturating_sub(idle),
                    &[KeyValue::new("pool", *name), KeyValue::new("state", "in_use")],
                );
            }
        })
        .build();
    meter
        .u64_observable_gauge("store_monitor.db.pool.max_connections")
        .with_description("The most connections each pool opens")
        .with_callback(move |observer| {
            for (name, pool) in pools.iter() {
                observer.observe(
                    u64::from(pool.options().get_max_connections()),
                    &[KeyValue::new("pool", *name)],
                );
            }
        })
        .build();
}
