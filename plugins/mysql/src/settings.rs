//! The `database` section for `"type": "mysql"`.
//!
//! The seed documentation's example (`host`, `user`, `password`,
//! `database`) is complete; everything else has a default.

use std::{fmt, path::PathBuf, time::Duration};

use his_plugin_api::{HisZone, PluginError};
use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(rename = "type")]
    _type: String,
    /// Host name or IP address of the server.
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    /// A Unix socket path instead of host and port.
    socket: Option<PathBuf>,
    user: String,
    #[serde(default)]
    password: String,
    database: String,
    /// disabled, preferred, required, verify_ca, verify_identity. Default:
    /// verify_ca with `ssl_ca`, else preferred.
    ssl_mode: Option<String>,
    /// A PEM file with the CA that signed the server's certificate.
    ssl_ca: Option<PathBuf>,
    /// The HIS's time zone: UTC (default), an offset such as +05:30, or an
    /// IANA name such as Asia/Kolkata.
    #[serde(default = "default_timezone")]
    timezone: String,
    #[serde(default = "default_pool_size")]
    pool_size: u32,
    #[serde(default = "default_connect_timeout_secs")]
    connect_timeout_secs: u64,
    /// The largest statement sent, so that batches of long values stay
    /// under the server's max_allowed_packet.
    #[serde(default = "default_max_statement_bytes")]
    max_statement_bytes: usize,
    /// The longest one batch's write may take before the connection is
    /// given up as hung and the batch retried.
    #[serde(default = "default_statement_timeout_secs")]
    statement_timeout_secs: u64,
    /// The longest one statement waits for a row or table another session
    /// has locked (the session's `innodb_lock_wait_timeout` and
    /// `lock_wait_timeout`): then it fails with 1205, a retryable conflict
    /// on its rows only. Below `statement_timeout_secs`.
    lock_timeout_secs: Option<u64>,
}

fn default_statement_timeout_secs() -> u64 {
    60
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    3306
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_pool_size() -> u32 {
    2
}
fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_max_statement_bytes() -> usize {
    4 * 1024 * 1024
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    /// Where and how to connect (holds the password).
    pub connect: MySqlConnectOptions,
    /// For log lines: `user@host:port/database`, never the password.
    pub display: String,
    /// The HIS's time zone.
    pub zone: HisZone,
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The largest statement sent.
    pub max_statement_bytes: usize,
    /// The longest one batch's write may take.
    pub statement_timeout: Duration,
    /// The longest one statement waits for another session's lock.
    pub lock_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings").field("display", &self.display).field("zone", &self.zone).finish_non_exhaustive()
    }
}

impl Settings {
    /// Parses the `database` section; errors name the setting.
    pub fn parse(settings_json: &str, config_dir: &str) -> Result<Self, PluginError> {
        let raw: RawSettings = his_plugin_api::parse_settings(settings_json)?;
        for (name, value) in [("user", &raw.user), ("database", &raw.database), ("host", &raw.host)] {
            if value.trim().is_empty() {
                return Err(PluginError::setting(name, "must not be empty"));
            }
        }
        // A CA file means "check the server's certificate against it": the
        // modes that do not check would silently ignore it.
        let default_mode = if raw.ssl_ca.is_some() { "verify_ca" } else { "preferred" };
        let ssl_mode = match raw.ssl_mode.as_deref().unwrap_or(default_mode) {
            "disabled" => MySqlSslMode::Disabled,
            "preferred" => MySqlSslMode::Preferred,
            "required" => MySqlSslMode::Required,
            "verify_ca" => MySqlSslMode::VerifyCa,
            "verify_identity" => MySqlSslMode::VerifyIdentity,
            other => {
                return Err(PluginError::setting(
                    "ssl_mode",
                    format!("{other:?} is not one of disabled, preferred, required, verify_ca, verify_identity"),
                ));
            }
        };
        if raw.ssl_ca.is_some() && !matches!(ssl_mode, MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity) {
            return Err(PluginError::setting(
                "ssl_ca",
                "is only used with ssl_mode verify_ca or verify_identity (leave ssl_mode out to get verify_ca)",
            ));
        }
        let zone: HisZone = raw.timezone.parse().map_err(|e| PluginError::setting("timezone", e))?;
        if !(1..=64).contains(&raw.pool_size) {
            return Err(PluginError::setting("pool_size", "must be between 1 and 64"));
        }
        if !(1..=600).contains(&raw.connect_timeout_secs) {
            return Err(PluginError::setting("connect_timeout_secs", "must be between 1 and 600"));
        }
        if !(1..=3600).contains(&raw.statement_timeout_secs) {
            return Err(PluginError::setting("statement_timeout_secs", "must be between 1 and 3600"));
        }
        let lock_timeout = his_plugin_api::check_lock_timeout(raw.lock_timeout_secs, Some(raw.statement_timeout_secs))?;
        if raw.max_statement_bytes < 16 * 1024 {
            return Err(PluginError::setting("max_statement_bytes", "must be at least 16384"));
        }

        let mut connect = MySqlConnectOptions::new()
            .username(&raw.user)
            .password(&raw.password)
            .database(&raw.database)
            .ssl_mode(ssl_mode)
            .timezone(Some(zone.to_string()))
            .charset("utf8mb4");
        let display = match &raw.socket {
            Some(socket) => {
                let socket = std::path::Path::new(config_dir).join(socket);
                connect = connect.socket(&socket);
                format!("{}@{} (socket)/{}", raw.user, socket.display(), raw.database)
            }
            None => {
                connect = connect.host(&raw.host).port(raw.port);
                format!("{}@{}:{}/{}", raw.user, raw.host, raw.port, raw.database)
            }
        };
        if let Some(ca) = &raw.ssl_ca {
            let ca = std::path::Path::new(config_dir).join(ca);
            if !ca.is_file() {
                return Err(PluginError::setting("ssl_ca", format!("no file at {}", ca.display())));
            }
            connect = connect.ssl_ca(ca);
        }
        Ok(Self {
            connect,
            display,
            zone,
            pool_size: raw.pool_size,
            connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
            max_statement_bytes: raw.max_statement_bytes,
            statement_timeout: Duration::from_secs(raw.statement_timeout_secs),
            lock_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ErrorKind;

    use super::*;

    const SEED: &str = r#"{"type": "mysql", "host": "your-mysql-host", "user": "your-user", "password": "your-password", "database": "his_database"}"#;

    #[test]
    fn the_seed_example_is_complete() {
        let s = Settings::parse(SEED, "/etc/buktor").unwrap();
        assert_eq!(s.display, "your-user@your-mysql-host:3306/his_database");
        assert_eq!(s.connect.get_port(), 3306);
        assert!(matches!(s.connect.get_ssl_mode(), MySqlSslMode::Preferred));
        assert_eq!(s.zone.to_string(), "+00:00");
        assert_eq!((s.statement_timeout.as_secs(), s.lock_timeout.as_secs()), (60, 5));
        assert!(!format!("{s:?}").contains("your-password"));
    }

    #[test]
    fn the_lock_timeout_is_below_the_statement_timeout() {
        let with = |extra: &str| SEED.replace('}', &format!(", {extra}}}"));
        let s = Settings::parse(&with(r#""lock_timeout_secs": 1, "statement_timeout_secs": 2"#), "/").unwrap();
        assert_eq!((s.lock_timeout.as_secs(), s.statement_timeout.as_secs()), (1, 2));
        // Left out, it stays below a short statement timeout.
        let s = Settings::parse(&with(r#""statement_timeout_secs": 3"#), "/").unwrap();
        assert_eq!(s.lock_timeout.as_secs(), 2);
        for (json, expected) in [
            (
                with(r#""lock_timeout_secs": 90"#),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (60), found 90",
            ),
            (
                with(r#""lock_timeout_secs": 10, "statement_timeout_secs": 10"#),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (10), found 10",
            ),
            (with(r#""lock_timeout_secs": 0"#), "database.lock_timeout_secs: must be at least 1, found 0"),
            (with(r#""lock_timeout_secs": 1.5"#), "database.lock_timeout_secs: invalid type: floating point"),
        ] {
            let e = Settings::parse(&json, "/").unwrap_err();
            assert_eq!(e.kind, ErrorKind::CONFIG);
            assert!(e.message.starts_with(expected), "{json}: {e}");
        }
    }

    #[test]
    fn errors_name_the_setting_and_never_the_password() {
        let with = |extra: &str| SEED.replace('}', &format!(", {extra}}}"));
        let cases = [
            (with(r#""ssl_mode": "sometimes""#), "database.ssl_mode: \"sometimes\" is not one of"),
            (with(r#""port": "3306""#), "database.port: invalid type: string"),
            (with(r#""timezone": "Mars/Olympus""#), "database.timezone: \"Mars/Olympus\" is not a time zone"),
            (with(r#""pool_size": 0"#), "database.pool_size: must be between 1 and 64"),
            (with(r#""ssl_ca": "/nonexistent/ca.pem""#), "database.ssl_ca: no file at /nonexistent/ca.pem"),
            (
                with(r#""ssl_ca": "/etc/hostname", "ssl_mode": "required""#),
                "database.ssl_ca: is only used with ssl_mode verify_ca",
            ),
            (with(r#""hots": "x""#), "database.hots: unknown field `hots`"),
            (SEED.replace(r#""user": "your-user", "#, ""), "database: missing field `user`"),
        ];
        for (json, expected) in cases {
            let e = Settings::parse(&json, "/").unwrap_err();
            assert_eq!(e.kind, ErrorKind::CONFIG);
            assert!(e.message.starts_with(expected), "{json}: {e}");
            assert!(!e.message.contains("your-password"), "{e}");
        }
    }
}
