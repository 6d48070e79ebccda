//! The state every request shares, the errors at the edge, and the events API: the one
//! way out for every event.
//!
//! Handlers (`ws`, `http`) never build event frames, never call the bus and never
//! change the hub. They call the methods of [`Shared`] under "The events API", which
//! serialise an event once and hand the bus a [`BusMessage`] with the [`Effect`] every
//! node applies; the hub changes only through those effects. The commit listener
//! ([`PublishCommits`]) lives here too, so a stored message leaves the same way.
//!
//! **Invariant:** a read-through fill of the room cache never replaces an entry; only
//! a `RoomChanged` effect does. A read that began before a lock committed can therefore
//! never undo it.

use crate::auth::Passwords;
use crate::bus::{Authored, Bus, BusMessage, CloseTarget, Effect, RoomEnvelope, Variants, Words};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::hub::{GapFill, GapFiller, Hub, Session};
use crate::limits::{Failures, KeyedLimit};
use crate::metrics::Metrics;
use crate::net::TrustedProxies;
use crate::protocol::{
    format_ts_in, ApiError, CwPreferences, ErrorCode, Event, HistoryVisibility, LeftReason, Message, Room,
    ScheduleEntry, User, Visibility,
};
use crate::store::{self, CommitListener, Restriction, RoomId, RoomRecord, Store, StoreError, UserId, UserRecord};
use axum::extract::ws::Utf8Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler shares: a cheap `Clone` handle.
pub type AppState = Arc<Shared>;

/// The server's shared state.
pub struct Shared {
    /// The settings it runs with.
    pub config: Config,
    /// This node's name (in `/healthz` and the logs).
    pub node: String,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Where changes are published; reached only through the events API below.
    bus: Arc<dyn Bus>,
    /// What the nodes of a network share beside the bus; `None` on a single node.
    pub cluster: Option<Arc<Cluster>>,
    /// Crisis phrases and support resources.
    pub care: Care,
    /// Wakes the phase timer when a schedule here changed (`advance_phases`).
    pub phase_timer: tokio::sync::Notify,
    /// Questions voted on since the vote flusher last ran, with their rooms.
    voted: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    /// This node's fan-out; changed only by bus effects and the session lifecycle below.
    hub: Hub,
    /// Password hashing behind its semaphore.
    pub passwords: Passwords,
    /// Exported figures.
    pub metrics: Arc<Metrics>,
    /// Failed logins per (account, client address): the hard login limit.
    pub login_failures: Failures<(String, IpAddr)>,
    /// Failed logins per account from anywhere: they only slow its logins down.
    pub account_failures: Failures<String>,
    /// Login attempts per client address, any account.
    pub logins_per_address: KeyedLimit<IpAddr>,
    /// Registrations per client address.
    pub registrations_per_address: KeyedLimit<IpAddr>,
    /// Requests per account, across its sockets (each socket also has its own bucket).
    pub requests_per_account: KeyedLimit<UserId>,
    /// `typing` per user and room: one per three seconds, the rest dropped.
    pub typing: KeyedLimit<(UserId, RoomId)>,
    /// Open WebSockets per client address.
    pub sockets_per_address: DashMap<IpAddr, u32>,
    /// Open WebSockets in all.
    pub sockets_total: std::sync::atomic::AtomicU32,
    /// Registrations on the whole server, whatever the address.
    pub registrations: KeyedLimit<()>,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// When each member last sent in a room, for slow mode. Node-local: behind a load
    /// balancer a member could send once per node per interval.
    pub last_sends: DashMap<(RoomId, UserId), std::time::Instant>,
    /// Departures not announced yet, (room, user) → the disconnection that will
    /// announce it, so a member back within the grace is announced neither leaving
    /// nor joining.
    pending_departures: DashMap<(String, UserId), u64>,
    /// Numbers disconnections, for `pending_departures`.
    departures: AtomicU64,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Every socket task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    next_session_id: AtomicU64,
}

impl Shared {
    /// Shared state over a store, a bus and the hub that bus feeds.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        cluster: Option<Arc<Cluster>>,
        care: Care,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Shared {
        let window = std::time::Duration::from_secs(config.login_window_s.max(1));
        let registrations = KeyedLimit::new(config.registrations_per_hour, std::time::Duration::from_secs(3600));
        // Checked when the configuration was.
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies).unwrap_or_default();
        Shared {
            phase_timer: tokio::sync::Notify::new(),
            voted: std::sync::Mutex::default(),
            passwords: Passwords::new(config.hash_concurrency),
            login_failures: Failures::new(config.login_failures_per_account_address, window),
            account_failures: Failures::new(0, window),
            logins_per_address: KeyedLimit::new(config.login_attempts_per_address, window),
            registrations_per_address: KeyedLimit::new(
                config.registrations_per_address,
                std::time::Duration::from_secs(3600),
            ),
            requests_per_account: KeyedLimit::rate(config.request_rate_per_s, config.request_burst),
            node: config.node(),
            typing: KeyedLimit::new(1, std::time::Duration::from_secs(3)),
            config,
            store,
            bus,
            cluster,
            care,
            hub,
            metrics,
            sockets_per_address: DashMap::new(),
            sockets_total: std::sync::atomic::AtomicU32::new(0),
            registrations,
            trusted_proxies,
            last_sends: DashMap::new(),
            pending_departures: DashMap::new(),
            departures: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_session_id: AtomicU64::new(1),
        }
    }

    /// Makes the hub lose the next `count` message events (tests only).
    #[cfg(feature = "test-hooks")]
    pub fn lose_next_messages(&self, count: u32) {
        self.hub.lose_next_messages(count);
    }

    /// A room by name, from the cache or the store; `not_found` if there is none.
    pub async fn room(&self, name: &str) -> Result<Arc<RoomRecord>, ApiError> {
        if let Some(room) = self.hub.cached_room(name) {
            return Ok(room);
        }
        match self.store.fetch_room(name).await {
            // The cache may have taken a newer version while we read: it wins.
            Ok(Some(room)) => Ok(self.hub.fill_room(room)),
            Ok(None) => Err(ApiError::new(ErrorCode::NotFound, format!("There is no room named #{name}."))),
            Err(err) => Err(internal(err)),
        }
    }

    /// Up to `limit` rooms after `after` by name, as this node knows them now (a cached
    /// version wins over the one just read, which may predate a change).
    /// Private rooms only those `viewer` is a member of (`None`: every room).
    pub async fn rooms(&self, after: Option<&str>, limit: u32, viewer: Option<UserId>) -> Result<Vec<Room>, ApiError> {
        let records = self.store.fetch_rooms(after, limit, viewer).await.map_err(internal)?;
        Ok(records.into_iter().map(|record| self.room_view(&self.hub.fill_room(record))).collect())
    }

    /// The wire view of a room, with this node's online count.
    pub fn room_view(&self, room: &RoomRecord) -> Room {
        let now = crate::protocol::now_ms();
        Room {
            name: room.name.clone(),
            topic: room.topic.clone(),
            kind: room.kind,
            owner: room.owner.clone(),
            members_online: self.members_online(&room.name),
            slow_mode_s: room.slow_mode_s,
            locked: room.locked,
            starts_at: room.starts_at.map(|at| format_ts_in(at, &room.time_zone)),
            ends_at: room.ends_at.map(|at| format_ts_in(at, &room.time_zone)),
            capacity: room.capacity,
            requires_host: room.requires_host,
            phase: room.phase_at(now),
            schedule: {
                let ahead = room.schedule.iter().filter(|(_, at)| *at > now);
                let at = |at: i64| format_ts_in(at, &room.time_zone);
                ahead.map(|(phase, when)| ScheduleEntry { phase: *phase, at: at(*when) }).collect()
            },
            speakers: room.speakers.clone(),
            viewers: room.viewers.then_some(room.viewer_count),
            session_starts_at: room.session.map(|(start, _)| format_ts_in(start, &room.time_zone)),
            session_ends_at: room.session.map(|(_, end)| format_ts_in(end, &room.time_zone)),
            time_zone: (!room.time_zone.is_empty()).then(|| room.time_zone.clone()),
            hosts_on_duty: self.hub.hosts_on_duty(room.id).into_iter().map(|(_, name)| name).collect(),
            visibility: if room.private { Visibility::Private } else { Visibility::Public },
            history_visibility: if room.since_join { HistoryVisibility::SinceJoin } else { HistoryVisibility::All },
            my_role: None,
            unread: None,
            mentions_unread: None,
        }
    }

    /// How many distinct users are online in `room`, on every node.
    pub fn members_online(&self, room: &str) -> u64 {
        let here = self.hub.members_online(room);
        let Some(cluster) = &self.cluster else { return here };
        let remote = cluster.remote();
        let elsewhere = remote
            .get(room)
            .map_or(0, |users| users.keys().filter(|user| !self.hub.is_online(room, **user)).count() as u64);
        here + elsewhere
    }

    /// Up to `max` users online in `room`, on every node (this node's first).
    pub fn online_users(&self, room: &str, max: usize) -> Vec<User> {
        let mut users = self.hub.online_users(room, max);
        if let Some(cluster) = &self.cluster {
            let remote = cluster.remote();
            let elsewhere = remote.get(room).into_iter().flatten();
            let others = elsewhere.filter(|(id, _)| !self.hub.is_online(room, **id)).map(|(_, user)| user.clone());
            users.extend(others.take(max.saturating_sub(users.len())));
        }
        users
    }

    /// Whether `user` is online in `room`, on any node.
    pub fn is_online(&self, room: &str, user: UserId) -> bool {
        self.hub.is_online(room, user) || self.online_elsewhere(room, user)
    }

    /// Whether another node has `user` online in `room` (as of its last snapshot).
    fn online_elsewhere(&self, room: &str, user: UserId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|cluster| cluster.remote().get(room).is_some_and(|users| users.contains_key(&user)))
    }

    /// The hosts on duty in a room now, from this node's cache.
    pub fn hosts_on_duty(&self, room: RoomId) -> Vec<(UserId, String)> {
        self.hub.hosts_on_duty(room)
    }

    /// The mute of `user` in `room` in force now, from this node's cache.
    pub fn mute(&self, room: RoomId, user: UserId) -> Option<Restriction> {
        self.hub.mute(room, user)
    }

    /// Whether `user` blocks the member named `author`.
    pub fn blocks(&self, user: UserId, author: &str) -> bool {
        self.hub.blocks(user, author)
    }

    /// The usernames `user` blocks, if any.
    pub fn blocked_names(&self, user: UserId) -> Option<Arc<std::collections::HashSet<String>>> {
        self.hub.blocked_by_user(user)
    }

    /// The user as they see themselves: with their own region.
    pub async fn me(&self, record: &UserRecord) -> Result<crate::protocol::Me, ApiError> {
        let region = self.store.fetch_user_region(record.id).await.map_err(internal)?;
        Ok(crate::protocol::Me { user: record.user.clone(), region })
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

    /// The user a login token belongs to while it is live (it expires unused after
    /// `token_idle_s`, and at all after `token_lifetime_s`); a use is noted.
    pub async fn token_user(&self, token_hash: &[u8; 32]) -> Result<Option<crate::store::UserRecord>, ApiError> {
        let rules = crate::store::TokenRules {
            idle_ms: (self.config.token_idle_s as i64).saturating_mul(1000),
            max_ms: (self.config.token_lifetime_s as i64).saturating_mul(1000),
        };
        let now = crate::protocol::now_ms();
        let Some((record, used_at)) = self.store.fetch_token_user(token_hash, rules, now).await.map_err(internal)?
        else {
            return Ok(None);
        };
        // Noted at most once an hour, and best effort: a read-only database still lets
        // members in to read.
        if now - used_at > 3600 * 1000 {
            if let Err(err) = self.store.touch_token(token_hash, now).await {
                tracing::warn!(error = %err, "cannot note a token's use");
            }
        }
        Ok(Some(record))
    }

    /// The client's address as limits count it (see `net`).
    pub fn client_address(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        crate::net::client_address(peer, headers, &self.trusted_proxies)
    }

    /// A new process-unique session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Relaxed)
    }

    /// Whether the bus carries messages (always, on a single node).
    pub fn bus_healthy(&self) -> bool {
        self.bus.healthy()
    }

    /// Asks every socket on this node to send a ping (the server's ticker calls it).
    pub fn ping_all(&self) {
        self.hub.ping_all();
    }

    /// Drops the limit keys nobody used lately (the server's sweeper calls it).
    pub fn forget_idle_limits(&self) {
        self.login_failures.forget_idle();
        self.account_failures.forget_idle();
        self.logins_per_address.forget_idle();
        self.registrations_per_address.forget_idle();
        self.requests_per_account.forget_idle();
        self.typing.forget_idle();
    }
}

/// The crisis phrases and the support resources a server runs with.
#[derive(Debug, Clone)]
pub struct Care {
    /// What a message that may come from someone in crisis says.
    pub phrases: crate::care::Phrases,
    /// Where support is.
    pub resources: crate::care::Resources,
}

impl Care {
    /// The built-in lists, or the operator's files where the settings name them.
    pub fn load(config: &Config) -> Result<Care, String> {
        let phrases = match config.care_phrases_dir.as_str() {
            "" => crate::care::Phrases::builtin(),
            dir => crate::care::Phrases::from_dir(std::path::Path::new(dir))?,
        };
        let resources = match config.care_resources_file.as_str() {
            "" => crate::care::Resources::builtin(),
            file => crate::care::Resources::from_file(std::path::Path::new(file))?,
        };
        Ok(Care { phrases, resources })
    }
}

/// The events API.
impl Shared {
    /// The author of message `seq` in `room` may be in crisis: their sockets (only)
    /// get the support resources for their region, then the international ones, and
    /// the room's moderators get a care alert.
    pub async fn offer_care(&self, author: UserId, room: &RoomRecord, seq: i64) {
        let region = match self.store.fetch_user_region(author).await {
            Ok(region) => region,
            Err(err) => {
                // Resources for everywhere still help; nothing waits on this.
                tracing::warn!(error = %err, "cannot read a member's region; offering the international resources");
                None
            }
        };
        let resources = self.care.resources.for_region(region.as_deref());
        self.publish_user(author, &Event::CareResources { room: room.name.clone(), seq, resources });
        match self.store.insert_care_alert(room, seq, crate::protocol::CareKind::Phrase, None, None).await {
            Ok(alert) => self.route_care_alert(room, alert).await,
            // The member has their resources; the log says a moderator was not told.
            Err(err) => tracing::error!(error = %err, room = %room.name, seq, "cannot raise a care alert"),
        }
    }

    /// Tells the people who should know at once that someone may need care: the
    /// room's owner and room moderators who are online; when none is, the global
    /// moderators online anywhere.
    pub async fn route_care_alert(&self, room: &RoomRecord, alert: crate::protocol::CareAlert) {
        self.metrics.care_alerts_raised.inc();
        let mut moderators = match self.store.fetch_room_moderators(room.id).await {
            Ok(moderators) => moderators,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read a room's moderators; the care alert goes to the global ones");
                Vec::new()
            }
        };
        moderators.push(room.owner_id);
        moderators.sort_unstable();
        moderators.dedup();
        moderators.retain(|moderator| self.is_online(&room.name, *moderator));
        // The hosts on duty first: they are there for exactly this.
        let hosts: Vec<UserId> = self
            .hub
            .hosts_on_duty(room.id)
            .into_iter()
            .map(|(host, _)| host)
            .filter(|host| self.is_online(&room.name, *host))
            .collect();
        if !hosts.is_empty() {
            moderators = hosts;
        }
        let event = Event::CareAlert { alert };
        if moderators.is_empty() {
            // Nobody of the room is here: every global moderator online hears it.
            self.publish_moderators(Vec::new(), &event);
        } else {
            let frame = Utf8Bytes::from(event.to_json());
            for moderator in moderators {
                self.bus.publish(BusMessage::User { user: moderator, frame: frame.clone() });
            }
        }
    }

    /// Tells `room`'s members (all but `except`'s sockets) about `event`; every node
    /// applies `effect` around the delivery.
    pub fn publish_room(&self, room: &str, event: &Event, except: Option<UserId>, effect: Option<Effect>) {
        if let Some(effect) = &effect {
            self.apply_here_first(room, effect);
        }
        let frame = Utf8Bytes::from(event.to_json());
        let envelope =
            RoomEnvelope { room: room.to_string(), frame, except, effect, seq: None, variants: None, authored: None };
        self.bus.publish(BusMessage::Room(envelope));
    }

    /// Tells `room`'s members but `typist` that `typist` is typing; members who block
    /// them hear nothing.
    pub fn publish_typing(&self, room: &str, typist: &UserRecord) {
        let event = Event::Typing { room: room.to_string(), user: typist.user.clone() };
        self.bus.publish(BusMessage::Room(RoomEnvelope {
            room: room.to_string(),
            frame: Utf8Bytes::from(event.to_json()),
            except: Some(typist.id),
            effect: None,
            seq: None,
            variants: None,
            authored: Some(Authored {
                author: typist.user.username.clone(),
                words: Words::Typing,
                unseen_by: Vec::new(),
            }),
        }));
    }

    /// `blocker` blocks `blocked` (`on`) or no longer does: every node's hub follows.
    pub fn block_changed(&self, blocker: UserId, blocked: &str, on: bool) {
        self.publish_here_first(BusMessage::Block { blocker, blocked: blocked.to_string(), on });
    }

    /// `user`'s sockets on every node shape what they receive by `preferences` now.
    pub fn preferences_changed(&self, user: UserId, preferences: CwPreferences) {
        self.publish_here_first(BusMessage::Preferences { user, preferences });
    }

    /// Publishes a change of this node's state that carries no frame, applying it here
    /// at once with a bus between nodes (as `apply_here_first` does for effects), so the
    /// member's next request on this node already sees it; the echo applies it again,
    /// harmlessly.
    fn publish_here_first(&self, message: BusMessage) {
        if self.cluster.is_some() {
            self.hub.dispatch(&message);
        }
        self.bus.publish(message);
    }

    /// Tells `message`'s room that it changed (`message_updated`), each member seeing
    /// it as their content-warning preferences shape it.
    /// `unseen_by`: members who may not see it (see [`AppState::unseen_by`]).
    pub fn message_updated(&self, message: &Message, unseen_by: Vec<UserId>) {
        let event = |message: Message| Event::MessageUpdated { room: message.room.clone(), message }.to_json();
        self.bus.publish(BusMessage::Room(RoomEnvelope {
            room: message.room.clone(),
            frame: Utf8Bytes::from(event(message.clone())),
            except: None,
            effect: None,
            seq: None,
            variants: Variants::of(message, event),
            authored: Some(Authored {
                author: message.author.username.clone(),
                words: Words::Updated(message.seq),
                unseen_by,
            }),
        }));
    }

    /// With a bus between nodes, this node applies its own change at once, so the next
    /// request here (a send after a mute, a lock, a new room) already sees it; the echo
    /// applies it again, harmlessly, and every other node applies it then. (On one node
    /// the publish itself applies it before returning.) A departure is the exception:
    /// `member_left` handles it, so that the member still hears of it.
    fn apply_here_first(&self, room: &str, effect: &Effect) {
        if self.cluster.is_some() && !matches!(effect, Effect::Unsubscribe(_)) {
            self.hub.apply(room, effect);
        }
    }

    /// The members of a `since_join` room who joined after message `seq` was sent, so
    /// may not see it changed either; nobody for any other room (no read).
    pub async fn unseen_by(&self, room: &RoomRecord, seq: i64) -> Result<Vec<UserId>, ApiError> {
        if !room.since_join {
            return Ok(Vec::new());
        }
        self.store.fetch_members_joined_since(room.id, seq).await.map_err(internal)
    }

    /// Tells every socket of `user` about `event`.
    pub fn publish_user(&self, user: UserId, event: &Event) {
        self.bus.publish(BusMessage::User { user, frame: Utf8Bytes::from(event.to_json()) });
    }

    /// Tells the moderators of a room who are online anywhere: `moderators` (the owner
    /// and the room's moderators) and every global moderator and up.
    pub fn publish_moderators(&self, moderators: Vec<UserId>, event: &Event) {
        self.bus.publish(BusMessage::Moderators { moderators, frame: Utf8Bytes::from(event.to_json()) });
    }

    /// A user's profile changed: their sockets take it and hear `user_updated`.
    pub fn user_changed(&self, record: UserRecord) {
        let frame = Utf8Bytes::from(Event::UserUpdated { user: record.user.clone() }.to_json());
        self.bus.publish(BusMessage::UserChanged { record, frame });
    }

    /// Erases `record`'s account (PROTOCOL §9.3): the store forgets them, each room
    /// they were in hears them leave, every node forgets their blocks, and their
    /// sockets close with 4001.
    pub async fn erase_account(&self, record: &UserRecord) -> Result<store::Erased, ApiError> {
        let erased = self.store.erase_user(record.id).await.map_err(internal)?;
        tracing::info!(user = record.id.0, "an account was erased at its owner's request");
        for room in &erased.rooms {
            let event = Event::MemberLeft { room: room.clone(), user: record.user.clone(), reason: LeftReason::Left };
            self.publish_room(room, &event, None, Some(Effect::Unsubscribe(record.id)));
            // A summit they spoke in lists its speakers on its record: it follows.
            let spoke = self.hub.cached_room(room).is_some_and(|r| r.speakers.contains(&record.user.username));
            if spoke {
                if let Ok(Some(updated)) = self.store.fetch_room(room).await {
                    self.room_changed(updated);
                }
            }
        }
        for (blocker, blocked) in &erased.blocks {
            self.block_changed(*blocker, blocked, false);
        }
        self.close_sockets(
            CloseTarget::User(record.id),
            crate::protocol::close_code::UNAUTHENTICATED,
            "account deleted",
        );
        Ok(erased)
    }

    /// Closes `target`'s sockets on every node with `code`; queued frames go first.
    pub fn close_sockets(&self, target: CloseTarget, code: u16, reason: &'static str) {
        self.bus.publish(BusMessage::Close { target, code, reason });
    }

    /// A change made outside the server (the CLI) reaches the user's open sockets: a
    /// new role applies at once, revoked tokens close them.
    /// Every node of a network reads the same changes, so each applies them to its own
    /// sockets only (a publish would reach every node once per node).
    pub async fn apply_outside_change(&self, user: UserId, change: store::Change) {
        let message = match change {
            store::Change::Role => match self.store.fetch_user_by_id(user).await {
                Ok(Some(record)) => {
                    let frame = Utf8Bytes::from(Event::UserUpdated { user: record.user.clone() }.to_json());
                    BusMessage::UserChanged { record, frame }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read a user changed outside the server");
                    return;
                }
            },
            store::Change::Tokens => BusMessage::Close {
                target: CloseTarget::User(user),
                code: crate::protocol::close_code::UNAUTHENTICATED,
                reason: "logged out",
            },
            store::Change::Rooms => {
                // Rooms made outside the server: this node's sockets of the user receive
                // each of the user's rooms (again, for those they had) and hear of it.
                let rooms = match self.store.fetch_user_rooms(user).await {
                    Ok(rooms) => rooms,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read the rooms of a user changed outside the server");
                        return;
                    }
                };
                for name in rooms {
                    let Ok(room) = self.room(&name).await else { continue };
                    self.hub.apply(&name, &Effect::Subscribe(user));
                    let frame = Utf8Bytes::from(Event::RoomCreated { room: self.room_view(&room) }.to_json());
                    self.hub.dispatch(&BusMessage::User { user, frame });
                }
                return;
            }
            store::Change::Erased => {
                // Its blocks are gone from the store: read them all again.
                match self.store.fetch_all_blocks().await {
                    Ok(blocks) => self.hub.replace_blocks(blocks),
                    Err(err) => tracing::warn!(error = %err, "cannot read the blocks after an erasure"),
                }
                BusMessage::Close {
                    target: CloseTarget::User(user),
                    code: crate::protocol::close_code::UNAUTHENTICATED,
                    reason: "account deleted",
                }
            }
        };
        self.hub.dispatch(&message);
    }

    /// A new room: every node caches it, its owner's sockets receive it, and every
    /// socket hears `room_created`.
    pub fn room_created(&self, room: Arc<RoomRecord>, owner: UserId) {
        let name = room.name.clone();
        let event = Event::RoomCreated { room: self.room_view(&room) };
        let private = room.private;
        for effect in [Effect::RoomChanged(room), Effect::Subscribe(owner)] {
            self.apply_here_first(&name, &effect);
            self.bus.publish(BusMessage::Apply { room: name.clone(), effect });
        }
        if private {
            // A private room is news only to its owner until others are let in.
            self.publish_user(owner, &event);
        } else {
            // Everyone's room list learns of it, on every node.
            self.bus.publish(BusMessage::Everyone { frame: Utf8Bytes::from(event.to_json()) });
        }
    }

    /// Someone voted on question `id` of `room`: the flusher publishes its count.
    pub fn question_voted(&self, room: &str, id: i64) {
        self.voted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(id)
            .or_insert_with(|| room.to_string());
    }

    /// Publishes `question_votes` once for every question voted on since the last
    /// call, with its count read now: a storm of votes is one event per question per
    /// run (the server runs this once a second).
    pub async fn flush_votes(&self) {
        let voted = std::mem::take(&mut *self.voted.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for (question_id, room) in voted {
            match self.store.fetch_question_votes(question_id).await {
                Ok(Some(votes)) => self.publish_room(
                    &room,
                    &Event::QuestionVotes { room: room.clone(), question_id, votes },
                    None,
                    None,
                ),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, question_id, "cannot read a question's votes"),
            }
        }
    }

    /// A summit's schedule changed on this node: the phase timer looks again.
    pub fn phases_changed(&self) {
        self.phase_timer.notify_one();
    }

    /// Applies every summit schedule entry that has come due and tells each room; the
    /// time the next entry is due (Unix ms), if any. Every node runs this: the store
    /// lets one node apply an entry, and that node publishes `room_updated`.
    pub async fn advance_phases(&self) -> Option<i64> {
        let rooms = match self.store.fetch_scheduled_rooms().await {
            Ok(rooms) => rooms,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the summits' schedules; trying again in a second");
                return Some(crate::protocol::now_ms() + 1000);
            }
        };
        let now = crate::protocol::now_ms();
        let mut next: Option<i64> = None;
        for room in rooms {
            let due = room.schedule.iter().take_while(|(_, at)| *at <= now).count();
            if let Some(&(phase, _)) = due.checked_sub(1).and_then(|last| room.schedule.get(last)) {
                match self.store.advance_room_phase(room.id, &room.schedule, phase, &room.schedule[due..]).await {
                    Ok(Some(updated)) => {
                        tracing::info!(room = %updated.name, phase = phase.as_str(), "a summit moved on by its schedule");
                        self.room_changed(updated);
                    }
                    // Another node applied it first (or the schedule changed meanwhile).
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, room = %room.name, "cannot move a summit on"),
                }
            }
            if let Some((_, at)) = room.schedule.get(due) {
                next = Some(next.map_or(*at, |next| next.min(*at)));
            }
        }
        next
    }

    /// Every node's cache takes `room`'s record as the store has it now, without telling
    /// its members (its viewer count changed); the record, or `None` if it is gone.
    pub async fn reread_room(&self, room: &str) -> Option<Arc<RoomRecord>> {
        let record = Arc::new(self.store.fetch_room(room).await.ok()??);
        let effect = Effect::RoomChanged(record.clone());
        self.apply_here_first(room, &effect);
        self.bus.publish(BusMessage::Apply { room: room.to_string(), effect });
        Some(record)
    }

    /// A room's settings changed: members hear `room_updated`, every node's cache takes
    /// the new record.
    pub fn room_changed(&self, room: RoomRecord) {
        let room = Arc::new(room);
        let event = Event::RoomUpdated { room: self.room_view(&room) };
        self.publish_room(&room.name, &event, None, Some(Effect::RoomChanged(room.clone())));
    }

    /// `host` went on or off duty in `room`: every node's cache follows and the
    /// members hear `room_updated` with the hosts on duty now.
    pub fn duty_changed(&self, room: &RoomRecord, host: &UserRecord, on: bool) {
        let mut view = self.room_view(room);
        view.hosts_on_duty.retain(|name| *name != host.user.username);
        if on {
            view.hosts_on_duty.push(host.user.username.clone());
        }
        let effect = Effect::Duty { room: room.id, user: host.id, username: host.user.username.clone(), on };
        self.publish_room(&room.name, &Event::RoomUpdated { room: view }, None, Some(effect));
    }

    /// Hosts whose last socket closed `host_grace_s` ago go off duty (checked on every
    /// node against presence on every node; the store decides which node tells the
    /// room). `offline` remembers since when each host has been away.
    pub async fn sweep_duty(&self, offline: &mut std::collections::HashMap<(RoomId, UserId), std::time::Instant>) {
        let grace = std::time::Duration::from_secs_f64(self.config.host_grace_s.max(0.0));
        let now = std::time::Instant::now();
        let mut on_duty = std::collections::HashSet::new();
        for (room_id, name, hosts) in self.hub.all_on_duty() {
            let Ok(room) = self.room(&name).await else { continue };
            for (host, _) in hosts {
                on_duty.insert((room_id, host));
                if self.is_online(&room.name, host) {
                    offline.remove(&(room_id, host));
                    continue;
                }
                let since = *offline.entry((room_id, host)).or_insert(now);
                if now.duration_since(since) < grace {
                    continue;
                }
                offline.remove(&(room_id, host));
                let Ok(Some(record)) = self.store.fetch_user_by_id(host).await else { continue };
                match self.store.update_duty(room_id, host, false).await {
                    // Another node may have done it first: only one tells the room.
                    Ok(true) => self.duty_changed(&room, &record, false),
                    Ok(false) => self.hub.apply(
                        &room.name,
                        &Effect::Duty { room: room_id, user: host, username: record.user.username, on: false },
                    ),
                    Err(err) => tracing::warn!(error = %err, "cannot take an absent host off duty"),
                }
            }
        }
        offline.retain(|key, _| on_duty.contains(key));
    }

    /// `user` is a member of `room`: their sockets receive it from now on; the room
    /// hears `member_joined` when `announce` (a first join).
    pub fn member_joined(&self, room: &str, user: &UserRecord, announce: bool) {
        // Receiving starts on this node before any reply, also with a remote bus.
        self.hub.subscribe_user(room, user.id);
        if announce {
            let event = Event::MemberJoined { room: room.to_string(), user: user.user.clone() };
            self.publish_room(room, &event, None, Some(Effect::Subscribe(user.id)));
        }
    }

    /// `user` is no longer a member of `room`: the room (and the user's sockets) hear
    /// `member_left`, then their sockets stop receiving it.
    pub fn member_left(&self, room: &str, user: &UserRecord, reason: LeftReason) {
        let event = Event::MemberLeft { room: room.to_string(), user: user.user.clone(), reason };
        if self.cluster.is_some() {
            // The echo comes later, and this node must not deliver the room to them in
            // between: their sockets here hear of it now and stop receiving the room.
            let frame = Utf8Bytes::from(event.to_json());
            self.hub.dispatch(&BusMessage::User { user: user.id, frame });
            self.hub.unsubscribe_user(room, user.id);
        }
        self.publish_room(room, &event, None, Some(Effect::Unsubscribe(user.id)));
    }

    /// A socket authenticated: it receives what its user is sent from now on (before
    /// its rooms are read, so a join from another socket in between reaches it).
    /// Refused (and not registered) when the account has its most sockets open.
    pub fn register_session(&self, session: &Arc<Session>) -> Result<(), ApiError> {
        let open = self.hub.register(session);
        let max = self.config.max_sockets_per_account;
        if max != 0 && open > max as usize {
            self.hub.detach(session);
            tracing::warn!(user = %session.user().username, open, "too many sockets for one account");
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("This account has {max} connections open already; close one (another tab or device) first."),
            ));
        }
        self.metrics.sockets_open.inc();
        Ok(())
    }

    /// The socket receives its user's rooms; where the user just came online, the room
    /// hears `member_joined`.
    pub fn attach_session(&self, session: &Arc<Session>, rooms: &[String]) {
        let user = session.user();
        for room in self.hub.attach(session, rooms) {
            // Back within the grace: nobody heard of the departure, so no arrival either.
            if self.pending_departures.remove(&(room.clone(), session.user_id)).is_some() {
                continue;
            }
            // Online on another node already: the room knows they are here.
            if self.online_elsewhere(&room, session.user_id) {
                continue;
            }
            let event = Event::MemberJoined { room: room.clone(), user: user.clone() };
            self.publish_room(&room, &event, None, None);
        }
    }

    /// The socket is gone: the hub forgets it, and where its user went offline the room
    /// hears `member_left` (disconnected), after `presence_grace_ms` if they are still
    /// gone then.
    pub fn detach_session(self: &Arc<Self>, session: &Arc<Session>) {
        self.metrics.sockets_open.dec();
        let user = session.user();
        let gone = self.hub.detach(session);
        let grace = std::time::Duration::from_millis(self.config.presence_grace_ms);
        if gone.is_empty() {
            return;
        }
        if grace.is_zero() {
            for room in gone {
                self.announce_departure(&room, &user, session.user_id);
            }
            return;
        }
        let departure = self.departures.fetch_add(1, Relaxed);
        for room in &gone {
            self.pending_departures.insert((room.clone(), session.user_id), departure);
        }
        let (state, user_id) = (self.clone(), session.user_id);
        self.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                // Shutting down: every socket goes, nobody is left to tell.
                () = state.shutdown.cancelled() => return,
            }
            for room in gone {
                // Only if no socket of the user came back, and no later disconnection
                // took the announcement over.
                let key = (room.clone(), user_id);
                if state.pending_departures.remove_if(&key, |_, pending| *pending == departure).is_some() {
                    state.announce_departure(&room, &user, user_id);
                }
            }
        });
    }

    fn announce_departure(&self, room: &str, user: &User, id: UserId) {
        // Still online on another node: they have not left.
        if self.online_elsewhere(room, id) {
            return;
        }
        let event = Event::MemberLeft { room: room.to_string(), user: user.clone(), reason: LeftReason::Disconnected };
        self.publish_room(room, &event, None, None);
    }
}

/// Publishes each committed message on the bus, in commit order.
pub struct PublishCommits {
    /// Where to publish.
    pub bus: Arc<dyn Bus>,
}

impl CommitListener for PublishCommits {
    fn message_committed(&self, message: &Message) {
        self.bus.publish(BusMessage::Room(message_envelope(message)));
    }
}

/// The `message` event of a stored message, with its variants when it carries content
/// warnings: each shape serialised once, here, for every recipient.
pub fn message_envelope(message: &Message) -> RoomEnvelope {
    let event = |message: Message| Event::Message { room: message.room.clone(), message }.to_json();
    RoomEnvelope {
        room: message.room.clone(),
        frame: Utf8Bytes::from(event(message.clone())),
        except: None,
        effect: None,
        seq: Some(message.seq),
        variants: Variants::of(message, event),
        authored: Some(Authored {
            author: message.author.username.clone(),
            words: Words::Message(message.seq),
            unseen_by: Vec::new(),
        }),
    }
}

/// Reads from the store the messages a bus lost, as the `message` events they were.
pub struct StoreGaps {
    /// Where the messages are.
    pub store: Arc<dyn Store>,
}

/// Most messages one read of a gap takes; a longer gap is read in several.
const GAP_PAGE: i64 = 500;

impl GapFiller for StoreGaps {
    fn missing(&self, room: String, after: i64, before: i64) -> GapFill {
        let store = self.store.clone();
        Box::pin(async move {
            let record = store
                .fetch_room(&room)
                .await
                .map_err(|err| err.to_string())?
                .ok_or_else(|| format!("no room #{room}"))?;
            let mut envelopes = Vec::new();
            let mut from = after;
            while from + 1 < before {
                let range = store::HistoryRange {
                    before: Some(before),
                    after: Some(from),
                    limit: (before - from - 1).min(GAP_PAGE) as u32,
                };
                let page = store.fetch_messages(&record, range).await.map_err(|err| err.to_string())?;
                let Some(last) = page.last().map(|message| message.seq) else { break };
                envelopes.extend(page.iter().map(message_envelope));
                from = last;
            }
            Ok(envelopes)
        })
    }
}

/// "until 2026-10-10T12:00:00.000Z" or "until a moderator lifts it", for messages.
pub fn describe_until(until: Option<i64>) -> String {
    match until {
        Some(until) => format!("until {}", crate::protocol::human_ts(until)),
        None => "until a moderator lifts it".to_string(),
    }
}

/// Logs a store failure and turns it into the client's `internal` error.
pub fn internal(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "store failure");
    ApiError::internal()
}

/// An error response in the protocol's shape (`{"error": {"code", "message"}}`).
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> HttpError {
        HttpError(error)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, self.0.to_http_body());
        if let Some(seconds) = self.0.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON body with its status.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
