//! Typed values: what one event field becomes on its way into an HIS column.

use std::fmt;

use abi_stable::{StableAbi, std_types::RString};

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

    /// A short lowercase name for messages (`"decimal"`), or `"kind#N"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NULL => "null",
            Self::BOOL => "bool",
            Self::INT => "integer",
            Self::DECIMAL => "decimal",
            Self::FLOAT => "float",
            Self::TEXT => "text",
            Self::TIMESTAMP => "timestamp",
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
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct Value {
    kind: ValueKind,
    /// BOOL (0 or 1) and INT.
    int: i64,
    /// FLOAT.
    float: f64,
    /// DECIMAL, TEXT and TIMESTAMP.
    text: RString,
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
    /// A kind this build of plugin-api does not know. A host never sends one
    /// to a plugin built against the same or a newer plugin-api.
    Unknown(ValueKind),
}

impl Value {
    fn new(kind: ValueKind, int: i64, float: f64, text: RString) -> Self {
        Self { kind, int, float, text }
    }

    /// SQL NULL.
    pub fn null() -> Self {
        Self::new(ValueKind::NULL, 0, 0.0, RString::new())
    }
    /// A boolean.
    pub fn bool(value: bool) -> Self {
        Self::new(ValueKind::BOOL, i64::from(value), 0.0, RString::new())
    }
    /// An integer.
    pub fn int(value: i64) -> Self {
        Self::new(ValueKind::INT, value, 0.0, RString::new())
    }
    /// Exact decimal text. The caller makes sure it is a plain decimal number.
    pub fn decimal(text: impl Into<RString>) -> Self {
        Self::new(ValueKind::DECIMAL, 0, 0.0, text.into())
    }
    /// A float.
    pub fn float(value: f64) -> Self {
        Self::new(ValueKind::FLOAT, 0, value, RString::new())
    }
    /// Text.
    pub fn text(text: impl Into<RString>) -> Self {
        Self::new(ValueKind::TEXT, 0, 0.0, text.into())
    }
    /// A timestamp in the normalised form of [`ValueKind::TIMESTAMP`].
    pub fn timestamp(text: impl Into<RString>) -> Self {
        Self::new(ValueKind::TIMESTAMP, 0, 0.0, text.into())
    }

    /// The value's kind.
    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    /// A view of the value to `match` on.
    pub fn get(&self) -> ValueRef<'_> {
        match self.kind {
            ValueKind::NULL => ValueRef::Null,
            ValueKind::BOOL => ValueRef::Bool(self.int != 0),
            ValueKind::INT => ValueRef::Int(self.int),
            ValueKind::DECIMAL => ValueRef::Decimal(&self.text),
            ValueKind::FLOAT => ValueRef::Float(self.float),
            ValueKind::TEXT => ValueRef::Text(&self.text),
            ValueKind::TIMESTAMP => ValueRef::Timestamp(&self.text),
            other => ValueRef::Unknown(other),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
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
        assert_eq!(Value::text("x").get(), ValueRef::Text("x"));
        assert_eq!(Value::timestamp("2025-03-03T09:00:00").get(), ValueRef::Timestamp("2025-03-03T09:00:00"));
    }
}
