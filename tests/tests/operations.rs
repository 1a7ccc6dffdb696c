//! The operator's commands on the journal: `events` and `replay`, run as
//! separate processes beside the running middleware.

use std::{path::Path, process::Output, time::Duration};

use buktor_tests::{Setup, artifacts, audit, query, wait_for};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

fn run(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(&artifacts().binary).args(args).arg("--config").arg(config).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn status_of(setup: &Setup, id: i64) -> serde_json::Value {
    query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {id}"))[0][0].clone()
}

#[test]
fn a_failed_event_is_listed_holds_its_row_and_arrives_once_replayed() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.config["mapping"]["appointment"]["fields"]["room"] = json!("HIS_room");
    // The appointments table, with every write to it kept in `applied`.
    setup.his().execute_batch(audit::SQLITE).unwrap();
    let middleware = setup.start();
    let config = setup.write_config();

    let first = middleware
        .post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "booked-1", "room": "7"}"#);
    let first = first.json()["id"].as_i64().unwrap();
    wait_for(PATIENCE, "the first event to fail", || (status_of(&setup, first) == json!("failed")).then_some(()));
    let later = middleware
        .post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "moved-2", "room": "8"}"#);
    let later = later.json()["id"].as_i64().unwrap();

    let failed: Vec<serde_json::Value> = stdout(&run(&config, &["events", "--status", "failed", "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], json!(first));
    assert!(failed[0]["last_error"].as_str().unwrap().contains("has no column named HIS_room"), "{failed:?}");

    let table = stdout(&run(&config, &["events", "--status", "pending"]));
    assert!(table.contains(&format!("held by #{first}")), "the hold is visible:\n{table}");
    assert_eq!(status_of(&setup, later), json!("pending"));

    // The operator adds the column, then replays.
    setup.his().execute_batch("ALTER TABLE HIS_appointments ADD COLUMN HIS_room TEXT").unwrap();
    let replayed = stdout(&run(&config, &["replay", "--status", "failed"]));
    assert!(replayed.contains("replayed 1 event(s)"), "{replayed}");
    wait_for(PATIENCE, "both delivered, in order", || {
        (status_of(&setup, first) == json!("delivered") && status_of(&setup, later) == json!("delivered")).then_some(())
    });
    assert_eq!(
        query(&setup.his(), "SELECT HIS_status, HIS_room FROM HIS_appointments"),
        [vec![json!("moved-2"), json!("8")]],
        "the later state wins"
    );
    assert_eq!(audit::sqlite(&setup.his())[&1], [1, 2], "the replayed state once, then the one held behind it");
}

#[test]
fn unmapped_events_are_delivered_once_the_mapping_knows_them_and_they_are_replayed() {
    let mut setup = Setup::new();
    let mut middleware = setup.start();
    let refund = middleware.post_event(r#"{"event_type": "refund", "refund_id": 5, "amount": "20.00"}"#);
    let refund = refund.json()["id"].as_i64().unwrap();
    middleware.terminate();

    setup.config["mapping"]["refund"] =
        json!({"table": "HIS_refunds", "fields": {"refund_id": "HIS_refund_id", "amount": "HIS_amount"}});
    let config = setup.write_config();
    let replayed = stdout(&run(&config, &["replay", "--status", "unmapped", "--type", "refund"]));
    assert!(replayed.contains("replayed 1 event(s)"), "{replayed}");
    let _middleware = setup.start();
    wait_for(PATIENCE, "the refund delivered", || (status_of(&setup, refund) == json!("delivered")).then_some(()));
    assert_eq!(
        query(&setup.his(), "SELECT HIS_refund_id, HIS_amount FROM HIS_refunds"),
        [vec![json!(5), json!("20.00")]]
    );
}

/// An unmapped event holds nothing back: once its type is mapped, newer
/// events of its row are written. Replaying the old one then would move the
/// row back to an older state, so replay leaves it, and says why.
#[test]
fn replay_leaves_an_unmapped_event_that_a_newer_delivered_event_of_its_row_supersedes() {
    let mut setup = Setup::new();
    let mut middleware = setup.start();
    let old = middleware.post_event(r#"{"event_type": "refund", "refund_id": 5, "amount": "20.00"}"#);
    assert_eq!(old.json()["status"], json!("unmapped"));
    let old = old.json()["id"].as_i64().unwrap();
    middleware.terminate();

    setup.config["mapping"]["refund"] =
        json!({"table": "HIS_refunds", "fields": {"refund_id": "HIS_refund_id", "amount": "HIS_amount"}});
    let middleware = setup.start();
    let newer = middleware.post_event(r#"{"event_type": "refund", "refund_id": 5, "amount": "30.00"}"#).json()["id"]
        .as_i64()
        .unwrap();
    wait_for(PATIENCE, "the newer refund delivered", || (status_of(&setup, newer) == json!("delivered")).then_some(()));

    let config = setup.write_config();
    let replayed = stdout(&run(&config, &["replay", "--status", "unmapped"]));
    assert!(replayed.contains("replayed 0 event(s)"), "{replayed}");
    assert!(
        replayed.contains(
            "1 unmapped event(s) left as they were, superseded: a newer event of the same HIS row is already delivered"
        ),
        "{replayed}"
    );
    assert!(replayed.contains("prune --status unmapped"), "what to do about it: {replayed}");
    assert_eq!(status_of(&setup, old), json!("unmapped"));
    let listed: serde_json::Value =
        serde_json::from_str(stdout(&run(&config, &["events", "--status", "unmapped", "--json"])).trim()).unwrap();
    assert!(listed["last_error"].as_str().unwrap().contains(&format!("event {newer}, received later")), "{listed}");

    // Nothing more reaches row 5: a later event of another row is written,
    // and row 5 still holds the newer state.
    let later = middleware.post_event(r#"{"event_type": "refund", "refund_id": 6, "amount": "1.00"}"#).json()["id"]
        .as_i64()
        .unwrap();
    wait_for(PATIENCE, "the later refund delivered", || (status_of(&setup, later) == json!("delivered")).then_some(()));
    assert_eq!(
        query(&setup.his(), "SELECT HIS_refund_id, HIS_amount FROM HIS_refunds ORDER BY 1"),
        [vec![json!(5), json!("30.00")], vec![json!(6), json!("1.00")]]
    );
}

#[test]
fn replay_says_what_it_cannot_do() {
    let setup = Setup::new();
    let middleware = setup.start();
    let id = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#).json()["id"]
        .clone();
    wait_for(PATIENCE, "delivered", || (status_of(&setup, id.as_i64().unwrap()) == json!("delivered")).then_some(()));
    let config = setup.write_config();
    for (args, expected) in [
        (vec!["replay", "--id", "99999"], "error: there is no event 99999 in the journal".to_string()),
        (
            vec!["replay", "--id", &id.to_string()],
            format!("error: event {id} is delivered: only failed and unmapped events are replayed"),
        ),
        (
            vec!["replay", "--status", "delivered"],
            "error: this takes --status failed or --status unmapped (prune: also delivered), not delivered".into(),
        ),
        (
            vec!["events", "--status", "lost"],
            "error: --status \"lost\": expected pending, delivered, failed or unmapped".into(),
        ),
    ] {
        let output = run(&config, &args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_admin_routes_are_off_without_a_token_and_guarded_with_one() {
    let setup = Setup::new();
    let middleware = setup.start();
    assert_eq!(middleware.request("GET", "/admin/events", &[], b"").status, 404, "off without server.admin_token");
    drop(middleware);

    let token = "0123456789abcdef-admin";
    let mut setup = Setup::new();
    setup.config["server"]["admin_token"] = json!(token);
    setup.config["database"]["create_missing"] = json!(false);
    setup
        .his()
        .execute_batch("CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT)")
        .unwrap();
    let middleware = setup.start();
    let bearer = format!("Bearer {token}");
    // The token is checked first: a stranger learns nothing of the routes'
    // parameters or methods.
    for headers in [vec![], vec![("Authorization", "Bearer wrong-token-0123456")]] {
        for (method, path) in [("GET", "/admin/events"), ("GET", "/admin/events?limit=-1"), ("PUT", "/admin/replay")] {
            let response = middleware.request(method, path, &headers, b"");
            assert_eq!((response.status, response.json()["error"].clone()), (401, json!("unauthorized")), "{path}");
        }
    }
    // With it, a bad parameter is a JSON refusal too.
    let response = middleware.request("GET", "/admin/events?limit=-1", &[("Authorization", &bearer)], b"");
    assert_eq!((response.status, response.json()["error"].clone()), (400, json!("bad_request")), "{}", response.body);

    // HIS_created_at is missing from the table: the event fails.
    let id = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#).json()["id"]
        .clone();
    wait_for(PATIENCE, "the event to fail", || {
        (status_of(&setup, id.as_i64().unwrap()) == json!("failed")).then_some(())
    });
    let listed = middleware.request("GET", "/admin/events?status=failed", &[("Authorization", &bearer)], b"").json();
    assert_eq!(listed["events"][0]["id"], id);
    assert!(listed["events"][0]["last_error"].as_str().unwrap().contains("HIS_created_at"), "{listed}");

    setup.his().execute_batch("ALTER TABLE HIS_appointments ADD COLUMN HIS_created_at TEXT").unwrap();
    let replayed = middleware.request(
        "POST",
        "/admin/replay",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        br#"{"status": "failed"}"#,
    );
    assert_eq!(
        (replayed.status, replayed.json()),
        (200, json!({"replayed": 1, "still_unmapped": 0, "superseded": 0, "notes": []}))
    );
    wait_for(PATIENCE, "delivered after the replay", || {
        (status_of(&setup, id.as_i64().unwrap()) == json!("delivered")).then_some(())
    });
}

#[test]
fn prune_removes_old_events_of_one_status_and_retention_removes_old_deliveries() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup
        .his()
        .execute_batch("CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT NOT NULL, HIS_created_at TEXT)")
        .unwrap();
    let mut middleware = setup.start();
    let failed =
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1}"#).json()["id"].as_i64().unwrap();
    let delivered =
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 2, "status": "a"}"#).json()["id"]
            .as_i64()
            .unwrap();
    wait_for(PATIENCE, "one failed, one delivered", || {
        (status_of(&setup, failed) == json!("failed") && status_of(&setup, delivered) == json!("delivered"))
            .then_some(())
    });
    middleware.terminate();
    let config = setup.write_config();

    let output = run(&config, &["prune", "--status", "pending", "--before", "2999-01-01T00:00:00Z"]);
    assert!(!output.status.success(), "pending events are never pruned");
    let pruned = stdout(&run(&config, &["prune", "--status", "failed", "--before", "2999-01-01T00:00:00Z"]));
    assert!(pruned.contains("removed 1 failed event(s)"), "{pruned}");
    assert_eq!(
        query(&setup.journal(), &format!("SELECT COUNT(*) FROM payloads WHERE event_id = {failed}")),
        [vec![json!(0)]]
    );

    // A delivered event older than journal.retention_days goes at startup.
    setup
        .journal()
        .execute_batch(&format!("UPDATE events SET received_at = '2020-01-01T00:00:00.000Z' WHERE id = {delivered}"))
        .unwrap();
    let middleware = setup.start();
    wait_for(PATIENCE, "the old delivered event pruned", || {
        (query(&setup.journal(), "SELECT COUNT(*) FROM events") == [vec![json!(0)]]).then_some(())
    });
    wait_for(PATIENCE, "the housekeeping log line", || {
        middleware.logs().contains("removed 1 delivered events older than the retention").then_some(())
    });
}

/// A delivery id is remembered for the whole duplicate window, whatever is
/// pruned: a resend after its event was pruned (by `prune`, or by a
/// `journal.retention_days` shorter than `server.duplicate_window_days`)
/// is still a duplicate, and never writes its old state over newer ones.
#[test]
fn a_resend_after_its_event_was_pruned_is_still_a_duplicate() {
    let setup = Setup::new();
    let middleware = setup.start();
    let send = |status: &str| {
        let body = format!(r#"{{"event_type": "appointment", "appointment_id": 3, "status": "{status}"}}"#);
        let headers = [("Content-Type", "application/json"), ("webhook-id", "msg_pruned_then_resent")];
        middleware.request("POST", "/receive-event", &headers, body.as_bytes())
    };
    let first = send("booked");
    assert_eq!((first.status, first.json()["status"].clone()), (200, json!("accepted")));
    let id = first.json()["id"].as_i64().unwrap();
    wait_for(PATIENCE, "delivered", || (status_of(&setup, id) == json!("delivered")).then_some(()));

    let config = setup.write_config();
    let before = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pruned = stdout(&run(&config, &["prune", "--status", "delivered", "--before", &before]));
    assert!(pruned.contains("removed 1 delivered event(s)"), "{pruned}");
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(0)]]);

    let again = send("cancelled");
    assert_eq!((again.status, again.json()), (200, json!({"id": id, "status": "duplicate"})));
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(0)]], "nothing new stored");
    // Had the resend been stored, the worker would write it before (or
    // with) a later event: once the later one is delivered, row 3 still
    // holds its one state.
    let later = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 4, "status": "booked"}"#);
    let later = later.json()["id"].as_i64().unwrap();
    wait_for(PATIENCE, "the later event delivered", || (status_of(&setup, later) == json!("delivered")).then_some(()));
    assert_eq!(
        query(&setup.his(), "SELECT HIS_appointment_id, HIS_status FROM HIS_appointments ORDER BY 1"),
        [vec![json!(3), json!("booked")], vec![json!(4), json!("booked")]]
    );
}
