//! `alongside backup` and `alongside restore` for the SQLite store, and the lock that
//! tells a restore a server is using the database.
//!
//! A backup is SQLite's `VACUUM INTO` on a read transaction: a consistent snapshot of
//! everything committed when it began, taken while the server goes on writing (WAL
//! readers do not block the writer). It is written beside the target, checked
//! (`integrity_check`), synced, and only then renamed over the target, so a failed or
//! interrupted backup never leaves a half file under the name a restore would use.
//!
//! A restore copies the backup in the same way and swaps it in, keeping the database it
//! replaces (its write-ahead log folded in first) as `PATH.replaced-<unix seconds>`.
//! Every running server holds a shared `flock` on its database file; a restore takes it
//! exclusively, so it refuses while a server (or another restore) has the file open.

use super::schema;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// What a backup or restore holds, to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Schema version (`PRAGMA user_version`).
    pub version: usize,
    /// Accounts.
    pub users: i64,
    /// Rooms.
    pub rooms: i64,
    /// Messages.
    pub messages: i64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} accounts, {} rooms, {} messages (schema version {})",
            self.users, self.rooms, self.messages, self.version
        )
    }
}

/// The database file a `sqlite://` URL names; other URLs are refused with what to use.
pub fn path_of(url: &str) -> Result<PathBuf, String> {
    if crate::store::is_postgres(url) {
        return Err("this is a PostgreSQL database: back it up with pg_dump and restore it with pg_restore \
                    (docs/operations.md shows how)"
            .into());
    }
    if !url.starts_with("sqlite:") {
        return Err(format!("`{}` is not a sqlite:// database URL", crate::store::redacted(url)));
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|err| err.to_string())?;
    let path = options.get_filename().to_path_buf();
    if path.as_os_str().is_empty() || url.contains(":memory:") || url.contains("mode=memory") {
        return Err("an in-memory database has nothing to back up or restore".into());
    }
    Ok(path)
}

/// A shared lock on the database file, held while a server runs; `None` when the file
/// does not exist (yet).
pub fn hold(path: &Path) -> Result<Option<std::fs::File>, String> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(None) };
    if flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(Some(file))
    } else {
        Err(format!("{} is being restored; start the server when the restore has finished", path.display()))
    }
}

fn flock(file: &std::fs::File, operation: i32) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; it touches nothing else.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

async fn connect(path: &Path, read_only: bool) -> Result<SqliteConnection, String> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .create_if_missing(false)
        // The server commits in short transactions; a backup waits for them.
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|err| format!("cannot open {}: {err}", path.display()))
}

/// Copies the database at `path` into `into` (which must not exist) with `VACUUM INTO`.
async fn vacuum_into(path: &Path, into: &Path, read_only: bool) -> Result<(), String> {
    let mut conn = connect(path, read_only).await?;
    let into_text = into.to_str().ok_or_else(|| format!("{} is not a UTF-8 path", into.display()))?;
    let copied = sqlx::query("VACUUM INTO ?").bind(into_text).execute(&mut conn).await;
    let _ = conn.close().await;
    copied.map_err(|err| format!("cannot copy {}: {err}", path.display()))?;
    // VACUUM INTO does not sync its output.
    std::fs::File::open(into)
        .and_then(|file| file.sync_all())
        .map_err(|err| format!("cannot sync {}: {err}", into.display()))
}

/// Checks that `path` is a whole Alongside database this build can run, and counts it.
async fn check(path: &Path) -> Result<Summary, String> {
    let mut conn = connect(path, true).await?;
    let outcome = async {
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut conn).await?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'rooms', 'messages')",
        )
        .fetch_one(&mut conn)
        .await?;
        if tables != 3 {
            return Ok(Err(format!("{} is not an Alongside database", path.display())));
        }
        let count = |table: &str| format!("SELECT count(*) FROM {table}");
        let users: i64 = sqlx::query_scalar(&count("users")).fetch_one(&mut conn).await?;
        let rooms: i64 = sqlx::query_scalar(&count("rooms")).fetch_one(&mut conn).await?;
        let messages: i64 = sqlx::query_scalar(&count("messages")).fetch_one(&mut conn).await?;
        Ok::<_, sqlx::Error>(Ok((integrity, version, Summary { version: version as usize, users, rooms, messages })))
    }
    .await;
    let _ = conn.close().await;
    let (integrity, version, summary) = outcome.map_err(|err| format!("cannot read {}: {err}", path.display()))??;
    if integrity != "ok" {
        return Err(format!("{} is damaged: {integrity}", path.display()));
    }
    if version as usize > schema::LATEST {
        return Err(format!(
            "{} has schema version {version}, newer than this build knows ({}); use a newer alongside",
            path.display(),
            schema::LATEST
        ));
    }
    Ok(summary)
}

/// A name beside `path` for work in progress, hidden and unique to this process.
fn beside(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

/// Backs the database at `url` up into `target` (replacing it only once the new copy is
/// whole); works while a server runs.
pub async fn backup(url: &str, target: &Path) -> Result<Summary, String> {
    let path = path_of(url)?;
    if !path.exists() {
        return Err(format!("there is no database at {}", path.display()));
    }
    let partial = beside(target, "partial");
    let _ = std::fs::remove_file(&partial);
    let done = async {
        vacuum_into(&path, &partial, false).await?;
        let summary = check(&partial).await?;
        std::fs::rename(&partial, target).map_err(|err| format!("cannot write {}: {err}", target.display()))?;
        sync_dir(target);
        Ok(summary)
    }
    .await;
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done
}

/// Replaces the database at `url` with the backup `source`; refuses while a server has
/// the database open. Returns what the restored database holds and where the replaced
/// one was kept.
pub async fn restore(source: &Path, url: &str) -> Result<(Summary, Option<PathBuf>), String> {
    let path = path_of(url)?;
    if !source.exists() {
        return Err(format!("there is no backup at {}", source.display()));
    }
    check(source).await?;
    // Held until the new file is in place.
    let lock = match std::fs::File::open(&path) {
        Ok(file) if flock(&file, libc::LOCK_EX | libc::LOCK_NB) => Some(file),
        Ok(_) => return Err(format!("a server is using {}: stop it, restore, then start it again", path.display())),
        Err(_) => None,
    };
    let incoming = beside(&path, "restoring");
    let _ = std::fs::remove_file(&incoming);
    let copied = async {
        vacuum_into(source, &incoming, true).await?;
        check(&incoming).await
    }
    .await;
    let summary = match copied {
        Ok(summary) => summary,
        Err(err) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(err);
        }
    };
    let mut kept = None;
    if lock.is_some() {
        // Fold the old database's write-ahead log into it (closing the last connection
        // checkpoints), then keep it beside: a restore never destroys anything.
        let conn = connect(&path, false).await?;
        let _ = conn.close().await;
        let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let replaced = path.with_file_name(format!("{name}.replaced-{seconds}"));
        std::fs::rename(&path, &replaced).map_err(|err| format!("cannot move {} aside: {err}", path.display()))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
        kept = Some(replaced);
    }
    std::fs::rename(&incoming, &path).map_err(|err| format!("cannot put the backup in place: {err}"))?;
    sync_dir(&path);
    drop(lock);
    Ok((summary, kept))
}
