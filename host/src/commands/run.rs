//! `run` (and what runs with no command): the startup order, the
//! wiring of intake, committer and worker, and the shutdown order.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;

use buktor_middleware::{
    config::{self, LoadedConfig},
    http::{
        self, admin, auth,
        body::{InFlight, ShapeLimits},
        intake, ratelimit,
        server::{self, ConnectionLimits, Server},
    },
    pipeline::{
        committer::{self, Committer},
        journal,
        lookahead::Lookahead,
        mapping::Mappings,
        retry,
        wakeup::Wakeup,
        worker::{Opened, Worker},
    },
    plugins,
    service::lifecycle::Control,
    telemetry::{health, metrics},
};

/// Startup order: config, journal, plugin, writer, then listen. Anything
/// wrong before listening ends the process with one line that says what
/// to fix. `control` says what stops it (signals, or the Windows service
/// manager) and whom to tell it is ready.
pub fn run(config_path: Option<PathBuf>, control: Control) -> anyhow::Result<()> {
    let file = config::locate(config_path.as_deref())?;
    let loaded = config::load(&file)?;
    let LoadedConfig { config, .. } = &loaded;
    warn_if_secrets_are_readable(&loaded);
    let tls = config.server.tls.as_ref().map(|tls| server::load_tls(tls, &loaded.dir)).transpose()?;
    let mappings = Arc::new(Mappings::new(&config.mapping));
    if config.mapping.is_empty() {
        tracing::warn!("{} maps no event types: every event will be kept as unmapped", loaded.file.display());
    } else {
        let types: Vec<&str> = mappings.event_types().collect();
        tracing::info!("config {}: mapping event types {}", loaded.file.display(), types.join(", "));
    }

    let journal_path = loaded.journal_path();
    let writer_connection = journal::open(&journal_path)?;
    let reader = journal::open(&journal_path)?;
    let wakeup = Arc::new(Wakeup::default());
    let metrics = Arc::new(metrics::Metrics::new(mappings.event_types().map(str::to_string)));
    let health = Arc::new(health::Health::default());
    let observers = committer::Observers { metrics: Some(metrics.clone()), health: Some(health.clone()) };
    let (committer, committer_thread) =
        Committer::start(writer_connection, wakeup.clone(), observers).context("cannot start the journal committer")?;

    let database_type = loaded.database_type().to_string();
    let plugin = plugins::load(&database_type, loaded.plugins_dir().as_deref())?;
    let plugin_line = format!(
        "{} (plugin {} {}, plugin-api {})",
        plugin.path.display(),
        plugin.name,
        plugin.version,
        plugin.abi_version
    );
    metrics.set_build(metrics::BuildInfo {
        database_type: database_type.clone(),
        plugin_version: plugin.version.to_string(),
        plugin_abi_version: plugin.abi_version.to_string(),
    });
    let worker = Worker {
        plugin,
        settings_json: loaded.database_settings_json(),
        config_dir: loaded.dir.clone(),
        mappings: mappings.clone(),
        reader,
        lookahead: Lookahead::new(journal::open(&journal_path)?, mappings.clone(), config.sync.batch_size),
        committer: committer.clone(),
        wakeup: wakeup.clone(),
        batch_size: config.sync.batch_size,
        backoff: retry::Backoff::from_config(&config.sync),
        retention: Duration::from_secs(u64::from(config.journal.retention_days) * 24 * 3600),
        duplicate_window: Duration::from_secs(u64::from(config.server.duplicate_window_days) * 24 * 3600),
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let (worker_thread, opened) =
        worker.start().map_err(|e| anyhow::anyhow!("cannot open the {database_type} HIS database: {e}"))?;
    match opened {
        Opened::Ready => {}
        Opened::Deferred(e) => tracing::warn!(
            "the HIS database is not reachable yet ({e}); events are journaled and will be written when it is"
        ),
        Opened::Slow => tracing::warn!(
            "the HIS database has not answered yet; events are journaled and will be written when it does"
        ),
    }

    let admin = config.server.admin_token.as_ref().map(|token| admin::Admin {
        token: token.as_str().into(),
        journal_path: journal_path.clone(),
        mappings: mappings.clone(),
        wakeup: wakeup.clone(),
    });
    let intake = intake::Intake {
        committer,
        mappings,
        max_body_bytes: config.server.max_body_bytes,
        shape: ShapeLimits {
            depth: config.server.max_json_depth,
            members: config.server.max_json_members,
            nodes: config.server.max_json_nodes,
        },
        in_flight: InFlight::new(config.server.bytes_in_flight()),
        delivery_id_field: config.server.delivery_id_field.clone(),
        duplicate_window_ms: i64::from(config.server.duplicate_window_days) * 24 * 3600 * 1000,
        auth: config.server.auth.as_ref().map(|auth| Arc::new(auth::Authenticator::new(auth))),
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        rate_limiter: config.server.rate_limit.as_ref().map(|limit| Arc::new(ratelimit::RateLimiter::new(limit))),
        metrics,
        health,
        journal_path: journal_path.clone(),
        admin_token: config.server.admin_token.as_deref().map(Arc::from),
    };
    let limits = ConnectionLimits {
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        max_connections: config.server.max_connections,
        max_connections_per_client: config.server.max_connections_per_client,
    };
    if config.server.auth.is_none() {
        tracing::warn!(
            "server.auth is not set: intake accepts events from anyone who reaches {}. Fine on 127.0.0.1 for a \
             trial; behind nginx, ngrok or DynDNS (the seed's recipes) the port is public even on 127.0.0.1, so set \
             server.auth.webhook_secrets",
            config.server.listen
        );
    }
    let listen = config.server.listen;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(async move {
        let server = Server::bind(listen, tls, limits).await?;
        let address = server.local_addr()?;
        tracing::info!(
            "listening on {}://{address}/receive-event (database: {database_type}, plugin: {plugin_line}, journal: {})",
            server.scheme(),
            journal_path.display()
        );
        control.listen_for_signals();
        control.ready();
        let control = Arc::new(control);
        let first_stop = Arc::new(tokio::sync::Notify::new());
        let (stopping, notify) = (control.clone(), first_stop.clone());
        let serve = server.serve(http::router(intake, admin), async move {
            stopping.stop_requested().await;
            tracing::info!("shutting down: no new events are accepted");
            notify.notify_one();
        });
        // In-flight requests get a bounded time to finish; a second stop
        // request stops at once. Every accepted event is already on disk.
        tokio::select! {
            () = serve => {},
            () = async {
                first_stop.notified().await;
                tokio::select! {
                    () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(
                        "requests still in flight after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs()
                    ),
                    () = control.stop_requested() => tracing::warn!("second stop request: stopping now"),
                }
            } => {}
        }
        anyhow::Ok(())
    });

    // Intake has stopped. Cancel what is left of it (a stalled request holds
    // a handle on the committer), let the worker finish its batch, then the
    // committer finish its queue.
    runtime.shutdown_timeout(Duration::from_secs(1));
    wakeup.stop();
    join_within(worker_thread, WORKER_GRACE, "the sync worker (a write to the HIS in progress)");
    join_within(committer_thread, SHUTDOWN_GRACE, "the journal committer");
    tracing::info!("stopped");
    served
}

/// How long in-flight requests, and then the journal, get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the sync worker gets to finish the batch it is writing.
const WORKER_GRACE: Duration = Duration::from_secs(30);

/// Waits for `thread` to end, at most `limit`. A thread still running then
/// is left behind: the process exits, and whatever it had not recorded is
/// still pending in the journal.
fn join_within(thread: std::thread::JoinHandle<()>, limit: Duration, what: &str) {
    let deadline = std::time::Instant::now() + limit;
    while !thread.is_finished() {
        if std::time::Instant::now() > deadline {
            tracing::warn!("{what} did not stop within {}s; exiting anyway", limit.as_secs());
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = thread.join();
}

/// A config file with a literal password that other users can read is a
/// leak waiting to happen on a shared hospital server.
fn warn_if_secrets_are_readable(loaded: &LoadedConfig) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let readable_by_others = std::fs::metadata(&loaded.file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
        if readable_by_others && !loaded.literal_secrets.is_empty() {
            tracing::warn!(
                "{} holds secrets ({}) and other users on this server can read it: run `chmod 600 {}`, \
                 or write each as ${{ENV_NAME}} and set the variable in the service's environment",
                loaded.file.display(),
                loaded.literal_secrets.join(", "),
                loaded.file.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = loaded;
}
