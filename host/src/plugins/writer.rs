//! An open writer, whatever plugin-api version its plugin was built
//! against: every call takes a deadline, is watched (`plugins/watchdog.rs`),
//! and a 1.0 writer is adapted.

use std::time::Instant;

use abi_stable::std_types::RStr;
use his_plugin_api::{Actions, Deadline, ErrorKind, PluginError, TableDescription, WriteBatch, WriterBox, v1_0};

use super::watchdog::watch;

/// An open writer as the host uses it.
pub enum HisWriter {
    /// A writer of plugin-api 1.0: upserts of whole rows, no deadline
    /// (its own statement timeout bounds it).
    V1_0(v1_0::WriterBox),
    /// A writer of plugin-api 1.1 or newer.
    Current(WriterBox),
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
            Self::Current(writer) => writer.write(batch, deadline).into_result(),
        });
        overran(&what, started, deadline, result)
    }

    /// Checks that the HIS answers, within `deadline`.
    pub fn ping(&mut self, deadline: Deadline) -> Result<(), PluginError> {
        let started = Instant::now();
        let result = watch("a ping", deadline, || match self {
            Self::V1_0(writer) => writer.ping().into_result(),
            Self::Current(writer) => writer.ping(deadline).into_result(),
        });
        overran("the ping", started, deadline, result)
    }

    /// Describes `table` (`None`: it does not exist), within `deadline`.
    pub fn describe_table(&mut self, table: &str, deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
        let started = Instant::now();
        let result = watch(&format!("describing {table}"), deadline, || match self {
            Self::V1_0(writer) => writer.describe_table(RStr::from_str(table)).into_result(),
            Self::Current(writer) => writer.describe_table(RStr::from_str(table), deadline).into_result(),
        });
        overran(&format!("describing {table}"), started, deadline, result.map(Into::into))
    }

    /// The actions this writer carries out.
    pub fn actions(&self) -> Actions {
        match self {
            Self::V1_0(_) => Actions::UPSERT,
            Self::Current(writer) => writer.actions(),
        }
    }

    /// Whether it leaves a partial row's absent columns untouched
    /// (plugin-api 1.1 and newer).
    pub fn takes_partial_rows(&self) -> bool {
        matches!(self, Self::Current(_))
    }

    /// Closes its connections.
    pub fn close(&mut self) -> Result<(), PluginError> {
        match self {
            Self::V1_0(writer) => writer.close().into_result(),
            Self::Current(writer) => writer.close().into_result(),
        }
    }
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

    use super::*;

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
