//! What an operator does with the journal: list events, replay failed or
//! unmapped ones, and prune old ones. Shared by the command line (`events`, `replay`) and
//! the admin HTTP routes, each with a connection of its own (WAL lets it
//! work beside the running middleware).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::pipeline::{
    journal::Status,
    mapping::{Mappings, Members},
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

/// Puts failed and unmapped events back to pending, in one transaction.
/// An unmapped event gets its row key from the current mapping; one whose
/// type is still unmapped stays as it is.
pub fn replay(
    connection: &mut Connection,
    selection: &Selection,
    mappings: &Mappings,
) -> Result<Replayed, ReplayError> {
    // IMMEDIATE: a read-then-write transaction that the committer's commit
    // overtakes cannot upgrade to a write (SQLITE_BUSY at once); taking the
    // write lock first waits for it instead (busy_timeout).
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let candidates: Vec<(i64, String, String, String)> = match selection {
        Selection::Id(id) => {
            let row = transaction
                .query_row(
                    "SELECT e.id, e.event_type, e.status, p.body FROM events AS e JOIN payloads AS p ON p.event_id = e.id
                     WHERE e.id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?
                .ok_or(ReplayError::NoSuchEvent(*id))?;
            if row.2 != Status::Failed.as_str() && row.2 != Status::Unmapped.as_str() {
                return Err(ReplayError::NotReplayable(*id, row.2));
            }
            vec![row]
        }
        Selection::Matching(filter) => {
            if filter.status != Status::Failed && filter.status != Status::Unmapped {
                return Err(ReplayError::WrongStatus(filter.status.as_str()));
            }
            let mut statement = transaction.prepare(
                "SELECT e.id, e.event_type, e.status, p.body FROM events AS e JOIN payloads AS p ON p.event_id = e.id
                 WHERE e.status = ?1 AND (?2 IS NULL OR e.event_type = ?2) AND (?3 IS NULL OR e.received_at >= ?3)
                 ORDER BY e.id",
            )?;
            let rows = statement.query_map(params![filter.status.as_str(), filter.event_type, filter.since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        }
    };
    let mut report = Replayed::default();
    for (id, event_type, status, body) in candidates {
        let key = if status == Status::Unmapped.as_str() {
            let key = mappings
                .get(&event_type)
                .and_then(|mapping| mapping.key_of(&event_type, &Members::parse(&body).ok()?).ok());
            match key {
                Some(key) => Some(key),
                None => {
                    report.still_unmapped += 1;
                    continue;
                }
            }
        } else {
            None
        };
        // Due now, and counted as retrying (`next_attempt_at` above 0) until
        // it is written: like any retry, it then holds back the later events
        // of its row, also ones that arrive after the replay, which the sync
        // worker would otherwise write first while it reads only new events.
        transaction.execute(
            "UPDATE events SET status = 'pending', next_attempt_at = ?3, event_key = COALESCE(?2, event_key) WHERE id = ?1",
            params![id, key, crate::clock::now_ms()],
        )?;
        report.replayed += 1;
    }
    transaction.commit()?;
    Ok(report)
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
            delivery_id: None,
            received_ms: 0,
            duplicates_since_ms: 0,
        };
        let [journal::Appended::New(id)] = journal::append_all(&transaction, &[&event]).unwrap()[..] else {
            panic!("appended")
        };
        journal::settle(&transaction, &[Settlement::Failed { id, error: "too long".into() }], "now").unwrap();
        transaction.commit().unwrap();
        assert_eq!(journal::holds(&connection).unwrap(), journal::Holds { retrying: false, failed: true });

        let config = crate::config::parse(include_str!("../../../../his-config.json")).unwrap();
        let replayed = replay(&mut connection, &Selection::Id(id), &Mappings::new(&config.mapping)).unwrap();
        assert_eq!(replayed.replayed, 1);
        // Retrying: the worker stops reading only new events and reads from
        // the start, where this event comes before any later one of its row.
        assert_eq!(journal::holds(&connection).unwrap(), journal::Holds { retrying: true, failed: false });
        let due = journal::due_events(&connection, crate::clock::now_ms(), 0, true, 10).unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [id], "and it is due at once");
    }
}
