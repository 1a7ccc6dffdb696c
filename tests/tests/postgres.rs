//! The PostgreSQL writer (plugins/postgres, `libhis_postgres`) through the
//! real binary and the real plugin loaded from disk, against a real
//! PostgreSQL server (`HIS_TEST_POSTGRES_URL`; see tests/src/postgres.rs):
//! the seed's events into realistic tables and updates by key, every write
//! action and value kind, partial rows, a 10,000-event burst, an outage
//! through a proxy, a row locked by another session, hostile names and
//! values, a refused login, `describe`, and the conformance kit
//! (`plugin-test`). The crash test runs against PostgreSQL in
//! tests/guarantees.rs.
//!
//! Tables are named as the repository's his-config.json maps them, quoted,
//! since the plugin quotes every name: `"HIS_appointments"`.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use buktor_tests::{
    Middleware, Setup, actions, artifacts, audit,
    postgres::{self, AUDIT, SEED_TABLES, quote},
    proxy::Proxy,
    query, verified, wait_for,
};
use serde_json::{Map, Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

fn strings(row: &[&str]) -> Vec<Option<String>> {
    row.iter().map(|s| Some(s.to_string())).collect()
}

fn wait_for_count(db: &postgres::Database, sql: &str, expected: i64) {
    wait_for(PATIENCE, &format!("{sql} = {expected}"), || (db.count(sql) == expected).then_some(()));
}

/// A setup whose `database` is `db`, reached at `address` if given (a proxy).
fn setup_for(db: &postgres::Database, address: Option<&str>) -> Setup {
    let mut setup = Setup::new().with_admin_token();
    setup.config["database"] = address.map_or_else(|| db.config(), |address| db.config_via(address));
    setup
}

/// `(id, status, last_error)` of every event in the journal.
fn journal(setup: &Setup) -> Vec<Vec<Value>> {
    query(&setup.journal(), "SELECT id, status, last_error FROM events ORDER BY id")
}

/// Waits until no event is pending; returns [`journal`].
fn settled(setup: &Setup, count: usize) -> Vec<Vec<Value>> {
    wait_for(PATIENCE, &format!("{count} events settled"), || {
        let rows = journal(setup);
        Some(rows).filter(|rows| rows.len() == count && rows.iter().all(|r| r[1] != "pending"))
    })
}

/// The journal's last error of event `id`, once it has one.
fn error_of(setup: &Setup, id: i64) -> String {
    wait_for(PATIENCE, &format!("the error of event {id}"), || {
        let rows = query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {id}"));
        rows[0][0].as_str().map(str::to_string)
    })
}

/// Posts one event, expecting it accepted; returns its journal id.
fn post(middleware: &Middleware, event: &Value) -> i64 {
    let response = middleware.post_event(&event.to_string());
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["id"].as_i64().expect("a journal id")
}

/// The journal's receive times, as `timestamp(3)` reads back in UTC.
fn received_times(setup: &Setup) -> Vec<String> {
    query(&setup.journal(), "SELECT received_at FROM events ORDER BY id")
        .iter()
        .map(|r| r[0].as_str().unwrap().replace('T', " ").trim_end_matches('Z').to_string())
        .collect()
}

// ------------------------------------------------------------ the seed's events

#[test]
fn the_seed_events_land_in_realistic_tables_and_updates_by_key_change_the_row() {
    let test = "the_seed_events_land_in_realistic_tables_and_updates_by_key_change_the_row";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    let mut setup = setup_for(&db, None);
    setup.config["database"]["application_name"] = json!("buktor-seed-test");
    let middleware = setup.start();

    // The seed documentation's three curl bodies, byte for byte; the
    // payment's amount is a string ("1500") for a NUMERIC column.
    for body in buktor_tests::seed::CURL_BODIES {
        assert_eq!(middleware.post_event(body).status, 200, "{body}");
    }
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_payments""#, 1);
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_appointments""#, 1);
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_schedules""#, 1);

    // received_at is the receive time (UTC: the default HIS zone), as the
    // journal recorded it, to the millisecond.
    let received = received_times(&setup);
    assert_eq!(
        db.rows(
            r#"SELECT "HIS_appointment_id", "HIS_status", to_char("HIS_created_at", 'YYYY-MM-DD HH24:MI:SS.MS')
               FROM "HIS_appointments""#
        ),
        [strings(&["123", "confirmed", &received[0]])]
    );
    assert_eq!(
        db.rows(
            r#"SELECT "HIS_schedule_id", "HIS_new_time", to_char("HIS_updated_at", 'YYYY-MM-DD HH24:MI:SS.MS')
               FROM "HIS_schedules""#
        ),
        [strings(&["456", "2025-03-03 09:00:00", &received[1]])]
    );
    assert_eq!(
        db.rows(r#"SELECT "HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at" FROM "HIS_payments""#),
        [strings(&["789", "1500.00", "paid", "2025-03-02 11:00:00"])]
    );
    // The plugin's session says who it is.
    let sessions = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'buktor-seed-test'",
        db.name
    );
    assert!(db.count(&sessions) >= 1, "application_name set on the plugin's session");

    // Updates by key: the same rows change, none is added.
    for body in [
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "cancelled"}"#,
        r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-04T10:30:00"}"#,
        r#"{"event_type": "payment", "payment_id": 789, "amount": 1499.99, "status": "refunded", "paid_at": "2025-03-05T08:00:00"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200, "{body}");
    }
    wait_for(PATIENCE, "the three updates", || {
        let done = db.count(
            r#"SELECT (SELECT COUNT(*) FROM "HIS_appointments" WHERE "HIS_status" = 'cancelled')
                    + (SELECT COUNT(*) FROM "HIS_payments" WHERE "HIS_payment_status" = 'refunded')
                    + (SELECT COUNT(*) FROM "HIS_schedules" WHERE "HIS_new_time" = '2025-03-04 10:30:00')"#,
        );
        (done == 3).then_some(())
    });
    for table in ["HIS_appointments", "HIS_schedules", "HIS_payments"] {
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM {}", quote(table))), 1, "{table}: no duplicate");
    }
    assert_eq!(
        db.rows(r#"SELECT "HIS_payment_id", "HIS_amount", "HIS_payment_status", "HIS_paid_at" FROM "HIS_payments""#),
        [strings(&["789", "1499.99", "refunded", "2025-03-05 08:00:00"])]
    );
    let outcomes = settled(&setup, 6);
    assert!(outcomes.iter().all(|r| r[1] == "delivered" && r[2].is_null()), "{outcomes:?}");
}

// ------------------------------------------------------------ actions and value kinds

/// The HIS table after `actions::EVENTS` and [`MORE_ACTIONS`]: id, status,
/// created_at.
fn expected_actions() -> Vec<Vec<Option<String>>> {
    vec![
        strings(&["1", "arrived", "2026-01-05 09:00:00"]),
        strings(&["2", "C", "2026-01-05 10:00:00"]),
        strings(&["4", "ensured", "2026-01-05 12:00:00"]),
        strings(&["60", "ensured", "2026-01-07 08:00:00"]),
    ]
}

/// After `actions::EVENTS`: update with `if_missing: ignore` of a key with
/// no row (nothing written, delivered), and `if_missing: insert` of a key
/// with no row (inserted) and of one with a row (a partial update).
const MORE_ACTIONS: [&str; 3] = [
    r#"{"event_type": "appointment_touch", "appointment_id": 50, "status": "ignored"}"#,
    r#"{"event_type": "appointment_ensure", "appointment_id": 60, "status": "ensured", "booked_at": "2026-01-07T08:00:00"}"#,
    r#"{"event_type": "appointment_ensure", "appointment_id": 4, "status": "ensured"}"#,
];

#[test]
fn every_write_action_and_partial_rows() {
    let Some(server) = postgres::server("every_write_action_and_partial_rows") else { return };
    let db = server.database();
    db.execute(
        r#"CREATE TABLE "HIS_appointments" ("HIS_appointment_id" BIGINT PRIMARY KEY, "HIS_status" VARCHAR(32),
                                            "HIS_created_at" TIMESTAMP)"#,
    );
    let mut setup = setup_for(&db, None);
    let mut mappings = actions::mappings("HIS_appointments");
    mappings["appointment_touch"] = json!({"table": "HIS_appointments", "action": "update", "if_missing": "ignore",
        "fields": actions::fields(json!({"status": "HIS_status"}))});
    mappings["appointment_ensure"] = json!({"table": "HIS_appointments", "action": "update", "if_missing": "insert",
        "on_missing": "keep", "fields": actions::status_and_booking()});
    setup.config["mapping"] = mappings;
    let middleware = setup.start();
    for event in actions::EVENTS.iter().chain(&MORE_ACTIONS) {
        assert_eq!(middleware.post_event(event).status, 200, "{event}");
    }
    let outcomes = settled(&setup, actions::EVENTS.len() + MORE_ACTIONS.len());
    let statuses: Vec<&str> = outcomes.iter().map(|r| r[1].as_str().unwrap()).collect();
    let expected: Vec<&str> = actions::STATUSES.iter().copied().chain(["delivered"; 3]).collect();
    assert_eq!(statuses, expected, "{outcomes:?}");
    let missing = outcomes[4][2].as_str().unwrap();
    assert!(missing.contains("update: no row of HIS_appointments has this key"), "{missing}");
    let exists = outcomes[8][2].as_str().unwrap();
    assert!(exists.contains("insert: a row with this key exists"), "{exists}");
    assert_eq!(
        db.rows(r#"SELECT "HIS_appointment_id", "HIS_status", "HIS_created_at" FROM "HIS_appointments" ORDER BY 1"#),
        expected_actions()
    );
    verified(
        "every_write_action_and_partial_rows",
        "upsert, insert (new/existing), update (error/ignore/insert), delete, soft_delete, partial rows in PostgreSQL",
    );
}

/// Every kind of value the mapping makes (it makes no BYTES and no FLOAT:
/// JSON has no bytes, and a number with a point is an exact decimal; the
/// conformance kit below binds both), each into the PostgreSQL type an HIS
/// would give it; then a partial row that leaves every other column alone.
#[test]
fn every_value_kind_arrives_exactly_and_a_partial_row_leaves_other_columns_alone() {
    let test = "every_value_kind_arrives_exactly_and_a_partial_row_leaves_other_columns_alone";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(
        r#"CREATE TABLE "HIS_values" (
            "k" BIGINT PRIMARY KEY, "flag" BOOLEAN, "n" BIGINT, "small" INTEGER, "big" NUMERIC(38,10),
            "amount" NUMERIC(12,2), "ratio" DOUBLE PRECISION, "label" TEXT, "code" VARCHAR(20),
            "at_tz" TIMESTAMPTZ, "at_local" TIMESTAMP, "naive" TIMESTAMP, "naive_tz" TIMESTAMPTZ,
            "born" DATE, "nothing" TEXT, "details" TEXT)"#,
    );
    let mut setup = setup_for(&db, None);
    setup.config["database"]["timezone"] = json!("+05:30");
    let columns = [
        "k", "flag", "n", "small", "big", "amount", "ratio", "label", "code", "at_tz", "at_local", "naive", "naive_tz",
        "born", "nothing", "details",
    ];
    let fields: Map<String, Value> = columns.iter().map(|c| (c.to_string(), json!(c))).collect();
    setup.config["mapping"] = json!({
        "values": {"table": "HIS_values", "key": ["k"], "fields": fields},
        "relabel": {"table": "HIS_values", "key": ["k"], "on_missing": "keep", "fields": fields},
    });
    let middleware = setup.start();
    let label = "O'Brien said \"hi\"; -- \\ é 患者 😀";
    // The body's text, so that the numbers go as written (a serde_json
    // Value would round the 38-digit one through a float).
    let body = format!(
        r#"{{"event_type": "values", "k": 1, "flag": true, "n": 9007199254740993, "small": -42,
            "big": 1234567890123456789012345678.0123456789, "amount": "1500", "ratio": 0.25,
            "label": {label}, "code": "007",
            "at_tz": "2025-03-02T11:00:00+02:00", "at_local": "2025-03-02T11:00:00Z",
            "naive": "2025-03-03T09:00:00", "naive_tz": "2025-03-03T09:00:00",
            "born": "1990-05-17", "nothing": null, "details": {{"a": [1, "x"]}}}}"#,
        label = json!(label)
    );
    assert_eq!(middleware.post_event(&body).status, 200);
    let second = json!({"event_type": "values", "k": 2, "flag": false, "n": i64::MIN,
        "big": "-0.0000000001", "amount": -12.5, "at_tz": "2025-03-02T23:30:00.123Z", "born": "2024-02-29"});
    post(&middleware, &second);
    let outcomes = settled(&setup, 2);
    assert!(outcomes.iter().all(|r| r[1] == "delivered"), "{outcomes:?}");
    let read = |k: i64| {
        db.rows(&format!(
            r#"SELECT "k", "flag", "n", "small", "big", "amount", "ratio", "label", "code",
                      to_char("at_tz" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), "at_local", "naive",
                      to_char("naive_tz" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "born", "nothing", "details"
               FROM "HIS_values" WHERE "k" = {k}"#
        ))
    };
    assert_eq!(
        read(1),
        [vec![
            Some("1".into()),
            Some("t".into()),
            Some("9007199254740993".into()),
            Some("-42".into()),
            // 38 digits, exactly: never through a float.
            Some("1234567890123456789012345678.0123456789".into()),
            Some("1500.00".into()),
            Some("0.25".into()),
            Some(label.into()),
            Some("007".into()),
            // timestamptz: the instant, whatever the HIS zone.
            Some("2025-03-02 09:00:00.000".into()),
            // timestamp without time zone: 11:00 UTC is 16:30 at +05:30.
            Some("2025-03-02 16:30:00".into()),
            // No offset: the HIS's wall-clock time, as sent.
            Some("2025-03-03 09:00:00".into()),
            // No offset into timestamptz: the HIS zone's 09:00, 03:30 UTC.
            Some("2025-03-03 03:30:00".into()),
            Some("1990-05-17".into()),
            None,
            // An object is stored as its JSON text.
            Some(r#"{"a": [1, "x"]}"#.into()),
        ]],
        "row 1"
    );
    // Absent fields are NULL (on_missing: null, the default).
    let none = || None::<String>;
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        read(2),
        [vec![
            some("2"),
            some("f"),
            some("-9223372036854775808"),
            none(),
            // A decimal sent as a string, into NUMERIC.
            some("-0.0000000001"),
            some("-12.50"),
            none(),
            none(),
            none(),
            some("2025-03-02 23:30:00.123"),
            none(),
            none(),
            none(),
            // A leap day.
            some("2024-02-29"),
            none(),
            none(),
        ]],
        "row 2"
    );

    // A partial row (on_missing: keep): only the label changes.
    let before = read(1);
    post(&middleware, &json!({"event_type": "relabel", "k": 1, "label": "relabelled"}));
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_values" WHERE "label" = 'relabelled'"#, 1);
    let mut expected = before[0].clone();
    expected[7] = Some("relabelled".into());
    assert_eq!(read(1), [expected], "every other column left alone");
    // A partial row for a key with no row inserts what it carries.
    post(&middleware, &json!({"event_type": "relabel", "k": 3, "label": "only a label"}));
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_values" WHERE "k" = 3"#, 1);
    let row3 = read(3);
    assert_eq!(row3[0][7].as_deref(), Some("only a label"));
    assert!(row3[0].iter().enumerate().all(|(i, v)| i == 0 || i == 7 || v.is_none()), "{row3:?}");
}

/// Text for PostgreSQL's own types: a uuid, jsonb, an integer sent as a
/// string, and an enum. The plugin must not send text as `text`, which
/// PostgreSQL does not cast to these implicitly.
#[test]
fn text_values_reach_uuid_jsonb_and_enum_columns() {
    let Some(server) = postgres::server("text_values_reach_uuid_jsonb_and_enum_columns") else { return };
    let db = server.database();
    db.execute(
        r#"CREATE TYPE visit_kind AS ENUM ('outpatient', 'inpatient');
           CREATE TABLE "HIS_visits" ("visit_id" BIGINT PRIMARY KEY, "uid" UUID, "payload" JSONB,
                                      "ward" INTEGER, "kind" visit_kind)"#,
    );
    let mut setup = setup_for(&db, None);
    setup.config["mapping"] = json!({"visit": {"table": "HIS_visits",
        "fields": {"visit_id": "visit_id", "uid": "uid", "payload": "payload", "ward": "ward", "kind": "kind"}}});
    let middleware = setup.start();
    let id = post(
        &middleware,
        &json!({"event_type": "visit", "visit_id": 1, "uid": "0b7e7dee-87c0-4e29-9b1a-1a2b3c4d5e6f",
                "payload": {"bed": 7, "notes": ["a'b"]}, "ward": "12", "kind": "inpatient"}),
    );
    let outcomes = settled(&setup, 1);
    assert_eq!(outcomes[0][1], json!("delivered"), "event {id}: {outcomes:?}");
    assert_eq!(
        db.rows(r#"SELECT "visit_id", "uid", "payload" ->> 'bed', "payload" -> 'notes' ->> 0, "ward", "kind" FROM "HIS_visits""#),
        [strings(&["1", "0b7e7dee-87c0-4e29-9b1a-1a2b3c4d5e6f", "7", "a'b", "12", "inpatient"])]
    );
}

// ------------------------------------------------------------ volume

#[test]
fn a_burst_of_ten_thousand_events_arrives_completely() {
    let Some(server) = postgres::server("a_burst_of_ten_thousand_events_arrives_completely") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    // Every write to HIS_payments, counted.
    db.execute(
        r#"CREATE TABLE writes (payment_id BIGINT);
           CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO writes VALUES (NEW."HIS_payment_id"); RETURN NEW; END $$;
           CREATE TRIGGER count_writes AFTER INSERT OR UPDATE ON "HIS_payments"
               FOR EACH ROW EXECUTE FUNCTION count_write();"#,
    );
    let setup = setup_for(&db, None);
    let middleware = setup.start();
    let started = Instant::now();
    let mut ids = middleware.post_concurrently(8, 10_000, |id| {
        json!({"event_type": "payment", "payment_id": id, "amount": format!("{id}.25"), "status": "paid"}).to_string()
    });
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "each answer names its own journal id");
    wait_for(Duration::from_secs(120), "10,000 rows", || {
        (db.count(r#"SELECT COUNT(*) FROM "HIS_payments""#) == 10_000).then_some(())
    });
    let arrived = started.elapsed();
    // Sum of id + 0.25 over 0..10000, exactly: 49,995,000 + 2,500.
    assert_eq!(db.rows(r#"SELECT SUM("HIS_amount") FROM "HIS_payments""#), [strings(&["49997500.00"])]);
    assert_eq!(db.count("SELECT COUNT(*) FROM writes"), 10_000, "one write per event");
    for id in [0, 1, 4_999, 9_999] {
        assert_eq!(
            db.rows(&format!(
                r#"SELECT "HIS_amount", "HIS_payment_status" FROM "HIS_payments" WHERE "HIS_payment_id" = {id}"#
            )),
            [strings(&[&format!("{id}.25"), "paid"])]
        );
    }
    wait_for(PATIENCE, "10,000 events marked delivered", || {
        let delivered = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (delivered == [vec![json!(10_000)]]).then_some(())
    });
    verified(
        "a_burst_of_ten_thousand_events_arrives_completely",
        &format!(
            "10,000 events posted by 8 senders were all in PostgreSQL {:.1}s after the first",
            arrived.as_secs_f64()
        ),
    );
}

// ------------------------------------------------------------ outages and locks

/// `/ready` says the HIS does not answer (once the worker has tried it).
fn assert_his_unreachable_on_ready(middleware: &Middleware) {
    let not_ready = wait_for(PATIENCE, "/ready to say the HIS does not answer", || {
        let ready = middleware.ready_in_full();
        (ready.status == 503).then_some(ready)
    });
    let local = middleware.request("GET", "/ready", &[], b"");
    assert_eq!(local.json()["reasons"], json!(["his_unreachable"]), "{}", local.body);
    let reasons = not_ready.json()["reasons"].clone();
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("the HIS database did not answer: ")),
        "{reasons}"
    );
}

/// Event `n` of the outage test: row `n % 10`, state `v<n>`.
fn outage_event(n: usize) -> Value {
    json!({"event_type": "appointment", "appointment_id": n % 10, "status": format!("v{n}")})
}

#[test]
fn events_wait_while_postgres_is_unreachable_and_arrive_in_order_once_it_is_back() {
    let test = "events_wait_while_postgres_is_unreachable_and_arrive_in_order_once_it_is_back";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(AUDIT);
    let proxy = Proxy::start(&server.address());
    proxy.cut();
    let setup = setup_for(&db, Some(&proxy.address));

    // Unreachable at startup: the middleware starts anyway and journals.
    let middleware = setup.start();
    assert!(middleware.logs().contains("not reachable yet"), "{}", middleware.logs());
    for n in 0..50 {
        post(&middleware, &outage_event(n));
    }
    assert_eq!(setup.journal_statuses(), [vec![json!("pending"), json!(50)]], "every event waits in the journal");
    assert_his_unreachable_on_ready(&middleware);
    proxy.restore();
    wait_for(PATIENCE, "the 50 recorded as delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(50)]]).then_some(())
    });
    assert_eq!(middleware.request("GET", "/ready", &[], b"").status, 200);

    // Cut during a run: the plugin's connection dies under it.
    proxy.cut();
    for n in 50..150 {
        post(&middleware, &outage_event(n));
    }
    wait_for(PATIENCE, "a failed write while cut", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'pending' AND attempts > 0");
        (rows[0][0].as_i64().unwrap_or(0) > 0).then_some(())
    });
    assert_his_unreachable_on_ready(&middleware);
    let error =
        query(&setup.journal(), "SELECT last_error FROM events WHERE attempts > 0 AND status = 'pending' LIMIT 1");
    assert!(
        error[0][0].as_str().is_some_and(|e| e.contains("(retryable)")),
        "a lost connection is retryable: {error:?}"
    );
    proxy.restore();
    wait_for(PATIENCE, "all 150 delivered", || {
        (setup.journal_statuses() == [vec![json!("delivered"), json!(150)]]).then_some(())
    });

    // None lost, none reordered: every row went through each of its states
    // in the order they were sent, and ends in its last.
    let histories = db.histories();
    assert_eq!(histories.len(), 10);
    for key in 0..10usize {
        let expected: Vec<usize> = (key..150).step_by(10).collect();
        let history = &histories[&(key as i64)];
        assert_eq!(audit::reversals(&audit::collapsed(history)), 0, "row {key} went back: {history:?}");
        assert!(audit::holds_in_order(history, &expected), "row {key}, every state in order: {history:?}");
        let last =
            db.rows(&format!(r#"SELECT "HIS_status" FROM "HIS_appointments" WHERE "HIS_appointment_id" = {key}"#));
        assert_eq!(last, [vec![Some(format!("v{}", expected.last().unwrap()))]]);
    }
    let logs = middleware.logs();
    assert!(logs.contains("the HIS is not reachable ("), "one line when it goes:\n{logs}");
    wait_for(PATIENCE, "one line when it is back", || logs_contain(&middleware, "the HIS is reachable again; "));
}

fn logs_contain(middleware: &Middleware, text: &str) -> Option<()> {
    middleware.logs().contains(text).then_some(())
}

/// One row locked by another session (`SELECT … FOR UPDATE`, held): with
/// `lock_timeout_secs: 1` the writer gives up on it as a retryable
/// conflict (SQLSTATE 55P03), the other rows' events flow meanwhile, and
/// the locked row's arrive, in order, once the lock is released.
#[test]
fn a_locked_row_holds_back_only_its_own_events() {
    const LOCKED: i64 = 1;
    const OTHERS: i64 = 1_000;
    const OTHER_ROWS: usize = 500;
    let Some(server) = postgres::server("a_locked_row_holds_back_only_its_own_events") else { return };
    let db = server.database();
    db.execute(AUDIT);
    let mut setup = setup_for(&db, None);
    setup.config["database"]["lock_timeout_secs"] = json!(1);
    setup.config["sync"]["retry_initial_delay_ms"] = json!(2_000);
    setup.config["sync"]["retry_max_delay_secs"] = json!(3);
    let middleware = setup.start();
    let appointment = |key: i64, state: usize| json!({"event_type": "appointment", "appointment_id": key, "status": format!("v{state}")});
    let state = || {
        db.rows(&format!(r#"SELECT "HIS_status" FROM "HIS_appointments" WHERE "HIS_appointment_id" = {LOCKED}"#))
            .first()
            .and_then(|row| row[0].clone())
    };
    for n in [1, 2] {
        post(&middleware, &appointment(LOCKED, n));
    }
    wait_for(PATIENCE, "the locked row's first states", || (state() == Some("v2".into())).then_some(()));

    let lock =
        db.lock(&format!(r#"SELECT * FROM "HIS_appointments" WHERE "HIS_appointment_id" = {LOCKED} FOR UPDATE"#));
    // s3, s4, s5 of the locked row, each among other rows' events.
    let mut locked_ids = Vec::new();
    for n in 3..=5 {
        locked_ids.push(post(&middleware, &appointment(LOCKED, n)));
        for other in 0..10 {
            post(&middleware, &appointment(OTHERS + ((n - 3) * 10 + other) as i64, 1));
        }
    }
    let more = middleware.post_concurrently(4, OTHER_ROWS - 30, |n| {
        json!({"event_type": "appointment", "appointment_id": 1_030 + n, "status": "v1"}).to_string()
    });
    assert_eq!(more.len(), OTHER_ROWS - 30);

    let error = error_of(&setup, locked_ids[0]);
    assert!(error.starts_with("conflict error (retryable): "), "a lock wait is a retryable conflict: {error}");
    assert!(error.ends_with("(code 55P03)"), "PostgreSQL's lock_not_available: {error}");
    let others = format!(r#"SELECT COUNT(*) FROM "HIS_appointments" WHERE "HIS_appointment_id" >= {OTHERS}"#);
    wait_for(Duration::from_secs(60), "the other rows while the row is locked", || {
        (db.count(&others) == OTHER_ROWS as i64).then_some(())
    });
    // The journal marks a write delivered just after its commit: wait for
    // it, the row still locked.
    let held_others = format!(
        "SELECT COUNT(*) FROM events WHERE status <> 'delivered' AND id NOT IN ({})",
        locked_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    );
    wait_for(PATIENCE, "only the locked row's events wait", || {
        (query(&setup.journal(), &held_others) == [vec![json!(0)]]).then_some(())
    });
    assert_eq!(state(), Some("v2".into()), "the locked row keeps its state while locked");
    let waiting = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'");
    assert_eq!(waiting, [vec![json!(locked_ids.len())]], "the locked row's events still wait");

    lock.release();
    wait_for(Duration::from_secs(60), "the locked row at v5 once released", || {
        (state() == Some("v5".into())).then_some(())
    });
    wait_for(PATIENCE, "every event delivered", || {
        (query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'") == [vec![json!(0)]])
            .then_some(())
    });
    let histories = db.histories();
    let history = &histories[&LOCKED];
    assert_eq!(audit::reversals(history), 0, "the locked row moved back: {history:?}");
    assert!(audit::holds_in_order(history, &[1, 2, 3, 4, 5]), "its states in order: {history:?}");
    assert_eq!(histories.len(), 1 + OTHER_ROWS, "every row written");
}

// ------------------------------------------------------------ hostile input

/// A table name that would drop `appointments` if pasted with any quote
/// left undoubled.
const TABLE: &str = "x\"`]'; DROP TABLE appointments; --";
const KEY_COLUMN: &str = "id\"`']; DROP TABLE sentinel; --";
/// Column names that need quoting; PostgreSQL takes all of them (at most
/// 63 bytes each; 4-byte UTF-8 and trailing spaces allowed).
const COLUMNS: [&str; 17] = [
    "a\"b",
    "c`d",
    "e'f",
    "[g]h]",
    "i;j",
    "k l",
    "m -- n",
    "/* o */",
    "naïve",
    "? :p $q @r ?1",
    "$1",
    "back\\slash \\' \\\"",
    "x\"); DROP TABLE appointments; --",
    "z'); DROP TABLE sentinel; --",
    "$$; DROP TABLE sentinel; $$",
    "emoji 😀 𝄞 患者",
    " padded with spaces ",
];

const SENTINELS: &str = "
    CREATE TABLE appointments (id INTEGER PRIMARY KEY, note TEXT);
    INSERT INTO appointments VALUES (1, 'still here');
    CREATE TABLE sentinel (id INTEGER PRIMARY KEY, note TEXT);
    INSERT INTO sentinel VALUES (1, 'still here');";

/// Every column and index of the database's public schema.
fn schema(db: &postgres::Database) -> Vec<Vec<Option<String>>> {
    db.rows(
        "SELECT 'column', table_name, column_name, ordinal_position::text, data_type
         FROM information_schema.columns WHERE table_schema = 'public'
         UNION ALL SELECT 'index', tablename, indexname, '', indexdef FROM pg_indexes WHERE schemaname = 'public'
         ORDER BY 1, 2, 3, 4",
    )
}

fn assert_sentinels_intact(db: &postgres::Database) {
    for table in ["appointments", "sentinel"] {
        assert_eq!(db.rows(&format!("SELECT id, note FROM {table}")), [strings(&["1", "still here"])], "{table}");
    }
}

#[test]
fn hostile_table_and_column_names_are_quoted_exactly() {
    let Some(server) = postgres::server("hostile_table_and_column_names_are_quoted_exactly") else { return };
    let db = server.database();
    db.execute(SENTINELS);
    let column_list: Vec<String> = COLUMNS.iter().map(|c| format!("{} TEXT", quote(c))).collect();
    db.execute(&format!(
        "CREATE TABLE {} ({} BIGINT PRIMARY KEY, {})",
        quote(TABLE),
        quote(KEY_COLUMN),
        column_list.join(", ")
    ));
    let before = schema(&db);
    let mut fields = Map::new();
    fields.insert("id".into(), json!(KEY_COLUMN));
    for (i, column) in COLUMNS.iter().enumerate() {
        fields.insert(format!("f{i}"), json!(column));
    }
    let mut setup = setup_for(&db, None);
    setup.config["mapping"] = json!({"hostile": {"table": TABLE, "fields": fields, "key": ["id"]}});
    let middleware = setup.start();
    let event = |id: i64, version: &str| {
        let mut event = Map::new();
        event.insert("event_type".into(), json!("hostile"));
        event.insert("id".into(), json!(id));
        for (i, column) in COLUMNS.iter().enumerate() {
            event.insert(format!("f{i}"), json!(format!("{version} value of {column} for {id}")));
        }
        Value::Object(event)
    };
    // Row 1, then its update (the ON CONFLICT branch), then row 2.
    post(&middleware, &event(1, "old"));
    settled(&setup, 1);
    post(&middleware, &event(1, "new"));
    post(&middleware, &event(2, "new"));
    let outcomes = settled(&setup, 3);
    assert!(outcomes.iter().all(|r| r[1] == "delivered" && r[2].is_null()), "{outcomes:?}");

    let list: Vec<String> = std::iter::once(KEY_COLUMN).chain(COLUMNS).map(quote).collect();
    let rows = db.rows(&format!("SELECT {} FROM {} ORDER BY 1", list.join(", "), quote(TABLE)));
    let expected: Vec<Vec<Option<String>>> = (1..=2)
        .map(|id| {
            std::iter::once(id.to_string())
                .chain(COLUMNS.iter().map(|c| format!("new value of {c} for {id}")))
                .map(Some)
                .collect()
        })
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(schema(&db), before, "nothing created, dropped or altered");
    assert_sentinels_intact(&db);
}

/// Values that would be SQL if pasted, or that a careless writer mangles,
/// are bound and come back byte for byte. NUL is the one thing PostgreSQL
/// text cannot hold: that event is refused as a permanent data error with
/// the server's message, named on its own row, while the others arrive.
#[test]
fn hostile_values_are_stored_literally_and_nul_is_refused_cleanly() {
    let Some(server) = postgres::server("hostile_values_are_stored_literally_and_nul_is_refused_cleanly") else {
        return;
    };
    let db = server.database();
    db.execute(SENTINELS);
    db.execute(r#"CREATE TABLE notes (note_id VARCHAR(255) PRIMARY KEY, body TEXT, code VARCHAR(10))"#);
    let before = schema(&db);
    let mut setup = setup_for(&db, None);
    setup.config["server"]["max_body_bytes"] = json!(4 * 1024 * 1024);
    setup.config["mapping"] =
        json!({"note": {"table": "notes", "fields": {"note_id": "note_id", "text": "body", "code": "code"}}});
    let middleware = setup.start();

    let long: String = "O'Reilly \"said\" `x` \\ ; -- é 😀 $1 ".chars().cycle().take(300 * 1024).collect();
    let values: Vec<String> = [
        "'); DROP TABLE notes; --",
        "' OR '1'='1",
        "\" OR \"\"=\"",
        "$1",
        "$1, $2); DROP TABLE sentinel; --",
        "$$; DROP TABLE sentinel; $$",
        "E'\\x00'",
        "back\\slash \\' \\\" \\n \\\\",
        "%_ LIKE wildcards, ? $1 :name @var",
        "${HIS_DB_PASSWORD}",
        "患者 ✓ 😀 𝄞 مرحبا שלום",
        "007",
        "-0.0",
        "1e308",
        "",
        " \t\r\n ",
        &long,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ids: Vec<i64> = values
        .iter()
        .enumerate()
        .map(|(i, text)| {
            post(
                &middleware,
                &json!({"event_type": "note", "note_id": format!("note-{i}"), "text": text, "code": "ok"}),
            )
        })
        .collect();
    // A key that is SQL.
    let sql_key = "'); DROP TABLE sentinel; --";
    post(&middleware, &json!({"event_type": "note", "note_id": sql_key, "text": "the key is SQL", "code": "ok"}));
    let nul =
        post(&middleware, &json!({"event_type": "note", "note_id": "nul", "text": "NUL \u{0} inside", "code": "ok"}));
    let too_long =
        post(&middleware, &json!({"event_type": "note", "note_id": "long", "text": "t", "code": "elevenchars"}));
    let outcomes = settled(&setup, ids.len() + 3);
    for id in &ids {
        let row = outcomes.iter().find(|r| r[0] == json!(id)).unwrap();
        assert_eq!(row[1], json!("delivered"), "{row:?}");
    }
    for (i, text) in values.iter().enumerate() {
        let stored = db.rows(&format!("SELECT body FROM notes WHERE note_id = 'note-{i}'"));
        assert!(stored.len() == 1 && stored[0][0].as_deref() == Some(text.as_str()), "value {i} stored literally");
    }
    assert_eq!(
        db.rows(&format!("SELECT body FROM notes WHERE note_id = '{}'", sql_key.replace('\'', "''"))),
        [strings(&["the key is SQL"])]
    );

    let nul_error = error_of(&setup, nul);
    assert!(nul_error.starts_with("data error: "), "a permanent data error: {nul_error}");
    assert!(nul_error.contains("0x00"), "the server's message: {nul_error}");
    assert!(nul_error.ends_with("(code 22021)"), "{nul_error}");
    let long_error = error_of(&setup, too_long);
    assert!(long_error.starts_with("data error: value too long for type character varying(10)"), "{long_error}");
    assert!(long_error.ends_with("(code 22001)"), "{long_error}");
    for (id, what) in [(nul, "nul"), (too_long, "long")] {
        let row = outcomes.iter().find(|r| r[0] == json!(id)).unwrap();
        assert_eq!(row[1], json!("failed"), "{what}: set aside, never dropped: {row:?}");
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM notes WHERE note_id = '{what}'")), 0);
    }
    assert_eq!(schema(&db), before, "nothing created, dropped or altered");
    assert_sentinels_intact(&db);
}

#[test]
fn an_unknown_column_fails_with_the_servers_message_while_others_flow() {
    let Some(server) = postgres::server("an_unknown_column_fails_with_the_servers_message_while_others_flow") else {
        return;
    };
    let db = server.database();
    db.execute(SEED_TABLES);
    let mut setup = setup_for(&db, None);
    setup.config["mapping"]["appointment"]["fields"]["room"] = json!("HIS_room");
    let middleware = setup.start();
    let bad = post(&middleware, &json!({"event_type": "appointment", "appointment_id": 1, "status": "x", "room": "7"}));
    for i in 0..20 {
        post(&middleware, &json!({"event_type": "payment", "payment_id": i, "amount": "1"}));
    }
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_payments""#, 20);
    let error = error_of(&setup, bad);
    assert!(error.starts_with("schema error: "), "{error}");
    assert!(error.contains(r#"column "HIS_room" of relation "HIS_appointments" does not exist"#), "{error}");
    assert!(error.ends_with("(code 42703)"), "{error}");
    let status = query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {bad}"));
    assert_eq!(status, [vec![json!("failed")]], "set aside, never dropped");
    assert_eq!(db.count(r#"SELECT COUNT(*) FROM "HIS_appointments""#), 0);
}

// ------------------------------------------------------------ login

/// The `error:` line of a middleware that stopped at startup: exactly one.
fn the_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "one error line:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn a_wrong_password_stops_at_startup_with_the_servers_message() {
    let test = "a_wrong_password_stops_at_startup_with_the_servers_message";
    let Some(server) = postgres::server(test) else { return };
    match server.checks_passwords() {
        Ok(true) => {}
        Ok(false) => {
            buktor_tests::skipped(
                test,
                &format!(
                    "the PostgreSQL server at {} lets the test user in with any password (a `trust` line in \
                     pg_hba.conf), so no password can be wrong there; a_user_the_server_does_not_know_… still runs",
                    server.address()
                ),
            );
            return;
        }
        Err(e) => panic!("probing the server with a wrong password: {e}"),
    }
    let db = server.database();
    let mut setup = setup_for(&db, None);
    setup.config["database"]["password"] = json!("not-the-password");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.starts_with("error: cannot open the postgres HIS database: "), "{line}");
    assert!(line.contains("password authentication failed for user \"buktor_test\""), "the server's message: {line}");
    assert!(line.contains("database.password"), "what to check: {line}");
    assert!(line.ends_with("(code 28P01)"), "the SQLSTATE: {line}");
    assert!(!stderr.contains("not-the-password"), "the password is never printed:\n{stderr}");
}

/// A login the server refuses whatever pg_hba.conf says: a role that does
/// not exist (SQLSTATE 28000 under `trust`, 28P01 where passwords are
/// checked).
#[test]
fn a_user_the_server_does_not_know_stops_at_startup_with_the_servers_message() {
    let test = "a_user_the_server_does_not_know_stops_at_startup_with_the_servers_message";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    let mut setup = setup_for(&db, None);
    setup.config["database"]["user"] = json!("buktor_nobody");
    setup.config["database"]["password"] = json!("a-secret-password");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.starts_with("error: cannot open the postgres HIS database: "), "{line}");
    // Under `trust` the server says the role does not exist (28000); when
    // it checks passwords it does not tell which was wrong (28P01).
    assert!(
        line.contains("role \"buktor_nobody\" does not exist (")
            || line.contains("password authentication failed for user \"buktor_nobody\" ("),
        "the server's message: {line}"
    );
    assert!(line.ends_with("(code 28000)") || line.ends_with("(code 28P01)"), "the SQLSTATE: {line}");
    assert!(!stderr.contains("a-secret-password"), "the password is never printed:\n{stderr}");
}

// ------------------------------------------------------------ settings: TLS, schema, statement timeout

/// `pg_stat_ssl.ssl` of each session of `db` whose application name is
/// `application`: whether it uses TLS.
fn sessions_use_tls(db: &postgres::Database, application: &str) -> Vec<String> {
    db.rows(&format!(
        "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = '{}' AND a.application_name = '{application}'",
        db.name
    ))
    .into_iter()
    .map(|row| row[0].clone().unwrap_or_default())
    .collect()
}

/// Starts the middleware on `db` with `sslmode` (or its default), delivers
/// one payment, and returns whether the plugin's sessions use TLS.
fn tls_with(db: &postgres::Database, sslmode: Option<&str>, application: &str) -> Vec<String> {
    db.execute(r#"TRUNCATE "HIS_payments""#);
    let mut setup = setup_for(db, None);
    setup.config["database"]["application_name"] = json!(application);
    if let Some(mode) = sslmode {
        setup.config["database"]["sslmode"] = json!(mode);
    }
    let middleware = setup.start();
    post(&middleware, &json!({"event_type": "payment", "payment_id": 1, "amount": "10.00", "status": "paid"}));
    wait_for_count(db, r#"SELECT COUNT(*) FROM "HIS_payments""#, 1);
    // The writer keeps its connection between writes: its session is there.
    sessions_use_tls(db, application)
}

#[test]
fn tls_is_used_when_the_server_offers_it_and_not_with_sslmode_disable() {
    let test = "tls_is_used_when_the_server_offers_it_and_not_with_sslmode_disable";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    if db.rows("SHOW ssl") != [[Some("on".to_string())]] {
        buktor_tests::skipped(
            test,
            &format!("the PostgreSQL server at {} does not offer TLS (ssl = off)", server.address()),
        );
        return;
    }
    db.execute(SEED_TABLES);
    assert_eq!(tls_with(&db, None, "buktor-tls-default"), ["true"], "the default (prefer) takes the TLS offered");
    assert_eq!(tls_with(&db, Some("require"), "buktor-tls-require"), ["true"]);
    assert_eq!(tls_with(&db, Some("disable"), "buktor-tls-disable"), ["false"]);
}

/// A stand-in for a PostgreSQL server reached over TLS with a certificate
/// of its own CA, which nothing on this machine trusts: it answers the
/// client's SSLRequest with `S` and then only does the TLS handshake.
/// (The machine's own server cannot stand in: Debian puts its self-signed
/// certificate in /etc/ssl/certs, which sqlx trusts besides `ssl_ca`.)
/// Returns its address.
fn tls_server_no_one_trusts() -> String {
    use std::{
        io::{Read, Write},
        sync::Arc,
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate =
        rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap().self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            // SSLRequest: length 8, code 80877103.
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_err() || request != [0, 0, 0, 8, 4, 210, 22, 47] {
                continue;
            }
            let _ = stream.write_all(b"S");
            let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config.clone()).unwrap(), stream);
            // The client refuses the certificate and hangs up.
            let _ = tls.read(&mut [0u8; 64]);
        }
    });
    address
}

#[test]
fn an_ssl_ca_that_did_not_sign_the_servers_certificate_stops_startup_naming_it() {
    let test = "an_ssl_ca_that_did_not_sign_the_servers_certificate_stops_startup_naming_it";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    let mut setup = setup_for(&db, Some(&tls_server_no_one_trusts()));
    // A CA of the test's own: it signed nothing the server has.
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    std::fs::write(setup.path("other-ca.pem"), ca.pem()).unwrap();
    // Relative to the config file's folder; sslmode left out means verify-ca.
    setup.config["database"]["ssl_ca"] = json!("other-ca.pem");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.starts_with("error: cannot open the postgres HIS database: "), "{line}");
    assert!(line.contains("TLS with the PostgreSQL server failed: "), "{line}");
    assert!(line.contains("invalid peer certificate"), "the certificate's fault: {line}");
    assert!(line.contains("database.ssl_ca"), "what to check: {line}");

    // With sslmode disable, the file is refused before connecting.
    setup.config["database"]["sslmode"] = json!("disable");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.contains("database.ssl_ca: is only used with sslmode require, verify-ca or verify-full"), "{line}");
}

#[test]
fn a_schema_other_than_public_is_written_and_an_unknown_one_stops_startup() {
    let test = "a_schema_other_than_public_is_written_and_an_unknown_one_stops_startup";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    // The same table in public and in the HIS's own schema, whose name
    // needs quoting; only the configured one is written.
    let table = r#"("HIS_payment_id" BIGINT PRIMARY KEY, "HIS_amount" NUMERIC(12,2),
                    "HIS_payment_status" VARCHAR(32), "HIS_paid_at" TIMESTAMP)"#;
    db.execute(&format!(
        r#"CREATE SCHEMA "HIS data"; CREATE TABLE "HIS data"."HIS_payments" {table}; CREATE TABLE public."HIS_payments" {table}"#
    ));
    let mut setup = setup_for(&db, None);
    setup.config["database"]["schema"] = json!("HIS data");
    let middleware = setup.start();
    let payment = json!({"event_type": "payment", "payment_id": 5, "amount": "12.50", "status": "paid"});
    post(&middleware, &payment);
    post(&middleware, &json!({"event_type": "payment", "payment_id": 5, "amount": "13.00", "status": "paid"}));
    settled(&setup, 2);
    assert_eq!(
        db.rows(r#"SELECT "HIS_payment_id"::text, "HIS_amount"::text FROM "HIS data"."HIS_payments""#),
        [strings(&["5", "13.00"])],
        "inserted, then updated by key, in the configured schema"
    );
    assert_eq!(db.count(r#"SELECT COUNT(*) FROM public."HIS_payments""#), 0, "public is left alone");
    drop(middleware);

    let mut setup = setup_for(&db, None);
    setup.config["database"]["schema"] = json!("his_nope");
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = the_error_line(&stderr);
    assert!(line.contains("database.schema: the database has no schema \"his_nope\""), "{line}");
}

#[test]
fn a_write_longer_than_statement_timeout_secs_is_stopped_and_retried() {
    let test = "a_write_longer_than_statement_timeout_secs_is_stopped_and_retried";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    // A trigger of the HIS that takes 30 seconds per row.
    db.execute(
        r#"CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;
           CREATE TRIGGER slow BEFORE INSERT ON "HIS_payments" FOR EACH ROW EXECUTE FUNCTION slow()"#,
    );
    let mut setup = setup_for(&db, None);
    setup.config["database"]["statement_timeout_secs"] = json!(2);
    setup.config["database"]["lock_timeout_secs"] = json!(1);
    let middleware = setup.start();
    let id = post(&middleware, &json!({"event_type": "payment", "payment_id": 7, "amount": "1.00", "status": "paid"}));
    // Stopped at two seconds by the server (57014), or abandoned by the
    // plugin at the same limit: either way a timeout, kept for a retry.
    let error = error_of(&setup, id);
    assert!(
        error.contains("canceling statement due to statement timeout")
            || error.contains("took longer than 2000 ms and was abandoned"),
        "{error}"
    );
    assert_eq!(query(&setup.journal(), &format!("SELECT status FROM events WHERE id = {id}")), [[json!("pending")]]);
    // The HIS drops its trigger: the retry goes through.
    db.execute(r#"DROP TRIGGER slow ON "HIS_payments""#);
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_payments" WHERE "HIS_payment_id" = 7"#, 1);
    assert_eq!(settled(&setup, 1)[0][1], "delivered");
}

/// Whether each TCP connection process `pid` has to `port` sets
/// TCP_NODELAY, read from the process's own sockets (Linux's
/// `pidfd_getfd`, allowed on a child of the test).
#[cfg(target_os = "linux")]
fn nodelay_of_connections(pid: u32, port: u16) -> Vec<bool> {
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).expect("a pid"), PidfdFlags::empty()).expect("pidfd_open");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the middleware's fds") {
        let entry = entry.expect("an fd");
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()).filter(|_| is_socket) else { continue };
        let Ok(socket) = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) else { continue };
        let peer =
            rustix::net::getpeername(&socket).ok().flatten().and_then(|a| std::net::SocketAddr::try_from(a).ok());
        if peer.is_some_and(|peer| peer.port() == port) {
            found.push(rustix::net::sockopt::tcp_nodelay(&socket).expect("TCP_NODELAY of a TCP socket"));
        }
    }
    found
}

/// sqlx 0.9.0 leaves Nagle's algorithm on; over TLS a 500-row upsert then
/// waited 40 ms per batch for the server's delayed ACK (BENCHMARKS.md,
/// issue 23). The workspace patches sqlx-core with the upstream fix
/// (plugins/patched); without it this test fails.
#[cfg(target_os = "linux")]
#[test]
fn the_plugins_connections_send_without_delay() {
    let test = "the_plugins_connections_send_without_delay";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    let setup = setup_for(&db, None);
    let middleware = setup.start();
    post(&middleware, &json!({"event_type": "payment", "payment_id": 1, "amount": "1.00", "status": "paid"}));
    wait_for_count(&db, r#"SELECT COUNT(*) FROM "HIS_payments""#, 1);
    let port: u16 = server.address().rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("host:port");
    let nodelay = nodelay_of_connections(middleware.pid(), port);
    assert!(!nodelay.is_empty(), "the writer keeps a connection to port {port}");
    assert!(nodelay.iter().all(|&on| on), "TCP_NODELAY on every connection to PostgreSQL: {nodelay:?}");
}

// ------------------------------------------------------------ describe

#[test]
fn describe_reads_columns_types_and_keys() {
    let Some(server) = postgres::server("describe_reads_columns_types_and_keys") else { return };
    let db = server.database();
    db.execute(SEED_TABLES);
    db.execute(r#"CREATE UNIQUE INDEX payment_ref ON "HIS_payments" ("HIS_payment_status", "HIS_paid_at")"#);
    db.execute(r#"ALTER TABLE "HIS_payments" ALTER COLUMN "HIS_payment_status" SET DEFAULT 'new'"#);
    let setup = setup_for(&db, None);
    let output = Command::new(&artifacts().binary)
        .args(["describe", "HIS_payments", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let description: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(description["table"], json!("HIS_payments"), "{description}");
    let columns = description["columns"].as_array().expect("columns");
    let names: Vec<(&str, bool)> =
        columns.iter().map(|c| (c["name"].as_str().unwrap(), c["nullable"].as_bool().unwrap())).collect();
    assert_eq!(
        names,
        [("HIS_payment_id", false), ("HIS_amount", true), ("HIS_payment_status", true), ("HIS_paid_at", true)],
        "{description}"
    );
    // The key has no default; the status has one. (A nullable column
    // without one may be reported either way: an insert may leave it out.)
    assert_eq!(columns[0]["has_default"], json!(false), "{description}");
    assert_eq!(columns[2]["has_default"], json!(true), "{description}");
    let types: Vec<String> = columns.iter().map(|c| c["type"].as_str().unwrap().to_lowercase()).collect();
    assert!(types[0].contains("bigint") || types[0].contains("int8"), "{types:?}");
    assert!(types[1].contains("numeric(12,2)") || types[1].contains("numeric(12, 2)"), "{types:?}");
    assert!(types[2].contains("character varying(32)") || types[2].contains("varchar(32)"), "{types:?}");
    assert!(types[3].starts_with("timestamp"), "{types:?}");
    assert_eq!(description["primary_key"], json!(["HIS_payment_id"]), "{description}");
    assert_eq!(description["unique_keys"], json!([["HIS_payment_status", "HIS_paid_at"]]), "{description}");

    let missing = Command::new(&artifacts().binary)
        .args(["describe", "his_nothing_here", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "{}", String::from_utf8_lossy(&missing.stdout));
    assert!(stderr.contains("table \"his_nothing_here\" not found in the postgres HIS database"), "{stderr}");
}

// ------------------------------------------------------------ the conformance kit

/// The kit's tables for PostgreSQL (the kit prints DDL for the databases
/// it knows; these are its columns in PostgreSQL's types).
const KIT_TABLES: &str = "
    CREATE TABLE buktor_conformance (id BIGINT PRIMARY KEY, label VARCHAR(100), flag BOOLEAN, quantity BIGINT,
        amount NUMERIC(12,2), ratio DOUBLE PRECISION, happened_at TIMESTAMP(3), note VARCHAR(100), born_on DATE,
        photo BYTEA);
    CREATE TABLE buktor_conformance_values (kind VARCHAR(20) NOT NULL, happened_at TIMESTAMP(3) NOT NULL,
        amount NUMERIC(38,2) NOT NULL, born_on DATE NOT NULL, label VARCHAR(100),
        PRIMARY KEY (kind, happened_at, amount, born_on));";

/// Rows of the kit's large batch, and their first key.
const BIG_BATCH_ROWS: i64 = 35_000;

/// Runs `plugin-test` with `setup`'s config and `args`; returns the output
/// and each check's (status, name, detail), status `pass`, `FAIL` or `n/v`.
fn plugin_test(setup: &Setup, args: &[&str]) -> (Output, Vec<(String, String, String)>) {
    let output = Command::new(&artifacts().binary)
        .arg("--config")
        .arg(setup.write_config())
        .args(["plugin-test", "--plugin"])
        .arg(postgres::plugin())
        .args(args)
        .output()
        .expect("run buktor-middleware plugin-test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows = stdout
        .lines()
        .filter_map(|line| {
            let status = line.get(..4)?.trim_end();
            if !["pass", "FAIL", "n/v"].contains(&status) {
                return None;
            }
            let (name, detail) = line[6..].split_once("  ").unwrap_or((&line[6..], ""));
            Some((status.to_string(), name.to_string(), detail.trim_start().to_string()))
        })
        .collect();
    (output, rows)
}

fn detail<'a>(rows: &'a [(String, String, String)], check: &str, stdout: &str) -> &'a str {
    &rows.iter().find(|r| r.1 == check).unwrap_or_else(|| panic!("no {check} row:\n{stdout}")).2
}

#[test]
fn plugin_test_passes_every_check_against_postgres() {
    let Some(server) = postgres::server("plugin_test_passes_every_check_against_postgres") else { return };
    let db = server.database();
    let mut setup = Setup::new();
    setup.config["database"] = db.config();

    // Without the tables: the write checks fail as schema errors.
    let (output, rows) = plugin_test(&setup, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{stdout}");
    assert!(detail(&rows, "upsert", &stdout).starts_with("schema error (permanent)"), "{stdout}");

    db.execute(KIT_TABLES);
    // A closed port, for the kit's connection-loss check.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let unreachable = setup.path("unreachable");
    std::fs::create_dir_all(&unreachable).unwrap();
    let mut config = setup.config.clone();
    config["database"] = db.config_via(&closed);
    let unreachable = unreachable.join("his-config.json");
    std::fs::write(&unreachable, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let (output, rows) = plugin_test(&setup, &["--unreachable-config", unreachable.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}:\n{stdout}\n{stderr}", output.status);
    assert_eq!(rows.len(), 29, "{stdout}");
    let not_passed: Vec<&(String, String, String)> = rows.iter().filter(|r| r.0 != "pass").collect();
    assert!(not_passed.is_empty(), "every check passes: {not_passed:?}\n{stdout}");
    assert!(stdout.ends_with("29 checks: 29 passed, 0 failed, 0 not verified\n"), "{stdout}");
    assert!(detail(&rows, "unknown table", &stdout).starts_with("refused as a permanent schema error"), "{stdout}");
    assert!(detail(&rows, "describe_table", &stdout).contains("id is a unique key"), "{stdout}");
    assert!(detail(&rows, "offset timestamp", &stdout).contains("the offset was converted"), "{stdout}");

    // What the kit cannot read back through the plugin: the rows.
    assert_eq!(
        db.rows("SELECT id, label FROM buktor_conformance WHERE id < 3 ORDER BY id"),
        [strings(&["1", "second"]), strings(&["2", "first"])],
        "insert then upsert: one row per key, with the second values"
    );
    assert_eq!(
        db.rows(
            "SELECT id, flag, quantity, amount, ratio, label, happened_at, born_on, photo, note \
             FROM buktor_conformance WHERE id = 3"
        ),
        [vec![
            Some("3".into()),
            Some("t".into()),
            Some("-42".into()),
            Some("1500.75".into()),
            Some("0.25".into()),
            Some("Zoë's \"quoted\" text; DROP TABLE x".into()),
            Some("2025-03-03 09:00:00".into()),
            Some("1990-05-17".into()),
            // BYTES, exactly: bytea's hex text.
            Some("\\x00017fff".into()),
            None
        ]]
    );
    assert_eq!(
        db.rows("SELECT id, label, note FROM buktor_conformance WHERE id IN (10, 17) ORDER BY id"),
        [strings(&["10", "partial", "soft-deleted"]), vec![Some("17".into()), None, Some("partial".into())]],
        "the partial rows left their absent columns alone"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance WHERE id >= 100000"), BIG_BATCH_ROWS);
    assert_eq!(db.count("SELECT COUNT(*) FROM buktor_conformance"), BIG_BATCH_ROWS + 4 + 7);
    assert_eq!(
        db.rows("SELECT amount FROM buktor_conformance_values WHERE kind = 'decimal' ORDER BY amount"),
        [strings(&["123456789012345678901234567890123456.78"]), strings(&["123456789012345678901234567890123456.79"])],
        "38 digits, exactly"
    );
}
