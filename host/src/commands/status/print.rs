//! `status` for people: the journal's state as a short text report, with
//! durations and sizes in the units people read.

use std::fmt;

use buktor_middleware::text::printable;

use super::{Counts, JournalStatus};

/// A duration for people: the two largest units, such as `45 s`,
/// `3 min 12 s`, `2 h 5 min` or `3 d 4 h`.
pub fn human_duration(secs: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| secs >= *size) else { return "0 s".into() };
    let (size, name) = units[first];
    let mut text = format!("{} {name}", secs / size);
    if let Some((next_size, next_name)) = units.get(first + 1) {
        let rest = secs % size / next_size;
        if rest > 0 {
            text.push_str(&format!(" {rest} {next_name}"));
        }
    }
    text
}

/// A size for people, in binary units: `512 B`, `4.0 KiB`, `12.4 MiB`.
pub fn human_size(bytes: u64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit when the value would show as 1024.0 or more.
    while value >= 1023.95 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// The most event types the text table lists; `--json` has them all.
const TABLE_TYPES: usize = 20;
/// The widest event type the text table shows.
const TYPE_WIDTH: usize = 32;
/// The most characters of the last error the text shows.
const ERROR_CHARS: usize = 300;

impl fmt::Display for JournalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = &self.journal;
        let mut size = human_size(file.size_bytes);
        if file.wal_bytes > 0 {
            size.push_str(&format!(
                ": database {}, write-ahead log {}",
                human_size(file.database_bytes),
                human_size(file.wal_bytes)
            ));
        }
        writeln!(f, "{:<11} {} ({size})", "journal", printable(&file.path, usize::MAX))?;
        if let Some(space) = &self.space {
            writeln!(
                f,
                "{:<11} {} of {} (journal.max_bytes); unmapped events {} of {} (journal.max_unmapped_bytes)",
                "space",
                human_size(space.used_bytes),
                human_size(space.max_bytes),
                human_size(space.unmapped_bytes),
                human_size(space.max_unmapped_bytes)
            )?;
        }
        writeln!(f, "{:<11} {}", "events", self.events.total)?;

        let mut pending = self.events.pending.to_string();
        if let Some(oldest) = &self.oldest_pending {
            pending.push_str(&format!(
                " (oldest {} ago: #{} {}",
                human_duration(oldest.age_secs),
                oldest.id,
                printable(&oldest.event_type, TYPE_WIDTH)
            ));
            if let Some(failed) = oldest.held_by {
                pending.push_str(&format!(", held by failed #{failed}"));
            }
            if self.retrying > 0 {
                pending.push_str(&format!("; {} retrying", self.retrying));
            }
            pending.push(')');
        }
        writeln!(f, "{:<11} {pending}", "pending")?;

        let mut delivered = self.events.delivered.to_string();
        if let Some(last) = &self.last_delivery {
            delivered.push_str(&format!(" (last {} ago, at {})", human_duration(last.age_secs), last.delivered_at));
        }
        writeln!(f, "{:<11} {delivered}", "delivered")?;

        for (name, count) in [("failed", self.events.failed), ("unmapped", self.events.unmapped)] {
            if count > 0 {
                writeln!(f, "{name:<11} {count} (list them: buktor-middleware events --status {name})")?;
            } else {
                writeln!(f, "{name:<11} {count}")?;
            }
        }

        match &self.last_error {
            None => writeln!(f, "{:<11} none", "last error")?,
            Some(error) => {
                let attempts = match error.attempts {
                    1 => "1 attempt".to_string(),
                    n => format!("{n} attempts"),
                };
                let state = match error.next_attempt_in_secs {
                    Some(0) => format!("pending, retrying after {attempts}, next try due now"),
                    Some(secs) => format!("pending, retrying after {attempts}, next try in {}", human_duration(secs)),
                    None => format!("{} after {attempts}", error.status),
                };
                writeln!(
                    f,
                    "{:<11} #{} {} ({state}; received {} ago)",
                    "last error",
                    error.id,
                    printable(&error.event_type, TYPE_WIDTH),
                    human_duration(error.age_secs)
                )?;
                writeln!(f, "{:<11} {}", "", printable(&error.message, ERROR_CHARS))?;
            }
        }

        if self.by_type.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, &Counts)> =
            self.by_type.iter().take(TABLE_TYPES).map(|(name, counts)| (printable(name, TYPE_WIDTH), counts)).collect();
        let type_width = rows.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0).max("type".len());
        let headers = ["pending", "delivered", "failed", "unmapped", "total"];
        let cells = |c: &Counts| [c.pending, c.delivered, c.failed, c.unmapped, c.total];
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(i, header)| {
                rows.iter().map(|(_, c)| cells(c)[i].to_string().len()).max().unwrap_or(0).max(header.len())
            })
            .collect();
        writeln!(f)?;
        write!(f, "{:<type_width$}", "type")?;
        for (header, width) in headers.iter().zip(&widths) {
            write!(f, "  {header:>width$}")?;
        }
        writeln!(f)?;
        for (name, counts) in &rows {
            // `{:<width$}` pads by chars, which is what a terminal shows
            // for the common cases.
            write!(f, "{name:<type_width$}")?;
            for (cell, width) in cells(counts).iter().zip(&widths) {
                write!(f, "  {cell:>width$}")?;
            }
            writeln!(f)?;
        }
        if self.by_type.len() > TABLE_TYPES {
            let others: i64 = self.by_type.values().skip(TABLE_TYPES).map(|c| c.total).sum();
            writeln!(
                f,
                "(and {} other event types with {others} events: status --json lists them all)",
                self.by_type.len() - TABLE_TYPES
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_two_largest_units() {
        for (secs, expected) in [
            (0, "0 s"),
            (1, "1 s"),
            (59, "59 s"),
            (60, "1 min"),
            (61, "1 min 1 s"),
            (192, "3 min 12 s"),
            (3_599, "59 min 59 s"),
            (3_600, "1 h"),
            (3_660, "1 h 1 min"),
            (3_661, "1 h 1 min"),
            (7_500, "2 h 5 min"),
            (86_399, "23 h 59 min"),
            (86_400, "1 d"),
            (273_600, "3 d 4 h"),
            (90_061, "1 d 1 h"),
            (31_536_000, "365 d"),
        ] {
            assert_eq!(human_duration(secs), expected, "{secs} s");
        }
    }

    #[test]
    fn sizes_read_in_binary_units_with_one_decimal() {
        for (bytes, expected) in [
            (0, "0 B"),
            (1, "1 B"),
            (1_023, "1023 B"),
            (1_024, "1.0 KiB"),
            (1_536, "1.5 KiB"),
            (4_096, "4.0 KiB"),
            (1_048_575, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (13_002_342, "12.4 MiB"),
            (1_073_741_824, "1.0 GiB"),
            (5_000_000_000, "4.7 GiB"),
            (1_099_511_627_776, "1.0 TiB"),
            (u64::MAX, "16384.0 PiB"),
        ] {
            assert_eq!(human_size(bytes), expected, "{bytes} bytes");
        }
    }
}
