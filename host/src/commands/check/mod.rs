//! `buktor-middleware check`: the config, the plugin, the HIS connection
//! and every mapping against the live HIS schema, as a list of findings.
//!
//! ## Steps
//! In order; a step that fails makes the later ones meaningless, so `check`
//! stops after it:
//! 1. **config**: [`config::load`] parses and validates the file; its error
//!    (one, with its JSON path) is the only finding.
//! 2. **plugin**: [`plugins::load`] finds the library for `database.type`,
//!    loads it and checks its plugin-api version.
//! 3. **HIS**: the plugin opens a writer (which connects and logs in) and
//!    pings it. Plugin settings errors name their setting
//!    (`database.path: …`), which becomes the finding's path.
//! 4. **mappings**: every mapping, every finding (never just the first):
//!    the table exists; each mapped column exists; the key's columns are
//!    the table's primary key or a unique index (an upsert without one adds
//!    a duplicate row per event, or is refused); each NOT NULL column
//!    without a default is mapped; a column's type suits what its field
//!    carries, and a map's values and default suit the column (warnings
//!    only, below).
//!
//! Before the plugin, with the config alone: each mapping is worked through
//! the last journaled event of its type (the `map` dry run), and a `when`
//! that tests a field that event lacks is a warning (`examples.rs`).
//!
//! The plugin is called only from the calling thread, as `describe` does:
//! `check` runs before any async runtime exists. A writer that panicked is
//! not called again (not even `close`).
//!
//! ## Names
//! The mapping's table and column names are matched against what the plugin
//! reports exactly first, else regardless of ASCII case (as the Oracle
//! plugin resolves names, and as SQLite, MySQL's column names and SQL
//! Server's default collation compare them). Two columns that differ only
//! in case and match neither exactly are an error (ambiguous). A name that
//! matches only regardless of case is a warning where that can fail: MySQL
//! table names, which are file names and compared with case when
//! `lower_case_table_names` is 0 (the Linux default).
//!
//! ## Types
//! A deliberately small heuristic, warnings only, on the field's name:
//! - `*_at` (so also `received_at`, `updated_at`) carry ISO 8601
//!   timestamps: the column should be a date/time type (its type names
//!   `date` or `time`). SQLite has no date type and keeps ISO text, so
//!   there a text column is right too.
//! - `amount` and `*_amount` carry amounts: the column should be numeric.
//!
//! A column without a declared type (SQLite) takes anything.
//!
//! ## `database.create_missing`
//! With it (the SQLite plugin's demo setting) the writer creates missing
//! tables, columns and key indexes at the first event, so those findings
//! are warnings instead of errors.
//!
//! ## Secrets
//! Every finding is scrubbed of the values of the file's secrets (members
//! named `…password…`, `…token…` or `…secret…`, literal or from their
//! `${ENV_NAME}`), even when the file does not parse: a database or serde
//! message must not carry one to the terminal.

use std::path::{Path, PathBuf};

use his_plugin_api::{ErrorKind, PluginError};

mod examples;
mod report;
mod schema;

use self::report::{Finding, PluginSummary, Report};
use self::schema::{Target, check_mapping};
use buktor_middleware::{
    config::{self, ConfigError, Secrets},
    pipeline::mapping::Mappings,
    plugins::{self, LoadError},
};

/// Checks the config file `file`: see the module documentation.
pub fn check(file: &Path) -> Report {
    let mut report = Report { file: file.display().to_string(), ..Report::default() };
    run(file, &mut report);
    report.finish(&Secrets::of_file(file));
    report
}

/// The steps, stopping after one that makes the next meaningless.
fn run(file: &Path, report: &mut Report) {
    let loaded = match config::load(file) {
        Ok(loaded) => loaded,
        Err(error) => {
            report.findings.push(config_finding(&error));
            return;
        }
    };
    report.file = loaded.file.display().to_string();
    let mappings = match Mappings::of(&loaded) {
        Ok(mappings) => mappings,
        Err(error) => {
            report.findings.push(config_finding(&error));
            return;
        }
    };
    report.config_ok = true;
    let (examples, findings) = examples::examples(&loaded, &mappings);
    report.examples = examples;
    report.findings.extend(findings);
    if loaded.config.mapping.is_empty() {
        report.findings.push(Finding::warning(
            "mapping",
            "maps no event types: every event will be kept in the journal as unmapped, none written to the HIS",
            "add a mapping for each event type to write (README: Configuration)",
        ));
    }

    let database_type = loaded.database_type();
    let plugin = match plugins::load(database_type, loaded.plugins_dir().as_deref()) {
        Ok(plugin) => plugin,
        Err(error) => {
            report.findings.push(plugin_finding(&error));
            return;
        }
    };
    report.plugin = Some(PluginSummary {
        name: plugin.name.clone(),
        version: plugin.version.clone(),
        plugin_api: plugin.abi_version.clone(),
        path: plugin.path.display().to_string(),
    });

    let settings = loaded.database_settings_json();
    let deadline = loaded.config.sync.plugin_deadline();
    let mut writer = match plugin.open_writer(&settings, &loaded.dir, deadline) {
        Ok(writer) => writer,
        Err(error) => {
            report.findings.push(his_finding(database_type, "cannot be opened", &error));
            return;
        }
    };
    if let Err(error) = writer.ping(deadline) {
        report.findings.push(his_finding(database_type, "opened, but does not answer", &error));
        if error.kind != ErrorKind::PANIC {
            let _ = writer.close();
        }
        return;
    }
    report.his_reachable = true;

    let target = Target::of(&loaded);
    let named = format!("{} (plugin-api {})", plugin.name, plugin.abi_version);
    if let Some(problem) =
        mappings.beyond(writer.actions(), writer.takes_partial_rows(), writer.writes_batches_together(), &named)
    {
        let at = problem.split_whitespace().next().unwrap_or("mapping").to_string();
        report.findings.push(Finding::error(at, problem, "see the plugin's documentation for the actions it supports"));
    }
    for (event_type, config) in &loaded.config.mapping {
        let targets = mappings.targets(event_type).expect("compiled from the same config");
        for (mapping, target_config) in targets.iter().zip(&config.targets) {
            report.mappings_checked += 1;
            match writer.describe_table(&mapping.table, deadline) {
                Ok(table) => {
                    report.findings.extend(check_mapping(mapping, target_config.key.is_none(), table.as_ref(), &target))
                }
                Err(error) if error.kind == ErrorKind::PANIC => {
                    // Never call a writer that panicked again.
                    report.findings.push(Finding::error(
                        format!("{}.table", mapping.at),
                        format!("{error} (while describing {}); the other mappings were not checked", mapping.table),
                        "report this to the plugin's authors: a plugin must return errors, not panic",
                    ));
                    return;
                }
                Err(error) => report.findings.push(Finding::error(
                    format!("{}.table", mapping.at),
                    format!("cannot read the definition of table {}: {error}", mapping.table),
                    match error.kind {
                        ErrorKind::CONNECTION | ErrorKind::TIMEOUT => {
                            "the HIS stopped answering: run check again once it answers"
                        }
                        _ => "grant this login the right to read the table's definition (the database's catalog)",
                    },
                )),
            }
        }
    }
    let _ = writer.close();
}

/// A config that cannot be used: one finding, with the JSON path.
fn config_finding(error: &ConfigError) -> Finding {
    match error {
        ConfigError::Invalid { file, json_path, message } => {
            let fix = if message.starts_with("the environment variable ") {
                "set the variable where check runs (the service's environment may have it, this shell may not), \
                 or write the value in the file"
                    .to_string()
            } else {
                format!("correct {json_path} in {} as the message says (README: Configuration)", file.display())
            };
            Finding::error(json_path.clone(), message.clone(), fix)
        }
        ConfigError::Syntax { .. } => Finding::error(
            "(file)",
            error.to_string(),
            "correct the JSON at that line and column (a missing or extra comma, quote or brace)",
        ),
        ConfigError::Read { .. } | ConfigError::NotFound { .. } => Finding::error(
            "(file)",
            error.to_string(),
            "pass --config with the path of his-config.json, readable by this user",
        ),
    }
}

/// A plugin that is not there, or not loadable, or of another plugin-api.
fn plugin_finding(error: &LoadError) -> Finding {
    let fix = match error {
        LoadError::NotFound { file_name, .. } => {
            format!("check database.type, and put {file_name} beside buktor-middleware or in plugins.dir")
        }
        LoadError::NotLoadable { .. } => {
            "use the plugin file built for this platform and this buktor-middleware".into()
        }
        LoadError::NotAPlugin { .. } => "replace the file with the plugin released with this buktor-middleware".into(),
        LoadError::Incompatible { host_abi, .. } => {
            format!("use the plugin released with this buktor-middleware (plugin-api {host_abi})")
        }
    };
    Finding::error("database.type", error.to_string(), fix)
}

/// A writer that does not open, or does not answer. A plugin's message
/// that starts with the setting it is about (`database.path: …`) puts the
/// finding there.
fn his_finding(database_type: &str, what: &str, error: &PluginError) -> Finding {
    let text = error.to_string();
    let (path, detail) = match text.split_once(": ") {
        Some((setting, rest)) if setting.starts_with("database.") && !setting.contains(char::is_whitespace) => {
            (setting.to_string(), rest.to_string())
        }
        _ => ("database".to_string(), text.clone()),
    };
    let fix = match error.kind {
        ErrorKind::AUTH => "check database.user and database.password (or the environment variable that fills it), \
                            and this user's rights on the database"
            .to_string(),
        ErrorKind::CONFIG => format!("correct {path} (README: the {database_type} writer's settings)"),
        ErrorKind::CONNECTION | ErrorKind::TIMEOUT => "check that the database server runs and that this machine \
                                                       reaches it (host, port, firewall), then run check again"
            .to_string(),
        ErrorKind::PANIC => "report this to the plugin's authors: a plugin must return errors, not panic".into(),
        _ => "see the database's message".into(),
    };
    Finding::error(path, format!("the {database_type} HIS database {what}: {detail}"), fix)
}

/// `check`: prints the report; an error when any finding is one.
pub fn command(config_path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let report = check(&config::locate(config_path.as_deref())?);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let errors = report.error_count();
    anyhow::ensure!(errors == 0, "check found {errors} error(s)");
    Ok(())
}
