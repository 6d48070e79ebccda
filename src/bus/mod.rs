//! The bus between the store and the hubs: every change that sockets must hear about is
//! published here after it is committed, and every node's hub receives it.
//!
//! On one node the hub itself is the bus (`impl Bus for Hub`): a publish is a direct
//! call into it. Between nodes, `redis` carries the same [`BusMessage`], encoded by
//! `wire`. The hub cannot tell which one fed it, so a single-node test exercises the same
//! path as a cluster.
//!
//! `publish` never waits: it is called from the store's writer in commit order, and a
//! waiting publish would stall every sender.

pub mod redis;
pub mod wire;

use crate::protocol::{CwPreferences, CwTags, Event, Message, Shape};
use crate::store::{Restriction, RoomId, RoomRecord, UserId, UserRecord};
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;

/// A change to this node's live state that comes with a room event. Every node applies
/// it when the event arrives, so caches follow the store on every node.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The user's sockets start receiving the room (before this event).
    Subscribe(UserId),
    /// The user's sockets stop receiving the room (after this event).
    Unsubscribe(UserId),
    /// The user is muted in the room (its id, for the node's mute cache).
    Muted(RoomId, UserId, Restriction),
    /// The user's mute in the room is lifted.
    Unmuted(RoomId, UserId),
    /// The room's settings changed; replace the cached room.
    RoomChanged(Arc<RoomRecord>),
    /// A room moderator went on or off duty as the room's host.
    Duty {
        /// The room.
        room: RoomId,
        /// The host.
        user: UserId,
        /// Their username, for `hosts_on_duty`.
        username: String,
        /// On duty now, or off.
        on: bool,
    },
}

/// An event for the members of one room.
#[derive(Debug, Clone)]
pub struct RoomEnvelope {
    /// Room name.
    pub room: String,
    /// The serialised event, shared by every recipient.
    pub frame: Utf8Bytes,
    /// A user whose sockets do not get it (e.g. the typist).
    pub except: Option<UserId>,
    /// A state change that comes with the event.
    pub effect: Option<Effect>,
    /// For a `message` event, the message's seq: the hub delivers a room's messages
    /// once each, in seq order, filling any gap from the store (a bus between nodes may
    /// lose or reorder what it carries).
    pub seq: Option<i64>,
    /// For an event carrying a message with content warnings: how it reads collapsed
    /// and hidden. `None` for every other event, which costs nothing per recipient.
    pub variants: Option<Arc<Variants>>,
    /// For an event carrying a member's words (a message, its update, typing): whose,
    /// so members who block them get a stub or nothing. Looked up once per event.
    pub authored: Option<Authored>,
}

/// Whose words a room event carries, and what it is (PROTOCOL §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authored {
    /// The author's username.
    pub author: String,
    /// What the event is.
    pub words: Words,
    /// Members who joined a `since_join` room after the message was sent: they get
    /// nothing of it (PROTOCOL §9.4). Empty for every other event.
    pub unseen_by: Vec<UserId>,
}

/// The kinds of event that carry a member's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    /// A new message, with its seq.
    Message(i64),
    /// A changed message, with its seq.
    Updated(i64),
    /// Typing.
    Typing,
}

impl Authored {
    /// What a member who blocks the author gets instead: the message's place with
    /// nothing of it, or, for typing, nothing at all.
    pub fn stub(&self, room: &str) -> Option<Utf8Bytes> {
        let event = match self.words {
            Words::Message(seq) => Event::Message { room: room.to_string(), message: Message::blocked_stub(seq, room) },
            Words::Updated(seq) => {
                Event::MessageUpdated { room: room.to_string(), message: Message::blocked_stub(seq, room) }
            }
            Words::Typing => return None,
        };
        Some(Utf8Bytes::from(event.to_json()))
    }
}

/// The other ways an event carrying a message with content warnings is seen (PROTOCOL
/// §8.2). Each is serialised once, where the event is made, and shared by every
/// recipient who sees it that way; `frame` is the whole one.
#[derive(Debug, PartialEq, Eq)]
pub struct Variants {
    /// The message's tags.
    pub tags: CwTags,
    /// Its author's username: they always get it whole.
    pub author: String,
    /// The event with the message collapsed.
    pub collapsed: Utf8Bytes,
    /// The event with the message hidden.
    pub hidden: Utf8Bytes,
}

impl Variants {
    /// The variants of an event about `message`, made by `event` from each shape of
    /// it; `None` when it has no tags (or is deleted), so everyone gets it whole.
    pub fn of(message: &Message, event: impl Fn(Message) -> String) -> Option<Arc<Variants>> {
        if message.cw.is_empty() || message.deleted {
            return None;
        }
        Some(Arc::new(Variants {
            tags: CwTags::of(&message.cw),
            author: message.author.username.clone(),
            collapsed: Utf8Bytes::from(event(message.shaped(Shape::Collapse))),
            hidden: Utf8Bytes::from(event(message.shaped(Shape::Hide))),
        }))
    }

    /// The frame a reader named `viewer` with `preferences` gets, `whole` or one of
    /// these.
    pub fn frame_for<'a>(&'a self, whole: &'a Utf8Bytes, viewer: &str, preferences: CwPreferences) -> &'a Utf8Bytes {
        if viewer == self.author {
            return whole;
        }
        match preferences.shape(self.tags) {
            Shape::Show => whole,
            Shape::Collapse => &self.collapsed,
            Shape::Hide => &self.hidden,
        }
    }
}

/// Which sockets a close applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseTarget {
    /// Every socket of a user.
    User(UserId),
    /// Every socket authenticated with the token of this hash.
    Token([u8; 32]),
}

/// What travels on the bus.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// Deliver to a room's members.
    Room(RoomEnvelope),
    /// Deliver to every socket of one user.
    User {
        /// Whose sockets.
        user: UserId,
        /// The serialised event.
        frame: Utf8Bytes,
    },
    /// A user's profile (e.g. global role) changed: update their sockets and tell them.
    UserChanged {
        /// The user as stored now.
        record: UserRecord,
        /// The serialised `user_updated` event.
        frame: Utf8Bytes,
    },
    /// Deliver to the moderators of a room who are online anywhere: the owner and the
    /// room's moderators (`moderators`), and every global moderator and up.
    Moderators {
        /// The room's owner and room moderators.
        moderators: Vec<UserId>,
        /// The serialised event.
        frame: Utf8Bytes,
    },
    /// Deliver to every authenticated socket (a rare, network-wide event such as a new
    /// room).
    Everyone {
        /// The serialised event.
        frame: Utf8Bytes,
    },
    /// A change to every node's live state with no frame to deliver (a new room, its
    /// owner's sockets receiving it).
    Apply {
        /// The room it concerns.
        room: String,
        /// The change.
        effect: Effect,
    },
    /// A user blocked (`on`) or stopped blocking someone: every node's hub keeps the
    /// author's messages and typing from the blocker's sockets from now on.
    Block {
        /// Who blocks.
        blocker: UserId,
        /// The username blocked.
        blocked: String,
        /// Blocked now, or not any more.
        on: bool,
    },
    /// A user changed their content-warning preferences: their sockets shape what
    /// they receive by these from now on.
    Preferences {
        /// Whose.
        user: UserId,
        /// The preferences now.
        preferences: CwPreferences,
    },
    /// Close some sockets with a code.
    Close {
        /// Whose sockets.
        target: CloseTarget,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
}

/// What a bus between nodes hands what it receives to: the node's hub (which imports
/// this module, so the bus names it only through this trait).
pub trait Subscriber: Send + Sync + 'static {
    /// Applies one message on this node.
    fn dispatch(&self, message: &BusMessage);

    /// Closes every socket on this node (the bus was lost).
    fn close_all(&self, code: u16, reason: &'static str);
}

/// Carries committed changes to the hub of every node.
pub trait Bus: Send + Sync + 'static {
    /// Publishes without waiting; messages from one caller arrive in call order.
    fn publish(&self, message: BusMessage);

    /// Whether the bus carries messages now (a bus between nodes can lose its link).
    fn healthy(&self) -> bool {
        true
    }
}
