//! SQL Server errors, classified: retry later, or give up on this row.

use his_plugin_api::{ErrorKind, PluginError};

/// Error numbers that a later retry can get past. Another session's lock
/// (1222: a wait past `lock_timeout_secs`, the session's `SET LOCK_TIMEOUT`;
/// 1205: a deadlock) is a CONFLICT: only the rows involved wait. Never
/// TIMEOUT, which would make the host treat the whole HIS as unusable.
const RETRYABLE: &[(u32, ErrorKind)] = &[
    (1205, ErrorKind::CONFLICT),    // chosen as deadlock victim
    (1222, ErrorKind::CONFLICT),    // lock request time out (SET LOCK_TIMEOUT)
    (40613, ErrorKind::CONNECTION), // Azure: database not currently available
    (40501, ErrorKind::CONNECTION), // Azure: service busy (throttling)
    (49918, ErrorKind::CONNECTION), // Azure: not enough resources
    (40197, ErrorKind::CONNECTION), // Azure: error processing the request (failover)
    (10928, ErrorKind::CONNECTION), // Azure: resource limit reached
    (10929, ErrorKind::CONNECTION), // Azure: minimum guarantee not met
    (233, ErrorKind::CONNECTION),   // no process on the other end of the pipe
    (10053, ErrorKind::CONNECTION), // transport-level error
    (10054, ErrorKind::CONNECTION), // connection reset
    (9002, ErrorKind::OTHER),       // transaction log full
    (1105, ErrorKind::OTHER),       // filegroup full
    (3960, ErrorKind::CONFLICT),    // snapshot isolation update conflict
    (3906, ErrorKind::CONNECTION),  // database is read-only (failover)
    (976, ErrorKind::CONNECTION),   // AG secondary not accessible
    (983, ErrorKind::CONNECTION),   // AG replica not in the right role
    (40549, ErrorKind::TIMEOUT),    // Azure: long-running transaction ended
    (41302, ErrorKind::CONFLICT),   // in-memory table update conflict
];

/// Error numbers that will not go away by retrying.
const PERMANENT: &[(u32, ErrorKind)] = &[
    (18456, ErrorKind::AUTH),      // login failed
    (4060, ErrorKind::CONFIG),     // cannot open the database named in the login
    (229, ErrorKind::SCHEMA),      // permission denied on one object: its table waits, others go on
    (208, ErrorKind::SCHEMA),      // invalid object name
    (207, ErrorKind::SCHEMA),      // invalid column name
    (2627, ErrorKind::CONSTRAINT), // unique constraint (not the merge key)
    (2601, ErrorKind::CONSTRAINT), // unique index (not the merge key)
    (515, ErrorKind::CONSTRAINT),  // NULL into a NOT NULL column
    (547, ErrorKind::CONSTRAINT),  // foreign key or check constraint
    (8152, ErrorKind::DATA),       // string or binary data would be truncated
    (2628, ErrorKind::DATA),       // … truncated in table/column (SQL Server 2019+)
    (245, ErrorKind::DATA),        // conversion failed
    (8114, ErrorKind::DATA),       // error converting data type
    (8115, ErrorKind::DATA),       // arithmetic overflow
    (242, ErrorKind::DATA),        // out-of-range datetime
];

/// Turns a tiberius error into a classified [`PluginError`], keeping the
/// server's number, state, class and message.
pub fn classify(error: tiberius::error::Error) -> PluginError {
    use tiberius::error::Error as E;
    match error {
        E::Server(token) => {
            let message = format!("{} (state {}, class {})", token.message(), token.state(), token.class());
            let classified = match token.class() {
                // Severity 20 and up: the server closed the session.
                20.. => PluginError::retryable(ErrorKind::CONNECTION, message),
                _ => from_number(token.code(), &message),
            };
            classified.with_code(token.code().to_string())
        }
        E::Io { kind, message } => {
            PluginError::retryable(ErrorKind::CONNECTION, format!("cannot reach SQL Server: {message} ({kind:?})"))
        }
        E::Routing { host, port } => PluginError::retryable(
            ErrorKind::CONNECTION,
            format!("SQL Server redirected the connection to {host}:{port}"),
        ),
        E::Tls(message) => PluginError::permanent(
            ErrorKind::CONFIG,
            format!(
                "TLS with SQL Server failed: {message} (database.encrypt, database.trust_server_certificate, database.ssl_ca)"
            ),
        ),
        E::Protocol(message) => PluginError::retryable(ErrorKind::CONNECTION, format!("TDS protocol error: {message}")),
        E::Conversion(message) | E::Encoding(message) => PluginError::permanent(ErrorKind::DATA, message.to_string()),
        other => PluginError::permanent(ErrorKind::OTHER, other.to_string()),
    }
}

/// Classifies a server error number.
pub fn from_number(number: u32, message: &str) -> PluginError {
    if let Some((_, kind)) = RETRYABLE.iter().find(|(n, _)| *n == number) {
        return PluginError::retryable(*kind, message);
    }
    let kind = PERMANENT.iter().find(|(n, _)| *n == number).map_or(ErrorKind::OTHER, |(_, k)| *k);
    PluginError::permanent(kind, message)
}

/// Unique key (2627) and unique index (2601) violations.
const DUPLICATE_KEY: &[&str] = &["2627", "2601"];

/// What a failed plain insert means: a key that exists is a DATA error of
/// that row (the insert action never overwrites), said as every plugin says
/// it, with the server's number kept as the code. Other errors are as
/// [`classify`] made them. Only for the insert action: in an upsert or an
/// update the key is matched first, so a violation there is of another
/// unique index, a CONSTRAINT error.
pub fn existing_key(error: PluginError) -> PluginError {
    if !DUPLICATE_KEY.contains(&error.code.as_str()) {
        return error;
    }
    PluginError::permanent(ErrorKind::DATA, format!("insert: a row with this key exists ({})", error.message))
        .with_code(error.code.as_str())
}

/// Whether the connection is unusable after `error` (so the writer
/// reconnects before its next call).
pub fn breaks_connection(error: &PluginError) -> bool {
    error.kind == ErrorKind::CONNECTION || error.kind == ErrorKind::TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_number_is_classified() {
        for (number, retryable, kind) in [
            (1205, true, ErrorKind::CONFLICT),
            (1222, true, ErrorKind::CONFLICT),
            (40613, true, ErrorKind::CONNECTION),
            (40501, true, ErrorKind::CONNECTION),
            (49918, true, ErrorKind::CONNECTION),
            (18456, false, ErrorKind::AUTH),
            (208, false, ErrorKind::SCHEMA),
            (207, false, ErrorKind::SCHEMA),
            (2627, false, ErrorKind::CONSTRAINT),
            (2601, false, ErrorKind::CONSTRAINT),
            (8152, false, ErrorKind::DATA),
            (2628, false, ErrorKind::DATA),
            (245, false, ErrorKind::DATA),
            (8114, false, ErrorKind::DATA),
            (50000, false, ErrorKind::OTHER),
        ] {
            let e = from_number(number, "m");
            assert_eq!((e.retryable, e.kind), (retryable, kind), "{number}");
        }
    }

    #[test]
    fn a_lock_timeout_is_a_conflict_that_keeps_the_connection() {
        // As SQL Server words it; class 16, so not a lost session.
        let e = from_number(1222, "Lock request time out period exceeded. (state 51, class 16)");
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONFLICT, true));
        assert!(!breaks_connection(&e), "the session stays usable after 1222");
        let e = from_number(1205, "Transaction (Process ID 52) was deadlocked … (state 51, class 13)");
        assert_eq!((e.kind, e.retryable), (ErrorKind::CONFLICT, true));
        assert!(!breaks_connection(&e));
    }

    #[test]
    fn an_existing_key_on_insert_is_a_data_error_with_the_servers_number() {
        for number in [2627, 2601] {
            let e = existing_key(
                from_number(number, "Violation of PRIMARY KEY constraint 'PK_t'.").with_code(number.to_string()),
            );
            assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::DATA, false, number.to_string().as_str()));
            assert_eq!(
                e.message.as_str(),
                "insert: a row with this key exists (Violation of PRIMARY KEY constraint 'PK_t'.)"
            );
        }
        let other = existing_key(from_number(515, "NULL").with_code("515"));
        assert_eq!(
            (other.kind, other.message.as_str()),
            (ErrorKind::CONSTRAINT, "NULL"),
            "other errors stay as they are"
        );
    }
}
