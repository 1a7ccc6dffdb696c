//! One HIS row locked by another session, against the real MariaDB
//! (`HIS_TEST_MYSQL_URL`; see tests/src/mysql.rs): the writer waits for it
//! at most `database.lock_timeout_secs`, reports a retryable conflict, and
//! only that row's events wait. The other rows' events flow while the lock
//! is held; the locked row's arrive, in order, once it is released.
//!
//! The events wait in the journal while the HIS is cut off (a TCP proxy),
//! and the lock is taken before the HIS comes back: so the worker's first
//! window after the cut holds the locked row's events in one batch with
//! others, and a conflict on that batch must not hold the others back
//! (before issue 20 the whole batch waited for a retry, again and again,
//! for as long as the lock was held).
//!
//! Nothing here is timed: every wait polls until its condition holds, with
//! one generous give-up guard ([`GUARD`]) so that a failure ends the test.

use std::time::{Duration, Instant};

use buktor_tests::{Setup, audit, mysql, proxy::Proxy, query, wait_for};
use serde_json::json;

/// How long any wait may take before the test gives up.
const GUARD: Duration = Duration::from_secs(120);

/// The row another session locks.
const LOCKED: i64 = 1;
/// A row whose one event, sent first while the HIS is cut off, makes the
/// worker fail once and back off: everything after it waits unattempted.
const FIRST: i64 = 2;
/// The other rows: keys `OTHERS..OTHERS + OTHER_ROWS`, one event each.
const OTHERS: i64 = 1_000;
const OTHER_ROWS: usize = 1_000;
/// How many of the other rows' events are sent among the locked row's
/// (an equal share after each of them); the rest follow at once.
const INTERLEAVED: usize = 30;

/// The locked row's states before the lock (`v1`, `v2`); then s1, s2, s3
/// are `v3`, `v4`, `v5`. A state's number is its place in the row's order,
/// as the audit helper reads it.
const BEFORE: [usize; 2] = [1, 2];
const WHILE_LOCKED: [usize; 3] = [3, 4, 5];

fn appointment(key: i64, state: usize) -> String {
    json!({"event_type": "appointment", "appointment_id": key, "status": format!("v{state}")}).to_string()
}

/// The `n`th other row's one event.
fn other(n: usize) -> String {
    appointment(OTHERS + n as i64, 1)
}

/// The other rows' events sent after the interleaved ones.
fn remaining_other(n: usize) -> String {
    other(INTERLEAVED + n)
}

/// The locked row's state in the HIS (a plain read: InnoDB does not make
/// it wait for the lock).
fn state(db: &mysql::Database) -> Option<String> {
    let rows = db.rows(&format!("SELECT HIS_status FROM HIS_appointments WHERE HIS_appointment_id = {LOCKED}"));
    rows.first().and_then(|row| row[0].clone())
}

#[test]
fn a_locked_row_holds_back_only_its_own_events() {
    let Some(server) = mysql::server("a_locked_row_holds_back_only_its_own_events") else { return };
    let db = server.database();
    // The appointments table, and every state each row goes through.
    db.execute(audit::MYSQL);
    let proxy = Proxy::start(&server.address());
    let mut setup = Setup::new();
    setup.config["database"] = db.config_via(&proxy.address);
    setup.config["database"]["lock_timeout_secs"] = json!(1);
    // A retry waits 8 to 12 s: long enough to see which events wait.
    setup.config["sync"]["retry_initial_delay_ms"] = json!(10_000);
    setup.config["sync"]["retry_max_delay_secs"] = json!(10);
    let middleware = setup.start();

    for n in BEFORE {
        assert_eq!(middleware.post_event(&appointment(LOCKED, n)).status, 200);
    }
    wait_for(GUARD, "the locked row's first states", || (state(&db) == Some("v2".into())).then_some(()));

    // The HIS cut off: what follows waits in the journal. One event fails
    // on the cut, and the worker backs off (8 to 12 s): the events after it
    // are not even tried until the HIS is back, and then the first window
    // holds them all, s1 in one batch with others.
    proxy.cut();
    let first = middleware.post_event(&appointment(FIRST, 1));
    assert_eq!(first.status, 200, "{}", first.body);
    let first_id = first.json()["id"].as_i64().expect("a journal id");
    wait_for(GUARD, "the worker to fail on the cut", || {
        let rows = query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {first_id}"));
        rows[0][0].as_str().map(str::to_string)
    });

    // s1, s2, s3 for the locked row, each followed by a few other rows'
    // events; then the rest of the other rows, from 8 senders at once.
    let mut locked_ids = Vec::new();
    let mut next_other = 0;
    for n in WHILE_LOCKED {
        let response = middleware.post_event(&appointment(LOCKED, n));
        assert_eq!(response.status, 200, "{}", response.body);
        locked_ids.push(response.json()["id"].as_i64().expect("a journal id"));
        for _ in 0..INTERLEAVED / WHILE_LOCKED.len() {
            assert_eq!(middleware.post_event(&other(next_other)).status, 200);
            next_other += 1;
        }
    }
    assert_eq!(next_other, INTERLEAVED);
    middleware.post_concurrently(8, OTHER_ROWS - INTERLEAVED, remaining_other);

    // Another session holds the row, as an HIS user's unfinished edit does;
    // then the HIS is back, with a backlog whose first window puts s1 in
    // one batch with other rows.
    let lock = db.lock(&format!("SELECT * FROM HIS_appointments WHERE HIS_appointment_id = {LOCKED} FOR UPDATE"));
    proxy.restore();
    let back = Instant::now();

    // The writer gave up on the lock after lock_timeout_secs and said so as
    // a retryable conflict (MariaDB's 1205), not as a timeout.
    let error = wait_for(GUARD, "the locked row's write to fail on the lock", || {
        let rows = query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {}", locked_ids[0]));
        rows[0][0].as_str().filter(|error| error.starts_with("conflict")).map(str::to_string)
    });
    assert!(error.starts_with("conflict error (retryable): ") && error.ends_with("(code 1205)"), "{error}");

    // Every other row arrives while the lock is still held, and none of
    // their events is ever set aside for the lock: the ten that shared a
    // batch with s1 were written one by one in the same pass (before issue
    // 20 they waited for a retry with s1, their last error the conflict).
    let others = format!("SELECT COUNT(*) FROM HIS_appointments WHERE HIS_appointment_id >= {OTHERS}");
    let locked_list = locked_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let waiting_for_the_lock = format!(
        "SELECT id FROM events WHERE last_error LIKE 'conflict%' AND id NOT IN ({locked_list}) ORDER BY id LIMIT 5"
    );
    wait_for(GUARD, "the 1,000 other rows in the HIS while the row is locked", || {
        let held = query(&setup.journal(), &waiting_for_the_lock);
        assert!(held.is_empty(), "other rows' events wait for a retry because of the locked row: {held:?}");
        (db.count(&others) == OTHER_ROWS as i64).then_some(())
    });
    assert_eq!(state(&db), Some("v2".into()), "the locked row keeps its old state while it is locked");
    let others_arrived = back.elapsed();

    // Released: the locked row's events follow, up to s3.
    lock.release();
    let released = Instant::now();
    let last = format!("v{}", WHILE_LOCKED[WHILE_LOCKED.len() - 1]);
    wait_for(GUARD, "the locked row at s3 once released", || (state(&db) == Some(last.clone())).then_some(()));
    let locked_arrived = released.elapsed();
    wait_for(GUARD, "every event recorded as delivered", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'");
        (rows == [vec![json!(0)]]).then_some(())
    });

    // The row never moved to an older state, and went through s1, s2, s3
    // in order; each other row was written with its one state.
    let histories = audit::mysql(&db);
    let history = &histories[&LOCKED];
    assert_eq!(audit::reversals(history), 0, "the locked row moved back: {history:?}");
    let all: Vec<usize> = BEFORE.iter().chain(&WHILE_LOCKED).copied().collect();
    assert!(audit::holds_in_order(history, &all), "the locked row's states, in order: {history:?}");
    assert_eq!(histories.len(), 2 + OTHER_ROWS, "every row was written");
    for (key, history) in histories.iter().filter(|(key, _)| **key != LOCKED) {
        assert_eq!(audit::collapsed(history), [1], "row {key}");
    }
    // Said, not asserted: how long things took on this machine, and how
    // many of the other rows' events took more than one attempt (those the
    // worker tried while the HIS was cut off, and the batch that shared a
    // conflict with s1 before it was tried row by row).
    let retried = query(
        &setup.journal(),
        &format!("SELECT COUNT(*) FROM events WHERE attempts > 1 AND id NOT IN ({locked_list})"),
    );
    buktor_tests::verified(
        "a_locked_row_holds_back_only_its_own_events",
        &format!(
            "the 1,000 other rows were all in the HIS {:.1}s after the HIS came back, while the row was locked \
             ({} of their events took more than one attempt, none set aside for the lock); the locked row \
             reached s3 {:.1}s after the lock was released",
            others_arrived.as_secs_f64(),
            retried[0][0],
            locked_arrived.as_secs_f64()
        ),
    );
}
