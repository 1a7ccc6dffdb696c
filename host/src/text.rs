//! Text from a file, a sender or a database, made safe to print.

/// Text for the terminal with its control characters escaped: a name or
/// message from a file, a sender or a database must not split a one-line
/// error or reach the terminal as a control sequence. The one place that
/// does this; `check`, `status`, `events` and `main` all call it.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Text from the journal (or any sender) made safe for a terminal: control characters
/// (an escape sequence in an event type, a newline in an error) are shown
/// escaped, and the text is cut to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut shown = escape_controls(&text.chars().take(max).collect::<String>());
    if text.chars().nth(max).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_text_cannot_drive_the_terminal() {
        assert_eq!(printable("refund\u{1b}[2J\nx", 40), "refund\\u{1b}[2J\\nx");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
