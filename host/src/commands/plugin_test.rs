//! `buktor-middleware plugin-test`: the conformance kit. Loads any plugin
//! and checks that it behaves as the host relies on.
//!
//! The kit loads the library it is given, opens a writer with the config's
//! `database` section, and writes to two tables, which it never creates:
//! [`TABLE`] (or `--table NAME`), keyed by `id`, and the same name with
//! [`VALUES_SUFFIX`], keyed by the values it checks. A plugin with
//! `create_missing` (sqlite) or without a schema (template) takes them as
//! they are; for a real HIS, the operator creates them first from [`ddl`]
//! and [`values_ddl`], which the kit prints when the first write to each
//! fails for want of it.
//!
//! **How it observes.** The plugin ABI cannot read rows back. So the kit
//! observes through the write actions' own rules: an `insert` of a key
//! that has a row is refused with a DATA error, one of a key without a row
//! succeeds (and leaves one). After any action, an insert of the key it
//! touched says whether that key has a row. The `insert` check establishes
//! that refusal first; a plugin that never refuses (a log such as
//! plugins/template, which applies its lines in order) makes every check
//! built on it "not verified", never "pass". Each check's detail line says
//! what it sent, what came back, and why that is the outcome.
//!
//! The checks, in order:
//!
//! - **config**, **loads**, **open_writer**, **ping**.
//! - **upsert** (ids 1 and 2; the table's DDL when it is missing), **upsert
//!   by key** (id 1 again), **value types** (a row with every
//!   [`ValueKind`] of 1.0), **large batch** ([`BIG_BATCH_ROWS`] rows × 2
//!   columns, above MySQL's 65,535 and SQL Server's 2,100 parameters per
//!   statement): accepted; their rows are for the operator to look at.
//! - The write actions, on ids 10–17, after a delete of ids 10–19 (so a
//!   run repeats): **insert** (a batch of a new key and an existing one is
//!   refused with a DATA error), **atomic batch** (no row of that refused
//!   batch was committed), **update or error**, **update or ignore**,
//!   **update or insert** (each [`IfMissing`] policy), **delete**,
//!   **soft_delete**, **partial rows** (a batch built with `with_presence`).
//! - **unknown table**: a write to the table's name with [`MISSING_SUFFIX`]
//!   fails with a permanent schema error, or creates that table; accepted
//!   and not created by a plugin that describes its tables, the rows went
//!   nowhere: FAIL.
//! - **describe_table**: `id` is a unique key of the table.
//! - **values table**, then **offset timestamp**, **38-digit decimal** and
//!   **date**: pairs of values that must be two keys, or one (see
//!   `values.rs`): an offset dropped or applied backwards, a decimal
//!   rounded through a float, a date shifted by a time zone each make two
//!   keys collide, or one key split.
//! - **write_all: two tables in one transaction** (plugin-api 1.2): a
//!   batch into each table, written together, both commit; a refused row
//!   in the second batch leaves none of the first batch's rows, and the
//!   error names the row counting across the batches (see `write_all.rs`).
//!   Not verified for a plugin older than 1.2, or one whose
//!   `writes_batches_together` is false.
//! - **row index**: every DATA error the kit provoked named its row
//!   ([`PluginError::row`]), 1 for the second row of a 2-row insert.
//! - **ping after writes**, **close**.
//! - **reopen**: after the close, a second writer opens in the same
//!   process, pings and writes, as the host's worker does after an error.
//! - **connection loss**: with `--unreachable-config FILE` (a
//!   his-config.json whose database is not there), the first call that
//!   fails (open, ping or a write) fails as retryable. The kit cannot cut
//!   an arbitrary connection: without the option, not verified.
//! - **panic guard**: reported, not forced (see `panic_guard`).
//!
//! Each check is `pass`, `FAIL` or not verified (`n/v`; `not_verified` in
//! `--json`); the command exits non-zero when any failed, and zero when
//! what did not pass is only not verified. Every check that fails says
//! what happened in the plugin's own words.

mod actions;
mod basics;
mod ddl;
mod lifecycle;
mod report;
mod values;
mod write_all;

use std::path::{Path, PathBuf};

use abi_stable::std_types::{RString, RVec};
use his_plugin_api::{Action, Deadline, ErrorKind, PluginError, Value, WriteBatch};

#[cfg(doc)]
use his_plugin_api::{IfMissing, ValueKind};

use buktor_middleware::{
    config::{self, LoadedConfig},
    plugins::{self, HisWriter, Plugin},
};

pub use ddl::{ddl, values_ddl};
pub use report::{KitReport, Outcome, Verdict};

/// The table the kit writes to, unless `--table` names another.
pub const TABLE: &str = "buktor_conformance";

/// Appended to the kit's table for one that must not exist, for the
/// unknown-table check (`buktor_conformance_no_such_table`).
pub const MISSING_SUFFIX: &str = "_no_such_table";

/// Appended to the kit's table for its values table
/// (`buktor_conformance_values`).
pub const VALUES_SUFFIX: &str = "_values";

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

/// The first key of the large batch (keys 1..=4 and 10..=19 are the other
/// checks').
pub const BIG_BATCH_FIRST_KEY: i64 = 100_000;

/// What `plugin-test` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin library.
    pub plugin: PathBuf,
    /// The his-config.json whose `database` section the writer opens with.
    pub config: PathBuf,
    /// The kit's table (see [`is_plain_table_name`]).
    pub table: String,
    /// A his-config.json whose database is not there, for the
    /// connection-loss check.
    pub unreachable_config: Option<PathBuf>,
}

/// Runs the kit as `options` say.
pub fn run(options: &Options) -> KitReport {
    let mut report = KitReport::default();
    let loaded = match config::load(&options.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            report.record("config", Verdict::fail(format!("{e}; no other check ran")));
            return report;
        }
    };
    let detail = format!("database.type {:?} from {}", loaded.database_type(), loaded.file.display());
    report.record("config", Verdict::pass(detail));

    let plugin = match plugins::load_path(&options.plugin) {
        Ok(plugin) => plugin,
        Err(e) => {
            report.record("loads", Verdict::fail(format!("{e}; no other check ran")));
            return report;
        }
    };
    report.record(
        "loads",
        Verdict::pass(format!(
            "{} {} from {}, built against plugin-api {} (this host: {})",
            plugin.name,
            plugin.version,
            plugin.path.display(),
            plugin.abi_version,
            his_plugin_api::ABI_VERSION
        )),
    );

    let mut kit = Kit::new(report, &plugin, &loaded, &options.table);
    kit.checks(options.unreachable_config.as_deref());
    kit.report
}

/// The run in progress: the report so far, and what the plugin's answers
/// so far let the kit observe.
struct Kit<'a> {
    report: KitReport,
    plugin: &'a Plugin,
    /// The config whose `database` section every writer opens with.
    loaded: &'a LoadedConfig,
    /// The table the kit writes to.
    table: String,
    /// A table that must not exist.
    missing: String,
    /// The values table.
    values: String,
    /// The bound on each call.
    deadline: Deadline,
    /// How many calls came back as [`ErrorKind::PANIC`] errors.
    panics: usize,
    /// Whether the first write to [`Kit::table`] succeeded: the checks that
    /// write more rows there need it.
    table_written: bool,
    /// Whether the plugin describes [`Kit::table`] once written: a plugin
    /// with a schema, which must refuse what a schema refuses.
    describes_tables: bool,
    /// Whether an insert of an existing key was refused: every check that
    /// observes through an insert needs it.
    inserts_refuse_existing: bool,
    /// Every DATA error the kit provoked, for the row-index check.
    refusals: Vec<Refusal>,
}

/// A DATA error the kit provoked, and the row it should name.
struct Refusal {
    /// The batch, as the row-index check's detail names it.
    what: String,
    /// The index of the row at fault.
    expected: usize,
    /// What the plugin said.
    row: Option<u64>,
}

/// A check's verdict, with `?` for the verdict of a step that ends it
/// early (a call that failed, an observation that is impossible).
type Checked = Result<Verdict, Verdict>;

impl<'a> Kit<'a> {
    fn new(report: KitReport, plugin: &'a Plugin, loaded: &'a LoadedConfig, table: &str) -> Self {
        Self {
            report,
            plugin,
            loaded,
            table: table.to_string(),
            missing: format!("{table}{MISSING_SUFFIX}"),
            values: format!("{table}{VALUES_SUFFIX}"),
            deadline: loaded.config.sync.plugin_deadline(),
            panics: 0,
            table_written: false,
            describes_tables: false,
            inserts_refuse_existing: false,
            refusals: Vec::new(),
        }
    }

    /// Every check after `loads`, in order.
    fn checks(&mut self, unreachable_config: Option<&Path>) {
        let mut writer = match self.open_writer() {
            Ok(writer) => writer,
            Err(e) => {
                let detail = self.error(&e);
                self.report.record("open_writer", Verdict::fail(format!("{detail}; no other check ran")));
                return;
            }
        };
        self.report.record("open_writer", Verdict::pass("opened with the config's database section"));
        let result = writer.ping(self.deadline);
        self.outcome("ping", result, |()| "answered".into());

        self.table_written = self.first_upsert(&mut writer);
        if self.table_written {
            self.describes_tables = matches!(writer.describe_table(&self.table, self.deadline), Ok(Some(_)));
            self.upsert_by_key(&mut writer);
            self.value_types(&mut writer);
            self.large_batch(&mut writer);
            self.actions(&mut writer);
        } else {
            for name in ["upsert by key", "value types", "large batch"].into_iter().chain(actions::CHECKS) {
                self.report.record(name, Verdict::fail("not run: the upsert failed"));
            }
        }
        self.unknown_table(&mut writer);
        self.describe(&mut writer);
        self.values_checks(&mut writer);
        self.write_all(&mut writer);
        self.row_index();

        let result = writer.ping(self.deadline);
        self.outcome("ping after writes", result, |()| "the writer still answers after every write above".into());
        let result = writer.close();
        self.outcome("close", result, |()| "closed".into());
        drop(writer);
        self.reopen();
        self.connection_loss(unreachable_config);
        self.panic_guard();
    }

    /// A writer with the config's `database` section, as the host's
    /// worker opens one.
    fn open_writer(&self) -> Result<HisWriter, PluginError> {
        self.plugin.open_writer(&self.loaded.database_settings_json(), &self.loaded.dir, self.deadline)
    }

    /// Records a check from a writer call's result.
    fn outcome<T>(&mut self, name: &str, result: Result<T, PluginError>, detail: impl FnOnce(T) -> String) {
        let verdict = match result {
            Ok(value) => Verdict::pass(detail(value)),
            Err(e) => Verdict::fail(self.error(&e)),
        };
        self.report.record(name, verdict);
    }

    /// Writes `batch`; a failure ends the check, saying `what` failed.
    fn write(&mut self, writer: &mut HisWriter, batch: &WriteBatch, what: &str) -> Result<(), Verdict> {
        writer.write(batch, self.deadline).map_err(|e| Verdict::fail(format!("{what} failed: {}", self.error(&e))))
    }

    /// Writes `batch`, which should be refused with a DATA error for its
    /// row `expected`. `Ok(true)`: refused so (the row it named is kept for
    /// the row-index check); `Ok(false)`: accepted; another error ends the
    /// check.
    fn refused(
        &mut self,
        writer: &mut HisWriter,
        batch: &WriteBatch,
        what: &str,
        expected: usize,
    ) -> Result<bool, Verdict> {
        match writer.write(batch, self.deadline) {
            Ok(()) => Ok(false),
            Err(e) if e.kind == ErrorKind::DATA => {
                self.refusals.push(Refusal { what: what.to_string(), expected, row: e.row.into_option() });
                Ok(true)
            }
            Err(e) => Err(Verdict::fail(format!("{what}: expected a DATA error, got {}", self.error(&e)))),
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

    /// The verdict of a refusal that did not come, from a plugin that
    /// should have refused: FAIL if it describes its tables (it has a
    /// schema, so it can refuse), else not verified (a store without keys,
    /// as plugins/template's log, cannot).
    fn not_refused(&self, what: &str, rule: &str) -> Verdict {
        if self.describes_tables {
            Verdict::fail(format!("{what} was accepted: {rule}"))
        } else {
            Verdict::not_verified(format!(
                "{what} was accepted, and the plugin describes no tables ({} is None), so the kit cannot tell a \
                 store without keys, which cannot refuse it (as plugins/template's log, whose reader applies lines \
                 in order), from a plugin that breaks the rule: {rule}",
                self.table
            ))
        }
    }

    /// The row-index check: every DATA error above named its row.
    fn row_index(&mut self) {
        const NAME: &str = "row index";
        if self.refusals.is_empty() {
            let reason = "no write above was refused with a DATA error, so there was no row index to look at";
            return self.report.record(NAME, Verdict::not_verified(reason));
        }
        let wrong: Vec<String> = self
            .refusals
            .iter()
            .filter(|r| r.row != Some(r.expected as u64))
            .map(|r| match r.row {
                Some(row) => format!("{}: row {row}, expected {}", r.what, r.expected),
                None => format!("{}: no row index, expected {}", r.what, r.expected),
            })
            .collect();
        let verdict = if wrong.is_empty() {
            let first = &self.refusals[0];
            Verdict::pass(format!(
                "each of the {} DATA errors above named its row (PluginError::row), such as row {} for {}: the \
                 host holds back only that row's event",
                self.refusals.len(),
                first.expected,
                first.what
            ))
        } else {
            Verdict::fail(format!(
                "{} of {} DATA errors did not name the row at fault (PluginError::with_row), so the host cannot \
                 tell which event to hold back: {}",
                wrong.len(),
                self.refusals.len(),
                wrong.join("; ")
            ))
        };
        self.report.record(NAME, verdict);
    }
}

/// A batch of whole rows for `table`, keyed by its first column.
fn batch(table: &str, action: Action, columns: &[&str], rows: &[Vec<Value>]) -> WriteBatch {
    keyed_batch(table, action, columns, 1, rows)
}

/// A batch of whole rows for `table`, keyed by its first `keys` columns.
fn keyed_batch(table: &str, action: Action, columns: &[&str], keys: usize, rows: &[Vec<Value>]) -> WriteBatch {
    WriteBatch::new(
        table,
        action,
        columns.iter().map(|&c| RString::from(c)).collect(),
        columns[..keys].iter().map(|&c| RString::from(c)).collect::<RVec<_>>(),
        rows.iter().flatten().cloned().collect(),
    )
}

/// `plugin-test`: the conformance kit's table; an error when a check failed.
pub fn command(
    config_path: Option<PathBuf>,
    plugin: PathBuf,
    table: String,
    unreachable_config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_plain_table_name(&table),
        "--table {table:?}: use a plain name (letters, digits and _, not starting with a digit, at most 64)"
    );
    let config = config::locate(config_path.as_deref())?;
    let report = run(&Options { plugin, config, table, unreachable_config });
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
    fn a_missing_config_is_one_failed_check() {
        let report = run(&Options {
            plugin: "/nonexistent/libhis_x.so".into(),
            config: "/nonexistent/his-config.json".into(),
            table: TABLE.into(),
            unreachable_config: None,
        });
        assert_eq!(report.results.len(), 1);
        assert_eq!(report.results[0].name, "config");
        assert!(report.failed_count() > 0);
    }

    #[test]
    fn table_names_are_plain_and_leave_room_for_the_suffixes() {
        assert!(is_plain_table_name(TABLE) && is_plain_table_name("_x9"));
        for bad in ["", "9x", "a-b", "a b", "x; DROP TABLE y", "é"] {
            assert!(!is_plain_table_name(bad), "{bad}");
        }
        assert!(is_plain_table_name(&"a".repeat(64)) && !is_plain_table_name(&"a".repeat(65)));
    }
}
