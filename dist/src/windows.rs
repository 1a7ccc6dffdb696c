//! The Windows build, made on Debian Linux: `cargo xtask dist --target
//! x86_64-pc-windows-gnu`.
//!
//! rustup's toolchains here carry no Windows standard library and cannot
//! fetch one. Debian's Rust can build one: `rustc-web` and `cargo-web`
//! (Rust 1.96) with `rust-web-src` (the standard library's sources) build
//! std for the target with `-Zbuild-std` (allowed on a stable compiler by
//! `RUSTC_BOOTSTRAP=1`), and MinGW-w64 (`gcc-mingw-w64-x86-64`) links the
//! .exe and the .dlls and compiles the C in build scripts (SQLite,
//! aws-lc, ODPI-C); `rust-web-clippy` lints the Windows-only code. The
//! packages are installed with apt-get when missing.
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

/// A Debian package the Windows build needs, and how to tell it is here.
#[derive(Clone, Copy)]
struct Package {
    name: &'static str,
    present: fn() -> bool,
}

/// What the build needs from Debian.
const BUILD: [Package; 4] = [
    Package { name: "rustc-web", present: || Path::new(RUSTC).is_file() },
    Package { name: "cargo-web", present: || Path::new(CARGO).is_file() },
    Package { name: "rust-web-src", present: std_sources_present },
    Package { name: "gcc-mingw-w64-x86-64", present: || Path::new("/usr/bin/x86_64-w64-mingw32-gcc").is_file() },
];
/// What `clippy` needs besides.
const CLIPPY: Package = Package { name: "rust-web-clippy", present: || Path::new("/usr/bin/clippy-driver").is_file() };

/// The Debian packages the build needs and this machine lacks (the build
/// installs them, as root).
pub fn missing_for_build() -> Vec<&'static str> {
    missing_packages(&BUILD)
}

/// Builds the host and every plugin for `target`; returns the folder that
/// holds them.
pub fn build(root: &Path, target_dir: &Path, target: &str) -> anyhow::Result<PathBuf> {
    let mut build = cross_cargo(root, target_dir, target, &BUILD)?;
    build.args(["build", "-Zbuild-std=std,panic_abort,panic_unwind", "--target", target, "--profile", "ship"]);
    eprintln!("building for {target} with Debian's Rust and MinGW-w64 into {}", target_dir.join("cross").display());
    super::run_build(build)?;
    Ok(target_dir.join("cross").join(target).join("ship"))
}

/// Runs clippy on the host for `target`, with warnings as errors: the
/// code behind `cfg(windows)` (the Windows service) that the Linux
/// clippy never sees.
pub fn clippy(root: &Path, target_dir: &Path, target: &str) -> anyhow::Result<()> {
    let mut clippy = cross_cargo(root, target_dir, target, &[BUILD.as_slice(), &[CLIPPY]].concat())?;
    clippy.args(["clippy", "-Zbuild-std=std,panic_abort,panic_unwind", "--target", target]).args([
        "-p",
        "buktor-middleware",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    if !clippy.status().context("run cargo clippy")?.success() {
        bail!("cargo clippy --target {target} found problems");
    }
    Ok(())
}

/// Debian's cargo, set up to build for `target` with MinGW-w64.
fn cross_cargo(root: &Path, target_dir: &Path, target: &str, needs: &[Package]) -> anyhow::Result<Command> {
    if !TARGETS.contains(&target) {
        bail!("--target {target}: this machine builds only {} besides its own target", TARGETS.join(", "));
    }
    ensure_toolchain(needs)?;
    let mut cargo = Command::new(CARGO);
    // Debian's cargo-clippy, not rustup's, when cargo looks up `clippy`.
    let path = std::env::var("PATH").unwrap_or_default();
    cargo
        .current_dir(root)
        // The outer `cargo xtask` is rustup's; nothing of it may leak in.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env("PATH", format!("/usr/bin:{path}"))
        .env("RUSTC", RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir.join("cross"))
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", format!("{MINGW}-gcc"))
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_AR", format!("{MINGW}-ar"))
        .env("CC_x86_64_pc_windows_gnu", format!("{MINGW}-gcc"))
        .env("CXX_x86_64_pc_windows_gnu", format!("{MINGW}-g++"))
        .env("AR_x86_64_pc_windows_gnu", format!("{MINGW}-ar"));
    Ok(cargo)
}

/// Installs Debian's Rust and MinGW-w64 with apt-get when any is missing,
/// and says so; without apt-get or root, says what to install.
fn ensure_toolchain(needs: &[Package]) -> anyhow::Result<()> {
    let missing = missing_packages(needs);
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
    let still = missing_packages(needs);
    if !still.is_empty() {
        bail!("still missing after apt-get: {}", still.join(" "));
    }
    Ok(())
}

/// The packages of `needs` whose files are not here.
fn missing_packages(needs: &[Package]) -> Vec<&'static str> {
    needs.iter().filter(|package| !(package.present)()).map(|package| package.name).collect()
}

/// Whether Debian's rustc has the standard library's sources (`-Zbuild-std`).
fn std_sources_present() -> bool {
    Command::new(RUSTC).args(["--print", "sysroot"]).output().is_ok_and(|out| {
        Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("lib/rustlib/src/rust/library/std").is_dir()
    })
}
