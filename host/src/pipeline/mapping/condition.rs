//! `when`: whether a target applies to an event.

use super::{Members, source::Path, transform::constant, transform::text_of, value_of};
use crate::config::mapping::ConditionConfig;

/// A compiled `when`.
#[derive(Debug, Clone)]
pub struct Condition {
    path: Path,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// Equals one of (text forms).
    In(Vec<String>),
    /// Absent, or equals none of.
    NotIn(Vec<String>),
    /// Present and not null (`true`), or not (`false`).
    Exists(bool),
}

impl Condition {
    /// Compiles a validated `when` found at `at`. The error is (JSON path,
    /// message).
    pub fn new(config: &ConditionConfig, at: &str) -> Result<Self, (String, String)> {
        let path = Path::parse(&config.field).map_err(|e| (format!("{at}.field"), e))?;
        let texts = |values: &[serde_json::Value], what: &str| -> Result<Vec<String>, (String, String)> {
            values
                .iter()
                .map(|v| {
                    let value = constant(v).map_err(|e| (format!("{at}.{what}"), e))?;
                    Ok(text_of(&value).map(|t| t.into_owned()).unwrap_or_default())
                })
                .collect()
        };
        let test = if let Some(v) = &config.equals {
            Test::In(texts(std::slice::from_ref(v), "equals")?)
        } else if let Some(v) = &config.not_equals {
            Test::NotIn(texts(std::slice::from_ref(v), "not_equals")?)
        } else if let Some(vs) = &config.one_of {
            Test::In(texts(vs, "in")?)
        } else if let Some(vs) = &config.not_in {
            Test::NotIn(texts(vs, "not_in")?)
        } else {
            Test::Exists(config.exists.unwrap_or(true))
        };
        Ok(Self { path, test })
    }

    /// Whether `event` meets the condition. A value is compared by its
    /// text: `1` equals `"1"`; null equals nothing (and does not exist).
    pub fn holds(&self, event: &Members<'_>) -> bool {
        let text = self
            .path
            .find(event)
            .filter(|raw| raw.get() != "null")
            .and_then(|raw| value_of(raw).ok())
            .and_then(|value| text_of(&value).map(|t| t.into_owned()));
        match (&self.test, text) {
            (Test::Exists(wanted), text) => text.is_some() == *wanted,
            (Test::In(values), Some(text)) => values.contains(&text),
            (Test::In(_), None) => false,
            (Test::NotIn(values), Some(text)) => !values.contains(&text),
            (Test::NotIn(_), None) => true,
        }
    }

    /// The top-level member tested (for `check`'s warnings).
    pub fn member(&self) -> &str {
        self.path.first_member()
    }

    /// The condition as one line: `status in ["cancelled"]`.
    pub fn describe(&self) -> String {
        let field = &self.path.text;
        match &self.test {
            Test::In(values) if values.len() == 1 => format!("{field} == {:?}", values[0]),
            Test::In(values) => format!("{field} in {values:?}"),
            Test::NotIn(values) if values.len() == 1 => format!("{field} != {:?}", values[0]),
            Test::NotIn(values) => format!("{field} not in {values:?}"),
            Test::Exists(true) => format!("{field} exists"),
            Test::Exists(false) => format!("{field} is absent"),
        }
    }
}
