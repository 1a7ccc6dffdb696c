//! How `run` is told to stop, and how it tells its supervisor (a console,
//! systemd, or the Windows service manager) that it is ready or stopping.
//!
//! The first stop request starts a graceful shutdown: intake stops
//! accepting, in-flight requests finish, the worker finishes its batch and
//! the committer its queue. A second request stops at once. Every accepted
//! event is on disk before it was answered, so neither loses anything.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A hook that runs once at a point of the lifecycle.
type Hook = Box<dyn FnOnce() + Send>;

/// The lifecycle of one `run`: who asks it to stop, who hears it is ready.
pub struct Control {
    /// Notified once per stop request (a signal, or the service manager's
    /// Stop); `notify_one` keeps a request made before anyone waits.
    stop: Arc<Notify>,
    /// Ctrl-C and SIGTERM are stop requests (a console or systemd); a
    /// Windows service has no console and hears only the service manager.
    from_signals: bool,
    /// Runs once intake is listening.
    on_ready: Mutex<Option<Hook>>,
    /// Runs once, when the first stop request arrives.
    on_stopping: Mutex<Option<Hook>>,
}

impl Control {
    /// A console or a systemd unit: Ctrl-C or SIGTERM stops; readiness and
    /// stopping are told to systemd when it listens (`Type=notify`).
    pub fn console() -> Self {
        Self {
            stop: Arc::new(Notify::new()),
            from_signals: true,
            on_ready: Mutex::new(Some(Box::new(|| crate::service::systemd::notify("READY=1")))),
            on_stopping: Mutex::new(Some(Box::new(|| crate::service::systemd::notify("STOPPING=1")))),
        }
    }

    /// A supervisor of its own (the Windows service manager): it calls
    /// [`Stopper::request_stop`] through a handle from [`Control::stopper`].
    pub fn supervised(on_ready: Hook, on_stopping: Hook) -> Self {
        Self {
            stop: Arc::new(Notify::new()),
            from_signals: false,
            on_ready: Mutex::new(Some(on_ready)),
            on_stopping: Mutex::new(Some(on_stopping)),
        }
    }

    /// A handle that asks for a stop from any thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Forwards Ctrl-C and SIGTERM as stop requests, when this control
    /// takes them. Call from inside the runtime.
    pub fn listen_for_signals(&self) {
        if !self.from_signals {
            return;
        }
        let stop = self.stopper();
        tokio::spawn(async move {
            loop {
                signal().await;
                stop.request_stop();
            }
        });
    }

    /// Intake is listening.
    pub fn ready(&self) {
        take(&self.on_ready);
    }

    /// Waits for the next stop request. The first one also tells the
    /// supervisor that shutdown has begun.
    pub async fn stop_requested(&self) {
        self.stop.notified().await;
        take(&self.on_stopping);
    }
}

/// Asks a running `run` to stop (see [`Control::stopper`]).
#[derive(Clone)]
pub struct Stopper(Arc<Notify>);

impl Stopper {
    /// The first call starts a graceful shutdown; a second stops at once.
    pub fn request_stop(&self) {
        self.0.notify_one();
    }
}

/// Runs the hook in `slot`, if it has not run yet.
fn take(slot: &Mutex<Option<Hook>>) {
    let hook = crate::sync::lock(slot).take();
    if let Some(hook) = hook {
        hook();
    }
}

/// Ctrl-C; SIGTERM on Unix (what systemd sends); Ctrl-Break or closing
/// the console window on Windows.
async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    // A console window's Ctrl-Break and close button stop gracefully too.
    #[cfg(windows)]
    let terminate = async {
        use tokio::signal::windows::{ctrl_break, ctrl_close};
        match (ctrl_break(), ctrl_close()) {
            (Ok(mut ctrl_break), Ok(mut close)) => {
                tokio::select! {
                    _ = ctrl_break.recv() => {}
                    _ = close.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    };
    #[cfg(not(any(unix, windows)))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_stop_requested_before_anyone_waits_is_kept_and_hooks_run_once() {
        let stopping = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicUsize::new(0));
        let (s, r) = (stopping.clone(), ready.clone());
        let control = Control::supervised(
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
            Box::new(move || {
                s.fetch_add(1, Ordering::SeqCst);
            }),
        );
        control.ready();
        control.ready();
        let stopper = control.stopper();
        stopper.request_stop();
        control.stop_requested().await;
        std::thread::spawn(move || stopper.request_stop()).join().unwrap();
        control.stop_requested().await;
        assert_eq!(ready.load(Ordering::SeqCst), 1);
        assert_eq!(stopping.load(Ordering::SeqCst), 1);
    }
}
