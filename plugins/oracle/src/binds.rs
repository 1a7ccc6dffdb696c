//! Each column's bind type, from the data dictionary, and each value
//! converted for it.
//!
//! Binding by the column's own type keeps conversions out of the session's
//! NLS settings: a timestamp is a TIMESTAMP value, never a string that
//! NLS_DATE_FORMAT must parse; decimal text goes to NUMBER through ODPI-C's
//! exact, locale-free number text; bytes go to RAW and BLOB as bytes, never
//! as hexadecimal text that the server converts.

use chrono::NaiveDateTime;
use his_plugin_api::{ErrorKind, HisZone, PluginError, Timestamp, Value, ValueRef};

use crate::dictionary::DictionaryRow;

/// The longest text a VARCHAR2 bind takes (ORA-01461 lies beyond).
pub const MAX_VARCHAR2_BYTES: usize = 4000;

/// The longest RAW column without extended data types, for a dictionary
/// row that gives no length.
pub const MAX_RAW_BYTES: usize = 2000;

/// How a column is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnBind {
    /// NUMBER, FLOAT, INTEGER, BINARY_DOUBLE…
    Number,
    /// DATE and TIMESTAMP (without time zone).
    Timestamp,
    /// CLOB and NCLOB: text of any length.
    Clob,
    /// RAW: bytes up to the column's length.
    Raw,
    /// BLOB: bytes of any length.
    Blob,
    /// VARCHAR2, NVARCHAR2, CHAR and anything else: text up to 4,000 bytes.
    Text,
}

impl ColumnBind {
    /// The bind for a column of the dictionary's `data_type`.
    pub fn for_column(column: &DictionaryRow) -> Self {
        let data_type = column.data_type.to_ascii_uppercase();
        if ["NUMBER", "FLOAT", "INTEGER", "BINARY_DOUBLE", "BINARY_FLOAT"].contains(&data_type.as_str()) {
            ColumnBind::Number
        } else if data_type == "DATE" || (data_type.starts_with("TIMESTAMP") && !data_type.contains("ZONE")) {
            ColumnBind::Timestamp
        } else if data_type == "CLOB" || data_type == "NCLOB" {
            ColumnBind::Clob
        } else if data_type == "RAW" {
            ColumnBind::Raw
        } else if data_type == "BLOB" {
            ColumnBind::Blob
        } else {
            ColumnBind::Text
        }
    }
}

/// A value ready to bind into its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// NULL of the column's type.
    Null,
    /// An integer (booleans are 1 and 0: Oracle SQL before 23ai has no boolean).
    Int(i64),
    /// A float.
    Float(f64),
    /// Exact number text, for a NUMBER column.
    Number(String),
    /// A wall-clock date and time in the HIS's zone.
    DateTime(NaiveDateTime),
    /// Text for a VARCHAR2 or CLOB column.
    Text(String),
    /// Bytes for a RAW or BLOB column.
    Bytes(Vec<u8>),
}

/// The most bytes a RAW `column` holds: its DATA_LENGTH (2,000, or up to
/// 32,767 with extended data types).
pub fn max_raw_bytes(column: &DictionaryRow) -> usize {
    match column.data_length {
        0 => MAX_RAW_BYTES,
        length => length as usize,
    }
}

fn refuse(column: &DictionaryRow, value: &str) -> PluginError {
    PluginError::permanent(
        ErrorKind::DATA,
        format!("{value} cannot go into column {} ({})", column.column, column.data_type),
    )
}

/// Converts `value` for `column`.
pub fn bind(value: &Value, column: &DictionaryRow, zone: HisZone) -> Result<Bind, PluginError> {
    let kind = ColumnBind::for_column(column);
    if let ColumnBind::Raw | ColumnBind::Blob = kind {
        return bind_bytes(value, column, kind);
    }
    Ok(match (value.get(), kind) {
        (ValueRef::Null, _) => Bind::Null,
        (ValueRef::Bytes(bytes), _) => {
            return Err(PluginError::permanent(
                ErrorKind::DATA,
                format!(
                    "{} bytes cannot go into column {} ({}): only RAW and BLOB columns take bytes",
                    bytes.len(),
                    column.column,
                    column.data_type
                ),
            ));
        }
        (ValueRef::Bool(b), _) => Bind::Int(i64::from(b)),
        (ValueRef::Int(i), _) => Bind::Int(i),
        (ValueRef::Float(f), _) => Bind::Float(f),
        (ValueRef::Decimal(s), ColumnBind::Number) => Bind::Number(s.to_string()),
        (ValueRef::Text(s), ColumnBind::Number) if is_number_text(s) => Bind::Number(s.to_string()),
        (ValueRef::Text(s), ColumnBind::Number) => return Err(refuse(column, &format!("the text {s:?}"))),
        (ValueRef::Timestamp(s), ColumnBind::Timestamp) | (ValueRef::Text(s), ColumnBind::Timestamp) => {
            match Timestamp::parse(s).and_then(|t| zone.wall_clock(&t)) {
                Some(wall_clock) => Bind::DateTime(wall_clock),
                None => return Err(refuse(column, &format!("{s:?}, not an ISO 8601 timestamp,"))),
            }
        }
        (ValueRef::Date(s), ColumnBind::Timestamp) => match HisZone::date_at_midnight(s) {
            Some(midnight) => Bind::DateTime(midnight),
            None => return Err(refuse(column, &format!("{s:?}, not a calendar date,"))),
        },
        (ValueRef::Text(s) | ValueRef::Decimal(s) | ValueRef::Timestamp(s) | ValueRef::Date(s), ColumnBind::Clob) => {
            Bind::Text(s.to_string())
        }
        (ValueRef::Text(s) | ValueRef::Decimal(s) | ValueRef::Timestamp(s) | ValueRef::Date(s), _) => {
            if s.len() > MAX_VARCHAR2_BYTES {
                return Err(PluginError::permanent(
                    ErrorKind::DATA,
                    format!(
                        "a text of {} bytes cannot go into column {} ({}): the most is {MAX_VARCHAR2_BYTES}; \
                         make the column a CLOB to store longer text",
                        s.len(),
                        column.column,
                        column.data_type
                    ),
                ));
            }
            Bind::Text(s.to_string())
        }
        (other, _) => {
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!("the oracle plugin cannot write a {other:?} value"),
            ));
        }
    })
}

/// Converts `value` for a RAW or BLOB `column`: bytes as they are, and text
/// as the hexadecimal Oracle itself reads into RAW (as a RAW(16) GUID is
/// often written), decoded here so that a bad digit is the row's DATA
/// error instead of ORA-01465 from the server.
fn bind_bytes(value: &Value, column: &DictionaryRow, kind: ColumnBind) -> Result<Bind, PluginError> {
    let bytes = match value.get() {
        ValueRef::Null => return Ok(Bind::Null),
        ValueRef::Bytes(bytes) => bytes.to_vec(),
        ValueRef::Text(s) => match from_hex(s) {
            Some(bytes) => bytes,
            None => return Err(refuse(column, "a text that is not hexadecimal")),
        },
        _ => return Err(refuse(column, &format!("the {} value", value.kind().name()))),
    };
    let most = max_raw_bytes(column);
    if kind == ColumnBind::Raw && bytes.len() > most {
        return Err(PluginError::permanent(
            ErrorKind::DATA,
            format!(
                "{} bytes cannot go into column {} ({}): the most is {most}; make the column a BLOB to store more",
                bytes.len(),
                column.column,
                column.data_type
            ),
        ));
    }
    Ok(Bind::Bytes(bytes))
}

/// `0aFF` as bytes: two hexadecimal digits a byte, either case.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    text.as_bytes().chunks_exact(2).map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

/// `-12.50`, `1500`: plain decimal text, which NUMBER takes exactly.
fn is_number_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty() && !fraction.is_empty() && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::tests::seed_dictionary;

    fn column(name: &str) -> DictionaryRow {
        seed_dictionary().into_iter().find(|c| c.column == name).unwrap()
    }

    #[test]
    fn the_seed_values_bind_by_column_type() {
        let utc = HisZone::utc();
        assert_eq!(bind(&Value::int(789), &column("HIS_PAYMENT_ID"), utc).unwrap(), Bind::Int(789));
        assert_eq!(bind(&Value::text("1500"), &column("HIS_AMOUNT"), utc).unwrap(), Bind::Number("1500".into()));
        assert_eq!(
            bind(&Value::decimal("1500.75"), &column("HIS_AMOUNT"), utc).unwrap(),
            Bind::Number("1500.75".into())
        );
        assert_eq!(bind(&Value::text("paid"), &column("HIS_PAYMENT_STATUS"), utc).unwrap(), Bind::Text("paid".into()));
        assert_eq!(
            bind(&Value::timestamp("2025-03-02T11:00:00"), &column("HIS_PAID_AT"), utc).unwrap(),
            Bind::DateTime("2025-03-02T11:00:00".parse().unwrap())
        );
        // A DATE column takes a timestamp value too, never through NLS.
        assert_eq!(
            bind(&Value::timestamp("2025-03-03T09:00:00+01:00"), &column("HIS_NEW_TIME"), utc).unwrap(),
            Bind::DateTime("2025-03-03T08:00:00".parse().unwrap())
        );
        assert_eq!(bind(&Value::null(), &column("HIS_AMOUNT"), utc).unwrap(), Bind::Null);
        assert_eq!(bind(&Value::bool(true), &column("HIS_AMOUNT"), utc).unwrap(), Bind::Int(1));
    }

    #[test]
    fn long_text_goes_to_clob_columns_and_is_refused_elsewhere() {
        let long = "x".repeat(5000);
        let utc = HisZone::utc();
        assert_eq!(bind(&Value::text(long.clone()), &column("HIS_NOTE"), utc).unwrap(), Bind::Text(long.clone()));
        let e = bind(&Value::text(long), &column("HIS_PAYMENT_STATUS"), utc).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DATA);
        assert!(e.message.contains("a text of 5000 bytes cannot go into column HIS_PAYMENT_STATUS (VARCHAR2)"), "{e}");
        assert!(e.message.contains("make the column a CLOB"), "{e}");
    }

    fn raw_and_blob() -> (DictionaryRow, DictionaryRow) {
        let raw = DictionaryRow {
            table: "HIS_DOCUMENTS".into(),
            column: "HIS_GUID".into(),
            data_type: "RAW".into(),
            data_length: 16,
            nullable: false,
            has_default: false,
        };
        let blob =
            DictionaryRow { column: "HIS_SCAN".into(), data_type: "BLOB".into(), data_length: 4000, ..raw.clone() };
        (raw, blob)
    }

    #[test]
    fn raw_and_blob_columns_bind_bytes() {
        let (raw, blob) = raw_and_blob();
        assert_eq!((ColumnBind::for_column(&raw), ColumnBind::for_column(&blob)), (ColumnBind::Raw, ColumnBind::Blob));
        let utc = HisZone::utc();
        assert_eq!(bind(&Value::bytes(vec![0, 255, 7]), &raw, utc).unwrap(), Bind::Bytes(vec![0, 255, 7]));
        let scan = vec![42u8; 100_000];
        assert_eq!(bind(&Value::bytes(scan.clone()), &blob, utc).unwrap(), Bind::Bytes(scan));
        assert_eq!(bind(&Value::null(), &raw, utc).unwrap(), Bind::Null);
        // Hexadecimal text, as Oracle reads it into RAW itself.
        assert_eq!(bind(&Value::text("00fF10"), &raw, utc).unwrap(), Bind::Bytes(vec![0, 255, 16]));
    }

    #[test]
    fn bytes_that_do_not_fit_are_refused_naming_the_column() {
        let (raw, _) = raw_and_blob();
        let utc = HisZone::utc();
        let e = bind(&Value::bytes(vec![1; 17]), &raw, utc).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::DATA, false));
        assert!(e.message.starts_with("17 bytes cannot go into column HIS_GUID (RAW): the most is 16"), "{e}");
        for (value, expected) in [
            (Value::text("0g"), "a text that is not hexadecimal cannot go into column HIS_GUID (RAW)"),
            (Value::text("abc"), "a text that is not hexadecimal cannot go into column HIS_GUID (RAW)"),
            (Value::int(7), "the integer value cannot go into column HIS_GUID (RAW)"),
            (Value::date("2025-03-03"), "the date value cannot go into column HIS_GUID (RAW)"),
        ] {
            let e = bind(&value, &raw, utc).unwrap_err();
            assert_eq!((e.kind, e.message.as_str()), (ErrorKind::DATA, expected), "{value:?}");
        }
    }

    #[test]
    fn bytes_are_refused_for_other_column_types() {
        let utc = HisZone::utc();
        for (name, data_type) in [
            ("HIS_PAYMENT_STATUS", "VARCHAR2"),
            ("HIS_AMOUNT", "NUMBER"),
            ("HIS_NOTE", "CLOB"),
            ("HIS_PAID_AT", "TIMESTAMP(6)"),
        ] {
            let e = bind(&Value::bytes(vec![1, 2, 3]), &column(name), utc).unwrap_err();
            assert_eq!((e.kind, e.retryable), (ErrorKind::DATA, false), "{name}");
            assert_eq!(
                e.message.as_str(),
                format!("3 bytes cannot go into column {name} ({data_type}): only RAW and BLOB columns take bytes")
            );
        }
    }

    #[test]
    fn text_that_is_not_a_number_is_refused_for_number_columns() {
        let e = bind(&Value::text("12,50"), &column("HIS_AMOUNT"), HisZone::utc()).unwrap_err();
        assert!(e.message.contains("the text \"12,50\" cannot go into column HIS_AMOUNT (NUMBER)"), "{e}");
    }
}
