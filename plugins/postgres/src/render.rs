//! The statements the writer would run for some batches, without a
//! server: what `buktor-middleware map --sql` prints.
//!
//! The steps are the writer's own ([`crate::plan::batch_steps`]): one
//! transaction around every batch (its `BEGIN` sets the statement and lock
//! timeouts of that transaction), each batch one column set after another,
//! upserts as multi-row `INSERT … ON CONFLICT` statements cut under 65,535
//! parameters, the other actions row by row. Placeholders are `$1…`, each
//! with the cast that says how it is bound; parameters are shown as bound
//! (timestamps with an offset as their instant in UTC, decimals as their
//! exact text).
//!
//! One difference, said in a note on `BEGIN`: the writer reads each
//! table's column types from the catalog and casts a text or decimal
//! parameter into a column that is not text to that column's type
//! (`CAST($2::text AS numeric(12,2))`); without a server, they are shown
//! as `$2::text` and `$2::numeric`.

use his_plugin_api::{PluginError, Statement, WriteBatch};

use crate::{
    plan::{self, Sql, Step},
    settings::Settings,
    sql,
};

/// Parses the `database` settings as `open` does (without connecting), and
/// renders the statements for `batches`, written together in one
/// transaction.
pub fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<Statement>, PluginError> {
    let settings = Settings::parse(settings_json, config_dir)?;
    statements(&settings, batches)
}

/// The statements for `batches`, in the order the writer runs them.
pub fn statements(settings: &Settings, batches: &[WriteBatch]) -> Result<Vec<Statement>, PluginError> {
    let begin = Statement::new(sql::begin(settings.statement_timeout, settings.lock_timeout), Vec::<String>::new())
        .noted(
            "the writer casts a text or decimal parameter into a column that is not text to that column's type, \
             read from the catalog (CAST($n::text AS <type>)); shown here without a server as $n::text, $n::numeric",
        );
    let mut out = vec![begin];
    for (first_row, batch) in WriteBatch::with_first_rows(batches) {
        let steps = plan::batch_steps(&settings.schema, batch, None).map_err(|e| e.offset_row(first_row))?;
        for step in steps {
            match step {
                Step::Run { sql, .. } => out.push(shown(&sql)),
                Step::Update { probe, insert, if_missing, .. } => {
                    let probe = match probe.text.starts_with("SELECT") {
                        true => shown(&probe).noted("nothing to set but the key: whether the row exists"),
                        false => shown(&probe),
                    };
                    out.extend(Statement::update_steps(probe, || shown(&insert), if_missing));
                }
            }
        }
    }
    out.push(Statement::new("COMMIT", Vec::<String>::new()));
    Ok(out)
}

fn shown(sql: &Sql<'_>) -> Statement {
    Statement::new(sql.text.as_str(), sql.binds.iter().map(|b| b.shown()))
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::{Action, ErrorKind, IfMissing, Value};

    use super::*;

    /// Port 1: nothing listens; rendering never connects.
    const SEED: &str =
        r#"{"type": "postgres", "host": "127.0.0.1", "port": 1, "user": "u", "password": "secret", "database": "his"}"#;

    fn names(list: &[&str]) -> RVec<RString> {
        list.iter().map(|n| RString::from(*n)).collect()
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    fn settings() -> Settings {
        Settings::parse(SEED, "/").unwrap()
    }

    fn payment() -> WriteBatch {
        batch(
            "HIS_payments",
            Action::UPSERT,
            &["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at"],
            &["HIS_payment_id"],
            vec![Value::int(789), Value::text("1500"), Value::text("paid"), Value::timestamp("2025-03-02T11:00:00")],
        )
    }

    #[test]
    fn the_seed_payment_upserts_in_one_transaction() {
        let statements = render(SEED, "/", &[payment()]).unwrap();
        assert_eq!(statements.len(), 3);
        assert!(
            statements[0].sql.ends_with("\nBEGIN; SET LOCAL statement_timeout = 60000; SET LOCAL lock_timeout = 5000"),
            "{}",
            statements[0].sql
        );
        assert_eq!(
            statements[1],
            Statement::new(
                "INSERT INTO \"public\".\"HIS_payments\" (\"HIS_payment_id\", \"HIS_amount\", \"HIS_payment_status\", \
                 \"HIS_paid_at\") VALUES ($1::int8, $2::text, $3::text, $4::timestamp) ON CONFLICT (\"HIS_payment_id\") \
                 DO UPDATE SET \"HIS_amount\" = EXCLUDED.\"HIS_amount\", \"HIS_payment_status\" = \
                 EXCLUDED.\"HIS_payment_status\", \"HIS_paid_at\" = EXCLUDED.\"HIS_paid_at\"",
                vec!["789", "'1500'", "'paid'", "'2025-03-02 11:00:00'"]
            )
        );
        assert_eq!(statements[2], Statement::new("COMMIT", Vec::<String>::new()));
        // Settings are checked as open checks them, and the password never shows.
        let e = render(&SEED.replace("\"u\"", "\"\""), "/", &[]).unwrap_err();
        assert!(e.message.starts_with("database.user: must not be empty"), "{e}");
        assert!(!e.message.contains("secret"));
    }

    #[test]
    fn seventy_thousand_values_go_in_statements_under_the_limit() {
        let columns = ["a", "b", "c", "d", "e", "f", "g"];
        let values: Vec<Value> =
            (0..70_000).map(|i| if i % 7 == 3 { Value::null() } else { Value::int(i as i64) }).collect();
        let big = batch("t", Action::UPSERT, &columns, &["a"], values);
        let statements = statements(&settings(), &[big]).unwrap();
        let upserts = &statements[1..statements.len() - 1];
        // 9,362 rows of 7 columns is 65,534 parameters; NULLs take none.
        let rows: Vec<usize> = upserts.iter().map(|s| s.sql.matches("), (").count() + 1).collect();
        assert_eq!(rows, [9_362, 638]);
        for statement in upserts {
            assert!(statement.params.len() <= sql::MAX_PARAMETERS);
            let last = format!("${}::int8", statement.params.len());
            assert!(
                statement.sql.contains(&last) && !statement.sql.contains(&format!("${}:", statement.params.len() + 1))
            );
        }
        assert_eq!(upserts[0].params.len(), 9_362 * 6);
        assert_eq!(upserts[1].params.last().map(RString::as_str), Some("69999"));
    }

    #[test]
    fn a_partial_update_sets_only_what_the_row_carries_then_may_insert() {
        let update = batch(
            "HIS_appointments",
            Action::update(IfMissing::Insert),
            &["ID", "NOTE", "ROOM"],
            &["ID"],
            vec![Value::int(7), Value::text("it's"), Value::null()],
        )
        .with_presence(|_, column| column != 2);
        let statements = statements(&settings(), &[update]).unwrap();
        assert_eq!(statements.len(), 4, "{statements:#?}");
        assert_eq!(
            statements[1],
            Statement::new(
                "UPDATE \"public\".\"HIS_appointments\" SET \"NOTE\" = $1::text WHERE \"ID\" = $2::int8",
                vec!["'it''s'", "7"]
            )
        );
        assert_eq!(
            statements[2].sql,
            "-- only if the statement above found no row (update, if_missing: insert)\n\
             INSERT INTO \"public\".\"HIS_appointments\" (\"ID\", \"NOTE\") VALUES ($1::int8, $2::text)"
        );
        assert_eq!(statements[2].params, ["7", "'it''s'"]);
    }

    #[test]
    fn a_soft_delete_updates_its_columns_and_a_delete_goes_by_key() {
        let soft = batch(
            "HIS_appointments",
            Action::SOFT_DELETE,
            &["ID", "STATUS", "DELETED_AT"],
            &["ID"],
            vec![Value::int(7), Value::text("X"), Value::timestamp("2025-03-03T09:00:00+05:30")],
        );
        let delete = batch("HIS_notes", Action::DELETE, &["NOTE_ID"], &["NOTE_ID"], vec![Value::text("o'k")]);
        let statements = statements(&settings(), &[soft, delete]).unwrap();
        assert_eq!(statements.len(), 4, "one transaction for both batches: {statements:#?}");
        assert_eq!(
            statements[1],
            Statement::new(
                "UPDATE \"public\".\"HIS_appointments\" SET \"STATUS\" = $1::text, \"DELETED_AT\" = $2::timestamptz \
                 WHERE \"ID\" = $3::int8",
                vec!["'X'", "'2025-03-03 03:30:00+00'", "7"]
            )
        );
        assert_eq!(
            statements[2],
            Statement::new("DELETE FROM \"public\".\"HIS_notes\" WHERE \"NOTE_ID\" = $1::text", vec!["'o''k'"])
        );
    }

    #[test]
    fn an_update_that_must_find_its_row_says_so_and_key_only_rows_do_nothing() {
        let update = batch("t", Action::update(IfMissing::Error), &["k"], &["k"], vec![Value::int(1)]);
        let shown = statements(&settings(), &[update]).unwrap();
        assert!(shown[1].sql.starts_with("-- if no row has this key, the row fails"), "{}", shown[1].sql);
        assert!(shown[1].sql.ends_with("SELECT 1 FROM \"public\".\"t\" WHERE \"k\" = $1::int8 FOR UPDATE"));
        let keys_only = batch("t", Action::UPSERT, &["k"], &["k"], vec![Value::int(1)]);
        let shown = statements(&settings(), &[keys_only]).unwrap();
        assert!(shown[1].sql.ends_with(" ON CONFLICT (\"k\") DO NOTHING"), "{}", shown[1].sql);
    }

    #[test]
    fn a_value_that_cannot_be_bound_fails_its_row_across_batches() {
        let bad = batch(
            "t",
            Action::UPSERT,
            &["k", "at"],
            &["k"],
            vec![Value::int(1), Value::timestamp("2025-03-03T09:00:00Z"), Value::int(2), Value::timestamp("nope")],
        );
        let e = statements(&settings(), &[bad.clone(), bad]).unwrap_err();
        assert_eq!((e.kind, e.row.into_option()), (ErrorKind::DATA, Some(1)));
    }
}
