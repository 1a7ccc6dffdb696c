//! The Oracle writer: one connection; per write, of one batch or of several
//! ([`Writer::write_all`]), one transaction. For each batch in turn: its
//! existing rows locked with a bounded wait, then, per column set (see
//! [`WriteBatch::column_sets`]), one array-bound MERGE for an upsert, or one
//! statement per row for the other actions, so that a row at fault is named;
//! one commit after the last batch.
//!
//! The `oracle` crate is synchronous, so it runs on the host's calling
//! thread with no runtime. A broken connection is dropped and opened again
//! on the next call.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use his_plugin_api::{
    Actions, ColumnDescription, ColumnSet, Deadline, ErrorKind, HisZone, IfMissing, KeyColumns, Logger, PluginError,
    TableDescription, WriteAction, WriteBatch, Writer,
};
use oracle::{Connection, sql_type::OracleType, sql_type::ToSql};

use crate::{
    binds::{Bind, ColumnBind, bind, max_raw_bytes},
    dictionary::{DictionaryRow, ResolvedTable, resolve},
    errors::{self, classify},
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

    /// Writes every batch, in order, in one transaction: all of them
    /// commit, or, whatever fails, none of them stays applied (and holds row
    /// locks) until some later commit. A row at fault is numbered across
    /// the batches.
    fn write_once(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        let mut tables = Vec::with_capacity(batches.len());
        let mut binds = Vec::with_capacity(batches.len());
        for (first_row, batch) in WriteBatch::with_first_rows(batches) {
            let table = self.resolved(batch)?;
            binds.push(binds_of(batch, &table, self.settings.zone).map_err(|e| e.offset_row(first_row))?);
            tables.push(table);
        }
        let (lock_wait, statement_timeout) = (self.settings.lock_timeout.as_secs(), self.settings.statement_timeout);
        let clock = Clock { started: Instant::now(), deadline, statement_timeout };
        let connection = self.connection()?;
        let written = write_together(connection, batches, &tables, &binds, clock, lock_wait);
        // Back to the per-call bound of ping, describe and the rollback.
        let restored = connection.set_call_timeout(Some(statement_timeout)).is_ok();
        if written.is_err() {
            let _ = connection.rollback();
        }
        if !restored {
            // Never an error for a write that committed: the connection,
            // left with a shorter bound, is opened again instead.
            self.connection = None;
        }
        written
    }
}

/// Applies each batch in turn on `connection`, then commits them all at
/// once; a row at fault is numbered across the batches. On error the
/// caller rolls back.
fn write_together(
    connection: &Connection,
    batches: &[WriteBatch],
    tables: &[ResolvedTable],
    binds: &[Vec<Vec<Bind>>],
    clock: Clock,
    lock_wait: u64,
) -> Result<(), PluginError> {
    for (((first_row, batch), table), binds) in WriteBatch::with_first_rows(batches).zip(tables).zip(binds) {
        let write = BatchWrite::new(connection, batch, table, binds, clock);
        write.run(lock_wait).map_err(|e| e.offset_row(first_row))?;
    }
    clock.bound(connection, &names(batches))?;
    connection.commit().map_err(classify)
}

/// The batches' tables, for messages: `HIS_payments, HIS_appointments`.
fn names(batches: &[WriteBatch]) -> String {
    batches.iter().map(WriteBatch::table).collect::<Vec<_>>().join(", ")
}

/// Every value converted for its column, before anything is sent: a value
/// that cannot go in fails its row without a round trip. An absent column's
/// slot holds a NULL, converted too and never sent.
fn binds_of(batch: &WriteBatch, table: &ResolvedTable, zone: HisZone) -> Result<Vec<Vec<Bind>>, PluginError> {
    batch
        .rows()
        .enumerate()
        .map(|(i, row)| {
            row.iter().zip(&table.columns).map(|(v, c)| bind(v, c, zone).map_err(|e| e.with_row(i))).collect()
        })
        .collect()
}

/// What a batch's action does with each column set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// One array-bound MERGE per column set.
    Merge,
    /// One INSERT per row.
    Insert,
    /// One UPDATE per row of its carried non-key columns, and what a key
    /// that matches no row means.
    Update(IfMissing),
    /// One DELETE per row, by key.
    Delete,
}

impl Step {
    /// The step for `action`. A soft-delete is an update of the columns it
    /// carries that ignores a missing row.
    pub(crate) fn of(action: WriteAction) -> Result<Self, PluginError> {
        Ok(match action {
            WriteAction::Upsert => Step::Merge,
            WriteAction::Insert => Step::Insert,
            WriteAction::Update(if_missing) => Step::Update(if_missing),
            WriteAction::SoftDelete => Step::Update(IfMissing::Ignore),
            WriteAction::Delete => Step::Delete,
            other => {
                return Err(PluginError::permanent(
                    ErrorKind::UNSUPPORTED,
                    format!("the oracle plugin cannot carry out the action {other:?}"),
                ));
            }
        })
    }

    /// Whether the step touches rows that exist, so must first lock them
    /// with a bounded wait: a DML statement would wait for another
    /// session's lock until the call timeout. An insert only meets an
    /// existing row as ORA-00001, at once.
    fn locks_existing_rows(self) -> bool {
        self != Step::Insert
    }
}

/// The time a write may take: each call at most `statement_timeout`, and
/// all of them within the deadline's budget. Oracle's call timeout bounds
/// one round trip, so it is set again, to what is left, before each.
#[derive(Debug, Clone, Copy)]
struct Clock {
    started: Instant,
    deadline: Deadline,
    statement_timeout: Duration,
}

impl Clock {
    /// The bound for the next call, or `None` once the budget is spent
    /// (ODPI-C takes no bound below a millisecond, and no bound at all
    /// would mean waiting forever).
    fn next_call(&self) -> Option<Duration> {
        let left = self.deadline.remaining(self.started).min(self.statement_timeout);
        (left >= Duration::from_millis(1)).then_some(left)
    }

    /// Sets the connection's call timeout for the next round trip, or fails
    /// the write as timed out (retryable; the caller rolls back).
    fn bound(&self, connection: &Connection, table: &str) -> Result<(), PluginError> {
        match self.next_call() {
            Some(limit) => connection.set_call_timeout(Some(limit)).map_err(classify),
            None => Err(PluginError::write_timed_out(table, self.deadline.budget())),
        }
    }
}

/// One batch's statements, on one connection, in the write's transaction.
struct BatchWrite<'a> {
    connection: &'a Connection,
    batch: &'a WriteBatch,
    /// The table as the dictionary stores it.
    table: &'a str,
    /// Each batch column as stored, and its bind type.
    names: Vec<&'a str>,
    types: Vec<OracleType>,
    /// Positions of the key columns among the batch's columns.
    keys: Vec<usize>,
    binds: &'a [Vec<Bind>],
    clock: Clock,
}

impl<'a> BatchWrite<'a> {
    fn new(
        connection: &'a Connection,
        batch: &'a WriteBatch,
        table: &'a ResolvedTable,
        binds: &'a [Vec<Bind>],
        clock: Clock,
    ) -> Self {
        let keys = batch
            .key_columns()
            .iter()
            .map(|k| batch.columns().iter().position(|c| c == k).expect("key columns are mapped columns"))
            .collect();
        Self {
            connection,
            batch,
            table: &table.name,
            names: table.columns.iter().map(|c| c.column.as_str()).collect(),
            types: table.columns.iter().map(oracle_type).collect(),
            keys,
            binds,
            clock,
        }
    }

    /// Locks what exists, and applies the action to each column set. The
    /// caller commits, after the write's last batch.
    fn run(&self, lock_wait: u64) -> Result<(), PluginError> {
        let step = Step::of(self.batch.action().get())?;
        if step.locks_existing_rows() {
            self.lock_existing(lock_wait)?;
        }
        for set in self.batch.column_sets() {
            match step {
                Step::Merge => self.merge(&set)?,
                Step::Insert => set.rows.iter().try_for_each(|&row| self.insert(&set.columns, row))?,
                Step::Update(if_missing) => {
                    set.rows.iter().try_for_each(|&row| self.update(&set.columns, row, if_missing))?
                }
                Step::Delete => set.rows.iter().try_for_each(|&row| self.delete(row))?,
            }
        }
        Ok(())
    }

    fn bound(&self) -> Result<(), PluginError> {
        self.clock.bound(self.connection, self.batch.table())
    }

    /// The stored names of the columns at `positions`.
    fn names_of(&self, positions: &[usize]) -> Vec<&'a str> {
        positions.iter().map(|&p| self.names[p]).collect()
    }

    /// `row`'s values for the columns at `positions`, each bound as its
    /// column's type.
    fn values(&self, row: usize, positions: &[usize]) -> Vec<Box<dyn ToSql + '_>> {
        positions.iter().map(|&p| typed(&self.binds[row][p], &self.types[p])).collect()
    }

    /// Locks the batch's existing rows, waiting at most `lock_wait` seconds
    /// for another session's locks (ORA-30006, a conflict): the statements
    /// that follow then find them locked by this transaction, and do not
    /// wait for them.
    fn lock_existing(&self, lock_wait: u64) -> Result<(), PluginError> {
        let keys = self.names_of(&self.keys);
        for (range, size) in sql::lock_chunks(self.binds.len(), keys.len()) {
            let lock = sql::lock_rows(self.table, &keys, size, lock_wait);
            let last = range.end - 1;
            let values: Vec<Box<dyn ToSql + '_>> =
                range.chain(std::iter::repeat(last)).take(size).flat_map(|row| self.values(row, &self.keys)).collect();
            let values: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
            self.bound()?;
            // Oracle locks every selected row when it runs the query.
            drop(self.connection.query(&lock, &values).map_err(classify)?);
        }
        Ok(())
    }

    /// Upserts a column set's rows with one array-bound MERGE that sets and
    /// inserts only the columns they carry.
    fn merge(&self, set: &ColumnSet) -> Result<(), PluginError> {
        let text = sql::merge(self.table, &self.names_of(&set.columns), &self.names_of(&self.keys));
        let in_set = |e: oracle::Error| in_set(classify(e), &set.rows);
        self.bound()?;
        let mut statement = self.connection.batch(&text, set.rows.len().max(1)).build().map_err(classify)?;
        for (i, &position) in set.columns.iter().enumerate() {
            statement.set_type(i + 1, &self.types[position]).map_err(classify)?;
        }
        for &row in &set.rows {
            let values: Vec<&dyn ToSql> = set.columns.iter().map(|&p| as_sql(&self.binds[row][p])).collect();
            statement.append_row(&values).map_err(in_set)?;
        }
        statement.execute().map_err(in_set)
    }

    /// Runs a one-row statement with `row`'s values for the columns at
    /// `positions`; returns how many rows it touched. Errors name the row.
    fn execute(&self, text: &str, row: usize, positions: &[usize]) -> Result<u64, PluginError> {
        let values = self.values(row, positions);
        let values: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
        self.bound()?;
        let statement = self.connection.execute(text, &values).map_err(|e| classify(e).with_row(row))?;
        statement.row_count().map_err(|e| classify(e).with_row(row))
    }

    /// Inserts `row` with the columns it carries; a key that exists is the
    /// row's DATA error, never an overwrite.
    fn insert(&self, columns: &[usize], row: usize) -> Result<(), PluginError> {
        let text = sql::insert(self.table, &self.names_of(columns));
        self.execute(&text, row, columns).map_err(errors::for_insert)?;
        Ok(())
    }

    /// Sets `row`'s carried non-key columns; a key that matches no row is
    /// handled as `if_missing` says.
    fn update(&self, columns: &[usize], row: usize, if_missing: IfMissing) -> Result<(), PluginError> {
        let set = sql::non_key(columns, &self.keys);
        let found = match (set.is_empty(), if_missing) {
            // Nothing to set, and a missing row does not matter.
            (true, IfMissing::Ignore) => return Ok(()),
            (true, _) => self.exists(row)?,
            (false, _) => {
                let text = sql::update(self.table, &self.names_of(&set), &self.names_of(&self.keys));
                let positions: Vec<usize> = set.iter().chain(&self.keys).copied().collect();
                self.execute(&text, row, &positions)? > 0
            }
        };
        match (found, if_missing) {
            (false, IfMissing::Error) => Err(PluginError::permanent(
                ErrorKind::DATA,
                format!("update: no row of {} has this key", self.batch.table()),
            )
            .with_row(row)),
            (false, IfMissing::Insert) => self.insert(columns, row),
            _ => Ok(()),
        }
    }

    /// Whether a row has `row`'s key.
    fn exists(&self, row: usize) -> Result<bool, PluginError> {
        let text = sql::count(self.table, &self.names_of(&self.keys));
        let values = self.values(row, &self.keys);
        let values: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
        self.bound()?;
        let count: i64 = self.connection.query_row_as(&text, &values).map_err(|e| classify(e).with_row(row))?;
        Ok(count > 0)
    }

    /// Deletes the row with `row`'s key; none is fine (it is already gone).
    fn delete(&self, row: usize) -> Result<(), PluginError> {
        self.execute(&sql::delete(self.table, &self.names_of(&self.keys)), row, &self.keys)?;
        Ok(())
    }
}

/// An array-bound statement's error for a column set: ODPI-C names the
/// failing row by its place in the set's array, which becomes its index in
/// the batch. A place outside the array is no row at all.
fn in_set(mut error: PluginError, rows: &[usize]) -> PluginError {
    let place = error.row.into_option().and_then(|p| usize::try_from(p).ok());
    error.row = place.and_then(|p| rows.get(p)).map(|&row| row as u64).into();
    error
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
        // Bytes, never hexadecimal text for the server to convert.
        ColumnBind::Raw => OracleType::Raw(u32::try_from(max_raw_bytes(column)).unwrap_or(u32::MAX)),
        ColumnBind::Blob => OracleType::BLOB,
    }
}

/// `value` bound as `ty`, its column's bind type.
fn typed<'a>(value: &'a Bind, ty: &'a OracleType) -> Box<dyn ToSql + 'a> {
    const NULL: Option<&str> = None;
    match value {
        Bind::Null => Box::new((&NULL, ty)),
        Bind::Int(i) => Box::new((i, ty)),
        Bind::Float(f) => Box::new((f, ty)),
        Bind::Number(s) | Bind::Text(s) => Box::new((s, ty)),
        Bind::DateTime(dt) => Box::new((dt, ty)),
        Bind::Bytes(b) => Box::new((b, ty)),
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
        Bind::Bytes(b) => b,
    }
}

impl Writer for OracleWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch in one transaction: all commit, or none.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        if batches.is_empty() {
            return Ok(());
        }
        let result = self.write_once(batches, deadline);
        if let Err(e) = &result {
            if e.kind == ErrorKind::CONNECTION || e.kind == ErrorKind::TIMEOUT {
                self.connection = None;
            }
            if e.kind == ErrorKind::SCHEMA {
                // A table may have been changed: look them up again next time.
                for batch in batches {
                    self.dictionaries.remove(batch.table());
                }
            }
        }
        result?;
        for batch in batches {
            self.log.debug(format_args!(
                "{} of {} rows into {}",
                batch.action().name(),
                batch.row_count(),
                batch.table()
            ));
        }
        Ok(())
    }

    fn writes_batches_together(&self) -> bool {
        true
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

    fn actions(&self) -> Actions {
        Actions::ALL_1_1
    }

    fn close(&mut self) -> Result<(), PluginError> {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use his_plugin_api::Action;

    use super::*;

    #[test]
    fn each_action_has_its_step_and_only_an_insert_skips_the_row_locks() {
        let steps = [
            (Action::UPSERT, Step::Merge),
            (Action::INSERT, Step::Insert),
            (Action::update(IfMissing::Error), Step::Update(IfMissing::Error)),
            (Action::update(IfMissing::Ignore), Step::Update(IfMissing::Ignore)),
            (Action::update(IfMissing::Insert), Step::Update(IfMissing::Insert)),
            // A soft-delete sets what it carries and ignores a missing row.
            (Action::SOFT_DELETE, Step::Update(IfMissing::Ignore)),
            (Action::DELETE, Step::Delete),
        ];
        for (action, step) in steps {
            assert_eq!(Step::of(action.get()).unwrap(), step, "{action:?}");
            assert_eq!(step.locks_existing_rows(), step != Step::Insert, "{action:?}");
        }
        let e = Step::of(WriteAction::Unknown(9)).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::UNSUPPORTED, false));
    }

    #[test]
    fn each_call_is_bounded_by_what_is_left_of_the_deadline() {
        let clock = |budget_ms: u64, statement_timeout_s: u64| Clock {
            started: Instant::now(),
            deadline: Deadline::after(Duration::from_millis(budget_ms)),
            statement_timeout: Duration::from_secs(statement_timeout_s),
        };
        // The deadline is shorter than the statement timeout: it bounds.
        let short = clock(10_000, 60).next_call().unwrap();
        assert!(short <= Duration::from_secs(10) && short > Duration::from_secs(9), "{short:?}");
        // The statement timeout is shorter: it bounds each call.
        assert_eq!(clock(600_000, 60).next_call(), Some(Duration::from_secs(60)));
        // A spent budget is no bound at all, but the end of the write.
        assert_eq!(clock(0, 60).next_call(), None);
        let spent = Clock { started: Instant::now() - Duration::from_secs(2), ..clock(1_000, 60) };
        assert_eq!(spent.next_call(), None);
    }

    #[test]
    fn an_array_rows_error_names_its_batch_row() {
        let at = |place: Option<usize>| {
            let e = PluginError::permanent(ErrorKind::DATA, "ORA-12899: value too large");
            let e = match place {
                Some(p) => e.with_row(p),
                None => e,
            };
            in_set(e, &[1, 4, 6]).row.into_option()
        };
        assert_eq!(at(Some(0)), Some(1));
        assert_eq!(at(Some(2)), Some(6));
        assert_eq!(at(Some(3)), None);
        assert_eq!(at(None), None);
    }

    /// No Oracle server here: what write_all adds to a batch's own row
    /// naming is checked without one. An array error at place 1 of a
    /// column set's rows [1, 4, 6], in the second batch of a write_all
    /// after a first batch of 10 rows, is row 14.
    #[test]
    fn a_row_of_a_later_batch_is_numbered_across_the_batches() {
        let columns = || vec!["ID".into()].into();
        let values = |n: i64| (0..n).map(his_plugin_api::Value::int).collect();
        let batches = [
            WriteBatch::new("A", Action::UPSERT, columns(), columns(), values(10)),
            WriteBatch::new("B", Action::UPSERT, columns(), columns(), values(7)),
        ];
        let (first_row, _) = WriteBatch::with_first_rows(&batches).nth(1).unwrap();
        let e = PluginError::permanent(ErrorKind::DATA, "ORA-12899: value too large").with_row(1);
        assert_eq!(in_set(e, &[1, 4, 6]).offset_row(first_row).row.into_option(), Some(14));
        let whole = PluginError::permanent(ErrorKind::CONNECTION, "ORA-03113").offset_row(first_row);
        assert_eq!(whole.row.into_option(), None, "an error of no row stays one");
        assert_eq!(names(&batches), "A, B");
    }

    #[test]
    fn bytes_columns_bind_as_raw_and_blob() {
        let column = |data_type: &str, data_length: u32| DictionaryRow {
            table: "T".into(),
            column: "C".into(),
            data_type: data_type.into(),
            data_length,
            nullable: true,
            has_default: false,
        };
        assert_eq!(oracle_type(&column("RAW", 16)), OracleType::Raw(16));
        assert_eq!(oracle_type(&column("RAW", 0)), OracleType::Raw(2000));
        assert_eq!(oracle_type(&column("BLOB", 4000)), OracleType::BLOB);
        assert_eq!(oracle_type(&column("VARCHAR2", 32)), OracleType::Varchar2(4000));
    }
}
