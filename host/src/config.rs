//! his-config.json: read once at startup, checked completely, then immutable.
//!
//! Every error names the JSON path of the offending value and what was
//! expected, so that an operator can fix the file without reading code.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use indexmap::IndexMap;
use serde::Deserialize;

/// The file name looked for when no `--config` is given.
pub const DEFAULT_FILE_NAME: &str = "his-config.json";

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where and how intake listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// The local journal every event is written to before it is answered.
    #[serde(default)]
    pub journal: JournalConfig,
    /// Where plugin libraries are looked for.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// How the sync worker delivers events to the HIS.
    #[serde(default)]
    pub sync: SyncConfig,
    /// The HIS database. Only `type` is the host's: it picks the plugin.
    /// Everything else belongs to that plugin, which checks it.
    pub database: serde_json::Map<String, serde_json::Value>,
    /// Event type → HIS table and columns.
    #[serde(default)]
    pub mapping: IndexMap<String, MappingConfig>,
}

/// `server`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address intake listens on. Loopback by default: exposing the
    /// port is a deliberate choice.
    pub listen: SocketAddr,
    /// The largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// The deepest nesting of objects and arrays accepted; deeper gets 400.
    pub max_json_depth: usize,
    /// The most object members in one event, at all depths; more gets 400.
    pub max_json_members: usize,
    /// An event field holding the sender's delivery id (such as
    /// `event_id`), for senders that do not send a `webhook-id` header.
    pub delivery_id_field: Option<String>,
    /// How long a delivery id is remembered: an event sent again with the
    /// same id within this window is answered as a duplicate, not stored.
    pub duplicate_window_days: u32,
    /// Turns on the `/admin/…` routes, which require it as a bearer token.
    pub admin_token: Option<String>,
    /// Who may send events. Without it, anyone who reaches the port may.
    pub auth: Option<AuthConfig>,
    /// Listen on a non-loopback address without `auth`: only for networks
    /// where nothing untrusted can reach the port.
    pub allow_unauthenticated: bool,
    /// Serve HTTPS with this certificate, for a port exposed directly
    /// (behind nginx, nginx does TLS instead).
    pub tls: Option<TlsConfig>,
    /// How long a client may take to send a request's headers, and then
    /// its body (and to finish a TLS handshake): a stalled client must not
    /// hold a connection, or a shutdown, for long.
    pub request_timeout_secs: u64,
    /// The most connections open at once; more wait until one closes.
    /// Bounds file descriptors and memory under a flood.
    pub max_connections: usize,
    /// The most connections one client address (IPv6 by /64) may hold;
    /// more are closed at once. Loopback (a proxy on this server) is not
    /// limited.
    pub max_connections_per_client: usize,
    /// Per-client-address request limit, answered with 429 when exceeded.
    /// Off by default. Behind a proxy every request comes from the proxy's
    /// address, so limit there instead.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `server.tls`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, server certificate first. Relative to
    /// the config file.
    pub cert_path: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// `server.rate_limit`: a token bucket per client address (IPv6 by /64).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The sustained rate allowed from one address.
    pub requests_per_second: f64,
    /// How many requests one address may send at once before the rate
    /// applies (a burst, such as Buktor resending a backlog).
    pub burst: u32,
}

/// `server.auth`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Standard Webhooks secrets (`whsec_…`); several, to rotate keys.
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    /// Static tokens for `Authorization: Bearer …`, for senders that
    /// cannot sign.
    #[serde(default)]
    pub bearer_tokens: Vec<String>,
    /// How far a signature's timestamp may be from this server's clock.
    #[serde(default = "default_tolerance_secs")]
    pub timestamp_tolerance_secs: u64,
}

fn default_tolerance_secs() -> u64 {
    300
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_json_members: 10_000,
            delivery_id_field: None,
            duplicate_window_days: 7,
            admin_token: None,
            auth: None,
            allow_unauthenticated: false,
            tls: None,
            request_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_client: 64,
            rate_limit: None,
        }
    }
}

/// `journal`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// The journal's SQLite file; `buktor-journal.db` beside the config by
    /// default. Relative paths are relative to the config file.
    pub path: Option<PathBuf>,
    /// Delivered events older than this are removed. Failed and unmapped
    /// events are kept until replayed, or removed by `prune`.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    30
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { path: None, retention_days: default_retention_days() }
    }
}

/// `plugins`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// A folder searched before the executable's own folder. Relative paths
    /// are relative to the config file.
    pub dir: Option<PathBuf>,
}

/// `sync`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// The most events the worker takes from the journal in one pass.
    pub batch_size: usize,
    /// The first delay before an event whose write failed is tried again.
    pub retry_initial_delay_ms: u64,
    /// The longest delay between two tries of one event.
    pub retry_max_delay_secs: u64,
    /// Each delay is the previous one times this.
    pub retry_factor: f64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self { batch_size: 500, retry_initial_delay_ms: 1_000, retry_max_delay_secs: 300, retry_factor: 2.0 }
    }
}

/// `mapping.<event_type>`: the seed's format, plus an optional `key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The HIS table the event is written to.
    pub table: String,
    /// Event field → HIS column, in the order written.
    pub fields: IndexMap<String, String>,
    /// The event fields that identify the HIS row. Without it, the first
    /// mapped field whose name ends in `_id`.
    pub key: Option<Vec<String>>,
}

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file at the default places.
    #[error("no config file: looked for {DEFAULT_FILE_NAME} in {} and {}; pass --config PATH", .searched[0].display(), .searched[1].display())]
    NotFound {
        /// The folders looked in.
        searched: Vec<PathBuf>,
    },
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{} is not valid JSON: {message}", .file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// serde_json's message, with line and column.
        message: String,
    },
    /// A value has the wrong type, or is not allowed.
    #[error("{}: {json_path}: {message}", .file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Where in the JSON, such as `mapping.payment.fields.amount`.
        json_path: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A loaded, checked configuration, and where it came from.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The config file.
    pub file: PathBuf,
    /// The config file's folder: relative paths are resolved against it.
    pub dir: PathBuf,
    /// JSON paths of secrets written in the file itself rather than as
    /// `${ENV_NAME}` (passwords, tokens, secrets).
    pub literal_secrets: Vec<String>,
}

impl LoadedConfig {
    /// The journal file.
    pub fn journal_path(&self) -> PathBuf {
        let path = self.config.journal.path.as_deref().unwrap_or(Path::new("buktor-journal.db"));
        self.dir.join(path)
    }

    /// `plugins.dir`, resolved.
    pub fn plugins_dir(&self) -> Option<PathBuf> {
        self.config.plugins.dir.as_ref().map(|dir| self.dir.join(dir))
    }

    /// The `database` section as JSON text: what the plugin is given.
    pub fn database_settings_json(&self) -> String {
        serde_json::Value::Object(self.config.database.clone()).to_string()
    }

    /// `database.type`: checked by [`load`] to be a plain name.
    pub fn database_type(&self) -> &str {
        self.config.database.get("type").and_then(|t| t.as_str()).unwrap_or_default()
    }
}

/// Finds the config file: `explicit` if given, else his-config.json in the
/// working directory, else beside the executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mut searched = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    for dir in [cwd, exe_dir] {
        let candidate = dir.join(DEFAULT_FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    Err(ConfigError::NotFound { searched })
}

/// Reads, parses and checks the config file.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    let text =
        std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_path_buf(), source })?;
    let config = parse(&text).map_err(|(json_path, message)| match json_path {
        None => ConfigError::Syntax { file: file.to_path_buf(), message },
        Some(json_path) => ConfigError::Invalid { file: file.to_path_buf(), json_path, message },
    })?;
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut literal_secrets = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&without_comments(&text)) {
        find_literal_secrets(&value, "", false, &mut literal_secrets);
    }
    Ok(LoadedConfig { config, file, dir, literal_secrets })
}

/// The text with `// …` and `/* … */` comments outside strings turned into
/// spaces, so that operators can annotate his-config.json and an error's
/// line and column still point into their file.
pub fn without_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match (in_string, bytes[i], bytes.get(i + 1)) {
            (true, b'\\', _) => i += 1,
            (true, b'"', _) | (false, b'"', _) => in_string = !in_string,
            (false, b'/', Some(b'/')) => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (false, b'/', Some(b'*')) => {
                let end = text[i + 2..].find("*/").map_or(bytes.len(), |at| i + 2 + at + 2);
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Only ASCII bytes were replaced, by ASCII spaces: still UTF-8.
    String::from_utf8(out).expect("comments replaced by spaces keep UTF-8")
}

/// Parses and checks config text. Errors are `(json path, message)`; the
/// path is `None` when the text is not JSON at all.
pub fn parse(text: &str) -> Result<Config, (Option<String>, String)> {
    parse_with(text, &|name| std::env::var(name).ok())
}

/// [`parse`], with `env` standing in for the environment.
fn parse_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, (Option<String>, String)> {
    let mut value: serde_json::Value =
        serde_json::from_str(&without_comments(text)).map_err(|e| (None, e.to_string()))?;
    substitute_environment(&mut value, "", env).map_err(|(path, message)| (Some(escape_controls(&path)), message))?;
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => escape_controls(&p),
        };
        (Some(path), e.inner().to_string())
    })?;
    validate(&config).map_err(|(path, message)| (Some(escape_controls(&path)), message))?;
    Ok(config)
}

/// Text for the terminal with its control characters escaped: a name or
/// message from a file, a sender or a database must not split a one-line
/// error or reach the terminal as a control sequence. The one place that
/// does this; `check`, `status`, `events` and `main` all call it.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// The values of a config file's secrets (literal, or from `${ENV_NAME}`),
/// to scrub from anything printed: `check`'s findings, and any error a
/// command ends with (a serde or database message may quote a value).
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Reads `file` as plain JSON (it need not be a valid config).
    pub fn of_file(file: &Path) -> Self {
        let value =
            std::fs::read_to_string(file).ok().and_then(|text| serde_json::from_str(&without_comments(&text)).ok());
        value.map(|value| Self::of_config(&value, &|name| std::env::var(name).ok())).unwrap_or_default()
    }

    /// The secrets of a config's JSON, `env` standing in for the environment.
    pub fn of_config(config: &serde_json::Value, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut secrets = Self::default();
        if let serde_json::Value::Object(members) = config {
            // Mapping names are event fields and columns, never secrets
            // (though a field may be called `client_secret`).
            for (_, member) in members.iter().filter(|(key, _)| key.as_str() != "mapping") {
                secrets.collect(member, false, env);
            }
        }
        // The longest first, so that a secret inside another goes whole.
        secrets.0.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.0.dedup();
        secrets
    }

    fn collect(&mut self, value: &serde_json::Value, secret: bool, env: &dyn Fn(&str) -> Option<String>) {
        match value {
            serde_json::Value::String(text) if secret => {
                let value = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                    Some(name) => env(name),
                    None => Some(text.clone()),
                };
                self.0.extend(value.filter(|v| !v.is_empty()));
            }
            serde_json::Value::Number(number) if secret => self.0.push(number.to_string()),
            serde_json::Value::Array(items) => items.iter().for_each(|item| self.collect(item, secret, env)),
            serde_json::Value::Object(members) => {
                for (key, member) in members {
                    self.collect(member, secret || names_secret(key), env);
                }
            }
            _ => {}
        }
    }

    /// `text` with every secret replaced by `***`: as it is, and as a
    /// message may quote it (Rust's `{:?}` or JSON escaping).
    pub fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |text, secret| {
            let debug = format!("{secret:?}");
            let json = serde_json::Value::from(secret.as_str()).to_string();
            let quoted = [&debug[1..debug.len() - 1], &json[1..json.len() - 1]];
            quoted.into_iter().fold(text.replace(secret.as_str(), "***"), |text, form| text.replace(form, "***"))
        })
    }
}

/// Whether a member's name says it holds a secret.
fn names_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("password") || lower.contains("token") || lower.contains("secret")
}

/// Collects the paths of non-empty strings under a key that names a secret
/// (`password`, `…token…`, `…secret…`) that are not `${ENV_NAME}`.
fn find_literal_secrets(value: &serde_json::Value, path: &str, secret: bool, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) if secret && !text.is_empty() && !text.starts_with("${") => {
            found.push(path.to_string());
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_literal_secrets(item, &format!("{path}[{i}]"), secret, found);
            }
        }
        serde_json::Value::Object(members) => {
            for (key, member) in members {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                find_literal_secrets(member, &at, secret || names_secret(key), found);
            }
        }
        _ => {}
    }
}

/// Replaces every string that is exactly `${NAME}` with the environment
/// variable NAME, so that secrets need not sit in the file. A missing
/// variable is an error naming it and where it is used.
fn substitute_environment(
    value: &mut serde_json::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(text) => {
            if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                *text = env(name).ok_or_else(|| {
                    (path.to_string(), format!("the environment variable {name} is not set (the value is ${{{name}}})"))
                })?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_environment(item, &format!("{path}[{i}]"), env)?;
            }
        }
        serde_json::Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                substitute_environment(member, &at(key), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> (String, String) {
    (path.into(), message.into())
}

/// Checks what serde cannot: names, keys and ranges.
fn validate(config: &Config) -> Result<(), (String, String)> {
    match config.database.get("type") {
        None => {
            return Err(invalid(
                "database.type",
                "missing: set it to sqlite, mysql, sqlserver, oracle, or your own plugin's name",
            ));
        }
        Some(serde_json::Value::String(t)) if is_plugin_name(t) => {}
        Some(other) => {
            return Err(invalid(
                "database.type",
                format!(
                    "expected a plugin name made of lowercase letters, digits and _ (sqlite, mysql, sqlserver, oracle), found {other}"
                ),
            ));
        }
    }
    if config.server.max_body_bytes == 0 {
        return Err(invalid("server.max_body_bytes", "must be greater than 0"));
    }
    if !(1..=128).contains(&config.server.max_json_depth) {
        return Err(invalid("server.max_json_depth", "must be between 1 and 128"));
    }
    if config.server.max_json_members == 0 {
        return Err(invalid("server.max_json_members", "must be greater than 0"));
    }
    if !(1..=366).contains(&config.server.duplicate_window_days) {
        return Err(invalid("server.duplicate_window_days", "must be between 1 and 366"));
    }
    if config.server.delivery_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
        return Err(invalid("server.delivery_id_field", "is empty: name the event field that holds the delivery id"));
    }
    if let Some(auth) = &config.server.auth {
        if auth.webhook_secrets.is_empty() && auth.bearer_tokens.is_empty() {
            return Err(invalid("server.auth", "names no webhook_secrets and no bearer_tokens"));
        }
        for (i, secret) in auth.webhook_secrets.iter().enumerate() {
            if crate::auth::decode_secret(secret).is_none() {
                return Err(invalid(
                    format!("server.auth.webhook_secrets[{i}]"),
                    "is not a Standard Webhooks secret: expected whsec_ followed by base64",
                ));
            }
        }
        for (i, token) in auth.bearer_tokens.iter().enumerate() {
            if token.len() < 16 {
                return Err(invalid(format!("server.auth.bearer_tokens[{i}]"), "is shorter than 16 characters"));
            }
        }
        if !(1..=3600).contains(&auth.timestamp_tolerance_secs) {
            return Err(invalid("server.auth.timestamp_tolerance_secs", "must be between 1 and 3600"));
        }
    } else if !config.server.listen.ip().is_loopback() && !config.server.allow_unauthenticated {
        return Err(invalid(
            "server.listen",
            format!(
                "{} is not a loopback address and server.auth is not set: anyone who reaches the port could write \
                 into the HIS. Set server.auth.webhook_secrets (or bearer_tokens), or set \
                 server.allow_unauthenticated to true on a network nothing untrusted can reach",
                config.server.listen
            ),
        ));
    }
    if !(1..=600).contains(&config.server.request_timeout_secs) {
        return Err(invalid("server.request_timeout_secs", "must be between 1 and 600"));
    }
    if !(1..=100_000).contains(&config.server.max_connections) {
        return Err(invalid("server.max_connections", "must be between 1 and 100000"));
    }
    if config.server.max_connections_per_client == 0 {
        return Err(invalid("server.max_connections_per_client", "must be at least 1"));
    }
    if let Some(limit) = &config.server.rate_limit {
        if !(0.001..=1_000_000.0).contains(&limit.requests_per_second) {
            return Err(invalid("server.rate_limit.requests_per_second", "must be between 0.001 and 1000000"));
        }
        if limit.burst == 0 {
            return Err(invalid("server.rate_limit.burst", "must be at least 1"));
        }
    }
    if config.server.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(invalid("server.admin_token", "is shorter than 16 characters: use a long random token"));
    }
    if !(1..=3650).contains(&config.journal.retention_days) {
        return Err(invalid("journal.retention_days", "must be between 1 and 3650"));
    }
    if config.sync.batch_size == 0 {
        return Err(invalid("sync.batch_size", "must be greater than 0"));
    }
    if !(1.0..=10.0).contains(&config.sync.retry_factor) {
        return Err(invalid("sync.retry_factor", "must be between 1.0 and 10.0"));
    }
    if !(1..=3_600_000).contains(&config.sync.retry_initial_delay_ms) {
        return Err(invalid("sync.retry_initial_delay_ms", "must be between 1 and 3600000 (one hour)"));
    }
    if !(1..=86_400).contains(&config.sync.retry_max_delay_secs) {
        return Err(invalid("sync.retry_max_delay_secs", "must be between 1 and 86400 (one day)"));
    }
    for (event_type, mapping) in &config.mapping {
        let at = format!("mapping.{event_type}");
        check_identifier(&format!("{at}.table"), &mapping.table)?;
        if mapping.fields.is_empty() {
            return Err(invalid(format!("{at}.fields"), "maps no fields: add at least the key field"));
        }
        let mut columns = std::collections::HashSet::new();
        for (field, column) in &mapping.fields {
            check_identifier(&format!("{at}.fields.{field}"), column)?;
            if !columns.insert(column.to_lowercase()) {
                return Err(invalid(format!("{at}.fields.{field}"), format!("column {column:?} is mapped twice")));
            }
        }
        match &mapping.key {
            Some(key) if key.is_empty() => {
                return Err(invalid(format!("{at}.key"), "is empty: name the event field(s) that identify a row"));
            }
            Some(key) => {
                for (i, field) in key.iter().enumerate() {
                    if !mapping.fields.contains_key(field) {
                        return Err(invalid(
                            format!("{at}.key[{i}]"),
                            format!("{field:?} is not one of the mapped fields of {at}.fields"),
                        ));
                    }
                }
            }
            None if !mapping.fields.keys().any(|f| f.ends_with("_id")) => {
                return Err(invalid(
                    format!("{at}.key"),
                    "no key: no mapped field ends in _id, so add \"key\": [\"<field>\"] naming the event field(s) that identify the HIS row",
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn is_plugin_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A table or column name: it is quoted by each plugin, but must still be a
/// plain name.
fn check_identifier(path: &str, name: &str) -> Result<(), (String, String)> {
    if name.trim().is_empty() {
        return Err(invalid(path, "is empty: expected a table or column name"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(path, format!("{name:?} contains a control character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../his-config.json");

    fn error(text: &str) -> (String, String) {
        let (path, message) = parse(text).unwrap_err();
        (path.expect("a JSON path"), message)
    }

    #[test]
    fn the_repository_config_parses_with_defaults() {
        let config = parse(SEED).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.database["type"], "sqlite");
        assert_eq!(config.mapping.keys().collect::<Vec<_>>(), ["appointment", "schedule_change", "payment"]);
    }

    #[test]
    fn the_release_examples_parse_and_are_commented() {
        let env = |name: &str| match name {
            "BUKTOR_WEBHOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            _ => Some(format!("value-of-{name}")),
        };
        for (name, text) in [
            ("sqlite", include_str!("../../dist/examples/his-config.sqlite.json")),
            ("mysql", include_str!("../../dist/examples/his-config.mysql.json")),
            ("sqlserver", include_str!("../../dist/examples/his-config.sqlserver.json")),
            ("oracle", include_str!("../../dist/examples/his-config.oracle.json")),
        ] {
            assert!(text.starts_with("//"), "{name}: commented");
            let config = parse_with(text, &env).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(config.database["type"], name);
            assert_eq!(config.mapping.len(), 3, "{name}: the seed's three mappings");
        }
    }

    #[test]
    fn comments_are_allowed_and_positions_kept() {
        let text =
            "{\n  // the demo database\n  \"database\": {\"type\": \"sqlite\", /* inline */ \"path\": \"a//b.db\"}\n}";
        let config = parse(text).unwrap();
        assert_eq!(config.database["path"], "a//b.db", "a // inside a string is not a comment");
        let (path, message) = parse("// first line\n{\"database\": 5,}").unwrap_err();
        assert_eq!(path, None);
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn type_errors_name_the_json_path() {
        let (path, message) =
            error(r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":5}}}}"#);
        assert_eq!(path, "mapping.a.fields.a_id");
        assert!(message.contains("expected a string"), "{message}");

        let (path, message) = error(r#"{"database":{"type":"sqlite"},"server":{"listen":"localhost"}}"#);
        assert_eq!(path, "server.listen");
        assert!(message.contains("invalid socket address"), "{message}");

        let (path, message) = error(r#"{"database":{"type":"sqlite"},"sever":{}}"#);
        assert_eq!(path, "sever");
        assert!(message.contains("unknown field `sever`, expected one of"), "{message}");

        let (path, _) = error(r#"{"database":{"type":"sqlite"},"server":{"duplicate_window_days":0}}"#);
        assert_eq!(path, "server.duplicate_window_days");
    }

    #[test]
    fn environment_variables_fill_in_secrets() {
        let text = r#"{"database": {"type": "sqlite", "password": "${HIS_PASSWORD}"},
                       "server": {"auth": {"webhook_secrets": ["${BUKTOR_SECRET}"]}}}"#;
        let env = |name: &str| match name {
            "HIS_PASSWORD" => Some("s3cret".to_string()),
            "BUKTOR_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            _ => None,
        };
        let config = parse_with(text, &env).unwrap();
        assert_eq!(config.database["password"], "s3cret");
        assert_eq!(config.server.auth.unwrap().webhook_secrets, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let (path, message) = parse_with(text, &|_| None).unwrap_err();
        assert_eq!(path.as_deref(), Some("database.password"));
        assert_eq!(message, "the environment variable HIS_PASSWORD is not set (the value is ${HIS_PASSWORD})");
    }

    #[test]
    fn secrets_are_collected_from_literals_and_the_environment() {
        let config = serde_json::json!({
            "database": {"type": "mysql", "user": "his", "password": "pa55word", "db_password": "${HIS_PW}"},
            "server": {"admin_token": 1234567890123456789_u64, "auth": {"webhook_secrets": ["whsec_abc"], "bearer_tokens": [""]}},
            "mapping": {"e": {"table": "T", "fields": {"secret_id": "X"}}},
        });
        let secrets = Secrets::of_config(&config, &|name| (name == "HIS_PW").then(|| "from-env".to_string()));
        assert_eq!(secrets.0, ["1234567890123456789", "whsec_abc", "from-env", "pa55word"]);
        assert_eq!(
            secrets.redact("login his:pa55word refused; token 1234567890123456789; from-env"),
            "login his:*** refused; token ***; ***"
        );
    }

    #[test]
    fn semantic_errors_name_the_json_path() {
        let cases = [
            (r#"{"database":{}}"#, "database.type"),
            (r#"{"database":{"type":"My SQL"}}"#, "database.type"),
            (r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"","fields":{"a_id":"X"}}}}"#, "mapping.a.table"),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":"X\n"}}}}"#,
                "mapping.a.fields.a_id",
            ),
            (r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"name":"X"}}}}"#, "mapping.a.key"),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"name":"X"},"key":["nope"]}}}"#,
                "mapping.a.key[0]",
            ),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":"X","b":"X"}}}}"#,
                "mapping.a.fields.b",
            ),
            (r#"{"database":{"type":"sqlite"},"sync":{"batch_size":0}}"#, "sync.batch_size"),
            (r#"{"database":{"type":"sqlite"},"sync":{"retry_max_delay_secs":99999999}}"#, "sync.retry_max_delay_secs"),
        ];
        for (text, expected) in cases {
            assert_eq!(error(text).0, expected, "{text}");
        }
    }
}
