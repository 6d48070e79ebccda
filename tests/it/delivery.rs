//! Delivery promises: order under concurrency, the slow consumer, and durability
//! across a SIGKILL of the real binary.

use crate::support::*;
use alongside::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn concurrent_senders_every_member_gets_every_message_once_in_seq_order() {
    concurrent_senders(TestServer::start().await).await;
}

/// The same with every room's events written at once by the dispatching thread (as a
/// room of 1,000 members is by default), not by the sockets' writer tasks: with no
/// coalescing window, each frame to an idle socket is written by the push.
#[tokio::test]
async fn written_at_once_every_member_still_gets_every_message_once_in_seq_order() {
    let server = TestServer::start_with(|c| {
        c.write_at_once_from = 1;
        c.write_coalesce_ms = 0;
    })
    .await;
    concurrent_senders(server).await;
}

async fn concurrent_senders(server: TestServer) {
    const SENDERS: usize = 4;
    const EACH: usize = 30;
    let token = server.user_with_role("owner", Role::Moderator).await;
    let mut owner = server.client(&token).await;
    owner.ok(json!({"type": "create_room", "name": "busy"})).await;
    let mut members = Vec::new();
    for n in 0..SENDERS + 2 {
        let mut client = server.member(&format!("member{n}")).await;
        client.ok(json!({"type": "join", "room": "busy"})).await;
        members.push(client);
    }
    // Senders and listeners start counting from here; presence events are skipped.
    let mut senders: Vec<Client> = members.drain(..SENDERS).collect();
    let mut listeners = members;
    listeners.push(owner);
    let sends = senders.iter_mut().enumerate().map(|(s, client)| async move {
        let mut acked = Vec::new();
        for n in 0..EACH {
            let reply = client.ok(json!({"type": "send", "room": "busy", "body": format!("{s}:{n}")})).await;
            acked.push(reply["message"]["seq"].as_i64().unwrap());
        }
        acked
    });
    let acked: Vec<Vec<i64>> = futures_util::future::join_all(sends).await;
    for seqs in &acked {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one sender's messages are stored in its order");
    }
    let total = SENDERS * EACH;
    let mut all_clients: Vec<&mut Client> = senders.iter_mut().chain(listeners.iter_mut()).collect();
    for client in all_clients.iter_mut() {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            let event = client.event_of("message").await;
            seqs.push(event["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "every message once, in seq order");
    }
}

#[tokio::test]
async fn messages_the_bus_loses_are_read_back_from_the_store_in_order() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("owner", "lossy").await;
    let mut ben = server.member("ben").await;
    ben.ok(json!({"type": "join", "room": "lossy"})).await;
    let body = |n: i64| format!("message {n}");
    owner.ok(json!({"type": "send", "room": "lossy", "body": body(1)})).await;
    for client in [&mut ben, &mut owner] {
        assert_eq!(client.event_of("message").await["message"]["seq"], 1);
    }
    // The next two never reach the hub, as on a bus that drops them; the fourth shows
    // the gap, and the hub fills it from the store before delivering it.
    owner.ok(json!({"type": "test_lose_messages", "count": 2})).await;
    for n in 2..=4 {
        owner.ok(json!({"type": "send", "room": "lossy", "body": body(n)})).await;
    }
    for client in [&mut ben, &mut owner] {
        for n in 2..=4 {
            let message = client.event_of("message").await["message"].clone();
            assert_eq!((message["seq"].as_i64(), message["body"].as_str()), (Some(n), Some(body(n).as_str())));
        }
    }
    // Nothing twice, and the room goes on as before.
    owner.ok(json!({"type": "send", "room": "lossy", "body": body(5)})).await;
    assert_eq!(ben.event_of("message").await["message"]["seq"], 5);
    ben.assert_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_closed_with_4008_and_others_keep_receiving() {
    slow_consumer(TestServer::start_with(|c| c.outbox_frames = 16).await).await;
}

/// The same when the room's events are written at once by the dispatching thread: a
/// socket that stops reading fills, hands its writes to its writer, and is closed the
/// same way.
#[tokio::test]
async fn written_at_once_a_socket_that_stops_reading_is_still_closed_with_4008() {
    slow_consumer(
        TestServer::start_with(|c| {
            c.outbox_frames = 16;
            c.write_at_once_from = 1;
            c.write_coalesce_ms = 0;
        })
        .await,
    )
    .await;
}

async fn slow_consumer(server: TestServer) {
    let token = server.user_with_role("owner", Role::Moderator).await;
    let mut owner = server.client(&token).await;
    owner.ok(json!({"type": "create_room", "name": "busy"})).await;
    let mut slow = server.member("slow").await;
    slow.ok(json!({"type": "join", "room": "busy"})).await;
    let mut fast = server.member("fast").await;
    fast.ok(json!({"type": "join", "room": "busy"})).await;

    // `slow` stops reading. Large messages fill its TCP buffers, then its outbox.
    let body = "x".repeat(4000);
    let mut sent = 0i64;
    let overflowed = loop {
        for _ in 0..20 {
            owner.ok(json!({"type": "send", "room": "busy", "body": body})).await;
            sent += 1;
        }
        // `fast` keeps up, and sees every message in order.
        while let Some(seq) = next_seq_if_ready(&mut fast).await {
            assert!(seq <= sent);
        }
        let (_, metrics) = http(server.addr, "GET", "/metrics", &[], None).await;
        if metrics.contains("alongside_outbox_overflows_total 1") {
            break true;
        }
        if sent >= 5000 {
            break false;
        }
    };
    assert!(overflowed, "the slow socket never overflowed after {sent} messages");
    assert_eq!(slow.closed().await, 4008, "the slow consumer is told to reconnect and catch up");
    // The room goes on for everyone else.
    let reply = owner.ok(json!({"type": "send", "room": "busy", "body": "still here"})).await;
    let last = reply["message"]["seq"].as_i64().unwrap();
    loop {
        let event = fast.event_of("message").await;
        if event["message"]["seq"] == last {
            assert_eq!(event["message"]["body"], "still here");
            break;
        }
    }
}

/// The next message seq if one arrives within a short moment (for draining).
async fn next_seq_if_ready(client: &mut Client) -> Option<i64> {
    let event = tokio::time::timeout(Duration::from_millis(20), client.event_of("message")).await.ok()?;
    event["message"]["seq"].as_i64()
}

async fn login(addr: std::net::SocketAddr, name: &str, register: bool) -> String {
    let credentials = json!({"username": name, "password": "durable password"}).to_string();
    if register {
        let (status, body) = http(addr, "POST", "/api/v1/register", &[], Some(&credentials)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = http(addr, "POST", "/api/v1/login", &[], Some(&credentials)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill_and_seq_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let binary = Binary::start(&db);
    let url = binary.ws_url();
    let (token_a, token_b) = (login(binary.addr, "alpha", true).await, login(binary.addr, "bravo", true).await);
    let mut a = Client::connect(&url, None).await;
    a.ok(json!({"type": "auth", "token": token_a})).await;
    a.ok(json!({"type": "create_room", "name": "vault"})).await;
    let mut b = Client::connect(&url, None).await;
    b.ok(json!({"type": "auth", "token": token_b})).await;
    b.ok(json!({"type": "join", "room": "vault"})).await;

    // Two sockets send at once, so acknowledgements come from shared group commits.
    let (acked_a, acked_b) = tokio::join!(send_many(&mut a, "a"), send_many(&mut b, "b"));
    binary.kill_9();

    let binary = Binary::start(&db);
    let url = binary.ws_url();
    let token = login(binary.addr, "bravo", false).await;
    let mut b = Client::connect(&url, None).await;
    let auth = b.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(auth["rooms"], json!(["vault"]));
    let history = b.ok(json!({"type": "history", "room": "vault", "after": 0, "limit": 100})).await;
    let stored: Vec<(i64, String)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_i64().unwrap(), m["body"].as_str().unwrap().to_string()))
        .collect();
    for acked in acked_a.iter().chain(&acked_b) {
        assert!(stored.contains(acked), "acknowledged message {acked:?} lost in the crash");
    }
    let n = stored.len() as i64;
    assert_eq!(stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "no gaps");
    let reply = b.ok(json!({"type": "send", "room": "vault", "body": "after the crash"})).await;
    assert_eq!(reply["message"]["seq"], n + 1, "seq continues after the crash");
}

async fn send_many(client: &mut Client, who: &str) -> Vec<(i64, String)> {
    let mut acked = Vec::new();
    for n in 0..40 {
        let body = format!("{who}-{n}");
        let reply = client.ok(json!({"type": "send", "room": "vault", "body": body})).await;
        acked.push((reply["message"]["seq"].as_i64().unwrap(), body));
    }
    acked
}
