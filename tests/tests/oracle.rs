//! The Oracle writer. No Oracle server and no Oracle Instant Client can run
//! here: the SQL, binds, name resolution and error classification are
//! tested as plain functions in plugins/oracle; this file tests what the
//! real plugin does through the real host without Instant Client, and,
//! when `HIS_TEST_ORACLE_DSN` is set, against a real Oracle.

use std::time::Duration;

use buktor_tests::{Setup, query, skipped, wait_for};
use serde_json::json;

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

/// Against a real Oracle: `HIS_TEST_ORACLE_DSN=user/password@//host:port/service`
/// (for example Oracle Database Free in a container on a developer's
/// machine, with Instant Client installed).
#[test]
fn against_a_real_oracle() {
    let Ok(dsn) = std::env::var("HIS_TEST_ORACLE_DSN") else {
        skipped(
            "against_a_real_oracle",
            "HIS_TEST_ORACLE_DSN is not set (user/password@//host:port/service; see the README)",
        );
        return;
    };
    let (credentials, connect_string) = dsn.split_once('@').expect("user/password@connect string");
    let (user, password) = credentials.split_once('/').expect("user/password");
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
