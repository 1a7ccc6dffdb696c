//! Counts a process's fsync and fdatasync calls while it is under load,
//! with `perf stat` on the kernel's syscall tracepoints: the real number of
//! disk flushes, whatever SQLite decides to do.
//!
//! perf comes from Debian's `linux-perf`, installed with apt-get when it is
//! missing. Where it cannot count (no tracepoints in a container, say), the
//! figure is reported as unavailable, with why.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

const EVENTS: &str = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync";

/// A `perf stat` attached to one process.
pub struct Fsyncs {
    perf: Child,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fsyncs {
    /// Starts counting for process `pid`, or says why it cannot.
    pub fn attach(pid: u32) -> Result<Self, String> {
        ensure_perf()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = dir.path().join("perf.csv");
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e", EVENTS, "-p", &pid.to_string(), "-o"])
            .arg(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        // perf attaches to every thread of the process before it counts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { perf, output, _dir: dir })
    }

    /// Stops counting and returns the number of flushes.
    pub fn stop(mut self) -> Result<u64, String> {
        let sent = Command::new("kill").args(["-INT", &self.perf.id().to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            return Err("cannot interrupt perf".into());
        }
        let _ = self.perf.wait();
        let text = std::fs::read_to_string(&self.output).map_err(|e| format!("perf wrote nothing: {e}"))?;
        let counts: Vec<u64> = text
            .lines()
            .filter(|line| line.contains("sys_enter_f"))
            .map(|line| line.split(',').next().unwrap_or_default().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("perf could not count syscalls: {}", text.trim().replace('\n', "; ")))?;
        if counts.len() != 2 {
            return Err(format!("perf printed no counts: {}", text.trim()));
        }
        Ok(counts.iter().sum())
    }
}

/// perf on the PATH, installed with apt-get if it is missing.
fn ensure_perf() -> Result<(), String> {
    let works = || Command::new("perf").arg("--version").output().is_ok_and(|o| o.status.success());
    if works() {
        return Ok(());
    }
    println!("  installing linux-perf with apt-get, to count fsyncs");
    let _ = Command::new("apt-get").args(["install", "-y", "-qq", "linux-perf"]).status();
    if works() { Ok(()) } else { Err("perf is not installed (apt-get install linux-perf)".into()) }
}
