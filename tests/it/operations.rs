//! Operations: health, metrics, the web page, and the `alongside user` commands run as
//! the real binary.

use crate::support::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

#[tokio::test]
async fn healthz_is_ok_until_the_database_file_disappears_and_names_the_node() {
    let server = TestServer::start_sqlite_with(|c| c.node_id = "node-a".into()).await;
    let (status, body) = http(server.addr, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 200);
    let ok = json!({"status": "ok", "node": "node-a", "store": "ok", "bus": "ok"});
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), ok);
    std::fs::remove_file(&server.db_path).unwrap();
    let (status, body) = http(server.addr, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 503, "writes would go to a deleted file: not healthy");
    let unavailable = json!({"status": "unavailable", "node": "node-a", "store": "unavailable", "bus": "ok"});
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), unavailable);
}

#[tokio::test]
async fn a_node_without_a_name_is_named_after_its_host_and_process() {
    let server = TestServer::start().await;
    let (_, body) = http(server.addr, "GET", "/healthz", &[], None).await;
    let node = serde_json::from_str::<Value>(&body).unwrap()["node"].as_str().unwrap().to_string();
    assert!(node.ends_with(&format!("-{}", std::process::id())), "{node}");
    let config = alongside::config::Config { node_id: "no spaces please".into(), ..Default::default() };
    assert!(config.check().unwrap_err().contains("--node-id"));
}

#[tokio::test]
async fn the_root_serves_a_page_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    let raw = raw_get(server.addr, "/").await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{raw}"
    );
    assert!(raw.contains("<title>Alongside</title>"));
}

#[tokio::test]
async fn the_client_assets_are_served_with_their_types_and_unknown_ones_are_not() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/api.js", "text/javascript"),
        ("/assets/dom.js", "text/javascript"),
        ("/assets/state.js", "text/javascript"),
        ("/assets/moderation.js", "text/javascript"),
        ("/assets/ui.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let raw = raw_get(server.addr, path).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
        let lower = raw.to_ascii_lowercase();
        assert!(lower.contains(&format!("content-type: {kind}")), "{path}: {raw}");
        assert!(lower.contains("content-security-policy: default-src 'self'"), "{path}");
        assert!(lower.contains("x-content-type-options: nosniff"), "{path}");
    }
    let (status, body) = http(server.addr, "GET", "/assets/secrets.txt", &[], None).await;
    assert_eq!((status, http_error_code(&body).as_str()), (404, "not_found"));
    let (status, _) = http(server.addr, "GET", "/assets/..%2Fsrc%2Fmain.rs", &[], None).await;
    assert_eq!(status, 404);
}

/// A GET whose whole raw response (headers included) is returned.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap()
}

fn alongside(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alongside"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alongside");
    // A command that reads no input may have finished before this write: its pipe is
    // closed then, which is no failure (what it printed is checked below).
    if let Err(err) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "writing to alongside: {err}");
    }
    // Every command here should finish at once; one that does not (say, `serve` that
    // started instead of refusing its flags) is killed and fails the test.
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("alongside {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn user_commands_work_beside_a_running_server() {
    let server = TestServer::start().await;
    let db = server.config.database.clone();
    let out = alongside(
        &["user", "create", "Admin1", "--role", "admin", "--display-name", "The Admin", "--database", &db],
        "a long password\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) =
        server.post("/api/v1/login", &json!({"username": "admin1", "password": "a long password"})).await;
    assert_eq!(status, 200, "the trailing newline is not part of the password: {body}");
    assert!(body.contains(r#""role":"admin""#) && body.contains("The Admin"), "{body}");

    // A changed role reaches a running server's open sockets within seconds, and its
    // next `auth`.
    let token = server.user("ben").await;
    let mut before = server.client(&token).await;
    before.refused(json!({"type": "create_room", "name": "bens"}), "forbidden").await;
    let out = alongside(&["user", "set-role", "ben", "moderator", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(before.event_of("user_updated").await["user"]["role"], "moderator");
    before.ok(json!({"type": "create_room", "name": "bens"})).await;
    let mut after = server.client(&token).await;
    after.ok(json!({"type": "create_room", "name": "bens-too"})).await;
    // Logging an account out everywhere closes its open sockets and kills its tokens.
    let out = alongside(&["user", "revoke-tokens", "ben", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked 1 token"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(before.closed().await, 4001);
    assert_eq!(after.closed().await, 4001);
    let (status, _) =
        http(server.addr, "GET", "/api/v1/me", &[("Authorization", &format!("Bearer {token}"))], None).await;
    assert_eq!(status, 401);

    let out = alongside(&["user", "create", "ben", "--database", &db], "another password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));

    // An operator can hand a member their data: the same document as "Download my data".
    let out = alongside(&["user", "export", "Ben", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let export: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!((&export["user"]["username"], &export["user"]["role"]), (&json!("ben"), &json!("moderator")));
    let rooms: Vec<&str> = export["rooms"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    assert_eq!(export["messages"], json!([]));
    let out = alongside(&["user", "export", "nobody", "--database", &db], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));

    // Erasing an account from the command line closes its connections on a running server.
    let token = server.login("ben").await;
    let mut connected = server.client(&token).await;
    let out = alongside(&["user", "delete", "ben", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erased ben (now deleted-"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(connected.closed().await, 4001);
    let login = json!({"username": "ben", "password": "password-ben"});
    assert_eq!(server.post("/api/v1/login", &login).await.0, 401);
    let out = alongside(&["user", "create", "deleted-9", "--database", &db], "a long password");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept for erased accounts"));
}

#[test]
fn bad_arguments_fail_with_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let cases: [(&[&str], &str, &str); 7] = [
        (&["user", "set-role", "nobody", "admin", "--database", &db], "", "no user"),
        (&["user", "set-role", "nobody", "king", "--database", &db], "", "unknown role"),
        (&["user", "create", "short", "--database", &db], "short", "8 to 1024"),
        (
            &["user", "create", "ok-name", "--database", "sqlite:///no/such/dir/x.db"],
            "long enough password",
            "cannot open",
        ),
        (&["serve", "--database", "mysql://x"], "", "unsupported"),
        (&["serve", "--database", "sqlite::memory:"], "", "in-memory database keeps nothing"),
        (&["serve", "--listen", "not-an-address"], "", "--listen"),
    ];
    for (args, stdin, expected) in cases {
        let out = alongside(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line, got {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = alongside(&["serve", "--no-such-flag"], "");
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_handler_that_panics_ends_only_its_own_socket() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut ada = server.member("ada").await;
    ada.ok(json!({"type": "create_room", "name": "steady"})).await;
    let token = server.user("bob").await;
    let mut bo_phone = server.client(&token).await;
    bo_phone.ok(json!({"type": "join", "room": "steady"})).await;
    let mut bo_laptop = server.client(&token).await;
    server.wait_for_metric("alongside_sockets_open 3").await;

    // A bug in one handler: that socket gets `internal` and is closed with 1011.
    let reply = bo_phone.request(json!({"type": "test_panic"})).await;
    assert_eq!(reply["code"], "internal", "{reply}");
    assert_eq!(bo_phone.closed().await, 1011);
    // Everyone else carries on, and the server forgot the socket.
    server.wait_for_metric("alongside_sockets_open 2").await;
    ada.ok(json!({"type": "send", "room": "steady", "body": "still here"})).await;
    assert_eq!(bo_laptop.event_of("message").await["message"]["body"], "still here");
    let joined = ada.ok(json!({"type": "join", "room": "steady"})).await;
    let online: Vec<&str> =
        joined["online"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert!(online.contains(&"bob"), "bob is still online on the laptop: {online:?}");

    // The last socket of a user going this way takes the user offline, as a close would.
    bo_laptop.request(json!({"type": "test_panic"})).await;
    assert_eq!(bo_laptop.closed().await, 1011);
    let left = ada.event_of("member_left").await;
    assert_eq!((left["user"]["username"].as_str(), left["reason"].as_str()), (Some("bob"), Some("disconnected")));
    server.wait_for_metric("alongside_sockets_open 1").await;
    let joined = ada.ok(json!({"type": "join", "room": "steady"})).await;
    assert_eq!(joined["online"].as_array().unwrap().len(), 1, "{joined}");
}

#[tokio::test]
async fn migrate_brings_a_database_up_to_date_once_and_a_server_then_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let out = alongside(&["migrate", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.starts_with("migrated the schema from version 0 to "), "{said}");
    let out = alongside(&["migrate", "--database", &db], "");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("the schema is up to date (version "));
    // The migrated file is what a server and the other commands use.
    let out = alongside(&["user", "create", "ada", "--database", &db], "a long password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = alongside(&["migrate", "--database", "mysql://nowhere"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
}

#[tokio::test]
async fn quick_exit_goes_where_the_operator_says_and_only_to_a_web_address() {
    let server = TestServer::start_with(|c| c.quick_exit_url = "https://example.org/news?a=1&b=2".into()).await;
    let (status, page) = http(server.addr, "GET", "/", &[], None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<meta name="alongside-quick-exit" content="https://example.org/news?a=1&amp;b=2">"#),
        "the page carries the destination, escaped"
    );
    for bad in ["javascript:alert(1)", "", "https://example.org/a b"] {
        let config = alongside::config::Config { quick_exit_url: bad.into(), ..Default::default() };
        assert!(config.check().unwrap_err().contains("--quick-exit-url"), "{bad:?} is refused");
    }
}

#[tokio::test]
async fn invite_create_makes_a_code_a_running_server_accepts() {
    let server = TestServer::start_sqlite_with(|c| c.registration = alongside::config::Registration::Invite).await;
    let db = server.config.database.clone();
    let out = alongside(&["invite", "create", "--uses", "1", "--expires-in", "7d", "--database", &db], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains("for 1 registration(s), until "), "{printed}");
    let code = printed.split_whitespace().next().unwrap();
    let body = json!({"username": "ann", "password": "password-ann", "invite": code});
    assert_eq!(server.post("/api/v1/register", &body).await.0, 201);
    let again = json!({"username": "ben", "password": "password-ben", "invite": code});
    assert_eq!(server.post("/api/v1/register", &again).await.0, 403, "used up");
    for bad in ["7", "0d", "2y", "400d"] {
        let out = alongside(&["invite", "create", "--expires-in", bad, "--database", &db], "");
        assert!(!out.status.success(), "--expires-in {bad} should be refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains(bad), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The most memory the process `pid` has held so far (VmHWM), in bytes.
fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// `alongside user export NAME`: the document, and the most memory the process held
/// (sampled as the document comes; the high-water mark only ever rises).
fn export_measured(db: &str, name: &str) -> (Vec<u8>, u64) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_alongside"))
        .args(["user", "export", name, "--database", db])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn alongside");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let (mut text, mut chunk, mut peak) = (Vec::new(), vec![0u8; 1 << 16], 0);
    loop {
        let n = stdout.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
        peak = peak.max(peak_memory(pid).unwrap_or(0));
    }
    assert!(child.wait().unwrap().success(), "export of {name} failed");
    (text, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_a_hundred_thousand_messages_streams_in_bounded_memory() {
    const MESSAGES: i64 = 100_000;
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let _owner = server.room_owner("ben", "journal").await;
    server.register("amy").await;
    let db = server.config.database.clone();
    // A hundred thousand of Ben's messages, written straight into the file (seconds,
    // where sending them would take minutes); each about 400 bytes of words.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO messages (room_id, seq, author_id, body, ts) \
             SELECT r.id, n.i, u.id, printf('%d: %s', n.i, replace(hex(zeroblob(196)), '00', 'a ')), 1700000000000 + n.i \
             FROM n, rooms r, users u WHERE r.name = 'journal' AND u.username = 'ben'",
        )
        .bind(MESSAGES)
        .execute(&mut conn)
        .await
        .unwrap();
        let last = sqlx::query("UPDATE rooms SET last_seq = ?1 WHERE name = 'journal'").bind(MESSAGES);
        last.execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let (text, peak, small) = tokio::task::spawn_blocking(move || {
        let (_, small) = export_measured(&db, "amy");
        let (text, peak) = export_measured(&db, "ben");
        (text, peak, small)
    })
    .await
    .unwrap();
    let export: Value = serde_json::from_slice(&text).expect("one JSON document");
    let messages = export["messages"].as_array().unwrap();
    assert_eq!(messages.len(), MESSAGES as usize, "every message");
    assert_eq!(messages[MESSAGES as usize - 1]["seq"], MESSAGES);
    println!(
        "export of {MESSAGES} messages: {} bytes, peak memory {peak} bytes (an empty account's: {small})",
        text.len()
    );
    assert!(small > 0 && peak > 0, "the memory was read");
    // Held whole, the messages would add more than the document's size; streamed, a few pages.
    assert!(
        peak < small + 16 * 1024 * 1024,
        "peak memory {peak} bytes for a {}-byte export (an empty account's: {small})",
        text.len()
    );
}
