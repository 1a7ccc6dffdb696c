//! Scenario 2, drain: rows/s when 100,000 journaled events drain into
//! MariaDB, into PostgreSQL, and into the embedded SQLite writer, each
//! beside the ceiling of writing the same rows directly with the same
//! driver (sqlx for MariaDB and PostgreSQL, rusqlite for SQLite) as
//! multi-row upserts, in transactions of the worker's batch size (500).
//!
//! One backlog is filled ([`backlog::fill`]) and copied for each writer,
//! so both drain the very same journal.

use serde_json::json;
use std::time::{Duration, Instant};

use buktor_tests::{Setup, mysql, postgres, query};
use sqlx::{
    Connection, MySql, PgConnection, Postgres, QueryBuilder,
    postgres::{PgConnectOptions, PgSslMode},
};

use crate::{
    REPEATS, backlog,
    report::{Report, memory_mib, thousands},
};

/// The worker's `sync.batch_size` default, and the ceilings' transaction size.
const BATCH: usize = 500;

/// Runs the scenario with a backlog of `events`.
pub fn run(report: &mut Report, events: usize) {
    println!("\n## Drain ({events} payment events)");
    let (filled, fill_rate) = backlog::fill(events);
    let bytes = backlog::journal_bytes(&filled);
    println!(
        "  filled the journal at {}/s (64 connections); {} bytes per event",
        thousands(fill_rate),
        bytes / events as u64
    );
    into_mariadb(report, &filled, events);
    into_postgres(report, &filled, events);
    let plain = into_sqlite(report, &filled, events);
    into_sqlite_transformed(report, &filled, events, plain);
}

fn rate(events: usize, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64()
}

fn into_mariadb(report: &mut Report, filled: &Setup, events: usize) {
    let Some(server) = mysql::server("drain into MariaDB") else {
        report.figure("drain into MariaDB", "not run: HIS_TEST_MYSQL_URL is not set".into(), None);
        return;
    };
    let db = server.database();
    db.execute(
        "CREATE TABLE HIS_payments (HIS_payment_id BIGINT PRIMARY KEY, HIS_amount DECIMAL(12,2),
                                    HIS_payment_status VARCHAR(32), HIS_paid_at DATETIME)",
    );
    // The ceiling: the same rows straight through sqlx, bound as the
    // plugin binds them (a wall-clock DATETIME).
    let paid_at = chrono::NaiveDate::from_ymd_opt(2025, 3, 2).unwrap().and_hms_opt(11, 0, 0).unwrap();
    let ceiling = |batch: usize, written: &str| {
        db.execute("TRUNCATE TABLE HIS_payments");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let elapsed = runtime.block_on(async {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with(db.connect_options())
                .await
                .expect("connect");
            // One connection for the whole run, as the plugin keeps its own
            // while a backlog drains.
            let mut connection = pool.acquire().await.unwrap();
            let started = Instant::now();
            for chunk in (0..events).collect::<Vec<_>>().chunks(batch) {
                let mut insert = QueryBuilder::<MySql>::new(
                    "INSERT INTO `HIS_payments` (`HIS_payment_id`, `HIS_amount`, `HIS_payment_status`, `HIS_paid_at`) ",
                );
                insert.push_values(chunk, |mut row, &n| {
                    row.push_bind(n as i64)
                        .push_bind(format!("{}.{:02}", n % 100_000, n % 100))
                        .push_bind("paid")
                        .push_bind(paid_at);
                });
                insert.push(
                    " ON DUPLICATE KEY UPDATE `HIS_amount` = VALUES(`HIS_amount`), \
                     `HIS_payment_status` = VALUES(`HIS_payment_status`), `HIS_paid_at` = VALUES(`HIS_paid_at`)",
                );
                let mut transaction = sqlx::Connection::begin(&mut *connection).await.unwrap();
                insert.build().execute(&mut *transaction).await.unwrap();
                transaction.commit().await.unwrap();
            }
            started.elapsed()
        });
        assert_eq!(checksum(&db, events), written, "the ceiling writes the rows the middleware wrote");
        elapsed
    };
    // The middleware and the ceiling take turns, each on an empty table.
    let (mut drains, mut ceilings) = (Vec::new(), Vec::new());
    let mut written = String::new();
    for _ in 0..REPEATS {
        db.execute("TRUNCATE TABLE HIS_payments");
        let mut setup = Setup::new();
        setup.config["database"] = db.config();
        setup.config["mapping"] = backlog::payment_mapping();
        backlog::copy_journal(filled, &setup);
        let (middleware, took) = backlog::drain(&setup, |_| {});
        drop(middleware);
        written = checksum(&db, events);
        drains.push(took);
        ceilings.push(ceiling(BATCH, &written));
    }
    let ceiling_large = ceiling(10 * BATCH, &written);
    let (took, ceiling_batch) = (median(drains), median(ceilings));
    println!(
        "  MariaDB (median of {REPEATS}): middleware {}/s; raw sqlx {}/s ({BATCH} rows/tx), {}/s ({} rows/tx)",
        thousands(rate(events, took)),
        thousands(rate(events, ceiling_batch)),
        thousands(rate(events, ceiling_large)),
        10 * BATCH
    );
    report.versus("drain into MariaDB, rows/s", rate(events, took), rate(events, ceiling_batch), "/s", Some(0.5));
    report.figure(
        "drain into MariaDB: for reference, raw sqlx at 5,000 rows/tx",
        format!("{} /s", thousands(rate(events, ceiling_large))),
        None,
    );
}

/// The middle of an odd number of durations.
fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// The table's row count and content checksum, after checking the count.
fn checksum(db: &mysql::Database, events: usize) -> String {
    assert_eq!(db.count("SELECT COUNT(*) FROM HIS_payments"), events as i64, "every event became a row");
    let rows = db.rows(
        "SELECT CAST(SUM(HIS_payment_id) AS CHAR), CAST(SUM(HIS_amount) AS CHAR),
                CAST(SUM(HIS_payment_status = 'paid') AS CHAR), CAST(MIN(HIS_paid_at) AS CHAR) FROM HIS_payments",
    );
    format!("{:?}", rows[0])
}

fn into_postgres(report: &mut Report, filled: &Setup, events: usize) {
    let Some(server) = postgres::server("drain into PostgreSQL") else {
        report.figure("drain into PostgreSQL", "not run: HIS_TEST_POSTGRES_URL is not set".into(), None);
        return;
    };
    let db = server.database();
    db.execute(
        r#"CREATE TABLE "HIS_payments" ("HIS_payment_id" BIGINT PRIMARY KEY, "HIS_amount" NUMERIC(12,2),
                                        "HIS_payment_status" VARCHAR(32), "HIS_paid_at" TIMESTAMP)"#,
    );
    // Over TLS, as a hospital's HIS server is reached (the plugin's default,
    // `prefer`, takes TLS when the server offers it, as this one does), and
    // over plain TCP; the ceiling each time over the same transport.
    for (transport, sslmode, ssl_mode) in
        [("TLS", "require", PgSslMode::Require), ("plain TCP", "disable", PgSslMode::Disable)]
    {
        let ceiling = |batch: usize, written: &str| {
            db.execute(r#"TRUNCATE TABLE "HIS_payments""#);
            let took = raw_sqlx(db.connect_options().ssl_mode(ssl_mode), events, batch);
            assert_eq!(pg_checksum(&db, events), written, "the ceiling writes the rows the middleware wrote");
            took
        };
        // The middleware and the ceiling take turns, each on an empty table.
        let (mut drains, mut ceilings) = (Vec::new(), Vec::new());
        let mut written = String::new();
        for _ in 0..REPEATS {
            db.execute(r#"TRUNCATE TABLE "HIS_payments""#);
            let mut setup = Setup::new();
            setup.config["database"] = db.config();
            setup.config["database"]["sslmode"] = sslmode.into();
            setup.config["mapping"] = backlog::payment_mapping();
            backlog::copy_journal(filled, &setup);
            let (middleware, took) = backlog::drain(&setup, |_| {});
            drop(middleware);
            written = pg_checksum(&db, events);
            drains.push(took);
            ceilings.push(ceiling(BATCH, &written));
        }
        let ceiling_large = ceiling(10 * BATCH, &written);
        let (took, ceiling_batch) = (median(drains), median(ceilings));
        println!(
            "  PostgreSQL over {transport} (median of {REPEATS}): middleware {}/s; raw sqlx {}/s ({BATCH} rows/tx), \
             {}/s ({} rows/tx)",
            thousands(rate(events, took)),
            thousands(rate(events, ceiling_batch)),
            thousands(rate(events, ceiling_large)),
            10 * BATCH
        );
        report.versus(
            &format!("drain into PostgreSQL over {transport}, rows/s"),
            rate(events, took),
            rate(events, ceiling_batch),
            "/s",
            Some(0.6),
        );
        report.figure(
            &format!("drain into PostgreSQL over {transport}: for reference, raw sqlx at 5,000 rows/tx"),
            format!("{} /s", thousands(rate(events, ceiling_large))),
            None,
        );
    }
}

/// The ceiling: `events` payments straight through sqlx on one connection
/// (as the plugin keeps its own while a backlog drains), as multi-row
/// upserts of `batch` rows, one transaction each, bound as the plugin binds
/// them (the decimal as text cast to the column's type, a wall-clock
/// TIMESTAMP). Returns how long the writes took.
fn raw_sqlx(options: PgConnectOptions, events: usize, batch: usize) -> Duration {
    let paid_at = chrono::NaiveDate::from_ymd_opt(2025, 3, 2).unwrap().and_hms_opt(11, 0, 0).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut connection = PgConnection::connect_with(&options).await.expect("connect");
        let started = Instant::now();
        for chunk in (0..events).collect::<Vec<_>>().chunks(batch) {
            let mut insert = QueryBuilder::<Postgres>::new(
                r#"INSERT INTO "HIS_payments" ("HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at") "#,
            );
            insert.push_values(chunk, |mut row, &n| {
                row.push_bind(n as i64)
                    .push_bind(format!("{}.{:02}", n % 100_000, n % 100))
                    .push_unseparated("::numeric(12,2)")
                    .push_bind("paid")
                    .push_bind(paid_at);
            });
            insert.push(r#" ON CONFLICT ("HIS_payment_id") DO UPDATE SET "HIS_amount" = EXCLUDED."HIS_amount", "#);
            insert.push(
                r#""HIS_payment_status" = EXCLUDED."HIS_payment_status", "HIS_paid_at" = EXCLUDED."HIS_paid_at""#,
            );
            let mut transaction = sqlx::Connection::begin(&mut connection).await.unwrap();
            insert.build().execute(&mut *transaction).await.unwrap();
            transaction.commit().await.unwrap();
        }
        started.elapsed()
    })
}

/// [`checksum`] for PostgreSQL.
fn pg_checksum(db: &postgres::Database, events: usize) -> String {
    assert_eq!(db.count(r#"SELECT COUNT(*) FROM "HIS_payments""#), events as i64, "every event became a row");
    let rows = db.rows(
        r#"SELECT SUM("HIS_payment_id")::text, SUM("HIS_amount")::text,
                  COUNT(*) FILTER (WHERE "HIS_payment_status" = 'paid')::text, MIN("HIS_paid_at")::text
           FROM "HIS_payments""#,
    );
    format!("{:?}", rows[0])
}

/// Drains into SQLite with the plain mapping; returns its rows/s.
fn into_sqlite(report: &mut Report, filled: &Setup, events: usize) -> f64 {
    let mut setup = Setup::new();
    setup.config["mapping"] = backlog::payment_mapping();
    backlog::copy_journal(filled, &setup);
    let (middleware, took) = backlog::drain(&setup, |_| {});
    let (_, peak) = memory_mib(middleware.pid());
    drop(middleware);
    let his = setup.his();
    let written = query(&his, "SELECT * FROM HIS_payments ORDER BY HIS_payment_id");
    assert_eq!(written.len(), events, "every event became a row");

    // The ceiling: a file with the schema the plugin made, written by
    // rusqlite as the plugin writes: one IMMEDIATE transaction and one
    // cached multi-row upsert per batch.
    let path = setup.path("ceiling.db");
    let ceiling = rusqlite::Connection::open(&path).expect("create the ceiling's file");
    let schema: Vec<String> = his
        .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .expect("read the plugin's schema");
    ceiling.execute_batch(&schema.join(";\n")).expect("copy the schema");
    let mut ceiling = ceiling;
    let started = Instant::now();
    for chunk in (0..events).collect::<Vec<_>>().chunks(BATCH) {
        let transaction = ceiling.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("begin");
        let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO \"HIS_payments\" (\"HIS_payment_id\", \"HIS_amount\", \"HIS_payment_status\", \"HIS_paid_at\") \
             VALUES {rows} ON CONFLICT (\"HIS_payment_id\") DO UPDATE SET \"HIS_amount\" = excluded.\"HIS_amount\", \
             \"HIS_payment_status\" = excluded.\"HIS_payment_status\", \"HIS_paid_at\" = excluded.\"HIS_paid_at\""
        );
        let amounts: Vec<String> = chunk.iter().map(|n| format!("{}.{:02}", n % 100_000, n % 100)).collect();
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 4);
        let ids: Vec<i64> = chunk.iter().map(|&n| n as i64).collect();
        for (id, amount) in ids.iter().zip(&amounts) {
            params.extend([id as &dyn rusqlite::ToSql, amount, &"paid", &"2025-03-02T11:00:00"]);
        }
        transaction.prepare_cached(&sql).and_then(|mut s| s.execute(params.as_slice())).expect("upsert");
        transaction.commit().expect("commit");
    }
    let ceiling_took = started.elapsed();
    let rewritten = query(&ceiling, "SELECT * FROM HIS_payments ORDER BY HIS_payment_id");
    assert!(rewritten == written, "the ceiling writes the rows the middleware wrote");
    println!(
        "  SQLite: middleware {}/s; raw rusqlite {}/s ({BATCH} rows/tx); peak RSS {peak:.1} MiB",
        thousands(rate(events, took)),
        thousands(rate(events, ceiling_took))
    );
    report.versus("drain into SQLite, rows/s (one run)", rate(events, took), rate(events, ceiling_took), "/s", None);
    report.figure(
        &format!("RSS peak, draining {} events into SQLite", thousands(events as f64)),
        format!("{peak:.1} MiB"),
        None,
    );
    rate(events, took)
}

/// The same journal drained into SQLite through a mapping of the same
/// table whose every non-key column goes through five transforms (text
/// clean-up, a value map, number and date parsing), beside the plain
/// mapping's rate measured just before: what the mapping language costs
/// the worker.
fn into_sqlite_transformed(report: &mut Report, filled: &Setup, events: usize, plain: f64) {
    let mut setup = Setup::new();
    setup.config["mapping"] = backlog::transformed_payment_mapping();
    backlog::copy_journal(filled, &setup);
    let (middleware, took) = backlog::drain(&setup, |_| {});
    drop(middleware);
    let written = query(&setup.his(), "SELECT HIS_payment_status, COUNT(*) FROM HIS_payments GROUP BY 1");
    assert_eq!(written, [vec![json!("PAID"), json!(events)]], "every event became a row, through the map");
    let transformed = rate(events, took);
    println!(
        "  SQLite, 5 transforms per column: middleware {}/s ({:.0}% of the plain mapping's {}/s)",
        thousands(transformed),
        100.0 * transformed / plain,
        thousands(plain)
    );
    report.versus("drain into SQLite, 5 transforms per column, rows/s (vs plain)", transformed, plain, "/s", None);
}
