//! How a timestamp with an offset, a 38-digit decimal and a date are
//! stored, observed through keys.
//!
//! The values table ([`values_ddl`]) is keyed by `(kind, happened_at,
//! amount, born_on)`; each probe row varies one of them and fills the
//! others with fixed values. Inserting two values that must be stored as
//! two values must succeed twice; inserting one that must be stored as an
//! earlier one must be refused as existing. A plugin that drops an offset,
//! rounds a decimal through a float or shifts a date by a time zone stores
//! one value where two were sent, or two where one was: the second insert
//! comes back the wrong way. Every check ends with a control, a value sent
//! twice, which must collide: without it, two successes prove nothing.

use his_plugin_api::{Action, ErrorKind, PluginError, Value};

use buktor_middleware::plugins::HisWriter;

use super::{Checked, Kit, Verdict, keyed_batch, values_ddl};

/// The checks of this file, in order.
pub(super) const CHECKS: [&str; 4] = ["values table", "offset timestamp", "38-digit decimal", "date"];

/// The values table's columns; the first four are its key.
pub(super) const COLUMNS: [&str; 5] = ["kind", "happened_at", "amount", "born_on", "label"];

/// What a probe row holds in the key columns it does not vary.
pub(super) const FILLER_TIMESTAMP: &str = "2000-01-01T00:00:00";
pub(super) const FILLER_DECIMAL: &str = "0";
pub(super) const FILLER_DATE: &str = "2000-01-01";

/// The timestamps: A, then B (A's wall-clock digits in UTC: two hours
/// later), D (two hours after B), and C (A's instant, written in UTC).
const A: &str = "2025-03-03T09:00:00+02:00";
const B: &str = "2025-03-03T09:00:00Z";
const C: &str = "2025-03-03T07:00:00Z";
const D: &str = "2025-03-03T11:00:00Z";

/// Two decimals of 38 digits (DECIMAL(38,2)) that differ in the last one.
const X1: &str = "123456789012345678901234567890123456.78";
const X2: &str = "123456789012345678901234567890123456.79";

/// A date, and the day before.
const DAY: &str = "1990-05-17";
const DAY_BEFORE: &str = "1990-05-16";

/// How an insert of a probe row came back.
enum Landed {
    /// Accepted: its key had no row.
    New,
    /// Refused with a DATA error: its key had a row.
    Existing,
}

/// A row of the values table.
pub(super) fn row(kind: &str, happened_at: Value, amount: Value, born_on: Value, label: &str) -> Vec<Value> {
    vec![Value::text(kind), happened_at, amount, born_on, Value::text(label)]
}

/// A probe of the timestamp `text`.
fn timestamp(text: &str) -> Vec<Value> {
    row("timestamp", Value::timestamp(text), Value::decimal(FILLER_DECIMAL), Value::date(FILLER_DATE), text)
}

/// A probe of the decimal `text`.
fn decimal(text: &str) -> Vec<Value> {
    row("decimal", Value::timestamp(FILLER_TIMESTAMP), Value::decimal(text), Value::date(FILLER_DATE), text)
}

/// A probe of the date `value` (a DATE, or the same day as TEXT).
fn date(value: Value) -> Vec<Value> {
    let label = format!("{} {}", value.kind().name(), value.as_text().unwrap_or_default());
    row("date", Value::timestamp(FILLER_TIMESTAMP), Value::decimal(FILLER_DECIMAL), value, &label)
}

/// Whether an HIS column type holds text (and so keeps a timestamp as
/// written, offset included) rather than a date and time.
fn is_text_type(data_type: &str) -> bool {
    let upper = data_type.to_uppercase();
    ["CHAR", "TEXT", "CLOB", "STRING"].iter().any(|t| upper.contains(t))
}

impl Kit<'_> {
    /// The values table, then each check of [`CHECKS`] that needs it.
    /// Not verified, all four, for a writer without inserts (which observe)
    /// or deletes (which clear an earlier run's probes), as a 1.0 plugin.
    pub(super) fn values_checks(&mut self, writer: &mut HisWriter) {
        if let Err(verdict) = self.unlisted(writer, Action::INSERT).and(self.unlisted(writer, Action::DELETE)) {
            for name in CHECKS {
                self.report.record(name, verdict.clone());
            }
            return;
        }
        let ready = self.values_table(writer);
        let written = ready.is_ok();
        self.report.record(CHECKS[0], ready.unwrap_or_else(|verdict| verdict));
        let checks: [fn(&mut Self, &mut HisWriter) -> Checked; 3] =
            [Kit::offset_timestamp, Kit::decimal_digits, Kit::date];
        for (name, check) in CHECKS[1..].iter().zip(checks) {
            let verdict = if written {
                check(self, writer).unwrap_or_else(|verdict| verdict)
            } else {
                Verdict::fail(format!("not run: {} cannot be written (see values table)", self.values))
            };
            self.report.record(name, verdict);
        }
    }

    /// An upsert of the kit's own row (which also makes the table, for a
    /// plugin that creates tables), then a delete of every probe row an
    /// earlier run left.
    fn values_table(&mut self, writer: &mut HisWriter) -> Checked {
        let kit = row(
            "kit",
            Value::timestamp(FILLER_TIMESTAMP),
            Value::decimal(FILLER_DECIMAL),
            Value::date(FILLER_DATE),
            "the conformance kit's values table",
        );
        if let Err(e) = writer.write(&self.values_batch(Action::UPSERT, &[kit]), self.deadline) {
            let error = self.error(&e);
            let mut detail = format!("an upsert into {} failed: {error}", self.values);
            if e.kind == ErrorKind::SCHEMA {
                let database_type = self.loaded.database_type();
                detail.push_str(&format!("; create this table first: {}", values_ddl(database_type, &self.values)));
            }
            return Err(Verdict::fail(detail));
        }
        // Keys that are one key for a plugin that converts (A and C; the
        // date as DATE and as TEXT) go in separate batches: the host never
        // sends one key twice in a batch.
        let first = vec![
            timestamp(A),
            timestamp(B),
            timestamp(D),
            decimal(X1),
            decimal(X2),
            date(Value::date(DAY)),
            date(Value::date(DAY_BEFORE)),
        ];
        let second = vec![timestamp(C), date(Value::text(DAY))];
        for rows in [first, second] {
            let keys: Vec<Vec<Value>> = rows.into_iter().map(|row| row[..4].to_vec()).collect();
            let delete = keyed_batch(&self.values, Action::DELETE, &COLUMNS[..4], 4, &keys);
            self.write(writer, &delete, &format!("a delete of the probe rows of {}", self.values))?;
        }
        Ok(Verdict::pass(format!(
            "{} takes the kit's rows, keyed by (kind, happened_at, amount, born_on); the probe rows of an earlier \
             run were deleted",
            self.values
        )))
    }

    /// A batch of whole rows for the values table.
    pub(super) fn values_batch(&self, action: Action, rows: &[Vec<Value>]) -> his_plugin_api::WriteBatch {
        keyed_batch(&self.values, action, &COLUMNS, 4, rows)
    }

    /// Inserts one probe row: [`Landed::New`], [`Landed::Existing`] (a
    /// DATA error), or the error of any other failure.
    fn land(&mut self, writer: &mut HisWriter, probe: Vec<Value>, what: &str) -> Result<Landed, PluginError> {
        match writer.write(&self.values_batch(Action::INSERT, &[probe]), self.deadline) {
            Ok(()) => Ok(Landed::New),
            Err(e) if e.kind == ErrorKind::DATA => {
                let what = format!("an insert of {what} into {}", self.values);
                self.refusals.push(super::Refusal { what, expected: 0, row: e.row.into_option() });
                Ok(Landed::Existing)
            }
            Err(e) => Err(e),
        }
    }

    /// Inserts `probe`, which must be a new key; `otherwise` says what its
    /// refusal means.
    fn expect_new(
        &mut self,
        writer: &mut HisWriter,
        probe: Vec<Value>,
        what: &str,
        otherwise: &str,
    ) -> Result<(), Verdict> {
        match self.land(writer, probe, what) {
            Ok(Landed::New) => Ok(()),
            Ok(Landed::Existing) => {
                Err(Verdict::fail(format!("an insert of {what} was refused as existing: {otherwise}")))
            }
            Err(e) => Err(Verdict::fail(format!("an insert of {what} failed: {}", self.error(&e)))),
        }
    }

    /// Inserts `probe` again, which must collide: the control that makes
    /// the successes above mean something.
    fn expect_again(&mut self, writer: &mut HisWriter, probe: Vec<Value>, what: &str) -> Result<(), Verdict> {
        match self.land(writer, probe, what) {
            Ok(Landed::Existing) => Ok(()),
            Ok(Landed::New) => Err(self.not_refused(
                &format!("a second insert of {what}"),
                &format!(
                    "a key inserted twice must be refused the second time; is {}'s primary key (kind, happened_at, \
                     amount, born_on)?",
                    self.values
                ),
            )),
            Err(e) => Err(Verdict::fail(format!("a second insert of {what} failed: {}", self.error(&e)))),
        }
    }

    /// Not verified unless the `insert` check saw an existing key refused.
    fn refusals_seen(&self) -> Result<(), Verdict> {
        if self.inserts_refuse_existing {
            return Ok(());
        }
        Err(Verdict::not_verified(
            "observed through inserts refused as existing, and this plugin did not refuse an insert of an existing \
             key (see insert)",
        ))
    }

    /// A, B and D are three instants, so three keys: dropping the offset
    /// stores A and B alike, applying it backwards stores A and D alike.
    /// C is A's instant: a plugin that converts offsets stores it as A; one
    /// that keeps the text as written (into a text column) does not. Both
    /// hold whatever the HIS's time zone: the probes compare instants with
    /// each other, never with a wall-clock time.
    fn offset_timestamp(&mut self, writer: &mut HisWriter) -> Checked {
        self.refusals_seen()?;
        self.expect_new(writer, timestamp(A), &format!("A {A}"), "the probe rows were just deleted")?;
        let dropped =
            "B is two hours after A, with the same digits: the plugin dropped the offset, storing both as 09:00";
        self.expect_new(writer, timestamp(B), &format!("B {B}"), dropped)?;
        let backwards = "D is four hours after A: the plugin applied A's offset backwards, storing A as 11:00";
        self.expect_new(writer, timestamp(D), &format!("D {D}"), backwards)?;
        self.expect_again(writer, timestamp(A), &format!("A {A}"))?;
        let three = format!("A ({A}), B ({B}) and D ({D}), three instants, were three keys, and A again collided");
        match self.land(writer, timestamp(C), &format!("C {C}")) {
            Ok(Landed::Existing) => Ok(Verdict::pass(format!(
                "{three}; C ({C}), A's instant written in UTC, collided with A: the offset was converted, and one \
                 instant is one value"
            ))),
            Ok(Landed::New) => self.kept_as_written(writer, &three),
            Err(e) => Err(Verdict::fail(format!("{three}, but an insert of C ({C}) failed: {}", self.error(&e)))),
        }
    }

    /// C, A's instant, was a new key: right for a text column, which keeps
    /// each timestamp as written; wrong for a date-time column, which
    /// holds no offset, so A was not stored as its instant.
    fn kept_as_written(&mut self, writer: &mut HisWriter, three: &str) -> Checked {
        let column = match writer.describe_table(&self.values, self.deadline) {
            Ok(Some(table)) => {
                table.columns.iter().find(|c| c.name.eq_ignore_ascii_case("happened_at")).map(|c| c.data_type.clone())
            }
            _ => None,
        };
        match column {
            Some(data_type) if is_text_type(&data_type) => Ok(Verdict::pass(format!(
                "{three}; C ({C}), A's instant written in UTC, was a fourth key: the plugin keeps each timestamp as \
                 written, offset included, which happened_at ({data_type}), a text column, holds"
            ))),
            Some(data_type) => Err(Verdict::fail(format!(
                "{three}, but C ({C}), A's instant written in UTC, was a fourth key in happened_at ({data_type}), \
                 which holds no offset: A was not stored as its instant (07:00 UTC, in the HIS's time zone)"
            ))),
            None => Err(Verdict::not_verified(format!(
                "{three}, so the offset was neither dropped nor applied backwards; but C ({C}), A's instant, was a \
                 fourth key, and the plugin does not describe {} (happened_at), so the kit cannot tell a text \
                 column, which keeps A as written, from a date-time column, where A was stored as another instant",
                self.values
            ))),
        }
    }

    /// X1 and X2 differ in their 38th digit only, beyond the 15 to 17 of a
    /// 64-bit float: a plugin that rounds through one stores them alike.
    fn decimal_digits(&mut self, writer: &mut HisWriter) -> Checked {
        self.refusals_seen()?;
        self.expect_new(writer, decimal(X1), &format!("X1 {X1}"), "the probe rows were just deleted")?;
        let rounded = "X2 differs from X1 in its 38th digit only: the plugin rounded both to one number (through a \
                       64-bit float, which keeps 15 to 17 digits?)";
        self.expect_new(writer, decimal(X2), &format!("X2 {X2}"), rounded)?;
        self.expect_again(writer, decimal(X1), &format!("X1 {X1}"))?;
        Ok(Verdict::pass(format!(
            "X1 ({X1}) and X2 ({X2}), 38 digits that differ only in the last, were two keys, and X1 again collided: \
             every digit was kept"
        )))
    }

    /// Two days are two keys, and one day sent twice collides. Then the day
    /// sent as TEXT, which no plugin converts, must meet the DATE: a
    /// plugin that shifts dates by a time zone stored the DATE as another
    /// day (a shift of every date alike is invisible to the first three).
    fn date(&mut self, writer: &mut HisWriter) -> Checked {
        self.refusals_seen()?;
        let day = format!("the date {DAY}");
        self.expect_new(writer, date(Value::date(DAY)), &day, "the probe rows were just deleted")?;
        let merged = format!("{DAY_BEFORE} is the day before {DAY}: the plugin stored two days as one");
        self.expect_new(writer, date(Value::date(DAY_BEFORE)), &format!("the date {DAY_BEFORE}"), &merged)?;
        self.expect_again(writer, date(Value::date(DAY)), &day)?;
        let two = format!("{DAY} and {DAY_BEFORE} were two keys, and {DAY} again collided");
        match self.land(writer, date(Value::text(DAY)), &format!("the text '{DAY}'")) {
            Ok(Landed::Existing) => Ok(Verdict::pass(format!(
                "{two}; {DAY} sent as text collided with the date: the date was stored as that day"
            ))),
            Ok(Landed::New) => Err(Verdict::fail(format!(
                "{two}, but {DAY} sent as text, which no plugin converts, was a new key: the date {DAY} was stored \
                 as another day (shifted by a time zone? a calendar date has none)"
            ))),
            Err(e) => Err(Verdict::not_verified(format!(
                "{two}. Not seen: that {DAY} was stored as that day, which the kit checks by sending the same day as \
                 text into born_on, and that failed: {}",
                self.error(&e)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_are_what_their_names_say() {
        use his_plugin_api::Timestamp;
        let utc = |text: &str| {
            let t = Timestamp::parse(text).unwrap();
            (t.hour as i32) * 3600 - t.offset_seconds.unwrap()
        };
        assert_eq!(utc(C), utc(A), "C is A's instant");
        assert_eq!(utc(B) - utc(A), 2 * 3600);
        assert_eq!(utc(D) - utc(B), 2 * 3600);
        assert_eq!((X1.len() - 1, X1.len()), (38, X2.len()), "38 digits and a point");
        assert_ne!(X1, X2);
        assert_eq!(X1.parse::<f64>().unwrap(), X2.parse::<f64>().unwrap(), "one float for both");
        assert!(his_plugin_api::is_date(DAY) && his_plugin_api::is_date(DAY_BEFORE));
    }

    #[test]
    fn text_types_keep_what_they_are_given() {
        for text in ["TEXT", "varchar(30)", "NVARCHAR(40)", "VARCHAR2(40)", "CLOB"] {
            assert!(is_text_type(text), "{text}");
        }
        for time in ["DATETIME(3)", "DATETIME2", "TIMESTAMP(6)", "DATE", "datetimeoffset"] {
            assert!(!is_text_type(time), "{time}");
        }
    }
}
