//! The mapping language end to end: a hospital's visits table, written
//! through the real binary and the real plugins into SQLite and MariaDB,
//! from events shaped as the sender shapes them.
//!
//! One scenario, both databases:
//! 1. two appointments with a nested patient: a status mapped to the HIS's
//!    one-letter code, a start time written as a date and a wall-clock
//!    time in Europe/Madrid (23:30Z is the next day there), a template
//!    display name, the first phone present, a ward through a lookup CSV
//!    file, the first procedure's code, a constant, an amount with a
//!    decimal comma, and notes cut to the column's 20 characters (counted
//!    at /metrics);
//! 2. a partial update (`update`, `on_missing: "keep"`) that carries only
//!    the key and notes: the mapped status and ward it lacks stay;
//! 3. a cancellation (`soft_delete`) that sets the status to a constant
//!    and keeps the row;
//! 4. a status the map does not know: the event fails with one line
//!    naming the field, the mapping path and the value, and holds its
//!    row's next event; the map is fixed, the middleware restarted, the
//!    event replayed, and both arrive in order (across a DST change).

use std::time::Duration;

use buktor_tests::{ADMIN_TOKEN, Middleware, Setup, mysql, query, verified, wait_for};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(60);

/// The HIS's own table, as its vendor created it: the same DDL for SQLite
/// and MariaDB.
const PATIENT_VISITS: &str = "CREATE TABLE PATIENT_VISITS (
    VISIT_NO     VARCHAR(12)   NOT NULL PRIMARY KEY,
    PAT_MRN      VARCHAR(16)   NOT NULL,
    STATUS_CODE  CHAR(1)       NOT NULL,
    VISIT_DATE   DATE          NOT NULL,
    VISIT_START  DATETIME,
    DISPLAY_NAME VARCHAR(60),
    PHONE        VARCHAR(20),
    WARD_CODE    VARCHAR(6),
    PROC_CODE    VARCHAR(10),
    NOTES        VARCHAR(20),
    AMOUNT       DECIMAL(10,2),
    SOURCE       VARCHAR(10)   NOT NULL DEFAULT 'HIS'
)";

/// The HIS's ward codes by the sender's ward names, with a column between
/// them: `key_column` and `value_column` pick them by name.
const WARDS_CSV: &str = "his_ward_code,description,external_ward
CAR2,Cardiology (2nd floor),cardiology
TRA1,Traumatology,traumatology
";

/// The sender's statuses → the HIS's codes.
fn statuses() -> Value {
    json!({"confirmed": "C", "checked_in": "A", "completed": "F"})
}

/// A status column: trimmed, lower-cased, then mapped.
fn status_column(map: Value) -> Value {
    json!({"from": "status", "transforms": ["trim", "lower", {"map": map}]})
}

/// A start time in Europe/Madrid: as a date, or as a wall-clock time.
fn madrid(to: &str) -> Value {
    json!({"from": "start", "transforms": [{"datetime": {"zone": "Europe/Madrid", "to": to}}]})
}

fn ward_column() -> Value {
    json!({"from": "location.ward", "transforms": ["trim", "lower", {
        "lookup": "wards.csv", "key_column": "external_ward", "value_column": "his_ward_code", "default": "GEN"
    }]})
}

fn notes_column() -> Value {
    json!({"from": "notes", "transforms": ["trim", {"truncate": 20}]})
}

/// The mappings, with `status_map` as the appointments' status map.
fn mappings(status_map: Value) -> Value {
    json!({
        "appointment": {
            "table": "PATIENT_VISITS",
            "key": ["VISIT_NO"],
            "columns": {
                "VISIT_NO": "appointment_id",
                "PAT_MRN": {"from": "patient.id", "transforms": ["trim", "upper"]},
                "STATUS_CODE": status_column(status_map),
                "VISIT_DATE": madrid("date"),
                "VISIT_START": madrid("local_timestamp"),
                "DISPLAY_NAME": {"template": "{patient.last_name}, {patient.first_name}"},
                "PHONE": {"coalesce": ["patient.mobile", "patient.phone"]},
                "WARD_CODE": ward_column(),
                "PROC_CODE": {"from": "procedures[0].code", "transforms": ["upper"]},
                "NOTES": notes_column(),
                "AMOUNT": {"from": "copay", "transforms": [{"parse": "decimal"}]},
                "SOURCE": {"const": "BUKTOR"}
            }
        },
        // Only what the event carries is written: the status and the ward
        // are mapped, but a note never carries them, so they stay.
        "appointment_note": {
            "table": "PATIENT_VISITS",
            "action": "update",
            "on_missing": "keep",
            "key": ["VISIT_NO"],
            "columns": {
                "VISIT_NO": "appointment_id",
                "NOTES": notes_column(),
                "STATUS_CODE": status_column(statuses()),
                "WARD_CODE": ward_column()
            }
        },
        // The seed's form for the key (keyed by its _id field), a constant
        // for the status.
        "appointment_cancelled": {
            "table": "PATIENT_VISITS",
            "action": "soft_delete",
            "fields": {"appointment_id": "VISIT_NO"},
            "columns": {"STATUS_CODE": {"const": "X"}}
        }
    })
}

/// Phase 1: two appointments, as the scheduling system sends them.
const APPOINTMENTS: [&str; 2] = [
    r#"{"event_type": "appointment", "appointment_id": "A-1001", "status": "Confirmed",
        "start": "2025-03-03T23:30:00Z",
        "patient": {"id": "MRN-0042", "first_name": "Ana", "last_name": "Ruiz",
                    "mobile": "+34 600 111 222", "phone": "+34 91 555 0101"},
        "location": {"ward": " Cardiology "},
        "procedures": [{"code": "ecg01", "name": "Electrocardiogram"}, {"code": "lab07"}],
        "copay": "12,50",
        "notes": "Intérprete requerido: español, acude en silla de ruedas"}"#,
    r#"{"event_type": "appointment", "appointment_id": "A-1002", "status": "checked_in",
        "start": "2025-03-05T09:15:00",
        "patient": {"id": " mrn-0077", "first_name": "Luis", "last_name": "Gómez",
                    "mobile": null, "phone": "+34 91 555 0199"},
        "location": {"ward": "Traumatology"},
        "procedures": [{"code": "rx-knee"}],
        "copay": 20,
        "notes": "Primera visita"}"#,
];

/// Phase 2: a note, a cancellation, and a status the map does not know.
const NOTE_1002: &str =
    r#"{"event_type": "appointment_note", "appointment_id": "A-1002", "notes": "  Trae informe previo  "}"#;
const CANCEL_1001: &str =
    r#"{"event_type": "appointment_cancelled", "appointment_id": "A-1001", "cancelled_by": "patient"}"#;
/// 22:30Z on the day Madrid moves to summer time (+02:00): 00:30 the
/// next day there, where a fixed +01:00 would say 23:30 the same day.
const TENTATIVE_1003: &str = r#"{"event_type": "appointment", "appointment_id": "A-1003", "status": "tentative",
    "start": "2025-03-30T22:30:00Z",
    "patient": {"id": "MRN-0100", "first_name": "Marta", "last_name": "Sanz"},
    "location": {"ward": "Pediatrics"}}"#;
/// Sent after [`TENTATIVE_1003`] failed: held behind it.
const NOTE_1003: &str = r#"{"event_type": "appointment_note", "appointment_id": "A-1003", "notes": "Llamar antes"}"#;

/// The one-line error of [`TENTATIVE_1003`].
const TENTATIVE_ERROR: &str = "field \"status\" = \"tentative\" (mapping.appointment.columns.STATUS_CODE.transforms[2]): \
                               not in the map, which has no default";

/// The columns compared, in order: every column of the table.
const COLUMNS: &str = "VISIT_NO, PAT_MRN, STATUS_CODE, VISIT_DATE, VISIT_START, DISPLAY_NAME, PHONE, WARD_CODE, PROC_CODE, NOTES, AMOUNT, SOURCE";

type Rows = Vec<Vec<Option<String>>>;

fn row(values: [Option<&str>; 12]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

/// A-1001 as phase 1 leaves it: the status mapped, 23:30Z as the 4th in
/// Madrid, the mobile before the phone, the notes cut to 20 characters
/// (21 bytes: characters are counted, not bytes).
fn a1001(status: &str) -> Vec<Option<String>> {
    row([
        Some("A-1001"),
        Some("MRN-0042"),
        Some(status),
        Some("2025-03-04"),
        Some("2025-03-04 00:30:00"),
        Some("Ruiz, Ana"),
        Some("+34 600 111 222"),
        Some("CAR2"),
        Some("ECG01"),
        Some("Intérprete requerido"),
        Some("12.50"),
        Some("BUKTOR"),
    ])
}

/// A-1002: a time without an offset is Madrid's own; a null mobile gives
/// way to the phone; a number is a decimal as it is.
fn a1002(notes: &str) -> Vec<Option<String>> {
    row([
        Some("A-1002"),
        Some("MRN-0077"),
        Some("A"),
        Some("2025-03-05"),
        Some("2025-03-05 09:15:00"),
        Some("Gómez, Luis"),
        Some("+34 91 555 0199"),
        Some("TRA1"),
        Some("RX-KNEE"),
        Some(notes),
        Some("20.00"),
        Some("BUKTOR"),
    ])
}

/// A-1003 once replayed with the fixed map, and its note after it: no
/// phone, procedure or amount (NULL), a ward the file lacks (its default).
fn a1003() -> Vec<Option<String>> {
    row([
        Some("A-1003"),
        Some("MRN-0100"),
        Some("T"),
        Some("2025-03-31"),
        Some("2025-03-31 00:30:00"),
        Some("Sanz, Marta"),
        None,
        Some("GEN"),
        None,
        Some("Llamar antes"),
        None,
        Some("BUKTOR"),
    ])
}

/// The journal's (id, status, last_error) of every event, once none is
/// pending.
fn settled(setup: &Setup, count: usize) -> Vec<Vec<Value>> {
    let journal = setup.journal();
    wait_for(PATIENCE, &format!("{count} events settled"), || {
        let rows = query(&journal, "SELECT id, status, last_error FROM events ORDER BY id");
        Some(rows).filter(|rows| rows.len() == count && rows.iter().all(|r| r[1] != "pending"))
    })
}

fn post(middleware: &Middleware, event: &str) -> i64 {
    let response = middleware.post_event(event);
    assert_eq!(response.status, 200, "{event}: {}", response.body);
    response.json()["id"].as_i64().expect("a journal id")
}

/// The samples of `name` in a scrape of /metrics, as written.
fn samples(middleware: &Middleware, name: &str) -> Vec<String> {
    let response = middleware.request("GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    response.body.lines().filter(|l| l.starts_with(&format!("{name}{{"))).map(str::to_string).collect()
}

/// Runs the scenario against the HIS whose table `his` reads (every
/// column of [`COLUMNS`] as text, ordered by VISIT_NO). `setup` has the
/// database section, the table and an admin token.
fn scenario(mut setup: Setup, his: impl Fn() -> Rows) {
    std::fs::write(setup.path("wards.csv"), WARDS_CSV).unwrap();
    setup.config["mapping"] = mappings(statuses());
    let mut middleware = setup.start();

    // 1. Two appointments.
    for event in APPOINTMENTS {
        post(&middleware, event);
    }
    let outcomes = settled(&setup, 2);
    assert!(outcomes.iter().all(|r| r[1] == "delivered"), "{outcomes:?}");
    assert_eq!(his(), [a1001("C"), a1002("Primera visita")]);
    let truncated = "buktor_values_truncated_total";
    let cut = wait_for(PATIENCE, "the cut notes counted at /metrics", || {
        Some(samples(&middleware, truncated)).filter(|s| !s.is_empty())
    });
    assert_eq!(cut, [format!("{truncated}{{event_type=\"appointment\"}} 1")]);

    // 2 and 3. A note, a cancellation; 4. a status the map lacks.
    post(&middleware, NOTE_1002);
    post(&middleware, CANCEL_1001);
    let tentative = post(&middleware, TENTATIVE_1003);
    let outcomes = settled(&setup, 5);
    let settled_as: Vec<&Value> = outcomes.iter().map(|r| &r[1]).collect();
    assert_eq!(settled_as, ["delivered", "delivered", "delivered", "delivered", "failed"], "{outcomes:?}");
    assert_eq!(outcomes[4][0], json!(tentative));
    assert_eq!(outcomes[4][2], json!(TENTATIVE_ERROR), "one line: the field, the mapping path, the value");
    assert_eq!(his(), [a1001("X"), a1002("Trae informe previo")], "the note and the cancellation leave the rest");
    assert_eq!(
        samples(&middleware, truncated),
        [format!("{truncated}{{event_type=\"appointment\"}} 1")],
        "a note that fits is not counted"
    );
    // A-1003's next event waits behind the failed one.
    let note = post(&middleware, NOTE_1003);
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
    assert_eq!(
        query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {note}")),
        [[json!("pending")]],
        "held behind #{tentative}: neither tried nor failed"
    );

    // The operator adds the status to the map, restarts and replays.
    let mut fixed = statuses();
    fixed["tentative"] = json!("T");
    setup.config["mapping"] = mappings(fixed);
    let middleware = setup.start();
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let replayed = middleware.request(
        "POST",
        "/admin/replay",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        json!({"id": tentative}).to_string().as_bytes(),
    );
    assert_eq!(
        (replayed.status, replayed.json()),
        (200, json!({"replayed": 1, "still_unmapped": 0, "superseded": 0, "notes": []}))
    );
    let outcomes = settled(&setup, 6);
    assert!(outcomes.iter().all(|r| r[1] == "delivered"), "{outcomes:?}\n{}", middleware.logs());
    assert_eq!(his(), [a1001("X"), a1002("Trae informe previo"), a1003()]);
}

/// A setup whose HIS is the SQLite file `his.db`, with the table.
fn sqlite_setup() -> Setup {
    let mut setup = Setup::new().with_admin_token();
    setup.config["database"]["create_missing"] = json!(false);
    setup.his().execute_batch(PATIENT_VISITS).unwrap();
    setup
}

#[test]
fn a_hospital_visit_scenario_maps_and_transforms_into_sqlite() {
    let setup = sqlite_setup();
    let path = setup.path("his.db");
    // SQLite keeps a decimal as a number (NUMERIC affinity), shown here
    // with the HIS's two places; text (an unparsed "12,50") shows as it
    // is. Its date-times are the ISO text written.
    let amount = "CASE WHEN typeof(AMOUNT) IN ('integer', 'real') THEN printf('%.2f', AMOUNT) ELSE AMOUNT END";
    let columns = COLUMNS.replace("VISIT_START", "replace(VISIT_START, 'T', ' ')").replace("AMOUNT", amount);
    let sql = format!("SELECT {columns} FROM PATIENT_VISITS ORDER BY VISIT_NO");
    let his = move || -> Rows {
        let connection = rusqlite::Connection::open(&path).expect("open the HIS");
        let text = |v: Value| v.as_str().map(str::to_string).or_else(|| (!v.is_null()).then(|| v.to_string()));
        query(&connection, &sql).into_iter().map(|r| r.into_iter().map(text).collect()).collect()
    };
    scenario(setup, his);
    verified(
        "mapping_transforms",
        "paths, const, template, coalesce and every transform, partial update, soft delete, fix and replay, in SQLite",
    );
}

#[test]
fn a_hospital_visit_scenario_maps_and_transforms_into_mariadb() {
    let Some(server) = mysql::server("a_hospital_visit_scenario_maps_and_transforms_into_mariadb") else { return };
    let db = server.database();
    db.execute(PATIENT_VISITS);
    let mut setup = Setup::new().with_admin_token();
    setup.config["database"] = db.config();
    let sql = format!(
        "SELECT {} FROM PATIENT_VISITS ORDER BY VISIT_NO",
        COLUMNS.split(", ").map(|c| format!("CAST({c} AS CHAR)")).collect::<Vec<_>>().join(", ")
    );
    scenario(setup, || db.rows(&sql));
    verified("mapping_transforms", &format!("the hospital visit scenario in MariaDB ({})", db.name));
}
