//! Durable state: accounts, sessions, rooms, memberships and messages.
//!
//! [`Store`] is the one interface the rest of the server uses; `sqlite` (the embedded
//! default) and `postgres` (for several nodes on one database) implement it, sharing
//! the group-commit `writer` and the row decoding in `rows`. Only this module and its
//! children know SQL. Nothing here knows about sockets, the hub or JSON framing.
//!
//! **Invariant:** a message's `seq` is assigned inside the transaction that stores it,
//! from a per-room counter in the same database, so seqs have no gaps and no repeats,
//! across restarts. New messages are handed to the [`CommitListener`] in commit order,
//! after the commit and before the sender's `insert_message` returns.
//!
//! **Invariant:** a write that fails is never reported as done, and a failed
//! transaction is never carried into the next one (see `sqlite::write`). Every write
//! reports its outcome to the store's [`WriteHealth`].

pub mod copy;
pub mod health;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(super::redacted("postgres://ada:s3cret@db:5432/chat"), "postgres://ada:***@db:5432/chat");
        assert_eq!(super::redacted("postgres://ada@db/chat"), "postgres://ada@db/chat");
        assert_eq!(super::redacted("sqlite://alongside.db"), "sqlite://alongside.db");
        assert_eq!(super::redacted("redis://:pw@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
    }
}
mod writer;

pub use health::WriteHealth;

use crate::protocol::{
    ActiveSanction, Appeal, AppealOutcome, CareAlert, CareKind, CwChanges, CwPreferences, CwTags, LogAction, Message,
    ModAction, Phase, Question, QuestionStatus, Reactions, Report, Role, RoomKind, RoomRole, User,
};
use async_trait::async_trait;
use std::sync::Arc;

/// A user's row id. Never sent to clients; they see usernames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// A room's row id. Never sent to clients; they see room names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub i64);

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Row id.
    pub id: UserId,
    /// The public part.
    pub user: User,
}

/// A user with the password hash, only for login.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub record: UserRecord,
    /// The argon2id PHC string.
    pub password_hash: String,
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// Row id.
    pub id: RoomId,
    /// Unique name.
    pub name: String,
    /// What it is about.
    pub topic: String,
    /// Topic or summit.
    pub kind: RoomKind,
    /// The creator.
    pub owner_id: UserId,
    /// The creator's username.
    pub owner: String,
    /// Slow mode interval in seconds, 0 = off.
    pub slow_mode_s: u32,
    /// Read-only for members when set.
    pub locked: bool,
    /// Summit window start, Unix milliseconds.
    pub starts_at: Option<i64>,
    /// Summit window end, Unix milliseconds.
    pub ends_at: Option<i64>,
    /// Summit member limit.
    pub capacity: Option<u32>,
    /// Members may send only while a host is on duty.
    pub requires_host: bool,
    /// Listed only to members and global moderators; joining needs approval.
    pub private: bool,
    /// Members see only messages sent after they joined.
    pub since_join: bool,
    /// A summit's phase as last stored (`None` for topic rooms); [`RoomRecord::phase_at`]
    /// applies the schedule entries that have come due since.
    pub phase: Option<Phase>,
    /// A summit's phases still to come, ascending by time (Unix milliseconds).
    pub schedule: Vec<(Phase, i64)>,
    /// A summit's speakers (room role `speaker`), by username, sorted.
    pub speakers: Vec<String>,
    /// A summit that takes people beyond its capacity as viewers.
    pub viewers: bool,
    /// How many viewers it had when this record was read.
    pub viewer_count: u64,
    /// An imported summit's session, start and end (Unix ms): what the programme and
    /// calendars show, while the phases open and close the room around it.
    pub session: Option<(i64, i64)>,
    /// The IANA time zone its times were given in (empty: none given).
    pub time_zone: String,
}

impl RoomRecord {
    /// The phase at `now_ms`: the stored one, or the last schedule entry come due.
    pub fn phase_at(&self, now_ms: i64) -> Option<Phase> {
        let due = self.schedule.iter().take_while(|(_, at)| *at <= now_ms).last();
        due.map(|(phase, _)| *phase).or(self.phase)
    }
}

/// Where a status comes in the order questions are listed: approved 0, answered 1,
/// pending 2, dismissed 3 (`Store::fetch_questions` takes a range of these).
pub fn question_rank(status: QuestionStatus) -> i64 {
    match status {
        QuestionStatus::Approved => 0,
        QuestionStatus::Answered => 1,
        QuestionStatus::Pending => 2,
        QuestionStatus::Dismissed => 3,
    }
}

/// A schedule as stored: `phase@unix-ms` separated by spaces.
pub fn schedule_text(schedule: &[(Phase, i64)]) -> String {
    schedule.iter().map(|(phase, at)| format!("{}@{at}", phase.as_str())).collect::<Vec<_>>().join(" ")
}

/// Reads [`schedule_text`]; `None` if it is not one.
pub fn parse_schedule(text: &str) -> Option<Vec<(Phase, i64)>> {
    text.split_whitespace()
        .map(|entry| {
            let (phase, at) = entry.split_once('@')?;
            Some((Phase::parse(phase)?, at.parse().ok()?))
        })
        .collect()
}

/// What `insert_room` needs.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Unique name (already validated).
    pub name: String,
    /// Topic text.
    pub topic: String,
    /// Topic or summit.
    pub kind: RoomKind,
    /// The creator, who becomes the owner and first member.
    pub owner: UserId,
    /// Summit window start, Unix milliseconds.
    pub starts_at: Option<i64>,
    /// Summit window end, Unix milliseconds.
    pub ends_at: Option<i64>,
    /// Summit member limit.
    pub capacity: Option<u32>,
    /// Members may send only while a host is on duty.
    pub requires_host: bool,
    /// Listed only to members and global moderators; joining needs approval.
    pub private: bool,
    /// Members see only messages sent after they joined.
    pub since_join: bool,
    /// A summit that takes people beyond its capacity as viewers.
    pub viewers: bool,
    /// An imported summit's session, start and end (Unix ms).
    pub session: Option<(i64, i64)>,
    /// The IANA time zone its times were given in (empty: none).
    pub time_zone: String,
    /// A summit's phases to come, ascending (empty: it opens in the hallway, as in
    /// version 1; else it is `scheduled` until the first entry).
    pub schedule: Vec<(Phase, i64)>,
}

impl NewRoom {
    /// The private backstage room of summit `summit`, owned by `owner` (§12): its
    /// moderators and speakers join as they get their roles.
    pub fn backstage(summit: &str, owner: UserId) -> NewRoom {
        NewRoom {
            name: crate::protocol::backstage_name(summit),
            topic: format!("Backstage for #{summit}: its organiser, moderators and speakers"),
            kind: RoomKind::Topic,
            owner,
            starts_at: None,
            ends_at: None,
            capacity: None,
            requires_host: false,
            private: true,
            since_join: false,
            viewers: false,
            session: None,
            time_zone: String::new(),
            schedule: Vec::new(),
        }
    }

    /// The phase a new room is stored with: none for a topic room.
    fn first_phase(&self) -> Option<Phase> {
        (self.kind == RoomKind::Summit).then_some(if self.schedule.is_empty() {
            Phase::Hallway
        } else {
            Phase::Scheduled
        })
    }
}

/// What [`Store::erase_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// The username before.
    pub old: String,
    /// `deleted-<id>`.
    pub new: String,
    /// The rooms the account was a member of.
    pub rooms: Vec<String>,
    /// The blocks that went with it, as (blocker, blocked username), for the hubs.
    pub blocks: Vec<(UserId, String)>,
}

/// What `insert_message` needs.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The room's row id.
    pub room_id: RoomId,
    /// The room's name, copied into the returned message.
    pub room: String,
    /// The author.
    pub author: UserRecord,
    /// Validated text.
    pub body: String,
    /// Idempotency key.
    pub client_msg_id: Option<String>,
    /// The message this one answers (checked to exist in the room).
    pub reply_to: Option<i64>,
    /// Usernames of the members it names.
    pub mentions: Vec<String>,
    /// Content-warning tags.
    pub cw: CwTags,
    /// The author's note about the warning.
    pub cw_note: Option<String>,
}

/// Where a page of search results ends: the last message's time and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    /// Stored time, in ms.
    pub ts: i64,
    /// `room_id << 32 | seq`.
    pub key: i64,
}

/// What is new for a member in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    /// Messages by others after the read marker (capped).
    pub messages: u32,
    /// Of those, the ones that name the member.
    pub mentions: u32,
}

/// The outcome of `insert_message`.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The message as stored.
    pub message: Message,
    /// `true` when the `client_msg_id` was seen before and this is the original.
    pub duplicate: bool,
}

/// Which slice of a room's history to read. Results are always ascending by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    /// Only seqs strictly below.
    pub before: Option<i64>,
    /// Only seqs strictly above; when set, the *first* `limit` after it are returned
    /// (catching up), otherwise the *last* `limit`.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Where a ban applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanScope {
    /// One room.
    Room(RoomId),
    /// The whole server.
    Server,
}

/// How long a login token lives, in milliseconds; 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenRules {
    /// Expires this long after it was last used.
    pub idle_ms: i64,
    /// Expires this long after it was made, used or not.
    pub max_ms: i64,
}

/// A change made to a user outside a running server, which it must apply to open sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The global role changed.
    Role,
    /// Tokens were revoked.
    Tokens,
    /// The account was erased: its sockets close and every node forgets its blocks.
    Erased,
    /// The account was put into rooms (a summit import): its open sockets take them.
    Rooms,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Role => "role",
            Change::Tokens => "tokens",
            Change::Erased => "erased",
            Change::Rooms => "rooms",
        }
    }

    fn parse(text: &str) -> Option<Change> {
        match text {
            "role" => Some(Change::Role),
            "tokens" => Some(Change::Tokens),
            "erased" => Some(Change::Erased),
            "rooms" => Some(Change::Rooms),
            _ => None,
        }
    }
}

/// The two sanctions that stay in force until lifted or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sanction {
    /// No sending in one room.
    Mute,
    /// No membership in one room, or no access to the server.
    Ban,
}

/// An active mute or ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// When it ends (Unix ms); `None` = until lifted.
    pub until: Option<i64>,
    /// Why, as the moderator said.
    pub reason: Option<String>,
}

/// An active mute, for loading the node's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteRecord {
    /// The room.
    pub room: RoomId,
    /// Who is muted.
    pub user: UserId,
    /// The mute.
    pub mute: Restriction,
}

/// A moderation-log entry about one member, for their own record and export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAbout {
    /// The entry's id.
    pub id: i64,
    /// The room (id and name); `None` for the server.
    pub room: Option<(RoomId, String)>,
    /// The entry as the log shows it.
    pub entry: ModAction,
    /// Who acted, and their global role.
    pub actor: UserId,
    /// The acting moderator's global role (`member` for a room's own moderators).
    pub actor_role: Role,
}

/// A mute or ban an answered appeal lifts, as `unmute` / `unban` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lift {
    /// Which.
    pub sanction: Sanction,
    /// A room's, or the server's (a ban).
    pub scope: BanScope,
    /// Whose.
    pub user: UserId,
    /// The `unmute` / `unban` log entry.
    pub log: ModEntry,
}

impl Lift {
    /// The table the restriction lives in.
    pub(crate) fn table(&self) -> &'static str {
        match self.sanction {
            Sanction::Mute => "mutes",
            Sanction::Ban => "bans",
        }
    }
}

/// An appeal with what it is against, for whoever answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppealRecord {
    /// The appeal as the wire shows it.
    pub appeal: Appeal,
    /// Who appealed.
    pub appellant: UserId,
    /// Where the sanction applies; `None` for the server.
    pub room: Option<RoomId>,
    /// What the sanction was.
    pub action: LogAction,
    /// Who imposed it.
    pub actor: UserId,
}

/// One moderation-log entry, written in the same transaction as the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModEntry {
    /// The room, or `None` for a server-scope action.
    pub room: Option<RoomId>,
    /// What was done.
    pub action: LogAction,
    /// Who acted.
    pub actor: UserId,
    /// The username acted on, if any.
    pub target: Option<String>,
    /// The message acted on, if any.
    pub seq: Option<i64>,
    /// The moderator's reason or note.
    pub reason: Option<String>,
    /// When the action ends (Unix ms), if it is timed.
    pub until: Option<i64>,
}

/// Errors at the store boundary. The cause of `Database` is for the log, never a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique name is taken.
    #[error("already exists")]
    Conflict,
    /// A display name is another user's username or display name.
    #[error("the name is in use")]
    NameInUse,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// A summit room is at capacity.
    #[error("room is full")]
    Full,
    /// The user is banned from the room (checked in the transaction that would have
    /// made them a member).
    #[error("banned")]
    Banned(Restriction),
    /// The store is shutting down and takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A write did not commit; nothing of it was stored.
    #[error("not stored: {0}")]
    NotStored(String),
    /// The database cannot serve: the file was replaced, or commits are not visible.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// Told about each newly stored message, in commit order, right after the commit.
/// Must not block: it runs on the store's writer.
pub trait CommitListener: Send + Sync + 'static {
    /// One new message (never a deduplicated resend).
    fn message_committed(&self, message: &Message);
}

/// The storage interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds while the store can serve reads and writes: no write has failed since
    /// the last successful commit, and a commit through the writer succeeded recently
    /// and was read back through a read connection (a heartbeat is written when none
    /// did).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a user; `Conflict` if the username is taken. With `invite` (an invite
    /// code's hash), one use of the code is spent in the same transaction, and
    /// `NotFound` says the code is unknown, used up or expired.
    async fn insert_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
        role: Role,
        invite: Option<&[u8]>,
    ) -> Result<UserRecord, StoreError>;

    /// The user and password hash for a login.
    async fn fetch_credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError>;

    /// A user's own region (for support resources); `None` when not set.
    async fn fetch_user_region(&self, user: UserId) -> Result<Option<String>, StoreError>;

    /// Sets (or, with `None`, clears) a user's own region.
    async fn update_user_region(&self, user: UserId, region: Option<&str>) -> Result<(), StoreError>;

    /// `blocker` blocks `blocked`; `false` if they did already.
    async fn insert_block(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError>;

    /// `blocker` stops blocking `blocked`; `false` if they did not.
    async fn delete_block(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError>;

    /// The people `blocker` blocks, by username.
    async fn fetch_blocks(&self, blocker: UserId) -> Result<Vec<UserRecord>, StoreError>;

    /// Every block on the server as (blocker, blocked username), for the hub at start.
    async fn fetch_all_blocks(&self) -> Result<Vec<(UserId, String)>, StoreError>;

    /// Up to `limit` of the messages `author` wrote (deleted ones as deleted), after
    /// (room id, seq) `after`, in that order: a page of their export.
    async fn fetch_messages_by(
        &self,
        author: UserId,
        after: (RoomId, i64),
        limit: u32,
    ) -> Result<Vec<(RoomId, Message)>, StoreError>;

    /// Every report `reporter` made, oldest first.
    async fn fetch_reports_by(&self, reporter: UserId) -> Result<Vec<Report>, StoreError>;

    /// Every summit question `author` asked, oldest first (for their export).
    async fn fetch_questions_by(&self, author: UserId) -> Result<Vec<Question>, StoreError>;

    /// Every moderation-log entry that names `username` as its target, newest first.
    async fn fetch_log_about(&self, username: &str) -> Result<Vec<LogAbout>, StoreError>;

    /// Stores `user`'s appeal against the sanction logged as `sanction_id`, with `log`,
    /// in one transaction. `Conflict` while an earlier appeal against it is open.
    async fn insert_appeal(
        &self,
        user: UserId,
        sanction_id: i64,
        text: &str,
        log: &ModEntry,
    ) -> Result<AppealRecord, StoreError>;

    /// Open appeals against sanctions in `room` (`None`: the server's), oldest first,
    /// with ids above `after_id`.
    async fn fetch_open_appeals(
        &self,
        room: Option<RoomId>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Appeal>, StoreError>;

    /// One appeal with its sanction.
    async fn fetch_appeal(&self, id: i64) -> Result<Option<AppealRecord>, StoreError>;

    /// Answers an open appeal and writes `log` in one transaction, lifting the mute or
    /// ban `lift` names if it is still in force (with its own log entry); `None` when
    /// there is no open appeal `id`, else the appeal and whether something was lifted.
    async fn resolve_appeal(
        &self,
        id: i64,
        outcome: AppealOutcome,
        note: Option<&str>,
        log: &ModEntry,
        lift: Option<&Lift>,
    ) -> Result<Option<(Appeal, bool)>, StoreError>;

    /// Global moderators, organisers and admins.
    async fn fetch_global_moderators(&self) -> Result<Vec<UserId>, StoreError>;

    /// Every appeal `user` made, oldest first.
    async fn fetch_appeals_by(&self, user: UserId) -> Result<Vec<Appeal>, StoreError>;

    /// Erases an account (PROTOCOL §9.3), in one transaction: every message it wrote
    /// becomes a deleted message (seq kept, words gone), its reactions, memberships,
    /// read markers, duty, blocks (both ways), preferences, region and tokens go, and
    /// its username becomes `deleted-<id>` wherever it must stay (the account row, the
    /// moderation log, others' mention lists). Returns the old name, the new one and
    /// the rooms it was a member of; `NotFound` for no such (or an erased) account.
    async fn erase_user(&self, user: UserId) -> Result<Erased, StoreError>;

    /// A user's content-warning preferences (every tag `collapse` until they choose).
    async fn fetch_preferences(&self, user: UserId) -> Result<CwPreferences, StoreError>;

    /// Changes the tags `changes` names (its mask) to its values, keeping the rest, in
    /// one statement (two saves at once from two devices both count); the preferences
    /// as they are now.
    async fn update_preferences(&self, user: UserId, changes: CwChanges) -> Result<CwPreferences, StoreError>;

    /// Raises a care alert for message `seq` of a room (`by` and `note` for a referral);
    /// `NotFound` if there is no such message.
    async fn insert_care_alert(
        &self,
        room: &RoomRecord,
        seq: i64,
        kind: CareKind,
        by: Option<UserId>,
        note: Option<&str>,
    ) -> Result<CareAlert, StoreError>;

    /// Up to `limit` of a room's open (unacknowledged) care alerts with ids above
    /// `after_id`, oldest first.
    async fn fetch_care_alerts(
        &self,
        room: &RoomRecord,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<CareAlert>, StoreError>;

    /// Acknowledges an open care alert (logging it); the alert as it is now, or `None`
    /// if there is no open alert with that id in the room.
    async fn ack_care_alert(&self, room: &RoomRecord, id: i64, log: &ModEntry)
        -> Result<Option<CareAlert>, StoreError>;

    /// Stores a pending question asked by `author`.
    async fn insert_question(
        &self,
        room: &RoomRecord,
        author: UserId,
        body: &str,
        anonymous: bool,
    ) -> Result<Question, StoreError>;

    /// Question `id` of `room` (`voted` for `viewer`), or `None`.
    async fn fetch_question(&self, room: &RoomRecord, id: i64, viewer: UserId) -> Result<Option<Question>, StoreError>;

    /// Up to `limit` questions of `room` whose status ranks from `ranks.0` to `ranks.1`
    /// (approved 0, answered 1, pending 2, dismissed 3), in that order, then by votes
    /// (most first), age and id; after question `after_id` (`NotFound` if it is not
    /// the room's). `voted` is for `viewer`.
    async fn fetch_questions(
        &self,
        room: &RoomRecord,
        ranks: (i64, i64),
        after_id: Option<i64>,
        limit: u32,
        viewer: UserId,
    ) -> Result<Vec<Question>, StoreError>;

    /// Adds (`up`) or takes back `user`'s one vote for an approved question; its votes
    /// now, or `None` when the room has no approved question `id`.
    async fn vote_question(
        &self,
        room: &RoomRecord,
        id: i64,
        user: UserId,
        up: bool,
    ) -> Result<Option<i64>, StoreError>;

    /// A question's votes now, or `None`.
    async fn fetch_question_votes(&self, id: i64) -> Result<Option<i64>, StoreError>;

    /// Sets a question's status; its status before and the question now, or `None`.
    async fn update_question_status(
        &self,
        room: &RoomRecord,
        id: i64,
        status: QuestionStatus,
    ) -> Result<Option<(QuestionStatus, Question)>, StoreError>;

    /// Sets a summit's stored phase and its schedule still to come; the room as it is now.
    async fn update_room_phase(
        &self,
        room: RoomId,
        phase: Phase,
        schedule: &[(Phase, i64)],
    ) -> Result<RoomRecord, StoreError>;

    /// Moves a summit to `phase` with `rest` still to come, if its schedule is still
    /// `expected` (several nodes race to apply a schedule entry that came due: one
    /// wins). The room as it is now when this call changed it, else `None`.
    async fn advance_room_phase(
        &self,
        room: RoomId,
        expected: &[(Phase, i64)],
        phase: Phase,
        rest: &[(Phase, i64)],
    ) -> Result<Option<RoomRecord>, StoreError>;

    /// Every summit with phases still to come.
    async fn fetch_scheduled_rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;

    /// Requires a host on duty for members to send, or not; the room as it is now.
    async fn update_host_rule(&self, room: RoomId, required: bool, log: &ModEntry) -> Result<RoomRecord, StoreError>;

    /// Puts `user` on or off duty in a room; `false` if they already were (or were not).
    async fn update_duty(&self, room: RoomId, user: UserId, on: bool) -> Result<bool, StoreError>;

    /// Every host on duty with the room's id and name, for the node's cache.
    async fn fetch_duty(&self) -> Result<Vec<(RoomId, String, UserRecord)>, StoreError>;

    /// Writes a moderation-log entry for an action that changes nothing else (a warning).
    async fn insert_mod_log(&self, log: &ModEntry) -> Result<(), StoreError>;

    /// Changes a user's global role (logging it when `log` is given); `NotFound` if
    /// there is no such user.
    async fn update_user_role(
        &self,
        username: &str,
        role: Role,
        log: Option<&ModEntry>,
    ) -> Result<UserRecord, StoreError>;

    /// One user by (lower-case) username.
    async fn fetch_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Remembers a login by the hash of its token.
    async fn insert_token(&self, token_hash: &[u8], user: UserId) -> Result<(), StoreError>;

    /// The user a token belongs to, and when the token was last used (Unix ms), if it
    /// is live at `now`: used within `rules.idle_ms` and made within `rules.max_ms`
    /// (0 = no limit).
    async fn fetch_token_user(
        &self,
        token_hash: &[u8],
        rules: TokenRules,
        now: i64,
    ) -> Result<Option<(UserRecord, i64)>, StoreError>;

    /// Notes that a token was used at `now` (written at most once an hour per token).
    async fn touch_token(&self, token_hash: &[u8], now: i64) -> Result<(), StoreError>;

    /// Revokes a token; `false` if it was not live.
    async fn delete_token(&self, token_hash: &[u8]) -> Result<bool, StoreError>;

    /// Revokes every token of a user; how many there were.
    async fn delete_user_tokens(&self, user: UserId) -> Result<u64, StoreError>;

    /// One user by row id.
    async fn fetch_user_by_id(&self, user: UserId) -> Result<Option<UserRecord>, StoreError>;

    /// Records that `user` changed outside the server (the CLI), for running servers to
    /// apply; changes older than a day are dropped at the same time.
    async fn insert_change(&self, user: UserId, change: Change) -> Result<(), StoreError>;

    /// The changes recorded after `after` (an id), oldest first; the newest id is the next
    /// `after`. `None` asks only for the newest id, to start from.
    async fn fetch_changes(&self, after: Option<i64>) -> Result<(i64, Vec<(UserId, Change)>), StoreError>;

    /// Creates a room and makes its owner the first member; `Conflict` if the name is taken.
    async fn insert_room(&self, room: &NewRoom) -> Result<RoomRecord, StoreError>;

    /// One room by name.
    async fn fetch_room(&self, name: &str) -> Result<Option<RoomRecord>, StoreError>;

    /// Up to `limit` rooms whose names sort after `after` (all, without it), by name:
    /// every room for `viewer` `None` (a global moderator), else the public ones and
    /// the private ones `viewer` is a member of.
    async fn fetch_rooms(
        &self,
        after: Option<&str>,
        limit: u32,
        viewer: Option<UserId>,
    ) -> Result<Vec<RoomRecord>, StoreError>;

    /// Asks to join a private room; `false` when the request was already waiting.
    async fn insert_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;

    /// A private room's waiting join requests, oldest first, with when each was made.
    async fn fetch_join_requests(&self, room: RoomId) -> Result<Vec<(UserRecord, i64)>, StoreError>;

    /// Withdraws or refuses a join request; `false` when there was none. (Becoming a
    /// member removes it too.)
    async fn delete_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;

    /// The members who joined `room` when its last seq was `seq` or later.
    async fn fetch_members_joined_since(&self, room: RoomId, seq: i64) -> Result<Vec<UserId>, StoreError>;

    /// The room's last seq when `user` joined it; `None` for a non-member.
    async fn fetch_joined_seq(&self, room: RoomId, user: UserId) -> Result<Option<i64>, StoreError>;

    /// Stores an invite code (by its hash) good for `uses` registrations until
    /// `expires_at` (Unix ms; `None`: no end).
    async fn insert_invite(
        &self,
        code_hash: &[u8],
        uses: u32,
        expires_at: Option<i64>,
        created_by: Option<UserId>,
    ) -> Result<(), StoreError>;

    /// Adds a member; `Ok(false)` if already a member, `Full` at capacity, `Banned`
    /// while a room or server ban is in force (checked in the same transaction, so a
    /// ban committed first always wins).
    async fn insert_membership(&self, room: &RoomRecord, user: UserId) -> Result<bool, StoreError>;

    /// Removes a member; `false` if not a member.
    async fn delete_membership(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;

    /// Every member of a room with their room role, by username.
    async fn fetch_members(&self, room: RoomId) -> Result<Vec<(UserRecord, RoomRole)>, StoreError>;

    /// Moves a member's read marker forward to `seq` (never back, never past the room's
    /// last message); the marker now, if it moved.
    async fn update_read_marker(&self, room: RoomId, user: UserId, seq: i64) -> Result<Option<i64>, StoreError>;

    /// Messages after the member's read marker that others wrote and are not deleted,
    /// counted up to `cap`, and how many of those mention the member. A member without
    /// a marker has read everything up to now.
    async fn fetch_unread(&self, room: RoomId, user: UserId, cap: u32) -> Result<Unread, StoreError>;

    /// Of `usernames`, those who are members of the room, with their ids.
    async fn fetch_members_named(&self, room: RoomId, usernames: &[String]) -> Result<Vec<UserRecord>, StoreError>;

    /// Messages matching `query` (words, all of them, the last also as a prefix), newest
    /// first, from the rooms `user` is a member of (or only `room`), older than
    /// `before`; each with the cursor that continues after it.
    async fn search_messages(
        &self,
        user: UserId,
        room: Option<RoomId>,
        query: &str,
        before: Option<SearchCursor>,
        limit: u32,
    ) -> Result<Vec<(Message, SearchCursor)>, StoreError>;

    /// Names of the rooms a user is a member of, leaving out any they are banned from.
    async fn fetch_user_rooms(&self, user: UserId) -> Result<Vec<String>, StoreError>;

    /// The user's role in the room, or `None` if not a member.
    async fn fetch_room_role(&self, room: RoomId, user: UserId) -> Result<Option<RoomRole>, StoreError>;

    /// Users with the room role `moderator` in the room (the owner is on the record).
    async fn fetch_room_moderators(&self, room: RoomId) -> Result<Vec<UserId>, StoreError>;

    /// Sets a member's room role; `NotFound` if not a member.
    async fn update_room_role(
        &self,
        room: RoomId,
        user: UserId,
        role: RoomRole,
        log: &ModEntry,
    ) -> Result<(), StoreError>;

    /// Mutes a user in a room (replacing an earlier mute).
    async fn upsert_mute(
        &self,
        room: RoomId,
        user: UserId,
        mute: &Restriction,
        log: &ModEntry,
    ) -> Result<(), StoreError>;

    /// Lifts a mute; `false` if there was none.
    async fn delete_mute(&self, room: RoomId, user: UserId, log: &ModEntry) -> Result<bool, StoreError>;

    /// Every mute still in force at `now`, for the node's cache.
    async fn fetch_active_mutes(&self, now: i64) -> Result<Vec<MuteRecord>, StoreError>;

    /// The `(seq, emoji)` reactions `user` made to messages `seqs.0..=seqs.1` of a room.
    async fn fetch_own_reactions(
        &self,
        room: RoomId,
        user: UserId,
        seqs: (i64, i64),
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// The bans and mutes in force in a room at `now`, soonest to end first (those until
    /// lifted last), with who imposed each.
    async fn fetch_room_sanctions(&self, room: RoomId, now: i64) -> Result<Vec<ActiveSanction>, StoreError>;

    /// Removes a member (a kick); `false` if not a member.
    async fn delete_membership_logged(&self, room: RoomId, user: UserId, log: &ModEntry) -> Result<bool, StoreError>;

    /// Bans a user (replacing an earlier ban); a room ban also ends the membership.
    /// `true` if it ended one: the caller learns it from the same transaction, so a
    /// join that committed just before the ban is never missed.
    async fn upsert_ban(
        &self,
        scope: BanScope,
        user: UserId,
        ban: &Restriction,
        log: &ModEntry,
    ) -> Result<bool, StoreError>;

    /// Who imposed the mute (`Sanction::Mute`, room scope) or ban in force at `now`,
    /// with their global role; `None` if there is none.
    async fn fetch_sanction_imposer(
        &self,
        sanction: Sanction,
        scope: BanScope,
        user: UserId,
        now: i64,
    ) -> Result<Option<(UserId, Role)>, StoreError>;

    /// Lifts a ban; `false` if there was none.
    async fn delete_ban(&self, scope: BanScope, user: UserId, log: &ModEntry) -> Result<bool, StoreError>;

    /// The ban in force at `now`, if any.
    async fn fetch_ban(&self, scope: BanScope, user: UserId, now: i64) -> Result<Option<Restriction>, StoreError>;

    /// A message's author and whether it is deleted; `None` if there is no such seq.
    async fn fetch_message_author(&self, room: RoomId, seq: i64) -> Result<Option<(UserRecord, bool)>, StoreError>;

    /// Replaces the text of `author`'s message `seq` and notes when; the message as it
    /// is now, or `NotFound` if there is no such message of theirs that is not deleted.
    async fn update_message_body(
        &self,
        room: &RoomRecord,
        seq: i64,
        author: &UserRecord,
        body: &str,
    ) -> Result<Message, StoreError>;

    /// Adds (`add`) or takes back `user`'s `emoji` reaction to message `seq`; the
    /// message's counts now, `None` if nothing changed (reacting twice, taking back what
    /// is not there), or `NotFound` if there is no such message or it is deleted.
    async fn update_reaction(
        &self,
        room: RoomId,
        seq: i64,
        user: UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Option<Reactions>, StoreError>;

    /// Replaces message `seq`'s content warnings and logs it, in one transaction; the
    /// message as it is now, or `NotFound` if there is no such message or it is deleted.
    async fn update_message_cw(
        &self,
        room: &RoomRecord,
        seq: i64,
        cw: CwTags,
        cw_note: Option<&str>,
        log: &ModEntry,
    ) -> Result<Message, StoreError>;

    /// Marks a message deleted and drops its body.
    async fn update_message_deleted(&self, room: RoomId, seq: i64, log: &ModEntry) -> Result<(), StoreError>;

    /// Changes slow mode and/or the lock; returns the room as it is now.
    async fn update_room_settings(
        &self,
        room: RoomId,
        slow_mode_s: Option<u32>,
        locked: Option<bool>,
        log: &ModEntry,
    ) -> Result<RoomRecord, StoreError>;

    /// Stores a report of a message with a snapshot of it (author, body, time) taken in
    /// the same transaction, so the evidence outlives a later deletion; `NotFound` if
    /// there is no such message or it is deleted, `Conflict` if this reporter reported
    /// it already.
    async fn insert_report(
        &self,
        room: &RoomRecord,
        seq: i64,
        reporter: &UserRecord,
        reason: &str,
    ) -> Result<Report, StoreError>;

    /// Up to `limit` of the room's open reports with ids above `after_id`, oldest first.
    async fn fetch_open_reports(&self, room: &RoomRecord, after_id: i64, limit: u32)
        -> Result<Vec<Report>, StoreError>;

    /// Resolves an open report; `false` if there is no open report with that id here.
    async fn resolve_report(&self, room: RoomId, id: i64, log: &ModEntry) -> Result<bool, StoreError>;

    /// The room's (or, with `None`, the server's) moderation log, newest first.
    async fn fetch_mod_log(&self, room: Option<RoomId>, limit: u32) -> Result<Vec<ModAction>, StoreError>;

    /// Stores a message (group-committed with concurrent ones) and returns it with its
    /// seq, or the original when `client_msg_id` repeats.
    async fn insert_message(&self, message: NewMessage) -> Result<StoredMessage, StoreError>;

    /// A slice of a room's history, ascending.
    async fn fetch_messages(&self, room: &RoomRecord, range: HistoryRange) -> Result<Vec<Message>, StoreError>;

    /// Finishes pending writes and closes connections.
    async fn close(&self);
}

/// A database URL fit for a log: any password in it replaced with `***`.
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |at| scheme_end + at);
    let authority = &url[scheme_end..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}{}:***{}", &url[..scheme_end], &authority[..colon], &url[scheme_end + at..])
        }
        _ => url.to_string(),
    }
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Makes and stores an invite code good for `uses` registrations until `expires_at`.
pub async fn create_invite(
    store: &dyn Store,
    uses: u32,
    expires_at: Option<i64>,
    by: Option<UserId>,
) -> Result<crate::protocol::Invite, StoreError> {
    let code = crate::auth::new_invite_code();
    store.insert_invite(&crate::auth::invite_hash(&code), uses, expires_at, by).await?;
    Ok(crate::protocol::Invite { code, uses, expires_at: expires_at.map(crate::protocol::format_ts) })
}

/// Opens the store named by a database URL (`sqlite://PATH` or `postgres://...`).
pub async fn open(
    url: &str,
    listener: Arc<dyn CommitListener>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Arc<dyn Store>, OpenError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, listener, metrics).await?))
    } else if is_postgres(url) {
        Ok(Arc::new(postgres::PostgresStore::open(url, listener, metrics).await?))
    } else {
        Err(OpenError::Unsupported(url.split(':').next().unwrap_or_default().to_string()))
    }
}

/// Brings the schema of the database named by `url` up to date without serving, and
/// returns its version before and after (`alongside migrate`).
pub async fn migrate(url: &str) -> Result<(usize, usize), OpenError> {
    if url.starts_with("sqlite:") {
        sqlite::SqliteStore::migrate(url).await
    } else if is_postgres(url) {
        postgres::PostgresStore::migrate(url).await
    } else {
        Err(OpenError::Unsupported(url.split(':').next().unwrap_or_default().to_string()))
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL scheme is not one this build knows.
    #[error("unsupported database URL scheme `{0}` (this build supports sqlite://PATH and postgres://...)")]
    Unsupported(String),
    /// The database could not keep the durability promise.
    #[error("cannot use this database: {0}")]
    NotDurable(&'static str),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migration failed.
    #[error("cannot migrate the database schema: {0}")]
    Migration(String),
    /// `alongside copy` refused or failed; nothing was kept.
    #[error("cannot copy: {0}")]
    Copy(String),
}
