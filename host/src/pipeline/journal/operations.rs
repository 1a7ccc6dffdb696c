//! What an operator does with the journal: list events, replay failed or
//! unmapped ones, and prune old ones. Shared by the command line (`events`, `replay`) and
//! the admin HTTP routes, each with a connection of its own (WAL lets it
//! work beside the running middleware).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::pipeline::{
    journal::Status,
    mapping::{EventKeys, Mappings, Members},
};

/// What [`parse_since`] takes, for the message that refuses anything else.
pub const SINCE_FORMS: &str = "a time such as 2026-01-01T00:00:00Z, or a date such as 2026-01-01";

/// A `since` as the journal compares it (UTC, milliseconds, `Z`): an RFC
/// 3339 time in any zone, or a date (its midnight, UTC). `None` for
/// anything else, which the caller refuses: a `since` that matched nothing
/// would look like an empty journal.
pub fn parse_since(text: &str) -> Option<String> {
    let time = match chrono::DateTime::parse_from_rfc3339(text.trim()) {
        Ok(time) => time.to_utc(),
        Err(_) => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)?.and_utc(),
    };
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Which events to list or replay.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Their status.
    pub status: Status,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events received at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many (listing only).
    pub limit: usize,
}

/// One event, as an operator sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    /// The journal id.
    pub id: i64,
    /// When it arrived.
    pub received_at: String,
    /// Its event type.
    pub event_type: String,
    /// pending, delivered, failed or unmapped.
    pub status: String,
    /// The HIS row it writes (table and key values).
    pub key: Option<String>,
    /// Writes tried.
    pub attempts: i64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// For a pending event: the older event of its row it waits behind
    /// (failed, or waiting for a retry).
    pub held_by: Option<i64>,
}

/// Lists events, oldest first.
pub fn list(connection: &Connection, filter: &Filter, now_ms: i64) -> rusqlite::Result<Vec<EventRow>> {
    let mut statement = connection.prepare(
        "SELECT e.id, e.received_at, e.event_type, e.status, e.event_key, e.attempts, e.last_error,
                CASE WHEN e.status = 'pending' THEN MIN(
                    COALESCE((SELECT MIN(f.id) FROM events AS f INDEXED BY events_failed
                              WHERE f.status = 'failed' AND f.event_key = e.event_key AND f.id < e.id), 9223372036854775807),
                    COALESCE((SELECT MIN(w.id) FROM events AS w INDEXED BY events_waiting
                              WHERE w.status = 'pending' AND w.next_attempt_at > 0 AND w.event_key = e.event_key
                                AND w.id < e.id AND w.next_attempt_at > ?5), 9223372036854775807)) END
         FROM events AS e
         WHERE e.status = ?1 AND (?2 IS NULL OR e.event_type = ?2) AND (?3 IS NULL OR e.received_at >= ?3)
         ORDER BY e.id LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![filter.status.as_str(), filter.event_type, filter.since, filter.limit as i64, now_ms],
        |row| {
            let held_by: Option<i64> = row.get(7)?;
            Ok(EventRow {
                id: row.get(0)?,
                received_at: row.get(1)?,
                event_type: row.get(2)?,
                status: row.get(3)?,
                key: row.get(4)?,
                attempts: row.get(5)?,
                last_error: row.get(6)?,
                held_by: held_by.filter(|id| *id != i64::MAX),
            })
        },
    )?;
    rows.collect()
}

/// Which events to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One event.
    Id(i64),
    /// Every failed or unmapped event that matches.
    Matching(Filter),
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Events put back to pending.
    pub replayed: usize,
    /// Unmapped events whose type the mapping still does not know (or
    /// that lack its key): left as they were.
    pub still_unmapped: usize,
    /// Unmapped events left as they were because a newer event of their HIS
    /// row (same key, higher id) may already be in the HIS: delivered,
    /// pending (the worker may be writing it at this moment) or failed (its
    /// write may have committed before the answer was lost). Writing them
    /// could move the row back to an older state. Their data stays in the
    /// journal.
    pub superseded: usize,
}

impl Replayed {
    /// What the operator should know beyond the count replayed, one
    /// sentence each (the `replay` command prints them, `/admin/replay`
    /// sends them as `notes`).
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.still_unmapped > 0 {
            notes.push(format!(
                "{} unmapped event(s) left as they were: their event_type is still not in the mapping (or they lack its key)",
                self.still_unmapped
            ));
        }
        if self.superseded > 0 {
            notes.push(format!(
                "{} unmapped event(s) left as they were, superseded: a newer event of the same HIS row is already delivered (or pending or failed, so it may be), and writing them would put an older state over it. Their data stays in the journal (events --status unmapped, where last_error names the newer event); prune them when no longer needed (prune --status unmapped --before TIME)",
                self.superseded
            ));
        }
        notes
    }
}

/// Why a replay could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No such event.
    #[error("there is no event {0} in the journal")]
    NoSuchEvent(i64),
    /// The event is neither failed nor unmapped.
    #[error("event {0} is {1}: only failed and unmapped events are replayed")]
    NotReplayable(i64, String),
    /// Only failed and unmapped events can be replayed, and pending events
    /// cannot be pruned.
    #[error("this takes --status failed or --status unmapped (prune: also delivered), not {0}")]
    WrongStatus(&'static str),
    /// The journal could not be read or written.
    #[error("journal error: {0}")]
    Journal(#[from] rusqlite::Error),
}

/// The most events one replay transaction puts back: each transaction holds
/// the journal's write lock, which intake's committer waits for at most 5 s
/// (its busy timeout) before it answers 503.
pub const REPLAY_BATCH: usize = 1_000;

/// A failed or unmapped event that a replay may put back.
struct Candidate {
    id: i64,
    event_type: String,
    status: String,
    body: String,
}

impl Candidate {
    const COLUMNS: &'static str = "e.id, e.event_type, e.status, p.body";

    fn of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self { id: row.get(0)?, event_type: row.get(1)?, status: row.get(2)?, body: row.get(3)? })
    }
}

/// Puts failed and unmapped events back to pending, due at `now_ms` (unix
/// ms; the callers pass [`crate::clock::now_ms`], a simulation its own
/// clock). An unmapped event gets its row key from the current mapping; one
/// whose type is still unmapped, or that a newer delivered event of its row
/// supersedes, stays as it is.
///
/// Many events go in transactions of at most [`REPLAY_BATCH`], in ascending
/// id order, so that intake keeps its turn at the journal however long the
/// replay; the events that match when it starts are the ones replayed.
pub fn replay(
    connection: &mut Connection,
    selection: &Selection,
    mappings: &Mappings,
    now_ms: i64,
) -> Result<Replayed, ReplayError> {
    replay_with(connection, selection, mappings, now_ms, |_| {})
}

/// [`replay`], calling `after_batch` with the totals so far after each
/// batch's commit, while the replay holds no lock: the tests write from
/// another connection there, as intake would.
fn replay_with(
    connection: &mut Connection,
    selection: &Selection,
    mappings: &Mappings,
    now_ms: i64,
    mut after_batch: impl FnMut(&Replayed),
) -> Result<Replayed, ReplayError> {
    let mut report = Replayed::default();
    let filter = match selection {
        Selection::Id(id) => {
            // IMMEDIATE: a read-then-write transaction that the committer's
            // commit overtakes cannot upgrade to a write (SQLITE_BUSY at
            // once); taking the write lock first waits for it instead
            // (busy_timeout).
            let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let candidate = transaction
                .query_row(
                    &format!(
                        "SELECT {} FROM events AS e JOIN payloads AS p ON p.event_id = e.id WHERE e.id = ?1",
                        Candidate::COLUMNS
                    ),
                    [id],
                    Candidate::of,
                )
                .optional()?
                .ok_or(ReplayError::NoSuchEvent(*id))?;
            if candidate.status != Status::Failed.as_str() && candidate.status != Status::Unmapped.as_str() {
                return Err(ReplayError::NotReplayable(*id, candidate.status));
            }
            put_back(&transaction, vec![candidate], mappings, now_ms, &mut report)?;
            transaction.commit()?;
            after_batch(&report);
            return Ok(report);
        }
        Selection::Matching(filter) => filter,
    };
    if filter.status != Status::Failed && filter.status != Status::Unmapped {
        return Err(ReplayError::WrongStatus(filter.status.as_str()));
    }
    // Batches in ascending id order keep each row's events in order. The
    // worker writes a row's pending events in id order, and a failed event
    // that a later batch has yet to replay still holds back its row's later
    // events; so an event put back by an earlier batch is pending before any
    // newer one of its row that a later batch puts back, and is written
    // first. (Descending batches would let a row's newer unmapped event,
    // which holds nothing, be written before its older one is put back:
    // then the older state would land over the newer.)
    let mut after_id = 0;
    let mut up_to = None;
    loop {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Only events journaled before the replay started (as one
        // transaction would see them): it ends even while new ones keep failing.
        let last_id: i64 = match up_to {
            Some(last_id) => last_id,
            None => *up_to.insert(transaction.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?),
        };
        let candidates: Vec<Candidate> = transaction
            .prepare(&format!(
                "SELECT {} FROM events AS e JOIN payloads AS p ON p.event_id = e.id
                 WHERE e.status = ?1 AND (?2 IS NULL OR e.event_type = ?2) AND (?3 IS NULL OR e.received_at >= ?3)
                   AND e.id > ?4 AND e.id <= ?5
                 ORDER BY e.id LIMIT ?6",
                Candidate::COLUMNS
            ))?
            .query_map(
                params![
                    filter.status.as_str(),
                    filter.event_type,
                    filter.since,
                    after_id,
                    last_id,
                    REPLAY_BATCH as i64
                ],
                Candidate::of,
            )?
            .collect::<Result<_, _>>()?;
        let count = candidates.len();
        // Events left unmapped keep their status: the next batch starts after them.
        after_id = candidates.last().map_or(after_id, |c| c.id);
        put_back(&transaction, candidates, mappings, now_ms, &mut report)?;
        transaction.commit()?;
        after_batch(&report);
        if count < REPLAY_BATCH {
            return Ok(report);
        }
    }
}

/// Puts `candidates` (ascending ids) back to pending, within the caller's
/// transaction on `transaction`, and counts them in `report`.
fn put_back(
    transaction: &Connection,
    candidates: Vec<Candidate>,
    mappings: &Mappings,
    now_ms: i64,
    report: &mut Replayed,
) -> Result<(), ReplayError> {
    // An unmapped event gets its key from the current mapping (a failed one
    // keeps its own: `None` leaves it).
    let mut keyed: Vec<(i64, Option<EventKeys>)> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        if candidate.status != Status::Unmapped.as_str() {
            keyed.push((candidate.id, None));
            continue;
        }
        let keys = Members::parse(&candidate.body)
            .ok()
            .and_then(|members| mappings.keys_of(&candidate.event_type, &members)?.ok());
        match keys {
            Some(keys) => keyed.push((candidate.id, Some(keys))),
            None => report.still_unmapped += 1,
        }
    }
    // The newest event of each of those keys that may have reached the
    // HIS, in one query: delivered, pending (the worker may be writing it at
    // this moment), failed (its write may have committed before its answer
    // was lost) or pruned after delivery. An unmapped event older than it is
    // superseded. (Unmapped events hold nothing back while unmapped, so a
    // newer event of their row may have been written; writing the old one
    // now could move the row back.)
    let keys: Vec<&str> = keyed.iter().filter_map(|(_, keys)| keys.as_ref()).flat_map(EventKeys::all).collect();
    let newest_delivered: HashMap<String, i64> = if keys.is_empty() {
        HashMap::new()
    } else {
        let keys = serde_json::to_string(&keys).expect("strings serialize");
        transaction
            .prepare(
                "SELECT event_key, MAX(id) FROM (
                     SELECT event_key, id FROM events
                     WHERE status != 'unmapped' AND event_key IN (SELECT value FROM json_each(?1))
                     UNION ALL
                     SELECT k.event_key, k.event_id FROM event_keys AS k JOIN events AS e ON e.id = k.event_id
                     WHERE e.status != 'unmapped' AND k.event_key IN (SELECT value FROM json_each(?1))
                     UNION ALL
                     SELECT event_key, last_id FROM pruned_keys WHERE event_key IN (SELECT value FROM json_each(?1)))
                 GROUP BY event_key",
            )?
            .query_map([keys], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    // Above 0 even on a clock that starts at 0: see below.
    let due_at = now_ms.max(1);
    for (id, keys) in keyed {
        if let Some(keys) = &keys
            && let Some(newer) = keys.all().filter_map(|key| newest_delivered.get(key)).copied().max()
            && newer > id
        {
            transaction.execute(
                "UPDATE events SET last_error = ?2 WHERE id = ?1",
                params![
                    id,
                    format!(
                        "not replayed: event {newer}, received later for the same HIS row, is already delivered (or pending or failed, so it may be), and this older state would overwrite it; prune this event when its data is no longer needed"
                    )
                ],
            )?;
            report.superseded += 1;
            continue;
        }
        // Due now, and counted as retrying (`next_attempt_at` above 0) until
        // it is written: like any retry, it then holds back the later events
        // of its row, also ones that arrive after the replay, which the sync
        // worker would otherwise write first while it reads only new events.
        transaction.execute(
            "UPDATE events SET status = 'pending', next_attempt_at = ?3, event_key = COALESCE(?2, event_key) WHERE id = ?1",
            params![id, keys.as_ref().map(|k| k.primary.as_str()), due_at],
        )?;
        for key in keys.iter().flat_map(|k| &k.extra) {
            transaction
                .execute("INSERT OR IGNORE INTO event_keys (event_key, event_id) VALUES (?1, ?2)", params![key, id])?;
        }
        report.replayed += 1;
    }
    Ok(())
}

/// Removes every event with `status` received before `before` (RFC 3339),
/// with its payload, a bounded transaction at a time; returns how many.
/// Pending events are never pruned: they have not reached the HIS.
pub fn prune(connection: &mut Connection, status: Status, before: &str) -> Result<usize, ReplayError> {
    if status == Status::Pending {
        return Err(ReplayError::WrongStatus(status.as_str()));
    }
    let mut removed = 0;
    loop {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let batch = crate::pipeline::journal::prune(&transaction, status, before)?;
        transaction.commit()?;
        removed += batch;
        if batch < crate::pipeline::journal::PRUNE_BATCH {
            return Ok(removed);
        }
    }
}

/// The last event of `event_type` in the journal, whatever its status:
/// (journal id, body, received_at). `check` works its mapping through it.
pub fn last_of_type(connection: &Connection, event_type: &str) -> rusqlite::Result<Option<(i64, String, String)>> {
    connection
        .prepare_cached(
            "SELECT e.id, p.body, e.received_at FROM events AS e JOIN payloads AS p ON p.event_id = e.id
             WHERE e.event_type = ?1 ORDER BY e.id DESC LIMIT 1",
        )?
        .query_row([event_type], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
}

/// Parses `failed`, `pending`, … into a [`Status`].
pub fn parse_status(text: &str) -> Option<Status> {
    [Status::Pending, Status::Delivered, Status::Failed, Status::Unmapped].into_iter().find(|s| s.as_str() == text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::journal::{self, NewEvent, Settlement};

    #[test]
    fn since_is_a_time_or_a_date_in_the_journals_form_and_anything_else_is_refused() {
        assert_eq!(parse_since("2026-01-02T03:04:05Z").as_deref(), Some("2026-01-02T03:04:05.000Z"));
        assert_eq!(parse_since("2026-01-02T04:04:05.5+01:00").as_deref(), Some("2026-01-02T03:04:05.500Z"));
        assert_eq!(parse_since("2026-01-02").as_deref(), Some("2026-01-02T00:00:00.000Z"));
        for garbage in ["garbage", "';DROP TABLE events", "2026-13-01", "", "yesterday"] {
            assert_eq!(parse_since(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn a_replayed_event_counts_as_retrying_so_that_its_row_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal::open(&dir.path().join("journal.db")).unwrap();
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        let event = NewEvent {
            event_type: "appointment".into(),
            payload: r#"{"event_type": "appointment", "appointment_id": 1}"#.into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            status: Status::Pending,
            event_key: Some(r#"["HIS_appointments","1"]"#.into()),
            extra_keys: Vec::new(),
            delivery_id: None,
            received_ms: 0,
            duplicates_since_ms: 0,
        };
        let [journal::Appended::New(id)] = journal::append_all(&transaction, &[&event]).unwrap()[..] else {
            panic!("appended")
        };
        journal::settle(&transaction, &[Settlement::Failed { id, error: "too long".into() }], "now").unwrap();
        transaction.commit().unwrap();
        assert_eq!(
            journal::holds(&connection).unwrap(),
            journal::Holds { retrying: false, failed: true, extra_keys: false }
        );

        let config = crate::config::parse(include_str!("../../../../his-config.json")).unwrap();
        let replayed =
            replay(&mut connection, &Selection::Id(id), &Mappings::new(&config.mapping), crate::clock::now_ms())
                .unwrap();
        assert_eq!(replayed.replayed, 1);
        // Retrying: the worker stops reading only new events and reads from
        // the start, where this event comes before any later one of its row.
        assert_eq!(
            journal::holds(&connection).unwrap(),
            journal::Holds { retrying: true, failed: false, extra_keys: false }
        );
        let due = journal::due_events(
            &connection,
            crate::clock::now_ms(),
            0,
            journal::Holds { retrying: true, failed: true, extra_keys: true },
            10,
            journal::WINDOW_BYTES,
        )
        .unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [id], "and it is due at once");
    }

    fn mappings() -> Mappings {
        Mappings::new(&crate::config::parse(include_str!("../../../../his-config.json")).unwrap().mapping)
    }

    /// An appointment for row `row`, as intake journals it: pending with the
    /// mapping's key, or unmapped (its type unknown then) without one.
    fn appointment(row: i64, state: &str, status: Status) -> NewEvent {
        let payload = format!(r#"{{"event_type": "appointment", "appointment_id": {row}, "status": "{state}"}}"#);
        let event_key = (status == Status::Pending).then(|| {
            mappings().get("appointment").unwrap().key_of("appointment", &Members::parse(&payload).unwrap()).unwrap()
        });
        NewEvent {
            event_type: "appointment".into(),
            payload,
            received_at: "2026-01-01T00:00:00.000Z".into(),
            status,
            event_key,
            extra_keys: Vec::new(),
            delivery_id: None,
            received_ms: 0,
            duplicates_since_ms: 0,
        }
    }

    /// Appends `events` in one transaction (with `connection`'s busy
    /// timeout, as the committer does) and returns their ids.
    fn append(connection: &mut Connection, events: &[NewEvent]) -> rusqlite::Result<Vec<i64>> {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ids = journal::append_all(&transaction, &events.iter().collect::<Vec<_>>())?
            .into_iter()
            .map(|appended| match appended {
                journal::Appended::New(id) => id,
                journal::Appended::Duplicate(id) => panic!("{id} is no duplicate"),
            })
            .collect();
        transaction.commit()?;
        Ok(ids)
    }

    fn settle(connection: &mut Connection, settlements: Vec<Settlement>) {
        let transaction = connection.transaction().unwrap();
        journal::settle(&transaction, &settlements, "2026-01-01T00:00:01.000Z").unwrap();
        transaction.commit().unwrap();
    }

    fn statuses(connection: &Connection, ids: &[i64]) -> Vec<String> {
        ids.iter()
            .map(|id| connection.query_row("SELECT status FROM events WHERE id = ?1", [id], |r| r.get(0)).unwrap())
            .collect()
    }

    fn failed() -> Selection {
        Selection::Matching(Filter { status: Status::Failed, event_type: None, since: None, limit: 0 })
    }

    /// A long replay must not keep intake out of the journal: the
    /// committer waits at most 5 s for the write lock, then answers 503.
    /// Here another connection appends an event, as the committer does but
    /// without waiting at all (busy timeout 0), after each batch.
    #[test]
    fn a_long_replay_lets_intake_write_between_its_batches_and_replays_in_ascending_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut connection = journal::open(&path).unwrap();
        // 2,500 failed events over 7 rows: three batches.
        let events: Vec<NewEvent> = (0..2_500).map(|n| appointment(n % 7, &format!("s{n}"), Status::Pending)).collect();
        let ids = append(&mut connection, &events).unwrap();
        settle(
            &mut connection,
            ids.iter().map(|&id| Settlement::Failed { id, error: "no such column".into() }).collect(),
        );

        let mut intake = journal::open(&path).unwrap();
        intake.busy_timeout(std::time::Duration::ZERO).unwrap();
        let mut seen = Vec::new();
        let report = replay_with(&mut connection, &failed(), &mappings(), 42, |so_far| {
            // Intake takes an event while the replay is under way.
            let appended = append(&mut intake, &[appointment(1_000, "new", Status::Pending)]);
            // What is replayed so far (as this connection sees it) is a
            // prefix in id order: every replayed event is older than every
            // event still failed.
            let (replayed, newest_replayed, still_failed, oldest_failed): (i64, i64, i64, i64) = intake
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM events WHERE status = 'pending' AND id <= ?1),
                            (SELECT COALESCE(MAX(id), 0) FROM events WHERE status = 'pending' AND id <= ?1),
                            (SELECT COUNT(*) FROM events WHERE status = 'failed'),
                            (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE status = 'failed')",
                    [ids.last().unwrap()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            seen.push((
                so_far.replayed,
                appended.map(|ids| ids.len()).map_err(|e| e.to_string()),
                replayed,
                still_failed,
                newest_replayed < oldest_failed,
            ));
        })
        .unwrap();
        assert_eq!(
            seen,
            [(1_000, Ok(1), 1_000, 1_500, true), (2_000, Ok(1), 2_000, 500, true), (2_500, Ok(1), 2_500, 0, true)],
            "intake wrote after each batch, while the rest waited to be replayed, in id order"
        );
        assert_eq!(report, Replayed { replayed: 2_500, still_unmapped: 0, superseded: 0 });
        // Every replayed event is due at the time given, and counts as
        // retrying; intake's events were not touched.
        let by_due: Vec<(i64, i64)> = connection
            .prepare("SELECT next_attempt_at, COUNT(*) FROM events WHERE status = 'pending' GROUP BY 1 ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(by_due, [(0, 3), (42, 2_500)]);
    }

    /// An unmapped event holds nothing back, so a newer event of its row
    /// may be delivered before the mapping is restored: replaying the old
    /// one would write an older state over it.
    #[test]
    fn an_unmapped_event_that_a_delivered_newer_event_of_its_row_supersedes_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal::open(&dir.path().join("journal.db")).unwrap();
        let mut refund = appointment(9, "x", Status::Unmapped);
        refund.event_type = "refund".into();
        refund.payload = r#"{"event_type": "refund", "refund_id": 9}"#.into();
        let [old, newer, after, other_row, pending_row, pending_newer, unknown] = append(
            &mut connection,
            &[
                appointment(1, "booked", Status::Unmapped),
                appointment(1, "moved", Status::Pending),
                appointment(1, "cancelled", Status::Unmapped),
                appointment(2, "booked", Status::Unmapped),
                appointment(3, "booked", Status::Unmapped),
                appointment(3, "moved", Status::Pending),
                refund,
            ],
        )
        .unwrap()[..] else {
            panic!("seven events")
        };
        settle(&mut connection, vec![Settlement::Delivered { id: newer }]);

        let unmapped =
            Selection::Matching(Filter { status: Status::Unmapped, event_type: None, since: None, limit: 0 });
        // A clock at 0 (a simulation's) still makes them count as retrying.
        let report = replay(&mut connection, &unmapped, &mappings(), 0).unwrap();
        assert_eq!(report, Replayed { replayed: 2, still_unmapped: 1, superseded: 2 });
        // Row 1's older state stays unmapped; the one received after the
        // delivered event is replayed. So is row 2's. Row 3's newer event
        // is pending: the worker may be writing it while replay runs (its
        // window was read before), so the older one is superseded too.
        assert_eq!(
            statuses(&connection, &[old, newer, after, other_row, pending_row, pending_newer, unknown]),
            ["unmapped", "delivered", "pending", "pending", "unmapped", "pending", "unmapped"]
        );
        let (error, key): (String, Option<String>) = connection
            .query_row("SELECT last_error, event_key FROM events WHERE id = ?1", [old], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert!(
            error.contains(&format!("event {newer}, received later for the same HIS row, is already delivered")),
            "{error}"
        );
        assert_eq!(key, None, "left as it was");
        let due: Vec<i64> = connection
            .prepare("SELECT DISTINCT next_attempt_at FROM events WHERE id IN (?1, ?2, ?3)")
            .unwrap()
            .query_map([after, other_row, other_row], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(due, [1]);
        let notes = report.notes();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].starts_with("2 unmapped event(s) left as they were, superseded"), "{notes:?}");
        assert!(notes[1].contains("prune --status unmapped"), "{notes:?}");

        // By id, the same.
        let report = replay(&mut connection, &Selection::Id(old), &mappings(), 5).unwrap();
        assert_eq!(report, Replayed { replayed: 0, still_unmapped: 0, superseded: 1 });
        assert_eq!(statuses(&connection, &[old]), ["unmapped"]);
    }

    /// Retention (or `prune`) shorter than the duplicate window must not
    /// let a resend in again: delivery ids go only with the window.
    #[test]
    fn pruning_an_event_keeps_its_delivery_id_for_the_whole_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal::open(&dir.path().join("journal.db")).unwrap();
        let resend = |state: &str| NewEvent {
            delivery_id: Some("msg_1".into()),
            received_ms: crate::clock::now_ms(),
            duplicates_since_ms: crate::clock::now_ms() - 7 * 24 * 3600 * 1000,
            ..appointment(1, state, Status::Pending)
        };
        let [id] = append(&mut connection, &[resend("booked")]).unwrap()[..] else { panic!("one event") };
        settle(&mut connection, vec![Settlement::Delivered { id }]);
        assert_eq!(prune(&mut connection, Status::Delivered, "2999-01-01T00:00:00.000Z").unwrap(), 1);

        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        let appended = journal::append_all(&transaction, &[&resend("cancelled")]).unwrap();
        transaction.commit().unwrap();
        assert_eq!(appended, [journal::Appended::Duplicate(id)], "answered with the pruned event's id");
        let count: i64 = connection.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 0, "nothing stored");

        // Past the window, the id is forgotten.
        let transaction = connection.transaction().unwrap();
        assert_eq!(journal::prune_delivery_ids(&transaction, crate::clock::now_ms() + 1).unwrap(), 1);
        transaction.commit().unwrap();
    }
}
