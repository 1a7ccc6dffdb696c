//! Scenario 3, end-to-end latency: the time from the middleware's 2xx to
//! the row being visible in MariaDB, with events offered at a steady rate
//! (500/s for 20 s by default), as Buktor sends them.
//!
//! The sender ([`loadgen::paced`]) notes when each answer arrived; this
//! thread meanwhile asks MariaDB, on a connection of its own, which rows it
//! can see, about once a millisecond, and notes when each first appears.
//! The figure therefore includes up to one polling interval (about 1 ms
//! plus one query) of the watcher's own.

use std::time::{Duration, Instant};

use buktor_tests::{Setup, mysql, seed};
use sqlx::{Connection, mysql::MySqlConnection};

use crate::{
    intake::appointments,
    loadgen::{self, Latencies},
    report::Report,
};

/// Runs the scenario: `per_second` events for `seconds`.
pub fn run(report: &mut Report, per_second: usize, seconds: usize) {
    println!("\n## End-to-end latency ({per_second} events/s for {seconds} s, into MariaDB)");
    let Some(server) = mysql::server("end-to-end latency") else {
        report.figure("end-to-end latency", "not run: HIS_TEST_MYSQL_URL is not set".into(), None);
        return;
    };
    let db = server.database();
    db.execute(seed::MYSQL_TABLES);
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    let middleware = setup.start();

    let count = per_second * seconds;
    let requests = appointments(&middleware.address, 0..count, None);
    let address = middleware.address.clone();
    let sender = std::thread::spawn(move || loadgen::paced(&address, 8, requests, per_second as f64));

    let mut seen: Vec<Option<Instant>> = vec![None; count];
    let mut lowest_unseen = 0;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64 + 120);
    // The watcher: one connection of its own, on a runtime of its own, one
    // prepared statement (the test support's pooled queries take ~20 ms).
    let watcher = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let mut connection =
        watcher.block_on(MySqlConnection::connect_with(&db.connect_options())).expect("the watcher's connection");
    let (watching, mut polls) = (Instant::now(), 0u32);
    while lowest_unseen < count {
        polls += 1;
        assert!(Instant::now() < deadline, "not every row arrived within 2 minutes:\n{}", middleware.logs());
        let ids: Vec<i64> = watcher
            .block_on(
                sqlx::query_scalar("SELECT HIS_appointment_id FROM HIS_appointments WHERE HIS_appointment_id >= ?")
                    .bind(lowest_unseen as i64)
                    .fetch_all(&mut connection),
            )
            .expect("the watcher's query");
        let now = Instant::now();
        for id in ids {
            seen[usize::try_from(id).expect("an appointment id")].get_or_insert(now);
        }
        while lowest_unseen < count && seen[lowest_unseen].is_some() {
            lowest_unseen += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let poll_interval_ms = watching.elapsed().as_secs_f64() * 1000.0 / f64::from(polls);
    let answered = sender.join().expect("the sender");
    let early = seen.iter().zip(&answered).filter(|(seen, answered)| seen.expect("seen") < **answered).count();
    let latencies = Latencies::new(
        seen.iter()
            .zip(&answered)
            .map(|(seen, answered)| seen.expect("seen").saturating_duration_since(*answered))
            .collect(),
    );
    let (p50, p99, max) = (latencies.percentile_ms(50.0), latencies.percentile_ms(99.0), latencies.max_ms());
    println!(
        "  2xx to visible: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({early} rows were visible before their answer arrived: counted as 0); the watcher looked every {poll_interval_ms:.1} ms"
    );
    report.figure(
        "end-to-end, 2xx to row visible in MariaDB: p50",
        format!("{p50:.1} ms"),
        Some(("≤ 20 ms", p50 <= 20.0)),
    );
    report.figure("end-to-end: p99", format!("{p99:.1} ms"), Some(("≤ 100 ms", p99 <= 100.0)));
    report.figure("end-to-end: max", format!("{max:.1} ms"), None);
}
