//! The journal: a local SQLite file that holds every accepted event until,
//! and after, the HIS has it.
//!
//! The types and every statement of the data path live here (the schema and
//! opening in [`schema`], the operator's queries in [`operations`]). Writes happen on one thread only, the
//! [`crate::pipeline::committer`]; the sync worker reads through its own connection
//! (WAL lets readers and the writer work side by side).

pub mod operations;
pub mod rekey;
pub mod schema;

pub use self::schema::{OpenError, SCHEMA_VERSION, open, open_read_only};

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, ToSql, Transaction, params, params_from_iter, types::ToSqlOutput};

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened or set up.
    #[error("cannot open the journal {path}: {source}")]
    Open {
        /// The journal file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file was written by a newer build.
    #[error(
        "the journal {path} has schema version {found}, but this buktor-middleware knows only up to {SCHEMA_VERSION}: run the newer version, or restore a backup"
    )]
    NewerSchema {
        /// The journal file.
        path: String,
        /// Its schema version.
        found: usize,
    },
    /// A statement failed.
    #[error("journal error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An event's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting to be written to the HIS.
    Pending,
    /// Written to the HIS.
    Delivered,
    /// Set aside: it can never be written as it is.
    Failed,
    /// No mapping knew its event_type when it arrived.
    Unmapped,
}

impl Status {
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Unmapped => "unmapped",
        }
    }
}

impl ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// An event as intake hands it to the journal.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its `event_type`.
    pub event_type: String,
    /// The request body.
    pub payload: String,
    /// When the middleware received it.
    pub received_at: String,
    /// `Pending` or `Unmapped`.
    pub status: Status,
    /// The mapping's key, for mapped events: its first target's row.
    pub event_key: Option<String>,
    /// The other rows it writes ([`crate::pipeline::mapping::EventKeys`]).
    pub extra_keys: Vec<String>,
    /// The sender's delivery id, if it gave one.
    pub delivery_id: Option<String>,
    /// When the middleware received it, as unix ms: its delivery id's time,
    /// for the duplicate window.
    pub received_ms: i64,
    /// Unix ms: a delivery id seen at or after this is a duplicate.
    pub duplicates_since_ms: i64,
}

/// What appending an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored under this new id.
    New(i64),
    /// Its delivery id was seen within the window: not stored again; this
    /// is the id it was stored under then.
    Duplicate(i64),
}

/// A pending event, as the sync worker reads it.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// The journal id.
    pub id: i64,
    /// Its `event_type`.
    pub event_type: String,
    /// The request body.
    pub payload: String,
    /// When the middleware received it.
    pub received_at: String,
    /// How many writes were tried so far.
    pub attempts: u32,
    /// The mapping's key: its first target's row.
    pub event_key: Option<String>,
    /// The other rows it writes, as journaled; read only when the journal
    /// has any ([`Holds::extra_keys`]), empty otherwise.
    pub extra_keys: Vec<String>,
}

impl PendingEvent {
    /// Every HIS row it writes, as keys: its `event_key`, then the others.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.event_key.as_deref().into_iter().chain(self.extra_keys.iter().map(String::as_str))
    }
}

/// What the sync worker learned about one event.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// The HIS committed it.
    Delivered {
        /// The journal id.
        id: i64,
    },
    /// The write failed; try again at `next_attempt_at_ms`.
    RetryLater {
        /// The journal id.
        id: i64,
        /// The error, for `last_error`.
        error: String,
        /// Unix time in milliseconds.
        next_attempt_at_ms: i64,
    },
    /// It can never be written as it is.
    Failed {
        /// The journal id.
        id: i64,
        /// Why, for `last_error`.
        error: String,
    },
}

/// Appends `events` in order, as if one by one: an event whose delivery id
/// was seen within the window, or earlier in `events`, is not stored again
/// and gets the id it was stored under.
///
/// Ids are given here, not by SQLite: the next after the highest ever used
/// (`sqlite_sequence` keeps it past pruning, as `AUTOINCREMENT` would). That
/// lets a round's events and payloads go in as a few multi-row `INSERT`s
/// instead of two statements per event, which is most of the committer's
/// work under load. `transaction` must hold the write lock from its start
/// (`BEGIN IMMEDIATE`), so that no other process takes an id in between.
pub fn append_all(transaction: &Transaction<'_>, events: &[&NewEvent]) -> rusqlite::Result<Vec<Appended>> {
    let mut next_id: i64 = transaction
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        COALESCE((SELECT MAX(id) FROM events), 0)) + 1",
        )?
        .query_row([], |row| row.get(0))?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut stored: Vec<(i64, &NewEvent)> = Vec::with_capacity(events.len());
    // Delivery ids stored by this call, the id each was stored under, and
    // when it was received.
    let mut delivery_ids: HashMap<&str, (i64, i64)> = HashMap::new();
    for &event in events {
        if let Some(delivery_id) = &event.delivery_id {
            let seen = match delivery_ids.get(delivery_id.as_str()) {
                Some(&(id, _)) => Some(id),
                None => transaction
                    .prepare_cached("SELECT event_id FROM deliveries WHERE delivery_id = ?1 AND received_ms >= ?2")?
                    .query_row(params![delivery_id, event.duplicates_since_ms], |row| row.get(0))
                    .optional()?,
            };
            if let Some(id) = seen {
                outcomes.push(Appended::Duplicate(id));
                continue;
            }
            delivery_ids.insert(delivery_id, (next_id, event.received_ms));
        }
        stored.push((next_id, event));
        outcomes.push(Appended::New(next_id));
        next_id += 1;
    }
    let events_rows: Vec<[&dyn ToSql; 5]> = stored
        .iter()
        .map(|(id, e)| [id as &dyn ToSql, &e.event_type, &e.received_at, &e.status, &e.event_key])
        .collect();
    insert_rows(transaction, "INSERT INTO events (id, event_type, received_at, status, event_key)", &events_rows)?;
    let payload_rows: Vec<[&dyn ToSql; 2]> = stored.iter().map(|(id, e)| [id as &dyn ToSql, &e.payload]).collect();
    insert_rows(transaction, "INSERT INTO payloads (event_id, body)", &payload_rows)?;
    let delivery_rows: Vec<[&dyn ToSql; 3]> =
        delivery_ids.iter().map(|(delivery_id, (id, at_ms))| [delivery_id as &dyn ToSql, id, at_ms]).collect();
    // A delivery id older than the window is replaced.
    insert_rows(transaction, "INSERT OR REPLACE INTO deliveries (delivery_id, event_id, received_ms)", &delivery_rows)?;
    let key_rows: Vec<[&dyn ToSql; 2]> = stored
        .iter()
        .flat_map(|(id, e)| e.extra_keys.iter().map(move |key| [key as &dyn ToSql, id as &dyn ToSql]))
        .collect();
    insert_rows(transaction, "INSERT OR IGNORE INTO event_keys (event_key, event_id)", &key_rows)?;
    Ok(outcomes)
}

/// Statement sizes, in rows, for [`insert_rows`]: each size's statement is
/// prepared once and cached, and a run of rows goes in as few of them as
/// it takes (100 rows: 64, 16, 16, 4).
const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

/// Inserts `rows` with multi-row statements that begin with `insert`
/// (`INSERT INTO table (columns)`).
fn insert_rows<const COLUMNS: usize>(
    transaction: &Transaction<'_>,
    insert: &str,
    rows: &[[&dyn ToSql; COLUMNS]],
) -> rusqlite::Result<()> {
    let row = format!("({})", vec!["?"; COLUMNS].join(", "));
    let mut rest = rows;
    while !rest.is_empty() {
        let size = ROWS_PER_INSERT.into_iter().find(|&size| size <= rest.len()).expect("1 always fits");
        let (chunk, tail) = rest.split_at(size);
        let sql = format!("{insert} VALUES {}", vec![row.as_str(); size].join(", "));
        transaction.prepare_cached(&sql)?.execute(params_from_iter(chunk.iter().flatten()))?;
        rest = tail;
    }
    Ok(())
}

/// Records what happened to pending events. `now` is RFC 3339.
///
/// Deliveries, the bulk of any pass, are marked in one statement (the ids
/// go in as a JSON array); the rarer outcomes one by one.
pub fn settle(transaction: &Transaction<'_>, settlements: &[Settlement], now: &str) -> rusqlite::Result<()> {
    let delivered: Vec<i64> = settlements
        .iter()
        .filter_map(|s| match s {
            Settlement::Delivered { id } => Some(*id),
            _ => None,
        })
        .collect();
    if !delivered.is_empty() {
        let ids = serde_json::to_string(&delivered).expect("integers serialize");
        transaction
            .prepare_cached(
                "UPDATE events SET status = ?3, attempts = attempts + 1, delivered_at = ?2, last_error = NULL
                 WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending'",
            )?
            .execute(params![ids, now, Status::Delivered.as_str()])?;
    }
    for settlement in settlements {
        match settlement {
            Settlement::Delivered { .. } => 0,
            Settlement::RetryLater { id, error, next_attempt_at_ms } => transaction
                .prepare_cached(
                    "UPDATE events SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![id, error, next_attempt_at_ms])?,
            Settlement::Failed { id, error } => transaction
                .prepare_cached(
                    "UPDATE events SET status = ?3, attempts = attempts + 1, last_error = ?2
                     WHERE id = ?1 AND status = 'pending'",
                )?
                .execute(params![id, error, Status::Failed.as_str()])?,
        };
    }
    Ok(())
}

/// The most events one prune removes: a long delete would hold the journal's
/// write lock, and intake with it. The rest go at the next prune.
pub const PRUNE_BATCH: usize = 10_000;

/// Removes up to [`PRUNE_BATCH`] events with `status` received before
/// `before` (RFC 3339), with their payloads; returns how many. Their
/// delivery ids stay until [`prune_delivery_ids`] removes them at the end of
/// the duplicate window, whatever is pruned: a resend within the window is
/// still answered as a duplicate of the (removed) event, never stored again.
pub fn prune(transaction: &Transaction<'_>, status: Status, before: &str) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = transaction
        .prepare_cached("SELECT id FROM events WHERE status = ?1 AND received_at < ?2 ORDER BY id LIMIT ?3")?
        .query_map(params![status.as_str(), before, PRUNE_BATCH as i64], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ids_json = serde_json::to_string(&ids).expect("integers serialize");
    if status == Status::Delivered {
        // Remember each pruned row's newest state, while an older unmapped
        // event could still be replayed into it (operations::replay).
        transaction
            .prepare_cached(
                "INSERT INTO pruned_keys (event_key, last_id)
                 SELECT event_key, MAX(id) FROM events
                 WHERE id IN (SELECT value FROM json_each(?1)) AND event_key IS NOT NULL
                   AND id > (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE status = 'unmapped')
                 GROUP BY event_key
                 ON CONFLICT (event_key) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
            )?
            .execute([&ids_json])?;
        // The same for the other rows those events wrote.
        transaction
            .prepare_cached(
                "INSERT INTO pruned_keys (event_key, last_id)
                 SELECT event_key, MAX(event_id) FROM event_keys
                 WHERE event_id IN (SELECT value FROM json_each(?1))
                   AND event_id > (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE status = 'unmapped')
                 GROUP BY event_key
                 ON CONFLICT (event_key) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
            )?
            .execute([&ids_json])?;
        // Rows no unmapped event is older than are forgotten.
        transaction
            .prepare_cached(
                "DELETE FROM pruned_keys
                 WHERE last_id < (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE status = 'unmapped')",
            )?
            .execute([])?;
    }
    for sql in [
        "DELETE FROM event_keys WHERE event_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM payloads WHERE event_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1))",
    ] {
        transaction.prepare_cached(sql)?.execute([&ids_json])?;
    }
    Ok(ids.len())
}

/// Forgets delivery ids first seen before `before_ms` (unix ms): past the
/// duplicate window they no longer matter.
pub fn prune_delivery_ids(transaction: &Transaction<'_>, before_ms: i64) -> rusqlite::Result<usize> {
    transaction.prepare_cached("DELETE FROM deliveries WHERE received_ms < ?1")?.execute([before_ms])
}

/// Makes every pending event that waits for a retry due at `now_ms`,
/// keeping it counted as retried (`next_attempt_at` stays above 0, so it
/// still holds back later events of its row until it is written).
pub fn make_due(transaction: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<usize> {
    transaction
        .prepare_cached(
            "UPDATE events INDEXED BY events_waiting SET next_attempt_at = ?1
             WHERE status = 'pending' AND next_attempt_at > 0 AND next_attempt_at > ?1",
        )?
        .execute(params![now_ms])
}

/// How many events are pending, and when the oldest of them arrived.
pub fn pending_summary(connection: &Connection) -> rusqlite::Result<(i64, Option<String>)> {
    connection
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM events INDEXED BY events_pending WHERE status = 'pending'),
                    (SELECT received_at FROM events INDEXED BY events_pending WHERE status = 'pending'
                     ORDER BY id LIMIT 1)",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
}

/// What can hold back later events for a row. Cheap to ask: both come from
/// small partial indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holds {
    /// A pending event has failed at least once and waits for (or is due
    /// for) a retry.
    pub retrying: bool,
    /// An event has failed permanently and waits to be replayed.
    pub failed: bool,
    /// The journal has events that write several HIS rows
    /// ([`PendingEvent::extra_keys`]): their other keys are read, and hold
    /// back and are held back like event keys.
    pub extra_keys: bool,
}

impl Holds {
    /// Whether any event can hold back another.
    pub fn any(self) -> bool {
        self.retrying || self.failed
    }
}

/// See [`Holds`].
pub fn holds(connection: &Connection) -> rusqlite::Result<Holds> {
    connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events INDEXED BY events_waiting WHERE status = 'pending' AND next_attempt_at > 0),
                    EXISTS (SELECT 1 FROM events INDEXED BY events_failed WHERE status = 'failed'),
                    EXISTS (SELECT 1 FROM event_keys)",
        )?
        .query_row([], |row| Ok(Holds { retrying: row.get(0)?, failed: row.get(1)?, extra_keys: row.get(2)? }))
}

/// The most request bytes one window holds, whatever `sync.batch_size`
/// says: a window is parsed, mapped and handed to the writer, and read
/// ahead while the previous one is written, so each byte read costs
/// several in memory. 500 events of the largest body the intake takes
/// (1 MiB) would otherwise hold over a gigabyte; at this bound a window of
/// such bodies holds 8. Everyday events (about a kilobyte) never reach it.
pub const WINDOW_BYTES: usize = 8 << 20;

/// Up to `limit` pending events with an id above `after_id` that are due
/// at `now_ms`, oldest first; fewer once their bodies reach `max_bytes`
/// (at least one, however large).
///
/// With `holds.any()` (see [`holds`]), an event waits while an older event
/// for one of its HIS rows has failed, or is pending and not yet due, so
/// that a row never receives a newer state before an older one. While
/// events are retrying, the caller reads from the start (`after_id` 0), so
/// that an older event that is due is in the same window, ahead of the
/// newer one. Without holds the check is skipped: it costs index probes.
///
/// With `holds.extra_keys` (events that write several rows), each event's
/// other rows are read and take part, and a waiting event holds back the
/// later events of *each* of its rows in turn (`unheld_ids`): a payment
/// held behind a failed payment of its appointment also holds the next
/// event of its own payment row, which the failed one never wrote.
pub fn due_events(
    connection: &Connection,
    now_ms: i64,
    after_id: i64,
    holds: Holds,
    limit: usize,
    max_bytes: usize,
) -> rusqlite::Result<Vec<PendingEvent>> {
    // Several rows per event and something held: which events are due is
    // worked out here, over every undelivered event's keys, not by the query.
    let chosen = if holds.extra_keys && holds.any() {
        Some(serde_json::to_string(&unheld_ids(connection, now_ms, after_id, limit)?).expect("integers serialize"))
    } else {
        None
    };
    let sql = due_events_sql(holds.any(), holds.extra_keys, chosen.is_some());
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params![now_ms, limit as i64, after_id, chosen], |row| {
        let extra: Option<String> = row.get(6)?;
        Ok(PendingEvent {
            id: row.get(0)?,
            event_type: row.get(1)?,
            payload: row.get(2)?,
            received_at: row.get(3)?,
            attempts: row.get(4)?,
            event_key: row.get(5)?,
            extra_keys: keys_json(extra.as_deref(), 6)?,
        })
    })?;
    let (mut events, mut bytes) = (Vec::new(), 0);
    for event in rows {
        let event = event?;
        bytes += event.payload.len();
        events.push(event);
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(events)
}

/// A JSON array of keys, as `json_group_array` makes it (column `column`).
pub(super) fn keys_json(json: Option<&str>, column: usize) -> rusqlite::Result<Vec<String>> {
    match json {
        None | Some("[]") => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))),
    }
}

/// Up to `limit` ids of due pending events above `after_id` that nothing
/// holds back at `now_ms`, when events may write several rows: walking
/// every undelivered event in id order, a failed event, a pending one not
/// yet due, and a pending one already held block each of their rows for
/// every later event; a pending event with a blocked row is held. (With
/// one row per event, the query's check is the same thing: every event
/// that a held event would block is blocked by the same failed or waiting
/// event.) Reads ids and keys only, from the partial indexes of pending
/// and failed events; stops at the limit.
fn unheld_ids(connection: &Connection, now_ms: i64, after_id: i64, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, status = 'pending' AND next_attempt_at <= ?1, status = 'failed', event_key,
                (SELECT json_group_array(k.event_key) FROM event_keys AS k WHERE k.event_id = e.id)
         FROM (SELECT id, status, next_attempt_at, event_key FROM events INDEXED BY events_pending
               WHERE status = 'pending'
               UNION ALL
               SELECT id, status, next_attempt_at, event_key FROM events INDEXED BY events_failed
               WHERE status = 'failed') AS e
         ORDER BY id",
    )?;
    let mut rows = statement.query([now_ms])?;
    let (mut blocked, mut chosen): (HashSet<String>, Vec<i64>) = (HashSet::new(), Vec::new());
    while chosen.len() < limit
        && let Some(row) = rows.next()?
    {
        let (id, due, failed): (i64, bool, bool) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let mut keys = keys_json(row.get_ref(4)?.as_str_or_null()?, 4)?;
        keys.extend(row.get::<_, Option<String>>(3)?);
        let waits = due && !failed && keys.iter().any(|key| blocked.contains(key));
        if failed || !due || waits {
            blocked.extend(keys);
        } else if id > after_id {
            chosen.push(id);
        }
    }
    Ok(chosen)
}

/// The query of [`due_events`]: with `hold_back`, an event whose row an
/// older blocked event (failed, or retrying and not yet due) writes waits;
/// with `extra_keys`, each event's other rows are read; with `chosen`, the
/// events are those of ?4 (a JSON array of ids), already checked.
///
/// Parameters: ?1 now (ms), ?2 limit, ?3 after id, ?4 the chosen ids.
fn due_events_sql(hold_back: bool, extra_keys: bool, chosen: bool) -> String {
    let extra_column = if extra_keys {
        "(SELECT json_group_array(event_key) FROM event_keys AS mine WHERE mine.event_id = e.id)"
    } else {
        "NULL"
    };
    let mut sql = format!(
        "SELECT id, event_type, body, received_at, attempts, event_key, {extra_column}
         FROM events AS e JOIN payloads ON payloads.event_id = e.id
         WHERE status = 'pending' AND id > ?3 AND next_attempt_at <= ?1"
    );
    if chosen {
        sql.push_str("\n           AND id IN (SELECT value FROM json_each(?4))");
    } else {
        // Always NULL here: the parameter is bound either way.
        sql.push_str("\n           AND ?4 IS NULL");
    }
    if hold_back && !chosen {
        sql.push_str(
            "
           AND NOT EXISTS (
               SELECT 1 FROM events AS older INDEXED BY events_waiting
               WHERE older.status = 'pending' AND older.next_attempt_at > 0 AND older.event_key = e.event_key
                 AND older.id < e.id AND older.next_attempt_at > ?1)
           AND NOT EXISTS (
               SELECT 1 FROM events AS failed INDEXED BY events_failed
               WHERE failed.status = 'failed' AND failed.event_key = e.event_key AND failed.id < e.id)",
        );
    }
    sql.push_str("\n         ORDER BY id LIMIT ?2");
    sql
}

/// The next moment after `now_ms` at which a waiting pending event becomes
/// due (unix ms), if any is waiting.
pub fn next_due_ms(connection: &Connection, now_ms: i64) -> rusqlite::Result<Option<i64>> {
    connection
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM events INDEXED BY events_waiting
             WHERE status = 'pending' AND next_attempt_at > 0 AND next_attempt_at > ?1",
        )?
        .query_row([now_ms], |row| row.get(0))
        .optional()
        .map(Option::flatten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let connection = open(&dir.path().join("journal.db")).unwrap();
        (dir, connection)
    }

    fn append(connection: &mut Connection, key: &str) -> i64 {
        append_writing(connection, key, &[])
    }

    /// Appends an event whose first row is `key` and that writes `extra` too.
    fn append_writing(connection: &mut Connection, key: &str, extra: &[&str]) -> i64 {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        let event = NewEvent {
            event_type: "appointment".into(),
            payload: "{}".into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            status: Status::Pending,
            event_key: Some(key.into()),
            extra_keys: extra.iter().map(|k| k.to_string()).collect(),
            delivery_id: None,
            received_ms: 0,
            duplicates_since_ms: 0,
        };
        let appended = append_all(&transaction, &[&event]).unwrap();
        transaction.commit().unwrap();
        match appended[..] {
            [Appended::New(id)] => id,
            _ => panic!("stored: {appended:?}"),
        }
    }

    fn record(connection: &mut Connection, settlement: Settlement) {
        let transaction = connection.transaction().unwrap();
        settle(&transaction, &[settlement], "2026-01-01T00:00:01.000Z").unwrap();
        transaction.commit().unwrap();
    }

    fn ids(connection: &Connection, now: i64, after_id: i64) -> Vec<i64> {
        let holds = holds(connection).unwrap();
        due_events(connection, now, after_id, holds, 100, WINDOW_BYTES).unwrap().iter().map(|e| e.id).collect()
    }

    #[test]
    fn an_event_that_writes_several_rows_holds_and_is_held_by_each() {
        let (_dir, mut connection) = journal();
        // A payment writes its own row P and its appointment's row A.
        let payment = append_writing(&mut connection, "P", &["A"]);
        let appointment = append(&mut connection, "A");
        let other_payment = append_writing(&mut connection, "Q", &["A"]);
        let same_payment = append(&mut connection, "P");
        let elsewhere = append_writing(&mut connection, "Z", &["Y"]);
        assert!(holds(&connection).unwrap().extra_keys);
        let window = due_events(&connection, 1_000, 0, holds(&connection).unwrap(), 100, WINDOW_BYTES).unwrap();
        assert_eq!(window[0].keys().collect::<Vec<_>>(), ["P", "A"]);
        assert_eq!(window[1].keys().collect::<Vec<_>>(), ["A"]);

        // The payment failed: every later event that writes P or A waits,
        // through its first row or another.
        record(&mut connection, Settlement::Failed { id: payment, error: "refused".into() });
        assert_eq!(ids(&connection, 1_000, 0), [elsewhere]);
        // ... and so does a later event for Q, which only the held payment
        // writes: it must not overtake it.
        let after_other = append(&mut connection, "Q");
        assert_eq!(ids(&connection, 1_000, 0), [elsewhere]);
        assert_eq!(ids(&connection, 1_000, elsewhere), Vec::<i64>::new());

        // Replayed and delivered, it holds nothing; then the appointment
        // retries: the payment that also writes A waits behind it (through
        // its other row), the one for P alone does not.
        connection.execute("UPDATE events SET status = 'delivered' WHERE id = ?1", [payment]).unwrap();
        record(
            &mut connection,
            Settlement::RetryLater { id: appointment, error: "locked".into(), next_attempt_at_ms: 5_000 },
        );
        assert_eq!(ids(&connection, 1_000, 0), [same_payment, elsewhere]);
        assert_eq!(ids(&connection, 5_000, 0), [appointment, other_payment, same_payment, elsewhere, after_other]);

        // Pruning the delivered payment takes its other keys with it.
        let transaction = connection.transaction().unwrap();
        assert_eq!(prune(&transaction, Status::Delivered, "2999-01-01").unwrap(), 1);
        transaction.commit().unwrap();
        let left: i64 = connection.query_row("SELECT COUNT(*) FROM event_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 2, "the other events' keys stay");
    }

    #[test]
    fn a_window_ends_once_its_bodies_reach_the_byte_budget_and_holds_at_least_one() {
        let (_dir, mut connection) = journal();
        let all: Vec<i64> = ["A", "B", "C", "D"].iter().map(|key| append(&mut connection, key)).collect();
        let window = |max_bytes| {
            due_events(&connection, 1_000, 0, Holds::default(), 100, max_bytes)
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        // Each body is `{}`: two bytes.
        assert_eq!(window(1 << 20), all, "under the budget, the count limits");
        assert_eq!(window(4), all[..2], "the event that reaches the budget is the last");
        assert_eq!(window(5), all[..3]);
        assert_eq!(window(1), all[..1], "a body larger than the budget still makes a window");
    }

    #[test]
    fn a_retrying_event_holds_back_later_events_of_its_row_only() {
        let (_dir, mut connection) = journal();
        let k1 = append(&mut connection, "K");
        let k2 = append(&mut connection, "K");
        let j = append(&mut connection, "J");
        assert!(!holds(&connection).unwrap().any());
        assert_eq!(ids(&connection, 1_000, 0), [k1, k2, j]);

        // k1 failed and waits until t=5000: k2 waits behind it, j goes on.
        record(&mut connection, Settlement::RetryLater { id: k1, error: "down".into(), next_attempt_at_ms: 5_000 });
        assert_eq!(holds(&connection).unwrap(), Holds { retrying: true, failed: false, extra_keys: false });
        assert_eq!(ids(&connection, 1_000, 0), [j]);
        assert_eq!(next_due_ms(&connection, 1_000).unwrap(), Some(5_000));

        // Once k1 is due, the window has it ahead of k2.
        assert_eq!(ids(&connection, 5_000, 0), [k1, k2, j]);
        record(&mut connection, Settlement::Delivered { id: k1 });
        assert!(!holds(&connection).unwrap().any());
        assert_eq!(ids(&connection, 5_000, 0), [k2, j]);
        assert_eq!(ids(&connection, 5_000, k2), [j], "after_id skips what is being recorded");
    }

    #[test]
    fn a_failed_event_holds_back_later_events_of_its_row_until_replayed() {
        let (_dir, mut connection) = journal();
        let k1 = append(&mut connection, "K");
        let k2 = append(&mut connection, "K");
        let j = append(&mut connection, "J");
        record(&mut connection, Settlement::Failed { id: k1, error: "no such column".into() });
        assert_eq!(holds(&connection).unwrap(), Holds { retrying: false, failed: true, extra_keys: false });
        assert_eq!(ids(&connection, 1_000, 0), [j], "k2 is held behind the failed k1");
        assert_eq!(ids(&connection, 1_000, j), Vec::<i64>::new());
        let k3 = append(&mut connection, "K");
        assert_eq!(ids(&connection, 1_000, 0), [j], "so is a later one");

        // Replayed, k1 is due at once and comes first, its row's later
        // events behind it in receive order.
        let config = crate::config::parse(include_str!("../../../../his-config.json")).unwrap();
        let mappings = crate::pipeline::mapping::Mappings::new(&config.mapping);
        let replayed =
            operations::replay(&mut connection, &operations::Selection::Id(k1), &mappings, crate::clock::now_ms())
                .unwrap();
        assert_eq!(replayed.replayed, 1);
        assert_eq!(holds(&connection).unwrap(), Holds { retrying: true, failed: false, extra_keys: false });
        let later = crate::clock::now_ms() + 1_000;
        assert_eq!(ids(&connection, later, 0), [k1, k2, j, k3]);
        record(&mut connection, Settlement::Delivered { id: k1 });
        assert!(!holds(&connection).unwrap().any());
        assert_eq!(ids(&connection, later, 0), [k2, j, k3]);
    }

    #[test]
    fn a_round_of_appends_takes_the_ids_after_the_highest_ever_and_dedupes_within_itself() {
        let (_dir, mut connection) = journal();
        let first = append(&mut connection, "K");
        record(&mut connection, Settlement::Delivered { id: first });
        let transaction = connection.transaction().unwrap();
        assert_eq!(prune(&transaction, Status::Delivered, "2027-01-01T00:00:00.000Z").unwrap(), 1);
        transaction.commit().unwrap();

        let event = |delivery_id: Option<&str>, payload: &str| NewEvent {
            event_type: "appointment".into(),
            payload: payload.into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            status: Status::Pending,
            event_key: Some("K".into()),
            extra_keys: Vec::new(),
            delivery_id: delivery_id.map(str::to_string),
            received_ms: 0,
            duplicates_since_ms: 0,
        };
        // 70 events, one of them a repeat: 69 rows, in statements of 64, 4 and 1 rows.
        let mut events: Vec<NewEvent> = (0..68).map(|n| event(None, &format!("{{\"n\":{n}}}"))).collect();
        events.insert(10, event(Some("msg_a"), "{\"a\":1}"));
        events.push(event(Some("msg_a"), "{\"a\":2}"));
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        let appended = append_all(&transaction, &events.iter().collect::<Vec<_>>()).unwrap();
        transaction.commit().unwrap();

        // The pruned id is never given again; ids follow receive order.
        let expected: Vec<Appended> =
            (0..69).map(|n| Appended::New(first + 1 + n)).chain([Appended::Duplicate(first + 11)]).collect();
        assert_eq!(appended, expected);
        let stored: Vec<(i64, String)> = connection
            .prepare("SELECT id, body FROM events JOIN payloads ON event_id = id ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored.len(), 69, "the repeated delivery id is stored once");
        assert_eq!(stored[10], (first + 11, "{\"a\":1}".to_string()), "each payload with its own event");
        assert_eq!(stored[68], (first + 69, "{\"n\":67}".to_string()));
        let seen: i64 = connection
            .query_row("SELECT event_id FROM deliveries WHERE delivery_id = 'msg_a'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, first + 11);
    }

    #[test]
    fn settlements_change_only_pending_events() {
        let (_dir, mut connection) = journal();
        let id = append(&mut connection, "K");
        record(&mut connection, Settlement::Delivered { id });
        record(&mut connection, Settlement::Failed { id, error: "late".into() });
        let (status, attempts): (String, i64) = connection
            .query_row("SELECT status, attempts FROM events WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((status.as_str(), attempts), ("delivered", 1));
    }
}
