//! Row locks held by a database session of the test's own, as an HIS
//! user's unfinished edit holds them: for MariaDB and PostgreSQL alike.

use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::runtime::Handle;

/// Locks held by a session of their own, until [`Locks::release`] or the
/// value is dropped. Borrows its database's runtime, so that it is released
/// before the database is dropped (dropping it would wait for the locks).
pub struct Locks<'a, C: Connection> {
    connection: Option<C>,
    runtime: &'a Handle,
}

impl<'a, C> Locks<'a, C>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    /// Opens a session with `options`, begins a transaction and runs `sql`
    /// in it (say `SELECT … FOR UPDATE`). Plain reads are not blocked.
    pub fn take(runtime: &'a Handle, options: &C::Options, sql: &str) -> Self {
        let connection = runtime.block_on(async {
            let mut connection = C::connect_with(options).await?;
            connection.execute("BEGIN").await?;
            connection.execute(sqlx::raw_sql(AssertSqlSafe(sql.to_string()))).await?;
            Ok::<_, sqlx::Error>(connection)
        });
        Self { connection: Some(connection.unwrap_or_else(|e| panic!("{sql}: {e}"))), runtime }
    }

    /// Rolls the session's transaction back, which releases its locks, and
    /// closes it.
    pub fn release(mut self) {
        self.end().expect("roll the locking session back");
    }

    fn end(&mut self) -> Result<(), sqlx::Error> {
        let Some(mut connection) = self.connection.take() else { return Ok(()) };
        self.runtime.block_on(async {
            connection.execute("ROLLBACK").await?;
            connection.close().await
        })
    }
}

impl<C: Connection> Drop for Locks<'_, C> {
    fn drop(&mut self) {
        // Closing the connection releases the locks too, if the rollback failed.
        if let Some(connection) = self.connection.take() {
            let _ = self.runtime.block_on(connection.close());
        }
    }
}
