//! [`lock`]: a mutex's guard even after a thread panicked while holding it.
//!
//! The state behind the host's mutexes (health, metrics, lifecycle hooks,
//! the Windows service's status) stays meaningful after such a panic; a
//! poisoned lock must not take `/ready`, `/metrics` or a shutdown down
//! with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
