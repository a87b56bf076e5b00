//! The treasury report: each fund's health now (balance against float, reorder level and
//! minimum balance, and its status by the domain's one rule, `fund::FundStatus`); the
//! replenishments requested, approved and funded in the period; the cash counts of the period
//! with their variance and where it stands; and the advances outstanding at generation time,
//! by age since they were paid (0–7, 8–30, 31–60, more than 60 days).
//!
//! Its facts are folds of the fund and advance events ([`FundFacts::fold`],
//! [`AdvanceFacts::fold`]), kept per fund and per advance by the `report_facts` projection
//! and folded from the events in order by the replay: the balance is `fund::CashBook`'s.

use super::facts;
use super::{ReportContext, ReportError};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use pettycash_domain::advance::AdvanceEvent;
use pettycash_domain::fund::{CashBook, FundEvent, FundStatus, VarianceStatus};
use pettycash_domain::organisation::UnitPath;
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section, UnitFilter,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// One replenishment request and when it moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replenishment {
    pub id: Uuid,
    pub amount: Decimal,
    pub requested_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub funded_at: Option<DateTime<Utc>>,
}

/// One cash count and its variance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub id: Uuid,
    pub counted_at: DateTime<Utc>,
    pub book_balance: Decimal,
    pub counted: Decimal,
    pub variance: Decimal,
    pub status: VarianceStatus,
}

/// One fund as the treasury report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundFacts {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub unit: Option<UnitPath>,
    pub float: Decimal,
    pub balance: Decimal,
    pub reorder_level: Option<Decimal>,
    pub minimum_balance: Decimal,
    pub closed: bool,
    pub replenishments: Vec<Replenishment>,
    pub counts: Vec<Count>,
}

impl FundFacts {
    /// Applies one fund event recorded at `at`; `FundOpened` makes the value.
    pub fn fold(facts: Option<Self>, event: &FundEvent, at: DateTime<Utc>) -> Option<Self> {
        use FundEvent as E;
        let mut f = match (facts, event) {
            (
                _,
                E::FundOpened {
                    fund_id, name, currency, float, unit, reorder_level, minimum_balance, ..
                },
            ) => FundFacts {
                id: *fund_id,
                name: name.clone(),
                currency: currency.code().to_string(),
                unit: *unit,
                float: *float,
                balance: *float,
                reorder_level: *reorder_level,
                minimum_balance: minimum_balance.unwrap_or_default(),
                closed: false,
                replenishments: Vec::new(),
                counts: Vec::new(),
            },
            (None, _) => return None,
            (Some(f), _) => f,
        };
        let mut book = CashBook::at(f.balance);
        if let Ok(Some(_)) = book.record(event) {
            f.balance = book.balance;
        }
        match event {
            E::FundSettingsChanged { reorder_level, minimum_balance, .. } => {
                f.reorder_level = *reorder_level;
                f.minimum_balance = *minimum_balance;
            }
            E::ReplenishmentRequested { replenishment_id, amount, .. } => {
                f.replenishments.push(Replenishment {
                    id: *replenishment_id,
                    amount: *amount,
                    requested_at: at,
                    approved_at: None,
                    rejected_at: None,
                    funded_at: None,
                })
            }
            E::ReplenishmentApproved { replenishment_id, .. } => {
                if let Some(r) = f.replenishments.iter_mut().find(|r| r.id == *replenishment_id) {
                    r.approved_at = Some(at);
                }
            }
            E::ReplenishmentRejected { replenishment_id, .. } => {
                if let Some(r) = f.replenishments.iter_mut().find(|r| r.id == *replenishment_id) {
                    r.rejected_at = Some(at);
                }
            }
            E::ReplenishmentFunded { replenishment_id, amount, .. } => {
                if let Some(r) = f.replenishments.iter_mut().find(|r| r.id == *replenishment_id) {
                    r.funded_at = Some(at);
                    r.amount = *amount;
                }
            }
            E::CashCounted { count_id, counted, book_balance, variance, .. } => f.counts.push(Count {
                id: *count_id,
                counted_at: at,
                book_balance: *book_balance,
                counted: *counted,
                variance: *variance,
                status: if variance.is_zero() { VarianceStatus::Matched } else { VarianceStatus::Pending },
            }),
            E::VarianceAdjusted { count_id, .. } => {
                if let Some(c) = f.counts.iter_mut().find(|c| c.id == *count_id) {
                    c.status = VarianceStatus::Adjusted;
                }
            }
            E::VarianceRejected { count_id, .. } => {
                if let Some(c) = f.counts.iter_mut().find(|c| c.id == *count_id) {
                    c.status = VarianceStatus::Rejected;
                }
            }
            E::FundClosed { .. } => f.closed = true,
            _ => {}
        }
        Some(f)
    }

    fn matches(&self, units: &UnitFilter) -> bool {
        let is = |want: Option<Uuid>, have: Option<Uuid>| want.is_none() || want == have;
        let u = self.unit.as_ref();
        is(units.company_id, u.map(|u| u.company))
            && is(units.region_id, u.and_then(|u| u.region))
            && is(units.branch_id, u.and_then(|u| u.branch))
            && is(units.department_id, u.and_then(|u| u.department))
            && is(units.cost_centre_id, u.and_then(|u| u.cost_centre))
            && is(units.fund_id, Some(self.id))
    }
}

/// One advance: how much is left to settle, and since when it is out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceFacts {
    pub requisition_id: Uuid,
    pub holder_id: Uuid,
    pub fund_id: Uuid,
    pub currency: String,
    pub amount: Decimal,
    /// What remains to settle (0 before it is paid).
    pub outstanding: Decimal,
    pub paid_at: Option<DateTime<Utc>>,
}

impl AdvanceFacts {
    /// Applies one event of an advance account; `AdvanceRequested` makes the value.
    pub fn fold(facts: Option<Self>, event: &AdvanceEvent) -> Option<Self> {
        use AdvanceEvent as E;
        let mut a = match (facts, event) {
            (_, E::AdvanceRequested { holder_id, requisition_id, fund_id, currency, amount }) => {
                AdvanceFacts {
                    requisition_id: *requisition_id,
                    holder_id: *holder_id,
                    fund_id: *fund_id,
                    currency: currency.code().to_string(),
                    amount: *amount,
                    outstanding: Decimal::ZERO,
                    paid_at: None,
                }
            }
            (None, _) => return None,
            (Some(a), _) => a,
        };
        match event {
            E::AdvanceIssued { paid_at, .. } => {
                a.paid_at = Some(*paid_at);
                a.outstanding = a.amount;
            }
            E::AdvanceSettled { outstanding_after, .. } => a.outstanding = *outstanding_after,
            _ => {}
        }
        Some(a)
    }

    /// The advance event's requisition (advances are keyed by it within an account).
    pub fn key(event: &AdvanceEvent) -> Uuid {
        match event {
            AdvanceEvent::AdvanceRequested { requisition_id, .. }
            | AdvanceEvent::AdvanceIssued { requisition_id, .. }
            | AdvanceEvent::AdvanceSettled { requisition_id, .. }
            | AdvanceEvent::AdvanceOverdue { requisition_id, .. } => *requisition_id,
        }
    }
}

/// What the treasury report is built from.
#[derive(Debug, Clone, Default)]
pub struct TreasuryFacts {
    /// The funds in scope, by id.
    pub funds: Vec<FundFacts>,
    /// Their advances, by requisition id.
    pub advances: Vec<AdvanceFacts>,
    /// The filters as people read them.
    pub filters: Vec<(String, String)>,
}

impl TreasuryFacts {
    fn new(
        mut funds: Vec<FundFacts>,
        advances: Vec<AdvanceFacts>,
        scope: &ReportScope,
        units: &UnitFilter,
    ) -> Self {
        funds.retain(|f| f.unit.map(|u| u.company) == scope.company && f.matches(units));
        funds.sort_by_key(|f| f.id);
        let ids: std::collections::HashSet<Uuid> = funds.iter().map(|f| f.id).collect();
        let mut advances: Vec<AdvanceFacts> =
            advances.into_iter().filter(|a| ids.contains(&a.fund_id)).collect();
        advances.sort_by_key(|a| a.requisition_id);
        Self { funds, advances, filters: Vec::new() }
    }
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let filters = facts::check_units(&ctx.pool, &ctx.scope, &ctx.params.units).await?;
    let funds: Vec<Json<FundFacts>> =
        sqlx::query_scalar("SELECT facts FROM rm_report_funds WHERE company_id IS NOT DISTINCT FROM $1")
            .bind(ctx.scope.company)
            .fetch_all(&ctx.pool)
            .await?;
    let advances: Vec<Json<AdvanceFacts>> = sqlx::query_scalar(
        "SELECT a.facts FROM rm_report_advances a JOIN rm_report_funds f ON f.id = a.fund_id
         WHERE f.company_id IS NOT DISTINCT FROM $1",
    )
    .bind(ctx.scope.company)
    .fetch_all(&ctx.pool)
    .await?;
    let facts = TreasuryFacts {
        filters,
        ..TreasuryFacts::new(
            funds.into_iter().map(|j| j.0).collect(),
            advances.into_iter().map(|j| j.0).collect(),
            &ctx.scope,
            &ctx.params.units,
        )
    };
    Ok(build(&ctx.params, &facts, ctx.now))
}

pub async fn replay(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let filters = facts::check_units(pool, scope, &params.units).await?;
    let read =
        crate::reader::in_order(&crate::reader::Selection::events(), crate::reader::Filter::Everything);
    let mut events = read.fetch::<crate::EventRow>(pool);
    let mut funds: HashMap<Uuid, FundFacts> = HashMap::new();
    let mut advances: HashMap<Uuid, AdvanceFacts> = HashMap::new();
    while let Some(e) = events.try_next().await? {
        match e.aggregate_type.as_str() {
            "fund" => {
                let event: FundEvent = e.decode()?;
                let id: Uuid = e.aggregate_id.parse().map_err(anyhow::Error::from)?;
                if let Some(f) = FundFacts::fold(funds.remove(&id), &event, e.recorded_at) {
                    funds.insert(id, f);
                }
            }
            "advance_account" => {
                let event: AdvanceEvent = e.decode()?;
                let key = AdvanceFacts::key(&event);
                if let Some(a) = AdvanceFacts::fold(advances.remove(&key), &event) {
                    advances.insert(key, a);
                }
            }
            _ => {}
        }
    }
    let facts = TreasuryFacts {
        filters,
        ..TreasuryFacts::new(
            funds.into_values().collect(),
            advances.into_values().collect(),
            scope,
            &params.units,
        )
    };
    Ok(build(params, &facts, now))
}

const FUNDS: [Column; 8] = [
    Column::new("fund", "Fund", CellKind::Text),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("balance", "Balance", CellKind::Money),
    Column::new("float", "Float", CellKind::Money),
    Column::new("reorder_level", "Reorder level", CellKind::Money),
    Column::new("minimum_balance", "Minimum balance", CellKind::Money),
    Column::new("balance_of_float", "Balance of float", CellKind::Percent),
    Column::new("status", "Status", CellKind::Text),
];

const REPLENISHMENTS: [Column; 7] = [
    Column::new("fund", "Fund", CellKind::Text),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("amount", "Amount", CellKind::Money),
    Column::new("requested_at", "Requested", CellKind::DateTime),
    Column::new("approved_at", "Approved", CellKind::DateTime),
    Column::new("funded_at", "Funded", CellKind::DateTime),
    Column::new("status", "Status", CellKind::Text),
];

const COUNTS: [Column; 7] = [
    Column::new("fund", "Fund", CellKind::Text),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("counted_at", "Counted", CellKind::DateTime),
    Column::new("book_balance", "Book balance", CellKind::Money),
    Column::new("counted", "Counted", CellKind::Money),
    Column::new("variance", "Variance", CellKind::Money),
    Column::new("status", "Status", CellKind::Text),
];

const ADVANCES: [Column; 4] = [
    Column::new("age", "Days since paid", CellKind::Text),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("count", "Advances", CellKind::Integer),
    Column::new("outstanding", "Outstanding", CellKind::Money),
];

/// The aging buckets, in days since an advance was paid.
pub const BUCKETS: [(&str, i64, i64); 4] =
    [("0-7", 0, 7), ("8-30", 8, 30), ("31-60", 31, 60), ("> 60", 61, i64::MAX)];

/// The bucket of an advance paid `days` ago.
pub fn bucket(days: i64) -> &'static str {
    BUCKETS.iter().find(|(_, lo, hi)| days >= *lo && days <= *hi).map_or(BUCKETS[0].0, |(b, ..)| b)
}

/// The report from its facts (pure; shared by the read models and the replay).
pub fn build(params: &ReportParams, facts: &TreasuryFacts, now: DateTime<Utc>) -> Report {
    let within = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= params.from && t < params.to);
    let money = |m: Option<Decimal>| m.map_or(Cell::Empty, Cell::Money);
    let at = |t: Option<DateTime<Utc>>| t.map_or(Cell::Empty, Cell::DateTime);
    let mut statuses = [0i64; 3];
    let mut fund_rows = Vec::new();
    let (mut requested, mut approved, mut funded) = (0i64, 0i64, 0i64);
    let mut funded_amount: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut replenishments = Vec::new();
    let mut counts = Vec::new();
    let (mut counted, mut with_variance, mut pending) = (0i64, 0i64, 0i64);
    let mut sorted: Vec<&FundFacts> = facts.funds.iter().filter(|f| !f.closed).collect();
    sorted.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    for f in sorted {
        let status = FundStatus::of(f.balance, f.reorder_level, f.minimum_balance);
        statuses[match status {
            FundStatus::Ok => 0,
            FundStatus::Warning => 1,
            FundStatus::Critical => 2,
        }] += 1;
        let of_float = if f.float.is_zero() {
            Cell::Empty
        } else {
            Cell::Percent((f.balance * Decimal::from(100) / f.float).round_dp(1))
        };
        fund_rows.push(vec![
            Cell::Text(f.name.clone()),
            Cell::Text(f.currency.clone()),
            Cell::Money(f.balance),
            Cell::Money(f.float),
            money(f.reorder_level),
            Cell::Money(f.minimum_balance),
            of_float,
            Cell::Text(status.as_str().into()),
        ]);
    }
    for f in &facts.funds {
        for r in &f.replenishments {
            let moved = [Some(r.requested_at), r.approved_at, r.funded_at, r.rejected_at];
            if !moved.iter().any(|t| within(*t)) {
                continue;
            }
            requested += i64::from(within(Some(r.requested_at)));
            approved += i64::from(within(r.approved_at));
            if within(r.funded_at) {
                funded += 1;
                *funded_amount.entry(f.currency.clone()).or_default() += r.amount;
            }
            let status = if r.funded_at.is_some() {
                "funded"
            } else if r.rejected_at.is_some() {
                "rejected"
            } else if r.approved_at.is_some() {
                "approved"
            } else {
                "requested"
            };
            replenishments.push((
                r.requested_at,
                r.id,
                vec![
                    Cell::Text(f.name.clone()),
                    Cell::Text(f.currency.clone()),
                    Cell::Money(r.amount),
                    Cell::DateTime(r.requested_at),
                    at(r.approved_at),
                    at(r.funded_at),
                    Cell::Text(status.into()),
                ],
            ));
        }
        for c in f.counts.iter().filter(|c| within(Some(c.counted_at))) {
            counted += 1;
            with_variance += i64::from(!c.variance.is_zero());
            pending += i64::from(c.status == VarianceStatus::Pending);
            counts.push((
                c.counted_at,
                c.id,
                vec![
                    Cell::Text(f.name.clone()),
                    Cell::Text(f.currency.clone()),
                    Cell::DateTime(c.counted_at),
                    Cell::Money(c.book_balance),
                    Cell::Money(c.counted),
                    Cell::Money(c.variance),
                    Cell::Text(c.status.as_str().into()),
                ],
            ));
        }
    }
    replenishments.sort_by_key(|(t, id, _)| (*t, *id));
    counts.sort_by_key(|(t, id, _)| (*t, *id));

    let mut aging: BTreeMap<(usize, String), (i64, Decimal)> = BTreeMap::new();
    for a in &facts.advances {
        let Some(paid_at) = a.paid_at else { continue };
        if a.outstanding.is_zero() {
            continue;
        }
        let b = bucket((now - paid_at).num_days());
        let i = BUCKETS.iter().position(|(name, ..)| *name == b).unwrap_or(0);
        let e = aging.entry((i, a.currency.clone())).or_default();
        e.0 += 1;
        e.1 += a.outstanding;
    }
    let mut outstanding: BTreeMap<String, Decimal> = BTreeMap::new();
    let aging_rows = aging
        .into_iter()
        .map(|((i, currency), (n, amount))| {
            *outstanding.entry(currency.clone()).or_default() += amount;
            vec![Cell::Text(BUCKETS[i].0.into()), Cell::Text(currency), Cell::Integer(n), Cell::Money(amount)]
        })
        .collect();

    let int = |key: &str, title: &str, value: i64| Figure::new(key, title, Cell::Integer(value));
    let mut summary = vec![
        int("funds_ok", "Funds OK", statuses[0]),
        int("funds_warning", "Funds below reorder level", statuses[1]),
        int("funds_critical", "Funds critical", statuses[2]),
        int("replenishments_requested", "Replenishments requested", requested),
        int("replenishments_approved", "Replenishments approved", approved),
        int("replenishments_funded", "Replenishments funded", funded),
        int("counts", "Cash counts", counted),
        int("counts_with_variance", "Counts with a variance", with_variance),
        int("variances_pending", "Variances pending", pending),
    ];
    for (c, amount) in funded_amount {
        summary.push(Figure::in_currency(&c, "funded", "Funded", Cell::Money(amount)));
    }
    for (c, amount) in outstanding {
        summary.push(Figure::in_currency(
            &c,
            "advances_outstanding",
            "Advances outstanding",
            Cell::Money(amount),
        ));
    }
    let section = |key, title: &str, columns: &[Column], rows| Section {
        key,
        title: title.into(),
        columns: columns.to_vec(),
        rows,
    };
    let strip = |rows: Vec<(DateTime<Utc>, Uuid, Vec<Cell>)>| rows.into_iter().map(|(_, _, r)| r).collect();
    Report {
        name: ReportName::Treasury,
        title: ReportName::Treasury.title().into(),
        params: params.clone(),
        filters: facts.filters.clone(),
        summary,
        sections: vec![
            section("funds", "Fund health", &FUNDS, fund_rows),
            section("replenishments", "Replenishments", &REPLENISHMENTS, strip(replenishments)),
            section("counts", "Cash counts and variances", &COUNTS, strip(counts)),
            section("advances", "Advances outstanding by age", &ADVANCES, aging_rows),
        ],
        generated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aging_buckets_at_their_edges() {
        let got: Vec<&str> = [0, 7, 8, 30, 31, 60, 61, 400].into_iter().map(bucket).collect();
        assert_eq!(got, ["0-7", "0-7", "8-30", "8-30", "31-60", "31-60", "> 60", "> 60"]);
    }
}
