//! # his_oracle: the Oracle writer
//!
//! buktor-middleware loads this library when `database.type` is `"oracle"`.
//! It writes rows with the `oracle` crate (ODPI-C), one transaction per
//! batch. An upsert is one `MERGE … USING (SELECT :1 …, FROM dual)`
//! statement per column set (rows that carry the same columns), executed
//! with an array bind: one round trip per batch of whole rows, not per row.
//! The other actions of plugin-api 1.1 (insert, update, delete,
//! soft-delete) run one statement per row, so that a row at fault (an
//! insert whose key exists, an update that finds no row) is named. A column
//! a row does not carry is neither set nor inserted.
//! Before them, except for an insert, `SELECT 1 … FOR UPDATE WAIT n` locks
//! the batch's existing rows (one more round trip per 512 rows): Oracle DML
//! has no lock timeout of its own, so a row another session holds is
//! waited for at most `lock_timeout_secs` (ORA-30006, a retryable
//! conflict), never until the call timeout. Each round trip is bounded by
//! `statement_timeout_secs` and by what is left of the call's deadline.
//! It needs Oracle Instant Client on the server at run time; without it
//! the plugin still loads, and opening the writer says how to install it.
//!
//! - [`settings`]: the `database` section (host, user, password, database
//!   as the service name; or a full `connect_string`);
//! - [`dictionary`]: configured names resolved against the data
//!   dictionary, case-insensitively unless a name matches exactly;
//! - [`sql`]: identifier quoting, the row locks, the MERGE and the one-row
//!   INSERT, UPDATE and DELETE statements, as pure functions;
//! - [`binds`]: each column's bind type from the dictionary, and each value
//!   converted for it (timestamps and dates as TIMESTAMP, decimals as
//!   NUMBER, long text as CLOB where the column is one, bytes as RAW or
//!   BLOB);
//! - [`errors`]: ORA- and DPI- errors, classified;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer).

pub mod binds;
pub mod dictionary;
pub mod errors;
pub mod render;
pub mod settings;
pub mod sql;
pub mod writer;

use his_plugin_api::{OpenContext, Plugin, PluginError};

/// The Oracle plugin.
pub struct OraclePlugin;

impl Plugin for OraclePlugin {
    const NAME: &'static str = "oracle";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Writer = writer::OracleWriter;

    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError> {
        let settings = settings::Settings::parse(settings_json)?;
        writer::OracleWriter::open(settings, context.log)
    }

    /// The statements the writer would run for `batches`, without
    /// connecting (see [`render`]).
    fn render(
        settings_json: &str,
        _config_dir: &str,
        batches: &[his_plugin_api::WriteBatch],
    ) -> Result<Vec<his_plugin_api::Statement>, PluginError> {
        render::render(settings_json, batches)
    }
}

his_plugin_api::export_plugin!(OraclePlugin);
