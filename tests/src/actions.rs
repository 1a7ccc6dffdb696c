//! The write-action scenario that every writer's end-to-end test runs:
//! mappings of one appointments table, all keyed by `appointment_id`, and
//! events that update (a row, no row), update partially, soft-delete,
//! delete and insert (a new key, an existing one).

use serde_json::{Value, json};

/// The key field and its column.
pub fn key() -> Value {
    json!({"appointment_id": "HIS_appointment_id"})
}

/// The key's mapping with `extra` fields.
pub fn fields(extra: Value) -> Value {
    let mut fields = key();
    fields.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
    fields
}

/// Status and booking time besides the key.
pub fn status_and_booking() -> Value {
    fields(json!({"status": "HIS_status", "booked_at": "HIS_created_at"}))
}

/// The mappings of [`EVENTS`], writing `table`.
pub fn mappings(table: &str) -> Value {
    json!({
        "appointment": {"table": table, "fields": status_and_booking()},
        "appointment_update": {"table": table, "action": "update", "on_missing": "keep",
            "fields": status_and_booking()},
        "appointment_cancelled": {"table": table, "action": "soft_delete",
            "fields": fields(json!({"status": "HIS_status"}))},
        "appointment_deleted": {"table": table, "action": "delete", "fields": key()},
        "appointment_insert": {"table": table, "action": "insert", "fields": status_and_booking()},
    })
}

/// The events, in order; the comment says what each must do.
pub const EVENTS: [&str; 9] = [
    r#"{"event_type": "appointment", "appointment_id": 1, "status": "booked", "booked_at": "2026-01-05T09:00:00"}"#,
    r#"{"event_type": "appointment", "appointment_id": 2, "status": "booked", "booked_at": "2026-01-05T10:00:00"}"#,
    r#"{"event_type": "appointment", "appointment_id": 3, "status": "booked", "booked_at": "2026-01-05T11:00:00"}"#,
    // A partial update: booked_at is absent, so HIS_created_at stays.
    r#"{"event_type": "appointment_update", "appointment_id": 1, "status": "arrived"}"#,
    // An update of a row that does not exist: fails (if_missing: error).
    r#"{"event_type": "appointment_update", "appointment_id": 99, "status": "arrived"}"#,
    r#"{"event_type": "appointment_cancelled", "appointment_id": 2, "status": "C"}"#,
    r#"{"event_type": "appointment_deleted", "appointment_id": 3}"#,
    r#"{"event_type": "appointment_insert", "appointment_id": 4, "status": "walk-in", "booked_at": "2026-01-05T12:00:00"}"#,
    // An insert of a key that exists: fails, and row 1 is not overwritten.
    r#"{"event_type": "appointment_insert", "appointment_id": 1, "status": "overwritten", "booked_at": "2026-01-06T00:00:00"}"#,
];

/// The statuses [`EVENTS`] end in: two fail, each with its reason.
pub const STATUSES: [&str; 9] =
    ["delivered", "delivered", "delivered", "delivered", "failed", "delivered", "delivered", "delivered", "failed"];
