//! T-SQL text, as pure functions: quoting, the MERGE upsert, the one-row
//! insert, update, delete and existence check of the other write actions,
//! and how a batch is cut into statements.
//!
//! Only identifiers from the operator's config are written into SQL text,
//! always quoted with brackets. Values are bound as `@Pn` parameters.

use std::ops::Range;

/// SQL Server takes at most 2,100 parameters in one request; tiberius sends
/// the statement text and its declaration as two of them.
pub const MAX_VALUE_PARAMETERS: usize = 2_098;

/// Quotes an identifier: `a]b` becomes `[a]]b]`.
pub fn quote(identifier: &str) -> String {
    format!("[{}]", identifier.replace(']', "]]"))
}

/// What each new connection runs first, in one batch:
/// - `XACT_ABORT ON`: any error inside a transaction rolls all of it back;
/// - `LOCK_TIMEOUT`: a statement waits at most this long for a lock another
///   session holds (SQL Server's default, -1, waits forever), then fails
///   with 1222, a retryable conflict, well before the statement timeout.
pub fn session_setup(lock_timeout: std::time::Duration) -> String {
    format!("SET XACT_ABORT ON; SET LOCK_TIMEOUT {}", lock_timeout.as_millis())
}

/// The most rows one statement can carry with `column_count` columns.
pub fn max_rows_per_statement(column_count: usize) -> usize {
    (MAX_VALUE_PARAMETERS / column_count.max(1)).max(1)
}

/// Consecutive row ranges, each small enough for one statement.
pub fn statement_ranges(row_count: usize, column_count: usize) -> Vec<Range<usize>> {
    let step = max_rows_per_statement(column_count);
    (0..row_count).step_by(step).map(|start| start..(start + step).min(row_count)).collect()
}

/// `MERGE … WITH (HOLDLOCK)` for `row_count` rows, parameters numbered from
/// `@P1` row after row. HOLDLOCK makes the check-then-insert atomic, so
/// two writers never insert the same key twice.
pub fn merge(table: &str, columns: &[&str], key_columns: &[&str], row_count: usize) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let rows: Vec<String> = (0..row_count)
        .map(|row| {
            let params: Vec<String> =
                (0..columns.len()).map(|column| format!("@P{}", row * columns.len() + column + 1)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let on: Vec<String> = key_columns.iter().map(|k| format!("t.{0} = s.{0}", quote(k))).collect();
    let updates: Vec<String> =
        columns.iter().filter(|c| !key_columns.contains(c)).map(|c| format!("t.{0} = s.{0}", quote(c))).collect();
    let when_matched = match updates.is_empty() {
        true => String::new(),
        false => format!(" WHEN MATCHED THEN UPDATE SET {}", updates.join(", ")),
    };
    let inserted: Vec<String> = quoted.iter().map(|c| format!("s.{c}")).collect();
    format!(
        "MERGE INTO {table} WITH (HOLDLOCK) AS t USING (VALUES {rows}) AS s ({columns}) ON {on}{when_matched} \
         WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({inserted});",
        table = quote(table),
        rows = rows.join(", "),
        columns = quoted.join(", "),
        on = on.join(" AND "),
        inserted = inserted.join(", "),
    )
}

/// `INSERT INTO [t] ([a], [b]) VALUES (@P1, @P2)`: one row, of the
/// columns it carries. A plain insert, never a MERGE: a key that exists must
/// fail (2627 or 2601) rather than overwrite the row.
pub fn insert(table: &str, columns: &[&str]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!("INSERT INTO {} ({}) VALUES ({})", quote(table), quoted.join(", "), parameters(1, columns.len()).join(", "))
}

/// `UPDATE [t] SET [a] = @P1, … WHERE [k] = @Pn AND …`: the set columns'
/// values first, then the keys'.
///
/// With `hold_missing`, `WITH (HOLDLOCK)`: a key that matches no row keeps
/// its key range locked until the commit, so that the insert that follows
/// (an update with `if_missing: insert`) cannot meet a row another session
/// inserted in between, as MERGE's HOLDLOCK does for an upsert.
pub fn update(table: &str, set_columns: &[&str], key_columns: &[&str], hold_missing: bool) -> String {
    let set: Vec<String> =
        set_columns.iter().zip(parameters(1, set_columns.len())).map(|(c, p)| format!("{} = {p}", quote(c))).collect();
    let hint = if hold_missing { " WITH (HOLDLOCK)" } else { "" };
    format!(
        "UPDATE {}{hint} SET {} WHERE {}",
        quote(table),
        set.join(", "),
        matching(key_columns, set_columns.len() + 1)
    )
}

/// `DELETE FROM [t] WHERE [k] = @P1 AND …`: the key columns only.
pub fn delete(table: &str, key_columns: &[&str]) -> String {
    format!("DELETE FROM {} WHERE {}", quote(table), matching(key_columns, 1))
}

/// `SELECT 1 FROM [t] WITH (UPDLOCK, HOLDLOCK) WHERE [k] = @P1 AND …`:
/// whether the row exists, for an update that carries only its key (there
/// is nothing to set, so no affected-row count to read). Locked as an
/// update would lock it, and a missing key's range too, until the commit.
pub fn exists(table: &str, key_columns: &[&str]) -> String {
    format!("SELECT 1 FROM {} WITH (UPDLOCK, HOLDLOCK) WHERE {}", quote(table), matching(key_columns, 1))
}

/// `@P{first}`, `@P{first + 1}`, …: `count` parameters.
fn parameters(first: usize, count: usize) -> Vec<String> {
    (first..first + count).map(|n| format!("@P{n}")).collect()
}

/// `[k] = @Pn AND …`, numbered from `first`.
fn matching(key_columns: &[&str], first: usize) -> String {
    let each: Vec<String> = key_columns
        .iter()
        .zip(parameters(first, key_columns.len()))
        .map(|(k, p)| format!("{} = {p}", quote(k)))
        .collect();
    each.join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_aborts_on_errors_and_waits_for_locks_at_most_the_lock_timeout() {
        let setup = session_setup(std::time::Duration::from_secs(5));
        assert_eq!(setup, "SET XACT_ABORT ON; SET LOCK_TIMEOUT 5000");
    }

    #[test]
    fn brackets_inside_names_are_doubled() {
        assert_eq!(quote("HIS_status"), "[HIS_status]");
        assert_eq!(quote("a]; DROP TABLE x; --"), "[a]]; DROP TABLE x; --]");
    }

    #[test]
    fn the_seed_appointment_merge() {
        let sql = merge(
            "HIS_appointments",
            &["HIS_appointment_id", "HIS_status", "HIS_created_at"],
            &["HIS_appointment_id"],
            2,
        );
        assert_eq!(
            sql,
            "MERGE INTO [HIS_appointments] WITH (HOLDLOCK) AS t \
             USING (VALUES (@P1, @P2, @P3), (@P4, @P5, @P6)) AS s ([HIS_appointment_id], [HIS_status], [HIS_created_at]) \
             ON t.[HIS_appointment_id] = s.[HIS_appointment_id] \
             WHEN MATCHED THEN UPDATE SET t.[HIS_status] = s.[HIS_status], t.[HIS_created_at] = s.[HIS_created_at] \
             WHEN NOT MATCHED THEN INSERT ([HIS_appointment_id], [HIS_status], [HIS_created_at]) \
             VALUES (s.[HIS_appointment_id], s.[HIS_status], s.[HIS_created_at]);"
        );
    }

    #[test]
    fn keys_only_and_composite_keys() {
        let sql = merge("t", &["a", "b"], &["a", "b"], 1);
        assert!(sql.contains("ON t.[a] = s.[a] AND t.[b] = s.[b] WHEN NOT MATCHED"), "{sql}");
        assert!(!sql.contains("WHEN MATCHED THEN"), "{sql}");
    }

    #[test]
    fn statements_stay_under_2100_parameters() {
        assert_eq!(max_rows_per_statement(4), 524);
        assert_eq!(statement_ranges(1200, 4), [0..524, 524..1048, 1048..1200]);
        assert!(statement_ranges(1200, 4).iter().all(|r| r.len() * 4 + 2 <= 2100));
        assert_eq!(max_rows_per_statement(5000), 1);
        assert!(statement_ranges(0, 3).is_empty());
    }

    #[test]
    fn one_row_statements_for_the_other_actions() {
        let columns = ["HIS_appointment_id", "HIS_status", "HIS_created_at"];
        assert_eq!(
            insert("HIS_appointments", &columns),
            "INSERT INTO [HIS_appointments] ([HIS_appointment_id], [HIS_status], [HIS_created_at]) \
             VALUES (@P1, @P2, @P3)"
        );
        // A partial update sets only what the row carries; keys come last.
        assert_eq!(
            update("HIS_appointments", &["HIS_status"], &["HIS_appointment_id"], false),
            "UPDATE [HIS_appointments] SET [HIS_status] = @P1 WHERE [HIS_appointment_id] = @P2"
        );
        assert_eq!(
            update("t", &["a", "b"], &["k1", "k2"], true),
            "UPDATE [t] WITH (HOLDLOCK) SET [a] = @P1, [b] = @P2 WHERE [k1] = @P3 AND [k2] = @P4"
        );
        assert_eq!(
            delete("HIS_appointments", &["HIS_appointment_id"]),
            "DELETE FROM [HIS_appointments] WHERE [HIS_appointment_id] = @P1"
        );
        assert_eq!(
            exists("t", &["k1", "k2"]),
            "SELECT 1 FROM [t] WITH (UPDLOCK, HOLDLOCK) WHERE [k1] = @P1 AND [k2] = @P2"
        );
    }

    #[test]
    fn one_row_statements_quote_hostile_names() {
        let sql = update("x]; DROP TABLE y; --", &["a]b"], &["k"], false);
        assert_eq!(sql, "UPDATE [x]]; DROP TABLE y; --] SET [a]]b] = @P1 WHERE [k] = @P2");
        assert_eq!(insert("t", &["[c]"]), "INSERT INTO [t] ([[c]]]) VALUES (@P1)");
    }
}
