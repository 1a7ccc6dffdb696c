//! The data path below HTTP, in the order an event takes it:
//!
//! 1. [`committer`]: the one thread that writes the [`journal`] (group
//!    commit, one fsync per round); intake's 2xx waits for it.
//! 2. [`wakeup`]: the doorbell that tells the worker there is work.
//! 3. [`worker`]: the sync worker thread: due events, oldest first,
//!    [`mapping`] each to a row, batched per table, written through the
//!    plugin; outcomes go back to the committer. [`lookahead`] reads and
//!    maps the next window while the plugin writes; [`retry`] is the one
//!    backoff.
//!
//! [`quota`] is how much the journal may hold; intake asks it before it
//! journals an event, the committer keeps it up to date.
//!
//! The journal's operator queries (`events`, `replay`, `prune`) live in
//! [`journal::operations`], used by the commands and the admin routes.

pub mod committer;
pub mod hooks;
pub mod journal;
pub mod lookahead;
pub mod mapping;
pub mod quota;
pub mod retry;
#[cfg(feature = "simulation")]
pub mod simulation;
pub mod wakeup;
pub mod worker;
