//! A seeded, deterministic fuzz run of the mapping language: random
//! mappings (sources, transforms, conditions, targets) against random
//! events, each as intake and the worker would use them.
//!
//! It asserts what operators rely on: a mapping either compiles or is
//! refused naming its JSON path; an event's key and rows never panic; a
//! failed row's error is one line naming the field, the mapping path and
//! the value. `BUKTOR_MAPPING_FUZZ_SEED` and `BUKTOR_MAPPING_FUZZ_CASES`
//! change the seed and the number of mappings (each gets 50 events).

use serde_json::{Value as Json, json};

use super::{Mappings, Members};

/// SplitMix64: small, seedable, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FIELDS: [&str; 8] = ["id", "status", "patient", "amount", "when", "note", "items", "code"];
const PATHS: [&str; 10] = [
    "id",
    "status",
    "patient.id",
    "patient.name.first",
    "items[0].code",
    "items[2]",
    "amount",
    "when",
    "note",
    "x.y[1]",
];
const TEXTS: [&str; 12] = [
    "confirmed",
    " Cancelled ",
    "",
    "12,50",
    "-0.1",
    "2025-03-03",
    "2025-03-03T23:30:00Z",
    "03/03/2025 10:00",
    "Núñez",
    "\u{0}\n\"",
    "1e400",
    "9223372036854775808",
];

fn scalar(rng: &mut Rng) -> Json {
    match rng.below(6) {
        0 => Json::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64 % 1000),
        3 => {
            let number: &str = rng.pick::<&str>(&["1.5", "1e-7", "12.50", "-0", "123456789012345678901234567890"]);
            serde_json::from_str::<Json>(number)
        }
        .unwrap(),
        _ => json!(rng.pick(&TEXTS)),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Json {
    match (rng.below(5), depth) {
        (0, d) if d < 3 => Json::Array((0..rng.below(4)).map(|_| value(rng, d + 1)).collect()),
        (1, d) if d < 3 => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                object.insert(rng.pick(&["id", "name", "first", "code", "y"]).to_string(), value(rng, d + 1));
            }
            Json::Object(object)
        }
        _ => scalar(rng),
    }
}

/// One transform; about one in 25 is one the config must refuse.
fn transform(rng: &mut Rng) -> Json {
    if rng.below(25) == 0 {
        return rng
            .pick(&[
                json!("title"),
                json!({"truncate": 0}),
                json!({"map": {"a": 1}, "truncate": 2}),
                json!({"lookup": "missing.csv"}),
                json!({"default": 1}),
                json!({"truncate": 3, "extra": true}),
                json!({"parse": "float"}),
                json!({"map": {"a": 1}, "on_miss": "skip"}),
                json!({"map": {"a": 1}, "on_miss": "default"}),
                json!({"datetime": {"to": "epoch"}}),
                json!({"datetime": {"to": "date", "zone": "Mars/Olympus"}}),
                json!({"datetime": {"to": "date", "format": "%Q"}}),
                json!({"datetime": {"to": "text"}}),
                json!({"map": {"a": [1]}}),
            ])
            .clone();
    }
    match rng.below(5) {
        0 => json!(rng.pick(&["trim", "upper", "lower"])),
        1 => json!({"truncate": 1 + rng.below(5)}),
        2 => {
            let mut map = json!({"map": {"confirmed": "C", "cancelled": "X", "1": 1, "true": true}});
            match rng.below(4) {
                0 => map["default"] = scalar(rng),
                1 => map["on_miss"] = json!(rng.pick(&["fail", "null"])),
                2 => {
                    map["default"] = json!("?");
                    map["on_miss"] = json!(rng.pick(&["fail", "default", "null"]));
                }
                _ => {}
            }
            map
        }
        3 => json!({"parse": rng.pick(&["integer", "decimal"])}),
        _ => {
            let to = *rng.pick(&["timestamp", "local_timestamp", "date", "text"]);
            let mut dt = json!({"to": to});
            if rng.below(2) == 0 {
                dt["zone"] = json!(rng.pick(&["Europe/Madrid", "UTC", "America/New_York"]));
            }
            if rng.below(2) == 0 {
                dt["format"] = json!(rng.pick(&["%d/%m/%Y %H:%M", "%Y-%m-%d", "%H"]));
            }
            if to == "text" {
                dt["to_format"] = json!(rng.pick(&["%Y%m%d", "%H:%M", "%d.%m.%Y"]));
            }
            json!({"datetime": dt})
        }
    }
}

fn source(rng: &mut Rng) -> Json {
    let kinds = if rng.below(20) == 0 { 7 } else { 5 };
    let mut spec = match rng.below(kinds) {
        0 => return json!(rng.pick(&PATHS)),
        1 => json!({"from": rng.pick(&PATHS)}),
        2 => json!({"const": scalar(rng)}),
        3 => json!({"template": rng.pick(&["{patient.name.first} {id}", "x{{y}} {note}", "{items[0].code}!"])}),
        4 => json!({"coalesce": [rng.pick(&PATHS), rng.pick(&PATHS)]}),
        5 => json!({"template": rng.pick(&["{", "{a..b}", "no braces", "}"])}),
        _ => json!({"from": rng.pick(&PATHS), "const": 1}),
    };
    let transforms: Vec<Json> = (0..rng.below(4)).map(|_| transform(rng)).collect();
    if !transforms.is_empty() {
        spec["transforms"] = Json::Array(transforms);
    }
    spec
}

fn target(rng: &mut Rng) -> Json {
    let mut columns = serde_json::Map::new();
    columns.insert("K".into(), if rng.below(4) == 0 { source(rng) } else { json!(rng.pick(&["id", "patient.id"])) });
    for n in 0..rng.below(5) {
        columns.insert(format!("C{n}"), source(rng));
    }
    let mut target = json!({"table": "T", "key": ["K"], "columns": columns});
    if rng.below(3) == 0 {
        target["action"] = json!(rng.pick(&["upsert", "insert", "update", "delete", "soft_delete"]));
    }
    if rng.below(3) == 0 {
        target["on_missing"] = json!(rng.pick(&["null", "keep"]));
    }
    if rng.below(2) == 0 {
        let field = rng.pick(&PATHS);
        let kinds = if rng.below(20) == 0 { 6 } else { 5 };
        target["when"] = match rng.below(kinds) {
            0 => json!({"field": field, "equals": scalar(rng)}),
            1 => json!({"field": field, "not_equals": "cancelled"}),
            2 => json!({"field": field, "in": ["confirmed", 1, null]}),
            3 => json!({"field": field, "not_in": ["x"]}),
            4 => json!({"field": field, "exists": rng.below(2) == 0}),
            _ => json!({"field": field, "equals": 1, "exists": true}),
        };
    }
    target
}

#[test]
fn random_mappings_and_events_never_panic_and_errors_name_field_path_and_value() {
    let seed =
        std::env::var("BUKTOR_MAPPING_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6d61_7070_696e_6701);
    let cases: usize = std::env::var("BUKTOR_MAPPING_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let mut rng = Rng(seed);
    let (mut compiled, mut refused, mut rows, mut failed) = (0, 0, 0, 0);
    for case in 0..cases {
        let targets: Vec<Json> = (0..1 + rng.below(3)).map(|_| target(&mut rng)).collect();
        let mapping = if targets.len() == 1 && rng.below(2) == 0 { targets[0].clone() } else { Json::Array(targets) };
        let config = json!({"database": {"type": "sqlite"}, "mapping": {"e": mapping}}).to_string();
        let parsed = crate::config::parse(&config).map_err(|(path, message)| (path.unwrap_or_default(), message));
        let mappings = parsed.and_then(|config| Mappings::compile(&config.mapping));
        let mappings = match mappings {
            Ok(mappings) => mappings,
            Err((path, message)) => {
                assert!(path.starts_with("mapping.e"), "case {case}: refused at {path:?}: {message}\n{config}");
                assert!(!message.contains('\n'), "case {case}: {message}");
                refused += 1;
                continue;
            }
        };
        compiled += 1;
        for _ in 0..50 {
            let mut event = serde_json::Map::new();
            event.insert("event_type".into(), json!("e"));
            for _ in 0..rng.below(FIELDS.len()) {
                event.insert(rng.pick(&FIELDS).to_string(), value(&mut rng, 0));
            }
            let payload = Json::Object(event).to_string();
            let members = Members::parse(&payload).unwrap();
            // Intake refuses an event without its rows' keys (422): it is
            // never journaled, so never mapped into rows.
            if mappings.keys_of("e", &members).unwrap().is_err() {
                continue;
            }
            match mappings.rows("e", &payload, "2026-01-01T00:00:00.000Z").unwrap() {
                Ok(written) => rows += written.len(),
                Err(error) => {
                    let text = error.to_string();
                    assert!(!text.contains('\n'), "case {case}: {text}");
                    assert!(
                        text.starts_with("field \"") && text.contains("(mapping.e"),
                        "case {case}: the error names no field and path: {text}\n{config}\n{payload}"
                    );
                    failed += 1;
                }
            }
        }
    }
    eprintln!(
        "mapping fuzz: seed {seed:#x}, {cases} mappings ({compiled} compiled, {refused} refused), \
         {} events: {rows} rows, {failed} refused by a transform",
        compiled * 50
    );
    assert!(compiled > cases / 10 && refused > cases / 10, "the generator reaches both sides");
    assert!(rows > 0 && failed > 0, "events reach both rows and transform errors");
}
