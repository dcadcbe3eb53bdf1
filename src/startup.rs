//! Putting the service together: the database, the HTTP server, the report workers and
//! the reload schedule, started and stopped as one [`Application`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_cron::CronScheduler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Pool;
use crate::db::events::ReportEvents;
use crate::jobs::reload::ReloadContext;
use crate::jobs::report::{self as report_job, ReportContext};
use crate::output::ReportFiles;
use crate::service::AppState;
use crate::service::auth::Access;
use crate::service::rate::RateLimit;
use crate::settings::{AuthMode, Settings, protected_mode};
use crate::{db, graphql, http, jobs, service};

/// How long an API request waits for a database connection before it is answered 503:
/// with the database down, sqlx retries connecting until then.
const API_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);

/// Connections of the workers, the reload, maintenance and pushed batches.
const WORK_CONNECTIONS: u32 = 12;

/// Pushed batches stored at once; more are told to retry (429): the workers and the
/// maintenance keep the other half of their connections.
const MAX_PUSHES: usize = WORK_CONNECTIONS as usize / 2;

/// A running store-monitor process.
pub struct Application {
    local: Option<std::net::SocketAddr>,
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Application {
    /// Connects, migrates, loads the data if there is none yet, and starts serving and
    /// working.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Workers, the reload and maintenance share the first pool; the API has its own,
        // which fails fast (see `db::api_pool`).
        let pool = db::connect(&settings.database_url, WORK_CONNECTIONS).await?;
        let api = db::api_pool(&pool, 16, API_ACQUIRE_TIMEOUT);
        db::queue::setup(&pool)
            .await
            .context("cannot set up the job queue")?;
        let mode = match (settings.auth, settings.bind) {
            (Some(mode), _) => mode,
            (None, Some(bind)) => protected_mode(bind),
            (None, None) => AuthMode::Off,
        };
        if let Some(bind) = settings.bind {
            announce(mode, settings.auth.is_some(), bind, &pool).await?;
        }
        let (stop, stopped) = watch::channel(false);
        let events = ReportEvents::start(&api, stopped.clone())
            .await
            .context("cannot listen for report events")?;
        let access = Access::load(&pool, mode, &events)
            .await
            .map_err(anyhow::Error::from)
            .context("cannot read the key that signs report links")?;
        let state = AppState {
            db: api,
            work: pool.clone(),
            reports: ReportFiles::new(&settings.reports_dir),
            data_dir: settings.data_dir.clone(),
            files: settings.files.clone(),
            guard: settings.snapshot_guard,
            events,
            max_queued: settings.max_queued_reports,
            subscription_reads: Arc::new(tokio::sync::Semaphore::new(4)),
            pushes: Arc::new(tokio::sync::Semaphore::new(MAX_PUSHES)),
            large_pushes: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            finished: Default::default(),
            access,
            trigger_limit: RateLimit::new("triggerReport", settings.trigger_rate),
            reload_limit: RateLimit::new("reloadData", settings.reload_rate),
            incidents: crate::db::incidents::Evaluator::new(settings.snapshot_guard.incident_rules),
            webhooks: settings.webhooks.clone(),
        };
        if settings.initial_load {
            initial_load(&state).await?;
        }
        let mut tasks = Vec::new();
        let mut local = None;
        if let Some(bind) = settings.bind {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            let bound = listener.local_addr()?;
            local = Some(bound);
            let routes = http::routes(
                state.clone(),
                graphql::schema(state.clone()),
                &settings.cors_origins,
                settings.websocket,
                settings.max_response_bytes,
                &settings.trusted_proxies,
                settings.trusted_proxy_header,
            );
            let limits = http::connection_limits(settings.server);
            // Tests and benchmarks that start `serve --bind 127.0.0.1:0` read the port here.
            tracing::info!(
                max_connections = limits.max_connections,
                "listening on http://{bound} (the dashboard at /, GraphiQL at /graphql)"
            );
            let signal = stopped_signal(stopped.clone());
            tasks.push(tokio::spawn(async move {
                http::serve(listener, routes, limits, signal)
                    .await
                    .context("the HTTP server stopped")
            }));
        }
        if let Some(bind) = settings.metrics_bind {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} for /metrics"))?;
            let bound = listener.local_addr()?;
            tracing::info!("metrics on http://{bound}/metrics (Prometheus text, no token)");
            let signal = stopped_signal(stopped.clone());
            let limits = http::connection_limits(settings.server);
            tasks.push(tokio::spawn(async move {
                http::serve(listener, http::metrics::routes(), limits, signal)
                    .await
                    .context("the metrics server stopped")
            }));
        }
        if settings.concurrency > 0 || settings.webhook_concurrency > 0 || settings.reload.is_some() {
            let monitor = monitor(&state, &settings);
            let signal = stopped_signal(stopped.clone());
            tasks.push(tokio::spawn(async move {
                monitor
                    .run_with_signal(async move {
                        signal.await;
                        Ok(())
                    })
                    .await
                    .context("the workers stopped")
            }));
        }
        if settings.concurrency > 0 {
            tasks.push(tokio::spawn(jobs::reconcile::every_minute(
                pool.clone(),
                stopped.clone(),
            )));
            if let Some(keep) = settings.keep_reports {
                let files = state.reports.clone();
                tasks.push(tokio::spawn(jobs::prune_reports::every_minute(
                    pool.clone(),
                    files,
                    keep,
                    stopped.clone(),
                )));
            }
        }
        if settings.keep_polls_days > 0 {
            tasks.push(tokio::spawn(jobs::prune_polls::every_minute(
                pool.clone(),
                settings.keep_polls_days,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(jobs::tidy_edges::every_minute(
            pool.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(jobs::forget_idempotency_keys::every_minute(
            pool.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(jobs::gauges::watch(pool, state.db.clone(), stopped)));
        Ok(Application {
            local,
            state,
            stop,
            tasks,
        })
    }

    /// The HTTP port, if serving.
    pub fn port(&self) -> Option<u16> {
        self.local.map(|local| local.port())
    }

    /// Asks everything to stop: no new requests or jobs; running reports finish (or, past
    /// the grace period, are handed back to the queue).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// A handle that stops the application from elsewhere.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Waits until every part has stopped.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for task in self.tasks {
            let outcome = task.await.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = outcome {
                tracing::error!(error = format!("{e:#}"), "stopped with an error");
                first_error.get_or_insert(e);
            }
        }
        // Every part has given its connections back by now; don't wait forever if not.
        let closed = async { tokio::join!(self.state.db.close(), self.state.work.close()) };
        if tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .is_err()
        {
            tracing::warn!("some database connections were still in use at shutdown");
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// What a server that needs tokens (`why`) and has none says instead of starting.
fn no_token(why: &str) -> String {
    format!(
        "this server needs API tokens ({why}) and the database has none that work: create one with\n\n    \
         store-monitor token create --role admin --name NAME\n\n(with the same DATABASE_URL), or start with \
         --auth off to serve without tokens (anyone who reaches the port may do anything)"
    )
}

/// Says in the log who may call a server, and refuses to start one that needs tokens and
/// has none.
async fn announce(mode: AuthMode, asked: bool, bind: SocketAddr, db: &Pool) -> anyhow::Result<()> {
    match (mode, asked) {
        (AuthMode::Required, _) => {
            let usable = service::auth::usable_tokens(db)
                .await
                .map_err(anyhow::Error::from)
                .context("cannot count the API tokens")?;
            let why = if asked {
                "--auth required"
            } else {
                "it is bound to a non-loopback address"
            };
            anyhow::ensure!(usable > 0, no_token(why));
            tracing::info!(tokens = usable, "API tokens required (--auth required)");
        }
        (AuthMode::Off, true) => tracing::warn!(
            %bind,
            "--auth off: callers need no token, and anyone who reaches {bind} may trigger reports, reload data and manage tokens"
        ),
        (AuthMode::Off, false) => tracing::warn!(
            %bind,
            "running open: bound to the loopback address {bind}, callers need no token (only this machine can connect). \
             Bound to any other address, the server needs tokens; --auth required asks for them here too"
        ),
    }
    Ok(())
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    if let Some(local) = app.local {
        announce_urls(local);
    }
    let stop = app.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing running work");
        let _ = stop.send(true);
    });
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Says, on stdout, where to point a browser or a client: the server is ready.
fn announce_urls(local: std::net::SocketAddr) {
    let urls = http::directory(local);
    let width = urls.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::from("store-monitor is ready (Ctrl-C stops it):\n");
    for (name, url) in &urls {
        text.push_str(&format!("  {name:<width$}  {url}\n"));
    }
    print!("{text}");
    tracing::info!(dashboard = %urls[0].1, graphiql = %urls[1].1, "ready");
}

/// SIGINT (Ctrl-C) or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Resolves once the application is asked to stop.
async fn stopped_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// A name for this process's workers, unique across machines and restarts: apalis hands a
/// dead worker's jobs to others only once its name stops sending heartbeats.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

fn monitor(state: &AppState, settings: &Settings) -> Monitor {
    let instance = instance_name();
    tracing::info!(
        instance,
        concurrency = settings.concurrency,
        reload = settings.reload.is_some(),
        "starting workers"
    );
    let mut monitor = Monitor::new();
    if settings.concurrency > 0 {
        let context = ReportContext {
            pool: state.work.clone(),
            files: state.reports.clone(),
        };
        let (pool, instance, concurrency) = (state.work.clone(), instance.clone(), settings.concurrency);
        monitor = monitor.register(move |restarts| {
            // Notifications pick a new job up at once; the interval catches retries and
            // jobs handed back from a dead worker, which are not announced.
            let backend = report_job::storage(&pool)
                .with_pubsub()
                .poll_with_interval(Duration::from_secs(1));
            WorkerBuilder::new(format!("report-{instance}-{restarts}"))
                .backend(backend)
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .data(context.clone())
                .build(report_job::handle)
        });
    }
    if settings.webhook_concurrency > 0 {
        let context = crate::jobs::deliver::DeliveryContext::new(
            state.work.clone(),
            settings.webhooks.retry_schedule.clone(),
            settings.webhooks.allow_private,
            settings.webhook_concurrency,
        );
        let (pool, instance, concurrency) =
            (state.work.clone(), instance.clone(), settings.webhook_concurrency);
        let committed = state.events.events_committed();
        monitor = monitor.register(move |restarts| {
            // Woken by the notice of new events `db::events` hears (not by apalis's own
            // listener, which retried a failed connection at once: out of file descriptors
            // it spun a core), and on a timer for retries coming due, which no notice
            // announces. Not `poll_with_interval`: see `jobs::wake`.
            let wakeups = crate::jobs::wake::Wakeups::new(committed.clone(), crate::jobs::deliver::RECHECK);
            let backend = crate::jobs::deliver::storage(&pool).poll_with_strategy(wakeups);
            WorkerBuilder::new(format!("webhooks-{instance}-{restarts}"))
                .backend(backend)
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .data(context.clone())
                .build(crate::jobs::deliver::handle)
        });
    }
    if let Some(schedule) = settings.reload.clone() {
        let context = ReloadContext {
            pool: state.work.clone(),
            data_dir: settings.data_dir.clone(),
            files: settings.files.clone(),
            instance: instance.clone(),
            keep_history: settings.keep_history,
            guard: settings.snapshot_guard,
        };
        monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("reload-{instance}-{restarts}"))
                .backend(CronScheduler::new(schedule.clone()))
                .data(context.clone())
                .build(crate::jobs::reload::on_tick)
        });
    }
    monitor
        .should_restart(|ctx, error| {
            tracing::error!(worker = ctx.name(), %error, "worker failed; restarting it");
            pause_before_restart(ctx.restarts());
            true
        })
        .shutdown_timeout(Duration::from_secs(30))
}

/// apalis restarts a failed worker at once, and a worker whose every poll fails at once
/// (the database refusing connections without a wait: no file descriptor left, a wrong
/// password) was restarted thousands of times a second, a core spun and the log flooded.
/// So a restart waits, 100 ms more for each earlier restart, up to 2 s. The wait holds the
/// monitor's task (its other workers' next restart with it; running jobs are tasks of their
/// own), on a thread the runtime lets block; a single-threaded runtime (tests) does not wait.
fn pause_before_restart(restarts: usize) {
    let pause = Duration::from_millis(100).saturating_mul(restarts.saturating_add(1).min(20) as u32);
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
        tokio::task::block_in_place(|| std::thread::sleep(pause));
    }
}

/// Loads the input files when the database has never had a load.
async fn initial_load(state: &AppState) -> anyhow::Result<()> {
    if db::loads::any_loaded(&state.work).await? {
        return Ok(());
    }
    tracing::info!(data = %state.data_dir.display(), "the database holds no data yet: loading the input files");
    // The reload logs each file's load itself.
    if let Err(e) = service::reload(state, false).await {
        // A server without data still serves (reports are empty until a reload).
        tracing::warn!(
            error = format!("{:#}", anyhow::Error::from(e)),
            "the initial load failed; serving without data"
        );
    }
    Ok(())
}
