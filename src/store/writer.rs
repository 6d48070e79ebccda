//! The group-commit writer every backend shares: one task per node takes every
//! `insert_message` (and heartbeat) waiting at that moment and hands them to the
//! backend's [`BatchWriter`] as one transaction, so a burst of sends costs one commit
//! instead of one each. The listener hears of new messages in seq order, after the
//! commit and before any sender is answered.

use super::{CommitListener, NewMessage, StoreError, StoredMessage, WriteHealth};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How many jobs one group commit takes at most.
pub(super) const MAX_BATCH: usize = 512;

/// How long a successful commit counts as proof that writes get through; a health
/// check after that writes a heartbeat.
pub(super) const PROVEN_FOR: Duration = Duration::from_secs(5);

/// How often the writer tries a heartbeat of its own while writes are failing, so the
/// server notices by itself that the database takes writes again.
const RETRY_WHILE_FAILING: Duration = Duration::from_secs(1);

/// What the writer task takes: a message to store, or a heartbeat.
pub(super) enum Job {
    /// A `send`, answered with the stored message once its group commit is done.
    Message(Box<NewMessage>, oneshot::Sender<Result<StoredMessage, StoreError>>),
    /// A heartbeat: rides along with the next group commit and is answered with the
    /// heartbeat counter it committed.
    Heartbeat(oneshot::Sender<Result<i64, StoreError>>),
}

/// What one group commit stored: the messages in job order, and the heartbeat count
/// if the batch carried a heartbeat.
pub(super) struct Batch {
    pub(super) messages: Vec<StoredMessage>,
    pub(super) heartbeat: Option<i64>,
}

/// A backend's way of storing a batch in one transaction: every message job gets a
/// stored message (in job order), all or nothing.
#[async_trait]
pub(super) trait BatchWriter: Send + Sync + 'static {
    async fn write_batch(&self, jobs: &[Job]) -> Result<Batch, sqlx::Error>;

    /// The heartbeat counter as a read connection sees it.
    async fn read_heartbeat(&self) -> Result<i64, sqlx::Error>;
}

/// The handle a store keeps on its writer task.
pub(super) struct Writer {
    /// Bounded: when the database falls behind, senders wait here (each holds its own
    /// socket's request), which is the backpressure we want. `None` once closed.
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// One heartbeat at a time: health checks that arrive together share it.
    heartbeat: tokio::sync::Mutex<()>,
    batches: Arc<dyn BatchWriter>,
    health: Arc<WriteHealth>,
}

impl Writer {
    pub(super) fn spawn(
        batches: Arc<dyn BatchWriter>,
        health: Arc<WriteHealth>,
        listener: Arc<dyn CommitListener>,
        metrics: Arc<Metrics>,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        let task = tokio::spawn(run(batches.clone(), health.clone(), receiver, listener, metrics));
        Writer {
            jobs: std::sync::Mutex::new(Some(sender)),
            task: std::sync::Mutex::new(Some(task)),
            heartbeat: tokio::sync::Mutex::new(()),
            batches,
            health,
        }
    }

    async fn submit(&self, job: Job) -> Result<(), StoreError> {
        let sender = self.jobs.lock().expect("jobs lock").clone().ok_or(StoreError::Closed)?;
        sender.send(job).await.map_err(|_| StoreError::Closed)
    }

    /// Stores a message through the group commit.
    pub(super) async fn insert_message(&self, message: NewMessage) -> Result<StoredMessage, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Message(Box::new(message), reply)).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes a heartbeat through the writer and reads it back through a read
    /// connection: proof that a commit now reaches the database and readers see it.
    pub(super) async fn heartbeat(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.heartbeat.lock().await;
        if self.health.proven_within(PROVEN_FOR) {
            // Another check proved it while this one waited.
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Heartbeat(reply)).await?;
        let written = answer.await.map_err(|_| StoreError::Closed)??;
        let read = self.batches.read_heartbeat().await?;
        if read < written {
            return Err(StoreError::Unavailable(format!(
                "heartbeat {written} was committed but a reader sees {read}: commits are not reaching the database"
            )));
        }
        Ok(())
    }

    /// Lets the writer finish the sends already queued, then waits for it to stop.
    pub(super) async fn close(&self) {
        self.jobs.lock().expect("jobs lock").take();
        let task = self.task.lock().expect("writer lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The group-commit loop: take every waiting job, store them in one transaction, tell
/// the listener about the new messages in seq order, then answer each job. While writes
/// fail, it also tries a heartbeat of its own every second, so health comes back without
/// waiting for a client to write.
async fn run(
    batches: Arc<dyn BatchWriter>,
    health: Arc<WriteHealth>,
    mut receiver: mpsc::Receiver<Job>,
    listener: Arc<dyn CommitListener>,
    metrics: Arc<Metrics>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // Both are cancel-safe: a job is either received or left in the channel.
        let received = tokio::select! {
            received = receiver.recv_many(&mut jobs, MAX_BATCH) => received,
            () = health.retry_due(RETRY_WHILE_FAILING) => {
                // Nobody waits for this one's answer.
                jobs.push(Job::Heartbeat(oneshot::channel().0));
                1
            }
        };
        if received == 0 {
            return;
        }
        let started = Instant::now();
        match batches.write_batch(&jobs).await {
            Ok(batch) => {
                let new = batch.messages.iter().filter(|stored| !stored.duplicate).count();
                metrics.store_commit(started.elapsed(), new);
                let mut stored = batch.messages.into_iter();
                for job in jobs.drain(..) {
                    match job {
                        Job::Message(_, reply) => {
                            let stored = stored.next().expect("one stored message per message job");
                            if !stored.duplicate {
                                listener.message_committed(&stored.message);
                            }
                            // A sender that went away still had its message stored.
                            let _ = reply.send(Ok(stored));
                        }
                        Job::Heartbeat(reply) => {
                            let _ = reply.send(Ok(batch.heartbeat.expect("a batch with a heartbeat beats")));
                        }
                    }
                }
            }
            Err(err) => {
                metrics.store_commit(started.elapsed(), 0);
                let n_messages = jobs.iter().filter(|job| matches!(job, Job::Message(..))).count();
                if n_messages > 0 {
                    tracing::error!(error = %err, n = n_messages, "group commit failed; no message of the batch was stored");
                }
                for job in jobs.drain(..) {
                    let failure = StoreError::NotStored(err.to_string());
                    match job {
                        Job::Message(_, reply) => drop(reply.send(Err(failure))),
                        Job::Heartbeat(reply) => drop(reply.send(Err(failure))),
                    }
                }
            }
        }
    }
}
