//! The release archive, as an operator gets it: `cargo xtask dist` builds
//! it; it is unpacked into an empty folder with no cargo and no source
//! tree; `"type": "postgres"` with the seed's keys writes the seed's events
//! into PostgreSQL (when `HIS_TEST_POSTGRES_URL` is set); with only the
//! SQLite plugin kept beside the executable, the
//! executable runs from there on the archive's own his-config.json (with
//! its comments) and the seed's events arrive. Without the plugin it stops
//! with one line naming the folder it looked in.

use std::{path::PathBuf, process::Command, time::Duration};

use buktor_tests::{Middleware, StartError, postgres, repo_root, repository_config, seed, unpack_release, wait_for};
use serde_json::json;

/// Runs `cargo xtask dist` and returns the `.tar.gz` it made.
fn build_archive() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args(["run", "--quiet", "--package", "xtask", "--", "dist"])
        .output()
        .expect("run cargo xtask dist");
    assert!(output.status.success(), "cargo xtask dist failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let archive = PathBuf::from(stdout.lines().last().expect("the archive's path").trim());
    assert!(archive.to_string_lossy().ends_with(".tar.gz") && archive.is_file(), "{stdout}");
    archive
}

fn plugin_file(name: &str) -> String {
    format!("{}his_{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

const TEST: &str = "the_unpacked_archive_runs_the_seed_events_with_only_the_sqlite_plugin";

#[test]
fn the_unpacked_archive_runs_the_seed_events_with_only_the_sqlite_plugin() {
    let archive = build_archive();
    let empty = tempfile::tempdir().unwrap();
    let folder = unpack_release(&archive, empty.path());
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("buktor-middleware-") && name.contains(std::env::consts::ARCH), "{name}");

    // What the archive holds.
    let exe = folder.join(format!("buktor-middleware{}", std::env::consts::EXE_SUFFIX));
    for file in [
        "his-config.json",
        "his-config.schema.json",
        "examples/his-config.schema.json",
        "README.md",
        "service/buktor-middleware.service",
        "service/nginx-buktor-middleware.conf",
    ] {
        assert!(folder.join(file).is_file(), "{file} is missing");
    }
    assert!(!folder.join("service/install-windows-task.ps1").exists(), "Windows scripts in a Linux archive");
    for database in ["sqlite", "mysql", "sqlserver", "oracle", "postgres"] {
        assert!(folder.join(plugin_file(database)).is_file(), "{} is missing", plugin_file(database));
        assert!(folder.join(format!("examples/his-config.{database}.json")).is_file());
    }
    // (That each example parses is a unit test in host/src/config/load.rs,
    // that each validates against the schema is tests/config_schema.rs.)
    // Every config names the schema beside it, the one in the repository,
    // so that an example copied over his-config.json still finds it.
    let schema = std::fs::read(repo_root().join("dist/his-config.schema.json")).unwrap();
    let configs = [
        "his-config.json",
        "examples/his-config.sqlite.json",
        "examples/his-config.mysql.json",
        "examples/his-config.sqlserver.json",
        "examples/his-config.oracle.json",
        "examples/his-config.postgres.json",
    ];
    for config in configs {
        let text = std::fs::read_to_string(folder.join(config)).unwrap();
        assert!(text.contains("\"$schema\": \"./his-config.schema.json\","), "{config} names no schema beside it");
        let beside = folder.join(config).parent().unwrap().join("his-config.schema.json");
        assert!(std::fs::read(&beside).unwrap() == schema, "{} is not dist/his-config.schema.json", beside.display());
    }

    // `"type": "postgres"` with the seed's keys, from the archive as
    // shipped (every plugin beside the executable), on the repository's
    // mapping.
    if let Some(server) = postgres::server(TEST) {
        let db = server.database();
        db.execute(postgres::SEED_TABLES);
        let mut config = repository_config();
        config["database"] = db.seed_keys_config();
        config["server"] = json!({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"});
        // In a folder of its own, with its journal: the SQLite run below
        // starts on an empty one.
        let postgres_config = empty.path().join("postgres-run/his-config.json");
        std::fs::create_dir(postgres_config.parent().unwrap()).unwrap();
        std::fs::write(&postgres_config, config.to_string()).unwrap();
        let mut command = Command::new(&exe);
        command.current_dir(&folder).env_clear().env("PATH", "/usr/bin:/bin").arg("--config").arg(&postgres_config);
        let middleware =
            Middleware::start_command(command).unwrap_or_else(|e| panic!("the release did not start: {e}"));
        assert!(middleware.logs().contains(&plugin_file("postgres")), "{}", middleware.logs());
        for event in seed::EVENTS {
            assert_eq!(middleware.post_event(event).status, 200, "{event}");
        }
        wait_for(Duration::from_secs(20), "the seed's three rows in PostgreSQL", || seed::postgres_rows_arrived(&db));
        drop(middleware);
    }

    // Only the SQLite plugin beside the executable.
    for database in ["mysql", "sqlserver", "oracle", "postgres"] {
        std::fs::remove_file(folder.join(plugin_file(database))).unwrap();
    }
    // A free port instead of 5000; the rest of the file, comments included, as shipped.
    let config = folder.join("his-config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"127.0.0.1:5000\""));
    std::fs::write(&config, text.replace("\"127.0.0.1:5000\"", "\"127.0.0.1:0\"")).unwrap();

    let mut command = Command::new(&exe);
    command.current_dir(&folder).env_clear().env("PATH", "/usr/bin:/bin");
    let middleware = Middleware::start_command(command).unwrap_or_else(|e| panic!("the release did not start: {e}"));
    assert!(middleware.logs().contains(&plugin_file("sqlite")), "{}", middleware.logs());
    for event in seed::EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let his = folder.join("his-demo.db");
    wait_for(Duration::from_secs(20), "the seed's three rows in his-demo.db", || seed::sqlite_rows_arrived(&his));
    drop(middleware);

    // Without the plugin: one line that names the folder.
    std::fs::remove_file(folder.join(plugin_file("sqlite"))).unwrap();
    let mut command = Command::new(&exe);
    command.current_dir(&folder).env_clear().env("PATH", "/usr/bin:/bin");
    match Middleware::start_command(command) {
        Err(StartError::Exited { status, stderr }) => {
            assert!(!status.success());
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
            assert_eq!(errors.len(), 1, "{stderr}");
            assert!(errors[0].contains(&plugin_file("sqlite")), "{}", errors[0]);
            let shown = std::fs::canonicalize(&folder).unwrap();
            assert!(
                errors[0].contains(&*shown.to_string_lossy()) || errors[0].contains(&*folder.to_string_lossy()),
                "the line names the folder {}: {}",
                folder.display(),
                errors[0]
            );
        }
        Ok(mut running) => {
            running.kill();
            panic!("started without its plugin:\n{}", running.logs());
        }
        Err(e) => panic!("{e}"),
    }
}
