//! The statements the writer would run for some batches, without a
//! server: what `buktor-middleware map --sql` prints.
//!
//! It follows [`crate::writer`] step by step and builds every text with the
//! same functions of [`crate::sql`]: one transaction (`BEGIN` … `COMMIT`, as
//! sqlx sends them) around every batch, each batch one column set (see
//! [`WriteBatch::column_sets`]) after another, upserts as multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` statements cut by
//! [`sql::statement_ranges`] (65,535 parameters, `max_statement_bytes`),
//! the other actions row by row. Each parameter is shown as
//! [`crate::values::bind`] binds it: timestamps as the HIS time zone's wall
//! clock (`database.timezone`), decimals as their exact text.
//!
//! An update and a soft-delete first read whether the row exists (`SELECT
//! … FOR UPDATE`), and what follows depends on the answer: `-- ` comment
//! lines say so.

use his_plugin_api::{ErrorKind, HisZone, IfMissing, PluginError, Statement, Value, ValueRef, WriteAction, WriteBatch};

use crate::{
    settings::Settings,
    sql,
    values::{Bind, bind},
};

/// The SDK's statement: SQL text (after any `-- ` comment lines) and each
/// bound parameter, in bind order, as text.
pub type Rendered = Statement;

/// Parses the `database` settings as `open` does (without connecting), and
/// renders the statements for `batches`, written together in one
/// transaction.
pub fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let settings = Settings::parse(settings_json, config_dir)?;
    statements(settings.zone, settings.max_statement_bytes, batches)
}

/// The statements for `batches`, in the order the writer runs them, with
/// the HIS's `zone` and the `max_statement_bytes` setting.
pub fn statements(
    zone: HisZone,
    max_statement_bytes: usize,
    batches: &[WriteBatch],
) -> Result<Vec<Rendered>, PluginError> {
    let mut out = vec![Rendered::new("BEGIN", Vec::<String>::new())];
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        batch_statements(batch, zone, max_statement_bytes, &mut out).map_err(|e| e.offset_row(first_row))?;
    }
    out.push(Rendered::new("COMMIT", Vec::<String>::new()));
    Ok(out)
}

/// One batch's statements, column set after column set.
fn batch_statements(
    batch: &WriteBatch,
    zone: HisZone,
    max_statement_bytes: usize,
    out: &mut Vec<Rendered>,
) -> Result<(), PluginError> {
    let names: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
    let keys: Vec<&str> = batch.key_columns().iter().map(|c| c.as_str()).collect();
    let key_positions: Vec<usize> = keys.iter().map(|k| position(&names, k)).collect();
    let rows: Vec<&[Value]> = batch.rows().collect();
    // As the writer: every value is bound before anything is sent, and a
    // value that cannot be fails its row.
    let shown: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| row.iter().map(|v| bind(v, zone).map(|b| show(v, &b)).map_err(|e| e.with_row(i))).collect())
        .collect::<Result<_, _>>()?;
    let values =
        |row: usize, positions: &[usize]| -> Vec<String> { positions.iter().map(|&p| shown[row][p].clone()).collect() };
    let table = batch.table();
    let action = batch.action().get();
    for set in batch.column_sets() {
        let columns: Vec<&str> = set.columns.iter().map(|&c| names[c]).collect();
        match action {
            WriteAction::Upsert => {
                let head = sql::insert_head(table, &columns);
                let tail = sql::on_duplicate_tail(&columns, &keys);
                let group_rows: Vec<&[Value]> = set.rows.iter().map(|&r| rows[r]).collect();
                for range in sql::statement_ranges(&group_rows, columns.len(), max_statement_bytes) {
                    let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
                    let text = format!("{head}VALUES {}{tail}", vec![placeholders.as_str(); range.len()].join(", "));
                    let params: Vec<String> =
                        set.rows[range].iter().flat_map(|&row| values(row, &set.columns)).collect();
                    out.push(Rendered::new(text, params));
                }
            }
            WriteAction::Insert => {
                for &row in &set.rows {
                    out.push(Rendered::new(insert(table, &columns), values(row, &set.columns)));
                }
            }
            WriteAction::Update(_) | WriteAction::SoftDelete => {
                let if_missing = match action {
                    WriteAction::Update(if_missing) => if_missing,
                    _ => IfMissing::Ignore,
                };
                let set_positions: Vec<usize> =
                    set.columns.iter().copied().filter(|c| !key_positions.contains(c)).collect();
                let set_names: Vec<&str> = set_positions.iter().map(|&c| names[c]).collect();
                for &row in &set.rows {
                    out.push(
                        Rendered::new(sql::exists(table, &keys), values(row, &key_positions))
                            .noted("a read: whether the row exists, locked as the update would lock it"),
                    );
                    if !set_names.is_empty() {
                        let mut params = values(row, &set_positions);
                        params.extend(values(row, &key_positions));
                        out.push(
                            Rendered::new(sql::update(table, &set_names, &keys), params)
                                .noted("only if the read found the row"),
                        );
                    }
                    match if_missing {
                        IfMissing::Error => {
                            let last = out.pop().expect("pushed above");
                            out.push(last.noted(
                                "if the read found no row, the row fails here instead (update, if_missing: error) \
                                 and the transaction is rolled back",
                            ));
                        }
                        IfMissing::Insert => out.push(
                            Rendered::new(insert(table, &columns), values(row, &set.columns))
                                .noted("only if the read found no row (update, if_missing: insert)"),
                        ),
                        _ => {}
                    }
                }
            }
            WriteAction::Delete => {
                for &row in &set.rows {
                    out.push(Rendered::new(sql::delete(table, &keys), values(row, &key_positions)));
                }
            }
            other => {
                return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unknown action {other:?}")));
            }
        }
    }
    Ok(())
}

/// The one-row insert of the writer's `insert`.
fn insert(table: &str, columns: &[&str]) -> String {
    format!("{}VALUES ({})", sql::insert_head(table, columns), vec!["?"; columns.len()].join(", "))
}

fn position(names: &[&str], name: &str) -> usize {
    names.iter().position(|n| *n == name).expect("the host sends key columns among the columns")
}

/// A value as bound: `bind` turns decimals and dates into text, which
/// MySQL reads exactly; a decimal is shown as its number.
fn show(value: &Value, bound: &Bind<'_>) -> String {
    match (value.get(), bound) {
        (ValueRef::Decimal(s), _) => s.to_string(),
        (_, Bind::Null) => "NULL".into(),
        (_, Bind::Bool(b)) => i64::from(*b).to_string(),
        (_, Bind::Int(i)) => i.to_string(),
        (_, Bind::Float(f)) => format!("{f:?}"),
        (_, Bind::Text(s)) => quoted(s),
        (_, Bind::DateTime(dt)) => quoted(&dt.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        (_, Bind::Bytes(b)) => format!("X'{}'", b.iter().map(|byte| format!("{byte:02X}")).collect::<String>()),
    }
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::Action;

    use super::*;

    const SEED: &str =
        r#"{"type": "mysql", "host": "127.0.0.1", "port": 1, "user": "u", "password": "secret", "database": "his"}"#;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    fn payment(paid_at: Value) -> WriteBatch {
        batch(
            "HIS_payments",
            Action::UPSERT,
            &["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"],
            &["HIS_payment_id"],
            vec![Value::int(789), Value::decimal("50.0"), Value::text("paid"), paid_at],
        )
    }

    #[test]
    fn the_seed_payment_upserts_with_values_of_its_columns() {
        // Port 1: nothing listens; rendering never connects.
        let statements = render(SEED, "/", &[payment(Value::null())]).unwrap();
        assert_eq!(
            statements,
            [
                Rendered::new("BEGIN", Vec::<String>::new()),
                Rendered::new(
                    "INSERT INTO `HIS_payments` (`HIS_payment_id`, `HIS_amount`, `HIS_payment_status`, `HIS_paid_at`) \
                     VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE `HIS_amount` = VALUES(`HIS_amount`), \
                     `HIS_payment_status` = VALUES(`HIS_payment_status`), `HIS_paid_at` = VALUES(`HIS_paid_at`)",
                    vec!["789", "50.0", "'paid'", "NULL"]
                ),
                Rendered::new("COMMIT", Vec::<String>::new()),
            ]
        );
    }

    #[test]
    fn timestamps_are_shown_in_the_his_time_zone() {
        let with_zone = SEED.replace('}', r#", "timezone": "+05:30"}"#);
        let statements = render(&with_zone, "/", &[payment(Value::timestamp("2025-03-03T09:00:00Z"))]).unwrap();
        assert_eq!(statements[1].params[3], "'2025-03-03 14:30:00'");
        let e = render(&SEED.replace("\"u\"", "\"\""), "/", &[]).unwrap_err();
        assert!(e.message.starts_with("database.user: must not be empty"), "{e}");
        assert!(!e.message.contains("secret"));
    }

    #[test]
    fn a_partial_update_reads_then_sets_only_what_the_row_carries() {
        let update = batch(
            "HIS_appointments",
            Action::update(IfMissing::Insert),
            &["ID", "NOTE", "ROOM"],
            &["ID"],
            vec![Value::int(7), Value::text("it's"), Value::null()],
        )
        .with_presence(|_, column| column != 2);
        let statements = statements(HisZone::utc(), 1 << 22, &[update]).unwrap();
        let texts: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            texts,
            [
                "BEGIN",
                "-- a read: whether the row exists, locked as the update would lock it\n\
                 SELECT 1 FROM `HIS_appointments` WHERE `ID` = ? FOR UPDATE",
                "-- only if the read found the row\nUPDATE `HIS_appointments` SET `NOTE` = ? WHERE `ID` = ?",
                "-- only if the read found no row (update, if_missing: insert)\n\
                 INSERT INTO `HIS_appointments` (`ID`, `NOTE`) VALUES (?, ?)",
                "COMMIT",
            ]
        );
        assert_eq!(statements[2].params, ["'it''s'", "7"]);
        assert_eq!(statements[3].params, ["7", "'it''s'"]);
    }

    #[test]
    fn a_soft_delete_updates_its_columns_and_a_delete_goes_by_key() {
        let soft = batch(
            "HIS_appointments",
            Action::SOFT_DELETE,
            &["ID", "STATUS"],
            &["ID"],
            vec![Value::int(7), Value::text("X")],
        );
        let delete = batch("HIS_notes", Action::DELETE, &["NOTE_ID"], &["NOTE_ID"], vec![Value::int(3)]);
        let statements = statements(HisZone::utc(), 1 << 22, &[soft, delete]).unwrap();
        assert_eq!(statements.len(), 5, "one transaction for both: {statements:#?}");
        assert!(statements[2].sql.ends_with("UPDATE `HIS_appointments` SET `STATUS` = ? WHERE `ID` = ?"));
        assert_eq!(statements[2].params, ["'X'", "7"]);
        assert_eq!(statements[3], Rendered::new("DELETE FROM `HIS_notes` WHERE `NOTE_ID` = ?", vec!["3"]));
    }

    #[test]
    fn seventy_thousand_values_go_in_statements_under_both_limits() {
        let columns = ["a", "b", "c", "d", "e", "f", "g"];
        let values: Vec<Value> = (0..70_000).map(|i| Value::int(i as i64)).collect();
        let big = batch("t", Action::UPSERT, &columns, &["a"], values.clone());
        let statements = statements(HisZone::utc(), usize::MAX, &[big]).unwrap();
        let sizes: Vec<usize> = statements[1..statements.len() - 1].iter().map(|s| s.params.len()).collect();
        assert_eq!(sizes, [9_362 * 7, 638 * 7]);
        assert!(sizes.iter().all(|&n| n <= sql::MAX_PARAMETERS));
        for statement in &statements[1..statements.len() - 1] {
            assert_eq!(statement.sql.matches('?').count(), statement.params.len());
        }
        // max_statement_bytes cuts sooner: 7 × 9 bytes a row.
        let big = batch("t", Action::UPSERT, &columns, &["a"], values);
        let statements = super::statements(HisZone::utc(), 16_384, &[big]).unwrap();
        let sizes: Vec<usize> = statements[1..statements.len() - 1].iter().map(|s| s.params.len() / 7).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        assert!(sizes.iter().all(|&rows| rows * 63 <= 16_384), "{sizes:?}");
    }

    #[test]
    fn a_value_that_cannot_be_bound_fails_its_row_as_the_writer_does() {
        let bad = batch(
            "t",
            Action::UPSERT,
            &["k", "at"],
            &["k"],
            vec![
                Value::int(1),
                Value::timestamp("2025-03-03T09:00:00Z"),
                Value::int(2),
                Value::timestamp("not a time"),
            ],
        );
        let e = statements(HisZone::utc(), 1 << 22, std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!((e.kind, e.row.into_option()), (ErrorKind::DATA, Some(1)));
        // Counted across the batches, as write_all counts.
        let e = statements(HisZone::utc(), 1 << 22, &[bad.clone(), bad]).unwrap_err();
        assert_eq!(e.row.into_option(), Some(1), "the first batch's row 1 fails first");
    }
}
