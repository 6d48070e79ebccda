//! The bus between nodes: Redis pub/sub on one channel per network
//! (`alongside:<cluster>:bus`), one subscription per node.
//!
//! Every message goes out through Redis, this node's own too, and the hub delivers only
//! what comes back: every node applies the same messages in the order Redis hands them
//! out, so effects (subscribe, unsubscribe, mute, room changes) happen in the same order
//! everywhere, and a single node behind this bus behaves as one behind the in-process
//! bus. Redis pub/sub is at-most-once; what it loses the hub reads back from the store
//! (see `hub`).
//!
//! One task owns both connections. It publishes in batches (one round trip for all the
//! messages waiting) and reads the subscription in between. When Redis stops answering
//! (a failed publish or ping, the subscription ends, or 65,536 publishes wait because
//! Redis takes them more slowly than the node commits), the node is **unhealthy**: it
//! closes every socket with 1013 so clients reconnect, to a healthy node if there is
//! one, and catch up from history; `/healthz` answers 503; new sockets are refused; and
//! the task reconnects with a growing pause until Redis answers, then resubscribes.
//! Nothing sent while the bus was down is lost: it was stored before it was published.

use super::{wire, Bus, BusMessage, Subscriber};
use crate::protocol::close_code;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the connection is asked whether it is alive while nothing else is sent.
const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a publish or ping may take before the bus counts as lost.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Most messages published in one round trip.
const MAX_BATCH: usize = 512;
/// Most messages waiting to be published. A Redis that answers pings but takes
/// publishes more slowly than the node commits would otherwise let the queue grow
/// without end; a full queue counts as a lost bus.
const MAX_WAITING: usize = 64 * 1024;

/// The Redis bus of one node.
pub struct RedisBus {
    outgoing: mpsc::Sender<Vec<u8>>,
    /// Set when a publish found the queue full: the task ends the connection.
    behind: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    /// Messages dropped because the bus was down (they are in the store).
    dropped: Arc<AtomicU64>,
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the bus at {url}: {cause}")]
pub struct BusError {
    url: String,
    cause: String,
}

/// The channel a network's nodes share.
pub fn channel(cluster: &str) -> String {
    format!("alongside:{cluster}:bus")
}

struct Connections {
    publish: redis::aio::MultiplexedConnection,
    subscription: redis::aio::PubSubStream,
}

async fn connect(client: &redis::Client, channel: &str) -> redis::RedisResult<Connections> {
    let publish = tokio::time::timeout(ANSWER_WITHIN, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let mut pubsub = tokio::time::timeout(ANSWER_WITHIN, client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    pubsub.subscribe(channel).await?;
    Ok(Connections { publish, subscription: pubsub.into_on_message() })
}

impl RedisBus {
    /// Connects and subscribes (failing at once if Redis cannot be reached, so a
    /// misconfigured node does not start), then runs until `shutdown`.
    pub async fn start(
        url: &str,
        cluster: &str,
        hub: Arc<dyn Subscriber>,
        publish_seconds: prometheus_client::metrics::histogram::Histogram,
        shutdown: CancellationToken,
    ) -> Result<Arc<RedisBus>, BusError> {
        let failed = |cause: String| BusError { url: crate::store::redacted(url), cause };
        let client = redis::Client::open(url).map_err(|err| failed(err.to_string()))?;
        let channel = channel(cluster);
        let connections = connect(&client, &channel).await.map_err(|err| failed(err.to_string()))?;
        let (outgoing, receiver) = mpsc::channel(MAX_WAITING);
        let bus = Arc::new(RedisBus {
            outgoing,
            behind: Arc::new(AtomicBool::new(false)),
            healthy: Arc::new(AtomicBool::new(true)),
            dropped: Arc::new(AtomicU64::new(0)),
        });
        let task = Task {
            client,
            channel,
            hub,
            publish_seconds,
            healthy: bus.healthy.clone(),
            dropped: bus.dropped.clone(),
            behind: bus.behind.clone(),
        };
        tokio::spawn(task.run(connections, receiver, shutdown));
        Ok(bus)
    }
}

impl Bus for RedisBus {
    fn publish(&self, message: BusMessage) {
        if !self.healthy.load(Relaxed) {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        match self.outgoing.try_send(wire::encode(&message)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Relaxed);
                self.behind.store(true, Relaxed);
            }
            // The task has stopped: only in the last moments of shutdown.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }
}

struct Task {
    client: redis::Client,
    channel: String,
    hub: Arc<dyn Subscriber>,
    /// Round trips of published batches (`alongside_bus_publish_seconds`).
    publish_seconds: prometheus_client::metrics::histogram::Histogram,
    healthy: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    behind: Arc<AtomicBool>,
}

/// Why a connected spell ended.
enum Ended {
    Shutdown,
    Lost(String),
}

impl Task {
    async fn run(
        self,
        mut connections: Connections,
        mut outgoing: mpsc::Receiver<Vec<u8>>,
        shutdown: CancellationToken,
    ) {
        loop {
            match self.serve(&mut connections, &mut outgoing, &shutdown).await {
                Ended::Shutdown => return,
                Ended::Lost(cause) => {
                    self.healthy.store(false, Relaxed);
                    tracing::error!(error = %cause, "lost the bus: closing every socket (1013) until it is back");
                    self.hub.close_all(close_code::TRY_AGAIN_LATER, "the server lost its message bus; reconnect");
                }
            }
            let mut pause = Duration::from_millis(250);
            connections = loop {
                // What was published while down is dropped: it is in the store, and
                // every socket that would have received it was closed.
                while let Ok(_lost) = outgoing.try_recv() {
                    self.dropped.fetch_add(1, Relaxed);
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                match connect(&self.client, &self.channel).await {
                    Ok(connections) => break connections,
                    Err(err) => {
                        tracing::debug!(error = %err, "the bus is still unreachable");
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            };
            // Sockets opened from now on hear everything: messages stored meanwhile
            // reach them through history, and the hub fills any gap it sees.
            let dropped = self.dropped.swap(0, Relaxed);
            self.behind.store(false, Relaxed);
            self.healthy.store(true, Relaxed);
            tracing::warn!(dropped, "the bus is back; taking sockets again");
        }
    }

    /// Publishes and delivers until the connection fails or the server stops.
    async fn serve(
        &self,
        connections: &mut Connections,
        outgoing: &mut mpsc::Receiver<Vec<u8>>,
        shutdown: &CancellationToken,
    ) -> Ended {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ended::Shutdown,
                message = connections.subscription.next() => match message {
                    Some(message) => match wire::decode(message.get_payload_bytes()) {
                        Ok(message) => self.hub.dispatch(&message),
                        Err(err) => tracing::warn!(error = %err, "dropped a bus message"),
                    },
                    None => return Ended::Lost("the subscription ended".into()),
                },
                received = outgoing.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        return Ended::Shutdown;
                    }
                    let mut pipe = redis::pipe();
                    for message in batch.drain(..) {
                        pipe.publish(&self.channel, message).ignore();
                    }
                    let started = std::time::Instant::now();
                    let published = tokio::time::timeout(ANSWER_WITHIN, pipe.exec_async(&mut connections.publish)).await;
                    match published {
                        Ok(Ok(())) => self.publish_seconds.observe(started.elapsed().as_secs_f64()),
                        Ok(Err(err)) => return Ended::Lost(format!("publishing failed: {err}")),
                        Err(_) => return Ended::Lost("publishing took too long".into()),
                    }
                }
                _ = ping.tick() => {
                    if self.behind.load(Relaxed) {
                        return Ended::Lost(format!("Redis fell {MAX_WAITING} messages behind"));
                    }
                    let answer: Result<redis::RedisResult<String>, _> =
                        tokio::time::timeout(ANSWER_WITHIN, redis::cmd("PING").query_async(&mut connections.publish)).await;
                    match answer {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return Ended::Lost(format!("ping failed: {err}")),
                        Err(_) => return Ended::Lost("ping took too long".into()),
                    }
                }
            }
        }
    }
}
