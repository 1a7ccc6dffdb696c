//! The SQL Server writer through the real binary and the real plugin,
//! against the TDS test server (tests/src/tds): the T-SQL, the typed
//! parameters, batching, quoting, error classification and reconnection.
//! It cannot execute MERGE; the tests at the end run against a real SQL
//! Server when `HIS_TEST_SQLSERVER_URL` is set.

use std::time::Duration;

use buktor_tests::{
    Setup, query,
    tds::{Failure, LOCK_TIMEOUT_MESSAGE, Param, ParamValue, Statement, StatementKind, TdsServer},
    wait_for,
};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

/// A setup whose `database` is the seed's SQL Server example, pointed at
/// the test server (which speaks TDS without TLS).
fn setup_for(server: &TdsServer) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = server.database_config();
    setup
}

/// The MERGE statements the server received, in order.
fn merges(server: &TdsServer) -> Vec<Statement> {
    server.statements().into_iter().filter(|s| s.sql.starts_with("MERGE")).collect()
}

fn wait_for_merges(server: &TdsServer, count: usize) -> Vec<Statement> {
    wait_for(PATIENCE, &format!("{count} MERGE statements"), || {
        let merges = merges(server);
        (merges.len() >= count).then_some(merges)
    })
}

fn types(params: &[Param]) -> Vec<&str> {
    params.iter().map(|p| p.sql_type.as_str()).collect()
}

fn datetime(value: &ParamValue) -> &str {
    match value {
        ParamValue::DateTime(text) => text,
        other => panic!("expected a datetime2 value, found {other:?}"),
    }
}

/// The journal's receive time as SQL Server's datetime2 prints it, to the second.
fn received(setup: &Setup, position: usize) -> String {
    let rows = query(&setup.journal(), "SELECT received_at FROM events ORDER BY id");
    rows[position][0].as_str().unwrap()[..19].replace('T', " ")
}

#[test]
fn the_seed_events_become_exact_merges_with_typed_parameters() {
    let server = TdsServer::start();
    let setup = setup_for(&server);
    let middleware = setup.start();
    for body in [
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
        r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00"}"#,
        r#"{"event_type": "payment", "payment_id": 789, "amount": "1500", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200);
        // One at a time, so that each MERGE holds one event.
        wait_for(PATIENCE, "the event delivered", || {
            let pending = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status <> 'delivered'");
            (pending == [vec![json!(0)]]).then_some(())
        });
    }
    let merges = wait_for_merges(&server, 3);
    assert!(merges.iter().all(|m| m.kind == StatementKind::Rpc), "sent through sp_executesql");

    assert_eq!(
        merges[0].sql,
        "MERGE INTO [HIS_appointments] WITH (HOLDLOCK) AS t USING (VALUES (@P1, @P2, @P3)) \
         AS s ([HIS_appointment_id], [HIS_status], [HIS_created_at]) ON t.[HIS_appointment_id] = s.[HIS_appointment_id] \
         WHEN MATCHED THEN UPDATE SET t.[HIS_status] = s.[HIS_status], t.[HIS_created_at] = s.[HIS_created_at] \
         WHEN NOT MATCHED THEN INSERT ([HIS_appointment_id], [HIS_status], [HIS_created_at]) \
         VALUES (s.[HIS_appointment_id], s.[HIS_status], s.[HIS_created_at]);"
    );
    let p = &merges[0].params;
    assert_eq!(types(p), ["bigint", "nvarchar(4000)", "datetime2(7)"]);
    assert_eq!(p[0].value, ParamValue::Int(123));
    assert_eq!(p[1].value, ParamValue::Text("confirmed".into()));
    assert!(datetime(&p[2].value).starts_with(&received(&setup, 0)), "{:?}", p[2].value);

    assert_eq!(
        merges[1].sql,
        "MERGE INTO [HIS_schedules] WITH (HOLDLOCK) AS t USING (VALUES (@P1, @P2, @P3)) \
         AS s ([HIS_schedule_id], [HIS_new_time], [HIS_updated_at]) ON t.[HIS_schedule_id] = s.[HIS_schedule_id] \
         WHEN MATCHED THEN UPDATE SET t.[HIS_new_time] = s.[HIS_new_time], t.[HIS_updated_at] = s.[HIS_updated_at] \
         WHEN NOT MATCHED THEN INSERT ([HIS_schedule_id], [HIS_new_time], [HIS_updated_at]) \
         VALUES (s.[HIS_schedule_id], s.[HIS_new_time], s.[HIS_updated_at]);"
    );
    let p = &merges[1].params;
    assert_eq!(types(p), ["bigint", "datetime2(7)", "datetime2(7)"]);
    assert_eq!(p[0].value, ParamValue::Int(456));
    assert!(datetime(&p[1].value).starts_with("2025-03-03 09:00:00"), "{:?}", p[1].value);
    assert!(datetime(&p[2].value).starts_with(&received(&setup, 1)), "{:?}", p[2].value);

    assert_eq!(
        merges[2].sql,
        "MERGE INTO [HIS_payments] WITH (HOLDLOCK) AS t USING (VALUES (@P1, @P2, @P3, @P4)) \
         AS s ([HIS_payment_id], [HIS_amount], [HIS_payment_status], [HIS_paid_at]) ON t.[HIS_payment_id] = s.[HIS_payment_id] \
         WHEN MATCHED THEN UPDATE SET t.[HIS_amount] = s.[HIS_amount], t.[HIS_payment_status] = s.[HIS_payment_status], \
         t.[HIS_paid_at] = s.[HIS_paid_at] \
         WHEN NOT MATCHED THEN INSERT ([HIS_payment_id], [HIS_amount], [HIS_payment_status], [HIS_paid_at]) \
         VALUES (s.[HIS_payment_id], s.[HIS_amount], s.[HIS_payment_status], s.[HIS_paid_at]);"
    );
    let p = &merges[2].params;
    // "1500" was sent as a string: nvarchar, which SQL Server converts to
    // DECIMAL exactly. A JSON number with a fraction goes as decimal (below).
    assert_eq!(types(p), ["bigint", "nvarchar(4000)", "nvarchar(4000)", "datetime2(7)"]);
    assert_eq!(p[1].value, ParamValue::Text("1500".into()));
    assert!(datetime(&p[3].value).starts_with("2025-03-02 11:00:00"), "{:?}", p[3].value);

    // Each batch is one transaction.
    let batches: Vec<String> =
        server.statements().into_iter().filter(|s| s.kind == StatementKind::Batch).map(|s| s.sql).collect();
    assert_eq!(batches.iter().filter(|s| s.as_str() == "BEGIN TRANSACTION").count(), 3, "{batches:?}");
    assert_eq!(batches.iter().filter(|s| s.as_str() == "COMMIT TRANSACTION").count(), 3, "{batches:?}");
    // Each connection rolls back a whole transaction on any error, and
    // waits at most lock_timeout_secs (default 5) for another session's lock.
    assert!(batches.contains(&"SET XACT_ABORT ON; SET LOCK_TIMEOUT 5000".to_string()), "{batches:?}");
    let login = &server.logins()[0];
    assert_eq!(
        (login.user.as_str(), login.password.as_str(), login.database.as_str()),
        ("his_writer", "s3cret!", "his_database")
    );
    assert_eq!(login.app_name, "buktor-middleware");
}

#[test]
fn every_value_kind_has_its_explicit_type() {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    setup.config["database"]["timezone"] = json!("+05:30");
    setup.config["mapping"] = json!({"visit": {"table": "HIS_visits", "fields": {
        "visit_id": "id", "paid": "paid", "amount": "amount", "weight": "weight", "note": "note", "at": "at", "gone": "gone"}}});
    let middleware = setup.start();
    middleware.post_event(
        r#"{"event_type": "visit", "visit_id": 1, "paid": true, "amount": -1500.75, "weight": 7.5e1, "note": "Ünïcode ✓", "at": "2025-03-03T09:00:00Z"}"#,
    );
    let merge = wait_for_merges(&server, 1).remove(0);
    // tiberius sends an exact Numeric as numeric(p,s) (SQL Server's
    // synonym of decimal), with the precision the value needs. A number in
    // exponent form is written out exactly, never through a float: 7.5e1
    // is 75.
    assert_eq!(
        types(&merge.params)[..6],
        ["bigint", "bit", "numeric(6,2)", "numeric(2,0)", "nvarchar(4000)", "datetime2(7)"]
    );
    let values: Vec<&ParamValue> = merge.params.iter().map(|p| &p.value).collect();
    assert_eq!(
        values[..5],
        [
            &ParamValue::Int(1),
            &ParamValue::Bool(true),
            &ParamValue::Decimal("-1500.75".into()),
            &ParamValue::Decimal("75".into()),
            &ParamValue::Text("Ünïcode ✓".into()),
        ]
    );
    // 09:00 UTC is 14:30 at +05:30.
    assert!(datetime(values[5]).starts_with("2025-03-03 14:30:00"), "{:?}", values[5]);
    assert_eq!(values[6], &ParamValue::Null, "a field the event lacks is NULL");
}

#[test]
fn batches_are_split_below_2100_parameters_in_one_transaction() {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    setup.config["sync"]["batch_size"] = json!(1000);
    // Journal 1,000 events while nothing answers on the configured port,
    // then restart with the server there: the worker takes them in one pass.
    let port = setup.config["database"]["port"].clone();
    setup.config["database"]["port"] = json!(1);
    let mut middleware = setup.start();
    middleware.post_concurrently(8, 1000, |n| {
        json!({"event_type": "appointment", "appointment_id": n, "status": "s"}).to_string()
    });
    middleware.terminate();
    setup.config["database"]["port"] = port;
    let _middleware = setup.start();
    wait_for(PATIENCE, "all 1,000 delivered", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (rows == [vec![json!(1000)]]).then_some(())
    });
    let statements = server.statements();
    let sizes: Vec<usize> = statements.iter().filter(|s| s.sql.starts_with("MERGE")).map(|s| s.params.len()).collect();
    // 3 columns: at most 699 rows (2,097 parameters) per statement.
    assert_eq!(sizes, [699 * 3, 301 * 3], "one batch of 1,000 rows in two statements");
    let sequence: Vec<&str> = statements.iter().map(|s| s.sql.split(' ').next().unwrap_or("")).collect();
    let merges_at = sequence.iter().position(|s| *s == "MERGE").unwrap();
    assert_eq!(
        sequence[merges_at - 1..merges_at + 3],
        ["BEGIN", "MERGE", "MERGE", "COMMIT"],
        "one transaction: {sequence:?}"
    );
}

#[test]
fn hostile_identifiers_are_quoted() {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    setup.config["mapping"] = json!({"note": {"table": "HIS]; DROP TABLE patients; --", "fields": {
        "note_id": "id", "text": "te]xt [x]"}}});
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "note", "note_id": 1, "text": "'; DROP TABLE patients; --"}"#);
    let merge = wait_for_merges(&server, 1).remove(0);
    assert!(merge.sql.starts_with("MERGE INTO [HIS]]; DROP TABLE patients; --] WITH (HOLDLOCK)"), "{}", merge.sql);
    assert!(merge.sql.contains("AS s ([id], [te]]xt [x]]])"), "{}", merge.sql);
    assert_eq!(
        merge.params[1].value,
        ParamValue::Text("'; DROP TABLE patients; --".into()),
        "values are bound, never pasted"
    );
    assert!(!merge.sql.contains("'; DROP"), "{}", merge.sql);
}

/// Runs one middleware whose every MERGE into `T<number>` fails with
/// `number`, posts one event per number, and returns each event's recorded
/// error.
fn recorded_errors(numbers: &[u32]) -> Vec<String> {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    let mut mapping = serde_json::Map::new();
    for &number in numbers {
        mapping.insert(format!("e{number}"), json!({"table": format!("T{number}"), "fields": {"e_id": "id"}}));
        // Always failing, so that each event's error stays to be read.
        for _ in 0..200 {
            server.fail_next(
                &format!("[T{number}]"),
                Failure::Error { number, state: 1, class: 16, message: format!("scripted error {number}") },
            );
        }
    }
    setup.config["mapping"] = serde_json::Value::Object(mapping);
    let middleware = setup.start();
    for number in numbers {
        middleware.post_event(&json!({"event_type": format!("e{number}"), "e_id": 1}).to_string());
    }
    numbers
        .iter()
        .map(|number| {
            wait_for(PATIENCE, &format!("the error of e{number}"), || {
                let rows =
                    query(&setup.journal(), &format!("SELECT last_error FROM events WHERE event_type = 'e{number}'"));
                rows[0][0].as_str().map(str::to_string)
            })
        })
        .collect()
}

#[test]
fn every_listed_error_number_is_classified() {
    let cases: [(u32, &str); 12] = [
        (1205, "conflict error (retryable)"),
        (1222, "conflict error (retryable)"),
        (208, "schema error"),
        (207, "schema error"),
        (2627, "constraint error"),
        (2601, "constraint error"),
        (515, "constraint error"),
        (8152, "data error"),
        (2628, "data error"),
        (245, "data error"),
        (8114, "data error"),
        (50000, "other error"),
    ];
    let numbers: Vec<u32> = cases.iter().map(|(n, _)| *n).collect();
    for ((number, expected), error) in cases.iter().zip(recorded_errors(&numbers)) {
        assert_eq!(error, format!("{expected}: scripted error {number} (state 1, class 16) (code {number})"));
    }
}

/// Azure's "not available now" errors stop the whole pass (every table
/// would fail): each needs a middleware of its own to be seen.
#[test]
fn azure_throttling_numbers_are_retryable_outages() {
    for number in [40613, 40501, 49918] {
        let error = recorded_errors(&[number]).remove(0);
        assert_eq!(
            error,
            format!("connection error (retryable): scripted error {number} (state 1, class 16) (code {number})")
        );
    }
}

#[test]
fn a_refused_login_stops_the_middleware_at_startup() {
    let server = TdsServer::start();
    server.fail_next_login(Failure::Error {
        number: 18456,
        state: 1,
        class: 14,
        message: "Login failed for user 'his_writer'.".into(),
    });
    let setup = setup_for(&server);
    let (status, stderr) = setup.run_expecting_exit();
    assert!(!status.success());
    let line = stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line");
    assert!(line.contains("cannot open the sqlserver HIS database: SQL Server at his_writer@127.0.0.1:"), "{line}");
    assert!(line.contains("Login failed for user 'his_writer'."), "{line}");
    assert!(line.contains("check database.user and database.password"), "{line}");
    assert!(!stderr.contains("s3cret!"), "the password is never printed:\n{stderr}");
}

#[test]
fn a_dropped_connection_is_replaced_and_nothing_is_lost() {
    let server = TdsServer::start();
    let setup = setup_for(&server);
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#);
    wait_for_merges(&server, 1);
    let connections = server.connection_count();
    server.drop_connections();
    server.fail_next("MERGE", Failure::DropConnection);
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 2, "status": "b"}"#);
    wait_for(PATIENCE, "both delivered", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (rows == [vec![json!(2)]]).then_some(())
    });
    assert!(server.connection_count() > connections, "a new connection was opened");
    let last = merges(&server).pop().unwrap();
    assert_eq!(last.params[0].value, ParamValue::Int(2));
}

/// The session batches that set the lock timeout, as the server received them.
fn lock_timeout_batches(server: &TdsServer) -> Vec<String> {
    server
        .statements()
        .into_iter()
        .filter(|s| s.kind == StatementKind::Batch && s.sql.contains("LOCK_TIMEOUT"))
        .map(|s| s.sql)
        .collect()
}

fn delivered(setup: &Setup) -> i64 {
    query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'")[0][0].as_i64().unwrap_or(0)
}

#[test]
fn every_new_connection_sets_the_configured_lock_timeout() {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    setup.config["database"]["lock_timeout_secs"] = json!(2);
    let middleware = setup.start();
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#);
    wait_for(PATIENCE, "the first event delivered", || (delivered(&setup) == 1).then_some(()));
    assert_eq!(lock_timeout_batches(&server), ["SET XACT_ABORT ON; SET LOCK_TIMEOUT 2000"]);
    // A replaced connection is set up again, before its first write.
    server.drop_connections();
    middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 2, "status": "b"}"#);
    wait_for(PATIENCE, "the second event delivered", || (delivered(&setup) == 2).then_some(()));
    let batches = lock_timeout_batches(&server);
    assert!(batches.len() >= 2, "{batches:?}");
    assert!(batches.iter().all(|b| b == "SET XACT_ABORT ON; SET LOCK_TIMEOUT 2000"), "{batches:?}");
    let statements = server.statements();
    let set_again = statements.iter().rposition(|s| s.sql.contains("LOCK_TIMEOUT")).unwrap();
    let last_merge = statements.iter().rposition(|s| s.sql.starts_with("MERGE")).unwrap();
    assert!(set_again < last_merge, "set before the new connection's write: {statements:?}");
}

#[test]
fn a_locked_row_is_a_retryable_conflict_not_a_timeout() {
    let server = TdsServer::start();
    let mut setup = setup_for(&server);
    // Were the lock waited for until the statement timeout, the error
    // would be a timeout, which stops every table.
    setup.config["database"]["lock_timeout_secs"] = json!(1);
    setup.config["database"]["statement_timeout_secs"] = json!(5);
    // Another session holds the appointment's row (SQL Server locks it for
    // the MERGE into its table).
    server.hold_lock("[HIS_appointments]");
    let middleware = setup.start();
    let appointment = middleware.post_event(r#"{"event_type": "appointment", "appointment_id": 1, "status": "a"}"#);
    let appointment = appointment.json()["id"].as_i64().unwrap();
    let error = wait_for(PATIENCE, "the locked appointment's error", || {
        let rows = query(&setup.journal(), &format!("SELECT last_error FROM events WHERE id = {appointment}"));
        rows[0][0].as_str().map(str::to_string)
    });
    assert_eq!(
        error,
        format!("conflict error (retryable): {LOCK_TIMEOUT_MESSAGE} (state 51, class 16) (code 1222)"),
        "a lock wait is a conflict on its rows"
    );
    // Meanwhile another table is written.
    middleware.post_event(
        r#"{"event_type": "payment", "payment_id": 7, "amount": "10", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
    );
    wait_for(PATIENCE, "the payment delivered while the appointment is locked", || {
        (delivered(&setup) == 1).then_some(())
    });
    assert_eq!(lock_timeout_batches(&server), ["SET XACT_ABORT ON; SET LOCK_TIMEOUT 1000"]);
    // Released: the appointment follows.
    server.release_locks();
    wait_for(PATIENCE, "the appointment delivered once released", || (delivered(&setup) == 2).then_some(()));
    let errors = query(&setup.journal(), "SELECT last_error FROM events WHERE last_error LIKE 'timeout%'");
    assert!(errors.is_empty(), "no lock wait became a timeout: {errors:?}");
    assert!(server.lock_waits() >= 1);
}

/// Against a real SQL Server: `HIS_TEST_SQLSERVER_URL=sqlserver://user:password@host:port/database`,
/// for example a SQL Server container on a developer's machine (none can
/// run here). The server's certificate is trusted as it is (a container's
/// is self-signed).
#[test]
fn against_a_real_sql_server() {
    let Ok(url) = std::env::var("HIS_TEST_SQLSERVER_URL") else {
        buktor_tests::skipped(
            "against_a_real_sql_server",
            "HIS_TEST_SQLSERVER_URL is not set (sqlserver://user:password@host:port/database; see the README)",
        );
        return;
    };
    let rest = url.strip_prefix("sqlserver://").expect("HIS_TEST_SQLSERVER_URL starts with sqlserver://");
    let (credentials, rest) = rest.split_once('@').expect("user:password@");
    let (user, password) = credentials.split_once(':').expect("user:password");
    let (address, database) = rest.split_once('/').expect("/database");
    let (host, port) = address.split_once(':').unwrap_or((address, "1433"));

    let mut config = tiberius::Config::new();
    config.host(host);
    config.port(port.parse().unwrap());
    config.database(database);
    config.authentication(tiberius::AuthMethod::sql_server(user, password));
    config.trust_cert();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = |sql: &str| -> Vec<Vec<Option<String>>> {
        runtime.block_on(async {
            use tokio_util::compat::TokioAsyncWriteCompatExt;
            let tcp = tokio::net::TcpStream::connect(config.get_addr()).await.unwrap();
            let mut client = tiberius::Client::connect(config.clone(), tcp.compat_write()).await.unwrap();
            let rows = client.simple_query(sql).await.unwrap().into_first_result().await.unwrap();
            rows.iter().map(|r| (0..r.len()).map(|i| r.get::<&str, _>(i).map(str::to_string)).collect()).collect()
        })
    };
    run("DROP TABLE IF EXISTS HIS_appointments; DROP TABLE IF EXISTS HIS_schedules; DROP TABLE IF EXISTS HIS_payments;
         CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status NVARCHAR(32), HIS_created_at DATETIME2(3));
         CREATE TABLE HIS_schedules (HIS_schedule_id BIGINT PRIMARY KEY, HIS_new_time DATETIME2, HIS_updated_at DATETIME2(3));
         CREATE TABLE HIS_payments (HIS_payment_id BIGINT PRIMARY KEY, HIS_amount DECIMAL(12,2), HIS_payment_status NVARCHAR(32), HIS_paid_at DATETIME2);");

    let mut setup = Setup::new();
    setup.config["database"] = json!({"type": "sqlserver", "host": host, "port": port.parse::<u16>().unwrap(),
        "user": user, "password": password, "database": database, "trust_server_certificate": true});
    let middleware = setup.start();
    for body in [
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "confirmed"}"#,
        r#"{"event_type": "schedule_change", "schedule_id": 456, "new_time": "2025-03-03T09:00:00"}"#,
        r#"{"event_type": "payment", "payment_id": 789, "amount": "1500", "status": "paid", "paid_at": "2025-03-02T11:00:00"}"#,
        r#"{"event_type": "appointment", "appointment_id": 123, "status": "cancelled"}"#,
    ] {
        assert_eq!(middleware.post_event(body).status, 200);
    }
    wait_for(PATIENCE, "all delivered", || {
        let rows = query(&setup.journal(), "SELECT COUNT(*) FROM events WHERE status = 'delivered'");
        (rows == [vec![json!(4)]]).then_some(())
    });
    let some = |v: &str| Some(v.to_string());
    assert_eq!(
        run("SELECT CAST(HIS_appointment_id AS nvarchar(20)), HIS_status FROM HIS_appointments"),
        [vec![some("123"), some("cancelled")]],
        "the second event for 123 updated the row"
    );
    assert_eq!(
        run(
            "SELECT CAST(HIS_schedule_id AS nvarchar(20)), CONVERT(nvarchar(19), HIS_new_time, 120) FROM HIS_schedules"
        ),
        [vec![some("456"), some("2025-03-03 09:00:00")]]
    );
    assert_eq!(
        run("SELECT CAST(HIS_payment_id AS nvarchar(20)), CAST(HIS_amount AS nvarchar(20)), HIS_payment_status, \
             CONVERT(nvarchar(19), HIS_paid_at, 120) FROM HIS_payments"),
        [vec![some("789"), some("1500.00"), some("paid"), some("2025-03-02 11:00:00")]]
    );
    let described = std::process::Command::new(&buktor_tests::artifacts().binary)
        .args(["describe", "HIS_payments", "--config"])
        .arg(setup.write_config())
        .output()
        .unwrap();
    assert!(described.status.success(), "{}", String::from_utf8_lossy(&described.stderr));
    let description: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(description["primary_key"], json!(["HIS_payment_id"]));
    assert_eq!(
        description["columns"][1],
        json!({"name": "HIS_amount", "type": "decimal(12,2)", "nullable": true, "has_default": false})
    );
}

/// DATE and BYTES, which no mapping makes yet, reach SQL Server through the
/// conformance kit's value-types row: the date as a date at midnight (never
/// shifted by the zone), the bytes as varbinary.
#[test]
fn dates_and_bytes_go_as_typed_parameters() {
    let server = TdsServer::start();
    let setup = setup_for(&server);
    let output = std::process::Command::new(&buktor_tests::artifacts().binary)
        .arg("--config")
        .arg(setup.write_config())
        .args(["plugin-test", "--plugin"])
        .arg(buktor_tests::artifacts().plugin("sqlserver"))
        .output()
        .expect("run plugin-test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("pass  value types")), "{stdout}");
    // The value-types row is the MERGE whose first parameter is id 3.
    let merge = merges(&server)
        .into_iter()
        .find(|s| s.params.first().is_some_and(|p| p.value == ParamValue::Int(3)) && s.params.len() > 5)
        .unwrap_or_else(|| panic!("no value-types MERGE among {:#?}", server.statements()));
    let typed = |name: &str| {
        let column = merge.sql.split("AS s (").nth(1).unwrap().split(')').next().unwrap();
        let at = column.split(", ").position(|c| c == format!("[{name}]")).unwrap();
        (merge.params[at].sql_type.clone(), merge.params[at].value.clone())
    };
    assert_eq!(typed("born_on"), ("datetime2(7)".into(), ParamValue::DateTime("1990-05-17 00:00:00.0000000".into())));
    let (photo_type, photo) = typed("photo");
    assert!(photo_type.starts_with("varbinary"), "{photo_type}");
    assert_eq!(photo, ParamValue::Other("0x00017FFF".into()));
}
