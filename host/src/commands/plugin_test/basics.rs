//! The checks every plugin-api version answers: upserts, value types, a
//! large batch, an unknown table, `describe_table`, and the panic guard.

use std::time::{Duration, Instant};

use abi_stable::std_types::RString;
use his_plugin_api::{Action, ErrorKind, Value, ValueKind};

use buktor_middleware::plugins::HisWriter;

use super::{BIG_BATCH_FIRST_KEY, BIG_BATCH_ROWS, Kit, Verdict, batch, ddl};

impl Kit<'_> {
    /// Two new rows, upserted so that a run repeats. Returns whether they
    /// were written: the checks that write more rows need the table.
    pub(super) fn first_upsert(&mut self, writer: &mut HisWriter) -> bool {
        let rows = [vec![Value::int(1), Value::text("first")], vec![Value::int(2), Value::text("first")]];
        let upsert = batch(&self.table, Action::UPSERT, &["id", "label"], &rows);
        match writer.write(&upsert, self.deadline) {
            Ok(()) => {
                let detail = format!("2 rows (id 1 and 2) upserted into {}", self.table);
                self.report.record("upsert", Verdict::pass(detail));
                true
            }
            Err(e) => {
                let mut detail = self.error(&e);
                if e.kind == ErrorKind::SCHEMA {
                    let database_type = self.loaded.database_type();
                    detail.push_str(&format!("; create this table first: {}", ddl(database_type, &self.table)));
                }
                self.report.record("upsert", Verdict::fail(detail));
                false
            }
        }
    }

    /// The same key again, with another label.
    pub(super) fn upsert_by_key(&mut self, writer: &mut HisWriter) {
        let second =
            batch(&self.table, Action::UPSERT, &["id", "label"], &[vec![Value::int(1), Value::text("second")]]);
        let result = writer.write(&second, self.deadline);
        let table = self.table.clone();
        self.outcome("upsert by key", result, |()| {
            format!(
                "a second upsert of key id=1 (label 'first', then 'second') was accepted. Not verified by the kit: \
                 that {table} now holds one row for id 1, with label 'second' (the plugin ABI cannot read rows \
                 back); look at the table"
            )
        });
    }

    pub(super) fn value_types(&mut self, writer: &mut HisWriter) {
        let columns = ["id", "flag", "quantity", "amount", "ratio", "label", "happened_at", "born_on", "photo", "note"];
        let row = vec![
            Value::int(3),
            Value::bool(true),
            Value::int(-42),
            Value::decimal("1500.75"),
            Value::float(0.25),
            Value::text("Zoë's \"quoted\" text; DROP TABLE x"),
            Value::timestamp("2025-03-03T09:00:00"),
            Value::date("1990-05-17"),
            Value::bytes(vec![0, 1, 127, 255]),
            Value::null(),
        ];
        let kinds: Vec<&str> = row[1..].iter().map(|v| v.kind().name()).collect();
        let every = [
            ValueKind::NULL,
            ValueKind::BOOL,
            ValueKind::INT,
            ValueKind::DECIMAL,
            ValueKind::FLOAT,
            ValueKind::TEXT,
            ValueKind::TIMESTAMP,
            ValueKind::DATE,
            ValueKind::BYTES,
        ];
        debug_assert!(every.iter().all(|k| row.iter().any(|v| v.kind() == *k)), "every kind is in the row");
        let result = writer.write(&batch(&self.table, Action::UPSERT, &columns, &[row]), self.deadline);
        self.outcome("value types", result, |()| format!("one row (id 3) with {} values accepted", kinds.join(", ")));
    }

    pub(super) fn large_batch(&mut self, writer: &mut HisWriter) {
        let rows: Vec<Vec<Value>> = (0..BIG_BATCH_ROWS as i64)
            .map(|i| vec![Value::int(BIG_BATCH_FIRST_KEY + i), Value::text(format!("row {i}"))])
            .collect();
        let started = Instant::now();
        let result = writer.write(&batch(&self.table, Action::UPSERT, &["id", "label"], &rows), self.deadline);
        let took = started.elapsed();
        self.outcome("large batch", result, |()| {
            format!(
                "{BIG_BATCH_ROWS} rows × 2 columns = {} values in one batch (more than MySQL's 65,535 and SQL \
                 Server's 2,100 parameters per statement) written in {}",
                BIG_BATCH_ROWS * 2,
                seconds(took)
            )
        });
    }

    /// A write to a table that does not exist must not vanish: refused as
    /// a permanent schema error, or the table created by it. A plugin that
    /// accepts it, creates nothing and yet describes its other tables
    /// dropped the rows; one that describes no table at all may have no
    /// schema to miss, and the kit cannot tell.
    pub(super) fn unknown_table(&mut self, writer: &mut HisWriter) {
        const NAME: &str = "unknown table";
        match writer.describe_table(&self.missing, self.deadline) {
            Ok(None) => {}
            Ok(Some(_)) => {
                let detail = format!(
                    "table {} exists (a previous run with create_missing made it?): drop it, the check needs a \
                     table that does not exist",
                    self.missing
                );
                return self.report.record(NAME, Verdict::fail(detail));
            }
            Err(e) => {
                let error = self.error(&e);
                let detail = format!("describe_table({}) failed: {error}", self.missing);
                return self.report.record(NAME, Verdict::fail(detail));
            }
        }
        let row = [vec![Value::int(1), Value::text("x")]];
        let verdict = match writer.write(&batch(&self.missing, Action::UPSERT, &["id", "label"], &row), self.deadline) {
            Err(e) if e.kind == ErrorKind::SCHEMA && !e.retryable => {
                Verdict::pass(format!("refused as a permanent schema error: {e}"))
            }
            Err(e) => Verdict::fail(format!("expected a permanent schema error, got {}", self.error(&e))),
            Ok(()) => match writer.describe_table(&self.missing, self.deadline) {
                Ok(Some(_)) => Verdict::pass(format!(
                    "the plugin created {} on the write (as database.create_missing does), so the row went \
                     somewhere; drop it",
                    self.missing
                )),
                _ if self.describes_tables => Verdict::fail(format!(
                    "a write to {}, which does not exist, was accepted, and the table was not created (the plugin \
                     describes {} but not {}): the rows went nowhere. A missing table must be a permanent schema \
                     error, so that the host keeps the events",
                    self.missing, self.table, self.missing
                )),
                _ => Verdict::not_verified(format!(
                    "the write to {} was accepted and the plugin describes no tables, so it may have no schema to \
                     miss; the kit cannot tell this from a plugin that drops such rows",
                    self.missing
                )),
            },
        };
        self.report.record(NAME, verdict);
    }

    pub(super) fn describe(&mut self, writer: &mut HisWriter) {
        const NAME: &str = "describe_table";
        let verdict = match writer.describe_table(&self.table, self.deadline) {
            Ok(Some(table)) => {
                let key_is_unique = table.primary_key.iter().map(RString::as_str).eq(["id"])
                    || table.unique_keys.iter().any(|key| key.iter().map(RString::as_str).eq(["id"]));
                let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                let detail = format!(
                    "{}: {} columns ({}), primary key ({})",
                    table.name,
                    columns.len(),
                    columns.join(", "),
                    table.primary_key.iter().map(RString::as_str).collect::<Vec<_>>().join(", ")
                );
                if key_is_unique {
                    Verdict::pass(format!("{detail}; id is a unique key"))
                } else {
                    Verdict::fail(format!("{detail}: id, the upsert key, is neither the primary key nor a unique key"))
                }
            }
            Ok(None) if self.table_written => Verdict::pass(format!(
                "None for {}, which was just written: the plugin does not describe tables (allowed; `check` will \
                 report each mapped table as missing)",
                self.table
            )),
            Ok(None) => Verdict::fail(format!("None: there is no table {} (see upsert)", self.table)),
            Err(e) => Verdict::fail(self.error(&e)),
        };
        self.report.record(NAME, verdict);
    }

    /// What the kit can say about the plugin's panic guard.
    ///
    /// The kit cannot make an arbitrary plugin panic, so it does not claim
    /// to have tested the guard. What holds: this process is still running,
    /// so no panic unwound across the boundary unguarded during the run
    /// (that aborts the process), and any panic the guard caught came back
    /// as an [`ErrorKind::PANIC`] error, counted here. What is relied on,
    /// not verified: that the library was built with `export_plugin!`,
    /// which in every plugin-api 1.x runs `open_writer` and every writer
    /// call inside `guard`. A library that fills in its `PluginModule` by
    /// hand has no guard, and the kit cannot tell. buktor's own tests check
    /// the guard itself with a plugin that panics on demand.
    pub(super) fn panic_guard(&mut self) {
        let verdict = if self.panics == 0 {
            Verdict::pass(format!(
                "not forced (the kit cannot make a plugin panic). Seen: no call panicked during this run. Relied \
                 on, not verified: plugin-api {}'s export_plugin! turns a panic in any entry point into a \
                 permanent panic error, if the library was built with it",
                self.plugin.abi_version
            ))
        } else {
            Verdict::fail(format!(
                "the plugin panicked {} time(s) on the input above; its guard turned each into an error, but a \
                 panic on ordinary input is a bug",
                self.panics
            ))
        };
        self.report.record("panic guard", verdict);
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}
