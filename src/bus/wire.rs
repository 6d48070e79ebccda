//! [`BusMessage`] as bytes, for a bus between nodes: a version byte, a tag, then the
//! fields in order. Integers are little-endian, strings and frames a `u32` length and
//! their bytes, options a presence byte. The frame (most of a message's bytes) is copied
//! as it is: no escaping, no second serialisation.
//!
//! A node that reads a version it does not know drops the message with a log line, so
//! nodes of different versions never misread each other during a rolling upgrade (they
//! fill the gap from the store, like any lost message).

use super::{Authored, BusMessage, CloseTarget, Effect, RoomEnvelope, Variants, Words};
use crate::protocol::{CwPreferences, CwTags, Phase, Role, RoomKind, User};
use crate::store::{Restriction, RoomId, RoomRecord, UserId, UserRecord};
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;

/// The encoding's version; bumped when the layout changes.
const VERSION: u8 = 5;

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
#[error("undecodable bus message: {0}")]
pub struct WireError(&'static str);

/// The close reasons a `Close` may carry (a close reason is a constant of the server).
const CLOSE_REASONS: &[&str] = &["logged out", "banned from the server", "account deleted"];

/// Encodes a message for another node.
pub fn encode(message: &BusMessage) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(64 + frame_len(message)));
    out.u8(VERSION);
    match message {
        BusMessage::Room(envelope) => {
            out.u8(1);
            out.str(&envelope.room);
            out.str(&envelope.frame);
            out.opt(envelope.except, |out, user| out.i64(user.0));
            out.opt(envelope.effect.as_ref(), Out::effect);
            out.opt(envelope.seq, Out::i64);
            out.opt(envelope.variants.as_deref(), |out, variants| {
                out.u8(variants.tags.0);
                out.str(&variants.author);
                out.str(&variants.collapsed);
                out.str(&variants.hidden);
            });
            out.opt(envelope.authored.as_ref(), |out, authored| {
                out.str(&authored.author);
                match authored.words {
                    Words::Message(seq) => {
                        out.u8(1);
                        out.i64(seq);
                    }
                    Words::Updated(seq) => {
                        out.u8(2);
                        out.i64(seq);
                    }
                    Words::Typing => out.u8(3),
                }
                out.u32(authored.unseen_by.len() as u32);
                for user in &authored.unseen_by {
                    out.i64(user.0);
                }
            });
        }
        BusMessage::User { user, frame } => {
            out.u8(2);
            out.i64(user.0);
            out.str(frame);
        }
        BusMessage::UserChanged { record, frame } => {
            out.u8(3);
            out.user(record);
            out.str(frame);
        }
        BusMessage::Moderators { moderators, frame } => {
            out.u8(4);
            out.u32(moderators.len() as u32);
            for user in moderators {
                out.i64(user.0);
            }
            out.str(frame);
        }
        BusMessage::Everyone { frame } => {
            out.u8(5);
            out.str(frame);
        }
        BusMessage::Apply { room, effect } => {
            out.u8(6);
            out.str(room);
            out.effect(effect);
        }
        BusMessage::Block { blocker, blocked, on } => {
            out.u8(9);
            out.i64(blocker.0);
            out.str(blocked);
            out.u8(u8::from(*on));
        }
        BusMessage::Preferences { user, preferences } => {
            out.u8(8);
            out.i64(user.0);
            out.0.extend_from_slice(&preferences.0.to_le_bytes());
        }
        BusMessage::Close { target, code, reason } => {
            out.u8(7);
            match target {
                CloseTarget::User(user) => {
                    out.u8(1);
                    out.i64(user.0);
                }
                CloseTarget::Token(hash) => {
                    out.u8(2);
                    out.0.extend_from_slice(hash);
                }
            }
            out.0.extend_from_slice(&code.to_le_bytes());
            out.str(reason);
        }
    }
    out.0
}

fn frame_len(message: &BusMessage) -> usize {
    match message {
        BusMessage::Room(envelope) => {
            envelope.frame.len() + envelope.variants.as_ref().map_or(0, |v| v.collapsed.len() + v.hidden.len())
        }
        BusMessage::User { frame, .. }
        | BusMessage::UserChanged { frame, .. }
        | BusMessage::Moderators { frame, .. }
        | BusMessage::Everyone { frame } => frame.len(),
        BusMessage::Apply { .. }
        | BusMessage::Close { .. }
        | BusMessage::Preferences { .. }
        | BusMessage::Block { .. } => 0,
    }
}

/// Decodes what [`encode`] made.
pub fn decode(bytes: &[u8]) -> Result<BusMessage, WireError> {
    let mut input = In(bytes);
    if input.u8()? != VERSION {
        return Err(WireError("an encoding version this node does not know"));
    }
    let message = match input.u8()? {
        1 => BusMessage::Room(RoomEnvelope {
            room: input.string()?,
            frame: input.frame()?,
            except: input.opt(|input| Ok(UserId(input.i64()?)))?,
            effect: input.opt(In::effect)?,
            seq: input.opt(In::i64)?,
            variants: input.opt(|input| {
                Ok(Arc::new(Variants {
                    tags: CwTags(input.u8()?),
                    author: input.string()?,
                    collapsed: input.frame()?,
                    hidden: input.frame()?,
                }))
            })?,
            authored: input.opt(|input| {
                let author = input.string()?;
                let words = match input.u8()? {
                    1 => Words::Message(input.i64()?),
                    2 => Words::Updated(input.i64()?),
                    3 => Words::Typing,
                    _ => return Err(WireError("an unknown kind of words")),
                };
                let count = input.u32()?;
                let mut unseen_by = Vec::with_capacity(count.min(1024) as usize);
                for _ in 0..count {
                    unseen_by.push(UserId(input.i64()?));
                }
                Ok(Authored { author, words, unseen_by })
            })?,
        }),
        2 => BusMessage::User { user: UserId(input.i64()?), frame: input.frame()? },
        3 => BusMessage::UserChanged { record: input.user()?, frame: input.frame()? },
        4 => {
            let n = input.u32()? as usize;
            let mut moderators = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                moderators.push(UserId(input.i64()?));
            }
            BusMessage::Moderators { moderators, frame: input.frame()? }
        }
        5 => BusMessage::Everyone { frame: input.frame()? },
        6 => BusMessage::Apply { room: input.string()?, effect: input.effect()? },
        7 => {
            let target = match input.u8()? {
                1 => CloseTarget::User(UserId(input.i64()?)),
                2 => CloseTarget::Token(input.take(32)?.try_into().expect("32 bytes")),
                _ => return Err(WireError("an unknown close target")),
            };
            let code = u16::from_le_bytes(input.take(2)?.try_into().expect("2 bytes"));
            let reason = input.string()?;
            let reason = CLOSE_REASONS.iter().find(|known| **known == reason).copied().unwrap_or("closed");
            BusMessage::Close { target, code, reason }
        }
        9 => BusMessage::Block {
            blocker: UserId(input.i64()?),
            blocked: input.string()?,
            on: match input.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError("a flag that is neither 0 nor 1")),
            },
        },
        8 => BusMessage::Preferences {
            user: UserId(input.i64()?),
            preferences: CwPreferences(u16::from_le_bytes(input.take(2)?.try_into().expect("2 bytes"))),
        },
        _ => return Err(WireError("an unknown message tag")),
    };
    if !input.0.is_empty() {
        return Err(WireError("bytes left over"));
    }
    Ok(message)
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn str(&mut self, text: &str) {
        self.u32(text.len() as u32);
        self.0.extend_from_slice(text.as_bytes());
    }

    fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Out, T)) {
        match value {
            Some(value) => {
                self.u8(1);
                write(self, value);
            }
            None => self.u8(0),
        }
    }

    fn user(&mut self, record: &UserRecord) {
        self.i64(record.id.0);
        self.str(&record.user.username);
        self.str(&record.user.display_name);
        self.str(record.user.role.as_str());
    }

    fn restriction(&mut self, restriction: &Restriction) {
        self.opt(restriction.until, Out::i64);
        self.opt(restriction.reason.as_deref(), Out::str);
    }

    fn effect(&mut self, effect: &Effect) {
        match effect {
            Effect::Subscribe(user) => {
                self.u8(1);
                self.i64(user.0);
            }
            Effect::Unsubscribe(user) => {
                self.u8(2);
                self.i64(user.0);
            }
            Effect::Muted(room, user, restriction) => {
                self.u8(3);
                self.i64(room.0);
                self.i64(user.0);
                self.restriction(restriction);
            }
            Effect::Unmuted(room, user) => {
                self.u8(4);
                self.i64(room.0);
                self.i64(user.0);
            }
            Effect::RoomChanged(room) => {
                self.u8(5);
                self.i64(room.id.0);
                self.str(&room.name);
                self.str(&room.topic);
                self.str(room.kind.as_str());
                self.i64(room.owner_id.0);
                self.str(&room.owner);
                self.u32(room.slow_mode_s);
                self.u8(u8::from(room.locked));
                self.opt(room.starts_at, Out::i64);
                self.opt(room.ends_at, Out::i64);
                self.opt(room.capacity, Out::u32);
                self.u8(u8::from(room.requires_host));
                self.u8(u8::from(room.private));
                self.u8(u8::from(room.since_join));
                self.opt(room.phase, |out, phase| out.str(phase.as_str()));
                self.u32(room.schedule.len() as u32);
                for (phase, at) in &room.schedule {
                    self.str(phase.as_str());
                    self.i64(*at);
                }
                self.u32(room.speakers.len() as u32);
                for speaker in &room.speakers {
                    self.str(speaker);
                }
                self.u8(u8::from(room.viewers));
                self.i64(i64::try_from(room.viewer_count).unwrap_or(i64::MAX));
                self.opt(room.session, |out, (start, end)| {
                    out.i64(start);
                    out.i64(end);
                });
                self.str(&room.time_zone);
            }
            Effect::Duty { room, user, username, on } => {
                self.u8(6);
                self.i64(room.0);
                self.i64(user.0);
                self.str(username);
                self.u8(u8::from(*on));
            }
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError("text that is not UTF-8"))
    }

    fn phase(&mut self) -> Result<Phase, WireError> {
        Phase::parse(self.str()?).ok_or(WireError("an unknown phase"))
    }

    fn string(&mut self) -> Result<String, WireError> {
        Ok(self.str()?.to_string())
    }

    fn frame(&mut self) -> Result<Utf8Bytes, WireError> {
        Ok(Utf8Bytes::from(self.str()?))
    }

    fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("a flag that is neither 0 nor 1")),
        }
    }

    fn opt<T>(&mut self, read: impl FnOnce(&mut In<'a>) -> Result<T, WireError>) -> Result<Option<T>, WireError> {
        if self.flag()? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn user(&mut self) -> Result<UserRecord, WireError> {
        let id = UserId(self.i64()?);
        let username = self.string()?;
        let display_name = self.string()?;
        let role = Role::parse(self.str()?).ok_or(WireError("an unknown role"))?;
        Ok(UserRecord { id, user: User { username, display_name, role } })
    }

    fn effect(&mut self) -> Result<Effect, WireError> {
        Ok(match self.u8()? {
            1 => Effect::Subscribe(UserId(self.i64()?)),
            2 => Effect::Unsubscribe(UserId(self.i64()?)),
            3 => {
                let (room, user) = (RoomId(self.i64()?), UserId(self.i64()?));
                let until = self.opt(In::i64)?;
                let reason = self.opt(In::string)?;
                Effect::Muted(room, user, Restriction { until, reason })
            }
            4 => Effect::Unmuted(RoomId(self.i64()?), UserId(self.i64()?)),
            5 => Effect::RoomChanged(Arc::new(RoomRecord {
                id: RoomId(self.i64()?),
                name: self.string()?,
                topic: self.string()?,
                kind: RoomKind::parse(self.str()?).ok_or(WireError("an unknown room kind"))?,
                owner_id: UserId(self.i64()?),
                owner: self.string()?,
                slow_mode_s: self.u32()?,
                locked: self.flag()?,
                starts_at: self.opt(In::i64)?,
                ends_at: self.opt(In::i64)?,
                capacity: self.opt(In::u32)?,
                requires_host: self.flag()?,
                private: self.flag()?,
                since_join: self.flag()?,
                phase: self.opt(In::phase)?,
                schedule: (0..self.u32()?).map(|_| Ok((self.phase()?, self.i64()?))).collect::<Result<_, _>>()?,
                speakers: (0..self.u32()?).map(|_| self.string()).collect::<Result<_, _>>()?,
                viewers: self.flag()?,
                viewer_count: u64::try_from(self.i64()?).unwrap_or(0),
                session: self.opt(|input| Ok((input.i64()?, input.i64()?)))?,
                time_zone: self.string()?,
            })),
            6 => Effect::Duty {
                room: RoomId(self.i64()?),
                user: UserId(self.i64()?),
                username: self.string()?,
                on: self.flag()?,
            },
            _ => return Err(WireError("an unknown effect")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: BusMessage) {
        let bytes = encode(&message);
        let back = decode(&bytes).expect("decodes");
        // The types hold frames and Arcs; their debug form compares every field.
        assert_eq!(format!("{back:?}"), format!("{message:?}"));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "a message cut at {cut} bytes is refused");
        }
    }

    #[test]
    fn every_kind_of_message_survives_the_trip() {
        let room = RoomRecord {
            id: RoomId(7),
            name: "peer-support".into(),
            topic: "A quiet room — for everyone".into(),
            kind: RoomKind::Summit,
            owner_id: UserId(1),
            owner: "ada".into(),
            slow_mode_s: 30,
            locked: true,
            starts_at: Some(1_795_772_005_771),
            ends_at: None,
            capacity: Some(500),
            requires_host: true,
            private: true,
            since_join: false,
            phase: Some(Phase::Lobby),
            schedule: vec![(Phase::Stage, 1_795_772_005_771), (Phase::Hallway, 1_795_772_905_771)],
            speakers: vec!["ben".into(), "chi".into()],
            viewers: true,
            viewer_count: 12,
            session: Some((1_795_772_005_771, 1_795_775_605_771)),
            time_zone: "Asia/Kolkata".into(),
        };
        let mute = Restriction { until: Some(99), reason: Some("cool down".into()) };
        let frame = Utf8Bytes::from(r#"{"type":"message","body":"héllo \"there\""}"#);
        round_trip(BusMessage::Room(RoomEnvelope {
            room: "peer-support".into(),
            frame: frame.clone(),
            except: Some(UserId(3)),
            effect: Some(Effect::Muted(RoomId(7), UserId(3), mute)),
            seq: Some(42),
            variants: None,
            authored: None,
        }));
        round_trip(BusMessage::Room(RoomEnvelope {
            room: "r".into(),
            frame: frame.clone(),
            except: None,
            effect: None,
            seq: None,
            variants: None,
            authored: None,
        }));
        let variants = Variants {
            tags: CwTags(0b1000_0001),
            author: "ada".into(),
            collapsed: Utf8Bytes::from(r#"{"type":"message","collapsed":true}"#),
            hidden: Utf8Bytes::from(r#"{"type":"message","hidden":true}"#),
        };
        round_trip(BusMessage::Room(RoomEnvelope {
            room: "r".into(),
            frame: frame.clone(),
            except: None,
            effect: None,
            seq: Some(3),
            variants: Some(Arc::new(variants)),
            authored: Some(Authored { author: "ada".into(), words: Words::Message(3), unseen_by: Vec::new() }),
        }));
        for words in [Words::Updated(4), Words::Typing] {
            round_trip(BusMessage::Room(RoomEnvelope {
                room: "r".into(),
                frame: frame.clone(),
                except: Some(UserId(1)),
                effect: None,
                seq: None,
                variants: None,
                authored: Some(Authored { author: "ben".into(), words, unseen_by: vec![UserId(4), UserId(9)] }),
            }));
        }
        round_trip(BusMessage::Block { blocker: UserId(5), blocked: "ada".into(), on: true });
        round_trip(BusMessage::Block { blocker: UserId(5), blocked: "ada".into(), on: false });
        round_trip(BusMessage::Preferences { user: UserId(5), preferences: CwPreferences(0b10_01_00) });
        round_trip(BusMessage::Apply { room: "r".into(), effect: Effect::RoomChanged(Arc::new(room)) });
        round_trip(BusMessage::Apply { room: "r".into(), effect: Effect::Subscribe(UserId(9)) });
        round_trip(BusMessage::Apply { room: "r".into(), effect: Effect::Unsubscribe(UserId(9)) });
        round_trip(BusMessage::Apply { room: "r".into(), effect: Effect::Unmuted(RoomId(1), UserId(9)) });
        let duty = Effect::Duty { room: RoomId(1), user: UserId(9), username: "ada".into(), on: true };
        round_trip(BusMessage::Apply { room: "r".into(), effect: duty });
        round_trip(BusMessage::User { user: UserId(5), frame: frame.clone() });
        let record = UserRecord {
            id: UserId(5),
            user: User { username: "ben".into(), display_name: "Ben".into(), role: Role::Moderator },
        };
        round_trip(BusMessage::UserChanged { record, frame: frame.clone() });
        round_trip(BusMessage::Moderators { moderators: vec![UserId(1), UserId(2)], frame: frame.clone() });
        round_trip(BusMessage::Everyone { frame });
        round_trip(BusMessage::Close {
            target: CloseTarget::User(UserId(4)),
            code: 4003,
            reason: "banned from the server",
        });
        round_trip(BusMessage::Close { target: CloseTarget::Token([7; 32]), code: 4001, reason: "logged out" });
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = encode(&BusMessage::Everyone { frame: Utf8Bytes::from("{}") });
        bytes[0] = VERSION + 1;
        assert!(decode(&bytes).unwrap_err().to_string().contains("version"));
    }
}
