//! The MySQL writer: its own tokio runtime and connection pool.
//!
//! The host calls a writer from one blocking thread; sqlx is async. So the
//! writer owns a small runtime and blocks on it in each call. The pool
//! replaces a lost connection on the next call, without a restart.
//!
//! Between writes that come quickly (a backlog draining), the writer keeps
//! its connection instead of returning it to the pool: a checkout costs a
//! ping, which with `BEGIN` was a fifth of each batch's time. A connection that sat idle for `HELD_IDLE_LIMIT` goes back, so
//! that the pool pings it before it is used again.

use std::time::{Duration, Instant};

use his_plugin_api::{
    ColumnDescription, ErrorKind, KeyColumns, Logger, PluginError, TableDescription, UpsertBatch, Value, Writer,
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

    /// Writes `batch` in one transaction on `connection`. On error the
    /// caller drops the connection: the pool pings it before lending it again.
    async fn upsert_on(&self, connection: &mut PoolConnection<MySql>, batch: &UpsertBatch) -> Result<(), PluginError> {
        let columns: Vec<&str> = batch.columns.iter().map(|c| c.as_str()).collect();
        let keys: Vec<&str> = batch.key_columns.iter().map(|c| c.as_str()).collect();
        let rows: Vec<&[Value]> = batch.rows().collect();
        let zone = self.settings.zone;
        // Every value is checked before anything is sent.
        let binds: Vec<Vec<Bind<'_>>> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| row.iter().map(|v| bind(v, zone).map_err(|e| e.with_row(i))).collect())
            .collect::<Result<_, _>>()?;

        let head = sql::insert_head(&batch.table, &columns);
        let tail = sql::on_duplicate_tail(&columns, &keys);
        // Always in a transaction, even for one statement: a write abandoned
        // at the timeout must roll back with its connection, never commit
        // later behind a newer state of the same row.
        let mut transaction = connection.begin().await.map_err(|e| classify(e, 0))?;
        for range in sql::statement_ranges(&rows, columns.len(), self.settings.max_statement_bytes) {
            let first_row = range.start;
            let mut query = QueryBuilder::<MySql>::new(&head);
            query.push_values(&binds[range], |mut row, values| {
                for value in values {
                    push(&mut row, value);
                }
            });
            query.push(&tail);
            query.build().execute(&mut *transaction).await.map_err(|e| classify(e, first_row))?;
        }
        transaction.commit().await.map_err(|e| classify(e, 0))?;
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

/// Binds one value into the row being built.
fn push(row: &mut Separated<'_, MySql, &'static str>, value: &Bind<'_>) {
    match value {
        Bind::Null => row.push_bind(None::<String>),
        Bind::Bool(b) => row.push_bind(*b),
        Bind::Int(i) => row.push_bind(*i),
        Bind::Float(f) => row.push_bind(*f),
        Bind::Text(s) => row.push_bind(*s),
        Bind::DateTime(dt) => row.push_bind(*dt),
    };
}

fn kind_of(version: &str) -> &'static str {
    if version.to_ascii_lowercase().contains("mariadb") { "MariaDB" } else { "MySQL" }
}

impl Writer for MysqlWriter {
    fn upsert(&mut self, batch: &UpsertBatch) -> Result<(), PluginError> {
        // A hung server or a dead link without a reset must not stall the
        // worker: past the limit the write is abandoned (its connection with
        // it, which rolls the transaction back) and retried later.
        let limit = self.settings.statement_timeout;
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
                self.upsert_on(&mut connection, batch).await?;
                Ok(connection)
            })
            .await
            .unwrap_or_else(|_| Err(PluginError::write_timed_out(&batch.table, limit)))
        })?;
        self.held = Some(Held { connection, last_used: Instant::now() });
        self.log.debug(format_args!("upserted {} rows into {}", batch.row_count(), batch.table));
        Ok(())
    }

    fn ping(&mut self) -> Result<(), PluginError> {
        self.release();
        self.runtime
            .block_on(async {
                let mut connection = self.pool.acquire().await?;
                connection.ping().await
            })
            .map_err(|e| classify(e, 0))
    }

    fn describe_table(&mut self, table: &str) -> Result<Option<TableDescription>, PluginError> {
        self.release();
        self.runtime.block_on(self.describe_async(table))
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
