//! The benchmark suite: `cargo xtask bench [intake] [drain] [latency]
//! [footprint] [--quick]` (all four without names). BENCHMARKS.md records
//! its runs.
//!
//! Each scenario drives the real release binary and the real plugins
//! loaded from disk, and prints the middleware's figure beside a ceiling
//! measured in the same run on the same machine, so that the ratio means
//! something on a noisy machine. At the end it prints every figure as one
//! Markdown table.
//!
//! - [`intake`]: durable events/s at 16 and 64 connections, p50/p99, fsyncs/s,
//!   beside a bare axum endpoint ([`ceiling`]); signature checking on and off.
//! - [`drain`]: a 100,000-event backlog into MariaDB, into PostgreSQL and
//!   into SQLite, beside raw multi-row upserts with the same drivers.
//! - [`latency`]: 2xx to row visible in MariaDB at 500 events/s.
//! - [`footprint`]: sizes, startup to /ready, idle RSS, RSS draining a
//!   1,000,000-event backlog, journal bytes per event.
//! - [`loadgen`]: the HTTP load generator; [`backlog`]: filling and draining
//!   a journal; [`fsyncs`]: counting fsyncs with perf; [`report`]: the table.
//!
//! MariaDB comes from `HIS_TEST_MYSQL_URL` and PostgreSQL from
//! `HIS_TEST_POSTGRES_URL`, as for the tests; without one, its figures say
//! they were not run. `--quick` divides every count by
//! ten, to check the suite itself, not to quote.

mod backlog;
mod ceiling;
mod drain;
mod footprint;
mod fsyncs;
mod intake;
mod latency;
mod loadgen;
mod report;

use report::Report;

const SCENARIOS: [&str; 4] = ["intake", "drain", "latency", "footprint"];

/// Throughputs are the median of this many runs, the middleware's and its
/// ceiling's taking turns, so that a slow moment of the machine hits both.
pub const REPEATS: usize = 3;

fn main() {
    if std::env::var_os(ceiling::ROLE).is_some() {
        return ceiling::serve();
    }
    // cargo bench passes --bench; names pick scenarios.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut chosen: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    if let Some(unknown) = chosen.iter().find(|c| !SCENARIOS.contains(c)) {
        eprintln!("unknown scenario {unknown:?}; the scenarios are {}", SCENARIOS.join(", "));
        std::process::exit(2);
    }
    if chosen.is_empty() {
        chosen = SCENARIOS.to_vec();
    }
    let scale = |n: usize| if quick { n / 10 } else { n };

    let built = buktor_tests::artifacts();
    println!("# buktor-middleware benchmark suite{}", if quick { " (--quick: not figures to quote)" } else { "" });
    println!("machine: {}", report::machine(&built.dir));
    println!("binary: {}", built.binary.display());
    let mut report = Report::default();
    for scenario in chosen {
        match scenario {
            "intake" => intake::run(&mut report, scale(100_000)),
            "drain" => drain::run(&mut report, scale(100_000)),
            "latency" => latency::run(&mut report, 500, if quick { 5 } else { 20 }),
            "footprint" => footprint::run(&mut report, scale(1_000_000)),
            _ => unreachable!("checked above"),
        }
    }
    report.print();
}
