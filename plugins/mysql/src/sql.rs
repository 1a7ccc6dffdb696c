//! SQL text for MySQL and MariaDB, as pure functions.
//!
//! Only identifiers from the operator's config are written into SQL text,
//! always quoted with backticks. Values are bound as `?` parameters.

use std::ops::Range;

use his_plugin_api::{Value, ValueRef};

/// The protocol's limit on parameters in one prepared statement.
pub const MAX_PARAMETERS: usize = 65_535;

/// Quotes an identifier: ``a`b`` becomes ``​`a``b`​``.
pub fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// What each new connection runs first, in one statement:
/// - strict mode, so that a value that does not fit its column is an
///   error, never a silent truncation, whatever the server's default;
/// - the lock timeout, for row locks (`innodb_lock_wait_timeout`) and for
///   a table locked whole or being altered (`lock_wait_timeout`, metadata
///   locks): a write waits that long for another session, then fails with
///   1205, a retryable conflict, well before the statement timeout.
pub fn session_setup(lock_timeout_secs: u64) -> String {
    format!(
        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'), \
         SESSION innodb_lock_wait_timeout = {lock_timeout_secs}, SESSION lock_wait_timeout = {lock_timeout_secs}"
    )
}

/// `INSERT INTO t (cols) ` — the part before `VALUES`.
pub fn insert_head(table: &str, columns: &[&str]) -> String {
    let columns = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    format!("INSERT INTO {} ({columns}) ", quote(table))
}

/// ` ON DUPLICATE KEY UPDATE c = VALUES(c), …` — the part after the rows.
///
/// The `VALUES(col)` form is the one both MariaDB and MySQL 8 accept. When
/// every column is a key column there is nothing to update, and a no-op
/// assignment keeps the statement valid without `INSERT IGNORE` (which
/// would also hide real errors, such as a value too long for its column).
pub fn on_duplicate_tail(columns: &[&str], key_columns: &[&str]) -> String {
    let updates: Vec<String> =
        columns.iter().filter(|c| !key_columns.contains(c)).map(|c| format!("{0} = VALUES({0})", quote(c))).collect();
    match updates.is_empty() {
        true => format!(" ON DUPLICATE KEY UPDATE {0} = {0}", quote(key_columns[0])),
        false => format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", ")),
    }
}

/// `UPDATE t SET a = ?, … WHERE k = ? AND …`: the set columns' values
/// first, then the keys'.
pub fn update(table: &str, set_columns: &[&str], key_columns: &[&str]) -> String {
    let set = set_columns.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", ");
    format!("UPDATE {} SET {set} WHERE {}", quote(table), matching(key_columns))
}

/// `DELETE FROM t WHERE k = ? AND …`.
pub fn delete(table: &str, key_columns: &[&str]) -> String {
    format!("DELETE FROM {} WHERE {}", quote(table), matching(key_columns))
}

/// `SELECT 1 FROM t WHERE k = ? AND … FOR UPDATE`: whether the row exists,
/// locked like an update would lock it.
pub fn exists(table: &str, key_columns: &[&str]) -> String {
    format!("SELECT 1 FROM {} WHERE {} FOR UPDATE", quote(table), matching(key_columns))
}

fn matching(key_columns: &[&str]) -> String {
    key_columns.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(" AND ")
}

/// About how many bytes a value adds to a statement's packet.
fn value_bytes(value: &Value) -> usize {
    match value.get() {
        ValueRef::Text(s) | ValueRef::Decimal(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => s.len() + 9,
        ValueRef::Bytes(b) => b.len() + 9,
        _ => 9,
    }
}

/// Splits `rows` (each `column_count` values) into consecutive ranges that
/// each fit one statement: at most [`MAX_PARAMETERS`] parameters and about
/// `max_bytes` bytes. A single row larger than `max_bytes` is a range of
/// its own (the server then says whether it fits).
pub fn statement_ranges(rows: &[&[Value]], column_count: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let max_rows = (MAX_PARAMETERS / column_count.max(1)).max(1);
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let row_bytes: usize = row.iter().map(value_bytes).sum();
        if i > start && (i - start == max_rows || bytes + row_bytes > max_bytes) {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += row_bytes;
    }
    if start < rows.len() {
        ranges.push(start..rows.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_inside_names_are_doubled() {
        assert_eq!(quote("HIS_status"), "`HIS_status`");
        assert_eq!(quote("a`; DROP TABLE x; --"), "`a``; DROP TABLE x; --`");
    }

    #[test]
    fn the_seed_payment_upsert() {
        let columns = ["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"];
        assert_eq!(
            insert_head("HIS_payments", &columns),
            "INSERT INTO `HIS_payments` (`HIS_payment_id`, `HIS_amount`, `HIS_payment_status`, `HIS_paid_at`) "
        );
        assert_eq!(
            on_duplicate_tail(&columns, &["HIS_payment_id"]),
            " ON DUPLICATE KEY UPDATE `HIS_amount` = VALUES(`HIS_amount`), \
             `HIS_payment_status` = VALUES(`HIS_payment_status`), `HIS_paid_at` = VALUES(`HIS_paid_at`)"
        );
        assert_eq!(on_duplicate_tail(&["k"], &["k"]), " ON DUPLICATE KEY UPDATE `k` = `k`");
    }

    #[test]
    fn each_session_is_strict_and_waits_for_locks_at_most_the_lock_timeout() {
        assert_eq!(
            session_setup(5),
            "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'), \
             SESSION innodb_lock_wait_timeout = 5, SESSION lock_wait_timeout = 5"
        );
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        let row = vec![Value::int(1); 4];
        let rows: Vec<&[Value]> = vec![&row[..]; 40_000];
        let ranges = statement_ranges(&rows, 4, usize::MAX);
        assert_eq!(ranges, [0..16_383, 16_383..32_766, 32_766..40_000]);
        assert!(ranges.iter().all(|r| r.len() * 4 <= MAX_PARAMETERS));
    }

    #[test]
    fn statements_stay_under_the_byte_limit() {
        let big = [Value::int(1), Value::text("x".repeat(1_000_000))];
        let small = [Value::int(2), Value::text("y")];
        let rows: Vec<&[Value]> = vec![&small[..], &big[..], &big[..], &small[..], &small[..]];
        assert_eq!(statement_ranges(&rows, 2, 1_500_000), [0..2, 2..5]);
        // A row larger than the limit still goes, alone.
        assert_eq!(statement_ranges(&rows[1..2], 2, 100), vec![0..1_usize]);
        assert!(statement_ranges(&[], 2, 100).is_empty());
    }
}
