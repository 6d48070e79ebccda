//! Rows into records, the same for every backend: the columns are named alike in each
//! schema, and [`Columns`] reads them from either driver's row type.

use super::{MuteRecord, Restriction, RoomId, RoomRecord, UserId, UserRecord};
use crate::protocol::{
    format_ts, ActiveSanction, Appeal, AppealOutcome, CareAlert, CareKind, CwTags, LogAction, Message, ModAction,
    Phase, Question, QuestionStatus, Report, Role, RoomKind, RoomRole, SanctionKind, User,
};

/// A result row whose columns can be read by name.
pub(super) trait Columns {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }
    };
}

columns!(sqlx::sqlite::SqliteRow);
columns!(sqlx::postgres::PgRow);

/// The columns every room query selects (with `owner` from the joined user, and the
/// speakers as one text by the backend's string aggregate). The viewers and speakers
/// come from partial indexes of them alone (`$viewers`, `$speakers`: SQLite, which has
/// no statistics here, is told; unasked it reads the room's whole membership, 30× the
/// time in a room of 10,000).
macro_rules! room_columns {
    ($aggregate:literal, $viewers:literal, $speakers:literal) => {
        concat!(
            "r.id, r.name, r.topic, r.kind, r.owner_id, u.username AS owner, r.slow_mode_s, r.locked, r.starts_at, \
             r.ends_at, r.capacity, r.requires_host, r.private, r.since_join, r.phase, r.schedule, r.viewers, \
             r.session_start, r.session_end, r.time_zone, (SELECT COUNT(*) FROM memberships vm",
            $viewers,
            " WHERE vm.room_id = r.id AND vm.room_role = 'viewer') AS viewer_count, (SELECT ",
            $aggregate,
            "(s.username, ' ') FROM memberships sm",
            $speakers,
            " JOIN users s ON s.id = sm.user_id \
             WHERE sm.room_id = r.id AND sm.room_role = 'speaker') AS speakers \
             FROM rooms r JOIN users u ON u.id = r.owner_id"
        )
    };
}

/// [`room_columns`] for SQLite.
pub(super) const ROOM_COLUMNS_SQLITE: &str =
    room_columns!("group_concat", " INDEXED BY memberships_viewers", " INDEXED BY memberships_speakers");
/// [`room_columns`] for PostgreSQL.
pub(super) const ROOM_COLUMNS_POSTGRES: &str = room_columns!("string_agg", "", "");

/// A question with its author, and whether the first bound user voted for it.
pub(super) const QUESTION_COLUMNS: &str = "q.id, q.body, q.anonymous, q.status, q.votes, q.ts, u.username, \
     u.display_name, u.role, EXISTS (SELECT 1 FROM question_votes v WHERE v.question_id = q.id AND v.user_id = ?) AS voted \
     FROM questions q JOIN users u ON u.id = q.author_id";

/// The order questions are listed in: approved, answered, pending, dismissed
/// ([`super::question_rank`]).
pub(super) const QUESTION_RANK: &str =
    "CAST(CASE q.status WHEN 'approved' THEN 0 WHEN 'answered' THEN 1 WHEN 'pending' THEN 2 ELSE 3 END AS BIGINT)";

/// `sql` with each `?` numbered `$1`, `$2`, ... for PostgreSQL.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`QUESTION_COLUMNS`].
pub(super) fn question(room: &str, row: &impl Columns) -> Result<Question, sqlx::Error> {
    let status = row.text("status")?;
    Ok(Question {
        id: row.int("id")?,
        room: room.to_string(),
        body: row.text("body")?,
        author: Some(User {
            username: row.text("username")?,
            display_name: row.text("display_name")?,
            role: parse_role(&row.text("role")?)?,
        }),
        anonymous: row.flag("anonymous")?,
        votes: row.int("votes")?,
        voted: Some(row.flag("voted")?),
        status: QuestionStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown question status `{status}`").into()))?,
        ts: format_ts(row.int("ts")?),
    })
}

/// A report with its reporter and the snapshot's author.
pub(super) const REPORT_COLUMNS: &str = "r.id, r.seq, rp.username AS reporter, r.reason, r.ts, r.body, r.message_ts, \
     a.username, a.display_name, a.role FROM reports r JOIN users rp ON rp.id = r.reporter_id \
     LEFT JOIN users a ON a.id = r.author_id";

/// An appeal with its appellant and sanction, as `appeal` reads them.
pub(super) const APPEAL_COLUMNS: &str = "a.id, a.log_id, a.user_id, a.text, a.ts, a.outcome, a.note, a.resolved_at, \
     u.username, rm.name AS room_name, l.room_id, l.action, l.actor_id FROM appeals a \
     JOIN mod_log l ON l.id = a.log_id JOIN users u ON u.id = a.user_id LEFT JOIN rooms rm ON rm.id = l.room_id";

/// The columns of a message with its author, as `message` reads them.
pub(super) const MESSAGE_COLUMNS: &str = "m.seq, m.body, m.ts, m.client_msg_id, m.deleted, m.edited_at, m.reply_to, \
     m.mentions, m.cw, m.cw_note, u.username, u.display_name, u.role";

pub(super) fn parse_role(text: &str) -> Result<Role, sqlx::Error> {
    Role::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown role `{text}` in the database").into()))
}

pub(super) fn parse_room_role(text: &str) -> Result<RoomRole, sqlx::Error> {
    RoomRole::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown room role `{text}`").into()))
}

/// `id, username, display_name, role`.
pub(super) fn user(row: &impl Columns) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: UserId(row.int("id")?),
        user: User {
            username: row.text("username")?,
            display_name: row.text("display_name")?,
            role: parse_role(&row.text("role")?)?,
        },
    })
}

/// [`ROOM_COLUMNS`].
pub(super) fn room(row: &impl Columns) -> Result<RoomRecord, sqlx::Error> {
    let kind = row.text("kind")?;
    Ok(RoomRecord {
        id: RoomId(row.int("id")?),
        name: row.text("name")?,
        topic: row.text("topic")?,
        kind: RoomKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown room kind `{kind}`").into()))?,
        owner_id: UserId(row.int("owner_id")?),
        owner: row.text("owner")?,
        slow_mode_s: u32::try_from(row.int("slow_mode_s")?).unwrap_or(0),
        locked: row.flag("locked")?,
        starts_at: row.opt_int("starts_at")?,
        ends_at: row.opt_int("ends_at")?,
        capacity: row.opt_int("capacity")?.and_then(|c| u32::try_from(c).ok()),
        requires_host: row.flag("requires_host")?,
        private: row.flag("private")?,
        since_join: row.flag("since_join")?,
        phase: match row.opt_text("phase")? {
            Some(text) => {
                Some(Phase::parse(&text).ok_or_else(|| sqlx::Error::Decode(format!("unknown phase `{text}`").into()))?)
            }
            None => None,
        },
        schedule: {
            let text = row.text("schedule")?;
            super::parse_schedule(&text)
                .ok_or_else(|| sqlx::Error::Decode(format!("a schedule that does not parse: `{text}`").into()))?
        },
        viewers: row.flag("viewers")?,
        viewer_count: u64::try_from(row.int("viewer_count")?).unwrap_or(0),
        session: match (row.opt_int("session_start")?, row.opt_int("session_end")?) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => None,
        },
        time_zone: row.text("time_zone")?,
        speakers: {
            let mut speakers: Vec<String> =
                row.opt_text("speakers")?.unwrap_or_default().split_whitespace().map(str::to_string).collect();
            speakers.sort();
            speakers
        },
    })
}

/// A message of `room` written by `author` (`seq, body, ts, client_msg_id, deleted,
/// edited_at, reply_to, mentions, cw, cw_note`).
pub(super) fn message_by(room: &str, author: User, row: &impl Columns) -> Result<Message, sqlx::Error> {
    let deleted = row.flag("deleted")?;
    Ok(Message {
        seq: row.int("seq")?,
        room: room.to_string(),
        author,
        body: if deleted { None } else { row.opt_text("body")? },
        ts: format_ts(row.int("ts")?),
        client_msg_id: row.opt_text("client_msg_id")?,
        deleted,
        edited_at: row.opt_int("edited_at")?.map(format_ts),
        reply_to: row.opt_int("reply_to")?,
        mentions: split_mentions(row.opt_text("mentions")?),
        cw: CwTags(u8::try_from(row.int("cw")?).unwrap_or(0)).names(),
        cw_note: row.opt_text("cw_note")?,
        ..Message::default()
    })
}

/// [`MESSAGE_COLUMNS`].
pub(super) fn message(room: &str, row: &impl Columns) -> Result<Message, sqlx::Error> {
    let author = User {
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        role: parse_role(&row.text("role")?)?,
    };
    message_by(room, author, row)
}

/// The `mentions` column: usernames separated by spaces, NULL for none.
pub(super) fn join_mentions(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| names.join(" "))
}

fn split_mentions(names: Option<String>) -> Vec<String> {
    names.map(|names| names.split(' ').map(str::to_string).collect()).unwrap_or_default()
}

/// [`REPORT_COLUMNS`].
/// An appeal and its sanction, from a row of [`APPEAL_COLUMNS`].
pub(super) fn appeal(row: &impl Columns) -> Result<super::AppealRecord, sqlx::Error> {
    let undecodable = |what: String| sqlx::Error::Decode(what.into());
    let action = row.text("action")?;
    let outcome = row.opt_text("outcome")?;
    let room_id = row.int("room_id")?;
    Ok(super::AppealRecord {
        appeal: Appeal {
            id: row.int("id")?,
            sanction_id: row.int("log_id")?,
            room: row.opt_text("room_name")?,
            user: row.text("username")?,
            text: row.text("text")?,
            ts: format_ts(row.int("ts")?),
            outcome: match outcome {
                Some(text) => Some(
                    AppealOutcome::parse(&text)
                        .ok_or_else(|| undecodable(format!("unknown appeal outcome `{text}` in the database")))?,
                ),
                None => None,
            },
            note: row.opt_text("note")?,
            resolved_at: row.opt_int("resolved_at")?.map(format_ts),
        },
        appellant: UserId(row.int("user_id")?),
        room: (room_id != 0).then_some(RoomId(room_id)),
        action: LogAction::parse(&action)
            .ok_or_else(|| undecodable(format!("unknown log action `{action}` in the database")))?,
        actor: UserId(row.int("actor_id")?),
    })
}

pub(super) fn report(room: &str, row: &impl Columns) -> Result<Report, sqlx::Error> {
    let seq = row.int("seq")?;
    // Reports made before snapshots were kept have none when their message was gone.
    let message = match row.opt_text("username")? {
        Some(username) => Some(Message {
            seq,
            room: room.to_string(),
            author: User { username, display_name: row.text("display_name")?, role: parse_role(&row.text("role")?)? },
            body: row.opt_text("body")?,
            ts: format_ts(row.opt_int("message_ts")?.unwrap_or_default()),
            client_msg_id: None,
            deleted: false,
            // The snapshot is the text as reported, whatever became of it since.
            edited_at: None,
            reply_to: None,
            ..Message::default()
        }),
        None => None,
    };
    Ok(Report {
        id: row.int("id")?,
        room: room.to_string(),
        seq,
        reporter: row.text("reporter")?,
        reason: row.text("reason")?,
        ts: format_ts(row.int("ts")?),
        message,
    })
}

/// A care alert with its author, referrer and acknowledger.
pub(super) const CARE_COLUMNS: &str = "c.id, c.seq, c.kind, c.note, c.ts, c.acked_at, a.username, a.display_name, \
     a.role, b.username AS by_name, k.username AS acked_name FROM care_alerts c JOIN users a ON a.id = c.author_id \
     LEFT JOIN users b ON b.id = c.by_id LEFT JOIN users k ON k.id = c.acked_by";

/// [`CARE_COLUMNS`].
pub(super) fn care_alert(room: &str, row: &impl Columns) -> Result<CareAlert, sqlx::Error> {
    let kind = row.text("kind")?;
    Ok(CareAlert {
        id: row.int("id")?,
        room: room.to_string(),
        seq: row.int("seq")?,
        author: User {
            username: row.text("username")?,
            display_name: row.text("display_name")?,
            role: parse_role(&row.text("role")?)?,
        },
        kind: CareKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown care kind `{kind}`").into()))?,
        by: row.opt_text("by_name")?,
        note: row.opt_text("note")?,
        ts: format_ts(row.int("ts")?),
        acked_by: row.opt_text("acked_name")?,
        acked_at: row.opt_int("acked_at")?.map(format_ts),
    })
}

/// `action, actor, target, seq, reason, until, ts`.
pub(super) fn mod_action(row: &impl Columns) -> Result<ModAction, sqlx::Error> {
    let action = row.text("action")?;
    Ok(ModAction {
        action: LogAction::parse(&action)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown moderation action `{action}`").into()))?,
        actor: row.text("actor")?,
        target: row.opt_text("target")?,
        seq: row.opt_int("seq")?,
        reason: row.opt_text("reason")?,
        until: row.opt_int("until")?.map(format_ts),
        ts: format_ts(row.int("ts")?),
    })
}

/// `kind, until, reason, by_name` and the user's columns.
pub(super) fn sanction(row: &impl Columns) -> Result<ActiveSanction, sqlx::Error> {
    Ok(ActiveSanction {
        kind: if row.text("kind")? == "ban" { SanctionKind::Ban } else { SanctionKind::Mute },
        user: user(row)?.user,
        until: row.opt_int("until")?.map(format_ts),
        reason: row.opt_text("reason")?,
        by: row.text("by_name")?,
    })
}

/// `room_id, user_id, until, reason`.
pub(super) fn mute(row: &impl Columns) -> Result<MuteRecord, sqlx::Error> {
    Ok(MuteRecord {
        room: RoomId(row.int("room_id")?),
        user: UserId(row.int("user_id")?),
        mute: Restriction { until: row.opt_int("until")?, reason: row.opt_text("reason")? },
    })
}

/// `until, reason`.
pub(super) fn restriction(row: &impl Columns) -> Result<Restriction, sqlx::Error> {
    Ok(Restriction { until: row.opt_int("until")?, reason: row.opt_text("reason")? })
}

/// The room id column value for a log entry or ban: 0 is the server scope.
pub(super) fn scope_id(room: Option<RoomId>) -> i64 {
    room.map_or(0, |room| room.0)
}

pub(super) fn ban_scope_id(scope: super::BanScope) -> i64 {
    match scope {
        super::BanScope::Room(room) => room.0,
        super::BanScope::Server => 0,
    }
}

/// A member's search words: at most ten, without double quotes (each backend quotes
/// every word, so nothing in it is an operator). None for no words.
pub(super) fn search_words(query: &str) -> Option<Vec<String>> {
    let words: Vec<String> =
        query.split_whitespace().take(10).map(|word| word.replace('"', "")).filter(|word| !word.is_empty()).collect();
    (!words.is_empty()).then_some(words)
}

pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
