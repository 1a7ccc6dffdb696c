//! MySQL and MariaDB errors, classified: retry later, or give up on this row.

use his_plugin_api::{ErrorKind, PluginError};

/// Server error numbers that a later retry can get past. Another session's
/// lock (1205: a wait past `lock_timeout_secs`, the session's
/// `innodb_lock_wait_timeout` or `lock_wait_timeout`; 1213: a deadlock) is a
/// CONFLICT: only the rows involved wait. Never TIMEOUT, which would make
/// the host treat the whole HIS as unusable.
const RETRYABLE: &[(u16, ErrorKind)] = &[
    (1205, ErrorKind::CONFLICT),   // lock wait timeout
    (1213, ErrorKind::CONFLICT),   // deadlock
    (1040, ErrorKind::CONNECTION), // too many connections
    (1053, ErrorKind::CONNECTION), // server shutdown in progress
    (1927, ErrorKind::CONNECTION), // MariaDB: connection was killed
    (2002, ErrorKind::CONNECTION), // can't connect through socket
    (2003, ErrorKind::CONNECTION), // can't connect to server
    (2006, ErrorKind::CONNECTION), // server has gone away
    (2013, ErrorKind::CONNECTION), // lost connection during query
    (1158, ErrorKind::CONNECTION), // network read error
    (1159, ErrorKind::TIMEOUT),    // network read timeout
    (1160, ErrorKind::CONNECTION), // network write error
    (1161, ErrorKind::TIMEOUT),    // network write timeout
    (1290, ErrorKind::CONNECTION), // read-only server (failover in progress)
    (1836, ErrorKind::CONNECTION), // read-only mode
    (3024, ErrorKind::TIMEOUT),    // max_execution_time exceeded
    (1969, ErrorKind::TIMEOUT),    // MariaDB: max_statement_time exceeded
    (1317, ErrorKind::TIMEOUT),    // query interrupted
    (1020, ErrorKind::CONFLICT),   // record changed since last read (MariaDB snapshot isolation)
    (3572, ErrorKind::CONFLICT),   // NOWAIT lock not granted
    (1180, ErrorKind::CONNECTION), // error during COMMIT
    (4031, ErrorKind::CONNECTION), // MySQL 8: disconnected for inactivity
];

/// Server error numbers that will not go away by retrying.
const PERMANENT: &[(u16, ErrorKind)] = &[
    (1045, ErrorKind::AUTH), // access denied (login)
    (1044, ErrorKind::AUTH), // access denied to the database
    // No right on one table or column: that table's events wait, others go
    // on (AUTH would stop every table).
    (1142, ErrorKind::SCHEMA),     // command denied on the table
    (1143, ErrorKind::SCHEMA),     // command denied on a column
    (1049, ErrorKind::CONFIG),     // unknown database
    (1298, ErrorKind::CONFIG),     // unknown time zone
    (1146, ErrorKind::SCHEMA),     // table doesn't exist
    (1054, ErrorKind::SCHEMA),     // unknown column
    (1406, ErrorKind::DATA),       // data too long
    (1264, ErrorKind::DATA),       // out of range
    (1265, ErrorKind::DATA),       // data truncated
    (1366, ErrorKind::DATA),       // incorrect value (e.g. integer)
    (1292, ErrorKind::DATA),       // incorrect date/time value
    (1367, ErrorKind::DATA),       // illegal value
    (1153, ErrorKind::DATA),       // packet larger than max_allowed_packet
    (1048, ErrorKind::CONSTRAINT), // column cannot be null
    (1062, ErrorKind::CONSTRAINT), // duplicate on a unique key other than the upsert key
    (1452, ErrorKind::CONSTRAINT), // foreign key: no parent row
    (3819, ErrorKind::CONSTRAINT), // check constraint
    (4025, ErrorKind::CONSTRAINT), // MariaDB check constraint
];

/// Turns an sqlx error into a classified [`PluginError`], keeping the
/// server's message and number. `first_row` is the batch index of the
/// statement's first row, so that "at row N" becomes a batch row.
pub fn classify(error: sqlx::Error, first_row: usize) -> PluginError {
    use sqlx::Error as E;
    match error {
        E::Database(db) => {
            let number = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number());
            let message = db.message().to_string();
            let mut classified = match number {
                Some(n) => from_number(n, &message),
                None => PluginError::permanent(ErrorKind::OTHER, message.clone()),
            };
            if let Some(n) = number {
                classified = classified.with_code(n.to_string());
            }
            if let Some(row) = row_in_message(&message) {
                classified = classified.with_row(first_row + row);
            }
            classified
        }
        // rustls's refusal of the server's certificate comes as an I/O
        // error; retrying cannot help, the settings or the server must change.
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => PluginError::permanent(
            ErrorKind::CONFIG,
            format!("TLS with the MySQL server failed: {e} (database.ssl_mode, database.ssl_ca)"),
        ),
        E::Io(e) => PluginError::retryable(ErrorKind::CONNECTION, format!("cannot reach the MySQL server: {e}")),
        E::Tls(e) => PluginError::permanent(
            ErrorKind::CONFIG,
            format!("TLS with the MySQL server failed: {e} (database.ssl_mode, database.ssl_ca)"),
        ),
        E::PoolTimedOut => PluginError::retryable(ErrorKind::TIMEOUT, "timed out connecting to the MySQL server"),
        E::PoolClosed | E::WorkerCrashed => PluginError::retryable(ErrorKind::CONNECTION, error.to_string()),
        E::Protocol(message) => {
            PluginError::retryable(ErrorKind::CONNECTION, format!("MySQL protocol error: {message}"))
        }
        E::Configuration(e) => PluginError::permanent(ErrorKind::CONFIG, e.to_string()),
        other => PluginError::permanent(ErrorKind::OTHER, other.to_string()),
    }
}

/// Classifies a server error number.
pub fn from_number(number: u16, message: &str) -> PluginError {
    if let Some((_, kind)) = RETRYABLE.iter().find(|(n, _)| *n == number) {
        return PluginError::retryable(*kind, message);
    }
    let kind = PERMANENT.iter().find(|(n, _)| *n == number).map_or(ErrorKind::OTHER, |(_, k)| *k);
    PluginError::permanent(kind, message)
}

/// MySQL names the failing row of a multi-row insert: "… at row 3"
/// (counted from 1). Returns it counted from 0.
fn row_in_message(message: &str) -> Option<usize> {
    let (_, after) = message.rsplit_once(" at row ")?;
    after.trim().parse::<usize>().ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_a_settings_error_and_a_lost_connection_is_retried() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, refused));
        let e = classify(e, 0);
        assert!(!e.retryable);
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert!(
            e.message.starts_with("TLS with the MySQL server failed: invalid peer certificate: UnknownIssuer"),
            "{}",
            e.message
        );
        let e = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = classify(e, 0);
        assert!(e.retryable);
        assert_eq!(e.kind, ErrorKind::CONNECTION);
    }

    #[test]
    fn every_listed_number_is_classified() {
        for (number, retryable, kind) in [
            (1213, true, ErrorKind::CONFLICT),
            (1205, true, ErrorKind::CONFLICT),
            (2006, true, ErrorKind::CONNECTION),
            (2013, true, ErrorKind::CONNECTION),
            (1040, true, ErrorKind::CONNECTION),
            (1045, false, ErrorKind::AUTH),
            (1146, false, ErrorKind::SCHEMA),
            (1054, false, ErrorKind::SCHEMA),
            (1406, false, ErrorKind::DATA),
            (1366, false, ErrorKind::DATA),
            (1292, false, ErrorKind::DATA),
            (1062, false, ErrorKind::CONSTRAINT),
            (9999, false, ErrorKind::OTHER),
        ] {
            let e = from_number(number, "m");
            assert_eq!((e.retryable, e.kind), (retryable, kind), "{number}");
        }
    }

    #[test]
    fn the_failing_row_is_read_from_the_message() {
        assert_eq!(row_in_message("Data too long for column 'HIS_status' at row 3"), Some(2));
        assert_eq!(row_in_message("Unknown column 'x' in 'field list'"), None);
        assert_eq!(row_in_message("Data too long at row 0"), None);
    }
}
