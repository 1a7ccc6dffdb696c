//! The `database` section for `"type": "mysql"`.
//!
//! The seed documentation's example (`host`, `user`, `password`,
//! `database`) is complete; everything else has a default.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use chrono::FixedOffset;
use his_plugin_api::{ErrorKind, PluginError};
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
    /// disabled, preferred (default), required, verify_ca, verify_identity.
    #[serde(default = "default_ssl_mode")]
    ssl_mode: String,
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
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    3306
}
fn default_ssl_mode() -> String {
    "preferred".into()
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

/// The HIS's time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset from UTC (UTC itself is +00:00).
    Fixed(FixedOffset),
    /// A named zone with daylight saving rules.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// What the session's `time_zone` is set to, so that TIMESTAMP columns
    /// read wall-clock values in the same zone the plugin converts to.
    pub fn session_value(&self) -> String {
        match self {
            Zone::Fixed(offset) => offset.to_string(),
            Zone::Named(tz) => tz.name().to_string(),
        }
    }
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("UTC") || text == "Z" {
            return Ok(Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset")));
        }
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-')
            && let Some((h, m)) = text[1..].split_once(':')
            && let (Ok(h), Ok(m)) = (h.parse::<i32>(), m.parse::<i32>())
            && h < 24
            && m < 60
        {
            let seconds = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
            return Ok(Zone::Fixed(FixedOffset::east_opt(seconds).expect("offset within a day")));
        }
        text.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!("{text:?} is not a time zone: use UTC, an offset such as +05:30, or a name such as Asia/Kolkata")
        })
    }
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    /// Where and how to connect (holds the password).
    pub connect: MySqlConnectOptions,
    /// For log lines: `user@host:port/database`, never the password.
    pub display: String,
    /// The HIS's time zone.
    pub zone: Zone,
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The largest statement sent.
    pub max_statement_bytes: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings").field("display", &self.display).field("zone", &self.zone).finish_non_exhaustive()
    }
}

fn config_error(setting: &str, message: impl fmt::Display) -> PluginError {
    PluginError::permanent(ErrorKind::CONFIG, format!("database.{setting}: {message}"))
}

impl Settings {
    /// Parses the `database` section; errors name the setting.
    pub fn parse(settings_json: &str, config_dir: &str) -> Result<Self, PluginError> {
        let raw: RawSettings = his_plugin_api::parse_settings(settings_json)?;
        for (name, value) in [("user", &raw.user), ("database", &raw.database), ("host", &raw.host)] {
            if value.trim().is_empty() {
                return Err(config_error(name, "must not be empty"));
            }
        }
        let ssl_mode = match raw.ssl_mode.as_str() {
            "disabled" => MySqlSslMode::Disabled,
            "preferred" => MySqlSslMode::Preferred,
            "required" => MySqlSslMode::Required,
            "verify_ca" => MySqlSslMode::VerifyCa,
            "verify_identity" => MySqlSslMode::VerifyIdentity,
            other => {
                return Err(config_error(
                    "ssl_mode",
                    format!("{other:?} is not one of disabled, preferred, required, verify_ca, verify_identity"),
                ));
            }
        };
        let zone: Zone = raw.timezone.parse().map_err(|e| config_error("timezone", e))?;
        if !(1..=64).contains(&raw.pool_size) {
            return Err(config_error("pool_size", "must be between 1 and 64"));
        }
        if !(1..=600).contains(&raw.connect_timeout_secs) {
            return Err(config_error("connect_timeout_secs", "must be between 1 and 600"));
        }
        if raw.max_statement_bytes < 16 * 1024 {
            return Err(config_error("max_statement_bytes", "must be at least 16384"));
        }

        let mut connect = MySqlConnectOptions::new()
            .username(&raw.user)
            .password(&raw.password)
            .database(&raw.database)
            .ssl_mode(ssl_mode)
            .timezone(Some(zone.session_value()))
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
                return Err(config_error("ssl_ca", format!("no file at {}", ca.display())));
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"type": "mysql", "host": "your-mysql-host", "user": "your-user", "password": "your-password", "database": "his_database"}"#;

    #[test]
    fn the_seed_example_is_complete() {
        let s = Settings::parse(SEED, "/etc/buktor").unwrap();
        assert_eq!(s.display, "your-user@your-mysql-host:3306/his_database");
        assert_eq!(s.connect.get_port(), 3306);
        assert!(matches!(s.connect.get_ssl_mode(), MySqlSslMode::Preferred));
        assert_eq!(s.zone.session_value(), "+00:00");
        assert!(!format!("{s:?}").contains("your-password"));
    }

    #[test]
    fn time_zones() {
        assert_eq!("+05:30".parse::<Zone>().unwrap().session_value(), "+05:30");
        assert_eq!("-08:00".parse::<Zone>().unwrap().session_value(), "-08:00");
        assert_eq!("Asia/Kolkata".parse::<Zone>().unwrap().session_value(), "Asia/Kolkata");
        assert!("Mars/Olympus".parse::<Zone>().unwrap_err().contains("is not a time zone"));
        assert!("+25:00".parse::<Zone>().is_err());
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
