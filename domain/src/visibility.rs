//! Who may see what: the one rule every read path asks — a requisition's detail and history,
//! the lists and the approvals inbox, payments, funds and the cash book, the dashboard, users
//! and organisation units, and (later) reports and pages. Lists do not re-implement it:
//! [`RequisitionScope`] is the rule as data, which the read models' queries translate into a
//! filter, and [`RequisitionScope::admits`] is the same rule on one requisition; tests check
//! that the two agree for every role and every state, without units and with two companies
//! (`tests/tests/api/visibility.rs`).
//!
//! **Companies first.** Every requisition, fund (with its cash book and payments) and user
//! belongs to a company, or to none ("unscoped": created by someone who belongs to no
//! organisation unit, or before units existed). An actor sees only what belongs to their own
//! company; an actor who belongs to no unit sees only what belongs to no company. So an
//! organisation that models no units works exactly as before (everything and everyone is
//! unscoped), and nobody — no admin, no auditor — sees another company's data. The one
//! exception is their own: a requester always sees their own requisitions.
//!
//! Requisitions, within the company:
//! - its requester always sees it;
//! - auditors and admins see every requisition;
//! - the company-wide finance roles (treasury, fpa, group finance manager, cfo, ceo) see every
//!   requisition that was ever submitted (a draft is its requester's business until it is
//!   submitted);
//! - the other approvers see a submitted requisition whose chain (the latest submission's) has
//!   one of their roles *in their part of the organisation*: a branch manager their branch's,
//!   a department head their department's, a regional manager their region's
//!   ([`crate::organisation::reach_level`]); and one whose current round they approved. An
//!   approver of no unit reaches every unscoped requisition (as before units); one whose unit
//!   is above the level of their role (a branch manager assigned to a region) reaches none by
//!   that role.
//!
//! Payments (treasury's list): treasury, auditors, admins, and the finance leads (cfo, fpa,
//! group finance manager), of their company. Funds and their cash books: every signed-in user
//! of the fund's company (custodians and requesters need to know what is in the box).
//! Dashboard numbers (totals, not items): their company's for the roles that see requisitions
//! beyond their own, their own for the rest. Users: admins and auditors list their company's.
//! Organisation units: everyone sees their company's; an admin of no unit sees every unit (they
//! open companies and give each its first members).

use crate::organisation::{reach_level, UnitKind, UnitPath};
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
    /// The unit it was created in, with its path; `None`: unscoped.
    pub unit: Option<UnitPath>,
}

impl<'a> From<&'a Requisition> for RequisitionFacts<'a> {
    fn from(r: &'a Requisition) -> Self {
        Self {
            requester_id: r.requester_id,
            submitted: r.submissions > 0,
            chain: &r.chain,
            approvers: &[],
            unit: r.unit,
        }
    }
}

/// How far one approver role reaches within the actor's company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Within {
    /// The whole company (for an actor of no unit: every unscoped requisition).
    Company,
    /// Requisitions whose path goes through unit `id` at `level` (a branch, a department, a
    /// region).
    Unit { level: UnitKind, id: Id },
}

impl Within {
    fn admits(self, unit: Option<&UnitPath>) -> bool {
        match self {
            Within::Company => true,
            Within::Unit { level, id } => unit.and_then(|u| u.at(level)) == Some(id),
        }
    }
}

/// One approver role the actor holds and how far it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub role: Role,
    pub within: Within,
}

/// Which requisitions an actor may see, as data: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequisitionScope {
    /// The actor: their own requisitions, and those they approved.
    pub user_id: Id,
    /// Everything else is of this company only (`None`: of no company, unscoped).
    pub company: Option<Id>,
    /// Every requisition of the company, drafts included.
    pub everything: bool,
    /// Every submitted requisition of the company.
    pub all_submitted: bool,
    /// The actor's approver roles: what their approvals inbox waits on.
    pub chain_roles: Vec<Role>,
    /// Submitted requisitions whose chain has `role`, where it reaches. Roles that reach
    /// nothing (a branch manager who is in no branch) are left out.
    pub reaches: Vec<Reach>,
}

impl RequisitionScope {
    pub fn of(actor: &Actor) -> Self {
        let chain_roles: Vec<Role> =
            actor.roles.iter().copied().filter(|r| crate::routing::may_be_a_step(*r)).collect();
        let reaches = chain_roles
            .iter()
            .filter_map(|&role| {
                let within = match (&actor.unit, reach_level(role)) {
                    (None, _) | (Some(_), None) => Within::Company,
                    (Some(unit), Some(level)) => Within::Unit { level, id: unit.at(level)? },
                };
                Some(Reach { role, within })
            })
            .collect();
        Self {
            user_id: actor.user_id,
            company: actor.company(),
            everything: actor.has(Role::Auditor) || actor.has(Role::Admin),
            all_submitted: COMPANY_WIDE.iter().any(|r| actor.has(*r)),
            chain_roles,
            reaches,
        }
    }

    /// True when the actor may see this requisition.
    pub fn admits(&self, r: &RequisitionFacts<'_>) -> bool {
        if r.requester_id == Some(self.user_id) {
            return true;
        }
        if r.unit.map(|u| u.company) != self.company {
            return false;
        }
        self.everything
            || (r.submitted
                && (self.all_submitted
                    || self
                        .reaches
                        .iter()
                        .any(|reach| r.chain.contains(&reach.role) && reach.within.admits(r.unit.as_ref()))
                    || r.approvers.contains(&self.user_id)))
    }

    /// True when the actor sees only their own requisitions (and those they approved).
    pub fn own_only(&self) -> bool {
        !self.everything && !self.all_submitted && self.reaches.is_empty()
    }
}

/// Roles that see every submitted requisition of their company.
pub const COMPANY_WIDE: [Role; 5] =
    [Role::Treasury, Role::Fpa, Role::GroupFinanceManager, Role::Cfo, Role::Ceo];

/// True when the actor may read treasury's list of payments (of their company:
/// [`may_read_fund`] decides per fund, and the list is of the actor's company).
pub fn may_read_payments(actor: &Actor) -> bool {
    PAYMENT_READERS.iter().any(|r| actor.has(*r))
}

/// Who may read treasury's list of payments.
pub const PAYMENT_READERS: [Role; 6] =
    [Role::Treasury, Role::Auditor, Role::Admin, Role::Cfo, Role::Fpa, Role::GroupFinanceManager];

/// True when the actor may read funds at all, their balances and cash books: any signed-in
/// user (of the fund's company: [`may_read_fund`]).
pub fn may_read_funds(_actor: &Actor) -> bool {
    true
}

/// True when the actor may read a fund owned by a unit of `fund_company` (`None`: unscoped),
/// its cash book and its payments: their own company's, or, for an actor of no unit, an
/// unscoped fund's.
pub fn may_read_fund(actor: &Actor, fund_company: Option<Id>) -> bool {
    may_read_funds(actor) && actor.company() == fund_company
}

/// True when the actor may read an advance held by `holder_id` from a fund of `fund_company`:
/// its holder, or someone who reads the payments of that fund.
pub fn may_read_advance(actor: &Actor, holder_id: Id, fund_company: Option<Id>) -> bool {
    actor.user_id == holder_id || (may_read_payments(actor) && may_read_fund(actor, fund_company))
}

/// Which advances a list shows the actor: their company's (its fund's company; unscoped ones
/// for an actor of no unit) to those who read payments, their own to everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvanceScope {
    Company(Option<Id>),
    Own(Id),
}

impl AdvanceScope {
    pub fn of(actor: &Actor) -> Self {
        if may_read_payments(actor) {
            AdvanceScope::Company(actor.company())
        } else {
            AdvanceScope::Own(actor.user_id)
        }
    }

    /// Admits an advance of `holder_id` from a fund of `fund_company`: the same rule as
    /// [`may_read_advance`].
    pub fn admits(&self, holder_id: Id, fund_company: Option<Id>) -> bool {
        match self {
            AdvanceScope::Company(company) => *company == fund_company,
            AdvanceScope::Own(user) => *user == holder_id,
        }
    }
}

/// True when the actor may see (and, being an admin, manage) a user of `user_company`: the
/// same company, or both of none.
pub fn may_see_user(actor: &Actor, user_company: Option<Id>) -> bool {
    actor.company() == user_company
}

/// True when the actor may see an organisation unit of `unit_company`: their own company's;
/// an admin of no unit sees every unit.
pub fn may_see_unit(actor: &Actor, unit_company: Id) -> bool {
    match actor.company() {
        Some(own) => own == unit_company,
        None => actor.has(Role::Admin),
    }
}

/// True when the actor may read the expense categories and cost centres of `company` (`None`:
/// the unscoped organisation's): the people of that company.
pub fn may_read_catalogue(actor: &Actor, company: Option<Id>) -> bool {
    actor.company() == company
}

/// Who may read budget against actual (their company's).
pub const BUDGET_READERS: [Role; 7] =
    [Role::Cfo, Role::Admin, Role::Fpa, Role::GroupFinanceManager, Role::Ceo, Role::Auditor, Role::Treasury];

/// True when the actor may read their company's budgets and what they consumed.
pub fn may_read_budgets(actor: &Actor) -> bool {
    BUDGET_READERS.iter().any(|r| actor.has(*r))
}

/// Whose numbers the dashboard sums for an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardScope {
    /// Every requisition's of a company (`None`: every unscoped requisition's).
    Company(Option<Id>),
    /// The actor's own requisitions'.
    Own,
}

impl DashboardScope {
    /// Their company's for those who see requisitions beyond their own, their own otherwise.
    pub fn of(actor: &Actor) -> Self {
        if RequisitionScope::of(actor).own_only() {
            DashboardScope::Own
        } else {
            DashboardScope::Company(actor.company())
        }
    }
}

/// Who sees alerts, and who acts on them (issue #15).
///
/// - Treasury, admins, auditors and the finance leads (cfo, fpa, group finance manager) — the
///   payment readers — see every alert of their company (an alert's company is its fund's or
///   requisition's; none: unscoped, seen by actors of no unit).
/// - Anyone else sees the alerts naming them responsible (a fund's custodian, a payment's
///   payer, an advance's holder: `alerts.responsible_ids`, fixed when it was raised).
/// - Acknowledging and resolving: treasury and admins of the company, and the people
///   responsible. Auditors and the finance leads read only (403 when they try).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertScope {
    pub user_id: Id,
    /// `Some(company)`: every alert of that company (the inner `None`: unscoped ones).
    pub company: Option<Option<Id>>,
    /// May acknowledge and resolve the company's alerts (not only those naming them).
    pub acts_for_company: bool,
}

impl AlertScope {
    pub fn of(actor: &Actor) -> Self {
        Self {
            user_id: actor.user_id,
            company: may_read_payments(actor).then(|| actor.company()),
            acts_for_company: actor.has(Role::Treasury) || actor.has(Role::Admin),
        }
    }

    /// True when the actor may read an alert of `company` naming `responsible`.
    pub fn admits(&self, company: Option<Id>, responsible: &[Id]) -> bool {
        self.company == Some(company) || responsible.contains(&self.user_id)
    }

    /// True when the actor may acknowledge or resolve it (they may read it: see [`Self::admits`]).
    pub fn may_act(&self, company: Option<Id>, responsible: &[Id]) -> bool {
        (self.acts_for_company && self.company == Some(company)) || responsible.contains(&self.user_id)
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
        RequisitionFacts { requester_id: Some(requester), submitted, chain, approvers, unit: None }
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
        assert_eq!(DashboardScope::of(&Actor::new(me, [Role::Cfo])), DashboardScope::Company(None));
    }

    #[test]
    fn payment_readers_see_their_companys_alerts_and_the_responsible_their_own() {
        let (me, other, company) = (Id::new_v4(), Id::new_v4(), Some(Id::new_v4()));
        let auditor = AlertScope::of(&Actor::new(me, [Role::Auditor]));
        assert!(auditor.admits(None, &[]) && !auditor.may_act(None, &[]), "reads only");
        assert!(!auditor.admits(company, &[]), "another company's");
        let treasury = AlertScope::of(&Actor::new(me, [Role::Treasury]));
        assert!(treasury.may_act(None, &[other]));
        let custodian = AlertScope::of(&Actor::new(me, [Role::Staff]));
        assert!(!custodian.admits(None, &[other]));
        assert!(custodian.admits(company, &[me]) && custodian.may_act(company, &[me]), "named responsible");
    }
}
