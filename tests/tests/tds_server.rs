//! The TDS test server, driven by the real tiberius client.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use buktor_tests::tds::{Failure, LOCK_TIMEOUT_MESSAGE, Login, Param, ParamValue, Statement, StatementKind, TdsServer};
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Uuid, error::Error, numeric::Numeric};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

type Connection = Client<Compat<TcpStream>>;

/// Runs `test` on a fresh runtime, failing after ten seconds instead of
/// hanging.
fn run<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), test).await.expect("the test timed out");
    });
}

fn config(server: &TdsServer, user: &str, password: &str) -> Config {
    let (host, port) = server.address.rsplit_once(':').expect("host:port");
    let mut config = Config::new();
    config.host(host);
    config.port(port.parse().expect("port"));
    config.authentication(AuthMethod::sql_server(user, password));
    config.encryption(EncryptionLevel::NotSupported);
    config.database("his");
    config.application_name("buktor-test");
    config
}

async fn connect_as(server: &TdsServer, user: &str, password: &str) -> tiberius::Result<Connection> {
    let config = config(server, user, password);
    let tcp = TcpStream::connect(config.get_addr()).await?;
    tcp.set_nodelay(true)?;
    Client::connect(config, tcp.compat_write()).await
}

async fn connect(server: &TdsServer) -> Connection {
    connect_as(server, "buktor", "s3cret").await.expect("connect to the TDS test server")
}

fn param(name: &str, sql_type: &str, value: ParamValue) -> Param {
    Param { name: name.into(), sql_type: sql_type.into(), value }
}

fn batch(sql: &str) -> Statement {
    Statement { kind: StatementKind::Batch, sql: sql.into(), declaration: String::new(), params: Vec::new() }
}

/// The server error inside `result`, as (number, state, class, message).
fn server_error<T: std::fmt::Debug>(result: tiberius::Result<T>) -> (u32, u8, u8, String) {
    match result {
        Err(Error::Server(token)) => (token.code(), token.state(), token.class(), token.message().to_string()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[test]
fn login_is_recorded_with_the_decoded_password() {
    let server = TdsServer::start();
    run(async {
        let client = connect_as(&server, "his_writer", "p@ss;wörd{1}").await.expect("connect");
        client.close().await.expect("close");
    });
    assert_eq!(
        server.logins(),
        vec![Login {
            user: "his_writer".into(),
            password: "p@ss;wörd{1}".into(),
            database: "his".into(),
            app_name: "buktor-test".into(),
        }]
    );
    assert_eq!(server.connection_count(), 1);
    assert!(server.statements().is_empty());
}

#[test]
fn a_scripted_login_failure_is_a_server_error() {
    let server = TdsServer::start();
    server.fail_next_login(Failure::Error {
        number: 18456,
        state: 1,
        class: 14,
        message: "Login failed for user 'buktor'.".into(),
    });
    run(async {
        let refused = connect_as(&server, "buktor", "wrong").await;
        assert_eq!(server_error(refused), (18456, 1, 14, "Login failed for user 'buktor'.".into()));
        // The failure was used up: the next login works.
        connect(&server).await;
    });
    assert_eq!(server.logins().len(), 2);
    assert_eq!(server.logins()[0].password, "wrong");
}

#[test]
fn batches_are_recorded_in_order() {
    let server = TdsServer::start();
    run(async {
        let mut client = connect(&server).await;
        client.simple_query("SET XACT_ABORT ON").await.unwrap().into_results().await.unwrap();
        client.simple_query("BEGIN TRANSACTION").await.unwrap().into_results().await.unwrap();
        let done = client.execute("UPDATE t SET a = 1", &[]).await.unwrap();
        assert_eq!(done.rows_affected(), &[1]);
        client.simple_query("COMMIT TRANSACTION").await.unwrap().into_results().await.unwrap();
        // The client followed the transaction: it can start another.
        client.begin_transaction().await.unwrap();
        client.rollback_transaction().await.unwrap();
    });
    let statements = server.statements();
    assert_eq!(
        statements,
        vec![
            batch("SET XACT_ABORT ON"),
            batch("BEGIN TRANSACTION"),
            Statement {
                kind: StatementKind::Rpc,
                sql: "UPDATE t SET a = 1".into(),
                declaration: String::new(),
                params: Vec::new(),
            },
            batch("COMMIT TRANSACTION"),
            Statement {
                kind: StatementKind::TransactionManager,
                sql: "BEGIN TRANSACTION".into(),
                declaration: String::new(),
                params: Vec::new(),
            },
            Statement {
                kind: StatementKind::TransactionManager,
                sql: "ROLLBACK TRANSACTION".into(),
                declaration: String::new(),
                params: Vec::new(),
            },
        ]
    );
}

#[test]
fn execute_records_typed_parameters() {
    let server = TdsServer::start();
    let sql =
        "INSERT INTO events (id, done, score, note, amount, at, missing) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7)";
    let at = NaiveDate::from_ymd_opt(2025, 3, 3).unwrap().and_hms_opt(9, 0, 0).unwrap();
    run(async {
        let mut client = connect(&server).await;
        let result = client
            .execute(
                sql,
                &[&1i64, &true, &1.5f64, &"text", &Numeric::new_with_scale(150_075, 2), &at, &Option::<i64>::None],
            )
            .await
            .expect("execute");
        assert_eq!(result.rows_affected(), &[1]);
    });
    let statements = server.statements();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement.kind, StatementKind::Rpc);
    assert_eq!(statement.sql, sql);
    assert_eq!(
        statement.declaration,
        "@P1 bigint,@P2 bit,@P3 float(53),@P4 nvarchar(4000),@P5 numeric(6,2),@P6 datetime2,@P7 bigint"
    );
    assert_eq!(
        statement.params,
        vec![
            param("@P1", "bigint", ParamValue::Int(1)),
            param("@P2", "bit", ParamValue::Bool(true)),
            param("@P3", "float", ParamValue::Float(1.5)),
            param("@P4", "nvarchar(4000)", ParamValue::Text("text".into())),
            param("@P5", "numeric(6,2)", ParamValue::Decimal("1500.75".into())),
            param("@P6", "datetime2(7)", ParamValue::DateTime("2025-03-03 09:00:00.0000000".into())),
            param("@P7", "bigint", ParamValue::Null),
        ]
    );
}

#[test]
fn more_parameter_types_decode_exactly() {
    let server = TdsServer::start();
    let long = "é".repeat(5000);
    let at = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap().and_hms_nano_opt(23, 59, 58, 123_456_700).unwrap();
    let offset = FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2025, 3, 3, 9, 30, 0).unwrap();
    let guid = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
    run(async {
        let mut client = connect(&server).await;
        client
            .execute(
                "EXEC x",
                &[
                    &7i32,
                    &-3i16,
                    &255u8,
                    &2.5f32,
                    &"",
                    &long.as_str(),
                    &Numeric::new_with_scale(-50, 2),
                    &Numeric::new_with_scale(12, 0),
                    &NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
                    &at,
                    &offset,
                    &guid,
                    &vec![0x0Au8, 0x0B],
                    &Option::<&str>::None,
                    &Option::<Numeric>::None,
                    &Option::<f64>::None,
                    &Option::<NaiveDateTime>::None,
                    &false,
                    &i64::MIN,
                ],
            )
            .await
            .expect("execute");
    });
    let params = server.statements().remove(0).params;
    let expected = vec![
        param("@P1", "int", ParamValue::Int(7)),
        param("@P2", "smallint", ParamValue::Int(-3)),
        param("@P3", "tinyint", ParamValue::Int(255)),
        param("@P4", "real", ParamValue::Float(2.5)),
        param("@P5", "nvarchar(4000)", ParamValue::Text(String::new())),
        param("@P6", "nvarchar(max)", ParamValue::Text(long.clone())),
        param("@P7", "numeric(3,2)", ParamValue::Decimal("-0.50".into())),
        param("@P8", "numeric(2,0)", ParamValue::Decimal("12".into())),
        param("@P9", "date", ParamValue::DateTime("2024-02-29".into())),
        param("@P10", "datetime2(7)", ParamValue::DateTime("1999-12-31 23:59:58.1234567".into())),
        param("@P11", "datetimeoffset(7)", ParamValue::DateTime("2025-03-03 09:30:00.0000000 +01:00".into())),
        param("@P12", "uniqueidentifier", ParamValue::Other("6F9619FF-8B86-D011-B42D-00C04FC964FF".into())),
        param("@P13", "varbinary(8000)", ParamValue::Other("0x0A0B".into())),
        param("@P14", "nvarchar(4000)", ParamValue::Null),
        param("@P15", "numeric(18,0)", ParamValue::Null),
        param("@P16", "float", ParamValue::Null),
        param("@P17", "datetime2(7)", ParamValue::Null),
        param("@P18", "bit", ParamValue::Bool(false)),
        param("@P19", "bigint", ParamValue::Int(i64::MIN)),
    ];
    assert_eq!(params.len(), expected.len());
    for (got, want) in params.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}

#[test]
fn select_returns_the_scripted_result_set() {
    let server = TdsServer::start();
    server.respond(
        "FROM patients",
        &["id", "name"],
        vec![vec![Some("1".into()), Some("Ada".into())], vec![Some("2".into()), None]],
    );
    let many: Vec<Vec<Option<String>>> = (0..500).map(|i| vec![Some(format!("row {i} {}", "x".repeat(40)))]).collect();
    server.respond("FROM big", &["text"], many.clone());
    run(async {
        let mut client = connect(&server).await;
        let rows = client
            .query("SELECT id, name FROM patients WHERE ward = @P1", &[&"A"])
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        let read: Vec<(Option<&str>, Option<&str>)> =
            rows.iter().map(|r| (r.get::<&str, _>(0), r.get::<&str, _>("name"))).collect();
        assert_eq!(read, vec![(Some("1"), Some("Ada")), (Some("2"), None)]);

        // The same script answers batches too.
        let rows = client.simple_query("SELECT * FROM patients").await.unwrap().into_first_result().await.unwrap();
        assert_eq!(rows.len(), 2);

        // A result set bigger than a packet.
        let rows = client.simple_query("SELECT text FROM big").await.unwrap().into_first_result().await.unwrap();
        let read: Vec<Vec<Option<String>>> = rows.iter().map(|r| vec![r.get::<&str, _>(0).map(String::from)]).collect();
        assert_eq!(read, many);

        // Any other SELECT: one row, "1".
        let row = client.simple_query("SELECT 1").await.unwrap().into_row().await.unwrap().expect("a row");
        assert_eq!(row.get::<&str, _>(0), Some("1"));
    });
}

#[test]
fn scripted_errors_surface_as_tiberius_server_errors() {
    let server = TdsServer::start();
    let violation = "Violation of PRIMARY KEY constraint 'PK_events'.";
    server.fail_next(
        "INSERT INTO events",
        Failure::Error { number: 2627, state: 1, class: 14, message: violation.into() },
    );
    server.fail_next("MERGE", Failure::Error { number: 1205, state: 51, class: 13, message: "Deadlock victim".into() });
    server.fail_next("MERGE", Failure::Error { number: 8152, state: 2, class: 16, message: "Truncated".into() });
    run(async {
        let mut client = connect(&server).await;
        let failed = client.execute("INSERT INTO events VALUES (@P1)", &[&1i64]).await;
        assert_eq!(server_error(failed), (2627, 1, 14, violation.into()));
        // The failure was used once.
        client.execute("INSERT INTO events VALUES (@P1)", &[&1i64]).await.expect("second insert");

        // Failures queue up, in order, for batches as well.
        let failed = match client.simple_query("MERGE INTO t USING s ON 1 = 1").await {
            Ok(stream) => stream.into_results().await,
            Err(e) => Err(e),
        };
        assert_eq!(server_error(failed), (1205, 51, 13, "Deadlock victim".into()));
        let failed = client.execute("MERGE INTO t USING s ON 1 = 1", &[]).await;
        assert_eq!(server_error(failed), (8152, 2, 16, "Truncated".into()));
        client.execute("MERGE INTO t USING s ON 1 = 1", &[]).await.expect("the connection still works");
    });
    assert_eq!(server.statements().len(), 5, "failed statements are recorded too");
    assert_eq!(server.connection_count(), 1);
}

#[test]
fn dropped_connections_fail_the_next_query_and_reconnecting_works() {
    let server = TdsServer::start();
    run(async {
        let mut client = connect(&server).await;
        client.simple_query("SELECT 1").await.unwrap().into_results().await.unwrap();

        server.drop_connections();
        let failed = match client.simple_query("SELECT 1").await {
            Ok(stream) => stream.into_results().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(failed.is_err(), "a query on a dropped connection must fail");

        let mut client = connect(&server).await;
        server.fail_next("DELETE", Failure::DropConnection);
        assert!(client.execute("DELETE FROM t", &[]).await.is_err(), "the scripted drop fails the statement");

        let mut client = connect(&server).await;
        let done = client.execute("DELETE FROM t", &[]).await.expect("a new connection works");
        assert_eq!(done.total(), 1);
    });
    assert_eq!(server.connection_count(), 3);
    let sql: Vec<String> = server.statements().into_iter().map(|s| s.sql).collect();
    assert_eq!(sql, ["SELECT 1", "DELETE FROM t", "DELETE FROM t"]);
}

/// A batch, tolerating a failure that arrives with the first answer.
async fn batch_result(client: &mut Connection, sql: &str) -> tiberius::Result<()> {
    match client.simple_query(sql).await {
        Ok(stream) => stream.into_results().await.map(drop),
        Err(e) => Err(e),
    }
}

#[test]
fn a_held_lock_waits_for_the_sessions_lock_timeout_then_fails_with_1222() {
    let server = TdsServer::start();
    server.hold_lock("[HIS_appointments]");
    run(async {
        let mut client = connect(&server).await;
        batch_result(&mut client, "SET XACT_ABORT ON; SET LOCK_TIMEOUT 300").await.expect("set the lock timeout");
        let started = Instant::now();
        let failed = client.execute("MERGE INTO [HIS_appointments] AS t USING s ON 1 = 1", &[]).await;
        assert_eq!(server_error(failed), (1222, 51, 16, LOCK_TIMEOUT_MESSAGE.into()));
        assert!(started.elapsed() >= Duration::from_millis(300), "it waited the session's lock timeout first");
        // Only what the lock covers waits; the session is still usable.
        let done = client.execute("MERGE INTO [HIS_payments] AS t USING s ON 1 = 1", &[]).await.expect("not locked");
        assert_eq!(done.total(), 1);
        // LOCK_TIMEOUT 0: no wait at all.
        batch_result(&mut client, "SET LOCK_TIMEOUT 0").await.unwrap();
        let failed = client.execute("UPDATE [HIS_appointments] SET a = 1", &[]).await;
        assert_eq!(server_error(failed).0, 1222);
        // Released: it goes through.
        server.release_locks();
        client.execute("UPDATE [HIS_appointments] SET a = 1", &[]).await.expect("released");
    });
    assert_eq!(server.lock_waits(), 2);
}

#[test]
fn without_a_lock_timeout_a_held_lock_waits_until_it_is_released() {
    let server = TdsServer::start();
    server.hold_lock("[T]");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Released once the statement is waiting for it.
            while server.lock_waits() == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(200));
            server.release_locks();
        });
        run(async {
            let mut client = connect(&server).await;
            let started = Instant::now();
            let done = client.execute("UPDATE [T] SET a = 1", &[]).await.expect("goes on once released");
            assert_eq!(done.total(), 1);
            assert!(started.elapsed() >= Duration::from_millis(200), "it waited for the release");
        });
    });
    assert_eq!(server.lock_waits(), 1);
}

#[test]
fn a_client_that_gives_up_on_a_lock_wait_frees_its_connection() {
    let server = TdsServer::start();
    server.hold_lock("[T]");
    run(async {
        let mut client = connect(&server).await;
        // The client's own timeout, as the plugin's statement timeout does.
        let waited =
            tokio::time::timeout(Duration::from_millis(200), client.execute("UPDATE [T] SET a = 1", &[])).await;
        assert!(waited.is_err(), "SQL Server's default lock timeout waits forever");
        drop(client);
        let mut client = connect(&server).await;
        client.execute("UPDATE [U] SET a = 1", &[]).await.expect("a new connection works");
    });
    buktor_tests::wait_for(Duration::from_secs(5), "the waiting connection to end", || {
        (server.open_connections() == 0).then_some(())
    });
}
