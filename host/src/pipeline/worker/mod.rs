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

use his_plugin_api::{ErrorKind, PluginError, WriterBox};
use rusqlite::Connection;

mod pass;

use self::pass::PassEnd;
use crate::{
    clock,
    pipeline::{
        committer::{Committer, Housekeeping, Pending},
        journal::{self, Settlement},
        lookahead::{self, InFlight, Lookahead, Window},
        mapping::Mappings,
        retry::Backoff,
        wakeup::Wakeup,
    },
    plugins::Plugin,
    telemetry::{health::Health, metrics::Metrics},
};

/// The longest the worker sleeps with nothing due: also how soon it sees
/// events that `replay` (a separate process) put back to pending.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Everything the worker needs, built once at startup.
pub struct Worker {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// The config's `database` section, as JSON, for the plugin.
    pub settings_json: String,
    /// The config file's folder, for the plugin's relative paths.
    pub config_dir: PathBuf,
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
}

/// Error kinds that mean the HIS cannot be used now, whatever the events:
/// the whole pass backs off.
const UNUSABLE: [ErrorKind; 4] = [ErrorKind::CONNECTION, ErrorKind::TIMEOUT, ErrorKind::AUTH, ErrorKind::CONFIG];

/// How long the worker may go without hearing from the HIS before it pings
/// it, so that `/ready` tells the truth on a quiet day too.
const PING_EVERY: Duration = Duration::from_secs(30);

/// How often the worker removes old delivered events and delivery ids: at
/// the first quiet moment after startup, then every so often.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);
/// How late housekeeping may get while the worker is never quiet.
const HOUSEKEEPING_OVERDUE: Duration = Duration::from_secs(3600);

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
                let database_type = self.plugin.name.clone();
                let mut state = State {
                    worker: self,
                    writer: None,
                    failures: 0,
                    reachable: true,
                    next_housekeeping: Instant::now(),
                    last_contact: Instant::now(),
                };
                let opened = state.open_writer();
                let outcome = opened.as_ref().map(|_| ()).map_err(|e| (e.retryable, e.to_string()));
                if report.send(opened).is_err()
                    && let Err((false, message)) = &outcome
                {
                    // Startup stopped waiting; nobody else will report it.
                    eprintln!("error: cannot open the {database_type} HIS database: {message}");
                    std::process::exit(1);
                }
                match outcome {
                    Err((false, _)) => return,
                    Err((true, _)) if !state.back_off() => return,
                    _ => {}
                }
                let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.run()));
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

struct State {
    worker: Worker,
    /// `None` until opened, and after the plugin panicked (a poisoned
    /// writer is dropped, never called again).
    writer: Option<WriterBox>,
    /// Consecutive passes that ended in a retryable error: the worker's
    /// own backoff while the HIS is unreachable.
    failures: u32,
    /// Whether the last pass reached the HIS: the log says when this changes.
    reachable: bool,
    /// When to prune next.
    next_housekeeping: Instant,
    /// When the HIS last answered or failed to: a ping is due after
    /// [`PING_EVERY`] of silence.
    last_contact: Instant,
}

/// A pass's outcomes on their way into the journal.
struct Recording {
    reply: Pending,
    /// The last event id of that pass: the next pass reads after it.
    last_id: i64,
    /// The HIS rows that pass wrote.
    keys: HashSet<String>,
}

impl State {
    fn open_writer(&mut self) -> Result<(), PluginError> {
        let w = &self.worker;
        let opened = w.plugin.open_writer(&w.settings_json, &w.config_dir);
        self.heard(opened.as_ref().err());
        self.writer = Some(opened?);
        Ok(())
    }

    /// Notes how the HIS answered a call, for `/ready` and the metrics. An
    /// error about the data (a wrong value, a missing column) is still an
    /// answer; one about the connection, the login or the settings is not.
    fn heard(&mut self, error: Option<&PluginError>) {
        self.last_contact = Instant::now();
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
    fn ping_if_quiet(&mut self) {
        if self.last_contact.elapsed() >= PING_EVERY
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
        let pinged = writer.ping().into_result();
        if pinged.as_ref().is_err_and(|e| e.kind == ErrorKind::PANIC) {
            self.writer = None;
        }
        self.heard(pinged.as_ref().err());
        pinged
    }

    /// The worker's loop. Recording a pass's outcomes (a journal commit)
    /// overlaps with the next pass when every event of the pass was
    /// delivered: the next pass then reads only events after the last one
    /// being recorded. After any failure the worker waits for the record
    /// first, so that an event held back is seen as held.
    fn run(&mut self) {
        let mut recording: Option<Recording> = None;
        // The next window, read while the last one was written.
        let mut ahead: Option<Window> = None;
        while !self.worker.wakeup.stopping() {
            if self.writer.is_none() {
                if let Err(e) = self.open_writer() {
                    tracing::warn!("cannot open the {} writer: {e}", self.worker.plugin.name);
                    if !self.back_off() {
                        break;
                    }
                    continue;
                }
                tracing::info!("{} writer open", self.worker.plugin.name);
            }
            // Housekeeping waits for a quiet moment (below), unless it is an
            // hour overdue: it must not slow a backlog's drain.
            if Instant::now() >= self.next_housekeeping + HOUSEKEEPING_OVERDUE {
                self.housekeeping();
            }
            let now = clock::now_ms();
            let started = Instant::now();
            // While any pending event is retrying, order per row needs the
            // whole picture: no overlap, read from the start, hold back
            // later events of a row behind its retrying one. A failed event
            // holds back its row's later events too, but never becomes due,
            // so overlap stays safe.
            let holds = match journal::holds(&self.worker.reader) {
                Ok(holds) => holds,
                Err(e) => {
                    tracing::error!("cannot read the journal: {e}");
                    if !self.back_off() {
                        break;
                    }
                    continue;
                }
            };
            if holds.retrying
                && let Some(previous) = recording.take()
            {
                if !self.recorded(previous) && !self.back_off() {
                    break;
                }
                continue;
            }
            let after_id = recording.as_ref().map_or(0, |r| r.last_id);
            let events = match ahead.take().filter(|window| window.fits(after_id, holds)) {
                Some(window) => window.events,
                None => {
                    match journal::due_events(&self.worker.reader, now, after_id, holds.any(), self.worker.batch_size) {
                        Ok(events) => lookahead::prepare(&self.worker.mappings, events),
                        Err(e) => {
                            tracing::error!("cannot read the journal: {e}");
                            if !self.back_off() {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };
            if events.is_empty() {
                if let Some(previous) = recording.take() {
                    // Nothing after the batch being recorded: wait for the
                    // record, then look again from the start.
                    if !self.recorded(previous) && !self.back_off() {
                        break;
                    }
                    continue;
                }
                if Instant::now() >= self.next_housekeeping {
                    self.housekeeping();
                }
                self.ping_if_quiet();
                let next = journal::next_due_ms(&self.worker.reader, now).ok().flatten();
                let wait = next.map_or(IDLE_WAIT, |at| Duration::from_millis((at - now).max(1) as u64).min(IDLE_WAIT));
                if !self.worker.wakeup.wait(wait) {
                    break;
                }
                continue;
            }
            let (count, last_id) = (events.len(), events.last().map_or(0, |e| e.event.id));
            let keys: HashSet<String> = events.iter().filter_map(|e| e.event.event_key.clone()).collect();
            // If this pass writes a row that the pass being recorded wrote,
            // wait for that record first. Otherwise a crash between the two
            // would replay the older state over the newer one on restart.
            if recording.as_ref().is_some_and(|r| !r.keys.is_disjoint(&keys))
                && let Some(previous) = recording.take()
                && !self.recorded(previous)
            {
                if !self.back_off() {
                    break;
                }
                continue;
            }
            let read = started.elapsed();
            // A full window means more may wait: read the next one meanwhile.
            let in_flight: Option<InFlight> =
                if count == self.worker.batch_size { self.worker.lookahead.start(last_id) } else { None };
            let (settlements, end) = self.pass(events);
            let written = started.elapsed();
            let next = in_flight.and_then(|in_flight| self.worker.lookahead.finish(in_flight));
            let previous_ok = recording.take().is_none_or(|previous| self.recorded(previous));
            if !previous_ok {
                // This pass was written after the previous one, whose record
                // failed. Record neither: both are written again, in order.
                if !self.back_off() {
                    break;
                }
                continue;
            }
            let all_delivered =
                matches!(end, PassEnd::Done) && settlements.iter().all(|s| matches!(s, Settlement::Delivered { .. }));
            let current = match self.worker.committer.settle(settlements) {
                Ok(reply) => Recording { reply, last_id, keys },
                Err(e) => {
                    tracing::error!("cannot record delivery outcomes: {e}");
                    if !self.back_off() {
                        break;
                    }
                    continue;
                }
            };
            tracing::debug!(
                events = count,
                read_ms = read.as_secs_f64() * 1e3,
                write_ms = (written - read).as_secs_f64() * 1e3,
                "sync pass"
            );
            self.note_reachability(&end);
            if all_delivered {
                recording = Some(current);
                self.failures = 0;
                // Read after this pass's last event: it fits the next pass
                // unless the holds changed meanwhile.
                ahead = next;
                continue;
            }
            let current_ok = self.recorded(current);
            let healthy = matches!(end, PassEnd::Done) && current_ok;
            if !healthy && !self.back_off() {
                break;
            }
        }
        if let Some(previous) = recording.take() {
            self.recorded(previous);
        }
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = writer.close().into_result()
        {
            tracing::warn!("closing the {} writer: {e}", self.worker.plugin.name);
        }
    }

    /// One log line when the HIS stops answering, one when it is back, each
    /// with how many events wait.
    fn note_reachability(&mut self, end: &PassEnd) {
        let reachable = matches!(end, PassEnd::Done);
        if reachable == self.reachable {
            return;
        }
        self.reachable = reachable;
        let waiting = journal::pending_summary(&self.worker.reader).map_or(-1, |(count, _)| count);
        match end {
            PassEnd::Unreachable(e) => tracing::warn!(
                "the HIS is not reachable ({e}); {waiting} events wait in the journal and are written when it is back"
            ),
            PassEnd::Done => tracing::info!("the HIS is reachable again; {waiting} events waiting"),
        }
    }

    /// Removes delivered events past their retention and delivery ids past
    /// the duplicate window, a bounded batch at a time.
    fn housekeeping(&mut self) {
        self.next_housekeeping = Instant::now() + HOUSEKEEPING_EVERY;
        let ago = |d: Duration| chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default();
        let housekeeping = Housekeeping {
            delivered_before: ago(self.worker.retention).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            delivery_ids_before_ms: ago(self.worker.duplicate_window).timestamp_millis(),
        };
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

    /// Waits out the worker-wide backoff. Returns false when stopping.
    ///
    /// While the HIS is unreachable, a ping every [`PING_EVERY`] ends the
    /// wait as soon as it answers: after an outage, writing resumes (and
    /// `/ready` recovers) within half a minute, not after the longest delay.
    fn back_off(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        let delay = self.worker.backoff.delay(self.failures);
        tracing::info!("sync worker waits {:.1}s before trying again", delay.as_secs_f64());
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            let probing = !self.reachable && self.writer.is_some();
            if !self.worker.wakeup.sleep(if probing { left.min(PING_EVERY) } else { left }) {
                return false;
            }
            if probing && Instant::now() < until && self.ping().is_ok() {
                // Events set aside for the outage need not wait out their own delays.
                match self.worker.committer.make_due(clock::now_ms()) {
                    Ok(count) => tracing::info!("the HIS answers again: writing now ({count} events were waiting)"),
                    Err(e) => tracing::warn!("the HIS answers again, but the journal did not take it: {e}"),
                }
                return true;
            }
        }
    }
}
