//! The operator's journal commands: `events` (list), `replay` (back to
//! pending), `prune` (remove old events). The queries are
//! [`operations`]'s, shared with the admin routes.

use std::path::PathBuf;

use buktor_middleware::{
    clock,
    config::{self, LoadedConfig},
    pipeline::{
        journal::{self, operations},
        mapping::{self, Mappings},
    },
};

use buktor_middleware::text::printable;

/// The journal of the config at `config_path`, for the operator commands.
fn operator_journal(config_path: Option<PathBuf>) -> anyhow::Result<(LoadedConfig, rusqlite::Connection)> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let path = loaded.journal_path();
    anyhow::ensure!(
        path.is_file(),
        "no journal at {}: the middleware has not run with this config yet",
        path.display()
    );
    let connection = journal::open(&path)?;
    Ok((loaded, connection))
}

fn since_of(since: Option<String>) -> anyhow::Result<Option<String>> {
    since
        .map(|text| {
            operations::parse_since(&text)
                .ok_or_else(|| anyhow::anyhow!("--since {text:?}: expected {}", operations::SINCE_FORMS))
        })
        .transpose()
}

fn status_of(text: &str) -> anyhow::Result<journal::Status> {
    operations::parse_status(text)
        .ok_or_else(|| anyhow::anyhow!("--status {text:?}: expected pending, delivered, failed or unmapped"))
}

/// `events`: a table (or JSON lines) of events with one status.
pub fn events(
    config_path: Option<PathBuf>,
    status: &str,
    event_type: Option<String>,
    since: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let (_, connection) = operator_journal(config_path)?;
    let filter = operations::Filter { status: status_of(status)?, event_type, since: since_of(since)?, limit };
    let rows = operations::list(&connection, &filter, clock::now_ms())?;
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!(
        "{:>8}  {:<24}  {:<16}  {:<9}  {:>8}  {:<28}  last error",
        "id", "received", "type", "status", "attempts", "key / held by"
    );
    for row in &rows {
        let key = match (row.held_by, &row.key) {
            (Some(held_by), _) => format!("held by #{held_by}"),
            (None, Some(key)) => key.clone(),
            (None, None) => String::new(),
        };
        // Journal text came from senders and databases: no control
        // characters reach the terminal.
        let error = printable(row.last_error.as_deref().unwrap_or(""), 120);
        println!(
            "{:>8}  {:<24}  {:<16}  {:<9}  {:>8}  {:<28}  {error}",
            row.id,
            row.received_at,
            printable(&row.event_type, 32),
            row.status,
            row.attempts,
            printable(&key, 64)
        );
    }
    println!("{} event(s)", rows.len());
    Ok(())
}

/// `replay`: failed or unmapped events back to pending. A running
/// middleware picks them up within a few seconds.
pub fn replay(
    config_path: Option<PathBuf>,
    id: Option<i64>,
    status: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
) -> anyhow::Result<()> {
    let (loaded, mut connection) = operator_journal(config_path)?;
    let selection = match (id, status) {
        (Some(id), _) => operations::Selection::Id(id),
        (None, Some(status)) => operations::Selection::Matching(operations::Filter {
            status: status_of(&status)?,
            event_type,
            since: since_of(since)?,
            limit: 0,
        }),
        (None, None) => anyhow::bail!("replay needs --id N or --status failed|unmapped"),
    };
    let mappings = Mappings::of(&loaded)?;
    let report = operations::replay(&mut connection, &selection, &mappings, clock::now_ms())?;
    println!("replayed {} event(s)", report.replayed);
    for note in report.notes() {
        println!("{note}");
    }
    Ok(())
}

/// `prune`: removes old events of one status.
pub fn prune(config_path: Option<PathBuf>, status: &str, before: &str) -> anyhow::Result<()> {
    anyhow::ensure!(mapping::is_timestamp(before), "--before {before:?}: expected a time such as 2026-01-01T00:00:00Z");
    let (_, mut connection) = operator_journal(config_path)?;
    let removed = operations::prune(&mut connection, status_of(status)?, before)?;
    println!("removed {removed} {status} event(s) received before {before}");
    Ok(())
}
