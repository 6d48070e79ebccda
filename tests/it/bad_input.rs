//! Every bad-input case of the protocol, with its exact code; the socket stays open
//! except where the protocol says it closes.

use crate::support::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Frame;

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let mut client = server.member("ada").await;

    client.send_frame(Frame::text("{not json")).await;
    let reply = client.event().await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("bad_request")), "{reply}");
    assert!(reply.get("id").is_none());

    client.send_json(&json!({"type": "dance", "id": 5})).await;
    let reply = client.reply_to(json!(5)).await;
    assert_eq!(reply["code"], "bad_request");
    assert!(reply["message"].as_str().unwrap().contains("dance"), "{reply}");

    client.send_json(&json!({"type": "send", "id": "s1", "room": "r"})).await;
    let reply = client.reply_to(json!("s1")).await;
    assert_eq!(reply["code"], "bad_request");
    assert!(reply["message"].as_str().unwrap().contains("body"), "names the missing field: {reply}");

    client.send_json(&json!({"id": 9})).await;
    assert_eq!(client.reply_to(json!(9)).await["code"], "bad_request");

    client.send_json(&json!({"type": "rooms", "id": "x".repeat(65)})).await;
    assert_eq!(client.event().await["code"], "bad_request", "over-long ids are refused");

    client.send_frame(Frame::binary(vec![1u8, 2, 3])).await;
    assert_eq!(client.event().await["code"], "bad_request");

    // After all that, the socket still works.
    client.ok(json!({"type": "rooms"})).await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let mut client = server.member("ada").await;
    let big = json!({"type": "rooms", "pad": "x".repeat(64 * 1024)});
    client.send_json(&big).await;
    assert_eq!(client.closed().await, 1009);
}

#[tokio::test]
async fn a_frame_just_under_the_limit_is_read() {
    let server = TestServer::start().await;
    let mut client = server.member("ada").await;
    let frame = json!({"type": "rooms", "pad": "x".repeat(60 * 1024)});
    client.ok(frame).await;
}

#[tokio::test]
async fn requests_before_auth_are_refused_and_bad_tokens_do_not_close() {
    let server = TestServer::start().await;
    let mut client = Client::connect(&server.ws_url(), None).await;
    client.refused(json!({"type": "rooms"}), "unauthenticated").await;
    client.refused(json!({"type": "auth", "token": "not-a-token"}), "unauthenticated").await;
    client.refused(json!({"type": "auth"}), "bad_request").await;
    let token = server.user("ada").await;
    let reply = client.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(reply["user"]["username"], "ada");
    assert_eq!(reply["rooms"], json!([]));
    client.refused(json!({"type": "auth", "token": token}), "bad_request").await;
}

#[tokio::test]
async fn no_auth_within_the_timeout_closes_with_4001() {
    let server = TestServer::start_with(|c| c.auth_timeout_s = 0.3).await;
    let mut client = Client::connect(&server.ws_url(), None).await;
    assert_eq!(client.closed().await, 4001);
    // Authenticating in time keeps the socket past the deadline.
    let token = server.user("ada").await;
    let mut client = server.client(&token).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    client.ok(json!({"type": "rooms"})).await;
}

#[tokio::test]
async fn foreign_origins_are_refused_at_the_upgrade() {
    let server = TestServer::start().await;
    assert_eq!(Client::try_connect(&server.ws_url(), Some("https://evil.example")).await.err(), Some(403));
    assert_eq!(Client::try_connect(&server.ws_url(), Some("null")).await.err(), Some(403));
    let own = format!("http://{}", server.addr);
    assert!(Client::try_connect(&server.ws_url(), Some(&own)).await.is_ok(), "the server's own origin is allowed");

    let server = TestServer::start_with(|c| c.allowed_origins = vec!["https://chat.example.org".into()]).await;
    assert!(Client::try_connect(&server.ws_url(), Some("https://chat.example.org")).await.is_ok());
    assert_eq!(Client::try_connect(&server.ws_url(), Some("https://other.example.org")).await.err(), Some(403));
    assert!(Client::try_connect(&server.ws_url(), None).await.is_ok(), "non-browser clients send no Origin");
}

#[tokio::test]
async fn the_request_rate_limit_answers_rate_limited_then_recovers() {
    let server = TestServer::start_with(|c| {
        c.request_rate_per_s = 5.0;
        c.request_burst = 3;
    })
    .await;
    // The bucket counts from the first frame (PROTOCOL.md §7): `auth` took one.
    let mut client = server.member("ada").await;
    for _ in 0..2 {
        client.ok(json!({"type": "rooms"})).await;
    }
    let reply = client.refused(json!({"type": "rooms"}), "rate_limited").await;
    assert!(reply["message"].as_str().unwrap().contains("try again in 1 second"), "says how long to wait: {reply}");
    assert_eq!(reply["retry_after_s"], 1, "{reply}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    client.ok(json!({"type": "rooms"})).await;
}

#[tokio::test]
async fn the_auth_phase_is_limited_too() {
    let server = TestServer::start_with(|c| {
        c.request_rate_per_s = 5.0;
        c.request_burst = 3;
    })
    .await;
    let token = server.user("ada").await;
    // Three wrong tokens and the socket is closed with 4001 (PROTOCOL.md §7).
    let mut guesser = Client::connect(&server.ws_url(), None).await;
    for n in 0..2 {
        guesser.refused(json!({"type": "auth", "token": format!("guess-{n}")}), "unauthenticated").await;
    }
    guesser.send_json(&json!({"type": "auth", "id": 9, "token": "guess-3"})).await;
    assert_eq!(guesser.reply_to(json!(9)).await["code"], "unauthenticated");
    assert_eq!(guesser.closed().await, 4001);
    // The request bucket applies before authentication: a burst of frames is refused
    // (each refusal costs the server no database read), and the right token still works
    // once the bucket refills.
    let mut flooder = Client::connect(&server.ws_url(), None).await;
    for _ in 0..3 {
        flooder.refused(json!({"type": "rooms"}), "unauthenticated").await;
    }
    let refusal = flooder.refused(json!({"type": "auth", "token": token}), "rate_limited").await;
    assert!(refusal["retry_after_s"].as_u64().is_some(), "{refusal}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    flooder.ok(json!({"type": "auth", "token": token})).await;
}

#[tokio::test]
async fn a_socket_that_keeps_sending_refused_requests_is_closed_with_4029() {
    let server = TestServer::start().await;
    let mut client = server.member("ada").await;
    for _ in 0..60 {
        client.send_frame(Frame::text("garbage")).await;
    }
    assert_eq!(client.closed().await, 4029);
}

#[tokio::test]
async fn sockets_per_address_are_limited() {
    let server = TestServer::start_with(|c| c.max_sockets_per_address = 2).await;
    let first = Client::connect(&server.ws_url(), None).await;
    let _second = Client::connect(&server.ws_url(), None).await;
    assert_eq!(Client::try_connect(&server.ws_url(), None).await.err(), Some(429));
    drop(first);
    // The slot frees once the server has seen the close.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if Client::try_connect(&server.ws_url(), None).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn logout_closes_the_sockets_of_that_token_with_4001() {
    let server = TestServer::start().await;
    let token = server.user("ada").await;
    let other_token = server.login("ada").await;
    let mut revoked = server.client(&token).await;
    let mut kept = server.client(&other_token).await;
    let bearer = format!("Bearer {token}");
    let (status, _) = http(server.addr, "POST", "/api/v1/logout", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 204);
    assert_eq!(revoked.closed().await, 4001);
    kept.ok(json!({"type": "rooms"})).await;
    let mut again = Client::connect(&server.ws_url(), None).await;
    again.refused(json!({"type": "auth", "token": token}), "unauthenticated").await;
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_dropped() {
    let server = TestServer::start_with(|c| c.ping_interval_s = 0.2).await;
    let _client = server.member("ada").await;
    server.wait_for_metric("alongside_sockets_open 1").await;
    // Not reading means not answering pings: after two silent intervals the server
    // gives up on the socket and frees it.
    server.wait_for_metric("alongside_sockets_open 0").await;
}

#[tokio::test]
async fn a_socket_that_asks_and_never_reads_is_dropped_after_two_ping_intervals() {
    use futures_util::{SinkExt, StreamExt};
    let server = TestServer::start_with(|c| c.ping_interval_s = 0.2).await;
    let mut owner = server.room_owner("ada", "heavy").await;
    for _ in 0..20 {
        owner.ok(json!({"type": "send", "room": "heavy", "body": "😀".repeat(3000)})).await;
    }
    let token = server.user("bob").await;
    server.client(&token).await.ok(json!({"type": "join", "room": "heavy"})).await;
    server.wait_for_metric("alongside_sockets_open 1").await;
    // Pages of about 240 KB each, asked for and never read, and no pong either: the
    // server's ticker (the idle timeout, with no timer per socket) lets it go after two
    // silent intervals. Without that check the socket would stay open.
    let (mut sink, _stream) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap().0.split();
    sink.send(Frame::text(json!({"type": "auth", "id": 0, "token": token}).to_string())).await.unwrap();
    for id in 1..=100 {
        let request = json!({"type": "history", "id": id, "room": "heavy", "limit": 100});
        tokio::time::timeout(WAIT, sink.send(Frame::text(request.to_string()))).await.unwrap().unwrap();
    }
    server.wait_for_metric("alongside_sockets_open 2").await;
    server.wait_for_metric("alongside_sockets_open 1").await;
}

#[tokio::test]
async fn a_socket_that_answers_pings_stays_open_while_idle() {
    let server = TestServer::start_with(|c| c.ping_interval_s = 0.2).await;
    let mut client = server.member("ada").await;
    // Waiting for a frame keeps the client reading, so it answers each ping.
    client.assert_quiet(std::time::Duration::from_millis(800)).await;
    client.ok(json!({"type": "rooms"})).await;
}
