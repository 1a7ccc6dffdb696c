//! Errors a writer reports, classified so that the host knows what to do.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString},
};

/// What went wrong, as an open set of codes (see [`crate::ValueKind`] for
/// why this is not a Rust enum). Unknown codes read as [`ErrorKind::OTHER`].
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u16);

impl ErrorKind {
    /// Anything not covered below.
    pub const OTHER: Self = Self(0);
    /// The database could not be reached, or the connection was lost.
    pub const CONNECTION: Self = Self(1);
    /// A statement or connection attempt timed out.
    pub const TIMEOUT: Self = Self(2);
    /// Another transaction got in the way: deadlock, lock wait, busy file.
    pub const CONFLICT: Self = Self(3);
    /// The plugin's settings (the `database` section) are wrong.
    pub const CONFIG: Self = Self(4);
    /// The login was refused.
    pub const AUTH: Self = Self(5);
    /// The table, a column, or the key's unique index does not exist.
    pub const SCHEMA: Self = Self(6);
    /// A value does not fit its column (too long, wrong type, out of range).
    pub const DATA: Self = Self(7);
    /// A constraint other than the upsert key refused the row.
    pub const CONSTRAINT: Self = Self(8);
    /// The plugin does not support what was asked.
    pub const UNSUPPORTED: Self = Self(9);
    /// The plugin panicked. The host stops using that writer.
    pub const PANIC: Self = Self(10);

    /// A short lowercase name for logs and the journal (`"connection"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::CONNECTION => "connection",
            Self::TIMEOUT => "timeout",
            Self::CONFLICT => "conflict",
            Self::CONFIG => "config",
            Self::AUTH => "auth",
            Self::SCHEMA => "schema",
            Self::DATA => "data",
            Self::CONSTRAINT => "constraint",
            Self::UNSUPPORTED => "unsupported",
            Self::PANIC => "panic",
            _ => "other",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from a plugin: a kind, whether retrying can help, and the
/// database's own words.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct PluginError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// True when the same call may succeed later unchanged (a lost
    /// connection, a deadlock); false when it never will (an unknown column).
    pub retryable: bool,
    /// A message for the operator. Keep the database's own message in it.
    /// Never put a password in it.
    pub message: RString,
    /// The database's own error code (`"1213"`, `"ORA-00942"`), or empty.
    pub code: RString,
    /// The index of the row in the batch that caused the error, if known.
    pub row: ROption<u64>,
}

impl PluginError {
    fn new(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self { kind, retryable, message: RString::from(message.into()), code: RString::new(), row: ROption::RNone }
    }

    /// An error that may go away if the host tries again later.
    pub fn retryable(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, true, message)
    }

    /// An error that will not go away by retrying.
    pub fn permanent(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, false, message)
    }

    /// Records the database's own error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = RString::from(code.into());
        self
    }

    /// A wrong setting: permanent, [`ErrorKind::CONFIG`], and the message
    /// names it as the operator wrote it: `database.port: must be …`.
    pub fn setting(setting: &str, message: impl fmt::Display) -> Self {
        Self::permanent(ErrorKind::CONFIG, format!("database.{setting}: {message}"))
    }

    /// An error from opening a connection, said for an operator: where
    /// (`place`, such as `MySQL at his@db:3306/his`), then the database's
    /// words, then what to check: `login_hint` for a refused login,
    /// `settings_hint` for a configuration error, or that the events wait
    /// for a retryable one.
    pub fn while_connecting(self, place: impl fmt::Display, login_hint: &str, settings_hint: &str) -> Self {
        let hint = match self.kind {
            ErrorKind::AUTH => login_hint,
            ErrorKind::CONFIG => settings_hint,
            _ if self.retryable => "the middleware keeps the events and retries",
            _ => "",
        };
        let message = match hint {
            "" => format!("{place}: {}", self.message),
            hint => format!("{place}: {} ({hint})", self.message),
        };
        Self { message: message.into(), ..self }
    }

    /// A call that ran out of its time: `what` (such as `the write to
    /// HIS_payments`) took longer than `limit` and was abandoned and rolled
    /// back. Retryable, [`ErrorKind::TIMEOUT`]. `limit` is the
    /// [`crate::Deadline`]'s budget, or the plugin's own timeout if shorter.
    pub fn deadline_exceeded(what: &str, limit: std::time::Duration) -> Self {
        Self::retryable(
            ErrorKind::TIMEOUT,
            format!("{what} took longer than {} ms and was abandoned", limit.as_millis()),
        )
    }

    /// A batch's write to `table` that took longer than `limit` and was
    /// abandoned: [`PluginError::deadline_exceeded`] for a write.
    pub fn write_timed_out(table: &str, limit: std::time::Duration) -> Self {
        Self::deadline_exceeded(&format!("the write to {table}"), limit)
    }

    /// Records which row of the batch caused the error.
    pub fn with_row(mut self, row: usize) -> Self {
        self.row = ROption::RSome(row as u64);
        self
    }

    /// Renumbers the row this error names (if any), counted within its
    /// batch, across the batches of a [`crate::Writer::write_all`]:
    /// `first_row` is the index of the batch's row 0 across them all (see
    /// [`crate::WriteBatch::with_first_rows`]). Row 3 of a batch whose
    /// `first_row` is 10 becomes row 13.
    pub fn offset_row(mut self, first_row: usize) -> Self {
        self.row = self.row.map(|row| row + first_row as u64);
        self
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.code.is_empty() {
            write!(f, " (code {})", self.code)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginError")
            .field("kind", &self.kind)
            .field("retryable", &self.retryable)
            .field("message", &self.message.as_str())
            .field("code", &self.code.as_str())
            .field("row", &self.row)
            .finish()
    }
}

impl std::error::Error for PluginError {}
