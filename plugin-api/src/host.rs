//! What the host lends a plugin: today, its log.
//!
//! A plugin is its own world, with its own copy of `log` and `tracing`
//! globals, so whatever it logs through those never reaches the host. This
//! callback is the one road into the host's log.

use std::fmt;

use abi_stable::{StableAbi, std_types::RStr};

/// A log level, as an open set of codes. Lower is more severe.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Something failed.
    pub const ERROR: Self = Self(1);
    /// Something an operator should look at.
    pub const WARN: Self = Self(2);
    /// Normal operation worth a line: connected, created a table.
    pub const INFO: Self = Self(3);
    /// Detail for troubleshooting.
    pub const DEBUG: Self = Self(4);
    /// Everything.
    pub const TRACE: Self = Self(5);
}

/// Services the host provides to a plugin, handed over when a writer opens.
///
/// A prefix type: the host may add fields after the last prefix field in a
/// minor ABI version (see "Versioning" in the crate docs).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostServicesRef)))]
#[sabi(missing_field(option))]
pub struct HostServices {
    /// The most verbose level the host records, so that a plugin can skip
    /// formatting lines nobody will see.
    pub max_log_level: LogLevel,
    /// Writes one line into the host's log. `target` names the part of the
    /// plugin that speaks (a module path); the host adds the plugin's name.
    #[sabi(last_prefix_field)]
    pub log: extern "C" fn(level: LogLevel, target: RStr<'_>, message: RStr<'_>),
}

/// A plugin's handle on the host's log: cheap to copy, safe to share.
#[derive(Copy, Clone)]
pub struct Logger {
    services: HostServicesRef,
}

impl Logger {
    /// Wraps the services the host passed to [`crate::Plugin::open`].
    pub fn new(services: HostServicesRef) -> Self {
        Self { services }
    }

    /// Whether a line at `level` would be recorded.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.services.max_log_level()
    }

    /// Logs `message` at `level`, from `target`.
    pub fn log(&self, level: LogLevel, target: &str, message: fmt::Arguments<'_>) {
        if self.enabled(level) {
            let text = message.to_string();
            (self.services.log())(level, RStr::from_str(target), RStr::from_str(&text));
        }
    }

    /// Logs at ERROR.
    pub fn error(&self, message: impl fmt::Display) {
        self.log(LogLevel::ERROR, "plugin", format_args!("{message}"));
    }
    /// Logs at WARN.
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(LogLevel::WARN, "plugin", format_args!("{message}"));
    }
    /// Logs at INFO.
    pub fn info(&self, message: impl fmt::Display) {
        self.log(LogLevel::INFO, "plugin", format_args!("{message}"));
    }
    /// Logs at DEBUG.
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(LogLevel::DEBUG, "plugin", format_args!("{message}"));
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}
