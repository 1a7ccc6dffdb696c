//! SQLite errors, classified: retry later, or give up on this row.

use his_plugin_api::{ErrorKind, PluginError};
use rusqlite::ErrorCode;

/// Turns a rusqlite error into a classified [`PluginError`], keeping
/// SQLite's own message and extended result code.
pub fn classify(error: rusqlite::Error) -> PluginError {
    let (failure, text) = match &error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            (failure, message.clone().unwrap_or_else(|| failure.to_string()))
        }
        // A statement SQLite refused to prepare. Its message names the
        // problem; the SQL text (which can be huge) is left out.
        rusqlite::Error::SqlInputError { error: failure, msg, .. } => (failure, msg.clone()),
        _ => return PluginError::permanent(ErrorKind::OTHER, error.to_string()),
    };
    let (kind, retryable) = match failure.code {
        // Another process holds the file: wait and try again.
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => (ErrorKind::CONFLICT, true),
        // The file is unavailable (disk full, I/O error, permissions): an
        // operator can fix it, and the events wait until then.
        ErrorCode::DiskFull
        | ErrorCode::SystemIoFailure
        | ErrorCode::CannotOpen
        | ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::FileLockingProtocolFailed => (ErrorKind::CONNECTION, true),
        ErrorCode::ConstraintViolation => (ErrorKind::CONSTRAINT, false),
        ErrorCode::TooBig | ErrorCode::TypeMismatch => (ErrorKind::DATA, false),
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => (ErrorKind::CONFIG, false),
        _ if is_schema_message(&text) => (ErrorKind::SCHEMA, false),
        _ => (ErrorKind::OTHER, false),
    };
    let error = if retryable { PluginError::retryable(kind, text) } else { PluginError::permanent(kind, text) };
    error.with_code(format!("SQLITE {}", failure.extended_code))
}

/// SQLite reports a missing table or column, or an upsert key without a
/// unique index, as a generic SQLITE_ERROR; only the message tells.
fn is_schema_message(message: &str) -> bool {
    ["no such table", "no such column", "has no column named", "ON CONFLICT clause does not match"]
        .iter()
        .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(sql: &str) -> rusqlite::Error {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
        conn.execute_batch(sql).unwrap_err()
    }

    #[test]
    fn schema_errors_are_permanent() {
        for sql in [
            "INSERT INTO missing (k) VALUES (1)",
            "INSERT INTO t (k, nope) VALUES (1, 2)",
            "INSERT INTO t (k, v) VALUES (1, 'a') ON CONFLICT (v) DO NOTHING",
            "INSERT INTO t (k, v) VALUES (1, 'a') ON CONFLICT (nope) DO NOTHING",
            "INSERT INTO t (k, v) VALUES (1, 'a') ON CONFLICT (k) DO UPDATE SET v = excluded.nope",
        ] {
            let e = classify(sqlite_error(sql));
            assert_eq!((e.kind, e.retryable), (ErrorKind::SCHEMA, false), "{sql}: {e:?}");
            assert!(!e.message.contains("INSERT"), "no SQL text in the message: {e:?}");
        }
    }

    #[test]
    fn constraint_errors_are_permanent() {
        let e = classify(sqlite_error("INSERT INTO t (k) VALUES (1)"));
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONSTRAINT, false), "{e:?}");
        assert!(e.message.contains("NOT NULL"), "{e:?}");
        assert!(e.code.starts_with("SQLITE "), "{e:?}");
    }

    #[test]
    fn busy_is_retryable() {
        let dir = std::env::temp_dir().join(format!("his-sqlite-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("CREATE TABLE t (k); BEGIN EXCLUSIVE;").unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let e = classify(other.execute_batch("INSERT INTO t VALUES (1)").unwrap_err());
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONFLICT, true), "{e:?}");
        drop(holder);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn locked_is_retryable() {
        // A table another connection of the same shared cache is writing.
        let uri = format!("file:his-sqlite-locked-{}?mode=memory&cache=shared", std::process::id());
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let holder = rusqlite::Connection::open_with_flags(&uri, flags).unwrap();
        holder.execute_batch("CREATE TABLE t (k); BEGIN; INSERT INTO t VALUES (1);").unwrap();
        let other = rusqlite::Connection::open_with_flags(&uri, flags).unwrap();
        let e = classify(other.execute_batch("INSERT INTO t VALUES (2)").unwrap_err());
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONFLICT, true), "{e:?}");
        let extended: i32 = e.code.trim_start_matches("SQLITE ").parse().unwrap();
        assert_eq!(extended & 0xFF, 6, "SQLITE_LOCKED (here SQLITE_LOCKED_SHAREDCACHE): {e:?}");
    }
}
