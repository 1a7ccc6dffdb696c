//! An open writer, whatever plugin-api version its plugin was built
//! against: every call takes a deadline, is watched (`plugins/watchdog.rs`),
//! and an older writer is adapted (a 1.0 writer upserts whole rows only; a
//! 1.0 or 1.1 writer takes one batch per transaction).

use std::time::Instant;

use abi_stable::std_types::RStr;
use his_plugin_api::{
    Actions, Deadline, ErrorKind, PluginError, TableDescription, WriteBatch, WriterBox, WriterBoxV1_2, v1_0,
};

use super::watchdog::watch;

/// An open writer as the host uses it.
pub enum HisWriter {
    /// A writer of plugin-api 1.0: upserts of whole rows, no deadline
    /// (its own statement timeout bounds it).
    V1_0(v1_0::WriterBox),
    /// A writer of plugin-api 1.1's interface ([`his_plugin_api::AbiWriter`]):
    /// a 1.1 plugin's, or one made in this process (the simulation's fake
    /// HIS, in most schedules). One batch per transaction.
    V1_1(WriterBox),
    /// A writer of plugin-api 1.2 or newer: also several batches in one
    /// transaction ([`HisWriter::write_all`]).
    V1_2(WriterBoxV1_2),
}

impl HisWriter {
    /// Applies `batch` within `deadline`. A failure that came after the
    /// deadline is a retryable [`ErrorKind::TIMEOUT`], whatever the plugin
    /// called it; a success that came late is kept (it is committed; writing
    /// it again would be wrong for an insert) and logged.
    pub fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
        let started = Instant::now();
        let what = format!("the write to {}", batch.table());
        let result = watch(&what, deadline, || match self {
            Self::V1_0(writer) => v1_0::from_write_batch(batch).and_then(|old| writer.upsert(&old).into_result()),
            Self::V1_1(writer) => writer.write(batch, deadline).into_result(),
            Self::V1_2(writer) => writer.write(batch, deadline).into_result(),
        });
        overran(&what, started, deadline, result)
    }

    /// Applies every batch, in order, in ONE transaction, within
    /// `deadline`: all rows commit, or none. A row at fault is named
    /// counting rows across the batches (row 3 of the second batch, after a
    /// first batch of 10 rows, is 13). Watched and judged against the
    /// deadline as [`HisWriter::write`] is.
    ///
    /// One batch goes through [`HisWriter::write`], whatever the version.
    /// A writer of plugin-api 1.0 or 1.1 takes exactly one; several are a
    /// permanent [`ErrorKind::UNSUPPORTED`] error,
    /// as they are from a 1.2 writer that does not write batches together
    /// ([`HisWriter::writes_batches_together`], which the host checks at
    /// startup).
    pub fn write_all(&mut self, batches: &[WriteBatch], deadline: Deadline) -> Result<(), PluginError> {
        let older = match self {
            Self::V1_0(_) => Some("1.0"),
            Self::V1_1(_) => Some("1.1"),
            Self::V1_2(_) => None,
        };
        match (batches, older) {
            ([], _) => return Ok(()),
            // One batch is `write`, whatever the version: the same
            // transaction (a 1.2 plugin's `write` is `write_all` of one
            // batch), the same messages as before 1.2.
            ([batch], _) => return self.write(batch, deadline),
            (_, Some(version)) => {
                return Err(PluginError::permanent(
                    ErrorKind::UNSUPPORTED,
                    format!(
                        "the plugin was built against plugin-api {version}, which cannot write several batches \
                         ({}) in one transaction (write_all needs plugin-api 1.2); rebuild it against 1.2",
                        tables(batches)
                    ),
                ));
            }
            (_, None) => {}
        }
        let started = Instant::now();
        let what = format!("the write to {}", tables(batches));
        let result = watch(&what, deadline, || match self {
            Self::V1_2(writer) => writer.write_all(batches.into(), deadline).into_result(),
            _ => unreachable!("older writers returned above"),
        });
        overran(&what, started, deadline, result)
    }

    /// Whether [`HisWriter::write_all`] commits several batches in one
    /// transaction: what a mapping whose events write several tables needs.
    /// False for writers of plugin-api 1.0 and 1.1.
    pub fn writes_batches_together(&self) -> bool {
        match self {
            Self::V1_0(_) | Self::V1_1(_) => false,
            Self::V1_2(writer) => writer.writes_batches_together(),
        }
    }

    /// Checks that the HIS answers, within `deadline`.
    pub fn ping(&mut self, deadline: Deadline) -> Result<(), PluginError> {
        let started = Instant::now();
        let result = watch("a ping", deadline, || match self {
            Self::V1_0(writer) => writer.ping().into_result(),
            Self::V1_1(writer) => writer.ping(deadline).into_result(),
            Self::V1_2(writer) => writer.ping(deadline).into_result(),
        });
        overran("the ping", started, deadline, result)
    }

    /// Describes `table` (`None`: it does not exist), within `deadline`.
    pub fn describe_table(&mut self, table: &str, deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        let started = Instant::now();
        let result = watch(&format!("describing {table}"), deadline, || match self {
            Self::V1_0(writer) => writer.describe_table(RStr::from_str(table)).into_result(),
            Self::V1_1(writer) => writer.describe_table(RStr::from_str(table), deadline).into_result(),
            Self::V1_2(writer) => writer.describe_table(RStr::from_str(table), deadline).into_result(),
        });
        overran(&format!("describing {table}"), started, deadline, result.map(Into::into))
    }

    /// The actions this writer carries out.
    pub fn actions(&self) -> Actions {
        match self {
            Self::V1_0(_) => Actions::UPSERT,
            Self::V1_1(writer) => writer.actions(),
            Self::V1_2(writer) => writer.actions(),
        }
    }

    /// Whether it leaves a partial row's absent columns untouched
    /// (plugin-api 1.1 and newer).
    pub fn takes_partial_rows(&self) -> bool {
        matches!(self, Self::V1_1(_) | Self::V1_2(_))
    }

    /// Closes its connections.
    pub fn close(&mut self) -> Result<(), PluginError> {
        match self {
            Self::V1_0(writer) => writer.close().into_result(),
            Self::V1_1(writer) => writer.close().into_result(),
            Self::V1_2(writer) => writer.close().into_result(),
        }
    }
}

/// The batches' tables, for messages: `HIS_payments, HIS_appointments`.
fn tables(batches: &[WriteBatch]) -> String {
    batches.iter().map(WriteBatch::table).collect::<Vec<_>>().join(", ")
}

/// `result` of a call that started at `started`, judged against its
/// deadline.
fn overran<T>(
    what: &str,
    started: Instant,
    deadline: Deadline,
    result: Result<T, PluginError>,
) -> Result<T, PluginError> {
    let took = started.elapsed();
    if took <= deadline.budget() {
        return result;
    }
    match result {
        Ok(value) => {
            tracing::warn!(
                "{what} took {} ms, beyond its deadline of {} ms; it succeeded and is kept. The plugin should \
                 bound its statements by the deadline it is given",
                took.as_millis(),
                deadline.budget().as_millis()
            );
            Ok(value)
        }
        Err(e) if e.kind == ErrorKind::TIMEOUT && e.retryable => Err(e),
        Err(e) => Err(PluginError {
            kind: ErrorKind::TIMEOUT,
            retryable: true,
            message: format!(
                "{what} overran its deadline of {} ms (it took {} ms) and then failed: {}",
                deadline.budget().as_millis(),
                took.as_millis(),
                e.message
            )
            .into(),
            ..e
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{ROption, RResult, RString},
    };
    use his_plugin_api::{AbiWriter, AbiWriter_TO, Action, Value};

    use super::*;

    /// A 1.1 writer that counts the batches it was given.
    struct Counting(usize);

    impl AbiWriter for Counting {
        fn write(&mut self, _: &WriteBatch, _: Deadline) -> RResult<(), PluginError> {
            self.0 += 1;
            RResult::ROk(())
        }
        fn ping(&mut self, _: Deadline) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn describe_table(&mut self, _: RStr<'_>, _: Deadline) -> RResult<ROption<TableDescription>, PluginError> {
            // The count, as a table name: what the test reads back.
            let count = TableDescription {
                name: self.0.to_string().into(),
                columns: Default::default(),
                primary_key: Default::default(),
                unique_keys: Default::default(),
            };
            RResult::ROk(ROption::RSome(count))
        }
        fn actions(&self) -> Actions {
            Actions::ALL_1_1
        }
        fn close(&mut self) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
    }

    #[test]
    fn a_1_1_writer_takes_one_batch_of_write_all_and_refuses_several() {
        let mut writer = HisWriter::V1_1(AbiWriter_TO::from_value(Counting(0), TD_Opaque));
        let deadline = Deadline::after(Duration::from_secs(5));
        let batch = |table: &str| {
            let id = vec![RString::from("id")];
            WriteBatch::new(table, Action::UPSERT, id.clone().into(), id.into(), vec![Value::int(1)].into())
        };
        assert!(!writer.writes_batches_together());
        writer.write_all(&[batch("a")], deadline).unwrap();
        writer.write_all(&[], deadline).unwrap();
        let e = writer.write_all(&[batch("a"), batch("b")], deadline).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::UNSUPPORTED, false));
        assert!(
            e.message.starts_with("the plugin was built against plugin-api 1.1, which cannot write several"),
            "{e}"
        );
        assert!(e.message.contains("(a, b)"), "{e}");
        let count = writer.describe_table("t", deadline).unwrap().unwrap();
        assert_eq!(count.name.as_str(), "1", "one batch written, nothing of the two");
    }

    #[test]
    fn a_failure_after_the_deadline_is_a_retryable_timeout_and_a_late_success_is_kept() {
        let long_ago = Instant::now() - Duration::from_secs(10);
        let deadline = Deadline::after(Duration::from_secs(1));
        let refused = PluginError::permanent(ErrorKind::DATA, "value too long").with_code("1406");
        let e = overran("the write to t", long_ago, deadline, Err::<(), _>(refused.clone())).unwrap_err();
        assert_eq!((e.kind, e.retryable, e.code.as_str()), (ErrorKind::TIMEOUT, true, "1406"));
        assert!(e.message.starts_with("the write to t overran its deadline of 1000 ms"), "{e}");
        assert!(overran("w", long_ago, deadline, Ok(7)).is_ok());
        // In time, an error is what the plugin said.
        let e = overran("w", Instant::now(), deadline, Err::<(), _>(refused)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DATA);
    }
}
