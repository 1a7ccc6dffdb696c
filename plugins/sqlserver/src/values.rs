//! How each [`Value`] is bound: always with an explicit SQL Server type.

use chrono::NaiveDateTime;
use his_plugin_api::{ErrorKind, HisZone, PluginError, Timestamp, Value, ValueRef};
use tiberius::{Query, numeric::Numeric};

/// A value ready to bind, and the type it is sent as.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind<'a> {
    /// NULL, sent as a NULL nvarchar (SQL Server converts it to any type).
    Null,
    /// bit.
    Bool(bool),
    /// bigint.
    Int(i64),
    /// float.
    Float(f64),
    /// nvarchar.
    Text(&'a str),
    /// decimal(p, s), exact: `"1500.75"` is 150075 with scale 2.
    Decimal(Numeric),
    /// datetime2, wall-clock time in the HIS's zone.
    DateTime(NaiveDateTime),
    /// varbinary, exactly the bytes.
    Bytes(&'a [u8]),
    /// NULL sent as varbinary, in a column that otherwise holds bytes: see
    /// [`uniform`].
    NullBytes,
    /// nvarchar holding another kind's text: see [`uniform`].
    Converted(String),
}

/// Gives one column of one statement one parameter type.
///
/// In `VALUES (…), (…)` SQL Server types each column by the highest
/// precedence among its rows: a bigint in one row would turn `"007"` in
/// another into 7. So when a column's values are of different kinds, all of
/// them go as nvarchar text (ISO 8601 for timestamps, `1`/`0` for bits),
/// which SQL Server converts to the column's own type exactly.
///
/// Bytes have no such text: varbinary has the lowest precedence of all, and
/// nvarchar does not convert implicitly to varbinary. So a column of bytes
/// sends its NULLs as varbinary too, and one that mixes bytes with another
/// kind is a DATA error naming no row: the host then writes each row alone,
/// where nothing is mixed.
pub fn uniform(column: &mut [&mut Bind<'_>]) -> Result<(), PluginError> {
    let kinds: std::collections::HashSet<std::mem::Discriminant<Bind<'_>>> = column
        .iter()
        .filter(|b| !matches!(b, Bind::Null | Bind::NullBytes))
        .map(|b| std::mem::discriminant(&**b))
        .collect();
    let bytes = column.iter().any(|b| matches!(b, Bind::Bytes(_)));
    match (kinds.len(), bytes) {
        (0, _) => Ok(()),
        (1, true) => {
            column.iter_mut().filter(|b| matches!(b, Bind::Null)).for_each(|b| **b = Bind::NullBytes);
            Ok(())
        }
        (1, false) => Ok(()),
        (_, true) => Err(PluginError::permanent(
            ErrorKind::DATA,
            "a column holds bytes in some rows and other kinds of values in others; \
             SQL Server cannot take both in one statement",
        )),
        (_, false) => {
            for bind in column.iter_mut() {
                if let Some(text) = as_text(bind) {
                    **bind = Bind::Converted(text);
                }
            }
            Ok(())
        }
    }
}

/// A value's text, for a column that goes as nvarchar; `None` for NULL
/// (and for bytes, which [`uniform`] never converts).
fn as_text(bind: &Bind<'_>) -> Option<String> {
    Some(match bind {
        Bind::Null | Bind::NullBytes | Bind::Bytes(_) => return None,
        Bind::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Bind::Int(i) => i.to_string(),
        Bind::Float(f) => f.to_string(),
        Bind::Text(s) => s.to_string(),
        Bind::Decimal(n) => n.to_string(),
        Bind::DateTime(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        Bind::Converted(s) => s.clone(),
    })
}

/// The bind for `value`.
pub fn bind(value: &Value, zone: HisZone) -> Result<Bind<'_>, PluginError> {
    Ok(match value.get() {
        ValueRef::Null => Bind::Null,
        ValueRef::Bool(b) => Bind::Bool(b),
        ValueRef::Int(i) => Bind::Int(i),
        ValueRef::Float(f) => Bind::Float(f),
        ValueRef::Text(s) => Bind::Text(s),
        ValueRef::Decimal(s) => Bind::Decimal(decimal(s).ok_or_else(|| {
            PluginError::permanent(ErrorKind::DATA, format!("{s:?} does not fit SQL Server's decimal (38 digits)"))
        })?),
        ValueRef::Timestamp(s) => {
            Bind::DateTime(Timestamp::parse(s).and_then(|t| zone.wall_clock(&t)).ok_or_else(|| {
                PluginError::permanent(ErrorKind::DATA, format!("{s:?} is not an ISO 8601 timestamp"))
            })?)
        }
        ValueRef::Date(s) => Bind::DateTime(HisZone::date_at_midnight(s).ok_or_else(|| {
            PluginError::permanent(ErrorKind::DATA, format!("{s:?} is not a calendar date (YYYY-MM-DD)"))
        })?),
        ValueRef::Bytes(b) => Bind::Bytes(b),
        other => {
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!("the sqlserver plugin cannot write a {other:?} value"),
            ));
        }
    })
}

/// Binds one value with its explicit type. Text and bytes are borrowed from
/// the batch, not copied.
pub fn push<'a>(query: &mut Query<'a>, value: &Bind<'a>) {
    match value {
        Bind::Null => query.bind(Option::<&str>::None),
        Bind::Bool(b) => query.bind(*b),
        Bind::Int(i) => query.bind(*i),
        Bind::Float(f) => query.bind(*f),
        Bind::Text(s) => query.bind(*s),
        Bind::Decimal(n) => query.bind(*n),
        Bind::DateTime(dt) => query.bind(*dt),
        Bind::Bytes(b) => query.bind(*b),
        Bind::NullBytes => query.bind(Option::<&[u8]>::None),
        Bind::Converted(s) => query.bind(s.clone()),
    }
}

/// Exact decimal text (`-12.50`, `1500`) as a Numeric, if it has at most 38
/// significant digits.
pub fn decimal(text: &str) -> Option<Numeric> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all: String = whole.trim_start_matches('0').chars().chain(fraction.chars()).collect();
    // The precision sent is at least one integer digit plus the scale.
    let integer_digits = whole.trim_start_matches('0').len().max(1);
    if integer_digits + fraction.len() > 38 {
        return None;
    }
    let magnitude: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    Some(Numeric::new_with_scale(if negative { -magnitude } else { magnitude }, fraction.len() as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_becomes_an_exact_numeric() {
        let n = decimal("1500.75").unwrap();
        assert_eq!((n.value(), n.scale()), (150_075, 2));
        let n = decimal("-0.50").unwrap();
        assert_eq!((n.value(), n.scale()), (-50, 2));
        assert_eq!(decimal("1500").unwrap().value(), 1500);
        assert_eq!(decimal("99999999999999999999999999999999999999").unwrap().scale(), 0, "38 digits fit");
        assert!(decimal("999999999999999999999999999999999999999").is_none(), "39 digits do not");
        assert!(decimal("0.12345678901234567890123456789012345678").is_none(), "precision 39 with the 0");
        assert!(decimal("0.1234567890123456789012345678901234567").is_some());
        assert!(decimal("1e5").is_none());
        assert!(decimal(".5").is_none());
    }

    #[test]
    fn a_column_of_mixed_kinds_goes_as_text() {
        let (mut a, mut b, mut c) = (Bind::Int(7), Bind::Text("007"), Bind::Null);
        uniform(&mut [&mut a, &mut b, &mut c]).unwrap();
        assert_eq!((a, b, c), (Bind::Converted("7".into()), Bind::Converted("007".into()), Bind::Null));
        let (mut x, mut y) = (Bind::Int(1), Bind::Int(2));
        uniform(&mut [&mut x, &mut y]).unwrap();
        assert_eq!((x, y), (Bind::Int(1), Bind::Int(2)), "one kind keeps its type");
        let (mut t, mut u) = (Bind::DateTime("2025-03-03T09:00:00".parse().unwrap()), Bind::Text("soon"));
        uniform(&mut [&mut t, &mut u]).unwrap();
        assert_eq!(t, Bind::Converted("2025-03-03T09:00:00".into()));
    }

    #[test]
    fn a_column_of_bytes_sends_its_nulls_as_varbinary_and_never_mixes() {
        let (mut a, mut b) = (Bind::Bytes(&[1, 2]), Bind::Null);
        uniform(&mut [&mut a, &mut b]).unwrap();
        assert_eq!((a, b), (Bind::Bytes(&[1, 2]), Bind::NullBytes));
        let (mut c, mut d) = (Bind::Bytes(&[1]), Bind::Text("x"));
        let error = uniform(&mut [&mut c, &mut d]).unwrap_err();
        assert_eq!((error.kind, error.retryable), (ErrorKind::DATA, false));
        assert_eq!((c, d), (Bind::Bytes(&[1]), Bind::Text("x")), "left as they were");
        let (mut e, mut f) = (Bind::Null, Bind::Null);
        uniform(&mut [&mut e, &mut f]).unwrap();
        assert_eq!((e, f), (Bind::Null, Bind::Null), "a column of NULLs stays nvarchar NULLs");
    }

    #[test]
    fn each_kind_gets_its_type() {
        let zone = HisZone::utc();
        let value = Value::timestamp("2025-03-03T09:00:00+01:00");
        assert_eq!(bind(&value, zone).unwrap(), Bind::DateTime("2025-03-03T08:00:00".parse().unwrap()));
        assert_eq!(bind(&Value::text("1500"), zone).unwrap(), Bind::Text("1500"));
        assert_eq!(bind(&Value::int(7), zone).unwrap(), Bind::Int(7));
        assert_eq!(bind(&Value::bool(false), zone).unwrap(), Bind::Bool(false));
        let bytes = Value::bytes(vec![0, 255]);
        assert_eq!(bind(&bytes, zone).unwrap(), Bind::Bytes(&[0, 255]));
        let date = Value::date("1990-05-17");
        assert_eq!(bind(&date, zone).unwrap(), Bind::DateTime("1990-05-17T00:00:00".parse().unwrap()));
    }
}
