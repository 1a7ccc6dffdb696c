//! One pass of the worker: a window of due events cut into segments in
//! which no HIS row appears twice, each segment written as one batch per
//! event type, and every event's outcome (delivered, retry later, set
//! aside) decided from what the writer said.
//!
//! A segment's outcomes are in the journal before the next segment is
//! written: the next segment writes a newer state of one of its rows, and a
//! crash between the two must not make the restarted worker write the
//! older state again after the newer one.

use std::{collections::HashSet, time::Instant};

use abi_stable::std_types::{RString, RVec};
use his_plugin_api::{ErrorKind, PluginError, WriteBatch};
use indexmap::IndexMap;

use super::{State, UNUSABLE};
use crate::pipeline::{
    journal::{PendingEvent, Settlement},
    lookahead::Prepared,
    mapping::{EventMapping, MappingError, Row},
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

impl State {
    /// Delivers one window of due events; returns their outcomes.
    pub(super) fn pass(&mut self, events: Vec<Prepared>) -> Passed {
        let mut settlements = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        // Keys whose earlier event failed in this pass: later events for the
        // same row wait behind it.
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
                    // by its last one (see `delivered`): a failed earlier
                    // one holds the rest through the row's hold.
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
                    if let Some(key) = &event.event_key {
                        held.insert(key.clone());
                    }
                    settlements.push(Settlement::Failed { id: event.id, error: e.to_string() });
                }
            }
        }
        let mut all_delivered = settlements.is_empty();
        let segments = segments(items);
        let last = segments.len().saturating_sub(1);
        for (index, segment) in segments.into_iter().enumerate() {
            for ((event_type, target), batch) in segment {
                let batch: Vec<Item> = batch.into_iter().filter(|i| !is_held(&held, i)).collect();
                if batch.is_empty() {
                    all_delivered = false;
                    continue;
                }
                let mapping =
                    self.worker.mappings.target(&event_type, target).expect("only mapped events are batched").clone();
                let before = settlements.len();
                let end = self.deliver(&mapping, batch, &mut settlements, &mut held);
                all_delivered &= settlements[before..].iter().all(|s| matches!(s, Settlement::Delivered { .. }));
                if let PassEnd::Unreachable(e) = end {
                    return Passed { unrecorded: settlements, end: PassEnd::Unreachable(e), all_delivered: false };
                }
            }
            if index < last && !settlements.is_empty() && !self.record_segment(&mut settlements) {
                return Passed { unrecorded: Vec::new(), end: PassEnd::JournalFailed, all_delivered: false };
            }
        }
        Passed { unrecorded: settlements, end: PassEnd::Done, all_delivered }
    }

    /// Records the outcomes so far, and waits until they are on disk.
    fn record_segment(&mut self, settlements: &mut Vec<Settlement>) -> bool {
        let recorded = self.worker.committer.settle(std::mem::take(settlements)).and_then(|reply| reply.wait());
        if let Err(e) = &recorded {
            tracing::error!("cannot record delivery outcomes: {e}");
        }
        recorded.is_ok()
    }

    /// Writes one batch, and decides what its failure means:
    /// - the connection, a timeout, the login or the settings: the HIS is
    ///   unusable now, so the pass ends and the worker backs off as a whole
    ///   (one probe per back-off, not a storm);
    /// - a wrong table or column: the whole batch fails (every row has the
    ///   same columns), other tables go on;
    /// - anything else is about a row, retryable (a lock timeout, a
    ///   deadlock) or not: that row waits for a retry or fails (the plugin
    ///   may say which row; otherwise each row is tried alone), and the
    ///   others are written. One row locked by another HIS session holds
    ///   back that row's events only;
    /// - a panic on one row: the row is tried once more on a fresh writer
    ///   (the panic may have come from the writer's state); a second panic
    ///   sets it aside.
    ///
    /// Failed events are kept, with the database's message, for replay.
    fn deliver(
        &mut self,
        mapping: &EventMapping,
        mut batch: Vec<Item>,
        settlements: &mut Vec<Settlement>,
        held: &mut HashSet<String>,
    ) -> PassEnd {
        let mut error = match self.write(mapping, &mut batch) {
            Ok(()) => return self.delivered(&batch, settlements),
            Err(error) => error,
        };
        if error.kind == ErrorKind::PANIC && batch.len() == 1 {
            // A panic may come from the writer's state (a connection left
            // half-used), not from the row: `write` has dropped that writer,
            // so the row is tried once more on a fresh one before it is
            // held to be at fault.
            tracing::warn!(
                event_id = batch[0].event.id,
                "the {} plugin panicked on one row; trying that row once more on a fresh writer",
                self.worker.writers.name()
            );
            error = match self.write(mapping, &mut batch) {
                Ok(()) => return self.delivered(&batch, settlements),
                Err(again) => again,
            };
        }
        if UNUSABLE.contains(&error.kind) {
            tracing::warn!(
                "writing to {} failed: {error}; {} events wait and will be retried",
                mapping.table,
                batch.len()
            );
            // Not the events' fault (a login refused after a password change,
            // a database failing over): they wait, whatever the plugin said.
            let systemic = PluginError { retryable: true, ..error.clone() };
            self.set_aside(&batch, &systemic, mapping, settlements, held);
            return PassEnd::Unreachable(error);
        }
        if error.kind == ErrorKind::SCHEMA || batch.len() == 1 {
            self.set_aside(&batch, &error, mapping, settlements, held);
            return PassEnd::Done;
        }
        // One row is at fault. If the plugin named it, set it aside and
        // write the rest together; otherwise try each row alone.
        let named = error.row.into_option().and_then(|r| usize::try_from(r).ok()).filter(|&r| r < batch.len());
        if let Some(row) = named {
            let bad = batch.remove(row);
            self.set_aside(std::slice::from_ref(&bad), &error, mapping, settlements, held);
            return self.deliver(mapping, batch, settlements, held);
        }
        for item in batch {
            if let PassEnd::Unreachable(e) = self.deliver(mapping, vec![item], settlements, held) {
                return PassEnd::Unreachable(e);
            }
        }
        PassEnd::Done
    }

    /// Records `batch` as delivered.
    /// An event whose mapping has several targets is delivered with its
    /// last row (its earlier rows were written before it, or it would be
    /// held); until then it has no outcome, and stays pending if the pass
    /// ends first.
    fn delivered(&self, batch: &[Item], settlements: &mut Vec<Settlement>) -> PassEnd {
        let done = || batch.iter().filter(|i| i.last);
        settlements.extend(done().map(|i| Settlement::Delivered { id: i.event.id }));
        let event_type = batch.first().map_or("", |i| i.event.event_type.as_str());
        self.worker.metrics.delivered(event_type, done().map(|i| i.event.received_at.as_str()));
        let truncated: u64 = batch.iter().map(|i| u64::from(i.row.truncated)).sum();
        if truncated > 0 && self.worker.metrics.truncated(event_type, truncated) {
            tracing::warn!(
                "events of type {event_type}: a truncate transform cut {truncated} value(s) to fit; \
                 buktor_values_truncated_total at /metrics counts them (logged once)"
            );
        }
        PassEnd::Done
    }

    /// One call into the plugin, reopening the writer first if a panic
    /// discarded it.
    ///
    /// The rows move into the batch, not copied; they come back to `items`
    /// only if the write fails, for the row-by-row handling in `deliver`.
    fn write(&mut self, mapping: &EventMapping, items: &mut [Item]) -> Result<(), PluginError> {
        if self.writer.is_none() {
            self.open_writer()?;
            tracing::info!("{} writer reopened", self.worker.writers.name());
        }
        let writer = self.writer.as_mut().expect("opened above");
        let widths: Vec<usize> = items.iter().map(|i| i.row.values.len()).collect();
        let mut values = RVec::with_capacity(widths.iter().sum());
        for item in items.iter_mut() {
            values.extend(std::mem::take(&mut item.row.values));
        }
        let mut batch = WriteBatch::new(
            mapping.table.as_str(),
            mapping.action,
            mapping.columns.iter().map(|c| RString::from(c.as_str())).collect(),
            mapping.key_columns.iter().map(|c| RString::from(c.as_str())).collect(),
            values,
        );
        if items.iter().any(|i| !i.row.absent.is_empty()) {
            batch = batch.with_presence(|row, column| !items[row].row.absent.contains(&column));
        }
        let plugin_started = Instant::now();
        let result = writer.write(&batch, self.worker.deadline);
        if result.is_err() {
            let mut values = batch.into_values().into_iter();
            for (item, width) in items.iter_mut().zip(widths) {
                item.row.values = values.by_ref().take(width).collect();
            }
        }
        self.heard(result.as_ref().err());
        tracing::trace!(rows = items.len(), plugin_ms = plugin_started.elapsed().as_secs_f64() * 1e3, "plugin write");
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

    /// Records `error` as the outcome of each of `items`, and holds back
    /// later events of their rows for the rest of the pass.
    fn set_aside(
        &self,
        items: &[Item],
        error: &PluginError,
        mapping: &EventMapping,
        settlements: &mut Vec<Settlement>,
        held: &mut HashSet<String>,
    ) {
        for item in items {
            settlements.push(self.failure_outcome(item, error, mapping));
            hold(held, item);
        }
    }

    /// What a failed write means for one event: a retryable error is tried
    /// again after a growing delay, for as long as it takes; a permanent one
    /// marks the event failed at once (one warning, not one per retry). A
    /// failed event holds back later events for its row until replayed.
    fn failure_outcome(&self, item: &Item, error: &PluginError, mapping: &EventMapping) -> Settlement {
        let recorded = journal_text(&format!(
            "{} error{}: {error}",
            error.kind.name(),
            if error.retryable { " (retryable)" } else { "" }
        ));
        if !error.retryable {
            tracing::warn!(
                event_id = item.event.id,
                event_type = %item.event.event_type,
                "event failed permanently writing to {}: {error} [{}]; it is kept as failed, and later events \
                 for its row wait until it is replayed",
                mapping.table,
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
    item.event.event_key.as_ref().is_some_and(|k| held.contains(k))
}

fn hold(held: &mut HashSet<String>, item: &Item) {
    if let Some(key) = &item.event.event_key {
        held.insert(key.clone());
    }
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
/// key) appears twice, and each segment into one batch per event type and
/// target. Delivering segment after segment keeps every row's updates in
/// order; within a segment the batches touch different rows, except the
/// rows of one event's several targets, whose batches go in target order.
fn segments(items: Vec<Item>) -> Vec<IndexMap<(String, usize), Vec<Item>>> {
    // Where each segment starts, found with borrowed keys (a pass of a
    // backlog has hundreds of items; copying each key twice showed up in
    // profiles). An event without a key is a row of its own; the items of
    // one event (one per target, side by side) are one row.
    let mut starts = Vec::new();
    {
        let mut keys: HashSet<&str> = HashSet::with_capacity(items.len());
        let mut previous_id = None;
        for (index, item) in items.iter().enumerate() {
            let same_event = previous_id.replace(item.event.id) == Some(item.event.id);
            let Some(key) = item.event.event_key.as_deref() else { continue };
            if !keys.insert(key) && !same_event {
                starts.push(index);
                keys.clear();
                keys.insert(key);
            }
        }
    }
    let mut segments: Vec<IndexMap<(String, usize), Vec<Item>>> = vec![IndexMap::new()];
    let mut starts = starts.into_iter().peekable();
    for (index, item) in items.into_iter().enumerate() {
        if starts.next_if_eq(&index).is_some() {
            segments.push(IndexMap::new());
        }
        let segment = segments.last_mut().expect("never empty");
        // The type's name is copied once per batch, not once per event.
        match segment.get_index_of(&BatchKey(&item.event.event_type, item.target)) {
            Some(at) => segment[at].push(item),
            None => {
                segment.insert((item.event.event_type.clone(), item.target), vec![item]);
            }
        }
    }
    for segment in &mut segments {
        // An event's first target before its second (stable: otherwise as
        // received).
        segment.sort_by(|(_, a), _, (_, b), _| a.cmp(b));
    }
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
            },
            target: 0,
            last: true,
            row: Row { values: Vec::new(), absent: Vec::new(), truncated: 0 },
        }
    }

    fn ids(segments: &[IndexMap<(String, usize), Vec<Item>>]) -> Vec<Vec<(&str, Vec<i64>)>> {
        segments
            .iter()
            .map(|s| s.iter().map(|((t, _), b)| (t.as_str(), b.iter().map(|i| i.event.id).collect())).collect())
            .collect()
    }

    #[test]
    fn an_events_targets_share_its_segment_and_go_in_target_order() {
        // Event 1 writes targets 0 and 1 of "a"; event 2 (another row) only
        // target 0; event 3 is event 1's row again.
        let two = |id, target, last| Item { target, last, ..item(id, "a", "k") };
        let items = vec![item(2, "a", "j"), two(1, 0, false), two(1, 1, true), two(3, 1, true)];
        let segments = segments(items);
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
        assert_eq!(ids(&segments(items)), [vec![("a", vec![1, 2])], vec![("a", vec![3, 4])], vec![("a", vec![5])]]);
    }

    #[test]
    fn two_event_types_on_one_row_keep_receive_order() {
        // created(k), updated(k), created(k): three segments, never 1, 3, 2.
        let items =
            vec![item(1, "created", "k"), item(2, "updated", "k"), item(3, "created", "k"), item(4, "updated", "j")];
        assert_eq!(
            ids(&segments(items)),
            [vec![("created", vec![1])], vec![("updated", vec![2])], vec![("created", vec![3]), ("updated", vec![4])]]
        );
    }

    #[test]
    fn distinct_rows_of_several_types_share_one_segment() {
        let items = vec![item(1, "a", "k1"), item(2, "b", "j1"), item(3, "a", "k2"), item(4, "b", "j2")];
        assert_eq!(ids(&segments(items)), [vec![("a", vec![1, 3]), ("b", vec![2, 4])]]);
    }
}
