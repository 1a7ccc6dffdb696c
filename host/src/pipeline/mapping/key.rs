//! An event's row key: the text that orders events for one HIS row.
//!
//! The journal stores it with each event, and the worker holds and orders
//! events by it, so two events for one HIS row must get one key. The key
//! names the row as the HIS compares key values, on the side of caution:
//! - `123`, `"123"`, `"0123"` and `" 123 "` are one key (`123`): an
//!   INTEGER column stores them as one value;
//! - other text is trimmed and case-folded (`"ABC "` is `abc`): MySQL's
//!   and SQL Server's default collations ignore case and trailing spaces.
//!
//! A coarser key never writes a wrong state; at worst it orders two rows'
//! events as if they were one (a held event then holds both). Only the
//! key is folded: the row's values are written as sent.

use serde_json::value::RawValue;

use super::{EventMapping, MappingError, members::Members};

/// The longest key value accepted, in characters.
pub const MAX_KEY_CHARS: usize = 256;

impl EventMapping {
    /// The HIS row an event writes, as stable text such as
    /// `["HIS_appointments","123"]`. Key values must be strings of 1 to
    /// [`MAX_KEY_CHARS`] characters, or integers.
    pub fn key_of(&self, event_type: &str, event: &Members<'_>) -> Result<String, MappingError> {
        // A JSON array of strings, written directly (this runs for every
        // event taken in): `["table","key value",…]`, as journaled since the
        // first release.
        let mut key = Vec::with_capacity(64);
        key.push(b'[');
        serde_json::to_writer(&mut key, &self.table).expect("a string serializes");
        for field in &self.key_fields {
            let part = key_part(event.raw(field)).map_err(|problem| match problem {
                Problem::Missing => MappingError::MissingKey {
                    event_type: event_type.to_string(),
                    field: field.clone(),
                    table: self.table.clone(),
                },
                Problem::NotStringOrInteger(found) => {
                    MappingError::BadKey { event_type: event_type.to_string(), field: field.clone(), found }
                }
                Problem::Length(found) => MappingError::KeyLength {
                    event_type: event_type.to_string(),
                    field: field.clone(),
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
        assert_eq!(key(r#"{"appointment_id": 123}"#).unwrap(), r#"["HIS_appointments","123"]"#);
        assert_eq!(key(r#"{"appointment_id": "123"}"#).unwrap(), r#"["HIS_appointments","123"]"#);
        for bad in [r#"{"appointment_id": 1.5}"#, r#"{"appointment_id": true}"#, r#"{"appointment_id": [1]}"#] {
            let error = key(bad).unwrap_err().to_string();
            assert!(error.contains("must be a string or an integer"), "{error}");
        }
        let error = key(r#"{"appointment_id": null}"#).unwrap_err();
        assert!(error.to_string().contains("needs the field \"appointment_id\""), "{error}");
    }

    #[test]
    fn one_hiss_row_is_one_key_however_its_value_is_written() {
        let one = r#"["HIS_appointments","123"]"#;
        for same in ["123", r#""123""#, r#""0123""#, r#"" 123 ""#, r#""+00123""#] {
            assert_eq!(key(&format!(r#"{{"appointment_id": {same}}}"#)).unwrap(), one, "{same}");
        }
        assert!(key(r#"{"appointment_id": 1.23e2}"#).is_err(), "an exponent is not an integer key");
        assert_eq!(key(r#"{"appointment_id": "-000"}"#).unwrap(), r#"["HIS_appointments","0"]"#);
        assert_eq!(key(r#"{"appointment_id": "MRN-77 "}"#).unwrap(), r#"["HIS_appointments","mrn-77"]"#);
        assert_eq!(key(r#"{"appointment_id": "12a"}"#).unwrap(), r#"["HIS_appointments","12a"]"#);
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
}
