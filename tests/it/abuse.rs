//! Abuse resistance over the real server: one account cannot multiply its sockets or
//! its requests, and cannot flood a room with typing.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn an_account_has_a_cap_on_its_sockets() {
    let server = TestServer::start_with(|c| c.max_sockets_per_account = 3).await;
    let token = server.user("many").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(server.client(&token).await);
    }
    let mut fourth = Client::connect(&server.ws_url(), None).await;
    let refusal = fourth.refused(json!({"type": "auth", "token": token}), "rate_limited").await;
    assert!(refusal["message"].as_str().unwrap().contains("3 connections"), "{refusal}");
    assert_eq!(fourth.closed().await, 4029, "told to come back later, not logged out");
    // Closing one makes room for another.
    drop(open.pop());
    server.wait_for_metric("alongside_sockets_open 2").await;
    open.push(server.client(&token).await);
    // Another account is not affected.
    server.member("other").await;
}

#[tokio::test]
async fn an_accounts_sockets_share_one_request_budget() {
    let server = TestServer::start_with(|c| {
        c.request_rate_per_s = 1.0;
        c.request_burst = 4;
    })
    .await;
    let token = server.user("split").await;
    let (mut a, mut b) = (server.client(&token).await, server.client(&token).await);
    for _ in 0..2 {
        a.ok(json!({"type": "rooms"})).await;
        b.ok(json!({"type": "rooms"})).await;
    }
    // Each socket has used 3 of its own 4 (auth included), but the account its 4.
    b.refused(json!({"type": "rooms"}), "rate_limited").await;
    a.refused(json!({"type": "rooms"}), "rate_limited").await;
    // Someone else is untouched.
    server.member("bystander").await.ok(json!({"type": "rooms"})).await;
}

#[tokio::test]
async fn typing_is_throttled_and_muted_members_cannot_type() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "quiet"})).await;
    let mut typist = server.member("typist").await;
    typist.ok(json!({"type": "join", "room": "quiet"})).await;
    owner.event_of("member_joined").await;
    // A burst of typing reaches the room once; the rest is dropped, and acknowledged.
    for _ in 0..10 {
        typist.ok(json!({"type": "typing", "room": "quiet"})).await;
    }
    assert_eq!(owner.event_of("typing").await["user"]["username"], "typist");
    owner.assert_quiet(Duration::from_millis(200)).await;
    // A muted member's typing would still show: it is refused.
    owner.ok(json!({"type": "mute", "room": "quiet", "user": "typist"})).await;
    typist.refused(json!({"type": "typing", "room": "quiet"}), "muted").await;
}

#[tokio::test]
async fn an_outsider_learns_nothing_from_delete_message() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "closed"})).await;
    owner.ok(json!({"type": "send", "room": "closed", "body": "here"})).await;
    let mut outsider = server.member("outsider").await;
    let existing = outsider.refused(json!({"type": "delete_message", "room": "closed", "seq": 1}), "forbidden").await;
    let missing = outsider.refused(json!({"type": "delete_message", "room": "closed", "seq": 99}), "forbidden").await;
    assert_eq!(existing["message"], missing["message"], "the same answer whether the message exists or not");
}

#[tokio::test]
async fn metrics_can_require_the_operators_token() {
    let server = TestServer::start_with(|c| c.metrics_token = "s3cret-metrics".into()).await;
    assert_http_error(&http(server.addr, "GET", "/metrics", &[], None).await, 401, "unauthenticated");
    let wrong = http(server.addr, "GET", "/metrics", &[("Authorization", "Bearer guess")], None).await;
    assert_eq!(wrong.0, 401);
    let (status, text) =
        http(server.addr, "GET", "/metrics", &[("Authorization", "Bearer s3cret-metrics")], None).await;
    assert_eq!(status, 200);
    assert!(text.contains("alongside_sockets_open"), "{text}");
}

/// The byte length of the next reply frame to `request`, and the reply.
async fn sized(client: &mut Client, request: serde_json::Value) -> (usize, serde_json::Value) {
    let reply = client.ok(request).await;
    (reply.to_string().len(), reply)
}

#[tokio::test]
async fn long_messages_never_make_a_reply_that_closes_the_room() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut author = server.member("author").await;
    author.ok(json!({"type": "create_room", "name": "long"})).await;
    // 60 messages at the longest a message may be, in 4-byte characters: about 1 MB.
    let long = "😀".repeat(4000);
    for _ in 0..60 {
        author.ok(json!({"type": "send", "room": "long", "body": long})).await;
    }
    // Control characters (escaped in JSON at six bytes each) are refused outright.
    author.refused(json!({"type": "send", "room": "long", "body": "\u{1}".repeat(4000)}), "invalid").await;
    // Left over from older versions: a flood of them stored anyway (older versions ran
    // on SQLite only, so there is nothing like it on a cluster).
    if on_cluster() {
        return;
    }
    let url = format!("sqlite://{}", server.db_path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    for seq in 61..=100 {
        sqlx::query(
            "INSERT INTO messages (room_id, seq, author_id, body, ts) SELECT r.id, ?, r.owner_id, ?, 0 \
             FROM rooms r WHERE r.name = 'long'",
        )
        .bind(seq)
        .bind("\u{1}".repeat(4000))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE rooms SET last_seq = 100 WHERE name = 'long'").execute(&mut conn).await.unwrap();

    // Joining still works: fewer messages, the newest, and `more`.
    let mut reader = server.member("reader").await;
    let (bytes, joined) = sized(&mut reader, json!({"type": "join", "room": "long"})).await;
    assert!(bytes <= 256 * 1024, "{bytes} bytes");
    let messages = joined["messages"].as_array().unwrap();
    assert!(!messages.is_empty() && messages.len() < 50, "{}", messages.len());
    assert_eq!(messages.last().unwrap()["seq"], 100);
    assert_eq!(joined["more"], true);
    // Paging back with `before` reaches seq 1 in pages that all fit, with no seq lost.
    let mut seen: Vec<i64> = messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    while seen[0] > 1 {
        let (bytes, page) =
            sized(&mut reader, json!({"type": "history", "room": "long", "before": seen[0], "limit": 100})).await;
        assert!(bytes <= 256 * 1024, "{bytes} bytes");
        let mut earlier: Vec<i64> =
            page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert!(!earlier.is_empty());
        earlier.extend(seen);
        seen = earlier;
    }
    assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    // Catching up forwards in pages keeps the earliest first, and says when it is done.
    let (_, page) = sized(&mut reader, json!({"type": "history", "room": "long", "after": 0, "limit": 100})).await;
    assert_eq!(page["messages"][0]["seq"], 1);
    assert_eq!(page["more"], true);
    // The socket is still open and in the room.
    reader.ok(json!({"type": "send", "room": "long", "body": "still here"})).await;
}

#[tokio::test]
async fn rooms_and_reports_come_a_page_at_a_time() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    for name in ["r-a", "r-b", "r-c", "r-d", "r-e"] {
        owner.ok(json!({"type": "create_room", "name": name})).await;
    }
    let first = owner.ok(json!({"type": "rooms", "limit": 2})).await;
    let names = |reply: &serde_json::Value| -> Vec<String> {
        reply["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!((names(&first), first["more"].clone()), (vec!["r-a".to_string(), "r-b".to_string()], json!(true)));
    let last = owner.ok(json!({"type": "rooms", "limit": 2, "after": "r-d"})).await;
    assert_eq!(names(&last), ["r-e"]);
    assert!(last.get("more").is_none(), "{last}");
    owner.refused(json!({"type": "rooms", "limit": 0}), "invalid").await;
    owner.refused(json!({"type": "rooms", "limit": 201}), "invalid").await;

    let mut member = server.member("member").await;
    member.ok(json!({"type": "join", "room": "r-a"})).await;
    for n in 0..5 {
        let seq =
            owner.ok(json!({"type": "send", "room": "r-a", "body": format!("m{n}")})).await["message"]["seq"].clone();
        member.ok(json!({"type": "report", "room": "r-a", "seq": seq, "reason": "check this"})).await;
    }
    let page = owner.ok(json!({"type": "reports", "room": "r-a", "limit": 2})).await;
    assert_eq!(page["reports"].as_array().unwrap().len(), 2);
    assert_eq!(page["more"], true);
    let after_id = page["reports"][1]["id"].clone();
    let rest = owner.ok(json!({"type": "reports", "room": "r-a", "limit": 10, "after_id": after_id})).await;
    assert_eq!(rest["reports"].as_array().unwrap().len(), 3);
    assert!(rest.get("more").is_none());
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_client_that_stops_reading_its_replies_is_paused_not_fed() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::start(&dir.path().join("stall.db"));
    let login = |name: &str| {
        let body = json!({"username": name, "password": "stalling password"}).to_string();
        let addr = binary.addr;
        async move {
            assert_eq!(http(addr, "POST", "/api/v1/register", &[], Some(&body)).await.0, 201);
            let (_, reply) = http(addr, "POST", "/api/v1/login", &[], Some(&body)).await;
            serde_json::from_str::<serde_json::Value>(&reply).unwrap()["token"].as_str().unwrap().to_string()
        }
    };
    let mut author = Client::connect(&binary.ws_url(), None).await;
    author.ok(json!({"type": "auth", "token": login("author").await})).await;
    author.ok(json!({"type": "create_room", "name": "heavy"})).await;
    for _ in 0..40 {
        author.ok(json!({"type": "send", "room": "heavy", "body": "😀".repeat(3000)})).await;
    }
    let token = login("staller").await;
    let mut staller = Client::connect(&binary.ws_url(), None).await;
    staller.ok(json!({"type": "auth", "token": token})).await;
    staller.ok(json!({"type": "join", "room": "heavy"})).await;
    let before = rss_kib(binary.pid());

    // 300 requests for a page of about 200 KB each (60 MB of replies), never read.
    let (mut sink, mut stream) = tokio_tungstenite::connect_async(binary.ws_url()).await.unwrap().0.split();
    sink.send(Frame::text(json!({"type": "auth", "id": 0, "token": token}).to_string())).await.unwrap();
    for id in 1..=300 {
        let request = json!({"type": "history", "id": id, "room": "heavy", "limit": 100});
        tokio::time::timeout(WAIT, sink.send(Frame::text(request.to_string()))).await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grown = rss_kib(binary.pid()).saturating_sub(before);
    assert!(grown < 16 * 1024, "the server held {grown} KiB more for a client that does not read");

    // Paused, not dropped: once it reads, every reply arrives (the auth's, id 0, first),
    // in order.
    let mut next = 0;
    while next <= 300 {
        let frame = tokio::time::timeout(WAIT, stream.next()).await.expect("a reply").expect("open").expect("frame");
        let Frame::Text(text) = frame else { continue };
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
        if reply["type"] == "ok" {
            assert_eq!(reply["id"], next, "replies in request order");
            next += 1;
        }
    }
    eprintln!("a client that stopped reading 300 replies of ~200 KB: the server grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_never_misses_a_socket_that_is_authenticating() {
    let server = TestServer::start().await;
    server.register("leaver").await;
    for trial in 0..20 {
        let token = server.login("leaver").await;
        // Three sockets authenticate while the token is revoked.
        let sockets: Vec<_> = (0..3)
            .map(|_| {
                let (url, token) = (server.ws_url(), token.clone());
                tokio::spawn(async move {
                    use futures_util::{SinkExt, StreamExt};
                    use tokio_tungstenite::tungstenite::Message as Frame;
                    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    ws.send(Frame::text(json!({"type": "auth", "id": 1, "token": token}).to_string())).await.unwrap();
                    // Whatever the timing, the socket ends up closed with 4001 or refused:
                    // never authenticated and left open.
                    let mut authenticated = false;
                    loop {
                        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer") {
                            Some(Ok(Frame::Text(text))) => {
                                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                                if frame["id"] == 1 {
                                    authenticated = frame["type"] == "ok";
                                    if !authenticated {
                                        return None;
                                    }
                                }
                            }
                            Some(Ok(Frame::Close(close))) => {
                                return Some((authenticated, close.map(|c| u16::from(c.code))))
                            }
                            Some(Ok(_)) => {}
                            other => panic!("the socket failed: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_micros(trial * 150)).await;
        let (status, _) =
            http(server.addr, "POST", "/api/v1/logout", &[("Authorization", &format!("Bearer {token}"))], None).await;
        assert_eq!(status, 204);
        for socket in sockets {
            if let Some((_, code)) = tokio::time::timeout(WAIT, socket).await.unwrap().unwrap() {
                assert_eq!(code, Some(4001), "trial {trial}: a socket outlived the logout of its token");
            }
        }
    }
}

#[tokio::test]
async fn a_token_left_unused_expires() {
    let server = TestServer::start_with(|c| c.token_idle_s = 1).await;
    let token = server.user("sleeper").await;
    server.client(&token).await; // used now: fine
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut late = Client::connect(&server.ws_url(), None).await;
    late.refused(json!({"type": "auth", "token": token}), "unauthenticated").await;
    let (status, _) =
        http(server.addr, "GET", "/api/v1/me", &[("Authorization", &format!("Bearer {token}"))], None).await;
    assert_eq!(status, 401);
    // Logging in again gives a fresh token.
    server.client(&server.login("sleeper").await).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget_and_spoofing_gains_nothing() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = "127.0.0.1".into();
        c.login_attempts_per_address = 2;
    })
    .await;
    let body = json!({"username": "someone", "password": "guess guess"}).to_string();
    let attempt = |source: &'static str, forwarded_for: &'static str| {
        let (addr, body) = (server.addr, body.clone());
        async move {
            let headers = [("X-Forwarded-For", forwarded_for)];
            http_from_with(source, addr, "POST", "/api/v1/login", &headers, Some(&body)).await.status
        }
    };
    // Through the proxy (127.0.0.1), clients are told apart by the address it reports.
    assert_eq!(attempt("127.0.0.1", "203.0.113.5").await, 401);
    assert_eq!(attempt("127.0.0.1", "203.0.113.5").await, 401);
    assert_eq!(attempt("127.0.0.1", "203.0.113.5").await, 429, "that client's budget is spent");
    assert_eq!(attempt("127.0.0.1", "203.0.113.6").await, 401, "another client behind the proxy is not");
    // A client claiming the header itself is counted by its own address.
    assert_eq!(attempt("127.0.0.2", "198.51.100.1").await, 401);
    assert_eq!(attempt("127.0.0.2", "198.51.100.2").await, 401);
    assert_eq!(attempt("127.0.0.2", "198.51.100.3").await, 429, "a made-up header buys nothing");
}

#[tokio::test]
async fn the_whole_server_has_ceilings_whatever_the_address() {
    let server = TestServer::start_with(|c| {
        c.max_sockets = 2;
        c.registrations_per_hour = 2;
    })
    .await;
    let _one = Client::connect(&server.ws_url(), None).await;
    let _two = Client::connect(&server.ws_url(), None).await;
    assert_eq!(Client::try_connect(&server.ws_url(), None).await.err(), Some(429));
    drop(_two);
    // Room again once one closes (the server notices the close a moment later).
    let deadline = tokio::time::Instant::now() + WAIT;
    while Client::try_connect(&server.ws_url(), None).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no room after a socket closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (n, source) in ["127.0.0.21", "127.0.0.22", "127.0.0.23"].into_iter().enumerate() {
        let body = json!({"username": format!("newcomer{n}"), "password": "correct horse battery"}).to_string();
        let answer = http_from(source, server.addr, "POST", "/api/v1/register", Some(&body)).await;
        assert_eq!(answer.status, if n < 2 { 201 } else { 429 }, "registration {n}: {}", answer.body);
    }
}

/// Reads from `stream` until the server closes it (or `limit` passes); whether it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_while_others_are_served() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| c.header_read_timeout_s = 0.5).await;
    // Slowloris: a request line and a header, then nothing.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Idle keep-alive: one request answered, then silence.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // A client that never says anything at all.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Meanwhile others are served.
    assert_eq!(http(server.addr, "GET", "/healthz", &[], None).await.0, 200);
    for (name, stream) in [("slow headers", &mut slow), ("idle keep-alive", &mut idle), ("silent", &mut silent)] {
        assert!(closed_within(stream, WAIT).await, "{name}: still open");
    }
    assert_eq!(http(server.addr, "GET", "/healthz", &[], None).await.0, 200);
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestServer::start_with(|c| c.max_connections_per_address = 3).await;
    let source = |ip: &str| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(source("127.0.0.31").connect(server.addr).await.unwrap());
    }
    // Give the accept loop a moment to count them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = source("127.0.0.31").connect(server.addr).await.unwrap();
    assert!(closed_within(&mut fourth, WAIT).await, "a fourth connection from the address is refused");
    // Another address is served, and the first one is again once it lets one go.
    assert_eq!(http_from("127.0.0.32", server.addr, "GET", "/healthz", None).await.status, 200);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(http_from("127.0.0.31", server.addr, "GET", "/healthz", None).await.status, 200);
}

#[tokio::test]
async fn a_flaky_connection_does_not_flood_the_room_with_presence() {
    let server = TestServer::start_with(|c| {
        c.members_may_create_rooms = true;
        c.presence_grace_ms = 400;
    })
    .await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "steady"})).await;
    let token = server.user("flaky").await;
    let mut flaky = server.client(&token).await;
    flaky.ok(json!({"type": "join", "room": "steady"})).await;
    assert_eq!(owner.event_of("member_joined").await["user"]["username"], "flaky");
    // Drops and comes back at once, five times: the room hears nothing of it.
    for _ in 0..5 {
        drop(flaky);
        flaky = server.client(&token).await;
    }
    owner.assert_quiet(Duration::from_millis(800)).await;
    // Gone for good: the room hears it once, after the grace.
    drop(flaky);
    let left = owner.event_of("member_left").await;
    assert_eq!((left["user"]["username"].as_str(), left["reason"].as_str()), (Some("flaky"), Some("disconnected")));
    owner.assert_quiet(Duration::from_millis(600)).await;
}
