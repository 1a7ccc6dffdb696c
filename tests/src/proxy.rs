//! A TCP proxy a test can cut and restore, to play a network outage
//! between the middleware and its HIS database, or slow down, to play a
//! distant one.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

/// Forwards `127.0.0.1:<port>` to a target address.
pub struct Proxy {
    /// `127.0.0.1:PORT`: point the middleware here.
    pub address: String,
    state: Arc<State>,
}

struct State {
    cut: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
    /// Microseconds each chunk waits before it is passed on.
    delay_us: AtomicU64,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().unwrap().to_string();
        let state =
            Arc::new(State { cut: AtomicBool::new(false), open: Mutex::new(Vec::new()), delay_us: AtomicU64::new(0) });
        let shared = state.clone();
        let target = target.to_string();
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                // The cut flag is read and the connection registered under one
                // lock, so that cut() cannot slip in between and miss it.
                let mut open = shared.open.lock().unwrap();
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), shared.clone());
                pipe(server, client, shared.clone());
            }
        });
        Self { address, state }
    }

    /// Drops every open connection and refuses new ones, like a pulled cable.
    pub fn cut(&self) {
        let mut open = self.state.open.lock().unwrap();
        self.state.cut.store(true, Ordering::SeqCst);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk, either way, for `delay` before passing it on: each
    /// round trip to the server takes at least twice that.
    pub fn delay(&self, delay: Duration) {
        self.state.delay_us.store(delay.as_micros().try_into().unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, state: Arc<State>) {
    thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let delay = state.delay_us.load(Ordering::SeqCst);
                    if delay > 0 {
                        thread::sleep(Duration::from_micros(delay));
                    }
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
