//! The programs and Python libraries some tests run, besides cargo.
//!
//! Each tool says which tests need it. Root installs what is missing
//! (apt-get, pip), as `.ci/run` did; elsewhere a missing tool is a
//! [`Missing`] prerequisite: the tests that need it are skipped with its
//! reason (most skip themselves; [`Tool::not_started`] names those that
//! would fail instead, which `cargo xtask test` leaves out with `--skip`).

use std::process::Command;

use super::Missing;
use crate::machine::{Apt, is_file, on_path, run};

/// A program from a Debian package.
struct Tool {
    /// The Debian package.
    package: &'static str,
    /// Whether it is here.
    present: fn() -> bool,
    /// What needs it, for the closing table.
    needed_by: &'static str,
    /// Whether a test needs it: without, a tool that root would install
    /// is only mentioned, never a reason to skip or fail.
    tests_need_it: bool,
    /// Tests that would fail without it rather than skip themselves: left
    /// out of the run.
    not_started: &'static [&'static str],
}

/// Debian's 64-bit Wine loader, which the Windows tests run the .exe with.
pub const WINE: &str = "/usr/lib/wine/wine64";

const TOOLS: [Tool; 5] = [
    Tool {
        package: "curl",
        present: || on_path("curl").is_some(),
        needed_by: "the README's curl commands, run as written (tests/pipeline.rs)",
        tests_need_it: true,
        not_started: &["the_readme_curl_commands_work_as_written"],
    },
    Tool {
        package: "gcc",
        present: || on_path("cc").is_some(),
        needed_by: "the bundled SQLite (built with cc) and linking",
        tests_need_it: true,
        not_started: &[],
    },
    Tool {
        package: "sqlite3",
        present: || on_path("sqlite3").is_some(),
        needed_by: "the README's examples (no test)",
        tests_need_it: false,
        not_started: &[],
    },
    Tool {
        package: "unzip",
        present: || on_path("unzip").is_some(),
        needed_by: "the Windows tests, which unpack the release .zip",
        tests_need_it: true,
        not_started: &[],
    },
    Tool {
        package: "wine64",
        present: || is_file(WINE),
        needed_by: "the Windows tests, which run the .exe under Wine (and the Windows release is not built without it)",
        tests_need_it: true,
        not_started: &[],
    },
];

/// The official Standard Webhooks library signs requests in the auth
/// tests; the Prometheus client library parses /metrics in the
/// observability tests. Both tests skip themselves without them.
const PYTHON_PACKAGES: [&str; 2] = ["standardwebhooks", "prometheus_client"];

/// Installs missing tools with `apt` (root), or returns them as missing.
pub fn ensure(mut apt: Option<&mut Apt>) -> Vec<Missing> {
    let mut missing = Vec::new();
    let absent: Vec<&Tool> = TOOLS.iter().filter(|tool| !(tool.present)()).collect();
    if !absent.is_empty() {
        let packages: Vec<&str> = absent.iter().map(|tool| tool.package).collect();
        let failure = match apt.as_deref_mut() {
            Some(apt) => apt.install(&packages).err().map(|e| format!("apt-get install failed: {e:#}")),
            None => Some("not root to install it".to_string()),
        };
        for tool in absent.into_iter().filter(|tool| !(tool.present)()) {
            let why = failure.clone().unwrap_or_else(|| "apt-get installed it, yet it is not there".into());
            let why = format!(
                "{} is missing ({why}; apt-get install {}): for {}",
                tool.package, tool.package, tool.needed_by
            );
            if tool.tests_need_it {
                missing.push(Missing { what: tool.package.into(), why, not_started: tool.not_started });
            } else {
                println!("{why}");
            }
        }
    }
    if !python_packages_present() {
        let install = format!("python3 -m pip install {}", PYTHON_PACKAGES.join(" "));
        let failure = match apt {
            Some(_) => run(Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--root-user-action=ignore"])
                .args(PYTHON_PACKAGES))
            .err()
            .map(|e| format!("{install} failed: {e:#}")),
            None => Some(format!("not root to install them; {install}")),
        };
        if !python_packages_present() {
            missing.push(Missing {
                what: "python3 packages".into(),
                why: format!(
                    "the Python packages {} are missing ({}): for the auth and observability tests",
                    PYTHON_PACKAGES.join(" and "),
                    failure.unwrap_or_else(|| "pip installed them, yet python3 cannot import them".into())
                ),
                not_started: &[],
            });
        }
    }
    missing
}

fn python_packages_present() -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {}", PYTHON_PACKAGES.join(", "))])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
