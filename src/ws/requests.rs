//! One small handler per authenticated request.
//!
//! The checks every room request needs (the room exists, the caller is a member) run in
//! [`member_room`]; each handler then does its one job: validate its fields, call the
//! store, publish what changed, and return the reply. Handlers never write to a socket
//! directly: replies go back to the reader, events go through the bus.

use super::pages::{fit_page, page_limit, Keep};
use crate::hub::Session;
use crate::permissions::{RoomStanding, Standing};
use crate::protocol::{
    format_ts, now_ms, parse_ts, ApiError, CreateRoom, CwChanges, CwTags, ErrorCode, Event, HistoryQuery,
    HistoryVisibility, LeftReason, Member, MembersQuery, Message, PageQuery, Phase, Reply, Request, Role, Room,
    RoomKind, RoomRole, SearchQuery, SendMessage, Shape, Visibility, CW_NOTE_MAX,
};
use crate::state::{describe_until, internal, AppState};
use crate::store::{
    BanScope, HistoryRange, NewMessage, NewRoom, Restriction, RoomId, RoomRecord, SearchCursor, StoreError, UserId,
    UserRecord,
};
use std::sync::Arc;

/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 4000;
/// Most users listed as online in a `join` reply.
const MAX_ONLINE_LISTED: usize = 200;
/// Messages in a `join` reply, and the default `history` page.
const DEFAULT_PAGE: u32 = 50;
/// The default and largest page of `rooms` and `reports`.
pub(super) const DEFAULT_LIST: u32 = 50;
pub(super) const MAX_LIST: u32 = 200;
/// Longest room topic, in characters.
const MAX_TOPIC_CHARS: usize = 500;
/// Longest `client_msg_id`, in characters.
const MAX_CLIENT_MSG_ID_CHARS: usize = 64;

/// Runs one request for an authenticated session.
pub async fn handle(state: &AppState, session: &Arc<Session>, request: Request) -> Result<Reply, ApiError> {
    match request {
        Request::Auth { .. } => Err(ApiError::new(ErrorCode::BadRequest, "This socket is already authenticated.")),
        Request::Rooms(page) => rooms(state, session, page).await,
        Request::Resources { region } => resources(state, region),
        Request::SetProfile { region } => set_profile(state, session, region).await,
        Request::Preferences => Ok(Reply::Preferences { preferences: session.preferences().to_wire() }),
        Request::SetPreferences { cw } => set_preferences(state, session, &cw).await,
        Request::Reveal { room, seq } => reveal(state, session, &room, seq).await,
        Request::Block { user } => block(state, session, &user, true).await,
        Request::Unblock { user } => block(state, session, &user, false).await,
        Request::MyRecord => my_record(state, session).await,
        Request::CreateInvite { uses, expires_in_s } => {
            super::groups::create_invite(state, session, uses, expires_in_s).await
        }
        Request::Blocks => {
            let users = state.store.fetch_blocks(session.user_id).await.map_err(internal)?;
            Ok(Reply::Blocks { users: users.into_iter().map(|record| record.user).collect() })
        }
        Request::CreateRoom(fields) => create_room(state, session, fields).await,
        Request::Join { room } => join(state, session, &room).await,
        Request::Leave { room } => leave(state, session, &room).await,
        Request::Send(fields) => send(state, session, fields).await,
        Request::History(query) => history(state, session, query).await,
        Request::Typing { room } => typing(state, session, &room).await,
        Request::Members(query) => members(state, session, query).await,
        Request::Search(query) => search(state, session, query).await,
        Request::MarkRead { room, seq } => mark_read(state, session, &room, seq).await,
        Request::Ask { room, body, anonymous } => super::summits::ask(state, session, &room, &body, anonymous).await,
        Request::Questions { room, status, limit, after_id } => {
            super::summits::questions(state, session, &room, status, limit, after_id).await
        }
        Request::Vote { room, question_id, up } => super::summits::vote(state, session, &room, question_id, up).await,
        Request::Edit { room, seq, body } => edit(state, session, &room, seq, body).await,
        Request::React { room, seq, emoji, add } => react(state, session, &room, seq, &emoji, add).await,
        Request::Moderate(request) => super::moderation::handle(state, session, request).await,
        #[cfg(feature = "test-hooks")]
        Request::TestPanic => panic!("a test asked this handler to panic"),
        #[cfg(feature = "test-hooks")]
        Request::TestLoseMessages { count } => {
            state.lose_next_messages(count);
            Ok(Reply::Empty {})
        }
    }
}

/// The room, if it exists and the session's user is a member.
pub(super) async fn member_room(state: &AppState, session: &Session, name: &str) -> Result<Arc<RoomRecord>, ApiError> {
    let room = state.room(name).await?;
    if session.is_in(&room.name) {
        Ok(room)
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, format!("Join #{name} first: only members can do that.")))
    }
}

/// A user's standing in a room: global role plus owner / room role / membership.
pub(super) async fn standing(
    state: &AppState,
    room: &RoomRecord,
    user: UserId,
    global: Role,
) -> Result<Standing, ApiError> {
    let room_role = state.store.fetch_room_role(room.id, user).await.map_err(internal)?;
    Ok(Standing { global, room: RoomStanding::from_membership(room_role, room.owner_id == user) })
}

pub(super) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

/// Text fields take no control characters but line breaks and tabs (PROTOCOL.md §7):
/// they render as nothing, or as escapes six times their size.
pub(super) fn check_no_control_characters(text: &str, what: &str) -> Result<(), ApiError> {
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(format!("{what} cannot contain control characters (other than line breaks and tabs).")));
    }
    Ok(())
}

async fn rooms(state: &AppState, session: &Session, page: PageQuery) -> Result<Reply, ApiError> {
    let limit = page_limit(page.limit, DEFAULT_LIST, MAX_LIST)?;
    // Private rooms are listed to their members, and to those who moderate every room.
    let viewer = (!session.user().role.moderates_every_room()).then_some(session.user_id);
    let mut rooms = state.rooms(page.after.as_deref(), limit + 1, viewer).await?;
    let more = fit_page(&mut rooms, limit, Keep::First);
    // What is new where, in the rooms one is a member of.
    for room in rooms.iter_mut().filter(|room| session.is_in(&room.name)) {
        let record = state.room(&room.name).await?;
        let unread = state.store.fetch_unread(record.id, session.user_id, MAX_UNREAD).await.map_err(internal)?;
        (room.unread, room.mentions_unread) = (Some(unread.messages), Some(unread.mentions));
    }
    Ok(Reply::Rooms { rooms, more })
}

/// Checks a room name: 2–64 of `a-z 0-9 _ -`.
fn check_room_name(name: &str) -> Result<(), ApiError> {
    if crate::protocol::is_room_name(name) {
        Ok(())
    } else {
        Err(invalid("Room names are 2 to 64 characters from a-z, 0-9, '_' and '-'."))
    }
}

async fn create_room(state: &AppState, session: &Session, fields: CreateRoom) -> Result<Reply, ApiError> {
    let user = session.user();
    let allowed = match fields.kind {
        RoomKind::Topic => user.role.can_create_topic_room(state.config.members_may_create_rooms),
        RoomKind::Summit => user.role.can_create_summit_room(),
    };
    if !allowed {
        let who = match fields.kind {
            RoomKind::Topic => "moderators, organisers and admins",
            RoomKind::Summit => "organisers and admins",
        };
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("Only {who} can create {} rooms.", fields.kind.as_str()),
        ));
    }
    check_room_name(&fields.name)?;
    let topic = fields.topic.unwrap_or_default();
    if topic.chars().count() > MAX_TOPIC_CHARS || topic.chars().any(char::is_control) {
        return Err(invalid(format!("A topic is at most {MAX_TOPIC_CHARS} characters, with no control characters.")));
    }
    let parse = |field: &str, value: Option<String>| -> Result<Option<i64>, ApiError> {
        value
            .map(|text| {
                parse_ts(&text).ok_or_else(|| {
                    invalid(format!("“{field}” must be an ISO-8601 time with an offset, like 2026-10-10T09:00:00Z."))
                })
            })
            .transpose()
    };
    let starts_at = parse("starts_at", fields.starts_at)?;
    let ends_at = parse("ends_at", fields.ends_at)?;
    if fields.kind == RoomKind::Topic
        && (starts_at.is_some() || ends_at.is_some() || fields.capacity.is_some() || fields.viewers)
    {
        return Err(invalid("Only summit rooms have a schedule, a capacity or viewers."));
    }
    if let (Some(start), Some(end)) = (starts_at, ends_at) {
        if end <= start {
            return Err(invalid("“ends_at” must be after “starts_at”."));
        }
    }
    if fields.capacity == Some(0) {
        return Err(invalid("“capacity” must be at least 1."));
    }
    if fields.kind == RoomKind::Summit {
        // Its backstage room takes the name with `-backstage` after it.
        let max = crate::protocol::MAX_SUMMIT_NAME;
        if fields.name.len() > max {
            return Err(invalid(format!("A summit's name is at most {max} characters (its backstage room adds ten).")));
        }
        let backstage = crate::protocol::backstage_name(&fields.name);
        if state.store.fetch_room(&backstage).await.map_err(internal)?.is_some() {
            let message = format!("A room named #{backstage} already exists: choose another name for the summit.");
            return Err(ApiError::new(ErrorCode::Conflict, message));
        }
    }
    let new = NewRoom {
        name: fields.name.clone(),
        topic,
        kind: fields.kind,
        owner: session.user_id,
        starts_at,
        ends_at,
        capacity: fields.capacity,
        requires_host: fields.requires_host,
        private: fields.visibility == Visibility::Private,
        since_join: fields.history_visibility == HistoryVisibility::SinceJoin,
        viewers: fields.viewers,
        session: None,
        time_zone: String::new(),
        schedule: Vec::new(),
    };
    let record = match state.store.insert_room(&new).await {
        Ok(record) => Arc::new(record),
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(ErrorCode::Conflict, format!("A room named #{} already exists.", fields.name)))
        }
        Err(err) => return Err(internal(err)),
    };
    // The owner is its first member; its sockets start receiving the room now.
    state.room_created(record.clone(), session.user_id);
    if record.kind == RoomKind::Summit {
        super::summits::open_backstage(state, session, &record).await;
    }
    tracing::info!(room = %record.name, kind = record.kind.as_str(), owner = %user.username, "room created");
    Ok(Reply::Room { room: state.room_view(&record) })
}

async fn join(state: &AppState, session: &Session, name: &str) -> Result<Reply, ApiError> {
    let room = state.room(name).await?;
    if super::groups::needs_approval(state, session, &room).await? {
        return super::groups::request_join(state, session, &room).await;
    }
    // The store checks for a ban in the transaction that makes the member, so a ban
    // committed first always wins.
    let newly = match state.store.insert_membership(&room, session.user_id).await {
        Ok(newly) => newly,
        Err(StoreError::Banned(ban)) => return Err(banned_from(&room.name, ban)),
        Err(StoreError::Full) => {
            let capacity = room.capacity.unwrap_or_default();
            return Err(ApiError::new(ErrorCode::Full, format!("#{name} is full: it holds {capacity} members.")));
        }
        Err(err) => return Err(internal(err)),
    };
    // Receive the room before reading its latest messages: a message committed in
    // between then arrives twice (the client keeps one per seq), never not at all.
    let user = UserRecord { id: session.user_id, user: session.user() };
    state.member_joined(&room.name, &user, newly);
    // A ban or kick that committed after the insert may already have unsubscribed the
    // user's sockets, which the two steps above would undo. So look again, after every
    // step that subscribes: a removal that commits after this read unsubscribes them in
    // its turn, and one that committed before it is seen here and undone here.
    let Some(room_role) = state.store.fetch_room_role(room.id, session.user_id).await.map_err(internal)? else {
        let ban = state.store.fetch_ban(BanScope::Room(room.id), session.user_id, now_ms()).await.map_err(internal)?;
        let reason = if ban.is_some() { LeftReason::Banned } else { LeftReason::Left };
        // Every node applies it; in this race the room may hear the departure twice.
        state.member_left(&room.name, &user, reason);
        return Err(match ban {
            Some(ban) => banned_from(&room.name, ban),
            None => ApiError::new(ErrorCode::Forbidden, format!("You were removed from #{name} as you joined.")),
        });
    };
    // The client learns from this whether to show its moderator tools.
    let standing = Standing {
        global: user.user.role,
        room: RoomStanding::from_membership(Some(room_role), room.owner_id == user.id),
    };
    let range = HistoryRange { before: None, after: None, limit: DEFAULT_PAGE + 1 };
    let mut messages = state.store.fetch_messages(&room, range).await.map_err(internal)?;
    let more = fit_page(&mut messages, DEFAULT_PAGE, Keep::Last);
    let more = keep_after(&mut messages, super::groups::history_floor(state, session, &room).await?) && more;
    mark_own_reactions(state, room.id, session.user_id, &mut messages).await?;
    shape_for(state, session, &mut messages);
    let unread = state.store.fetch_unread(room.id, session.user_id, MAX_UNREAD).await.map_err(internal)?;
    // One more viewer: the summit's count is read again on every node.
    let room =
        if room_role == RoomRole::Viewer && newly { state.reread_room(&room.name).await.unwrap_or(room) } else { room };
    Ok(Reply::Joined {
        room: Room {
            my_role: Some(standing.my_role()),
            unread: Some(unread.messages),
            mentions_unread: Some(unread.mentions),
            ..state.room_view(&room)
        },
        online: state.online_users(&room.name, MAX_ONLINE_LISTED),
        messages,
        more,
        viewer: room_role == RoomRole::Viewer,
    })
}

/// The refusal for a member banned from a room, with the ban's end and reason.
pub(super) fn banned_from(room: &str, ban: Restriction) -> ApiError {
    let why = ban.reason.map(|r| format!(" Reason: {r}")).unwrap_or_default();
    let until = describe_until(ban.until);
    ApiError::new(ErrorCode::Banned, format!("You are banned from #{room} {until}.{why}"))
}

async fn leave(state: &AppState, session: &Session, name: &str) -> Result<Reply, ApiError> {
    let room = state.room(name).await?;
    if !state.store.delete_membership(room.id, session.user_id).await.map_err(internal)? {
        return Err(ApiError::new(ErrorCode::Forbidden, format!("You are not a member of #{name}.")));
    }
    let user = UserRecord { id: session.user_id, user: session.user() };
    state.member_left(&room.name, &user, LeftReason::Left);
    super::summits::member_gone(state, &room, &user).await?;
    Ok(Reply::Empty {})
}

async fn send(state: &AppState, session: &Session, fields: SendMessage) -> Result<Reply, ApiError> {
    let room = member_room(state, session, &fields.room).await?;
    check_body(&fields.body)?;
    let (cw, cw_note) = check_cw(&fields.cw, fields.cw_note)?;
    if let Some(id) = &fields.client_msg_id {
        if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID_CHARS {
            return Err(invalid(format!("“client_msg_id” is 1 to {MAX_CLIENT_MSG_ID_CHARS} characters.")));
        }
    }
    check_window(&room)?;
    if let Some(mute) = state.mute(room.id, session.user_id) {
        return Err(super::moderation::muted_error(&room.name, &mute));
    }
    // A summit's phase decides who may send, and its viewers never do. Only a summit
    // with viewers, or in a phase that restricts, pays for the read of the room role
    // (read now, not the cached speakers list: a speaker who left and came back is a
    // member again); a summit in its hallway without viewers sends as a topic room.
    let phase = room.phase_at(now_ms()).unwrap_or(Phase::Hallway);
    if room.kind == RoomKind::Summit && (room.viewers || phase != Phase::Hallway) {
        let room_role = state.store.fetch_room_role(room.id, session.user_id).await.map_err(internal)?;
        if room_role == Some(RoomRole::Viewer) {
            let message = format!("You are viewing #{}: viewers read along, ask and vote, but do not post.", room.name);
            return Err(ApiError::new(ErrorCode::Full, message));
        }
        if phase != Phase::Hallway {
            let in_room = RoomStanding::from_membership(room_role, room.owner_id == session.user_id);
            let standing = Standing { global: session.user().role, room: in_room };
            super::summits::send_rule(&room, phase, standing, room_role == Some(RoomRole::Speaker))?;
        }
    }
    let slow_mode = room.slow_mode_s > 0;
    let waiting_for_host = room.requires_host && state.hosts_on_duty(room.id).is_empty();
    if room.locked || slow_mode || waiting_for_host {
        // Only rooms with a lock, slow mode or no host pay for this read: moderators
        // are exempt.
        let standing = standing(state, &room, session.user_id, session.user().role).await?;
        if !standing.can_change_room_settings() {
            if room.locked {
                let message = format!("#{} is locked: only its moderators can post right now.", room.name);
                return Err(ApiError::new(ErrorCode::Forbidden, message));
            }
            if waiting_for_host {
                let message = format!(
                    "#{} is waiting for a host: members can post once one of its moderators is on duty.",
                    room.name
                );
                return Err(ApiError::new(ErrorCode::NotOpen, message));
            }
            check_slow_mode(state, &room, session.user_id).await?;
        }
    }
    if let Some(seq) = fields.reply_to {
        // Only replies pay for this read. A deleted message can still be answered.
        if state.store.fetch_message_author(room.id, seq).await.map_err(internal)?.is_none() {
            let message = format!("There is no message {seq} in #{} to reply to.", room.name);
            return Err(ApiError::new(ErrorCode::NotFound, message));
        }
    }
    // Only bodies with an `@name` in them pay for the lookup.
    let named = mentioned_names(&fields.body);
    let mentioned = state.store.fetch_members_named(room.id, &named).await.map_err(internal)?;
    let author = UserRecord { id: session.user_id, user: session.user() };
    let new = NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        author,
        body: fields.body,
        client_msg_id: fields.client_msg_id,
        reply_to: fields.reply_to,
        mentions: mentioned.iter().map(|member| member.user.username.clone()).collect(),
        cw,
        cw_note,
    };
    // Returns after the commit; the `message` event has gone out by then.
    let stored = state.store.insert_message(new).await.map_err(|err| {
        tracing::error!(error = %err, room = %room.name, "message not stored");
        ApiError::new(
            ErrorCode::Internal,
            "Not sent: the server could not save your message. Please try again in a moment.",
        )
    })?;
    if !stored.duplicate {
        let author = session.username();
        for member in mentioned.iter().filter(|member| member.id != session.user_id && !state.blocks(member.id, author))
        {
            state.publish_user(member.id, &Event::Mention { room: room.name.clone(), seq: stored.message.seq });
        }
        // Someone who may be in crisis: the message went out like any other; they
        // alone get the support they can reach now.
        if stored.message.body.as_deref().is_some_and(|body| state.care.phrases.matches(body)) {
            state.offer_care(session.user_id, &room, stored.message.seq).await;
        }
    }
    Ok(Reply::Sent { message: stored.message })
}

/// `resources`: a region's support resources, then the international ones; all of
/// them without a region.
fn resources(state: &AppState, region: Option<String>) -> Result<Reply, ApiError> {
    let resources = match region {
        Some(region) => state.care.resources.for_region(Some(&crate::care::parse_region(&region)?)),
        None => state.care.resources.all().to_vec(),
    };
    Ok(Reply::Resources { resources })
}

/// `set_profile`: one's own region (never shown to anyone else).
async fn set_profile(state: &AppState, session: &Session, region: Option<String>) -> Result<Reply, ApiError> {
    let region = region.as_deref().map(crate::care::parse_region).transpose()?;
    state.store.update_user_region(session.user_id, region.as_deref()).await.map_err(internal)?;
    Ok(Reply::Profile { user: crate::protocol::Me { user: session.user(), region } })
}

/// Most words a search query has, in characters.
const MAX_QUERY_CHARS: usize = 200;

async fn search(state: &AppState, session: &Session, query: SearchQuery) -> Result<Reply, ApiError> {
    let limit = page_limit(query.limit, 20, 50)?;
    if query.query.trim().is_empty() || query.query.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(format!("“query” is 1 to {MAX_QUERY_CHARS} characters of words to find.")));
    }
    let room = match &query.room {
        Some(name) => Some(member_room(state, session, name).await?.id),
        None => None,
    };
    let before = match query.before.as_deref() {
        None => None,
        Some(cursor) => {
            Some(parse_cursor(cursor).ok_or_else(|| invalid("“before” is not a cursor this server gave."))?)
        }
    };
    let mut found =
        state.store.search_messages(session.user_id, room, &query.query, before, limit + 1).await.map_err(internal)?;
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = found.last().filter(|_| more).map(|(_, cursor)| format!("{}.{}", cursor.ts, cursor.key));
    // A blocked author's messages are not found at all: a stub is no search result.
    let blocked = state.blocked_names(session.user_id);
    let mut messages: Vec<Message> = found
        .into_iter()
        .map(|(message, _)| message)
        .filter(|message| !blocked.as_ref().is_some_and(|names| names.contains(&message.author.username)))
        .collect();
    shape_for(state, session, &mut messages);
    Ok(Reply::Found { messages, next })
}

/// A search cursor as `next` wrote it: `ts.key`.
fn parse_cursor(text: &str) -> Option<SearchCursor> {
    let (ts, key) = text.split_once('.')?;
    Some(SearchCursor { ts: ts.parse().ok()?, key: key.parse().ok()? })
}

/// Most members one message can name.
const MAX_MENTIONS: usize = 20;

/// The usernames written as `@name` in a body, lower-cased, each once, at most
/// [`MAX_MENTIONS`]. A trailing `.` or `-` is punctuation, not part of the name.
fn mentioned_names(body: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut names: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find('@') {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + 1..];
        let end = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
        rest = &after[end..];
        // `ada@example.org` is an address, not a mention.
        if before.is_some_and(is_name_char) {
            continue;
        }
        let name = after[..end].trim_end_matches(['.', '-']).to_ascii_lowercase();
        if (3..=32).contains(&name.len()) && !names.contains(&name) {
            names.push(name);
            if names.len() == MAX_MENTIONS {
                break;
            }
        }
    }
    names
}

/// A message body: not empty, not too long, no control characters.
pub(super) fn check_body(body: &str) -> Result<(), ApiError> {
    let length = body.chars().count();
    if length > MAX_BODY_CHARS {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("A message is at most {MAX_BODY_CHARS} characters; this one has {length}."),
        ));
    }
    if body.trim().is_empty() {
        return Err(invalid("The message is empty."));
    }
    check_no_control_characters(body, "A message")
}

/// The author rewrites their own message. Members see `message_updated`; a report
/// already filed keeps the text as it was when reported.
async fn edit(state: &AppState, session: &Session, room_name: &str, seq: i64, body: String) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    check_body(&body)?;
    check_window(&room)?;
    // A mute silences edits too: otherwise it could be sidestepped by rewriting old messages.
    if let Some(mute) = state.mute(room.id, session.user_id) {
        return Err(super::moderation::muted_error(&room.name, &mute));
    }
    let author = UserRecord { id: session.user_id, user: session.user() };
    // Read before the change: a failed read changes nothing.
    let unseen_by = state.unseen_by(&room, seq).await?;
    let message = match state.store.update_message_body(&room, seq, &author, &body).await {
        Ok(message) => message,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("There is no message {seq} of yours in #{} that can be edited.", room.name),
            ))
        }
        Err(err) => {
            tracing::error!(error = %err, room = %room.name, "edit not stored");
            return Err(ApiError::new(
                ErrorCode::Internal,
                "Not edited: the server could not save your change. Please try again in a moment.",
            ));
        }
    };
    state.message_updated(&message, unseen_by);
    Ok(Reply::Sent { message })
}

/// A member adds or takes back a reaction; members hear the new counts.
async fn react(
    state: &AppState,
    session: &Session,
    room_name: &str,
    seq: i64,
    emoji: &str,
    add: bool,
) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    let allowed = &state.config.reactions;
    if !allowed.split_whitespace().any(|e| e == emoji) {
        return Err(invalid(format!("Reactions here are one of: {allowed}.")));
    }
    if let Some(mute) = state.mute(room.id, session.user_id) {
        return Err(super::moderation::muted_error(&room.name, &mute));
    }
    let reactions = match state.store.update_reaction(room.id, seq, session.user_id, emoji, add).await {
        Ok(Some(reactions)) => reactions,
        // Nothing changed: nothing to tell the room.
        Ok(None) => return Ok(Reply::Empty {}),
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::NotFound, format!("There is no message {seq} in #{}.", room.name)))
        }
        Err(err) => return Err(internal(err)),
    };
    state.publish_room(&room.name, &Event::Reactions { room: room.name.clone(), seq, reactions }, None, None);
    Ok(Reply::Empty {})
}

/// One message per `slow_mode_s` for members, on whichever node they send. The time is
/// taken when the check passes, so two quick sends from two sockets cannot both slip
/// through.
async fn check_slow_mode(state: &AppState, room: &RoomRecord, user: UserId) -> Result<(), ApiError> {
    let interval = std::time::Duration::from_secs(u64::from(room.slow_mode_s));
    let wait = match &state.cluster {
        Some(cluster) => match cluster.claim_send(room.id, user, interval).await {
            Ok(wait) => wait,
            Err(err) => {
                tracing::warn!(error = %err, "slow mode falls back to this node's own count");
                claim_send_here(state, room.id, user, interval)
            }
        },
        None => claim_send_here(state, room.id, user, interval),
    };
    match wait {
        None => Ok(()),
        Some(wait) => {
            let wait = wait.as_secs_f64().ceil().max(1.0);
            Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("Slow mode is on in #{}: you can send again in {wait} seconds.", room.name),
            ))
        }
    }
}

/// Slow mode as this node counts it: the wait left, or `None` (and the send taken).
fn claim_send_here(
    state: &AppState,
    room: RoomId,
    user: UserId,
    interval: std::time::Duration,
) -> Option<std::time::Duration> {
    let now = std::time::Instant::now();
    let mut last = state.last_sends.entry((room, user)).or_insert(now - interval);
    let since = now.duration_since(*last);
    if since < interval {
        return Some(interval - since);
    }
    *last = now;
    None
}

/// Content-warning tags and note as `send` and `set_cw` take them: known tags, a
/// note of at most [`CW_NOTE_MAX`] characters without control characters, and a note
/// only with a tag (an empty one is none).
pub(super) fn check_cw(tags: &[String], note: Option<String>) -> Result<(CwTags, Option<String>), ApiError> {
    let tags = CwTags::parse(tags).map_err(invalid)?;
    let note = note.map(|note| note.trim().to_string()).filter(|note| !note.is_empty());
    if let Some(note) = &note {
        if note.chars().count() > CW_NOTE_MAX || note.chars().any(char::is_control) {
            return Err(invalid(format!("“cw_note” is at most {CW_NOTE_MAX} characters on one line.")));
        }
        if tags.is_empty() {
            return Err(invalid("“cw_note” goes with a content warning: name one in “cw”."));
        }
    }
    Ok((tags, note))
}

/// A summit room takes messages only inside its window.
fn check_window(room: &RoomRecord) -> Result<(), ApiError> {
    let now = now_ms();
    if let Some(start) = room.starts_at.filter(|start| now < *start) {
        let opens = crate::protocol::human_ts(start);
        return Err(ApiError::new(ErrorCode::NotOpen, format!("#{} opens at {opens}.", room.name)));
    }
    if let Some(end) = room.ends_at.filter(|end| now >= *end) {
        let closed = crate::protocol::human_ts(end);
        return Err(ApiError::new(ErrorCode::NotOpen, format!("#{} closed at {closed}.", room.name)));
    }
    Ok(())
}

async fn history(state: &AppState, session: &Session, query: HistoryQuery) -> Result<Reply, ApiError> {
    let room = member_room(state, session, &query.room).await?;
    let limit = query.limit.unwrap_or(i64::from(DEFAULT_PAGE));
    if !(1..=100).contains(&limit) {
        return Err(invalid("“limit” is 1 to 100."));
    }
    if query.before.is_some_and(|s| s < 0) || query.after.is_some_and(|s| s < 0) {
        return Err(invalid("“before” and “after” are seqs, 0 or more."));
    }
    // In a since_join room, what was said before one joined is out of reach.
    let floor = super::groups::history_floor(state, session, &room).await?;
    let after = if floor > 0 { Some(query.after.unwrap_or(0).max(floor)) } else { query.after };
    let range = HistoryRange { before: query.before, after, limit: limit as u32 + 1 };
    let mut messages = state.store.fetch_messages(&room, range).await.map_err(internal)?;
    // Catching up reads forwards and keeps the first; paging back keeps the latest.
    let keep = if query.after.is_some() { Keep::First } else { Keep::Last };
    let more = fit_page(&mut messages, limit as u32, keep);
    let more = keep_after(&mut messages, floor) && more;
    mark_own_reactions(state, room.id, session.user_id, &mut messages).await?;
    shape_for(state, session, &mut messages);
    Ok(Reply::Messages { messages, more })
}

/// Drops the messages at or before `floor`; `false` when any went (nothing earlier
/// is to be had, so there is no more to page back to).
fn keep_after(messages: &mut Vec<Message>, floor: i64) -> bool {
    let before = messages.len();
    messages.retain(|message| message.seq > floor);
    messages.len() == before
}

/// Shapes messages read for one member as the hub shapes live events: a blocked
/// author's message becomes a stub (PROTOCOL §9.1), others follow the member's
/// content-warning preferences (§8.2).
pub(super) fn shape_for(state: &AppState, session: &Session, messages: &mut [Message]) {
    let preferences = session.preferences();
    let blocked = state.blocked_names(session.user_id);
    for message in messages {
        if blocked.as_ref().is_some_and(|names| names.contains(&message.author.username)) {
            *message = Message::blocked_stub(message.seq, &message.room);
            continue;
        }
        message.shape_in_place(session.username(), preferences);
    }
}

/// `my_record`: every warning, mute, kick, ban and moderator deletion of one's
/// messages, newest first, with whether it is in force, and never who did it.
async fn my_record(state: &AppState, session: &Session) -> Result<Reply, ApiError> {
    let member = UserRecord { id: session.user_id, user: session.user() };
    let sanctions =
        crate::export::own_record(&*state.store, &member, |room| state.mute(room, session.user_id).is_some())
            .await
            .map_err(internal)?;
    Ok(Reply::Record { sanctions })
}

/// `block` / `unblock`: the author's messages reach the blocker as stubs, their typing
/// not at all, on every path and every node. The blocked member is not told.
async fn block(state: &AppState, session: &Session, username: &str, on: bool) -> Result<Reply, ApiError> {
    let target = super::moderation::user_named(state, username).await?;
    if target.id == session.user_id {
        return Err(invalid("You cannot block yourself."));
    }
    let changed = if on {
        state.store.insert_block(session.user_id, target.id).await
    } else {
        state.store.delete_block(session.user_id, target.id).await
    }
    .map_err(internal)?;
    if changed {
        state.block_changed(session.user_id, &target.user.username, on);
    }
    Ok(Reply::Empty {})
}

/// `set_preferences`: the tags named change, the others keep theirs; every socket of
/// the member, on every node, shapes what it receives by them from now on.
async fn set_preferences(
    state: &AppState,
    session: &Session,
    changes: &std::collections::BTreeMap<String, Shape>,
) -> Result<Reply, ApiError> {
    let changes = CwChanges::parse(changes).map_err(invalid)?;
    // Changed in the store in one statement: another device's save at the same moment
    // keeps its tags too.
    let preferences = state.store.update_preferences(session.user_id, changes).await.map_err(internal)?;
    state.preferences_changed(session.user_id, preferences);
    Ok(Reply::Preferences { preferences: preferences.to_wire() })
}

/// `reveal`: one message whole, whatever the member's preferences.
async fn reveal(state: &AppState, session: &Session, room_name: &str, seq: i64) -> Result<Reply, ApiError> {
    let room = member_room(state, session, room_name).await?;
    if seq <= super::groups::history_floor(state, session, &room).await? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("There is no message {seq} in #{} for you.", room.name),
        ));
    }
    let range = HistoryRange { before: Some(seq.saturating_add(1)), after: Some(seq.saturating_sub(1)), limit: 1 };
    let mut messages = state.store.fetch_messages(&room, range).await.map_err(internal)?;
    mark_own_reactions(state, room.id, session.user_id, &mut messages).await?;
    match messages.pop().filter(|message| message.seq == seq) {
        // Never a blocked author's words, by this path either.
        Some(message) if state.blocks(session.user_id, &message.author.username) => {
            Ok(Reply::Sent { message: Message::blocked_stub(seq, &room.name) })
        }
        Some(message) => Ok(Reply::Sent { message }),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("There is no message {seq} in #{}.", room.name))),
    }
}

/// Fills `my_reactions` of a page of one room's messages for the member asking: one
/// query, and none at all when nobody reacted to any of them.
async fn mark_own_reactions(
    state: &AppState,
    room: RoomId,
    user: UserId,
    messages: &mut [Message],
) -> Result<(), ApiError> {
    let reacted = messages.iter().filter(|m| !m.reactions.is_empty()).map(|m| m.seq);
    let (Some(low), Some(high)) = (reacted.clone().min(), reacted.max()) else { return Ok(()) };
    let own = state.store.fetch_own_reactions(room, user, (low, high)).await.map_err(internal)?;
    for (seq, emoji) in own {
        if let Ok(at) = messages.binary_search_by_key(&seq, |m| m.seq) {
            messages[at].my_reactions.push(emoji);
        }
    }
    Ok(())
}

/// The most unread messages counted for a room; the client shows "999+".
const MAX_UNREAD: u32 = 999;

async fn members(state: &AppState, session: &Session, query: MembersQuery) -> Result<Reply, ApiError> {
    let room = member_room(state, session, &query.room).await?;
    let limit = page_limit(query.limit, DEFAULT_LIST, MAX_LIST)?;
    let now = now_ms();
    let mut members: Vec<Member> = state
        .store
        .fetch_members(room.id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(record, room_role)| {
            let standing = Standing {
                global: record.user.role,
                room: RoomStanding::from_membership(Some(room_role), room.owner_id == record.id),
            };
            let mute = state.mute(room.id, record.id);
            Member {
                online: state.is_online(&room.name, record.id),
                room_role: standing.my_role(),
                muted_until: mute.as_ref().and_then(|m| m.until).filter(|until| *until > now).map(format_ts),
                muted: mute.is_some(),
                user: record.user,
            }
        })
        .collect();
    // Online first, then by username (the store gave them by username).
    members.sort_by_key(|member| !member.online);
    let start = match &query.after {
        Some(after) => members.iter().position(|m| &m.user.username == after).map_or(members.len(), |at| at + 1),
        None => 0,
    };
    let mut page: Vec<Member> = members.into_iter().skip(start).take(limit as usize + 1).collect();
    let more = fit_page(&mut page, limit, Keep::First);
    Ok(Reply::Members { members: page, more })
}

async fn mark_read(state: &AppState, session: &Session, name: &str, seq: i64) -> Result<Reply, ApiError> {
    let room = member_room(state, session, name).await?;
    if seq < 0 {
        return Err(invalid("“seq” is 0 or more."));
    }
    // Only a marker that moved is news for the user's other devices.
    if let Some(seq) = state.store.update_read_marker(room.id, session.user_id, seq).await.map_err(internal)? {
        state.publish_user(session.user_id, &Event::Read { room: room.name.clone(), seq });
    }
    Ok(Reply::Empty {})
}

async fn typing(state: &AppState, session: &Session, name: &str) -> Result<Reply, ApiError> {
    let room = member_room(state, session, name).await?;
    // A muted member's typing would still reach everyone; so would a flood of it.
    if let Some(mute) = state.mute(room.id, session.user_id) {
        return Err(super::moderation::muted_error(&room.name, &mute));
    }
    // One per user and room per three seconds; the rest is dropped without a word
    // (PROTOCOL.md §7), since a typing indicator is no message.
    if state.typing.check(&(session.user_id, room.id)).is_ok() {
        state.publish_typing(&room.name, &UserRecord { id: session.user_id, user: session.user() });
    }
    Ok(Reply::Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_protocol() {
        for good in ["ab", "peer-support", "wmhd_2026", &"a".repeat(64)] {
            assert!(check_room_name(good).is_ok(), "{good}");
        }
        for bad in ["a", "Peer", "peer support", "ünï", &"a".repeat(65)] {
            assert!(check_room_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mentions_are_whole_usernames_each_once() {
        assert_eq!(mentioned_names("@Ada and @ben_2, thanks @ada."), ["ada", "ben_2"]);
        assert_eq!(mentioned_names("write to ada@example.org"), Vec::<String>::new(), "an address");
        assert_eq!(mentioned_names("@al is too short, @ is nothing"), Vec::<String>::new());
        assert_eq!(mentioned_names("(@mia.r-) and\n@leo"), ["mia.r", "leo"]);
        let many: String = (0..30).map(|n| format!("@user{n} ")).collect();
        assert_eq!(mentioned_names(&many).len(), 20, "capped");
    }
}
