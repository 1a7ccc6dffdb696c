//! The `buktor-middleware` command line: parses arguments, sets up
//! logging, and runs the startup order. The library (`lib.rs`) maps the
//! rest of the code.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};

use buktor_middleware::{
    admin, auth, check, clock,
    committer::{self, Committer},
    config,
    config::LoadedConfig,
    health, intake, journal,
    lifecycle::Control,
    lookahead::Lookahead,
    mapping,
    mapping::Mappings,
    metrics, operations, plugins, ratelimit, retry,
    server::{self, ConnectionLimits, Server},
    wakeup::Wakeup,
    winservice,
    worker::{Opened, Worker},
};

/// Connects Buktor to a Hospital Information System.
#[derive(Debug, Parser)]
#[command(name = "buktor-middleware", version, about)]
struct Cli {
    /// The config file. Default: his-config.json in the working directory,
    /// else beside the executable.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// `text` for people (the default), `json` (one object per line) for
    /// log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BUKTOR_LOG_FORMAT")]
    log_format: LogFormat,

    /// Write logs to daily files `buktor-middleware.YYYY-MM-DD.log` in this
    /// folder (the last 30 are kept) instead of standard error. A Windows
    /// service logs this way.
    #[arg(long, global = true, value_name = "FOLDER")]
    log_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive events and write them to the HIS (what runs with no command).
    Run,
    /// Check his-config.json, the plugin, the HIS login and every mapping
    /// against the HIS schema; one line per finding, with its fix. Exits
    /// non-zero when any finding is an error.
    Check {
        /// A JSON report instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The journal at a glance: events by status and type, the oldest
    /// pending, the last delivery and error, the journal's size.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The conformance kit: load a plugin library and check that it
    /// behaves as the host relies on, against the database in the config's
    /// `database` section; prints a pass/fail table. For plugin authors.
    PluginTest {
        /// The plugin library (`libhis_<type>.so`, `his_<type>.dll`).
        #[arg(long, value_name = "PATH")]
        plugin: PathBuf,
        /// The table the kit writes to (it never creates it: a plugin for a
        /// real database needs it made first, from the DDL the kit prints).
        #[arg(long, default_value = buktor_middleware::conformance::TABLE)]
        table: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an HIS table as the database plugin sees it: its columns, their
    /// types, and its keys (JSON on standard output).
    Describe {
        /// The table's name, as in the mapping.
        table: String,
    },
    /// List events from the journal: id, type, key, attempts, last error.
    Events {
        /// pending, delivered, failed or unmapped.
        #[arg(long, default_value = "failed")]
        status: String,
        /// Only this event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only events received at or after this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put failed or unmapped events back to pending, to be written again.
    Replay {
        /// One event, by its journal id.
        #[arg(long, conflicts_with_all = ["status", "event_type", "since"])]
        id: Option<i64>,
        /// Every event with this status: failed or unmapped.
        #[arg(long, required_unless_present = "id")]
        status: Option<String>,
        /// Only this event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only events received at or after this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
    /// Run as a Windows service: install, uninstall, start, stop (in an
    /// elevated prompt). On Linux, use the systemd unit instead.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Remove failed, unmapped or delivered events received before a time.
    /// (Delivered events are also removed after journal.retention_days.)
    Prune {
        /// failed, unmapped or delivered.
        #[arg(long)]
        status: String,
        /// Remove those received before this time (RFC 3339, UTC, e.g. 2026-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        before: String,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceAction {
    /// Register this executable as a service that starts at boot and is
    /// restarted when it fails, with this --config (default: the
    /// his-config.json found as `run` finds it) and --log-dir (default:
    /// `logs` beside the config).
    Install {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service if it runs, then remove it. The journal, the config
    /// and the logs stay.
    Uninstall {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Start the service and wait until it is listening.
    Start {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service gracefully (as Ctrl-C does) and wait until it has.
    Stop {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
    /// What the Windows service manager starts; not for people.
    #[command(hide = true)]
    Run {
        #[arg(long, default_value = winservice::DEFAULT_NAME)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--log-dir` is for the middleware itself; the service actions that
    // install, start or stop it answer on the console.
    let log_dir = match &cli.command {
        Some(Command::Service { action }) if !matches!(action, ServiceAction::Run { .. }) => None,
        _ => cli.log_dir.as_deref(),
    };
    if let Err(e) = init_logging(cli.log_format, log_dir) {
        eprintln!("error: {}", config::escape_controls(&format!("{e:#}")));
        return ExitCode::FAILURE;
    }
    let config_path = cli.config.clone();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config, Control::console()),
        Command::Service { action } => service(cli.config, cli.log_dir, cli.log_format, action),
        Command::Check { json } => run_check(cli.config, json),
        Command::PluginTest { plugin, table, json } => plugin_test(cli.config, &plugin, &table, json),
        Command::Status { json } => status(cli.config, json),
        Command::Describe { table } => describe(cli.config, &table),
        Command::Events { status, event_type, since, limit, json } => {
            events(cli.config, &status, event_type, since, limit, json)
        }
        Command::Replay { id, status, event_type, since } => replay(cli.config, id, status, event_type, since),
        Command::Prune { status, before } => prune(cli.config, &status, &before),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", printable_error(config_path.as_deref(), &error));
            ExitCode::FAILURE
        }
    }
}

/// A command's final error as one line: a serde or database message may
/// quote a value, never a secret; and nothing from a file or a sender
/// reaches the terminal (or a log file) as a control sequence.
fn printable_error(config_path: Option<&std::path::Path>, error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let text = match config::locate(config_path) {
        Ok(file) => config::Secrets::of_file(&file).redact(&text),
        Err(_) => text,
    };
    config::escape_controls(&text)
}

/// Lines on stderr (systemd's journal takes them from there), or in daily
/// files in `log_dir`; readable or JSON. `BUKTOR_LOG` sets the filter
/// (`info` by default, e.g. `BUKTOR_LOG=debug`).
fn init_logging(format: LogFormat, log_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUKTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let Some(log_dir) = log_dir else {
        let builder = builder.with_writer(std::io::stderr);
        match format {
            LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
            LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        }
        return Ok(());
    };
    let files = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("buktor-middleware")
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(log_dir)
        .with_context(|| format!("--log-dir {}: cannot write log files there", log_dir.display()))?;
    let builder = builder.with_writer(files).with_ansi(false);
    // Without a console (a Windows service), a panic's message would go
    // nowhere: into the log file too.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    Ok(())
}

/// Daily log files kept in `--log-dir`: a month.
const LOG_FILES_KEPT: usize = 30;

/// Startup order: config, journal, plugin, writer, then listen. Anything
/// wrong before listening ends the process with one line that says what
/// to fix. `control` says what stops it (signals, or the Windows service
/// manager) and whom to tell it is ready.
fn run(config_path: Option<PathBuf>, control: Control) -> anyhow::Result<()> {
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
        max_json_depth: config.server.max_json_depth,
        max_json_members: config.server.max_json_members,
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
        let serve = server.serve(intake::router(intake, admin), async move {
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

/// `describe TABLE`: opens a writer on this (main) thread, before any async
/// runtime exists, and prints what the plugin reports.
fn describe(config_path: Option<PathBuf>, table: &str) -> anyhow::Result<()> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let database_type = loaded.database_type().to_string();
    let plugin = plugins::load(&database_type, loaded.plugins_dir().as_deref())?;
    let settings = loaded.database_settings_json();
    let mut writer = plugin
        .open_writer(&settings, &loaded.dir)
        .map_err(|e| anyhow::anyhow!("cannot open the {database_type} HIS database: {e}"))?;
    let described = writer.describe_table(table.into()).into_result();
    let _ = writer.close().into_result();
    let description = described
        .map_err(|e| anyhow::anyhow!("cannot describe {table}: {e}"))?
        .into_option()
        .ok_or_else(|| anyhow::anyhow!("table {table:?} not found in the {database_type} HIS database"))?;
    let strings = |list: &[abi_stable::std_types::RString]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let json = serde_json::json!({
        "table": description.name.as_str(),
        "columns": description.columns.iter().map(|c| serde_json::json!({
            "name": c.name.as_str(),
            "type": c.data_type.as_str(),
            "nullable": c.nullable,
            "has_default": c.has_default,
        })).collect::<Vec<_>>(),
        "primary_key": strings(&description.primary_key),
        "unique_keys": description.unique_keys.iter().map(|k| strings(k)).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// `check`: prints the report; an error when any finding is one.
fn run_check(config_path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let report = check::check(&config::locate(config_path.as_deref())?);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let errors = report.findings.iter().filter(|f| f.severity == check::Severity::Error).count();
    anyhow::ensure!(errors == 0, "check found {errors} error(s)");
    Ok(())
}

/// `plugin-test`: the conformance kit's table; an error when a check failed.
fn plugin_test(config_path: Option<PathBuf>, plugin: &std::path::Path, table: &str, json: bool) -> anyhow::Result<()> {
    use buktor_middleware::conformance;
    anyhow::ensure!(
        conformance::is_plain_table_name(table),
        "--table {table:?}: use a plain name (letters, digits and _, not starting with a digit, at most 64)"
    );
    let report = conformance::run(plugin, &config::locate(config_path.as_deref())?, table);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let failed = report.results.iter().filter(|r| !r.passed).count();
    anyhow::ensure!(failed == 0, "{failed} conformance check(s) failed");
    Ok(())
}

/// `status`: the journal at a glance. It opens the journal read only:
/// beside a running middleware, or not, it changes nothing.
fn status(config_path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let path = loaded.journal_path();
    let connection = buktor_middleware::status::open(&path)?;
    let status = buktor_middleware::status::gather(&connection, &path, clock::now_ms())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

/// The journal of the config at `config_path`, for the operator commands.
fn operator_journal(config_path: Option<PathBuf>) -> anyhow::Result<(LoadedConfig, rusqlite::Connection)> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let path = loaded.journal_path();
    anyhow::ensure!(
        path.is_file(),
        "no journal at {}: the middleware has not run with this config yet",
        path.display()
    );
    let connection = journal::open(&path)?;
    Ok((loaded, connection))
}

fn status_of(text: &str) -> anyhow::Result<journal::Status> {
    operations::parse_status(text)
        .ok_or_else(|| anyhow::anyhow!("--status {text:?}: expected pending, delivered, failed or unmapped"))
}

/// `events`: a table (or JSON lines) of events with one status.
fn events(
    config_path: Option<PathBuf>,
    status: &str,
    event_type: Option<String>,
    since: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let (_, connection) = operator_journal(config_path)?;
    let filter = operations::Filter { status: status_of(status)?, event_type, since, limit };
    let rows = operations::list(&connection, &filter, clock::now_ms())?;
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!(
        "{:>8}  {:<24}  {:<16}  {:<9}  {:>8}  {:<28}  last error",
        "id", "received", "type", "status", "attempts", "key / held by"
    );
    for row in &rows {
        let key = match (row.held_by, &row.key) {
            (Some(held_by), _) => format!("held by #{held_by}"),
            (None, Some(key)) => key.clone(),
            (None, None) => String::new(),
        };
        // Journal text came from senders and databases: no control
        // characters reach the terminal.
        let printable = buktor_middleware::status::printable;
        let error = printable(row.last_error.as_deref().unwrap_or(""), 120);
        println!(
            "{:>8}  {:<24}  {:<16}  {:<9}  {:>8}  {:<28}  {error}",
            row.id,
            row.received_at,
            printable(&row.event_type, 32),
            row.status,
            row.attempts,
            printable(&key, 64)
        );
    }
    println!("{} event(s)", rows.len());
    Ok(())
}

/// `replay`: failed or unmapped events back to pending. A running
/// middleware picks them up within a few seconds.
fn replay(
    config_path: Option<PathBuf>,
    id: Option<i64>,
    status: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
) -> anyhow::Result<()> {
    let (loaded, mut connection) = operator_journal(config_path)?;
    let selection = match (id, status) {
        (Some(id), _) => operations::Selection::Id(id),
        (None, Some(status)) => operations::Selection::Matching(operations::Filter {
            status: status_of(&status)?,
            event_type,
            since,
            limit: 0,
        }),
        (None, None) => anyhow::bail!("replay needs --id N or --status failed|unmapped"),
    };
    let mappings = Mappings::new(&loaded.config.mapping);
    let report = operations::replay(&mut connection, &selection, &mappings)?;
    println!("replayed {} event(s)", report.replayed);
    if report.still_unmapped > 0 {
        println!(
            "{} unmapped event(s) left as they were: their event_type is still not in the mapping (or they lack its key)",
            report.still_unmapped
        );
    }
    Ok(())
}

/// `prune`: removes old events of one status.
fn prune(config_path: Option<PathBuf>, status: &str, before: &str) -> anyhow::Result<()> {
    anyhow::ensure!(mapping::is_timestamp(before), "--before {before:?}: expected a time such as 2026-01-01T00:00:00Z");
    let (_, mut connection) = operator_journal(config_path)?;
    let removed = operations::prune(&mut connection, status_of(status)?, before)?;
    println!("removed {removed} {status} event(s) received before {before}");
    Ok(())
}

/// `service install|uninstall|start|stop|run` (Windows).
fn service(
    config_path: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    log_format: LogFormat,
    action: ServiceAction,
) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install { name } => {
            // Absolute paths: a service starts in C:\Windows\System32. The
            // config must load now, not at the first boot.
            let config = std::path::absolute(config::locate(config_path.as_deref())?)?;
            config::load(&config)?;
            let log_dir = std::path::absolute(log_dir.unwrap_or_else(|| winservice::default_log_dir(&config)))?;
            let exe = std::env::current_exe().context("cannot find this executable's path")?;
            let log_format = match log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            winservice::install(&winservice::Install {
                name: name.clone(),
                exe,
                config,
                log_dir: log_dir.clone(),
                log_format: log_format.into(),
            })?;
            println!(
                "installed the service {name}: it starts at boot and restarts when it fails. Start it now with \
                 `buktor-middleware service start --name {name}`; its logs go to {}",
                log_dir.display()
            );
        }
        ServiceAction::Uninstall { name } => {
            winservice::uninstall(&name)?;
            println!("removed the service {name}; the journal, his-config.json and the logs are left as they were");
        }
        ServiceAction::Start { name } => {
            winservice::start(&name)?;
            println!("the service {name} is running");
        }
        ServiceAction::Stop { name } => {
            winservice::stop(&name)?;
            println!("the service {name} has stopped");
        }
        ServiceAction::Run { name } => {
            let run: winservice::RunFn = Box::new(move |control| {
                run(config_path.clone(), control).map_err(|e| printable_error(config_path.as_deref(), &e))
            });
            winservice::run_as_service(&name, run)?;
        }
    }
    Ok(())
}
