//! What a writer reports about an HIS table, for the host's `check`.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// One column of an HIS table.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ColumnDescription {
    /// The name as the database stores it.
    pub name: RString,
    /// The database's own type, as it spells it (`"decimal(12,2)"`).
    pub data_type: RString,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// Whether the column has a default (or is generated), so that an insert
    /// may leave it out.
    pub has_default: bool,
}

/// An HIS table: its columns and the keys an upsert can use.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct TableDescription {
    /// The name as the database stores it (its case may differ from the
    /// mapping's).
    pub name: RString,
    /// The columns, in the table's order.
    pub columns: RVec<ColumnDescription>,
    /// The primary key's columns; empty when there is none.
    pub primary_key: RVec<RString>,
    /// Each unique index or constraint other than the primary key.
    pub unique_keys: RVec<RVec<RString>>,
}
