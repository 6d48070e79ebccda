//! Starting and stopping the server, and the state every request shares.
//!
//! [`Server::start`] binds, opens the store and wires store → bus → hub; `main` and the
//! tests both use it (tests with port 0). Shutdown is three steps: tell everyone (the
//! `shutdown` token: the listener stops accepting, sockets close with 1001), wait for
//! the tracked socket tasks, then close the store so the last group commit lands.

use crate::auth::Passwords;
use crate::bus::{Bus, BusMessage, Effect, LocalBus, RoomEnvelope};
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::protocol::{format_ts, ApiError, ErrorCode, Event, Message, Room};
use crate::store::{self, CommitListener, RoomId, RoomRecord, Store, StoreError, UserId};
use axum::extract::ws::Utf8Bytes;
use axum::serve::ListenerExt;
use dashmap::DashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler shares: a cheap `Clone` handle.
pub type AppState = Arc<Shared>;

/// The server's shared state.
pub struct Shared {
    /// The settings it runs with.
    pub config: Config,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Where committed changes are published.
    pub bus: Arc<dyn Bus>,
    /// This node's fan-out.
    pub hub: Hub,
    /// Password hashing behind its semaphore.
    pub passwords: Passwords,
    /// Exported figures.
    pub metrics: Arc<Metrics>,
    /// Login attempts per account.
    pub logins_per_account: RateLimiter,
    /// Login attempts per client address.
    pub logins_per_address: RateLimiter,
    /// Registrations per client address.
    pub registrations_per_address: RateLimiter,
    /// Open WebSockets per client address.
    pub sockets_per_address: DashMap<IpAddr, u32>,
    /// When each member last sent in a room, for slow mode. Node-local: behind a load
    /// balancer a member could send once per node per interval.
    pub last_sends: DashMap<(RoomId, UserId), std::time::Instant>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Every socket task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    next_session_id: AtomicU64,
}

impl Shared {
    /// A room by name, from the cache or the store; `not_found` if there is none.
    pub async fn room(&self, name: &str) -> Result<Arc<RoomRecord>, ApiError> {
        if let Some(room) = self.hub.cached_room(name) {
            return Ok(room);
        }
        match self.store.fetch_room(name).await {
            Ok(Some(room)) => {
                let room = Arc::new(room);
                self.hub.cache_room(room.clone());
                Ok(room)
            }
            Ok(None) => Err(ApiError::new(ErrorCode::NotFound, format!("There is no room named `{name}`."))),
            Err(err) => Err(internal(err)),
        }
    }

    /// The wire view of a room, with this node's online count.
    pub fn room_view(&self, room: &RoomRecord) -> Room {
        Room {
            name: room.name.clone(),
            topic: room.topic.clone(),
            kind: room.kind,
            owner: room.owner.clone(),
            members_online: self.hub.members_online(&room.name),
            slow_mode_s: room.slow_mode_s,
            locked: room.locked,
            starts_at: room.starts_at.map(format_ts),
            ends_at: room.ends_at.map(format_ts),
            capacity: room.capacity,
        }
    }

    /// Serialises `event` once and publishes it to the room's members.
    pub fn publish_room(&self, room: &str, event: &Event, except: Option<UserId>, effect: Option<Effect>) {
        let frame = Utf8Bytes::from(event.to_json());
        self.bus.publish(BusMessage::Room(RoomEnvelope { room: room.to_string(), frame, except, effect }));
    }

    /// Serialises `event` once and sends it to every socket of `user`.
    pub fn publish_user(&self, user: UserId, event: &Event) {
        self.bus.publish(BusMessage::User { user, frame: Utf8Bytes::from(event.to_json()) });
    }

    /// The `banned` refusal if `user` is banned from the server now.
    pub async fn server_ban(&self, user: UserId) -> Result<Option<ApiError>, ApiError> {
        let ban =
            self.store.fetch_ban(store::BanScope::Server, user, crate::protocol::now_ms()).await.map_err(internal)?;
        Ok(ban.map(|ban| {
            let until = describe_until(ban.until);
            let why = ban.reason.map(|r| format!(" Reason: {r}")).unwrap_or_default();
            ApiError::new(ErrorCode::Banned, format!("This account is banned from the server {until}.{why}"))
        }))
    }

    /// A new process-unique session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Relaxed)
    }
}

/// "until 2026-10-10T12:00:00.000Z" or "until a moderator lifts it", for messages.
pub fn describe_until(until: Option<i64>) -> String {
    match until {
        Some(until) => format!("until {}", format_ts(until)),
        None => "until a moderator lifts it".to_string(),
    }
}

/// Logs a store failure and turns it into the client's `internal` error.
pub fn internal(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "store failure");
    ApiError::internal()
}

/// Publishes each committed message on the bus, in commit order.
struct PublishCommits {
    bus: Arc<dyn Bus>,
}

impl CommitListener for PublishCommits {
    fn message_committed(&self, message: &Message) {
        let event = Event::Message { room: message.room.clone(), message: message.clone() };
        let frame = Utf8Bytes::from(event.to_json());
        self.bus.publish(BusMessage::Room(RoomEnvelope {
            room: message.room.clone(),
            frame,
            except: None,
            effect: None,
        }));
    }
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
    /// The store opened but the moderation state could not be loaded.
    #[error("cannot load moderation state: {0}")]
    Load(StoreError),
}

/// A running server.
pub struct Server {
    state: AppState,
    addr: SocketAddr,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.listen`, opens the store and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        config.check().map_err(StartError::Config)?;
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen.clone(), source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen.clone(), source })?;
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(metrics.clone());
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(hub.clone()));
        let store =
            store::open(&config.database, Arc::new(PublishCommits { bus: bus.clone() }), metrics.clone()).await?;
        hub.load_mutes(store.fetch_active_mutes(crate::protocol::now_ms()).await.map_err(StartError::Load)?);
        let window = Duration::from_secs(config.login_window_s.max(1));
        let state = Arc::new(Shared {
            passwords: Passwords::new(config.hash_concurrency),
            logins_per_account: RateLimiter::new(config.login_attempts_per_account, window),
            logins_per_address: RateLimiter::new(config.login_attempts_per_address, window),
            registrations_per_address: RateLimiter::new(config.registrations_per_address, Duration::from_secs(3600)),
            config,
            store,
            bus,
            hub,
            metrics,
            sockets_per_address: DashMap::new(),
            last_sends: DashMap::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_session_id: AtomicU64::new(1),
        });
        // One ticker pings every socket, instead of a timer inside each socket's task.
        let pinger = {
            let (hub, stop, every) = (state.hub.clone(), state.shutdown.clone(), state.config.ping_interval());
            async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => hub.ping_all(),
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        state.tracker.spawn(pinger);
        let app = crate::http::router(state.clone());
        let stop = state.shutdown.clone();
        // Without TCP_NODELAY a reply queued right behind an event waits ~40 ms for
        // the client's delayed ACK (Nagle); the writer already batches into one write.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
        let serve = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Ok(Server { state, addr, serve })
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
        match tokio::time::timeout(grace, self.serve).await {
            Ok(Ok(Err(err))) => tracing::error!(error = %err, "the listener failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP connections still open after the grace period"),
        }
        self.state.tracker.close();
        if tokio::time::timeout(grace, self.state.tracker.wait()).await.is_err() {
            tracing::warn!(sockets = self.state.tracker.len(), "sockets still open after the grace period");
        }
        self.state.store.close().await;
        tracing::info!("shut down");
    }
}
