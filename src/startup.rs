//! Putting the service together: the database, the HTTP server, the report workers and
//! the reload schedule, started and stopped as one [`Application`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_cron::CronScheduler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Pool;
use crate::db::events::ReportEvents;
use crate::input::FileChoice;
use crate::jobs::reload::ReloadContext;
use crate::jobs::report::{self as report_job, ReportContext};
use crate::output::ReportFiles;
use crate::service::AppState;
use crate::service::auth::Access;
pub use crate::service::auth::AuthMode;
use crate::service::rate::RateLimit;
use crate::{db, graphql, http, service};

/// How long an API request waits for a database connection before it is answered 503:
/// with the database down, sqlx retries connecting until then.
const API_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);

/// How the application runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    /// Where to serve HTTP (port 0: any free port); `None`: no HTTP (a worker process).
    pub bind: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub files: FileChoice,
    pub reports_dir: PathBuf,
    /// When to reload the input files; `None`: never on a schedule.
    pub reload: Option<cron::Schedule>,
    /// How long finished queue jobs, reload ticks and `unchanged` load records are kept.
    pub keep_history: chrono::TimeDelta,
    /// How much a new hours or time-zone file may take away (see `db::reload::Guard`).
    pub snapshot_guard: crate::db::reload::Guard,
    /// How long finished reports are kept; `None`: forever.
    pub keep_reports: Option<chrono::TimeDelta>,
    /// Reports computed at once by this process; 0: no report worker.
    pub concurrency: usize,
    /// Origins allowed to call the API from a browser; empty: this server's own only.
    pub cors_origins: Vec<String>,
    /// Load the input files at start when the database holds no data yet.
    pub initial_load: bool,
    /// How subscription sockets are kept.
    pub websocket: WebSocketSettings,
    /// The largest GraphQL answer sent over HTTP; a larger one is replaced by an error.
    pub max_response_bytes: usize,
    /// What each HTTP connection is allowed.
    pub server: ServerLimits,
    /// Reports that may wait for a worker; past it `triggerReport` is TOO_MANY_REQUESTS.
    pub max_queued_reports: usize,
    /// Whether callers need API tokens; `None`: protected mode, decided by `bind` (open on
    /// a loopback address, tokens required on any other).
    pub auth: Option<AuthMode>,
    /// `triggerReport` calls a minute per token or address (0: no limit).
    pub trigger_rate: u32,
    /// `reloadData` calls a minute per token or address (0: no limit).
    pub reload_rate: u32,
}

/// Whether callers of a server bound to `bind` need tokens when `--auth` does not say
/// (Redis's protected mode): not on a loopback address, which only this machine reaches.
pub fn protected_mode(bind: SocketAddr) -> AuthMode {
    if bind.ip().is_loopback() {
        AuthMode::Off
    } else {
        AuthMode::Required
    }
}

/// What a server that needs tokens and has none says instead of starting.
const NO_TOKEN: &str = "this server needs API tokens (it is bound to a non-loopback address) and the database has none that \
     work: create one with\n\n    store-monitor token create --role admin --name NAME\n\n(with the same DATABASE_URL), \
     or start with --auth off to serve without tokens (anyone who reaches the port may do anything)";

/// What the server allows each connection.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, and how long a keep-alive
    /// connection may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long running requests have to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept for the database pools, the report files and the input files.
const RESERVED_FILES: usize = 128;

/// `limits`, with no more connections than the process can open files for: past that,
/// `accept` itself would fail.
fn connection_limits(mut limits: ServerLimits) -> ServerLimits {
    if let Some(files) = http::open_files_limit() {
        let most = files.saturating_sub(RESERVED_FILES).max(16);
        if limits.max_connections > most {
            tracing::warn!(
                asked = limits.max_connections,
                open_files_limit = files,
                max_connections = most,
                "fewer connections than asked: the process may open only so many files (raise `ulimit -n`)"
            );
            limits.max_connections = most;
        }
    }
    limits
}

/// How subscription sockets are kept.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketSettings {
    /// How long a new socket has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often an open socket is pinged, so that proxies do not close it as idle.
    pub keepalive: Duration,
    /// Subscriptions one socket may have at once.
    pub max_subscriptions: usize,
    /// Sockets one client address may have open at once.
    pub max_sockets_per_address: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            init_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_subscriptions: 100,
            max_sockets_per_address: 64,
        }
    }
}

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
        let pool = db::connect(&settings.database_url, 12).await?;
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
            finished: Default::default(),
            access,
            trigger_limit: RateLimit::new("triggerReport", settings.trigger_rate),
            reload_limit: RateLimit::new("reloadData", settings.reload_rate),
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
            );
            let limits = connection_limits(settings.server);
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
        if settings.concurrency > 0 || settings.reload.is_some() {
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
            tasks.push(tokio::spawn(maintain_reports(
                state.clone(),
                settings.keep_reports,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(watch_queue_depth(pool, stopped)));
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

/// Says in the log who may call a server, and refuses to start one that needs tokens and
/// has none.
async fn announce(mode: AuthMode, asked: bool, bind: SocketAddr, db: &Pool) -> anyhow::Result<()> {
    match (mode, asked) {
        (AuthMode::Required, _) => {
            let usable = service::auth::usable_tokens(db)
                .await
                .context("cannot count the API tokens")?;
            anyhow::ensure!(usable > 0, NO_TOKEN);
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
            true
        })
        .shutdown_timeout(Duration::from_secs(30))
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
            error = format!("{e:#}"),
            "the initial load failed; serving without data"
        );
    }
    Ok(())
}

/// Every minute, in each process that computes reports: makes sure every unfinished
/// report will finish (`jobs::report::reconcile`) and forgets the reports past their
/// keeping time.
async fn maintain_reports(
    state: AppState,
    keep: Option<chrono::TimeDelta>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stop = stopped_signal(stopped);
    tokio::pin!(stop);
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = every.tick() => {}
        }
        match report_job::reconcile(&state.work).await {
            Ok(done) if done != Default::default() => {
                tracing::warn!(
                    requeued = done.requeued,
                    failed = done.failed,
                    "reconciled reports"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot reconcile reports"),
        }
        if let Some(keep) = keep {
            match report_job::prune(&state.work, &state.reports, chrono::Utc::now() - keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(reports = n, kept_days = keep.num_days(), "pruned old reports"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot prune old reports"),
            }
        }
    }
}

/// Refreshes the queue-depth gauge every few seconds.
async fn watch_queue_depth(pool: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    let depth = Arc::new(AtomicU64::new(0));
    crate::telemetry::register_queue_depth(depth.clone());
    let stop = stopped_signal(stopped);
    tokio::pin!(stop);
    loop {
        if let Ok(n) = db::queue::depth(&pool, report_job::QUEUE).await {
            depth.store(n as u64, Ordering::Relaxed);
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}
