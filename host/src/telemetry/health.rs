//! Readiness, as the committer and the worker report it; `GET /ready`
//! ([`crate::http::ready`]) answers 200 when the journal takes writes and
//! the HIS answered the worker's last contact (a write or a ping), else
//! 503 with the reasons. `/health` stays liveness only: a process that
//! answers it is running, ready or not.

use std::sync::Mutex;

use crate::sync::lock;

/// What the HIS did at the worker's last contact.
#[derive(Debug, Clone)]
enum His {
    /// No answer yet (the first connection is still being made).
    NotYet,
    /// It answered.
    Answered,
    /// It did not: why.
    Failed(String),
}

/// The two things readiness depends on, kept up to date by the committer
/// and the sync worker.
#[derive(Debug)]
pub struct Health {
    /// The last journal commit's error, if it failed.
    journal: Mutex<Option<String>>,
    his: Mutex<His>,
}

impl Default for Health {
    fn default() -> Self {
        Self { journal: Mutex::new(None), his: Mutex::new(His::NotYet) }
    }
}

impl Health {
    /// A journal commit succeeded.
    pub fn journal_committed(&self) {
        *lock(&self.journal) = None;
    }

    /// A journal commit failed (a full disk, a read-only file).
    pub fn journal_failed(&self, error: &str) {
        *lock(&self.journal) = Some(error.to_string());
    }

    /// The HIS answered: a write committed, or a ping came back.
    pub fn his_answered(&self) {
        *lock(&self.his) = His::Answered;
    }

    /// The HIS did not answer, or refused the login.
    pub fn his_failed(&self, error: &str) {
        *lock(&self.his) = His::Failed(error.to_string());
    }

    /// The kinds of [`Health::reasons`], which tell nothing of the HIS's
    /// host, user or schema: `journal_unwritable`, `his_not_answered_yet`,
    /// `his_unreachable`.
    pub fn reason_kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if lock(&self.journal).is_some() {
            kinds.push("journal_unwritable");
        }
        match &*lock(&self.his) {
            His::Answered => {}
            His::NotYet => kinds.push("his_not_answered_yet"),
            His::Failed(_) => kinds.push("his_unreachable"),
        }
        kinds
    }

    /// Why the middleware is not ready; empty when it is.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(error) = lock(&self.journal).as_ref() {
            reasons.push(format!("the journal cannot be written: {error}"));
        }
        match &*lock(&self.his) {
            His::Answered => {}
            His::NotYet => reasons.push("the HIS database has not answered yet".to_string()),
            His::Failed(error) => reasons.push(format!("the HIS database did not answer: {error}")),
        }
        reasons
    }
}
