//! The embedded SQLite store: one file in WAL mode with `synchronous=FULL`, so a
//! committed message survives a crash *and* a power loss.
//!
//! Reads go to a small pool of connections (WAL lets them run beside a writer). All
//! writes go through a one-connection pool, because SQLite has one writer at a time and
//! queueing in our process is cheaper than spinning on `SQLITE_BUSY`; each write is a
//! `WriteTx` (see `write` for why it does not use the driver's transactions).
//! Messages take a further shortcut: a single writer task collects every
//! `insert_message` waiting at that moment and stores them in one transaction (group
//! commit), so a burst of sends costs one fsync instead of one each.
//!
//! - `schema`: migrations and the durability check every write connection passes.
//! - `write`: the write transaction and this backend's side of the group commit.

pub mod backup;
mod schema;
mod write;

use super::rows::{
    self, APPEAL_COLUMNS, CARE_COLUMNS, MESSAGE_COLUMNS, QUESTION_COLUMNS, QUESTION_RANK, REPORT_COLUMNS,
    ROOM_COLUMNS_SQLITE as ROOM_COLUMNS,
};
use super::writer::{Writer, PROVEN_FOR};
use super::{
    AppealRecord, BanScope, Change, CommitListener, Credentials, Erased, HistoryRange, Lift, LogAbout, ModEntry,
    MuteRecord, NewMessage, NewRoom, OpenError, Restriction, RoomId, RoomRecord, Sanction, SearchCursor, Store,
    StoreError, StoredMessage, TokenRules, Unread, UserId, UserRecord, WriteHealth,
};
use crate::metrics::Metrics;
use crate::protocol::{
    format_ts, now_ms, ActiveSanction, Appeal, AppealOutcome, CareAlert, CareKind, CwChanges, CwPreferences, CwTags,
    Message, ModAction, Phase, Question, QuestionStatus, Reactions, Report, Role, RoomRole, User,
};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use write::WriteTx;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    reads: SqlitePool,
    /// One connection; every write transaction takes it in turn (see `write`).
    writes: SqlitePool,
    /// Whether writes get through; shared with the writer task.
    health: Arc<WriteHealth>,
    /// The group-commit writer task.
    writer: Writer,
    /// The file and its identity at open, so `ping` notices a deleted or replaced file
    /// (writes would otherwise go to an unlinked inode and vanish at restart).
    file: Option<(PathBuf, u64, u64)>,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`. A file that
    /// cannot run in WAL mode with `synchronous=FULL` is refused.
    pub async fn open(
        url: &str,
        listener: Arc<dyn CommitListener>,
        metrics: Arc<Metrics>,
    ) -> Result<SqliteStore, OpenError> {
        let (options, writes) = Self::write_pool(url).await?;
        let health = Arc::new(WriteHealth::new(metrics.clone()));
        schema::migrate(&writes, &health).await?;
        let reads = SqlitePoolOptions::new().max_connections(4).connect_with(options.clone().read_only(true)).await?;
        let file = file_identity(options.get_filename());
        let batches = write::SqliteBatches { writes: writes.clone(), reads: reads.clone(), health: health.clone() };
        let writer = Writer::spawn(Arc::new(batches), health.clone(), listener, metrics);
        Ok(SqliteStore { reads, writes, health, writer, file })
    }

    /// Brings the schema of the database at `url` up to date (creating the file if
    /// missing) and returns its version before and after.
    pub async fn migrate(url: &str) -> Result<(usize, usize), OpenError> {
        let (_, writes) = Self::write_pool(url).await?;
        let health = Arc::new(WriteHealth::new(Arc::default()));
        let before = schema::version(&writes).await?;
        schema::migrate(&writes, &health).await?;
        let after = schema::version(&writes).await?;
        writes.close().await;
        Ok((before, after))
    }

    /// The connection options for `url` and the one-connection pool every write uses.
    async fn write_pool(url: &str) -> Result<(SqliteConnectOptions, SqlitePool), OpenError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted content is overwritten with zeros, not left in free space.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives in its one connection, which the write path
        // replaces after any failure: it would lose everything at the first one.
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(OpenError::NotDurable("an in-memory database keeps nothing; use sqlite://PATH"));
        }
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            // Every write connection, the first and each replacement, is checked.
            .after_connect(|conn, _| Box::pin(schema::check_durability(conn)))
            .connect_with(options.clone())
            .await?;
        Ok((options, writes))
    }

    /// Begins a write transaction on the write connection.
    async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        WriteTx::begin(&self.writes, &self.health).await
    }
}

fn file_identity(path: &std::path::Path) -> Option<(PathBuf, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((path.to_path_buf(), meta.dev(), meta.ino()))
}

/// Stores one message inside the writer's transaction, or finds the original of a resend.
async fn write_one(conn: &mut SqliteConnection, new: &NewMessage) -> Result<StoredMessage, sqlx::Error> {
    if let Some(client_msg_id) = &new.client_msg_id {
        let existing = sqlx::query(
            "SELECT seq, body, ts, client_msg_id, deleted, edited_at, reply_to, mentions, cw, cw_note FROM messages \
             WHERE room_id = ? AND author_id = ? AND client_msg_id = ?",
        )
        .bind(new.room_id.0)
        .bind(new.author.id.0)
        .bind(client_msg_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            let message = rows::message_by(&new.room, new.author.user.clone(), &row)?;
            return Ok(StoredMessage { message, duplicate: true });
        }
    }
    let seq: i64 = sqlx::query_scalar("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq")
        .bind(new.room_id.0)
        .fetch_one(&mut *conn)
        .await?;
    let ts = now_ms();
    sqlx::query(
        "INSERT INTO messages (room_id, seq, author_id, body, ts, client_msg_id, reply_to, mentions, cw, cw_note) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.room_id.0)
    .bind(seq)
    .bind(new.author.id.0)
    .bind(&new.body)
    .bind(ts)
    .bind(&new.client_msg_id)
    .bind(new.reply_to)
    .bind(rows::join_mentions(&new.mentions))
    .bind(i64::from(new.cw.0))
    .bind(&new.cw_note)
    .execute(&mut *conn)
    .await?;
    let message = Message {
        seq,
        room: new.room.clone(),
        author: new.author.user.clone(),
        body: Some(new.body.clone()),
        ts: format_ts(ts),
        client_msg_id: new.client_msg_id.clone(),
        deleted: false,
        edited_at: None,
        reply_to: new.reply_to,
        mentions: new.mentions.clone(),
        cw: new.cw.names(),
        cw_note: new.cw_note.clone(),
        ..Message::default()
    };
    Ok(StoredMessage { message, duplicate: false })
}

/// A member's search words as an FTS5 expression: each word quoted (so no character
/// is an operator), all required, the last also as a prefix. None for no words.
fn fts_expression(query: &str) -> Option<String> {
    let words = rows::search_words(query)?;
    let (last, rest) = words.split_last()?;
    Some(rest.iter().map(|w| format!("\"{w}\" ")).collect::<String>() + &format!("\"{last}\"*"))
}

/// Reaction counts of the messages `from..=to` of a room, by seq; messages without
/// reactions are absent.
async fn reaction_counts<'c, E>(
    executor: E,
    room: RoomId,
    from: i64,
    to: i64,
) -> Result<HashMap<i64, Reactions>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let rows = sqlx::query(
        "SELECT seq, emoji, COUNT(*) AS n FROM reactions WHERE room_id = ? AND seq BETWEEN ? AND ? GROUP BY seq, emoji",
    )
    .bind(room.0)
    .bind(from)
    .bind(to)
    .fetch_all(executor)
    .await?;
    let mut counts: HashMap<i64, Reactions> = HashMap::new();
    for row in rows {
        let n: i64 = row.try_get("n")?;
        counts.entry(row.try_get("seq")?).or_default().insert(row.try_get("emoji")?, n as u32);
    }
    Ok(counts)
}

async fn insert_log(conn: &mut SqliteConnection, entry: &ModEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mod_log (room_id, action, actor_id, target, seq, reason, until, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(rows::scope_id(entry.room))
    .bind(entry.action.as_str())
    .bind(entry.actor.0)
    .bind(&entry.target)
    .bind(entry.seq)
    .bind(&entry.reason)
    .bind(entry.until)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts or replaces a mute or ban (`table` is `mutes` or `bans`, our own constant).
async fn upsert_restriction(
    conn: &mut SqliteConnection,
    table: &'static str,
    room_id: i64,
    user: UserId,
    restriction: &Restriction,
    log: &ModEntry,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {table} (room_id, user_id, until, reason, actor_id) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (room_id, user_id) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
         actor_id = excluded.actor_id"
    );
    sqlx::query(&sql)
        .bind(room_id)
        .bind(user.0)
        .bind(restriction.until)
        .bind(&restriction.reason)
        .bind(log.actor.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The ban in force at `now` for `user` in either scope (a room id, or 0 for the
/// server), the room's first.
async fn ban_in_force<'c>(
    db: impl sqlx::SqliteExecutor<'c>,
    scopes: [i64; 2],
    user: UserId,
    now: i64,
) -> Result<Option<Restriction>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT until, reason FROM bans WHERE room_id IN (?, ?) AND user_id = ? AND (until IS NULL OR until > ?) \
         ORDER BY room_id DESC LIMIT 1",
    )
    .bind(scopes[0])
    .bind(scopes[1])
    .bind(user.0)
    .bind(now)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(rows::restriction(&row)?))
}

/// Commits when `rows` changed, else rolls back (nothing to sync to disk); whether any did.
async fn commit_if_changed(tx: WriteTx, rows: u64) -> Result<bool, StoreError> {
    if rows == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// A statement with its bound arguments, ready to run.
type Statement<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl SqliteStore {
    /// Runs one changing statement and, if it changed a row, writes `log` in the same
    /// transaction; `false` (and nothing written) if no row matched.
    async fn change_logged(&self, statement: Statement<'_>, log: &ModEntry) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if statement.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_log(&mut tx, log).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Lifts a mute or ban still in force (`table` is `mutes` or `bans`, our own
    /// constant); `false` if there was none.
    async fn delete_restriction(
        &self,
        table: &'static str,
        room_id: i64,
        user: UserId,
        log: &ModEntry,
    ) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {table} WHERE room_id = ? AND user_id = ? AND (until IS NULL OR until > ?)");
        let statement = sqlx::query(&sql).bind(room_id).bind(user.0).bind(now_ms());
        self.change_logged(statement, log).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if let Some((path, dev, ino)) = &self.file {
            match file_identity(path) {
                Some((_, now_dev, now_ino)) if now_dev == *dev && now_ino == *ino => {}
                _ => return Err(StoreError::Unavailable(format!("{} was removed or replaced", path.display()))),
            }
        }
        if self.health.proven_within(PROVEN_FOR) {
            // A commit just succeeded: only the readers are left to check.
            sqlx::query("SELECT 1").execute(&self.reads).await?;
            return Ok(());
        }
        self.writer.heartbeat().await
    }

    async fn insert_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
        role: Role,
        invite: Option<&[u8]>,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        // A name is one namespace: a new username may not be anyone's display name, and a
        // display name may not be anyone's username or display name (case folded).
        let display_fold = crate::auth::fold_name(display_name);
        let in_use = |name: String| {
            sqlx::query_scalar::<_, i64>("SELECT 1 FROM users WHERE username = ? OR display_fold = ? LIMIT 1")
                .bind(name.clone())
                .bind(name)
        };
        if in_use(username.to_string()).fetch_optional(&mut *tx).await?.is_some() {
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        }
        if display_fold != username && in_use(display_fold.clone()).fetch_optional(&mut *tx).await?.is_some() {
            tx.rollback().await?;
            return Err(StoreError::NameInUse);
        }
        if let Some(code_hash) = invite {
            // One use spent with the account it makes: a refused name spends nothing.
            let spent = sqlx::query(
                "UPDATE invites SET uses_left = uses_left - 1 \
                 WHERE code_hash = ? AND uses_left > 0 AND (expires_at IS NULL OR expires_at > ?)",
            )
            .bind(code_hash)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            if spent.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(StoreError::NotFound);
            }
        }
        let result = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, display_fold, password_hash, role, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(username)
        .bind(display_name)
        .bind(&display_fold)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        match result {
            Ok(id) => {
                tx.commit().await?;
                Ok(UserRecord {
                    id: UserId(id),
                    user: User { username: username.to_string(), display_name: display_name.to_string(), role },
                })
            }
            Err(err) if rows::is_unique_violation(&err) => {
                tx.rollback().await?;
                Err(StoreError::Conflict)
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn fetch_user_region(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let region = sqlx::query_scalar("SELECT region FROM users WHERE id = ?")
            .bind(user.0)
            .fetch_optional(&self.reads)
            .await?;
        Ok(region.flatten())
    }

    async fn update_user_region(&self, user: UserId, region: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET region = ? WHERE id = ?").bind(region).bind(user.0).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_block(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("INSERT INTO blocks (blocker_id, blocked_id, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(blocker.0)
                .bind(blocked.0)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_block(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn fetch_blocks(&self, blocker: UserId) -> Result<Vec<UserRecord>, StoreError> {
        let found = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role FROM blocks b JOIN users u ON u.id = b.blocked_id \
             WHERE b.blocker_id = ? ORDER BY u.username",
        )
        .bind(blocker.0)
        .fetch_all(&self.reads)
        .await?;
        Ok(found.iter().map(rows::user).collect::<Result<_, _>>()?)
    }

    async fn fetch_all_blocks(&self) -> Result<Vec<(UserId, String)>, StoreError> {
        let found: Vec<(i64, String)> =
            sqlx::query_as("SELECT b.blocker_id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id")
                .fetch_all(&self.reads)
                .await?;
        Ok(found.into_iter().map(|(blocker, username)| (UserId(blocker), username)).collect())
    }

    async fn fetch_messages_by(
        &self,
        author: UserId,
        after: (RoomId, i64),
        limit: u32,
    ) -> Result<Vec<(RoomId, Message)>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, m.room_id, r.name AS room_name FROM messages m \
             JOIN users u ON u.id = m.author_id JOIN rooms r ON r.id = m.room_id \
             WHERE m.author_id = ? AND (m.room_id, m.seq) > (?, ?) \
             ORDER BY m.room_id, m.seq LIMIT ?"
        );
        // A row value, so each page starts with one seek in `messages_author`: spelt out
        // as `room_id > ? OR (room_id = ? AND seq > ?)`, every page scanned the member's
        // messages from the start of the room again (a hundred thousand took a minute).
        let found = sqlx::query(&sql)
            .bind(author.0)
            .bind(after.0 .0)
            .bind(after.1)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        let mut page = Vec::with_capacity(found.len());
        for row in &found {
            let room: String = row.try_get("room_name")?;
            page.push((RoomId(row.try_get("room_id")?), rows::message(&room, row)?));
        }
        Ok(page)
    }

    async fn fetch_reports_by(&self, reporter: UserId) -> Result<Vec<Report>, StoreError> {
        let sql = format!(
            "SELECT rm.name AS room_name, {REPORT_COLUMNS} JOIN rooms rm ON rm.id = r.room_id \
             WHERE r.reporter_id = ? ORDER BY r.id"
        );
        let found = sqlx::query(&sql).bind(reporter.0).fetch_all(&self.reads).await?;
        let mut reports = Vec::with_capacity(found.len());
        for row in &found {
            let room: String = row.try_get("room_name")?;
            reports.push(rows::report(&room, row)?);
        }
        Ok(reports)
    }

    async fn fetch_log_about(&self, username: &str) -> Result<Vec<LogAbout>, StoreError> {
        let found = sqlx::query(
            "SELECT l.id, l.room_id, l.actor_id, l.action, u.username AS actor, u.role AS actor_role, l.target, l.seq, \
             l.reason, l.until, l.ts, rm.name AS room_name \
             FROM mod_log l JOIN users u ON u.id = l.actor_id LEFT JOIN rooms rm ON rm.id = l.room_id \
             WHERE l.target = ? ORDER BY l.id DESC",
        )
        .bind(username)
        .fetch_all(&self.reads)
        .await?;
        let mut entries = Vec::with_capacity(found.len());
        for row in &found {
            let room_name: Option<String> = row.try_get("room_name")?;
            let role: String = row.try_get("actor_role")?;
            entries.push(LogAbout {
                id: row.try_get("id")?,
                room: room_name.map(|name| row.try_get("room_id").map(|id| (RoomId(id), name))).transpose()?,
                entry: rows::mod_action(row)?,
                actor: UserId(row.try_get("actor_id")?),
                actor_role: Role::parse(&role).unwrap_or(Role::Member),
            });
        }
        Ok(entries)
    }

    async fn insert_appeal(
        &self,
        user: UserId,
        sanction_id: i64,
        text: &str,
        log: &ModEntry,
    ) -> Result<AppealRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        // The partial unique index allows one open appeal per sanction.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO appeals (log_id, user_id, text, ts) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(sanction_id)
        .bind(user.0)
        .bind(text)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        };
        insert_log(&mut tx, log).await?;
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let appeal = rows::appeal(&row)?;
        tx.commit().await?;
        Ok(appeal)
    }

    async fn fetch_open_appeals(
        &self,
        room: Option<RoomId>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Appeal>, StoreError> {
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} WHERE a.outcome IS NULL AND l.room_id = ? AND a.id > ? ORDER BY a.id LIMIT ?"
        );
        let found = sqlx::query(&sql)
            .bind(rows::scope_id(room))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        Ok(found.iter().map(|row| rows::appeal(row).map(|record| record.appeal)).collect::<Result<_, _>>()?)
    }

    async fn fetch_appeal(&self, id: i64) -> Result<Option<AppealRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = ?"))
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(rows::appeal).transpose()?)
    }

    async fn resolve_appeal(
        &self,
        id: i64,
        outcome: AppealOutcome,
        note: Option<&str>,
        log: &ModEntry,
        lift: Option<&Lift>,
    ) -> Result<Option<(Appeal, bool)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE appeals SET outcome = ?, note = ?, resolved_by = ?, resolved_at = ? \
             WHERE id = ? AND outcome IS NULL",
        )
        .bind(outcome.as_str())
        .bind(note)
        .bind(log.actor.0)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut lifted = false;
        if let Some(lift) = lift {
            let sql = format!(
                "DELETE FROM {} WHERE room_id = ? AND user_id = ? AND (until IS NULL OR until > ?)",
                lift.table()
            );
            let scope = rows::ban_scope_id(lift.scope);
            lifted =
                sqlx::query(&sql).bind(scope).bind(lift.user.0).bind(now_ms()).execute(&mut *tx).await?.rows_affected()
                    > 0;
            if lifted {
                insert_log(&mut tx, &lift.log).await?;
            }
        }
        insert_log(&mut tx, log).await?;
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let appeal = rows::appeal(&row)?.appeal;
        tx.commit().await?;
        Ok(Some((appeal, lifted)))
    }

    async fn fetch_global_moderators(&self) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE role IN ('moderator', 'organiser', 'admin') ORDER BY id")
                .fetch_all(&self.reads)
                .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn fetch_appeals_by(&self, user: UserId) -> Result<Vec<Appeal>, StoreError> {
        let found = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.user_id = ? ORDER BY a.id"))
            .bind(user.0)
            .fetch_all(&self.reads)
            .await?;
        Ok(found.iter().map(|row| rows::appeal(row).map(|record| record.appeal)).collect::<Result<_, _>>()?)
    }

    async fn insert_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("INSERT INTO join_requests (room_id, user_id, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(room.0)
                .bind(user.0)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn fetch_join_requests(&self, room: RoomId) -> Result<Vec<(UserRecord, i64)>, StoreError> {
        let found = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, j.ts FROM join_requests j \
             JOIN users u ON u.id = j.user_id WHERE j.room_id = ? ORDER BY j.ts, u.id",
        )
        .bind(room.0)
        .fetch_all(&self.reads)
        .await?;
        Ok(found.iter().map(|row| Ok((rows::user(row)?, row.try_get("ts")?))).collect::<Result<_, sqlx::Error>>()?)
    }

    async fn delete_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM join_requests WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn fetch_members_joined_since(&self, room: RoomId, seq: i64) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM memberships WHERE room_id = ? AND joined_seq >= ?")
            .bind(room.0)
            .bind(seq)
            .fetch_all(&self.reads)
            .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn fetch_joined_seq(&self, room: RoomId, user: UserId) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT joined_seq FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&self.reads)
            .await?)
    }

    async fn insert_invite(
        &self,
        code_hash: &[u8],
        uses: u32,
        expires_at: Option<i64>,
        created_by: Option<UserId>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO invites (code_hash, uses_left, expires_at, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(code_hash)
        .bind(i64::from(uses))
        .bind(expires_at)
        .bind(created_by.map(|user| user.0))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn erase_user(&self, user: UserId) -> Result<Erased, StoreError> {
        let mut tx = self.begin_write().await?;
        let found: Option<(String, String)> = sqlx::query_as("SELECT username, password_hash FROM users WHERE id = ?")
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
        // An erased account has no password hash: it cannot be erased again.
        let Some((old, _)) = found.filter(|(_, hash)| !hash.is_empty()) else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let new = format!("{}{}", crate::auth::ERASED_PREFIX, user.0);
        let rooms: Vec<String> = sqlx::query_scalar(
            "SELECT r.name FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ? ORDER BY r.name",
        )
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await?;
        let blocks: Vec<(i64, String)> = sqlx::query_as(
            "SELECT b.blocker_id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id \
             WHERE b.blocker_id = ? OR b.blocked_id = ?",
        )
        .bind(user.0)
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await?;
        let blocks = blocks.into_iter().map(|(blocker, blocked)| (UserId(blocker), blocked)).collect();
        let mine = [
            "UPDATE messages SET deleted = 1, body = NULL, cw_note = NULL, client_msg_id = NULL, mentions = NULL \
             WHERE author_id = ?",
            "DELETE FROM reactions WHERE user_id = ?",
            "DELETE FROM memberships WHERE user_id = ?",
            "DELETE FROM read_markers WHERE user_id = ?",
            "DELETE FROM room_hosts WHERE user_id = ?",
            "DELETE FROM blocks WHERE blocker_id = ?1 OR blocked_id = ?1",
            "DELETE FROM appeals WHERE user_id = ?",
            "DELETE FROM join_requests WHERE user_id = ?",
            "DELETE FROM sessions WHERE user_id = ?",
            // Their votes stop counting, and their questions go (with others' votes on them).
            "UPDATE questions SET votes = votes - 1 WHERE id IN (SELECT question_id FROM question_votes WHERE user_id = ?)",
            "DELETE FROM question_votes WHERE user_id = ?",
            "DELETE FROM questions WHERE author_id = ?",
        ];
        for statement in mine {
            sqlx::query(statement).bind(user.0).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE mod_log SET target = ? WHERE target = ?").bind(&new).bind(&old).execute(&mut *tx).await?;
        // Others' messages keep their words; the list of whom they named changes name.
        sqlx::query(
            "UPDATE messages SET mentions = trim(replace(' ' || mentions || ' ', ?, ?)) \
             WHERE instr(' ' || mentions || ' ', ?) > 0",
        )
        .bind(format!(" {old} "))
        .bind(format!(" {new} "))
        .bind(format!(" {old} "))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET username = ?, display_name = ?, display_fold = ?, password_hash = '', \
             region = NULL, cw_prefs = 0 WHERE id = ?",
        )
        .bind(&new)
        .bind(&new)
        .bind(&new)
        .bind(user.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // As for a deletion: the words taken back leave the write-ahead log too.
        write::checkpoint_truncate(&self.writes).await;
        Ok(Erased { old, new, rooms, blocks })
    }

    async fn fetch_preferences(&self, user: UserId) -> Result<CwPreferences, StoreError> {
        let bits: Option<i64> = sqlx::query_scalar("SELECT cw_prefs FROM users WHERE id = ?")
            .bind(user.0)
            .fetch_optional(&self.reads)
            .await?;
        Ok(CwPreferences(bits.and_then(|bits| u16::try_from(bits).ok()).unwrap_or_default()))
    }

    async fn update_preferences(&self, user: UserId, changes: CwChanges) -> Result<CwPreferences, StoreError> {
        let mut tx = self.begin_write().await?;
        let bits: i64 =
            sqlx::query_scalar("UPDATE users SET cw_prefs = (cw_prefs & ~?) | ? WHERE id = ? RETURNING cw_prefs")
                .bind(i64::from(changes.mask))
                .bind(i64::from(changes.bits))
                .bind(user.0)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(CwPreferences(u16::try_from(bits).unwrap_or_default()))
    }

    async fn insert_care_alert(
        &self,
        room: &RoomRecord,
        seq: i64,
        kind: CareKind,
        by: Option<UserId>,
        note: Option<&str>,
    ) -> Result<CareAlert, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO care_alerts (room_id, seq, author_id, kind, by_id, note, ts) \
             SELECT room_id, seq, author_id, ?, ?, ?, ? FROM messages WHERE room_id = ? AND seq = ? RETURNING id",
        )
        .bind(kind.as_str())
        .bind(by.map(|user| user.0))
        .bind(note)
        .bind(now_ms())
        .bind(room.id.0)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let row = sqlx::query(&format!("SELECT {CARE_COLUMNS} WHERE c.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let alert = rows::care_alert(&room.name, &row)?;
        tx.commit().await?;
        Ok(alert)
    }

    async fn fetch_care_alerts(
        &self,
        room: &RoomRecord,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<CareAlert>, StoreError> {
        let sql = format!(
            "SELECT {CARE_COLUMNS} WHERE c.room_id = ? AND c.acked_at IS NULL AND c.id > ? ORDER BY c.id LIMIT ?"
        );
        let found =
            sqlx::query(&sql).bind(room.id.0).bind(after_id).bind(i64::from(limit)).fetch_all(&self.reads).await?;
        Ok(found.iter().map(|row| rows::care_alert(&room.name, row)).collect::<Result<_, _>>()?)
    }

    async fn ack_care_alert(
        &self,
        room: &RoomRecord,
        id: i64,
        log: &ModEntry,
    ) -> Result<Option<CareAlert>, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE care_alerts SET acked_by = ?, acked_at = ? WHERE id = ? AND room_id = ? AND acked_at IS NULL",
        )
        .bind(log.actor.0)
        .bind(now_ms())
        .bind(id)
        .bind(room.id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {CARE_COLUMNS} WHERE c.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let alert = rows::care_alert(&room.name, &row)?;
        // The log names the message and its author, whatever the caller knew.
        let log = ModEntry { seq: Some(alert.seq), target: Some(alert.author.username.clone()), ..log.clone() };
        insert_log(&mut tx, &log).await?;
        tx.commit().await?;
        Ok(Some(alert))
    }

    async fn fetch_questions_by(&self, author: UserId) -> Result<Vec<Question>, StoreError> {
        let sql = String::from(&format!(
            "SELECT r.name AS room_name, {QUESTION_COLUMNS} JOIN rooms r ON r.id = q.room_id WHERE q.author_id = ? ORDER BY q.id"
        ));
        let found = sqlx::query(&sql).bind(author.0).bind(author.0).fetch_all(&self.reads).await?;
        let mut questions = Vec::with_capacity(found.len());
        for row in &found {
            let room: String = row.try_get("room_name")?;
            questions.push(rows::question(&room, row)?);
        }
        Ok(questions)
    }

    async fn insert_question(
        &self,
        room: &RoomRecord,
        author: UserId,
        body: &str,
        anonymous: bool,
    ) -> Result<Question, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(&String::from(
            "INSERT INTO questions (room_id, author_id, body, anonymous, ts) VALUES (?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(room.id.0)
        .bind(author.0)
        .bind(body)
        .bind(anonymous)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(&String::from(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ?")))
            .bind(author.0)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let question = rows::question(&room.name, &row)?;
        tx.commit().await?;
        Ok(question)
    }

    async fn fetch_question(&self, room: &RoomRecord, id: i64, viewer: UserId) -> Result<Option<Question>, StoreError> {
        let row = sqlx::query(&String::from(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ? AND q.room_id = ?")))
            .bind(viewer.0)
            .bind(id)
            .bind(room.id.0)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| rows::question(&room.name, &row)).transpose()?)
    }

    async fn fetch_questions(
        &self,
        room: &RoomRecord,
        ranks: (i64, i64),
        after_id: Option<i64>,
        limit: u32,
        viewer: UserId,
    ) -> Result<Vec<Question>, StoreError> {
        // Keyset paging: the rows after the `after_id` question's place in the order.
        let after = match after_id {
            None => (-1, i64::MIN, i64::MIN, i64::MIN),
            Some(id) => {
                let sql = String::from(&format!(
                    "SELECT {QUESTION_RANK} AS rank, q.votes, q.ts FROM questions q WHERE q.id = ? AND q.room_id = ?"
                ));
                let found: Option<(i64, i64, i64)> =
                    sqlx::query_as(&sql).bind(id).bind(room.id.0).fetch_optional(&self.reads).await?;
                let (rank, votes, ts) = found.ok_or(StoreError::NotFound)?;
                (rank, -votes, ts, id)
            }
        };
        let sql = String::from(&format!(
            "SELECT {QUESTION_COLUMNS} WHERE q.room_id = ? AND {QUESTION_RANK} BETWEEN ? AND ? \
             AND ({QUESTION_RANK}, -q.votes, q.ts, q.id) > (?, ?, ?, ?) \
             ORDER BY {QUESTION_RANK}, q.votes DESC, q.ts, q.id LIMIT ?"
        ));
        let found = sqlx::query(&sql)
            .bind(viewer.0)
            .bind(room.id.0)
            .bind(ranks.0)
            .bind(ranks.1)
            .bind(after.0)
            .bind(after.1)
            .bind(after.2)
            .bind(after.3)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        Ok(found.iter().map(|row| rows::question(&room.name, row)).collect::<Result<_, _>>()?)
    }

    async fn vote_question(
        &self,
        room: &RoomRecord,
        id: i64,
        user: UserId,
        up: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let open: Option<i64> = sqlx::query_scalar(&String::from(
            "SELECT id FROM questions WHERE id = ? AND room_id = ? AND status = 'approved'",
        ))
        .bind(id)
        .bind(room.id.0)
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (change, by) = if up {
            ("INSERT INTO question_votes (question_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", 1)
        } else {
            ("DELETE FROM question_votes WHERE question_id = ? AND user_id = ?", -1)
        };
        let changed = sqlx::query(&String::from(change)).bind(id).bind(user.0).execute(&mut *tx).await?.rows_affected();
        // A second upvote (or an unvote without a vote) changes nothing.
        if changed == 1 {
            sqlx::query(&String::from("UPDATE questions SET votes = votes + ? WHERE id = ?"))
                .bind(by)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let votes: i64 = sqlx::query_scalar(&String::from("SELECT votes FROM questions WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(votes))
    }

    async fn fetch_question_votes(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let votes = sqlx::query_scalar(&String::from("SELECT votes FROM questions WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(votes)
    }

    async fn update_question_status(
        &self,
        room: &RoomRecord,
        id: i64,
        status: QuestionStatus,
    ) -> Result<Option<(QuestionStatus, Question)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query_scalar(&String::from("SELECT status FROM questions WHERE id = ? AND room_id = ?"))
                .bind(id)
                .bind(room.id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before.and_then(|text| QuestionStatus::parse(&text)) else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(&String::from("UPDATE questions SET status = ? WHERE id = ?"))
            .bind(status.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&String::from(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ?")))
            .bind(0_i64)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let question = rows::question(&room.name, &row)?;
        tx.commit().await?;
        Ok(Some((before, question)))
    }

    async fn update_room_phase(
        &self,
        room: RoomId,
        phase: Phase,
        schedule: &[(Phase, i64)],
    ) -> Result<RoomRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE rooms SET phase = ?, schedule = ? WHERE id = ?")
            .bind(phase.as_str())
            .bind(super::schedule_text(schedule))
            .bind(room.0)
            .execute(&mut *tx)
            .await?;
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    async fn advance_room_phase(
        &self,
        room: RoomId,
        expected: &[(Phase, i64)],
        phase: Phase,
        rest: &[(Phase, i64)],
    ) -> Result<Option<RoomRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query("UPDATE rooms SET phase = ?, schedule = ? WHERE id = ? AND schedule = ?")
            .bind(phase.as_str())
            .bind(super::schedule_text(rest))
            .bind(room.0)
            .bind(super::schedule_text(expected))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn fetch_scheduled_rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.schedule <> ''")).fetch_all(&self.reads).await?;
        Ok(rows.iter().map(rows::room).collect::<Result<_, _>>()?)
    }

    async fn update_host_rule(&self, room: RoomId, required: bool, log: &ModEntry) -> Result<RoomRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE rooms SET requires_host = ? WHERE id = ?")
            .bind(required)
            .bind(room.0)
            .execute(&mut *tx)
            .await?;
        insert_log(&mut tx, log).await?;
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    async fn update_duty(&self, room: RoomId, user: UserId, on: bool) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = if on {
            sqlx::query("INSERT INTO room_hosts (room_id, user_id, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .bind(room.0)
                .bind(user.0)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
        } else {
            sqlx::query("DELETE FROM room_hosts WHERE room_id = ? AND user_id = ?")
                .bind(room.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await?
        };
        commit_if_changed(tx, done.rows_affected()).await
    }

    async fn fetch_duty(&self) -> Result<Vec<(RoomId, String, UserRecord)>, StoreError> {
        let found = sqlx::query(
            "SELECT h.room_id, r.name AS room_name, u.id, u.username, u.display_name, u.role FROM room_hosts h \
             JOIN users u ON u.id = h.user_id JOIN rooms r ON r.id = h.room_id ORDER BY h.room_id, h.since",
        )
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| Ok((RoomId(row.try_get("room_id")?), row.try_get("room_name")?, rows::user(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn insert_mod_log(&self, log: &ModEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_log(&mut tx, log).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query("SELECT id, username, display_name, role, password_hash FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.reads)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Credentials { record: rows::user(&row)?, password_hash: row.try_get("password_hash")? }))
    }

    async fn update_user_role(
        &self,
        username: &str,
        role: Role,
        log: Option<&ModEntry>,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let row =
            sqlx::query("UPDATE users SET role = ? WHERE username = ? RETURNING id, username, display_name, role")
                .bind(role.as_str())
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let record = rows::user(&row)?;
        if let Some(log) = log {
            insert_log(&mut tx, log).await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn fetch_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, username, display_name, role FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| rows::user(&row)).transpose()?)
    }

    async fn insert_token(&self, token_hash: &[u8], user: UserId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, used_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user.0)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_token_user(
        &self,
        token_hash: &[u8],
        rules: TokenRules,
        now: i64,
    ) -> Result<Option<(UserRecord, i64)>, StoreError> {
        // A limit of 0 means none: the bound then lies before any token.
        let bound = |limit: i64| if limit > 0 { now - limit } else { i64::MIN };
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, coalesce(s.used_at, s.created_at) AS used_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND coalesce(s.used_at, s.created_at) > ? AND s.created_at > ?",
        )
        .bind(token_hash)
        .bind(bound(rules.idle_ms))
        .bind(bound(rules.max_ms))
        .fetch_optional(&self.reads)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::user(&row)?, row.try_get("used_at")?)))
    }

    async fn touch_token(&self, token_hash: &[u8], now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE sessions SET used_at = ? WHERE token_hash = ? AND coalesce(used_at, 0) < ?")
            .bind(now)
            .bind(token_hash)
            .bind(now - 3600 * 1000)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected()).await?;
        Ok(())
    }

    async fn delete_token(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(token_hash).execute(&mut *tx).await?;
        commit_if_changed(tx, done.rows_affected()).await
    }

    async fn delete_user_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user.0).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn fetch_user_by_id(&self, user: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, username, display_name, role FROM users WHERE id = ?")
            .bind(user.0)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| rows::user(&row)).transpose()?)
    }

    async fn insert_change(&self, user: UserId, change: Change) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO changes (user_id, kind, at) VALUES (?, ?, ?)")
            .bind(user.0)
            .bind(change.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM changes WHERE at < ?").bind(now - 24 * 3600 * 1000).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_changes(&self, after: Option<i64>) -> Result<(i64, Vec<(UserId, Change)>), StoreError> {
        let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM changes").fetch_one(&self.reads).await?;
        let Some(after) = after else { return Ok((newest, Vec::new())) };
        let rows: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT id, user_id, kind FROM changes WHERE id > ? AND id <= ? ORDER BY id")
                .bind(after)
                .bind(newest)
                .fetch_all(&self.reads)
                .await?;
        let changes =
            rows.into_iter().filter_map(|(_, user, kind)| Some((UserId(user), Change::parse(&kind)?))).collect();
        Ok((newest.max(after), changes))
    }

    async fn insert_room(&self, room: &NewRoom) -> Result<RoomRecord, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO rooms (name, topic, kind, owner_id, starts_at, ends_at, capacity, created_at, requires_host, \
             private, since_join, phase, viewers, session_start, session_end, time_zone, schedule) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&room.name)
        .bind(&room.topic)
        .bind(room.kind.as_str())
        .bind(room.owner.0)
        .bind(room.starts_at)
        .bind(room.ends_at)
        .bind(room.capacity.map(i64::from))
        .bind(now)
        .bind(room.requires_host)
        .bind(room.private)
        .bind(room.since_join)
        .bind(room.first_phase().map(Phase::as_str))
        .bind(room.viewers)
        .bind(room.session.map(|(start, _)| start))
        .bind(room.session.map(|(_, end)| end))
        .bind(&room.time_zone)
        .bind(super::schedule_text(&room.schedule))
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id")?,
            Err(err) if rows::is_unique_violation(&err) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict);
            }
            Err(err) => return Err(err.into()),
        };
        sqlx::query("INSERT INTO memberships (room_id, user_id, joined_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(room.owner.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    async fn fetch_room(&self, name: &str) -> Result<Option<RoomRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.name = ?"))
            .bind(name)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| rows::room(&row)).transpose()?)
    }

    async fn fetch_rooms(
        &self,
        after: Option<&str>,
        limit: u32,
        viewer: Option<UserId>,
    ) -> Result<Vec<RoomRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} WHERE r.name > ? AND (r.private = 0 OR ? IS NULL OR EXISTS \
             (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = ?)) ORDER BY r.name LIMIT ?"
        ))
        .bind(after.unwrap_or(""))
        .bind(viewer.map(|user| user.0))
        .bind(viewer.map(|user| user.0))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(rows::room).collect::<Result<_, _>>()?)
    }

    async fn insert_membership(&self, room: &RoomRecord, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Checked inside the writing transaction: a ban committed before this join
        // always stops it, however the two requests interleave.
        if let Some(ban) = ban_in_force(&mut *tx, [room.id.0, 0], user, now_ms()).await? {
            tx.rollback().await?;
            return Err(StoreError::Banned(ban));
        }
        let exists = sqlx::query("SELECT 1 FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room.id.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut full = false;
        if let Some(capacity) = room.capacity {
            // Counted inside the writing transaction, so two last joiners cannot both fit.
            let members: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE room_id = ? AND room_role <> 'viewer'")
                    .bind(room.id.0)
                    .fetch_one(&mut *tx)
                    .await?;
            if members >= i64::from(capacity) && !room.viewers {
                tx.rollback().await?;
                return Err(StoreError::Full);
            }
            full = members >= i64::from(capacity);
        }
        // Beyond a summit's capacity, as a viewer.
        sqlx::query(
            "INSERT INTO memberships (room_id, user_id, joined_at, joined_seq, room_role) \
             SELECT id, ?, ?, last_seq, ? FROM rooms WHERE id = ?",
        )
        .bind(user.0)
        .bind(now_ms())
        .bind(if full { "viewer" } else { "member" })
        .bind(room.id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM join_requests WHERE room_id = ? AND user_id = ?")
            .bind(room.id.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        // What was said before joining is not unread.
        sqlx::query(
            "INSERT INTO read_markers (room_id, user_id, seq) SELECT id, ?, last_seq FROM rooms WHERE id = ? \
             ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq",
        )
        .bind(user.0)
        .bind(room.id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_membership(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected()).await
    }

    async fn fetch_members(&self, room: RoomId) -> Result<Vec<(UserRecord, RoomRole)>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, m.room_role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.room_id = ? ORDER BY u.username",
        )
        .bind(room.0)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| Ok((rows::user(row)?, rows::parse_room_role(&row.try_get::<String, _>("room_role")?)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn update_read_marker(&self, room: RoomId, user: UserId, seq: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        // Clamped to the room's last message, and only ever forward.
        let marker: Option<i64> = sqlx::query_scalar(
            "INSERT INTO read_markers (room_id, user_id, seq) SELECT id, ?, min(?, last_seq) FROM rooms WHERE id = ? \
             ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > read_markers.seq \
             RETURNING seq",
        )
        .bind(user.0)
        .bind(seq)
        .bind(room.0)
        .fetch_optional(&mut *tx)
        .await?;
        match marker {
            Some(marker) => {
                tx.commit().await?;
                Ok(Some(marker))
            }
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    async fn fetch_unread(&self, room: RoomId, user: UserId, cap: u32) -> Result<Unread, StoreError> {
        // `mentions` is space-separated usernames; instr, not LIKE, as `_` is a username
        // character and a LIKE wildcard.
        let row = sqlx::query(
            "SELECT count(*) AS messages, coalesce(sum(named), 0) AS mentions FROM ( \
                 SELECT m.mentions IS NOT NULL AND instr(' ' || m.mentions || ' ', \
                     ' ' || (SELECT username FROM users WHERE id = ?2) || ' ') > 0 AS named \
                 FROM messages m WHERE m.room_id = ?1 AND m.author_id != ?2 \
                 AND m.deleted = 0 AND m.seq > coalesce( \
                     (SELECT seq FROM read_markers WHERE room_id = ?1 AND user_id = ?2), \
                     (SELECT last_seq FROM rooms WHERE id = ?1)) \
                 LIMIT ?3)",
        )
        .bind(room.0)
        .bind(user.0)
        .bind(i64::from(cap))
        .fetch_one(&self.reads)
        .await?;
        let count = |column: &str| -> Result<u32, sqlx::Error> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(cap))
        };
        Ok(Unread { messages: count("messages")?, mentions: count("mentions")? })
    }

    async fn search_messages(
        &self,
        user: UserId,
        room: Option<RoomId>,
        query: &str,
        before: Option<SearchCursor>,
        limit: u32,
    ) -> Result<Vec<(Message, SearchCursor)>, StoreError> {
        let Some(expression) = fts_expression(query) else {
            return Ok(Vec::new());
        };
        let before = before.unwrap_or(SearchCursor { ts: i64::MAX, key: i64::MAX });
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, r.name AS room_name, s.rowid AS key \
             FROM message_search s \
             JOIN messages m ON m.room_id = (s.rowid >> 32) AND m.seq = (s.rowid & 4294967295) \
             JOIN users u ON u.id = m.author_id \
             JOIN rooms r ON r.id = m.room_id \
             JOIN memberships ms ON ms.room_id = m.room_id AND ms.user_id = ?2 \
             WHERE message_search MATCH ?1 AND m.deleted = 0 AND (?3 IS NULL OR m.room_id = ?3) \
             AND (r.since_join = 0 OR m.seq > ms.joined_seq) \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = m.room_id AND b.user_id = ?2 \
                             AND (b.until IS NULL OR b.until > ?4)) \
             AND (m.ts < ?5 OR (m.ts = ?5 AND s.rowid < ?6)) \
             ORDER BY m.ts DESC, s.rowid DESC LIMIT ?7"
        );
        let rows = sqlx::query(&sql)
            .bind(expression)
            .bind(user.0)
            .bind(room.map(|r| r.0))
            .bind(now_ms())
            .bind(before.ts)
            .bind(before.key)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|row| {
                let message = rows::message(&row.try_get::<String, _>("room_name")?, row)?;
                let ts: i64 = row.try_get("ts")?;
                Ok((message, SearchCursor { ts, key: row.try_get("key")? }))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn fetch_members_named(&self, room: RoomId, usernames: &[String]) -> Result<Vec<UserRecord>, StoreError> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let places = vec!["?"; usernames.len()].join(", ");
        let sql = format!(
            "SELECT u.id, u.username, u.display_name, u.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = ? AND u.username IN ({places}) ORDER BY u.username"
        );
        let mut query = sqlx::query(&sql).bind(room.0);
        for name in usernames {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.reads).await?;
        rows.iter().map(rows::user).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    async fn fetch_user_rooms(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        // A ban ends the membership in its own transaction; the filter also covers
        // memberships left behind by versions that let a join race a ban.
        let names = sqlx::query_scalar(
            "SELECT r.name FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ? \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = m.room_id AND b.user_id = m.user_id \
                             AND (b.until IS NULL OR b.until > ?)) \
             ORDER BY r.name",
        )
        .bind(user.0)
        .bind(now_ms())
        .fetch_all(&self.reads)
        .await?;
        Ok(names)
    }

    async fn fetch_room_role(&self, room: RoomId, user: UserId) -> Result<Option<RoomRole>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT room_role FROM memberships WHERE room_id = ? AND user_id = ?")
                .bind(room.0)
                .bind(user.0)
                .fetch_optional(&self.reads)
                .await?;
        role.map(|r| rows::parse_room_role(&r)).transpose().map_err(StoreError::from)
    }

    async fn fetch_room_moderators(&self, room: RoomId) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM memberships WHERE room_id = ? AND room_role = 'moderator'")
                .bind(room.0)
                .fetch_all(&self.reads)
                .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn update_room_role(
        &self,
        room: RoomId,
        user: UserId,
        role: RoomRole,
        log: &ModEntry,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query("UPDATE memberships SET room_role = ? WHERE room_id = ? AND user_id = ?")
            .bind(role.as_str())
            .bind(room.0)
            .bind(user.0);
        if self.change_logged(statement, log).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn upsert_mute(
        &self,
        room: RoomId,
        user: UserId,
        mute: &Restriction,
        log: &ModEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        upsert_restriction(&mut tx, "mutes", room.0, user, mute, log).await?;
        insert_log(&mut tx, log).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_mute(&self, room: RoomId, user: UserId, log: &ModEntry) -> Result<bool, StoreError> {
        self.delete_restriction("mutes", room.0, user, log).await
    }

    async fn fetch_active_mutes(&self, now: i64) -> Result<Vec<MuteRecord>, StoreError> {
        let rows = sqlx::query("SELECT room_id, user_id, until, reason FROM mutes WHERE until IS NULL OR until > ?")
            .bind(now)
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(rows::mute).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    async fn fetch_own_reactions(
        &self,
        room: RoomId,
        user: UserId,
        seqs: (i64, i64),
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, emoji FROM reactions WHERE room_id = ? AND seq BETWEEN ? AND ? AND user_id = ? ORDER BY seq",
        )
        .bind(room.0)
        .bind(seqs.0)
        .bind(seqs.1)
        .bind(user.0)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, row.try_get("emoji")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn fetch_room_sanctions(&self, room: RoomId, now: i64) -> Result<Vec<ActiveSanction>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.kind, u.id, u.username, u.display_name, u.role, s.until, s.reason, a.username AS by_name FROM ( \
               SELECT 'ban' AS kind, user_id, until, reason, actor_id FROM bans WHERE room_id = ?1 \
               UNION ALL SELECT 'mute', user_id, until, reason, actor_id FROM mutes WHERE room_id = ?1 \
             ) s JOIN users u ON u.id = s.user_id JOIN users a ON a.id = s.actor_id \
             WHERE s.until IS NULL OR s.until > ?2 \
             ORDER BY s.until IS NULL, s.until, u.username, s.kind",
        )
        .bind(room.0)
        .bind(now)
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(rows::sanction).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    async fn delete_membership_logged(&self, room: RoomId, user: UserId, log: &ModEntry) -> Result<bool, StoreError> {
        let statement =
            sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?").bind(room.0).bind(user.0);
        self.change_logged(statement, log).await
    }

    async fn upsert_ban(
        &self,
        scope: BanScope,
        user: UserId,
        ban: &Restriction,
        log: &ModEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        upsert_restriction(&mut tx, "bans", rows::ban_scope_id(scope), user, ban, log).await?;
        let mut ended = false;
        if let BanScope::Room(room) = scope {
            let done = sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?")
                .bind(room.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            ended = done.rows_affected() > 0;
        }
        insert_log(&mut tx, log).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn fetch_sanction_imposer(
        &self,
        sanction: Sanction,
        scope: BanScope,
        user: UserId,
        now: i64,
    ) -> Result<Option<(UserId, Role)>, StoreError> {
        // Our own constant table names; the values are bound.
        let table = match sanction {
            Sanction::Mute => "mutes",
            Sanction::Ban => "bans",
        };
        let sql = format!(
            "SELECT u.id, u.role FROM {table} s JOIN users u ON u.id = s.actor_id \
             WHERE s.room_id = ? AND s.user_id = ? AND (s.until IS NULL OR s.until > ?)"
        );
        let row = sqlx::query(&sql)
            .bind(rows::ban_scope_id(scope))
            .bind(user.0)
            .bind(now)
            .fetch_optional(&self.reads)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        Ok(Some((UserId(row.try_get("id")?), rows::parse_role(&role)?)))
    }

    async fn delete_ban(&self, scope: BanScope, user: UserId, log: &ModEntry) -> Result<bool, StoreError> {
        self.delete_restriction("bans", rows::ban_scope_id(scope), user, log).await
    }

    async fn fetch_ban(&self, scope: BanScope, user: UserId, now: i64) -> Result<Option<Restriction>, StoreError> {
        let scope = rows::ban_scope_id(scope);
        Ok(ban_in_force(&self.reads, [scope, scope], user, now).await?)
    }

    async fn fetch_message_author(&self, room: RoomId, seq: i64) -> Result<Option<(UserRecord, bool)>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, m.deleted FROM messages m \
             JOIN users u ON u.id = m.author_id WHERE m.room_id = ? AND m.seq = ?",
        )
        .bind(room.0)
        .bind(seq)
        .fetch_optional(&self.reads)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::user(&row)?, row.try_get("deleted")?)))
    }

    async fn update_message_deleted(&self, room: RoomId, seq: i64, log: &ModEntry) -> Result<(), StoreError> {
        let statement = sqlx::query("UPDATE messages SET deleted = 1, body = NULL WHERE room_id = ? AND seq = ?")
            .bind(room.0)
            .bind(seq);
        if !self.change_logged(statement, log).await? {
            return Err(StoreError::NotFound);
        }
        // The body is zeroed in its page (secure_delete); empty the write-ahead log too,
        // so no older copy of the page stays in the file.
        write::checkpoint_truncate(&self.writes).await;
        Ok(())
    }

    async fn update_message_body(
        &self,
        room: &RoomRecord,
        seq: i64,
        author: &UserRecord,
        body: &str,
    ) -> Result<Message, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE messages SET body = ?, edited_at = ? WHERE room_id = ? AND seq = ? AND author_id = ? AND deleted = 0 \
             RETURNING seq, body, ts, client_msg_id, deleted, edited_at, reply_to, mentions, cw, cw_note",
        )
        .bind(body)
        .bind(now_ms())
        .bind(room.id.0)
        .bind(seq)
        .bind(author.id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let mut message = rows::message_by(&room.name, author.user.clone(), &row)?;
        message.reactions = reaction_counts(&mut *tx, room.id, seq, seq).await?.remove(&seq).unwrap_or_default();
        tx.commit().await?;
        // As for a deletion: the words taken back leave the write-ahead log too.
        write::checkpoint_truncate(&self.writes).await;
        Ok(message)
    }

    async fn update_message_cw(
        &self,
        room: &RoomRecord,
        seq: i64,
        cw: CwTags,
        cw_note: Option<&str>,
        log: &ModEntry,
    ) -> Result<Message, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("UPDATE messages SET cw = ?, cw_note = ? WHERE room_id = ? AND seq = ? AND deleted = 0")
                .bind(i64::from(cw.0))
                .bind(cw_note)
                .bind(room.id.0)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        }
        insert_log(&mut tx, log).await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.room_id = ? AND m.seq = ?"
        ))
        .bind(room.id.0)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        let mut message = rows::message(&room.name, &row)?;
        message.reactions = reaction_counts(&mut *tx, room.id, seq, seq).await?.remove(&seq).unwrap_or_default();
        tx.commit().await?;
        Ok(message)
    }

    async fn update_reaction(
        &self,
        room: RoomId,
        seq: i64,
        user: UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Option<Reactions>, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted: Option<bool> = sqlx::query_scalar("SELECT deleted FROM messages WHERE room_id = ? AND seq = ?")
            .bind(room.0)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        if deleted != Some(false) {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        }
        let sql = if add {
            "INSERT OR IGNORE INTO reactions (room_id, seq, emoji, user_id) VALUES (?, ?, ?, ?)"
        } else {
            "DELETE FROM reactions WHERE room_id = ? AND seq = ? AND emoji = ? AND user_id = ?"
        };
        let changed = sqlx::query(sql).bind(room.0).bind(seq).bind(emoji).bind(user.0).execute(&mut *tx).await?;
        if changed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let counts = reaction_counts(&mut *tx, room, seq, seq).await?.remove(&seq).unwrap_or_default();
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn update_room_settings(
        &self,
        room: RoomId,
        slow_mode_s: Option<u32>,
        locked: Option<bool>,
        log: &ModEntry,
    ) -> Result<RoomRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE rooms SET slow_mode_s = coalesce(?, slow_mode_s), locked = coalesce(?, locked) WHERE id = ?",
        )
        .bind(slow_mode_s.map(i64::from))
        .bind(locked)
        .bind(room.0)
        .execute(&mut *tx)
        .await?;
        insert_log(&mut tx, log).await?;
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = ?")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    async fn insert_report(
        &self,
        room: &RoomRecord,
        seq: i64,
        reporter: &UserRecord,
        reason: &str,
    ) -> Result<Report, StoreError> {
        let mut tx = self.begin_write().await?;
        // The snapshot is copied from the message in the same statement, so it is the
        // message exactly as it stood when the report was made.
        let id: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO reports (room_id, seq, reporter_id, reason, ts, author_id, body, message_ts) \
             SELECT room_id, seq, ?, ?, ?, author_id, body, ts FROM messages \
             WHERE room_id = ? AND seq = ? AND deleted = 0 RETURNING id",
        )
        .bind(reporter.id.0)
        .bind(reason)
        .bind(now_ms())
        .bind(room.id.0)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await;
        let id = match id {
            Ok(id) => id,
            Err(err) if rows::is_unique_violation(&err) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict);
            }
            Err(err) => return Err(err.into()),
        };
        let Some(id) = id else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let row = sqlx::query(&format!("SELECT {REPORT_COLUMNS} WHERE r.id = ?")).bind(id).fetch_one(&mut *tx).await?;
        let report = rows::report(&room.name, &row)?;
        tx.commit().await?;
        Ok(report)
    }

    async fn fetch_open_reports(
        &self,
        room: &RoomRecord,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Report>, StoreError> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} WHERE r.room_id = ? AND r.status = 'open' AND r.id > ? ORDER BY r.id LIMIT ?"
        );
        let rows =
            sqlx::query(&sql).bind(room.id.0).bind(after_id).bind(i64::from(limit)).fetch_all(&self.reads).await?;
        Ok(rows.iter().map(|row| rows::report(&room.name, row)).collect::<Result<_, _>>()?)
    }

    async fn resolve_report(&self, room: RoomId, id: i64, log: &ModEntry) -> Result<bool, StoreError> {
        let statement = sqlx::query(
            "UPDATE reports SET status = 'resolved', resolved_by = ?, note = ?, resolved_at = ? \
             WHERE id = ? AND room_id = ? AND status = 'open'",
        )
        .bind(log.actor.0)
        .bind(&log.reason)
        .bind(now_ms())
        .bind(id)
        .bind(room.0);
        self.change_logged(statement, log).await
    }

    async fn fetch_mod_log(&self, room: Option<RoomId>, limit: u32) -> Result<Vec<ModAction>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.action, u.username AS actor, l.target, l.seq, l.reason, l.until, l.ts FROM mod_log l \
             JOIN users u ON u.id = l.actor_id WHERE l.room_id = ? ORDER BY l.id DESC LIMIT ?",
        )
        .bind(rows::scope_id(room))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(rows::mod_action).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    async fn insert_message(&self, message: NewMessage) -> Result<StoredMessage, StoreError> {
        self.writer.insert_message(message).await
    }

    async fn fetch_messages(&self, room: &RoomRecord, range: HistoryRange) -> Result<Vec<Message>, StoreError> {
        let before = range.before.unwrap_or(i64::MAX);
        let after = range.after.unwrap_or(0);
        // Catching up reads forwards from `after`; otherwise read the newest backwards.
        let order = if range.after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.room_id = ? AND m.seq > ? AND m.seq < ? ORDER BY m.seq {order} LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(room.id.0)
            .bind(after)
            .bind(before)
            .bind(i64::from(range.limit))
            .fetch_all(&self.reads)
            .await?;
        let mut messages = rows.iter().map(|row| rows::message(&room.name, row)).collect::<Result<Vec<_>, _>>()?;
        if range.after.is_none() {
            messages.reverse();
        }
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            let mut counts = reaction_counts(&self.reads, room.id, first.seq, last.seq).await?;
            for message in messages.iter_mut().filter(|m| !m.deleted) {
                message.reactions = counts.remove(&message.seq).unwrap_or_default();
            }
        }
        Ok(messages)
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reads.close().await;
        self.writes.close().await;
    }
}
