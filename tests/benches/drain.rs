//! Drain benchmark: how fast a backlog of journaled events reaches MariaDB,
//! beside the ceiling of writing the same rows directly with sqlx.
//!
//! `cargo bench-drain` (an alias for `cargo bench -p buktor-tests --bench drain`),
//! with `HIS_TEST_MYSQL_URL` naming the server. Optional: `BENCH_EVENTS`
//! (default 100000).
//!
//! 1. Fill: the middleware runs with its HIS unreachable, and receives the
//!    events over HTTP, so they wait in the journal.
//! 2. Drain: it restarts with the HIS reachable; the time from its start
//!    until no event is pending gives rows/s.
//! 3. Ceiling: the same rows, written by sqlx directly as multi-row
//!    `INSERT … ON DUPLICATE KEY UPDATE`, in transactions of the worker's
//!    batch size (500), and of 5,000 rows for reference.

use std::time::{Duration, Instant};

use buktor_tests::{Setup, mysql, query};
use serde_json::json;
use sqlx::{MySql, QueryBuilder};

const TABLE: &str = "CREATE TABLE HIS_payments (HIS_payment_id BIGINT PRIMARY KEY, HIS_amount DECIMAL(12,2),
                                                 HIS_payment_status VARCHAR(32), HIS_paid_at DATETIME)";

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let Some(server) = mysql::server("drain benchmark") else {
        eprintln!("the drain benchmark needs a MySQL/MariaDB server");
        std::process::exit(2);
    };
    let db = server.database();
    db.execute(TABLE);
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup.config["mapping"] = json!({"payment": {"table": "HIS_payments", "fields": {
        "payment_id": "HIS_payment_id", "amount": "HIS_amount", "status": "HIS_payment_status", "paid_at": "HIS_paid_at"}}});

    // 1. Fill the journal with the HIS unreachable (nothing listens on port 1).
    let port = setup.config["database"]["port"].clone();
    setup.config["database"]["port"] = json!(1);
    let mut middleware = setup.start();
    let started = Instant::now();
    let senders = 16;
    middleware.post_concurrently(senders, events, payload);
    let fill = started.elapsed();
    middleware.terminate();
    let pending = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'pending'");
    assert_eq!(pending, [vec![json!(events)]], "the backlog is in the journal");

    // 2. Drain it.
    setup.config["database"]["port"] = port;
    let started = Instant::now();
    let middleware = setup.start();
    // Poll cheaply (an indexed EXISTS, not a COUNT over the backlog), so
    // that watching does not slow what is watched.
    let journal = setup.journal();
    let deadline = Instant::now() + Duration::from_secs(600);
    while query(&journal, "SELECT EXISTS (SELECT 1 FROM events WHERE status = 'pending')") != [vec![json!(0)]] {
        assert!(Instant::now() < deadline, "the backlog did not drain within 10 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    let drain = started.elapsed();
    drop(middleware);
    assert_eq!(db.count("SELECT COUNT(*) FROM HIS_payments"), events as i64);

    // 3. The ceiling: the same rows straight through sqlx.
    // Bound as the plugin binds it: a wall-clock datetime.
    let paid_at = chrono::NaiveDate::from_ymd_opt(2025, 3, 2).unwrap().and_hms_opt(11, 0, 0).unwrap();
    let ceiling = |batch: usize| {
        db.execute("TRUNCATE TABLE HIS_payments");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let elapsed = runtime.block_on(async {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with(db.connect_options())
                .await
                .expect("connect");
            let started = Instant::now();
            for chunk in (0..events).collect::<Vec<_>>().chunks(batch) {
                let mut transaction = pool.begin().await.unwrap();
                let mut insert = QueryBuilder::<MySql>::new(
                    "INSERT INTO `HIS_payments` (`HIS_payment_id`, `HIS_amount`, `HIS_payment_status`, `HIS_paid_at`) ",
                );
                insert.push_values(chunk, |mut row, &id| {
                    row.push_bind(id as i64)
                        .push_bind(format!("{}.{:02}", id % 100_000, id % 100))
                        .push_bind("paid")
                        .push_bind(paid_at);
                });
                insert.push(
                    " ON DUPLICATE KEY UPDATE `HIS_amount` = VALUES(`HIS_amount`), \
                     `HIS_payment_status` = VALUES(`HIS_payment_status`), `HIS_paid_at` = VALUES(`HIS_paid_at`)",
                );
                insert.build().execute(&mut *transaction).await.unwrap();
                transaction.commit().await.unwrap();
            }
            started.elapsed()
        });
        assert_eq!(db.count("SELECT COUNT(*) FROM HIS_payments"), events as i64);
        elapsed
    };
    let ceiling_500 = ceiling(500);
    let ceiling_5000 = ceiling(5000);

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("events: {events}, MariaDB table HIS_payments (BIGINT key, DECIMAL, VARCHAR, DATETIME)");
    println!("intake (fill, {senders} senders, new connection per request): {:>9.0} events/s", rate(fill));
    println!("drain through the middleware (batch 500):         {:>9.0} rows/s", rate(drain));
    println!("ceiling: raw sqlx upsert, 500 rows/transaction:    {:>9.0} rows/s", rate(ceiling_500));
    println!("reference: raw sqlx upsert, 5000 rows/transaction: {:>9.0} rows/s", rate(ceiling_5000));
    println!("drain / ceiling: {:.0}%", 100.0 * rate(drain) / rate(ceiling_500));
}

/// The payment event number `id`.
fn payload(id: usize) -> String {
    json!({"event_type": "payment", "payment_id": id, "amount": format!("{}.{:02}", id % 100_000, id % 100),
           "status": "paid", "paid_at": "2025-03-02T11:00:00"})
    .to_string()
}
