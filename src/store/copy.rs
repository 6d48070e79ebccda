//! `alongside copy --from sqlite://... --to postgres://...`: moves a network that
//! started on SQLite to PostgreSQL without losing a message or a seq.
//!
//! The source is read in one read transaction (a consistent snapshot, even beside a
//! running server; stop it first so nothing is sent after the snapshot). The
//! destination is written in one transaction (all of it or nothing) with `COPY`, then
//! its id counters are moved past the copied ids and every table's rows are counted on
//! both sides. An empty destination only: copying into a network that has data would
//! mix two histories.

use super::{is_postgres, postgres, sqlite, OpenError};
use futures_util::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Connection, Row};
use std::str::FromStr;

/// How a column is read from SQLite and written for `COPY`.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    /// An integer 0/1 in SQLite, a boolean in PostgreSQL.
    Flag,
}

use Kind::{Bytes, Flag, Int, Text};

/// Every table that holds the network, parents before children, with its columns.
/// (`heartbeat` is the store's own, and `changes` are commands for running servers.)
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Int),
            ("username", Text),
            ("display_name", Text),
            ("display_fold", Text),
            ("password_hash", Text),
            ("role", Text),
            ("created_at", Int),
            ("region", Text),
            ("cw_prefs", Int),
        ],
    ),
    ("sessions", &[("token_hash", Bytes), ("user_id", Int), ("created_at", Int), ("used_at", Int)]),
    (
        "rooms",
        &[
            ("id", Int),
            ("name", Text),
            ("topic", Text),
            ("kind", Text),
            ("owner_id", Int),
            ("slow_mode_s", Int),
            ("locked", Flag),
            ("starts_at", Int),
            ("ends_at", Int),
            ("capacity", Int),
            ("last_seq", Int),
            ("created_at", Int),
            ("requires_host", Flag),
            ("private", Flag),
            ("since_join", Flag),
            ("phase", Text),
            ("schedule", Text),
            ("viewers", Flag),
            ("session_start", Int),
            ("session_end", Int),
            ("time_zone", Text),
        ],
    ),
    (
        "memberships",
        &[("room_id", Int), ("user_id", Int), ("room_role", Text), ("joined_at", Int), ("joined_seq", Int)],
    ),
    ("join_requests", &[("room_id", Int), ("user_id", Int), ("ts", Int)]),
    (
        "invites",
        &[("code_hash", Bytes), ("uses_left", Int), ("expires_at", Int), ("created_by", Int), ("created_at", Int)],
    ),
    ("blocks", &[("blocker_id", Int), ("blocked_id", Int), ("since", Int)]),
    (
        "messages",
        &[
            ("room_id", Int),
            ("seq", Int),
            ("author_id", Int),
            ("body", Text),
            ("ts", Int),
            ("client_msg_id", Text),
            ("deleted", Flag),
            ("edited_at", Int),
            ("reply_to", Int),
            ("mentions", Text),
            ("cw", Int),
            ("cw_note", Text),
        ],
    ),
    ("mutes", &[("room_id", Int), ("user_id", Int), ("until", Int), ("reason", Text), ("actor_id", Int)]),
    ("bans", &[("room_id", Int), ("user_id", Int), ("until", Int), ("reason", Text), ("actor_id", Int)]),
    (
        "mod_log",
        &[
            ("id", Int),
            ("room_id", Int),
            ("action", Text),
            ("actor_id", Int),
            ("target", Text),
            ("seq", Int),
            ("reason", Text),
            ("until", Int),
            ("ts", Int),
        ],
    ),
    (
        "reports",
        &[
            ("id", Int),
            ("room_id", Int),
            ("seq", Int),
            ("reporter_id", Int),
            ("reason", Text),
            ("status", Text),
            ("resolved_by", Int),
            ("note", Text),
            ("resolved_at", Int),
            ("ts", Int),
            ("author_id", Int),
            ("body", Text),
            ("message_ts", Int),
        ],
    ),
    ("read_markers", &[("room_id", Int), ("user_id", Int), ("seq", Int)]),
    ("room_hosts", &[("room_id", Int), ("user_id", Int), ("since", Int)]),
    (
        "care_alerts",
        &[
            ("id", Int),
            ("room_id", Int),
            ("seq", Int),
            ("author_id", Int),
            ("kind", Text),
            ("by_id", Int),
            ("note", Text),
            ("ts", Int),
            ("acked_by", Int),
            ("acked_at", Int),
        ],
    ),
    ("reactions", &[("room_id", Int), ("seq", Int), ("emoji", Text), ("user_id", Int)]),
    (
        "appeals",
        &[
            ("id", Int),
            ("log_id", Int),
            ("user_id", Int),
            ("text", Text),
            ("ts", Int),
            ("outcome", Text),
            ("note", Text),
            ("resolved_by", Int),
            ("resolved_at", Int),
        ],
    ),
    (
        "questions",
        &[
            ("id", Int),
            ("room_id", Int),
            ("author_id", Int),
            ("body", Text),
            ("anonymous", Flag),
            ("status", Text),
            ("votes", Int),
            ("ts", Int),
        ],
    ),
    ("question_votes", &[("question_id", Int), ("user_id", Int)]),
];

/// The tables whose ids PostgreSQL hands out, so its counters must start past ours.
const IDENTITIES: &[&str] = &["users", "rooms", "mod_log", "reports", "care_alerts", "appeals", "questions"];

/// Bytes of `COPY` data sent at a time.
const CHUNK: usize = 1 << 20;

/// Copies every row from the SQLite database at `from` into the empty PostgreSQL
/// database at `to`; the rows copied per table.
pub async fn copy(from: &str, to: &str) -> Result<Vec<(&'static str, u64)>, OpenError> {
    if !from.starts_with("sqlite:") || !is_postgres(to) {
        return Err(OpenError::Copy(
            "copy moves a network from SQLite to PostgreSQL: --from sqlite://PATH --to postgres://...".into(),
        ));
    }
    let options = SqliteConnectOptions::from_str(from)?.read_only(true);
    if !options.get_filename().exists() {
        return Err(OpenError::Copy(format!("there is no database at {}", options.get_filename().display())));
    }
    // Both schemas current (the source as `serve` would leave it).
    sqlite::SqliteStore::migrate(from).await?;
    postgres::PostgresStore::migrate(to).await?;
    let mut source = SqliteConnection::connect_with(&options).await?;
    let mut destination = PgConnection::connect(to).await?;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut destination).await?;
    if users > 0 {
        return Err(OpenError::Copy(format!(
            "the destination already holds {users} accounts; copy only into an empty database"
        )));
    }
    // One snapshot of the source, one transaction on the destination.
    sqlx::query("BEGIN").execute(&mut source).await?;
    let mut tx = destination.begin().await?;
    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let n = copy_table(&mut source, &mut tx, table, columns).await?;
        let there: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await?;
        if there != n as i64 {
            return Err(OpenError::Copy(format!("{table}: read {n} rows but {there} arrived; nothing was kept")));
        }
        copied.push((*table, n));
    }
    for table in IDENTITIES {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    // Every room's counter covers its messages, so the next seq follows the last copied.
    let behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rooms r WHERE r.last_seq < coalesce((SELECT max(seq) FROM messages m WHERE m.room_id = r.id), 0)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if behind > 0 {
        return Err(OpenError::Copy(format!("{behind} rooms have messages past their seq counter; nothing was kept")));
    }
    tx.commit().await?;
    sqlx::query("COMMIT").execute(&mut source).await?;
    Ok(copied)
}

async fn copy_table(
    source: &mut SqliteConnection,
    destination: &mut PgConnection,
    table: &str,
    columns: &[(&str, Kind)],
) -> Result<u64, OpenError> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let list = names.join(", ");
    let mut sink = destination.copy_in_raw(&format!("COPY {table} ({list}) FROM STDIN WITH (FORMAT csv)")).await?;
    let mut buffer = String::with_capacity(CHUNK + 4096);
    let mut rows = 0u64;
    let select = format!("SELECT {list} FROM {table}");
    let mut stream = sqlx::query(&select).fetch(&mut *source);
    while let Some(row) = stream.try_next().await? {
        csv_line(&row, columns, &mut buffer)?;
        rows += 1;
        if buffer.len() >= CHUNK {
            sink.send(std::mem::take(&mut buffer).into_bytes()).await?;
        }
    }
    drop(stream);
    if !buffer.is_empty() {
        sink.send(buffer.into_bytes()).await?;
    }
    sink.finish().await?;
    Ok(rows)
}

/// One row as a CSV line: NULL is an empty field, text is always quoted (so an empty
/// string stays empty, not NULL), bytes are PostgreSQL's hex form.
fn csv_line(row: &SqliteRow, columns: &[(&str, Kind)], out: &mut String) -> Result<(), sqlx::Error> {
    use std::fmt::Write;
    for (index, (name, kind)) in columns.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        match kind {
            Int => {
                if let Some(value) = row.try_get::<Option<i64>, _>(*name)? {
                    let _ = write!(out, "{value}");
                }
            }
            Flag => {
                if let Some(value) = row.try_get::<Option<i64>, _>(*name)? {
                    out.push(if value != 0 { 't' } else { 'f' });
                }
            }
            Text => {
                if let Some(value) = row.try_get::<Option<String>, _>(*name)? {
                    out.push('"');
                    out.push_str(&value.replace('"', "\"\""));
                    out.push('"');
                }
            }
            Bytes => {
                if let Some(value) = row.try_get::<Option<Vec<u8>>, _>(*name)? {
                    out.push_str("\\x");
                    for byte in value {
                        let _ = write!(out, "{byte:02x}");
                    }
                }
            }
        }
    }
    out.push('\n');
    Ok(())
}
