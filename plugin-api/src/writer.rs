//! The writer: the object a plugin opens and the host calls to write rows.
//!
//! Two traits, one per side of the boundary:
//! - [`Writer`] is what a plugin implements: plain Rust, `Result`s and `&str`.
//! - [`AbiWriter`] is what crosses the boundary: the `#[sabi_trait]` form
//!   the host calls. [`crate::export_plugin!`] wraps a `Writer` into it (and
//!   into the frozen [`crate::v1_0::AbiWriter`], for 1.0 hosts), with every
//!   call inside `catch_unwind`, so a panic in a plugin comes back as an
//!   [`ErrorKind::PANIC`] error instead of aborting the host.

// `#[sabi_trait]` expands to impls inside a const block, which rustc flags.
#![allow(non_local_definitions)]

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RStr},
};

use crate::{Actions, Deadline, ErrorKind, PluginError, TableDescription, WriteBatch, v1_0};

/// A connection (or pool) to one HIS database. Implement this in a plugin.
///
/// The host calls a writer from one thread at a time, never from an async
/// task, so methods may block. A plugin that uses async drivers owns its own
/// runtime and blocks on it here. Every call has a [`Deadline`]: keep it.
pub trait Writer: Send + 'static {
    /// Applies the batch's action to every row, in one transaction: all
    /// rows commit, or none do. Return only after the commit is durable in
    /// the HIS. A row at fault (a DATA error, an insert whose key exists)
    /// fails the batch with [`PluginError::with_row`] naming it.
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError>;

    /// Checks that the database answers and the login still works.
    fn ping(&mut self, deadline: Deadline) -> Result<(), PluginError>;

    /// Describes `table`, or returns `None` if it does not exist.
    fn describe_table(&mut self, table: &str, deadline: Deadline) -> Result<Option<TableDescription>, PluginError>;

    /// The actions [`Writer::write`] carries out. The host refuses to start
    /// with a mapping that needs another, naming the mapping. The default
    /// is upsert only; a batch with an action outside the set is answered
    /// with [`ErrorKind::UNSUPPORTED`] by the guard, without calling `write`.
    fn actions(&self) -> Actions {
        Actions::UPSERT
    }

    /// Closes connections before the host exits. The default does nothing.
    fn close(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// The ABI form of [`Writer`] (plugin-api 1.1). Plugins do not implement
/// this by hand.
///
/// Frozen from 1.1 on: a new method means a new trait in a later minor
/// version (see "Versioning" in the crate docs).
#[sabi_trait]
pub trait AbiWriter: Send {
    /// See [`Writer::write`].
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> RResult<(), PluginError>;

    /// See [`Writer::ping`].
    fn ping(&mut self, deadline: Deadline) -> RResult<(), PluginError>;

    /// See [`Writer::describe_table`].
    fn describe_table(
        &mut self,
        table: RStr<'_>,
        deadline: Deadline,
    ) -> RResult<ROption<TableDescription>, PluginError>;

    /// See [`Writer::actions`].
    fn actions(&self) -> Actions;

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

/// The deadline of a call from a 1.0 host, which sends none: the plugin's
/// own timeouts bound it, as they did in 1.0.
const FROM_A_1_0_HOST: Duration = Duration::from_secs(3600);

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

    fn supported_actions(&self) -> Actions {
        let actions = catch_unwind(AssertUnwindSafe(|| self.inner.as_ref().map(Writer::actions)));
        actions.ok().flatten().unwrap_or(Actions::UPSERT)
    }
}

impl<W: Writer> AbiWriter for Guarded<W> {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> RResult<(), PluginError> {
        if !self.supported_actions().contains(batch.action()) {
            return RResult::RErr(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!("this plugin cannot {} rows (it does not list the action)", batch.action().name()),
            ));
        }
        self.call("write", |w| w.write(batch, deadline))
    }

    fn ping(&mut self, deadline: Deadline) -> RResult<(), PluginError> {
        self.call("ping", |w| w.ping(deadline))
    }

    fn describe_table(
        &mut self,
        table: RStr<'_>,
        deadline: Deadline,
    ) -> RResult<ROption<TableDescription>, PluginError> {
        self.call("describe_table", |w| w.describe_table(table.as_str(), deadline).map(ROption::from))
    }

    fn actions(&self) -> Actions {
        self.supported_actions()
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        self.call("close", |w| w.close())
    }
}

/// What a 1.0 host calls: the same writer, upserting.
impl<W: Writer> v1_0::AbiWriter for Guarded<W> {
    fn upsert(&mut self, batch: &v1_0::UpsertBatch) -> RResult<(), PluginError> {
        let batch = v1_0::to_write_batch(batch);
        AbiWriter::write(self, &batch, Deadline::after(FROM_A_1_0_HOST))
    }

    fn ping(&mut self) -> RResult<(), PluginError> {
        AbiWriter::ping(self, Deadline::after(FROM_A_1_0_HOST))
    }

    fn describe_table(&mut self, table: RStr<'_>) -> RResult<ROption<TableDescription>, PluginError> {
        AbiWriter::describe_table(self, table, Deadline::after(FROM_A_1_0_HOST))
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        AbiWriter::close(self)
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
        let result: RResult<(), PluginError> = guard("write", || panic!("boom {}", 42));
        let error = result.unwrap_err();
        assert_eq!((error.kind, error.retryable), (ErrorKind::PANIC, false));
        assert_eq!(error.message.as_str(), "the plugin panicked in write: boom 42");

        let result: RResult<u8, PluginError> = guard("ping", || Ok(7));
        assert_eq!(result.unwrap(), 7);
    }
}
