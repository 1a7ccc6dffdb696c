//! `describe TABLE`: a table as the plugin sees it, as JSON.

use std::path::PathBuf;

use buktor_middleware::{config, plugins};

/// `describe TABLE`: opens a writer on this (main) thread, before any async
/// runtime exists, and prints what the plugin reports.
pub fn describe(config_path: Option<PathBuf>, table: &str) -> anyhow::Result<()> {
    let loaded = config::load(&config::locate(config_path.as_deref())?)?;
    let database_type = loaded.database_type().to_string();
    let plugin = plugins::load(&database_type, loaded.plugins_dir().as_deref())?;
    let settings = loaded.database_settings_json();
    let mut writer = plugin
        .open_writer(&settings, &loaded.dir, loaded.config.sync.plugin_deadline())
        .map_err(|e| anyhow::anyhow!("cannot open the {database_type} HIS database: {e}"))?;
    let described = writer.describe_table(table, loaded.config.sync.plugin_deadline());
    let _ = writer.close();
    let description = described
        .map_err(|e| anyhow::anyhow!("cannot describe {table}: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("table {table:?} not found in the {database_type} HIS database"))?;
    let strings = |list: &[abi_stable::std_types::RString]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let json = serde_json::json!({
        "table": description.name.as_str(),
        "columns": description.columns.iter().map(|c| serde_json::json!({
            "name": c.name.as_str(),
            "type": c.data_type.as_str(),
            "nullable": c.nullable,
            "has_default": c.has_default,
        })).collect::<Vec<_>>(),
        "primary_key": strings(&description.primary_key),
        "unique_keys": description.unique_keys.iter().map(|k| strings(k)).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
