//! Oracle SQL text, as pure functions: quoting and the MERGE statement.
//!
//! Names are written as the data dictionary stores them (see
//! [`crate::dictionary`]), always quoted. Values are bound as `:n`.

/// Quotes a stored identifier: `HIS_STATUS` becomes `"HIS_STATUS"`.
/// Oracle names cannot contain a double quote; the dictionary never gives one.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `MERGE INTO t USING (SELECT :1 c1, … FROM dual) s ON (…) WHEN MATCHED
/// THEN UPDATE … WHEN NOT MATCHED THEN INSERT …`, for one row: executed
/// with an array bind, it runs once per row in a single round trip.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn keys_only_merge_inserts_only() {
        let sql = merge("T", &["K"], &["K"]);
        assert!(!sql.contains("WHEN MATCHED"), "{sql}");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
