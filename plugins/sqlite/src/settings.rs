//! The `database` section for `"type": "sqlite"`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

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
    /// it gives up with a retryable conflict (SQLite's busy timeout), as
    /// every writer's `lock_timeout_secs`. Default 5.
    lock_timeout_secs: Option<u64>,
    /// The same in milliseconds, the older name: for a wait below a second.
    busy_timeout_ms: Option<u64>,
}

/// Checked settings, with the path made absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HIS database file.
    pub path: PathBuf,
    /// See `create_missing` above.
    pub create_missing: bool,
    /// SQLite's busy timeout: `lock_timeout_secs`, or `busy_timeout_ms`.
    pub lock_timeout: Duration,
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
        let lock_timeout = match (raw.lock_timeout_secs, raw.busy_timeout_ms) {
            (Some(_), Some(_)) => {
                return Err(PluginError::setting(
                    "busy_timeout_ms",
                    "is the older name of database.lock_timeout_secs (in milliseconds): set only one of them",
                ));
            }
            (None, Some(milliseconds)) => Duration::from_millis(milliseconds),
            (seconds, None) => his_plugin_api::check_lock_timeout(seconds, None)?,
        };
        Ok(Self { path: Path::new(config_dir).join(raw.path), create_missing: raw.create_missing, lock_timeout })
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
        assert_eq!(s.lock_timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_busy_timeout_is_the_lock_timeout() {
        let parse = |extra: &str| Settings::parse(&format!(r#"{{"type":"sqlite","path":"x"{extra}}}"#), "/");
        assert_eq!(parse(r#","lock_timeout_secs":2"#).unwrap().lock_timeout, Duration::from_secs(2));
        // The older setting, in milliseconds, still works.
        assert_eq!(parse(r#","busy_timeout_ms":50"#).unwrap().lock_timeout, Duration::from_millis(50));
        for (extra, expected) in [
            (r#","lock_timeout_secs":0"#, "database.lock_timeout_secs: must be at least 1, found 0"),
            (
                r#","lock_timeout_secs":2,"busy_timeout_ms":50"#,
                "database.busy_timeout_ms: is the older name of database.lock_timeout_secs",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.kind, ErrorKind::CONFIG);
            assert!(e.message.starts_with(expected), "{extra}: {e}");
        }
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
