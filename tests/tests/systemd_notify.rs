//! `Type=notify`: under systemd (`NOTIFY_SOCKET` set) the middleware says
//! `READY=1` once it listens, and `STOPPING=1` when a stop begins.

#![cfg(target_os = "linux")]

use std::{os::unix::net::UnixDatagram, time::Duration};

use buktor_tests::Setup;

#[test]
fn ready_once_listening_and_stopping_on_sigterm() {
    let mut setup = Setup::new();
    let socket_path = setup.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    setup.env.push(("NOTIFY_SOCKET".into(), socket_path.display().to_string()));
    let mut middleware = setup.start();

    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).expect("READY=1 within 20 s");
    assert_eq!(&buffer[..n], b"READY=1");
    // Ready means listening: the address from the startup line answers.
    assert_eq!(middleware.request("GET", "/health", &[], b"").status, 200);

    assert!(middleware.terminate().success());
    let n = socket.recv(&mut buffer).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buffer[..n], b"STOPPING=1");
}
