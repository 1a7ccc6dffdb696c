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

use abi_stable::std_types::{RString, RVec};
use his_plugin_api::{Action, Actions, Value, WriteBatch};
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
    /// Whether it writes another HIS row than the event type's first
    /// target (another table, or other key values): its rows then carry
    /// their own key ([`Row::key`]), journaled beside the event's.
    pub own_row: bool,
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
    /// The row's key, for a target that writes another row than the
    /// event's first target ([`EventMapping::own_row`]); `None`: the
    /// event's key.
    pub key: Option<String>,
}

/// The rows an event writes, each with its target's index: most events
/// write one, kept inline (no allocation per event on the drain path).
pub type TargetRows = smallvec::SmallVec<[(usize, Row); 1]>;

/// The HIS rows an event writes, as row keys (see [`key`](mod@key)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKeys {
    /// The first target's row: the event's key, journaled with it. Every
    /// event of the type has it, whichever targets apply.
    pub primary: String,
    /// The other rows it writes: targets with [`EventMapping::own_row`]
    /// whose `when` holds, each once, none equal to `primary`.
    pub extra: Vec<String>,
}

impl EventKeys {
    /// Every row's key: the first target's, then the others.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.as_str()).chain(self.extra.iter().map(String::as_str))
    }
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
            let mut targets = event
                .targets_at(event_type)
                .enumerate()
                .map(|(target, (at, m))| EventMapping::compile(at, target, m))
                .collect::<Result<Vec<_>, _>>()?;
            // A target whose key is made otherwise than the first's (another
            // table, or other fields or transforms) writes a row of its own.
            let first = targets[0].row_key.fingerprint();
            for target in &mut targets[1..] {
                target.own_row = target.row_key.fingerprint() != first;
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
    /// event's row key, which the targets without their own row share.
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
    pub fn rows(&self, event_type: &str, payload: &str, received_at: &str) -> Option<Result<TargetRows, MappingError>> {
        let targets = self.by_type.get(event_type)?;
        let rows = (|| {
            let members = Members::parse(payload).map_err(MappingError::BadPayload)?;
            targets
                .iter()
                .filter(|t| t.when.as_ref().is_none_or(|when| when.holds(&members)))
                .map(|t| {
                    let mut row = t.row_of(&members, received_at)?;
                    if t.own_row {
                        row.key = Some(t.key_of(event_type, &members)?);
                    }
                    Ok((t.target, row))
                })
                .collect()
        })();
        Some(rows)
    }

    /// The rows `event_type`'s event writes, as keys, if the type is
    /// mapped: the first target's key, which every event must have, and
    /// the keys of the targets with a row of their own that apply.
    pub fn keys_of(&self, event_type: &str, event: &Members<'_>) -> Option<Result<EventKeys, MappingError>> {
        let targets = self.by_type.get(event_type)?;
        let keys = (|| {
            let primary = targets[0].key_of(event_type, event)?;
            let mut extra: Vec<String> = Vec::new();
            for target in targets.iter().filter(|t| t.own_row) {
                if target.when.as_ref().is_none_or(|when| when.holds(event)) {
                    let key = target.key_of(event_type, event)?;
                    if key != primary && !extra.contains(&key) {
                        extra.push(key);
                    }
                }
            }
            Ok(EventKeys { primary, extra })
        })();
        Some(keys)
    }

    /// Whether some event type writes several HIS rows per event
    /// ([`EventMapping::own_row`]): the journal then keeps their keys,
    /// the worker holds by them, and the plugin must write batches in one
    /// transaction.
    pub fn several_rows(&self) -> bool {
        self.by_type.values().flatten().any(|t| t.own_row)
    }

    /// The first mapping a plugin cannot serve, said in one line naming it:
    /// an action outside `actions`, or partial rows (`on_missing: "keep"`)
    /// when the plugin cannot leave columns alone. `plugin` names the
    /// plugin and its plugin-api version. `together`: whether the plugin
    /// writes several batches in one transaction, which a target with a
    /// row of its own needs.
    pub fn beyond(&self, actions: Actions, partial_rows: bool, together: bool, plugin: &str) -> Option<String> {
        self.by_type.values().flatten().find_map(|m| {
            let at = &m.at;
            if m.own_row && !together {
                Some(format!(
                    "{at} writes another HIS row than the first target of its event type (table {}), and the \
                     event's rows must commit in one transaction, but the plugin {plugin} cannot write several \
                     tables in one transaction: install a plugin built against plugin-api 1.2 or newer that does, \
                     or map the other row from an event type of its own",
                    m.table
                ))
            } else if !actions.contains(m.action) {
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
            own_row: false,
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
        Ok(Row { values, absent, truncated, key: None })
    }
}

impl EventMapping {
    /// The batch of `rows` (rows of this target) as the plugin receives it:
    /// the table, action, columns, key columns, and which columns a partial
    /// row leaves alone. The rows' values move into it.
    pub fn batch<'r>(&self, rows: impl IntoIterator<Item = &'r mut Row>) -> WriteBatch {
        let mut rows: Vec<&mut Row> = rows.into_iter().collect();
        let mut values = RVec::with_capacity(rows.iter().map(|r| r.values.len()).sum());
        for row in rows.iter_mut() {
            values.extend(std::mem::take(&mut row.values));
        }
        let batch = WriteBatch::new(
            self.table.as_str(),
            self.action,
            self.columns.iter().map(|c| RString::from(c.as_str())).collect(),
            self.key_columns.iter().map(|c| RString::from(c.as_str())).collect(),
            values,
        );
        if rows.iter().any(|r| !r.absent.is_empty()) {
            batch.with_presence(|row, column| !rows[row].absent.contains(&column))
        } else {
            batch
        }
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
        let e = delete.beyond(Actions::UPSERT, false, false, "his_x (plugin-api 1.0.0)").unwrap();
        assert!(
            e.starts_with("mapping.e.action is \"delete\", but the plugin his_x (plugin-api 1.0.0) can only upsert"),
            "{e}"
        );
        assert_eq!(delete.beyond(his_plugin_api::Actions::ALL_1_1, true, false, "p"), None);
        let keep = one_mapping(r#", "on_missing": "keep""#);
        assert!(
            keep.beyond(Actions::UPSERT, false, false, "p").unwrap().starts_with("mapping.e.on_missing is \"keep\"")
        );
        assert_eq!(keep.beyond(Actions::UPSERT, true, false, "p"), None);
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
    fn a_target_in_another_table_or_row_writes_a_row_of_its_own_with_its_own_key() {
        let keys = |config: &str, event: &str| {
            let m = Mappings::new(&crate::config::parse(config).unwrap().mapping);
            let own: Vec<bool> = m.targets("appointment").unwrap().iter().map(|t| t.own_row).collect();
            let keys = m.keys_of("appointment", &Members::parse(event).unwrap()).unwrap();
            (own, keys.map(|k| k.all().map(str::to_string).collect::<Vec<_>>()).map_err(|e| e.to_string()))
        };
        let event = r#"{"appointment_id": 1, "visit_id": 9, "status": "confirmed", "note": "n"}"#;
        // `T` and `t` are one table, keyed alike: one row, one key.
        assert_eq!(keys(TARGETS, event), (vec![false, false, false], Ok(vec![r#"["t","1"]"#.to_string()])));
        // Another table: the third target's row has a key of its own, but
        // only when its `when` holds.
        let other_table = TARGETS.replacen(r#"{"table": "t""#, r#"{"table": "U""#, 1);
        assert_eq!(
            keys(&other_table, event),
            (vec![false, false, true], Ok(vec![r#"["t","1"]"#.to_string(), r#"["u","1"]"#.to_string()]))
        );
        assert_eq!(keys(&other_table, r#"{"appointment_id": 1}"#).1, Ok(vec![r#"["t","1"]"#.to_string()]));
        // Another row of the same table, read from another field.
        let other_source = TARGETS.replacen(
            r#""columns": {"id": "appointment_id", "NOTE""#,
            r#""columns": {"id": "visit_id", "NOTE""#,
            1,
        );
        assert_eq!(
            keys(&other_source, event),
            (vec![false, false, true], Ok(vec![r#"["t","1"]"#.to_string(), r#"["t","9"]"#.to_string()]))
        );
        // Its key is needed only when it applies; then its absence is an
        // error naming the target.
        let (_, missing) = keys(&other_source, r#"{"appointment_id": 1, "note": "n"}"#);
        assert_eq!(
            missing.unwrap_err(),
            r#"event_type "appointment" needs the field "visit_id": it identifies the row in t (mapping.appointment[2].key)"#
        );
        // The row's key comes with the row, for the worker and `map`.
        let m = Mappings::new(&crate::config::parse(&other_source).unwrap().mapping);
        let rows = m.rows("appointment", event, "").unwrap().unwrap();
        let row_keys: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.key.as_deref()).collect();
        assert_eq!(row_keys, [None, Some(r#"["t","9"]"#)]);
        assert!(m.several_rows());
        let plugin = m.beyond(Actions::ALL_1_1, true, false, "his_x (plugin-api 1.1.0)").unwrap();
        assert!(plugin.starts_with("mapping.appointment[2] writes another HIS row than the first target"), "{plugin}");
        assert_eq!(m.beyond(Actions::ALL_1_1, true, true, "p"), None);
        let two_conditions =
            TARGETS.replacen(r#""equals": "cancelled""#, r#""equals": "cancelled", "exists": true"#, 1);
        assert_eq!(
            crate::config::parse(&two_conditions).unwrap_err().0.as_deref(),
            Some("mapping.appointment[0].when")
        );
    }
}
