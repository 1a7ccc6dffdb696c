//! `cargo xtask <task>`: tasks that need more than one cargo command,
//! written in Rust so they run the same on Linux and Windows.
//!
//! - `run [ARGS…]`: build the middleware and the embedded SQLite plugin in
//!   release mode, then start it. Without ARGS it uses the repository's
//!   his-config.json, so a newcomer sees the whole pipeline with one command.
//! - `dist [--target TRIPLE]`: the release archive, for this machine's
//!   target or for `x86_64-pc-windows-gnu` (see [`windows`]):
//!   `target/dist/buktor-middleware-<version>-<target>/` and its `.tar.gz`
//!   (a `.zip` for Windows), holding the executable, every plugin beside it
//!   (where the loader looks first when `plugins.dir` is not set), a
//!   commented his-config.json per database type (the SQLite demo as
//!   `his-config.json`), their JSON Schema `his-config.schema.json` beside
//!   them (in the folder and in `examples/`), the service files of `dist/service/` for that platform, and the
//!   operator's README.
//! - `schema`: writes `dist/his-config.schema.json` from the middleware's
//!   `schema` command (the test `config_schema` fails until it matches).
//! - `bench [SCENARIO…] [--quick]`: the benchmark suite
//!   (`tests/benches/suite/`) in release mode; BENCHMARKS.md says how to
//!   read it.
//! - `links`: every relative link in the tracked Markdown files resolves
//!   (see [`links`]).
//! - `layers`: the host's modules import one way, with no loops (see
//!   [`layers`]).
//! - `test [--strict] [-- CARGO-TEST-ARGS…]`: the whole test suite with what
//!   it needs (see [`test`]), ending in a table of passed, failed and
//!   skipped tests.
//! - `simulate [--seeds N] [--from S] | --seed S`: the deterministic
//!   simulation of the sync worker (see [`simulate`]).
//! - `clippy --target x86_64-pc-windows-gnu`: clippy on the host's
//!   Windows-only code, which the Linux clippy never compiles.

mod layers;
mod links;
mod machine;
mod services;
mod simulate;
mod test;
mod windows;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask run [ARGS…] | cargo xtask dist [--target x86_64-pc-windows-gnu] | \
                     cargo xtask bench [intake] [drain] [latency] [footprint] [--quick] | cargo xtask links | \
                     cargo xtask layers | cargo xtask test [--strict] [-- CARGO-TEST-ARGS…] | \
                     cargo xtask simulate [--seeds N] [--from S] | cargo xtask simulate --seed S | \
                     cargo xtask clippy --target x86_64-pc-windows-gnu | cargo xtask schema";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("run") => run(args.collect()),
        Some("dist") => match (args.next().as_deref(), args.next()) {
            (None, _) => dist(None),
            (Some("--target"), Some(target)) if args.next().is_none() => dist(Some(&target)),
            _ => bail!("{USAGE}"),
        },
        Some("bench") => bench(args.collect()),
        Some("links") => links::check(&repo_root()),
        Some("layers") => layers::check(&repo_root()),
        Some("test") => test::run(args.collect()),
        Some("simulate") => simulate::run(args.collect()),
        Some("schema") if args.next().is_none() => schema(),
        Some("clippy") => match (args.next().as_deref(), args.next(), args.next()) {
            (Some("--target"), Some(target), None) => {
                let root = repo_root();
                windows::clippy(&root, &target_dir(&root), &target)
            }
            _ => bail!("{USAGE}"),
        },
        Some(other) => bail!("unknown task {other:?}; {USAGE}"),
        None => bail!("{USAGE}"),
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

/// Writes `dist/his-config.schema.json`: what `buktor-middleware schema`
/// prints, built from the code as it is now.
fn schema() -> anyhow::Result<()> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&root)
        .args(["run", "--quiet", "--package", "buktor-middleware", "--", "schema"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run cargo run -p buktor-middleware -- schema")?;
    if !output.status.success() {
        bail!("buktor-middleware schema failed");
    }
    let file = root.join("dist").join(SCHEMA_FILE);
    std::fs::write(&file, &output.stdout).with_context(|| format!("write {}", file.display()))?;
    println!("{}", file.display());
    Ok(())
}

/// The JSON Schema of his-config.json, in `dist/` and in the release
/// folder, beside his-config.json.
const SCHEMA_FILE: &str = "his-config.schema.json";

/// In the repository the examples name the schema in `dist/` (`../`);
/// in the release every config has a copy beside it (`./`), in the
/// folder and in `examples/`, so that an example copied over
/// his-config.json still finds it. (That every example config has the
/// line is `tests/tests/config_schema.rs`'s to check; other JSON files,
/// such as a sample event, pass unchanged.)
fn schema_beside(example: &str) -> String {
    let from_examples = format!("\"$schema\": \"../{SCHEMA_FILE}\"");
    example.replace(&from_examples, &format!("\"$schema\": \"./{SCHEMA_FILE}\""))
}

/// Runs the benchmark suite with `args` (scenario names, `--quick`).
fn bench(args: Vec<String>) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args(["bench", "--package", "buktor-tests", "--bench", "suite", "--"])
        .args(&args)
        .status()
        .context("run cargo bench")?;
    if !status.success() {
        bail!("the benchmark suite failed");
    }
    Ok(())
}

/// The plugins a release carries, by `database.type`.
const PLUGINS: [&str; 5] = ["sqlite", "mysql", "sqlserver", "oracle", "postgres"];

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

/// Builds the release for `target` (this machine's when `None`) and
/// packs it.
fn dist(target: Option<&str>) -> anyhow::Result<()> {
    let root = repo_root();
    let host = host_target()?;
    let (target, built) = match target {
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.current_dir(&root).args(["build", "--profile", "ship"]);
            run_build(build)?;
            (host, target_dir(&root).join("ship"))
        }
        Some(target) if target == host => bail!("--target {target} is this machine's: run `cargo xtask dist`"),
        Some(target) => {
            let built = windows::build(&root, &target_dir(&root), target)?;
            (target.to_string(), built)
        }
    };
    let platform = Platform::of(&target);
    let name = format!("buktor-middleware-{}-{target}", env!("CARGO_PKG_VERSION"));
    let out = target_dir(&root).join("dist");
    let folder = out.join(&name);
    assemble(&root, &built, &folder, &platform)?;
    let archive = if platform.windows { pack_zip(&out, &name)? } else { pack_tar_gz(&out, &name)? };
    println!("{}", folder.display());
    println!("{}", archive.display());
    Ok(())
}

/// Adds the host and every plugin to `build` and runs it.
fn run_build(mut build: Command) -> anyhow::Result<()> {
    build.args(["-p", "buktor-middleware"]);
    for plugin in PLUGINS {
        build.args(["-p", &format!("his-plugin-{plugin}")]);
    }
    if !build.status().context("run cargo build")?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

/// File names and service files of the target's operating system.
struct Platform {
    windows: bool,
}

impl Platform {
    fn of(target: &str) -> Self {
        Self { windows: target.contains("windows") }
    }

    fn exe(&self) -> String {
        format!("buktor-middleware{}", if self.windows { ".exe" } else { "" })
    }

    fn plugin(&self, database: &str) -> String {
        if self.windows { format!("his_{database}.dll") } else { format!("libhis_{database}.so") }
    }

    /// PowerShell scripts go to Windows; the systemd unit, nginx and
    /// ddclient files to Linux.
    fn wants_service_file(&self, file: &Path) -> bool {
        (file.extension().and_then(|e| e.to_str()) == Some("ps1")) == self.windows
    }
}

/// Lays out the release folder, from scratch.
fn assemble(root: &Path, built: &Path, folder: &Path, platform: &Platform) -> anyhow::Result<()> {
    if folder.exists() {
        std::fs::remove_dir_all(folder).with_context(|| format!("remove {}", folder.display()))?;
    }
    std::fs::create_dir_all(folder.join("examples"))?;
    std::fs::create_dir_all(folder.join("service"))?;
    let copy = |from: &Path, to: PathBuf| {
        std::fs::copy(from, &to).with_context(|| format!("copy {} to {}", from.display(), to.display()))
    };
    copy(&built.join(platform.exe()), folder.join(platform.exe()))?;
    for plugin in PLUGINS {
        copy(&built.join(platform.plugin(plugin)), folder.join(platform.plugin(plugin)))?;
    }
    let dist = root.join("dist");
    for entry in std::fs::read_dir(dist.join("examples"))? {
        let path = entry?.path();
        let to = folder.join("examples").join(path.file_name().expect("a file"));
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            std::fs::write(&to, schema_beside(&text)).with_context(|| format!("write {}", to.display()))?;
        } else {
            copy(&path, to)?;
        }
    }
    copy(&dist.join(SCHEMA_FILE), folder.join("examples").join(SCHEMA_FILE))?;
    for entry in std::fs::read_dir(dist.join("service"))? {
        let path = entry?.path();
        if platform.wants_service_file(&path) {
            copy(&path, folder.join("service").join(path.file_name().expect("a file")))?;
        }
    }
    copy(&folder.join("examples/his-config.sqlite.json"), folder.join("his-config.json"))?;
    copy(&dist.join(SCHEMA_FILE), folder.join(SCHEMA_FILE))?;
    copy(&dist.join("README.operator.md"), folder.join("README.md"))?;
    Ok(())
}

/// `<out>/<name>.tar.gz` of the folder `<out>/<name>`.
fn pack_tar_gz(out: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let archive = out.join(format!("{name}.tar.gz"));
    let file = std::fs::File::create(&archive).with_context(|| format!("create {}", archive.display()))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    tar.append_dir_all(name, out.join(name))?;
    tar.into_inner()?.finish()?;
    Ok(archive)
}

/// `<out>/<name>.zip` of the folder `<out>/<name>`: what Explorer's
/// "Extract all" opens.
fn pack_zip(out: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let archive = out.join(format!("{name}.zip"));
    let file = std::fs::File::create(&archive).with_context(|| format!("create {}", archive.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    // Every entry dated now (UTC), not 1980: what Explorer shows.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip_now()?);
    let mut pending = vec![PathBuf::from(name)];
    while let Some(relative) = pending.pop() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(out.join(&relative))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            let inside = relative.join(path.file_name().expect("a name"));
            // Zip paths use `/`, whatever the machine.
            let entry = inside.iter().map(|part| part.to_string_lossy()).collect::<Vec<_>>().join("/");
            if path.is_dir() {
                zip.add_directory(entry, options)?;
                pending.push(inside);
            } else {
                zip.start_file(entry, options)?;
                std::io::copy(&mut std::fs::File::open(&path)?, &mut zip)?;
            }
        }
    }
    zip.finish()?;
    Ok(archive)
}

/// Now, in UTC, as a zip timestamp.
fn zip_now() -> anyhow::Result<zip::DateTime> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (secs_of_day / 3_600, secs_of_day / 60 % 60, secs_of_day % 60);
    zip::DateTime::from_date_and_time(year as u16, month as u8, day as u8, hour as u8, minute as u8, second as u8)
        .map_err(|_| anyhow::anyhow!("the clock says {year}, outside what a zip can date"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_configs_name_the_schema_beside_them() {
        let mut configs = 0;
        for entry in std::fs::read_dir(repo_root().join("dist/examples")).unwrap() {
            let path = entry.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with("his-config.") {
                continue;
            }
            let example = std::fs::read_to_string(&path).unwrap();
            let shipped = schema_beside(&example);
            assert!(shipped.contains("\"$schema\": \"./his-config.schema.json\""), "{}", path.display());
            assert_eq!(shipped.len(), example.len() - 1, "{}: only the path changed", path.display());
            configs += 1;
        }
        assert!(configs >= 5, "the examples of sqlite, mysql, sqlserver, oracle and postgres");
        assert_eq!(schema_beside(r#"{"event_type": "x"}"#), r#"{"event_type": "x"}"#);
    }

    #[test]
    fn the_release_folder_has_the_schema_beside_every_config() {
        let built = tempfile::tempdir().unwrap();
        let platform = Platform::of("x86_64-unknown-linux-gnu");
        for file in PLUGINS.iter().map(|p| platform.plugin(p)).chain([platform.exe()]) {
            std::fs::write(built.path().join(file), "").unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let folder = out.path().join("release");
        assemble(&repo_root(), built.path(), &folder, &platform).unwrap();
        let schema = std::fs::read(repo_root().join("dist").join(SCHEMA_FILE)).unwrap();
        for dir in [folder.clone(), folder.join("examples")] {
            assert_eq!(std::fs::read(dir.join(SCHEMA_FILE)).unwrap(), schema, "{}", dir.display());
        }
        let demo = std::fs::read_to_string(folder.join("his-config.json")).unwrap();
        assert!(demo.contains("\"$schema\": \"./his-config.schema.json\""), "{demo}");
        assert_eq!(demo, std::fs::read_to_string(folder.join("examples/his-config.sqlite.json")).unwrap());
    }
}
