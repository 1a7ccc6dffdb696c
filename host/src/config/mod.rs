//! his-config.json: read once at startup, checked completely, then immutable.
//!
//! Every error names the JSON path of the offending value and what was
//! expected, so that an operator can fix the file without reading code.
//!
//! This file holds the types, as the file has them; [`load`](mod@load)
//! reads and parses it (comments, `${ENV_NAME}`), [`validate`](mod@validate)
//! checks what serde cannot, [`secrets`] finds the secrets to scrub and
//! decodes webhook secrets; [`schema`] is the file's JSON Schema, for
//! editors, generated from these types and their doc comments.

pub mod load;
pub mod mapping;
pub mod schema;
pub mod secrets;
pub mod validate;

pub use load::{ConfigError, LoadedConfig, load, locate, parse, parse_in, without_comments};
pub use mapping::{ActionConfig, EventConfig, IfMissingConfig, MappingConfig, OnMissing};
pub use schema::json_schema;
pub use secrets::{Secrets, decode_secret};

use std::{net::SocketAddr, path::PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// The file name looked for when no `--config` is given.
pub const DEFAULT_FILE_NAME: &str = "his-config.json";

/// The whole configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where this file's JSON Schema is, for editors (VS Code validates
    /// and completes the file with it): `./his-config.schema.json` in the
    /// release's folder, where it is shipped beside his-config.json. The
    /// middleware ignores it.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
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
    /// The HIS database. Only `type` is the host's: it picks the plugin
    /// (`libhis_<type>.so`, `his_<type>.dll`). Everything else belongs to
    /// that plugin, which checks it when the middleware starts.
    #[schemars(schema_with = "schema::database")]
    pub database: serde_json::Map<String, serde_json::Value>,
    /// Event type → HIS table and columns.
    #[serde(default)]
    pub mapping: IndexMap<String, EventConfig>,
}

/// `server`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address intake listens on. Loopback by default: exposing the
    /// port is a deliberate choice.
    pub listen: SocketAddr,
    /// The largest request body accepted; larger ones get 413.
    #[schemars(range(min = 1))]
    pub max_body_bytes: usize,
    /// The deepest nesting of objects and arrays accepted; deeper gets 400.
    #[schemars(range(min = 1, max = 128))]
    pub max_json_depth: usize,
    /// The most object members in one event, at all depths; more gets 400.
    #[schemars(range(min = 1))]
    pub max_json_members: usize,
    /// The most JSON values in one event (objects, arrays, each array
    /// element, strings, numbers, …); more gets 400. Bounds the memory a
    /// body can grow into.
    #[schemars(range(min = 1))]
    pub max_json_nodes: usize,
    /// The most body bytes being read and journaled at once, over all
    /// connections; a request waits for room (at most
    /// `request_timeout_secs`, then 503). Bounds intake's memory. Default:
    /// 32 MiB, or `max_body_bytes` if that is larger.
    pub max_bytes_in_flight: Option<usize>,
    /// An event field holding the sender's delivery id (such as
    /// `event_id`), for senders that do not send a `webhook-id` header.
    pub delivery_id_field: Option<String>,
    /// How long a delivery id is remembered: an event sent again with the
    /// same id within this window is answered as a duplicate, not stored.
    #[schemars(range(min = 1, max = 366))]
    pub duplicate_window_days: u32,
    /// Turns on the `/admin/…` routes, which require it as a bearer token.
    pub admin_token: Option<String>,
    /// Who may send events. Without it, anyone who reaches the port may.
    pub auth: Option<AuthConfig>,
    /// Listen on a non-loopback address without `auth`: only for networks
    /// where nothing untrusted can reach the port.
    pub allow_unauthenticated: bool,
    /// Accept unsigned events that came through a proxy (they carry
    /// `Forwarded`, `X-Forwarded-For`, `X-Real-IP` or `Via`) when `auth`
    /// is not set. Off: behind ngrok or nginx, anyone on the internet
    /// could send them; such requests get 401.
    pub allow_unsigned_through_proxy: bool,
    /// Where the operator's routes listen: `/ready`, `/metrics` and
    /// `/admin`. Apart from intake, so that a proxy in front of intake
    /// never exposes them.
    pub admin_listen: SocketAddr,
    /// Serve the operator's routes on the intake port too, as before
    /// `admin_listen` existed (for scrapers set up then). Warned about at
    /// startup: a proxy in front of intake then exposes them.
    pub operator_routes_on_intake_port: bool,
    /// Serve HTTPS with this certificate, for a port exposed directly
    /// (behind nginx, nginx does TLS instead).
    pub tls: Option<TlsConfig>,
    /// How long a client may take to send a request's body (and to take
    /// the answer): a stalled client must not hold a connection, or a
    /// shutdown, for long.
    #[schemars(range(min = 1, max = 600))]
    pub request_timeout_secs: u64,
    /// How long a connection may sit without a request: from when it
    /// opens (or its last answer) until its request's headers are in, the
    /// TLS handshake included. Shorter than `request_timeout_secs`, so
    /// that idle connections give their places back quickly.
    #[schemars(range(min = 1, max = 600))]
    pub idle_timeout_secs: u64,
    /// The most connections open at once; more wait until one closes.
    /// Bounds file descriptors and memory under a flood.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_connections: usize,
    /// The most connections one client address (IPv6 by /64) may hold;
    /// more are closed at once. Loopback (a proxy on this server) is not
    /// limited.
    #[schemars(range(min = 1))]
    pub max_connections_per_client: usize,
    /// Per-client-address request limit, answered with 429 when exceeded.
    /// Off by default. Behind a proxy every request comes from the proxy's
    /// address, so limit there instead.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `server.tls`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, server certificate first. Relative to
    /// the config file.
    pub cert_path: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// `server.rate_limit`: a token bucket per client address (IPv6 by /64).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The sustained rate allowed from one address.
    #[schemars(range(min = 0.001, max = 1_000_000.0))]
    pub requests_per_second: f64,
    /// How many requests one address may send at once before the rate
    /// applies (a burst, such as Buktor resending a backlog).
    #[schemars(range(min = 1))]
    pub burst: u32,
}

/// `server.auth`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    #[schemars(range(min = 1, max = 3600))]
    pub timestamp_tolerance_secs: u64,
}

fn default_tolerance_secs() -> u64 {
    300
}

impl ServerConfig {
    /// `max_bytes_in_flight`, or its default.
    pub fn bytes_in_flight(&self) -> usize {
        self.max_bytes_in_flight.unwrap_or(self.max_body_bytes.max(32 * 1024 * 1024))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_json_members: 10_000,
            max_json_nodes: 20_000,
            max_bytes_in_flight: None,
            delivery_id_field: None,
            duplicate_window_days: 7,
            admin_token: None,
            auth: None,
            allow_unauthenticated: false,
            allow_unsigned_through_proxy: false,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 5001)),
            operator_routes_on_intake_port: false,
            tls: None,
            request_timeout_secs: 30,
            idle_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_client: 64,
            rate_limit: None,
        }
    }
}

/// `journal`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// The journal's SQLite file; `buktor-journal.db` beside the config by
    /// default. Relative paths are relative to the config file.
    pub path: Option<PathBuf>,
    /// Delivered events older than this are removed. Failed and unmapped
    /// events are kept until replayed, or removed by `prune`.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: u32,
    /// The most the journal may hold, in bytes. At it, every event is
    /// refused (507, `journal_full`) until the HIS takes the backlog or an
    /// operator prunes: nothing accepted is ever dropped to make room.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1_048_576))]
    pub max_bytes: u64,
    /// The most that events no mapping knows (kept as `unmapped`) may
    /// hold, in payload bytes; beyond it they are refused (507,
    /// `unmapped_quota`) while mapped events still flow.
    #[serde(default = "default_max_unmapped_bytes")]
    #[schemars(range(min = 1_048_576))]
    pub max_unmapped_bytes: u64,
    /// The same, for the unmapped events of one event type.
    #[serde(default = "default_max_unmapped_bytes_per_type")]
    #[schemars(range(min = 1_048_576))]
    pub max_unmapped_bytes_per_type: u64,
}

fn default_retention_days() -> u32 {
    30
}

fn default_max_bytes() -> u64 {
    8 << 30
}

fn default_max_unmapped_bytes() -> u64 {
    512 << 20
}

fn default_max_unmapped_bytes_per_type() -> u64 {
    64 << 20
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: None,
            retention_days: default_retention_days(),
            max_bytes: default_max_bytes(),
            max_unmapped_bytes: default_max_unmapped_bytes(),
            max_unmapped_bytes_per_type: default_max_unmapped_bytes_per_type(),
        }
    }
}

/// `plugins`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// A folder searched before the executable's own folder. Relative paths
    /// are relative to the config file.
    pub dir: Option<PathBuf>,
}

/// `sync`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// The most events the worker takes from the journal in one pass.
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// The first delay before an event whose write failed is tried again.
    #[schemars(range(min = 1, max = 3_600_000))]
    pub retry_initial_delay_ms: u64,
    /// The longest delay between two tries of one event.
    #[schemars(range(min = 1, max = 86_400))]
    pub retry_max_delay_secs: u64,
    /// Each delay is the previous one times this.
    #[schemars(range(min = 1.0, max = 10.0))]
    pub retry_factor: f64,
    /// The deadline of each call into the plugin (a batch's write, a ping,
    /// opening): the plugin bounds its statements by it, and a call that
    /// fails after it counts as a timeout.
    #[schemars(range(min = 1, max = 86_400))]
    pub plugin_call_timeout_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            retry_initial_delay_ms: 1_000,
            retry_max_delay_secs: 300,
            retry_factor: 2.0,
            plugin_call_timeout_secs: 60,
        }
    }
}

impl SyncConfig {
    /// The deadline of each call into the plugin.
    pub fn plugin_deadline(&self) -> his_plugin_api::Deadline {
        his_plugin_api::Deadline::after(std::time::Duration::from_secs(self.plugin_call_timeout_secs))
    }
}

/// A table or column name as event keys, and the rule that every mapping
/// of one table uses the same key columns, compare it: trimmed and
/// lowercased (`HIS_Appointments` is `his_appointments`), as the HIS's
/// default collations do, on the side of caution.
pub fn fold_name(name: &str) -> String {
    name.trim().to_lowercase()
}
