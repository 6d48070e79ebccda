//! The wire protocol: every JSON shape that crosses HTTP or the WebSocket.
//!
//! This module owns the serde types for client requests, replies, server events and
//! the error body, plus the timestamp format. It knows nothing about storage, sockets
//! or permissions; everything else in the crate works on the typed values here.
//!
//! Parsing a client frame is two steps: a cheap look at `type` and `id`, then the typed
//! fields for that one type. That gives a precise error ("send needs a `room`") and
//! lets an error reply echo the request's `id` even when the rest of the frame is bad.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A global role, lowest to highest. The order matters: `Ord` compares authority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every registered account.
    #[default]
    Member,
    /// A network-wide moderator.
    Moderator,
    /// Runs events: may open summit rooms.
    Organiser,
    /// Runs the server.
    Admin,
}

impl Role {
    /// The stable lower-case name used on the wire, in the database and on the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Organiser => "organiser",
            Role::Admin => "admin",
        }
    }

    /// Parses the wire name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "moderator" => Some(Role::Moderator),
            "organiser" => Some(Role::Organiser),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// An ordinary, always-open room about a topic.
    #[default]
    Topic,
    /// An event room with an optional schedule window and capacity.
    Summit,
}

impl RoomKind {
    /// The stable lower-case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Topic => "topic",
            RoomKind::Summit => "summit",
        }
    }

    /// Parses the stored name; `None` for anything else.
    pub fn parse(text: &str) -> Option<RoomKind> {
        match text {
            "topic" => Some(RoomKind::Topic),
            "summit" => Some(RoomKind::Summit),
            _ => None,
        }
    }
}

/// A member's role inside one room (the owner is the room's creator, not a role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomRole {
    /// An ordinary member.
    Member,
    /// Moderates this room only.
    Moderator,
    /// Presents in a summit: sends during `stage` and `qa` (otherwise a member).
    Speaker,
    /// Joined a summit beyond its capacity: receives everything, may ask and vote, may
    /// never send. Given only by `join`.
    Viewer,
}

impl RoomRole {
    /// The stable lower-case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomRole::Member => "member",
            RoomRole::Moderator => "moderator",
            RoomRole::Speaker => "speaker",
            RoomRole::Viewer => "viewer",
        }
    }

    /// Parses the stored name; `None` for anything else.
    pub fn parse(text: &str) -> Option<RoomRole> {
        match text {
            "member" => Some(RoomRole::Member),
            "moderator" => Some(RoomRole::Moderator),
            "speaker" => Some(RoomRole::Speaker),
            "viewer" => Some(RoomRole::Viewer),
            _ => None,
        }
    }
}

/// Where a summit is in its programme (PROTOCOL §12): it decides who may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the event: nobody sends; members may join.
    Scheduled,
    /// Announcements: room moderators send, members read.
    Lobby,
    /// Speakers and room moderators send; the audience reads.
    Stage,
    /// Questions: speakers and room moderators send.
    Qa,
    /// Open conversation: every member sends.
    Hallway,
    /// A read-only archive.
    Closed,
}

impl Phase {
    /// The stable name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Lobby => "lobby",
            Phase::Stage => "stage",
            Phase::Qa => "qa",
            Phase::Hallway => "hallway",
            Phase::Closed => "closed",
        }
    }

    /// Parses the stored name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Phase> {
        [Phase::Scheduled, Phase::Lobby, Phase::Stage, Phase::Qa, Phase::Hallway, Phase::Closed]
            .into_iter()
            .find(|phase| phase.as_str() == text)
    }
}

/// One entry of a summit's schedule: `phase` from `at` on (ISO-8601 with offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// The phase that begins.
    pub phase: Phase,
    /// When it begins.
    pub at: String,
}

/// A user as every client sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Lower-case login name, unique.
    pub username: String,
    /// Free-form name shown in the client.
    pub display_name: String,
    /// Global role.
    pub role: Role,
}

/// A room as every client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Unique name, `a-z 0-9 _ -`.
    pub name: String,
    /// What the room is about; may be empty.
    pub topic: String,
    /// Topic or summit.
    pub kind: RoomKind,
    /// Username of the creator.
    pub owner: String,
    /// Members with at least one authenticated socket.
    pub members_online: u64,
    /// Seconds a member must wait between messages; 0 is off.
    pub slow_mode_s: u32,
    /// A locked room is read-only for all but its moderators.
    pub locked: bool,
    /// Summit window start (ISO-8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// Summit window end (ISO-8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Summit member limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Members may send only while a host is on duty (absent: false).
    #[serde(skip_serializing_if = "is_false", default)]
    pub requires_host: bool,
    /// A summit's phase now (absent for topic rooms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<Phase>,
    /// The phases still to come, ascending (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub schedule: Vec<ScheduleEntry>,
    /// A summit's speakers, by username (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub speakers: Vec<String>,
    /// A summit that lets people in beyond its capacity as viewers: how many it has
    /// (absent: it takes none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub viewers: Option<u64>,
    /// An imported summit's session itself (ISO-8601), inside the room's phases: what
    /// the programme and calendars show (absent: use `starts_at`/`ends_at`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_starts_at: Option<String>,
    /// The session's end (ISO-8601).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_ends_at: Option<String>,
    /// The IANA time zone the summit's times were given in; its times then carry that
    /// zone's offset (absent: UTC).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_zone: Option<String>,
    /// The room moderators on duty now, by username (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hosts_on_duty: Vec<String>,
    /// `private`: listed only to members and global moderators, joined by approval
    /// (absent: public).
    #[serde(skip_serializing_if = "Visibility::is_public", default)]
    pub visibility: Visibility,
    /// `since_join`: members see only what was said after they joined (absent: all).
    #[serde(skip_serializing_if = "HistoryVisibility::is_all", default)]
    pub history_visibility: HistoryVisibility,
    /// The requesting user's place in the room (in the `join` reply), so a client
    /// knows whether to show moderator tools.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub my_role: Option<MyRole>,
    /// For a member asking: messages by others after their read marker, at most 999.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unread: Option<u32>,
    /// For a member asking: how many of those unread messages name them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mentions_unread: Option<u32>,
}

/// Who may find and join a room (PROTOCOL §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed to everyone; anyone may join.
    #[default]
    Public,
    /// Listed to members and global moderators; joining needs a moderator's approval or invitation.
    Private,
}

impl Visibility {
    fn is_public(&self) -> bool {
        *self == Visibility::Public
    }
}

/// What a newcomer sees of a room's past (PROTOCOL §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryVisibility {
    /// Everything.
    #[default]
    All,
    /// Only messages sent after they joined.
    SinceJoin,
}

impl HistoryVisibility {
    fn is_all(&self) -> bool {
        *self == HistoryVisibility::All
    }
}

/// An invite code, as made (the code is shown once: the server keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// What a newcomer types on registering.
    pub code: String,
    /// How many registrations it allows.
    pub uses: u32,
    /// When it stops working (absent: never).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<String>,
}

/// A waiting request to join a private room (`join_requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Who asks.
    pub user: User,
    /// When they asked.
    pub ts: String,
}

/// A member of a room as its members see them (`members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Who.
    #[serde(flatten)]
    pub user: User,
    /// Their place in the room.
    pub room_role: MyRole,
    /// Whether they have a socket open.
    pub online: bool,
    /// Muted in this room: until when (absent for a mute until lifted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub muted_until: Option<String>,
    /// Muted in this room now.
    #[serde(skip_serializing_if = "is_false", default)]
    pub muted: bool,
}

/// A user's place in one room, as that user is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MyRole {
    /// An ordinary member.
    Member,
    /// Moderates the room (given the room role, or a global moderator and up).
    Moderator,
    /// Created the room.
    Owner,
}

/// A stored chat message, or what of it one member may see (see [`Message::shaped`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Position in the room, from 1, without gaps.
    pub seq: i64,
    /// Room name.
    pub room: String,
    /// Who wrote it (absent only from a hidden message).
    #[serde(default, skip_serializing_if = "User::is_unnamed")]
    pub author: User,
    /// The text; absent once deleted, and from a collapsed or hidden message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// When the server stored it (ISO-8601, milliseconds, UTC; absent only from a
    /// hidden message).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ts: String,
    /// The sender's idempotency key, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// Present and `true` for a deleted message.
    #[serde(skip_serializing_if = "is_false", default)]
    pub deleted: bool,
    /// When its author last edited it (ISO-8601), if ever.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub edited_at: Option<String>,
    /// The message (seq, same room) this one answers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reply_to: Option<i64>,
    /// The members named in the body as `@username`; absent when none are.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mentions: Vec<String>,
    /// How many members reacted with each emoji; absent when none did.
    #[serde(skip_serializing_if = "Reactions::is_empty", default)]
    pub reactions: Reactions,
    /// The emoji the requesting member reacted with (in `join` and `history` replies
    /// only, so a client shows its own reactions pressed after a reload); absent when
    /// none. Live events, shared by every recipient, never carry it.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub my_reactions: Vec<String>,
    /// Content-warning tags (from [`CW_TAGS`]); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cw: Vec<String>,
    /// The author's few words about the warning (at most 100 characters).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cw_note: Option<String>,
    /// Present and `true` when the body is held back by the reader's preferences.
    #[serde(skip_serializing_if = "is_false", default)]
    pub collapsed: bool,
    /// Present and `true` when only the seq, room and tags are shown.
    #[serde(skip_serializing_if = "is_false", default)]
    pub hidden: bool,
    /// Present and `true` (with `hidden`) when the reader blocks its author.
    #[serde(skip_serializing_if = "is_false", default)]
    pub blocked: bool,
}

impl User {
    /// The blank user of a hidden message, which names no author.
    fn is_unnamed(&self) -> bool {
        self.username.is_empty()
    }
}

/// The content-warning tags, in the order of their bits in [`CwTags`] (PROTOCOL §8.2).
pub const CW_TAGS: [&str; 8] = ["self_harm", "suicide", "eating", "substances", "abuse", "violence", "grief", "other"];

/// Most characters in a `cw_note`.
pub const CW_NOTE_MAX: usize = 100;

/// A set of content-warning tags: bit `i` is [`CW_TAGS`]`[i]`. Stored as this number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CwTags(pub u8);

impl CwTags {
    /// The tags named; an unknown name is refused with a sentence for the client.
    pub fn parse(names: &[String]) -> Result<CwTags, String> {
        let mut bits = 0u8;
        for name in names {
            let Some(at) = CW_TAGS.iter().position(|tag| tag == name) else {
                return Err(format!("“{}” is not a content warning; use {}.", truncate(name, 40), CW_TAGS.join(", ")));
            };
            bits |= 1 << at;
        }
        Ok(CwTags(bits))
    }

    /// The tags of a message as it travels (names that are not tags are ignored).
    pub fn of(names: &[String]) -> CwTags {
        CwTags(
            names
                .iter()
                .filter_map(|name| CW_TAGS.iter().position(|tag| tag == name))
                .fold(0, |bits, at| bits | 1 << at),
        )
    }

    /// The names, in [`CW_TAGS`] order.
    pub fn names(self) -> Vec<String> {
        CW_TAGS.iter().enumerate().filter(|(at, _)| self.0 & (1 << at) != 0).map(|(_, tag)| tag.to_string()).collect()
    }

    /// No tag at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// How a member wants messages with a tag, least to most strict: `Ord` is strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The message as usual.
    Show,
    /// Without its body, marked `collapsed`, with its tags and note.
    Collapse,
    /// Only its seq, room and tags, marked `hidden`.
    Hide,
}

/// A member's content-warning preferences: two bits per tag in [`CW_TAGS`] order
/// (0 collapse, 1 show, 2 hide), so that 0, what a new account has, is "collapse
/// everything". Stored as this number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CwPreferences(pub u16);

impl CwPreferences {
    /// The preference for tag number `at`.
    pub fn get(self, at: usize) -> Shape {
        match (self.0 >> (2 * at)) & 3 {
            1 => Shape::Show,
            2 => Shape::Hide,
            _ => Shape::Collapse,
        }
    }

    /// Sets the preference for tag number `at`.
    pub fn set(&mut self, at: usize, shape: Shape) {
        let code = match shape {
            Shape::Collapse => 0,
            Shape::Show => 1,
            Shape::Hide => 2,
        };
        self.0 = (self.0 & !(3 << (2 * at))) | (code << (2 * at));
    }

    /// How a message with `tags` reaches this member: the strictest preference among
    /// its tags; as usual when it has none.
    pub fn shape(self, tags: CwTags) -> Shape {
        (0..CW_TAGS.len()).filter(|at| tags.0 & (1 << at) != 0).map(|at| self.get(at)).max().unwrap_or(Shape::Show)
    }

    /// Every tag with its preference, as `preferences` answers.
    pub fn to_wire(self) -> Preferences {
        Preferences { cw: CW_TAGS.iter().enumerate().map(|(at, tag)| (tag.to_string(), self.get(at))).collect() }
    }

    /// These preferences with `changes` applied.
    pub fn apply(self, changes: CwChanges) -> CwPreferences {
        CwPreferences((self.0 & !changes.mask) | changes.bits)
    }
}

/// Some tags' preferences, to change: the bits of the tags named (`mask`) and their new
/// values (`bits`), in [`CwPreferences`]' layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CwChanges {
    /// Two bits set per tag named.
    pub mask: u16,
    /// The new values of those tags.
    pub bits: u16,
}

impl CwChanges {
    /// The changes `set_preferences` names; an unknown tag is refused with a sentence
    /// for the client.
    pub fn parse(changes: &BTreeMap<String, Shape>) -> Result<CwChanges, String> {
        let mut parsed = CwChanges::default();
        for (tag, shape) in changes {
            let Some(at) = CW_TAGS.iter().position(|known| known == tag) else {
                return Err(format!("“{}” is not a content warning; use {}.", truncate(tag, 40), CW_TAGS.join(", ")));
            };
            let mut one = CwPreferences::default();
            one.set(at, *shape);
            parsed.mask |= 3 << (2 * at);
            parsed.bits |= one.0;
        }
        Ok(parsed)
    }
}

/// A member's preferences as `preferences` and `set_preferences` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Every content-warning tag with how it reaches the member.
    pub cw: BTreeMap<String, Shape>,
}

impl Message {
    /// How this message reaches `viewer` with `preferences`: whole for its author, for
    /// a deleted message (nothing is left to hold back) and for one without tags.
    pub fn shape_for(&self, viewer: &str, preferences: CwPreferences) -> Shape {
        if self.cw.is_empty() || self.deleted || self.author.username == viewer {
            return Shape::Show;
        }
        preferences.shape(CwTags::of(&self.cw))
    }

    /// This message as `shape` lets it be seen (PROTOCOL §8.2): collapsed, without
    /// the body; hidden, only seq, room and tags.
    pub fn shaped(&self, shape: Shape) -> Message {
        match shape {
            Shape::Show => self.clone(),
            Shape::Collapse => Message { body: None, collapsed: true, ..self.clone() },
            Shape::Hide => Message {
                seq: self.seq,
                room: self.room.clone(),
                cw: self.cw.clone(),
                hidden: true,
                ..Message::default()
            },
        }
    }

    /// What a member who blocks the author gets in this message's place (PROTOCOL
    /// §9.1): its seq and room, so there is no gap, and nothing of its author or words.
    pub fn blocked_stub(seq: i64, room: &str) -> Message {
        Message { seq, room: room.to_string(), hidden: true, blocked: true, ..Message::default() }
    }

    /// Shapes this message in place for `viewer`.
    pub fn shape_in_place(&mut self, viewer: &str, preferences: CwPreferences) {
        let shape = self.shape_for(viewer, preferences);
        if shape != Shape::Show {
            *self = self.shaped(shape);
        }
    }
}

/// Reaction counts of one message, by emoji.
pub type Reactions = std::collections::BTreeMap<String, u32>;

/// A member's report of a message, kept until a moderator resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Report id, unique on the server.
    pub id: i64,
    /// Room name.
    pub room: String,
    /// The reported message.
    pub seq: i64,
    /// Username of the reporter.
    pub reporter: String,
    /// Why, in the reporter's words.
    pub reason: String,
    /// When it was reported.
    pub ts: String,
    /// The message as it was when reported (author, body, time), kept even if the
    /// message is deleted or changed later. Absent only for reports made before
    /// snapshots were kept, of messages since deleted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<Message>,
}

/// Why a care alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareKind {
    /// The message matched a crisis phrase.
    Phrase,
    /// A member referred the message to the moderators.
    Referral,
}

impl CareKind {
    /// The wire name, also kept in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CareKind::Phrase => "phrase",
            CareKind::Referral => "referral",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<CareKind> {
        [CareKind::Phrase, CareKind::Referral].into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Someone in a room may need care now (PROTOCOL §8.1): for the room's moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareAlert {
    /// Alert id, unique on the server.
    pub id: i64,
    /// Room name.
    pub room: String,
    /// The message.
    pub seq: i64,
    /// Who wrote it.
    pub author: User,
    /// A phrase matched, or a member referred it.
    pub kind: CareKind,
    /// The referrer's username (moderators only ever see alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The referrer's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was raised.
    pub ts: String,
    /// The moderator who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<String>,
}

/// Where a summit question stands (PROTOCOL §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionStatus {
    /// Waiting for a moderator: only moderators see it.
    Pending,
    /// Taken: everyone sees it and may vote.
    Approved,
    /// Answered on stage.
    Answered,
    /// Set aside: only moderators see it.
    Dismissed,
}

impl QuestionStatus {
    /// The stable name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionStatus::Pending => "pending",
            QuestionStatus::Approved => "approved",
            QuestionStatus::Answered => "answered",
            QuestionStatus::Dismissed => "dismissed",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<QuestionStatus> {
        [QuestionStatus::Pending, QuestionStatus::Approved, QuestionStatus::Answered, QuestionStatus::Dismissed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// Whether members (not only moderators) see questions with this status.
    pub fn is_public(self) -> bool {
        match self {
            QuestionStatus::Approved | QuestionStatus::Answered => true,
            QuestionStatus::Pending | QuestionStatus::Dismissed => false,
        }
    }
}

/// A question asked in a summit (PROTOCOL §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Question id, unique on the server.
    pub id: i64,
    /// Room name.
    pub room: String,
    /// The question.
    pub body: String,
    /// Who asked: absent when they asked anonymously, except for moderators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<User>,
    /// Asked anonymously (moderators see this with the author).
    #[serde(default, skip_serializing_if = "is_false")]
    pub anonymous: bool,
    /// Members who voted for it.
    pub votes: i64,
    /// Whether the requester voted for it (absent in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voted: Option<bool>,
    /// Where it stands.
    pub status: QuestionStatus,
    /// When it was asked.
    pub ts: String,
}

impl Question {
    /// The question as a member sees it: an anonymous asker's name is left out.
    pub fn for_members(mut self) -> Question {
        if self.anonymous {
            self.author = None;
        }
        self
    }
}

/// A support resource (PROTOCOL §8.1): a crisis line, a text service, a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// What it is called.
    pub name: String,
    /// ISO 3166-1 alpha-2, or `INT` for everywhere.
    pub region: String,
    /// A number to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// How to reach it by text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Anything else a person should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The user as they themselves see it: a `User` and their own `region` (never shown to
/// anyone else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The public part.
    #[serde(flatten)]
    pub user: User,
    /// Where they are, for support resources (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The head of a member's export (`GET /api/v1/me/export`): everything but the
/// messages, which [`export_open`] lets follow a page at a time.
#[derive(Debug, Clone, Serialize)]
pub struct ExportHead {
    /// The member, with their own region.
    pub user: Me,
    /// The rooms they are a member of.
    pub rooms: Vec<String>,
    /// The reports they made, with the messages as reported.
    pub reports: Vec<Report>,
    /// What moderators did about them, as `my_record` says it.
    pub sanctions: Vec<OwnSanction>,
    /// Their content-warning preferences.
    pub preferences: Preferences,
    /// The people they block.
    pub blocks: Vec<User>,
    /// The summit questions they asked (anonymous ones too: they are theirs).
    pub questions: Vec<Question>,
}

/// What moderators did to a member, as the member sees it (`my_record`, PROTOCOL §9.2):
/// never the acting moderator's name, only the standing they acted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnSanction {
    /// The moderation-log entry's id.
    pub id: i64,
    /// `warn`, `mute`, `kick`, `ban` or `delete` (a moderator deleted one's message).
    pub action: LogAction,
    /// Where (absent: the whole server).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room: Option<String>,
    /// The message concerned, for a deletion.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<i64>,
    /// The reason given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// When it ends, if timed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub until: Option<String>,
    /// When it was done.
    pub ts: String,
    /// Whether it is in force now (a mute or ban not lifted or run out).
    pub active: bool,
    /// `moderator`, `organiser` or `admin`: with what standing it was done.
    pub by_role: Role,
    /// The newest appeal against it, open or answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub appeal: Option<Appeal>,
}

/// A member's appeal against a sanction (PROTOCOL §9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appeal {
    /// The appeal's id.
    pub id: i64,
    /// The sanction's id (its moderation-log entry), as `my_record` gives it.
    pub sanction_id: i64,
    /// Where the sanction applies (absent: the whole server).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room: Option<String>,
    /// The appellant's username.
    pub user: String,
    /// What they say.
    pub text: String,
    /// When they appealed.
    pub ts: String,
    /// `upheld` or `lifted`, once answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<AppealOutcome>,
    /// The answering moderator's note.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// When it was answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolved_at: Option<String>,
}

/// How an appeal was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppealOutcome {
    /// The sanction stands.
    Upheld,
    /// The sanction is lifted (a mute or ban in force ends now).
    Lifted,
}

impl AppealOutcome {
    /// The wire name, also kept in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AppealOutcome::Upheld => "upheld",
            AppealOutcome::Lifted => "lifted",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<AppealOutcome> {
        [AppealOutcome::Upheld, AppealOutcome::Lifted].into_iter().find(|outcome| outcome.as_str() == text)
    }
}

/// The export's opening: the head's fields, then `"messages":[`. Messages follow, each
/// from [`export_message`], then [`EXPORT_CLOSE`].
pub fn export_open(head: &ExportHead) -> String {
    let mut text = serde_json::to_string(head).expect("an export head always serialises");
    text.pop(); // the closing brace: the object goes on with the messages
    text.push_str(",\"messages\":[");
    text
}

/// One message of an export, with the comma before it unless it is the first.
pub fn export_message(message: &Message, first: bool) -> String {
    let json = serde_json::to_string(message).expect("a message always serialises");
    if first {
        json
    } else {
        format!(",{json}")
    }
}

/// The export's end.
pub const EXPORT_CLOSE: &str = "]}";

/// A ban or mute in force in a room, as its moderators see it (`sanctions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSanction {
    /// `ban` or `mute`.
    pub kind: SanctionKind,
    /// Who.
    pub user: User,
    /// When it ends; absent: until a moderator lifts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The reason the member was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Username of the moderator who imposed it.
    pub by: String,
}

/// What an [`ActiveSanction`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    /// Banned from the room.
    Ban,
    /// Muted in the room.
    Mute,
}

/// One entry of a moderation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModAction {
    /// What was done.
    pub action: LogAction,
    /// Username of the moderator.
    pub actor: String,
    /// Username acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Message acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The moderator's reason or note (for `slow_mode`, the new interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a timed action ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// When it happened.
    pub ts: String,
}

/// A moderator action as the moderation log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogAction {
    /// A mute.
    Mute,
    /// A mute lifted.
    Unmute,
    /// A member removed who may come back.
    Kick,
    /// A ban from a room or the server.
    Ban,
    /// A ban lifted.
    Unban,
    /// A message deleted (by a moderator or its author).
    Delete,
    /// Slow mode changed (the log's `reason` holds the interval).
    SlowMode,
    /// A room locked.
    Lock,
    /// A room unlocked.
    Unlock,
    /// A room role given (the log's `reason` holds it).
    SetRoomRole,
    /// A global role given (the log's `reason` holds it).
    SetRole,
    /// A report resolved (the log's `reason` holds the note).
    ResolveReport,
    /// A private word to a member (the log's `reason` holds what they were told).
    Warn,
    /// A care alert acknowledged (the log's `seq` is the message, `reason` the note).
    CareAck,
    /// Whether the room needs a host on duty changed (the log's `reason` says which).
    HostRule,
    /// A message's content warnings changed (the log's `seq` is the message, `reason`
    /// the tags and note).
    SetCw,
    /// A member appealed a sanction (the actor is the member; `reason` names the
    /// sanction, never the appeal's words).
    Appeal,
    /// An appeal answered (`target` is the appellant, `reason` the outcome and note).
    ResolveAppeal,
    /// A summit moved to another phase by hand (`reason` names it).
    SetPhase,
    /// A summit given a schedule (`reason` lists its phases and times).
    SetSchedule,
    /// A summit question approved, answered or dismissed (`seq` is the question's id,
    /// `reason` the new status).
    ModerateQuestion,
}

impl LogAction {
    /// Every action, for parsing.
    const ALL: [LogAction; 21] = [
        LogAction::Mute,
        LogAction::Unmute,
        LogAction::Kick,
        LogAction::Ban,
        LogAction::Unban,
        LogAction::Delete,
        LogAction::SlowMode,
        LogAction::Lock,
        LogAction::Unlock,
        LogAction::SetRoomRole,
        LogAction::SetRole,
        LogAction::ResolveReport,
        LogAction::Warn,
        LogAction::CareAck,
        LogAction::HostRule,
        LogAction::SetCw,
        LogAction::Appeal,
        LogAction::ResolveAppeal,
        LogAction::SetPhase,
        LogAction::SetSchedule,
        LogAction::ModerateQuestion,
    ];

    /// The wire name, also kept in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LogAction::Mute => "mute",
            LogAction::Unmute => "unmute",
            LogAction::Kick => "kick",
            LogAction::Ban => "ban",
            LogAction::Unban => "unban",
            LogAction::Delete => "delete",
            LogAction::SlowMode => "slow_mode",
            LogAction::Lock => "lock",
            LogAction::Unlock => "unlock",
            LogAction::SetRoomRole => "set_room_role",
            LogAction::SetRole => "set_role",
            LogAction::ResolveReport => "resolve_report",
            LogAction::Warn => "warn",
            LogAction::CareAck => "care_ack",
            LogAction::HostRule => "host_rule",
            LogAction::SetCw => "set_cw",
            LogAction::Appeal => "appeal",
            LogAction::ResolveAppeal => "resolve_appeal",
            LogAction::SetPhase => "set_phase",
            LogAction::SetSchedule => "set_schedule",
            LogAction::ModerateQuestion => "moderate_question",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(text: &str) -> Option<LogAction> {
        LogAction::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The client's request id: a short string or an integer, echoed in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Int(i64),
    /// A string id of at most 64 characters.
    Text(String),
}

/// Stable error codes (PROTOCOL.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be understood.
    BadRequest,
    /// A field's value is not acceptable.
    Invalid,
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// No such room, user or message.
    NotFound,
    /// The name is taken.
    Conflict,
    /// The user is muted in the room.
    Muted,
    /// The user is banned.
    Banned,
    /// A summit room outside its window.
    NotOpen,
    /// A summit room at capacity.
    Full,
    /// Too many requests; wait and retry.
    RateLimited,
    /// The payload is over a size limit.
    TooLarge,
    /// The server failed; the cause is in its log.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with this code on the HTTP API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::Invalid => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden | ErrorCode::Banned => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::Muted | ErrorCode::NotOpen | ErrorCode::Full => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
        }
    }
}

/// An error as a client sees it: a stable code and a human sentence. Internal causes
/// never travel in it; they go to the log where the error is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
    /// For `rate_limited`: whole seconds until trying again can succeed (the HTTP
    /// `Retry-After` header, `retry_after_s` in an error frame).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// Builds an error from a code and a sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), retry_after_s: None }
    }

    /// `rate_limited`: "Too many {what}; please try again in N seconds.", with the wait.
    pub fn rate_limited(what: &str, wait: std::time::Duration) -> ApiError {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let message =
            format!("Too many {what}; please try again in {seconds} second{}.", if seconds == 1 { "" } else { "s" });
        ApiError { code: ErrorCode::RateLimited, message, retry_after_s: Some(seconds) }
    }

    /// `internal`, with a generic sentence; log the cause before calling this.
    pub fn internal() -> ApiError {
        ApiError::new(ErrorCode::Internal, "The server could not complete this request; please try again.")
    }

    /// The HTTP body `{"error": {"code", "message"}}`.
    pub fn to_http_body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: ErrorCode,
            message: &'a str,
        }
        serde_json::to_string(&Body { error: Inner { code: self.code, message: &self.message } })
            .expect("an error body always serialises")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

// ----------------------------------------------------------------------------------
// HTTP bodies
// ----------------------------------------------------------------------------------

/// `DELETE /api/v1/me`: the password, confirmed.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    /// The account's password.
    pub password: String,
}

/// `POST /api/v1/register`.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    /// Wanted username.
    pub username: String,
    /// Password, 8–1024 bytes.
    pub password: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// An invite code, needed when the network registers by invitation.
    #[serde(default)]
    pub invite: Option<String>,
}

/// `POST /api/v1/login`.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    /// Username (any case).
    pub username: String,
    /// Password.
    pub password: String,
}

/// `{"user": User}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserBody {
    /// The user.
    pub user: User,
}

/// `GET /api/v1/me`: the user, and what the user may do that a client shows or hides.
#[derive(Debug, Serialize, Deserialize)]
pub struct MeBody {
    /// The user, with their own region.
    pub user: Me,
    /// The kinds of room the user may create (`create_room`), on this server.
    pub may_create: Vec<RoomKind>,
}

/// `{"token", "user"}` after a successful login.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginReply {
    /// The opaque bearer token.
    pub token: String,
    /// The user.
    pub user: User,
}

// ----------------------------------------------------------------------------------
// WebSocket requests
// ----------------------------------------------------------------------------------

/// A parsed client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Authenticate the socket.
    Auth {
        /// Bearer token from login.
        token: String,
    },
    /// The support resources for a region (then the international ones); every
    /// resource without one.
    Resources {
        /// ISO 3166-1 alpha-2.
        region: Option<String>,
    },
    /// Change one's own profile.
    SetProfile {
        /// Where one is, for support resources; `None` clears it.
        region: Option<String>,
    },
    /// One's content-warning preferences.
    Preferences,
    /// Change some of one's content-warning preferences.
    SetPreferences {
        /// Tag → how messages with it reach one; tags not named keep theirs.
        cw: BTreeMap<String, Shape>,
    },
    /// Keep someone's messages and typing away from one (PROTOCOL §9.1).
    Block {
        /// Username.
        user: String,
    },
    /// Stop blocking someone.
    Unblock {
        /// Username.
        user: String,
    },
    /// The people one blocks.
    Blocks,
    /// What moderators did to one.
    MyRecord,
    /// Make an invite code (global moderators and up).
    CreateInvite {
        /// Registrations it allows (default 1).
        uses: Option<u32>,
        /// Seconds until it stops working (default: never).
        expires_in_s: Option<f64>,
    },
    /// A message whole, whatever one's preferences.
    Reveal {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
    },
    /// List rooms, a page at a time.
    Rooms(PageQuery),
    /// Open a room.
    CreateRoom(CreateRoom),
    /// Become a member of a room.
    Join {
        /// Room name.
        room: String,
    },
    /// Stop being a member.
    Leave {
        /// Room name.
        room: String,
    },
    /// Post a message.
    Send(SendMessage),
    /// Page through stored messages.
    History(HistoryQuery),
    /// Tell the room one is typing.
    Typing {
        /// Room name.
        room: String,
    },
    /// The members of a room, online first, then by name.
    Members(MembersQuery),
    /// Messages matching words, from the rooms one is a member of.
    Search(SearchQuery),
    /// Change the text of one's own message.
    Edit {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// The new text.
        body: String,
    },
    /// Add (`add`) or take back one's reaction to a message.
    React {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// One of the server's allowed emoji.
        emoji: String,
        /// `react` (true) or `unreact` (false).
        add: bool,
    },
    /// Move one's read marker in a room.
    MarkRead {
        /// Room name.
        room: String,
        /// The last message read.
        seq: i64,
    },
    /// Ask a question in a summit on stage or in Q&A.
    Ask {
        /// Room name.
        room: String,
        /// The question.
        body: String,
        /// Hide the asker's name from members (never from moderators).
        anonymous: bool,
    },
    /// A summit's questions, a page at a time.
    Questions {
        /// Room name.
        room: String,
        /// Only this status (moderators may ask for any; members see approved and answered).
        status: Option<QuestionStatus>,
        /// Page size.
        limit: Option<u32>,
        /// The page after this question.
        after_id: Option<i64>,
    },
    /// Vote for a question, or take the vote back.
    Vote {
        /// Room name.
        room: String,
        /// The question.
        question_id: i64,
        /// `upvote` (true) or `unvote` (false).
        up: bool,
    },
    /// A moderation request.
    Moderate(Moderation),
    /// `test_panic`: makes its handler panic. Only in builds for the tests.
    #[cfg(feature = "test-hooks")]
    TestPanic,
    /// `test_lose_messages {count}`: the hub loses the next `count` message events, as
    /// a lossy bus would. Only in builds for the tests.
    #[cfg(feature = "test-hooks")]
    TestLoseMessages {
        /// How many.
        count: u32,
    },
}

/// The moderation requests (PROTOCOL.md section 2.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Moderation {
    /// Stop a member from sending in a room.
    Mute {
        /// Room name.
        room: String,
        /// Username.
        user: String,
        /// Seconds; absent = until lifted.
        duration_s: Option<f64>,
        /// Shown to the member.
        reason: Option<String>,
    },
    /// Lift a mute.
    Unmute {
        /// Room name.
        room: String,
        /// Username.
        user: String,
    },
    /// Remove a member; they may rejoin.
    Kick {
        /// Room name.
        room: String,
        /// Username.
        user: String,
        /// Shown to the member.
        reason: Option<String>,
    },
    /// Remove a member and keep them out (a room), or shut them out (the server).
    Ban {
        /// Room name, or `None` for the server scope.
        room: Option<String>,
        /// Username.
        user: String,
        /// Seconds; absent = until lifted.
        duration_s: Option<f64>,
        /// Shown to the member.
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban {
        /// Room name, or `None` for the server scope.
        room: Option<String>,
        /// Username.
        user: String,
    },
    /// Delete a message (its seq stays, its body goes).
    DeleteMessage {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// For the log.
        reason: Option<String>,
    },
    /// Set slow mode.
    SlowMode {
        /// Room name.
        room: String,
        /// Seconds between a member's messages, 0 = off.
        seconds: i64,
    },
    /// Lock or unlock a room.
    Lock {
        /// Room name.
        room: String,
        /// Read-only for members when true.
        locked: bool,
    },
    /// Give or take a room's moderator role.
    SetRoomRole {
        /// Room name.
        room: String,
        /// Username.
        user: String,
        /// The new room role.
        role: RoomRole,
    },
    /// Approve, answer or dismiss a summit question.
    ModerateQuestion {
        /// Room name.
        room: String,
        /// The question.
        question_id: i64,
        /// Its new status (not `pending`).
        status: QuestionStatus,
    },
    /// Move a summit to a phase now, dropping what is left of its schedule.
    SetPhase {
        /// Room name.
        room: String,
        /// The phase.
        phase: Phase,
    },
    /// Set a summit's schedule (entries in the past take effect at once).
    SetSchedule {
        /// Room name.
        room: String,
        /// The entries, ascending by time.
        schedule: Vec<ScheduleEntry>,
    },
    /// Change a user's global role.
    SetRole {
        /// Username.
        user: String,
        /// The new global role.
        role: Role,
    },
    /// Report a message to the room's moderators.
    Report {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// Why.
        reason: String,
    },
    /// List a room's open reports.
    Reports {
        /// Room name.
        room: String,
        /// Which page.
        page: PageQuery,
    },
    /// Close a report.
    ResolveReport {
        /// Room name.
        room: String,
        /// Report id.
        id: i64,
        /// What was done.
        note: Option<String>,
    },
    /// Go on or off duty as a room's host.
    Duty {
        /// Room name.
        room: String,
        /// On duty, or off.
        on: bool,
    },
    /// Set or change a message's content warnings.
    SetCw {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// The tags it carries from now on (none: no warning).
        cw: Vec<String>,
        /// A few words about the warning.
        cw_note: Option<String>,
    },
    /// Require a host on duty for members to send, or not.
    HostRule {
        /// Room name.
        room: String,
        /// Required, or not.
        required: bool,
    },
    /// Ask the room's moderators to look after the author of a message.
    Refer {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// For the moderators.
        note: Option<String>,
    },
    /// List a room's open care alerts.
    CareAlerts {
        /// Room name.
        room: String,
        /// Which page.
        page: PageQuery,
    },
    /// Acknowledge a care alert: someone is looking after it.
    AckCareAlert {
        /// Room name.
        room: String,
        /// Alert id.
        id: i64,
        /// For the log.
        note: Option<String>,
    },
    /// A private room's waiting join requests.
    JoinRequests {
        /// Room name.
        room: String,
    },
    /// Answer a join request.
    ApproveJoin {
        /// Room name.
        room: String,
        /// Username.
        user: String,
        /// Let them in, or not.
        approve: bool,
    },
    /// Make someone a member of a room.
    Invite {
        /// Room name.
        room: String,
        /// Username.
        user: String,
    },
    /// Appeal a sanction of one's own record.
    Appeal {
        /// The sanction's id, from `my_record`.
        sanction_id: i64,
        /// What the member wants the moderators to know.
        text: String,
    },
    /// List open appeals of a room (`None`: server sanctions).
    Appeals {
        /// Room name, or `None` for the server scope.
        room: Option<String>,
        /// Which page.
        page: PageQuery,
    },
    /// Answer an appeal.
    ResolveAppeal {
        /// The appeal.
        appeal_id: i64,
        /// Upheld or lifted.
        outcome: AppealOutcome,
        /// What the member is told.
        note: Option<String>,
    },
    /// A private word to a member: the first step before a mute.
    Warn {
        /// Room name.
        room: String,
        /// Username.
        user: String,
        /// What the member is told.
        reason: String,
    },
    /// List the bans and mutes in force in a room.
    Sanctions {
        /// Room name.
        room: String,
    },
    /// Read a room's moderation log, or the server's.
    ModLog {
        /// Room name, or `None` for server-scope actions (server bans, global roles).
        room: Option<String>,
        /// How many entries, 1–100 (default 50).
        limit: Option<i64>,
    },
}

/// Fields of `create_room`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateRoom {
    /// Unique room name.
    pub name: String,
    /// What it is about.
    #[serde(default)]
    pub topic: Option<String>,
    /// Topic (default) or summit.
    #[serde(default)]
    pub kind: RoomKind,
    /// Summit window start, ISO-8601.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// Summit window end, ISO-8601.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Summit member limit.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Members may send only while a host is on duty.
    #[serde(default)]
    pub requires_host: bool,
    /// Public (default) or private.
    #[serde(default)]
    pub visibility: Visibility,
    /// All (default) or since_join.
    #[serde(default)]
    pub history_visibility: HistoryVisibility,
    /// A summit: people who come when it is full join as viewers.
    #[serde(default)]
    pub viewers: bool,
}

/// Fields of `send`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SendMessage {
    /// Room name.
    pub room: String,
    /// Message text.
    pub body: String,
    /// Idempotency key.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// The message (seq, same room) this one answers.
    #[serde(default)]
    pub reply_to: Option<i64>,
    /// Content-warning tags.
    #[serde(default)]
    pub cw: Vec<String>,
    /// A few words about the warning.
    #[serde(default)]
    pub cw_note: Option<String>,
}

/// Paging fields of `rooms` and `reports`: at most `limit` (1–200, default 50) items
/// after the cursor (`after`: a room name; `after_id`: a report id).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PageQuery {
    /// How many, 1–200 (default 50).
    #[serde(default)]
    pub limit: Option<i64>,
    /// For `rooms`: only rooms whose name sorts after this one.
    #[serde(default)]
    pub after: Option<String>,
    /// For `reports`: only reports with a larger id.
    #[serde(default)]
    pub after_id: Option<i64>,
}

#[derive(Deserialize)]
struct ReactFields {
    room: String,
    seq: i64,
    emoji: String,
}

#[derive(Deserialize)]
struct UserFields {
    user: String,
}

#[derive(Deserialize)]
struct PreferencesFields {
    cw: BTreeMap<String, Shape>,
}

#[derive(Deserialize)]
struct EditFields {
    room: String,
    seq: i64,
    body: String,
}

/// Fields of `members`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MembersQuery {
    /// Room name.
    pub room: String,
    /// How many, 1–200 (default 50).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Only members listed after this username.
    #[serde(default)]
    pub after: Option<String>,
}

/// Fields of `search`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchQuery {
    /// Words to find.
    pub query: String,
    /// Only this room.
    #[serde(default)]
    pub room: Option<String>,
    /// How many, 1–50 (default 20).
    #[serde(default)]
    pub limit: Option<i64>,
    /// The `next` cursor of the page before.
    #[serde(default)]
    pub before: Option<String>,
}

/// Fields of `history`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryQuery {
    /// Room name.
    pub room: String,
    /// Only messages with a smaller seq.
    #[serde(default)]
    pub before: Option<i64>,
    /// Only messages with a larger seq.
    #[serde(default)]
    pub after: Option<i64>,
    /// How many, 1–100 (default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AuthFields {
    token: String,
}

#[derive(Deserialize)]
struct RoomFields {
    room: String,
}

#[derive(Deserialize)]
struct RegionFields {
    #[serde(default)]
    region: Option<String>,
}

#[derive(Deserialize)]
struct TargetFields {
    room: String,
    user: String,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

/// `scope` of `ban` / `unban`.
#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum BanScopeField {
    Room,
    Server,
}

#[derive(Deserialize)]
struct BanFields {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    scope: Option<BanScopeField>,
    user: String,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

impl BanFields {
    /// The room, `None` for the server scope; a room ban without a room is an error.
    fn room(&self) -> Result<Option<String>, &'static str> {
        match (&self.scope, &self.room) {
            (Some(BanScopeField::Server), _) => Ok(None),
            (_, Some(room)) => Ok(Some(room.clone())),
            (_, None) => Err("missing field “room” (or “scope”: “server”)"),
        }
    }
}

#[derive(Deserialize)]
struct SeqFields {
    room: String,
    seq: i64,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct SlowModeFields {
    room: String,
    seconds: i64,
}

#[derive(Deserialize)]
struct DutyFields {
    room: String,
    on: bool,
}

#[derive(Deserialize)]
struct SetCwFields {
    room: String,
    seq: i64,
    cw: Vec<String>,
    #[serde(default)]
    cw_note: Option<String>,
}

#[derive(Deserialize)]
struct HostRuleFields {
    room: String,
    required: bool,
}

#[derive(Deserialize)]
struct LockFields {
    room: String,
    locked: bool,
}

#[derive(Deserialize)]
struct RoomRoleFields {
    room: String,
    user: String,
    role: RoomRole,
}

#[derive(Deserialize)]
struct AskFields {
    room: String,
    body: String,
    #[serde(default)]
    anonymous: bool,
}

#[derive(Deserialize)]
struct QuestionsFields {
    room: String,
    #[serde(default)]
    status: Option<QuestionStatus>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    after_id: Option<i64>,
}

#[derive(Deserialize)]
struct VoteFields {
    room: String,
    question_id: i64,
}

#[derive(Deserialize)]
struct ModerateQuestionFields {
    room: String,
    question_id: i64,
    status: QuestionStatus,
}

#[derive(Deserialize)]
struct PhaseFields {
    room: String,
    phase: Phase,
}

#[derive(Deserialize)]
struct ScheduleFields {
    room: String,
    schedule: Vec<ScheduleEntry>,
}

#[derive(Deserialize)]
struct RoleFields {
    user: String,
    role: Role,
}

#[derive(Deserialize)]
struct ReportFields {
    room: String,
    seq: i64,
    reason: String,
}

/// `resolve_report`'s report id is named `id` in PROTOCOL.md, the same name as the
/// frame's request id, so there the request id *is* the report id. `report_id` (our
/// addition) lets a client keep its own request ids; it wins when both are given.
#[derive(Deserialize)]
struct ReferFields {
    room: String,
    seq: i64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct AckFields {
    room: String,
    alert_id: i64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct ResolveFields {
    room: String,
    #[serde(default)]
    report_id: Option<i64>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct InviteFields {
    #[serde(default)]
    uses: Option<u32>,
    #[serde(default)]
    expires_in_s: Option<f64>,
}

#[derive(Deserialize)]
struct ApproveFields {
    room: String,
    user: String,
    approve: bool,
}

#[derive(Deserialize)]
struct AppealFields {
    sanction_id: i64,
    text: String,
}

#[derive(Deserialize)]
struct ResolveAppealFields {
    appeal_id: i64,
    outcome: AppealOutcome,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct ModLogFields {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    scope: Option<BanScopeField>,
    #[serde(default)]
    limit: Option<i64>,
}

/// Why a frame could not be parsed; `id` is the request's id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// The echoed id, if the frame had a usable one.
    pub id: Option<RequestId>,
    /// What was wrong, for a person.
    pub message: String,
}

/// Every request `type` the server understands: the label of the per-type metrics.
pub const REQUEST_TYPES: [&str; 61] = [
    "auth",
    "rooms",
    "resources",
    "set_profile",
    "preferences",
    "block",
    "unblock",
    "blocks",
    "my_record",
    "create_invite",
    "set_preferences",
    "reveal",
    "test_panic",
    "test_lose_messages",
    "create_room",
    "join",
    "leave",
    "send",
    "history",
    "typing",
    "edit",
    "react",
    "unreact",
    "search",
    "members",
    "mark_read",
    "ask",
    "questions",
    "upvote",
    "unvote",
    "moderate_question",
    "mute",
    "unmute",
    "kick",
    "ban",
    "unban",
    "delete_message",
    "slow_mode",
    "lock",
    "duty",
    "set_cw",
    "host_rule",
    "set_room_role",
    "set_role",
    "set_phase",
    "set_schedule",
    "report",
    "reports",
    "resolve_report",
    "sanctions",
    "refer",
    "care_alerts",
    "ack_care_alert",
    "warn",
    "join_requests",
    "approve_join",
    "invite",
    "appeal",
    "appeals",
    "resolve_appeal",
    "mod_log",
];

/// Parses one text frame into its id and request.
pub fn parse_request(text: &str) -> Result<(Option<RequestId>, Request), ParseError> {
    parse_request_typed(text).map(|(id, _, request)| (id, request))
}

/// [`parse_request`], also naming the request's type from [`REQUEST_TYPES`].
pub fn parse_request_typed(text: &str) -> Result<(Option<RequestId>, &'static str, Request), ParseError> {
    let head: Head<'_> = serde_json::from_str(text)
        .map_err(|err| ParseError { id: None, message: format!("The frame is not a JSON object: {err}.") })?;
    let id = match head.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => n.as_i64().map(RequestId::Int),
        Some(serde_json::Value::String(s)) if s.chars().count() <= 64 => Some(RequestId::Text(s)),
        Some(_) => {
            return Err(ParseError {
                id: None,
                message: "“id” must be an integer or a string of at most 64 characters.".into(),
            })
        }
    };
    let fail = |kind: &str, err: serde_json::Error| ParseError {
        id: id.clone(),
        message: plain_quotes(&format!("Bad “{kind}” request: {err}.")),
    };
    let Some(kind) = head.kind else {
        return Err(ParseError { id, message: "The frame has no “type”.".into() });
    };
    let request = match kind.as_ref() {
        "auth" => {
            let f: AuthFields = serde_json::from_str(text).map_err(|e| fail("auth", e))?;
            Request::Auth { token: f.token }
        }
        "rooms" => Request::Rooms(serde_json::from_str(text).map_err(|e| fail("rooms", e))?),
        "resources" => {
            let f: RegionFields = serde_json::from_str(text).map_err(|e| fail("resources", e))?;
            Request::Resources { region: f.region }
        }
        "set_profile" => {
            let f: RegionFields = serde_json::from_str(text).map_err(|e| fail("set_profile", e))?;
            Request::SetProfile { region: f.region }
        }
        "preferences" => Request::Preferences,
        "block" | "unblock" => {
            let f: UserFields = serde_json::from_str(text).map_err(|e| fail(&kind, e))?;
            if kind == "block" {
                Request::Block { user: f.user }
            } else {
                Request::Unblock { user: f.user }
            }
        }
        "blocks" => Request::Blocks,
        "my_record" => Request::MyRecord,
        "create_invite" => {
            let f: InviteFields = serde_json::from_str(text).map_err(|e| fail("create_invite", e))?;
            Request::CreateInvite { uses: f.uses, expires_in_s: f.expires_in_s }
        }
        "set_preferences" => {
            let f: PreferencesFields = serde_json::from_str(text).map_err(|e| fail("set_preferences", e))?;
            Request::SetPreferences { cw: f.cw }
        }
        "reveal" => {
            let f: SeqFields = serde_json::from_str(text).map_err(|e| fail("reveal", e))?;
            Request::Reveal { room: f.room, seq: f.seq }
        }
        #[cfg(feature = "test-hooks")]
        "test_panic" => Request::TestPanic,
        #[cfg(feature = "test-hooks")]
        "test_lose_messages" => {
            let f: serde_json::Value = serde_json::from_str(text).map_err(|e| fail("test_lose_messages", e))?;
            Request::TestLoseMessages { count: f["count"].as_u64().unwrap_or(1) as u32 }
        }
        "create_room" => Request::CreateRoom(serde_json::from_str(text).map_err(|e| fail("create_room", e))?),
        "join" => {
            let f: RoomFields = serde_json::from_str(text).map_err(|e| fail("join", e))?;
            Request::Join { room: f.room }
        }
        "leave" => {
            let f: RoomFields = serde_json::from_str(text).map_err(|e| fail("leave", e))?;
            Request::Leave { room: f.room }
        }
        "send" => Request::Send(serde_json::from_str(text).map_err(|e| fail("send", e))?),
        "history" => Request::History(serde_json::from_str(text).map_err(|e| fail("history", e))?),
        "typing" => {
            let f: RoomFields = serde_json::from_str(text).map_err(|e| fail("typing", e))?;
            Request::Typing { room: f.room }
        }
        "edit" => {
            let f: EditFields = serde_json::from_str(text).map_err(|e| fail("edit", e))?;
            Request::Edit { room: f.room, seq: f.seq, body: f.body }
        }
        "react" | "unreact" => {
            let f: ReactFields = serde_json::from_str(text).map_err(|e| fail(&kind, e))?;
            Request::React { room: f.room, seq: f.seq, emoji: f.emoji, add: kind == "react" }
        }
        "search" => Request::Search(serde_json::from_str(text).map_err(|e| fail("search", e))?),
        "members" => Request::Members(serde_json::from_str(text).map_err(|e| fail("members", e))?),
        "mark_read" => {
            let f: SeqFields = serde_json::from_str(text).map_err(|e| fail("mark_read", e))?;
            Request::MarkRead { room: f.room, seq: f.seq }
        }
        "ask" => {
            let f: AskFields = serde_json::from_str(text).map_err(|e| fail("ask", e))?;
            Request::Ask { room: f.room, body: f.body, anonymous: f.anonymous }
        }
        "questions" => {
            let f: QuestionsFields = serde_json::from_str(text).map_err(|e| fail("questions", e))?;
            Request::Questions { room: f.room, status: f.status, limit: f.limit, after_id: f.after_id }
        }
        "upvote" | "unvote" => {
            let f: VoteFields = serde_json::from_str(text).map_err(|e| fail(&kind, e))?;
            Request::Vote { room: f.room, question_id: f.question_id, up: kind == "upvote" }
        }
        other => match parse_moderation(other, text) {
            Some(Ok(moderation)) => Request::Moderate(moderation),
            Some(Err(message)) => {
                return Err(ParseError { id, message: plain_quotes(&format!("Bad “{other}” request: {message}.")) })
            }
            None => {
                return Err(ParseError { id, message: format!("Unknown request type “{}”.", truncate(other, 40)) })
            }
        },
    };
    let kind = REQUEST_TYPES.iter().copied().find(|known| *known == kind).unwrap_or("other");
    Ok((id, kind, request))
}

/// The moderation requests; `None` if `kind` is not one of them.
fn parse_moderation(kind: &str, text: &str) -> Option<Result<Moderation, String>> {
    fn fields<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
    let parsed = match kind {
        "mute" => fields::<TargetFields>(text).map(|f| Moderation::Mute {
            room: f.room,
            user: f.user,
            duration_s: f.duration_s,
            reason: f.reason,
        }),
        "unmute" => fields::<TargetFields>(text).map(|f| Moderation::Unmute { room: f.room, user: f.user }),
        "kick" => {
            fields::<TargetFields>(text).map(|f| Moderation::Kick { room: f.room, user: f.user, reason: f.reason })
        }
        "ban" => fields::<BanFields>(text).and_then(|f| {
            let room = f.room().map_err(str::to_string)?;
            Ok(Moderation::Ban { room, user: f.user, duration_s: f.duration_s, reason: f.reason })
        }),
        "unban" => fields::<BanFields>(text).and_then(|f| {
            let room = f.room().map_err(str::to_string)?;
            Ok(Moderation::Unban { room, user: f.user })
        }),
        "delete_message" => {
            fields::<SeqFields>(text).map(|f| Moderation::DeleteMessage { room: f.room, seq: f.seq, reason: f.reason })
        }
        "slow_mode" => {
            fields::<SlowModeFields>(text).map(|f| Moderation::SlowMode { room: f.room, seconds: f.seconds })
        }
        "lock" => fields::<LockFields>(text).map(|f| Moderation::Lock { room: f.room, locked: f.locked }),
        "duty" => fields::<DutyFields>(text).map(|f| Moderation::Duty { room: f.room, on: f.on }),
        "set_cw" => fields::<SetCwFields>(text).map(|f| Moderation::SetCw {
            room: f.room,
            seq: f.seq,
            cw: f.cw,
            cw_note: f.cw_note,
        }),
        "host_rule" => {
            fields::<HostRuleFields>(text).map(|f| Moderation::HostRule { room: f.room, required: f.required })
        }
        "set_room_role" => {
            fields::<RoomRoleFields>(text).map(|f| Moderation::SetRoomRole { room: f.room, user: f.user, role: f.role })
        }
        "set_role" => fields::<RoleFields>(text).map(|f| Moderation::SetRole { user: f.user, role: f.role }),
        "set_phase" => fields::<PhaseFields>(text).map(|f| Moderation::SetPhase { room: f.room, phase: f.phase }),
        "moderate_question" => fields::<ModerateQuestionFields>(text).map(|f| Moderation::ModerateQuestion {
            room: f.room,
            question_id: f.question_id,
            status: f.status,
        }),
        "set_schedule" => {
            fields::<ScheduleFields>(text).map(|f| Moderation::SetSchedule { room: f.room, schedule: f.schedule })
        }
        "report" => {
            fields::<ReportFields>(text).map(|f| Moderation::Report { room: f.room, seq: f.seq, reason: f.reason })
        }
        "reports" => fields::<RoomFields>(text).and_then(|f| {
            let page = fields::<PageQuery>(text)?;
            Ok(Moderation::Reports { room: f.room, page })
        }),
        "resolve_report" => fields::<ResolveFields>(text).and_then(|f| {
            let id = f.report_id.or_else(|| f.id.as_ref().and_then(serde_json::Value::as_i64));
            let id = id.ok_or("missing field “report_id” (or an integer “id”)")?;
            Ok(Moderation::ResolveReport { room: f.room, id, note: f.note })
        }),
        "sanctions" => fields::<RoomFields>(text).map(|f| Moderation::Sanctions { room: f.room }),
        "refer" => fields::<ReferFields>(text).map(|f| Moderation::Refer { room: f.room, seq: f.seq, note: f.note }),
        "care_alerts" => fields::<RoomFields>(text).and_then(|f| {
            let page = fields::<PageQuery>(text)?;
            Ok(Moderation::CareAlerts { room: f.room, page })
        }),
        "ack_care_alert" => {
            fields::<AckFields>(text).map(|f| Moderation::AckCareAlert { room: f.room, id: f.alert_id, note: f.note })
        }
        "warn" => fields::<TargetFields>(text).and_then(|f| match f.reason {
            Some(reason) => Ok(Moderation::Warn { room: f.room, user: f.user, reason }),
            None => Err("missing field “reason” (what the member is told)".to_string()),
        }),
        "join_requests" => fields::<RoomFields>(text).map(|f| Moderation::JoinRequests { room: f.room }),
        "approve_join" => fields::<ApproveFields>(text).map(|f| Moderation::ApproveJoin {
            room: f.room,
            user: f.user,
            approve: f.approve,
        }),
        "invite" => fields::<TargetFields>(text).map(|f| Moderation::Invite { room: f.room, user: f.user }),
        "appeal" => {
            fields::<AppealFields>(text).map(|f| Moderation::Appeal { sanction_id: f.sanction_id, text: f.text })
        }
        "appeals" => fields::<ModLogFields>(text).and_then(|f| {
            let page = fields::<PageQuery>(text)?;
            match (f.scope, f.room) {
                (Some(BanScopeField::Server), _) => Ok(Moderation::Appeals { room: None, page }),
                (_, Some(room)) => Ok(Moderation::Appeals { room: Some(room), page }),
                (_, None) => Err("missing field “room” (or “scope”: “server”)".to_string()),
            }
        }),
        "resolve_appeal" => fields::<ResolveAppealFields>(text).map(|f| Moderation::ResolveAppeal {
            appeal_id: f.appeal_id,
            outcome: f.outcome,
            note: f.note,
        }),
        "mod_log" => fields::<ModLogFields>(text).and_then(|f| match (f.scope, f.room) {
            (Some(BanScopeField::Server), _) => Ok(Moderation::ModLog { room: None, limit: f.limit }),
            (_, Some(room)) => Ok(Moderation::ModLog { room: Some(room), limit: f.limit }),
            (_, None) => Err("missing field “room” (or “scope”: “server”)".to_string()),
        }),
        _ => return None,
    };
    Some(parsed)
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

// ----------------------------------------------------------------------------------
// WebSocket replies and events
// ----------------------------------------------------------------------------------

/// The result fields of an `ok` reply.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `auth`.
    Authenticated {
        /// Who the socket belongs to, with their own region.
        user: Me,
        /// Names of the rooms the user is a member of.
        rooms: Vec<String>,
        /// The kinds of room the user may create, on this server.
        may_create: Vec<RoomKind>,
        /// The emoji members may react with, on this server.
        reactions: Vec<String>,
    },
    /// `rooms`.
    Rooms {
        /// Rooms the user can see, by name.
        rooms: Vec<Room>,
        /// More rooms follow: ask again with `after` = the last name.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `create_room`.
    Room {
        /// The new room.
        room: Room,
    },
    /// `join`.
    Joined {
        /// The room.
        room: Room,
        /// Up to 200 online members.
        online: Vec<User>,
        /// The latest messages, ascending.
        messages: Vec<Message>,
        /// Earlier messages exist than these (page back with `history before=`).
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
        /// Joined a full summit as a viewer: reads everything, may ask and vote, may
        /// not send.
        #[serde(skip_serializing_if = "is_false")]
        viewer: bool,
    },
    /// `send`.
    Sent {
        /// The stored message.
        message: Message,
    },
    /// `members`.
    Members {
        /// Members, online first, then by username.
        members: Vec<Member>,
        /// More follow: ask again with `after` = the last username.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `history`.
    Messages {
        /// Messages, ascending by seq.
        messages: Vec<Message>,
        /// More messages lie in the direction asked (page on with `before`/`after`).
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `search`.
    Found {
        /// Matching messages, newest first.
        messages: Vec<Message>,
        /// Pass as `before` for the next page; absent on the last.
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// `reports`.
    Reports {
        /// Open reports, oldest first.
        reports: Vec<Report>,
        /// More follow: ask again with `after_id` = the last id.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `ask`, `upvote`, `unvote`.
    Question {
        /// The question.
        question: Question,
    },
    /// `questions`.
    Questions {
        /// Approved first by votes then age, then (for moderators) pending, answered
        /// and dismissed.
        questions: Vec<Question>,
        /// More follow: ask again with `after_id` = the last id.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `care_alerts`.
    CareAlerts {
        /// Open alerts, oldest first.
        alerts: Vec<CareAlert>,
        /// More follow: ask again with `after_id` = the last id.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `mod_log`.
    ModLog {
        /// Entries, newest first.
        entries: Vec<ModAction>,
    },
    /// `resources`.
    Resources {
        /// The resources asked for.
        resources: Vec<Resource>,
    },
    /// `set_profile`.
    Profile {
        /// The user as they see themselves now.
        user: Me,
    },
    /// `join` of a private room one is not a member of: a moderator will answer.
    Pending {
        /// Always true.
        pending: bool,
    },
    /// `join_requests`.
    JoinRequests {
        /// Waiting requests, oldest first.
        requests: Vec<JoinRequest>,
    },
    /// `create_invite`.
    Invited {
        /// The new code.
        invite: Invite,
    },
    /// `appeal`.
    Appealed {
        /// The appeal as stored.
        appeal: Appeal,
    },
    /// `appeals`.
    Appeals {
        /// Open appeals, oldest first.
        appeals: Vec<Appeal>,
        /// More follow: ask again with `after_id` = the last id.
        #[serde(skip_serializing_if = "is_false")]
        more: bool,
    },
    /// `my_record`.
    Record {
        /// Newest first.
        sanctions: Vec<OwnSanction>,
    },
    /// `blocks`.
    Blocks {
        /// The people one blocks, by username.
        users: Vec<User>,
    },
    /// `preferences`, `set_preferences`.
    Preferences {
        /// The member's preferences now.
        preferences: Preferences,
    },
    /// `sanctions`.
    Sanctions {
        /// Bans and mutes in force, soonest to end first (those until lifted last).
        sanctions: Vec<ActiveSanction>,
    },
    /// Requests with no result fields.
    Empty {},
}

#[derive(Serialize)]
struct OkFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RequestId>,
    #[serde(flatten)]
    reply: &'a Reply,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RequestId>,
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<u64>,
}

/// Serialises `{"type": "ok", "id", ...reply}`.
pub fn ok_frame(id: Option<&RequestId>, reply: &Reply) -> String {
    serde_json::to_string(&OkFrame { kind: "ok", id, reply }).expect("replies always serialise")
}

/// Serialises `{"type": "error", "id", "code", "message"}`.
pub fn error_frame(id: Option<&RequestId>, error: &ApiError) -> String {
    let frame =
        ErrorFrame { kind: "error", id, code: error.code, message: &error.message, retry_after_s: error.retry_after_s };
    serde_json::to_string(&frame).expect("errors always serialise")
}

/// Why a member left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// Asked to leave.
    Left,
    /// Removed by a moderator; may rejoin.
    Kicked,
    /// Removed by a moderator; may not rejoin.
    Banned,
    /// Still a member, but the last socket closed.
    Disconnected,
}

/// A server-pushed event. Events never carry an `id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new message.
    Message {
        /// Room name.
        room: String,
        /// The message.
        message: Message,
    },
    /// A member joined, or came back online.
    MemberJoined {
        /// Room name.
        room: String,
        /// Who.
        user: User,
    },
    /// A member left, was removed, or went offline.
    MemberLeft {
        /// Room name.
        room: String,
        /// Who.
        user: User,
        /// Why.
        reason: LeftReason,
    },
    /// A message's text changed (its author edited it).
    MessageUpdated {
        /// Room name.
        room: String,
        /// The message as it is now.
        message: Message,
    },
    /// The user was named in a message (besides the `message` event itself).
    Mention {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
    },
    /// A message's reactions changed.
    Reactions {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// The counts now, by emoji (empty when none are left).
        reactions: Reactions,
    },
    /// The user's read marker moved (on another of their sockets).
    Read {
        /// Room name.
        room: String,
        /// The last message read.
        seq: i64,
    },
    /// Someone is typing.
    Typing {
        /// Room name.
        room: String,
        /// Who.
        user: User,
    },
    /// A room's settings changed.
    RoomUpdated {
        /// The room as it is now.
        room: Room,
    },
    /// A new room exists (to every authenticated socket, so room lists need no reload).
    RoomCreated {
        /// The room.
        room: Room,
    },
    /// A message was deleted.
    MessageDeleted {
        /// Room name.
        room: String,
        /// The deleted message.
        seq: i64,
        /// Username of whoever deleted it.
        by: String,
    },
    /// A member was muted.
    Muted {
        /// Room name.
        room: String,
        /// Who.
        user: User,
        /// Username of the moderator.
        by: String,
        /// When it ends; absent = until lifted.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// The moderator's reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A mute was lifted.
    Unmuted {
        /// Room name.
        room: String,
        /// Who.
        user: User,
        /// Username of the moderator.
        by: String,
    },
    /// You were removed from a room; you may rejoin.
    Kicked {
        /// Room name.
        room: String,
        /// Username of the moderator.
        by: String,
        /// The moderator's reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A summit question is new (to moderators), or its status changed.
    Question {
        /// Room name.
        room: String,
        /// The question (an anonymous asker left out).
        question: Question,
    },
    /// A question's vote count now (at most one per question per second per node).
    QuestionVotes {
        /// Room name.
        room: String,
        /// The question.
        question_id: i64,
        /// Votes now.
        votes: i64,
    },
    /// For a room's moderators: someone may need care now (or, with `acked_by`, a
    /// colleague is looking after it).
    CareAlert {
        /// The alert.
        alert: CareAlert,
    },
    /// For a private room's moderators: someone asks to join.
    JoinRequest {
        /// Room name.
        room: String,
        /// Who asks.
        user: User,
    },
    /// To the asker: a moderator said no to their join request.
    JoinRefused {
        /// Room name.
        room: String,
    },
    /// For the moderators who may answer it: a member appealed a sanction.
    Appeal {
        /// The appeal.
        appeal: Appeal,
    },
    /// To the appellant: their appeal was answered.
    AppealResolved {
        /// The appeal, with its outcome.
        appeal: Appeal,
    },
    /// A moderator's private word to you; nothing else changes.
    Warned {
        /// Room name.
        room: String,
        /// Username of the moderator.
        by: String,
        /// What they want you to know.
        reason: String,
    },
    /// Only to the author of a message that said they may be in crisis: support they
    /// can reach now. The message itself went out like any other.
    CareResources {
        /// Room name.
        room: String,
        /// The message.
        seq: i64,
        /// The author's region's resources, then the international ones.
        resources: Vec<Resource>,
    },
    /// You were banned from a room, or (without `room`) from the server.
    Banned {
        /// Room name; absent for a server ban.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Username of the moderator.
        by: String,
        /// The moderator's reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When it ends; absent = until lifted.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<String>,
    },
    /// A message was reported (to the room's moderators).
    Report {
        /// The report.
        report: Report,
    },
    /// Your own account changed (e.g. an admin changed your global role).
    UserUpdated {
        /// You, as you are now.
        user: User,
    },
}

impl Event {
    /// Serialises the event once; the bytes are shared by every recipient.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}

// ----------------------------------------------------------------------------------
// Time
// ----------------------------------------------------------------------------------

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_millis() as i64
}

/// A time for people to read in an error message, e.g. "27 Nov 2026, 09:33 UTC" (the
/// client shows times in the member's own zone; this is the fallback it can show as is).
pub fn human_ts(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = at.month().to_string();
    format!("{} {} {}, {:02}:{:02} UTC", at.day(), &month[..3], at.year(), at.hour(), at.minute())
}

/// Backticks (serde's way of quoting a field) as typographic quotes: messages are for
/// people, not for a Markdown renderer.
fn plain_quotes(text: &str) -> String {
    let mut open = true;
    text.chars()
        .map(|c| match c {
            '`' => {
                open = !open;
                if open {
                    '”'
                } else {
                    '“'
                }
            }
            c => c,
        })
        .collect()
}

/// Whether `name` is a room name: 2–64 of `a-z 0-9 _ -`.
pub fn is_room_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What a summit's backstage room is called after it.
const BACKSTAGE: &str = "-backstage";

/// The longest summit name, so that its backstage's name is still a room name.
pub const MAX_SUMMIT_NAME: usize = 64 - BACKSTAGE.len();

/// The name of summit `name`'s backstage room (§12).
pub fn backstage_name(name: &str) -> String {
    format!("{name}{BACKSTAGE}")
}

/// Formats Unix milliseconds as `2026-10-10T12:00:00.123Z`.
pub fn format_ts(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// [`format_ts`] with the offset of IANA time zone `zone` at that instant, as in
/// `2026-10-10T09:00:00.000+01:00` (the same instant; UTC when `zone` is empty or
/// unknown).
pub fn format_ts_in(ms: i64, zone: &str) -> String {
    if zone.is_empty() {
        return format_ts(ms);
    }
    let (Ok(at), Ok(tz)) = (jiff::Timestamp::from_millisecond(ms), jiff::tz::TimeZone::get(zone)) else {
        return format_ts(ms);
    };
    at.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// Parses an RFC 3339 / ISO-8601 timestamp with an offset into Unix milliseconds.
pub fn parse_ts(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Close codes the server sends (PROTOCOL.md section 4).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A policy was violated.
    pub const POLICY: u16 = 1008;
    /// A frame was over the size limit.
    pub const TOO_LARGE: u16 = 1009;
    /// Not authenticated, or the token was revoked.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// Banned from the server.
    pub const BANNED: u16 = 4003;
    /// The socket read too slowly; reconnect and catch up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Too many requests.
    pub const TOO_MANY_REQUESTS: u16 = 4029;
    /// The server failed while handling this socket's request (a bug, logged).
    pub const INTERNAL_ERROR: u16 = 1011;
    /// This node lost its link to the other nodes; reconnect (to another node) and catch up.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_request_type_is_understood_and_unlisted_ones_are_not() {
        for kind in REQUEST_TYPES {
            if cfg!(not(feature = "test-hooks")) && kind.starts_with("test_") {
                continue;
            }
            let text = format!("{{\"type\": \"{kind}\"}}");
            if let Err(err) = parse_request(&text) {
                assert!(!err.message.starts_with("Unknown request type"), "{kind}: {}", err.message);
            }
        }
        let err = parse_request("{\"type\": \"no_such_thing\"}").unwrap_err();
        assert!(err.message.starts_with("Unknown request type"), "{}", err.message);
        let (_, kind, _) = parse_request_typed("{\"type\": \"preferences\"}").unwrap();
        assert_eq!(kind, "preferences");
    }

    fn change(tag: &str, shape: Shape) -> CwChanges {
        CwChanges::parse(&BTreeMap::from([(tag.to_string(), shape)])).unwrap()
    }

    #[test]
    fn the_strictest_preference_among_a_messages_tags_wins_and_collapse_is_the_default() {
        let tags = CwTags::parse(&["grief".into(), "self_harm".into()]).unwrap();
        assert_eq!(tags.names(), ["self_harm", "grief"]);
        let mut preferences = CwPreferences::default();
        assert_eq!(preferences.shape(tags), Shape::Collapse, "every tag collapses until one chooses");
        assert_eq!(preferences.shape(CwTags::default()), Shape::Show, "a message without tags shows");
        preferences = preferences.apply(change("grief", Shape::Show));
        assert_eq!(preferences.shape(tags), Shape::Collapse, "self_harm still collapses");
        preferences = preferences.apply(change("self_harm", Shape::Show));
        assert_eq!(preferences.shape(tags), Shape::Show);
        preferences = preferences.apply(change("grief", Shape::Hide));
        assert_eq!(preferences.shape(tags), Shape::Hide, "hide beats show");
        let wire = serde_json::to_value(preferences.to_wire()).unwrap();
        assert_eq!(
            (&wire["cw"]["grief"], &wire["cw"]["self_harm"], &wire["cw"]["eating"]),
            (&"hide".into(), &"show".into(), &"collapse".into())
        );
        assert_eq!(wire["cw"].as_object().unwrap().len(), CW_TAGS.len());
        assert!(CwTags::parse(&["spoilers".into()]).unwrap_err().contains("“spoilers” is not a content warning"));
        assert!(CwChanges::parse(&BTreeMap::from([("nsfw".to_string(), Shape::Hide)])).is_err());
    }

    #[test]
    fn a_collapsed_message_loses_its_body_and_a_hidden_one_all_but_seq_room_and_tags() {
        let message = Message {
            seq: 9,
            room: "circle".into(),
            author: User { username: "ada".into(), display_name: "Ada".into(), role: Role::Member },
            body: Some("words".into()),
            ts: "2026-11-27T00:00:00.000Z".into(),
            cw: vec!["eating".into()],
            cw_note: Some("numbers".into()),
            reply_to: Some(3),
            ..Message::default()
        };
        let collapsed = serde_json::to_value(message.shaped(Shape::Collapse)).unwrap();
        assert_eq!(collapsed.get("body"), None);
        assert_eq!(
            (&collapsed["collapsed"], &collapsed["cw_note"], &collapsed["author"]["username"]),
            (&true.into(), &"numbers".into(), &"ada".into())
        );
        let hidden = serde_json::to_value(message.shaped(Shape::Hide)).unwrap();
        assert_eq!(hidden, serde_json::json!({"seq": 9, "room": "circle", "hidden": true, "cw": ["eating"]}));
        let blocked = serde_json::to_value(Message::blocked_stub(9, "circle")).unwrap();
        assert_eq!(blocked, serde_json::json!({"seq": 9, "room": "circle", "hidden": true, "blocked": true}));
        assert_eq!(message.shape_for("ada", CwPreferences::default()), Shape::Show, "the author sees their own");
        assert_eq!(message.shape_for("ben", CwPreferences::default()), Shape::Collapse);
        let deleted = Message { deleted: true, body: None, ..message };
        assert_eq!(deleted.shape_for("ben", CwPreferences::default()), Shape::Show, "nothing left to hold back");
    }

    #[test]
    fn messages_for_people_have_no_backticks_and_readable_times() {
        assert_eq!(super::human_ts(1_795_772_005_771), "27 Nov 2026, 09:33 UTC");
        let err = super::parse_request(r#"{"type": "send", "room": "x"}"#).unwrap_err();
        assert!(!err.message.contains('`'), "{}", err.message);
        assert!(err.message.contains("“body”"), "{}", err.message);
    }

    #[test]
    fn timestamps_round_trip_with_milliseconds_in_utc() {
        let ms = parse_ts("2026-10-10T12:00:00.123Z").unwrap();
        assert_eq!(format_ts(ms), "2026-10-10T12:00:00.123Z");
        let shifted = parse_ts("2026-10-10T14:00:00+02:00").unwrap();
        assert_eq!(format_ts(shifted), "2026-10-10T12:00:00.000Z");
        assert_eq!(parse_ts("10 October"), None);
    }

    #[test]
    fn parse_keeps_the_id_when_fields_are_missing() {
        let err = parse_request(r#"{"type":"send","id":7,"room":"x"}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::Int(7)));
        assert!(err.message.contains("body"), "{}", err.message);
        let err = parse_request(r#"{"type":"fly","id":"a"}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::Text("a".into())));
        assert!(parse_request("not json").unwrap_err().id.is_none());
        assert!(parse_request(r#"{"id":1}"#).unwrap_err().message.contains("type"));
    }

    #[test]
    fn parse_reads_each_request() {
        let (id, req) = parse_request(r#"{"type":"history","room":"r","after":3}"#).unwrap();
        assert_eq!(id, None);
        assert_eq!(req, Request::History(HistoryQuery { room: "r".into(), before: None, after: Some(3), limit: None }));
        let (_, req) = parse_request(r#"{"type":"create_room","name":"n","kind":"summit"}"#).unwrap();
        assert!(matches!(req, Request::CreateRoom(CreateRoom { kind: RoomKind::Summit, .. })));
    }

    #[test]
    fn parse_reads_the_rights_and_closed_group_requests() {
        let parsed = |text: &str| parse_request(text).map(|(_, request)| request);
        assert_eq!(
            parsed(r#"{"type":"appeal","sanction_id":4,"text":"please"}"#).unwrap(),
            Request::Moderate(Moderation::Appeal { sanction_id: 4, text: "please".into() })
        );
        assert_eq!(
            parsed(r#"{"type":"appeals","scope":"server","limit":5}"#).unwrap(),
            Request::Moderate(Moderation::Appeals {
                room: None,
                page: PageQuery { limit: Some(5), after: None, after_id: None }
            })
        );
        assert!(parsed(r#"{"type":"appeals"}"#).unwrap_err().message.contains("room"));
        assert_eq!(
            parsed(r#"{"type":"resolve_appeal","appeal_id":2,"outcome":"lifted"}"#).unwrap(),
            Request::Moderate(Moderation::ResolveAppeal { appeal_id: 2, outcome: AppealOutcome::Lifted, note: None })
        );
        assert!(parsed(r#"{"type":"resolve_appeal","appeal_id":2,"outcome":"forgiven"}"#).is_err());
        assert_eq!(
            parsed(r#"{"type":"approve_join","room":"q","user":"ben","approve":false}"#).unwrap(),
            Request::Moderate(Moderation::ApproveJoin { room: "q".into(), user: "ben".into(), approve: false })
        );
        assert_eq!(
            parsed(r#"{"type":"create_invite"}"#).unwrap(),
            Request::CreateInvite { uses: None, expires_in_s: None }
        );
        let Request::CreateRoom(room) =
            parsed(r#"{"type":"create_room","name":"q","visibility":"private","history_visibility":"since_join"}"#)
                .unwrap()
        else {
            panic!("not a create_room")
        };
        assert_eq!((room.visibility, room.history_visibility), (Visibility::Private, HistoryVisibility::SinceJoin));
        assert!(parsed(r#"{"type":"create_room","name":"q","visibility":"secret"}"#).is_err());
    }

    #[test]
    fn ok_frames_echo_the_id_and_flatten_the_result() {
        let text = ok_frame(Some(&RequestId::Int(7)), &Reply::Empty {});
        assert_eq!(text, r#"{"type":"ok","id":7}"#);
        let err = error_frame(None, &ApiError::new(ErrorCode::NotFound, "No such room."));
        assert_eq!(err, r#"{"type":"error","code":"not_found","message":"No such room."}"#);
    }

    #[test]
    fn roles_are_ordered_by_authority() {
        assert!(Role::Member < Role::Moderator && Role::Moderator < Role::Organiser && Role::Organiser < Role::Admin);
        for role in [Role::Member, Role::Moderator, Role::Organiser, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(!Role::Member.can_create_topic_room(false));
        assert!(Role::Member.can_create_topic_room(true));
        assert!(!Role::Moderator.can_create_summit_room());
        assert!(Role::Organiser.can_create_summit_room());
    }
}
