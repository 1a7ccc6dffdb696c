//! `buktor-middleware status`: what the journal says, read without the
//! server running (or beside it).
//!
//! Everything is read in one read transaction, so the numbers agree with
//! each other even while the middleware writes. The journal is opened read
//! only ([`journal::open_read_only`]): `status` never changes it, not even its schema.
//!
//! Cost: the counts by event type and the last delivery time need one pass
//! over the `events` table (no index holds them); the oldest pending event,
//! the retrying count and the last error come from the small partial
//! indexes `events_pending`, `events_waiting` and `events_failed`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use indexmap::IndexMap;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

mod print;

use buktor_middleware::{
    clock, config,
    pipeline::{
        journal::{self, Status},
        quota::{Quota, QuotaLimits},
    },
};

/// The journal's state, as `status` prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalStatus {
    /// The file and its size on disk.
    pub journal: JournalFile,
    /// Events in the journal, by status.
    pub events: Counts,
    /// Pending events that failed at least once and wait for a retry.
    pub retrying: i64,
    /// Events by event type, then status; the types with most events
    /// first.
    pub by_type: IndexMap<String, Counts>,
    /// The pending event that arrived first, if any is pending.
    pub oldest_pending: Option<OldestPending>,
    /// The event delivered last, if the journal still holds one
    /// (delivered events are removed after `journal.retention_days`).
    pub last_delivery: Option<LastDelivery>,
    /// The newest event that carries an error: failed, or pending and
    /// retrying.
    pub last_error: Option<LastError>,
    /// How full the journal is against its limits (`journal.max_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<Space>,
}

/// The journal against its limits.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Space {
    /// Bytes in use (pages holding data).
    pub used_bytes: u64,
    /// `journal.max_bytes`.
    pub max_bytes: u64,
    /// Payload bytes of unmapped events.
    pub unmapped_bytes: u64,
    /// `journal.max_unmapped_bytes`.
    pub max_unmapped_bytes: u64,
}

/// The journal of `connection` against the limits of `journal`.
fn space(connection: &Connection, journal: &config::JournalConfig) -> rusqlite::Result<Space> {
    let quota = Quota::new(QuotaLimits::of(journal, 0));
    quota.recount(connection)?;
    let usage = quota.usage();
    Ok(Space {
        used_bytes: usage.used_bytes,
        max_bytes: journal.max_bytes,
        unmapped_bytes: usage.unmapped_bytes,
        max_unmapped_bytes: journal.max_unmapped_bytes,
    })
}

/// The journal file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JournalFile {
    /// Where it is.
    pub path: String,
    /// The database file plus its write-ahead log.
    pub size_bytes: u64,
    /// The database file (`buktor-journal.db`).
    pub database_bytes: u64,
    /// The write-ahead log beside it (`buktor-journal.db-wal`); 0 when
    /// there is none.
    pub wal_bytes: u64,
}

/// Events by status.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Waiting to be written to the HIS.
    pub pending: i64,
    /// Written to the HIS.
    pub delivered: i64,
    /// Set aside: they cannot be written as they are.
    pub failed: i64,
    /// No mapping knew their event type.
    pub unmapped: i64,
    /// All of them.
    pub total: i64,
}

impl Counts {
    fn add(&mut self, status: &str, count: i64) {
        let slot = match status {
            "pending" => &mut self.pending,
            "delivered" => &mut self.delivered,
            "failed" => &mut self.failed,
            "unmapped" => &mut self.unmapped,
            // The schema's CHECK allows no other status.
            _ => return,
        };
        *slot += count;
        self.total += count;
    }
}

/// The pending event that arrived first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OldestPending {
    /// Its journal id.
    pub id: i64,
    /// Its event type.
    pub event_type: String,
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
    /// How long ago that was, in whole seconds.
    pub age_secs: u64,
    /// The older failed event of the same HIS row that it waits behind
    /// until that one is replayed, if any.
    pub held_by: Option<i64>,
}

/// The event delivered last.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastDelivery {
    /// Its journal id.
    pub id: i64,
    /// Its event type.
    pub event_type: String,
    /// When the HIS committed it (RFC 3339, UTC).
    pub delivered_at: String,
    /// How long ago that was, in whole seconds.
    pub age_secs: u64,
}

/// The newest event with an error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastError {
    /// Its journal id.
    pub id: i64,
    /// Its event type.
    pub event_type: String,
    /// `failed`, or `pending` (retrying).
    pub status: String,
    /// When it arrived (RFC 3339, UTC). The journal does not keep when the
    /// error happened: after this, at its last attempt.
    pub received_at: String,
    /// How long ago it arrived, in whole seconds.
    pub age_secs: u64,
    /// Writes tried.
    pub attempts: i64,
    /// For a retrying event: when it is tried next (RFC 3339, UTC).
    pub next_attempt_at: Option<String>,
    /// For a retrying event: in how many whole seconds (0 when it is due).
    pub next_attempt_in_secs: Option<u64>,
    /// The error, as the database gave it.
    pub message: String,
}

/// Reads the journal at `path` through `connection`, as of `now_ms` (unix
/// milliseconds), in one read transaction.
pub fn gather(connection: &Connection, path: &Path, now_ms: i64) -> rusqlite::Result<JournalStatus> {
    // A deferred transaction: the snapshot is taken at the first read and
    // holds for every query below. Rolled back (nothing to undo) on drop.
    let transaction = connection.unchecked_transaction()?;

    // The one full pass over `events`: counts by type and status, and the
    // latest delivered_at. Aggregated here rather than with GROUP BY, which
    // sorts every row in a temporary b-tree: on a million events, 0.6 s to
    // 0.9 s against 0.25 s for this pass.
    let mut by_type: HashMap<String, Counts> = HashMap::new();
    let mut last_delivery: Option<(i64, String, String)> = None;
    {
        let mut statement = transaction.prepare("SELECT event_type, status, delivered_at, id FROM events")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let event_type = text(row, 0)?;
            let status = text(row, 1)?;
            let counts = match by_type.get_mut(event_type) {
                Some(counts) => counts,
                None => by_type.entry(event_type.to_string()).or_default(),
            };
            counts.add(status, 1);
            if status == Status::Delivered.as_str()
                && let Ok(delivered_at) = text(row, 2)
                && last_delivery.as_ref().is_none_or(|(_, latest, _)| delivered_at > latest.as_str())
            {
                // Reuse the buffers: in a journal delivered in order, every
                // row is a new latest.
                let (id, latest, latest_type) = last_delivery.get_or_insert_default();
                *id = row.get(3)?;
                latest.clear();
                latest.push_str(delivered_at);
                latest_type.clear();
                latest_type.push_str(event_type);
            }
        }
    }
    let mut by_type: IndexMap<String, Counts> = by_type.into_iter().collect();
    by_type.sort_by(|a_type, a, b_type, b| b.total.cmp(&a.total).then_with(|| a_type.cmp(b_type)));
    let mut events = Counts::default();
    for counts in by_type.values() {
        events.pending += counts.pending;
        events.delivered += counts.delivered;
        events.failed += counts.failed;
        events.unmapped += counts.unmapped;
        events.total += counts.total;
    }
    let last_delivery = last_delivery.map(|(id, delivered_at, event_type)| LastDelivery {
        id,
        event_type,
        age_secs: age_secs(&delivered_at, now_ms),
        delivered_at,
    });

    let retrying: i64 = transaction.query_row(
        "SELECT COUNT(*) FROM events INDEXED BY events_waiting WHERE status = 'pending' AND next_attempt_at > 0",
        [],
        |row| row.get(0),
    )?;

    // Being the oldest pending event, only a failed event can hold it back:
    // one that writes one of its rows (one probe of events_failed, and of
    // event_keys for events that write several rows).
    let oldest_pending = transaction
        .query_row(
            "SELECT e.id, e.event_type, e.received_at,
                    NULLIF(MIN(
                        COALESCE((SELECT MIN(f.id) FROM events AS f INDEXED BY events_failed
                                  WHERE f.status = 'failed' AND f.event_key = e.event_key AND f.id < e.id),
                                 9223372036854775807),
                        COALESCE((SELECT MIN(k.event_id) FROM event_keys AS k JOIN events AS f ON f.id = k.event_id
                                  WHERE k.event_key = e.event_key AND f.status = 'failed' AND k.event_id < e.id),
                                 9223372036854775807),
                        COALESCE((SELECT MIN(f.id) FROM event_keys AS mine
                                  JOIN events AS f INDEXED BY events_failed ON f.event_key = mine.event_key
                                  WHERE mine.event_id = e.id AND f.status = 'failed' AND f.id < e.id),
                                 9223372036854775807),
                        COALESCE((SELECT MIN(k.event_id) FROM event_keys AS mine
                                  JOIN event_keys AS k ON k.event_key = mine.event_key
                                  JOIN events AS f ON f.id = k.event_id
                                  WHERE mine.event_id = e.id AND f.status = 'failed' AND k.event_id < e.id),
                                 9223372036854775807)),
                        9223372036854775807)
             FROM events AS e INDEXED BY events_pending
             WHERE e.status = 'pending' ORDER BY e.id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, String>(2)?, row.get(3)?)),
        )
        .optional()?
        .map(|(id, event_type, received_at, held_by)| OldestPending {
            id,
            event_type,
            age_secs: age_secs(&received_at, now_ms),
            received_at,
            held_by,
        });

    // The newest event with an error: the newest failed one, or the newest
    // retrying one, whichever arrived later. (A replayed event keeps its
    // old error until it is tried again; it is not counted here.)
    let newest_failed: Option<i64> = transaction.query_row(
        "SELECT MAX(id) FROM events INDEXED BY events_failed WHERE status = 'failed'",
        [],
        |row| row.get(0),
    )?;
    let newest_retrying: Option<i64> = transaction.query_row(
        "SELECT MAX(id) FROM events INDEXED BY events_waiting WHERE status = 'pending' AND next_attempt_at > 0",
        [],
        |row| row.get(0),
    )?;
    let last_error = match newest_failed.max(newest_retrying) {
        None => None,
        Some(id) => transaction
            .query_row(
                "SELECT id, event_type, status, received_at, attempts, next_attempt_at, last_error
                 FROM events WHERE id = ?1",
                [id],
                |row| {
                    let status: String = row.get(2)?;
                    let received_at: String = row.get(3)?;
                    let next_attempt_at: i64 = row.get(5)?;
                    let retrying = status == Status::Pending.as_str() && next_attempt_at > 0;
                    Ok(LastError {
                        id: row.get(0)?,
                        event_type: row.get(1)?,
                        age_secs: age_secs(&received_at, now_ms),
                        received_at,
                        attempts: row.get(4)?,
                        next_attempt_at: retrying.then(|| rfc3339_of_ms(next_attempt_at)),
                        next_attempt_in_secs: retrying
                            .then(|| u64::try_from(next_attempt_at.saturating_sub(now_ms) / 1000).unwrap_or(0)),
                        status,
                        message: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    })
                },
            )
            .optional()?,
    };
    drop(transaction);

    let database_bytes = file_size(path);
    let wal_bytes = file_size(&wal_path(path));
    Ok(JournalStatus {
        journal: JournalFile {
            path: path.display().to_string(),
            size_bytes: database_bytes + wal_bytes,
            database_bytes,
            wal_bytes,
        },
        events,
        retrying,
        by_type,
        oldest_pending,
        last_delivery,
        last_error,
        space: None,
    })
}

/// Column `index` of `row` as text, borrowed.
fn text<'row>(row: &'row rusqlite::Row<'_>, index: usize) -> rusqlite::Result<&'row str> {
    row.get_ref(index)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e)))
}

/// `journal.db` → `journal.db-wal`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Whole seconds from `time` (RFC 3339) to `now_ms`; 0 for a time in the
/// future (a clock set back) or one that does not parse.
fn age_secs(time: &str, now_ms: i64) -> u64 {
    clock::age_secs(time, now_ms).map_or(0, |secs| secs as u64)
}

fn rfc3339_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// `status`: the journal at a glance. It opens the journal read only:
/// beside a running middleware, or not, it changes nothing.
pub fn command(config_path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let path = loaded.journal_path();
    let connection = journal::open_read_only(&path)?;
    let mut status = gather(&connection, &path, clock::now_ms())?;
    status.space = Some(space(&connection, &loaded.config.journal)?);
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_whole_seconds_and_never_negative() {
        let received = "2026-01-01T00:00:00.000Z";
        let at = chrono::DateTime::parse_from_rfc3339(received).unwrap().timestamp_millis();
        assert_eq!(age_secs(received, at + 242_999), 242);
        assert_eq!(age_secs(received, at - 5_000), 0, "a clock set back");
        assert_eq!(age_secs("not a time", at), 0);
    }

    /// What `status` costs on a journal of a million events (a measurement,
    /// not a test). Run it with
    /// `cargo test --release -p buktor-middleware --bin buktor-middleware a_million_events -- --ignored --nocapture`;
    /// with `BUKTOR_STATUS_JOURNAL=/some/file.db` the journal is kept there,
    /// to time the binary on it.
    #[test]
    #[ignore = "builds a 1,000,000-event journal; run by hand"]
    fn a_million_events() {
        const EVENTS: i64 = 1_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::var_os("BUKTOR_STATUS_JOURNAL").map_or_else(|| dir.path().join("j.db"), PathBuf::from);
        let start_ms = 1_767_225_600_000; // 2026-01-01: 30 days of events, one every 2.6 s
        let step_ms = 30 * 86_400_000 / EVENTS;
        if !path.exists() {
            let built = std::time::Instant::now();
            let mut connection = journal::open(&path).unwrap();
            let transaction = connection.transaction().unwrap();
            {
                let mut event = transaction
                    .prepare(
                        "INSERT INTO events (id, event_type, received_at, status, event_key, attempts, last_error,
                                             next_attempt_at, delivered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .unwrap();
                let mut payload = transaction.prepare("INSERT INTO payloads (event_id, body) VALUES (?1, ?2)").unwrap();
                for id in 1..=EVENTS {
                    let at = start_ms + id * step_ms;
                    let (event_type, table) = match id % 10 {
                        0..=4 => ("appointment", "HIS_appointments"),
                        5 | 6 => ("schedule_change", "HIS_schedules"),
                        _ => ("payment", "HIS_payments"),
                    };
                    // The newest 5,000 pending (500 of them retrying), 500
                    // failed and 500 unmapped spread through; the rest delivered.
                    let (status, attempts, error, next, delivered) = if id > EVENTS - 5_000 {
                        if id % 10 == 0 {
                            ("pending", 3, Some("CONFLICT error (retryable): database is locked"), at + 60_000, None)
                        } else {
                            ("pending", 0, None, 0, None)
                        }
                    } else if id % 2_000 == 1 {
                        ("failed", 1, Some("SCHEMA error: table has no column named HIS_room"), 0, None)
                    } else if id % 2_000 == 2 {
                        ("unmapped", 0, None, 0, None)
                    } else {
                        ("delivered", 1, None, 0, Some(rfc3339_of_ms(at + 40)))
                    };
                    let event_type = if status == "unmapped" { "refund" } else { event_type };
                    let key = format!("[\"{table}\",\"{}\"]", id % 50_000);
                    event
                        .execute(rusqlite::params![
                            id,
                            event_type,
                            rfc3339_of_ms(at),
                            status,
                            key,
                            attempts,
                            error,
                            next,
                            delivered
                        ])
                        .unwrap();
                    let body = format!(
                        r#"{{"event_type": "{event_type}", "appointment_id": {}, "status": "confirmed", "patient": "Patient {id}", "doctor": "dr. Example", "clinic": "Poli Umum", "start": "2026-03-03T09:00:00", "notes": "follow-up visit"}}"#,
                        id % 50_000
                    );
                    payload.execute(rusqlite::params![id, body]).unwrap();
                }
            }
            transaction.commit().unwrap();
            drop(connection);
            eprintln!("built {EVENTS} events in {:.1} s", built.elapsed().as_secs_f64());
        }
        let connection = journal::open_read_only(&path).unwrap();
        for round in 1..=3 {
            let started = std::time::Instant::now();
            let status = gather(&connection, &path, start_ms + EVENTS * step_ms + 1_000).unwrap();
            eprintln!("gather, round {round}: {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
            if round == 3 {
                eprint!("{status}");
                assert_eq!(status.events.total, EVENTS);
                assert_eq!(status.events.pending, 5_000);
                assert_eq!(status.retrying, 500);
            }
        }
    }
}
