//! `schema`: the JSON Schema of his-config.json on standard output, as
//! `dist/his-config.schema.json` holds it (`cargo xtask schema` writes it
//! there). It reads no config.

use buktor_middleware::config;

/// Prints the schema, pretty, with a final newline.
pub fn command() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&config::json_schema())?);
    Ok(())
}
