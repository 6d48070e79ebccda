//! Summits (PROTOCOL §12): moving a summit through its phases by hand (`set_phase`) or
//! by a schedule (`set_schedule`), and who may send in each phase.
//!
//! The stored phase and the schedule still to come live on the room record, so every
//! node decides a `send` the same way from the record alone ([`send_rule`], with the
//! entries that have come due applied). Telling members that the phase moved is the
//! server's phase timer's job (`Shared::advance_phases`): one timer per node, due at the
//! next entry of any summit, and the node whose store update wins publishes.
//!
//! Backstage: a new summit opens the private room `<name>-backstage`, owned by its
//! organiser; `set_room_role` and `leave` keep its members the summit's moderators and
//! speakers (`sync_backstage`).
//!
//! Questions: `ask` (pending, for the moderators), `questions`, `upvote`/`unvote` (one
//! vote per member, counted in the store) and `moderate_question`. A vote storm does not
//! become an event per vote: `Shared::question_voted` marks the question, and the vote
//! flusher publishes each marked question's count at most once a second per node.

use super::moderation::{actor, entry, room_moderators};
use super::pages::{fit_page, page_limit, Keep};
use super::requests::{invalid, member_room, standing};
use crate::hub::Session;
use crate::permissions::Standing;
use crate::protocol::LeftReason;
use crate::protocol::LogAction;
use crate::protocol::{
    parse_ts, ApiError, ErrorCode, Event, Phase, Question, QuestionStatus, Reply, RoomKind, ScheduleEntry,
};
use crate::state::{internal, AppState};
use crate::store::{question_rank, NewRoom, UserRecord};
use crate::store::{ModEntry, RoomRecord};

/// Most entries a schedule may hold.
const MAX_SCHEDULE: usize = 32;

/// The summit `room_name`, with the actor allowed to run it.
async fn summit(state: &AppState, session: &Session, room_name: &str, what: &str) -> Result<RoomRecord, ApiError> {
    let room = state.room(room_name).await?;
    if room.kind != RoomKind::Summit {
        return Err(invalid(format!("#{} is a topic room: only summits have phases.", room.name)));
    }
    actor(state, session, &room, Standing::can_change_room_settings, what).await?;
    Ok(RoomRecord::clone(&room))
}

/// `set_phase`: the summit moves to `phase` now; what was left of its schedule goes.
pub(super) async fn set_phase(
    state: &AppState,
    session: &Session,
    room_name: &str,
    phase: Phase,
) -> Result<Reply, ApiError> {
    let room = summit(state, session, room_name, "move the summit to another phase").await?;
    let updated = state.store.update_room_phase(room.id, phase, &[]).await.map_err(internal)?;
    state.room_changed(updated);
    let log = ModEntry { reason: Some(phase.as_str().to_string()), ..entry(Some(&room), LogAction::SetPhase, session) };
    state.store.insert_mod_log(&log).await.map_err(internal)?;
    Ok(Reply::Empty {})
}

/// `set_schedule`: the summit follows `schedule` (ascending); entries already due take
/// effect at once, and the phase timer learns of the rest.
pub(super) async fn set_schedule(
    state: &AppState,
    session: &Session,
    room_name: &str,
    schedule: Vec<ScheduleEntry>,
) -> Result<Reply, ApiError> {
    let room = summit(state, session, room_name, "change the summit's schedule").await?;
    if schedule.len() > MAX_SCHEDULE {
        return Err(invalid(format!("A schedule has at most {MAX_SCHEDULE} entries.")));
    }
    let mut entries = Vec::with_capacity(schedule.len());
    for entry in &schedule {
        let at = parse_ts(&entry.at).ok_or_else(|| {
            invalid(format!("“{}” is not an ISO-8601 time with an offset, like 2026-10-10T09:00:00Z.", entry.at))
        })?;
        if entries.last().is_some_and(|(_, before)| *before >= at) {
            return Err(invalid("The schedule's times must go up: each entry after the one before."));
        }
        entries.push((entry.phase, at));
    }
    // Entries already due are applied now: the stored phase is the last of them, or the
    // phase the summit is in now (an entry of the old schedule may have come due).
    let now = crate::protocol::now_ms();
    let due = entries.iter().take_while(|(_, at)| *at <= now).count();
    let current = room.phase_at(now).unwrap_or(Phase::Hallway);
    let phase = entries[..due].last().map_or(current, |(phase, _)| *phase);
    let updated = state.store.update_room_phase(room.id, phase, &entries[due..]).await.map_err(internal)?;
    state.room_changed(updated);
    state.phases_changed();
    let listed: Vec<String> = schedule.iter().map(|entry| format!("{} {}", entry.phase.as_str(), entry.at)).collect();
    let reason = if listed.is_empty() { "no schedule".to_string() } else { listed.join(", ") };
    let log = ModEntry { reason: Some(reason), ..entry(Some(&room), LogAction::SetSchedule, session) };
    state.store.insert_mod_log(&log).await.map_err(internal)?;
    Ok(Reply::Empty {})
}

/// Whether `standing` may send in a summit in `phase`, or the error that says why not.
/// Speakers are members with the room role `speaker`.
pub(super) fn send_rule(room: &RoomRecord, phase: Phase, standing: Standing, speaker: bool) -> Result<(), ApiError> {
    let moderator = standing.can_change_room_settings();
    let (allowed, why) = match phase {
        Phase::Scheduled => (false, format!("#{} has not begun: it opens for messages later.", room.name)),
        Phase::Closed => (false, format!("#{} has ended: it is kept to read.", room.name)),
        Phase::Lobby => (moderator, format!("#{} is in its lobby: only its hosts post announcements now.", room.name)),
        Phase::Stage | Phase::Qa => (
            moderator || speaker,
            format!("#{} is on stage: only its speakers and hosts post now; you can ask a question.", room.name),
        ),
        Phase::Hallway => (true, String::new()),
    };
    if allowed {
        return Ok(());
    }
    let code = match phase {
        Phase::Scheduled | Phase::Closed => ErrorCode::NotOpen,
        Phase::Lobby | Phase::Stage | Phase::Qa | Phase::Hallway => ErrorCode::Forbidden,
    };
    Err(ApiError::new(code, why))
}

/// Questions are taken while the speakers have the floor.
fn taking_questions(room: &RoomRecord) -> Result<(), ApiError> {
    match room.phase_at(crate::protocol::now_ms()) {
        Some(Phase::Stage | Phase::Qa) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::NotOpen,
            format!("#{} takes questions while its speakers are on stage and in Q&A.", room.name),
        )),
    }
}

/// `ask`: a pending question, which the room's moderators hear of at once.
pub(super) async fn ask(
    state: &AppState,
    session: &Session,
    room_name: &str,
    body: &str,
    anonymous: bool,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    if room.kind != RoomKind::Summit {
        return Err(invalid(format!("#{} is a topic room: questions are for summits.", room.name)));
    }
    taking_questions(&room)?;
    super::requests::check_body(body)?;
    if let Some(mute) = state.mute(room.id, session.user_id) {
        return Err(super::moderation::muted_error(&room.name, &mute));
    }
    let question = state.store.insert_question(&room, session.user_id, body, anonymous).await.map_err(internal)?;
    // Moderators see who asked, anonymous or not: they keep the room safe.
    let event = Event::Question { room: room.name.clone(), question: Question { voted: None, ..question.clone() } };
    state.publish_moderators(room_moderators(state, &room).await?, &event);
    Ok(Reply::Question { question })
}

/// Most questions in one `questions` page, and how many come without a `limit`.
const MAX_QUESTIONS: u32 = 100;
const DEFAULT_QUESTIONS: u32 = 50;

/// `questions`: approved ones first by votes then age, then answered ones; moderators
/// also see pending and dismissed ones, and who asked anonymous ones.
pub(super) async fn questions(
    state: &AppState,
    session: &Session,
    room_name: &str,
    status: Option<QuestionStatus>,
    limit: Option<u32>,
    after_id: Option<i64>,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    let moderator = standing(state, &room, session.user_id, session.user().role).await?.can_change_room_settings();
    let ranks = match status {
        Some(status) if status.is_public() || moderator => (question_rank(status), question_rank(status)),
        Some(status) => {
            let message = format!("Only the moderators of #{} see {} questions.", room.name, status.as_str());
            return Err(ApiError::new(ErrorCode::Forbidden, message));
        }
        None if moderator => (0, 3),
        None => (0, 1),
    };
    let limit = page_limit(limit.map(i64::from), DEFAULT_QUESTIONS, MAX_QUESTIONS)?;
    let found = state.store.fetch_questions(&room, ranks, after_id, limit + 1, session.user_id).await;
    let mut questions = match found {
        Ok(questions) => questions,
        Err(crate::store::StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::NotFound, "There is no such question to page after."))
        }
        Err(err) => return Err(internal(err)),
    };
    if !moderator {
        questions = questions.into_iter().map(Question::for_members).collect();
    }
    let more = fit_page(&mut questions, limit, Keep::First);
    Ok(Reply::Questions { questions, more })
}

/// `upvote` / `unvote`: one vote per member; the room hears the count at most once a
/// second per question (the vote coalescer).
pub(super) async fn vote(
    state: &AppState,
    session: &Session,
    room_name: &str,
    question_id: i64,
    up: bool,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    let voted = state.store.vote_question(&room, question_id, session.user_id, up).await.map_err(internal)?;
    if voted.is_none() {
        let message = format!("#{} has no question {question_id} open to votes.", room.name);
        return Err(ApiError::new(ErrorCode::NotFound, message));
    }
    state.question_voted(&room.name, question_id);
    let question = state.store.fetch_question(&room, question_id, session.user_id).await.map_err(internal)?;
    let question = question.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "That question is gone."))?;
    let moderator = standing(state, &room, session.user_id, session.user().role).await?.can_change_room_settings();
    Ok(Reply::Question { question: if moderator { question } else { question.for_members() } })
}

/// `moderate_question`: approve, answer or dismiss. Members hear of it when they see
/// the question before or after (a dismissed pending question stays among moderators).
pub(super) async fn moderate_question(
    state: &AppState,
    session: &Session,
    room_name: &str,
    question_id: i64,
    status: QuestionStatus,
) -> Result<Reply, ApiError> {
    let room = summit(state, session, room_name, "moderate questions").await?;
    if status == QuestionStatus::Pending {
        return Err(invalid("A question can be approved, answered or dismissed, not made pending again."));
    }
    let updated = state.store.update_question_status(&room, question_id, status).await.map_err(internal)?;
    let Some((before, question)) = updated else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("#{} has no question {question_id}.", room.name)));
    };
    let log = ModEntry {
        seq: Some(question_id),
        reason: Some(status.as_str().to_string()),
        ..entry(Some(&room), LogAction::ModerateQuestion, session)
    };
    state.store.insert_mod_log(&log).await.map_err(internal)?;
    let question = Question { voted: None, ..question };
    if before.is_public() || status.is_public() {
        let event = Event::Question { room: room.name.clone(), question: question.for_members() };
        state.publish_room(&room.name, &event, None, None);
    } else {
        let event = Event::Question { room: room.name.clone(), question };
        state.publish_moderators(room_moderators(state, &room).await?, &event);
    }
    Ok(Reply::Empty {})
}

/// Opens the private backstage room of the new summit `summit`: its organiser is the
/// owner; moderators and speakers join as they get their roles (`sync_backstage`).
pub(super) async fn open_backstage(state: &AppState, session: &Session, summit: &RoomRecord) {
    let new = NewRoom::backstage(&summit.name, session.user_id);
    match state.store.insert_room(&new).await {
        Ok(backstage) => state.room_created(std::sync::Arc::new(backstage), session.user_id),
        // Checked free before the summit was made; taken since by someone else.
        Err(err) => tracing::warn!(error = %err, summit = %summit.name, "cannot open a summit's backstage"),
    }
}

/// `user` is no longer a member of `room` (left, removed or banned): if it is a summit,
/// they are out of its backstage too, off its speakers, and out of its viewer count.
pub(super) async fn member_gone(state: &AppState, room: &RoomRecord, user: &UserRecord) -> Result<(), ApiError> {
    if room.kind != RoomKind::Summit {
        return Ok(());
    }
    sync_backstage(state, room, user, false).await;
    if room.speakers.contains(&user.user.username) {
        // The speakers are on the record: every node's copy and the members follow.
        if let Some(updated) = state.store.fetch_room(&room.name).await.map_err(internal)? {
            state.room_changed(updated);
        }
    } else if room.viewers {
        state.reread_room(&room.name).await;
    }
    Ok(())
}

/// Puts `user` into summit `summit`'s backstage (`inside`) or takes them out; a summit
/// without one (made before backstages existed) has nothing to keep in step.
pub(super) async fn sync_backstage(state: &AppState, summit: &RoomRecord, user: &UserRecord, inside: bool) {
    if summit.kind != RoomKind::Summit || user.id == summit.owner_id {
        return;
    }
    let backstage = match state.store.fetch_room(&crate::protocol::backstage_name(&summit.name)).await {
        Ok(Some(backstage)) => backstage,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, summit = %summit.name, "cannot read a summit's backstage");
            return;
        }
    };
    let changed = if inside {
        state.store.insert_membership(&backstage, user.id).await.map(|added| added.then_some(true))
    } else {
        state.store.delete_membership(backstage.id, user.id).await.map(|removed| removed.then_some(false))
    };
    match changed {
        Ok(Some(true)) => state.member_joined(&backstage.name, user, true),
        Ok(Some(false)) => state.member_left(&backstage.name, user, LeftReason::Left),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, summit = %summit.name, "cannot keep a summit's backstage in step"),
    }
}
