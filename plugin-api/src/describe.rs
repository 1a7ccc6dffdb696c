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

/// Collects a table's keys from a catalog query that returns one row per
/// (index, column), in key order, as every SQL database can.
#[derive(Debug, Default)]
pub struct KeyColumns {
    primary: Vec<RString>,
    unique: Vec<(String, Vec<RString>)>,
}

impl KeyColumns {
    /// Adds `column` to the index or constraint named `index`.
    pub fn push(&mut self, index: &str, is_primary: bool, column: &str) {
        if is_primary {
            self.primary.push(column.into());
        } else if let Some((_, key)) = self.unique.iter_mut().find(|(name, _)| name == index) {
            key.push(column.into());
        } else {
            self.unique.push((index.to_string(), vec![column.into()]));
        }
    }

    /// The primary key and the other unique keys, for a [`TableDescription`].
    pub fn into_parts(self) -> (RVec<RString>, RVec<RVec<RString>>) {
        (self.primary.into(), self.unique.into_iter().map(|(_, key)| key.into()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_index_in_order() {
        let mut keys = KeyColumns::default();
        for (index, primary, column) in
            [("PK", true, "id"), ("ux_ref", false, "a"), ("ux_ref", false, "b"), ("ux_x", false, "x")]
        {
            keys.push(index, primary, column);
        }
        let (primary, unique) = keys.into_parts();
        assert_eq!(primary, RVec::from(vec![RString::from("id")]));
        assert_eq!(unique.len(), 2);
        assert_eq!(unique[0], RVec::from(vec![RString::from("a"), RString::from("b")]));
    }
}
