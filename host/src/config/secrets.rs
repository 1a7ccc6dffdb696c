//! Secrets in his-config.json: finding them to scrub from what is
//! printed, finding those written literally (a warning), and decoding
//! Standard Webhooks secrets (checked at load, used by intake).

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD};

use super::without_comments;

/// The values of a config file's secrets (literal, or from `${ENV_NAME}`),
/// to scrub from anything printed: `check`'s findings, and any error a
/// command ends with (a serde or database message may quote a value).
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Reads `file` as plain JSON (it need not be a valid config).
    pub fn of_file(file: &Path) -> Self {
        let value =
            std::fs::read_to_string(file).ok().and_then(|text| serde_json::from_str(&without_comments(&text)).ok());
        value.map(|value| Self::of_config(&value, &|name| std::env::var(name).ok())).unwrap_or_default()
    }

    /// The secrets of a config's JSON, `env` standing in for the environment.
    pub fn of_config(config: &serde_json::Value, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut secrets = Self::default();
        if let serde_json::Value::Object(members) = config {
            // Mapping names are event fields and columns, never secrets
            // (though a field may be called `client_secret`).
            for (_, member) in members.iter().filter(|(key, _)| key.as_str() != "mapping") {
                secrets.collect(member, false, env);
            }
        }
        // The longest first, so that a secret inside another goes whole.
        secrets.0.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.0.dedup();
        secrets
    }

    fn collect(&mut self, value: &serde_json::Value, secret: bool, env: &dyn Fn(&str) -> Option<String>) {
        match value {
            serde_json::Value::String(text) if secret => {
                let value = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                    Some(name) => env(name),
                    None => Some(text.clone()),
                };
                self.0.extend(value.filter(|v| !v.is_empty()));
            }
            serde_json::Value::Number(number) if secret => self.0.push(number.to_string()),
            serde_json::Value::Array(items) => items.iter().for_each(|item| self.collect(item, secret, env)),
            serde_json::Value::Object(members) => {
                for (key, member) in members {
                    self.collect(member, secret || names_secret(key), env);
                }
            }
            _ => {}
        }
    }

    /// `text` with every secret replaced by `***`: as it is, and as a
    /// message may quote it (Rust's `{:?}` or JSON escaping).
    pub fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |text, secret| {
            let debug = format!("{secret:?}");
            let json = serde_json::Value::from(secret.as_str()).to_string();
            let quoted = [&debug[1..debug.len() - 1], &json[1..json.len() - 1]];
            quoted.into_iter().fold(text.replace(secret.as_str(), "***"), |text, form| text.replace(form, "***"))
        })
    }
}

/// Whether a member's name says it holds a secret.
fn names_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("password") || lower.contains("token") || lower.contains("secret")
}

/// Collects the paths of non-empty strings under a key that names a secret
/// (`password`, `…token…`, `…secret…`) that are not `${ENV_NAME}`.
pub(super) fn find_literal_secrets(value: &serde_json::Value, path: &str, secret: bool, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) if secret && !text.is_empty() && !text.starts_with("${") => {
            found.push(path.to_string());
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_literal_secrets(item, &format!("{path}[{i}]"), secret, found);
            }
        }
        serde_json::Value::Object(members) => {
            for (key, member) in members {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                find_literal_secrets(member, &at, secret || names_secret(key), found);
            }
        }
        _ => {}
    }
}

/// Decodes a `whsec_…` secret (the prefix is optional).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_collected_from_literals_and_the_environment() {
        let config = serde_json::json!({
            "database": {"type": "mysql", "user": "his", "password": "pa55word", "db_password": "${HIS_PW}"},
            "server": {"admin_token": 1234567890123456789_u64, "auth": {"webhook_secrets": ["whsec_abc"], "bearer_tokens": [""]}},
            "mapping": {"e": {"table": "T", "fields": {"secret_id": "X"}}},
        });
        let secrets = Secrets::of_config(&config, &|name| (name == "HIS_PW").then(|| "from-env".to_string()));
        assert_eq!(secrets.0, ["1234567890123456789", "whsec_abc", "from-env", "pa55word"]);
        assert_eq!(
            secrets.redact("login his:pa55word refused; token 1234567890123456789; from-env"),
            "login his:*** refused; token ***; ***"
        );
    }
}
