//! Reading ahead: while the writer plugin writes one window of events, a
//! helper thread reads and maps the next one.
//!
//! Draining a backlog is a chain of passes: read a window from the journal,
//! map each event to its row, hand the rows to the plugin. Reading and
//! mapping take about a third of a pass, and the plugin mostly waits on the
//! HIS meanwhile, so the next window is read during the write, through a
//! read connection of its own. The sync worker uses that window only if
//! nothing it depends on has changed (see [`Window::fits`]); otherwise it
//! reads again. Nothing here writes anything, or calls the plugin: what to
//! write and in which order stays the worker's alone.

use std::{sync::Arc, thread::JoinHandle};

use rusqlite::Connection;

use crate::pipeline::{
    journal::{self, Holds, PendingEvent},
    mapping::{MappingError, Mappings, TargetRows},
};

/// An event, and its rows as its mapping makes them.
pub struct Prepared {
    /// The event, as journaled.
    pub event: PendingEvent,
    /// A row per target whose `when` holds, with the target's index;
    /// `None` when no mapping knows its type.
    pub rows: Option<Result<TargetRows, MappingError>>,
}

/// Maps each event to its rows.
pub fn prepare(mappings: &Mappings, events: Vec<PendingEvent>) -> Vec<Prepared> {
    events
        .into_iter()
        .map(|event| {
            let rows = mappings.rows(&event.event_type, &event.payload, &event.received_at);
            Prepared { event, rows }
        })
        .collect()
}

/// A window read ahead.
pub struct Window {
    /// What [`journal::holds`] said just before it was read.
    holds: Holds,
    /// It holds due events after this id.
    after_id: i64,
    /// The events, oldest first, each with its row.
    pub events: Vec<Prepared>,
}

impl Window {
    /// Whether the worker may use this window as the one it would read now,
    /// after `after_id` with `holds`. Events that arrived or became due
    /// since it was read wait for the next window, as they would anyway.
    pub fn fits(&self, after_id: i64, holds: Holds) -> bool {
        self.after_id == after_id && self.holds == holds
    }
}

/// The read-ahead thread's connection, and the read in flight.
pub struct Lookahead {
    /// `None` while a read is in flight (the thread has it), and for good
    /// if that thread died.
    connection: Option<Connection>,
    mappings: Arc<Mappings>,
    /// The most events per window (`sync.batch_size`).
    limit: usize,
}

/// A read in flight; [`Lookahead::finish`] waits for it.
pub struct InFlight(JoinHandle<(Connection, rusqlite::Result<Window>)>);

impl Lookahead {
    /// Reads ahead through `connection`, a read connection to the journal
    /// of its own.
    pub fn new(connection: Connection, mappings: Arc<Mappings>, limit: usize) -> Self {
        Self { connection: Some(connection), mappings, limit }
    }

    /// Starts reading the window of due events after `after_id`, on a
    /// thread of its own. `None` if it cannot.
    /// `now_ms` is the time of the pass it reads for.
    pub fn start(&mut self, after_id: i64, now_ms: i64) -> Option<InFlight> {
        let connection = self.connection.take()?;
        let (mappings, limit) = (self.mappings.clone(), self.limit);
        let spawned = std::thread::Builder::new().name("sync-lookahead".into()).spawn(move || {
            let window = read(&connection, &mappings, after_id, now_ms, limit);
            (connection, window)
        });
        match spawned {
            Ok(thread) => Some(InFlight(thread)),
            Err(e) => {
                tracing::warn!("cannot start reading ahead ({e}); the sync worker reads each window itself");
                None
            }
        }
    }

    /// Waits for the read in flight; returns its window, if it succeeded.
    pub fn finish(&mut self, in_flight: InFlight) -> Option<Window> {
        match in_flight.0.join() {
            Ok((connection, window)) => {
                self.connection = Some(connection);
                window.inspect_err(|e| tracing::debug!("reading ahead failed: {e}")).ok()
            }
            Err(_) => {
                tracing::error!("the read-ahead thread crashed; the sync worker reads each window itself");
                None
            }
        }
    }
}

/// Reads the window after `after_id`: its holds and its events in one
/// snapshot, as the worker reads its own.
fn read(
    connection: &Connection,
    mappings: &Mappings,
    after_id: i64,
    now_ms: i64,
    limit: usize,
) -> rusqlite::Result<Window> {
    let snapshot = connection.unchecked_transaction()?;
    let holds = journal::holds(&snapshot)?;
    let events = journal::due_events(&snapshot, now_ms, after_id, holds, limit, journal::WINDOW_BYTES)?;
    drop(snapshot);
    Ok(Window { holds, after_id, events: prepare(mappings, events) })
}
