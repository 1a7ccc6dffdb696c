//! The statements the writer would run for some batches, without a
//! server: what `buktor-middleware map --sql` prints.
//!
//! It follows [`crate::writer`] and [`crate::actions`] step by step and
//! builds every text with the same functions of [`crate::sql`]: one
//! transaction (`BEGIN TRANSACTION` … `COMMIT TRANSACTION`) around every
//! batch, each batch one column set (see [`WriteBatch::column_sets`]) after
//! another, upserts as multi-row `MERGE … WITH (HOLDLOCK)` statements under
//! 2,100 parameters ([`sql::statement_ranges`]), the other actions row by
//! row. Each parameter is shown as [`crate::values`] binds it, with its
//! SQL Server type's literal: `N'…'` for nvarchar, timestamps as the HIS
//! time zone's wall clock (`database.timezone`), decimals exact; a MERGE
//! column of mixed kinds goes as nvarchar text ([`uniform`]).
//!
//! Where what runs next depends on the server's answer (an update that
//! matches no row), a `-- ` comment line says so.

use his_plugin_api::{ErrorKind, HisZone, IfMissing, PluginError, Statement, WriteAction, WriteBatch};

use crate::{
    actions::Target,
    settings::Settings,
    sql,
    values::{Bind, bind, uniform},
};

/// The SDK's statement: SQL text (after any `-- ` comment lines) and each
/// bound parameter, in bind order, as text.
pub type Rendered = Statement;

/// Parses the `database` settings as `open` does (without connecting), and
/// renders the statements for `batches`, written together in one
/// transaction.
pub fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let settings = Settings::parse(settings_json, config_dir)?;
    statements(settings.zone, batches)
}

/// The statements for `batches`, in the order the writer runs them, with
/// the HIS's `zone`.
pub fn statements(zone: HisZone, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let mut out = vec![Rendered::new("BEGIN TRANSACTION", Vec::<String>::new())];
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        batch_statements(batch, zone, &mut out).map_err(|e| e.offset_row(first_row))?;
    }
    out.push(Rendered::new("COMMIT TRANSACTION", Vec::<String>::new()));
    Ok(out)
}

/// One batch's statements, column set after column set.
fn batch_statements(batch: &WriteBatch, zone: HisZone, out: &mut Vec<Rendered>) -> Result<(), PluginError> {
    // As the writer: every value is bound before anything is sent, and a
    // value that cannot be fails its row.
    let binds: Vec<Vec<Bind<'_>>> = batch
        .rows()
        .enumerate()
        .map(|(row, values)| values.iter().map(|v| bind(v, zone).map_err(|e| e.with_row(row))).collect())
        .collect::<Result<_, _>>()?;
    // The writer's names and key columns (actions.rs).
    let Target { names, keys, .. } = Target::new(batch, &binds)?;
    let names_of = |columns: &[usize]| -> Vec<&str> { columns.iter().map(|&c| names[c]).collect() };
    let values =
        |row: usize, columns: &[usize]| -> Vec<String> { columns.iter().map(|&c| show(&binds[row][c])).collect() };
    let table = batch.table();
    let key_names = names_of(&keys);
    for set in batch.column_sets() {
        let columns = names_of(&set.columns);
        let insert = |row: usize| Rendered::new(sql::insert(table, &columns), values(row, &set.columns));
        let (if_missing, action) = match batch.action().get() {
            WriteAction::Update(if_missing) => (if_missing, Step::Update),
            WriteAction::SoftDelete => (IfMissing::Ignore, Step::Update),
            WriteAction::Upsert => (IfMissing::Ignore, Step::Upsert),
            WriteAction::Insert => (IfMissing::Ignore, Step::Insert),
            WriteAction::Delete => (IfMissing::Ignore, Step::Delete),
            other => {
                return Err(PluginError::permanent(
                    ErrorKind::UNSUPPORTED,
                    format!("the sqlserver plugin does not know the action {other:?}"),
                ));
            }
        };
        match action {
            Step::Upsert => {
                for range in sql::statement_ranges(set.rows.len(), set.columns.len()) {
                    let rows = &set.rows[range];
                    let mut bound: Vec<Vec<Bind<'_>>> =
                        rows.iter().map(|&row| set.columns.iter().map(|&c| binds[row][c].clone()).collect()).collect();
                    for column in 0..set.columns.len() {
                        let mut cells: Vec<&mut Bind<'_>> = bound.iter_mut().map(|row| &mut row[column]).collect();
                        uniform(&mut cells)?;
                    }
                    let text = sql::merge(table, &columns, &key_names, rows.len());
                    out.push(Rendered::new(text, bound.iter().flatten().map(show).collect::<Vec<String>>()));
                }
            }
            Step::Insert => out.extend(set.rows.iter().map(|&row| insert(row))),
            Step::Update => {
                let set_columns: Vec<usize> = set.columns.iter().copied().filter(|c| !keys.contains(c)).collect();
                for &row in &set.rows {
                    let probe = match (set_columns.is_empty(), if_missing) {
                        // Nothing to set, and a missing row is fine: nothing runs.
                        (true, IfMissing::Ignore) => continue,
                        (true, _) => Rendered::new(sql::exists(table, &key_names), values(row, &keys))
                            .noted("nothing to set but the key: whether the row exists, locked until the commit"),
                        (false, _) => {
                            let hold = if_missing == IfMissing::Insert;
                            let text = sql::update(table, &names_of(&set_columns), &key_names, hold);
                            let mut params = values(row, &set_columns);
                            params.extend(values(row, &keys));
                            Rendered::new(text, params)
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

/// What an action does with a column set.
#[derive(Clone, Copy)]
enum Step {
    Upsert,
    Insert,
    Update,
    Delete,
}

/// A bound value as the literal of the type it is sent as.
fn show(bind: &Bind<'_>) -> String {
    match bind {
        Bind::Null | Bind::NullBytes => "NULL".into(),
        Bind::Bool(b) => i64::from(*b).to_string(),
        Bind::Int(i) => i.to_string(),
        Bind::Float(f) => format!("{f:?}"),
        Bind::Text(s) => quoted(s),
        Bind::Converted(s) => quoted(s),
        Bind::Decimal(n) => n.to_string(),
        Bind::DateTime(dt) => format!("'{}'", dt.format("%Y-%m-%d %H:%M:%S%.f")),
        Bind::Bytes(b) => format!("0x{}", b.iter().map(|byte| format!("{byte:02X}")).collect::<String>()),
    }
}

fn quoted(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::{Action, Value};

    use super::*;

    const SEED: &str = r#"{"type": "sqlserver", "host": "127.0.0.1", "port": 1, "user": "sa", "password": "secret", "database": "his"}"#;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    #[test]
    fn the_seed_payment_merges() {
        let payment = batch(
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
        );
        let statements = render(&SEED.replace('}', r#", "timezone": "+05:30"}"#), "/", &[payment]).unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(
            (statements[0].sql.as_str(), statements[2].sql.as_str()),
            ("BEGIN TRANSACTION", "COMMIT TRANSACTION")
        );
        assert_eq!(
            statements[1].sql,
            "MERGE INTO [HIS_payments] WITH (HOLDLOCK) AS t USING (VALUES (@P1, @P2, @P3, @P4)) \
             AS s ([HIS_payment_id], [HIS_amount], [HIS_payment_status], [HIS_paid_at]) \
             ON t.[HIS_payment_id] = s.[HIS_payment_id] WHEN MATCHED THEN UPDATE SET t.[HIS_amount] = s.[HIS_amount], \
             t.[HIS_payment_status] = s.[HIS_payment_status], t.[HIS_paid_at] = s.[HIS_paid_at] \
             WHEN NOT MATCHED THEN INSERT ([HIS_payment_id], [HIS_amount], [HIS_payment_status], [HIS_paid_at]) \
             VALUES (s.[HIS_payment_id], s.[HIS_amount], s.[HIS_payment_status], s.[HIS_paid_at]);"
        );
        assert_eq!(statements[1].params, ["789", "50.0", "N'paid'", "'2025-03-03 14:30:00'"]);
        let e = render(&SEED.replace("\"his\"", "\"\""), "/", &[]).unwrap_err();
        assert!(e.message.starts_with("database.database: must not be empty"), "{e}");
    }

    #[test]
    fn a_merge_column_of_mixed_kinds_goes_as_text() {
        let mixed = batch(
            "t",
            Action::UPSERT,
            &["k", "v"],
            &["k"],
            vec![Value::int(1), Value::int(7), Value::int(2), Value::text("007")],
        );
        let statements = statements(HisZone::utc(), &[mixed]).unwrap();
        assert_eq!(statements[1].params, ["1", "N'7'", "2", "N'007'"]);
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
        let statements = statements(HisZone::utc(), &[update]).unwrap();
        assert_eq!(
            statements[1],
            Rendered::new(
                "UPDATE [HIS_appointments] WITH (HOLDLOCK) SET [NOTE] = @P1 WHERE [ID] = @P2",
                vec!["N'n'", "7"]
            )
        );
        assert_eq!(
            statements[2],
            Rendered::new(
                "-- only if the statement above found no row (update, if_missing: insert)\n\
                 INSERT INTO [HIS_appointments] ([ID], [NOTE]) VALUES (@P1, @P2)",
                vec!["7", "N'n'"]
            )
        );
    }

    #[test]
    fn a_soft_delete_updates_and_a_key_only_one_runs_nothing() {
        let soft = batch(
            "HIS_appointments",
            Action::SOFT_DELETE,
            &["ID", "STATUS"],
            &["ID"],
            vec![Value::int(7), Value::text("X")],
        );
        let key_only = batch("t", Action::SOFT_DELETE, &["k"], &["k"], vec![Value::int(1)]);
        let delete = batch("t", Action::DELETE, &["k"], &["k"], vec![Value::int(1)]);
        let statements = statements(HisZone::utc(), &[soft, key_only, delete]).unwrap();
        let texts: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            texts,
            [
                "BEGIN TRANSACTION",
                "UPDATE [HIS_appointments] SET [STATUS] = @P1 WHERE [ID] = @P2",
                "DELETE FROM [t] WHERE [k] = @P1",
                "COMMIT TRANSACTION"
            ]
        );
    }

    #[test]
    fn seventy_thousand_values_go_in_statements_under_2100_parameters() {
        let values: Vec<Value> = (0..70_000).map(|i| Value::int(i as i64)).collect();
        let big = batch("t", Action::UPSERT, &["a", "b", "c", "d", "e", "f", "g"], &["a"], values);
        let statements = statements(HisZone::utc(), &[big]).unwrap();
        let merges = &statements[1..statements.len() - 1];
        assert_eq!(merges.len(), 10_000_usize.div_ceil(299));
        assert!(merges.iter().all(|s| s.params.len() <= sql::MAX_VALUE_PARAMETERS));
        assert_eq!(merges.iter().map(|s| s.params.len()).sum::<usize>(), 70_000);
        let last = merges.last().unwrap();
        assert!(last.sql.contains(&format!("@P{}", last.params.len())));
        assert!(!last.sql.contains(&format!("@P{}", last.params.len() + 1)));
    }
}
