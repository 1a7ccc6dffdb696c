//! The points at which a simulator may step in: run an operator's command
//! between two of the worker's reads, or stop the "process" (nothing done
//! after that point reaches the journal or the HIS).
//!
//! In the middleware every hook does nothing ([`NoHooks`]). The simulator
//! (`pipeline::simulation`, built with the `simulation` feature) drives the
//! real worker, committer and journal through them, so that one seed
//! replays one interleaving of the worker with `replay`, `prune`, intake and
//! crashes.

/// See the module documentation. Every method has a default that does
/// nothing, so production code pays one virtual call per point.
pub trait Hooks: Send + Sync {
    /// The worker (or its read-ahead) has read the holds of a window and is
    /// about to read its events, in the same snapshot. The simulator runs
    /// `replay` and `prune` here, to prove they cannot slip between the two.
    fn window_read(&self) {}

    /// The committer is about to commit a round. An `Err` makes the round
    /// fail as a journal error would (nothing of it is stored).
    fn before_journal_commit(&self) -> Result<(), String> {
        Ok(())
    }

    /// The committer committed a round, and has not answered yet.
    fn after_journal_commit(&self) {}
}

/// The middleware's hooks: none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
