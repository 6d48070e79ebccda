//! Who may do what: every permission of a global [`Role`] and of a room standing.
//!
//! A user's [`Standing`] in a room combines the global [`Role`] with the room's own
//! relation ([`RoomStanding`]: owner, room moderator, member, or not a member). Every
//! permission is a `match` with no catch-all arm, so adding a role or a standing forces
//! each permission to be decided again.
//!
//! Acting on someone (mute, kick, ban) also needs *more authority* than the target.
//! Authority within a room ranks: member < room moderator < room owner < global
//! moderator < organiser < admin. An actor must strictly outrank the target, and only an
//! admin may act on the room's owner. This reads PROTOCOL.md's "nobody may act on an
//! equal or higher global role, nor on the owner (except an admin)" so that a room's own
//! moderators can still act on plain members, whose global role equals theirs.

use crate::protocol::{MyRole, Role, RoomKind, RoomRole};

/// How a user relates to one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStanding {
    /// Not a member.
    Outsider,
    /// An ordinary member.
    Member,
    /// Given the moderator role in this room.
    Moderator,
    /// The room's creator.
    Owner,
}

impl RoomStanding {
    /// The standing of a member with `role`, or of a non-member with `None`.
    pub fn from_membership(role: Option<RoomRole>, is_owner: bool) -> RoomStanding {
        if is_owner {
            return RoomStanding::Owner;
        }
        match role {
            None => RoomStanding::Outsider,
            // A speaker is a member who may also send during a summit's stage and Q&A
            // (`Standing::may_send_in`); no other permission changes.
            // A viewer is a member who may never send (`send` refuses them).
            Some(RoomRole::Member | RoomRole::Speaker | RoomRole::Viewer) => RoomStanding::Member,
            Some(RoomRole::Moderator) => RoomStanding::Moderator,
        }
    }
}

impl Role {
    /// May this role open a topic room? `members_may` is the server option that lets
    /// plain members do it too.
    pub fn can_create_topic_room(self, members_may: bool) -> bool {
        match self {
            Role::Member => members_may,
            Role::Moderator | Role::Organiser | Role::Admin => true,
        }
    }

    /// May this role open a summit room (a scheduled, capacity-limited event)?
    pub fn can_create_summit_room(self) -> bool {
        match self {
            Role::Member | Role::Moderator => false,
            Role::Organiser | Role::Admin => true,
        }
    }

    /// The kinds of room this role may create, given the server option.
    pub fn may_create(self, members_may: bool) -> Vec<RoomKind> {
        let mut kinds = Vec::new();
        if self.can_create_topic_room(members_may) {
            kinds.push(RoomKind::Topic);
        }
        if self.can_create_summit_room() {
            kinds.push(RoomKind::Summit);
        }
        kinds
    }

    /// Global moderators, organisers and admins moderate every room.
    pub fn moderates_every_room(self) -> bool {
        match self {
            Role::Member => false,
            Role::Moderator | Role::Organiser | Role::Admin => true,
        }
    }

    /// May ban from, and unban from, the whole server.
    pub fn can_ban_from_server(self) -> bool {
        match self {
            Role::Member => false,
            Role::Moderator | Role::Organiser | Role::Admin => true,
        }
    }

    /// May change anyone's global role.
    pub fn can_set_global_roles(self) -> bool {
        match self {
            Role::Member | Role::Moderator | Role::Organiser => false,
            Role::Admin => true,
        }
    }

    fn authority(self) -> u8 {
        match self {
            Role::Member => 0,
            Role::Moderator => 3,
            Role::Organiser => 4,
            Role::Admin => 5,
        }
    }
}

/// A user's standing in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The global role.
    pub global: Role,
    /// The relation to the room.
    pub room: RoomStanding,
}

impl Standing {
    /// Room moderators: the owner, the room's moderators, and global moderators and up.
    pub fn is_room_moderator(self) -> bool {
        match self.room {
            RoomStanding::Owner | RoomStanding::Moderator => true,
            RoomStanding::Member | RoomStanding::Outsider => self.global.moderates_every_room(),
        }
    }

    /// What the user is told of their place in the room.
    pub fn my_role(self) -> MyRole {
        match self.room {
            RoomStanding::Owner => MyRole::Owner,
            RoomStanding::Moderator => MyRole::Moderator,
            RoomStanding::Member | RoomStanding::Outsider if self.global.moderates_every_room() => MyRole::Moderator,
            RoomStanding::Member | RoomStanding::Outsider => MyRole::Member,
        }
    }

    /// May mute and unmute members.
    pub fn can_mute(self) -> bool {
        self.is_room_moderator()
    }

    /// May kick members.
    pub fn can_kick(self) -> bool {
        self.is_room_moderator()
    }

    /// May ban from, and unban from, the room.
    pub fn can_ban(self) -> bool {
        self.is_room_moderator()
    }

    /// May delete other people's messages.
    pub fn can_delete_any_message(self) -> bool {
        self.is_room_moderator()
    }

    /// May set slow mode and lock the room; is exempt from both.
    pub fn can_change_room_settings(self) -> bool {
        self.is_room_moderator()
    }

    /// May read and resolve reports, and read the moderation log.
    pub fn can_review(self) -> bool {
        self.is_room_moderator()
    }

    /// May give or take the room's moderator role: the owner and global moderators.
    pub fn can_set_room_role(self) -> bool {
        match self.room {
            RoomStanding::Owner => true,
            RoomStanding::Moderator | RoomStanding::Member | RoomStanding::Outsider => {
                self.global.moderates_every_room()
            }
        }
    }

    fn authority(self) -> u8 {
        let in_room = match self.room {
            RoomStanding::Outsider | RoomStanding::Member => 0,
            RoomStanding::Moderator => 1,
            RoomStanding::Owner => 2,
        };
        in_room.max(self.global.authority())
    }

    /// Whether this actor may lift a sanction that `imposer` imposed: it takes at least
    /// the authority that imposed it (a room moderator cannot undo a global ban).
    pub fn may_lift(self, imposer: Standing) -> Result<(), &'static str> {
        if self.authority() < imposer.authority() {
            return Err("Only someone with at least the authority of the moderator who imposed it can lift it.");
        }
        Ok(())
    }

    /// Whether this actor may mute, kick or ban `target`; the refusal says why.
    pub fn may_act_on(self, target: Standing) -> Result<(), &'static str> {
        if target.room == RoomStanding::Owner && self.global != Role::Admin {
            return Err("Only an admin can do that to the room's owner.");
        }
        if self.authority() <= target.authority() {
            return Err("You cannot do that to someone with the same or more authority than you.");
        }
        Ok(())
    }
}

/// Whether `actor` may lift a server ban that someone of role `imposer` imposed.
pub fn may_lift_server_wide(actor: Role, imposer: Role) -> Result<(), &'static str> {
    if actor.authority() < imposer.authority() {
        return Err("Only someone with at least the role of whoever imposed it can lift it.");
    }
    Ok(())
}

/// Whether `actor` may ban `target` from the whole server (global roles only).
pub fn may_act_server_wide(actor: Role, target: Role) -> Result<(), &'static str> {
    if actor.authority() <= target.authority() {
        return Err("You cannot do that to someone with the same or a higher role than yours.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoomStanding::*;

    fn at(global: Role, room: RoomStanding) -> Standing {
        Standing { global, room }
    }

    #[test]
    fn room_moderators_are_owners_room_moderators_and_global_moderators_up() {
        let table = [
            (Role::Member, Outsider, false),
            (Role::Member, Member, false),
            (Role::Member, Moderator, true),
            (Role::Member, Owner, true),
            (Role::Moderator, Outsider, true),
            (Role::Organiser, Member, true),
            (Role::Admin, Outsider, true),
        ];
        for (global, room, expected) in table {
            let standing = at(global, room);
            for (name, allowed) in [
                ("mute", standing.can_mute()),
                ("kick", standing.can_kick()),
                ("ban", standing.can_ban()),
                ("delete", standing.can_delete_any_message()),
                ("settings", standing.can_change_room_settings()),
                ("review", standing.can_review()),
            ] {
                assert_eq!(allowed, expected, "{global:?} {room:?} {name}");
            }
        }
    }

    #[test]
    fn room_roles_are_given_by_the_owner_and_global_moderators_only() {
        assert!(at(Role::Member, Owner).can_set_room_role());
        assert!(!at(Role::Member, Moderator).can_set_room_role());
        assert!(!at(Role::Member, Member).can_set_room_role());
        assert!(at(Role::Moderator, Outsider).can_set_room_role());
    }

    #[test]
    fn global_permissions() {
        let table = [
            (Role::Member, false, false),
            (Role::Moderator, true, false),
            (Role::Organiser, true, false),
            (Role::Admin, true, true),
        ];
        for (role, ban_server, set_roles) in table {
            assert_eq!(role.can_ban_from_server(), ban_server, "{role:?}");
            assert_eq!(role.can_set_global_roles(), set_roles, "{role:?}");
        }
    }

    #[test]
    fn actors_must_outrank_their_target_and_only_admins_touch_owners() {
        let table = [
            // actor, target, allowed
            (at(Role::Member, Moderator), at(Role::Member, Member), true),
            (at(Role::Member, Moderator), at(Role::Member, Moderator), false),
            (at(Role::Member, Owner), at(Role::Member, Moderator), true),
            (at(Role::Member, Moderator), at(Role::Moderator, Member), false),
            (at(Role::Moderator, Outsider), at(Role::Member, Member), true),
            (at(Role::Moderator, Outsider), at(Role::Moderator, Member), false),
            (at(Role::Moderator, Outsider), at(Role::Admin, Member), false),
            (at(Role::Moderator, Outsider), at(Role::Member, Owner), false),
            (at(Role::Organiser, Outsider), at(Role::Member, Owner), false),
            (at(Role::Admin, Outsider), at(Role::Member, Owner), true),
            (at(Role::Admin, Outsider), at(Role::Admin, Member), false),
        ];
        for (actor, target, allowed) in table {
            assert_eq!(actor.may_act_on(target).is_ok(), allowed, "{actor:?} on {target:?}");
        }
        assert!(may_act_server_wide(Role::Moderator, Role::Member).is_ok());
        assert!(may_act_server_wide(Role::Moderator, Role::Moderator).is_err());
        assert!(may_act_server_wide(Role::Organiser, Role::Admin).is_err());
    }
}
