//! The write actions of plugin-api 1.1, each observed through an insert.
//!
//! The kit cannot read a row back, but an insert tells whether a key has a
//! row: refused with a DATA error, it has one; accepted, it had none. So
//! each check does its action, then inserts the key it touched and judges
//! by the answer. The `insert` check comes first and establishes that the
//! plugin refuses an existing key at all; the others need it.
//!
//! The checks use ids 10–17 of the kit's table, and start by deleting ids
//! 10–19 (whatever an earlier run left; a key without a row is no error
//! for a delete), so that every run starts from the same state.

use his_plugin_api::{Action, IfMissing, Value};

use buktor_middleware::plugins::HisWriter;

use super::{Checked, Kit, Outcome, Verdict, batch};

/// The checks of this file, in order.
pub(super) const CHECKS: [&str; 8] = [
    "insert",
    "atomic batch",
    "update or error",
    "update or ignore",
    "update or insert",
    "delete",
    "soft_delete",
    "partial rows",
];

/// The ids these checks write, deleted before they start.
const IDS: std::ops::RangeInclusive<i64> = 10..=19;

impl<'a> Kit<'a> {
    /// Every check of [`CHECKS`], after the delete that clears their ids.
    pub(super) fn actions(&mut self, writer: &mut HisWriter) {
        if let Err(cleared) = self.clear_ids(writer) {
            let (first, last) = (IDS.start(), IDS.end());
            let others = match cleared.outcome {
                Outcome::NotVerified => Verdict::not_verified(format!(
                    "these checks start with a delete of ids {first}–{last}, which the plugin does not list (see delete)"
                )),
                _ => Verdict::fail(format!("not run: the delete of ids {first}–{last} failed (see delete)")),
            };
            for name in CHECKS {
                self.report.record(name, if name == "delete" { cleared.clone() } else { others.clone() });
            }
            return;
        }
        let checks: [fn(&mut Self, &mut HisWriter) -> Checked; 8] = [
            Kit::insert,
            Kit::atomic_batch,
            Kit::update_or_error,
            Kit::update_or_ignore,
            Kit::update_or_insert,
            Kit::delete,
            Kit::soft_delete,
            Kit::partial_rows,
        ];
        for (name, check) in CHECKS.into_iter().zip(checks) {
            let verdict = check(self, writer).unwrap_or_else(|verdict| verdict);
            self.report.record(name, verdict);
        }
    }

    /// Deletes [`IDS`], most of which have no row.
    fn clear_ids(&mut self, writer: &mut HisWriter) -> Result<(), Verdict> {
        self.unlisted(writer, Action::DELETE)?;
        let keys: Vec<Vec<Value>> = IDS.map(|id| vec![Value::int(id)]).collect();
        let delete = batch(&self.table, Action::DELETE, &["id"], &keys);
        let what = format!("a delete of ids {}–{} (left by an earlier run, or without a row)", IDS.start(), IDS.end());
        self.write(writer, &delete, &what)
    }

    /// Not verified when the writer does not list `action`: the host
    /// refuses a mapping that needs it, so nothing depends on it.
    pub(super) fn unlisted(&self, writer: &HisWriter, action: Action) -> Result<(), Verdict> {
        if writer.actions().contains(action) {
            return Ok(());
        }
        Err(Verdict::not_verified(format!(
            "the plugin does not list {} ({:?}) in Writer::actions; the host refuses at startup a mapping that needs \
             it",
            action.name(),
            action.get()
        )))
    }

    /// Not verified unless the `insert` check saw an existing key refused:
    /// every observation below goes through such a refusal.
    fn observable(&self, done: &str) -> Result<(), Verdict> {
        if self.inserts_refuse_existing {
            return Ok(());
        }
        Err(Verdict::not_verified(format!(
            "{done}; the kit observes its effect by inserting the key, and this plugin did not refuse an insert of \
             an existing key (see insert)"
        )))
    }

    /// Whether `id` had a row, observed by inserting it: refused with a
    /// DATA error, it had one; accepted, it had none (and has one now).
    pub(super) fn had_row(&mut self, writer: &mut HisWriter, id: i64) -> Result<bool, Verdict> {
        let insert = self.rows(Action::INSERT, &[(id, "probe")]);
        self.refused(writer, &insert, &format!("an insert of id {id}"), 0)
    }

    /// A batch of `(id, label)` rows for the kit's table.
    pub(super) fn rows(&self, action: Action, rows: &[(i64, &str)]) -> his_plugin_api::WriteBatch {
        let rows: Vec<Vec<Value>> = rows.iter().map(|&(id, label)| vec![Value::int(id), Value::text(label)]).collect();
        batch(&self.table, action, &["id", "label"], &rows)
    }

    /// Id 10 is inserted; then a batch of 11 (new) and 10 (existing) must
    /// be refused with a DATA error: an insert never overwrites.
    fn insert(&mut self, writer: &mut HisWriter) -> Checked {
        self.unlisted(writer, Action::INSERT)?;
        self.write(writer, &self.rows(Action::INSERT, &[(10, "inserted")]), "an insert of id 10, a new key")?;
        let what = "an insert of ids 11 (new) and 10 (existing)";
        let both = self.rows(Action::INSERT, &[(11, "inserted"), (10, "inserted again")]);
        if self.refused(writer, &both, what, 1)? {
            self.inserts_refuse_existing = true;
            return Ok(Verdict::pass(format!(
                "id 10 inserted; then {what} was refused with a DATA error, as an insert whose key has a row must be \
                 (never an overwrite). The checks below observe through such refusals"
            )));
        }
        Err(self.not_refused(what, "an insert of a key that has a row must fail with a DATA error for that row"))
    }

    /// After the refused batch of `insert`, id 11 (its row 0) has no row:
    /// a batch is one transaction, all rows or none.
    fn atomic_batch(&mut self, writer: &mut HisWriter) -> Checked {
        if !self.inserts_refuse_existing {
            return Err(Verdict::not_verified(
                "observed after the insert check's batch of ids 11 (new) and 10 (existing) is refused, and this \
                 plugin did not refuse it (see insert)",
            ));
        }
        if self.had_row(writer, 11)? {
            return Err(Verdict::fail(
                "after the batch of ids 11 (new) and 10 (existing) was refused, an insert of id 11 alone was \
                 refused too: row 0 of the refused batch was committed. A batch is one transaction: all its rows \
                 or none, or the host, writing it again, meets half of it",
            ));
        }
        Ok(Verdict::pass(
            "after the batch of ids 11 (new) and 10 (existing) was refused, an insert of id 11 alone succeeded: \
             nothing of the refused batch was committed",
        ))
    }

    /// Id 10 (which has a row) is updated; id 12 (which has none) is
    /// refused with a DATA error.
    fn update_or_error(&mut self, writer: &mut HisWriter) -> Checked {
        let action = Action::update(IfMissing::Error);
        self.unlisted(writer, action)?;
        self.write(writer, &self.rows(action, &[(10, "updated")]), "an update of id 10 (a row)")?;
        let what = "an update (IfMissing::Error) of id 12 (no row)";
        if self.refused(writer, &self.rows(action, &[(12, "updated")]), what, 0)? {
            return Ok(Verdict::pass(format!("id 10 updated; {what} was refused with a DATA error")));
        }
        Err(self.not_refused(what, "IfMissing::Error makes a key without a row a DATA error for that row"))
    }

    /// An update of id 13 (no row) and 10 is accepted, and 13 still has
    /// no row: skipped, not inserted.
    fn update_or_ignore(&mut self, writer: &mut HisWriter) -> Checked {
        let action = Action::update(IfMissing::Ignore);
        self.unlisted(writer, action)?;
        let done = "an update (IfMissing::Ignore) of ids 13 (no row) and 10 was accepted";
        self.write(writer, &self.rows(action, &[(13, "ignored"), (10, "updated")]), done)?;
        self.observable(done)?;
        if self.had_row(writer, 13)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of id 13 was then refused as existing: the update inserted the row it should \
                 have skipped"
            )));
        }
        Ok(Verdict::pass(format!("{done}; an insert of id 13 then succeeded: the update skipped it")))
    }

    /// An update of id 14 (no row) inserts it.
    fn update_or_insert(&mut self, writer: &mut HisWriter) -> Checked {
        let action = Action::update(IfMissing::Insert);
        self.unlisted(writer, action)?;
        let done = "an update (IfMissing::Insert) of id 14 (no row) was accepted";
        self.write(writer, &self.rows(action, &[(14, "inserted by update")]), done)?;
        self.observable(done)?;
        if self.had_row(writer, 14)? {
            return Ok(Verdict::pass(format!(
                "{done}; an insert of id 14 was then refused as existing: the update inserted it"
            )));
        }
        Err(Verdict::fail(format!("{done}, but an insert of id 14 then succeeded: the update did not insert the row")))
    }

    /// Id 15 is upserted and deleted (with 16, which has no row); then it
    /// has no row.
    fn delete(&mut self, writer: &mut HisWriter) -> Checked {
        self.write(writer, &self.rows(Action::UPSERT, &[(15, "to delete")]), "an upsert of id 15")?;
        let keys = [vec![Value::int(15)], vec![Value::int(16)]];
        let done = format!(
            "ids {}–{}, most without a row, were deleted before these checks, and a delete of ids 15 and 16 (no \
             row) was accepted: a key without a row is no error",
            IDS.start(),
            IDS.end()
        );
        self.write(writer, &batch(&self.table, Action::DELETE, &["id"], &keys), &done)?;
        self.observable(&done)?;
        if self.had_row(writer, 15)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of id 15 was then refused as existing: the row was not deleted"
            )));
        }
        Ok(Verdict::pass(format!("{done}; an insert of id 15 then succeeded: its row was gone")))
    }

    /// A soft delete of id 10 and 16 (no row) sets a column and nothing
    /// else: 10 keeps its row, 16 gets none.
    fn soft_delete(&mut self, writer: &mut HisWriter) -> Checked {
        self.unlisted(writer, Action::SOFT_DELETE)?;
        let rows =
            [vec![Value::int(10), Value::text("soft-deleted")], vec![Value::int(16), Value::text("soft-deleted")]];
        let done = "a soft delete (note = 'soft-deleted') of ids 10 and 16 (no row) was accepted";
        self.write(writer, &batch(&self.table, Action::SOFT_DELETE, &["id", "note"], &rows), done)?;
        self.observable(done)?;
        if !self.had_row(writer, 10)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of id 10 then succeeded: the soft delete removed the row, where it must only \
                 set its columns"
            )));
        }
        if self.had_row(writer, 16)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of id 16 was then refused as existing: the soft delete inserted a row for a \
                 key that had none"
            )));
        }
        Ok(Verdict::pass(format!(
            "{done}; inserts then found id 10's row still there and none for 16. Not verified: that id 10's note is \
             'soft-deleted' (the plugin ABI cannot read rows back)"
        )))
    }

    /// One batch of two partial rows, in two column sets: id 10 with a
    /// label and no note, id 17 (no row) with a note and no label, updated
    /// or inserted. 17 then has a row.
    fn partial_rows(&mut self, writer: &mut HisWriter) -> Checked {
        let action = Action::update(IfMissing::Insert);
        self.unlisted(writer, action)?;
        if !writer.takes_partial_rows() {
            return Err(Verdict::not_verified(
                "the plugin's plugin-api (1.0) has no partial rows; the host refuses a mapping that needs them",
            ));
        }
        let rows = [
            vec![Value::int(10), Value::text("partial"), Value::null()],
            vec![Value::int(17), Value::null(), Value::text("partial")],
        ];
        // Row 0 lacks note (column 2), row 1 lacks label (column 1).
        let partial = batch(&self.table, action, &["id", "label", "note"], &rows)
            .with_presence(|row, column| !matches!((row, column), (0, 2) | (1, 1)));
        let done = "a batch of partial rows (IfMissing::Insert), id 10 with label and no note, id 17 (no row) with \
                    note and no label, was accepted";
        self.write(writer, &partial, done)?;
        self.observable(done)?;
        if !self.had_row(writer, 17)? {
            return Err(Verdict::fail(format!(
                "{done}, but an insert of id 17 then succeeded: the partial row was not inserted"
            )));
        }
        Ok(Verdict::pass(format!(
            "{done}; an insert of id 17 was then refused as existing. Not verified: that id 10 kept its note and 17 \
             has no label (the plugin ABI cannot read rows back)"
        )))
    }
}
