//! The writer: the object a plugin opens and the host calls to write rows.
//!
//! Two traits, one per side of the boundary:
//! - [`Writer`] is what a plugin implements: plain Rust, `Result`s and `&str`.
//! - [`AbiWriter`] is what crosses the boundary: the `#[sabi_trait]` form
//!   the host calls. [`crate::export_plugin!`] wraps a `Writer` into it, with
//!   every call inside `catch_unwind`, so a panic in a plugin comes back as
//!   an [`ErrorKind::PANIC`] error instead of aborting the host.

// `#[sabi_trait]` expands to impls inside a const block, which rustc flags.
#![allow(non_local_definitions)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RStr},
};

use crate::{ErrorKind, PluginError, TableDescription, UpsertBatch};

/// A connection (or pool) to one HIS database. Implement this in a plugin.
///
/// The host calls a writer from one thread at a time, never from an async
/// task, so methods may block. A plugin that uses async drivers owns its own
/// runtime and blocks on it here.
pub trait Writer: Send + 'static {
    /// Upserts every row of `batch` in one transaction: all rows commit, or
    /// none do. Return only after the commit is durable in the HIS.
    fn upsert(&mut self, batch: &UpsertBatch) -> Result<(), PluginError>;

    /// Checks that the database answers and the login still works.
    fn ping(&mut self) -> Result<(), PluginError>;

    /// Describes `table`, or returns `None` if it does not exist.
    fn describe_table(&mut self, table: &str) -> Result<Option<TableDescription>, PluginError>;

    /// Closes connections before the host exits. The default does nothing.
    fn close(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// The ABI form of [`Writer`]. Plugins do not implement this by hand.
///
/// New methods go after the last prefix method, in a minor ABI version.
#[sabi_trait]
pub trait AbiWriter: Send {
    /// See [`Writer::upsert`].
    fn upsert(&mut self, batch: &UpsertBatch) -> RResult<(), PluginError>;

    /// See [`Writer::ping`].
    fn ping(&mut self) -> RResult<(), PluginError>;

    /// See [`Writer::describe_table`].
    fn describe_table(&mut self, table: RStr<'_>) -> RResult<ROption<TableDescription>, PluginError>;

    /// See [`Writer::close`].
    #[sabi(last_prefix_field)]
    fn close(&mut self) -> RResult<(), PluginError>;
}

/// An open writer as the host holds it: an owned, type-erased [`AbiWriter`].
pub type WriterBox = AbiWriter_TO<'static, RBox<()>>;

/// Runs `f`, turning a panic into a [`ErrorKind::PANIC`] error that names
/// `what` was being done. Every call from the host into a plugin goes
/// through this on the plugin's side.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            RResult::RErr(PluginError::permanent(ErrorKind::PANIC, format!("the plugin panicked in {what}: {detail}")))
        }
    }
}

/// Wraps a plugin's [`Writer`] so that it can cross the boundary: every
/// call, and the drop, runs inside [`guard`].
pub(crate) struct Guarded<W: Writer> {
    /// `None` once dropped; an `Option` so that `Drop` can guard the
    /// writer's own drop.
    inner: Option<W>,
}

impl<W: Writer> Guarded<W> {
    pub(crate) fn new(writer: W) -> Self {
        Self { inner: Some(writer) }
    }

    fn call<T>(&mut self, what: &str, f: impl FnOnce(&mut W) -> Result<T, PluginError>) -> RResult<T, PluginError> {
        guard(what, || match self.inner.as_mut() {
            Some(writer) => f(writer),
            None => Err(PluginError::permanent(ErrorKind::OTHER, "the writer was already dropped")),
        })
    }
}

impl<W: Writer> AbiWriter for Guarded<W> {
    fn upsert(&mut self, batch: &UpsertBatch) -> RResult<(), PluginError> {
        self.call("upsert", |w| w.upsert(batch))
    }

    fn ping(&mut self) -> RResult<(), PluginError> {
        self.call("ping", |w| w.ping())
    }

    fn describe_table(&mut self, table: RStr<'_>) -> RResult<ROption<TableDescription>, PluginError> {
        self.call("describe_table", |w| w.describe_table(table.as_str()).map(ROption::from))
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        self.call("close", |w| w.close())
    }
}

impl<W: Writer> Drop for Guarded<W> {
    fn drop(&mut self) {
        let writer = self.inner.take();
        // A panic in the writer's own drop must not abort the host either;
        // there is nobody left to report it to, so it is dropped.
        let _ = guard("drop", || {
            drop(writer);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_a_panic_error() {
        let result: RResult<(), PluginError> = guard("upsert", || panic!("boom {}", 42));
        let error = result.unwrap_err();
        assert_eq!((error.kind, error.retryable), (ErrorKind::PANIC, false));
        assert_eq!(error.message.as_str(), "the plugin panicked in upsert: boom 42");

        let result: RResult<u8, PluginError> = guard("ping", || Ok(7));
        assert_eq!(result.unwrap(), 7);
    }
}
