//! Closed groups (PROTOCOL §9.4): registration by invitation, private rooms joined by
//! request or invitation, and rooms whose newcomers see only what follows their joining.

use crate::support::*;
use alongside::config::Registration;
use alongside::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

/// Makes an account straight in the store (registration may be closed) and connects it.
async fn made(server: &TestServer, name: &str, role: Role) -> Client {
    let store = open_store(&server.config.database).await;
    let password = format!("password-{name}");
    let hash = alongside::auth::Passwords::new(1).hash(password).await.unwrap();
    store.insert_user(name, name, &hash, role, None).await.unwrap();
    store.close().await;
    let token = server.login(name).await;
    server.client(&token).await
}

async fn register(server: &TestServer, name: &str, invite: Option<&str>) -> (u16, String) {
    let mut body = json!({"username": name, "password": format!("password-{name}")});
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    server.post("/api/v1/register", &body).await
}

#[tokio::test]
async fn registration_by_invitation_refuses_a_missing_used_up_or_expired_code() {
    let server = TestServer::start_with(|c| c.registration = Registration::Invite).await;
    let (status, mode) = http(server.addr, "GET", "/api/v1/registration", &[], None).await;
    assert_eq!((status, serde_json::from_str::<Value>(&mode).unwrap()), (200, json!({"mode": "invite"})));
    let mut gia = made(&server, "gia", Role::Moderator).await;
    assert_http_error(&register(&server, "ann", None).await, 403, "forbidden");
    assert_http_error(&register(&server, "ann", Some("")).await, 403, "forbidden");
    assert_http_error(&register(&server, "ann", Some("no-such-code")).await, 403, "forbidden");

    let invite = gia.ok(json!({"type": "create_invite", "uses": 2})).await["invite"].clone();
    let code = invite["code"].as_str().unwrap().to_string();
    assert_eq!(invite["uses"], 2);
    assert!(invite.get("expires_at").is_none(), "{invite}");
    assert_eq!(register(&server, "ann", Some(&code)).await.0, 201);
    // Typed in capitals with spaces, it is the same code.
    let typed = code.to_uppercase().replace('-', " ");
    assert_eq!(register(&server, "ben", Some(&typed)).await.0, 201);
    assert_http_error(&register(&server, "cyd", Some(&code)).await, 403, "forbidden");

    let short = gia.ok(json!({"type": "create_invite", "expires_in_s": 0.2})).await["invite"].clone();
    assert!(short["expires_at"].as_str().is_some(), "{short}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = register(&server, "cyd", Some(short["code"].as_str().unwrap())).await;
    assert_http_error(&expired, 403, "forbidden");
    assert!(expired.1.contains("used up or expired"), "{}", expired.1);

    let mut ann = server.client(&server.login("ann").await).await;
    ann.refused(json!({"type": "create_invite"}), "forbidden").await;
    gia.refused(json!({"type": "create_invite", "uses": 0}), "invalid").await;
    gia.refused(json!({"type": "create_invite", "expires_in_s": -1}), "invalid").await;
}

#[tokio::test]
async fn closed_registration_refuses_everyone_and_open_ignores_a_code() {
    let closed = TestServer::start_with(|c| c.registration = Registration::Closed).await;
    let refused = register(&closed, "ann", Some("anything")).await;
    assert_http_error(&refused, 403, "forbidden");
    assert!(refused.1.contains("closed"), "{}", refused.1);
    let open = TestServer::start().await;
    assert_eq!(register(&open, "ann", Some("anything")).await.0, 201);
}

fn names(rooms: &Value) -> Vec<String> {
    rooms["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_private_room_is_unlisted_and_joins_by_approval_or_invitation() {
    let server = TestServer::start().await;
    let mut olive = server.room_owner("olive", "lobby").await;
    let created = olive.ok(json!({"type": "create_room", "name": "quiet", "visibility": "private"})).await;
    assert_eq!(created["room"]["visibility"], "private", "{created}");
    let mut ben = server.member("ben").await;
    assert_eq!(names(&ben.ok(json!({"type": "rooms"})).await), ["lobby"], "not listed to a non-member");
    assert!(names(&olive.ok(json!({"type": "rooms"})).await).contains(&"quiet".to_string()));

    let pending = ben.ok(json!({"type": "join", "room": "quiet"})).await;
    assert_eq!(pending["pending"], true, "{pending}");
    assert!(pending.get("messages").is_none(), "nothing of the room yet: {pending}");
    let asked = olive.event_of("join_request").await;
    assert_eq!((&asked["room"], &asked["user"]["username"]), (&json!("quiet"), &json!("ben")));
    ben.ok(json!({"type": "join", "room": "quiet"})).await; // asking twice tells nobody twice
    ben.refused(json!({"type": "send", "room": "quiet", "body": "hello?"}), "forbidden").await;
    ben.refused(json!({"type": "history", "room": "quiet"}), "forbidden").await;
    let waiting = olive.ok(json!({"type": "join_requests", "room": "quiet"})).await;
    assert_eq!(waiting["requests"].as_array().unwrap().len(), 1, "{waiting}");
    assert_eq!(waiting["requests"][0]["user"]["username"], "ben");
    ben.refused(json!({"type": "join_requests", "room": "quiet"}), "forbidden").await;
    ben.refused(json!({"type": "approve_join", "room": "quiet", "user": "ben", "approve": true}), "forbidden").await;

    olive.ok(json!({"type": "approve_join", "room": "quiet", "user": "ben", "approve": true})).await;
    let joined = ben.event_of("member_joined").await;
    assert_eq!((&joined["room"], &joined["user"]["username"]), (&json!("quiet"), &json!("ben")));
    ben.ok(json!({"type": "send", "room": "quiet", "body": "thank you for having me"})).await;
    assert!(names(&ben.ok(json!({"type": "rooms"})).await).contains(&"quiet".to_string()));
    assert!(olive.ok(json!({"type": "join_requests", "room": "quiet"})).await["requests"]
        .as_array()
        .unwrap()
        .is_empty());
    olive.refused(json!({"type": "approve_join", "room": "quiet", "user": "ben", "approve": true}), "not_found").await;

    let mut cyd = server.member("cyd").await;
    assert_eq!(cyd.ok(json!({"type": "join", "room": "quiet"})).await["pending"], true);
    olive.ok(json!({"type": "approve_join", "room": "quiet", "user": "cyd", "approve": false})).await;
    assert_eq!(cyd.event_of("join_refused").await["room"], "quiet");
    assert_eq!(names(&cyd.ok(json!({"type": "rooms"})).await), ["lobby"]);

    // A moderator's invitation makes a member at once.
    let mut dee = server.member("dee").await;
    olive.ok(json!({"type": "invite", "room": "quiet", "user": "dee"})).await;
    assert_eq!(dee.event_of("member_joined").await["room"], "quiet");
    let history = dee.ok(json!({"type": "history", "room": "quiet"})).await;
    assert_eq!(history["messages"][0]["body"], "thank you for having me", "{history}");
    ben.refused(json!({"type": "invite", "room": "quiet", "user": "cyd"}), "forbidden").await;
}

#[tokio::test]
async fn since_join_hides_earlier_messages_from_a_newcomer_on_every_path() {
    let server = TestServer::start().await;
    let mut olive = server.room_owner("olive", "circle").await;
    let created =
        olive.ok(json!({"type": "create_room", "name": "newcomers", "history_visibility": "since_join"})).await;
    assert_eq!(created["room"]["history_visibility"], "since_join", "{created}");
    for n in 1..=3 {
        olive.ok(json!({"type": "send", "room": "newcomers", "body": format!("early words {n}")})).await;
    }
    let mut ben = server.member("ben").await;
    let joined = ben.ok(json!({"type": "join", "room": "newcomers"})).await;
    assert_eq!(joined["messages"], json!([]), "{joined}");
    assert!(joined.get("more").is_none(), "nothing earlier to page back to: {joined}");
    let later =
        olive.ok(json!({"type": "send", "room": "newcomers", "body": "later words"})).await["message"]["seq"].clone();
    assert_eq!(ben.event_of("message").await["message"]["body"], "later words");
    // An edit of an earlier message does not reach him either; one of a later one does.
    olive.ok(json!({"type": "edit", "room": "newcomers", "seq": 1, "body": "early words, edited"})).await;
    olive.ok(json!({"type": "set_cw", "room": "newcomers", "seq": 2, "cw": ["grief"]})).await;
    olive.ok(json!({"type": "edit", "room": "newcomers", "seq": later, "body": "later words, edited"})).await;
    let updated = ben.event_of("message_updated").await;
    assert_eq!((&updated["message"]["seq"], &updated["message"]["body"]), (&later, &json!("later words, edited")));
    for query in [json!({}), json!({"after": 0}), json!({"before": 4}), json!({"before": 99})] {
        let mut request = json!({"type": "history", "room": "newcomers"});
        request.as_object_mut().unwrap().extend(query.as_object().unwrap().clone());
        let page = ben.ok(request.clone()).await;
        let bodies: Vec<&str> =
            page["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        let expected: &[&str] = if query.get("before") == Some(&json!(4)) { &[] } else { &["later words, edited"] };
        assert_eq!(bodies, expected, "{request}: {page}");
        assert!(page.get("more").is_none(), "{request}: {page}");
    }
    assert_eq!(ben.ok(json!({"type": "search", "query": "words"})).await["messages"].as_array().unwrap().len(), 1);
    ben.refused(json!({"type": "reveal", "room": "newcomers", "seq": 1}), "not_found").await;
    assert_eq!(
        ben.ok(json!({"type": "reveal", "room": "newcomers", "seq": later})).await["message"]["body"],
        "later words, edited"
    );
    // The owner, there from the start, sees everything; a room without the setting too.
    let all = olive.ok(json!({"type": "history", "room": "newcomers"})).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 4);
    olive.ok(json!({"type": "send", "room": "circle", "body": "in the open room"})).await;
    let open = ben.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(open["messages"][0]["body"], "in the open room");
}
