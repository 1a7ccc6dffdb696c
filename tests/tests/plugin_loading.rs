//! Finding and loading plugins: each failure is one clear line before the
//! middleware listens; a panicking plugin never takes the host down.

use std::time::Duration;

use buktor_tests::{Setup, artifacts, query, wait_for};
use serde_json::json;

/// The error line: exactly one `error:` line, short, with no layout dump.
fn the_error_line(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    assert!(stderr.lines().count() < 10, "no multi-line dump:\n{stderr}");
    assert!(errors[0].len() < 600, "one readable line: {}", errors[0]);
    errors[0].to_string()
}

/// A setup whose `plugins.dir` holds `file` (copied, renamed to `as_name`).
fn setup_with_plugin_dir(database_type: &str, file: Option<(&std::path::Path, &str)>) -> Setup {
    let mut setup = Setup::new();
    let dir = setup.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    if let Some((source, name)) = file {
        std::fs::copy(source, dir.join(name)).unwrap();
    }
    setup.config["database"] = json!({"type": database_type});
    setup.config["plugins"] = json!({"dir": "plugins"});
    setup
}

/// Starts the middleware with `database.type` = `database_type` and the
/// fixture library `fixture` (if any) in plugins.dir; expects it to refuse
/// to start, and returns its one error line.
fn refusal(database_type: &str, fixture: Option<&str>) -> (Setup, String) {
    let source = fixture.map(|name| artifacts().plugin(name));
    let file_name = format!("libhis_{database_type}.so");
    let setup = setup_with_plugin_dir(database_type, source.as_deref().map(|s| (s, file_name.as_str())));
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success(), "exit status {status}");
    let line = the_error_line(&stderr);
    (setup, line)
}

#[test]
fn a_missing_plugin_names_the_file_and_every_folder_searched() {
    // A third party's plugin that was never installed.
    let (setup, line) = refusal("acme_his", None);
    assert!(line.contains("plugin for database.type \"acme_his\" not found"), "{line}");
    assert!(line.contains("libhis_acme_his.so"), "{line}");
    assert!(line.contains(&format!("{} (plugins.dir)", setup.path("plugins").display())), "{line}");
    assert!(line.contains(&format!("{} (beside the executable)", artifacts().dir.display())), "{line}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "this is not a shared library\n").unwrap();
    let setup = setup_with_plugin_dir("junk", Some((junk.path(), "libhis_junk.so")));
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.contains("cannot load plugin") && line.contains("libhis_junk.so"), "{line}");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let (_, line) = refusal("not_a_plugin", Some("not_a_plugin"));
    assert!(line.contains("is not a Buktor HIS plugin"), "{line}");
    assert!(line.contains("exports no Buktor plugin root module"), "{line}");
}

#[test]
fn a_plugin_of_another_major_version_names_both_versions() {
    let (_, line) = refusal("wrong_version", Some("wrong_version"));
    assert!(line.contains("was built against plugin-api 2.0.0"), "{line}");
    // Today's version, whichever it is: this test is about the major one.
    let host = format!("this buktor-middleware uses plugin-api {}", buktor_middleware::plugins::api::ABI_VERSION);
    assert!(line.contains(&host), "{line}");
}

#[test]
fn a_plugin_with_a_different_layout_is_refused_in_one_line() {
    let (_, line) = refusal("wrong_layout", Some("wrong_layout"));
    assert!(line.contains("was built against plugin-api 1.0.0"), "{line}");
    assert!(line.contains("its types differ from this host's"), "{line}");
    assert!(
        line.contains(
            "(abi_stable: type PluginModule (his_plugin_api::v1_0::types): mismatched package (expected \
             his-plugin-api, found fixture-wrong-layout))"
        ),
        "{line}"
    );
}

#[test]
fn plugins_dir_is_searched_before_the_executable_folder() {
    // A copy of the sqlite plugin under plugins.dir is the one loaded.
    let source = artifacts().plugin("sqlite");
    let mut setup = setup_with_plugin_dir("sqlite", Some((&source, "libhis_sqlite.so")));
    setup.config["database"] = json!({"type": "sqlite", "path": "his.db", "create_missing": true});
    let middleware = setup.start();
    let expected = setup.path("plugins/libhis_sqlite.so");
    assert!(middleware.logs().contains(&format!("plugin: {}", expected.display())), "{}", middleware.logs());
}

#[test]
fn a_panicking_plugin_becomes_an_error_and_the_host_carries_on() {
    let source = artifacts().plugin("panicky");
    let mut setup = setup_with_plugin_dir("panicky", Some((&source, "libhis_panicky.so")));
    setup.config["database"] = json!({"type": "panicky", "path": "rows.jsonl"});
    let middleware = setup.start();

    let bad = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "panic!"}"#);
    let good = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 2, "status": "confirmed"}"#);
    assert_eq!((bad.status, good.status), (200, 200));
    let bad_id = bad.json()["id"].as_i64().unwrap();

    // The good event arrives although it may share a batch with the bad one.
    let rows = wait_for(Duration::from_secs(10), "the good row", || {
        let text = std::fs::read_to_string(setup.path("rows.jsonl")).unwrap_or_default();
        text.contains(r#""HIS_appointment_id":2"#).then_some(text)
    });
    assert!(!rows.contains(r#""HIS_appointment_id":1"#), "{rows}");

    // The bad one is set aside as failed, with the panic as its error; the host is alive.
    wait_for(Duration::from_secs(10), "the panic recorded on the bad event", || {
        let row = query(&setup.journal(), &format!("SELECT status, last_error FROM events WHERE id = {bad_id}"));
        let error = row[0][1].as_str().unwrap_or_default().to_string();
        (row[0][0] == json!("failed") && error.contains("panic error: the plugin panicked in write: boom"))
            .then_some(())
    });
    assert_eq!(middleware.request("GET", "/health", &[], b"").status, 200);
    let logs = middleware.logs();
    assert!(logs.contains("the panicky plugin panicked"), "{logs}");
    assert!(logs.matches("panicky writer opened").count() >= 2, "the poisoned writer was replaced:\n{logs}");

    // More good events still flow after the panic.
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 3, "status": "confirmed"}"#);
    wait_for(Duration::from_secs(10), "a row after the panic", || {
        std::fs::read_to_string(setup.path("rows.jsonl"))
            .unwrap_or_default()
            .contains(r#""HIS_appointment_id":3"#)
            .then_some(())
    });
}

#[test]
fn a_row_that_panics_once_is_tried_again_on_a_fresh_writer_and_delivered() {
    let source = artifacts().plugin("panicky");
    let mut setup = setup_with_plugin_dir("panicky", Some((&source, "libhis_panicky.so")));
    setup.config["database"] = json!({"type": "panicky", "path": "rows.jsonl"});
    let middleware = setup.start();

    let once = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 7, "status": "panic-once"}"#);
    assert_eq!(once.status, 200);
    let id = once.json()["id"].as_i64().unwrap();
    // The panic came from the writer, not the row: a fresh writer writes it.
    wait_for(Duration::from_secs(10), "the row written on the second try", || {
        let text = std::fs::read_to_string(setup.path("rows.jsonl")).unwrap_or_default();
        text.contains(r#""HIS_appointment_id":7"#).then_some(())
    });
    wait_for(Duration::from_secs(10), "the event delivered", || {
        let row = query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {id}"));
        (row[0][0] == json!("delivered")).then_some(())
    });
    let logs = middleware.logs();
    assert!(logs.contains("trying that event once more on a fresh writer"), "{logs}");
    assert!(logs.matches("panicky writer opened").count() >= 2, "a fresh writer was opened:\n{logs}");
}

#[test]
fn a_plugin_call_that_never_returns_ends_the_process_for_a_restart_and_loses_nothing() {
    let source = artifacts().plugin("panicky");
    let mut setup = setup_with_plugin_dir("panicky", Some((&source, "libhis_panicky.so")));
    setup.config["database"] = json!({"type": "panicky", "path": "rows.jsonl"});
    setup.config["sync"]["plugin_call_timeout_secs"] = 1.into();
    let mut middleware = setup.start();
    let stuck = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 9, "status": "hang!"}"#);
    assert_eq!(stuck.status, 200);
    // 1 s deadline, then 5 s grace: the watchdog ends the process.
    let status = wait_for(Duration::from_secs(60), "the process to end", || middleware.exit_status());
    assert_eq!(status.code(), Some(70), "{}", middleware.logs());
    let logs = middleware.logs();
    assert!(logs.contains("the plugin has not returned from the write to HIS_appointments for"), "{logs}");
    assert!(logs.contains("exiting so that the service restarts with a fresh plugin"), "{logs}");
    // The event waits in the journal for the restarted process.
    let row = query(&setup.journal(), "SELECT status FROM events");
    assert_eq!(row, [vec![json!("pending")]]);
}
