//! The JSON Schema of his-config.json, `dist/his-config.schema.json`, which
//! the release ships beside his-config.json for editors: it is what the
//! real binary's `schema` command prints, every example config in the
//! repository validates against it, it refuses what the middleware
//! refuses (so a broken schema fails here), and the database settings it
//! describes are the ones each plugin reads.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use buktor_middleware::config::{parse, without_comments};
use buktor_tests::{artifacts, repo_root};
use serde_json::{Value, json};

const SHIPPED: &str = "dist/his-config.schema.json";
const REGENERATE: &str = "regenerate it with `cargo xtask schema` (or `cargo run -p buktor-middleware -- schema > \
                          dist/his-config.schema.json`)";

/// The checked-in schema.
fn shipped() -> Value {
    let text = std::fs::read_to_string(repo_root().join(SHIPPED)).unwrap_or_else(|e| panic!("{SHIPPED}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SHIPPED} is not JSON ({e}): {REGENERATE}"))
}

fn validator() -> jsonschema::Validator {
    let schema = shipped();
    jsonschema::draft7::meta::validate(&schema).unwrap_or_else(|e| panic!("{SHIPPED} is not a draft-07 schema: {e}"));
    jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("{SHIPPED}: {e}"))
}

/// Why `config` does not validate, one line per error; empty if it does.
fn errors(validator: &jsonschema::Validator, config: &Value) -> Vec<String> {
    validator
        .iter_errors(config)
        .map(|e| match e.instance_path().as_str() {
            "" => format!("at the top level: {e}"),
            path => format!("at {path}: {e}"),
        })
        .collect()
}

#[test]
fn the_shipped_schema_is_what_the_binary_prints() {
    let output = Command::new(&artifacts().binary).arg("schema").output().expect("run buktor-middleware schema");
    assert!(output.status.success(), "buktor-middleware schema failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).expect("the schema is UTF-8");
    serde_json::from_str::<Value>(&printed).expect("buktor-middleware schema prints JSON");
    // A checkout that turned line ends into CRLF is still in sync.
    let file = std::fs::read_to_string(repo_root().join(SHIPPED))
        .unwrap_or_else(|e| panic!("{SHIPPED}: {e}; {REGENERATE}"))
        .replace("\r\n", "\n");
    if printed != file {
        let (line, (ours, theirs)) = printed
            .lines()
            .chain(std::iter::repeat("(end of file)"))
            .zip(file.lines().chain(std::iter::repeat("(end of file)")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .expect("texts that differ differ in a line");
        panic!(
            "{SHIPPED} is not what `buktor-middleware schema` prints: at line {}, the code gives\n  {}\nbut the file \
             has\n  {}\n{REGENERATE}, and commit it",
            line + 1,
            ours.trim(),
            theirs.trim()
        );
    }
}

/// An example config: where it is, and its JSON.
struct Example {
    name: String,
    config: Value,
}

/// A file that is a his-config: named like one, or JSON (comments
/// allowed) with a top-level `database`.
fn config_file(root: &Path, path: &Path) -> Option<Example> {
    let name = path.strip_prefix(root).unwrap_or(path).display().to_string();
    let file_name = path.file_name()?.to_string_lossy().into_owned();
    if !file_name.ends_with(".json") || file_name.ends_with(".schema.json") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Value>(&without_comments(&text)) {
        Ok(config) if config.get("database").is_some() || file_name.starts_with("his-config") => {
            Some(Example { name, config })
        }
        Ok(_) => None,
        Err(e) if file_name.starts_with("his-config") => panic!("{name} is not JSON: {e}"),
        Err(_) => None,
    }
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target" && n != "node_modules") {
                files_under(&path, found);
            }
        } else {
            found.push(path);
        }
    }
}

/// The ```json blocks of a Markdown file that are whole configs (a
/// top-level `database`), named by their first line.
fn config_blocks(root: &Path, file: &str) -> Vec<Example> {
    let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```json") => open = Some((n + 2, String::new())),
            Some((first, block)) if fence.starts_with("```") => {
                if let Ok(config) = serde_json::from_str::<Value>(&without_comments(block))
                    && config.get("database").is_some()
                {
                    blocks.push(Example { name: format!("{file}, the JSON block at line {first}"), config });
                }
                open = None;
            }
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every example config in the repository.
fn examples() -> Vec<Example> {
    let root = repo_root();
    let mut files = vec![root.join("his-config.json")];
    files_under(&root.join("dist"), &mut files);
    files_under(&root.join("tests/fixtures"), &mut files);
    files.sort();
    let mut found: Vec<Example> = files.iter().filter_map(|file| config_file(&root, file)).collect();
    for file in ["README.md", "dist/README.operator.md"] {
        let blocks = config_blocks(&root, file);
        assert!(
            !blocks.is_empty(),
            "{file}: no whole config found in its ```json blocks (did the test stop finding them?)"
        );
        found.extend(blocks);
    }
    found
}

#[test]
fn every_example_config_validates_against_the_shipped_schema() {
    let validator = validator();
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|e| e.name.as_str()).collect();
    for expected in [
        "his-config.json",
        "dist/examples/his-config.sqlite.json",
        "dist/examples/his-config.mysql.json",
        "dist/examples/his-config.sqlserver.json",
        "dist/examples/his-config.oracle.json",
        "dist/examples/his-config.postgres.json",
    ] {
        assert!(names.contains(&expected), "{expected} was not found among the examples: {names:?}");
    }
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|example| {
            let errors = errors(&validator, &example.config);
            (!errors.is_empty()).then(|| format!("{}:\n    {}", example.name, errors.join("\n    ")))
        })
        .collect();
    assert!(failures.is_empty(), "not valid under {SHIPPED}:\n{}", failures.join("\n"));
}

#[test]
fn the_shipped_examples_name_the_schema_where_it_is() {
    let root = repo_root();
    for example in examples().iter().filter(|e| e.name.starts_with("dist/examples/")) {
        let named = example.config["$schema"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no \"$schema\" line for editors", example.name));
        let folder = root.join(&example.name).parent().unwrap().to_path_buf();
        // `../` in the repository; the release has a copy beside every
        // config, and `cargo xtask dist` makes the line `./`.
        let schema = std::fs::canonicalize(folder.join(named))
            .unwrap_or_else(|e| panic!("{}: \"$schema\": {named:?} names no file ({e})", example.name));
        assert_eq!(schema, std::fs::canonicalize(root.join(SHIPPED)).unwrap(), "{}", example.name);
    }
}

/// The repository's his-config.json with `change` applied.
fn seed_with(change: impl FnOnce(&mut Value)) -> Value {
    let text = std::fs::read_to_string(repo_root().join("his-config.json")).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    change(&mut config);
    config
}

/// Removes `key` from the object `value`.
fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().expect("an object").remove(key);
}

#[test]
fn the_schema_refuses_what_the_middleware_refuses_and_accepts_the_rest() {
    let validator = validator();
    let refused: [(&str, Value); 9] = [
        ("an unknown top-level key", seed_with(|c| c["sever"] = json!({}))),
        ("a string for a number", seed_with(|c| c["sync"] = json!({"batch_size": "x"}))),
        ("a number out of range", seed_with(|c| c["server"] = json!({"max_json_depth": 0}))),
        ("an unknown server setting", seed_with(|c| c["server"] = json!({"listn": "127.0.0.1:5000"}))),
        ("no database", seed_with(|c| remove(c, "database"))),
        ("no database.type", seed_with(|c| remove(&mut c["database"], "type"))),
        ("a plugin name with a space", seed_with(|c| c["database"]["type"] = json!("My SQL"))),
        ("a mapping without a table", seed_with(|c| remove(&mut c["mapping"]["payment"], "table"))),
        ("an unknown action", seed_with(|c| c["mapping"]["payment"]["action"] = json!("merge"))),
    ];
    for (what, config) in &refused {
        assert!(!validator.is_valid(config), "the schema accepts {what}: {config}");
        assert!(parse(&config.to_string()).is_err(), "the middleware accepts {what}, the schema does not: {config}");
    }
    // What the plugin refuses, the schema knows for the plugins it describes.
    let no_path = seed_with(|c| remove(&mut c["database"], "path"));
    assert!(!validator.is_valid(&no_path), "sqlite without database.path");
    let accepted: [(&str, Value); 5] = [
        ("the seed", seed_with(|_| {})),
        ("a $schema line", seed_with(|c| c["$schema"] = json!("./his-config.schema.json"))),
        (
            "another plugin, with its own settings",
            seed_with(|c| c["database"] = json!({"type": "acme_his", "dsn": "x", "n": 1})),
        ),
        ("a setting only the plugin knows", seed_with(|c| c["database"]["journal_mode"] = json!("wal"))),
        (
            "the README's server settings",
            seed_with(|c| c["server"] = json!({"listen": "127.0.0.1:5000", "max_body_bytes": 1_048_576})),
        ),
    ];
    for (what, config) in &accepted {
        assert_eq!(errors(&validator, config), Vec::<String>::new(), "the schema refuses {what}: {config}");
        parse(&config.to_string()).unwrap_or_else(|e| panic!("the middleware refuses {what}: {e:?}"));
    }
    // A string from the environment is still a string (the middleware
    // replaces it when it loads the file).
    let from_environment = seed_with(|c| {
        c["database"] = json!({"type": "${HIS_TYPE}", "password": "${HIS_PASSWORD}"});
        c["server"] = json!({"admin_token": "${ADMIN_TOKEN}"});
    });
    assert_eq!(errors(&validator, &from_environment), Vec::<String>::new());
}

/// The settings a plugin's settings struct reads, by their JSON names.
fn plugin_settings(file: &str, structure: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text.find(&format!("struct {structure} {{")).unwrap_or_else(|| panic!("{file}: no struct {structure}"));
    let body = &text[start..start + text[start..].find("\n}").expect("the struct ends")];
    let mut names: Vec<String> = body
        .lines()
        .filter_map(|line| {
            let field = line.strip_prefix("    ")?.trim_start_matches("pub ");
            let (name, _) = field.split_once(':')?;
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| name.to_string())
        })
        .map(|name| if name == "_type" { "type".to_string() } else { name })
        .collect();
    names.sort();
    names
}

#[test]
fn the_database_settings_described_are_the_ones_each_plugin_reads() {
    let schema = shipped();
    let described = schema["properties"]["database"]["allOf"].as_array().expect("database.allOf: if/then by type");
    let by_type = |name: &str| -> Vec<String> {
        let case = described
            .iter()
            .find(|case| case["if"]["properties"]["type"]["const"] == name)
            .unwrap_or_else(|| panic!("the schema describes no settings for database.type {name}"));
        let mut names: Vec<String> = case["then"]["properties"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    };
    for (name, file, structure) in [
        ("sqlite", "plugins/sqlite/src/settings.rs", "RawSettings"),
        ("mysql", "plugins/mysql/src/settings.rs", "RawSettings"),
        ("sqlserver", "plugins/sqlserver/src/settings.rs", "RawSettings"),
        ("oracle", "plugins/oracle/src/settings.rs", "RawSettings"),
        ("postgres", "plugins/postgres/src/settings.rs", "RawSettings"),
        ("template", "plugins/template/src/lib.rs", "Settings"),
    ] {
        assert_eq!(
            by_type(name),
            plugin_settings(file, structure),
            "the schema's settings for database.type {name} (left) are not those {file} reads (right): change \
             KNOWN in host/src/config/schema.rs, then {REGENERATE}"
        );
    }
}
