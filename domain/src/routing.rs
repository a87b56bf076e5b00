//! Approval routing: which chain of roles a requisition needs, and who may act at each step.
//!
//! Admins keep a set of [`Threshold`]s. At submission the command side picks the threshold for
//! the requisition's currency, origin and amount ([`Thresholds::select`]), builds the chain of
//! roles ([`chain_for`]: the threshold's roles, finance leadership instead of treasury for a
//! treasury requester, the CFO and CEO when the threshold requires them), looks up who holds
//! each role in the requisition's scope, and resolves the steps ([`resolve_steps`]: eligible
//! people per step, never the requester; a step with nobody eligible escalates). All of it is
//! recorded in the requisition's events, so replay never depends on today's thresholds or
//! today's staff.
//!
//! The system being replaced matched amounts that fell between its tiers to nothing (creation
//! failed), never enforced "requires CFO/CEO", and let the same person be asked twice in a
//! row; [`Thresholds::validate`] refuses gaps and ambiguous overlaps, and the chain and the
//! steps are built here, once.

use crate::error::DomainError;
use crate::money::Currency;
pub use crate::organisation::Origin;
use crate::organisation::{reach_level, UnitPath};
use crate::role::Role;
use crate::Id;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Roles that may be a step of a chain: the approvers, and treasury as a validation step (as
/// the old system's tiers had it; a treasury user who validated a requisition may not pay it).
pub fn may_be_a_step(role: Role) -> bool {
    role.is_approver() || role == Role::Treasury
}

/// Finance leadership, in the order a chain climbs it.
const LEADERSHIP: [Role; 3] = [Role::GroupFinanceManager, Role::Cfo, Role::Ceo];

/// One threshold: requisitions in `currency` (any currency without thresholds of its own when
/// `None`), from `origin` (any when `None`), of an amount in `min..=max` (no upper bound when
/// `max` is `None`) need approvals from `chain`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub name: String,
    pub currency: Option<Currency>,
    pub origin: Option<Origin>,
    #[serde(with = "rust_decimal::serde::str")]
    pub min: Decimal,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub max: Option<Decimal>,
    /// Lower wins where an origin's own threshold and an any-origin one both match.
    pub priority: u32,
    pub chain: Vec<Role>,
    /// An urgent requisition confirmed by the first approver goes straight to the last step.
    pub fast_track: bool,
    pub requires_cfo: bool,
    pub requires_ceo: bool,
}

impl Threshold {
    fn contains(&self, amount: Decimal) -> bool {
        self.min <= amount && self.max.is_none_or(|max| amount <= max)
    }

    fn applies_to(&self, origin: Origin) -> bool {
        self.origin.is_none_or(|o| o == origin)
    }

    fn overlaps(&self, other: &Threshold) -> bool {
        let origins = self.origin.is_none() || other.origin.is_none() || self.origin == other.origin;
        let ranges =
            self.max.is_none_or(|max| other.min <= max) && other.max.is_none_or(|max| self.min <= max);
        self.currency == other.currency && origins && ranges
    }
}

/// The smallest step between two amounts a threshold set for `currency` must leave no gap
/// across: the currency's minor unit, or for any-currency thresholds the finest there is.
fn unit(currency: Option<&Currency>) -> Decimal {
    let digits = currency.map_or(crate::money::FINEST_MINOR_UNITS, Currency::minor_units);
    Decimal::new(1, digits)
}

/// Every threshold in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds(pub Vec<Threshold>);

impl Thresholds {
    /// Checks the set: names unique; each range, chain and amount well-formed; no two
    /// thresholds of equal priority that could both match one requisition; and for every
    /// currency that has thresholds (and for the any-currency ones), every origin covered from
    /// the smallest amount up, with no gap and no upper end.
    pub fn validate(&self) -> Result<(), DomainError> {
        let all = &self.0;
        if all.is_empty() {
            return Err(DomainError::invalid("thresholds", "at least one threshold is required"));
        }
        for (i, t) in all.iter().enumerate() {
            let at = |message: String| {
                DomainError::invalid("thresholds", format!("threshold {i} (`{}`): {message}", t.name))
            };
            if t.name.trim().is_empty() || t.name.chars().count() > 100 {
                return Err(DomainError::invalid(
                    "thresholds",
                    format!("threshold {i}: a name of 1 to 100 characters is required"),
                ));
            }
            if all[..i].iter().any(|o| o.name == t.name) {
                return Err(at("two thresholds have this name".into()));
            }
            if t.min < Decimal::ZERO {
                return Err(at("min must not be negative".into()));
            }
            if t.max.is_some_and(|max| max < t.min) {
                return Err(at("max must not be below min".into()));
            }
            let digits = t.currency.as_ref().map_or(crate::money::FINEST_MINOR_UNITS, Currency::minor_units);
            for amount in std::iter::once(t.min).chain(t.max) {
                if amount.normalize().scale() > digits {
                    return Err(at(format!("{amount} has more than {digits} decimals")));
                }
            }
            if t.chain.is_empty() {
                return Err(at("the chain needs at least one role".into()));
            }
            for (j, role) in t.chain.iter().enumerate() {
                if !may_be_a_step(*role) {
                    return Err(at(format!("`{role}` cannot be a step of a chain")));
                }
                if t.chain[..j].contains(role) {
                    return Err(at(format!("`{role}` appears twice in the chain")));
                }
            }
            if let Some(other) = all[..i].iter().find(|o| o.priority == t.priority && o.overlaps(t)) {
                return Err(DomainError::ThresholdsOverlap {
                    first: other.name.clone(),
                    second: t.name.clone(),
                });
            }
        }
        let mut currencies: Vec<Option<&Currency>> = Vec::new();
        for t in all {
            if !currencies.contains(&t.currency.as_ref()) {
                currencies.push(t.currency.as_ref());
            }
        }
        for currency in currencies {
            for origin in Origin::ALL {
                let mut ranges: Vec<(Decimal, Option<Decimal>)> = all
                    .iter()
                    .filter(|t| t.currency.as_ref() == currency && t.applies_to(origin))
                    .map(|t| (t.min, t.max))
                    .collect();
                ranges.sort();
                let step = unit(currency);
                // Everything below `next` is covered; amounts start at one unit.
                let mut next = step;
                for (min, max) in ranges {
                    if min > next {
                        break;
                    }
                    match max {
                        None => {
                            next = Decimal::MAX;
                            break;
                        }
                        Some(max) => next = next.max(max + step),
                    }
                }
                if next != Decimal::MAX {
                    return Err(DomainError::ThresholdsGap {
                        currency: currency.map(|c| c.to_string()),
                        origin,
                        from: next,
                    });
                }
            }
        }
        Ok(())
    }

    /// The threshold for a requisition: among the thresholds of its currency (or, when its
    /// currency has none, the any-currency ones), those for its origin or any origin whose
    /// range holds the amount; the lowest priority number wins, then an origin's own threshold
    /// over an any-origin one.
    pub fn select(
        &self,
        currency: &Currency,
        origin: Origin,
        amount: Decimal,
    ) -> Result<&Threshold, DomainError> {
        let own = self.0.iter().any(|t| t.currency.as_ref() == Some(currency));
        self.0
            .iter()
            .filter(|t| if own { t.currency.as_ref() == Some(currency) } else { t.currency.is_none() })
            .filter(|t| t.applies_to(origin) && t.contains(amount))
            .min_by_key(|t| (t.priority, t.origin.is_none()))
            .ok_or_else(|| DomainError::NoThreshold { currency: currency.to_string(), origin, amount })
    }
}

/// The roles a requisition must pass, in order: the threshold's chain; for a requester who
/// holds treasury, its treasury step goes to finance leadership instead, so treasury never
/// approves its own: it becomes the group finance manager's, or is dropped when the chain
/// already has a finance-leadership role; then the CFO and the CEO added at the end when the
/// threshold requires them and the chain lacks them.
pub fn chain_for(threshold: &Threshold, requester_roles: &[Role]) -> Vec<Role> {
    let mut chain: Vec<Role> = Vec::with_capacity(threshold.chain.len() + 2);
    let treasury_requester = requester_roles.contains(&Role::Treasury);
    let has_leadership = threshold.chain.iter().any(|r| LEADERSHIP.contains(r));
    for &role in &threshold.chain {
        let role = match role {
            Role::Treasury if treasury_requester && has_leadership => continue,
            Role::Treasury if treasury_requester => Role::GroupFinanceManager,
            role => role,
        };
        if !chain.contains(&role) {
            chain.push(role);
        }
    }
    if threshold.requires_cfo && !chain.contains(&Role::Cfo) {
        chain.push(Role::Cfo);
    }
    if threshold.requires_ceo && !chain.contains(&Role::Ceo) {
        chain.push(Role::Ceo);
    }
    chain
}

/// Why a step was not given to the people holding its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// Nobody but the requester (or nobody at all) holds the role in the requisition's scope.
    NoEligibleApprover,
    /// The only person who could act is the one the step before can only go to: nobody is
    /// asked twice in a row.
    SameApproverTwice,
    /// The step waited past its escalation time (`approval_escalation_hours`).
    Overdue,
}

impl EscalationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::NoEligibleApprover => "no_eligible_approver",
            EscalationReason::SameApproverTwice => "same_approver_twice",
            EscalationReason::Overdue => "overdue",
        }
    }
}

/// One step of a resolved chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The role the chain asked for.
    pub role: Role,
    /// Who may act at this step (empty only for a step that escalated to the next one).
    pub eligible: Vec<Id>,
    /// Set when the step did not go to the holders of its role.
    pub escalation: Option<Escalation>,
}

/// Where a step went instead, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub reason: EscalationReason,
    pub to: EscalatedTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalatedTo {
    /// The step is skipped: the next step's people decide.
    NextStep,
    /// The step goes to the admins.
    Admin,
}

/// Resolves a chain into steps. `holders(role)` gives the active holders of `role` in the
/// requisition's scope; `admins` the active admins of its company. For each step: its holders,
/// without the requester; if the step before could go to one person only, without that
/// person too (nobody is asked twice in a row). A step left with nobody escalates: to the next
/// step if there is one (the step is skipped), else to the admins (without the requester and
/// that person). With no admin either, the result is an error: nobody could decide.
pub fn resolve_steps(
    chain: &[Role],
    requester: Id,
    holders: impl Fn(Role) -> Vec<Id>,
    admins: &[Id],
) -> Result<Vec<Step>, DomainError> {
    let mut steps: Vec<Step> = Vec::with_capacity(chain.len());
    for (i, &role) in chain.iter().enumerate() {
        let only_before =
            steps.iter().rev().find(|s| !s.eligible.is_empty()).and_then(|s| match s.eligible.as_slice() {
                [one] => Some(*one),
                _ => None,
            });
        let all: Vec<Id> = holders(role).into_iter().filter(|id| *id != requester).collect();
        let eligible: Vec<Id> = all.iter().copied().filter(|id| Some(*id) != only_before).collect();
        if !eligible.is_empty() {
            steps.push(Step { role, eligible, escalation: None });
            continue;
        }
        let reason = if all.is_empty() {
            EscalationReason::NoEligibleApprover
        } else {
            EscalationReason::SameApproverTwice
        };
        if i + 1 < chain.len() {
            steps.push(Step {
                role,
                eligible: vec![],
                escalation: Some(Escalation { reason, to: EscalatedTo::NextStep }),
            });
            continue;
        }
        let admins: Vec<Id> =
            admins.iter().copied().filter(|id| *id != requester && Some(*id) != only_before).collect();
        if admins.is_empty() {
            return Err(DomainError::NoApprover { role });
        }
        steps.push(Step {
            role,
            eligible: admins,
            escalation: Some(Escalation { reason, to: EscalatedTo::Admin }),
        });
    }
    Ok(steps)
}

/// An active user who holds roles that may be steps, and where they sit: what resolution
/// reads (the command side looks them up in an index kept with the users' events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub user_id: Id,
    pub roles: Vec<Role>,
    /// Their unit's path; `None`: unscoped.
    pub unit: Option<UnitPath>,
    /// Who registered them or granted them a role (`User::sponsors`).
    pub sponsors: Vec<Id>,
}

/// Everyone a requisition's steps could go to: the active holders of step roles in its company
/// (for an unscoped requisition: those of no company), and its company's active admins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub holders: Vec<Holder>,
    pub admins: Vec<Holder>,
}

impl Directory {
    /// The holders of `role` in the scope of a requisition created at `unit`, who may decide on
    /// what `requester` asks: a branch manager of its branch, a department head of its
    /// department, a regional manager of its region (`organisation::reach_level`), anyone of
    /// the directory's company for the company-wide roles; for an unscoped requisition, the
    /// unscoped holders. Never someone the requester registered or gave a role to.
    pub fn holders(&self, role: Role, unit: Option<&UnitPath>, requester: Id) -> Vec<Id> {
        self.holders
            .iter()
            .filter(|h| h.roles.contains(&role) && !h.sponsors.contains(&requester))
            .filter(|h| match (unit, reach_level(role)) {
                (None, _) => h.unit.is_none(),
                (Some(_), None) => true,
                (Some(u), Some(level)) => {
                    u.at(level).is_some() && h.unit.as_ref().and_then(|hu| hu.at(level)) == u.at(level)
                }
            })
            .map(|h| h.user_id)
            .collect()
    }
}

/// A submission's route: the threshold it fell under, its chain and who may act at each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub threshold: String,
    /// Whether the threshold allows an urgent requisition to be fast-tracked.
    pub fast_track: bool,
    pub chain: Vec<Role>,
    pub steps: Vec<Step>,
}

/// Routes a requisition of `amount` in `currency`, from `origin` and `unit`, asked for by
/// `requester`: the threshold, the chain ([`chain_for`]) and the steps ([`resolve_steps`])
/// with the directory's people.
pub fn route(
    thresholds: &Thresholds,
    currency: &Currency,
    origin: Origin,
    amount: Decimal,
    unit: Option<&UnitPath>,
    requester: &crate::Actor,
    directory: &Directory,
) -> Result<Route, DomainError> {
    let threshold = thresholds.select(currency, origin, amount)?;
    let chain = chain_for(threshold, &requester.roles);
    if chain.is_empty() {
        return Err(DomainError::invalid("chain", "the approval policy gave no approvers"));
    }
    let requester_id = requester.user_id;
    let admins: Vec<Id> =
        directory.admins.iter().filter(|a| !a.sponsors.contains(&requester_id)).map(|a| a.user_id).collect();
    let steps =
        resolve_steps(&chain, requester_id, |role| directory.holders(role, unit, requester_id), &admins)?;
    Ok(Route { threshold: threshold.name.clone(), fast_track: threshold.fast_track, chain, steps })
}

/// The first step at or after `from` that someone may act on: every step of a chain recorded
/// without eligible people (before routing recorded them), else the first whose list is not
/// empty (an empty list is a step escalated to the next one). `None`: the chain is complete.
pub fn next_step(chain_len: usize, eligible: Option<&[Vec<Id>]>, from: usize) -> Option<usize> {
    (from..chain_len).find(|&i| eligible.is_none_or(|lists| lists.get(i).is_some_and(|l| !l.is_empty())))
}

/// The step a pending requisition waits for: [`next_step`] from `after` (the step after the
/// last approval of the round), or from the chain's final step while confirmed urgency
/// `fast_tracked` it. The one rule, used by the aggregate and by `verify`.
pub fn waiting_step(
    chain_len: usize,
    eligible: Option<&[Vec<Id>]>,
    after: usize,
    fast_tracked: bool,
) -> Option<usize> {
    let from = if fast_tracked { after.max(chain_len.saturating_sub(1)) } else { after };
    next_step(chain_len, eligible, from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kes() -> Currency {
        Currency::parse("KES").unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn t(
        name: &str,
        currency: Option<&str>,
        origin: Option<Origin>,
        min: &str,
        max: Option<&str>,
        chain: &[Role],
    ) -> Threshold {
        Threshold {
            name: name.into(),
            currency: currency.map(|c| Currency::parse(c).unwrap()),
            origin,
            min: d(min),
            max: max.map(d),
            priority: 10,
            chain: chain.to_vec(),
            fast_track: false,
            requires_cfo: false,
            requires_ceo: false,
        }
    }

    /// The old system's seed, made whole: tiers per origin for KES with no gaps at the cent.
    fn kes_tiers() -> Thresholds {
        use Role::*;
        Thresholds(vec![
            t("Tier 1", Some("KES"), None, "0", Some("10000.00"), &[BranchManager, Treasury]),
            t(
                "Tier 2",
                Some("KES"),
                None,
                "10000.01",
                Some("50000.00"),
                &[BranchManager, DepartmentHead, Treasury],
            ),
            t("Tier 3", Some("KES"), None, "50000.01", None, &[RegionalManager, Treasury, Cfo]),
        ])
    }

    #[test]
    fn a_complete_set_validates_and_picks_by_amount_at_the_exact_boundaries() {
        let set = kes_tiers();
        set.validate().unwrap();
        for (amount, tier) in [
            ("0.01", "Tier 1"),
            ("10000.00", "Tier 1"),
            ("10000.01", "Tier 2"),
            ("50000.00", "Tier 2"),
            ("50000.01", "Tier 3"),
            ("999999999", "Tier 3"),
        ] {
            assert_eq!(set.select(&kes(), Origin::Branch, d(amount)).unwrap().name, tier, "{amount}");
        }
    }

    #[test]
    fn a_gap_between_tiers_is_refused_naming_where_it_starts() {
        let mut set = kes_tiers();
        set.0[1].min = d("10000.02");
        assert_eq!(
            set.validate(),
            Err(DomainError::ThresholdsGap {
                currency: Some("KES".into()),
                origin: Origin::Branch,
                from: d("10000.01")
            })
        );
        let mut open_top = kes_tiers();
        open_top.0[2].max = Some(d("100000"));
        assert!(
            matches!(open_top.validate(), Err(DomainError::ThresholdsGap { from, .. }) if from == d("100000.01"))
        );
        let mut late_start = kes_tiers();
        late_start.0[0].min = d("1");
        assert!(
            matches!(late_start.validate(), Err(DomainError::ThresholdsGap { from, .. }) if from == d("0.01"))
        );
    }

    #[test]
    fn each_origin_must_be_covered() {
        use Role::*;
        let set = Thresholds(vec![
            t("Branch", Some("KES"), Some(Origin::Branch), "0", None, &[BranchManager]),
            t("HQ", Some("KES"), Some(Origin::Hq), "0", None, &[DepartmentHead]),
        ]);
        assert_eq!(
            set.validate(),
            Err(DomainError::ThresholdsGap {
                currency: Some("KES".into()),
                origin: Origin::Field,
                from: d("0.01")
            })
        );
    }

    #[test]
    fn gaps_are_judged_at_the_currencys_minor_unit() {
        use Role::*;
        // UGX has no minor unit: 1000 then 1001 leaves nothing between them.
        let ugx = Thresholds(vec![
            t("Small", Some("UGX"), None, "0", Some("1000"), &[BranchManager]),
            t("Large", Some("UGX"), None, "1001", None, &[Cfo]),
        ]);
        ugx.validate().unwrap();
        // KWD has three: 1000.000 then 1000.01 leaves 1000.001..1000.009.
        let kwd = Thresholds(vec![
            t("Small", Some("KWD"), None, "0", Some("1000"), &[BranchManager]),
            t("Large", Some("KWD"), None, "1000.01", None, &[Cfo]),
        ]);
        assert!(
            matches!(kwd.validate(), Err(DomainError::ThresholdsGap { from, .. }) if from == d("1000.001"))
        );
        // Tiers differ per currency: 1,000 UGX is not 1,000 KWD.
        let both = Thresholds(vec![
            t("UGX small", Some("UGX"), None, "0", Some("1000"), &[BranchManager]),
            t("UGX large", Some("UGX"), None, "1001", None, &[Cfo]),
            t("KWD small", Some("KWD"), None, "0", Some("1000"), &[BranchManager]),
            t("KWD large", Some("KWD"), None, "1000.001", None, &[Cfo]),
        ]);
        both.validate().unwrap();
        assert_eq!(
            both.select(&Currency::parse("UGX").unwrap(), Origin::Hq, d("1000")).unwrap().chain,
            vec![BranchManager]
        );
        assert_eq!(
            both.select(&Currency::parse("KWD").unwrap(), Origin::Hq, d("1000.001")).unwrap().chain,
            vec![Cfo]
        );
    }

    #[test]
    fn overlapping_ranges_of_equal_priority_are_refused_and_priority_decides_otherwise() {
        use Role::*;
        let mut set = kes_tiers();
        set.0.push(t("Branch small", Some("KES"), Some(Origin::Branch), "0", Some("5000"), &[BranchManager]));
        assert_eq!(
            set.validate(),
            Err(DomainError::ThresholdsOverlap { first: "Tier 1".into(), second: "Branch small".into() })
        );
        set.0[3].priority = 1;
        set.validate().unwrap();
        assert_eq!(set.select(&kes(), Origin::Branch, d("400")).unwrap().name, "Branch small");
        assert_eq!(set.select(&kes(), Origin::Hq, d("400")).unwrap().name, "Tier 1");
        assert_eq!(set.select(&kes(), Origin::Branch, d("5000.01")).unwrap().name, "Tier 1");
    }

    #[test]
    fn a_currency_without_thresholds_uses_the_any_currency_ones_or_has_none() {
        use Role::*;
        let mut set = kes_tiers();
        assert_eq!(
            set.select(&Currency::parse("USD").unwrap(), Origin::Hq, d("10")),
            Err(DomainError::NoThreshold { currency: "USD".into(), origin: Origin::Hq, amount: d("10") })
        );
        set.0.push(t("Any", None, None, "0", None, &[Cfo]));
        set.validate().unwrap();
        assert_eq!(set.select(&Currency::parse("USD").unwrap(), Origin::Hq, d("10")).unwrap().name, "Any");
        assert_eq!(set.select(&kes(), Origin::Hq, d("10")).unwrap().name, "Tier 1", "KES has its own");
    }

    #[test]
    fn malformed_thresholds_are_refused() {
        use Role::*;
        let bad = |change: &dyn Fn(&mut Threshold)| {
            let mut set = kes_tiers();
            change(&mut set.0[0]);
            set.validate().unwrap_err()
        };
        assert!(matches!(bad(&|t| t.chain.clear()), DomainError::Invalid { field: "thresholds", .. }));
        assert!(matches!(bad(&|t| t.chain = vec![Staff]), DomainError::Invalid { .. }));
        assert!(matches!(bad(&|t| t.chain = vec![Cfo, Cfo]), DomainError::Invalid { .. }));
        assert!(matches!(bad(&|t| t.max = Some(d("-1"))), DomainError::Invalid { .. }));
        assert!(matches!(bad(&|t| t.max = Some(d("10000.001"))), DomainError::Invalid { .. }));
        assert!(matches!(bad(&|t| t.name = "Tier 2".into()), DomainError::Invalid { .. }));
        assert!(matches!(bad(&|t| t.name = " ".into()), DomainError::Invalid { .. }));
        assert!(Thresholds(vec![]).validate().is_err());
    }

    #[test]
    fn requires_cfo_and_ceo_are_added_when_missing() {
        use Role::*;
        let mut tier = t("T", None, None, "0", None, &[BranchManager, Treasury]);
        assert_eq!(chain_for(&tier, &[Staff]), vec![BranchManager, Treasury]);
        tier.requires_cfo = true;
        tier.requires_ceo = true;
        assert_eq!(chain_for(&tier, &[Staff]), vec![BranchManager, Treasury, Cfo, Ceo]);
        tier.chain = vec![Cfo, Treasury];
        assert_eq!(chain_for(&tier, &[Staff]), vec![Cfo, Treasury, Ceo], "not twice");
    }

    #[test]
    fn a_treasury_requester_goes_to_finance_leadership_instead_of_treasury() {
        use Role::*;
        let tier = t("T", None, None, "0", None, &[BranchManager, Treasury]);
        assert_eq!(chain_for(&tier, &[Treasury]), vec![BranchManager, GroupFinanceManager]);
        let with_leaders = t("T", None, None, "0", None, &[RegionalManager, Treasury, Cfo]);
        assert_eq!(chain_for(&with_leaders, &[Treasury]), vec![RegionalManager, Cfo]);
        assert_eq!(chain_for(&with_leaders, &[Staff]), vec![RegionalManager, Treasury, Cfo]);
    }

    fn ids(n: u128) -> Id {
        Id::from_u128(n)
    }

    #[test]
    fn steps_go_to_the_holders_in_scope_but_never_the_requester() {
        use Role::*;
        let holders = |role: Role| match role {
            BranchManager => vec![ids(1), ids(2)],
            Treasury => vec![ids(3)],
            _ => vec![],
        };
        let steps = resolve_steps(&[BranchManager, Treasury], ids(1), holders, &[ids(9)]).unwrap();
        assert_eq!(steps[0], Step { role: BranchManager, eligible: vec![ids(2)], escalation: None });
        assert_eq!(steps[1], Step { role: Treasury, eligible: vec![ids(3)], escalation: None });
    }

    #[test]
    fn a_step_with_nobody_escalates_to_the_next_step_or_to_the_admins() {
        use Role::*;
        let holders = |role: Role| match role {
            Cfo => vec![ids(5)],
            BranchManager => vec![ids(1)], // the requester
            _ => vec![],
        };
        let steps = resolve_steps(&[BranchManager, DepartmentHead, Cfo], ids(1), holders, &[ids(9)]).unwrap();
        let next =
            Some(Escalation { reason: EscalationReason::NoEligibleApprover, to: EscalatedTo::NextStep });
        assert_eq!(steps[0].escalation, next);
        assert_eq!(steps[1].escalation, next);
        assert_eq!(steps[2].eligible, vec![ids(5)]);
        let last_empty = resolve_steps(&[Cfo, Ceo], ids(1), holders, &[ids(1), ids(9)]).unwrap();
        assert_eq!(last_empty[1].eligible, vec![ids(9)], "admins, without the requester");
        assert_eq!(
            last_empty[1].escalation,
            Some(Escalation { reason: EscalationReason::NoEligibleApprover, to: EscalatedTo::Admin })
        );
        assert_eq!(
            resolve_steps(&[Ceo], ids(1), holders, &[ids(1)]),
            Err(DomainError::NoApprover { role: Ceo })
        );
    }

    #[test]
    fn nobody_is_asked_twice_in_a_row() {
        use Role::*;
        // One person holds both roles: the second step cannot go to them again.
        let holders = |role: Role| match role {
            DepartmentHead | Fpa => vec![ids(4)],
            Cfo => vec![ids(4), ids(6)],
            _ => vec![],
        };
        let steps = resolve_steps(&[DepartmentHead, Fpa, Cfo], ids(1), holders, &[ids(4), ids(9)]).unwrap();
        assert_eq!(steps[0].eligible, vec![ids(4)]);
        assert_eq!(
            steps[1].escalation,
            Some(Escalation { reason: EscalationReason::SameApproverTwice, to: EscalatedTo::NextStep })
        );
        assert_eq!(steps[2].eligible, vec![ids(6)], "the step after the skipped one still follows person 4");
        let last = resolve_steps(&[DepartmentHead, Fpa], ids(1), holders, &[ids(4), ids(9)]).unwrap();
        assert_eq!(last[1].eligible, vec![ids(9)], "to an admin other than person 4");
    }

    fn path(company: u128, region: Option<u128>, branch: Option<u128>, department: Option<u128>) -> UnitPath {
        let id = department.or(branch).or(region).unwrap_or(company);
        UnitPath {
            unit_id: ids(id),
            company: ids(company),
            region: region.map(ids),
            branch: branch.map(ids),
            department: department.map(ids),
            cost_centre: None,
        }
    }

    fn holder(user: u128, roles: &[Role], unit: Option<UnitPath>) -> Holder {
        Holder { user_id: ids(user), roles: roles.to_vec(), unit, sponsors: vec![] }
    }

    #[test]
    fn holders_are_those_whose_role_reaches_the_requisitions_unit() {
        use Role::*;
        // Company 1, region 10, branches 100 and 200, department 1001 under branch 100.
        let dir = Directory {
            holders: vec![
                holder(1, &[BranchManager], Some(path(1, Some(10), Some(100), None))),
                holder(2, &[BranchManager], Some(path(1, Some(10), Some(200), None))),
                holder(3, &[DepartmentHead], Some(path(1, Some(10), Some(100), Some(1001)))),
                holder(4, &[RegionalManager], Some(path(1, Some(10), None, None))),
                holder(5, &[Cfo], Some(path(1, None, None, None))),
                Holder { sponsors: vec![ids(99)], ..holder(6, &[Cfo], Some(path(1, None, None, None))) },
            ],
            admins: vec![],
        };
        let at = path(1, Some(10), Some(100), Some(1001));
        assert_eq!(dir.holders(BranchManager, Some(&at), ids(99)), vec![ids(1)], "its branch's manager only");
        assert_eq!(dir.holders(DepartmentHead, Some(&at), ids(99)), vec![ids(3)]);
        assert_eq!(dir.holders(RegionalManager, Some(&at), ids(99)), vec![ids(4)]);
        assert_eq!(dir.holders(Cfo, Some(&at), ids(99)), vec![ids(5)], "not one the requester sponsored");
        let at_branch = path(1, Some(10), Some(200), None);
        assert!(dir.holders(DepartmentHead, Some(&at_branch), ids(99)).is_empty(), "no department there");
        assert!(dir.holders(Cfo, None, ids(99)).is_empty(), "unscoped requisitions go to unscoped holders");
    }

    #[test]
    fn the_next_step_skips_escalated_ones() {
        let lists = vec![vec![], vec![ids(1)], vec![], vec![ids(2)]];
        assert_eq!(next_step(4, Some(&lists), 0), Some(1));
        assert_eq!(next_step(4, Some(&lists), 2), Some(3));
        assert_eq!(next_step(4, Some(&lists), 4), None);
        assert_eq!(next_step(2, None, 1), Some(1), "no lists recorded: every step counts");
        assert_eq!(next_step(2, None, 2), None);
    }

    #[test]
    fn origins_have_one_text_form() {
        for o in Origin::ALL {
            assert_eq!(o.as_str().parse::<Origin>().unwrap(), o);
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert!("HQ".parse::<Origin>().is_err());
    }
}
