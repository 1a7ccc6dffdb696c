//! One transform of a column's value (`columns.<column>.transforms`),
//! compiled once from its config, then applied to each event's value.
//!
//! Transforms take and give the plugin's typed [`Value`]s. NULL passes
//! through every transform unchanged; an absent field never reaches one.
//! A value a transform cannot take is an error naming what was expected;
//! [`super::source`] adds the field, the mapping path and the value.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc, format::StrftimeItems};
use chrono_tz::Tz;
use his_plugin_api::{Value, ValueRef};

use super::value_of;
use crate::config::mapping::{
    DateTimeConfig, DateTimeOutput, OnMiss, ParseAs, TransformConfig, TransformSpec, TransformWord,
};

/// A compiled transform.
#[derive(Debug, Clone)]
pub enum Transform {
    /// `"trim"`.
    Trim,
    /// `"upper"`.
    Upper,
    /// `"lower"`.
    Lower,
    /// `{"truncate": n}`: at most n characters.
    Truncate(usize),
    /// `{"map": …}` or `{"lookup": …}`: a value found in a table.
    Table(Table),
    /// `{"parse": …}`.
    Parse(ParseAs),
    /// `{"datetime": …}`.
    DateTime(Box<DateTimeTransform>),
}

/// `map` and `lookup`: text → value, and what a miss does.
#[derive(Debug, Clone)]
pub struct Table {
    /// What it is, for messages: `the map`, `the lookup file wards.csv`.
    name: String,
    entries: Arc<HashMap<String, Value>>,
    on_miss: Miss,
}

/// What a value not in the table does.
#[derive(Debug, Clone)]
enum Miss {
    Fail,
    Write(Value),
}

/// `datetime`, with its zones and formats checked.
#[derive(Debug, Clone)]
pub struct DateTimeTransform {
    format: Option<String>,
    zone: Tz,
    to: DateTimeOutput,
    to_zone: Tz,
    to_format: Option<String>,
}

/// What one application did besides its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Text was cut by `truncate`.
    pub truncated: bool,
}

impl Transform {
    /// Compiles one transform. The error is a message for the
    /// transform's JSON path.
    pub fn new(config: &TransformConfig) -> Result<Self, String> {
        let spec = match config {
            TransformConfig::Word(TransformWord::Trim) => return Ok(Transform::Trim),
            TransformConfig::Word(TransformWord::Upper) => return Ok(Transform::Upper),
            TransformConfig::Word(TransformWord::Lower) => return Ok(Transform::Lower),
            TransformConfig::Spec(spec) => spec,
        };
        let kinds = [
            spec.map.is_some(),
            spec.lookup.is_some(),
            spec.truncate.is_some(),
            spec.parse.is_some(),
            spec.datetime.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(
                "give exactly one of map, lookup, truncate, parse and datetime (use one transform per step)".into()
            );
        }
        if spec.map.is_none() && spec.lookup.is_none() && (spec.default.is_some() || spec.on_miss.is_some()) {
            return Err("default and on_miss go only with map or lookup".into());
        }
        if spec.lookup.is_none() && (spec.key_column.is_some() || spec.value_column.is_some()) {
            return Err("key_column and value_column go only with lookup".into());
        }
        if let Some(map) = &spec.map {
            let entries = map
                .iter()
                .map(|(from, to)| Ok((from.clone(), constant(to).map_err(|e| format!("map.{from}: {e}"))?)))
                .collect::<Result<HashMap<_, _>, String>>()?;
            return Ok(Transform::Table(Table {
                name: "the map".into(),
                entries: Arc::new(entries),
                on_miss: miss(spec)?,
            }));
        }
        if let Some(file) = &spec.lookup {
            let rows = spec.lookup_rows.as_ref().ok_or_else(|| format!("the lookup file {file} was not read"))?;
            let entries = rows.iter().map(|(k, v)| (k.clone(), Value::text(v.as_str()))).collect();
            return Ok(Transform::Table(Table {
                name: format!("the lookup file {file}"),
                entries: Arc::new(entries),
                on_miss: miss(spec)?,
            }));
        }
        if let Some(n) = spec.truncate {
            return if n == 0 { Err("truncate must be at least 1".into()) } else { Ok(Transform::Truncate(n)) };
        }
        if let Some(parse) = spec.parse {
            return Ok(Transform::Parse(parse));
        }
        let config = spec.datetime.as_ref().expect("one kind is set");
        DateTimeTransform::new(config).map(|t| Transform::DateTime(Box::new(t)))
    }

    /// Applies the transform to `value`.
    pub fn apply(&self, value: Value, applied: &mut Applied) -> Result<Value, String> {
        if value.get() == ValueRef::Null {
            return Ok(value);
        }
        match self {
            Transform::Trim => text_op(value, |t| t.trim().to_string()),
            Transform::Upper => text_op(value, str::to_uppercase),
            Transform::Lower => text_op(value, str::to_lowercase),
            Transform::Truncate(n) => text_op(value, |t| match t.char_indices().nth(*n) {
                Some((at, _)) => {
                    applied.truncated = true;
                    t[..at].to_string()
                }
                None => t.to_string(),
            }),
            Transform::Table(table) => table.find(&value),
            Transform::Parse(ParseAs::Integer) => parse_integer(&value),
            Transform::Parse(ParseAs::Decimal) => parse_decimal(&value),
            Transform::DateTime(t) => t.apply(&value),
        }
    }

    /// The transform as stable text, for the key fingerprint: a table's
    /// entries in order.
    pub fn fingerprint(&self) -> String {
        match self {
            Transform::Table(table) => {
                let entries: std::collections::BTreeMap<&String, &Value> = table.entries.iter().collect();
                format!("table {entries:?} {:?}", table.on_miss)
            }
            other => format!("{other:?}"),
        }
    }

    /// The value written for a miss, if the transform is a table with a
    /// default: `check` makes sure it fits the column.
    pub fn default_value(&self) -> Option<&Value> {
        match self {
            Transform::Table(Table { on_miss: Miss::Write(value), .. }) => Some(value),
            _ => None,
        }
    }
}

/// A config constant (`map` values, `default`, `const`) as a value.
pub fn constant(json: &serde_json::Value) -> Result<Value, String> {
    if json.is_object() || json.is_array() {
        return Err("must be a string, number, boolean or null".into());
    }
    let raw = serde_json::value::RawValue::from_string(json.to_string()).expect("JSON text");
    value_of(&raw).map_err(|e| e.to_string())
}

fn miss(spec: &TransformSpec) -> Result<Miss, String> {
    let default = spec.default.as_ref().map(constant).transpose().map_err(|e| format!("default: {e}"))?;
    Ok(match (spec.on_miss, default) {
        (Some(OnMiss::Fail), _) | (None, None) => Miss::Fail,
        (Some(OnMiss::Null), _) => Miss::Write(Value::null()),
        (Some(OnMiss::Default) | None, Some(value)) => Miss::Write(value),
        (Some(OnMiss::Default), None) => return Err("on_miss is \"default\", but there is no default".into()),
    })
}

impl Table {
    fn find(&self, value: &Value) -> Result<Value, String> {
        let text =
            text_of(value).ok_or_else(|| format!("{} matches text and numbers, not {}", self.name, kind(value)))?;
        match (self.entries.get(text.as_ref()), &self.on_miss) {
            (Some(found), _) => Ok(found.clone()),
            (None, Miss::Write(value)) => Ok(value.clone()),
            (None, Miss::Fail) => Err(format!("not in {}, which has no default", self.name)),
        }
    }
}

/// The text a value is matched, trimmed or templated by: `None` for bytes.
pub fn text_of(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    Some(match value.get() {
        ValueRef::Null => Cow::Borrowed(""),
        ValueRef::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        ValueRef::Int(i) => Cow::Owned(i.to_string()),
        ValueRef::Float(f) => Cow::Owned(f.to_string()),
        ValueRef::Decimal(t) | ValueRef::Text(t) | ValueRef::Timestamp(t) | ValueRef::Date(t) => Cow::Borrowed(t),
        _ => return None,
    })
}

/// The kind of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value.get() {
        ValueRef::Null => "null",
        ValueRef::Bool(_) => "a boolean",
        ValueRef::Int(_) | ValueRef::Float(_) | ValueRef::Decimal(_) => "a number",
        ValueRef::Text(_) => "text",
        ValueRef::Timestamp(_) => "a timestamp",
        ValueRef::Date(_) => "a date",
        ValueRef::Bytes(_) => "bytes",
        _ => "a value of another kind",
    }
}

/// A text operation: numbers and booleans pass unchanged, as they have no
/// case or spaces to lose and truncating them would change their value. A
/// timestamp or a date stays one if the result still is one (`trim`,
/// `upper`), else it becomes text.
fn text_op(value: Value, mut op: impl FnMut(&str) -> String) -> Result<Value, String> {
    match value.get() {
        ValueRef::Text(t) => Ok(Value::text(op(t))),
        ValueRef::Timestamp(t) => {
            let result = op(t);
            Ok(if super::is_timestamp(&result) { Value::timestamp(result) } else { Value::text(result) })
        }
        ValueRef::Date(t) => {
            let result = op(t);
            Ok(if his_plugin_api::is_date(&result) { Value::date(result) } else { Value::text(result) })
        }
        ValueRef::Bytes(_) => Err("a text transform cannot take bytes".into()),
        _ => Ok(value),
    }
}

fn parse_integer(value: &Value) -> Result<Value, String> {
    match value.get() {
        ValueRef::Int(_) => Ok(value.clone()),
        ValueRef::Text(t) | ValueRef::Decimal(t) => {
            let t = t.trim();
            t.strip_prefix('+')
                .unwrap_or(t)
                .parse::<i64>()
                .map(Value::int)
                .map_err(|_| "not a whole number (such as 42 or -7)".to_string())
        }
        _ => Err(format!("parse \"integer\" takes text or a number, not {}", kind(value))),
    }
}

fn parse_decimal(value: &Value) -> Result<Value, String> {
    match value.get() {
        ValueRef::Int(_) | ValueRef::Decimal(_) => Ok(value.clone()),
        ValueRef::Text(t) => {
            let t = t.trim();
            let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
            let (whole, fraction) = unsigned.split_once(['.', ',']).unwrap_or((unsigned, "0"));
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(whole) || !digits(fraction) {
                return Err("not a decimal number (such as 12.50, or 12,50)".into());
            }
            let sign = if t.starts_with('-') { "-" } else { "" };
            Ok(Value::decimal(if unsigned.contains(['.', ',']) {
                format!("{sign}{whole}.{fraction}")
            } else {
                format!("{sign}{whole}")
            }))
        }
        _ => Err(format!("parse \"decimal\" takes text or a number, not {}", kind(value))),
    }
}

/// A date or a time read by `datetime`.
enum Read {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

impl DateTimeTransform {
    fn new(config: &DateTimeConfig) -> Result<Self, String> {
        let zone = |name: Option<&String>, what: &str| -> Result<Option<Tz>, String> {
            name.map(|n| {
                n.parse::<Tz>()
                    .map_err(|_| format!("{what}: {n:?} is not an IANA time zone (such as Europe/Madrid or UTC)"))
            })
            .transpose()
        };
        let from_zone = zone(config.zone.as_ref(), "zone")?.unwrap_or(Tz::UTC);
        let to_zone = zone(config.to_zone.as_ref(), "to_zone")?.unwrap_or(from_zone);
        for (name, format) in [("format", &config.format), ("to_format", &config.to_format)] {
            if let Some(format) = format
                && StrftimeItems::new(format).any(|item| matches!(item, chrono::format::Item::Error))
            {
                return Err(format!("{name}: {format:?} is not a valid strftime format (see chrono's strftime)"));
            }
        }
        match (config.to, &config.to_format) {
            (DateTimeOutput::Text, None) => return Err("to \"text\" needs to_format".into()),
            (DateTimeOutput::Text, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err("to_format goes only with to \"text\"".into()),
        }
        Ok(Self {
            format: config.format.clone(),
            zone: from_zone,
            to: config.to,
            to_zone,
            to_format: config.to_format.clone(),
        })
    }

    fn apply(&self, value: &Value) -> Result<Value, String> {
        let text = match value.get() {
            ValueRef::Text(t) | ValueRef::Timestamp(t) | ValueRef::Date(t) => t.trim(),
            _ => return Err(format!("datetime takes text, not {}", kind(value))),
        };
        let read = self.read(text).ok_or_else(|| match &self.format {
            Some(format) => format!("not a date or time in the format {format:?}"),
            None => "not an ISO 8601 date or time (such as 2025-03-03 or 2025-03-03T09:00:00Z)".to_string(),
        })?;
        let local = |instant: DateTime<Utc>| instant.with_timezone(&self.to_zone).naive_local();
        Ok(match (self.to, read) {
            (DateTimeOutput::Timestamp, Read::Instant(i)) => {
                Value::timestamp(i.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
            }
            (DateTimeOutput::Timestamp, Read::Date(d)) => {
                let instant = self.at_midnight(d)?;
                Value::timestamp(instant.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
            }
            (DateTimeOutput::LocalTimestamp, Read::Instant(i)) => Value::timestamp(local_text(&local(i))),
            (DateTimeOutput::LocalTimestamp, Read::Date(d)) => {
                Value::timestamp(local_text(&local(self.at_midnight(d)?)))
            }
            (DateTimeOutput::Date, Read::Instant(i)) => Value::date(local(i).date().format("%Y-%m-%d").to_string()),
            (DateTimeOutput::Date, Read::Date(d)) => Value::date(d.format("%Y-%m-%d").to_string()),
            (DateTimeOutput::Text, read) => {
                let format = self.to_format.as_deref().expect("checked");
                let mut out = String::new();
                let written = match read {
                    Read::Instant(i) => write!(out, "{}", local(i).format(format)),
                    Read::Date(d) => write!(out, "{}", d.format(format)),
                };
                written.map_err(|_| format!("a date has no time of day for to_format {format:?}"))?;
                Value::text(out)
            }
        })
    }

    /// Midnight of a calendar date in `zone`, as an instant.
    fn at_midnight(&self, date: NaiveDate) -> Result<DateTime<Utc>, String> {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        self.zone
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("midnight of {date} does not exist in {}", self.zone))
    }

    fn read(&self, text: &str) -> Option<Read> {
        let in_zone = |naive: NaiveDateTime| {
            self.zone.from_local_datetime(&naive).earliest().map(|t| Read::Instant(t.with_timezone(&Utc)))
        };
        match &self.format {
            Some(format) => DateTime::parse_from_str(text, format)
                .ok()
                .map(|t| Read::Instant(t.with_timezone(&Utc)))
                .or_else(|| NaiveDateTime::parse_from_str(text, format).ok().and_then(in_zone))
                .or_else(|| NaiveDate::parse_from_str(text, format).ok().map(Read::Date)),
            None => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| Read::Instant(t.with_timezone(&Utc)))
                .or_else(|| {
                    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                        .and_then(in_zone)
                })
                .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Read::Date)),
        }
    }
}

/// A wall-clock time as an ISO 8601 timestamp without an offset.
fn local_text(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}
