//! The `database` section for `"type": "postgres"`.
//!
//! The seed documentation's four keys (`host`, `user`, `password`,
//! `database`) are complete; everything else has a default.

use std::{fmt, path::PathBuf, time::Duration};

use his_plugin_api::{HisZone, PluginError};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(rename = "type")]
    _type: String,
    /// Host name or IP address of the server; a path starting with `/` is
    /// the directory of the server's Unix socket.
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    user: String,
    #[serde(default)]
    password: String,
    database: String,
    /// The schema of the HIS tables; every name is qualified with it.
    #[serde(default = "default_schema")]
    schema: String,
    /// disable, prefer, require, verify-ca, verify-full. Default: verify-ca
    /// with `ssl_ca`, else prefer.
    sslmode: Option<String>,
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
    /// The longest one statement, and one write, may take.
    #[serde(default = "default_statement_timeout_secs")]
    statement_timeout_secs: u64,
    /// The longest one statement waits for another session's lock.
    lock_timeout_secs: Option<u64>,
    /// What `pg_stat_activity` shows for this middleware's sessions.
    #[serde(default = "default_application_name")]
    application_name: String,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    5432
}
fn default_schema() -> String {
    "public".into()
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
fn default_statement_timeout_secs() -> u64 {
    60
}
fn default_application_name() -> String {
    "buktor-middleware".into()
}

/// Prepared statements each connection keeps on the server. A 500-row
/// upsert's plan takes about 2 MB of the server's memory, so few: enough
/// for a backlog's full batches, its last, shorter one, and the one-row
/// statements of everyday traffic.
const STATEMENTS_KEPT: usize = 8;

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    /// Where and how to connect (holds the password).
    pub connect: PgConnectOptions,
    /// For log lines: `user@host:port/database`, never the password.
    pub display: String,
    /// The schema of the HIS tables.
    pub schema: String,
    /// The HIS's time zone, set as each session's `TimeZone`.
    pub zone: HisZone,
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The longest one statement, and one write, may take.
    pub statement_timeout: Duration,
    /// The longest one statement waits for another session's lock.
    pub lock_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("display", &self.display)
            .field("schema", &self.schema)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Parses the `database` section; errors name the setting and never
    /// print the password.
    pub fn parse(settings_json: &str, config_dir: &str) -> Result<Self, PluginError> {
        let raw: RawSettings = his_plugin_api::parse_settings(settings_json)?;
        for (name, value) in
            [("user", &raw.user), ("database", &raw.database), ("host", &raw.host), ("schema", &raw.schema)]
        {
            if value.trim().is_empty() {
                return Err(PluginError::setting(name, "must not be empty"));
            }
        }
        if raw.schema.chars().any(char::is_control) {
            return Err(PluginError::setting("schema", "must not hold control characters"));
        }
        if raw.application_name.len() > 63 || !raw.application_name.chars().all(|c| c.is_ascii() && !c.is_control()) {
            return Err(PluginError::setting(
                "application_name",
                "must be at most 63 printable ASCII characters (PostgreSQL's limit)",
            ));
        }
        // A CA file means "check the server's certificate against it": the
        // modes that do not check would silently ignore it.
        let default_mode = if raw.ssl_ca.is_some() { "verify-ca" } else { "prefer" };
        let ssl_mode = match raw.sslmode.as_deref().unwrap_or(default_mode) {
            "disable" => PgSslMode::Disable,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            other => {
                return Err(PluginError::setting(
                    "sslmode",
                    format!("{other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
                ));
            }
        };
        if raw.ssl_ca.is_some() && matches!(ssl_mode, PgSslMode::Disable | PgSslMode::Prefer) {
            return Err(PluginError::setting(
                "ssl_ca",
                "is only used with sslmode require, verify-ca or verify-full (leave sslmode out to get verify-ca)",
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

        // Without the pgpass file: the password is the config's, as for
        // every other plugin.
        let mut connect = PgConnectOptions::new_without_pgpass()
            .host(&raw.host)
            .port(raw.port)
            .username(&raw.user)
            .password(&raw.password)
            .database(&raw.database)
            .ssl_mode(ssl_mode)
            .application_name(&raw.application_name)
            .statement_cache_capacity(STATEMENTS_KEPT);
        if let Some(ca) = &raw.ssl_ca {
            let ca = std::path::Path::new(config_dir).join(ca);
            if !ca.is_file() {
                return Err(PluginError::setting("ssl_ca", format!("no file at {}", ca.display())));
            }
            connect = connect.ssl_root_cert(ca);
        }
        Ok(Self {
            connect,
            display: format!("{}@{}:{}/{}", raw.user, raw.host, raw.port, raw.database),
            schema: raw.schema,
            zone,
            pool_size: raw.pool_size,
            connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
            statement_timeout: Duration::from_secs(raw.statement_timeout_secs),
            lock_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ErrorKind;

    use super::*;

    const SEED: &str = r#"{"type": "postgres", "host": "your-postgres-host", "user": "your-user", "password": "your-password", "database": "his_database"}"#;

    fn with(extra: &str) -> String {
        SEED.replace('}', &format!(", {extra}}}"))
    }

    #[test]
    fn the_seed_example_is_complete() {
        let s = Settings::parse(SEED, "/etc/buktor").unwrap();
        assert_eq!(s.display, "your-user@your-postgres-host:5432/his_database");
        assert_eq!(s.connect.get_port(), 5432);
        assert_eq!(s.connect.get_host(), "your-postgres-host");
        assert_eq!(s.connect.get_database(), Some("his_database"));
        assert_eq!(s.connect.get_application_name(), Some("buktor-middleware"));
        assert!(matches!(s.connect.get_ssl_mode(), PgSslMode::Prefer));
        assert_eq!(s.schema, "public");
        assert_eq!(s.zone.to_string(), "+00:00");
        assert_eq!((s.statement_timeout.as_secs(), s.lock_timeout.as_secs(), s.pool_size), (60, 5, 2));
        assert!(!format!("{s:?}").contains("your-password"));
    }

    #[test]
    fn every_setting_is_read() {
        let s = Settings::parse(
            &with(
                r#""port": 6432, "schema": "his", "sslmode": "require", "timezone": "Asia/Kolkata",
                   "pool_size": 4, "connect_timeout_secs": 3, "statement_timeout_secs": 30,
                   "lock_timeout_secs": 2, "application_name": "buktor-ward-7""#,
            ),
            "/",
        )
        .unwrap();
        assert_eq!((s.connect.get_port(), s.schema.as_str()), (6432, "his"));
        assert!(matches!(s.connect.get_ssl_mode(), PgSslMode::Require));
        assert_eq!(s.zone.to_string(), "Asia/Kolkata");
        assert_eq!((s.pool_size, s.connect_timeout.as_secs()), (4, 3));
        assert_eq!((s.statement_timeout.as_secs(), s.lock_timeout.as_secs()), (30, 2));
        assert_eq!(s.connect.get_application_name(), Some("buktor-ward-7"));
        // A CA file alone means verify-ca.
        let s = Settings::parse(&with(r#""ssl_ca": "/etc/hostname""#), "/").unwrap();
        assert!(matches!(s.connect.get_ssl_mode(), PgSslMode::VerifyCa));
    }

    #[test]
    fn the_lock_timeout_is_below_the_statement_timeout() {
        let s = Settings::parse(&with(r#""statement_timeout_secs": 3"#), "/").unwrap();
        assert_eq!(s.lock_timeout.as_secs(), 2);
        let e = Settings::parse(&with(r#""lock_timeout_secs": 90"#), "/").unwrap_err();
        assert!(
            e.message.starts_with("database.lock_timeout_secs: must be less than database.statement_timeout_secs (60)"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_setting_and_never_the_password() {
        let cases = [
            (with(r#""sslmode": "sometimes""#), "database.sslmode: \"sometimes\" is not one of"),
            (with(r#""port": "5432""#), "database.port: invalid type: string"),
            (with(r#""timezone": "Mars/Olympus""#), "database.timezone: \"Mars/Olympus\" is not a time zone"),
            (with(r#""pool_size": 0"#), "database.pool_size: must be between 1 and 64"),
            (with(r#""schema": " ""#), "database.schema: must not be empty"),
            (with(r#""application_name": "é""#), "database.application_name: must be at most 63"),
            (with(r#""ssl_ca": "/nonexistent/ca.pem""#), "database.ssl_ca: no file at /nonexistent/ca.pem"),
            (with(r#""ssl_ca": "/etc/hostname", "sslmode": "prefer""#), "database.ssl_ca: is only used with sslmode"),
            (with(r#""hots": "x""#), "database.hots: unknown field `hots`"),
            (with(r#""ssl_mode": "require""#), "database.ssl_mode: unknown field `ssl_mode`"),
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
