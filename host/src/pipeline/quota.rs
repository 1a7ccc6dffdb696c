//! How much the journal may hold: `journal.max_bytes` in all, and for
//! events no mapping knows (kept as `unmapped`) `journal.max_unmapped_bytes`
//! in all and `journal.max_unmapped_bytes_per_type` per event type.
//!
//! Intake asks [`Quota::admit`] before it journals an event; over a limit,
//! the event is refused (507, with `Retry-After`), never answered 2xx and
//! then dropped. Nothing already accepted is ever removed to make room.
//!
//! Unmapped events are kept whole: the body is what a replay writes once a
//! mapping for the type is added, and a cut body could not be written. The
//! unmapped caps are what bound them, well below the journal's own, so that
//! a sender inventing event types fills its own allowance and mapped events
//! still flow.
//!
//! The numbers: the journal's used pages (`page_count - freelist_count`,
//! read after every round that appended) and the unmapped payload bytes per
//! type (counted from the journal at startup and after every housekeeping
//! round, and added to as events are appended). `replay` and `prune` from
//! the command line are not seen until the next recount; until then the
//! count is high, which refuses early rather than late.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use rusqlite::Connection;

use crate::{config::JournalConfig, sync::lock};

/// The limits (from `journal`).
#[derive(Debug, Clone, Copy)]
pub struct QuotaLimits {
    /// `journal.max_bytes`.
    pub max_bytes: u64,
    /// `journal.max_unmapped_bytes`.
    pub max_unmapped_bytes: u64,
    /// `journal.max_unmapped_bytes_per_type`.
    pub max_unmapped_bytes_per_type: u64,
    /// `server.max_body_bytes`: the journal is full once an event of this
    /// size would not fit.
    pub max_event_bytes: u64,
}

/// What the journal holds now, against its limits.
#[derive(Debug)]
pub struct Quota {
    limits: QuotaLimits,
    used_bytes: AtomicU64,
    unmapped: Mutex<Unmapped>,
}

#[derive(Debug, Default)]
struct Unmapped {
    total_bytes: u64,
    by_type: HashMap<String, u64>,
}

/// Why an event does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Over {
    /// The journal is full.
    #[error(
        "the journal holds {used_bytes} bytes, at its limit of {max_bytes} (journal.max_bytes): nothing more is accepted until the HIS takes the backlog or an operator prunes"
    )]
    Journal {
        /// Bytes in use.
        used_bytes: u64,
        /// `journal.max_bytes`.
        max_bytes: u64,
    },
    /// Unmapped events fill their allowance.
    #[error(
        "unmapped events fill {used_bytes} of the {max_bytes} bytes allowed ({setting}): add a mapping for the event type and replay, or prune unmapped events"
    )]
    Unmapped {
        /// `journal.max_unmapped_bytes` or `…_per_type`.
        setting: &'static str,
        /// Bytes held.
        used_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
}

/// A snapshot, for `/metrics` and `/ready`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The journal's used bytes.
    pub used_bytes: u64,
    /// Unmapped events' payload bytes.
    pub unmapped_bytes: u64,
    /// The limits.
    pub limits: QuotaLimits,
}

impl QuotaLimits {
    /// The limits `journal` sets; the journal is full once an event of
    /// `max_event_bytes` (`server.max_body_bytes`) would not fit.
    pub fn of(journal: &JournalConfig, max_event_bytes: u64) -> Self {
        Self {
            max_bytes: journal.max_bytes,
            max_unmapped_bytes: journal.max_unmapped_bytes,
            max_unmapped_bytes_per_type: journal.max_unmapped_bytes_per_type,
            max_event_bytes,
        }
    }
}

impl Quota {
    /// Empty, with `limits`; [`Quota::measure`] and [`Quota::recount`]
    /// read the journal.
    pub fn new(limits: QuotaLimits) -> Self {
        Self { limits, used_bytes: AtomicU64::new(0), unmapped: Mutex::default() }
    }

    /// Whether an event of `bytes` fits; `unmapped` when no mapping knows
    /// its type.
    pub fn admit(&self, event_type: &str, unmapped: bool, bytes: u64) -> Result<(), Over> {
        let used_bytes = self.used_bytes.load(Ordering::Relaxed);
        if used_bytes.saturating_add(bytes) > self.limits.max_bytes {
            return Err(Over::Journal { used_bytes, max_bytes: self.limits.max_bytes });
        }
        if !unmapped {
            return Ok(());
        }
        let held = lock(&self.unmapped);
        if held.total_bytes.saturating_add(bytes) > self.limits.max_unmapped_bytes {
            return Err(Over::Unmapped {
                setting: "journal.max_unmapped_bytes",
                used_bytes: held.total_bytes,
                max_bytes: self.limits.max_unmapped_bytes,
            });
        }
        let of_type = held.by_type.get(event_type).copied().unwrap_or(0);
        if of_type.saturating_add(bytes) > self.limits.max_unmapped_bytes_per_type {
            return Err(Over::Unmapped {
                setting: "journal.max_unmapped_bytes_per_type",
                used_bytes: of_type,
                max_bytes: self.limits.max_unmapped_bytes_per_type,
            });
        }
        Ok(())
    }

    /// An unmapped event of `bytes` was journaled.
    pub fn unmapped_appended(&self, event_type: &str, bytes: u64) {
        let mut held = lock(&self.unmapped);
        held.total_bytes += bytes;
        *held.by_type.entry(event_type.to_string()).or_default() += bytes;
    }

    /// Reads the journal's used bytes (two header reads: cheap).
    pub fn measure(&self, connection: &Connection) -> rusqlite::Result<()> {
        let pragma = |name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, u64>(0));
        let used = pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * pragma("page_size")?;
        self.used_bytes.store(used, Ordering::Relaxed);
        Ok(())
    }

    /// Counts the unmapped events' bytes per type afresh.
    pub fn recount(&self, connection: &Connection) -> rusqlite::Result<()> {
        let by_type = unmapped_bytes_by_type(connection)?;
        let total_bytes = by_type.values().sum();
        *lock(&self.unmapped) = Unmapped { total_bytes, by_type };
        self.measure(connection)
    }

    /// Whether the largest event would no longer fit: `/ready` then says
    /// the journal is full.
    pub fn is_full(&self) -> bool {
        self.used_bytes.load(Ordering::Relaxed).saturating_add(self.limits.max_event_bytes) > self.limits.max_bytes
    }

    /// What it holds now.
    pub fn usage(&self) -> Usage {
        Usage {
            used_bytes: self.used_bytes.load(Ordering::Relaxed),
            unmapped_bytes: lock(&self.unmapped).total_bytes,
            limits: self.limits,
        }
    }
}

/// The payload bytes of unmapped events, by type (one pass over them).
pub fn unmapped_bytes_by_type(connection: &Connection) -> rusqlite::Result<HashMap<String, u64>> {
    let mut statement = connection.prepare(
        "SELECT e.event_type, SUM(length(CAST(p.body AS BLOB))) FROM events AS e JOIN payloads AS p ON p.event_id = e.id
         WHERE e.status = 'unmapped' GROUP BY e.event_type",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QuotaLimits =
        QuotaLimits { max_bytes: 1000, max_unmapped_bytes: 300, max_unmapped_bytes_per_type: 200, max_event_bytes: 50 };

    #[test]
    fn unmapped_events_fill_their_own_allowance_and_mapped_ones_still_fit() {
        let quota = Quota::new(LIMITS);
        assert_eq!(quota.admit("junk", true, 150), Ok(()));
        quota.unmapped_appended("junk", 150);
        assert!(matches!(
            quota.admit("junk", true, 100),
            Err(Over::Unmapped { setting: "journal.max_unmapped_bytes_per_type", .. })
        ));
        assert_eq!(quota.admit("other-junk", true, 100), Ok(()));
        quota.unmapped_appended("other-junk", 100);
        assert!(matches!(
            quota.admit("more-junk", true, 100),
            Err(Over::Unmapped { setting: "journal.max_unmapped_bytes", .. })
        ));
        assert_eq!(quota.admit("appointment", false, 500), Ok(()));
        assert_eq!(quota.usage().unmapped_bytes, 250);
    }

    #[test]
    fn the_journal_limit_holds_for_every_event() {
        let quota = Quota::new(LIMITS);
        quota.used_bytes.store(900, Ordering::Relaxed);
        assert_eq!(quota.admit("appointment", false, 100), Ok(()));
        assert_eq!(quota.admit("appointment", false, 101), Err(Over::Journal { used_bytes: 900, max_bytes: 1000 }));
        assert!(!quota.is_full());
        quota.used_bytes.store(951, Ordering::Relaxed);
        assert!(quota.is_full(), "the largest event no longer fits");
    }
}
