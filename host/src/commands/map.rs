//! `buktor-middleware map --event FILE`: the dry run of the mapping.
//!
//! Reads one event (a file, or standard input), and prints what the sync
//! worker would hand the plugin for it: the action, the table, the row key
//! the journal would order it by, and each column's typed value, with the
//! columns a partial row leaves alone. It loads the config and compiles
//! the mappings as `run` does, and nothing else: no HIS, no plugin, no
//! journal, no running service.

use std::{io::Read as _, path::PathBuf};

use anyhow::Context as _;
use buktor_middleware::{
    clock, config,
    pipeline::mapping::{EventMapping, Mappings, Members, Row, transform::text_of},
};
use his_plugin_api::{Action, Value, ValueRef};

/// Runs `map`: prints the dry run of `event` (a file; `None` or `-` is
/// standard input), or its mapping error, which is the command's error.
pub fn command(config_path: Option<PathBuf>, event: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let mappings = Mappings::of(&loaded)?;
    let (payload, from) = match event.as_deref() {
        None => (read_stdin()?, "standard input".to_string()),
        Some(path) if path.as_os_str() == "-" => (read_stdin()?, "standard input".to_string()),
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read the event file {}", path.display()))?,
            path.display().to_string(),
        ),
    };
    let (text, json_document) = dry_run(&mappings, &payload, &from, &clock::now_rfc3339())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&json_document)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// The dry run of one event (`payload`, read from `from`), as text and as
/// JSON; `received_at` stands for the time it was received. Its error is
/// what intake or the worker would say of the event, in one line.
pub fn dry_run(
    mappings: &Mappings,
    payload: &str,
    from: &str,
    received_at: &str,
) -> anyhow::Result<(String, serde_json::Value)> {
    let members = Members::parse(payload).with_context(|| format!("{from} is not one JSON object"))?;
    let event_type: String = members
        .raw("event_type")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .with_context(|| format!("{from} has no event_type string"))?;
    let Some(mapping) = mappings.get(&event_type) else {
        let mapped: Vec<&str> = mappings.event_types().collect();
        anyhow::bail!(
            "no mapping for event_type {event_type:?}: the middleware would keep it as unmapped and write nothing \
             (mapped types: {})",
            mapped.join(", ")
        );
    };
    let key = mapping.key_of(&event_type, &members).map_err(|e| anyhow::anyhow!("intake would refuse it: {e}"))?;
    let targets = mappings.targets(&event_type).expect("mapped");
    let rows = mappings.rows(&event_type, payload, received_at).expect("mapped")?;
    let dry_run = DryRun { event_type: &event_type, targets, members: &members, key: &key, rows: &rows, received_at };
    Ok((dry_run.text(), dry_run.json()))
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the event from standard input")?;
    Ok(text)
}

/// One event's dry run.
struct DryRun<'a> {
    event_type: &'a str,
    targets: &'a [EventMapping],
    members: &'a Members<'a>,
    /// The row key the journal orders the event by.
    key: &'a str,
    /// A row per target whose condition holds.
    rows: &'a [(usize, Row)],
    received_at: &'a str,
}

impl DryRun<'_> {
    /// Why target `m` is written or not: its condition, if it has one.
    fn condition(&self, m: &EventMapping) -> (bool, String) {
        match &m.when {
            None => (true, "no condition".into()),
            Some(when) if when.holds(self.members) => (true, format!("when {} holds", when.describe())),
            Some(when) => (false, format!("skipped: when {} does not hold", when.describe())),
        }
    }

    fn text(&self) -> String {
        let count = self.targets.len();
        let mut out = format!(
            "event_type {}: {count} target{}, row key {}\n",
            self.event_type,
            if count == 1 { "" } else { "s" },
            self.key
        );
        for m in self.targets {
            let (applies, why) = self.condition(m);
            out.push_str(&format!("{} ({why})\n", m.at));
            let Some((_, row)) = self.rows.iter().find(|(t, _)| *t == m.target).filter(|_| applies) else { continue };
            out.push_str(&format!("  {} {}, key {}\n", action_name(m.action), m.table, m.key_columns.join(", ")));
            let width = m.columns.iter().map(|c| c.chars().count()).max().unwrap_or(0);
            for (index, (column, value)) in m.columns.iter().zip(&row.values).enumerate() {
                let (kind, shown) = if row.absent.contains(&index) {
                    ("kept", "(absent: the HIS keeps its value)".to_string())
                } else {
                    (value.kind().name(), shown(value))
                };
                out.push_str(&format!("  {column:<width$}  {kind:<9}  {shown}\n"));
            }
            if row.truncated > 0 {
                out.push_str(&format!("  ({} value(s) cut by truncate)\n", row.truncated));
            }
        }
        if self.rows.is_empty() {
            out.push_str("no target applies: the event would be marked delivered, and nothing written\n");
        }
        out.push_str(&format!(
            "(received_at, where a column uses it, is the time of this run: {})\n",
            self.received_at
        ));
        out
    }

    fn json(&self) -> serde_json::Value {
        let targets: Vec<serde_json::Value> = self
            .targets
            .iter()
            .map(|m| {
                let (applies, why) = self.condition(m);
                let row = self.rows.iter().find(|(t, _)| *t == m.target).filter(|_| applies).map(|(_, row)| row);
                let columns: Option<Vec<serde_json::Value>> = row.map(|row| {
                    m.columns
                        .iter()
                        .zip(&row.values)
                        .enumerate()
                        .map(|(index, (column, value))| {
                            let absent = row.absent.contains(&index);
                            serde_json::json!({
                                "column": column,
                                "kind": if absent { "kept" } else { value.kind().name() },
                                "value": if absent { serde_json::Value::Null } else { json_of(value) },
                                "from": m.sources[index].at,
                            })
                        })
                        .collect()
                });
                serde_json::json!({
                    "mapping": m.at,
                    "applies": applies,
                    "condition": why,
                    "action": action_name(m.action),
                    "table": m.table,
                    "key_columns": m.key_columns,
                    "columns": columns,
                    "truncated": row.map_or(0, |row| row.truncated),
                })
            })
            .collect();
        serde_json::json!({ "event_type": self.event_type, "row_key": self.key, "targets": targets })
    }
}

fn action_name(action: Action) -> String {
    match action.get() {
        his_plugin_api::WriteAction::Update(if_missing) => {
            format!("update (if missing: {if_missing:?})").to_lowercase()
        }
        _ => action.name().to_string(),
    }
}

/// A value as printed: text quoted, numbers and times as they are.
fn shown(value: &Value) -> String {
    match value.get() {
        ValueRef::Null => "NULL".into(),
        ValueRef::Text(t) => format!("{t:?}"),
        ValueRef::Bytes(b) => format!("{} bytes", b.len()),
        _ => text_of(value).map(|t| t.into_owned()).unwrap_or_default(),
    }
}

fn json_of(value: &Value) -> serde_json::Value {
    match value.get() {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Bool(b) => b.into(),
        ValueRef::Int(i) => i.into(),
        _ => text_of(value).map_or(serde_json::Value::Null, |t| t.into_owned().into()),
    }
}
