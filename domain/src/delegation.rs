//! Delegation while away (issue #13 [workflow]): an approver hands their approvals in one role
//! to another active holder of that role in the same scope, for a period. The delegate then
//! decides steps routed to the delegator, on their behalf (the requisition's event records
//! `on_behalf_of` and the delegation), never on a requisition they requested or approved
//! before.
//!
//! **Ending is not an event.** A delegation is active from `starts_at` until `ends_at`, as seen
//! at a given time ([`Delegation::status_at`]), like an invitation's expiry: nobody decides
//! anything when it ends. Revoking one early is an event (`DelegationRevoked`).
//!
//! **Who may be a delegate** is judged at grant with the people as the caller found them in
//! `users` ([`Party`]): the delegator holds the role and is active; the delegate is someone
//! else, active, holding the same role in the same scope — the same branch, department or
//! region for the roles that reach one (`organisation::reach_level`, as routing's
//! `Directory::holders`), the same company for company-wide roles, both of no company when
//! unscoped. The delegator grants and revokes, or an admin of their company does.
//!
//! **Acting** is judged by the requisition (`Requisition::handle`, approve, reject, request
//! changes): the caller puts the delegations the actor received from the step's people into
//! the command ([`Received`]), with the time now.

use crate::error::{clean_optional, DomainError};
use crate::organisation::{reach_level, UnitPath};
use crate::role::Role;
use crate::{Actor, Id};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest a delegation may run, from the time it is granted.
pub const MAX_DELEGATION_DAYS: i64 = 90;
/// How far in the past `starts_at` may be (clocks differ a little between client and server).
pub const START_TOLERANCE_MINUTES: i64 = 5;
pub const REASON_MAX: usize = 2_000;

/// Where a delegation stands at a given time. One text form ([`DelegationStatus::as_str`]).
/// Only `revoked` is recorded by an event; the others follow from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegationStatus {
    /// Granted, not started yet.
    Scheduled,
    Active,
    /// Past its `ends_at`.
    Ended,
    Revoked,
}

impl DelegationStatus {
    pub const ALL: [DelegationStatus; 4] = [
        DelegationStatus::Scheduled,
        DelegationStatus::Active,
        DelegationStatus::Ended,
        DelegationStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DelegationStatus::Scheduled => "scheduled",
            DelegationStatus::Active => "active",
            DelegationStatus::Ended => "ended",
            DelegationStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for DelegationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DelegationStatus {
    type Err = crate::fund::UnknownWord;
    /// Exactly [`DelegationStatus::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "delegation status", text: s.to_string() })
    }
}

/// What a grant recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub delegation_id: Id,
    pub delegator_id: Id,
    pub delegate_id: Id,
    pub role: Role,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The delegator's company (`None`: unscoped): whose admins manage it.
    pub company_id: Option<Id>,
    pub granted_by: Id,
}

impl Grant {
    /// True when `at` is within the delegation's period (`starts_at` included, `ends_at` not).
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// A delegation as its events leave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    pub grant: Option<Grant>,
    /// Revoked, by whom.
    pub revoked_by: Option<Id>,
}

impl Delegation {
    /// Its status as seen at `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> DelegationStatus {
        match &self.grant {
            _ if self.revoked_by.is_some() => DelegationStatus::Revoked,
            Some(g) if now < g.starts_at => DelegationStatus::Scheduled,
            Some(g) if now < g.ends_at => DelegationStatus::Active,
            _ => DelegationStatus::Ended,
        }
    }

    fn require_grant(&self) -> Result<&Grant, DomainError> {
        self.grant.as_ref().ok_or(DomainError::NotFound { what: "delegation" })
    }
}

/// Someone as the caller found them in `users`: what a grant is judged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub user_id: Id,
    pub active: bool,
    pub roles: Vec<Role>,
    /// Their unit's path; `None`: unscoped.
    pub unit: Option<UnitPath>,
}

/// True when `a` and `b` are in the same scope for `role`: the same unit at the level the role
/// reaches (branch, department, region), the same company for company-wide roles, or both of
/// no company.
pub fn same_scope(role: Role, a: Option<&UnitPath>, b: Option<&UnitPath>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match reach_level(role) {
            None => a.company == b.company,
            Some(level) => a.at(level).is_some() && a.at(level) == b.at(level),
        },
        _ => false,
    }
}

/// Whether `by` may grant or revoke a delegation of `delegator` (of `company`): the delegator
/// themselves, or an admin of their company.
fn check_manages(
    by: &Actor,
    delegator: Id,
    company: Option<Id>,
    action: &'static str,
) -> Result<(), DomainError> {
    if by.user_id == delegator || (by.has(Role::Admin) && by.company() == company) {
        Ok(())
    } else {
        Err(DomainError::DelegationNotYours { action })
    }
}

/// A command lives for one decision: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DelegationCommand {
    /// Delegate `delegator`'s approvals in `role` to `delegate` from `starts_at` until
    /// `ends_at`, granted at `now` by `by`.
    Grant {
        delegation_id: Id,
        delegator: Party,
        delegate: Party,
        role: Role,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
        by: Actor,
    },
    /// Ends it now (a revoked delegation stays revoked: revoking again records nothing).
    Revoke { reason: Option<String>, by: Actor },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DelegationEvent {
    DelegationGranted {
        delegation_id: Id,
        delegator_id: Id,
        delegate_id: Id,
        role: Role,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        company_id: Option<Id>,
        granted_by: Id,
    },
    DelegationRevoked {
        revoked_by: Id,
        reason: Option<String>,
    },
}

impl DomainEvent for DelegationEvent {
    fn event_type(&self) -> String {
        match self {
            DelegationEvent::DelegationGranted { .. } => "DelegationGranted",
            DelegationEvent::DelegationRevoked { .. } => "DelegationRevoked",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl Aggregate for Delegation {
    const TYPE: &'static str = "delegation";
    type Command = DelegationCommand;
    type Event = DelegationEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DelegationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            DelegationCommand::Grant {
                delegation_id,
                delegator,
                delegate,
                role,
                starts_at,
                ends_at,
                now,
                by,
            } => {
                if self.grant.is_some() {
                    return Err(DomainError::AlreadyExists { what: "delegation" });
                }
                let company = delegator.unit.map(|u| u.company);
                check_manages(&by, delegator.user_id, company, "grant")?;
                if !crate::routing::may_be_a_step(role) {
                    return Err(DomainError::invalid(
                        "role",
                        format!("`{role}` is no step of an approval chain: only approver roles and treasury are delegated"),
                    ));
                }
                if !delegator.active || !delegator.roles.contains(&role) {
                    return Err(DomainError::invalid(
                        "role",
                        format!("the delegator does not hold `{role}`"),
                    ));
                }
                let refuse = |reason: &'static str| Err(DomainError::DelegateNotEligible { role, reason });
                if delegate.user_id == delegator.user_id {
                    return refuse("no one delegates to themselves");
                }
                if !delegate.active {
                    return refuse("the delegate is not an active user");
                }
                if !delegate.roles.contains(&role) {
                    return refuse("the delegate does not hold the role");
                }
                if !same_scope(role, delegator.unit.as_ref(), delegate.unit.as_ref()) {
                    return refuse("the delegate is in another part of the organisation");
                }
                if starts_at < now - Duration::minutes(START_TOLERANCE_MINUTES) {
                    return Err(DomainError::invalid("starts_at", "must not be in the past"));
                }
                if ends_at <= starts_at {
                    return Err(DomainError::invalid("ends_at", "must be after starts_at"));
                }
                if ends_at > now + Duration::days(MAX_DELEGATION_DAYS) {
                    return Err(DomainError::invalid(
                        "ends_at",
                        format!("must be within {MAX_DELEGATION_DAYS} days from now"),
                    ));
                }
                let event = DelegationEvent::DelegationGranted {
                    delegation_id,
                    delegator_id: delegator.user_id,
                    delegate_id: delegate.user_id,
                    role,
                    starts_at,
                    ends_at,
                    company_id: company,
                    granted_by: by.user_id,
                };
                sink.write(event, self).await;
            }
            DelegationCommand::Revoke { reason, by } => {
                let grant = self.require_grant()?;
                check_manages(&by, grant.delegator_id, grant.company_id, "revoke")?;
                let reason = clean_optional("reason", reason.as_deref(), REASON_MAX)?;
                if self.revoked_by.is_some() {
                    return Ok(());
                }
                sink.write(DelegationEvent::DelegationRevoked { revoked_by: by.user_id, reason }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: DelegationEvent) {
        match event {
            DelegationEvent::DelegationGranted {
                delegation_id,
                delegator_id,
                delegate_id,
                role,
                starts_at,
                ends_at,
                company_id,
                granted_by,
            } => {
                self.grant = Some(Grant {
                    delegation_id,
                    delegator_id,
                    delegate_id,
                    role,
                    starts_at,
                    ends_at,
                    company_id,
                    granted_by,
                })
            }
            DelegationEvent::DelegationRevoked { revoked_by, .. } => self.revoked_by = Some(revoked_by),
        }
    }
}

/// The delegations an actor received from the people a requisition's current step was routed
/// to, as the caller found them (whatever their status), and the time now: what deciding on
/// someone's behalf is judged with (`Requisition`'s approve, reject and request changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Received {
    pub now: DateTime<Utc>,
    pub delegations: Vec<Delegation>,
}

impl Received {
    /// None received (the actor decides in their own name only).
    pub fn none(now: DateTime<Utc>) -> Self {
        Self { now, delegations: Vec::new() }
    }
}

/// Someone deciding on another's behalf: whose, and by which delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnBehalf {
    pub delegator_id: Id,
    pub delegation_id: Id,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_in_text_and_json() {
        for s in DelegationStatus::ALL {
            assert_eq!(s.as_str().parse::<DelegationStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("Active".parse::<DelegationStatus>().is_err());
    }
}
