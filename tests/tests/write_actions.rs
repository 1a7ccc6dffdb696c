//! Write actions and partial rows, end to end: events through the real
//! binary and the real plugin into SQLite and MariaDB. Update-only (with
//! and without a row), a partial update that leaves a column alone, a
//! soft-delete, a delete, and an insert that refuses an existing key.

use std::time::Duration;

use buktor_tests::{
    Setup,
    actions::{EVENTS, STATUSES, mappings},
    mysql, query, verified, wait_for,
};
use serde_json::{Value, json};

/// The HIS table after [`EVENTS`]: id, status, created_at (as text).
fn expected() -> Vec<Vec<Value>> {
    vec![
        vec![json!(1), json!("arrived"), json!("2026-01-05 09:00:00")],
        vec![json!(2), json!("C"), json!("2026-01-05 10:00:00")],
        vec![json!(4), json!("walk-in"), json!("2026-01-05 12:00:00")],
    ]
}

/// Sends [`EVENTS`] and waits until every one is settled; returns the
/// journal's (id, status, last_error) of each.
fn send_and_settle(setup: &Setup) -> Vec<Vec<Value>> {
    let mut middleware = setup.start();
    for event in EVENTS {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let journal = setup.journal();
    let outcomes = wait_for(Duration::from_secs(60), "every event settled", || {
        let rows = query(&journal, "SELECT id, status, last_error FROM events ORDER BY id");
        Some(rows).filter(|rows| rows.len() == EVENTS.len() && rows.iter().all(|r| r[1] != "pending"))
    });
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
    outcomes
}

/// Two events fail, each with a message that says why; the rest deliver.
fn check_outcomes(outcomes: &[Vec<Value>]) {
    let statuses: Vec<&str> = outcomes.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(statuses, STATUSES, "{outcomes:?}");
    let missing = outcomes[4][2].as_str().unwrap();
    assert!(missing.contains("update: no row of HIS_appointments has this key"), "{missing}");
    let exists = outcomes[8][2].as_str().unwrap();
    assert!(exists.contains("insert: a row with this key exists"), "{exists}");
}

#[test]
fn every_action_and_a_partial_update_reach_sqlite() {
    let mut setup = Setup::new();
    setup.config["mapping"] = mappings("HIS_appointments");
    std::fs::write(setup.path("his.db"), b"").unwrap();
    let his = setup.his();
    his.execute_batch(
        "CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT)",
    )
    .unwrap();
    let outcomes = send_and_settle(&setup);
    check_outcomes(&outcomes);
    let rows = query(
        &his,
        "SELECT HIS_appointment_id, HIS_status, replace(HIS_created_at, 'T', ' ') FROM HIS_appointments ORDER BY 1",
    );
    assert_eq!(rows, expected());
    verified(
        "write_actions",
        "update (row/no row), partial update, soft-delete, delete, insert (new/existing) in SQLite",
    );
}

#[test]
fn every_action_and_a_partial_update_reach_mariadb() {
    let Some(server) = mysql::server("every_action_and_a_partial_update_reach_mariadb") else { return };
    let db = server.database();
    db.execute(
        "CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status VARCHAR(32), \
         HIS_created_at DATETIME)",
    );
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup.config["mapping"] = mappings("HIS_appointments");
    let outcomes = send_and_settle(&setup);
    check_outcomes(&outcomes);
    let rows: Vec<Vec<Value>> = db
        .rows(
            "SELECT CAST(HIS_appointment_id AS CHAR), HIS_status, CAST(HIS_created_at AS CHAR) FROM HIS_appointments \
             ORDER BY HIS_appointment_id",
        )
        .into_iter()
        .map(|r| {
            let id: i64 = r[0].as_deref().unwrap().parse().unwrap();
            vec![json!(id), json!(r[1]), json!(r[2])]
        })
        .collect();
    assert_eq!(rows, expected());
    verified("write_actions", &format!("every action and a partial update in MariaDB ({})", db.name));
}
