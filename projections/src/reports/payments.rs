//! The payments report: the payment attempts started in the period by method and status
//! (count and amount per currency), the success rate (succeeded out of settled: an attempt
//! still executing counts for neither), and the time from the (latest) submission to payment
//! of the payments that succeeded (median, 90th percentile and mean, in hours).

use super::facts::{self, Attempt, Facts, RequisitionFacts};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Utc};
use pettycash_domain::payment::ProviderPaymentStatus;
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::collections::BTreeMap;

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let facts = facts::read(&ctx.pool, &ctx.scope, ctx.actor.user_id, &ctx.params).await?;
    Ok(build(&ctx.params, &facts, ctx.now))
}

pub async fn replay(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let facts = facts::replay(pool, scope, params).await?;
    Ok(build(params, &facts, now))
}

const BY_METHOD: [Column; 5] = [
    Column::new("method", "Method", CellKind::Text),
    Column::new("status", "Status", CellKind::Text),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("count", "Count", CellKind::Integer),
    Column::new("amount", "Amount", CellKind::Money),
];

/// The attempts started in the period, with their requisition.
fn attempts<'a>(
    params: &'a ReportParams,
    facts: &'a Facts,
) -> impl Iterator<Item = (&'a RequisitionFacts, &'a Attempt)> {
    facts.requisitions.iter().flat_map(move |r| {
        r.attempts
            .iter()
            .filter(|a| a.started_at >= params.from && a.started_at < params.to)
            .map(move |a| (r, a))
    })
}

/// The report from its facts (pure; shared by the read models and the replay).
pub fn build(params: &ReportParams, facts: &Facts, now: DateTime<Utc>) -> Report {
    let mut groups: BTreeMap<(&'static str, &'static str, String), (i64, Decimal)> = BTreeMap::new();
    let (mut succeeded, mut failed, mut executing) = (0i64, 0i64, 0i64);
    let mut paid: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut hours: Vec<Decimal> = Vec::new();
    for (r, a) in attempts(params, facts) {
        let g = groups.entry((a.method.as_str(), a.status.as_str(), r.currency.clone())).or_default();
        g.0 += 1;
        g.1 += a.amount;
        match a.status {
            ProviderPaymentStatus::Succeeded => {
                succeeded += 1;
                *paid.entry(r.currency.clone()).or_default() += a.amount;
                if let (Some(from), Some(to)) = (a.submitted_at, a.settled_at) {
                    hours.push(facts::hours(from, to));
                }
            }
            ProviderPaymentStatus::Failed => failed += 1,
            ProviderPaymentStatus::Executing => executing += 1,
        }
    }
    let rows = groups
        .into_iter()
        .map(|((method, status, currency), (count, amount))| {
            vec![
                Cell::Text(method.into()),
                Cell::Text(status.into()),
                Cell::Text(currency),
                Cell::Integer(count),
                Cell::Money(amount),
            ]
        })
        .collect();

    let settled = succeeded + failed;
    let success_rate = if settled == 0 {
        Cell::Empty
    } else {
        Cell::Percent((Decimal::from(succeeded * 100) / Decimal::from(settled)).round_dp(1))
    };
    let mean = if hours.is_empty() {
        Cell::Empty
    } else {
        Cell::Number((hours.iter().sum::<Decimal>() / Decimal::from(hours.len())).round_dp(2))
    };
    let (median, p90) = facts::median_p90(&mut hours)
        .map_or((Cell::Empty, Cell::Empty), |(m, p)| (Cell::Number(m), Cell::Number(p)));
    let mut summary = vec![
        Figure::new("attempts", "Payment attempts", Cell::Integer(succeeded + failed + executing)),
        Figure::new("succeeded", "Succeeded", Cell::Integer(succeeded)),
        Figure::new("failed", "Failed", Cell::Integer(failed)),
        Figure::new("executing", "Executing", Cell::Integer(executing)),
        Figure::new("success_rate", "Success rate", success_rate),
        Figure::new("median_hours_to_payment", "Median hours from submission to payment", median),
        Figure::new("p90_hours_to_payment", "90th percentile hours from submission to payment", p90),
        Figure::new("mean_hours_to_payment", "Mean hours from submission to payment", mean),
    ];
    summary.extend(
        paid.into_iter().map(|(c, amount)| Figure::in_currency(&c, "paid", "Paid", Cell::Money(amount))),
    );
    Report {
        name: ReportName::Payments,
        title: ReportName::Payments.title().into(),
        params: params.clone(),
        filters: facts.filters.clone(),
        summary,
        sections: vec![Section {
            key: "by_method_and_status",
            title: "By method and status".into(),
            columns: BY_METHOD.to_vec(),
            rows,
        }],
        generated_at: now,
    }
}
