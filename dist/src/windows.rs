//! The Windows build, made on Debian Linux: `cargo xtask dist --target
//! x86_64-pc-windows-gnu`.
//!
//! rustup's toolchains here carry no Windows standard library and cannot
//! fetch one. Debian's Rust can build one: `rustc-web` and `cargo-web`
//! (Rust 1.96) with `rust-web-src` (the standard library's sources) build
//! std for the target with `-Zbuild-std` (allowed on a stable compiler by
//! `RUSTC_BOOTSTRAP=1`), and MinGW-w64 (`gcc-mingw-w64-x86-64`) links the
//! .exe and the .dlls and compiles the C in build scripts (SQLite,
//! aws-lc, ODPI-C). The packages are installed with apt-get when missing.
//!
//! The build goes to `target/cross/`, apart from rustup's builds: the two
//! compilers' artifacts never mix.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The targets this module builds.
const TARGETS: [&str; 1] = ["x86_64-pc-windows-gnu"];

/// Debian's Rust: a compiler and cargo of the same release.
const RUSTC: &str = "/usr/bin/rustc";
const CARGO: &str = "/usr/bin/cargo";
/// The MinGW-w64 tools, by their prefix.
const MINGW: &str = "x86_64-w64-mingw32";
/// What the build needs from Debian, and why.
const PACKAGES: [&str; 4] = ["rustc-web", "cargo-web", "rust-web-src", "gcc-mingw-w64-x86-64"];

/// Builds the host and every plugin for `target`; returns the folder that
/// holds them.
pub fn build(root: &Path, target_dir: &Path, target: &str) -> anyhow::Result<PathBuf> {
    if !TARGETS.contains(&target) {
        bail!("--target {target}: this machine builds only {} besides its own target", TARGETS.join(", "));
    }
    ensure_toolchain()?;
    let cross_dir = target_dir.join("cross");
    let mut build = Command::new(CARGO);
    build
        .current_dir(root)
        // The outer `cargo xtask` is rustup's; nothing of it may leak in.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env("RUSTC", RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &cross_dir)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", format!("{MINGW}-gcc"))
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_AR", format!("{MINGW}-ar"))
        .env("CC_x86_64_pc_windows_gnu", format!("{MINGW}-gcc"))
        .env("CXX_x86_64_pc_windows_gnu", format!("{MINGW}-g++"))
        .env("AR_x86_64_pc_windows_gnu", format!("{MINGW}-ar"))
        .args(["build", "-Zbuild-std=std,panic_abort,panic_unwind", "--target", target, "--profile", "ship"]);
    eprintln!("building for {target} with Debian's Rust and MinGW-w64 into {}", cross_dir.display());
    super::run_build(build)?;
    Ok(cross_dir.join(target).join("ship"))
}

/// Installs Debian's Rust and MinGW-w64 with apt-get when any is missing,
/// and says so; without apt-get or root, says what to install.
fn ensure_toolchain() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "the Windows build needs Debian's Rust with its std sources and the MinGW-w64 linker; installing {} with apt-get",
        missing.join(" ")
    );
    let install = |update: bool| -> anyhow::Result<bool> {
        if update {
            Command::new("apt-get").args(["update", "-qq"]).status().context("run apt-get update")?;
        }
        let status = Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .status()
            .context("run apt-get (a Debian or Ubuntu machine is needed for the Windows build)")?;
        Ok(status.success())
    };
    if !(install(false)? || install(true)?) {
        bail!("apt-get could not install {}: run as root, or install them by hand", missing.join(" "));
    }
    let still = missing_packages();
    if !still.is_empty() {
        bail!("still missing after apt-get: {}", still.join(" "));
    }
    Ok(())
}

/// The packages of [`PACKAGES`] whose files are not here.
fn missing_packages() -> Vec<&'static str> {
    let std_sources = Command::new(RUSTC)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|out| Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("lib/rustlib/src/rust/library/std"));
    let present = [
        Path::new(RUSTC).is_file(),
        Path::new(CARGO).is_file(),
        std_sources.is_some_and(|std| std.is_dir()),
        Path::new("/usr/bin").join(format!("{MINGW}-gcc")).is_file(),
    ];
    PACKAGES.iter().zip(present).filter(|(_, present)| !present).map(|(package, _)| *package).collect()
}
