//! Counters and histograms, rendered in the Prometheus text format
//! (version 0.0.4).
//!
//! One [`Metrics`] lives for the process; intake, the committer and the
//! sync worker each record into it, and the scrape
//! ([`crate::http::metrics`]) renders it, adding the two gauges read from
//! the journal at that moment (pending events, the oldest one's age).
//!
//! Label values are bounded: event types only as configured in the
//! mapping (any other is `other`), reasons and error kinds from fixed sets.
//! A sender cannot grow the output by inventing event types.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use crate::{clock, sync::lock};

/// How an event that reached intake ended there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Received {
    /// Journaled, to be written to the HIS.
    Accepted,
    /// Its delivery id was seen before: not stored again.
    Duplicate,
    /// Journaled, but its type has no mapping.
    Unmapped,
}

impl Received {
    fn label(self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
            Received::Unmapped => "unmapped",
        }
    }
}

/// What the build and the loaded plugin are, for `buktor_build_info`.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    /// `database.type`.
    pub database_type: String,
    /// The plugin's own version.
    pub plugin_version: String,
    /// The plugin-api (ABI) version the plugin was built with.
    pub plugin_abi_version: String,
}

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// The mapped event types: other types are counted as `other`.
    event_types: Vec<String>,
    /// Set once the plugin is loaded (after the journal's committer, which
    /// already records into these metrics, has started).
    build: OnceLock<BuildInfo>,
    counters: Mutex<Counters>,
    /// Receive → HIS commit, per delivered event.
    delivery_latency: Mutex<Histogram>,
    /// One journal transaction, fsync included.
    commit_latency: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Counters {
    refused: BTreeMap<&'static str, u64>,
    received: BTreeMap<(usize, Received), u64>,
    delivered: BTreeMap<usize, u64>,
    failed: BTreeMap<usize, u64>,
    truncated: BTreeMap<usize, u64>,
    his_errors: BTreeMap<&'static str, u64>,
}

/// Bucket bounds of the delivery latency, in seconds: from a quick write
/// to an hour-long HIS outage.
const DELIVERY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1800.0, 3600.0];
/// Bucket bounds of a journal commit, in seconds: fsync dominates.
const COMMIT_BUCKETS: [f64; 11] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative; summed when
    /// rendered), then above the last.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    fn observe(&mut self, seconds: f64) {
        let slot = self.bounds.iter().position(|&bound| seconds <= bound).unwrap_or(self.bounds.len());
        self.counts[slot] += 1;
        self.sum += seconds;
    }

    fn render(&self, text: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()];
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(text, "{name}_sum {}", self.sum);
        let _ = writeln!(text, "{name}_count {cumulative}");
    }
}

impl Metrics {
    /// Metrics for these mapped event types.
    pub fn new(event_types: impl IntoIterator<Item = String>) -> Self {
        Self {
            event_types: event_types.into_iter().collect(),
            build: OnceLock::new(),
            counters: Mutex::default(),
            delivery_latency: Mutex::new(Histogram::new(&DELIVERY_BUCKETS)),
            commit_latency: Mutex::new(Histogram::new(&COMMIT_BUCKETS)),
        }
    }

    /// Records what plugin was loaded; only the first call counts.
    pub fn set_build(&self, build: BuildInfo) {
        let _ = self.build.set(build);
    }

    /// The label index of `event_type`; `event_types.len()` means `other`.
    fn type_index(&self, event_type: &str) -> usize {
        self.event_types.iter().position(|t| t == event_type).unwrap_or(self.event_types.len())
    }

    fn type_label(&self, index: usize) -> String {
        escape_label(self.event_types.get(index).map_or("other", String::as_str))
    }

    /// Counts one request refused with `reason`.
    pub fn refused(&self, reason: &'static str) {
        *lock(&self.counters).refused.entry(reason).or_default() += 1;
    }

    /// Counts one event that reached intake.
    pub fn received(&self, event_type: &str, outcome: Received) {
        let index = self.type_index(event_type);
        *lock(&self.counters).received.entry((index, outcome)).or_default() += 1;
    }

    /// Counts events of `event_type` written to the HIS, received at
    /// `received_at` (RFC 3339 text, as journaled).
    pub fn delivered<'a>(&self, event_type: &str, received_at: impl Iterator<Item = &'a str>) {
        let now_ms = clock::now_ms();
        let mut count = 0;
        {
            let mut latency = lock(&self.delivery_latency);
            for age in received_at.map(|text| clock::age_secs(text, now_ms)) {
                count += 1;
                latency.observe(age.unwrap_or(0.0));
            }
        }
        let index = self.type_index(event_type);
        *lock(&self.counters).delivered.entry(index).or_default() += count;
    }

    /// Counts one event set aside as failed.
    pub fn failed(&self, event_type: &str) {
        let index = self.type_index(event_type);
        *lock(&self.counters).failed.entry(index).or_default() += 1;
    }

    /// Counts `count` values that a `truncate` transform cut in events of
    /// `event_type` written to the HIS. True the first time for the type,
    /// for one warning in the log.
    pub fn truncated(&self, event_type: &str, count: u64) -> bool {
        let index = self.type_index(event_type);
        let mut counters = lock(&self.counters);
        let total = counters.truncated.entry(index).or_default();
        *total += count;
        *total == count
    }

    /// Counts one error from the HIS writer, by its kind's name.
    pub fn his_error(&self, kind: &'static str) {
        *lock(&self.counters).his_errors.entry(kind).or_default() += 1;
    }

    /// Records how long one journal commit took.
    pub fn journal_commit(&self, took: Duration) {
        lock(&self.commit_latency).observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition, with the journal's gauges as given.
    pub fn render(&self, journal: Option<&JournalGauges>, space: Option<&JournalSpace>) -> String {
        let mut text = String::new();
        let family = |text: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let counters = lock(&self.counters);

        family(
            &mut text,
            "buktor_events_received_total",
            "counter",
            "Events that reached intake, by type and outcome.",
        );
        for ((index, outcome), count) in &counters.received {
            let (event_type, outcome) = (self.type_label(*index), outcome.label());
            let _ = writeln!(
                text,
                "buktor_events_received_total{{event_type=\"{event_type}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        family(
            &mut text,
            "buktor_requests_refused_total",
            "counter",
            "Requests refused, by reason; none of them was journaled.",
        );
        for (reason, count) in &counters.refused {
            let _ = writeln!(text, "buktor_requests_refused_total{{reason=\"{reason}\"}} {count}");
        }
        for (name, help, map) in [
            ("buktor_events_delivered_total", "Events written to the HIS, by type.", &counters.delivered),
            ("buktor_events_failed_total", "Events set aside as failed (kept for replay), by type.", &counters.failed),
            (
                "buktor_values_truncated_total",
                "Values cut by a truncate transform in events written to the HIS, by type.",
                &counters.truncated,
            ),
        ] {
            family(&mut text, name, "counter", help);
            for (index, count) in map {
                let _ = writeln!(text, "{name}{{event_type=\"{}\"}} {count}", self.type_label(*index));
            }
        }
        family(&mut text, "buktor_his_errors_total", "counter", "Errors from the HIS writer, by kind.");
        for (kind, count) in &counters.his_errors {
            let _ = writeln!(text, "buktor_his_errors_total{{kind=\"{kind}\"}} {count}");
        }
        drop(counters);

        if let Some(journal) = journal {
            family(&mut text, "buktor_events_pending", "gauge", "Events in the journal waiting to be written.");
            let _ = writeln!(text, "buktor_events_pending {}", journal.pending);
            family(
                &mut text,
                "buktor_oldest_pending_age_seconds",
                "gauge",
                "How long the oldest pending event has waited (0 when none).",
            );
            let _ = writeln!(text, "buktor_oldest_pending_age_seconds {}", journal.oldest_pending_age_secs);
        }
        if let Some(space) = space {
            let gauges = [
                ("buktor_journal_used_bytes", "Bytes the journal holds.", space.used_bytes),
                ("buktor_journal_max_bytes", "journal.max_bytes: at it, every event is refused.", space.max_bytes),
                ("buktor_journal_unmapped_bytes", "Payload bytes of unmapped events.", space.unmapped_bytes),
                (
                    "buktor_journal_max_unmapped_bytes",
                    "journal.max_unmapped_bytes: at it, unmapped events are refused.",
                    space.max_unmapped_bytes,
                ),
            ];
            for (name, help, value) in gauges {
                family(&mut text, name, "gauge", help);
                let _ = writeln!(text, "{name} {value}");
            }
        }
        family(
            &mut text,
            "buktor_delivery_latency_seconds",
            "histogram",
            "From the event's arrival to its HIS commit.",
        );
        lock(&self.delivery_latency).render(&mut text, "buktor_delivery_latency_seconds");
        family(&mut text, "buktor_journal_commit_seconds", "histogram", "One journal transaction, fsync included.");
        lock(&self.commit_latency).render(&mut text, "buktor_journal_commit_seconds");
        family(&mut text, "buktor_build_info", "gauge", "The middleware's version and its plugin's.");
        let BuildInfo { database_type, plugin_version, plugin_abi_version } =
            self.build.get().cloned().unwrap_or_default();
        let _ = writeln!(
            text,
            "buktor_build_info{{version=\"{}\",database_type=\"{database_type}\",plugin_version=\"{}\",plugin_api=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            escape_label(&plugin_version),
            escape_label(&plugin_abi_version),
        );
        text
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// How full the journal is, against its limits (`journal.max_*`).
#[derive(Debug, Clone, Copy)]
pub struct JournalSpace {
    /// Bytes the journal holds.
    pub used_bytes: u64,
    /// `journal.max_bytes`.
    pub max_bytes: u64,
    /// Payload bytes of unmapped events.
    pub unmapped_bytes: u64,
    /// `journal.max_unmapped_bytes`.
    pub max_unmapped_bytes: u64,
}

/// The gauges read from the journal at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct JournalGauges {
    /// Events waiting to be written.
    pub pending: i64,
    /// Seconds since the oldest of them arrived; 0 when none.
    pub oldest_pending_age_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_types_are_other_and_histograms_are_cumulative() {
        let metrics = Metrics::new(["appointment".to_string()]);
        metrics.received("appointment", Received::Accepted);
        metrics.received("made-up-by-a-sender", Received::Unmapped);
        metrics.received("another-one", Received::Unmapped);
        metrics.journal_commit(Duration::from_micros(700));
        metrics.journal_commit(Duration::from_secs(5));
        let text = metrics.render(None, None);
        assert!(text.contains("buktor_events_received_total{event_type=\"appointment\",outcome=\"accepted\"} 1"));
        assert!(text.contains("buktor_events_received_total{event_type=\"other\",outcome=\"unmapped\"} 2"), "{text}");
        assert!(!text.contains("made-up"), "{text}");
        assert!(text.contains("buktor_journal_commit_seconds_bucket{le=\"0.0005\"} 0"), "{text}");
        assert!(text.contains("buktor_journal_commit_seconds_bucket{le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("buktor_journal_commit_seconds_bucket{le=\"1\"} 1"), "{text}");
        assert!(text.contains("buktor_journal_commit_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("buktor_journal_commit_seconds_count 2"), "{text}");
    }
}
