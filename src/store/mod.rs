//! Durable state: accounts, sessions, rooms, memberships and messages.
//!
//! [`Store`] is the one interface the rest of the server uses; `sqlite` implements it
//! today and a PostgreSQL implementation will join it. Only this module and its
//! children know SQL. Nothing here knows about sockets, the hub or JSON framing.
//!
//! **Invariant:** a message's `seq` is assigned inside the transaction that stores it,
//! from a per-room counter in the same database, so seqs have no gaps and no repeats,
//! across restarts. New messages are handed to the [`CommitListener`] in commit order,
//! after the commit and before the sender's `insert_message` returns.

pub mod sqlite;

use crate::protocol::{Message, Role, RoomKind, User};
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

/// Errors at the store boundary. The cause of `Database` is for the log, never a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique name is taken.
    #[error("already exists")]
    Conflict,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// A summit room is at capacity.
    #[error("room is full")]
    Full,
    /// The store is shutting down and takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database file is no longer the one that was opened.
    #[error("database file unavailable: {0}")]
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
    /// Succeeds while the store can serve reads and writes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a user; `Conflict` if the username is taken.
    async fn insert_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<UserRecord, StoreError>;

    /// The user and password hash for a login.
    async fn fetch_credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError>;

    /// Changes a user's global role; `NotFound` if there is no such user.
    async fn update_user_role(&self, username: &str, role: Role) -> Result<UserRecord, StoreError>;

    /// Remembers a login by the hash of its token.
    async fn insert_session(&self, token_hash: &[u8], user: UserId) -> Result<(), StoreError>;

    /// The user a token belongs to, if the token is live.
    async fn fetch_session_user(&self, token_hash: &[u8])
        -> Result<Option<UserRecord>, StoreError>;

    /// Revokes a token; `false` if it was not live.
    async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError>;

    /// Creates a room and makes its owner the first member; `Conflict` if the name is taken.
    async fn insert_room(&self, room: &NewRoom) -> Result<RoomRecord, StoreError>;

    /// One room by name.
    async fn fetch_room(&self, name: &str) -> Result<Option<RoomRecord>, StoreError>;

    /// Every room, by name.
    async fn fetch_rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;

    /// Adds a member; `Ok(false)` if already a member, `Full` at capacity.
    async fn insert_membership(&self, room: &RoomRecord, user: UserId) -> Result<bool, StoreError>;

    /// Removes a member; `false` if not a member.
    async fn delete_membership(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;

    /// Names of the rooms a user is a member of.
    async fn fetch_user_rooms(&self, user: UserId) -> Result<Vec<String>, StoreError>;

    /// Stores a message (group-committed with concurrent ones) and returns it with its
    /// seq, or the original when `client_msg_id` repeats.
    async fn insert_message(&self, message: NewMessage) -> Result<StoredMessage, StoreError>;

    /// A slice of a room's history, ascending.
    async fn fetch_messages(
        &self,
        room: &RoomRecord,
        range: HistoryRange,
    ) -> Result<Vec<Message>, StoreError>;

    /// Finishes pending writes and closes connections.
    async fn close(&self);
}

/// Opens the store named by a database URL (`sqlite://path` or `sqlite::memory:`).
pub async fn open(
    url: &str,
    listener: Arc<dyn CommitListener>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Arc<dyn Store>, OpenError> {
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url, listener, metrics).await?;
        Ok(Arc::new(store))
    } else {
        Err(OpenError::Unsupported(
            url.split(':').next().unwrap_or_default().to_string(),
        ))
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL scheme is not one this build knows.
    #[error("unsupported database URL scheme `{0}` (this build supports sqlite://PATH)")]
    Unsupported(String),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migration failed.
    #[error("cannot migrate the database schema: {0}")]
    Migration(String),
}
