//! One pass of the worker: a window of due events cut into segments in
//! which no HIS row appears twice, each segment written as one batch per
//! event type and target, and every event's outcome (delivered, retry
//! later, set aside) decided from what the writer said.
//!
//! A plugin that writes several batches in one transaction (plugin-api 1.2,
//! `writes_batches_together`) gets a whole segment in one call, so that an
//! event that writes several rows (a payment and its appointment's `paid`
//! flag) commits all of them or none. Another gets one batch per call, and
//! an event that writes another row than its first target's is set aside
//! as unsupported rather than written in two transactions.
//!
//! A segment's outcomes are in the journal before the next segment is
//! written: the next segment writes a newer state of one of its rows, and a
//! crash between the two must not make the restarted worker write the
//! older state again after the newer one.

use std::{collections::HashSet, time::Instant};

use his_plugin_api::{ErrorKind, PluginError, WriteBatch};
use indexmap::IndexMap;

use super::{State, UNUSABLE};
use crate::pipeline::{
    journal::{PendingEvent, Settlement},
    lookahead::Prepared,
    mapping::{MappingError, Row},
};

/// One event and its row for one target of its mapping.
pub(super) struct Item {
    pub(super) event: PendingEvent,
    /// The target's index among its event type's targets.
    pub(super) target: usize,
    /// Whether this is the event's last row: its other targets come
    /// before it, so once it is delivered, the event is.
    pub(super) last: bool,
    pub(super) row: Row,
}

/// What a pass ended with.
pub(super) enum PassEnd {
    /// Everything tried got an outcome.
    Done,
    /// The HIS is unreachable (or the writer broke): stop and back off.
    Unreachable(PluginError),
    /// A segment's outcomes could not be recorded: the pass stopped there,
    /// and nothing after it was written.
    JournalFailed,
}

/// What a pass did.
pub(super) struct Passed {
    /// Outcomes not yet sent to the journal (those of the last segment).
    pub(super) unrecorded: Vec<Settlement>,
    /// How it ended.
    pub(super) end: PassEnd,
    /// Whether every event of the window was delivered.
    pub(super) all_delivered: bool,
}

/// A batch's identity: its event type and target.
type BatchId = (String, usize);

/// A group's rows, one batch (in receive order) per event type and target,
/// first targets first.
type Batches = IndexMap<BatchId, Vec<Item>>;

impl State {
    /// Delivers one window of due events; returns their outcomes.
    pub(super) fn pass(&mut self, events: Vec<Prepared>) -> Passed {
        let mut settlements = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        // Rows whose earlier event failed in this pass: later events that
        // write one of them wait behind it.
        let mut held: HashSet<String> = HashSet::new();
        for Prepared { event, rows } in events {
            let rows = rows.unwrap_or_else(|| {
                // Mapped when it arrived (it has a key), not any more: it
                // fails like a wrong value would, and holds its row.
                Err(MappingError::Unmapped { event_type: event.event_type.clone() })
            });
            match rows {
                Ok(rows) if rows.is_empty() => {
                    tracing::debug!(event_id = event.id, event_type = %event.event_type, "no target's condition holds: nothing to write");
                    self.worker.metrics.delivered(&event.event_type, std::iter::once(event.received_at.as_str()));
                    settlements.push(Settlement::Delivered { id: event.id });
                }
                Ok(rows) => {
                    // Each target's row is an item, in target order; the
                    // event's items share its id, and the event is settled
                    // by its last one (see `delivered`).
                    let mut event = Some(event);
                    let mut rows = rows.into_iter().peekable();
                    while let Some((target, row)) = rows.next() {
                        let last = rows.peek().is_none();
                        let event = if last { event.take() } else { event.clone() }.expect("taken at the last row");
                        items.push(Item { event, target, last, row });
                    }
                }
                Err(e) => {
                    tracing::error!(event_id = event.id, event_type = %event.event_type, "event cannot be mapped: {e}");
                    self.worker.metrics.failed(&event.event_type);
                    held.extend(event.keys().map(str::to_string));
                    settlements.push(Settlement::Failed { id: event.id, error: e.to_string() });
                }
            }
        }
        let mut all_delivered = settlements.is_empty();
        let segments = segments(items);
        let last = segments.len().saturating_sub(1);
        for (index, segment) in segments.into_iter().enumerate() {
            let together = match self.writes_batches_together() {
                Ok(together) => together,
                Err(e) => {
                    let systemic = PluginError { retryable: true, ..e.clone() };
                    self.set_aside(&segment, &systemic, &mut settlements, &mut held);
                    return Passed { unrecorded: settlements, end: PassEnd::Unreachable(e), all_delivered: false };
                }
            };
            // Together: the segment is one call. Otherwise a call per batch,
            // and an event with rows of its own cannot be written.
            let groups: Vec<Vec<Item>> =
                if together { vec![segment] } else { batches(segment).into_values().collect() };
            for group in groups {
                // Held now, by an event that failed earlier in the pass (in
                // this segment: an earlier target of the same event).
                let (waiting, group): (Vec<Item>, Vec<Item>) = if held.is_empty() {
                    (Vec::new(), group)
                } else {
                    group.into_iter().partition(|i| is_held(&held, i))
                };
                all_delivered &= waiting.is_empty();
                // A waiting event holds its other rows in turn: a later
                // event of one of them must not overtake it.
                for item in &waiting {
                    held.extend(item.event.keys().map(str::to_string));
                }
                let before = settlements.len();
                let group = if together { group } else { self.refuse_split_events(group, &mut settlements, &mut held) };
                if !group.is_empty()
                    && let PassEnd::Unreachable(e) = self.deliver(group, &mut settlements, &mut held)
                {
                    return Passed { unrecorded: settlements, end: PassEnd::Unreachable(e), all_delivered: false };
                }
                all_delivered &= settlements[before..].iter().all(|s| matches!(s, Settlement::Delivered { .. }));
            }
            if index < last && !settlements.is_empty() && !self.record_segment(&mut settlements) {
                return Passed { unrecorded: Vec::new(), end: PassEnd::JournalFailed, all_delivered: false };
            }
        }
        Passed { unrecorded: settlements, end: PassEnd::Done, all_delivered }
    }

    /// Whether the writer (opened if a panic discarded it) writes several
    /// batches in one transaction.
    fn writes_batches_together(&mut self) -> Result<bool, PluginError> {
        if self.writer.is_none() {
            self.open_writer()?;
            tracing::info!("{} writer reopened", self.worker.writers.name());
        }
        Ok(self.writer.as_ref().expect("opened above").writes_batches_together())
    }

    /// For a writer that writes one batch per transaction: sets aside the
    /// items of events that write other rows than their first target's
    /// (they would commit in two transactions), and returns the rest.
    fn refuse_split_events(
        &self,
        group: Vec<Item>,
        settlements: &mut Vec<Settlement>,
        held: &mut HashSet<String>,
    ) -> Vec<Item> {
        let (split, group): (Vec<Item>, Vec<Item>) = group.into_iter().partition(|i| !i.event.extra_keys.is_empty());
        if !split.is_empty() {
            // Not delivered: `pass` counts it through the settlement.
            let error = PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!(
                    "this event writes several HIS rows, which must commit in one transaction, and the {} plugin \
                     cannot write several batches in one transaction: upgrade the plugin (plugin-api 1.2 or newer), \
                     then replay the event",
                    self.worker.writers.name()
                ),
            );
            self.set_aside(&split, &error, settlements, held);
        }
        group
    }

    /// Records the outcomes so far, and waits until they are on disk.
    fn record_segment(&mut self, settlements: &mut Vec<Settlement>) -> bool {
        let recorded = self.worker.committer.settle(std::mem::take(settlements)).and_then(|reply| reply.wait());
        if let Err(e) = &recorded {
            tracing::error!("cannot record delivery outcomes: {e}");
        }
        recorded.is_ok()
    }

    /// Writes a group of items (whole events, in receive order) in one
    /// call, one batch per event type and target, and decides what a
    /// failure means:
    /// - the connection, a timeout, the login or the settings: the HIS is
    ///   unusable now, so the pass ends and the worker backs off as a whole
    ///   (one probe per back-off, not a storm);
    /// - anything else is about an event, retryable (a lock timeout, a
    ///   deadlock) or not: that event waits for a retry or fails, and the
    ///   others are written. The plugin names the row (counted across the
    ///   call's batches); otherwise each event is tried alone, or, for a
    ///   wrong table or column, each shape of event (the same targets) is
    ///   tried apart and a shape that fails fails whole. One row locked by
    ///   another HIS session holds back that row's events only;
    /// - a panic on one event: it is tried once more on a fresh writer
    ///   (the panic may have come from the writer's state); a second panic
    ///   sets it aside.
    ///
    /// Failed events are kept, with the database's message, for replay.
    fn deliver(&mut self, items: Vec<Item>, settlements: &mut Vec<Settlement>, held: &mut HashSet<String>) -> PassEnd {
        let mut batches = batches(items);
        let mut error = match self.write(&mut batches) {
            Ok(()) => return self.delivered(&batches, settlements),
            Err(error) => error,
        };
        let events = event_ids(&batches).len();
        if error.kind == ErrorKind::PANIC && events == 1 {
            // A panic may come from the writer's state (a connection left
            // half-used), not from the event: `write` has dropped that
            // writer, so the event is tried once more on a fresh one before
            // it is held to be at fault.
            tracing::warn!(
                event_id = batches[0][0].event.id,
                "the {} plugin panicked on one event; trying that event once more on a fresh writer",
                self.worker.writers.name()
            );
            error = match self.write(&mut batches) {
                Ok(()) => return self.delivered(&batches, settlements),
                Err(again) => again,
            };
        }
        let named = error.row.into_option().and_then(|r| usize::try_from(r).ok()).and_then(|r| row_at(&batches, r));
        let items: Vec<Item> = batches.into_values().flatten().collect();
        if UNUSABLE.contains(&error.kind) {
            tracing::warn!("writing to the HIS failed: {error}; {} events wait and will be retried", events);
            // Not the events' fault (a login refused after a password change,
            // a database failing over): they wait, whatever the plugin said.
            let systemic = PluginError { retryable: true, ..error.clone() };
            self.set_aside(&items, &systemic, settlements, held);
            return PassEnd::Unreachable(error);
        }
        if events == 1 {
            self.set_aside(&items, &error, settlements, held);
            return PassEnd::Done;
        }
        // One event is at fault. If the plugin named its row, set the event
        // aside and write the rest together.
        if let Some(id) = named {
            let (bad, rest): (Vec<Item>, Vec<Item>) = items.into_iter().partition(|i| i.event.id == id);
            self.set_aside(&bad, &error, settlements, held);
            return self.deliver(rest, settlements, held);
        }
        // Otherwise: a wrong table or column fails every event of the same
        // shape; anything else, each event alone.
        let parts = if error.kind == ErrorKind::SCHEMA { by_shape(items) } else { by_event(items) };
        if parts.len() == 1 {
            self.set_aside(&parts[0], &error, settlements, held);
            return PassEnd::Done;
        }
        for part in parts {
            if let PassEnd::Unreachable(e) = self.deliver(part, settlements, held) {
                return PassEnd::Unreachable(e);
            }
        }
        PassEnd::Done
    }

    /// Records `batches` as delivered.
    /// An event whose mapping has several targets is delivered with its
    /// last row (its earlier rows were written before it, in the same call
    /// or, one batch per call, an earlier one; or it would be held); until
    /// then it has no outcome, and stays pending if the pass ends first.
    fn delivered(&self, batches: &Batches, settlements: &mut Vec<Settlement>) -> PassEnd {
        for ((event_type, _), batch) in batches {
            let done = || batch.iter().filter(|i| i.last);
            settlements.extend(done().map(|i| Settlement::Delivered { id: i.event.id }));
            self.worker.metrics.delivered(event_type, done().map(|i| i.event.received_at.as_str()));
            let truncated: u64 = batch.iter().map(|i| u64::from(i.row.truncated)).sum();
            if truncated > 0 && self.worker.metrics.truncated(event_type, truncated) {
                tracing::warn!(
                    "events of type {event_type}: a truncate transform cut {truncated} value(s) to fit; \
                     buktor_values_truncated_total at /metrics counts them (logged once)"
                );
            }
        }
        PassEnd::Done
    }

    /// One call into the plugin with every batch, reopening the writer
    /// first if a panic discarded it.
    ///
    /// The rows move into the batches, not copied; they come back to the
    /// items only if the write fails, for the handling in `deliver`.
    fn write(&mut self, batches: &mut Batches) -> Result<(), PluginError> {
        if self.writer.is_none() {
            self.open_writer()?;
            tracing::info!("{} writer reopened", self.worker.writers.name());
        }
        let writer = self.writer.as_mut().expect("opened above");
        let mut widths: Vec<Vec<usize>> = Vec::with_capacity(batches.len());
        let mut sent: Vec<WriteBatch> = Vec::with_capacity(batches.len());
        for ((event_type, target), items) in batches.iter_mut() {
            let mapping = self.worker.mappings.target(event_type, *target).expect("only mapped events are batched");
            widths.push(items.iter().map(|i| i.row.values.len()).collect());
            sent.push(mapping.batch(items.iter_mut().map(|i| &mut i.row)));
        }
        let plugin_started = Instant::now();
        let result = writer.write_all(&sent, self.worker.deadline);
        if result.is_err() {
            for ((batch, items), widths) in sent.into_iter().zip(batches.values_mut()).zip(widths) {
                let mut values = batch.into_values().into_iter();
                for (item, width) in items.iter_mut().zip(widths) {
                    item.row.values = values.by_ref().take(width).collect();
                }
            }
        }
        self.heard(result.as_ref().err());
        tracing::trace!(
            batches = batches.len(),
            rows = batches.values().map(Vec::len).sum::<usize>(),
            plugin_ms = plugin_started.elapsed().as_secs_f64() * 1e3,
            "plugin write"
        );
        if let Err(e) = &result
            && e.kind == ErrorKind::PANIC
        {
            tracing::error!(
                "the {} plugin panicked: {e}; its writer is discarded and will be reopened",
                self.worker.writers.name()
            );
            self.writer = None;
        }
        result
    }

    /// Records `error` as the outcome of each event of `items` (once per
    /// event), and holds back later events of their rows for the rest of
    /// the pass.
    fn set_aside(
        &self,
        items: &[Item],
        error: &PluginError,
        settlements: &mut Vec<Settlement>,
        held: &mut HashSet<String>,
    ) {
        let mut seen = HashSet::new();
        for item in items {
            if seen.insert(item.event.id) {
                settlements.push(self.failure_outcome(item, error));
            }
            held.extend(item.event.keys().map(str::to_string));
        }
    }

    /// What a failed write means for one event: a retryable error is tried
    /// again after a growing delay, for as long as it takes; a permanent one
    /// marks the event failed at once (one warning, not one per retry). A
    /// failed event holds back later events for its rows until replayed.
    fn failure_outcome(&self, item: &Item, error: &PluginError) -> Settlement {
        let recorded = journal_text(&format!(
            "{} error{}: {error}",
            error.kind.name(),
            if error.retryable { " (retryable)" } else { "" }
        ));
        if !error.retryable {
            let table = self.worker.mappings.target(&item.event.event_type, item.target).map_or("", |m| &m.table);
            tracing::warn!(
                event_id = item.event.id,
                event_type = %item.event.event_type,
                "event failed permanently writing to {table}: {error} [{}]; it is kept as failed, and later events \
                 for its rows wait until it is replayed",
                error.kind.name(),
            );
            self.worker.metrics.failed(&item.event.event_type);
            return Settlement::Failed { id: item.event.id, error: recorded };
        }
        let delay = self.worker.backoff.delay(item.event.attempts + 1);
        Settlement::RetryLater {
            id: item.event.id,
            error: recorded,
            next_attempt_at_ms: self.now_ms() + delay.as_millis() as i64,
        }
    }
}

/// The event of row `row`, counted across `batches` in order.
fn row_at(batches: &Batches, row: usize) -> Option<i64> {
    batches.values().flatten().nth(row).map(|i| i.event.id)
}

/// The distinct events of `batches`.
fn event_ids(batches: &Batches) -> HashSet<i64> {
    batches.values().flatten().map(|i| i.event.id).collect()
}

/// `items` cut into one part per event, in order.
fn by_event(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut parts: IndexMap<i64, Vec<Item>> = IndexMap::new();
    for item in items {
        parts.entry(item.event.id).or_default().push(item);
    }
    parts.into_values().collect()
}

/// `items` cut into one part per shape of event: the event type and
/// targets it writes. A wrong table or column fails a shape whole.
fn by_shape(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut shapes: IndexMap<(String, Vec<usize>), Vec<Item>> = IndexMap::new();
    for event in by_event(items) {
        let shape = (event[0].event.event_type.clone(), event.iter().map(|i| i.target).collect());
        shapes.entry(shape).or_default().extend(event);
    }
    shapes.into_values().collect()
}

/// `items` (whole events, in receive order) as one batch per event type
/// and target, first targets first: an event's rows go in target order,
/// and each batch keeps receive order.
fn batches(items: Vec<Item>) -> Batches {
    let mut batches: Batches = IndexMap::new();
    for item in items {
        // The type's name is copied once per batch, not once per event.
        match batches.get_index_of(&BatchKey(&item.event.event_type, item.target)) {
            Some(at) => batches[at].push(item),
            None => {
                batches.insert((item.event.event_type.clone(), item.target), vec![item]);
            }
        }
    }
    // Stable: otherwise as received.
    batches.sort_by(|(_, a), _, (_, b), _| a.cmp(b));
    batches
}

/// An error as stored in the journal's `last_error`: at most
/// [`MAX_ERROR_CHARS`] characters, since a database may quote a whole
/// statement or value back.
fn journal_text(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}… (cut)", &error[..cut]),
        None => error.to_string(),
    }
}

/// The longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 2000;

fn is_held(held: &HashSet<String>, item: &Item) -> bool {
    !held.is_empty() && item.event.keys().any(|k| held.contains(k))
}

/// A batch's key, borrowed: hashes as `(String, usize)` does.
#[derive(Hash)]
struct BatchKey<'a>(&'a str, usize);

impl indexmap::Equivalent<(String, usize)> for BatchKey<'_> {
    fn equivalent(&self, key: &(String, usize)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Cuts items, in receive order, into segments in which no HIS row (event
/// key, or another key of an event) appears twice. Delivering segment
/// after segment keeps every row's updates in order; within a segment,
/// cut into one batch per event type and target ([`batches`]), the
/// batches touch different rows, except an event's own rows, whose
/// batches go in target order. An event's items (side by side) are never
/// cut apart.
fn segments(items: Vec<Item>) -> Vec<Vec<Item>> {
    // Where each segment starts, found with borrowed keys (a pass of a
    // backlog has hundreds of items; copying each key twice showed up in
    // profiles). An event without a key is a row of its own.
    let mut starts = Vec::new();
    {
        let mut keys: HashSet<&str> = HashSet::with_capacity(items.len());
        let mut index = 0;
        while index < items.len() {
            let event = &items[index].event;
            let end = index + items[index..].iter().take_while(|i| i.event.id == event.id).count();
            match (event.event_key.as_deref(), event.extra_keys.is_empty()) {
                // One row (most events): one probe.
                (Some(key), true) => {
                    if !keys.insert(key) {
                        starts.push(index);
                        keys.clear();
                        keys.insert(key);
                    }
                }
                _ => {
                    if event.keys().any(|key| keys.contains(key)) {
                        starts.push(index);
                        keys.clear();
                    }
                    keys.extend(event.keys());
                }
            }
            index = end;
        }
    }
    let mut segments: Vec<Vec<Item>> = vec![Vec::new()];
    let mut starts = starts.into_iter().peekable();
    for (index, item) in items.into_iter().enumerate() {
        if starts.next_if_eq(&index).is_some() {
            segments.push(Vec::new());
        }
        segments.last_mut().expect("never empty").push(item);
    }
    segments.retain(|s| !s.is_empty());
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, event_type: &str, key: &str) -> Item {
        Item {
            event: PendingEvent {
                id,
                event_type: event_type.into(),
                payload: "{}".into(),
                received_at: String::new(),
                attempts: 0,
                event_key: Some(key.into()),
                extra_keys: Vec::new(),
            },
            target: 0,
            last: true,
            row: Row { values: Vec::new(), absent: Vec::new(), truncated: 0, key: None },
        }
    }

    /// Segments, each cut into its batches.
    fn segmented(items: Vec<Item>) -> Vec<Batches> {
        segments(items).into_iter().map(batches).collect()
    }

    fn ids(segments: &[Batches]) -> Vec<Vec<(&str, Vec<i64>)>> {
        segments
            .iter()
            .map(|s| s.iter().map(|((t, _), b)| (t.as_str(), b.iter().map(|i| i.event.id).collect())).collect())
            .collect()
    }

    #[test]
    fn an_event_that_writes_several_rows_starts_a_segment_if_any_was_written_before_it() {
        // Event 2 writes rows j and k (a payment and its appointment):
        // after event 1 (row k) it starts a segment, both its items with it;
        // event 3 (row j, another type) follows it into the next.
        let two_rows = |id, target, last| Item {
            event: PendingEvent { extra_keys: vec!["k".into()], ..item(id, "pay", "j").event },
            target,
            last,
            ..item(id, "pay", "j")
        };
        let items = vec![item(1, "visit", "k"), two_rows(2, 0, false), two_rows(2, 1, true), item(3, "pay2", "j")];
        assert_eq!(
            ids(&segmented(items)),
            [vec![("visit", vec![1])], vec![("pay", vec![2]), ("pay", vec![2])], vec![("pay2", vec![3])]]
        );
    }

    #[test]
    fn an_events_targets_share_its_segment_and_go_in_target_order() {
        // Event 1 writes targets 0 and 1 of "a"; event 2 (another row) only
        // target 0; event 3 is event 1's row again.
        let two = |id, target, last| Item { target, last, ..item(id, "a", "k") };
        let items = vec![item(2, "a", "j"), two(1, 0, false), two(1, 1, true), two(3, 1, true)];
        let segments = segmented(items);
        let shape: Vec<Vec<(usize, Vec<i64>)>> = segments
            .iter()
            .map(|s| s.iter().map(|((_, t), b)| (*t, b.iter().map(|i| i.event.id).collect())).collect())
            .collect();
        assert_eq!(shape, [vec![(0, vec![2, 1]), (1, vec![1])], vec![(1, vec![3])]]);
    }

    #[test]
    fn long_errors_are_cut_for_the_journal() {
        assert_eq!(journal_text("short"), "short");
        let long = "é".repeat(5000);
        let cut = journal_text(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + "… (cut)".chars().count());
    }

    #[test]
    fn a_repeated_row_starts_a_new_segment() {
        let items =
            vec![item(1, "a", "k1"), item(2, "a", "k2"), item(3, "a", "k1"), item(4, "a", "k3"), item(5, "a", "k1")];
        assert_eq!(ids(&segmented(items)), [vec![("a", vec![1, 2])], vec![("a", vec![3, 4])], vec![("a", vec![5])]]);
    }

    #[test]
    fn two_event_types_on_one_row_keep_receive_order() {
        // created(k), updated(k), created(k): three segments, never 1, 3, 2.
        let items =
            vec![item(1, "created", "k"), item(2, "updated", "k"), item(3, "created", "k"), item(4, "updated", "j")];
        assert_eq!(
            ids(&segmented(items)),
            [vec![("created", vec![1])], vec![("updated", vec![2])], vec![("created", vec![3]), ("updated", vec![4])]]
        );
    }

    #[test]
    fn distinct_rows_of_several_types_share_one_segment() {
        let items = vec![item(1, "a", "k1"), item(2, "b", "j1"), item(3, "a", "k2"), item(4, "b", "j2")];
        assert_eq!(ids(&segmented(items)), [vec![("a", vec![1, 3]), ("b", vec![2, 4])]]);
    }
}
