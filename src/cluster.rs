//! State the nodes of a network share in Redis beside the bus: who is online on the
//! other nodes, slow mode per member, and failed logins per account.
//!
//! **Presence.** Every node writes what it has online (room → users) under its own key,
//! `alongside:<cluster>:presence:<node>`, every quarter of `presence_ttl_s`, with that
//! time to live, and reads the other nodes' keys at the same pace. A node that stops
//! (killed, cut off) stops renewing its key: within `presence_ttl_s` plus one renewal
//! its members no longer count anywhere. A node shut down gracefully deletes its key.
//! Counts and `online` lists join this node's live view with the others' last
//! snapshots; arrivals and departures are announced only by a member's first node in
//! and last node out, as far as the snapshots tell.
//!
//! **Slow mode** is a key per room and member set with `NX` and the interval as its
//! time to live: one send per interval, whichever node takes it. **Failed logins** per
//! account count in a key that expires with the login window, so the per-account delay
//! holds whichever node an attacker tries. Per-address limits stay per node.
//!
//! Redis failing here never refuses a member: each check falls back to the node's own
//! view and logs it (the bus reports the outage and closes sockets anyway). Every call
//! has [`ANSWER_WITHIN`] to answer, and a connection that broke is opened again on the
//! next call, so once Redis is back the network shares its state again.

use crate::hub::Hub;
use crate::protocol::{Role, User};
use crate::store::{RoomId, UserId};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use redis::RedisResult;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one exchange with Redis may take before it counts as failed (a send waits
/// on the slow-mode claim, so a Redis that hangs must not hang the send).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Other nodes' online members, by room.
type Remote = HashMap<String, HashMap<UserId, User>>;

/// This node's handle on the shared state.
pub struct Cluster {
    client: redis::Client,
    /// The open connection; `None` after it broke, until the next call opens one.
    conn: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    node: String,
    ttl: Duration,
    remote: RwLock<Arc<Remote>>,
}

impl Cluster {
    /// Connects to the Redis at `url` for the network `cluster`.
    pub async fn connect(url: &str, cluster: &str, node: &str, ttl: Duration) -> RedisResult<Arc<Cluster>> {
        let client = redis::Client::open(url)?;
        let conn = within(client.get_multiplexed_async_connection()).await?;
        Ok(Arc::new(Cluster {
            client,
            conn: Mutex::new(Some(conn)),
            prefix: format!("alongside:{cluster}:"),
            node: node.to_string(),
            ttl: ttl.max(Duration::from_millis(400)),
            remote: RwLock::new(Arc::default()),
        }))
    }

    /// Runs `work` on the connection (opening one if the last broke) within
    /// [`ANSWER_WITHIN`]; a connection that failed or did not answer is dropped, so the
    /// next call starts afresh.
    async fn run<T, F, Fut>(&self, work: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let open = self.conn.lock().expect("connection lock").clone();
        let conn = match open {
            Some(conn) => conn,
            None => {
                let conn = within(self.client.get_multiplexed_async_connection()).await?;
                *self.conn.lock().expect("connection lock") = Some(conn.clone());
                conn
            }
        };
        let result = within(work(conn)).await;
        if let Err(err) = &result {
            if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_unrecoverable_error() {
                *self.conn.lock().expect("connection lock") = None;
            }
        }
        result
    }

    fn presence_key(&self, node: &str) -> String {
        format!("{}presence:{node}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// Renews this node's presence and reads the others' until `stop`, then deletes
    /// this node's key.
    pub fn spawn_presence(self: &Arc<Self>, hub: Hub, stop: CancellationToken) {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(cluster.ttl / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                if let Err(err) = cluster.exchange(&hub).await {
                    tracing::warn!(error = %err, "cannot share presence with the other nodes");
                }
            }
            let (key, nodes, node) = (cluster.presence_key(&cluster.node), cluster.nodes_key(), cluster.node.clone());
            let gone = cluster.run(|mut conn| async move {
                let () = conn.del(key).await?;
                conn.zrem(nodes, node).await
            });
            let _: RedisResult<()> = gone.await;
        });
    }

    /// One renewal: write ours, read theirs.
    async fn exchange(&self, hub: &Hub) -> RedisResult<()> {
        let now = crate::protocol::now_ms();
        let ttl_ms = self.ttl.as_millis() as i64;
        let snapshot = encode_presence(&hub.online_by_room());
        let (ours, nodes_key, node) = (self.presence_key(&self.node), self.nodes_key(), self.node.clone());
        let snapshots = self
            .run(|mut conn| async move {
                let () = redis::pipe()
                    .cmd("SET")
                    .arg(ours)
                    .arg(snapshot)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore()
                    .zadd(&nodes_key, &node, now)
                    .ignore()
                    .zrembyscore(&nodes_key, "-inf", now - 10 * ttl_ms)
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                let nodes: Vec<String> = conn.zrangebyscore(&nodes_key, now - 2 * ttl_ms, "+inf").await?;
                let others: Vec<String> = nodes.into_iter().filter(|other| *other != node).collect();
                if others.is_empty() {
                    return Ok(Vec::new());
                }
                let keys: Vec<String> = others.iter().map(|other| self.presence_key(other)).collect();
                let snapshots: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
                Ok(snapshots)
            })
            .await?;
        let mut remote = Remote::new();
        for snapshot in snapshots.into_iter().flatten() {
            decode_presence(&snapshot, &mut remote);
        }
        *self.remote.write().expect("presence lock") = Arc::new(remote);
        Ok(())
    }

    /// The other nodes' online members of `room`.
    pub fn remote(&self) -> Arc<Remote> {
        self.remote.read().expect("presence lock").clone()
    }

    /// Takes `user`'s one send per `interval` in `room`, across nodes; the wait left
    /// when it was taken already.
    pub async fn claim_send(&self, room: RoomId, user: UserId, interval: Duration) -> RedisResult<Option<Duration>> {
        let key = format!("{}slow:{}:{}", self.prefix, room.0, user.0);
        self.run(|mut conn| async move {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(interval.as_millis().max(1) as u64)
                .query_async(&mut conn)
                .await?;
            if taken.is_some() {
                return Ok(None);
            }
            let left: i64 = conn.pttl(&key).await?;
            Ok(Some(Duration::from_millis(left.max(1) as u64)))
        })
        .await
    }

    /// Failed logins to `account` from anywhere in the current window.
    pub async fn login_failures(&self, account: &str) -> RedisResult<u32> {
        let key = format!("{}login-failures:{account}", self.prefix);
        let count: Option<u32> = self.run(|mut conn| async move { conn.get(key).await }).await?;
        Ok(count.unwrap_or(0))
    }

    /// Counts a failed login to `account`; the count expires `window` after the first.
    pub async fn login_failed(&self, account: &str, window: Duration) -> RedisResult<()> {
        let key = format!("{}login-failures:{account}", self.prefix);
        self.run(|mut conn| async move {
            redis::pipe()
                .incr(&key, 1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(window.as_millis() as u64)
                .arg("NX")
                .ignore()
                .query_async(&mut conn)
                .await
        })
        .await
    }
}

/// `fut`, or a timeout error after [`ANSWER_WITHIN`].
async fn within<T>(fut: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(ANSWER_WITHIN, fut)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// `{"room": [[id, "username", "display name", "role"], ...]}`.
fn encode_presence(online: &[(String, Vec<(UserId, User)>)]) -> String {
    let rooms: serde_json::Map<String, serde_json::Value> = online
        .iter()
        .map(|(room, users)| {
            let users = users
                .iter()
                .map(|(id, user)| serde_json::json!([id.0, user.username, user.display_name, user.role.as_str()]))
                .collect();
            (room.clone(), serde_json::Value::Array(users))
        })
        .collect();
    serde_json::Value::Object(rooms).to_string()
}

fn decode_presence(snapshot: &str, into: &mut Remote) {
    let Ok(serde_json::Value::Object(rooms)) = serde_json::from_str(snapshot) else {
        tracing::warn!("ignored a presence snapshot this node cannot read");
        return;
    };
    for (room, users) in rooms {
        let entry = into.entry(room).or_default();
        for user in users.as_array().into_iter().flatten() {
            let (Some(id), Some(username), Some(display_name), Some(role)) =
                (user[0].as_i64(), user[1].as_str(), user[2].as_str(), user[3].as_str().and_then(Role::parse))
            else {
                continue;
            };
            entry.insert(
                UserId(id),
                User { username: username.to_string(), display_name: display_name.to_string(), role },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis `ALONGSIDE_TEST_REDIS` names, or `None` (with a note) when unset.
    fn redis() -> Option<String> {
        let url = std::env::var("ALONGSIDE_TEST_REDIS").ok().filter(|url| !url.is_empty());
        if url.is_none() {
            eprintln!("ALONGSIDE_TEST_REDIS is not set: the Redis case does not run");
        }
        url
    }

    #[tokio::test]
    async fn failed_logins_and_slow_mode_count_on_every_node() {
        let Some(url) = redis() else { return };
        let network = format!("unit-{}-{}", std::process::id(), crate::protocol::now_ms());
        let ttl = Duration::from_secs(10);
        let a = Cluster::connect(&url, &network, "a", ttl).await.expect("redis answers");
        let b = Cluster::connect(&url, &network, "b", ttl).await.expect("redis answers");
        for _ in 0..3 {
            a.login_failed("ada", Duration::from_secs(60)).await.unwrap();
        }
        b.login_failed("ada", Duration::from_secs(60)).await.unwrap();
        assert_eq!(b.login_failures("ada").await.unwrap(), 4, "failures on either node count for the account");
        assert_eq!(a.login_failures("ben").await.unwrap(), 0);
        let interval = Duration::from_secs(30);
        assert_eq!(a.claim_send(RoomId(1), UserId(7), interval).await.unwrap(), None);
        let wait = b.claim_send(RoomId(1), UserId(7), interval).await.unwrap().expect("taken on node a");
        assert!(wait > Duration::from_secs(25) && wait <= interval, "{wait:?}");
        assert_eq!(b.claim_send(RoomId(2), UserId(7), interval).await.unwrap(), None, "another room is free");
    }

    #[tokio::test]
    async fn a_node_that_stops_renewing_stops_counting() {
        let Some(url) = redis() else { return };
        let network = format!("unit-{}-{}", std::process::id(), crate::protocol::now_ms());
        let ttl = Duration::from_millis(400);
        let (a, b) = (
            Cluster::connect(&url, &network, "a", ttl).await.expect("redis answers"),
            Cluster::connect(&url, &network, "b", ttl).await.expect("redis answers"),
        );
        let ada = User { username: "ada".into(), display_name: "Ada".into(), role: Role::Member };
        let mut conn = a.conn.lock().unwrap().clone().unwrap();
        let snapshot = encode_presence(&[("circle".into(), vec![(UserId(1), ada)])]);
        let _: () = redis::cmd("SET")
            .arg(a.presence_key("a"))
            .arg(snapshot)
            .arg("PX")
            .arg(400)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = conn.zadd(a.nodes_key(), "a", crate::protocol::now_ms()).await.unwrap();
        let hub = Hub::new(Arc::default(), 0);
        b.exchange(&hub).await.unwrap();
        assert!(b.remote()["circle"].contains_key(&UserId(1)), "node b sees node a's member");
        // Node a renews nothing more: its entry expires with its time to live.
        tokio::time::sleep(Duration::from_millis(600)).await;
        b.exchange(&hub).await.unwrap();
        assert!(b.remote().get("circle").is_none_or(|users| users.is_empty()), "a dead node's members are gone");
    }

    #[test]
    fn a_snapshot_reads_back_as_written_and_snapshots_join() {
        let ada = User { username: "ada".into(), display_name: "Ada \"A\"".into(), role: Role::Moderator };
        let ben = User { username: "ben".into(), display_name: "Ben".into(), role: Role::Member };
        let mut remote = Remote::new();
        decode_presence(&encode_presence(&[("circle".into(), vec![(UserId(1), ada.clone())])]), &mut remote);
        decode_presence(&encode_presence(&[("circle".into(), vec![(UserId(2), ben.clone())])]), &mut remote);
        decode_presence("not json", &mut remote);
        let circle = &remote["circle"];
        assert_eq!((circle.get(&UserId(1)), circle.get(&UserId(2))), (Some(&ada), Some(&ben)));
    }
}
