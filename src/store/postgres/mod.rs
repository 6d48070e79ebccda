//! The PostgreSQL store, for a network that runs several nodes on one database.
//!
//! The promises are SQLite's: a message's seq is assigned inside the transaction that
//! stores it, from the room's counter (`rooms.last_seq`, whose row the transaction
//! locks, so two nodes never hand out one seq and a failed batch consumes none); a
//! resent `client_msg_id` returns the original on whichever node it arrives (the lookup
//! runs after the room's lock is held, so it sees the first node's commit); a failed
//! write is never reported as done. Messages are group-committed by one writer task per
//! node (`store::writer`); every other write is its own transaction, reported to the
//! store's [`WriteHealth`] like SQLite's.
//!
//! Where SQLite's single writer made a check-then-write safe, this store takes a lock:
//! the rooms of a batch are locked in id order (two nodes' batches cannot deadlock), a
//! join and a ban of the same member take the same advisory lock, a join to a room with
//! a capacity locks the room, and registrations take turns.
//!
//! - `schema`: the tables and migrations.

mod schema;

use super::rows::{
    self, APPEAL_COLUMNS, CARE_COLUMNS, MESSAGE_COLUMNS, QUESTION_COLUMNS, QUESTION_RANK, REPORT_COLUMNS,
    ROOM_COLUMNS_POSTGRES as ROOM_COLUMNS,
};
use super::writer::{Batch, BatchWriter, Job, Writer, PROVEN_FOR};
use super::{
    AppealRecord, BanScope, Change, CommitListener, Credentials, Erased, HistoryRange, Lift, LogAbout, ModEntry,
    MuteRecord, NewRoom, OpenError, Restriction, RoomId, RoomRecord, Sanction, SearchCursor, Store, StoreError,
    StoredMessage, TokenRules, Unread, UserId, UserRecord, WriteHealth,
};
use crate::metrics::Metrics;
use crate::protocol::{
    format_ts, now_ms, ActiveSanction, Appeal, AppealOutcome, CareAlert, CareKind, CwChanges, CwPreferences, CwTags,
    Message, ModAction, Phase, Question, QuestionStatus, Reactions, Report, Role, RoomRole, User,
};
use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for a connection before it fails (and `/healthz` with it):
/// short, so an unreachable database is reported promptly rather than queued behind.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per node.
const POOL_SIZE: u32 = 12;

/// The advisory lock every registration takes, so two nodes cannot both hand out one
/// display name.
const REGISTRATION_LOCK: i64 = 0x616c_6f6e_7265_6773;

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    health: Arc<WriteHealth>,
    writer: Writer,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn open(
        url: &str,
        listener: Arc<dyn CommitListener>,
        metrics: Arc<Metrics>,
    ) -> Result<PostgresStore, OpenError> {
        let pool = Self::pool(url).await?;
        schema::migrate(&pool).await?;
        let health = Arc::new(WriteHealth::new(metrics.clone()));
        let batches = PgBatches { pool: pool.clone(), health: health.clone() };
        let writer = Writer::spawn(Arc::new(batches), health.clone(), listener, metrics);
        Ok(PostgresStore { pool, health, writer })
    }

    /// Brings the schema of the database at `url` up to date and returns its version
    /// before and after.
    pub async fn migrate(url: &str) -> Result<(usize, usize), OpenError> {
        let pool = Self::pool(url).await?;
        let before = schema::version(&pool).await?;
        schema::migrate(&pool).await?;
        let after = schema::version(&pool).await?;
        pool.close().await;
        Ok((before, after))
    }

    async fn pool(url: &str) -> Result<PgPool, OpenError> {
        let options = PgConnectOptions::from_str(url)?.application_name("alongside");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection that died with the server is found out before it is used.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        Ok(pool)
    }

    async fn begin_write(&self) -> Result<PgTx, sqlx::Error> {
        PgTx::begin(&self.pool, &self.health).await
    }
}

/// One write transaction, its end reported to the store's health. Dropped without
/// [`commit`](PgTx::commit) or [`rollback`](PgTx::rollback) (a statement failed), it
/// counts as a failure and the driver rolls it back.
struct PgTx {
    tx: Option<Transaction<'static, Postgres>>,
    health: Arc<WriteHealth>,
}

impl PgTx {
    async fn begin(pool: &PgPool, health: &Arc<WriteHealth>) -> Result<PgTx, sqlx::Error> {
        match pool.begin().await {
            Ok(tx) => Ok(PgTx { tx: Some(tx), health: health.clone() }),
            Err(err) => {
                health.failed(&err);
                Err(err)
            }
        }
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let tx = self.tx.take().expect("a transaction ends once");
        match tx.commit().await {
            Ok(()) => {
                self.health.committed();
                Ok(())
            }
            Err(err) => {
                self.health.failed(&err);
                Err(err)
            }
        }
    }

    async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let tx = self.tx.take().expect("a transaction ends once");
        tx.rollback().await.inspect_err(|err| self.health.failed(err))
    }

    /// Takes the advisory lock `key` until the transaction ends.
    async fn lock(&mut self, key: i64) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut **self).await.map(drop)
    }
}

impl Deref for PgTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.tx.as_ref().expect("the transaction is open")
    }
}

impl DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.tx.as_mut().expect("the transaction is open")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if self.tx.take().is_some() {
            self.health.failed(&"a write transaction was abandoned: a statement failed or the request was cancelled");
        }
    }
}

/// The advisory lock a join and a ban of `user` in `scope` (a room id, 0 for the
/// server) share.
fn member_lock(scope: i64, user: UserId) -> i64 {
    (scope << 32) ^ user.0 ^ 0x5a5a_0000_0000_0000
}

/// The PostgreSQL side of the group commit.
struct PgBatches {
    pool: PgPool,
    health: Arc<WriteHealth>,
}

/// A resend's key: room, author, `client_msg_id`.
type ResendKey = (i64, i64, String);

#[async_trait]
impl BatchWriter for PgBatches {
    async fn write_batch(&self, jobs: &[Job]) -> Result<Batch, sqlx::Error> {
        let mut tx = PgTx::begin(&self.pool, &self.health).await?;
        let news: Vec<_> = jobs
            .iter()
            .filter_map(|job| match job {
                Job::Message(new, _) => Some(new),
                Job::Heartbeat(_) => None,
            })
            .collect();
        // Lock the batch's rooms in id order: their counters are ours until the commit.
        let mut room_ids: Vec<i64> = news.iter().map(|new| new.room_id.0).collect();
        room_ids.sort_unstable();
        room_ids.dedup();
        let mut last_seq: HashMap<i64, i64> = HashMap::new();
        if !room_ids.is_empty() {
            let locked: Vec<(i64, i64)> =
                sqlx::query_as("SELECT id, last_seq FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                    .bind(&room_ids)
                    .fetch_all(&mut *tx)
                    .await?;
            last_seq = locked.into_iter().collect();
        }
        // Resends, looked up after the lock: a first send committed by another node is seen.
        let keyed: Vec<ResendKey> =
            news.iter().filter_map(|new| Some((new.room_id.0, new.author.id.0, new.client_msg_id.clone()?))).collect();
        let mut earlier: HashMap<ResendKey, Message> = HashMap::new();
        if !keyed.is_empty() {
            let found = sqlx::query(
                "SELECT m.room_id, m.author_id, m.seq, m.body, m.ts, m.client_msg_id, m.deleted, m.edited_at, \
                 m.reply_to, m.mentions, m.cw, m.cw_note FROM messages m \
                 JOIN UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS k(room_id, author_id, client_msg_id) \
                 ON m.room_id = k.room_id AND m.author_id = k.author_id AND m.client_msg_id = k.client_msg_id",
            )
            .bind(keyed.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(keyed.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(keyed.iter().map(|k| k.2.clone()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            for row in found {
                let key: ResendKey =
                    (row.try_get("room_id")?, row.try_get("author_id")?, row.try_get("client_msg_id")?);
                let new = news.iter().find(|new| (new.room_id.0, new.author.id.0) == (key.0, key.1));
                if let Some(new) = new {
                    earlier.insert(key, rows::message_by(&new.room, new.author.user.clone(), &row)?);
                }
            }
        }
        let ts = now_ms();
        let mut insert = Inserts::default();
        let mut batch = Batch { messages: Vec::with_capacity(news.len()), heartbeat: None };
        for new in &news {
            let key = new.client_msg_id.clone().map(|id| (new.room_id.0, new.author.id.0, id));
            if let Some(original) = key.as_ref().and_then(|key| earlier.get(key)) {
                batch.messages.push(StoredMessage { message: original.clone(), duplicate: true });
                continue;
            }
            let counter = last_seq.get_mut(&new.room_id.0).ok_or(sqlx::Error::RowNotFound)?;
            *counter += 1;
            let message = Message {
                seq: *counter,
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
            insert.push(new.room_id.0, new.author.id.0, &message, new.cw);
            if let Some(key) = key {
                // The same key twice in one batch: the second is a resend of the first.
                earlier.insert(key, message.clone());
            }
            batch.messages.push(StoredMessage { message, duplicate: false });
        }
        if !insert.seq.is_empty() {
            sqlx::query(
                "INSERT INTO messages (room_id, seq, author_id, body, ts, client_msg_id, reply_to, mentions, cw, cw_note) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
                                      $6::text[], $7::bigint[], $8::text[], $9::bigint[], $10::text[])",
            )
            .bind(&insert.room)
            .bind(&insert.seq)
            .bind(&insert.author)
            .bind(&insert.body)
            .bind(vec![ts; insert.seq.len()])
            .bind(&insert.client_msg_id)
            .bind(&insert.reply_to)
            .bind(&insert.mentions)
            .bind(&insert.cw)
            .bind(&insert.cw_note)
            .execute(&mut *tx)
            .await?;
            let (ids, lasts): (Vec<i64>, Vec<i64>) = last_seq.into_iter().unzip();
            sqlx::query(
                "UPDATE rooms SET last_seq = v.last FROM UNNEST($1::bigint[], $2::bigint[]) AS v(id, last) \
                 WHERE rooms.id = v.id",
            )
            .bind(ids)
            .bind(lasts)
            .execute(&mut *tx)
            .await?;
        }
        if jobs.iter().any(|job| matches!(job, Job::Heartbeat(_))) {
            let beat = sqlx::query_scalar("UPDATE heartbeat SET n = n + 1, at = $1 WHERE id = 1 RETURNING n")
                .bind(ts)
                .fetch_one(&mut *tx)
                .await?;
            batch.heartbeat = Some(beat);
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn read_heartbeat(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT n FROM heartbeat WHERE id = 1").fetch_one(&self.pool).await
    }
}

/// The columns of a batch's new messages, for one `INSERT ... UNNEST`.
#[derive(Default)]
struct Inserts {
    room: Vec<i64>,
    seq: Vec<i64>,
    author: Vec<i64>,
    body: Vec<Option<String>>,
    client_msg_id: Vec<Option<String>>,
    reply_to: Vec<Option<i64>>,
    mentions: Vec<Option<String>>,
    cw: Vec<i64>,
    cw_note: Vec<Option<String>>,
}

impl Inserts {
    fn push(&mut self, room: i64, author: i64, message: &Message, cw: CwTags) {
        self.room.push(room);
        self.seq.push(message.seq);
        self.author.push(author);
        self.body.push(message.body.clone());
        self.client_msg_id.push(message.client_msg_id.clone());
        self.reply_to.push(message.reply_to);
        self.mentions.push(rows::join_mentions(&message.mentions));
        self.cw.push(i64::from(cw.0));
        self.cw_note.push(message.cw_note.clone());
    }
}

/// A member's search words as a `tsquery`: each word quoted as a lexeme (so nothing in
/// it is an operator), all required, the last also as a prefix.
fn ts_query(query: &str) -> Option<String> {
    let words = rows::search_words(query)?;
    let quoted: Vec<String> =
        words.iter().map(|word| format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))).collect();
    Some(quoted.join(" & ") + ":*")
}

/// Reaction counts of the messages `from..=to` of a room, by seq; messages without
/// reactions are absent.
async fn reaction_counts(
    conn: &mut PgConnection,
    room: RoomId,
    from: i64,
    to: i64,
) -> Result<HashMap<i64, Reactions>, sqlx::Error> {
    let found = sqlx::query(
        "SELECT seq, emoji, COUNT(*) AS n FROM reactions WHERE room_id = $1 AND seq BETWEEN $2 AND $3 \
         GROUP BY seq, emoji",
    )
    .bind(room.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts: HashMap<i64, Reactions> = HashMap::new();
    for row in found {
        let n: i64 = row.try_get("n")?;
        counts.entry(row.try_get("seq")?).or_default().insert(row.try_get("emoji")?, n as u32);
    }
    Ok(counts)
}

async fn insert_log(conn: &mut PgConnection, entry: &ModEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mod_log (room_id, action, actor_id, target, seq, reason, until, ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
    conn: &mut PgConnection,
    table: &'static str,
    room_id: i64,
    user: UserId,
    restriction: &Restriction,
    log: &ModEntry,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {table} (room_id, user_id, until, reason, actor_id) VALUES ($1, $2, $3, $4, $5) \
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
    db: impl sqlx::PgExecutor<'c>,
    scopes: [i64; 2],
    user: UserId,
    now: i64,
) -> Result<Option<Restriction>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT until, reason FROM bans WHERE room_id IN ($1, $2) AND user_id = $3 \
         AND (until IS NULL OR until > $4) ORDER BY room_id DESC LIMIT 1",
    )
    .bind(scopes[0])
    .bind(scopes[1])
    .bind(user.0)
    .bind(now)
    .fetch_optional(db)
    .await?;
    row.map(|row| rows::restriction(&row)).transpose()
}

/// Commits when `rows` changed, else rolls back; whether any did.
async fn commit_if_changed(tx: PgTx, rows: u64) -> Result<bool, StoreError> {
    if rows == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// A statement with its bound arguments, ready to run.
type Statement<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

impl PostgresStore {
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

    /// Lifts a mute or ban still in force; `false` if there was none.
    async fn delete_restriction(
        &self,
        table: &'static str,
        room_id: i64,
        user: UserId,
        log: &ModEntry,
    ) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {table} WHERE room_id = $1 AND user_id = $2 AND (until IS NULL OR until > $3)");
        let statement = sqlx::query(&sql).bind(room_id).bind(user.0).bind(now_ms());
        self.change_logged(statement, log).await
    }

    async fn room_by_id(conn: &mut PgConnection, id: i64) -> Result<RoomRecord, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = $1")).bind(id).fetch_one(conn).await?;
        rows::room(&row)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.health.proven_within(PROVEN_FOR) {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
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
        tx.lock(REGISTRATION_LOCK).await?;
        let display_fold = crate::auth::fold_name(display_name);
        let in_use = |name: String| {
            sqlx::query_scalar::<_, i32>("SELECT 1 FROM users WHERE username = $1 OR display_fold = $1 LIMIT 1")
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
                 WHERE code_hash = $1 AND uses_left > 0 AND (expires_at IS NULL OR expires_at > $2)",
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, display_fold, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(username)
        .bind(display_name)
        .bind(&display_fold)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(UserRecord {
            id: UserId(id),
            user: User { username: username.to_string(), display_name: display_name.to_string(), role },
        })
    }

    async fn fetch_user_region(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let region = sqlx::query_scalar("SELECT region FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(region.flatten())
    }

    async fn update_user_region(&self, user: UserId, region: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET region = $1 WHERE id = $2").bind(region).bind(user.0).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_block(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO blocks (blocker_id, blocked_id, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
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
        let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
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
             WHERE b.blocker_id = $1 ORDER BY u.username",
        )
        .bind(blocker.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::user).collect::<Result<_, _>>()?)
    }

    async fn fetch_all_blocks(&self) -> Result<Vec<(UserId, String)>, StoreError> {
        let found: Vec<(i64, String)> =
            sqlx::query_as("SELECT b.blocker_id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id")
                .fetch_all(&self.pool)
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
             WHERE m.author_id = $1 AND (m.room_id, m.seq) > ($2, $3) \
             ORDER BY m.room_id, m.seq LIMIT $4"
        );
        // A row value: each page starts with one index seek (as in SQLite).
        let found = sqlx::query(&sql)
            .bind(author.0)
            .bind(after.0 .0)
            .bind(after.1)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
             WHERE r.reporter_id = $1 ORDER BY r.id"
        );
        let found = sqlx::query(&sql).bind(reporter.0).fetch_all(&self.pool).await?;
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
             WHERE l.target = $1 ORDER BY l.id DESC",
        )
        .bind(username)
        .fetch_all(&self.pool)
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
            "INSERT INTO appeals (log_id, user_id, text, ts) VALUES ($1, $2, $3, $4) \
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
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = $1")).bind(id).fetch_one(&mut *tx).await?;
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
            "SELECT {APPEAL_COLUMNS} WHERE a.outcome IS NULL AND l.room_id = $1 AND a.id > $2 ORDER BY a.id LIMIT $3"
        );
        let found = sqlx::query(&sql)
            .bind(rows::scope_id(room))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(found.iter().map(|row| rows::appeal(row).map(|record| record.appeal)).collect::<Result<_, _>>()?)
    }

    async fn fetch_appeal(&self, id: i64) -> Result<Option<AppealRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
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
            "UPDATE appeals SET outcome = $1, note = $2, resolved_by = $3, resolved_at = $4 \
             WHERE id = $5 AND outcome IS NULL",
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
                "DELETE FROM {} WHERE room_id = $1 AND user_id = $2 AND (until IS NULL OR until > $3)",
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
        let row = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.id = $1")).bind(id).fetch_one(&mut *tx).await?;
        let appeal = rows::appeal(&row)?.appeal;
        tx.commit().await?;
        Ok(Some((appeal, lifted)))
    }

    async fn fetch_global_moderators(&self) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE role IN ('moderator', 'organiser', 'admin') ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn fetch_appeals_by(&self, user: UserId) -> Result<Vec<Appeal>, StoreError> {
        let found = sqlx::query(&format!("SELECT {APPEAL_COLUMNS} WHERE a.user_id = $1 ORDER BY a.id"))
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(found.iter().map(|row| rows::appeal(row).map(|record| record.appeal)).collect::<Result<_, _>>()?)
    }

    async fn insert_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("INSERT INTO join_requests (room_id, user_id, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
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
             JOIN users u ON u.id = j.user_id WHERE j.room_id = $1 ORDER BY j.ts, u.id",
        )
        .bind(room.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(|row| Ok((rows::user(row)?, row.try_get("ts")?))).collect::<Result<_, sqlx::Error>>()?)
    }

    async fn delete_join_request(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM join_requests WHERE room_id = $1 AND user_id = $2")
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn fetch_members_joined_since(&self, room: RoomId, seq: i64) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM memberships WHERE room_id = $1 AND joined_seq >= $2")
                .bind(room.0)
                .bind(seq)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn fetch_joined_seq(&self, room: RoomId, user: UserId) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT joined_seq FROM memberships WHERE room_id = $1 AND user_id = $2")
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&self.pool)
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
             VALUES ($1, $2, $3, $4, $5)",
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
        let found: Option<(String, String)> = sqlx::query_as("SELECT username, password_hash FROM users WHERE id = $1")
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
            "SELECT r.name FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 ORDER BY r.name",
        )
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await?;
        let blocks: Vec<(i64, String)> = sqlx::query_as(
            "SELECT b.blocker_id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id \
             WHERE b.blocker_id = $1 OR b.blocked_id = $2",
        )
        .bind(user.0)
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await?;
        let blocks = blocks.into_iter().map(|(blocker, blocked)| (UserId(blocker), blocked)).collect();
        let mine = [
            "UPDATE messages SET deleted = true, body = NULL, cw_note = NULL, client_msg_id = NULL, mentions = NULL \
             WHERE author_id = $1",
            "DELETE FROM reactions WHERE user_id = $1",
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM read_markers WHERE user_id = $1",
            "DELETE FROM room_hosts WHERE user_id = $1",
            "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
            "DELETE FROM appeals WHERE user_id = $1",
            "DELETE FROM join_requests WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
            // Their votes stop counting, and their questions go (with others' votes on them).
            "UPDATE questions SET votes = votes - 1 WHERE id IN (SELECT question_id FROM question_votes WHERE user_id = $1)",
            "DELETE FROM question_votes WHERE user_id = $1",
            "DELETE FROM questions WHERE author_id = $1",
        ];
        for statement in mine {
            sqlx::query(statement).bind(user.0).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE mod_log SET target = $1 WHERE target = $2").bind(&new).bind(&old).execute(&mut *tx).await?;
        // Others' messages keep their words; the list of whom they named changes name.
        sqlx::query(
            "UPDATE messages SET mentions = trim(replace(' ' || mentions || ' ', $1, $2)) \
             WHERE strpos(' ' || mentions || ' ', $3) > 0",
        )
        .bind(format!(" {old} "))
        .bind(format!(" {new} "))
        .bind(format!(" {old} "))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET username = $1, display_name = $2, display_fold = $3, password_hash = '', \
             region = NULL, cw_prefs = 0 WHERE id = $4",
        )
        .bind(&new)
        .bind(&new)
        .bind(&new)
        .bind(user.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Erased { old, new, rooms, blocks })
    }

    async fn fetch_preferences(&self, user: UserId) -> Result<CwPreferences, StoreError> {
        let bits: Option<i64> = sqlx::query_scalar("SELECT cw_prefs FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(CwPreferences(bits.and_then(|bits| u16::try_from(bits).ok()).unwrap_or_default()))
    }

    async fn update_preferences(&self, user: UserId, changes: CwChanges) -> Result<CwPreferences, StoreError> {
        let mut tx = self.begin_write().await?;
        let bits: i64 =
            sqlx::query_scalar("UPDATE users SET cw_prefs = (cw_prefs & ~$1) | $2 WHERE id = $3 RETURNING cw_prefs")
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
             SELECT room_id, seq, author_id, $1, $2, $3, $4 FROM messages WHERE room_id = $5 AND seq = $6 RETURNING id",
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
        let row = sqlx::query(&format!("SELECT {CARE_COLUMNS} WHERE c.id = $1")).bind(id).fetch_one(&mut *tx).await?;
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
            "SELECT {CARE_COLUMNS} WHERE c.room_id = $1 AND c.acked_at IS NULL AND c.id > $2 ORDER BY c.id LIMIT $3"
        );
        let found =
            sqlx::query(&sql).bind(room.id.0).bind(after_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
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
            "UPDATE care_alerts SET acked_by = $1, acked_at = $2 WHERE id = $3 AND room_id = $4 AND acked_at IS NULL",
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
        let row = sqlx::query(&format!("SELECT {CARE_COLUMNS} WHERE c.id = $1")).bind(id).fetch_one(&mut *tx).await?;
        let alert = rows::care_alert(&room.name, &row)?;
        // The log names the message and its author, whatever the caller knew.
        let log = ModEntry { seq: Some(alert.seq), target: Some(alert.author.username.clone()), ..log.clone() };
        insert_log(&mut tx, &log).await?;
        tx.commit().await?;
        Ok(Some(alert))
    }

    async fn fetch_questions_by(&self, author: UserId) -> Result<Vec<Question>, StoreError> {
        let sql = rows::numbered(&format!(
            "SELECT r.name AS room_name, {QUESTION_COLUMNS} JOIN rooms r ON r.id = q.room_id WHERE q.author_id = ? ORDER BY q.id"
        ));
        let found = sqlx::query(&sql).bind(author.0).bind(author.0).fetch_all(&self.pool).await?;
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
        let id: i64 = sqlx::query_scalar(&rows::numbered(
            "INSERT INTO questions (room_id, author_id, body, anonymous, ts) VALUES (?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(room.id.0)
        .bind(author.0)
        .bind(body)
        .bind(anonymous)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(&rows::numbered(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ?")))
            .bind(author.0)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let question = rows::question(&room.name, &row)?;
        tx.commit().await?;
        Ok(question)
    }

    async fn fetch_question(&self, room: &RoomRecord, id: i64, viewer: UserId) -> Result<Option<Question>, StoreError> {
        let row = sqlx::query(&rows::numbered(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ? AND q.room_id = ?")))
            .bind(viewer.0)
            .bind(id)
            .bind(room.id.0)
            .fetch_optional(&self.pool)
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
                let sql = rows::numbered(&format!(
                    "SELECT {QUESTION_RANK} AS rank, q.votes, q.ts FROM questions q WHERE q.id = ? AND q.room_id = ?"
                ));
                let found: Option<(i64, i64, i64)> =
                    sqlx::query_as(&sql).bind(id).bind(room.id.0).fetch_optional(&self.pool).await?;
                let (rank, votes, ts) = found.ok_or(StoreError::NotFound)?;
                (rank, -votes, ts, id)
            }
        };
        let sql = rows::numbered(&format!(
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
            .fetch_all(&self.pool)
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
        let open: Option<i64> = sqlx::query_scalar(&rows::numbered(
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
        let changed =
            sqlx::query(&rows::numbered(change)).bind(id).bind(user.0).execute(&mut *tx).await?.rows_affected();
        // A second upvote (or an unvote without a vote) changes nothing.
        if changed == 1 {
            sqlx::query(&rows::numbered("UPDATE questions SET votes = votes + ? WHERE id = ?"))
                .bind(by)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let votes: i64 = sqlx::query_scalar(&rows::numbered("SELECT votes FROM questions WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(votes))
    }

    async fn fetch_question_votes(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let votes = sqlx::query_scalar(&rows::numbered("SELECT votes FROM questions WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
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
            sqlx::query_scalar(&rows::numbered("SELECT status FROM questions WHERE id = ? AND room_id = ?"))
                .bind(id)
                .bind(room.id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before.and_then(|text| QuestionStatus::parse(&text)) else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(&rows::numbered("UPDATE questions SET status = ? WHERE id = ?"))
            .bind(status.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&rows::numbered(&format!("SELECT {QUESTION_COLUMNS} WHERE q.id = ?")))
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
        sqlx::query("UPDATE rooms SET phase = $1, schedule = $2 WHERE id = $3")
            .bind(phase.as_str())
            .bind(super::schedule_text(schedule))
            .bind(room.0)
            .execute(&mut *tx)
            .await?;
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = $1")).bind(room.0).fetch_one(&mut *tx).await?;
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
        let changed = sqlx::query("UPDATE rooms SET phase = $1, schedule = $2 WHERE id = $3 AND schedule = $4")
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
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = $1")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn fetch_scheduled_rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.schedule <> ''")).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(rows::room).collect::<Result<_, _>>()?)
    }

    async fn update_host_rule(&self, room: RoomId, required: bool, log: &ModEntry) -> Result<RoomRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE rooms SET requires_host = $1 WHERE id = $2")
            .bind(required)
            .bind(room.0)
            .execute(&mut *tx)
            .await?;
        insert_log(&mut tx, log).await?;
        let row =
            sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.id = $1")).bind(room.0).fetch_one(&mut *tx).await?;
        let record = rows::room(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    async fn update_duty(&self, room: RoomId, user: UserId, on: bool) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = if on {
            sqlx::query("INSERT INTO room_hosts (room_id, user_id, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(room.0)
                .bind(user.0)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
        } else {
            sqlx::query("DELETE FROM room_hosts WHERE room_id = $1 AND user_id = $2")
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
        .fetch_all(&self.pool)
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
        let row = sqlx::query("SELECT id, username, display_name, role, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
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
            sqlx::query("UPDATE users SET role = $1 WHERE username = $2 RETURNING id, username, display_name, role")
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
        let row = sqlx::query("SELECT id, username, display_name, role FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| rows::user(&row)).transpose()?)
    }

    async fn insert_token(&self, token_hash: &[u8], user: UserId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, used_at) VALUES ($1, $2, $3, $3)")
            .bind(token_hash)
            .bind(user.0)
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
        let bound = |limit: i64| if limit > 0 { now - limit } else { i64::MIN };
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, coalesce(s.used_at, s.created_at) AS used_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND coalesce(s.used_at, s.created_at) > $2 AND s.created_at > $3",
        )
        .bind(token_hash)
        .bind(bound(rules.idle_ms))
        .bind(bound(rules.max_ms))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::user(&row)?, row.try_get("used_at")?)))
    }

    async fn touch_token(&self, token_hash: &[u8], now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE sessions SET used_at = $1 WHERE token_hash = $2 AND coalesce(used_at, 0) < $3")
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
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        commit_if_changed(tx, done.rows_affected()).await
    }

    async fn delete_user_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.0).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn fetch_user_by_id(&self, user: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, username, display_name, role FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| rows::user(&row)).transpose()?)
    }

    async fn insert_change(&self, user: UserId, change: Change) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO changes (user_id, kind, at) VALUES ($1, $2, $3)")
            .bind(user.0)
            .bind(change.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM changes WHERE at < $1").bind(now - 24 * 3600 * 1000).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_changes(&self, after: Option<i64>) -> Result<(i64, Vec<(UserId, Change)>), StoreError> {
        let newest: i64 =
            sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM changes").fetch_one(&self.pool).await?;
        let Some(after) = after else { return Ok((newest, Vec::new())) };
        let found: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT id, user_id, kind FROM changes WHERE id > $1 AND id <= $2 ORDER BY id")
                .bind(after)
                .bind(newest)
                .fetch_all(&self.pool)
                .await?;
        let changes =
            found.into_iter().filter_map(|(_, user, kind)| Some((UserId(user), Change::parse(&kind)?))).collect();
        Ok((newest.max(after), changes))
    }

    async fn insert_room(&self, room: &NewRoom) -> Result<RoomRecord, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO rooms (name, topic, kind, owner_id, starts_at, ends_at, capacity, created_at, requires_host, \
             private, since_join, phase, viewers, session_start, session_end, time_zone, schedule) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (name) DO NOTHING RETURNING id",
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
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = inserted else {
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        };
        sqlx::query("INSERT INTO memberships (room_id, user_id, joined_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(room.owner.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let record = Self::room_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn fetch_room(&self, name: &str) -> Result<Option<RoomRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} WHERE r.name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| rows::room(&row)).transpose()?)
    }

    async fn fetch_rooms(
        &self,
        after: Option<&str>,
        limit: u32,
        viewer: Option<UserId>,
    ) -> Result<Vec<RoomRecord>, StoreError> {
        // Names compare byte by byte, as SQLite does, whatever the database's collation.
        let found = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} WHERE r.name COLLATE \"C\" > $1 AND (NOT r.private OR $2::BIGINT IS NULL OR EXISTS \
             (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = $2)) \
             ORDER BY r.name COLLATE \"C\" LIMIT $3"
        ))
        .bind(after.unwrap_or(""))
        .bind(viewer.map(|user| user.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::room).collect::<Result<_, _>>()?)
    }

    async fn insert_membership(&self, room: &RoomRecord, user: UserId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // The same locks as a ban of this member takes (server scope first, as a ban
        // takes one of them only): whichever commits first, the other sees it.
        tx.lock(member_lock(0, user)).await?;
        tx.lock(member_lock(room.id.0, user)).await?;
        if let Some(ban) = ban_in_force(&mut *tx, [room.id.0, 0], user, now_ms()).await? {
            tx.rollback().await?;
            return Err(StoreError::Banned(ban));
        }
        let exists = sqlx::query("SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2")
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
            // The room's row is locked, so two last joiners on two nodes cannot both fit.
            sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE").bind(room.id.0).execute(&mut *tx).await?;
            let members: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE room_id = $1 AND room_role <> 'viewer'")
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
             SELECT id, $1, $2, last_seq, $3 FROM rooms WHERE id = $4",
        )
        .bind(user.0)
        .bind(now_ms())
        .bind(if full { "viewer" } else { "member" })
        .bind(room.id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM join_requests WHERE room_id = $1 AND user_id = $2")
            .bind(room.id.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        // What was said before joining is not unread.
        sqlx::query(
            "INSERT INTO read_markers (room_id, user_id, seq) SELECT id, $1, last_seq FROM rooms WHERE id = $2 \
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
        let done = sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected()).await
    }

    async fn fetch_members(&self, room: RoomId) -> Result<Vec<(UserRecord, RoomRole)>, StoreError> {
        let found = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, m.room_role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 ORDER BY u.username COLLATE \"C\"",
        )
        .bind(room.0)
        .fetch_all(&self.pool)
        .await?;
        found
            .iter()
            .map(|row| Ok((rows::user(row)?, rows::parse_room_role(&row.try_get::<String, _>("room_role")?)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn update_read_marker(&self, room: RoomId, user: UserId, seq: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let marker: Option<i64> = sqlx::query_scalar(
            "INSERT INTO read_markers (room_id, user_id, seq) SELECT id, $1, LEAST($2, last_seq) FROM rooms \
             WHERE id = $3 ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq \
             WHERE excluded.seq > read_markers.seq RETURNING seq",
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
        let row = sqlx::query(
            "SELECT count(*) AS messages, coalesce(sum(named::int), 0)::bigint AS mentions FROM ( \
                 SELECT m.mentions IS NOT NULL AND strpos(' ' || m.mentions || ' ', \
                     ' ' || (SELECT username FROM users WHERE id = $2) || ' ') > 0 AS named \
                 FROM messages m WHERE m.room_id = $1 AND m.author_id <> $2 \
                 AND NOT m.deleted AND m.seq > coalesce( \
                     (SELECT seq FROM read_markers WHERE room_id = $1 AND user_id = $2), \
                     (SELECT last_seq FROM rooms WHERE id = $1)) \
                 LIMIT $3) unread",
        )
        .bind(room.0)
        .bind(user.0)
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?;
        let count = |column: &str| -> Result<u32, sqlx::Error> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(cap))
        };
        Ok(Unread { messages: count("messages")?, mentions: count("mentions")? })
    }

    async fn fetch_members_named(&self, room: RoomId, usernames: &[String]) -> Result<Vec<UserRecord>, StoreError> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let found = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND u.username = ANY($2) ORDER BY u.username COLLATE \"C\"",
        )
        .bind(room.0)
        .bind(usernames)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::user).collect::<Result<_, _>>()?)
    }

    async fn search_messages(
        &self,
        user: UserId,
        room: Option<RoomId>,
        query: &str,
        before: Option<SearchCursor>,
        limit: u32,
    ) -> Result<Vec<(Message, SearchCursor)>, StoreError> {
        let Some(expression) = ts_query(query) else {
            return Ok(Vec::new());
        };
        let before = before.unwrap_or(SearchCursor { ts: i64::MAX, key: i64::MAX });
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, r.name AS room_name, (m.room_id << 32) | m.seq AS key \
             FROM messages m JOIN users u ON u.id = m.author_id JOIN rooms r ON r.id = m.room_id \
             JOIN memberships ms ON ms.room_id = m.room_id AND ms.user_id = $2 \
             WHERE to_tsvector('simple', alongside_fold(m.body)) @@ to_tsquery('simple', alongside_fold($1)) \
             AND (NOT r.since_join OR m.seq > ms.joined_seq) \
             AND NOT m.deleted AND ($3::bigint IS NULL OR m.room_id = $3) \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = m.room_id AND b.user_id = $2 \
                             AND (b.until IS NULL OR b.until > $4)) \
             AND (m.ts < $5 OR (m.ts = $5 AND ((m.room_id << 32) | m.seq) < $6)) \
             ORDER BY m.ts DESC, key DESC LIMIT $7"
        );
        let found = sqlx::query(&sql)
            .bind(expression)
            .bind(user.0)
            .bind(room.map(|r| r.0))
            .bind(now_ms())
            .bind(before.ts)
            .bind(before.key)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        found
            .iter()
            .map(|row| {
                let message = rows::message(&row.try_get::<String, _>("room_name")?, row)?;
                let ts: i64 = row.try_get("ts")?;
                Ok((message, SearchCursor { ts, key: row.try_get("key")? }))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn fetch_user_rooms(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let names = sqlx::query_scalar(
            "SELECT r.name FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.room_id = m.room_id AND b.user_id = m.user_id \
                             AND (b.until IS NULL OR b.until > $2)) \
             ORDER BY r.name COLLATE \"C\"",
        )
        .bind(user.0)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }

    async fn fetch_room_role(&self, room: RoomId, user: UserId) -> Result<Option<RoomRole>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT room_role FROM memberships WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(role.map(|r| rows::parse_room_role(&r)).transpose()?)
    }

    async fn fetch_room_moderators(&self, room: RoomId) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM memberships WHERE room_id = $1 AND room_role = 'moderator'")
                .bind(room.0)
                .fetch_all(&self.pool)
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
        let statement = sqlx::query("UPDATE memberships SET room_role = $1 WHERE room_id = $2 AND user_id = $3")
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
        let found = sqlx::query("SELECT room_id, user_id, until, reason FROM mutes WHERE until IS NULL OR until > $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(found.iter().map(rows::mute).collect::<Result<_, _>>()?)
    }

    async fn fetch_own_reactions(
        &self,
        room: RoomId,
        user: UserId,
        seqs: (i64, i64),
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let found: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, emoji FROM reactions WHERE room_id = $1 AND seq BETWEEN $2 AND $3 AND user_id = $4 \
             ORDER BY seq",
        )
        .bind(room.0)
        .bind(seqs.0)
        .bind(seqs.1)
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(found)
    }

    async fn fetch_room_sanctions(&self, room: RoomId, now: i64) -> Result<Vec<ActiveSanction>, StoreError> {
        let found = sqlx::query(
            "SELECT s.kind, u.id, u.username, u.display_name, u.role, s.until, s.reason, a.username AS by_name FROM ( \
               SELECT 'ban' AS kind, user_id, until, reason, actor_id FROM bans WHERE room_id = $1 \
               UNION ALL SELECT 'mute', user_id, until, reason, actor_id FROM mutes WHERE room_id = $1 \
             ) s JOIN users u ON u.id = s.user_id JOIN users a ON a.id = s.actor_id \
             WHERE s.until IS NULL OR s.until > $2 \
             ORDER BY s.until IS NULL, s.until, u.username COLLATE \"C\", s.kind",
        )
        .bind(room.0)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::sanction).collect::<Result<_, _>>()?)
    }

    async fn delete_membership_logged(&self, room: RoomId, user: UserId, log: &ModEntry) -> Result<bool, StoreError> {
        let statement =
            sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2").bind(room.0).bind(user.0);
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
        tx.lock(member_lock(rows::ban_scope_id(scope), user)).await?;
        upsert_restriction(&mut tx, "bans", rows::ban_scope_id(scope), user, ban, log).await?;
        let mut ended = false;
        if let BanScope::Room(room) = scope {
            let done = sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
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
        let table = match sanction {
            Sanction::Mute => "mutes",
            Sanction::Ban => "bans",
        };
        let sql = format!(
            "SELECT u.id, u.role FROM {table} s JOIN users u ON u.id = s.actor_id \
             WHERE s.room_id = $1 AND s.user_id = $2 AND (s.until IS NULL OR s.until > $3)"
        );
        let row =
            sqlx::query(&sql).bind(rows::ban_scope_id(scope)).bind(user.0).bind(now).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        Ok(Some((UserId(row.try_get("id")?), rows::parse_role(&role)?)))
    }

    async fn delete_ban(&self, scope: BanScope, user: UserId, log: &ModEntry) -> Result<bool, StoreError> {
        self.delete_restriction("bans", rows::ban_scope_id(scope), user, log).await
    }

    async fn fetch_ban(&self, scope: BanScope, user: UserId, now: i64) -> Result<Option<Restriction>, StoreError> {
        let scope = rows::ban_scope_id(scope);
        Ok(ban_in_force(&self.pool, [scope, scope], user, now).await?)
    }

    async fn fetch_message_author(&self, room: RoomId, seq: i64) -> Result<Option<(UserRecord, bool)>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, m.deleted FROM messages m \
             JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 AND m.seq = $2",
        )
        .bind(room.0)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::user(&row)?, row.try_get("deleted")?)))
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
            "UPDATE messages SET body = $1, edited_at = $2 \
             WHERE room_id = $3 AND seq = $4 AND author_id = $5 AND NOT deleted \
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
        message.reactions = reaction_counts(&mut tx, room.id, seq, seq).await?.remove(&seq).unwrap_or_default();
        tx.commit().await?;
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
            sqlx::query("UPDATE messages SET cw = $1, cw_note = $2 WHERE room_id = $3 AND seq = $4 AND NOT deleted")
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
             WHERE m.room_id = $1 AND m.seq = $2"
        ))
        .bind(room.id.0)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        let mut message = rows::message(&room.name, &row)?;
        message.reactions = reaction_counts(&mut tx, room.id, seq, seq).await?.remove(&seq).unwrap_or_default();
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
        let deleted: Option<bool> = sqlx::query_scalar("SELECT deleted FROM messages WHERE room_id = $1 AND seq = $2")
            .bind(room.0)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        if deleted != Some(false) {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        }
        let sql = if add {
            "INSERT INTO reactions (room_id, seq, emoji, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM reactions WHERE room_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4"
        };
        let changed = sqlx::query(sql).bind(room.0).bind(seq).bind(emoji).bind(user.0).execute(&mut *tx).await?;
        if changed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let counts = reaction_counts(&mut tx, room, seq, seq).await?.remove(&seq).unwrap_or_default();
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn update_message_deleted(&self, room: RoomId, seq: i64, log: &ModEntry) -> Result<(), StoreError> {
        let statement = sqlx::query("UPDATE messages SET deleted = true, body = NULL WHERE room_id = $1 AND seq = $2")
            .bind(room.0)
            .bind(seq);
        if !self.change_logged(statement, log).await? {
            return Err(StoreError::NotFound);
        }
        Ok(())
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
            "UPDATE rooms SET slow_mode_s = coalesce($1, slow_mode_s), locked = coalesce($2, locked) WHERE id = $3",
        )
        .bind(slow_mode_s.map(i64::from))
        .bind(locked)
        .bind(room.0)
        .execute(&mut *tx)
        .await?;
        insert_log(&mut tx, log).await?;
        let record = Self::room_by_id(&mut tx, room.0).await?;
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
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO reports (room_id, seq, reporter_id, reason, ts, author_id, body, message_ts) \
             SELECT room_id, seq, $1, $2, $3, author_id, body, ts FROM messages \
             WHERE room_id = $4 AND seq = $5 AND NOT deleted \
             ON CONFLICT (room_id, seq, reporter_id) DO NOTHING RETURNING id",
        )
        .bind(reporter.id.0)
        .bind(reason)
        .bind(now_ms())
        .bind(room.id.0)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            // Either no such message (or it is deleted), or this reporter reported it already.
            let reportable: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM messages WHERE room_id = $1 AND seq = $2 AND NOT deleted")
                    .bind(room.id.0)
                    .bind(seq)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            return Err(if reportable.is_some() { StoreError::Conflict } else { StoreError::NotFound });
        };
        let row = sqlx::query(&format!("SELECT {REPORT_COLUMNS} WHERE r.id = $1")).bind(id).fetch_one(&mut *tx).await?;
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
            "SELECT {REPORT_COLUMNS} WHERE r.room_id = $1 AND r.status = 'open' AND r.id > $2 ORDER BY r.id LIMIT $3"
        );
        let found =
            sqlx::query(&sql).bind(room.id.0).bind(after_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        Ok(found.iter().map(|row| rows::report(&room.name, row)).collect::<Result<_, _>>()?)
    }

    async fn resolve_report(&self, room: RoomId, id: i64, log: &ModEntry) -> Result<bool, StoreError> {
        let statement = sqlx::query(
            "UPDATE reports SET status = 'resolved', resolved_by = $1, note = $2, resolved_at = $3 \
             WHERE id = $4 AND room_id = $5 AND status = 'open'",
        )
        .bind(log.actor.0)
        .bind(&log.reason)
        .bind(now_ms())
        .bind(id)
        .bind(room.0);
        self.change_logged(statement, log).await
    }

    async fn fetch_mod_log(&self, room: Option<RoomId>, limit: u32) -> Result<Vec<ModAction>, StoreError> {
        let found = sqlx::query(
            "SELECT l.action, u.username AS actor, l.target, l.seq, l.reason, l.until, l.ts FROM mod_log l \
             JOIN users u ON u.id = l.actor_id WHERE l.room_id = $1 ORDER BY l.id DESC LIMIT $2",
        )
        .bind(rows::scope_id(room))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::mod_action).collect::<Result<_, _>>()?)
    }

    async fn insert_message(&self, message: super::NewMessage) -> Result<StoredMessage, StoreError> {
        self.writer.insert_message(message).await
    }

    async fn fetch_messages(&self, room: &RoomRecord, range: HistoryRange) -> Result<Vec<Message>, StoreError> {
        let before = range.before.unwrap_or(i64::MAX);
        let after = range.after.unwrap_or(0);
        let order = if range.after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.room_id = $1 AND m.seq > $2 AND m.seq < $3 ORDER BY m.seq {order} LIMIT $4"
        );
        let mut conn = self.pool.acquire().await?;
        let found = sqlx::query(&sql)
            .bind(room.id.0)
            .bind(after)
            .bind(before)
            .bind(i64::from(range.limit))
            .fetch_all(&mut *conn)
            .await?;
        let mut messages = found.iter().map(|row| rows::message(&room.name, row)).collect::<Result<Vec<_>, _>>()?;
        if range.after.is_none() {
            messages.reverse();
        }
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            let mut counts = reaction_counts(&mut conn, room.id, first.seq, last.seq).await?;
            for message in messages.iter_mut().filter(|m| !m.deleted) {
                message.reactions = counts.remove(&message.seq).unwrap_or_default();
            }
        }
        Ok(messages)
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A database of its own for one test, created from the server named by
/// `ALONGSIDE_TEST_POSTGRES` and dropped when the guard is dropped.
#[cfg(any(test, feature = "test-hooks"))]
pub mod test_database {
    use sqlx::{Connection, PgConnection};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The variable that names the test server (any database on it).
    pub const VARIABLE: &str = "ALONGSIDE_TEST_POSTGRES";

    /// Drops the database when it goes.
    pub struct TestDatabase {
        /// The URL of the fresh database.
        pub url: String,
        admin: String,
        name: String,
    }

    /// The test server's URL, or `None` (with a note on stderr) when it is not set.
    pub fn server() -> Option<String> {
        let url = std::env::var(VARIABLE).ok().filter(|url| !url.is_empty());
        if url.is_none() {
            eprintln!("{VARIABLE} is not set: the PostgreSQL case does not run");
        }
        url
    }

    /// Creates an empty database on the server at `admin` (which must be reachable:
    /// a set variable and a server that does not answer is a failure, never a skip).
    pub async fn create(admin: &str) -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "alongside_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::protocol::now_ms() % 1_000_000
        );
        let mut conn = PgConnection::connect(admin)
            .await
            .unwrap_or_else(|err| panic!("{VARIABLE}={admin} is set but the server cannot be reached: {err}"));
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create a test database");
        let _ = conn.close().await;
        let mut url = url_parts(admin);
        url.1 = name.clone();
        TestDatabase { url: format!("{}/{}{}", url.0, url.1, url.2), admin: admin.to_string(), name }
    }

    /// `(everything before the database name, the name, the query string)`.
    fn url_parts(url: &str) -> (String, String, String) {
        let (base, query) = match url.find('?') {
            Some(at) => (&url[..at], &url[at..]),
            None => (url, ""),
        };
        let scheme_end = base.find("://").map_or(0, |at| at + 3);
        match base[scheme_end..].find('/') {
            Some(at) => {
                (base[..scheme_end + at].to_string(), base[scheme_end + at + 1..].to_string(), query.to_string())
            }
            None => (base.to_string(), String::new(), query.to_string()),
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // Its own thread and runtime: a drop cannot await, and may run inside one.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&admin).await.ok()?;
                    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.ok()
                })
            });
            let _ = dropped.join();
        }
    }
}
