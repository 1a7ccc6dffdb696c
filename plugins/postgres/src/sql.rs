//! SQL text for PostgreSQL, as pure functions.
//!
//! Only identifiers from the operator's config (the schema, tables,
//! columns) and type names from the catalog are written into SQL text,
//! identifiers always quoted and schema-qualified (`"public"."HIS_payments"`).
//! Values are bound as `$n` parameters (see [`crate::values`]).

use std::{ops::Range, time::Duration};

use his_plugin_api::HisZone;

/// The protocol's limit on parameters in one statement (a 16-bit count).
pub const MAX_PARAMETERS: usize = 65_535;

/// Quotes an identifier: `a"b` becomes `"a""b"`.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn table(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// A string literal, for the few settings `SET` takes only as literals.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What each new connection runs first, in one round trip: the statement
/// and lock timeouts (a lock wait ends as 55P03, a retryable conflict, well
/// before the statement timeout) and the HIS's time zone, in which
/// PostgreSQL converts between instants and wall-clock times. The
/// application name goes in the startup message.
pub fn session_setup(statement_timeout: Duration, lock_timeout: Duration, zone: HisZone) -> String {
    format!(
        "SET statement_timeout = {}; SET lock_timeout = {}; SET TIME ZONE {}",
        statement_timeout.as_millis(),
        lock_timeout.as_millis(),
        time_zone(zone)
    )
}

/// The HIS's zone as `SET TIME ZONE` takes it. An offset is written as an
/// interval: as a string, PostgreSQL would read `+05:30` as a POSIX zone,
/// west of Greenwich.
fn time_zone(zone: HisZone) -> String {
    match zone {
        HisZone::Fixed(offset) if offset.local_minus_utc() == 0 => "'UTC'".into(),
        HisZone::Fixed(offset) => format!("INTERVAL {} HOUR TO MINUTE", literal(&offset.to_string())),
        HisZone::Named(zone) => literal(zone.name()),
    }
}

/// The `BEGIN` of a write: with `limit` (what is left of the call's
/// deadline, or the statement timeout if shorter) as this transaction's
/// statement timeout, and the lock timeout below it, so that the server
/// stops a statement before the middleware gives up on the connection.
pub fn begin(limit: Duration, lock_timeout: Duration) -> String {
    let statement = limit.as_millis().max(1);
    // A lock wait must end as a conflict before the statement times out.
    let lock = lock_timeout.as_millis().min(statement * 3 / 4).max(1);
    format!("BEGIN; SET LOCAL statement_timeout = {statement}; SET LOCAL lock_timeout = {lock}")
}

/// `INSERT INTO t (cols) VALUES (…), (…)`: `rows` holds each row's value
/// expressions.
pub fn insert(table: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let columns = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let values = rows.iter().map(|row| format!("({})", row.join(", "))).collect::<Vec<_>>().join(", ");
    format!("INSERT INTO {table} ({columns}) VALUES {values}")
}

/// ` ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.c, …`, or `DO NOTHING`
/// when every column is a key column.
pub fn on_conflict(columns: &[&str], key_columns: &[&str]) -> String {
    let keys = key_columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let updates: Vec<String> =
        columns.iter().filter(|c| !key_columns.contains(c)).map(|c| format!("{0} = EXCLUDED.{0}", quote(c))).collect();
    match updates.is_empty() {
        true => format!(" ON CONFLICT ({keys}) DO NOTHING"),
        false => format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", updates.join(", ")),
    }
}

/// `UPDATE t SET a = e, … WHERE k = e AND …`.
pub fn update(table: &str, set: &[(&str, String)], keys: &[(&str, String)]) -> String {
    let set = set.iter().map(|(c, e)| format!("{} = {e}", quote(c))).collect::<Vec<_>>().join(", ");
    format!("UPDATE {table} SET {set} WHERE {}", matching(keys))
}

/// `DELETE FROM t WHERE k = e AND …`.
pub fn delete(table: &str, keys: &[(&str, String)]) -> String {
    format!("DELETE FROM {table} WHERE {}", matching(keys))
}

/// `SELECT 1 FROM t WHERE k = e AND … FOR UPDATE`: whether the row
/// exists, locked as an update would lock it.
pub fn exists(table: &str, keys: &[(&str, String)]) -> String {
    format!("SELECT 1 FROM {table} WHERE {} FOR UPDATE", matching(keys))
}

fn matching(keys: &[(&str, String)]) -> String {
    keys.iter().map(|(c, e)| format!("{} = {e}", quote(c))).collect::<Vec<_>>().join(" AND ")
}

/// Splits `rows` rows of `column_count` values each into consecutive
/// ranges that each fit one statement: at most [`MAX_PARAMETERS`]
/// parameters (NULLs, which take none, are counted as if they did).
pub fn statement_ranges(rows: usize, column_count: usize) -> Vec<Range<usize>> {
    let per_statement = (MAX_PARAMETERS / column_count.max(1)).max(1);
    (0..rows).step_by(per_statement).map(|start| start..(start + per_statement).min(rows)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_inside_names_are_doubled() {
        assert_eq!(quote("HIS_status"), "\"HIS_status\"");
        assert_eq!(quote("a\"; DROP TABLE x; --"), "\"a\"\"; DROP TABLE x; --\"");
        assert_eq!(table("his", "HIS_payments"), "\"his\".\"HIS_payments\"");
    }

    #[test]
    fn the_seed_payment_upsert() {
        let columns = ["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"];
        assert_eq!(
            on_conflict(&columns, &["HIS_payment_id"]),
            " ON CONFLICT (\"HIS_payment_id\") DO UPDATE SET \"HIS_amount\" = EXCLUDED.\"HIS_amount\", \
             \"HIS_payment_status\" = EXCLUDED.\"HIS_payment_status\", \"HIS_paid_at\" = EXCLUDED.\"HIS_paid_at\""
        );
        assert_eq!(on_conflict(&["k"], &["k"]), " ON CONFLICT (\"k\") DO NOTHING");
        let rows = vec![vec!["$1::int8".to_string(), "NULL".to_string()], vec!["$2::int8".into(), "$3::text".into()]];
        assert_eq!(
            insert("\"public\".\"t\"", &["k", "v"], &rows),
            "INSERT INTO \"public\".\"t\" (\"k\", \"v\") VALUES ($1::int8, NULL), ($2::int8, $3::text)"
        );
    }

    #[test]
    fn each_session_has_its_timeouts_and_the_his_zone() {
        let (s, l) = (Duration::from_secs(60), Duration::from_secs(5));
        assert_eq!(
            session_setup(s, l, HisZone::utc()),
            "SET statement_timeout = 60000; SET lock_timeout = 5000; SET TIME ZONE 'UTC'"
        );
        assert!(
            session_setup(s, l, "+05:30".parse().unwrap()).ends_with("SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE")
        );
        assert!(session_setup(s, l, "-08:00".parse().unwrap()).ends_with("INTERVAL '-08:00' HOUR TO MINUTE"));
        assert!(session_setup(s, l, "Asia/Kolkata".parse().unwrap()).ends_with("SET TIME ZONE 'Asia/Kolkata'"));
    }

    #[test]
    fn a_write_keeps_its_deadline_and_lock_waits_end_first() {
        assert_eq!(
            begin(Duration::from_secs(60), Duration::from_secs(5)),
            "BEGIN; SET LOCAL statement_timeout = 60000; SET LOCAL lock_timeout = 5000"
        );
        // A deadline shorter than the lock timeout: the lock wait still ends first.
        assert_eq!(
            begin(Duration::from_millis(2000), Duration::from_secs(5)),
            "BEGIN; SET LOCAL statement_timeout = 2000; SET LOCAL lock_timeout = 1500"
        );
        assert!(
            begin(Duration::ZERO, Duration::from_secs(5))
                .ends_with("statement_timeout = 1; SET LOCAL lock_timeout = 1")
        );
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(statement_ranges(40_000, 4), [0..16_383, 16_383..32_766, 32_766..40_000]);
        assert_eq!(statement_ranges(10_000, 7), [0..9_362, 9_362..10_000]);
        assert_eq!(statement_ranges(3, 70_000), [0..1, 1..2, 2..3], "a row wider than the limit goes alone");
        assert!(statement_ranges(0, 2).is_empty());
    }
}
