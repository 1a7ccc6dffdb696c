//! What the suite prints: the machine it ran on, and one table of every
//! figure beside its ceiling or target, in Markdown for BENCHMARKS.md.

use std::{path::Path, process::Command};

/// The table, filled as scenarios run.
#[derive(Default)]
pub struct Report {
    rows: Vec<[String; 5]>,
}

impl Report {
    /// A figure measured beside a ceiling: the ratio, and whether it
    /// reaches `target` (a fraction of the ceiling), if there is one.
    pub fn versus(&mut self, figure: &str, value: f64, ceiling: f64, unit: &str, target: Option<f64>) {
        let ratio = value / ceiling;
        let verdict = target.map_or(String::new(), |t| {
            format!("≥ {:.0}%: {}", t * 100.0, if ratio >= t { "met" } else { "**missed**" })
        });
        self.line(
            figure,
            format!("{} {unit}", thousands(value)),
            format!("{} {unit}", thousands(ceiling)),
            ratio,
            verdict,
        );
    }

    /// A figure without a ceiling; `target` is its limit and whether it is
    /// met, if it has one.
    pub fn figure(&mut self, figure: &str, value: String, target: Option<(&str, bool)>) {
        let verdict =
            target.map_or(String::new(), |(limit, met)| format!("{limit}: {}", if met { "met" } else { "**missed**" }));
        self.push([figure.to_string(), value, String::new(), String::new(), verdict]);
        println!("  {figure}: {}", self.rows.last().expect("just pushed")[1]);
    }

    fn line(&mut self, figure: &str, value: String, ceiling: String, ratio: f64, verdict: String) {
        println!("  {figure}: {value} (ceiling {ceiling}, {:.0}%)", ratio * 100.0);
        self.push([figure.to_string(), value, ceiling, format!("**{:.0}%**", ratio * 100.0), verdict]);
    }

    fn push(&mut self, row: [String; 5]) {
        self.rows.push(row);
    }

    /// The table, in Markdown.
    pub fn print(&self) {
        println!("\n| figure | middleware | ceiling | ratio | target |\n|---|---|---|---|---|");
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let (sign, digits) = digits.strip_prefix('-').map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    format!("{sign}{out}")
}

/// Cores, CPU, memory and the file system under `dir`, in one paragraph.
pub fn machine(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    let disk = output("findmnt", &["-no", "FSTYPE,SOURCE", "-T", &dir.display().to_string()]);
    let kernel = output("uname", &["-r"]);
    let mariadb = output("mariadb", &["--version"]);
    format!(
        "{cores} cores ({model}), {:.1} GiB memory, file system {disk} under {}, Linux {kernel}; {mariadb}",
        memory_kib as f64 / 1024.0 / 1024.0,
        dir.display()
    )
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().ok().filter(|o| o.status.success()).map_or_else(
        || format!("({program}: unavailable)"),
        |o| String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" "),
    )
}

/// A process's resident memory now and at its peak, in MiB, from /proc.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| -> f64 {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"));
        kib / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}
