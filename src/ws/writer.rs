//! The writer of one socket: outbox → socket, pings, write coalescing and the
//! close frame; and the socket's write half as the outbox may use it to write a frame
//! at once while the writer is idle. Generic over the sink, so its timing is tested with
//! paused time and a recording sink instead of a network.

use crate::hub::{Closer, Outbox, Tried, Wake, Wire};
use crate::protocol::close_code;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// The socket's write half, shared by the writer and the outbox's pushes. Each
/// use holds the lock for one poll, never across a wait.
struct Shared<S>(Mutex<S>);

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, S> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A push writes through here only while the writer is idle (see [`Outbox`]), so the
/// writer is never waiting on the socket when this polls it with a waker that does
/// nothing; whatever this leaves half-done, it hands to the writer.
impl<S> Wire for Shared<S>
where
    S: Sink<WsMessage> + Unpin + Send,
{
    fn try_write(&self, frame: &Utf8Bytes) -> Tried {
        let Ok(mut sink) = self.0.try_lock() else {
            return Tried::NotNow;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut sink = Pin::new(&mut *sink);
        match sink.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Tried::Broken,
            Poll::Pending => return Tried::NotNow,
        }
        if sink.as_mut().start_send(WsMessage::Text(frame.clone())).is_err() {
            return Tried::Broken;
        }
        match sink.poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => Tried::Written,
            Poll::Ready(Err(_)) => Tried::Broken,
            Poll::Pending => Tried::Flushing,
        }
    }
}

/// The writer's handle on the shared write half.
struct Locked<S>(Arc<Shared<S>>);

impl<S: Sink<WsMessage> + Unpin> Sink<WsMessage> for Locked<S> {
    type Error = S::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
        Pin::new(&mut *self.0.lock()).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock()).poll_close(cx)
    }
}

/// The writer: outbox → socket, pings, and the close frame. It runs inside the socket's
/// own task, beside the reader (see `ws::run`), not as a task of its own.
///
/// It waits on one thing, the outbox, which frames, the server's ping ticker and a
/// close all wake. The close is consulted only while a write is stuck on a full
/// socket. While it waits, a push to a quiet socket writes the frame itself; the
/// writer writes what is queued: frames inside a busy socket's coalescing window, frames
/// that found the socket full, and the rest of a write a push could not finish.
///
/// Each round of work is boxed, so that while the writer waits (what an idle socket
/// does nearly all its life) its state is the wait alone, not the window's timer and
/// the half-done write: every idle socket would carry those otherwise. (For the same
/// reason this returns an `async` block rather than being an `async fn`, which would
/// keep its arguments twice.)
pub(super) fn write_loop<S>(
    sink: S,
    outbox: Arc<Outbox>,
    closer: Closer,
    coalesce: Duration,
) -> impl Future<Output = ()>
where
    S: Sink<WsMessage> + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared(Mutex::new(sink)));
    outbox.attach(shared.clone(), coalesce);
    let mut sink = Locked(shared);
    let mut batch = VecDeque::new();
    async move {
        loop {
            let wake = outbox.take(&mut batch).await;
            let round = Box::pin(round(wake, &mut sink, &outbox, &closer, coalesce, &mut batch));
            if round.await == Round::Stop {
                break;
            }
        }
        Box::pin(finish(sink, &outbox, &closer, batch)).await;
    }
}

/// Whether the writer goes on after a round.
#[derive(PartialEq)]
enum Round {
    Go,
    Stop,
}

/// One round of the writer's work, for what woke it.
async fn round<S>(
    wake: Wake,
    sink: &mut Locked<S>,
    outbox: &Outbox,
    closer: &Closer,
    coalesce: Duration,
    batch: &mut VecDeque<Utf8Bytes>,
) -> Round
where
    S: Sink<WsMessage> + Unpin,
{
    let closed = closer.closed();
    tokio::pin!(closed);
    match wake {
        Wake::Interrupted => return Round::Stop,
        Wake::Broken => {
            closer.close(close_code::NORMAL, "");
            return Round::Stop;
        }
        // A push's write is half out: the flush below finishes it.
        Wake::Flush => {}
        Wake::Ping => {
            if sink.feed(WsMessage::Ping(Default::default())).await.is_err() {
                return Round::Stop;
            }
        }
        Wake::Frames => {
            // A busy socket is written at most once per `coalesce`: events that
            // arrive in between share the next write, so a busy room costs fewer
            // system calls. A quiet socket, or a reply, is written at once (after a
            // yield that lets the dispatch that woke us finish queuing).
            let due = outbox.last_write().map_or_else(Instant::now, |last| last + coalesce);
            if Instant::now() < due {
                tokio::select! {
                    biased;
                    // Closed while waiting: the close path sends what is queued.
                    () = &mut closed => return Round::Stop,
                    // A reply never waits: its client is waiting on it.
                    () = outbox.reply_queued() => {}
                    () = tokio::time::sleep_until(due) => {}
                }
            } else {
                tokio::task::yield_now().await;
            }
            batch.extend(outbox.take_now());
        }
    }
    let write = async {
        // Popped one by one: if a close interrupts us, what is left stays in
        // `batch` and still goes out before the close frame.
        while let Some(frame) = batch.pop_front() {
            sink.feed(WsMessage::Text(frame)).await?;
        }
        sink.flush().await
    };
    let outcome = tokio::select! {
        biased;
        outcome = write => outcome,
        () = &mut closed => return Round::Stop,
    };
    if outcome.is_err() {
        closer.close(close_code::NORMAL, "");
        return Round::Stop;
    }
    outbox.wrote(Instant::now());
    Round::Go
}

/// The close: what is still queued, then the close frame, within two seconds.
async fn finish<S>(mut sink: Locked<S>, outbox: &Outbox, closer: &Closer, mut batch: VecDeque<Utf8Bytes>)
where
    S: Sink<WsMessage> + Unpin,
{
    let (code, reason) = closer.frame().unwrap_or((close_code::NORMAL, ""));
    // Replies already queued (say, the error before a 4001) go out first, except to a
    // slow consumer, whose queue is the problem.
    let pending = if code == close_code::SLOW_CONSUMER {
        VecDeque::new()
    } else {
        batch.extend(outbox.take_now());
        batch
    };
    outbox.close();
    let finish = async {
        for frame in pending {
            sink.feed(WsMessage::Text(frame)).await?;
        }
        let close = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        sink.send(WsMessage::Close(Some(close))).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), finish).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    /// What the sink saw.
    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Text(String),
        Ping,
        Close(u16),
        Flush,
    }

    /// A sink that records every frame and flush with the (paused) time since `start`
    /// in milliseconds: the writer's only window on the world.
    #[derive(Clone)]
    struct Recorder {
        start: Instant,
        seen: Arc<Mutex<Vec<(u64, Seen)>>>,
        /// While set, the socket takes nothing (its send buffer is full): the waker
        /// waits here.
        stuck: Arc<Mutex<Option<Option<std::task::Waker>>>>,
        /// While set, the socket takes a frame but cannot get it all out (a flush
        /// would block): the waker waits here.
        slow: Arc<Mutex<Option<Option<std::task::Waker>>>>,
        /// Set: every operation fails, as on a reset connection.
        broken: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Recorder {
        fn new() -> Recorder {
            Recorder {
                start: Instant::now(),
                seen: Arc::default(),
                stuck: Arc::default(),
                slow: Arc::default(),
                broken: Arc::default(),
            }
        }

        /// Flushes block until [`Recorder::unslow`].
        fn slow(&self) {
            *self.slow.lock().unwrap() = Some(None);
        }

        fn unslow(&self) {
            if let Some(Some(waker)) = self.slow.lock().unwrap().take() {
                waker.wake();
            }
        }

        /// The socket stops taking frames, as a full send buffer does.
        fn stick(&self) {
            *self.stuck.lock().unwrap() = Some(None);
        }

        /// The socket takes frames again.
        fn unstick(&self) {
            if let Some(Some(waker)) = self.stuck.lock().unwrap().take() {
                waker.wake();
            }
        }

        fn record(&self, what: Seen) {
            let at = (Instant::now() - self.start).as_millis() as u64;
            self.seen.lock().unwrap().push((at, what));
        }

        /// Everything seen so far, and forget it.
        fn take(&self) -> Vec<(u64, Seen)> {
            std::mem::take(&mut *self.seen.lock().unwrap())
        }
    }

    /// The connection is gone.
    #[derive(Debug)]
    struct Reset;

    impl Sink<WsMessage> for Recorder {
        type Error = Reset;

        fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.broken.load(Relaxed) {
                return Poll::Ready(Err(Reset));
            }
            match &mut *self.stuck.lock().unwrap() {
                Some(waker) => {
                    *waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                None => Poll::Ready(Ok(())),
            }
        }

        fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
            let seen = match item {
                WsMessage::Text(text) => Seen::Text(text.as_str().to_string()),
                WsMessage::Ping(_) => Seen::Ping,
                WsMessage::Close(frame) => Seen::Close(frame.map_or(0, |f| f.code)),
                other => panic!("the writer sent {other:?}"),
            };
            self.record(seen);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if let Some(waker) = &mut *self.slow.lock().unwrap() {
                *waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.record(Seen::Flush);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn text(text: &str) -> Seen {
        Seen::Text(text.to_string())
    }

    const COALESCE: Duration = Duration::from_millis(8);

    /// A writer over a recording sink, with its outbox and closer.
    fn writer() -> (Recorder, Arc<Outbox>, Closer, tokio::task::JoinHandle<()>) {
        let recorder = Recorder::new();
        let outbox = Arc::new(Outbox::new(16, 1 << 20));
        let closer = Closer::for_outbox(outbox.clone());
        let task = tokio::spawn(write_loop(recorder.clone(), outbox.clone(), closer.clone(), COALESCE));
        (recorder, outbox, closer, task)
    }

    fn push(outbox: &Outbox, text: &'static str) {
        outbox.push(Utf8Bytes::from_static(text)).unwrap();
    }

    /// Lets the paused clock run `ms` milliseconds, the writer doing its work meanwhile.
    async fn after(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_socket_is_written_at_once_and_a_busy_one_once_per_window() {
        let (recorder, outbox, _closer, _task) = writer();
        push(&outbox, "first");
        after(1).await;
        assert_eq!(recorder.take(), [(0, text("first")), (0, Seen::Flush)], "quiet: written at once");
        // Two events 2 ms and 4 ms after that write share one write at 8 ms.
        after(1).await;
        push(&outbox, "second");
        after(2).await;
        push(&outbox, "third");
        after(10).await;
        assert_eq!(recorder.take(), [(8, text("second")), (8, text("third")), (8, Seen::Flush)]);
        // Quiet again for longer than the window: written at once.
        after(20).await;
        push(&outbox, "later");
        after(1).await;
        assert_eq!(recorder.take(), [(34, text("later")), (34, Seen::Flush)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_ends_the_wait_and_takes_the_waiting_events_with_it() {
        let (recorder, outbox, _closer, _task) = writer();
        push(&outbox, "event");
        after(1).await;
        recorder.take();
        push(&outbox, "held event");
        after(2).await;
        assert_eq!(recorder.take(), [], "held back inside the window");
        outbox.push_reply(Utf8Bytes::from_static("reply")).unwrap();
        after(0).await;
        tokio::task::yield_now().await;
        assert_eq!(recorder.take(), [(3, text("held event")), (3, text("reply")), (3, Seen::Flush)]);
    }

    #[tokio::test(start_paused = true)]
    async fn queued_frames_go_out_before_the_close_frame() {
        let (recorder, outbox, closer, task) = writer();
        push(&outbox, "a");
        after(1).await;
        push(&outbox, "b");
        push(&outbox, "c");
        closer.close(close_code::UNAUTHENTICATED, "logged out");
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        let texts: Vec<Seen> =
            recorder.take().into_iter().map(|(_, seen)| seen).filter(|s| *s != Seen::Flush).collect();
        assert_eq!(texts, [text("a"), text("b"), text("c"), Seen::Close(4001)]);
        assert!(outbox.push(Utf8Bytes::from_static("late")).is_err(), "the outbox is closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_while_a_busy_socket_waits_out_its_window_sends_the_waiting_frames_then_the_close() {
        let (recorder, outbox, closer, task) = writer();
        push(&outbox, "a");
        after(1).await;
        // The socket's buffer fills while the next frame waits out the window, and the
        // close comes then (as when a node loses its bus and closes every socket).
        recorder.stick();
        push(&outbox, "waiting");
        after(2).await;
        assert_eq!(recorder.take(), [(0, text("a")), (0, Seen::Flush)], "\"waiting\" is held inside the window");
        closer.close(close_code::TRY_AGAIN_LATER, "the bus is down");
        after(1).await;
        recorder.unstick();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().expect("the writer ends without a panic");
        let seen: Vec<Seen> = recorder.take().into_iter().map(|(_, seen)| seen).filter(|s| *s != Seen::Flush).collect();
        assert_eq!(seen, [text("waiting"), Seen::Close(1013)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_gets_its_close_without_the_backlog() {
        let (recorder, outbox, closer, task) = writer();
        push(&outbox, "a");
        after(1).await;
        push(&outbox, "backlog");
        closer.close(close_code::SLOW_CONSUMER, "slow consumer");
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        let seen: Vec<Seen> = recorder.take().into_iter().map(|(_, seen)| seen).filter(|s| *s != Seen::Flush).collect();
        assert_eq!(seen, [text("a"), Seen::Close(4008)]);
    }

    /// Lets the writer run without moving the clock.
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    /// An idle writer started, with its first write long past.
    async fn idle_writer() -> (Recorder, Arc<Outbox>, Closer, tokio::task::JoinHandle<()>) {
        let (recorder, outbox, closer, task) = writer();
        after(1).await;
        (recorder, outbox, closer, task)
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_socket_is_written_by_the_push_itself_and_a_busy_one_by_the_writer() {
        let (recorder, outbox, _closer, _task) = idle_writer().await;
        // The frame is out when `push` returns: no task ran in between.
        push(&outbox, "at once");
        assert_eq!(recorder.take(), [(1, text("at once")), (1, Seen::Flush)]);
        // Inside the window it is queued, and the writer writes it when the window ends.
        push(&outbox, "held");
        assert_eq!(recorder.take(), [], "queued for the writer");
        after(10).await;
        assert_eq!(recorder.take(), [(9, text("held")), (9, Seen::Flush)]);
        // A reply does not wait out the window: written by the push too.
        outbox.push_reply(Utf8Bytes::from_static("reply")).unwrap();
        assert_eq!(recorder.take(), [(11, text("reply")), (11, Seen::Flush)]);
        // A small room's event goes to the writer even to a quiet socket.
        after(20).await;
        outbox.push_to_writer(Utf8Bytes::from_static("to the writer")).unwrap();
        assert_eq!(recorder.take(), [], "not written by the push");
        settle().await;
        assert_eq!(recorder.take(), [(31, text("to the writer")), (31, Seen::Flush)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_that_finds_the_socket_full_queues_and_the_writer_keeps_the_order() {
        let (recorder, outbox, _closer, _task) = idle_writer().await;
        recorder.stick();
        push(&outbox, "first");
        push(&outbox, "second");
        settle().await;
        assert_eq!(recorder.take(), [], "nothing is written to a full socket");
        recorder.unstick();
        settle().await;
        let seen: Vec<Seen> = recorder.take().into_iter().map(|(_, seen)| seen).collect();
        assert_eq!(seen, [text("first"), text("second"), Seen::Flush]);
        // Idle again: the next quiet push writes at once.
        after(20).await;
        push(&outbox, "third");
        assert_eq!(recorder.take(), [(21, text("third")), (21, Seen::Flush)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_a_push_could_not_finish_is_finished_by_the_writer_before_the_next_frame() {
        let (recorder, outbox, _closer, _task) = idle_writer().await;
        recorder.slow();
        push(&outbox, "half out");
        assert_eq!(recorder.take(), [(1, text("half out"))], "taken, not yet flushed");
        // The writer has the flush now; a later frame waits behind it, not beside it.
        after(20).await;
        push(&outbox, "next");
        settle().await;
        assert_eq!(recorder.take(), [], "the socket still takes nothing");
        recorder.unslow();
        // The flush ends at 21, and "next" goes out when that write's window ends.
        after(10).await;
        assert_eq!(recorder.take(), [(21, Seen::Flush), (29, text("next")), (29, Seen::Flush)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_that_finds_the_connection_gone_closes_the_socket() {
        let (recorder, outbox, closer, task) = idle_writer().await;
        recorder.broken.store(true, Relaxed);
        assert_eq!(outbox.push(Utf8Bytes::from_static("lost")), Err(crate::hub::PushError::Closed));
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        assert_eq!(closer.frame(), Some((close_code::NORMAL, "")), "the reader is told too");
        assert!(outbox.push(Utf8Bytes::from_static("later")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_asked_for_is_sent() {
        let (recorder, outbox, _closer, _task) = writer();
        outbox.request_ping();
        after(1).await;
        assert!(recorder.take().iter().any(|(_, seen)| *seen == Seen::Ping));
    }
}
