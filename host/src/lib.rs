//! # buktor-middleware
//!
//! Receives Buktor's webhook events over HTTP, makes each one durable in a
//! local SQLite journal before answering, and writes it into the hospital's
//! HIS database through a writer plugin chosen by `database.type`.
//!
//! ## Map of the code
//! - `main.rs` (the binary): the command line and startup order. Nothing else.
//! - [`config`]: his-config.json, read and checked once.
//! - [`server`]: the accept loop: TLS, connection cap, header deadline.
//! - [`intake`]: the HTTP routes; refuses bad requests, journals good ones.
//!   [`ratelimit`]: `server.rate_limit`, per client address;
//!   [`metrics`]: counters and `GET /metrics`; [`health`]: `GET /ready`.
//! - [`journal`]: the journal's schema and statements.
//! - [`committer`]: the one thread that writes the journal (group commit).
//! - [`worker`]: the sync worker thread: journal → mapping → plugin → HIS;
//!   [`lookahead`]: reads and maps the next window while the plugin writes.
//! - [`mapping`]: event → table, columns, key and typed values.
//! - [`check`]: `check`, the config and mappings against the live HIS;
//!   [`status`]: `status`, the journal at a glance.
//! - [`operations`]: the operator's `events`, `replay` and `prune`;
//!   [`admin`]: the same over HTTP, behind `server.admin_token`.
//! - [`plugins`]: finding and loading plugin libraries (abi_stable);
//!   [`conformance`]: `plugin-test`, the conformance kit for any plugin.
//! - [`lifecycle`]: how `run` is asked to stop and tells its supervisor it
//!   is ready; [`systemd`]: `READY=1` / `STOPPING=1` for `Type=notify`
//!   units; [`winservice`]: `service install|uninstall|start|stop|run`,
//!   the host as a Windows service.
//! - [`sync`]: `lock`, a mutex guard that survives poisoning.
//! - [`retry`]: the backoff policy; [`wakeup`]: the doorbell between threads;
//!   [`clock`]: timestamps.
//!
//! The data path: intake → committer (fsync) → 2xx answer → wakeup →
//! worker → plugin → HIS commit → committer marks it delivered.

pub mod admin;
pub mod auth;
pub mod check;
pub mod clock;
pub mod committer;
pub mod config;
pub mod conformance;
pub mod health;
pub mod intake;
pub mod journal;
pub mod lifecycle;
pub mod lookahead;
pub mod mapping;
pub mod metrics;
pub mod operations;
pub mod plugins;
pub mod ratelimit;
pub mod retry;
pub mod server;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod wakeup;
pub mod winservice;
pub mod worker;
