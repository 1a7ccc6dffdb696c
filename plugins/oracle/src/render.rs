//! The statements the writer would run for some batches, without a
//! database: what `buktor-middleware map --sql` prints.
//!
//! It follows [`crate::writer`] step by step and builds every text with the
//! same functions of [`crate::sql`]: per batch, its existing rows locked
//! with a bounded wait ([`sql::lock_rows`], [`sql::lock_chunks`]), then per
//! column set (see [`WriteBatch::column_sets`]) one array-bound MERGE for an
//! upsert, or one statement per row for the other actions; one `COMMIT`
//! for all of them.
//!
//! Two things need the database, so are shown as the mapping has them, and
//! said in a `-- ` comment line: the writer first reads each table's
//! columns from the data dictionary (ALL_TAB_COLUMNS), writes names as
//! stored there (`HIS_APPOINTMENTS` for a table created without quotes),
//! and binds each value as its column's type. Here each column's type is
//! the one its values suggest (a timestamp a TIMESTAMP, a number a NUMBER,
//! text a VARCHAR2), and values are converted by [`crate::binds::bind`] as
//! for such a column: timestamps to the HIS time zone's wall clock
//! (`database.timezone`).

use his_plugin_api::{HisZone, IfMissing, PluginError, Statement, ValueRef, WriteBatch};

use crate::{
    binds::{Bind, MAX_VARCHAR2_BYTES, bind},
    dictionary::DictionaryRow,
    settings::Settings,
    sql,
    writer::Step,
};

/// The SDK's statement: SQL text (after any `-- ` comment lines) and each
/// bound parameter, in bind order, as text.
pub type Rendered = Statement;

/// Parses the `database` settings as `open` does (without connecting), and
/// renders the statements for `batches`, written together in one
/// transaction.
pub fn render(settings_json: &str, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let settings = Settings::parse(settings_json)?;
    statements(settings.zone, settings.lock_timeout.as_secs(), batches)
}

/// The statements for `batches`, in the order the writer runs them, with
/// the HIS's `zone` and `lock_timeout_secs`.
pub fn statements(zone: HisZone, lock_wait: u64, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let mut out = Vec::new();
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        let first = out.len();
        batch_statements(batch, zone, lock_wait, &mut out).map_err(|e| e.offset_row(first_row))?;
        if let Some(statement) = out.get_mut(first) {
            *statement = statement.clone().noted(&format!(
                "names and bind types as in the mapping: the writer first reads {}'s columns from ALL_TAB_COLUMNS, \
                 writes each name as stored there and binds each value as its column's type",
                batch.table()
            ));
        }
    }
    out.push(Rendered::new("COMMIT", Vec::<String>::new()).noted("the driver's commit call"));
    Ok(out)
}

/// One batch's statements: the row locks, then column set after column set.
fn batch_statements(
    batch: &WriteBatch,
    zone: HisZone,
    lock_wait: u64,
    out: &mut Vec<Rendered>,
) -> Result<(), PluginError> {
    let step = Step::of(batch.action().get())?;
    let names: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
    let columns: Vec<DictionaryRow> = (0..names.len()).map(|c| assumed_column(batch, c)).collect();
    // As the writer: every value is converted before anything is sent, and
    // a value that cannot be fails its row.
    let shown: Vec<Vec<String>> = batch
        .rows()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .zip(&columns)
                .map(|(v, c)| bind(v, c, zone).map(|b| show(&b)).map_err(|e| e.with_row(i)))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let keys: Vec<usize> = batch
        .key_columns()
        .iter()
        .map(|k| names.iter().position(|c| *c == k.as_str()).expect("key columns are mapped columns"))
        .collect();
    let names_of = |positions: &[usize]| -> Vec<&str> { positions.iter().map(|&p| names[p]).collect() };
    let values =
        |row: usize, positions: &[usize]| -> Vec<String> { positions.iter().map(|&p| shown[row][p].clone()).collect() };
    let table = batch.table();
    let key_names = names_of(&keys);

    if step != Step::Insert {
        for (range, size) in sql::lock_chunks(batch.row_count(), keys.len()) {
            let last = range.end - 1;
            let params: Vec<String> =
                range.chain(std::iter::repeat(last)).take(size).flat_map(|row| values(row, &keys)).collect();
            out.push(Rendered::new(sql::lock_rows(table, &key_names, size, lock_wait), params).noted(&format!(
                "locks the rows that exist, waiting at most {lock_wait} s for another session's lock"
            )));
        }
    }
    for set in batch.column_sets() {
        let insert = |row: usize| Rendered::new(sql::insert(table, &names_of(&set.columns)), values(row, &set.columns));
        match step {
            Step::Merge => {
                let text = sql::merge(table, &names_of(&set.columns), &key_names);
                for (i, &row) in set.rows.iter().enumerate() {
                    let merge = Rendered::new(text.clone(), values(row, &set.columns));
                    out.push(match (i, set.rows.len()) {
                        (0, n) if n > 1 => merge.noted(&format!(
                            "one execution with an array bind of this row and the {} after it: one round trip",
                            n - 1
                        )),
                        _ => merge,
                    });
                }
            }
            Step::Insert => out.extend(set.rows.iter().map(|&row| insert(row))),
            Step::Update(if_missing) => {
                let set_columns = sql::non_key(&set.columns, &keys);
                for &row in &set.rows {
                    let probe = match (set_columns.is_empty(), if_missing) {
                        // Nothing to set, and a missing row does not matter.
                        (true, IfMissing::Ignore) => continue,
                        (true, _) => Rendered::new(sql::count(table, &key_names), values(row, &keys))
                            .noted("nothing to set but the key: whether the row exists"),
                        (false, _) => {
                            let mut params = values(row, &set_columns);
                            params.extend(values(row, &keys));
                            Rendered::new(sql::update(table, &names_of(&set_columns), &key_names), params)
                        }
                    };
                    out.extend(Statement::update_steps(probe, || insert(row), if_missing));
                }
            }
            Step::Delete => out
                .extend(set.rows.iter().map(|&row| Rendered::new(sql::delete(table, &key_names), values(row, &keys)))),
        }
    }
    Ok(())
}

/// The dictionary row a column would have for its values: the type of its
/// first non-NULL value (any type takes NULL).
fn assumed_column(batch: &WriteBatch, position: usize) -> DictionaryRow {
    let first = batch.rows().map(|row| row[position].get()).find(|v| *v != ValueRef::Null);
    let (data_type, data_length) = match first {
        Some(ValueRef::Bool(_) | ValueRef::Int(_) | ValueRef::Float(_) | ValueRef::Decimal(_)) => ("NUMBER", 22),
        Some(ValueRef::Timestamp(_) | ValueRef::Date(_)) => ("TIMESTAMP(6)", 11),
        Some(ValueRef::Bytes(_)) => ("BLOB", 4000),
        Some(ValueRef::Text(s)) if s.len() > MAX_VARCHAR2_BYTES => ("CLOB", 4000),
        _ => ("VARCHAR2", MAX_VARCHAR2_BYTES as u32),
    };
    DictionaryRow {
        table: batch.table().to_string(),
        column: batch.columns()[position].to_string(),
        data_type: data_type.into(),
        data_length,
        nullable: true,
        has_default: false,
    }
}

/// A converted value as an Oracle literal of its bind type.
fn show(bind: &Bind) -> String {
    match bind {
        Bind::Null => "NULL".into(),
        Bind::Int(i) => i.to_string(),
        Bind::Float(f) => format!("{f:?}"),
        Bind::Number(s) => s.clone(),
        Bind::DateTime(dt) => format!("TIMESTAMP '{}'", dt.format("%Y-%m-%d %H:%M:%S%.f")),
        Bind::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Bind::Bytes(b) => format!("HEXTORAW('{}')", b.iter().map(|byte| format!("{byte:02X}")).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::{Action, Value};

    use super::*;

    const SEED: &str =
        r#"{"type": "oracle", "host": "127.0.0.1", "port": 1, "user": "u", "password": "secret", "database": "his"}"#;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    fn payment() -> WriteBatch {
        batch(
            "HIS_payments",
            Action::UPSERT,
            &["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"],
            &["HIS_payment_id"],
            vec![
                Value::int(789),
                Value::decimal("50.0"),
                Value::text("paid"),
                Value::timestamp("2025-03-03T09:00:00Z"),
            ],
        )
    }

    #[test]
    fn the_seed_payment_locks_then_merges_then_commits() {
        let statements =
            render(&SEED.replace('}', r#", "timezone": "+05:30", "lock_timeout_secs": 3}"#), &[payment()]).unwrap();
        assert_eq!(statements.len(), 3, "{statements:#?}");
        let lock: Vec<&str> = statements[0].sql.lines().collect();
        assert!(
            lock[0].starts_with("-- names and bind types as in the mapping: the writer first reads HIS_payments's")
        );
        assert_eq!(lock[1], "-- locks the rows that exist, waiting at most 3 s for another session's lock");
        assert_eq!(lock[2], "SELECT 1 FROM \"HIS_payments\" WHERE \"HIS_payment_id\" IN (:1) FOR UPDATE WAIT 3");
        assert_eq!(statements[0].params, ["789"]);
        assert_eq!(
            statements[1],
            Rendered::new(
                sql::merge(
                    "HIS_payments",
                    &["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"],
                    &["HIS_payment_id"]
                ),
                vec!["789", "50.0", "'paid'", "TIMESTAMP '2025-03-03 14:30:00'"]
            )
        );
        assert_eq!(statements[2].sql, "-- the driver's commit call\nCOMMIT");
        let e = render(&SEED.replace("\"u\"", "\"\""), &[]).unwrap_err();
        assert!(e.message.starts_with("database.user: must not be empty"), "{e}");
    }

    #[test]
    fn a_partial_update_sets_only_what_the_row_carries_then_may_insert() {
        let update = batch(
            "HIS_appointments",
            Action::update(IfMissing::Insert),
            &["ID", "NOTE", "ROOM"],
            &["ID"],
            vec![Value::int(7), Value::text("n"), Value::null()],
        )
        .with_presence(|_, column| column != 2);
        let statements = statements(HisZone::utc(), 5, &[update]).unwrap();
        assert_eq!(statements.len(), 4, "{statements:#?}");
        assert_eq!(
            statements[1],
            Rendered::new("UPDATE \"HIS_appointments\" SET \"NOTE\" = :1 WHERE \"ID\" = :2", vec!["'n'", "7"])
        );
        assert!(statements[2].sql.ends_with("INSERT INTO \"HIS_appointments\" (\"ID\", \"NOTE\") VALUES (:1, :2)"));
        assert_eq!(statements[2].params, ["7", "'n'"]);
    }

    #[test]
    fn a_soft_delete_locks_then_updates_and_an_insert_does_not_lock() {
        let soft = batch(
            "HIS_appointments",
            Action::SOFT_DELETE,
            &["ID", "STATUS"],
            &["ID"],
            vec![Value::int(7), Value::text("X"), Value::int(8), Value::text("X"), Value::int(9), Value::text("X")],
        );
        let insert = batch("t", Action::INSERT, &["k"], &["k"], vec![Value::int(1)]);
        let statements = statements(HisZone::utc(), 5, &[soft, insert]).unwrap();
        let last_lines: Vec<&str> = statements.iter().map(|s| s.sql.lines().last().unwrap()).collect();
        assert_eq!(
            last_lines,
            [
                "SELECT 1 FROM \"HIS_appointments\" WHERE \"ID\" IN (:1, :2, :3, :4) FOR UPDATE WAIT 5",
                "UPDATE \"HIS_appointments\" SET \"STATUS\" = :1 WHERE \"ID\" = :2",
                "UPDATE \"HIS_appointments\" SET \"STATUS\" = :1 WHERE \"ID\" = :2",
                "UPDATE \"HIS_appointments\" SET \"STATUS\" = :1 WHERE \"ID\" = :2",
                "INSERT INTO \"t\" (\"k\") VALUES (:1)",
                "COMMIT",
            ]
        );
        // Three rows locked by a statement of four: the last row repeated.
        assert_eq!(statements[0].params, ["7", "8", "9", "9"]);
        assert_eq!(statements[3].params, ["'X'", "9"]);
    }

    #[test]
    fn an_upsert_of_many_rows_is_one_array_bound_merge() {
        let values: Vec<Value> = (0..70_000).map(|i| Value::int(i as i64)).collect();
        let big = batch("t", Action::UPSERT, &["a", "b", "c", "d", "e", "f", "g"], &["a"], values);
        let statements = statements(HisZone::utc(), 5, &[big]).unwrap();
        // 10,000 rows: locked 512 at a time (20 statements), one MERGE execution.
        let locks = statements.iter().filter(|s| s.sql.contains("FOR UPDATE WAIT 5")).count();
        assert_eq!(locks, 20);
        assert!(statements.iter().all(|s| s.params.len() <= 65_535));
        let merges: Vec<&Rendered> = statements.iter().filter(|s| s.sql.contains("MERGE INTO")).collect();
        assert_eq!(merges.len(), 10_000);
        assert!(merges[0].sql.starts_with("-- one execution with an array bind of this row and the 9999 after it"));
        assert_eq!(merges[9_999].params[6], "69999");
    }
}
