//! Every bad request gets a precise 4xx status and a JSON error body, and
//! stores nothing.

use buktor_tests::{Middleware, Response, Setup, query};
use serde_json::json;

fn journal_count(setup: &Setup) -> serde_json::Value {
    query(&setup.journal(), "SELECT COUNT(*) FROM events")[0][0].clone()
}

fn assert_refused(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"), "{:?}", response.headers);
    let body = response.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.len() > 10), "a message for people: {body}");
}

fn post(middleware: &Middleware, content_type: Option<&str>, body: &[u8]) -> Response {
    let headers: Vec<(&str, &str)> = content_type.map(|c| ("Content-Type", c)).into_iter().collect();
    middleware.request("POST", "/receive-event", &headers, body)
}

#[test]
fn each_bad_request_class_is_refused_precisely_and_nothing_is_journaled() {
    let mut setup = Setup::new();
    setup.config["server"]["max_body_bytes"] = json!(1024);
    let middleware = setup.start();
    let json_type = Some("application/json");

    let cases: Vec<(&str, Response, u16, &str)> = vec![
        ("malformed JSON", post(&middleware, json_type, b"{\"event_type\": \"appointment\","), 400, "malformed_json"),
        ("not UTF-8", post(&middleware, json_type, b"{\"event_type\": \"\xff\"}"), 400, "malformed_json"),
        ("empty body", post(&middleware, json_type, b""), 400, "malformed_json"),
        ("an array", post(&middleware, json_type, b"[{\"event_type\": \"appointment\"}]"), 422, "not_an_object"),
        ("a string", post(&middleware, json_type, b"\"appointment\""), 422, "not_an_object"),
        ("no event_type", post(&middleware, json_type, b"{\"appointment_id\": 1}"), 422, "missing_event_type"),
        ("numeric event_type", post(&middleware, json_type, b"{\"event_type\": 7}"), 422, "invalid_event_type"),
        ("null event_type", post(&middleware, json_type, b"{\"event_type\": null}"), 422, "invalid_event_type"),
        ("empty event_type", post(&middleware, json_type, b"{\"event_type\": \"  \"}"), 422, "invalid_event_type"),
        (
            "no key field",
            post(&middleware, json_type, b"{\"event_type\": \"appointment\", \"status\": \"confirmed\"}"),
            422,
            "missing_key",
        ),
        (
            "a float key",
            post(&middleware, json_type, br#"{"event_type": "appointment", "appointment_id": 1.5}"#),
            422,
            "invalid_key",
        ),
        (
            "no content type",
            post(&middleware, None, br#"{"event_type": "appointment", "appointment_id": 1}"#),
            415,
            "unsupported_content_type",
        ),
        (
            "form content type",
            post(
                &middleware,
                Some("application/x-www-form-urlencoded"),
                br#"{"event_type": "appointment", "appointment_id": 1}"#,
            ),
            415,
            "unsupported_content_type",
        ),
        ("too large, by Content-Length", post(&middleware, json_type, &too_large_event(4096)), 413, "body_too_large"),
        (
            "too large, chunked",
            middleware.request(
                "POST",
                "/receive-event",
                &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"), ("Content-Length", "")],
                &chunked(&too_large_event(4096)),
            ),
            413,
            "body_too_large",
        ),
    ];
    for (what, response, status, code) in &cases {
        eprintln!("{what}: {} {}", response.status, response.body);
        assert_refused(response, *status, code);
    }
    assert_eq!(journal_count(&setup), json!(0), "no refused request was journaled");

    // The same middleware still accepts good events, with a charset too.
    let good = post(
        &middleware,
        Some("application/json; charset=utf-8"),
        br#"{"event_type": "appointment", "appointment_id": 1}"#,
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(journal_count(&setup), json!(1));
}

#[test]
fn unknown_routes_and_methods_answer_json() {
    let setup = Setup::new();
    let middleware = setup.start();
    let get = middleware.request("GET", "/receive-event", &[], b"");
    assert_refused(&get, 405, "method_not_allowed");
    assert_eq!(get.header("allow"), Some("POST"));
    assert_refused(
        &middleware.request("POST", "/events", &[("Content-Type", "application/json")], b"{}"),
        404,
        "not_found",
    );
    let health = middleware.request("GET", "/health", &[], b"");
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));
}

fn too_large_event(size: usize) -> Vec<u8> {
    let mut body = br#"{"event_type": "appointment", "appointment_id": 1, "status": ""#.to_vec();
    body.resize(size, b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(512) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn bodies_too_deep_or_too_wide_are_refused_before_parsing() {
    let mut setup = Setup::new();
    setup.config["server"]["max_json_members"] = json!(8);
    let middleware = setup.start();
    let json_type = Some("application/json");

    let deep =
        format!(r#"{{"event_type": "appointment", "appointment_id": 1, "x": {}1{}}}"#, "[".repeat(40), "]".repeat(40));
    assert_refused(&post(&middleware, json_type, deep.as_bytes()), 400, "too_deep");
    let wide = format!(
        r#"{{"event_type": "appointment", "appointment_id": 1, {}}}"#,
        (0..10).map(|i| format!(r#""f{i}": {i}"#)).collect::<Vec<_>>().join(", ")
    );
    assert_refused(&post(&middleware, json_type, wide.as_bytes()), 400, "too_many_members");
    // Brackets and colons inside strings are text, not structure.
    let tricky = br#"{"event_type": "appointment", "appointment_id": 1, "status": "a:b:c [[[{{{ \" :: ]]"}"#;
    assert_eq!(post(&middleware, json_type, tricky).status, 200);
    assert_eq!(journal_count(&setup), json!(1), "only the good one was journaled");
}
