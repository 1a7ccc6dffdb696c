//! The database servers the tests write into, found on 127.0.0.1 or, as
//! root, installed from Debian and started.
//!
//! A writer plugin is only tested for real against its real server: the
//! MySQL writer's tests need MariaDB, the PostgreSQL writer's PostgreSQL. Each server is one [`Service`] in [`SERVICES`]: how to see
//! that it answers, which Debian packages hold it, how to start it on a
//! machine without systemd (CI's containers), and how to make the test
//! user whose URL the tests read from an environment variable. A server
//! joins the test run by setting its `needed`; nothing else changes.

use std::{
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

use crate::machine::{Apt, is_file, on_path, run};

/// A database server the tests need.
pub struct Service {
    /// Its name, as messages say it.
    pub name: &'static str,
    /// Where the tests expect it.
    pub address: &'static str,
    /// Whether any test needs it now: servers no test needs are neither
    /// looked for nor installed.
    pub needed: bool,
    /// The Debian packages that hold it.
    packages: &'static [&'static str],
    /// Whether its packages are installed.
    installed: fn() -> bool,
    /// Starts it, without systemd.
    start: fn() -> anyhow::Result<()>,
    /// Makes the test user, as the server's administrator.
    make_test_user: fn() -> anyhow::Result<()>,
    /// The environment variable the tests read the server's URL from.
    pub url_variable: &'static str,
    /// The test user's URL.
    pub url: &'static str,
}

/// Every server some test needs, or will.
pub const SERVICES: [Service; 2] = [MARIADB, POSTGRESQL];

/// How long a server may take to answer after it was started.
const START_PATIENCE: Duration = Duration::from_secs(60);

const MARIADB: Service = Service {
    name: "MariaDB",
    address: "127.0.0.1:3306",
    needed: true,
    packages: &["mariadb-server", "mariadb-client"],
    installed: || on_path("mariadbd").is_some() || is_file("/usr/sbin/mariadbd"),
    start: || {
        run(Command::new("install").args(["-d", "-o", "mysql", "-g", "mysql", "/run/mysqld"]))?;
        run(Command::new("start-stop-daemon").args([
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
            "--",
            "--user=mysql",
        ]))
    },
    // Each MySQL test works in a database of its own, buktor_test_<n>:
    // the user may create and drop databases named buktor_test*.
    make_test_user: || {
        as_administrator(
            Command::new("mariadb").arg("-uroot"),
            r"CREATE USER IF NOT EXISTS 'buktor_test'@'localhost' IDENTIFIED BY 'buktor_test';
CREATE USER IF NOT EXISTS 'buktor_test'@'127.0.0.1' IDENTIFIED BY 'buktor_test';
GRANT ALL PRIVILEGES ON `buktor\_test%`.* TO 'buktor_test'@'localhost';
GRANT ALL PRIVILEGES ON `buktor\_test%`.* TO 'buktor_test'@'127.0.0.1';
",
        )
    },
    url_variable: "HIS_TEST_MYSQL_URL",
    url: "mysql://buktor_test:buktor_test@127.0.0.1:3306/buktor_test",
};

/// The PostgreSQL writer's tests (tests/tests/postgres.rs, and the crash
/// test in tests/tests/guarantees.rs).
const POSTGRESQL: Service = Service {
    name: "PostgreSQL",
    address: "127.0.0.1:5432",
    needed: true,
    packages: &["postgresql"],
    installed: || on_path("pg_ctlcluster").is_some() && postgresql_version().is_ok(),
    start: || {
        run(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &postgresql_version()?, "main", "start"]))
    },
    // The user may create databases, one per test. Its password is
    // checked over TCP even where the server trusts local logins (as these
    // machines' does), so that the tests log in as a hospital's middleware
    // does and a wrong password can be tested.
    make_test_user: || {
        as_administrator(
            &mut postgres_administrator(),
            "DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'buktor_test') THEN
        CREATE ROLE buktor_test LOGIN CREATEDB;
    END IF;
END $$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE buktor_test PASSWORD 'buktor_test';
",
        )?;
        check_test_user_password()
    },
    url_variable: "HIS_TEST_POSTGRES_URL",
    url: "postgres://buktor_test:buktor_test@127.0.0.1:5432/buktor_test",
};

impl Service {
    /// Makes sure the server answers at its address: finds it, or with
    /// `apt` installs it if need be and starts it. The error is the reason
    /// its tests cannot run, in a sentence.
    pub fn ensure(&self, apt: Option<&mut Apt>) -> Result<(), String> {
        self.ensure_at(self.address, apt)
    }

    fn ensure_at(&self, address: &str, apt: Option<&mut Apt>) -> Result<(), String> {
        let (name, address) = (self.name, address.parse::<SocketAddr>().expect("a literal address"));
        if answers(address) {
            println!("{name} answers at {address}");
            return Ok(());
        }
        let Some(apt) = apt else {
            return Err(format!("{name} not reachable at {address} and not root to install it"));
        };
        if !(self.installed)() {
            apt.install(self.packages)
                .map_err(|e| format!("{name} not reachable at {address}, and installing it failed: {e:#}"))?;
        }
        println!("starting {name}");
        (self.start)().map_err(|e| format!("{name} not reachable at {address}, and starting it failed: {e:#}"))?;
        let deadline = std::time::Instant::now() + START_PATIENCE;
        while !answers(address) {
            if std::time::Instant::now() > deadline {
                return Err(format!("{name} was started but did not answer at {address} within {START_PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        println!("{name} answers at {address}");
        Ok(())
    }

    /// Makes the test user (again: it is idempotent) whose URL is
    /// [`Service::url`]. The error is the reason the tests cannot use it.
    pub fn make_test_user(&self) -> Result<(), String> {
        (self.make_test_user)().map_err(|e| {
            format!(
                "{} answers at {}, but making its test user failed ({e:#}); set {} to a user of your own",
                self.name, self.address, self.url_variable
            )
        })
    }
}

/// Whether something accepts TCP connections at `address`.
fn answers(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Runs an SQL client as the server's administrator, `sql` on its stdin.
fn as_administrator(client: &mut Command, sql: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let name = format!("{client:?}");
    let mut child = client.stdin(Stdio::piped()).spawn().with_context(|| format!("run {name}"))?;
    child.stdin.take().expect("piped").write_all(sql.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// `psql` as the server's administrator (over its Unix socket, where
/// Debian lets the `postgres` account in).
fn postgres_administrator() -> Command {
    let mut psql = Command::new("runuser");
    psql.args(["-u", "postgres", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1"]);
    psql
}

/// The pg_hba.conf line that makes the server check the test user's
/// password on 127.0.0.1 (the first matching line wins, so it goes first).
const TEST_USER_HBA: &str = "host all buktor_test 127.0.0.1/32 scram-sha-256";

/// Puts [`TEST_USER_HBA`] at the top of the server's pg_hba.conf if it is
/// not there, and has the server read the file again.
fn check_test_user_password() -> anyhow::Result<()> {
    let output = postgres_administrator().args(["-tA", "-c", "SHOW hba_file"]).output().context("run psql")?;
    if !output.status.success() {
        bail!("psql could not say where pg_hba.conf is: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let path = String::from_utf8(output.stdout).context("the path of pg_hba.conf")?.trim().to_string();
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let Some(updated) = with_test_user_line(&text) else { return Ok(()) };
    std::fs::write(&path, updated).with_context(|| format!("write {path}"))?;
    println!("{path}: the test user's password is checked on 127.0.0.1 ({TEST_USER_HBA})");
    as_administrator(
        &mut postgres_administrator(),
        "SELECT pg_reload_conf();
DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_hba_file_rules WHERE error IS NOT NULL) THEN
        RAISE EXCEPTION 'pg_hba.conf has errors: see pg_hba_file_rules';
    END IF;
END $$;
",
    )
}

/// `pg_hba` with [`TEST_USER_HBA`] first, or `None` if its first rule
/// already is that line.
fn with_test_user_line(pg_hba: &str) -> Option<String> {
    let rules = pg_hba.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = rules.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).next();
    if first.as_deref() == Some(TEST_USER_HBA) {
        return None;
    }
    Some(format!("# Added by `cargo xtask test`: the test user logs in with its password.\n{TEST_USER_HBA}\n{pg_hba}"))
}

/// The installed PostgreSQL's version: its folder in /etc/postgresql
/// (the highest, if there are more).
fn postgresql_version() -> anyhow::Result<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("read /etc/postgresql")?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort_by_key(|version| version.parse::<u32>().unwrap_or(0));
    versions.pop().context("no cluster in /etc/postgresql")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on 127.0.0.1 that nothing listens on (it just stopped).
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[test]
    fn an_absent_server_without_root_is_a_reason_naming_it() {
        let address = closed_port();
        assert_eq!(
            MARIADB.ensure_at(&address, None),
            Err(format!("MariaDB not reachable at {address} and not root to install it"))
        );
    }

    #[test]
    fn a_server_that_answers_is_used_as_it_is() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        // No apt-get: an answering server is neither installed nor started.
        assert_eq!(POSTGRESQL.ensure_at(&address, None), Ok(()));
    }

    #[test]
    fn the_test_user_line_goes_first_once() {
        let debian = "# comment\nlocal all postgres peer\nhost all all 127.0.0.1/32 trust\n";
        let updated = with_test_user_line(debian).unwrap();
        assert!(updated.ends_with(debian));
        let rules: Vec<&str> = updated.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rules[0], TEST_USER_HBA);
        assert_eq!(with_test_user_line(&updated), None, "already first: unchanged");
        // Written with other spacing, it is still the same rule.
        assert_eq!(with_test_user_line("host  all\tbuktor_test 127.0.0.1/32   scram-sha-256\n"), None);
    }

    #[test]
    fn only_needed_servers_are_looked_for() {
        let needed: Vec<&str> = SERVICES.iter().filter(|s| s.needed).map(|s| s.name).collect();
        assert_eq!(needed, ["MariaDB", "PostgreSQL"]);
    }
}
