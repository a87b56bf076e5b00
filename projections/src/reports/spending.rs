//! `spending`: what was *paid* in the period (the payment's time in `[from, to)`, the amount
//! paid), per calendar month (UTC) of payment, by category, cost centre, department, branch
//! and requester: one section per dimension, each row a month, a name and a currency, with
//! the count and the sum. Paid means what budgets count (`rm_budget_spend`, issue #14): the
//! cost centre is the one the spending is *charged* to (the one chosen, else the one it was
//! created in), so this report and budget against actual add up to the same figures.
//! Visibility: the requisitions the caller may see (`RequisitionScope`; a requester: their
//! own).

use super::budget_vs_actual::months;
use super::units::{self, push_company, Labels};
use super::{ReportContext, ReportError};
use crate::queries::push_scope;
use chrono::{DateTime, Utc};
use pettycash_domain::budget::Month;
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section, UnitFilter,
};
use pettycash_domain::Id;
use rust_decimal::Decimal;
use sqlx::{PgPool, QueryBuilder};
use std::collections::BTreeMap;

/// Payments of one month, currency and combination of the dimensions (the read model groups
/// in SQL; the replay groups the folded requisitions the same way).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct Group {
    /// `YYYY-MM`.
    pub month: String,
    pub currency: String,
    pub category_id: Option<Id>,
    pub cost_centre_id: Option<Id>,
    pub department_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub requester_id: Id,
    pub count: i64,
    pub amount: Decimal,
}

/// A group with the names printed for its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub group: Group,
    pub category: Option<String>,
    pub cost_centre: Option<String>,
    pub department: Option<String>,
    pub branch: Option<String>,
    /// "Name <email>".
    pub requester: String,
}

/// The dimensions, one section each: key, title, the column's title, the fact's name.
type Dimension = (&'static str, &'static str, &'static str, fn(&Fact) -> Option<String>);
const DIMENSIONS: [Dimension; 5] = [
    ("by_category", "By category", "Category", |f| f.category.clone()),
    ("by_cost_centre", "By cost centre", "Cost centre", |f| f.cost_centre.clone()),
    ("by_department", "By department", "Department", |f| f.department.clone()),
    ("by_branch", "By branch", "Branch", |f| f.branch.clone()),
    ("by_requester", "By requester", "Requester", |f| Some(f.requester.clone())),
];

/// What a row without the dimension prints (no category chosen, an unscoped requisition).
const NONE: &str = "(none)";

/// The groups with their names (read for the ids they hold).
async fn named(pool: &PgPool, company: Option<Id>, groups: Vec<Group>) -> Result<Vec<Fact>, ReportError> {
    let users: Vec<Id> = groups.iter().map(|g| g.requester_id).collect();
    let units: Vec<Id> =
        groups.iter().flat_map(|g| [g.cost_centre_id, g.department_id, g.branch_id]).flatten().collect();
    let labels = Labels::load(pool, company, &users, &units).await?;
    Ok(groups
        .into_iter()
        .map(|g| {
            let (name, email) = labels.user(g.requester_id);
            Fact {
                category: labels.category(g.category_id),
                cost_centre: labels.unit(g.cost_centre_id),
                department: labels.unit(g.department_id),
                branch: labels.unit(g.branch_id),
                requester: format!("{name} <{email}>"),
                group: g,
            }
        })
        .collect())
}

pub async fn facts(ctx: &ReportContext) -> Result<Vec<Fact>, ReportError> {
    let (scope, params) = (&ctx.scope, &ctx.params);
    let mut qb = QueryBuilder::new(
        "SELECT s.paid_month AS month, s.currency, s.category_id, s.cost_centre_id, s.department_id, \
         s.branch_id, r.requester_id, count(*)::bigint AS count, sum(s.paid_amount) AS amount \
         FROM rm_budget_spend s JOIN (SELECT id, requester_id FROM rm_requisitions WHERE true",
    );
    if scope.own_only {
        qb.push(" AND requester_id = ").push_bind(scope.requisitions.user_id);
    } else {
        push_scope(&mut qb, &scope.requisitions);
    }
    // The requisition's path for everything but the cost centre, which is the charged one.
    let path = UnitFilter { cost_centre_id: None, ..params.units };
    units::push_units(&mut qb, &path, "", "cost_centre_id");
    // The month and company are what `rm_budget_spend`'s index holds (the period's bounds
    // decide; these only let the index find the rows).
    qb.push(") r ON r.id = s.id WHERE s.paid_month = ANY(")
        .push_bind(months(params).iter().map(Month::to_string).collect::<Vec<_>>())
        .push(")");
    if !scope.own_only {
        push_company(&mut qb, "s.company_id", scope.company);
    }
    qb.push(" AND s.paid_at >= ").push_bind(params.from).push(" AND s.paid_at < ").push_bind(params.to);
    if let Some(cc) = params.units.cost_centre_id {
        qb.push(" AND s.cost_centre_id = ").push_bind(cc);
    }
    qb.push(" GROUP BY 1, 2, 3, 4, 5, 6, 7");
    let groups = qb.build_query_as::<Group>().fetch_all(&ctx.pool).await?;
    named(&ctx.pool, scope.company, groups).await
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let filters = units::check_filters(&ctx.pool, &ctx.scope, &ctx.params.units).await?;
    Ok(build(&ctx.params, filters, facts(ctx).await?, ctx.now))
}

/// The same groups from the events (an auditor's view of `scope.company`).
pub async fn replay_facts(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
) -> Result<Vec<Fact>, ReportError> {
    let all = units::fold_requisitions(pool, scope).await?;
    let mut groups: BTreeMap<Group, (i64, Decimal)> = BTreeMap::new();
    for f in all.values().filter(|f| f.placed(true).admitted_by(&params.units)) {
        let Some(s) = &f.spend else { continue };
        let (Some(amount), Some(at)) = (s.paid_amount, s.paid_at) else { continue };
        if at < params.from || at >= params.to {
            continue;
        }
        let key = Group {
            month: Month::of(at).to_string(),
            currency: s.currency.clone(),
            category_id: s.category_id,
            cost_centre_id: s.cost_centre_id,
            department_id: s.department_id,
            branch_id: s.branch_id,
            requester_id: f.state.requester_id.unwrap_or_default(),
            count: 0,
            amount: Decimal::ZERO,
        };
        let e = groups.entry(key).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    let groups = groups.into_iter().map(|(g, (count, amount))| Group { count, amount, ..g }).collect();
    named(pool, scope.company, groups).await
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

/// The sections (rows by month, name, currency) and per currency the total paid and the
/// number of payments.
pub fn build(
    params: &ReportParams,
    filters: Vec<(String, String)>,
    facts: Vec<Fact>,
    now: DateTime<Utc>,
) -> Report {
    let mut sections = Vec::new();
    for (key, title, column, name) in DIMENSIONS {
        let mut rows: BTreeMap<(String, String, String), (i64, Decimal)> = BTreeMap::new();
        for f in &facts {
            let g = &f.group;
            let label = name(f).unwrap_or_else(|| NONE.to_string());
            let e = rows.entry((g.month.clone(), label, g.currency.clone())).or_default();
            e.0 += g.count;
            e.1 += g.amount;
        }
        sections.push(Section {
            key,
            title: title.to_string(),
            columns: vec![
                Column::new("month", "Month", CellKind::Text),
                Column::new("name", column, CellKind::Text),
                Column::new("currency", "Currency", CellKind::Text),
                Column::new("payments", "Payments", CellKind::Integer),
                Column::new("amount", "Paid", CellKind::Money),
            ],
            rows: rows
                .into_iter()
                .map(|((month, label, currency), (count, amount))| {
                    vec![
                        Cell::Text(month),
                        Cell::Text(label),
                        Cell::Text(currency),
                        Cell::Integer(count),
                        Cell::Money(amount),
                    ]
                })
                .collect(),
        });
    }
    let mut totals: BTreeMap<&str, (i64, Decimal)> = BTreeMap::new();
    for f in &facts {
        let e = totals.entry(&f.group.currency).or_default();
        e.0 += f.group.count;
        e.1 += f.group.amount;
    }
    let mut summary = Vec::new();
    for (currency, (count, amount)) in totals {
        let figure = |key: &str, title: &str, value| Figure::in_currency(currency, key, title, value);
        summary.push(figure("payments", "Payments", Cell::Integer(count)));
        summary.push(figure("paid", "Total paid", Cell::Money(amount)));
    }
    Report {
        name: ReportName::Spending,
        title: ReportName::Spending.title().to_string(),
        params: params.clone(),
        filters,
        summary,
        sections,
        generated_at: now,
    }
}
