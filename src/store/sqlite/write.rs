//! The write side of the SQLite store: one connection, one transaction at a time, and
//! never a failed transaction carried into the next one.
//!
//! On some errors (`SQLITE_FULL`, `SQLITE_IOERR`, ...) SQLite rolls a transaction back by
//! itself. A driver that does not notice keeps a stale idea of where it is: its next
//! "begin" becomes a savepoint inside a transaction that is still open, and every later
//! "commit" is a savepoint release that is acknowledged and never stored. So this
//! module owns the transaction boundaries instead of the driver's bookkeeping:
//!
//! - every write transaction begins `BEGIN IMMEDIATE`, taking the write lock up front,
//!   so a locked database fails at the start, not halfway through;
//! - it ends with an explicit `COMMIT` or `ROLLBACK`, after which the connection must be
//!   back in autocommit mode, asked of SQLite itself; anything else is a failed end;
//! - after any error inside a transaction, and for a transaction dropped without an end
//!   (an error returned with `?`, a cancelled future), the connection is closed, which
//!   rolls back whatever SQLite still holds, and the pool opens a fresh one for the next
//!   write.
//!
//! Every end is reported to the store's [`WriteHealth`]. The SQLite side of the group
//! commit (`store::writer`) lives here too, with the heartbeat that proves the write path
//! to `/healthz`.

use super::write_one;
use crate::store::writer::{Batch, BatchWriter, Job};
use crate::store::WriteHealth;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Connection, Executor, Sqlite};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// One write transaction on the store's single write connection. Deref gives the
/// connection for statements; end it with [`commit`](WriteTx::commit) or
/// [`rollback`](WriteTx::rollback). Dropped without either, it closes the connection.
pub(super) struct WriteTx {
    /// `None` once the transaction has ended.
    conn: Option<PoolConnection<Sqlite>>,
    health: Arc<WriteHealth>,
}

impl WriteTx {
    /// Takes the write connection (waiting for it) and begins `IMMEDIATE`.
    pub(super) async fn begin(pool: &SqlitePool, health: &Arc<WriteHealth>) -> Result<WriteTx, sqlx::Error> {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => {
                health.failed(&err);
                return Err(err);
            }
        };
        if let Err(err) = conn.execute("BEGIN IMMEDIATE").await {
            health.failed(&err);
            close(conn).await;
            return Err(err);
        }
        Ok(WriteTx { conn: Some(conn), health: health.clone() })
    }

    /// Commits; `Ok` only if SQLite committed and the connection left the transaction.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// Rolls back on purpose (an early return that changed nothing worth keeping).
    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("a transaction ends once");
        let ended = match conn.execute(sql).await {
            Ok(_) => match in_transaction(&mut conn).await {
                Ok(false) => Ok(()),
                Ok(true) => Err(sqlx::Error::Protocol(format!("the connection is still in a transaction after {sql}"))),
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        match ended {
            Ok(()) => {
                // A rollback proves the connection is sound, not that writes are stored.
                if sql == "COMMIT" {
                    self.health.committed();
                }
                Ok(())
            }
            Err(err) => {
                self.health.failed(&err);
                close(conn).await;
                Err(err)
            }
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("the transaction is open")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("the transaction is open")
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Neither committed nor rolled back: a statement failed, or the caller's
            // future was dropped mid-write. Whatever SQLite holds, this connection goes.
            // Counted as a failure either way (this cannot tell the two apart); after a
            // mere cancellation the writer's next heartbeat, within a second, clears it.
            self.health.failed(&"a write transaction was abandoned: a statement failed or the request was cancelled");
            drop(conn.detach());
        }
    }
}

/// Whether SQLite says the connection is inside a transaction (not in autocommit mode).
pub(super) async fn in_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: `lock_handle` keeps the connection's worker thread off the handle while
    // we hold it, and `sqlite3_get_autocommit` only reads a flag of a live connection.
    let autocommit = unsafe { libsqlite3_sys::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) };
    Ok(autocommit == 0)
}

/// Takes a connection out of the pool and closes it; the pool opens a fresh one when
/// it is next needed. Closing rolls back any transaction SQLite still holds.
async fn close(conn: PoolConnection<Sqlite>) {
    if let Err(err) = conn.detach().close().await {
        tracing::debug!(error = %err, "closing a failed write connection");
    }
}

/// Folds the write-ahead log back into the database file and empties it, so content
/// just deleted (overwritten with zeros under `secure_delete`) leaves no older copy in
/// the log. Best effort: a reader in the middle of a long read makes SQLite skip it,
/// and the next checkpoint does it.
pub(super) async fn checkpoint_truncate(pool: &SqlitePool) {
    let Ok(mut conn) = pool.acquire().await else { return };
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await {
        Ok((0, _, _)) => {}
        Ok(_) => tracing::debug!("a reader was busy; the write-ahead log is emptied at a later checkpoint"),
        Err(err) => {
            tracing::warn!(error = %err, "checkpoint after a deletion failed");
            if in_transaction(&mut conn).await.unwrap_or(true) {
                close(conn).await;
            }
        }
    }
}

/// The SQLite side of the group commit: each batch in one `WriteTx`.
pub(super) struct SqliteBatches {
    pub(super) writes: SqlitePool,
    pub(super) reads: SqlitePool,
    pub(super) health: Arc<WriteHealth>,
}

#[async_trait]
impl BatchWriter for SqliteBatches {
    async fn write_batch(&self, jobs: &[Job]) -> Result<Batch, sqlx::Error> {
        let mut tx = WriteTx::begin(&self.writes, &self.health).await?;
        let mut batch = Batch { messages: Vec::with_capacity(jobs.len()), heartbeat: None };
        for job in jobs {
            match job {
                Job::Message(message, _) => batch.messages.push(write_one(&mut tx, message).await?),
                Job::Heartbeat(_) if batch.heartbeat.is_none() => {
                    let beat = sqlx::query_scalar("UPDATE heartbeat SET n = n + 1, at = ? WHERE id = 1 RETURNING n")
                        .bind(crate::protocol::now_ms())
                        .fetch_one(&mut *tx)
                        .await?;
                    batch.heartbeat = Some(beat);
                }
                Job::Heartbeat(_) => {}
            }
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn read_heartbeat(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT n FROM heartbeat WHERE id = 1").fetch_one(&self.reads).await
    }
}
