//! Scenario 1, intake, and scenario 5, the cost of signature checking.
//!
//! Durable, acknowledged events per second at 16 and 64 connections, with
//! the seed's appointment event and a unique key per request, beside the
//! bare axum ceiling ([`crate::ceiling`]) under the same load. Every 2xx
//! the middleware sends comes after its event's fsync; the suite counts
//! those fsyncs ([`crate::fsyncs`]) and checks afterwards that the journal
//! holds every acknowledged event.
//!
//! The HIS is down during these runs (nothing listens where the MySQL
//! writer is sent), so that the figure is intake alone, as in a burst while
//! the HIS is away. One more run measures intake at 64 connections while
//! the sync worker drains into the embedded SQLite writer at the same time.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use buktor_tests::{Middleware, Setup, query, signing};
use serde_json::json;

use crate::{
    REPEATS,
    backlog::his_down,
    ceiling,
    fsyncs::Fsyncs,
    loadgen::{self, Request, Run},
    report::{Report, thousands},
};

/// The Standard Webhooks secret of the signed runs.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Requests sent before each measured run, to warm connections and caches.
const WARM_UP: usize = 2_000;

/// Runs the scenario with `requests` measured requests per run.
pub fn run(report: &mut Report, requests: usize) {
    println!("\n## Intake ({requests} requests per run, keep-alive connections, median of {REPEATS} runs each)");
    let bare = ceiling::start();
    for connections in [16, 64] {
        let (mut ceilings, mut runs) = (Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            let ceiling = measure(&bare, connections, requests, None);
            let setup = his_down();
            let middleware = setup.start();
            let (run, fsyncs) = measure_with_fsyncs(&middleware, connections, requests, None);
            assert_journaled(&setup, requests + WARM_UP);
            println!(
                "  c={connections}: bare axum {}; middleware {}; {}",
                describe(&ceiling),
                describe(&run),
                fsync_text(&fsyncs, &run)
            );
            ceilings.push(ceiling);
            runs.push((run, fsyncs));
        }
        let ceiling = median(ceilings);
        runs.sort_by(|a, b| a.0.per_second().total_cmp(&b.0.per_second()));
        let (run, fsyncs) = runs.swap_remove(REPEATS / 2);
        let target = (connections == 64).then_some(0.5);
        let name = format!("intake, c={connections}");
        report.versus(&format!("{name}, events/s (durable)"), run.per_second(), ceiling.per_second(), "/s", target);
        report.figure(
            &format!("{name}: latency p50 / p99 (ceiling's)"),
            format!(
                "{:.2} / {:.2} ms ({:.2} / {:.2} ms)",
                run.latencies.percentile_ms(50.0),
                run.latencies.percentile_ms(99.0),
                ceiling.latencies.percentile_ms(50.0),
                ceiling.latencies.percentile_ms(99.0)
            ),
            None,
        );
        report.figure(&format!("{name}: journal fsyncs/s"), fsync_text(&fsyncs, &run), None);
    }
    drop(bare);

    // Scenario 5: the same at c=64, every request signed, beside unsigned.
    let (mut unsigned, mut signed) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let setup = his_down();
        unsigned.push(measure(&setup.start(), 64, requests, None));
        let mut setup = his_down();
        setup.config["server"]["auth"] = json!({ "webhook_secrets": [SECRET] });
        signed.push(measure(&setup.start(), 64, requests, Some(SECRET)));
        assert_journaled(&setup, requests + WARM_UP);
        println!(
            "  c=64: signed {}; unsigned {}",
            describe(signed.last().unwrap()),
            describe(unsigned.last().unwrap())
        );
    }
    let (unsigned, signed) = (median(unsigned), median(signed));
    report.versus(
        "intake, c=64, signatures checked vs not, events/s",
        signed.per_second(),
        unsigned.per_second(),
        "/s",
        None,
    );

    // For reference: intake while the worker drains into SQLite.
    let setup = Setup::new();
    let middleware = setup.start();
    let draining = measure(&middleware, 64, requests, None);
    println!("  c=64 while draining into the SQLite writer: {}", describe(&draining));
    report.versus(
        "intake, c=64, while the worker drains into SQLite, vs with the HIS down (one run)",
        draining.per_second(),
        unsigned.per_second(),
        "/s",
        None,
    );
}

/// The run with the median throughput.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    runs.swap_remove(runs.len() / 2)
}

/// Warms up, then runs `requests` unique appointments at `connections`.
fn measure(server: &Middleware, connections: usize, requests: usize, secret: Option<&str>) -> Run {
    loadgen::closed_loop(&server.address, connections, appointments(&server.address, 0..WARM_UP, secret));
    loadgen::closed_loop(
        &server.address,
        connections,
        appointments(&server.address, WARM_UP..WARM_UP + requests, secret),
    )
}

/// [`measure`], counting the process's fsyncs during the measured run.
fn measure_with_fsyncs(
    server: &Middleware,
    connections: usize,
    requests: usize,
    secret: Option<&str>,
) -> (Run, Result<u64, String>) {
    let address = &server.address;
    loadgen::closed_loop(address, connections, appointments(address, 0..WARM_UP, None));
    let load = appointments(address, WARM_UP..WARM_UP + requests, secret);
    let counting = Fsyncs::attach(server.pid());
    let run = loadgen::closed_loop(address, connections, load);
    (run, counting.and_then(Fsyncs::stop))
}

/// The seed's appointment event, once per key in `keys`, signed with
/// `secret` if given.
pub fn appointments(address: &str, keys: std::ops::Range<usize>, secret: Option<&str>) -> Vec<Request> {
    let key = secret.map(|s| BASE64.decode(s.trim_start_matches("whsec_")).expect("a base64 secret"));
    let timestamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    keys.map(|n| {
        let body = format!(
            r#"{{"event_type": "appointment", "appointment_id": {n}, "patient_id": 456, "doctor_id": 789, "status": "confirmed"}}"#
        );
        let headers = match &key {
            None => Vec::new(),
            Some(key) => {
                let id = format!("msg_{n}");
                let signature = signing::signature(key, &id, timestamp, body.as_bytes());
                vec![("webhook-id", id), ("webhook-timestamp", timestamp.to_string()), ("webhook-signature", signature)]
            }
        };
        Request::post(address, &body, &headers)
    })
    .collect()
}

/// Every acknowledged event is in the journal.
fn assert_journaled(setup: &Setup, expected: usize) {
    let count = query(&setup.journal(), "SELECT COUNT(*) FROM events");
    assert_eq!(count, [vec![json!(expected)]], "every acknowledged event is in the journal");
}

fn describe(run: &Run) -> String {
    format!(
        "{}/s, p50 {:.2} ms, p99 {:.2} ms",
        thousands(run.per_second()),
        run.latencies.percentile_ms(50.0),
        run.latencies.percentile_ms(99.0)
    )
}

fn fsync_text(fsyncs: &Result<u64, String>, run: &Run) -> String {
    match fsyncs {
        Ok(count) => format!(
            "{} fsyncs/s ({:.1} events per fsync)",
            thousands(*count as f64 / run.elapsed.as_secs_f64()),
            run.latencies.count() as f64 / *count.max(&1) as f64
        ),
        Err(why) => format!("fsyncs not counted: {why}"),
    }
}
