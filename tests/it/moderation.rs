//! Moderation over real WebSockets: each request's allowed path, its refusals, the
//! events each party receives, expiry, and persistence across a restart.

use crate::support::*;
use alongside::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

/// A room `circle` owned by `owner` (a plain member who created it, allowed by the
/// server option) with members `mia` and `ben` joined. Presence events are drained.
struct Circle {
    /// Keep it bound (`server: _server`): dropping it deletes the database directory.
    server: TestServer,
    owner: Client,
    mia: Client,
    ben: Client,
}

async fn circle() -> Circle {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "circle"})).await;
    let mut mia = server.member("mia").await;
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    let mut ben = server.member("ben").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    // Everyone has seen every join by the time the last join's event reaches mia.
    for client in [&mut owner, &mut mia] {
        while client.event_of("member_joined").await["user"]["username"] != "ben" {}
    }
    ben.event_of("member_joined").await;
    Circle { server, owner, mia, ben }
}

async fn sent(client: &mut Client, body: &str) -> i64 {
    client.ok(json!({"type": "send", "room": "circle", "body": body})).await["message"]["seq"].as_i64().unwrap()
}

#[tokio::test]
async fn mute_tells_everyone_blocks_sending_and_unmute_lifts_it() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    owner
        .ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 600, "reason": "Take a breather"}))
        .await;
    for client in [&mut owner, &mut mia, &mut ben] {
        let event = client.event_of("muted").await;
        assert_eq!(event["user"]["username"], "mia");
        assert_eq!(event["by"], "owner");
        assert_eq!(event["reason"], "Take a breather");
        assert!(event["until"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    let refusal = mia.refused(json!({"type": "send", "room": "circle", "body": "hello?"}), "muted").await;
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains(" UTC") && message.contains("Take a breather") && !message.contains('`'),
        "says until when and why: {message}"
    );
    sent(&mut ben, "others still talk").await;

    // Leaving and rejoining does not shake a mute off.
    mia.ok(json!({"type": "leave", "room": "circle"})).await;
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    mia.refused(json!({"type": "send", "room": "circle", "body": "and now?"}), "muted").await;

    owner.ok(json!({"type": "unmute", "room": "circle", "user": "mia"})).await;
    let event = ben.event_of("unmuted").await;
    assert_eq!((event["user"]["username"].as_str(), event["by"].as_str()), (Some("mia"), Some("owner")));
    sent(&mut mia, "thank you").await;
    owner.refused(json!({"type": "unmute", "room": "circle", "user": "mia"}), "not_found").await;
}

#[tokio::test]
async fn a_timed_mute_lifts_itself() {
    let Circle { mut owner, mut mia, server: _server, .. } = circle().await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 0.3})).await;
    mia.refused(json!({"type": "send", "room": "circle", "body": "now"}), "muted").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    sent(&mut mia, "after the mute").await;
}

#[tokio::test]
async fn only_someone_with_more_authority_may_act() {
    let Circle { server, mut owner, mut mia, ben: _ } = circle().await;
    // A member cannot moderate.
    for request in [
        json!({"type": "mute", "room": "circle", "user": "ben"}),
        json!({"type": "kick", "room": "circle", "user": "ben"}),
        json!({"type": "ban", "room": "circle", "user": "ben"}),
        json!({"type": "slow_mode", "room": "circle", "seconds": 5}),
        json!({"type": "lock", "room": "circle", "locked": true}),
        json!({"type": "reports", "room": "circle"}),
        json!({"type": "mod_log", "room": "circle"}),
        json!({"type": "set_room_role", "room": "circle", "user": "ben", "role": "moderator"}),
        json!({"type": "set_role", "user": "ben", "role": "moderator"}),
        json!({"type": "ban", "scope": "server", "user": "ben"}),
    ] {
        mia.refused(request, "forbidden").await;
    }
    // A room moderator may act on members, not on other room moderators or the owner.
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "mia", "role": "moderator"})).await;
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "ben", "role": "moderator"})).await;
    mia.refused(json!({"type": "mute", "room": "circle", "user": "ben"}), "forbidden").await;
    mia.refused(json!({"type": "kick", "room": "circle", "user": "owner"}), "forbidden").await;
    mia.refused(json!({"type": "set_room_role", "room": "circle", "user": "ben", "role": "member"}), "forbidden").await;
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "ben", "role": "member"})).await;
    mia.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 60})).await;

    // A global moderator cannot act on the owner, nor on an equal or higher role.
    let token = server.user_with_role("globalmod", Role::Moderator).await;
    let mut global = server.client(&token).await;
    server.user_with_role("othermod", Role::Moderator).await;
    server.user_with_role("boss", Role::Admin).await;
    let refusal = global.refused(json!({"type": "kick", "room": "circle", "user": "owner"}), "forbidden").await;
    assert!(refusal["message"].as_str().unwrap().contains("owner"), "{refusal}");
    global.refused(json!({"type": "ban", "room": "circle", "user": "othermod"}), "forbidden").await;
    global.refused(json!({"type": "ban", "room": "circle", "user": "boss"}), "forbidden").await;
    global.refused(json!({"type": "ban", "scope": "server", "user": "othermod"}), "forbidden").await;
    // ...but may act on the room's own moderators, without being a member.
    global.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 60})).await;
    // An admin may act on the owner.
    let token = server.user_with_role("admin2", Role::Admin).await;
    let mut admin = server.client(&token).await;
    admin.ok(json!({"type": "mute", "room": "circle", "user": "owner", "duration_s": 60})).await;

    for (request, code) in [
        (json!({"type": "mute", "room": "circle", "user": "nobody"}), "not_found"),
        (json!({"type": "mute", "room": "nowhere", "user": "mia"}), "not_found"),
        (json!({"type": "mute", "room": "circle", "user": "boss"}), "not_found"),
        (json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": -5}), "invalid"),
        (json!({"type": "mute", "room": "circle", "user": "ben", "reason": "x".repeat(501)}), "invalid"),
        (json!({"type": "ban", "user": "ben"}), "bad_request"),
    ] {
        admin.refused(request, code).await;
    }
}

#[tokio::test]
async fn kick_removes_the_member_who_may_come_back() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    owner.ok(json!({"type": "kick", "room": "circle", "user": "mia", "reason": "Off topic"})).await;
    let kicked = mia.event_of("kicked").await;
    assert_eq!(kicked, json!({"type": "kicked", "room": "circle", "by": "owner", "reason": "Off topic"}));
    let left = ben.event_of("member_left").await;
    assert_eq!((left["user"]["username"].as_str(), left["reason"].as_str()), (Some("mia"), Some("kicked")));
    // Out of the room's fan-out at once.
    sent(&mut ben, "after the kick").await;
    mia.refused(json!({"type": "send", "room": "circle", "body": "still here?"}), "forbidden").await;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(200), mia.event()).await {
        assert_ne!(event["type"], "message", "a kicked member got a message: {event}");
    }
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    sent(&mut mia, "back again").await;
    owner.refused(json!({"type": "kick", "room": "circle", "user": "owner"}), "forbidden").await;
}

#[tokio::test]
async fn a_room_ban_keeps_the_member_out_until_lifted_or_expired() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "mia", "reason": "Harassment"})).await;
    let banned = mia.event_of("banned").await;
    assert_eq!(banned, json!({"type": "banned", "room": "circle", "by": "owner", "reason": "Harassment"}));
    assert_eq!(ben.event_of("member_left").await["reason"], "banned");
    let refusal = mia.refused(json!({"type": "join", "room": "circle"}), "banned").await;
    assert!(refusal["message"].as_str().unwrap().contains("Harassment"), "{refusal}");
    mia.refused(json!({"type": "history", "room": "circle"}), "forbidden").await;
    owner.ok(json!({"type": "unban", "room": "circle", "user": "mia"})).await;
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    owner.refused(json!({"type": "unban", "room": "circle", "user": "mia"}), "not_found").await;

    // A non-member can be banned ahead of time; a timed ban expires by itself.
    owner.ok(json!({"type": "leave", "room": "circle"})).await;
    owner.ok(json!({"type": "join", "room": "circle"})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "ben", "duration_s": 0.3})).await;
    ben.refused(json!({"type": "join", "room": "circle"}), "banned").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
}

#[tokio::test]
async fn a_server_ban_closes_every_socket_with_4003_and_refuses_logins() {
    let server = TestServer::start().await;
    let token = server.user_with_role("globalmod", Role::Moderator).await;
    let mut moderator = server.client(&token).await;
    let mia_token = server.user("mia").await;
    let mut first = server.client(&mia_token).await;
    let mut second = server.client(&mia_token).await;
    moderator.ok(json!({"type": "ban", "scope": "server", "user": "mia", "reason": "Spam", "duration_s": 3600})).await;
    for socket in [&mut first, &mut second] {
        let banned = socket.event_of("banned").await;
        assert!(banned.get("room").is_none(), "{banned}");
        assert_eq!(banned["reason"], "Spam");
        assert_eq!(socket.closed().await, 4003);
    }
    let answer = server.post("/api/v1/login", &json!({"username": "mia", "password": "password-mia"})).await;
    assert_http_error(&answer, 403, "banned");
    assert!(answer.1.contains("Spam"), "{}", answer.1);
    // A wrong password still says only that the password is wrong.
    let answer = server.post("/api/v1/login", &json!({"username": "mia", "password": "wrong wrong"})).await;
    assert_http_error(&answer, 401, "unauthenticated");
    let mut again = Client::connect(&server.ws_url(), None).await;
    again.refused(json!({"type": "auth", "token": mia_token}), "banned").await;
    assert_eq!(again.closed().await, 4003);

    moderator.ok(json!({"type": "unban", "scope": "server", "user": "mia"})).await;
    server.login("mia").await;
    server.client(&mia_token).await.ok(json!({"type": "rooms"})).await;
}

#[tokio::test]
async fn deleted_messages_keep_their_seq_and_lose_their_body() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    let mine = sent(&mut mia, "I regret this").await;
    let theirs = sent(&mut ben, "something hurtful").await;
    mia.refused(json!({"type": "delete_message", "room": "circle", "seq": theirs}), "forbidden").await;
    mia.ok(json!({"type": "delete_message", "room": "circle", "seq": mine})).await;
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": theirs, "reason": "Unkind"})).await;
    let first = ben.event_of("message_deleted").await;
    assert_eq!(first, json!({"type": "message_deleted", "room": "circle", "seq": mine, "by": "mia"}));
    assert_eq!(ben.event_of("message_deleted").await["by"], "owner");
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    for message in messages {
        assert_eq!(message["deleted"], true, "{message}");
        assert!(message.get("body").is_none(), "{message}");
        assert!(message["author"]["username"].is_string());
    }
    // Deleting again is harmless; an unknown seq is not found.
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": theirs})).await;
    owner.refused(json!({"type": "delete_message", "room": "circle", "seq": 99}), "not_found").await;
    assert_eq!(sent(&mut owner, "next").await, theirs + 1, "deleted seqs are never reused");
}

#[tokio::test]
async fn slow_mode_spaces_out_members_but_not_moderators() {
    let Circle { mut owner, mut mia, server: _server, .. } = circle().await;
    owner.refused(json!({"type": "slow_mode", "room": "circle", "seconds": 3601}), "invalid").await;
    owner.ok(json!({"type": "slow_mode", "room": "circle", "seconds": 30})).await;
    let updated = mia.event_of("room_updated").await;
    assert_eq!(updated["room"]["slow_mode_s"], 30);
    sent(&mut mia, "first").await;
    let refusal = mia.refused(json!({"type": "send", "room": "circle", "body": "second"}), "rate_limited").await;
    assert!(refusal["message"].as_str().unwrap().contains("seconds"), "says how long to wait: {refusal}");
    sent(&mut owner, "moderators are exempt").await;
    sent(&mut owner, "even twice").await;
    owner.ok(json!({"type": "slow_mode", "room": "circle", "seconds": 0})).await;
    assert_eq!(mia.event_of("room_updated").await["room"]["slow_mode_s"], 0);
    sent(&mut mia, "second, now that slow mode is off").await;
}

#[tokio::test]
async fn a_locked_room_is_read_only_for_members() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    owner.ok(json!({"type": "lock", "room": "circle", "locked": true})).await;
    assert_eq!(ben.event_of("room_updated").await["room"]["locked"], true);
    let refusal = mia.refused(json!({"type": "send", "room": "circle", "body": "hello"}), "forbidden").await;
    assert!(refusal["message"].as_str().unwrap().contains("locked"), "{refusal}");
    sent(&mut owner, "an announcement").await;
    assert_eq!(mia.event_of("message").await["message"]["body"], "an announcement");
    let rooms = mia.ok(json!({"type": "rooms"})).await;
    assert_eq!(rooms["rooms"][0]["locked"], true);
    owner.ok(json!({"type": "lock", "room": "circle", "locked": false})).await;
    sent(&mut mia, "open again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_list_read_during_a_lock_never_unlocks_the_room() {
    const TRIALS: usize = 30;
    let Circle { mut owner, mut mia, ben, server } = circle().await;
    // Many rooms make each read of the list long enough to straddle a lock.
    for n in 0..300 {
        owner.ok(json!({"type": "create_room", "name": format!("other-{n:03}")})).await;
    }
    // Ben's sockets ask for the room list as fast as they can (the web client does on
    // every reconnect); each read may start before a lock and end after it.
    let mut listers = vec![ben];
    for _ in 0..3 {
        listers.push(server.client(&server.login("ben").await).await);
    }
    for trial in 0..TRIALS {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = listers
            .drain(..)
            .map(|mut lister| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        lister.ok(json!({"type": "rooms"})).await;
                    }
                    lister
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_micros(trial as u64 % 5 * 200)).await;
        owner.ok(json!({"type": "lock", "room": "circle", "locked": true})).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in tasks {
            listers.push(tokio::time::timeout(WAIT, task).await.expect("lister stops").expect("lister"));
        }
        let refusal = mia.refused(json!({"type": "send", "room": "circle", "body": "open?"}), "forbidden").await;
        assert!(refusal["message"].as_str().unwrap().contains("locked"), "trial {trial}: {refusal}");
        let rooms = mia.ok(json!({"type": "rooms"})).await;
        let circle = rooms["rooms"].as_array().unwrap().iter().find(|r| r["name"] == "circle").cloned();
        assert_eq!(circle.unwrap()["locked"], true, "trial {trial}");
        owner.ok(json!({"type": "lock", "room": "circle", "locked": false})).await;
        mia.ok(json!({"type": "send", "room": "circle", "body": format!("open again {trial}")})).await;
    }
}

#[tokio::test]
async fn set_role_applies_to_open_sockets_at_once() {
    let server = TestServer::start().await;
    let admin_token = server.user_with_role("admin", Role::Admin).await;
    let mut admin = server.client(&admin_token).await;
    let mut sam = server.member("sam").await;
    sam.refused(json!({"type": "create_room", "name": "summit", "kind": "summit"}), "forbidden").await;
    admin.ok(json!({"type": "set_role", "user": "sam", "role": "organiser"})).await;
    let updated = sam.event_of("user_updated").await;
    assert_eq!(updated["user"]["role"], "organiser");
    sam.ok(json!({"type": "create_room", "name": "summit", "kind": "summit"})).await;
    admin.refused(json!({"type": "set_role", "user": "admin", "role": "member"}), "invalid").await;
    admin.refused(json!({"type": "set_role", "user": "nobody", "role": "member"}), "not_found").await;
    admin.refused(json!({"type": "set_role", "user": "sam", "role": "king"}), "bad_request").await;
    sam.refused(json!({"type": "set_role", "user": "admin", "role": "member"}), "forbidden").await;
    // Server-scope actions go to the server's log, which global moderators and up read.
    let log = admin.ok(json!({"type": "mod_log", "scope": "server"})).await;
    let entry = &log["entries"][0];
    assert_eq!((entry["action"].as_str(), entry["target"].as_str()), (Some("set_role"), Some("sam")));
    assert_eq!((entry["actor"].as_str(), entry["reason"].as_str()), (Some("admin"), Some("organiser")));
    sam.ok(json!({"type": "mod_log", "scope": "server"})).await;
    let mut pat = server.member("pat").await;
    pat.refused(json!({"type": "mod_log", "scope": "server"}), "forbidden").await;
    pat.refused(json!({"type": "mod_log"}), "bad_request").await;
}

#[tokio::test]
async fn reports_reach_moderators_online_and_wait_for_those_offline() {
    let Circle { server, mut owner, mut mia, mut ben } = circle().await;
    let token = server.user_with_role("globalmod", Role::Moderator).await;
    let mut global = server.client(&token).await;
    let seq = sent(&mut ben, "something harmful").await;
    mia.refused(json!({"type": "report", "room": "circle", "seq": seq, "reason": " "}), "invalid").await;
    mia.refused(json!({"type": "report", "room": "circle", "seq": 99, "reason": "x"}), "not_found").await;
    mia.ok(json!({"type": "report", "room": "circle", "seq": seq, "reason": "This could hurt someone"})).await;
    for moderator in [&mut owner, &mut global] {
        let report = moderator.event_of("report").await["report"].clone();
        assert_eq!(report["seq"], seq);
        assert_eq!(report["reporter"], "mia");
        assert_eq!(report["reason"], "This could hurt someone");
    }
    // Members do not see reports.
    sent(&mut owner, "marker").await;
    loop {
        let event = ben.event().await;
        assert_ne!(event["type"], "report", "a member got a report");
        if event["type"] == "message" && event["message"]["body"] == "marker" {
            break;
        }
    }
    ben.refused(json!({"type": "reports", "room": "circle"}), "forbidden").await;

    // A room moderator who was offline finds the reports stored, oldest first.
    drop(owner);
    // One report per member and message; a second message gets a second report.
    mia.refused(json!({"type": "report", "room": "circle", "seq": seq, "reason": "Again"}), "conflict").await;
    let second = sent(&mut ben, "something else").await;
    mia.ok(json!({"type": "report", "room": "circle", "seq": second, "reason": "Second report"})).await;
    let mut owner = server.client(&server.login("owner").await).await;
    let open = owner.ok(json!({"type": "reports", "room": "circle"})).await;
    let reasons: Vec<&str> =
        open["reports"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["This could hurt someone", "Second report"]);
    let (first, second) = (open["reports"][0]["id"].clone(), open["reports"][1]["id"].clone());
    owner.ok(json!({"type": "resolve_report", "room": "circle", "report_id": first, "note": "Talked with ben"})).await;
    owner.refused(json!({"type": "resolve_report", "room": "circle", "report_id": first}), "not_found").await;
    let open = owner.ok(json!({"type": "reports", "room": "circle"})).await;
    assert_eq!(open["reports"].as_array().unwrap().len(), 1);
    // As PROTOCOL.md writes it, the frame's `id` names the report (and is echoed).
    owner.send_json(&json!({"type": "resolve_report", "room": "circle", "id": second})).await;
    assert_eq!(owner.reply_to(second).await["type"], "ok");
    let open = owner.ok(json!({"type": "reports", "room": "circle"})).await;
    assert_eq!(open["reports"], json!([]));
}

#[tokio::test]
async fn every_action_is_in_the_mod_log_newest_first() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    let seq = sent(&mut ben, "oops").await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 60, "reason": "cool off"})).await;
    owner.ok(json!({"type": "unmute", "room": "circle", "user": "ben"})).await;
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": seq, "reason": "oops"})).await;
    owner.ok(json!({"type": "slow_mode", "room": "circle", "seconds": 10})).await;
    owner.ok(json!({"type": "lock", "room": "circle", "locked": true})).await;
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "mia", "role": "moderator"})).await;
    owner.ok(json!({"type": "kick", "room": "circle", "user": "ben", "reason": "enough"})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "ben", "duration_s": 60})).await;
    owner.ok(json!({"type": "unban", "room": "circle", "user": "ben"})).await;
    let log = mia.ok(json!({"type": "mod_log", "room": "circle"})).await;
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["unban", "ban", "kick", "set_room_role", "lock", "slow_mode", "delete", "unmute", "mute"],
        "newest first"
    );
    let mute: &Value = entries.last().unwrap();
    assert_eq!(mute["actor"], "owner");
    assert_eq!(mute["target"], "ben");
    assert_eq!(mute["reason"], "cool off");
    assert!(mute["until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries[6]["seq"], seq);
    let short = mia.ok(json!({"type": "mod_log", "room": "circle", "limit": 2})).await;
    assert_eq!(short["entries"].as_array().unwrap().len(), 2);
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "mia", "role": "member"})).await;
    mia.refused(json!({"type": "mod_log", "room": "circle"}), "forbidden").await;
}

#[tokio::test]
async fn bans_and_mutes_persist_across_a_restart_and_expired_ones_do_not() {
    let Circle { server, mut owner, .. } = circle().await;
    let carl = server.user("carl").await;
    let mut carl_socket = server.client(&carl).await;
    carl_socket.ok(json!({"type": "join", "room": "circle"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 3600})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "carl", "duration_s": 0.2})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "ben"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = server.restart().await;

    let mut mia = server.client(&server.login("mia").await).await;
    mia.refused(json!({"type": "send", "room": "circle", "body": "still muted?"}), "muted").await;
    let mut carl = server.client(&carl).await;
    carl.ok(json!({"type": "send", "room": "circle", "body": "my mute has run out"})).await;
    let mut ben = server.client(&server.login("ben").await).await;
    ben.refused(json!({"type": "join", "room": "circle"}), "banned").await;
}

#[tokio::test]
async fn moderators_see_the_bans_and_mutes_in_force_with_their_ends() {
    let Circle { server, mut owner, mut mia, .. } = circle().await;
    let carl = server.user("carl").await;
    let mut carl = server.client(&carl).await;
    carl.ok(json!({"type": "join", "room": "circle"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 3600, "reason": "A pause"})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "ben"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "carl", "duration_s": 0.2})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Carl's mute has run out: only what is in force is listed, soonest to end first,
    // "until lifted" last.
    let list = owner.ok(json!({"type": "sanctions", "room": "circle"})).await["sanctions"].clone();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!((list[0]["kind"].as_str(), list[0]["user"]["username"].as_str()), (Some("mute"), Some("mia")));
    assert_eq!(list[0]["reason"], "A pause");
    assert_eq!(list[0]["by"], "owner");
    assert!(list[0]["until"].as_str().is_some_and(|until| until.ends_with('Z')), "{:?}", list[0]);
    assert_eq!((list[1]["kind"].as_str(), list[1]["user"]["username"].as_str()), (Some("ban"), Some("ben")));
    assert!(list[1].get("until").is_none(), "a ban until lifted has no end: {:?}", list[1]);
    // Members do not see who else is sanctioned; lifting takes an entry off.
    mia.refused(json!({"type": "sanctions", "room": "circle"}), "forbidden").await;
    owner.ok(json!({"type": "unban", "room": "circle", "user": "ben"})).await;
    let list = owner.ok(json!({"type": "sanctions", "room": "circle"})).await["sanctions"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_report_keeps_the_message_after_its_author_deletes_it() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    let seq = sent(&mut mia, "something that hurt").await;
    ben.ok(json!({"type": "report", "room": "circle", "seq": seq, "reason": "Unkind to a newcomer"})).await;
    let event = owner.event_of("report").await;
    assert_eq!(event["report"]["message"]["body"], "something that hurt", "{event}");
    assert_eq!(event["report"]["message"]["author"]["username"], "mia");

    // The author deletes it: gone for the room, not for the moderators' evidence.
    mia.ok(json!({"type": "delete_message", "room": "circle", "seq": seq})).await;
    let history = ben.ok(json!({"type": "history", "room": "circle", "after": seq - 1, "limit": 1})).await;
    assert_eq!(history["messages"][0]["deleted"], true);
    assert!(history["messages"][0].get("body").is_none(), "{history}");
    let open = owner.ok(json!({"type": "reports", "room": "circle"})).await;
    let report = &open["reports"][0];
    assert_eq!(report["seq"], seq);
    assert_eq!(report["message"]["body"], "something that hurt", "{report}");
    assert_eq!(report["message"]["author"]["username"], "mia");
    assert_eq!(report["message"]["seq"], seq);
    // A deleted message cannot be reported afresh: there is nothing left to snapshot.
    ben.refused(json!({"type": "report", "room": "circle", "seq": seq, "reason": "again"}), "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_over_and_over_while_being_banned_is_never_left_a_member() {
    const TRIALS: u64 = 40;
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    let token = server.user("racer").await;
    let mut racers = Vec::new();
    for _ in 0..3 {
        racers.push(server.client(&token).await);
    }
    for trial in 0..TRIALS {
        let room = format!("race-{trial}");
        owner.ok(json!({"type": "create_room", "name": room})).await;
        // Three sockets of the member join as fast as they can, before, during and
        // after the ban; each stops a few joins after the ban was acknowledged.
        let banned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = racers
            .drain(..)
            .map(|mut racer| {
                let (room, banned) = (room.clone(), banned.clone());
                tokio::spawn(async move {
                    let mut after_ban = 0;
                    while after_ban < 3 {
                        if banned.load(std::sync::atomic::Ordering::SeqCst) {
                            after_ban += 1;
                        }
                        let reply = racer.request(json!({"type": "join", "room": room})).await;
                        assert!(reply["type"] == "ok" || reply["code"] == "banned", "join: {reply}");
                    }
                    racer
                })
            })
            .collect();
        // The ban lands at a different moment of the joins in each trial.
        tokio::time::sleep(Duration::from_micros(trial % 4 * 150)).await;
        owner.ok(json!({"type": "ban", "room": room, "user": "racer", "reason": "trial"})).await;
        banned.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in tasks {
            racers.push(tokio::time::timeout(WAIT, task).await.expect("racer finished").expect("racer"));
        }
        // Never a member afterwards: not on any open socket, not at the next `auth`.
        for racer in &mut racers {
            racer.refused(json!({"type": "send", "room": room, "body": "still here?"}), "forbidden").await;
        }
        let mut fresh = Client::connect(&server.ws_url(), None).await;
        let auth = fresh.ok(json!({"type": "auth", "token": token})).await;
        assert_eq!(auth["rooms"], json!([]), "trial {trial}: the banned member is back in at auth");
    }

    // A membership left behind beside a ban (as versions with the race could leave)
    // is not re-attached at `auth`. Those versions ran on SQLite only.
    if on_cluster() {
        return;
    }
    let url = format!("sqlite://{}", server.db_path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, joined_at) \
         SELECT r.id, u.id, 0 FROM rooms r, users u WHERE r.name = 'race-0' AND u.username = 'racer'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut fresh = Client::connect(&server.ws_url(), None).await;
    let auth = fresh.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(auth["rooms"], json!([]));
    fresh.refused(json!({"type": "history", "room": "race-0"}), "forbidden").await;
}

#[tokio::test]
async fn a_sanction_is_lifted_only_with_the_authority_that_imposed_it() {
    let Circle { server, mut owner, mia: _mia, ben: _ben } = circle().await;
    let mut global = server.client(&server.user_with_role("globalmod", Role::Moderator).await).await;
    let mut admin = server.client(&server.user_with_role("root", Role::Admin).await).await;

    // A global moderator's room ban and mute: the room's owner may not undo them.
    global.ok(json!({"type": "ban", "room": "circle", "user": "mia", "reason": "harassment"})).await;
    let refusal = owner.refused(json!({"type": "unban", "room": "circle", "user": "mia"}), "forbidden").await;
    assert!(refusal["message"].as_str().unwrap().contains("authority"), "{refusal}");
    global.ok(json!({"type": "mute", "room": "circle", "user": "ben"})).await;
    owner.refused(json!({"type": "unmute", "room": "circle", "user": "ben"}), "forbidden").await;
    // The one who imposed them, or someone above, may.
    global.ok(json!({"type": "unban", "room": "circle", "user": "mia"})).await;
    admin.ok(json!({"type": "unmute", "room": "circle", "user": "ben"})).await;
    // The owner's own sanction is the owner's (and anyone above) to lift.
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben"})).await;
    global.ok(json!({"type": "unmute", "room": "circle", "user": "ben"})).await;

    // A server ban by an admin is not a global moderator's to lift.
    admin.ok(json!({"type": "ban", "scope": "server", "user": "mia"})).await;
    global.refused(json!({"type": "unban", "scope": "server", "user": "mia"}), "forbidden").await;
    admin.ok(json!({"type": "unban", "scope": "server", "user": "mia"})).await;
}

#[tokio::test]
async fn authors_edit_their_own_messages_and_reports_keep_what_was_said() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    let seq = sent(&mut ben, "you are all useless").await;
    mia.ok(json!({"type": "report", "room": "circle", "seq": seq, "reason": "Unkind"})).await;
    let edited = ben.ok(json!({"type": "edit", "room": "circle", "seq": seq, "body": "sorry, bad day"})).await;
    assert_eq!(edited["message"]["body"], "sorry, bad day");
    assert!(edited["message"]["edited_at"].is_string(), "{edited}");
    // Every member hears the new text, under the same seq.
    for client in [&mut owner, &mut mia] {
        let updated = client.event_of("message_updated").await;
        assert_eq!(updated["room"], "circle");
        assert_eq!(updated["message"]["seq"], seq);
        assert_eq!(updated["message"]["body"], "sorry, bad day");
        assert_eq!(updated["message"]["author"]["username"], "ben");
    }
    let history = mia.ok(json!({"type": "history", "room": "circle"})).await;
    let stored = &history["messages"][0];
    assert_eq!((stored["body"].as_str(), stored["edited_at"].is_string()), (Some("sorry, bad day"), true));
    // Nobody else may rewrite it, not even a moderator; a bad body changes nothing.
    mia.refused(json!({"type": "edit", "room": "circle", "seq": seq, "body": "mine now"}), "not_found").await;
    owner.refused(json!({"type": "edit", "room": "circle", "seq": seq, "body": "moderated"}), "not_found").await;
    ben.refused(json!({"type": "edit", "room": "circle", "seq": seq, "body": "  "}), "invalid").await;
    ben.refused(json!({"type": "edit", "room": "circle", "seq": 99, "body": "x"}), "not_found").await;
    // The report shows what was said when it was reported.
    let open = owner.ok(json!({"type": "reports", "room": "circle"})).await;
    assert_eq!(open["reports"][0]["message"]["body"], "you are all useless");
    // A muted author cannot edit; a deleted message cannot be edited.
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 600})).await;
    ben.refused(json!({"type": "edit", "room": "circle", "seq": seq, "body": "again"}), "muted").await;
    owner.ok(json!({"type": "unmute", "room": "circle", "user": "ben"})).await;
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": seq})).await;
    ben.refused(json!({"type": "edit", "room": "circle", "seq": seq, "body": "again"}), "not_found").await;
    let history = mia.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"][0]["deleted"], true);
    assert!(history["messages"][0].get("body").is_none());
}

#[tokio::test]
async fn reactions_are_counted_once_per_member_and_kept() {
    let Circle { mut owner, mut mia, mut ben, server } = circle().await;
    let seq = sent(&mut ben, "first day back at work").await;
    for client in [&mut mia, &mut owner] {
        client.ok(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "💙"})).await;
    }
    // Reacting twice counts once, and tells nobody.
    mia.ok(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "💙"})).await;
    mia.ok(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "🌱"})).await;
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(ben.event_of("reactions").await["reactions"].clone());
    }
    // A repeat sending an event would show as a second {"💙": 2} before the 🌱.
    assert_eq!(counts, [json!({"💙": 1}), json!({"💙": 2}), json!({"💙": 2, "🌱": 1})]);
    mia.ok(json!({"type": "unreact", "room": "circle", "seq": seq, "emoji": "🌱"})).await;
    assert_eq!(ben.event_of("reactions").await["reactions"], json!({"💙": 2}));
    // Only the allowed set, only existing messages, only members who are not muted.
    let refusal = mia.refused(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "👎"}), "invalid").await;
    assert!(refusal["message"].as_str().unwrap().contains("💙"), "names the allowed set: {refusal}");
    mia.refused(json!({"type": "react", "room": "circle", "seq": 99, "emoji": "💙"}), "not_found").await;
    let mut outsider = server.member("outsider").await;
    outsider.refused(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "💙"}), "forbidden").await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 600})).await;
    mia.refused(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "🙏"}), "muted").await;
    // History carries the counts, after a restart too; a deleted message has none.
    let other = sent(&mut ben, "no reactions here").await;
    let server = server.restart().await;
    let mut ben = server.client(&server.login("ben").await).await;
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    let messages = history["messages"].as_array().unwrap();
    let of = |seq: i64| messages.iter().find(|m| m["seq"] == seq).unwrap().clone();
    assert_eq!(of(seq)["reactions"], json!({"💙": 2}));
    assert!(of(other).get("reactions").is_none(), "absent when none");
    // Each member is told which reactions are their own, in history and on joining.
    assert!(of(seq).get("my_reactions").is_none(), "ben did not react: {}", of(seq));
    let mut mia = server.client(&server.login("mia").await).await;
    let mine = mia.ok(json!({"type": "history", "room": "circle"})).await;
    let message = mine["messages"].as_array().unwrap().iter().find(|m| m["seq"] == seq).unwrap().clone();
    assert_eq!(message["my_reactions"], json!(["💙"]));
    let joined = mia.ok(json!({"type": "join", "room": "circle"})).await;
    let message = joined["messages"].as_array().unwrap().iter().find(|m| m["seq"] == seq).unwrap().clone();
    assert_eq!(message["my_reactions"], json!(["💙"]));
    ben.ok(json!({"type": "delete_message", "room": "circle", "seq": seq})).await;
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    assert!(history["messages"][0].get("reactions").is_none());
    let mut owner = server.client(&server.login("owner").await).await;
    owner.refused(json!({"type": "react", "room": "circle", "seq": seq, "emoji": "💙"}), "not_found").await;
}

#[tokio::test]
async fn the_operator_chooses_the_reactions_and_clients_are_told() {
    let server = TestServer::start_with(|c| {
        c.members_may_create_rooms = true;
        c.reactions = "🫶 🌻".into();
    })
    .await;
    let token = server.user("ada").await;
    let mut ada = Client::connect(&server.ws_url(), None).await;
    let auth = ada.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(auth["reactions"], json!(["🫶", "🌻"]));
    ada.ok(json!({"type": "create_room", "name": "garden"})).await;
    let seq = ada.ok(json!({"type": "send", "room": "garden", "body": "planted"})).await["message"]["seq"].clone();
    ada.ok(json!({"type": "react", "room": "garden", "seq": seq, "emoji": "🌻"})).await;
    ada.refused(json!({"type": "react", "room": "garden", "seq": seq, "emoji": "💙"}), "invalid").await;
}

#[tokio::test]
async fn a_reply_names_the_message_it_answers() {
    let Circle { mut owner, mut mia, mut ben, server: _server } = circle().await;
    let question = sent(&mut mia, "does anyone else find mornings hard?").await;
    let reply = ben
        .ok(json!({"type": "send", "room": "circle", "body": "every day, you are not alone", "reply_to": question}))
        .await;
    assert_eq!(reply["message"]["reply_to"], question);
    loop {
        let event = mia.event_of("message").await;
        if event["message"]["author"]["username"] == "ben" {
            assert_eq!(event["message"]["reply_to"], question);
            break;
        }
    }
    let history = owner.ok(json!({"type": "history", "room": "circle"})).await;
    let messages = history["messages"].as_array().unwrap();
    assert!(messages[0].get("reply_to").is_none(), "a plain message answers nothing");
    assert_eq!(messages[1]["reply_to"], question);
    let refusal =
        ben.refused(json!({"type": "send", "room": "circle", "body": "to nothing", "reply_to": 99}), "not_found").await;
    assert!(refusal["message"].as_str().unwrap().contains("reply"), "{refusal}");
    let history = owner.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2, "the refused reply was not stored");
}

#[tokio::test]
async fn a_member_named_in_a_message_is_told_and_it_counts_until_read() {
    let Circle { mut owner, mut mia, mut ben, server } = circle().await;
    let mut outsider = server.member("outsider").await;
    let seq = sent(&mut owner, "welcome @Mia and @ben, and hello @outsider and @nobody").await;
    let message = mia.event_of("message").await;
    assert_eq!(message["message"]["mentions"], json!(["ben", "mia"]), "members only");
    for client in [&mut mia, &mut ben] {
        assert_eq!(client.event_of("mention").await, json!({"type": "mention", "room": "circle", "seq": seq}));
    }
    // Someone outside the room hears nothing; the author is not told of naming themselves.
    sent(&mut owner, "and @owner too").await;
    for _ in 0..2 {
        owner.event_of("message").await;
    }
    outsider.assert_quiet(Duration::from_millis(200)).await;
    owner.assert_quiet(Duration::from_millis(200)).await;
    let plain = sent(&mut owner, "no names here").await;
    let unread = |reply: &Value| {
        let room = reply["rooms"].as_array().unwrap().iter().find(|r| r["name"] == "circle").unwrap().clone();
        (room["unread"].as_u64(), room["mentions_unread"].as_u64())
    };
    assert_eq!(unread(&ben.ok(json!({"type": "rooms"})).await), (Some(3), Some(1)));
    ben.ok(json!({"type": "mark_read", "room": "circle", "seq": plain})).await;
    assert_eq!(unread(&ben.ok(json!({"type": "rooms"})).await), (Some(0), Some(0)));
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"][0]["mentions"], json!(["ben", "mia"]));
    assert!(history["messages"][2].get("mentions").is_none());
    let joined = mia.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(joined["room"]["mentions_unread"], 1, "the join reply counts them too");
}

#[tokio::test]
async fn search_finds_words_in_ones_own_rooms_newest_first_and_pages_on() {
    let Circle { mut owner, mut mia, mut ben, server } = circle().await;
    let first = sent(&mut ben, "Breathing exercises help me at night").await;
    sent(&mut mia, "Nothing to see here").await;
    let second = sent(&mut mia, "Has anyone tried box breathing?").await;
    let third = sent(&mut owner, "BREATHING: four in, four hold, four out").await;
    // Another room the searcher is not in.
    let mut other = server.member("other").await;
    owner.ok(json!({"type": "create_room", "name": "elsewhere"})).await;
    owner.ok(json!({"type": "send", "room": "elsewhere", "body": "breathing in the other room"})).await;
    let seqs = |reply: &Value| -> Vec<(String, i64)> {
        reply["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["room"].as_str().unwrap().to_string(), m["seq"].as_i64().unwrap()))
            .collect()
    };
    let circle = |seq: i64| ("circle".to_string(), seq);
    // Case and a word's end are ignored; newest first; only the rooms one is in.
    let found = mia.ok(json!({"type": "search", "query": "breath"})).await;
    assert_eq!(seqs(&found), [circle(third), circle(second), circle(first)]);
    assert!(found.get("next").is_none());
    // Every word must match; quotes and operators are just characters.
    let found = mia.ok(json!({"type": "search", "query": "box breathing"})).await;
    assert_eq!(seqs(&found), [circle(second)]);
    let found = mia.ok(json!({"type": "search", "query": "\"box\" OR NEAR( -night"})).await;
    assert!(seqs(&found).is_empty(), "{found}");
    // Pages follow the cursor.
    let page = mia.ok(json!({"type": "search", "query": "breathing", "limit": 2})).await;
    assert_eq!(seqs(&page), [circle(third), circle(second)]);
    let cursor = page["next"].clone();
    let page = mia.ok(json!({"type": "search", "query": "breathing", "limit": 2, "before": cursor})).await;
    assert_eq!(seqs(&page), [circle(first)]);
    assert!(page.get("next").is_none());
    // The owner is in both rooms; `room` narrows it.
    assert_eq!(seqs(&owner.ok(json!({"type": "search", "query": "breathing"})).await).len(), 4);
    let only = owner.ok(json!({"type": "search", "query": "breathing", "room": "elsewhere"})).await;
    assert_eq!(seqs(&only), [("elsewhere".to_string(), 1)]);
    other.refused(json!({"type": "search", "query": "breathing", "room": "circle"}), "forbidden").await;
    assert!(seqs(&other.ok(json!({"type": "search", "query": "breathing"})).await).is_empty());
    // Deleted messages are gone from search; edits are found by their new words.
    ben.ok(json!({"type": "delete_message", "room": "circle", "seq": first})).await;
    mia.ok(json!({"type": "edit", "room": "circle", "seq": second, "body": "Has anyone tried square counting?"})).await;
    let found = mia.ok(json!({"type": "search", "query": "breathing"})).await;
    assert_eq!(seqs(&found), [circle(third)]);
    assert_eq!(seqs(&mia.ok(json!({"type": "search", "query": "square"})).await), [circle(second)]);
    // Bad input gets a clear refusal.
    mia.refused(json!({"type": "search", "query": "  "}), "invalid").await;
    mia.refused(json!({"type": "search", "query": "x", "limit": 51}), "invalid").await;
    mia.refused(json!({"type": "search", "query": "x", "before": "not a cursor"}), "invalid").await;
}
