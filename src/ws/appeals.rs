//! Appeals (PROTOCOL §9.2): a member contests a sanction of their own record; the
//! moderators who did not impose it answer, and `lifted` lifts it as `unmute` / `unban`
//! would, in the same transaction that records the answer.
//!
//! Who answers: for a room's sanction the room's owner, its moderators and the global
//! moderators; for a server sanction the global moderators. The one who imposed the
//! sanction is left out whenever anyone else could answer, and may not answer then.
//! Lifting needs at least the authority of whoever imposed it, whatever became of the
//! sanction since.

use super::moderation::{check_text, entry, forbidden, room_moderators};
use super::pages::{fit_page, page_limit, Keep};
use super::requests::{standing, DEFAULT_LIST, MAX_LIST};
use crate::bus::Effect;
use crate::hub::Session;
use crate::permissions::{may_lift_server_wide, Standing};
use crate::protocol::{ApiError, AppealOutcome, ErrorCode, Event, LogAction, OwnSanction, PageQuery, Reply};
use crate::state::{internal, AppState};
use crate::store::{AppealRecord, BanScope, Lift, ModEntry, RoomRecord, Sanction, StoreError, UserId, UserRecord};

/// Longest appeal, in characters.
const MAX_APPEAL_CHARS: usize = 2000;

/// `appeal`: the member's own sanction, contested once at a time.
pub(super) async fn appeal(
    state: &AppState,
    session: &Session,
    sanction_id: i64,
    text: &str,
) -> Result<Reply, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("Say why you are appealing: “text” is what the moderators read."));
    }
    if text.chars().count() > MAX_APPEAL_CHARS {
        return Err(invalid(format!("An appeal is at most {MAX_APPEAL_CHARS} characters.")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("An appeal holds text and line breaks, no other control characters."));
    }
    let member = UserRecord { id: session.user_id, user: session.user() };
    let sanction = own_sanction(state, &member, sanction_id).await?;
    let room = match &sanction.room {
        Some(name) => Some(state.room(name).await?),
        None => None,
    };
    let log = ModEntry {
        seq: sanction.seq,
        reason: Some(format!("appeal against {} {}", sanction.action.as_str(), sanction.id)),
        ..entry(room.as_deref(), LogAction::Appeal, session)
    };
    let record = match state.store.insert_appeal(member.id, sanction_id, text, &log).await {
        Ok(record) => record,
        Err(StoreError::Conflict) => {
            let message = "You have appealed this already; the moderators have your appeal and will answer it.";
            return Err(ApiError::new(ErrorCode::Conflict, message));
        }
        Err(err) => return Err(internal(err)),
    };
    let event = Event::Appeal { appeal: record.appeal.clone() };
    for reviewer in reviewers(state, room.as_deref(), &record).await? {
        state.publish_user(reviewer, &event);
    }
    Ok(Reply::Appealed { appeal: record.appeal })
}

/// `appeals`: the open ones of a room (its moderators) or of the server (global
/// moderators), oldest first.
pub(super) async fn appeals(
    state: &AppState,
    session: &Session,
    room_name: Option<&str>,
    page: PageQuery,
) -> Result<Reply, ApiError> {
    let room = match room_name {
        Some(name) => {
            let room = state.room(name).await?;
            let standing = standing(state, &room, session.user_id, session.user().role).await?;
            if !standing.can_review() {
                return Err(forbidden(&format!("Only the moderators of #{} can read its appeals.", room.name)));
            }
            Some(room)
        }
        None if session.user().role.moderates_every_room() => None,
        None => return Err(forbidden("Only global moderators, organisers and admins read appeals of server bans.")),
    };
    let limit = page_limit(page.limit, DEFAULT_LIST, MAX_LIST)?;
    let mut appeals = state
        .store
        .fetch_open_appeals(room.as_ref().map(|room| room.id), page.after_id.unwrap_or(0), limit + 1)
        .await
        .map_err(internal)?;
    let more = fit_page(&mut appeals, limit, Keep::First);
    Ok(Reply::Appeals { appeals, more })
}

/// `resolve_appeal`: upheld, or lifted (ending the mute or ban if it is in force); the
/// member hears the answer.
pub(super) async fn resolve(
    state: &AppState,
    session: &Session,
    id: i64,
    outcome: AppealOutcome,
    note: Option<String>,
) -> Result<Reply, ApiError> {
    let no_such = || ApiError::new(ErrorCode::NotFound, format!("There is no open appeal {id}."));
    let record = state.store.fetch_appeal(id).await.map_err(internal)?.ok_or_else(no_such)?;
    if record.appeal.outcome.is_some() {
        return Err(no_such());
    }
    let room = match record.appeal.room.as_deref() {
        Some(name) => Some(state.room(name).await?),
        None => None,
    };
    let actor = may_answer(state, session, room.as_deref()).await?;
    if record.appellant == session.user_id {
        return Err(forbidden("You cannot answer your own appeal; another moderator will."));
    }
    if record.actor == session.user_id && reviewers(state, room.as_deref(), &record).await? != [session.user_id] {
        return Err(forbidden("You imposed this sanction, so another moderator answers the appeal."));
    }
    let note = check_text(note, "note")?;
    let appellant = state.store.fetch_user_by_id(record.appellant).await.map_err(internal)?.ok_or_else(no_such)?;
    let lift = match outcome {
        AppealOutcome::Upheld => None,
        AppealOutcome::Lifted => {
            may_lift(state, session, room.as_deref(), actor, &record).await?;
            lift_of(room.as_deref(), &record, &appellant, session)
        }
    };
    let log = ModEntry {
        target: Some(appellant.user.username.clone()),
        reason: Some(match &note {
            Some(note) => format!("{}: {note}", outcome.as_str()),
            None => outcome.as_str().to_string(),
        }),
        ..entry(room.as_deref(), LogAction::ResolveAppeal, session)
    };
    let resolved = state.store.resolve_appeal(id, outcome, note.as_deref(), &log, lift.as_ref()).await;
    let Some((appeal, lifted)) = resolved.map_err(internal)? else { return Err(no_such()) };
    // The answer first, then what it changes.
    state.publish_user(appellant.id, &Event::AppealResolved { appeal });
    if let (true, Some(lift)) = (lifted, &lift) {
        lifted_now(state, session, room.as_deref(), lift, &appellant);
    }
    Ok(Reply::Empty {})
}

/// One sanction of the member's own record, as `my_record` lists it.
async fn own_sanction(state: &AppState, member: &UserRecord, id: i64) -> Result<OwnSanction, ApiError> {
    let muted = |room| state.mute(room, member.id).is_some();
    let record = crate::export::own_record(&*state.store, member, muted).await.map_err(internal)?;
    record.into_iter().find(|sanction| sanction.id == id).ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("There is no sanction {id} in your record (see my_record)."))
    })
}

/// Who is told of an appeal and may answer it: the room's moderators (owner, room
/// moderators, global moderators) or, for the server, the global moderators; without
/// whoever imposed the sanction, unless nobody else could answer.
async fn reviewers(
    state: &AppState,
    room: Option<&RoomRecord>,
    record: &AppealRecord,
) -> Result<Vec<UserId>, ApiError> {
    let mut reviewers = match room {
        Some(room) => room_moderators(state, room).await?,
        None => Vec::new(),
    };
    reviewers.extend(state.store.fetch_global_moderators().await.map_err(internal)?);
    reviewers.sort_unstable();
    reviewers.dedup();
    // Never the appellant (a moderator may be sanctioned too).
    reviewers.retain(|id| *id != record.appellant);
    if reviewers.iter().any(|id| *id != record.actor) {
        reviewers.retain(|id| *id != record.actor);
    }
    Ok(reviewers)
}

/// The answering moderator's standing, refused unless they moderate where the
/// sanction applies.
async fn may_answer(
    state: &AppState,
    session: &Session,
    room: Option<&RoomRecord>,
) -> Result<Option<Standing>, ApiError> {
    match room {
        Some(room) => {
            let standing = standing(state, room, session.user_id, session.user().role).await?;
            if standing.can_review() {
                Ok(Some(standing))
            } else {
                Err(forbidden(&format!("Only the moderators of #{} can answer its appeals.", room.name)))
            }
        }
        None if session.user().role.moderates_every_room() => Ok(None),
        None => Err(forbidden("Only global moderators, organisers and admins answer appeals of server bans.")),
    }
}

/// Refuses to lift a sanction imposed with more authority than the actor has.
async fn may_lift(
    state: &AppState,
    session: &Session,
    room: Option<&RoomRecord>,
    actor: Option<Standing>,
    record: &AppealRecord,
) -> Result<(), ApiError> {
    let Some(imposer) = state.store.fetch_user_by_id(record.actor).await.map_err(internal)? else { return Ok(()) };
    match (room, actor) {
        (Some(room), Some(actor)) => {
            let imposer = standing(state, room, imposer.id, imposer.user.role).await?;
            actor.may_lift(imposer).map_err(forbidden)
        }
        _ => may_lift_server_wide(session.user().role, imposer.user.role).map_err(forbidden),
    }
}

/// What lifting the sanction undoes: a mute or ban (the log entry says `unmute` /
/// `unban`); warnings, removals and deletions have nothing left to lift.
fn lift_of(
    room: Option<&RoomRecord>,
    record: &AppealRecord,
    appellant: &UserRecord,
    session: &Session,
) -> Option<Lift> {
    let (sanction, undo) = match record.action {
        LogAction::Mute => (Sanction::Mute, LogAction::Unmute),
        LogAction::Ban => (Sanction::Ban, LogAction::Unban),
        _ => return None,
    };
    Some(Lift {
        sanction,
        scope: room.map_or(BanScope::Server, |room| BanScope::Room(room.id)),
        user: appellant.id,
        log: ModEntry {
            target: Some(appellant.user.username.clone()),
            reason: Some(format!("appeal {}", record.appeal.id)),
            ..entry(room, undo, session)
        },
    })
}

/// Every node hears a lifted mute as an `unmute` would make it heard.
fn lifted_now(state: &AppState, session: &Session, room: Option<&RoomRecord>, lift: &Lift, appellant: &UserRecord) {
    if let (Sanction::Mute, Some(room)) = (lift.sanction, room) {
        let event =
            Event::Unmuted { room: room.name.clone(), user: appellant.user.clone(), by: session.user().username };
        state.publish_room(&room.name, &event, None, Some(Effect::Unmuted(room.id, appellant.id)));
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}
