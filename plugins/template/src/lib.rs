//! # his_template: a whole plugin in one file, to copy
//!
//! Instead of a database, this plugin appends every written row as one
//! JSON line to a file. It shows each duty of a plugin with nothing else in
//! the way: settings, the three writer calls, error classification, and the
//! export. Select it with:
//!
//! ```json
//! "database": { "type": "template", "path": "his-rows.jsonl" }
//! ```
//!
//! Each line names the table, the key and the whole row:
//!
//! ```json
//! {"table":"HIS_appointments","key":{"HIS_appointment_id":7},"row":{"HIS_appointment_id":7,"HIS_status":"booked"}}
//! ```
//!
//! A file cannot update a line in place, so every write is an append: a
//! reader applies the lines in order, and takes the *last* state of each
//! (table, key). Each line also names its action (`upsert`, `delete`, …). A real plugin runs
//! `INSERT … ON CONFLICT`, `MERGE` or the like instead (see plugins/sqlite).
//!
//! To start your own plugin: copy this folder, rename the package and the
//! `[lib] name` (`his_<your type>`), then replace the file with your
//! database's connection, one transaction per write: of one batch, or of
//! several (`Writer::write_all`, plugin-api 1.2), and say so in
//! `Writer::writes_batches_together`.
//!
//! ## Locks: wait a bounded time, then report a conflict
//!
//! A file has no row locks, so this plugin has no lock timeout. A plugin
//! for a database has one, as every plugin in this repository does: a
//! `lock_timeout_secs` setting (default 5, below `statement_timeout_secs`),
//! checked by `his_plugin_api::check_lock_timeout`, which says what is wrong
//! in one line naming both settings:
//!
//! ```text
//! /// The longest one write waits for a row another session has locked.
//! lock_timeout_secs: Option<u64>,
//! …
//! let lock_timeout = his_plugin_api::check_lock_timeout(raw.lock_timeout_secs, Some(raw.statement_timeout_secs))?;
//! ```
//!
//! Set it on each new connection (MySQL `innodb_lock_wait_timeout`, SQL
//! Server `SET LOCK_TIMEOUT`, SQLite's busy timeout; Oracle's DML has none,
//! so plugins/oracle locks the batch's rows first with `SELECT … FOR UPDATE
//! WAIT n`), and classify the error that ends the wait, and a deadlock, as
//! `PluginError::retryable(ErrorKind::CONFLICT, …)`: the host then holds
//! back only the rows involved, and the rest flows. A lock wait that runs
//! into the statement timeout would be `ErrorKind::TIMEOUT`, which the host
//! reads as "the HIS is unusable": it backs off and writes nothing at all.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

use his_plugin_api::{
    Actions, Deadline, ErrorKind, OpenContext, Plugin, PluginError, TableDescription, ValueRef, WriteBatch, Writer,
};
use serde_json::{Map, Value as Json, json};

pub mod render;

/// The `database` section, as the operator writes it. `deny_unknown_fields`
/// turns a misspelt setting into an error instead of a silent default.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Always "template": the host chose this plugin by it.
    #[serde(rename = "type")]
    _type: String,
    /// The JSON-lines file, relative to the config file's folder.
    path: PathBuf,
}

/// The plugin: its name, and how it opens a writer.
pub struct TemplatePlugin;

/// The writer: just the file's path. The file is opened for each batch, so
/// that it may be moved away (rotated) between batches.
pub struct TemplateWriter {
    path: PathBuf,
}

impl Plugin for TemplatePlugin {
    const NAME: &'static str = "template";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = TemplateWriter;

    /// Checks every setting now: an error here stops the host at startup,
    /// with this message, before it accepts any event.
    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<TemplateWriter, PluginError> {
        // Errors name the setting: `database.path: invalid type: …`.
        let settings: Settings = his_plugin_api::parse_settings(settings_json)?;
        let path = Path::new(context.config_dir).join(&settings.path);
        let folder = path.parent().unwrap_or(Path::new("."));
        if settings.path.as_os_str().is_empty() || !folder.is_dir() {
            return Err(PluginError::setting("path", format!("no folder {} for the rows file", folder.display())));
        }
        context.log.info(format_args!("writing rows as JSON lines to {}", path.display()));
        Ok(TemplateWriter { path })
    }

    /// The JSON lines the writer would append for `batches`, as statements
    /// without parameters: this plugin runs no SQL (see [`render`]).
    fn render(
        settings_json: &str,
        config_dir: &str,
        batches: &[WriteBatch],
    ) -> Result<Vec<his_plugin_api::Statement>, PluginError> {
        let lines = render::render(settings_json, config_dir, batches)?;
        Ok(lines.into_iter().map(|line| his_plugin_api::Statement::new(line, Vec::<String>::new())).collect())
    }
}

impl Writer for TemplateWriter {
    /// All of the batch's lines go to the file in one `write`, then to disk
    /// (`sync_data`) before returning: the host marks the events delivered
    /// as soon as this returns, so the rows must be durable by then.
    ///
    /// If the process dies mid-write, the last line may be cut short; a
    /// reader skips a last line without its newline. The host then writes
    /// the batch again, which repeats lines: harmless, as the last line per
    /// key wins. Repeating a batch is always possible, which is why a
    /// writer upserts rather than inserts.
    ///
    /// Each line records the batch's action (`upsert`, `insert`, `update`,
    /// `delete`, `soft_delete`) and only the columns the row carries (a
    /// partial row leaves the others as they were). A log cannot refuse an
    /// insert whose key exists or an update of a missing row, as a table
    /// does: its reader applies the lines in order. A database plugin
    /// enforces them (see plugins/sqlite).
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch's lines, in order, built first and then appended in one
    /// `write` and synced, as for one batch: a row this plugin cannot store
    /// (named counting rows across the batches) writes nothing at all.
    ///
    /// Yet not one transaction: a crash in the middle of the append can
    /// leave the first batch's lines without the second's. That is why
    /// [`Writer::writes_batches_together`] stays false (the default), and
    /// the host refuses, with this plugin, a mapping whose events write
    /// several tables. A plugin for a database says true once its
    /// `write_all` commits all the batches in one transaction.
    fn write_all(&mut self, batches: &[WriteBatch], _deadline: Deadline) -> Result<(), PluginError> {
        let mut lines = String::new();
        for (first_row, batch) in WriteBatch::with_first_rows(batches) {
            append_lines(&mut lines, batch).map_err(|e| e.offset_row(first_row))?;
        }
        let mut file = self.open_for_append()?;
        file.write_all(lines.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| self.io_error("write", e))
    }

    /// Every action of plugin-api 1.1: each is a line in the log.
    fn actions(&self) -> Actions {
        Actions::ALL_1_1
    }

    /// Checks that the rows file can be written now, by the very operation
    /// `write` uses: open it for appending (creating it if need be), which
    /// fails if its folder is gone or not writable.
    fn ping(&mut self, _deadline: Deadline) -> Result<(), PluginError> {
        self.open_for_append().map(drop)
    }

    /// A file of JSON lines has no schema to describe: it takes any table
    /// and any columns. `None` says "no such table", so the host's `check`
    /// reports each mapped table as missing: for this plugin, read that as
    /// "nothing to check against". A plugin for a real database must
    /// describe its tables: `check` relies on it (see plugins/sqlite).
    fn describe_table(&mut self, _table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        Ok(None)
    }
}

/// Appends one JSON line per row of `batch` to `lines`; a value this
/// plugin cannot store fails its row (numbered in the batch).
fn append_lines(lines: &mut String, batch: &WriteBatch) -> Result<(), PluginError> {
    for (index, row) in batch.rows().enumerate() {
        let mut columns = Map::new();
        let mut key = Map::new();
        for (at, (column, value)) in batch.columns().iter().zip(row).enumerate() {
            if !batch.is_present(index, at) {
                continue;
            }
            // Match on `get()`, never on the raw kind: it is the typed view.
            let value = match value.get() {
                ValueRef::Null => Json::Null,
                ValueRef::Bool(b) => json!(b),
                ValueRef::Int(i) => json!(i),
                ValueRef::Float(f) => json!(f),
                // Decimals stay text, so that no float rounds an amount.
                ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => json!(s),
                // JSON has no bytes: hexadecimal, as SQL writes them.
                ValueRef::Bytes(b) => json!(b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
                // A kind newer than this plugin: refuse the row, never guess.
                other => {
                    return Err(PluginError::permanent(
                        ErrorKind::UNSUPPORTED,
                        format!("column {column}: this plugin cannot store a {other:?} value"),
                    )
                    .with_row(index));
                }
            };
            if batch.key_columns().contains(column) {
                key.insert(column.to_string(), value.clone());
            }
            columns.insert(column.to_string(), value);
        }
        let line = json!({"table": batch.table(), "action": batch.action().name(), "key": key, "row": columns});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    Ok(())
}

impl TemplateWriter {
    fn open_for_append(&self) -> Result<std::fs::File, PluginError> {
        OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| self.io_error("open", e))
    }

    /// Classifies a file error. A full disk, a removed folder or a refused
    /// permission can all be fixed by an operator without changing the
    /// events, so they are retryable: the host keeps the events and tries
    /// again. Keep the system's own words in the message.
    fn io_error(&self, doing: &str, error: std::io::Error) -> PluginError {
        let message = format!("cannot {doing} {}: {error}", self.path.display());
        PluginError::retryable(ErrorKind::CONNECTION, message).with_code(error.kind().to_string())
    }
}

// The library's one export: the root module the host looks for.
his_plugin_api::export_plugin!(TemplatePlugin);
