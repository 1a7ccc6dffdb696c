//! What the writer would append for some batches, without appending it:
//! what `buktor-middleware map --sql` prints for this plugin.
//!
//! This plugin runs no SQL: its "statements" are the JSON lines it would
//! append to the rows file, one per row, with no parameters, built by the
//! writer's own code. A test below checks them against what
//! [`crate::TemplateWriter`] really appends.

use his_plugin_api::{PluginError, WriteBatch};

/// The lines for `batches`, in the order they would be appended; checks
/// the settings as `open` does (the folder of the rows file too, as
/// `open` refuses a file it could not create).
pub fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<String>, PluginError> {
    let settings: crate::Settings = his_plugin_api::parse_settings(settings_json)?;
    let path = std::path::Path::new(config_dir).join(&settings.path);
    let folder = path.parent().unwrap_or(std::path::Path::new("."));
    if settings.path.as_os_str().is_empty() || !folder.is_dir() {
        return Err(PluginError::setting("path", format!("no folder {} for the rows file", folder.display())));
    }
    // The writer's own line builder: what is shown is what it appends.
    let mut lines = String::new();
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        crate::append_lines(&mut lines, batch).map_err(|e| e.offset_row(first_row))?;
    }
    Ok(lines.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::{Action, Deadline, IfMissing, Value, Writer};
    use serde_json::{Value as Json, json};

    use super::*;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batches() -> Vec<WriteBatch> {
        let payment = WriteBatch::new(
            "HIS_payments",
            Action::UPSERT,
            names(&["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"]),
            names(&["HIS_payment_id"]),
            vec![Value::int(789), Value::decimal("50.0"), Value::text("paid"), Value::null()].into(),
        );
        let partial = WriteBatch::new(
            "HIS_appointments",
            Action::update(IfMissing::Error),
            names(&["ID", "NOTE", "ROOM", "DATA"]),
            names(&["ID"]),
            vec![Value::int(7), Value::text("n"), Value::null(), Value::bytes(vec![0, 255])].into(),
        )
        .with_presence(|_, column| column != 2);
        vec![payment, partial]
    }

    #[test]
    fn the_seed_payment_and_a_partial_update_are_the_lines_the_writer_appends() {
        let dir = tempfile_dir();
        let lines = render(r#"{"type":"template","path":"rows.jsonl"}"#, dir.to_str().unwrap(), &batches()).unwrap();
        let parsed: Vec<Json> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            parsed,
            [
                json!({"table": "HIS_payments", "action": "upsert", "key": {"HIS_payment_id": 789},
                       "row": {"HIS_payment_id": 789, "HIS_amount": "50.0", "HIS_payment_status": "paid", "HIS_paid_at": null}}),
                json!({"table": "HIS_appointments", "action": "update", "key": {"ID": 7},
                       "row": {"ID": 7, "NOTE": "n", "DATA": "00ff"}}),
            ]
        );
        assert!(!dir.join("rows.jsonl").exists(), "render appends nothing");

        // What the writer itself appends.
        let mut writer = crate::TemplateWriter { path: dir.join("rows.jsonl") };
        for batch in batches() {
            writer.write(&batch, Deadline::after(std::time::Duration::from_secs(5))).unwrap();
        }
        let written = std::fs::read_to_string(dir.join("rows.jsonl")).unwrap();
        assert_eq!(written.lines().collect::<Vec<_>>(), lines);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn settings_are_checked_as_open_checks_them() {
        let e = render(r#"{"type":"template","path":"nowhere/rows.jsonl"}"#, "/nonexistent", &[]).unwrap_err();
        assert!(e.message.starts_with("database.path: no folder /nonexistent/nowhere"), "{e}");
        let e = render(r#"{"type":"template"}"#, "/", &[]).unwrap_err();
        assert!(e.message.contains("missing field `path`"), "{e}");
    }

    /// A fresh folder under the system's temporary one.
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("his-template-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
