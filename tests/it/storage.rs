//! Storage faults: a full disk, a read-only file, a database locked by another process.
//! In each, a write is answered with an error and never with `ok`, nothing acknowledged
//! is lost, no seq is handed out twice, `/healthz` says what is going on, and the
//! server recovers by itself once the fault is gone.

use crate::support::*;
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// Registers (when asked) and logs in `name` over HTTP; the status and token, if any.
async fn login(addr: std::net::SocketAddr, name: &str, register: bool) -> (u16, Option<String>) {
    let credentials = json!({"username": name, "password": "storage password"}).to_string();
    if register {
        let (status, body) = http(addr, "POST", "/api/v1/register", &[], Some(&credentials)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = http(addr, "POST", "/api/v1/login", &[], Some(&credentials)).await;
    let token = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["token"].as_str().map(str::to_string));
    (status, token)
}

/// Registers `name`, connects, and creates `room`; the token and the socket.
async fn owner_of_room(binary: &Binary, name: &str, room: &str) -> (String, Client) {
    let (_, token) = login(binary.addr, name, true).await;
    let token = token.expect("a token");
    let mut client = Client::connect(&binary.ws_url(), None).await;
    client.ok(json!({"type": "auth", "token": token})).await;
    client.ok(json!({"type": "create_room", "name": room})).await;
    (token, client)
}

async fn healthz(addr: std::net::SocketAddr) -> u16 {
    http(addr, "GET", "/healthz", &[], None).await.0
}

/// One figure from `/metrics`.
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (_, text) = http(addr, "GET", "/metrics", &[], None).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Polls `/metrics` (which writes nothing itself) until the server says on its own
/// that writes succeed again.
async fn wait_until_writable(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(addr, "alongside_store_writable").await != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the server never found that writes work again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/healthz` until it answers `status`.
async fn wait_for_health(addr: std::net::SocketAddr, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while healthz(addr).await != status {
        assert!(tokio::time::Instant::now() < deadline, "/healthz never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets the soft limit on the size of files `pid` may write (`None` = unlimited).
fn limit_file_size(pid: i32, bytes: Option<u64>) {
    let limit = libc::rlimit { rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY), rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit on our own child, with a valid limit and no old value asked for.
    let done = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Every message of `room` as an independent reader of the file sees it: (seq, body).
async fn messages_in_file(db: &Path, room: &str) -> Vec<(i64, Option<String>)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = SqliteConnection::connect(&url).await.expect("open the database file");
    let rows = sqlx::query_as(
        "SELECT m.seq, m.body FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.name = ? ORDER BY m.seq",
    )
    .bind(room)
    .fetch_all(&mut conn)
    .await
    .expect("read messages");
    conn.close().await.expect("close");
    rows
}

/// Asserts `acked` (seq → body, every `ok` the server gave) is exactly what `stored`
/// holds, with seqs 1..n and no gaps.
fn assert_all_acked_stored(acked: &BTreeMap<i64, String>, stored: &[(i64, Option<String>)]) {
    let seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=stored.len() as i64).collect::<Vec<_>>(), "seqs are contiguous from 1");
    for (seq, body) in acked {
        let found = stored.iter().find(|(s, _)| s == seq).map(|(_, b)| b.clone());
        assert_eq!(found, Some(Some(body.clone())), "acknowledged message {seq} ({body}) is not stored as sent");
    }
}

/// Sends `body` with `client_msg_id` = `body`; records an `ok` in `acked`. Returns the
/// reply's type and code.
async fn send(client: &mut Client, room: &str, body: &str, acked: &mut BTreeMap<i64, String>) -> (String, String) {
    let reply = client.request(json!({"type": "send", "room": room, "body": body, "client_msg_id": body})).await;
    if reply["type"] == "ok" {
        let seq = reply["message"]["seq"].as_i64().unwrap();
        let earlier = acked.insert(seq, body.to_string());
        assert!(earlier.is_none(), "seq {seq} was handed out twice: {earlier:?} and {body}");
    }
    (reply["type"].as_str().unwrap().to_string(), reply["code"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_full_disk_never_gets_an_ok_and_the_server_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    // The default disposition of SIGXFSZ kills the process; the server must ignore it.
    let binary = Binary::start_with(&db, |command| unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    });
    let (token, mut client) = owner_of_room(&binary, "filler", "full").await;
    let mut acked = BTreeMap::new();
    send(&mut client, "full", "before the limit", &mut acked).await;

    // The write-ahead log may grow by 48 KiB more: a handful of commits.
    let wal = std::fs::metadata(dir.path().join("full.db-wal")).map(|m| m.len()).unwrap_or(0);
    let main = std::fs::metadata(&db).unwrap().len();
    limit_file_size(binary.pid(), Some(wal.max(main) + 48 * 1024));
    let (mut failures_in_a_row, mut n) = (0, 0);
    while failures_in_a_row < 3 {
        n += 1;
        assert!(n < 200, "sends never failed with the file size limited");
        let (kind, code) = send(&mut client, "full", &format!("full-{n}"), &mut acked).await;
        if kind == "error" {
            assert_eq!(code, "internal", "a failed write is `internal`");
            failures_in_a_row += 1;
        } else {
            failures_in_a_row = 0;
        }
    }
    // A login while full either fails plainly or gives a token that works later.
    let (status, full_token) = login(binary.addr, "filler", false).await;
    assert!(status == 500 || status == 200, "login while full: {status}");
    // A heartbeat may still find room for its one small page; each one uses it up.
    let mut unhealthy = false;
    for attempt in 0..10 {
        if healthz(binary.addr).await == 503 {
            unhealthy = true;
            break;
        }
        send(&mut client, "full", &format!("probe-{attempt}"), &mut acked).await;
    }
    assert!(unhealthy, "/healthz kept answering 200 with the disk full");
    assert_eq!(metric(binary.addr, "alongside_store_writable").await, 0.0);
    assert!(metric(binary.addr, "alongside_store_commit_failures_total").await >= 3.0);

    // Space comes back. A routine request that ends its transaction early (joining a
    // room one is in), then the server must be whole again without a restart.
    limit_file_size(binary.pid(), None);
    client.ok(json!({"type": "join", "room": "full"})).await;
    wait_until_writable(binary.addr).await;
    assert_eq!(healthz(binary.addr).await, 200);
    for n in 0..10 {
        let (kind, code) = send(&mut client, "full", &format!("after-{n}"), &mut acked).await;
        assert_eq!((kind.as_str(), code.as_str()), ("ok", ""), "a send after recovery");
    }
    let (status, after_token) = login(binary.addr, "filler", false).await;
    assert_eq!(status, 200);
    let stored = messages_in_file(&db, "full").await;
    assert_all_acked_stored(&acked, &stored);
    assert_eq!(stored.len(), acked.len(), "every stored message was acknowledged (all resends were deduplicated)");

    // Nothing acknowledged is lost in a crash, and seqs go on where they stopped.
    binary.kill_9();
    let binary = Binary::start(&db);
    let stored = messages_in_file(&db, "full").await;
    assert_all_acked_stored(&acked, &stored);
    for token in [full_token, after_token].into_iter().flatten() {
        let mut again = Client::connect(&binary.ws_url(), None).await;
        let auth = again.ok(json!({"type": "auth", "token": token})).await;
        assert_eq!(auth["rooms"], json!(["full"]), "a token the server handed out is still good");
    }
    let mut client = Client::connect(&binary.ws_url(), None).await;
    client.ok(json!({"type": "auth", "token": token})).await;
    let history = client.ok(json!({"type": "history", "room": "full", "after": 0, "limit": 100})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), stored.len());
    let reply = client.ok(json!({"type": "send", "room": "full", "body": "after the crash"})).await;
    assert_eq!(reply["message"]["seq"], stored.len() as i64 + 1, "no seq is handed out twice");
}

/// Makes `command` run without any capability, so that file permissions bind it even
/// when the tests run as root (as CI does). Unprivileged, there is nothing to drop.
fn without_capabilities(command: &mut std::process::Command) {
    // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for capability in 0..64 {
                libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
            }
            Ok(())
        });
    }
}

/// Sets the permission bits of the database file and its companions.
fn chmod_database(db: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if Path::new(&path).exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_read_only_database_refuses_writes_plainly_and_recovers_when_writable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("readonly.db");
    let binary = Binary::start_with(&db, without_capabilities);
    let (token, mut client) = owner_of_room(&binary, "reader", "archive").await;
    let mut acked = BTreeMap::new();
    send(&mut client, "archive", "written before", &mut acked).await;
    binary.terminate();

    // Restored from a backup with the wrong permissions, say: the server still starts,
    // reads work, and every write is refused in words.
    chmod_database(&db, 0o444);
    let binary = Binary::start_with(&db, without_capabilities);
    let mut client = Client::connect(&binary.ws_url(), None).await;
    client.ok(json!({"type": "auth", "token": token})).await;
    let history = client.ok(json!({"type": "history", "room": "archive", "after": 0})).await;
    assert_eq!(history["messages"][0]["body"], "written before");
    let (kind, code) = send(&mut client, "archive", "refused", &mut acked).await;
    assert_eq!((kind.as_str(), code.as_str()), ("error", "internal"));
    let (status, _) = login(binary.addr, "reader", false).await;
    assert_eq!(status, 500, "a login that cannot be stored is refused, not handed a dead token");
    assert_eq!(healthz(binary.addr).await, 503);

    // Permissions fixed: no restart needed.
    chmod_database(&db, 0o644);
    wait_until_writable(binary.addr).await;
    assert_eq!(healthz(binary.addr).await, 200);
    let (kind, _) = send(&mut client, "archive", "written after", &mut acked).await;
    assert_eq!(kind, "ok");
    let (status, fresh) = login(binary.addr, "reader", false).await;
    assert_eq!(status, 200);
    let mut again = Client::connect(&binary.ws_url(), None).await;
    again.ok(json!({"type": "auth", "token": fresh.unwrap()})).await;
    binary.terminate();
    let stored = messages_in_file(&db, "archive").await;
    assert_all_acked_stored(&acked, &stored);
    assert_eq!(stored.len(), 2, "the refused message was not stored");
}

#[tokio::test]
async fn a_database_locked_by_another_process_refuses_writes_until_it_is_released() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let token = server.user_with_role("keeper", alongside::protocol::Role::Moderator).await;
    let mut client = server.client(&token).await;
    client.ok(json!({"type": "create_room", "name": "locked"})).await;
    let mut acked = BTreeMap::new();
    send(&mut client, "locked", "before the lock", &mut acked).await;
    client.event_of("message").await;

    // Another process (a backup script, a careless sqlite3 shell) holds the write lock.
    let mut other = SqliteConnection::connect(&format!("sqlite://{}", server.db_path.display())).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let (kind, code) = send(&mut client, "locked", "while locked", &mut acked).await;
    assert_eq!((kind.as_str(), code.as_str()), ("error", "internal"), "no `ok` while the database is locked");
    assert_eq!(healthz(server.addr).await, 503);
    client.assert_quiet(Duration::from_millis(50)).await;

    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    let (kind, _) = send(&mut client, "locked", "after the lock", &mut acked).await;
    assert_eq!(kind, "ok");
    wait_for_health(server.addr, 200).await;
    let stored = messages_in_file(&server.db_path, "locked").await;
    assert_all_acked_stored(&acked, &stored);
    assert_eq!(stored.len(), 2);
}

/// Whether `needle` occurs anywhere in the database file or its write-ahead log.
fn in_database_files(db: &Path, needle: &str) -> bool {
    ["", "-wal"].iter().any(|suffix| {
        let bytes = std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default();
        bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
    })
}

#[tokio::test]
async fn a_deleted_message_is_gone_from_the_file_itself() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let token = server.user_with_role("author", alongside::protocol::Role::Moderator).await;
    let mut client = server.client(&token).await;
    client.ok(json!({"type": "create_room", "name": "private"})).await;
    let kept = "kept-5d1c2e7b-words that stay";
    // Long enough to spill onto overflow pages, whose freed copies a plain delete
    // would leave in the file's free space.
    let erased = format!("erased-9f3a61c4-something said in confidence {}", "é".repeat(3000));
    let erased = erased.as_str();
    client.ok(json!({"type": "send", "room": "private", "body": kept})).await;
    let seq = client.ok(json!({"type": "send", "room": "private", "body": erased})).await["message"]["seq"].clone();
    // The search itself works: both are in the file before the deletion. (A long body
    // is split across pages, so the search looks for its start.)
    let marker = &erased[..40];
    assert!(in_database_files(&server.db_path, kept) && in_database_files(&server.db_path, marker));
    client.ok(json!({"type": "delete_message", "room": "private", "seq": seq})).await;
    assert!(!in_database_files(&server.db_path, marker), "a deleted body is still readable in the file");
    assert!(in_database_files(&server.db_path, kept));
}

#[tokio::test]
async fn words_taken_back_by_an_edit_are_gone_from_the_file() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let token = server.user_with_role("author", alongside::protocol::Role::Moderator).await;
    let mut client = server.client(&token).await;
    client.ok(json!({"type": "create_room", "name": "private"})).await;
    let regretted = format!("regretted-7c2d90e1-my address is {}", "ø".repeat(3000));
    let marker = &regretted[..33];
    let seq = client.ok(json!({"type": "send", "room": "private", "body": regretted})).await["message"]["seq"].clone();
    assert!(in_database_files(&server.db_path, marker));
    client.ok(json!({"type": "edit", "room": "private", "seq": seq, "body": "never mind"})).await;
    assert!(!in_database_files(&server.db_path, marker), "the edited-out words are still readable in the file");
    assert!(in_database_files(&server.db_path, "never mind"));
}
