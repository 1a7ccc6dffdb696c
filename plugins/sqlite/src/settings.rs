//! The `database` section for `"type": "sqlite"`.

use std::path::{Path, PathBuf};

use his_plugin_api::{ErrorKind, PluginError};
use serde::Deserialize;

/// The settings, as the operator writes them under `database`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    /// Always `"sqlite"`: the host chose this plugin by it.
    #[serde(rename = "type")]
    _type: String,
    /// The HIS database file. Relative paths are relative to the config file.
    path: PathBuf,
    /// Create missing tables, columns and key indexes. For demos and the
    /// embedded default only: a real HIS is never altered.
    #[serde(default)]
    create_missing: bool,
    /// How long a write waits for another process's lock on the file before
    /// it gives up with a retryable error.
    #[serde(default = "default_busy_timeout_ms")]
    busy_timeout_ms: u64,
}

fn default_busy_timeout_ms() -> u64 {
    5_000
}

/// Checked settings, with the path made absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HIS database file.
    pub path: PathBuf,
    /// See `create_missing` above.
    pub create_missing: bool,
    /// See `busy_timeout_ms` above.
    pub busy_timeout_ms: u64,
}

impl Settings {
    /// Parses the `database` section. Errors name the setting, such as
    /// `database.create_missing: invalid type: string "yes", expected a boolean`.
    pub fn parse(settings_json: &str, config_dir: &str) -> Result<Self, PluginError> {
        let raw: RawSettings = his_plugin_api::parse_settings(settings_json)?;
        if raw.path.as_os_str().is_empty() {
            return Err(PluginError::permanent(
                ErrorKind::CONFIG,
                "database.path: must name the SQLite HIS database file",
            ));
        }
        Ok(Self {
            path: Path::new(config_dir).join(raw.path),
            create_missing: raw.create_missing,
            busy_timeout_ms: raw.busy_timeout_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_is_resolved_against_the_config_folder() {
        let s = Settings::parse(r#"{"type":"sqlite","path":"his.db"}"#, "/etc/buktor").unwrap();
        assert_eq!(s.path, Path::new("/etc/buktor/his.db"));
        assert!(!s.create_missing);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Settings::parse(r#"{"type":"sqlite","path":"x","create_missing":"yes"}"#, "/").unwrap_err();
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert!(e.message.starts_with("database.create_missing: invalid type"), "{e}");

        let e = Settings::parse(r#"{"type":"sqlite","path":"x","host":"h"}"#, "/").unwrap_err();
        assert!(e.message.starts_with("database.host: unknown field `host`"), "{e}");

        let e = Settings::parse(r#"{"type":"sqlite"}"#, "/").unwrap_err();
        assert!(e.message.contains("missing field `path`"), "{e}");
    }
}
