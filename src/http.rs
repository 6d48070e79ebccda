//! The HTTP routes: accounts, health, metrics and the web client (the `/ws` upgrade is
//! `ws::routes`).
//!
//! Bodies are parsed here from raw bytes (not axum's `Json` extractor) so that every
//! failure, including malformed JSON, answers in the protocol's error shape.

use crate::auth::{
    check_display_name, check_password, check_password_length, check_password_not_common, new_token,
    normalise_username, token_hash, HashError,
};
use crate::bus::CloseTarget;
use crate::config::Registration;
use crate::metrics::LoginOutcome;
use crate::protocol::close_code;
use crate::protocol::{
    ApiError, ErrorCode, LoginBody, LoginReply, MeBody, RegisterBody, Role, RoomKind as Kind, UserBody,
};
use crate::state::{internal, json_response, AppState, HttpError};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The HTTP routes (the server merges them with `ws::routes`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/api/v1/register", post(register))
        .route("/api/v1/registration", get(registration))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me).delete(delete_me))
        .route("/api/v1/me/export", get(export))
        .route("/api/v1/resources", get(resources))
        .route("/api/v1/summits.ics", get(summits_ics))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // No route here reads more than a few KiB.
        .layer(DefaultBodyLimit::max(MAX_ACCOUNT_BODY))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_response(status, serde_json::to_string(value).expect("responses always serialise"))
}

/// Largest body the account routes read. Their JSON is a few short fields; a larger
/// body is refused before it is read whole.
const MAX_ACCOUNT_BODY: usize = 4 * 1024;

/// An account route's JSON body: `application/json`, at most `MAX_ACCOUNT_BODY` bytes.
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, HttpError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("application/json") {
        return Err(HttpError(ApiError::new(ErrorCode::BadRequest, "Send the body as application/json.")));
    }
    let body = body.map_err(|_| {
        HttpError(ApiError::new(ErrorCode::TooLarge, format!("The body is over {MAX_ACCOUNT_BODY} bytes.")))
    })?;
    serde_json::from_slice(&body).map_err(|err| {
        HttpError(ApiError::new(ErrorCode::BadRequest, format!("The body is not the JSON expected: {err}.")))
    })
}

fn forbidden(message: &str) -> HttpError {
    HttpError(ApiError::new(ErrorCode::Forbidden, message))
}

fn invalid(message: &str) -> HttpError {
    HttpError(ApiError::new(ErrorCode::Invalid, message))
}

/// A hashing failure: a full queue is a `rate_limited` with a short wait; anything else
/// is the server's fault.
fn hashing_failed(err: HashError) -> ApiError {
    match err {
        HashError::Busy => {
            tracing::warn!("password hashing queue full; turning a login or registration away");
            ApiError::rate_limited("logins at this moment", Duration::from_secs(2))
        }
        HashError::Failed(_) => {
            tracing::error!(error = %err, "password hashing failed");
            ApiError::internal()
        }
    }
}

/// The delay before checking the password of an account with `failures` recent
/// failures: none for the first five, then `base_ms`, doubling, at most five seconds.
fn login_delay(base_ms: u64, failures: u32) -> Duration {
    const FREE: u32 = 5;
    if base_ms == 0 || failures <= FREE {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE - 1).min(16);
    Duration::from_millis(base_ms.saturating_mul(1 << doublings)).min(Duration::from_secs(5))
}

/// Failed logins to `account` from anywhere: on every node of a network (this node's own
/// count if the shared one cannot be read).
async fn account_failures(state: &AppState, account: &str) -> u32 {
    if let Some(cluster) = &state.cluster {
        match cluster.login_failures(account).await {
            Ok(count) => return count,
            Err(err) => tracing::warn!(error = %err, "the login delay falls back to this node's own count"),
        }
    }
    state.account_failures.count(&account.to_string())
}

/// Counts a failed login to `account`, here and for the whole network.
async fn account_failed(state: &AppState, account: &str) {
    state.account_failures.failed(account.to_string());
    if let Some(cluster) = &state.cluster {
        let window = Duration::from_secs(state.config.login_window_s.max(1));
        if let Err(err) = cluster.login_failed(account, window).await {
            tracing::warn!(error = %err, "cannot count a failed login for the other nodes");
        }
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

fn unauthenticated() -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::Unauthenticated,
        "Please log in again: the token is missing or no longer valid.",
    ))
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body: RegisterBody = parse_body(&headers, body)?;
    let username = normalise_username(&body.username).map_err(invalid)?;
    crate::auth::check_not_reserved(&username).map_err(invalid)?;
    check_password(&body.password).map_err(invalid)?;
    check_password_not_common(&body.password).map_err(invalid)?;
    let display_name = body.display_name.unwrap_or_else(|| username.clone());
    check_display_name(&display_name).map_err(invalid)?;
    let address = state.client_address(peer.ip(), &headers);
    if let Err(wait) = state.registrations_per_address.check(&address) {
        tracing::warn!(%address, "registrations from one address over the limit");
        return Err(ApiError::rate_limited("new accounts from your address", wait).into());
    }
    if let Err(wait) = state.registrations.check(&()) {
        tracing::warn!("registrations on the whole server over the hourly limit");
        return Err(ApiError::rate_limited("new accounts on this server this hour", wait).into());
    }
    let invite = match (state.config.registration, body.invite.as_deref().map(str::trim)) {
        (Registration::Open, _) => None,
        (Registration::Closed, _) => {
            return Err(forbidden("Registration is closed on this network: ask its organisers for an account."))
        }
        (Registration::Invite, None | Some("")) => {
            return Err(forbidden("This network registers by invitation: enter the invite code you were given."))
        }
        (Registration::Invite, Some(code)) => Some(crate::auth::invite_hash(code)),
    };
    let hash = state.passwords.hash(body.password).await.map_err(hashing_failed)?;
    match state.store.insert_user(&username, &display_name, &hash, Role::Member, invite.as_ref().map(|h| &h[..])).await
    {
        Ok(record) => {
            tracing::info!(user = %record.user.username, "registered");
            Ok(json(StatusCode::CREATED, &UserBody { user: record.user }))
        }
        Err(StoreError::Conflict) => Err(HttpError(ApiError::new(
            ErrorCode::Conflict,
            format!("The username {username} is taken; please choose another."),
        ))),
        Err(StoreError::NameInUse) => {
            Err(invalid("That display name is another member's name (or too like it); please choose one of your own."))
        }
        Err(StoreError::NotFound) => {
            Err(forbidden("That invite code does not work: it may be mistyped, used up or expired."))
        }
        Err(err) => Err(internal(err).into()),
    }
}

/// `GET /api/v1/registration`: how this network registers, so a client knows whether
/// to ask for an invite code.
async fn registration(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, &serde_json::json!({ "mode": state.config.registration.as_str() }))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body: LoginBody = parse_body(&headers, body)?;
    // Before anything else: an oversized password is not worth hashing.
    check_password_length(&body.password).map_err(invalid)?;
    let address = state.client_address(peer.ip(), &headers);
    if let Err(wait) = state.logins_per_address.check(&address) {
        tracing::warn!(%address, "login attempts from one address over the limit");
        state.metrics.login(LoginOutcome::Refused);
        return Err(ApiError::rate_limited("login attempts from your address", wait).into());
    }
    // Only a well-formed username gets limit keys, so made-up names cost no memory
    // beyond the address's own budget. Unknown and malformed names still cost one full
    // verification: the answer and its timing are those of a wrong password.
    let username = normalise_username(&body.username).ok();
    if let Some(name) = &username {
        let key = (name.clone(), address);
        if let Some(wait) = state.login_failures.refused(&key) {
            tracing::warn!(%address, account = %name, "login refused: too many failures from this address");
            state.metrics.login(LoginOutcome::Refused);
            return Err(ApiError::rate_limited("failed logins for this account from your address", wait).into());
        }
        // Failures from everywhere slow the account down; they never lock it.
        let delay = login_delay(state.config.login_slowdown_ms, account_failures(&state, name).await);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let credentials = match &username {
        Some(name) => state.store.fetch_credentials(name).await.map_err(internal)?,
        None => None,
    };
    let (record, hash) = match credentials {
        // An erased account has no password: it is nobody's, like an unknown name.
        Some(c) if !c.password_hash.is_empty() => (Some(c.record), Some(c.password_hash)),
        _ => (None, None),
    };
    let verified = state.passwords.verify(body.password, hash).await.map_err(hashing_failed)?;
    let Some(record) = record.filter(|_| verified) else {
        if let Some(name) = username {
            account_failed(&state, &name).await;
            state.login_failures.failed((name, address));
        }
        state.metrics.login(LoginOutcome::Failure);
        return Err(HttpError(ApiError::new(ErrorCode::Unauthenticated, "The username or password is not right.")));
    };
    // A success never counts: this address starts afresh for this account.
    state.login_failures.succeeded(&(record.user.username.clone(), address));
    // Checked after the password, so a ban says nothing to someone without it.
    if let Some(ban) = state.server_ban(record.id).await? {
        return Err(HttpError(ban));
    }
    let token = new_token();
    state.store.insert_token(&token_hash(&token), record.id).await.map_err(internal)?;
    state.metrics.login(LoginOutcome::Success);
    Ok(json(StatusCode::OK, &LoginReply { token, user: record.user }))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    let token = bearer(&headers).ok_or_else(unauthenticated)?;
    let hash = token_hash(token);
    if !state.store.delete_token(&hash).await.map_err(internal)? {
        return Err(unauthenticated());
    }
    state.close_sockets(CloseTarget::Token(hash), close_code::UNAUTHENTICATED, "logged out");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    let token = bearer(&headers).ok_or_else(unauthenticated)?;
    let record = state.token_user(&token_hash(token)).await?.ok_or_else(unauthenticated)?;
    let may_create = record.user.role.may_create(state.config.members_may_create_rooms);
    Ok(json(StatusCode::OK, &MeBody { user: state.me(&record).await?, may_create }))
}

/// `DELETE /api/v1/me` with `{"password"}`: erases the account (PROTOCOL §9.3). The
/// password is asked again: a token left on a shared computer must not be enough.
async fn delete_me(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let token = bearer(&headers).ok_or_else(unauthenticated)?;
    let record = state.token_user(&token_hash(token)).await?.ok_or_else(unauthenticated)?;
    let body: crate::protocol::PasswordBody = parse_body(&headers, body)?;
    let name = record.user.username.clone();
    let delay = login_delay(state.config.login_slowdown_ms, account_failures(&state, &name).await);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let hash = state.store.fetch_credentials(&name).await.map_err(internal)?.map(|c| c.password_hash);
    if !state.passwords.verify(body.password, hash).await.map_err(hashing_failed)? {
        account_failed(&state, &name).await;
        let message = "That password is not right; your account is unchanged.";
        return Err(HttpError(ApiError::new(ErrorCode::Unauthenticated, message)));
    }
    state.erase_account(&record).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/me/export`: everything the server holds about the member, as one JSON
/// file, streamed (PROTOCOL §9.3).
async fn export(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    use futures_util::StreamExt;
    let token = bearer(&headers).ok_or_else(unauthenticated)?;
    let record = state.token_user(&token_hash(token)).await?.ok_or_else(unauthenticated)?;
    let filename = format!("attachment; filename=\"alongside-{}.json\"", record.user.username);
    let parts = crate::export::export(state.store.clone(), record).await.map_err(internal)?;
    let body = axum::body::Body::from_stream(parts.map(|part| {
        part.map_err(|err| {
            // The download ends without its closing bracket: never a silently short file.
            tracing::error!(error = %err, "an export was cut short by a store failure");
            std::io::Error::other("the store failed")
        })
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /api/v1/resources?region=GB`: support resources, without an account (a person
/// in distress may not have one); every resource without a region.
async fn resources(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let resources = match query.get("region").filter(|region| !region.is_empty()) {
        Some(region) => state.care.resources.for_region(Some(&crate::care::parse_region(region)?)),
        None => state.care.resources.all().to_vec(),
    };
    Ok(json(StatusCode::OK, &serde_json::json!({ "resources": resources })))
}

/// `{"status": "ok" | "unavailable", "node": NAME}`: whether this node can serve now.
async fn healthz(State(state): State<AppState>) -> Response {
    let ok = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::error!(node = %state.node, error = %err, "health check failed");
            false
        }
        Err(_) => false,
    };
    let bus = state.bus_healthy();
    if !bus {
        tracing::error!(node = %state.node, "health check failed: the bus is unreachable");
    }
    let (status, word) =
        if ok && bus { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "unavailable") };
    let part = |fine: bool| if fine { "ok" } else { "unavailable" };
    json(status, &serde_json::json!({"status": word, "node": state.node, "store": part(ok), "bus": part(bus)}))
}

/// `GET /api/v1/summits.ics`: every public summit with a start, as iCalendar;
/// `?room=NAME` only that one (the web client's "add to calendar").
async fn summits_ics(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let only = query.get("room");
    let mut summits = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.store.fetch_rooms(after.as_deref(), 500, None).await.map_err(internal)?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        let full = page.len() == 500;
        let wanted = |room: &crate::store::RoomRecord| only.is_none_or(|name| *name == room.name);
        summits.extend(page.into_iter().filter(|room| room.kind == Kind::Summit && !room.private && wanted(room)));
        if !full {
            break;
        }
    }
    if let Some(name) = only.filter(|_| summits.is_empty()) {
        return Err(HttpError(ApiError::new(ErrorCode::NotFound, format!("There is no public summit #{name}."))));
    }
    summits.sort_by_key(|summit| (crate::calendar::times(summit).map(|(start, _)| start), summit.id.0));
    let body = crate::calendar::feed(&summits, crate::protocol::now_ms());
    let kind = HeaderValue::from_static("text/calendar; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// The separate metrics listener's one route (`metrics_listen`).
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(private_metrics)).fallback(not_found)
}

/// The plain-HTTP listener's routes (`redirect_listen`): everything moves to the same
/// path over HTTPS on `https_port`.
pub fn redirect_routes(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| async move {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        // The name without its port (an IPv6 literal keeps its brackets).
        let name = match host.rfind(':') {
            Some(colon) if !host[colon..].contains(']') => &host[..colon],
            _ => host,
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
        if !valid {
            return HttpError(ApiError::new(ErrorCode::BadRequest, "The request names no host to redirect to."))
                .into_response();
        }
        let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{name}{port}{path}");
        match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response(),
            Err(_) => {
                HttpError(ApiError::new(ErrorCode::BadRequest, "That address cannot be redirected.")).into_response()
            }
        }
    })
}

/// `/metrics` on the public port: absent when a separate metrics listener serves them.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.config.metrics_listen.is_empty() {
        return not_found().await.into_response();
    }
    private_metrics(State(state), headers).await
}

async fn private_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let wanted = &state.config.metrics_token;
    if !wanted.is_empty()
        && !bearer(&headers).is_some_and(|given| constant_time_eq(given.as_bytes(), wanted.as_bytes()))
    {
        return HttpError(ApiError::new(ErrorCode::Unauthenticated, "The metrics need the operator's token."))
            .into_response();
    }
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE))], body).into_response()
}

/// Compares secrets in time that depends on their length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The web client: plain files embedded in the binary, so `serve` needs nothing else.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../web/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../web/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../web/dom.js")),
    ("state.js", "text/javascript; charset=utf-8", include_str!("../web/state.js")),
    ("moderation.js", "text/javascript; charset=utf-8", include_str!("../web/moderation.js")),
    ("words.js", "text/javascript; charset=utf-8", include_str!("../web/words.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_str!("../web/ui.js")),
    ("menu.js", "text/javascript; charset=utf-8", include_str!("../web/menu.js")),
    ("care.js", "text/javascript; charset=utf-8", include_str!("../web/care.js")),
    ("warnings.js", "text/javascript; charset=utf-8", include_str!("../web/warnings.js")),
    ("record.js", "text/javascript; charset=utf-8", include_str!("../web/record.js")),
    ("groups.js", "text/javascript; charset=utf-8", include_str!("../web/groups.js")),
    ("summit.js", "text/javascript; charset=utf-8", include_str!("../web/summit.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../web/app.css")),
];

/// Scripts only from this server and never inline, sockets only to this server, no
/// framing: a message that slipped into the page as markup still could not run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'self'";

fn page(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.into(),
    )
        .into_response()
}

/// The page, with the operator's quick-exit destination in it (so quick exit works
/// before anyone logs in).
async fn index(State(state): State<AppState>) -> Response {
    let destination = html_attribute(&state.config.quick_exit_url);
    page("text/html; charset=utf-8", include_str!("../web/index.html").replace("__QUICK_EXIT_URL__", &destination))
}

/// Text fit for a double-quoted HTML attribute.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => page(content_type, *body),
        None => not_found().await.into_response(),
    }
}

async fn not_found() -> HttpError {
    HttpError(ApiError::new(ErrorCode::NotFound, "There is nothing at this address."))
}
