//! The HIS's time zone, and timestamps turned into its wall-clock time
//! (feature `chrono`).
//!
//! Every writer faces the same question: a timestamp arrives with an offset
//! (`2025-03-03T09:00:00Z`), the HIS column holds local wall-clock time.
//! [`HisZone`] answers it once for all plugins: parse the operator's
//! `database.timezone` setting, then [`HisZone::wall_clock`] each value.

use std::{fmt, str::FromStr};

use chrono::{FixedOffset, NaiveDate, NaiveDateTime};

use crate::Timestamp;

/// The time zone an HIS keeps its date-time columns in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HisZone {
    /// A fixed offset from UTC (UTC itself is +00:00).
    Fixed(FixedOffset),
    /// A named zone with daylight-saving rules, such as Europe/Berlin.
    Named(chrono_tz::Tz),
}

impl HisZone {
    /// UTC.
    pub fn utc() -> Self {
        HisZone::Fixed(FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// A DATE value (`YYYY-MM-DD`) at midnight, for drivers whose date
    /// columns take a date and time. A calendar date has no zone: it is
    /// never converted.
    pub fn date_at_midnight(date: &str) -> Option<NaiveDateTime> {
        NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)
    }

    /// The wall-clock time of `timestamp` in this zone. A timestamp with an
    /// offset (`Z`, `+05:30`) is converted; one without is already HIS
    /// wall-clock time and is taken as it is.
    pub fn wall_clock(&self, timestamp: &Timestamp) -> Option<NaiveDateTime> {
        let t = timestamp;
        let naive = NaiveDate::from_ymd_opt(t.year, t.month, t.day)?.and_hms_nano_opt(
            t.hour,
            t.minute,
            t.second,
            t.nanosecond,
        )?;
        let wall_clock = match t.offset_seconds {
            None => naive,
            Some(offset) => {
                let instant = naive.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset)))?.and_utc();
                match self {
                    HisZone::Fixed(zone) => instant.with_timezone(zone).naive_local(),
                    HisZone::Named(zone) => instant.with_timezone(zone).naive_local(),
                }
            }
        };
        // Years 1 to 9999 only: drivers cannot encode others (and no HIS
        // needs them); a conversion may push year 1 or 9999 over the edge.
        (1..=9999).contains(&chrono::Datelike::year(&wall_clock)).then_some(wall_clock)
    }
}

impl fmt::Display for HisZone {
    /// `+05:30` for a fixed offset, the name for a named zone: the form
    /// MySQL's `time_zone` and most databases accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HisZone::Fixed(offset) => write!(f, "{offset}"),
            HisZone::Named(zone) => f.write_str(zone.name()),
        }
    }
}

impl FromStr for HisZone {
    type Err = String;

    /// `UTC`, an offset such as `+05:30`, or an IANA name such as
    /// `Asia/Kolkata`. The error says what is accepted.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("UTC") || text == "Z" {
            return Ok(Self::utc());
        }
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-')
            && let Some((h, m)) = text[1..].split_once(':')
            && let (Ok(h), Ok(m)) = (h.parse::<i32>(), m.parse::<i32>())
            && h < 24
            && m < 60
        {
            let seconds = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
            return Ok(HisZone::Fixed(FixedOffset::east_opt(seconds).expect("offset within a day")));
        }
        text.parse::<chrono_tz::Tz>().map(HisZone::Named).map_err(|_| {
            format!("{text:?} is not a time zone: use UTC, an offset such as +05:30, or a name such as Asia/Kolkata")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: &str, text: &str) -> String {
        let zone: HisZone = zone.parse().unwrap();
        zone.wall_clock(&Timestamp::parse(text).unwrap()).unwrap().format("%Y-%m-%d %H:%M:%S%.f").to_string()
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
    fn years_outside_1_to_9999_are_refused() {
        let utc = HisZone::utc();
        assert_eq!(utc.wall_clock(&Timestamp::parse("0000-01-01T00:00:00").unwrap()), None);
        assert_eq!(utc.wall_clock(&Timestamp::parse("0001-01-01T00:00:00+01:00").unwrap()), None);
        assert_eq!(utc.wall_clock(&Timestamp::parse("9999-12-31T23:00:00-02:00").unwrap()), None);
        assert!(utc.wall_clock(&Timestamp::parse("0001-01-01T00:00:00").unwrap()).is_some());
    }

    #[test]
    fn zones_parse_and_print() {
        assert_eq!("+05:30".parse::<HisZone>().unwrap().to_string(), "+05:30");
        assert_eq!("-08:00".parse::<HisZone>().unwrap().to_string(), "-08:00");
        assert_eq!("utc".parse::<HisZone>().unwrap().to_string(), "+00:00");
        assert_eq!("Asia/Kolkata".parse::<HisZone>().unwrap().to_string(), "Asia/Kolkata");
        assert!("Mars/Olympus".parse::<HisZone>().unwrap_err().contains("is not a time zone"));
        assert!("+25:00".parse::<HisZone>().is_err());
    }
}
