//! `run` (and what runs with no command): the startup order, the
//! wiring of intake, committer and worker, and the shutdown order.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;

use buktor_middleware::{
    clock::SystemClock,
    config::{self, LoadedConfig},
    http::{
        self, admin, auth,
        body::{InFlight, ShapeLimits},
        intake, ratelimit,
        server::{self, ConnectionLimits, Server},
    },
    pipeline::{
        committer::{self, Committer},
        hooks::NoHooks,
        journal,
        lookahead::Lookahead,
        mapping::Mappings,
        quota::{Quota, QuotaLimits},
        retry,
        wakeup::Wakeup,
        worker::{Opened, PluginWriters, Worker},
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
    let mappings = Arc::new(Mappings::of(&loaded)?);
    if config.mapping.is_empty() {
        tracing::warn!(target: LOG_TARGET, "{} maps no event types: every event will be kept as unmapped", loaded.file.display());
    } else {
        let types: Vec<&str> = mappings.event_types().collect();
        tracing::info!(target: LOG_TARGET, "config {}: mapping event types {}", loaded.file.display(), types.join(", "));
    }

    let journal_path = loaded.journal_path();
    let mut writer_connection = journal::open(&journal_path)?;
    rekey(&mut writer_connection, &mappings)?;
    let reader = journal::open(&journal_path)?;
    let wakeup = Arc::new(Wakeup::default());
    let metrics = Arc::new(metrics::Metrics::new(mappings.event_types().map(str::to_string)));
    let health = Arc::new(health::Health::default());
    let quota = Arc::new(Quota::new(QuotaLimits::of(&config.journal, config.server.max_body_bytes as u64)));
    let observers = committer::Observers {
        metrics: Some(metrics.clone()),
        health: Some(health.clone()),
        quota: Some(quota.clone()),
        ..committer::Observers::default()
    };
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
    // What the plugin's version cannot do, whatever its writer will say:
    // a mapping that needs it stops startup, naming the mapping.
    let (actions, together) = (plugin.fixed_abilities(), plugin.fixed_batches_together());
    if actions.is_some() || together.is_some() {
        let named = format!("{} (plugin-api {})", plugin.path.display(), plugin.abi_version);
        let partial_rows = actions.is_none();
        let actions = actions.unwrap_or(his_plugin_api::Actions::ALL_1_1);
        if let Some(problem) = mappings.beyond(actions, partial_rows, together.unwrap_or(true), &named) {
            anyhow::bail!(problem);
        }
    }
    let worker = Worker {
        writers: Box::new(PluginWriters {
            plugin,
            settings_json: loaded.database_settings_json(),
            config_dir: loaded.dir.clone(),
        }),
        mappings: mappings.clone(),
        reader,
        lookahead: Lookahead::new(journal::open(&journal_path)?, mappings.clone(), config.sync.batch_size),
        committer: committer.clone(),
        wakeup: wakeup.clone(),
        batch_size: config.sync.batch_size,
        deadline: config.sync.plugin_deadline(),
        backoff: retry::Backoff::from_config(&config.sync),
        retention: Duration::from_secs(u64::from(config.journal.retention_days) * 24 * 3600),
        duplicate_window: Duration::from_secs(u64::from(config.server.duplicate_window_days) * 24 * 3600),
        metrics: metrics.clone(),
        health: health.clone(),
        clock: Arc::new(SystemClock),
        hooks: Arc::new(NoHooks),
    };
    let (worker_thread, opened) =
        worker.start().map_err(|e| anyhow::anyhow!("cannot open the {database_type} HIS database: {e}"))?;
    match opened {
        Opened::Ready => {}
        Opened::Deferred(e) => tracing::warn!(target: LOG_TARGET,
            "the HIS database is not reachable yet ({e}); events are journaled and will be written when it is"
        ),
        Opened::Slow => tracing::warn!(target: LOG_TARGET,
            "the HIS database has not answered yet; events are journaled and will be written when it does"
        ),
    }

    let rate_limiter = config.server.rate_limit.as_ref().map(|limit| Arc::new(ratelimit::RateLimiter::new(limit)));
    let admin = config.server.admin_token.as_ref().map(|token| admin::Admin {
        token: token.as_str().into(),
        journal_path: journal_path.clone(),
        mappings: mappings.clone(),
        wakeup: wakeup.clone(),
        rate_limiter: rate_limiter.clone(),
    });
    let operator = http::Operator {
        metrics: metrics.clone(),
        health,
        journal_path: journal_path.clone(),
        quota: quota.clone(),
        admin_token: config.server.admin_token.as_deref().map(Arc::from),
        admin,
    };
    let intake = intake::Intake {
        committer,
        mappings,
        quota,
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
        rate_limiter,
        allow_unsigned_through_proxy: config.server.allow_unsigned_through_proxy,
        proxy_warned_ms: Arc::default(),
        metrics,
    };
    let limits = ConnectionLimits {
        request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        idle_timeout: Duration::from_secs(config.server.idle_timeout_secs),
        max_connections: config.server.max_connections,
        max_connections_per_client: config.server.max_connections_per_client,
    };
    warn_about_exposure(&config.server);
    let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
    let on_intake_port = config.server.operator_routes_on_intake_port.then(|| operator.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(async move {
        let server = Server::bind(listen, "server.listen", tls.clone(), limits).await?;
        let operator_server = Server::bind(admin_listen, "server.admin_listen", tls, limits).await?;
        let address = server.local_addr()?;
        // Before the line that says it listens: a stop request from then on
        // is a graceful stop, never the signal's default.
        control.listen_for_signals();
        tracing::info!(
            target: LOG_TARGET,
            "listening on {}://{address}/receive-event (database: {database_type}, plugin: {plugin_line}, journal: {})",
            server.scheme(),
            journal_path.display()
        );
        tracing::info!(
            target: LOG_TARGET,
            "operator's routes (/ready, /metrics, /admin) on {}://{}",
            operator_server.scheme(),
            operator_server.local_addr()?
        );
        control.ready();
        let control = Arc::new(control);
        let first_stop = Arc::new(tokio::sync::Notify::new());
        let (stopping, notify) = (control.clone(), first_stop.clone());
        let stop = tokio::sync::watch::channel(false);
        let (stop_sender, stop_operator) = (stop.0, stop.1.clone());
        let mut stop_intake = stop.1;
        let serve = server.serve(http::intake_router(intake, on_intake_port), async move {
            let _ = stop_intake.changed().await;
        });
        let serve_operator = operator_server.serve(http::operator_router(operator), async move {
            let mut stop = stop_operator;
            let _ = stop.changed().await;
        });
        let serving = async {
            tokio::join!(serve, serve_operator);
        };
        let stop_both = async move {
            stopping.stop_requested().await;
            tracing::info!(target: LOG_TARGET, "shutting down: no new events are accepted");
            let _ = stop_sender.send(true);
            notify.notify_one();
            // Keep the sender: the receivers see one change, not a close.
            std::future::pending::<()>().await;
        };
        // In-flight requests get a bounded time to finish; a second stop
        // request stops at once. Every accepted event is already on disk.
        tokio::select! {
            () = serving => {},
            () = stop_both => {},
            () = async {
                first_stop.notified().await;
                tokio::select! {
                    () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(
            target: LOG_TARGET,
                        "requests still in flight after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs()
                    ),
                    () = control.stop_requested() => tracing::warn!(target: LOG_TARGET, "second stop request: stopping now"),
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
    tracing::info!(target: LOG_TARGET, "stopped");
    served
}

/// Before anything else writes the journal: if the key format or a
/// mapping's table or key changed since the undelivered events were
/// journaled, gives them their keys under the current mappings, so that
/// they hold back, and wait behind, their rows' new events
/// (`journal/rekey.rs`).
fn rekey(connection: &mut rusqlite::Connection, mappings: &Mappings) -> anyhow::Result<()> {
    let Some(report) = journal::rekey::rekey(connection, mappings).context("cannot re-key the journal's events")?
    else {
        return Ok(());
    };
    if report.examined == 0 {
        // A new journal, or nothing undelivered: nothing to say.
        return Ok(());
    }
    tracing::info!(target: LOG_TARGET,
        "event keys: the key format or a mapping's table or key changed since the journal's undelivered events \
         arrived; re-keyed {} of {} (pending, failed, and unmapped with a key)",
        report.rekeyed,
        report.examined
    );
    if report.kept > 0 {
        tracing::warn!(target: LOG_TARGET,
            "{} undelivered event(s) keep the key they had: their mapping's key fields are now missing from them \
             (or not strings or integers), so they may not be held with their HIS row's new events, nor hold them \
             back. See them with `buktor-middleware events --status failed` (and pending)",
            report.kept
        );
    }
    Ok(())
}

/// The startup warnings about who can reach what.
fn warn_about_exposure(server: &config::ServerConfig) {
    if server.auth.is_none() {
        tracing::warn!(target: LOG_TARGET,
            "server.auth is not set: intake accepts events from anyone who reaches {}. Fine on 127.0.0.1 for a \
             trial; behind nginx, ngrok or DynDNS (the seed's recipes) the port is public even on 127.0.0.1, so set \
             server.auth.webhook_secrets",
            server.listen
        );
        if server.allow_unsigned_through_proxy {
            tracing::warn!(target: LOG_TARGET,
                "server.allow_unsigned_through_proxy is set: unsigned events that came through a proxy are accepted, \
                 so anyone who reaches the proxy can write into the HIS. Set server.auth instead"
            );
        }
    }
    if server.operator_routes_on_intake_port {
        tracing::warn!(target: LOG_TARGET,
            "server.operator_routes_on_intake_port is set: /ready, /metrics and /admin answer on {} too, so a \
             proxy in front of intake exposes them; scrape them on server.admin_listen ({}) instead",
            server.listen,
            server.admin_listen
        );
    }
}

/// The startup and shutdown lines keep the target they have always had
/// (`INFO buktor_middleware: listening on …`), which operators grep for.
const LOG_TARGET: &str = "buktor_middleware";

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
            tracing::warn!(target: LOG_TARGET, "{what} did not stop within {}s; exiting anyway", limit.as_secs());
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
            tracing::warn!(target: LOG_TARGET,
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
