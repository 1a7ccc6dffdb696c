//! `write_all` (plugin-api 1.2): several batches, into several tables, in
//! ONE transaction, through the host's own calls (`HisWriter::write_all`)
//! into the real plugin libraries, loaded from disk as the host loads them.
//!
//! For each plugin: a payment and the appointment's `paid` flag, written
//! together, both commit; a bad row in the SECOND batch rolls back the
//! FIRST batch's rows too, and the error names the row counting across
//! the batches (row 1 of the second batch, after a first batch of 2 rows,
//! is 3). SQLite and MariaDB/MySQL (`HIS_TEST_MYSQL_URL`) are read back;
//! SQL Server runs against the TDS test server (tests/src/tds), which
//! executes nothing, so its test reads the transaction from the statements
//! the server received: one BEGIN, both tables' statements, then one
//! COMMIT, or a ROLLBACK and no COMMIT. Oracle has no server here: its
//! `write_all` is covered by its unit tests only.

use std::{path::Path, time::Duration};

use buktor_middleware::plugins::{
    self, HisWriter,
    api::{Action, Deadline, ErrorKind, PluginError, Value, WriteBatch},
};
use buktor_tests::{
    artifacts, mysql, query,
    tds::{Failure, StatementKind, TdsServer},
    verified,
};
use serde_json::{Value as Json, json};

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// A writer of the plugin `name`, opened with `database` as the host opens it.
fn open(name: &str, database: &Json, config_dir: &Path) -> HisWriter {
    let plugin = plugins::load_path(&artifacts().plugin(name)).unwrap_or_else(|e| panic!("{e}"));
    let writer = plugin.open_writer(&database.to_string(), config_dir, deadline()).unwrap_or_else(|e| panic!("{e}"));
    assert!(writer.writes_batches_together(), "the {name} plugin says it writes batches together");
    writer
}

/// A batch of whole rows, keyed by its first column.
fn batch(table: &str, action: Action, columns: &[&str], rows: &[Vec<Value>]) -> WriteBatch {
    WriteBatch::new(
        table,
        action,
        columns.iter().map(|c| (*c).into()).collect(),
        [columns[0].into()].into_iter().collect(),
        rows.iter().flatten().cloned().collect(),
    )
}

fn payments(rows: &[(i64, &str)]) -> WriteBatch {
    let rows: Vec<Vec<Value>> = rows.iter().map(|&(id, amount)| vec![Value::int(id), Value::decimal(amount)]).collect();
    batch("wa_payments", Action::UPSERT, &["payment_id", "amount"], &rows)
}

fn appointments(action: Action, rows: &[(i64, &str)]) -> WriteBatch {
    let rows: Vec<Vec<Value>> =
        rows.iter().map(|&(id, status)| vec![Value::int(id), Value::bool(true), Value::text(status)]).collect();
    batch("wa_appointments", action, &["appointment_id", "paid", "status"], &rows)
}

/// The error must be a DATA error naming `row` across the batches.
fn assert_refused_at(result: Result<(), PluginError>, row: u64) -> PluginError {
    let e = result.expect_err("the write must be refused");
    assert_eq!((e.kind, e.row.into_option()), (ErrorKind::DATA, Some(row)), "{e:?}");
    e
}

/// The scenario every plugin that reads back goes through; `ids` reads
/// the ids of a table, in order.
fn commits_together_or_not_at_all(writer: &mut HisWriter, ids: impl Fn(&str) -> Vec<i64>) {
    // A payment and the appointment it pays, in one transaction: both commit.
    let together = [payments(&[(1, "10.00"), (2, "20.00")]), appointments(Action::UPSERT, &[(7, "paid")])];
    writer.write_all(&together, deadline()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(ids("wa_payments"), [1, 2]);
    assert_eq!(ids("wa_appointments"), [7]);

    // The second batch's row 1 (id 7) exists: the insert is refused, and
    // the first batch's payments 3 and 4 are rolled back with it.
    let refused = [payments(&[(3, "30.00"), (4, "40.00")]), appointments(Action::INSERT, &[(8, "paid"), (7, "paid")])];
    assert_refused_at(writer.write_all(&refused, deadline()), 3);
    assert_eq!(ids("wa_payments"), [1, 2], "the first batch's rows were rolled back");
    assert_eq!(ids("wa_appointments"), [7], "the second batch's good row was rolled back");

    // One batch through `write` still names its row within the batch.
    assert_refused_at(writer.write(&refused[1], deadline()), 1);
    assert_eq!(ids("wa_appointments"), [7]);
    // And through `write_all` alone.
    assert_refused_at(writer.write_all(&refused[1..], deadline()), 1);
    writer.write_all(&refused[..1], deadline()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(ids("wa_payments"), [1, 2, 3, 4]);
}

#[test]
fn sqlite_writes_two_tables_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let his = rusqlite::Connection::open(dir.path().join("his.db")).unwrap();
    his.execute_batch(
        "CREATE TABLE wa_payments (payment_id INTEGER PRIMARY KEY, amount TEXT NOT NULL);
         CREATE TABLE wa_appointments (appointment_id INTEGER PRIMARY KEY, paid INTEGER, status TEXT);",
    )
    .unwrap();
    let mut writer = open("sqlite", &json!({"type": "sqlite", "path": "his.db"}), dir.path());
    commits_together_or_not_at_all(&mut writer, |table| {
        let rows = query(&his, &format!("SELECT * FROM {table} ORDER BY 1"));
        rows.iter().map(|row| row[0].as_i64().unwrap()).collect()
    });
    assert_eq!(
        query(&his, "SELECT appointment_id, paid, status FROM wa_appointments"),
        [vec![json!(7), json!(1), json!("paid")]]
    );
    writer.close().unwrap();
    verified("write_all", "sqlite: two tables in one transaction; a bad row in the second batch rolls back the first");
}

#[test]
fn mysql_writes_two_tables_in_one_transaction() {
    let Some(server) = mysql::server("mysql_writes_two_tables_in_one_transaction") else { return };
    let db = server.database();
    db.execute(
        "CREATE TABLE wa_payments (payment_id BIGINT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL);
         CREATE TABLE wa_appointments (appointment_id BIGINT PRIMARY KEY, paid BOOLEAN, status VARCHAR(10))",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open("mysql", &db.config(), dir.path());
    let ids = |table: &str| -> Vec<i64> {
        let key = if table == "wa_payments" { "payment_id" } else { "appointment_id" };
        let rows = db.rows(&format!("SELECT {key} FROM {table} ORDER BY 1"));
        rows.iter().map(|row| row[0].as_deref().unwrap().parse().unwrap()).collect()
    };
    commits_together_or_not_at_all(&mut writer, ids);

    // A row the server names in a multi-row upsert ("… at row 2" of the
    // second batch's statement): a status too long for VARCHAR(10).
    let too_long = [
        payments(&[(5, "50.00"), (6, "60.00")]),
        appointments(Action::UPSERT, &[(9, "ok"), (10, "far too long a status")]),
    ];
    let e = assert_refused_at(writer.write_all(&too_long, deadline()), 3);
    assert_eq!(e.code.as_str(), "1406", "{e:?}");
    assert_eq!(ids("wa_payments"), [1, 2, 3, 4], "payments 5 and 6 were rolled back");
    assert_eq!(ids("wa_appointments"), [7]);
    writer.close().unwrap();
    verified(
        "write_all",
        "mysql: two tables in one transaction; a bad row in the second batch rolls back the first, named across batches",
    );
}

#[test]
fn sqlserver_writes_two_tables_between_one_begin_and_one_commit() {
    let server = TdsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open("sqlserver", &server.database_config(), dir.path());
    // The session, and its setup, before the statements this test reads.
    writer.ping(deadline()).unwrap_or_else(|e| panic!("{e:?}"));
    // What the server received since `from`, as (kind, the SQL's first words).
    let since = |from: usize| -> Vec<String> {
        server.statements()[from..]
            .iter()
            .map(|s| {
                let kind = if s.kind == StatementKind::Rpc { "rpc" } else { "batch" };
                format!("{kind}: {}", s.sql.split(" (").next().unwrap_or_default().split(" WITH").next().unwrap())
            })
            .collect()
    };

    let from = server.statements().len();
    let together = [payments(&[(1, "10.00"), (2, "20.00")]), appointments(Action::UPSERT, &[(7, "paid")])];
    writer.write_all(&together, deadline()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        since(from),
        [
            "batch: BEGIN TRANSACTION",
            "rpc: MERGE INTO [wa_payments]",
            "rpc: MERGE INTO [wa_appointments]",
            "batch: COMMIT TRANSACTION",
        ]
    );

    // Row 1 of the second batch carries no status: a column set, and an
    // INSERT, of its own, which the server refuses as a duplicate key.
    let partial =
        appointments(Action::INSERT, &[(8, "paid"), (7, "")]).with_presence(|row, column| row == 0 || column < 2);
    let duplicate = "Violation of PRIMARY KEY constraint 'PK_wa_appointments'. Cannot insert duplicate key in \
                     object 'dbo.wa_appointments'. The duplicate key value is (7).";
    server.fail_next(
        "INSERT INTO [wa_appointments] ([appointment_id], [paid]) VALUES",
        Failure::Error { number: 2627, state: 1, class: 14, message: duplicate.into() },
    );
    let from = server.statements().len();
    let refused = [payments(&[(3, "30.00"), (4, "40.00")]), partial];
    assert_refused_at(writer.write_all(&refused, deadline()), 3);
    assert_eq!(
        since(from),
        [
            "batch: BEGIN TRANSACTION",
            "rpc: MERGE INTO [wa_payments]",
            "rpc: INSERT INTO [wa_appointments]",
            "rpc: INSERT INTO [wa_appointments]",
            "batch: IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION",
        ],
        "rolled back, never committed"
    );
    writer.close().unwrap();
    verified(
        "write_all",
        "sqlserver: two tables between one BEGIN and one COMMIT; a refused row rolls back, named across batches",
    );
}
