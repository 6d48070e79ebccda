//! The crash loop: the real binary is killed with SIGKILL at a random instant while
//! several sockets send as fast as the server acknowledges, then restarted, and every
//! message left without an answer is sent again with the same `client_msg_id`. After
//! every kill, an independent reader checks that every acknowledged message is in the
//! file exactly once with the seq it was acknowledged with, that each room's seqs run
//! 1..n without a gap, and that `PRAGMA integrity_check` says `ok`.
//!
//! Forty kills take about half a minute, so a plain `cargo test` leaves it out; CI runs it with
//! `cargo test --test it -- --ignored`. `ALONGSIDE_CRASH_TRIALS` and
//! `ALONGSIDE_CRASH_SEED` repeat a run or make it longer.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Sockets sending at once, each as a user of its own; they share two rooms.
const SENDERS: usize = 4;
const ROOMS: [&str; 2] = ["loop-a", "loop-b"];
/// Requests a socket keeps in flight, so group commits hold several messages.
const WINDOW: usize = 8;

/// What one sender has sent, by `client_msg_id`.
#[derive(Default)]
struct Ledger {
    /// client_msg_id → (room, body, the seq acknowledged, if any).
    sent: BTreeMap<String, (String, String, Option<i64>)>,
}

/// A small deterministic generator (xorshift), so a failing run can be repeated.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Figures for the closing summary.
#[derive(Default, Debug)]
struct Figures {
    acknowledged: usize,
    unanswered_at_kill: usize,
    stored_without_answer: usize,
    resent: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "half a minute of kills; CI runs it with --ignored"]
async fn sigkill_at_random_instants_loses_and_repeats_nothing() {
    let trials: usize = std::env::var("ALONGSIDE_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let seed: u64 = std::env::var("ALONGSIDE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash loop: {trials} trials, ALONGSIDE_CRASH_SEED={seed}");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");

    let binary = Binary::start(&db);
    let mut tokens = Vec::new();
    for n in 0..SENDERS {
        tokens.push(register_and_login(binary.addr, &format!("sender{n}")).await);
    }
    let mut owner = Client::connect(&binary.ws_url(), None).await;
    owner.ok(json!({"type": "auth", "token": tokens[0]})).await;
    for room in ROOMS {
        owner.ok(json!({"type": "create_room", "name": room})).await;
    }
    for token in &tokens[1..] {
        let mut member = Client::connect(&binary.ws_url(), None).await;
        member.ok(json!({"type": "auth", "token": token})).await;
        for room in ROOMS {
            member.ok(json!({"type": "join", "room": room})).await;
        }
    }
    drop(owner);
    binary.kill_9();

    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..SENDERS).map(|_| Arc::default()).collect();
    let mut figures = Figures::default();
    for trial in 0..trials {
        let binary = Binary::start(&db);
        let senders: Vec<_> = (0..SENDERS)
            .map(|n| {
                let (url, token, ledger) = (binary.ws_url(), tokens[n].clone(), ledgers[n].clone());
                tokio::spawn(send_until_cut_off(url, token, n, trial, ledger))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + random.below(600))).await;
        binary.kill_9();
        for sender in senders {
            figures.resent += tokio::time::timeout(WAIT, sender).await.expect("sender stops").expect("sender");
        }
        check_file(&db, &ledgers, &mut figures).await;
    }
    // One last start answers everything still unanswered, and the last check must find
    // every message acknowledged.
    let binary = Binary::start(&db);
    for (n, ledger) in ledgers.iter().enumerate() {
        figures.resent += resend_unanswered(&binary.ws_url(), &tokens[n], ledger).await;
        assert!(ledger.lock().unwrap().sent.values().all(|(_, _, seq)| seq.is_some()));
    }
    binary.kill_9();
    check_file(&db, &ledgers, &mut figures).await;
    figures.acknowledged = ledgers.iter().map(|l| l.lock().unwrap().sent.len()).sum();
    eprintln!("crash loop: {trials} kills, {figures:?}");
    assert!(figures.acknowledged > trials * SENDERS, "the senders barely sent anything: {figures:?}");
}

async fn register_and_login(addr: std::net::SocketAddr, name: &str) -> String {
    let credentials = json!({"username": name, "password": "crash loop password"}).to_string();
    let (status, body) = http(addr, "POST", "/api/v1/register", &[], Some(&credentials)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(addr, "POST", "/api/v1/login", &[], Some(&credentials)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_string()
}

/// Resends what is unanswered, then sends new messages, up to `WINDOW` in flight, until
/// the server dies. Returns how many it resent.
async fn send_until_cut_off(
    url: String,
    token: String,
    sender: usize,
    trial: usize,
    ledger: Arc<Mutex<Ledger>>,
) -> usize {
    let resent = resend_unanswered(&url, &token, &ledger).await;
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&url)).await else {
        return resent;
    };
    let auth = Frame::text(json!({"type": "auth", "token": token}).to_string());
    if !matches!(tokio::time::timeout(WAIT, ws.send(auth)).await, Ok(Ok(()))) {
        return resent;
    }
    let mut in_flight: HashMap<i64, String> = HashMap::new();
    let mut next = 0;
    loop {
        while in_flight.len() < WINDOW {
            next += 1;
            let room = ROOMS[(sender + next) % ROOMS.len()];
            let id = format!("s{sender}-t{trial}-{next}");
            let body = format!("message {next} of sender {sender} in trial {trial}");
            ledger.lock().unwrap().sent.insert(id.clone(), (room.to_string(), body.clone(), None));
            let frame = json!({"type": "send", "id": next, "room": room, "body": body, "client_msg_id": id});
            if !matches!(tokio::time::timeout(WAIT, ws.send(Frame::text(frame.to_string()))).await, Ok(Ok(()))) {
                return resent;
            }
            in_flight.insert(next as i64, id);
        }
        let Ok(Some(Ok(frame))) = tokio::time::timeout(WAIT, ws.next()).await else { return resent };
        let Frame::Text(text) = frame else { continue };
        let reply: Value = serde_json::from_str(&text).unwrap();
        let Some(id) = reply["id"].as_i64().and_then(|id| in_flight.remove(&id)) else { continue };
        assert_eq!(reply["type"], "ok", "a send failed with the disk healthy: {reply}");
        acknowledge(&ledger, &id, &reply);
    }
}

/// Records an `ok`; a second `ok` for one client_msg_id must carry the same seq.
fn acknowledge(ledger: &Mutex<Ledger>, id: &str, reply: &Value) {
    let seq = reply["message"]["seq"].as_i64().expect("an ok for send carries the message");
    let mut ledger = ledger.lock().unwrap();
    let entry = ledger.sent.get_mut(id).expect("sent");
    if let Some(earlier) = entry.2 {
        assert_eq!(earlier, seq, "{id} was acknowledged with two seqs");
    }
    assert_eq!(reply["message"]["body"], entry.1.as_str());
    entry.2 = Some(seq);
}

/// Sends again, one at a time, every message of `ledger` without an answer.
async fn resend_unanswered(url: &str, token: &str, ledger: &Mutex<Ledger>) -> usize {
    let unanswered: Vec<(String, String, String)> = ledger
        .lock()
        .unwrap()
        .sent
        .iter()
        .filter(|(_, (_, _, seq))| seq.is_none())
        .map(|(id, (room, body, _))| (id.clone(), room.clone(), body.clone()))
        .collect();
    if unanswered.is_empty() {
        return 0;
    }
    let mut client = Client::connect(url, None).await;
    client.ok(json!({"type": "auth", "token": token})).await;
    for (id, room, body) in &unanswered {
        let reply = client.ok(json!({"type": "send", "room": room, "body": body, "client_msg_id": id})).await;
        acknowledge(ledger, id, &reply);
    }
    unanswered.len()
}

/// With the server dead: the file is sound, each room's seqs run 1..n, every message
/// is in the ledger, and every acknowledged one is stored once with its seq.
async fn check_file(db: &Path, ledgers: &[Arc<Mutex<Ledger>>], figures: &mut Figures) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.unwrap();
    assert_eq!(integrity, ["ok"]);
    let rows: Vec<(String, i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT r.name, m.seq, m.client_msg_id, m.body FROM messages m JOIN rooms r ON r.id = m.room_id \
         ORDER BY r.name, m.seq",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    for room in ROOMS {
        let seqs: Vec<i64> = rows.iter().filter(|row| row.0 == room).map(|row| row.1).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{room}: seqs run 1..n");
    }
    let mut stored: HashMap<&str, (&str, i64, Option<&str>)> = HashMap::new();
    for (room, seq, id, body) in &rows {
        let id = id.as_deref().expect("every message here has a client_msg_id");
        assert!(stored.insert(id, (room, *seq, body.as_deref())).is_none(), "{id} is stored twice");
    }
    let mut known = 0;
    for ledger in ledgers {
        for (id, (room, body, seq)) in &ledger.lock().unwrap().sent {
            match (stored.get(id.as_str()), seq) {
                (Some(found), Some(seq)) => {
                    assert_eq!(*found, (room.as_str(), *seq, Some(body.as_str())), "{id} as acknowledged");
                    known += 1;
                }
                (None, Some(seq)) => panic!("{id} was acknowledged with seq {seq} and is not stored"),
                (Some(_), None) => {
                    figures.unanswered_at_kill += 1;
                    figures.stored_without_answer += 1;
                    known += 1;
                }
                (None, None) => figures.unanswered_at_kill += 1,
            }
        }
    }
    assert_eq!(known, rows.len(), "every stored message was sent by a sender");
}
