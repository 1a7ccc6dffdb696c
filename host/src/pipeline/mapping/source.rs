//! Where a column's value comes from: an event field or a dotted path, a
//! constant, a template, or the first present of several paths; then its
//! transforms, in order.
//!
//! Paths are read from the event's raw text ([`Members`]), one level at a
//! time, so that a nested number keeps its text exactly as it was sent.

use his_plugin_api::Value;
use serde_json::value::RawValue;

use super::{
    Members, RECEIVE_TIME_FIELDS,
    transform::{Applied, Transform, constant, text_of},
    value_of,
};
use crate::config::mapping::{SourceConfig, SourceSpec};

/// A compiled source.
#[derive(Debug, Clone)]
pub struct Source {
    origin: Origin,
    transforms: Vec<Transform>,
    /// Where it is in his-config.json: `mapping.payment.columns.HIS_amount`.
    pub at: String,
}

/// Where the value comes from, before its transforms.
#[derive(Debug, Clone)]
enum Origin {
    /// A top-level member, named exactly (the seed's `fields`, whose
    /// names may hold dots).
    Member(String),
    /// A dotted path.
    Path(Path),
    /// A fixed value.
    Const(Value),
    /// Text with placeholders.
    Template(Vec<Piece>),
    /// The first present, non-null path.
    Coalesce(Vec<Path>),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Path(Path),
}

/// `patient.id`, `items[0].code`: members and array indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// As written.
    pub text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Index(usize),
}

/// Why a column has no value for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    /// The event field or path, as the config names it.
    pub field: String,
    /// The mapping path: `mapping.appointment.columns.HIS_status.transforms[0]`.
    pub at: String,
    /// The value, as text, cut to 60 characters.
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

impl Path {
    /// Parses a path. The error is a message for its JSON path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a field path: write member names joined by dots, with [n] for an array element (patient.id, items[0].code)"
            )
        };
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if name.is_empty() {
                return Err(bad());
            }
            steps.push(Step::Member(name.to_string()));
            if !rest.is_empty() {
                rest = rest.strip_suffix(']').ok_or_else(bad)?;
                for index in rest.split("][") {
                    steps.push(Step::Index(index.parse().map_err(|_| bad())?));
                }
            }
        }
        Ok(Self { text: text.to_string(), steps })
    }

    /// The first member's name (what intake checks an event carries).
    pub fn first_member(&self) -> &str {
        match &self.steps[0] {
            Step::Member(name) => name,
            Step::Index(_) => unreachable!("a path starts with a member"),
        }
    }

    /// The raw value at this path, if the event has one. A step into a
    /// value that is not an object or an array finds nothing.
    pub fn find<'a>(&self, event: &Members<'a>) -> Option<&'a RawValue> {
        let mut raw = event.raw(self.first_member())?;
        for step in &self.steps[1..] {
            raw = match step {
                Step::Member(name) => Members::parse(raw.get()).ok()?.raw(name)?,
                Step::Index(i) => *serde_json::from_str::<Vec<&'a RawValue>>(raw.get()).ok()?.get(*i)?,
            };
        }
        Some(raw)
    }
}

impl Source {
    /// A seed `fields` entry: the top-level member `field`, as it is.
    pub fn member(field: &str, at: String) -> Self {
        Self { origin: Origin::Member(field.to_string()), transforms: Vec::new(), at }
    }

    /// Compiles a `columns` entry found at `at`. The error is (JSON path,
    /// message).
    pub fn new(config: &SourceConfig, at: String) -> Result<Self, (String, String)> {
        let spec: SourceSpec = config.spec();
        let path = |text: &str, at: String| Path::parse(text).map_err(|e| (at, e));
        let given = [spec.from.is_some(), spec.constant.is_some(), spec.template.is_some(), spec.coalesce.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err((at, "give exactly one of from, const, template and coalesce".into()));
        }
        let origin = if let Some(from) = &spec.from {
            Origin::Path(path(from, format!("{at}.from"))?)
        } else if let Some(value) = &spec.constant {
            Origin::Const(constant(value).map_err(|e| (format!("{at}.const"), e))?)
        } else if let Some(template) = &spec.template {
            Origin::Template(pieces(template).map_err(|e| (format!("{at}.template"), e))?)
        } else {
            let paths = spec.coalesce.as_deref().unwrap_or_default();
            if paths.is_empty() {
                return Err((format!("{at}.coalesce"), "list at least one field".into()));
            }
            let paths = paths.iter().enumerate().map(|(n, p)| path(p, format!("{at}.coalesce[{n}]")));
            Origin::Coalesce(paths.collect::<Result<_, _>>()?)
        };
        let transforms = spec
            .transforms
            .iter()
            .enumerate()
            .map(|(n, t)| Transform::new(t).map_err(|e| (format!("{at}.transforms[{n}]"), e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { origin, transforms, at })
    }

    /// The event field (or what stands for it) errors name.
    pub fn field(&self) -> String {
        match &self.origin {
            Origin::Member(name) => name.clone(),
            Origin::Path(path) => path.text.clone(),
            Origin::Const(_) => "(const)".into(),
            Origin::Template(_) => "(template)".into(),
            Origin::Coalesce(paths) => paths.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" | "),
        }
    }

    /// The top-level member the value is read from as it is, when it is
    /// one (no transforms): intake reads such key values straight from
    /// the raw text.
    pub fn plain_member(&self) -> Option<&str> {
        if !self.transforms.is_empty() {
            return None;
        }
        match &self.origin {
            Origin::Member(name) => Some(name),
            Origin::Path(path) if path.steps.len() == 1 => Some(path.first_member()),
            _ => None,
        }
    }

    /// The top-level members it reads, for `check`'s warnings.
    pub fn members(&self) -> Vec<&str> {
        match &self.origin {
            Origin::Member(name) => vec![name],
            Origin::Path(path) => vec![path.first_member()],
            Origin::Const(_) => vec![],
            Origin::Template(pieces) => pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Path(path) => Some(path.first_member()),
                    Piece::Text(_) => None,
                })
                .collect(),
            Origin::Coalesce(paths) => paths.iter().map(Path::first_member).collect(),
        }
    }

    /// What the key fingerprint records of this source: the member's name
    /// for a top-level member read as it is (as before sources had
    /// transforms), else the whole source.
    pub fn fingerprint(&self) -> String {
        if let Some(member) = self.plain_member() {
            // `"fields": {"row_id": …}` and `"columns": {…: "row_id"}` read alike.
            return member.to_string();
        }
        let transforms: Vec<String> = self.transforms.iter().map(Transform::fingerprint).collect();
        format!("{:?} {}", self.origin, transforms.join(" "))
    }

    /// The transforms, in order.
    pub fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    /// Whether an absent value may be the receive time: a source reading
    /// `received_at` or `updated_at` at the top level.
    fn is_receive_time(&self) -> bool {
        let name = match &self.origin {
            Origin::Member(name) => name.as_str(),
            Origin::Path(path) if path.steps.len() == 1 => path.first_member(),
            _ => return false,
        };
        RECEIVE_TIME_FIELDS.contains(&name)
    }

    /// The raw value before transforms, or `None` when the event does not
    /// carry it.
    fn raw<'a>(&self, event: &Members<'a>) -> Option<&'a RawValue> {
        match &self.origin {
            Origin::Member(name) => event.raw(name),
            Origin::Path(path) => path.find(event),
            Origin::Coalesce(paths) => paths.iter().filter_map(|p| p.find(event)).find(|raw| raw.get() != "null"),
            Origin::Const(_) | Origin::Template(_) => None,
        }
    }

    /// The column's value for `event`: `None` when the event does not
    /// carry it (a template or a constant always has one).
    pub fn value(
        &self,
        event: &Members<'_>,
        received_at: &str,
        applied: &mut Applied,
    ) -> Result<Option<Value>, SourceError> {
        let value = match &self.origin {
            Origin::Const(value) => value.clone(),
            Origin::Template(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Path(path) => {
                            if let Some(raw) = path.find(event) {
                                let value = value_of(raw)
                                    .map_err(|e| self.error(&path.text, &self.at, raw.get(), e.to_string()))?;
                                text.push_str(&text_of(&value).unwrap_or_default());
                            }
                        }
                    }
                }
                Value::text(text)
            }
            _ => match self.raw(event) {
                Some(raw) => {
                    value_of(raw).map_err(|e| self.error(&self.field(), &self.at, raw.get(), e.to_string()))?
                }
                None if self.is_receive_time() => Value::timestamp(received_at),
                None => return Ok(None),
            },
        };
        if self.transforms.is_empty() {
            // The seed's plain fields: nothing more to do, on every column
            // of every event drained.
            return Ok(Some(value));
        }
        self.transform(value, applied).map(Some)
    }

    /// Applies the transforms to `value`.
    pub fn transform(&self, mut value: Value, applied: &mut Applied) -> Result<Value, SourceError> {
        for (n, transform) in self.transforms.iter().enumerate() {
            let shown = text_of(&value).map_or_else(|| "(bytes)".to_string(), |t| format!("{t:?}"));
            value = transform.apply(value, applied).map_err(|problem| {
                self.error(&self.field(), &format!("{}.transforms[{n}]", self.at), &shown, problem)
            })?;
        }
        Ok(value)
    }

    fn error(&self, field: &str, at: &str, value: &str, problem: String) -> SourceError {
        let mut shown: String = value.chars().take(60).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        SourceError { field: field.to_string(), at: at.to_string(), value: shown, problem }
    }
}

/// A template's pieces: `{path}` placeholders, `{{` and `}}` for braces.
fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("{{{name} is not closed (write {{{{ for a brace)")),
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Path(Path::parse(name.trim()).map_err(|e| format!("in {{{name}}}: {e}"))?));
            }
            '}' => return Err("a lone } (write }} for a brace)".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Path(_))) {
        return Err("a template needs at least one {field} (for fixed text, use const)".into());
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ValueRef;

    use super::*;

    fn source(json: &str) -> Source {
        let config: SourceConfig = serde_json::from_str(json).unwrap();
        Source::new(&config, "mapping.e.columns.C".into()).unwrap()
    }

    fn value(source_json: &str, event: &str) -> Result<Option<Value>, SourceError> {
        source(source_json).value(&Members::parse(event).unwrap(), "2026-01-02T03:04:05Z", &mut Applied::default())
    }

    #[test]
    fn paths_reach_into_objects_and_arrays_and_keep_numbers_exact() {
        let event = r#"{"patient": {"id": 77, "ids": ["a", {"mrn": "M-1"}]}, "amount": {"value": 12.50}}"#;
        assert_eq!(value(r#""patient.id""#, event).unwrap(), Some(Value::int(77)));
        assert_eq!(value(r#""patient.ids[1].mrn""#, event).unwrap(), Some(Value::text("M-1")));
        assert_eq!(value(r#""amount.value""#, event).unwrap(), Some(Value::decimal("12.50")));
        assert_eq!(value(r#""patient.name""#, event).unwrap(), None);
        assert_eq!(value(r#""patient.id.x""#, event).unwrap(), None, "a step into a number finds nothing");
        assert_eq!(value(r#""patient.ids[5]""#, event).unwrap(), None);
        for bad in ["", "a..b", "a[x]", "a[1", "[0]"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constants_templates_and_coalesce() {
        let event = r#"{"first": "Ana", "last": "Ruiz", "phone": null, "mobile": "600"}"#;
        assert_eq!(value(r#"{"const": "BUKTOR"}"#, event).unwrap(), Some(Value::text("BUKTOR")));
        assert_eq!(value(r#"{"const": null}"#, event).unwrap(), Some(Value::null()));
        assert_eq!(
            value(r#"{"template": "{last}, {first} {{x}}"}"#, event).unwrap(),
            Some(Value::text("Ruiz, Ana {x}"))
        );
        assert_eq!(value(r#"{"template": "{first} {middle}"}"#, event).unwrap(), Some(Value::text("Ana ")));
        assert_eq!(value(r#"{"coalesce": ["phone", "mobile"]}"#, event).unwrap(), Some(Value::text("600")));
        assert_eq!(value(r#"{"coalesce": ["fax", "phone"]}"#, event).unwrap(), None);
        assert_eq!(
            value(r#""received_at""#, event).unwrap().unwrap().get(),
            ValueRef::Timestamp("2026-01-02T03:04:05Z")
        );
        for (bad, at) in [
            (r#"{"from": "a", "const": 1}"#, "mapping.e.columns.C"),
            (r#"{"template": "no placeholder"}"#, "mapping.e.columns.C.template"),
            (r#"{"template": "{a"}"#, "mapping.e.columns.C.template"),
            (r#"{"coalesce": []}"#, "mapping.e.columns.C.coalesce"),
            (r#"{"const": [1]}"#, "mapping.e.columns.C.const"),
        ] {
            let config: SourceConfig = serde_json::from_str(bad).unwrap();
            let error = Source::new(&config, "mapping.e.columns.C".into()).unwrap_err();
            assert_eq!(error.0, at, "{bad}: {}", error.1);
        }
    }

    #[test]
    fn transforms_chain_and_their_errors_name_field_path_and_value() {
        let status = r#"{"from": "status", "transforms": ["trim", "lower",
            {"map": {"confirmed": "C", "cancelled": "X"}}]}"#;
        assert_eq!(value(status, r#"{"status": " Confirmed "}"#).unwrap(), Some(Value::text("C")));
        let error = value(status, r#"{"status": "tentative"}"#).unwrap_err();
        assert_eq!(
            error,
            SourceError {
                field: "status".into(),
                at: "mapping.e.columns.C.transforms[2]".into(),
                value: "\"tentative\"".into(),
                problem: "not in the map, which has no default".into()
            }
        );
        let with_default = r#"{"from": "s", "transforms": [{"map": {"a": 1}, "default": 0}]}"#;
        assert_eq!(value(with_default, r#"{"s": "b"}"#).unwrap(), Some(Value::int(0)));
        let to_null = r#"{"from": "s", "transforms": [{"map": {"a": 1}, "default": 0, "on_miss": "null"}]}"#;
        assert_eq!(value(to_null, r#"{"s": "b"}"#).unwrap(), Some(Value::null()));
        assert_eq!(value(to_null, r#"{"s": null}"#).unwrap(), Some(Value::null()), "null passes through");
        assert_eq!(value(to_null, r#"{}"#).unwrap(), None, "absent stays absent");

        let mut applied = Applied::default();
        let cut = source(r#"{"from": "n", "transforms": [{"truncate": 3}]}"#);
        let v = cut.value(&Members::parse(r#"{"n": "Núñez"}"#).unwrap(), "", &mut applied).unwrap();
        assert_eq!((v, applied.truncated), (Some(Value::text("Núñ")), true));
    }

    #[test]
    fn numbers_are_parsed_exactly() {
        let int = r#"{"from": "n", "transforms": [{"parse": "integer"}]}"#;
        assert_eq!(value(int, r#"{"n": " +42 "}"#).unwrap(), Some(Value::int(42)));
        assert!(value(int, r#"{"n": "4.2"}"#).unwrap_err().problem.contains("whole number"));
        let dec = r#"{"from": "n", "transforms": [{"parse": "decimal"}]}"#;
        assert_eq!(value(dec, r#"{"n": "12,50"}"#).unwrap(), Some(Value::decimal("12.50")));
        assert_eq!(value(dec, r#"{"n": "-0.1"}"#).unwrap(), Some(Value::decimal("-0.1")));
        assert_eq!(value(dec, r#"{"n": 7}"#).unwrap(), Some(Value::int(7)));
        assert!(value(dec, r#"{"n": "1.2.3"}"#).is_err());
    }

    #[test]
    fn dates_and_times_change_zone_and_form() {
        let date = r#"{"from": "t", "transforms": [{"datetime": {"to": "date", "to_zone": "Europe/Madrid"}}]}"#;
        // 23:30 UTC on 3 March is already 4 March in Madrid.
        assert_eq!(value(date, r#"{"t": "2025-03-03T23:30:00Z"}"#).unwrap(), Some(Value::date("2025-03-04")));
        assert_eq!(value(date, r#"{"t": "2025-03-03"}"#).unwrap(), Some(Value::date("2025-03-03")), "a date stays");
        let local =
            r#"{"from": "t", "transforms": [{"datetime": {"to": "local_timestamp", "to_zone": "Europe/Madrid"}}]}"#;
        assert_eq!(
            value(local, r#"{"t": "2025-07-01T08:00:00Z"}"#).unwrap().unwrap().get(),
            ValueRef::Timestamp("2025-07-01T10:00:00")
        );
        let from_format = r#"{"from": "t", "transforms": [{"datetime": {"format": "%d/%m/%Y %H:%M",
            "zone": "Europe/Madrid", "to": "timestamp"}}]}"#;
        assert_eq!(
            value(from_format, r#"{"t": "03/03/2025 10:00"}"#).unwrap().unwrap().get(),
            ValueRef::Timestamp("2025-03-03T09:00:00Z")
        );
        let text = r#"{"from": "t", "transforms": [{"datetime": {"to": "text", "to_format": "%Y%m%d"}}]}"#;
        assert_eq!(value(text, r#"{"t": "2025-03-03"}"#).unwrap(), Some(Value::text("20250303")));
        let error = value(date, r#"{"t": "yesterday"}"#).unwrap_err();
        assert!(error.problem.starts_with("not an ISO 8601 date or time"), "{error:?}");
        for bad in [
            r#"{"to": "date", "zone": "Mars/Base"}"#,
            r#"{"to": "text"}"#,
            r#"{"to": "date", "to_format": "%Y"}"#,
            r#"{"to": "date", "format": "%Q"}"#,
        ] {
            let config: SourceConfig =
                serde_json::from_str(&format!(r#"{{"from": "t", "transforms": [{{"datetime": {bad}}}]}}"#)).unwrap();
            assert!(Source::new(&config, "c".into()).is_err(), "{bad}");
        }
    }
}
