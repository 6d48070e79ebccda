//! Member rights and privacy (PROTOCOL §9): blocking, over real sockets.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The stub a blocker gets in place of message `seq` of `room`.
fn stub(seq: &Value, room: &str) -> Value {
    json!({"seq": seq, "room": room, "hidden": true, "blocked": true})
}

#[tokio::test]
async fn a_blocker_never_receives_a_blocked_authors_words_by_any_path_and_others_do() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    let mut troll = server.member_of("troll", "circle").await;
    let early =
        troll.ok(json!({"type": "send", "room": "circle", "body": "early words"})).await["message"]["seq"].clone();
    ben.ok(json!({"type": "block", "user": "Troll"})).await;
    let blocks = ben.ok(json!({"type": "blocks"})).await;
    assert_eq!(blocks["users"][0]["username"], "troll", "{blocks}");
    // Live.
    let later =
        troll.ok(json!({"type": "send", "room": "circle", "body": "later words @ben"})).await["message"]["seq"].clone();
    assert_eq!(mia.event_of("message").await["message"]["body"], "early words");
    assert_eq!(mia.event_of("message").await["message"]["body"], "later words @ben");
    assert_eq!(ben.event_of("message").await["message"]["body"], "early words", "sent before the block");
    assert_eq!(ben.event().await["message"], stub(&later, "circle"));
    // Named in it, but no `mention` follows: the next thing Ben hears is the host.
    owner.ok(json!({"type": "send", "room": "circle", "body": "marker"})).await;
    assert_eq!(ben.event().await["message"]["body"], "marker");
    // History, join (again) and reveal: stubs in place, the seqs kept.
    for request in [json!({"type": "history", "room": "circle"}), json!({"type": "join", "room": "circle"})] {
        let reply = ben.ok(request).await;
        assert_eq!(reply["messages"][0], stub(&early, "circle"), "{reply}");
        assert_eq!(reply["messages"][1], stub(&later, "circle"), "{reply}");
        assert_eq!(reply["messages"][2]["body"], "marker", "{reply}");
    }
    let revealed = ben.ok(json!({"type": "reveal", "room": "circle", "seq": later})).await;
    assert_eq!(revealed["message"], stub(&later, "circle"));
    // Search finds nothing of theirs for the blocker, and finds it for others.
    let found = ben.ok(json!({"type": "search", "query": "words"})).await;
    assert_eq!(found["messages"], json!([]), "{found}");
    let found = mia.ok(json!({"type": "search", "query": "words"})).await;
    assert_eq!(found["messages"].as_array().unwrap().len(), 2, "{found}");
    // An edit, typing and a mention do not reach the blocker either.
    troll.ok(json!({"type": "edit", "room": "circle", "seq": later, "body": "edited words"})).await;
    assert_eq!(mia.event_of("message_updated").await["message"]["body"], "edited words");
    assert_eq!(ben.event_of("message_updated").await["message"], stub(&later, "circle"));
    troll.ok(json!({"type": "typing", "room": "circle"})).await;
    assert_eq!(mia.event_of("typing").await["user"]["username"], "troll");
    owner.ok(json!({"type": "send", "room": "circle", "body": "from the host"})).await;
    let next = ben.event().await;
    assert_eq!(
        (&next["type"], &next["message"]["body"]),
        (&json!("message"), &json!("from the host")),
        "no typing: {next}"
    );
    // The blocked member is told nothing: after their own messages, the host's, and quiet.
    while troll.event_of("message").await["message"]["body"] != "from the host" {}
    troll.assert_quiet(Duration::from_millis(200)).await;
    // Unblocked: their words come again.
    ben.ok(json!({"type": "unblock", "user": "troll"})).await;
    assert_eq!(ben.ok(json!({"type": "blocks"})).await["users"], json!([]));
    troll.ok(json!({"type": "send", "room": "circle", "body": "once more"})).await;
    assert_eq!(ben.event_of("message").await["message"]["body"], "once more");
    let history = ben.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"][1]["body"], "edited words");
}

#[tokio::test]
async fn blocking_never_hides_a_moderators_actions_and_is_refused_for_oneself_or_nobody() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    ben.ok(json!({"type": "block", "user": "host"})).await;
    ben.ok(json!({"type": "block", "user": "host"})).await; // twice is once
    assert_eq!(ben.ok(json!({"type": "blocks"})).await["users"].as_array().unwrap().len(), 1);
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 60, "reason": "a pause"})).await;
    let muted = ben.event_of("muted").await;
    assert_eq!((&muted["user"]["username"], &muted["reason"]), (&json!("ben"), &json!("a pause")));
    ben.refused(json!({"type": "block", "user": "ben"}), "invalid").await;
    ben.refused(json!({"type": "block", "user": "nobody-here"}), "not_found").await;
    ben.refused(json!({"type": "block"}), "bad_request").await;
}

#[tokio::test]
async fn a_block_outlives_a_restart_of_the_server() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let _owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    let _troll = server.member_of("troll", "circle").await;
    ben.ok(json!({"type": "block", "user": "troll"})).await;
    let server = server.restart().await;
    let token = server.login("troll").await;
    let mut troll = server.client(&token).await;
    let token = server.login("ben").await;
    let mut ben = server.client(&token).await;
    let seq = troll.ok(json!({"type": "send", "room": "circle", "body": "after the restart"})).await["message"]["seq"]
        .clone();
    assert_eq!(ben.event_of("message").await["message"], stub(&seq, "circle"));
}

#[tokio::test]
async fn an_export_holds_exactly_the_members_data_and_no_moderators_name() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    owner.ok(json!({"type": "create_room", "name": "garden"})).await;
    let mut ben = server.member_of("ben", "circle").await;
    ben.ok(json!({"type": "join", "room": "garden"})).await;
    let mut mia = server.member_of("mia", "circle").await;
    // More than one page of messages (a page is 500), in two rooms, among others' words.
    let mut mine = Vec::new();
    for n in 0..620 {
        let room = if n % 3 == 0 { "garden" } else { "circle" };
        let sent = ben.ok(json!({"type": "send", "room": room, "body": format!("ben {n}")})).await;
        mine.push((room.to_string(), sent["message"]["seq"].as_i64().unwrap()));
        if n % 100 == 0 {
            mia.ok(json!({"type": "send", "room": "circle", "body": format!("mia {n}")})).await;
        }
    }
    let warned = ben.ok(json!({"type": "send", "room": "circle", "body": "a warned one", "cw": ["grief"]})).await;
    mine.push(("circle".into(), warned["message"]["seq"].as_i64().unwrap()));
    let mia_message =
        mia.ok(json!({"type": "send", "room": "circle", "body": "report me"})).await["message"]["seq"].clone();
    ben.ok(json!({"type": "report", "room": "circle", "seq": mia_message, "reason": "unkind"})).await;
    owner.ok(json!({"type": "warn", "room": "circle", "user": "ben", "reason": "please keep it kind"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 60, "reason": "a pause"})).await;
    ben.ok(json!({"type": "block", "user": "mia"})).await;
    ben.ok(json!({"type": "set_preferences", "cw": {"grief": "hide"}})).await;
    ben.ok(json!({"type": "set_profile", "region": "IE"})).await;
    let token = server.login("ben").await;
    let (status, body) =
        http(server.addr, "GET", "/api/v1/me/export", &[("Authorization", &format!("Bearer {token}"))], None).await;
    assert_eq!(status, 200, "{body}");
    let export: Value = serde_json::from_str(&body).expect("one JSON document");
    assert_eq!((&export["user"]["username"], &export["user"]["region"]), (&json!("ben"), &json!("IE")));
    let mut rooms: Vec<&str> = export["rooms"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    rooms.sort_unstable();
    assert_eq!(rooms, ["circle", "garden"]);
    let messages = export["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["author"]["username"] == "ben"), "only Ben's own words");
    let mut got: Vec<(String, i64)> =
        messages.iter().map(|m| (m["room"].as_str().unwrap().to_string(), m["seq"].as_i64().unwrap())).collect();
    got.sort();
    mine.sort();
    assert_eq!(got, mine, "every message of his, once, and nobody else's");
    assert!(
        messages.iter().any(|m| m["body"] == "a warned one" && m["cw"] == json!(["grief"])),
        "whole, with its warning"
    );
    assert_eq!(export["reports"][0]["reason"], "unkind");
    let actions: Vec<&str> =
        export["sanctions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["mute", "warn"], "newest first");
    assert_eq!(export["sanctions"][0]["reason"], "a pause");
    assert_eq!((&export["sanctions"][0]["active"], &export["sanctions"][1]["active"]), (&json!(true), &json!(false)));
    assert!(!export["sanctions"].to_string().contains("host"), "no moderator named: {}", export["sanctions"]);
    assert_eq!(export["preferences"]["cw"]["grief"], "hide");
    assert_eq!(export["blocks"][0]["username"], "mia");
    // Only with one's own token.
    let (status, _) = http(server.addr, "GET", "/api/v1/me/export", &[], None).await;
    assert_eq!(status, 401);
}

/// Every text value in every table of the SQLite database at `db` (a URL), as
/// (table, value).
async fn every_text(db: &str) -> Vec<(String, String)> {
    use sqlx::{Column, Row};
    let url = format!("{db}?mode=ro");
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open the database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.unwrap();
    let mut texts = Vec::new();
    for table in tables {
        for row in sqlx::query(&format!("SELECT * FROM \"{table}\"")).fetch_all(&pool).await.unwrap() {
            for column in row.columns() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(column.ordinal()) {
                    texts.push((table.clone(), text));
                }
            }
        }
    }
    pool.close().await;
    texts
}

#[tokio::test]
async fn erasure_keeps_every_seq_and_leaves_no_trace_of_the_name_or_the_words() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let mut owner = server.room_owner("host", "circle").await;
    owner.ok(json!({"type": "create_room", "name": "garden"})).await;
    let mut zeph = server.member_of("zephyrine", "circle").await;
    zeph.ok(json!({"type": "join", "room": "garden"})).await;
    let mut mia = server.member_of("mia", "circle").await;
    zeph.ok(json!({"type": "send", "room": "circle", "body": "my secret words"})).await;
    mia.ok(json!({"type": "send", "room": "circle", "body": "hello @zephyrine"})).await;
    zeph.ok(json!({"type": "send", "room": "garden", "body": "quiet garden thoughts"})).await;
    zeph.ok(json!({"type": "react", "room": "circle", "seq": 2, "emoji": "💙"})).await;
    zeph.ok(json!({"type": "report", "room": "circle", "seq": 2, "reason": "not sure"})).await;
    zeph.ok(json!({"type": "block", "user": "host"})).await;
    mia.ok(json!({"type": "block", "user": "zephyrine"})).await;
    owner.ok(json!({"type": "warn", "room": "circle", "user": "zephyrine", "reason": "gently"})).await;
    zeph.ok(json!({"type": "set_profile", "region": "NZ"})).await;
    let before = owner.ok(json!({"type": "history", "room": "circle"})).await;
    let token = server.login("zephyrine").await;
    let auth = format!("Bearer {token}");
    // A wrong password changes nothing.
    let wrong =
        http(server.addr, "DELETE", "/api/v1/me", &[("Authorization", &auth)], Some(r#"{"password": "nope nope"}"#))
            .await;
    assert_http_error(&wrong, 401, "unauthenticated");
    zeph.ok(json!({"type": "typing", "room": "circle"})).await;
    let body = json!({"password": "password-zephyrine"}).to_string();
    let (status, reply) = http(server.addr, "DELETE", "/api/v1/me", &[("Authorization", &auth)], Some(&body)).await;
    assert_eq!(status, 204, "{reply}");
    assert_eq!(zeph.closed().await, 4001);
    let left = owner.event_of("member_left").await;
    assert_eq!((&left["user"]["username"], &left["reason"]), (&json!("zephyrine"), &json!("left")));
    // Every seq is where it was; their messages are deleted, under the new name.
    let after = owner.ok(json!({"type": "history", "room": "circle"})).await;
    let seqs = |page: &Value| page["messages"].as_array().unwrap().iter().map(|m| m["seq"].clone()).collect::<Vec<_>>();
    assert_eq!(seqs(&after), seqs(&before));
    let gone = &after["messages"][0];
    assert_eq!((gone["deleted"].as_bool(), gone.get("body")), (Some(true), None), "{gone}");
    let new_name = gone["author"]["username"].as_str().unwrap().to_string();
    assert!(new_name.starts_with("deleted-"), "{new_name}");
    assert_eq!(after["messages"][1]["body"], "hello @zephyrine", "others' words are theirs");
    assert_eq!(after["messages"][1]["mentions"], json!([new_name.clone()]));
    let log = owner.ok(json!({"type": "mod_log", "room": "circle"})).await;
    assert_eq!(log["entries"][0]["target"], json!(new_name));
    let found = mia.ok(json!({"type": "search", "query": "secret"})).await;
    assert_eq!(found["messages"], json!([]), "their words are not found any more");
    // The token and the password are refused; the name is free again.
    let (status, _) = http(server.addr, "GET", "/api/v1/me", &[("Authorization", &auth)], None).await;
    assert_eq!(status, 401);
    let login = json!({"username": "zephyrine", "password": "password-zephyrine"});
    assert_eq!(server.post("/api/v1/login", &login).await.0, 401);
    let reserved = server.post("/api/v1/register", &json!({"username": new_name, "password": "a fine password"})).await;
    assert_http_error(&reserved, 400, "invalid");
    // Nothing in the database holds the old name or the words, except where another
    // member wrote the name in their own words.
    for (table, text) in every_text(&server.config.database).await {
        assert!(!text.contains("secret words") && !text.contains("garden thoughts"), "{table}: {text}");
        // Mia's message (and the report's snapshot of it) is hers to keep.
        if text != "hello @zephyrine" && !table.starts_with("message_search") {
            assert!(!text.contains("zephyrine"), "{table} still holds the name: {text}");
        }
    }
    // Someone new may take the name, and is nobody's blocked member.
    let mut newcomer = server.member_of("zephyrine", "circle").await;
    let seq =
        newcomer.ok(json!({"type": "send", "room": "circle", "body": "hi, I am new"})).await["message"]["seq"].clone();
    let heard = loop {
        let event = mia.event_of("message").await;
        if event["message"]["seq"] == seq {
            break event;
        }
    };
    assert_eq!(heard["message"]["body"], "hi, I am new", "{heard}");
}

#[tokio::test]
async fn my_record_lists_what_moderators_did_with_reasons_and_times_and_never_who() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("hostname-x", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    assert_eq!(ben.ok(json!({"type": "my_record"})).await["sanctions"], json!([]), "nothing yet");
    owner.ok(json!({"type": "warn", "room": "circle", "user": "ben", "reason": "please keep it kind"})).await;
    let own = ben.ok(json!({"type": "send", "room": "circle", "body": "mine"})).await["message"]["seq"].clone();
    ben.ok(json!({"type": "delete_message", "room": "circle", "seq": own})).await; // his own: not a sanction
    let other = ben.ok(json!({"type": "send", "room": "circle", "body": "too much"})).await["message"]["seq"].clone();
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": other, "reason": "personal details"})).await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 600, "reason": "a pause"})).await;
    let record = ben.ok(json!({"type": "my_record"})).await;
    let sanctions = record["sanctions"].as_array().unwrap();
    let actions: Vec<&str> = sanctions.iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["mute", "delete", "warn"], "newest first: {record}");
    let mute = &sanctions[0];
    assert_eq!(
        (&mute["room"], &mute["reason"], &mute["active"], &mute["by_role"]),
        (&json!("circle"), &json!("a pause"), &json!(true), &json!("moderator"))
    );
    assert!(mute["until"].as_str().is_some_and(|until| until.ends_with('Z')), "{mute}");
    assert_eq!(
        (&sanctions[1]["seq"], &sanctions[1]["reason"], &sanctions[1]["active"]),
        (&other, &json!("personal details"), &json!(false))
    );
    assert!(!record.to_string().contains("hostname-x"), "the moderator is never named: {record}");
    // Lifted: still on the record, no longer in force.
    owner.ok(json!({"type": "unmute", "room": "circle", "user": "ben"})).await;
    let record = ben.ok(json!({"type": "my_record"})).await;
    assert_eq!((&record["sanctions"][0]["action"], &record["sanctions"][0]["active"]), (&json!("mute"), &json!(false)));
    // Someone else's record is not one's own.
    let mut mia = server.member_of("mia", "circle").await;
    assert_eq!(mia.ok(json!({"type": "my_record"})).await["sanctions"], json!([]));
}

/// The id of the newest sanction of `action` in the member's own record.
async fn sanction_id(member: &mut Client, action: &str) -> i64 {
    let record = member.ok(json!({"type": "my_record"})).await;
    let found = record["sanctions"].as_array().unwrap().iter().find(|s| s["action"] == action);
    found.unwrap_or_else(|| panic!("no {action} in {record}"))["id"].as_i64().unwrap()
}

#[tokio::test]
async fn an_appeal_goes_to_the_other_moderators_not_the_one_who_acted_and_lifted_unmutes() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("olive", "circle").await;
    let mut rae = server.member_of("rae", "circle").await;
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "rae", "role": "moderator"})).await;
    let mut ben = server.member_of("ben", "circle").await;
    rae.ok(json!({"type": "mute", "room": "circle", "user": "ben", "duration_s": 3600, "reason": "a pause"})).await;
    rae.event_of("muted").await;
    owner.event_of("muted").await;
    let id = sanction_id(&mut ben, "mute").await;

    let appeal = ben.ok(json!({"type": "appeal", "sanction_id": id, "text": "I was quoting, not shouting."})).await;
    let appeal = &appeal["appeal"];
    assert_eq!(
        (&appeal["sanction_id"], &appeal["room"], &appeal["user"], &appeal["text"]),
        (&json!(id), &json!("circle"), &json!("ben"), &json!("I was quoting, not shouting.")),
        "{appeal}"
    );
    assert!(appeal.get("outcome").is_none(), "open: {appeal}");
    let heard = owner.event_of("appeal").await;
    assert_eq!(heard["appeal"], *appeal, "the other moderator hears it");
    rae.assert_quiet(Duration::from_millis(300)).await;
    ben.refused(json!({"type": "appeal", "sanction_id": id, "text": "again"}), "conflict").await;
    ben.refused(json!({"type": "appeal", "sanction_id": id + 1000, "text": "not mine"}), "not_found").await;
    ben.refused(json!({"type": "appeal", "sanction_id": id, "text": "  "}), "invalid").await;
    let listed = owner.ok(json!({"type": "appeals", "room": "circle"})).await;
    assert_eq!(listed["appeals"], json!([appeal]), "{listed}");
    ben.refused(json!({"type": "appeals", "room": "circle"}), "forbidden").await;
    let appeal_id = appeal["id"].clone();
    // The one who acted does not judge their own action while someone else can.
    rae.refused(
        json!({"type": "resolve_appeal", "appeal_id": appeal_id, "outcome": "lifted", "note": "ok"}),
        "forbidden",
    )
    .await;

    owner
        .ok(json!({"type": "resolve_appeal", "appeal_id": appeal_id, "outcome": "lifted", "note": "Fair: lifted."}))
        .await;
    let resolved = ben.event_of("appeal_resolved").await;
    assert_eq!(
        (&resolved["appeal"]["outcome"], &resolved["appeal"]["note"]),
        (&json!("lifted"), &json!("Fair: lifted.")),
        "{resolved}"
    );
    assert!(resolved["appeal"]["resolved_at"].as_str().is_some(), "{resolved}");
    ben.event_of("unmuted").await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "thank you"})).await;
    let record = ben.ok(json!({"type": "my_record"})).await;
    let mute = &record["sanctions"][0];
    assert_eq!((&mute["active"], &mute["appeal"]["outcome"]), (&json!(false), &json!("lifted")), "{record}");
    assert!(!record.to_string().contains("olive") && !record.to_string().contains("rae"), "{record}");
    assert_eq!(owner.ok(json!({"type": "appeals", "room": "circle"})).await["appeals"], json!([]));
    owner.refused(json!({"type": "resolve_appeal", "appeal_id": appeal_id, "outcome": "upheld"}), "not_found").await;
    let log = owner.ok(json!({"type": "mod_log", "room": "circle", "limit": 4})).await;
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["resolve_appeal", "unmute", "appeal", "mute"], "{log}");
}

#[tokio::test]
async fn an_upheld_appeal_keeps_the_sanction_and_a_new_appeal_may_follow() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("olive", "circle").await;
    let mut gia = server.client(&server.user_with_role("gia", alongside::protocol::Role::Moderator).await).await;
    let mut ben = server.member_of("ben", "circle").await;
    owner.ok(json!({"type": "mute", "room": "circle", "user": "ben", "reason": "a pause"})).await;
    let id = sanction_id(&mut ben, "mute").await;
    let appeal = ben.ok(json!({"type": "appeal", "sanction_id": id, "text": "please"})).await["appeal"].clone();
    // A global moderator hears a room's appeal too; the owner who acted does not.
    assert_eq!(gia.event_of("appeal").await["appeal"]["id"], appeal["id"]);
    gia.ok(json!({"type": "resolve_appeal", "appeal_id": appeal["id"], "outcome": "upheld", "note": "It stands."}))
        .await;
    assert_eq!(ben.event_of("appeal_resolved").await["appeal"]["outcome"], "upheld");
    ben.refused(json!({"type": "send", "room": "circle", "body": "still muted?"}), "muted").await;
    let record = ben.ok(json!({"type": "my_record"})).await;
    assert_eq!(
        (&record["sanctions"][0]["active"], &record["sanctions"][0]["appeal"]["note"]),
        (&json!(true), &json!("It stands."))
    );
    ben.ok(json!({"type": "appeal", "sanction_id": id, "text": "one more time, with more to say"})).await;
    let mut owner_events = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(300), owner.event()).await {
        owner_events.push(event);
    }
    assert!(owner_events.iter().all(|e| e["type"] != "appeal"), "the acting owner is left out: {owner_events:?}");
}

#[tokio::test]
async fn a_room_moderator_cannot_lift_a_global_moderators_ban_by_appeal() {
    let server = TestServer::start_with(|c| c.members_may_create_rooms = true).await;
    let mut oscar = server.member("oscar").await;
    oscar.ok(json!({"type": "create_room", "name": "circle"})).await;
    let mut gia = server.client(&server.user_with_role("gia", alongside::protocol::Role::Moderator).await).await;
    let mut ada = server.client(&server.user_with_role("ada", alongside::protocol::Role::Admin).await).await;
    let mut ben = server.member_of("ben", "circle").await;
    gia.ok(json!({"type": "ban", "room": "circle", "user": "ben", "reason": "spam"})).await;
    let id = sanction_id(&mut ben, "ban").await;
    let appeal =
        ben.ok(json!({"type": "appeal", "sanction_id": id, "text": "it was not spam"})).await["appeal"].clone();
    assert_eq!(oscar.event_of("appeal").await["appeal"]["id"], appeal["id"], "the room's owner hears it");
    let refused = oscar
        .refused(json!({"type": "resolve_appeal", "appeal_id": appeal["id"], "outcome": "lifted"}), "forbidden")
        .await;
    assert!(refused.to_string().contains("authority"), "{refused}");
    ben.refused(json!({"type": "join", "room": "circle"}), "banned").await;
    assert_eq!(
        ada.ok(json!({"type": "appeals", "room": "circle"})).await["appeals"][0]["id"],
        appeal["id"],
        "still open"
    );
    ada.ok(json!({"type": "resolve_appeal", "appeal_id": appeal["id"], "outcome": "lifted"})).await;
    assert_eq!(ben.event_of("appeal_resolved").await["appeal"]["outcome"], "lifted");
    ben.ok(json!({"type": "join", "room": "circle"})).await;
}

#[tokio::test]
async fn a_server_ban_is_appealed_to_the_other_global_moderators() {
    let server = TestServer::start().await;
    let mut gia = server.client(&server.user_with_role("gia", alongside::protocol::Role::Moderator).await).await;
    let mut max = server.client(&server.user_with_role("max", alongside::protocol::Role::Moderator).await).await;
    let mut owner = server.room_owner("olive", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    // A short server ban: once it has run out, ben can sign in and contest it.
    gia.ok(json!({"type": "ban", "scope": "server", "user": "ben", "duration_s": 0.3, "reason": "flooding"})).await;
    assert_eq!(ben.closed().await, 4003);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut ben = server.client(&server.login("ben").await).await;
    let record = ben.ok(json!({"type": "my_record"})).await;
    let ban = &record["sanctions"][0];
    assert_eq!((&ban["action"], ban.get("room"), &ban["active"]), (&json!("ban"), None, &json!(false)), "{record}");
    let appeal = ben.ok(json!({"type": "appeal", "sanction_id": ban["id"], "text": "it was a broken client"})).await;
    assert!(appeal["appeal"].get("room").is_none(), "{appeal}");
    assert_eq!(max.event_of("appeal").await["appeal"]["id"], appeal["appeal"]["id"], "another global moderator");
    let listed = max.ok(json!({"type": "appeals", "scope": "server"})).await;
    assert_eq!(listed["appeals"], json!([appeal["appeal"]]), "{listed}");
    assert!(owner.ok(json!({"type": "appeals", "room": "circle"})).await["appeals"].as_array().unwrap().is_empty());
    ben.refused(json!({"type": "appeals", "scope": "server"}), "forbidden").await;
    gia.refused(
        json!({"type": "resolve_appeal", "appeal_id": appeal["appeal"]["id"], "outcome": "lifted"}),
        "forbidden",
    )
    .await;
    max.ok(
        json!({"type": "resolve_appeal", "appeal_id": appeal["appeal"]["id"], "outcome": "lifted", "note": "sorry"}),
    )
    .await;
    assert_eq!(ben.event_of("appeal_resolved").await["appeal"]["note"], "sorry");
    let log = max.ok(json!({"type": "mod_log", "scope": "server", "limit": 3})).await;
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["resolve_appeal", "appeal", "ban"], "nothing in force, nothing lifted: {log}");
}
