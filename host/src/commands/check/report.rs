//! What `check` found, and how it prints: one aligned line per finding,
//! then a summary; or JSON.

use buktor_middleware::{config::Secrets, text::escape_controls};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The middleware cannot work like this: `check` exits non-zero.
    Error,
    /// It will work, but probably not as meant.
    Warning,
}

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Where in his-config.json, such as `mapping.payment.fields.amount`
    /// (`(file)` when the file itself cannot be read or is not JSON).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    pub(super) fn error(path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { severity: Severity::Error, path: path.into(), message: message.into(), fix: fix.into() }
    }

    pub(super) fn warning(path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, path: path.into(), message: message.into(), fix: fix.into() }
    }

    /// An error, or a warning when `create_missing` will make it right.
    pub(super) fn missing(create_missing: bool, path: String, message: String, fix: String) -> Self {
        if create_missing { Self::warning(path, message, fix) } else { Self::error(path, message, fix) }
    }
}

/// A mapping worked through the last journaled event of its type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Example {
    /// The event type.
    pub event_type: String,
    /// The journal id of the event.
    pub event_id: i64,
    /// The dry run, as `map` prints it.
    #[serde(skip)]
    pub text: String,
    /// The dry run, as `map --json` prints it.
    pub dry_run: serde_json::Value,
}

/// The plugin that was loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginSummary {
    /// Its name, as it reports it.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub plugin_api: String,
    /// The library file.
    pub path: String,
}

/// Everything `check` found, in the order it looked.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// No errors (warnings allowed).
    pub ok: bool,
    /// One line: what was checked, and how it went.
    pub summary: String,
    /// The config file.
    pub file: String,
    /// Whether the config parsed.
    pub config_ok: bool,
    /// The plugin, once it loaded.
    pub plugin: Option<PluginSummary>,
    /// Whether the writer opened and answered a ping.
    pub his_reachable: bool,
    /// How many mappings were compared with the HIS.
    pub mappings_checked: usize,
    /// How many findings are errors.
    pub errors: usize,
    /// How many findings are warnings.
    pub warnings: usize,
    /// The findings; none when all is well.
    pub findings: Vec<Finding>,
    /// Each mapping worked through the last journaled event of its type.
    pub examples: Vec<Example>,
}

impl Report {
    /// How many findings are errors.
    pub fn error_count(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }

    /// Counts, scrubs and summarizes, once every step has run.
    pub(super) fn finish(&mut self, secrets: &Secrets) {
        for finding in &mut self.findings {
            finding.message = secrets.redact(&finding.message);
            finding.fix = secrets.redact(&finding.fix);
        }
        for example in &mut self.examples {
            example.text = secrets.redact(&example.text);
            example.dry_run =
                serde_json::from_str(&secrets.redact(&example.dry_run.to_string())).unwrap_or(serde_json::Value::Null);
        }
        self.errors = self.findings.iter().filter(|f| f.severity == Severity::Error).count();
        self.warnings = self.findings.len() - self.errors;
        self.ok = self.errors == 0;
        let reached = match (&self.plugin, self.config_ok, self.his_reachable) {
            (_, false, _) => format!("config {} cannot be used: nothing else checked", self.file),
            (None, true, _) => format!("config {}, but no plugin loaded: HIS and mappings not checked", self.file),
            (Some(p), true, false) => format!(
                "config {}, plugin {} {}, but the HIS is not reachable: mappings not checked",
                self.file, p.name, p.version
            ),
            (Some(p), true, true) => format!(
                "config {}, plugin {} {}, HIS reachable, {}",
                self.file,
                p.name,
                p.version,
                count(self.mappings_checked, "mapping checked", "mappings checked")
            ),
        };
        let warnings = count(self.warnings, "warning", "warnings");
        self.summary = match self.errors {
            0 if self.warnings == 0 => format!("ok: {reached}"),
            0 => format!("ok with {warnings}: {reached}"),
            errors => format!("failed: {}, {warnings}; {reached}", count(errors, "error", "errors")),
        };
    }
}

/// `3 mappings checked`, `1 mapping checked`.
fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 { format!("1 {singular}") } else { format!("{n} {plural}") }
}

/// One line per finding (`severity  path: message — fix: …`, the paths
/// padded so that messages line up), then the summary.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.findings.iter().map(|x| x.path.chars().count() + 1).max().unwrap_or(0).min(40);
        for finding in &self.findings {
            let severity = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let path = format!("{}:", escape_controls(&finding.path));
            writeln!(
                f,
                "{severity:<7}  {path:<width$}  {} — fix: {}",
                escape_controls(&finding.message),
                escape_controls(&finding.fix)
            )?;
        }
        for example in &self.examples {
            writeln!(
                f,
                "example: the last journaled {} event (id {}):",
                escape_controls(&example.event_type),
                example.event_id
            )?;
            for line in example.text.lines() {
                writeln!(f, "  {}", escape_controls(line))?;
            }
        }
        writeln!(f, "{}", escape_controls(&self.summary))
    }
}
