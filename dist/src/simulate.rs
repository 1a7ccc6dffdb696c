//! `cargo xtask simulate [--seeds N] [--from S] | --seed S`: the
//! deterministic simulation of the sync worker
//! (`host/src/pipeline/simulation/`), in release mode, on every core.
//!
//! `--seeds N` runs N schedules from seed `--from` (0), printing progress
//! every 10,000 and, at the end, how many ran, in how long, and any broken
//! invariant with its seed. `--seed S` replays one schedule and prints its
//! whole trace. CI runs a few thousand schedules
//! through `cargo xtask test` (tests/tests/simulation.rs).

use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask simulate [--seeds N] [--from S] | cargo xtask simulate --seed S";

/// Runs the task.
pub fn run(args: Vec<String>) -> anyhow::Result<()> {
    let mut env: Vec<(&str, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let name = match arg.as_str() {
            "--seeds" => "BUKTOR_SIMULATE_SEEDS",
            "--from" => "BUKTOR_SIMULATE_FROM",
            "--seed" => "BUKTOR_SIMULATE_SEED",
            other => bail!("unknown argument {other:?}; {USAGE}"),
        };
        let value = args.next().with_context(|| format!("{arg} needs a number; {USAGE}"))?;
        value.parse::<u64>().with_context(|| format!("{arg} {value:?} is not a whole number; {USAGE}"))?;
        env.push((name, value));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::repo_root())
        .args(["test", "--release", "-p", "buktor-tests", "--test", "simulation", "--", "--ignored", "--exact"])
        .args(["by_hand", "--nocapture"])
        .envs(env)
        .status()
        .context("run cargo test")?;
    if !status.success() {
        bail!("the simulation failed ({status}); the seeds above replay each failure: cargo xtask simulate --seed N");
    }
    Ok(())
}
