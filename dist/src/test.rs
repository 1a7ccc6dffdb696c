//! `cargo xtask test [--strict] [-- CARGO-TEST-ARGS…]`: the README's test
//! command, doing what CI does.
//!
//! Plain `cargo test --workspace` passes on a machine without MariaDB,
//! PostgreSQL, Wine or the Windows release, with tests printing SKIPPED
//! among a thousand lines, and nothing at the end says so. This command
//! first gets what the tests need: the tools ([`tools`]), the database
//! servers and their test users ([`crate::services`]), the Windows release
//! when Wine is here; as root it installs what is missing, otherwise it
//! says what is missing and the tests that need it skip. Then it runs
//! `cargo test --workspace --no-fail-fast` (with the arguments after `--`
//! instead of `--workspace` when they choose packages), streaming its
//! output, and ends with a table ([`results`]): passed, failed and skipped
//! per test binary, each failure, each skip with its reason, and what was
//! not run here and why. Its last line is `N passed, N failed, N skipped`;
//! it exits unsuccessfully when a test failed or cargo did.
//!
//! `--strict` (CI) sets `CI=true` for the tests, which makes them fail
//! rather than skip for a missing prerequisite, and makes a missing
//! prerequisite fail this command before any test runs. Without it, the
//! caller's `CI` is honoured the same way.

mod results;
mod tools;

use std::{
    io::{BufRead, Write},
    path::Path,
    process::{Command, ExitStatus},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{machine::Apt, services::SERVICES};
use results::{Parser, Report, Skip, SkipLog};

const USAGE: &str = "usage: cargo xtask test [--strict] [-- CARGO-TEST-ARGS…]";

/// The Windows release's target.
const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// Something the tests need that this machine does not have, and why.
pub struct Missing {
    /// What it is (a tool, a server).
    what: String,
    /// The sentence the table shows.
    why: String,
    /// Tests that would fail without it rather than skip themselves; the
    /// run leaves them out.
    not_started: &'static [&'static str],
}

/// Tests that need a server no machine of ours can run: they skip
/// themselves unless the developer names one.
struct ByHand {
    what: &'static str,
    variable: &'static str,
    example: &'static str,
    test_file: &'static str,
}

const BY_HAND: [ByHand; 2] = [
    ByHand {
        what: "the SQL Server writer against a real SQL Server (tests/sqlserver.rs: against_a_real_sql_server)",
        variable: "HIS_TEST_SQLSERVER_URL",
        example: "sqlserver://user:password@host:port/database",
        test_file: "sqlserver",
    },
    ByHand {
        what: "the Oracle writer against a real Oracle, with Instant Client (tests/oracle.rs: against_a_real_oracle)",
        variable: "HIS_TEST_ORACLE_DSN",
        example: "user/password@//host:port/service",
        test_file: "oracle",
    },
];

/// After cargo has ended, how long to keep reading output that a process
/// it started (and left running) may still write.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// Runs the task with its arguments (those after `test`). An error ends
/// the output as its last line, even when `RUST_BACKTRACE` is set (which
/// would add anyhow's backtrace after it).
pub fn run(args: Vec<String>) -> anyhow::Result<()> {
    match run_task(args) {
        Ok(Outcome::Passed) => Ok(()),
        Ok(Outcome::Failed) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

/// How the run ended, once the table is printed.
enum Outcome {
    Passed,
    Failed,
}

fn run_task(args: Vec<String>) -> anyhow::Result<Outcome> {
    let mut args = args.into_iter();
    let mut strict_flag = false;
    let mut passed_on = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--strict" => strict_flag = true,
            "--" => passed_on.extend(args.by_ref()),
            other => bail!("unknown argument {other:?} (cargo test's arguments go after `--`); {USAGE}"),
        }
    }
    let strict = strict_flag || ci_is_set();
    let started = Instant::now();
    let step = |title: &str| println!("\n== cargo xtask test: {title} ({}s)", started.elapsed().as_secs());
    let root = crate::repo_root();
    let mut apt = Apt::if_root();
    if apt.is_none() {
        println!("not root: missing tools and servers are not installed; the tests that need them skip");
    }

    step("tools");
    let mut missing = tools::ensure(apt.as_mut());

    step("servers");
    let (mut env, missing_servers) = servers(apt.as_mut());
    missing.extend(missing_servers);
    let (cargo_args, test_args) = split_at_dashes(&passed_on);
    let build_windows = includes_windows_tests(cargo_args) && crate::machine::is_file(tools::WINE);
    let build_windows = match windows_toolchain(build_windows, apt.is_some()) {
        Ok(build) => build,
        Err(lacking) => {
            missing.push(lacking);
            false
        }
    };
    if strict && !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| format!("  - {}: {}", m.what, m.why)).collect();
        let because = if strict_flag { "--strict" } else { "CI is set (strict)" };
        bail!("{because}: every prerequisite must be here, and these are not:\n{}", list.join("\n"));
    }
    if build_windows {
        step(&format!("the Windows release: cargo xtask dist --target {WINDOWS}"));
        crate::dist(Some(WINDOWS)).with_context(|| {
            format!(
                "the Windows release did not build (cargo xtask dist --target {WINDOWS}); the Windows tests need it"
            )
        })?;
    }

    let not_started: Vec<Skip> = missing
        .iter()
        .flat_map(|m| m.not_started.iter().map(|test| Skip { test: test.to_string(), why: m.why.clone() }))
        .collect();
    let args = cargo_test_args(cargo_args, test_args, not_started.iter().map(|skip| skip.test.as_str()));
    step(&format!("cargo {}", args.join(" ")));
    if strict_flag {
        env.push(("CI", "true".into()));
    }
    let mut skip_log = SkipLog::create()?;
    let (binaries, status) = cargo_test(&root, &args, &env, &mut skip_log)?;
    if binaries.is_empty() && !status.success() {
        bail!(
            "cargo test failed ({status}) before any test ran: a compile error, or an argument cargo refused \
             (its output is above)"
        );
    }
    let mut report = Report {
        binaries,
        not_started,
        not_run: missing.iter().map(|m| m.why.clone()).chain(by_hand_notes()).collect(),
        cargo_failure: None,
    };
    if !status.success() && report.total().failed == 0 {
        report.cargo_failure = Some(format!("{status}, though no test failed: see its output above"));
    }
    step("results");
    print!("{}", report.render());
    std::io::stdout().flush()?;
    Ok(if report.total().failed > 0 { Outcome::Failed } else { Outcome::Passed })
}

/// Makes sure each needed server answers and has its test user; returns
/// the tests' environment variables naming them, and those missing. A URL
/// the caller set is the caller's choice: that server is left alone.
fn servers(mut apt: Option<&mut Apt>) -> (Vec<(&'static str, String)>, Vec<Missing>) {
    let (mut env, mut missing) = (Vec::new(), Vec::new());
    for service in SERVICES.iter().filter(|service| service.needed) {
        if std::env::var_os(service.url_variable).is_some_and(|url| !url.is_empty()) {
            println!("{} is set: the tests use that server", service.url_variable);
            continue;
        }
        match service.ensure(apt.as_deref_mut()).and_then(|()| service.make_test_user()) {
            Ok(()) => {
                println!("{}={}", service.url_variable, service.url);
                env.push((service.url_variable, service.url.to_string()));
            }
            Err(why) => missing.push(Missing { what: service.name.into(), why, not_started: &[] }),
        }
    }
    (env, missing)
}

/// Whether the Windows release can be built, when `wanted`: root installs
/// Debian's Rust and MinGW-w64 (the build does), anyone else needs them.
fn windows_toolchain(wanted: bool, root: bool) -> Result<bool, Missing> {
    if !wanted || root {
        return Ok(wanted);
    }
    let lacking = crate::windows::missing_for_build();
    if lacking.is_empty() {
        return Ok(true);
    }
    Err(Missing {
        what: "the Windows release".into(),
        why: format!(
            "the Windows release is not built: it needs {} (apt-get install), and not root to install them",
            lacking.join(" ")
        ),
        not_started: &[],
    })
}

/// `CI` as `buktor_tests::strict` reads it: set, and not empty, `false`
/// or `0`.
fn ci_is_set() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The arguments for cargo, and those after their own `--`, for the tests.
fn split_at_dashes(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|arg| arg == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[]),
    }
}

/// Runs cargo with `args`, its output streamed to ours as it comes and
/// read; returns the test binaries it ran and how it ended.
fn cargo_test(
    root: &Path,
    args: &[String],
    env: &[(&str, String)],
    skip_log: &mut SkipLog,
) -> anyhow::Result<(Vec<results::Binary>, ExitStatus)> {
    // One pipe for cargo's stdout and stderr, so that its lines, the
    // tests' results and their SKIPPED lines come in the order written.
    let (reader, writer) = std::io::pipe().context("make a pipe")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env("CARGO_TERM_COLOR", "never")
        .env("BUKTOR_SKIP_LOG", skip_log.path())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .context("run cargo test")?;
    // The command is gone, and with it this process's end of the pipe:
    // the reader sees its end when cargo and everything it started have
    // closed theirs.
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&line).and_then(|()| stdout.flush());
            let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string();
            if sender.send(text).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut parser = Parser::default();
    let mut ended: Option<(ExitStatus, Instant)> = None;
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => parser.line(&line, || skip_log.take_new()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if ended.is_none() {
            ended = child.try_wait()?.map(|status| (status, Instant::now()));
        }
        if let Some((_, at)) = ended
            && at.elapsed() > OUTPUT_GRACE
        {
            println!("(a process that cargo test started still holds its output open: not waiting for it)");
            break;
        }
    }
    let status = match ended {
        Some((status, _)) => status,
        None => child.wait()?,
    };
    Ok((parser.finish(skip_log.take_new()), status))
}

/// cargo's arguments: `test --workspace --no-fail-fast` (`--workspace`
/// only when the caller chose no packages: it would win over `-p`), the
/// caller's, and `--skip` for each test left out.
fn cargo_test_args<'a>(
    cargo_args: &[String],
    test_args: &[String],
    left_out: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let chooses_packages = cargo_args.iter().any(|arg| {
        ["-p", "--package", "--workspace", "--all", "--manifest-path"]
            .iter()
            .any(|flag| arg == flag || arg.starts_with(&format!("{flag}=")))
            || (arg.starts_with("-p") && arg.len() > 2)
    });
    let mut args = vec!["test".to_string()];
    if !chooses_packages {
        args.push("--workspace".into());
    }
    if !cargo_args.iter().any(|arg| arg == "--no-fail-fast") {
        args.push("--no-fail-fast".into());
    }
    args.extend(cargo_args.iter().cloned());
    let mut after = test_args.to_vec();
    for test in left_out {
        after.extend(["--skip".to_string(), test.to_string()]);
    }
    if !after.is_empty() {
        args.push("--".into());
        args.extend(after);
    }
    args
}

/// Whether cargo, given `cargo_args`, runs the Windows tests
/// (`buktor-tests`' `tests/windows_wine.rs`): when not, the Windows
/// release (minutes to build) is not built.
fn includes_windows_tests(cargo_args: &[String]) -> bool {
    let values = |flag: &str| -> Vec<&str> {
        let mut values = Vec::new();
        let mut args = cargo_args.iter();
        while let Some(arg) = args.next() {
            if arg == flag {
                values.extend(args.next().map(String::as_str));
            } else if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
                values.push(value);
            }
        }
        values
    };
    let tests = values("--test");
    if !tests.is_empty() {
        return tests.contains(&"windows_wine");
    }
    let only_other_targets = ["--lib", "--bins", "--bin", "--doc", "--examples", "--example", "--benches", "--bench"];
    if cargo_args.iter().any(|arg| only_other_targets.contains(&arg.as_str())) {
        return false;
    }
    let packages: Vec<&str> = [values("-p"), values("--package")].concat();
    packages.is_empty() || packages.contains(&"buktor-tests")
}

/// What no machine of ours tests, for the table's footer: the tests whose
/// server only a developer can name.
fn by_hand_notes() -> impl Iterator<Item = String> {
    BY_HAND.iter().filter(|by_hand| std::env::var_os(by_hand.variable).is_none_or(|v| v.is_empty())).map(
        |ByHand { what, variable, example, test_file }| {
            format!(
                "{what}: {variable} is not set (no such server runs on these machines); to run it: \
                 {variable}={example} cargo xtask test -- -p buktor-tests --test {test_file}"
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    fn cargo_args_for(passed_on: &[&str], left_out: &[&str]) -> Vec<String> {
        let passed_on = strings(passed_on);
        let (cargo_args, test_args) = split_at_dashes(&passed_on);
        cargo_test_args(cargo_args, test_args, left_out.iter().copied())
    }

    #[test]
    fn the_whole_workspace_unless_the_caller_chooses_packages() {
        assert_eq!(cargo_args_for(&[], &[]), ["test", "--workspace", "--no-fail-fast"]);
        assert_eq!(
            cargo_args_for(&["-p", "buktor-tests", "--test", "mysql"], &[]),
            ["test", "--no-fail-fast", "-p", "buktor-tests", "--test", "mysql"]
        );
        assert_eq!(cargo_args_for(&["--package=xtask"], &[]), ["test", "--no-fail-fast", "--package=xtask"]);
        assert_eq!(
            cargo_args_for(&["--release", "--", "--nocapture"], &["uses_curl"]),
            ["test", "--workspace", "--no-fail-fast", "--release", "--", "--nocapture", "--skip", "uses_curl"]
        );
    }

    #[test]
    fn the_windows_release_is_built_only_for_a_run_with_the_windows_tests() {
        let includes = |args: &[&str]| includes_windows_tests(&strings(args));
        assert!(includes(&[]));
        assert!(includes(&["-p", "buktor-tests"]));
        assert!(includes(&["--test", "windows_wine"]));
        assert!(includes(&["--test=windows_wine", "--test", "mysql"]));
        assert!(!includes(&["-p", "buktor-tests", "--test", "config_errors"]));
        assert!(!includes(&["-p", "xtask"]));
        assert!(!includes(&["--package=his-plugin-mysql"]));
        assert!(!includes(&["--doc"]));
    }
}
