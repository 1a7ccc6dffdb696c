//! Reading his-config.json: finding the file, comments, `${ENV_NAME}`
//! values, parsing with serde (errors at their JSON path), then
//! [`validate`](super::validate).

use std::path::{Path, PathBuf};

use super::{Config, DEFAULT_FILE_NAME, secrets::find_literal_secrets, validate::validate};
use crate::text::escape_controls;

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file at the default places.
    #[error("no config file: looked for {DEFAULT_FILE_NAME} in {} and {}; pass --config PATH", .searched[0].display(), .searched[1].display())]
    NotFound {
        /// The folders looked in.
        searched: Vec<PathBuf>,
    },
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{} is not valid JSON: {message}", .file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// serde_json's message, with line and column.
        message: String,
    },
    /// A value has the wrong type, or is not allowed.
    #[error("{}: {json_path}: {message}", .file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Where in the JSON, such as `mapping.payment.fields.amount`.
        json_path: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A loaded, checked configuration, and where it came from.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The config file.
    pub file: PathBuf,
    /// The config file's folder: relative paths are resolved against it.
    pub dir: PathBuf,
    /// JSON paths of secrets written in the file itself rather than as
    /// `${ENV_NAME}` (passwords, tokens, secrets).
    pub literal_secrets: Vec<String>,
}

impl LoadedConfig {
    /// The journal file.
    pub fn journal_path(&self) -> PathBuf {
        let path = self.config.journal.path.as_deref().unwrap_or(Path::new("buktor-journal.db"));
        self.dir.join(path)
    }

    /// `plugins.dir`, resolved.
    pub fn plugins_dir(&self) -> Option<PathBuf> {
        self.config.plugins.dir.as_ref().map(|dir| self.dir.join(dir))
    }

    /// The `database` section as JSON text: what the plugin is given.
    pub fn database_settings_json(&self) -> String {
        serde_json::Value::Object(self.config.database.clone()).to_string()
    }

    /// `database.type`: checked by [`load`] to be a plain name.
    pub fn database_type(&self) -> &str {
        self.config.database.get("type").and_then(|t| t.as_str()).unwrap_or_default()
    }
}

/// Finds the config file: `explicit` if given, else his-config.json in the
/// working directory, else beside the executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mut searched = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    for dir in [cwd, exe_dir] {
        let candidate = dir.join(DEFAULT_FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    Err(ConfigError::NotFound { searched })
}

/// Reads, parses and checks the config file.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    let text =
        std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_path_buf(), source })?;
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let config = parse_in(&text, &dir).map_err(|(json_path, message)| match json_path {
        None => ConfigError::Syntax { file: file.to_path_buf(), message },
        Some(json_path) => ConfigError::Invalid { file: file.to_path_buf(), json_path, message },
    })?;
    let file = absolute;
    let mut literal_secrets = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&without_comments(&text)) {
        find_literal_secrets(&value, "", false, &mut literal_secrets);
    }
    Ok(LoadedConfig { config, file, dir, literal_secrets })
}

/// The text with `// …` and `/* … */` comments outside strings turned into
/// spaces, so that operators can annotate his-config.json and an error's
/// line and column still point into their file.
pub fn without_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match (in_string, bytes[i], bytes.get(i + 1)) {
            (true, b'\\', _) => i += 1,
            (true, b'"', _) | (false, b'"', _) => in_string = !in_string,
            (false, b'/', Some(b'/')) => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (false, b'/', Some(b'*')) => {
                let end = text[i + 2..].find("*/").map_or(bytes.len(), |at| i + 2 + at + 2);
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Only ASCII bytes were replaced, by ASCII spaces: still UTF-8.
    String::from_utf8(out).expect("comments replaced by spaces keep UTF-8")
}

/// Parses and checks config text. Errors are `(json path, message)`; the
/// path is `None` when the text is not JSON at all.
/// Lookup files are read relative to the working directory.
pub fn parse(text: &str) -> Result<Config, (Option<String>, String)> {
    parse_in(text, Path::new("."))
}

/// [`parse`], reading lookup files relative to `dir`.
pub fn parse_in(text: &str, dir: &Path) -> Result<Config, (Option<String>, String)> {
    parse_with(text, dir, &|name| std::env::var(name).ok())
}

/// [`parse_in`], with `env` standing in for the environment.
fn parse_with(
    text: &str,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, (Option<String>, String)> {
    let mut value: serde_json::Value =
        serde_json::from_str(&without_comments(text)).map_err(|e| (None, e.to_string()))?;
    substitute_environment(&mut value, "", env).map_err(|(path, message)| (Some(escape_controls(&path)), message))?;
    let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => escape_controls(&p),
        };
        (Some(path), e.inner().to_string())
    })?;
    validate(&config).map_err(|(path, message)| (Some(escape_controls(&path)), message))?;
    super::mapping::load_lookups(&mut config.mapping, dir)
        .map_err(|(path, message)| (Some(escape_controls(&path)), message))?;
    Ok(config)
}

/// Replaces every string that is exactly `${NAME}` with the environment
/// variable NAME, so that secrets need not sit in the file. A missing
/// variable is an error naming it and where it is used.
fn substitute_environment(
    value: &mut serde_json::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(text) => {
            if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                *text = env(name).ok_or_else(|| {
                    (path.to_string(), format!("the environment variable {name} is not set (the value is ${{{name}}})"))
                })?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_environment(item, &format!("{path}[{i}]"), env)?;
            }
        }
        serde_json::Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                substitute_environment(member, &at(key), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../../his-config.json");

    fn error(text: &str) -> (String, String) {
        let (path, message) = parse(text).unwrap_err();
        (path.expect("a JSON path"), message)
    }

    #[test]
    fn the_repository_config_parses_with_defaults() {
        let config = parse(SEED).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.database["type"], "sqlite");
        assert_eq!(config.mapping.keys().collect::<Vec<_>>(), ["appointment", "schedule_change", "payment"]);
    }

    #[test]
    fn the_release_examples_parse_and_are_commented() {
        let env = |name: &str| match name {
            "BUKTOR_WEBHOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            _ => Some(format!("value-of-{name}")),
        };
        for (name, text) in [
            ("sqlite", include_str!("../../../dist/examples/his-config.sqlite.json")),
            ("mysql", include_str!("../../../dist/examples/his-config.mysql.json")),
            ("sqlserver", include_str!("../../../dist/examples/his-config.sqlserver.json")),
            ("oracle", include_str!("../../../dist/examples/his-config.oracle.json")),
            ("postgres", include_str!("../../../dist/examples/his-config.postgres.json")),
        ] {
            assert!(text.starts_with("//"), "{name}: commented");
            let config = parse_with(text, Path::new("."), &env).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(config.database["type"], name);
            assert_eq!(config.mapping.len(), 3, "{name}: the seed's three mappings");
        }
    }

    #[test]
    fn comments_are_allowed_and_positions_kept() {
        let text =
            "{\n  // the demo database\n  \"database\": {\"type\": \"sqlite\", /* inline */ \"path\": \"a//b.db\"}\n}";
        let config = parse(text).unwrap();
        assert_eq!(config.database["path"], "a//b.db", "a // inside a string is not a comment");
        let (path, message) = parse("// first line\n{\"database\": 5,}").unwrap_err();
        assert_eq!(path, None);
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn type_errors_name_the_json_path() {
        let (path, message) =
            error(r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":5}}}}"#);
        assert_eq!(path, "mapping.a.fields.a_id");
        assert!(message.contains("expected a string"), "{message}");

        let (path, message) = error(r#"{"database":{"type":"sqlite"},"server":{"listen":"localhost"}}"#);
        assert_eq!(path, "server.listen");
        assert!(message.contains("invalid socket address"), "{message}");

        let (path, message) = error(r#"{"database":{"type":"sqlite"},"sever":{}}"#);
        assert_eq!(path, "sever");
        assert!(message.contains("unknown field `sever`, expected one of"), "{message}");

        let (path, _) = error(r#"{"database":{"type":"sqlite"},"server":{"duplicate_window_days":0}}"#);
        assert_eq!(path, "server.duplicate_window_days");
    }

    #[test]
    fn environment_variables_fill_in_secrets() {
        let text = r#"{"database": {"type": "sqlite", "password": "${HIS_PASSWORD}"},
                       "server": {"auth": {"webhook_secrets": ["${BUKTOR_SECRET}"]}}}"#;
        let env = |name: &str| match name {
            "HIS_PASSWORD" => Some("s3cret".to_string()),
            "BUKTOR_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            _ => None,
        };
        let config = parse_with(text, Path::new("."), &env).unwrap();
        assert_eq!(config.database["password"], "s3cret");
        assert_eq!(config.server.auth.unwrap().webhook_secrets, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let (path, message) = parse_with(text, Path::new("."), &|_| None).unwrap_err();
        assert_eq!(path.as_deref(), Some("database.password"));
        assert_eq!(message, "the environment variable HIS_PASSWORD is not set (the value is ${HIS_PASSWORD})");
    }

    #[test]
    fn semantic_errors_name_the_json_path() {
        let cases = [
            (r#"{"database":{}}"#, "database.type"),
            (r#"{"database":{"type":"My SQL"}}"#, "database.type"),
            (r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"","fields":{"a_id":"X"}}}}"#, "mapping.a.table"),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":"X\n"}}}}"#,
                "mapping.a.fields.a_id",
            ),
            (r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"name":"X"}}}}"#, "mapping.a.key"),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"name":"X"},"key":["nope"]}}}"#,
                "mapping.a.key[0]",
            ),
            (
                r#"{"database":{"type":"sqlite"},"mapping":{"a":{"table":"T","fields":{"a_id":"X","b":"X"}}}}"#,
                "mapping.a.fields.b",
            ),
            (r#"{"database":{"type":"sqlite"},"sync":{"batch_size":0}}"#, "sync.batch_size"),
            (r#"{"database":{"type":"sqlite"},"sync":{"retry_max_delay_secs":99999999}}"#, "sync.retry_max_delay_secs"),
        ];
        for (text, expected) in cases {
            assert_eq!(error(text).0, expected, "{text}");
        }
    }

    #[test]
    fn every_mapping_of_one_table_uses_the_same_key_columns() {
        let config = |created: &str, updated: &str| {
            format!(r#"{{"database":{{"type":"sqlite"}},"mapping":{{"created":{created},"updated":{updated}}}}}"#)
        };
        // Default keys inferred from different _id fields.
        let (path, message) = error(&config(
            r#"{"table":"his_appointments","fields":{"appointment_id":"HIS_appointment_id","patient_id":"HIS_patient_id"}}"#,
            r#"{"table":"HIS_Appointments","fields":{"patient_id":"HIS_patient_id","appointment_id":"HIS_appointment_id","status":"HIS_status"}}"#,
        ));
        assert_eq!(path, "mapping.updated.key");
        assert_eq!(
            message,
            "keys the table HIS_Appointments by [HIS_patient_id] (no key set: the first mapped field ending in \
             _id), but mapping.created writes that table too (as his_appointments), keyed by [HIS_appointment_id] \
             (no key set: the first mapped field ending in _id). Every mapping of one table must use the same key \
             columns, or one HIS row gets two event keys and its events may be written out of order: set \
             mapping.updated.key to the field(s) mapped to HIS_appointment_id"
        );
        // One column more or less is another key too.
        let (path, message) = error(&config(
            r#"{"table":"T","fields":{"a":"A","b":"B"},"key":["a","b"]}"#,
            r#"{"table":"T","fields":{"a":"A","b":"B"},"key":["a"]}"#,
        ));
        assert_eq!(path, "mapping.updated.key");
        assert!(
            message
                .starts_with("keys the table T by [A], but mapping.created writes that table too, keyed by [A, B]. "),
            "{message}"
        );

        // The same columns in another order, case or field name, or another table: fine.
        for (created, updated) in [
            (
                r#"{"table":"T","fields":{"a":"A","b":"B"},"key":["a","b"]}"#,
                r#"{"table":" t","fields":{"y":"b","x":"a"},"key":["y","x"]}"#,
            ),
            (r#"{"table":"T","fields":{"a_id":"A"}}"#, r#"{"table":"T","fields":{"c":"C","a":"A"},"key":["a"]}"#),
            (r#"{"table":"T","fields":{"a_id":"A"}}"#, r#"{"table":"U","fields":{"b_id":"B"}}"#),
        ] {
            parse(&config(created, updated)).unwrap_or_else(|e| panic!("{created} {updated}: {e:?}"));
        }
    }
}
