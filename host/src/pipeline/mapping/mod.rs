//! Event → HIS row: which table, which columns, which key, which values.
//!
//! Built once from the config's `mapping` section. Intake uses it to find an
//! event's key (and refuse an event that lacks one); the sync worker uses it
//! to turn a journaled payload into a row of typed [`Value`]s.
//!
//! An event is read as its top-level [`Members`], each kept as raw text;
//! [`key`](mod@key) makes the row key that orders events, [`value`] each
//! column's typed value.

pub mod condition;
#[cfg(test)]
mod fuzz;
pub mod key;
pub mod members;
pub mod source;
pub mod transform;
pub mod value;

use his_plugin_api::{Action, Actions, Value};
use indexmap::IndexMap;

use self::{
    condition::Condition,
    source::{Source, SourceError},
    transform::Applied,
};
pub use self::{
    key::{KEY_FORMAT, MAX_KEY_CHARS, canonical_key_value},
    members::{Members, kind_of},
    value::{InexactNumber, MAX_PLAIN_DIGITS, is_timestamp, value_of},
};
use crate::config::{ConfigError, EventConfig, LoadedConfig, MappingConfig, OnMissing};

/// Fields that default to the time the middleware received the event.
const RECEIVE_TIME_FIELDS: [&str; 2] = ["received_at", "updated_at"];

/// All mappings, by event type.
#[derive(Debug, Clone)]
pub struct Mappings {
    by_type: IndexMap<String, Vec<EventMapping>>,
}

/// How one event type becomes a row: one target of its mapping.
#[derive(Debug, Clone)]
pub struct EventMapping {
    /// Where it is in his-config.json: `mapping.payment`, or
    /// `mapping.appointment[1]` in a list of targets.
    pub at: String,
    /// Its index among the event type's targets.
    pub target: usize,
    /// `when`: the events it applies to (all, without one).
    pub when: Option<Condition>,
    /// The HIS table.
    pub table: String,
    /// The event field each column reads, for messages: the name in
    /// `fields`, or what a `columns` source reads (see [`Source::field`]).
    pub fields: Vec<String>,
    /// HIS column names, `fields` first, then `columns`.
    pub columns: Vec<String>,
    /// Where each column's value comes from.
    pub sources: Vec<Source>,
    /// The key as `key` names it: event fields of `fields`, columns of
    /// `columns`.
    pub key_fields: Vec<String>,
    /// The HIS columns of `key_fields`.
    pub key_columns: Vec<String>,
    /// The index in `columns` of each key column.
    pub key_indexes: Vec<usize>,
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
    /// How many values `truncate` cut (counted at /metrics).
    pub truncated: u32,
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
    #[error("event_type {event_type:?} needs the field {field:?}: it identifies the row in {table} ({at}.key)")]
    MissingKey {
        /// The event type.
        event_type: String,
        /// The missing key field.
        field: String,
        /// The HIS table.
        table: String,
        /// The mapping's JSON path: `mapping.payment`, `mapping.visit[0]`.
        at: String,
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
    /// A column's source or transform cannot take the event's value.
    #[error("field {:?} = {} ({}): {}", .0.field, .0.value, .0.at, .0.problem)]
    Transform(SourceError),
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
    /// Compiles the config's mapping section (already validated: see
    /// [`Mappings::compile`] for the checks that need compiling).
    pub fn new(config: &IndexMap<String, EventConfig>) -> Self {
        Self::compile(config).unwrap_or_else(|(path, e)| panic!("a validated mapping compiles: {path}: {e}"))
    }

    /// Compiles the config's mapping section. The error is (JSON path,
    /// message): a source or transform that does not compile.
    pub fn compile(config: &IndexMap<String, EventConfig>) -> Result<Self, (String, String)> {
        let mut by_type = IndexMap::new();
        for (event_type, event) in config {
            let targets = event
                .targets_at(event_type)
                .enumerate()
                .map(|(target, (at, m))| EventMapping::compile(at, target, m))
                .collect::<Result<Vec<_>, _>>()?;
            // One row key per event (config/validate.rs checks the table
            // and the key columns; the values must come alike too).
            let first = targets[0].row_key.fingerprint();
            if let Some(other) = targets.iter().find(|t| t.row_key.fingerprint() != first) {
                return Err((
                    format!("{}.key", other.at),
                    format!(
                        "reads its key columns otherwise than {}: the targets of one event type write one HIS row, \
                         so their key columns must come from the same fields with the same transforms",
                        targets[0].at
                    ),
                ));
            }
            by_type.insert(event_type.clone(), targets);
        }
        Ok(Self { by_type })
    }

    /// The loaded config's mappings. A source or transform that does not
    /// compile is an error in the config, naming its JSON path.
    pub fn of(loaded: &LoadedConfig) -> Result<Self, ConfigError> {
        Self::compile(&loaded.config.mapping).map_err(|(json_path, message)| ConfigError::Invalid {
            file: loaded.file.clone(),
            json_path,
            message,
        })
    }

    /// The first target for `event_type`, if it is mapped: it makes the
    /// event's row key, which every target shares.
    pub fn get(&self, event_type: &str) -> Option<&EventMapping> {
        self.by_type.get(event_type).and_then(|targets| targets.first())
    }

    /// Every target for `event_type`, in order.
    pub fn targets(&self, event_type: &str) -> Option<&[EventMapping]> {
        self.by_type.get(event_type).map(Vec::as_slice)
    }

    /// The target `target` of `event_type`.
    pub fn target(&self, event_type: &str, target: usize) -> Option<&EventMapping> {
        self.by_type.get(event_type).and_then(|targets| targets.get(target))
    }

    /// The rows an event writes: one per target whose `when` holds, in
    /// order, each with its target's index. Empty when none applies.
    pub fn rows(
        &self,
        event_type: &str,
        payload: &str,
        received_at: &str,
    ) -> Option<Result<Vec<(usize, Row)>, MappingError>> {
        let targets = self.by_type.get(event_type)?;
        let rows = (|| {
            let members = Members::parse(payload).map_err(MappingError::BadPayload)?;
            targets
                .iter()
                .filter(|t| t.when.as_ref().is_none_or(|when| when.holds(&members)))
                .map(|t| Ok((t.target, t.row_of(&members, received_at)?)))
                .collect()
        })();
        Some(rows)
    }

    /// The first mapping a plugin cannot serve, said in one line naming it:
    /// an action outside `actions`, or partial rows (`on_missing: "keep"`)
    /// when the plugin cannot leave columns alone. `plugin` names the
    /// plugin and its plugin-api version.
    pub fn beyond(&self, actions: Actions, partial_rows: bool, plugin: &str) -> Option<String> {
        self.by_type.values().flatten().find_map(|m| {
            let at = &m.at;
            if !actions.contains(m.action) {
                Some(format!(
                    "{at}.action is {:?}, but the plugin {plugin} can only {}: install a plugin \
                     built against plugin-api 1.1 or newer, or change the action",
                    m.action.name(),
                    can_do(actions)
                ))
            } else if m.on_missing == OnMissing::Keep && !partial_rows {
                Some(format!(
                    "{at}.on_missing is \"keep\", but the plugin {plugin} cannot leave columns \
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
    fn compile(at: String, target: usize, m: &MappingConfig) -> Result<Self, (String, String)> {
        let when = m.when.as_ref().map(|when| Condition::new(when, &format!("{at}.when"))).transpose()?;
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        let mut sources = Vec::new();
        for (field, column) in &m.fields {
            fields.push(field.clone());
            columns.push(column.clone());
            sources.push(Source::member(field, format!("{at}.fields.{field}")));
        }
        for (column, config) in &m.columns {
            let source = Source::new(config, format!("{at}.columns.{column}"))?;
            fields.push(source.field());
            columns.push(column.clone());
            sources.push(source);
        }
        let key_fields = m.key_fields();
        // A key entry names a field of `fields`, or else a column of `columns`.
        let key_indexes: Vec<usize> = key_fields
            .iter()
            .map(|name| {
                m.fields
                    .get_index_of(name)
                    .or_else(|| m.columns.get_index_of(name).map(|i| m.fields.len() + i))
                    .expect("validation checks that key entries are mapped")
            })
            .collect();
        let key_columns: Vec<String> = key_indexes.iter().map(|i| columns[*i].clone()).collect();
        let key_sources: Vec<Source> = key_indexes.iter().map(|i| sources[*i].clone()).collect();
        let action = m.write_action();
        // A delete names its row and nothing else.
        if action == Action::DELETE {
            fields = key_indexes.iter().map(|i| fields[*i].clone()).collect();
            sources = key_sources.clone();
            columns = key_columns.clone();
        }
        let key_indexes = if action == Action::DELETE { (0..key_columns.len()).collect() } else { key_indexes };
        Ok(EventMapping {
            row_key: key::RowKey::new(&m.table, &key_sources, &key_columns),
            at,
            target,
            when,
            table: m.table.clone(),
            fields,
            columns,
            sources,
            key_fields,
            key_columns,
            key_indexes,
            action,
            on_missing: m.on_missing,
        })
    }

    /// The row for a journaled payload, one value per column.
    ///
    /// A mapped field the event does not carry is NULL, except
    /// `received_at` and `updated_at`, which default to `received_at`
    /// (the time the middleware received the event). With `on_missing:
    /// "keep"` it is absent instead, and the HIS keeps what it has.
    /// Errors name the field, the mapping path and the value (the path
    /// names the event type).
    pub fn row(&self, _event_type: &str, payload: &str, received_at: &str) -> Result<Row, MappingError> {
        self.row_of(&Members::parse(payload).map_err(MappingError::BadPayload)?, received_at)
    }

    /// [`EventMapping::row`] of a parsed event.
    pub fn row_of(&self, members: &Members<'_>, received_at: &str) -> Result<Row, MappingError> {
        let mut absent = Vec::new();
        let mut applied = Applied::default();
        let mut truncated = 0;
        let values = self
            .sources
            .iter()
            .enumerate()
            .map(|(column, source)| {
                let value = source.value(members, received_at, &mut applied).map_err(MappingError::Transform)?;
                if std::mem::take(&mut applied.truncated) {
                    truncated += 1;
                }
                Ok(value.unwrap_or_else(|| {
                    if self.on_missing == OnMissing::Keep {
                        absent.push(column);
                    }
                    Value::null()
                }))
            })
            .collect::<Result<_, _>>()?;
        Ok(Row { values, absent, truncated })
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

    const TARGETS: &str = r#"{"database": {"type": "sqlite", "path": "h.db"}, "mapping": {"appointment": [
        {"table": "T", "key": ["id"], "action": "soft_delete",
         "when": {"field": "status", "equals": "cancelled"},
         "columns": {"id": "appointment_id", "STATUS": {"const": "X"}}},
        {"table": "T", "key": ["id"], "when": {"field": "status", "not_equals": "cancelled"},
         "columns": {"id": "appointment_id", "STATUS": {"from": "status", "transforms": [{"map": {"confirmed": "C"}}]}}},
        {"table": "t", "key": ["id"], "action": "update", "on_missing": "keep", "when": {"field": "note", "exists": true},
         "columns": {"id": "appointment_id", "NOTE": "note"}}]}}"#;

    #[test]
    fn every_target_whose_condition_holds_writes_a_row_in_order() {
        let m = Mappings::new(&crate::config::parse(TARGETS).unwrap().mapping);
        let targets = |event: &str| -> Vec<usize> {
            m.rows("appointment", event, "2026-01-01T00:00:00Z").unwrap().unwrap().iter().map(|(t, _)| *t).collect()
        };
        assert_eq!(targets(r#"{"appointment_id": 1, "status": "cancelled"}"#), [0]);
        assert_eq!(targets(r#"{"appointment_id": 1, "status": "confirmed", "note": "n"}"#), [1, 2]);
        assert_eq!(targets(r#"{"appointment_id": 1, "status": "confirmed", "note": null}"#), [1]);
        assert_eq!(targets(r#"{"appointment_id": 1}"#), [1], "an absent field is not equal to a value");
        let rows = m.rows("appointment", r#"{"appointment_id": 1, "status": "cancelled"}"#, "").unwrap().unwrap();
        assert_eq!(rows[0].1.values, [Value::int(1), Value::text("X")]);
        assert_eq!(m.target("appointment", 0).unwrap().at, "mapping.appointment[0]");
        let error = m.rows("appointment", r#"{"appointment_id": 1, "status": "new"}"#, "").unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            "field \"status\" = \"new\" (mapping.appointment[1].columns.STATUS.transforms[0]): not in the map, which has no default"
        );
        assert_eq!(
            m.get("appointment")
                .unwrap()
                .key_of("appointment", &Members::parse(r#"{"appointment_id": 7}"#).unwrap())
                .unwrap(),
            r#"["t","7"]"#
        );
    }

    #[test]
    fn the_targets_of_an_event_type_write_one_row() {
        let other_table = TARGETS.replacen(r#"{"table": "t""#, r#"{"table": "U""#, 1);
        let (path, message) = crate::config::parse(&other_table).unwrap_err();
        assert_eq!(path.as_deref(), Some("mapping.appointment[2].table"), "{message}");
        let other_source = TARGETS.replacen(
            r#""columns": {"id": "appointment_id", "NOTE""#,
            r#""columns": {"id": "visit_id", "NOTE""#,
            1,
        );
        let config = crate::config::parse(&other_source).unwrap();
        let (path, message) = Mappings::compile(&config.mapping).unwrap_err();
        assert_eq!(path, "mapping.appointment[2].key", "{message}");
        let two_conditions =
            TARGETS.replacen(r#""equals": "cancelled""#, r#""equals": "cancelled", "exists": true"#, 1);
        assert_eq!(
            crate::config::parse(&two_conditions).unwrap_err().0.as_deref(),
            Some("mapping.appointment[0].when")
        );
    }
}
