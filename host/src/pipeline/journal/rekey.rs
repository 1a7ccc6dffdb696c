//! Giving the journal's undelivered events their keys anew, at startup,
//! when what a key is made of has changed.
//!
//! Each event is journaled with its row key ([`mapping::key`]), made at
//! intake from the event and its type's mapping, and the sync worker holds
//! and orders events by it. When the key's format changes (an upgrade, see
//! [`mapping::KEY_FORMAT`]) or a mapping's table or key changes (a config
//! edit), new events for a row get a key that the row's stored events do
//! not have: a failed or retrying event would no longer hold them back.
//! So before intake and the worker start, every stored event that can
//! still hold back or be held is given its key under the current mappings:
//! - pending and failed events;
//! - unmapped events that have a key (the worker set them unmapped after
//!   their mapping was removed) and whose type is mapped again. Events
//!   unmapped at intake have no key: `replay` gives them one.
//!
//! Delivered events keep theirs: nothing waits for them. An event whose
//! type has no mapping now keeps its key too (it cannot be written as it
//! is; when its mapping is back, the fingerprint changes again), and so
//! does one from which the current mapping makes no key (a key field it
//! lacks): those are counted, for a warning.
//!
//! It runs only when the fingerprint stored in the journal's `meta` table
//! differs from the running config's ([`Mappings::key_fingerprint`]), in
//! transactions of at most [`BATCH`] events. The fingerprint is stored
//! last: a start that is interrupted re-keys again the next time, which
//! changes nothing that was already done.
//!
//! [`mapping::key`]: crate::pipeline::mapping::key
//! [`mapping::KEY_FORMAT`]: crate::pipeline::mapping::KEY_FORMAT

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::JournalError;
use crate::pipeline::mapping::{Mappings, Members};

/// The name, in the `meta` table, of the fingerprint of the mappings the
/// stored event keys were made with.
pub const FINGERPRINT: &str = "event_key_fingerprint";

/// The most events read and re-keyed in one transaction.
pub const BATCH: usize = 1_000;

/// The most payload bytes held in memory at once (payloads can be up to
/// `server.max_body_bytes` each): a batch ends early past this.
const BATCH_BYTES: usize = 16 << 20;

/// What a re-keying did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rekeyed {
    /// Undelivered events looked at (pending, failed, and unmapped ones
    /// with a key).
    pub examined: usize,
    /// Events whose key changed.
    pub rekeyed: usize,
    /// Events of a mapped type from which the current mapping makes no
    /// key: they keep the key they had.
    pub kept: usize,
}

/// Re-keys the undelivered events if the journal's keys were made with
/// other mappings or another key format than `mappings`; `None` if they
/// were not (nothing to do). Call it before anything else writes.
pub fn rekey(connection: &mut Connection, mappings: &Mappings) -> Result<Option<Rekeyed>, JournalError> {
    let fingerprint = mappings.key_fingerprint();
    let stored: Option<String> =
        connection.query_row("SELECT value FROM meta WHERE name = ?1", [FINGERPRINT], |row| row.get(0)).optional()?;
    if stored.as_deref() == Some(fingerprint.as_str()) {
        return Ok(None);
    }
    let mut report = Rekeyed::default();
    let mut after_id = 0;
    // Whether any event has other rows' keys to compare (rare: only
    // mappings with targets in other tables make them).
    let extra_keys: bool = connection.query_row("SELECT EXISTS (SELECT 1 FROM event_keys)", [], |row| row.get(0))?;
    loop {
        let (batch, last_id) = candidates(connection, after_id, extra_keys)?;
        let Some(last_id) = last_id else { break };
        after_id = last_id;
        let mut changes = Vec::new();
        for Candidate { id, event_type, key, extra, body } in batch {
            report.examined += 1;
            if mappings.get(&event_type).is_none() {
                continue;
            }
            let new_keys = Members::parse(&body).ok().and_then(|members| mappings.keys_of(&event_type, &members)?.ok());
            match new_keys {
                None => report.kept += 1,
                Some(new) if key.as_deref() == Some(new.primary.as_str()) && same_set(&extra, &new.extra) => {}
                Some(new) => changes.push((id, new, key)),
            }
        }
        if !changes.is_empty() {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, new, old_key) in &changes {
                // Only if nothing changed it since it was read (an
                // operator's `replay` may run beside a starting middleware).
                let changed = transaction
                    .prepare_cached("UPDATE events SET event_key = ?2 WHERE id = ?1 AND event_key IS ?3")?
                    .execute(params![id, new.primary, old_key])?;
                if changed > 0 {
                    transaction.prepare_cached("DELETE FROM event_keys WHERE event_id = ?1")?.execute([id])?;
                    for key in &new.extra {
                        transaction
                            .prepare_cached("INSERT OR IGNORE INTO event_keys (event_key, event_id) VALUES (?1, ?2)")?
                            .execute(params![key, id])?;
                    }
                }
                report.rekeyed += changed;
            }
            transaction.commit()?;
        }
    }
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction
        .execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)", params![FINGERPRINT, fingerprint])?;
    transaction.commit()?;
    Ok(Some(report))
}

/// Whether `a` and `b` hold the same keys (the journal reads them sorted).
fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|key| b.contains(key))
}

/// An undelivered event, as re-keying reads it.
struct Candidate {
    id: i64,
    event_type: String,
    key: Option<String>,
    /// Its other rows' keys (`event_keys`), in the order they were made.
    extra: Vec<String>,
    body: String,
}

/// The next undelivered events with an id above `after_id`, at most
/// [`BATCH`] of them or [`BATCH_BYTES`] of payload, and the last id read
/// (`None` when there are no more).
///
/// With `extra_keys` (the journal has events that write several rows),
/// each event's other keys are read too; without, that probe is skipped.
fn candidates(
    connection: &Connection,
    after_id: i64,
    extra_keys: bool,
) -> rusqlite::Result<(Vec<Candidate>, Option<i64>)> {
    let extra_column = if extra_keys {
        "(SELECT json_group_array(event_key) FROM event_keys AS k WHERE k.event_id = e.id)"
    } else {
        "NULL"
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT e.id, e.event_type, e.event_key, p.body, {extra_column}
         FROM events AS e JOIN payloads AS p ON p.event_id = e.id
         WHERE e.id > ?1 AND (e.status IN ('pending', 'failed') OR (e.status = 'unmapped' AND e.event_key IS NOT NULL))
         ORDER BY e.id LIMIT ?2"
    ))?;
    let mut rows = statement.query(params![after_id, BATCH as i64])?;
    let (mut batch, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next()? {
        let extra = super::keys_json(row.get_ref(4)?.as_str_or_null()?, 4)?;
        let candidate =
            Candidate { id: row.get(0)?, event_type: row.get(1)?, key: row.get(2)?, extra, body: row.get(3)? };
        bytes += candidate.body.len();
        batch.push(candidate);
        if bytes >= BATCH_BYTES {
            break;
        }
    }
    let last_id = batch.last().map(|c| c.id);
    Ok((batch, last_id))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::pipeline::journal;

    /// The seed's mappings, with `edit` applied to its config first.
    fn mappings(edit: &dyn Fn(&mut serde_json::Value)) -> Mappings {
        let mut config: serde_json::Value = serde_json::from_str(include_str!("../../../../his-config.json")).unwrap();
        edit(&mut config);
        Mappings::new(&crate::config::parse(&config.to_string()).unwrap().mapping)
    }

    /// Stores an event as it is, whatever the schema's version, and
    /// returns its id.
    fn insert(connection: &Connection, event_type: &str, status: &str, key: Option<&str>, body: &str) -> i64 {
        connection
            .execute(
                "INSERT INTO events (event_type, received_at, status, event_key) VALUES (?1, '2026-01-01T00:00:00.000Z', ?2, ?3)",
                params![event_type, status, key],
            )
            .unwrap();
        let id = connection.last_insert_rowid();
        connection.execute("INSERT INTO payloads (event_id, body) VALUES (?1, ?2)", params![id, body]).unwrap();
        id
    }

    fn key_of(connection: &Connection, id: i64) -> Option<String> {
        connection.query_row("SELECT event_key FROM events WHERE id = ?1", [id], |row| row.get(0)).unwrap()
    }

    fn journal_at(dir: &Path) -> Connection {
        journal::open(&dir.join("journal.db")).unwrap()
    }

    fn extra_keys_of(connection: &Connection, id: i64) -> Vec<String> {
        let mut statement = connection.prepare("SELECT event_key FROM event_keys WHERE event_id = ?1").unwrap();
        statement.query_map([id], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_target_in_another_table_gives_the_undelivered_events_their_other_row_and_takes_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal_at(dir.path());
        let body = r#"{"event_type": "payment", "payment_id": 7, "appointment_id": 3, "status": "paid"}"#;
        let pending = insert(&connection, "payment", "pending", Some(r#"["his_payments","7"]"#), body);
        let delivered = insert(&connection, "payment", "delivered", Some(r#"["his_payments","7"]"#), body);
        rekey(&mut connection, &mappings(&|_| {})).unwrap();
        // The payment now also marks its appointment paid.
        let two_tables = mappings(&|config| {
            let payment = config["mapping"]["payment"].clone();
            config["mapping"]["payment"] = serde_json::json!([payment, {
                "table": "HIS_appointments", "action": "update", "key": ["appointment_id"],
                "fields": {"appointment_id": "HIS_appointment_id"}, "columns": {"HIS_paid": {"const": 1}}}]);
        });
        let report = rekey(&mut connection, &two_tables).unwrap().expect("the fingerprint changed");
        assert_eq!((report.examined, report.rekeyed), (1, 1));
        assert_eq!(extra_keys_of(&connection, pending), [r#"["his_appointments","3"]"#]);
        assert!(extra_keys_of(&connection, delivered).is_empty(), "a delivered event keeps what it had");
        assert_eq!(key_of(&connection, pending).as_deref(), Some(r#"["his_payments","7"]"#));
        // And back: the other row goes with the target.
        rekey(&mut connection, &mappings(&|_| {})).unwrap().expect("changed again");
        assert!(extra_keys_of(&connection, pending).is_empty());
    }

    #[test]
    fn with_the_same_fingerprint_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal_at(dir.path());
        let seed = mappings(&|_| {});
        let id = insert(&connection, "appointment", "pending", Some("stale"), r#"{"appointment_id": 1}"#);
        let first = rekey(&mut connection, &seed).unwrap();
        assert_eq!(first, Some(Rekeyed { examined: 1, rekeyed: 1, kept: 0 }), "a new journal has no fingerprint");
        assert_eq!(key_of(&connection, id).as_deref(), Some(r#"["his_appointments","1"]"#));

        // Another start with the same mappings (in another order, the
        // table in another case): not even read.
        connection.execute("UPDATE events SET event_key = 'left alone' WHERE id = ?1", [id]).unwrap();
        let changes = connection.total_changes();
        let same = mappings(&|config| {
            let mapping = config["mapping"].as_object_mut().unwrap();
            let appointment = mapping.remove("appointment").unwrap();
            mapping.insert("appointment".into(), appointment);
            config["mapping"]["appointment"]["table"] = "his_APPOINTMENTS".into();
        });
        assert_eq!(rekey(&mut connection, &same).unwrap(), None);
        assert_eq!(connection.total_changes(), changes);
        assert_eq!(key_of(&connection, id).as_deref(), Some("left alone"));
    }

    #[test]
    fn a_changed_mapping_re_keys_the_events_that_can_still_hold_or_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = journal_at(dir.path());
        assert!(rekey(&mut connection, &mappings(&|_| {})).unwrap().is_some());
        let old = r#"["his_appointments","1"]"#;
        let body = r#"{"event_type": "appointment", "appointment_id": 1, "status": "x"}"#;
        let pending = insert(&connection, "appointment", "pending", Some(old), body);
        let failed = insert(&connection, "appointment", "failed", Some(old), body);
        let delivered = insert(&connection, "appointment", "delivered", Some(old), body);
        // Set unmapped by the worker while the type had no mapping.
        let unmapped_with_key = insert(&connection, "appointment", "unmapped", Some(old), body);
        // Unmapped at intake: no key; replay gives it one.
        let unmapped_at_intake = insert(&connection, "appointment", "unmapped", None, body);
        // The new mapping's key field is missing from this one.
        let without_key = insert(&connection, "appointment", "failed", Some(old), r#"{"appointment_id": 1}"#);
        let other_type = insert(&connection, "refund", "pending", Some("refund key"), r#"{"refund_id": 1}"#);

        // The appointments move to another table, keyed by two columns.
        let moved = mappings(&|config| {
            config["mapping"]["appointment"] = serde_json::json!({
                "table": "HIS_Visits",
                "fields": {"appointment_id": "HIS_visit_id", "status": "HIS_state"},
                "key": ["status", "appointment_id"]
            });
        });
        let report = rekey(&mut connection, &moved).unwrap();
        assert_eq!(report, Some(Rekeyed { examined: 5, rekeyed: 3, kept: 1 }));
        let new = Some(r#"["his_visits","x","1"]"#.to_string());
        assert_eq!(key_of(&connection, pending), new);
        assert_eq!(key_of(&connection, failed), new);
        assert_eq!(key_of(&connection, unmapped_with_key), new);
        assert_eq!(key_of(&connection, delivered).as_deref(), Some(old), "delivered: nothing waits for it");
        assert_eq!(key_of(&connection, unmapped_at_intake), None);
        assert_eq!(key_of(&connection, without_key).as_deref(), Some(old), "no key can be made: kept");
        assert_eq!(key_of(&connection, other_type).as_deref(), Some("refund key"), "no mapping: kept");
        assert_eq!(rekey(&mut connection, &moved).unwrap(), None, "done once");
    }

    #[test]
    fn a_journal_of_the_previous_release_gets_this_releases_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        fn appointments_in(table: &'static str, key: [&'static str; 2]) -> impl Fn(&mut serde_json::Value) {
            move |config| {
                config["mapping"]["appointment"] = serde_json::json!({
                    "table": table,
                    "fields": {"appointment_id": "HIS_appointment_id", "clinic_id": "HIS_clinic_id", "status": "HIS_status"},
                    "key": key
                });
            }
        }
        // Made by the release before event keys named the row: schema 1,
        // the table as written, the key values in key-field order.
        let old = journal::schema::create_at_version(&path, 1);
        let body = r#"{"event_type": "appointment", "appointment_id": 12, "clinic_id": 7, "status": "x"}"#;
        let ids: Vec<i64> = (0..(BATCH as i64 + 5))
            .map(|n| {
                let status = if n == 0 { "failed" } else { "pending" };
                insert(&old, "appointment", status, Some(r#"["HIS_Appointments","7","12"]"#), body)
            })
            .collect();
        drop(old);

        let mut connection = journal::open(&path).unwrap();
        let current = mappings(&appointments_in("HIS_Appointments", ["clinic_id", "appointment_id"]));
        let report = rekey(&mut connection, &current).unwrap();
        let events = ids.len();
        assert_eq!(report, Some(Rekeyed { examined: events, rekeyed: events, kept: 0 }), "in more than one batch");
        // The key a new event for that row gets, through either spelling
        // of the mapping.
        let key = r#"["his_appointments","12","7"]"#;
        let members = Members::parse(body).unwrap();
        assert_eq!(current.get("appointment").unwrap().key_of("appointment", &members).unwrap(), key);
        let other_spelling = mappings(&appointments_in("his_appointments", ["appointment_id", "clinic_id"]));
        assert_eq!(other_spelling.get("appointment").unwrap().key_of("appointment", &members).unwrap(), key);
        let keys: Vec<(String, i64)> = connection
            .prepare("SELECT event_key, COUNT(*) FROM events GROUP BY event_key")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, [(key.to_string(), events as i64)]);
        // So the failed first event holds back the rest, as one row.
        assert!(
            journal::due_events(
                &connection,
                i64::MAX,
                0,
                journal::Holds { retrying: true, failed: true, extra_keys: true },
                10,
                journal::WINDOW_BYTES
            )
            .unwrap()
            .is_empty()
        );
    }
}
