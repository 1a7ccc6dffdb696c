//! A deterministic simulation of the sync worker, in the spirit of
//! FoundationDB's and TigerBeetle's simulators.
//!
//! One seed is one history. The real worker ([`State::step`]), the real
//! committer and the real journal (SQLite files) run against a fake HIS
//! ([`his`]) that can fail, time out, lose an answer after committing, or
//! hold a row locked. Between and inside the worker's steps the simulator
//! sends events (some again, with the same delivery id), runs `replay` and
//! `prune` as an operator would, changes the mapping, and crashes the whole
//! "process" at journal commits, HIS commits and outcome records. Then it
//! lets everything settle and checks the invariants ([`check`]):
//! - no HIS row ever moves to an older state, even for a moment;
//! - every acknowledged event's row ends at its latest state;
//! - each delivery id is stored once within its window;
//! - a failed event holds back exactly its own row's later events.
//!
//! What the simulator controls and what it does not is written down in
//! ARCHITECTURE.md ("Simulation").

mod check;
mod his;
mod rng;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

use self::his::{His, RowId};
pub use self::rng::Rng;
use crate::{
    clock::Clock,
    pipeline::{
        committer::{Committer, Observers},
        hooks::Hooks,
        journal::{
            self, Appended, NewEvent, Status,
            operations::{self, Filter, Selection},
        },
        lookahead::Lookahead,
        mapping::{Mappings, Members},
        retry::Backoff,
        wakeup::Wakeup,
        worker::{Next, OpenWriter, State, Worker},
    },
    telemetry::{health::Health, metrics::Metrics},
};

/// What one schedule did, when no invariant broke.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Events sent (not counting resends).
    pub events: usize,
    /// Worker steps taken.
    pub steps: usize,
    /// Simulated crashes.
    pub crashes: usize,
    /// Row writes the fake HIS committed.
    pub his_writes: usize,
}

/// A broken invariant, with the history that led to it.
#[derive(Debug)]
pub struct Violation {
    /// The seed that replays it.
    pub seed: u64,
    /// What broke.
    pub message: String,
    /// The schedule's last actions, oldest first.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}: {}", self.seed, self.message)?;
        writeln!(
            f,
            "the schedule's last {} actions (`cargo xtask simulate --seed N` prints them all):",
            self.trace.len()
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay it with: cargo xtask simulate --seed {}", self.seed)
    }
}

/// The simulated time: starts on a fixed day and moves only when the
/// simulator moves it.
#[derive(Debug)]
pub struct SimClock(AtomicI64);

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl SimClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4), Ordering::SeqCst);
    }
}

/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// The mappings the schedules switch between. Two event types write one
/// table (`t1`), named in different case and with their fields in another
/// order, so that one row has events of several types; `c` writes it too,
/// through two targets: the second only for an event with `twice`, which
/// the schedules of one seed in four send (see [`World::twice`]). Those
/// schedules' `c` events may also carry `other_id`: a third target then
/// writes that row of `t3` too, in the same transaction, so that rows of
/// `t3` are shared by events of different `t1` rows.
const FULL_MAPPING: &str = r#"{
    "a_created": {"table": "t1", "fields": {"row_id": "id", "seq": "seq"}},
    "a_updated": {"table": "T1", "fields": {"seq": "seq", "row_id": "id"}, "key": ["row_id"]},
    "c": [{"table": "t1", "fields": {"row_id": "id", "seq": "seq"}},
          {"table": "T1", "key": ["id"], "when": {"field": "twice", "exists": true},
           "columns": {"id": "row_id", "seq": {"from": "seq", "transforms": [{"parse": "integer"}]},
                       "second": {"const": 1}}},
          {"table": "t3", "key": ["other_id"], "when": {"field": "other_id", "exists": true},
           "fields": {"other_id": "id", "seq": "seq"}}],
    "b": {"table": "t2", "fields": {"row_id": "id", "seq": "seq"}}
}"#;

/// Which event types a variant leaves out.
const VARIANTS: [&[&str]; 3] = [&[], &["a_updated"], &["c"]];

/// The event types, for the schedule to draw from.
const EVENT_TYPES: [(&str, &str); 4] = [("a_created", "t1"), ("a_updated", "t1"), ("c", "t1"), ("b", "t2")];

/// The duplicate window: longer than any schedule, so that every resend
/// falls within it.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the simulator and the hooks share. Each part has a lock of its
/// own: the committer's thread draws its crashes and writes the trace
/// while the simulator's thread holds the world and waits for it.
pub(crate) struct Shared {
    /// Set by a crash: from then on nothing reaches the journal or the HIS.
    dead: AtomicBool,
    /// Whether the hooks make trouble (off while the schedule settles).
    chaos: AtomicBool,
    /// The simulated time.
    clock: Arc<SimClock>,
    /// The fake HIS.
    his: Mutex<His>,
    /// The journal commits' crash draws.
    journal_rng: Mutex<Rng>,
    /// What happened, for the report of a broken invariant.
    trace: Mutex<Vec<String>>,
    /// The world outside the worker: the senders and the operator.
    world: Mutex<World>,
    /// Whether the fake HIS is a 1.2 writer that writes several batches
    /// in one transaction (the seeds whose events write several tables),
    /// or a 1.1 writer, one batch per call. A function of the seed.
    together: bool,
}

impl Shared {
    fn crash(&self, at: &str) {
        if !self.dead.swap(true, Ordering::SeqCst) {
            self.note(format!("crash {at}"));
        }
    }

    fn note(&self, line: String) {
        let at = (self.clock.now_ms() - START_MS) as f64 / 1000.0;
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).push(format!("t={at:.3}s {line}"));
    }

    fn chaos(&self) -> bool {
        self.chaos.load(Ordering::SeqCst) && !self.dead.load(Ordering::SeqCst)
    }

    /// A draw for a journal commit: crash with probability `percent`.
    fn journal_crash(&self, percent: u64) -> bool {
        self.chaos() && self.journal_rng.lock().unwrap_or_else(|e| e.into_inner()).chance(percent)
    }

    fn his(&self) -> std::sync::MutexGuard<'_, His> {
        self.his.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One event as its sender knows it.
#[derive(Debug, Clone)]
struct Sent {
    seq: i64,
    event_type: &'static str,
    row: RowId,
    /// The row of `t3` it writes too, if it carries `other_id`.
    other_row: Option<RowId>,
    body: String,
    delivery_id: String,
    /// The journal ids its sends were answered with.
    answers: Vec<Appended>,
}

/// The senders, the operator and the chaos they make.
struct World {
    rng: Rng,
    /// The journal file.
    path: PathBuf,
    /// The operator's own connection to the journal, opened when first
    /// needed in each process.
    operator: Option<Connection>,
    committer: Option<Committer>,
    mappings: Arc<Mappings>,
    sent: Vec<Sent>,
    /// Row ids the schedule uses.
    rows: u64,
    crashes: usize,
    /// Whether every other `c` event carries `twice`, so that two targets
    /// write it. A function of the seed, drawn from no generator: seeds
    /// without it replay the histories they had before targets existed
    /// (the regression seeds among them).
    twice: bool,
}

impl World {
    /// The operator's connection (a command's, beside the process).
    fn operator(&mut self) -> &mut Connection {
        let path = &self.path;
        self.operator.get_or_insert_with(|| journal::open(path).expect("the journal opens"))
    }

    /// Sends a new event; the sender keeps it (and sends it again later) if
    /// it was not acknowledged.
    fn send_new(&mut self, shared: &Shared) {
        let (event_type, table) = EVENT_TYPES[self.rng.below(EVENT_TYPES.len() as u64) as usize];
        let id = format!("r{}", self.rng.below(self.rows));
        let seq = self.sent.len() as i64 + 1;
        let mut fields = String::new();
        if self.twice && event_type == "c" && seq % 2 == 0 {
            fields.push_str(r#","twice":true"#);
        }
        // Drawn only where it is used: other seeds keep their histories.
        let other_row = (self.twice && event_type == "c" && seq % 3 == 0)
            .then(|| ("t3".to_string(), format!("r{}", self.rng.below(self.rows))));
        if let Some((_, other_id)) = &other_row {
            fields.push_str(&format!(r#","other_id":"{other_id}""#));
        }
        let body = format!(r#"{{"event_type":"{event_type}","row_id":"{id}","seq":{seq}{fields}}}"#);
        if self.rng.chance(3) {
            shared.his.lock().unwrap_or_else(|e| e.into_inner()).poison.insert(seq);
        }
        self.sent.push(Sent {
            seq,
            event_type,
            row: (table.to_string(), id),
            other_row,
            body,
            delivery_id: format!("delivery-{seq}"),
            answers: Vec::new(),
        });
        self.send(shared, self.sent.len() - 1);
    }

    /// Sends `sent[index]` (again), as intake would journal it.
    fn send(&mut self, shared: &Shared, index: usize) {
        let Some(committer) = self.committer.clone() else { return };
        let sent = &self.sent[index];
        let keys = self
            .mappings
            .keys_of(sent.event_type, &Members::parse(&sent.body).expect("an object"))
            .map(|keys| keys.expect("a key"));
        let (event_key, extra_keys) = keys.map_or((None, Vec::new()), |keys| (Some(keys.primary), keys.extra));
        let now = shared.clock.now_ms();
        let event = NewEvent {
            event_type: sent.event_type.to_string(),
            payload: sent.body.clone(),
            received_at: rfc3339(now),
            status: if event_key.is_some() { Status::Pending } else { Status::Unmapped },
            event_key,
            extra_keys,
            delivery_id: Some(sent.delivery_id.clone()),
            received_ms: now,
            duplicates_since_ms: now - DUPLICATE_WINDOW.as_millis() as i64,
        };
        let answer = committer.append_blocking(event);
        let line = format!("send seq {} ({} {}): {answer:?}", sent.seq, sent.event_type, sent.row.1);
        if let Ok(appended) = answer {
            self.sent[index].answers.push(appended);
        }
        shared.note(line);
    }

    /// Sends an earlier event again, as a sender that missed the answer
    /// (or did not) would.
    fn resend(&mut self, shared: &Shared) {
        if !self.sent.is_empty() {
            let index = self.rng.below(self.sent.len() as u64) as usize;
            self.send(shared, index);
        }
    }

    fn replay(&mut self, shared: &Shared) {
        let status = if self.rng.chance(50) { Status::Failed } else { Status::Unmapped };
        let filter = Filter { status, event_type: None, since: None, limit: usize::MAX };
        let mappings = self.mappings.clone();
        let replayed =
            operations::replay(self.operator(), &Selection::Matching(filter), &mappings, shared.clock.now_ms());
        shared.note(format!("replay --status {}: {replayed:?}", status.as_str()));
    }

    fn prune(&mut self, shared: &Shared) {
        let ago = self.rng.below(120_000) as i64;
        let before = rfc3339(shared.clock.now_ms() - ago);
        let operator = self.operator();
        let pruned = operations::prune(operator, Status::Delivered, &before);
        shared.note(format!("prune --status delivered --before now-{ago}ms: {pruned:?}"));
    }

    /// What the operator or a sender may do while the worker is between
    /// two reads: the interleavings that the worker's snapshot must survive.
    fn interfere(&mut self, shared: &Shared) {
        match self.rng.below(100) {
            0..10 => self.replay(shared),
            10..14 => self.prune(shared),
            14..24 => self.send_new(shared),
            _ => {}
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The simulator's hooks: trouble at the worker's reads and the journal's
/// commits, drawn from the world's generator (every draw is made on the
/// simulator's thread or while it waits, so the order of draws is fixed).
struct SimHooks(Arc<Shared>);

impl Hooks for SimHooks {
    fn window_read(&self) {
        if self.0.chaos() {
            self.0.world().interfere(&self.0);
        }
    }

    fn before_journal_commit(&self) -> Result<(), String> {
        if self.0.journal_crash(1) {
            self.0.crash("at a journal commit, before it");
        }
        if self.0.dead.load(Ordering::SeqCst) {
            return Err("the simulated process has crashed".into());
        }
        Ok(())
    }

    fn after_journal_commit(&self) {
        if self.0.journal_crash(1) {
            self.0.crash("at a journal commit, after it");
        }
    }
}

/// Opens writers onto the fake HIS.
struct SimWriters(Arc<Shared>);

impl OpenWriter for SimWriters {
    fn name(&self) -> &str {
        "simulated"
    }

    fn open(
        &self,
        _deadline: his_plugin_api::Deadline,
    ) -> Result<crate::plugins::HisWriter, his_plugin_api::PluginError> {
        if self.0.dead.load(Ordering::SeqCst) {
            return Err(his_plugin_api::PluginError::retryable(his_plugin_api::ErrorKind::CONNECTION, "crashed"));
        }
        Ok(if self.0.together {
            crate::plugins::HisWriter::V1_2(his::writer_v1_2(self.0.clone()))
        } else {
            crate::plugins::HisWriter::V1_1(his::writer(self.0.clone()))
        })
    }
}

/// One run of the "process": its committer and its worker.
struct Process {
    worker: State,
    committer_thread: JoinHandle<()>,
}

/// Everything a process is started from.
struct Setup {
    path: PathBuf,
    shared: Arc<Shared>,
    clock: Arc<SimClock>,
    batch_size: usize,
    jitter_seed: u64,
}

impl Setup {
    /// Starts a process with the mapping `variant` leaves.
    fn start(&self, variant: &[&str]) -> Process {
        let mut mapping: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(FULL_MAPPING).expect("the mapping is JSON");
        for left_out in variant {
            mapping.remove(*left_out);
        }
        let config = serde_json::json!({"database": {"type": "sqlite", "path": "unused.db"}, "mapping": mapping});
        let config = crate::config::parse(&config.to_string()).expect("the simulator's config is valid");
        let mappings = Arc::new(Mappings::new(&config.mapping));
        let open = |path: &Path| journal::open(path).expect("the journal opens");
        let wakeup = Arc::new(Wakeup::default());
        let observers = Observers {
            hooks: Arc::new(SimHooks(self.shared.clone())),
            on_crash: || panic!("the committer crashed"),
            ..Observers::default()
        };
        let mut writer = open(&self.path);
        journal::rekey::rekey(&mut writer, &mappings).expect("the journal's events are re-keyed");
        let (committer, committer_thread) =
            Committer::start(writer, wakeup.clone(), observers).expect("the committer starts");
        let committer = committer.synchronous();
        let metrics = Arc::new(Metrics::new(mappings.event_types().map(str::to_string)));
        let worker = Worker {
            writers: Box::new(SimWriters(self.shared.clone())),
            mappings: mappings.clone(),
            reader: open(&self.path),
            lookahead: Lookahead::new(open(&self.path), mappings.clone(), self.batch_size),
            committer: committer.clone(),
            wakeup,
            batch_size: self.batch_size,
            deadline: his_plugin_api::Deadline::after(Duration::from_secs(60)),
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(30),
                factor: 2.0,
                jitter_seed: Some(self.jitter_seed),
            },
            retention: Duration::from_secs(60),
            duplicate_window: DUPLICATE_WINDOW,
            metrics,
            health: Arc::new(Health::default()),
            clock: self.clock.clone(),
            hooks: Arc::new(SimHooks(self.shared.clone())),
        };
        let mut world = self.shared.world();
        world.operator = None;
        world.committer = Some(committer);
        world.mappings = mappings;
        drop(world);
        Process { worker: State::new(worker), committer_thread }
    }

    /// Ends a process as a crash would: nothing it still holds is
    /// written anywhere.
    fn kill(&self, process: Process) {
        self.shared.dead.store(true, Ordering::SeqCst);
        drop(process.worker);
        let mut world = self.shared.world();
        world.committer = None;
        world.operator = None;
        drop(world);
        let _ = process.committer_thread.join();
        self.shared.dead.store(false, Ordering::SeqCst);
    }
}

/// Runs the schedule of `seed`, then checks the invariants.
pub fn run(seed: u64) -> Result<Summary, Violation> {
    run_traced(seed).0
}

/// [`run`], and the schedule's whole trace.
pub fn run_traced(seed: u64) -> (Result<Summary, Violation>, Vec<String>) {
    let dir = scratch_dir();
    let mut rng = Rng::new(seed);
    let clock = Arc::new(SimClock(AtomicI64::new(START_MS)));
    let rows = 1 + rng.below(5);
    let shared = Arc::new(Shared {
        dead: AtomicBool::new(false),
        chaos: AtomicBool::new(true),
        clock: clock.clone(),
        his: Mutex::new(His::new(rng.fork())),
        journal_rng: Mutex::new(rng.fork()),
        trace: Mutex::new(Vec::new()),
        world: Mutex::new(World {
            rng: rng.fork(),
            path: PathBuf::new(),
            operator: None,
            committer: None,
            mappings: Arc::new(Mappings::new(&Default::default())),
            sent: Vec::new(),
            rows,
            crashes: 0,
            twice: seed % 4 == 2,
        }),
        together: seed % 4 == 2,
    });
    let setup = Setup {
        path: fresh_journal(dir.path()),
        shared: shared.clone(),
        clock: clock.clone(),
        batch_size: 1 + rng.below(8) as usize,
        jitter_seed: rng.next_u64(),
    };
    shared.world().path = setup.path.clone();
    let mut summary = Summary::default();
    let mut process = setup.start(VARIANTS[0]);
    let actions = 25 + rng.below(75);
    for _ in 0..actions {
        if shared.dead.load(Ordering::SeqCst) {
            process = restart(&setup, process, &mut rng, &mut summary);
        }
        match rng.below(100) {
            0..22 => shared.world().send_new(&shared),
            22..25 => shared.world().resend(&shared),
            25..28 => shared.world().replay(&shared),
            28..30 => shared.world().prune(&shared),
            30..34 => {
                let id = format!("r{}", rng.below(rows));
                let mut his = shared.his.lock().unwrap_or_else(|e| e.into_inner());
                let locked = if his.locked.remove(&id) {
                    "unlocked"
                } else {
                    if his.locked.insert(id.clone()) { "locked" } else { "" }
                };
                drop(his);
                shared.note(format!("row {id} {locked} by another HIS session"));
            }
            34 => {
                shared.crash("between two steps");
            }
            _ => {
                summary.steps += 1;
                let next = process.worker.step();
                match next {
                    Next::Go => {}
                    Next::Idle(wait) | Next::Sleep(wait) => {
                        let by = Duration::from_millis(rng.below(wait.as_millis() as u64 + 1));
                        clock.advance(by);
                    }
                }
            }
        }
    }
    // Settle: no more trouble, every mapping back, locks released.
    shared.chaos.store(false, Ordering::SeqCst);
    shared.note("--- the schedule settles: no more faults ---".into());
    {
        let mut his = shared.his.lock().unwrap_or_else(|e| e.into_inner());
        his.faults = false;
        his.locked.clear();
    }
    setup.kill(process);
    let mut process = setup.start(VARIANTS[0]);
    let outcome = settle(&shared, &clock, &mut process, &mut summary);
    setup.kill(process);
    let world = shared.world();
    summary.events = world.sent.len();
    summary.crashes = world.crashes;
    let his = shared.his.lock().unwrap_or_else(|e| e.into_inner());
    summary.his_writes = his.history.len();
    let trace = std::mem::take(&mut *shared.trace.lock().unwrap_or_else(|e| e.into_inner()));
    let violation =
        |message: String| Violation { seed, message, trace: trace.iter().rev().take(80).rev().cloned().collect() };
    let checked = outcome
        .and_then(|()| journal::open(&setup.path).map_err(|e| format!("cannot read the journal: {e}")))
        .and_then(|journal| check::all(&journal, &world.sent, &his));
    let result = checked.map(|()| summary).map_err(violation);
    (result, trace)
}

/// Crashes the process and starts a new one, sometimes with another mapping.
fn restart(setup: &Setup, process: Process, rng: &mut Rng, summary: &mut Summary) -> Process {
    setup.kill(process);
    let variant = VARIANTS[if rng.chance(70) { 0 } else { rng.below(VARIANTS.len() as u64) as usize }];
    setup.shared.world().crashes += 1;
    setup.shared.note(format!("restart, mapping without {variant:?}"));
    summary.crashes += 1;
    setup.start(variant)
}

/// Runs the worker until nothing more can happen: every sender has its
/// answer, every failed or unmapped event was replayed once more, and no
/// event waits for a retry.
fn settle(shared: &Shared, clock: &SimClock, process: &mut Process, summary: &mut Summary) -> Result<(), String> {
    // Senders send again what was not acknowledged.
    let unanswered: Vec<usize> = {
        let world = shared.world();
        (0..world.sent.len()).filter(|&i| world.sent[i].answers.is_empty()).collect()
    };
    for index in unanswered {
        shared.world().send(shared, index);
    }
    let mut replays_left = 2;
    for _ in 0..20_000 {
        summary.steps += 1;
        match process.worker.step() {
            Next::Go => {}
            Next::Sleep(wait) => clock.advance(wait),
            Next::Idle(wait) => {
                let waiting = {
                    let mut world = shared.world();
                    journal::next_due_ms(world.operator(), clock.now_ms()).map_err(|e| e.to_string())?.is_some()
                };
                if waiting {
                    clock.advance(wait);
                } else if replays_left > 0 {
                    replays_left -= 1;
                    shared.world().replay_all(shared);
                } else {
                    return Ok(());
                }
            }
        }
    }
    let pending = { journal::pending_summary(shared.world().operator()).map_err(|e| e.to_string())? };
    Err(format!(
        "the schedule did not settle within 20,000 steps of the worker ({pending:?} pending; last step {:?})",
        process.worker.step()
    ))
}

impl World {
    fn replay_all(&mut self, shared: &Shared) {
        for status in [Status::Unmapped, Status::Failed] {
            let filter = Filter { status, event_type: None, since: None, limit: usize::MAX };
            let mappings = self.mappings.clone();
            let replayed =
                operations::replay(self.operator(), &Selection::Matching(filter), &mappings, shared.clock.now_ms());
            shared.note(format!("replay --status {}: {replayed:?}", status.as_str()));
        }
    }
}

/// A new, empty journal in `dir`: a copy of one made (and migrated) once
/// per thread, since migrating a journal costs more than a short schedule.
fn fresh_journal(dir: &Path) -> PathBuf {
    thread_local! {
        static TEMPLATE: (tempfile::TempDir, PathBuf) = {
            let dir = scratch_dir();
            let path = dir.path().join("template.db");
            let connection = journal::open(&path).expect("the template journal opens");
            connection.pragma_update(None, "journal_mode", "DELETE").expect("one file");
            drop(connection);
            (dir, path)
        };
    }
    let path = dir.join("journal.db");
    TEMPLATE.with(|(_, template)| std::fs::copy(template, &path)).expect("the template journal is copied");
    path
}

/// A folder for one schedule's journal: in memory where the system has
/// one (`/dev/shm`), so that fsyncs cost nothing.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("a temporary folder")
}
