//! `cargo xtask <task>`: tasks that need more than one cargo command,
//! written in Rust so they run the same on Linux and Windows.
//!
//! - `run [ARGS…]`: build the middleware and the embedded SQLite plugin in
//!   release mode, then start it. Without ARGS it uses the repository's
//!   his-config.json, so a newcomer sees the whole pipeline with one command.
//! - `dist`: the release archive for this machine's target:
//!   `target/dist/buktor-middleware-<version>-<target>/` and its `.tar.gz`,
//!   holding the executable, every plugin beside it (where the loader looks
//!   first when `plugins.dir` is not set), a commented his-config.json per
//!   database type (the SQLite demo as `his-config.json`), the service and
//!   proxy files of `dist/service/`, and the operator's README.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("run") => run(args.collect()),
        Some("dist") => dist(),
        Some(other) => bail!("unknown task {other:?}; tasks: run, dist"),
        None => bail!("usage: cargo xtask run [ARGS…] | cargo xtask dist"),
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
    let binary = target_dir(&root).join("release").join(format!("buktor-middleware{}", std::env::consts::EXE_SUFFIX));
    let mut command = Command::new(&binary);
    if args.is_empty() {
        command.arg("--config").arg(root.join("his-config.json"));
    }
    command.args(&args);
    exec(command).with_context(|| format!("start {}", binary.display()))
}

/// The plugins a release carries, by `database.type`.
const PLUGINS: [&str; 4] = ["sqlite", "mysql", "sqlserver", "oracle"];

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// This machine's target triple, as rustc says.
fn host_target() -> anyhow::Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().context("run rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")
}

fn dist() -> anyhow::Result<()> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(&root).args(["build", "--profile", "ship", "-p", "buktor-middleware"]);
    for plugin in PLUGINS {
        build.args(["-p", &format!("his-plugin-{plugin}")]);
    }
    if !build.status().context("run cargo build")?.success() {
        bail!("cargo build failed");
    }
    let built = target_dir(&root).join("ship");
    let name = format!("buktor-middleware-{}-{}", env!("CARGO_PKG_VERSION"), host_target()?);
    let out = target_dir(&root).join("dist");
    let folder = out.join(&name);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).with_context(|| format!("remove {}", folder.display()))?;
    }
    std::fs::create_dir_all(folder.join("examples"))?;
    std::fs::create_dir_all(folder.join("service"))?;
    let copy = |from: PathBuf, to: PathBuf| {
        std::fs::copy(&from, &to).with_context(|| format!("copy {} to {}", from.display(), to.display()))
    };
    let exe = format!("buktor-middleware{}", std::env::consts::EXE_SUFFIX);
    copy(built.join(&exe), folder.join(&exe))?;
    for plugin in PLUGINS {
        let file = format!("{}his_{plugin}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
        copy(built.join(&file), folder.join(&file))?;
    }
    let dist = root.join("dist");
    for entry in std::fs::read_dir(dist.join("examples"))? {
        let path = entry?.path();
        copy(path.clone(), folder.join("examples").join(path.file_name().expect("a file")))?;
    }
    for entry in std::fs::read_dir(dist.join("service"))? {
        let path = entry?.path();
        copy(path.clone(), folder.join("service").join(path.file_name().expect("a file")))?;
    }
    copy(dist.join("examples/his-config.sqlite.json"), folder.join("his-config.json"))?;
    copy(dist.join("README.operator.md"), folder.join("README.md"))?;

    let archive = out.join(format!("{name}.tar.gz"));
    let file = std::fs::File::create(&archive).with_context(|| format!("create {}", archive.display()))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    tar.append_dir_all(&name, &folder)?;
    tar.into_inner()?.finish()?;
    println!("{}", folder.display());
    println!("{}", archive.display());
    Ok(())
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
