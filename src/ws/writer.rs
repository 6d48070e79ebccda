//! The writer task of one socket: outbox → socket, pings, write coalescing and the
//! close frame. Generic over the sink, so its timing is tested with paused time and a
//! recording sink instead of a network.

use crate::hub::{Closer, Outbox, Wake};
use crate::protocol::close_code;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The writer task: outbox → socket, pings, and the close frame.
///
/// It waits on one thing, the outbox, which frames, the server's ping ticker and a
/// close all wake. The close token is consulted only while a write is stuck on a full
/// socket, so an ordinary delivery costs one wake-up, one take and one write.
pub(super) async fn write_loop<S>(mut sink: S, outbox: Arc<Outbox>, closer: Closer, coalesce: Duration)
where
    S: Sink<WsMessage> + Unpin,
{
    let mut batch = VecDeque::new();
    let mut last_write = Instant::now() - coalesce;
    let closed = closer.closed();
    tokio::pin!(closed);
    loop {
        match outbox.take(&mut batch).await {
            Wake::Interrupted => break,
            Wake::Ping => {
                if sink.feed(WsMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            Wake::Frames => {
                // A busy socket is written at most once per `coalesce`: events that
                // arrive in between share the next write, so a busy room costs fewer
                // system calls. A quiet socket, or a reply, is written at once (after a
                // yield that lets the dispatch that woke us finish queuing).
                let due = last_write + coalesce;
                if Instant::now() < due {
                    tokio::select! {
                        biased;
                        // Closed while waiting: the close path sends what is queued.
                        // (Going on would poll `closed` again after it completed.)
                        () = &mut closed => break,
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
            () = &mut closed => break,
        };
        if outcome.is_err() {
            closer.close(close_code::NORMAL, "");
            break;
        }
        last_write = Instant::now();
    }
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
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

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
    }

    impl Recorder {
        fn new() -> Recorder {
            Recorder { start: Instant::now(), seen: Arc::default(), stuck: Arc::default() }
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

    impl Sink<WsMessage> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
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

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
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

    #[tokio::test(start_paused = true)]
    async fn a_ping_asked_for_is_sent() {
        let (recorder, outbox, _closer, _task) = writer();
        outbox.request_ping();
        after(1).await;
        assert!(recorder.take().iter().any(|(_, seen)| *seen == Seen::Ping));
    }
}
