//! # buktor-middleware
//!
//! Receives Buktor's webhook events over HTTP, makes each one durable in a
//! local SQLite journal before answering, and writes it into the hospital's
//! HIS database through a writer plugin chosen by `database.type`.
//!
//! ## Map of the code
//! The folders are layers; each imports only from the layers below it
//! (`cargo xtask layers` checks this, and that no module imports one that
//! imports it back):
//!
//! | layer | what it holds |
//! |---|---|
//! | `commands/` (the binary's, beside `main.rs`) | one file per subcommand: `run` (the startup order), `check`, `status`, `events`/`replay`/`prune`, `plugin-test`, `describe`, `service`, `schema` |
//! | [`service`] | how `run` is supervised: [`service::lifecycle`] (stop requests, readiness), [`service::systemd`], [`service::winservice`] |
//! | [`http`] | the accept loop, the routes, authentication, the rate limit, refusals |
//! | [`pipeline`] | the data path below HTTP: [`pipeline::committer`] → [`pipeline::journal`] → [`pipeline::worker`] → plugin |
//! | [`telemetry`] | what the pipeline reports and HTTP shows: [`telemetry::metrics`], [`telemetry::health`] |
//! | [`plugins`] | finding and loading plugin libraries (abi_stable) |
//! | [`config`] | his-config.json, read and checked once; its secrets; its JSON Schema |
//! | [`clock`], [`sync`], [`text`] | leaves: timestamps, a poison-proof lock, escaping text for terminals |
//!
//! The data path reads top to bottom: [`http::intake`] → [`pipeline::committer`]
//! (fsync) → 2xx answer → [`pipeline::wakeup`] → [`pipeline::worker`] →
//! plugin → HIS commit → the committer marks it delivered.

pub mod clock;
pub mod config;
pub mod http;
pub mod pipeline;
pub mod plugins;
pub mod service;
pub mod sync;
pub mod telemetry;
pub mod text;
