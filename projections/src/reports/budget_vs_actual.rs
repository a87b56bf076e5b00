//! `budget-vs-actual`: every budget of the caller's company for a month that overlaps the
//! period, per cost centre, department and branch (one section each), with the actual,
//! variance (budget − actual: negative when over) and the percentage used (actual ÷ budget).
//!
//! "Actual" is what the budgets read model calls consumption (issue #14, `rm_budget_spend`,
//! the command service's `consumed`): the amounts *paid* in the budget's month (UTC), in its
//! currency, by requisitions of its company charged to its unit (a cost centre: the one
//! chosen, else the one it was created in; a department or branch: the requisition's path).
//! Approved but unpaid requisitions consume nothing. Readers: finance (`ReportName::readers`);
//! a budget is company-wide, so no requisition visibility narrows it.
//!
//! The budgets are the company's plan (`budget_plan` stream, folded: a small stream) in both
//! paths; the actuals come from the read model, or in the replay from the requisitions'
//! events folded by the same `SpendRow::fold` as the read model.

use super::units::{self, push_company};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Utc};
use pettycash_domain::budget::{plan_id, BudgetPlan, Month, ScopeKind};
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use pettycash_domain::Id;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{PgPool, QueryBuilder};
use std::collections::BTreeMap;

/// One budget line.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetFact {
    pub month: Month,
    pub kind: ScopeKind,
    pub unit_id: Id,
    /// "CODE — Name".
    pub unit: String,
    pub currency: String,
    pub amount: Decimal,
}

/// Paid amounts of one month, currency and (charged cost centre, department, branch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct Spent {
    pub month: String,
    pub currency: String,
    pub cost_centre_id: Option<Id>,
    pub department_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub budgets: Vec<BudgetFact>,
    pub spent: Vec<Spent>,
}

/// The months (UTC) `[from, to)` touches.
pub fn months(params: &ReportParams) -> Vec<Month> {
    let mut out = Vec::new();
    let mut m = Month::of(params.from);
    while m.range().0 < params.to {
        out.push(m);
        m = Month::of(m.range().1);
    }
    out
}

/// The company's budgets for the period's months whose unit the filters admit.
async fn budgets(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
) -> Result<Vec<BudgetFact>, ReportError> {
    if let Some(field) = params.units.fund_id.map(|_| "fund_id") {
        return Err(ReportError::Invalid {
            field,
            message: "budgets are per cost centre, department or branch, not per fund".into(),
        });
    }
    let plan: BudgetPlan = units::fold(pool, plan_id(scope.company)).await?;
    let months = months(params);
    let wanted: Vec<_> = plan.budgets.into_iter().filter(|b| months.contains(&b.month)).collect();
    let ids: Vec<Id> = wanted.iter().map(|b| b.scope.unit_id).collect();
    // The units' names and paths (reference data, the same for both paths).
    type Unit = (Id, String, String, Id, Option<Id>, Option<Id>, Option<Id>, Option<Id>);
    let rows: Vec<Unit> = sqlx::query_as(
        "SELECT id, code, name, company_id, region_id, branch_id, department_id, cost_centre_id \
         FROM org_units WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let found: BTreeMap<Id, Unit> = rows.into_iter().map(|u| (u.0, u)).collect();
    let mut out = Vec::new();
    for b in wanted {
        let Some((_, code, name, company, region, branch, department, cost_centre)) =
            found.get(&b.scope.unit_id)
        else {
            continue;
        };
        let placed = units::Placed {
            company_id: Some(*company),
            region_id: *region,
            branch_id: *branch,
            department_id: *department,
            cost_centre_id: *cost_centre,
            fund_id: None,
        };
        if !placed.admitted_by(&params.units) {
            continue;
        }
        out.push(BudgetFact {
            month: b.month,
            kind: b.scope.kind,
            unit_id: b.scope.unit_id,
            unit: format!("{code} — {name}"),
            currency: b.currency.code().to_string(),
            amount: b.amount,
        });
    }
    Ok(out)
}

pub async fn facts(ctx: &ReportContext) -> Result<Facts, ReportError> {
    let budgets = budgets(&ctx.pool, &ctx.scope, &ctx.params).await?;
    let months: Vec<String> = months(&ctx.params).iter().map(Month::to_string).collect();
    let mut qb = QueryBuilder::new(
        "SELECT paid_month AS month, currency, cost_centre_id, department_id, branch_id, \
         sum(paid_amount) AS amount FROM rm_budget_spend WHERE paid_month = ANY(",
    );
    qb.push_bind(months).push(")");
    push_company(&mut qb, "company_id", ctx.scope.company);
    qb.push(" GROUP BY 1, 2, 3, 4, 5");
    let spent = qb.build_query_as::<Spent>().fetch_all(&ctx.pool).await?;
    Ok(Facts { budgets, spent })
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let filters = units::check_filters(&ctx.pool, &ctx.scope, &ctx.params.units).await?;
    Ok(build(&ctx.params, filters, facts(ctx).await?, ctx.now))
}

/// The same facts from the events: the plan as above, the actuals from every requisition
/// folded.
pub async fn replay_facts(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
) -> Result<Facts, ReportError> {
    let budgets = budgets(pool, scope, params).await?;
    let months: Vec<String> = months(params).iter().map(Month::to_string).collect();
    let mut spent: BTreeMap<Spent, Decimal> = BTreeMap::new();
    // Budgets consume the whole company's spending, whoever may read the requisitions.
    let mut company_wide = scope.clone();
    company_wide.own_only = false;
    company_wide.requisitions.company = scope.company;
    company_wide.requisitions.everything = true;
    for f in units::fold_requisitions(pool, &company_wide).await?.values() {
        let Some(s) = &f.spend else { continue };
        let (Some(amount), Some(month)) = (s.paid_amount, s.paid_month.as_ref()) else { continue };
        if !months.contains(month) {
            continue;
        }
        let key = Spent {
            month: month.clone(),
            currency: s.currency.clone(),
            cost_centre_id: s.cost_centre_id,
            department_id: s.department_id,
            branch_id: s.branch_id,
            amount: Decimal::ZERO,
        };
        *spent.entry(key).or_default() += amount;
    }
    let spent = spent.into_iter().map(|(k, amount)| Spent { amount, ..k }).collect();
    Ok(Facts { budgets, spent })
}

pub async fn replay(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let filters = units::check_filters(pool, scope, &params.units).await?;
    Ok(build(params, filters, replay_facts(pool, scope, params).await?, now))
}

/// What `b` consumed: the sum over the spending of its month and currency charged to its unit.
pub fn actual(b: &BudgetFact, spent: &[Spent]) -> Decimal {
    let month = b.month.to_string();
    spent
        .iter()
        .filter(|s| s.month == month && s.currency == b.currency)
        .filter(|s| {
            Some(b.unit_id)
                == match b.kind {
                    ScopeKind::CostCentre => s.cost_centre_id,
                    ScopeKind::Department => s.department_id,
                    ScopeKind::Branch => s.branch_id,
                }
        })
        .map(|s| s.amount)
        .sum()
}

/// `part` as a percentage of `whole`, one decimal (half away from zero); `None` for a budget
/// of zero.
pub fn percent(part: Decimal, whole: Decimal) -> Option<Decimal> {
    (!whole.is_zero()).then(|| {
        (part * Decimal::ONE_HUNDRED / whole)
            .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    })
}

pub fn build(
    params: &ReportParams,
    filters: Vec<(String, String)>,
    facts: Facts,
    now: DateTime<Utc>,
) -> Report {
    let columns = vec![
        Column::new("month", "Month", CellKind::Text),
        Column::new("unit", "Unit", CellKind::Text),
        Column::new("currency", "Currency", CellKind::Text),
        Column::new("budget", "Budget", CellKind::Money),
        Column::new("actual", "Actual", CellKind::Money),
        Column::new("variance", "Variance", CellKind::Money),
        Column::new("percent", "Used %", CellKind::Percent),
    ];
    let mut lines: Vec<(&BudgetFact, Decimal)> =
        facts.budgets.iter().map(|b| (b, actual(b, &facts.spent))).collect();
    lines.sort_by(|(a, _), (b, _)| (a.month, &a.unit, &a.currency).cmp(&(b.month, &b.unit, &b.currency)));
    let mut sections = Vec::new();
    for (kind, key, title) in [
        (ScopeKind::CostCentre, "cost_centres", "Per cost centre"),
        (ScopeKind::Department, "departments", "Per department"),
        (ScopeKind::Branch, "branches", "Per branch"),
    ] {
        let rows = lines
            .iter()
            .filter(|(b, _)| b.kind == kind)
            .map(|(b, actual)| {
                vec![
                    Cell::Text(b.month.to_string()),
                    Cell::Text(b.unit.clone()),
                    Cell::Text(b.currency.clone()),
                    Cell::Money(b.amount),
                    Cell::Money(*actual),
                    Cell::Money(b.amount - actual),
                    percent(*actual, b.amount).map_or(Cell::Empty, Cell::Percent),
                ]
            })
            .collect();
        sections.push(Section { key, title: title.to_string(), columns: columns.clone(), rows });
    }
    let mut per_currency: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (b, actual) in &lines {
        let e = per_currency.entry(&b.currency).or_default();
        e.0 += 1;
        e.1 += i64::from(*actual > b.amount);
    }
    let mut summary = Vec::new();
    for (currency, (count, over)) in per_currency {
        let figure = |key: &str, title: &str, value| Figure::in_currency(currency, key, title, value);
        summary.push(figure("budgets", "Budgets", Cell::Integer(count)));
        summary.push(figure("over_budget", "Over budget", Cell::Integer(over)));
    }
    Report {
        name: ReportName::BudgetVsActual,
        title: ReportName::BudgetVsActual.title().to_string(),
        params: params.clone(),
        filters,
        summary,
        sections,
        generated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn actual_is_what_was_paid_in_the_month_and_currency_charged_to_the_unit() {
        let (cc, dep, other) = (Id::from_u128(1), Id::from_u128(2), Id::from_u128(3));
        let month = Month::parse("2026-03").unwrap();
        let spent = |m: &str, c: &str, cost_centre, amount: &str| Spent {
            month: m.into(),
            currency: c.into(),
            cost_centre_id: cost_centre,
            department_id: Some(dep),
            branch_id: None,
            amount: amount.parse().unwrap(),
        };
        let spent = vec![
            spent("2026-03", "KES", Some(cc), "100"),
            spent("2026-03", "KES", Some(other), "40"),
            spent("2026-03", "USD", Some(cc), "7"),
            spent("2026-02", "KES", Some(cc), "1000"),
        ];
        let budget = |kind, unit_id| BudgetFact {
            month,
            kind,
            unit_id,
            unit: "U".into(),
            currency: "KES".into(),
            amount: Decimal::from(120),
        };
        assert_eq!(actual(&budget(ScopeKind::CostCentre, cc), &spent), Decimal::from(100));
        assert_eq!(actual(&budget(ScopeKind::Department, dep), &spent), Decimal::from(140));
        assert_eq!(actual(&budget(ScopeKind::Branch, dep), &spent), Decimal::ZERO);
        assert_eq!(percent(Decimal::from(140), Decimal::from(120)), Some("116.7".parse().unwrap()));
        assert_eq!(percent(Decimal::ONE, Decimal::ZERO), None);
    }

    #[test]
    fn the_period_touches_its_months() {
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        let params =
            |from, to| ReportParams { from, to, units: Default::default(), stuck_days: 7, lookback_days: 30 };
        let names = |p| months(&p).iter().map(Month::to_string).collect::<Vec<_>>();
        assert_eq!(names(params(at(2026, 1, 20), at(2026, 3, 1))), ["2026-01", "2026-02"]);
        assert_eq!(names(params(at(2025, 12, 31), at(2026, 1, 2))), ["2025-12", "2026-01"]);
    }
}
