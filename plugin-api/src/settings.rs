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

/// The default of every writer's `database.lock_timeout_secs`.
pub const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 5;

/// Checks a writer's `database.lock_timeout_secs` (`None` when the operator
/// left it out): how long one write waits for a row (or table) that
/// another session has locked before it gives up with a retryable
/// [`ErrorKind::CONFLICT`]. It must be at least 1 and, when the plugin has
/// a `database.statement_timeout_secs`, below it: a lock wait must end as
/// a conflict on its rows, never as the statement timeout
/// ([`ErrorKind::TIMEOUT`], which makes the host treat the whole HIS as
/// unusable). Left out, it is [`DEFAULT_LOCK_TIMEOUT_SECS`], or one second
/// less than a statement timeout of 5 or less, so that such a config keeps
/// working. Errors are one line naming both settings:
/// `database.lock_timeout_secs: must be less than database.statement_timeout_secs (60), found 90`.
pub fn check_lock_timeout(
    lock_timeout_secs: Option<u64>,
    statement_timeout_secs: Option<u64>,
) -> Result<std::time::Duration, PluginError> {
    let below_statement = |statement: u64| statement.saturating_sub(1).max(1);
    let lock = match (lock_timeout_secs, statement_timeout_secs) {
        (Some(lock), _) => lock,
        (None, Some(statement)) => DEFAULT_LOCK_TIMEOUT_SECS.min(below_statement(statement)),
        (None, None) => DEFAULT_LOCK_TIMEOUT_SECS,
    };
    if lock < 1 {
        return Err(PluginError::setting("lock_timeout_secs", format!("must be at least 1, found {lock}")));
    }
    if let Some(statement) = statement_timeout_secs
        && lock >= statement
    {
        let found = match lock_timeout_secs {
            Some(_) => format!("found {lock}"),
            None => format!("found {lock} (the least it can be): set database.statement_timeout_secs to 2 or more"),
        };
        return Err(PluginError::setting(
            "lock_timeout_secs",
            format!("must be less than database.statement_timeout_secs ({statement}), {found}"),
        ));
    }
    Ok(std::time::Duration::from_secs(lock))
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

    #[test]
    fn the_lock_timeout_is_below_the_statement_timeout() {
        let secs = |lock, statement| check_lock_timeout(lock, statement).map(|d| d.as_secs());
        assert_eq!(secs(Some(5), Some(60)), Ok(5));
        assert_eq!(secs(Some(59), Some(60)), Ok(59));
        assert_eq!(secs(Some(3600), None), Ok(3600));
        // Left out: 5, or below a short statement timeout.
        assert_eq!(secs(None, Some(60)), Ok(5));
        assert_eq!(secs(None, Some(6)), Ok(5));
        assert_eq!(secs(None, Some(5)), Ok(4));
        assert_eq!(secs(None, Some(2)), Ok(1));
        assert_eq!(secs(None, None), Ok(5));
        for (lock, statement, expected) in [
            (
                Some(90),
                Some(60),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (60), found 90",
            ),
            (
                Some(60),
                Some(60),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (60), found 60",
            ),
            (
                None,
                Some(1),
                "database.lock_timeout_secs: must be less than database.statement_timeout_secs (1), found 1 \
                 (the least it can be): set database.statement_timeout_secs to 2 or more",
            ),
            (Some(0), Some(60), "database.lock_timeout_secs: must be at least 1, found 0"),
            (Some(0), None, "database.lock_timeout_secs: must be at least 1, found 0"),
        ] {
            let error = check_lock_timeout(lock, statement).unwrap_err();
            assert_eq!((error.kind, error.retryable), (ErrorKind::CONFIG, false));
            assert_eq!(error.message.as_str(), expected);
        }
    }
}
