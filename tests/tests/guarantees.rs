//! The delivery guarantees, proved against the real MariaDB by killing and
//! cutting things: nothing acknowledged is lost, nothing is doubled, each
//! HIS row receives its updates in the order they arrived. The crash test
//! runs against PostgreSQL too (`HIS_TEST_POSTGRES_URL`).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use buktor_tests::{Setup, audit, http, mysql, postgres, proxy::Proxy, query, wait_for};
use serde_json::json;

/// A port free now, for a middleware that restarts on the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn setup_for(db: &mysql::Database, port: u16) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup.config["server"]["listen"] = json!(format!("127.0.0.1:{port}"));
    setup
}

/// Posts event `n` (row `n % rows`, state `v<n>`) with webhook-id `n` until
/// it is acknowledged, whatever happens to the middleware meanwhile.
fn post_until_acknowledged(address: &str, n: usize, rows: usize) -> i64 {
    let body = json!({"event_type": "appointment", "appointment_id": n % rows, "status": format!("v{n}")}).to_string();
    let webhook_id = format!("delivery-{n}");
    let headers = [("Content-Type", "application/json"), ("webhook-id", webhook_id.as_str())];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = http::request(address, "POST", "/receive-event", &headers, body.as_bytes())
            && response.status == 200
        {
            return response.json()["id"].as_i64().expect("a journal id");
        }
        assert!(Instant::now() < deadline, "event {n} was never acknowledged");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The states each row went through, with repeats in a row collapsed
/// (a batch written again after a crash writes the same state again).
fn applied_states(db: &mysql::Database) -> BTreeMap<i64, Vec<usize>> {
    audit::mysql(db).into_iter().map(|(key, history)| (key, audit::collapsed(&history))).collect()
}

/// A fresh database with the audited appointments table, behind a proxy
/// that is cut, and a setup that writes to it through the proxy in windows
/// (`sync.batch_size`) of 100 events: for a backlog.
fn cut_off_in_windows_of_100(server: &mysql::Server) -> (mysql::Database, Proxy, Setup) {
    let db = server.database();
    db.execute(audit::MYSQL);
    let proxy = Proxy::start(&server.address());
    proxy.cut();
    let mut setup = Setup::new();
    setup.config["database"] = db.config_via(&proxy.address);
    setup.config["sync"]["batch_size"] = json!(100);
    (db, proxy, setup)
}

fn wait_until_drained(setup: &Setup) {
    wait_for(Duration::from_secs(120), "the journal to drain", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'");
        (rows == [vec![json!(0)]]).then_some(())
    });
}

/// An HIS with the audited appointments table (tests/src/audit.rs), as
/// the crash test reads it: MariaDB's, or PostgreSQL's, whose names are
/// quoted.
trait AuditedHis {
    /// Its `database` section.
    fn config(&self) -> serde_json::Value;
    /// How many rows HIS_appointments holds.
    fn appointments(&self) -> i64;
    /// HIS_status of row `key`.
    fn status(&self, key: usize) -> Option<String>;
    /// Each row's states, in the order they were written.
    fn histories(&self) -> audit::Histories;
}

impl AuditedHis for mysql::Database {
    fn config(&self) -> serde_json::Value {
        mysql::Database::config(self)
    }
    fn appointments(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM HIS_appointments")
    }
    fn status(&self, key: usize) -> Option<String> {
        self.rows(&format!("SELECT HIS_status FROM HIS_appointments WHERE HIS_appointment_id = {key}"))[0][0].clone()
    }
    fn histories(&self) -> audit::Histories {
        audit::mysql(self)
    }
}

impl AuditedHis for postgres::Database {
    fn config(&self) -> serde_json::Value {
        postgres::Database::config(self)
    }
    fn appointments(&self) -> i64 {
        self.count(r#"SELECT COUNT(*) FROM "HIS_appointments""#)
    }
    fn status(&self, key: usize) -> Option<String> {
        self.rows(&format!(r#"SELECT "HIS_status" FROM "HIS_appointments" WHERE "HIS_appointment_id" = {key}"#))[0][0]
            .clone()
    }
    fn histories(&self) -> audit::Histories {
        postgres::Database::histories(self)
    }
}

#[test]
fn crash_test_nothing_acknowledged_is_lost_doubled_or_reordered() {
    let Some(server) = mysql::server("crash_test_nothing_acknowledged_is_lost_doubled_or_reordered") else { return };
    let db = server.database();
    db.execute(audit::MYSQL);
    crash_test("MariaDB", &db);
}

#[test]
fn postgres_crash_test_nothing_acknowledged_is_lost_doubled_or_reordered() {
    let test = "postgres_crash_test_nothing_acknowledged_is_lost_doubled_or_reordered";
    let Some(server) = postgres::server(test) else { return };
    let db = server.database();
    db.execute(postgres::AUDIT);
    crash_test("PostgreSQL", &db);
}

/// 5,000 events over 100 rows from 4 senders, resent until acknowledged,
/// while the middleware is killed (-9) and restarted at least 5 times.
fn crash_test(name: &str, db: &dyn AuditedHis) {
    let port = free_port();
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup.config["server"]["listen"] = json!(format!("127.0.0.1:{port}"));
    let address = format!("127.0.0.1:{port}");
    let (events, rows, senders) = (5_000, 100, 4);

    let mut middleware = setup.start();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let sending: Vec<_> = (0..senders)
        .map(|s| {
            let (address, acknowledged) = (address.clone(), acknowledged.clone());
            // Sender s sends n ≡ s (mod senders); rows are n mod 100, so each
            // row's events come from one sender, in order.
            std::thread::spawn(move || {
                for n in (s..events).step_by(senders) {
                    let id = post_until_acknowledged(&address, n, rows);
                    acknowledged.lock().unwrap().push((id, n));
                }
            })
        })
        .collect();

    // Kill -9 at (pseudo-)random moments while events flow, and restart.
    let mut kills = 0;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    while kills < 5 || sending.iter().any(|s| !s.is_finished()) && kills < 12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 400));
        middleware.kill();
        kills += 1;
        middleware = setup.start();
    }
    for sender in sending {
        sender.join().unwrap();
    }
    wait_until_drained(&setup);

    let acknowledged = acknowledged.lock().unwrap().clone();
    let delivered: i64 =
        query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'")[0][0].as_i64().unwrap();
    let journal_ids: HashSet<i64> = query(&setup.journal(), "SELECT id FROM events WHERE status = 'delivered'")
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    let lost = acknowledged.iter().filter(|(id, _)| !journal_ids.contains(id)).count();
    println!(
        "crash test ({name}): sent {events}, acknowledged {}, delivered {delivered}, kills {kills}, lost {lost}",
        acknowledged.len()
    );
    assert_eq!(acknowledged.len(), events);
    assert_eq!(lost, 0);
    assert_eq!(delivered, events as i64, "each delivery id journaled once, despite resends after kills");
    assert_eq!(db.appointments(), rows as i64, "every row arrived");

    let states: BTreeMap<i64, Vec<usize>> =
        db.histories().into_iter().map(|(key, history)| (key, audit::collapsed(&history))).collect();
    for key in 0..rows {
        let expected: Vec<usize> = (key..events).step_by(rows).collect();
        let applied = &states[&(key as i64)];
        // Every state in receive order; a crash may make a row skip none
        // and repeat some, but never go back.
        assert!(applied.windows(2).all(|w| w[0] < w[1]), "row {key} went back: {applied:?}");
        assert_eq!(applied.last(), expected.last(), "row {key} ends in its latest state");
        assert_eq!(db.status(key), Some(format!("v{}", expected.last().unwrap())));
    }
}

/// The crash test above kills while events come in at the intake rate, so
/// a pass rarely holds two states of one row. Here every kill lands while a
/// backlog drains: each pass holds several states of each row, and a kill
/// can fall between a pass's commit in the HIS and the record of its
/// outcomes in the journal.
#[test]
fn drain_crash_test_kills_while_a_backlog_drains_lose_nothing_and_keep_each_rows_states_in_order() {
    const ROWS: usize = 30;
    let test = "drain_crash_test_kills_while_a_backlog_drains_lose_nothing_and_keep_each_rows_states_in_order";
    let Some(server) = mysql::server(test) else { return };
    // Windows of 100 events: three or four states of every row in each.
    let (db, proxy, setup) = cut_off_in_windows_of_100(&server);
    let (events, kills) = (3_000, 6);

    // The backlog, built while the HIS is cut off: 100 states of each row.
    // Sender s sends n ≡ s (mod 6) and rows are n mod 30, so each row's
    // events come from one sender, in order: row n % 30 receives state v<n>
    // in the order of n.
    let mut middleware = setup.start();
    let mut acknowledged = middleware.post_concurrently(6, events, |n| {
        json!({"event_type": "appointment", "appointment_id": n % ROWS, "status": format!("v{n}")}).to_string()
    });
    acknowledged.sort();
    assert_eq!(setup.journal_statuses(), [vec![json!("pending"), json!(events)]], "the backlog waits in the journal");
    assert_eq!(db.count("SELECT COUNT(*) FROM applied"), 0);

    // The HIS back, a few milliseconds away (so that the drain takes long
    // enough to be caught in the middle): kill -9 each time it has gone
    // another seventh of the way, and restart.
    proxy.delay(Duration::from_millis(5));
    proxy.restore();
    let mut with_a_backlog_left = 0;
    for kill in 1..=kills {
        let writes = (kill * events / (kills + 1)) as i64;
        wait_for(Duration::from_secs(120), &format!("{writes} writes before kill {kill}"), || {
            (db.count("SELECT COUNT(*) FROM applied") >= writes).then_some(())
        });
        middleware.kill();
        let left = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'");
        if left[0][0].as_i64().unwrap() > 0 {
            with_a_backlog_left += 1;
        }
        middleware = setup.start();
    }
    wait_until_drained(&setup);
    drop(middleware);

    let delivered: Vec<i64> = query(&setup.journal(), "SELECT id FROM events WHERE status = 'delivered' ORDER BY id")
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    assert_eq!(delivered, acknowledged, "every acknowledged event delivered, each journaled once");
    assert_eq!(db.count("SELECT COUNT(*) FROM HIS_appointments"), ROWS as i64, "every row arrived");
    let histories = audit::mysql(&db);
    let mut reversals = 0;
    for key in 0..ROWS {
        let expected: Vec<usize> = (key..events).step_by(ROWS).collect();
        let last = db.rows(&format!("SELECT HIS_status FROM HIS_appointments WHERE HIS_appointment_id = {key}"));
        assert_eq!(last[0][0], Some(format!("v{}", expected.last().unwrap())), "row {key} ends in its last state");
        let history = &histories[&(key as i64)];
        assert!(history.iter().all(|n| n % ROWS == key), "row {key} took only its own states: {history:?}");
        assert!(
            audit::holds_in_order(history, &expected),
            "row {key} went through every one of its states, in receive order: {history:?}"
        );
        reversals += audit::reversals(&audit::collapsed(history));
    }
    // A kill between a segment's commit in the HIS and the record of its
    // outcomes used to have the restarted middleware write that segment
    // again, behind the later ones that did commit: the row went back for a
    // moment (s2 → s1 → s2), which HIS triggers saw. Each segment's
    // outcomes are now on disk before the next segment is written (issue
    // 20, item 4), so a restart repeats at most the newest state.
    let writes = db.count("SELECT COUNT(*) FROM applied");
    println!(
        "drain crash test: {events} events over {ROWS} rows, {kills} kills ({with_a_backlog_left} with a backlog left), \
         {writes} HIS writes, {reversals} reversals"
    );
    assert_eq!(with_a_backlog_left, kills, "every kill landed while the backlog drained");
    assert_eq!(reversals, 0, "no row ever moved back to an older state, even for a moment");
}

#[test]
fn outage_test_intake_keeps_accepting_through_a_20_second_cut() {
    let Some(server) = mysql::server("outage_test_intake_keeps_accepting_through_a_20_second_cut") else { return };
    let db = server.database();
    db.execute(audit::MYSQL);
    let proxy = Proxy::start(&server.address());
    let mut setup = Setup::new();
    setup.config["database"] = db.config_via(&proxy.address);
    let middleware = setup.start();

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (address, stop) = (middleware.address.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut sent, mut refused) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"event_type": "appointment", "appointment_id": sent, "status": "booked"}).to_string();
                let headers = [("Content-Type", "application/json")];
                match http::request(&address, "POST", "/receive-event", &headers, body.as_bytes()) {
                    Ok(response) if response.status == 200 => sent += 1,
                    _ => refused += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (sent, refused)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    proxy.cut();
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_secs(21));
    let during_cut = db.count("SELECT COUNT(*) FROM HIS_appointments");
    proxy.restore();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let (sent, refused) = sender.join().unwrap();
    let cut_for = cut_at.elapsed();

    wait_until_drained(&setup);
    let arrived = db.count("SELECT COUNT(*) FROM HIS_appointments");
    println!(
        "outage test: cut for {:.1}s, acknowledged {sent}, refused {refused}, rows while cut {during_cut}, arrived {arrived}, lost {}",
        cut_for.as_secs_f64(),
        sent as i64 - arrived
    );
    assert_eq!(refused, 0, "intake answered 2xx throughout the cut");
    assert!(sent > 500, "steady load: {sent}");
    assert_eq!(arrived, sent as i64, "everything acknowledged arrived once");
    // A cut can fall between MariaDB's commit and its answer: that batch
    // (at most sync.batch_size, 500, events) is then written again, an
    // upsert of the same state. Nothing else is: effectively once.
    let written_again =
        db.count("SELECT COUNT(*) FROM (SELECT k FROM applied GROUP BY k HAVING COUNT(*) > 1) AS again");
    println!("outage test: {written_again} rows written twice");
    assert!(written_again <= 500, "{written_again} rows written more than once: more than the batch the cut hit");
    let logs = middleware.logs();
    assert_eq!(logs.matches("the HIS is not reachable (").count(), 1, "one line when it goes:\n{logs}");
    assert_eq!(logs.matches("the HIS is reachable again").count(), 1, "one line when it is back");
}

#[test]
fn poison_test_one_refused_event_holds_only_its_row() {
    let Some(server) = mysql::server("poison_test_one_refused_event_holds_only_its_row") else { return };
    let db = server.database();
    db.execute(audit::MYSQL);
    let setup = setup_for(&db, free_port());
    let middleware = setup.start();
    let mut poison = 0;
    for n in 0..1_001 {
        // Event 500 has a status too long for VARCHAR(32): MariaDB refuses it.
        let status = if n == 500 { "x".repeat(40) } else { format!("v{n}") };
        let response = middleware
            .post_event(&json!({"event_type": "appointment", "appointment_id": n, "status": status}).to_string());
        if n == 500 {
            poison = response.json()["id"].as_i64().unwrap();
        }
    }
    let held = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 500, "status": "later"}"#);
    let held = held.json()["id"].as_i64().unwrap();
    wait_for(Duration::from_secs(30), "the 1,000 others", || {
        (db.count("SELECT COUNT(*) FROM HIS_appointments") == 1_000).then_some(())
    });
    let status = |id: i64| query(&setup.journal(), &format!("SELECT status, last_error FROM events WHERE id = {id}"));
    wait_for(Duration::from_secs(30), "the poison failed", || (status(poison)[0][0] == json!("failed")).then_some(()));
    assert!(
        status(poison)[0][1].as_str().unwrap().contains("Data too long for column 'HIS_status'"),
        "{:?}",
        status(poison)
    );
    assert_eq!(status(held)[0][0], json!("pending"), "held behind the failed event of its row");
    let listing = std::process::Command::new(&buktor_tests::artifacts().binary)
        .args(["events", "--status", "pending", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains(&format!("held by #{poison}")), "the hold is visible in events:\n{listing}");
    println!("poison test: 1 failed, 1,000 arrived, 1 held");
}

/// A backlog drains a window ahead (the next window is read while the
/// plugin writes one): around an event the HIS refuses, each row still
/// receives its states in order, the refused event's later ones wait, and
/// everything else arrives.
#[test]
fn backlog_test_reading_ahead_keeps_each_rows_order_around_a_refused_event() {
    let Some(server) = mysql::server("backlog_test_reading_ahead_keeps_each_rows_order_around_a_refused_event") else {
        return;
    };
    // 30 full windows, so that every pass but the last reads ahead.
    let (db, proxy, setup) = cut_off_in_windows_of_100(&server);
    let middleware = setup.start();
    let (events, rows, refused) = (3_000, 50, 1_234);
    for n in 0..events {
        // Event 1,234 has a status too long for VARCHAR(32): MariaDB refuses it.
        let status = if n == refused { "x".repeat(40) } else { format!("v{n}") };
        let response = middleware.post_event(
            &json!({"event_type": "appointment", "appointment_id": n % rows, "status": status}).to_string(),
        );
        assert_eq!(response.status, 200, "{}", response.body);
    }
    proxy.restore();
    let held: Vec<usize> = (refused + rows..events).step_by(rows).collect();
    let count = |status: &str| {
        query(&setup.journal(), &format!("SELECT COUNT(*) FROM events WHERE status = '{status}'"))[0][0].as_i64()
    };
    wait_for(Duration::from_secs(60), "the backlog to drain but for the held row", || {
        (count("pending") == Some(held.len() as i64) && count("failed") == Some(1)).then_some(())
    });
    assert_eq!(count("delivered"), Some((events - 1 - held.len()) as i64));

    let states = applied_states(&db);
    for key in 0..rows {
        let applied = &states[&(key as i64)];
        assert!(applied.windows(2).all(|w| w[0] < w[1]), "row {key} went back: {applied:?}");
        let expected: Vec<usize> =
            (key..events).step_by(rows).filter(|n| *n < refused || key != refused % rows).collect();
        assert_eq!(applied, &expected, "row {key} received each of its states, in order");
    }
    println!("backlog test: {events} events in windows of 100, 1 refused, {} held behind it", held.len());
}

#[test]
fn resend_test_the_same_webhook_id_three_times_is_one_entry_and_one_write() {
    let Some(server) = mysql::server("resend_test_the_same_webhook_id_three_times_is_one_entry_and_one_write") else {
        return;
    };
    let db = server.database();
    db.execute(audit::MYSQL);
    let setup = setup_for(&db, free_port());
    let middleware = setup.start();
    let headers = [("Content-Type", "application/json"), ("webhook-id", "msg_resent_three_times")];
    let body = br#"{"event_type": "appointment", "appointment_id": 1, "status": "confirmed"}"#;
    let answers: Vec<serde_json::Value> =
        (0..3).map(|_| middleware.request("POST", "/receive-event", &headers, body).json()).collect();
    assert_eq!(answers[0]["status"], "accepted");
    assert!(answers[1..].iter().all(|a| a["status"] == "duplicate" && a["id"] == answers[0]["id"]), "{answers:?}");
    wait_until_drained(&setup);
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(1)]]);
    assert_eq!(db.count("SELECT COUNT(*) FROM applied"), 1, "one HIS write");
}

/// A tmpfs of `size` mounted at `path`, unmounted when dropped. Needs root.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        match output.status.success() {
            true => Ok(Self(path.to_path_buf())),
            false => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gets_503_with_retry_after_and_loses_nothing_accepted() {
    let mut setup = Setup::new().with_admin_token();
    let disk = match SmallDisk::mount(&setup.path("small"), "2m") {
        Ok(disk) => disk,
        Err(why) => {
            // CI runs as root, so there it is a failure.
            buktor_tests::skipped_unless_strict(
                "a_full_disk_gets_503_with_retry_after_and_loses_nothing_accepted",
                &format!("cannot mount a small tmpfs here (needs root): {why}"),
            );
            return;
        }
    };
    setup.config["journal"]["path"] = json!("small/journal.db");
    let mut middleware = setup.start();
    let post = |middleware: &buktor_tests::Middleware, n: usize| {
        middleware.post_event(&json!({"event_type": "appointment", "appointment_id": n, "status": "ok"}).to_string())
    };
    let mut accepted = vec![post(&middleware, 0).json()["id"].as_i64().unwrap()];

    // Fill the disk.
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0u8; 64 * 1024]).is_ok() {}
        let _ = file.flush();
    }
    let (mut refused, mut not_ready) = (0, 0);
    for n in 1..=20 {
        let response = post(&middleware, n);
        match response.status {
            200 => accepted.push(response.json()["id"].as_i64().unwrap()),
            503 => {
                refused += 1;
                assert_eq!(response.json()["error"], json!("journal_unavailable"));
                assert_eq!(response.header("retry-after"), Some("5"));
                // /ready says so (unless another commit got through since).
                let ready = middleware.ready_in_full();
                if ready.status == 503 {
                    let reason = ready.json()["reasons"][0].as_str().unwrap_or_default().to_string();
                    assert!(reason.starts_with("the journal cannot be written"), "{}", ready.body);
                    not_ready += 1;
                }
            }
            other => panic!("a full disk must give 503, never {other}: {}", response.body),
        }
    }
    assert!(refused > 0, "the full disk refused events");
    assert!(not_ready > 0, "/ready never said the journal cannot be written");

    // Space again: events are accepted again, and everything accepted arrives.
    std::fs::remove_file(&filler).unwrap();
    let after = post(&middleware, 100);
    assert_eq!(after.status, 200, "{}", after.body);
    accepted.push(after.json()["id"].as_i64().unwrap());
    assert_eq!(middleware.request("GET", "/ready", &[], b"").status, 200, "ready again once the journal takes writes");
    let journal = rusqlite::Connection::open(setup.path("small/journal.db")).unwrap();
    wait_for(Duration::from_secs(20), "every accepted event delivered", || {
        let delivered: Vec<i64> = query(&journal, "SELECT id FROM events WHERE status = 'delivered' ORDER BY id")
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect();
        accepted.iter().all(|id| delivered.contains(id)).then_some(())
    });
    println!("disk-full test: accepted {}, refused with 503 {refused}, lost 0", accepted.len());
    drop(journal);
    middleware.kill();
    drop(disk);
}
