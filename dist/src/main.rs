//! `cargo xtask <task>`: tasks that need more than one cargo command,
//! written in Rust so they run the same on Linux and Windows.
//!
//! - `run [ARGS…]`: build the middleware and the embedded SQLite plugin in
//!   release mode, then start it. Without ARGS it uses the repository's
//!   his-config.json, so a newcomer sees the whole pipeline with one command.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("run") => run(args.collect()),
        Some(other) => bail!("unknown task {other:?}; tasks: run"),
        None => bail!("usage: cargo xtask run [ARGS…]"),
    }
}

/// The workspace root: this package lives in `dist/`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dist/ has a parent").to_path_buf()
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "buktor-middleware", "-p", "his-plugin-sqlite"])
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release").join(format!("buktor-middleware{}", std::env::consts::EXE_SUFFIX));
    let mut command = Command::new(&binary);
    if args.is_empty() {
        command.arg("--config").arg(root.join("his-config.json"));
    }
    command.args(&args);
    exec(command).with_context(|| format!("start {}", binary.display()))
}

/// Replaces this process with `command` on Unix, so Ctrl-C and exit codes
/// reach it directly; elsewhere, runs it and passes its exit code on.
fn exec(mut command: Command) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(command.exec().into())
    }
    #[cfg(not(unix))]
    {
        let status = command.status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
