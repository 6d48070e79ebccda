//! The store test suite: every method of [`Store`], and the invariants the rest of the
//! server relies on (seqs without gaps or repeats, a failed batch consumes no seq,
//! idempotent `client_msg_id`, a ban always wins over a join, reports keep their
//! evidence). Each case is a function over `&dyn Store`; `suite!` runs them all against
//! one backend, so the PostgreSQL store will run the very same cases.

use super::*;
use crate::protocol::{
    AppealOutcome, CareKind, CwChanges, CwPreferences, CwTags, LogAction, Message, Phase, Question, QuestionStatus,
    Reactions, Role, RoomKind, RoomRole, SanctionKind, Shape,
};
use std::sync::Mutex;

/// Records what the store told its listener, in order.
#[derive(Default)]
struct Heard(Mutex<Vec<(String, i64)>>);

impl CommitListener for Heard {
    fn message_committed(&self, message: &Message) {
        self.0.lock().unwrap().push((message.room.clone(), message.seq));
    }
}

/// A store under test and what its listener heard.
struct Subject {
    store: Arc<dyn Store>,
    heard: Arc<Heard>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<crate::store::postgres::test_database::TestDatabase>,
}

async fn sqlite() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("suite.db").display());
    let heard = Arc::new(Heard::default());
    let store = open(&url, heard.clone(), Arc::default()).await.expect("open");
    Some(Subject { store, heard, _dir: Some(dir), _database: None })
}

/// A fresh database on the server `ALONGSIDE_TEST_POSTGRES` names; `None` when unset.
async fn postgres() -> Option<Subject> {
    let server = crate::store::postgres::test_database::server()?;
    let database = crate::store::postgres::test_database::create(&server).await;
    let heard = Arc::new(Heard::default());
    let store = open(&database.url, heard.clone(), Arc::default()).await.expect("open");
    Some(Subject { store, heard, _dir: None, _database: Some(database) })
}

/// Runs every case against each backend, each on a fresh store.
macro_rules! suite {
    ($($backend:ident),*: $cases:tt) => {
        $( suite!(@one $backend $cases); )*
    };
    (@one $backend:ident [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(subject) = super::$backend().await else { return };
                    super::$case(&subject).await;
                    subject.store.close().await;
                }
            )*
        }
    };
}

suite!(sqlite, postgres: [users, tokens, rooms, memberships, room_roles, mutes, bans_win_over_joins, seqs_per_room,
    client_msg_id_is_idempotent, a_failed_batch_consumes_no_seq, history_ranges, deleting_a_message,
    reports_keep_their_evidence, editing_a_message, reactions, search, mod_log_newest_first_by_scope, room_settings, ping, changes_made_outside,
    members_and_read_markers, sanctions_in_force, regions_and_warnings, care_alerts, hosts_on_duty, content_warnings, blocks, erasure,
    appeals, closed_groups, summit_phases, summit_questions]);

async fn user(store: &dyn Store, name: &str) -> UserRecord {
    store.insert_user(name, &name.to_uppercase(), "hash", Role::Member, None).await.unwrap()
}

/// A public topic room with every setting at its default.
fn new_room(name: &str, owner: UserId) -> NewRoom {
    NewRoom {
        name: name.into(),
        topic: "t".into(),
        kind: RoomKind::Topic,
        owner,
        starts_at: None,
        ends_at: None,
        capacity: None,
        requires_host: false,
        private: false,
        since_join: false,
        viewers: false,
        session: None,
        time_zone: String::new(),
        schedule: Vec::new(),
    }
}

async fn room(store: &dyn Store, name: &str, owner: UserId, capacity: Option<u32>) -> RoomRecord {
    let kind = if capacity.is_some() { RoomKind::Summit } else { RoomKind::Topic };
    store.insert_room(&NewRoom { kind, capacity, ..new_room(name, owner) }).await.unwrap()
}

fn log(room: Option<RoomId>, action: LogAction, actor: UserId) -> ModEntry {
    ModEntry { room, action, actor, target: None, seq: None, reason: None, until: None }
}

async fn send(
    store: &dyn Store,
    room: &RoomRecord,
    author: &UserRecord,
    body: &str,
    id: Option<&str>,
) -> StoredMessage {
    let new = NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        author: author.clone(),
        body: body.into(),
        client_msg_id: id.map(str::to_string),
        reply_to: None,
        mentions: Vec::new(),
        cw: CwTags::default(),
        cw_note: None,
    };
    store.insert_message(new).await.unwrap()
}

async fn seqs(store: &dyn Store, room: &RoomRecord) -> Vec<i64> {
    let range = HistoryRange { before: None, after: Some(0), limit: 1000 };
    store.fetch_messages(room, range).await.unwrap().iter().map(|m| m.seq).collect()
}

async fn users(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    assert!(matches!(store.insert_user("ada", "Other", "h", Role::Member, None).await, Err(StoreError::Conflict)));
    assert_eq!(store.fetch_user("ada").await.unwrap(), Some(ada.clone()));
    assert_eq!(store.fetch_user("nobody").await.unwrap(), None);
    let credentials = store.fetch_credentials("ada").await.unwrap().unwrap();
    assert_eq!((credentials.record, credentials.password_hash.as_str()), (ada.clone(), "hash"));
    let entry = log(None, LogAction::SetRole, ada.id);
    let changed = store.update_user_role("ada", Role::Organiser, Some(&entry)).await.unwrap();
    assert_eq!(changed.user.role, Role::Organiser);
    assert_eq!(store.fetch_mod_log(None, 10).await.unwrap()[0].action, LogAction::SetRole);
    assert!(matches!(store.update_user_role("nobody", Role::Admin, None).await, Err(StoreError::NotFound)));
}

async fn tokens(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    store.insert_token(&[1; 32], ada.id).await.unwrap();
    assert_eq!(
        store.fetch_token_user(&[1; 32], TokenRules::default(), 0).await.unwrap().map(|(user, _)| user),
        Some(ada.clone())
    );
    assert_eq!(store.fetch_token_user(&[2; 32], TokenRules::default(), 0).await.unwrap(), None);
    assert!(store.delete_token(&[1; 32]).await.unwrap());
    assert!(!store.delete_token(&[1; 32]).await.unwrap(), "revoked once");
    assert_eq!(store.fetch_token_user(&[1; 32], TokenRules::default(), 0).await.unwrap(), None);
    // Expiry: unused for too long, or simply too old; a use pushes the idle limit on.
    store.insert_token(&[3; 32], ada.id).await.unwrap();
    let now = crate::protocol::now_ms();
    let idle = TokenRules { idle_ms: 60_000, max_ms: 0 };
    assert!(store.fetch_token_user(&[3; 32], idle, now + 30_000).await.unwrap().is_some());
    assert_eq!(store.fetch_token_user(&[3; 32], idle, now + 61_000).await.unwrap(), None, "idle too long");
    store.touch_token(&[3; 32], now + 3_600_001).await.unwrap();
    assert!(store.fetch_token_user(&[3; 32], idle, now + 3_630_000).await.unwrap().is_some(), "used since");
    let max = TokenRules { idle_ms: 0, max_ms: 3_000_000 };
    assert_eq!(store.fetch_token_user(&[3; 32], max, now + 3_630_000).await.unwrap(), None, "too old, used or not");
}

async fn rooms(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let b = room(store, "b-room", ada.id, None).await;
    assert_eq!(
        (b.owner.as_str(), b.owner_id, b.kind, b.locked, b.slow_mode_s),
        ("ada", ada.id, RoomKind::Topic, false, 0)
    );
    room(store, "a-room", ada.id, Some(5)).await;
    assert!(matches!(store.insert_room(&new_room("b-room", ada.id)).await, Err(StoreError::Conflict)));
    assert_eq!(store.fetch_room("b-room").await.unwrap(), Some(b.clone()));
    assert_eq!(store.fetch_room("c-room").await.unwrap(), None);
    let names: Vec<String> = store.fetch_rooms(None, 100, None).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a-room", "b-room"]);
    assert_eq!(store.fetch_user_rooms(ada.id).await.unwrap(), ["a-room", "b-room"], "the owner is a member");
}

async fn memberships(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cy) = (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await);
    let summit = room(store, "summit", ada.id, Some(2)).await;
    assert!(store.insert_membership(&summit, ben.id).await.unwrap());
    assert!(!store.insert_membership(&summit, ben.id).await.unwrap(), "already a member");
    assert!(matches!(store.insert_membership(&summit, cy.id).await, Err(StoreError::Full)));
    assert!(store.delete_membership(summit.id, ben.id).await.unwrap());
    assert!(!store.delete_membership(summit.id, ben.id).await.unwrap());
    assert!(store.insert_membership(&summit, cy.id).await.unwrap(), "room again");
    assert_eq!(store.fetch_user_rooms(cy.id).await.unwrap(), ["summit"]);
    assert_eq!(store.fetch_user_rooms(ben.id).await.unwrap(), Vec::<String>::new());
    let kick = log(Some(summit.id), LogAction::Kick, ada.id);
    assert!(store.delete_membership_logged(summit.id, cy.id, &kick).await.unwrap());
    assert!(!store.delete_membership_logged(summit.id, cy.id, &kick).await.unwrap());
    assert_eq!(store.fetch_mod_log(Some(summit.id), 10).await.unwrap().len(), 1, "logged once");
}

async fn room_roles(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    assert_eq!(store.fetch_room_role(room.id, ben.id).await.unwrap(), None);
    let entry = log(Some(room.id), LogAction::SetRoomRole, ada.id);
    assert!(matches!(
        store.update_room_role(room.id, ben.id, RoomRole::Moderator, &entry).await,
        Err(StoreError::NotFound)
    ));
    store.insert_membership(&room, ben.id).await.unwrap();
    assert_eq!(store.fetch_room_role(room.id, ben.id).await.unwrap(), Some(RoomRole::Member));
    store.update_room_role(room.id, ben.id, RoomRole::Moderator, &entry).await.unwrap();
    assert_eq!(store.fetch_room_moderators(room.id).await.unwrap(), [ben.id]);
}

async fn mutes(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    let entry = log(Some(room.id), LogAction::Mute, ada.id);
    let now = crate::protocol::now_ms();
    store.upsert_mute(room.id, ben.id, &Restriction { until: Some(now - 1), reason: None }, &entry).await.unwrap();
    assert!(store.fetch_active_mutes(now).await.unwrap().is_empty(), "an expired mute is not in force");
    let mute = Restriction { until: None, reason: Some("pause".into()) };
    store.upsert_mute(room.id, ben.id, &mute, &entry).await.unwrap();
    assert_eq!(store.fetch_active_mutes(now).await.unwrap(), [MuteRecord { room: room.id, user: ben.id, mute }]);
    assert!(store.delete_mute(room.id, ben.id, &log(Some(room.id), LogAction::Unmute, ada.id)).await.unwrap());
    assert!(!store.delete_mute(room.id, ben.id, &entry).await.unwrap());
    assert!(store.fetch_active_mutes(now).await.unwrap().is_empty());
}

async fn sanctions_in_force(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cyd, dee) =
        (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await, user(store, "dee").await);
    let (here, elsewhere) = (room(store, "here", ada.id, None).await, room(store, "away", ada.id, None).await);
    let now = crate::protocol::now_ms();
    let mute = log(Some(here.id), LogAction::Mute, ada.id);
    let ban = log(Some(here.id), LogAction::Ban, ada.id);
    store
        .upsert_mute(here.id, ben.id, &Restriction { until: Some(now + 60_000), reason: Some("rest".into()) }, &mute)
        .await
        .unwrap();
    store.upsert_ban(BanScope::Room(here.id), cyd.id, &Restriction { until: None, reason: None }, &ban).await.unwrap();
    store.upsert_mute(here.id, dee.id, &Restriction { until: Some(now - 1), reason: None }, &mute).await.unwrap();
    store
        .upsert_mute(
            elsewhere.id,
            dee.id,
            &Restriction { until: None, reason: None },
            &log(Some(elsewhere.id), LogAction::Mute, ada.id),
        )
        .await
        .unwrap();
    store
        .upsert_ban(
            BanScope::Server,
            dee.id,
            &Restriction { until: None, reason: None },
            &log(None, LogAction::Ban, ada.id),
        )
        .await
        .unwrap();
    // Only this room's, only those in force; soonest end first, "until lifted" last.
    let listed = store.fetch_room_sanctions(here.id, now).await.unwrap();
    let summary: Vec<_> = listed.iter().map(|s| (s.kind, s.user.username.as_str(), s.until.is_some())).collect();
    assert_eq!(summary, [(SanctionKind::Mute, "ben", true), (SanctionKind::Ban, "cyd", false)]);
    assert_eq!((listed[0].reason.as_deref(), listed[0].by.as_str()), (Some("rest"), "ada"));
}

async fn bans_win_over_joins(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cy) = (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await);
    let room = room(store, "room", ada.id, None).await;
    store.insert_membership(&room, ben.id).await.unwrap();
    let entry = log(Some(room.id), LogAction::Ban, ada.id);
    let ban = Restriction { until: None, reason: Some("harm".into()) };
    assert!(store.upsert_ban(BanScope::Room(room.id), ben.id, &ban, &entry).await.unwrap(), "ended a membership");
    assert!(!store.upsert_ban(BanScope::Room(room.id), cy.id, &ban, &entry).await.unwrap(), "cyd was no member");
    match store.insert_membership(&room, ben.id).await {
        Err(StoreError::Banned(found)) => assert_eq!(found, ban),
        other => panic!("a banned member joined: {other:?}"),
    }
    assert_eq!(store.fetch_user_rooms(ben.id).await.unwrap(), Vec::<String>::new());
    let now = crate::protocol::now_ms();
    assert_eq!(store.fetch_ban(BanScope::Room(room.id), ben.id, now).await.unwrap(), Some(ban.clone()));
    let imposer = store.fetch_sanction_imposer(Sanction::Ban, BanScope::Room(room.id), ben.id, now).await.unwrap();
    assert_eq!(imposer, Some((ada.id, Role::Member)), "who imposed it, for the authority to lift it");
    assert_eq!(store.fetch_sanction_imposer(Sanction::Mute, BanScope::Room(room.id), ben.id, now).await.unwrap(), None);
    assert!(store.delete_ban(BanScope::Room(room.id), ben.id, &entry).await.unwrap());
    assert!(!store.delete_ban(BanScope::Room(room.id), ben.id, &entry).await.unwrap());
    assert!(store.insert_membership(&room, ben.id).await.unwrap(), "back after the ban is lifted");
    // A server ban keeps a user out of every room; an expired one does not.
    let dee = user(store, "dee").await;
    store.upsert_ban(BanScope::Server, dee.id, &ban, &log(None, LogAction::Ban, ada.id)).await.unwrap();
    assert!(matches!(store.insert_membership(&room, dee.id).await, Err(StoreError::Banned(_))));
    let over = Restriction { until: Some(now - 1), reason: None };
    store.upsert_ban(BanScope::Server, dee.id, &over, &log(None, LogAction::Ban, ada.id)).await.unwrap();
    assert_eq!(store.fetch_ban(BanScope::Server, dee.id, now).await.unwrap(), None);
    assert!(store.insert_membership(&room, dee.id).await.unwrap());
}

async fn seqs_per_room(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let (one, two) = (room(store, "one", ada.id, None).await, room(store, "two", ada.id, None).await);
    // Concurrent sends share group commits; each room still counts 1, 2, 3, ...
    let sends = (0..20).map(|n| {
        let (store, room, ada) = (s.store.clone(), if n % 2 == 0 { one.clone() } else { two.clone() }, ada.clone());
        tokio::spawn(async move { send(&*store, &room, &ada, &format!("m{n}"), None).await.message.seq })
    });
    for task in sends.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    assert_eq!(seqs(store, &one).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(seqs(store, &two).await, (1..=10).collect::<Vec<_>>());
    // The listener heard every message once, each room in seq order.
    let heard = s.heard.0.lock().unwrap().clone();
    for name in ["one", "two"] {
        let order: Vec<i64> = heard.iter().filter(|(room, _)| room == name).map(|(_, seq)| *seq).collect();
        assert_eq!(order, (1..=10).collect::<Vec<_>>());
    }
}

async fn client_msg_id_is_idempotent(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    let first = send(store, &room, &ada, "hello", Some("k1")).await;
    let again = send(store, &room, &ada, "hello (resent)", Some("k1")).await;
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(again.message, first.message, "the original comes back");
    // The key is per author: another member may use the same one.
    assert_eq!(send(store, &room, &ben, "mine", Some("k1")).await.message.seq, 2);
    assert_eq!(seqs(store, &room).await, [1, 2]);
    assert_eq!(s.heard.0.lock().unwrap().len(), 2, "a resend is not announced again");
}

async fn a_failed_batch_consumes_no_seq(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "one", None).await;
    // A message for a room that does not exist fails its whole group commit.
    let ghost = NewMessage {
        room_id: RoomId(room.id.0 + 1000),
        room: "ghost".into(),
        author: ada.clone(),
        body: "x".into(),
        client_msg_id: None,
        reply_to: None,
        mentions: Vec::new(),
        cw: CwTags::default(),
        cw_note: None,
    };
    let valid = NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        author: ada.clone(),
        body: "two".into(),
        client_msg_id: None,
        reply_to: None,
        mentions: Vec::new(),
        cw: CwTags::default(),
        cw_note: None,
    };
    let (failed, maybe) = tokio::join!(store.insert_message(ghost), store.insert_message(valid));
    assert!(matches!(failed, Err(StoreError::NotStored(_))), "{failed:?}");
    // Sharing the ghost's batch, the valid one failed too; otherwise it got seq 2.
    let stored = usize::from(maybe.is_ok());
    assert_eq!(send(store, &room, &ada, "three", None).await.message.seq, 2 + stored as i64);
    assert_eq!(seqs(store, &room).await, (1..=2 + stored as i64).collect::<Vec<_>>(), "no gap, no repeat");
}

async fn history_ranges(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let room = room(store, "room", ada.id, None).await;
    for n in 1..=10 {
        send(store, &room, &ada, &format!("m{n}"), None).await;
    }
    assert_eq!(page(store, &room, None, None, 3).await, [8, 9, 10], "the latest, ascending");
    assert_eq!(page(store, &room, Some(5), None, 2).await, [3, 4]);
    assert_eq!(page(store, &room, None, Some(7), 10).await, [8, 9, 10], "catching up");
    assert_eq!(page(store, &room, None, Some(2), 2).await, [3, 4], "the first after");
    assert_eq!(page(store, &room, Some(6), Some(3), 10).await, [4, 5]);
}

async fn page(store: &dyn Store, room: &RoomRecord, before: Option<i64>, after: Option<i64>, limit: u32) -> Vec<i64> {
    let range = HistoryRange { before, after, limit };
    store.fetch_messages(room, range).await.unwrap().iter().map(|m| m.seq).collect()
}

async fn deleting_a_message(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "regret", Some("k")).await;
    assert_eq!(store.fetch_message_author(room.id, 1).await.unwrap(), Some((ada.clone(), false)));
    let entry = ModEntry { seq: Some(1), ..log(Some(room.id), LogAction::Delete, ada.id) };
    store.update_message_deleted(room.id, 1, &entry).await.unwrap();
    assert!(matches!(store.update_message_deleted(room.id, 9, &entry).await, Err(StoreError::NotFound)));
    let message = &store.fetch_messages(&room, HistoryRange { before: None, after: None, limit: 5 }).await.unwrap()[0];
    assert_eq!((message.seq, message.deleted, message.body.as_deref()), (1, true, None));
    assert_eq!(store.fetch_message_author(room.id, 1).await.unwrap(), Some((ada.clone(), true)));
    // A resend of the deleted message's key gets the deleted original, not a new one.
    assert!(send(store, &room, &ada, "regret", Some("k")).await.message.deleted);
}

async fn reports_keep_their_evidence(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "unkind words", None).await;
    let report = store.insert_report(&room, 1, &ben, "hurtful").await.unwrap();
    let snapshot = report.message.clone().expect("a snapshot");
    assert_eq!((snapshot.author.username.as_str(), snapshot.body.as_deref()), ("ada", Some("unkind words")));
    let entry = ModEntry { seq: Some(1), ..log(Some(room.id), LogAction::Delete, ada.id) };
    store.update_message_deleted(room.id, 1, &entry).await.unwrap();
    assert_eq!(
        store.fetch_open_reports(&room, 0, 100).await.unwrap(),
        std::slice::from_ref(&report),
        "evidence outlives the deletion"
    );
    assert!(matches!(store.insert_report(&room, 1, &ben, "again").await, Err(StoreError::NotFound)));
    assert!(matches!(store.insert_report(&room, 7, &ben, "no such").await, Err(StoreError::NotFound)));
    let resolve = log(Some(room.id), LogAction::ResolveReport, ada.id);
    assert!(store.resolve_report(room.id, report.id, &resolve).await.unwrap());
    assert!(!store.resolve_report(room.id, report.id, &resolve).await.unwrap(), "resolved once");
    assert!(store.fetch_open_reports(&room, 0, 100).await.unwrap().is_empty());
}

async fn editing_a_message(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "first draft", Some("k")).await;
    assert!(matches!(store.update_message_body(&room, 1, &ben, "not yours").await, Err(StoreError::NotFound)));
    assert!(matches!(store.update_message_body(&room, 2, &ada, "no such").await, Err(StoreError::NotFound)));
    let edited = store.update_message_body(&room, 1, &ada, "second draft").await.unwrap();
    assert_eq!((edited.seq, edited.body.as_deref(), edited.edited_at.is_some()), (1, Some("second draft"), true));
    let stored = &store.fetch_messages(&room, HistoryRange { before: None, after: None, limit: 5 }).await.unwrap()[0];
    assert_eq!(stored, &edited);
    // A resend of the original key returns the message as it is now.
    assert_eq!(send(store, &room, &ada, "first draft", Some("k")).await.message, edited);
    let entry = ModEntry { seq: Some(1), ..log(Some(room.id), LogAction::Delete, ada.id) };
    store.update_message_deleted(room.id, 1, &entry).await.unwrap();
    assert!(matches!(store.update_message_body(&room, 1, &ada, "revived").await, Err(StoreError::NotFound)));
}

async fn reactions(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    for n in 0..3 {
        send(store, &room, &ada, &format!("m{n}"), None).await;
    }
    let heart = |n: u32| Reactions::from([("💙".to_string(), n)]);
    assert_eq!(store.update_reaction(room.id, 2, ada.id, "💙", true).await.unwrap(), Some(heart(1)));
    assert_eq!(store.update_reaction(room.id, 2, ben.id, "💙", true).await.unwrap(), Some(heart(2)));
    assert_eq!(store.update_reaction(room.id, 2, ben.id, "💙", true).await.unwrap(), None, "once per member");
    assert_eq!(store.update_reaction(room.id, 2, ada.id, "💙", false).await.unwrap(), Some(heart(1)));
    assert_eq!(store.update_reaction(room.id, 2, ada.id, "💙", false).await.unwrap(), None, "nothing to take back");
    assert!(matches!(store.update_reaction(room.id, 9, ada.id, "💙", true).await, Err(StoreError::NotFound)));
    let page = store.fetch_messages(&room, HistoryRange { before: None, after: None, limit: 5 }).await.unwrap();
    let counts: Vec<_> = page.iter().map(|m| m.reactions.clone()).collect();
    assert_eq!(counts, [Reactions::new(), heart(1), Reactions::new()]);
    assert_eq!(store.fetch_own_reactions(room.id, ben.id, (1, 3)).await.unwrap(), [(2, "💙".to_string())]);
    assert_eq!(store.fetch_own_reactions(room.id, ada.id, (1, 3)).await.unwrap(), []);
    let entry = ModEntry { seq: Some(2), ..log(Some(room.id), LogAction::Delete, ada.id) };
    store.update_message_deleted(room.id, 2, &entry).await.unwrap();
    assert!(matches!(store.update_reaction(room.id, 2, ada.id, "💙", true).await, Err(StoreError::NotFound)));
    let page = store.fetch_messages(&room, HistoryRange { before: None, after: None, limit: 5 }).await.unwrap();
    assert!(page[1].reactions.is_empty(), "a deleted message shows none");
}

async fn search(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "Café meet-up on Friday", None).await;
    send(store, &room, &ada, "friday again", None).await;
    let found = |query: &'static str, user: UserId| async move {
        let found = store.search_messages(user, None, query, None, 10).await.unwrap();
        found.iter().map(|(m, _)| m.seq).collect::<Vec<_>>()
    };
    assert_eq!(found("friday", ada.id).await, [2, 1], "newest first, case ignored");
    assert_eq!(found("cafe", ada.id).await, [1], "accents ignored");
    assert!(found("friday", ben.id).await.is_empty(), "members only");
    store.insert_membership(&room, ben.id).await.unwrap();
    assert_eq!(found("fri", ben.id).await, [2, 1], "the last word is a prefix");
    let first = store.search_messages(ben.id, None, "friday", None, 1).await.unwrap();
    let after = store.search_messages(ben.id, Some(room.id), "friday", Some(first[0].1), 10).await.unwrap();
    assert_eq!(after.iter().map(|(m, _)| m.seq).collect::<Vec<_>>(), [1]);
}

async fn mod_log_newest_first_by_scope(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    let mute = ModEntry {
        target: Some("ben".into()),
        reason: Some("pause".into()),
        ..log(Some(room.id), LogAction::Mute, ada.id)
    };
    store.upsert_mute(room.id, ben.id, &Restriction { until: None, reason: None }, &mute).await.unwrap();
    store.delete_mute(room.id, ben.id, &log(Some(room.id), LogAction::Unmute, ada.id)).await.unwrap();
    store
        .upsert_ban(
            BanScope::Server,
            ben.id,
            &Restriction { until: None, reason: None },
            &log(None, LogAction::Ban, ada.id),
        )
        .await
        .unwrap();
    let entries = store.fetch_mod_log(Some(room.id), 10).await.unwrap();
    let actions: Vec<LogAction> = entries.iter().map(|e| e.action).collect();
    assert_eq!(actions, [LogAction::Unmute, LogAction::Mute], "newest first, this room only");
    assert_eq!(
        (entries[1].actor.as_str(), entries[1].target.as_deref(), entries[1].reason.as_deref()),
        ("ada", Some("ben"), Some("pause"))
    );
    assert_eq!(store.fetch_mod_log(None, 10).await.unwrap()[0].action, LogAction::Ban, "the server scope apart");
    assert_eq!(store.fetch_mod_log(Some(room.id), 1).await.unwrap().len(), 1, "limit");
}

async fn room_settings(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    let room = room(store, "room", ada.id, None).await;
    let changed = store
        .update_room_settings(room.id, Some(30), None, &log(Some(room.id), LogAction::SlowMode, ada.id))
        .await
        .unwrap();
    assert_eq!((changed.slow_mode_s, changed.locked), (30, false));
    let changed = store
        .update_room_settings(room.id, None, Some(true), &log(Some(room.id), LogAction::Lock, ada.id))
        .await
        .unwrap();
    assert_eq!((changed.slow_mode_s, changed.locked), (30, true), "one setting changes, the other stays");
    assert_eq!(store.fetch_room("room").await.unwrap(), Some(changed));
}

async fn ping(s: &Subject) {
    s.store.ping().await.expect("a fresh store proves its write path");
    s.store.ping().await.expect("and again, from the proof just made");
}

async fn changes_made_outside(s: &Subject) {
    let store = &*s.store;
    let ada = user(store, "ada").await;
    assert_eq!(store.fetch_user_by_id(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.fetch_user_by_id(UserId(9999)).await.unwrap(), None);
    let (start, none) = store.fetch_changes(None).await.unwrap();
    assert!(none.is_empty(), "a server starts from the newest change");
    store.insert_change(ada.id, Change::Role).await.unwrap();
    store.insert_change(ada.id, Change::Tokens).await.unwrap();
    let (newest, changes) = store.fetch_changes(Some(start)).await.unwrap();
    assert_eq!(changes, [(ada.id, Change::Role), (ada.id, Change::Tokens)]);
    assert_eq!(store.fetch_changes(Some(newest)).await.unwrap(), (newest, Vec::new()), "each seen once");
    store.insert_token(&[7; 32], ada.id).await.unwrap();
    store.insert_token(&[8; 32], ada.id).await.unwrap();
    assert_eq!(store.delete_user_tokens(ada.id).await.unwrap(), 2);
    assert_eq!(store.fetch_token_user(&[7; 32], TokenRules::default(), 0).await.unwrap(), None);
}

async fn members_and_read_markers(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ada, "before ben", None).await;
    store.insert_membership(&room, ben.id).await.unwrap();
    let members: Vec<(String, RoomRole)> =
        store.fetch_members(room.id).await.unwrap().into_iter().map(|(u, r)| (u.user.username, r)).collect();
    assert_eq!(members, [("ada".to_string(), RoomRole::Member), ("ben".to_string(), RoomRole::Member)]);
    assert_eq!(store.fetch_unread(room.id, ben.id, 999).await.unwrap().messages, 0, "joined after it");
    for n in 0..3 {
        send(store, &room, &ada, &format!("m{n}"), None).await;
    }
    send(store, &room, &ben, "ben's own", None).await;
    assert_eq!(store.fetch_unread(room.id, ben.id, 999).await.unwrap().messages, 3, "his own is not unread");
    assert_eq!(store.fetch_unread(room.id, ben.id, 2).await.unwrap().messages, 2, "capped");
    assert_eq!(store.update_read_marker(room.id, ben.id, 3).await.unwrap(), Some(3));
    assert_eq!(store.fetch_unread(room.id, ben.id, 999).await.unwrap().messages, 1);
    assert_eq!(store.update_read_marker(room.id, ben.id, 2).await.unwrap(), None, "never back");
    assert_eq!(store.update_read_marker(room.id, ben.id, 99).await.unwrap(), Some(5), "never past the last");
    assert_eq!(store.fetch_unread(room.id, ben.id, 999).await.unwrap().messages, 0);
    // Mentions count among the unread, by whole username only.
    let named = |body: &str, names: &[&str]| NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        author: ada.clone(),
        body: body.into(),
        client_msg_id: None,
        reply_to: None,
        mentions: names.iter().map(|n| n.to_string()).collect(),
        cw: CwTags::default(),
        cw_note: None,
    };
    let stored = store.insert_message(named("@ben @benjamin hello", &["ben", "benjamin"])).await.unwrap();
    assert_eq!(stored.message.mentions, ["ben", "benjamin"]);
    store.insert_message(named("@benjamin only", &["benjamin"])).await.unwrap();
    send(store, &room, &ada, "nobody", None).await;
    let unread = store.fetch_unread(room.id, ben.id, 999).await.unwrap();
    assert_eq!((unread.messages, unread.mentions), (3, 1));
    let history = store.fetch_messages(&room, HistoryRange { before: None, after: Some(5), limit: 5 }).await.unwrap();
    assert_eq!(history[0].mentions, ["ben", "benjamin"], "kept with the message");
    assert!(history[2].mentions.is_empty());
    let found = store.fetch_members_named(room.id, &["ben".into(), "zed".into(), "ada".into()]).await.unwrap();
    let found: Vec<&str> = found.iter().map(|m| m.user.username.as_str()).collect();
    assert_eq!(found, ["ada", "ben"], "only members, by name");
}

async fn regions_and_warnings(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    assert_eq!(store.fetch_user_region(ada.id).await.unwrap(), None, "unset at first");
    store.update_user_region(ada.id, Some("GB")).await.unwrap();
    assert_eq!(store.fetch_user_region(ada.id).await.unwrap().as_deref(), Some("GB"));
    assert_eq!(store.fetch_user_region(ben.id).await.unwrap(), None, "one's own only");
    store.update_user_region(ada.id, None).await.unwrap();
    assert_eq!(store.fetch_user_region(ada.id).await.unwrap(), None, "cleared");
    let room = room(store, "room", ada.id, None).await;
    let warning = ModEntry {
        target: Some("ben".into()),
        reason: Some("please keep it kind".into()),
        ..log(Some(room.id), LogAction::Warn, ada.id)
    };
    store.insert_mod_log(&warning).await.unwrap();
    let entries = store.fetch_mod_log(Some(room.id), 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].action, entries[0].target.as_deref(), entries[0].reason.as_deref()),
        (LogAction::Warn, Some("ben"), Some("please keep it kind"))
    );
}

async fn content_warnings(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    let tagged = NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        author: ben.clone(),
        body: "the anniversary is hard".into(),
        client_msg_id: Some("k1".into()),
        reply_to: None,
        mentions: Vec::new(),
        cw: CwTags::parse(&["grief".into(), "suicide".into()]).unwrap(),
        cw_note: Some("my brother".into()),
    };
    let stored = store.insert_message(tagged.clone()).await.unwrap().message;
    assert_eq!(
        (stored.cw.clone(), stored.cw_note.as_deref()),
        (vec!["suicide".into(), "grief".into()], Some("my brother"))
    );
    let again = store.insert_message(tagged).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.cw, stored.cw, "a resend returns the tags too");
    send(store, &room, &ben, "plain", None).await;
    let range = HistoryRange { before: None, after: Some(0), limit: 10 };
    let read = store.fetch_messages(&room, range).await.unwrap();
    assert_eq!((read[0].cw.len(), read[0].cw_note.as_deref(), read[1].cw.len()), (2, Some("my brother"), 0));
    // A moderator changes the tags (logged), or takes them off.
    let set = ModEntry { seq: Some(2), reason: Some("eating".into()), ..log(Some(room.id), LogAction::SetCw, ada.id) };
    let changed =
        store.update_message_cw(&room, 2, CwTags::parse(&["eating".into()]).unwrap(), None, &set).await.unwrap();
    assert_eq!((changed.cw.clone(), changed.body.as_deref()), (vec!["eating".to_string()], Some("plain")));
    let cleared = store.update_message_cw(&room, 1, CwTags::default(), None, &set).await.unwrap();
    assert!(cleared.cw.is_empty() && cleared.cw_note.is_none());
    assert!(matches!(
        store.update_message_cw(&room, 9, CwTags::default(), None, &set).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.fetch_mod_log(Some(room.id), 10).await.unwrap()[0].action, LogAction::SetCw);
    // Preferences: collapse everything until chosen; one's own only.
    assert_eq!(store.fetch_preferences(ada.id).await.unwrap(), CwPreferences::default());
    let hide_other = CwChanges::parse(&[("other".to_string(), Shape::Hide)].into()).unwrap();
    let show_self_harm = CwChanges::parse(&[("self_harm".to_string(), Shape::Show)].into()).unwrap();
    store.update_preferences(ada.id, hide_other).await.unwrap();
    // A second save that names another tag keeps the first one's.
    let chosen = store.update_preferences(ada.id, show_self_harm).await.unwrap();
    assert_eq!((chosen.get(7), chosen.get(0), chosen.get(3)), (Shape::Hide, Shape::Show, Shape::Collapse));
    assert_eq!(store.fetch_preferences(ada.id).await.unwrap(), chosen);
    assert_eq!(store.fetch_preferences(ben.id).await.unwrap(), CwPreferences::default());
}

async fn blocks(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, mia) = (user(store, "ada").await, user(store, "ben").await, user(store, "mia").await);
    assert!(store.insert_block(ada.id, ben.id).await.unwrap());
    assert!(!store.insert_block(ada.id, ben.id).await.unwrap(), "twice is once");
    assert!(store.insert_block(ada.id, mia.id).await.unwrap());
    assert!(store.insert_block(mia.id, ada.id).await.unwrap());
    let names = |records: Vec<UserRecord>| records.into_iter().map(|r| r.user.username).collect::<Vec<_>>();
    assert_eq!(names(store.fetch_blocks(ada.id).await.unwrap()), ["ben", "mia"]);
    assert!(store.fetch_blocks(ben.id).await.unwrap().is_empty());
    let mut all = store.fetch_all_blocks().await.unwrap();
    all.sort();
    assert_eq!(all, [(ada.id, "ben".to_string()), (ada.id, "mia".to_string()), (mia.id, "ada".to_string())]);
    assert!(store.delete_block(ada.id, ben.id).await.unwrap());
    assert!(!store.delete_block(ada.id, ben.id).await.unwrap(), "nothing left to lift");
    assert_eq!(names(store.fetch_blocks(ada.id).await.unwrap()), ["mia"]);
}

async fn erasure(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    store.insert_membership(&room, ben.id).await.unwrap();
    send(store, &room, &ben, "mine to take back", Some("k")).await;
    send(store, &room, &ada, "hello", None).await;
    store.insert_block(ada.id, ben.id).await.unwrap();
    store
        .insert_mod_log(&ModEntry { target: Some("ben".into()), ..log(Some(room.id), LogAction::Warn, ada.id) })
        .await
        .unwrap();
    let erased = store.erase_user(ben.id).await.unwrap();
    assert_eq!((erased.old.as_str(), erased.rooms.clone()), ("ben", vec!["room".to_string()]));
    assert_eq!(erased.new, format!("deleted-{}", ben.id.0));
    assert_eq!(erased.blocks, [(ada.id, "ben".to_string())]);
    let range = HistoryRange { before: None, after: Some(0), limit: 10 };
    let read = store.fetch_messages(&room, range).await.unwrap();
    assert_eq!(read.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2], "every seq stays");
    assert!(read[0].deleted && read[0].body.is_none() && read[0].author.username == erased.new);
    assert_eq!(read[1].body.as_deref(), Some("hello"));
    assert_eq!(store.fetch_mod_log(Some(room.id), 10).await.unwrap()[0].target.as_deref(), Some(erased.new.as_str()));
    assert!(store.fetch_blocks(ada.id).await.unwrap().is_empty());
    assert!(store.fetch_user("ben").await.unwrap().is_none(), "the name is free");
    assert!(store.fetch_user_rooms(ben.id).await.unwrap().is_empty());
    assert!(matches!(store.erase_user(ben.id).await, Err(StoreError::NotFound)), "once only");
}

async fn care_alerts(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, mia) = (user(store, "ada").await, user(store, "ben").await, user(store, "mia").await);
    let room = room(store, "room", ada.id, None).await;
    send(store, &room, &ben, "I want to die", None).await;
    send(store, &room, &ben, "sorry", None).await;
    let phrase = store.insert_care_alert(&room, 1, CareKind::Phrase, None, None).await.unwrap();
    assert_eq!(
        (phrase.seq, phrase.author.username.as_str(), phrase.kind, phrase.by.as_deref()),
        (1, "ben", CareKind::Phrase, None)
    );
    let referral =
        store.insert_care_alert(&room, 2, CareKind::Referral, Some(mia.id), Some("please check in")).await.unwrap();
    assert_eq!((referral.by.as_deref(), referral.note.as_deref()), (Some("mia"), Some("please check in")));
    assert!(matches!(
        store.insert_care_alert(&room, 9, CareKind::Referral, Some(mia.id), None).await,
        Err(StoreError::NotFound)
    ));
    let open = store.fetch_care_alerts(&room, 0, 10).await.unwrap();
    assert_eq!(open.iter().map(|a| a.id).collect::<Vec<_>>(), [phrase.id, referral.id], "oldest first");
    assert_eq!(store.fetch_care_alerts(&room, phrase.id, 10).await.unwrap().len(), 1, "after_id pages");
    let acked = store.ack_care_alert(&room, phrase.id, &log(Some(room.id), LogAction::CareAck, ada.id)).await.unwrap();
    let acked = acked.expect("an open alert");
    assert_eq!(acked.acked_by.as_deref(), Some("ada"));
    assert!(acked.acked_at.is_some());
    assert_eq!(
        store.ack_care_alert(&room, phrase.id, &log(Some(room.id), LogAction::CareAck, ada.id)).await.unwrap(),
        None,
        "once"
    );
    assert_eq!(store.fetch_care_alerts(&room, 0, 10).await.unwrap(), [referral], "acknowledged ones leave the queue");
    let entry = &store.fetch_mod_log(Some(room.id), 1).await.unwrap()[0];
    assert_eq!((entry.action, entry.seq, entry.target.as_deref()), (LogAction::CareAck, Some(1), Some("ben")));
}

async fn hosts_on_duty(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let room = room(store, "room", ada.id, None).await;
    assert!(!room.requires_host, "a room needs no host unless it says so");
    let hosted = store.update_host_rule(room.id, true, &log(Some(room.id), LogAction::HostRule, ada.id)).await.unwrap();
    assert!(hosted.requires_host);
    assert_eq!(store.fetch_room("room").await.unwrap().map(|r| r.requires_host), Some(true));
    assert!(store.update_duty(room.id, ada.id, true).await.unwrap());
    assert!(!store.update_duty(room.id, ada.id, true).await.unwrap(), "on duty already");
    assert!(store.update_duty(room.id, ben.id, true).await.unwrap());
    let on_duty: Vec<(RoomId, String, String)> =
        store.fetch_duty().await.unwrap().into_iter().map(|(id, name, host)| (id, name, host.user.username)).collect();
    assert_eq!(
        on_duty,
        [(room.id, "room".to_string(), "ada".to_string()), (room.id, "room".to_string(), "ben".to_string())]
    );
    assert!(store.update_duty(room.id, ada.id, false).await.unwrap());
    assert!(!store.update_duty(room.id, ada.id, false).await.unwrap(), "off duty already");
    assert_eq!(store.fetch_duty().await.unwrap().len(), 1);
}

async fn summit_phases(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cyd) = (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await);
    let topic = room(store, "topic", ada.id, None).await;
    assert_eq!((topic.phase, topic.schedule.len()), (None, 0), "topic rooms have no phase");
    let summit = room(store, "summit", ada.id, Some(100)).await;
    assert_eq!(summit.phase, Some(Phase::Hallway), "a summit without a schedule is in the hallway");
    for member in [&ben, &cyd] {
        store.insert_membership(&summit, member.id).await.unwrap();
    }
    let entry = log(Some(summit.id), LogAction::SetRoomRole, ada.id);
    store.update_room_role(summit.id, cyd.id, RoomRole::Speaker, &entry).await.unwrap();
    store.update_room_role(summit.id, ben.id, RoomRole::Speaker, &entry).await.unwrap();
    let schedule = [(Phase::Stage, 1_000), (Phase::Qa, 2_000), (Phase::Hallway, 3_000)];
    let set = store.update_room_phase(summit.id, Phase::Lobby, &schedule).await.unwrap();
    assert_eq!((set.phase, set.schedule.as_slice()), (Some(Phase::Lobby), &schedule[..]));
    assert_eq!(set.speakers, ["ben", "cyd"], "speakers come with the room, sorted");
    assert_eq!((set.phase_at(999), set.phase_at(2_500)), (Some(Phase::Lobby), Some(Phase::Qa)));
    assert_eq!(store.fetch_scheduled_rooms().await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [summit.id]);
    // Two nodes race to apply the entry that came due: one wins, the other finds the
    // schedule already moved on.
    let won = store.advance_room_phase(summit.id, &schedule, Phase::Stage, &schedule[1..]).await.unwrap();
    assert_eq!(won.map(|r| (r.phase, r.schedule.len())), Some((Some(Phase::Stage), 2)));
    assert!(store.advance_room_phase(summit.id, &schedule, Phase::Stage, &schedule[1..]).await.unwrap().is_none());
    let done = store.update_room_phase(summit.id, Phase::Closed, &[]).await.unwrap();
    assert_eq!((done.phase, done.schedule.len()), (Some(Phase::Closed), 0));
    assert!(store.fetch_scheduled_rooms().await.unwrap().is_empty());
    assert_eq!(store.fetch_room("summit").await.unwrap().map(|r| r.phase), Some(Some(Phase::Closed)));
    // An imported session: created with its schedule (so `scheduled` until the first
    // entry), its own times and zone; viewers are counted on the record.
    let imported = NewRoom {
        kind: RoomKind::Summit,
        viewers: true,
        capacity: Some(1),
        session: Some((5_000, 8_000)),
        time_zone: "Europe/London".into(),
        schedule: vec![(Phase::Stage, 5_000), (Phase::Hallway, 8_000)],
        ..new_room("imported", ada.id)
    };
    let made = store.insert_room(&imported).await.unwrap();
    assert_eq!((made.phase, made.schedule.len()), (Some(Phase::Scheduled), 2));
    assert_eq!((made.session, made.time_zone.as_str(), made.viewer_count), (Some((5_000, 8_000)), "Europe/London", 0));
    store.insert_membership(&made, ben.id).await.unwrap();
    assert_eq!(store.fetch_room_role(made.id, ben.id).await.unwrap(), Some(RoomRole::Viewer));
    assert_eq!(store.fetch_room("imported").await.unwrap().map(|r| r.viewer_count), Some(1));
}

async fn summit_questions(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cyd) = (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await);
    let summit = room(store, "summit", ada.id, Some(100)).await;
    let first = store.insert_question(&summit, ben.id, "first", true).await.unwrap();
    let second = store.insert_question(&summit, cyd.id, "second", false).await.unwrap();
    let third = store.insert_question(&summit, cyd.id, "third", false).await.unwrap();
    assert_eq!((first.status, first.anonymous, first.votes), (QuestionStatus::Pending, true, 0), "{first:?}");
    assert_eq!(store.vote_question(&summit, first.id, cyd.id, true).await.unwrap(), None, "pending: no votes yet");
    for question in [&first, &second, &third] {
        store.update_question_status(&summit, question.id, QuestionStatus::Approved).await.unwrap();
    }
    // One vote per member; taking it back twice takes one.
    assert_eq!(store.vote_question(&summit, second.id, ada.id, true).await.unwrap(), Some(1));
    assert_eq!(store.vote_question(&summit, second.id, ada.id, true).await.unwrap(), Some(1));
    assert_eq!(store.vote_question(&summit, second.id, ben.id, true).await.unwrap(), Some(2));
    assert_eq!(store.vote_question(&summit, third.id, ben.id, true).await.unwrap(), Some(1));
    assert_eq!(store.vote_question(&summit, third.id, ada.id, false).await.unwrap(), Some(1));
    let (before, answered) =
        store.update_question_status(&summit, first.id, QuestionStatus::Answered).await.unwrap().unwrap();
    assert_eq!((before, answered.status), (QuestionStatus::Approved, QuestionStatus::Answered));
    // Approved by votes then age, then answered; paged by the last id.
    let ids = |questions: Vec<Question>| questions.into_iter().map(|q| q.id).collect::<Vec<_>>();
    let all = store.fetch_questions(&summit, (0, 3), None, 10, ben.id).await.unwrap();
    assert_eq!(all.iter().map(|q| q.voted).collect::<Vec<_>>(), [Some(true), Some(true), Some(false)]);
    assert_eq!(ids(all), [second.id, third.id, first.id]);
    let page = store.fetch_questions(&summit, (0, 3), None, 1, ben.id).await.unwrap();
    assert_eq!(ids(page), [second.id]);
    let next = store.fetch_questions(&summit, (0, 3), Some(second.id), 10, ben.id).await.unwrap();
    assert_eq!(ids(next), [third.id, first.id]);
    assert_eq!(ids(store.fetch_questions(&summit, (0, 0), None, 10, ben.id).await.unwrap()), [second.id, third.id]);
    assert!(matches!(store.fetch_questions(&summit, (0, 3), Some(9999), 10, ben.id).await, Err(StoreError::NotFound)));
    // Erasing an account takes its votes back and its questions away.
    store.erase_user(ben.id).await.unwrap();
    assert_eq!(store.fetch_question_votes(second.id).await.unwrap(), Some(1));
    assert_eq!(store.fetch_question_votes(first.id).await.unwrap(), None);
}

async fn appeals(s: &Subject) {
    let store = &*s.store;
    let (ada, ben, cy) = (user(store, "ada").await, user(store, "ben").await, user(store, "cyd").await);
    let circle = room(store, "circle", ada.id, None).await;
    let mute = Restriction { until: None, reason: Some("a pause".into()) };
    let muted = ModEntry {
        target: Some("ben".into()),
        reason: mute.reason.clone(),
        ..log(Some(circle.id), LogAction::Mute, ada.id)
    };
    store.upsert_mute(circle.id, ben.id, &mute, &muted).await.unwrap();
    let sanction = store.fetch_log_about("ben").await.unwrap()[0].id;
    let filed = log(Some(circle.id), LogAction::Appeal, ben.id);
    let record = store.insert_appeal(ben.id, sanction, "please", &filed).await.unwrap();
    assert_eq!(
        (record.appellant, record.actor, record.action, record.room),
        (ben.id, ada.id, LogAction::Mute, Some(circle.id))
    );
    assert_eq!(
        (record.appeal.user.as_str(), record.appeal.room.as_deref(), record.appeal.outcome),
        ("ben", Some("circle"), None)
    );
    assert!(
        matches!(store.insert_appeal(ben.id, sanction, "again", &filed).await, Err(StoreError::Conflict)),
        "one open"
    );
    assert_eq!(store.fetch_open_appeals(Some(circle.id), 0, 10).await.unwrap(), std::slice::from_ref(&record.appeal));
    assert!(store.fetch_open_appeals(None, 0, 10).await.unwrap().is_empty(), "not a server appeal");
    // Lifted: the mute goes in the same transaction, with its own log entry.
    let lift = Lift {
        sanction: Sanction::Mute,
        scope: BanScope::Room(circle.id),
        user: ben.id,
        log: ModEntry { target: Some("ben".into()), ..log(Some(circle.id), LogAction::Unmute, cy.id) },
    };
    let answer = ModEntry { target: Some("ben".into()), ..log(Some(circle.id), LogAction::ResolveAppeal, cy.id) };
    let (appeal, lifted) = store
        .resolve_appeal(record.appeal.id, AppealOutcome::Lifted, Some("fair"), &answer, Some(&lift))
        .await
        .unwrap()
        .unwrap();
    assert!(lifted);
    assert_eq!((appeal.outcome, appeal.note.as_deref()), (Some(AppealOutcome::Lifted), Some("fair")));
    assert!(appeal.resolved_at.is_some());
    assert!(store.fetch_active_mutes(0).await.unwrap().is_empty(), "the mute is lifted");
    assert_eq!(
        store.resolve_appeal(record.appeal.id, AppealOutcome::Upheld, None, &answer, None).await.unwrap(),
        None,
        "answered once"
    );
    let actions: Vec<LogAction> =
        store.fetch_mod_log(Some(circle.id), 10).await.unwrap().into_iter().map(|entry| entry.action).collect();
    assert_eq!(actions, [LogAction::ResolveAppeal, LogAction::Unmute, LogAction::Appeal, LogAction::Mute]);
    // Answered, it may be appealed again.
    store.insert_appeal(ben.id, sanction, "one more thing", &filed).await.unwrap();
    assert_eq!(store.fetch_appeals_by(ben.id).await.unwrap().len(), 2);
    assert_eq!(store.fetch_global_moderators().await.unwrap(), Vec::<UserId>::new());
}

async fn closed_groups(s: &Subject) {
    let store = &*s.store;
    let (ada, ben) = (user(store, "ada").await, user(store, "ben").await);
    let quiet =
        store.insert_room(&NewRoom { private: true, since_join: true, ..new_room("quiet", ada.id) }).await.unwrap();
    assert!(quiet.private && quiet.since_join);
    room(store, "open", ada.id, None).await;
    let listed = |viewer| async move {
        store.fetch_rooms(None, 10, viewer).await.unwrap().into_iter().map(|r| r.name).collect::<Vec<_>>()
    };
    assert_eq!(listed(Some(ben.id)).await, ["open"], "a private room is not listed to a non-member");
    assert_eq!(listed(Some(ada.id)).await, ["open", "quiet"]);
    assert_eq!(listed(None).await, ["open", "quiet"]);
    // A request waits once; membership takes it away.
    assert!(store.insert_join_request(quiet.id, ben.id).await.unwrap());
    assert!(!store.insert_join_request(quiet.id, ben.id).await.unwrap());
    let waiting = store.fetch_join_requests(quiet.id).await.unwrap();
    assert_eq!(waiting.iter().map(|(record, _)| record.id).collect::<Vec<_>>(), [ben.id]);
    send(store, &quiet, &ada, "before ben", None).await;
    send(store, &quiet, &ada, "also before", None).await;
    assert!(store.insert_membership(&quiet, ben.id).await.unwrap());
    assert!(store.fetch_join_requests(quiet.id).await.unwrap().is_empty());
    assert_eq!(store.fetch_joined_seq(quiet.id, ben.id).await.unwrap(), Some(2), "the seq current at joining");
    assert_eq!(store.fetch_joined_seq(quiet.id, ada.id).await.unwrap(), Some(0));
    assert!(!store.delete_join_request(quiet.id, ben.id).await.unwrap());
    assert_eq!(listed(Some(ben.id)).await, ["open", "quiet"]);
    // Search finds only what was said after one joined.
    send(store, &quiet, &ada, "after ben", None).await;
    let found = store.search_messages(ben.id, Some(quiet.id), "ben", None, 10).await.unwrap();
    assert_eq!(found.iter().map(|(m, _)| m.body.clone().unwrap()).collect::<Vec<_>>(), ["after ben"]);
    // Invite codes: spent with the account they make, never past their uses or time.
    let code = crate::auth::invite_hash("abcd-efgh-jkmn");
    store.insert_invite(&code, 1, None, Some(ada.id)).await.unwrap();
    let taken = store.insert_user("ada", "Someone", "h", Role::Member, Some(&code)).await;
    assert!(matches!(taken, Err(StoreError::Conflict)), "a refused name spends no use");
    store.insert_user("cyd", "Cyd", "h", Role::Member, Some(&code)).await.unwrap();
    let used_up = store.insert_user("dee", "Dee", "h", Role::Member, Some(&code)).await;
    assert!(matches!(used_up, Err(StoreError::NotFound)), "used up");
    let old = crate::auth::invite_hash("old");
    store.insert_invite(&old, 5, Some(crate::protocol::now_ms() - 1), None).await.unwrap();
    assert!(
        matches!(store.insert_user("dee", "Dee", "h", Role::Member, Some(&old)).await, Err(StoreError::NotFound)),
        "expired"
    );
    let unknown = crate::auth::invite_hash("never-made");
    assert!(matches!(
        store.insert_user("dee", "Dee", "h", Role::Member, Some(&unknown)).await,
        Err(StoreError::NotFound)
    ));
}
