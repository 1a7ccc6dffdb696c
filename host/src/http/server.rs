//! Listening: the accept loop, TLS, and the limits that hold before a
//! request reaches a handler.
//!
//! `axum::serve` would do for a trusted network, but a port on the internet
//! needs what it leaves out: a deadline for request headers and for the TLS
//! handshake (a client that connects and sends nothing must not hold a
//! connection forever), a cap on open connections, and TLS itself. So the
//! loop is ours, on hyper-util, and small:
//!
//! accept → (cap) → task: [TLS handshake within the deadline] → HTTP/1.1
//! with a header deadline → the router, which sees the peer address as
//! `ConnectInfo<SocketAddr>`.
//!
//! Two more bounds hold per connection: a client that stops taking the
//! answers (never reads) is cut off once a write has waited the same
//! deadline, and one client address (IPv6 by /64; loopback, where a proxy
//! connects from, excepted) holds at most `server.max_connections_per_client`
//! connections, so that one client cannot take every place.
//!
//! HTTP/1.1 only: webhooks are one request at a time, nginx speaks
//! HTTP/1.1 to its upstreams, and HTTP/2's extra machinery (streams,
//! flow control, its own idle rules) would be surface for nothing. The
//! header deadline also runs from the moment a connection opens and while
//! a kept-alive one is idle, so a silent client is cut off too.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};
use tower::ServiceExt;

use crate::config::TlsConfig;

/// Why the server could not start listening. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is taken or not ours.
    #[error("cannot listen on {address} ({setting}): {}", bind_hint(.error))]
    Bind {
        /// `server.listen` or `server.admin_listen`.
        setting: &'static str,
        /// Its address.
        address: SocketAddr,
        /// Why (not a `source`: the message already says it).
        error: std::io::Error,
    },
    /// A certificate or key file could not be used.
    #[error("{setting} {}: {message}", .file.display())]
    Tls {
        /// `server.tls.cert_path` or `server.tls.key_path`.
        setting: &'static str,
        /// The file, resolved against the config's folder.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// What a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `server.request_timeout_secs`: a write of an answer waits at most
    /// this (the body's own deadline is intake's).
    pub request_timeout: Duration,
    /// `server.idle_timeout_secs`: the TLS handshake, then each request's
    /// headers, must arrive within this of the connection opening or of
    /// its last answer.
    pub idle_timeout: Duration,
    /// `server.max_connections`: beyond this, a new connection takes the
    /// place of the connection idle longest, or waits in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
    /// `server.max_connections_per_client`: beyond this, a client's new
    /// connections are closed at once (loopback excepted).
    pub max_connections_per_client: usize,
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
}

/// Reads `server.tls`: the certificate chain and private key, PEM.
/// Relative paths are relative to `config_dir`. Done before anything else
/// starts, so that a wrong path stops startup with a line that names it.
pub fn load_tls(tls: &TlsConfig, config_dir: &Path) -> Result<TlsAcceptor, ListenError> {
    let cert_file = config_dir.join(&tls.cert_path);
    let key_file = config_dir.join(&tls.key_path);
    let cert_error =
        |message: String| ListenError::Tls { setting: "server.tls.cert_path", file: cert_file.clone(), message };
    let key_error =
        |message: String| ListenError::Tls { setting: "server.tls.key_path", file: key_file.clone(), message };

    let chain = CertificateDer::pem_file_iter(&cert_file)
        .map_err(|e| cert_error(pem_message(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_message(e)))?;
    if chain.is_empty() {
        return Err(cert_error("holds no certificate (expected -----BEGIN CERTIFICATE-----)".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| key_error(pem_message(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| key_error(format!("does not go with the certificate, or is not usable: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What to do about a failed bind, with the system's own words.
fn bind_hint(error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => "is another program using that port?",
        std::io::ErrorKind::PermissionDenied => "ports below 1024 need root or CAP_NET_BIND_SERVICE; use 1024 or above",
        std::io::ErrorKind::AddrNotAvailable => "this server has no such address; use 127.0.0.1 or one of its own",
        _ => "check the address and port",
    };
    format!("{hint} ({error})")
}

fn pem_message(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot be read: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => {
            "holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, \
                                                         RSA PRIVATE KEY or EC PRIVATE KEY)"
                .to_string()
        }
        other => format!("is not valid PEM: {other}"),
    }
}

impl Server {
    /// Binds `address`; with `tls`, connections are served over HTTPS.
    pub async fn bind(
        address: SocketAddr,
        setting: &'static str,
        tls: Option<TlsAcceptor>,
        limits: ConnectionLimits,
    ) -> Result<Self, ListenError> {
        let listener =
            TcpListener::bind(address).await.map_err(|error| ListenError::Bind { setting, address, error })?;
        Ok(Self { listener, tls, limits })
    }

    /// The address actually bound (the port, when `server.listen` says 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves `app` until `shutdown` completes, then stops accepting and
    /// waits for open connections to finish their requests (idle ones
    /// close at once). The caller bounds that wait.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()>) {
        let Self { listener, tls, limits } = self;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Each connection's task holds a clone; when the last is dropped,
        // every connection has ended.
        let (alive, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let clients = Arc::new(PerClient::default());
        let open = Arc::new(Open::default());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset
                        // before it was accepted: wait a moment, go on.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    // Full: the connection idle longest gives its place to
                    // this one (idle sockets must not keep a real request
                    // waiting); with none idle, this one waits for a place.
                    open.evict_idlest();
                    tokio::select! {
                        () = &mut shutdown => break,
                        slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    }
                }
            };
            let Some(client_slot) = clients.clone().enter(peer.ip(), limits.max_connections_per_client) else {
                tracing::debug!(%peer, "closed: the client has {} connections open", limits.max_connections_per_client);
                continue;
            };
            let app = app.clone();
            let tls = tls.clone();
            let (stopped, alive, entry) = (stopped.clone(), alive.clone(), open.clone().enter(peer));
            tokio::spawn(async move {
                let _held = (slot, client_slot, alive);
                serve_connection(stream, peer, tls, limits, app, entry, stopped).await;
            });
        }
        drop(listener);
        let _ = stop.send(true);
        drop(alive);
        let _ = all_ended.recv().await;
    }
}

/// The open connections, and whether each is between requests: when every
/// place is taken, the one idle longest is asked to close.
#[derive(Debug, Default)]
struct Open {
    next_id: std::sync::atomic::AtomicU64,
    connections: std::sync::Mutex<std::collections::HashMap<u64, Arc<Connection>>>,
}

#[derive(Debug)]
struct Connection {
    /// Requests being handled now.
    busy: std::sync::atomic::AtomicUsize,
    /// Whether an answer waits to be written (the client is not reading).
    writing: std::sync::atomic::AtomicBool,
    /// Since when it has had no request (its opening, or its last answer).
    idle_since: std::sync::Mutex<tokio::time::Instant>,
    /// Told to close once idle.
    evict: tokio::sync::Notify,
}

/// A connection's entry in [`Open`], removed when dropped.
struct OpenEntry {
    open: Arc<Open>,
    id: u64,
    connection: Arc<Connection>,
    peer: SocketAddr,
}

impl Open {
    fn enter(self: Arc<Self>, peer: SocketAddr) -> OpenEntry {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let connection = Arc::new(Connection {
            busy: Default::default(),
            writing: Default::default(),
            idle_since: std::sync::Mutex::new(tokio::time::Instant::now()),
            evict: tokio::sync::Notify::new(),
        });
        self.connections.lock().unwrap_or_else(|p| p.into_inner()).insert(id, connection.clone());
        OpenEntry { open: self, id, connection, peer }
    }

    /// Asks the connection idle longest to close, if one is idle.
    fn evict_idlest(&self) {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let idlest = connections
            .values()
            .filter(|c| {
                c.busy.load(std::sync::atomic::Ordering::Acquire) == 0
                    && !c.writing.load(std::sync::atomic::Ordering::Acquire)
            })
            .min_by_key(|c| *c.idle_since.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(connection) = idlest {
            connection.evict.notify_one();
        }
    }
}

impl Drop for OpenEntry {
    fn drop(&mut self) {
        self.open.connections.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl Connection {
    fn started(&self) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn finished(&self) {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        self.busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Open connections per client (IPv6 by /64), for
/// `server.max_connections_per_client`.
#[derive(Debug, Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// A client's place, given back when the connection ends.
struct ClientSlot {
    clients: Arc<PerClient>,
    client: Option<std::net::IpAddr>,
}

impl PerClient {
    /// A place for a new connection from `address`, unless it has `limit`
    /// already. Loopback is not counted: a proxy on this server connects
    /// from there for every client.
    fn enter(self: Arc<Self>, address: std::net::IpAddr, limit: usize) -> Option<ClientSlot> {
        if address.is_loopback() || address.to_canonical().is_loopback() {
            return Some(ClientSlot { clients: self, client: None });
        }
        let client = crate::http::ratelimit::client_of(address);
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(client).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        drop(open);
        Some(ClientSlot { clients: self, client: Some(client) })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut open = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&client);
            }
        }
    }
}

/// A stream whose writes fail once the peer has taken nothing for `limit`:
/// a client that sends requests but never reads the answers would
/// otherwise hold its connection (and a place) forever.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write waits; reset by every write that goes through.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Told whether an answer is waiting to be written: such a connection
    /// is not idle, and is not evicted.
    connection: Arc<Connection>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration, connection: Arc<Connection>) -> Self {
        Self { inner, limit, stalled: None, connection }
    }

    fn went_through(&mut self) {
        if self.stalled.take().is_some() {
            self.connection.writing.store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// After `inner` said Pending: an error once the deadline has passed.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.connection.writing.store(true, std::sync::atomic::Ordering::Release);
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took no data for {}s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.went_through();
                Poll::Ready(result)
            }
            Poll::Pending => self.check_stall(cx).map(|r| r.map(|()| 0)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                self.went_through();
                Poll::Ready(result)
            }
            Poll::Pending => self.check_stall(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    app: Router,
    entry: OpenEntry,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = WriteDeadline::new(stream, limits.request_timeout, entry.connection.clone());
    let (starts, ends) = (entry.connection.clone(), entry.connection.clone());
    let service = app
        .map_request(move |mut request: axum::extract::Request<_>| {
            starts.started();
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(axum::body::Body::new)
        })
        .map_response(move |response| {
            ends.finished();
            response
        });
    let service = TowerToHyperService::new(service);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout);
    let served = match tls {
        None => serve_until_told(builder.serve_connection(TokioIo::new(stream), service), &entry, &mut stopped).await,
        Some(acceptor) => match tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                serve_until_told(builder.serve_connection(TokioIo::new(stream), service), &entry, &mut stopped).await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake did not finish within {}s", limits.idle_timeout.as_secs());
                return;
            }
        },
    };
    if let Err(e) = served {
        // Malformed HTTP, a header deadline, a reset: the client's doing.
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Serves `connection` until it ends; when the server stops, or the
/// connection is evicted for a newer one, it finishes the request in
/// progress (an idle one closes at once).
async fn serve_until_told<I, S>(
    connection: http1::Connection<I, S>,
    entry: &OpenEntry,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    let stop = async {
        if !*stopped.borrow() {
            let _ = stopped.changed().await;
        }
    };
    tokio::select! {
        served = connection.as_mut() => return served,
        () = stop => {},
        () = entry.connection.evict.notified() => {
            tracing::debug!(peer = %entry.peer, "closing: idle, it gives its place to a new connection");
        },
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_limit_of_connections_and_loopback_is_not_counted() {
        let clients = Arc::new(PerClient::default());
        let remote: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let first = clients.clone().enter(remote, 2).expect("first");
        let second = clients.clone().enter(remote, 2).expect("second");
        assert!(clients.clone().enter(remote, 2).is_none(), "a third is refused");
        // The same /64 is the same client; another is not.
        let six: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let _six = clients.clone().enter(six, 1).expect("v6");
        assert!(clients.clone().enter("2001:db8::ffff".parse().unwrap(), 1).is_none());
        drop(first);
        let _third = clients.clone().enter(remote, 2).expect("a place again once one closed");
        drop(second);
        let loopback: Vec<_> = (0..10).map(|_| clients.clone().enter("127.0.0.1".parse().unwrap(), 1)).collect();
        assert!(loopback.iter().all(Option::is_some));
    }
}
