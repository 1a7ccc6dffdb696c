//! A SQL Server stand-in that speaks TDS 7.3/7.4 in plain text, for tests
//! of code that talks to SQL Server through tiberius.
//!
//! [`TdsServer::start`] listens on `127.0.0.1:0`. A client connects with
//! SQL Server authentication and `EncryptionLevel::NotSupported` (the
//! server answers PRELOGIN with `ENCRYPT_NOT_SUP`, so there is no TLS at
//! all). The server then records what arrives and answers it:
//!
//! - every LOGIN7 becomes a [`Login`] (the password decoded), answered
//!   with LOGINACK, ENVCHANGEs (database, language, collation, packet
//!   size) and DONE, like SQL Server;
//! - every SQL batch, every RPC and every transaction manager request
//!   becomes a [`Statement`]; an `sp_executesql` call is unpacked into its
//!   statement text, its declaration and its typed [`Param`]s;
//! - the answer is, in order of precedence: a failure scripted with
//!   [`TdsServer::fail_next`], a result set scripted with
//!   [`TdsServer::respond`], one row with `"1"` for any other statement
//!   that starts with `SELECT`, or plain success; an affected-row count
//!   scripted with [`TdsServer::affect_next`] replaces the count of a
//!   successful answer;
//! - a lock held with [`TdsServer::hold_lock`], as another session's open
//!   transaction would hold it, makes a statement that touches it wait as
//!   SQL Server does: for the session's `SET LOCK_TIMEOUT` (milliseconds;
//!   SQL Server's default, -1, waits until the lock is released), then fail
//!   with error 1222.
//!
//! Successful answers look like SQL Server's. A batch ends with DONE; an
//! RPC with DONEINPROC, RETURNSTATUS 0 and DONEPROC. A statement that
//! starts with INSERT, UPDATE, DELETE or MERGE reports one affected row
//! (the server does not know how many rows a statement touches) unless
//! [`TdsServer::affect_next`] says otherwise; any other statement reports
//! none. `BEGIN TRAN[SACTION]`, `COMMIT` and `ROLLBACK` anywhere in a
//! statement's text (outside literals and comments), and transaction
//! manager requests, open and close a transaction with the
//! ENVCHANGE tokens SQL Server sends, so the client's transaction
//! descriptor follows along. Nested BEGINs count like `@@TRANCOUNT`; a
//! COMMIT or ROLLBACK without a transaction is simply accepted.
//!
//! Not supported: TLS (any encryption level but `NotSupported`), MARS,
//! deadlocks (script 1205 with [`TdsServer::fail_next`]),
//! Windows/Azure AD authentication, bulk load (answered with an error),
//! several RPCs in one request (only the first is read), table-valued and
//! CLR-typed parameters, and real SQL: nothing is ever executed.
//!
//! ```no_run
//! use buktor_tests::tds::{Failure, TdsServer};
//!
//! let server = TdsServer::start();
//! server.fail_next("MERGE", Failure::Error { number: 1205, state: 51, class: 13, message: "deadlock".into() });
//! server.respond("FROM INFORMATION_SCHEMA.COLUMNS", &["name", "type"], vec![vec![Some("id".into()), Some("bigint".into())]]);
//! // … point the code under test at server.address, then:
//! let statements = server.statements();
//! # drop(statements);
//! ```

mod values;
mod wire;

use std::{
    collections::{HashMap, VecDeque},
    io,
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
};

use wire::{DoneKind, Malformed, Parsed, Reader, TextColumn, Tokens, done, packet};

/// The server name in LOGINACK and ERROR tokens.
const SERVER_NAME: &str = "buktor-tds-test";

/// A TDS test server on `127.0.0.1`. It stops, and closes every
/// connection, when dropped.
pub struct TdsServer {
    /// `127.0.0.1:PORT`: where clients connect.
    pub address: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// A LOGIN7 the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The SQL Server login name.
    pub user: String,
    /// The password, decoded from LOGIN7's obfuscation.
    pub password: String,
    /// The database asked for; empty when none was (the server then uses
    /// `master`).
    pub database: String,
    /// The application name (tiberius sends `tiberius` unless told otherwise).
    pub app_name: String,
}

/// How a statement arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A SQL batch (tiberius: `simple_query`).
    Batch,
    /// A remote procedure call (tiberius: `execute` and `query`, which
    /// call `sp_executesql`).
    Rpc,
    /// A transaction manager request (tiberius: `begin_transaction`,
    /// `commit_transaction`, …). Its `sql` is the T-SQL equivalent:
    /// `BEGIN TRANSACTION`, `COMMIT TRANSACTION`, `ROLLBACK TRANSACTION`
    /// or `SAVE TRANSACTION name`.
    TransactionManager,
}

/// A statement the server received: a batch, an RPC or a transaction
/// manager request.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// How it arrived.
    pub kind: StatementKind,
    /// The SQL text: the whole batch, or `sp_executesql`'s `@stmt`. For
    /// another procedure, its name (`sp_prepexec` for well-known ids).
    pub sql: String,
    /// `sp_executesql`'s parameter declaration (`@P1 bigint,@P2 bit`);
    /// empty for batches and other procedures.
    pub declaration: String,
    /// The statement's parameters, in order: for `sp_executesql` those after
    /// `@stmt` and the declaration; for another procedure, all of them.
    pub params: Vec<Param>,
}

/// One typed parameter of an RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The name as sent (`@P1`); empty for a positional parameter.
    pub name: String,
    /// The type as T-SQL declares it, from the TYPE_INFO actually sent,
    /// lower case: `bigint`, `int`, `bit`, `float` (8 bytes), `real`,
    /// `nvarchar(4000)`, `nvarchar(max)`, `numeric(6,2)` (tiberius sends
    /// `Numeric` as NUMERICN; DECIMALN would read `decimal(p,s)`),
    /// `datetime2(7)`, `date`, `time(7)`, `datetimeoffset(7)`, `datetime`,
    /// `money`, `uniqueidentifier`, `varbinary(8000)`, `xml`, …. A NULL sent
    /// as the untyped NULLTYPE (how tiberius sends every `None`) has the
    /// type from the declaration instead, in the same spelling
    /// (`float(53)` as `float`, `datetime2` as `datetime2(7)`).
    pub sql_type: String,
    /// The value.
    pub value: ParamValue,
}

/// A parameter value, decoded exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// NULL, whatever the type.
    Null,
    /// tinyint, smallint, int, bigint.
    Int(i64),
    /// bit.
    Bool(bool),
    /// real, float.
    Float(f64),
    /// nvarchar, nchar, ntext, varchar, char, text, xml.
    Text(String),
    /// decimal, numeric, money, smallmoney, as exact text with as many
    /// fraction digits as the scale: `1500.75`, `-0.50`, `12`, `3.5000`
    /// (money has scale 4).
    Decimal(String),
    /// Date and time types, as text with as many fraction digits as the
    /// scale: datetime2(7) `2025-03-03 09:00:00.0000000`, datetime2(0)
    /// `2025-03-03 09:00:00`, date `2025-03-03`, time(7) `09:00:00.0000000`,
    /// datetimeoffset(7) `2025-03-03 09:00:00.0000000 +01:00` (local time
    /// and offset), datetime `2025-03-03 09:00:00.000` (milliseconds
    /// rounded as SQL Server shows them), smalldatetime `2025-03-03 09:00:00`.
    DateTime(String),
    /// Anything else, as text: uniqueidentifier
    /// `6F9619FF-8B86-D011-B42D-00C04FC964FF`, binary types `0x0A0B`,
    /// sql_variant `sql_variant 0x…` (raw).
    Other(String),
}

/// A scripted answer that replaces success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An ERROR token, then DONE (DONEPROC for an RPC) with the error bit;
    /// tiberius returns `tiberius::error::Error::Server` with these fields.
    /// The ERROR token's server name is `buktor-tds-test`, its procedure
    /// name empty and its line 1. As on SQL Server, a `class` of 20 or
    /// more is fatal: the server closes the connection after answering.
    Error {
        /// The error number (1205 deadlock, 2627 unique key, …).
        number: u32,
        /// The state.
        state: u8,
        /// The class (severity).
        class: u8,
        /// The message text.
        message: String,
    },
    /// Close the connection without answering.
    DropConnection,
}

/// SQL Server's answer when a lock is not granted within the session's
/// `SET LOCK_TIMEOUT`: number 1222, state 51, class 16.
pub const LOCK_TIMEOUT_MESSAGE: &str = "Lock request time out period exceeded.";

/// A result set scripted with [`TdsServer::respond`].
struct Scripted {
    matching: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

struct Shared {
    statements: Mutex<Vec<Statement>>,
    logins: Mutex<Vec<Login>>,
    failures: Mutex<VecDeque<(String, Failure)>>,
    /// What [`TdsServer::affect_next`] scripted: (matching, rows).
    affected: Mutex<VecDeque<(String, u64)>>,
    login_failures: Mutex<VecDeque<Failure>>,
    results: Mutex<Vec<Scripted>>,
    /// What [`TdsServer::hold_lock`] holds.
    locks: Mutex<Vec<String>>,
    lock_waits: AtomicUsize,
    open: Mutex<HashMap<usize, TcpStream>>,
    accepted: AtomicUsize,
    stopping: AtomicBool,
    descriptors: AtomicU64,
}

/// Locks, ignoring poisoning: a panicking connection thread must not take
/// the test's view of the server with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TdsServer {
    /// Starts listening on `127.0.0.1:0`, with an accept loop on a thread
    /// of its own and a thread per connection.
    pub fn start() -> TdsServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TDS test server");
        let address = listener.local_addr().expect("local address").to_string();
        let shared = Arc::new(Shared {
            statements: Mutex::new(Vec::new()),
            logins: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
            affected: Mutex::new(VecDeque::new()),
            login_failures: Mutex::new(VecDeque::new()),
            results: Mutex::new(Vec::new()),
            locks: Mutex::new(Vec::new()),
            lock_waits: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
            accepted: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            descriptors: AtomicU64::new(0),
        });
        let state = shared.clone();
        let accept = thread::Builder::new()
            .name("tds-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if state.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = state.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    let Ok(handle) = stream.try_clone() else { continue };
                    lock(&state.open).insert(id, handle);
                    let state = state.clone();
                    let _ = thread::Builder::new().name(format!("tds-connection-{id}")).spawn(move || {
                        Connection::new(&state, stream, id).serve();
                        lock(&state.open).remove(&id);
                    });
                }
            })
            .expect("spawn the accept thread");
        TdsServer { address, shared, accept: Some(accept) }
    }

    /// Every SQL batch, RPC and transaction manager request received, in
    /// The `database` section of the seed's SQL Server example, pointed at
    /// this server (TDS without TLS).
    pub fn database_config(&self) -> serde_json::Value {
        let (host, port) = self.address.split_once(':').expect("host:port");
        serde_json::json!({
            "type": "sqlserver",
            "host": host,
            "port": port.parse::<u16>().expect("a port"),
            "user": "his_writer",
            "password": "s3cret!",
            "database": "his_database",
            "encrypt": "not_supported",
        })
    }

    /// order of arrival, across connections; failed ones included.
    pub fn statements(&self) -> Vec<Statement> {
        lock(&self.shared.statements).clone()
    }

    /// Every LOGIN7 received, in order, rejected ones included.
    pub fn logins(&self) -> Vec<Login> {
        lock(&self.shared.logins).clone()
    }

    /// Answers the next statement whose SQL text contains `matching` (an
    /// empty string matches any) with `failure` instead of success. Each
    /// scripted failure is used once; when several match one statement,
    /// the earliest scripted wins and the others wait for later statements.
    pub fn fail_next(&self, matching: &str, failure: Failure) {
        lock(&self.shared.failures).push_back((matching.to_string(), failure));
    }

    /// Reports `rows` affected rows, instead of the usual count, for the
    /// next statement whose SQL text contains `matching` (an empty string
    /// matches any) and is answered with success: an UPDATE that finds no
    /// row is `affect_next("UPDATE [T]", 0)`, which tiberius reads as
    /// `ExecuteResult::rows_affected() == [0]`. A statement answered with a
    /// failure (scripted, or a lock timeout) does not use it up. Each
    /// scripted count is used once, the earliest scripted first, like
    /// [`TdsServer::fail_next`]'s failures.
    pub fn affect_next(&self, matching: &str, rows: u64) {
        lock(&self.shared.affected).push_back((matching.to_string(), rows));
    }

    /// Answers the next LOGIN7 with `failure` (each scripted failure is used
    /// once). An [`Failure::Error`] is followed by closing the connection,
    /// as SQL Server does after a failed login; SQL Server's own answer to
    /// a bad password is number 18456, state 1, class 14,
    /// `Login failed for user '…'.`
    pub fn fail_next_login(&self, failure: Failure) {
        lock(&self.shared.login_failures).push_back(failure);
    }

    /// Answers every statement whose SQL text contains `matching` with a
    /// result set of NVARCHAR columns named `columns` holding `rows`
    /// (`None` is NULL), then DONE with the row count. A later `respond`
    /// that also matches takes precedence. Values over 4000 UTF-16 units
    /// make their column NVARCHAR(MAX).
    pub fn respond(&self, matching: &str, columns: &[&str], rows: Vec<Vec<Option<String>>>) {
        lock(&self.shared.results).push(Scripted {
            matching: matching.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        });
    }

    /// Holds a lock on whatever a statement whose SQL text contains
    /// `matching` touches (say `[HIS_appointments]`), as another session
    /// with an open transaction would, until [`TdsServer::release_locks`].
    /// Such a statement (a scripted failure aside) waits as on SQL Server:
    /// - for the session's lock timeout, set by `SET LOCK_TIMEOUT n`
    ///   (milliseconds) anywhere in an earlier batch of its connection; then
    ///   it fails with number 1222, state 51, class 16,
    ///   [`LOCK_TIMEOUT_MESSAGE`], and its connection stays usable;
    /// - `SET LOCK_TIMEOUT 0`: it fails at once;
    /// - without `SET LOCK_TIMEOUT` (or -1, SQL Server's default): until the
    ///   lock is released, the client closes the connection, or the server
    ///   stops;
    /// - once the lock is released while it waits, it goes on as usual.
    pub fn hold_lock(&self, matching: &str) {
        lock(&self.shared.locks).push(matching.to_string());
    }

    /// Releases every lock [`TdsServer::hold_lock`] holds: waiting
    /// statements go on.
    pub fn release_locks(&self) {
        lock(&self.shared.locks).clear();
    }

    /// How many statements found a held lock in their way so far (whether
    /// they then timed out or went on).
    pub fn lock_waits(&self) -> usize {
        self.shared.lock_waits.load(Ordering::SeqCst)
    }

    /// Closes every open client connection now, as a network failure
    /// would. New connections are accepted as before.
    pub fn drop_connections(&self) {
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// How many client connections are open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.open).len()
    }

    /// How many connections were accepted so far.
    pub fn connection_count(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for TdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TdsServer")
            .field("address", &self.address)
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Drop for TdsServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag (and wait for it only
        // when the wake-up got through).
        let woken = TcpStream::connect(&self.address).is_ok();
        if let Some(accept) = self.accept.take()
            && woken
        {
            let _ = accept.join();
        }
        self.drop_connections();
    }
}

/// Transaction control found in a statement's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transaction {
    Begin,
    Commit,
    Rollback,
}

/// ENVCHANGE types used here (MS-TDS 2.2.7.9).
mod env {
    pub const DATABASE: u8 = 1;
    pub const LANGUAGE: u8 = 2;
    pub const PACKET_SIZE: u8 = 4;
    pub const COLLATION: u8 = 7;
    pub const BEGIN_TRANSACTION: u8 = 8;
    pub const COMMIT_TRANSACTION: u8 = 9;
    pub const ROLLBACK_TRANSACTION: u8 = 10;
}

/// One client connection, served on its own thread.
struct Connection<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    spid: u16,
    packet_id: u8,
    packet_size: usize,
    /// TDS 7.2+: 8-byte row counts, 4-byte line numbers.
    wide: bool,
    /// `@@TRANCOUNT`.
    transactions: u32,
    /// The open transaction's descriptor.
    descriptor: u64,
    /// `SET LOCK_TIMEOUT`, in milliseconds; negative waits forever.
    lock_timeout_ms: i64,
}

/// How a statement's wait for a held lock ended.
enum LockWait {
    /// No lock was in its way, or it was released: answer as usual.
    Granted,
    /// The session's lock timeout passed: answer 1222.
    TimedOut,
    /// The client closed the connection, or the server is stopping.
    Gone,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, stream: TcpStream, id: usize) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            shared,
            stream,
            spid: 50 + (id % 30_000) as u16,
            packet_id: 1,
            packet_size: 4096,
            wide: true,
            transactions: 0,
            descriptor: 0,
            lock_timeout_ms: -1,
        }
    }

    /// Waits while a lock held with [`TdsServer::hold_lock`] is in the way
    /// of `sql`, as long as the session's lock timeout allows.
    fn wait_for_locks(&mut self, sql: &str) -> LockWait {
        let held = |shared: &Shared| lock(&shared.locks).iter().any(|matching| sql.contains(matching.as_str()));
        if !held(self.shared) {
            return LockWait::Granted;
        }
        self.shared.lock_waits.fetch_add(1, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let limit = u64::try_from(self.lock_timeout_ms).ok().map(std::time::Duration::from_millis);
        let _ = self.stream.set_nonblocking(true);
        let outcome = loop {
            if !held(self.shared) {
                break LockWait::Granted;
            }
            if limit.is_some_and(|limit| started.elapsed() >= limit) {
                break LockWait::TimedOut;
            }
            // A client that gave up (its own timeout) closes the connection.
            let closed = match self.stream.peek(&mut [0u8; 1]) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
            if closed || self.shared.stopping.load(Ordering::SeqCst) {
                break LockWait::Gone;
            }
            thread::sleep(std::time::Duration::from_millis(5));
        };
        let _ = self.stream.set_nonblocking(false);
        outcome
    }

    fn serve(mut self) {
        while let Ok(Some((kind, message))) = wire::read_message(&mut self.stream) {
            let keep_open = match kind {
                packet::PRELOGIN => self.prelogin(),
                packet::LOGIN7 => self.login(&message),
                packet::BATCH => self.batch(&message),
                packet::RPC => self.rpc(&message),
                packet::TRANSACTION_MANAGER => self.transaction_manager(&message),
                packet::ATTENTION => {
                    let mut tokens = Tokens::new(self.wide);
                    tokens.done(DoneKind::Done, done::ATTENTION, 0);
                    self.send(tokens).map(|()| true)
                }
                packet::BULK_LOAD => {
                    self.reject("the TDS test server does not support bulk load", DoneKind::Done).map(|()| true)
                }
                other => self
                    .reject(&format!("the TDS test server does not support packet type 0x{other:02X}"), DoneKind::Done)
                    .map(|()| true),
            };
            if !matches!(keep_open, Ok(true)) {
                break;
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn send(&mut self, tokens: Tokens) -> io::Result<()> {
        wire::write_message(&mut self.stream, &tokens.into_bytes(), self.packet_size, self.spid, &mut self.packet_id)
    }

    /// Answers a request the server cannot decode or does not support.
    fn reject(&mut self, message: &str, kind: DoneKind) -> io::Result<()> {
        eprintln!("TDS test server: {message}");
        let mut tokens = Tokens::new(self.wide);
        tokens.error(50000, 1, 16, message, SERVER_NAME, "");
        tokens.done(kind, done::ERROR, 0);
        self.send(tokens)
    }

    /// PRELOGIN answer: version 16.0.1000, no encryption, no MARS.
    fn prelogin(&mut self) -> io::Result<bool> {
        let options: [(u8, &[u8]); 5] = [
            (0x00, &[16, 0, 0x03, 0xE8, 0, 0]), // VERSION
            (0x01, &[0x02]),                    // ENCRYPTION: ENCRYPT_NOT_SUP
            (0x02, &[0x00]),                    // INSTOPT: the default instance
            (0x03, &[0, 0, 0, 0]),              // THREADID
            (0x04, &[0x00]),                    // MARS: off
        ];
        let mut payload = Vec::new();
        let mut offset = options.len() * 5 + 1;
        for (token, data) in options {
            payload.push(token);
            payload.extend_from_slice(&(offset as u16).to_be_bytes());
            payload.extend_from_slice(&(data.len() as u16).to_be_bytes());
            offset += data.len();
        }
        payload.push(0xFF);
        for (_, data) in options {
            payload.extend_from_slice(data);
        }
        wire::write_message(&mut self.stream, &payload, self.packet_size, self.spid, &mut self.packet_id)?;
        Ok(true)
    }

    fn login(&mut self, message: &[u8]) -> io::Result<bool> {
        let parsed = match parse_login(message) {
            Ok(parsed) => parsed,
            Err(Malformed(e)) => {
                self.reject(&format!("cannot decode LOGIN7: {e}"), DoneKind::Done)?;
                return Ok(false);
            }
        };
        lock(&self.shared.logins).push(parsed.login.clone());
        // Answer in the client's TDS version when it is one we speak.
        let version = match parsed.tds_version {
            v @ (0x730A_0003 | 0x730B_0003 | 0x7400_0004) => v,
            _ => 0x7400_0004,
        };
        self.wide = version >= 0x7209_0002;
        let failure = lock(&self.shared.login_failures).pop_front();
        match failure {
            Some(Failure::DropConnection) => return Ok(false),
            Some(Failure::Error { number, state, class, message }) => {
                let mut tokens = Tokens::new(self.wide);
                tokens.error(number, state, class, &message, SERVER_NAME, "");
                tokens.done(DoneKind::Done, done::ERROR, 0);
                self.send(tokens)?;
                return Ok(false);
            }
            None => {}
        }
        let database = if parsed.login.database.is_empty() { "master" } else { &parsed.login.database };
        let packet_size = match parsed.packet_size {
            0 => 4096,
            n => n.clamp(512, 32767),
        };
        let mut tokens = Tokens::new(self.wide);
        tokens.env_text(env::DATABASE, database, "master");
        tokens.env_text(env::LANGUAGE, "us_english", "");
        tokens.env_bytes(env::COLLATION, &wire::COLLATION, &[]);
        tokens.login_ack(version, "Microsoft SQL Server");
        tokens.env_text(env::PACKET_SIZE, &packet_size.to_string(), "4096");
        tokens.done(DoneKind::Done, 0, 0);
        self.send(tokens)?;
        self.packet_size = packet_size as usize;
        Ok(true)
    }

    fn batch(&mut self, message: &[u8]) -> io::Result<bool> {
        let parsed = (|| {
            let mut r = Reader::new(message);
            r.all_headers()?;
            wire::utf16(r.rest())
        })();
        match parsed {
            Ok(sql) => self.answer(
                Statement { kind: StatementKind::Batch, sql, declaration: String::new(), params: Vec::new() },
                false,
            ),
            Err(Malformed(e)) => self.reject(&format!("cannot decode SQL batch: {e}"), DoneKind::Done).map(|()| true),
        }
    }

    fn rpc(&mut self, message: &[u8]) -> io::Result<bool> {
        match parse_rpc(message) {
            Ok(statement) => self.answer(statement, true),
            Err(Malformed(e)) => self.reject(&format!("cannot decode RPC: {e}"), DoneKind::Proc).map(|()| true),
        }
    }

    fn transaction_manager(&mut self, message: &[u8]) -> io::Result<bool> {
        let parsed = (|| {
            let mut r = Reader::new(message);
            r.all_headers()?;
            Ok(match r.u16()? {
                5 => {
                    r.u8()?; // isolation level
                    let name = r.b_varchar()?;
                    (format!("BEGIN TRANSACTION{}", named(&name)), Some(Transaction::Begin))
                }
                7 => (format!("COMMIT TRANSACTION{}", named(&r.b_varchar()?)), Some(Transaction::Commit)),
                8 => (format!("ROLLBACK TRANSACTION{}", named(&r.b_varchar()?)), Some(Transaction::Rollback)),
                9 => (format!("SAVE TRANSACTION{}", named(&r.b_varchar()?)), None),
                other => return Err(Malformed(format!("unsupported transaction manager request {other}"))),
            })
        })();
        match parsed {
            Ok((sql, transaction)) => {
                let statement = Statement {
                    kind: StatementKind::TransactionManager,
                    sql,
                    declaration: String::new(),
                    params: Vec::new(),
                };
                self.answer_with(statement, false, transaction.into_iter().collect())
            }
            Err(Malformed(e)) => {
                self.reject(&format!("cannot decode transaction manager request: {e}"), DoneKind::Done).map(|()| true)
            }
        }
    }

    /// Records `statement` and answers it; `false` when the connection is
    /// to be closed.
    fn answer(&mut self, statement: Statement, rpc: bool) -> io::Result<bool> {
        let transactions = transaction_words(&statement.sql);
        self.answer_with(statement, rpc, transactions)
    }

    fn answer_with(&mut self, statement: Statement, rpc: bool, transactions: Vec<Transaction>) -> io::Result<bool> {
        let failure = {
            let mut failures = lock(&self.shared.failures);
            let found = failures.iter().position(|(matching, _)| statement.sql.contains(matching.as_str()));
            found.and_then(|i| failures.remove(i)).map(|(_, failure)| failure)
        };
        let sql = statement.sql.clone();
        lock(&self.shared.statements).push(statement);
        let end = if rpc { DoneKind::Proc } else { DoneKind::Done };
        let mut tokens = Tokens::new(self.wide);
        let failure = match failure {
            Some(failure) => Some(failure),
            None => match self.wait_for_locks(&sql) {
                LockWait::Granted => None,
                LockWait::TimedOut => {
                    Some(Failure::Error { number: 1222, state: 51, class: 16, message: LOCK_TIMEOUT_MESSAGE.into() })
                }
                LockWait::Gone => return Ok(false),
            },
        };
        match failure {
            Some(Failure::DropConnection) => return Ok(false),
            Some(Failure::Error { number, state, class, message }) => {
                tokens.error(number, state, class, &message, SERVER_NAME, "");
                tokens.done(end, done::ERROR, 0);
                self.send(tokens)?;
                return Ok(class < 20);
            }
            None => {}
        }
        for transaction in transactions {
            self.transaction(&mut tokens, transaction);
        }
        if let Some(milliseconds) = lock_timeout_setting(&sql) {
            self.lock_timeout_ms = milliseconds;
        }
        let rows = self.result_set(&mut tokens, &sql);
        let count = match (self.scripted_count(&sql), rows) {
            (Some(scripted), _) => Some(scripted),
            (None, Some(rows)) => Some(rows),
            (None, None) => starts_with_any(&sql, &["INSERT", "UPDATE", "DELETE", "MERGE"]).then_some(1),
        };
        let (status, rows) = match count {
            Some(rows) => (done::COUNT, rows),
            None => (0, 0),
        };
        if rpc {
            tokens.done(DoneKind::InProc, status | done::MORE, rows);
            tokens.return_status(0);
            tokens.done(DoneKind::Proc, 0, 0);
        } else {
            tokens.done(DoneKind::Done, status, rows);
        }
        self.send(tokens)?;
        Ok(true)
    }

    /// The count [`TdsServer::affect_next`] scripted for `sql`, used up.
    fn scripted_count(&self, sql: &str) -> Option<u64> {
        let mut affected = lock(&self.shared.affected);
        let found = affected.iter().position(|(matching, _)| sql.contains(matching.as_str()))?;
        affected.remove(found).map(|(_, rows)| rows)
    }

    /// The ENVCHANGE for a transaction change, if `@@TRANCOUNT` crosses 0.
    fn transaction(&mut self, tokens: &mut Tokens, transaction: Transaction) {
        match transaction {
            Transaction::Begin => {
                if self.transactions == 0 {
                    self.descriptor = self.shared.descriptors.fetch_add(1, Ordering::SeqCst) + 1;
                    tokens.env_bytes(env::BEGIN_TRANSACTION, &self.descriptor.to_le_bytes(), &[]);
                }
                self.transactions += 1;
            }
            Transaction::Commit if self.transactions > 0 => {
                self.transactions -= 1;
                if self.transactions == 0 {
                    tokens.env_bytes(env::COMMIT_TRANSACTION, &[], &self.descriptor.to_le_bytes());
                }
            }
            Transaction::Rollback if self.transactions > 0 => {
                self.transactions = 0;
                tokens.env_bytes(env::ROLLBACK_TRANSACTION, &[], &self.descriptor.to_le_bytes());
            }
            Transaction::Commit | Transaction::Rollback => {}
        }
    }

    /// Writes the result set for `sql`, if any; returns its row count.
    fn result_set(&self, tokens: &mut Tokens, sql: &str) -> Option<u64> {
        let results = lock(&self.shared.results);
        let default;
        let (names, rows): (Vec<&str>, &[Vec<Option<String>>]) =
            match results.iter().rev().find(|s| sql.contains(s.matching.as_str())) {
                Some(scripted) => (scripted.columns.iter().map(String::as_str).collect(), &scripted.rows),
                None if starts_with_any(sql, &["SELECT"]) => {
                    default = [vec![Some("1".to_string())]];
                    (vec![""], &default)
                }
                None => return None,
            };
        let columns: Vec<TextColumn<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| TextColumn {
                name,
                max: rows
                    .iter()
                    .any(|row| row.get(i).and_then(|v| v.as_deref()).is_some_and(|v| v.encode_utf16().count() > 4000)),
            })
            .collect();
        tokens.text_columns(&columns);
        for row in rows {
            tokens.text_row(&columns, row);
        }
        Some(rows.len() as u64)
    }
}

fn named(name: &str) -> String {
    if name.is_empty() { String::new() } else { format!(" {name}") }
}

/// Whether `sql`'s first word is one of `words` (upper case).
fn starts_with_any(sql: &str, words: &[&str]) -> bool {
    let first = sql_words(sql).into_iter().next().unwrap_or_default();
    words.contains(&first.as_str())
}

/// The words of `sql`, upper case, without string literals, quoted
/// identifiers and comments.
fn sql_words(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, end: &str| {
        let end: Vec<char> = end.chars().collect();
        while *i < chars.len() && !chars[*i..].starts_with(&end) {
            *i += 1;
        }
        *i += end.len();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let boundary = match c {
            '\'' => {
                i += 1;
                skip_to(&mut i, "'"); // '' inside a literal reads as two literals: fine here
                true
            }
            '"' => {
                i += 1;
                skip_to(&mut i, "\"");
                true
            }
            '[' => {
                i += 1;
                skip_to(&mut i, "]");
                true
            }
            '-' if next == Some('-') => {
                skip_to(&mut i, "\n");
                true
            }
            '/' if next == Some('*') => {
                i += 2;
                skip_to(&mut i, "*/");
                true
            }
            c if c.is_alphanumeric() || c == '_' || c == '@' || c == '#' => {
                word.extend(c.to_uppercase());
                i += 1;
                false
            }
            _ => {
                i += 1;
                true
            }
        };
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The value of `SET LOCK_TIMEOUT n` in `sql` (milliseconds, -1 for no
/// limit), if it sets one.
fn lock_timeout_setting(sql: &str) -> Option<i64> {
    let words = sql_words(sql);
    if !words.windows(2).any(|w| w[0] == "SET" && w[1] == "LOCK_TIMEOUT") {
        return None;
    }
    // sql_words drops a minus sign: read the number from the text.
    let upper = sql.to_uppercase();
    let rest = upper[upper.rfind("LOCK_TIMEOUT")? + "LOCK_TIMEOUT".len()..].trim_start();
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// `BEGIN TRAN[SACTION]`, `BEGIN DISTRIBUTED TRAN…`, `COMMIT` and
/// `ROLLBACK` in `sql`, in order.
fn transaction_words(sql: &str) -> Vec<Transaction> {
    let words = sql_words(sql);
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        match word.as_str() {
            "BEGIN" if matches!(next, Some("TRAN" | "TRANSACTION" | "DISTRIBUTED")) => found.push(Transaction::Begin),
            "COMMIT" => found.push(Transaction::Commit),
            "ROLLBACK" => found.push(Transaction::Rollback),
            _ => {}
        }
    }
    found
}

struct ParsedLogin {
    login: Login,
    tds_version: u32,
    packet_size: u32,
}

/// LOGIN7 (MS-TDS 2.2.6.4): a fixed part, then offset/length pairs into
/// the variable part.
fn parse_login(message: &[u8]) -> Parsed<ParsedLogin> {
    let mut r = Reader::new(message);
    let _length = r.u32()?;
    let tds_version = r.u32()?;
    let packet_size = r.u32()?;
    // Each field: (offset of its offset/length pair, is the password).
    let field = |pair: usize, password: bool| -> Parsed<String> {
        let mut r = Reader::new(message);
        r.seek(pair)?;
        let offset = r.u16()? as usize;
        let chars = r.u16()? as usize;
        r.seek(offset)?;
        let bytes = r.take(chars * 2)?;
        if password {
            // Each byte was nibble-swapped, then XORed with 0xA5.
            let plain: Vec<u8> = bytes.iter().map(|b| (b ^ 0xA5).rotate_left(4)).collect();
            wire::utf16(&plain)
        } else {
            wire::utf16(bytes)
        }
    };
    Ok(ParsedLogin {
        login: Login {
            user: field(40, false)?,
            password: field(44, true)?,
            app_name: field(48, false)?,
            database: field(68, false)?,
        },
        tds_version,
        packet_size,
    })
}

/// Names of the procedures with well-known ids (MS-TDS 2.2.6.6).
fn procedure_name(id: u16) -> String {
    match id {
        1 => "sp_cursor",
        2 => "sp_cursoropen",
        3 => "sp_cursorprepare",
        4 => "sp_cursorexecute",
        5 => "sp_cursorprepexec",
        6 => "sp_cursorunprepare",
        7 => "sp_cursorfetch",
        8 => "sp_cursoroption",
        9 => "sp_cursorclose",
        10 => "sp_executesql",
        11 => "sp_prepare",
        12 => "sp_execute",
        13 => "sp_prepexec",
        14 => "sp_prepexecrpc",
        15 => "sp_unprepare",
        _ => return format!("procedure id {id}"),
    }
    .to_string()
}

/// An RPC request (MS-TDS 2.2.6.6): the procedure, its option flags and its
/// parameters. Only the first request of a batch of RPCs is read.
fn parse_rpc(message: &[u8]) -> Parsed<Statement> {
    let mut r = Reader::new(message);
    r.all_headers()?;
    let name = match r.u16()? {
        0xFFFF => procedure_name(r.u16()?),
        chars => r.utf16(chars as usize)?,
    };
    let _options = r.u16()?;
    let mut params = Vec::new();
    // 0xFF (0x80 before TDS 7.2) separates the next RPC of a batch.
    while r.remaining() > 0 && !matches!(r.peek(), Some(0xFF | 0x80 | 0xFE)) {
        params.push(values::read_param(&mut r)?);
    }
    let executesql = name.eq_ignore_ascii_case("sp_executesql") || name.to_lowercase().ends_with(".sp_executesql");
    if !executesql {
        return Ok(Statement {
            kind: StatementKind::Rpc,
            sql: name,
            declaration: String::new(),
            params: params.into_iter().map(|(param, _)| param).collect(),
        });
    }
    let mut params = params.into_iter();
    let text = |param: Option<(Param, bool)>| match param.map(|(p, _)| p.value) {
        Some(ParamValue::Text(text)) => Ok(text),
        Some(ParamValue::Null) | None => Ok(String::new()),
        Some(other) => Err(Malformed(format!("sp_executesql got {other:?} where text belongs"))),
    };
    let sql = text(params.next())?;
    let declaration = text(params.next())?;
    let declared = values::declared_types(&declaration);
    let params = params
        .enumerate()
        .map(|(i, (mut param, untyped))| {
            if untyped {
                let by_name = declared.iter().find(|(name, _)| name.eq_ignore_ascii_case(&param.name));
                if let Some((_, ty)) = by_name.or_else(|| declared.get(i)) {
                    param.sql_type = ty.clone();
                }
            }
            param
        })
        .collect();
    Ok(Statement { kind: StatementKind::Rpc, sql, declaration, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_words_skip_literals_and_comments() {
        use Transaction::*;
        assert_eq!(transaction_words("BEGIN TRANSACTION"), vec![Begin]);
        assert_eq!(transaction_words("begin tran; insert into t values ('COMMIT'); commit"), vec![Begin, Commit]);
        assert_eq!(transaction_words("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION"), vec![Rollback]);
        assert_eq!(transaction_words("BEGIN TRY SELECT 1 END TRY -- COMMIT\n/* ROLLBACK */"), vec![]);
        assert_eq!(transaction_words("SELECT [commit] FROM t"), vec![]);
    }

    #[test]
    fn lock_timeout_settings_are_read() {
        assert_eq!(lock_timeout_setting("SET XACT_ABORT ON; SET LOCK_TIMEOUT 5000"), Some(5000));
        assert_eq!(lock_timeout_setting("set lock_timeout -1;"), Some(-1));
        assert_eq!(lock_timeout_setting("SET LOCK_TIMEOUT 0"), Some(0));
        assert_eq!(lock_timeout_setting("SET XACT_ABORT ON"), None);
        assert_eq!(lock_timeout_setting("SELECT @@LOCK_TIMEOUT"), None);
    }

    /// Runs `statements` through a tiberius client; returns each one's
    /// affected-row counts, or the server error's number.
    fn counts(server: &TdsServer, statements: &[&str]) -> Vec<Result<Vec<u64>, u32>> {
        use tokio_util::compat::TokioAsyncWriteCompatExt;
        let (host, port) = server.address.rsplit_once(':').expect("host:port");
        let mut config = tiberius::Config::new();
        config.host(host);
        config.port(port.parse().expect("port"));
        config.authentication(tiberius::AuthMethod::sql_server("buktor", "s3cret"));
        config.encryption(tiberius::EncryptionLevel::NotSupported);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(config.get_addr()).await.expect("connect");
            let mut client = tiberius::Client::connect(config, tcp.compat_write()).await.expect("log in");
            let mut counts = Vec::new();
            for sql in statements {
                counts.push(match client.execute(*sql, &[&1i64]).await {
                    Ok(done) => Ok(done.rows_affected().to_vec()),
                    Err(tiberius::error::Error::Server(token)) => Err(token.code()),
                    Err(other) => panic!("{sql}: {other}"),
                });
            }
            counts
        })
    }

    #[test]
    fn a_scripted_count_answers_the_next_matching_success_once() {
        let server = TdsServer::start();
        server.affect_next("UPDATE [T]", 0);
        server.affect_next("DELETE", 3);
        // A failure comes first, and leaves the scripted count for later.
        server.fail_next("UPDATE [T]", Failure::Error { number: 1205, state: 51, class: 13, message: "d".into() });
        let answers = counts(
            &server,
            &[
                "UPDATE [U] SET a = @P1",
                "UPDATE [T] SET a = @P1",
                "UPDATE [T] SET a = @P1",
                "UPDATE [T] SET a = @P1",
                "DELETE FROM [T] WHERE k = @P1",
                "DELETE FROM [T] WHERE k = @P1",
            ],
        );
        assert_eq!(answers, [Ok(vec![1]), Err(1205), Ok(vec![0]), Ok(vec![1]), Ok(vec![3]), Ok(vec![1])]);
    }

    #[test]
    fn first_words() {
        assert!(starts_with_any("  select 1", &["SELECT"]));
        assert!(starts_with_any("/* x */ MERGE INTO t", &["INSERT", "MERGE"]));
        assert!(!starts_with_any("SET XACT_ABORT ON", &["SELECT"]));
    }
}
