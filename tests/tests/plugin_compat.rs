//! Plugins outlive the host they were built for: a plugin built against the
//! frozen plugin-api 1.0 (tests/fixtures/abi-1.0, never rebuilt against
//! today's crate) loads in today's host and delivers, and a mapping it
//! cannot serve stops startup with one line naming the mapping. So does one
//! built against the frozen plugin-api 1.1 (tests/fixtures/abi-1.1), whose
//! writer cannot write several batches in one transaction: the host knows
//! (`writes_batches_together` is false, and the conformance kit says its
//! write_all check is not verified).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use buktor_tests::{Setup, artifacts, repo_root, seed, verified, wait_for};
use serde_json::{Value, json};

/// tests/fixtures/abi-1.0 built once, in a target folder of its own (it is
/// its own workspace, with the 1.0 plugin-api as it was released): its
/// `target/debug` folder, with the 1.0 template plugin and the 1.0 host.
fn built_1_0() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_fixture("abi-1.0"))
}

/// tests/fixtures/abi-1.1 built once, as [`built_1_0`]: the 1.1 template
/// plugin, built against plugin-api 1.1.0 as it was released.
fn built_1_1() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_fixture("abi-1.1"))
}

/// Builds the workspace tests/fixtures/`name` with its own lock file, in
/// `target/<name>`, and returns its `debug` folder.
fn build_fixture(name: &str) -> PathBuf {
    let fixture = repo_root().join("tests/fixtures").join(name);
    let target = artifacts().dir.parent().expect("target/").join(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&fixture)
        .args(["build", "--quiet", "--locked", "--workspace", "--target-dir"])
        .arg(&target)
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "building the {name} fixture failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("debug")
}

/// The 1.0 template plugin.
fn plugin_1_0() -> PathBuf {
    built_1_0().join(format!("{}his_template{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

/// The 1.1 template plugin.
fn plugin_1_1() -> PathBuf {
    built_1_1().join(format!("{}his_template{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

/// A setup whose plugins.dir holds only the 1.0 template plugin, writing
/// JSON lines to rows.jsonl.
fn with_the_1_0_plugin() -> Setup {
    with_the_template(&plugin_1_0())
}

/// A setup whose plugins.dir holds only the template plugin `plugin`,
/// writing JSON lines to rows.jsonl.
fn with_the_template(plugin: &Path) -> Setup {
    let mut setup = Setup::new();
    let dir = setup.path("plugins");
    std::fs::create_dir(&dir).unwrap();
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
fn a_plugin_built_against_plugin_api_1_1_loads_and_delivers() {
    let setup = with_the_template(&plugin_1_1());
    let mut middleware = setup.start();
    let logs = middleware.logs();
    assert!(logs.contains("plugin template 0.1.0, plugin-api 1.1.0"), "{logs}");
    for event in seed::EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let rows = wait_for(Duration::from_secs(30), "the seed's three rows in rows.jsonl", || {
        Some(lines(&setup)).filter(|rows| rows.len() == 3)
    });
    let tables: Vec<&str> = rows.iter().map(|r| r["table"].as_str().unwrap()).collect();
    assert_eq!(tables, ["HIS_appointments", "HIS_schedules", "HIS_payments"]);
    // The 1.1 template names each line's action: written through open_writer_v1_1.
    assert!(rows.iter().all(|r| r["action"] == "upsert"), "{rows:?}");
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
    assert_eq!(setup.journal_statuses(), [vec![json!("delivered"), json!(3)]]);
    verified("plugin_compat", "a plugin built against the frozen plugin-api 1.1 loads in today's host and delivers");
}

/// The conformance kit on the 1.1 plugin: everything a 1.1 writer does
/// passes or is not verified as for today's template, and the write_all
/// check is not verified, naming plugin-api 1.1.0: the host read from the
/// 1.1 writer that it does not write batches together.
#[test]
fn a_1_1_plugin_does_not_write_batches_together_and_the_kit_says_so() {
    let setup = with_the_template(&plugin_1_1());
    let output = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(setup.write_config())
        .args(["plugin-test", "--plugin"])
        .arg(plugin_1_1())
        .output()
        .expect("run plugin-test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("built against plugin-api 1.1.0"), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("write_all: two tables in one transaction")).expect("the check");
    assert!(line.starts_with("n/v "), "{line}");
    assert!(
        line.contains("the plugin was built against plugin-api 1.1.0, which has no write_all (plugin-api 1.2)"),
        "{line}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    verified("plugin_compat", "a 1.1 plugin's writer does not write batches together, and the host knows it");
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

#[test]
fn an_event_into_two_tables_with_a_1_1_plugin_stops_startup_naming_the_mapping() {
    let mut setup = with_the_template(&plugin_1_1());
    setup.config["mapping"]["payment"] = json!([
        {"table": "HIS_payments", "fields": {"payment_id": "HIS_payment_id"}},
        {"table": "HIS_appointments", "key": ["appointment_id"], "action": "update",
         "fields": {"appointment_id": "HIS_appointment_id"}, "columns": {"HIS_paid": {"const": 1}}}
    ]);
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success(), "{status}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("mapping.payment[1] writes another HIS row than the first target"), "{}", errors[0]);
    assert!(errors[0].contains("(plugin-api 1.1.0) cannot write several tables in one transaction"), "{}", errors[0]);
    verified(
        "plugin_compat",
        "an event into two tables with a 1.1 plugin stops startup in one line naming the mapping",
    );
}

#[test]
fn todays_plugin_serves_a_host_built_on_plugin_api_1_0() {
    let dir = tempfile::tempdir().unwrap();
    let host = built_1_0().join(format!("host-1-0{}", std::env::consts::EXE_SUFFIX));
    let output = Command::new(host)
        .arg(artifacts().plugin("template"))
        .arg(dir.path())
        .arg(r#"{"type": "template", "path": "rows.jsonl"}"#)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    let api = std::fs::read_to_string(repo_root().join("plugin-api/Cargo.toml")).unwrap();
    let version = api.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"').to_string();
    assert!(stdout.contains(&format!("through plugin template 0.1.0 (plugin-api {version})")), "{stdout}");
    let text = std::fs::read_to_string(dir.path().join("rows.jsonl")).unwrap();
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Today's template wrote them (it names the action), through the 1.0 call.
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!((rows[1]["action"].as_str(), rows[1]["row"]["HIS_status"].as_str()), (Some("upsert"), Some("arrived")));
    verified("plugin_compat", &format!("a plugin built against plugin-api {version} upserts for a host built on 1.0"));
}

/// Copies `from` into `to`, skipping `target` folders.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&path, &to.join(entry.file_name()));
            }
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Replaces `from` with `to` in `text`, and insists that it was there: when
/// this fails, the file changed and this test's patch must follow it.
fn patched(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the file no longer has {from:?}: update this test's patch");
    text.replace(from, to)
}

/// The template plugin built against a fork of today's plugin-api that
/// claims the same version but added a field to `Value`: what a vendor who
/// patched the SDK would ship.
fn plugin_with_a_changed_value() -> PathBuf {
    let work = artifacts().dir.parent().expect("target/").join("changed-layout");
    let _ = std::fs::remove_dir_all(work.join("src"));
    copy_tree(&repo_root().join("plugin-api"), &work.join("src/plugin-api"));
    copy_tree(&repo_root().join("plugins/template/src"), &work.join("src/plugin/src"));
    let value = work.join("src/plugin-api/src/value.rs");
    let mut text = std::fs::read_to_string(&value).unwrap();
    text = patched(
        &text,
        "    data: RVec<u8>,\n}",
        "    data: RVec<u8>,\n    /// Added by a fork.\n    added_by_a_fork: u32,\n}",
    );
    for constructor in ["data: RVec::new() }", "data: text.into_bytes() }", "data: RVec::from(bytes.into()) }"] {
        text = patched(&text, constructor, &constructor.replace(" }", ", added_by_a_fork: 0 }"));
    }
    std::fs::write(&value, text).unwrap();
    let api_manifest = std::fs::read_to_string(repo_root().join("plugin-api/Cargo.toml")).unwrap();
    let version = api_manifest.lines().find_map(|l| l.strip_prefix("version = ")).expect("plugin-api's version");
    std::fs::write(
        work.join("src/plugin-api/Cargo.toml"),
        format!(
            "[package]\nname = \"his-plugin-api\"\nversion = {version}\nedition = \"2024\"\n\n[dependencies]\n\
             abi_stable = \"0.11\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\n\
             serde_path_to_error = \"0.1\"\n\n[features]\nsettings = []\n"
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("src/plugin/Cargo.toml"),
        "[package]\nname = \"forked-template\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\nname = \"his_template\"\n\
         crate-type = [\"cdylib\"]\n\n[dependencies]\nhis-plugin-api = { path = \"../plugin-api\", features = [\"settings\"] }\n\
         abi_stable = \"0.11\"\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        work.join("src/Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"plugin-api\", \"plugin\"]\n",
    )
    .unwrap();
    // The workspace's lock, so that the fork builds with the crates already here.
    std::fs::copy(repo_root().join("Cargo.lock"), work.join("src/Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(work.join("src"))
        .args(["build", "--quiet", "-p", "forked-template", "--target-dir"])
        .arg(work.join("target"))
        .output()
        .expect("run cargo build");
    assert!(output.status.success(), "building the forked plugin failed:\n{}", String::from_utf8_lossy(&output.stderr));
    work.join("target/debug").join(format!(
        "{}his_template{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn a_plugin_whose_value_gained_a_field_is_refused_naming_the_type() {
    let mut setup = Setup::new();
    let dir = setup.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    let plugin = plugin_with_a_changed_value();
    std::fs::copy(&plugin, dir.join(plugin.file_name().unwrap())).unwrap();
    setup.config["database"] = json!({"type": "template", "path": "rows.jsonl"});
    setup.config["plugins"] = json!({"dir": "plugins"});
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success(), "{status}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(stderr.lines().count() < 10, "no layout dump:\n{stderr}");
    assert!(errors[0].contains("its types differ from this host's"), "{}", errors[0]);
    assert!(errors[0].contains("type Value"), "names the type: {}", errors[0]);
    verified(
        "plugin_compat",
        "a plugin built against a same-version plugin-api whose Value gained a field is refused, naming Value",
    );
}

#[test]
fn a_plugin_built_with_panic_abort_does_not_compile() {
    let target = artifacts().dir.parent().expect("target/").join("panic-abort");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args(["rustc", "--quiet", "-p", "his-plugin-template", "--lib", "--target-dir"])
        .arg(&target)
        .args(["--", "-C", "panic=abort"])
        .output()
        .expect("run cargo rustc");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the plugin compiled with panic=abort:\n{stderr}");
    assert!(stderr.contains("a plugin must be built with panic = \"unwind\""), "{stderr}");
    verified("plugin_compat", "export_plugin! refuses to compile a plugin with panic = \"abort\"");
}

#[test]
fn the_sdk_packages_and_the_template_builds_outside_the_repository() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = artifacts().dir.parent().expect("target/").join("sdk");
    // plugin-api as crates.io would take it: packaged, then built from the package.
    let output = Command::new(&cargo)
        .current_dir(repo_root())
        .args(["package", "--quiet", "--offline", "--allow-dirty", "-p", "his-plugin-api", "--target-dir"])
        .arg(&target)
        .output()
        .expect("run cargo package");
    assert!(output.status.success(), "cargo package failed:\n{}", String::from_utf8_lossy(&output.stderr));

    // The template, copied out as its README says, with the path pointed at plugin-api.
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("his-plugin-acme");
    copy_tree(&repo_root().join("plugins/template"), &copy);
    let manifest = copy.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let api = repo_root().join("plugin-api");
    let pointed = patched(&text, "path = \"../../plugin-api\"", &format!("path = {:?}", api.display().to_string()));
    std::fs::write(&manifest, pointed).unwrap();
    std::fs::copy(repo_root().join("Cargo.lock"), copy.join("Cargo.lock")).unwrap();
    let output = Command::new(&cargo)
        .current_dir(&copy)
        .args(["build", "--quiet", "--offline", "--target-dir"])
        .arg(target.join("template"))
        .output()
        .expect("run cargo build");
    assert!(output.status.success(), "the copied template did not build:\n{}", String::from_utf8_lossy(&output.stderr));
    let library = format!("{}his_template{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    assert!(target.join("template/debug").join(library).is_file());
    verified(
        "plugin_compat",
        "plugin-api packages (cargo package); plugins/template builds copied out of the repository",
    );
}
