//! Invitations (issue #13 [workflow]): how people join. An admin invites an email, with a
//! name, roles and a unit; the invitee gets a link carrying a secret token, valid once and
//! until it expires (`invitation_expiry_days`, default 7); following it they choose a
//! password and become a user. Invitations can be revoked and resent (a new token: the old
//! link stops working).
//!
//! The token itself never reaches this crate nor the event store: events record its keyed hash
//! (`token_hash`, hex of an HMAC under the service's secret), so that the aggregate can tell the
//! current link from an older one and the `invitations` table can be rebuilt from the events.
//!
//! **Expiry is not an event.** Nobody decides anything when an invitation expires: it is
//! pending until `expires_at` and expired after, as seen at a given time
//! ([`Invitation::status_at`]). Recording it would need a timer writing events, and the history
//! would then depend on when that timer ran. Acceptance is decided with the time put into the
//! command (the aggregate reads no clock).
//!
//! Who may invite: admins (and the operator), into a unit they reach, with any role a
//! registration could give ([`crate::user`]'s rule, the same function). Whether the email
//! already belongs to a user or to an open invitation is looked up by the caller and put into
//! the command; the `invitations` and `users` tables' unique keys hold it under concurrency.

use crate::error::{clean_optional, DomainError};
use crate::role::Role;
use crate::user::{check_new_user, AssignedUnit, Requester, REASON_MAX};
use crate::Id;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an invitation stands. One text form ([`InvitationStatus::as_str`]). `pending`,
/// `accepted` and `revoked` are recorded by events; `expired` is a pending invitation past its
/// `expires_at`, derived from the time it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    #[default]
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub const ALL: [InvitationStatus; 4] = [
        InvitationStatus::Pending,
        InvitationStatus::Accepted,
        InvitationStatus::Revoked,
        InvitationStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for InvitationStatus {
    type Err = crate::fund::UnknownWord;
    /// Exactly [`InvitationStatus::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "invitation status", text: s.to_string() })
    }
}

/// An invitation as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: Option<Id>,
    /// Lower-cased.
    pub email: String,
    pub name: String,
    /// Sorted, without repeats.
    pub roles: Vec<Role>,
    /// The unit the invitee will belong to (`None`: none, unscoped).
    pub unit_id: Option<Id>,
    /// The admin who invited (`None`: the operator): the new user's sponsor.
    pub invited_by: Option<Id>,
    /// Hex of the keyed hash of the current link's token.
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// As recorded: `pending`, `accepted` or `revoked` (never `expired`: see
    /// [`Invitation::status_at`]).
    pub status: InvitationStatus,
    /// The user the invitation became.
    pub accepted_user: Option<Id>,
}

/// A new link for an invitation: the keyed hash of its token (the caller keeps the token), the
/// time it is issued and how many days it is valid (`invitation_expiry_days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub token_hash: String,
    pub now: DateTime<Utc>,
    pub valid_days: u32,
}

impl NewLink {
    /// When the link expires: `valid_days` after `now`, to the second.
    pub fn expires_at(&self) -> DateTime<Utc> {
        (self.now + Duration::days(i64::from(self.valid_days))).trunc_subsecs(0)
    }
}

/// What `already_exists` names when an email has an open invitation.
pub const OPEN_INVITATION: &str = "an open invitation to this email (resend or revoke it)";

/// What the caller found holding the email already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTaken {
    /// A user has it.
    User,
    /// A pending (or expired, not yet revoked) invitation has it: resend or revoke that one.
    OpenInvitation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InvitationCommand {
    Issue {
        invitation_id: Id,
        email: String,
        name: String,
        roles: Vec<Role>,
        /// The unit, as looked up (a unit the admin sees); `None`: no unit.
        unit: Option<AssignedUnit>,
        /// Whether a user or an open invitation has the email already (looked up).
        email_taken: Option<EmailTaken>,
        link: NewLink,
        by: Requester,
    },
    /// A new link (the old one stops working), valid from now.
    Resend {
        link: NewLink,
        by: Requester,
    },
    Revoke {
        reason: Option<String>,
        by: Requester,
    },
    /// The invitee presents the link whose token hashes to `token_hash`, at `now`.
    Accept {
        user_id: Id,
        token_hash: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InvitationEvent {
    InvitationIssued {
        invitation_id: Id,
        email: String,
        name: String,
        roles: Vec<Role>,
        unit_id: Option<Id>,
        token_hash: String,
        expires_at: DateTime<Utc>,
        invited_by: Option<Id>,
    },
    /// A new link replaces the old one.
    InvitationResent {
        token_hash: String,
        expires_at: DateTime<Utc>,
        by: Option<Id>,
    },
    InvitationRevoked {
        by: Option<Id>,
        reason: Option<String>,
    },
    /// The invitee chose a password and became user `user_id` (their `UserRegistered` is in
    /// the same transaction).
    InvitationAccepted {
        user_id: Id,
    },
}

impl DomainEvent for InvitationEvent {
    fn event_type(&self) -> String {
        match self {
            InvitationEvent::InvitationIssued { .. } => "InvitationIssued",
            InvitationEvent::InvitationResent { .. } => "InvitationResent",
            InvitationEvent::InvitationRevoked { .. } => "InvitationRevoked",
            InvitationEvent::InvitationAccepted { .. } => "InvitationAccepted",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl Invitation {
    /// Its status as seen at `now`: `expired` once a pending invitation's link is past its
    /// expiry.
    pub fn status_at(&self, now: DateTime<Utc>) -> InvitationStatus {
        match (self.status, self.expires_at) {
            (InvitationStatus::Pending, Some(at)) if now >= at => InvitationStatus::Expired,
            (status, _) => status,
        }
    }

    fn require_exists(&self) -> Result<(), DomainError> {
        self.id.map(|_| ()).ok_or(DomainError::NotFound { what: "invitation" })
    }

    /// Refuses resending or revoking an invitation that was accepted or revoked.
    fn require_open(&self) -> Result<(), DomainError> {
        match self.status {
            InvitationStatus::Pending | InvitationStatus::Expired => Ok(()),
            status => Err(DomainError::InvitationNotPending { status }),
        }
    }
}

impl Aggregate for Invitation {
    const TYPE: &'static str = "invitation";
    type Command = InvitationCommand;
    type Event = InvitationEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InvitationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            InvitationCommand::Issue { invitation_id, email, name, roles, unit, email_taken, link, by } => {
                let (email, name, roles) = check_new_user(&by, &email, &name, roles)?;
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "invitation" });
                }
                if let Some(unit) = &unit {
                    by.check_reaches(unit.path.company)?;
                    if unit.closed {
                        return Err(DomainError::UnitClosed);
                    }
                }
                match email_taken {
                    Some(EmailTaken::User) => {
                        return Err(DomainError::AlreadyExists { what: "a user with this email" })
                    }
                    Some(EmailTaken::OpenInvitation) => {
                        return Err(DomainError::AlreadyExists { what: OPEN_INVITATION })
                    }
                    None => {}
                }
                let event = InvitationEvent::InvitationIssued {
                    invitation_id,
                    email,
                    name,
                    roles,
                    unit_id: unit.map(|u| u.path.unit_id),
                    expires_at: link.expires_at(),
                    token_hash: link.token_hash,
                    invited_by: by.user_id(),
                };
                sink.write(event, self).await;
            }
            InvitationCommand::Resend { link, by } => {
                by.check_admin()?;
                self.require_exists()?;
                self.require_open()?;
                let event = InvitationEvent::InvitationResent {
                    expires_at: link.expires_at(),
                    token_hash: link.token_hash,
                    by: by.user_id(),
                };
                sink.write(event, self).await;
            }
            InvitationCommand::Revoke { reason, by } => {
                by.check_admin()?;
                self.require_exists()?;
                let reason = clean_optional("reason", reason.as_deref(), REASON_MAX)?;
                if self.status == InvitationStatus::Revoked {
                    return Ok(());
                }
                self.require_open()?;
                sink.write(InvitationEvent::InvitationRevoked { by: by.user_id(), reason }, self).await;
            }
            InvitationCommand::Accept { user_id, token_hash, now } => {
                // One answer whatever is wrong (the caller logs the reason): a link is either
                // good or not, and the answer tells nothing more about it.
                let reason = match self.status_at(now) {
                    _ if self.id.is_none() => Some("unknown"),
                    InvitationStatus::Accepted => Some("already used"),
                    InvitationStatus::Revoked => Some("revoked"),
                    _ if token_hash != self.token_hash => Some("replaced by a newer link"),
                    InvitationStatus::Expired => Some("expired"),
                    InvitationStatus::Pending => None,
                };
                if let Some(reason) = reason {
                    return Err(DomainError::InvitationInvalid { reason });
                }
                sink.write(InvitationEvent::InvitationAccepted { user_id }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: InvitationEvent) {
        match event {
            InvitationEvent::InvitationIssued {
                invitation_id,
                email,
                name,
                roles,
                unit_id,
                token_hash,
                expires_at,
                invited_by,
            } => {
                self.id = Some(invitation_id);
                self.email = email;
                self.name = name;
                self.roles = roles;
                self.unit_id = unit_id;
                self.token_hash = token_hash;
                self.expires_at = Some(expires_at);
                self.invited_by = invited_by;
                self.status = InvitationStatus::Pending;
            }
            InvitationEvent::InvitationResent { token_hash, expires_at, .. } => {
                self.token_hash = token_hash;
                self.expires_at = Some(expires_at);
            }
            InvitationEvent::InvitationRevoked { .. } => self.status = InvitationStatus::Revoked,
            InvitationEvent::InvitationAccepted { user_id } => {
                self.status = InvitationStatus::Accepted;
                self.accepted_user = Some(user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_in_text_and_json() {
        for s in InvitationStatus::ALL {
            assert_eq!(s.as_str().parse::<InvitationStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("Pending".parse::<InvitationStatus>().is_err());
    }

    #[test]
    fn a_link_expires_whole_days_later_to_the_second() {
        let now: DateTime<Utc> = "2026-03-01T10:20:30.456789Z".parse().unwrap();
        let link = NewLink { token_hash: "ab".into(), now, valid_days: 7 };
        assert_eq!(link.expires_at(), "2026-03-08T10:20:30Z".parse::<DateTime<Utc>>().unwrap());
    }
}
