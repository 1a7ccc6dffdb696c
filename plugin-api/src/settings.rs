//! Reading a plugin's settings (feature `settings`).

use serde::de::DeserializeOwned;

use crate::{ErrorKind, PluginError};

/// Parses the `database` section (as the host passes it to
/// [`crate::Plugin::open`]) into `T`. Errors are [`ErrorKind::CONFIG`] and
/// name the setting as the operator wrote it:
/// `database.port: invalid type: string "3306", expected u16`.
///
/// Give `T` `#[serde(deny_unknown_fields)]` and a `type` field (the host
/// includes `type`), so that a misspelt setting is an error, not ignored.
pub fn parse_settings<T: DeserializeOwned>(settings_json: &str) -> Result<T, PluginError> {
    let mut deserializer = serde_json::Deserializer::from_str(settings_json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { "database".to_string() } else { format!("database.{path}") };
        PluginError::permanent(ErrorKind::CONFIG, format!("{at}: {}", e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        #[serde(rename = "type")]
        kind: String,
        port: u16,
    }

    #[test]
    fn errors_name_the_setting() {
        let error = parse_settings::<Example>(r#"{"type": "x", "port": "3306"}"#).unwrap_err();
        assert_eq!(error.kind, ErrorKind::CONFIG);
        assert!(error.message.starts_with("database.port: invalid type: string"), "{error}");
        let error = parse_settings::<Example>(r#"{"type": "x"}"#).unwrap_err();
        assert!(error.message.starts_with("database: missing field `port`"), "{error}");
        assert_eq!(parse_settings::<Example>(r#"{"type": "x", "port": 1}"#).unwrap().port, 1);
    }
}
