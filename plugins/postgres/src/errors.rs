//! PostgreSQL errors, classified by SQLSTATE: retry later, or give up on
//! this row.

use his_plugin_api::{ErrorKind, PluginError, Value, ValueRef};

/// Classifies a SQLSTATE (five characters: a two-character class, then the
/// condition). Returns whether a retry can get past it, and its kind.
///
/// Another session's lock (55P03, what `lock_timeout` raises), a deadlock
/// or a serialization failure is a CONFLICT: only the rows involved wait.
/// A statement timeout (57014) is TIMEOUT, which makes the host back off
/// as a whole. A value a column refuses (class 22) fails its row as DATA;
/// a constraint (class 23) as CONSTRAINT, except an insert's own key,
/// which the writer turns into DATA ("this key has a row").
pub fn from_sqlstate(code: &str) -> (bool, ErrorKind) {
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        (_, "40001" | "40P01") => (true, ErrorKind::CONFLICT), // serialization failure, deadlock
        (_, "40002") => (false, ErrorKind::CONSTRAINT),        // a deferred constraint, at commit
        (_, "40003") => (true, ErrorKind::CONNECTION),         // statement completion unknown
        ("40", _) => (true, ErrorKind::CONFLICT),              // another transaction rollback
        (_, "55P03" | "55006") => (true, ErrorKind::CONFLICT), // lock not available, object in use
        (_, "57014") => (true, ErrorKind::TIMEOUT),            // statement timeout (or a cancel)
        (_, "57P04") => (false, ErrorKind::CONFIG),            // the database was dropped
        ("57", _) => (true, ErrorKind::CONNECTION),            // shutdown, crash, cannot connect now
        ("08", _) => (true, ErrorKind::CONNECTION),            // connection exception
        ("53", _) => (true, ErrorKind::CONNECTION),            // too many connections, out of memory, disk full
        ("58", _) => (true, ErrorKind::CONNECTION),            // the server's I/O
        (_, "25006") => (true, ErrorKind::CONNECTION),         // read-only: a standby, failover in progress
        ("28", _) => (false, ErrorKind::AUTH),                 // invalid authorization (password, pg_hba)
        (_, "3D000") => (false, ErrorKind::CONFIG),            // no such database
        (_, "3F000") => (false, ErrorKind::SCHEMA),            // no such schema
        // A value of a kind its column cannot take (a bool into a date):
        // the value's fault, which can differ from event to event.
        (_, "42804" | "42846" | "42883") => (false, ErrorKind::DATA),
        ("42", _) => (false, ErrorKind::SCHEMA), // no table (42P01), column (42703), right (42501), key (42P10)
        ("22", _) => (false, ErrorKind::DATA),   // too long, out of range, invalid text for the type
        (_, "21000") => (false, ErrorKind::DATA), // one row affected twice
        ("23", _) => (false, ErrorKind::CONSTRAINT), // not null, unique, foreign key, check
        ("44", _) => (false, ErrorKind::CONSTRAINT), // a view's WITH CHECK OPTION
        ("P0", _) => (false, ErrorKind::DATA),   // a trigger of the HIS refused the row (RAISE)
        ("0A", _) => (false, ErrorKind::UNSUPPORTED),
        _ => (false, ErrorKind::OTHER),
    }
}

/// The parts of a server error the writer uses to name a row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerError {
    /// The SQLSTATE.
    pub code: String,
    /// `DETAIL`, such as `Key (id)=(10) already exists.`
    pub detail: Option<String>,
    /// The column, for a not-null violation.
    pub column: Option<String>,
}

/// Turns an sqlx error into a classified [`PluginError`], keeping the
/// server's message and SQLSTATE; and the server's error, if it was one.
pub fn classify(error: sqlx::Error) -> (PluginError, Option<ServerError>) {
    use sqlx::Error as E;
    match error {
        E::Database(db) => {
            let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() else {
                return (PluginError::permanent(ErrorKind::OTHER, db.message().to_string()), None);
            };
            let (retryable, kind) = from_sqlstate(pg.code());
            let mut message = pg.message().to_string();
            if let Some(detail) = pg.detail() {
                message = format!("{message}: {detail}");
            }
            let error = match retryable {
                true => PluginError::retryable(kind, message),
                false => PluginError::permanent(kind, message),
            }
            .with_code(pg.code());
            let server = ServerError {
                code: pg.code().to_string(),
                detail: pg.detail().map(str::to_string),
                column: pg.column().map(str::to_string),
            };
            (error, Some(server))
        }
        other => (from_client(other), None),
    }
}

/// [`classify`], without the server's error.
pub fn plain(error: sqlx::Error) -> PluginError {
    classify(error).0
}

/// An error of the client side: the network, TLS, the pool.
fn from_client(error: sqlx::Error) -> PluginError {
    use sqlx::Error as E;
    match error {
        // rustls's refusal of the server's certificate comes as an I/O
        // error; retrying cannot help, the settings or the server must change.
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => PluginError::permanent(
            ErrorKind::CONFIG,
            format!("TLS with the PostgreSQL server failed: {e} (database.sslmode, database.ssl_ca)"),
        ),
        E::Io(e) => PluginError::retryable(ErrorKind::CONNECTION, format!("cannot reach the PostgreSQL server: {e}")),
        E::Tls(e) => PluginError::permanent(
            ErrorKind::CONFIG,
            format!("TLS with the PostgreSQL server failed: {e} (database.sslmode, database.ssl_ca)"),
        ),
        E::PoolTimedOut => PluginError::retryable(ErrorKind::TIMEOUT, "timed out connecting to the PostgreSQL server"),
        E::PoolClosed | E::WorkerCrashed => PluginError::retryable(ErrorKind::CONNECTION, error.to_string()),
        E::Protocol(message) => {
            PluginError::retryable(ErrorKind::CONNECTION, format!("PostgreSQL protocol error: {message}"))
        }
        E::Configuration(e) => PluginError::permanent(ErrorKind::CONFIG, e.to_string()),
        other => PluginError::permanent(ErrorKind::OTHER, other.to_string()),
    }
}

/// The row at fault among `rows` (the batch's rows a multi-row statement
/// wrote, in order), when the server's error says which:
/// - a unique violation's detail gives the key: `Key (a, b)=(1, x) already
///   exists.`; the row whose values print so is named;
/// - a not-null violation gives the column: the first row with NULL in it
///   (or without it).
///
/// `value(row, column)` is a row's value for a column name, if the
/// statement wrote it. `None` when no row can be told.
pub fn row_of<'v>(
    server: &ServerError,
    rows: &[usize],
    value: impl Fn(usize, &str) -> Option<&'v Value>,
) -> Option<usize> {
    match server.code.as_str() {
        "23502" => {
            let column = server.column.as_deref()?;
            // NULL in that column, or the column left out of the insert.
            rows.iter().copied().find(|&row| value(row, column).is_none_or(|v| matches!(v.get(), ValueRef::Null)))
        }
        "23505" => {
            let (columns, values) = key_in_detail(server.detail.as_deref()?)?;
            let mut found = rows.iter().copied().filter(|&row| {
                let shown: Option<Vec<String>> =
                    columns.iter().map(|c| value(row, c).and_then(as_postgres_prints)).collect();
                shown.is_some_and(|shown| shown.join(", ") == values)
            });
            let row = found.next()?;
            found.next().is_none().then_some(row)
        }
        _ => None,
    }
}

/// `Key (a, "B")=(1, x) already exists.` → (`["a", "B"]`, `"1, x"`).
fn key_in_detail(detail: &str) -> Option<(Vec<String>, &str)> {
    let rest = detail.strip_prefix("Key (")?;
    let (columns, rest) = rest.split_once(")=(")?;
    let values = rest.strip_suffix(") already exists.")?;
    let columns = columns
        .split(", ")
        .map(|c| {
            c.strip_prefix('"').and_then(|c| c.strip_suffix('"')).map_or(c.to_string(), |c| c.replace("\"\"", "\""))
        })
        .collect();
    Some((columns, values))
}

/// A key value as PostgreSQL prints it in a detail, for the kinds that
/// print as sent.
fn as_postgres_prints(value: &Value) -> Option<String> {
    match value.get() {
        ValueRef::Int(i) => Some(i.to_string()),
        ValueRef::Text(s) | ValueRef::Date(s) => Some(s.to_string()),
        ValueRef::Bool(b) => Some(if b { "t" } else { "f" }.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_a_settings_error_and_a_lost_connection_is_retried() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, refused));
        let e = plain(e);
        assert!(!e.retryable);
        assert_eq!(e.kind, ErrorKind::CONFIG);
        assert!(
            e.message.starts_with("TLS with the PostgreSQL server failed: invalid peer certificate: UnknownIssuer"),
            "{}",
            e.message
        );
        let e = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = plain(e);
        assert!(e.retryable);
        assert_eq!(e.kind, ErrorKind::CONNECTION);
    }

    #[test]
    fn every_sqlstate_class_is_classified() {
        for (code, retryable, kind) in [
            ("08006", true, ErrorKind::CONNECTION),  // connection failure
            ("08001", true, ErrorKind::CONNECTION),  // cannot establish
            ("40001", true, ErrorKind::CONFLICT),    // serialization failure
            ("40P01", true, ErrorKind::CONFLICT),    // deadlock
            ("55P03", true, ErrorKind::CONFLICT),    // lock timeout
            ("57014", true, ErrorKind::TIMEOUT),     // statement timeout
            ("57P01", true, ErrorKind::CONNECTION),  // admin shutdown
            ("57P03", true, ErrorKind::CONNECTION),  // the database system is starting up
            ("53300", true, ErrorKind::CONNECTION),  // too many connections
            ("25006", true, ErrorKind::CONNECTION),  // read-only transaction
            ("28P01", false, ErrorKind::AUTH),       // password authentication failed
            ("28000", false, ErrorKind::AUTH),       // no pg_hba.conf entry
            ("3D000", false, ErrorKind::CONFIG),     // database does not exist
            ("42P01", false, ErrorKind::SCHEMA),     // undefined table
            ("42703", false, ErrorKind::SCHEMA),     // undefined column
            ("42501", false, ErrorKind::SCHEMA),     // permission denied on a table
            ("42P10", false, ErrorKind::SCHEMA),     // no unique index for ON CONFLICT
            ("42804", false, ErrorKind::DATA),       // a value of the wrong kind for its column
            ("22001", false, ErrorKind::DATA),       // value too long
            ("22003", false, ErrorKind::DATA),       // numeric out of range
            ("22P02", false, ErrorKind::DATA),       // invalid text for the type
            ("22007", false, ErrorKind::DATA),       // invalid datetime
            ("23505", false, ErrorKind::CONSTRAINT), // unique violation
            ("23502", false, ErrorKind::CONSTRAINT), // not null
            ("23503", false, ErrorKind::CONSTRAINT), // foreign key
            ("23514", false, ErrorKind::CONSTRAINT), // check
            ("P0001", false, ErrorKind::DATA),       // RAISE in a trigger
            ("0A000", false, ErrorKind::UNSUPPORTED),
            ("XX000", false, ErrorKind::OTHER),
        ] {
            assert_eq!(from_sqlstate(code), (retryable, kind), "{code}");
        }
    }

    #[test]
    fn client_errors_are_classified() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = plain(sqlx::Error::Io(refused));
        assert_eq!((e.retryable, e.kind), (true, ErrorKind::CONNECTION));
        let e = plain(sqlx::Error::PoolTimedOut);
        assert_eq!((e.retryable, e.kind), (true, ErrorKind::TIMEOUT));
    }

    #[test]
    fn the_row_at_fault_is_read_from_the_detail() {
        let rows: Vec<Vec<(&str, Value)>> = vec![
            vec![("id", Value::int(1)), ("Ref", Value::text("a, b")), ("note", Value::text("x"))],
            vec![("id", Value::int(2)), ("Ref", Value::text("c")), ("note", Value::null())],
            vec![("id", Value::int(3)), ("Ref", Value::text("d")), ("note", Value::null())],
        ];
        let value = |row: usize, column: &str| rows[row].iter().find(|(c, _)| *c == column).map(|(_, v)| v);
        let unique = |detail: &str| ServerError { code: "23505".into(), detail: Some(detail.into()), column: None };
        let all = [0, 1, 2];
        assert_eq!(row_of(&unique("Key (id)=(2) already exists."), &all, value), Some(1));
        assert_eq!(row_of(&unique("Key (id, \"Ref\")=(1, a, b) already exists."), &all, value), Some(0));
        assert_eq!(row_of(&unique("Key (id)=(9) already exists."), &all, value), None);
        assert_eq!(row_of(&unique("Key (lower(x))=(a) already exists."), &all, value), None);
        let null = ServerError { code: "23502".into(), detail: None, column: Some("note".into()) };
        assert_eq!(row_of(&null, &all, value), Some(1));
        assert_eq!(row_of(&null, &[2], value), Some(2));
        let too_long = ServerError { code: "22001".into(), ..Default::default() };
        assert_eq!(row_of(&too_long, &all, value), None);
    }
}
