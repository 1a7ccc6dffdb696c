//! The `buktor-middleware` command line: parses arguments, sets up
//! logging, and hands over to one of [`commands`]. The library (`lib.rs`)
//! maps the rest of the code.

mod commands;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use buktor_middleware::{service::lifecycle::Control, text::escape_controls};

use commands::{check, describe, events, map, plugin_test, printable_error, run, schema, service, status};

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

impl LogFormat {
    /// As `--log-format` takes it.
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
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
        /// The table the kit writes to, and with `_values` its values table
        /// (it never creates them: a plugin for a real database needs them
        /// made first, from the DDL the kit prints).
        #[arg(long, default_value = plugin_test::TABLE)]
        table: String,
        /// A his-config.json whose `database` is not there (a server that
        /// does not answer): the kit checks that the plugin reports it as
        /// retryable. Without it, that check is reported as not verified.
        #[arg(long, value_name = "PATH")]
        unreachable_config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The dry run of the mapping: what the middleware would write for one
    /// event (action, table, row key, each column's typed value), without
    /// the HIS, the plugin or a running service.
    Map {
        /// The event, as Buktor sends it (a JSON file); `-` or none reads
        /// standard input.
        #[arg(long)]
        event: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also the statements the plugin of database.type would run, with
        /// their parameters (plugin-api 1.2 plugins; connects to nothing).
        #[arg(long)]
        sql: bool,
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
        action: service::Action,
    },
    /// Remove failed, unmapped or delivered events received before a time.
    /// (Delivered events are also removed after journal.retention_days.)
    /// Their delivery ids stay for server.duplicate_window_days: a resend
    /// is still a duplicate.
    Prune {
        /// failed, unmapped or delivered.
        #[arg(long)]
        status: String,
        /// Remove those received before this time (RFC 3339, UTC, e.g. 2026-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        before: String,
    },
    /// Print the JSON Schema of his-config.json, which editors such as VS
    /// Code validate and complete the file with (the release ships it as
    /// his-config.schema.json). Reads no config.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--log-dir` is for the middleware itself; the service actions that
    // install, start or stop it answer on the console.
    let log_dir = match &cli.command {
        Some(Command::Service { action }) if !matches!(action, service::Action::Run { .. }) => None,
        _ => cli.log_dir.as_deref(),
    };
    if let Err(e) = init_logging(cli.log_format, log_dir) {
        eprintln!("error: {}", escape_controls(&format!("{e:#}")));
        return ExitCode::FAILURE;
    }
    let config_path = cli.config.clone();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run::run(cli.config, Control::console()),
        Command::Service { action } => service::service(cli.config, cli.log_dir, cli.log_format.name(), action),
        Command::Check { json } => check::command(cli.config, json),
        Command::PluginTest { plugin, table, unreachable_config, json } => {
            plugin_test::command(cli.config, plugin, table, unreachable_config, json)
        }
        Command::Status { json } => status::command(cli.config, json),
        Command::Map { event, json, sql } => map::command(cli.config, event, json, sql),
        Command::Describe { table } => describe::describe(cli.config, &table),
        Command::Events { status, event_type, since, limit, json } => {
            events::events(cli.config, &status, event_type, since, limit, json)
        }
        Command::Replay { id, status, event_type, since } => events::replay(cli.config, id, status, event_type, since),
        Command::Prune { status, before } => events::prune(cli.config, &status, &before),
        Command::Schema => schema::command(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", printable_error(config_path.as_deref(), &error));
            ExitCode::FAILURE
        }
    }
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
            LogFormat::Text => builder.fmt_fields(EscapedFields).with_ansi(std::io::stderr().is_terminal()).init(),
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
        LogFormat::Text => builder.fmt_fields(EscapedFields).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    Ok(())
}

/// How the text format writes an event's message and fields: as the
/// default formatter does (the message, then `name=value` pairs), but each
/// with its control characters escaped, whoever wrote it. Event types,
/// keys, database messages and plugin log lines carry text a sender chose;
/// a newline in one must not forge a log line, nor an escape sequence
/// drive the terminal of the operator reading it. The one place this is
/// done (JSON logs escape as JSON does).
struct EscapedFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut collected = Collected::default();
        fields.record(&mut collected);
        let message = collected.message.map(|m| escape_controls(&m));
        let pairs = collected.pairs.iter().map(|(name, value)| format!("{name}={}", escape_controls(value)));
        let parts: Vec<String> = message.into_iter().chain(pairs).collect();
        write!(writer, "{}", parts.join(" "))
    }
}

/// An event's fields as text, the message apart.
#[derive(Default)]
struct Collected {
    message: Option<String>,
    pairs: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Collected {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_string()),
            name => self.pairs.push((name, format!("{value:?}"))),
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            name if name.starts_with("log.") => {}
            name => self.pairs.push((name, format!("{value:?}"))),
        }
    }
}

/// Daily log files kept in `--log-dir`: a month.
const LOG_FILES_KEPT: usize = 30;
