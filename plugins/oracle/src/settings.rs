//! The `database` section for `"type": "oracle"`.
//!
//! The seed documentation's example (`host`, `user`, `password`,
//! `database`) is complete: `database` is the service name.

use std::fmt;

use his_plugin_api::{HisZone, PluginError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(rename = "type")]
    _type: String,
    host: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    /// The service name.
    database: Option<String>,
    /// Instead of host, port and database: an Easy Connect string, a TNS
    /// alias from tnsnames.ora, or a full connect descriptor.
    connect_string: Option<String>,
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    /// The longest one call (a batch's MERGE or one row's statement, its
    /// commit) may take before it is abandoned and retried: a dead link
    /// must not stall delivery.
    #[serde(default = "default_statement_timeout_secs")]
    statement_timeout_secs: u64,
    /// The longest a batch waits for rows another session has locked
    /// (`SELECT … FOR UPDATE WAIT n` before the batch's statements): then it
    /// fails with ORA-30006, a retryable conflict on its rows only. Below
    /// `statement_timeout_secs`.
    lock_timeout_secs: Option<u64>,
}

fn default_statement_timeout_secs() -> u64 {
    60
}

fn default_port() -> u16 {
    1521
}
fn default_timezone() -> String {
    "UTC".into()
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    /// The login.
    pub user: String,
    /// Never logged.
    pub password: String,
    /// What ODPI-C connects to: `//host:port/service`, or the operator's own.
    pub connect_string: String,
    /// The HIS's time zone: timestamps with an offset are converted to it.
    pub zone: HisZone,
    /// The longest one call may take.
    pub statement_timeout: std::time::Duration,
    /// The longest a batch waits for rows another session has locked.
    pub lock_timeout: std::time::Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("user", &self.user)
            .field("connect_string", &self.connect_string)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Parses the `database` section; errors name the setting.
    pub fn parse(settings_json: &str) -> Result<Self, PluginError> {
        let raw: RawSettings = his_plugin_api::parse_settings(settings_json)?;
        if raw.user.trim().is_empty() {
            return Err(PluginError::setting("user", "must not be empty"));
        }
        let connect_string = match (&raw.connect_string, &raw.host, &raw.database) {
            (Some(connect), _, _) if !connect.trim().is_empty() => connect.clone(),
            (Some(_), _, _) => return Err(PluginError::setting("connect_string", "must not be empty")),
            (None, Some(host), Some(service)) if !host.trim().is_empty() && !service.trim().is_empty() => {
                format!("//{host}:{}/{service}", raw.port)
            }
            (None, _, _) => {
                return Err(PluginError::setting(
                    "database",
                    "set host and database (the service name), or connect_string",
                ));
            }
        };
        let zone: HisZone = raw.timezone.parse().map_err(|e| PluginError::setting("timezone", e))?;
        if !(1..=3600).contains(&raw.statement_timeout_secs) {
            return Err(PluginError::setting("statement_timeout_secs", "must be between 1 and 3600"));
        }
        let lock_timeout = his_plugin_api::check_lock_timeout(raw.lock_timeout_secs, Some(raw.statement_timeout_secs))?;
        Ok(Self {
            user: raw.user,
            password: raw.password,
            connect_string,
            zone,
            statement_timeout: std::time::Duration::from_secs(raw.statement_timeout_secs),
            lock_timeout,
        })
    }

    /// For log lines: `user@connect string`, never the password.
    pub fn display(&self) -> String {
        format!("{}@{}", self.user, self.connect_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"type": "oracle", "host": "your-oracle-host", "user": "your-user", "password": "your-password", "database": "his_database"}"#;

    #[test]
    fn the_seed_example_is_an_easy_connect_string() {
        let s = Settings::parse(SEED).unwrap();
        assert_eq!(s.connect_string, "//your-oracle-host:1521/his_database");
        assert_eq!(s.display(), "your-user@//your-oracle-host:1521/his_database");
        assert_eq!((s.statement_timeout.as_secs(), s.lock_timeout.as_secs()), (60, 5));
        assert!(!format!("{s:?}").contains("your-password"));
    }

    #[test]
    fn the_lock_timeout_is_below_the_statement_timeout() {
        let with = |extra: &str| SEED.replace('}', &format!(", {extra}}}"));
        let s = Settings::parse(&with(r#""lock_timeout_secs": 1, "statement_timeout_secs": 2"#)).unwrap();
        assert_eq!((s.lock_timeout.as_secs(), s.statement_timeout.as_secs()), (1, 2));
        // Left out, it stays below a short statement timeout.
        let s = Settings::parse(&with(r#""statement_timeout_secs": 3"#)).unwrap();
        assert_eq!(s.lock_timeout.as_secs(), 2);
        for (json, expected) in [
            (
                with(r#""lock_timeout_secs": 90"#),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (60), found 90",
            ),
            (
                with(r#""statement_timeout_secs": 3, "lock_timeout_secs": 5"#),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (3), found 5",
            ),
            (with(r#""lock_timeout_secs": 0"#), "database.lock_timeout_secs: must be at least 1, found 0"),
            (with(r#""lock_timeout_secs": "5""#), "database.lock_timeout_secs: invalid type: string"),
        ] {
            let e = Settings::parse(&json).unwrap_err();
            assert!(e.message.starts_with(expected), "{json}: {e}");
        }
    }

    #[test]
    fn a_connect_string_wins() {
        let s = Settings::parse(r#"{"type": "oracle", "user": "u", "connect_string": "HISPROD"}"#).unwrap();
        assert_eq!(s.connect_string, "HISPROD");
    }

    #[test]
    fn errors_name_the_setting() {
        for (json, expected) in [
            (r#"{"type": "oracle", "user": "u"}"#, "database.database: set host and database"),
            (r#"{"type": "oracle", "user": "u", "host": "h", "database": "d", "timezone": "x"}"#, "database.timezone:"),
            (r#"{"type": "oracle", "host": "h", "database": "d"}"#, "database: missing field `user`"),
            (
                r#"{"type": "oracle", "user": "u", "host": "h", "database": "d", "sid": "x"}"#,
                "database.sid: unknown field",
            ),
        ] {
            let e = Settings::parse(json).unwrap_err();
            assert!(e.message.starts_with(expected), "{json}: {e}");
        }
    }
}
