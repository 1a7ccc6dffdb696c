//! The statements for one batch, as steps: what the writer runs and what
//! `map --sql` shows ([`crate::render`]), built once, here.
//!
//! Each batch goes column set by column set ([`WriteBatch::column_sets`]),
//! so that a partial row's absent columns are neither written nor cleared:
//! - upsert: multi-row `INSERT … ON CONFLICT (keys) DO UPDATE SET c =
//!   EXCLUDED.c` (`DO NOTHING` for key-only rows), cut under 65,535
//!   parameters ([`sql::statement_ranges`]);
//! - insert: one row per `INSERT`, so that a key that exists fails its row
//!   (23505), never an overwrite;
//! - update, soft delete: one `UPDATE … WHERE keys` per row, whose count
//!   of rows says whether the key had a row (PostgreSQL counts a row
//!   matched even if no value changed); a row with nothing to set but its
//!   key is looked up with `SELECT 1 … FOR UPDATE` instead;
//! - delete: one `DELETE … WHERE keys` per row.

use std::collections::HashMap;

use his_plugin_api::{ErrorKind, IfMissing, PluginError, Value, WriteAction, WriteBatch};

use crate::{
    sql,
    values::{Bind, ColumnType, expression},
};

/// A table's columns and their types, by name.
pub type Columns = HashMap<String, ColumnType>;

/// SQL text and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql<'a> {
    /// The text, with `$n` placeholders.
    pub text: String,
    /// The parameters, `$1` first.
    pub binds: Vec<Bind<'a>>,
}

/// One step of a batch's write.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// A statement that writes `rows` (the batch's rows, in order) with the
    /// batch's columns `columns`; `insert` for a plain `INSERT`, whose
    /// unique violation means "this key has a row".
    Run { sql: Sql<'a>, rows: Vec<usize>, columns: Vec<usize>, insert: bool },
    /// One row's update: `probe` (an `UPDATE`, or a `SELECT … FOR UPDATE`)
    /// finds the row or not; if not, `if_missing` says what follows
    /// (`insert` for [`IfMissing::Insert`]).
    Update { probe: Sql<'a>, insert: Sql<'a>, if_missing: IfMissing, row: usize },
}

/// Builds one statement's parameters, numbering them.
#[derive(Default)]
struct Params<'a> {
    binds: Vec<Bind<'a>>,
}

impl<'a> Params<'a> {
    fn push(&mut self, value: &'a Value, column: Option<&ColumnType>) -> Result<String, PluginError> {
        let (sql, bind) = expression(value, column, self.binds.len() + 1)?;
        self.binds.extend(bind);
        Ok(sql)
    }

    fn done(self, text: String) -> Sql<'a> {
        Sql { text, binds: self.binds }
    }
}

/// The steps for `batch` into `schema`, with its table's column types if
/// known (`None` when rendering, or for a table the catalog lacks). A
/// value that cannot be bound fails its row (counted in the batch).
pub fn batch_steps<'a>(
    schema: &str,
    batch: &'a WriteBatch,
    types: Option<&Columns>,
) -> Result<Vec<Step<'a>>, PluginError> {
    let names: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
    let keys: Vec<usize> = batch
        .key_columns()
        .iter()
        .map(|k| names.iter().position(|n| *n == k.as_str()).expect("the host sends key columns among the columns"))
        .collect();
    let key_names: Vec<&str> = keys.iter().map(|&k| names[k]).collect();
    let column_types: Vec<Option<&ColumnType>> = names.iter().map(|n| types.and_then(|t| t.get(*n))).collect();
    let rows: Vec<&[Value]> = batch.rows().collect();
    let table = sql::table(schema, batch.table());
    let action = batch.action().get();
    let mut steps = Vec::new();

    // `column = expression` for `columns` of `row`, numbering on in `params`.
    let pairs =
        |params: &mut Params<'a>, row: usize, columns: &[usize]| -> Result<Vec<(&'a str, String)>, PluginError> {
            columns
                .iter()
                .map(|&c| Ok((names[c], params.push(&rows[row][c], column_types[c]).map_err(|e| e.with_row(row))?)))
                .collect()
        };
    let insert = |row: usize, columns: &[usize]| -> Result<Sql<'a>, PluginError> {
        let mut params = Params::default();
        let values: Vec<String> = pairs(&mut params, row, columns)?.into_iter().map(|(_, e)| e).collect();
        let column_names: Vec<&'a str> = columns.iter().map(|&c| names[c]).collect();
        Ok(params.done(sql::insert(&table, &column_names, &[values])))
    };

    for set in batch.column_sets() {
        let column_names: Vec<&str> = set.columns.iter().map(|&c| names[c]).collect();
        match action {
            WriteAction::Upsert => {
                let tail = sql::on_conflict(&column_names, &key_names);
                for range in sql::statement_ranges(set.rows.len(), set.columns.len()) {
                    let mut params = Params::default();
                    let mut values = Vec::with_capacity(range.len());
                    for &row in &set.rows[range.clone()] {
                        let row_values = pairs(&mut params, row, &set.columns)?;
                        values.push(row_values.into_iter().map(|(_, e)| e).collect::<Vec<_>>());
                    }
                    let text = sql::insert(&table, &column_names, &values) + &tail;
                    steps.push(Step::Run {
                        sql: params.done(text),
                        rows: set.rows[range].to_vec(),
                        columns: set.columns.clone(),
                        insert: false,
                    });
                }
            }
            WriteAction::Insert => {
                for &row in &set.rows {
                    steps.push(Step::Run {
                        sql: insert(row, &set.columns)?,
                        rows: vec![row],
                        columns: set.columns.clone(),
                        insert: true,
                    });
                }
            }
            WriteAction::Update(_) | WriteAction::SoftDelete => {
                let if_missing = match action {
                    WriteAction::Update(if_missing) => if_missing,
                    _ => IfMissing::Ignore,
                };
                let set_columns: Vec<usize> = set.columns.iter().copied().filter(|c| !keys.contains(c)).collect();
                for &row in &set.rows {
                    let mut params = Params::default();
                    let probe = if set_columns.is_empty() {
                        let where_keys = pairs(&mut params, row, &keys)?;
                        params.done(sql::exists(&table, &where_keys))
                    } else {
                        let assignments = pairs(&mut params, row, &set_columns)?;
                        let where_keys = pairs(&mut params, row, &keys)?;
                        params.done(sql::update(&table, &assignments, &where_keys))
                    };
                    let insert = match if_missing {
                        IfMissing::Insert => insert(row, &set.columns)?,
                        _ => Sql { text: String::new(), binds: Vec::new() },
                    };
                    steps.push(Step::Update { probe, insert, if_missing, row });
                }
            }
            WriteAction::Delete => {
                for &row in &set.rows {
                    let mut params = Params::default();
                    let where_keys = pairs(&mut params, row, &keys)?;
                    steps.push(Step::Run {
                        sql: params.done(sql::delete(&table, &where_keys)),
                        rows: vec![row],
                        columns: keys.clone(),
                        insert: false,
                    });
                }
            }
            other => {
                return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unknown action {other:?}")));
            }
        }
    }
    Ok(steps)
}
