//! An event's row key: the text that orders events for one HIS row.
//!
//! The journal stores it with each event, and the worker holds and orders
//! events by it, so two events for one HIS row must get one key, whichever
//! mapping they come through. The key names the row, not the mapping:
//! `["his_appointments","123"]`, a JSON array of strings:
//! - the table, folded (trimmed, lowercased): `HIS_Appointments` and
//!   `his_appointments` are one table to the HIS's default collations;
//! - then the key values, in the order of their columns' folded names,
//!   not in the order a mapping lists its key fields; so every mapping of
//!   one table makes one key for one row, since validation requires them
//!   to use the same key columns (`config/validate.rs`).
//!
//! Each key value is folded as the HIS compares key values, on the side
//! of caution:
//! - `123`, `"123"`, `"0123"` and `" 123 "` are one key (`123`): an
//!   INTEGER column stores them as one value;
//! - other text is trimmed and case-folded (`"ABC "` is `abc`): MySQL's
//!   and SQL Server's default collations ignore case and trailing spaces.
//!
//! A coarser key never writes a wrong state; at worst it orders two rows'
//! events as if they were one (a held event then holds both). Only the
//! key is folded: the row's values are written as sent.
//!
//! Keys are journaled, so changing what [`EventMapping::key_of`] makes for
//! an event means raising [`KEY_FORMAT`]: startup then re-keys the
//! journal's undelivered events (`journal/rekey.rs`), as it does when a
//! mapping's table or key changes ([`Mappings::key_fingerprint`]).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use his_plugin_api::{Value, ValueRef};

use super::{EventMapping, MappingError, Mappings, members::Members, source::Source, transform::Applied};
use crate::config::fold_name;

/// The longest key value accepted, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// The version of the key's text, part of [`Mappings::key_fingerprint`].
/// - 1 (until issue 20): the table as written, then the key values in the
///   order of the mapping's key fields;
/// - 2: the table folded, then the key values in the order of their
///   columns' folded names.
pub const KEY_FORMAT: u32 = 2;

/// What one mapping's row keys are made of, worked out once.
#[derive(Debug, Clone)]
pub(super) struct RowKey {
    /// The table, folded.
    table: String,
    /// The key's text up to its values: `["his_appointments"`.
    prefix: String,
    /// (folded column, source) of each key value, ordered by folded
    /// column, each column once.
    parts: Vec<(String, Source)>,
}

impl RowKey {
    /// For a mapping to `table` whose key columns `key_columns` are read
    /// from `key_sources`.
    pub(super) fn new(table: &str, key_sources: &[Source], key_columns: &[String]) -> Self {
        let table = fold_name(table);
        let mut prefix = String::from("[");
        prefix.push_str(&serde_json::to_string(&table).expect("a string serializes"));
        let mut parts: Vec<(String, Source)> =
            key_columns.iter().map(|column| fold_name(column)).zip(key_sources.iter().cloned()).collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        // A column named twice (a field listed twice in `key`) is one part.
        parts.dedup_by(|a, b| a.0 == b.0);
        Self { table, prefix, parts }
    }

    /// What the key is made of, as text: the journal's keys change when
    /// it does.
    pub(super) fn fingerprint(&self) -> serde_json::Value {
        let parts: Vec<(&str, String)> =
            self.parts.iter().map(|(column, source)| (column.as_str(), source.fingerprint())).collect();
        serde_json::json!([self.table, parts])
    }
}

impl EventMapping {
    /// The HIS row an event writes, as stable text such as
    /// `["his_appointments","123"]` (see the module's rules). Key values
    /// must be strings of 1 to [`MAX_KEY_CHARS`] characters, or integers.
    pub fn key_of(&self, event_type: &str, event: &Members<'_>) -> Result<String, MappingError> {
        // A JSON array of strings, written directly (this runs for every
        // event taken in): the table's part is written once, in `RowKey`.
        let mut key = Vec::with_capacity(self.row_key.prefix.len() + 2 + 16 * self.row_key.parts.len());
        key.extend_from_slice(self.row_key.prefix.as_bytes());
        for (_, source) in &self.row_key.parts {
            let part = match source.plain_member() {
                Some(member) => key_part(event.raw(member)),
                None => computed_key_part(source, event)?,
            };
            // The field's name is made only for an error: this runs for
            // every event taken in.
            let part = part.map_err(|problem| match problem {
                Problem::Missing => MappingError::MissingKey {
                    event_type: event_type.to_string(),
                    field: source.field(),
                    table: self.table.clone(),
                    at: self.at.clone(),
                },
                Problem::NotStringOrInteger(found) => {
                    MappingError::BadKey { event_type: event_type.to_string(), field: source.field(), found }
                }
                Problem::Length(found) => MappingError::KeyLength {
                    event_type: event_type.to_string(),
                    field: source.field(),
                    characters: found,
                },
            })?;
            key.push(b',');
            serde_json::to_writer(&mut key, &part).expect("a string serializes");
        }
        key.push(b']');
        Ok(String::from_utf8(key).expect("JSON is UTF-8"))
    }
}

impl Mappings {
    /// What the journal's event keys depend on besides the events: the
    /// key format, and for each event type its folded table and its key's
    /// folded columns with the fields they are read from (and the same, with
    /// the condition, of each target that writes a row of its own). The journal
    /// keeps the fingerprint its keys were made with; when it differs,
    /// startup re-keys the undelivered events (`journal/rekey.rs`).
    pub fn key_fingerprint(&self) -> String {
        // By event type, whatever the config's order: `[table, [[column, field], …]]`.
        // An event type whose targets write other rows too adds each such
        // target's key and condition: they decide the event's other keys.
        let mappings: BTreeMap<&str, serde_json::Value> = self
            .by_type
            .iter()
            .map(|(event_type, targets)| {
                let first = targets[0].row_key.fingerprint();
                let others: Vec<serde_json::Value> = targets
                    .iter()
                    .filter(|t| t.own_row)
                    .map(|t| serde_json::json!([t.row_key.fingerprint(), t.when.as_ref().map(|w| format!("{w:?}"))]))
                    .collect();
                let fingerprint = if others.is_empty() { first } else { serde_json::json!([first, others]) };
                (event_type.as_str(), fingerprint)
            })
            .collect();
        serde_json::json!({ "key_format": KEY_FORMAT, "mappings": mappings }).to_string()
    }
}

enum Problem {
    Missing,
    NotStringOrInteger(String),
    Length(usize),
}

/// One key value, as the row's identity (see the module's rules).
fn key_part(raw: Option<&RawValue>) -> Result<String, Problem> {
    let Some(raw) = raw.map(RawValue::get) else { return Err(Problem::Missing) };
    match raw.as_bytes().first() {
        Some(b'n') => Err(Problem::Missing),
        Some(b'"') => {
            let text: String = serde_json::from_str(raw).map_err(|_| Problem::NotStringOrInteger(excerpt(raw)))?;
            canonical(&text)
        }
        // An integer that fits 64 bits, as a JSON number; a fraction, an
        // exponent or more digits would not be one HIS key value.
        Some(b'-' | b'0'..=b'9') if raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok() => canonical(raw),
        _ => Err(Problem::NotStringOrInteger(excerpt(raw))),
    }
}

/// A key value read through a source with a path or transforms. A
/// transform's error is the event's error (intake refuses the event).
fn computed_key_part(source: &Source, event: &Members<'_>) -> Result<Result<String, Problem>, MappingError> {
    let value = source.value(event, "", &mut Applied::default()).map_err(MappingError::Transform)?;
    Ok(match value.as_ref().map(Value::get) {
        None | Some(ValueRef::Null) => Err(Problem::Missing),
        Some(ValueRef::Int(i)) => canonical(&i.to_string()),
        Some(ValueRef::Text(t)) => canonical(t),
        Some(_) => Err(Problem::NotStringOrInteger(
            value.as_ref().and_then(|v| super::transform::text_of(v).map(|t| excerpt(&t))).unwrap_or_default(),
        )),
    })
}

/// A key value as its row key part: what `"0123 "` and `123` share
/// (`123`). `None` for an empty or too long one.
pub fn canonical_key_value(text: &str) -> Option<String> {
    canonical(text).ok()
}

fn excerpt(raw: &str) -> String {
    raw.chars().take(40).collect()
}

fn canonical(text: &str) -> Result<String, Problem> {
    let trimmed = text.trim();
    let characters = trimmed.chars().count();
    if characters == 0 || characters > MAX_KEY_CHARS {
        return Err(Problem::Length(characters));
    }
    Ok(canonical_integer(trimmed).unwrap_or_else(|| trimmed.to_lowercase()))
}

/// `[+-]digits` without leading zeros (`-0` is `0`), or `None` for
/// anything else.
fn canonical_integer(text: &str) -> Option<String> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some(match (negative, digits) {
        (_, "") => "0".to_string(),
        (true, digits) => format!("-{digits}"),
        (false, digits) => digits.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::seed_mappings;
    use super::*;

    fn key(json: &str) -> Result<String, MappingError> {
        let m = seed_mappings();
        m.get("appointment").unwrap().key_of("appointment", &Members::parse(json).unwrap())
    }

    #[test]
    fn keys_are_required_and_stable() {
        assert_eq!(key(r#"{"appointment_id": 123}"#).unwrap(), r#"["his_appointments","123"]"#);
        assert_eq!(key(r#"{"appointment_id": "123"}"#).unwrap(), r#"["his_appointments","123"]"#);
        for bad in [r#"{"appointment_id": 1.5}"#, r#"{"appointment_id": true}"#, r#"{"appointment_id": [1]}"#] {
            let error = key(bad).unwrap_err().to_string();
            assert!(error.contains("must be a string or an integer"), "{error}");
        }
        let error = key(r#"{"appointment_id": null}"#).unwrap_err();
        assert!(error.to_string().contains("needs the field \"appointment_id\""), "{error}");
    }

    #[test]
    fn one_hiss_row_is_one_key_however_its_value_is_written() {
        let one = r#"["his_appointments","123"]"#;
        for same in ["123", r#""123""#, r#""0123""#, r#"" 123 ""#, r#""+00123""#] {
            assert_eq!(key(&format!(r#"{{"appointment_id": {same}}}"#)).unwrap(), one, "{same}");
        }
        assert!(key(r#"{"appointment_id": 1.23e2}"#).is_err(), "an exponent is not an integer key");
        assert_eq!(key(r#"{"appointment_id": "-000"}"#).unwrap(), r#"["his_appointments","0"]"#);
        assert_eq!(key(r#"{"appointment_id": "MRN-77 "}"#).unwrap(), r#"["his_appointments","mrn-77"]"#);
        assert_eq!(key(r#"{"appointment_id": "12a"}"#).unwrap(), r#"["his_appointments","12a"]"#);
    }

    #[test]
    fn empty_and_very_long_keys_are_refused() {
        for (value, characters) in
            [(String::from("\"\""), 0), (String::from("\"   \""), 0), (format!("{:?}", "k".repeat(257)), 257)]
        {
            let error = key(&format!(r#"{{"appointment_id": {value}}}"#)).unwrap_err();
            assert!(
                matches!(error, MappingError::KeyLength { characters: c, .. } if c == characters),
                "{value}: {error}"
            );
        }
        assert!(key(&format!(r#"{{"appointment_id": {:?}}}"#, "k".repeat(256))).is_ok());
    }

    /// Two mappings of one table: the table in another case, the key's
    /// fields listed in another order (and named otherwise).
    const TWO_MAPPINGS: &str = r#"{"database": {"type": "sqlite"}, "mapping": {
        "created": {"table": "HIS_Appointments", "key": ["appointment_id", "clinic_id"],
                    "fields": {"appointment_id": "HIS_appointment_id", "clinic_id": "HIS_Clinic_ID"}},
        "updated": {"table": " his_appointments", "key": ["clinic", "id"],
                    "fields": {"clinic": "his_clinic_id", "id": "his_appointment_id", "status": "HIS_status"}}}}"#;

    /// [`TWO_MAPPINGS`], changed by `edit`.
    fn two_mappings_of_one_table(edit: &dyn Fn(&mut crate::config::Config)) -> Mappings {
        let mut config = crate::config::parse(TWO_MAPPINGS).unwrap();
        edit(&mut config);
        Mappings::new(&config.mapping)
    }

    #[test]
    fn the_key_names_the_row_not_the_mapping() {
        let m = two_mappings_of_one_table(&|_| {});
        let created = m.get("created").unwrap();
        let updated = m.get("updated").unwrap();
        let one = r#"["his_appointments","12","7"]"#;
        let key = |mapping: &EventMapping, json: &str| mapping.key_of("t", &Members::parse(json).unwrap()).unwrap();
        assert_eq!(key(created, r#"{"appointment_id": 12, "clinic_id": "7"}"#), one);
        assert_eq!(key(updated, r#"{"clinic": " 07", "id": "12", "status": "x"}"#), one);
        // The key columns, folded and sorted: his_appointment_id, his_clinic_id.
        assert_eq!(key(updated, r#"{"clinic": "12", "id": 7}"#), r#"["his_appointments","7","12"]"#);
    }

    #[test]
    fn the_fingerprint_changes_with_a_mappings_table_or_key_only() {
        let fingerprint = |edit: &dyn Fn(&mut crate::config::Config)| two_mappings_of_one_table(edit).key_fingerprint();
        let base = fingerprint(&|_| {});
        assert!(base.starts_with(&format!(r#"{{"key_format":{KEY_FORMAT},"#)), "{base}");
        // Not the key: other columns, the table's case, the key's order.
        assert_eq!(
            fingerprint(&|c| {
                c.mapping[1].targets[0].fields.insert("note".into(), "HIS_note".into());
            }),
            base
        );
        assert_eq!(fingerprint(&|c| c.mapping[0].targets[0].table = "his_APPOINTMENTS".into()), base);
        assert_eq!(
            fingerprint(&|c| c.mapping[0].targets[0].key = Some(vec!["clinic_id".into(), "appointment_id".into()])),
            base
        );
        // The key: the table, a key column, the field a key value is read
        // from, one mapping more.
        assert_ne!(fingerprint(&|c| c.mapping[0].targets[0].table = "his_visits".into()), base);
        assert_ne!(fingerprint(&|c| c.mapping[0].targets[0].key = Some(vec!["appointment_id".into()])), base);
        assert_ne!(fingerprint(&|c| c.mapping[1].targets[0].fields[0] = "his_branch_id".into()), base);
        assert_ne!(
            fingerprint(&|c| {
                let clinic = c.mapping[1].targets[0].fields.shift_remove("clinic").unwrap();
                c.mapping[1].targets[0].fields.insert("clinic_no".into(), clinic);
                c.mapping[1].targets[0].key = Some(vec!["clinic_no".into(), "id".into()]);
            }),
            base
        );
        assert_ne!(
            fingerprint(&|c| {
                let again = crate::config::MappingConfig {
                    table: "his_appointments".into(),
                    ..c.mapping[1].targets[0].clone()
                };
                c.mapping.insert("moved".into(), crate::config::EventConfig { targets: vec![again], listed: false });
            }),
            base
        );
    }
}
