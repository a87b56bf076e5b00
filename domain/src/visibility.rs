//! Who may see what: the one rule every read path asks — a requisition's detail and history,
//! the lists and the approvals inbox, payments, funds and the cash book, the dashboard, and
//! (later) reports and pages. Lists do not re-implement it: [`RequisitionScope`] is the rule
//! as data, which the read models' queries translate into a filter, and
//! [`RequisitionScope::admits`] is the same rule on one requisition; a test checks that the
//! two agree for every role and every state (`tests/tests/api/visibility.rs`).
//!
//! Requisitions:
//! - its requester always sees it;
//! - auditors and admins see every requisition;
//! - the company-wide finance roles (treasury, fpa, group finance manager, cfo, ceo) see every
//!   requisition that was ever submitted (a draft is its requester's business until it is
//!   submitted);
//! - the other approvers (department heads, branch and regional managers) see a submitted
//!   requisition whose chain (the latest submission's) has one of their roles, and one whose
//!   current round they approved. [workflow] narrows them, and the company-wide roles, to
//!   their organisation unit and company here.
//!
//! Payments (treasury's list): treasury, auditors, admins, and the finance leads (cfo, fpa,
//! group finance manager). Funds and their cash books: every signed-in user (custodians and
//! requesters need to know what is in the box). Dashboard numbers (totals, not items):
//! everyone's for the roles that see requisitions beyond their own, their own for the rest.

use crate::requisition::Requisition;
use crate::role::Role;
use crate::{Actor, Id};

/// What the rule needs to know of a requisition.
#[derive(Debug, Clone, Copy)]
pub struct RequisitionFacts<'a> {
    pub requester_id: Option<Id>,
    /// Submitted at least once.
    pub submitted: bool,
    /// The latest submission's chain.
    pub chain: &'a [Role],
    /// Who approved in the current round.
    pub approvers: &'a [Id],
}

impl<'a> From<&'a Requisition> for RequisitionFacts<'a> {
    fn from(r: &'a Requisition) -> Self {
        Self { requester_id: r.requester_id, submitted: r.submissions > 0, chain: &r.chain, approvers: &[] }
    }
}

/// Which requisitions an actor may see, as data: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequisitionScope {
    /// The actor: their own requisitions, and those they approved.
    pub user_id: Id,
    /// Every requisition, drafts included.
    pub everything: bool,
    /// Every submitted requisition.
    pub all_submitted: bool,
    /// Submitted requisitions whose chain has one of these roles (the actor's approver
    /// roles: also what their approvals inbox waits on).
    pub chain_roles: Vec<Role>,
}

impl RequisitionScope {
    pub fn of(actor: &Actor) -> Self {
        Self {
            user_id: actor.user_id,
            everything: actor.has(Role::Auditor) || actor.has(Role::Admin),
            all_submitted: COMPANY_WIDE.iter().any(|r| actor.has(*r)),
            chain_roles: actor.roles.iter().copied().filter(|r| crate::routing::may_be_a_step(*r)).collect(),
        }
    }

    /// True when the actor may see this requisition.
    pub fn admits(&self, r: &RequisitionFacts<'_>) -> bool {
        self.everything
            || r.requester_id == Some(self.user_id)
            || (r.submitted
                && (self.all_submitted
                    || r.chain.iter().any(|role| self.chain_roles.contains(role))
                    || r.approvers.contains(&self.user_id)))
    }

    /// True when the actor sees only their own requisitions (and those they approved).
    pub fn own_only(&self) -> bool {
        !self.everything && !self.all_submitted && self.chain_roles.is_empty()
    }
}

/// Roles that see every submitted requisition (of their company, once there are companies).
pub const COMPANY_WIDE: [Role; 5] =
    [Role::Treasury, Role::Fpa, Role::GroupFinanceManager, Role::Cfo, Role::Ceo];

/// True when the actor may read treasury's list of payments.
pub fn may_read_payments(actor: &Actor) -> bool {
    PAYMENT_READERS.iter().any(|r| actor.has(*r))
}

/// Who may read treasury's list of payments.
pub const PAYMENT_READERS: [Role; 6] =
    [Role::Treasury, Role::Auditor, Role::Admin, Role::Cfo, Role::Fpa, Role::GroupFinanceManager];

/// True when the actor may read funds, their balances and cash books: any signed-in user.
pub fn may_read_funds(_actor: &Actor) -> bool {
    true
}

/// Whose numbers the dashboard sums for an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardScope {
    /// Every requisition's.
    Everyone,
    /// The actor's own requisitions'.
    Own,
}

impl DashboardScope {
    /// Everyone's for those who see requisitions beyond their own, their own otherwise.
    pub fn of(actor: &Actor) -> Self {
        if RequisitionScope::of(actor).own_only() {
            DashboardScope::Own
        } else {
            DashboardScope::Everyone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        requester: Id,
        submitted: bool,
        chain: &'a [Role],
        approvers: &'a [Id],
    ) -> RequisitionFacts<'a> {
        RequisitionFacts { requester_id: Some(requester), submitted, chain, approvers }
    }

    #[test]
    fn drafts_are_their_requesters_auditors_and_admins_only() {
        let (me, other) = (Id::new_v4(), Id::new_v4());
        let draft = facts(other, false, &[], &[]);
        for (roles, sees) in [
            (vec![Role::Staff], false),
            (vec![Role::DepartmentHead], false),
            (vec![Role::Treasury], false),
            (vec![Role::Cfo], false),
            (vec![Role::Auditor], true),
            (vec![Role::Admin], true),
        ] {
            let scope = RequisitionScope::of(&Actor::new(me, roles.clone()));
            assert_eq!(scope.admits(&draft), sees, "{roles:?}");
        }
        assert!(RequisitionScope::of(&Actor::new(other, [Role::Staff])).admits(&draft), "its requester");
    }

    #[test]
    fn approvers_see_what_their_roles_are_asked_for_or_they_approved() {
        let (me, other) = (Id::new_v4(), Id::new_v4());
        let head = RequisitionScope::of(&Actor::new(me, [Role::DepartmentHead]));
        assert!(head.admits(&facts(other, true, &[Role::DepartmentHead, Role::Cfo], &[])));
        assert!(!head.admits(&facts(other, true, &[Role::Cfo], &[])));
        assert!(head.admits(&facts(other, true, &[Role::Cfo], &[me])), "approved it");
        let treasury = RequisitionScope::of(&Actor::new(me, [Role::Treasury]));
        assert!(treasury.admits(&facts(other, true, &[Role::Cfo], &[])));
        let cfo = RequisitionScope::of(&Actor::new(me, [Role::Cfo]));
        assert!(cfo.admits(&facts(other, true, &[Role::DepartmentHead], &[])), "company-wide");
        assert!(!cfo.admits(&facts(other, false, &[], &[])), "not a draft");
        assert!(RequisitionScope::of(&Actor::new(me, [Role::Staff])).own_only());
        assert_eq!(DashboardScope::of(&Actor::new(me, [Role::Staff])), DashboardScope::Own);
        assert_eq!(DashboardScope::of(&Actor::new(me, [Role::Cfo])), DashboardScope::Everyone);
    }
}
