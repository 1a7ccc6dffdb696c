//! Who may send events: Standard Webhooks signatures (made by the official
//! `standardwebhooks` Python library, so that interoperability is proved,
//! not assumed), bearer tokens, and the refusal to listen publicly without
//! either.

use buktor_tests::{Setup, query, skipped};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#;

/// Signs `body` with the official library; `None` if it is not installed
/// (a failure in CI, where `.ci/run` installs it).
fn python_sign(id: &str, timestamp: i64, body: &str) -> Option<String> {
    let script = format!(
        "import standardwebhooks, datetime\n\
         wh = standardwebhooks.Webhook({SECRET:?})\n\
         print(wh.sign({id:?}, datetime.datetime.fromtimestamp({timestamp}, tz=datetime.timezone.utc), {body:?}))"
    );
    let output = std::process::Command::new("python3").args(["-c", &script]).output().ok()?;
    if output.status.success() {
        return Some(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let why = String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("").to_string();
    assert!(!buktor_tests::strict(), "CI must have the standardwebhooks library (.ci/run installs it): {why}");
    None
}

fn signed_setup() -> Setup {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"webhook_secrets": [SECRET]});
    setup
}

#[test]
fn signatures_made_by_the_official_library_are_accepted_and_everything_else_refused() {
    let now = chrono::Utc::now().timestamp();
    let Some(signature) = python_sign("msg_1", now, BODY) else {
        skipped("signatures_made_by_the_official_library…", "python3 -m pip install standardwebhooks to run it");
        return;
    };
    let setup = signed_setup();
    let middleware = setup.start();
    let post = |id: &str, timestamp: i64, signature: &str, body: &str| {
        let timestamp = timestamp.to_string();
        let headers = [
            ("Content-Type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature),
        ];
        middleware.request("POST", "/receive-event", &headers, body.as_bytes())
    };
    let accepted = post("msg_1", now, &signature, BODY);
    assert_eq!((accepted.status, accepted.json()["status"].clone()), (200, json!("accepted")), "{}", accepted.body);

    let tampered = BODY.replace("confirmed", "cancelled");
    let old = now - 3600;
    let old_signature = python_sign("msg_2", old, BODY).unwrap();
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
    assert_eq!(middleware.post_event(BODY).status, 401, "the secret from the environment is in force");
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
