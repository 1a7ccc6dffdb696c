//! The SQLite writer: one connection, one transaction per write: of one
//! batch, or of several ([`Writer::write_all`]).

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use his_plugin_api::{
    Actions, ColumnDescription, ColumnSet, Deadline, ErrorKind, IfMissing, Logger, PluginError, TableDescription,
    Value, ValueRef, WriteAction, WriteBatch, Writer,
};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension,
    types::{ToSql, ToSqlOutput},
};

use crate::{errors::classify, settings::Settings, sql};

/// Writes batches into one SQLite HIS database.
pub struct SqliteWriter {
    connection: Connection,
    settings: Settings,
    log: Logger,
    /// With `create_missing`: the columns (lowercased: SQLite ignores case)
    /// of each table already checked or created, so that the schema is
    /// looked at once per table, not per batch.
    known_columns: HashMap<String, HashSet<String>>,
}

impl SqliteWriter {
    /// Opens the database file. Without `create_missing` the file must exist:
    /// a mistyped path must not quietly become a new, empty HIS.
    pub fn open(settings: Settings, log: Logger) -> Result<Self, PluginError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if settings.create_missing {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
            create_private(&settings.path);
        }
        let connection = Connection::open_with_flags(&settings.path, flags).map_err(|e| {
            let hint = if settings.create_missing {
                "check that its folder exists and is writable"
            } else {
                "check database.path, or set database.create_missing to true to create it"
            };
            PluginError::permanent(
                ErrorKind::CONFIG,
                format!("database.path: cannot open SQLite HIS database {}: {e}; {hint}", settings.path.display()),
            )
        })?;
        // Another program's lock on the file is waited for this long, then
        // SQLITE_BUSY: a retryable conflict.
        connection.busy_timeout(settings.lock_timeout).map_err(classify)?;
        log.info(format_args!(
            "writing to SQLite HIS database {} (create_missing: {})",
            settings.path.display(),
            settings.create_missing
        ));
        Ok(Self { connection, settings, log, known_columns: HashMap::new() })
    }

    /// Creates the table, its missing columns and a unique index on the key
    /// columns. Only with `create_missing`; column types follow the first
    /// non-null value of each column in this batch.
    fn create_missing(&mut self, batch: &WriteBatch) -> Result<(), PluginError> {
        let table = batch.table();
        let known = self.known_columns.get(table);
        if known.is_some_and(|known| batch.columns().iter().all(|c| known.contains(&c.to_lowercase()))) {
            return Ok(());
        }
        let existing: HashSet<String> = match self.describe(table)? {
            Some(description) => description.columns.iter().map(|c| c.name.to_lowercase()).collect(),
            None => HashSet::new(),
        };
        let keys: Vec<&str> = batch.key_columns().iter().map(|k| k.as_str()).collect();
        let quoted_keys = keys.iter().map(|k| sql::quote(k)).collect::<Vec<_>>().join(", ");
        let mut statements = Vec::new();
        if existing.is_empty() {
            let columns: Vec<String> = batch
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} {}", sql::quote(c), column_type(batch, i)))
                .collect();
            statements.push(format!(
                "CREATE TABLE {} ({}, PRIMARY KEY ({quoted_keys}))",
                sql::quote(table),
                columns.join(", ")
            ));
            self.log.info(format_args!("creating table {table} (database.create_missing is on)"));
        } else {
            for (i, column) in batch.columns().iter().enumerate() {
                if !existing.contains(&column.to_lowercase()) {
                    statements.push(format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        sql::quote(table),
                        sql::quote(column),
                        column_type(batch, i)
                    ));
                    self.log
                        .info(format_args!("adding column {column} to table {table} (database.create_missing is on)"));
                }
            }
            statements.push(format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({quoted_keys})",
                sql::quote(&format!("buktor_key_{table}_{}", keys.join("_"))),
                sql::quote(table)
            ));
        }
        self.connection.execute_batch(&statements.join(";\n")).map_err(classify)?;
        self.known_columns.insert(table.to_string(), batch.columns().iter().map(|c| c.to_lowercase()).collect());
        Ok(())
    }
}

/// The declared type for a created column: the SQLite affinity of the first
/// non-null value. Decimals and timestamps are TEXT, which keeps them exact.
fn column_type(batch: &WriteBatch, column: usize) -> &'static str {
    let first = batch.rows().map(|row| row[column].get()).find(|v| *v != ValueRef::Null);
    match first {
        Some(ValueRef::Int(_) | ValueRef::Bool(_)) => "INTEGER",
        Some(ValueRef::Float(_)) => "REAL",
        Some(ValueRef::Bytes(_)) => "BLOB",
        Some(_) => "TEXT",
        None => "",
    }
}

/// Binds one [`Value`] as an SQLite parameter, without copying text.
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef as Sql;
        Ok(ToSqlOutput::Borrowed(match self.0.get() {
            ValueRef::Null => Sql::Null,
            ValueRef::Bool(b) => Sql::Integer(i64::from(b)),
            ValueRef::Int(i) => Sql::Integer(i),
            ValueRef::Float(f) => Sql::Real(f),
            // Decimal, timestamp and date text is stored as sent: exact, and
            // sortable (SQLite has no date type; its date functions read it).
            ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => {
                Sql::Text(s.as_bytes())
            }
            ValueRef::Bytes(b) => Sql::Blob(b),
            other => {
                return Err(rusqlite::Error::ToSqlConversionFailure(format!("unsupported value {other:?}").into()));
            }
        }))
    }
}

impl Writer for SqliteWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch in one IMMEDIATE transaction: all commit, or none.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        if self.settings.create_missing {
            for batch in batches.iter().filter(|b| b.action() != his_plugin_api::Action::DELETE) {
                self.create_missing(batch)?;
            }
        }
        // SQLite runs in this thread: a statement past the deadline is
        // interrupted (SQLITE_INTERRUPT) and the transaction rolled back.
        let until = Instant::now() + deadline.budget();
        self.connection.progress_handler(10_000, Some(move || Instant::now() > until));
        let written = self.apply(batches);
        self.connection.progress_handler(0, None::<fn() -> bool>);
        match written {
            Err(e) if e.code.as_str() == INTERRUPTED => {
                let tables: Vec<&str> = batches.iter().map(WriteBatch::table).collect();
                Err(PluginError::deadline_exceeded(&format!("the write to {}", tables.join(", ")), deadline.budget()))
            }
            other => other,
        }
    }

    fn writes_batches_together(&self) -> bool {
        true
    }

    fn ping(&mut self, _deadline: Deadline) -> Result<(), PluginError> {
        self.connection.query_row("SELECT 1", [], |_| Ok(())).map_err(classify)
    }

    fn describe_table(&mut self, table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        self.describe(table)
    }

    fn actions(&self) -> Actions {
        Actions::ALL_1_1
    }
}

/// SQLite's code for a statement interrupted by the progress handler.
const INTERRUPTED: &str = "SQLITE 9";

impl SqliteWriter {
    /// Every batch, in order, in one IMMEDIATE transaction; a row at fault
    /// is numbered across the batches. Dropped without its commit, the
    /// transaction rolls back.
    fn apply(&mut self, batches: &[WriteBatch]) -> Result<(), PluginError> {
        // IMMEDIATE takes the write lock up front, so a busy file fails fast
        // and cleanly instead of midway through the batches.
        let transaction =
            self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(classify)?;
        for (first_row, batch) in WriteBatch::with_first_rows(batches) {
            apply_batch(&transaction, batch).map_err(|e| e.offset_row(first_row))?;
        }
        transaction.commit().map_err(classify)?;
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
}

/// One batch inside the caller's transaction, one column set (see
/// [`WriteBatch::column_sets`]) after another; rows numbered in the batch.
fn apply_batch(transaction: &rusqlite::Transaction<'_>, batch: &WriteBatch) -> Result<(), PluginError> {
    let keys: Vec<&str> = batch.key_columns().iter().map(|c| c.as_str()).collect();
    for set in batch.column_sets() {
        let columns: Vec<&str> = set.columns.iter().map(|&c| batch.columns()[c].as_str()).collect();
        let group = Group { batch, set: &set, columns: &columns, keys: &keys };
        match batch.action().get() {
            WriteAction::Upsert => group.upsert(transaction)?,
            WriteAction::Insert => group.each_row(transaction, Group::insert)?,
            WriteAction::Update(if_missing) => group.each_row(transaction, |g, t, row| g.update(t, row, if_missing))?,
            WriteAction::SoftDelete => group.each_row(transaction, |g, t, row| g.update(t, row, IfMissing::Ignore))?,
            WriteAction::Delete => group.each_row(transaction, Group::delete)?,
            other => {
                return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unknown action {other:?}")));
            }
        }
    }
    Ok(())
}

/// Rows of one batch that carry the same columns.
struct Group<'a> {
    batch: &'a WriteBatch,
    set: &'a ColumnSet,
    /// The names of the set's columns.
    columns: &'a [&'a str],
    keys: &'a [&'a str],
}

impl Group<'_> {
    /// The values of `row` for `names`, in their order.
    fn values<'v>(&self, row: &'v [Value], names: &[&str]) -> Vec<Bind<'v>> {
        let all = self.batch.columns();
        names.iter().map(|n| Bind(&row[all.iter().position(|c| c.as_str() == *n).expect("a batch column")])).collect()
    }

    /// Multi-row upserts, as many rows per statement as SQLite takes.
    fn upsert(&self, transaction: &rusqlite::Transaction<'_>) -> Result<(), PluginError> {
        let rows_per_statement = sql::max_rows_per_statement(self.columns.len());
        let rows: Vec<&[Value]> = self.batch.rows().collect();
        let rows = &rows;
        for chunk in self.set.rows.chunks(rows_per_statement) {
            let text = sql::upsert(self.batch.table(), self.columns, self.keys, chunk.len());
            // Cached: a steady stream of same-sized batches reuses one plan.
            let mut statement = transaction.prepare_cached(&text).map_err(classify)?;
            // The set's columns by index: the hot path of a backlog's drain.
            let params: Vec<Bind<'_>> =
                chunk.iter().flat_map(|&r| self.set.columns.iter().map(move |&c| Bind(&rows[r][c]))).collect();
            statement.execute(rusqlite::params_from_iter(params.iter())).map_err(|e| match chunk {
                // With one row per statement, the failing row is known.
                [row] => classify(e).with_row(*row),
                _ => classify(e),
            })?;
        }
        Ok(())
    }

    /// `act` on each row alone, naming the row in its error.
    fn each_row(
        &self,
        transaction: &rusqlite::Transaction<'_>,
        act: impl Fn(&Self, &rusqlite::Transaction<'_>, &[Value]) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let rows: Vec<&[Value]> = self.batch.rows().collect();
        for &row in &self.set.rows {
            act(self, transaction, rows[row]).map_err(|e| e.with_row(row))?;
        }
        Ok(())
    }

    /// Inserts a row; a key that exists is a DATA error, never an overwrite.
    fn insert(&self, transaction: &rusqlite::Transaction<'_>, row: &[Value]) -> Result<(), PluginError> {
        let mut statement =
            transaction.prepare_cached(&sql::insert(self.batch.table(), self.columns)).map_err(classify)?;
        statement.execute(rusqlite::params_from_iter(self.values(row, self.columns).iter())).map_err(|e| {
            let e = classify(e);
            if e.kind == ErrorKind::CONSTRAINT && e.message.contains("UNIQUE") {
                PluginError::permanent(ErrorKind::DATA, format!("insert: a row with this key exists ({})", e.message))
                    .with_code(e.code.as_str())
            } else {
                e
            }
        })?;
        Ok(())
    }

    /// Updates the row's carried non-key columns; a key that matches no row
    /// is handled as `if_missing` says.
    fn update(
        &self,
        transaction: &rusqlite::Transaction<'_>,
        row: &[Value],
        if_missing: IfMissing,
    ) -> Result<(), PluginError> {
        let set: Vec<&str> = self.columns.iter().copied().filter(|c| !self.keys.contains(c)).collect();
        let changed = if set.is_empty() {
            // Nothing to set: does the row exist?
            let mut statement =
                transaction.prepare_cached(&sql::exists(self.batch.table(), self.keys)).map_err(classify)?;
            statement.exists(rusqlite::params_from_iter(self.values(row, self.keys).iter())).map_err(classify)? as usize
        } else {
            let mut statement =
                transaction.prepare_cached(&sql::update(self.batch.table(), &set, self.keys)).map_err(classify)?;
            let mut params = self.values(row, &set);
            params.extend(self.values(row, self.keys));
            statement.execute(rusqlite::params_from_iter(params.iter())).map_err(classify)?
        };
        match (changed, if_missing) {
            (0, IfMissing::Error) => Err(PluginError::permanent(
                ErrorKind::DATA,
                format!("update: no row of {} has this key", self.batch.table()),
            )),
            (0, IfMissing::Insert) => self.insert(transaction, row),
            _ => Ok(()),
        }
    }

    /// Deletes the row with the key; none is fine.
    fn delete(&self, transaction: &rusqlite::Transaction<'_>, row: &[Value]) -> Result<(), PluginError> {
        let mut statement =
            transaction.prepare_cached(&sql::delete(self.batch.table(), self.keys)).map_err(classify)?;
        statement.execute(rusqlite::params_from_iter(self.values(row, self.keys).iter())).map_err(classify)?;
        Ok(())
    }
}

impl SqliteWriter {
    fn describe(&mut self, table: &str) -> Result<Option<TableDescription>, PluginError> {
        // SQLite compares table names without regard to case.
        let name: Option<String> = self
            .connection
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [table],
                |row| row.get(0),
            )
            .optional()
            .map_err(classify)?;
        let Some(name) = name else { return Ok(None) };

        let mut columns = Vec::new();
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        let mut statement = self
            .connection
            .prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")
            .map_err(classify)?;
        let mut rows = statement.query([&name]).map_err(classify)?;
        while let Some(row) = rows.next().map_err(classify)? {
            let column: String = row.get(0).map_err(classify)?;
            let data_type: String = row.get(1).map_err(classify)?;
            let pk_position: i64 = row.get(4).map_err(classify)?;
            // An INTEGER PRIMARY KEY is the rowid: SQLite fills it in.
            let is_rowid = pk_position > 0 && data_type.eq_ignore_ascii_case("INTEGER");
            if pk_position > 0 {
                primary_key.push((pk_position, column.clone()));
            }
            columns.push(ColumnDescription {
                name: column.into(),
                data_type: data_type.into(),
                nullable: !row.get::<_, bool>(2).map_err(classify)?,
                has_default: row.get::<_, bool>(3).map_err(classify)? || is_rowid,
            });
        }
        primary_key.sort();

        let mut unique_keys = Vec::new();
        let mut indexes = self
            .connection
            .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' AND NOT partial")
            .map_err(classify)?;
        let index_names: Vec<String> = indexes
            .query_map([&name], |row| row.get(0))
            .map_err(classify)?
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        for index in index_names {
            let mut info =
                self.connection.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno").map_err(classify)?;
            let key: Vec<Option<String>> = info
                .query_map([&index], |row| row.get(0))
                .map_err(classify)?
                .collect::<Result<_, _>>()
                .map_err(classify)?;
            // An index on an expression has no column name: it cannot serve as an upsert key.
            if let Some(key) = key.into_iter().collect::<Option<Vec<String>>>() {
                unique_keys.push(key.into_iter().map(Into::into).collect());
            }
        }

        Ok(Some(TableDescription {
            name: name.into(),
            columns: columns.into(),
            primary_key: primary_key.into_iter().map(|(_, c)| c.into()).collect(),
            unique_keys: unique_keys.into(),
        }))
    }
}

/// Creates `path` empty and readable by its owner only (0600), unless it
/// exists: it will hold patient data, and a hand-run middleware's umask
/// (022) would otherwise make it readable by every user of the server.
/// SQLite gives its -wal and -shm files the same mode. Failing here is
/// not an error: opening the database says what is wrong.
fn create_private(path: &std::path::Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}
