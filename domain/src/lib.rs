//! Petty Cash domain model: the aggregates (user, invitation, fund, requisition, approval
//! policy, organisation unit, settings), their commands and events, money and currencies,
//! roles, and the business rules as typed errors.
//!
//! This crate is pure: no I/O, no clock (times such as "now" come in the command), no
//! database. Everything a decision needs (the actor
//! and their roles, the approval chain in force, the fund's currency) is looked up by the
//! `commands` crate and put into the command, so that replaying events never depends on
//! today's configuration and every rule can be tested with given/when/then.

pub mod advance;
pub mod alert;
pub mod budget;
pub mod category;
pub mod delegation;
pub mod denomination;
pub mod error;
pub mod fund;
pub mod integrity;
pub mod invitation;
pub mod mail;
pub mod money;
pub mod organisation;
pub mod payment;
pub mod policy;
pub mod report;
pub mod requisition;
pub mod role;
pub mod routing;
pub mod settings;
#[cfg(feature = "sqlx")]
mod sql;
pub mod upcast;
pub mod user;
pub mod visibility;

pub use error::DomainError;
pub use mail::MailCategory;
pub use money::{Currency, MoneyError};
pub use role::Role;

/// Identifier of a user, fund, requisition or payment. UUIDs everywhere.
pub type Id = uuid::Uuid;

/// Who is issuing a command, with the roles they hold right now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub user_id: Id,
    pub roles: Vec<Role>,
    /// The users who registered this one or granted them a role (`User::sponsors`): this actor
    /// may not approve or pay what any of them requested or approved.
    #[serde(default)]
    pub sponsors: Vec<Id>,
    /// The organisation unit the actor belongs to, with its path (`None`: unscoped, as in an
    /// organisation that models no units). What they see follows from it
    /// (`visibility`).
    #[serde(default)]
    pub unit: Option<organisation::UnitPath>,
}

impl Actor {
    pub fn new(user_id: Id, roles: impl IntoIterator<Item = Role>) -> Self {
        Self { user_id, roles: roles.into_iter().collect(), sponsors: Vec::new(), unit: None }
    }

    /// The actor in the unit with path `unit` (`None`: in none).
    pub fn in_unit(mut self, unit: Option<organisation::UnitPath>) -> Self {
        self.unit = unit;
        self
    }

    /// The company the actor belongs to; `None` for an unscoped actor.
    pub fn company(&self) -> Option<Id> {
        self.unit.map(|u| u.company)
    }

    pub fn with_sponsors(mut self, sponsors: impl IntoIterator<Item = Id>) -> Self {
        self.sponsors = sponsors.into_iter().collect();
        self
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
