//! What `cargo test` printed, read line by line as it streams past, and the
//! closing table made from it.
//!
//! cargo runs the test binaries one after the other and introduces each
//! (`     Running tests/mysql.rs (target/debug/deps/mysql-…)`,
//! `   Doc-tests his_plugin_api`); each ends with libtest's `test result:`
//! line, preceded by the names of its failing tests. A binary that dies
//! (a signal, an abort) has no result line: it counts as one failure.
//!
//! A skipped test returns early, and cargo counts it as passed. The tests
//! say so through `buktor_tests::skipped`, which also appends
//! `test<TAB>reason` to the file named by `BUKTOR_SKIP_LOG` ([`SkipLog`]).
//! Since cargo starts a binary only after the previous one has ended, the
//! lines added to that file before a binary's introduction belong to the
//! binary before it: the table takes them off its passed tests and lists
//! them with their reasons.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

/// A test that returned early, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The name the test gave (sometimes shortened with `…`).
    pub test: String,
    /// Its reason.
    pub why: String,
}

/// The file the tests append their skips to: a fresh one per run, removed
/// at the end.
pub struct SkipLog {
    path: PathBuf,
    /// Bytes already read.
    read: u64,
}

impl SkipLog {
    /// An empty log in the temporary folder.
    pub fn create() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let path = std::env::temp_dir().join(format!("buktor-skips-{}-{nanos}.tsv", std::process::id()));
        std::fs::write(&path, "")?;
        Ok(Self { path, read: 0 })
    }

    /// Where it is, for `BUKTOR_SKIP_LOG`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The skips appended since the previous call (whole lines only: one
    /// being written is read next time).
    pub fn take_new(&mut self) -> Vec<Skip> {
        let mut text = String::new();
        let read = std::fs::File::open(&self.path)
            .and_then(|mut file| file.seek(SeekFrom::Start(self.read)).and_then(|_| file.read_to_string(&mut text)));
        if read.is_err() {
            return Vec::new();
        }
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        self.read += complete as u64;
        text[..complete]
            .lines()
            .map(|line| {
                let (test, why) = line.split_once('\t').unwrap_or((line, "no reason given"));
                Skip { test: test.into(), why: why.into() }
            })
            .collect()
    }
}

impl Drop for SkipLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// libtest's counts for one binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
}

/// One test binary's run.
#[derive(Debug, Default)]
pub struct Binary {
    /// `mysql (tests/mysql.rs)`, `his_plugin_api (src/lib.rs)`,
    /// `his_plugin_api (doc-tests)`.
    pub name: String,
    /// Its result line; `None` when it ended without one.
    pub counts: Option<Counts>,
    /// Its failing tests, by name.
    pub failures: Vec<String>,
    /// Its skipped tests.
    pub skips: Vec<Skip>,
}

/// Reads cargo test's output line by line.
#[derive(Default)]
pub struct Parser {
    binaries: Vec<Binary>,
    /// The indented names after the latest `failures:` line, while they
    /// last; libtest lists the failing tests so just before its result.
    listing: Option<Vec<String>>,
    /// The latest non-empty such list of the current binary.
    listed: Vec<String>,
    /// `test NAME ... FAILED` lines of the current binary, in case the list
    /// is missing.
    failed_lines: Vec<String>,
}

impl Parser {
    /// Takes one line (without its line end). `new_skips` gives the skips
    /// logged since it was last called; it is called when a binary is
    /// introduced, which is when the previous one has ended.
    pub fn line(&mut self, line: &str, new_skips: impl FnOnce() -> Vec<Skip>) {
        if let Some(name) = introduction(line) {
            self.attribute(new_skips());
            self.binaries.push(Binary { name, ..Binary::default() });
            (self.listing, self.listed, self.failed_lines) = (None, Vec::new(), Vec::new());
            return;
        }
        if line == "failures:" {
            self.listing = Some(Vec::new());
            return;
        }
        if let Some(listing) = &mut self.listing {
            match line.strip_prefix("    ") {
                Some(name) if !name.starts_with(' ') && !name.is_empty() => {
                    listing.push(name.to_string());
                    return;
                }
                _ => {
                    let names = std::mem::take(listing);
                    if !names.is_empty() {
                        self.listed = names;
                    }
                    self.listing = None;
                }
            }
        }
        if let Some(name) = line.strip_prefix("test ").and_then(|rest| rest.strip_suffix(" ... FAILED")) {
            self.failed_lines.push(name.to_string());
        } else if let Some(counts) = result_line(line)
            && let Some(binary) = self.binaries.last_mut()
        {
            binary.counts = Some(counts);
            let listed = std::mem::take(&mut self.listed);
            binary.failures = if listed.is_empty() { std::mem::take(&mut self.failed_lines) } else { listed };
        }
    }

    /// The binaries, once cargo has ended; `new_skips` are the skips logged
    /// since the last binary was introduced.
    pub fn finish(mut self, new_skips: Vec<Skip>) -> Vec<Binary> {
        self.attribute(new_skips);
        self.binaries
    }

    /// Gives `skips` to the current binary.
    fn attribute(&mut self, skips: Vec<Skip>) {
        if skips.is_empty() {
            return;
        }
        if self.binaries.is_empty() {
            self.binaries.push(Binary { name: "(before any test binary)".into(), ..Binary::default() });
        }
        self.binaries.last_mut().expect("one at least").skips.extend(skips);
    }
}

/// The binary that cargo introduces on `line`, if it does.
fn introduction(line: &str) -> Option<String> {
    if let Some(krate) = line.strip_prefix("   Doc-tests ") {
        return Some(format!("{krate} (doc-tests)"));
    }
    // `unittests src/lib.rs (target/debug/deps/his_plugin_api-0123abcd)`
    let (source, executable) = line.strip_prefix("     Running ")?.strip_suffix(')')?.rsplit_once(" (")?;
    let source = source.strip_prefix("unittests ").unwrap_or(source);
    let stem = Path::new(executable).file_stem()?.to_string_lossy().into_owned();
    let name = stem.rsplit_once('-').map_or(stem.as_str(), |(name, _hash)| name);
    Some(format!("{name} ({source})"))
}

/// `test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; …`
fn result_line(line: &str) -> Option<Counts> {
    let (_, counts) = line.strip_prefix("test result: ")?.split_once(". ")?;
    let mut result = Counts::default();
    for part in counts.split(';') {
        let (number, label) = part.trim().split_once(' ')?;
        let field = match label {
            "passed" => &mut result.passed,
            "failed" => &mut result.failed,
            "ignored" => &mut result.ignored,
            _ => continue,
        };
        *field = number.parse().ok()?;
    }
    Some(result)
}

/// One row of the table: a binary's tests as they really went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Row {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub ignored: usize,
}

impl Row {
    /// The binary's counts, with its skips taken off the passed tests (a
    /// skipped test returned early: cargo counted it as passed). A binary
    /// without a result counts as one failure.
    pub fn of(binary: &Binary) -> Self {
        let skipped = binary.skips.len();
        match binary.counts {
            Some(counts) => Self {
                passed: counts.passed.saturating_sub(skipped),
                failed: counts.failed,
                skipped,
                ignored: counts.ignored,
            },
            None => Self { failed: 1, skipped, ..Self::default() },
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            skipped: self.skipped + other.skipped,
            ignored: self.ignored + other.ignored,
        }
    }
}

/// Everything the closing table says.
pub struct Report {
    pub binaries: Vec<Binary>,
    /// Tests `cargo xtask test` left out of the run (`--skip`), with why.
    pub not_started: Vec<Skip>,
    /// What this run did not test, and why: missing prerequisites, tests
    /// only run by hand.
    pub not_run: Vec<String>,
    /// cargo test's failure when no test explains it.
    pub cargo_failure: Option<String>,
}

impl Report {
    /// The sums over every binary, the tests left out and cargo's own
    /// failure.
    pub fn total(&self) -> Row {
        let rows = self.binaries.iter().map(Row::of);
        rows.fold(Row::default(), Row::add).add(Row {
            skipped: self.not_started.len(),
            failed: usize::from(self.cargo_failure.is_some()),
            ..Row::default()
        })
    }

    /// The table, ending with the line `N passed, N failed, N skipped`.
    pub fn render(&self) -> String {
        let mut rows: Vec<(String, Row)> = Vec::new();
        let mut empty = Vec::new();
        for binary in &self.binaries {
            let row = Row::of(binary);
            if row == Row::default() {
                empty.push(binary.name.as_str());
            } else {
                rows.push((binary.name.clone(), row));
            }
        }
        if !self.not_started.is_empty() {
            rows.push((
                "(left out by cargo xtask test)".into(),
                Row { skipped: self.not_started.len(), ..Row::default() },
            ));
        }
        if let Some(failure) = &self.cargo_failure {
            rows.push((format!("(cargo test: {failure})"), Row { failed: 1, ..Row::default() }));
        }
        let total = self.total();
        let width = rows.iter().map(|(name, _)| name.chars().count()).chain([11]).max().unwrap_or(0);
        let mut out = String::new();
        let mut line = |name: &str, cells: [&dyn std::fmt::Display; 4]| {
            let [a, b, c, d] = cells;
            out.push_str(&format!("{name:<width$}  {a:>7}  {b:>7}  {c:>7}  {d:>7}\n"));
        };
        line("test binary", [&"passed", &"failed", &"skipped", &"ignored"]);
        for (name, row) in &rows {
            line(name, [&row.passed, &row.failed, &row.skipped, &row.ignored]);
        }
        line("total", [&total.passed, &total.failed, &total.skipped, &total.ignored]);
        if !empty.is_empty() {
            out.push_str(&format!("without tests ({}): {}\n", empty.len(), empty.join(", ")));
        }
        let failures: Vec<String> = self.binaries.iter().flat_map(failures).collect();
        if !failures.is_empty() {
            out.push_str("\nfailed:\n");
            for failure in failures {
                out.push_str(&format!("  {failure}\n"));
            }
        }
        let skips = self
            .binaries
            .iter()
            .flat_map(|binary| binary.skips.iter().map(|skip| (binary.name.as_str(), skip)))
            .chain(self.not_started.iter().map(|skip| ("left out", skip)));
        let mut by_reason: Vec<(&str, Vec<String>)> = Vec::new();
        for (binary, skip) in skips {
            let test = format!("{binary}: {}", skip.test);
            match by_reason.iter_mut().find(|(why, _)| *why == skip.why) {
                Some((_, tests)) => tests.push(test),
                None => by_reason.push((&skip.why, vec![test])),
            }
        }
        if !by_reason.is_empty() {
            out.push_str("\nskipped, by reason:\n");
            for (why, tests) in by_reason {
                out.push_str(&format!("  {why}\n"));
                for test in tests {
                    out.push_str(&format!("    {test}\n"));
                }
            }
        }
        if !self.not_run.is_empty() {
            out.push_str("\nnot run here, and why:\n");
            for note in &self.not_run {
                out.push_str(&format!("  - {note}\n"));
            }
        }
        if total.ignored > 0 {
            out.push_str(&format!(
                "\n{} ignored: #[ignore] tests (run by hand: cargo test -- --ignored) and doc examples marked ignore\n",
                total.ignored
            ));
        }
        out.push_str(&format!("\n{} passed, {} failed, {} skipped\n", total.passed, total.failed, total.skipped));
        out
    }
}

/// The failures of `binary`, one line each.
fn failures(binary: &Binary) -> Vec<String> {
    let name = &binary.name;
    match binary.counts {
        None => vec![format!("{name}: ended without a result (a crash? see its output above)")],
        Some(counts) if binary.failures.len() < counts.failed => {
            vec![format!("{name}: {} failed tests (see the output above)", counts.failed)]
        }
        Some(_) => binary.failures.iter().map(|test| format!("{name}: {test}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test --no-fail-fast 2>&1` of a small crate (CARGO_TERM_COLOR=never,
    /// Rust 1.95): a library with a passing, a skipped (as
    /// `buktor_tests::skipped` does it), a failing and an ignored test; a
    /// test binary that aborts; one without tests; a doc-test.
    const CAPTURED: &str = include_str!("../../testdata/cargo-test-no-fail-fast.txt");
    /// The skip log that run wrote.
    const CAPTURED_SKIPS: &str = include_str!("../../testdata/cargo-test-no-fail-fast.skips.tsv");

    /// Replays the capture through a real skip log: the test's line is
    /// appended when its `SKIPPED` line goes past, as it was.
    fn replay() -> Vec<Binary> {
        let mut log = SkipLog::create().unwrap();
        let mut parser = Parser::default();
        for line in CAPTURED.lines() {
            if line.starts_with("SKIPPED ") {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
                file.write_all(CAPTURED_SKIPS.as_bytes()).unwrap();
            }
            parser.line(line, || log.take_new());
        }
        parser.finish(log.take_new())
    }

    #[test]
    fn each_binary_gets_its_counts_failures_and_skips() {
        let binaries = replay();
        let names: Vec<&str> = binaries.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["demo (src/lib.rs)", "crash (tests/crash.rs)", "empty (tests/empty.rs)", "demo (doc-tests)"]
        );

        let lib = &binaries[0];
        assert_eq!(lib.counts, Some(Counts { passed: 2, failed: 1, ignored: 1 }));
        // Not `not_a_test_name`, which the failing test printed under a
        // `failures:` line of its own.
        assert_eq!(lib.failures, ["tests::fails"]);
        assert_eq!(lib.skips, [Skip { test: "needs_a_server".into(), why: "HIS_TEST_MYSQL_URL is not set".into() }]);

        assert_eq!(binaries[1].counts, None, "the aborted binary has no result");
        assert_eq!(binaries[2].counts, Some(Counts::default()));
        assert_eq!(binaries[3].counts, Some(Counts { passed: 1, ..Counts::default() }));
        assert!(binaries[1..].iter().all(|b| b.skips.is_empty() && b.failures.is_empty()));
    }

    #[test]
    fn skips_come_off_the_passed_tests_and_a_binary_without_result_is_a_failure() {
        let binaries = replay();
        let rows: Vec<Row> = binaries.iter().map(Row::of).collect();
        assert_eq!(rows[0], Row { passed: 1, failed: 1, skipped: 1, ignored: 1 });
        assert_eq!(rows[1], Row { failed: 1, ..Row::default() });
        assert_eq!(rows[2], Row::default());
        assert_eq!(rows[3], Row { passed: 1, ..Row::default() });
        let report = Report { binaries, not_started: Vec::new(), not_run: Vec::new(), cargo_failure: None };
        assert_eq!(report.total(), Row { passed: 2, failed: 2, skipped: 1, ignored: 1 });
    }

    #[test]
    fn the_table_lists_failures_and_skips_and_ends_with_the_totals() {
        let report = Report {
            binaries: replay(),
            not_started: vec![Skip { test: "uses_curl".into(), why: "curl is missing".into() }],
            not_run: vec!["a real SQL Server: HIS_TEST_SQLSERVER_URL is not set".into()],
            cargo_failure: None,
        };
        let table = report.render();
        assert_eq!(
            table,
            "\
test binary                      passed   failed  skipped  ignored
demo (src/lib.rs)                     1        1        1        1
crash (tests/crash.rs)                0        1        0        0
demo (doc-tests)                      1        0        0        0
(left out by cargo xtask test)        0        0        1        0
total                                 2        2        2        1
without tests (1): empty (tests/empty.rs)

failed:
  demo (src/lib.rs): tests::fails
  crash (tests/crash.rs): ended without a result (a crash? see its output above)

skipped, by reason:
  HIS_TEST_MYSQL_URL is not set
    demo (src/lib.rs): needs_a_server
  curl is missing
    left out: uses_curl

not run here, and why:
  - a real SQL Server: HIS_TEST_SQLSERVER_URL is not set

1 ignored: #[ignore] tests (run by hand: cargo test -- --ignored) and doc examples marked ignore

2 passed, 2 failed, 2 skipped
"
        );
    }

    #[test]
    fn a_failure_of_cargo_that_no_test_explains_is_counted() {
        let mut parser = Parser::default();
        for line in [
            "     Running tests/a.rs (target/debug/deps/a-0011)",
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        ] {
            parser.line(line, Vec::new);
        }
        let report = Report {
            binaries: parser.finish(Vec::new()),
            not_started: Vec::new(),
            not_run: Vec::new(),
            cargo_failure: Some("exit status: 101".into()),
        };
        assert_eq!(report.total(), Row { passed: 3, failed: 1, ..Row::default() });
        assert!(report.render().ends_with("\n3 passed, 1 failed, 0 skipped\n"), "{}", report.render());
    }

    #[test]
    fn a_skip_log_line_still_being_written_is_read_next_time() {
        use std::io::Write;
        let mut log = SkipLog::create().unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
        file.write_all(b"one\tbecause\ntwo\tbeca").unwrap();
        assert_eq!(log.take_new(), [Skip { test: "one".into(), why: "because".into() }]);
        file.write_all(b"use\n").unwrap();
        assert_eq!(log.take_new(), [Skip { test: "two".into(), why: "because".into() }]);
        assert_eq!(log.take_new(), []);
        let path = log.path().to_path_buf();
        drop(log);
        assert!(!path.exists(), "removed at the end");
    }
}
