//! The public programme as iCalendar (RFC 5545): `GET /api/v1/summits.ics`, one event
//! per public summit with a start, times in UTC, so members can follow the programme in
//! their own calendar.
//!
//! Written by hand: the format is a few lines per event. What needs care is here:
//! CRLF line ends, text escaped (`\`, `;`, `,`, newlines), and lines folded at 75
//! octets without splitting a character.

use crate::store::RoomRecord;

/// The calendar of `summits` (the caller picks which: public ones with a start), as
/// of `now_ms` (each event's `DTSTAMP`).
pub fn feed(summits: &[RoomRecord], now_ms: i64) -> String {
    let mut out = String::new();
    let mut line = |text: &str| fold(&mut out, text);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line("PRODID:-//Alongside//Summits//EN");
    line("CALSCALE:GREGORIAN");
    line("X-WR-CALNAME:Summits");
    for summit in summits {
        let Some((start, end)) = times(summit) else { continue };
        line("BEGIN:VEVENT");
        line(&format!("UID:alongside-summit-{}-{}", summit.id.0, summit.name));
        line(&format!("DTSTAMP:{}", utc(now_ms)));
        line(&format!("DTSTART:{}", utc(start)));
        line(&format!("DTEND:{}", utc(end)));
        let title = if summit.topic.is_empty() { format!("#{}", summit.name) } else { summit.topic.clone() };
        line(&format!("SUMMARY:{}", escape(&title)));
        line(&format!("DESCRIPTION:{}", escape(&format!("In the summit room #{}.", summit.name))));
        line("END:VEVENT");
    }
    line("END:VCALENDAR");
    out
}

/// When a summit's event is, as calendars should show it: an imported session's own
/// times, else its window. An event with no end lasts a day in most calendars; a summit
/// with none is shown as an hour. `None` for a summit with no start.
pub fn times(summit: &RoomRecord) -> Option<(i64, i64)> {
    summit.session.or_else(|| summit.starts_at.map(|start| (start, summit.ends_at.unwrap_or(start + 3_600_000))))
}

/// `20261010T090000Z`: the protocol's `2026-10-10T09:00:00.000Z` in iCalendar's form.
fn utc(ms: i64) -> String {
    let iso = crate::protocol::format_ts(ms);
    format!("{}Z", iso[..19].replace(['-', ':'], ""))
}

/// TEXT escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `text` as content lines of at most 75 octets (continuations start with a
/// space), each ended by CRLF.
fn fold(out: &mut String, text: &str) {
    let mut width = 0;
    for c in text.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let mut out = String::new();
        fold(&mut out, &format!("SUMMARY:{}", "Ünïcödé ".repeat(20)));
        for line in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end(), format!("SUMMARY:{}", "Ünïcödé ".repeat(20)).trim_end());
        assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
        assert_eq!(utc(1_791_622_800_000), "20261010T090000Z");
    }
}
