//! Backlogs: events journaled while the HIS is down, as after an outage,
//! and the wait for one to drain.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use buktor_tests::{Middleware, Setup, query};
use serde_json::{Value, json};

use crate::loadgen::{self, Request};

/// A middleware whose HIS is down: its MySQL writer points where nothing
/// listens (port 1), so every event it takes waits in the journal.
pub fn his_down() -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = json!({
        "type": "mysql", "host": "127.0.0.1", "port": 1, "user": "bench", "password": "bench", "database": "bench"
    });
    setup
}

/// Only the payment event, mapped as in the repository's his-config.json.
pub fn payment_mapping() -> Value {
    json!({"payment": {"table": "HIS_payments", "fields": {
        "payment_id": "HIS_payment_id", "amount": "HIS_amount", "status": "HIS_payment_status", "paid_at": "HIS_paid_at"}}})
}

/// [`payment_mapping`] with five transforms on each non-key column.
pub fn transformed_payment_mapping() -> Value {
    json!({"payment": {"table": "HIS_payments", "key": ["payment_id"], "fields": {"payment_id": "HIS_payment_id"},
        "columns": {
            "HIS_amount": {"from": "amount", "transforms":
                ["trim", {"truncate": 30}, "lower", "upper", {"parse": "decimal"}]},
            "HIS_payment_status": {"from": "status", "transforms":
                ["trim", "lower", {"map": {"paid": "paid", "refunded": "refunded"}, "default": "other"}, {"truncate": 10}, "upper"]},
            "HIS_paid_at": {"from": "paid_at", "transforms":
                ["trim", "upper", {"truncate": 40}, "trim", {"datetime": {"zone": "Europe/Madrid", "to": "local_timestamp"}}]}}}})
}

/// The payment event number `n`: a unique key, a decimal amount as text, a
/// wall-clock time.
pub fn payment(n: usize) -> String {
    json!({"event_type": "payment", "payment_id": n, "amount": format!("{}.{:02}", n % 100_000, n % 100),
           "status": "paid", "paid_at": "2025-03-02T11:00:00"})
    .to_string()
}

/// A stopped middleware's folder whose journal holds `events` pending
/// payments, received over HTTP (64 keep-alive connections) with the HIS
/// down. Returns it with the events/s the filling took.
pub fn fill(events: usize) -> (Setup, f64) {
    let setup = his_down();
    let mut middleware = setup.start();
    let requests: Vec<Request> = (0..events).map(|n| Request::post(&middleware.address, &payment(n), &[])).collect();
    let run = loadgen::closed_loop(&middleware.address, 64, requests);
    middleware.terminate();
    let pending = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'pending'");
    assert_eq!(pending, [vec![json!(events)]], "the backlog is in the journal");
    (setup, run.per_second())
}

/// Copies the journal of `from` (a stopped middleware's) into `to`.
pub fn copy_journal(from: &Setup, to: &Setup) {
    for suffix in ["", "-wal", "-shm"] {
        let source = from.path(&format!("journal.db{suffix}"));
        if source.exists() {
            std::fs::copy(&source, to.path(&format!("journal.db{suffix}"))).expect("copy the journal");
        }
    }
}

/// The journal's size on disk, its write-ahead log included.
pub fn journal_bytes(setup: &Setup) -> u64 {
    ["", "-wal"].iter().map(|suffix| file_size(&setup.path(&format!("journal.db{suffix}")))).sum()
}

/// A file's size, 0 if it does not exist.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Starts the middleware of `setup` and returns it once nothing is pending,
/// with the time from its start. `watch` is called about every 2 ms while
/// it drains (to sample its memory, say).
pub fn drain(setup: &Setup, mut watch: impl FnMut(&Middleware)) -> (Middleware, Duration) {
    let started = Instant::now();
    let middleware = setup.start();
    // Poll cheaply (an indexed EXISTS, not a COUNT over the backlog), so
    // that watching does not slow what is watched.
    let journal = setup.journal();
    let deadline = Instant::now() + Duration::from_secs(900);
    while query(&journal, "SELECT EXISTS (SELECT 1 FROM events WHERE status = 'pending')") != [vec![json!(0)]] {
        assert!(Instant::now() < deadline, "the backlog did not drain within 15 minutes:\n{}", middleware.logs());
        watch(&middleware);
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    (middleware, took)
}
