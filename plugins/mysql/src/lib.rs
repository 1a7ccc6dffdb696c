//! # his_mysql: the MySQL and MariaDB writer
//!
//! buktor-middleware loads this library when `database.type` is `"mysql"`.
//! It writes rows with sqlx, one transaction per batch, as multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` statements.
//!
//! - [`settings`]: the `database` section (host, user, password, database,
//!   and optional port, socket, TLS, time zone, pool size);
//! - [`sql`]: identifier quoting, the upsert statement and how batches are
//!   split, as pure functions;
//! - [`values`]: how each [`Value`](his_plugin_api::Value) is bound, with
//!   timestamps converted to the HIS time zone;
//! - [`errors`]: MySQL error numbers, classified as retryable or permanent;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer): its own tokio
//!   runtime and connection pool, transactions, and table descriptions.

pub mod errors;
pub mod render;
pub mod settings;
pub mod sql;
pub mod values;
pub mod writer;

use his_plugin_api::{OpenContext, Plugin, PluginError};

/// The MySQL/MariaDB plugin.
pub struct MysqlPlugin;

impl Plugin for MysqlPlugin {
    const NAME: &'static str = "mysql";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = writer::MysqlWriter;

    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError> {
        let settings = settings::Settings::parse(settings_json, context.config_dir)?;
        writer::MysqlWriter::open(settings, context.log)
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

his_plugin_api::export_plugin!(MysqlPlugin);
