//! Configured names, resolved against Oracle's data dictionary.
//!
//! A table created without quotes is stored in upper case (HIS_APPOINTMENTS),
//! one created with quotes keeps its case. The mapping says
//! `HIS_appointments`. So each configured name is looked up in
//! ALL_TAB_COLUMNS: an exact match wins (the name was quoted at creation),
//! else the one match regardless of case; anything else is an error that
//! lists what exists.

use his_plugin_api::{ErrorKind, PluginError};

/// One row of the dictionary query (ALL_TAB_COLUMNS) for a table name,
/// matched regardless of case.
#[derive(Debug, Clone, PartialEq)]
pub struct DictionaryRow {
    /// TABLE_NAME, as stored.
    pub table: String,
    /// COLUMN_NAME, as stored.
    pub column: String,
    /// DATA_TYPE: `NUMBER`, `VARCHAR2`, `TIMESTAMP(6)`, `CLOB`, …
    pub data_type: String,
    /// DATA_LENGTH in bytes.
    pub data_length: u32,
    /// NULLABLE = 'Y'.
    pub nullable: bool,
    /// A default or an identity column.
    pub has_default: bool,
}

/// A table with its stored name and the mapped columns, in mapping order.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTable {
    /// The name as stored.
    pub name: String,
    /// The mapped columns as stored, in the order of the mapping.
    pub columns: Vec<DictionaryRow>,
}

/// Picks `wanted` among `stored`: exact first, else the single match
/// regardless of case.
fn pick<'a>(wanted: &str, stored: impl Iterator<Item = &'a str> + Clone) -> Result<Option<&'a str>, Vec<&'a str>> {
    if let Some(exact) = stored.clone().find(|s| *s == wanted) {
        return Ok(Some(exact));
    }
    let folded: Vec<&str> = stored.filter(|s| s.eq_ignore_ascii_case(wanted)).collect();
    match folded.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(folded),
    }
}

/// Resolves `table` and its mapped `columns` against `rows` (the dictionary
/// rows of every table whose name matches `table` regardless of case).
pub fn resolve(table: &str, columns: &[&str], rows: &[DictionaryRow]) -> Result<ResolvedTable, PluginError> {
    let mut tables: Vec<&str> = rows.iter().map(|r| r.table.as_str()).collect();
    tables.dedup();
    let name = match pick(table, tables.iter().copied()) {
        Ok(Some(name)) => name,
        Ok(None) => {
            return Err(PluginError::permanent(
                ErrorKind::SCHEMA,
                format!("table {table} does not exist (or this user cannot see it) in ALL_TAB_COLUMNS"),
            ));
        }
        Err(several) => {
            return Err(PluginError::permanent(
                ErrorKind::SCHEMA,
                format!(
                    "table {table} is ambiguous: {} exist; write the exact name in the mapping",
                    several.join(", ")
                ),
            ));
        }
    };
    let own: Vec<&DictionaryRow> = rows.iter().filter(|r| r.table == name).collect();
    let resolved = columns
        .iter()
        .map(|column| match pick(column, own.iter().map(|r| r.column.as_str())) {
            Ok(Some(stored)) => {
                Ok(own.iter().find(|r| r.column == stored).expect("picked from own").to_owned().clone())
            }
            Ok(None) => Err(PluginError::permanent(
                ErrorKind::SCHEMA,
                format!(
                    "table {name} has no column {column} (it has {})",
                    own.iter().map(|r| r.column.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
            Err(several) => Err(PluginError::permanent(
                ErrorKind::SCHEMA,
                format!("column {column} of {name} is ambiguous: {}", several.join(", ")),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResolvedTable { name: name.to_string(), columns: resolved })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn row(table: &str, column: &str, data_type: &str, data_length: u32) -> DictionaryRow {
        DictionaryRow {
            table: table.into(),
            column: column.into(),
            data_type: data_type.into(),
            data_length,
            nullable: true,
            has_default: false,
        }
    }

    /// What ALL_TAB_COLUMNS answers for the seed's tables created without
    /// quotes (so stored in upper case), as recorded from Oracle 19c.
    pub(crate) fn seed_dictionary() -> Vec<DictionaryRow> {
        vec![
            row("HIS_APPOINTMENTS", "HIS_APPOINTMENT_ID", "NUMBER", 22),
            row("HIS_APPOINTMENTS", "HIS_STATUS", "VARCHAR2", 32),
            row("HIS_APPOINTMENTS", "HIS_CREATED_AT", "TIMESTAMP(6)", 11),
            row("HIS_SCHEDULES", "HIS_SCHEDULE_ID", "NUMBER", 22),
            row("HIS_SCHEDULES", "HIS_NEW_TIME", "DATE", 7),
            row("HIS_SCHEDULES", "HIS_UPDATED_AT", "TIMESTAMP(6)", 11),
            row("HIS_PAYMENTS", "HIS_PAYMENT_ID", "NUMBER", 22),
            row("HIS_PAYMENTS", "HIS_AMOUNT", "NUMBER", 22),
            row("HIS_PAYMENTS", "HIS_PAYMENT_STATUS", "VARCHAR2", 32),
            row("HIS_PAYMENTS", "HIS_PAID_AT", "TIMESTAMP(6)", 11),
            row("HIS_PAYMENTS", "HIS_NOTE", "CLOB", 4000),
        ]
    }

    #[test]
    fn unquoted_names_resolve_to_upper_case() {
        let t = resolve("HIS_payments", &["HIS_payment_id", "HIS_amount"], &seed_dictionary()).unwrap();
        assert_eq!(t.name, "HIS_PAYMENTS");
        assert_eq!(t.columns.iter().map(|c| c.column.as_str()).collect::<Vec<_>>(), ["HIS_PAYMENT_ID", "HIS_AMOUNT"]);
    }

    #[test]
    fn an_exact_match_wins_over_a_folded_one() {
        let rows = vec![row("Mixed", "Id", "NUMBER", 22), row("MIXED", "ID", "NUMBER", 22)];
        assert_eq!(resolve("Mixed", &["Id"], &rows).unwrap().columns[0].column, "Id");
        let e = resolve("mixed", &["id"], &rows).unwrap_err();
        assert!(e.message.contains("table mixed is ambiguous: Mixed, MIXED"), "{e}");
    }

    #[test]
    fn missing_names_are_schema_errors_that_list_what_exists() {
        let e = resolve("HIS_refunds", &["x"], &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::SCHEMA);
        assert!(e.message.contains("table HIS_refunds does not exist"), "{e}");
        let e = resolve("HIS_payments", &["HIS_payment_id", "HIS_room"], &seed_dictionary()).unwrap_err();
        assert!(
            e.message.starts_with("table HIS_PAYMENTS has no column HIS_room (it has HIS_PAYMENT_ID, HIS_AMOUNT"),
            "{e}"
        );
    }
}
