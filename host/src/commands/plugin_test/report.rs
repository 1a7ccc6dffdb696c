//! The kit's report: one outcome per check, printed as a table or as JSON.

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The kit observed the property, and it held.
    Pass,
    /// The kit observed the property, and it did not hold; or a call the
    /// check needed failed.
    Fail,
    /// The kit could not observe the property; the detail says why. Not a
    /// failure (the exit code stays 0), and never counted as a pass: a
    /// plugin author reads what is left to check by other means.
    NotVerified,
}

impl Outcome {
    /// The status column of the table: four characters, `FAIL` in
    /// capitals so that it stands out.
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::NotVerified => "n/v",
        }
    }
}

/// A check's outcome and what happened, before it is named in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What the check found.
    pub outcome: Outcome,
    /// What happened, and why that is the outcome.
    pub detail: String,
}

impl Verdict {
    /// The property held.
    pub fn pass(detail: impl Into<String>) -> Self {
        Self { outcome: Outcome::Pass, detail: detail.into() }
    }

    /// The property did not hold.
    pub fn fail(detail: impl Into<String>) -> Self {
        Self { outcome: Outcome::Fail, detail: detail.into() }
    }

    /// The kit cannot observe the property. The detail starts with `not
    /// verified:`, so that it reads the same in the table and in JSON.
    pub fn not_verified(reason: impl std::fmt::Display) -> Self {
        Self { outcome: Outcome::NotVerified, detail: format!("not verified: {reason}") }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// `pass`, `fail` or `not_verified`.
    pub outcome: Outcome,
    /// What happened.
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Default, serde::Serialize)]
pub struct KitReport {
    /// The checks.
    pub results: Vec<CheckResult>,
}

impl KitReport {
    /// How many checks failed: the exit code is non-zero when any did.
    pub fn failed_count(&self) -> usize {
        self.count(Outcome::Fail)
    }

    /// How many checks had `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// Adds check `name` with its verdict.
    pub fn record(&mut self, name: &str, verdict: Verdict) {
        self.results.push(CheckResult { name: name.into(), outcome: verdict.outcome, detail: verdict.detail });
    }
}

impl std::fmt::Display for KitReport {
    /// One line per check: `pass`, `FAIL` or `n/v` (not verified), the
    /// check's name padded into a column, then the detail; then a summary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.results.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for result in &self.results {
            writeln!(f, "{:4}  {:width$}  {}", result.outcome.label(), result.name, result.detail)?;
        }
        writeln!(
            f,
            "{} checks: {} passed, {} failed, {} not verified",
            self.results.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::NotVerified)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_column_of_names_and_a_summary() {
        let mut report = KitReport::default();
        report.record("ping", Verdict::pass("ok"));
        report.record("unknown table", Verdict::fail("expected a schema error"));
        report.record("connection loss", Verdict::not_verified("no --unreachable-config"));
        assert_eq!(
            report.to_string(),
            "pass  ping             ok\n\
             FAIL  unknown table    expected a schema error\n\
             n/v   connection loss  not verified: no --unreachable-config\n\
             3 checks: 1 passed, 1 failed, 1 not verified\n"
        );
        assert_eq!(report.failed_count(), 1);
    }

    #[test]
    fn json_names_the_outcome() {
        let mut report = KitReport::default();
        report.record("a", Verdict::pass("x"));
        report.record("b", Verdict::not_verified("y"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["results"][0]["outcome"], "pass");
        assert_eq!(json["results"][1]["outcome"], "not_verified");
        assert_eq!(json["results"][1]["detail"], "not verified: y");
    }
}
