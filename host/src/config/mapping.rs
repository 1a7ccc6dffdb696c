//! `mapping.<event_type>`: how an event type becomes a HIS row, as the
//! file has it.
//!
//! The seed's form is a flat rename (`fields`: event field → column) and
//! keeps working unchanged. `columns` (column → source) adds what a real
//! HIS needs: nested paths, constants, templates, the first present of
//! several fields, and a chain of transforms per column. Both may be used
//! in one mapping. [`crate::pipeline::mapping`] compiles this once.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, value::MapAccessDeserializer},
};

/// `mapping.<event_type>`: one target (an object: the seed's form), or a
/// list of targets, each written, in order, when its `when` holds.
#[derive(Debug, Clone)]
pub struct EventConfig {
    /// The targets, in order.
    pub targets: Vec<MappingConfig>,
    /// Whether the file lists them (`[…]`): their JSON paths then have an
    /// index.
    pub listed: bool,
}

impl EventConfig {
    /// The JSON path of target `index` of `event_type`: `mapping.payment`,
    /// or `mapping.payment[1]` in a list.
    pub fn at(&self, event_type: &str, index: usize) -> String {
        if self.listed { format!("mapping.{event_type}[{index}]") } else { format!("mapping.{event_type}") }
    }

    /// The targets with their JSON paths.
    pub fn targets_at<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = (String, &'a MappingConfig)> + 'a {
        self.targets.iter().enumerate().map(move |(i, t)| (self.at(event_type, i), t))
    }
}

/// The schema of [`EventConfig`]: a target, or a list of targets.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // never built: it only describes the schema
enum EventConfigSchema {
    /// One target.
    One(MappingConfig),
    /// Targets written in order, each when its `when` holds.
    Several(Vec<MappingConfig>),
}

impl JsonSchema for EventConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventMapping".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        EventConfigSchema::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for EventConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = EventConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping (an object with table and fields or columns), or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EventConfig, A::Error> {
                let target = MappingConfig::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EventConfig { targets: vec![target], listed: false })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<EventConfig, A::Error> {
                let targets = Vec::<MappingConfig>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(EventConfig { targets, listed: true })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `when`: the target applies only to events where a field equals a
/// value, is one of several, or exists. Exactly one of `equals`,
/// `not_equals`, `in`, `not_in` and `exists`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The event field or dotted path tested.
    pub field: String,
    /// The field equals this value (compared as text: `1` equals `"1"`).
    #[serde(default, deserialize_with = "present")]
    pub equals: Option<serde_json::Value>,
    /// The field is absent, or does not equal this value.
    #[serde(default, deserialize_with = "present")]
    pub not_equals: Option<serde_json::Value>,
    /// The field equals one of these values.
    #[serde(rename = "in")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// The field is absent, or equals none of these values.
    pub not_in: Option<Vec<serde_json::Value>>,
    /// `true`: the field is present and not null; `false`: it is absent
    /// or null.
    pub exists: Option<bool>,
}

/// `mapping.<event_type>`: the seed's format (`table`, `fields`), plus
/// `columns`, `key`, `action`, `if_missing` and `on_missing`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The HIS table the event is written to.
    pub table: String,
    /// Event field → HIS column, in the order written: the seed's form.
    #[serde(default)]
    pub fields: IndexMap<String, String>,
    /// HIS column → where its value comes from: an event field or dotted
    /// path (`"patient.id"`), or an object with `from`, `const`,
    /// `template` or `coalesce`, and `transforms`. Written after `fields`.
    #[serde(default)]
    pub columns: IndexMap<String, SourceConfig>,
    /// What identifies the HIS row: event fields of `fields`, or columns
    /// of `columns`. Without it, the first field of `fields` whose name
    /// ends in `_id`.
    pub key: Option<Vec<String>>,
    /// What the event does to its row. Default: upsert.
    #[serde(default)]
    pub action: ActionConfig,
    /// For `action: "update"`: what a key that matches no row means.
    /// Default: error (the event fails, and can be replayed).
    pub if_missing: Option<IfMissingConfig>,
    /// A mapped field the event does not carry: `null` writes NULL (the
    /// seed's behaviour, the default); `keep` leaves the column as it is.
    #[serde(default)]
    pub on_missing: OnMissing,
    /// Write this target only for events where the condition holds (in a
    /// list of targets: `{"field": "status", "equals": "cancelled"}` with
    /// `"action": "soft_delete"`).
    pub when: Option<ConditionConfig>,
}

/// `mapping.<event_type>.action`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionConfig {
    /// Update the row if it exists, else insert it.
    #[default]
    Upsert,
    /// Insert; a row that already exists fails the event.
    Insert,
    /// Update only (see `if_missing`).
    Update,
    /// Delete the row with the key; only the key fields are used.
    Delete,
    /// Set the mapped non-key columns (a status, a deletion time) on the
    /// row with the key; no row, nothing to do.
    SoftDelete,
}

/// `mapping.<event_type>.if_missing`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfMissingConfig {
    /// The event fails, and can be replayed.
    Error,
    /// Nothing is written; the event counts as delivered.
    Ignore,
    /// The row is inserted.
    Insert,
}

/// `mapping.<event_type>.on_missing`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Write NULL.
    #[default]
    Null,
    /// Leave the column as it is (a partial row).
    Keep,
}

impl MappingConfig {
    /// The plugin-api action.
    pub fn write_action(&self) -> his_plugin_api::Action {
        use his_plugin_api::{Action, IfMissing};
        match self.action {
            ActionConfig::Upsert => Action::UPSERT,
            ActionConfig::Insert => Action::INSERT,
            ActionConfig::Delete => Action::DELETE,
            ActionConfig::SoftDelete => Action::SOFT_DELETE,
            ActionConfig::Update => Action::update(match self.if_missing.unwrap_or(IfMissingConfig::Error) {
                IfMissingConfig::Error => IfMissing::Error,
                IfMissingConfig::Ignore => IfMissing::Ignore,
                IfMissingConfig::Insert => IfMissing::Insert,
            }),
        }
    }
}

impl MappingConfig {
    /// What identifies the HIS row, as `key` names it (event fields of
    /// `fields`, columns of `columns`): `key`, or else the first field of
    /// `fields` whose name ends in `_id` (none if no field does:
    /// validation refuses that).
    pub fn key_fields(&self) -> Vec<String> {
        self.key
            .clone()
            .unwrap_or_else(|| self.fields.keys().find(|f| f.ends_with("_id")).cloned().into_iter().collect())
    }
}

/// `mapping.<event_type>.columns.<column>`: an event field or dotted path
/// as a string, or a [`SourceSpec`].
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum SourceConfig {
    /// `"patient.id"`: the value at that path, as sent.
    Path(String),
    /// `{"from": …, "transforms": […]}` and the other forms.
    Spec(SourceSpec),
}

/// A column's source, and the transforms applied to its value in order.
/// Exactly one of `from`, `const`, `template` and `coalesce`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// An event field or dotted path: `status`, `patient.id`,
    /// `items[0].code`. `received_at` and `updated_at`, when the event
    /// lacks them, are the time the middleware received it.
    pub from: Option<String>,
    /// A fixed value: a string, number, boolean or null.
    #[serde(rename = "const", default, deserialize_with = "present")]
    pub constant: Option<serde_json::Value>,
    /// Text with `{path}` placeholders: `"{patient.last_name}, {patient.first_name}"`.
    /// A placeholder whose field is absent or null is empty; `{{` and
    /// `}}` are literal braces.
    pub template: Option<String>,
    /// Paths tried in order: the first present and not null is used.
    pub coalesce: Option<Vec<String>>,
    /// Applied in order to the value (not to an absent field).
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
}

/// Keeps `"const": null` apart from no `const` at all.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = SourceConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an event field such as \"patient.id\", or an object with from, const, template or coalesce",
                )
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<SourceConfig, E> {
                Ok(SourceConfig::Path(path.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SourceConfig, A::Error> {
                SourceSpec::deserialize(MapAccessDeserializer::new(map)).map(SourceConfig::Spec)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl SourceConfig {
    /// The object form (a path is `from` without transforms).
    pub fn spec(&self) -> SourceSpec {
        match self {
            SourceConfig::Path(path) => SourceSpec { from: Some(path.clone()), ..SourceSpec::default() },
            SourceConfig::Spec(spec) => spec.clone(),
        }
    }
}

/// One transform in `transforms`: `"trim"`, `"upper"`, `"lower"`, or an
/// object with exactly one of `map`, `lookup`, `truncate`, `parse` and
/// `datetime`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum TransformConfig {
    /// A transform without settings.
    Word(TransformWord),
    /// A transform with settings.
    Spec(Box<TransformSpec>),
}

/// The transforms written as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransformWord {
    /// Remove leading and trailing white space.
    Trim,
    /// Upper case.
    Upper,
    /// Lower case.
    Lower,
}

/// A transform with settings: exactly one of `map`, `lookup`, `truncate`,
/// `parse` and `datetime`; `default` and `on_miss` go with `map` and
/// `lookup`, `key_column` and `value_column` with `lookup`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Value → HIS value: `{"confirmed": "C", "cancelled": "X"}`. Values
    /// are matched as text (`1` matches `"1"`).
    pub map: Option<IndexMap<String, serde_json::Value>>,
    /// A CSV file (beside his-config.json, or an absolute path) with a
    /// header row: values of `key_column` → values of `value_column`.
    pub lookup: Option<String>,
    /// For `lookup`: the CSV column matched. Default: the first.
    pub key_column: Option<String>,
    /// For `lookup`: the CSV column written. Default: the second.
    pub value_column: Option<String>,
    /// For `map` and `lookup`: the value written for a value not found.
    #[serde(default, deserialize_with = "present")]
    pub default: Option<serde_json::Value>,
    /// For `map` and `lookup`: what a value not found does. Default:
    /// `default` when one is given, else `fail`.
    pub on_miss: Option<OnMiss>,
    /// Cut text to this many characters (counted at /metrics as
    /// `buktor_values_truncated_total`).
    pub truncate: Option<usize>,
    /// Read text as a number.
    pub parse: Option<ParseAs>,
    /// Read a date or time, and write it in a zone and form.
    pub datetime: Option<DateTimeConfig>,
    /// The CSV file's rows, read when the config is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub lookup_rows: Option<Arc<HashMap<String, String>>>,
}

impl<'de> Deserialize<'de> for TransformConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = TransformConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"trim\", \"upper\", \"lower\", or an object with map, lookup, truncate, parse or datetime",
                )
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<TransformConfig, E> {
                TransformWord::deserialize(de::value::StrDeserializer::new(word)).map(TransformConfig::Word)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TransformConfig, A::Error> {
                TransformSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(|spec| TransformConfig::Spec(Box::new(spec)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `on_miss`: what a value that `map` or `lookup` does not find does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMiss {
    /// The event fails, naming the value (and can be replayed once the
    /// map is fixed).
    Fail,
    /// `default` is written.
    Default,
    /// NULL is written.
    Null,
}

/// `parse`: the number a text holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParseAs {
    /// A whole number (`" 42 "`, `"-7"`), written as an integer.
    Integer,
    /// A decimal (`"12.50"`, or `"12,50"` with a decimal comma), written
    /// exactly, never through a float.
    Decimal,
}

/// `datetime`: reads a date or a time and writes it in a zone and form.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateTimeConfig {
    /// How the value is written, in chrono's strftime syntax
    /// (`"%d/%m/%Y %H:%M"`). Default: ISO 8601, a time with or without
    /// an offset (`2025-03-03T09:00:00Z`) or a date (`2025-03-03`).
    pub format: Option<String>,
    /// The IANA zone of a value without an offset (`"Europe/Madrid"`).
    /// Default: `"UTC"`.
    pub zone: Option<String>,
    /// What is written.
    pub to: DateTimeOutput,
    /// The zone the output is in (`"Europe/Madrid"`). Default: `zone`.
    pub to_zone: Option<String>,
    /// For `to: "text"`: the strftime format written.
    pub to_format: Option<String>,
}

/// `datetime.to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateTimeOutput {
    /// An instant, written by the plugin in the HIS's zone
    /// (`database.timezone`).
    Timestamp,
    /// The wall-clock time in `to_zone`, without a zone.
    LocalTimestamp,
    /// The calendar date in `to_zone`.
    Date,
    /// Text in `to_format`, in `to_zone`.
    Text,
}

/// Reads every `lookup` file of `mapping`, relative to `dir`, into its
/// transform. The error is (JSON path, message).
pub fn load_lookups(mapping: &mut IndexMap<String, EventConfig>, dir: &Path) -> Result<(), (String, String)> {
    for (event_type, event) in mapping.iter_mut() {
        let listed = event.listed;
        for (index, m) in event.targets.iter_mut().enumerate() {
            let target_at =
                if listed { format!("mapping.{event_type}[{index}]") } else { format!("mapping.{event_type}") };
            for (column, source) in m.columns.iter_mut() {
                let SourceConfig::Spec(spec) = source else { continue };
                for (n, transform) in spec.transforms.iter_mut().enumerate() {
                    let TransformConfig::Spec(t) = transform else { continue };
                    let Some(file) = &t.lookup else { continue };
                    let at = format!("{target_at}.columns.{column}.transforms[{n}].lookup");
                    let rows = read_lookup(&dir.join(file), t.key_column.as_deref(), t.value_column.as_deref())
                        .map_err(|message| (at, message))?;
                    t.lookup_rows = Some(Arc::new(rows));
                }
            }
        }
    }
    Ok(())
}

/// A lookup CSV file's `key_column` → `value_column`.
fn read_lookup(file: &Path, key: Option<&str>, value: Option<&str>) -> Result<HashMap<String, String>, String> {
    let shown = file.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| format!("cannot read the lookup file {shown}: {e}"))?;
    let headers = reader.headers().map_err(|e| format!("the lookup file {shown}: {e}"))?.clone();
    let column = |name: Option<&str>, default: usize, what: &str| match name {
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "the lookup file {shown} has no column {name:?} ({what}); its header is {:?}",
                headers.iter().collect::<Vec<_>>()
            )
        }),
        None if default < headers.len() => Ok(default),
        None => Err(format!("the lookup file {shown} needs at least two columns, with a header row")),
    };
    let (key, value) = (column(key, 0, "key_column")?, column(value, 1, "value_column")?);
    let mut rows = HashMap::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("the lookup file {shown}: {e}"))?;
        let (Some(k), Some(v)) = (record.get(key), record.get(value)) else {
            return Err(format!("the lookup file {shown}, line {}: too few columns", n + 2));
        };
        if rows.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the lookup file {shown}, line {}: the key {k:?} is listed twice", n + 2));
        }
    }
    Ok(rows)
}
