//! The sync worker: one dedicated thread that moves pending events from the
//! journal into the HIS through the writer plugin.
//!
//! It is the only caller of the plugin's writer, and calls it only from this
//! thread: plugin calls block, and must never run on an async worker.
//!
//! One pass: take due events in receive order; map each to a row; cut the
//! window into segments in which no HIS row (table and key) appears twice,
//! and each segment into one batch per event type; hand each batch to the
//! writer; record the outcomes in the journal. Segments go in receive
//! order, so a row never receives a newer state before an older one, even
//! when two event types write the same table. An event is marked delivered
//! only after the writer says its transaction committed.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use his_plugin_api::{Deadline, ErrorKind, PluginError};
use rusqlite::Connection;

mod pass;

use self::pass::{PassEnd, Passed};
use crate::{
    clock::Clock,
    pipeline::{
        committer::{Committer, Housekeeping, Pending},
        hooks::Hooks,
        journal,
        lookahead::{self, InFlight, Lookahead, Prepared, Window},
        mapping::Mappings,
        retry::Backoff,
        wakeup::Wakeup,
    },
    plugins::{HisWriter, Plugin},
    telemetry::{health::Health, metrics::Metrics},
};

/// Where the worker gets its writer: the loaded plugin in the middleware,
/// a fake HIS in the simulator.
pub trait OpenWriter: Send {
    /// The database type, for the log (`mysql`).
    fn name(&self) -> &str;
    /// Opens a writer, within `deadline`. Blocking.
    fn open(&self, deadline: Deadline) -> Result<HisWriter, PluginError>;
}

/// The loaded plugin, and what it opens its writer with.
pub struct PluginWriters {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// The config's `database` section, as JSON, for the plugin.
    pub settings_json: String,
    /// The config file's folder, for the plugin's relative paths.
    pub config_dir: PathBuf,
}

impl OpenWriter for PluginWriters {
    fn name(&self) -> &str {
        &self.plugin.name
    }

    fn open(&self, deadline: Deadline) -> Result<HisWriter, PluginError> {
        self.plugin.open_writer(&self.settings_json, &self.config_dir, deadline)
    }
}

/// The longest the worker sleeps with nothing due: also how soon it sees
/// events that `replay` (a separate process) put back to pending.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Everything the worker needs, built once at startup.
pub struct Worker {
    /// Opens the writer.
    pub writers: Box<dyn OpenWriter>,
    /// Event type → table, columns, key.
    pub mappings: Arc<Mappings>,
    /// The worker's own read connection to the journal.
    pub reader: Connection,
    /// Reads the next window while the plugin writes (its own connection).
    pub lookahead: Lookahead,
    /// Where outcomes are written.
    pub committer: Committer,
    /// Rung when events arrive, or to stop.
    pub wakeup: Arc<Wakeup>,
    /// The most events per pass.
    pub batch_size: usize,
    /// The bound on each call into the plugin.
    pub deadline: Deadline,
    /// Delays between tries.
    pub backoff: Backoff,
    /// How long delivered events are kept.
    pub retention: Duration,
    /// How long delivery ids are remembered.
    pub duplicate_window: Duration,
    /// Where deliveries, failures and HIS errors are counted.
    pub metrics: Arc<Metrics>,
    /// Whether the HIS answered the last contact, for `/ready`.
    pub health: Arc<Health>,
    /// The time: the system's, or the simulator's.
    pub clock: Arc<dyn Clock>,
    /// The simulator's points of control; none in the middleware.
    pub hooks: Arc<dyn Hooks>,
}

/// Error kinds that mean the HIS cannot be used now, whatever the events:
/// the whole pass backs off.
const UNUSABLE: [ErrorKind; 4] = [ErrorKind::CONNECTION, ErrorKind::TIMEOUT, ErrorKind::AUTH, ErrorKind::CONFIG];

/// How long the worker may go without hearing from the HIS before it pings
/// it, so that `/ready` tells the truth on a quiet day too.
const PING_EVERY_MS: i64 = 30_000;

/// How often the worker removes old delivered events and delivery ids: at
/// the first quiet moment after startup, then every so often.
const HOUSEKEEPING_EVERY_MS: i64 = 600_000;
/// How late housekeeping may get while the worker is never quiet.
const HOUSEKEEPING_OVERDUE_MS: i64 = 3_600_000;

/// How long startup waits for the first attempt to open the writer before
/// it listens anyway: a slow or unreachable HIS must not hold up intake.
const FIRST_OPEN_WAIT: Duration = Duration::from_secs(3);

/// How the first attempt to open the writer went.
pub enum Opened {
    /// The writer is open.
    Ready,
    /// The HIS is not reachable yet; events wait in the journal until it is.
    Deferred(PluginError),
    /// The attempt is still running; its outcome will be logged.
    Slow,
}

impl Worker {
    /// Starts the worker thread, which opens the writer first. This waits
    /// for that attempt (at most `FIRST_OPEN_WAIT`): a permanent error
    /// (bad settings, login refused) is returned, so that the middleware
    /// exits before it listens. If such an error comes only after the wait,
    /// the worker logs it and ends the process.
    pub fn start(self) -> Result<(JoinHandle<()>, Opened), PluginError> {
        let (report, first_open) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sync-worker".into())
            .spawn(move || {
                let database_type = self.writers.name().to_string();
                let wakeup = self.wakeup.clone();
                let mut state = State::new(self);
                let opened = state.open_writer();
                let outcome = opened.as_ref().map(|_| ()).map_err(|e| (e.retryable, e.to_string()));
                if report.send(opened).is_err()
                    && let Err((false, message)) = &outcome
                {
                    // Startup stopped waiting; nobody else will report it.
                    eprintln!("error: cannot open the {database_type} HIS database: {message}");
                    std::process::exit(1);
                }
                let mut next = match outcome {
                    Err((false, _)) => return,
                    Err((true, _)) => state.back_off(),
                    Ok(()) => Next::Go,
                };
                let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    while !wakeup.stopping() {
                        let went_on = match next {
                            Next::Go => true,
                            Next::Idle(wait) => wakeup.wait(wait),
                            Next::Sleep(wait) => wakeup.sleep(wait),
                        };
                        if !went_on {
                            break;
                        }
                        next = state.step();
                    }
                    state.finish();
                }));
                if crashed.is_err() {
                    // A bug in the host. Every event is safe in the journal:
                    // exit, so that the service manager starts a fresh process.
                    tracing::error!("the sync worker crashed; exiting so that the service restarts it");
                    std::process::exit(70);
                }
            })
            .map_err(|e| PluginError::permanent(ErrorKind::OTHER, format!("cannot start the sync worker: {e}")))?;
        match first_open.recv_timeout(FIRST_OPEN_WAIT) {
            Ok(Ok(())) => Ok((thread, Opened::Ready)),
            Ok(Err(e)) if e.retryable => Ok((thread, Opened::Deferred(e))),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok((thread, Opened::Slow)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(PluginError::permanent(ErrorKind::PANIC, "the sync worker stopped while opening the writer"))
            }
        }
    }
}

/// What the worker does after a [`State::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Step again at once.
    Go,
    /// Nothing is due: wait this long, or until new events ring.
    Idle(Duration),
    /// Backing off: wait this long; new events do not end the wait.
    Sleep(Duration),
}

/// The worker's state between steps. The thread in [`Worker::start`] steps
/// it and waits as each step says; the simulator steps it on a virtual clock.
pub(crate) struct State {
    worker: Worker,
    /// `None` until opened, and after the plugin panicked (a poisoned
    /// writer is dropped, never called again).
    writer: Option<HisWriter>,
    /// Consecutive passes that ended in a retryable error: the worker's
    /// own backoff while the HIS is unreachable.
    failures: u32,
    /// Whether the last pass reached the HIS: the log says when this changes.
    reachable: bool,
    /// When to prune next (unix ms).
    next_housekeeping_ms: i64,
    /// When the HIS last answered or failed to (unix ms): a ping is due
    /// after [`PING_EVERY_MS`] of silence.
    last_contact_ms: i64,
    /// The last pass's outcomes, on their way into the journal.
    recording: Option<Recording>,
    /// The next window, read while the last one was written.
    ahead: Option<Window>,
    /// Set while the worker waits out a failure.
    backing_off: Option<BackingOff>,
}

/// A back-off in progress.
#[derive(Debug, Clone, Copy)]
struct BackingOff {
    /// When it ends (unix ms).
    until_ms: i64,
    /// While the HIS is unreachable: when to ping it next (unix ms).
    next_probe_ms: i64,
}

/// A pass's outcomes on their way into the journal.
struct Recording {
    reply: Pending,
    /// The last event id of that pass: the next pass reads after it.
    last_id: i64,
    /// The HIS rows that pass wrote.
    keys: HashSet<String>,
}

/// What reading a window found.
enum Read {
    /// Events are retrying: wait for the last pass's record, then read from
    /// the start.
    WaitForRecord,
    /// The window (maybe empty).
    Events(Vec<Prepared>),
}

impl State {
    pub(crate) fn new(worker: Worker) -> Self {
        let now = worker.clock.now_ms();
        Self {
            worker,
            writer: None,
            failures: 0,
            reachable: true,
            next_housekeeping_ms: now,
            last_contact_ms: now,
            recording: None,
            ahead: None,
            backing_off: None,
        }
    }

    fn now_ms(&self) -> i64 {
        self.worker.clock.now_ms()
    }

    pub(crate) fn open_writer(&mut self) -> Result<(), PluginError> {
        let opened = self.worker.writers.open(self.worker.deadline);
        self.heard(opened.as_ref().err());
        let writer = opened?;
        self.warn_of_missing_abilities(&writer);
        self.writer = Some(writer);
        Ok(())
    }

    /// Names each mapping whose action the writer does not list (its events
    /// will fail, kept for replay, as [`ErrorKind::UNSUPPORTED`]). Startup
    /// refuses such mappings for plugins whose version fixes what they can
    /// do; a newer plugin says so only once its writer is open.
    fn warn_of_missing_abilities(&self, writer: &HisWriter) {
        if self.worker.mappings.several_rows() && !writer.writes_batches_together() {
            tracing::error!(
                "a mapping writes several HIS rows per event, which must commit in one transaction, and the {} \
                 plugin cannot write several batches in one transaction: those events fail until the plugin is \
                 upgraded (plugin-api 1.2 or newer; then replay them) or the mapping changes",
                self.worker.writers.name()
            );
        }
        let actions = writer.actions();
        for event_type in self.worker.mappings.event_types() {
            let mapping = self.worker.mappings.get(event_type).expect("listed");
            if !actions.contains(mapping.action) {
                tracing::error!(
                    "mapping.{event_type}.action is {:?}, which the {} plugin cannot do: its events fail until the \
                     plugin is upgraded (then replay them) or the mapping changes",
                    mapping.action.name(),
                    self.worker.writers.name()
                );
            }
        }
    }

    /// Notes how the HIS answered a call, for `/ready` and the metrics. An
    /// error about the data (a wrong value, a missing column) is still an
    /// answer; one about the connection, the login or the settings is not.
    fn heard(&mut self, error: Option<&PluginError>) {
        self.last_contact_ms = self.now_ms();
        match error {
            // A panic says nothing about the HIS, and a writer that panics
            // on every call is not ready.
            Some(e) if UNUSABLE.contains(&e.kind) || e.kind == ErrorKind::PANIC => {
                self.worker.metrics.his_error(e.kind.name());
                self.worker.health.his_failed(&e.to_string());
            }
            Some(e) => {
                self.worker.metrics.his_error(e.kind.name());
                self.worker.health.his_answered();
            }
            None => self.worker.health.his_answered(),
        }
    }

    /// Pings the HIS when nothing was heard from it for a while.
    fn ping_if_quiet(&mut self, now: i64) {
        if now - self.last_contact_ms >= PING_EVERY_MS
            && let Err(e) = self.ping()
        {
            tracing::warn!("the HIS did not answer a ping: {e}");
        }
    }

    /// One ping, noted for `/ready`. A writer that panics is discarded.
    fn ping(&mut self) -> Result<(), PluginError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(PluginError::permanent(ErrorKind::OTHER, "no writer is open"));
        };
        let pinged = writer.ping(self.worker.deadline);
        if pinged.as_ref().is_err_and(|e| e.kind == ErrorKind::PANIC) {
            self.writer = None;
        }
        self.heard(pinged.as_ref().err());
        pinged
    }

    /// One step of the worker: usually one pass. Recording a pass's
    /// outcomes (a journal commit) overlaps with the next pass when every
    /// event of the pass was delivered: the next pass then reads only
    /// events after the last one being recorded. After any failure the
    /// worker waits for the record first, so that an event held back is
    /// seen as held.
    pub(crate) fn step(&mut self) -> Next {
        let now = self.now_ms();
        if let Some(next) = self.backing_off(now) {
            return next;
        }
        if self.writer.is_none() {
            if let Err(e) = self.open_writer() {
                tracing::warn!("cannot open the {} writer: {e}", self.worker.writers.name());
                return self.back_off();
            }
            tracing::info!("{} writer open", self.worker.writers.name());
        }
        // Housekeeping waits for a quiet moment (below), unless it is an
        // hour overdue: it must not slow a backlog's drain.
        if now >= self.next_housekeeping_ms + HOUSEKEEPING_OVERDUE_MS {
            self.housekeeping(now);
        }
        let started = Instant::now();
        let events = match self.read_window(now) {
            Ok(Read::Events(events)) => events,
            Ok(Read::WaitForRecord) => {
                let previous = self.recording.take().expect("only while recording");
                return if self.recorded(previous) { Next::Go } else { self.back_off() };
            }
            Err(e) => {
                tracing::error!("cannot read the journal: {e}");
                return self.back_off();
            }
        };
        if events.is_empty() {
            if let Some(previous) = self.recording.take() {
                // Nothing after the batch being recorded: wait for the
                // record, then look again from the start.
                return if self.recorded(previous) { Next::Go } else { self.back_off() };
            }
            if now >= self.next_housekeeping_ms {
                self.housekeeping(now);
            }
            self.ping_if_quiet(now);
            let next = journal::next_due_ms(&self.worker.reader, now).ok().flatten();
            let wait = next.map_or(IDLE_WAIT, |at| Duration::from_millis((at - now).max(1) as u64).min(IDLE_WAIT));
            return Next::Idle(wait);
        }
        let (count, last_id) = (events.len(), events.last().map_or(0, |e| e.event.id));
        let keys: HashSet<String> = events.iter().flat_map(|e| e.event.keys().map(str::to_string)).collect();
        // If this pass writes a row that the pass being recorded wrote,
        // wait for that record first. Otherwise a crash between the two
        // would replay the older state over the newer one on restart.
        if self.recording.as_ref().is_some_and(|r| !r.keys.is_disjoint(&keys))
            && let Some(previous) = self.recording.take()
            && !self.recorded(previous)
        {
            return self.back_off();
        }
        let read = started.elapsed();
        // A full window means more may wait: read the next one meanwhile.
        let in_flight: Option<InFlight> =
            if count == self.worker.batch_size { self.worker.lookahead.start(last_id, now) } else { None };
        let Passed { unrecorded, end, all_delivered } = self.pass(events);
        let written = started.elapsed();
        let next = in_flight.and_then(|in_flight| self.worker.lookahead.finish(in_flight));
        let previous = self.recording.take();
        if !previous.is_none_or(|previous| self.recorded(previous)) {
            // This pass was written after the previous one, whose record
            // failed. Record neither: both are written again, in order.
            return self.back_off();
        }
        if matches!(end, PassEnd::JournalFailed) {
            // Part of the pass could not be recorded: the rest waits too.
            return self.back_off();
        }
        let current = match self.worker.committer.settle(unrecorded) {
            Ok(reply) => Recording { reply, last_id, keys },
            Err(e) => {
                tracing::error!("cannot record delivery outcomes: {e}");
                return self.back_off();
            }
        };
        tracing::debug!(
            events = count,
            read_ms = read.as_secs_f64() * 1e3,
            write_ms = (written - read).as_secs_f64() * 1e3,
            "sync pass"
        );
        self.note_reachability(&end);
        if all_delivered && matches!(end, PassEnd::Done) {
            self.recording = Some(current);
            self.failures = 0;
            // Read after this pass's last event: it fits the next pass
            // unless the holds changed meanwhile.
            self.ahead = next;
            return Next::Go;
        }
        let current_ok = self.recorded(current);
        if matches!(end, PassEnd::Done) && current_ok { Next::Go } else { self.back_off() }
    }

    /// Reads the next window: the holds and the due events in one snapshot
    /// of the journal, so that a `replay` committing in between cannot make
    /// the two disagree (a replayed event seen as failed by the one and as
    /// due by the other would let a newer event of its row go first).
    fn read_window(&mut self, now: i64) -> rusqlite::Result<Read> {
        let snapshot = self.worker.reader.unchecked_transaction()?;
        let holds = journal::holds(&snapshot)?;
        self.worker.hooks.window_read();
        // While any pending event is retrying, order per row needs the
        // whole picture: no overlap, read from the start, hold back later
        // events of a row behind its retrying one. A failed event holds
        // back its row's later events too, but never becomes due, so
        // overlap stays safe.
        if holds.retrying && self.recording.is_some() {
            return Ok(Read::WaitForRecord);
        }
        let after_id = self.recording.as_ref().map_or(0, |r| r.last_id);
        if let Some(window) = self.ahead.take().filter(|window| window.fits(after_id, holds)) {
            return Ok(Read::Events(window.events));
        }
        let events =
            journal::due_events(&snapshot, now, after_id, holds, self.worker.batch_size, journal::WINDOW_BYTES)?;
        drop(snapshot);
        Ok(Read::Events(lookahead::prepare(&self.worker.mappings, events)))
    }

    /// Ends the worker: waits for the last record, closes the writer.
    pub(crate) fn finish(&mut self) {
        if let Some(previous) = self.recording.take() {
            self.recorded(previous);
        }
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = writer.close()
        {
            tracing::warn!("closing the {} writer: {e}", self.worker.writers.name());
        }
    }

    /// One log line when the HIS stops answering, one when it is back, each
    /// with how many events wait.
    fn note_reachability(&mut self, end: &PassEnd) {
        let reachable = !matches!(end, PassEnd::Unreachable(_));
        if reachable == self.reachable {
            return;
        }
        self.reachable = reachable;
        let waiting = journal::pending_summary(&self.worker.reader).map_or(-1, |(count, _)| count);
        match end {
            PassEnd::Unreachable(e) => tracing::warn!(
                "the HIS is not reachable ({e}); {waiting} events wait in the journal and are written when it is back"
            ),
            _ => tracing::info!("the HIS is reachable again; {waiting} events waiting"),
        }
    }

    /// Removes delivered events past their retention and delivery ids past
    /// the duplicate window, a bounded batch at a time.
    fn housekeeping(&mut self, now: i64) {
        self.next_housekeeping_ms = now + HOUSEKEEPING_EVERY_MS;
        let ago = |d: Duration| now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let delivered_before = chrono::DateTime::from_timestamp_millis(ago(self.worker.retention))
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let housekeeping = Housekeeping { delivered_before, delivery_ids_before_ms: ago(self.worker.duplicate_window) };
        let mut removed = 0;
        for _ in 0..10 {
            match self.worker.committer.prune(housekeeping.clone()) {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::warn!("journal housekeeping failed: {e}");
                    break;
                }
            }
            if removed % journal::PRUNE_BATCH != 0 || removed == 0 {
                break;
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} delivered events older than the retention (journal.retention_days)");
        }
    }

    /// Waits for a pass's outcomes to be in the journal. If they cannot be
    /// recorded, the events stay pending and are written again later (an
    /// upsert, so harmless) once the journal recovers.
    fn recorded(&self, recording: Recording) -> bool {
        match recording.reply.wait() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("cannot record delivery outcomes: {e}");
                false
            }
        }
    }

    /// Starts waiting out the worker-wide backoff.
    pub(crate) fn back_off(&mut self) -> Next {
        self.failures = self.failures.saturating_add(1);
        let delay = self.worker.backoff.delay(self.failures);
        tracing::info!("sync worker waits {:.1}s before trying again", delay.as_secs_f64());
        let now = self.now_ms();
        self.backing_off = Some(BackingOff {
            until_ms: now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
            next_probe_ms: now + PING_EVERY_MS,
        });
        self.backing_off(now).unwrap_or(Next::Go)
    }

    /// While backing off: how long to wait yet, or `None` when the wait is
    /// over.
    ///
    /// While the HIS is unreachable, a ping every [`PING_EVERY_MS`] ends the
    /// wait as soon as it answers: after an outage, writing resumes (and
    /// `/ready` recovers) within half a minute, not after the longest delay.
    fn backing_off(&mut self, now: i64) -> Option<Next> {
        let mut backing_off = self.backing_off?;
        if now >= backing_off.until_ms {
            self.backing_off = None;
            return None;
        }
        let probing = !self.reachable && self.writer.is_some();
        if probing && now >= backing_off.next_probe_ms {
            if self.ping().is_ok() {
                // Events set aside for the outage need not wait out their own delays.
                match self.worker.committer.make_due(now) {
                    Ok(count) => tracing::info!("the HIS answers again: writing now ({count} events were waiting)"),
                    Err(e) => tracing::warn!("the HIS answers again, but the journal did not take it: {e}"),
                }
                self.backing_off = None;
                return None;
            }
            backing_off.next_probe_ms = now + PING_EVERY_MS;
            self.backing_off = Some(backing_off);
        }
        let until = if probing { backing_off.until_ms.min(backing_off.next_probe_ms) } else { backing_off.until_ms };
        Some(Next::Sleep(Duration::from_millis((until - now).max(1) as u64)))
    }
}
