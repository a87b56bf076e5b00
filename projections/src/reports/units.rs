//! What the requisition reports (`transactions`, `spending`, `budget-vs-actual`) and the
//! `forecast` share: the check of the organisation filters against what the caller may see,
//! the filter as a condition (SQL for the read models, a predicate for the replay), the
//! names printed for ids, and the replay's fold of every requisition from the events.
//!
//! Names (people, units, categories) are labels, not figures: both paths read them from the
//! same place ([`Labels`]), so a replay differs from the read models only where a figure does.

use super::ReportError;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use futures::TryStreamExt;
use pettycash_domain::category::{catalogue_id, Catalogue};
use pettycash_domain::report::{ReportScope, UnitFilter};
use pettycash_domain::requisition::{Requisition, RequisitionEvent};
use pettycash_domain::visibility::RequisitionFacts;
use pettycash_domain::Id;
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

use crate::event::EventRow;
use crate::models::budgets::SpendRow;
use crate::reader::{in_order, Filter, Selection};

/// The unit filters in the order they are printed: field, printed label, `org_units.kind`.
const UNIT_FIELDS: [(&str, &str, &str); 5] = [
    ("company_id", "Company", "company"),
    ("region_id", "Region", "region"),
    ("branch_id", "Branch", "branch"),
    ("department_id", "Department", "department"),
    ("cost_centre_id", "Cost centre", "cost_centre"),
];

/// The filters with their field names, in [`UNIT_FIELDS`] order.
fn unit_ids(units: &UnitFilter) -> [(&'static str, &'static str, &'static str, Option<Id>); 5] {
    let ids = [units.company_id, units.region_id, units.branch_id, units.department_id, units.cost_centre_id];
    let mut out = [("", "", "", None); 5];
    for (i, (field, label, kind)) in UNIT_FIELDS.iter().enumerate() {
        out[i] = (*field, *label, *kind, ids[i]);
    }
    out
}

/// Checks every filter against what the caller may see, and gives the filters as people read
/// them ("Branch", "NBI — Nairobi"). A unit of another company than the caller's (or of
/// another kind than the field says, or none at all; for a caller of no unit, every unit), or a
/// fund the caller's company does not own, is [`ReportError::NotFound`] naming the field, as
/// for any object they may not see: a report's figures never leave the caller's company.
pub async fn check_filters(
    pool: &PgPool,
    scope: &ReportScope,
    units: &UnitFilter,
) -> Result<Vec<(String, String)>, ReportError> {
    let mut printed = Vec::new();
    for (field, label, kind, id) in unit_ids(units) {
        let Some(id) = id else { continue };
        let found: Option<(String, String, Uuid)> =
            sqlx::query_as("SELECT code, name, company_id FROM org_units WHERE id = $1 AND kind = $2")
                .bind(id)
                .bind(kind)
                .fetch_optional(pool)
                .await?;
        match found {
            Some((code, name, company)) if scope.company == Some(company) => {
                printed.push((label.to_string(), format!("{code} — {name}")));
            }
            _ => return Err(ReportError::NotFound { field }),
        }
    }
    if let Some(fund) = units.fund_id {
        let found: Option<(String, Option<Uuid>)> =
            sqlx::query_as("SELECT name, company_id FROM rm_funds WHERE id = $1")
                .bind(fund)
                .fetch_optional(pool)
                .await?;
        match found {
            Some((name, company)) if company == scope.company => {
                printed.push(("Fund".to_string(), name));
            }
            _ => return Err(ReportError::NotFound { field: "fund_id" }),
        }
    }
    Ok(printed)
}

/// Where a requisition (or a payment of one) belongs: what the unit filters look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placed {
    pub company_id: Option<Id>,
    pub region_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub department_id: Option<Id>,
    pub cost_centre_id: Option<Id>,
    pub fund_id: Option<Id>,
}

impl Placed {
    /// Every filter that is set matches (the replay's form of [`push_units`]).
    pub fn admitted_by(&self, f: &UnitFilter) -> bool {
        let ok = |want: Option<Id>, have: Option<Id>| want.is_none() || want == have;
        ok(f.company_id, self.company_id)
            && ok(f.region_id, self.region_id)
            && ok(f.branch_id, self.branch_id)
            && ok(f.department_id, self.department_id)
            && ok(f.cost_centre_id, self.cost_centre_id)
            && ok(f.fund_id, self.fund_id)
    }
}

/// The filters as SQL on a table with the columns `company_id` .. `cost_centre_id` and
/// `fund_id`, `prefix` naming it (`"r."`). `cost_centre` is the column the cost-centre filter
/// reads (the budgets' charged cost centre, or the requisition's unit path).
pub fn push_units(qb: &mut QueryBuilder<'_, Postgres>, f: &UnitFilter, prefix: &str, cost_centre: &str) {
    for (column, id) in [
        ("company_id", f.company_id),
        ("region_id", f.region_id),
        ("branch_id", f.branch_id),
        ("department_id", f.department_id),
        ("fund_id", f.fund_id),
    ] {
        if let Some(id) = id {
            qb.push(format_args!(" AND {prefix}{column} = ")).push_bind(id);
        }
    }
    if let Some(id) = f.cost_centre_id {
        qb.push(format_args!(" AND {cost_centre} = ")).push_bind(id);
    }
}

/// `column` is the scope's company (`IS NULL` for the unscoped organisation).
pub fn push_company(qb: &mut QueryBuilder<'_, Postgres>, column: &str, company: Option<Id>) {
    match company {
        Some(c) => qb.push(format_args!(" AND {column} = ")).push_bind(c),
        None => qb.push(format_args!(" AND {column} IS NULL")),
    };
}

/// The names printed for ids: people, units, a company's categories. Only the ids a report
/// names are read (a report reads a few hundred at most, whatever the size of the store).
#[derive(Debug, Default)]
pub struct Labels {
    /// Id → (name, email).
    pub users: HashMap<Id, (String, String)>,
    /// Id → "CODE — Name".
    pub units: HashMap<Id, String>,
    /// Id → name, from the company's catalogue.
    pub categories: HashMap<Id, String>,
}

impl Labels {
    /// The names of `users` and `units`, and of the categories of `company`'s catalogue.
    pub async fn load(
        pool: &PgPool,
        company: Option<Id>,
        users: &[Id],
        units: &[Id],
    ) -> Result<Self, ReportError> {
        let users = sqlx::query_as::<_, (Uuid, String, String)>(
            "SELECT id, name, email FROM users WHERE id = ANY($1)",
        )
        .bind(users)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, name, email)| (id, (name, email)))
        .collect();
        let units = sqlx::query_as::<_, (Uuid, String, String)>(
            "SELECT id, code, name FROM org_units WHERE id = ANY($1)",
        )
        .bind(units)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, code, name)| (id, format!("{code} — {name}")))
        .collect();
        let catalogue: Catalogue = fold(pool, catalogue_id(company)).await?;
        let categories = catalogue.categories.into_iter().map(|c| (c.id, c.name)).collect();
        Ok(Self { users, units, categories })
    }

    pub fn unit(&self, id: Option<Id>) -> Option<String> {
        id.and_then(|id| self.units.get(&id).cloned())
    }

    pub fn user(&self, id: Id) -> (String, String) {
        self.users.get(&id).cloned().unwrap_or_else(|| (id.to_string(), String::new()))
    }

    pub fn category(&self, id: Option<Id>) -> Option<String> {
        id.and_then(|id| self.categories.get(&id).cloned())
    }
}

/// An aggregate folded from its stream (a catalogue, a budget plan: small streams).
pub async fn fold<A: Aggregate + Default>(pool: &PgPool, id: Id) -> Result<A, ReportError> {
    let read = in_order(
        &Selection::events(),
        Filter::Stream { aggregate_type: A::TYPE.to_string(), id: id.to_string() },
    );
    let mut rows = read.fetch::<EventRow>(pool);
    let mut state = A::default();
    while let Some(e) = rows.try_next().await? {
        if e.aggregate_type == A::TYPE {
            state.apply(e.decode::<A::Event>()?);
        }
    }
    Ok(state)
}

/// One requisition folded from its events: the aggregate, the budgets' row (what was paid,
/// when, and the cost centre it is charged to) and when it was created.
pub struct Folded {
    pub state: Requisition,
    pub spend: Option<SpendRow>,
    pub created_at: DateTime<Utc>,
    /// When its latest payment was recorded.
    pub paid_at: Option<DateTime<Utc>>,
}

impl Folded {
    /// Where it belongs, with the cost centre of its unit path (`charged`: the one it is
    /// charged to, as budgets count it).
    pub fn placed(&self, charged: bool) -> Placed {
        let unit = self.state.unit;
        Placed {
            company_id: unit.map(|u| u.company),
            region_id: unit.and_then(|u| u.region),
            branch_id: unit.and_then(|u| u.branch),
            department_id: unit.and_then(|u| u.department),
            cost_centre_id: if charged {
                self.spend.as_ref().and_then(|s| s.cost_centre_id)
            } else {
                unit.and_then(|u| u.cost_centre)
            },
            fund_id: self.state.fund_id,
        }
    }
}

/// Every requisition `scope` admits (the visibility rule, `RequisitionScope::admits`: for the
/// replay's auditor, every submitted one of the company and their own), folded from the
/// events in the global order: the replay's source for the requisition reports.
pub async fn fold_requisitions(
    pool: &PgPool,
    scope: &ReportScope,
) -> Result<BTreeMap<Id, Folded>, ReportError> {
    let read = in_order(&Selection::events(), Filter::Everything);
    let mut rows = read.fetch::<EventRow>(pool);
    let mut all: BTreeMap<Id, Folded> = BTreeMap::new();
    while let Some(e) = rows.try_next().await? {
        if e.aggregate_type != Requisition::TYPE {
            continue;
        }
        let id: Id = e.aggregate_id.parse().map_err(anyhow::Error::from)?;
        let event: RequisitionEvent = e.decode()?;
        let entry = all.entry(id).or_insert_with(|| Folded {
            state: Requisition::default(),
            spend: None,
            created_at: e.recorded_at,
            paid_at: None,
        });
        if matches!(event, RequisitionEvent::RequisitionPaid { .. }) {
            entry.paid_at = Some(e.recorded_at);
        }
        entry.spend = SpendRow::fold(entry.spend.take(), &event, e.recorded_at, e.global_position);
        entry.state.apply(event);
    }
    all.retain(|_, f| {
        let r = &f.state;
        if scope.own_only {
            return r.requester_id == Some(scope.requisitions.user_id);
        }
        let approvers: Vec<Id> = r.approvals.iter().map(|a| a.approver_id).collect();
        scope.requisitions.admits(&RequisitionFacts { approvers: &approvers, ..r.into() })
    });
    Ok(all)
}
