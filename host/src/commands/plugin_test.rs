//! `buktor-middleware plugin-test`: the conformance kit. Loads any plugin
//! and checks that it behaves as the host relies on.
//!
//! The kit loads the library it is given, opens a writer with the config's
//! `database` section, and writes to one table, [`TABLE`] or `--table`, which it never
//! creates: a plugin with `create_missing` (sqlite) or without a schema
//! (template) takes it as it is; for a real HIS, the operator creates it
//! first from [`ddl`], which the kit prints when the first write fails for
//! want of it. Then it checks, in order:
//!
//! - **config**, **loads**: the config and the library load; the plugin's
//!   name, version and plugin-api version.
//! - **open_writer**, **ping**.
//! - **insert**, then **upsert by key**: the same key twice. The plugin
//!   ABI has no way to read rows back, so the kit verifies that both writes
//!   are accepted, not that one row with the second values is left; the
//!   detail says which rows to look at (buktor's own tests read them back).
//! - **value types**: one row with every [`ValueKind`].
//! - **large batch**: [`BIG_BATCH_ROWS`] rows × 2 columns, above MySQL's
//!   65,535 and SQL Server's 2,100 parameters per statement.
//! - **unknown table**: a write to the table's name with [`MISSING_SUFFIX`] must fail with a
//!   permanent schema error (not applicable, and said so, when the plugin
//!   creates tables or has no schema).
//! - **describe_table**, **ping after writes**, **close**.
//! - **panic guard**: reported, not forced (see `panic_guard` below).
//!
//! Every check that fails says what happened in the plugin's own words.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use abi_stable::std_types::{RString, RVec};
use his_plugin_api::{ABI_VERSION, Action, Deadline, ErrorKind, PluginError, Value, ValueKind, WriteBatch};

use buktor_middleware::{
    config,
    plugins::{self, HisWriter},
};

/// The table the kit writes to, unless `--table` names another.
pub const TABLE: &str = "buktor_conformance";

/// Appended to the kit's table for one that must not exist, for the
/// unknown-table check (`buktor_conformance_no_such_table`).
pub const MISSING_SUFFIX: &str = "_no_such_table";

/// Whether `table` can be the kit's table: a plain name (letters, digits,
/// `_`, not starting with a digit) of at most 64 characters, which every
/// database takes unquoted and which leaves room for [`MISSING_SUFFIX`].
pub fn is_plain_table_name(table: &str) -> bool {
    let mut chars = table.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= 64
}

/// Rows in the large batch; with 2 columns, 70,000 values.
pub const BIG_BATCH_ROWS: usize = 35_000;

/// The first key of the large batch (keys 1..=3 are the other checks').
pub const BIG_BATCH_FIRST_KEY: i64 = 100_000;

/// One check's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What happened.
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Default, serde::Serialize)]
pub struct KitReport {
    /// The checks.
    pub results: Vec<CheckResult>,
}

impl KitReport {
    /// How many checks failed.
    pub fn failed_count(&self) -> usize {
        self.results.iter().filter(|r| !r.passed).count()
    }

    fn record(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.results.push(CheckResult { name: name.into(), passed, detail: detail.into() });
    }
}

impl std::fmt::Display for KitReport {
    /// One line per check: `pass` or `FAIL`, the check's name padded into a
    /// column, then the detail.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.results.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for result in &self.results {
            let status = if result.passed { "pass" } else { "FAIL" };
            writeln!(f, "{status}  {:width$}  {}", result.name, result.detail)?;
        }
        let failed = self.failed_count();
        writeln!(f, "{} checks: {} passed, {failed} failed", self.results.len(), self.results.len() - failed)
    }
}

/// The `CREATE TABLE` for the kit's `table` in the dialect of
/// `database_type`, on one line. `id` is the key; every other column takes
/// NULL.
pub fn ddl(database_type: &str, table: &str) -> String {
    let (id, text, bool, int, decimal, float, timestamp) = match database_type {
        "sqlite" => ("INTEGER", "TEXT", "INTEGER", "INTEGER", "TEXT", "REAL", "TEXT"),
        "mysql" => ("BIGINT", "VARCHAR(100)", "BOOLEAN", "BIGINT", "DECIMAL(12,2)", "DOUBLE", "DATETIME(3)"),
        "sqlserver" => ("BIGINT", "NVARCHAR(100)", "BIT", "BIGINT", "DECIMAL(12,2)", "FLOAT", "DATETIME2"),
        // The oracle plugin quotes names, so they keep their lowercase.
        "oracle" => {
            return format!(
                "CREATE TABLE \"{table}\" (\"id\" NUMBER(19) PRIMARY KEY, \"label\" VARCHAR2(100), \"flag\" NUMBER(1), \
                 \"quantity\" NUMBER(19), \"amount\" NUMBER(12,2), \"ratio\" BINARY_DOUBLE, \
                 \"happened_at\" TIMESTAMP, \"note\" VARCHAR2(100))"
            );
        }
        _ => {
            return format!(
                "a table {table} with columns id (64-bit integer, primary key), label (text, 100), flag (boolean), \
                 quantity (64-bit integer), amount (decimal 12,2), ratio (double), happened_at (date and time), \
                 note (text, 100), all but id nullable"
            );
        }
    };
    format!(
        "CREATE TABLE {table} (id {id} PRIMARY KEY, label {text}, flag {bool}, quantity {int}, amount {decimal}, \
         ratio {float}, happened_at {timestamp}, note {text})"
    )
}

/// Runs the kit against the plugin library `plugin`, with the `database`
/// settings of the config file `config`, writing to `table` (see
/// [`is_plain_table_name`]).
pub fn run(plugin: &Path, config: &Path, table: &str) -> KitReport {
    let mut report = KitReport::default();
    let loaded = match config::load(config) {
        Ok(loaded) => loaded,
        Err(e) => {
            report.record("config", false, format!("{e}; no other check ran"));
            return report;
        }
    };
    let database_type = loaded.database_type().to_string();
    report.record("config", true, format!("database.type {database_type:?} from {}", loaded.file.display()));

    let plugin = match plugins::load_path(plugin) {
        Ok(plugin) => plugin,
        Err(e) => {
            report.record("loads", false, format!("{e}; no other check ran"));
            return report;
        }
    };
    report.record(
        "loads",
        true,
        format!(
            "{} {} from {}, built against plugin-api {} (this host: {ABI_VERSION})",
            plugin.name,
            plugin.version,
            plugin.path.display(),
            plugin.abi_version
        ),
    );

    let deadline = loaded.config.sync.plugin_deadline();
    let writer = match plugin.open_writer(&loaded.database_settings_json(), &loaded.dir, deadline) {
        Ok(writer) => writer,
        Err(e) => {
            let mut kit = Kit {
                report,
                panics: 0,
                table: table.to_string(),
                missing: format!("{table}{MISSING_SUFFIX}"),
                deadline,
            };
            let detail = kit.error(&e);
            kit.report.record("open_writer", false, format!("{detail}; no other check ran"));
            return kit.report;
        }
    };
    let mut kit =
        Kit { report, panics: 0, table: table.to_string(), missing: format!("{table}{MISSING_SUFFIX}"), deadline };
    kit.report.record("open_writer", true, "opened with the config's database section");
    kit.checks(writer, &database_type, &plugin.abi_version);
    kit.report
}

/// The run in progress.
struct Kit {
    report: KitReport,
    /// How many calls came back as [`ErrorKind::PANIC`] errors.
    panics: usize,
    /// The table the kit writes to.
    table: String,
    /// A table that must not exist.
    missing: String,
    /// The bound on each call.
    deadline: Deadline,
}

impl Kit {
    fn checks(&mut self, mut writer: HisWriter, database_type: &str, abi_version: &str) {
        let result = writer.ping(self.deadline);
        self.outcome("ping", result, |()| "answered".into());

        let inserted = self.insert(&mut writer, database_type);
        if inserted {
            let second = batch(&self.table, &["id", "label"], &[vec![Value::int(1), Value::text("second")]]);
            let result = writer.write(&second, self.deadline);
            let table = self.table.clone();
            self.outcome("upsert by key", result, |()| {
                format!(
                    "a second write of key id=1 (label 'first', then 'second') was accepted. Not verified by the \
                     kit: that {table} now holds one row for id 1, with label 'second' (the plugin ABI cannot read \
                     rows back); look at the table"
                )
            });
            self.value_types(&mut writer);
            self.large_batch(&mut writer);
        } else {
            for name in ["upsert by key", "value types", "large batch"] {
                self.report.record(name, false, "not run: the insert failed");
            }
        }
        self.unknown_table(&mut writer);
        self.describe(&mut writer, inserted);

        let result = writer.ping(self.deadline);
        self.outcome("ping after writes", result, |()| "the writer still answers after every write above".into());
        let result = writer.close();
        self.outcome("close", result, |()| "closed".into());
        drop(writer);
        self.panic_guard(abi_version);
    }

    /// Two new rows. Returns whether they were written: the next checks
    /// need the table.
    fn insert(&mut self, writer: &mut HisWriter, database_type: &str) -> bool {
        let rows = [vec![Value::int(1), Value::text("first")], vec![Value::int(2), Value::text("first")]];
        match writer.write(&batch(&self.table, &["id", "label"], &rows), self.deadline) {
            Ok(()) => {
                self.report.record("insert", true, format!("2 new rows (id 1 and 2) written to {}", self.table));
                true
            }
            Err(e) => {
                let mut detail = self.error(&e);
                if e.kind == ErrorKind::SCHEMA {
                    detail.push_str(&format!("; create this table first: {}", ddl(database_type, &self.table)));
                }
                self.report.record("insert", false, detail);
                false
            }
        }
    }

    fn value_types(&mut self, writer: &mut HisWriter) {
        let columns = ["id", "flag", "quantity", "amount", "ratio", "label", "happened_at", "note"];
        let row = vec![
            Value::int(3),
            Value::bool(true),
            Value::int(-42),
            Value::decimal("1500.75"),
            Value::float(0.25),
            Value::text("Zoë's \"quoted\" text; DROP TABLE x"),
            Value::timestamp("2025-03-03T09:00:00"),
            Value::null(),
        ];
        let kinds: Vec<&str> = row[1..].iter().map(|v| v.kind().name()).collect();
        let every = [
            ValueKind::NULL,
            ValueKind::BOOL,
            ValueKind::INT,
            ValueKind::DECIMAL,
            ValueKind::FLOAT,
            ValueKind::TEXT,
            ValueKind::TIMESTAMP,
        ];
        debug_assert!(every.iter().all(|k| row.iter().any(|v| v.kind() == *k)), "every kind is in the row");
        let result = writer.write(&batch(&self.table, &columns, &[row]), self.deadline);
        self.outcome("value types", result, |()| format!("one row (id 3) with {} values accepted", kinds.join(", ")));
    }

    fn large_batch(&mut self, writer: &mut HisWriter) {
        let rows: Vec<Vec<Value>> = (0..BIG_BATCH_ROWS as i64)
            .map(|i| vec![Value::int(BIG_BATCH_FIRST_KEY + i), Value::text(format!("row {i}"))])
            .collect();
        let started = Instant::now();
        let result = writer.write(&batch(&self.table, &["id", "label"], &rows), self.deadline);
        let took = started.elapsed();
        self.outcome("large batch", result, |()| {
            format!(
                "{BIG_BATCH_ROWS} rows × 2 columns = {} values in one batch (more than MySQL's 65,535 and SQL \
                 Server's 2,100 parameters per statement) written in {}",
                BIG_BATCH_ROWS * 2,
                seconds(took)
            )
        });
    }

    fn unknown_table(&mut self, writer: &mut HisWriter) {
        const NAME: &str = "unknown table";
        match writer.describe_table(&self.missing, self.deadline) {
            Ok(None) => {}
            Ok(Some(_)) => {
                let detail = format!(
                    "table {} exists (a previous run with create_missing made it?): drop it, the \
                     check needs a table that does not exist",
                    self.missing
                );
                return self.report.record(NAME, false, detail);
            }
            Err(e) => {
                let error = self.error(&e);
                let detail = format!("describe_table({}) failed: {error}", self.missing);
                return self.report.record(NAME, false, detail);
            }
        }
        let row = [vec![Value::int(1), Value::text("x")]];
        match writer.write(&batch(&self.missing, &["id", "label"], &row), self.deadline) {
            Err(e) if e.kind == ErrorKind::SCHEMA && !e.retryable => {
                let detail = format!("refused as a permanent schema error: {e}");
                self.report.record(NAME, true, detail)
            }
            Err(e) => {
                let detail = format!("expected a permanent schema error, got {}", self.error(&e));
                self.report.record(NAME, false, detail)
            }
            Ok(()) => {
                let detail = match writer.describe_table(&self.missing, self.deadline) {
                    Ok(Some(_)) => format!(
                        "not applicable: the plugin created {} on the write (as database.create_missing \
                         does); drop it",
                        self.missing
                    ),
                    _ => format!(
                        "not applicable: the write to {} was accepted and the plugin describes no \
                         tables, so it has no schema to miss (the kit cannot tell this from a plugin that drops \
                         such rows)",
                        self.missing
                    ),
                };
                self.report.record(NAME, true, detail)
            }
        }
    }

    fn describe(&mut self, writer: &mut HisWriter, inserted: bool) {
        const NAME: &str = "describe_table";
        match writer.describe_table(&self.table, self.deadline) {
            Ok(Some(table)) => {
                let key_is_unique = table.primary_key.iter().map(RString::as_str).eq(["id"])
                    || table.unique_keys.iter().any(|key| key.iter().map(RString::as_str).eq(["id"]));
                let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                let detail = format!(
                    "{}: {} columns ({}), primary key ({})",
                    table.name,
                    columns.len(),
                    columns.join(", "),
                    table.primary_key.iter().map(RString::as_str).collect::<Vec<_>>().join(", ")
                );
                if key_is_unique {
                    self.report.record(NAME, true, format!("{detail}; id is a unique key"));
                } else {
                    let detail = format!("{detail}: id, the upsert key, is neither the primary key nor a unique key");
                    self.report.record(NAME, false, detail);
                }
            }
            Ok(None) if inserted => self.report.record(
                NAME,
                true,
                format!(
                    "None for {}, which was just written: the plugin does not describe tables (allowed; \
                     `check` will report each mapped table as missing)",
                    self.table
                ),
            ),
            Ok(None) => self.report.record(NAME, false, format!("None: there is no table {} (see insert)", self.table)),
            Err(e) => {
                let detail = self.error(&e);
                self.report.record(NAME, false, detail)
            }
        }
    }

    /// What the kit can say about the plugin's panic guard.
    ///
    /// The kit cannot make an arbitrary plugin panic, so it does not claim
    /// to have tested the guard. What holds: this process is still running,
    /// so no panic unwound across the boundary unguarded during the run
    /// (that aborts the process), and any panic the guard caught came back
    /// as an [`ErrorKind::PANIC`] error, counted here. What is relied on,
    /// not verified: that the library was built with `export_plugin!`,
    /// which in every plugin-api 1.x runs `open_writer` and every writer
    /// call inside `guard`. A library that fills in its `PluginModule` by
    /// hand has no guard, and the kit cannot tell. buktor's own tests check
    /// the guard itself with a plugin that panics on demand.
    fn panic_guard(&mut self, abi_version: &str) {
        if self.panics == 0 {
            let detail = format!(
                "not forced (the kit cannot make a plugin panic). Seen: no call panicked during this run. Relied \
                 on, not verified: plugin-api {abi_version}'s export_plugin! turns a panic in any entry point into \
                 a permanent panic error, if the library was built with it"
            );
            self.report.record("panic guard", true, detail);
        } else {
            let detail = format!(
                "the plugin panicked {} time(s) on the input above; its guard turned each into an error, but a \
                 panic on ordinary input is a bug",
                self.panics
            );
            self.report.record("panic guard", false, detail);
        }
    }

    /// Records a check from a writer call's result.
    fn outcome<T>(&mut self, name: &str, result: Result<T, PluginError>, detail: impl FnOnce(T) -> String) {
        match result {
            Ok(value) => self.report.record(name, true, detail(value)),
            Err(e) => {
                let detail = self.error(&e);
                self.report.record(name, false, detail)
            }
        }
    }

    /// An error as the kit prints it: kind, retryable or not, message.
    fn error(&mut self, e: &PluginError) -> String {
        if e.kind == ErrorKind::PANIC {
            self.panics += 1;
        }
        let retry = if e.retryable { "retryable" } else { "permanent" };
        format!("{} error ({retry}): {e}", e.kind.name())
    }
}

/// A batch that upserts `rows` into `table`, keyed by its first column.
fn batch(table: &str, columns: &[&str], rows: &[Vec<Value>]) -> WriteBatch {
    WriteBatch::new(
        table,
        Action::UPSERT,
        columns.iter().map(|&c| RString::from(c)).collect(),
        RVec::from(vec![RString::from(columns[0])]),
        rows.iter().flatten().cloned().collect(),
    )
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// `plugin-test`: the conformance kit's table; an error when a check failed.
pub fn command(config_path: Option<PathBuf>, plugin: &std::path::Path, table: &str, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_plain_table_name(table),
        "--table {table:?}: use a plain name (letters, digits and _, not starting with a digit, at most 64)"
    );
    let report = run(plugin, &config::locate(config_path.as_deref())?, table);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let failed = report.failed_count();
    anyhow::ensure!(failed == 0, "{failed} conformance check(s) failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_names_every_column_the_kit_writes() {
        for database_type in ["sqlite", "mysql", "sqlserver", "oracle", "acme"] {
            let text = ddl(database_type, TABLE);
            for column in ["id", "label", "flag", "quantity", "amount", "ratio", "happened_at", "note"] {
                assert!(text.contains(column), "{database_type}: {column} in {text}");
            }
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn the_table_has_a_column_of_names_and_a_summary() {
        let mut report = KitReport::default();
        report.record("ping", true, "ok");
        report.record("unknown table", false, "expected a schema error");
        assert_eq!(
            report.to_string(),
            "pass  ping           ok\nFAIL  unknown table  expected a schema error\n2 checks: 1 passed, 1 failed\n"
        );
        assert!(report.failed_count() > 0);
    }

    #[test]
    fn a_missing_config_is_one_failed_check() {
        let report = run(Path::new("/nonexistent/libhis_x.so"), Path::new("/nonexistent/his-config.json"), TABLE);
        assert_eq!(report.results.len(), 1);
        assert_eq!(report.results[0].name, "config");
        assert!(report.failed_count() > 0);
    }
}
