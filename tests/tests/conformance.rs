//! `buktor-middleware plugin-test`, the conformance kit, run as a plugin
//! author runs it: the real binary against real plugin libraries. The kit
//! cannot read rows back through the plugin ABI, so each test reads the
//! database itself to prove that insert-then-upsert left one row per key
//! with the second values.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output},
};

use buktor_tests::{Setup, artifacts, mysql, query};
use serde_json::{Value, json};

/// Every check the kit prints, in order.
const CHECKS: [&str; 13] = [
    "config",
    "loads",
    "open_writer",
    "ping",
    "insert",
    "upsert by key",
    "value types",
    "large batch",
    "unknown table",
    "describe_table",
    "ping after writes",
    "close",
    "panic guard",
];

/// Rows of the kit's large batch, and their first key.
const BIG_BATCH_ROWS: i64 = 35_000;
const BIG_BATCH_FIRST_KEY: i64 = 100_000;

/// The kit's outcome: exit status, and the table as (passed, name, detail).
struct Run {
    output: Output,
    rows: Vec<(bool, String, String)>,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn detail(&self, check: &str) -> &str {
        let row = self.rows.iter().find(|(_, name, _)| name == check);
        &row.unwrap_or_else(|| panic!("no {check} row:\n{}", self.stdout())).2
    }

    /// Exit status 0, and every check of the table printed and passed.
    fn assert_all_passed(&self) {
        let stdout = self.stdout();
        let stderr = String::from_utf8_lossy(&self.output.stderr);
        assert!(self.output.status.success(), "exit {}:\n{stdout}\n{stderr}", self.output.status);
        let names: Vec<&str> = self.rows.iter().map(|(_, name, _)| name.as_str()).collect();
        assert_eq!(names, CHECKS, "{stdout}");
        assert!(self.rows.iter().all(|(passed, _, _)| *passed), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
        assert!(stdout.ends_with("13 checks: 13 passed, 0 failed\n"), "{stdout}");
    }
}

/// Runs `plugin-test` with `setup`'s config against the plugin library `name`.
fn plugin_test(setup: &Setup, plugin: &Path) -> Run {
    plugin_test_with(setup, plugin, &[])
}

/// [`plugin_test`] with more arguments.
fn plugin_test_with(setup: &Setup, plugin: &Path, args: &[&str]) -> Run {
    let config = setup.write_config();
    let output = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(&config)
        .args(["plugin-test", "--plugin"])
        .arg(plugin)
        .args(args)
        .output()
        .expect("run buktor-middleware plugin-test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows = stdout
        .lines()
        .filter_map(|line| {
            let (status, rest) = line.split_once("  ")?;
            let passed = match status {
                "pass" => true,
                "FAIL" => false,
                _ => return None,
            };
            let (name, detail) = rest.split_once("  ").unwrap_or((rest, ""));
            Some((passed, name.to_string(), detail.trim_start().to_string()))
        })
        .collect();
    Run { output, rows }
}

/// The DDL the kit printed in its failed insert line.
fn printed_ddl(run: &Run) -> String {
    let detail = run.detail("insert");
    let (_, ddl) = detail.split_once("create this table first: ").unwrap_or_else(|| panic!("no DDL in: {detail}"));
    ddl.to_string()
}

#[test]
fn sqlite_passes_every_check_and_keeps_one_row_per_key() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    run.assert_all_passed();
    // With create_missing the plugin creates the "unknown" table, and the kit says so.
    assert!(run.detail("unknown table").starts_with("not applicable: the plugin created"), "{}", run.stdout());
    assert!(run.detail("describe_table").contains("id is a unique key"), "{}", run.stdout());

    let his = setup.his();
    assert_eq!(
        query(&his, "SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        vec![vec![json!(1), json!("second")], vec![json!(2), json!("first")]],
        "insert then upsert: one row per key, with the second values"
    );
    assert_eq!(
        query(
            &his,
            "SELECT id, flag, quantity, amount, ratio, label, happened_at, note FROM buktor_conformance WHERE id = 3"
        ),
        vec![vec![
            json!(3),
            json!(1),
            json!(-42),
            json!("1500.75"),
            json!(0.25),
            json!("Zoë's \"quoted\" text; DROP TABLE x"),
            json!("2025-03-03T09:00:00"),
            Value::Null
        ]]
    );
    assert_eq!(
        query(&his, "SELECT COUNT(*), MIN(id), MAX(id) FROM buktor_conformance WHERE id >= 100000"),
        vec![vec![json!(BIG_BATCH_ROWS), json!(BIG_BATCH_FIRST_KEY), json!(BIG_BATCH_FIRST_KEY + BIG_BATCH_ROWS - 1)]]
    );
    assert_eq!(query(&his, "SELECT COUNT(*) FROM buktor_conformance"), vec![vec![json!(BIG_BATCH_ROWS + 3)]]);
}

#[test]
fn the_template_plugin_passes_every_check_and_its_last_line_per_key_wins() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let run = plugin_test(&setup, &artifacts().plugin("template"));
    run.assert_all_passed();
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
               "label": "Zoë's \"quoted\" text; DROP TABLE x", "happened_at": "2025-03-03T09:00:00", "note": null})
    );
    assert_eq!(*row(BIG_BATCH_FIRST_KEY + BIG_BATCH_ROWS - 1), json!({"id": 134_999, "label": "row 34999"}));
    let kit_keys = rows.keys().filter(|(table, _)| table == "buktor_conformance").count();
    assert_eq!(kit_keys as i64, BIG_BATCH_ROWS + 3, "one row per key");
}

#[test]
fn json_output_lists_every_check() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let output = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(setup.write_config())
        .args(["plugin-test", "--json", "--plugin"])
        .arg(artifacts().plugin("template"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let results = report["results"].as_array().expect("results");
    let names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    assert!(results.iter().all(|r| r["passed"] == json!(true) && r["detail"].is_string()), "{report}");
}

/// A HIS without the kit's table: the insert fails with the DDL to create
/// it, the exit code says so; created from that DDL, every check passes,
/// and the unknown table is now refused as a permanent schema error.
#[test]
fn a_missing_table_fails_with_its_ddl_and_passes_once_created() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db"});
    drop(setup.his()); // An empty HIS file: without create_missing it must exist.
    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    let stdout = run.stdout();
    assert!(!run.output.status.success(), "{stdout}");
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("error: 5 conformance check(s) failed"), "{stderr}");
    let failed: Vec<&str> = run.rows.iter().filter(|r| !r.0).map(|r| r.1.as_str()).collect();
    assert_eq!(failed, ["insert", "upsert by key", "value types", "large batch", "describe_table"], "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("FAIL  insert ")), "{stdout}");
    assert!(
        run.detail("insert").starts_with("schema error (permanent): no such table: buktor_conformance"),
        "{stdout}"
    );
    assert_eq!(run.detail("upsert by key"), "not run: the insert failed");

    setup.his().execute_batch(&printed_ddl(&run)).expect("the printed DDL runs");
    let run = plugin_test(&setup, &artifacts().plugin("sqlite"));
    run.assert_all_passed();
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
fn mysql_passes_every_check_in_a_table_made_from_the_printed_ddl() {
    let Some(server) = mysql::server("mysql_passes_every_check_in_a_table_made_from_the_printed_ddl") else {
        return;
    };
    let db = server.database();
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    let plugin = artifacts().plugin("mysql");

    let run = plugin_test(&setup, &plugin);
    assert!(!run.output.status.success(), "{}", run.stdout());
    assert!(run.detail("insert").starts_with("schema error (permanent)"), "{}", run.stdout());
    assert_eq!(run.detail("unknown table").split(':').next(), Some("refused as a permanent schema error"));
    db.execute(&printed_ddl(&run));

    let run = plugin_test(&setup, &plugin);
    run.assert_all_passed();
    assert!(run.detail("unknown table").starts_with("refused as a permanent schema error"), "{}", run.stdout());
    assert!(run.detail("describe_table").contains("id is a unique key"), "{}", run.stdout());

    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        db.rows("SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        vec![vec![some("1"), some("second")], vec![some("2"), some("first")]],
        "insert then upsert: one row per key, with the second values"
    );
    assert_eq!(
        db.rows(
            "SELECT id, flag, quantity, CAST(amount AS CHAR), CAST(ratio AS CHAR), label, \
             CAST(happened_at AS CHAR), note FROM buktor_conformance WHERE id = 3"
        ),
        vec![vec![
            some("3"),
            some("1"),
            some("-42"),
            some("1500.75"),
            some("0.25"),
            some("Zoë's \"quoted\" text; DROP TABLE x"),
            some("2025-03-03 09:00:00.000"),
            None
        ]]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance WHERE id >= 100000"), BIG_BATCH_ROWS);
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance"), BIG_BATCH_ROWS + 3);
}

#[test]
fn table_names_the_table_the_kit_writes_to_and_must_be_a_plain_name() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let run = plugin_test_with(&setup, &artifacts().plugin("sqlite"), &["--table", "his_kit_check"]);
    run.assert_all_passed();
    assert!(run.detail("insert").ends_with("written to his_kit_check"), "{}", run.stdout());
    let his = setup.his();
    assert_eq!(query(&his, "SELECT label FROM his_kit_check WHERE id = 1"), vec![vec![json!("second")]]);
    assert_eq!(
        query(&his, "SELECT name FROM sqlite_master WHERE name LIKE 'buktor_conformance%'"),
        Vec::<Vec<Value>>::new(),
        "nothing written to the default table"
    );

    let run = plugin_test_with(&setup, &artifacts().plugin("sqlite"), &["--table", "x; DROP TABLE his_kit_check"]);
    assert!(!run.output.status.success());
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("--table") && stderr.contains("plain name"), "{stderr}");
    assert!(run.rows.is_empty(), "no check ran: {}", run.stdout());
}
