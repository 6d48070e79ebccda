//! Closed groups (PROTOCOL §9.4): invite codes, private rooms joined by request or
//! invitation, and rooms whose newcomers see only what was said after they joined.

use super::moderation::{forbidden, room_moderators, user_named};
use super::requests::standing;
use crate::hub::Session;
use crate::protocol::{now_ms, ApiError, ErrorCode, Event, JoinRequest, Reply};
use crate::state::{internal, AppState};
use crate::store::{BanScope, RoomRecord, StoreError, UserRecord};

/// Most registrations one invite code may allow.
const MAX_INVITE_USES: u32 = 10_000;
/// Longest an invite code may last: a year.
const MAX_INVITE_S: f64 = 365.0 * 24.0 * 3600.0;

/// `create_invite`: global moderators and up make codes for newcomers.
pub(super) async fn create_invite(
    state: &AppState,
    session: &Session,
    uses: Option<u32>,
    expires_in_s: Option<f64>,
) -> Result<Reply, ApiError> {
    if !session.user().role.moderates_every_room() {
        return Err(forbidden("Only global moderators, organisers and admins can make invite codes."));
    }
    let uses = uses.unwrap_or(1);
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Err(invalid(format!("“uses” is 1 to {MAX_INVITE_USES}.")));
    }
    let expires_at = match expires_in_s {
        None => None,
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_INVITE_S => {
            Some(now_ms() + (seconds * 1000.0).ceil() as i64)
        }
        Some(_) => return Err(invalid("“expires_in_s” is a positive number of seconds, at most a year.")),
    };
    let invite =
        crate::store::create_invite(&*state.store, uses, expires_at, Some(session.user_id)).await.map_err(internal)?;
    tracing::info!(by = %session.username(), uses, "invite code made");
    Ok(Reply::Invited { invite })
}

/// Whether `join` of `room` by this session must wait for a moderator: a private room
/// the user is not a member of, unless they moderate every room.
pub(super) async fn needs_approval(state: &AppState, session: &Session, room: &RoomRecord) -> Result<bool, ApiError> {
    if !room.private || session.user().role.moderates_every_room() {
        return Ok(false);
    }
    Ok(state.store.fetch_room_role(room.id, session.user_id).await.map_err(internal)?.is_none())
}

/// `join` of a private room by a non-member: a join request, which the room's
/// moderators hear of once.
pub(super) async fn request_join(state: &AppState, session: &Session, room: &RoomRecord) -> Result<Reply, ApiError> {
    let now = now_ms();
    for scope in [BanScope::Server, BanScope::Room(room.id)] {
        if let Some(ban) = state.store.fetch_ban(scope, session.user_id, now).await.map_err(internal)? {
            return Err(super::requests::banned_from(&room.name, ban));
        }
    }
    if state.store.insert_join_request(room.id, session.user_id).await.map_err(internal)? {
        let event = Event::JoinRequest { room: room.name.clone(), user: session.user() };
        state.publish_moderators(room_moderators(state, room).await?, &event);
    }
    Ok(Reply::Pending { pending: true })
}

/// The room, if the session moderates it.
async fn moderated_room(
    state: &AppState,
    session: &Session,
    room_name: &str,
    what: &str,
) -> Result<std::sync::Arc<RoomRecord>, ApiError> {
    let room = state.room(room_name).await?;
    if standing(state, &room, session.user_id, session.user().role).await?.can_review() {
        Ok(room)
    } else {
        Err(forbidden(&format!("Only the moderators of #{} can {what}.", room.name)))
    }
}

/// `join_requests`: who is waiting, oldest first.
pub(super) async fn join_requests(state: &AppState, session: &Session, room_name: &str) -> Result<Reply, ApiError> {
    let room = moderated_room(state, session, room_name, "see who asks to join").await?;
    let waiting = state.store.fetch_join_requests(room.id).await.map_err(internal)?;
    let requests = waiting
        .into_iter()
        .map(|(record, ts)| JoinRequest { user: record.user, ts: crate::protocol::format_ts(ts) })
        .collect();
    Ok(Reply::JoinRequests { requests })
}

/// `approve_join`: the asker becomes a member (and hears `member_joined`), or hears
/// `join_refused`.
pub(super) async fn approve_join(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    approve: bool,
) -> Result<Reply, ApiError> {
    let room = moderated_room(state, session, room_name, "answer join requests").await?;
    let target = user_named(state, username).await?;
    if !state.store.delete_join_request(room.id, target.id).await.map_err(internal)? {
        let name = &target.user.username;
        return Err(ApiError::new(ErrorCode::NotFound, format!("@{name} has not asked to join #{}.", room.name)));
    }
    if approve {
        admit(state, &room, &target).await?;
    } else {
        state.publish_user(target.id, &Event::JoinRefused { room: room.name.clone() });
    }
    Ok(Reply::Empty {})
}

/// `invite`: a moderator makes someone a member of the room.
pub(super) async fn invite(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
) -> Result<Reply, ApiError> {
    let room = moderated_room(state, session, room_name, "invite people").await?;
    let target = user_named(state, username).await?;
    admit(state, &room, &target).await?;
    Ok(Reply::Empty {})
}

/// Makes `target` a member; the room and their sockets hear `member_joined`.
async fn admit(state: &AppState, room: &RoomRecord, target: &UserRecord) -> Result<(), ApiError> {
    match state.store.insert_membership(room, target.id).await {
        Ok(true) => {
            state.member_joined(&room.name, target, true);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(StoreError::Banned(_)) => {
            let name = &target.user.username;
            Err(ApiError::new(ErrorCode::Banned, format!("@{name} is banned from #{}; lift the ban first.", room.name)))
        }
        Err(StoreError::Full) => Err(ApiError::new(ErrorCode::Full, format!("#{} is full.", room.name))),
        Err(err) => Err(internal(err)),
    }
}

/// The seq after which `session` may read `room`: 0, or in a `since_join` room the
/// room's last seq when they joined (everything, for a non-member, is out of reach).
pub(super) async fn history_floor(state: &AppState, session: &Session, room: &RoomRecord) -> Result<i64, ApiError> {
    if !room.since_join {
        return Ok(0);
    }
    let joined = state.store.fetch_joined_seq(room.id, session.user_id).await.map_err(internal)?;
    Ok(joined.unwrap_or(i64::MAX))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}
