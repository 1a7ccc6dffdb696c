//! Typed values: what one event field becomes on its way into an HIS column.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// The kind of a [`Value`], as an open set of codes rather than a Rust enum.
///
/// Adding a variant to an ABI enum breaks loading, so kinds are numbered
/// constants: a new kind is a minor ABI version (see the crate docs), and a
/// plugin that meets a code it does not know sees [`ValueRef::Unknown`].
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ValueKind(pub u8);

impl ValueKind {
    /// SQL NULL: the event did not carry the field, or carried `null`.
    pub const NULL: Self = Self(0);
    /// A boolean; most databases store it as 0/1 or BIT.
    pub const BOOL: Self = Self(1);
    /// A 64-bit signed integer.
    pub const INT: Self = Self(2);
    /// An exact decimal number carried as text (`"1500.75"`), so that no
    /// float ever rounds a payment amount.
    pub const DECIMAL: Self = Self(3);
    /// A 64-bit float (a JSON number in exponent form, `1.5e3`).
    pub const FLOAT: Self = Self(4);
    /// Text, exactly as sent.
    pub const TEXT: Self = Self(5);
    /// An ISO 8601 date and time, normalised by the host to
    /// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`. Without an offset it is a
    /// wall-clock time in the HIS's own time zone.
    pub const TIMESTAMP: Self = Self(6);
    /// A calendar date without a time or zone, as `YYYY-MM-DD` (a real
    /// date: the host checks). Since plugin-api 1.1; a 1.0 plugin gets it
    /// as [`ValueKind::TEXT`].
    pub const DATE: Self = Self(7);
    /// Raw bytes (a BLOB, VARBINARY or RAW column). Since plugin-api 1.1.
    pub const BYTES: Self = Self(8);

    /// A short lowercase name for messages (`"decimal"`), or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NULL => "null",
            Self::BOOL => "bool",
            Self::INT => "integer",
            Self::DECIMAL => "decimal",
            Self::FLOAT => "float",
            Self::TEXT => "text",
            Self::TIMESTAMP => "timestamp",
            Self::DATE => "date",
            Self::BYTES => "bytes",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "unknown" => write!(f, "kind#{}", self.0),
            name => f.write_str(name),
        }
    }
}

/// One typed value, as it crosses the plugin boundary.
///
/// The fields are private: build values with the constructors and read them
/// with [`Value::get`], which gives an ordinary Rust enum to match on.
///
/// 48 bytes a cell, plus the heap bytes of its text or bytes: a number
/// (BOOL, INT, and FLOAT as its bits) shares one 8-byte field, and text and
/// bytes share one `RVec<u8>` (text is its UTF-8). The 1.0 `Value` was 56
/// bytes, with separate integer, float and text fields and no room for
/// bytes; it lives on, frozen, in [`crate::v1_0`].
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct Value {
    kind: ValueKind,
    /// BOOL (0 or 1), INT, and FLOAT's bits.
    number: i64,
    /// DECIMAL, TEXT, TIMESTAMP and DATE as UTF-8; BYTES as they are.
    data: RVec<u8>,
}

/// A borrowed view of a [`Value`], for `match`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// Exact decimal text, such as `"-12.50"`.
    Decimal(&'a str),
    /// A float.
    Float(f64),
    /// Text.
    Text(&'a str),
    /// A normalised ISO 8601 timestamp (see [`ValueKind::TIMESTAMP`]).
    Timestamp(&'a str),
    /// A calendar date, `YYYY-MM-DD` (see [`ValueKind::DATE`]).
    Date(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A kind this build of plugin-api does not know. A host never sends one
    /// to a plugin built against the same or a newer plugin-api.
    Unknown(ValueKind),
}

impl Value {
    fn number(kind: ValueKind, number: i64) -> Self {
        Self { kind, number, data: RVec::new() }
    }

    fn text_kind(kind: ValueKind, text: RString) -> Self {
        Self { kind, number: 0, data: text.into_bytes() }
    }

    /// SQL NULL.
    pub fn null() -> Self {
        Self::number(ValueKind::NULL, 0)
    }
    /// A boolean.
    pub fn bool(value: bool) -> Self {
        Self::number(ValueKind::BOOL, i64::from(value))
    }
    /// An integer.
    pub fn int(value: i64) -> Self {
        Self::number(ValueKind::INT, value)
    }
    /// Exact decimal text. The caller makes sure it is a plain decimal number.
    pub fn decimal(text: impl Into<RString>) -> Self {
        Self::text_kind(ValueKind::DECIMAL, text.into())
    }
    /// A float.
    pub fn float(value: f64) -> Self {
        Self::number(ValueKind::FLOAT, value.to_bits() as i64)
    }
    /// Text.
    pub fn text(text: impl Into<RString>) -> Self {
        Self::text_kind(ValueKind::TEXT, text.into())
    }
    /// A timestamp in the normalised form of [`ValueKind::TIMESTAMP`].
    pub fn timestamp(text: impl Into<RString>) -> Self {
        Self::text_kind(ValueKind::TIMESTAMP, text.into())
    }
    /// A date as `YYYY-MM-DD`. The caller makes sure it is a real date.
    pub fn date(text: impl Into<RString>) -> Self {
        Self::text_kind(ValueKind::DATE, text.into())
    }
    /// Raw bytes.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self { kind: ValueKind::BYTES, number: 0, data: RVec::from(bytes.into()) }
    }

    /// The value's kind.
    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    /// A view of the value to `match` on.
    pub fn get(&self) -> ValueRef<'_> {
        // Text kinds are built from `str`s only (the fields are private), so
        // this never fails; it is checked rather than assumed, without
        // `unsafe`, at the cost of a scan of a short string.
        let text = || std::str::from_utf8(&self.data).ok();
        match self.kind {
            ValueKind::NULL => ValueRef::Null,
            ValueKind::BOOL => ValueRef::Bool(self.number != 0),
            ValueKind::INT => ValueRef::Int(self.number),
            ValueKind::FLOAT => ValueRef::Float(f64::from_bits(self.number as u64)),
            ValueKind::BYTES => ValueRef::Bytes(&self.data),
            ValueKind::DECIMAL => text().map_or(ValueRef::Unknown(self.kind), ValueRef::Decimal),
            ValueKind::TEXT => text().map_or(ValueRef::Unknown(self.kind), ValueRef::Text),
            ValueKind::TIMESTAMP => text().map_or(ValueRef::Unknown(self.kind), ValueRef::Timestamp),
            ValueKind::DATE => text().map_or(ValueRef::Unknown(self.kind), ValueRef::Date),
            other => ValueRef::Unknown(other),
        }
    }

    /// The text of a DECIMAL, TEXT, TIMESTAMP or DATE value.
    pub fn as_text(&self) -> Option<&str> {
        match self.get() {
            ValueRef::Decimal(s) | ValueRef::Text(s) | ValueRef::Timestamp(s) | ValueRef::Date(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// Checks a `YYYY-MM-DD` date: the form and a real day of a year 1–9999.
pub fn is_date(text: &str) -> bool {
    text.len() == 10 && crate::Timestamp::parse(&format!("{text}T00:00:00")).is_some_and(|t| t.year >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_reads_back_as_its_kind() {
        assert_eq!(Value::null().get(), ValueRef::Null);
        assert_eq!(Value::bool(true).get(), ValueRef::Bool(true));
        assert_eq!(Value::int(-7).get(), ValueRef::Int(-7));
        assert_eq!(Value::decimal("1500.75").get(), ValueRef::Decimal("1500.75"));
        assert_eq!(Value::float(1.5).get(), ValueRef::Float(1.5));
        assert_eq!(Value::float(-0.0).get(), ValueRef::Float(-0.0));
        assert_eq!(Value::text("x").get(), ValueRef::Text("x"));
        assert_eq!(Value::timestamp("2025-03-03T09:00:00").get(), ValueRef::Timestamp("2025-03-03T09:00:00"));
        assert_eq!(Value::date("1990-05-17").get(), ValueRef::Date("1990-05-17"));
        assert_eq!(Value::bytes(vec![0, 255, 7]).get(), ValueRef::Bytes(&[0, 255, 7]));
    }

    #[test]
    fn a_cell_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 48);
    }

    #[test]
    fn dates_are_checked() {
        assert!(is_date("1990-05-17"));
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("1990-5-17"));
        assert!(!is_date("0000-01-01"));
        assert!(!is_date("1990-05-17T00:00:00"));
    }
}
