//! Summits (PROTOCOL §12): moving a summit through its phases by hand (`set_phase`) or
//! by a schedule (`set_schedule`), and who may send in each phase.
//!
//! The stored phase and the schedule still to come live on the room record, so every
//! node decides a `send` the same way from the record alone ([`send_rule`], with the
//! entries that have come due applied). Telling members that the phase moved is the
//! server's phase timer's job (`Shared::advance_phases`): one timer per node, due at the
//! next entry of any summit, and the node whose store update wins publishes.

use super::moderation::actor;
use crate::hub::Session;
use crate::permissions::Standing;
use crate::protocol::{parse_ts, ApiError, ErrorCode, Phase, Reply, RoomKind, ScheduleEntry};
use crate::state::{internal, AppState};
use crate::store::RoomRecord;

/// Most entries a schedule may hold.
const MAX_SCHEDULE: usize = 32;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

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
    // Entries already due are applied now: the stored phase is the last of them.
    let now = crate::protocol::now_ms();
    let due = entries.iter().take_while(|(_, at)| *at <= now).count();
    let phase = entries[..due].last().map_or(room.phase.unwrap_or(Phase::Hallway), |(phase, _)| *phase);
    let updated = state.store.update_room_phase(room.id, phase, &entries[due..]).await.map_err(internal)?;
    state.room_changed(updated);
    state.phases_changed();
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
