//! The SQLite schema: migrations, and the durability settings every write connection
//! must run with.

use super::write::WriteTx;
use crate::store::{OpenError, WriteHealth};
use sqlx::sqlite::{SqliteConnection, SqlitePool};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    owner_id    INTEGER NOT NULL REFERENCES users(id),
    slow_mode_s INTEGER NOT NULL DEFAULT 0,
    locked      INTEGER NOT NULL DEFAULT 0,
    starts_at   INTEGER,
    ends_at     INTEGER,
    capacity    INTEGER,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE TABLE memberships (
    room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_role TEXT NOT NULL DEFAULT 'member',
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);
CREATE TABLE messages (
    room_id       INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    author_id     INTEGER NOT NULL REFERENCES users(id),
    body          TEXT,
    ts            INTEGER NOT NULL,
    client_msg_id TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_client_id ON messages(room_id, author_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
-- Mutes are kept apart from memberships so that leaving and rejoining does not lift one.
CREATE TABLE mutes (
    room_id  INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until    INTEGER,
    reason   TEXT,
    actor_id INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
-- room_id 0 is the server scope (a ban from the whole server).
CREATE TABLE bans (
    room_id  INTEGER NOT NULL,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until    INTEGER,
    reason   TEXT,
    actor_id INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
-- One log for every moderator action; room_id 0 holds server-scope actions.
CREATE TABLE mod_log (
    id       INTEGER PRIMARY KEY,
    room_id  INTEGER NOT NULL,
    action   TEXT NOT NULL,
    actor_id INTEGER NOT NULL REFERENCES users(id),
    target   TEXT,
    seq      INTEGER,
    reason   TEXT,
    until    INTEGER,
    ts       INTEGER NOT NULL
);
CREATE INDEX mod_log_room ON mod_log(room_id, id);
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY,
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    reporter_id INTEGER NOT NULL REFERENCES users(id),
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',
    resolved_by INTEGER REFERENCES users(id),
    note        TEXT,
    resolved_at INTEGER,
    ts          INTEGER NOT NULL
);
CREATE INDEX reports_open ON reports(room_id, status, id);
"#,
    // Reports keep a snapshot of the reported message, so the evidence survives its
    // deletion; the heartbeat row proves the write path to the health check.
    r#"
ALTER TABLE reports ADD COLUMN author_id INTEGER REFERENCES users(id);
ALTER TABLE reports ADD COLUMN body TEXT;
ALTER TABLE reports ADD COLUMN message_ts INTEGER;
UPDATE reports SET (author_id, body, message_ts) =
    (SELECT m.author_id, m.body, m.ts FROM messages m WHERE m.room_id = reports.room_id AND m.seq = reports.seq);
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO heartbeat (id, n, at) VALUES (1, 0, 0);
"#,
    // Display names compared as names: no one may take another member's name.
    r#"
ALTER TABLE users ADD COLUMN display_fold TEXT;
UPDATE users SET display_fold = lower(trim(display_name));
CREATE INDEX users_display_fold ON users(display_fold);
"#,
    // One report per reporter and message: 400 reports from one member would make the
    // list useless (earlier duplicates are merged into the first).
    r#"
DELETE FROM reports WHERE id NOT IN (SELECT min(id) FROM reports GROUP BY room_id, seq, reporter_id);
CREATE UNIQUE INDEX reports_once ON reports(room_id, seq, reporter_id);
"#,
    // Changes made outside the server (the CLI), which a running server polls for.
    r#"
CREATE TABLE changes (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    at      INTEGER NOT NULL
);
"#,
    // Tokens expire after a time unused, and after a time at all.
    r#"
ALTER TABLE sessions ADD COLUMN used_at INTEGER;
UPDATE sessions SET used_at = created_at;
"#,
    // Read markers, shared by a member's devices: what counts as unread.
    r#"
CREATE TABLE read_markers (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
"#,
    // Edited messages say when.
    r#"
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
"#,
    // Replies name the message they answer.
    r#"
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
"#,
    // Mentions: the usernames a message names, separated by spaces (NULL for none).
    r#"
ALTER TABLE messages ADD COLUMN mentions TEXT;
"#,
    // Search: a full-text index of the bodies that are not deleted. Contentless, so the
    // text is not kept twice; a row's key is room_id << 32 | seq. Triggers keep it true
    // through sends, edits and deletions.
    r#"
CREATE VIRTUAL TABLE message_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO message_search (rowid, body)
    SELECT (room_id << 32) | seq, body FROM messages WHERE deleted = 0 AND body IS NOT NULL;
CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.deleted = 0 AND new.body IS NOT NULL
BEGIN
    INSERT INTO message_search (rowid, body) VALUES ((new.room_id << 32) | new.seq, new.body);
END;
CREATE TRIGGER message_search_update AFTER UPDATE OF body, deleted ON messages
BEGIN
    DELETE FROM message_search WHERE rowid = (old.room_id << 32) | old.seq;
    INSERT INTO message_search (rowid, body)
        SELECT (new.room_id << 32) | new.seq, new.body WHERE new.deleted = 0 AND new.body IS NOT NULL;
END;
"#,
    // Reactions: one row per member, message and emoji.
    r#"
CREATE TABLE reactions (
    room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    emoji TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (room_id, seq, emoji, user_id),
    FOREIGN KEY (room_id, seq) REFERENCES messages(room_id, seq)
) WITHOUT ROWID;
"#,
    // A member's own region, for the support resources they are offered.
    r#"
ALTER TABLE users ADD COLUMN region TEXT;
"#,
    // Care alerts: someone in a room may need care now.
    r#"
CREATE TABLE care_alerts (
    id        INTEGER PRIMARY KEY,
    room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    author_id INTEGER NOT NULL REFERENCES users(id),
    kind      TEXT NOT NULL,
    by_id     INTEGER REFERENCES users(id),
    note      TEXT,
    ts        INTEGER NOT NULL,
    acked_by  INTEGER REFERENCES users(id),
    acked_at  INTEGER
);
CREATE INDEX care_alerts_open ON care_alerts(room_id, acked_at, id);
"#,
    // Hosted rooms: members send only while a host is on duty.
    r#"
ALTER TABLE rooms ADD COLUMN requires_host INTEGER NOT NULL DEFAULT 0;
CREATE TABLE room_hosts (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    since   INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
"#, // Content warnings: a message's tags (one bit each) and note; a member's
    // preferences (two bits per tag, 0 = collapse).
    r#"
ALTER TABLE messages ADD COLUMN cw INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN cw_note TEXT;
ALTER TABLE users ADD COLUMN cw_prefs INTEGER NOT NULL DEFAULT 0;
"#,
    // Blocks: a member keeps another's messages and typing away from them.
    r#"
CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    since      INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
"#,
    // A member's own messages, in order, for their export.
    r#"
CREATE INDEX messages_author ON messages(author_id, room_id, seq);
"#,
    // Appeals: a member contests a sanction; one open appeal per sanction.
    r#"
CREATE TABLE appeals (
    id          INTEGER PRIMARY KEY,
    log_id      INTEGER NOT NULL REFERENCES mod_log(id),
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    outcome     TEXT,
    note        TEXT,
    resolved_by INTEGER REFERENCES users(id),
    resolved_at INTEGER
);
CREATE UNIQUE INDEX appeals_one_open ON appeals(log_id) WHERE outcome IS NULL;
CREATE INDEX appeals_by ON appeals(user_id, id);
"#,
    // Closed groups: private rooms with join requests, history since joining, invite codes.
    r#"
ALTER TABLE rooms ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN since_join INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE join_requests (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE TABLE invites (
    code_hash  BLOB PRIMARY KEY,
    uses_left  INTEGER NOT NULL,
    expires_at INTEGER,
    created_by INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL
);
"#,
    // Summits run through phases (PROTOCOL §12): the phase now (NULL for topic rooms;
    // a summit without a schedule is in the hallway, the version 1 behaviour), the
    // phases still to come (`phase@unix-ms` separated by spaces), and speakers found
    // by their room role.
    r#"
ALTER TABLE rooms ADD COLUMN phase TEXT;
ALTER TABLE rooms ADD COLUMN schedule TEXT NOT NULL DEFAULT '';
UPDATE rooms SET phase = 'hallway' WHERE kind = 'summit';
CREATE INDEX memberships_speakers ON memberships(room_id) WHERE room_role = 'speaker';
"#,
    // Summit questions and their votes (one per member), counted on the question.
    r#"
CREATE TABLE questions (
    id        INTEGER PRIMARY KEY,
    room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    author_id INTEGER NOT NULL REFERENCES users(id),
    body      TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    status    TEXT NOT NULL DEFAULT 'pending',
    votes     INTEGER NOT NULL DEFAULT 0,
    ts        INTEGER NOT NULL
);
CREATE INDEX questions_room ON questions(room_id, status, votes, ts);
CREATE INDEX questions_author ON questions(author_id);
CREATE TABLE question_votes (
    question_id INTEGER NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (question_id, user_id)
) WITHOUT ROWID;
CREATE INDEX question_votes_user ON question_votes(user_id);
"#,
    // Summits may let people in beyond capacity as viewers (room role `viewer`).
    r#"
ALTER TABLE rooms ADD COLUMN viewers INTEGER NOT NULL DEFAULT 0;
"#,
    // A summit imported from a programme keeps its session's own times (what calendars
    // show; the phases bound the room) and the time zone they were given in. Every room
    // read counts its viewers: from an index of them alone, not its whole membership.
    r#"
ALTER TABLE rooms ADD COLUMN session_start INTEGER;
ALTER TABLE rooms ADD COLUMN session_end INTEGER;
ALTER TABLE rooms ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
CREATE INDEX memberships_viewers ON memberships(room_id) WHERE room_role = 'viewer';
"#,
];

/// The schema version this build migrates to.
pub(super) const LATEST: usize = MIGRATIONS.len();

/// The schema version the database is at (0 for a new file).
pub(super) async fn version(pool: &SqlitePool) -> Result<usize, OpenError> {
    let done: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(pool).await?;
    Ok(usize::try_from(done).unwrap_or(0))
}

/// Brings the schema up to date, each migration in its own write transaction.
pub(super) async fn migrate(pool: &SqlitePool, health: &std::sync::Arc<WriteHealth>) -> Result<(), OpenError> {
    let done = version(pool).await?;
    if done > MIGRATIONS.len() {
        return Err(OpenError::Migration(format!(
            "the database has schema version {done}, newer than this build knows ({}); use a newer alongside",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let mut tx = WriteTx::begin(pool, health).await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", index + 1)).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Refuses a write connection that would not keep the durability promise: the journal
/// must be the write-ahead log and `synchronous` must be FULL, so a committed write
/// survives a power loss. SQLite falls back silently (a file system without shared
/// memory cannot hold a WAL), so this asks the opened file what it got.
pub(super) async fn check_durability(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(sqlx::Error::Configuration(
            format!(
                "the database runs with journal_mode={journal}, not WAL, so writes would not be durable \
                 (is it on a network file system, or held open elsewhere in another journal mode?)"
            )
            .into(),
        ));
    }
    // 2 = FULL: the log is synced at every commit.
    if synchronous != 2 {
        return Err(sqlx::Error::Configuration(
            format!("the database runs with synchronous={synchronous}, not FULL (2), so writes would not be durable")
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn connection(dir: &tempfile::TempDir, pragmas: &str) -> SqliteConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("check.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(pragmas).execute(&mut conn).await.unwrap();
        conn
    }

    #[tokio::test]
    async fn only_wal_with_full_sync_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connection(&dir, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL").await;
        let refused = check_durability(&mut conn).await.unwrap_err().to_string();
        assert!(refused.contains("journal_mode=delete, not WAL"), "{refused}");
        let mut conn = connection(&dir, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL").await;
        let refused = check_durability(&mut conn).await.unwrap_err().to_string();
        assert!(refused.contains("synchronous=1, not FULL"), "{refused}");
        let mut conn = connection(&dir, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL").await;
        check_durability(&mut conn).await.unwrap();
    }
}
