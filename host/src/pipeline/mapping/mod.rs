//! Event → HIS row: which table, which columns, which key, which values.
//!
//! Built once from the config's `mapping` section. Intake uses it to find an
//! event's key (and refuse an event that lacks one); the sync worker uses it
//! to turn a journaled payload into a row of typed [`Value`]s.
//!
//! An event is read as its top-level [`Members`], each kept as raw text;
//! [`key`](mod@key) makes the row key that orders events, [`value`] each
//! column's typed value.

pub mod key;
pub mod members;
pub mod value;

use his_plugin_api::{Action, Actions, Value};
use indexmap::IndexMap;

pub use self::{
    key::{KEY_FORMAT, MAX_KEY_CHARS, canonical_key_value},
    members::{Members, kind_of},
    value::{InexactNumber, MAX_PLAIN_DIGITS, is_timestamp, value_of},
};
use crate::config::{MappingConfig, OnMissing};

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
    /// What its events do to their rows.
    pub action: Action,
    /// Whether a field the event lacks is NULL or left as it is.
    pub on_missing: OnMissing,
    /// What its events' row keys are made of (see [`key`](mod@key)).
    row_key: key::RowKey,
}

/// One event's row: a value per column, and the columns it leaves alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// One value per column of the mapping; an absent column's is NULL.
    pub values: Vec<Value>,
    /// Indexes of the columns the event did not carry, with `on_missing:
    /// "keep"`: the HIS keeps what it has. Empty for a whole row.
    pub absent: Vec<usize>,
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
    /// A key value is empty (after trimming) or too long.
    #[error(
        "event_type {event_type:?}: the key field {field:?} must be 1 to {MAX_KEY_CHARS} characters, found {characters}"
    )]
    KeyLength {
        /// The event type.
        event_type: String,
        /// The key field.
        field: String,
        /// Its length, trimmed.
        characters: usize,
    },
    /// A mapped field's number cannot be written exactly.
    #[error("field {field:?} (mapping.{event_type}.fields.{field}): {error}")]
    Inexact {
        /// The event type.
        event_type: String,
        /// The event field.
        field: String,
        /// What is wrong with the number.
        error: InexactNumber,
    },
    /// The event was mapped when it arrived, but its type is not mapped in
    /// the current config.
    #[error(
        "no mapping for event_type {event_type:?} in the current config: add mapping.{event_type} back, then replay the event"
    )]
    Unmapped {
        /// The event type.
        event_type: String,
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
                let key_fields = m.key_fields();
                let key_columns: Vec<String> = key_fields.iter().map(|f| m.fields[f].clone()).collect();
                let action = m.write_action();
                // A delete names its row and nothing else.
                let (fields, columns) = if action == Action::DELETE {
                    (key_fields.clone(), key_columns.clone())
                } else {
                    (m.fields.keys().cloned().collect(), m.fields.values().cloned().collect())
                };
                let mapping = EventMapping {
                    row_key: key::RowKey::new(&m.table, &key_fields, &key_columns),
                    table: m.table.clone(),
                    fields,
                    columns,
                    key_fields,
                    key_columns,
                    action,
                    on_missing: m.on_missing,
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

    /// The first mapping a plugin cannot serve, said in one line naming it:
    /// an action outside `actions`, or partial rows (`on_missing: "keep"`)
    /// when the plugin cannot leave columns alone. `plugin` names the
    /// plugin and its plugin-api version.
    pub fn beyond(&self, actions: Actions, partial_rows: bool, plugin: &str) -> Option<String> {
        self.by_type.iter().find_map(|(event_type, m)| {
            if !actions.contains(m.action) {
                Some(format!(
                    "mapping.{event_type}.action is {:?}, but the plugin {plugin} can only {}: install a plugin \
                     built against plugin-api 1.1 or newer, or change the action",
                    m.action.name(),
                    can_do(actions)
                ))
            } else if m.on_missing == OnMissing::Keep && !partial_rows {
                Some(format!(
                    "mapping.{event_type}.on_missing is \"keep\", but the plugin {plugin} cannot leave columns \
                     untouched (partial rows need plugin-api 1.1 or newer): install a newer plugin, or remove \
                     on_missing"
                ))
            } else {
                None
            }
        })
    }

    /// The mapped event types, in config order.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }
}

impl EventMapping {
    /// The row for a journaled payload, one value per column.
    ///
    /// A mapped field the event does not carry is NULL, except
    /// `received_at` and `updated_at`, which default to `received_at`
    /// (the time the middleware received the event). With `on_missing:
    /// "keep"` it is absent instead, and the HIS keeps what it has.
    pub fn row(&self, event_type: &str, payload: &str, received_at: &str) -> Result<Row, MappingError> {
        let members = Members::parse(payload).map_err(MappingError::BadPayload)?;
        let mut absent = Vec::new();
        let values = self
            .fields
            .iter()
            .enumerate()
            .map(|(column, field)| match members.raw(field) {
                Some(raw) => value_of(raw).map_err(|error| MappingError::Inexact {
                    event_type: event_type.to_string(),
                    field: field.clone(),
                    error,
                }),
                None if RECEIVE_TIME_FIELDS.contains(&field.as_str()) => Ok(Value::timestamp(received_at)),
                None => {
                    if self.on_missing == OnMissing::Keep {
                        absent.push(column);
                    }
                    Ok(Value::null())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Row { values, absent })
    }
}

/// What a set of actions allows, for messages: `upsert`, `upsert, delete`.
fn can_do(actions: Actions) -> String {
    use his_plugin_api::IfMissing;
    let all = [Action::UPSERT, Action::INSERT, Action::update(IfMissing::Error), Action::DELETE, Action::SOFT_DELETE];
    all.iter().filter(|a| actions.contains(**a)).map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ValueRef;

    use super::*;

    pub(super) fn seed_mappings() -> Mappings {
        let config = crate::config::parse(include_str!("../../../../his-config.json")).unwrap();
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
                "appointment",
                r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
                "2026-01-02T03:04:05.678Z",
            )
            .unwrap();
        assert_eq!(
            row.values.iter().map(Value::get).collect::<Vec<_>>(),
            [ValueRef::Int(123), ValueRef::Text("confirmed"), ValueRef::Timestamp("2026-01-02T03:04:05.678Z")]
        );
        let payment = m.get("payment").unwrap();
        let row = payment.row("payment", r#"{"payment_id": 789}"#, "2026-01-02T03:04:05.678Z").unwrap();
        assert_eq!(
            row.values.iter().map(Value::get).collect::<Vec<_>>(),
            [ValueRef::Int(789), ValueRef::Null, ValueRef::Null, ValueRef::Null]
        );
        assert!(row.absent.is_empty());
    }

    #[test]
    fn member_names_written_with_escapes_are_found() {
        let appointment = seed_mappings().get("appointment").map(|m| {
            m.row(
                "appointment",
                r#"{"caf\u00e9": 1, "a\/b": 2, "appointment_\u0069d": 123, "status": "confirmed"}"#,
                "2026-01-02T03:04:05.678Z",
            )
        });
        let row = appointment.unwrap().unwrap();
        assert_eq!(row.values[0].get(), ValueRef::Int(123));
        assert_eq!(row.values[1].get(), ValueRef::Text("confirmed"));
    }

    fn one_mapping(extra: &str) -> Mappings {
        let config = crate::config::parse(&format!(
            r#"{{"database": {{"type": "sqlite", "path": "h.db"}}, "mapping": {{"e": {{"table": "T",
                "fields": {{"e_id": "ID", "status": "STATUS", "born": "BORN"}}{extra}}}}}}}"#
        ))
        .unwrap();
        Mappings::new(&config.mapping)
    }

    #[test]
    fn with_keep_absent_fields_are_left_alone_and_dates_are_dates() {
        let keep = one_mapping(r#", "action": "update", "on_missing": "keep""#);
        let m = keep.get("e").unwrap();
        assert_eq!(m.action, Action::update(his_plugin_api::IfMissing::Error));
        let row = m.row("e", r#"{"e_id": 1, "born": "1990-05-17"}"#, "2026-01-02T03:04:05Z").unwrap();
        assert_eq!(row.absent, [1]);
        assert_eq!(row.values[2].get(), ValueRef::Date("1990-05-17"));
    }

    #[test]
    fn a_plugin_that_cannot_serve_a_mapping_is_told_by_mapping() {
        let delete = one_mapping(r#", "action": "delete""#);
        let e = delete.beyond(Actions::UPSERT, false, "his_x (plugin-api 1.0.0)").unwrap();
        assert!(
            e.starts_with("mapping.e.action is \"delete\", but the plugin his_x (plugin-api 1.0.0) can only upsert"),
            "{e}"
        );
        assert_eq!(delete.beyond(his_plugin_api::Actions::ALL_1_1, true, "p"), None);
        let keep = one_mapping(r#", "on_missing": "keep""#);
        assert!(keep.beyond(Actions::UPSERT, false, "p").unwrap().starts_with("mapping.e.on_missing is \"keep\""));
        assert_eq!(keep.beyond(Actions::UPSERT, true, "p"), None);
    }

    #[test]
    fn a_delete_sends_only_its_key() {
        let delete = one_mapping(r#", "action": "delete""#);
        let m = delete.get("e").unwrap();
        assert_eq!((m.action, m.columns.as_slice()), (Action::DELETE, ["ID".to_string()].as_slice()));
        let row = m.row("e", r#"{"e_id": 1, "status": "x"}"#, "2026-01-02T03:04:05Z").unwrap();
        assert_eq!(row.values, [Value::int(1)]);
    }
}
