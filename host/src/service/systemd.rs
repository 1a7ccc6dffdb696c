//! systemd's readiness protocol (`Type=notify`): `READY=1` once intake
//! listens, `STOPPING=1` when shutdown starts. Without `NOTIFY_SOCKET` in
//! the environment (not under systemd, or another `Type=`) it does nothing.
//!
//! Hand-written rather than the `sd-notify` crate: that crate (0.5)
//! connects to `NOTIFY_SOCKET` as a path, so it cannot reach a socket in
//! the abstract namespace (`@name`), which sd_notify(3) allows and
//! containers use. These lines do both.

/// Tells systemd `state` (such as `READY=1`), if it is listening.
pub fn notify(state: &str) {
    #[cfg(target_os = "linux")]
    {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
        let path = path.to_string_lossy().into_owned();
        if let Err(e) = send(&path, state) {
            tracing::warn!("cannot notify systemd ({state}) at NOTIFY_SOCKET={path}: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = state;
}

/// Sends `state` to the socket `path` names: `@name` is a socket in the
/// abstract namespace, anything else a file system path.
#[cfg(target_os = "linux")]
fn send(path: &str, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let address = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address).map(drop)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    };

    #[test]
    fn reaches_a_socket_in_the_abstract_namespace_and_one_on_disk() {
        let name = format!("buktor-notify-test-{}", std::process::id());
        let listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        super::send(&format!("@{name}"), "READY=1").unwrap();
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        super::send(path.to_str().unwrap(), "STOPPING=1").unwrap();
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }
}
