//! Who may send events: Standard Webhooks signatures (made by the official
//! `standardwebhooks` Python library, so that interoperability is proved,
//! not assumed), bearer tokens, and the refusal to listen publicly without
//! either.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use buktor_tests::{Setup, query, signing::signature};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Another well-formed secret, held by nobody the middleware trusts.
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const BODY: &str = r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;

/// Signs `body` with the official library; `None` if python3 or the
/// library is missing here (a failure in CI, where `.ci/run` installs it).
fn python_sign(test: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let script = format!(
        "import standardwebhooks, datetime\n\
         wh = standardwebhooks.Webhook({SECRET:?})\n\
         print(wh.sign({id:?}, datetime.datetime.fromtimestamp({timestamp}, tz=datetime.timezone.utc), {body:?}))"
    );
    buktor_tests::python(test, "standardwebhooks", &script, b"").map(|out| out.trim().to_string())
}

/// Headers of a request signed with `signature`.
fn signed<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("Content-Type", "application/json"),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ]
}

fn signed_setup() -> Setup {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"webhook_secrets": [SECRET]});
    setup
}

#[test]
fn signatures_made_by_the_official_library_are_accepted_and_everything_else_refused() {
    let test = "signatures_made_by_the_official_library_are_accepted_and_everything_else_refused";
    let now = chrono::Utc::now().timestamp();
    let Some(signature) = python_sign(test, "msg_1", now, BODY) else { return };
    let setup = signed_setup();
    let middleware = setup.start();
    let post = |id: &str, timestamp: i64, signature: &str, body: &str| {
        let timestamp = timestamp.to_string();
        middleware.request("POST", "/receive-event", &signed(id, &timestamp, signature), body.as_bytes())
    };
    let accepted = post("msg_1", now, &signature, BODY);
    assert_eq!((accepted.status, accepted.json()["status"].clone()), (200, json!("accepted")), "{}", accepted.body);

    let tampered = BODY.replace("confirmed", "cancelled");
    let old = now - 3600;
    let old_signature = python_sign(test, "msg_2", old, BODY).expect("python signed once already");
    for (what, response, code) in [
        ("unsigned", middleware.post_event(BODY), "missing_credentials"),
        ("tampered body", post("msg_1", now, &signature, &tampered), "bad_signature"),
        ("other id", post("msg_9", now, &signature, BODY), "bad_signature"),
        ("an hour old", post("msg_2", old, &old_signature, BODY), "expired_signature"),
        ("garbled", post("msg_1", now, "v1,%%%", BODY), "malformed_signature"),
    ] {
        assert_eq!(
            (response.status, response.json()["error"].clone()),
            (401, json!(code)),
            "{what}: {}",
            response.body
        );
    }
    assert_eq!(
        query(&setup.journal(), "SELECT COUNT(*) FROM events"),
        [vec![json!(1)]],
        "refusals are never journaled"
    );
    assert!(!middleware.logs().contains("cancelled"), "refused bodies are not logged");
}

#[test]
fn a_bearer_token_for_senders_that_cannot_sign() {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"bearer_tokens": ["a-long-shared-token-123"]});
    let middleware = setup.start();
    let send = |token: &str| {
        let authorization = format!("Bearer {token}");
        let headers = [("Content-Type", "application/json"), ("Authorization", authorization.as_str())];
        middleware.request("POST", "/receive-event", &headers, BODY.as_bytes())
    };
    assert_eq!(send("a-long-shared-token-123").status, 200);
    let refused = send("a-wrong-token-that-is-long");
    assert_eq!((refused.status, refused.json()["error"].clone()), (401, json!("bad_token")));
}

#[test]
fn a_public_address_without_auth_is_refused_unless_allowed() {
    let mut setup = Setup::new();
    setup.config["server"]["listen"] = json!("0.0.0.0:0");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    assert!(
        stderr.contains("server.listen: 0.0.0.0:0 is not a loopback address and server.auth is not set"),
        "{stderr}"
    );

    setup.config["server"]["allow_unauthenticated"] = json!(true);
    let middleware = setup.start();
    assert!(
        middleware.logs().contains("server.auth is not set: intake accepts events from anyone"),
        "{}",
        middleware.logs()
    );
}

#[test]
fn secrets_come_from_the_environment_and_a_readable_literal_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;

    // From the environment: ${BUKTOR_WEBHOOK_SECRET}.
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"webhook_secrets": ["${BUKTOR_WEBHOOK_SECRET}"]});
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    assert!(
        stderr.contains("server.auth.webhook_secrets[0]: the environment variable BUKTOR_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
    setup.env.push(("BUKTOR_WEBHOOK_SECRET".into(), SECRET.into()));
    let middleware = setup.start();
    assert_eq!(middleware.post_event(BODY).status, 401, "unsigned events are refused");
    // Signed with the secret the variable holds (and the file does not):
    // accepted. Signed with another secret: refused.
    let now = chrono::Utc::now().timestamp().to_string();
    let send = |id: &str, secret: &str| {
        let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        let signature = signature(&key, id, now.parse().unwrap(), BODY.as_bytes());
        middleware.request("POST", "/receive-event", &signed(id, &now, &signature), BODY.as_bytes())
    };
    let accepted = send("msg_env_1", SECRET);
    assert_eq!((accepted.status, accepted.json()["status"].clone()), (200, json!("accepted")), "{}", accepted.body);
    let other = send("msg_env_2", OTHER_SECRET);
    assert_eq!((other.status, other.json()["error"].clone()), (401, json!("bad_signature")), "{}", other.body);
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(1)]]);
    assert!(!middleware.logs().contains("other users on this server can read it"), "no literal secret in the file");
    drop(middleware);

    // A literal token in a file that others can read.
    let mut setup = Setup::new();
    setup.config["server"]["admin_token"] = json!("a-literal-admin-token-123");
    let config = setup.write_config();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let middleware = buktor_tests::Middleware::start(&config).unwrap();
    let logs = middleware.logs();
    assert!(logs.contains("holds secrets (server.admin_token) and other users on this server can read it"), "{logs}");
    assert!(!logs.contains("a-literal-admin-token-123"), "the secret itself is never logged");
    drop(middleware);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let middleware = buktor_tests::Middleware::start(&config).unwrap();
    assert!(!middleware.logs().contains("other users on this server can read it"), "{}", middleware.logs());
}
