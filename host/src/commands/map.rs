//! `buktor-middleware map --event FILE`: the dry run of the mapping.
//!
//! Reads one event (a file, or standard input), and prints what the sync
//! worker would hand the plugin for it: the action, the table, the row key
//! the journal would order it by, and each column's typed value, with the
//! columns a partial row leaves alone. It loads the config and compiles
//! the mappings as `run` does, and nothing else: no HIS, no plugin, no
//! journal, no running service.
//!
//! With `--sql` it also loads the plugin of `database.type` and asks it
//! (`Plugin::render`, plugin-api 1.2) for the statements its writer would
//! run for the event's batches, in target order, in one transaction, as
//! the worker would send them; each statement is printed with its
//! parameters shown separately. The plugin connects to nothing: the HIS
//! need not be reachable. A plugin that cannot show them (missing, older
//! than plugin-api 1.2) is a one-line error after the dry run itself.

use std::{io::Read as _, path::PathBuf};

use abi_stable::std_types::RString;
use anyhow::Context as _;
use buktor_middleware::{
    clock,
    config::{self, LoadedConfig},
    pipeline::mapping::{EventMapping, Mappings, Members, Row, transform::text_of},
    plugins,
    text::escape_controls,
};
use his_plugin_api::{Action, ErrorKind, Statement, Value, ValueRef, WriteBatch};

/// Runs `map`: prints the dry run of `event` (a file; `None` or `-` is
/// standard input), or its mapping error, which is the command's error.
/// With `sql`, then the statements the plugin would run; a plugin that
/// cannot show them is the command's error, after the dry run.
pub fn command(config_path: Option<PathBuf>, event: Option<PathBuf>, json: bool, sql: bool) -> anyhow::Result<()> {
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
    let Evaluated { text, json: mut json_document, batches } =
        evaluate(&mappings, &payload, &from, &clock::now_rfc3339())?;
    if !sql {
        if json {
            println!("{}", serde_json::to_string_pretty(&json_document)?);
        } else {
            print!("{text}");
        }
        return Ok(());
    }
    let rendered = statements(&loaded, &batches);
    if json {
        json_document["statements"] = match &rendered {
            Ok(statements) => statements.iter().map(statement_json).collect(),
            Err(_) => serde_json::Value::Null,
        };
        println!("{}", serde_json::to_string_pretty(&json_document)?);
    } else {
        print!("{text}");
        if let Ok(statements) = &rendered {
            print!("{}", statements_text(loaded.database_type(), statements));
        }
    }
    rendered.map(drop)
}

/// The statements the plugin of `database.type` would run for `batches`
/// (in one transaction), or why it cannot say, in one line.
fn statements(loaded: &LoadedConfig, batches: &[WriteBatch]) -> anyhow::Result<Vec<Statement>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let database_type = loaded.database_type();
    let plugin = plugins::load(database_type, loaded.plugins_dir().as_deref())
        .map_err(|e| anyhow::anyhow!("--sql: cannot show the statements: {e}"))?;
    let config_dir = loaded.dir.to_string_lossy();
    plugin.render(&loaded.database_settings_json(), &config_dir, batches).map_err(|e| {
        let advice = match e.kind {
            ErrorKind::UNSUPPORTED => "; use a plugin built against plugin-api 1.2 or newer, or run map without --sql",
            _ => "",
        };
        anyhow::anyhow!(
            "--sql: the {} plugin for database.type {database_type:?} ({}) cannot show its statements: {e}{advice}",
            plugin.name,
            plugin.path.display()
        )
    })
}

fn statement_json(statement: &Statement) -> serde_json::Value {
    let params: Vec<&str> = statement.params.iter().map(RString::as_str).collect();
    serde_json::json!({ "sql": statement.sql.as_str(), "params": params })
}

/// The statements as text: each one's SQL, then its parameters by
/// placeholder (`?1`, `@P1`, `:1`, as the SQL numbers them).
fn statements_text(database_type: &str, statements: &[Statement]) -> String {
    if statements.is_empty() {
        return "--sql: no statements: no target applies\n".into();
    }
    let mut out = format!("statements the {database_type} plugin would run (nothing was sent):\n");
    for statement in statements {
        for line in statement.sql.lines() {
            out.push_str(&format!("  {}\n", escape_controls(line)));
        }
        if !statement.params.is_empty() {
            let params: Vec<String> = statement
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{} = {}", placeholder(&statement.sql, i + 1), escape_controls(p)))
                .collect();
            out.push_str(&format!("    params: {}\n", params.join(", ")));
        }
    }
    out
}

/// How the SQL names parameter `n`: `@Pn` (SQL Server), `:n` (Oracle),
/// `$n` (PostgreSQL), else `?n`, the n-th `?`.
fn placeholder(sql: &str, n: usize) -> String {
    let numbered =
        |prefix: &str| sql.lines().filter(|l| !l.starts_with("--")).any(|l| l.contains(&format!("{prefix}1")));
    match ["@P", ":", "$"].into_iter().find(|p| numbered(p)) {
        Some(prefix) => format!("{prefix}{n}"),
        None => format!("?{n}"),
    }
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
    evaluate(mappings, payload, from, received_at).map(|evaluated| (evaluated.text, evaluated.json))
}

/// One event's dry run, and the batches the worker would send for it.
struct Evaluated {
    text: String,
    json: serde_json::Value,
    /// A batch per target whose condition holds, in target order.
    batches: Vec<WriteBatch>,
}

fn evaluate(mappings: &Mappings, payload: &str, from: &str, received_at: &str) -> anyhow::Result<Evaluated> {
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
    let batches = rows.iter().map(|(target, row)| targets[*target].batch([&mut row.clone()])).collect();
    let dry_run = DryRun { event_type: &event_type, targets, members: &members, key: &key, rows: &rows, received_at };
    Ok(Evaluated { text: dry_run.text(), json: dry_run.json(), batches })
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
            if let Some(key) = &row.key {
                out.push_str(&format!("  another HIS row, in the same transaction: row key {key}\n"));
            }
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
                    "row_key": row.map(|row| row.key.as_deref().unwrap_or(self.key)),
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
