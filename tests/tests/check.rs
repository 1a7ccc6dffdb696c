//! `buktor-middleware check`: the real binary, the real plugins, against a
//! SQLite HIS and (with `HIS_TEST_MYSQL_URL`) a real MySQL/MariaDB server.
//! Each deliberate mistake is asserted as its finding: severity and JSON
//! path, in the order `check` looks.

use std::{path::Path, process::Output};

use buktor_tests::{Setup, artifacts, mysql};
use serde_json::{Value, json};

/// `check --config config [--json]`.
fn run_check(config: &Path, json: bool) -> Output {
    let mut command = std::process::Command::new(&artifacts().binary);
    command.arg("check").arg("--config").arg(config);
    if json {
        command.arg("--json");
    }
    command.output().expect("run buktor-middleware check")
}

/// The `--json` report, and whether the exit status was success.
fn json_report(setup: &Setup) -> (bool, Value) {
    let output = run_check(&setup.write_config(), true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("check --json printed no JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    (output.status.success(), report)
}

/// The findings as (severity, path).
fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["severity"].as_str().unwrap().to_string(), f["path"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(s, p)| (s.to_string(), p.to_string())).collect()
}

/// The message of the finding at `path` (the first one there).
fn message<'a>(report: &'a Value, path: &str) -> &'a str {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .and_then(|f| f["message"].as_str())
        .unwrap_or_else(|| panic!("no finding at {path}: {report:#}"))
}

/// Every finding says what to do.
fn assert_every_finding_has_a_fix(report: &Value) {
    for finding in report["findings"].as_array().unwrap() {
        assert!(finding["fix"].as_str().is_some_and(|fix| fix.len() > 10), "{finding:#}");
    }
}

fn library(name: &str) -> String {
    format!("{}his_{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A setup writing to an existing SQLite HIS with these tables, as a real
/// HIS is: nothing is created.
fn sqlite_his(tables: &str) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.his().execute_batch(tables).unwrap();
    setup
}

/// The seed's tables, with what real HIS tables also have: a rowid key, a
/// unique index that is not the primary key, a NOT NULL column with a
/// default, a column without a declared type.
const SQLITE_SEED_TABLES: &str = "
    CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT);
    CREATE TABLE HIS_schedules (HIS_schedule_id INTEGER PRIMARY KEY, HIS_new_time, HIS_updated_at DATETIME);
    CREATE TABLE HIS_payments (row INTEGER PRIMARY KEY, HIS_payment_id TEXT NOT NULL UNIQUE, HIS_amount DECIMAL(12,2),
                               HIS_payment_status TEXT, HIS_paid_at TEXT,
                               HIS_recorded TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);";

#[test]
fn a_good_sqlite_mapping_passes_with_a_short_summary() {
    let setup = sqlite_his(SQLITE_SEED_TABLES);
    let config = setup.write_config();
    let output = run_check(&config, false);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout,
        format!("ok: config {}, plugin sqlite {VERSION}, HIS reachable, 3 mappings checked\n", config.display())
    );

    let (ok, report) = json_report(&setup);
    assert!(ok);
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["plugin"]["name"], json!("sqlite"));
    assert_eq!(report["plugin"]["version"], json!(VERSION));
    assert_eq!((report["his_reachable"].clone(), report["mappings_checked"].clone()), (json!(true), json!(3)));
}

#[test]
fn a_wrong_sqlite_mapping_gives_exactly_its_findings() {
    let mut setup = sqlite_his(
        "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_STATUS TEXT, HIS_created_at TEXT);
         CREATE TABLE HIS_schedules (HIS_schedule_id INTEGER PRIMARY KEY, HIS_new_time TEXT, HIS_updated_at TEXT);
         CREATE TABLE HIS_payments (HIS_payment_id INTEGER PRIMARY KEY, HIS_amount NUMERIC, HIS_payment_status TEXT,
                                    HIS_paid_at INTEGER, HIS_currency TEXT NOT NULL);
         CREATE TABLE HIS_visits (id INTEGER PRIMARY KEY, HIS_visit_id INTEGER NOT NULL, HIS_note TEXT);",
    );
    wrong_mapping(&mut setup);
    let (ok, report) = json_report(&setup);
    assert!(!ok, "errors exit non-zero: {report:#}");
    assert_wrong_mapping_findings(&report, "INTEGER");

    // The same as text: one line per finding, with its fix, then the summary.
    let output = run_check(&setup.write_config(), false);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    for (line, (severity, path)) in lines.iter().zip(findings(&report)) {
        assert!(line.starts_with(&format!("{severity} ")), "{line}");
        assert!(line.contains(&format!(" {path}: ")), "{line}");
        assert!(line.contains(" — fix: "), "{line}");
    }
    assert!(lines[5].starts_with("failed: 4 errors, 1 warning; config "), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("error: check found 4 error(s)"));
}

/// To the seed's mapping: a column the table lacks, a table that does not
/// exist, a table without a unique key on the mapping's key. (The payment
/// table has a NOT NULL column without default and an integer `paid_at`.)
fn wrong_mapping(setup: &mut Setup) {
    setup.config["mapping"]["appointment"]["fields"]["room"] = json!("HIS_room");
    setup.config["mapping"]["refund"] = json!({"table": "HIS_refunds", "fields": {"refund_id": "HIS_refund_id"}});
    setup.config["mapping"]["visit"] =
        json!({"table": "HIS_visits", "fields": {"visit_id": "HIS_visit_id", "note": "HIS_note"}});
}

/// What [`wrong_mapping`] gives, the same for every database.
fn assert_wrong_mapping_findings(report: &Value, paid_at_type: &str) {
    assert_eq!(
        findings(report),
        pairs(&[
            ("error", "mapping.appointment.fields.room"),
            ("warning", "mapping.payment.fields.paid_at"),
            ("error", "mapping.payment.fields"),
            ("error", "mapping.refund.table"),
            ("error", "mapping.visit.key"),
        ]),
        "{report:#}"
    );
    assert!(
        message(report, "mapping.appointment.fields.room").contains("column HIS_room is not in table HIS_appointments")
    );
    assert!(
        message(report, "mapping.payment.fields.paid_at").contains(&format!("column HIS_paid_at is {paid_at_type}"))
    );
    assert!(
        message(report, "mapping.payment.fields")
            .contains("column HIS_currency of HIS_payments is NOT NULL and has no default")
    );
    assert!(message(report, "mapping.refund.table").contains("table HIS_refunds does not exist"));
    assert!(
        message(report, "mapping.visit.key").contains("no primary key or unique index on (HIS_visit_id) in HIS_visits")
    );
    assert_every_finding_has_a_fix(report);
    assert_eq!(
        (report["ok"].clone(), report["errors"].clone(), report["warnings"].clone()),
        (json!(false), json!(4), json!(1))
    );
    assert_eq!(report["mappings_checked"], json!(5));
}

#[test]
fn a_config_that_does_not_parse_is_one_finding_with_its_json_path() {
    let mut setup = Setup::new();
    setup.config["mapping"]["payment"]["fields"]["amount"] = json!(5);
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "mapping.payment.fields.amount")]), "{report:#}");
    assert!(message(&report, "mapping.payment.fields.amount").contains("invalid type: integer `5`, expected a string"));
    assert_eq!((report["config_ok"].clone(), report["plugin"].clone()), (json!(false), Value::Null));
    assert_every_finding_has_a_fix(&report);

    let path = setup.write_config();
    std::fs::write(&path, "{\"database\": {\"type\": \"sqlite\",}}").unwrap();
    let output = run_check(&path, true);
    assert!(!output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(findings(&report), pairs(&[("error", "(file)")]));
    assert!(message(&report, "(file)").contains("is not valid JSON: trailing comma at line 1 column 32"), "{report:#}");
}

#[test]
fn two_mappings_of_one_table_with_other_key_columns_are_one_finding_naming_both() {
    let mut setup = Setup::new();
    setup.config["mapping"]["appointment_moved"] = json!({
        "table": "HIS_appointments",
        "fields": {"appointment_id": "HIS_appointment_id", "room": "HIS_room"},
        "key": ["appointment_id", "room"]
    });
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "mapping.appointment_moved.key")]), "{report:#}");
    let message = message(&report, "mapping.appointment_moved.key");
    assert!(
        message.starts_with(
            "keys the table HIS_appointments by [HIS_appointment_id, HIS_room], but mapping.appointment writes that \
             table too, keyed by [HIS_appointment_id] (no key set: the first mapped field ending in _id). Every \
             mapping of one table must use the same key columns"
        ),
        "{message}"
    );
    assert!(message.ends_with("set mapping.appointment_moved.key to the field(s) mapped to HIS_appointment_id"));
    assert_every_finding_has_a_fix(&report);
}

#[test]
fn a_secret_in_a_config_that_does_not_parse_is_not_printed() {
    let mut setup = Setup::new();
    // A token written as a number: serde's message would quote it.
    setup.config["server"]["admin_token"] = json!(98765432109876543_u64);
    for json in [true, false] {
        let output = run_check(&setup.write_config(), json);
        assert!(!output.status.success());
        let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(all.contains("server.admin_token"), "{all}");
        assert!(!all.contains("98765432109876543"), "the token is printed:\n{all}");
    }
}

#[test]
fn a_missing_plugin_stops_the_check() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "acme_his"});
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "database.type")]), "only this: {report:#}");
    let text = message(&report, "database.type");
    assert!(text.contains("plugin for database.type \"acme_his\" not found"), "{text}");
    assert!(text.contains(&library("acme_his")), "{text}");
    assert_eq!((report["config_ok"].clone(), report["plugin"].clone()), (json!(true), Value::Null));
    assert_every_finding_has_a_fix(&report);
}

#[test]
fn a_plugin_of_another_plugin_api_version_stops_the_check() {
    let mut setup = Setup::new();
    std::fs::create_dir(setup.path("plugins")).unwrap();
    std::fs::copy(artifacts().plugin("wrong_version"), setup.path("plugins").join(library("wrong_version"))).unwrap();
    setup.config["plugins"] = json!({"dir": "plugins"});
    setup.config["database"] = json!({"type": "wrong_version"});
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "database.type")]), "{report:#}");
    let text = message(&report, "database.type");
    assert!(text.contains("was built against plugin-api 2.0.0"), "{text}");
    // Today's version, whichever it is: this test is about the major one.
    let host = format!("this buktor-middleware uses plugin-api {}", buktor_middleware::plugins::api::ABI_VERSION);
    assert!(text.contains(&host), "{text}");
}

#[test]
fn an_unreachable_sqlite_his_stops_the_check() {
    let mut setup = Setup::new();
    setup.config["database"]["path"] = json!("missing-folder/his.db");
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "database.path")]), "mappings not checked: {report:#}");
    assert!(message(&report, "database.path").contains("cannot open SQLite HIS database"), "{report:#}");
    assert_eq!((report["his_reachable"].clone(), report["mappings_checked"].clone()), (json!(false), json!(0)));
    assert!(report["summary"].as_str().unwrap().contains("the HIS is not reachable"), "{report:#}");

    // Without create_missing a missing file is not created by check either.
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": false});
    let (ok, report) = json_report(&setup);
    assert!(!ok);
    assert_eq!(findings(&report), pairs(&[("error", "database.path")]), "{report:#}");
    assert!(!setup.path("his.db").exists());
}

/// The seed's tables in MySQL, with an AUTO_INCREMENT row id, a unique key
/// that is not the primary key, and a NOT NULL column with a default.
const MYSQL_SEED_TABLES: &str = "
    CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status VARCHAR(32), HIS_created_at DATETIME(3));
    CREATE TABLE HIS_schedules (HIS_schedule_id BIGINT PRIMARY KEY, HIS_new_time DATETIME, HIS_updated_at DATETIME(3));
    CREATE TABLE HIS_payments (row_id BIGINT AUTO_INCREMENT PRIMARY KEY, HIS_payment_id BIGINT NOT NULL UNIQUE,
                               HIS_amount DECIMAL(12,2), HIS_payment_status VARCHAR(32), HIS_paid_at DATETIME,
                               HIS_recorded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);";

fn mysql_setup(db: &mysql::Database) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup
}

#[test]
fn a_good_mysql_mapping_passes() {
    let Some(server) = mysql::server("a_good_mysql_mapping_passes") else { return };
    let db = server.database();
    db.execute(MYSQL_SEED_TABLES);
    let (ok, report) = json_report(&mysql_setup(&db));
    assert!(ok, "{report:#}");
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["plugin"]["name"], json!("mysql"));
    assert_eq!(report["mappings_checked"], json!(3));
    assert!(report["summary"].as_str().unwrap().starts_with("ok: config "), "{report:#}");
}

#[test]
fn a_wrong_mysql_mapping_gives_exactly_its_findings() {
    let Some(server) = mysql::server("a_wrong_mysql_mapping_gives_exactly_its_findings") else { return };
    let db = server.database();
    db.execute(
        "CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_STATUS VARCHAR(32), HIS_created_at DATETIME(3));
         CREATE TABLE HIS_schedules (HIS_schedule_id BIGINT PRIMARY KEY, HIS_new_time DATETIME, HIS_updated_at DATETIME(3));
         CREATE TABLE HIS_payments (HIS_payment_id BIGINT PRIMARY KEY, HIS_amount DECIMAL(12,2),
                                    HIS_payment_status VARCHAR(32), HIS_paid_at BIGINT, HIS_currency CHAR(3) NOT NULL);
         CREATE TABLE HIS_visits (id BIGINT AUTO_INCREMENT PRIMARY KEY, HIS_visit_id BIGINT NOT NULL, HIS_note TEXT,
                                  INDEX (HIS_visit_id));",
    );
    let mut setup = mysql_setup(&db);
    wrong_mapping(&mut setup);
    let (ok, report) = json_report(&setup);
    assert!(!ok, "{report:#}");
    assert_wrong_mapping_findings(&report, "bigint");
}

#[test]
fn a_wrong_mysql_password_is_a_finding_without_the_password() {
    let Some(server) = mysql::server("a_wrong_mysql_password_is_a_finding_without_the_password") else { return };
    let db = server.database();
    let mut setup = mysql_setup(&db);
    let password = "Wr0ng-Passw0rd-4711";
    setup.config["database"]["password"] = json!(password);
    for json in [true, false] {
        let output = run_check(&setup.write_config(), json);
        assert!(!output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stdout.contains(password) && !stderr.contains(password), "the password is printed:\n{stdout}{stderr}");
        if json {
            let report: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(findings(&report), pairs(&[("error", "database")]), "{report:#}");
            assert!(message(&report, "database").contains("Access denied"), "{report:#}");
            assert!(
                report["fix"].is_null() && report["findings"][0]["fix"].as_str().unwrap().contains("database.password")
            );
            assert_eq!(report["his_reachable"], json!(false));
        }
    }
}

#[test]
fn each_mapping_is_worked_through_the_last_journaled_event_of_its_type() {
    let mut setup = Setup::new();
    setup.config["mapping"] = json!({
        "appointment": [
            {"table": "HIS_appointments", "key": ["HIS_appointment_id"], "action": "soft_delete",
             "when": {"field": "status", "equals": "cancelled"},
             "columns": {"HIS_appointment_id": "appointment_id", "HIS_status": {"const": "X"}}},
            {"table": "HIS_appointments", "key": ["HIS_appointment_id"], "when": {"field": "room", "exists": true},
             "columns": {"HIS_appointment_id": "appointment_id",
                         "HIS_status": {"from": "status", "transforms": [{"map": {"confirmed": "C"}}]}}}],
        "payment": {"table": "HIS_payments", "fields": {"payment_id": "HIS_payment_id", "status": "HIS_payment_status"}}
    });
    // Two events journaled (and written) by the middleware: the last
    // appointment carries no `room`.
    let middleware = setup.start();
    for body in [
        r#"{"event_type": "appointment", "appointment_id": 1, "status": "confirmed", "room": "A"}"#,
        r#"{"event_type": "appointment", "appointment_id": 2, "status": "confirmed"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200);
    }
    // The first creates the table (create_missing); the second writes nothing.
    buktor_tests::wait_for(std::time::Duration::from_secs(30), "both events settled", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(2)]]).then_some(())
    });
    drop(middleware);

    let (ok, report) = json_report(&setup);
    assert!(ok, "warnings only: {report:#}");
    assert_eq!(
        findings(&report),
        pairs(&[("warning", "mapping.appointment[1].when"), ("warning", "mapping.payment.table")]),
        "{report:#}"
    );
    assert!(message(&report, "mapping.appointment[1].when").contains("\"room\""), "{report:#}");
    assert_every_finding_has_a_fix(&report);
    let examples = report["examples"].as_array().expect("examples");
    assert_eq!(examples.len(), 1, "no payment was journaled: {report:#}");
    assert_eq!(examples[0]["event_type"], "appointment");
    let targets = examples[0]["dry_run"]["targets"].as_array().unwrap();
    assert_eq!(targets.iter().map(|t| t["applies"].as_bool().unwrap()).collect::<Vec<_>>(), [false, false]);
    assert_eq!(examples[0]["dry_run"]["row_key"], r#"["his_appointments","2"]"#);

    // The text report shows the example after the findings.
    let output = run_check(&setup.write_config(), false);
    let text = String::from_utf8_lossy(&output.stdout);
    let example = text.find("example: the last journaled appointment event (id 2):").expect(&text);
    assert!(text[example..].contains("mapping.appointment[1] (skipped: when room exists does not hold)"), "{text}");

    // An event the mapping cannot write as it stands is a warning naming why.
    let middleware = setup.start();
    assert_eq!(
        middleware
            .post_event(r#"{"event_type": "appointment", "appointment_id": 3, "status": "tentative", "room": "B"}"#)
            .status,
        200
    );
    drop(middleware);
    let (_, report) = json_report(&setup);
    let why = message(&report, "mapping.appointment");
    assert!(
        why.contains(r#"field "status" = "tentative" (mapping.appointment[1].columns.HIS_status.transforms[0])"#),
        "{why}"
    );
}
