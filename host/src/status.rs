//! `buktor-middleware status`: what the journal says, read without the
//! server running (or beside it).

use std::path::Path;

use rusqlite::Connection;

/// The journal's state, as `status` prints it.
#[derive(Debug, serde::Serialize)]
pub struct JournalStatus {}

/// Reads the journal at `path` through `connection`.
pub fn gather(connection: &Connection, path: &Path, now_ms: i64) -> rusqlite::Result<JournalStatus> {
    let _ = (connection, path, now_ms);
    Ok(JournalStatus {})
}

impl std::fmt::Display for JournalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "(status is not written yet)")
    }
}
