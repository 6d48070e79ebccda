//! Summits (PROTOCOL §12): who may send in each phase, phases moved by hand and by the
//! schedule (on every node of a network), and speakers.

use crate::cluster::Cluster;
use crate::support::*;
use alongside::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

/// An ISO-8601 time `ms` milliseconds from now.
fn in_ms(ms: i64) -> String {
    alongside::protocol::format_ts(alongside::protocol::now_ms() + ms)
}

/// Whether `client` may send in `room` now: `Ok` or the error code.
async fn try_send(client: &mut Client, room: &str, body: &str) -> Result<(), String> {
    let reply = client.request(json!({"type": "send", "room": room, "body": body})).await;
    match reply["type"].as_str() {
        Some("ok") => Ok(()),
        _ => Err(reply["code"].as_str().unwrap_or("?").to_string()),
    }
}

/// The next `room_updated` for `room`, skipping other events.
async fn updated(client: &mut Client, room: &str) -> Value {
    loop {
        let event = client.event_of("room_updated").await;
        if event["room"]["name"] == room {
            return event["room"].clone();
        }
    }
}

/// An organiser who opened the summit `room`, a member and a speaker in it.
async fn summit(server: &TestServer, room: &str) -> (Client, Client, Client) {
    let token = server.user_with_role("organiser", Role::Organiser).await;
    let mut organiser = server.client(&token).await;
    let created = organiser.ok(json!({"type": "create_room", "name": room, "kind": "summit"})).await;
    assert_eq!(created["room"]["phase"], "hallway", "a summit without a schedule is in the hallway: {created}");
    let mut member = server.member_of("member", room).await;
    let mut speaker = server.member_of("speaker", room).await;
    organiser.ok(json!({"type": "set_room_role", "room": room, "user": "speaker", "role": "speaker"})).await;
    for client in [&mut speaker, &mut member] {
        let room_now = updated(client, room).await;
        assert_eq!(room_now["speakers"], json!(["speaker"]));
    }
    (organiser, member, speaker)
}

#[tokio::test]
async fn each_phase_lets_exactly_its_senders_send() {
    let server = TestServer::start().await;
    let (mut organiser, mut member, mut speaker) = summit(&server, "wmhd").await;
    // (phase, organiser, speaker, member): Ok, or the error code.
    let ok = Ok(());
    let not_open = Err("not_open".to_string());
    let forbidden = Err("forbidden".to_string());
    let table = [
        ("scheduled", not_open.clone(), not_open.clone(), not_open.clone()),
        ("lobby", ok.clone(), forbidden.clone(), forbidden.clone()),
        ("stage", ok.clone(), ok.clone(), forbidden.clone()),
        ("qa", ok.clone(), ok.clone(), forbidden.clone()),
        ("hallway", ok.clone(), ok.clone(), ok.clone()),
        ("closed", not_open.clone(), not_open.clone(), not_open.clone()),
    ];
    for (phase, by_organiser, by_speaker, by_member) in table {
        organiser.ok(json!({"type": "set_phase", "room": "wmhd", "phase": phase})).await;
        let seen = updated(&mut member, "wmhd").await;
        assert_eq!(seen["phase"], phase, "the member hears the new phase");
        assert_eq!(try_send(&mut organiser, "wmhd", "from the organiser").await, by_organiser, "{phase}: organiser");
        assert_eq!(try_send(&mut speaker, "wmhd", "from the speaker").await, by_speaker, "{phase}: speaker");
        assert_eq!(try_send(&mut member, "wmhd", "from a member").await, by_member, "{phase}: member");
    }
    // A speaker who leaves and comes back is a member again.
    organiser.ok(json!({"type": "set_phase", "room": "wmhd", "phase": "stage"})).await;
    speaker.ok(json!({"type": "leave", "room": "wmhd"})).await;
    speaker.ok(json!({"type": "join", "room": "wmhd"})).await;
    assert_eq!(try_send(&mut speaker, "wmhd", "still a speaker?").await, Err("forbidden".into()));
    let listed = organiser.ok(json!({"type": "join", "room": "wmhd"})).await;
    assert!(listed["room"].get("speakers").is_none(), "{listed}");
    // Members cannot move the phase; topic rooms have none, nor speakers.
    member.refused(json!({"type": "set_phase", "room": "wmhd", "phase": "hallway"}), "forbidden").await;
    let mut host = server.room_owner("host", "topic").await;
    host.refused(json!({"type": "set_phase", "room": "topic", "phase": "stage"}), "invalid").await;
    let topic = host.ok(json!({"type": "join", "room": "topic"})).await;
    assert!(topic["room"].get("phase").is_none(), "{topic}");
    server.member_of("guest", "topic").await;
    host.refused(json!({"type": "set_room_role", "room": "topic", "user": "guest", "role": "speaker"}), "invalid")
        .await;
}

#[tokio::test]
async fn the_schedule_moves_the_phase_at_its_time_and_set_phase_drops_the_rest() {
    let server = TestServer::start().await;
    let (mut organiser, mut member, _speaker) = summit(&server, "summit-day").await;
    // Times must go up.
    let backwards = json!([{"phase": "stage", "at": in_ms(2000)}, {"phase": "lobby", "at": in_ms(1000)}]);
    organiser.refused(json!({"type": "set_schedule", "room": "summit-day", "schedule": backwards}), "invalid").await;
    let schedule = json!([
        {"phase": "lobby", "at": in_ms(-1000)},
        {"phase": "stage", "at": in_ms(400)},
        {"phase": "hallway", "at": in_ms(800)},
    ]);
    organiser.ok(json!({"type": "set_schedule", "room": "summit-day", "schedule": schedule})).await;
    // The entry already due applies at once; the ones to come are listed.
    let now = updated(&mut member, "summit-day").await;
    assert_eq!(now["phase"], "lobby", "{now}");
    assert_eq!(now["schedule"].as_array().map(Vec::len), Some(2), "{now}");
    assert_eq!(try_send(&mut member, "summit-day", "too early").await, Err("forbidden".into()));
    let stage = updated(&mut member, "summit-day").await;
    assert_eq!(stage["phase"], "stage", "{stage}");
    let hallway = updated(&mut member, "summit-day").await;
    assert_eq!(hallway["phase"], "hallway", "{hallway}");
    assert!(hallway.get("schedule").is_none(), "nothing left to come: {hallway}");
    try_send(&mut member, "summit-day", "now we talk").await.expect("the hallway is open to members");

    // set_phase replaces what is left of a schedule with nothing.
    let later = json!([{"phase": "closed", "at": in_ms(300)}]);
    organiser.ok(json!({"type": "set_schedule", "room": "summit-day", "schedule": later})).await;
    updated(&mut member, "summit-day").await;
    organiser.ok(json!({"type": "set_phase", "room": "summit-day", "phase": "qa"})).await;
    let qa = updated(&mut member, "summit-day").await;
    assert_eq!(qa["phase"], "qa");
    assert!(qa.get("schedule").is_none(), "{qa}");
    // Past the time of the dropped entry: it must not have come.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let joined = member.ok(json!({"type": "join", "room": "summit-day"})).await;
    assert_eq!(joined["room"]["phase"], "qa", "the dropped entry never came: {joined}");
}

#[tokio::test]
async fn a_schedule_set_on_one_node_moves_members_on_both() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let token = a.user_with_role("organiser", Role::Organiser).await;
    let mut organiser = a.client(&token).await;
    organiser.ok(json!({"type": "create_room", "name": "global-summit", "kind": "summit"})).await;
    let mut on_a = a.member_of("ada", "global-summit").await;
    let mut on_b = b.member_of("ben", "global-summit").await;
    let schedule = json!([{"phase": "stage", "at": in_ms(300)}]);
    organiser.ok(json!({"type": "set_schedule", "room": "global-summit", "schedule": schedule})).await;
    for member in [&mut on_a, &mut on_b] {
        let set = updated(member, "global-summit").await;
        assert_eq!(set["phase"], "hallway", "{set}");
        let stage = updated(member, "global-summit").await;
        assert_eq!(stage["phase"], "stage", "{stage}");
        assert_eq!(try_send(member, "global-summit", "on stage?").await, Err("forbidden".into()));
    }
    // Exactly one `room_updated` for the move.
    for member in [&mut on_a, &mut on_b] {
        member.assert_quiet(Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn anonymous_questions_hide_the_asker_from_members_but_not_from_moderators() {
    let server = TestServer::start().await;
    let (mut organiser, mut member, mut speaker) = summit(&server, "qa-room").await;
    // Questions are taken on stage and in Q&A only.
    let ask = json!({"type": "ask", "room": "qa-room", "body": "How do I support a friend?", "anonymous": true});
    member.refused(ask.clone(), "not_open").await;
    organiser.ok(json!({"type": "set_phase", "room": "qa-room", "phase": "stage"})).await;
    for client in [&mut organiser, &mut member, &mut speaker] {
        updated(client, "qa-room").await;
    }
    let asked = member.ok(ask).await["question"].clone();
    // The asker's own data holds it, anonymous or not.
    let token = server.login("member").await;
    let (_, export) =
        http(server.addr, "GET", "/api/v1/me/export", &[("Authorization", &format!("Bearer {token}"))], None).await;
    let export: Value = serde_json::from_str(&export).unwrap();
    assert_eq!(export["questions"][0]["body"], "How do I support a friend?", "{export}");
    assert_eq!((asked["status"].as_str(), asked["anonymous"].as_bool()), (Some("pending"), Some(true)), "{asked}");
    let id = asked["id"].as_i64().unwrap();
    // The moderators hear of it at once, with who asked.
    let heard = organiser.event_of("question").await;
    assert_eq!(heard["question"]["author"]["username"], "member", "{heard}");
    // Members see nothing pending.
    let listed = speaker.ok(json!({"type": "questions", "room": "qa-room"})).await;
    assert_eq!(listed["questions"], json!([]));
    speaker.refused(json!({"type": "questions", "room": "qa-room", "status": "pending"}), "forbidden").await;
    // Approved, it reaches the room without the asker's name.
    organiser
        .ok(json!({"type": "moderate_question", "room": "qa-room", "question_id": id, "status": "approved"}))
        .await;
    let public = speaker.event_of("question").await["question"].clone();
    assert_eq!(member.event_of("question").await["question"]["id"], id);
    assert_eq!(public["status"], "approved");
    assert!(public.get("author").is_none(), "members never learn who asked anonymously: {public}");
    let listed = speaker.ok(json!({"type": "questions", "room": "qa-room"})).await;
    assert_eq!(listed["questions"][0]["body"], "How do I support a friend?");
    assert!(listed["questions"][0].get("author").is_none(), "{listed}");
    let for_moderators = organiser.ok(json!({"type": "questions", "room": "qa-room"})).await;
    assert_eq!(for_moderators["questions"][0]["author"]["username"], "member", "{for_moderators}");

    // A question asked openly shows its asker; one dismissed while pending never
    // reaches the members at all.
    let open = json!({"type": "ask", "room": "qa-room", "body": "Where are the slides?"});
    let open_id = speaker.ok(open).await["question"]["id"].as_i64().unwrap();
    organiser.event_of("question").await;
    let dismiss =
        json!({"type": "moderate_question", "room": "qa-room", "question_id": open_id, "status": "dismissed"});
    organiser.ok(dismiss).await;
    member.assert_quiet(Duration::from_millis(300)).await;
    let answered = json!({"type": "moderate_question", "room": "qa-room", "question_id": id, "status": "answered"});
    organiser.ok(answered).await;
    assert_eq!(member.event_of("question").await["question"]["status"], "answered");
    member
        .refused(
            json!({"type": "moderate_question", "room": "qa-room", "question_id": id, "status": "approved"}),
            "forbidden",
        )
        .await;
    // Each move is in the room's moderation log: the phase, and every question taken,
    // answered or set aside (by its id, never its asker).
    let log = organiser.ok(json!({"type": "mod_log", "room": "qa-room"})).await;
    let entries: Vec<(String, Value, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap().to_string(), e["seq"].clone(), e["reason"].as_str().unwrap_or("").into())
        })
        .filter(|(action, _, _)| action != "set_room_role")
        .collect();
    assert_eq!(
        entries[..3],
        [
            ("moderate_question".to_string(), json!(id), "answered".to_string()),
            ("moderate_question".to_string(), json!(open_id), "dismissed".to_string()),
            ("moderate_question".to_string(), json!(id), "approved".to_string()),
        ],
        "{log}"
    );
    assert!(entries.iter().any(|(action, _, reason)| action == "set_phase" && reason == "stage"), "{log}");
}

#[tokio::test]
async fn one_vote_per_member_and_a_vote_storm_is_one_count_a_second() {
    let server = TestServer::start().await;
    let (mut organiser, mut member, _speaker) = summit(&server, "storm").await;
    organiser.ok(json!({"type": "set_phase", "room": "storm", "phase": "qa"})).await;
    let id = member.ok(json!({"type": "ask", "room": "storm", "body": "What helps on a bad day?"})).await["question"]
        ["id"]
        .as_i64()
        .unwrap();
    member.refused(json!({"type": "upvote", "room": "storm", "question_id": id}), "not_found").await;
    organiser.ok(json!({"type": "moderate_question", "room": "storm", "question_id": id, "status": "approved"})).await;
    let up = json!({"type": "upvote", "room": "storm", "question_id": id});
    let first = member.ok(up.clone()).await["question"].clone();
    assert_eq!((first["votes"].as_i64(), first["voted"].as_bool()), (Some(1), Some(true)));
    let second = member.ok(up.clone()).await["question"].clone();
    assert_eq!(second["votes"], 1, "a member's second upvote does not count");
    let taken_back = member.ok(json!({"type": "unvote", "room": "storm", "question_id": id})).await["question"].clone();
    assert_eq!((taken_back["votes"].as_i64(), taken_back["voted"].as_bool()), (Some(0), Some(false)));
    member.ok(up.clone()).await;

    // Twenty members vote within a moment: the room hears the count once or twice, not
    // twenty times, and the last count is right.
    let mut voters = Vec::new();
    for n in 0..20 {
        voters.push(server.member_of(&format!("voter{n}"), "storm").await);
    }
    let mut watcher = server.member_of("watcher", "storm").await;
    for voter in &mut voters {
        voter.ok(up.clone()).await;
    }
    let mut counts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let event = tokio::time::timeout_at(deadline, watcher.event_of("question_votes")).await;
        match event {
            Ok(event) if event["question_id"] == id => counts.push(event["votes"].as_i64().unwrap()),
            Ok(_) => {}
            Err(_) => break,
        }
        if counts.last() == Some(&21) {
            break;
        }
    }
    assert_eq!(counts.last(), Some(&21), "the count the room hears last: {counts:?}");
    assert!(counts.len() <= 3, "votes coalesce to at most one event a second: {counts:?}");
}

#[tokio::test]
async fn the_backstage_holds_the_organiser_moderators_and_speakers_in_step() {
    let server = TestServer::start().await;
    let (mut organiser, mut member, mut speaker) = summit(&server, "forum").await;
    // The organiser owns it; the speaker was let in with their role; members are not.
    organiser.ok(json!({"type": "send", "room": "forum-backstage", "body": "Mics on in five"})).await;
    assert_eq!(speaker.event_of("message").await["message"]["body"], "Mics on in five");
    member.refused(json!({"type": "send", "room": "forum-backstage", "body": "hi"}), "forbidden").await;
    let rooms = member.ok(json!({"type": "rooms"})).await;
    let names: Vec<&str> = rooms["rooms"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(!names.contains(&"forum-backstage"), "a private room is not listed to others: {names:?}");
    // A new room moderator comes backstage; a speaker made a member again goes.
    organiser.ok(json!({"type": "set_room_role", "room": "forum", "user": "member", "role": "moderator"})).await;
    member.ok(json!({"type": "send", "room": "forum-backstage", "body": "Here to help"})).await;
    organiser.ok(json!({"type": "set_room_role", "room": "forum", "user": "speaker", "role": "member"})).await;
    speaker.refused(json!({"type": "send", "room": "forum-backstage", "body": "still here?"}), "forbidden").await;
    // A moderator who leaves the summit leaves the backstage too.
    member.ok(json!({"type": "leave", "room": "forum"})).await;
    member.refused(json!({"type": "send", "room": "forum-backstage", "body": "bye"}), "forbidden").await;
    // A speaker removed from the summit, or a moderator banned from it, is out of the
    // backstage and off the speakers at once.
    organiser.ok(json!({"type": "set_room_role", "room": "forum", "user": "speaker", "role": "speaker"})).await;
    speaker.ok(json!({"type": "send", "room": "forum-backstage", "body": "back again"})).await;
    organiser.ok(json!({"type": "kick", "room": "forum", "user": "speaker"})).await;
    speaker.refused(json!({"type": "send", "room": "forum-backstage", "body": "and now?"}), "forbidden").await;
    let listed = organiser.ok(json!({"type": "join", "room": "forum"})).await;
    assert!(listed["room"].get("speakers").is_none(), "a removed speaker is no longer listed: {listed}");
    let mut host = server.member_of("host", "forum").await;
    organiser.ok(json!({"type": "set_room_role", "room": "forum", "user": "host", "role": "moderator"})).await;
    host.ok(json!({"type": "send", "room": "forum-backstage", "body": "hosting"})).await;
    organiser.ok(json!({"type": "ban", "room": "forum", "user": "host"})).await;
    host.refused(json!({"type": "send", "room": "forum-backstage", "body": "still hosting?"}), "forbidden").await;
    // The name is taken: no summit may be called so that its backstage would clash.
    organiser.refused(json!({"type": "create_room", "name": "forum-backstage", "kind": "topic"}), "conflict").await;
    organiser.ok(json!({"type": "create_room", "name": "clash-backstage", "kind": "topic"})).await;
    organiser.refused(json!({"type": "create_room", "name": "clash", "kind": "summit"}), "conflict").await;
}

#[tokio::test]
async fn the_public_programme_is_an_icalendar_feed_of_public_summits() {
    let server = TestServer::start().await;
    let token = server.user_with_role("organiser", Role::Organiser).await;
    let mut organiser = server.client(&token).await;
    let summit = |name: &str, topic: &str, starts: &str, ends: &str| json!({"type": "create_room", "name": name, "kind": "summit", "topic": topic, "starts_at": starts, "ends_at": ends});
    let opening = "Opening: why peer support works; with Q&A, for everyone";
    organiser.ok(summit("opening", opening, "2026-10-10T09:00:00+02:00", "2026-10-10T10:30:00+02:00")).await;
    organiser.ok(summit("closing", "Closing circle", "2026-10-10T18:00:00Z", "2026-10-10T19:00:00Z")).await;
    let mut private = summit("staff-only", "Staff briefing", "2026-10-10T08:00:00Z", "2026-10-10T08:30:00Z");
    private["visibility"] = json!("private");
    organiser.ok(private).await;
    organiser.ok(json!({"type": "create_room", "name": "open-chat", "topic": "A topic room"})).await;

    let raw = raw_http(server.addr, "GET /api/v1/summits.ics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/calendar"), "{head}");
    let calendars: Vec<_> = ical::IcalParser::new(body.as_bytes()).collect::<Result<_, _>>().expect("the feed parses");
    assert_eq!(calendars.len(), 1);
    let events: Vec<Vec<(String, String)>> = calendars[0]
        .events
        .iter()
        .map(|event| event.properties.iter().map(|p| (p.name.clone(), p.value.clone().unwrap_or_default())).collect())
        .collect();
    let get = |event: &Vec<(String, String)>, name: &str| {
        event.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
    };
    let summaries: Vec<String> = events.iter().map(|event| get(event, "SUMMARY")).collect();
    // Public summits only, in time order; times in UTC; text escaped and unfolded.
    assert_eq!(summaries, ["Opening: why peer support works\\; with Q&A\\, for everyone", "Closing circle"]);
    assert_eq!(
        (get(&events[0], "DTSTART"), get(&events[0], "DTEND")),
        ("20261010T070000Z".into(), "20261010T083000Z".into())
    );
    assert_eq!(get(&events[1], "DTSTART"), "20261010T180000Z");
    assert!(events.iter().all(|event| !get(event, "UID").is_empty() && !get(event, "DTSTAMP").is_empty()));
}

/// Sends `request` as is; returns the whole answer.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await.expect("answer in time").unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn viewers_come_in_beyond_capacity_read_ask_and_vote_but_never_send() {
    let server = TestServer::start().await;
    let token = server.user_with_role("organiser", Role::Organiser).await;
    let mut organiser = server.client(&token).await;
    let create = json!({"type": "create_room", "name": "big-day", "kind": "summit", "capacity": 2, "viewers": true});
    assert_eq!(organiser.ok(create).await["room"]["viewers"], 0, "a summit that takes viewers counts them");
    let mut member = server.member("member").await;
    let joined = member.ok(json!({"type": "join", "room": "big-day"})).await;
    assert!(joined.get("viewer").is_none(), "within capacity: a member: {joined}");
    // The summit is full now: the next one in views.
    let mut viewer = server.member("viewer").await;
    let joined = viewer.ok(json!({"type": "join", "room": "big-day"})).await;
    assert_eq!(joined["viewer"], true, "{joined}");
    assert_eq!(joined["room"]["viewers"], 1, "{joined}");
    let listed = member.ok(json!({"type": "rooms"})).await;
    let big_day = listed["rooms"].as_array().unwrap().iter().find(|room| room["name"] == "big-day").unwrap();
    assert_eq!(big_day["viewers"], 1, "every member's list counts the viewer: {big_day}");
    organiser.ok(json!({"type": "send", "room": "big-day", "body": "Welcome, everyone"})).await;
    assert_eq!(viewer.event_of("message").await["message"]["body"], "Welcome, everyone");
    for phase in ["hallway", "stage"] {
        organiser.ok(json!({"type": "set_phase", "room": "big-day", "phase": phase})).await;
        assert_eq!(try_send(&mut viewer, "big-day", "may I?").await, Err("full".into()), "{phase}");
    }
    let question = viewer.ok(json!({"type": "ask", "room": "big-day", "body": "Will slides be shared?"})).await;
    let id = question["question"]["id"].as_i64().unwrap();
    organiser
        .ok(json!({"type": "moderate_question", "room": "big-day", "question_id": id, "status": "approved"}))
        .await;
    let voted = viewer.ok(json!({"type": "upvote", "room": "big-day", "question_id": id})).await;
    assert_eq!(voted["question"]["votes"], 1);
    // Nobody can make someone a viewer; without `viewers`, a full summit stays full.
    organiser
        .refused(json!({"type": "set_room_role", "room": "big-day", "user": "member", "role": "viewer"}), "invalid")
        .await;
    let small =
        organiser.ok(json!({"type": "create_room", "name": "small-day", "kind": "summit", "capacity": 1})).await;
    assert!(small["room"].get("viewers").is_none(), "a summit without viewers has no count: {small}");
    member.refused(json!({"type": "join", "room": "small-day"}), "full").await;
    organiser.refused(json!({"type": "create_room", "name": "topic-x", "viewers": true}), "invalid").await;
}

/// A programme of two sessions in two time zones, as calendar programs write them: one
/// with an IANA TZID and its speaker named for Alongside, one with a Windows-style TZID
/// defined in a VTIMEZONE, a DURATION, and its presenter as an ATTENDEE with ROLE=CHAIR.
const PROGRAMME: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//A calendar program//EN\r
BEGIN:VTIMEZONE\r
TZID:India Standard Time\r
X-LIC-LOCATION:Asia/Kolkata\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:+0530\r
TZOFFSETTO:+0530\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:opening@example.org\r
DTSTART;TZID=Europe/London:20301010T090000\r
DTEND;TZID=Europe/London:20301010T100000\r
SUMMARY:Opening: voices of lived experience\r
X-ALONGSIDE-SPEAKERS:ada\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:circle@example.org\r
DTSTART;TZID=\"India Standard Time\":20301010T180000\r
DURATION:PT1H30M\r
SUMMARY:Peer circle\\, evening\r
ATTENDEE;ROLE=CHAIR;CN=Grace:mailto:grace@example.org\r
ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:ada@example.org\r
END:VEVENT\r
END:VCALENDAR\r
";

#[tokio::test]
async fn a_programme_in_two_time_zones_becomes_summits_at_the_right_times() {
    let server = TestServer::start().await;
    server.user_with_role("organiser", Role::Organiser).await;
    let mut ada = server.member("ada").await;
    server.user("grace").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("programme.ics");
    std::fs::write(&file, PROGRAMME).unwrap();
    let import_as = |prefix: &str, extra: &[&str]| {
        let args: Vec<String> = ["summit", "import", file.to_str().unwrap(), "--organiser", "organiser"]
            .iter()
            .chain(["--prefix", prefix, "--database", server.config.database.as_str()].iter())
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        alongside_command(args)
    };
    let import = |extra: &[&str]| import_as("wmhd-", extra);

    // A dry run says what it would open and opens nothing.
    let (ok, said) = import(&["--dry-run"]).await;
    assert!(ok, "{said}");
    assert!(said.contains("would open 2 summit room(s)"), "{said}");
    assert!(said.contains("#wmhd-opening-voices-of-lived-experience"), "{said}");
    ada.refused(json!({"type": "join", "room": "wmhd-peer-circle-evening"}), "not_found").await;

    let (ok, said) = import(&[]).await;
    assert!(ok, "{said}");
    // Ada's open socket hears of the room she speaks in (and the other she may join).
    let heard = ada.event_of("room_created").await;
    assert!(heard["room"]["name"].as_str().unwrap().starts_with("wmhd-"), "{heard}");

    // The London session: 09:00 British Summer Time, the default phases around it.
    let opening =
        ada.ok(json!({"type": "join", "room": "wmhd-opening-voices-of-lived-experience"})).await["room"].clone();
    assert_eq!(opening["kind"], "summit");
    assert_eq!(opening["topic"], "Opening: voices of lived experience");
    assert_eq!(opening["time_zone"], "Europe/London");
    assert_eq!(opening["session_starts_at"], "2030-10-10T09:00:00.000+01:00");
    assert_eq!(opening["session_ends_at"], "2030-10-10T10:00:00.000+01:00");
    assert_eq!(opening["phase"], "scheduled");
    assert_eq!(opening["speakers"], json!(["ada"]));
    assert_eq!(
        opening["schedule"],
        json!([
            {"phase": "lobby", "at": "2030-10-10T08:45:00.000+01:00"},
            {"phase": "stage", "at": "2030-10-10T09:00:00.000+01:00"},
            {"phase": "qa", "at": "2030-10-10T09:45:00.000+01:00"},
            {"phase": "hallway", "at": "2030-10-10T10:00:00.000+01:00"},
            {"phase": "closed", "at": "2030-10-10T12:00:00.000+01:00"},
        ])
    );
    // The Indian session: 18:00 in Kolkata is 12:30 UTC; ninety minutes, the last
    // quarter for questions; its presenter is its speaker, an ordinary attendee is not.
    let circle = ada.ok(json!({"type": "join", "room": "wmhd-peer-circle-evening"})).await["room"].clone();
    assert_eq!(circle["topic"], "Peer circle, evening");
    assert_eq!(circle["time_zone"], "Asia/Kolkata");
    assert_eq!(circle["session_starts_at"], "2030-10-10T18:00:00.000+05:30");
    assert_eq!(circle["session_ends_at"], "2030-10-10T19:30:00.000+05:30");
    assert_eq!(circle["schedule"][2], json!({"phase": "qa", "at": "2030-10-10T19:07:30.000+05:30"}));
    assert_eq!(circle["speakers"], json!(["grace"]));
    assert_eq!(
        alongside::protocol::parse_ts(circle["session_starts_at"].as_str().unwrap()),
        alongside::protocol::parse_ts("2030-10-10T12:30:00Z"),
    );
    // Each has its backstage, with the speaker in it.
    let backstage =
        ada.ok(json!({"type": "history", "room": "wmhd-opening-voices-of-lived-experience-backstage"})).await;
    assert_eq!(backstage["type"], "ok", "{backstage}");
    // Nobody may send before the lobby opens.
    assert_eq!(try_send(&mut ada, "wmhd-opening-voices-of-lived-experience", "early").await, Err("not_open".into()));

    // The public programme shows the sessions themselves, in UTC.
    let raw = raw_http(server.addr, "GET /api/v1/summits.ics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(raw.contains("DTSTART:20301010T080000Z\r\nDTEND:20301010T090000Z"), "{raw}");
    assert!(raw.contains("DTSTART:20301010T123000Z\r\nDTEND:20301010T140000Z"), "{raw}");
    // One session alone, for "add to calendar"; a name that is no public summit: 404.
    let one = "GET /api/v1/summits.ics?room=wmhd-peer-circle-evening HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let raw = raw_http(server.addr, one).await;
    assert_eq!(raw.matches("BEGIN:VEVENT").count(), 1, "{raw}");
    assert!(raw.contains("DTSTART:20301010T123000Z"), "{raw}");
    let none = "GET /api/v1/summits.ics?room=wmhd-opening-voices-of-lived-experience-backstage HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(raw_http(server.addr, none).await.starts_with("HTTP/1.1 404"), "a backstage is private");

    // Importing again: every name is taken, and nothing more is made.
    let (ok, said) = import(&[]).await;
    assert!(!ok && said.contains("nothing was imported") && said.contains("exists already"), "{said}");
    // A speaker who is not on the network: a clear error, and nothing made.
    let other = PROGRAMME.replace("X-ALONGSIDE-SPEAKERS:ada", "X-ALONGSIDE-SPEAKERS:nobody").replace("wmhd", "x");
    std::fs::write(&file, other).unwrap();
    let (ok, said) = import_as("later-", &[]).await;
    assert!(!ok && said.contains("there is no user `nobody`"), "{said}");
    ada.refused(json!({"type": "join", "room": "later-peer-circle-evening"}), "not_found").await;
}

#[tokio::test]
async fn a_json_programme_takes_wall_clock_times_in_its_zone() {
    let server = TestServer::start().await;
    server.user_with_role("organiser", Role::Organiser).await;
    let mut member = server.member("member").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("programme.json");
    let programme = json!({
        "time_zone": "America/New_York",
        "sessions": [
            {"title": "Town hall", "room": "town-hall", "start": "2030-11-05T12:00", "end": "2030-11-05T13:00",
             "capacity": 200, "viewers": true},
            {"title": "Sydney breakfast", "start": "2030-11-06T08:00", "end": "2030-11-06T09:00",
             "time_zone": "Australia/Sydney"},
        ]
    });
    std::fs::write(&file, programme.to_string()).unwrap();
    let args = ["summit", "import", file.to_str().unwrap(), "--organiser", "organiser", "--lobby", "0", "--qa", "0"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.extend(["--database".to_string(), server.config.database.clone()]);
    let (ok, said) = alongside_command(args).await;
    assert!(ok, "{said}");
    let town = member.ok(json!({"type": "join", "room": "town-hall"})).await["room"].clone();
    // November: New York is back on standard time (UTC-5).
    assert_eq!(town["session_starts_at"], "2030-11-05T12:00:00.000-05:00");
    assert_eq!(town["capacity"], 200);
    assert_eq!(town["viewers"], 0);
    // No lobby and no Q&A: stage at the start, then the hallway.
    let phases: Vec<&str> = town["schedule"].as_array().unwrap().iter().map(|e| e["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["stage", "hallway", "closed"]);
    let sydney = member.ok(json!({"type": "join", "room": "sydney-breakfast"})).await["room"].clone();
    // November: Sydney is on summer time (UTC+11).
    assert_eq!(sydney["session_starts_at"], "2030-11-06T08:00:00.000+11:00");
    assert_eq!(sydney["time_zone"], "Australia/Sydney");
}
