//! `buktor-middleware status`: the journal at a glance, from the real
//! binary, with the middleware stopped and while it runs.

use std::{path::Path, process::Output, time::Duration};

use buktor_tests::{Setup, artifacts, query, wait_for};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

fn run_status(config: &Path, json: bool) -> Output {
    let mut command = std::process::Command::new(&artifacts().binary);
    command.arg("status").arg("--config").arg(config);
    if json {
        command.arg("--json");
    }
    command.output().unwrap()
}

fn succeeded(output: Output) -> String {
    assert!(output.status.success(), "status failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn status_json(config: &Path) -> Value {
    let text = succeeded(run_status(config, true));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{text}"))
}

fn status_text(config: &Path) -> String {
    succeeded(run_status(config, false))
}

/// The line of `text` that starts with `label` (a text line's first
/// column).
fn line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{label:<11} ")))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

fn counts(pending: i64, delivered: i64, failed: i64, unmapped: i64) -> Value {
    json!({
        "pending": pending,
        "delivered": delivered,
        "failed": failed,
        "unmapped": unmapped,
        "total": pending + delivered + failed + unmapped,
    })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn post(middleware: &buktor_tests::Middleware, body: Value) -> i64 {
    let response = middleware.post_event(&body.to_string());
    assert!(response.status == 200 || response.status == 202, "{body}: {} {}", response.status, response.body);
    response.json()["id"].as_i64().expect("a journal id")
}

#[test]
fn without_a_journal_it_says_the_middleware_has_not_run() {
    let setup = Setup::new();
    let config = setup.write_config();
    for json in [false, true] {
        let output = run_status(&config, json);
        assert!(!output.status.success());
        assert!(output.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&output.stdout));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!(
            "error: no journal at {}: the middleware has not run with this config yet",
            setup.path("journal.db").display()
        );
        assert_eq!(stderr.trim_end(), expected);
    }
    assert!(!setup.path("journal.db").exists(), "status does not create a journal");

    // A file that is not a journal (here, an empty one) is named as such.
    std::fs::write(setup.path("journal.db"), b"").unwrap();
    let output = run_status(&config, false);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has schema version 0, older than this buktor-middleware's "), "{stderr}");
    assert_eq!(file_len(&setup.path("journal.db")), 0, "and it is left as it was");
}

#[test]
fn an_empty_journal_has_zero_everywhere_and_status_changes_nothing() {
    let setup = Setup::new();
    let mut middleware = setup.start();
    assert!(middleware.terminate().success());
    let config = setup.write_config();
    let journal = setup.path("journal.db");
    let before = std::fs::read(&journal).unwrap();

    let status = status_json(&config);
    assert_eq!(status["events"], counts(0, 0, 0, 0));
    assert_eq!(status["by_type"], json!({}));
    assert_eq!(status["retrying"], json!(0));
    assert_eq!(status["oldest_pending"], Value::Null);
    assert_eq!(status["last_delivery"], Value::Null);
    assert_eq!(status["last_error"], Value::Null);
    let (database, wal) = (file_len(&journal), file_len(&setup.path("journal.db-wal")));
    assert_eq!(
        status["journal"],
        json!({
            "path": journal.display().to_string(),
            "size_bytes": database + wal,
            "database_bytes": database,
            "wal_bytes": wal,
        })
    );

    let text = status_text(&config);
    assert!(line(&text, "journal").starts_with(&format!("journal     {} (", journal.display())), "{text}");
    for expected in
        ["events      0", "pending     0", "delivered   0", "failed      0", "unmapped    0", "last error  none"]
    {
        assert!(text.lines().any(|l| l == expected), "no line {expected:?} in:\n{text}");
    }
    assert!(!text.contains("type "), "no table without events:\n{text}");
    assert_eq!(std::fs::read(&journal).unwrap(), before, "status opens the journal read only");
}

#[test]
fn delivered_failed_held_and_unmapped_events_are_counted_while_running_and_after() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    // HIS_appointments lacks HIS_created_at: every appointment fails.
    setup
        .his()
        .execute_batch(
            "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT);
             CREATE TABLE HIS_payments (HIS_payment_id INTEGER PRIMARY KEY, HIS_amount TEXT, HIS_payment_status TEXT, HIS_paid_at TEXT);
             CREATE TABLE HIS_schedules (HIS_schedule_id INTEGER PRIMARY KEY, HIS_new_time TEXT, HIS_updated_at TEXT);",
        )
        .unwrap();
    let mut middleware = setup.start();
    let config = setup.write_config();

    let delivered = [
        post(&middleware, json!({"event_type": "payment", "payment_id": 1, "amount": "10", "status": "paid"})),
        post(&middleware, json!({"event_type": "payment", "payment_id": 2, "amount": "20", "status": "paid"})),
        post(
            &middleware,
            json!({"event_type": "schedule_change", "schedule_id": 3, "new_time": "2026-01-01T09:00:00"}),
        ),
    ];
    wait_for(PATIENCE, "three delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(3)]]).then_some(())
    });
    let failed = [
        post(&middleware, json!({"event_type": "appointment", "appointment_id": 1, "status": "booked"})),
        post(&middleware, json!({"event_type": "appointment", "appointment_id": 2, "status": "booked"})),
    ];
    wait_for(PATIENCE, "two failed", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'failed'");
        (rows == [vec![json!(2)]]).then_some(())
    });
    // A later event for a failed row waits behind it: pending, not retrying.
    let held = post(&middleware, json!({"event_type": "appointment", "appointment_id": 1, "status": "moved"}));
    let unmapped = [
        post(&middleware, json!({"event_type": "refund", "refund_id": 1})),
        post(&middleware, json!({"event_type": "refund", "refund_id": 2})),
    ];
    assert_eq!(
        setup.journal_statuses(),
        [
            vec![json!("delivered"), json!(3)],
            vec![json!("failed"), json!(2)],
            vec![json!("pending"), json!(1)],
            vec![json!("unmapped"), json!(2)],
        ]
    );
    let journal = setup.journal();
    let received_at =
        |id: i64| query(&journal, &format!("SELECT received_at FROM events WHERE id = {id}"))[0][0].clone();
    let (held_received_at, failed_received_at) = (received_at(held), received_at(failed[1]));
    let last_delivered_at = query(&journal, "SELECT MAX(delivered_at) FROM events")[0][0].clone();
    let last_delivered: Vec<Value> = query(
        &journal,
        &format!("SELECT id FROM events WHERE delivered_at = '{}'", last_delivered_at.as_str().unwrap()),
    )
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    drop(journal);

    let check = |status: &Value| {
        assert_eq!(status["events"], counts(1, 3, 2, 2), "{status:#}");
        assert_eq!(
            status["by_type"],
            json!({
                "appointment": counts(1, 0, 2, 0),
                "payment": counts(0, 2, 0, 0),
                "refund": counts(0, 0, 0, 2),
                "schedule_change": counts(0, 1, 0, 0),
            })
        );
        let types: Vec<&String> = status["by_type"].as_object().unwrap().keys().collect();
        assert_eq!(types, ["appointment", "payment", "refund", "schedule_change"], "most events first, then by name");
        assert_eq!(status["retrying"], json!(0));

        let oldest = &status["oldest_pending"];
        assert_eq!((&oldest["id"], &oldest["event_type"]), (&json!(held), &json!("appointment")));
        assert_eq!(oldest["received_at"], held_received_at);
        assert_eq!(oldest["held_by"], json!(failed[0]), "it waits behind its row's failed event");
        assert!(oldest["age_secs"].as_u64().unwrap() < 60, "{oldest}");

        let last = &status["last_delivery"];
        assert_eq!(last["delivered_at"], last_delivered_at);
        assert!(last_delivered.contains(&last["id"]), "{last} is one of {last_delivered:?}");
        assert!(last["id"].as_i64().is_some_and(|id| delivered.contains(&id)));
        assert!(last["age_secs"].as_u64().unwrap() < 60, "{last}");

        let error = &status["last_error"];
        assert_eq!(error["id"], json!(failed[1]), "the newest failed event: {error}");
        assert_eq!(error["event_type"], json!("appointment"));
        assert_eq!(error["status"], json!("failed"));
        assert_eq!(error["attempts"], json!(1));
        assert_eq!(error["next_attempt_at"], Value::Null);
        assert_eq!(error["next_attempt_in_secs"], Value::Null);
        assert_eq!(error["received_at"], failed_received_at);
        assert!(error["message"].as_str().unwrap().contains("HIS_created_at"), "{error}");
    };

    // While the middleware runs.
    let running = status_json(&config);
    check(&running);
    let journal_file = &running["journal"];
    assert_eq!(
        journal_file["size_bytes"].as_u64().unwrap(),
        journal_file["database_bytes"].as_u64().unwrap() + journal_file["wal_bytes"].as_u64().unwrap()
    );
    assert!(journal_file["wal_bytes"].as_u64().unwrap() > 0, "a running middleware has a write-ahead log");

    let text = status_text(&config);
    assert_eq!(line(&text, "events"), "events      8");
    let pending = line(&text, "pending");
    assert!(
        pending.starts_with("pending     1 (oldest ")
            && pending.ends_with(&format!(" ago: #{held} appointment, held by failed #{})", failed[0])),
        "{pending}"
    );
    let delivered_line = line(&text, "delivered");
    assert!(
        delivered_line.starts_with("delivered   3 (last ")
            && delivered_line.ends_with(&format!(" ago, at {})", last_delivered_at.as_str().unwrap())),
        "{delivered_line}"
    );
    assert_eq!(line(&text, "failed"), "failed      2 (list them: buktor-middleware events --status failed)");
    assert_eq!(line(&text, "unmapped"), "unmapped    2 (list them: buktor-middleware events --status unmapped)");
    let error_line = line(&text, "last error");
    assert!(
        error_line.starts_with(&format!("last error  #{} appointment (failed after 1 attempt; received ", failed[1])),
        "{error_line}"
    );
    let message = text.lines().skip_while(|l| !l.starts_with("last error")).nth(1).unwrap();
    assert!(message.starts_with("            ") && message.contains("HIS_created_at"), "{message}");
    let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("type ")).collect();
    assert_eq!(
        table,
        [
            "type             pending  delivered  failed  unmapped  total",
            "appointment            1          0       2         0      3",
            "payment                0          2       0         0      2",
            "refund                 0          0       0         2      2",
            "schedule_change        0          1       0         0      1",
        ],
        "{text}"
    );
    let _ = unmapped;

    // Stopped: the same numbers, and the size is the files' on disk.
    assert!(middleware.terminate().success());
    let stopped = status_json(&config);
    check(&stopped);
    let journal_path = setup.path("journal.db");
    let (database, wal) = (file_len(&journal_path), file_len(&setup.path("journal.db-wal")));
    assert_eq!(
        stopped["journal"],
        json!({
            "path": journal_path.display().to_string(),
            "size_bytes": database + wal,
            "database_bytes": database,
            "wal_bytes": wal,
        })
    );
}

#[test]
fn a_retrying_event_is_the_last_error_until_it_is_delivered() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.config["database"]["busy_timeout_ms"] = json!(50);
    setup
        .his()
        .execute_batch("CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT)")
        .unwrap();
    // Hold the HIS file locked: writes fail, retryably.
    let lock = setup.his();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let middleware = setup.start();
    let config = setup.write_config();

    let id = post(&middleware, json!({"event_type": "appointment", "appointment_id": 7, "status": "booked"}));
    wait_for(PATIENCE, "a retryable failure", || {
        let rows = query(&setup.journal(), &format!("SELECT attempts > 0 FROM events WHERE id = {id}"));
        (rows == [vec![json!(1)]]).then_some(())
    });
    let status = status_json(&config);
    assert_eq!(status["events"], counts(1, 0, 0, 0));
    assert_eq!(status["retrying"], json!(1));
    assert_eq!(status["oldest_pending"]["id"], json!(id));
    assert_eq!(status["oldest_pending"]["held_by"], Value::Null);
    let error = &status["last_error"];
    assert_eq!((&error["id"], &error["status"]), (&json!(id), &json!("pending")), "{error}");
    assert!(error["attempts"].as_i64().unwrap() >= 1, "{error}");
    assert!(error["next_attempt_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{error}");
    assert!(error["next_attempt_in_secs"].as_u64().is_some_and(|s| s <= 1), "retry_max_delay_secs is 1: {error}");
    assert!(error["message"].as_str().unwrap().contains("(retryable)"), "{error}");
    let text = status_text(&config);
    assert!(line(&text, "pending").ends_with(&format!("#{id} appointment; 1 retrying)")), "{text}");
    assert!(
        line(&text, "last error").starts_with(&format!("last error  #{id} appointment (pending, retrying after ")),
        "{text}"
    );

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let status = wait_for(PATIENCE, "the event delivered", || {
        let status = status_json(&config);
        (status["events"] == counts(0, 1, 0, 0)).then_some(status)
    });
    assert_eq!(status["retrying"], json!(0));
    assert_eq!(status["oldest_pending"], Value::Null);
    assert_eq!(status["last_error"], Value::Null, "a delivered event has no error");
    assert_eq!(status["last_delivery"]["id"], json!(id));
}

#[test]
fn numbers_agree_with_each_other_while_events_flow() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.config["database"]["busy_timeout_ms"] = json!(50);
    setup
        .his()
        .execute_batch(
            "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT);
             CREATE TABLE HIS_payments (HIS_payment_id INTEGER PRIMARY KEY, HIS_amount TEXT, HIS_payment_status TEXT, HIS_paid_at TEXT);",
        )
        .unwrap();
    // The HIS stays locked until the first 100 events are in: they wait.
    let lock = setup.his();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let middleware = setup.start();
    let config = setup.write_config();
    // 300 events, 100 at a time: after each hundred the sender waits until
    // the test has looked, so that a look sees exactly what was answered.
    let (sent_tx, sent) = std::sync::mpsc::channel::<i64>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = {
        let address = middleware.address.clone();
        std::thread::spawn(move || {
            for n in 0..300 {
                let body = json!({"event_type": if n % 3 == 0 { "payment" } else { "appointment" },
                                  "appointment_id": n, "payment_id": n, "status": "x"})
                .to_string();
                let headers = [("Content-Type", "application/json")];
                let response =
                    buktor_tests::http::request(&address, "POST", "/receive-event", &headers, body.as_bytes()).unwrap();
                assert_eq!(response.status, 200, "{}", response.body);
                if n % 100 == 99 {
                    sent_tx.send(n + 1).unwrap();
                    go_rx.recv().unwrap();
                }
            }
        })
    };
    let mut lock = Some(lock);
    let mut looks = 0;
    loop {
        let answered = sent.try_recv();
        let status = status_json(&config);
        looks += 1;
        let events = &status["events"];
        let sum: i64 = ["pending", "delivered", "failed", "unmapped"].iter().map(|s| events[s].as_i64().unwrap()).sum();
        assert_eq!(events["total"].as_i64().unwrap(), sum, "{status:#}");
        for s in ["pending", "delivered", "failed", "unmapped", "total"] {
            let by_type: i64 = status["by_type"].as_object().unwrap().values().map(|c| c[s].as_i64().unwrap()).sum();
            assert_eq!(events[s].as_i64().unwrap(), by_type, "{s}: {status:#}");
        }
        assert_eq!(events["pending"] == json!(0), status["oldest_pending"].is_null(), "{status:#}");
        assert_eq!(events["delivered"] == json!(0), status["last_delivery"].is_null(), "{status:#}");
        assert!(status["retrying"].as_i64().unwrap() <= events["pending"].as_i64().unwrap(), "{status:#}");
        match answered {
            Ok(answered) => {
                // The sender waits: every event answered 200 is counted.
                assert_eq!(events["total"], json!(answered), "{status:#}");
                if let Some(lock) = lock.take() {
                    // None could be written yet: all pending, the oldest first.
                    assert_eq!(*events, counts(100, 0, 0, 0), "{status:#}");
                    assert_eq!(status["by_type"]["payment"], counts(34, 0, 0, 0));
                    assert_eq!(status["oldest_pending"]["id"], json!(1), "{status:#}");
                    lock.execute_batch("ROLLBACK").unwrap();
                }
                go.send(()).unwrap();
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
        }
    }
    sender.join().unwrap();
    let status = wait_for(PATIENCE, "all 300 delivered", || {
        let status = status_json(&config);
        (status["events"] == counts(0, 300, 0, 0)).then_some(status)
    });
    assert_eq!(status["by_type"]["payment"], counts(0, 100, 0, 0));
    assert_eq!(status["by_type"]["appointment"], counts(0, 200, 0, 0));
    println!("status agreed with itself in {looks} looks while events flowed");
}
