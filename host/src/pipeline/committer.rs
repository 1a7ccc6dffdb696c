//! Group commit: the one thread that writes the journal.
//!
//! Requests queue on a channel. The thread takes everything queued, writes
//! it in one transaction, fsyncs once, then answers each request. While it
//! fsyncs, new requests queue up for the next round, so a burst of N
//! concurrent events costs a handful of fsyncs, not N, and every answer
//! still comes after its event is on disk.

use std::{sync::Arc, thread::JoinHandle, time::Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::{
    pipeline::{
        hooks::Hooks,
        journal::{self, Appended, NewEvent, Settlement, Status},
        quota::Quota,
        wakeup::Wakeup,
    },
    telemetry::{health::Health, metrics::Metrics},
};

/// The most requests in one transaction: bounds a round's latency.
const MAX_ROUND: usize = 1024;
/// How many requests may wait for the next round before senders wait too.
const QUEUE_DEPTH: usize = 8192;

/// The journal could not take the write; nothing was stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the journal cannot be written: {0}")]
pub struct Unavailable(pub String);

enum Command {
    Append(NewEvent, oneshot::Sender<Result<Appended, Unavailable>>),
    Settle(Vec<Settlement>, oneshot::Sender<Result<(), Unavailable>>),
    Prune(Housekeeping, oneshot::Sender<Result<usize, Unavailable>>),
    /// Unix ms: every pending event waiting for a later retry is due then.
    MakeDue(i64, oneshot::Sender<Result<usize, Unavailable>>),
}

/// What a housekeeping round removes.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// Delivered events received before this (RFC 3339).
    pub delivered_before: String,
    /// Delivery ids first seen before this (unix ms).
    pub delivery_ids_before_ms: i64,
}

/// Who hears how each round went: its time, and whether it committed.
#[derive(Clone)]
pub struct Observers {
    /// Commit latency.
    pub metrics: Option<Arc<Metrics>>,
    /// Whether the journal takes writes, for `/ready`.
    pub health: Option<Arc<Health>>,
    /// How much the journal holds: measured after rounds that appended,
    /// recounted after housekeeping.
    pub quota: Option<Arc<Quota>>,
    /// The simulator's hooks around each commit; none in the middleware.
    pub hooks: Arc<dyn Hooks>,
    /// Called if the thread panics (a bug): the middleware exits with 70,
    /// so that its service manager starts a fresh process. Without this,
    /// intake would answer 503 for ever while the process lived on.
    pub on_crash: fn(),
}

impl Default for Observers {
    fn default() -> Self {
        Self {
            metrics: None,
            health: None,
            quota: None,
            hooks: Arc::new(crate::pipeline::hooks::NoHooks),
            on_crash: exit_after_crash,
        }
    }
}

/// What the committer thread's crash does in the middleware: every event
/// acknowledged is in the journal, so exiting loses nothing.
fn exit_after_crash() {
    tracing::error!("the journal committer crashed; exiting so that the service restarts it");
    std::process::exit(70);
}

/// A handle for sending writes to the committer thread. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    sender: mpsc::Sender<Command>,
    /// Whether [`Committer::settle`] waits for the commit (the simulator's,
    /// so that its threads take turns in one order).
    synchronous: bool,
}

impl Committer {
    /// Starts the committer thread on `connection`. It rings `wakeup` after
    /// each round that stored new events, and reports each round to
    /// `observers`. The thread ends when every handle is dropped, after
    /// finishing what was queued.
    pub fn start(
        connection: Connection,
        wakeup: Arc<Wakeup>,
        observers: Observers,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new().name("journal-committer".into()).spawn(move || {
            let on_crash = observers.on_crash;
            let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(connection, receiver, &wakeup, &observers)
            }));
            if crashed.is_err() {
                on_crash();
            }
        })?;
        Ok((Self { sender, synchronous: false }, thread))
    }

    /// Stores one event durably and returns its journal id (or, for a
    /// delivery id seen before, the id it was stored under then).
    pub async fn append(&self, event: NewEvent) -> Result<Appended, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(Command::Append(event, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`Committer::append`] for a thread that is not async (the simulator's).
    pub fn append_blocking(&self, event: NewEvent) -> Result<Appended, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.sender.blocking_send(Command::Append(event, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Sends delivery outcomes to be recorded, without waiting for the
    /// commit; [`Pending::wait`] does. Blocking: for the sync worker's thread.
    pub fn settle(&self, settlements: Vec<Settlement>) -> Result<Pending, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.sender.blocking_send(Command::Settle(settlements, reply)).map_err(|_| stopped())?;
        if !self.synchronous {
            return Ok(Pending(answer));
        }
        let (reply, answer_now) = oneshot::channel();
        let _ = reply.send(answer.blocking_recv().unwrap_or_else(|_| Err(stopped())));
        Ok(Pending(answer_now))
    }

    /// This handle, but its [`Committer::settle`] returns only after the
    /// commit: for the simulator, whose schedules must not depend on how
    /// the committer's thread and the worker's overlap.
    pub fn synchronous(self) -> Self {
        Self { synchronous: true, ..self }
    }
}

impl Committer {
    /// Removes old delivered events and delivery ids; returns how many
    /// events. Blocking: for the sync worker's thread.
    pub fn prune(&self, housekeeping: Housekeeping) -> Result<usize, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.sender.blocking_send(Command::Prune(housekeeping, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }
}

impl Committer {
    /// Makes every pending event that waits for a retry due at `now_ms`
    /// (the HIS answers again: its outage was not the events' fault);
    /// returns how many. Blocking: for the sync worker's thread.
    pub fn make_due(&self, now_ms: i64) -> Result<usize, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.sender.blocking_send(Command::MakeDue(now_ms, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }
}

/// Outcomes sent to the committer, not yet known to be committed.
pub struct Pending(oneshot::Receiver<Result<(), Unavailable>>);

impl Pending {
    /// Blocks until the outcomes are committed, or could not be.
    pub fn wait(self) -> Result<(), Unavailable> {
        self.0.blocking_recv().map_err(|_| stopped())?
    }
}

fn stopped() -> Unavailable {
    Unavailable("the journal is shutting down".into())
}

fn run(mut connection: Connection, mut receiver: mpsc::Receiver<Command>, wakeup: &Wakeup, observers: &Observers) {
    let mut round = Vec::with_capacity(MAX_ROUND);
    if let Some(quota) = &observers.quota
        && let Err(e) = quota.recount(&connection)
    {
        tracing::warn!("cannot measure the journal for its limits (journal.max_bytes): {e}");
    }
    while let Some(first) = receiver.blocking_recv() {
        round.push(first);
        while round.len() < MAX_ROUND {
            match receiver.try_recv() {
                Ok(command) => round.push(command),
                Err(_) => break,
            }
        }
        let appended = round.iter().any(|c| matches!(c, Command::Append(..)));
        let started = Instant::now();
        let outcome = commit_round(&mut connection, &round, observers.hooks.as_ref());
        if let Some(metrics) = &observers.metrics {
            metrics.journal_commit(started.elapsed());
        }
        if let Some(health) = &observers.health {
            match &outcome {
                Ok(_) => health.journal_committed(),
                Err(error) => health.journal_failed(&error.to_string()),
            }
        }
        let count = round.len();
        match outcome {
            Ok(outcomes) => {
                if let Some(quota) = &observers.quota {
                    account(quota, &connection, &round, &outcomes);
                }
                for (command, outcome) in round.drain(..).zip(outcomes) {
                    match (command, outcome) {
                        (Command::Append(_, reply), Outcome::Appended(appended)) => drop(reply.send(Ok(appended))),
                        (Command::Settle(_, reply), Outcome::Settled) => drop(reply.send(Ok(()))),
                        (Command::Prune(_, reply), Outcome::Pruned(removed)) => drop(reply.send(Ok(removed))),
                        (Command::MakeDue(_, reply), Outcome::MadeDue(count)) => drop(reply.send(Ok(count))),
                        _ => unreachable!("one outcome per command, in order"),
                    }
                }
                tracing::trace!(requests = count, "journal round committed");
                if appended {
                    wakeup.ring();
                }
            }
            Err(error) => {
                tracing::error!("journal write failed, {count} requests refused: {error}");
                let error = Unavailable(error.to_string());
                for command in round.drain(..) {
                    match command {
                        Command::Append(_, reply) => drop(reply.send(Err(error.clone()))),
                        Command::Settle(_, reply) => drop(reply.send(Err(error.clone()))),
                        Command::Prune(_, reply) => drop(reply.send(Err(error.clone()))),
                        Command::MakeDue(_, reply) => drop(reply.send(Err(error.clone()))),
                    }
                }
            }
        }
    }
}

/// Keeps `quota` up to date after a committed round: unmapped events it
/// stored, the journal's size after appends, a recount after housekeeping.
fn account(quota: &Quota, connection: &Connection, round: &[Command], outcomes: &[Outcome]) {
    let mut appended = false;
    let mut pruned = false;
    for (command, outcome) in round.iter().zip(outcomes) {
        match (command, outcome) {
            (Command::Append(event, _), Outcome::Appended(Appended::New(_))) => {
                appended = true;
                if event.status == Status::Unmapped {
                    quota.unmapped_appended(&event.event_type, event.payload.len() as u64);
                }
            }
            (Command::Prune(..), _) => pruned = true,
            _ => {}
        }
    }
    let measured = match (pruned, appended) {
        (true, _) => quota.recount(connection),
        (false, true) => quota.measure(connection),
        (false, false) => Ok(()),
    };
    if let Err(e) = measured {
        tracing::warn!("cannot measure the journal for its limits (journal.max_bytes): {e}");
    }
}

/// What one command did, in its round.
enum Outcome {
    Appended(Appended),
    Settled,
    Pruned(usize),
    MadeDue(usize),
}

/// Writes one round in one transaction. Returns, per command, what it did.
/// All or nothing: on error, nothing was stored.
///
/// Every round is fsynced before it returns (`synchronous=FULL`), delivery
/// outcomes too: the sync worker writes a row's next state to the HIS only
/// after the outcome of its previous one is on disk. Were that outcome
/// lost to a power cut, the restarted worker would write the previous state
/// again, after the newer one (the row would move back, and HIS triggers
/// would see it).
fn commit_round(connection: &mut Connection, round: &[Command], hooks: &dyn Hooks) -> rusqlite::Result<Vec<Outcome>> {
    // The write lock from the start: appends choose their ids (journal::append_all).
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = crate::clock::now_rfc3339();
    let mut outcomes = Vec::with_capacity(round.len());
    // Consecutive appends go in together, in order; other commands one by one.
    let is_append = |command: &Command| matches!(command, Command::Append(..));
    for group in round.chunk_by(|a, b| is_append(a) && is_append(b)) {
        let appends: Vec<&NewEvent> = group
            .iter()
            .filter_map(|command| match command {
                Command::Append(event, _) => Some(event),
                _ => None,
            })
            .collect();
        if !appends.is_empty() {
            outcomes.extend(journal::append_all(&transaction, &appends)?.into_iter().map(Outcome::Appended));
            continue;
        }
        for command in group {
            match command {
                Command::Append(..) => {}
                Command::Settle(settlements, _) => {
                    journal::settle(&transaction, settlements, &now)?;
                    outcomes.push(Outcome::Settled);
                }
                Command::Prune(housekeeping, _) => {
                    let removed = journal::prune(&transaction, Status::Delivered, &housekeeping.delivered_before)?;
                    journal::prune_delivery_ids(&transaction, housekeeping.delivery_ids_before_ms)?;
                    outcomes.push(Outcome::Pruned(removed));
                }
                Command::MakeDue(now_ms, _) => {
                    outcomes.push(Outcome::MadeDue(journal::make_due(&transaction, *now_ms)?))
                }
            }
        }
    }
    hooks
        .before_journal_commit()
        .map_err(|e| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR), Some(e)))?;
    transaction.commit()?;
    hooks.after_journal_commit();
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::pipeline::hooks::{Hooks, NoHooks};

    /// Panics in the middle of a round, as a bug in the committer would.
    struct Bug;

    impl Hooks for Bug {
        fn before_journal_commit(&self) -> Result<(), String> {
            panic!("a bug in the committer");
        }
    }

    static CRASHED: AtomicBool = AtomicBool::new(false);

    fn event() -> NewEvent {
        NewEvent {
            event_type: "appointment".into(),
            payload: "{}".into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            status: Status::Pending,
            event_key: Some("[\"t\",\"1\"]".into()),
            extra_keys: Vec::new(),
            delivery_id: None,
            received_ms: 0,
            duplicates_since_ms: 0,
        }
    }

    /// If the committer's thread died, intake would answer 503 for ever
    /// while the process lived on: its crash handler (in the middleware,
    /// exit 70, so that the service manager restarts it) must run.
    #[test]
    fn a_committer_that_panics_calls_its_crash_handler() {
        let dir = tempfile::tempdir().unwrap();
        let connection = journal::open(&dir.path().join("journal.db")).unwrap();
        let observers = Observers {
            hooks: Arc::new(Bug),
            on_crash: || CRASHED.store(true, Ordering::SeqCst),
            ..Observers::default()
        };
        let (committer, thread) = Committer::start(connection, Arc::new(Wakeup::default()), observers).unwrap();
        assert!(committer.append_blocking(event()).is_err(), "the round that panicked stored nothing");
        thread.join().expect("the thread ends after its crash handler");
        assert!(CRASHED.load(Ordering::SeqCst), "the crash handler ran");
    }

    /// A settle-only round is fsynced too (`synchronous=FULL`): the worker
    /// writes a row's next state only after the previous state's outcome is
    /// on disk, so a power cut cannot undo that outcome and make the
    /// restarted worker write the previous state again over the next. (It
    /// was NORMAL in WAL mode before issue 20.)
    #[test]
    fn outcome_rounds_are_fsynced_like_every_round() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal::open(&dir.path().join("journal.db")).unwrap();
        let (reply, _answer) = oneshot::channel();
        let appended = commit_round(&mut connection, &[Command::Append(event(), reply)], &NoHooks).unwrap();
        let [Outcome::Appended(Appended::New(id))] = appended[..] else { panic!("one event appended") };
        let (reply, _answer) = oneshot::channel();
        commit_round(&mut connection, &[Command::Settle(vec![Settlement::Delivered { id }], reply)], &NoHooks).unwrap();
        let journal_mode: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        let synchronous: i64 = connection.pragma_query_value(None, "synchronous", |row| row.get(0)).unwrap();
        assert_eq!((journal_mode.as_str(), synchronous), ("wal", 2), "FULL after a round of outcomes only");
    }
}
