//! The statements the writer would run for some batches, without running
//! them: what `buktor-middleware map --sql` prints.
//!
//! It follows [`crate::writer`] step by step and builds every text with the
//! same functions of [`crate::sql`], so that what it shows is what the
//! writer sends: one IMMEDIATE transaction around every batch, each batch
//! one column set (see [`WriteBatch::column_sets`]) after another, upserts
//! as multi-row statements under SQLite's parameter limit, the other
//! actions row by row. Each parameter is shown as it is bound: SQLite
//! stores decimal, timestamp and date text exactly as sent.
//!
//! Where what runs next depends on what the database answers (an update
//! that matches no row, a table that `create_missing` would create), a
//! `-- ` comment line in the statement says so.

use his_plugin_api::{ErrorKind, IfMissing, PluginError, Statement, Value, ValueRef, WriteAction, WriteBatch};

use crate::{settings::Settings, sql};

/// The SDK's statement: SQL text (after any `-- ` comment lines) and each
/// bound parameter, in bind order, as text.
pub type Rendered = Statement;

/// Parses the `database` settings as `open` does (nothing is opened), and
/// renders the statements for `batches`, written together in one
/// transaction.
pub fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let settings = Settings::parse(settings_json, config_dir)?;
    statements(&settings, batches)
}

/// The statements for `batches`, in the order the writer runs them.
pub fn statements(settings: &Settings, batches: &[WriteBatch]) -> Result<Vec<Rendered>, PluginError> {
    let mut begin = Rendered::new("BEGIN IMMEDIATE", Vec::<String>::new());
    let mut created: Vec<&str> = Vec::new();
    for batch in batches.iter().filter(|b| b.action().get() != WriteAction::Delete) {
        if !created.contains(&batch.table()) {
            created.push(batch.table());
        }
    }
    if settings.create_missing && !created.is_empty() {
        begin = begin.noted(&format!(
            "database.create_missing is on: before this, the writer creates {} or the columns it lacks, if the \
             file lacks them (not shown: that depends on the file)",
            created.join(", ")
        ));
    }
    let mut out = vec![begin];
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        batch_statements(batch, &mut out).map_err(|e| e.offset_row(first_row))?;
    }
    out.push(Rendered::new("COMMIT", Vec::<String>::new()));
    Ok(out)
}

/// One batch's statements, column set after column set.
fn batch_statements(batch: &WriteBatch, out: &mut Vec<Rendered>) -> Result<(), PluginError> {
    let names: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
    let keys: Vec<&str> = batch.key_columns().iter().map(|c| c.as_str()).collect();
    let key_positions: Vec<usize> = keys.iter().map(|k| position(&names, k)).collect();
    let rows: Vec<&[Value]> = batch.rows().collect();
    let table = batch.table();
    for set in batch.column_sets() {
        let columns: Vec<&str> = set.columns.iter().map(|&c| names[c]).collect();
        let values = |row: usize, positions: &[usize]| -> Result<Vec<String>, PluginError> {
            positions.iter().map(|&p| shown(&rows[row][p])).collect()
        };
        let action = batch.action().get();
        match action {
            WriteAction::Upsert => {
                for chunk in set.rows.chunks(sql::max_rows_per_statement(columns.len())) {
                    let mut params = Vec::with_capacity(chunk.len() * columns.len());
                    for &row in chunk {
                        params.extend(values(row, &set.columns)?);
                    }
                    out.push(Rendered::new(sql::upsert(table, &columns, &keys, chunk.len()), params));
                }
            }
            WriteAction::Insert => {
                for &row in &set.rows {
                    out.push(Rendered::new(sql::insert(table, &columns), values(row, &set.columns)?));
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
                    let probe = if set_names.is_empty() {
                        Rendered::new(sql::exists(table, &keys), values(row, &key_positions)?)
                            .noted("nothing to set but the key: whether the row exists")
                    } else {
                        let mut params = values(row, &set_positions)?;
                        params.extend(values(row, &key_positions)?);
                        Rendered::new(sql::update(table, &set_names, &keys), params)
                    };
                    let insert = Rendered::new(sql::insert(table, &columns), values(row, &set.columns)?);
                    out.extend(Statement::update_steps(probe, || insert, if_missing));
                }
            }
            WriteAction::Delete => {
                for &row in &set.rows {
                    out.push(Rendered::new(sql::delete(table, &keys), values(row, &key_positions)?));
                }
            }
            other => {
                return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unknown action {other:?}")));
            }
        }
    }
    Ok(())
}

fn position(names: &[&str], name: &str) -> usize {
    names.iter().position(|n| *n == name).expect("the host sends key columns among the columns")
}

/// A value as the writer binds it (see `Bind` in [`crate::writer`]).
fn shown(value: &Value) -> Result<String, PluginError> {
    Ok(match value.get() {
        ValueRef::Null => "NULL".into(),
        ValueRef::Bool(b) => i64::from(b).to_string(),
        ValueRef::Int(i) => i.to_string(),
        ValueRef::Float(f) => format!("{f:?}"),
        ValueRef::Decimal(s) => s.to_string(),
        ValueRef::Text(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => quoted(s),
        ValueRef::Bytes(b) => format!("X'{}'", b.iter().map(|byte| format!("{byte:02X}")).collect::<String>()),
        other => {
            return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unsupported value {other:?}")));
        }
    })
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::Action;

    use super::*;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    fn seed_settings() -> Settings {
        Settings::parse(r#"{"type":"sqlite","path":"his.db"}"#, "/etc/buktor").unwrap()
    }

    fn payment() -> WriteBatch {
        batch(
            "HIS_payments",
            Action::UPSERT,
            &["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"],
            &["HIS_payment_id"],
            vec![Value::int(789), Value::decimal("50.0"), Value::text("paid"), Value::null()],
        )
    }

    #[test]
    fn the_seed_payment_upserts_in_one_transaction() {
        let statements = statements(&seed_settings(), &[payment()]).unwrap();
        assert_eq!(
            statements,
            [
                Rendered::new("BEGIN IMMEDIATE", Vec::<String>::new()),
                Rendered::new(
                    "INSERT INTO \"HIS_payments\" (\"HIS_payment_id\", \"HIS_amount\", \"HIS_payment_status\", \
                     \"HIS_paid_at\") VALUES (?, ?, ?, ?) ON CONFLICT (\"HIS_payment_id\") DO UPDATE SET \
                     \"HIS_amount\" = excluded.\"HIS_amount\", \"HIS_payment_status\" = excluded.\"HIS_payment_status\", \
                     \"HIS_paid_at\" = excluded.\"HIS_paid_at\"",
                    vec!["789", "50.0", "'paid'", "NULL"]
                ),
                Rendered::new("COMMIT", Vec::<String>::new()),
            ]
        );
    }

    #[test]
    fn settings_are_parsed_as_open_parses_them_and_create_missing_is_said() {
        let e = render(r#"{"type":"sqlite"}"#, "/", &[payment()]).unwrap_err();
        assert!(e.message.contains("missing field `path`"), "{e}");
        let statements =
            render(r#"{"type":"sqlite","path":"his.db","create_missing":true}"#, "/nonexistent", &[payment()]).unwrap();
        assert_eq!(
            statements[0].sql,
            "-- database.create_missing is on: before this, the writer creates HIS_payments or the columns it lacks, \
             if the file lacks them (not shown: that depends on the file)\nBEGIN IMMEDIATE"
        );
        assert!(statements[1].sql.starts_with("INSERT INTO \"HIS_payments\""));
        // A delete creates nothing.
        let delete = batch("t", Action::DELETE, &["k"], &["k"], vec![Value::int(1)]);
        let statements = render(r#"{"type":"sqlite","path":"his.db","create_missing":true}"#, "/", &[delete]).unwrap();
        assert_eq!(statements[0].sql, "BEGIN IMMEDIATE");
    }

    #[test]
    fn a_partial_update_sets_only_what_the_row_carries_then_may_insert() {
        let update = batch(
            "HIS_appointments",
            Action::update(IfMissing::Insert),
            &["ID", "NOTE", "ROOM"],
            &["ID"],
            vec![Value::int(7), Value::text("bring X-rays"), Value::null()],
        )
        .with_presence(|_, column| column != 2);
        let statements = statements(&seed_settings(), &[update]).unwrap();
        assert_eq!(statements.len(), 4);
        assert_eq!(
            statements[1],
            Rendered::new("UPDATE \"HIS_appointments\" SET \"NOTE\" = ? WHERE \"ID\" = ?", vec!["'bring X-rays'", "7"])
        );
        assert_eq!(
            statements[2].sql,
            "-- only if the statement above found no row (update, if_missing: insert)\n\
             INSERT INTO \"HIS_appointments\" (\"ID\", \"NOTE\") VALUES (?, ?)"
        );
        assert_eq!(statements[2].params, ["7", "'bring X-rays'"]);
    }

    #[test]
    fn a_soft_delete_is_an_update_of_its_columns_and_a_delete_goes_by_key() {
        let soft = batch(
            "HIS_appointments",
            Action::SOFT_DELETE,
            &["ID", "STATUS", "DELETED_AT"],
            &["ID"],
            vec![Value::int(7), Value::text("X"), Value::timestamp("2025-03-03T09:00:00Z")],
        );
        let delete = batch("HIS_notes", Action::DELETE, &["NOTE_ID"], &["NOTE_ID"], vec![Value::text("o'k")]);
        let statements = statements(&seed_settings(), &[soft, delete]).unwrap();
        assert_eq!(statements.len(), 4, "one transaction for both batches: {statements:#?}");
        assert_eq!(
            statements[1],
            Rendered::new(
                "UPDATE \"HIS_appointments\" SET \"STATUS\" = ?, \"DELETED_AT\" = ? WHERE \"ID\" = ?",
                vec!["'X'", "'2025-03-03T09:00:00Z'", "7"]
            )
        );
        assert_eq!(statements[2], Rendered::new("DELETE FROM \"HIS_notes\" WHERE \"NOTE_ID\" = ?", vec!["'o''k'"]));
    }

    #[test]
    fn an_update_that_must_find_its_row_says_so() {
        let update = batch("t", Action::update(IfMissing::Error), &["k"], &["k"], vec![Value::int(1)]);
        let statements = statements(&seed_settings(), &[update]).unwrap();
        assert_eq!(statements[1].params, ["1"]);
        assert!(statements[1].sql.ends_with("SELECT 1 FROM \"t\" WHERE \"k\" = ?"), "{}", statements[1].sql);
        assert!(statements[1].sql.starts_with("-- if no row has this key, the row fails"), "{}", statements[1].sql);
    }

    #[test]
    fn seventy_thousand_values_go_in_statements_under_the_limit() {
        let columns = ["a", "b", "c", "d", "e", "f", "g"];
        let values: Vec<Value> = (0..70_000).map(|i| Value::int(i as i64)).collect();
        let big = batch("t", Action::UPSERT, &columns, &["a"], values);
        let statements = statements(&seed_settings(), &[big]).unwrap();
        let upserts = &statements[1..statements.len() - 1];
        let sizes: Vec<usize> = upserts.iter().map(|s| s.params.len()).collect();
        assert_eq!(sizes, [4_680 * 7, 4_680 * 7, 640 * 7]);
        assert!(sizes.iter().all(|&n| n <= sql::MAX_PARAMETERS));
        for statement in upserts {
            assert_eq!(statement.sql.matches('?').count(), statement.params.len());
        }
        assert_eq!(upserts[2].params.last().map(abi_stable::std_types::RString::as_str), Some("69999"));
    }

    #[test]
    fn values_show_as_they_are_bound() {
        let shown = |v: Value| shown(&v).unwrap();
        assert_eq!(shown(Value::bool(true)), "1");
        assert_eq!(shown(Value::float(1.5)), "1.5");
        assert_eq!(shown(Value::date("1990-05-17")), "'1990-05-17'");
        assert_eq!(shown(Value::bytes(vec![0, 255])), "X'00FF'");
    }
}
