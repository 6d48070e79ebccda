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
