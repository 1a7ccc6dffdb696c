//! The invariants, checked after a schedule has settled.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use super::{
    Sent,
    his::{His, RowId},
};
use crate::pipeline::journal::Appended;

/// An event's status at the end; `None` when pruned (only delivered events
/// are pruned).
type Statuses = HashMap<i64, String>;

/// Checks every invariant; the first broken one is the error.
pub(super) fn all(journal: &Connection, sent: &[Sent], his: &His) -> Result<(), String> {
    let ids = stored_once(journal, sent)?;
    let statuses: Statuses = journal
        .prepare("SELECT id, status FROM events")
        .and_then(|mut statement| statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
        .map_err(|e| e.to_string())?;
    never_older(sent, &ids, his)?;
    every_target_written(sent, &ids, &statuses, his)?;
    latest_and_held(sent, &ids, &statuses, his)
}

/// An event that two targets write is delivered only once both rows have
/// committed: one written, the other lost in a crash or a failed batch,
/// must leave the event pending (to be written whole again), never
/// delivered.
fn every_target_written(sent: &[Sent], ids: &HashMap<i64, i64>, statuses: &Statuses, his: &His) -> Result<(), String> {
    for event in sent.iter().filter(|e| e.body.contains(r#""twice":true"#)) {
        let id = ids[&event.seq];
        let delivered = statuses.get(&id).is_none_or(|status| status == "delivered");
        if delivered && !his.second.contains(&event.seq) {
            return Err(format!(
                "event {id} (seq {}) is delivered, but its second target's row never committed",
                event.seq
            ));
        }
    }
    Ok(())
}

/// Each delivery id is stored once within its window: every answer a
/// sender got for one event names one journal id, and no two journaled
/// events carry one event's body. Returns each event's journal id (by
/// `seq`).
fn stored_once(journal: &Connection, sent: &[Sent]) -> Result<HashMap<i64, i64>, String> {
    let mut ids = HashMap::new();
    for event in sent {
        let mut answered = event.answers.iter().map(|a| match a {
            Appended::New(id) | Appended::Duplicate(id) => *id,
        });
        let Some(first) = answered.next() else {
            return Err(format!("seq {} was never acknowledged, even after the faults stopped", event.seq));
        };
        if let Some(other) = answered.find(|&id| id != first) {
            return Err(format!(
                "delivery id {} was stored twice within its window: as event {first} and as event {other}",
                event.delivery_id
            ));
        }
        ids.insert(event.seq, first);
    }
    let mut bodies: HashMap<String, i64> = HashMap::new();
    let rows: Vec<(i64, String)> = journal
        .prepare("SELECT event_id, body FROM payloads")
        .and_then(|mut statement| statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
        .map_err(|e| e.to_string())?;
    for (id, body) in rows {
        if let Some(other) = bodies.insert(body.clone(), id) {
            return Err(format!("one event was journaled twice, as events {other} and {id}: {body}"));
        }
    }
    Ok(ids)
}

/// No HIS row ever moves to an older state: the events whose states a row
/// received, in the order it received them, never go back in receive order
/// (the same state again is no move).
fn never_older(sent: &[Sent], ids: &HashMap<i64, i64>, his: &His) -> Result<(), String> {
    let mut last: HashMap<&(String, String), (i64, i64)> = HashMap::new();
    let by_seq: HashMap<i64, &Sent> = sent.iter().map(|s| (s.seq, s)).collect();
    for (at, (row, seq)) in his.history.iter().enumerate() {
        let id = ids[seq];
        if let Some(&(previous_id, previous_seq)) = last.get(row)
            && id < previous_id
        {
            return Err(format!(
                "row {row:?} moved to an older state at its write {at}: event {id} (seq {seq}, {}) after event \
                 {previous_id} (seq {previous_seq})",
                by_seq[seq].event_type
            ));
        }
        last.insert(row, (id, *seq));
    }
    Ok(())
}

/// The rows `event` writes: its own, and its row of `t3` if it has one.
fn rows_of(event: &Sent) -> impl Iterator<Item = &RowId> {
    std::iter::once(&event.row).chain(event.other_row.as_ref())
}

/// Each row's events (journal id, seq), in receive order.
fn by_row<'a>(sent: &'a [Sent], ids: &HashMap<i64, i64>) -> BTreeMap<&'a RowId, Vec<(i64, i64)>> {
    let mut rows: BTreeMap<&RowId, Vec<(i64, i64)>> = BTreeMap::new();
    for event in sent {
        for row in rows_of(event) {
            rows.entry(row).or_default().push((ids[&event.seq], event.seq));
        }
    }
    for events in rows.values_mut() {
        events.sort_unstable();
    }
    rows
}

/// Walking the events in receive order: a failed event (only refused
/// events fail) holds back every later event of each of its rows, and so
/// does an event held back in turn (a held event that writes two rows
/// holds both); held events are pending, and every other event is
/// delivered, or unmapped because a newer event of its row superseded it.
/// Each row ends at the state of its latest delivered event.
fn latest_and_held(sent: &[Sent], ids: &HashMap<i64, i64>, statuses: &Statuses, his: &His) -> Result<(), String> {
    let status_of = |id: i64| statuses.get(&id).map_or("delivered (pruned)", String::as_str);
    let rows = by_row(sent, ids);
    let mut events: Vec<(i64, &Sent)> = sent.iter().map(|e| (ids[&e.seq], e)).collect();
    events.sort_unstable_by_key(|(id, _)| *id);
    // Each blocked row, with the event that blocked it first.
    let mut blocked: HashMap<&RowId, i64> = HashMap::new();
    let mut expected: HashMap<&RowId, i64> = HashMap::new();
    for (id, event) in events {
        let seq = event.seq;
        let by = rows_of(event).find_map(|row| blocked.get(row).map(|&by| (row, by)));
        match (status_of(id), by) {
            ("failed", _) if !his.poison.contains(&seq) => {
                return Err(format!("event {id} (seq {seq}) failed, but the HIS never refused it"));
            }
            ("failed", _) | ("pending", Some(_)) => {
                for row in rows_of(event) {
                    blocked.entry(row).or_insert(id);
                }
            }
            ("unmapped", _) => {
                // Superseded: replay found a newer event of one of its rows
                // delivered or on its way.
                let superseded = rows_of(event)
                    .any(|row| rows[row].iter().any(|&(newer, _)| newer > id && status_of(newer) != "unmapped"));
                if !superseded {
                    return Err(format!("event {id} (seq {seq}) is still unmapped, and no newer event superseded it"));
                }
            }
            ("pending", None) => {
                return Err(format!(
                    "event {id} (seq {seq}) is still pending after everything settled; nothing older of its rows \
                     failed or is held"
                ));
            }
            (other, Some((row, by))) => {
                return Err(format!(
                    "event {id} (seq {seq}) is {other}, but it comes after event {by}, which failed or is held, of \
                     its row {row:?}, and should be held back"
                ));
            }
            (_, None) => {
                for row in rows_of(event) {
                    expected.insert(row, seq);
                }
            }
        }
    }
    for row in rows.keys() {
        let found = his.rows.get(*row).copied();
        let wanted = expected.get(row).copied();
        if found != wanted {
            return Err(format!(
                "row {row:?} ends at seq {found:?}, but its latest event that nothing held back is seq {wanted:?}"
            ));
        }
    }
    Ok(())
}
