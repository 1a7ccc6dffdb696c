//! One JSON value as a typed [`Value`], read from its raw text so that a
//! number is never rounded through a float.

use his_plugin_api::{Timestamp, Value};
use serde_json::value::RawValue;

/// The most digits a number in exponent form may have once written out
/// (`1e-7` is `0.0000001`, 8 digits). More than any HIS column holds
/// (DECIMAL tops out at 65 digits in MySQL, 38 in SQL Server and Oracle);
/// beyond it the event is refused rather than rounded.
pub const MAX_PLAIN_DIGITS: usize = 100;

/// Why a number cannot be written exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the number {shown} has no exact decimal form of at most {MAX_PLAIN_DIGITS} digits; send it as a decimal (such as 0.0000001) or as a string"
)]
pub struct InexactNumber {
    /// The number as sent, cut to 40 characters.
    pub shown: String,
}

/// The typed value of one JSON value:
/// - integers that fit 64 bits are integers; other numbers are exact
///   decimal text, exponent forms written out (`1.5e3` is `1500`,
///   `1e-7` is `0.0000001`), or [`InexactNumber`] when that takes more
///   than [`MAX_PLAIN_DIGITS`] digits;
/// - strings in ISO 8601 date-time form (`2025-03-03T09:00:00`, optionally
///   with a fraction and `Z` or `±HH:MM`) are timestamps; real calendar
///   dates (`1990-05-17`) are dates; other strings are text, exactly as
///   sent;
/// - objects and arrays are stored as their JSON text.
pub fn value_of(raw: &RawValue) -> Result<Value, InexactNumber> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'n') => Value::null(),
        Some(b't') => Value::bool(true),
        Some(b'f') => Value::bool(false),
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) if is_timestamp(&s) => Value::timestamp(s),
            Ok(s) if his_plugin_api::is_date(&s) => Value::date(s),
            Ok(s) => Value::text(s),
            Err(_) => Value::text(text),
        },
        Some(b'-' | b'0'..=b'9') => number_value(text)?,
        _ => Value::text(text),
    })
}

fn number_value(text: &str) -> Result<Value, InexactNumber> {
    if text.contains(['e', 'E']) {
        return plain_decimal(text)
            .map(Value::decimal)
            .ok_or_else(|| InexactNumber { shown: text.chars().take(40).collect() });
    }
    if !text.contains('.')
        && let Ok(i) = text.parse::<i64>()
    {
        return Ok(Value::int(i));
    }
    Ok(Value::decimal(text))
}

/// A JSON number in exponent form written out exactly, without the
/// exponent: `-1.25E+2` is `-125`, `1e-7` is `0.0000001`. `None` when the
/// result would have more than [`MAX_PLAIN_DIGITS`] digits.
fn plain_decimal(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = unsigned.split_once(['e', 'E'])?;
    let exponent: i64 = exponent.strip_prefix('+').unwrap_or(exponent).parse().ok()?;
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The digits, and where the decimal point goes among them.
    let digits = format!("{integer}{fraction}");
    let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
    let digits = digits.trim_matches('0');
    if digits.is_empty() {
        return Some("0".to_string());
    }
    let point = i64::try_from(integer.len()).ok()? - i64::try_from(leading_zeros).ok()? + exponent;
    let length = i64::try_from(digits.len()).ok()?;
    let integer_digits = point.max(1);
    let fraction_digits = (length - point).max(0);
    if integer_digits + fraction_digits > MAX_PLAIN_DIGITS as i64 {
        return None;
    }
    let mut plain = String::from(if negative { "-" } else { "" });
    if point <= 0 {
        plain.push_str("0.");
        plain.extend(std::iter::repeat_n('0', usize::try_from(-point).ok()?));
        plain.push_str(digits);
    } else if point >= length {
        plain.push_str(digits);
        plain.extend(std::iter::repeat_n('0', usize::try_from(point - length).ok()?));
    } else {
        let (whole, part) = digits.split_at(usize::try_from(point).ok()?);
        plain.push_str(whole);
        plain.push('.');
        plain.push_str(part);
    }
    Some(plain)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]`, with a real date and time:
/// the form plugin-api promises plugins (see [`Timestamp`]).
pub fn is_timestamp(s: &str) -> bool {
    Timestamp::parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use his_plugin_api::ValueRef;

    use super::*;

    fn value(json: &str) -> Value {
        value_of(&serde_json::from_str::<Box<RawValue>>(json).unwrap()).unwrap()
    }

    #[test]
    fn json_values_become_typed_values() {
        assert_eq!(value("null").get(), ValueRef::Null);
        assert_eq!(value("true").get(), ValueRef::Bool(true));
        assert_eq!(value("123").get(), ValueRef::Int(123));
        assert_eq!(value("-9223372036854775808").get(), ValueRef::Int(i64::MIN));
        assert_eq!(value("9223372036854775808").get(), ValueRef::Decimal("9223372036854775808"));
        assert_eq!(value("1500.75").get(), ValueRef::Decimal("1500.75"));
        assert_eq!(value("12345678901234567890.123456789").get(), ValueRef::Decimal("12345678901234567890.123456789"));
        assert_eq!(value(r#""1500""#).get(), ValueRef::Text("1500"));
        assert_eq!(value(r#""confirmed""#).get(), ValueRef::Text("confirmed"));
        assert_eq!(value(r#""a\"b""#).get(), ValueRef::Text("a\"b"));
        assert_eq!(value(r#"{"a": [1]}"#).get(), ValueRef::Text(r#"{"a": [1]}"#));
    }

    #[test]
    fn numbers_in_exponent_form_are_written_out_exactly_never_through_a_float() {
        for (sent, exact) in [
            ("1.5e3", "1500"),
            ("1e-7", "0.0000001"),
            ("-1.25E+2", "-125"),
            ("12.5e-1", "1.25"),
            ("0.00012e3", "0.12"),
            ("1500e-2", "15"),
            ("0e10", "0"),
            ("-0.0e-5", "0"),
            ("123456789012345678901234567890e-10", "12345678901234567890.123456789"),
            ("1e99", &format!("1{}", "0".repeat(99))),
            ("1e-99", &format!("0.{}1", "0".repeat(98))),
        ] {
            assert_eq!(value(sent).get(), ValueRef::Decimal(exact), "{sent}");
        }
        for inexact in
            ["1e-400", "1.7976931348623157e308", "1e100", "1e-100", "1e400000000000", "1e99999999999999999999"]
        {
            let error = value_of(&serde_json::from_str::<Box<RawValue>>(inexact).unwrap()).unwrap_err();
            assert!(error.to_string().contains(inexact) || inexact.len() > 40, "{error}");
        }
    }

    #[test]
    fn only_well_formed_iso_8601_strings_are_timestamps() {
        for ok in [
            "2025-03-03T09:00:00",
            "2025-03-03T09:00:00Z",
            "2025-03-03T09:00:00.123",
            "2025-03-03T09:00:00.123456789+05:30",
            "2025-03-03T09:00:00-08:00",
        ] {
            assert_eq!(value(&format!("{ok:?}")).get(), ValueRef::Timestamp(ok), "{ok}");
        }
        // A date alone is a date (since plugin-api 1.1), if it is a real one.
        assert_eq!(value("\"2025-03-03\"").get(), ValueRef::Date("2025-03-03"));
        for text in [
            "2025-02-30",
            "2025-3-03",
            "2025-03-03 09:00:00",
            "2025-13-03T09:00:00",
            "2025-03-03T25:00:00",
            "2025-03-03T09:00:00+5:30",
            "2025-03-03T09:00:00+05:99",
            "2025-03-03T09:00:00 ",
            "2025-03-03T09:00:00.",
            "2025-03-03t09:00:00",
            "2025-03-03T09:00",
        ] {
            assert_eq!(value(&format!("{text:?}")).get(), ValueRef::Text(text), "{text}");
        }
    }
}
