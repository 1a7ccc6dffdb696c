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
//! HTTP/1.1 only: webhooks are one request at a time, nginx speaks
//! HTTP/1.1 to its upstreams, and HTTP/2's extra machinery (streams,
//! flow control, its own idle rules) would be surface for nothing. The
//! header deadline also runs from the moment a connection opens and while
//! a kept-alive one is idle, so a silent client is cut off too.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
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
    #[error("cannot listen on {address} (server.listen): {}", bind_hint(.error))]
    Bind {
        /// `server.listen`.
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
    /// `server.request_timeout_secs`: the TLS handshake, then each
    /// request's headers, must arrive within this.
    pub request_timeout: Duration,
    /// `server.max_connections`: beyond this, new connections wait in the
    /// kernel's backlog until one closes.
    pub max_connections: usize,
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
        tls: Option<TlsAcceptor>,
        limits: ConnectionLimits,
    ) -> Result<Self, ListenError> {
        let listener = TcpListener::bind(address).await.map_err(|error| ListenError::Bind { address, error })?;
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
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            };
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
            let app = app.clone();
            let tls = tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(stream, peer, tls, limits.request_timeout, app, watcher).await;
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    request_timeout: Duration,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app.map_request(move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(axum::body::Body::new)
    }));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(request_timeout);
    let served = match tls {
        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
        Some(acceptor) => match tokio::time::timeout(request_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake did not finish within {}s", request_timeout.as_secs());
                return;
            }
        },
    };
    if let Err(e) = served {
        // Malformed HTTP, a header deadline, a reset: the client's doing.
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
