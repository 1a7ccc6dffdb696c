//! `buktor-middleware map`: the dry run of the mapping, driven as an
//! operator would, with a his-config.json in a temporary folder and the
//! event in a file or on standard input. It prints, for each target of the
//! event type, whether it applies, the action, the table, the row key and
//! each column's typed value; it needs no HIS, no plugin and no journal.
//! With `--sql` it loads the plugin and prints the statements the plugin
//! says its writer would run, still with no HIS (section 5).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use buktor_tests::{Setup, artifacts};
use serde_json::{Value, json};

/// The seed's three curl events, as the brief has them (a `Z` time, a
/// number amount).
const APPOINTMENT: &str = r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;
const SCHEDULE_CHANGE: &str =
    r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00Z"}"#;
const PAYMENT: &str = r#"{"event_type": "payment", "payment_id": 789, "amount": 50.0, "status": "paid"}"#;

/// What one run of `map` did.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The `--json` document; panics with the output if there is none.
    fn json(&self) -> Value {
        assert!(self.success, "map failed:\n{}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("map --json printed no JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }

    /// The one line a failed run prints on stderr; asserts that it failed,
    /// that the line is the only one, and that stdout is empty.
    fn error_line(&self) -> String {
        assert!(!self.success, "map should have failed, printed:\n{}", self.stdout);
        assert_eq!(self.stdout, "", "nothing on stdout for a failed dry run");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line on stderr:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0].to_string()
    }
}

/// `buktor-middleware --config config map ARGS`, with `stdin` as standard
/// input (none: empty).
fn map(config: &Path, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut child = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(config)
        .arg("map")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn buktor-middleware map");
    if let Some(input) = stdin {
        // A run that stops before reading says why on stderr.
        let _ = child.stdin.take().expect("piped stdin").write_all(input.as_bytes());
    }
    let output = child.wait_with_output().expect("wait for buktor-middleware map");
    Ran {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// `map --event FILE [--json]`, the event written to `name` in the setup's
/// folder.
fn map_file(setup: &Setup, config: &Path, name: &str, event: &str, json: bool) -> Ran {
    let file = event_file(setup, name, event);
    let file = file.to_str().expect("a UTF-8 temp path");
    let args: &[&str] = if json { &["--event", file, "--json"] } else { &["--event", file] };
    map(config, args, None)
}

fn event_file(setup: &Setup, name: &str, event: &str) -> PathBuf {
    let path = setup.path(name);
    std::fs::write(&path, event).expect("write the event file");
    path
}

/// One target as the text output shows it.
#[derive(Debug)]
struct TextTarget {
    /// What follows the mapping path on its line: `(no condition)`.
    condition: String,
    /// `upsert HIS_payments, key HIS_payment_id`, when it applies.
    action: Option<String>,
    /// (column, kind, value as printed).
    columns: Vec<(String, String, String)>,
}

/// The target at `mapping` (`mapping.payment`, `mapping.appointment[1]`)
/// in the text output.
fn text_target(stdout: &str, mapping: &str) -> TextTarget {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(&format!("{mapping} (")));
    let header = lines.next().unwrap_or_else(|| panic!("no line for {mapping}:\n{stdout}"));
    let condition = header[mapping.len() + 1..].to_string();
    let body: Vec<&str> = lines.take_while(|l| l.starts_with("  ")).map(|l| &l[2..]).collect();
    let action = body.first().map(|l| l.to_string());
    let columns = body
        .iter()
        .skip(1)
        .filter(|l| !l.starts_with('('))
        .map(|l| {
            let (column, rest) = l.split_once(' ').unwrap_or_else(|| panic!("a column line: {l:?}"));
            let (kind, value) = rest.trim_start().split_once(' ').unwrap_or_else(|| panic!("a column line: {l:?}"));
            (column.to_string(), kind.to_string(), value.trim_start().to_string())
        })
        .collect();
    TextTarget { condition, action, columns }
}

/// The time the text output's last line says the run used for
/// `received_at`.
fn run_time(stdout: &str) -> String {
    let last = stdout.lines().last().unwrap_or_default();
    let time = last
        .strip_prefix("(received_at, where a column uses it, is the time of this run: ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the last line names the run's time:\n{stdout}"));
    time.to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: the run's receive time, as the journal
/// would store it. Returns it parsed.
fn assert_receive_time_shape(text: &str) -> chrono::DateTime<chrono::Utc> {
    let shape: String = text.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{text}");
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).with_timezone(&chrono::Utc)
}

/// (column, kind, value as printed) for the text output's expectations.
fn cols(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected.iter().map(|(c, k, v)| (c.to_string(), k.to_string(), v.to_string())).collect()
}

/// The `--json` columns as (column, kind, value, from).
fn json_columns(target: &Value) -> Vec<(String, String, Value, String)> {
    target["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("columns: {target:#}"))
        .iter()
        .map(|c| {
            (
                c["column"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                c["value"].clone(),
                c["from"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn json_cols(expected: &[(&str, &str, Value, &str)]) -> Vec<(String, String, Value, String)> {
    expected.iter().map(|(c, k, v, f)| (c.to_string(), k.to_string(), v.clone(), f.to_string())).collect()
}

/// Whether each target applies, in order.
fn applies(document: &Value) -> Vec<bool> {
    document["targets"].as_array().unwrap().iter().map(|t| t["applies"].as_bool().unwrap()).collect()
}

/// No HIS file, no journal: the dry run opened neither.
fn assert_nothing_written(setup: &Setup) {
    for name in ["his.db", "journal.db"] {
        assert!(!setup.path(name).exists(), "map created {name}");
    }
}

// 1. The seed's events with the repository's his-config.json.

#[test]
fn the_seed_events_as_text() {
    let setup = Setup::new();
    let config = setup.write_config();

    // The appointment on standard input, without --event.
    let before = chrono::Utc::now();
    let ran = map(&config, &[], Some(APPOINTMENT));
    let after = chrono::Utc::now();
    assert!(ran.success, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], r#"event_type appointment: 1 target, row key ["his_appointments","123"]"#);
    let target = text_target(&ran.stdout, "mapping.appointment");
    assert_eq!(target.condition, "(no condition)");
    assert_eq!(target.action.as_deref(), Some("upsert HIS_appointments, key HIS_appointment_id"));
    let created_at = target.columns[2].2.clone();
    assert_eq!(
        target.columns,
        cols(&[
            ("HIS_appointment_id", "integer", "123"),
            ("HIS_status", "text", "\"confirmed\""),
            ("HIS_created_at", "timestamp", &created_at),
        ])
    );
    // received_at is absent from the event: the time of the run.
    assert_eq!(created_at, run_time(&ran.stdout));
    let created_at = assert_receive_time_shape(&created_at);
    assert!(
        before.timestamp_millis() <= created_at.timestamp_millis() && created_at <= after,
        "{created_at} is the time of the run ({before} .. {after})"
    );

    // The schedule change from a file.
    let ran = map_file(&setup, &config, "schedule_change.json", SCHEDULE_CHANGE, false);
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.lines().next(),
        Some(r#"event_type schedule_change: 1 target, row key ["his_schedules","456"]"#)
    );
    let target = text_target(&ran.stdout, "mapping.schedule_change");
    assert_eq!(target.condition, "(no condition)");
    assert_eq!(target.action.as_deref(), Some("upsert HIS_schedules, key HIS_schedule_id"));
    let updated_at = target.columns[2].2.clone();
    assert_eq!(
        target.columns,
        cols(&[
            ("HIS_schedule_id", "integer", "456"),
            ("HIS_new_time", "timestamp", "2025-03-03T09:00:00Z"),
            ("HIS_updated_at", "timestamp", &updated_at),
        ])
    );
    assert_eq!(updated_at, run_time(&ran.stdout));
    assert_receive_time_shape(&updated_at);

    // The payment from a file: the amount exact, the absent paid_at NULL.
    let ran = map_file(&setup, &config, "payment.json", PAYMENT, false);
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().next(), Some(r#"event_type payment: 1 target, row key ["his_payments","789"]"#));
    let target = text_target(&ran.stdout, "mapping.payment");
    assert_eq!(target.condition, "(no condition)");
    assert_eq!(target.action.as_deref(), Some("upsert HIS_payments, key HIS_payment_id"));
    assert_eq!(
        target.columns,
        cols(&[
            ("HIS_payment_id", "integer", "789"),
            ("HIS_amount", "decimal", "50.0"),
            ("HIS_payment_status", "text", "\"paid\""),
            ("HIS_paid_at", "null", "NULL"),
        ])
    );
    assert_receive_time_shape(&run_time(&ran.stdout));

    assert_nothing_written(&setup);
}

#[test]
fn the_seed_events_as_json() {
    let setup = Setup::new();
    let config = setup.write_config();

    // The schedule change on standard input, with --event -.
    let document = map(&config, &["--event", "-", "--json"], Some(SCHEDULE_CHANGE)).json();
    assert_eq!(document["event_type"], "schedule_change");
    assert_eq!(document["row_key"], r#"["his_schedules","456"]"#);
    let targets = document["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{document:#}");
    let target = &targets[0];
    assert_eq!(target["mapping"], "mapping.schedule_change");
    assert_eq!(target["applies"], true);
    assert_eq!(target["condition"], "no condition");
    assert_eq!(target["action"], "upsert");
    assert_eq!(target["table"], "HIS_schedules");
    assert_eq!(target["key_columns"], json!(["HIS_schedule_id"]));
    assert_eq!(target["truncated"], 0);
    let columns = json_columns(target);
    let updated_at = columns[2].2.as_str().expect("the receive time as text").to_string();
    assert_receive_time_shape(&updated_at);
    assert_eq!(
        columns,
        json_cols(&[
            ("HIS_schedule_id", "integer", json!(456), "mapping.schedule_change.fields.schedule_id"),
            ("HIS_new_time", "timestamp", json!("2025-03-03T09:00:00Z"), "mapping.schedule_change.fields.new_time"),
            ("HIS_updated_at", "timestamp", json!(updated_at), "mapping.schedule_change.fields.updated_at"),
        ])
    );

    // The appointment from a file.
    let document = map_file(&setup, &config, "appointment.json", APPOINTMENT, true).json();
    assert_eq!(document["event_type"], "appointment");
    assert_eq!(document["row_key"], r#"["his_appointments","123"]"#);
    let target = &document["targets"][0];
    assert_eq!(document["targets"].as_array().unwrap().len(), 1, "{document:#}");
    assert_eq!((&target["mapping"], &target["applies"]), (&json!("mapping.appointment"), &json!(true)));
    assert_eq!((&target["action"], &target["table"]), (&json!("upsert"), &json!("HIS_appointments")));
    assert_eq!(target["key_columns"], json!(["HIS_appointment_id"]));
    let columns = json_columns(target);
    let created_at = columns[2].2.as_str().expect("the receive time as text").to_string();
    assert_receive_time_shape(&created_at);
    assert_eq!(
        columns,
        json_cols(&[
            ("HIS_appointment_id", "integer", json!(123), "mapping.appointment.fields.appointment_id"),
            ("HIS_status", "text", json!("confirmed"), "mapping.appointment.fields.status"),
            ("HIS_created_at", "timestamp", json!(created_at), "mapping.appointment.fields.received_at"),
        ])
    );

    // The payment from a file: the decimal as exact text.
    let document = map_file(&setup, &config, "payment.json", PAYMENT, true).json();
    assert_eq!(document["event_type"], "payment");
    assert_eq!(document["row_key"], r#"["his_payments","789"]"#);
    let target = &document["targets"][0];
    assert_eq!(document["targets"].as_array().unwrap().len(), 1, "{document:#}");
    assert_eq!((&target["mapping"], &target["applies"]), (&json!("mapping.payment"), &json!(true)));
    assert_eq!((&target["action"], &target["table"]), (&json!("upsert"), &json!("HIS_payments")));
    assert_eq!(target["key_columns"], json!(["HIS_payment_id"]));
    assert_eq!(target["truncated"], 0);
    assert_eq!(
        json_columns(target),
        json_cols(&[
            ("HIS_payment_id", "integer", json!(789), "mapping.payment.fields.payment_id"),
            ("HIS_amount", "decimal", json!("50.0"), "mapping.payment.fields.amount"),
            ("HIS_payment_status", "text", json!("paid"), "mapping.payment.fields.status"),
            ("HIS_paid_at", "null", Value::Null, "mapping.payment.fields.paid_at"),
        ])
    );

    assert_nothing_written(&setup);
}

#[test]
fn a_received_at_the_event_carries_is_used_rather_than_the_run_time() {
    let setup = Setup::new();
    let config = setup.write_config();
    let event = r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed",
                    "received_at": "2025-01-02T03:04:05Z"}"#;
    let document = map(&config, &["--json"], Some(event)).json();
    let columns = json_columns(&document["targets"][0]);
    assert_eq!(columns[2].1, "timestamp");
    assert_eq!(columns[2].2, "2025-01-02T03:04:05Z");
}

// 2. A list of targets for one event type.

/// Appointment: [0] a soft delete of cancelled ones, [1] an upsert of the
/// others (a nested path, a map after a trim, a date in Madrid), [2] a
/// partial update when a note comes (ROOM kept when absent).
fn targets_setup() -> Setup {
    let mut setup = Setup::new();
    setup.config["mapping"] = json!({
        "appointment": [
            {
                "table": "HIS_appointments", "key": ["ID"], "action": "soft_delete",
                "when": {"field": "status", "equals": "cancelled"},
                "columns": {"ID": "appointment_id", "STATUS": {"const": "X"}}
            },
            {
                "table": "HIS_appointments", "key": ["ID"],
                "when": {"field": "status", "not_equals": "cancelled"},
                "columns": {
                    "ID": "appointment_id",
                    "PATIENT_ID": "patient.id",
                    "STATUS": {"from": "status", "transforms": ["trim", {"map": {"confirmed": "C"}}]},
                    "VISIT_DATE": {"from": "starts_at", "transforms": [
                        {"datetime": {"to": "date", "to_zone": "Europe/Madrid"}}
                    ]}
                }
            },
            {
                "table": "HIS_appointments", "key": ["ID"], "action": "update", "on_missing": "keep",
                "when": {"field": "note", "exists": true},
                "columns": {"ID": "appointment_id", "NOTE": "note", "ROOM": "room"}
            }
        ]
    });
    setup
}

const CANCELLED: &str = r#"{"event_type": "appointment", "appointment_id": 7, "status": "cancelled"}"#;
/// Confirmed (with spaces the trim removes), for a patient, at 23:30 UTC on
/// 3 March (already the 4th in Madrid, UTC+1), with a note and no room.
const CONFIRMED: &str = r#"{"event_type": "appointment", "appointment_id": 7, "status": " confirmed ",
    "patient": {"id": 9001, "name": "Ana"}, "starts_at": "2025-03-03T23:30:00Z", "note": "bring X-rays"}"#;

#[test]
fn a_cancelled_event_takes_only_the_soft_delete() {
    let setup = targets_setup();
    let config = setup.write_config();

    let ran = map(&config, &[], Some(CANCELLED));
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.lines().next(),
        Some(r#"event_type appointment: 3 targets, row key ["his_appointments","7"]"#)
    );
    let soft_delete = text_target(&ran.stdout, "mapping.appointment[0]");
    assert_eq!(soft_delete.condition, r#"(when status == "cancelled" holds)"#);
    assert_eq!(soft_delete.action.as_deref(), Some("soft_delete HIS_appointments, key ID"));
    assert_eq!(soft_delete.columns, cols(&[("ID", "integer", "7"), ("STATUS", "text", "\"X\"")]));
    let upsert = text_target(&ran.stdout, "mapping.appointment[1]");
    assert_eq!(upsert.condition, r#"(skipped: when status != "cancelled" does not hold)"#);
    assert_eq!((upsert.action, upsert.columns.len()), (None, 0), "a skipped target shows no row");
    let update = text_target(&ran.stdout, "mapping.appointment[2]");
    assert_eq!(update.condition, "(skipped: when note exists does not hold)");
    assert_eq!((update.action, update.columns.len()), (None, 0));

    let document = map(&config, &["--json"], Some(CANCELLED)).json();
    assert_eq!(document["row_key"], r#"["his_appointments","7"]"#);
    assert_eq!(applies(&document), [true, false, false]);
    let targets = document["targets"].as_array().unwrap();
    let mappings: Vec<&str> = targets.iter().map(|t| t["mapping"].as_str().unwrap()).collect();
    assert_eq!(mappings, ["mapping.appointment[0]", "mapping.appointment[1]", "mapping.appointment[2]"]);
    assert_eq!(targets[0]["action"], "soft_delete");
    assert_eq!(targets[0]["condition"], r#"when status == "cancelled" holds"#);
    assert_eq!(targets[0]["key_columns"], json!(["ID"]));
    assert_eq!(
        json_columns(&targets[0]),
        json_cols(&[
            ("ID", "integer", json!(7), "mapping.appointment[0].columns.ID"),
            ("STATUS", "text", json!("X"), "mapping.appointment[0].columns.STATUS"),
        ])
    );
    for skipped in &targets[1..] {
        assert_eq!(skipped["columns"], Value::Null, "{skipped:#}");
        assert!(skipped["condition"].as_str().unwrap().starts_with("skipped: when "), "{skipped:#}");
    }
    assert_eq!(targets[1]["action"], "upsert", "a skipped target still says what it would do");
    assert_eq!(targets[2]["action"], "update (if missing: error)");

    // A cancelled event with a note takes the partial update too.
    let with_note = r#"{"event_type": "appointment", "appointment_id": 7, "status": "cancelled", "note": "n"}"#;
    assert_eq!(applies(&map(&config, &["--json"], Some(with_note)).json()), [true, false, true]);
    assert_nothing_written(&setup);
}

#[test]
fn a_confirmed_event_takes_the_upsert_and_with_a_note_the_partial_update() {
    let setup = targets_setup();
    let config = setup.write_config();

    let ran = map_file(&setup, &config, "confirmed.json", CONFIRMED, false);
    assert!(ran.success, "{}", ran.stderr);
    let soft_delete = text_target(&ran.stdout, "mapping.appointment[0]");
    assert_eq!(soft_delete.condition, r#"(skipped: when status == "cancelled" does not hold)"#);
    assert_eq!((soft_delete.action, soft_delete.columns.len()), (None, 0));
    let upsert = text_target(&ran.stdout, "mapping.appointment[1]");
    assert_eq!(upsert.condition, r#"(when status != "cancelled" holds)"#);
    assert_eq!(upsert.action.as_deref(), Some("upsert HIS_appointments, key ID"));
    assert_eq!(
        upsert.columns,
        cols(&[
            ("ID", "integer", "7"),
            ("PATIENT_ID", "integer", "9001"),
            ("STATUS", "text", "\"C\""),
            ("VISIT_DATE", "date", "2025-03-04"),
        ])
    );
    let update = text_target(&ran.stdout, "mapping.appointment[2]");
    assert_eq!(update.condition, "(when note exists holds)");
    assert_eq!(update.action.as_deref(), Some("update (if missing: error) HIS_appointments, key ID"));
    assert_eq!(
        update.columns,
        cols(&[
            ("ID", "integer", "7"),
            ("NOTE", "text", "\"bring X-rays\""),
            ("ROOM", "kept", "(absent: the HIS keeps its value)"),
        ])
    );

    let document = map_file(&setup, &config, "confirmed.json", CONFIRMED, true).json();
    assert_eq!(applies(&document), [false, true, true]);
    let targets = document["targets"].as_array().unwrap();
    assert_eq!(targets[0]["columns"], Value::Null);
    assert_eq!(targets[1]["action"], "upsert");
    assert_eq!(targets[1]["table"], "HIS_appointments");
    assert_eq!(
        json_columns(&targets[1]),
        json_cols(&[
            ("ID", "integer", json!(7), "mapping.appointment[1].columns.ID"),
            ("PATIENT_ID", "integer", json!(9001), "mapping.appointment[1].columns.PATIENT_ID"),
            ("STATUS", "text", json!("C"), "mapping.appointment[1].columns.STATUS"),
            ("VISIT_DATE", "date", json!("2025-03-04"), "mapping.appointment[1].columns.VISIT_DATE"),
        ])
    );
    assert_eq!(targets[2]["action"], "update (if missing: error)");
    assert_eq!(
        json_columns(&targets[2]),
        json_cols(&[
            ("ID", "integer", json!(7), "mapping.appointment[2].columns.ID"),
            ("NOTE", "text", json!("bring X-rays"), "mapping.appointment[2].columns.NOTE"),
            ("ROOM", "kept", Value::Null, "mapping.appointment[2].columns.ROOM"),
        ])
    );

    // Without a note, only the upsert; with a room, ROOM is written, not kept.
    let no_note = r#"{"event_type": "appointment", "appointment_id": 7, "status": "confirmed"}"#;
    let document = map(&config, &["--json"], Some(no_note)).json();
    assert_eq!(applies(&document), [false, true, false]);
    // The upsert writes NULL (on_missing null) for its absent fields.
    let upsert = json_columns(&document["targets"][1]);
    assert_eq!((upsert[1].1.as_str(), &upsert[1].2), ("null", &Value::Null), "{upsert:?}");
    assert_eq!((upsert[3].1.as_str(), &upsert[3].2), ("null", &Value::Null), "{upsert:?}");
    let room =
        r#"{"event_type": "appointment", "appointment_id": 7, "status": "confirmed", "note": "n", "room": "B12"}"#;
    let document = map(&config, &["--json"], Some(room)).json();
    assert_eq!(applies(&document), [false, true, true]);
    let update = json_columns(&document["targets"][2]);
    assert_eq!((update[2].1.as_str(), &update[2].2), ("text", &json!("B12")), "{update:?}");
    assert_nothing_written(&setup);
}

// 3. Errors: one line, non-zero.

#[test]
fn a_value_not_in_the_map_is_one_line_naming_field_value_and_path() {
    let setup = targets_setup();
    let config = setup.write_config();
    let pending = r#"{"event_type": "appointment", "appointment_id": 7, "status": "pending"}"#;
    for args in [&[][..], &["--json"][..]] {
        let line = map(&config, args, Some(pending)).error_line();
        assert!(line.contains(r#""status""#), "{line}");
        assert!(line.contains(r#""pending""#), "{line}");
        // The map is the second transform, after the trim.
        assert!(line.contains("mapping.appointment[1].columns.STATUS.transforms[1]"), "{line}");
        assert!(line.contains("not in the map"), "{line}");
    }
}

#[test]
fn an_unmapped_event_type_is_an_error() {
    let setup = Setup::new();
    let config = setup.write_config();
    let refund = r#"{"event_type": "refund", "refund_id": 1}"#;
    let line = map(&config, &[], Some(refund)).error_line();
    assert!(line.contains(r#"no mapping for event_type "refund""#), "{line}");
    let line = map_file(&setup, &config, "refund.json", refund, true).error_line();
    assert!(line.contains(r#"no mapping for event_type "refund""#), "{line}");
}

#[test]
fn an_event_without_its_key_field_is_an_error_naming_it() {
    let setup = Setup::new();
    let config = setup.write_config();
    let payment = r#"{"event_type": "payment", "amount": 50.0, "status": "paid"}"#;
    let line = map(&config, &[], Some(payment)).error_line();
    assert!(line.contains(r#""payment_id""#), "{line}");
    let null_key = r#"{"event_type": "payment", "payment_id": null, "amount": 50.0}"#;
    let line = map(&config, &["--json"], Some(null_key)).error_line();
    assert!(line.contains(r#""payment_id""#), "{line}");

    let setup = targets_setup();
    let config = setup.write_config();
    let line = map(&config, &[], Some(r#"{"event_type": "appointment", "status": "cancelled"}"#)).error_line();
    assert!(line.contains(r#""appointment_id""#), "{line}");
}

#[test]
fn an_unreadable_event_is_an_error() {
    let setup = Setup::new();
    let config = setup.write_config();
    let missing = setup.path("no-such-event.json");
    let line = map(&config, &["--event", missing.to_str().unwrap()], None).error_line();
    assert!(line.contains("no-such-event.json"), "{line}");
    let line = map(&config, &[], Some("[1, 2]")).error_line();
    assert!(line.contains("not one JSON object"), "{line}");
    let line = map(&config, &[], Some(r#"{"appointment_id": 123}"#)).error_line();
    assert!(line.contains("no event_type"), "{line}");
}

// 4. No HIS needed.

#[test]
fn map_works_with_an_unreachable_his() {
    let mut setup = Setup::new();
    // Nothing listens on port 1.
    setup.config["database"] = json!({
        "type": "mysql", "host": "127.0.0.1", "port": 1,
        "user": "buktor", "password": "not-used", "database": "his"
    });
    let config = setup.write_config();
    let ran = map(&config, &[], Some(PAYMENT));
    assert!(ran.success, "{}", ran.stderr);
    let target = text_target(&ran.stdout, "mapping.payment");
    assert_eq!(target.action.as_deref(), Some("upsert HIS_payments, key HIS_payment_id"));
    assert_eq!(target.columns[0], ("HIS_payment_id".to_string(), "integer".to_string(), "789".to_string()));
    let document = map(&config, &["--json"], Some(APPOINTMENT)).json();
    assert_eq!(document["row_key"], r#"["his_appointments","123"]"#);
    assert_eq!(applies(&document), [true]);
    assert_nothing_written(&setup);
}

#[test]
fn map_never_loads_the_plugin() {
    let mut setup = Setup::new();
    // No library his_nowhere exists: anything that loads the plugin fails.
    setup.config["database"] = json!({"type": "nowhere"});
    let config = setup.write_config();
    let document = map(&config, &["--json"], Some(SCHEDULE_CHANGE)).json();
    assert_eq!(document["targets"][0]["table"], "HIS_schedules");
    assert_eq!(applies(&document), [true]);

    // check, which loads it, fails on the same config.
    let check = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(&config)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .expect("run buktor-middleware check");
    assert!(!check.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(said.contains(r#"plugin for database.type "nowhere" not found"#), "{said}");
}

// 5. --sql: the statements the plugin would run, from the plugin itself.

/// The `--sql` block of the text output: the lines after its header,
/// without their two-space indent.
fn sql_block(stdout: &str, database_type: &str) -> Vec<String> {
    let header = format!("statements the {database_type} plugin would run (nothing was sent):");
    let mut lines = stdout.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no {header:?} in:\n{stdout}");
    lines.map(|l| l.strip_prefix("  ").unwrap_or_else(|| panic!("indented: {l:?}")).to_string()).collect()
}

/// A run that printed its dry run, then failed with one line on stderr
/// for --sql; returns that line.
fn sql_error_line(ran: &Ran) -> String {
    assert!(!ran.success, "map --sql should have failed, printed:\n{}", ran.stdout);
    assert!(ran.stdout.starts_with("event_type ") || ran.stdout.starts_with('{'), "the dry run first:\n{}", ran.stdout);
    let lines: Vec<&str> = ran.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{}", ran.stderr);
    assert!(lines[0].starts_with("error: --sql: "), "{}", lines[0]);
    lines[0].to_string()
}

#[test]
fn sql_shows_the_seed_appointment_upsert_into_sqlite() {
    let setup = Setup::new();
    let config = setup.write_config();
    let file = event_file(&setup, "appointment.json", APPOINTMENT);
    let ran = map(&config, &["--event", file.to_str().unwrap(), "--sql"], None);
    assert!(ran.success, "{}", ran.stderr);
    // The dry run as without --sql, then the statements.
    let target = text_target(&ran.stdout, "mapping.appointment");
    assert_eq!(target.action.as_deref(), Some("upsert HIS_appointments, key HIS_appointment_id"));
    let created_at = target.columns[2].2.clone();
    assert_receive_time_shape(&created_at);
    assert_eq!(
        sql_block(&ran.stdout, "sqlite"),
        [
            // The seed's config creates missing tables: said, not shown.
            "-- database.create_missing is on: before this, the writer creates HIS_appointments or the columns it \
             lacks, if the file lacks them (not shown: that depends on the file)",
            "BEGIN IMMEDIATE",
            "INSERT INTO \"HIS_appointments\" (\"HIS_appointment_id\", \"HIS_status\", \"HIS_created_at\") \
             VALUES (?, ?, ?) ON CONFLICT (\"HIS_appointment_id\") DO UPDATE SET \
             \"HIS_status\" = excluded.\"HIS_status\", \"HIS_created_at\" = excluded.\"HIS_created_at\"",
            &format!("  params: ?1 = 123, ?2 = 'confirmed', ?3 = '{created_at}'"),
            "COMMIT",
        ]
    );
    // Without --sql, nothing of it.
    let plain = map(&config, &["--event", file.to_str().unwrap()], None);
    assert!(plain.success && !plain.stdout.contains("statements the"), "{}", plain.stdout);
    assert_nothing_written(&setup);
}

#[test]
fn sql_for_mysql_needs_no_server_and_converts_times_to_the_his_zone() {
    let mut setup = Setup::new();
    // Nothing listens on port 1: render never connects, or this would fail.
    setup.config["database"] = json!({
        "type": "mysql", "host": "127.0.0.1", "port": 1, "timezone": "+05:30",
        "user": "buktor", "password": "a-secret-password", "database": "his"
    });
    let config = setup.write_config();
    let ran = map(&config, &["--sql"], Some(SCHEDULE_CHANGE));
    assert!(ran.success, "{}", ran.stderr);
    let block = sql_block(&ran.stdout, "mysql");
    assert_eq!(block.len(), 4, "{block:#?}");
    assert_eq!((block[0].as_str(), block[3].as_str()), ("BEGIN", "COMMIT"));
    assert_eq!(
        block[1],
        "INSERT INTO `HIS_schedules` (`HIS_schedule_id`, `HIS_new_time`, `HIS_updated_at`) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE `HIS_new_time` = VALUES(`HIS_new_time`), `HIS_updated_at` = VALUES(`HIS_updated_at`)"
    );
    // 09:00 UTC is 14:30 in the HIS's zone, as the plugin binds it.
    assert!(block[2].starts_with("  params: ?1 = 456, ?2 = '2025-03-03 14:30:00', ?3 = '"), "{}", block[2]);

    // --json: the same statements, each with its parameters.
    let document = map(&config, &["--sql", "--json"], Some(PAYMENT)).json();
    let statements = document["statements"].as_array().unwrap_or_else(|| panic!("statements: {document:#}"));
    assert_eq!(statements.len(), 3, "{document:#}");
    assert_eq!(statements[0], json!({"sql": "BEGIN", "params": []}));
    assert!(
        statements[1]["sql"].as_str().unwrap().ends_with(
            "ON DUPLICATE KEY UPDATE `HIS_amount` = VALUES(`HIS_amount`), \
             `HIS_payment_status` = VALUES(`HIS_payment_status`), `HIS_paid_at` = VALUES(`HIS_paid_at`)"
        ),
        "{document:#}"
    );
    assert_eq!(statements[1]["params"], json!(["789", "50.0", "'paid'", "NULL"]));
    assert_eq!(statements[2], json!({"sql": "COMMIT", "params": []}));
    // The dry run's own fields are all still there.
    assert_eq!(document["targets"][0]["table"], "HIS_payments");
    for ran in [&ran.stdout, &document.to_string()] {
        assert!(!ran.contains("a-secret-password"), "{ran}");
    }

    // A setting the plugin refuses: one line after the dry run, naming it.
    setup.config["database"]["timezone"] = "Mars/Olympus".into();
    let config = setup.write_config();
    let ran = map(&config, &["--sql"], Some(PAYMENT));
    let line = sql_error_line(&ran);
    assert!(line.contains(r#"database.type "mysql""#) && line.contains("database.timezone"), "{line}");
    assert!(!line.contains("a-secret-password"), "{line}");
    text_target(&ran.stdout, "mapping.payment");
}

#[test]
fn sql_shows_a_soft_delete_as_an_update_and_a_partial_update_by_what_it_carries() {
    let mut setup = targets_setup();
    // A real HIS: nothing is created (the create_missing note is another test's).
    setup.config["database"]["create_missing"] = false.into();
    let config = setup.write_config();
    let ran = map(&config, &["--sql"], Some(CANCELLED));
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        sql_block(&ran.stdout, "sqlite"),
        [
            "BEGIN IMMEDIATE",
            "UPDATE \"HIS_appointments\" SET \"STATUS\" = ? WHERE \"ID\" = ?",
            "  params: ?1 = 'X', ?2 = 7",
            "COMMIT",
        ]
    );

    // Confirmed with a note: the upsert, then the partial update (ROOM
    // absent, so not set), in target order in one transaction.
    let document = map(&config, &["--sql", "--json"], Some(CONFIRMED)).json();
    let statements = document["statements"].as_array().unwrap();
    let texts: Vec<&str> = statements.iter().map(|s| s["sql"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 4, "{texts:#?}");
    assert_eq!(texts[0], "BEGIN IMMEDIATE");
    assert!(
        texts[1].starts_with("INSERT INTO \"HIS_appointments\" (\"ID\", \"PATIENT_ID\", \"STATUS\", \"VISIT_DATE\")")
    );
    assert_eq!(statements[1]["params"], json!(["7", "9001", "'C'", "'2025-03-04'"]));
    assert_eq!(
        texts[2],
        "-- if no row has this key, the row fails (update, if_missing: error) and the transaction is rolled back\n\
         UPDATE \"HIS_appointments\" SET \"NOTE\" = ? WHERE \"ID\" = ?"
    );
    assert_eq!(statements[2]["params"], json!(["'bring X-rays'", "7"]));
    assert_eq!(texts[3], "COMMIT");
    assert_nothing_written(&setup);
}

#[test]
fn sql_with_the_template_plugin_shows_the_lines_it_would_append() {
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    let config = setup.write_config();
    let ran = map(&config, &["--sql"], Some(APPOINTMENT));
    assert!(ran.success, "{}", ran.stderr);
    let block = sql_block(&ran.stdout, "template");
    assert_eq!(block.len(), 1, "one line, no parameters: {block:#?}");
    let line: Value = serde_json::from_str(&block[0]).expect("a JSON line");
    assert_eq!((&line["table"], &line["action"]), (&json!("HIS_appointments"), &json!("upsert")));
    assert_eq!(line["key"], json!({"HIS_appointment_id": 123}));
    assert_eq!(line["row"]["HIS_status"], "confirmed");
    assert!(!setup.path("rows.jsonl").exists(), "nothing appended");
}

/// tests/fixtures/abi-1.0's 1.0 template plugin, built once (as
/// plugin_compat.rs builds it), in a target folder of its own.
fn plugin_1_0() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let fixture = buktor_tests::repo_root().join("tests/fixtures/abi-1.0");
        let target = artifacts().dir.parent().expect("target/").join("abi-1.0");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&fixture)
            .args(["build", "--quiet", "--locked", "--workspace", "--target-dir"])
            .arg(&target)
            .output()
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "building the 1.0 fixture failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("debug")
    });
    dir.join(format!("{}his_template{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

#[test]
fn sql_with_a_plugin_that_cannot_show_its_statements_is_one_line_after_the_dry_run() {
    // A plugin built against plugin-api 1.0.
    let mut setup = Setup::new();
    let dir = setup.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    let plugin = plugin_1_0();
    std::fs::copy(&plugin, dir.join(plugin.file_name().unwrap())).unwrap();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    setup.config["plugins"] = json!({"dir": "plugins"});
    let config = setup.write_config();
    let ran = map(&config, &["--sql"], Some(APPOINTMENT));
    let line = sql_error_line(&ran);
    assert!(line.contains(r#"database.type "template""#), "{line}");
    assert!(line.contains("plugin-api 1.0.0, which cannot show its statements"), "{line}");
    assert!(line.contains("plugin-api 1.2 or newer"), "what to do: {line}");
    assert_eq!(text_target(&ran.stdout, "mapping.appointment").columns.len(), 3, "the dry run first");
    // Without --sql the same config maps.
    assert!(map(&config, &[], Some(APPOINTMENT)).success);

    // No plugin at all: --json still prints the dry run, statements null.
    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "nowhere"});
    let config = setup.write_config();
    let ran = map(&config, &["--sql", "--json"], Some(APPOINTMENT));
    let line = sql_error_line(&ran);
    assert!(line.contains(r#"plugin for database.type "nowhere" not found"#), "{line}");
    let document: Value = serde_json::from_str(&ran.stdout).expect("the dry run as JSON");
    assert_eq!((&document["targets"][0]["table"], &document["statements"]), (&json!("HIS_appointments"), &Value::Null));
}

#[test]
fn a_payment_into_two_tables_shows_both_rows_and_one_transaction() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.config["mapping"]["payment"] = json!([
        {"table": "HIS_PAYMENTS", "key": ["PAY_NO"],
         "columns": {"PAY_NO": "payment_id", "VISIT_NO": "appointment_id"}},
        {"table": "HIS_VISITS", "when": {"field": "status", "equals": "succeeded"}, "action": "update",
         "key": ["VISIT_NO"], "columns": {"VISIT_NO": "appointment_id", "PAID": {"const": "Y"}}}
    ]);
    let config = setup.write_config();
    let event = r#"{"event_type": "payment", "payment_id": "P-1", "appointment_id": "A-7", "status": "succeeded"}"#;
    let file = event_file(&setup, "payment.json", event);
    let ran = map(&config, &["--event", file.to_str().unwrap(), "--sql"], None);
    assert!(ran.success, "{}", ran.stderr);
    assert!(
        ran.stdout.starts_with("event_type payment: 2 targets, row key [\"his_payments\",\"p-1\"]"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("  another HIS row, in the same transaction: row key [\"his_visits\",\"a-7\"]\n"),
        "{}",
        ran.stdout
    );
    let sql = sql_block(&ran.stdout, "sqlite");
    assert_eq!(sql.first().map(String::as_str), Some("BEGIN IMMEDIATE"), "{sql:?}");
    assert_eq!(sql.last().map(String::as_str), Some("COMMIT"), "one transaction: {sql:?}");
    let statements: Vec<&String> = sql.iter().filter(|l| l.starts_with("INSERT") || l.starts_with("UPDATE")).collect();
    assert_eq!(statements.len(), 2, "{sql:?}");
    assert!(statements[0].starts_with("INSERT INTO \"HIS_PAYMENTS\""), "{sql:?}");
    assert!(statements[1].starts_with("UPDATE \"HIS_VISITS\" SET \"PAID\" = ?"), "{sql:?}");
    let json = map(&config, &["--event", file.to_str().unwrap(), "--json"], None);
    let document: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(document["targets"][1]["row_key"], json!("[\"his_visits\",\"a-7\"]"));
    assert_nothing_written(&setup);
}
