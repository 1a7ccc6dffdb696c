//! Event → HIS row: which table, which columns, which key, which values.
//!
//! Built once from the config's `mapping` section. Intake uses it to find an
//! event's key (and refuse an event that lacks one); the sync worker uses it
//! to turn a journaled payload into a row of typed [`Value`]s.

use std::collections::HashMap;

use his_plugin_api::{Timestamp, Value};
use indexmap::IndexMap;
use serde_json::value::RawValue;

use crate::config::MappingConfig;

/// Fields that default to the time the middleware received the event.
const RECEIVE_TIME_FIELDS: [&str; 2] = ["received_at", "updated_at"];

/// All mappings, by event type.
#[derive(Debug, Clone)]
pub struct Mappings {
    by_type: IndexMap<String, EventMapping>,
}

/// How one event type becomes a row.
#[derive(Debug, Clone)]
pub struct EventMapping {
    /// The HIS table.
    pub table: String,
    /// Event field names, in column order.
    pub fields: Vec<String>,
    /// HIS column names, one per field.
    pub columns: Vec<String>,
    /// The event fields that identify the row.
    pub key_fields: Vec<String>,
    /// The HIS columns of `key_fields`.
    pub key_columns: Vec<String>,
}

/// Why an event cannot be turned into a row.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// A key field is not a string or an integer.
    #[error("event_type {event_type:?}: the key field {field:?} must be a string or an integer, found {found}")]
    BadKey {
        /// The event type.
        event_type: String,
        /// The key field.
        field: String,
        /// What it was.
        found: String,
    },
    /// The event lacks a key field, or sends it as null.
    #[error(
        "event_type {event_type:?} needs the field {field:?}: it identifies the row in {table} (mapping.{event_type}.key)"
    )]
    MissingKey {
        /// The event type.
        event_type: String,
        /// The missing key field.
        field: String,
        /// The HIS table.
        table: String,
    },
    /// The journaled payload is not a JSON object (never happens for
    /// payloads that intake accepted).
    #[error("the journaled payload is not a JSON object: {0}")]
    BadPayload(serde_json::Error),
}

impl Mappings {
    /// Compiles the config's mapping section (already validated).
    pub fn new(config: &IndexMap<String, MappingConfig>) -> Self {
        let by_type = config
            .iter()
            .map(|(event_type, m)| {
                let key_fields = m
                    .key
                    .clone()
                    .unwrap_or_else(|| m.fields.keys().find(|f| f.ends_with("_id")).cloned().into_iter().collect());
                let key_columns = key_fields.iter().map(|f| m.fields[f].clone()).collect();
                let mapping = EventMapping {
                    table: m.table.clone(),
                    fields: m.fields.keys().cloned().collect(),
                    columns: m.fields.values().cloned().collect(),
                    key_fields,
                    key_columns,
                };
                (event_type.clone(), mapping)
            })
            .collect();
        Self { by_type }
    }

    /// The mapping for `event_type`, if there is one.
    pub fn get(&self, event_type: &str) -> Option<&EventMapping> {
        self.by_type.get(event_type)
    }

    /// The mapped event types, in config order.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }
}

impl EventMapping {
    /// The HIS row an event writes, as stable text such as
    /// `["HIS_appointments","123"]`: the journal stores it so that events
    /// for one row stay in order. Key values must be strings or integers;
    /// `123` and `"123"` name the same row, as they do in the HIS.
    pub fn key_of(
        &self,
        event_type: &str,
        event: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, MappingError> {
        // A JSON array of strings, written directly (this runs for every
        // event taken in): `["table","key value",…]`, as journaled since the
        // first release.
        let mut key = Vec::with_capacity(64);
        key.push(b'[');
        serde_json::to_writer(&mut key, &self.table).expect("a string serializes");
        for field in &self.key_fields {
            let part = match event.get(field) {
                None | Some(serde_json::Value::Null) => {
                    return Err(MappingError::MissingKey {
                        event_type: event_type.to_string(),
                        field: field.clone(),
                        table: self.table.clone(),
                    });
                }
                Some(serde_json::Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
                Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string().into(),
                Some(other) => {
                    return Err(MappingError::BadKey {
                        event_type: event_type.to_string(),
                        field: field.clone(),
                        found: other.to_string().chars().take(40).collect(),
                    });
                }
            };
            key.push(b',');
            serde_json::to_writer(&mut key, &part).expect("a string serializes");
        }
        key.push(b']');
        Ok(String::from_utf8(key).expect("JSON is UTF-8"))
    }

    /// The row for a journaled payload, one value per column.
    ///
    /// A mapped field the event does not carry is NULL, except
    /// `received_at` and `updated_at`, which default to `received_at`
    /// (the time the middleware received the event).
    pub fn row(&self, payload: &str, received_at: &str) -> Result<Vec<Value>, MappingError> {
        let fields: HashMap<MemberName, &RawValue> = serde_json::from_str(payload).map_err(MappingError::BadPayload)?;
        Ok(self
            .fields
            .iter()
            .map(|field| match fields.get(field.as_str()) {
                Some(raw) => value_of(raw),
                None if RECEIVE_TIME_FIELDS.contains(&field.as_str()) => Value::timestamp(received_at),
                None => Value::null(),
            })
            .collect())
    }
}

/// An event member's name: borrowed from the payload, unless it is written
/// with an escape (`"caf\u00e9"`, `"a\/b"`: Python and PHP write such names),
/// which must be decoded into a string of its own.
#[derive(Debug, PartialEq, Eq, Hash, serde::Deserialize)]
struct MemberName<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::borrow::Borrow<str> for MemberName<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The typed value of one JSON value, read from its raw text so that
/// numbers keep every digit:
/// - integers that fit 64 bits are integers; longer ones and numbers with a
///   fraction are exact decimal text; numbers with an exponent are floats;
/// - strings in ISO 8601 date-time form (`2025-03-03T09:00:00`, optionally
///   with a fraction and `Z` or `±HH:MM`) are timestamps; other strings are
///   text, exactly as sent;
/// - objects and arrays are stored as their JSON text.
pub fn value_of(raw: &RawValue) -> Value {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') => Value::null(),
        Some(b't') => Value::bool(true),
        Some(b'f') => Value::bool(false),
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) if is_timestamp(&s) => Value::timestamp(s),
            Ok(s) => Value::text(s),
            Err(_) => Value::text(text),
        },
        Some(b'-' | b'0'..=b'9') => number_value(text),
        _ => Value::text(text),
    }
}

fn number_value(text: &str) -> Value {
    if text.contains(['e', 'E']) {
        return text.parse::<f64>().map(Value::float).unwrap_or_else(|_| Value::decimal(text));
    }
    if !text.contains('.')
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::int(i);
    }
    Value::decimal(text)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]`, with a real date and time:
/// the form plugin-api promises plugins (see [`Timestamp`]).
pub fn is_timestamp(s: &str) -> bool {
    Timestamp::parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ValueRef;

    use super::*;

    fn value(json: &str) -> Value {
        value_of(&serde_json::from_str::<Box<RawValue>>(json).unwrap())
    }

    #[test]
    fn json_values_become_typed_values() {
        assert_eq!(value("null").get(), ValueRef::Null);
        assert_eq!(value("true").get(), ValueRef::Bool(true));
        assert_eq!(value("123").get(), ValueRef::Int(123));
        assert_eq!(value("-9223372036854775808").get(), ValueRef::Int(i64::MIN));
        assert_eq!(value("9223372036854775808").get(), ValueRef::Decimal("9223372036854775808"));
        assert_eq!(value("1500.75").get(), ValueRef::Decimal("1500.75"));
        assert_eq!(value("12345678901234567890.123456789").get(), ValueRef::Decimal("12345678901234567890.123456789"));
        assert_eq!(value("1.5e3").get(), ValueRef::Float(1500.0));
        assert_eq!(value(r#""1500""#).get(), ValueRef::Text("1500"));
        assert_eq!(value(r#""confirmed""#).get(), ValueRef::Text("confirmed"));
        assert_eq!(value(r#""a\"b""#).get(), ValueRef::Text("a\"b"));
        assert_eq!(value(r#"{"a": [1]}"#).get(), ValueRef::Text(r#"{"a": [1]}"#));
    }

    #[test]
    fn only_well_formed_iso_8601_strings_are_timestamps() {
        for ok in [
            "2025-03-03T09:00:00",
            "2025-03-03T09:00:00Z",
            "2025-03-03T09:00:00.123",
            "2025-03-03T09:00:00.123456789+05:30",
            "2025-03-03T09:00:00-08:00",
        ] {
            assert_eq!(value(&format!("{ok:?}")).get(), ValueRef::Timestamp(ok), "{ok}");
        }
        for text in [
            "2025-03-03",
            "2025-03-03 09:00:00",
            "2025-13-03T09:00:00",
            "2025-03-03T25:00:00",
            "2025-03-03T09:00:00+5:30",
            "2025-03-03T09:00:00+05:99",
            "2025-03-03T09:00:00 ",
            "2025-03-03T09:00:00.",
            "2025-03-03t09:00:00",
            "2025-03-03T09:00",
        ] {
            assert_eq!(value(&format!("{text:?}")).get(), ValueRef::Text(text), "{text}");
        }
    }

    fn seed_mappings() -> Mappings {
        let config = crate::config::parse(include_str!("../../../his-config.json")).unwrap();
        Mappings::new(&config.mapping)
    }

    #[test]
    fn the_seed_mappings_key_on_their_id_fields() {
        let m = seed_mappings();
        let keys: Vec<_> = m.event_types().map(|t| m.get(t).unwrap().key_columns.clone()).collect();
        assert_eq!(keys, [["HIS_appointment_id"], ["HIS_schedule_id"], ["HIS_payment_id"]]);
    }

    #[test]
    fn rows_fill_missing_fields_with_null_and_receive_time() {
        let m = seed_mappings();
        let appointment = m.get("appointment").unwrap();
        let row = appointment
            .row(
                r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
                "2026-01-02T03:04:05.678Z",
            )
            .unwrap();
        assert_eq!(
            row.iter().map(Value::get).collect::<Vec<_>>(),
            [ValueRef::Int(123), ValueRef::Text("confirmed"), ValueRef::Timestamp("2026-01-02T03:04:05.678Z")]
        );
        let payment = m.get("payment").unwrap();
        let row = payment.row(r#"{"payment_id": 789}"#, "2026-01-02T03:04:05.678Z").unwrap();
        assert_eq!(
            row.iter().map(Value::get).collect::<Vec<_>>(),
            [ValueRef::Int(789), ValueRef::Null, ValueRef::Null, ValueRef::Null]
        );
    }

    #[test]
    fn member_names_written_with_escapes_are_found() {
        let appointment = seed_mappings().get("appointment").map(|m| {
            m.row(
                r#"{"caf\u00e9": 1, "a\/b": 2, "appointment_\u0069d": 123, "status": "confirmed"}"#,
                "2026-01-02T03:04:05.678Z",
            )
        });
        let row = appointment.unwrap().unwrap();
        assert_eq!(row[0].get(), ValueRef::Int(123));
        assert_eq!(row[1].get(), ValueRef::Text("confirmed"));
    }

    #[test]
    fn keys_are_required_and_stable() {
        let m = seed_mappings();
        let appointment = m.get("appointment").unwrap();
        let event = |json: &str| serde_json::from_str::<serde_json::Map<_, _>>(json).unwrap();
        let key = |json: &str| appointment.key_of("appointment", &event(json));
        assert_eq!(key(r#"{"appointment_id": 123}"#).unwrap(), r#"["HIS_appointments","123"]"#);
        assert_eq!(key(r#"{"appointment_id": "123"}"#).unwrap(), r#"["HIS_appointments","123"]"#);
        for bad in [r#"{"appointment_id": 1.5}"#, r#"{"appointment_id": true}"#, r#"{"appointment_id": [1]}"#] {
            let error = key(bad).unwrap_err().to_string();
            assert!(error.contains("must be a string or an integer"), "{error}");
        }
        let error = appointment.key_of("appointment", &event(r#"{"appointment_id": null}"#)).unwrap_err();
        assert!(error.to_string().contains("needs the field \"appointment_id\""), "{error}");
    }
}
