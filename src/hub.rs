//! The hub: which local sockets receive which room's events, and the delivery to them.
//!
//! The hub holds, for this node only, every authenticated session, the rooms each one
//! receives, and who is online where. It never touches the store (missing messages
//! come through its [`GapFiller`]) and never awaits a client: delivery is a push of shared
//! bytes into the session's bounded [`Outbox`] (which writes a quiet socket at once, if
//! that needs no wait), and a full outbox closes that one session with 4008 (it catches
//! up from history after reconnecting). So one slow reader can never slow a room.
//!
//! **Invariant:** for one room, frames enter every outbox in the order `dispatch` is
//! called, and a room's `message` events enter once each in seq order: the hub keeps
//! the last seq it delivered per room, drops what it has delivered already, and when a
//! message arrives after a gap (a bus between nodes loses or reorders what it carries)
//! it holds that room's events while its [`GapFiller`] reads the missing messages from
//! the store, then delivers them and releases the held ones in order. The hub reads
//! nothing itself: the filler is the one way it learns of stored messages.

use crate::bus::{Bus, BusMessage, CloseTarget, Effect, RoomEnvelope};
use crate::metrics::Metrics;
use crate::protocol::{close_code, now_ms, CwPreferences, User};
use crate::store::{MuteRecord, Restriction, RoomId, RoomRecord, UserId};
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU16, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The close reason a slow consumer (4008) is given, whichever check found it.
pub const SLOW_CONSUMER_REASON: &str = "slow consumer: reconnect and catch up from history";

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is at capacity: the socket reads too slowly.
    Full,
    /// The writer has stopped: the socket is closing.
    Closed,
}

/// The socket's write half as a pushing thread may use it: one frame now, without
/// waiting, or not at all. The writer attaches it (see [`Outbox::attach`]).
pub trait Wire: Send + Sync {
    /// Writes `frame` and flushes it without waiting.
    fn try_write(&self, frame: &Utf8Bytes) -> Tried;
}

/// What [`Wire::try_write`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tried {
    /// Written to the socket.
    Written,
    /// Taken, but the socket would block before all of it was out: the writer
    /// must finish the flush.
    Flushing,
    /// Not taken (the socket's lock is busy or it takes nothing now): queue it.
    NotNow,
    /// The socket is broken.
    Broken,
}

/// The frames waiting for one socket's writer.
///
/// Bounded, and never waited on: a push either writes, queues or fails at once. When
/// the writer is idle (nothing queued, nothing half-written) and the socket was not
/// written within the coalescing window, a push writes the frame itself, on the pushing
/// thread, without waiting: a quiet socket's delivery costs one `write`, not a wake-up
/// of its socket's task, a poll and then the `write`. Otherwise the frame is queued. The
/// writer takes the whole queue in one short lock and writes it with one flush, and it
/// is woken only when the queue goes from empty to not empty, so a burst costs one
/// wake-up. (A tokio mpsc channel did the same job at several atomic operations per
/// frame; this is what showed in the profile of a 1,000-socket room.)
pub struct Outbox {
    /// Short std lock: held to push one frame (and to write it, when written at once)
    /// or to swap the queue out.
    queue: Mutex<Queue>,
    /// The socket's write half and the coalescing window, once the writer has started.
    wire: OnceLock<(Arc<dyn Wire>, Duration)>,
    /// A frame written at once is half out: the writer must flush it.
    flush_due: std::sync::atomic::AtomicBool,
    /// A frame written at once found the socket broken: the writer must close.
    broken: std::sync::atomic::AtomicBool,
    /// Most frames queued.
    capacity: usize,
    /// Most bytes queued (a single larger frame is still taken when the queue is empty).
    max_bytes: usize,
    /// Woken when the writer takes the queue, for a reader waiting on its replies.
    taken: Notify,
    /// Wakes the writer. A wake-up that comes while the writer is busy is kept as a
    /// permit, so none is lost between "the queue is empty" and waiting.
    ready: Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Set by the server's ping ticker; the writer sends a ping and clears it.
    ping_due: std::sync::atomic::AtomicBool,
    /// The reader is waiting on the client (for a frame, or for its replies to go out),
    /// not busy with a request.
    listening: std::sync::atomic::AtomicBool,
    /// The reader has read a frame (a pong included) since the ticker last looked.
    heard: std::sync::atomic::AtomicBool,
    /// Ticks in a row that found the reader listening and nothing heard.
    silent_ticks: std::sync::atomic::AtomicU8,
    /// The close asked for (the first wins), so a writer waiting for frames wakes up to
    /// send the close frame. Kept here rather than in a token of its own: every idle
    /// socket holds one outbox, and a separate token cost it 160 bytes.
    close_frame: OnceLock<(u16, &'static str)>,
    /// Woken when a close is asked for, for whoever waits in [`Closer::closed`].
    closing: Notify,
    /// A reply is queued: the writer must not hold its write back to coalesce.
    urgent: Notify,
}

/// The frames waiting, with their size and how many are replies.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    replies: usize,
    /// The writer waits for frames with nothing half-written: a push may write at once.
    /// Only ever set with the queue empty; the writer clears it (under this lock)
    /// before it touches the socket, so a push and the writer never write together.
    idle: bool,
    /// When the socket was last written, for the coalescing window.
    last_write: Option<tokio::time::Instant>,
}

/// What a push did with its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// Written to the socket at once.
    Written,
    /// Queued for the writer.
    Queued,
}

/// Why [`Outbox::take`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Frames are in the batch.
    Frames,
    /// A ping is due (the batch may hold frames too).
    Ping,
    /// The socket is closing.
    Interrupted,
    /// A frame written at once is half out: flush it.
    Flush,
    /// A frame written at once found the socket broken.
    Broken,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames and `max_bytes` bytes.
    pub fn new(capacity: usize, max_bytes: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            wire: OnceLock::new(),
            flush_due: std::sync::atomic::AtomicBool::new(false),
            broken: std::sync::atomic::AtomicBool::new(false),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            taken: Notify::new(),
            ready: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            ping_due: std::sync::atomic::AtomicBool::new(false),
            listening: std::sync::atomic::AtomicBool::new(false),
            heard: std::sync::atomic::AtomicBool::new(false),
            silent_ticks: std::sync::atomic::AtomicU8::new(0),
            close_frame: OnceLock::new(),
            closing: Notify::new(),
            urgent: Notify::new(),
        }
    }

    /// Queues the reply to a request: like [`Outbox::push`], but a writer holding back
    /// to coalesce writes at once (a client waits on its reply; events can wait a few ms).
    pub fn push_reply(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        if self.push_counted(frame, true, true)? == Pushed::Queued {
            self.urgent.notify_one();
        }
        Ok(())
    }

    /// Lets pushes write at once to `wire` while the writer is idle and the socket was
    /// not written within `coalesce`. The writer calls this once, before it first waits.
    pub fn attach(&self, wire: Arc<dyn Wire>, coalesce: Duration) {
        let _ = self.wire.set((wire, coalesce));
    }

    /// When the socket was last written (by the writer or by a push).
    pub fn last_write(&self) -> Option<tokio::time::Instant> {
        self.queue.lock().expect("outbox lock").last_write
    }

    /// Records a write by the writer.
    pub fn wrote(&self, at: tokio::time::Instant) {
        self.queue.lock().expect("outbox lock").last_write = Some(at);
    }

    /// Resolves once no reply is left in the queue (the writer has taken them to write).
    /// The reader waits here before reading the next request, so a client that does not
    /// read its replies stops being read, instead of piling replies up in memory.
    pub async fn replies_taken(&self) {
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            // Registered before looking, so a take in between is not missed.
            taken.as_mut().enable();
            if self.queue.lock().expect("outbox lock").replies == 0 {
                return;
            }
            taken.await;
        }
    }

    /// Resolves when a reply has been queued since the last call (or at once if one was
    /// queued while nobody waited).
    pub async fn reply_queued(&self) {
        self.urgent.notified().await
    }

    /// The reader starts (`true`) or stops waiting on the client.
    pub fn listening(&self, listening: bool) {
        self.listening.store(listening, Relaxed);
    }

    /// The reader has read a frame.
    pub fn heard(&self) {
        self.heard.store(true, Relaxed);
    }

    /// The ping ticker's visit, once per ping interval: a ping for the client, or, once
    /// it has been silent through two whole intervals while the reader waited on it,
    /// the reason to close it. This is the socket's idle timeout, kept by the ticker so
    /// an idle socket needs no timer of its own.
    pub fn tick(&self) -> Option<(u16, &'static str)> {
        let heard = self.heard.swap(false, Relaxed);
        if heard || !self.listening.load(Relaxed) {
            self.silent_ticks.store(0, Relaxed);
        } else if self.silent_ticks.fetch_add(1, Relaxed) + 1 >= 2 {
            // Its replies not taken: it does not read them (so the reader stopped
            // reading it); otherwise it does not answer pings.
            return Some(if self.queue.lock().expect("outbox lock").replies > 0 {
                (close_code::SLOW_CONSUMER, SLOW_CONSUMER_REASON)
            } else {
                (close_code::GOING_AWAY, "no answer to pings")
            });
        }
        self.request_ping();
        None
    }

    /// Asks the writer to send a ping.
    pub fn request_ping(&self) {
        if !self.ping_due.swap(true, Relaxed) {
            self.ready.notify_one();
        }
    }

    /// Records a close with `code` (unless one came first) and wakes the writer to send
    /// it and whoever waits on [`Closer::closed`]; `true` if this was the first.
    fn interrupt(&self, code: u16, reason: &'static str) -> bool {
        let first = self.close_frame.set((code, reason)).is_ok();
        self.closing.notify_waiters();
        self.ready.notify_one();
        first
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_counted(frame, false, true).map(drop)
    }

    /// Queues a frame for the writer, never writing it on this thread.
    pub fn push_to_writer(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.push_counted(frame, false, false).map(drop)
    }

    fn push_counted(&self, frame: Utf8Bytes, reply: bool, at_once: bool) -> Result<Pushed, PushError> {
        if self.closed.load(Relaxed) {
            return Err(PushError::Closed);
        }
        let mut queue = self.queue.lock().expect("outbox lock");
        let was_empty = queue.frames.is_empty();
        if at_once && was_empty && queue.idle {
            if let Some((wire, coalesce)) = self.wire.get() {
                // A reply never waits out the window: its client is waiting on it.
                let now = tokio::time::Instant::now();
                if reply || queue.last_write.is_none_or(|last| now >= last + *coalesce) {
                    match wire.try_write(&frame) {
                        Tried::Written => {
                            queue.last_write = Some(now);
                            return Ok(Pushed::Written);
                        }
                        Tried::Flushing => {
                            queue.last_write = Some(now);
                            queue.idle = false;
                            drop(queue);
                            self.flush_due.store(true, Relaxed);
                            self.ready.notify_one();
                            return Ok(Pushed::Written);
                        }
                        Tried::Broken => {
                            queue.idle = false;
                            drop(queue);
                            self.broken.store(true, Relaxed);
                            self.ready.notify_one();
                            return Err(PushError::Closed);
                        }
                        // Queued below; the writer, woken for it, writes it.
                        Tried::NotNow => queue.idle = false,
                    }
                }
            }
        }
        if queue.frames.len() >= self.capacity || (!was_empty && queue.bytes + frame.len() > self.max_bytes) {
            return Err(PushError::Full);
        }
        queue.bytes += frame.len();
        queue.replies += usize::from(reply);
        queue.frames.push_back(frame);
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(Pushed::Queued)
    }

    /// Waits until there is something to do, moving any queued frames into `batch`.
    /// While it waits with nothing to do, a push may write to the socket itself.
    pub async fn take(&self, batch: &mut VecDeque<Utf8Bytes>) -> Wake {
        loop {
            // Not idle from here on: whatever this returns, the writer may write.
            let took = self.swap_into(batch);
            if took {
                self.taken.notify_waiters();
            }
            if self.close_frame.get().is_some() {
                return Wake::Interrupted;
            }
            if self.broken.load(Relaxed) {
                return Wake::Broken;
            }
            let ping = self.ping_due.swap(false, Relaxed);
            let flush = self.flush_due.swap(false, Relaxed);
            if ping {
                return Wake::Ping;
            }
            if took {
                return Wake::Frames;
            }
            if flush {
                return Wake::Flush;
            }
            let queued = {
                let mut queue = self.queue.lock().expect("outbox lock");
                queue.idle = queue.frames.is_empty() && self.wire.get().is_some();
                !queue.frames.is_empty()
            };
            if !queued {
                self.ready.notified().await;
            }
        }
    }

    /// Takes whatever is queued now, without waiting.
    pub fn take_now(&self) -> VecDeque<Utf8Bytes> {
        let mut batch = VecDeque::new();
        if self.swap_into(&mut batch) {
            self.taken.notify_waiters();
        }
        batch
    }

    /// Moves the queued frames into `batch` (which must be empty); whether there were
    /// any. The writer is no longer idle.
    fn swap_into(&self, batch: &mut VecDeque<Utf8Bytes>) -> bool {
        let mut queue = self.queue.lock().expect("outbox lock");
        queue.idle = false;
        if queue.frames.is_empty() {
            return false;
        }
        std::mem::swap(&mut queue.frames, batch);
        queue.bytes = 0;
        queue.replies = 0;
        true
    }

    /// Refuses further frames and drops the queued ones (the writer has stopped).
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        let mut queue = self.queue.lock().expect("outbox lock");
        queue.frames = VecDeque::new();
        queue.bytes = 0;
        queue.replies = 0;
        queue.idle = false;
        drop(queue);
        // A reader waiting on its replies must not wait for a writer that is gone.
        self.taken.notify_waiters();
    }
}

/// One authenticated socket, as the hub and the request handlers see it.
pub struct Session {
    /// Unique per process.
    pub id: u64,
    /// Whose socket this is.
    pub user_id: UserId,
    /// The user's public profile; the role can change while the socket is open.
    pub user: Mutex<User>,
    /// The username, which never changes while the socket is open: read per delivery
    /// of a message with content warnings, whose author gets it whole.
    username: Box<str>,
    /// The user's content-warning preferences ([`CwPreferences`] bits), read per
    /// delivery of a message with content warnings.
    cw: AtomicU16,
    /// Hash of the token the socket authenticated with, so logout can close it.
    pub token_hash: [u8; 32],
    /// Frames for the writer, and the socket's close signal. Bounded; see the module
    /// docs for the overflow policy.
    outbox: Arc<Outbox>,
    /// Rooms this socket receives. Mirrors the user's memberships in the store; the
    /// hub changes it together with the room's subscriber list. Short std lock.
    rooms: Mutex<RoomSet>,
}

impl Session {
    /// A session that writes and closes through `outbox`.
    pub fn new(id: u64, user_id: UserId, user: User, token_hash: [u8; 32], outbox: Arc<Outbox>) -> Session {
        Session {
            id,
            user_id,
            username: user.username.clone().into_boxed_str(),
            user: Mutex::new(user),
            cw: AtomicU16::new(0),
            token_hash,
            outbox,
            rooms: Mutex::new(RoomSet::default()),
        }
    }

    /// The user's content-warning preferences as this socket applies them.
    pub fn preferences(&self) -> CwPreferences {
        CwPreferences(self.cw.load(Relaxed))
    }

    /// Applies `preferences` to what this socket receives from now on.
    pub fn set_preferences(&self, preferences: CwPreferences) {
        self.cw.store(preferences.0, Relaxed);
    }

    /// The username this socket authenticated as.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The user's profile as it is now.
    pub fn user(&self) -> User {
        self.user.lock().expect("user lock").clone()
    }

    /// Whether this socket receives `room` (i.e. the user is a member).
    pub fn is_in(&self, room: &str) -> bool {
        self.rooms.lock().expect("rooms lock").contains(room)
    }

    /// Queues a frame without waiting, or writes it at once when `at_once` and the
    /// outbox allows (see [`Outbox`]); `false` if it was neither. A full outbox closes
    /// the session (4008).
    fn deliver(&self, frame: &Utf8Bytes, metrics: &Metrics, at_once: bool) -> bool {
        let pushed = if at_once { self.outbox.push(frame.clone()) } else { self.outbox.push_to_writer(frame.clone()) };
        match pushed {
            Ok(()) => true,
            Err(PushError::Full) => {
                if self.outbox.interrupt(close_code::SLOW_CONSUMER, SLOW_CONSUMER_REASON) {
                    metrics.outbox_overflows.inc();
                    tracing::info!(session = self.id, "outbox full; closing the socket with 4008");
                }
                false
            }
            // The writer is gone; the session is being torn down.
            Err(PushError::Closed) => false,
        }
    }

    /// Asks the writer to close the socket with `code`.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.outbox.interrupt(code, reason);
    }
}

/// The rooms one session receives: a sorted list, searched by halving. A hash set cost
/// every socket about 100 bytes more (its smallest table is four slots of 24 bytes), and
/// it is read only by requests and by the hub's (un)subscribe, never per delivery.
#[derive(Default)]
struct RoomSet(Vec<Box<str>>);

impl RoomSet {
    fn contains(&self, room: &str) -> bool {
        self.0.binary_search_by(|r| (**r).cmp(room)).is_ok()
    }

    /// Adds `room`; `false` if it was there.
    fn insert(&mut self, room: &str) -> bool {
        match self.0.binary_search_by(|r| (**r).cmp(room)) {
            Ok(_) => false,
            Err(at) => {
                // Exactly: most sockets are in a few rooms, and a Vec's first growth
                // would make room for four.
                self.0.reserve_exact(1);
                self.0.insert(at, room.into());
                true
            }
        }
    }

    /// Removes `room`; `false` if it was not there.
    fn remove(&mut self, room: &str) -> bool {
        match self.0.binary_search_by(|r| (**r).cmp(room)) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }
}

/// The close signal shared by a socket's reader, writer and the hub: the first close
/// wins, and its code is the one the client gets. It lives in the socket's outbox, which
/// wakes the writer for it.
#[derive(Clone)]
pub struct Closer(Arc<Outbox>);

impl Closer {
    /// The close signal of the socket `outbox` writes to.
    pub fn for_outbox(outbox: Arc<Outbox>) -> Closer {
        Closer(outbox)
    }

    /// Records `code` (if no close came first) and wakes the writer; `true` if this
    /// call was the first.
    pub fn close(&self, code: u16, reason: &'static str) -> bool {
        self.0.interrupt(code, reason)
    }

    /// Resolves once a close was asked for.
    pub async fn closed(&self) {
        loop {
            let closing = self.0.closing.notified();
            tokio::pin!(closing);
            // Registered before looking, so a close in between is not missed.
            closing.as_mut().enable();
            if self.0.close_frame.get().is_some() {
                return;
            }
            closing.await;
        }
    }

    /// The close code and reason asked for, if any.
    pub fn frame(&self) -> Option<(u16, &'static str)> {
        self.0.close_frame.get().copied()
    }
}

/// The local subscribers of one room.
#[derive(Default)]
struct RoomSubscribers {
    /// Sessions receiving the room. A Vec: dispatch iterates it on every event.
    sessions: Vec<Arc<Session>>,
    /// Sessions per online user, for presence and `members_online`.
    online: HashMap<UserId, u32>,
}

/// Reads the messages a bus did not bring, for the hub to deliver in their place.
pub trait GapFiller: Send + Sync + 'static {
    /// The `message` events of `room`'s seqs strictly between `after` and `before`,
    /// ascending, each with its seq. An error is retried a few times.
    fn missing(&self, room: String, after: i64, before: i64) -> GapFill;
}

/// What [`GapFiller::missing`] returns.
pub type GapFill = Pin<Box<dyn Future<Output = Result<Vec<RoomEnvelope>, String>> + Send>>;

/// How often a fill that fails is tried before the held events go out regardless.
const FILL_ATTEMPTS: u32 = 5;

/// How long a gap waits for the missing messages to come over the bus before they are
/// read from the store. Between nodes a gap is nearly always a message still on its way
/// (two nodes commit in one order and publish in the other), here within a millisecond;
/// only a message the bus lost waits the whole time.
const GAP_PATIENCE: Duration = Duration::from_millis(100);

/// Where the hub is in one room's sequence of messages.
#[derive(Default)]
struct RoomOrder {
    /// The last seq delivered (0: none seen yet; the first one seen sets it).
    last: i64,
    /// While a gap is open: the room's events that came since, in order.
    held: Option<VecDeque<RoomEnvelope>>,
    /// Numbers the gaps, so a timer or a read for a gap that has closed since does
    /// nothing.
    gap: u64,
}

/// The hosts on duty in a room: id and username, in the order they went on duty.
pub type Hosts = Vec<(UserId, String)>;

/// The node's fan-out: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<HubShared>,
}

struct HubShared {
    /// room name → its local subscribers. DashMap: dispatches to different rooms do not
    /// contend; a guard is held only while queuing frames, never across an await.
    rooms: DashMap<String, RoomSubscribers>,
    /// user → that user's sessions on this node.
    users: DashMap<UserId, Vec<Arc<Session>>>,
    /// Rooms by name, read through from the store and replaced by `RoomChanged`
    /// effects, so every node sees slow mode and locks as soon as they are published.
    room_records: DashMap<String, Arc<RoomRecord>>,
    /// (room, user) → mute in force. Loaded at start, then kept by `Muted` / `Unmuted`
    /// effects; checked on every send, so it must not need the store.
    mutes: DashMap<(RoomId, UserId), Restriction>,
    /// The hosts on duty per room (with the room's name), in the order they went on duty.
    duty: DashMap<RoomId, (String, Hosts)>,
    /// author username → who blocks them: looked up once per event with words in it,
    /// so an author nobody blocks costs one failed lookup per event, none per socket.
    blocked_by: DashMap<String, Arc<HashSet<UserId>>>,
    /// blocker → the usernames they block, for shaping what requests read.
    blocking: DashMap<UserId, Arc<HashSet<String>>>,
    /// room name → the seq delivered last, and what waits for a gap to be filled.
    order: DashMap<String, RoomOrder>,
    /// How many rooms are filling a gap now: while none is, events without a seq skip
    /// the order map altogether.
    filling: AtomicUsize,
    /// Reads missing messages; set once the store is open (without one, gaps go through).
    filler: OnceLock<Arc<dyn GapFiller>>,
    /// Message events to lose on purpose, as a lossy bus would (tests only).
    #[cfg(feature = "test-hooks")]
    lose: std::sync::atomic::AtomicU32,
    metrics: Arc<Metrics>,
    /// Local recipients of one room event from which the dispatching thread writes each
    /// quiet socket itself instead of waking its socket's task (0 = never). Writing at
    /// once spares a wake-up and a poll per recipient, but it writes the whole fan-out
    /// on the one dispatching thread (for a stored message, the store's writer). One
    /// event to many sockets gains (one room of 10,000, side by side: 500,000 and
    /// 460,000 deliveries/s against 400,000 and 420,000); many small rooms lose more
    /// from the lost parallelism (100 rooms of 100: 600 msg/s in four runs against
    /// 600–770), since their sockets' tasks run on every core.
    write_at_once_from: usize,
}

impl Hub {
    /// An empty hub that writes the events of rooms with at least `write_at_once_from`
    /// local members at once on the dispatching thread (0 = never).
    pub fn new(metrics: Arc<Metrics>, write_at_once_from: usize) -> Hub {
        Hub {
            shared: Arc::new(HubShared {
                rooms: DashMap::new(),
                users: DashMap::new(),
                room_records: DashMap::new(),
                mutes: DashMap::new(),
                duty: DashMap::new(),
                blocked_by: DashMap::new(),
                blocking: DashMap::new(),
                order: DashMap::new(),
                filling: AtomicUsize::new(0),
                filler: OnceLock::new(),
                #[cfg(feature = "test-hooks")]
                lose: std::sync::atomic::AtomicU32::new(0),
                metrics,
                write_at_once_from,
            }),
        }
    }

    /// Gives the hub its way to read messages the bus did not bring.
    pub fn set_gap_filler(&self, filler: Arc<dyn GapFiller>) {
        let _ = self.shared.filler.set(filler);
    }

    /// Loses the next `count` message events before they reach the order check, as a
    /// lossy bus would (tests only).
    #[cfg(feature = "test-hooks")]
    pub fn lose_next_messages(&self, count: u32) {
        self.shared.lose.store(count, Relaxed);
    }

    /// A cached room.
    pub fn cached_room(&self, name: &str) -> Option<Arc<RoomRecord>> {
        self.shared.room_records.get(name).map(|room| room.clone())
    }

    /// Caches a room read from the store, unless the cache holds one already (which an
    /// effect put there, and which may be newer than the read); returns the cached one.
    pub fn fill_room(&self, room: RoomRecord) -> Arc<RoomRecord> {
        self.shared.room_records.entry(room.name.clone()).or_insert_with(|| Arc::new(room)).clone()
    }

    /// Replaces every block this node knows with `blocks` (after an erasure made
    /// outside the server).
    pub fn replace_blocks(&self, blocks: Vec<(UserId, String)>) {
        self.shared.blocked_by.clear();
        self.shared.blocking.clear();
        self.load_blocks(blocks);
    }

    /// Loads every block (at start).
    pub fn load_blocks(&self, blocks: Vec<(UserId, String)>) {
        for (blocker, blocked) in blocks {
            self.apply_block(blocker, &blocked, true);
        }
    }

    /// `blocker` blocks `blocked` (`on`) or no longer does, on this node.
    fn apply_block(&self, blocker: UserId, blocked: &str, on: bool) {
        // Copy on write: a dispatch holds the set it looked up without a lock.
        let mut blockers = self.shared.blocked_by.get(blocked).map(|set| (**set).clone()).unwrap_or_default();
        let mut names = self.shared.blocking.get(&blocker).map(|set| (**set).clone()).unwrap_or_default();
        if on {
            blockers.insert(blocker);
            names.insert(blocked.to_string());
        } else {
            blockers.remove(&blocker);
            names.remove(blocked);
        }
        if blockers.is_empty() {
            self.shared.blocked_by.remove(blocked);
        } else {
            self.shared.blocked_by.insert(blocked.to_string(), Arc::new(blockers));
        }
        if names.is_empty() {
            self.shared.blocking.remove(&blocker);
        } else {
            self.shared.blocking.insert(blocker, Arc::new(names));
        }
    }

    /// The usernames `user` blocks (empty for most).
    pub fn blocked_by_user(&self, user: UserId) -> Option<Arc<HashSet<String>>> {
        self.shared.blocking.get(&user).map(|set| set.clone())
    }

    /// Whether `user` blocks the member named `author`.
    pub fn blocks(&self, user: UserId, author: &str) -> bool {
        self.shared.blocked_by.get(author).is_some_and(|blockers| blockers.contains(&user))
    }

    /// Loads the mutes in force (at start).
    pub fn load_mutes(&self, mutes: Vec<MuteRecord>) {
        for mute in mutes {
            self.shared.mutes.insert((mute.room, mute.user), mute.mute);
        }
    }

    /// The mute of `user` in `room`, if one is in force now. An expired mute lifts
    /// itself here.
    pub fn mute(&self, room: RoomId, user: UserId) -> Option<Restriction> {
        // A Copy key: the check on every send allocates nothing.
        let key = (room, user);
        let mute = self.shared.mutes.get(&key).map(|m| m.clone())?;
        if mute.until.is_some_and(|until| until <= now_ms()) {
            self.shared.mutes.remove_if(&key, |_, m| m.until == mute.until);
            return None;
        }
        Some(mute)
    }

    /// Adds a freshly authenticated session to its user, receiving no room yet.
    /// Registering before reading the user's rooms means a concurrent `join` from another
    /// socket of the same user reaches this one too.
    /// Returns how many sessions the user has on this node now.
    pub fn register(&self, session: &Arc<Session>) -> usize {
        let mut sessions = self.shared.users.entry(session.user_id).or_default();
        sessions.push(session.clone());
        sessions.len()
    }

    /// Makes `session` receive each of `rooms`; returns the rooms where its user was
    /// not online before (for presence).
    pub fn attach(&self, session: &Arc<Session>, rooms: &[String]) -> Vec<String> {
        rooms.iter().filter(|room| self.subscribe(session, room)).cloned().collect()
    }

    /// Removes a closing session everywhere; returns the rooms where its user is now
    /// offline on this node.
    pub fn detach(&self, session: &Arc<Session>) -> Vec<String> {
        if let Some(mut sessions) = self.shared.users.get_mut(&session.user_id) {
            sessions.retain(|other| other.id != session.id);
        }
        self.shared.users.remove_if(&session.user_id, |_, sessions| sessions.is_empty());
        let rooms: Vec<String> = session.rooms.lock().expect("rooms lock").0.iter().map(|r| r.to_string()).collect();
        rooms.into_iter().filter(|room| self.unsubscribe(session, room)).collect()
    }

    /// Makes every local session of `user` receive `room`.
    pub fn subscribe_user(&self, room: &str, user: UserId) {
        for session in self.sessions_of(user) {
            self.subscribe(&session, room);
        }
    }

    /// Stops every local session of `user` from receiving `room`.
    pub fn unsubscribe_user(&self, room: &str, user: UserId) {
        for session in self.sessions_of(user) {
            self.unsubscribe(&session, room);
        }
    }

    /// Asks every authenticated socket on this node to send a ping.
    pub fn ping_all(&self) {
        for sessions in self.shared.users.iter() {
            for session in sessions.value() {
                if let Some((code, reason)) = session.outbox.tick() {
                    tracing::debug!(code, "socket silent for two ping intervals; dropping it");
                    session.close(code, reason);
                }
            }
        }
    }

    /// How many distinct users are online in `room` on this node.
    pub fn members_online(&self, room: &str) -> u64 {
        self.shared.rooms.get(room).map_or(0, |subs| subs.online.len() as u64)
    }

    /// Whether `user` has a socket receiving `room` on this node.
    pub fn is_online(&self, room: &str, user: UserId) -> bool {
        self.shared.rooms.get(room).is_some_and(|subs| subs.online.contains_key(&user))
    }

    /// The hosts on duty in a room now.
    pub fn hosts_on_duty(&self, room: RoomId) -> Hosts {
        self.shared.duty.get(&room).map(|entry| entry.1.clone()).unwrap_or_default()
    }

    /// Every room with a host on duty (its id and name), with them (for the off-duty
    /// sweep).
    pub fn all_on_duty(&self) -> Vec<(RoomId, String, Hosts)> {
        self.shared
            .duty
            .iter()
            .filter(|e| !e.value().1.is_empty())
            .map(|e| (*e.key(), e.value().0.clone(), e.value().1.clone()))
            .collect()
    }

    /// Loads the hosts on duty at start: (room id, room name, host).
    pub fn load_duty(&self, hosts: Vec<(RoomId, String, crate::store::UserRecord)>) {
        for (room, name, host) in hosts {
            self.shared.duty.entry(room).or_insert_with(|| (name, Vec::new())).1.push((host.id, host.user.username));
        }
    }

    /// Every room with users online on this node, with those users (for the other
    /// nodes' view of presence).
    pub fn online_by_room(&self) -> Vec<(String, Vec<(UserId, User)>)> {
        self.shared
            .rooms
            .iter()
            .filter(|entry| !entry.value().online.is_empty())
            .map(|entry| {
                let mut seen = HashSet::new();
                let users = entry
                    .value()
                    .sessions
                    .iter()
                    .filter(|s| seen.insert(s.user_id))
                    .map(|s| (s.user_id, s.user()))
                    .collect();
                (entry.key().clone(), users)
            })
            .collect()
    }

    /// Up to `max` distinct online users of `room`.
    pub fn online_users(&self, room: &str, max: usize) -> Vec<User> {
        let Some(subs) = self.shared.rooms.get(room) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        subs.sessions.iter().filter(|s| seen.insert(s.user_id)).take(max).map(|s| s.user()).collect()
    }

    /// Closes every socket on this node with `code` (the node lost its bus).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let sessions: Vec<Arc<Session>> = self.shared.users.iter().flat_map(|e| e.value().clone()).collect();
        for session in sessions {
            session.close(code, reason);
        }
    }

    /// Applies one bus message on this node.
    pub fn dispatch(&self, message: &BusMessage) {
        match message {
            BusMessage::Room(envelope) => self.dispatch_in_order(envelope),
            BusMessage::User { user, frame } => {
                for session in self.sessions_of(*user) {
                    self.count(session.deliver(frame, &self.shared.metrics, true));
                }
            }
            BusMessage::UserChanged { record, frame } => {
                for session in self.sessions_of(record.id) {
                    *session.user.lock().expect("user lock") = record.user.clone();
                    self.count(session.deliver(frame, &self.shared.metrics, true));
                }
            }
            BusMessage::Moderators { moderators, frame } => {
                for entry in self.shared.users.iter() {
                    for session in entry.value() {
                        if moderators.contains(&session.user_id) || session.user().role.moderates_every_room() {
                            self.count(session.deliver(frame, &self.shared.metrics, true));
                        }
                    }
                }
            }
            BusMessage::Everyone { frame } => {
                for entry in self.shared.users.iter() {
                    for session in entry.value() {
                        self.count(session.deliver(frame, &self.shared.metrics, true));
                    }
                }
            }
            BusMessage::Apply { room, effect } => self.apply(room, effect),
            BusMessage::Block { blocker, blocked, on } => self.apply_block(*blocker, blocked, *on),
            BusMessage::Preferences { user, preferences } => {
                for session in self.sessions_of(*user) {
                    session.set_preferences(*preferences);
                }
            }
            BusMessage::Close { target, code, reason } => {
                let sessions: Vec<Arc<Session>> = match target {
                    CloseTarget::User(user) => self.sessions_of(*user),
                    CloseTarget::Token(hash) => self
                        .shared
                        .users
                        .iter()
                        .flat_map(|e| e.value().clone())
                        .filter(|s| s.token_hash == *hash)
                        .collect(),
                };
                for session in sessions {
                    session.close(*code, reason);
                }
            }
        }
    }

    /// Delivers a room event in its place: a message once, in seq order, after any gap
    /// before it is filled; other events after whatever the room is holding.
    fn dispatch_in_order(&self, envelope: &RoomEnvelope) {
        #[cfg(feature = "test-hooks")]
        if envelope.seq.is_some() && self.shared.lose.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
            return;
        }
        if envelope.seq.is_none() && self.shared.filling.load(Relaxed) == 0 {
            return self.dispatch_room(envelope);
        }
        let mut order = match self.shared.order.get_mut(&envelope.room) {
            Some(order) => order,
            None => self.shared.order.entry(envelope.room.clone()).or_default(),
        };
        self.admit(&mut order, envelope);
    }

    /// The order check for one event of a room whose order entry is held.
    fn admit(&self, order: &mut RoomOrder, envelope: &RoomEnvelope) {
        if let Some(held) = &mut order.held {
            held.push_back(envelope.clone());
            // The missing message may just have come: deliver what is in order now.
            if envelope.seq == Some(order.last + 1) {
                self.release(order);
            }
            return;
        }
        match envelope.seq {
            // Delivered already (a filled message whose own event came late).
            Some(seq) if order.last != 0 && seq <= order.last => {}
            Some(seq) if order.last != 0 && seq > order.last + 1 && self.shared.filler.get().is_some() => {
                order.held = Some(VecDeque::from([envelope.clone()]));
                order.gap += 1;
                self.shared.filling.fetch_add(1, Relaxed);
                self.shared.metrics.bus_gaps.inc();
                self.await_gap(envelope.room.clone(), order.gap);
            }
            seq => {
                if let Some(seq) = seq {
                    order.last = seq;
                }
                self.dispatch_room(envelope);
            }
        }
    }

    /// Delivers the held events that are in order now (the message right after the
    /// last, wherever it waits among them, and any other event up to the next gap,
    /// dropping messages delivered already); when none is left the gap is closed.
    fn release(&self, order: &mut RoomOrder) {
        let Some(held) = &mut order.held else { return };
        while let Some(front) = held.front() {
            match front.seq {
                Some(seq) if seq <= order.last => {}
                Some(seq) if seq > order.last + 1 => {
                    // The next one may have come after later ones.
                    let Some(at) = held.iter().position(|e| e.seq == Some(order.last + 1)) else { return };
                    let next = held.remove(at).expect("just found");
                    order.last += 1;
                    self.dispatch_room(&next);
                    continue;
                }
                Some(seq) => {
                    order.last = seq;
                    self.dispatch_room(front);
                }
                None => self.dispatch_room(front),
            }
            held.pop_front();
        }
        order.held = None;
        order.gap += 1;
        self.shared.filling.fetch_sub(1, Relaxed);
    }

    /// Gives gap number `gap` of `room` its patience, then, if it is still open, reads
    /// what is missing from the store.
    fn await_gap(&self, room: String, gap: u64) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GAP_PATIENCE).await;
            let Some(order) = hub.shared.order.get(&room) else { return };
            if order.gap != gap {
                return;
            }
            let after = order.last;
            let Some(before) = order.held.iter().flatten().find_map(|held| held.seq.filter(|seq| *seq > after)) else {
                return;
            };
            drop(order);
            hub.shared.metrics.bus_gap_reads.inc();
            hub.fill(room, after, before, gap);
        });
    }

    /// Reads the messages between `after` and `before` in the background, then
    /// delivers them and what the room held meanwhile.
    fn fill(&self, room: String, after: i64, before: i64, gap: u64) {
        let (hub, filler) = (self.clone(), self.shared.filler.get().expect("checked by the caller").clone());
        tokio::spawn(async move {
            let mut found = None;
            for attempt in 0..FILL_ATTEMPTS {
                match filler.missing(room.clone(), after, before).await {
                    Ok(frames) => {
                        found = Some(frames);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%room, after, before, attempt, %error, "cannot read the messages the bus lost");
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                }
            }
            if found.is_none() {
                // The store is failing: what is held goes out rather than waiting for
                // ever; clients fill the hole from history themselves.
                tracing::error!(%room, after, before, "delivering past a gap the store could not fill");
            }
            hub.resume(&room, before, found.unwrap_or_default(), gap);
        });
    }

    /// Delivers filled messages, then the held events in order (a further gap among
    /// them holds the rest again).
    fn resume(&self, room: &str, before: i64, filled: Vec<RoomEnvelope>, gap: u64) {
        let Some(mut order) = self.shared.order.get_mut(room) else { return };
        if order.gap != gap {
            // The bus brought them while the store was read.
            return;
        }
        for envelope in filled {
            let Some(seq) = envelope.seq else { continue };
            if seq > order.last && seq < before {
                self.dispatch_room(&envelope);
                order.last = seq;
            }
        }
        // Filled or not, the gap is behind us now.
        order.last = order.last.max(before - 1);
        let mut held = order.held.take().unwrap_or_default();
        order.gap += 1;
        self.shared.filling.fetch_sub(1, Relaxed);
        while let Some(envelope) = held.pop_front() {
            self.admit(&mut order, &envelope);
            if let Some(again) = &mut order.held {
                again.extend(held.drain(..));
                break;
            }
        }
    }

    fn dispatch_room(&self, envelope: &RoomEnvelope) {
        // A joiner starts receiving before the event goes out, so it sees its own join;
        // a leaver stops after it, so its sockets learn that it left.
        match &envelope.effect {
            Some(effect @ (Effect::Subscribe(_) | Effect::Muted(..) | Effect::Unmuted(..))) => {
                self.apply(&envelope.room, effect)
            }
            Some(effect @ (Effect::RoomChanged(_) | Effect::Duty { .. })) => self.apply(&envelope.room, effect),
            Some(Effect::Unsubscribe(_)) | None => {}
        }
        if let Some(subs) = self.shared.rooms.get(&envelope.room) {
            let mut delivered = 0;
            // Once per event: who blocks its author (almost always nobody), and, only if
            // someone does, the one stub they all share.
            let blockers = envelope
                .authored
                .as_ref()
                .and_then(|authored| self.shared.blocked_by.get(&authored.author).map(|set| set.clone()));
            let mut stub: Option<Option<Utf8Bytes>> = None;
            let from = self.shared.write_at_once_from;
            let at_once = from != 0 && subs.sessions.len() >= from;
            // Members who joined a since_join room after the message: nothing of it.
            let unseen = envelope.authored.as_ref().map(|authored| &authored.unseen_by).filter(|by| !by.is_empty());
            for session in &subs.sessions {
                if envelope.except == Some(session.user_id) {
                    continue;
                }
                if unseen.is_some_and(|by| by.contains(&session.user_id)) {
                    continue;
                }
                if let Some(blockers) = &blockers {
                    if blockers.contains(&session.user_id) {
                        let authored = envelope.authored.as_ref().expect("blockers come from it");
                        let stub = stub.get_or_insert_with(|| authored.stub(&envelope.room));
                        if let Some(frame) = stub {
                            if session.deliver(frame, &self.shared.metrics, at_once) {
                                delivered += 1;
                            }
                        }
                        continue;
                    }
                }
                // Only an event about a message with content warnings has variants; every
                // other one is the same shared frame for all.
                let frame = match &envelope.variants {
                    None => &envelope.frame,
                    Some(variants) => variants.frame_for(&envelope.frame, &session.username, session.preferences()),
                };
                if session.deliver(frame, &self.shared.metrics, at_once) {
                    delivered += 1;
                }
            }
            // One shared counter update per event, not one per recipient.
            self.shared.metrics.deliveries.inc_by(delivered);
        }
        if let Some(effect @ Effect::Unsubscribe(_)) = &envelope.effect {
            self.apply(&envelope.room, effect);
        }
    }

    /// Applies one effect to this node's state. The only writer of the room and mute
    /// caches after start.
    /// Applies a state change on this node (a bus message's effect, or, with a bus
    /// between nodes, the publishing node's own change ahead of its echo).
    pub fn apply(&self, room: &str, effect: &Effect) {
        match effect {
            Effect::Subscribe(user) => self.subscribe_user(room, *user),
            Effect::Unsubscribe(user) => self.unsubscribe_user(room, *user),
            Effect::Muted(room_id, user, mute) => {
                self.shared.mutes.insert((*room_id, *user), mute.clone());
            }
            Effect::Unmuted(room_id, user) => {
                self.shared.mutes.remove(&(*room_id, *user));
            }
            Effect::RoomChanged(record) => {
                self.shared.room_records.insert(record.name.clone(), record.clone());
            }
            Effect::Duty { room: room_id, user, username, on } => {
                let mut entry = self.shared.duty.entry(*room_id).or_insert_with(|| (room.to_string(), Vec::new()));
                entry.1.retain(|(host, _)| host != user);
                if *on {
                    entry.1.push((*user, username.clone()));
                }
            }
        }
    }

    fn count(&self, delivered: bool) {
        if delivered {
            self.shared.metrics.deliveries.inc();
        }
    }

    fn sessions_of(&self, user: UserId) -> Vec<Arc<Session>> {
        self.shared.users.get(&user).map(|s| s.clone()).unwrap_or_default()
    }

    /// Returns `true` if the session's user came online in the room.
    fn subscribe(&self, session: &Arc<Session>, room: &str) -> bool {
        if !session.rooms.lock().expect("rooms lock").insert(room) {
            return false;
        }
        let mut subs = self.shared.rooms.entry(room.to_string()).or_default();
        subs.sessions.push(session.clone());
        let count = subs.online.entry(session.user_id).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Returns `true` if the session's user went offline in the room.
    fn unsubscribe(&self, session: &Arc<Session>, room: &str) -> bool {
        if !session.rooms.lock().expect("rooms lock").remove(room) {
            return false;
        }
        let mut offline = false;
        if let Some(mut subs) = self.shared.rooms.get_mut(room) {
            subs.sessions.retain(|other| other.id != session.id);
            if let Some(count) = subs.online.get_mut(&session.user_id) {
                *count -= 1;
                if *count == 0 {
                    subs.online.remove(&session.user_id);
                    offline = true;
                }
            }
        }
        self.shared.rooms.remove_if(room, |_, subs| subs.sessions.is_empty());
        offline
    }
}

/// A bus between nodes delivers into the hub.
impl crate::bus::Subscriber for Hub {
    fn dispatch(&self, message: &BusMessage) {
        Hub::dispatch(self, message);
    }

    fn close_all(&self, code: u16, reason: &'static str) {
        Hub::close_all(self, code, reason);
    }
}

/// On one node the hub is the bus: a publish is delivered at once, in call order.
impl Bus for Hub {
    fn publish(&self, message: BusMessage) {
        self.dispatch(&message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn session(id: u64, user: i64, capacity: usize) -> (Arc<Session>, Arc<Outbox>, Closer) {
        let outbox = Arc::new(Outbox::new(capacity, 1 << 20));
        let closer = Closer::for_outbox(outbox.clone());
        let profile = User { username: format!("u{user}"), display_name: format!("U{user}"), role: Role::Member };
        (Arc::new(Session::new(id, UserId(user), profile, [0; 32], outbox.clone())), outbox, closer)
    }

    fn texts(outbox: &Outbox) -> Vec<String> {
        outbox.take_now().iter().map(|f| f.as_str().to_string()).collect()
    }

    fn envelope(room: &str, text: &str) -> BusMessage {
        BusMessage::Room(RoomEnvelope {
            room: room.into(),
            frame: Utf8Bytes::from(text.to_string()),
            except: None,
            effect: None,
            seq: None,
            variants: None,
            authored: None,
        })
    }

    fn message_envelope(room: &str, seq: i64) -> RoomEnvelope {
        RoomEnvelope {
            room: room.into(),
            frame: Utf8Bytes::from(format!("m{seq}")),
            except: None,
            effect: None,
            seq: Some(seq),
            variants: None,
            authored: None,
        }
    }

    fn message(room: &str, seq: i64) -> BusMessage {
        BusMessage::Room(message_envelope(room, seq))
    }

    /// A filler that knows every seq, and counts how often it was asked.
    struct Known(Arc<std::sync::atomic::AtomicU32>);

    impl GapFiller for Known {
        fn missing(&self, room: String, after: i64, before: i64) -> GapFill {
            self.0.fetch_add(1, Relaxed);
            Box::pin(async move { Ok(((after + 1)..before).map(|seq| message_envelope(&room, seq)).collect()) })
        }
    }

    /// A hub whose gap filler counts its reads, with one session in room `r` that has
    /// had message 1.
    fn hub_after_message_one() -> (Hub, Arc<std::sync::atomic::AtomicU32>, Arc<Outbox>) {
        let hub = Hub::new(Arc::default(), 0);
        let asked = Arc::new(std::sync::atomic::AtomicU32::new(0));
        hub.set_gap_filler(Arc::new(Known(asked.clone())));
        let (s, rx, _) = session(1, 1, 64);
        hub.register(&s);
        hub.subscribe_user("r", UserId(1));
        hub.dispatch(&message("r", 1));
        assert_eq!(texts(&rx), ["m1"]);
        (hub, asked, rx)
    }

    #[tokio::test]
    async fn messages_out_of_order_or_lost_are_delivered_once_in_seq_order() {
        let (hub, asked, rx) = hub_after_message_one();
        // 2 and 3 come later than the bus's patience (another node's, or lost), 4
        // arrives first; an event after it waits behind the store read, and the late
        // ones are dropped as delivered.
        hub.dispatch(&message("r", 4));
        hub.dispatch(&envelope("r", "typing"));
        within(async {
            while hub.shared.filling.load(Relaxed) > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        hub.dispatch(&message("r", 2));
        hub.dispatch(&message("r", 3));
        hub.dispatch(&message("r", 5));
        assert_eq!(texts(&rx), ["m2", "m3", "m4", "typing", "m5"]);
        assert_eq!(asked.load(Relaxed), 1, "one read for one gap");
        // Another room is untouched by this one's order.
        hub.subscribe_user("q", UserId(1));
        hub.dispatch(&message("q", 7));
        assert_eq!(texts(&rx), ["m7"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_comes_late_closes_its_gap_without_a_store_read() {
        let (hub, asked, rx) = hub_after_message_one();
        // Two nodes published 2, 3 and 4 in another order than they committed them.
        hub.dispatch(&message("r", 4));
        hub.dispatch(&envelope("r", "typing"));
        hub.dispatch(&message("r", 3));
        assert!(texts(&rx).is_empty(), "held until the gap closes");
        hub.dispatch(&message("r", 2));
        assert_eq!(texts(&rx), ["m2", "m3", "m4", "typing"]);
        tokio::time::sleep(GAP_PATIENCE * 3).await;
        assert_eq!(asked.load(Relaxed), 0, "the bus brought them: nothing read from the store");
        hub.dispatch(&message("r", 5));
        assert_eq!(texts(&rx), ["m5"]);
    }

    #[test]
    fn a_full_outbox_closes_only_that_session_with_4008() {
        let hub = Hub::new(Arc::default(), 0);
        let (slow, _slow_rx, slow_closer) = session(1, 1, 2);
        let (fast, fast_rx, fast_closer) = session(2, 2, 16);
        for s in [&slow, &fast] {
            hub.register(s);
            hub.attach(s, &["room".to_string()]);
        }
        for n in 0..5 {
            hub.dispatch(&envelope("room", &n.to_string()));
        }
        assert_eq!(slow_closer.frame().map(|f| f.0), Some(close_code::SLOW_CONSUMER));
        assert!(fast_closer.frame().is_none());
        assert_eq!(texts(&fast_rx), ["0", "1", "2", "3", "4"]);
        assert_eq!(hub.shared.metrics.outbox_overflows.get(), 1);
    }

    /// Every wait in a test has a timeout.
    async fn within<T>(wait: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(5), wait).await.expect("timed out")
    }

    #[tokio::test]
    async fn the_writer_is_woken_once_per_burst_and_takes_it_whole() {
        let outbox = Arc::new(Outbox::new(8, 1 << 20));
        for n in 0..3 {
            outbox.push(Utf8Bytes::from(n.to_string())).unwrap();
        }
        let mut batch = VecDeque::new();
        assert_eq!(within(outbox.take(&mut batch)).await, Wake::Frames);
        assert_eq!(batch.len(), 3, "one take drains the burst");
        // Waiting with nothing queued ends as soon as a frame arrives.
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut batch = VecDeque::new();
                outbox.take(&mut batch).await;
                batch.len()
            })
        };
        tokio::task::yield_now().await;
        outbox.push(Utf8Bytes::from_static("late")).unwrap();
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(taken, 1);
        outbox.request_ping();
        let mut batch = VecDeque::new();
        assert_eq!(within(outbox.take(&mut batch)).await, Wake::Ping);
        Closer::for_outbox(outbox.clone()).close(close_code::NORMAL, "");
        assert_eq!(within(outbox.take(&mut batch)).await, Wake::Interrupted);
        outbox.close();
        assert_eq!(outbox.push(Utf8Bytes::from_static("after")), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn the_outbox_is_bounded_in_bytes_and_a_reader_waits_for_its_replies_to_go() {
        let outbox = Arc::new(Outbox::new(100, 10));
        outbox.push(Utf8Bytes::from_static("0123456789abc")).expect("one frame over the bound still fits alone");
        assert_eq!(outbox.push(Utf8Bytes::from_static("x")), Err(PushError::Full), "over the byte bound");
        outbox.take_now();
        outbox.push(Utf8Bytes::from_static("12345")).unwrap();
        outbox.push(Utf8Bytes::from_static("12345")).unwrap();
        assert_eq!(outbox.push(Utf8Bytes::from_static("1")), Err(PushError::Full));
        outbox.take_now();
        // No reply queued: nothing to wait for.
        within(outbox.replies_taken()).await;
        outbox.push_reply(Utf8Bytes::from_static("reply")).unwrap();
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.replies_taken().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the reply is still queued");
        let mut batch = VecDeque::new();
        within(outbox.take(&mut batch)).await;
        within(waiting).await.unwrap();
    }

    #[test]
    fn the_ticker_closes_a_socket_silent_for_two_whole_intervals_and_only_then() {
        let pinged = |outbox: &Outbox| outbox.ping_due.swap(false, Relaxed);
        let outbox = Outbox::new(100, 1 << 20);
        // A reader busy with a request is not silent, however long it takes.
        for _ in 0..5 {
            assert_eq!(outbox.tick(), None);
            assert!(pinged(&outbox), "every visit that closes nothing asks for a ping");
        }
        outbox.listening(true);
        assert_eq!(outbox.tick(), None, "one silent interval is not enough");
        // A frame read (a pong counts) starts the count again.
        outbox.heard();
        assert_eq!(outbox.tick(), None);
        assert_eq!(outbox.tick(), None);
        pinged(&outbox);
        assert_eq!(outbox.tick().map(|(code, _)| code), Some(close_code::GOING_AWAY));
        assert!(!pinged(&outbox), "no ping to a socket being closed");
        // Silent with a reply it does not read: a slow consumer.
        let stuck = Outbox::new(100, 1 << 20);
        stuck.listening(true);
        stuck.push_reply(Utf8Bytes::from_static("ok")).unwrap();
        assert_eq!(stuck.tick(), None);
        assert_eq!(stuck.tick().map(|(code, _)| code), Some(close_code::SLOW_CONSUMER));
    }

    #[test]
    fn a_sessions_rooms_stay_sorted_and_unique() {
        let mut rooms = RoomSet::default();
        for room in ["lobby", "art", "zines", "art", "music"] {
            rooms.insert(room);
        }
        let names: Vec<&str> = rooms.0.iter().map(|r| &**r).collect();
        assert_eq!(names, ["art", "lobby", "music", "zines"]);
        assert!(rooms.contains("music") && !rooms.contains("mus"));
        assert!(rooms.remove("lobby") && !rooms.remove("lobby"));
        assert!(!rooms.contains("lobby") && rooms.contains("art") && rooms.contains("zines"));
    }

    #[test]
    fn presence_counts_users_not_sockets() {
        let hub = Hub::new(Arc::default(), 0);
        let (a1, _r1, _) = session(1, 7, 4);
        let (a2, _r2, _) = session(2, 7, 4);
        hub.register(&a1);
        hub.register(&a2);
        assert_eq!(hub.attach(&a1, &["r".into()]), vec!["r".to_string()]);
        assert!(hub.attach(&a2, &["r".into()]).is_empty(), "second socket of an online user");
        assert_eq!(hub.members_online("r"), 1);
        assert!(hub.detach(&a1).is_empty());
        assert_eq!(hub.detach(&a2), vec!["r".to_string()]);
        assert_eq!(hub.members_online("r"), 0);
    }

    #[test]
    fn membership_changes_apply_around_the_event() {
        let hub = Hub::new(Arc::default(), 0);
        let (s, rx, _) = session(1, 3, 8);
        hub.register(&s);
        let join = BusMessage::Room(RoomEnvelope {
            room: "r".into(),
            frame: Utf8Bytes::from_static("joined"),
            except: None,
            effect: Some(Effect::Subscribe(UserId(3))),
            seq: None,
            variants: None,
            authored: None,
        });
        hub.dispatch(&join);
        assert!(s.is_in("r"));
        let leave = BusMessage::Room(RoomEnvelope {
            room: "r".into(),
            frame: Utf8Bytes::from_static("left"),
            except: None,
            effect: Some(Effect::Unsubscribe(UserId(3))),
            seq: None,
            variants: None,
            authored: None,
        });
        hub.dispatch(&leave);
        assert!(!s.is_in("r"));
        hub.dispatch(&envelope("r", "after"));
        assert_eq!(texts(&rx), ["joined", "left"]);
    }

    #[test]
    fn a_message_with_warnings_reaches_each_member_as_they_chose_from_shared_frames() {
        use crate::bus::Variants;
        use crate::protocol::{CwPreferences, Message, Shape};
        let hub = Hub::new(Arc::default(), 0);
        // u1 wrote it; u2 and u3 keep the default (collapse); u4 shows grief; u5 hides it.
        let sessions: Vec<_> = (1..=5).map(|user| session(user as u64, user, 8)).collect();
        for (s, _, _) in &sessions {
            hub.register(s);
            hub.subscribe_user("r", s.user_id);
        }
        let mut show = CwPreferences::default();
        show.set(6, Shape::Show);
        sessions[3].0.set_preferences(show);
        let mut hide = CwPreferences::default();
        hide.set(6, Shape::Hide);
        sessions[4].0.set_preferences(hide);
        let message = Message {
            seq: 1,
            room: "r".into(),
            author: User { username: "u1".into(), display_name: "U1".into(), role: Role::Member },
            body: Some("my dad died".into()),
            ts: "2026-11-27T00:00:00.000Z".into(),
            cw: vec!["grief".into()],
            ..Message::default()
        };
        let event = |message: Message| serde_json::to_string(&message).unwrap();
        let variants = Variants::of(&message, event).expect("a tagged message has variants");
        hub.dispatch(&BusMessage::Room(RoomEnvelope {
            room: "r".into(),
            frame: Utf8Bytes::from(event(message.clone())),
            except: None,
            effect: None,
            seq: Some(1),
            variants: Some(variants),
            authored: None,
        }));
        let got: Vec<Utf8Bytes> =
            sessions.iter().map(|(_, outbox, _)| outbox.take_now().pop_back().expect("one frame")).collect();
        let read = |frame: &Utf8Bytes| serde_json::from_str::<serde_json::Value>(frame.as_str()).unwrap();
        assert_eq!(read(&got[0])["body"], "my dad died", "the author gets it whole");
        assert_eq!(read(&got[3])["body"], "my dad died", "shown by choice");
        for collapsed in [&got[1], &got[2]] {
            let value = read(collapsed);
            assert_eq!(
                (value.get("body"), &value["collapsed"], &value["cw"][0]),
                (None, &true.into(), &"grief".into())
            );
        }
        assert_eq!(read(&got[4]), serde_json::json!({"seq": 1, "room": "r", "hidden": true, "cw": ["grief"]}));
        // Serialised once per variant: the two collapsed readers share one buffer.
        assert_eq!(got[1].as_str().as_ptr(), got[2].as_str().as_ptr());
        assert_eq!(got[0].as_str().as_ptr(), got[3].as_str().as_ptr());
    }

    #[test]
    fn blockers_get_one_shared_stub_in_a_messages_place_and_no_typing() {
        use crate::bus::{Authored, Words};
        let hub = Hub::new(Arc::default(), 0);
        let sessions: Vec<_> = (1..=4).map(|user| session(user as u64, user, 8)).collect();
        for (s, _, _) in &sessions {
            hub.register(s);
            hub.subscribe_user("r", s.user_id);
        }
        // u2 and u3 block u1; u4 does not.
        hub.load_blocks(vec![(UserId(2), "u1".into()), (UserId(3), "u1".into())]);
        assert!(hub.blocks(UserId(2), "u1") && !hub.blocks(UserId(4), "u1"));
        let by_u1 = |words, frame: &'static str| {
            BusMessage::Room(RoomEnvelope {
                room: "r".into(),
                frame: Utf8Bytes::from_static(frame),
                except: None,
                effect: None,
                seq: None,
                variants: None,
                authored: Some(Authored { author: "u1".into(), words, unseen_by: Vec::new() }),
            })
        };
        hub.dispatch(&by_u1(Words::Message(7), "the words"));
        hub.dispatch(&by_u1(Words::Typing, "typing"));
        let got: Vec<Vec<Utf8Bytes>> = sessions.iter().map(|(_, outbox, _)| outbox.take_now().into()).collect();
        assert_eq!(got[0].len(), 2, "the author gets both");
        assert_eq!(got[3].iter().map(|f| f.as_str()).collect::<Vec<_>>(), ["the words", "typing"]);
        for blocker in [&got[1], &got[2]] {
            assert_eq!(blocker.len(), 1, "no typing for a blocker");
            let stub: serde_json::Value = serde_json::from_str(blocker[0].as_str()).unwrap();
            assert_eq!(
                stub,
                serde_json::json!({"type": "message", "room": "r", "message": {"seq": 7, "room": "r", "hidden": true, "blocked": true}})
            );
        }
        assert_eq!(got[1][0].as_str().as_ptr(), got[2][0].as_str().as_ptr(), "one stub, shared");
        // Lifted on this node: the words come again.
        hub.dispatch(&BusMessage::Block { blocker: UserId(2), blocked: "u1".into(), on: false });
        hub.dispatch(&by_u1(Words::Message(8), "more words"));
        assert_eq!(texts(&sessions[1].1), ["more words"]);
        assert_eq!(texts(&sessions[2].1).len(), 1, "u3 still blocks");
    }
}
