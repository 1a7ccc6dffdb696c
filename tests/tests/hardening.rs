//! What a black-box test of intake found, one test per class (issue 19),
//! each against the real binary: log injection, memory amplification, the
//! journal's quota, shared rate-limit buckets, connection slots behind a
//! proxy, numbers in exponent form, key aliasing, the internet through a
//! local proxy, and the smaller ones (file modes, the bearer scheme's case,
//! a garbage `since`, what `/ready` tells whom).

use std::{io::Read, net::TcpStream, time::Duration};

use buktor_tests::{Middleware, Setup, http, query, signing, wait_for};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn secret_key() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap()
}

/// The headers of a request signed with [`SECRET`] now.
fn signed_headers(id: &str, body: &[u8]) -> Vec<(String, String)> {
    let timestamp = chrono::Utc::now().timestamp();
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signing::signature(&secret_key(), id, timestamp, body)),
    ]
}

fn post_signed(middleware: &Middleware, id: &str, body: &[u8]) -> http::Response {
    let headers = signed_headers(id, body);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    middleware.request("POST", "/receive-event", &headers, body)
}

fn journal_count(setup: &Setup, condition: &str) -> i64 {
    let rows = query(&setup.journal(), &format!("SELECT COUNT(*) FROM events WHERE {condition}"));
    rows[0][0].as_i64().unwrap()
}

/// `VmRSS` or `VmHWM` (peak) of a process, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in {status}"));
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

// -- 1. log injection ---------------------------------------------------------

#[test]
fn request_text_cannot_forge_log_lines_or_drive_the_terminal() {
    let setup = Setup::new();
    let middleware = setup.start();
    let forged = "x\nINFO buktor_middleware: forged line\r\u{1b}]0;owned\u{7}\u{1b}[2J";
    let response = middleware.post_event(&json!({"event_type": forged, "id": 1}).to_string());
    assert_eq!(response.status, 202, "{}", response.body);
    let logs = wait_for(PATIENCE, "the unmapped event's log line", || {
        let logs = middleware.logs();
        logs.contains("unmapped event journaled").then_some(logs)
    });
    assert!(!logs.lines().any(|line| line.starts_with("INFO buktor_middleware: forged")), "a forged line:\n{logs}");
    for control in ['\r', '\u{1b}', '\u{7}'] {
        assert!(!logs.contains(control), "a raw {control:?} in the log:\n{logs}");
    }
    assert!(logs.contains(r"x\nINFO buktor_middleware: forged line\r\u{1b}]0;owned\u{7}"), "{logs}");

    // An event type of half a megabyte is refused, and not echoed back.
    let long = json!({"event_type": "t".repeat(500_000), "id": 1}).to_string();
    let response = middleware.post_event(&long);
    assert_eq!((response.status, response.json()["error"].as_str()), (422, Some("event_type_too_long")));
    assert!(response.body.len() < 1024, "the answer echoes the event type: {} bytes", response.body.len());
    let response = middleware.post_event(&json!({"event_type": "t".repeat(128), "id": 1}).to_string());
    assert_eq!(response.status, 202, "128 characters are allowed: {}", response.body);
    assert_eq!(journal_count(&setup, "length(event_type) > 128"), 0);
}

// -- 2. memory amplification --------------------------------------------------

/// The most RSS the process may reach while 64 worst-case bodies arrive at
/// once (a body is at most 1 MiB; `max_bytes_in_flight` admits 32 of them
/// at a time), and the worker writes them. Before the value count and the
/// top-level parse, 100 such bodies took it from 0.4 GB to 2.6 GB.
const PEAK_RSS: u64 = 200 << 20;
/// How much more RSS a second round of the same bodies may leave behind
/// than the first. The allocator keeps what the first round freed for
/// reuse, so RSS after a round says little; growth from round to round is
/// what a leak would show (64 MiB a round, if the bodies were kept).
const GROWTH_PER_ROUND: u64 = 16 << 20;

#[test]
fn array_bombs_are_refused_before_they_grow_and_memory_stays_bounded() {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"webhook_secrets": [SECRET]});
    let middleware = setup.start();
    let pid = middleware.pid();
    assert_eq!(post_signed(&middleware, "warm", br#"{"event_type": "appointment", "appointment_id": 1}"#).status, 200);
    let idle = memory(pid, "VmRSS:");

    // 1 MiB of `[]` elements: about 350,000 values in a body the size
    // limit allows. Signed: only the value count stops it.
    let (head, tail) = (r#"{"event_type": "appointment", "appointment_id": 2, "x": ["#, "[]]}");
    let bomb = format!("{head}{}{tail}", "[],".repeat(((1 << 20) - head.len() - tail.len()) / 3));
    // The largest event that is accepted: one long text member.
    let big =
        json!({"event_type": "appointment", "appointment_id": 3, "notes": "n".repeat((1 << 20) - 100)}).to_string();
    let send_all = |body: &str, prefix: String| {
        let threads: Vec<_> = (0..64)
            .map(|n| {
                let (address, body, id) = (middleware.address.clone(), body.to_owned(), format!("{prefix}{n}"));
                std::thread::spawn(move || {
                    let headers = signed_headers(&id, body.as_bytes());
                    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    http::request(&address, "POST", "/receive-event", &headers, body.as_bytes()).expect("an answer")
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    };
    let mut after = Vec::new();
    for round in 0..2 {
        for response in send_all(&bomb, format!("bomb{round}-")) {
            assert_eq!(
                (response.status, response.json()["error"].as_str()),
                (400, Some("too_many_nodes")),
                "{}",
                response.body
            );
        }
        for response in send_all(&big, format!("big{round}-")) {
            assert_eq!(response.status, 200, "{}", response.body);
        }
        // The worker's windows count too: it reads, parses and writes
        // these 64 MiB of bodies. Measured once it has written them all.
        wait_for(PATIENCE * 4, "the worker to write the 64 large events", || {
            (journal_count(&setup, "status = 'pending'") == 0).then_some(())
        });
        after.push(memory(pid, "VmRSS:"));
    }
    let peak = memory(pid, "VmHWM:");
    buktor_tests::verified(
        "array_bombs_are_refused_before_they_grow_and_memory_stays_bounded",
        &format!(
            "RSS idle {} MiB, peak {} MiB, after round 1 {} MiB, after round 2 {} MiB",
            idle >> 20,
            peak >> 20,
            after[0] >> 20,
            after[1] >> 20
        ),
    );
    assert!(peak < PEAK_RSS, "peak RSS {} MiB, idle {} MiB", peak >> 20, idle >> 20);
    assert!(
        after[1] < after[0] + GROWTH_PER_ROUND,
        "RSS grew from {} MiB after round 1 to {} MiB after round 2",
        after[0] >> 20,
        after[1] >> 20
    );
    assert_eq!(journal_count(&setup, "event_key = '[\"his_appointments\",\"2\"]'"), 0, "no bomb was journaled");
    assert_eq!(journal_count(&setup, "status = 'delivered'"), 1 + 2 * 64, "every large event was written");
}

// -- 3. the journal's quota ----------------------------------------------------

#[test]
fn unmapped_events_fill_only_their_allowance_and_a_full_journal_refuses_never_drops() {
    let mut setup = Setup::new();
    setup.config["journal"]["max_unmapped_bytes_per_type"] = json!(1 << 20);
    setup.config["journal"]["max_unmapped_bytes"] = json!(2 << 20);
    let middleware = setup.start();
    let unmapped = |event_type: &str, n: usize| {
        json!({"event_type": event_type, "n": n, "filler": "u".repeat(100_000)}).to_string()
    };
    let mut accepted = 0;
    let refusal = loop {
        let response = middleware.post_event(&unmapped("junk", accepted));
        if response.status != 202 {
            break response;
        }
        accepted += 1;
        assert!(accepted < 100, "still accepting unmapped events past their cap");
    };
    assert_eq!((refusal.status, refusal.json()["error"].as_str()), (507, Some("unmapped_quota")), "{}", refusal.body);
    assert!(refusal.header("retry-after").is_some(), "a 507 says when to try again");
    assert!(refusal.json()["message"].as_str().unwrap().contains("journal.max_unmapped_bytes_per_type"));
    assert!((9..=10).contains(&accepted), "about 1 MiB of 100 kB events: {accepted}");
    // Another type has its own allowance, and mapped events still flow.
    assert_eq!(middleware.post_event(&unmapped("other-junk", 0)).status, 202);
    let seed = r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;
    assert_eq!(middleware.post_event(seed).status, 200);
    // Nothing accepted was dropped; nothing refused was kept.
    assert_eq!(journal_count(&setup, "event_type = 'junk'"), accepted as i64);
    let scrape = middleware.request("GET", "/metrics", &[], b"").body;
    let unmapped_bytes = scrape
        .lines()
        .find_map(|l| l.strip_prefix("buktor_journal_unmapped_bytes "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no unmapped bytes gauge:\n{scrape}"));
    assert!(unmapped_bytes > (accepted as u64 + 1) * 100_000, "{unmapped_bytes}");
    let status = std::process::Command::new(&buktor_tests::artifacts().binary)
        .args(["--config", setup.path("his-config.json").to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("(journal.max_unmapped_bytes)") && status.contains("space"), "{status}");
}

#[test]
fn a_full_journal_answers_507_and_not_ready_and_keeps_what_it_accepted() {
    let mut setup = Setup::new();
    setup.config["journal"]["max_bytes"] = json!(1 << 20);
    let middleware = setup.start();
    let mut accepted = Vec::new();
    let refusal = loop {
        let n = accepted.len();
        let body = json!({"event_type": "appointment", "appointment_id": n, "notes": "n".repeat(50_000)}).to_string();
        let response = middleware.post_event(&body);
        if response.status != 200 {
            break response;
        }
        accepted.push(response.json()["id"].as_i64().unwrap());
        assert!(accepted.len() < 200, "still accepting past journal.max_bytes");
    };
    assert_eq!((refusal.status, refusal.json()["error"].as_str()), (507, Some("journal_full")), "{}", refusal.body);
    assert!(refusal.header("retry-after").is_some());
    let ready = middleware.request("GET", "/ready", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.json()["reasons"].as_array().unwrap().contains(&json!("journal_full")), "{}", ready.body);
    let ids: Vec<i64> =
        query(&setup.journal(), "SELECT id FROM events ORDER BY id").iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(ids, accepted, "every accepted event, and only those");
}

// -- 4. one address, two buckets -------------------------------------------------

#[test]
fn failed_authentication_from_behind_a_proxy_does_not_spend_buktors_budget() {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"webhook_secrets": [SECRET]});
    setup.config["server"]["rate_limit"] = json!({"requests_per_second": 0.1, "burst": 3});
    let middleware = setup.start();
    let body = br#"{"event_type": "appointment", "appointment_id": 7, "status": "confirmed"}"#;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        // Fresh, well-formed, and signed with the wrong key.
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let forged =
            [JSON, ("webhook-id", "msg_x"), ("webhook-timestamp", &timestamp), ("webhook-signature", "v1,AAAA")];
        statuses.push(middleware.request("POST", "/receive-event", &forged, body).status);
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|&s| s == 429), "failures are limited too: {statuses:?}");
    // All of it came from 127.0.0.1, as it does behind nginx: Buktor's
    // signed event still goes through.
    let response = post_signed(&middleware, "msg_valid", body);
    assert_eq!(response.status, 200, "{}", response.body);
}

// -- 5. connection slots ----------------------------------------------------------

#[test]
fn idle_connections_give_their_places_to_a_real_request() {
    let mut setup = Setup::new();
    setup.config["server"]["max_connections"] = json!(4);
    // Long enough that a request waiting for an idle socket's deadline
    // would outwait the test client (30 s).
    setup.config["server"]["request_timeout_secs"] = json!(120);
    let middleware = setup.start();
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&middleware.address).unwrap()).collect();
    // Each is accepted before the next arrives (the server holds all four).
    std::thread::sleep(Duration::from_millis(300));
    let response =
        middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 5, "status": "confirmed"}"#);
    assert_eq!(response.status, 200, "{}", response.body);
    // The server closed (end of stream) at least one of them to make room;
    // the others are still open (their reads time out).
    let closed = idle
        .into_iter()
        .filter(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            matches!(stream.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!((1..4).contains(&closed), "{closed} idle connections closed to make room for the request");
}

// -- 6. numbers ---------------------------------------------------------------------

#[test]
fn numbers_in_exponent_form_are_written_exactly_or_refused_naming_the_field() {
    let setup = Setup::new();
    let middleware = setup.start();
    for (id, amount) in [(1, "1e-7"), (2, "1.5e3"), (3, "1e-400"), (4, "1.7976931348623157e308")] {
        let body = format!(r#"{{"event_type": "payment", "payment_id": {id}, "amount": {amount}, "status": "paid"}}"#);
        assert_eq!(middleware.post_event(&body).status, 200, "{amount} is valid JSON");
    }
    wait_for(PATIENCE, "four payments settled", || {
        (journal_count(&setup, "status IN ('delivered', 'failed')") == 4).then_some(())
    });
    let rows =
        query(&setup.his(), "SELECT HIS_payment_id, HIS_amount, typeof(HIS_amount) FROM HIS_payments ORDER BY 1");
    assert_eq!(rows, [vec![json!(1), json!("0.0000001"), json!("text")], vec![json!(2), json!("1500"), json!("text")]]);
    let errors = query(&setup.journal(), "SELECT last_error FROM events WHERE status = 'failed' ORDER BY id");
    assert_eq!(errors.len(), 2);
    for (error, sent) in errors.iter().zip(["1e-400", "1.7976931348623157e308"]) {
        let error = error[0].as_str().unwrap();
        assert!(error.contains("\"amount\"") && error.contains(sent), "{error}");
    }
}

// -- 7. key aliasing ------------------------------------------------------------------

#[test]
fn one_his_row_is_one_key_so_a_failed_event_holds_its_aliases() {
    let setup = Setup::new();
    // The HIS refuses one status, so that event fails for good.
    setup
        .his()
        .execute_batch(
            "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY,
             HIS_status TEXT CHECK (HIS_status <> 'poison'), HIS_created_at TEXT)",
        )
        .unwrap();
    let middleware = setup.start();
    let poison = r#"{"event_type": "appointment", "appointment_id": 123, "status": "poison"}"#;
    assert_eq!(middleware.post_event(poison).status, 200);
    wait_for(PATIENCE, "the poison event set aside", || {
        (journal_count(&setup, "status = 'failed'") == 1).then_some(())
    });
    for alias in [r#""0123""#, r#"" 123 ""#, "123"] {
        let later = format!(r#"{{"event_type": "appointment", "appointment_id": {alias}, "status": "confirmed"}}"#);
        assert_eq!(middleware.post_event(&later).status, 200);
    }
    let keys = query(&setup.journal(), "SELECT DISTINCT event_key FROM events");
    assert_eq!(keys, [vec![json!(r#"["his_appointments","123"]"#)]], "one row, one key");
    // Give the worker passes to (wrongly) write them; they stay held.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(journal_count(&setup, "status = 'pending'"), 3, "held behind the failed event of their row");
    assert!(query(&setup.his(), "SELECT * FROM HIS_appointments").is_empty());

    for (key, code) in [(r#""""#, "invalid_key"), (r#""   ""#, "invalid_key")] {
        let body = format!(r#"{{"event_type": "appointment", "appointment_id": {key}}}"#);
        let response = middleware.post_event(&body);
        assert_eq!((response.status, response.json()["error"].as_str()), (422, Some(code)), "{key}");
    }
    let long = json!({"event_type": "appointment", "appointment_id": "k".repeat(100_000)}).to_string();
    let response = middleware.post_event(&long);
    assert_eq!((response.status, response.json()["error"].as_str()), (422, Some("invalid_key")));
    assert!(response.body.len() < 1024, "the key is not echoed: {} bytes", response.body.len());
}

// -- 8. the internet through a local proxy ----------------------------------------------

#[test]
fn without_signing_requests_through_a_proxy_are_refused_and_logged_once() {
    let setup = Setup::new();
    let middleware = setup.start();
    let seed = br#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;
    for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"] {
        let response = middleware.request("POST", "/receive-event", &[JSON, (header, "203.0.113.9")], seed);
        assert_eq!(
            (response.status, response.json()["error"].as_str()),
            (401, Some("unsigned_through_proxy")),
            "{header}"
        );
        assert!(response.json()["message"].as_str().unwrap().contains("server.auth"));
    }
    assert_eq!(middleware.request("POST", "/receive-event", &[JSON], seed).status, 200, "straight from this machine");
    let logs = middleware.logs();
    assert_eq!(logs.matches("came through a proxy").count(), 1, "once a minute, not per request:\n{logs}");
    assert_eq!(journal_count(&setup, "1"), 1);

    let mut setup = Setup::new();
    setup.config["server"]["allow_unsigned_through_proxy"] = json!(true);
    let allowed = setup.start();
    assert_eq!(
        allowed.request("POST", "/receive-event", &[JSON, ("X-Forwarded-For", "203.0.113.9")], seed).status,
        200
    );
    assert!(allowed.logs().contains("server.allow_unsigned_through_proxy is set"), "loudly");
}

#[test]
fn the_operators_routes_have_their_own_listener() {
    let mut setup = Setup::new();
    setup.config["server"]["admin_token"] = json!("an-admin-token-for-the-test");
    let middleware = setup.start();
    assert_ne!(middleware.admin_address, middleware.address);
    for path in ["/metrics", "/ready", "/admin/events"] {
        let on_intake = http::request(&middleware.address, "GET", path, &[], b"").unwrap();
        assert_eq!((on_intake.status, on_intake.json()["error"].as_str()), (404, Some("not_found")), "{path}");
    }
    assert_eq!(http::request(&middleware.admin_address, "GET", "/metrics", &[], b"").unwrap().status, 200);
    let bearer = [("Authorization", "Bearer an-admin-token-for-the-test")];
    assert_eq!(http::request(&middleware.admin_address, "GET", "/admin/events", &bearer, b"").unwrap().status, 200);
    assert_eq!(http::request(&middleware.admin_address, "GET", "/health", &[], b"").unwrap().status, 200);

    setup.config["server"]["operator_routes_on_intake_port"] = json!(true);
    let both = setup.start();
    assert_eq!(http::request(&both.address, "GET", "/metrics", &[], b"").unwrap().status, 200);
    assert!(both.logs().contains("server.operator_routes_on_intake_port is set"), "{}", both.logs());
}

// -- 9. the smaller ones ----------------------------------------------------------------

#[cfg(unix)]
#[test]
fn the_journal_and_the_demo_his_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new();
    let middleware = setup.start();
    assert_eq!(middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1}"#).status, 200);
    wait_for(PATIENCE, "the row", || (!query(&setup.his(), "SELECT 1 FROM HIS_appointments").is_empty()).then_some(()));
    for file in ["journal.db", "journal.db-wal", "his.db"] {
        let mode = std::fs::metadata(setup.path(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_a_garbage_since_is_refused() {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"bearer_tokens": ["a-long-shared-token-123"]});
    setup.config["server"]["admin_token"] = json!("an-admin-token-for-the-test");
    let middleware = setup.start();
    let seed = br#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let authorization = format!("{scheme} a-long-shared-token-123");
        let response = middleware.request("POST", "/receive-event", &[JSON, ("Authorization", &authorization)], seed);
        assert_eq!(response.status, 200, "{scheme}: {}", response.body);
    }
    let admin = [("Authorization", "bearer an-admin-token-for-the-test"), JSON];
    for path in ["/admin/events?status=pending&since=garbage", "/admin/events?since=2026-13-01"] {
        let response = middleware.request("GET", path, &admin, b"");
        assert_eq!((response.status, response.json()["error"].as_str()), (400, Some("bad_since")), "{path}");
    }
    let replay = middleware.request("POST", "/admin/replay", &admin, br#"{"status": "failed", "since": "garbage"}"#);
    assert_eq!((replay.status, replay.json()["error"].as_str()), (400, Some("bad_since")), "{}", replay.body);
    let good = middleware.request("GET", "/admin/events?status=pending&since=2000-01-01", &admin, b"");
    assert_eq!(good.status, 200, "{}", good.body);
}

#[test]
fn ready_names_the_his_only_to_the_admin() {
    let mut setup = Setup::new();
    setup.config["server"]["admin_token"] = json!("an-admin-token-for-the-test");
    // A HIS that does not answer (nothing listens on port 1): the reason
    // names its host, user and database.
    setup.config["database"] =
        json!({"type": "mysql", "host": "127.0.0.1", "port": 1, "user": "secret-user", "database": "secret-his-name"});
    let middleware = setup.start();
    let local = wait_for(PATIENCE, "not ready", || {
        let ready = middleware.request("GET", "/ready", &[], b"");
        (ready.status == 503 && ready.body.contains("his_")).then_some(ready)
    });
    let reasons: Vec<Value> = local.json()["reasons"].as_array().unwrap().clone();
    assert!(
        reasons.iter().all(|r| ["his_unreachable", "his_not_answered_yet"].contains(&r.as_str().unwrap())),
        "{reasons:?}"
    );
    assert!(!local.body.contains("secret-his-name"), "{}", local.body);
    let admin = middleware.request("GET", "/ready", &[("Authorization", "Bearer an-admin-token-for-the-test")], b"");
    assert!(admin.body.contains("secret-his-name"), "the admin sees the reason in full: {}", admin.body);
}
