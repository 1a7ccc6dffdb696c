//! The writer: the object a plugin opens and the host calls to write rows.
//!
//! Two sides of the boundary:
//! - [`Writer`] is what a plugin implements: plain Rust, `Result`s and `&str`.
//! - [`AbiWriterV1_2`] is what crosses the boundary: the `#[sabi_trait]`
//!   form a 1.2 host calls. [`crate::export_plugin!`] wraps a `Writer` into
//!   it, and into the frozen forms of earlier versions ([`AbiWriter`] for
//!   1.1 hosts, [`crate::v1_0::AbiWriter`] for 1.0 hosts), with every call
//!   inside `catch_unwind`, so a panic in a plugin comes back as an
//!   [`ErrorKind::PANIC`] error instead of aborting the host.

// `#[sabi_trait]` expands to impls inside a const block, which rustc flags.
#![allow(non_local_definitions)]

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RStr},
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
    ///
    /// A plugin that implements [`Writer::write_all`] writes one batch as
    /// `self.write_all(std::slice::from_ref(batch), deadline)`: one code
    /// path for both.
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError>;

    /// Applies every batch, in order, in ONE transaction: all rows of all
    /// batches commit, or none do. Since plugin-api 1.2: the host calls it
    /// for an event that one mapping writes into several tables (a payment
    /// into `HIS_payments` and the appointment's `paid` flag), and only if
    /// [`Writer::writes_batches_together`] says true.
    ///
    /// A row at fault is named with [`PluginError::with_row`] counting rows
    /// across the batches, in order: row 3 of the second batch, after a
    /// first batch of 10 rows, is 13 ([`WriteBatch::with_first_rows`] and
    /// [`PluginError::offset_row`] do the counting).
    ///
    /// The default writes one batch with [`Writer::write`], and refuses
    /// several with a permanent [`ErrorKind::UNSUPPORTED`] error: it cannot
    /// make two of `write`'s transactions one.
    fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        match batches {
            [] => Ok(()),
            [batch] => self.write(batch, deadline),
            _ => Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!(
                    "this plugin cannot write {} batches in one transaction (it does not implement \
                     Writer::write_all); a mapping that writes several tables per event needs it",
                    batches.len()
                ),
            )),
        }
    }

    /// Whether [`Writer::write_all`] really commits several batches in one
    /// transaction. The default is false, and the host then refuses at
    /// startup a mapping whose events write several tables. Say true only
    /// if a failure anywhere, a crash included, leaves none of the batches'
    /// rows committed.
    fn writes_batches_together(&self) -> bool {
        false
    }

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

/// A 1.1 writer as a host holds it: an owned, type-erased [`AbiWriter`].
pub type WriterBox = AbiWriter_TO<'static, RBox<()>>;

/// The ABI form of [`Writer`] (plugin-api 1.2): 1.1's [`AbiWriter`], and
/// [`Writer::write_all`] and [`Writer::writes_batches_together`]. Plugins
/// do not implement this by hand.
///
/// Frozen from 1.2 on: a new method means a new trait in a later minor
/// version (see "Versioning" in the crate docs).
#[sabi_trait]
pub trait AbiWriterV1_2: Send {
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
    fn close(&mut self) -> RResult<(), PluginError>;

    /// See [`Writer::write_all`].
    fn write_all(&mut self, batches: RSlice<'_, WriteBatch>, deadline: Deadline) -> RResult<(), PluginError>;

    /// See [`Writer::writes_batches_together`].
    #[sabi(last_prefix_field)]
    fn writes_batches_together(&self) -> bool;
}

/// A 1.2 writer as the host holds it: an owned, type-erased [`AbiWriterV1_2`].
pub type WriterBoxV1_2 = AbiWriterV1_2_TO<'static, RBox<()>>;

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

    /// An error for the first batch whose action the writer does not list.
    fn unlisted_action(&self, batches: &[WriteBatch]) -> Option<PluginError> {
        let supported = self.supported_actions();
        let (at, batch) = batches.iter().enumerate().find(|(_, batch)| !supported.contains(batch.action()))?;
        let which = match batches.len() {
            1 => String::new(),
            n => format!(" (batch {} of {n}, table {})", at + 1, batch.table()),
        };
        Some(PluginError::permanent(
            ErrorKind::UNSUPPORTED,
            format!("this plugin cannot {} rows (it does not list the action){which}", batch.action().name()),
        ))
    }

    fn together(&self) -> bool {
        let together = catch_unwind(AssertUnwindSafe(|| self.inner.as_ref().map(Writer::writes_batches_together)));
        together.ok().flatten().unwrap_or(false)
    }
}

impl<W: Writer> AbiWriter for Guarded<W> {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> RResult<(), PluginError> {
        if let Some(unlisted) = self.unlisted_action(std::slice::from_ref(batch)) {
            return RResult::RErr(unlisted);
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

/// What a 1.2 host calls.
impl<W: Writer> AbiWriterV1_2 for Guarded<W> {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> RResult<(), PluginError> {
        AbiWriter::write(self, batch, deadline)
    }

    fn ping(&mut self, deadline: Deadline) -> RResult<(), PluginError> {
        AbiWriter::ping(self, deadline)
    }

    fn describe_table(
        &mut self,
        table: RStr<'_>,
        deadline: Deadline,
    ) -> RResult<ROption<TableDescription>, PluginError> {
        AbiWriter::describe_table(self, table, deadline)
    }

    fn actions(&self) -> Actions {
        self.supported_actions()
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        AbiWriter::close(self)
    }

    fn write_all(&mut self, batches: RSlice<'_, WriteBatch>, deadline: Deadline) -> RResult<(), PluginError> {
        if let Some(unlisted) = self.unlisted_action(batches.as_slice()) {
            return RResult::RErr(unlisted);
        }
        self.call("write_all", |w| w.write_all(batches.as_slice(), deadline))
    }

    fn writes_batches_together(&self) -> bool {
        self.together()
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
    use abi_stable::std_types::{RString, RVec};

    use super::*;
    use crate::{Action, Value, ValueRef};

    fn batch(table: &str, action: Action, rows: usize) -> WriteBatch {
        let values: RVec<Value> = (0..rows as i64).map(Value::int).collect();
        WriteBatch::new(table, action, vec![RString::from("id")].into(), vec![RString::from("id")].into(), values)
    }

    /// A writer that records what it was asked, and refuses the row whose
    /// id is `refuse` in any batch, numbering it across the batches.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<String>,
        refuse: Option<i64>,
        together: bool,
        actions: Option<Actions>,
    }

    impl Recorder {
        fn refused(&self, batch: &WriteBatch) -> Result<(), PluginError> {
            let at = batch.values().iter().position(|v| matches!(v.get(), ValueRef::Int(i) if Some(i) == self.refuse));
            match at {
                Some(row) => Err(PluginError::permanent(ErrorKind::DATA, "refused").with_row(row)),
                None => Ok(()),
            }
        }
    }

    impl Writer for Recorder {
        fn write(&mut self, batch: &WriteBatch, _deadline: Deadline) -> Result<(), PluginError> {
            self.writes.push(format!("write {}", batch.table()));
            self.refused(batch)
        }
        fn ping(&mut self, _deadline: Deadline) -> Result<(), PluginError> {
            Ok(())
        }
        fn describe_table(&mut self, _: &str, _: Deadline) -> Result<Option<TableDescription>, PluginError> {
            Ok(None)
        }
        fn actions(&self) -> Actions {
            self.actions.unwrap_or(Actions::ALL_1_1)
        }
        fn writes_batches_together(&self) -> bool {
            self.together
        }
    }

    /// A Recorder that implements write_all as a plugin should.
    struct Together(Recorder);

    impl Writer for Together {
        fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
            self.write_all(std::slice::from_ref(batch), deadline)
        }
        fn write_all(&mut self, batches: &[WriteBatch], _deadline: Deadline) -> Result<(), PluginError> {
            for (first_row, batch) in WriteBatch::with_first_rows(batches) {
                self.0.writes.push(format!("part of one transaction: {}", batch.table()));
                self.0.refused(batch).map_err(|e| e.offset_row(first_row))?;
            }
            Ok(())
        }
        fn ping(&mut self, deadline: Deadline) -> Result<(), PluginError> {
            self.0.ping(deadline)
        }
        fn describe_table(&mut self, t: &str, d: Deadline) -> Result<Option<TableDescription>, PluginError> {
            self.0.describe_table(t, d)
        }
        fn actions(&self) -> Actions {
            self.0.actions()
        }
        fn writes_batches_together(&self) -> bool {
            true
        }
    }

    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    #[test]
    fn the_default_write_all_writes_one_batch_and_refuses_several() {
        let mut writer = Recorder { refuse: Some(3), ..Recorder::default() };
        assert!(!writer.writes_batches_together());
        assert!(writer.write_all(&[], soon()).is_ok());
        // One batch is `write`, its row numbers untouched.
        let e = writer.write_all(&[batch("a", Action::UPSERT, 5)], soon()).unwrap_err();
        assert_eq!((e.kind, e.row.into_option()), (ErrorKind::DATA, Some(3)));
        assert_eq!(writer.writes, ["write a"]);
        let e = writer.write_all(&[batch("a", Action::UPSERT, 1), batch("b", Action::UPSERT, 1)], soon()).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::UNSUPPORTED, false));
        assert!(e.message.contains("cannot write 2 batches in one transaction"), "{e}");
        assert_eq!(writer.writes, ["write a"], "nothing of several batches was written");
    }

    #[test]
    fn a_row_is_numbered_across_the_batches_through_the_guard() {
        // Row 3 of the second batch, after a first batch of 10 rows, is 13.
        let mut guarded = Guarded::new(Together(Recorder { refuse: Some(3), ..Recorder::default() }));
        let batches = [batch("a", Action::UPSERT, 3), batch("b", Action::INSERT, 10), batch("c", Action::DELETE, 2)];
        assert!(AbiWriterV1_2::writes_batches_together(&guarded));
        let e = AbiWriterV1_2::write_all(&mut guarded, batches.as_slice().into(), soon()).unwrap_err();
        assert_eq!((e.kind, e.row.into_option()), (ErrorKind::DATA, Some(3 + 3)));
        let first = [batch("a", Action::UPSERT, 10), batch("b", Action::UPSERT, 5)];
        let e = AbiWriterV1_2::write_all(&mut guarded, first.as_slice().into(), soon()).unwrap_err();
        assert_eq!(e.row.into_option(), Some(3), "row 3 of the first batch");
        let refuse_in_second = Guarded::new(Together(Recorder { refuse: Some(103), ..Recorder::default() }));
        let mut guarded = refuse_in_second;
        let second: Vec<Value> = (100..105).map(Value::int).collect();
        let second =
            WriteBatch::new("b", Action::UPSERT, vec!["id".into()].into(), vec!["id".into()].into(), second.into());
        let e =
            AbiWriterV1_2::write_all(&mut guarded, [batch("a", Action::UPSERT, 10), second].as_slice().into(), soon())
                .unwrap_err();
        assert_eq!(e.row.into_option(), Some(13));
    }

    #[test]
    fn the_guard_checks_the_action_of_every_batch() {
        let recorder =
            Recorder { actions: Some(Actions(Actions::UPSERT.0 | Action::INSERT.bit().0)), ..Recorder::default() };
        let mut guarded = Guarded::new(Together(recorder));
        let batches = [batch("a", Action::UPSERT, 1), batch("b", Action::INSERT, 1), batch("c", Action::DELETE, 1)];
        let e = AbiWriterV1_2::write_all(&mut guarded, batches.as_slice().into(), soon()).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::UNSUPPORTED, false));
        assert_eq!(
            e.message.as_str(),
            "this plugin cannot delete rows (it does not list the action) (batch 3 of 3, table c)"
        );
        assert!(guarded.inner.as_ref().unwrap().0.writes.is_empty(), "write_all was not called");
        assert!(AbiWriterV1_2::write_all(&mut guarded, batches[..2].into(), soon()).is_ok());
        assert_eq!(guarded.inner.as_ref().unwrap().0.writes.len(), 2);
        // And `write` of one such batch, as in 1.1.
        let e = AbiWriterV1_2::write(&mut guarded, &batches[2], soon()).unwrap_err();
        assert_eq!(e.message.as_str(), "this plugin cannot delete rows (it does not list the action)");
    }

    #[test]
    fn a_panic_in_write_all_or_the_capability_is_guarded() {
        struct Panicky;
        impl Writer for Panicky {
            fn write(&mut self, _: &WriteBatch, _: Deadline) -> Result<(), PluginError> {
                Ok(())
            }
            fn write_all(&mut self, _: &[WriteBatch], _: Deadline) -> Result<(), PluginError> {
                panic!("in write_all")
            }
            fn ping(&mut self, _: Deadline) -> Result<(), PluginError> {
                Ok(())
            }
            fn describe_table(&mut self, _: &str, _: Deadline) -> Result<Option<TableDescription>, PluginError> {
                Ok(None)
            }
            fn writes_batches_together(&self) -> bool {
                panic!("in writes_batches_together")
            }
        }
        let mut guarded = Guarded::new(Panicky);
        assert!(!AbiWriterV1_2::writes_batches_together(&guarded), "a panic says false");
        let e = AbiWriterV1_2::write_all(&mut guarded, [batch("a", Action::UPSERT, 1)].as_slice().into(), soon())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::PANIC);
        assert_eq!(e.message.as_str(), "the plugin panicked in write_all: in write_all");
    }

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
