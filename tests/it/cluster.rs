//! Several nodes on one PostgreSQL database and one Redis, each a real server on its own
//! port: every promise of the protocol across nodes (PROTOCOL §10).
//!
//! They need `ALONGSIDE_TEST_POSTGRES` and `ALONGSIDE_TEST_REDIS` (`.ci/run` sets both);
//! without them each test says so and passes without running. Each test has a fresh
//! database and its own cluster name, so tests share the servers without meeting.
//! The node's Redis connections go through a proxy the test can cut.

use crate::support::*;
use alongside::store::postgres::test_database::{self, TestDatabase};
use alongside::Config;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The variable naming the test Redis.
const REDIS: &str = "ALONGSIDE_TEST_REDIS";

/// A network of nodes on one fresh database.
pub struct Cluster {
    pub nodes: Vec<TestServer>,
    pub database: TestDatabase,
    pub redis: CutProxy,
    pub name: String,
}

impl Cluster {
    /// `n` nodes, or `None` (with a note) when the servers are not named.
    pub async fn start(n: usize) -> Option<Cluster> {
        Cluster::start_with(n, |_| {}).await
    }

    /// `n` nodes with their settings changed by `tweak`.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut Config)) -> Option<Cluster> {
        let postgres = test_database::server()?;
        let Some(redis) = std::env::var(REDIS).ok().filter(|url| !url.is_empty()) else {
            eprintln!("{REDIS} is not set: the cluster test does not run");
            return None;
        };
        let database = test_database::create(&postgres).await;
        let proxy = CutProxy::start(&redis).await;
        let name = database.url.rsplit('/').next().unwrap_or("test").to_string();
        let mut cluster = Cluster { nodes: Vec::new(), database, redis: proxy, name };
        for index in 0..n {
            let node = cluster.node_config(index, &tweak);
            cluster.nodes.push(TestServer::start_config(node).await);
        }
        Some(cluster)
    }

    /// The settings of node `index`.
    pub fn node_config(&self, index: usize, tweak: &impl Fn(&mut Config)) -> Config {
        let mut config = test_config(&self.database.url);
        config.bus = format!("redis://{}", self.redis.addr);
        config.cluster = self.name.clone();
        config.node_id = format!("node-{}", (b'a' + index as u8) as char);
        tweak(&mut config);
        config
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> &TestServer {
        &self.nodes[index]
    }
}

/// A TCP proxy in front of Redis or PostgreSQL that the test can cut (every connection
/// closed, new ones closed at once) and restore.
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(url: &str) -> CutProxy {
        let target = url.trim_start_matches("redis://").split('/').next().unwrap_or("127.0.0.1:6379").to_string();
        CutProxy::to(target).await
    }

    /// A proxy to `target` (`host:port`).
    async fn to(target: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (cut, open) = (cut.clone(), open.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    // Checked and registered under the lock `cut` takes, so no pipe
                    // opened as the cut begins outlives it.
                    let mut pipes = open.lock().unwrap();
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let target = target.clone();
                    pipes.push(tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else { return };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }));
                }
            })
        };
        CutProxy { addr, cut, open, accept }
    }

    /// Redis becomes unreachable for the nodes.
    pub fn cut(&self) {
        let mut pipes = self.open.lock().unwrap();
        self.cut.store(true, Ordering::SeqCst);
        for pipe in pipes.drain(..) {
            pipe.abort();
        }
    }

    /// Redis is reachable again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `url` (`postgres://user@host:port/name`) through a proxy: the proxy and the new URL.
async fn postgres_through_proxy(url: &str) -> (CutProxy, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.contains(':') { host.to_string() } else { format!("{host}:5432") };
    let proxy = CutProxy::to(host).await;
    let at = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
    let proxied = format!("{scheme}://{at}{}/{path}", proxy.addr);
    (proxy, proxied)
}

/// Collects `room`'s message seqs from `client` until it has `n`.
async fn seqs_heard(client: &mut Client, room: &str, n: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let event = client.event_of("message").await;
        if event["room"] == room {
            seqs.push(event["message"]["seq"].as_i64().unwrap());
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_nodes_get_every_seq_once_in_order_from_four_senders() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    let mut readers = Vec::new();
    for (index, node) in [a, b].into_iter().enumerate() {
        let mut reader = node.member(&format!("reader{index}")).await;
        reader.ok(json!({"type": "join", "room": "circle"})).await;
        readers.push(reader);
    }
    const EACH: usize = 25;
    let mut senders = Vec::new();
    for index in 0..4 {
        let node = if index % 2 == 0 { a } else { b };
        let mut sender = node.member(&format!("sender{index}")).await;
        sender.ok(json!({"type": "join", "room": "circle"})).await;
        senders.push(sender);
    }
    let sends = senders.into_iter().enumerate().map(|(index, mut sender)| async move {
        for n in 0..EACH {
            sender.ok(json!({"type": "send", "room": "circle", "body": format!("{index}:{n}")})).await;
        }
        sender
    });
    let senders = futures_util::future::join_all(sends).await;
    let expected: Vec<i64> = (1..=(4 * EACH) as i64).collect();
    for reader in &mut readers {
        assert_eq!(seqs_heard(reader, "circle", 4 * EACH).await, expected, "every seq once, in order");
    }
    assert_eq!(seqs_heard(&mut owner, "circle", 4 * EACH).await, expected);
    drop(senders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_logouts_on_one_node_reach_sockets_on_the_other() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    // A room ban on node A takes ben out of the room on node B.
    let mut ben = b.member("ben").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "ben", "reason": "trial"})).await;
    let left = ben.event_of("member_left").await;
    assert_eq!((left["user"]["username"].as_str(), left["reason"].as_str()), (Some("ben"), Some("banned")));
    owner.ok(json!({"type": "send", "room": "circle", "body": "after the ban"})).await;
    ben.assert_quiet(Duration::from_millis(300)).await;
    ben.refused(json!({"type": "send", "room": "circle", "body": "let me back"}), "forbidden").await;
    // A server ban on node A closes every socket of mia on node B with 4003.
    let admin_token = a.user_with_role("admin", alongside::protocol::Role::Admin).await;
    let mut admin = a.client(&admin_token).await;
    let mut mia = b.member("mia").await;
    admin.ok(json!({"type": "ban", "scope": "server", "user": "mia", "reason": "spam"})).await;
    assert_eq!(mia.closed().await, 4003);
    // Logging out on node A closes that token's socket on node B with 4001.
    let token = b.user("zoe").await;
    let mut zoe = b.client(&token).await;
    let (status, body) =
        http(a.addr, "POST", "/api/v1/logout", &[("Authorization", &format!("Bearer {token}"))], None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(zoe.closed().await, 4001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_msg_id_resent_to_the_other_node_returns_the_original() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    let token = a.login("host").await;
    let mut on_b = b.client(&token).await;
    let first = owner.ok(json!({"type": "send", "room": "circle", "body": "once", "client_msg_id": "k-1"})).await;
    let again = on_b.ok(json!({"type": "send", "room": "circle", "body": "once", "client_msg_id": "k-1"})).await;
    assert_eq!(again["message"]["seq"], first["message"]["seq"]);
    assert_eq!(again["message"]["ts"], first["message"]["ts"]);
    let history = on_b.ok(json!({"type": "history", "room": "circle"})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_redis_closes_its_sockets_with_1013_and_says_503_until_it_is_back() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (node, other) = (cluster.node(0), cluster.node(1));
    let mut owner = node.room_owner("host", "circle").await;
    owner.ok(json!({"type": "send", "room": "circle", "body": "before"})).await;
    assert_eq!(http(node.addr, "GET", "/healthz", &[], None).await.0, 200);
    cluster.redis.cut();
    assert_eq!(owner.closed().await, 1013);
    let (status, body) = http(node.addr, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["bus"], "unavailable");
    assert_eq!(Client::try_connect(&node.ws_url(), None).await.err(), Some(503), "no new sockets meanwhile");
    cluster.redis.restore();
    for server in [node, other] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while http(server.addr, "GET", "/healthz", &[], None).await.0 != 200 {
            assert!(tokio::time::Instant::now() < deadline, "the node did not recover within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Resubscribed: a member on the other node hears the room again, and nothing sent
    // before is lost.
    let token = node.login("host").await;
    let mut back = node.client(&token).await;
    back.ok(json!({"type": "slow_mode", "room": "circle", "seconds": 60})).await;
    let mut reader = other.member("reader").await;
    let joined = reader.ok(json!({"type": "join", "room": "circle"})).await;
    assert_eq!(joined["messages"][0]["body"], "before", "{joined}");
    back.ok(json!({"type": "send", "room": "circle", "body": "after"})).await;
    let heard = reader.event_of("message").await;
    assert_eq!(
        (heard["message"]["seq"].as_i64(), heard["message"]["body"].as_str()),
        (Some(2), Some("after")),
        "{heard}"
    );
    // What the nodes share in Redis beside the bus is shared again: slow mode holds
    // across them, not only on each node.
    let token = node.login("reader").await;
    let mut reader_on_node = node.client(&token).await;
    reader.ok(json!({"type": "send", "room": "circle", "body": "one"})).await;
    let refused =
        reader_on_node.refused(json!({"type": "send", "room": "circle", "body": "two"}), "rate_limited").await;
    assert!(refused["message"].as_str().unwrap().contains("Slow mode"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_node_loses_no_acknowledged_message() {
    let Some(cluster) = Cluster::start(1).await else { return };
    let survivor = cluster.node(0);
    let redis = format!("redis://{}", cluster.redis.addr);
    let victim = Binary::start_on(&cluster.database.url, |command| {
        command.args(["--bus", &redis, "--cluster", &cluster.name, "--node-id", "victim"]);
    });
    let victim_addr = victim.addr;
    let node = TestServerAt(victim_addr);
    let token = node.user("writer").await;
    let mut writer = Client::connect(&victim.ws_url(), None).await;
    writer.ok(json!({"type": "auth", "token": token})).await;
    writer.ok(json!({"type": "create_room", "name": "journal"})).await;
    let mut acknowledged = Vec::new();
    for n in 0..40 {
        let reply = writer.ok(json!({"type": "send", "room": "journal", "body": format!("entry {n}")})).await;
        acknowledged.push(reply["message"]["seq"].as_i64().unwrap());
    }
    victim.kill_9();
    // Everything acknowledged by the killed node is there, read through the survivor.
    let token = survivor.login("writer").await;
    let mut reader = survivor.client(&token).await;
    let history = reader.ok(json!({"type": "history", "room": "journal", "limit": 100})).await;
    let stored: Vec<i64> = history["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(stored, acknowledged);
}

/// Registration and login against a node that is a separate process.
struct TestServerAt(SocketAddr);

impl TestServerAt {
    async fn user(&self, name: &str) -> String {
        let body = json!({"username": name, "password": format!("password-{name}")}).to_string();
        let (status, reply) = http(self.0, "POST", "/api/v1/register", &[], Some(&body)).await;
        assert_eq!(status, 201, "{reply}");
        let (status, reply) = http(self.0, "POST", "/api/v1/login", &[], Some(&body)).await;
        assert_eq!(status, 200, "{reply}");
        serde_json::from_str::<Value>(&reply).unwrap()["token"].as_str().unwrap().to_string()
    }
}

/// `members_online` of `room` as `client`'s node reports it in `rooms`.
async fn members_online(client: &mut Client, room: &str) -> i64 {
    let reply = client.ok(json!({"type": "rooms"})).await;
    let rooms = reply["rooms"].as_array().unwrap();
    rooms.iter().find(|r| r["name"] == room).map_or(0, |r| r["members_online"].as_i64().unwrap())
}

/// Waits until `members_online` of `room` reads `want` on `client`'s node.
async fn wait_for_online(client: &mut Client, room: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = members_online(client, room).await;
        if now == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "members_online stayed {now}, not {want}, for {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_online_counts_every_node_and_drops_a_killed_nodes_members() {
    // Presence lasts one second unless renewed, so a dead node's members go within two.
    let Some(cluster) = Cluster::start_with(1, |config| config.presence_ttl_s = 1.0).await else { return };
    let a = cluster.node(0);
    let mut owner = a.room_owner("host", "circle").await;
    let redis = format!("redis://{}", cluster.redis.addr);
    let b = Binary::start_on(&cluster.database.url, |command| {
        command.args(["--bus", &redis, "--cluster", &cluster.name, "--node-id", "node-b", "--presence-ttl-s", "1"]);
    });
    let token = TestServerAt(b.addr).user("ben").await;
    let mut ben = Client::connect(&b.ws_url(), None).await;
    ben.ok(json!({"type": "auth", "token": token})).await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    // One on each node; each node counts both.
    wait_for_online(&mut owner, "circle", 2).await;
    wait_for_online(&mut ben, "circle", 2).await;
    // The same member on both nodes is one member online.
    let token = a.login("ben").await;
    let _ben_on_a = a.client(&token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(members_online(&mut owner, "circle").await, 2);
    drop(_ben_on_a);
    b.kill_9();
    // ben's socket on node A closed too: only the host is left, once node B's
    // presence has expired.
    wait_for_online(&mut owner, "circle", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_holds_across_nodes() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    owner.ok(json!({"type": "slow_mode", "room": "circle", "seconds": 60})).await;
    let mut on_a = a.member("mia").await;
    on_a.ok(json!({"type": "join", "room": "circle"})).await;
    let token = b.login("mia").await;
    let mut on_b = b.client(&token).await;
    on_a.ok(json!({"type": "send", "room": "circle", "body": "one"})).await;
    let refused = on_b.refused(json!({"type": "send", "room": "circle", "body": "two"}), "rate_limited").await;
    assert!(refused["message"].as_str().unwrap().contains("Slow mode"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_lost_between_nodes_are_read_back_in_order() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "lossy").await;
    let mut ben = b.member("ben").await;
    ben.ok(json!({"type": "join", "room": "lossy"})).await;
    owner.ok(json!({"type": "send", "room": "lossy", "body": "1"})).await;
    assert_eq!(ben.event_of("message").await["message"]["seq"], 1);
    // Node B's hub never sees the next two, as if Redis dropped them on the way.
    ben.ok(json!({"type": "test_lose_messages", "count": 2})).await;
    for n in 2..=4 {
        owner.ok(json!({"type": "send", "room": "lossy", "body": n.to_string()})).await;
    }
    for n in 2..=4 {
        let message = ben.event_of("message").await["message"].clone();
        assert_eq!((message["seq"].as_i64(), message["body"].as_str()), (Some(n), Some(n.to_string().as_str())));
    }
    ben.assert_quiet(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_moves_from_sqlite_to_postgres_without_losing_a_message_or_a_seq() {
    let Some(postgres) = test_database::server() else { return };
    // A network with some history on SQLite.
    let mut old = TestServer::start_sqlite_with(|_| {}).await;
    let mut owner = old.room_owner("host", "circle").await;
    let mut ben = old.member("ben").await;
    ben.ok(json!({"type": "join", "room": "circle"})).await;
    let mut mia = old.member("mia").await;
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    for n in 1..=5 {
        ben.ok(json!({"type": "send", "room": "circle", "body": format!("hello number {n}"), "client_msg_id": format!("b{n}")}))
            .await;
    }
    ben.ok(json!({"type": "edit", "room": "circle", "seq": 2, "body": "hello, edited"})).await;
    owner.ok(json!({"type": "react", "room": "circle", "seq": 3, "emoji": "💙"})).await;
    mia.ok(json!({"type": "report", "room": "circle", "seq": 4, "reason": "unkind"})).await;
    owner.ok(json!({"type": "delete_message", "room": "circle", "seq": 4})).await;
    owner.ok(json!({"type": "ban", "room": "circle", "user": "mia", "reason": "unkind"})).await;
    let ban = mia.ok(json!({"type": "my_record"})).await["sanctions"][0]["id"].clone();
    mia.ok(json!({"type": "appeal", "sanction_id": ban, "text": "I was not unkind"})).await;
    let quiet =
        json!({"type": "create_room", "name": "quiet", "visibility": "private", "history_visibility": "since_join"});
    owner.ok(quiet).await;
    let code = owner.ok(json!({"type": "create_invite", "uses": 2})).await["invite"]["code"].clone();
    let before = owner.ok(json!({"type": "history", "room": "circle", "limit": 50})).await;
    // Stopped first, as docs/scaling.md says; its directory stays until the test ends.
    old.server.take().expect("running").shutdown().await;
    let from = format!("sqlite://{}", old.db_path.display());

    let database = test_database::create(&postgres).await;
    let copy = |to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_alongside"))
            .args(["copy", "--from", &from, "--to", to])
            .output()
            .expect("run alongside copy")
    };
    let done = copy(&database.url);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains("5 messages") && said.contains("3 users"), "{said}");
    let again = copy(&database.url);
    assert!(!again.status.success(), "a second copy into a network with data is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));

    // The same network on PostgreSQL: same passwords, same history, seqs go on.
    let mut config = test_config(&database.url);
    config.registration = alongside::config::Registration::Invite;
    let new = TestServer::start_config(config).await;
    let token = new.login("host").await;
    let mut host = new.client(&token).await;
    let after = host.ok(json!({"type": "history", "room": "circle", "limit": 50})).await;
    assert_eq!(after["messages"], before["messages"], "every message as it was");
    let mut ben = new.client(&new.login("ben").await).await;
    let resent =
        ben.ok(json!({"type": "send", "room": "circle", "body": "hello number 5", "client_msg_id": "b5"})).await;
    assert_eq!(resent["message"]["seq"], 5, "a resend from before the move is still known");
    let next = ben.ok(json!({"type": "send", "room": "circle", "body": "first on postgres"})).await;
    assert_eq!(next["message"]["seq"], 6);
    let found = ben.ok(json!({"type": "search", "query": "edited"})).await;
    assert_eq!(found["messages"][0]["seq"], 2);
    let reports = host.ok(json!({"type": "reports", "room": "circle"})).await;
    assert_eq!(reports["reports"][0]["message"]["body"], "hello number 4", "the evidence moved too");
    let mut mia = new.client(&new.login("mia").await).await;
    mia.refused(json!({"type": "join", "room": "circle"}), "banned").await;
    // Appeals, private rooms and invite codes moved too.
    let appeals = host.ok(json!({"type": "appeals", "room": "circle"})).await;
    assert_eq!(appeals["appeals"][0]["text"], "I was not unkind", "{appeals}");
    let rooms = host.ok(json!({"type": "rooms"})).await;
    let moved = rooms["rooms"].as_array().unwrap().iter().find(|room| room["name"] == "quiet").cloned();
    let moved = moved.expect("the private room");
    assert_eq!((&moved["visibility"], &moved["history_visibility"]), (&json!("private"), &json!("since_join")));
    let rooms = ben.ok(json!({"type": "rooms"})).await;
    assert!(rooms["rooms"].as_array().unwrap().iter().all(|room| room["name"] != "quiet"), "still private: {rooms}");
    // New accounts (by the copied invite code) and rooms get ids past the copied ones.
    let newcomer = json!({"username": "newcomer", "password": "password-newcomer", "invite": code});
    assert_eq!(new.post("/api/v1/register", &newcomer).await.0, 201);
    host.ok(json!({"type": "create_room", "name": "second"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutes_locks_role_changes_and_new_rooms_on_one_node_reach_the_other() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    let mut mia = b.member("mia").await;
    mia.ok(json!({"type": "join", "room": "circle"})).await;
    // A mute on node A: node B refuses mia's send at once after the reply.
    owner.ok(json!({"type": "mute", "room": "circle", "user": "mia", "duration_s": 600, "reason": "a pause"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = mia.request(json!({"type": "send", "room": "circle", "body": "still here"})).await;
        if reply["code"] == "muted" {
            break;
        }
        // The mute travels through Redis: node B may answer before it arrives, never after.
        assert!(tokio::time::Instant::now() < deadline, "node B never applied the mute: {reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    owner.ok(json!({"type": "unmute", "room": "circle", "user": "mia"})).await;
    // A lock on node A: members on node B hear it and may not send.
    owner.ok(json!({"type": "lock", "room": "circle", "locked": true})).await;
    loop {
        let event = mia.event().await;
        if event["type"] == "room_updated" && event["room"]["locked"] == true {
            break;
        }
    }
    let refusal = mia.refused(json!({"type": "send", "room": "circle", "body": "hello"}), "forbidden").await;
    assert!(refusal["message"].as_str().unwrap().contains("locked"), "{refusal}");
    // A role given with the command line reaches mia's socket on node B.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alongside"))
        .args(["user", "set-role", "mia", "moderator", "--database", &cluster.database.url])
        .output()
        .expect("run alongside user set-role");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    loop {
        let event = mia.event().await;
        if event["type"] == "user_updated" {
            assert_eq!(event["user"]["role"], "moderator");
            break;
        }
    }
    // A room created on node A is announced to every socket on node B.
    owner.ok(json!({"type": "create_room", "name": "second"})).await;
    loop {
        let event = mia.event().await;
        if event["type"] == "room_created" {
            assert_eq!(event["room"]["name"], "second");
            break;
        }
    }
    // Each of those reached mia once, not once per node.
    mia.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_postgres_acknowledges_nothing_says_503_and_recovers() {
    let Some(postgres) = test_database::server() else { return };
    let database = test_database::create(&postgres).await;
    let (proxy, url) = postgres_through_proxy(&database.url).await;
    let node = TestServer::start_config(test_config(&url)).await;
    let mut owner = node.room_owner("host", "circle").await;
    owner.ok(json!({"type": "send", "room": "circle", "body": "before", "client_msg_id": "m1"})).await;
    proxy.cut();
    // Not one `ok` while the database cannot be reached: each send is refused plainly.
    for n in 0..3 {
        owner
            .refused(
                json!({"type": "send", "room": "circle", "body": "during", "client_msg_id": format!("d{n}")}),
                "internal",
            )
            .await;
    }
    let (status, body) = http(node.addr, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["store"], "unavailable");
    proxy.restore();
    let deadline = tokio::time::Instant::now() + WAIT;
    while http(node.addr, "GET", "/healthz", &[], None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the node did not recover within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client resends what was refused; nothing was half stored, no seq was skipped.
    for n in 0..3 {
        owner.ok(json!({"type": "send", "room": "circle", "body": "during", "client_msg_id": format!("d{n}")})).await;
    }
    let history = owner.ok(json!({"type": "history", "room": "circle", "limit": 10})).await;
    let seqs: Vec<i64> = history["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_warnings_are_shaped_on_every_node_by_preferences_set_on_any() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "circle").await;
    let mut on_a = a.member("mia").await;
    on_a.ok(json!({"type": "join", "room": "circle"})).await;
    let token = b.login("mia").await;
    let mut on_b = b.client(&token).await;
    // Set on node A; the socket on node B follows.
    on_a.ok(json!({"type": "set_preferences", "cw": {"violence": "hide"}})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        owner.ok(json!({"type": "send", "room": "circle", "body": "he hit me", "cw": ["violence"]})).await;
        let heard = on_b.event_of("message").await;
        if heard["message"]["hidden"] == true {
            assert_eq!(heard["message"].get("body"), None, "{heard}");
            break;
        }
        assert_eq!(heard["message"]["collapsed"], true, "before the change arrives, the default: {heard}");
        assert!(tokio::time::Instant::now() < deadline, "node B never applied the preference");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A socket opened on node B afterwards starts with them.
    let token = b.login("mia").await;
    let mut later = b.client(&token).await;
    let seq = owner.ok(json!({"type": "send", "room": "circle", "body": "again", "cw": ["violence"]})).await["message"]
        ["seq"]
        .clone();
    loop {
        let heard = later.event_of("message").await;
        if heard["message"]["seq"] == seq {
            assert_eq!(heard["message"], json!({"seq": seq, "room": "circle", "hidden": true, "cw": ["violence"]}));
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_made_on_one_node_holds_on_the_other() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let _owner = a.room_owner("host", "circle").await;
    let mut troll = a.member("troll").await;
    troll.ok(json!({"type": "join", "room": "circle"})).await;
    let mut ben_a = a.member("ben").await;
    ben_a.ok(json!({"type": "join", "room": "circle"})).await;
    let token = b.login("ben").await;
    let mut ben_b = b.client(&token).await;
    ben_a.ok(json!({"type": "block", "user": "troll"})).await;
    // Node B follows as soon as the block reaches it; until then the words may still come.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seq = troll.ok(json!({"type": "send", "room": "circle", "body": "words"})).await["message"]["seq"].clone();
        let heard = loop {
            let event = ben_b.event_of("message").await;
            if event["message"]["seq"] == seq {
                break event;
            }
        };
        if heard["message"]["blocked"] == true {
            assert_eq!(heard["message"].get("body"), None, "{heard}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node B never applied the block");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Read through node B: stubs, whoever serves it.
    let history = ben_b.ok(json!({"type": "history", "room": "circle"})).await;
    assert!(history["messages"].as_array().unwrap().iter().all(|m| m["blocked"] == true), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_request_on_one_node_is_answered_on_the_other_and_the_room_follows() {
    let Some(cluster) = Cluster::start(2).await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut owner = a.room_owner("host", "lobby").await;
    owner.ok(json!({"type": "create_room", "name": "quiet", "visibility": "private"})).await;
    let mut ben = b.member("ben").await;
    assert_eq!(ben.ok(json!({"type": "join", "room": "quiet"})).await["pending"], true);
    assert_eq!(owner.event_of("join_request").await["user"]["username"], "ben", "heard on the other node");
    owner.ok(json!({"type": "approve_join", "room": "quiet", "user": "ben", "approve": true})).await;
    assert_eq!(ben.event_of("member_joined").await["room"], "quiet");
    // Ben's sockets on node B now receive the room.
    let seq =
        owner.ok(json!({"type": "send", "room": "quiet", "body": "welcome, ben"})).await["message"]["seq"].clone();
    let heard = ben.event_of("message").await;
    assert_eq!((&heard["message"]["seq"], &heard["message"]["body"]), (&seq, &json!("welcome, ben")));
}
