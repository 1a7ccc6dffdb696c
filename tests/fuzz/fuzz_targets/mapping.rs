//! Fuzzes the event mapping with arbitrary event bodies, against the
//! mappings of the repository's his-config.json.
//!
//! The first byte picks the mode, the rest is the request body:
//! - `selector % 4 == 3`: as intake does it, the mapping is the one named
//!   by the body's own `event_type` (most bodies name none, or an unmapped
//!   one, and stop there);
//! - otherwise the selector forces one of the three mapped event types
//!   (appointment, schedule_change, payment), whatever the body says, so the
//!   fuzzer reaches `key_of` and `row` at once.
//!
//! Nothing may panic, and every event intake would accept (a JSON object
//! whose key is valid) must map to a row whose key columns hold the key.
#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use buktor_middleware::{
    config,
    pipeline::mapping::{self, EventMapping, MappingError, Mappings, Members},
};
use his_plugin_api::ValueRef;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

/// The middleware's own clock format (`clock::now_rfc3339`).
const RECEIVED_AT: &str = "2026-01-02T03:04:05.678Z";

static MAPPINGS: LazyLock<Mappings> = LazyLock::new(|| {
    let config = config::parse(include_str!("../../../his-config.json")).expect("his-config.json parses");
    Mappings::new(&config.mapping)
});

static TYPES: LazyLock<Vec<String>> = LazyLock::new(|| MAPPINGS.event_types().map(str::to_string).collect());

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    // Intake's parse_event: one JSON object, or a refusal. (Intake first
    // refuses bodies nested deeper than server.max_json_depth, 32 by
    // default, or with too many members; the fuzzer skips that check and so
    // also sends deeper bodies, up to serde_json's own limit of 128.)
    let Ok(event) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) else { return };
    // Intake journals the body with `String::from_utf8(..).expect(..)`.
    let payload = std::str::from_utf8(body).expect("a body serde_json parsed is UTF-8");

    let forced = usize::from(selector % 4);
    let event_type = match TYPES.get(forced) {
        Some(event_type) => event_type.as_str(),
        None => match event.get("event_type") {
            Some(serde_json::Value::String(t)) if !t.trim().is_empty() => t.as_str(),
            _ => return,
        },
    };
    let Some(mapping) = MAPPINGS.get(event_type) else { return };
    let Ok(members) = Members::parse(payload) else { panic!("an object serde_json parsed is an object of members") };
    check(mapping, event_type, &members, payload);

    // value_of on every top-level value, not only the mapped fields.
    if let Ok(members) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(payload) {
        for raw in members.values() {
            let _ = mapping::value_of(raw);
        }
    }
});

fn check(mapping: &EventMapping, event_type: &str, event: &Members<'_>, payload: &str) {
    let row = mapping.row(event_type, payload, RECEIVED_AT);
    if let Ok(row) = &row {
        assert_eq!(row.len(), mapping.columns.len(), "one value per column");
    }
    // What intake checks before it journals the event as pending.
    let Ok(key) = mapping.key_of(event_type, event) else { return };
    let parts: Vec<String> = serde_json::from_str(&key).expect("a key is a JSON array of strings");
    // The key names the row, not the mapping: the table folded, then one
    // part per key column, in the order of the columns' folded names.
    let mut key_fields: Vec<(String, &String)> = (mapping.key_columns.iter().map(|c| config::fold_name(c)))
        .zip(&mapping.key_fields)
        .collect();
    key_fields.sort();
    key_fields.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(parts.len(), 1 + key_fields.len(), "the table, then one part per key column");
    assert_eq!(parts[0], config::fold_name(&mapping.table));

    // The sync worker must be able to write every event intake accepted
    // (or refuse it, naming the field, for a number it cannot write
    // exactly)...
    let row = match row {
        Ok(row) => row,
        Err(MappingError::Inexact { .. }) => return,
        Err(e) => panic!("intake would accept this {event_type} event, but the worker cannot map it: {e}"),
    };
    // ...into the row its key names: the journal orders events by that key.
    for ((_, field), part) in key_fields.iter().zip(&parts[1..]) {
        let column = mapping.fields.iter().position(|f| f == *field).expect("a key field is a mapped field");
        let written = match row[column].get() {
            ValueRef::Int(i) => i.to_string(),
            ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Timestamp(s) => s.to_string(),
            other => panic!("key field {field:?} is {part:?} in the key but {other:?} in the row"),
        };
        let folded = mapping::canonical_key_value(&written);
        assert_eq!(folded.as_ref(), Some(part), "key field {field:?}: the key and the row disagree");
    }
}
