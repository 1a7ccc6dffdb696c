//! # his_sqlserver: the SQL Server and Azure SQL writer
//!
//! buktor-middleware loads this library when `database.type` is
//! `"sqlserver"`. It writes rows with tiberius (TDS 7.3+), one transaction
//! per batch: an upsert as `MERGE … WITH (HOLDLOCK)` statements whose
//! source is a parameterised `VALUES` list; an insert, update, soft-delete
//! or delete as one statement per row. Partial rows leave the columns they
//! do not carry as they are.
//!
//! - [`settings`]: the `database` section (host, user, password, database,
//!   and optional port, named instance, encryption, Windows authentication);
//! - [`sql`]: identifier quoting, the MERGE statement, the one-row
//!   statements of the other actions and batch splitting below 2,100
//!   parameters, as pure functions;
//! - [`actions`]: each write action, column set by column set;
//! - [`values`]: each value bound with an explicit SQL Server type;
//! - [`errors`]: SQL Server error numbers, classified;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer): its own tokio
//!   runtime and connection, transactions, and table descriptions.

pub mod actions;
pub mod errors;
pub mod render;
pub mod settings;
pub mod sql;
pub mod values;
pub mod writer;

use his_plugin_api::{OpenContext, Plugin, PluginError};

/// The SQL Server plugin.
pub struct SqlServerPlugin;

impl Plugin for SqlServerPlugin {
    const NAME: &'static str = "sqlserver";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = writer::SqlServerWriter;

    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError> {
        let settings = settings::Settings::parse(settings_json, context.config_dir)?;
        writer::SqlServerWriter::open(settings, context.log)
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

his_plugin_api::export_plugin!(SqlServerPlugin);
