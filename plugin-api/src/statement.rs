//! [`Statement`]: a statement as a plugin would run it, shown instead of
//! run (`buktor-middleware map --sql`, through [`crate::Plugin::render`]).

use crate::IfMissing;

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// One statement a plugin would run for a batch, with its parameters as it
/// would bind them, shown as text. Since plugin-api 1.2.
///
/// For reading by a person, never for running: a parameter's text is how
/// the plugin would bind the value (`42`, `'text'`, `NULL`,
/// `TIMESTAMP '2025-03-03 09:00:00'`), in the order of the placeholders.
///
/// Frozen from 1.2 on, as every type that crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text, with the plugin's placeholders (`?`, `@P1`, `:1`).
    pub sql: RString,
    /// The parameters, in placeholder order, as text.
    pub params: RVec<RString>,
}

impl Statement {
    /// A statement with its parameters, in placeholder order.
    pub fn new<P: Into<RString>>(sql: impl Into<RString>, params: impl IntoIterator<Item = P>) -> Self {
        Self { sql: sql.into(), params: params.into_iter().map(Into::into).collect() }
    }

    /// The statement with a `-- note` line before its SQL: what the plugin
    /// does that the text alone does not show (a read first, a step that
    /// depends on the database's answer).
    pub fn noted(mut self, note: &str) -> Self {
        self.sql = format!("-- {note}\n{}", self.sql).into();
        self
    }

    /// The statements of one row's update with `if_missing`, for a writer
    /// that runs `update` and then, if it found no row, fails the row
    /// ([`IfMissing::Error`]) or runs `insert` ([`IfMissing::Insert`]),
    /// each shown with the note that says so.
    pub fn update_steps(update: Statement, insert: impl FnOnce() -> Statement, if_missing: IfMissing) -> Vec<Self> {
        match if_missing {
            IfMissing::Error => vec![update.noted(
                "if no row has this key, the row fails (update, if_missing: error) and the transaction is rolled back",
            )],
            IfMissing::Insert => {
                vec![update, insert().noted("only if the statement above found no row (update, if_missing: insert)")]
            }
            _ => vec![update],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_keeps_its_parameters_in_order() {
        let s = Statement::new("UPDATE t SET a = ? WHERE k = ?", ["'x'", "7"]);
        assert_eq!(s.sql.as_str(), "UPDATE t SET a = ? WHERE k = ?");
        assert_eq!(s.params.iter().map(RString::as_str).collect::<Vec<_>>(), ["'x'", "7"]);
        assert!(Statement::new("SELECT 1", Vec::<String>::new()).params.is_empty());
    }
}
