//! The views into a running middleware: `GET /metrics` (parsed by the
//! official Prometheus client library's text-format parser, so the format
//! is proved, not assumed), `GET /ready`, and `--log-format json`.

use std::time::Duration;

use buktor_tests::{Middleware, Setup, mysql, proxy::Proxy, wait_for};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

/// The samples of a scrape, parsed by `prometheus_client.parser`: one
/// `[name, labels, value]` per sample. `None` when python3 or the library
/// is missing here (a failure in CI, where `.ci/run` installs it).
fn parse_with_prometheus(test: &str, text: &str) -> Option<Vec<(String, Value, f64)>> {
    let script = "import sys, json\n\
                  from prometheus_client.parser import text_string_to_metric_families\n\
                  out = []\n\
                  for family in text_string_to_metric_families(sys.stdin.read()):\n\
                  \x20   for s in family.samples:\n\
                  \x20       out.append([s.name, s.labels, s.value])\n\
                  print(json.dumps(out))";
    let parsed = buktor_tests::python(test, "prometheus_client", script, text.as_bytes())?;
    Some(serde_json::from_str(&parsed).unwrap_or_else(|e| panic!("{e}: {parsed}")))
}

fn sample(samples: &[(String, Value, f64)], name: &str, labels: Value) -> Option<f64> {
    samples.iter().find(|(n, l, _)| n == name && *l == labels).map(|(_, _, v)| *v)
}

fn scrape(middleware: &Middleware) -> String {
    let response = middleware.request("GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    response.body
}

#[test]
fn metrics_count_what_happened_and_parse_as_prometheus_text() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    // Payments go to a table without HIS_paid_at: they fail permanently.
    setup
        .his()
        .execute_batch(
            "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT);
             CREATE TABLE HIS_payments (HIS_payment_id INTEGER PRIMARY KEY, HIS_amount NUMERIC, HIS_payment_status TEXT);",
        )
        .unwrap();
    let middleware = setup.start();
    let json_type = ("Content-Type", "application/json");
    for n in 1..=3 {
        let body = format!(r#"{{"event_type": "appointment", "appointment_id": {n}, "status": "booked"}}"#);
        let headers = [json_type, ("webhook-id", &*format!("msg_{n}"))];
        assert_eq!(middleware.request("POST", "/receive-event", &headers, body.as_bytes()).status, 200);
    }
    let again = middleware.request(
        "POST",
        "/receive-event",
        &[json_type, ("webhook-id", "msg_1")],
        br#"{"event_type": "appointment", "appointment_id": 1, "status": "booked"}"#,
    );
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(middleware.post_event(r#"{"event_type": "lab_result", "id": 1}"#).status, 202);
    assert_eq!(middleware.post_event(r#"{"event_type": "payment", "payment_id": 9, "amount": 10}"#).status, 200);
    assert_eq!(middleware.post_event("{not json").status, 400);

    // Counters move when the worker has written; the pending gauge when
    // the outcomes are committed to the journal, a moment later.
    let text = wait_for(PATIENCE, "3 deliveries, 1 failure and nothing pending in /metrics", || {
        let text = scrape(&middleware);
        (text.contains("buktor_events_delivered_total{event_type=\"appointment\"} 3")
            && text.contains("buktor_events_failed_total{event_type=\"payment\"} 1")
            && text.contains("buktor_events_pending 0"))
        .then_some(text)
    });
    let Some(samples) = parse_with_prometheus("metrics_count_what_happened_and_parse_as_prometheus_text", &text) else {
        return;
    };
    let value = |name: &str, labels: Value| {
        sample(&samples, name, labels.clone()).unwrap_or_else(|| panic!("no {name} {labels} in\n{text}"))
    };
    let received = "buktor_events_received_total";
    assert_eq!(value(received, json!({"event_type": "appointment", "outcome": "accepted"})), 3.0);
    assert_eq!(value(received, json!({"event_type": "appointment", "outcome": "duplicate"})), 1.0);
    assert_eq!(value(received, json!({"event_type": "payment", "outcome": "accepted"})), 1.0);
    // An unmapped type is `other`: senders cannot invent label values.
    assert_eq!(value(received, json!({"event_type": "other", "outcome": "unmapped"})), 1.0);
    assert_eq!(value("buktor_requests_refused_total", json!({"reason": "malformed_json"})), 1.0);
    assert_eq!(value("buktor_events_delivered_total", json!({"event_type": "appointment"})), 3.0);
    assert_eq!(value("buktor_events_failed_total", json!({"event_type": "payment"})), 1.0);
    assert!(value("buktor_his_errors_total", json!({"kind": "schema"})) >= 1.0, "{text}");
    assert_eq!(value("buktor_events_pending", json!({})), 0.0);
    assert_eq!(value("buktor_oldest_pending_age_seconds", json!({})), 0.0);
    assert_eq!(value("buktor_delivery_latency_seconds_count", json!({})), 3.0);
    assert_eq!(value("buktor_delivery_latency_seconds_bucket", json!({"le": "+Inf"})), 3.0);
    assert!(value("buktor_journal_commit_seconds_count", json!({})) >= 5.0, "{text}");
    let info = samples.iter().find(|(n, _, _)| n == "buktor_build_info").expect("build info");
    assert_eq!(info.1["database_type"], "sqlite");
    let api = std::fs::read_to_string(buktor_tests::repo_root().join("plugin-api/Cargo.toml")).unwrap();
    let version = api.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
    assert_eq!(info.1["plugin_api"], version, "{info:?}");
    assert!(!text.contains("lab_result"), "{text}");
}

#[test]
fn metrics_show_the_events_held_behind_a_failed_one() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    setup.his().execute_batch("CREATE TABLE unrelated (x INTEGER)").unwrap();
    let middleware = setup.start();
    // No HIS_appointments table: the first event fails (a schema error), and
    // the two later events for the same row wait behind it, pending.
    for n in 0..3 {
        let body = format!(r#"{{"event_type": "appointment", "appointment_id": 1, "status": "v{n}"}}"#);
        assert_eq!(middleware.post_event(&body).status, 200);
    }
    let text = wait_for(PATIENCE, "one failed and two pending in /metrics", || {
        let text = scrape(&middleware);
        (text.contains("buktor_events_failed_total{event_type=\"appointment\"} 1")
            && text.contains("buktor_events_pending 2"))
        .then_some(text)
    });
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("buktor_oldest_pending_age_seconds "))
        .expect("the age gauge")
        .parse()
        .unwrap();
    assert!(age > 0.0 && age < 60.0, "{text}");
}

/// A MariaDB database with the appointments table, reached through a proxy
/// the test can cut, and a setup that maps appointments into it.
fn behind_a_proxy(server: &mysql::Server) -> (mysql::Database, Proxy, Setup) {
    let db = server.database();
    db.execute(
        "CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status VARCHAR(50), HIS_created_at DATETIME(3))",
    );
    let proxy = Proxy::start(&server.address());
    let mut setup = Setup::new();
    setup.config["database"] = db.config_via(&proxy.address);
    setup.config["mapping"] = json!({"appointment": {"table": "HIS_appointments",
        "fields": {"appointment_id": "HIS_appointment_id", "status": "HIS_status", "received_at": "HIS_created_at"}}});
    (db, proxy, setup)
}

#[test]
fn ready_says_why_while_the_his_is_cut_off_and_recovers() {
    let Some(server) = mysql::server("ready_says_why_while_the_his_is_cut_off_and_recovers") else { return };
    let (db, proxy, setup) = behind_a_proxy(&server);
    let middleware = setup.with_admin_token().start();
    let ready = || middleware.ready_in_full();
    wait_for(PATIENCE, "ready", || (ready().status == 200).then_some(()));
    assert_eq!(ready().json(), json!({"status": "ready"}));

    proxy.cut();
    assert_eq!(
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#).status,
        200
    );
    let not_ready = wait_for(PATIENCE, "not ready while the HIS is cut off", || {
        let response = ready();
        (response.status == 503).then_some(response)
    });
    let body = not_ready.json();
    assert_eq!(body["status"], "not_ready");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("the HIS database did not answer: "), "{body}");
    assert!(!reason.contains(db.config()["password"].as_str().unwrap()), "{body}");
    // Liveness is not readiness.
    assert_eq!(middleware.request("GET", "/health", &[], b"").status, 200);

    proxy.restore();
    wait_for(Duration::from_secs(60), "ready again once the event is written", || {
        (ready().status == 200 && db.count("SELECT COUNT(*) FROM HIS_appointments") == 1).then_some(())
    });
}

#[test]
fn json_logs_are_one_object_per_line_with_the_event_id_and_type() {
    let mut setup = Setup::new();
    setup.env.push(("BUKTOR_LOG_FORMAT".into(), "json".into()));
    let middleware = setup.start();
    let response = middleware.post_event(r#"{"event_type": "lab_result", "id": 1, "secret_note": "do-not-log-me"}"#);
    assert_eq!(response.status, 202);
    let id = response.json()["id"].as_i64().unwrap();
    let logs = wait_for(PATIENCE, "the unmapped line", || {
        let logs = middleware.logs();
        logs.contains("unmapped event journaled").then_some(logs)
    });
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{logs}");
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap().starts_with("listening on http://")), "{logs}");
    let unmapped = lines.iter().find(|l| l["message"] == "unmapped event journaled").unwrap();
    assert_eq!((unmapped["event_id"].as_i64(), unmapped["event_type"].as_str()), (Some(id), Some("lab_result")));
    assert!(!logs.contains("do-not-log-me"), "a payload reached the log:\n{logs}");
}

#[test]
fn after_an_outage_writing_resumes_at_the_next_ping_not_after_the_retry_delay() {
    let Some(server) = mysql::server("after_an_outage_writing_resumes_at_the_next_ping_not_after_the_retry_delay")
    else {
        return;
    };
    let (db, proxy, mut setup) = behind_a_proxy(&server);
    // The worker's back-off after the outage: 5 minutes.
    setup.config["sync"] = json!({"retry_initial_delay_ms": 300_000, "retry_max_delay_secs": 300});
    let middleware = setup.start();
    proxy.cut();
    assert_eq!(
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#).status,
        200
    );
    wait_for(PATIENCE, "not ready while cut off", || {
        (middleware.request("GET", "/ready", &[], b"").status == 503).then_some(())
    });
    proxy.restore();
    // A ping every 30 s while the HIS is down: ready again, and the event
    // written, well before its 5-minute retry delay.
    wait_for(Duration::from_secs(50), "the row written once the HIS answered a ping", || {
        (db.count("SELECT COUNT(*) FROM HIS_appointments") == 1).then_some(())
    });
    assert_eq!(middleware.request("GET", "/ready", &[], b"").status, 200);
    assert!(
        middleware.logs().contains("the HIS answers again: writing now (1 events were waiting)"),
        "{}",
        middleware.logs()
    );
}
