//! The write_all check (plugin-api 1.2): two batches, into the kit's table
//! and its values table, in one transaction, observed through inserts as
//! the write actions are (see `actions.rs`).
//!
//! First a batch of id 20 and a batch of one values row, written together:
//! an insert of each then must be refused (both committed). Then a batch of
//! ids 21 and 22 (new) and a batch of a new values row and the one just
//! written (existing): refused with a DATA error naming row 3 (row 1 of the
//! second batch, after the first batch's 2 rows), and an insert of id 21
//! then succeeds: nothing of the first batch was committed. Ids 20–22 and
//! the check's values rows are deleted before and after, so that a run
//! repeats and leaves the tables as the other checks left them.

use his_plugin_api::{Action, Value, WriteBatch};

use buktor_middleware::plugins::HisWriter;

use super::{
    Checked, Kit, Outcome, Refusal, Verdict, batch,
    values::{FILLER_DATE, FILLER_DECIMAL, FILLER_TIMESTAMP, row},
};

/// The check's name in the report.
pub(super) const NAME: &str = "write_all: two tables in one transaction";

/// The ids of the kit's table this check writes.
const IDS: [i64; 3] = [20, 21, 22];

/// The values row the first write commits (`kind` is part of the key).
fn committed() -> Vec<Value> {
    values_row("write_all", "committed with id 20")
}

/// The new values row of the refused write.
fn refused() -> Vec<Value> {
    values_row("write_all refused", "must not be committed")
}

fn values_row(kind: &str, label: &str) -> Vec<Value> {
    let (timestamp, decimal, date) =
        (Value::timestamp(FILLER_TIMESTAMP), Value::decimal(FILLER_DECIMAL), Value::date(FILLER_DATE));
    row(kind, timestamp, decimal, date, label)
}

impl Kit<'_> {
    /// The check, recorded as [`NAME`].
    pub(super) fn write_all(&mut self, writer: &mut HisWriter) {
        let verdict = self.two_tables(writer).unwrap_or_else(|verdict| verdict);
        self.report.record(NAME, verdict);
    }

    fn two_tables(&mut self, writer: &mut HisWriter) -> Checked {
        if !writer.writes_batches_together() {
            let abi = &self.plugin.abi_version;
            let why = if abi.starts_with("1.0.") || abi.starts_with("1.1.") {
                format!("the plugin was built against plugin-api {abi}, which has no write_all (plugin-api 1.2)")
            } else {
                "the plugin says it does not write several batches in one transaction \
                 (Writer::writes_batches_together is false)"
                    .to_string()
            };
            return Err(Verdict::not_verified(format!(
                "{why}; the host refuses at startup a mapping whose events write several tables"
            )));
        }
        if !self.table_written {
            return Err(Verdict::fail("not run: the upsert failed"));
        }
        let values_written = self.report.results.iter().any(|r| r.name == "values table" && r.outcome == Outcome::Pass);
        if !values_written {
            return Err(Verdict::fail(format!("not run: {} cannot be written (see values table)", self.values)));
        }
        self.unlisted(writer, Action::INSERT)?;
        self.unlisted(writer, Action::DELETE)?;
        self.clear_write_all(writer)?;
        let verdict = self.commit_and_refuse(writer);
        self.clear_write_all(writer)?;
        verdict
    }

    fn commit_and_refuse(&mut self, writer: &mut HisWriter) -> Checked {
        let together =
            [self.rows(Action::UPSERT, &[(20, "write_all")]), self.values_batch(Action::UPSERT, &[committed()])];
        let done = format!("a write_all of id 20 into {} and a row into {} was accepted", self.table, self.values);
        self.write_together(writer, &together, &done)?;
        if !self.inserts_refuse_existing {
            return Err(Verdict::not_verified(format!(
                "{done}; the kit observes its effect by inserting the keys, and this plugin did not refuse an \
                 insert of an existing key (see insert)"
            )));
        }
        if !self.had_row(writer, 20)? {
            return Err(Verdict::fail(format!("{done}, but an insert of id 20 then succeeded: it was not committed")));
        }
        let probe = self.values_batch(Action::INSERT, &[committed()]);
        if !self.refused(writer, &probe, &format!("an insert of the write_all row into {}", self.values), 0)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of its row into {} then succeeded: the second batch was not committed",
                self.values
            )));
        }

        let what = format!(
            "a write_all of ids 21 and 22 (new) into {} and of a new row and the row just written (existing) into {}",
            self.table, self.values
        );
        let refused_write = [
            self.rows(Action::INSERT, &[(21, "write_all"), (22, "write_all")]),
            self.values_batch(Action::INSERT, &[refused(), committed()]),
        ];
        let row = match writer.write_all(&refused_write, self.deadline) {
            Ok(()) => {
                return Err(Verdict::fail(format!(
                    "{what} was accepted: an insert of a key that has a row must fail with a DATA error"
                )));
            }
            Err(e) if e.kind == his_plugin_api::ErrorKind::DATA => {
                let row = e.row.into_option();
                self.refusals.push(Refusal { what: what.clone(), expected: 3, row });
                row
            }
            Err(e) => return Err(Verdict::fail(format!("{what}: expected a DATA error, got {}", self.error(&e)))),
        };
        if self.had_row(writer, 21)? {
            return Err(Verdict::fail(format!(
                "{what} was refused, but an insert of id 21 then was refused too: the first batch was committed \
                 although the second was refused. write_all is one transaction: all batches or none"
            )));
        }
        if row != Some(3) {
            let named = row.map_or("no row".to_string(), |row| format!("row {row}"));
            return Err(Verdict::fail(format!(
                "{what} was refused and rolled back, but the error named {named}: it must name row 3, counting \
                 rows across the batches (row 1 of the second batch, after the first batch's 2 rows)"
            )));
        }
        Ok(Verdict::pass(format!(
            "{done}, and inserts of both keys were then refused: both committed. Then {what} was refused with a DATA \
             error naming row 3 (across the batches), and an insert of id 21 succeeded: nothing of the first batch \
             was committed"
        )))
    }

    fn write_together(&mut self, writer: &mut HisWriter, batches: &[WriteBatch], what: &str) -> Result<(), Verdict> {
        writer
            .write_all(batches, self.deadline)
            .map_err(|e| Verdict::fail(format!("{what} failed: {}", self.error(&e))))
    }

    /// Deletes [`IDS`] and the check's values rows (most without a row).
    fn clear_write_all(&mut self, writer: &mut HisWriter) -> Result<(), Verdict> {
        let ids: Vec<Vec<Value>> = IDS.iter().map(|&id| vec![Value::int(id)]).collect();
        let delete = batch(&self.table, Action::DELETE, &["id"], &ids);
        self.write(writer, &delete, "a delete of ids 20–22")?;
        let keys: Vec<Vec<Value>> = [committed(), refused()]
            .into_iter()
            .map(|mut r| {
                r.truncate(4);
                r
            })
            .collect();
        let delete = super::keyed_batch(&self.values, Action::DELETE, &super::values::COLUMNS[..4], 4, &keys);
        self.write(writer, &delete, &format!("a delete of the write_all rows of {}", self.values))
    }
}
