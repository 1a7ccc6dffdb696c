//! The MySQL writer through the real binary and the real plugin, against a
//! real MySQL/MariaDB server (`HIS_TEST_MYSQL_URL`; see tests/src/mysql.rs).

use std::time::Duration;

use buktor_tests::{Setup, audit, mysql, proxy::Proxy, query, wait_for};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

use buktor_tests::seed::MYSQL_TABLES as SEED_TABLES;

fn strings(row: &[&str]) -> Vec<Option<String>> {
    row.iter().map(|s| Some(s.to_string())).collect()
}

fn wait_for_count(db: &mysql::Database, sql: &str, expected: i64) {
    wait_for(PATIENCE, &format!("{sql} = {expected}"), || (db.count(sql) == expected).then_some(()));
}

/// A setup whose `database` is `db`, reached at `address` if given (a proxy).
fn setup_for(db: &mysql::Database, address: Option<&str>) -> Setup {
    let mut setup = Setup::new().with_admin_token();
    setup.config["database"] = address.map_or_else(|| db.config(), |address| db.config_via(address));
    setup
}

#[test]
fn the_seed_events_land_in_realistic_tables() {
    let Some(server) = mysql::server("the_seed_events_land_in_realistic_tables") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    let setup = setup_for(&db, None);
    let middleware = setup.start();
    wait_for(PATIENCE, "the plugin's connected line", || {
        let logs = middleware.logs();
        (logs.contains("connected to MariaDB") || logs.contains("connected to MySQL")).then_some(())
    });

    for body in [
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
        r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00"}"#,
        r#"{"event_type": "payment", "payment_id": 789, "amount": "1500", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200);
    }
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_payments", 1);
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_appointments", 1);
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_schedules", 1);

    // HIS_created_at is the receive time (UTC), as the journal recorded it.
    let received: Vec<String> = query(&setup.journal(), "SELECT received_at FROM events ORDER BY id")
        .iter()
        .map(|r| r[0].as_str().unwrap().replace('T', " ").trim_end_matches('Z').to_string())
        .collect();
    assert_eq!(
        db.rows("SELECT HIS_appointment_id, HIS_status, CAST(HIS_created_at AS CHAR) FROM HIS_appointments"),
        [strings(&["123", "confirmed", &received[0]])]
    );
    assert_eq!(
        db.rows("SELECT HIS_schedule_id, CAST(HIS_new_time AS CHAR), CAST(HIS_updated_at AS CHAR) FROM HIS_schedules"),
        [strings(&["456", "2025-03-03 09:00:00", &received[1]])]
    );
    assert_eq!(
        db.rows(
            "SELECT HIS_payment_id, CAST(HIS_amount AS CHAR), HIS_payment_status, CAST(HIS_paid_at AS CHAR) FROM HIS_payments"
        ),
        [strings(&["789", "1500.00", "paid", "2025-03-02 11:00:00"])]
    );
}

#[test]
fn an_update_by_key_changes_the_row_and_timestamps_follow_the_his_time_zone() {
    let Some(server) = mysql::server("an_update_by_key_changes_the_row_and_timestamps_follow_the_his_time_zone") else {
        return;
    };
    let db = server.database();
    db.execute(SEED_TABLES);
    let mut setup = setup_for(&db, None);
    setup.config["database"]["timezone"] = json!("+05:30");
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "payment", "payment_id": 1, "amount": "10.50", "status": "pending"}"#);
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_payments WHERE HIS_payment_status = 'pending'", 1);
    middleware.post_event(
        r#"{"event_type": "payment", "payment_id": 1, "amount": 1500.75, "status": "paid", "paid_at": "2025-03-02T11:00:00Z"}"#,
    );
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_payments WHERE HIS_payment_status = 'paid'", 1);
    assert_eq!(
        db.rows("SELECT HIS_payment_id, CAST(HIS_amount AS CHAR), CAST(HIS_paid_at AS CHAR) FROM HIS_payments"),
        // 11:00 UTC is 16:30 at +05:30; the decimal arrives exactly.
        [strings(&["1", "1500.75", "2025-03-02 16:30:00"])]
    );
}

/// The plugin keeps its connection between writes that come within 10 s,
/// and gives it back after a longer quiet spell: the write after one must
/// go through as any other (it once panicked, giving the connection back
/// outside the plugin's runtime).
#[test]
fn a_write_after_a_quiet_spell_goes_through() {
    let Some(server) = mysql::server("a_write_after_a_quiet_spell_goes_through") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    let setup = setup_for(&db, None);
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "payment", "payment_id": 1, "amount": "10.50", "status": "pending"}"#);
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_payments", 1);
    std::thread::sleep(Duration::from_secs(12));
    middleware.post_event(r#"{"event_type": "payment", "payment_id": 2, "amount": "20.00", "status": "paid"}"#);
    let delivered = [vec![json!("delivered")], vec![json!("delivered")]];
    wait_for(PATIENCE, "both events delivered", || {
        (query(&setup.journal(), "SELECT status FROM events ORDER BY id") == delivered).then_some(())
    });
    assert!(!middleware.logs().contains("panicked"), "{}", middleware.logs());
}

#[test]
fn a_burst_of_ten_thousand_events_arrives_completely() {
    let Some(server) = mysql::server("a_burst_of_ten_thousand_events_arrives_completely") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    // Every write to HIS_payments, counted.
    db.execute(
        "CREATE TABLE writes (payment_id BIGINT);
         CREATE TRIGGER count_inserts AFTER INSERT ON HIS_payments FOR EACH ROW INSERT INTO writes VALUES (NEW.HIS_payment_id);
         CREATE TRIGGER count_updates AFTER UPDATE ON HIS_payments FOR EACH ROW INSERT INTO writes VALUES (NEW.HIS_payment_id);",
    );
    let setup = setup_for(&db, None);
    let middleware = setup.start();
    let mut ids = middleware.post_concurrently(8, 10_000, |id| {
        json!({"event_type": "payment", "payment_id": id, "amount": format!("{id}.25"), "status": "paid"}).to_string()
    });
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "each answer names its own journal id");
    wait_for(Duration::from_secs(120), "10,000 rows", || {
        (db.count("SELECT COUNT(*) FROM HIS_payments") == 10_000).then_some(())
    });
    // Sum of id + 0.25 over 0..10000, exactly: 49,995,000 + 2,500.
    assert_eq!(db.rows("SELECT CAST(SUM(HIS_amount) AS CHAR) FROM HIS_payments"), [strings(&["49997500.00"])]);
    // Nothing crashed or was cut: each event was written once, no batch twice.
    assert_eq!(db.count("SELECT COUNT(*) FROM writes"), 10_000, "one write per event");
    assert_eq!(
        db.rows("SELECT CAST(HIS_amount AS CHAR) FROM HIS_payments WHERE HIS_payment_id = 9999"),
        [strings(&["9999.25"])]
    );
    // The last pass's outcomes may still be on their way into the journal.
    wait_for(PATIENCE, "10,000 events marked delivered", || {
        let delivered = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (delivered == [vec![json!(10_000)]]).then_some(())
    });
}

#[test]
fn events_wait_while_mariadb_is_unreachable_and_arrive_once_it_is_back() {
    let Some(server) = mysql::server("events_wait_while_mariadb_is_unreachable_and_arrive_once_it_is_back") else {
        return;
    };
    let db = server.database();
    // The appointments table, and every write to it in `applied`.
    db.execute(audit::MYSQL);
    let proxy = Proxy::start(&server.address());
    proxy.cut();
    let setup = setup_for(&db, Some(&proxy.address));

    // Unreachable at startup: the middleware starts anyway, journals every
    // event, and says on /ready that the HIS does not answer.
    let middleware = setup.start();
    assert!(middleware.logs().contains("not reachable yet"), "{}", middleware.logs());
    for i in 0..50 {
        let body = json!({"event_type": "appointment", "appointment_id": i, "status": "booked"});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    assert_eq!(setup.journal_statuses(), [vec![json!("pending"), json!(50)]], "every event waits in the journal");
    assert_his_unreachable_on_ready(&middleware);
    proxy.restore();
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_appointments", 50);
    // Recorded as delivered before the next cut, so that nothing of theirs
    // may rightly be written again.
    wait_for(PATIENCE, "the 50 recorded as delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(50)]]).then_some(())
    });
    assert_eq!(middleware.request("GET", "/ready", &[], b"").status, 200);

    // Unreachable during a run: a lost connection, then retries.
    proxy.cut();
    for i in 50..100 {
        let body = json!({"event_type": "appointment", "appointment_id": i, "status": "booked"});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    wait_for(PATIENCE, "a failed write while cut", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'pending' AND attempts > 0");
        (rows[0][0].as_i64().unwrap_or(0) > 0).then_some(())
    });
    assert_his_unreachable_on_ready(&middleware);
    proxy.restore();
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_appointments", 100);
    // The retries after the outage wrote only the events still waiting:
    // those delivered before it were written once, never again.
    let again = db.rows("SELECT k, COUNT(*) FROM applied WHERE k < 50 GROUP BY k HAVING COUNT(*) > 1");
    assert_eq!(db.count("SELECT COUNT(*) FROM applied WHERE k < 50"), 50, "written again: {again:?}");
    assert!(middleware.logs().contains("the HIS is not reachable ("), "one line when it goes:\n{}", middleware.logs());
    // Logged once the pass that wrote the rows has returned: shortly after
    // they are visible, not before.
    wait_for(PATIENCE, "one line when it is back", || {
        middleware.logs().contains("the HIS is reachable again; ").then_some(())
    });
    wait_for(PATIENCE, "all delivered", || {
        (query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'") == [vec![json!(100)]])
            .then_some(())
    });
}

/// `/ready` says the HIS does not answer (once the worker has tried it).
fn assert_his_unreachable_on_ready(middleware: &buktor_tests::Middleware) {
    let not_ready = wait_for(PATIENCE, "/ready to say the HIS does not answer", || {
        let ready = middleware.ready_in_full();
        (ready.status == 503).then_some(ready)
    });
    // Without the admin token, only the reason's kind.
    let local = middleware.request("GET", "/ready", &[], b"");
    assert_eq!(local.json()["reasons"], serde_json::json!(["his_unreachable"]), "{}", local.body);
    let reasons = not_ready.json()["reasons"].clone();
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("the HIS database did not answer: ")),
        "{reasons}"
    );
}

#[test]
fn an_unknown_column_fails_with_the_servers_message_while_others_flow() {
    let Some(server) = mysql::server("an_unknown_column_fails_with_the_servers_message_while_others_flow") else {
        return;
    };
    let db = server.database();
    db.execute(SEED_TABLES);
    let mut setup = setup_for(&db, None);
    setup.config["mapping"]["appointment"]["fields"]["room"] = json!("HIS_room");
    let middleware = setup.start();
    let bad =
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "x", "room": "7"}"#);
    let bad_id = bad.json()["id"].as_i64().unwrap();
    for i in 0..20 {
        middleware.post_event(&json!({"event_type": "payment", "payment_id": i, "amount": "1"}).to_string());
    }
    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_payments", 20);
    let error = wait_for(PATIENCE, "the appointment's error", || {
        let rows = query(&setup.journal(), &format!("SELECT status, last_error FROM events WHERE id = {bad_id}"));
        rows[0][1].as_str().map(|e| (rows[0][0].clone(), e.to_string()))
    });
    assert_eq!(error.0, json!("failed"), "set aside, never dropped");
    // MariaDB says "in 'INSERT INTO'", MySQL "in 'field list'".
    assert!(error.1.starts_with("schema error: Unknown column 'HIS_room' in '"), "{}", error.1);
    assert!(error.1.ends_with("(code 1054)"), "{}", error.1);
    assert_eq!(db.count("SELECT COUNT(*) FROM HIS_appointments"), 0);
}

#[test]
fn hostile_values_are_stored_literally_or_refused_cleanly() {
    let Some(server) = mysql::server("hostile_values_are_stored_literally_or_refused_cleanly") else { return };
    let db = server.database();
    db.execute("CREATE TABLE HIS_notes (HIS_note_id BIGINT PRIMARY KEY, HIS_text LONGTEXT, HIS_code VARCHAR(10))");
    let mut setup = setup_for(&db, None);
    setup.config["server"]["max_body_bytes"] = json!(4 * 1024 * 1024);
    setup.config["mapping"] = json!({"note": {"table": "HIS_notes", "fields": {"note_id": "HIS_note_id", "text": "HIS_text", "code": "HIS_code"}}});
    let middleware = setup.start();

    let megabyte: String = "0123456789abcdé".repeat(70_000);
    let values = [
        "O'Brien said \"hello\" \\ and left",
        "'; DROP TABLE HIS_notes; --",
        "`); DELETE FROM HIS_notes; -- ` \0 nul",
        "患者 ✓ 😀 مرحبا שלום",
        &megabyte,
    ];
    for (i, text) in values.iter().enumerate() {
        let body = json!({"event_type": "note", "note_id": i, "text": text, "code": "ok"});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    // Too long for VARCHAR(10): refused by the server, named, and kept.
    let too_long = middleware
        .post_event(&json!({"event_type": "note", "note_id": 99, "text": "t", "code": "elevenchars"}).to_string());
    let too_long_id = too_long.json()["id"].as_i64().unwrap();

    wait_for_count(&db, "SELECT COUNT(*) FROM HIS_notes", values.len() as i64);
    for (i, text) in values.iter().enumerate() {
        let stored = db.rows(&format!("SELECT HIS_text FROM HIS_notes WHERE HIS_note_id = {i}"));
        assert!(stored[0][0].as_deref() == Some(*text), "value {i} stored literally ({} chars)", text.chars().count());
    }
    let error = wait_for(PATIENCE, "the refusal of the long code", || {
        let rows = query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {too_long_id}"));
        rows[0][0].as_str().map(str::to_string)
    });
    // "at row N" counts within the statement, which depends on batching.
    assert!(error.starts_with("data error: Data too long for column 'HIS_code' at row "), "{error}");
    assert!(error.ends_with("(code 1406)"), "{error}");
    assert_eq!(db.count("SELECT COUNT(*) FROM HIS_notes WHERE HIS_note_id = 99"), 0);
}

#[test]
fn a_wrong_password_stops_at_startup_with_the_servers_message() {
    let Some(server) = mysql::server("a_wrong_password_stops_at_startup_with_the_servers_message") else { return };
    let db = server.database();
    let mut setup = setup_for(&db, None);
    setup.config["database"]["password"] = json!("not-the-password");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line").to_string();
    assert!(line.contains("cannot open the mysql HIS database: MySQL at"), "{line}");
    assert!(line.contains("Access denied for user"), "{line}");
    assert!(line.contains("check database.user and database.password"), "{line}");
    assert!(!stderr.contains("not-the-password"), "the password is never printed:\n{stderr}");
}

/// MariaDB's spelling (`bigint(20)`; a nullable column has a NULL default).
/// MySQL 8 prints `bigint` and reports no default there.
#[test]
fn describe_reads_columns_types_and_keys() {
    let Some(server) = mysql::server("describe_reads_columns_types_and_keys") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    db.execute("CREATE UNIQUE INDEX payment_ref ON HIS_payments (HIS_payment_status, HIS_paid_at)");
    let setup = setup_for(&db, None);
    let output = std::process::Command::new(&buktor_tests::artifacts().binary)
        .args(["describe", "his_payments", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let description: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        description,
        json!({
            "table": "HIS_payments",
            "columns": [
                {"name": "HIS_payment_id", "type": "bigint(20)", "nullable": false, "has_default": false},
                {"name": "HIS_amount", "type": "decimal(12,2)", "nullable": true, "has_default": true},
                {"name": "HIS_payment_status", "type": "varchar(32)", "nullable": true, "has_default": true},
                {"name": "HIS_paid_at", "type": "datetime", "nullable": true, "has_default": true},
            ],
            "primary_key": ["HIS_payment_id"],
            "unique_keys": [["HIS_payment_status", "HIS_paid_at"]],
        })
    );
}
