//! The PostgreSQL writer: its own tokio runtime and connection pool.
//!
//! The host calls a writer from one blocking thread; sqlx is async. So the
//! writer owns a small runtime and blocks on it in each call. The pool
//! replaces a lost connection on the next call, without a restart.
//!
//! Each write, of one batch or of several ([`Writer::write_all`]), is one
//! transaction, begun with the call's deadline as its statement timeout
//! ([`sql::begin`]). Before its first write to a table, the writer reads
//! the table's column types from the catalog (and again after an error of
//! class 42, in case the table changed): text is cast to its column's type
//! (see [`crate::values`]).
//!
//! Between writes that come quickly (a backlog draining), the writer keeps
//! its connection instead of returning it to the pool, as the mysql plugin
//! does: a checkout costs a ping. A connection idle for `HELD_IDLE_LIMIT`
//! goes back, so that the pool pings it before it is used again.

use std::{
    collections::HashMap,
    future::Future,
    time::{Duration, Instant},
};

use his_plugin_api::{
    Actions, ColumnDescription, Deadline, ErrorKind, IfMissing, KeyColumns, Logger, PluginError, TableDescription,
    Value, WriteBatch, Writer,
};
use sqlx::{
    Arguments, AssertSqlSafe, Connection, Executor, PgConnection, PgPool, Postgres, Row,
    pool::PoolConnection,
    postgres::{PgArguments, PgPoolOptions},
};

use crate::{
    errors::{self, classify, plain},
    plan::{self, Columns, Sql, Step},
    settings::Settings,
    sql,
    values::{Bind, ColumnType},
};

/// How long a kept connection may sit idle and still be used without the
/// pool's ping.
const HELD_IDLE_LIMIT: Duration = Duration::from_secs(10);

/// A table's columns: name, `format_type`, nullable, has a default (or is
/// an identity or generated column), and `typcategory`. Parameters: the
/// schema and the table, matched exactly (names are quoted in every
/// statement, so only the exact name is the table written to).
const COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
        a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', t.typcategory::text
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f', 'm')
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum";

/// The primary key and the unique indexes an `ON CONFLICT` can use (not
/// partial, not on expressions), one row per (index, column), in key order.
const KEYS: &str = "SELECT i.indisprimary, ic.relname::text, a.attname::text
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
      AND k.ord <= i.indnkeyatts
    ORDER BY i.indisprimary DESC, ic.relname, k.ord";

/// Writes batches into one PostgreSQL database.
pub struct PostgresWriter {
    runtime: tokio::runtime::Runtime,
    pool: PgPool,
    settings: Settings,
    log: Logger,
    /// The connection of the last write, while writes come quickly.
    held: Option<Held>,
    /// Column types of the tables written to, by table.
    types: HashMap<String, Columns>,
}

/// A connection kept after a write that succeeded.
struct Held {
    connection: PoolConnection<Postgres>,
    last_used: Instant,
}

impl PostgresWriter {
    /// Connects once to check the address, the login, the session settings
    /// and the schema. A refused login, an unknown database or schema is
    /// permanent (the host stops with the message); an unreachable server
    /// is retryable (the host waits for it).
    pub fn open(settings: Settings, log: Logger, deadline: Deadline) -> Result<Self, PluginError> {
        use_ring_for_tls();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("his-postgres")
            .enable_all()
            .build()
            .map_err(|e| {
                PluginError::permanent(ErrorKind::OTHER, format!("cannot start the postgres plugin's runtime: {e}"))
            })?;
        let session = sql::session_setup(settings.statement_timeout, settings.lock_timeout, settings.zone);
        let pool = {
            let _context = runtime.enter();
            let session = session.clone();
            PgPoolOptions::new()
                .max_connections(settings.pool_size)
                .acquire_timeout(settings.connect_timeout)
                .after_connect(move |connection, _| {
                    let session = session.clone();
                    Box::pin(async move {
                        connection.execute(AssertSqlSafe(session)).await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(settings.connect.clone())
        };
        let place = format!("PostgreSQL at {}", settings.display);
        let while_connecting = |e: PluginError| {
            e.while_connecting(
                &place,
                "check database.user and database.password, and the server's pg_hba.conf",
                "check the database settings",
            )
        };
        // One direct attempt, not the pool's retry loop: an unreachable
        // server is reported at once, and the host retries with its backoff.
        let limit = settings.connect_timeout.min(deadline.budget());
        let (version, schema_exists) = runtime
            .block_on(bounded(limit, "connecting to PostgreSQL", async {
                let mut connection = PgConnection::connect_with(&settings.connect).await.map_err(plain)?;
                // A time zone the server does not know fails here (22023).
                (&mut connection).execute(AssertSqlSafe(session.clone())).await.map_err(|e| match classify(e) {
                    (e, Some(server)) if server.code.starts_with("22") => {
                        PluginError::setting("timezone", format!("the server refused it: {}", e.message))
                    }
                    (e, _) => e,
                })?;
                let row =
                    sqlx::query("SELECT version(), EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)")
                        .bind(&settings.schema)
                        .fetch_one(&mut connection)
                        .await
                        .map_err(plain)?;
                let _ = connection.close().await;
                Ok((row.try_get::<String, _>(0).map_err(plain)?, row.try_get::<bool, _>(1).map_err(plain)?))
            }))
            .map_err(while_connecting)?;
        if !schema_exists {
            return Err(PluginError::setting(
                "schema",
                format!("the database has no schema {:?} ({place})", settings.schema),
            ));
        }
        let version = version.split(" on ").next().unwrap_or(&version).to_string();
        log.info(format_args!(
            "connected to {version} as {} (schema {}, time zone {})",
            settings.display, settings.schema, settings.zone
        ));
        Ok(Self { runtime, pool, settings, log, held: None, types: HashMap::new() })
    }

    /// Gives the kept connection back to the pool (inside the runtime: the
    /// pool takes it back on a task).
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            let _context = self.runtime.enter();
            drop(held);
        }
    }

    /// Writes every batch, in order, in one transaction on `connection`,
    /// whose statements may take `limit`. A row at fault is numbered across
    /// the batches. On error the caller drops the connection (the
    /// transaction with it): the pool rolls it back before lending it again.
    async fn write_on(
        &self,
        connection: &mut PgConnection,
        batches: &[WriteBatch],
        types: &mut HashMap<String, Columns>,
        limit: Duration,
    ) -> Result<(), PluginError> {
        for batch in batches {
            let known = types.get(batch.table());
            if known.is_none_or(|columns| batch.columns().iter().any(|c| !columns.contains_key(c.as_str()))) {
                let columns = column_types(connection, &self.settings.schema, batch.table()).await?;
                if !columns.is_empty() {
                    types.insert(batch.table().to_string(), columns);
                }
            }
        }
        // Every value of every batch is bound before anything is sent.
        let steps: Vec<Vec<Step<'_>>> = WriteBatch::with_first_rows(batches)
            .map(|(first_row, batch)| {
                plan::batch_steps(&self.settings.schema, batch, types.get(batch.table()))
                    .map_err(|e| e.offset_row(first_row))
            })
            .collect::<Result<_, _>>()?;
        // Always in a transaction, even for one statement: a write abandoned
        // at the timeout must roll back with its connection.
        let begin = sql::begin(limit, self.settings.lock_timeout);
        let mut transaction = Connection::begin_with(connection, AssertSqlSafe(begin)).await.map_err(plain)?;
        for ((first_row, batch), steps) in WriteBatch::with_first_rows(batches).zip(steps) {
            run_steps(&mut transaction, batch, steps).await.map_err(|e| e.offset_row(first_row))?;
        }
        transaction.commit().await.map_err(plain)?;
        Ok(())
    }

    async fn describe_async(&self, table: &str) -> Result<Option<TableDescription>, PluginError> {
        let mut connection = self.pool.acquire().await.map_err(plain)?;
        let schema = &self.settings.schema;
        let columns = sqlx::query(COLUMNS)
            .bind(schema)
            .bind(table)
            .fetch_all(&mut *connection)
            .await
            .map_err(plain)?
            .iter()
            .map(|row| {
                Ok(ColumnDescription {
                    name: row.try_get::<String, _>(0)?.into(),
                    data_type: row.try_get::<String, _>(1)?.into(),
                    nullable: row.try_get::<bool, _>(2)?,
                    has_default: row.try_get::<bool, _>(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(plain)?;
        if columns.is_empty() {
            return Ok(None);
        }
        let mut keys = KeyColumns::default();
        for row in sqlx::query(KEYS).bind(schema).bind(table).fetch_all(&mut *connection).await.map_err(plain)? {
            let (primary, index, column): (bool, String, String) =
                (row.try_get(0).map_err(plain)?, row.try_get(1).map_err(plain)?, row.try_get(2).map_err(plain)?);
            keys.push(&index, primary, &column);
        }
        let (primary_key, unique_keys) = keys.into_parts();
        Ok(Some(TableDescription { name: table.into(), columns: columns.into(), primary_key, unique_keys }))
    }
}

/// `future`, or a retryable TIMEOUT once `limit` has passed.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, PluginError>>,
) -> Result<T, PluginError> {
    tokio::time::timeout(limit, future).await.unwrap_or_else(|_| Err(PluginError::deadline_exceeded(what, limit)))
}

/// The column types of `table` in `schema`; empty if there is no such table.
async fn column_types(connection: &mut PgConnection, schema: &str, table: &str) -> Result<Columns, PluginError> {
    let rows = sqlx::query(COLUMNS).bind(schema).bind(table).fetch_all(&mut *connection).await.map_err(plain)?;
    rows.iter()
        .map(|row| {
            let category: String = row.try_get(4)?;
            Ok((
                row.try_get::<String, _>(0)?,
                ColumnType { sql: row.try_get(1)?, category: category.chars().next().unwrap_or('X') },
            ))
        })
        .collect::<Result<Columns, sqlx::Error>>()
        .map_err(plain)
}

/// Runs one batch's steps. Rows are numbered in the batch; the caller
/// offsets them.
async fn run_steps(connection: &mut PgConnection, batch: &WriteBatch, steps: Vec<Step<'_>>) -> Result<(), PluginError> {
    for step in steps {
        match step {
            Step::Run { sql, rows, columns, insert } => {
                // Prepared once per connection and kept (sqlx's statement
                // cache, bounded in `settings`): a backlog's batches share
                // one text, and preparing each again cost a round trip and
                // a parse, half the drain's speed.
                if let Err(e) = query(&sql)?.execute(&mut *connection).await {
                    return Err(fault(e, batch, &rows, &columns, insert));
                }
            }
            Step::Update { probe, insert, if_missing, row } => {
                let found = if probe.text.starts_with("SELECT") {
                    query(&probe)?.fetch_optional(&mut *connection).await.map(|found| found.is_some())
                } else {
                    query(&probe)?.execute(&mut *connection).await.map(|done| done.rows_affected() > 0)
                }
                .map_err(|e| fault(e, batch, &[row], &[], false))?;
                match (found, if_missing) {
                    (false, IfMissing::Error) => {
                        return Err(PluginError::permanent(
                            ErrorKind::DATA,
                            format!("update: no row of {} has this key", batch.table()),
                        )
                        .with_row(row));
                    }
                    (false, IfMissing::Insert) => {
                        if let Err(e) = query(&insert)?.execute(&mut *connection).await {
                            return Err(fault(e, batch, &[row], &[], true));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A statement with its parameters bound.
fn query<'q>(sql: &Sql<'_>) -> Result<sqlx::query::Query<'q, Postgres, PgArguments>, PluginError> {
    let mut arguments = PgArguments::default();
    for bind in &sql.binds {
        match bind {
            Bind::Bool(b) => arguments.add(*b),
            Bind::Int(i) => arguments.add(*i),
            Bind::Float(f) => arguments.add(*f),
            Bind::Text(s) => arguments.add(*s),
            Bind::Instant(t) => arguments.add(*t),
            Bind::WallClock(t) => arguments.add(*t),
            Bind::Date(d) => arguments.add(*d),
            Bind::Bytes(b) => arguments.add(*b),
        }
        .map_err(|e| PluginError::permanent(ErrorKind::OTHER, format!("cannot bind a {}: {e}", bind.sql_type())))?;
    }
    Ok(sqlx::query_with(AssertSqlSafe(sql.text.as_str()), arguments))
}

/// The error of a statement that wrote `rows` of `batch` (with its
/// `columns`), with the row at fault named when it can be told: the one
/// row of a one-row statement, or the row the server's detail names
/// ([`errors::row_of`]). An insert's unique violation is a DATA error: the
/// key has a row.
fn fault(error: sqlx::Error, batch: &WriteBatch, rows: &[usize], columns: &[usize], insert: bool) -> PluginError {
    let (mut e, server) = classify(error);
    let Some(server) = server else { return e };
    if insert && server.code == "23505" {
        e = PluginError::permanent(ErrorKind::DATA, format!("insert: a row with this key exists ({})", e.message))
            .with_code("23505");
    }
    if ![ErrorKind::DATA, ErrorKind::CONSTRAINT, ErrorKind::CONFLICT].contains(&e.kind) {
        return e;
    }
    let row = match rows {
        [row] => Some(*row),
        _ => {
            let width = batch.columns().len();
            let value = |row: usize, name: &str| -> Option<&Value> {
                let c = columns.iter().copied().find(|&c| batch.columns()[c].as_str() == name)?;
                batch.values().get(row * width + c)
            };
            errors::row_of(&server, rows, value)
        }
    };
    match row {
        Some(row) => e.with_row(row),
        None => e,
    }
}

/// The batches' tables, for messages: `HIS_payments, HIS_appointments`.
fn tables(batches: &[WriteBatch]) -> String {
    batches.iter().map(WriteBatch::table).collect::<Vec<_>>().join(", ")
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

impl Writer for PostgresWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        self.write_all(std::slice::from_ref(batch), deadline)
    }

    /// Every batch in one transaction: all commit, or none.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        if batches.is_empty() {
            return Ok(());
        }
        // Past the limit the write is abandoned (its connection with it,
        // which rolls the transaction back) and retried later; the server
        // stops each statement at the same limit (`sql::begin`).
        let started = Instant::now();
        let limit = self.settings.statement_timeout.min(deadline.budget());
        let held = self.held.take();
        let mut types = std::mem::take(&mut self.types);
        let result = self.runtime.block_on(async {
            tokio::time::timeout(limit, async {
                // Inside the runtime: the pool takes a connection back on a
                // task of its own.
                let mut connection = match held {
                    Some(held) if held.last_used.elapsed() < HELD_IDLE_LIMIT => held.connection,
                    stale => {
                        drop(stale);
                        self.pool.acquire().await.map_err(plain)?
                    }
                };
                let left = limit.saturating_sub(started.elapsed());
                self.write_on(&mut connection, batches, &mut types, left).await?;
                Ok(connection)
            })
            .await
            .unwrap_or_else(|_| Err(PluginError::write_timed_out(&tables(batches), limit)))
        });
        // A table or column that changed: read the types again next time.
        if result.as_ref().is_err_and(|e| e.code.starts_with("42")) {
            types.clear();
        }
        self.types = types;
        self.held = Some(Held { connection: result?, last_used: Instant::now() });
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

    fn ping(&mut self, deadline: Deadline) -> Result<(), PluginError> {
        self.release();
        self.runtime.block_on(bounded(deadline.budget(), "the ping", async {
            let mut connection = self.pool.acquire().await.map_err(plain)?;
            connection.ping().await.map_err(plain)
        }))
    }

    fn describe_table(&mut self, table: &str, deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        self.release();
        self.runtime.block_on(bounded(deadline.budget(), &format!("describing {table}"), self.describe_async(table)))
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

impl Drop for PostgresWriter {
    fn drop(&mut self) {
        self.release();
    }
}

/// Against a live server: set `HIS_POSTGRES_TEST` to a `database` section
/// (`{"type": "postgres", "host": "127.0.0.1", "user": "postgres",
/// "database": "scratch"}`) of a throwaway database; skipped without it.
#[cfg(test)]
mod live {
    use abi_stable::{prefix_type::PrefixTypeTrait, std_types::RStr};
    use his_plugin_api::{Action, HostServices, LogLevel, Value};

    use super::*;

    extern "C" fn discard(_: LogLevel, _: RStr<'_>, _: RStr<'_>) {}

    fn open(extra: &str) -> Option<(PostgresWriter, PgPool)> {
        let json = std::env::var("HIS_POSTGRES_TEST").ok()?;
        let json = json.trim_end().strip_suffix('}').expect("a JSON object").to_string() + extra + "}";
        let settings = Settings::parse(&json, "/").unwrap();
        let log = Logger::new(HostServices { max_log_level: LogLevel::ERROR, log: discard }.leak_into_prefix());
        let writer = PostgresWriter::open(settings, log, Deadline::after(Duration::from_secs(10))).unwrap();
        let admin = {
            let _context = writer.runtime.enter();
            PgPoolOptions::new().connect_lazy_with(writer.settings.connect.clone())
        };
        Some((writer, admin))
    }

    fn batch(table: &str, action: Action, columns: &[&str], keys: &[&str], values: Vec<Value>) -> WriteBatch {
        let names = |list: &[&str]| list.iter().map(|n| (*n).into()).collect();
        WriteBatch::new(table, action, names(columns), names(keys), values.into())
    }

    fn run(writer: &PostgresWriter, admin: &PgPool, sql: &str) {
        writer.runtime.block_on(sqlx::raw_sql(AssertSqlSafe(sql)).execute(admin)).unwrap();
    }

    const DEADLINE: Duration = Duration::from_secs(20);

    #[test]
    fn the_seed_payment_and_the_his_wall_clock() {
        let Some((mut writer, admin)) = open(r#", "timezone": "+05:30""#) else { return };
        run(
            &writer,
            &admin,
            "DROP TABLE IF EXISTS \"HIS_payments\"; CREATE TABLE \"HIS_payments\" (\"HIS_payment_id\" bigint \
             PRIMARY KEY, \"HIS_amount\" numeric(12,2), \"HIS_payment_status\" varchar(20), \"HIS_paid_at\" \
             timestamptz, \"HIS_local\" timestamp)",
        );
        let columns = ["HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at", "HIS_local"];
        let values = vec![
            Value::int(789),
            Value::text("1500"),
            Value::text("paid"),
            Value::timestamp("2025-03-02T11:00:00"),
            Value::timestamp("2025-03-02T11:00:00Z"),
        ];
        let upsert = batch("HIS_payments", Action::UPSERT, &columns, &["HIS_payment_id"], values);
        writer.write(&upsert, Deadline::after(DEADLINE)).unwrap();
        let row: (String, String, String) = writer
            .runtime
            .block_on(
                sqlx::query_as(
                    "SELECT \"HIS_amount\"::text, (\"HIS_paid_at\" AT TIME ZONE 'UTC')::text, \"HIS_local\"::text \
                     FROM \"HIS_payments\"",
                )
                .fetch_one(&admin),
            )
            .unwrap();
        // 11:00 HIS time (+05:30) is 05:30 UTC; 11:00 UTC is 16:30 HIS time.
        assert_eq!(row, ("1500.00".into(), "2025-03-02 05:30:00".into(), "2025-03-02 16:30:00".into()));
        // A text that is no number fails its row as DATA.
        let bad = batch(
            "HIS_payments",
            Action::UPSERT,
            &["HIS_payment_id", "HIS_amount"],
            &["HIS_payment_id"],
            vec![Value::int(1), Value::text("12"), Value::int(2), Value::text("a lot")],
        );
        let e = writer.write(&bad, Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::DATA, false, "22P02"), "{e}");
    }

    #[test]
    fn a_locked_row_is_a_retryable_conflict_naming_its_row() {
        let Some((mut writer, admin)) = open(r#", "lock_timeout_secs": 1, "statement_timeout_secs": 5"#) else {
            return;
        };
        run(
            &writer,
            &admin,
            "DROP TABLE IF EXISTS locked; CREATE TABLE locked (id bigint PRIMARY KEY, v text); \
             INSERT INTO locked VALUES (1, 'a'), (2, 'b')",
        );
        let mut other = writer.runtime.block_on(admin.begin()).unwrap();
        writer
            .runtime
            .block_on(sqlx::query("SELECT 1 FROM locked WHERE id = 2 FOR UPDATE").execute(&mut *other))
            .unwrap();
        let update = batch(
            "locked",
            Action::update(IfMissing::Error),
            &["id", "v"],
            &["id"],
            vec![Value::int(1), Value::text("x"), Value::int(2), Value::text("y")],
        );
        let e = writer.write(&update, Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::CONFLICT, true, "55P03"), "{e}");
        assert_eq!(e.row.into_option(), Some(1));
        writer.runtime.block_on(other.rollback()).unwrap();
        writer.write(&update, Deadline::after(DEADLINE)).unwrap();
    }

    #[test]
    fn a_multi_row_statement_names_the_row_the_server_names() {
        let Some((mut writer, admin)) = open("") else { return };
        run(
            &writer,
            &admin,
            "DROP TABLE IF EXISTS uniq; CREATE TABLE uniq (id bigint PRIMARY KEY, ref text UNIQUE, v varchar(3) NOT NULL); \
             INSERT INTO uniq VALUES (9, 'taken', 'x')",
        );
        let rows = |third: Value| {
            batch(
                "uniq",
                Action::UPSERT,
                &["id", "ref", "v"],
                &["id"],
                vec![
                    Value::int(1),
                    Value::text("a"),
                    Value::text("x"),
                    Value::int(2),
                    Value::text("b"),
                    Value::text("x"),
                    Value::int(3),
                    Value::text("taken"),
                    third,
                ],
            )
        };
        let e = writer.write(&rows(Value::text("x")), Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!((e.kind, e.code.as_str(), e.row.into_option()), (ErrorKind::CONSTRAINT, "23505", Some(2)), "{e}");
        let e =
            writer.write_all(&[rows(Value::text("x")), rows(Value::null())], Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!(e.row.into_option(), Some(2), "the first batch's row fails first: {e}");
        let nulls = batch(
            "uniq",
            Action::UPSERT,
            &["id", "v"],
            &["id"],
            vec![Value::int(1), Value::text("x"), Value::int(2), Value::null()],
        );
        let e = writer.write(&nulls, Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!((e.kind, e.code.as_str(), e.row.into_option()), (ErrorKind::CONSTRAINT, "23502", Some(1)), "{e}");
        // Too long, in a multi-row statement: no row to name (the host then tries each event alone).
        let long = batch(
            "uniq",
            Action::UPSERT,
            &["id", "v"],
            &["id"],
            vec![Value::int(1), Value::text("x"), Value::int(2), Value::text("long")],
        );
        let e = writer.write(&long, Deadline::after(DEADLINE)).unwrap_err();
        assert_eq!((e.kind, e.code.as_str(), e.row.into_option()), (ErrorKind::DATA, "22001", None), "{e}");
        // Described with its keys.
        let table = writer.describe_table("uniq", Deadline::after(DEADLINE)).unwrap().unwrap();
        assert_eq!(table.primary_key.len(), 1);
        assert_eq!(table.unique_keys.len(), 1);
        assert_eq!(table.columns[2].data_type.as_str(), "character varying(3)");
        assert!(writer.describe_table("no_such_table", Deadline::after(DEADLINE)).unwrap().is_none());
    }
}
