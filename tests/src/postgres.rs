//! A real PostgreSQL server for tests, from `HIS_TEST_POSTGRES_URL`
//! (`postgres://user:password@host:port/prefix`).
//!
//! Without it, PostgreSQL tests print why they are skipped and pass; with
//! `CI=true` a missing server is a failure, never a silent skip. Each test
//! gets a database of its own (`<prefix>_<pid>_<n>`), dropped afterwards
//! (`WITH (FORCE)`, so that a middleware's leftover sessions do not keep
//! it), so the user needs `CREATEDB` (`cargo xtask test` makes such a role:
//! dist/src/services.rs). The administrative session that creates and drops
//! them works in the `postgres` database, which every cluster has.
//!
//! The tables the tests make are named as the repository's his-config.json
//! names them, quoted (`"HIS_appointments"`): the plugin quotes every name
//! it writes, so a name's case is its own, as in the config.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use sqlx::{
    Connection, Executor, PgConnection, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// The environment variable naming the test server.
pub const URL_VARIABLE: &str = "HIS_TEST_POSTGRES_URL";

/// The seed's tables with the column types a real HIS on PostgreSQL would
/// have, named exactly as the repository's his-config.json maps them.
pub const SEED_TABLES: &str = r#"
    CREATE TABLE "HIS_appointments" ("HIS_appointment_id" BIGINT PRIMARY KEY, "HIS_status" VARCHAR(32),
                                     "HIS_created_at" TIMESTAMP(3));
    CREATE TABLE "HIS_schedules" ("HIS_schedule_id" BIGINT PRIMARY KEY, "HIS_new_time" TIMESTAMP,
                                  "HIS_updated_at" TIMESTAMP(3));
    CREATE TABLE "HIS_payments" ("HIS_payment_id" BIGINT PRIMARY KEY, "HIS_amount" NUMERIC(12,2),
                                 "HIS_payment_status" VARCHAR(32), "HIS_paid_at" TIMESTAMP);"#;

/// The audited appointments table (tests/src/audit.rs's `MYSQL`, for
/// PostgreSQL): every inserted or updated state of a row is appended to
/// `applied (seq, k, v)` by a trigger; [`Database::histories`] reads them.
pub const AUDIT: &str = r#"
    CREATE TABLE "HIS_appointments" ("HIS_appointment_id" BIGINT PRIMARY KEY, "HIS_status" VARCHAR(32),
                                     "HIS_created_at" TIMESTAMP(3));
    CREATE TABLE applied (seq BIGSERIAL PRIMARY KEY, k BIGINT, v VARCHAR(32));
    CREATE FUNCTION applied_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO applied (k, v) VALUES (NEW."HIS_appointment_id", NEW."HIS_status"); RETURN NEW; END $$;
    CREATE TRIGGER applied_write AFTER INSERT OR UPDATE ON "HIS_appointments"
        FOR EACH ROW EXECUTE FUNCTION applied_row();"#;

/// The server named by `HIS_TEST_POSTGRES_URL`, or `None` (after printing
/// why) when it is not set outside CI. Panics when CI=true and it is not
/// set. Builds the host and the plugins first (see [`plugin`]).
pub fn server(test: &str) -> Option<Server> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => {
            plugin();
            Some(Server::new(&url))
        }
        _ if crate::strict() => {
            panic!(
                "CI=true but {URL_VARIABLE} is not set: the PostgreSQL tests must run in CI (cargo xtask test sets it)"
            )
        }
        _ => {
            crate::skipped(
                test,
                &format!(
                    "{URL_VARIABLE} is not set. To run the PostgreSQL tests: \
                     {URL_VARIABLE}=postgres://user:password@127.0.0.1:5432/buktor_test cargo test --workspace"
                ),
            );
            None
        }
    }
}

/// The postgres plugin's library, which [`crate::artifacts`] builds with
/// the host and the other plugins, beside the binary, where the binary
/// loads it from.
pub fn plugin() -> PathBuf {
    crate::artifacts().plugin("postgres")
}

/// A test server.
pub struct Server {
    host: String,
    port: u16,
    user: String,
    password: String,
    database_prefix: String,
    runtime: tokio::runtime::Runtime,
}

/// A fresh database, dropped with this value.
pub struct Database {
    /// Its name.
    pub name: String,
    server_host: String,
    server_port: u16,
    user: String,
    password: String,
    pool: PgPool,
    admin: PgPool,
    runtime: tokio::runtime::Handle,
}

/// `name` as a PostgreSQL identifier: double-quoted, inner quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Server {
    fn new(url: &str) -> Self {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("{URL_VARIABLE} must start with postgres://"));
        let (credentials, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (address, database) = rest.split_once('/').unwrap_or((rest, "buktor_test"));
        let (host, port) = address.split_once(':').unwrap_or((address, "5432"));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prefix = database.split('?').next().unwrap_or_default().trim_end_matches('/');
        Self {
            host: host.into(),
            port: port.parse().expect("port"),
            user: user.into(),
            password: password.into(),
            database_prefix: if prefix.is_empty() { "buktor_test".into() } else { prefix.into() },
            runtime,
        }
    }

    /// `host:port`, for a proxy in front of it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The test user's connection to `database`, its session in UTC (so
    /// that `timestamptz` reads back the same on every machine).
    fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(database)
            .application_name("buktor-tests")
            .options([("TimeZone", "UTC")])
    }

    /// Whether the server refuses the test user with a wrong password: a
    /// `trust` line in pg_hba.conf lets anyone in as anyone, and then no
    /// password is ever checked. `Err` is the server's answer to a wrong
    /// password when it checks it.
    pub fn checks_passwords(&self) -> Result<bool, String> {
        let options = self.options("postgres").password("not-the-password");
        match self.runtime.block_on(PgConnection::connect_with(&options)) {
            Ok(connection) => {
                let _ = self.runtime.block_on(connection.close());
                Ok(false)
            }
            Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("28")) => Ok(true),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Creates a fresh, empty database, owned by the test user.
    pub fn database(&self) -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{}_{}_{}", self.database_prefix, std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let admin = self.runtime.block_on(async {
            let admin =
                PgPoolOptions::new().max_connections(1).connect_with(self.options("postgres")).await.unwrap_or_else(
                    |e| panic!("cannot connect to the PostgreSQL test server at {}: {e}", self.address()),
                );
            let quoted = quote(&name);
            admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))).await.unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted} ENCODING 'UTF8' TEMPLATE template0")))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {quoted} (the test user needs CREATEDB): {e}"));
            admin
        });
        let pool = self.runtime.block_on(PgPoolOptions::new().max_connections(2).connect_with(self.options(&name)));
        Database {
            name,
            server_host: self.host.clone(),
            server_port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            pool: pool.expect("connect to the test database"),
            admin,
            runtime: self.runtime.handle().clone(),
        }
    }
}

impl Database {
    /// The `database` section of his-config.json for this database.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "postgres",
            "host": self.server_host,
            "port": self.server_port,
            "user": self.user,
            "password": self.password,
            "database": self.name,
        })
    }

    /// [`Database::config`] with only the keys the seed documentation's
    /// examples give (`type`, `host`, `user`, `password`, `database`), and
    /// `port` only where the server is not on PostgreSQL's default.
    pub fn seed_keys_config(&self) -> serde_json::Value {
        let mut config = self.config();
        if self.server_port == 5432 {
            config.as_object_mut().expect("an object").remove("port");
        }
        config
    }

    /// [`Database::config`], reaching the server at `address` instead
    /// (`host:port`, such as a [`crate::proxy::Proxy`]'s).
    pub fn config_via(&self, address: &str) -> serde_json::Value {
        let (host, port) = address.split_once(':').expect("host:port");
        let mut config = self.config();
        config["host"] = host.into();
        config["port"] = port.parse::<u16>().expect("a port").into();
        config
    }

    /// How to connect to this database with sqlx directly (in UTC).
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.server_host)
            .port(self.server_port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.name)
            .application_name("buktor-tests")
            .options([("TimeZone", "UTC")])
    }

    /// Runs statements (separated by `;`; `$$` bodies allowed).
    pub fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of a query, every column as PostgreSQL's own text for it (NULL
    /// as `None`): the query goes by the simple protocol, whose results are
    /// text, whatever the column's type (`t`/`f`, `\x0001` for bytea,
    /// `2025-03-03 09:00:00` for timestamps, `+00` after a timestamptz in
    /// this UTC session).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let rows = self
            .runtime
            .block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&self.pool))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get_unchecked::<Option<String>, _>(i)
                            .unwrap_or_else(|e| panic!("{sql}: column {i}: {e}"))
                    })
                    .collect()
            })
            .collect()
    }

    /// One number from a query such as `SELECT COUNT(*) …`.
    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0][0].as_deref().unwrap_or("0").parse().expect("a number")
    }

    /// The histories of [`AUDIT`]'s `applied` table, as
    /// [`crate::audit::mysql`] reads MySQL's.
    pub fn histories(&self) -> crate::audit::Histories {
        let mut histories = crate::audit::Histories::new();
        for row in self.rows("SELECT k, v FROM applied ORDER BY seq") {
            let key: i64 = row[0].as_deref().and_then(|k| k.parse().ok()).expect("an integer key");
            let state = row[1].clone().expect("a state");
            let digits = state.trim_start_matches(|c: char| !c.is_ascii_digit());
            let n = digits.parse().unwrap_or_else(|_| panic!("row {key}: state {state:?} does not end in its number"));
            histories.entry(key).or_default().push(n);
        }
        histories
    }

    /// Opens a session of its own, begins a transaction and runs `sql` in it
    /// (say `SELECT … FOR UPDATE`): the locks it takes are held, as an HIS
    /// user's unfinished edit holds them, until [`Locks::release`] (a
    /// rollback) or the value is dropped. Plain reads are not blocked by it.
    pub fn lock(&self, sql: &str) -> Locks<'_> {
        Locks::take(&self.runtime, &self.connect_options(), sql)
    }
}

/// Locks held by a session of their own: see [`Database::lock`].
pub type Locks<'a> = crate::locks::Locks<'a, PgConnection>;

impl Drop for Database {
    fn drop(&mut self) {
        let name = quote(&self.name);
        let _ = self.runtime.block_on(async {
            self.pool.close().await;
            self.admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await
        });
    }
}
