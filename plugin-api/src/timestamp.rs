//! The one timestamp format the host sends, and a parser for it.
//!
//! Every [`ValueKind::TIMESTAMP`](crate::ValueKind::TIMESTAMP) value is text
//! of the form `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`, with a real date
//! and time (the host checks). [`Timestamp::parse`] takes it apart without
//! any date library, so a plugin can build its driver's own date type.

/// A timestamp's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// The year, 0000–9999.
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–31, valid for the month.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
    /// The fraction of a second, in nanoseconds.
    pub nanosecond: u32,
    /// Seconds east of UTC (`Z` is 0), or `None` for a wall-clock time
    /// without an offset, which means the HIS's own time zone.
    pub offset_seconds: Option<i32>,
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]`; `None` for anything
    /// else, including impossible dates such as February 30.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            b.get(range)?.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let mut rest = &b[19..];
        let mut nanosecond = 0;
        if let [b'.', fraction @ ..] = rest {
            let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return None;
            }
            let value = fraction[..digits].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            nanosecond = value * 10u32.pow(9 - digits as u32);
            rest = &fraction[digits..];
        }
        let offset_seconds = match rest {
            [] => None,
            [b'Z'] => Some(0),
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let two = |a: u8, b: u8| {
                    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i32::from((a - b'0') * 10 + (b - b'0')))
                };
                let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
                if h > 23 || m > 59 {
                    return None;
                }
                Some((h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 })
            }
            _ => return None,
        };
        Some(Self { year: year as i32, month, day, hour, minute, second, nanosecond, offset_seconds })
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_allowed_form() {
        let t = Timestamp::parse("2025-03-03T09:00:00").unwrap();
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2025, 3, 3, 9, 0, 0));
        assert_eq!((t.nanosecond, t.offset_seconds), (0, None));
        assert_eq!(Timestamp::parse("2025-03-03T09:00:00Z").unwrap().offset_seconds, Some(0));
        assert_eq!(Timestamp::parse("2025-03-03T09:00:00.5").unwrap().nanosecond, 500_000_000);
        assert_eq!(Timestamp::parse("2025-03-03T09:00:00.123456789").unwrap().nanosecond, 123_456_789);
        assert_eq!(Timestamp::parse("2025-03-03T09:00:00+05:30").unwrap().offset_seconds, Some(19_800));
        assert_eq!(Timestamp::parse("2025-03-03T09:00:00-08:00").unwrap().offset_seconds, Some(-28_800));
        assert!(Timestamp::parse("2024-02-29T00:00:00").is_some(), "leap day");
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "2025-03-03",
            "2025-03-03 09:00:00",
            "2025-02-29T09:00:00",
            "2100-02-29T09:00:00",
            "2025-13-03T09:00:00",
            "2025-04-31T09:00:00",
            "2025-03-03T24:00:00",
            "2025-03-03T09:60:00",
            "2025-03-03T09:00:60",
            "2025-03-03T09:00:00.",
            "2025-03-03T09:00:00.1234567890",
            "2025-03-03T09:00:00+5:30",
            "2025-03-03T09:00:00+05:99",
            "2025-03-03T09:00:00 ",
            "2025-03-03t09:00:00",
            "2025-03-03T09:00",
            "+025-03-03T09:00:00",
            "２０２５-03-03T09:00:00",
        ] {
            assert_eq!(Timestamp::parse(text), None, "{text}");
        }
    }
}
