//! A real MySQL or MariaDB server for tests, from `HIS_TEST_MYSQL_URL`
//! (`mysql://user:password@host:port/database`).
//!
//! Without it, MySQL tests print why they are skipped and pass; with
//! `CI=true` a missing server is a failure, never a silent skip. Each test
//! gets a database of its own (`<database>_<n>`), dropped afterwards, so the
//! user needs rights on `<database>%` (`.ci/run` sets that up).

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{
    Executor, MySqlConnection, MySqlPool, Row,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};

/// The environment variable naming the test server.
pub const URL_VARIABLE: &str = "HIS_TEST_MYSQL_URL";

/// The server named by `HIS_TEST_MYSQL_URL`, or `None` (after printing why)
/// when it is not set outside CI. Panics when CI=true and it is not set.
pub fn server(test: &str) -> Option<Server> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(Server::new(&url)),
        _ if crate::strict() => {
            panic!("CI=true but {URL_VARIABLE} is not set: the MySQL tests must run in CI (.ci/run sets it)")
        }
        _ => {
            crate::skipped(
                test,
                &format!(
                    "{URL_VARIABLE} is not set. To run the MySQL tests: \
                     {URL_VARIABLE}=mysql://user:password@127.0.0.1:3306/buktor_test cargo test --workspace"
                ),
            );
            None
        }
    }
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
    pool: MySqlPool,
    admin: MySqlPool,
    runtime: tokio::runtime::Handle,
}

impl Server {
    fn new(url: &str) -> Self {
        let rest = url.strip_prefix("mysql://").unwrap_or_else(|| panic!("{URL_VARIABLE} must start with mysql://"));
        let (credentials, rest) = rest.split_once('@').unwrap_or(("root", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (address, database) = rest.split_once('/').unwrap_or((rest, "buktor_test"));
        let (host, port) = address.split_once(':').unwrap_or((address, "3306"));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Self {
            host: host.into(),
            port: port.parse().expect("port"),
            user: user.into(),
            password: password.into(),
            database_prefix: database.trim_end_matches('/').into(),
            runtime,
        }
    }

    /// `host:port`, for a proxy in front of it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new().host(&self.host).port(self.port).username(&self.user).password(&self.password)
    }

    /// Creates a fresh, empty database.
    pub fn database(&self) -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{}_{}_{}", self.database_prefix, std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let admin = self.runtime.block_on(async {
            let admin = MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with(self.options())
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the MySQL test server at {}: {e}", self.address()));
            admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`"))).await.unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")))
                .await
                .unwrap();
            admin
        });
        let pool = self
            .runtime
            .block_on(MySqlPoolOptions::new().max_connections(2).connect_with(self.options().database(&name)));
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
    /// The `database` section of his-config.json for this database, in the
    /// seed's words (host, user, password, database) plus the port.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "mysql",
            "host": self.server_host,
            "port": self.server_port,
            "user": self.user,
            "password": self.password,
            "database": self.name,
        })
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

    /// How to connect to this database with sqlx directly.
    pub fn connect_options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new()
            .host(&self.server_host)
            .port(self.server_port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.name)
    }

    /// Runs statements (separated by `;`).
    pub fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of a query, each column as text (NULL as `None`). Cast columns
    /// in the query (`CAST(x AS CHAR)`) when their type is not text or an
    /// integer.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let rows = self
            .runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&self.pool))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v.to_string())))
                            .unwrap_or_else(|e| panic!("{sql}: column {i}: {e} (CAST it AS CHAR)"))
                    })
                    .collect()
            })
            .collect()
    }

    /// Opens a session of its own, begins a transaction and runs `sql` in it
    /// (say `SELECT … FOR UPDATE`): the locks it takes are held, as an HIS
    /// user's unfinished edit holds them, until [`Locks::release`] (a
    /// rollback) or the value is dropped.
    pub fn lock(&self, sql: &str) -> Locks<'_> {
        Locks::take(&self.runtime, &self.connect_options(), sql)
    }

    /// One number from a query such as `SELECT COUNT(*) …`.
    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0][0].as_deref().unwrap_or("0").parse().expect("a number")
    }
}

/// Locks held by a session of their own: see [`Database::lock`].
pub type Locks<'a> = crate::locks::Locks<'a, MySqlConnection>;

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = self.runtime.block_on(async {
            self.pool.close().await;
            self.admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`"))).await
        });
    }
}
