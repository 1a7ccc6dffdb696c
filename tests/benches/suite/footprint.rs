//! Scenario 4, footprint: what the middleware takes from a shared hospital
//! server.
//!
//! - The size of the binary and of each plugin, as built and as shipped
//!   (stripped, like `cargo xtask dist`'s).
//! - Startup time to `GET /ready` answering 200, with the SQLite writer.
//! - RSS when idle.
//! - A backlog of 1,000,000 events: the journal's bytes per event, and RSS
//!   sampled while it drains into the SQLite writer, which must stay flat.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use buktor_tests::{Setup, artifacts, query};
use serde_json::json;

use crate::{
    backlog,
    report::{Report, memory_mib, thousands},
};

/// How many times the middleware is started to time its startup.
const STARTS: usize = 10;

/// Runs the scenario with a backlog of `events`.
pub fn run(report: &mut Report, events: usize) {
    println!("\n## Footprint");
    sizes(report);
    startup_and_idle(report);
    backlog_memory(report, events);
}

fn sizes(report: &mut Report) {
    let built = artifacts();
    let strip_dir = tempfile::tempdir().expect("temp dir");
    let mut files = vec![("buktor-middleware".to_string(), built.binary.clone())];
    files.extend(
        ["sqlite", "mysql", "sqlserver", "oracle", "postgres"].map(|p| (format!("plugin {p}"), built.plugin(p))),
    );
    for (name, path) in files {
        let stripped = strip_dir.path().join("stripped");
        let status = Command::new("strip").arg("-o").arg(&stripped).arg(&path).status();
        let shipped = match status {
            Ok(s) if s.success() => format!("{:.1} MiB", mib(backlog::file_size(&stripped))),
            _ => "? (strip from binutils is missing)".into(),
        };
        report.figure(
            &format!("size: {name}"),
            format!("{shipped} shipped ({:.1} MiB as built, with line tables)", mib(backlog::file_size(&path))),
            None,
        );
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

fn startup_and_idle(report: &mut Report) {
    artifacts();
    let mut times = Vec::new();
    let mut idle = None;
    for _ in 0..STARTS {
        let setup = Setup::new();
        let started = Instant::now();
        let middleware = setup.start();
        while middleware.request("GET", "/ready", &[], b"").status != 200 {
            std::thread::sleep(Duration::from_micros(500));
        }
        times.push(started.elapsed());
        if idle.is_none() {
            std::thread::sleep(Duration::from_secs(3));
            idle = Some(memory_mib(middleware.pid()).0);
        }
    }
    times.sort();
    let median = times[STARTS / 2].as_secs_f64() * 1000.0;
    let slowest = times[STARTS - 1].as_secs_f64() * 1000.0;
    println!("  startup to /ready over {STARTS} starts: median {median:.0} ms, slowest {slowest:.0} ms");
    report.figure(
        "startup to /ready, SQLite writer (median of 10; slowest)",
        format!("{median:.0} ms; {slowest:.0} ms"),
        Some(("≤ 100 ms", median <= 100.0)),
    );
    let idle = idle.expect("measured");
    report.figure(
        "RSS idle (SQLite writer, 3 s after /ready)",
        format!("{idle:.1} MiB"),
        Some(("≤ 30 MB", idle * 1.048_576 <= 30.0)),
    );
}

fn backlog_memory(report: &mut Report, events: usize) {
    let (filled, fill_rate) = backlog::fill(events);
    let bytes_per_event = backlog::journal_bytes(&filled) as f64 / events as f64;
    println!(
        "  filled {} events at {}/s; the journal holds {bytes_per_event:.0} bytes per event",
        thousands(events as f64),
        thousands(fill_rate)
    );
    report.figure(
        "journal bytes per pending event (payment, ~120-byte payload)",
        format!("{bytes_per_event:.0} B"),
        None,
    );

    let mut setup = Setup::new();
    setup.config["mapping"] = backlog::payment_mapping();
    backlog::copy_journal(&filled, &setup);
    drop(filled);
    let mut samples = Vec::new();
    let mut last = Instant::now();
    let (middleware, took) = backlog::drain(&setup, |middleware| {
        if last.elapsed() >= Duration::from_millis(100) {
            samples.push(memory_mib(middleware.pid()).0);
            last = Instant::now();
        }
    });
    let (after, peak) = memory_mib(middleware.pid());
    drop(middleware);
    let rows = query(&setup.his(), "SELECT COUNT(*) FROM HIS_payments");
    assert_eq!(rows, [vec![json!(events)]], "every event became a row");
    let at = |fraction: f64| samples.get((samples.len() as f64 * fraction) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "  drained {} events into SQLite in {:.1} s; RSS at 10% / 50% / 90% of the drain: {:.1} / {:.1} / {:.1} MiB, after {after:.1}, peak {peak:.1} MiB",
        thousands(events as f64),
        took.as_secs_f64(),
        at(0.1),
        at(0.5),
        at(0.9)
    );
    report.figure(
        &format!("RSS draining {} events into SQLite: at 10% / 50% / 90%; peak", thousands(events as f64)),
        format!("{:.1} / {:.1} / {:.1} MiB; {peak:.1} MiB", at(0.1), at(0.5), at(0.9)),
        // Flat: what it holds late in the drain is what it held early on.
        Some(("flat (90% within 5 MiB of 10%)", (at(0.9) - at(0.1)).abs() <= 5.0)),
    );
}
