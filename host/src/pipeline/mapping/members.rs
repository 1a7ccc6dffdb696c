//! An event's top-level members, each as its raw JSON text, borrowed from
//! the payload: reading them allocates one map entry per member, never a
//! tree, and keeps every number's text as it was sent. Intake reads the
//! key and delivery id from it; the worker reads the mapped fields.

use std::collections::HashMap;

use serde_json::value::RawValue;

/// The members of one JSON object.
#[derive(Debug)]
pub struct Members<'a>(HashMap<MemberName<'a>, &'a RawValue>);

impl<'a> Members<'a> {
    /// Parses `json`, which must be one object. Nested values are checked
    /// for syntax but kept as text.
    pub fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self)
    }

    /// The raw text of member `name`.
    pub fn raw(&self, name: &str) -> Option<&'a RawValue> {
        self.0.get(name).copied()
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.0.iter().map(|(name, raw)| (name.0.as_ref(), *raw))
    }
}

/// An event member's name: borrowed from the payload, unless it is written
/// with an escape (`"caf\u00e9"`, `"a\/b"`: Python and PHP write such names),
/// which must be decoded into a string of its own.
#[derive(Debug, PartialEq, Eq, Hash, serde::Deserialize)]
struct MemberName<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::borrow::Borrow<str> for MemberName<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// What kind of JSON value `raw` is, for a message.
pub fn kind_of(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') if raw.trim() == "\"\"" => "an empty string",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}
