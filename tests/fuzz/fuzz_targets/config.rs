//! Fuzzes `config::parse`: any text must give `Ok` or an `Err` naming a JSON
//! path, never a panic. A config that parses must also compile into
//! `Mappings` and map an empty event without panicking: `validate` promises
//! what `Mappings::new` relies on (every key field is a mapped field).
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
    let mappings = Mappings::new(&config.mapping);
    let empty = Members::parse("{}").expect("an empty object");
    for event_type in mappings.event_types() {
        let mapping = mappings.get(event_type).expect("a listed event type has a mapping");
        assert_eq!(mapping.fields.len(), mapping.columns.len(), "one column per field");
        assert!(!mapping.key_fields.is_empty(), "mapping.{event_type} has no key");
        assert!(mapping.key_of(event_type, &empty).is_err(), "an empty event has no key");
        let row = mapping.row(event_type, "{}", "2026-01-02T03:04:05.678Z").expect("an empty object maps");
        assert_eq!(row.len(), mapping.columns.len(), "one value per column");
    }
});
