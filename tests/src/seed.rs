//! The original documentation's examples: its three curl events, the rows
//! they make through the repository's his-config.json, and MySQL tables of
//! the types a real HIS would have.

use serde_json::json;

/// The seed documentation, which is not in the repository: `shared/` sits
/// beside the clone in CI (and on the machines the project is built on).
pub fn documentation_path() -> std::path::PathBuf {
    crate::repo_root().join("../shared/seed/buktor-middleware-user-docs.txt")
}

/// The bodies of the seed documentation's three curl commands (its section
/// 4), byte for byte: a copy, so that the README can be held to them where
/// the documentation is not at hand. A test compares the two where it is.
pub const CURL_BODIES: [&str; 3] = [
    r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
    r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00"}"#,
    r#"{"event_type": "payment", "payment_id": 789, "amount": "1500", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
];

/// Three events of the seed's types as Buktor sends them, with fields the
/// mapping does not name (`patient_id`, `doctor_id`) beside the mapped
/// ones. (Not the seed's curl bodies: those are [`CURL_BODIES`].)
pub const EVENTS: [&str; 3] = [
    r#"{"event_type": "appointment", "appointment_id": 123, "patient_id": 456, "doctor_id": 789, "status": "confirmed"}"#,
    r#"{"event_type": "schedule_change", "schedule_id": 321, "doctor_id": 789, "new_time": "2025-03-03T09:00:00"}"#,
    r#"{"event_type": "payment", "payment_id": 987, "patient_id": 456, "amount": 1500, "status": "paid"}"#,
];

/// The seed's tables in MySQL, with the column types a real HIS would have.
pub const MYSQL_TABLES: &str = "
    CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status VARCHAR(32), HIS_created_at DATETIME(3));
    CREATE TABLE HIS_schedules (HIS_schedule_id BIGINT PRIMARY KEY, HIS_new_time DATETIME, HIS_updated_at DATETIME(3));
    CREATE TABLE HIS_payments (HIS_payment_id BIGINT PRIMARY KEY, HIS_amount DECIMAL(12,2),
                               HIS_payment_status VARCHAR(32), HIS_paid_at DATETIME);";

/// `Some(())` once the SQLite HIS file at `his` holds exactly the rows of
/// [`EVENTS`] (the repository's his-config.json, mapped columns only).
pub fn sqlite_rows_arrived(his: &std::path::Path) -> Option<()> {
    let his = rusqlite::Connection::open(his).ok()?;
    let rows = (
        crate::query(&his, "SELECT HIS_appointment_id, HIS_status FROM HIS_appointments"),
        crate::query(&his, "SELECT HIS_schedule_id, HIS_new_time FROM HIS_schedules"),
        crate::query(&his, "SELECT HIS_payment_id, HIS_amount, HIS_payment_status FROM HIS_payments"),
    );
    (rows
        == (
            vec![vec![json!(123), json!("confirmed")]],
            vec![vec![json!(321), json!("2025-03-03T09:00:00")]],
            vec![vec![json!(987), json!(1500), json!("paid")]],
        ))
        .then_some(())
}

/// `Some(())` once the MySQL database holds the rows of [`EVENTS`] in
/// [`MYSQL_TABLES`].
pub fn mysql_rows_arrived(db: &crate::mysql::Database) -> Option<()> {
    let some = |s: &str| Some(s.to_string());
    let rows = (
        db.rows("SELECT HIS_appointment_id, HIS_status FROM HIS_appointments"),
        db.rows("SELECT HIS_schedule_id, CAST(HIS_new_time AS CHAR) FROM HIS_schedules"),
        db.rows("SELECT HIS_payment_id, CAST(HIS_amount AS CHAR), HIS_payment_status FROM HIS_payments"),
    );
    (rows
        == (
            vec![vec![some("123"), some("confirmed")]],
            vec![vec![some("321"), some("2025-03-03 09:00:00")]],
            vec![vec![some("987"), some("1500.00"), some("paid")]],
        ))
        .then_some(())
}

/// `Some(())` once the PostgreSQL database holds the rows of [`EVENTS`] in
/// [`crate::postgres::SEED_TABLES`].
pub fn postgres_rows_arrived(db: &crate::postgres::Database) -> Option<()> {
    let some = |s: &str| Some(s.to_string());
    let rows = (
        db.rows(r#"SELECT "HIS_appointment_id"::text, "HIS_status" FROM "HIS_appointments""#),
        db.rows(r#"SELECT "HIS_schedule_id"::text, "HIS_new_time"::text FROM "HIS_schedules""#),
        db.rows(r#"SELECT "HIS_payment_id"::text, "HIS_amount"::text, "HIS_payment_status" FROM "HIS_payments""#),
    );
    (rows
        == (
            vec![vec![some("123"), some("confirmed")]],
            vec![vec![some("321"), some("2025-03-03 09:00:00")]],
            vec![vec![some("987"), some("1500.00"), some("paid")]],
        ))
        .then_some(())
}
