//! Care and safety (PROTOCOL §8): crisis support and warnings, over real sockets.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The regions of a resource list, in order.
fn regions(resources: &Value) -> Vec<String> {
    resources.as_array().unwrap().iter().map(|r| r["region"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_message_from_someone_in_crisis_goes_out_unchanged_and_only_its_author_gets_support() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    let words = "honestly I don't want to be here anymore";
    let sent = ben.ok(json!({"type": "send", "room": "circle", "body": words})).await;
    let seq = sent["message"]["seq"].as_i64().unwrap();
    for client in [&mut owner, &mut mia] {
        let message = client.event_of("message").await;
        assert_eq!(message["message"]["body"], words, "delivered exactly as written");
    }
    assert_eq!(ben.event_of("message").await["message"]["body"], words);
    let care = ben.event_of("care_resources").await;
    assert_eq!((care["room"].as_str(), care["seq"].as_i64()), (Some("circle"), Some(seq)));
    let offered = regions(&care["resources"]);
    assert!(
        !offered.is_empty() && offered.iter().all(|r| r == "INT"),
        "no region set: the international ones {offered:?}"
    );
    // Nobody else hears of it.
    mia.assert_quiet(Duration::from_millis(300)).await;
    // With a region, that region's lines come first.
    let profile = ben.ok(json!({"type": "set_profile", "region": "gb"})).await;
    assert_eq!(profile["user"]["region"], "GB");
    ben.ok(json!({"type": "send", "room": "circle", "body": "I feel suicidal tonight"})).await;
    let care = ben.event_of("care_resources").await;
    let offered = regions(&care["resources"]);
    assert_eq!(offered.first().map(String::as_str), Some("GB"), "{offered:?}");
    assert_eq!(offered.last().map(String::as_str), Some("INT"));
    // Nothing changed for the member: not muted, not hidden, the history is whole.
    ben.ok(json!({"type": "send", "room": "circle", "body": "thank you for listening"})).await;
    let history = mia.ok(json!({"type": "history", "room": "circle"})).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, [words, "I feel suicidal tonight", "thank you for listening"]);
}

#[tokio::test]
async fn ordinary_messages_with_near_words_raise_nothing() {
    let server = TestServer::start().await;
    let mut ben = server.room_owner("ben", "circle").await;
    for words in
        ["this diet is killing me", "I could die laughing", "Suicide Squad is on tonight", "I can't go on holiday"]
    {
        ben.ok(json!({"type": "send", "room": "circle", "body": words})).await;
        assert_eq!(ben.event_of("message").await["message"]["body"], words);
    }
    ben.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn resources_for_a_region_with_or_without_an_account() {
    let server = TestServer::start().await;
    let mut ben = server.member("ben").await;
    let ireland = ben.ok(json!({"type": "resources", "region": "ie"})).await;
    let offered = regions(&ireland["resources"]);
    assert_eq!(offered.first().map(String::as_str), Some("IE"), "{offered:?}");
    assert!(ireland["resources"][0]["phone"].is_string());
    let everything = ben.ok(json!({"type": "resources"})).await;
    let all = regions(&everything["resources"]);
    for region in ["GB", "IE", "US", "CA", "AU", "NZ", "IN", "DE", "FR", "ZA", "INT"] {
        assert!(all.iter().any(|r| r == region), "{region} is in the list");
    }
    ben.refused(json!({"type": "resources", "region": "England"}), "invalid").await;
    ben.refused(json!({"type": "set_profile", "region": "Narnia"}), "invalid").await;
    // Without an account (a person in distress may have none).
    let (status, body) = http(server.addr, "GET", "/api/v1/resources?region=NZ", &[], None).await;
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(regions(&reply["resources"]).first().map(String::as_str), Some("NZ"));
    assert_http_error(&http(server.addr, "GET", "/api/v1/resources?region=zzz", &[], None).await, 400, "invalid");
}

#[tokio::test]
async fn a_members_region_is_theirs_alone() {
    let server = TestServer::start().await;
    let token = server.user("ben").await;
    let mut ben = server.client(&token).await;
    ben.ok(json!({"type": "set_profile", "region": "IN"})).await;
    let mut fresh = Client::connect(&server.ws_url(), None).await;
    let again = fresh.ok(json!({"type": "auth", "token": token})).await;
    assert_eq!(again["user"]["region"], "IN", "auth tells the member their own region");
    let (_, me) = http(server.addr, "GET", "/api/v1/me", &[("Authorization", &format!("Bearer {token}"))], None).await;
    assert_eq!(serde_json::from_str::<Value>(&me).unwrap()["user"]["region"], "IN");
    // Others never see it.
    let mut owner = server.room_owner("host", "circle").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "hello"})).await;
    let heard = owner.event_of("message").await;
    assert!(heard["message"]["author"].get("region").is_none(), "{heard}");
    let members = owner.ok(json!({"type": "members", "room": "circle"})).await;
    assert!(!members.to_string().contains("\"region\""), "{members}");
    ben.ok(json!({"type": "set_profile", "region": null})).await;
    let mut fresh = Client::connect(&server.ws_url(), None).await;
    let cleared = fresh.ok(json!({"type": "auth", "token": token})).await;
    assert!(cleared["user"].get("region").is_none());
}

#[tokio::test]
async fn a_warning_is_a_private_word_in_the_log_and_changes_nothing_else() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    owner.ok(json!({"type": "warn", "room": "circle", "user": "ben", "reason": "Please keep it kind"})).await;
    let warned = ben.event_of("warned").await;
    assert_eq!(warned, json!({"type": "warned", "room": "circle", "by": "host", "reason": "Please keep it kind"}));
    mia.event_of("member_joined").await;
    mia.assert_quiet(Duration::from_millis(300)).await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "sorry, I will"})).await;
    let log = owner.ok(json!({"type": "mod_log", "room": "circle"})).await;
    let entry = &log["entries"][0];
    assert_eq!((entry["action"].as_str(), entry["target"].as_str()), (Some("warn"), Some("ben")), "{log}");
    assert_eq!(entry["reason"], "Please keep it kind");
    // Members may not warn; a warning says something; only members are warned.
    mia.refused(json!({"type": "warn", "room": "circle", "user": "ben", "reason": "hey"}), "forbidden").await;
    owner.refused(json!({"type": "warn", "room": "circle", "user": "ben"}), "bad_request").await;
    owner.refused(json!({"type": "warn", "room": "circle", "user": "ben", "reason": "   "}), "invalid").await;
    server.register("zed").await;
    owner.refused(json!({"type": "warn", "room": "circle", "user": "zed", "reason": "hi"}), "not_found").await;
}

#[tokio::test]
async fn a_care_alert_reaches_the_rooms_moderators_and_falls_back_to_the_global_ones() {
    let server = TestServer::start().await;
    // The room's creator hands it to "host", a member made room moderator, and goes.
    let mut creator = server.room_owner("creator", "circle").await;
    let mut owner = server.member_of("host", "circle").await;
    creator.ok(json!({"type": "set_room_role", "room": "circle", "user": "host", "role": "moderator"})).await;
    drop(creator);
    let mut global =
        server.client(&server.user_with_role("globalmod", alongside::protocol::Role::Moderator).await).await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "I want to die"})).await;
    let alert = owner.event_of("care_alert").await["alert"].clone();
    assert_eq!((alert["kind"].as_str(), alert["seq"].as_i64()), (Some("phrase"), Some(1)), "{alert}");
    assert_eq!(alert["author"]["username"], "ben");
    assert!(alert.get("acked_by").is_none());
    // A room moderator is here: the global ones are not disturbed; members never hear.
    global.assert_quiet(Duration::from_millis(300)).await;
    mia.event_of("message").await;
    mia.assert_quiet(Duration::from_millis(200)).await;
    // Nobody of the room online: the global moderators get it.
    drop(owner);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "i feel suicidal"})).await;
    let alert = global.event_of("care_alert").await["alert"].clone();
    assert_eq!(alert["seq"], 2, "{alert}");
}

#[tokio::test]
async fn a_referral_is_queued_acknowledged_once_and_logged() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut second = server.member_of("second", "circle").await;
    owner.ok(json!({"type": "set_room_role", "room": "circle", "user": "second", "role": "moderator"})).await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    ben.ok(json!({"type": "send", "room": "circle", "body": "everything is too much lately"})).await;
    mia.ok(json!({"type": "refer", "room": "circle", "seq": 1, "note": "Ben seems low, could someone check in?"}))
        .await;
    for moderator in [&mut owner, &mut second] {
        let alert = moderator.event_of("care_alert").await["alert"].clone();
        assert_eq!((alert["kind"].as_str(), alert["by"].as_str()), (Some("referral"), Some("mia")), "{alert}");
        assert_eq!(alert["note"], "Ben seems low, could someone check in?");
    }
    mia.refused(json!({"type": "refer", "room": "circle", "seq": 99}), "not_found").await;
    mia.refused(json!({"type": "care_alerts", "room": "circle"}), "forbidden").await;
    let queue = owner.ok(json!({"type": "care_alerts", "room": "circle"})).await;
    let alerts = queue["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    let id = alerts[0]["id"].as_i64().unwrap();
    owner.ok(json!({"type": "ack_care_alert", "room": "circle", "alert_id": id, "note": "I messaged Ben"})).await;
    let acked = second.event_of("care_alert").await["alert"].clone();
    assert_eq!((acked["id"].as_i64(), acked["acked_by"].as_str()), (Some(id), Some("host")), "{acked}");
    owner.refused(json!({"type": "ack_care_alert", "room": "circle", "alert_id": id}), "not_found").await;
    let queue = second.ok(json!({"type": "care_alerts", "room": "circle"})).await;
    assert_eq!(queue["alerts"], json!([]), "acknowledged alerts leave the queue");
    let log = owner.ok(json!({"type": "mod_log", "room": "circle"})).await;
    let entry = &log["entries"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["seq"].as_i64(), entry["target"].as_str()),
        (Some("care_ack"), Some(1), Some("ben"))
    );
    assert_eq!(entry["reason"], "I messaged Ben");
}

#[tokio::test]
async fn a_hosted_room_takes_members_messages_only_while_a_host_is_on_duty() {
    let server = TestServer::start_with(|c| c.host_grace_s = 0.4).await;
    let mut host = server.room_owner("host", "support").await;
    let mut ben = server.member_of("ben", "support").await;
    ben.refused(json!({"type": "host_rule", "room": "support", "required": true}), "forbidden").await;
    host.ok(json!({"type": "host_rule", "room": "support", "required": true})).await;
    let updated = ben.event_of("room_updated").await;
    assert_eq!(updated["room"]["requires_host"], true);
    assert!(updated["room"].get("hosts_on_duty").is_none(), "nobody on duty yet");
    // No host on duty: members wait; moderators may still post.
    let waiting = ben.refused(json!({"type": "send", "room": "support", "body": "hello?"}), "not_open").await;
    assert!(waiting["message"].as_str().unwrap().contains("waiting for a host"), "{waiting}");
    host.ok(json!({"type": "send", "room": "support", "body": "Opening at seven"})).await;
    ben.refused(json!({"type": "duty", "room": "support", "on": true}), "forbidden").await;
    host.ok(json!({"type": "duty", "room": "support", "on": true})).await;
    let on = ben.event_of("room_updated").await;
    assert_eq!(on["room"]["hosts_on_duty"], json!(["host"]));
    ben.ok(json!({"type": "send", "room": "support", "body": "hello, thank you for being here"})).await;
    let joined = ben.ok(json!({"type": "rooms"})).await;
    assert_eq!(joined["rooms"][0]["hosts_on_duty"], json!(["host"]), "the room list says who is hosting");
    // Off duty by hand...
    host.ok(json!({"type": "duty", "room": "support", "on": false})).await;
    let off = ben.event_of("room_updated").await;
    assert!(off["room"].get("hosts_on_duty").is_none(), "{off}");
    ben.refused(json!({"type": "send", "room": "support", "body": "anyone?"}), "not_open").await;
    // ... and by leaving: the host's last socket closes, and after the grace they go.
    host.ok(json!({"type": "duty", "room": "support", "on": true})).await;
    assert_eq!(ben.event_of("room_updated").await["room"]["hosts_on_duty"], json!(["host"]));
    drop(host);
    let gone = ben.event_of("room_updated").await;
    assert!(gone["room"].get("hosts_on_duty").is_none(), "{gone}");
    ben.refused(json!({"type": "send", "room": "support", "body": "anyone?"}), "not_open").await;
}

#[tokio::test]
async fn a_host_who_comes_back_within_the_grace_stays_on_duty() {
    let server = TestServer::start_with(|c| c.host_grace_s = 30.0).await;
    let mut host = server.room_owner("host", "support").await;
    host.ok(json!({"type": "host_rule", "room": "support", "required": true})).await;
    host.ok(json!({"type": "duty", "room": "support", "on": true})).await;
    let mut ben = server.member_of("ben", "support").await;
    drop(host);
    // A dropped connection is not the end of a shift.
    let token = server.login("host").await;
    let _back = server.client(&token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ben.ok(json!({"type": "send", "room": "support", "body": "still here?"})).await;
    let rooms = ben.ok(json!({"type": "rooms"})).await;
    assert_eq!(rooms["rooms"][0]["hosts_on_duty"], json!(["host"]));
}

#[tokio::test]
async fn a_care_alert_goes_to_the_host_on_duty_first() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("owner", "support").await;
    let mut host = server.member_of("host", "support").await;
    owner.ok(json!({"type": "set_room_role", "room": "support", "user": "host", "role": "moderator"})).await;
    host.ok(json!({"type": "duty", "room": "support", "on": true})).await;
    let mut ben = server.member_of("ben", "support").await;
    ben.ok(json!({"type": "send", "room": "support", "body": "I want to end my life"})).await;
    let alert = host.event_of("care_alert").await;
    assert_eq!(alert["alert"]["author"]["username"], "ben");
    // The owner, a moderator who is not on duty, is not disturbed while a host is.
    owner.ok(json!({"type": "send", "room": "support", "body": "noted"})).await;
    let mut seen = Vec::new();
    loop {
        let event = owner.event().await;
        if event["type"] == "message" && event["message"]["body"] == "noted" {
            break;
        }
        seen.push(event["type"].clone());
    }
    assert!(!seen.contains(&json!("care_alert")), "{seen:?}");
}

/// `client`'s preferences with `tag` set to `shape`.
async fn prefer(client: &mut Client, tag: &str, shape: &str) {
    let reply = client.ok(json!({"type": "set_preferences", "cw": {tag: shape}})).await;
    assert_eq!(reply["preferences"]["cw"][tag], shape, "{reply}");
}

#[tokio::test]
async fn a_message_with_a_warning_reaches_each_member_as_they_chose_by_every_path() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await; // the default: collapse
    let mut mia = server.member_of("mia", "circle").await;
    let mut zoe = server.member_of("zoe", "circle").await;
    let defaults = ben.ok(json!({"type": "preferences"})).await;
    assert_eq!(defaults["preferences"]["cw"]["self_harm"], "collapse", "{defaults}");
    prefer(&mut mia, "self_harm", "hide").await;
    prefer(&mut zoe, "self_harm", "show").await;
    let words = "the scars itch when it is warm";
    let sent = owner
        .ok(json!({"type": "send", "room": "circle", "body": words, "cw": ["self_harm"], "cw_note": "old scars"}))
        .await;
    let seq = sent["message"]["seq"].as_i64().unwrap();
    assert_eq!((&sent["message"]["body"], &sent["message"]["cw"]), (&json!(words), &json!(["self_harm"])));
    // Live.
    assert_eq!(owner.event_of("message").await["message"]["body"], words, "the author always gets it whole");
    let collapsed = ben.event_of("message").await["message"].clone();
    assert_eq!(collapsed.get("body"), None, "{collapsed}");
    assert_eq!((&collapsed["collapsed"], &collapsed["cw_note"]), (&json!(true), &json!("old scars")));
    assert_eq!(collapsed["author"]["username"], "host");
    let hidden = mia.event_of("message").await["message"].clone();
    assert_eq!(hidden, json!({"seq": seq, "room": "circle", "hidden": true, "cw": ["self_harm"]}));
    assert_eq!(zoe.event_of("message").await["message"]["body"], words);
    // Join, history and search are shaped alike.
    let mut new = server.member("newcomer").await;
    let joined = new.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!((joined["messages"][0].get("body"), &joined["messages"][0]["collapsed"]), (None, &json!(true)));
    let history = mia.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"][0]["hidden"], true, "{history}");
    assert_eq!(history["messages"][0].get("body"), None);
    let found = ben.ok(json!({"type": "search", "query": "scars"})).await;
    assert_eq!((found["messages"][0]["seq"].as_i64(), found["messages"][0].get("body")), (Some(seq), None));
    let own = owner.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(own["messages"][0]["body"], words);
    // Identically: for each member, the live event, `join` and `history` are one shape.
    for (client, live) in [(&mut ben, &collapsed), (&mut mia, &hidden)] {
        let joined = client.ok(json!({"type": "join", "room": "circle"})).await;
        let history = client.ok(json!({"type": "history", "room": "circle"})).await;
        assert_eq!((&joined["messages"][0], &history["messages"][0]), (live, live));
    }
    // Reveal: whole, for a member who asks; not for someone outside the room.
    let revealed = mia.ok(json!({"type": "reveal", "room": "circle", "seq": seq})).await;
    assert_eq!((&revealed["message"]["body"], &revealed["message"]["cw"]), (&json!(words), &json!(["self_harm"])));
    let mut outsider = server.member("outsider").await;
    outsider.refused(json!({"type": "reveal", "room": "circle", "seq": seq}), "forbidden").await;
    mia.refused(json!({"type": "reveal", "room": "circle", "seq": 99}), "not_found").await;
    // Preferences are the member's, kept for their next socket; changing one tag keeps the rest.
    prefer(&mut mia, "grief", "show").await;
    let token = server.login("mia").await;
    let mut again = server.client(&token).await;
    let kept = again.ok(json!({"type": "preferences"})).await;
    assert_eq!(
        (&kept["preferences"]["cw"]["self_harm"], &kept["preferences"]["cw"]["grief"]),
        (&json!("hide"), &json!("show"))
    );
}

#[tokio::test]
async fn the_strictest_of_several_warnings_wins_and_a_change_of_mind_applies_at_once() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    prefer(&mut ben, "grief", "show").await;
    prefer(&mut ben, "suicide", "hide").await;
    owner.ok(json!({"type": "send", "room": "circle", "body": "one", "cw": ["grief"]})).await;
    assert_eq!(ben.event_of("message").await["message"]["body"], "one");
    owner.ok(json!({"type": "send", "room": "circle", "body": "two", "cw": ["grief", "suicide"]})).await;
    assert_eq!(ben.event_of("message").await["message"]["hidden"], true, "hide beats show");
    owner.ok(json!({"type": "send", "room": "circle", "body": "three", "cw": ["grief", "eating"]})).await;
    assert_eq!(ben.event_of("message").await["message"]["collapsed"], true, "collapse beats show");
    // The same socket, new preferences: the next message follows them.
    prefer(&mut ben, "suicide", "show").await;
    owner.ok(json!({"type": "send", "room": "circle", "body": "four", "cw": ["suicide"]})).await;
    assert_eq!(ben.event_of("message").await["message"]["body"], "four");
    owner.ok(json!({"type": "send", "room": "circle", "body": "five"})).await;
    let plain = ben.event_of("message").await["message"].clone();
    assert_eq!((plain["body"].as_str(), plain.get("cw"), plain.get("collapsed")), (Some("five"), None, None));
}

#[tokio::test]
async fn a_moderator_sets_a_warning_afterwards_and_members_get_it_reshaped() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let mut ben = server.member_of("ben", "circle").await;
    let mut mia = server.member_of("mia", "circle").await;
    prefer(&mut mia, "eating", "hide").await;
    let sent = ben.ok(json!({"type": "send", "room": "circle", "body": "I ate 300 calories today"})).await;
    let seq = sent["message"]["seq"].as_i64().unwrap();
    assert_eq!(mia.event_of("message").await["message"]["body"], "I ate 300 calories today");
    // A member cannot; a room moderator can.
    mia.refused(json!({"type": "set_cw", "room": "circle", "seq": seq, "cw": ["eating"]}), "forbidden").await;
    owner.ok(json!({"type": "set_cw", "room": "circle", "seq": seq, "cw": ["eating"], "cw_note": "numbers"})).await;
    let updated = mia.event_of("message_updated").await;
    assert_eq!(updated["message"], json!({"seq": seq, "room": "circle", "hidden": true, "cw": ["eating"]}));
    let author = ben.event_of("message_updated").await;
    assert_eq!(
        (&author["message"]["body"], &author["message"]["cw_note"]),
        (&json!("I ate 300 calories today"), &json!("numbers"))
    );
    let log = owner.ok(json!({"type": "mod_log", "room": "circle"})).await;
    let entry = &log["entries"][0];
    assert_eq!(
        (&entry["action"], &entry["seq"], &entry["reason"]),
        (&json!("set_cw"), &json!(seq), &json!("eating: numbers"))
    );
    // The author's edit of a message with a warning does not leak past it.
    ben.ok(json!({"type": "edit", "room": "circle", "seq": seq, "body": "I ate 200 calories today"})).await;
    let edited = mia.event_of("message_updated").await;
    assert_eq!(edited["message"]["hidden"], true, "{edited}");
    assert!(!edited.to_string().contains("calories"), "{edited}");
    // Taking the warning off shows it to everyone again.
    owner.ok(json!({"type": "set_cw", "room": "circle", "seq": seq, "cw": []})).await;
    assert_eq!(mia.event_of("message_updated").await["message"]["body"], "I ate 200 calories today");
    owner.refused(json!({"type": "set_cw", "room": "circle", "seq": 99, "cw": ["grief"]}), "not_found").await;
}

#[tokio::test]
async fn warnings_that_are_not_in_the_list_are_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("host", "circle").await;
    let refused =
        owner.refused(json!({"type": "send", "room": "circle", "body": "x", "cw": ["spoilers"]}), "invalid").await;
    assert!(refused["message"].as_str().unwrap().contains("self_harm"), "the list is named: {refused}");
    let long = "n".repeat(101);
    owner
        .refused(json!({"type": "send", "room": "circle", "body": "x", "cw": ["grief"], "cw_note": long}), "invalid")
        .await;
    owner.refused(json!({"type": "send", "room": "circle", "body": "x", "cw_note": "a note alone"}), "invalid").await;
    owner.refused(json!({"type": "send", "room": "circle", "body": "x", "cw": "grief"}), "bad_request").await;
    owner.refused(json!({"type": "set_preferences", "cw": {"grief": "blur"}}), "bad_request").await;
    owner.refused(json!({"type": "set_preferences", "cw": {"nsfw": "hide"}}), "invalid").await;
    let history = owner.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"], json!([]), "nothing was stored");
    let kept = owner.ok(json!({"type": "preferences"})).await;
    assert_eq!(kept["preferences"]["cw"]["grief"], "collapse", "a refused change changes nothing");
}
