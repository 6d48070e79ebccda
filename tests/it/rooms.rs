//! Rooms over the WebSocket: creating, joining, leaving, listing, sending, history,
//! typing, presence, and each refusal with its code.

use crate::support::*;
use alongside::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

/// A moderator's client with a fresh topic room, and the room's name.
async fn room_with_owner(server: &TestServer, owner: &str, room: &str) -> Client {
    let token = server.user_with_role(owner, Role::Moderator).await;
    let mut client = server.client(&token).await;
    client.ok(json!({"type": "create_room", "name": room, "topic": "Peer support"})).await;
    client
}

#[tokio::test]
async fn topic_rooms_are_created_by_moderators_and_up() {
    let server = TestServer::start().await;
    let mut member = server.member("mia").await;
    let reply = member.refused(json!({"type": "create_room", "name": "mine"}), "forbidden").await;
    assert!(reply["message"].as_str().unwrap().contains("moderators"), "{reply}");

    let token = server.user_with_role("mod", Role::Moderator).await;
    let mut moderator = server.client(&token).await;
    let reply = moderator.ok(json!({"type": "create_room", "name": "peer-support", "topic": "Talk"})).await;
    assert_eq!(
        reply["room"],
        json!({"name": "peer-support", "topic": "Talk", "kind": "topic", "owner": "mod", "members_online": 1,
               "slow_mode_s": 0, "locked": false})
    );
    // Everyone's room list hears of it at once, members who are in no room included.
    let created = member.event_of("room_created").await;
    assert_eq!(created["room"]["name"], "peer-support");
    assert_eq!(created["room"]["topic"], "Talk");
    moderator.refused(json!({"type": "create_room", "name": "peer-support"}), "conflict").await;
    member.assert_quiet(Duration::from_millis(100)).await;
    for bad in ["x", "Upper", "with space", "dot.ted"] {
        moderator.refused(json!({"type": "create_room", "name": bad}), "invalid").await;
    }
    moderator.refused(json!({"type": "create_room", "name": "cap", "capacity": 5}), "invalid").await;
    moderator.refused(json!({"type": "create_room", "name": "summit", "kind": "summit"}), "forbidden").await;
    moderator.refused(json!({"type": "create_room", "name": "odd", "kind": "party"}), "bad_request").await;
    // The owner's socket is in the room at once.
    let auth_rooms = server.client(&token).await.ok(json!({"type": "rooms"})).await;
    assert_eq!(auth_rooms["rooms"][0]["name"], "peer-support");
}

#[tokio::test]
async fn members_may_create_topic_rooms_when_the_server_allows_it() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut member = server.member("mia").await;
    member.ok(json!({"type": "create_room", "name": "mias-room"})).await;
    member.refused(json!({"type": "create_room", "name": "mias-summit", "kind": "summit"}), "forbidden").await;
}

#[tokio::test]
async fn summit_rooms_keep_their_window_and_capacity() {
    let server = TestServer::start().await;
    let token = server.user_with_role("org", Role::Organiser).await;
    let mut organiser = server.client(&token).await;
    let reply = organiser
        .ok(json!({"type": "create_room", "name": "wmhd", "kind": "summit", "topic": "World Mental Health Day",
                   "starts_at": "2020-10-10T00:00:00Z", "ends_at": "2099-10-11T00:00:00+01:00", "capacity": 2}))
        .await;
    assert_eq!(reply["room"]["kind"], "summit");
    assert_eq!(reply["room"]["starts_at"], "2020-10-10T00:00:00.000Z");
    assert_eq!(reply["room"]["ends_at"], "2099-10-10T23:00:00.000Z");
    assert_eq!(reply["room"]["capacity"], 2);
    organiser.ok(json!({"type": "send", "room": "wmhd", "body": "Welcome, everyone"})).await;

    // Capacity counts members: the organiser plus one.
    let mut first = server.member("first").await;
    first.ok(json!({"type": "join", "room": "wmhd"})).await;
    let mut second = server.member("second").await;
    let reply = second.refused(json!({"type": "join", "room": "wmhd"}), "full").await;
    assert!(reply["message"].as_str().unwrap().contains('2'), "{reply}");
    // Joining again is not a new member, so a full room still answers its members.
    first.ok(json!({"type": "join", "room": "wmhd"})).await;

    // Before the window and after it, sends are refused; joining is fine.
    organiser
        .ok(json!({"type": "create_room", "name": "later", "kind": "summit", "starts_at": "2099-01-01T09:00:00Z"}))
        .await;
    organiser
        .ok(json!({"type": "create_room", "name": "over", "kind": "summit", "ends_at": "2020-01-01T09:00:00Z"}))
        .await;
    let reply = organiser.refused(json!({"type": "send", "room": "later", "body": "early"}), "not_open").await;
    assert!(reply["message"].as_str().unwrap().contains("1 Jan 2099, 09:00 UTC"), "{reply}");
    organiser.refused(json!({"type": "send", "room": "over", "body": "late"}), "not_open").await;
    second.ok(json!({"type": "join", "room": "later"})).await;

    for bad in [
        json!({"type": "create_room", "name": "bad1", "kind": "summit", "starts_at": "tomorrow"}),
        json!({"type": "create_room", "name": "bad2", "kind": "summit", "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}),
        json!({"type": "create_room", "name": "bad3", "kind": "summit", "capacity": 0}),
    ] {
        organiser.refused(bad, "invalid").await;
    }
}

#[tokio::test]
async fn join_and_leave_tell_every_member() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    owner.ok(json!({"type": "send", "room": "circle", "body": "first"})).await;
    owner.event_of("message").await;

    let mut ben = server.member("ben").await;
    let reply = ben.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(reply["room"]["name"], "circle");
    assert_eq!(reply["room"]["members_online"], 2);
    let online: Vec<&str> =
        reply["online"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(online.len(), 2);
    assert!(online.contains(&"owner") && online.contains(&"ben"), "{online:?}");
    assert_eq!(reply["messages"][0]["body"], "first");
    assert_eq!(reply["messages"][0]["seq"], 1);

    let joined = owner.event_of("member_joined").await;
    assert_eq!(
        joined,
        json!({"type": "member_joined", "room": "circle", "user": {"username": "ben", "display_name": "ben", "role": "member"}})
    );
    // Joining again answers the same way without a second event.
    let again = ben.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(again["messages"], reply["messages"]);
    owner.ok(json!({"type": "rooms"})).await;
    owner.assert_quiet(Duration::from_millis(100)).await;

    ben.ok(json!({"type": "leave", "room": "circle"})).await;
    let left = owner.event_of("member_left").await;
    assert_eq!(left["reason"], "left");
    assert_eq!(left["user"]["username"], "ben");
    // No longer a member: no more events, and member-only requests are refused.
    owner.ok(json!({"type": "send", "room": "circle", "body": "after ben left"})).await;
    ben.refused(json!({"type": "send", "room": "circle", "body": "hello?"}), "forbidden").await;
    ben.refused(json!({"type": "history", "room": "circle"}), "forbidden").await;
    ben.refused(json!({"type": "typing", "room": "circle"}), "forbidden").await;
    ben.refused(json!({"type": "leave", "room": "circle"}), "forbidden").await;
    // Ben's own sockets heard his join and his leave, and nothing after.
    assert_eq!(ben.event().await["type"], "member_joined");
    assert_eq!(ben.event().await["type"], "member_left");
    ben.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn unknown_rooms_are_not_found() {
    let server = TestServer::start().await;
    let mut client = server.member("zoe").await;
    for request in [
        json!({"type": "join", "room": "nowhere"}),
        json!({"type": "leave", "room": "nowhere"}),
        json!({"type": "send", "room": "nowhere", "body": "hi"}),
        json!({"type": "history", "room": "nowhere"}),
        json!({"type": "typing", "room": "nowhere"}),
    ] {
        client.refused(request, "not_found").await;
    }
}

#[tokio::test]
async fn messages_reach_every_member_including_the_sender() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    let mut ben = server.member("ben").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    owner.event_of("member_joined").await;

    let reply =
        ben.ok(json!({"type": "send", "room": "circle", "body": "Hello <b>all</b>", "client_msg_id": "c-1"})).await;
    let message = &reply["message"];
    assert_eq!(message["seq"], 1);
    assert_eq!(message["room"], "circle");
    assert_eq!(message["author"]["username"], "ben");
    assert_eq!(message["body"], "Hello <b>all</b>");
    assert_eq!(message["client_msg_id"], "c-1");
    assert!(message["ts"].as_str().unwrap().ends_with('Z'));
    for client in [&mut owner, &mut ben] {
        let event = client.event_of("message").await;
        assert_eq!(event["room"], "circle");
        assert_eq!(&event["message"], message);
    }
}

#[tokio::test]
async fn a_repeated_client_msg_id_returns_the_original_stored_once() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    let first = owner.ok(json!({"type": "send", "room": "circle", "body": "once", "client_msg_id": "k"})).await;
    let again = owner.ok(json!({"type": "send", "room": "circle", "body": "once", "client_msg_id": "k"})).await;
    assert_eq!(first["message"], again["message"]);
    let other = owner.ok(json!({"type": "send", "room": "circle", "body": "twice", "client_msg_id": "k2"})).await;
    assert_eq!(other["message"]["seq"], 2);
    let history = owner.ok(json!({"type": "history", "room": "circle"})).await;
    let seqs: Vec<i64> = history["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2], "the resend is stored once");
    // Exactly one `message` event per stored message.
    assert_eq!(owner.event_of("message").await["message"]["seq"], 1);
    assert_eq!(owner.event_of("message").await["message"]["seq"], 2);
    owner.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn message_bodies_have_bounds() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    owner.refused(json!({"type": "send", "room": "circle", "body": ""}), "invalid").await;
    owner.refused(json!({"type": "send", "room": "circle", "body": "   "}), "invalid").await;
    owner.refused(json!({"type": "send", "room": "circle", "body": "é".repeat(4001)}), "too_large").await;
    owner
        .refused(json!({"type": "send", "room": "circle", "body": "ok", "client_msg_id": "x".repeat(65)}), "invalid")
        .await;
    // 4000 characters of two bytes each is within the limit (characters, not bytes).
    let reply = owner.ok(json!({"type": "send", "room": "circle", "body": "é".repeat(4000)})).await;
    assert_eq!(reply["message"]["seq"], 1, "refused sends used no seq");
}

#[tokio::test]
async fn history_pages_backwards_and_catches_up_forwards() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    for n in 1..=120 {
        owner.ok(json!({"type": "send", "room": "circle", "body": format!("m{n}")})).await;
    }
    let seqs = |reply: &serde_json::Value| -> Vec<i64> {
        reply["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
    };
    let latest = owner.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(seqs(&latest), (71..=120).collect::<Vec<_>>(), "default: the latest 50, ascending");
    let older = owner.ok(json!({"type": "history", "room": "circle", "before": 71, "limit": 100})).await;
    assert_eq!(seqs(&older), (1..=70).collect::<Vec<_>>());
    let catch_up = owner.ok(json!({"type": "history", "room": "circle", "after": 100})).await;
    assert_eq!(seqs(&catch_up), (101..=120).collect::<Vec<_>>());
    let window = owner.ok(json!({"type": "history", "room": "circle", "after": 10, "before": 20, "limit": 5})).await;
    assert_eq!(seqs(&window), [11, 12, 13, 14, 15]);
    assert_eq!(latest["messages"][49]["body"], "m120");
    for limit in [0, 101] {
        owner.refused(json!({"type": "history", "room": "circle", "limit": limit}), "invalid").await;
    }
    owner.refused(json!({"type": "history", "room": "circle", "after": -1}), "invalid").await;
}

#[tokio::test]
async fn typing_reaches_the_others_only() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    let mut ben = server.member("ben").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    owner.event_of("member_joined").await;
    ben.event_of("member_joined").await;
    ben.ok(json!({"type": "typing", "room": "circle"})).await;
    let typing = owner.event().await;
    assert_eq!(typing["type"], "typing");
    assert_eq!(typing["user"]["username"], "ben");
    ben.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn rooms_lists_every_room_with_online_counts() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "bravo").await;
    owner.ok(json!({"type": "create_room", "name": "alpha", "topic": "First"})).await;
    let mut ben = server.member("ben").await;
    let reply = ben.ok(json!({"type": "rooms"})).await;
    let rooms = reply["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 2);
    assert_eq!(rooms[0]["name"], "alpha");
    assert_eq!(rooms[0]["topic"], "First");
    assert_eq!(rooms[0]["members_online"], 1);
    ben.ok(json!({"type": "join", "room": "alpha"})).await;
    let reply = ben.ok(json!({"type": "rooms"})).await;
    assert_eq!(reply["rooms"][0]["members_online"], 2);
}

#[tokio::test]
async fn membership_outlives_the_socket_and_presence_follows_it() {
    let server = TestServer::start().await;
    let mut owner = room_with_owner(&server, "owner", "circle").await;
    let token = server.user("ben").await;
    let mut ben = server.client(&token).await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    owner.event_of("member_joined").await;
    let seen =
        ben.ok(json!({"type": "send", "room": "circle", "body": "before"})).await["message"]["seq"].as_i64().unwrap();
    drop(ben);

    let left = owner.event_of("member_left").await;
    assert_eq!(left["reason"], "disconnected");
    for n in 0..3 {
        owner.ok(json!({"type": "send", "room": "circle", "body": format!("while away {n}")})).await;
    }

    // Reconnecting: still a member, receives the room again, catches up from history.
    let mut ben = Client::connect(&server.ws_url(), None).await;
    let auth = ben.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(auth["user"]["username"], "ben");
    assert_eq!(auth["rooms"], json!(["circle"]));
    let back = owner.event_of("member_joined").await;
    assert_eq!(back["user"]["username"], "ben");
    let missed = ben.ok(json!({"type": "history", "room": "circle", "after": seen})).await;
    let bodies: Vec<&str> =
        missed["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["while away 0", "while away 1", "while away 2"]);
    owner.ok(json!({"type": "send", "room": "circle", "body": "live again"})).await;
    assert_eq!(ben.event_of("message").await["message"]["body"], "live again");
}

#[tokio::test]
async fn rooms_memberships_and_messages_survive_a_restart() {
    let server = TestServer::start().await;
    let owner_token = server.user_with_role("owner", Role::Moderator).await;
    let mut owner = server.client(&owner_token).await;
    owner.ok(json!({"type": "create_room", "name": "circle"})).await;
    let ben_token = server.user("ben").await;
    let mut ben = server.client(&ben_token).await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    for n in 1..=3 {
        owner.ok(json!({"type": "send", "room": "circle", "body": format!("m{n}")})).await;
    }
    let server = server.restart().await;
    assert_eq!(ben.closed().await, 1001, "shutdown closes sockets with 1001");

    let mut ben = Client::connect(&server.ws_url(), None).await;
    let auth = ben.ok(json!({"type": "auth", "token": ben_token})).await;
    assert_eq!(auth["rooms"], json!(["circle"]), "tokens and memberships are durable");
    let reply = ben.ok(json!({"type": "send", "room": "circle", "body": "after restart"})).await;
    assert_eq!(reply["message"]["seq"], 4, "seq continues across restarts");
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_client_is_told_its_place_in_a_room_and_what_it_may_create() {
    let server = TestServer::start().await;
    let owner_token = server.user_with_role("olu", Role::Organiser).await;
    let mut owner = Client::connect(&server.ws_url(), None).await;
    let auth = owner.ok(json!({"type": "auth", "token": owner_token})).await;
    assert_eq!(auth["may_create"], json!(["topic", "summit"]));
    owner.ok(json!({"type": "create_room", "name": "circle"})).await;
    let mut member = Client::connect(&server.ws_url(), None).await;
    let member_token = server.user("mia").await;
    let auth = member.ok(json!({"type": "auth", "token": member_token})).await;
    assert_eq!(auth["may_create"], json!([]), "members create nothing on this server");
    let moderator_token = server.user_with_role("mod", Role::Moderator).await;
    let mut moderator = server.client(&moderator_token).await;

    let role_in = |reply: &Value| reply["room"]["my_role"].as_str().map(str::to_string);
    assert_eq!(role_in(&owner.ok(json!({"type": "join", "room": "circle"})).await).as_deref(), Some("owner"));
    assert_eq!(role_in(&member.ok(json!({"type": "join", "room": "circle"})).await).as_deref(), Some("member"));
    let global = moderator.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(role_in(&global).as_deref(), Some("moderator"), "global moderators moderate every room");
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "mia", "role": "moderator"})).await;
    assert_eq!(role_in(&member.ok(json!({"type": "join", "room": "circle"})).await).as_deref(), Some("moderator"));
    // Only the requester's own view carries it.
    let listed = member.ok(json!({"type": "rooms"})).await;
    assert!(listed["rooms"][0].get("my_role").is_none(), "{listed}");

    // The same over HTTP, and a server that lets members open topic rooms says so.
    let (status, body) =
        http(server.addr, "GET", "/api/v1/me", &[("Authorization", &format!("Bearer {member_token}"))], None).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["may_create"], json!([]));
    let open = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let token = open.user("ben").await;
    let mut ben = Client::connect(&open.ws_url(), None).await;
    assert_eq!(ben.ok(json!({"type": "auth", "token": token})).await["may_create"], json!(["topic"]));
}

#[tokio::test]
async fn read_markers_count_what_is_new_and_follow_a_member_across_devices() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "news"})).await;
    for n in 0..3 {
        owner.ok(json!({"type": "send", "room": "news", "body": format!("before {n}")})).await;
    }
    let token = server.user("reader").await;
    let (mut phone, mut laptop) = (server.client(&token).await, server.client(&token).await);
    let joined = phone.ok(json!({"type": "join", "room": "news"})).await;
    assert_eq!(joined["room"]["unread"], 0, "what was said before joining is not unread");
    let mut last = 0;
    for n in 0..2 {
        last = owner.ok(json!({"type": "send", "room": "news", "body": format!("after {n}")})).await["message"]["seq"]
            .as_i64()
            .unwrap();
    }
    phone.ok(json!({"type": "send", "room": "news", "body": "my own words are not unread"})).await;
    let unread_in = |reply: &Value| {
        reply["rooms"].as_array().unwrap().iter().find(|r| r["name"] == "news").unwrap()["unread"].clone()
    };
    assert_eq!(unread_in(&laptop.ok(json!({"type": "rooms"})).await), 2);
    // Read on the phone: the laptop hears it, and nothing is unread any more.
    phone.ok(json!({"type": "mark_read", "room": "news", "seq": last})).await;
    let read = laptop.event_of("read").await;
    assert_eq!((read["room"].as_str(), read["seq"].as_i64()), (Some("news"), Some(last)));
    assert_eq!(unread_in(&laptop.ok(json!({"type": "rooms"})).await), 0);
    // A marker never goes back, and never past the last message.
    phone.ok(json!({"type": "mark_read", "room": "news", "seq": 1})).await;
    phone.ok(json!({"type": "mark_read", "room": "news", "seq": 10_000})).await;
    let read = laptop.event_of("read").await;
    assert_eq!(read["seq"], last + 1, "clamped to the last message (the phone's own)");
    owner.ok(json!({"type": "send", "room": "news", "body": "one more"})).await;
    assert_eq!(unread_in(&phone.ok(json!({"type": "rooms"})).await), 1);
    // Only members have markers.
    let mut outsider = server.member("outsider").await;
    outsider.refused(json!({"type": "mark_read", "room": "news", "seq": 1}), "forbidden").await;
    let listed = outsider.ok(json!({"type": "rooms"})).await;
    assert!(listed["rooms"][0].get("unread").is_none(), "{listed}");
}

#[tokio::test]
async fn the_member_list_shows_everyone_online_first_with_role_and_mute() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut owner = server.member("owner").await;
    owner.ok(json!({"type": "create_room", "name": "circle"})).await;
    // Bea stays online; Cleo and Ann join, then close their sockets (still members).
    let mut online = Vec::new();
    for name in ["cleo", "ann", "bea"] {
        let mut member = server.member(name).await;
        member.ok(json!({"type": "join", "room": "circle"})).await;
        if name == "bea" {
            online.push(member);
        }
    }
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "cleo", "role": "moderator"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ann", "duration_s": 600})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let members = loop {
        let reply = owner.ok(json!({"type": "members", "room": "circle"})).await;
        let online: Vec<bool> =
            reply["members"].as_array().unwrap().iter().map(|m| m["online"].as_bool().unwrap()).collect();
        if online == [true, true, false, false] {
            break reply["members"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["bea", "owner", "ann", "cleo"], "online first, then by name");
    assert_eq!(members[1]["room_role"], "owner");
    assert_eq!(members[3]["room_role"], "moderator");
    assert_eq!((members[2]["muted"].clone(), members[2]["muted_until"].is_string()), (json!(true), true));
    assert!(members[0].get("muted").is_none());
    // A page at a time.
    let first = owner.ok(json!({"type": "members", "room": "circle", "limit": 3})).await;
    assert_eq!((first["members"].as_array().unwrap().len(), first["more"].clone()), (3, json!(true)));
    let rest = owner.ok(json!({"type": "members", "room": "circle", "after": "ann"})).await;
    assert_eq!(rest["members"][0]["username"], "cleo");
    server.member("stranger").await.refused(json!({"type": "members", "room": "circle"}), "forbidden").await;
}
