//! The invariants, checked after a schedule has settled.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use super::{Sent, his::His};
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
    for (row, events) in by_row(sent, &ids) {
        latest_and_held(&row, &events, &statuses, his)?;
    }
    Ok(())
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

/// Each row's events (journal id, seq), in receive order.
fn by_row(sent: &[Sent], ids: &HashMap<i64, i64>) -> BTreeMap<(String, String), Vec<(i64, i64)>> {
    let mut rows: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for event in sent {
        rows.entry(event.row.clone()).or_default().push((ids[&event.seq], event.seq));
    }
    for events in rows.values_mut() {
        events.sort_unstable();
    }
    rows
}

/// A row ends at the state of its latest event before its first failed
/// one; that failed event holds back exactly the row's later events (they
/// are pending), and nothing else is held. Only refused events fail, and an
/// event left unmapped is one that a newer written event superseded.
fn latest_and_held(
    row: &(String, String),
    events: &[(i64, i64)],
    statuses: &Statuses,
    his: &His,
) -> Result<(), String> {
    let status_of = |id: i64| statuses.get(&id).map_or("delivered (pruned)", String::as_str);
    let first_failed = events.iter().find(|(id, _)| status_of(*id) == "failed").map(|&(id, _)| id);
    let mut expected = None;
    for &(id, seq) in events {
        let status = status_of(id);
        match (first_failed, status) {
            (_, "failed") if !his.poison.contains(&seq) => {
                return Err(format!("event {id} (seq {seq}) of row {row:?} failed, but the HIS never refused it"));
            }
            (_, "unmapped") => {
                // Superseded: replay found a newer event of its row
                // delivered or on its way.
                if !events.iter().any(|&(newer, _)| newer > id && status_of(newer) != "unmapped") {
                    return Err(format!(
                        "event {id} of row {row:?} is still unmapped, and no newer event superseded it"
                    ));
                }
            }
            (Some(failed), "pending") if id > failed => {}
            (Some(failed), other) if id > failed => {
                return Err(format!(
                    "event {id} of row {row:?} is {other}, but it comes after the failed event {failed} of its row \
                     and should be held back"
                ));
            }
            (_, "pending") => {
                return Err(format!(
                    "event {id} (seq {seq}) of row {row:?} is still pending after everything settled; nothing \
                     older of its row failed"
                ));
            }
            (_, "failed") => {}
            _ => expected = Some((id, seq)),
        }
    }
    let found = his.rows.get(row).copied();
    if found != expected.map(|(_, seq)| seq) {
        return Err(format!(
            "row {row:?} ends at seq {found:?}, but its latest event before any failure is {expected:?} (id, seq)"
        ));
    }
    Ok(())
}
