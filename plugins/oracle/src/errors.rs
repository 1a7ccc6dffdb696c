//! Oracle errors, classified: retry later, or give up on this row.

use his_plugin_api::{ErrorKind, PluginError};

/// ORA- numbers that a later retry can get past. Another session's lock
/// (ORA-30006 after `lock_timeout_secs`, ORA-00054, a deadlock) is a
/// CONFLICT: only the rows involved wait. The call timeout (ORA-03156,
/// DPI-1067, after `statement_timeout_secs`) says nothing of locks: it is a
/// TIMEOUT, an HIS that does not answer.
const RETRYABLE: &[(i32, ErrorKind)] = &[
    (3113, ErrorKind::CONNECTION),  // end-of-file on communication channel
    (3114, ErrorKind::CONNECTION),  // not connected to Oracle
    (3135, ErrorKind::CONNECTION),  // connection lost contact
    (12541, ErrorKind::CONNECTION), // TNS: no listener
    (12170, ErrorKind::TIMEOUT),    // TNS: connect timeout
    (12537, ErrorKind::CONNECTION), // TNS: connection closed
    (12547, ErrorKind::CONNECTION), // TNS: lost contact
    (1033, ErrorKind::CONNECTION),  // initialization or shutdown in progress
    (1034, ErrorKind::CONNECTION),  // Oracle not available
    (1089, ErrorKind::CONNECTION),  // immediate shutdown in progress
    (60, ErrorKind::CONFLICT),      // deadlock detected
    (54, ErrorKind::CONFLICT),      // resource busy (NOWAIT, or DDL_LOCK_TIMEOUT expired)
    (30006, ErrorKind::CONFLICT),   // WAIT timeout expired (FOR UPDATE WAIT lock_timeout_secs)
    (2049, ErrorKind::CONFLICT),    // timeout: distributed transaction waiting for lock
    (8177, ErrorKind::CONFLICT),    // cannot serialize access
    (1555, ErrorKind::CONFLICT),    // snapshot too old
    (4068, ErrorKind::CONFLICT),    // package state discarded (recompiled)
    (12528, ErrorKind::CONNECTION), // TNS: listener blocks new connections
    (18, ErrorKind::CONNECTION),    // maximum sessions exceeded
    (20, ErrorKind::CONNECTION),    // maximum processes exceeded
    (1653, ErrorKind::OTHER),       // unable to extend table (tablespace full)
    (30036, ErrorKind::OTHER),      // unable to extend undo segment
    (3156, ErrorKind::TIMEOUT),     // call timed out (statement_timeout_secs)
];

/// ODPI-C errors (no ORA- number of their own) about the session.
const DPI_RETRYABLE: &[(&str, ErrorKind)] = &[
    ("DPI-1080", ErrorKind::CONNECTION), // connection was closed by ORA-…
    ("DPI-1010", ErrorKind::CONNECTION), // not connected
    ("DPI-1067", ErrorKind::TIMEOUT),    // call timed out (statement_timeout_secs), see ORA-03156
];

/// ORA- numbers that will not go away by retrying.
const PERMANENT: &[(i32, ErrorKind)] = &[
    (1017, ErrorKind::AUTH),       // invalid username/password
    (28000, ErrorKind::AUTH),      // account locked
    (12514, ErrorKind::CONFIG),    // listener does not know the service
    (12154, ErrorKind::CONFIG),    // could not resolve the connect identifier
    (942, ErrorKind::SCHEMA),      // table or view does not exist
    (904, ErrorKind::SCHEMA),      // invalid identifier
    (1031, ErrorKind::SCHEMA),     // insufficient privileges (on this table)
    (12899, ErrorKind::DATA),      // value too large for column
    (1722, ErrorKind::DATA),       // invalid number
    (1438, ErrorKind::DATA),       // value larger than the column's precision
    (1461, ErrorKind::DATA),       // LONG value bound into a non-LONG column
    (1840, ErrorKind::DATA),       // input value not long enough for date format
    (1843, ErrorKind::DATA),       // not a valid month
    (1, ErrorKind::CONSTRAINT),    // unique constraint (not the merge key; an insert's key: see for_insert)
    (1400, ErrorKind::CONSTRAINT), // cannot insert NULL
    (2291, ErrorKind::CONSTRAINT), // parent key not found
    (2290, ErrorKind::CONSTRAINT), // check constraint
];

/// Classifies an ORA- error number, keeping the message.
pub fn from_number(number: i32, message: &str) -> PluginError {
    let error = if let Some((_, kind)) = RETRYABLE.iter().find(|(n, _)| *n == number) {
        PluginError::retryable(*kind, message)
    } else {
        let kind = PERMANENT.iter().find(|(n, _)| *n == number).map_or(ErrorKind::OTHER, |(_, k)| *k);
        PluginError::permanent(kind, message)
    };
    error.with_code(format!("ORA-{number:05}"))
}

/// Oracle's unique violation.
const UNIQUE_VIOLATED: &str = "ORA-00001";

/// An insert's error, said for the insert action: ORA-00001 means a row
/// with this key exists, which the action refuses as the row's DATA error
/// (never an overwrite), keeping Oracle's code, message and the row. For
/// an upsert or an update it stays a CONSTRAINT error: there it is a unique
/// key other than the batch's.
pub fn for_insert(error: PluginError) -> PluginError {
    if error.code.as_str() != UNIQUE_VIOLATED {
        return error;
    }
    let message = format!("insert: a row with this key exists ({})", error.message);
    PluginError { row: error.row, ..PluginError::permanent(ErrorKind::DATA, message).with_code(UNIQUE_VIOLATED) }
}

/// Classifies an ODPI-C error about the session (`DPI-1067: call timeout of
/// 60000 ms exceeded with ORA-3156`), if `message` is one.
pub fn from_dpi_message(message: &str) -> Option<PluginError> {
    let (code, kind) = DPI_RETRYABLE.iter().find(|(code, _)| message.starts_with(code))?;
    Some(PluginError::retryable(*kind, message).with_code(*code))
}

/// Turns an `oracle` crate error into a classified [`PluginError`].
pub fn classify(error: oracle::Error) -> PluginError {
    let message = error.db_error().map_or_else(|| error.to_string(), |db| db.message().to_string());
    if message.contains("DPI-1047") {
        return instant_client_missing(&message);
    }
    if let Some(classified) = from_dpi_message(&message) {
        return classified;
    }
    match error.db_error() {
        Some(db) if error.kind() == oracle::ErrorKind::OciError => {
            let classified = from_number(db.code(), db.message());
            // For a row's error in array-bound DML, ODPI-C's offset is that
            // row (for other errors it is a position in the SQL text).
            if classified.kind == ErrorKind::DATA || classified.kind == ErrorKind::CONSTRAINT {
                classified.with_row(db.offset() as usize)
            } else {
                classified
            }
        }
        // Other ODPI-C errors (DPI-xxxx) are about the client side.
        Some(db) => PluginError::permanent(ErrorKind::OTHER, db.message()),
        None => PluginError::permanent(ErrorKind::OTHER, message),
    }
}

/// DPI-1047: ODPI-C found no Oracle Client library. One line that says what
/// is missing, where it was looked for, and how to install it.
pub fn instant_client_missing(dpi_message: &str) -> PluginError {
    let first_line = dpi_message.lines().next().unwrap_or(dpi_message).trim();
    let (looked_in, install) = if cfg!(windows) {
        (
            "the folders in PATH and beside buktor-middleware.exe",
            "install Oracle Instant Client (Basic or Basic Light, 19c or later, 64-bit) and add its folder to the \
             system PATH, then restart the service",
        )
    } else {
        (
            "LD_LIBRARY_PATH, the ldconfig cache (/etc/ld.so.conf.d) and /usr/lib",
            "install Oracle Instant Client (Basic or Basic Light, 19c or later, 64-bit), then either run \
             `echo /opt/oracle/instantclient_XX > /etc/ld.so.conf.d/oracle.conf && ldconfig`, or set \
             LD_LIBRARY_PATH to its folder in the service's environment, and restart the service",
        )
    };
    PluginError::permanent(
        ErrorKind::CONFIG,
        format!(
            "Oracle Instant Client was not found (libclntsh looked for in {looked_in}): {install}. \
             [{}]",
            first_line.trim_end_matches('.')
        ),
    )
    .with_code("DPI-1047")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ora_codes_are_classified() {
        for (number, retryable, kind) in [
            (3113, true, ErrorKind::CONNECTION),
            (3114, true, ErrorKind::CONNECTION),
            (12541, true, ErrorKind::CONNECTION),
            (12170, true, ErrorKind::TIMEOUT),
            (60, true, ErrorKind::CONFLICT),
            (54, true, ErrorKind::CONFLICT),
            (30006, true, ErrorKind::CONFLICT),
            (2049, true, ErrorKind::CONFLICT),
            (3156, true, ErrorKind::TIMEOUT),
            (942, false, ErrorKind::SCHEMA),
            (904, false, ErrorKind::SCHEMA),
            (12899, false, ErrorKind::DATA),
            (1722, false, ErrorKind::DATA),
            (1, false, ErrorKind::CONSTRAINT),
            (1017, false, ErrorKind::AUTH),
            (20001, false, ErrorKind::OTHER),
        ] {
            let e = from_number(number, "ORA-xxxxx: recorded");
            assert_eq!((e.retryable, e.kind), (retryable, kind), "ORA-{number}");
        }
        assert_eq!(from_number(942, "m").code.as_str(), "ORA-00942");
    }

    #[test]
    fn a_unique_violation_on_insert_is_the_rows_data_error() {
        let oracle = "ORA-00001: unique constraint (HIS.SYS_C008215) violated";
        let e = for_insert(from_number(1, oracle).with_row(3));
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::DATA, false, "ORA-00001"));
        assert_eq!(e.message.as_str(), format!("insert: a row with this key exists ({oracle})"));
        assert_eq!(e.row.into_option(), Some(3));
        // Any other error of an insert is left as it is.
        let null = from_number(1400, "ORA-01400: cannot insert NULL into (\"HIS\".\"T\".\"C\")").with_row(1);
        assert_eq!(for_insert(null.clone()), null);
        // Outside an insert, ORA-00001 stays a constraint error.
        assert_eq!(from_number(1, oracle).kind, ErrorKind::CONSTRAINT);
    }

    #[test]
    fn a_lock_wait_is_a_conflict_and_the_call_timeout_a_timeout() {
        // FOR UPDATE WAIT n that expired: the batch's rows wait, others go on.
        let e = from_number(30006, "ORA-30006: resource busy; acquire with WAIT timeout expired");
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::CONFLICT, true, "ORA-30006"));
        let e = from_number(54, "ORA-00054: resource busy and acquire with NOWAIT specified or timeout expired");
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONFLICT, true));
        // The call timeout says nothing of locks: the HIS did not answer.
        let e = from_dpi_message("DPI-1067: call timeout of 60000 ms exceeded with ORA-3156").unwrap();
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::TIMEOUT, true, "DPI-1067"));
        let e = from_dpi_message("DPI-1080: connection was closed by ORA-3113").unwrap();
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONNECTION, true));
        assert!(from_dpi_message("ORA-30006: resource busy").is_none());
    }

    #[test]
    fn the_instant_client_message_is_one_line() {
        // As ODPI-C 5 words it on Linux.
        let dpi = "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object \
                   file: No such file or directory\". See https://oracle.github.io/odpi/doc/installation.html#linux for help";
        let e = instant_client_missing(dpi);
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::CONFIG, false, "DPI-1047"));
        assert!(!e.message.contains('\n'));
        assert!(e.message.starts_with("Oracle Instant Client was not found"), "{e}");
        assert!(e.message.contains("libclntsh.so: cannot open shared object file"), "{e}");
    }
}
