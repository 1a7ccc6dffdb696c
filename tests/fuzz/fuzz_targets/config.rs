//! Fuzzes `config::parse`: any text must give `Ok` or an `Err` naming a JSON
//! path, never a panic. A config that parses either compiles into
//! `Mappings` or is refused naming a path under `mapping.` (a source or a
//! transform the config types cannot check alone), and maps an empty event
//! without panicking: `validate` promises what `Mappings::compile` relies
//! on (every key entry is a mapped field or column).
#![no_main]

use buktor_middleware::{
    config,
    pipeline::mapping::{Mappings, Members},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The middleware reads the file with `read_to_string`: non-UTF-8 never
    // reaches `parse`.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = config::parse(text) else { return };
    let mappings = match Mappings::compile(&config.mapping) {
        Ok(mappings) => mappings,
        Err((path, message)) => {
            assert!(path.starts_with("mapping."), "refused at {path}: {message}");
            return;
        }
    };
    let empty = Members::parse("{}").expect("an empty object");
    for event_type in mappings.event_types() {
        for mapping in mappings.targets(event_type).expect("a listed event type has targets") {
            assert_eq!(mapping.fields.len(), mapping.columns.len(), "one column per field");
            assert_eq!(mapping.sources.len(), mapping.columns.len(), "one source per column");
            assert!(!mapping.key_fields.is_empty(), "{} has no key", mapping.at);
            // A key read from the event (not a constant) is missing from an
            // empty one.
            if mapping.key_indexes.iter().all(|i| !mapping.sources[*i].members().is_empty()) {
                assert!(mapping.key_of(event_type, &empty).is_err(), "an empty event has no key");
            }
        }
        if let Ok(rows) = mappings.rows(event_type, "{}", "2026-01-02T03:04:05.678Z").expect("mapped") {
            for (target, row) in rows {
                let columns = mappings.target(event_type, target).expect("its target").columns.len();
                assert_eq!(row.values.len(), columns, "one value per column");
            }
        }
    }
});
