//! systemd's readiness protocol (`Type=notify`): `READY=1` once intake
//! listens, `STOPPING=1` when shutdown starts. Without `NOTIFY_SOCKET` in
//! the environment (not under systemd, or another `Type=`) it does nothing.

/// Tells systemd `state` (such as `READY=1`), if it is listening.
pub fn notify(state: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
        let path = path.to_string_lossy().into_owned();
        // `@name` is a socket in the abstract namespace.
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let sent = address.and_then(|address| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address));
        if let Err(e) = sent {
            tracing::warn!("cannot notify systemd ({state}) at NOTIFY_SOCKET={path}: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = state;
}
