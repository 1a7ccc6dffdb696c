//! A doorbell between threads: "there is work" and "time to stop".
//!
//! The committer rings it after it journals new events, so the sync worker
//! starts at once instead of polling; shutdown rings it with `stop`.

use std::{
    sync::{Condvar, Mutex},
    time::Duration,
};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Wakeup {
    state: Mutex<State>,
    bell: Condvar,
}

#[derive(Debug, Default)]
struct State {
    rung: bool,
    stop: bool,
}

impl Wakeup {
    /// Says there is new work.
    pub fn ring(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rung = true;
        self.bell.notify_all();
    }

    /// Asks every waiter to stop.
    pub fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.bell.notify_all();
    }

    /// Whether stop was asked.
    pub fn stopping(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop
    }

    /// Sleeps for `duration`, waking early only to stop: new work does not
    /// cut a backoff short. Returns false when stopping.
    pub fn sleep(&self, duration: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = self.bell.wait_timeout_while(state, duration, |s| !s.stop).unwrap_or_else(|e| e.into_inner());
        !state.stop
    }

    /// Waits until rung, stopped, or `timeout` passes; clears the ring.
    /// Returns false when stopping.
    pub fn wait(&self, timeout: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) =
            self.bell.wait_timeout_while(state, timeout, |s| !s.rung && !s.stop).unwrap_or_else(|e| e.into_inner());
        state.rung = false;
        !state.stop
    }
}
