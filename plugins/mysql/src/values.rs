//! How each [`Value`] is bound to a MySQL parameter.

use chrono::{NaiveDate, NaiveDateTime};
use his_plugin_api::{ErrorKind, PluginError, Timestamp, Value, ValueRef};

use crate::settings::Zone;

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
}

/// The bind for `value`. Timestamps with an offset (`Z`, `+05:30`) are
/// converted to the HIS's time zone; those without one are taken as HIS
/// wall-clock time.
pub fn bind(value: &Value, zone: Zone) -> Result<Bind<'_>, PluginError> {
    Ok(match value.get() {
        ValueRef::Null => Bind::Null,
        ValueRef::Bool(b) => Bind::Bool(b),
        ValueRef::Int(i) => Bind::Int(i),
        ValueRef::Float(f) => Bind::Float(f),
        ValueRef::Decimal(s) | ValueRef::Text(s) => Bind::Text(s),
        ValueRef::Timestamp(s) => {
            Bind::DateTime(wall_clock(s, zone).ok_or_else(|| {
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

fn wall_clock(text: &str, zone: Zone) -> Option<NaiveDateTime> {
    let t = Timestamp::parse(text)?;
    let naive =
        NaiveDate::from_ymd_opt(t.year, t.month, t.day)?.and_hms_nano_opt(t.hour, t.minute, t.second, t.nanosecond)?;
    let Some(offset) = t.offset_seconds else { return Some(naive) };
    let instant = naive.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset)))?.and_utc();
    Some(match zone {
        Zone::Fixed(offset) => instant.with_timezone(&offset).naive_local(),
        Zone::Named(tz) => instant.with_timezone(&tz).naive_local(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: &str, text: &str) -> String {
        match bind(&Value::timestamp(text), zone.parse().unwrap()).unwrap() {
            Bind::DateTime(dt) => dt.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_land_in_the_his_time_zone() {
        assert_eq!(at("UTC", "2025-03-03T09:00:00"), "2025-03-03 09:00:00");
        assert_eq!(at("+05:30", "2025-03-03T09:00:00"), "2025-03-03 09:00:00", "no offset: HIS wall-clock");
        assert_eq!(at("UTC", "2025-03-03T09:00:00+02:00"), "2025-03-03 07:00:00");
        assert_eq!(at("+05:30", "2025-03-03T09:00:00Z"), "2025-03-03 14:30:00");
        assert_eq!(at("Europe/Berlin", "2025-07-01T12:00:00Z"), "2025-07-01 14:00:00", "summer time");
        assert_eq!(at("Europe/Berlin", "2025-01-01T12:00:00Z"), "2025-01-01 13:00:00");
        assert_eq!(at("UTC", "2025-03-03T09:00:00.123Z"), "2025-03-03 09:00:00.123");
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
