//! What `cargo xtask test` may change on this machine, and how.
//!
//! CI runs as root on a fresh Debian machine, where the tasks install what
//! is missing with apt-get, as `.ci/run` did in shell; a developer's
//! machine is usually not root, and there the tasks only look, and say
//! what is missing. This file is the one place that decides which of the
//! two it is, finds programs on the `PATH`, runs commands that must
//! succeed, and calls apt-get (`apt-get update` at most once per run: it
//! takes longer than most installs).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// Whether this process runs as root (`id -u` is 0): only then do the
/// tasks install packages and start servers.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program` as the shell would find it on the `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// Runs `command` to its end; an error names it when it cannot start or
/// ends unsuccessfully.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let name = format!("{command:?}");
    let status = command.status().with_context(|| format!("run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// apt-get, for a root process on Debian: installs packages, with one
/// `apt-get update` before the first install of the run.
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// apt-get when this process may install packages (root); `None`
    /// otherwise, so that a caller cannot install by mistake.
    pub fn if_root() -> Option<Self> {
        is_root().then_some(Self { updated: false })
    }

    /// Installs `packages` non-interactively.
    pub fn install(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        if !self.updated {
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            self.updated = true;
        }
        println!("installing with apt-get: {}", packages.join(" "));
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(packages))
    }
}

/// Whether `path` is a file: for programs outside the `PATH` of a
/// non-root user (`/usr/sbin`, `/usr/lib/wine`).
pub fn is_file(path: &str) -> bool {
    Path::new(path).is_file()
}
