//! The JSON Schema of his-config.json, for editors: VS Code validates and
//! completes a file whose `"$schema"` names it, with the doc comments of
//! [`Config`] and its sections (and of [`mapping`](super::mapping)) as the
//! descriptions it shows.
//!
//! It is generated from the types by schemars, so it cannot drift from
//! what serde reads: `buktor-middleware schema` prints it, the release
//! ships it as `his-config.schema.json` beside his-config.json (checked in
//! as `dist/his-config.schema.json`), and `tests/tests/config_schema.rs`
//! fails when the checked-in file is not what the code generates, or when
//! an example config in the repository does not validate against it.
//!
//! **Draft-07**, not 2020-12: VS Code's JSON language service implements
//! draft-07 completely, while for 2019-09 and 2020-12 it warns that they
//! are not fully supported and leaves some keywords out. Nothing here
//! needs a later draft (schemars writes `$ref` with siblings as `allOf`
//! for draft-07).
//!
//! The schema refuses only what the middleware (or, for `database`, the
//! plugin at startup) refuses too: the ranges are
//! [`validate`](super::validate)'s (a unit test below holds them to it),
//! and no string the host reads as free text is constrained beyond its
//! type, since any string may be `${ENV_NAME}`, replaced when the file is
//! loaded. What it cannot say (a non-loopback `listen` needs `auth`, keys
//! and tables, most of a plugin's own checks) `check` and startup still
//! say.
//!
//! `database` is the one section the host does not own: only its `type`
//! is required, any name is allowed (third-party plugins), and other keys
//! are allowed. For the plugins this repository has, [`database`]
//! describes their settings (completion, types, what is required) by
//! `type`, by hand: `tests/tests/config_schema.rs` checks that those lists
//! name exactly the fields of each plugin's settings struct.

use schemars::{Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Map, Value, json};

use super::Config;

/// The schema of his-config.json, draft-07, as `buktor-middleware schema`
/// prints it.
pub fn json_schema() -> Value {
    let schema = SchemaSettings::draft07().into_generator().into_root_schema_for::<Config>();
    let mut generated = schema.to_value();
    unwrap_descriptions(&mut generated);
    let Value::Object(generated) = generated else { unreachable!("a root schema is an object") };
    // `$schema`, title and description first, for whoever opens the file.
    let mut root = Map::new();
    root.insert("$schema".into(), generated["$schema"].clone());
    root.insert("title".into(), "his-config.json".into());
    root.insert(
        "description".into(),
        "The configuration of buktor-middleware. Comments (// and /* */) are allowed, and any string may be \
         ${ENV_NAME}, replaced by that environment variable. Check a file with `buktor-middleware check`."
            .into(),
    );
    root.extend(generated.into_iter().filter(|(key, _)| !matches!(key.as_str(), "$schema" | "title" | "description")));
    Value::Object(root)
}

/// Doc comments' lines joined, as an editor's hover wraps them itself
/// (a blank line, or a line that starts a list item, still breaks).
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                match member {
                    Value::String(text) if key == "description" => {
                        let mut joined = String::with_capacity(text.len());
                        let mut previous_blank = true;
                        for line in text.lines() {
                            let blank = line.trim().is_empty();
                            if !joined.is_empty() {
                                joined.push(if blank || previous_blank || line.starts_with("- ") { '\n' } else { ' ' });
                            }
                            joined.push_str(line);
                            previous_blank = blank;
                        }
                        *text = joined;
                    }
                    _ => unwrap_descriptions(member),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// The plugins this repository has: `database.type`, what it is, and the
/// settings its plugin reads (name → schema), those it requires, and,
/// for Oracle, the alternatives it requires.
struct KnownPlugin {
    name: &'static str,
    description: &'static str,
    /// None: settings not described (any keys).
    settings: Option<fn() -> Value>,
    required: &'static [&'static str],
    /// At least one of these sets of settings.
    one_of_sets: &'static [&'static [&'static str]],
}

const KNOWN: [KnownPlugin; 6] = [
    KnownPlugin {
        name: "sqlite",
        description: "SQLite, embedded (his_sqlite): the demo, and small HIS databases in one file.",
        settings: Some(sqlite_settings),
        required: &["path"],
        one_of_sets: &[],
    },
    KnownPlugin {
        name: "mysql",
        description: "MySQL or MariaDB (his_mysql).",
        settings: Some(mysql_settings),
        required: &["user", "database"],
        one_of_sets: &[],
    },
    KnownPlugin {
        name: "sqlserver",
        description: "Microsoft SQL Server (his_sqlserver).",
        settings: Some(sqlserver_settings),
        required: &["database"],
        one_of_sets: &[],
    },
    KnownPlugin {
        name: "oracle",
        description: "Oracle Database (his_oracle; needs Oracle Instant Client).",
        settings: Some(oracle_settings),
        required: &["user"],
        one_of_sets: &[&["host", "database"], &["connect_string"]],
    },
    KnownPlugin {
        name: "postgres",
        description: "PostgreSQL (his_postgres).",
        settings: Some(postgres_settings),
        required: &["user", "database"],
        one_of_sets: &[],
    },
    KnownPlugin {
        name: "template",
        description: "The template plugin (plugins/template), for plugin authors: rows as JSON lines in a file. \
                      Not shipped.",
        settings: Some(template_settings),
        required: &["path"],
        one_of_sets: &[],
    },
];

/// `database`: an object with a `type`; the known plugins' settings by
/// `type` (if/then), any other keys allowed (the plugin checks its own).
pub fn database(_: &mut SchemaGenerator) -> Schema {
    let mut types: Vec<Value> =
        KNOWN.iter().map(|plugin| json!({ "const": plugin.name, "description": plugin.description })).collect();
    types.push(json!({
        "pattern": "^[a-z0-9_]+$",
        "description": "Another plugin: lowercase letters, digits and _, its library named his_<type>."
    }));
    types.push(json!({
        "pattern": "^\\$\\{.+\\}$",
        "description": "An environment variable holding the type."
    }));
    let by_type: Vec<Value> = KNOWN
        .iter()
        .filter_map(|plugin| Some((plugin, plugin.settings?())))
        .map(|(plugin, settings)| {
            let mut then = json!({ "properties": settings });
            if !plugin.required.is_empty() {
                then["required"] = json!(plugin.required);
            }
            if !plugin.one_of_sets.is_empty() {
                then["anyOf"] =
                    plugin.one_of_sets.iter().map(|set| json!({ "required": set })).collect::<Vec<_>>().into();
            }
            json!({
                "if": { "properties": { "type": { "const": plugin.name } }, "required": ["type"] },
                "then": then
            })
        })
        .collect();
    json_schema!({
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "description": "The plugin that writes to the HIS database: sqlite, mysql, sqlserver, oracle, \
                                postgres, or another plugin's name.",
                "type": "string",
                "anyOf": types,
                "examples": KNOWN.iter().map(|plugin| plugin.name).collect::<Vec<_>>()
            }
        },
        "additionalProperties": true,
        "allOf": by_type
    })
}

fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn text_default(description: &str, default: &str) -> Value {
    json!({ "type": "string", "description": description, "default": default })
}

fn text_examples(description: &str, default: &str, examples: &[&str]) -> Value {
    json!({ "type": "string", "description": description, "default": default, "examples": examples })
}

fn integer(description: &str, min: u64, max: Option<u64>, default: Option<u64>) -> Value {
    let mut schema = json!({ "type": "integer", "description": description, "minimum": min });
    if let Some(max) = max {
        schema["maximum"] = max.into();
    }
    if let Some(default) = default {
        schema["default"] = default.into();
    }
    schema
}

const TYPE: &str = "The plugin: its name.";
const TIMEZONE: &str = "The HIS's time zone, for timestamps: UTC, an offset such as +05:30, or an IANA name such as \
                        Asia/Kolkata.";
const STATEMENT_TIMEOUT: &str =
    "The longest one batch's write may take before the connection is given up as hung and the batch retried.";
const LOCK_TIMEOUT: &str = "The longest one statement waits for a row another session has locked; then it fails \
                            as a retryable conflict on its rows only. Below statement_timeout_secs. Default: 5, or \
                            less to stay below statement_timeout_secs.";
const PASSWORD: &str = "The password; better as \"${HIS_PASSWORD}\", from the environment.";

fn sqlite_settings() -> Value {
    json!({
        "type": text(TYPE),
        "path": text("The HIS database file. Relative paths are relative to the config file."),
        "create_missing": {
            "type": "boolean",
            "default": false,
            "description": "Create missing tables, columns and key indexes. For demos only: a real HIS is never \
                            altered."
        },
        "lock_timeout_secs": integer(
            "How long a write waits for another process's lock on the file before it gives up with a retryable \
             conflict (SQLite's busy timeout).",
            1, None, Some(5),
        ),
        "busy_timeout_ms": integer(
            "The same in milliseconds, the older name: for a wait below a second. Not with lock_timeout_secs.",
            0, None, None,
        )
    })
}

fn mysql_settings() -> Value {
    json!({
        "type": text(TYPE),
        "host": text_default("Host name or IP address of the server.", "localhost"),
        "port": integer("The server's port.", 0, Some(65_535), Some(3306)),
        "socket": text("A Unix socket path instead of host and port."),
        "user": text("The login."),
        "password": text(PASSWORD),
        "database": text("The HIS database (schema)."),
        "ssl_mode": {
            "type": "string",
            "description": "disabled, preferred, required, verify_ca or verify_identity. Default: verify_ca with \
                            ssl_ca, else preferred.",
            "examples": ["disabled", "preferred", "required", "verify_ca", "verify_identity"]
        },
        "ssl_ca": text("A PEM file with the CA that signed the server's certificate."),
        "timezone": text_default(TIMEZONE, "UTC"),
        "pool_size": integer("Connections in the pool.", 1, Some(64), Some(2)),
        "connect_timeout_secs": integer("How long connecting may take.", 1, Some(600), Some(10)),
        "max_statement_bytes": integer(
            "The largest statement sent, so that batches of long values stay under the server's max_allowed_packet.",
            16_384, None, Some(4 * 1024 * 1024),
        ),
        "statement_timeout_secs": integer(STATEMENT_TIMEOUT, 1, Some(3600), Some(60)),
        "lock_timeout_secs": integer(LOCK_TIMEOUT, 1, None, None)
    })
}

fn sqlserver_settings() -> Value {
    json!({
        "type": text(TYPE),
        "host": text_default("Host name or IP address of the server.", "localhost"),
        "port": integer("The server's port; ignored with instance.", 0, Some(65_535), Some(1433)),
        "instance": text("A named instance (SQLEXPRESS), found through the SQL Browser service."),
        "user": text("The login, for SQL authentication (required with it)."),
        "password": text(PASSWORD),
        "database": text("The HIS database."),
        "encrypt": text_examples(
            "required, off (only the login is encrypted) or not_supported.",
            "required",
            &["required", "off", "not_supported"],
        ),
        "trust_server_certificate": {
            "type": "boolean",
            "default": false,
            "description": "Accept any server certificate. Only for a self-signed certificate on a trusted network."
        },
        "ssl_ca": text("A PEM or DER file with the CA that signed the server's certificate."),
        "authentication": text_examples(
            "sql: user and password; windows: the service account's Windows login (Windows only).",
            "sql",
            &["sql", "windows"],
        ),
        "application_name": text_default("The application name the server sees.", "buktor-middleware"),
        "timezone": text_default(TIMEZONE, "UTC"),
        "connect_timeout_secs": integer("How long connecting may take.", 1, Some(600), Some(15)),
        "statement_timeout_secs": integer(STATEMENT_TIMEOUT, 1, Some(3600), Some(60)),
        "lock_timeout_secs": integer(LOCK_TIMEOUT, 1, None, None)
    })
}

fn oracle_settings() -> Value {
    json!({
        "type": text(TYPE),
        "host": text("Host name or IP address of the server (with database)."),
        "port": integer("The listener's port.", 0, Some(65_535), Some(1521)),
        "database": text("The service name (with host)."),
        "connect_string": text(
            "Instead of host, port and database: an Easy Connect string, a TNS alias from tnsnames.ora, or a full \
             connect descriptor."
        ),
        "user": text("The login."),
        "password": text(PASSWORD),
        "timezone": text_default(TIMEZONE, "UTC"),
        "statement_timeout_secs": integer(STATEMENT_TIMEOUT, 1, Some(3600), Some(60)),
        "lock_timeout_secs": integer(LOCK_TIMEOUT, 1, None, None)
    })
}

fn postgres_settings() -> Value {
    json!({
        "type": text(TYPE),
        "host": text_default(
            "Host name or IP address of the server; a path starting with / is the directory of the server's Unix \
             socket.",
            "localhost",
        ),
        "port": integer("The server's port.", 0, Some(65_535), Some(5432)),
        "user": text("The login."),
        "password": text(PASSWORD),
        "database": text("The HIS database."),
        "schema": text_default("The schema of the HIS tables; every name is qualified with it.", "public"),
        "sslmode": {
            "type": "string",
            "description": "disable, prefer, require, verify-ca or verify-full. Default: verify-ca with ssl_ca, \
                            else prefer.",
            "examples": ["disable", "prefer", "require", "verify-ca", "verify-full"]
        },
        "ssl_ca": text("A PEM file with the CA that signed the server's certificate."),
        "timezone": text_default(TIMEZONE, "UTC"),
        "pool_size": integer("Connections in the pool.", 1, Some(64), Some(2)),
        "connect_timeout_secs": integer("How long connecting may take.", 1, Some(600), Some(10)),
        "statement_timeout_secs": integer(STATEMENT_TIMEOUT, 1, Some(3600), Some(60)),
        "lock_timeout_secs": integer(LOCK_TIMEOUT, 1, None, None),
        "application_name": text_default(
            "What pg_stat_activity shows for this middleware's sessions: at most 63 printable ASCII characters.",
            "buktor-middleware",
        )
    })
}

fn template_settings() -> Value {
    json!({
        "type": text(TYPE),
        "path": text("The JSON-lines file, relative to the config file's folder.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn the_schema_is_draft_07_with_the_config_s_sections() {
        let schema = json_schema();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["title"], "his-config.json");
        assert_eq!(schema["required"], json!(["database"]));
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        assert_eq!(names, ["$schema", "server", "journal", "plugins", "sync", "database", "mapping"]);
        assert_eq!(properties["$schema"]["type"], json!(["string", "null"]));
        let database = &properties["database"];
        assert_eq!(database["required"], json!(["type"]));
        assert_eq!(database["additionalProperties"], true);
        assert!(database["description"].as_str().unwrap().starts_with("The HIS database."), "{database}");
        let sync = &schema["definitions"]["SyncConfig"]["properties"]["batch_size"];
        assert_eq!((&sync["type"], &sync["minimum"]), (&json!("integer"), &json!(1)), "{sync}");
    }

    /// Every range in the schema is validate.rs's: its bounds parse, a
    /// step beyond them is refused.
    #[test]
    fn the_ranges_are_the_ones_validation_enforces() {
        let schema = json_schema();
        let mut checked = 0;
        for (definition, at) in [
            ("ServerConfig", "/server"),
            ("AuthConfig", "/server/auth"),
            ("RateLimitConfig", "/server/rate_limit"),
            ("JournalConfig", "/journal"),
            ("SyncConfig", "/sync"),
        ] {
            for (name, property) in schema["definitions"][definition]["properties"].as_object().unwrap() {
                let integer = property["type"] == "integer" || property["type"][0] == "integer";
                let config = |value: Value| {
                    let mut config = json!({"database": {"type": "sqlite"}, "server": {}});
                    if let Some(section) = at.strip_prefix("/server/") {
                        config["server"][section] = match section {
                            "auth" => json!({"bearer_tokens": ["a-token-of-16-chars"]}),
                            _ => json!({"requests_per_second": 1.0, "burst": 1}),
                        };
                    }
                    let parent = at.trim_start_matches('/').split('/').fold(&mut config, |c, key| &mut c[key]);
                    parent[name.as_str()] = value;
                    config.to_string()
                };
                let bounds = [("minimum", -1.0, 0.5), ("maximum", 1.0, 2.0)];
                for (bound, integer_step, float_factor) in bounds {
                    let Some(limit) = property[bound].as_f64() else { continue };
                    if bound == "minimum" && limit == 0.0 && integer {
                        continue; // an unsigned type's floor: serde's
                    }
                    let (within, beyond) = if integer {
                        (json!(limit as u64), json!((limit + integer_step) as u64))
                    } else {
                        (json!(limit), json!(limit * float_factor))
                    };
                    parse(&config(within.clone())).unwrap_or_else(|e| panic!("{at}/{name} = {within}: {e:?}"));
                    let (path, _) = parse(&config(beyond.clone()))
                        .map(|_| panic!("{at}/{name} = {beyond} is beyond the schema's {bound} but parses"))
                        .unwrap_err();
                    assert_eq!(path.as_deref(), Some(&*format!("{}.{name}", at[1..].replace('/', "."))));
                    checked += 1;
                }
            }
        }
        assert!(checked >= 30, "only {checked} bounds checked");
    }

    #[test]
    fn a_schema_line_is_accepted_and_ignored() {
        let with = parse(r#"{"$schema": "./his-config.schema.json", "database": {"type": "sqlite"}}"#).unwrap();
        assert_eq!(with.schema.as_deref(), Some("./his-config.schema.json"));
        let without = parse(r#"{"database": {"type": "sqlite"}}"#).unwrap();
        assert_eq!(without.schema, None);
        let (path, message) = parse(r#"{"$schema": 5, "database": {"type": "sqlite"}}"#).unwrap_err();
        assert_eq!(path.as_deref(), Some("$schema"));
        assert!(message.contains("expected a string"), "{message}");
        // Still no other unknown key.
        let (path, _) = parse(r#"{"$schemas": "x", "database": {"type": "sqlite"}}"#).unwrap_err();
        assert_eq!(path.as_deref(), Some("$schemas"));
    }
}
