//! One WebSocket connection, from upgrade to cleanup.
//!
//! Each socket is one task running two futures side by side (`run`).
//!
//! - The **writer** ([`writer::write_loop`]) owns the sink and shares it with the
//!   outbox: while the writer waits with nothing to do, a push to a quiet socket (a
//!   reply, or an event of a room with many members here) writes its frame at once, on
//!   the pushing thread, if that needs no wait. The writer drains the session's bounded
//!   outbox, feeds every queued frame and flushes once (one syscall for a burst),
//!   finishes a write a push left half out, sends the pings the server's ticker asks
//!   for, holds a busy socket's writes to one per `write_coalesce_ms` (replies excepted),
//!   and sends the close frame the [`Closer`] asks for.
//! - The **reader** authenticates, then reads requests one at a time and answers through
//!   the same outbox, so a socket's replies and events keep one order.
//!
//! Cleanup happens in one place, when the reader ends: the hub forgets the session and
//! presence is updated, whatever ended the connection.

mod appeals;
mod groups;
mod moderation;
mod pages;
mod requests;
mod summits;
mod writer;

use crate::auth::token_hash;
use crate::hub::{Closer, Outbox, PushError, Session, SLOW_CONSUMER_REASON};
use crate::limits::Bucket;
use crate::protocol::close_code;
use crate::protocol::{
    error_frame, ok_frame, parse_request, parse_request_typed, ApiError, ErrorCode, Reply, Request, RequestId,
};
use crate::state::{internal, AppState, HttpError};
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Consecutive refused requests after which a socket is closed with 4029.
const MAX_REFUSALS_IN_A_ROW: u32 = 50;

/// The socket endpoint (the server merges it with `http::routes`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// `GET /ws`: checks the origin and the per-address limit, then upgrades.
async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    secure: Option<axum::Extension<crate::listener::Secure>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let secure = secure.is_some_and(|axum::Extension(crate::listener::Secure(secure))| secure);
    if let Err(error) = check_origin(&state.config.allowed_origins, &headers, secure) {
        tracing::warn!(%peer, "refused a WebSocket from a foreign origin");
        return HttpError(error).into_response();
    }
    if !state.bus_healthy() {
        // This node cannot reach the others: a socket here would miss their events.
        let body = r#"{"error":{"code":"unavailable","message":"This server is reconnecting to the rest of the network; try again in a few seconds."}}"#;
        let mut response = crate::state::json_response(axum::http::StatusCode::SERVICE_UNAVAILABLE, body.to_string());
        response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        return response;
    }
    let Some(slot) = AddressSlot::take(&state, state.client_address(peer.ip(), &headers)) else {
        let error =
            ApiError::rate_limited("open connections from your address or on this server", Duration::from_secs(10));
        return HttpError(error).into_response();
    };
    let max = state.config.max_frame_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // Allocated up front for every socket (and zero-filled before each read), so it
        // is sized for requests, which are small: a request's frame fits, and a larger
        // one grows it to the frame's length once its header is read. 2 KiB cost 1.6 KB
        // more per idle socket (8,430 B against 6,850 B).
        .read_buffer_size(256)
        .write_buffer_size(16 * 1024)
        // A socket that will not take our bytes is closed, not buffered without end.
        .max_write_buffer_size(1024 * 1024)
        .on_upgrade(move |socket| {
            // Split here, not in the socket's future: a future keeps every value it
            // was handed for its whole life, and the socket's 368 bytes would sit
            // unused in two of them for every idle connection.
            let (sink, stream) = socket.split();
            let tracker = state.tracker.clone();
            // The socket's log lines keep the id of the connection it upgraded from.
            let span = tracing::Span::current();
            state.metrics.sockets_accepted.inc();
            // Not an `async` block, for the reason `run` gives.
            let socket = run(state, sink, stream, peer.ip()).map(move |()| drop(slot));
            tracker.track_future(socket.instrument(span))
        })
}

/// Allows a request with no `Origin` (non-browser clients), an origin in the allowed
/// list, or, with no list, the server's own origin (same host and port as `Host`): over
/// TLS only `https://`; over plain HTTP either scheme, since a proxy in front may have
/// ended TLS.
fn check_origin(allowed: &[String], headers: &HeaderMap, secure: bool) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/').to_ascii_lowercase();
    let ok = if allowed.is_empty() {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        !host.is_empty() && (origin == format!("https://{host}") || (!secure && origin == format!("http://{host}")))
    } else {
        allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "This page's origin may not open a chat connection to this server."))
    }
}

/// One open socket counted against its address; released on drop.
struct AddressSlot {
    state: AppState,
    ip: IpAddr,
}

impl AddressSlot {
    /// A slot for one more socket from `ip`, if the address and the whole server have
    /// room for it.
    fn take(state: &AppState, ip: IpAddr) -> Option<AddressSlot> {
        let total = state.config.max_sockets;
        if total != 0 && state.sockets_total.fetch_add(1, Relaxed) >= total {
            state.sockets_total.fetch_sub(1, Relaxed);
            tracing::warn!(total, "the server has its most sockets open; refusing another");
            return None;
        }
        let limit = state.config.max_sockets_per_address;
        let mut count = state.sockets_per_address.entry(ip).or_insert(0);
        if limit != 0 && *count >= limit {
            drop(count);
            if total != 0 {
                state.sockets_total.fetch_sub(1, Relaxed);
            }
            tracing::warn!(%ip, limit, "too many sockets from one address");
            return None;
        }
        *count += 1;
        Some(AddressSlot { state: state.clone(), ip })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if self.state.config.max_sockets != 0 {
            self.state.sockets_total.fetch_sub(1, Relaxed);
        }
        if let Some(mut count) = self.state.sockets_per_address.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
        }
        self.state.sockets_per_address.remove_if(&self.ip, |_, count| *count == 0);
    }
}

/// An authenticated socket's place in the hub. Dropping it (however the reader ends,
/// a panic included) removes the session and updates presence.
struct SessionGuard {
    state: AppState,
    session: Arc<Session>,
}

impl SessionGuard {
    /// Registers `session` with the hub; refused when the account has too many.
    fn register(state: &AppState, session: Arc<Session>) -> Result<SessionGuard, ApiError> {
        state.register_session(&session)?;
        Ok(SessionGuard { state: state.clone(), session })
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.state.detach_session(&self.session);
    }
}

/// Asks the writer to close the socket when the reader ends, however it ends: a normal
/// close, or 1011 if the reader is unwinding from a panic. The first close asked for
/// wins, so an earlier reason (4008, 4001, ...) is kept.
struct CloseOnDrop(Closer);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.close(close_code::INTERNAL_ERROR, "server error");
        } else {
            self.0.close(close_code::NORMAL, "");
        }
    }
}

/// The socket's future: the reader and the writer side by side in one task (a task of
/// its own cost the writer 780 bytes per idle socket). Built with combinators, not an
/// `async` block: a generator keeps what it was handed for its whole life, so the
/// reader's state would sit in every idle socket twice.
fn run(
    state: AppState,
    sink: SplitSink<WebSocket, WsMessage>,
    stream: SplitStream<WebSocket>,
    peer: IpAddr,
) -> impl Future<Output = ()> + Send {
    let outbox = Arc::new(Outbox::new(state.config.outbox_frames, state.config.outbox_bytes));
    let closer = Closer::for_outbox(outbox.clone());
    let coalesce = Duration::from_millis(state.config.write_coalesce_ms);
    // The request bucket applies from the first frame, `auth` included.
    let bucket = Bucket::new(state.config.request_rate_per_s, state.config.request_burst);
    let reader =
        Reader { state, outbox: outbox.clone(), closer: closer.clone(), session: None, refusals: 0, bucket, peer };
    // A panic in the reader is caught here, so the writer still sends the 1011 that
    // `CloseOnDrop` asks for as the reader unwinds, and cleanup runs as for any close.
    let reading = AssertUnwindSafe(read(reader, stream)).catch_unwind().map(|read| match read {
        Ok(stream) => Some(stream),
        Err(panic) => {
            tracing::error!(panic = %panic_message(&panic), "a socket's reader panicked; closing it");
            None
        }
    });
    // The writer ends once the close frame is out or its timeout passes.
    let writing = writer::write_loop(sink, outbox, closer, coalesce);
    futures_util::future::join(OwnWake::new(reading), writing).then(|(stream, ())| linger(stream))
}

pin_project_lite::pin_project! {
    /// A future polled only when something it waits on has woken it, not whenever its
    /// task is polled. The reader shares its task with the writer, which a busy room
    /// wakes once per write; polling the reader each time as well cost a 1,000-socket
    /// room 17 % of its sustained rate and 20 % more CPU per delivery.
    struct OwnWake<F> {
        #[pin]
        inner: F,
        flag: Arc<WakeFlag>,
        waker: Waker,
    }
}

/// Set by the inner future's wakers; the task's waker, to pass the wake-up on.
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Release);
        self.task.wake();
    }
}

impl<F: Future> OwnWake<F> {
    fn new(inner: F) -> OwnWake<F> {
        // Woken to begin with: the first poll starts it.
        let flag = Arc::new(WakeFlag { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        OwnWake { inner, waker: Waker::from(flag.clone()), flag }
    }
}

impl<F: Future> Future for OwnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before looking, so a wake-up in between is not lost.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Acquire) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

/// After the close frame: reads what the client still sends, until its own close frame
/// or its end of stream, for at most a second. A socket closed with unread bytes in it
/// is reset, and a reset can reach the client before our close frame is read: the
/// client would see a broken connection instead of the close code.
async fn linger(stream: Option<SplitStream<WebSocket>>) {
    let Some(mut stream) = stream else { return };
    let drain = async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How long a closed socket waits for the client's close frame.
const LINGER: Duration = Duration::from_secs(1);

/// The reader half of a connection; gives the stream back for [`linger`]. Cleanup is
/// in guards, not at the end of this function, so it runs however the reader ends.
///
/// An `async` block, not an `async fn`: an `async fn` moves its arguments into locals
/// and keeps both, which cost every socket the reader's 136 bytes twice.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn read(mut reader: Reader, mut stream: SplitStream<WebSocket>) -> impl Future<Output = SplitStream<WebSocket>> {
    async move {
        // A local, so that a panic drops it as it unwinds (and the writer sends 1011).
        let close = CloseOnDrop(reader.closer.clone());
        // Boxed: its deadline and its `auth` are not needed once it is done.
        if Box::pin(reader.authenticate(&mut stream)).await {
            reader.serve(&mut stream).await;
        }
        // The session leaves the hub, then the writer is told to close.
        drop(reader);
        drop(close);
        stream
    }
}

struct Reader {
    state: AppState,
    outbox: Arc<Outbox>,
    closer: Closer,
    /// Set once authenticated; dropping it takes the session out of the hub.
    session: Option<SessionGuard>,
    /// Requests refused in a row (bad frames, rate limits).
    refusals: u32,
    /// This socket's request rate, from its first frame.
    bucket: Bucket,
    /// The client's address, for the log.
    peer: IpAddr,
}

/// Failed `auth` frames after which a socket is closed with 4001 (PROTOCOL.md §7).
const MAX_FAILED_AUTHS: u32 = 3;

/// What to do after one incoming frame.
enum Next {
    Continue,
    Stop,
}

impl Reader {
    /// Waits for a valid `auth` until the deadline; `false` if the socket should close.
    async fn authenticate(&mut self, stream: &mut SplitStream<WebSocket>) -> bool {
        let deadline = Instant::now() + self.state.config.auth_timeout();
        let mut failed_auths = 0;
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = tokio::time::sleep_until(deadline) => {
                    self.closer.close(close_code::UNAUTHENTICATED, "authentication timed out");
                    return false;
                }
                () = self.state.shutdown.cancelled() => {
                    self.closer.close(close_code::GOING_AWAY, "server shutting down");
                    return false;
                }
                () = self.closer.closed() => return false,
            };
            let text = match self.read_text(frame) {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(Next::Stop) => return false,
                Err(Next::Continue) => continue,
            };
            let parsed = parse_request(&text);
            if let Err(wait) = self.bucket.take() {
                let id = match &parsed {
                    Ok((id, _)) => id.as_ref(),
                    Err(bad) => bad.id.as_ref(),
                };
                self.refuse(id, ApiError::rate_limited("requests", wait));
                continue;
            }
            match parsed {
                Ok((id, Request::Auth { token })) => match Box::pin(self.auth(&token)).await {
                    Ok((reply, rooms)) => {
                        // The reply is queued before the socket receives any room, so
                        // `ok` comes first; a client then catches up with `history`.
                        self.reply(id.as_ref(), Ok(reply));
                        self.attach(&rooms);
                        return true;
                    }
                    Err(error) => {
                        let code = error.code;
                        self.reply(id.as_ref(), Err(error));
                        if code == ErrorCode::Banned {
                            self.closer.close(close_code::BANNED, "banned from the server");
                            return false;
                        }
                        if code == ErrorCode::RateLimited {
                            // The account has its most sockets open: not a reason to
                            // log out (4001), a reason to try again later.
                            self.closer.close(close_code::TOO_MANY_REQUESTS, "too many connections for this account");
                            return false;
                        }
                        let unauthenticated = code == ErrorCode::Unauthenticated;
                        failed_auths += u32::from(unauthenticated);
                        if failed_auths >= MAX_FAILED_AUTHS {
                            tracing::warn!(peer = %self.peer, "three failed auth frames; closing the socket");
                            self.closer.close(close_code::UNAUTHENTICATED, "too many failed authentications");
                            return false;
                        }
                    }
                },
                Ok((id, _)) => {
                    let error = ApiError::new(ErrorCode::Unauthenticated, "Send “auth” with your token first.");
                    self.reply(id.as_ref(), Err(error));
                }
                Err(bad) => self.refuse(bad.id.as_ref(), ApiError::new(ErrorCode::BadRequest, bad.message)),
            }
        }
    }

    async fn auth(&mut self, token: &str) -> Result<(Reply, Vec<String>), ApiError> {
        let hash = token_hash(token);
        let invalid = || ApiError::new(ErrorCode::Unauthenticated, "The token is not valid; please log in again.");
        let record = self.state.token_user(&hash).await?.ok_or_else(invalid)?;
        let session = Arc::new(Session::new(
            self.state.next_session_id(),
            record.id,
            record.user.clone(),
            hash,
            self.outbox.clone(),
        ));
        // Registered before the rooms are read, so a join from the user's other socket
        // in between reaches this one as well.
        // If anything below fails, dropping the guard takes the session out again.
        let guard = SessionGuard::register(&self.state, session)?;
        // The final checks come after registering: a logout or server ban that commits
        // from here on finds this socket and closes it, and one that committed before
        // is seen here. (Checked only before, a socket mid-auth could slip past both.)
        let record = self.state.token_user(&hash).await?.ok_or_else(invalid)?;
        if let Some(ban) = self.state.server_ban(record.id).await? {
            return Err(ban);
        }
        let rooms = self.state.store.fetch_user_rooms(record.id).await.map_err(internal)?;
        // Before the rooms are attached: the first message delivered is shaped already.
        let preferences = self.state.store.fetch_preferences(record.id).await.map_err(internal)?;
        guard.session.set_preferences(preferences);
        self.session = Some(guard);
        let may_create = record.user.role.may_create(self.state.config.members_may_create_rooms);
        let reactions = self.state.config.reactions.split_whitespace().map(str::to_string).collect();
        let user = self.state.me(&record).await?;
        Ok((Reply::Authenticated { user, rooms: rooms.clone(), may_create, reactions }, rooms))
    }

    /// Subscribes the new session to its user's rooms and announces the user where it
    /// just came online.
    fn attach(&self, rooms: &[String]) {
        if let Some(guard) = &self.session {
            self.state.attach_session(&guard.session, rooms);
        }
    }

    /// Reads requests until the socket ends.
    ///
    /// While it waits on the client, the server's ping ticker keeps its idle timeout
    /// ([`Outbox::tick`]): two ping intervals with nothing read close the socket, with
    /// 4008 if its replies are stuck, else 1001.
    async fn serve(&mut self, stream: &mut SplitStream<WebSocket>) {
        loop {
            self.outbox.listening(true);
            // Read the next request only once this socket's replies are on their way:
            // a client that does not read them is not read either, so its replies
            // cannot pile up. One that stays stuck that long is a slow consumer.
            tokio::select! {
                () = self.outbox.replies_taken() => {}
                () = self.closer.closed() => return,
            }
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = self.state.shutdown.cancelled() => {
                    self.closer.close(close_code::GOING_AWAY, "server shutting down");
                    return;
                }
                () = self.closer.closed() => return,
            };
            self.outbox.listening(false);
            self.outbox.heard();
            let text = match self.read_text(frame) {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(Next::Stop) => return,
                Err(Next::Continue) => continue,
            };
            let started = std::time::Instant::now();
            let (id, kind, request) = match parse_request_typed(&text) {
                Ok(parsed) => parsed,
                Err(bad) => {
                    self.refuse(bad.id.as_ref(), ApiError::new(ErrorCode::BadRequest, bad.message));
                    continue;
                }
            };
            let account = &self.session.as_ref().expect("serve runs after auth").session.user_id;
            let over = self.bucket.take().and_then(|()| self.state.requests_per_account.check(account));
            if let Err(wait) = over {
                self.refuse(id.as_ref(), ApiError::rate_limited("requests", wait));
                continue;
            }
            let session = self.session.as_ref().expect("serve runs after auth").session.clone();
            // Boxed: the largest handler's state would otherwise live inside every idle
            // socket's task for its whole life. A panic is a bug: it ends this socket
            // (1011, after an `internal` reply), is logged, and touches nothing else.
            let handled = AssertUnwindSafe(Box::pin(requests::handle(&self.state, &session, request)));
            let result = match handled.catch_unwind().await {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic_message(&panic);
                    tracing::error!(user = %session.user().username, panic = %what, "a request handler panicked; closing its socket");
                    self.reply(id.as_ref(), Err(ApiError::internal()));
                    self.closer.close(close_code::INTERNAL_ERROR, "server error");
                    return;
                }
            };
            if result.is_ok() {
                self.refusals = 0;
            }
            let failed = result.is_err();
            self.reply(id.as_ref(), result);
            self.state.metrics.request(kind, started.elapsed(), failed);
        }
    }

    /// Turns one read into text: `Ok(None)` for control frames, `Err` to stop or skip.
    fn read_text(&mut self, frame: Option<Result<WsMessage, axum::Error>>) -> Result<Option<Utf8Bytes>, Next> {
        match frame {
            None | Some(Ok(WsMessage::Close(_))) => Err(Next::Stop),
            Some(Ok(WsMessage::Text(text))) => Ok(Some(text)),
            Some(Ok(WsMessage::Binary(_))) => {
                let error = ApiError::new(ErrorCode::BadRequest, "Binary frames are not understood; send JSON text.");
                self.refuse(None, error);
                Err(Next::Continue)
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(None),
            Some(Err(err)) => {
                if is_capacity_error(&err) {
                    self.closer.close(close_code::TOO_LARGE, "frame too large");
                } else {
                    tracing::debug!(error = %err, "socket read failed");
                }
                Err(Next::Stop)
            }
        }
    }

    /// Queues a reply behind the events already queued. A client that does not read
    /// its replies fills its outbox like any slow reader and is closed with 4008; a
    /// resent `send` with the same `client_msg_id` then returns the stored message.
    fn reply(&mut self, id: Option<&RequestId>, result: Result<Reply, ApiError>) {
        let mut frame = match &result {
            Ok(reply) => ok_frame(id, reply),
            Err(error) => error_frame(id, error),
        };
        // Pages already fit; this is the guard for anything that does not: a clear
        // `too_large`, never a reply that overflows the socket and closes it.
        if frame.len() > pages::MAX_REPLY_BYTES {
            tracing::warn!(bytes = frame.len(), "a reply over the size limit was refused");
            let error = ApiError::new(ErrorCode::TooLarge, "That answer would be too large; ask for fewer items.");
            frame = error_frame(id, &error);
        }
        if let Err(PushError::Full) = self.outbox.push_reply(Utf8Bytes::from(frame)) {
            self.closer.close(close_code::SLOW_CONSUMER, SLOW_CONSUMER_REASON);
        }
    }

    /// Answers a refused frame, and closes the socket with 4029 when refusals go on.
    fn refuse(&mut self, id: Option<&RequestId>, error: ApiError) {
        self.refusals += 1;
        self.state.metrics.request_refused();
        self.reply(id, Err(error));
        if self.refusals >= MAX_REFUSALS_IN_A_ROW {
            self.closer.close(close_code::TOO_MANY_REQUESTS, "too many refused requests");
        }
    }
}

/// The text of a panic's payload, for the log.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}

fn is_capacity_error(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wake-ups: the socket's task, as the runtime would wake it.
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    /// Never ready; counts its polls and keeps the waker it was last given.
    struct Inner {
        polls: Arc<AtomicUsize>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
    }

    impl Future for Inner {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Relaxed);
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn the_reader_is_polled_only_when_it_was_woken_not_for_each_wake_up_of_its_task() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker = Arc::new(std::sync::Mutex::new(None));
        let mut own = Box::pin(OwnWake::new(Inner { polls: polls.clone(), waker: inner_waker.clone() }));
        let task = Arc::new(Task(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(own.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Relaxed), 1, "the first poll starts it");
        // The task polled again for the writer's sake: the reader is left alone.
        for _ in 0..3 {
            assert!(own.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Relaxed), 1);
        // Something the reader waits on wakes it: the task is woken, and the reader
        // is polled on the next poll, once.
        inner_waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.0.load(Relaxed), 1, "the task is woken for it");
        assert!(own.as_mut().poll(&mut cx).is_pending());
        assert!(own.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Relaxed), 2);
    }
}
