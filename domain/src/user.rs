//! Users and their role grants, event-sourced so that auditors can see who could do what, when.
//!
//! Passwords are not domain facts and never enter the event store (an event cannot be
//! erased, a credential must be replaceable): the `commands` crate keeps password hashes in a
//! separate credentials table. The events record only that a user exists and what roles they
//! were granted or lost, by whom; which organisation unit they belong to; when they were
//! deactivated (their sessions end, their history stays) and reactivated; and which categories
//! of mail they muted.

use crate::error::{clean_text, DomainError};
use crate::mail::MailCategory;
use crate::role::Role;
use crate::{Actor, Id};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Option<Id>,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub active: bool,
    /// Everyone who registered this user or granted them a role, sorted (the operator at the
    /// command line is nobody). Such a sponsor could have chosen the person or their access,
    /// so this user may not approve or pay what a sponsor requested or approved
    /// (`Requisition`'s segregation of duties). A revoked role does not remove its granter.
    #[serde(default)]
    pub sponsors: Vec<Id>,
    /// The categories of mail the user does not want, sorted; never one that cannot be muted.
    #[serde(default)]
    pub muted_mail: Vec<MailCategory>,
    /// The organisation unit they belong to (the most specific one; its path is the unit's,
    /// see `organisation::UnitPath`). `None`: unscoped.
    #[serde(default)]
    pub unit_id: Option<Id>,
}

/// The longest reason a deactivation may give.
pub const REASON_MAX: usize = 2_000;

/// A unit a user is being assigned to, as looked up by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedUnit {
    pub path: crate::organisation::UnitPath,
    pub closed: bool,
}

/// Who asked for a user change: an admin through the API, or the operator at the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Requester {
    Admin(Actor),
    /// `pettycash user add` / `pettycash demo`: someone with shell access to the server.
    Operator,
}

impl Requester {
    pub(crate) fn check_admin(&self) -> Result<(), DomainError> {
        match self {
            Requester::Operator => Ok(()),
            Requester::Admin(actor) if actor.has(Role::Admin) => Ok(()),
            Requester::Admin(_) => Err(DomainError::MissingRole { required: Role::Admin }),
        }
    }

    pub(crate) fn user_id(&self) -> Option<Id> {
        match self {
            Requester::Admin(a) => Some(a.user_id),
            Requester::Operator => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Register {
        user_id: Id,
        email: String,
        name: String,
        roles: Vec<Role>,
        by: Requester,
    },
    GrantRole {
        role: Role,
        by: Requester,
    },
    RevokeRole {
        role: Role,
        by: Requester,
    },
    /// The user's own choice (the command service runs it on the signed-in user's stream
    /// only): the categories they mute from now on, replacing the set before.
    MuteMail {
        categories: Vec<MailCategory>,
    },
    /// Put the user in `unit` (`None`: in no unit, unscoped).
    AssignUnit {
        unit: Option<AssignedUnit>,
        by: Requester,
    },
    /// Their sessions end (the caller revokes them in the same transaction); their history
    /// stays.
    Deactivate {
        reason: String,
        by: Requester,
    },
    /// `unit_closed`: whether the unit they still belong to was closed meanwhile (then they
    /// must be assigned an open one first).
    Reactivate {
        unit_closed: bool,
        by: Requester,
    },
    /// The invitee of `invitation` (as it stands once accepted by `user_id`) becomes a user:
    /// registered with the invited roles by the admin who invited them (their sponsor), and put
    /// in the invited unit (`unit`: that unit as looked up now). No admin acts here; the
    /// invitation is the admin's decision, checked when it was issued.
    AcceptInvitation {
        user_id: Id,
        invitation: Box<crate::invitation::Invitation>,
        unit: Option<AssignedUnit>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        user_id: Id,
        email: String,
        name: String,
        roles: Vec<Role>,
        registered_by: Option<Id>,
    },
    RoleGranted {
        role: Role,
        granted_by: Option<Id>,
    },
    RoleRevoked {
        role: Role,
        revoked_by: Option<Id>,
    },
    UnitAssigned {
        unit_id: Option<Id>,
        assigned_by: Option<Id>,
    },
    UserDeactivated {
        by: Option<Id>,
        reason: String,
    },
    UserReactivated {
        by: Option<Id>,
    },
    /// The categories of mail the user mutes from now on (sorted, none unmutable), replacing
    /// the set before; empty: every mail again. The user's own choice, so no `by`: the
    /// metadata's `actor_id` is the user.
    MailMuted {
        categories: Vec<MailCategory>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::RoleGranted { .. } => "RoleGranted",
            UserEvent::RoleRevoked { .. } => "RoleRevoked",
            UserEvent::MailMuted { .. } => "MailMuted",
            UserEvent::UnitAssigned { .. } => "UnitAssigned",
            UserEvent::UserDeactivated { .. } => "UserDeactivated",
            UserEvent::UserReactivated { .. } => "UserReactivated",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Lower-cases and checks an email address (a light check: one `@`, a dot in the domain).
pub fn normalise_email(email: &str) -> Result<String, DomainError> {
    let email = clean_text("email", email, 254, true)?.to_ascii_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.contains('@')
        }
        None => false,
    } && !email.contains(char::is_whitespace);
    if !valid {
        return Err(DomainError::invalid("email", "is not a valid email address"));
    }
    Ok(email)
}

/// Checks what registering a user (or inviting one) says: `by` is an admin (or the operator),
/// the email valid (lower-cased), the name not blank, at least one role (sorted, without
/// repeats). One rule for both ways in, so that an invitation can never grant what a
/// registration could not.
pub(crate) fn check_new_user(
    by: &Requester,
    email: &str,
    name: &str,
    mut roles: Vec<Role>,
) -> Result<(String, String, Vec<Role>), DomainError> {
    by.check_admin()?;
    let email = normalise_email(email)?;
    let name = clean_text("name", name, 200, true)?;
    if roles.is_empty() {
        return Err(DomainError::invalid("roles", "at least one role is required"));
    }
    roles.sort();
    roles.dedup();
    Ok((email, name, roles))
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            UserCommand::Register { user_id, email, name, roles, by } => {
                let (email, name, roles) = check_new_user(&by, &email, &name, roles)?;
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "user" });
                }
                let event =
                    UserEvent::UserRegistered { user_id, email, name, roles, registered_by: by.user_id() };
                sink.write(event, self).await;
            }
            UserCommand::AcceptInvitation { user_id, invitation, unit } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "user" });
                }
                // Only an invitation accepted by this very user registers them.
                if invitation.accepted_user != Some(user_id) {
                    return Err(DomainError::InvitationInvalid { reason: "not accepted by this user" });
                }
                if unit.as_ref().map(|u| u.path.unit_id) != invitation.unit_id {
                    return Err(DomainError::invalid("unit_id", "the unit is not the invitation's"));
                }
                if unit.as_ref().is_some_and(|u| u.closed) {
                    return Err(DomainError::UnitClosed);
                }
                let by = invitation.invited_by;
                let event = UserEvent::UserRegistered {
                    user_id,
                    email: invitation.email.clone(),
                    name: invitation.name.clone(),
                    roles: invitation.roles.clone(),
                    registered_by: by,
                };
                sink.write(event, self).await;
                if let Some(unit_id) = invitation.unit_id {
                    sink.write(UserEvent::UnitAssigned { unit_id: Some(unit_id), assigned_by: by }, self)
                        .await;
                }
            }
            UserCommand::GrantRole { role, by } => {
                by.check_admin()?;
                self.require_exists()?;
                if !self.roles.contains(&role) {
                    sink.write(UserEvent::RoleGranted { role, granted_by: by.user_id() }, self).await;
                }
            }
            UserCommand::RevokeRole { role, by } => {
                by.check_admin()?;
                self.require_exists()?;
                if self.roles.contains(&role) {
                    sink.write(UserEvent::RoleRevoked { role, revoked_by: by.user_id() }, self).await;
                }
            }
            UserCommand::MuteMail { mut categories } => {
                self.require_exists()?;
                if let Some(c) = categories.iter().find(|c| !c.is_mutable()) {
                    return Err(DomainError::invalid("muted", format!("`{c}` mail cannot be muted")));
                }
                categories.sort();
                categories.dedup();
                if categories != self.muted_mail {
                    sink.write(UserEvent::MailMuted { categories }, self).await;
                }
            }
            UserCommand::AssignUnit { unit, by } => {
                by.check_admin()?;
                self.require_exists()?;
                if let Some(unit) = &unit {
                    by.check_reaches(unit.path.company)?;
                    if unit.closed {
                        return Err(DomainError::UnitClosed);
                    }
                }
                let unit_id = unit.map(|u| u.path.unit_id);
                if unit_id != self.unit_id {
                    sink.write(UserEvent::UnitAssigned { unit_id, assigned_by: by.user_id() }, self).await;
                }
            }
            UserCommand::Deactivate { reason, by } => {
                by.check_admin()?;
                self.require_exists()?;
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                if self.active {
                    sink.write(UserEvent::UserDeactivated { by: by.user_id(), reason }, self).await;
                }
            }
            UserCommand::Reactivate { unit_closed, by } => {
                by.check_admin()?;
                self.require_exists()?;
                if !self.active {
                    if unit_closed && self.unit_id.is_some() {
                        return Err(DomainError::UnitClosed);
                    }
                    sink.write(UserEvent::UserReactivated { by: by.user_id() }, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserRegistered { user_id, email, name, roles, registered_by } => {
                self.id = Some(user_id);
                self.email = email;
                self.name = name;
                self.roles = roles;
                self.active = true;
                self.add_sponsor(registered_by);
            }
            UserEvent::RoleGranted { role, granted_by } => {
                self.roles.push(role);
                self.roles.sort();
                self.add_sponsor(granted_by);
            }
            UserEvent::RoleRevoked { role, .. } => self.roles.retain(|r| *r != role),
            UserEvent::MailMuted { categories } => self.muted_mail = categories,
            UserEvent::UnitAssigned { unit_id, .. } => self.unit_id = unit_id,
            UserEvent::UserDeactivated { .. } => self.active = false,
            UserEvent::UserReactivated { .. } => self.active = true,
        }
    }
}

impl User {
    fn require_exists(&self) -> Result<(), DomainError> {
        self.id.map(|_| ()).ok_or(DomainError::NotFound { what: "user" })
    }

    fn add_sponsor(&mut self, by: Option<Id>) {
        if let Some(by) = by {
            if let Err(at) = self.sponsors.binary_search(&by) {
                self.sponsors.insert(at, by);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user_id: Id::nil(),
            email: "a@example.com".into(),
            name: "A".into(),
            roles: vec![Role::Staff],
            registered_by: None,
        }
    }

    #[test]
    fn operator_registers_user_with_normalised_email_and_sorted_roles() {
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::Register {
                user_id: Id::nil(),
                email: " A@Example.com ".into(),
                name: "A".into(),
                roles: vec![Role::Staff, Role::Staff],
                by: Requester::Operator,
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn non_admin_cannot_register_or_grant() {
        let staff = Requester::Admin(Actor::new(Id::new_v4(), [Role::Staff]));
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::GrantRole { role: Role::Admin, by: staff })
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
    }

    #[test]
    fn invalid_email_is_refused() {
        for email in ["", "no-at-sign", "a@nodot", "a b@example.com"] {
            let result = TestFramework::<User>::with(())
                .given_no_previous_events()
                .when(UserCommand::Register {
                    user_id: Id::nil(),
                    email: email.into(),
                    name: "A".into(),
                    roles: vec![Role::Staff],
                    by: Requester::Operator,
                })
                .inspect_result();
            assert!(matches!(result, Err(DomainError::Invalid { field: "email", .. })), "{email}");
        }
    }

    #[test]
    fn granting_a_held_role_records_nothing() {
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::GrantRole { role: Role::Staff, by: Requester::Operator })
            .then_expect_events(vec![]);
    }

    #[test]
    fn whoever_registers_a_user_or_grants_them_a_role_becomes_their_sponsor_for_good() {
        let (a, b) = (Id::new_v4(), Id::new_v4());
        let mut user = User::default();
        user.apply(UserEvent::UserRegistered {
            user_id: Id::nil(),
            email: "a@example.com".into(),
            name: "A".into(),
            roles: vec![Role::Staff],
            registered_by: Some(a),
        });
        user.apply(UserEvent::RoleGranted { role: Role::Treasury, granted_by: Some(b) });
        user.apply(UserEvent::RoleRevoked { role: Role::Treasury, revoked_by: Some(a) });
        user.apply(UserEvent::RoleGranted { role: Role::Cfo, granted_by: None });
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(user.sponsors, expected);
    }

    #[test]
    fn a_user_mutes_mail_categories_replacing_the_set_before() {
        TestFramework::<User>::with(())
            .given(vec![registered(), UserEvent::MailMuted { categories: vec![MailCategory::Paid] }])
            .when(UserCommand::MuteMail {
                categories: vec![
                    MailCategory::Reminder,
                    MailCategory::ApprovalRequested,
                    MailCategory::Reminder,
                ],
            })
            .then_expect_events(vec![UserEvent::MailMuted {
                categories: vec![MailCategory::ApprovalRequested, MailCategory::Reminder],
            }]);
    }

    #[test]
    fn muting_the_set_already_muted_records_nothing() {
        TestFramework::<User>::with(())
            .given(vec![registered(), UserEvent::MailMuted { categories: vec![MailCategory::Paid] }])
            .when(UserCommand::MuteMail { categories: vec![MailCategory::Paid, MailCategory::Paid] })
            .then_expect_events(vec![]);
    }

    #[test]
    fn invitations_security_mail_and_payment_codes_cannot_be_muted() {
        for category in [MailCategory::Invitation, MailCategory::Security, MailCategory::PaymentCode] {
            let result = TestFramework::<User>::with(())
                .given(vec![registered()])
                .when(UserCommand::MuteMail { categories: vec![MailCategory::Paid, category] })
                .inspect_result();
            assert!(matches!(result, Err(DomainError::Invalid { field: "muted", .. })), "{category}");
        }
    }

    #[test]
    fn admin_grants_and_revokes_roles() {
        let admin = Actor::new(Id::new_v4(), [Role::Admin]);
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::RevokeRole { role: Role::Staff, by: Requester::Admin(admin.clone()) })
            .then_expect_events(vec![UserEvent::RoleRevoked {
                role: Role::Staff,
                revoked_by: Some(admin.user_id),
            }]);
    }
}
