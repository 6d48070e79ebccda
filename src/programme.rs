//! Summit programmes: `alongside summit import FILE` reads a programme, in iCalendar
//! (RFC 5545) or JSON, and opens one summit room per session, with its backstage, its
//! speakers and a schedule of phases around the session's own times (PROTOCOL §12).
//!
//! Times keep their zones: a session given as 09:00 in `Europe/London` is stored as that
//! instant, the room remembers `Europe/London`, and every time the room shows carries
//! that zone's offset on that day (summer time included). Zones are IANA names, read
//! from the system's database with a copy built in for machines without one.
//!
//! Everything is checked before anything is written (names free, speakers known, times
//! sensible), so a file with one mistake creates nothing.

use crate::protocol::{backstage_name, is_room_name, LogAction, Phase, RoomKind, RoomRole, MAX_SUMMIT_NAME};
use crate::store::{Change, ModEntry, NewRoom, Store, StoreError, UserRecord};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// One session of a programme, as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The summit room's name.
    pub room: String,
    /// Its title, the room's topic.
    pub title: String,
    /// When the session itself starts and ends, Unix milliseconds.
    pub start: i64,
    /// See `start`.
    pub end: i64,
    /// The IANA zone its times were given in (`UTC` for times given in UTC; empty
    /// when given only as an offset).
    pub time_zone: String,
    /// Usernames of its speakers.
    pub speakers: Vec<String>,
    /// A member limit.
    pub capacity: Option<u32>,
    /// Whether people beyond the limit come in as viewers.
    pub viewers: bool,
}

/// Where each phase falls around a session (the defaults: lobby 15 minutes before,
/// stage at the start, Q&A for the last quarter, hallway at the end, closed two hours
/// after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Minutes the lobby opens before the start (0: no lobby).
    pub lobby_minutes: u32,
    /// The share of the session, in percent, kept for Q&A at its end (0: none).
    pub qa_percent: u32,
    /// Minutes after the end that the room closes.
    pub closed_after_minutes: u32,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing { lobby_minutes: 15, qa_percent: 25, closed_after_minutes: 120 }
    }
}

impl Timing {
    /// The phases of a session from `start` to `end` (Unix ms), ascending.
    pub fn schedule(&self, start: i64, end: i64) -> Vec<(Phase, i64)> {
        const MINUTE: i64 = 60_000;
        let mut schedule = Vec::with_capacity(5);
        if self.lobby_minutes > 0 {
            schedule.push((Phase::Lobby, start - i64::from(self.lobby_minutes) * MINUTE));
        }
        let qa_at = end - (end - start) * i64::from(self.qa_percent.min(100)) / 100;
        if qa_at > start {
            schedule.push((Phase::Stage, start));
        }
        if qa_at < end {
            schedule.push((Phase::Qa, qa_at));
        }
        schedule.push((Phase::Hallway, end));
        schedule.push((Phase::Closed, end + i64::from(self.closed_after_minutes.max(1)) * MINUTE));
        schedule
    }
}

/// Reads a programme: iCalendar when it begins `BEGIN:VCALENDAR`, else JSON.
/// Room names not given in the file are made from the titles, after `prefix`.
pub fn read(text: &str, prefix: &str) -> Result<Vec<Session>, String> {
    let text = text.trim_start_matches('\u{feff}');
    let sessions = if text.trim_start().get(..15).is_some_and(|head| head.eq_ignore_ascii_case("BEGIN:VCALENDAR")) {
        read_ical(text, prefix)?
    } else {
        read_json(text, prefix)?
    };
    if sessions.is_empty() {
        return Err("the programme has no sessions".into());
    }
    let mut names: Vec<&str> = sessions.iter().map(|s| s.room.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("two sessions would both be the room #{}: give one another room name", pair[0]));
    }
    Ok(sessions)
}

/// A room name from a title: lower-case letters and digits, the rest as single dashes,
/// short enough for a summit (its backstage's name adds ten).
fn slug(prefix: &str, title: &str, index: usize) -> String {
    let mut body = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            body.push(c);
        } else if !body.is_empty() && !body.ends_with('-') {
            body.push('-');
        }
    }
    // The body is ASCII, so any length is a character boundary.
    body.truncate(MAX_SUMMIT_NAME.saturating_sub(prefix.len()));
    let body = body.trim_end_matches('-');
    // A title with no letters of a-z (in another script) still gets a name.
    if body.is_empty() {
        format!("{prefix}session-{}", index + 1)
    } else {
        format!("{prefix}{body}")
    }
}

/// Checks a session read from either format.
fn check(session: &Session, what: &str) -> Result<(), String> {
    if !is_room_name(&session.room) || session.room.len() > MAX_SUMMIT_NAME {
        return Err(format!(
            "{what}: the room name `{}` is not one: 2 to {MAX_SUMMIT_NAME} characters from a-z, 0-9, '_' and '-'",
            session.room
        ));
    }
    if session.end <= session.start {
        return Err(format!("{what}: it ends before it starts"));
    }
    if session.end - session.start > 7 * 86_400_000 {
        return Err(format!("{what}: it lasts more than a week; a session is hours, not days"));
    }
    if session.title.chars().count() > 200 || session.title.chars().any(char::is_control) {
        return Err(format!("{what}: a title is at most 200 characters on one line"));
    }
    if session.capacity == Some(0) {
        return Err(format!("{what}: a capacity is at least 1"));
    }
    Ok(())
}

/// An IANA zone by name; also the name at the end of a prefixed TZID
/// (`/example.org/2019_1/Europe/London`), which some calendar programs write.
fn zone(name: &str) -> Option<(TimeZone, String)> {
    let mut rest = name.trim_matches('"');
    loop {
        if let Ok(tz) = TimeZone::get(rest) {
            return Some((tz, rest.to_string()));
        }
        rest = rest.split_once('/')?.1;
    }
}

// ---------------------------------------------------------------- iCalendar

fn read_ical(text: &str, prefix: &str) -> Result<Vec<Session>, String> {
    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let calendar = match calendars.next() {
        Some(Ok(calendar)) => calendar,
        Some(Err(err)) => return Err(format!("not a readable iCalendar file: {err}")),
        None => return Err("not a readable iCalendar file: no VCALENDAR".into()),
    };
    // A zone for times written without one (X-WR-TIMEZONE, which many programs write).
    let floating = property(&calendar.properties, "X-WR-TIMEZONE").and_then(|p| p.value.clone());
    // Non-IANA TZIDs some programs define, with the IANA name in X-LIC-LOCATION.
    let aliases: Vec<(String, String)> = calendar
        .timezones
        .iter()
        .filter_map(|tz| {
            let id = property(&tz.properties, "TZID")?.value.clone()?;
            let location = property(&tz.properties, "X-LIC-LOCATION")?.value.clone()?;
            Some((id, location))
        })
        .collect();
    let mut sessions = Vec::with_capacity(calendar.events.len());
    for (index, event) in calendar.events.iter().enumerate() {
        let props = &event.properties;
        let title = property(props, "SUMMARY").and_then(|p| p.value.as_deref()).map(unescape).unwrap_or_default();
        let what = if title.is_empty() { format!("event {}", index + 1) } else { format!("“{title}”") };
        // A cancelled session is no session; a repeating one would be one room for many.
        if property(props, "STATUS")
            .and_then(|p| p.value.as_deref())
            .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"))
        {
            continue;
        }
        if property(props, "RRULE").is_some() || property(props, "RDATE").is_some() {
            return Err(format!(
                "{what} repeats (RRULE): list each session once (your calendar program can export the occurrences)"
            ));
        }
        let time = |name: &str| -> Result<Option<(i64, String)>, String> {
            let Some(prop) = property(props, name) else { return Ok(None) };
            ical_time(prop, floating.as_deref(), &aliases).map(Some).map_err(|err| format!("{what}: {name} {err}"))
        };
        let (start, time_zone) = time("DTSTART")?.ok_or_else(|| format!("{what}: it has no DTSTART"))?;
        let end = match (time("DTEND")?, property(props, "DURATION").and_then(|p| p.value.as_deref())) {
            (Some((end, _)), _) => end,
            (None, Some(duration)) => {
                start + duration_ms(duration).ok_or_else(|| format!("{what}: DURATION `{duration}` is not one"))?
            }
            (None, None) => return Err(format!("{what}: it has neither DTEND nor DURATION")),
        };
        let room = match property(props, "X-ALONGSIDE-ROOM").and_then(|p| p.value.as_deref()) {
            Some(room) => room.trim().to_string(),
            None => slug(prefix, &title, index),
        };
        let mut speakers = Vec::new();
        if let Some(names) = property(props, "X-ALONGSIDE-SPEAKERS").and_then(|p| p.value.as_deref()) {
            speakers.extend(names.split(',').map(|name| name.trim().to_lowercase()).filter(|name| !name.is_empty()));
        }
        // The presenters: attendees with ROLE=CHAIR, by the name before the @.
        for attendee in props.iter().filter(|p| p.name.eq_ignore_ascii_case("ATTENDEE")) {
            if param(attendee, "ROLE").is_some_and(|role| role.eq_ignore_ascii_case("CHAIR")) {
                let address = attendee.value.as_deref().unwrap_or_default();
                let address = address.get(7..).filter(|_| address[..7].eq_ignore_ascii_case("mailto:"));
                if let Some(local) = address.and_then(|a| a.split('@').next()).filter(|l| !l.is_empty()) {
                    speakers.push(local.to_lowercase());
                }
            }
        }
        speakers.sort();
        speakers.dedup();
        let session = Session { room, title, start, end, time_zone, speakers, capacity: None, viewers: false };
        check(&session, &what)?;
        sessions.push(session);
    }
    Ok(sessions)
}

fn property<'a>(props: &'a [ical::property::Property], name: &str) -> Option<&'a ical::property::Property> {
    props.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn param<'a>(prop: &'a ical::property::Property, name: &str) -> Option<&'a str> {
    let params = prop.params.as_ref()?;
    let (_, values) = params.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))?;
    values.first().map(String::as_str)
}

/// An iCalendar DATE-TIME: `…Z` (UTC), with a TZID, or floating (in `floating`).
/// The instant in Unix ms and the zone's name.
fn ical_time(
    prop: &ical::property::Property,
    floating: Option<&str>,
    aliases: &[(String, String)],
) -> Result<(i64, String), String> {
    let value = prop.value.as_deref().unwrap_or_default().trim();
    if param(prop, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE")) || value.len() == 8 {
        return Err(format!("`{value}` is a whole day; a session needs a time of day"));
    }
    let civil = |text: &str| -> Option<DateTime> {
        let (date, time) = text.split_once(['T', 't'])?;
        let number = |s: &str| s.parse::<i32>().ok();
        if date.len() != 8 || time.len() != 6 {
            return None;
        }
        let field = |s: &str, from: usize, to: usize| s.get(from..to).and_then(number);
        DateTime::new(
            i16::try_from(field(date, 0, 4)?).ok()?,
            i8::try_from(field(date, 4, 6)?).ok()?,
            i8::try_from(field(date, 6, 8)?).ok()?,
            i8::try_from(field(time, 0, 2)?).ok()?,
            i8::try_from(field(time, 2, 4)?).ok()?,
            i8::try_from(field(time, 4, 6)?).ok()?,
            0,
        )
        .ok()
    };
    let not_a_time = || format!("`{value}` is not a date and time like 20261010T090000");
    if let Some(utc) = value.strip_suffix(['Z', 'z']) {
        let at = civil(utc).ok_or_else(not_a_time)?;
        return instant(at, &TimeZone::UTC).map(|ms| (ms, "UTC".to_string()));
    }
    let at = civil(value).ok_or_else(not_a_time)?;
    let name = match param(prop, "TZID") {
        Some(tzid) => aliases.iter().find(|(id, _)| id == tzid).map_or(tzid, |(_, location)| location.as_str()),
        None => floating.ok_or_else(|| {
            format!("`{value}` has no time zone: add TZID=Europe/London (or your zone) or X-WR-TIMEZONE")
        })?,
    };
    let (tz, name) = zone(name)
        .ok_or_else(|| format!("names the time zone `{name}`, which is not an IANA zone like Europe/London"))?;
    instant(at, &tz).map(|ms| (ms, name))
}

/// The instant a wall-clock time in `tz` names (in a gap or an overlap of summer time,
/// the later wall-clock reading, as calendar programs do).
fn instant(at: DateTime, tz: &TimeZone) -> Result<i64, String> {
    tz.to_timestamp(at).map(|ts| ts.as_millisecond()).map_err(|err| format!("{at} is not a time there: {err}"))
}

/// An iCalendar DURATION (`PT1H30M`, `P1D`, `P1W`) in ms; negative ones are not sessions.
fn duration_ms(text: &str) -> Option<i64> {
    let rest = text.trim().strip_prefix('+').unwrap_or(text.trim()).strip_prefix('P')?;
    let (mut total, mut number, mut in_time) = (0i64, String::new(), false);
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: i64 = std::mem::take(&mut number).parse().ok()?;
                let seconds = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(seconds * 1000)?)?;
            }
        }
    }
    (number.is_empty() && total > 0).then_some(total)
}

/// TEXT unescaping (RFC 5545 §3.3.11), with newlines as spaces: a title is one line.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n' | 'N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out.trim().to_string()
}

// ---------------------------------------------------------------- JSON

/// A JSON programme: `{"time_zone"?, "sessions": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonProgramme {
    /// The zone of times given without an offset, unless a session names its own.
    #[serde(default)]
    time_zone: Option<String>,
    sessions: Vec<JsonSession>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSession {
    title: String,
    start: String,
    end: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    speakers: Vec<String>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    viewers: bool,
}

fn read_json(text: &str, prefix: &str) -> Result<Vec<Session>, String> {
    let programme: JsonProgramme = serde_json::from_str(text)
        .map_err(|err| format!("neither iCalendar nor a JSON programme ({{\"sessions\": [...]}}): {err}"))?;
    let mut sessions = Vec::with_capacity(programme.sessions.len());
    for (index, given) in programme.sessions.into_iter().enumerate() {
        let what = format!("session {} “{}”", index + 1, given.title);
        let zone_name = given.time_zone.as_deref().or(programme.time_zone.as_deref());
        let tz = match zone_name {
            Some(name) => {
                Some(zone(name).ok_or_else(|| format!("{what}: `{name}` is not an IANA zone like Europe/London"))?)
            }
            None => None,
        };
        let time = |field: &str, text: &str| -> Result<i64, String> {
            // With an offset it is an instant; without one, a wall-clock time in the zone.
            if let Some(ms) = crate::protocol::parse_ts(text) {
                return Ok(ms);
            }
            let civil: DateTime = text.parse().map_err(|_| {
                format!("{what}: “{field}” `{text}` is not a time like 2026-10-10T09:00 or 2026-10-10T09:00:00+01:00")
            })?;
            let (tz, _) = tz.as_ref().ok_or_else(|| {
                format!("{what}: “{field}” has no offset; give the session (or the programme) a “time_zone”")
            })?;
            instant(civil, tz).map_err(|err| format!("{what}: “{field}” {err}"))
        };
        let start = time("start", &given.start)?;
        let end = time("end", &given.end)?;
        let session = Session {
            room: given.room.unwrap_or_else(|| slug(prefix, &given.title, index)),
            title: given.title.trim().to_string(),
            start,
            end,
            time_zone: tz.map(|(_, name)| name).unwrap_or_default(),
            speakers: {
                let mut names: Vec<String> = given.speakers.iter().map(|name| name.trim().to_lowercase()).collect();
                names.sort();
                names.dedup();
                names
            },
            capacity: given.capacity,
            viewers: given.viewers,
        };
        check(&session, &what)?;
        sessions.push(session);
    }
    Ok(sessions)
}

// ---------------------------------------------------------------- import

/// A session checked against the network: what `import` opens (or, in a dry run,
/// would open).
pub struct Planned {
    /// The session as read.
    pub session: Session,
    /// Its phases, ascending.
    pub schedule: Vec<(Phase, i64)>,
    /// Its speakers' accounts.
    pub speakers: Vec<UserRecord>,
}

/// Checks every session against the network, then (unless `dry_run`) opens its summit
/// room, owned by `organiser`, with its backstage and speakers, and tells a running
/// server (`Change::Rooms`) so the organiser's and speakers' open sockets receive the
/// rooms. `now` decides which sessions are over (refused); phases already due apply
/// as the summit is read.
pub async fn import(
    store: &dyn Store,
    organiser: &str,
    sessions: Vec<Session>,
    timing: Timing,
    now: i64,
    dry_run: bool,
) -> Result<Vec<Planned>, String> {
    let owner = store
        .fetch_user(&organiser.to_lowercase())
        .await
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("there is no user `{organiser}`"))?;
    if !owner.user.role.can_create_summit_room() {
        return Err(format!(
            "{} is a {}: only organisers and admins open summits",
            owner.user.username, owner.user.role
        ));
    }
    let mut planned = Vec::with_capacity(sessions.len());
    let mut problems = Vec::new();
    for session in sessions {
        let schedule = timing.schedule(session.start, session.end);
        if schedule.last().is_some_and(|(_, closes)| *closes <= now) {
            problems.push(format!("#{}: it is over already (check the year)", session.room));
        }
        for name in [session.room.clone(), backstage_name(&session.room)] {
            if store.fetch_room(&name).await.map_err(|err| err.to_string())?.is_some() {
                problems.push(format!("#{}: a room named #{name} exists already", session.room));
            }
        }
        let mut speakers = Vec::with_capacity(session.speakers.len());
        for name in &session.speakers {
            match store.fetch_user(name).await.map_err(|err| err.to_string())? {
                Some(user) => speakers.push(user),
                None => problems.push(format!("#{}: there is no user `{name}` to be its speaker", session.room)),
            }
        }
        planned.push(Planned { session, schedule, speakers });
    }
    if !problems.is_empty() {
        return Err(format!("nothing was imported:\n  {}", problems.join("\n  ")));
    }
    if dry_run {
        return Ok(planned);
    }
    let mut told = vec![owner.id];
    for (made, plan) in planned.iter().enumerate() {
        open(store, &owner, plan)
            .await
            .map_err(|err| format!("#{}: {err} ({made} session(s) before it were imported)", plan.session.room))?;
        told.extend(plan.speakers.iter().map(|user| user.id));
    }
    told.sort_unstable_by_key(|id| id.0);
    told.dedup();
    for user in told {
        // Best effort: the rooms are made; a socket that misses this gets them on its
        // next connection.
        if let Err(err) = store.insert_change(user, Change::Rooms).await {
            tracing::warn!(error = %err, "cannot tell a running server of the imported rooms");
        }
    }
    Ok(planned)
}

/// Opens one planned session's summit and backstage, and makes its speakers speakers.
async fn open(store: &dyn Store, owner: &UserRecord, plan: &Planned) -> Result<(), StoreError> {
    let session = &plan.session;
    let summit = store
        .insert_room(&NewRoom {
            name: session.room.clone(),
            topic: session.title.clone(),
            kind: RoomKind::Summit,
            owner: owner.id,
            starts_at: None,
            ends_at: None,
            capacity: session.capacity,
            requires_host: false,
            private: false,
            since_join: false,
            viewers: session.viewers,
            session: Some((session.start, session.end)),
            time_zone: session.time_zone.clone(),
            schedule: plan.schedule.clone(),
        })
        .await?;
    let backstage = store.insert_room(&NewRoom::backstage(&session.room, owner.id)).await?;
    for speaker in plan.speakers.iter().filter(|user| user.id != owner.id) {
        store.insert_membership(&summit, speaker.id).await?;
        let log = ModEntry {
            room: Some(summit.id),
            action: LogAction::SetRoomRole,
            actor: owner.id,
            target: Some(speaker.user.username.clone()),
            seq: None,
            reason: Some("speaker (from the imported programme)".into()),
            until: None,
        };
        store.update_room_role(summit.id, speaker.id, RoomRole::Speaker, &log).await?;
        store.insert_membership(&backstage, speaker.id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_surrounds_the_session() {
        let (start, end) = (1_000 * 60_000, 1_060 * 60_000);
        let schedule = Timing::default().schedule(start, end);
        let minutes: Vec<(Phase, i64)> = schedule.iter().map(|(phase, at)| (*phase, at / 60_000)).collect();
        assert_eq!(
            minutes,
            [
                (Phase::Lobby, 985),
                (Phase::Stage, 1_000),
                (Phase::Qa, 1_045),
                (Phase::Hallway, 1_060),
                (Phase::Closed, 1_180)
            ]
        );
        // No lobby and no Q&A: straight to stage, then the hallway.
        let bare = Timing { lobby_minutes: 0, qa_percent: 0, closed_after_minutes: 30 }.schedule(start, end);
        assert_eq!(
            bare.iter().map(|(phase, _)| *phase).collect::<Vec<_>>(),
            [Phase::Stage, Phase::Hallway, Phase::Closed]
        );
        // All Q&A: no stage.
        let all = Timing { qa_percent: 100, ..Timing::default() }.schedule(start, end);
        assert_eq!(
            all.iter().map(|(phase, _)| *phase).collect::<Vec<_>>(),
            [Phase::Lobby, Phase::Qa, Phase::Hallway, Phase::Closed]
        );
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(duration_ms("PT1H30M"), Some(90 * 60_000));
        assert_eq!(duration_ms("P1D"), Some(86_400_000));
        assert_eq!(duration_ms("PT"), None);
        assert_eq!(duration_ms("-PT1H"), None);
        assert_eq!(duration_ms("PT5X"), None);
        assert_eq!(slug("wmhd-", "Opening: Voices of Lived Experience!", 0), "wmhd-opening-voices-of-lived-experience");
        assert_eq!(slug("", "心の健康", 2), "session-3");
        assert_eq!(slug("x-", "A", 0), "x-a", "a one-letter title is still a name");
        assert!(slug("a-long-prefix-", &"word ".repeat(20), 0).len() <= MAX_SUMMIT_NAME);
        assert!(slug("", &"long title ".repeat(20), 0).len() <= MAX_SUMMIT_NAME);
        assert_eq!(unescape("Peers\\, carers\\; and you\\nall"), "Peers, carers; and you all");
    }

    #[test]
    fn cancelled_sessions_are_left_out_and_repeating_ones_refused() {
        let event = |extra: &str, title: &str| {
            format!(
                "BEGIN:VEVENT\r\nUID:{title}\r\nDTSTART:20301010T090000Z\r\nDTEND:20301010T100000Z\r\n\
                 SUMMARY:{title}\r\n{extra}END:VEVENT\r\n"
            )
        };
        let calendar = |events: &str| format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{events}END:VCALENDAR\r\n");
        let two = calendar(&(event("", "Kept") + &event("STATUS:CANCELLED\r\n", "Called off")));
        let sessions = read(&two, "").unwrap();
        assert_eq!(sessions.iter().map(|s| s.room.as_str()).collect::<Vec<_>>(), ["kept"]);
        assert_eq!((sessions[0].time_zone.as_str(), sessions[0].end - sessions[0].start), ("UTC", 3_600_000));
        let weekly = calendar(&event("RRULE:FREQ=WEEKLY;COUNT=4\r\n", "Weekly circle"));
        assert!(read(&weekly, "").unwrap_err().contains("repeats"));
        let floating = calendar(&event("", "Nowhere").replace("090000Z", "090000").replace("100000Z", "100000"));
        assert!(read(&floating, "").unwrap_err().contains("has no time zone"), "a time with no zone is refused");
    }

    #[test]
    fn prefixed_zone_names_and_summer_time() {
        assert_eq!(zone("/example.org/2019_1/Europe/London").map(|(_, name)| name).as_deref(), Some("Europe/London"));
        assert!(zone("Mars/Olympus_Mons").is_none());
        // 09:00 in London is 08:00 UTC in October (summer time) and 09:00 in December.
        let (london, _) = zone("Europe/London").unwrap();
        let october = instant(DateTime::new(2026, 10, 10, 9, 0, 0, 0).unwrap(), &london).unwrap();
        let december = instant(DateTime::new(2026, 12, 10, 9, 0, 0, 0).unwrap(), &london).unwrap();
        assert_eq!(crate::protocol::format_ts(october), "2026-10-10T08:00:00.000Z");
        assert_eq!(crate::protocol::format_ts(december), "2026-12-10T09:00:00.000Z");
        assert_eq!(crate::protocol::format_ts_in(october, "Europe/London"), "2026-10-10T09:00:00.000+01:00");
    }
}
