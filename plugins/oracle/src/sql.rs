//! Oracle SQL text, as pure functions: quoting, the row locks, the MERGE of
//! an upsert and the one-row statements of the other actions.
//!
//! Names are written as the data dictionary stores them (see
//! [`crate::dictionary`]), always quoted. Values are bound as `:n`, numbered
//! in the order they appear in the text, which is the order the writer
//! binds them in.

/// Quotes a stored identifier: `HIS_STATUS` becomes `"HIS_STATUS"`.
/// Oracle names cannot contain a double quote; the dictionary never gives one.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `MERGE INTO t USING (SELECT :1 c1, … FROM dual) s ON (…) WHEN MATCHED
/// THEN UPDATE … WHEN NOT MATCHED THEN INSERT …`, for one row: executed
/// with an array bind, it runs once per row in a single round trip.
/// `columns` are the ones the rows carry (one column set of the batch): a
/// column left out is neither updated nor inserted, so it keeps its value
/// or gets its default.
pub fn merge(table: &str, columns: &[&str], key_columns: &[&str]) -> String {
    let select: Vec<String> = columns.iter().enumerate().map(|(i, c)| format!(":{} {}", i + 1, quote(c))).collect();
    let on: Vec<String> = key_columns.iter().map(|k| format!("t.{0} = s.{0}", quote(k))).collect();
    let updates: Vec<String> =
        columns.iter().filter(|c| !key_columns.contains(c)).map(|c| format!("t.{0} = s.{0}", quote(c))).collect();
    let when_matched = match updates.is_empty() {
        true => String::new(),
        false => format!(" WHEN MATCHED THEN UPDATE SET {}", updates.join(", ")),
    };
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let inserted: Vec<String> = quoted.iter().map(|c| format!("s.{c}")).collect();
    format!(
        "MERGE INTO {} t USING (SELECT {} FROM dual) s ON ({}){when_matched} \
         WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        quote(table),
        select.join(", "),
        on.join(" AND "),
        quoted.join(", "),
        inserted.join(", ")
    )
}

/// `INSERT INTO t (a, b) VALUES (:1, :2)`: one row, with only the columns
/// it carries, so that an absent column gets its default.
pub fn insert(table: &str, columns: &[&str]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let binds: Vec<String> = (1..=columns.len()).map(|n| format!(":{n}")).collect();
    format!("INSERT INTO {} ({}) VALUES ({})", quote(table), quoted.join(", "), binds.join(", "))
}

/// `UPDATE t SET a = :1, … WHERE k = :n AND …`: the set columns' values
/// first, then the key's. Only the columns named are touched, which is what
/// a partial row and a soft-delete need. Oracle counts the rows the WHERE
/// matched, changed or not, so the row count says whether the key exists.
pub fn update(table: &str, set_columns: &[&str], key_columns: &[&str]) -> String {
    let set: Vec<String> = set_columns.iter().enumerate().map(|(i, c)| format!("{} = :{}", quote(c), i + 1)).collect();
    format!("UPDATE {} SET {} WHERE {}", quote(table), set.join(", "), matching(key_columns, set_columns.len()))
}

/// `DELETE FROM t WHERE k = :1 AND …`: by the key alone.
pub fn delete(table: &str, key_columns: &[&str]) -> String {
    format!("DELETE FROM {} WHERE {}", quote(table), matching(key_columns, 0))
}

/// `SELECT COUNT(*) FROM t WHERE k = :1 AND …`: whether the key exists,
/// for an update that carries no column but its key (so has no UPDATE to
/// count with).
pub fn count(table: &str, key_columns: &[&str]) -> String {
    format!("SELECT COUNT(*) FROM {} WHERE {}", quote(table), matching(key_columns, 0))
}

/// The columns an update or a soft-delete sets: the carried ones that are
/// not the key (by name, or by position among the batch's columns).
pub fn non_key<T: PartialEq + Copy>(columns: &[T], key_columns: &[T]) -> Vec<T> {
    columns.iter().copied().filter(|c| !key_columns.contains(c)).collect()
}

/// `k1 = :n+1 AND k2 = :n+2`, the key's binds numbered after `before` others.
fn matching(key_columns: &[&str], before: usize) -> String {
    let terms: Vec<String> =
        key_columns.iter().enumerate().map(|(i, k)| format!("{} = :{}", quote(k), before + i + 1)).collect();
    terms.join(" AND ")
}

/// The most rows one [`lock_rows`] statement names: single-column `IN`
/// lists take at most 1,000 expressions.
pub const MAX_LOCKED_ROWS: usize = 512;

/// `SELECT 1 FROM t WHERE k IN (:1, …) FOR UPDATE WAIT n` (with composite
/// keys, `(k1, k2) IN ((:1, :2), …)`), for `row_count` rows: run in the
/// batch's transaction before its MERGE, it locks the rows that exist, and
/// waits at most `wait_secs` for those another session holds: then it
/// fails with ORA-30006, a retryable conflict. The MERGE that follows finds
/// them locked by its own transaction, so it does not wait for them (a DML
/// statement has no WAIT clause: it would wait forever, until the call
/// timeout, which the host must read as an HIS that is unusable).
pub fn lock_rows(table: &str, key_columns: &[&str], row_count: usize, wait_secs: u64) -> String {
    let keys: Vec<String> = key_columns.iter().map(|k| quote(k)).collect();
    let tuple = |row: usize| {
        let binds: Vec<String> = (0..keys.len()).map(|k| format!(":{}", row * keys.len() + k + 1)).collect();
        binds.join(", ")
    };
    let (target, list): (String, Vec<String>) = match keys.len() {
        1 => (keys[0].clone(), (0..row_count).map(tuple).collect()),
        _ => (format!("({})", keys.join(", ")), (0..row_count).map(|row| format!("({})", tuple(row))).collect()),
    };
    format!("SELECT 1 FROM {} WHERE {target} IN ({}) FOR UPDATE WAIT {wait_secs}", quote(table), list.join(", "))
}

/// How [`lock_rows`] statements cover a batch of `row_count` rows: each
/// range of rows is named by one statement of `size` rows, the last row
/// repeated to fill it. Sizes are powers of two, so that a table has at
/// most ten statement texts for the server to parse and keep, whatever the
/// batches' sizes.
pub fn lock_chunks(row_count: usize, key_count: usize) -> Vec<(std::ops::Range<usize>, usize)> {
    // Oracle takes at most 65,535 binds in one statement.
    let by_binds = (65_535 / key_count.max(1)).max(1);
    let most = MAX_LOCKED_ROWS.min(1 << by_binds.ilog2());
    (0..row_count)
        .step_by(most)
        .map(|start| {
            let range = start..(start + most).min(row_count);
            let size = range.len().next_power_of_two();
            (range, size)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_rows_are_locked_with_a_bounded_wait() {
        assert_eq!(
            lock_rows("HIS_APPOINTMENTS", &["HIS_APPOINTMENT_ID"], 3, 5),
            "SELECT 1 FROM \"HIS_APPOINTMENTS\" WHERE \"HIS_APPOINTMENT_ID\" IN (:1, :2, :3) FOR UPDATE WAIT 5"
        );
        assert_eq!(
            lock_rows("T", &["A", "B"], 2, 1),
            "SELECT 1 FROM \"T\" WHERE (\"A\", \"B\") IN ((:1, :2), (:3, :4)) FOR UPDATE WAIT 1"
        );
        assert_eq!(lock_rows("a\"b", &["K"], 1, 5), "SELECT 1 FROM \"a\"\"b\" WHERE \"K\" IN (:1) FOR UPDATE WAIT 5");
    }

    #[test]
    fn lock_statements_cover_every_row_in_few_shapes() {
        assert_eq!(lock_chunks(1, 1), [(0..1, 1)]);
        assert_eq!(lock_chunks(3, 1), [(0..3, 4)]);
        assert_eq!(lock_chunks(500, 1), [(0..500, 512)]);
        assert_eq!(lock_chunks(1000, 2), [(0..512, 512), (512..1000, 512)]);
        assert_eq!(lock_chunks(513, 1), [(0..512, 512), (512..513, 1)]);
        assert!(lock_chunks(0, 1).is_empty());
        // Many key columns: still below 65,535 binds.
        assert_eq!(
            lock_chunks(1000, 300),
            [
                (0..128, 128),
                (128..256, 128),
                (256..384, 128),
                (384..512, 128),
                (512..640, 128),
                (640..768, 128),
                (768..896, 128),
                (896..1000, 128)
            ]
        );
        assert!(lock_chunks(5000, 7).iter().all(|(range, size)| range.len() <= *size && size * 7 <= 65_535));
    }

    #[test]
    fn the_seed_merges_with_resolved_names() {
        assert_eq!(
            merge("HIS_APPOINTMENTS", &["HIS_APPOINTMENT_ID", "HIS_STATUS", "HIS_CREATED_AT"], &["HIS_APPOINTMENT_ID"]),
            "MERGE INTO \"HIS_APPOINTMENTS\" t USING (SELECT :1 \"HIS_APPOINTMENT_ID\", :2 \"HIS_STATUS\", \
             :3 \"HIS_CREATED_AT\" FROM dual) s ON (t.\"HIS_APPOINTMENT_ID\" = s.\"HIS_APPOINTMENT_ID\") \
             WHEN MATCHED THEN UPDATE SET t.\"HIS_STATUS\" = s.\"HIS_STATUS\", t.\"HIS_CREATED_AT\" = s.\"HIS_CREATED_AT\" \
             WHEN NOT MATCHED THEN INSERT (\"HIS_APPOINTMENT_ID\", \"HIS_STATUS\", \"HIS_CREATED_AT\") \
             VALUES (s.\"HIS_APPOINTMENT_ID\", s.\"HIS_STATUS\", s.\"HIS_CREATED_AT\")"
        );
        assert_eq!(
            merge("HIS_SCHEDULES", &["HIS_SCHEDULE_ID", "HIS_NEW_TIME", "HIS_UPDATED_AT"], &["HIS_SCHEDULE_ID"]),
            "MERGE INTO \"HIS_SCHEDULES\" t USING (SELECT :1 \"HIS_SCHEDULE_ID\", :2 \"HIS_NEW_TIME\", \
             :3 \"HIS_UPDATED_AT\" FROM dual) s ON (t.\"HIS_SCHEDULE_ID\" = s.\"HIS_SCHEDULE_ID\") \
             WHEN MATCHED THEN UPDATE SET t.\"HIS_NEW_TIME\" = s.\"HIS_NEW_TIME\", t.\"HIS_UPDATED_AT\" = s.\"HIS_UPDATED_AT\" \
             WHEN NOT MATCHED THEN INSERT (\"HIS_SCHEDULE_ID\", \"HIS_NEW_TIME\", \"HIS_UPDATED_AT\") \
             VALUES (s.\"HIS_SCHEDULE_ID\", s.\"HIS_NEW_TIME\", s.\"HIS_UPDATED_AT\")"
        );
        assert_eq!(
            merge(
                "HIS_PAYMENTS",
                &["HIS_PAYMENT_ID", "HIS_AMOUNT", "HIS_PAYMENT_STATUS", "HIS_PAID_AT"],
                &["HIS_PAYMENT_ID"]
            ),
            "MERGE INTO \"HIS_PAYMENTS\" t USING (SELECT :1 \"HIS_PAYMENT_ID\", :2 \"HIS_AMOUNT\", \
             :3 \"HIS_PAYMENT_STATUS\", :4 \"HIS_PAID_AT\" FROM dual) s ON (t.\"HIS_PAYMENT_ID\" = s.\"HIS_PAYMENT_ID\") \
             WHEN MATCHED THEN UPDATE SET t.\"HIS_AMOUNT\" = s.\"HIS_AMOUNT\", \
             t.\"HIS_PAYMENT_STATUS\" = s.\"HIS_PAYMENT_STATUS\", t.\"HIS_PAID_AT\" = s.\"HIS_PAID_AT\" \
             WHEN NOT MATCHED THEN INSERT (\"HIS_PAYMENT_ID\", \"HIS_AMOUNT\", \"HIS_PAYMENT_STATUS\", \"HIS_PAID_AT\") \
             VALUES (s.\"HIS_PAYMENT_ID\", s.\"HIS_AMOUNT\", s.\"HIS_PAYMENT_STATUS\", s.\"HIS_PAID_AT\")"
        );
    }

    #[test]
    fn the_seed_mapping_resolves_then_merges() {
        // The mapping's mixed-case names, resolved against the recorded
        // dictionary of tables created without quotes.
        let dictionary = crate::dictionary::tests::seed_dictionary();
        let mapped = ["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"];
        let table = crate::dictionary::resolve("HIS_payments", &mapped, &dictionary).unwrap();
        let columns: Vec<&str> = table.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(
            merge(&table.name, &columns, &columns[..1]),
            merge(
                "HIS_PAYMENTS",
                &["HIS_PAYMENT_ID", "HIS_AMOUNT", "HIS_PAYMENT_STATUS", "HIS_PAID_AT"],
                &["HIS_PAYMENT_ID"]
            )
        );
    }

    #[test]
    fn a_partial_row_merges_only_the_columns_it_carries() {
        // An appointment event without booked_at: HIS_CREATED_AT is neither
        // updated nor inserted.
        assert_eq!(
            merge("HIS_APPOINTMENTS", &["HIS_APPOINTMENT_ID", "HIS_STATUS"], &["HIS_APPOINTMENT_ID"]),
            "MERGE INTO \"HIS_APPOINTMENTS\" t USING (SELECT :1 \"HIS_APPOINTMENT_ID\", :2 \"HIS_STATUS\" FROM dual) s \
             ON (t.\"HIS_APPOINTMENT_ID\" = s.\"HIS_APPOINTMENT_ID\") \
             WHEN MATCHED THEN UPDATE SET t.\"HIS_STATUS\" = s.\"HIS_STATUS\" \
             WHEN NOT MATCHED THEN INSERT (\"HIS_APPOINTMENT_ID\", \"HIS_STATUS\") \
             VALUES (s.\"HIS_APPOINTMENT_ID\", s.\"HIS_STATUS\")"
        );
    }

    #[test]
    fn an_insert_names_only_the_carried_columns() {
        assert_eq!(
            insert("HIS_APPOINTMENTS", &["HIS_APPOINTMENT_ID", "HIS_STATUS", "HIS_CREATED_AT"]),
            "INSERT INTO \"HIS_APPOINTMENTS\" (\"HIS_APPOINTMENT_ID\", \"HIS_STATUS\", \"HIS_CREATED_AT\") \
             VALUES (:1, :2, :3)"
        );
        assert_eq!(insert("T", &["K"]), "INSERT INTO \"T\" (\"K\") VALUES (:1)");
    }

    #[test]
    fn an_update_sets_a_column_subset_then_matches_the_key() {
        let columns = ["HIS_APPOINTMENT_ID", "HIS_STATUS"];
        let keys = ["HIS_APPOINTMENT_ID"];
        assert_eq!(non_key(&columns, &keys), ["HIS_STATUS"]);
        assert_eq!(
            update("HIS_APPOINTMENTS", &non_key(&columns, &keys), &keys),
            "UPDATE \"HIS_APPOINTMENTS\" SET \"HIS_STATUS\" = :1 WHERE \"HIS_APPOINTMENT_ID\" = :2"
        );
        // The key's binds come after the set columns', in the order bound.
        assert_eq!(
            update("T", &["A", "B"], &["K1", "K2"]),
            "UPDATE \"T\" SET \"A\" = :1, \"B\" = :2 WHERE \"K1\" = :3 AND \"K2\" = :4"
        );
    }

    #[test]
    fn a_soft_delete_sets_the_carried_non_key_columns() {
        // A cancellation carries the key, a status and a deletion time.
        let columns = ["HIS_APPOINTMENT_ID", "HIS_STATUS", "HIS_DELETED_AT"];
        let keys = ["HIS_APPOINTMENT_ID"];
        assert_eq!(
            update("HIS_APPOINTMENTS", &non_key(&columns, &keys), &keys),
            "UPDATE \"HIS_APPOINTMENTS\" SET \"HIS_STATUS\" = :1, \"HIS_DELETED_AT\" = :2 \
             WHERE \"HIS_APPOINTMENT_ID\" = :3"
        );
        assert!(non_key(&keys, &keys).is_empty());
        // As the writer calls it, with positions among the batch's columns.
        assert_eq!(non_key(&[0, 1, 3], &[1]), [0, 3]);
    }

    #[test]
    fn a_delete_and_an_existence_count_match_the_key_alone() {
        assert_eq!(
            delete("HIS_APPOINTMENTS", &["HIS_APPOINTMENT_ID"]),
            "DELETE FROM \"HIS_APPOINTMENTS\" WHERE \"HIS_APPOINTMENT_ID\" = :1"
        );
        assert_eq!(delete("a\"b", &["K1", "K2"]), "DELETE FROM \"a\"\"b\" WHERE \"K1\" = :1 AND \"K2\" = :2");
        assert_eq!(count("T", &["K1", "K2"]), "SELECT COUNT(*) FROM \"T\" WHERE \"K1\" = :1 AND \"K2\" = :2");
    }

    #[test]
    fn keys_only_merge_inserts_only() {
        let sql = merge("T", &["K"], &["K"]);
        assert!(!sql.contains("WHEN MATCHED"), "{sql}");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
