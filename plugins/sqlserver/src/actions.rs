//! The write actions, statement by statement, inside the transaction the
//! writer opened for the batch.
//!
//! The batch is written one column set ([`WriteBatch::column_sets`]) after
//! another, so that a column a row does not carry is neither set nor
//! inserted: the HIS keeps what it has.
//!
//! - An upsert stays a multi-row MERGE per column set: the set's rows carry
//!   the same columns, so one statement serves them all.
//! - Insert, update, soft-delete and delete go row by row: each row has an
//!   outcome of its own (a key that exists, a key that matches no row), and
//!   a failure names its row ([`PluginError::with_row`]), so that the host
//!   sets that row aside and writes the others.

use his_plugin_api::{ColumnSet, ErrorKind, IfMissing, PluginError, WriteAction, WriteBatch};
use tiberius::Query;

use crate::{
    errors::{classify, existing_key},
    sql,
    values::{Bind, push, uniform},
    writer::Connection,
};

/// Applies `batch`'s action to its rows; `binds` holds every row's values,
/// bound, in the batch's column order.
pub async fn apply(
    connection: &mut Connection,
    batch: &WriteBatch,
    binds: &[Vec<Bind<'_>>],
) -> Result<(), PluginError> {
    let target = Target::new(batch, binds)?;
    for set in batch.column_sets() {
        match batch.action().get() {
            WriteAction::Upsert => upsert(connection, &target, &set).await?,
            WriteAction::Insert => {
                for &row in &set.rows {
                    let inserted = insert(connection, &target, &set.columns, row).await;
                    inserted.map_err(|e| existing_key(e).with_row(row))?;
                }
            }
            WriteAction::Update(if_missing) => {
                for &row in &set.rows {
                    update(connection, &target, &set.columns, row, if_missing).await.map_err(|e| e.with_row(row))?;
                }
            }
            // A soft-delete is an update of the carried non-key columns
            // whose missing row is already as good as deleted.
            WriteAction::SoftDelete => {
                for &row in &set.rows {
                    let updated = update(connection, &target, &set.columns, row, IfMissing::Ignore).await;
                    updated.map_err(|e| e.with_row(row))?;
                }
            }
            WriteAction::Delete => {
                for &row in &set.rows {
                    delete(connection, &target, row).await.map_err(|e| e.with_row(row))?;
                }
            }
            other => {
                return Err(PluginError::permanent(
                    ErrorKind::UNSUPPORTED,
                    format!("the sqlserver plugin does not know the action {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// A batch's table, columns and bound values: what each statement picks
/// its names and parameters from, by column index.
pub(crate) struct Target<'a> {
    pub(crate) table: &'a str,
    pub(crate) names: Vec<&'a str>,
    /// Indexes of the key columns.
    pub(crate) keys: Vec<usize>,
    binds: &'a [Vec<Bind<'a>>],
}

impl<'a> Target<'a> {
    pub(crate) fn new(batch: &'a WriteBatch, binds: &'a [Vec<Bind<'a>>]) -> Result<Self, PluginError> {
        let names: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
        let keys = batch
            .key_columns()
            .iter()
            .map(|key| {
                names.iter().position(|name| *name == key.as_str()).ok_or_else(|| {
                    // The host guarantees it; a broken promise is not a row's fault.
                    PluginError::permanent(ErrorKind::OTHER, format!("the key column {key} is not among the columns"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { table: batch.table(), names, keys, binds })
    }

    /// The names of `columns`.
    fn names(&self, columns: &[usize]) -> Vec<&'a str> {
        columns.iter().map(|&c| self.names[c]).collect()
    }

    /// `row`'s values of `columns`, in their order.
    fn values<'s>(&'s self, row: usize, columns: &'s [usize]) -> impl Iterator<Item = &'s Bind<'a>> + 's {
        columns.iter().map(move |&c| &self.binds[row][c])
    }

    /// `columns` without the key columns: what an update sets.
    fn non_keys(&self, columns: &[usize]) -> Vec<usize> {
        columns.iter().copied().filter(|c| !self.keys.contains(c)).collect()
    }
}

/// MERGEs a column set's rows, as many per statement as the parameter limit
/// allows, each column of a statement with one parameter type.
async fn upsert(connection: &mut Connection, target: &Target<'_>, set: &ColumnSet) -> Result<(), PluginError> {
    let names = target.names(&set.columns);
    let keys = target.names(&target.keys);
    for range in sql::statement_ranges(set.rows.len(), set.columns.len()) {
        let rows = &set.rows[range];
        let mut binds: Vec<Vec<Bind<'_>>> =
            rows.iter().map(|&row| target.values(row, &set.columns).cloned().collect()).collect();
        for column in 0..set.columns.len() {
            let mut cells: Vec<&mut Bind<'_>> = binds.iter_mut().map(|row| &mut row[column]).collect();
            uniform(&mut cells)?;
        }
        let merged = execute(connection, sql::merge(target.table, &names, &keys, rows.len()), binds.iter().flatten());
        merged.await.map_err(|e| match rows {
            // With one row in the statement, the failing row is known.
            [row] => e.with_row(*row),
            _ => e,
        })?;
    }
    Ok(())
}

/// Inserts `row` with the values of `columns`: those it carries.
async fn insert(
    connection: &mut Connection,
    target: &Target<'_>,
    columns: &[usize],
    row: usize,
) -> Result<(), PluginError> {
    let text = sql::insert(target.table, &target.names(columns));
    execute(connection, text, target.values(row, columns)).await.map(drop)
}

/// Sets `row`'s carried non-key columns on the row with its key; a key that
/// matches no row is handled as `if_missing` says.
async fn update(
    connection: &mut Connection,
    target: &Target<'_>,
    columns: &[usize],
    row: usize,
    if_missing: IfMissing,
) -> Result<(), PluginError> {
    let set = target.non_keys(columns);
    let found = match (set.is_empty(), if_missing) {
        // Nothing to set, and a missing row is fine: nothing to ask.
        (true, IfMissing::Ignore) => return Ok(()),
        (true, _) => exists(connection, target, row).await?,
        (false, _) => {
            // Only for an insert that may follow: see sql::update.
            let hold = if_missing == IfMissing::Insert;
            let text = sql::update(target.table, &target.names(&set), &target.names(&target.keys), hold);
            let values = target.values(row, &set).chain(target.values(row, &target.keys));
            execute(connection, text, values).await? > 0
        }
    };
    match (found, if_missing) {
        (false, IfMissing::Error) => {
            Err(PluginError::permanent(ErrorKind::DATA, format!("update: no row of {} has this key", target.table)))
        }
        // The key range is held since the update: a unique violation here is
        // of another index, a CONSTRAINT error, not an existing key.
        (false, IfMissing::Insert) => insert(connection, target, columns, row).await,
        _ => Ok(()),
    }
}

/// Deletes the row with `row`'s key; a key that matches no row is not an
/// error (the row is already gone).
async fn delete(connection: &mut Connection, target: &Target<'_>, row: usize) -> Result<(), PluginError> {
    let text = sql::delete(target.table, &target.names(&target.keys));
    execute(connection, text, target.values(row, &target.keys)).await.map(drop)
}

/// Whether a row with `row`'s key exists (locked, see [`sql::exists`]).
async fn exists(connection: &mut Connection, target: &Target<'_>, row: usize) -> Result<bool, PluginError> {
    let mut query = Query::new(sql::exists(target.table, &target.names(&target.keys)));
    for value in target.values(row, &target.keys) {
        push(&mut query, value);
    }
    let rows = query.query(connection).await.map_err(classify)?.into_first_result().await.map_err(classify)?;
    Ok(!rows.is_empty())
}

/// Runs one statement; returns the rows it affected.
///
/// The statement's own count is the last: an HIS trigger's statements
/// report theirs before it. SQL Server counts the rows an UPDATE matched,
/// even those it left as they were, so a count of 0 means no row has the key.
async fn execute<'a>(
    connection: &mut Connection,
    text: String,
    values: impl IntoIterator<Item = &'a Bind<'a>>,
) -> Result<u64, PluginError> {
    let mut query = Query::new(text);
    for value in values {
        push(&mut query, value);
    }
    let result = query.execute(connection).await.map_err(classify)?;
    Ok(result.rows_affected().last().copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};
    use his_plugin_api::{Action, Value};

    use super::*;

    fn batch(keys: &[&str]) -> WriteBatch {
        let columns: RVec<RString> = ["id", "a", "b"].into_iter().map(RString::from).collect();
        let values = (0..6).map(Value::int).collect();
        WriteBatch::new("t", Action::SOFT_DELETE, columns, keys.iter().map(|k| RString::from(*k)).collect(), values)
    }

    #[test]
    fn statements_pick_names_and_values_by_column() {
        let batch = batch(&["b", "id"]);
        let binds: Vec<Vec<Bind<'_>>> = (0..2).map(|r| (0..3).map(|c| Bind::Int(r * 3 + c)).collect()).collect();
        let target = Target::new(&batch, &binds).unwrap();
        assert_eq!(target.names(&target.keys), ["b", "id"], "keys in the batch's key order");
        assert_eq!(target.non_keys(&[0, 1, 2]), [1]);
        assert!(target.non_keys(&[0, 2]).is_empty(), "a row that carries only its key sets nothing");
        let values: Vec<&Bind<'_>> = target.values(1, &target.keys).collect();
        assert_eq!(values, [&Bind::Int(5), &Bind::Int(3)]);
    }

    #[test]
    fn a_key_that_is_not_a_column_is_refused_without_naming_a_row() {
        let batch = batch(&["nope"]);
        let error = Target::new(&batch, &[]).err().expect("refused");
        assert_eq!((error.kind, error.row.into_option()), (ErrorKind::OTHER, None));
        assert!(error.message.contains("nope"), "{error}");
    }
}
