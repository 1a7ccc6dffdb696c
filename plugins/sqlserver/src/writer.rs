//! The SQL Server writer: its own tokio runtime and one connection.
//!
//! The host calls a writer from one blocking thread; tiberius is async. So
//! the writer owns a small runtime and blocks on it in each call. A broken
//! connection is dropped and opened again on the next call. Each write, of
//! one batch or of several ([`Writer::write_all`]), is one transaction.

use his_plugin_api::{
    Actions, ColumnDescription, Deadline, ErrorKind, HisZone, KeyColumns, Logger, PluginError, TableDescription,
    WriteBatch, Writer,
};
use tiberius::{Client, Query, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::{
    actions,
    errors::{breaks_connection, classify},
    settings::Settings,
    sql,
    values::{Bind, bind},
};

/// One open session with SQL Server.
pub type Connection = Client<Compat<TcpStream>>;

/// Writes batches into one SQL Server database.
pub struct SqlServerWriter {
    runtime: tokio::runtime::Runtime,
    connection: Option<Connection>,
    settings: Settings,
    log: Logger,
}

impl SqlServerWriter {
    /// Connects once to check the address and the login. A refused login
    /// (18456) or a database that cannot be opened is permanent: the host
    /// stops with the message. An unreachable server is retryable.
    pub fn open(settings: Settings, log: Logger) -> Result<Self, PluginError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("his-sqlserver")
            .enable_all()
            .build()
            .map_err(|e| PluginError::permanent(ErrorKind::OTHER, format!("cannot start the plugin's runtime: {e}")))?;
        let writer = Self { runtime, connection: None, settings, log };
        let version = writer.runtime.block_on(async {
            let connection = connect(&writer.settings).await?;
            let version =
                single_text(connection, "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))").await;
            version.map(|v| (v, ()))
        });
        let version = match version {
            Ok((version, ())) => version,
            Err(e) => {
                return Err(e.while_connecting(
                    format!("SQL Server at {}", writer.settings.display),
                    "check database.user and database.password, or the login's rights",
                    "check the database settings",
                ));
            }
        };
        log.info(format_args!("connected to SQL Server {version} as {}", writer.settings.display));
        Ok(writer)
    }

    /// The open connection, or a new one.
    async fn connection(&mut self) -> Result<&mut Connection, PluginError> {
        if self.connection.is_none() {
            let mut connection = connect(&self.settings).await?;
            // Any error inside a transaction rolls all of it back, and a
            // lock another session holds is waited for at most
            // lock_timeout_secs (1222, a conflict), never until the
            // statement timeout (which would stop every table).
            run_batch(&mut connection, &sql::session_setup(self.settings.lock_timeout)).await?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Writes every batch, in order, in one transaction: every row of
    /// every batch, or none. A row at fault is numbered across the batches.
    async fn write_async(&mut self, batches: &[WriteBatch]) -> Result<(), PluginError> {
        // Every value of every batch is checked before anything is sent.
        let zone = self.settings.zone;
        let binds = WriteBatch::with_first_rows(batches)
            .map(|(first_row, batch)| bind_rows(batch, zone).map_err(|e| e.offset_row(first_row)))
            .collect::<Result<Vec<_>, _>>()?;
        let connection = self.connection().await?;
        run_batch(connection, "BEGIN TRANSACTION").await?;
        let written = async {
            for ((first_row, batch), binds) in WriteBatch::with_first_rows(batches).zip(&binds) {
                actions::apply(connection, batch, binds).await.map_err(|e| e.offset_row(first_row))?;
            }
            run_batch(connection, "COMMIT TRANSACTION").await
        }
        .await;
        if written.is_err() && run_batch(connection, "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION").await.is_err() {
            // XACT_ABORT has rolled back already; if even the check fails, the
            // session is in doubt: drop it, so that the next BEGIN is not
            // nested in a transaction that never ends.
            self.connection = None;
        }
        written
    }

    async fn describe_async(&mut self, table: &str) -> Result<Option<TableDescription>, PluginError> {
        let connection = self.connection().await?;
        let mut query = Query::new(
            "SELECT CAST(c.COLUMN_NAME AS nvarchar(128)),
                    CAST(CASE WHEN c.CHARACTER_MAXIMUM_LENGTH = -1 THEN c.DATA_TYPE + '(max)'
                              WHEN c.CHARACTER_MAXIMUM_LENGTH IS NOT NULL
                                   THEN c.DATA_TYPE + '(' + CAST(c.CHARACTER_MAXIMUM_LENGTH AS varchar(11)) + ')'
                              WHEN c.DATA_TYPE IN ('decimal', 'numeric')
                                   THEN c.DATA_TYPE + '(' + CAST(c.NUMERIC_PRECISION AS varchar(3)) + ','
                                        + CAST(c.NUMERIC_SCALE AS varchar(3)) + ')'
                              ELSE c.DATA_TYPE END AS nvarchar(200)),
                    CAST(c.IS_NULLABLE AS nvarchar(3)),
                    CAST(CASE WHEN c.COLUMN_DEFAULT IS NOT NULL
                                OR COLUMNPROPERTY(OBJECT_ID(QUOTENAME(c.TABLE_SCHEMA) + '.' + QUOTENAME(c.TABLE_NAME)), c.COLUMN_NAME, 'IsIdentity') = 1
                                OR COLUMNPROPERTY(OBJECT_ID(QUOTENAME(c.TABLE_SCHEMA) + '.' + QUOTENAME(c.TABLE_NAME)), c.COLUMN_NAME, 'IsComputed') = 1
                              THEN N'YES' ELSE N'NO' END AS nvarchar(3)),
                    CAST(c.TABLE_NAME AS nvarchar(128))
             FROM INFORMATION_SCHEMA.COLUMNS AS c
             WHERE c.TABLE_NAME = @P1 AND c.TABLE_SCHEMA = SCHEMA_NAME()
             ORDER BY c.ORDINAL_POSITION",
        );
        query.bind(table.to_string());
        let rows = text_rows(query.query(connection).await.map_err(classify)?).await?;
        let Some(name) = rows.first().and_then(|r| r[4].clone()) else { return Ok(None) };
        let columns = rows
            .iter()
            .map(|r| ColumnDescription {
                name: r[0].clone().unwrap_or_default().into(),
                data_type: r[1].clone().unwrap_or_default().into(),
                nullable: r[2].as_deref() == Some("YES"),
                has_default: r[3].as_deref() == Some("YES"),
            })
            .collect();

        let mut query = Query::new(
            "SELECT CAST(i.name AS nvarchar(128)), CAST(i.is_primary_key AS nvarchar(1)), CAST(col.name AS nvarchar(128))
             FROM sys.indexes AS i
             JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
             JOIN sys.columns AS col ON col.object_id = ic.object_id AND col.column_id = ic.column_id
             WHERE i.object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + '.' + QUOTENAME(@P1))
               AND i.is_unique = 1 AND ic.is_included_column = 0 AND i.has_filter = 0
             ORDER BY i.name, ic.key_ordinal",
        );
        query.bind(name.clone());
        let mut keys = KeyColumns::default();
        for row in text_rows(query.query(connection).await.map_err(classify)?).await? {
            let (index, column) = (row[0].clone().unwrap_or_default(), row[2].clone().unwrap_or_default());
            keys.push(&index, row[1].as_deref() == Some("1"), &column);
        }
        let (primary_key, unique_keys) = keys.into_parts();
        Ok(Some(TableDescription { name: name.into(), columns, primary_key, unique_keys }))
    }

    /// Runs `call` on the runtime; a connection broken by its error is
    /// dropped, so that the next call connects afresh.
    fn block_on<T>(&mut self, call: impl AsyncFnOnce(&mut Self) -> Result<T, PluginError>) -> Result<T, PluginError> {
        let runtime = self.runtime.handle().clone();
        let result = runtime.block_on(call(self));
        if let Err(e) = &result
            && breaks_connection(e)
        {
            self.connection = None;
        }
        result
    }
}

/// Opens a connection: through the SQL Browser for a named instance.
async fn connect(settings: &Settings) -> Result<Connection, PluginError> {
    let attempt = async {
        let tcp = TcpStream::connect_named(&settings.config).await?;
        tcp.set_nodelay(true)?;
        Client::connect(settings.config.clone(), tcp.compat_write()).await
    };
    match tokio::time::timeout(settings.connect_timeout, attempt).await {
        Ok(connected) => connected.map_err(classify),
        Err(_) => Err(PluginError::retryable(
            ErrorKind::TIMEOUT,
            format!("no answer from SQL Server within {}s", settings.connect_timeout.as_secs()),
        )),
    }
}

async fn run_batch(connection: &mut Connection, sql: &str) -> Result<(), PluginError> {
    connection.simple_query(sql).await.map_err(classify)?.into_results().await.map_err(classify)?;
    Ok(())
}

/// The first column of the first row of a query, as text.
async fn single_text(mut connection: Connection, sql: &str) -> Result<String, PluginError> {
    let stream = connection.simple_query(sql).await.map_err(classify)?;
    let rows = text_rows(stream).await?;
    let _ = connection.close().await;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()).unwrap_or_default())
}

/// Every row of a result whose columns are all nvarchar.
async fn text_rows(stream: tiberius::QueryStream<'_>) -> Result<Vec<Vec<Option<String>>>, PluginError> {
    let rows = stream.into_first_result().await.map_err(classify)?;
    rows.into_iter()
        .map(|row| {
            (0..row.len()).map(|i| row.try_get::<&str, _>(i).map(|v| v.map(str::to_string)).map_err(classify)).collect()
        })
        .collect()
}

/// Every row's values, bound; a value SQL Server cannot take fails its row.
fn bind_rows(batch: &WriteBatch, zone: HisZone) -> Result<Vec<Vec<Bind<'_>>>, PluginError> {
    batch
        .rows()
        .enumerate()
        .map(|(row, values)| values.iter().map(|v| bind(v, zone).map_err(|e| e.with_row(row))).collect())
        .collect()
}

impl Writer for SqlServerWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch in one transaction: all commit, or none.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        if batches.is_empty() {
            return Ok(());
        }
        // A hung server or a dead link must not stall the worker: past the
        // limit the write is abandoned, the connection dropped (the server
        // rolls the transaction back) and the batches retried later.
        let limit = self.settings.statement_timeout.min(deadline.budget());
        let tables = batches.iter().map(WriteBatch::table).collect::<Vec<_>>().join(", ");
        self.block_on(async |this| {
            tokio::time::timeout(limit, this.write_async(batches))
                .await
                .unwrap_or_else(|_| Err(PluginError::write_timed_out(&tables, limit)))
        })?;
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
        self.block_on(async |this| run_batch(this.connection().await?, "SELECT 1").await)
    }

    fn describe_table(&mut self, table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        self.block_on(async |this| this.describe_async(table).await)
    }

    fn actions(&self) -> Actions {
        Actions::ALL_1_1
    }

    fn close(&mut self) -> Result<(), PluginError> {
        if let Some(connection) = self.connection.take() {
            let _ = self.runtime.block_on(connection.close());
        }
        Ok(())
    }
}
