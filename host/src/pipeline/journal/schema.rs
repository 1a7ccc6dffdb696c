//! The journal's schema (migrations keyed by `PRAGMA user_version`), and
//! opening it: for writing (WAL, `synchronous=FULL`, migrated), or read
//! only (`status`, `/metrics`: never migrated, never changed).

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags};

use super::JournalError;

/// Each migration brings the schema from version `index` to `index + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1 (first released schema; it changed freely before any release): events, and their payloads apart: an event's row is rewritten at
    // each change of status, its payload never.
    "CREATE TABLE events (
        id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after pruning
        event_type      TEXT NOT NULL,
        received_at     TEXT NOT NULL,                     -- RFC 3339, UTC, milliseconds
        status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'unmapped')),
        event_key       TEXT,                              -- table and key values; orders events per HIS row
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,        -- unix ms; a pending event waits until then
        delivered_at    TEXT
    );
    -- Delivery ids seen (the webhook-id header, or the configured event
    -- field), so that an event sent again is recognised.
    CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        event_id    INTEGER NOT NULL,
        received_ms INTEGER NOT NULL                       -- unix ms, for the duplicate window
    ) WITHOUT ROWID;
    CREATE TABLE payloads (
        event_id INTEGER PRIMARY KEY REFERENCES events (id),
        body     TEXT NOT NULL                             -- the request body, byte for byte
    );
    CREATE INDEX events_pending ON events (id) WHERE status = 'pending';
    -- Pending events that have failed at least once (only they have a
    -- next_attempt_at above 0), by HIS row: the few that can hold back later
    -- events for the same row. Normal traffic never touches this index.
    CREATE INDEX events_waiting ON events (event_key, id) WHERE status = 'pending' AND next_attempt_at > 0;
    -- Failed events, by HIS row: each holds back later events for its row
    -- until it is replayed.
    CREATE INDEX events_failed ON events (event_key, id) WHERE status = 'failed';",
    // 2 (event keys name the HIS row, not the mapping; issue 20): what the
    // journal keeps about itself, by name. `event_key_fingerprint` is the
    // key format and the mappings' keys that the stored event keys were
    // made with (rekey.rs); at startup, when the running config's differs,
    // the undelivered events are given their keys anew. No row yet: the
    // first start of this version re-keys the journal.
    "CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 3 (issue 20): events the worker found unmapped are failed events now,
    // so that they hold back their row's later events (journal.rs, Holds);
    // and the newest pruned event of each HIS row that an older unmapped
    // event may still be replayed into, so that `replay` still sees that
    // the row has a newer state after the newer event was pruned.
    "UPDATE events SET status = 'failed' WHERE status = 'unmapped' AND event_key IS NOT NULL;
    CREATE TABLE pruned_keys (
        event_key TEXT PRIMARY KEY,
        last_id   INTEGER NOT NULL                          -- the newest pruned event of that row
    ) WITHOUT ROWID;",
    // 4 (issue 22): the other HIS rows an event writes, besides its
    // `event_key` (the first target's row), when its mapping has targets
    // with rows of their own (another table, a payment that also marks its
    // appointment paid). Empty for every other event. Each key holds back
    // and is held back like an `event_key`; pruned with its event.
    "CREATE TABLE event_keys (
        event_key TEXT NOT NULL,
        event_id  INTEGER NOT NULL,
        PRIMARY KEY (event_key, event_id)
    ) WITHOUT ROWID;
    CREATE INDEX event_keys_by_event ON event_keys (event_id);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens (creating if needed) the journal and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection, JournalError> {
    let shown = path.display().to_string();
    let open_error = |source| JournalError::Open { path: shown.clone(), source };
    create_private(path);
    let mut connection = Connection::open(path).map_err(open_error)?;
    connection.busy_timeout(Duration::from_secs(5)).map_err(open_error)?;
    // WAL with synchronous=FULL: every commit is fsynced before it returns,
    // and the sync worker can read while intake writes.
    let mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some network file systems cannot do WAL. Still durable, but the
        // worker's reads then wait for intake's writes.
        tracing::warn!("the journal {shown} runs in {mode} mode, not WAL: keep it on a local disk");
    }
    connection.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    // A 16 MB page cache keeps a large backlog's indexes in memory, and a
    // checkpoint every ~40 MB of WAL copies each hot page once instead of
    // again and again while the worker drains.
    connection.pragma_update(None, "cache_size", -16_000).map_err(open_error)?;
    connection.pragma_update(None, "wal_autocheckpoint", 10_000).map_err(open_error)?;
    // Room for every statement the committer and the worker reuse, the
    // sizes of the multi-row inserts among them.
    connection.set_prepared_statement_cache_capacity(64);
    migrate(&mut connection).map_err(|e| match e {
        JournalError::Sqlite(source) => open_error(source),
        JournalError::NewerSchema { found, .. } => JournalError::NewerSchema { path: shown.clone(), found },
        other => other,
    })?;
    Ok(connection)
}

/// Creates the journal empty and readable by its owner only (0600),
/// unless it exists: it holds patient data, and a hand-run middleware's
/// umask (022) would otherwise make it readable by every user of the
/// server. SQLite gives the -wal and -shm files the same mode. Failing
/// here is not an error: opening the journal says what is wrong.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

fn migrate(connection: &mut Connection) -> Result<(), JournalError> {
    let version: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema { path: String::new(), found: version });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

/// A journal as the release with schema `version` left it: migrated up to
/// `version` only, for tests of what a later start does with it.
#[cfg(test)]
pub(crate) fn create_at_version(path: &Path, version: usize) -> Connection {
    let connection = Connection::open(path).unwrap();
    for migration in &MIGRATIONS[..version] {
        connection.execute_batch(migration).unwrap();
    }
    connection.pragma_update(None, "user_version", version).unwrap();
    connection
}

/// Why the journal could not be opened read only (`status`, `/metrics`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// There is no journal file yet.
    #[error("no journal at {0}: the middleware has not run with this config yet")]
    Missing(String),
    /// The file is older than this build, or not a journal at all.
    #[error(
        "the journal {path} has schema version {found}, older than this buktor-middleware's {SCHEMA_VERSION}: start the middleware once (it brings the journal up to date), then run status again"
    )]
    OlderSchema {
        /// The journal file.
        path: String,
        /// Its schema version.
        found: usize,
    },
    /// It could not be opened or read, or it is newer than this build.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Opens the journal at `path` read only, beside a running middleware or
/// not, and checks that this build knows its schema.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(OpenError::Missing(shown));
    }
    let open_error = |source| JournalError::Open { path: shown.clone(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
    connection.busy_timeout(Duration::from_secs(5)).map_err(open_error)?;
    let found: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_error)?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema { path: shown, found }.into());
    }
    if found < SCHEMA_VERSION {
        return Err(OpenError::OlderSchema { path: shown, found });
    }
    Ok(connection)
}
