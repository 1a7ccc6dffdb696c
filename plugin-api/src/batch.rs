//! The unit of work the host hands a writer: rows for one table, and what
//! to do with them.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

use crate::Value;

/// What a batch asks a writer to do with each of its rows, by key.
///
/// A code, not a Rust enum, for the reason [`crate::ValueKind`] gives; read
/// it with [`Action::get`].
#[repr(C)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct Action {
    code: u8,
    /// For [`WriteAction::Update`]: what a key that matches no row means.
    if_missing: u8,
}

/// An [`Action`], to `match` on.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteAction {
    /// Update the row with the key if it exists, else insert it. The only
    /// action of plugin-api 1.0.
    Upsert,
    /// Insert; a key that already exists is a DATA error for that row
    /// ([`crate::PluginError::with_row`]), never an overwrite.
    Insert,
    /// Update the row with the key; a key that matches no row is handled as
    /// the policy says.
    Update(IfMissing),
    /// Delete the row with the key. A key that matches no row is not an
    /// error: the row is already gone. Only the key columns are sent.
    Delete,
    /// Set the batch's non-key columns (a status, a deletion time) on the
    /// row with the key, and nothing else. A key that matches no row is not
    /// an error.
    SoftDelete,
    /// A code this build of plugin-api does not know. Answer
    /// [`crate::ErrorKind::UNSUPPORTED`].
    Unknown(u8),
}

/// What an update does with a key that matches no row.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IfMissing {
    /// A DATA error for that row (`PluginError::with_row`).
    Error,
    /// Nothing: the row is skipped, and the batch goes on.
    Ignore,
    /// Insert the row, with the columns it carries.
    Insert,
}

impl Action {
    /// Upsert.
    pub const UPSERT: Self = Self { code: 0, if_missing: 0 };
    /// Insert only.
    pub const INSERT: Self = Self { code: 1, if_missing: 0 };
    /// Delete by key.
    pub const DELETE: Self = Self { code: 3, if_missing: 0 };
    /// Soft-delete: set the non-key columns.
    pub const SOFT_DELETE: Self = Self { code: 4, if_missing: 0 };

    /// Update only, with a policy for a key that matches no row.
    pub const fn update(if_missing: IfMissing) -> Self {
        let if_missing = match if_missing {
            IfMissing::Error => 0,
            IfMissing::Ignore => 1,
            IfMissing::Insert => 2,
        };
        Self { code: 2, if_missing }
    }

    /// The action, to `match` on.
    pub fn get(self) -> WriteAction {
        match (self.code, self.if_missing) {
            (0, _) => WriteAction::Upsert,
            (1, _) => WriteAction::Insert,
            (2, 0) => WriteAction::Update(IfMissing::Error),
            (2, 1) => WriteAction::Update(IfMissing::Ignore),
            (2, 2) => WriteAction::Update(IfMissing::Insert),
            (3, _) => WriteAction::Delete,
            (4, _) => WriteAction::SoftDelete,
            (code, _) => WriteAction::Unknown(code),
        }
    }

    /// The bit of this action in [`Actions`].
    pub fn bit(self) -> Actions {
        Actions(1 << self.code.min(31))
    }

    /// A name for messages and configs: `upsert`, `insert`, `update`,
    /// `delete`, `soft_delete`.
    pub fn name(self) -> &'static str {
        match self.get() {
            WriteAction::Upsert => "upsert",
            WriteAction::Insert => "insert",
            WriteAction::Update(_) => "update",
            WriteAction::Delete => "delete",
            WriteAction::SoftDelete => "soft_delete",
            WriteAction::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// The set of actions a writer carries out, one bit per action code: what
/// [`crate::Writer::actions`] answers, so that the host refuses at startup
/// a mapping its plugin cannot serve instead of failing each event.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Actions(pub u32);

impl Actions {
    /// Upsert only: what a 1.0 plugin can do.
    pub const UPSERT: Self = Self(1);
    /// Every action of plugin-api 1.1.
    pub const ALL_1_1: Self = Self(0b1_1111);

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit().0 != 0
    }
}

/// Rows for one table, and the action to apply to each, in one transaction.
///
/// The host guarantees, and a plugin may rely on:
/// - `columns` is non-empty and holds no name twice; every name in
///   `key_columns` is also in `columns`;
/// - `values` holds `columns.len()` values per row, row after row;
/// - no two rows in one batch have the same key, so a MERGE-style statement
///   never meets a key twice. Rows are in the order the events arrived;
/// - every row carries its key columns ([`WriteBatch::is_present`]).
///
/// **Partial rows.** A row may leave out columns (the event did not carry
/// the field, and the mapping says to keep what the HIS has). An absent
/// column is left as it is on update and left out of an insert; its slot in
/// `values` holds a NULL that means nothing. [`WriteBatch::column_sets`]
/// groups rows by the columns they carry, so that a plugin builds one
/// statement per group instead of one per row.
///
/// Names come only from the operator's his-config.json, never from an
/// event, and were checked at startup (not empty, no control characters). A
/// plugin still quotes them for its dialect.
///
/// This struct is frozen from 1.1 on: a new parameter means a new writer
/// method (see "Versioning" in the crate docs), never a new field here.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct WriteBatch {
    table: RString,
    action: Action,
    columns: RVec<RString>,
    key_columns: RVec<RString>,
    values: RVec<Value>,
    /// Empty when every row carries every column; otherwise one bit per
    /// column, [`WriteBatch::mask_bytes`] bytes per row.
    present: RVec<u8>,
}

impl WriteBatch {
    /// A batch of whole rows. `values` holds `columns.len()` values per row.
    pub fn new(
        table: impl Into<RString>,
        action: Action,
        columns: RVec<RString>,
        key_columns: RVec<RString>,
        values: RVec<Value>,
    ) -> Self {
        Self { table: table.into(), action, columns, key_columns, values, present: RVec::new() }
    }

    /// Marks which columns each row carries: `present(row, column)`. Rows
    /// that carry every column cost nothing when all do.
    pub fn with_presence(mut self, present: impl Fn(usize, usize) -> bool) -> Self {
        let (rows, width, stride) = (self.row_count(), self.columns.len(), self.mask_bytes());
        let mut mask = vec![0u8; rows * stride];
        let mut partial = false;
        for row in 0..rows {
            for column in 0..width {
                if present(row, column) {
                    mask[row * stride + column / 8] |= 1 << (column % 8);
                } else {
                    partial = true;
                }
            }
        }
        self.present = if partial { mask.into() } else { RVec::new() };
        self
    }

    /// The HIS table, as written in the mapping.
    pub fn table(&self) -> &str {
        &self.table
    }
    /// What to do with each row.
    pub fn action(&self) -> Action {
        self.action
    }
    /// The HIS columns, in the order of each row's values.
    pub fn columns(&self) -> &[RString] {
        &self.columns
    }
    /// The columns that identify a row.
    pub fn key_columns(&self) -> &[RString] {
        &self.key_columns
    }
    /// Every value, row after row.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    /// Takes the values out (the host gets its rows back after a failure).
    pub fn into_values(self) -> RVec<Value> {
        self.values
    }

    /// The number of rows.
    pub fn row_count(&self) -> usize {
        self.values.len().checked_div(self.columns.len()).unwrap_or(0)
    }

    /// The rows, each a slice of `columns.len()` values.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[Value]> + '_ {
        self.values.chunks_exact(self.columns.len().max(1))
    }

    /// Bytes of presence mask per row.
    pub fn mask_bytes(&self) -> usize {
        self.columns.len().div_ceil(8)
    }

    /// Whether every row carries every column.
    pub fn is_whole(&self) -> bool {
        self.present.is_empty()
    }

    /// Whether `row` carries `column` (indexes into [`WriteBatch::columns`]).
    pub fn is_present(&self, row: usize, column: usize) -> bool {
        self.present.is_empty() || self.present[row * self.mask_bytes() + column / 8] & (1 << (column % 8)) != 0
    }

    /// Each of `batches` with the index of its row 0 across all of them:
    /// the rows of the batches before it. For [`crate::Writer::write_all`],
    /// which names a row at fault by counting rows across the batches, in
    /// order: row 3 of the second batch, after a first batch of 10 rows, is
    /// 13 ([`PluginError::offset_row`](crate::PluginError::offset_row)).
    pub fn with_first_rows(batches: &[WriteBatch]) -> impl Iterator<Item = (usize, &WriteBatch)> + '_ {
        batches.iter().scan(0, |rows_before, batch| {
            let first = *rows_before;
            *rows_before += batch.row_count();
            Some((first, batch))
        })
    }

    /// The rows grouped by the columns they carry: each group is the
    /// indexes of its columns, and its rows in batch order. Groups come in
    /// the order of their first row. A batch of whole rows is one group.
    pub fn column_sets(&self) -> Vec<ColumnSet> {
        let width = self.columns.len();
        if self.is_whole() {
            return vec![ColumnSet { columns: (0..width).collect(), rows: (0..self.row_count()).collect() }];
        }
        let stride = self.mask_bytes();
        let mut sets: Vec<(&[u8], ColumnSet)> = Vec::new();
        for row in 0..self.row_count() {
            let mask = &self.present[row * stride..(row + 1) * stride];
            match sets.iter_mut().find(|(m, _)| *m == mask) {
                Some((_, set)) => set.rows.push(row),
                None => {
                    let columns = (0..width).filter(|&c| self.is_present(row, c)).collect();
                    sets.push((mask, ColumnSet { columns, rows: vec![row] }));
                }
            }
        }
        sets.into_iter().map(|(_, set)| set).collect()
    }
}

/// Rows of a [`WriteBatch`] that carry the same columns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnSet {
    /// Indexes into [`WriteBatch::columns`], ascending.
    pub columns: Vec<usize>,
    /// Indexes of the rows, ascending.
    pub rows: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: usize) -> WriteBatch {
        let columns: RVec<RString> = ["id", "a", "b"].into_iter().map(RString::from).collect();
        let values = (0..rows * 3).map(|i| Value::int(i as i64)).collect();
        WriteBatch::new("t", Action::UPSERT, columns, vec![RString::from("id")].into(), values)
    }

    #[test]
    fn whole_rows_are_one_set_and_carry_no_mask() {
        let whole = batch(3).with_presence(|_, _| true);
        assert!(whole.is_whole());
        assert_eq!(whole.column_sets(), [ColumnSet { columns: vec![0, 1, 2], rows: vec![0, 1, 2] }]);
    }

    #[test]
    fn partial_rows_group_by_the_columns_they_carry() {
        // Row 1 lacks "a"; rows 0 and 2 are whole; row 3 lacks "b".
        let partial = batch(4).with_presence(|row, column| !matches!((row, column), (1, 1) | (3, 2)));
        assert!(!partial.is_whole());
        assert!(!partial.is_present(1, 1) && partial.is_present(1, 2));
        assert_eq!(
            partial.column_sets(),
            [
                ColumnSet { columns: vec![0, 1, 2], rows: vec![0, 2] },
                ColumnSet { columns: vec![0, 2], rows: vec![1] },
                ColumnSet { columns: vec![0, 1], rows: vec![3] },
            ]
        );
    }

    #[test]
    fn first_rows_count_the_rows_of_the_batches_before() {
        let batches = [batch(10), batch(0), batch(3), batch(1)];
        let firsts: Vec<usize> = WriteBatch::with_first_rows(&batches).map(|(first, _)| first).collect();
        assert_eq!(firsts, [0, 10, 10, 13]);
        assert_eq!(WriteBatch::with_first_rows(&[]).count(), 0);
    }

    #[test]
    fn actions_read_back_and_name_themselves() {
        let all = [
            (Action::UPSERT, WriteAction::Upsert, "upsert"),
            (Action::INSERT, WriteAction::Insert, "insert"),
            (Action::update(IfMissing::Error), WriteAction::Update(IfMissing::Error), "update"),
            (Action::update(IfMissing::Ignore), WriteAction::Update(IfMissing::Ignore), "update"),
            (Action::update(IfMissing::Insert), WriteAction::Update(IfMissing::Insert), "update"),
            (Action::DELETE, WriteAction::Delete, "delete"),
            (Action::SOFT_DELETE, WriteAction::SoftDelete, "soft_delete"),
        ];
        for (action, read, name) in all {
            assert_eq!((action.get(), action.name()), (read, name));
            assert!(Actions::ALL_1_1.contains(action), "{name}");
        }
        assert!(Actions::UPSERT.contains(Action::UPSERT) && !Actions::UPSERT.contains(Action::DELETE));
        assert_eq!(Action { code: 9, if_missing: 0 }.get(), WriteAction::Unknown(9));
    }
}
