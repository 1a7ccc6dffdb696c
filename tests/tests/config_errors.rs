//! A wrong config stops the middleware before it listens, with one line
//! that names the JSON path and what was expected.

use buktor_tests::{Setup, artifacts};
use serde_json::json;

fn error_line(setup: &Setup) -> String {
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success(), "exit status {status}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_string()
}

#[test]
fn a_wrong_type_names_the_json_path() {
    let mut setup = Setup::new();
    setup.config["mapping"]["payment"]["fields"]["amount"] = json!(5);
    let line = error_line(&setup);
    assert!(
        line.contains("his-config.json: mapping.payment.fields.amount: invalid type: integer `5`, expected a string"),
        "{line}"
    );
}

#[test]
fn an_unknown_setting_names_the_json_path() {
    let mut setup = Setup::new();
    setup.config["server"]["port"] = json!(5000);
    let line = error_line(&setup);
    assert!(line.contains("server.port: unknown field `port`, expected one of `listen`, `max_body_bytes`"), "{line}");
}

#[test]
fn malformed_json_names_the_place() {
    let setup = Setup::new();
    let path = setup.write_config();
    std::fs::write(&path, "{\"database\": {\"type\": \"sqlite\",}}").unwrap();
    let output = std::process::Command::new(&artifacts().binary).arg("--config").arg(&path).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("his-config.json is not valid JSON: trailing comma at line 1 column 32"), "{stderr}");
}

#[test]
fn a_mapping_without_a_key_says_how_to_add_one() {
    let mut setup = Setup::new();
    setup.config["mapping"]["note"] = json!({"table": "HIS_notes", "fields": {"text": "HIS_text"}});
    let line = error_line(&setup);
    assert!(line.contains("mapping.note.key: no key"), "{line}");
    assert!(line.contains("\"key\": [\"<field>\"]"), "{line}");
}

#[test]
fn two_mappings_of_one_table_with_other_key_columns_are_named_both() {
    let mut setup = Setup::new();
    // Without a key, each mapping's key is its first field ending in _id.
    setup.config["mapping"]["appointment_moved"] = json!({
        "table": "his_Appointments",
        "fields": {"patient_id": "HIS_patient_id", "appointment_id": "HIS_appointment_id", "status": "HIS_status"}
    });
    let line = error_line(&setup);
    assert!(
        line.ends_with(
            "his-config.json: mapping.appointment_moved.key: keys the table his_Appointments by [HIS_patient_id] \
             (no key set: the first mapped field ending in _id), but mapping.appointment writes that table too (as \
             HIS_appointments), keyed by [HIS_appointment_id] (no key set: the first mapped field ending in _id). \
             Every mapping of one table must use the same key columns, or one HIS row gets two event keys and its \
             events may be written out of order: set mapping.appointment_moved.key to the field(s) mapped to \
             HIS_appointment_id"
        ),
        "{line}"
    );

    // The fix it names: the same key columns, whatever their order or case.
    setup.config["mapping"]["appointment_moved"]["key"] = json!(["appointment_id"]);
    let mut middleware = setup.start();
    assert!(middleware.terminate().success());
}

#[test]
fn plugin_settings_errors_name_the_setting() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!("yes");
    let line = error_line(&setup);
    assert!(line.contains("cannot open the sqlite HIS database"), "{line}");
    assert!(line.contains("database.create_missing: invalid type: string \"yes\", expected a boolean"), "{line}");
}

#[test]
fn a_missing_his_file_is_not_created_unless_asked() {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    let line = error_line(&setup);
    assert!(line.contains("database.path: cannot open SQLite HIS database"), "{line}");
    assert!(line.contains("set database.create_missing to true"), "{line}");
    assert!(!setup.path("his.db").exists());
}

#[test]
fn a_missing_config_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(&artifacts().binary).current_dir(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no config file: looked for his-config.json in"), "{stderr}");
    assert!(stderr.contains("pass --config PATH"), "{stderr}");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut setup = Setup::new();
    setup.config["server"]["listen"] = json!(taken.local_addr().unwrap().to_string());
    let line = error_line(&setup);
    assert!(line.contains("(server.listen): is another program using that port?"), "{line}");
}

#[test]
fn a_journal_from_a_newer_version_is_refused_with_its_schema_version() {
    let setup = Setup::new();
    let journal = setup.journal();
    journal.pragma_update(None, "user_version", 99).unwrap();
    drop(journal);
    let line = error_line(&setup);
    assert!(line.contains("has schema version 99, but this buktor-middleware knows only up to "), "{line}");
}

#[test]
fn a_secret_quoted_by_an_error_is_not_printed() {
    let mut setup = Setup::new();
    // A number where a string belongs: serde's message quotes the value.
    setup.config["server"]["admin_token"] = json!(8_675_309_867_530_986_u64);
    let line = error_line(&setup);
    assert!(line.contains("server.admin_token: invalid type: integer `***`, expected a string"), "{line}");
    assert!(!line.contains("8675309867530986"), "{line}");
}

#[test]
fn a_secret_quoted_with_escapes_is_not_printed_either() {
    let mut setup = Setup::new();
    // serde quotes a wrong-typed string with escapes: pa\"ss\\w0rd.
    setup.config["server"]["auth"] = json!({"bearer_tokens": "pa\"ss\\w0rd-long-enough"});
    setup.config["database"]["password"] = json!("pa\"ss\\w0rd-long-enough");
    let line = error_line(&setup);
    assert!(line.contains("server.auth.bearer_tokens"), "{line}");
    assert!(!line.contains("w0rd"), "{line}");
}
