//! The whole pipeline through the real binary and the real sqlite plugin:
//! intake → journal → sync worker → plugin → HIS table.

use std::time::Duration;

use buktor_tests::{Setup, audit, query, seed, wait_for};
use serde_json::{Value, json};

/// The seed's three events, byte for byte.
const APPOINTMENT: &str = seed::CURL_BODIES[0];
const SCHEDULE_CHANGE: &str = seed::CURL_BODIES[1];
const PAYMENT: &str = seed::CURL_BODIES[2];

const PATIENCE: Duration = Duration::from_secs(10);

fn wait_for_rows(setup: &Setup, sql: &str, count: usize) -> Vec<Vec<Value>> {
    let his = setup.his();
    wait_for(PATIENCE, &format!("{count} rows from {sql}"), || {
        let rows = query(&his, sql);
        (rows.len() == count).then_some(rows)
    })
}

fn received_at(setup: &Setup, id: i64) -> String {
    let rows = query(&setup.journal(), &format!("SELECT received_at FROM events WHERE id = {id}"));
    rows[0][0].as_str().expect("received_at is text").to_string()
}

#[test]
fn the_seed_events_land_as_mapped_rows() {
    let setup = Setup::new();
    let middleware = setup.start();

    let mut ids = Vec::new();
    for body in [APPOINTMENT, SCHEDULE_CHANGE, PAYMENT] {
        let response = middleware.post_event(body);
        assert_eq!(response.status, 200, "{body}: {}", response.body);
        let answer = response.json();
        assert_eq!(answer["status"], "accepted");
        ids.push(answer["id"].as_i64().expect("a numeric journal id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");

    let appointments =
        wait_for_rows(&setup, "SELECT HIS_appointment_id, HIS_status, HIS_created_at FROM HIS_appointments", 1);
    assert_eq!(appointments, [vec![json!(123), json!("confirmed"), json!(received_at(&setup, ids[0]))]]);
    let schedules = wait_for_rows(&setup, "SELECT HIS_schedule_id, HIS_new_time, HIS_updated_at FROM HIS_schedules", 1);
    assert_eq!(schedules, [vec![json!(456), json!("2025-03-03T09:00:00"), json!(received_at(&setup, ids[1]))]]);
    let payments = wait_for_rows(
        &setup,
        "SELECT HIS_payment_id, HIS_amount, HIS_payment_status, HIS_paid_at FROM HIS_payments",
        1,
    );
    assert_eq!(payments, [vec![json!(789), json!("1500"), json!("paid"), json!("2025-03-02T11:00:00")]]);

    // The receive time is ISO 8601 in UTC.
    let created = received_at(&setup, ids[0]);
    assert!(created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");

    let expected: Vec<Vec<Value>> = ids
        .iter()
        .zip(["appointment", "schedule_change", "payment"])
        .map(|(id, t)| vec![json!(id), json!(t), json!("delivered"), json!(1), Value::Null])
        .collect();
    let journal_sql = "SELECT id, event_type, status, attempts, last_error FROM events ORDER BY id";
    wait_for(PATIENCE, "the journal to mark all three delivered", || {
        (query(&setup.journal(), journal_sql) == expected).then_some(())
    });
}

#[test]
fn the_payload_is_journaled_byte_for_byte() {
    let setup = Setup::new();
    let middleware = setup.start();
    let id = middleware.post_event(PAYMENT).json()["id"].as_i64().unwrap();
    let rows = query(&setup.journal(), &format!("SELECT body FROM payloads WHERE event_id = {id}"));
    assert_eq!(rows, [vec![json!(PAYMENT)]]);
}

#[test]
fn a_second_event_for_the_same_key_updates_the_row() {
    let setup = Setup::new();
    let middleware = setup.start();
    middleware.post_event(APPOINTMENT);
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments WHERE HIS_status = 'confirmed'", 1);
    let response = middleware.post_event(
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "cancelled", "received_at": "2025-03-04T10:00:00Z"}"#,
    );
    assert_eq!(response.status, 200);
    let rows = wait_for_rows(
        &setup,
        "SELECT HIS_appointment_id, HIS_status, HIS_created_at FROM HIS_appointments WHERE HIS_status = 'cancelled'",
        1,
    );
    assert_eq!(rows, [vec![json!(123), json!("cancelled"), json!("2025-03-04T10:00:00Z")]]);
    assert_eq!(query(&setup.his(), "SELECT COUNT(*) FROM HIS_appointments"), [vec![json!(1)]]);
}

#[test]
fn updates_to_one_key_in_a_burst_apply_in_order() {
    let mut setup = Setup::new();
    create_audited_his(&mut setup);
    let middleware = setup.start();
    // Many events for few keys, sent back to back: the worker sees repeats
    // of a key in one window and must write them in receive order.
    for i in 0..200 {
        let body = json!({"event_type": "appointment", "appointment_id": i % 5, "status": format!("state-{i}")});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    wait_for(PATIENCE, "all 200 events delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(200)]]).then_some(())
    });
    let rows = query(&setup.his(), "SELECT HIS_appointment_id, HIS_status FROM HIS_appointments ORDER BY 1");
    let expected: Vec<Vec<Value>> = (0..5).map(|k| vec![json!(k), json!(format!("state-{}", 195 + k))]).collect();
    assert_eq!(rows, expected);
    assert_each_row_went_through_its_states_in_receive_order(&setup, 200, 5);
}

#[test]
fn two_event_types_writing_one_row_apply_in_receive_order() {
    let mut setup = Setup::new();
    create_audited_his(&mut setup);
    for event_type in ["appointment_created", "appointment_updated"] {
        setup.config["mapping"][event_type] = json!({
            "table": "HIS_appointments",
            "fields": {"appointment_id": "HIS_appointment_id", "status": "HIS_status"}
        });
    }
    let middleware = setup.start();
    // Alternating types for the same rows, sent back to back so that the
    // worker sees them in one window.
    for i in 0..60 {
        let event_type = if i % 2 == 0 { "appointment_created" } else { "appointment_updated" };
        let body = json!({"event_type": event_type, "appointment_id": i % 3, "status": format!("state-{i}")});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    wait_for(PATIENCE, "all 60 events delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(60)]]).then_some(())
    });
    let rows = query(&setup.his(), "SELECT HIS_appointment_id, HIS_status FROM HIS_appointments ORDER BY 1");
    let expected: Vec<Vec<Value>> = (0..3).map(|k| vec![json!(k), json!(format!("state-{}", 57 + k))]).collect();
    assert_eq!(rows, expected);
    assert_each_row_went_through_its_states_in_receive_order(&setup, 60, 3);
}

/// Event `i` of `events` was state `i` of row `i % rows`: the audit trail
/// must show each row taking each of its states once, in receive order
/// (the final states alone cannot show a row that went back and forth).
fn assert_each_row_went_through_its_states_in_receive_order(setup: &Setup, events: usize, rows: usize) {
    let histories = audit::sqlite(&setup.his());
    assert_eq!(histories.len(), rows, "{histories:?}");
    for (key, history) in &histories {
        let expected: Vec<usize> = (*key as usize..events).step_by(rows).collect();
        assert_eq!(history, &expected, "row {key}: each of its states once, in receive order");
    }
}

#[test]
fn sigterm_does_not_wait_forever_for_a_stalled_sender() {
    let setup = Setup::new();
    let mut middleware = setup.start();
    // Headers, then half a body, then silence.
    let mut stalled = std::net::TcpStream::connect(&middleware.address).unwrap();
    std::io::Write::write_all(
        &mut stalled,
        b"POST /receive-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event_type\"",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let status = middleware.terminate();
    assert!(status.success(), "exit status {status}\n{}", middleware.logs());
    assert!(middleware.logs().contains("requests still in flight after 10s; stopping anyway"), "{}", middleware.logs());
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(0)]]);
}

#[test]
fn an_unmapped_event_is_journaled_and_answered_202_with_a_warning() {
    let setup = Setup::new();
    let middleware = setup.start();
    let response = middleware.post_event(r#"{"event_type": "refund", "refund_id": 5, "amount": "20.00"}"#);
    assert_eq!(response.status, 202, "{}", response.body);
    let answer = response.json();
    assert_eq!(answer["status"], "unmapped");
    let warning = answer["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("no mapping for event_type \"refund\"") && warning.contains("mapping.refund"),
        "{warning}"
    );
    let id = answer["id"].as_i64().unwrap();

    // Mapped events after it still flow; the unmapped one stays put.
    middleware.post_event(APPOINTMENT);
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments", 1);
    let rows = query(
        &setup.journal(),
        &format!("SELECT event_type, status, body FROM events JOIN payloads ON event_id = id WHERE id = {id}"),
    );
    assert_eq!(
        rows,
        [vec![
            json!("refund"),
            json!("unmapped"),
            json!(r#"{"event_type": "refund", "refund_id": 5, "amount": "20.00"}"#)
        ]]
    );
}

#[test]
fn many_concurrent_senders_are_all_journaled_and_delivered() {
    let setup = Setup::new();
    let middleware = setup.start();
    let mut ids = middleware.post_concurrently(16, 400, |n| {
        json!({"event_type": "payment", "payment_id": n, "amount": "10.50", "status": "paid"}).to_string()
    });
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 400, "every answer names its own journal id");
    wait_for_rows(&setup, "SELECT * FROM HIS_payments WHERE HIS_amount = '10.50'", 400);
}

#[test]
fn sigterm_stops_cleanly() {
    let setup = Setup::new();
    let mut middleware = setup.start();
    middleware.post_event(APPOINTMENT);
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments", 1);
    let status = middleware.terminate();
    assert!(status.success(), "exit status {status}\n{}", middleware.logs());
    assert!(middleware.logs().contains("stopped"), "{}", middleware.logs());
}

/// The appointments table made by hand, with triggers that log every
/// write (`applied`; see [`audit`]), so a test can tell "written once" from
/// "written twice with the same values", and see each state in turn.
fn create_audited_his(setup: &mut Setup) {
    setup.his().execute_batch(audit::SQLITE).unwrap();
    setup.config["database"]["create_missing"] = json!(false);
}

#[test]
fn pending_events_survive_a_kill_and_arrive_once_after_restart() {
    let mut setup = Setup::new();
    create_audited_his(&mut setup);
    setup.config["database"]["busy_timeout_ms"] = json!(50);

    // Hold the HIS file locked, so writes fail (retryably) and events stay pending.
    let lock = setup.his();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut middleware = setup.start();
    for i in 1..=5 {
        let body = json!({"event_type": "appointment", "appointment_id": i, "status": "booked"});
        assert_eq!(middleware.post_event(&body.to_string()).status, 200);
    }
    wait_for(PATIENCE, "a failed, retryable write attempt", || {
        let rows = query(
            &setup.journal(),
            "SELECT COUNT(*) FROM events WHERE status = 'pending' AND attempts > 0 AND last_error LIKE '%locked%'",
        );
        (rows[0][0] == json!(5)).then_some(())
    });
    middleware.kill();
    assert_eq!(setup.journal_statuses(), [vec![json!("pending"), json!(5)]]);

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let mut middleware = setup.start();
    wait_for(PATIENCE, "all five delivered after the restart", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(5)]]).then_some(())
    });
    let his = setup.his();
    assert_eq!(query(&his, "SELECT COUNT(*) FROM HIS_appointments WHERE HIS_status = 'booked'"), [vec![json!(5)]]);
    assert_eq!(query(&his, "SELECT COUNT(*) FROM applied"), [vec![json!(5)]], "each event written exactly once");

    // Kill again with everything delivered: a restart must not write them again.
    middleware.kill();
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 6, "status": "booked"}"#);
    // The worker takes events in journal order, so once the new event is in,
    // anything it were to redeliver would be in too.
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments WHERE HIS_appointment_id = 6", 1);
    assert_eq!(query(&his, "SELECT COUNT(*) FROM applied"), [vec![json!(6)]], "nothing was delivered twice");
}

/// The README's curl commands, as pasted by an operator, against a running
/// middleware (on its test port instead of 5000).
#[test]
fn the_readme_curl_commands_work_as_written() {
    let readme = std::fs::read_to_string(buktor_tests::repo_root().join("README.md")).unwrap();
    let commands = curl_commands(&readme);
    assert_eq!(commands.len(), 3, "the README shows the seed's three curl commands");

    // They send the seed's bodies (the copy in tests/src/seed.rs) ...
    let bodies: Vec<&str> = commands
        .iter()
        .map(|c| {
            c.split_once(" -d '").and_then(|(_, b)| b.strip_suffix('\'')).unwrap_or_else(|| panic!("no body: {c}"))
        })
        .collect();
    assert_eq!(bodies, seed::CURL_BODIES, "the README's curl bodies are the seed's");
    // ... and are the seed documentation's commands verbatim. The
    // documentation is beside the clone in CI, where its absence fails the
    // test; on a clone without it only this comparison is skipped.
    let seed_path = seed::documentation_path();
    match std::fs::read_to_string(&seed_path) {
        Ok(seed) => assert_eq!(commands, curl_commands(&seed), "README and seed curl commands differ"),
        Err(e) => buktor_tests::skipped_unless_strict(
            "the_readme_curl_commands_work_as_written",
            &format!(
                "the seed documentation is not at {} ({e}): the README's curl commands were checked against \
                 tests/src/seed.rs's copy of its bodies, not against the documentation itself",
                seed_path.display()
            ),
        ),
    }

    let setup = Setup::new();
    let middleware = setup.start();
    for command in &commands {
        let command = command.replace("127.0.0.1:5000", &middleware.address);
        let output = std::process::Command::new("bash")
            .args(["-c", &format!("{command} -s -w '\\n%{{http_code}}'")])
            .output()
            .expect("run curl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}\n{}", String::from_utf8_lossy(&output.stderr));
        let (body, status) = stdout.rsplit_once('\n').expect("body and status");
        assert_eq!(status, "200", "{command}: {body}");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["status"], "accepted");
    }
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments", 1);
    wait_for_rows(&setup, "SELECT * FROM HIS_schedules", 1);
    wait_for_rows(&setup, "SELECT * FROM HIS_payments", 1);
}

/// Each `curl -X POST ... -d '...'` command, joined into one line.
fn curl_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("curl -X POST") {
            current = Some(String::new());
        }
        if let Some(command) = current.as_mut() {
            command.push_str(line.trim_end_matches('\\').trim_end());
            command.push(' ');
            if line.starts_with("-d ") {
                commands.push(command.trim().to_string());
                current = None;
            }
        }
    }
    commands
}

/// A permanent refusal sets the event aside as failed at once, holds back
/// only later events for the same row, and lets everything else through.
#[test]
fn a_refused_event_fails_and_holds_back_only_its_own_row() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup
        .his()
        .execute_batch(
            "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT NOT NULL, HIS_created_at TEXT)",
        )
        .unwrap();
    let middleware = setup.start();
    // No status: HIS_status is NOT NULL, so the HIS refuses this row.
    let bad =
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1}"#).json()["id"].as_i64().unwrap();
    let later = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "late"}"#);
    let later = later.json()["id"].as_i64().unwrap();
    for i in 2..=50 {
        middleware.post_event(&json!({"event_type": "appointment", "appointment_id": i, "status": "ok"}).to_string());
    }
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments WHERE HIS_status = 'ok'", 49);
    let rows = query(
        &setup.journal(),
        &format!("SELECT id, status, attempts, last_error FROM events WHERE id IN ({bad}, {later}) ORDER BY id"),
    );
    assert_eq!(rows[0][1], json!("failed"));
    assert_eq!(rows[0][2], json!(1), "failed at once, not retried");
    assert!(rows[0][3].as_str().unwrap().starts_with("constraint error: NOT NULL constraint failed"), "{rows:?}");
    assert_eq!(
        (rows[1][1].clone(), rows[1][2].clone()),
        (json!("pending"), json!(0)),
        "held behind the failed one, untried"
    );
    assert_eq!(
        query(&setup.his(), "SELECT COUNT(*) FROM HIS_appointments WHERE HIS_appointment_id = 1"),
        [vec![json!(0)]]
    );
    assert!(
        middleware.logs().contains("event failed permanently writing to HIS_appointments"),
        "{}",
        middleware.logs()
    );
}

/// Buktor may send an event again (a lost answer, a replay). The same
/// delivery id, in the `webhook-id` header or the configured field, is
/// stored and written once, even across a restart.
#[test]
fn a_resent_delivery_is_journaled_and_written_once() {
    let mut setup = Setup::new();
    setup.config["server"]["delivery_id_field"] = json!("event_id");
    create_audited_his(&mut setup);
    let mut middleware = setup.start();
    let send = |middleware: &buktor_tests::Middleware, webhook_id: &str| {
        middleware.request(
            "POST",
            "/receive-event",
            &[("Content-Type", "application/json"), ("webhook-id", webhook_id)],
            br#"{"event_type": "appointment", "appointment_id": 7, "status": "confirmed"}"#,
        )
    };
    let first = send(&middleware, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    assert_eq!((first.status, first.json()["status"].clone()), (200, json!("accepted")));
    let id = first.json()["id"].clone();
    for _ in 0..2 {
        let again = send(&middleware, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!((again.status, again.json()), (200, json!({"id": id, "status": "duplicate"})));
    }
    // Without the header, the configured event field is the delivery id.
    let body = r#"{"event_type": "appointment", "appointment_id": 8, "status": "confirmed", "event_id": "evt-8"}"#;
    let by_field = middleware.post_event(body).json();
    assert_eq!(middleware.post_event(body).json(), json!({"id": by_field["id"], "status": "duplicate"}));

    wait_for_rows(&setup, "SELECT * FROM HIS_appointments", 2);
    // Killed only once the journal has recorded both deliveries: a kill
    // between the HIS commit and that record would (rightly) write again.
    wait_for(PATIENCE, "both recorded as delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(2)]]).then_some(())
    });
    middleware.kill();
    let middleware = setup.start();
    let after_restart = send(&middleware, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    assert_eq!(after_restart.json(), json!({"id": id, "status": "duplicate"}), "remembered across a restart");

    // A new delivery still goes through, and only the two originals were written.
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 9, "status": "confirmed"}"#);
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments WHERE HIS_appointment_id = 9", 1);
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(3)]]);
    assert_eq!(query(&setup.his(), "SELECT COUNT(*) FROM applied"), [vec![json!(3)]], "one HIS write per delivery");

    let too_long = send(&middleware, &"x".repeat(300));
    assert_eq!((too_long.status, too_long.json()["error"].clone()), (422, json!("invalid_delivery_id")));
}

/// One HIS row has one event key, whichever mapping writes it (issue 20,
/// race 5). Two mappings of one table, the table spelled in another case
/// and the key's fields listed in another order, alternate on one row; the
/// first event fails for good. Every later event of that row, of either
/// type, must wait behind it, not only those of the failed event's type.
#[test]
fn a_failed_event_holds_its_rows_later_events_of_every_mapping_of_its_table() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup
        .his()
        .execute_batch(
            "CREATE TABLE his_appointments (HIS_clinic_id INTEGER, HIS_appointment_id INTEGER,
                                            HIS_status TEXT NOT NULL, PRIMARY KEY (HIS_clinic_id, HIS_appointment_id))",
        )
        .unwrap();
    let mapping = setup.config["mapping"].as_object_mut().unwrap();
    mapping.remove("appointment");
    mapping.insert(
        "appointment_created".into(),
        json!({
            "table": "HIS_Appointments",
            "fields": {"appointment_id": "HIS_appointment_id", "clinic_id": "HIS_clinic_id", "status": "HIS_status"},
            "key": ["appointment_id", "clinic_id"]
        }),
    );
    mapping.insert(
        "appointment_updated".into(),
        json!({
            "table": "his_appointments",
            "fields": {"clinic_id": "HIS_clinic_id", "appointment_id": "HIS_appointment_id", "status": "HIS_status"},
            "key": ["clinic_id", "appointment_id"]
        }),
    );
    let middleware = setup.start();
    let post = |event_type: &str, appointment_id: i64, status: Option<&str>| {
        let mut body = json!({"event_type": event_type, "appointment_id": appointment_id, "clinic_id": 7});
        if let Some(status) = status {
            body["status"] = json!(status);
        }
        let response = middleware.post_event(&body.to_string());
        assert_eq!(response.status, 200, "{body}: {}", response.body);
        response.json()["id"].as_i64().unwrap()
    };
    // No status: HIS_status is NOT NULL, so the HIS refuses it for good.
    let failed = post("appointment_created", 1, None);
    wait_for(PATIENCE, "the first event set aside", || {
        let rows = query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {failed}"));
        (rows == [vec![json!("failed")]]).then_some(())
    });
    // The row's later events, alternating between the two types, and
    // other rows' events of both types among them.
    let mut later = Vec::new();
    for (n, event_type) in ["appointment_updated", "appointment_created", "appointment_updated"].iter().enumerate() {
        later.push(post(event_type, 1, Some(&format!("state-{n}"))));
        post(event_type, 10 + n as i64, Some("ok"));
    }
    wait_for_rows(&setup, "SELECT * FROM his_appointments WHERE HIS_status = 'ok'", 3);
    // Give the worker passes to (wrongly) write them; they stay held.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        query(&setup.his(), "SELECT HIS_status FROM his_appointments WHERE HIS_appointment_id = 1"),
        Vec::<Vec<Value>>::new(),
        "no later state of the failed event's row was written"
    );
    let keys = query(&setup.journal(), "SELECT DISTINCT event_key FROM events WHERE event_key LIKE '%\"1\"%'");
    assert_eq!(keys.len(), 1, "one row, one key: {keys:?}");
    let listing = std::process::Command::new(&buktor_tests::artifacts().binary)
        .args(["events", "--status", "pending", "--json", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let pending: Vec<Value> =
        String::from_utf8_lossy(&listing.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let held: Vec<(Value, Value)> = pending.iter().map(|e| (e["id"].clone(), e["held_by"].clone())).collect();
    assert_eq!(held, later.iter().map(|id| (json!(id), json!(failed))).collect::<Vec<_>>(), "{pending:#?}");
}

/// The journal's schema as the release before issue 20 left it (schema
/// version 1), whose event keys held the table as written and the key
/// values in key-field order.
const JOURNAL_SCHEMA_1: &str = "
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, received_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'unmapped')), event_key TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_at INTEGER NOT NULL DEFAULT 0, delivered_at TEXT);
    CREATE TABLE deliveries (delivery_id TEXT PRIMARY KEY, event_id INTEGER NOT NULL, received_ms INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE payloads (event_id INTEGER PRIMARY KEY REFERENCES events (id), body TEXT NOT NULL);
    CREATE INDEX events_pending ON events (id) WHERE status = 'pending';
    CREATE INDEX events_waiting ON events (event_key, id) WHERE status = 'pending' AND next_attempt_at > 0;
    CREATE INDEX events_failed ON events (event_key, id) WHERE status = 'failed';
    PRAGMA user_version = 1;";

/// After an upgrade, the first start gives the journal's undelivered
/// events this release's keys before it accepts anything: a failed event
/// from before the upgrade still holds back its row's new events.
#[test]
fn an_upgrade_re_keys_the_undelivered_events_so_that_a_failed_one_still_holds_its_row() {
    let setup = Setup::new();
    let old_key = r#"["HIS_appointments","123"]"#;
    let journal = setup.journal();
    journal.execute_batch(JOURNAL_SCHEMA_1).unwrap();
    // Received now: an older delivered event would be pruned (retention)
    // whenever the worker's housekeeping happens to run before the check.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    for (id, status, body) in [
        (1, "delivered", r#"{"event_type": "appointment", "appointment_id": 123, "status": "booked"}"#),
        (2, "failed", r#"{"event_type": "appointment", "appointment_id": "0123", "status": "refused"}"#),
    ] {
        journal
            .execute(
                "INSERT INTO events (id, event_type, received_at, status, event_key, attempts)
                 VALUES (?1, 'appointment', ?4, ?2, ?3, 1)",
                rusqlite::params![id, status, old_key, now],
            )
            .unwrap();
        journal.execute("INSERT INTO payloads (event_id, body) VALUES (?1, ?2)", rusqlite::params![id, body]).unwrap();
    }
    drop(journal);

    let mut middleware = setup.start();
    assert!(
        middleware.logs().contains("event keys: the key format or a mapping's table or key changed since the journal's undelivered events arrived; re-keyed 1 of 1"),
        "{}",
        middleware.logs()
    );
    let keys = query(&setup.journal(), "SELECT id, event_key FROM events ORDER BY id");
    assert_eq!(keys, [vec![json!(1), json!(old_key)], vec![json!(2), json!(r#"["his_appointments","123"]"#)]]);

    let held = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 123, "status": "later"}"#);
    let held = held.json()["id"].as_i64().unwrap();
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 124, "status": "other row"}"#);
    wait_for_rows(&setup, "SELECT * FROM HIS_appointments WHERE HIS_appointment_id = 124", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        query(&setup.his(), "SELECT COUNT(*) FROM HIS_appointments WHERE HIS_appointment_id = 123"),
        [vec![json!(0)]]
    );
    let status = query(&setup.journal(), &format!("SELECT status, attempts FROM events WHERE id = {held}"));
    assert_eq!(status, [vec![json!("pending"), json!(0)]], "held behind the failed event of before the upgrade");

    // The next start finds the keys made with the same mappings: no re-keying.
    assert!(middleware.terminate().success());
    let middleware = setup.start();
    assert!(!middleware.logs().contains("event keys:"), "{}", middleware.logs());
}
