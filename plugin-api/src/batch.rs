//! The unit of work the host hands a writer: rows for one table.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

use crate::Value;

/// Rows to upsert into one table, in one transaction.
///
/// The host guarantees, and a plugin may rely on:
/// - `columns` is non-empty and holds no name twice;
/// - every name in `key_columns` is also in `columns`;
/// - `values` holds `columns.len()` values per row, row after row;
/// - no two rows in one batch have the same key, so a MERGE-style upsert
///   never meets a key twice. Rows are in the order the events arrived.
///
/// Names come only from the operator's his-config.json, never from an event,
/// and were checked at startup (not empty, no control characters). A plugin
/// still quotes them for its dialect.
///
/// This struct is frozen: a new parameter means a new writer method (see
/// "Versioning" in the crate docs), never a new field here.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct UpsertBatch {
    /// The HIS table, as written in the mapping.
    pub table: RString,
    /// The HIS columns, in the order of each row's values.
    pub columns: RVec<RString>,
    /// The columns that identify a row: update it if it exists, else insert.
    pub key_columns: RVec<RString>,
    /// The values, `columns.len()` per row.
    pub values: RVec<Value>,
}

impl UpsertBatch {
    /// The number of rows.
    pub fn row_count(&self) -> usize {
        self.values.len().checked_div(self.columns.len()).unwrap_or(0)
    }

    /// The rows, each a slice of `columns.len()` values.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[Value]> + '_ {
        self.values.chunks_exact(self.columns.len().max(1))
    }
}
