//! The accept loop: every TCP connection, before HTTP or WebSocket.
//!
//! Each connection is served by hyper's HTTP/1 with a header-read timeout (a client that
//! sends its request line or headers slowly, or sits idle between requests, is closed),
//! within a cap on connections in all and per client address (trusted proxies are
//! exempt from the per-address share: everyone behind them shares their address). An
//! accept that fails (out of file descriptors, say) is logged and retried after a
//! pause, never silently spun on. On shutdown the loop stops accepting and every open
//! HTTP connection is asked to finish its request and close.

use crate::net::{limit_key, TrustedProxies};
use axum::extract::ConnectInfo;
use axum::Router;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, stop: CancellationToken) {
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().call(request)
        });
        let connection = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
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
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
