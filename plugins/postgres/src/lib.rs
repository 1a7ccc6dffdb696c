//! # his_postgres: the PostgreSQL writer
//!
//! buktor-middleware loads this library when `database.type` is
//! `"postgres"`. It writes rows with sqlx, one transaction per call, as
//! multi-row `INSERT … ON CONFLICT … DO UPDATE` statements (upserts) and
//! row-by-row statements (the other actions). Built as a third party
//! would build a plugin: on his-plugin-api alone.
//!
//! - [`settings`]: the `database` section (host, user, password, database,
//!   and optional port, schema, TLS, time zone, timeouts, pool size);
//! - [`sql`]: identifier quoting, session setup and statement text, as
//!   pure functions;
//! - [`values`]: how each [`Value`](his_plugin_api::Value) is bound, and
//!   the cast that takes it into its column;
//! - [`plan`]: a batch's statements, as steps, for the writer and for
//!   [`render`];
//! - [`errors`]: SQLSTATEs, classified as retryable or permanent, and the
//!   row at fault read from the server's detail;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer): its own tokio
//!   runtime and connection pool, transactions, and table descriptions.

pub mod errors;
pub mod plan;
pub mod render;
pub mod settings;
pub mod sql;
pub mod values;
pub mod writer;

use his_plugin_api::{OpenContext, Plugin, PluginError};

/// The PostgreSQL plugin.
pub struct PostgresPlugin;

impl Plugin for PostgresPlugin {
    const NAME: &'static str = "postgres";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = writer::PostgresWriter;

    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError> {
        let settings = settings::Settings::parse(settings_json, context.config_dir)?;
        writer::PostgresWriter::open(settings, context.log, context.deadline)
    }

    /// The statements the writer would run for `batches`, without
    /// connecting (see [`render`]).
    fn render(
        settings_json: &str,
        config_dir: &str,
        batches: &[his_plugin_api::WriteBatch],
    ) -> Result<Vec<his_plugin_api::Statement>, PluginError> {
        render::render(settings_json, config_dir, batches)
    }
}

his_plugin_api::export_plugin!(PostgresPlugin);
