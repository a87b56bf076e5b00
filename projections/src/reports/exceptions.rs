//! The overrides and exceptions report: the requisitions that were fast-tracked, escalated,
//! approved by an admin's override, submitted over a budget or flagged as a possible duplicate
//! in the period, one row each with the kinds and the reasons (as their events give them).

use super::facts::{self, ExceptionKind, Facts};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Utc};
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use sqlx::PgPool;

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

const COLUMNS: [Column; 9] = [
    Column::new("requisition_id", "Requisition", CellKind::Text),
    Column::new("first_at", "First exception", CellKind::DateTime),
    Column::new("requester", "Requester", CellKind::Text),
    Column::new("purpose", "Purpose", CellKind::Text),
    Column::new("status", "Status", CellKind::Text),
    Column::new("amount", "Amount", CellKind::Money),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("kinds", "Exceptions", CellKind::Text),
    Column::new("reasons", "Reasons", CellKind::Text),
];

/// The report from its facts (pure; shared by the read models and the replay).
pub fn build(params: &ReportParams, facts: &Facts, now: DateTime<Utc>) -> Report {
    let mut per_kind = [0i64; ExceptionKind::ALL.len()];
    let mut rows: Vec<(DateTime<Utc>, uuid::Uuid, Vec<Cell>)> = Vec::new();
    for r in &facts.requisitions {
        let within: Vec<_> =
            r.exceptions.iter().filter(|e| e.at >= params.from && e.at < params.to).collect();
        let Some(first) = within.first() else { continue };
        let mut kinds: Vec<ExceptionKind> = within.iter().map(|e| e.kind).collect();
        kinds.sort();
        kinds.dedup();
        for k in &kinds {
            per_kind[ExceptionKind::ALL.iter().position(|a| a == k).unwrap_or(0)] += 1;
        }
        let reasons: Vec<String> =
            within.iter().map(|e| format!("{}: {}", e.kind.as_str(), e.reason)).collect();
        rows.push((
            first.at,
            r.id,
            vec![
                Cell::Text(r.id.to_string()),
                Cell::DateTime(first.at),
                Cell::Text(facts.name(r.requester_id)),
                Cell::Text(r.purpose.clone()),
                Cell::Text(r.status.as_str().into()),
                Cell::Money(r.amount),
                Cell::Text(r.currency.clone()),
                Cell::Text(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
                Cell::Text(reasons.join("; ")),
            ],
        ));
    }
    rows.sort_by_key(|(at, id, _)| (*at, *id));
    let figure = |key: &str, title: &str, value: i64| Figure::new(key, title, Cell::Integer(value));
    let titles = ["Fast-tracked", "Escalated", "Overridden", "Over budget", "Possible duplicates"];
    let mut summary = vec![figure("requisitions", "Requisitions with exceptions", rows.len() as i64)];
    for ((kind, title), n) in ExceptionKind::ALL.iter().zip(titles).zip(per_kind) {
        summary.push(figure(kind.as_str(), title, n));
    }
    Report {
        name: ReportName::Exceptions,
        title: ReportName::Exceptions.title().into(),
        params: params.clone(),
        filters: facts.filters.clone(),
        summary,
        sections: vec![Section {
            key: "exceptions",
            title: "Requisitions".into(),
            columns: COLUMNS.to_vec(),
            rows: rows.into_iter().map(|(_, _, row)| row).collect(),
        }],
        generated_at: now,
    }
}
