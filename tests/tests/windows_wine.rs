//! The Windows release, run under Wine: the `.zip` of `cargo xtask dist
//! --target x86_64-pc-windows-gnu` unpacked into an empty folder, the
//! .exe started there with only the plugin it needs beside it.
//!
//! - the seed's three curl events reach the SQLite HIS file, and Ctrl-C
//!   stops it gracefully;
//! - the MySQL plugin DLL writes them to the CI's MariaDB;
//! - without its plugin, one line names the DLL and the folder;
//! - as a Windows service (Wine's service manager): install, start, events,
//!   a graceful stop, uninstall.
//!
//! What this cannot show: real Windows (restart after an error exit, which
//! Wine's service manager cannot set; `service run` started by hand, which
//! real Windows refuses with error 1063 and Wine runs; Defender; drive
//! letters other than Wine's Z:), and the SQL Server and Oracle DLLs
//! against real servers.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use buktor_tests::{Middleware, StartError, mysql, postgres, query, seed, verified, wait_for, wine::Wine};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

/// Keeps only `keep`'s plugin DLL beside the .exe.
fn keep_only_plugin(folder: &Path, keep: Option<&str>) {
    for database in ["sqlite", "mysql", "sqlserver", "oracle", "postgres"] {
        let dll = folder.join(format!("his_{database}.dll"));
        assert!(dll.is_file(), "the release lacks {}", dll.display());
        if Some(database) != keep {
            std::fs::remove_file(dll).unwrap();
        }
    }
}

/// Both listeners on free ports. The tests of this file run at once, and
/// each would otherwise take the admin default 127.0.0.1:5001.
fn any_ports() -> Value {
    json!({ "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0" })
}

/// The release's his-config.json (commented JSON, so edited as text), on
/// free ports.
fn listen_on_any_port(folder: &Path) {
    let path = folder.join("his-config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let listen = "\"listen\": \"127.0.0.1:5000\"";
    assert!(text.contains(listen), "{text}");
    let ports = any_ports();
    let free = format!("\"listen\": {}, \"admin_listen\": {}", ports["listen"], ports["admin_listen"]);
    std::fs::write(&path, text.replace(listen, &free)).unwrap();
}

/// Events by status in the journal beside the .exe.
fn journal_statuses(folder: &Path) -> Vec<Vec<Value>> {
    let journal = rusqlite::Connection::open(folder.join("buktor-journal.db")).unwrap();
    query(&journal, "SELECT status, COUNT(*) FROM events GROUP BY status")
}

#[test]
fn the_seed_events_reach_the_sqlite_his_and_ctrl_c_stops_gracefully() {
    let Some(wine) = Wine::new("the_seed_events_reach_the_sqlite_his_and_ctrl_c_stops_gracefully") else { return };
    keep_only_plugin(&wine.folder, Some("sqlite"));
    listen_on_any_port(&wine.folder);

    let mut middleware = Middleware::start_command(wine.middleware())
        .unwrap_or_else(|e| panic!("buktor-middleware.exe did not start under Wine: {e}"));
    assert!(middleware.logs().contains("his_sqlite.dll (plugin sqlite"), "{}", middleware.logs());
    for event in seed::EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let his = wine.folder.join("his-demo.db");
    wait_for(PATIENCE, "the seed's three rows in his-demo.db", || seed::sqlite_rows_arrived(&his));

    let status = middleware.interrupt();
    assert!(status.success(), "{status}\n{}", middleware.logs());
    let logs = middleware.logs();
    assert!(logs.contains("shutting down: no new events are accepted"), "{logs}");
    assert!(logs.lines().last().unwrap_or_default().ends_with("stopped"), "{logs}");
    assert_eq!(journal_statuses(&wine.folder), [vec![json!("delivered"), json!(3)]]);
    verified(
        "windows_wine",
        "under Wine: the seed's three events → his_sqlite.dll → the SQLite HIS file; Ctrl-C → graceful stop",
    );
}

/// Runs the .exe under Wine with only `plugin`'s DLL, the repository's
/// mapping and `database`, posts the seed's three events and waits until
/// `arrived` sees their rows in `his` (the server's name, for messages).
fn seed_events_through(wine: &Wine, plugin: &str, database: Value, his: &str, arrived: impl Fn() -> Option<()>) {
    keep_only_plugin(&wine.folder, Some(plugin));
    let mut config = buktor_tests::repository_config();
    config["database"] = database;
    config["server"] = any_ports();
    std::fs::write(wine.folder.join("his-config.json"), config.to_string()).unwrap();

    let mut middleware = Middleware::start_command(wine.middleware())
        .unwrap_or_else(|e| panic!("buktor-middleware.exe did not start under Wine: {e}"));
    let loaded = format!("his_{plugin}.dll (plugin {plugin}");
    assert!(middleware.logs().contains(&loaded), "{}", middleware.logs());
    for event in seed::EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    wait_for(PATIENCE, &format!("the seed's three rows in {his}"), arrived);
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
}

#[test]
fn the_mysql_plugin_dll_writes_the_seed_events_to_mariadb() {
    let Some(wine) = Wine::new("the_mysql_plugin_dll_writes_the_seed_events_to_mariadb") else { return };
    let Some(server) = mysql::server("the_mysql_plugin_dll_writes_the_seed_events_to_mariadb") else { return };
    let db = server.database();
    db.execute(seed::MYSQL_TABLES);
    seed_events_through(&wine, "mysql", db.config(), "MariaDB", || seed::mysql_rows_arrived(&db));
    verified("windows_wine", &format!("under Wine: the seed's three events → his_mysql.dll → MariaDB ({})", db.name));
}

#[test]
fn the_postgres_plugin_dll_writes_the_seed_events_to_postgresql() {
    let test = "the_postgres_plugin_dll_writes_the_seed_events_to_postgresql";
    let Some(wine) = Wine::new(test) else { return };
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(postgres::SEED_TABLES);
    // `"type": "postgres"` with the seed's keys.
    seed_events_through(&wine, "postgres", db.seed_keys_config(), "PostgreSQL", || seed::postgres_rows_arrived(&db));
    verified(
        "windows_wine",
        &format!("under Wine: the seed's three events → his_postgres.dll → PostgreSQL ({})", db.name),
    );
}

#[test]
fn without_its_plugin_the_exe_stops_with_one_line_naming_the_dll_and_the_folder() {
    let Some(wine) = Wine::new("without_its_plugin_the_exe_stops_with_one_line_naming_the_dll_and_the_folder") else {
        return;
    };
    keep_only_plugin(&wine.folder, None);
    match Middleware::start_command(wine.middleware()) {
        Err(StartError::Exited { status, stderr }) => {
            assert!(!status.success());
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
            assert_eq!(errors.len(), 1, "{stderr}");
            assert!(errors[0].contains("his_sqlite.dll"), "{}", errors[0]);
            let folder = Wine::windows_path(&wine.folder);
            assert!(errors[0].contains(&folder), "the line names {folder}: {}", errors[0]);
        }
        Ok(mut running) => {
            running.kill();
            panic!("started without its plugin:\n{}", running.logs());
        }
        Err(e) => panic!("{e}"),
    }
    verified("windows_wine", "under Wine: without his_sqlite.dll, one error line naming it and the folder");
}

/// The address in the service's "listening on" line, from its log files.
fn service_address(log_dir: &Path) -> Option<String> {
    let logs = read_logs(log_dir);
    let rest = logs.rsplit("listening on http://").next().filter(|_| logs.contains("listening on http://"))?;
    Some(rest.split('/').next()?.to_string())
}

fn read_logs(log_dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(log_dir) else { return String::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect()
}

#[test]
fn as_a_windows_service_it_installs_starts_takes_events_stops_gracefully_and_uninstalls() {
    let Some(wine) = Wine::new("as_a_windows_service_it_installs_starts_takes_events_stops_gracefully_and_uninstalls")
    else {
        return;
    };
    keep_only_plugin(&wine.folder, Some("sqlite"));
    listen_on_any_port(&wine.folder);
    let log_dir = wine.folder.join("logs");

    let (status, output) = wine.run(&["service", "install"]);
    assert!(status.success(), "{output}");
    assert!(output.contains("installed the service BuktorMiddleware"), "{output}");
    assert!(output.contains(&Wine::windows_path(&log_dir)), "names the log folder: {output}");
    let (status, output) = wine.run(&["service", "install"]);
    assert!(!status.success());
    assert!(output.contains("error: a service named BuktorMiddleware is already installed"), "{output}");

    let (status, output) = wine.run(&["service", "start"]);
    assert!(status.success(), "{output}\n{}", read_logs(&log_dir));
    assert!(output.contains("the service BuktorMiddleware is running"), "{output}");
    let address = wait_for(PATIENCE, "the service's listening line in its log", || service_address(&log_dir));
    for event in seed::EVENTS {
        let response = buktor_tests::http::request(
            &address,
            "POST",
            "/receive-event",
            &[("Content-Type", "application/json")],
            event.as_bytes(),
        )
        .unwrap_or_else(|e| {
            panic!("the service at {address} does not answer ({e}); its log:\n{}", read_logs(&log_dir))
        });
        assert_eq!(response.status, 200, "{event}");
    }
    let his = wine.folder.join("his-demo.db");
    wait_for(PATIENCE, "the seed's three rows in his-demo.db", || seed::sqlite_rows_arrived(&his));

    let (status, output) = wine.run(&["service", "stop"]);
    assert!(status.success(), "{output}");
    assert!(output.contains("the service BuktorMiddleware has stopped"), "{output}");
    let logs = read_logs(&log_dir);
    for line in ["the service manager asked to stop", "shutting down: no new events are accepted"] {
        assert!(logs.contains(line), "{line:?} in the service's log:\n{logs}");
    }
    assert!(logs.trim_end().ends_with("stopped"), "{logs}");
    assert_eq!(journal_statuses(&wine.folder), [vec![json!("delivered"), json!(3)]]);

    // A service that cannot start says so, and where its log is.
    std::fs::remove_file(wine.folder.join("his_sqlite.dll")).unwrap();
    let (status, output) = wine.run(&["service", "start"]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("stopped as it started"), "{output}");
    assert!(output.contains(&Wine::windows_path(&log_dir)), "names the log folder: {output}");
    let logs = read_logs(&log_dir);
    assert!(logs.contains("plugin for database.type \"sqlite\" not found"), "{logs}");

    let (status, output) = wine.run(&["service", "uninstall"]);
    assert!(status.success(), "{output}");
    let (status, output) = wine.run(&["service", "start"]);
    assert!(!status.success());
    assert!(output.contains("error: no service named BuktorMiddleware is installed"), "{output}");
    verified(
        "windows_wine",
        "under Wine's service manager: install, start, the seed's events, graceful stop, a start that fails naming its log, uninstall",
    );
}
