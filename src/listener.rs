//! The accept loop: every TCP connection, before HTTP or WebSocket.
//!
//! Each connection is served by hyper's HTTP/1 with a header-read timeout (a client that
//! sends its request line or headers slowly, or sits idle between requests, is closed),
//! within a cap on connections in all and per client address (trusted proxies are
//! exempt from the per-address share: everyone behind them shares their address). An
//! accept that fails (out of file descriptors, say) is logged and retried after a
//! pause, never silently spun on. On shutdown the loop stops accepting and every open
//! HTTP connection is asked to finish its request and close.
//!
//! With [`Tls`], each connection's TLS handshake runs in its own task (under the same
//! timeout as the headers), so a slow handshake holds up nobody else. The certificate
//! is swapped whole on reload: new connections get the new one, open ones keep theirs.

use crate::net::{limit_key, TrustedProxies};
use axum::extract::ConnectInfo;
use axum::Router;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tracing::Instrument;

/// Numbers connections for the logs: every line about one carries its `conn` id (a
/// WebSocket keeps the id of the connection it upgraded from).
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// How many connections the loop takes, and how long a client may take with its headers.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// HTTP connections open in all; 0 = unlimited. A WebSocket leaves this count when
    /// it upgrades: the WebSocket caps count it from then on.
    pub max_connections: u32,
    /// HTTP connections open per client address; 0 = unlimited.
    pub max_per_address: u32,
    /// Time a client has to send a request's headers, and to start the next request on
    /// a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Peers exempt from the per-address share.
    pub trusted_proxies: TrustedProxies,
}

/// Whether a request came over TLS: the listener puts it in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// The server's certificate and key, read from their PEM files, swappable while serving.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: RwLock<Arc<rustls::ServerConfig>>,
}

impl Tls {
    /// Reads and checks both files.
    pub fn load(cert: &str, key: &str) -> Result<Tls, String> {
        let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
        let config = RwLock::new(Arc::new(server_config(&cert, &key)?));
        Ok(Tls { cert, key, config })
    }

    /// Reads both files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Arc::new(server_config(&self.cert, &self.key)?);
        *self.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self.config.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn server_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read the certificate {}: {err}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("cannot read the private key {}: {err}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|err| {
            format!("the certificate {} and key {} do not go together: {err}", cert.display(), key.display())
        })?;
    // The server speaks HTTP/1.1 only (WebSockets upgrade from it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Counts of open connections.
#[derive(Default)]
struct Open {
    total: AtomicU32,
    per_address: DashMap<IpAddr, u32>,
}

/// One open connection counted; released on drop.
struct Slot {
    open: Arc<Open>,
    address: Option<IpAddr>,
}

impl Open {
    fn take(self: &Arc<Open>, peer: IpAddr, limits: &ConnectionLimits) -> Result<Slot, &'static str> {
        if limits.max_connections != 0 && self.total.fetch_add(1, Relaxed) >= limits.max_connections {
            self.total.fetch_sub(1, Relaxed);
            return Err("the server has its most connections open");
        }
        if limits.max_connections == 0 {
            self.total.fetch_add(1, Relaxed);
        }
        let mut slot = Slot { open: self.clone(), address: None };
        if limits.max_per_address != 0 && !limits.trusted_proxies.contains(peer) {
            let address = limit_key(peer);
            let mut count = self.per_address.entry(address).or_insert(0);
            if *count >= limits.max_per_address {
                return Err("one address has its most connections open");
            }
            *count += 1;
            slot.address = Some(address);
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.total.fetch_sub(1, Relaxed);
        if let Some(address) = self.address {
            if let Some(mut count) = self.open.per_address.get_mut(&address) {
                *count = count.saturating_sub(1);
            }
            self.open.per_address.remove_if(&address, |_, count| *count == 0);
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets open HTTP
/// connections finish (upgraded WebSockets are the server's to close).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    // Every connection's task, so shutdown can wait for them.
    let connections = TaskTracker::new();
    let open = Arc::new(Open::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors (EMFILE, ENFILE) or memory: retrying at once
                // would spin; connections closing will make room.
                tracing::warn!(error = %err, "accepting a connection failed; pausing before the next");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match open.take(peer.ip(), &limits) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(%peer, "refused a connection: {why}");
                continue;
            }
        };
        // Without TCP_NODELAY a reply queued right behind an event waits ~40 ms for the
        // client's delayed ACK (Nagle); the socket writer already batches.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let (app, http, stop, tls) = (app.clone(), http.clone(), stop.clone(), tls.clone());
        let handshake_within = limits.header_read_timeout;
        let span = tracing::info_span!("conn", id = CONNECTIONS.fetch_add(1, Relaxed));
        let connection = async move {
            match tls {
                None => serve_connection(tcp, peer, false, app, &http, &stop).await,
                Some(tls) => match tokio::time::timeout(handshake_within, tls.acceptor().accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, peer, true, app, &http, &stop).await,
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake too slow; closed"),
                },
            }
            drop(slot);
        };
        connections.spawn(connection.instrument(span));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves HTTP/1 (and its upgrades) on one connection until it ends or `stop`.
async fn serve_connection<Io>(
    io: Io,
    peer: SocketAddr,
    secure: bool,
    app: Router,
    http: &hyper::server::conn::http1::Builder,
    stop: &CancellationToken,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        request.extensions_mut().insert(Secure(secure));
        app.clone().call(request)
    });
    let connection = http.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.cancelled() => {
            // Finish the request in flight, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}
