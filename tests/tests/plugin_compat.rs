//! Plugins outlive the host they were built for: a plugin built against the
//! frozen plugin-api 1.0 (tests/fixtures/abi-1.0, never rebuilt against
//! today's crate) loads in today's host and delivers, and a mapping it
//! cannot serve stops startup with one line naming the mapping.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use buktor_tests::{Setup, artifacts, repo_root, seed, verified, wait_for};
use serde_json::{Value, json};

/// The 1.0 template plugin, built once from tests/fixtures/abi-1.0 in a
/// target folder of its own (it is its own workspace, with the 1.0
/// plugin-api as it was released).
fn plugin_1_0() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let fixture = repo_root().join("tests/fixtures/abi-1.0");
        let target = artifacts().dir.parent().expect("target/").join("abi-1.0");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&fixture)
            .args(["build", "--quiet", "--locked", "-p", "his-plugin-template-1-0", "--target-dir"])
            .arg(&target)
            .output()
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "building the 1.0 fixture failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("debug").join(format!(
            "{}his_template{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    })
}

/// A setup whose plugins.dir holds only the 1.0 template plugin, writing
/// JSON lines to rows.jsonl.
fn with_the_1_0_plugin() -> Setup {
    let mut setup = Setup::new();
    let dir = setup.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    let plugin = plugin_1_0();
    std::fs::copy(plugin, dir.join(plugin.file_name().unwrap())).unwrap();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    setup.config["plugins"] = json!({"dir": "plugins"});
    setup
}

fn lines(setup: &Setup) -> Vec<Value> {
    let text = std::fs::read_to_string(setup.path("rows.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn a_plugin_built_against_plugin_api_1_0_loads_and_delivers() {
    let setup = with_the_1_0_plugin();
    let mut middleware = setup.start();
    let logs = middleware.logs();
    assert!(logs.contains("plugin template 0.1.0, plugin-api 1.0.0"), "{logs}");
    for event in seed::EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let rows = wait_for(Duration::from_secs(30), "the seed's three rows in rows.jsonl", || {
        Some(lines(&setup)).filter(|rows| rows.len() == 3)
    });
    let tables: Vec<&str> = rows.iter().map(|r| r["table"].as_str().unwrap()).collect();
    assert_eq!(tables, ["HIS_appointments", "HIS_schedules", "HIS_payments"]);
    assert_eq!(rows[0]["row"]["HIS_status"], "confirmed");
    // The 1.0 template wrote no action: these lines are its own, not today's.
    assert!(rows.iter().all(|r| r.get("action").is_none()), "{rows:?}");
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
    assert_eq!(setup.journal_statuses(), [vec![json!("delivered"), json!(3)]]);
    verified("plugin_compat", "a plugin built against the frozen plugin-api 1.0 loads in today's host and delivers");
}

#[test]
fn an_action_a_1_0_plugin_lacks_stops_startup_naming_the_mapping() {
    let mut setup = with_the_1_0_plugin();
    setup.config["mapping"]["payment"]["action"] = "delete".into();
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success(), "{status}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("mapping.payment.action is \"delete\", but the plugin"), "{}", errors[0]);
    assert!(errors[0].contains("(plugin-api 1.0.0) can only upsert"), "{}", errors[0]);

    let mut setup = with_the_1_0_plugin();
    setup.config["mapping"]["appointment"]["on_missing"] = "keep".into();
    let (_, stderr) = setup.run_expecting_exit();
    assert!(stderr.contains("mapping.appointment.on_missing is \"keep\", but the plugin"), "{stderr}");
    verified("plugin_compat", "a mapping a 1.0 plugin cannot serve stops startup in one line naming the mapping");
}
