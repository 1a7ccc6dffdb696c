//! Every state an HIS row went through, not only its last: an appointments
//! table whose triggers append each inserted or updated state to `applied`,
//! in the SQLite HIS or in MySQL/MariaDB. A test of order reads the history
//! of each row, since a final state cannot show a row that went back and
//! forth on its way there.
//!
//! States are named with a number at their end (`v12`, `state-12`): the
//! number is the event's place in the order the test sent them.

use std::collections::BTreeMap;

/// The SQLite HIS: `HIS_appointments` as the repository's his-config.json
/// maps it, and `applied (seq, k, v)`, one line per write.
pub const SQLITE: &str = "
    CREATE TABLE HIS_appointments (HIS_appointment_id INTEGER PRIMARY KEY, HIS_status TEXT, HIS_created_at TEXT);
    CREATE TABLE applied (seq INTEGER PRIMARY KEY AUTOINCREMENT, k INTEGER, v TEXT);
    CREATE TRIGGER applied_insert AFTER INSERT ON HIS_appointments BEGIN
        INSERT INTO applied (k, v) VALUES (NEW.HIS_appointment_id, NEW.HIS_status); END;
    CREATE TRIGGER applied_update AFTER UPDATE ON HIS_appointments BEGIN
        INSERT INTO applied (k, v) VALUES (NEW.HIS_appointment_id, NEW.HIS_status); END;";

/// [`SQLITE`] for MySQL/MariaDB.
pub const MYSQL: &str = "
    CREATE TABLE HIS_appointments (HIS_appointment_id BIGINT PRIMARY KEY, HIS_status VARCHAR(32), HIS_created_at DATETIME(3));
    CREATE TABLE applied (seq BIGINT AUTO_INCREMENT PRIMARY KEY, k BIGINT, v VARCHAR(32));
    CREATE TRIGGER applied_insert AFTER INSERT ON HIS_appointments FOR EACH ROW
        INSERT INTO applied (k, v) VALUES (NEW.HIS_appointment_id, NEW.HIS_status);
    CREATE TRIGGER applied_update AFTER UPDATE ON HIS_appointments FOR EACH ROW
        INSERT INTO applied (k, v) VALUES (NEW.HIS_appointment_id, NEW.HIS_status);";

const HISTORY: &str = "SELECT k, v FROM applied ORDER BY seq";

/// Each row's states (their numbers), in the order they were written,
/// repeats included.
pub type Histories = BTreeMap<i64, Vec<usize>>;

/// The histories in an SQLite HIS made with [`SQLITE`].
pub fn sqlite(his: &rusqlite::Connection) -> Histories {
    histories(crate::query(his, HISTORY).into_iter().map(|row| {
        let key = row[0].as_i64().expect("an integer key");
        (key, row[1].as_str().expect("a text state").to_string())
    }))
}

/// The histories in a MySQL database made with [`MYSQL`].
pub fn mysql(db: &crate::mysql::Database) -> Histories {
    histories(db.rows(HISTORY).into_iter().map(|row| {
        let key = row[0].as_deref().and_then(|k| k.parse().ok()).expect("an integer key");
        (key, row[1].clone().expect("a state"))
    }))
}

fn histories(writes: impl Iterator<Item = (i64, String)>) -> Histories {
    let mut histories = Histories::new();
    for (key, state) in writes {
        let digits = state.trim_start_matches(|c: char| !c.is_ascii_digit());
        let n = digits.parse().unwrap_or_else(|_| panic!("row {key}: state {state:?} does not end in its number"));
        histories.entry(key).or_default().push(n);
    }
    histories
}

/// `history` with repeats in a row collapsed: a batch written again after
/// a crash or a cut writes the same state again.
pub fn collapsed(history: &[usize]) -> Vec<usize> {
    let mut states = history.to_vec();
    states.dedup();
    states
}

/// How often the row moved to an older state than the one it held.
pub fn reversals(history: &[usize]) -> usize {
    history.windows(2).filter(|w| w[1] < w[0]).count()
}

/// Whether every state of `expected` appears in `history`, in that order
/// (other writes may come between them).
pub fn holds_in_order(history: &[usize], expected: &[usize]) -> bool {
    let mut written = history.iter();
    expected.iter().all(|state| written.any(|n| n == state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_means_a_subsequence() {
        assert!(holds_in_order(&[1, 2, 1, 2, 3], &[1, 2, 3]));
        assert!(!holds_in_order(&[1, 3, 2], &[1, 2, 3]));
        assert!(!holds_in_order(&[1, 3], &[1, 2, 3]));
        assert_eq!(reversals(&[1, 2, 1, 2, 3]), 1);
        assert_eq!(collapsed(&[1, 1, 2, 2, 1]), [1, 2, 1]);
    }
}
