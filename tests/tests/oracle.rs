//! The Oracle writer. No Oracle server and no Oracle Instant Client can run
//! here: the SQL, binds, name resolution and error classification are
//! tested as plain functions in plugins/oracle; this file tests what the
//! real plugin does through the real host without Instant Client, and,
//! when `HIS_TEST_ORACLE_DSN` is set, against a real Oracle: upserts, row
//! locks, and every write action with partial rows.

use std::time::Duration;

use buktor_tests::{Setup, actions, query, skipped, verified, wait_for};
use serde_json::{Value, json};

/// Whether Oracle Instant Client is installed where ODPI-C would find it.
fn instant_client_installed() -> bool {
    let in_ldconfig = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libclntsh"));
    let in_path = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| !dir.is_empty() && std::path::Path::new(dir).join("libclntsh.so").exists());
    in_ldconfig || in_path
}

#[test]
fn without_instant_client_the_plugin_loads_and_says_how_to_install_it() {
    if instant_client_installed() {
        skipped(
            "without_instant_client_the_plugin_loads_and_says_how_to_install_it",
            "Oracle Instant Client is installed on this machine",
        );
        return;
    }
    let mut setup = Setup::new();
    // The seed's Oracle example, word for word.
    setup.config["database"] = json!({
        "type": "oracle",
        "host": "your-oracle-host",
        "user": "your-user",
        "password": "your-password",
        "database": "his_database"
    });
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    // The plugin itself loaded: the error is about opening, not loading.
    assert!(
        line.starts_with("error: cannot open the oracle HIS database: Oracle Instant Client was not found"),
        "{line}"
    );
    assert!(line.contains("LD_LIBRARY_PATH") && line.contains("ldconfig"), "where it looks, how to fix: {line}");
    assert!(line.contains("DPI-1047"), "{line}");
    assert!(!stderr.contains("your-password"), "{stderr}");
}

/// A real Oracle's login, from `HIS_TEST_ORACLE_DSN=user/password@//host:port/service`
/// (for example Oracle Database Free in a container on a developer's
/// machine, with Instant Client installed): user, password and connect
/// string. Without the variable, says that `test` was skipped.
fn real_oracle(test: &str) -> Option<(String, String, String)> {
    let Ok(dsn) = std::env::var("HIS_TEST_ORACLE_DSN") else {
        skipped(test, "HIS_TEST_ORACLE_DSN is not set (user/password@//host:port/service; see the README)");
        return None;
    };
    let (credentials, connect_string) = dsn.split_once('@').expect("user/password@connect string");
    let (user, password) = credentials.split_once('/').expect("user/password");
    Some((user.to_string(), password.to_string(), connect_string.to_string()))
}

/// Against a real Oracle (see [`real_oracle`]).
#[test]
fn against_a_real_oracle() {
    let Some((user, password, connect_string)) = real_oracle("against_a_real_oracle") else { return };
    let (user, password, connect_string) = (user.as_str(), password.as_str(), connect_string.as_str());
    let oracle = oracle::Connection::connect(user, password, connect_string).expect("connect to the test Oracle");
    for table in ["HIS_APPOINTMENTS", "HIS_SCHEDULES", "HIS_PAYMENTS"] {
        let _ = oracle.execute(&format!("DROP TABLE {table}"), &[]);
    }
    // Created without quotes: stored in upper case, mapped in mixed case.
    for ddl in [
        "CREATE TABLE HIS_appointments (HIS_appointment_id NUMBER(19) PRIMARY KEY, HIS_status VARCHAR2(32), HIS_created_at TIMESTAMP(3))",
        "CREATE TABLE HIS_schedules (HIS_schedule_id NUMBER(19) PRIMARY KEY, HIS_new_time DATE, HIS_updated_at TIMESTAMP(3))",
        "CREATE TABLE HIS_payments (HIS_payment_id NUMBER(19) PRIMARY KEY, HIS_amount NUMBER(12,2), HIS_payment_status VARCHAR2(32), HIS_paid_at TIMESTAMP)",
    ] {
        oracle.execute(ddl, &[]).unwrap();
    }
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "oracle", "user": user, "password": password,
        "connect_string": connect_string, "lock_timeout_secs": 1});
    let middleware = setup.start();
    for body in [
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
        r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00"}"#,
        r#"{"event_type": "payment", "payment_id": 789, "amount": "1500.75", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "cancelled"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200);
    }
    wait_for(Duration::from_secs(30), "all delivered", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (rows == [vec![json!(4)]]).then_some(())
    });
    assert!(middleware.logs().contains("mapping table HIS_appointments is HIS_APPOINTMENTS"), "{}", middleware.logs());
    let text = |sql: &str| -> String { oracle.query_row_as::<String>(sql, &[]).unwrap() };
    assert_eq!(text("SELECT HIS_status FROM HIS_appointments WHERE HIS_appointment_id = 123"), "cancelled");
    assert_eq!(
        text("SELECT TO_CHAR(HIS_new_time, 'YYYY-MM-DD HH24:MI:SS') FROM HIS_schedules WHERE HIS_schedule_id = 456"),
        "2025-03-03 09:00:00"
    );
    assert_eq!(
        text("SELECT TO_CHAR(HIS_amount, 'FM99990.00') FROM HIS_payments WHERE HIS_payment_id = 789"),
        "1500.75"
    );

    // Another session locks appointment 123 (kept until its rollback): its
    // event waits lock_timeout_secs, fails as a conflict (ORA-30006), and
    // another table's event is written meanwhile.
    drop(oracle.query("SELECT 1 FROM HIS_appointments WHERE HIS_appointment_id = 123 FOR UPDATE", &[]).unwrap());
    let locked = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 123, "status": "moved"}"#);
    let locked = locked.json()["id"].as_i64().unwrap();
    middleware.post_event(
        r#"{"event_type": "payment", "payment_id": 790, "amount": "1", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
    );
    let error = wait_for(Duration::from_secs(30), "the locked appointment's error", || {
        query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {locked}"))[0][0]
            .as_str()
            .map(str::to_string)
    });
    assert!(error.starts_with("conflict error (retryable): ") && error.contains("ORA-30006"), "{error}");
    wait_for(Duration::from_secs(30), "the payment written while the row is locked", || {
        (oracle.query_row_as::<i64>("SELECT COUNT(*) FROM HIS_payments WHERE HIS_payment_id = 790", &[]).unwrap() == 1)
            .then_some(())
    });
    oracle.rollback().unwrap();
    wait_for(Duration::from_secs(30), "the appointment written once the lock is released", || {
        (text("SELECT HIS_status FROM HIS_appointments WHERE HIS_appointment_id = 123") == "moved").then_some(())
    });
}

/// The table of the write-action scenario here: its own, so that it does
/// not meet the test above.
const ACTION_TABLE: &str = "HIS_appointment_actions";

/// The scenario's mappings ([`buktor_tests::actions`]), and partial upserts
/// and an update that inserts.
fn action_mappings() -> Value {
    let mut mappings = actions::mappings(ACTION_TABLE);
    let more = json!({
        "appointment_touch": {"table": ACTION_TABLE, "on_missing": "keep", "fields": actions::status_and_booking()},
        "appointment_late": {"table": ACTION_TABLE, "action": "update", "if_missing": "insert", "on_missing": "keep",
            "fields": actions::status_and_booking()},
    });
    mappings.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
    mappings
}

/// The scenario's events, then three more.
fn action_events() -> Vec<&'static str> {
    let mut events = actions::EVENTS.to_vec();
    events.extend([
        // A partial upsert of a row that exists: HIS_created_at stays.
        r#"{"event_type": "appointment_touch", "appointment_id": 4, "status": "seen"}"#,
        // A partial upsert of a new row: inserted without HIS_created_at.
        r#"{"event_type": "appointment_touch", "appointment_id": 5, "status": "new"}"#,
        // An update of a missing row with if_missing insert: inserted, partial.
        r#"{"event_type": "appointment_late", "appointment_id": 6, "status": "late"}"#,
    ]);
    events
}

/// Every write action, partial updates and partial upserts, against a real
/// Oracle (see [`real_oracle`]), as tests/write_actions.rs does for SQLite
/// and MariaDB.
#[test]
fn every_action_and_a_partial_update_reach_a_real_oracle() {
    let test = "every_action_and_a_partial_update_reach_a_real_oracle";
    let Some((user, password, connect_string)) = real_oracle(test) else { return };
    let oracle = oracle::Connection::connect(&user, &password, &connect_string).expect("connect to the test Oracle");
    let _ = oracle.execute("DROP TABLE HIS_APPOINTMENT_ACTIONS", &[]);
    oracle
        .execute(
            "CREATE TABLE HIS_appointment_actions (HIS_appointment_id NUMBER(19) PRIMARY KEY, \
             HIS_status VARCHAR2(32), HIS_created_at TIMESTAMP(3))",
            &[],
        )
        .unwrap();
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "oracle", "user": user, "password": password,
        "connect_string": connect_string, "lock_timeout_secs": 1});
    setup.config["mapping"] = action_mappings();
    let mut middleware = setup.start();
    let events = action_events();
    for event in &events {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let journal = setup.journal();
    let outcomes = wait_for(Duration::from_secs(60), "every event settled", || {
        let rows = query(&journal, "SELECT id, status, last_error FROM events ORDER BY id");
        Some(rows).filter(|rows| rows.len() == events.len() && rows.iter().all(|r| r[1] != "pending"))
    });
    assert!(middleware.interrupt().success(), "{}", middleware.logs());

    let statuses: Vec<&str> = outcomes.iter().map(|r| r[1].as_str().unwrap()).collect();
    // Two events fail, each with a message that says why; the rest deliver.
    assert_eq!(statuses[..actions::STATUSES.len()], actions::STATUSES, "{outcomes:?}");
    assert!(statuses[actions::STATUSES.len()..].iter().all(|s| *s == "delivered"), "{outcomes:?}");
    let missing = outcomes[4][2].as_str().unwrap();
    assert!(missing.contains("update: no row of HIS_appointment_actions has this key"), "{missing}");
    let exists = outcomes[8][2].as_str().unwrap();
    assert!(exists.contains("insert: a row with this key exists") && exists.contains("ORA-00001"), "{exists}");

    let rows: Vec<(i64, String, Option<String>)> = oracle
        .query_as::<(i64, String, Option<String>)>(
            "SELECT HIS_appointment_id, HIS_status, TO_CHAR(HIS_created_at, 'YYYY-MM-DD HH24:MI:SS') \
             FROM HIS_appointment_actions ORDER BY 1",
            &[],
        )
        .unwrap()
        .map(|row| row.unwrap())
        .collect();
    let at = |time: &str| Some(format!("2026-01-05 {time}"));
    assert_eq!(
        rows,
        [
            (1, "arrived".to_string(), at("09:00:00")),
            (2, "C".to_string(), at("10:00:00")),
            (4, "seen".to_string(), at("12:00:00")),
            (5, "new".to_string(), None),
            (6, "late".to_string(), None),
        ]
    );
    verified(test, "every action, partial updates and upserts, and an insert of an existing key in Oracle");
}
