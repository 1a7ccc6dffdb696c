//! The Oracle writer: one connection; per batch, its existing rows locked
//! with a bounded wait, then one array-bound MERGE.
//!
//! The `oracle` crate is synchronous, so it runs on the host's calling
//! thread with no runtime. A broken connection is dropped and opened again
//! on the next call.

use std::collections::HashMap;

use his_plugin_api::{
    ColumnDescription, Deadline, ErrorKind, KeyColumns, Logger, PluginError, TableDescription, WriteBatch, Writer,
};
use oracle::{Connection, sql_type::OracleType, sql_type::ToSql};

use crate::{
    binds::{Bind, ColumnBind, bind},
    dictionary::{DictionaryRow, ResolvedTable, resolve},
    errors::classify,
    settings::Settings,
    sql,
};

/// Writes batches into one Oracle schema.
pub struct OracleWriter {
    connection: Option<Connection>,
    settings: Settings,
    log: Logger,
    /// Each mapped table's dictionary rows, read once, by mapping name.
    /// Columns are resolved per batch: two event types may write different
    /// columns of one table.
    dictionaries: HashMap<String, Vec<DictionaryRow>>,
}

impl OracleWriter {
    /// Connects once. Without Oracle Instant Client this fails with one line
    /// that says how to install it; a refused login (ORA-01017) is
    /// permanent, so the host stops with the message.
    pub fn open(settings: Settings, log: Logger) -> Result<Self, PluginError> {
        let connection = connect(&settings).map_err(|e| match e.code.as_str() {
            // Already says what to install, and where.
            "DPI-1047" => e,
            _ => e.while_connecting(
                format!("Oracle at {}", settings.display()),
                "check database.user and database.password",
                "check database.host, database.port and database.database, or database.connect_string",
            ),
        })?;
        let version = connection.server_version().map(|(v, _)| v.to_string()).unwrap_or_default();
        log.info(format_args!("connected to Oracle {version} as {}", settings.display()));
        Ok(Self { connection: Some(connection), settings, log, dictionaries: HashMap::new() })
    }

    fn connection(&mut self) -> Result<&Connection, PluginError> {
        if self.connection.is_none() {
            self.connection = Some(connect(&self.settings)?);
        }
        Ok(self.connection.as_ref().expect("connected above"))
    }

    fn dictionary(&mut self, table: &str) -> Result<Vec<DictionaryRow>, PluginError> {
        let connection = self.connection()?;
        let rows = connection
            .query(
                "SELECT table_name, column_name, data_type, data_length, nullable,
                        CASE WHEN default_length > 0 OR identity_column = 'YES' THEN 1 ELSE 0 END
                 FROM all_tab_columns
                 WHERE owner = SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') AND UPPER(table_name) = UPPER(:1)
                 ORDER BY table_name, column_id",
                &[&table],
            )
            .map_err(classify)?;
        rows.map(|row| {
            let row = row.map_err(classify)?;
            Ok(DictionaryRow {
                table: row.get(0).map_err(classify)?,
                column: row.get(1).map_err(classify)?,
                data_type: row.get(2).map_err(classify)?,
                data_length: row.get(3).map_err(classify)?,
                nullable: row.get::<_, String>(4).map_err(classify)? == "Y",
                has_default: row.get::<_, i64>(5).map_err(classify)? == 1,
            })
        })
        .collect()
    }

    /// The batch's table and columns as the dictionary has them.
    fn resolved(&mut self, batch: &WriteBatch) -> Result<ResolvedTable, PluginError> {
        if !self.dictionaries.contains_key(batch.table()) {
            let rows = self.dictionary(batch.table())?;
            if let Some(stored) = rows.iter().map(|r| r.table.as_str()).find(|t| t.eq_ignore_ascii_case(batch.table()))
            {
                self.log.info(format_args!("mapping table {} is {stored} in the data dictionary", batch.table()));
            }
            self.dictionaries.insert(batch.table().to_string(), rows);
        }
        let columns: Vec<&str> = batch.columns().iter().map(|c| c.as_str()).collect();
        let table = resolve(batch.table(), &columns, &self.dictionaries[batch.table()])?;
        let names: Vec<&str> = table.columns.iter().map(|c| c.column.as_str()).collect();
        self.log.debug(format_args!("mapping table {} is {} ({})", batch.table(), table.name, names.join(", ")));
        Ok(table)
    }

    fn upsert_once(&mut self, batch: &WriteBatch) -> Result<(), PluginError> {
        let table = self.resolved(batch)?;
        let zone = self.settings.zone;
        // Every value is converted for its column before anything is sent.
        let binds: Vec<Vec<Bind>> = batch
            .rows()
            .enumerate()
            .map(|(i, row)| {
                row.iter().zip(&table.columns).map(|(v, c)| bind(v, c, zone).map_err(|e| e.with_row(i))).collect()
            })
            .collect::<Result<_, _>>()?;
        let columns: Vec<&str> = table.columns.iter().map(|c| c.column.as_str()).collect();
        let key_positions: Vec<usize> = batch
            .key_columns()
            .iter()
            .map(|k| batch.columns().iter().position(|c| c == k).expect("key columns are mapped columns"))
            .collect();
        let keys: Vec<&str> = key_positions.iter().map(|&p| columns[p]).collect();
        let text = sql::merge(&table.name, &columns, &keys);
        let lock_wait = self.settings.lock_timeout.as_secs();

        let connection = self.connection()?;
        // Whatever fails from here on, nothing of this batch may stay
        // applied (and hold row locks) until some later commit.
        let written = (|| {
            // The batch's existing rows first, waiting at most lock_timeout
            // for another session's locks (ORA-30006, a conflict): the MERGE
            // would wait for them without a limit.
            let key_types: Vec<OracleType> = key_positions.iter().map(|&p| oracle_type(&table.columns[p])).collect();
            for (range, size) in sql::lock_chunks(binds.len(), keys.len()) {
                let lock = sql::lock_rows(&table.name, &keys, size, lock_wait);
                let last = range.end - 1;
                let mut values: Vec<Box<dyn ToSql + '_>> = Vec::with_capacity(size * keys.len());
                for row in range.chain(std::iter::repeat(last)).take(size) {
                    for (&position, ty) in key_positions.iter().zip(&key_types) {
                        values.push(typed(&binds[row][position], ty));
                    }
                }
                let values: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
                // Oracle locks every selected row when it runs the query.
                drop(connection.query(&lock, &values).map_err(classify)?);
            }
            let mut statement = connection.batch(&text, binds.len().max(1)).build().map_err(classify)?;
            for (position, column) in table.columns.iter().enumerate() {
                statement.set_type(position + 1, &oracle_type(column)).map_err(classify)?;
            }
            for row in &binds {
                let values: Vec<&dyn ToSql> = row.iter().map(as_sql).collect();
                statement.append_row(&values).map_err(classify)?;
            }
            statement.execute().map_err(classify)?;
            connection.commit().map_err(classify)
        })();
        if written.is_err() {
            let _ = connection.rollback();
        }
        written
    }
}

fn connect(settings: &Settings) -> Result<Connection, PluginError> {
    let connection =
        Connection::connect(&settings.user, &settings.password, &settings.connect_string).map_err(classify)?;
    // A half-open connection must not block the worker forever.
    connection.set_call_timeout(Some(settings.statement_timeout)).map_err(classify)?;
    Ok(connection)
}

/// The bind type for a column: set once per statement, so every row's
/// value is converted the same way, whatever the first row holds.
fn oracle_type(column: &DictionaryRow) -> OracleType {
    match ColumnBind::for_column(column) {
        ColumnBind::Number => OracleType::Number(0, 0),
        ColumnBind::Timestamp => OracleType::Timestamp(9),
        // National character columns keep their own types, so that text is
        // not squeezed through a non-Unicode database character set.
        ColumnBind::Clob if column.data_type.eq_ignore_ascii_case("NCLOB") => OracleType::NCLOB,
        ColumnBind::Clob => OracleType::CLOB,
        ColumnBind::Text if column.data_type.to_ascii_uppercase().starts_with("NVARCHAR2") => {
            OracleType::NVarchar2(crate::binds::MAX_VARCHAR2_BYTES as u32 / 2)
        }
        ColumnBind::Text => OracleType::Varchar2(crate::binds::MAX_VARCHAR2_BYTES as u32),
    }
}

/// `value` bound as `ty`, the type its column's MERGE bind has.
fn typed<'a>(value: &'a Bind, ty: &'a OracleType) -> Box<dyn ToSql + 'a> {
    const NULL: Option<&str> = None;
    match value {
        Bind::Null => Box::new((&NULL, ty)),
        Bind::Int(i) => Box::new((i, ty)),
        Bind::Float(f) => Box::new((f, ty)),
        Bind::Number(s) | Bind::Text(s) => Box::new((s, ty)),
        Bind::DateTime(dt) => Box::new((dt, ty)),
    }
}

fn as_sql(value: &Bind) -> &dyn ToSql {
    const NULL: Option<&str> = None;
    match value {
        Bind::Null => &NULL,
        Bind::Int(i) => i,
        Bind::Float(f) => f,
        Bind::Number(s) | Bind::Text(s) => s,
        Bind::DateTime(dt) => dt,
    }
}

impl Writer for OracleWriter {
    fn write(&mut self, batch: &WriteBatch, _deadline: Deadline) -> Result<(), PluginError> {
        if !batch.is_whole() {
            // Not yet: this plugin's MERGE sets every column it is given.
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                "this plugin cannot leave columns untouched yet (partial rows, on_missing \"keep\")",
            ));
        }
        let result = self.upsert_once(batch);
        if let Err(e) = &result {
            if e.kind == ErrorKind::CONNECTION || e.kind == ErrorKind::TIMEOUT {
                self.connection = None;
            }
            if e.kind == ErrorKind::SCHEMA {
                // The table may have been changed: look it up again next time.
                self.dictionaries.remove(batch.table());
            }
        }
        result?;
        self.log.debug(format_args!("merged {} rows into {}", batch.row_count(), batch.table()));
        Ok(())
    }

    fn ping(&mut self, _deadline: Deadline) -> Result<(), PluginError> {
        let result = self.connection()?.ping().map_err(classify);
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    fn describe_table(&mut self, table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        let rows = self.dictionary(table)?;
        let columns: Vec<&str> = Vec::new();
        let Ok(resolved) = resolve(table, &columns, &rows) else { return Ok(None) };
        let own: Vec<&DictionaryRow> = rows.iter().filter(|r| r.table == resolved.name).collect();
        let connection = self.connection()?;
        let constraints = connection
            .query(
                "SELECT c.constraint_type, c.constraint_name, cc.column_name
                 FROM all_constraints c JOIN all_cons_columns cc
                   ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name
                 WHERE c.owner = SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') AND c.table_name = :1
                   AND c.constraint_type IN ('P', 'U')
                 ORDER BY c.constraint_type, c.constraint_name, cc.position",
                &[&resolved.name],
            )
            .map_err(classify)?;
        let mut keys = KeyColumns::default();
        for row in constraints {
            let row = row.map_err(classify)?;
            let (kind, name, column): (String, String, String) =
                (row.get(0).map_err(classify)?, row.get(1).map_err(classify)?, row.get(2).map_err(classify)?);
            keys.push(&name, kind == "P", &column);
        }
        let (primary_key, unique_keys) = keys.into_parts();
        Ok(Some(TableDescription {
            name: resolved.name.clone().into(),
            columns: own
                .iter()
                .map(|c| ColumnDescription {
                    name: c.column.clone().into(),
                    data_type: c.data_type.clone().into(),
                    nullable: c.nullable,
                    has_default: c.has_default,
                })
                .collect(),
            primary_key,
            unique_keys,
        }))
    }

    fn close(&mut self) -> Result<(), PluginError> {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close();
        }
        Ok(())
    }
}
