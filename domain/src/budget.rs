//! Budgets per cost centre, department or branch per month: one plan per company (one stream,
//! aggregate type `budget_plan`, id the company's: [`plan_id`]), set by its CFO or admins
//! (`BudgetSet`; setting the same scope, month and currency again replaces the amount and
//! keeps the budget's id).
//!
//! **Consumption** is what was *paid* (`RequisitionPaid`), in the month of the payment, in the
//! budget's currency — not every status's amounts, as the old system summed. The command
//! service reads it from the `budgets` read model (`rm_budget_spend`); `pettycash-replay
//! verify` recomputes it from the events.
//!
//! **Which budgets cover a requisition** ([`Budget::covers`]): a cost centre's covers the
//! requisitions that chose it (`cost_centre_id`), or, choosing none, were created in it (the
//! requester's unit); a department's and a branch's cover the requisitions created in them.
//!
//! **At submission** each budget that covers the requisition for the month of the submission
//! is compared with what it already consumed: `consumed + amount > budget` is an overrun
//! ([`overruns`]). Overruns are flagged to the approvers (`BudgetExceeded`, on the requisition,
//! recorded just before its `RequisitionSubmitted` like a duplicate flag), or, when the
//! `budget_block` setting is on, the submission is refused (409 `budget_exceeded` naming the
//! budget) and nothing is recorded.

use crate::error::DomainError;
use crate::money::Currency;
use crate::organisation::{UnitKind, UnitPath};
use crate::role::Role;
use crate::{Actor, Id};
use chrono::{DateTime, Datelike, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The plan stream of `company` (`None`: the organisation with no units, the nil id).
pub fn plan_id(company: Option<Id>) -> Id {
    company.unwrap_or(Id::nil())
}

/// A calendar month, `YYYY-MM` in text and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Self {
        Self { year: at.year(), month: at.month() }
    }

    /// `YYYY-MM`, month 01 to 12, year 2000 to 2999.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a month: write it YYYY-MM");
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(2000..=2999).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The first instant of the month and of the next one.
    pub fn range(self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |y: i32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
                .unwrap_or_default()
        };
        let next = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        (start(self.year, self.month), start(next.0, next.1))
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl TryFrom<String> for Month {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Month::parse(&s)
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

/// The level of the organisation a budget is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    CostCentre,
    Department,
    Branch,
}

impl ScopeKind {
    pub const ALL: [ScopeKind; 3] = [ScopeKind::CostCentre, ScopeKind::Department, ScopeKind::Branch];
    pub const NAMES: &'static str = "cost_centre, department, branch";

    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::CostCentre => "cost_centre",
            ScopeKind::Department => "department",
            ScopeKind::Branch => "branch",
        }
    }

    /// The organisation unit kind a budget of this scope is for.
    pub fn unit_kind(self) -> UnitKind {
        match self {
            ScopeKind::CostCentre => UnitKind::CostCentre,
            ScopeKind::Department => UnitKind::Department,
            ScopeKind::Branch => UnitKind::Branch,
        }
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScopeKind {
    type Err = crate::fund::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "budget scope", text: s.to_string() })
    }
}

/// What a budget is for: a cost centre, department or branch (an organisation unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BudgetScope {
    pub kind: ScopeKind,
    pub unit_id: Id,
}

/// One budget: an amount for a scope, a month and a currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub budget_id: Id,
    pub scope: BudgetScope,
    pub month: Month,
    pub currency: Currency,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The cost centre a requisition's spending is charged to: the one it chose, else the one it
/// was created in (`None`: neither).
pub fn charged_cost_centre(chosen: Option<Id>, unit: Option<&UnitPath>) -> Option<Id> {
    chosen.or(unit.and_then(|u| u.cost_centre))
}

impl Budget {
    /// Whether this budget covers a requisition that chose `cost_centre` (`None`: none) and
    /// was created in `unit` (see the module's documentation).
    pub fn covers(&self, cost_centre: Option<Id>, unit: Option<&UnitPath>) -> bool {
        let id = Some(self.scope.unit_id);
        match self.scope.kind {
            ScopeKind::CostCentre => charged_cost_centre(cost_centre, unit) == id,
            ScopeKind::Department => unit.and_then(|u| u.department) == id,
            ScopeKind::Branch => unit.and_then(|u| u.branch) == id,
        }
    }
}

/// A budget a requisition would exceed: its amount, what it had consumed, and the
/// requisition's amount (`consumed + amount > budget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetFlag {
    pub budget_id: Id,
    pub scope: BudgetScope,
    pub month: Month,
    #[serde(with = "rust_decimal::serde::str")]
    pub budget: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub consumed: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The overruns among `covering` (each budget that covers the requisition, with what it
/// consumed) of a requisition of `amount`.
pub fn overruns(covering: &[(Budget, Decimal)], amount: Decimal) -> Vec<BudgetFlag> {
    covering
        .iter()
        .filter(|(b, consumed)| *consumed + amount > b.amount)
        .map(|(b, consumed)| BudgetFlag {
            budget_id: b.budget_id,
            scope: b.scope,
            month: b.month,
            budget: b.amount,
            consumed: *consumed,
            amount,
        })
        .collect()
}

/// A company's budgets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetPlan {
    pub company: Option<Id>,
    pub budgets: Vec<Budget>,
}

impl BudgetPlan {
    /// The budgets of `month` in `currency` that cover a requisition (see [`Budget::covers`]).
    pub fn covering(
        &self,
        month: Month,
        currency: &Currency,
        cost_centre: Option<Id>,
        unit: Option<&UnitPath>,
    ) -> Vec<Budget> {
        self.budgets
            .iter()
            .filter(|b| b.month == month && &b.currency == currency && b.covers(cost_centre, unit))
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BudgetCommand {
    /// Sets the budget of `scope` for `month` in `currency`. `unit` is the scope's unit as the
    /// caller looked it up among the actor's company's (its kind and path).
    Set {
        /// The id a new budget gets (an existing one keeps its own).
        budget_id: Id,
        scope: BudgetScope,
        unit_kind: UnitKind,
        unit: UnitPath,
        month: String,
        currency: String,
        amount: Decimal,
        actor: Actor,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BudgetEvent {
    BudgetSet {
        budget_id: Id,
        company: Option<Id>,
        scope: BudgetScope,
        month: Month,
        currency: Currency,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        set_by: Id,
    },
}

impl DomainEvent for BudgetEvent {
    fn event_type(&self) -> String {
        match self {
            BudgetEvent::BudgetSet { .. } => "BudgetSet".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Who sets budgets.
pub const BUDGET_SETTERS: [Role; 2] = [Role::Cfo, Role::Admin];

impl Aggregate for BudgetPlan {
    const TYPE: &'static str = "budget_plan";
    type Command = BudgetCommand;
    type Event = BudgetEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: BudgetCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            BudgetCommand::Set { budget_id, scope, unit_kind, unit, month, currency, amount, actor } => {
                if !BUDGET_SETTERS.iter().any(|r| actor.has(*r)) {
                    return Err(DomainError::MissingRole { required: Role::Cfo });
                }
                if Some(unit.company) != actor.company() {
                    return Err(DomainError::invalid("scope_id", "no unit of your company has this id"));
                }
                if unit_kind != scope.kind.unit_kind() {
                    return Err(DomainError::invalid(
                        "scope_id",
                        format!("this unit is a {unit_kind}, not a {}", scope.kind),
                    ));
                }
                let month = Month::parse(&month).map_err(|m| DomainError::invalid("month", m))?;
                let currency = Currency::parse(&currency).map_err(|e| DomainError::money("currency", e))?;
                let amount =
                    currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                let budget_id = self
                    .budgets
                    .iter()
                    .find(|b| b.scope == scope && b.month == month && b.currency == currency)
                    .map_or(budget_id, |b| b.budget_id);
                let event = BudgetEvent::BudgetSet {
                    budget_id,
                    company: actor.company(),
                    scope,
                    month,
                    currency,
                    amount,
                    set_by: actor.user_id,
                };
                sink.write(event, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: BudgetEvent) {
        match event {
            BudgetEvent::BudgetSet { budget_id, company, scope, month, currency, amount, .. } => {
                self.company = company;
                match self.budgets.iter_mut().find(|b| b.budget_id == budget_id) {
                    Some(b) => b.amount = amount,
                    None => self.budgets.push(Budget { budget_id, scope, month, currency, amount }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn company() -> Id {
        Id::from_u128(100)
    }

    fn department() -> UnitPath {
        UnitPath {
            unit_id: Id::from_u128(4),
            company: company(),
            region: Some(Id::from_u128(2)),
            branch: Some(Id::from_u128(3)),
            department: Some(Id::from_u128(4)),
            cost_centre: None,
        }
    }

    fn cfo() -> Actor {
        Actor::new(Id::nil(), [Role::Cfo]).in_unit(UnitPath::child(company(), UnitKind::Company, None))
    }

    fn set(amount: &str, budget_id: u128) -> BudgetCommand {
        BudgetCommand::Set {
            budget_id: Id::from_u128(budget_id),
            scope: BudgetScope { kind: ScopeKind::Department, unit_id: Id::from_u128(4) },
            unit_kind: UnitKind::Department,
            unit: department(),
            month: "2026-12".into(),
            currency: "kes".into(),
            amount: d(amount),
            actor: cfo(),
        }
    }

    fn was_set(amount: &str, budget_id: u128) -> BudgetEvent {
        BudgetEvent::BudgetSet {
            budget_id: Id::from_u128(budget_id),
            company: Some(company()),
            scope: BudgetScope { kind: ScopeKind::Department, unit_id: Id::from_u128(4) },
            month: Month { year: 2026, month: 12 },
            currency: Currency::parse("KES").unwrap(),
            amount: d(amount),
            set_by: Id::nil(),
        }
    }

    #[test]
    fn the_cfo_sets_a_department_budget_for_a_month() {
        TestFramework::<BudgetPlan>::with(())
            .given_no_previous_events()
            .when(set("1000", 1))
            .then_expect_events(vec![was_set("1000.00", 1)]);
    }

    #[test]
    fn setting_the_same_scope_month_and_currency_again_keeps_the_budget() {
        TestFramework::<BudgetPlan>::with(())
            .given(vec![was_set("1000.00", 1)])
            .when(set("1500", 2))
            .then_expect_events(vec![was_set("1500.00", 1)]);
    }

    #[test]
    fn staff_set_no_budgets_and_a_unit_must_be_of_the_scope_kind() {
        let BudgetCommand::Set { scope, unit, month, currency, amount, budget_id, .. } = set("1", 1);
        let staff = BudgetCommand::Set {
            budget_id,
            scope,
            unit_kind: UnitKind::Department,
            unit,
            month: month.clone(),
            currency: currency.clone(),
            amount,
            actor: Actor::new(Id::nil(), [Role::Staff]).in_unit(Some(department())),
        };
        TestFramework::<BudgetPlan>::with(())
            .given_no_previous_events()
            .when(staff)
            .then_expect_error(DomainError::MissingRole { required: Role::Cfo });
        let wrong_kind = BudgetCommand::Set {
            budget_id,
            scope,
            unit_kind: UnitKind::Branch,
            unit,
            month,
            currency,
            amount,
            actor: cfo(),
        };
        let result = TestFramework::<BudgetPlan>::with(())
            .given_no_previous_events()
            .when(wrong_kind)
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: "scope_id", .. })));
    }

    #[test]
    fn a_month_is_written_yyyy_mm() {
        assert_eq!(Month::parse("2026-02").unwrap(), Month { year: 2026, month: 2 });
        for bad in ["2026-13", "2026-2", "26-02", "2026/02", "", "2026-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let (from, to) = Month { year: 2026, month: 12 }.range();
        assert_eq!(
            (from.to_rfc3339(), to.to_rfc3339()),
            ("2026-12-01T00:00:00+00:00".into(), "2027-01-01T00:00:00+00:00".into())
        );
        assert_eq!(serde_json::to_value(Month { year: 2026, month: 3 }).unwrap(), "2026-03");
    }

    #[test]
    fn budgets_cover_by_chosen_cost_centre_else_by_the_requisitions_unit() {
        let budget = |kind, unit| Budget {
            budget_id: Id::nil(),
            scope: BudgetScope { kind, unit_id: Id::from_u128(unit) },
            month: Month { year: 2026, month: 12 },
            currency: Currency::parse("KES").unwrap(),
            amount: d("100"),
        };
        let in_cc = UnitPath { cost_centre: Some(Id::from_u128(5)), ..department() };
        assert!(budget(ScopeKind::Department, 4).covers(None, Some(&department())));
        assert!(budget(ScopeKind::Branch, 3).covers(None, Some(&department())));
        assert!(!budget(ScopeKind::Branch, 9).covers(None, Some(&department())));
        assert!(budget(ScopeKind::CostCentre, 5).covers(None, Some(&in_cc)));
        assert!(budget(ScopeKind::CostCentre, 6).covers(Some(Id::from_u128(6)), Some(&in_cc)), "chosen");
        assert!(!budget(ScopeKind::CostCentre, 5).covers(Some(Id::from_u128(6)), Some(&in_cc)));
        assert!(!budget(ScopeKind::Department, 4).covers(None, None), "unscoped");
        // consumed + amount > budget: exactly the budget is not an overrun.
        let b = budget(ScopeKind::Department, 4);
        assert!(overruns(&[(b.clone(), d("60"))], d("40")).is_empty());
        let over = overruns(&[(b, d("60"))], d("40.01"));
        assert_eq!((over[0].budget, over[0].consumed, over[0].amount), (d("100"), d("60"), d("40.01")));
    }
}
