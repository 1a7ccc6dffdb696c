//! How `run` is supervised. [`lifecycle::Control`] says what stops it (Ctrl-C,
//! SIGTERM, Ctrl-Break, the Windows service manager) and whom it tells
//! that it is ready or stopping; [`systemd`] is `Type=notify`;
//! [`winservice`] installs and runs the host as a Windows service.

pub mod lifecycle;
pub mod systemd;
pub mod winservice;
