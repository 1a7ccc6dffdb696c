//! # his_oracle: the Oracle writer
//!
//! buktor-middleware loads this library when `database.type` is `"oracle"`.
//! It writes rows with the `oracle` crate (ODPI-C), one transaction per
//! batch, as one `MERGE … USING (SELECT :1 …, FROM dual)` statement
//! executed with an array bind: one round trip per batch, not per row.
//! Before it, `SELECT 1 … FOR UPDATE WAIT n` locks the batch's existing
//! rows (one more round trip per 512 rows): Oracle DML has no lock timeout
//! of its own, so a row another session holds is waited for at most
//! `lock_timeout_secs` (ORA-30006, a retryable conflict), never until the
//! call timeout.
//! It needs Oracle Instant Client on the server at run time; without it
//! the plugin still loads, and opening the writer says how to install it.
//!
//! - [`settings`]: the `database` section (host, user, password, database
//!   as the service name; or a full `connect_string`);
//! - [`dictionary`]: configured names resolved against the data
//!   dictionary, case-insensitively unless a name matches exactly;
//! - [`sql`]: identifier quoting, the row locks and the MERGE statement, as
//!   pure functions;
//! - [`binds`]: each column's bind type from the dictionary, and each value
//!   converted for it (timestamps as TIMESTAMP, decimals as NUMBER, long
//!   text as CLOB where the column is one);
//! - [`errors`]: ORA- and DPI- errors, classified;
//! - [`writer`]: the [`Writer`](his_plugin_api::Writer).

pub mod binds;
pub mod dictionary;
pub mod errors;
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
}

his_plugin_api::export_plugin!(OraclePlugin);
