//! Write actions and partial rows through the real binary and the real
//! SQL Server plugin, against the TDS test server (tests/src/tds), which
//! records the T-SQL and its parameters but executes nothing: a partial
//! upsert, a partial and a whole update, an update of a missing row, a
//! soft-delete, a delete, an insert and an insert of an existing key, each
//! in a transaction of its own. The test server reports one affected row
//! unless told otherwise, so "no such row" is scripted with
//! `TdsServer::affect_next`, and "the key exists" with `fail_next` (2627).

use std::time::{Duration, Instant};

use buktor_tests::{
    Setup, actions, query,
    tds::{Failure, ParamValue, StatementKind, TdsServer},
    verified,
};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

/// The seed's SQL Server example pointed at the test server (which speaks
/// TDS without TLS), with [`mappings`].
fn setup_for(server: &TdsServer) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = server.database_config();
    setup.config["mapping"] = mappings();
    setup
}

/// The mappings of tests/tests/write_actions.rs, and a partial upsert: all
/// of HIS_appointments, keyed by appointment_id.
fn mappings() -> Value {
    let (key, all, with) = (actions::key, actions::status_and_booking, actions::fields);
    json!({
        "appointment_keep": {"table": "HIS_appointments", "on_missing": "keep", "fields": all()},
        "appointment_update": {"table": "HIS_appointments", "action": "update", "on_missing": "keep", "fields": all()},
        "appointment_cancelled": {"table": "HIS_appointments", "action": "soft_delete",
            "fields": with(json!({"status": "HIS_status"}))},
        "appointment_deleted": {"table": "HIS_appointments", "action": "delete", "fields": key()},
        "appointment_insert": {"table": "HIS_appointments", "action": "insert", "fields": all()},
    })
}

const UPSERT_PARTIAL: &str = "MERGE INTO [HIS_appointments] WITH (HOLDLOCK) AS t USING (VALUES (@P1, @P2)) \
     AS s ([HIS_appointment_id], [HIS_status]) ON t.[HIS_appointment_id] = s.[HIS_appointment_id] \
     WHEN MATCHED THEN UPDATE SET t.[HIS_status] = s.[HIS_status] \
     WHEN NOT MATCHED THEN INSERT ([HIS_appointment_id], [HIS_status]) \
     VALUES (s.[HIS_appointment_id], s.[HIS_status]);";
const UPDATE_STATUS: &str = "UPDATE [HIS_appointments] SET [HIS_status] = @P1 WHERE [HIS_appointment_id] = @P2";
const UPDATE_BOTH: &str =
    "UPDATE [HIS_appointments] SET [HIS_status] = @P1, [HIS_created_at] = @P2 WHERE [HIS_appointment_id] = @P3";
const DELETE: &str = "DELETE FROM [HIS_appointments] WHERE [HIS_appointment_id] = @P1";
const INSERT: &str =
    "INSERT INTO [HIS_appointments] ([HIS_appointment_id], [HIS_status], [HIS_created_at]) VALUES (@P1, @P2, @P3)";

const DUPLICATE: &str = "Violation of PRIMARY KEY constraint 'PK_HIS_appointments'. Cannot insert duplicate key \
     in object 'dbo.HIS_appointments'. The duplicate key value is (1).";

/// One event, what the server is told to answer before it, and what must
/// come of it.
struct Step {
    event: &'static str,
    /// A count of affected rows for the statement, instead of one.
    affected: Option<u64>,
    /// A failure for the statement, instead of success.
    failure: Option<Failure>,
    /// The journal status the event settles in.
    status: &'static str,
    /// The write statement it becomes, and its parameters.
    sql: &'static str,
    params: Vec<ParamValue>,
}

fn int(i: i64) -> ParamValue {
    ParamValue::Int(i)
}
fn text(s: &str) -> ParamValue {
    ParamValue::Text(s.into())
}

fn steps() -> Vec<Step> {
    let step = |event, status, sql, params| Step { event, affected: None, failure: None, status, sql, params };
    vec![
        // A partial upsert: booked_at is absent, so HIS_created_at is neither
        // set nor inserted.
        step(
            r#"{"event_type": "appointment_keep", "appointment_id": 1, "status": "booked"}"#,
            "delivered",
            UPSERT_PARTIAL,
            vec![int(1), text("booked")],
        ),
        // A partial update sets only the status.
        step(
            r#"{"event_type": "appointment_update", "appointment_id": 1, "status": "arrived"}"#,
            "delivered",
            UPDATE_STATUS,
            vec![text("arrived"), int(1)],
        ),
        // A whole one sets both.
        step(
            r#"{"event_type": "appointment_update", "appointment_id": 5, "status": "moved", "booked_at": "2026-01-05T12:30:00"}"#,
            "delivered",
            UPDATE_BOTH,
            vec![text("moved"), ParamValue::DateTime("2026-01-05 12:30:00.0000000".into()), int(5)],
        ),
        // An update that matches no row fails (if_missing: error).
        Step {
            affected: Some(0),
            ..step(
                r#"{"event_type": "appointment_update", "appointment_id": 99, "status": "arrived"}"#,
                "failed",
                UPDATE_STATUS,
                vec![text("arrived"), int(99)],
            )
        },
        // A soft-delete of a row that is gone is done.
        Step {
            affected: Some(0),
            ..step(
                r#"{"event_type": "appointment_cancelled", "appointment_id": 2, "status": "C"}"#,
                "delivered",
                UPDATE_STATUS,
                vec![text("C"), int(2)],
            )
        },
        // A delete sends the key only; a row already gone is fine.
        Step {
            affected: Some(0),
            ..step(r#"{"event_type": "appointment_deleted", "appointment_id": 3}"#, "delivered", DELETE, vec![int(3)])
        },
        step(
            r#"{"event_type": "appointment_insert", "appointment_id": 4, "status": "walk-in", "booked_at": "2026-01-05T12:00:00"}"#,
            "delivered",
            INSERT,
            vec![int(4), text("walk-in"), ParamValue::DateTime("2026-01-05 12:00:00.0000000".into())],
        ),
        // An insert of a key that exists fails, and never becomes a MERGE.
        Step {
            failure: Some(Failure::Error { number: 2627, state: 1, class: 14, message: DUPLICATE.into() }),
            ..step(
                r#"{"event_type": "appointment_insert", "appointment_id": 1, "status": "overwritten", "booked_at": "2026-01-06T00:00:00"}"#,
                "failed",
                INSERT,
                vec![int(1), text("overwritten"), ParamValue::DateTime("2026-01-06 00:00:00.0000000".into())],
            )
        },
    ]
}

/// Posts each step's event once the one before has settled, so that what
/// the server was told to answer meets that event's statement; returns
/// each event's journal (status, last_error). Stops at an event that does
/// not settle: the events after it would wait behind it.
fn run(server: &TdsServer, setup: &Setup, steps: &[Step]) -> Vec<(String, Option<String>)> {
    let mut middleware = setup.start();
    let journal = setup.journal();
    let mut outcomes = Vec::new();
    for step in steps {
        if let Some(rows) = step.affected {
            server.affect_next("[HIS_appointments]", rows);
        }
        if let Some(failure) = &step.failure {
            server.fail_next("[HIS_appointments]", failure.clone());
        }
        let response = middleware.post_event(step.event);
        assert_eq!(response.status, 200, "{}", step.event);
        let outcome = settled(&journal, response.json()["id"].as_i64().expect("a journal id"));
        let pending = outcome.0 == "pending";
        outcomes.push(outcome);
        if pending {
            break;
        }
    }
    assert!(middleware.interrupt().success(), "{}", middleware.logs());
    outcomes
}

/// Event `id`'s (status, last_error) once it is no longer pending, or as it
/// still is after [`PATIENCE`].
fn settled(journal: &rusqlite::Connection, id: i64) -> (String, Option<String>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = query(journal, &format!("SELECT status, last_error FROM events WHERE id = {id}"));
        let outcome = rows
            .first()
            .map(|row| (row[0].as_str().unwrap_or_default().to_string(), row[1].as_str().map(str::to_string)));
        match outcome {
            Some(outcome) if outcome.0 != "pending" || Instant::now() >= deadline => return outcome,
            None if Instant::now() >= deadline => panic!("event {id} is not in the journal"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What the server received, in order: the transaction batches as BEGIN,
/// COMMIT and ROLLBACK, and each write statement with its parameters (the
/// session setup and pings left out).
fn writes(server: &TdsServer) -> Vec<(String, Vec<ParamValue>)> {
    let words = ["MERGE", "INSERT", "UPDATE", "DELETE", "SELECT 1 FROM"];
    server
        .statements()
        .into_iter()
        .filter_map(|s| match (s.kind, s.sql.as_str()) {
            (StatementKind::Batch, "BEGIN TRANSACTION") => Some(("BEGIN".to_string(), Vec::new())),
            (StatementKind::Batch, "COMMIT TRANSACTION") => Some(("COMMIT".to_string(), Vec::new())),
            (StatementKind::Batch, sql) if sql.contains("ROLLBACK") => Some(("ROLLBACK".to_string(), Vec::new())),
            (StatementKind::Rpc, sql) if words.iter().any(|w| sql.starts_with(w)) => {
                Some((s.sql.clone(), s.params.into_iter().map(|p| p.value).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_action_and_partial_rows_become_the_right_statements_in_a_transaction_each() {
    let server = TdsServer::start();
    let setup = setup_for(&server);
    let steps = steps();
    let outcomes = run(&server, &setup, &steps);

    let statuses: Vec<&str> = outcomes.iter().map(|(status, _)| status.as_str()).collect();
    let expected: Vec<&str> = steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, expected, "{outcomes:?}");
    let error = |step: usize| outcomes[step].1.as_deref().unwrap_or_default();
    assert_eq!(error(3), "data error: update: no row of HIS_appointments has this key");
    assert_eq!(
        error(7),
        format!("data error: insert: a row with this key exists ({DUPLICATE} (state 1, class 14)) (code 2627)")
    );

    // Each event is one transaction holding its one statement: committed,
    // or rolled back when the event failed.
    let mut expected = Vec::new();
    for step in &steps {
        let end = if step.status == "delivered" { "COMMIT" } else { "ROLLBACK" };
        expected.push(("BEGIN".to_string(), Vec::new()));
        expected.push((step.sql.to_string(), step.params.clone()));
        expected.push((end.to_string(), Vec::new()));
    }
    let received = writes(&server);
    for (i, (got, want)) in received.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "statement {i} of {received:#?}");
    }
    assert_eq!(received.len(), expected.len(), "{received:#?}");
    // Said once more, for the reader: what the partial rows left alone.
    let statement = |step: usize| received[3 * step + 1].0.as_str();
    assert!(!statement(0).contains("HIS_created_at"), "a partial upsert neither sets nor inserts it");
    assert!(!statement(1).contains("HIS_created_at"), "a partial update leaves it as it is");
    assert!(statement(5).starts_with("DELETE"), "a delete is a DELETE, never a MERGE");
    verified(
        "sqlserver_actions",
        "partial upsert, partial/whole update, update of a missing row, soft-delete, delete, insert (new/existing) \
         as T-SQL against the TDS test server",
    );
}
