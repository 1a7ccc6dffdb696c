//! The MySQL writer: its own tokio runtime and connection pool.
//!
//! The host calls a writer from one blocking thread; sqlx is async. So the
//! writer owns a small runtime and blocks on it in each call. The pool
//! replaces a lost connection on the next call, without a restart.
//!
//! Each write, of one batch or of several ([`Writer::write_all`]), is one
//! transaction.
//!
//! Between writes that come quickly (a backlog draining), the writer keeps
//! its connection instead of returning it to the pool: a checkout costs a
//! ping, which with `BEGIN` was a fifth of each batch's time. A connection that sat idle for `HELD_IDLE_LIMIT` goes back, so
//! that the pool pings it before it is used again.

use std::time::{Duration, Instant};

use his_plugin_api::{
    Actions, ColumnDescription, Deadline, ErrorKind, IfMissing, KeyColumns, Logger, PluginError, TableDescription,
    Value, WriteAction, WriteBatch, Writer,
};
use sqlx::{
    Connection, Executor, MySql, MySqlPool, QueryBuilder, Row, mysql::MySqlPoolOptions, pool::PoolConnection,
    query_builder::Separated,
};

use crate::{
    errors::classify,
    settings::Settings,
    sql,
    values::{Bind, bind},
};

/// How long a kept connection may sit idle and still be used without the
/// pool's ping: far below any server's `wait_timeout` (8 hours by default).
const HELD_IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Writes batches into one MySQL or MariaDB database.
pub struct MysqlWriter {
    runtime: tokio::runtime::Runtime,
    pool: MySqlPool,
    settings: Settings,
    log: Logger,
    /// The connection of the last write, while writes come quickly.
    held: Option<Held>,
}

/// A connection kept after a write that succeeded.
struct Held {
    connection: PoolConnection<MySql>,
    last_used: Instant,
}

impl MysqlWriter {
    /// Connects once to check the address and the login. A refused login or
    /// an unknown database is permanent (the host stops with the message);
    /// an unreachable server is retryable (the host waits for it).
    pub fn open(settings: Settings, log: Logger) -> Result<Self, PluginError> {
        use_ring_for_tls();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("his-mysql")
            .enable_all()
            .build()
            .map_err(|e| {
                PluginError::permanent(ErrorKind::OTHER, format!("cannot start the mysql plugin's runtime: {e}"))
            })?;
        let pool = {
            let _context = runtime.enter();
            let session = sql::session_setup(settings.lock_timeout.as_secs());
            MySqlPoolOptions::new()
                .max_connections(settings.pool_size)
                .acquire_timeout(settings.connect_timeout)
                .after_connect(move |connection, _| {
                    let session = session.clone();
                    Box::pin(async move {
                        connection.execute(sqlx::AssertSqlSafe(session)).await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(settings.connect.clone())
        };
        // One direct attempt, not the pool's retry loop: an unreachable
        // server is reported at once, and the host retries with its backoff.
        let version: String = runtime
            .block_on(async {
                let mut connection = tokio::time::timeout(
                    settings.connect_timeout,
                    sqlx::MySqlConnection::connect_with(&settings.connect),
                )
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
                let version = sqlx::query_scalar("SELECT VERSION()").fetch_one(&mut connection).await?;
                let _ = connection.close().await;
                Ok(version)
            })
            .map_err(|e: sqlx::Error| {
                classify(e, 0).while_connecting(
                    format!("MySQL at {}", settings.display),
                    "check database.user and database.password, and the user's grants",
                    "check the database settings",
                )
            })?;
        log.info(format_args!("connected to {} as {} (server {version})", kind_of(&version), settings.display));
        Ok(Self { runtime, pool, settings, log, held: None })
    }

    /// Gives the kept connection back to the pool (inside the runtime: the
    /// pool takes it back on a task).
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            let _context = self.runtime.enter();
            drop(held);
        }
    }

    /// Writes every batch, in order, in one transaction on `connection`.
    /// A row at fault is numbered across the batches. On error the caller
    /// drops the connection (the transaction with it): the pool pings it
    /// before lending it again.
    async fn write_on(
        &self,
        connection: &mut PoolConnection<MySql>,
        batches: &[WriteBatch],
    ) -> Result<(), PluginError> {
        let zone = self.settings.zone;
        // Every value of every batch is checked before anything is sent.
        let binds: Vec<Vec<Vec<Bind<'_>>>> = WriteBatch::with_first_rows(batches)
            .map(|(first_row, batch)| {
                batch
                    .rows()
                    .enumerate()
                    .map(|(i, row)| row.iter().map(|v| bind(v, zone).map_err(|e| e.with_row(first_row + i))).collect())
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        // Always in a transaction, even for one statement: a write abandoned
        // at the timeout must roll back with its connection, never commit
        // later behind a newer state of the same row.
        let mut transaction = connection.begin().await.map_err(|e| classify(e, 0))?;
        for ((first_row, batch), binds) in WriteBatch::with_first_rows(batches).zip(&binds) {
            self.apply_batch(&mut transaction, batch, binds).await.map_err(|e| e.offset_row(first_row))?;
        }
        transaction.commit().await.map_err(|e| classify(e, 0))?;
        Ok(())
    }

    /// Applies `batch` in `transaction`, one column set (see
    /// [`WriteBatch::column_sets`]) after another; `binds` holds its rows'
    /// values. Rows are numbered in the batch: statement ranges and one-row
    /// statements name the batch's row, and the caller offsets it.
    async fn apply_batch(
        &self,
        transaction: &mut sqlx::Transaction<'_, MySql>,
        batch: &WriteBatch,
        binds: &[Vec<Bind<'_>>],
    ) -> Result<(), PluginError> {
        let keys: Vec<&str> = batch.key_columns().iter().map(|c| c.as_str()).collect();
        let rows: Vec<&[Value]> = batch.rows().collect();
        for set in batch.column_sets() {
            let columns: Vec<&str> = set.columns.iter().map(|&c| batch.columns()[c].as_str()).collect();
            let pick = |row: usize, names: &[&str]| -> Vec<&Bind<'_>> {
                names
                    .iter()
                    .map(|n| &binds[row][batch.columns().iter().position(|c| c.as_str() == *n).expect("a column")])
                    .collect()
            };
            let set_columns: Vec<&str> = columns.iter().copied().filter(|c| !keys.contains(c)).collect();
            match batch.action().get() {
                WriteAction::Upsert => {
                    let head = sql::insert_head(batch.table(), &columns);
                    let tail = sql::on_duplicate_tail(&columns, &keys);
                    // The set's columns by index: the hot path of a backlog's drain.
                    let group: Vec<Vec<&Bind<'_>>> =
                        set.rows.iter().map(|&r| set.columns.iter().map(|&c| &binds[r][c]).collect()).collect();
                    let group_rows: Vec<&[Value]> = set.rows.iter().map(|&r| rows[r]).collect();
                    for range in sql::statement_ranges(&group_rows, columns.len(), self.settings.max_statement_bytes) {
                        let first_row = set.rows[range.start];
                        let mut query = QueryBuilder::<MySql>::new(&head);
                        query.push_values(&group[range], |mut row, values| {
                            for value in values {
                                push(&mut row, value);
                            }
                        });
                        query.push(&tail);
                        query.build().execute(&mut **transaction).await.map_err(|e| classify(e, first_row))?;
                    }
                }
                WriteAction::Insert => {
                    for &row in &set.rows {
                        insert(transaction, batch.table(), &columns, &pick(row, &columns), row).await?;
                    }
                }
                WriteAction::Update(_) | WriteAction::SoftDelete => {
                    let if_missing = match batch.action().get() {
                        WriteAction::Update(policy) => policy,
                        _ => IfMissing::Ignore,
                    };
                    for &row in &set.rows {
                        // Whether the row exists, locked as the update
                        // locks it (an UPDATE's affected rows would not
                        // count a row that already has these values).
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql::exists(batch.table(), &keys)));
                        for value in pick(row, &keys) {
                            query = bind_one(query, value);
                        }
                        let found =
                            query.fetch_optional(&mut **transaction).await.map_err(|e| classify(e, row))?.is_some();
                        if found && !set_columns.is_empty() {
                            let text = sql::update(batch.table(), &set_columns, &keys);
                            let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
                            for value in pick(row, &set_columns).into_iter().chain(pick(row, &keys)) {
                                query = bind_one(query, value);
                            }
                            query.execute(&mut **transaction).await.map_err(|e| classify(e, row))?;
                        }
                        match (found, if_missing) {
                            (false, IfMissing::Error) => {
                                return Err(PluginError::permanent(
                                    ErrorKind::DATA,
                                    format!("update: no row of {} has this key", batch.table()),
                                )
                                .with_row(row));
                            }
                            (false, IfMissing::Insert) => {
                                insert(transaction, batch.table(), &columns, &pick(row, &columns), row).await?;
                            }
                            _ => {}
                        }
                    }
                }
                WriteAction::Delete => {
                    for &row in &set.rows {
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql::delete(batch.table(), &keys)));
                        for value in pick(row, &keys) {
                            query = bind_one(query, value);
                        }
                        query.execute(&mut **transaction).await.map_err(|e| classify(e, row))?;
                    }
                }
                other => {
                    return Err(PluginError::permanent(ErrorKind::UNSUPPORTED, format!("unknown action {other:?}")));
                }
            }
        }
        Ok(())
    }

    async fn describe_async(&self, table: &str) -> Result<Option<TableDescription>, PluginError> {
        let fail = |e| classify(e, 0);
        let mut connection = self.pool.acquire().await.map_err(fail)?;
        // The exact name first, then one that differs only in case (servers
        // with lower_case_table_names store names lowercased).
        let name: Option<String> = sqlx::query_scalar(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = DATABASE() AND LOWER(TABLE_NAME) = LOWER(?)
             ORDER BY TABLE_NAME = ? DESC LIMIT 1",
        )
        .bind(table)
        .bind(table)
        .fetch_optional(&mut *connection)
        .await
        .map_err(fail)?;
        let Some(name) = name else { return Ok(None) };

        let columns = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), IS_NULLABLE = 'YES',
                    COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%'
             FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await
        .map_err(fail)?
        .iter()
        .map(|row| {
            Ok(ColumnDescription {
                name: row.try_get::<String, _>(0)?.into(),
                data_type: row.try_get::<String, _>(1)?.into(),
                nullable: row.try_get::<i64, _>(2)? != 0,
                has_default: row.try_get::<i64, _>(3)? != 0,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(fail)?;

        let mut keys = KeyColumns::default();
        let indexes = sqlx::query(
            "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await
        .map_err(fail)?;
        for row in indexes {
            let (index, column): (String, String) = (row.try_get(0).map_err(fail)?, row.try_get(1).map_err(fail)?);
            keys.push(&index, index == "PRIMARY", &column);
        }
        let (primary_key, unique_keys) = keys.into_parts();
        Ok(Some(TableDescription { name: name.into(), columns: columns.into(), primary_key, unique_keys }))
    }
}

/// Inserts one row; a key that exists (1062) is a DATA error naming the row,
/// never an overwrite.
async fn insert(
    transaction: &mut sqlx::Transaction<'_, MySql>,
    table: &str,
    columns: &[&str],
    values: &[&Bind<'_>],
    row: usize,
) -> Result<(), PluginError> {
    let text = format!("{}VALUES ({})", sql::insert_head(table, columns), vec!["?"; columns.len()].join(", "));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
    for value in values {
        query = bind_one(query, value);
    }
    query.execute(&mut **transaction).await.map_err(|e| {
        let e = classify(e, row);
        if e.code.as_str() == "1062" {
            PluginError::permanent(ErrorKind::DATA, format!("insert: a row with this key exists ({})", e.message))
                .with_code("1062")
                .with_row(row)
        } else {
            e
        }
    })?;
    Ok(())
}

/// Binds one value to a one-row statement.
fn bind_one<'q>(
    query: sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>,
    value: &Bind<'q>,
) -> sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    match value {
        Bind::Null => query.bind(None::<String>),
        Bind::Bool(b) => query.bind(*b),
        Bind::Int(i) => query.bind(*i),
        Bind::Float(f) => query.bind(*f),
        Bind::Text(s) => query.bind(*s),
        Bind::DateTime(dt) => query.bind(*dt),
        Bind::Bytes(b) => query.bind(*b),
    }
}

/// Binds one value into the row being built.
fn push(row: &mut Separated<'_, MySql, &'static str>, value: &Bind<'_>) {
    match value {
        Bind::Null => row.push_bind(None::<String>),
        Bind::Bool(b) => row.push_bind(*b),
        Bind::Int(i) => row.push_bind(*i),
        Bind::Float(f) => row.push_bind(*f),
        Bind::Text(s) => row.push_bind(*s),
        Bind::DateTime(dt) => row.push_bind(*dt),
        Bind::Bytes(b) => row.push_bind(*b),
    };
}

/// The batches' tables, for messages: `HIS_payments, HIS_appointments`.
fn tables(batches: &[WriteBatch]) -> String {
    batches.iter().map(WriteBatch::table).collect::<Vec<_>>().join(", ")
}

fn kind_of(version: &str) -> &'static str {
    if version.to_ascii_lowercase().contains("mariadb") { "MariaDB" } else { "MySQL" }
}

/// Makes ring the crypto provider of this plugin's own copy of rustls.
/// sqlx builds its TLS config with ring, but its certificate check for
/// `verify-ca` asks rustls for the process's provider, and rustls cannot
/// choose one when a build of several crates also turns on aws-lc-rs (the
/// workspace's does, through tiberius): the plugin panicked in `open`. An
/// error means a provider is set already.
fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Writer for MysqlWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch in one transaction: all commit, or none.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        if batches.is_empty() {
            return Ok(());
        }
        // A hung server or a dead link without a reset must not stall the
        // worker: past the limit the write is abandoned (its connection with
        // it, which rolls the transaction back) and retried later.
        let limit = self.settings.statement_timeout.min(deadline.budget());
        let held = self.held.take();
        let connection = self.runtime.block_on(async {
            tokio::time::timeout(limit, async {
                // Inside the runtime: the pool takes a connection back on a
                // task of its own (dropped outside one, sqlx panics).
                let mut connection = match held {
                    Some(held) if held.last_used.elapsed() < HELD_IDLE_LIMIT => held.connection,
                    stale => {
                        drop(stale);
                        self.pool.acquire().await.map_err(|e| classify(e, 0))?
                    }
                };
                self.write_on(&mut connection, batches).await?;
                Ok(connection)
            })
            .await
            .unwrap_or_else(|_| Err(PluginError::write_timed_out(&tables(batches), limit)))
        })?;
        self.held = Some(Held { connection, last_used: Instant::now() });
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
        self.release();
        self.runtime
            .block_on(async {
                let mut connection = self.pool.acquire().await?;
                connection.ping().await
            })
            .map_err(|e| classify(e, 0))
    }

    fn describe_table(&mut self, table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        self.release();
        self.runtime.block_on(self.describe_async(table))
    }

    fn actions(&self) -> Actions {
        Actions::ALL_1_1
    }

    fn close(&mut self) -> Result<(), PluginError> {
        self.release();
        self.runtime.block_on(self.pool.close());
        Ok(())
    }
}

impl Drop for MysqlWriter {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    /// Without a provider chosen, sqlx's `verify_ca` check panics in a
    /// build where aws-lc-rs is on too (tests/postgres.rs shows it for the
    /// PostgreSQL writer, whose TLS code is the same sqlx-core's).
    #[test]
    fn tls_has_a_crypto_provider() {
        super::use_ring_for_tls();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
