//! The bound on a plugin call that never returns.
//!
//! A call into a plugin runs on the host's own thread, and nothing in a
//! process can stop code that is running in it. A plugin keeps its
//! [`Deadline`] (see plugin-api), and a call that comes back late is judged
//! in [`super::writer`]; one that does not come back at all (a driver stuck
//! in a read with no timeout) would stall every delivery for good. So every
//! call is watched: when one is still running its budget plus a grace
//! after its deadline, the host logs why and exits with code 70. The
//! service manager starts it again with a fresh plugin; every event is in
//! the journal, so nothing is lost, and the stuck batch is written again.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use his_plugin_api::Deadline;

/// The call being watched: what it is, and when it must have returned.
struct Watched {
    what: String,
    started: Instant,
    give_up_at: Instant,
}

/// The grace after a call's deadline before the host gives up on it: as
/// long as the budget, at least [`MIN_GRACE`].
fn grace(deadline: Deadline) -> Duration {
    deadline.budget().max(MIN_GRACE)
}

/// The shortest grace: time for a plugin to notice its deadline and roll back.
const MIN_GRACE: Duration = Duration::from_secs(5);

/// How often the watch looks.
const LOOK_EVERY: Duration = Duration::from_millis(500);

static CURRENT: Mutex<Option<Watched>> = Mutex::new(None);

/// Runs `call` (a call into the plugin: `what` says which) under the watch.
pub(crate) fn watch<T>(what: &str, deadline: Deadline, call: impl FnOnce() -> T) -> T {
    start_watching();
    let started = Instant::now();
    let give_up_at = started + deadline.budget() + grace(deadline);
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watched { what: what.to_string(), started, give_up_at });
    let result = call();
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    result
}

/// Starts the watching thread once per process.
fn start_watching() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("plugin-watchdog".into()).spawn(|| {
            loop {
                std::thread::sleep(LOOK_EVERY);
                if let Some(stuck) = overdue(&CURRENT.lock().unwrap_or_else(|e| e.into_inner()), Instant::now()) {
                    tracing::error!("{stuck}");
                    std::process::exit(70);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the plugin watchdog ({e}); a plugin call that never returns will not be bounded"
            );
        }
    });
}

/// The line to log if the watched call is overdue at `now`.
fn overdue(current: &Option<Watched>, now: Instant) -> Option<String> {
    let watched = current.as_ref()?;
    (now >= watched.give_up_at).then(|| {
        format!(
            "the plugin has not returned from {} for {} s, well past its deadline: exiting so that the service \
             restarts with a fresh plugin (every event is in the journal; the unfinished batch is written again)",
            watched.what,
            now.duration_since(watched.started).as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_overdue_only_after_its_deadline_and_grace() {
        let started = Instant::now();
        let deadline = Deadline::after(Duration::from_secs(2));
        let give_up_at = started + deadline.budget() + grace(deadline);
        let watched = Some(Watched { what: "the write to T".into(), started, give_up_at });
        assert_eq!(overdue(&watched, started + Duration::from_secs(6)), None, "2 s budget, 5 s grace");
        let line = overdue(&watched, started + Duration::from_secs(7)).unwrap();
        assert!(line.starts_with("the plugin has not returned from the write to T for 7 s"), "{line}");
        assert_eq!(overdue(&None, started + Duration::from_secs(99)), None);
        assert_eq!(grace(Deadline::after(Duration::from_secs(60))), Duration::from_secs(60));
    }
}
