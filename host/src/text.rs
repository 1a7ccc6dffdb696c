//! Text from a file, a sender or a database, made safe to print.

/// Text for the terminal with its control characters escaped: a name or
/// message from a file, a sender or a database must not split a one-line
/// error or reach the terminal as a control sequence. The one place that
/// does this; `check`, `status`, `events` and `main` all call it.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
