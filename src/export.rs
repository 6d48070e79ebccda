//! A member's data, whole (PROTOCOL §9.3): for `GET /api/v1/me/export` and
//! `alongside user export NAME`. The head (profile, rooms, reports, what moderators did,
//! preferences, blocks) is read at once; the messages follow a page at a time, so an
//! account with a hundred thousand messages never sits in memory whole.

use crate::protocol::{
    export_message, export_open, now_ms, Appeal, ExportHead, LogAction, Me, OwnSanction, Role, EXPORT_CLOSE,
};
use crate::store::{BanScope, RoomId, Store, StoreError, UserRecord};
use axum::body::Bytes;
use futures_util::Stream;
use std::collections::HashSet;
use std::sync::Arc;

/// Messages per read.
const PAGE: u32 = 500;

/// What moderators did about `member` (PROTOCOL §9.2), newest first: every warning,
/// mute, kick, ban and moderator deletion of their messages, with whether it is in force
/// (`muted_in` says where a mute is in force now), and only the standing of whoever
/// acted. For `my_record` and the export.
pub async fn own_record(
    store: &dyn Store,
    member: &UserRecord,
    muted_in: impl Fn(RoomId) -> bool,
) -> Result<Vec<OwnSanction>, StoreError> {
    let now = now_ms();
    // Only the newest mute or ban of a room (or the server) can be the one in force.
    let mut newest: HashSet<(LogAction, Option<RoomId>)> = HashSet::new();
    let mut sanctions = Vec::new();
    // Oldest first, so the newest appeal against each sanction is the one kept.
    let mut appeals: std::collections::HashMap<i64, Appeal> =
        store.fetch_appeals_by(member.id).await?.into_iter().map(|appeal| (appeal.sanction_id, appeal)).collect();
    for about in store.fetch_log_about(&member.user.username).await? {
        let action = about.entry.action;
        let counted = matches!(action, LogAction::Warn | LogAction::Mute | LogAction::Kick | LogAction::Ban)
            || (action == LogAction::Delete && about.actor != member.id);
        if !counted {
            continue;
        }
        let room = about.room.as_ref().map(|(id, _)| *id);
        let active = match action {
            LogAction::Mute if newest.insert((action, room)) => room.is_some_and(&muted_in),
            LogAction::Ban if newest.insert((action, room)) => {
                let scope = room.map_or(BanScope::Server, BanScope::Room);
                store.fetch_ban(scope, member.id, now).await?.is_some()
            }
            _ => false,
        };
        sanctions.push(OwnSanction {
            id: about.id,
            action,
            room: about.room.map(|(_, name)| name),
            seq: about.entry.seq,
            reason: about.entry.reason,
            until: about.entry.until,
            ts: about.entry.ts,
            active,
            // A room's own moderators act with the room's standing, whatever their global role.
            by_role: about.actor_role.max(Role::Moderator),
            appeal: appeals.remove(&about.id),
        });
    }
    Ok(sanctions)
}

/// The export of `record` as a stream of JSON text: the whole is one document. A store
/// failure part-way ends the stream with the error (the download is then incomplete,
/// never silently short: the closing bracket is missing).
pub async fn export(
    store: Arc<dyn Store>,
    record: UserRecord,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static, StoreError> {
    let head = ExportHead {
        user: Me { user: record.user.clone(), region: store.fetch_user_region(record.id).await? },
        rooms: store.fetch_user_rooms(record.id).await?,
        reports: store.fetch_reports_by(record.id).await?,
        sanctions: {
            let muted: HashSet<RoomId> = store
                .fetch_active_mutes(now_ms())
                .await?
                .into_iter()
                .filter(|mute| mute.user == record.id)
                .map(|mute| mute.room)
                .collect();
            own_record(&*store, &record, |room| muted.contains(&room)).await?
        },
        preferences: store.fetch_preferences(record.id).await?.to_wire(),
        blocks: store.fetch_blocks(record.id).await?.into_iter().map(|blocked| blocked.user).collect(),
        questions: store.fetch_questions_by(record.id).await?,
    };
    let opening = Bytes::from(export_open(&head));
    /// Where the stream is: the next page starts after `after`.
    enum Next {
        Open,
        Page { after: (RoomId, i64), first: bool },
        Done,
    }
    let user = record.id;
    Ok(futures_util::stream::unfold(Next::Open, move |next| {
        let (store, opening) = (store.clone(), opening.clone());
        async move {
            match next {
                Next::Open => Some((Ok(opening), Next::Page { after: (RoomId(0), 0), first: true })),
                Next::Page { after, first } => match store.fetch_messages_by(user, after, PAGE).await {
                    Ok(page) if page.is_empty() => Some((Ok(Bytes::from_static(EXPORT_CLOSE.as_bytes())), Next::Done)),
                    Ok(page) => {
                        let last = page.last().map(|(room, message)| (*room, message.seq)).expect("not empty");
                        let mut text = String::new();
                        for (at, (_, message)) in page.iter().enumerate() {
                            text.push_str(&export_message(message, first && at == 0));
                        }
                        Some((Ok(Bytes::from(text)), Next::Page { after: last, first: false }))
                    }
                    Err(err) => Some((Err(err), Next::Done)),
                },
                Next::Done => None,
            }
        }
    }))
}
