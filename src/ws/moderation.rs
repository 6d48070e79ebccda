//! The moderation requests: one handler each.
//!
//! Every handler checks the actor's [`Standing`] in the room (and, when acting on
//! someone, that the actor outranks them), then makes one store call that changes the
//! state *and* writes the moderation-log entry in the same transaction, then publishes
//! what changed. Live sockets follow through the bus: a kick or ban unsubscribes the
//! target's sockets, a server ban closes them with 4003, a mute lands in every node's
//! mute cache.

use super::pages::{fit_page, page_limit, Keep};
use super::requests::{member_room, standing};
use super::requests::{DEFAULT_LIST, MAX_LIST};
use crate::bus::{CloseTarget, Effect};
use crate::hub::Session;
use crate::permissions::{may_act_server_wide, may_lift_server_wide, RoomStanding, Standing};
use crate::protocol::close_code;
use crate::protocol::RoomKind;
use crate::protocol::{
    now_ms, ApiError, CareKind, ErrorCode, Event, LeftReason, LogAction, Moderation, PageQuery, Reply, Role, RoomRole,
};
use crate::state::{describe_until, internal, AppState};
use crate::store::{BanScope, ModEntry, Restriction, RoomRecord, Sanction, StoreError, UserId, UserRecord};

/// Longest reason, note or report text, in characters.
const MAX_REASON_CHARS: usize = 500;
/// Longest timed mute or ban: ten years.
const MAX_DURATION_S: f64 = 10.0 * 365.0 * 24.0 * 3600.0;
/// Longest slow-mode interval.
const MAX_SLOW_MODE_S: i64 = 3600;

/// Runs one moderation request for an authenticated session.
pub async fn handle(state: &AppState, session: &Session, request: Moderation) -> Result<Reply, ApiError> {
    match request {
        Moderation::Mute { room, user, duration_s, reason } => {
            mute(state, session, &room, &user, duration_s, reason).await
        }
        Moderation::Unmute { room, user } => unmute(state, session, &room, &user).await,
        Moderation::Kick { room, user, reason } => kick(state, session, &room, &user, reason).await,
        Moderation::Ban { room: Some(room), user, duration_s, reason } => {
            ban_from_room(state, session, &room, &user, duration_s, reason).await
        }
        Moderation::Ban { room: None, user, duration_s, reason } => {
            ban_from_server(state, session, &user, duration_s, reason).await
        }
        Moderation::Unban { room: Some(room), user } => unban_from_room(state, session, &room, &user).await,
        Moderation::Unban { room: None, user } => unban_from_server(state, session, &user).await,
        Moderation::DeleteMessage { room, seq, reason } => delete_message(state, session, &room, seq, reason).await,
        Moderation::SlowMode { room, seconds } => slow_mode(state, session, &room, seconds).await,
        Moderation::Lock { room, locked } => lock(state, session, &room, locked).await,
        Moderation::SetRoomRole { room, user, role } => set_room_role(state, session, &room, &user, role).await,
        Moderation::SetRole { user, role } => set_role(state, session, &user, role).await,
        Moderation::Report { room, seq, reason } => report(state, session, &room, seq, reason).await,
        Moderation::Reports { room, page } => reports(state, session, &room, page).await,
        Moderation::ResolveReport { room, id, note } => resolve_report(state, session, &room, id, note).await,
        Moderation::ModLog { room, limit } => mod_log(state, session, room.as_deref(), limit).await,
        Moderation::Sanctions { room } => sanctions(state, session, &room).await,
        Moderation::JoinRequests { room } => super::groups::join_requests(state, session, &room).await,
        Moderation::ApproveJoin { room, user, approve } => {
            super::groups::approve_join(state, session, &room, &user, approve).await
        }
        Moderation::Invite { room, user } => super::groups::invite(state, session, &room, &user).await,
        Moderation::Appeal { sanction_id, text } => super::appeals::appeal(state, session, sanction_id, &text).await,
        Moderation::Appeals { room, page } => super::appeals::appeals(state, session, room.as_deref(), page).await,
        Moderation::ResolveAppeal { appeal_id, outcome, note } => {
            super::appeals::resolve(state, session, appeal_id, outcome, note).await
        }
        Moderation::Warn { room, user, reason } => warn(state, session, &room, &user, reason).await,
        Moderation::Refer { room, seq, note } => refer(state, session, &room, seq, note).await,
        Moderation::Duty { room, on } => duty(state, session, &room, on).await,
        Moderation::HostRule { room, required } => host_rule(state, session, &room, required).await,
        Moderation::ModerateQuestion { room, question_id, status } => {
            super::summits::moderate_question(state, session, &room, question_id, status).await
        }
        Moderation::SetPhase { room, phase } => super::summits::set_phase(state, session, &room, phase).await,
        Moderation::SetSchedule { room, schedule } => {
            super::summits::set_schedule(state, session, &room, schedule).await
        }
        Moderation::SetCw { room, seq, cw, cw_note } => set_cw(state, session, &room, seq, &cw, cw_note).await,
        Moderation::CareAlerts { room, page } => care_alerts(state, session, &room, page).await,
        Moderation::AckCareAlert { room, id, note } => ack_care_alert(state, session, &room, id, note).await,
    }
}

/// Someone acted on, with their standing in the room.
struct Target {
    record: UserRecord,
    standing: Standing,
}

pub(super) async fn user_named(state: &AppState, username: &str) -> Result<UserRecord, ApiError> {
    let username = username.to_lowercase();
    state
        .store
        .fetch_user(&username)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("There is no user named @{username}.")))
}

async fn target(state: &AppState, room: &RoomRecord, username: &str) -> Result<Target, ApiError> {
    let record = user_named(state, username).await?;
    let standing = standing(state, room, record.id, record.user.role).await?;
    Ok(Target { record, standing })
}

/// The actor's standing, refused with `forbidden` unless `allowed` says yes.
pub(super) async fn actor(
    state: &AppState,
    session: &Session,
    room: &RoomRecord,
    allowed: fn(Standing) -> bool,
    what: &str,
) -> Result<Standing, ApiError> {
    let standing = standing(state, room, session.user_id, session.user().role).await?;
    if allowed(standing) {
        Ok(standing)
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, format!("Only the moderators of #{} can {what}.", room.name)))
    }
}

/// The checks every action on a member shares: the room exists, the actor may do
/// `what` there, the target exists (and is a member, if `member_only`), and the actor
/// outranks the target.
async fn act_on(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    allowed: fn(Standing) -> bool,
    what: &str,
    member_only: bool,
) -> Result<(std::sync::Arc<RoomRecord>, Target), ApiError> {
    let room = state.room(room_name).await?;
    let actor = actor(state, session, &room, allowed, what).await?;
    let target = target(state, &room, username).await?;
    if member_only && target.standing.room == RoomStanding::Outsider {
        return Err(not_a_member(&room, &target));
    }
    actor.may_act_on(target.standing).map_err(forbidden)?;
    Ok((room, target))
}

/// Refuses to lift a sanction imposed with more authority than the actor has now
/// (in `room`, or server-wide without one). Nothing in force: nothing to check.
async fn may_lift(
    state: &AppState,
    session: &Session,
    room: Option<&RoomRecord>,
    sanction: Sanction,
    target: UserId,
) -> Result<(), ApiError> {
    let scope = room.map_or(BanScope::Server, |room| BanScope::Room(room.id));
    let imposer = state.store.fetch_sanction_imposer(sanction, scope, target, now_ms()).await.map_err(internal)?;
    let Some((imposer, imposer_role)) = imposer else { return Ok(()) };
    match room {
        Some(room) => {
            let actor = standing(state, room, session.user_id, session.user().role).await?;
            let imposer = standing(state, room, imposer, imposer_role).await?;
            actor.may_lift(imposer).map_err(forbidden)
        }
        None => may_lift_server_wide(session.user().role, imposer_role).map_err(forbidden),
    }
}

fn not_a_member(room: &RoomRecord, target: &Target) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("@{} is not a member of #{}.", target.record.user.username, room.name))
}

pub(super) fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

/// When a timed action ends; `None` = until lifted.
fn until_from(duration_s: Option<f64>) -> Result<Option<i64>, ApiError> {
    match duration_s {
        None => Ok(None),
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_DURATION_S => {
            Ok(Some(now_ms() + (seconds * 1000.0).ceil() as i64))
        }
        Some(_) => Err(invalid("“duration_s” is a positive number of seconds, at most ten years.")),
    }
}

/// A moderator's reason or note: optional, at most 500 characters.
pub(super) fn check_text(text: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match text {
        Some(text) if text.chars().count() > MAX_REASON_CHARS => {
            Err(invalid(format!("“{field}” is at most {MAX_REASON_CHARS} characters.")))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            super::requests::check_no_control_characters(&text, &format!("“{field}”"))?;
            Ok(Some(text))
        }
        None => Ok(None),
    }
}

/// A timed restriction (mute or ban) and the log entry that records it.
fn restriction(
    room: Option<&RoomRecord>,
    action: LogAction,
    actor: &Session,
    target: &UserRecord,
    duration_s: Option<f64>,
    reason: Option<String>,
) -> Result<(Restriction, ModEntry), ApiError> {
    let restriction = Restriction { until: until_from(duration_s)?, reason: check_text(reason, "reason")? };
    let log = ModEntry {
        target: Some(target.user.username.clone()),
        reason: restriction.reason.clone(),
        until: restriction.until,
        ..entry(room, action, actor)
    };
    Ok((restriction, log))
}

pub(super) fn entry(room: Option<&RoomRecord>, action: LogAction, actor: &Session) -> ModEntry {
    ModEntry {
        room: room.map(|r| r.id),
        action,
        actor: actor.user_id,
        target: None,
        seq: None,
        reason: None,
        until: None,
    }
}

async fn mute(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    duration_s: Option<f64>,
    reason: Option<String>,
) -> Result<Reply, ApiError> {
    let (room, target) = act_on(state, session, room_name, username, Standing::can_mute, "mute members", true).await?;
    let (mute, log) = restriction(Some(&room), LogAction::Mute, session, &target.record, duration_s, reason)?;
    state.store.upsert_mute(room.id, target.record.id, &mute, &log).await.map_err(internal)?;
    let event = Event::Muted {
        room: room.name.clone(),
        user: target.record.user.clone(),
        by: session.user().username,
        until: mute.until.map(crate::protocol::format_ts),
        reason: mute.reason.clone(),
    };
    state.publish_room(&room.name, &event, None, Some(Effect::Muted(room.id, target.record.id, mute)));
    Ok(Reply::Empty {})
}

/// A private word: the member hears it, nothing else changes, the log keeps it.
async fn warn(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    reason: String,
) -> Result<Reply, ApiError> {
    let (room, target) = act_on(state, session, room_name, username, Standing::can_mute, "warn members", true).await?;
    let Some(reason) = check_text(Some(reason), "reason")? else {
        return Err(invalid("Say what the member should know: “reason” is what they are told."));
    };
    let log = ModEntry {
        target: Some(target.record.user.username.clone()),
        reason: Some(reason.clone()),
        ..entry(Some(&room), LogAction::Warn, session)
    };
    state.store.insert_mod_log(&log).await.map_err(internal)?;
    let event = Event::Warned { room: room.name.clone(), by: session.user().username, reason };
    state.publish_user(target.record.id, &event);
    Ok(Reply::Empty {})
}

async fn unmute(state: &AppState, session: &Session, room_name: &str, username: &str) -> Result<Reply, ApiError> {
    let (room, target) =
        act_on(state, session, room_name, username, Standing::can_mute, "unmute members", false).await?;
    may_lift(state, session, Some(&room), Sanction::Mute, target.record.id).await?;
    let log = ModEntry {
        target: Some(target.record.user.username.clone()),
        ..entry(Some(&room), LogAction::Unmute, session)
    };
    if !state.store.delete_mute(room.id, target.record.id, &log).await.map_err(internal)? {
        let name = &target.record.user.username;
        return Err(ApiError::new(ErrorCode::NotFound, format!("@{name} is not muted in #{}.", room.name)));
    }
    let event =
        Event::Unmuted { room: room.name.clone(), user: target.record.user.clone(), by: session.user().username };
    state.publish_room(&room.name, &event, None, Some(Effect::Unmuted(room.id, target.record.id)));
    Ok(Reply::Empty {})
}

async fn kick(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    reason: Option<String>,
) -> Result<Reply, ApiError> {
    let (room, target) =
        act_on(state, session, room_name, username, Standing::can_kick, "remove members", true).await?;
    let reason = check_text(reason, "reason")?;
    let log = ModEntry {
        target: Some(target.record.user.username.clone()),
        reason: reason.clone(),
        ..entry(Some(&room), LogAction::Kick, session)
    };
    if !state.store.delete_membership_logged(room.id, target.record.id, &log).await.map_err(internal)? {
        return Err(not_a_member(&room, &target));
    }
    let by = session.user().username;
    state.publish_user(target.record.id, &Event::Kicked { room: room.name.clone(), by, reason });
    state.member_left(&room.name, &target.record, LeftReason::Kicked);
    super::summits::member_gone(state, &room, &target.record).await?;
    Ok(Reply::Empty {})
}

async fn ban_from_room(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    duration_s: Option<f64>,
    reason: Option<String>,
) -> Result<Reply, ApiError> {
    // A room ban also works on someone who is not (yet) a member.
    let (room, target) = act_on(state, session, room_name, username, Standing::can_ban, "ban members", false).await?;
    let (ban, log) = restriction(Some(&room), LogAction::Ban, session, &target.record, duration_s, reason)?;
    let was_member =
        state.store.upsert_ban(BanScope::Room(room.id), target.record.id, &ban, &log).await.map_err(internal)?;
    let event = Event::Banned {
        room: Some(room.name.clone()),
        by: session.user().username,
        reason: ban.reason,
        until: ban.until.map(crate::protocol::format_ts),
    };
    state.publish_user(target.record.id, &event);
    // Whether they were a member comes from the ban's own transaction, not from the
    // standing read before it: a join may have committed in between.
    if was_member {
        state.member_left(&room.name, &target.record, LeftReason::Banned);
        super::summits::member_gone(state, &room, &target.record).await?;
    }
    Ok(Reply::Empty {})
}

async fn ban_from_server(
    state: &AppState,
    session: &Session,
    username: &str,
    duration_s: Option<f64>,
    reason: Option<String>,
) -> Result<Reply, ApiError> {
    let actor = session.user();
    if !actor.role.can_ban_from_server() {
        return Err(forbidden("Only global moderators, organisers and admins can ban from the whole server."));
    }
    let target = user_named(state, username).await?;
    may_act_server_wide(actor.role, target.user.role).map_err(forbidden)?;
    let (ban, log) = restriction(None, LogAction::Ban, session, &target, duration_s, reason)?;
    state.store.upsert_ban(BanScope::Server, target.id, &ban, &log).await.map_err(internal)?;
    let event = Event::Banned {
        room: None,
        by: actor.username,
        reason: ban.reason,
        until: ban.until.map(crate::protocol::format_ts),
    };
    // The event is queued before the close, and the writer sends queued frames first.
    state.publish_user(target.id, &event);
    state.close_sockets(CloseTarget::User(target.id), close_code::BANNED, "banned from the server");
    Ok(Reply::Empty {})
}

async fn unban_from_room(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_ban, "lift bans").await?;
    let target = user_named(state, username).await?;
    may_lift(state, session, Some(&room), Sanction::Ban, target.id).await?;
    let log = ModEntry { target: Some(target.user.username.clone()), ..entry(Some(&room), LogAction::Unban, session) };
    if !state.store.delete_ban(BanScope::Room(room.id), target.id, &log).await.map_err(internal)? {
        let name = &target.user.username;
        return Err(ApiError::new(ErrorCode::NotFound, format!("@{name} is not banned from #{}.", room.name)));
    }
    Ok(Reply::Empty {})
}

async fn unban_from_server(state: &AppState, session: &Session, username: &str) -> Result<Reply, ApiError> {
    if !session.user().role.can_ban_from_server() {
        return Err(forbidden("Only global moderators, organisers and admins can lift a server ban."));
    }
    let target = user_named(state, username).await?;
    may_lift(state, session, None, Sanction::Ban, target.id).await?;
    let log = ModEntry { target: Some(target.user.username.clone()), ..entry(None, LogAction::Unban, session) };
    if !state.store.delete_ban(BanScope::Server, target.id, &log).await.map_err(internal)? {
        let name = &target.user.username;
        return Err(ApiError::new(ErrorCode::NotFound, format!("@{name} is not banned from the server.")));
    }
    Ok(Reply::Empty {})
}

async fn delete_message(
    state: &AppState,
    session: &Session,
    room_name: &str,
    seq: i64,
    reason: Option<String>,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    // Who may look comes first: an outsider learns nothing, not even which seqs exist.
    let standing = standing(state, &room, session.user_id, session.user().role).await?;
    if standing.room == RoomStanding::Outsider && !standing.is_room_moderator() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("Join #{} first: only members can do that.", room.name),
        ));
    }
    let no_such = || ApiError::new(ErrorCode::NotFound, format!("There is no message {seq} in #{}.", room.name));
    let (author, deleted) =
        state.store.fetch_message_author(room.id, seq).await.map_err(internal)?.ok_or_else(no_such)?;
    if author.id != session.user_id {
        actor(state, session, &room, Standing::can_delete_any_message, "delete other people's messages").await?;
    }
    if deleted {
        // Deleting twice changes nothing and tells nobody.
        return Ok(Reply::Empty {});
    }
    let log = ModEntry {
        target: Some(author.user.username.clone()),
        seq: Some(seq),
        reason: check_text(reason, "reason")?,
        ..entry(Some(&room), LogAction::Delete, session)
    };
    match state.store.update_message_deleted(room.id, seq, &log).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(no_such()),
        Err(err) => return Err(internal(err)),
    }
    let event = Event::MessageDeleted { room: room.name.clone(), seq, by: session.user().username };
    state.publish_room(&room.name, &event, None, None);
    Ok(Reply::Empty {})
}

async fn slow_mode(state: &AppState, session: &Session, room_name: &str, seconds: i64) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_change_room_settings, "set slow mode").await?;
    if !(0..=MAX_SLOW_MODE_S).contains(&seconds) {
        return Err(invalid(format!("“seconds” is 0 (off) to {MAX_SLOW_MODE_S}.")));
    }
    let log = ModEntry { reason: Some(format!("{seconds} s")), ..entry(Some(&room), LogAction::SlowMode, session) };
    let updated =
        state.store.update_room_settings(room.id, Some(seconds as u32), None, &log).await.map_err(internal)?;
    state.room_changed(updated);
    Ok(Reply::Empty {})
}

async fn lock(state: &AppState, session: &Session, room_name: &str, locked: bool) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_change_room_settings, "lock or unlock the room").await?;
    let log = entry(Some(&room), if locked { LogAction::Lock } else { LogAction::Unlock }, session);
    let updated = state.store.update_room_settings(room.id, None, Some(locked), &log).await.map_err(internal)?;
    state.room_changed(updated);
    Ok(Reply::Empty {})
}

/// A room moderator goes on or off duty as the room's host; every member hears it.
async fn duty(state: &AppState, session: &Session, room_name: &str, on: bool) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_change_room_settings, "host the room").await?;
    let host = UserRecord { id: session.user_id, user: session.user() };
    if state.store.update_duty(room.id, host.id, on).await.map_err(internal)? {
        state.duty_changed(&room, &host, on);
    }
    Ok(Reply::Empty {})
}

/// A room moderator sets or changes a message's content warnings; members get
/// `message_updated`, each shaped by their own preferences.
async fn set_cw(
    state: &AppState,
    session: &Session,
    room_name: &str,
    seq: i64,
    cw: &[String],
    cw_note: Option<String>,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_change_room_settings, "change a message's content warnings").await?;
    let (tags, note) = super::requests::check_cw(cw, cw_note)?;
    let names = tags.names();
    let described = if names.is_empty() { "no content warning".to_string() } else { names.join(", ") };
    let log = ModEntry {
        seq: Some(seq),
        reason: Some(match &note {
            Some(note) => format!("{described}: {note}"),
            None => described,
        }),
        ..entry(Some(&room), LogAction::SetCw, session)
    };
    let unseen_by = state.unseen_by(&room, seq).await?;
    let message = match state.store.update_message_cw(&room, seq, tags, note.as_deref(), &log).await {
        Ok(message) => message,
        Err(StoreError::NotFound) => {
            let message = format!("There is no message {seq} in #{} to set a warning on.", room.name);
            return Err(ApiError::new(ErrorCode::NotFound, message));
        }
        Err(err) => return Err(internal(err)),
    };
    state.message_updated(&message, unseen_by);
    Ok(Reply::Empty {})
}

/// Whether members may send only while a host is on duty.
async fn host_rule(state: &AppState, session: &Session, room_name: &str, required: bool) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_change_room_settings, "change whether the room needs a host").await?;
    let log = ModEntry {
        reason: Some(if required { "requires a host" } else { "open without a host" }.to_string()),
        ..entry(Some(&room), LogAction::HostRule, session)
    };
    let updated = state.store.update_host_rule(room.id, required, &log).await.map_err(internal)?;
    state.room_changed(updated);
    Ok(Reply::Empty {})
}

async fn set_room_role(
    state: &AppState,
    session: &Session,
    room_name: &str,
    username: &str,
    role: RoomRole,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    let standing = standing(state, &room, session.user_id, session.user().role).await?;
    if !standing.can_set_room_role() {
        return Err(forbidden("Only the room's owner and global moderators can give or take room roles."));
    }
    let target = target(state, &room, username).await?;
    match target.standing.room {
        RoomStanding::Outsider => return Err(not_a_member(&room, &target)),
        RoomStanding::Owner => return Err(invalid("The room's owner always moderates it; their role cannot change.")),
        RoomStanding::Member | RoomStanding::Moderator => {}
    }
    let log = ModEntry {
        target: Some(target.record.user.username.clone()),
        reason: Some(role.as_str().to_string()),
        ..entry(Some(&room), LogAction::SetRoomRole, session)
    };
    if role == RoomRole::Viewer {
        return Err(invalid("Viewers are those who came when a summit was full; it is not a role to give."));
    }
    if role == RoomRole::Speaker && room.kind != RoomKind::Summit {
        return Err(invalid(format!("#{} is a topic room: only summits have speakers.", room.name)));
    }
    match state.store.update_room_role(room.id, target.record.id, role, &log).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(not_a_member(&room, &target)),
        Err(err) => return Err(internal(err)),
    }
    if room.kind == RoomKind::Summit {
        super::summits::sync_backstage(state, &room, &target.record, role != RoomRole::Member).await;
        // A summit's speakers are in its record: every node's copy and its members follow.
        if let Some(updated) = state.store.fetch_room(&room.name).await.map_err(internal)? {
            state.room_changed(updated);
        }
    }
    Ok(Reply::Empty {})
}

async fn set_role(state: &AppState, session: &Session, username: &str, role: Role) -> Result<Reply, ApiError> {
    if !session.user().role.can_set_global_roles() {
        return Err(forbidden("Only admins can change a user's global role."));
    }
    let target = user_named(state, username).await?;
    if target.id == session.user_id {
        return Err(invalid("You cannot change your own role; ask another admin."));
    }
    let log = ModEntry {
        target: Some(target.user.username.clone()),
        reason: Some(role.as_str().to_string()),
        ..entry(None, LogAction::SetRole, session)
    };
    let record = state.store.update_user_role(&target.user.username, role, Some(&log)).await.map_err(internal)?;
    state.user_changed(record);
    Ok(Reply::Empty {})
}

async fn report(
    state: &AppState,
    session: &Session,
    room_name: &str,
    seq: i64,
    reason: String,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    let reason = check_text(Some(reason), "reason")?.ok_or_else(|| invalid("Please say why you are reporting it."))?;
    let reporter = UserRecord { id: session.user_id, user: session.user() };
    // The store keeps a snapshot of the message with the report, so the evidence stays
    // if the author deletes it.
    let report = match state.store.insert_report(&room, seq, &reporter, &reason).await {
        Ok(report) => report,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::NotFound, format!("There is no message {seq} in #{}.", room.name)))
        }
        Err(StoreError::Conflict) => {
            let message = "You have reported this message already; the moderators have your report.";
            return Err(ApiError::new(ErrorCode::Conflict, message));
        }
        Err(err) => return Err(internal(err)),
    };
    state.publish_moderators(room_moderators(state, &room).await?, &Event::Report { report });
    Ok(Reply::Empty {})
}

/// A member asks the room's moderators to look after the author of a message.
async fn refer(
    state: &AppState,
    session: &Session,
    room_name: &str,
    seq: i64,
    note: Option<String>,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    let note = check_text(note, "note")?;
    let alert = match state
        .store
        .insert_care_alert(&room, seq, CareKind::Referral, Some(session.user_id), note.as_deref())
        .await
    {
        Ok(alert) => alert,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::NotFound, format!("There is no message {seq} in #{}.", room.name)))
        }
        Err(err) => return Err(internal(err)),
    };
    state.route_care_alert(&room, alert).await;
    Ok(Reply::Empty {})
}

/// The room and the page asked of one of its moderators' queues (reports, care alerts):
/// room moderators only.
async fn queue_page(
    state: &AppState,
    session: &Session,
    room_name: &str,
    page: &PageQuery,
    what: &str,
) -> Result<(std::sync::Arc<RoomRecord>, u32, i64), ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_review, what).await?;
    let limit = page_limit(page.limit, DEFAULT_LIST, MAX_LIST)?;
    Ok((room, limit, page.after_id.unwrap_or(0)))
}

/// The room's owner and room moderators (global moderators are reached by role).
pub(super) async fn room_moderators(state: &AppState, room: &RoomRecord) -> Result<Vec<UserId>, ApiError> {
    let mut moderators = state.store.fetch_room_moderators(room.id).await.map_err(internal)?;
    moderators.push(room.owner_id);
    Ok(moderators)
}

async fn care_alerts(state: &AppState, session: &Session, room_name: &str, page: PageQuery) -> Result<Reply, ApiError> {
    let (room, limit, after) = queue_page(state, session, room_name, &page, "read care alerts").await?;
    let mut alerts = state.store.fetch_care_alerts(&room, after, limit + 1).await.map_err(internal)?;
    let more = fit_page(&mut alerts, limit, Keep::First);
    Ok(Reply::CareAlerts { alerts, more })
}

/// Someone is looking after it: the room's other moderators are told, so nobody
/// doubles up and nobody assumes another has it.
async fn ack_care_alert(
    state: &AppState,
    session: &Session,
    room_name: &str,
    id: i64,
    note: Option<String>,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_review, "acknowledge care alerts").await?;
    let log = ModEntry { reason: check_text(note, "note")?, ..entry(Some(&room), LogAction::CareAck, session) };
    let Some(alert) = state.store.ack_care_alert(&room, id, &log).await.map_err(internal)? else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("There is no open care alert {id} in #{}.", room.name)));
    };
    state.metrics.care_alerts_acknowledged.inc();
    state.publish_moderators(room_moderators(state, &room).await?, &Event::CareAlert { alert });
    Ok(Reply::Empty {})
}

async fn reports(state: &AppState, session: &Session, room_name: &str, page: PageQuery) -> Result<Reply, ApiError> {
    let (room, limit, after) = queue_page(state, session, room_name, &page, "read reports").await?;
    let mut reports = state.store.fetch_open_reports(&room, after, limit + 1).await.map_err(internal)?;
    let more = fit_page(&mut reports, limit, Keep::First);
    Ok(Reply::Reports { reports, more })
}

async fn resolve_report(
    state: &AppState,
    session: &Session,
    room_name: &str,
    id: i64,
    note: Option<String>,
) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_review, "resolve reports").await?;
    let log = ModEntry { reason: check_text(note, "note")?, ..entry(Some(&room), LogAction::ResolveReport, session) };
    if !state.store.resolve_report(room.id, id, &log).await.map_err(internal)? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("There is no open report {id} in #{}.", room.name)));
    }
    Ok(Reply::Empty {})
}

async fn mod_log(
    state: &AppState,
    session: &Session,
    room_name: Option<&str>,
    limit: Option<i64>,
) -> Result<Reply, ApiError> {
    let room_id = match room_name {
        Some(name) => {
            let room = state.room(name).await?;
            actor(state, session, &room, Standing::can_review, "read the moderation log").await?;
            Some(room.id)
        }
        None if session.user().role.moderates_every_room() => None,
        None => return Err(forbidden("Only global moderators, organisers and admins can read the server's log.")),
    };
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(invalid("“limit” is 1 to 100."));
    }
    let entries = state.store.fetch_mod_log(room_id, limit as u32).await.map_err(internal)?;
    Ok(Reply::ModLog { entries })
}

/// The bans and mutes in force in a room, for its moderators (who may lift them).
async fn sanctions(state: &AppState, session: &Session, room_name: &str) -> Result<Reply, ApiError> {
    let room = state.room(room_name).await?;
    actor(state, session, &room, Standing::can_review, "see who is banned or muted").await?;
    let sanctions = state.store.fetch_room_sanctions(room.id, now_ms()).await.map_err(internal)?;
    Ok(Reply::Sanctions { sanctions })
}

/// The refusal for a member who is muted in a room.
pub fn muted_error(room: &str, mute: &Restriction) -> ApiError {
    let why = mute.reason.as_deref().map(|r| format!(" Reason: {r}")).unwrap_or_default();
    ApiError::new(ErrorCode::Muted, format!("You are muted in #{room} {}.{why}", describe_until(mute.until)))
}
