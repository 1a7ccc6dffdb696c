//! Fuzzes the event mapping with arbitrary event bodies, against the
//! mappings of the repository's his-config.json (the seed's flat form) and
//! of dist/examples/his-config.hospital.json (targets with conditions,
//! nested paths, templates, coalesce, and every kind of transform).
//!
//! The first byte picks the mode, the rest is the request body:
//! - bit 2 picks the config: seed (0) or hospital (1);
//! - `selector % 4 == 3`: as intake does it, the mapping is the one named
//!   by the body's own `event_type` (most bodies name none, or an unmapped
//!   one, and stop there);
//! - otherwise the selector forces one of the config's first three mapped
//!   event types, whatever the body says, so the fuzzer reaches `key_of`
//!   and `rows` at once.
//!
//! Nothing may panic. An event's rows fail only with one line naming the
//! field, the value and the mapping path; with the seed's mapping (no
//! transforms) only for a number that cannot be written exactly. Every row
//! of an event intake would accept (a JSON object whose keys are valid)
//! holds its key in its key columns: the event's key, or for a target in
//! another table (the hospital's payment) that row's own key, which the
//! journal keeps beside it.
#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use buktor_middleware::{
    config,
    pipeline::mapping::{self, MappingError, Mappings, Members},
};
use his_plugin_api::ValueRef;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

/// The middleware's own clock format (`clock::now_rfc3339`).
const RECEIVED_AT: &str = "2026-01-02T03:04:05.678Z";

static SEED: LazyLock<Mappings> = LazyLock::new(|| {
    let config = config::parse(include_str!("../../../his-config.json")).expect("his-config.json parses");
    Mappings::new(&config.mapping)
});

/// The hospital example, its lookup file read from dist/examples.
static HOSPITAL: LazyLock<Mappings> = LazyLock::new(|| {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/examples");
    let text = config::without_comments(include_str!("../../../dist/examples/his-config.hospital.json"));
    let config = config::parse_in(&text, &examples).expect("his-config.hospital.json parses");
    Mappings::new(&config.mapping)
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    // Intake's parse_event: one JSON object, or a refusal. (Intake first
    // refuses bodies nested deeper than server.max_json_depth, 32 by
    // default, or with too many members; the fuzzer skips that check and so
    // also sends deeper bodies, up to serde_json's own limit of 128.)
    let Ok(event) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) else { return };
    // Intake journals the body with `String::from_utf8(..).expect(..)`.
    let payload = std::str::from_utf8(body).expect("a body serde_json parsed is UTF-8");

    let (mappings, transforms): (&Mappings, bool) = if selector & 4 == 0 { (&SEED, false) } else { (&HOSPITAL, true) };
    let forced = usize::from(selector % 4);
    let types: Vec<&str> = mappings.event_types().collect();
    let event_type = match types.get(forced).filter(|_| forced < 3) {
        Some(event_type) => *event_type,
        None => match event.get("event_type") {
            Some(serde_json::Value::String(t)) if !t.trim().is_empty() => t.as_str(),
            _ => return,
        },
    };
    if mappings.get(event_type).is_none() {
        return;
    }
    let Ok(members) = Members::parse(payload) else { panic!("an object serde_json parsed is an object of members") };
    check(mappings, transforms, event_type, &members, payload);

    // value_of on every top-level value, not only the mapped fields.
    if let Ok(members) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(payload) {
        for raw in members.values() {
            let _ = mapping::value_of(raw);
        }
    }
});

fn check(mappings: &Mappings, transforms: bool, event_type: &str, event: &Members<'_>, payload: &str) {
    // What intake checks before it journals the event as pending: the key
    // of every row it writes. An event without them is refused (422) and
    // never mapped into rows.
    let Ok(keys) = mappings.keys_of(event_type, event).expect("a mapped type") else { return };
    let rows = mappings.rows(event_type, payload, RECEIVED_AT).expect("a mapped type");
    let rows = match rows {
        Ok(rows) => rows,
        Err(MappingError::Transform(error)) => {
            let line = MappingError::Transform(error.clone()).to_string();
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(error.at.starts_with(&format!("mapping.{event_type}")), "names the mapping: {line}");
            // The seed's mapping has no transforms: only a number it cannot
            // write exactly fails a row.
            assert!(transforms || error.problem.contains("no exact decimal form"), "{line}");
            return;
        }
        Err(e) => panic!("the worker cannot map this {event_type} event: {e}"),
    };
    for (target, row) in &rows {
        let mapping = mappings.target(event_type, *target).expect("a row's target exists");
        assert_eq!(row.values.len(), mapping.columns.len(), "one value per column");
        assert!(mapping.when.as_ref().is_none_or(|when| when.holds(event)), "a row only where its condition holds");
    }
    // Every row names the row its key names: the journal orders events by
    // those keys (the event's, or a target's own row's, journaled with
    // it). One part per key column, in the order of the columns' folded
    // names.
    for (target, row) in &rows {
        let mapping = mappings.target(event_type, *target).expect("a row's target exists");
        let key = row.key.as_deref().unwrap_or(&keys.primary);
        assert!(keys.all().any(|k| k == key), "a row's key is one the journal keeps: {key}");
        let parts: Vec<String> = serde_json::from_str(key).expect("a key is a JSON array of strings");
        assert_eq!(parts[0], config::fold_name(&mapping.table));
        let mut key_columns: Vec<(String, usize)> =
            mapping.key_columns.iter().map(|c| config::fold_name(c)).zip(mapping.key_indexes.iter().copied()).collect();
        key_columns.sort();
        key_columns.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(parts.len(), 1 + key_columns.len(), "the table, then one part per key column");
        for ((column, index), part) in key_columns.iter().zip(&parts[1..]) {
            let written = match row.values[*index].get() {
                ValueRef::Int(i) => i.to_string(),
                ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => s.to_string(),
                other => panic!("key column {column:?} is {part:?} in the key but {other:?} in the row"),
            };
            let folded = mapping::canonical_key_value(&written);
            assert_eq!(folded.as_ref(), Some(part), "key column {column:?}: the key and the row disagree");
        }
    }
}
