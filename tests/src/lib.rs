//! Test support for driving the real `buktor-middleware` binary.
//!
//! - [`artifacts`] builds the binary, the plugins and the test fixture
//!   plugins once per test process (with the same cargo and profile as the
//!   tests), so `cargo test` alone always tests fresh code.
//! - [`Setup`] makes a temporary folder with a his-config.json built from
//!   the repository's own, on a free port (`127.0.0.1:0`).
//! - [`Middleware`] runs the binary, reads the address from its startup
//!   line, and speaks plain HTTP/1.1 to it ([`http`]).
//! - [`wait_for`] polls a condition with a deadline, for things that
//!   happen asynchronously (rows reaching the HIS).
//! - [`mysql`] gives each test a fresh database on the real MySQL/MariaDB
//!   server named by `HIS_TEST_MYSQL_URL`; [`proxy`] stands between the
//!   middleware and that server, to cut the connection.
//! - [`seed`]: the original documentation's curl events and their rows.
//! - [`audit`]: triggers that keep every state an HIS row went through.
//! - [`python`] runs the official Python library of a format (Standard
//!   Webhooks, Prometheus) against the middleware.
//! - [`signing`]: Standard Webhooks signatures for signed requests.
//! - [`wine`]: the Windows release `.zip`, unpacked and run under Wine.

pub mod actions;
pub mod audit;
pub mod http;
pub mod locks;
pub mod mysql;
pub mod postgres;
pub mod proxy;
pub mod seed;
pub mod signing;
pub mod tds;
pub mod wine;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

pub use http::Response;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

/// The repository's his-config.json: the seed's mapping, on SQLite.
pub fn repository_config() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("his-config.json")).expect("read his-config.json");
    serde_json::from_str(&text).expect("his-config.json is JSON")
}

/// Built files: the binary and the plugin libraries, side by side.
#[derive(Debug)]
pub struct Artifacts {
    /// `target/<profile>`: the binary and every plugin library.
    pub dir: PathBuf,
    /// The `buktor-middleware` executable.
    pub binary: PathBuf,
}

impl Artifacts {
    /// The library for plugin `name` (`libhis_<name>.so` on Linux).
    pub fn plugin(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}his_{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
    }
}

/// Builds the host, the plugins and the fixtures once, then returns where
/// they are. Panics with cargo's output if the build fails.
pub fn artifacts() -> &'static Artifacts {
    static BUILT: OnceLock<Artifacts> = OnceLock::new();
    BUILT.get_or_init(|| {
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
        let target = dir.parent().expect("target/");
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(repo_root()).args(["build", "--quiet", "--target-dir"]).arg(target);
        for package in [
            "buktor-middleware",
            "his-plugin-sqlite",
            "his-plugin-mysql",
            "his-plugin-sqlserver",
            "his-plugin-oracle",
            "his-plugin-postgres",
            "his-plugin-template",
            "fixture-panicky",
            "fixture-wrong-layout",
            "fixture-wrong-version",
            "fixture-not-a-plugin",
            "fixture-broken",
        ] {
            command.args(["-p", package]);
        }
        if release {
            command.arg("--release");
        }
        let output = command.output().expect("run cargo build");
        assert!(output.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&output.stderr));
        let binary = dir.join(format!("buktor-middleware{}", std::env::consts::EXE_SUFFIX));
        Artifacts { dir, binary }
    })
}

/// The admin token [`Setup::with_admin_token`] sets.
pub const ADMIN_TOKEN: &str = "an-admin-token-for-the-tests";

/// A temporary folder with a config file for one test.
pub struct Setup {
    /// The folder; removed when dropped.
    pub dir: tempfile::TempDir,
    /// The config that [`Setup::write_config`] writes.
    pub config: serde_json::Value,
    /// Environment variables the middleware starts with.
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// The repository's his-config.json, listening on a free port, with the
    /// HIS database and the journal in a fresh temporary folder.
    pub fn new() -> Self {
        let mut config = repository_config();
        config["server"] = serde_json::json!({ "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0" });
        config["database"]["path"] = "his.db".into();
        config["journal"] = serde_json::json!({ "path": "journal.db" });
        // Short delays, so retries happen within a test's patience.
        config["sync"] = serde_json::json!({ "retry_initial_delay_ms": 100, "retry_max_delay_secs": 1 });
        Self { dir: tempfile::tempdir().expect("temp dir"), config, env: Vec::new() }
    }

    /// Turns on `server.admin_token` ([`ADMIN_TOKEN`]): the `/admin`
    /// routes, and `/ready`'s reasons in full ([`Middleware::ready_in_full`]).
    pub fn with_admin_token(mut self) -> Self {
        self.config["server"]["admin_token"] = ADMIN_TOKEN.into();
        self
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes [`Setup::config`] as his-config.json and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let path = self.path("his-config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.config).unwrap()).expect("write config");
        path
    }

    /// Writes the config and starts the middleware; panics if it does not
    /// come up.
    pub fn start(&self) -> Middleware {
        Middleware::start_with_env(&self.write_config(), &self.env)
            .unwrap_or_else(|e| panic!("middleware did not start: {e}"))
    }

    /// Writes the config, runs the middleware, and expects it to exit
    /// before it listens. Returns its exit status and stderr.
    pub fn run_expecting_exit(&self) -> (ExitStatus, String) {
        let config = self.write_config();
        match Middleware::start_with_env(&config, &self.env) {
            Ok(mut running) => {
                running.kill();
                panic!("expected the middleware to refuse to start, but it listens:\n{}", running.logs())
            }
            Err(StartError::Exited { status, stderr }) => (status, stderr),
            Err(e) => panic!("{e}"),
        }
    }

    /// Opens the HIS SQLite database the sqlite plugin writes.
    pub fn his(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("his.db")).expect("open HIS database")
    }

    /// Opens the journal.
    pub fn journal(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("journal.db")).expect("open journal")
    }

    /// `[status, count]` of the journal's events, by status.
    pub fn journal_statuses(&self) -> Vec<Vec<serde_json::Value>> {
        query(&self.journal(), "SELECT status, COUNT(*) FROM events GROUP BY status ORDER BY status")
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the middleware did not come up.
#[derive(Debug)]
pub enum StartError {
    /// It exited before it listened.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Everything it wrote to stderr.
        stderr: String,
    },
    /// It neither listened nor exited in time.
    Timeout(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited { status, stderr } => write!(f, "exited with {status}:\n{stderr}"),
            StartError::Timeout(logs) => write!(f, "no startup line within the deadline:\n{logs}"),
        }
    }
}

/// A running `buktor-middleware` process.
pub struct Middleware {
    child: Child,
    /// `127.0.0.1:PORT`, from the startup line: intake.
    pub address: String,
    /// Where the operator's routes (`/ready`, `/metrics`, `/admin`)
    /// listen, from their startup line.
    pub admin_address: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Middleware {
    /// Starts the binary with `--config config` and waits for its startup
    /// line (`listening on http[s]://ADDRESS/...`).
    pub fn start(config: &Path) -> Result<Self, StartError> {
        Self::start_with_env(config, &[])
    }

    /// [`Middleware::start`], with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(String, String)]) -> Result<Self, StartError> {
        let mut command = Command::new(&artifacts().binary);
        command.arg("--config").arg(config).envs(env.iter().map(|(k, v)| (k, v)));
        Self::start_command(command)
    }

    /// Starts `command` (any build of the middleware: the release archive's,
    /// say) and waits for its startup line, as [`Middleware::start`] does.
    /// Logs at `info` unless `command` sets `BUKTOR_LOG` itself.
    pub fn start_command(mut command: Command) -> Result<Self, StartError> {
        if !command.get_envs().any(|(name, _)| name == "BUKTOR_LOG") {
            command.env("BUKTOR_LOG", "info");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn buktor-middleware");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let (admin_tx, admin_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let after = |marker: &str| {
                    line.split(marker)
                        .nth(1)
                        .and_then(|rest| rest.split_once("://"))
                        .map(|(_, rest)| rest.split(['/', ' ']).next().unwrap_or_default().to_string())
                };
                let (address, admin) =
                    (after("listening on "), after("operator's routes (/ready, /metrics, /admin) on "));
                // Store the line before announcing the address, so that
                // logs() always holds the startup line.
                sink.lock().unwrap().push(line);
                if let Some(admin) = admin {
                    let _ = admin_tx.send(admin);
                }
                if let Some(address) = address {
                    let _ = address_tx.send(address);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(address) = address_rx.recv_timeout(Duration::from_millis(20)) {
                // The operator's line comes right after intake's.
                let admin_address = admin_rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                return Ok(Self { child, address, admin_address, logs });
            }
            if let Some(status) = child.try_wait().expect("poll child") {
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                let stderr = logs.lock().unwrap().join("\n");
                return Err(StartError::Exited { status, stderr });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Timeout(logs.lock().unwrap().join("\n")));
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `POST /receive-event` with a JSON body, as the seed's curl does.
    pub fn post_event(&self, body: &str) -> Response {
        self.request("POST", "/receive-event", &[("Content-Type", "application/json")], body.as_bytes())
    }

    /// Posts `count` events from `senders` threads at once, the body of
    /// event `n` (0-based) being `body(n)`; asserts each is answered 200 and
    /// returns the journal ids, in no particular order.
    pub fn post_concurrently(&self, senders: usize, count: usize, body: fn(usize) -> String) -> Vec<i64> {
        let threads: Vec<_> = (0..senders)
            .map(|sender| {
                let address = self.address.clone();
                std::thread::spawn(move || {
                    (sender..count)
                        .step_by(senders)
                        .map(|n| {
                            let headers = [("Content-Type", "application/json")];
                            let response =
                                http::request(&address, "POST", "/receive-event", &headers, body(n).as_bytes())
                                    .expect("request");
                            assert_eq!(response.status, 200, "{}", response.body);
                            response.json()["id"].as_i64().expect("a journal id")
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("sender thread")).collect()
    }

    /// `GET /ready` with the admin token ([`Setup::with_admin_token`]):
    /// its reasons in full, naming the HIS (others get their kinds).
    pub fn ready_in_full(&self) -> Response {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        self.request("GET", "/ready", &[("Authorization", &bearer)], b"")
    }

    /// Any request: to the operator's port for `/ready`, `/metrics` and
    /// `/admin…`, else to intake's.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let operator = ["/ready", "/metrics", "/admin"].iter().any(|route| path.starts_with(route));
        let address = if operator { &self.admin_address } else { &self.address };
        http::request(address, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\nlogs:\n{}", self.logs()))
    }

    /// How the process ended, if it has ended on its own.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the middleware's status")
    }

    /// Kills the process with SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM")
    }

    /// Sends SIGINT (Ctrl-C; under Wine, the console's Ctrl-C event) and
    /// waits for the exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.signal("INT")
    }

    fn signal(&mut self, name: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -{name} {pid} failed");
        wait_for(Duration::from_secs(30), &format!("the middleware to exit after SIG{name}"), || {
            self.child.try_wait().expect("poll child")
        })
    }
}

impl Drop for Middleware {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a missing prerequisite (a server, a library, Wine) is a failure
/// rather than a skip: `CI` set to anything but empty, `false` or `0`.
/// `cargo xtask test --strict` and `.ci/run` set it.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The environment variable naming a file where every skip is also
/// appended as `test<TAB>reason` (set by `cargo xtask test`, which prints
/// them in its closing table).
pub const SKIP_LOG_VARIABLE: &str = "BUKTOR_SKIP_LOG";

/// Says on the terminal that `test` was skipped, and why. Written to the
/// process's stderr directly, so that cargo's output capture (which hides
/// what passing tests print) does not hide it; and appended to the file
/// named by [`SKIP_LOG_VARIABLE`], when set.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VARIABLE) {
        let line = format!("{}\t{}\n", test.replace(['\t', '\n'], " "), why.replace(['\t', '\n'], " "));
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            // One write per line, so concurrent tests' lines never interleave.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Skips `test` for `why`, or fails it when [`strict`]: for prerequisites
/// that this machine can have (a server, a library), never for those it
/// cannot (a real SQL Server or Oracle).
pub fn skipped_unless_strict(test: &str, why: &str) {
    assert!(!strict(), "CI=true (strict), and {test} cannot run: {why}");
    skipped(test, why);
}

/// Runs a Python 3 `script` with `stdin` and returns what it printed: for
/// the official library of a format (`module`: `standardwebhooks`,
/// `prometheus_client`), so that the middleware is proved to speak it.
/// When python3 cannot be run or lacks `module`, says that `test` was
/// skipped and returns `None`; under [`strict`] (CI, whose `.ci/run`
/// installs both) that fails the test instead. Any other failure of the
/// script fails the test.
pub fn python(test: &str, module: &str, script: &str, stdin: &[u8]) -> Option<String> {
    use std::io::Write;
    let spawned = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            skipped_unless_strict(
                test,
                &format!("python3 cannot be run ({e}); install it, then python3 -m pip install {module}"),
            );
            return None;
        }
    };
    // A script that stops early (a missing module) closes its stdin: its
    // exit status and stderr below say why.
    let _ = child.stdin.take().expect("piped stdin").write_all(stdin);
    let output = child.wait_with_output().expect("wait for python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains(&format!("No module named '{module}'")) {
        skipped_unless_strict(test, &format!("python3 has no {module}: python3 -m pip install {module} to run it"));
        return None;
    }
    assert!(output.status.success(), "{test}: the Python script failed ({}):\n{stderr}", output.status);
    Some(String::from_utf8(output.stdout).expect("UTF-8 from python3"))
}

/// Unpacks a release `archive` (`.tar.gz` with tar, `.zip` with unzip, as
/// an operator would) into the empty folder `into`, and returns the one
/// release folder it must hold.
pub fn unpack_release(archive: &Path, into: &Path) -> PathBuf {
    let status = if archive.extension().is_some_and(|e| e == "zip") {
        Command::new("unzip").arg("-q").arg(archive).arg("-d").arg(into).status().expect("run unzip")
    } else {
        Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(into).status().expect("run tar")
    };
    assert!(status.success(), "unpacking {}", archive.display());
    let entries: Vec<PathBuf> = std::fs::read_dir(into).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one folder in the archive: {entries:?}");
    entries[0].clone()
}

/// Says on the terminal what `test` verified, past cargo's output capture
/// as [`skipped`] does: for tests whose worth is in what they ran (the
/// Windows release under Wine).
pub fn verified(test: &str, what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "VERIFIED {test}: {what}");
}

/// Calls `check` until it returns `Some`, or panics after `timeout` naming
/// what was awaited.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rows of an SQLite query as JSON values, for exact comparisons.
pub fn query(connection: &rusqlite::Connection, sql: &str) -> Vec<Vec<serde_json::Value>> {
    let mut statement = match connection.prepare(sql) {
        Ok(statement) => statement,
        // The table may not exist yet.
        Err(_) => return Vec::new(),
    };
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => n.into(),
                        rusqlite::types::ValueRef::Real(f) => f.into(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
