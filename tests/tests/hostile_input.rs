//! SQL injection is impossible through the writers, proved through the
//! real binary with the real sqlite and MySQL plugins loaded from disk:
//!
//! - table and column names from the config that need quoting in every
//!   dialect (quotes, backticks, brackets, `;`, `--`, unicode, SQL that
//!   drops a table) name exactly those tables and columns, and nothing
//!   else in the HIS is created, dropped or changed;
//! - event field names are only looked up, never written into SQL, however
//!   they look (quotes, backticks, `;`, unicode, 10,000 characters);
//! - values are bound, never pasted: injection strings, backslashes, NUL,
//!   4-byte UTF-8, numbers as strings and a 60 KB string come back from the
//!   HIS byte for byte;
//! - names that cannot be a table or column name (empty, blank, with a
//!   control character) stop the middleware at startup with one line
//!   naming their place in the config.
//!
//! Each scenario runs against SQLite always, and against MySQL/MariaDB when
//! `HIS_TEST_MYSQL_URL` is set (tests/src/mysql.rs: a printed skip without
//! it, a failure with CI=true).

use std::{path::PathBuf, time::Duration};

use buktor_tests::{Middleware, Setup, mysql, query, wait_for};
use serde_json::{Map, Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

/// A table name that would drop `appointments` if a writer pasted it into
/// SQL with SQLite's or MySQL's quote left undoubled.
const TABLE: &str = "x\"`]'; DROP TABLE appointments; --";

/// The key column, as hostile as the table.
const KEY_COLUMN: &str = "id\"`']; DROP TABLE sentinel; --";

/// Column names that need quoting in every dialect. MariaDB takes all of
/// them (at most 64 characters, none ending in a space, none outside the
/// Basic Multilingual Plane); SQLite also takes [`SQLITE_ONLY_COLUMNS`].
const COLUMNS: [&str; 14] = [
    "a\"b",                              // SQLite's and ANSI's identifier quote
    "c`d",                               // MySQL's identifier quote
    "e'f",                               // the string quote
    "[g]h]",                             // SQL Server's identifier quotes
    "i;j",                               // a statement separator
    "k l",                               // a space
    "m -- n",                            // a line comment
    "/* o */",                           // a block comment
    "naïve",                             // beyond ASCII
    "? :p $q @r ?1",                     // parameter markers
    "back\\slash \\' \\\"",              // backslashes before quotes
    "x\"); DROP TABLE appointments; --", // SQLite's quote, then SQL
    "y`); DROP TABLE appointments; --",  // MySQL's quote, then SQL
    "z'); DROP TABLE sentinel; --",      // the string quote, then SQL
];

/// Column names SQLite takes but MariaDB refuses (4-byte UTF-8; a trailing
/// space).
const SQLITE_ONLY_COLUMNS: [&str; 2] = ["emoji 😀 𝄞", " padded with spaces "];

/// The tables the hostile names try to drop, each with one row.
const SENTINELS: &str = "
    CREATE TABLE appointments (id INTEGER PRIMARY KEY, note TEXT);
    INSERT INTO appointments VALUES (1, 'still here');
    CREATE TABLE sentinel (id INTEGER PRIMARY KEY, note TEXT);
    INSERT INTO sentinel VALUES (1, 'still here');";

/// Values that would be SQL if pasted, or that a careless writer would
/// mangle (escapes, NUL, 4-byte UTF-8, numbers as text), and a 60 KB one.
///
/// NUL (JSON `"\u0000"`) is not refused: both writers store it inside the
/// text (SQLite binds text with its length; MariaDB takes it in a bound
/// parameter), and it comes back byte for byte.
fn hostile_values() -> Vec<String> {
    let long: String = "O'Reilly \"said\" `x` \\ ; -- é 😀 ".chars().cycle().take(60 * 1024).collect();
    assert!(long.len() > 60 * 1024, "60 KB");
    [
        "'); DROP TABLE notes; --",
        "' OR '1'='1",
        "\" OR \"\"=\"",
        "`); DELETE FROM notes; --",
        "back\\slash \\' \\\" \\n \\\\",
        "C:\\new\\table\\0",
        "\\0 literally backslash zero",
        "NUL \u{0} inside",
        "\u{0}",
        "%_ LIKE wildcards, ? $1 :name @var",
        "${HIS_DB_PASSWORD}",
        "患者 ✓ 😀 𝄞 مرحبا שלום",
        "1500",
        "007",
        "-0.0",
        "1e308",
        "123456789012345678901234567890.000000001",
        "",
        " \t\r\n ",
        &long,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Event field names (JSON member names) that are data, however they look,
/// each mapped to an ordinary column. None needs an escape in JSON: see
/// [`sqlite_escaped_field_names_are_read`] for those.
fn hostile_field_names() -> Vec<String> {
    ["patient's name", "`tick`", "semi;colon", "-- comment", "' OR '1'='1", "naïve 😀 患者", "[bracketed]", "a b"]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once("long".repeat(2_500)))
        .collect()
}

/// The HIS database a scenario writes, read back exactly.
enum His<'a> {
    /// The SQLite file.
    Sqlite(PathBuf),
    /// A fresh MySQL/MariaDB database.
    Mysql(&'a mysql::Database),
}

impl His<'_> {
    fn quote(&self, name: &str) -> String {
        match self {
            His::Sqlite(_) => format!("\"{}\"", name.replace('"', "\"\"")),
            His::Mysql(_) => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// A column type for long text.
    fn text(&self) -> &'static str {
        match self {
            His::Sqlite(_) => "TEXT",
            His::Mysql(_) => "LONGTEXT",
        }
    }

    /// A column type for a text key.
    fn text_key(&self) -> &'static str {
        match self {
            His::Sqlite(_) => "TEXT",
            His::Mysql(_) => "VARCHAR(255)",
        }
    }

    /// Runs statements separated by `;`.
    fn execute(&self, sql: &str) {
        match self {
            His::Sqlite(path) => rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap(),
            His::Mysql(db) => db.execute(sql),
        }
    }

    /// Rows of a query, text exactly as stored (integers as decimal text).
    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let path = match self {
            His::Sqlite(path) => path,
            His::Mysql(db) => return db.rows(sql),
        };
        let his = rusqlite::Connection::open(path).unwrap();
        let cell = |value: Value| match value {
            Value::Null => None,
            Value::Number(n) if n.is_i64() => Some(n.to_string()),
            Value::String(text) => Some(text),
            other => panic!("{sql}: {other} is not text or an integer"),
        };
        query(&his, sql).into_iter().map(|row| row.into_iter().map(cell).collect()).collect()
    }

    /// Every table, column and index, with its definition: two snapshots
    /// are equal only if nothing was created, dropped or altered.
    fn schema(&self) -> Vec<Vec<Option<String>>> {
        self.rows(match self {
            His::Sqlite(_) => "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name",
            His::Mysql(_) => {
                "SELECT 'column', CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR),
                        CAST(ORDINAL_POSITION AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(COLUMN_KEY AS CHAR)
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
                 UNION ALL
                 SELECT 'index', CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR),
                        CAST(SEQ_IN_INDEX AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR)
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
                 ORDER BY 1, 2, 3, 4"
            }
        })
    }

    /// `(table, column)` of every column, in table order.
    fn columns(&self) -> Vec<(String, String)> {
        let sql = match self {
            His::Sqlite(_) => {
                "SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' ORDER BY m.name, p.cid"
            }
            His::Mysql(_) => {
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
            }
        };
        self.rows(sql).into_iter().map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap())).collect()
    }

    fn assert_sentinels_intact(&self) {
        for table in ["appointments", "sentinel"] {
            let rows = self.rows(&format!("SELECT id, note FROM {table}"));
            assert_eq!(rows, [[Some("1".to_string()), Some("still here".to_string())]], "{table}");
        }
    }
}

/// A setup writing the SQLite HIS file, which must exist (nothing created).
fn sqlite_setup() -> (Setup, PathBuf) {
    let mut setup = Setup::new();
    setup.config["database"]["create_missing"] = json!(false);
    let path = setup.path("his.db");
    (setup, path)
}

/// A setup writing `db`.
fn mysql_setup(db: &mysql::Database) -> Setup {
    let mut setup = Setup::new();
    setup.config["database"] = db.config();
    setup
}

/// `(id, status, last_error)` of every event in the journal.
fn journal(setup: &Setup) -> Vec<Vec<Value>> {
    query(&setup.journal(), "SELECT id, status, last_error FROM events ORDER BY id")
}

/// Waits until each of `ids` is delivered; fails at once, with the journal
/// and the logs, if one is set aside instead.
fn wait_delivered(setup: &Setup, middleware: &Middleware, ids: &[i64]) {
    wait_for(PATIENCE, &format!("events {ids:?} delivered"), || {
        let rows = journal(setup);
        let of = |id: i64| rows.iter().find(|r| r[0] == json!(id));
        if let Some(failed) = ids.iter().filter_map(|id| of(*id)).find(|r| r[1] == json!("failed")) {
            panic!("event set aside: {failed:?}\nlogs:\n{}", middleware.logs());
        }
        ids.iter().all(|id| of(*id).is_some_and(|r| r[1] == json!("delivered"))).then_some(())
    });
}

fn assert_all_delivered_without_error(setup: &Setup) {
    let rows = journal(setup);
    assert!(rows.iter().all(|r| r[1] == json!("delivered") && r[2].is_null()), "{rows:?}");
}

/// Posts one event, expecting it accepted; returns its journal id.
fn post(middleware: &Middleware, event: &Value) -> i64 {
    let response = middleware.post_event(&event.to_string());
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["status"], "accepted", "{}", response.body);
    response.json()["id"].as_i64().expect("a journal id")
}

// ------------------------------------------------- hostile table and column names

/// Event field `id` to [`KEY_COLUMN`], `f<i>` to `columns[i]`, into `table`.
fn identifier_mapping(table: &str, columns: &[&str]) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), json!(KEY_COLUMN));
    for (i, column) in columns.iter().enumerate() {
        fields.insert(format!("f{i}"), json!(column));
    }
    json!({"table": table, "fields": fields, "key": ["id"]})
}

/// An event for [`identifier_mapping`]. Each value names its column, so a
/// value in the wrong column shows.
fn identifier_event(event_type: &str, id: i64, columns: &[&str], version: &str) -> Value {
    let mut event = Map::new();
    event.insert("event_type".into(), json!(event_type));
    event.insert("id".into(), json!(id));
    for (i, column) in columns.iter().enumerate() {
        event.insert(format!("f{i}"), json!(format!("{version} value of {column} for {id}")));
    }
    Value::Object(event)
}

/// Writes row 1, then updates it (so the upsert's update branch runs with
/// the hostile names too), and writes row 2.
fn post_identifier_events(setup: &Setup, middleware: &Middleware, event_type: &str, columns: &[&str]) {
    let first = post(middleware, &identifier_event(event_type, 1, columns, "old"));
    wait_delivered(setup, middleware, &[first]);
    let update = post(middleware, &identifier_event(event_type, 1, columns, "new"));
    let second = post(middleware, &identifier_event(event_type, 2, columns, "new"));
    wait_delivered(setup, middleware, &[update, second]);
}

/// What [`post_identifier_events`] must leave in `table`, read by its own
/// quoted names.
fn assert_identifier_rows(his: &His, table: &str, columns: &[&str]) {
    let list: Vec<String> = std::iter::once(KEY_COLUMN).chain(columns.iter().copied()).map(|c| his.quote(c)).collect();
    let rows = his.rows(&format!("SELECT {} FROM {} ORDER BY 1", list.join(", "), his.quote(table)));
    let expected: Vec<Vec<Option<String>>> = (1..=2)
        .map(|id| {
            std::iter::once(id.to_string())
                .chain(columns.iter().map(|c| format!("new value of {c} for {id}")))
                .map(Some)
                .collect()
        })
        .collect();
    assert_eq!(rows, expected);
}

fn hostile_identifiers_are_quoted_exactly(his: &His, mut setup: Setup, columns: &[&str]) {
    let column_list: Vec<String> = columns.iter().map(|c| format!("{} TEXT", his.quote(c))).collect();
    his.execute(SENTINELS);
    his.execute(&format!(
        "CREATE TABLE {} ({} BIGINT PRIMARY KEY, {})",
        his.quote(TABLE),
        his.quote(KEY_COLUMN),
        column_list.join(", ")
    ));
    let schema = his.schema();
    setup.config["mapping"] = json!({"hostile": identifier_mapping(TABLE, columns)});
    let middleware = setup.start();

    post_identifier_events(&setup, &middleware, "hostile", columns);

    assert_identifier_rows(his, TABLE, columns);
    assert_eq!(his.schema(), schema, "nothing created, dropped or altered");
    his.assert_sentinels_intact();
    assert_all_delivered_without_error(&setup);
}

#[test]
fn sqlite_hostile_table_and_column_names_are_quoted_exactly() {
    let columns: Vec<&str> = COLUMNS.iter().chain(&SQLITE_ONLY_COLUMNS).copied().collect();
    let (setup, path) = sqlite_setup();
    hostile_identifiers_are_quoted_exactly(&His::Sqlite(path), setup, &columns);
}

#[test]
fn mysql_hostile_table_and_column_names_are_quoted_exactly() {
    let Some(server) = mysql::server("mysql_hostile_table_and_column_names_are_quoted_exactly") else { return };
    let db = server.database();
    hostile_identifiers_are_quoted_exactly(&His::Mysql(&db), mysql_setup(&db), &COLUMNS);
}

/// With `create_missing`, the sqlite plugin writes DDL from the names too:
/// CREATE TABLE for a missing table; ALTER TABLE ADD COLUMN and CREATE
/// UNIQUE INDEX for a table that has only its key column.
#[test]
fn sqlite_create_missing_creates_exactly_the_hostile_names() {
    let columns: Vec<&str> = COLUMNS.iter().chain(&SQLITE_ONLY_COLUMNS).copied().collect();
    let partial = "partial\"`'; DROP TABLE sentinel; --";
    let (mut setup, path) = sqlite_setup();
    let his = His::Sqlite(path);
    setup.config["database"]["create_missing"] = json!(true);
    setup.config["mapping"] = json!({
        "hostile": identifier_mapping(TABLE, &columns),
        "partial": identifier_mapping(partial, &columns),
    });
    his.execute(SENTINELS);
    his.execute(&format!("CREATE TABLE {} ({} INTEGER)", his.quote(partial), his.quote(KEY_COLUMN)));
    let middleware = setup.start();

    post_identifier_events(&setup, &middleware, "hostile", &columns);
    post_identifier_events(&setup, &middleware, "partial", &columns);

    assert_identifier_rows(&his, TABLE, &columns);
    assert_identifier_rows(&his, partial, &columns);
    let mut expected: Vec<(String, String)> = [("appointments", "id"), ("appointments", "note")]
        .into_iter()
        .chain(
            [partial, TABLE]
                .into_iter()
                .flat_map(|t| std::iter::once(KEY_COLUMN).chain(columns.clone()).map(move |c| (t, c))),
        )
        .chain([("sentinel", "id"), ("sentinel", "note")])
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(his.columns(), expected, "exactly the configured names");
    let indexes = his.rows("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' ORDER BY name");
    let index = format!("buktor_key_{partial}_{KEY_COLUMN}");
    assert_eq!(indexes, [[Some(index), Some(partial.to_string())]], "the unique index on the key, nothing else");
    let primary_keys = his.rows(
        "SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND p.pk > 0 ORDER BY m.name",
    );
    let expected: Vec<[Option<String>; 2]> = [("appointments", "id"), ("sentinel", "id"), (TABLE, KEY_COLUMN)]
        .iter()
        .map(|(t, c)| [Some(t.to_string()), Some(c.to_string())])
        .collect();
    assert_eq!(primary_keys, expected, "the created table's key is its primary key");
    his.assert_sentinels_intact();
    assert_all_delivered_without_error(&setup);
}

// ------------------------------------------------- hostile field names and values

/// The key of each value's row, and last one that is itself SQL.
fn value_keys(values: &[String]) -> Vec<String> {
    (0..values.len()).map(|i| format!("note-{i}")).chain(["'); DROP TABLE sentinel; --".to_string()]).collect()
}

/// One event per hostile value (as `text`), each also carrying every
/// hostile field name with a value of its own; and one event whose key is
/// SQL.
fn value_events(fields: &[String], values: &[String]) -> Vec<Value> {
    value_keys(values)
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let mut event = Map::new();
            event.insert("event_type".into(), json!("note"));
            event.insert("note_id".into(), json!(key));
            event.insert("text".into(), json!(values.get(i).map_or("the key is SQL", String::as_str)));
            for (j, field) in fields.iter().enumerate() {
                event.insert(field.clone(), json!(format!("field {j} of {key}: {}", values[j % values.len()])));
            }
            Value::Object(event)
        })
        .collect()
}

fn hostile_field_names_and_values_round_trip(his: &His, mut setup: Setup) {
    let fields = hostile_field_names();
    let values = hostile_values();
    let columns: Vec<String> = (0..fields.len()).map(|i| format!("c{i}")).collect();
    his.execute(SENTINELS);
    his.execute(&format!(
        "CREATE TABLE notes (note_id {} PRIMARY KEY, body {text}, {})",
        his.text_key(),
        columns.iter().map(|c| format!("{c} {text}", text = his.text())).collect::<Vec<_>>().join(", "),
        text = his.text()
    ));
    let schema = his.schema();
    let mut mapped = Map::new();
    mapped.insert("note_id".into(), json!("note_id"));
    mapped.insert("text".into(), json!("body"));
    for (field, column) in fields.iter().zip(&columns) {
        mapped.insert(field.clone(), json!(column));
    }
    setup.config["mapping"] = json!({"note": {"table": "notes", "fields": mapped}});
    let middleware = setup.start();

    let events = value_events(&fields, &values);
    let ids: Vec<i64> = events.iter().map(|event| post(&middleware, event)).collect();
    wait_delivered(&setup, &middleware, &ids);

    let sql = format!("SELECT note_id, body, {} FROM notes ORDER BY note_id", columns.join(", "));
    let mut stored = his.rows(&sql);
    assert_eq!(stored.len(), events.len(), "one row per key");
    let mut expected: Vec<Vec<Option<String>>> = events
        .iter()
        .map(|event| {
            ["note_id", "text"]
                .iter()
                .map(|f| f.to_string())
                .chain(fields.iter().cloned())
                .map(|f| Some(event[&f].as_str().expect("text").to_string()))
                .collect()
        })
        .collect();
    // Compare in Rust's byte order, not the database's collation.
    stored.sort();
    expected.sort();
    for (stored, expected) in stored.iter().zip(&expected) {
        let key = expected[0].as_deref().unwrap();
        for (i, (s, e)) in stored.iter().zip(expected).enumerate() {
            // assert! rather than assert_eq!: one value is 60 KB.
            assert!(
                s == e,
                "row {key:?}, column {i}: stored {} bytes {:?}…, sent {} bytes {:?}…",
                s.as_ref().map_or(0, String::len),
                s.as_deref().map(|s| s.chars().take(40).collect::<String>()),
                e.as_ref().map_or(0, String::len),
                e.as_deref().map(|e| e.chars().take(40).collect::<String>()),
            );
        }
    }
    assert_eq!(his.schema(), schema, "nothing created, dropped or altered");
    his.assert_sentinels_intact();
    assert_all_delivered_without_error(&setup);
}

#[test]
fn sqlite_hostile_field_names_and_values_round_trip_byte_for_byte() {
    let (setup, path) = sqlite_setup();
    hostile_field_names_and_values_round_trip(&His::Sqlite(path), setup);
}

#[test]
fn mysql_hostile_field_names_and_values_round_trip_byte_for_byte() {
    let Some(server) = mysql::server("mysql_hostile_field_names_and_values_round_trip_byte_for_byte") else {
        return;
    };
    let db = server.database();
    hostile_field_names_and_values_round_trip(&His::Mysql(&db), mysql_setup(&db));
}

/// Names MariaDB cannot store (4-byte UTF-8; a trailing space on a table
/// name) are not refused at startup, since SQLite takes them: the server
/// refuses the write, and the event is set aside with the server's message
/// while other events flow.
#[test]
fn mysql_names_the_server_refuses_set_the_event_aside_with_its_message() {
    let Some(server) = mysql::server("mysql_names_the_server_refuses_set_the_event_aside_with_its_message") else {
        return;
    };
    let db = server.database();
    let his = His::Mysql(&db);
    his.execute(SENTINELS);
    his.execute("CREATE TABLE plain (k BIGINT PRIMARY KEY, v TEXT)");
    let schema = his.schema();
    let mut setup = mysql_setup(&db);
    setup.config["mapping"] = json!({
        "emoji": {"table": "plain", "fields": {"k_id": "k", "v": "v 😀"}},
        "padded": {"table": "plain ", "fields": {"k_id": "k", "v": "v"}},
        "good": {"table": "plain", "fields": {"k_id": "k", "v": "v"}},
    });
    let middleware = setup.start();
    let emoji = post(&middleware, &json!({"event_type": "emoji", "k_id": 1, "v": "x"}));
    let padded = post(&middleware, &json!({"event_type": "padded", "k_id": 2, "v": "x"}));
    let good = post(&middleware, &json!({"event_type": "good", "k_id": 3, "v": "x"}));
    wait_delivered(&setup, &middleware, &[good]);
    let error_of = |id: i64| {
        wait_for(PATIENCE, &format!("event {id} set aside"), || {
            let rows = query(&setup.journal(), &format!("SELECT status, last_error FROM events WHERE id = {id}"));
            (rows[0][0] == json!("failed")).then(|| rows[0][1].as_str().expect("a last error").to_string())
        })
    };
    let emoji = error_of(emoji);
    // MariaDB names utf8mb3 or utf8mb4, depending on the connection.
    assert!(emoji.contains(" character string: 'v \\xF0\\x9F\\x98\\x80'"), "{emoji}");
    assert!(emoji.ends_with("(code 1300)"), "{emoji}");
    let padded = error_of(padded);
    assert!(padded.contains("Incorrect table name 'plain '"), "{padded}");
    assert!(padded.ends_with("(code 1103)"), "{padded}");
    assert_eq!(his.rows("SELECT k, v FROM plain"), [[Some("3".to_string()), Some("x".to_string())]]);
    assert_eq!(his.schema(), schema);
    his.assert_sentinels_intact();
}

// ------------------------------------------------- names refused at startup

/// A table or column name that is empty, blank, or holds a control
/// character stops the middleware before it opens the journal or loads
/// the plugin, with one line naming its JSON path. (config_errors.rs covers
/// wrong types and the other settings.)
#[test]
fn blank_names_and_control_characters_are_refused_at_startup_naming_the_json_path() {
    let cases: [(&str, &str, &str); 12] = [
        ("table", "", "is empty: expected a table or column name"),
        ("table", " \t ", "is empty: expected a table or column name"),
        ("fields.patient_id", "   ", "is empty: expected a table or column name"),
        ("fields.patient_id", "\u{3000}\u{a0}", "is empty: expected a table or column name"),
        ("fields.appointment_id", "", "is empty: expected a table or column name"),
        ("fields.patient_id", "HIS\npatient", r#""HIS\npatient" contains a control character"#),
        ("fields.patient_id", "ok\r", r#""ok\r" contains a control character"#),
        ("fields.patient_id", "tab\tbed", r#""tab\tbed" contains a control character"#),
        ("fields.patient_id", "bell\u{7}", r#""bell\u{7}" contains a control character"#),
        ("fields.patient_id", "\u{1b}[2Jcleared", r#""\u{1b}[2Jcleared" contains a control character"#),
        ("fields.patient_id", "next\u{85}line", r#""next\u{85}line" contains a control character"#),
        ("table", "HIS_\u{0}appointments", r#""HIS_\0appointments" contains a control character"#),
    ];
    for (place, name, message) in cases {
        let mut setup = Setup::new();
        match place.split_once('.') {
            Some(("fields", field)) => setup.config["mapping"]["appointment"]["fields"][field] = json!(name),
            _ => setup.config["mapping"]["appointment"][place] = json!(name),
        }
        let (status, stderr) = setup.run_expecting_exit();
        assert!(!status.success(), "{name:?}: exit status {status}");
        let expected = format!("his-config.json: mapping.appointment.{place}: {message}");
        assert_eq!(stderr.lines().count(), 1, "{name:?}: one line:\n{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.ends_with(&expected), "{name:?}: {stderr}");
        assert!(!stderr.chars().any(char::is_control), "{name:?}: no raw control character: {stderr:?}");
        assert!(!setup.path("journal.db").exists(), "{name:?}: refused before the journal is opened");
        assert!(!setup.path("his.db").exists(), "{name:?}: refused before the plugin opens the HIS");
    }
}

// ------------------------------------------------- found: not yet fixed in the host

/// JSON member names that need an escape (`\"`, `\\`, `\t`, `\/`, `\u00e9`,
/// a surrogate pair) are ordinary event field names: Python's json.dumps
/// escapes every non-ASCII name, PHP's json_encode every `/`.
///
/// FOUND: host/src/mapping.rs `EventMapping::row` reads the payload as
/// `HashMap<&str, &RawValue>`, and serde_json cannot borrow a name with an
/// escape, so any such member, even an unmapped one, makes the accepted
/// event fail at delivery with "the journaled payload is not a JSON
/// object: invalid type: string …, expected a borrowed string". Owned
/// names (`HashMap<String, &RawValue>`) would fix it.
#[test]
fn sqlite_escaped_field_names_are_read() {
    let (mut setup, path) = sqlite_setup();
    let his = His::Sqlite(path);
    his.execute("CREATE TABLE notes (note_id TEXT PRIMARY KEY, c0 TEXT, c1 TEXT, c2 TEXT, c3 TEXT, c4 TEXT, c5 TEXT)");
    setup.config["mapping"] = json!({"note": {"table": "notes", "fields": {
        "note_id": "note_id",
        "x\"; DROP TABLE notes; --": "c0",
        "back\\slash": "c1",
        "tab\there": "c2",
        "a/b": "c3",
        "café": "c4",
        "😀": "c5",
    }}});
    let middleware = setup.start();
    // Written by hand: serde_json would not escape `/`, `é` or `😀`.
    let mapped = r#"{"event_type": "note", "note_id": "n1", "x\"; DROP TABLE notes; --": "v0", "back\\slash": "v1",
                     "tab\there": "v2", "a\/b": "v3", "caf\u00e9": "v4", "\ud83d\ude00": "v5"}"#;
    let unmapped = r#"{"event_type": "note", "note_id": "n2", "caf\u00e9": "v4", "not \"mapped\"": 1}"#;
    let ids: Vec<i64> = [mapped, unmapped]
        .iter()
        .map(|body| {
            let response = middleware.post_event(body);
            assert_eq!(response.status, 200, "{}", response.body);
            response.json()["id"].as_i64().unwrap()
        })
        .collect();
    wait_delivered(&setup, &middleware, &ids);
    let text = |s: &str| Some(s.to_string());
    assert_eq!(
        his.rows("SELECT note_id, c0, c1, c2, c3, c4, c5 FROM notes ORDER BY note_id"),
        [
            vec![text("n1"), text("v0"), text("v1"), text("v2"), text("v3"), text("v4"), text("v5")],
            vec![text("n2"), None, None, None, None, text("v4"), None],
        ]
    );
}

/// Event types and event field names are data, so they may hold any
/// character; but the one-line startup error prints them raw in its JSON
/// path.
///
/// FOUND: host/src/config.rs builds paths such as
/// `mapping.<event_type>.fields.<field>` with the names unescaped, so a
/// newline in one splits the "one line" error in two, and an escape
/// sequence reaches the operator's terminal.
#[test]
fn a_control_character_in_a_mapped_name_does_not_split_the_error_line() {
    for (event_type, field) in [("appointment", "patient\nid"), ("appoint\u{1b}[2Jment", "patient_id")] {
        let mut setup = Setup::new();
        setup.config["mapping"][event_type] = json!({"table": "T", "fields": {"appointment_id": "A", field: ""}});
        let (status, stderr) = setup.run_expecting_exit();
        assert!(!status.success());
        assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.ends_with("is empty: expected a table or column name"),
            "{stderr}"
        );
        assert!(!stderr.chars().any(char::is_control), "no raw control character: {stderr:?}");
    }
}
