//! How each [`Value`] is bound to a MySQL parameter.

use chrono::NaiveDateTime;
use his_plugin_api::{ErrorKind, HisZone, PluginError, Timestamp, Value, ValueRef};

/// A value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind<'a> {
    /// NULL.
    Null,
    /// TINYINT(1)/BOOLEAN take 0 and 1.
    Bool(bool),
    /// Integers.
    Int(i64),
    /// Floats.
    Float(f64),
    /// Text, and exact decimal text: MySQL converts a string to DECIMAL
    /// exactly, so `"1500.75"` never passes through a float.
    Text(&'a str),
    /// A wall-clock date and time in the HIS's time zone.
    DateTime(NaiveDateTime),
    /// Raw bytes, for a BLOB or VARBINARY column.
    Bytes(&'a [u8]),
}

/// The bind for `value`. Timestamps with an offset (`Z`, `+05:30`) are
/// converted to the HIS's time zone; those without one are taken as HIS
/// wall-clock time.
pub fn bind(value: &Value, zone: HisZone) -> Result<Bind<'_>, PluginError> {
    Ok(match value.get() {
        ValueRef::Null => Bind::Null,
        ValueRef::Bool(b) => Bind::Bool(b),
        ValueRef::Int(i) => Bind::Int(i),
        ValueRef::Float(f) => Bind::Float(f),
        // A date as text: MySQL reads `YYYY-MM-DD` into a DATE exactly, and
        // a calendar date has no zone to convert.
        ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Date(s) => Bind::Text(s),
        ValueRef::Bytes(b) => Bind::Bytes(b),
        ValueRef::Timestamp(s) => {
            Bind::DateTime(Timestamp::parse(s).and_then(|t| zone.wall_clock(&t)).ok_or_else(|| {
                PluginError::permanent(ErrorKind::DATA, format!("{s:?} is not an ISO 8601 timestamp"))
            })?)
        }
        other => {
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!("the mysql plugin cannot write a {:?} value", other),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_bound_as_his_wall_clock() {
        let zone: HisZone = "+05:30".parse().unwrap();
        let value = Value::timestamp("2025-03-03T09:00:00Z");
        assert_eq!(bind(&value, zone).unwrap(), Bind::DateTime("2025-03-03T14:30:00".parse().unwrap()));
    }

    #[test]
    fn decimals_are_bound_as_exact_text() {
        let zone = "UTC".parse().unwrap();
        assert_eq!(bind(&Value::decimal("1500.75"), zone).unwrap(), Bind::Text("1500.75"));
        assert_eq!(bind(&Value::text("1500"), zone).unwrap(), Bind::Text("1500"));
        assert_eq!(bind(&Value::bool(true), zone).unwrap(), Bind::Bool(true));
        assert_eq!(bind(&Value::null(), zone).unwrap(), Bind::Null);
    }
}
