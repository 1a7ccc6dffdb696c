//! How each [`Value`] is bound to a PostgreSQL parameter, and the SQL
//! expression that takes it.
//!
//! PostgreSQL types every parameter, and converts between types only where
//! a cast allows it. So each parameter is written with an explicit cast
//! that says how it is bound (`$1::int8`, `$2::timestamptz`), and text is
//! cast to its column's type, read from the catalog, as PostgreSQL would
//! read a quoted literal (`CAST($3::text AS numeric(12,2))`). The SQL text
//! thus determines every parameter's type, which keeps sqlx's cache of
//! prepared statements (keyed by the text) right. NULL is the literal
//! `NULL`, which takes the column's type; it is no value of the event.
//!
//! | value | bound as | SQL |
//! |---|---|---|
//! | NULL | nothing | `NULL` |
//! | bool | `bool` | `$n::bool` (`$n::bool::int4` into a number column) |
//! | int | `int8` | `$n::int8` |
//! | float | `float8` | `$n::float8` |
//! | decimal, text | `text`, exact | `$n::text` into a text column; `CAST($n::text AS <column type>)` into any other; unknown column: decimal `$n::numeric`, text `$n::text` |
//! | timestamp with `Z`/offset | `timestamptz` (the instant) | `$n::timestamptz` |
//! | timestamp without | `timestamp` (HIS wall clock) | `$n::timestamp` |
//! | date | `date` | `$n::date` |
//! | bytes | `bytea` | `$n::bytea` |
//!
//! A timestamp or date into a text column is bound as the text sent.
//! Every session's `TimeZone` is the HIS's (`database.timezone`), so that
//! PostgreSQL's own conversions do the rest: an instant into a `timestamp
//! without time zone` column is stored as the HIS's wall-clock time, a
//! wall-clock time into a `timestamptz` column as that time in the HIS's
//! zone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use his_plugin_api::{ErrorKind, PluginError, Timestamp, Value, ValueRef};

/// A value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind<'a> {
    /// `bool`.
    Bool(bool),
    /// `int8`.
    Int(i64),
    /// `float8`.
    Float(f64),
    /// `text`: text, and decimals and dates kept exactly as sent.
    Text(&'a str),
    /// `timestamptz`: an instant.
    Instant(DateTime<Utc>),
    /// `timestamp`: a wall-clock time in the HIS's zone.
    WallClock(NaiveDateTime),
    /// `date`.
    Date(NaiveDate),
    /// `bytea`.
    Bytes(&'a [u8]),
}

impl Bind<'_> {
    /// The type the parameter is bound as, as SQL spells it.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Bind::Bool(_) => "bool",
            Bind::Int(_) => "int8",
            Bind::Float(_) => "float8",
            Bind::Text(_) => "text",
            Bind::Instant(_) => "timestamptz",
            Bind::WallClock(_) => "timestamp",
            Bind::Date(_) => "date",
            Bind::Bytes(_) => "bytea",
        }
    }

    /// The value as `map --sql` shows it.
    pub fn shown(&self) -> String {
        let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
        match self {
            Bind::Bool(b) => b.to_string(),
            Bind::Int(i) => i.to_string(),
            Bind::Float(f) => format!("{f:?}"),
            Bind::Text(s) => quoted(s),
            Bind::Instant(t) => quoted(&t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string()),
            Bind::WallClock(t) => quoted(&t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
            Bind::Date(d) => quoted(&d.format("%Y-%m-%d").to_string()),
            Bind::Bytes(b) => format!("'\\x{}'", b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
        }
    }
}

/// A column's type, from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// `format_type()`: `numeric(12,2)`, `timestamp without time zone`.
    pub sql: String,
    /// `pg_type.typcategory`: `S` string, `N` numeric, `D` date/time, …
    pub category: char,
}

impl ColumnType {
    /// A column that holds text (`text`, `varchar(n)`, `char(n)`, `name`, citext).
    pub fn is_text(&self) -> bool {
        self.category == 'S'
    }
}

/// The expression that takes `value` at parameter `$n`, into a column of
/// type `column` (`None`: not known), and the bind; `None` for NULL, which
/// is the literal `NULL` and takes no parameter.
pub fn expression<'a>(
    value: &'a Value,
    column: Option<&ColumnType>,
    n: usize,
) -> Result<(String, Option<Bind<'a>>), PluginError> {
    let into_text = column.is_some_and(ColumnType::is_text);
    let bind = match value.get() {
        ValueRef::Null => return Ok(("NULL".into(), None)),
        ValueRef::Bool(b) => Bind::Bool(b),
        ValueRef::Int(i) => Bind::Int(i),
        ValueRef::Float(f) => Bind::Float(f),
        ValueRef::Text(s) | ValueRef::Decimal(s) => Bind::Text(s),
        ValueRef::Timestamp(s) | ValueRef::Date(s) if into_text => Bind::Text(s),
        ValueRef::Timestamp(s) => timestamp(s)?,
        ValueRef::Date(s) => Bind::Date(
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| PluginError::permanent(ErrorKind::DATA, format!("{s:?} is not a date (YYYY-MM-DD)")))?,
        ),
        ValueRef::Bytes(b) => Bind::Bytes(b),
        other => {
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!("the postgres plugin cannot write a {other:?} value"),
            ));
        }
    };
    let expression = match (&bind, column) {
        // Text as PostgreSQL reads a literal: by the column's input function.
        (Bind::Text(_), Some(column)) if !column.is_text() => format!("CAST(${n}::text AS {})", column.sql),
        (Bind::Text(_), None) if value.kind() == his_plugin_api::ValueKind::DECIMAL => format!("${n}::numeric"),
        // PostgreSQL has no assignment cast from bool to a number.
        (Bind::Bool(_), Some(column)) if column.category == 'N' => format!("${n}::bool::int4"),
        (bind, _) => format!("${n}::{}", bind.sql_type()),
    };
    Ok((expression, Some(bind)))
}

/// A timestamp in the SDK's format: with `Z` or an offset, the instant;
/// without, the HIS's wall-clock time. Years 1 to 9999.
fn timestamp(text: &str) -> Result<Bind<'static>, PluginError> {
    let invalid = || PluginError::permanent(ErrorKind::DATA, format!("{text:?} is not an ISO 8601 timestamp"));
    let t = Timestamp::parse(text).filter(|t| (1..=9999).contains(&t.year)).ok_or_else(invalid)?;
    let naive = NaiveDate::from_ymd_opt(t.year, t.month, t.day)
        .and_then(|d| d.and_hms_nano_opt(t.hour, t.minute, t.second, t.nanosecond))
        .ok_or_else(invalid)?;
    Ok(match t.offset_seconds {
        None => Bind::WallClock(naive),
        Some(offset) => Bind::Instant(
            naive.checked_sub_signed(TimeDelta::seconds(i64::from(offset))).ok_or_else(invalid)?.and_utc(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(sql: &str, category: char) -> ColumnType {
        ColumnType { sql: sql.into(), category }
    }

    fn at(value: &Value, column: Option<&ColumnType>) -> (String, Option<String>) {
        let (sql, bind) = expression(value, column, 3).unwrap();
        (sql, bind.map(|b| b.shown()))
    }

    #[test]
    fn every_kind_is_bound_with_its_type() {
        let cases = [
            (Value::null(), "NULL", None),
            (Value::bool(true), "$3::bool", Some("true")),
            (Value::int(-7), "$3::int8", Some("-7")),
            (Value::float(1.5), "$3::float8", Some("1.5")),
            (Value::text("it's"), "$3::text", Some("'it''s'")),
            (Value::decimal("123456789012345678901234567890123456.78"), "$3::numeric", None),
            (Value::timestamp("2025-03-03T09:00:00+02:00"), "$3::timestamptz", Some("'2025-03-03 07:00:00+00'")),
            (Value::timestamp("2025-03-03T09:00:00.5"), "$3::timestamp", Some("'2025-03-03 09:00:00.500'")),
            (Value::date("1990-05-17"), "$3::date", Some("'1990-05-17'")),
            (Value::bytes(vec![0, 255]), "$3::bytea", Some("'\\x00ff'")),
        ];
        for (value, sql, shown) in cases {
            let (s, b) = at(&value, None);
            assert_eq!(s, sql, "{value:?}");
            if let Some(shown) = shown {
                assert_eq!(b.as_deref(), Some(shown), "{value:?}");
            }
        }
        // The decimal is bound as its exact text, never through a float.
        let x = Value::decimal("123456789012345678901234567890123456.78");
        assert_eq!(expression(&x, None, 1).unwrap().1, Some(Bind::Text("123456789012345678901234567890123456.78")));
    }

    #[test]
    fn text_is_read_by_its_column_type() {
        let numeric = typed("numeric(12,2)", 'N');
        let date = typed("date", 'D');
        let varchar = typed("character varying(20)", 'S');
        assert_eq!(at(&Value::text("1500"), Some(&numeric)).0, "CAST($3::text AS numeric(12,2))");
        assert_eq!(at(&Value::decimal("1500.75"), Some(&numeric)).0, "CAST($3::text AS numeric(12,2))");
        assert_eq!(at(&Value::text("1990-05-17"), Some(&date)).0, "CAST($3::text AS date)");
        assert_eq!(at(&Value::text("x"), Some(&varchar)).0, "$3::text");
        // Into a text column, a timestamp or date is the text sent.
        let (sql, shown) = at(&Value::timestamp("2025-03-03T09:00:00+02:00"), Some(&varchar));
        assert_eq!((sql.as_str(), shown.as_deref()), ("$3::text", Some("'2025-03-03T09:00:00+02:00'")));
        assert_eq!(at(&Value::bool(true), Some(&typed("smallint", 'N'))).0, "$3::bool::int4");
        assert_eq!(at(&Value::bool(true), Some(&typed("boolean", 'B'))).0, "$3::bool");
        assert_eq!(at(&Value::null(), Some(&numeric)), ("NULL".to_string(), None));
    }

    #[test]
    fn impossible_timestamps_fail_as_data() {
        for text in ["not a time", "0000-01-01T00:00:00", "2025-02-30T00:00:00"] {
            let e = expression(&Value::timestamp(text), None, 1).unwrap_err();
            assert_eq!(e.kind, ErrorKind::DATA, "{text}");
        }
    }
}
