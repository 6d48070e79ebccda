//! Starting and stopping the server: the composition root.
//!
//! [`Server::start`] binds, opens the store, wires store → bus → hub, builds the
//! [`Shared`] state and merges the routes of [`http`] and
//! [`ws`]; `main` and the tests both use it (tests with port 0). Nothing
//! imports this module but `cli`. Shutdown is three steps: tell everyone (the
//! `shutdown` token: the listener stops accepting, sockets close with 1001), wait for
//! the tracked socket tasks, then close the store so the last group commit lands.

use crate::bus::redis::RedisBus;
use crate::bus::Bus;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::hub::Hub;
use crate::listener::{self, ConnectionLimits, Tls};
use crate::metrics::Metrics;
use crate::state::{AppState, Care, PublishCommits, Shared, StoreGaps};
use crate::store::{self, StoreError};
use crate::{http, ws};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs `work` on the shared state every `period` (the first time after one period)
/// until shutdown.
fn every(state: &AppState, period: Duration, work: fn(&Shared)) {
    let (shared, stop) = (state.clone(), state.shutdown.clone());
    state.tracker.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = ticks.tick() => work(&shared),
                () = stop.cancelled() => return,
            }
        }
    });
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are not usable.
    #[error("{0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::OpenError),
    /// The bus between nodes could not be reached.
    #[error(transparent)]
    Bus(#[from] crate::bus::redis::BusError),
    /// The store opened but the moderation state could not be loaded.
    #[error("cannot load moderation state: {0}")]
    Load(StoreError),
}

/// A running server.
pub struct Server {
    state: AppState,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    redirect_addr: Option<SocketAddr>,
    tls: Option<Arc<Tls>>,
    /// The accept loops: the public one, then the metrics and redirect listeners.
    serve: Vec<tokio::task::JoinHandle<()>>,
    /// A shared lock on the SQLite file while the server runs: `alongside restore`
    /// refuses to replace it under us.
    _file_lock: Option<std::fs::File>,
    bus_stop: CancellationToken,
}

/// [`bind`] for an optional listener: none when `addr` is empty.
async fn bind_if_set(addr: &str) -> Result<Option<(TcpListener, SocketAddr)>, StartError> {
    if addr.is_empty() {
        return Ok(None);
    }
    bind(addr).await.map(Some)
}

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |source| StartError::Bind { addr: addr.to_string(), source };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

impl Server {
    /// Binds `config.listen`, opens the store and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        config.check().map_err(StartError::Config)?;
        let tls = if config.tls_cert.is_empty() {
            None
        } else {
            Some(Arc::new(Tls::load(&config.tls_cert, &config.tls_key).map_err(StartError::Config)?))
        };
        let (listener, addr) = bind(&config.listen).await?;
        let metrics_listener = bind_if_set(&config.metrics_listen).await?;
        let redirect_listener = bind_if_set(&config.redirect_listen).await?;
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(metrics.clone(), config.write_at_once_from);
        // Stopped last, after the store's final writes have been published.
        let bus_stop = CancellationToken::new();
        let (bus, cluster): (Arc<dyn Bus>, _) = if config.bus.is_empty() {
            // One node: the hub is the bus.
            (Arc::new(hub.clone()), None)
        } else {
            let hub_subscriber = Arc::new(hub.clone());
            let publish_seconds = metrics.bus_publish_seconds.clone();
            let bus = RedisBus::start(&config.bus, &config.cluster, hub_subscriber, publish_seconds, bus_stop.clone())
                .await?;
            let ttl = Duration::from_secs_f64(config.presence_ttl_s.max(0.4));
            let cluster = Cluster::connect(&config.bus, &config.cluster, &config.node(), ttl).await.map_err(|err| {
                StartError::Config(format!("cannot reach the bus at {}: {err}", store::redacted(&config.bus)))
            })?;
            cluster.spawn_presence(hub.clone(), bus_stop.clone());
            (bus, Some(cluster))
        };
        let store =
            store::open(&config.database, Arc::new(PublishCommits { bus: bus.clone() }), metrics.clone()).await?;
        // PostgreSQL (or an in-memory SQLite) has no file to hold.
        let file_lock = match store::sqlite::backup::path_of(&config.database) {
            Ok(path) => store::sqlite::backup::hold(&path).map_err(StartError::Config)?,
            Err(_) => None,
        };
        hub.load_mutes(store.fetch_active_mutes(crate::protocol::now_ms()).await.map_err(StartError::Load)?);
        hub.load_blocks(store.fetch_all_blocks().await.map_err(StartError::Load)?);
        hub.load_duty(store.fetch_duty().await.map_err(StartError::Load)?);
        // What a bus loses (or brings out of order), the hub reads back from the store.
        hub.set_gap_filler(Arc::new(StoreGaps { store: store.clone() }));
        let care = Care::load(&config).map_err(StartError::Config)?;
        let state: AppState = Arc::new(Shared::new(config, store, bus, cluster, care, hub, metrics));
        // One ticker pings every socket, instead of a timer inside each socket's task.
        every(&state, state.config.ping_interval(), Shared::ping_all);
        // Limit keys nobody used lately are dropped once a minute, so invented keys
        // (addresses, account names) cost memory only while they are fresh.
        every(&state, Duration::from_secs(60), Shared::forget_idle_limits);
        // Changes the CLI makes beside a running server (a role, revoked tokens) reach
        // open sockets within seconds: the CLI records them, this task applies them.
        let changes = {
            let (state, stop) = (state.clone(), state.shutdown.clone());
            async move {
                let every = Duration::from_secs(2);
                let mut seen = None;
                loop {
                    match state.store.fetch_changes(seen).await {
                        Ok((newest, changes)) => {
                            for (user, change) in changes {
                                state.apply_outside_change(user, change).await;
                            }
                            seen = Some(newest);
                        }
                        Err(err) => tracing::debug!(error = %err, "cannot read changes made outside the server"),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        state.tracker.spawn(changes);
        // Hosts who went away go off duty after the grace, checked a few times within it.
        let duty = {
            let (state, stop) = (state.clone(), state.shutdown.clone());
            async move {
                let every = Duration::from_secs_f64((state.config.host_grace_s / 4.0).clamp(0.05, 5.0));
                let mut offline = std::collections::HashMap::new();
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        () = stop.cancelled() => return,
                    }
                    state.sweep_duty(&mut offline).await;
                }
            }
        };
        state.tracker.spawn(duty);
        // Summits follow their schedules: one timer for every summit on this node, due
        // when the next entry is (and looking again at least every 30 s, for schedules
        // set on other nodes).
        let phases = {
            let (state, stop) = (state.clone(), state.shutdown.clone());
            async move {
                let longest = Duration::from_secs(30);
                loop {
                    let next = state.advance_phases().await;
                    let wait = next.map_or(longest, |at| {
                        Duration::from_millis(u64::try_from(at - crate::protocol::now_ms()).unwrap_or(0)).min(longest)
                    });
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = state.phase_timer.notified() => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        state.tracker.spawn(phases);
        // Vote counts go out at most once a second per question.
        let votes = {
            let (state, stop) = (state.clone(), state.shutdown.clone());
            async move {
                let mut ticks = tokio::time::interval(Duration::from_secs(1));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => state.flush_votes().await,
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        state.tracker.spawn(votes);
        let app = Router::new().merge(http::routes()).merge(ws::routes()).with_state(state.clone());
        let stop = state.shutdown.clone();
        let limits = ConnectionLimits {
            max_connections: state.config.max_connections,
            max_per_address: state.config.max_connections_per_address,
            header_read_timeout: state.config.header_read_timeout(),
            trusted_proxies: state.trusted_proxies.clone(),
        };
        let mut serve = vec![tokio::spawn(listener::serve(listener, app, limits.clone(), tls.clone(), stop.clone()))];
        let metrics_addr = metrics_listener.map(|(listener, bound)| {
            let app = http::metrics_routes().with_state(state.clone());
            serve.push(tokio::spawn(listener::serve(listener, app, limits.clone(), None, stop.clone())));
            bound
        });
        let redirect_addr = redirect_listener.map(|(listener, bound)| {
            let app = http::redirect_routes(addr.port());
            serve.push(tokio::spawn(listener::serve(listener, app, limits.clone(), None, stop.clone())));
            bound
        });
        Ok(Server { state, addr, metrics_addr, redirect_addr, tls, serve, _file_lock: file_lock, bus_stop })
    }

    /// The separate metrics listener's address (`metrics_listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The redirecting plain-HTTP listener's address (`redirect_listen`), if any.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_addr
    }

    /// Whether the server speaks TLS itself.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A function that reads the certificate and key files again (on SIGHUP), and
    /// outlives the `Server` handle. New connections get the new certificate; open
    /// ones keep theirs. On an error the old one stays in use.
    pub fn tls_reloader(&self) -> impl Fn() -> Result<(), String> + Send + 'static {
        let tls = self.tls.clone();
        move || tls.as_ref().map_or(Ok(()), |tls| tls.reload())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that starts the shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Shuts down: stop accepting, close sockets with 1001, wait for them, flush the store.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the shutdown token is cancelled, then finishes the shutdown.
    pub async fn wait(self) {
        self.state.shutdown.cancelled().await;
        let grace = self.state.config.shutdown_grace();
        // Plain HTTP requests in flight finish; idle keep-alive connections are dropped.
        let loops = futures_util::future::join_all(self.serve);
        match tokio::time::timeout(grace, loops).await {
            Ok(ended) => {
                for err in ended.into_iter().filter_map(Result::err) {
                    tracing::error!(error = %err, "an accept loop failed");
                }
            }
            Err(_) => tracing::warn!("HTTP connections still open after the grace period"),
        }
        self.state.tracker.close();
        if tokio::time::timeout(grace, self.state.tracker.wait()).await.is_err() {
            tracing::warn!(sockets = self.state.tracker.len(), "sockets still open after the grace period");
        }
        self.state.store.close().await;
        self.bus_stop.cancel();
        tracing::info!("shut down");
    }
}
