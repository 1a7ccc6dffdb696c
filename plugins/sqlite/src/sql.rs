//! SQL text for SQLite, as pure functions: quoting and the upsert statement.
//!
//! Only identifiers from the operator's config are ever written into SQL
//! text, always quoted. Values are bound as `?` parameters.

/// SQLite's limit on bound parameters in one statement (SQLITE_MAX_VARIABLE_NUMBER
/// since 3.32).
pub const MAX_PARAMETERS: usize = 32_766;

/// Quotes an identifier: `a"b` becomes `"a""b"`.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The most rows one statement can carry with `column_count` columns.
pub fn max_rows_per_statement(column_count: usize) -> usize {
    (MAX_PARAMETERS / column_count.max(1)).max(1)
}

/// `INSERT INTO t (cols) VALUES (?,…),… ON CONFLICT (keys) DO UPDATE SET …`
/// for `row_count` rows. Rows are applied in order, so the last row for a
/// key wins. When every column is a key column there is nothing to update.
pub fn upsert(table: &str, columns: &[&str], key_columns: &[&str], row_count: usize) -> String {
    let column_list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
    let rows = vec![placeholders.as_str(); row_count].join(", ");
    let keys = key_columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let updates: Vec<String> =
        columns.iter().filter(|c| !key_columns.contains(c)).map(|c| format!("{0} = excluded.{0}", quote(c))).collect();
    let action = if updates.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", updates.join(", ")) };
    format!("INSERT INTO {} ({column_list}) VALUES {rows} ON CONFLICT ({keys}) DO {action}", quote(table))
}

/// `INSERT INTO t (cols) VALUES (?,…)`: one row, so that a key that exists
/// names its row.
pub fn insert(table: &str, columns: &[&str]) -> String {
    let column_list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    format!("INSERT INTO {} ({column_list}) VALUES ({})", quote(table), vec!["?"; columns.len()].join(", "))
}

/// `UPDATE t SET a = ?, … WHERE k = ? AND …`: the set columns' values come
/// first, then the keys'.
pub fn update(table: &str, set_columns: &[&str], key_columns: &[&str]) -> String {
    let set = set_columns.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", ");
    format!("UPDATE {} SET {set} WHERE {}", quote(table), matching(key_columns))
}

/// `DELETE FROM t WHERE k = ? AND …`.
pub fn delete(table: &str, key_columns: &[&str]) -> String {
    format!("DELETE FROM {} WHERE {}", quote(table), matching(key_columns))
}

/// `SELECT 1 FROM t WHERE k = ? AND …`.
pub fn exists(table: &str, key_columns: &[&str]) -> String {
    format!("SELECT 1 FROM {} WHERE {}", quote(table), matching(key_columns))
}

fn matching(key_columns: &[&str]) -> String {
    key_columns.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_double_quotes_inside_names() {
        assert_eq!(quote("HIS_status"), "\"HIS_status\"");
        assert_eq!(quote("a\"; DROP TABLE x; --"), "\"a\"\"; DROP TABLE x; --\"");
    }

    #[test]
    fn upsert_for_the_seed_appointment_mapping() {
        let sql = upsert(
            "HIS_appointments",
            &["HIS_appointment_id", "HIS_status", "HIS_created_at"],
            &["HIS_appointment_id"],
            2,
        );
        assert_eq!(
            sql,
            "INSERT INTO \"HIS_appointments\" (\"HIS_appointment_id\", \"HIS_status\", \"HIS_created_at\") \
             VALUES (?, ?, ?), (?, ?, ?) ON CONFLICT (\"HIS_appointment_id\") \
             DO UPDATE SET \"HIS_status\" = excluded.\"HIS_status\", \"HIS_created_at\" = excluded.\"HIS_created_at\""
        );
    }

    #[test]
    fn one_row_statements_for_the_other_actions() {
        assert_eq!(insert("t", &["k", "a"]), "INSERT INTO \"t\" (\"k\", \"a\") VALUES (?, ?)");
        assert_eq!(
            update("t", &["a", "b"], &["k", "j"]),
            "UPDATE \"t\" SET \"a\" = ?, \"b\" = ? WHERE \"k\" = ? AND \"j\" = ?"
        );
        assert_eq!(delete("t", &["k"]), "DELETE FROM \"t\" WHERE \"k\" = ?");
    }

    #[test]
    fn keys_only_do_nothing_on_conflict() {
        assert!(upsert("t", &["k"], &["k"], 1).ends_with("ON CONFLICT (\"k\") DO NOTHING"));
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(max_rows_per_statement(3), 10_922);
        assert!(max_rows_per_statement(3) * 3 <= MAX_PARAMETERS);
        assert_eq!(max_rows_per_statement(40_000), 1);
    }
}
