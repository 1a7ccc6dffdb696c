//! # his_sqlite: the embedded SQLite writer, and the reference plugin
//!
//! buktor-middleware loads this library when `database.type` is `"sqlite"`.
//! It writes rows into an SQLite file, so that the whole pipeline runs with
//! no database server: the repository's his-config.json uses it.
//!
//! It is also the plugin to copy when you write one for your own HIS. Each
//! concern has its own file:
//! - [`settings`]: the `database` section this plugin accepts, checked with
//!   errors that name the setting;
//! - [`sql`]: identifier quoting and the upsert statement, as pure functions;
//! - [`errors`]: SQLite errors, classified as retryable or permanent;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer) itself: transactions,
//!   batching, binding, and (for demos only) creating missing tables.
//!
//! This file only names the plugin and exports it.

pub mod errors;
pub mod render;
pub mod settings;
pub mod sql;
pub mod writer;

use his_plugin_api::{OpenContext, Plugin, PluginError};

/// The SQLite plugin.
pub struct SqlitePlugin;

impl Plugin for SqlitePlugin {
    const NAME: &'static str = "sqlite";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = writer::SqliteWriter;

    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError> {
        let settings = settings::Settings::parse(settings_json, context.config_dir)?;
        writer::SqliteWriter::open(settings, context.log)
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

his_plugin_api::export_plugin!(SqlitePlugin);
