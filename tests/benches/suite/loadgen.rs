//! The load generator: a real HTTP/1.1 client over keep-alive connections,
//! on one thread (a current-thread tokio runtime), so that it takes the
//! same share of the machine whichever server it loads.
//!
//! Requests are built in full before the clock starts ([`Request::post`]),
//! so that making unique keys and signing them costs the measurement
//! nothing. Two shapes of load:
//! - [`closed_loop`]: `connections` senders, each sending its next request
//!   as soon as the previous one is answered: the most a server takes.
//! - [`paced`]: request `n` leaves at `n / rate` seconds (an open loop), as
//!   webhooks arrive from Buktor, whatever the server's speed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One request, as the bytes sent on the wire.
pub struct Request(Vec<u8>);

impl Request {
    /// `POST /receive-event` with a JSON body and extra headers.
    pub fn post(address: &str, body: &str, headers: &[(&str, String)]) -> Self {
        let mut head = format!(
            "POST /receive-event HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        Self(head.into_bytes())
    }
}

/// What a closed-loop run measured.
pub struct Run {
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// Each request's time from its first byte sent to its answer read.
    pub latencies: Latencies,
}

impl Run {
    /// Answered requests per second.
    pub fn per_second(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends every request over `connections` keep-alive connections to
/// `address`, each connection sending its next request when the previous
/// one is answered. Panics on any answer but 2xx: a benchmark of refusals
/// would measure nothing.
pub fn closed_loop(address: &str, connections: usize, requests: Vec<Request>) -> Run {
    let started = Instant::now();
    let exchanges = send_all(address, connections, requests, None);
    let elapsed = started.elapsed();
    Run { elapsed, latencies: Latencies::new(exchanges.iter().map(|e| e.answered - e.sent).collect()) }
}

/// Sends request `n` at `n / per_second` seconds after the start, over
/// `connections` keep-alive connections, and returns when each was
/// answered (by request index). A request whose time comes while every
/// connection still waits for an answer leaves late; the answer times show
/// it.
pub fn paced(address: &str, connections: usize, requests: Vec<Request>, per_second: f64) -> Vec<Instant> {
    let mut exchanges = send_all(address, connections, requests, Some(per_second));
    exchanges.sort_by_key(|e| e.index);
    exchanges.into_iter().map(|e| e.answered).collect()
}

/// One request's round trip.
struct Exchange {
    index: usize,
    sent: Instant,
    answered: Instant,
}

/// Sends every request, each connection taking the next one as soon as it
/// is free, or (with `per_second`) once its time has come too.
fn send_all(address: &str, connections: usize, requests: Vec<Request>, per_second: Option<f64>) -> Vec<Exchange> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    block_on(async {
        let start = tokio::time::Instant::now();
        let senders: Vec<_> = (0..connections)
            .map(|_| {
                let (requests, next, address) = (requests.clone(), next.clone(), address.to_string());
                tokio::spawn(async move {
                    let mut connection = Connection::open(&address).await;
                    let mut exchanges = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(index) else { break };
                        if let Some(rate) = per_second {
                            tokio::time::sleep_until(start + Duration::from_secs_f64(index as f64 / rate)).await;
                        }
                        let sent = Instant::now();
                        connection.exchange(request).await;
                        exchanges.push(Exchange { index, sent, answered: Instant::now() });
                    }
                    exchanges
                })
            })
            .collect();
        let mut all = Vec::with_capacity(requests.len());
        for sender in senders {
            all.extend(sender.await.expect("sender task"));
        }
        all
    })
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)
}

/// One keep-alive connection and the bytes read past the last answer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).await.unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self { stream, buffer: Vec::with_capacity(4096) }
    }

    /// Sends `request` and reads its whole answer; panics unless it is 2xx.
    async fn exchange(&mut self, request: &Request) {
        self.stream.write_all(&request.0).await.expect("send a request");
        let (head_end, body_length) = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break (end + 4, content_length(&self.buffer[..end]));
            }
            self.read_more().await;
        };
        while self.buffer.len() < head_end + body_length {
            self.read_more().await;
        }
        let status = &self.buffer[9..12];
        if status[0] != b'2' {
            panic!("the server answered: {}", String::from_utf8_lossy(&self.buffer[..head_end + body_length]));
        }
        self.buffer.drain(..head_end + body_length);
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let read = self.stream.read(&mut chunk).await.expect("read an answer");
        assert!(read > 0, "the server closed a keep-alive connection");
        self.buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The `Content-Length` of a response head (0 when absent).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.trim().parse().expect("a numeric Content-Length"))
}

/// Durations, sorted, for percentiles.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Sorts `durations`.
    pub fn new(mut durations: Vec<Duration>) -> Self {
        durations.sort_unstable();
        Self(durations)
    }

    /// How many.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The `p`-th percentile (0–100), nearest rank, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.0.len() as f64).ceil().max(1.0) as usize;
        self.0[rank.min(self.0.len()) - 1].as_secs_f64() * 1000.0
    }

    /// The longest, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.percentile_ms(100.0)
    }
}
