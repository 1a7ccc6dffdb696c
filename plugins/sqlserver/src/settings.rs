//! The `database` section for `"type": "sqlserver"`.
//!
//! The seed documentation's example (`host`, `user`, `password`,
//! `database`) is complete; everything else has a default.

use std::{fmt, time::Duration};

use his_plugin_api::{HisZone, PluginError};
use serde::Deserialize;
use tiberius::{AuthMethod, Config, EncryptionLevel};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default = "default_host")]
    host: String,
    /// Ignored when `instance` is set: the SQL Browser tells the port.
    #[serde(default = "default_port")]
    port: u16,
    /// A named instance (`SQLEXPRESS`), found through the SQL Browser service.
    instance: Option<String>,
    user: Option<String>,
    #[serde(default)]
    password: String,
    database: String,
    /// required (default), off (only the login is encrypted), not_supported.
    #[serde(default = "default_encrypt")]
    encrypt: String,
    /// Accept any server certificate. Only for servers with a self-signed
    /// certificate on a trusted network.
    #[serde(default)]
    trust_server_certificate: bool,
    /// A PEM or DER file with the CA that signed the server's certificate.
    ssl_ca: Option<String>,
    /// sql (default): user and password; windows: the service account's
    /// Windows login (integrated authentication), Windows builds only.
    #[serde(default = "default_authentication")]
    authentication: String,
    #[serde(default = "default_application_name")]
    application_name: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    #[serde(default = "default_connect_timeout_secs")]
    connect_timeout_secs: u64,
    /// The longest one batch's write may take before the connection is
    /// given up as hung and the batch retried.
    #[serde(default = "default_statement_timeout_secs")]
    statement_timeout_secs: u64,
    /// The longest one statement waits for a row or table another session
    /// has locked (`SET LOCK_TIMEOUT`; SQL Server's own default is to wait
    /// forever): then it fails with 1222, a retryable conflict on its rows
    /// only. Below `statement_timeout_secs`.
    lock_timeout_secs: Option<u64>,
}

fn default_statement_timeout_secs() -> u64 {
    60
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    1433
}
fn default_encrypt() -> String {
    "required".into()
}
fn default_authentication() -> String {
    "sql".into()
}
fn default_application_name() -> String {
    "buktor-middleware".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_connect_timeout_secs() -> u64 {
    15
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    /// tiberius's configuration (holds the password).
    pub config: Config,
    /// For log lines: `user@host:port/database`, never the password.
    pub display: String,
    /// The HIS's time zone: timestamps with an offset are converted to it.
    pub zone: HisZone,
    /// How long connecting may take.
    pub connect_timeout: Duration,
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
        for (name, value) in [("database", &raw.database), ("host", &raw.host)] {
            if value.trim().is_empty() {
                return Err(PluginError::setting(name, "must not be empty"));
            }
        }
        let mut config = Config::new();
        config.host(&raw.host);
        config.port(raw.port);
        config.database(&raw.database);
        config.application_name(&raw.application_name);
        config.encryption(match raw.encrypt.as_str() {
            "required" => EncryptionLevel::Required,
            "off" => EncryptionLevel::Off,
            "not_supported" => EncryptionLevel::NotSupported,
            other => {
                return Err(PluginError::setting(
                    "encrypt",
                    format!("{other:?} is not one of required, off, not_supported"),
                ));
            }
        });
        if raw.trust_server_certificate {
            config.trust_cert();
        } else if let Some(ca) = &raw.ssl_ca {
            let ca = std::path::Path::new(config_dir).join(ca);
            if !ca.is_file() {
                return Err(PluginError::setting("ssl_ca", format!("no file at {}", ca.display())));
            }
            config.trust_cert_ca(ca.to_string_lossy());
        }
        if let Some(instance) = &raw.instance {
            config.instance_name(instance);
        }
        let login = match (raw.authentication.as_str(), &raw.user) {
            ("sql", Some(user)) if !user.trim().is_empty() => {
                config.authentication(AuthMethod::sql_server(user, &raw.password));
                user.clone()
            }
            ("sql", _) => return Err(PluginError::setting("user", "is required for SQL authentication")),
            ("windows", _) => {
                windows_authentication(&mut config)?;
                "(Windows login)".to_string()
            }
            (other, _) => {
                return Err(PluginError::setting("authentication", format!("{other:?} is not one of sql, windows")));
            }
        };
        let zone: HisZone = raw.timezone.parse().map_err(|e| PluginError::setting("timezone", e))?;
        // tiberius has its own defaults (15 s, 30 s); ours must win.
        config.handshake_timeout(Some(Duration::from_secs(raw.connect_timeout_secs)));
        config.command_timeout(Some(Duration::from_secs(raw.statement_timeout_secs)));
        if !(1..=600).contains(&raw.connect_timeout_secs) {
            return Err(PluginError::setting("connect_timeout_secs", "must be between 1 and 600"));
        }
        if !(1..=3600).contains(&raw.statement_timeout_secs) {
            return Err(PluginError::setting("statement_timeout_secs", "must be between 1 and 3600"));
        }
        let lock_timeout = his_plugin_api::check_lock_timeout(raw.lock_timeout_secs, Some(raw.statement_timeout_secs))?;
        let place = match &raw.instance {
            Some(instance) => format!("{}\\{instance}", raw.host),
            None => format!("{}:{}", raw.host, raw.port),
        };
        Ok(Self {
            config,
            display: format!("{login}@{place}/{}", raw.database),
            zone,
            connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
            statement_timeout: Duration::from_secs(raw.statement_timeout_secs),
            lock_timeout,
        })
    }
}

/// Integrated authentication: the Windows account the service runs as.
#[cfg(windows)]
fn windows_authentication(config: &mut Config) -> Result<(), PluginError> {
    config.authentication(AuthMethod::Integrated);
    Ok(())
}

/// Integrated authentication needs Windows; say so rather than ignore it.
#[cfg(not(windows))]
fn windows_authentication(_config: &mut Config) -> Result<(), PluginError> {
    Err(PluginError::setting(
        "authentication",
        "\"windows\" (integrated authentication) works only when buktor-middleware runs on Windows; \
         here use \"sql\" with database.user and database.password",
    ))
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ErrorKind;

    use super::*;

    const SEED: &str = r#"{"type": "sqlserver", "host": "your-sqlserver-host", "user": "your-user", "password": "your-password", "database": "his_database"}"#;

    #[test]
    fn the_seed_example_is_complete() {
        let s = Settings::parse(SEED, "/etc/buktor").unwrap();
        assert_eq!(s.display, "your-user@your-sqlserver-host:1433/his_database");
        assert_eq!(s.config.get_addr(), "your-sqlserver-host:1433");
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
                with(r#""lock_timeout_secs": 30, "statement_timeout_secs": 20"#),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (20), found 30",
            ),
            (with(r#""lock_timeout_secs": 0"#), "database.lock_timeout_secs: must be at least 1, found 0"),
            (with(r#""lock_timeout_secs": -1"#), "database.lock_timeout_secs: invalid value: integer `-1`"),
        ] {
            let e = Settings::parse(&json, "/").unwrap_err();
            assert_eq!(e.kind, ErrorKind::CONFIG);
            assert!(e.message.starts_with(expected), "{json}: {e}");
        }
    }

    #[test]
    fn a_named_instance_is_shown_as_host_backslash_instance() {
        let s = Settings::parse(&SEED.replace('}', r#", "instance": "SQLEXPRESS"}"#), "/").unwrap();
        assert_eq!(s.display, r"your-user@your-sqlserver-host\SQLEXPRESS/his_database");
    }

    #[test]
    fn errors_name_the_setting_and_never_the_password() {
        let with = |extra: &str| SEED.replace('}', &format!(", {extra}}}"));
        let mut cases = vec![
            (with(r#""encrypt": "maybe""#), "database.encrypt: \"maybe\" is not one of required, off, not_supported"),
            (
                with(r#""authentication": "kerberos""#),
                "database.authentication: \"kerberos\" is not one of sql, windows",
            ),
            (with(r#""timezone": "Mars/Olympus""#), "database.timezone: \"Mars/Olympus\" is not a time zone"),
            (with(r#""port": "1433""#), "database.port: invalid type: string"),
            (with(r#""hots": "x""#), "database.hots: unknown field `hots`"),
            (SEED.replace(r#""user": "your-user", "#, ""), "database.user: is required for SQL authentication"),
        ];
        if cfg!(not(windows)) {
            cases.push((
                with(r#""authentication": "windows""#),
                "database.authentication: \"windows\" (integrated authentication) works only when buktor-middleware runs on Windows",
            ));
        }
        for (json, expected) in cases {
            let e = Settings::parse(&json, "/").unwrap_err();
            assert_eq!(e.kind, ErrorKind::CONFIG);
            assert!(e.message.starts_with(expected), "{json}: {e}");
            assert!(!e.message.contains("your-password"), "{e}");
        }
    }
}
