//! `buktor-middleware plugin-test`, the conformance kit, run as a plugin
//! author runs it: the real binary against real plugin libraries. The kit
//! cannot read rows back through the plugin ABI, so these tests read the
//! database themselves to prove what each write action left.
//!
//! The kit must also fail: the fixture plugin `his_broken`
//! (tests/fixtures/broken) gets exactly one thing wrong per
//! `database.defect`, and exactly the check for it must fail.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use buktor_tests::{Setup, artifacts, mysql, query};
use serde_json::{Value, json};

/// Every check the kit prints, in order.
const CHECKS: [&str; 29] = [
    "config",
    "loads",
    "open_writer",
    "ping",
    "upsert",
    "upsert by key",
    "value types",
    "large batch",
    "insert",
    "atomic batch",
    "update or error",
    "update or ignore",
    "update or insert",
    "delete",
    "soft_delete",
    "partial rows",
    "unknown table",
    "describe_table",
    "values table",
    "offset timestamp",
    "38-digit decimal",
    "date",
    WRITE_ALL,
    "row index",
    "ping after writes",
    "close",
    "reopen",
    "connection loss",
    "panic guard",
];

/// The check of plugin-api 1.2's write_all: not verified for a plugin
/// that does not write batches together (plugins/template, and the broken
/// fixture, which does not implement write_all).
const WRITE_ALL: &str = "write_all: two tables in one transaction";

/// The checks a plugin without keys (plugins/template) leaves not
/// verified: each observes through a refused insert, or a schema; and
/// write_all, which a log cannot make one transaction.
const NOT_VERIFIED_WITHOUT_KEYS: [&str; 15] = [
    "insert",
    "atomic batch",
    "update or error",
    "update or ignore",
    "update or insert",
    "delete",
    "soft_delete",
    "partial rows",
    "unknown table",
    "offset timestamp",
    "38-digit decimal",
    "date",
    WRITE_ALL,
    "row index",
    "connection loss",
];

/// Rows of the kit's large batch, and their first key.
const BIG_BATCH_ROWS: i64 = 35_000;
const BIG_BATCH_FIRST_KEY: i64 = 100_000;

/// Each defect of the broken fixture, and the one check that must catch it.
const DEFECTS: [(&str, &str); 8] = [
    ("ignores_unknown_table", "unknown table"),
    ("no_row_index", "row index"),
    ("no_reopen", "reopen"),
    ("connection_loss_permanent", "connection loss"),
    ("half_commit", "atomic batch"),
    ("drops_offsets", "offset timestamp"),
    ("rounds_decimals", "38-digit decimal"),
    ("shifts_dates", "date"),
];

/// The kit's outcome: exit status, and the table as (status, name, detail),
/// status being `pass`, `FAIL` or `n/v`.
struct Run {
    output: Output,
    rows: Vec<(String, String, String)>,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn detail(&self, check: &str) -> &str {
        let row = self.rows.iter().find(|(_, name, _)| name == check);
        &row.unwrap_or_else(|| panic!("no {check} row:\n{}", self.stdout())).2
    }

    /// The names of the checks with `status`.
    fn with_status(&self, status: &str) -> Vec<&str> {
        self.rows.iter().filter(|r| r.0 == status).map(|r| r.1.as_str()).collect()
    }

    /// Exit status 0, every check printed, and each passed except
    /// `not_verified`, which are not verified.
    fn assert_passed_but(&self, not_verified: &[&str]) {
        let stdout = self.stdout();
        let stderr = String::from_utf8_lossy(&self.output.stderr);
        assert!(self.output.status.success(), "exit {}:\n{stdout}\n{stderr}", self.output.status);
        let names: Vec<&str> = self.rows.iter().map(|(_, name, _)| name.as_str()).collect();
        assert_eq!(names, CHECKS, "{stdout}");
        assert_eq!(self.with_status("n/v"), not_verified, "{stdout}");
        assert_eq!(self.with_status("pass").len(), CHECKS.len() - not_verified.len(), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
        let summary =
            format!("29 checks: {} passed, 0 failed, {} not verified\n", 29 - not_verified.len(), not_verified.len());
        assert!(stdout.ends_with(&summary), "{stdout}");
        for name in not_verified {
            assert!(self.detail(name).starts_with("not verified: "), "{stdout}");
        }
    }
}

/// Runs `plugin-test` with `setup`'s config against the library `plugin`.
fn plugin_test(setup: &Setup, plugin: &Path) -> Run {
    plugin_test_with(setup, plugin, &[])
}

/// [`plugin_test`] with more arguments.
fn plugin_test_with(setup: &Setup, plugin: &Path, args: &[&str]) -> Run {
    let output = kit(setup, plugin, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows = stdout
        .lines()
        .filter_map(|line| {
            let status = line.get(..4)?.trim_end();
            if !["pass", "FAIL", "n/v"].contains(&status) {
                return None;
            }
            let (name, detail) = line[6..].split_once("  ").unwrap_or((&line[6..], ""));
            Some((status.to_string(), name.to_string(), detail.trim_start().to_string()))
        })
        .collect();
    Run { output, rows }
}

/// The kit's process output.
fn kit(setup: &Setup, plugin: &Path, args: &[&str]) -> Output {
    Command::new(&artifacts().binary)
        .arg("--config")
        .arg(setup.write_config())
        .args(["plugin-test", "--plugin"])
        .arg(plugin)
        .args(args)
        .output()
        .expect("run buktor-middleware plugin-test")
}

/// `plugin-test --json`: the exit status and each check's (name, outcome).
fn plugin_test_json(setup: &Setup, plugin: &Path, args: &[&str]) -> (Output, Vec<(String, String)>) {
    let output = kit(setup, plugin, &[&["--json"], args].concat());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: JSON on stdout:\n{}", String::from_utf8_lossy(&output.stdout));
    });
    let results = report["results"].as_array().expect("results");
    for result in results {
        assert!(result["detail"].is_string(), "{result}");
    }
    let outcomes = results
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    (output, outcomes)
}

/// The names of the checks with `outcome` in a JSON report.
fn named<'a>(outcomes: &'a [(String, String)], outcome: &str) -> Vec<&'a str> {
    outcomes.iter().filter(|(_, o)| o == outcome).map(|(name, _)| name.as_str()).collect()
}

/// The DDL a failed check printed after "create this table first: ".
fn printed_ddl(run: &Run, check: &str) -> String {
    let detail = run.detail(check);
    let (_, ddl) = detail.split_once("create this table first: ").unwrap_or_else(|| panic!("no DDL in: {detail}"));
    ddl.to_string()
}

/// Makes the kit's two tables in `setup`'s empty SQLite HIS from the DDL
/// the kit prints for them, and returns that run.
fn create_kit_tables(setup: &mut Setup) -> Run {
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db"});
    drop(setup.his()); // An empty HIS file: without create_missing it must exist.
    let run = plugin_test(setup, &artifacts().plugin("sqlite"));
    let his = setup.his();
    his.execute_batch(&printed_ddl(&run, "upsert")).expect("the printed DDL runs");
    his.execute_batch(&printed_ddl(&run, "values table")).expect("the printed values DDL runs");
    run
}

/// A his-config.json, in its own folder under `setup`, whose `database`
/// is `database`: for `--unreachable-config`.
fn other_config(setup: &Setup, database: Value) -> PathBuf {
    let dir = setup.path("unreachable");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = setup.config.clone();
    config["database"] = database;
    let path = dir.join("his-config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// For the sqlite plugin, the nearest to a database that is not there:
/// SQLite has no server, so a file it cannot use. The HIS file exists, but
/// a directory stands where its rollback journal goes: the open succeeds
/// (SQLite reads nothing yet), then the first call that reads or writes
/// fails with SQLITE_IOERR or SQLITE_CANTOPEN, which the plugin classifies
/// as a retryable connection error (plugins/sqlite/src/errors.rs). File
/// permissions would do the same, but not for root, as the tests may run.
fn unusable_sqlite_config(setup: &Setup) -> PathBuf {
    let config = other_config(setup, json!({"type": "sqlite", "path": "his.db"}));
    let dir = config.parent().unwrap();
    rusqlite::Connection::open(dir.join("his.db")).unwrap().execute_batch("CREATE TABLE t (k)").unwrap();
    std::fs::create_dir(dir.join("his.db-journal")).unwrap();
    config
}

/// Reads back what the kit's write actions left in an SQLite HIS, where
/// the kit itself cannot: (id, label, note) of ids 4 and 10–19.
fn action_rows(setup: &Setup, table: &str) -> Vec<Vec<Value>> {
    query(
        &setup.his(),
        &format!("SELECT id, label, note FROM {table} WHERE id = 4 OR id BETWEEN 10 AND 19 ORDER BY id"),
    )
}

/// The rows the sqlite plugin leaves for ids 4 and 10–17: each check's
/// action, then the kit's probing insert (label `probe`) where there was
/// no row. Id 10 was inserted, updated, soft-deleted (note) and partially
/// updated (label): the partial row left its note alone. 12 (update, or
/// error) never got a row; 17 was inserted from a partial row without a
/// label.
fn expected_action_rows() -> Vec<Vec<Value>> {
    vec![
        vec![json!(4), json!("reopened"), Value::Null],
        vec![json!(10), json!("partial"), json!("soft-deleted")],
        vec![json!(11), json!("probe"), Value::Null],
        vec![json!(13), json!("probe"), Value::Null],
        vec![json!(14), json!("inserted by update"), Value::Null],
        vec![json!(15), json!("probe"), Value::Null],
        vec![json!(16), json!("probe"), Value::Null],
        vec![json!(17), Value::Null, json!("partial")],
    ]
}

#[test]
fn sqlite_passes_every_check_and_keeps_one_row_per_key() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    run.assert_passed_but(&["connection loss"]);
    // With create_missing the plugin creates the "unknown" table, and the kit says so.
    assert!(run.detail("unknown table").starts_with("the plugin created"), "{}", run.stdout());
    assert!(run.detail("describe_table").contains("id is a unique key"), "{}", run.stdout());
    assert!(run.detail("row index").starts_with("each of the 12 DATA errors above named its row"), "{}", run.stdout());
    assert!(run.detail(WRITE_ALL).contains("naming row 3 (across the batches)"), "{}", run.stdout());
    // The plugin stores timestamps as sent, in TEXT: C, A's instant, is another key, and that is right.
    assert!(run.detail("offset timestamp").contains("keeps each timestamp as written"), "{}", run.stdout());
    assert!(run.detail("connection loss").contains("--unreachable-config"), "{}", run.stdout());

    let his = setup.his();
    assert_eq!(
        query(&his, "SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        vec![vec![json!(1), json!("second")], vec![json!(2), json!("first")]],
        "insert then upsert: one row per key, with the second values"
    );
    assert_eq!(
        query(
            &his,
            "SELECT id, flag, quantity, amount, ratio, label, happened_at, born_on, hex(photo), note \
             FROM buktor_conformance WHERE id = 3"
        ),
        vec![vec![
            json!(3),
            json!(1),
            json!(-42),
            json!("1500.75"),
            json!(0.25),
            json!("Zoë's \"quoted\" text; DROP TABLE x"),
            json!("2025-03-03T09:00:00"),
            json!("1990-05-17"),
            json!("00017FFF"),
            Value::Null
        ]]
    );
    assert_eq!(
        query(&his, "SELECT COUNT(*), MIN(id), MAX(id) FROM buktor_conformance WHERE id >= 100000"),
        vec![vec![json!(BIG_BATCH_ROWS), json!(BIG_BATCH_FIRST_KEY), json!(BIG_BATCH_FIRST_KEY + BIG_BATCH_ROWS - 1)]]
    );
    assert_eq!(action_rows(&setup, "buktor_conformance"), expected_action_rows());
    assert_eq!(query(&his, "SELECT COUNT(*) FROM buktor_conformance"), vec![vec![json!(BIG_BATCH_ROWS + 4 + 7)]]);
    // The values table: every probe that was a new key, as sent.
    assert_eq!(
        query(&his, "SELECT kind, happened_at, amount, born_on FROM buktor_conformance_values ORDER BY kind, label"),
        [
            ["date", "2000-01-01T00:00:00", "0", "1990-05-16"],
            ["date", "2000-01-01T00:00:00", "0", "1990-05-17"],
            ["decimal", "2000-01-01T00:00:00", "123456789012345678901234567890123456.78", "2000-01-01"],
            ["decimal", "2000-01-01T00:00:00", "123456789012345678901234567890123456.79", "2000-01-01"],
            ["kit", "2000-01-01T00:00:00", "0", "2000-01-01"],
            ["timestamp", "2025-03-03T07:00:00Z", "0", "2000-01-01"],
            ["timestamp", "2025-03-03T09:00:00+02:00", "0", "2000-01-01"],
            ["timestamp", "2025-03-03T09:00:00Z", "0", "2000-01-01"],
            ["timestamp", "2025-03-03T11:00:00Z", "0", "2000-01-01"],
        ]
        .map(|row| row.map(Value::from).to_vec())
    );
}

#[test]
fn sqlite_reports_a_file_it_cannot_use_as_retryable() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let unreachable = unusable_sqlite_config(&setup);
    let run = plugin_test_with(
        &setup,
        &artifacts().plugin("sqlite"),
        &["--unreachable-config", unreachable.to_str().unwrap()],
    );
    run.assert_passed_but(&[]);
    let detail = run.detail("connection loss");
    assert!(
        detail.contains("succeeded, then")
            && detail.contains("failed as retryable, as a lost connection must")
            && detail.contains("connection error (retryable)"),
        "{}",
        run.stdout()
    );
}

#[test]
fn the_template_plugin_passes_what_it_can_and_its_last_line_per_key_wins() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let run = plugin_test(&setup, &artifacts().plugin("template"));
    // A log refuses nothing: every check that observes through a refusal says so.
    run.assert_passed_but(&NOT_VERIFIED_WITHOUT_KEYS);
    assert!(run.detail("insert").contains("the plugin describes no tables"), "{}", run.stdout());
    assert!(run.detail("describe_table").starts_with("None for buktor_conformance"), "{}", run.stdout());

    // Read it as the template says a reader must: the last line per (table, key).
    let text = std::fs::read_to_string(setup.path("rows.jsonl")).expect("the rows file");
    assert!(text.ends_with('\n'), "every line is complete");
    let mut rows: HashMap<(String, String), Value> = HashMap::new();
    let mut lines_for_key_1 = 0;
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let table = line["table"].as_str().expect("a table").to_string();
        if table == "buktor_conformance" && line["key"] == json!({"id": 1}) {
            lines_for_key_1 += 1;
        }
        rows.insert((table, line["key"].to_string()), line["row"].clone());
    }
    let row = |id: i64| &rows[&("buktor_conformance".to_string(), json!({"id": id}).to_string())];
    assert_eq!(lines_for_key_1, 2, "an upsert appends: insert, then upsert");
    assert_eq!(*row(1), json!({"id": 1, "label": "second"}), "the last line per key has the second values");
    assert_eq!(*row(2), json!({"id": 2, "label": "first"}));
    assert_eq!(
        *row(3),
        json!({"id": 3, "flag": true, "quantity": -42, "amount": "1500.75", "ratio": 0.25,
               "label": "Zoë's \"quoted\" text; DROP TABLE x", "happened_at": "2025-03-03T09:00:00",
               "born_on": "1990-05-17", "photo": "00017fff", "note": null})
    );
    assert_eq!(*row(BIG_BATCH_FIRST_KEY + BIG_BATCH_ROWS - 1), json!({"id": 134_999, "label": "row 34999"}));
    assert_eq!(*row(17), json!({"id": 17, "note": "partial"}), "a partial row's line has only the columns it carries");
    let big = rows.keys().filter(|(table, key)| table == "buktor_conformance" && key.len() == 13).count();
    assert_eq!(big as i64, BIG_BATCH_ROWS, "one key per row of the large batch ({{\"id\":1xxxxx}})");
}

#[test]
fn json_output_lists_every_check_with_its_outcome() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let (output, outcomes) = plugin_test_json(&setup, &artifacts().plugin("template"), &[]);
    assert!(output.status.success(), "not verified is not a failure");
    let names: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, CHECKS);
    assert_eq!(named(&outcomes, "not_verified"), NOT_VERIFIED_WITHOUT_KEYS);
    assert_eq!(named(&outcomes, "pass").len() + NOT_VERIFIED_WITHOUT_KEYS.len(), CHECKS.len());
}

/// A HIS without the kit's tables: the first write to each fails with the
/// DDL to create it, the exit code says so; created from that DDL, every
/// check passes, and the unknown table is now refused as a permanent schema
/// error.
#[test]
fn missing_tables_fail_with_their_ddl_and_pass_once_created() {
    let mut setup = Setup::new();
    let run = create_kit_tables(&mut setup);
    let stdout = run.stdout();
    assert!(!run.output.status.success(), "{stdout}");
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("error: 18 conformance check(s) failed"), "{stderr}");
    let not_run = ["upsert by key", "value types", "large batch"].into_iter().chain(CHECKS[8..16].iter().copied());
    let expected: Vec<&str> = ["upsert"]
        .into_iter()
        .chain(not_run)
        .chain(["describe_table", "values table", "offset timestamp", "38-digit decimal", "date", WRITE_ALL])
        .collect();
    assert_eq!(run.with_status("FAIL"), expected, "{stdout}");
    assert!(
        run.detail("upsert").starts_with("schema error (permanent): no such table: buktor_conformance"),
        "{stdout}"
    );
    assert_eq!(run.detail("upsert by key"), "not run: the upsert failed");
    assert!(
        run.detail("values table").starts_with("an upsert into buktor_conformance_values failed: schema error"),
        "{stdout}"
    );
    assert!(run.detail("reopen").contains("(no write: the table could not be written"), "{stdout}");

    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    run.assert_passed_but(&["connection loss"]);
    assert!(
        run.detail("unknown table")
            .starts_with("refused as a permanent schema error: no such table: buktor_conformance_no_such_table"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        query(&setup.his(), "SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        vec![vec![json!(1), json!("second")], vec![json!(2), json!("first")]]
    );
    assert_eq!(action_rows(&setup, "buktor_conformance"), expected_action_rows());

    // A second run starts from the same state: the kit deletes what the first left.
    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    run.assert_passed_but(&["connection loss"]);
    assert_eq!(action_rows(&setup, "buktor_conformance"), expected_action_rows());
}

/// The broken fixture with no defect does everything right: every check
/// passes, connection loss too (its `unreachable` open is retryable).
#[test]
fn the_broken_fixture_without_a_defect_passes_every_check() {
    let mut setup = Setup::new();
    create_kit_tables(&mut setup);
    setup.config["database"] = json!({"type": "broken", "path": "his.db"});
    let unreachable = other_config(&setup, json!({"type": "broken", "path": "his.db", "unreachable": true}));
    let plugin = artifacts().plugin("broken");
    let run = plugin_test_with(&setup, &plugin, &["--unreachable-config", unreachable.to_str().unwrap()]);
    run.assert_passed_but(&[WRITE_ALL]);
    assert!(run.detail(WRITE_ALL).contains("writes_batches_together is false"), "{}", run.stdout());
    // It converts offsets: C, A's instant in UTC, collides with A.
    assert!(run.detail("offset timestamp").contains("collided with A: the offset was converted"), "{}", run.stdout());
    assert!(run.detail("connection loss").contains("opening a writer failed as retryable"), "{}", run.stdout());
}

/// Each defect of the broken fixture fails exactly the check made for it,
/// and the exit code says so.
#[test]
fn each_defect_fails_exactly_its_check() {
    let plugin = artifacts().plugin("broken");
    for (defect, check) in DEFECTS {
        let mut setup = Setup::new();
        create_kit_tables(&mut setup);
        setup.config["database"] = json!({"type": "broken", "path": "his.db", "defect": defect});
        let unreachable =
            other_config(&setup, json!({"type": "broken", "path": "his.db", "unreachable": true, "defect": defect}));
        let (output, outcomes) =
            plugin_test_json(&setup, &plugin, &["--unreachable-config", unreachable.to_str().unwrap()]);
        assert_eq!(named(&outcomes, "fail"), [check], "{defect}: {outcomes:?}");
        assert_eq!(named(&outcomes, "not_verified"), [WRITE_ALL], "{defect}: {outcomes:?}");
        assert_eq!(outcomes.len(), CHECKS.len(), "{defect}");
        assert!(!output.status.success(), "{defect}: the exit code says a check failed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error: 1 conformance check(s) failed"), "{defect}: {stderr}");
    }
}

/// Without `--unreachable-config`, the connection-loss check is not
/// verified, even for the defect it is made for: the kit did not see it.
#[test]
fn connection_loss_is_not_verified_without_an_unreachable_config() {
    let mut setup = Setup::new();
    create_kit_tables(&mut setup);
    setup.config["database"] = json!({"type": "broken", "path": "his.db", "defect": "connection_loss_permanent"});
    let (output, outcomes) = plugin_test_json(&setup, &artifacts().plugin("broken"), &[]);
    assert!(output.status.success(), "{outcomes:?}");
    assert_eq!(named(&outcomes, "not_verified"), [WRITE_ALL, "connection loss"]);
    assert_eq!(named(&outcomes, "fail"), Vec::<&str>::new());
}

#[test]
fn a_library_that_is_not_a_plugin_fails_to_load() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let run = plugin_test(&setup, &artifacts().plugin("not_a_plugin"));
    assert!(!run.output.status.success());
    let names: Vec<&str> = run.rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(names, ["config", "loads"], "{}", run.stdout());
    assert!(run.detail("loads").contains("is not a Buktor HIS plugin"), "{}", run.stdout());
    assert!(run.detail("loads").ends_with("; no other check ran"), "{}", run.stdout());
}

#[test]
fn mysql_passes_every_check_in_tables_made_from_the_printed_ddl() {
    let Some(server) = mysql::server("mysql_passes_every_check_in_tables_made_from_the_printed_ddl") else {
        return;
    };
    let db = server.database();
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    let plugin = artifacts().plugin("mysql");

    let run = plugin_test(&setup, &plugin);
    assert!(!run.output.status.success(), "{}", run.stdout());
    assert!(run.detail("upsert").starts_with("schema error (permanent)"), "{}", run.stdout());
    assert_eq!(run.detail("unknown table").split(':').next(), Some("refused as a permanent schema error"));
    db.execute(&printed_ddl(&run, "upsert"));
    db.execute(&printed_ddl(&run, "values table"));

    let run = plugin_test(&setup, &plugin);
    run.assert_passed_but(&["connection loss"]);
    assert!(run.detail("unknown table").starts_with("refused as a permanent schema error"), "{}", run.stdout());
    assert!(run.detail("describe_table").contains("id is a unique key"), "{}", run.stdout());
    // DATETIME holds no offset: the plugin converts, so C, A's instant, collides with A.
    assert!(run.detail("offset timestamp").contains("the offset was converted"), "{}", run.stdout());

    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        db.rows("SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        vec![vec![some("1"), some("second")], vec![some("2"), some("first")]],
        "insert then upsert: one row per key, with the second values"
    );
    assert_eq!(
        db.rows(
            "SELECT id, flag, quantity, CAST(amount AS CHAR), CAST(ratio AS CHAR), label, \
             CAST(happened_at AS CHAR), CAST(born_on AS CHAR), HEX(photo), note FROM buktor_conformance WHERE id = 3"
        ),
        vec![vec![
            some("3"),
            some("1"),
            some("-42"),
            some("1500.75"),
            some("0.25"),
            some("Zoë's \"quoted\" text; DROP TABLE x"),
            some("2025-03-03 09:00:00.000"),
            some("1990-05-17"),
            some("00017FFF"),
            None
        ]]
    );
    assert_eq!(
        db.rows("SELECT id, label, note FROM buktor_conformance WHERE id IN (10, 17) ORDER BY id"),
        vec![vec![some("10"), some("partial"), some("soft-deleted")], vec![some("17"), None, some("partial")]],
        "the partial rows left their absent columns alone"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance WHERE id >= 100000"), BIG_BATCH_ROWS);
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance"), BIG_BATCH_ROWS + 4 + 7);
}

#[test]
fn table_names_the_tables_the_kit_writes_to_and_must_be_a_plain_name() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let run = plugin_test_with(&setup, &artifacts().plugin("sqlite"), &["--table", "his_kit_check"]);
    run.assert_passed_but(&["connection loss"]);
    assert!(run.detail("upsert").ends_with("upserted into his_kit_check"), "{}", run.stdout());
    assert!(run.detail("values table").starts_with("his_kit_check_values takes the kit's rows"), "{}", run.stdout());
    let his = setup.his();
    assert_eq!(query(&his, "SELECT label FROM his_kit_check WHERE id = 1"), vec![vec![json!("second")]]);
    assert_eq!(action_rows(&setup, "his_kit_check"), expected_action_rows());
    assert_eq!(query(&his, "SELECT COUNT(*) FROM his_kit_check_values"), vec![vec![json!(9)]]);
    assert_eq!(
        query(&his, "SELECT name FROM sqlite_master WHERE name LIKE 'buktor_conformance%'"),
        Vec::<Vec<Value>>::new(),
        "nothing written to the default tables"
    );

    let run = plugin_test_with(&setup, &artifacts().plugin("sqlite"), &["--table", "x; DROP TABLE his_kit_check"]);
    assert!(!run.output.status.success());
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("--table") && stderr.contains("plain name"), "{stderr}");
    assert!(run.rows.is_empty(), "no check ran: {}", run.stdout());
}
