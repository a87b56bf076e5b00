//! The approvals report: each approver's actions in the period (approvals, rejections, change
//! requests) with the median and 90th-percentile time to act, measured from when the step
//! became theirs (the submission, or the previous approval) to their action; and the approvals
//! stuck for more than `stuck_days` days at generation time, with the people they wait for.

use super::facts::{self, ActionKind, Facts};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Duration, Utc};
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

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

const APPROVERS: [Column; 7] = [
    Column::new("approver", "Approver", CellKind::Text),
    Column::new("approvals", "Approvals", CellKind::Integer),
    Column::new("rejections", "Rejections", CellKind::Integer),
    Column::new("changes_requested", "Changes requested", CellKind::Integer),
    Column::new("actions", "Actions", CellKind::Integer),
    Column::new("median_hours", "Median hours to act", CellKind::Number),
    Column::new("p90_hours", "90th percentile hours to act", CellKind::Number),
];

const STUCK: [Column; 8] = [
    Column::new("requisition_id", "Requisition", CellKind::Text),
    Column::new("requester", "Requester", CellKind::Text),
    Column::new("amount", "Amount", CellKind::Money),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("step", "Step", CellKind::Text),
    Column::new("waiting_since", "Waiting since", CellKind::DateTime),
    Column::new("days_waiting", "Days waiting", CellKind::Integer),
    Column::new("waiting_for", "Waiting for", CellKind::Text),
];

/// Per approver: approvals, rejections, change requests, hours to act.
#[derive(Default)]
struct Tally {
    counts: [i64; 3],
    hours: Vec<rust_decimal::Decimal>,
}

/// The report from its facts (pure; shared by the read models and the replay).
pub fn build(params: &ReportParams, facts: &Facts, now: DateTime<Utc>) -> Report {
    let mut by_approver: BTreeMap<(String, Uuid), Tally> = BTreeMap::new();
    for r in &facts.requisitions {
        for a in r.actions.iter().filter(|a| a.at >= params.from && a.at < params.to) {
            let t = by_approver.entry((facts.name(a.by), a.by)).or_default();
            t.counts[match a.kind {
                ActionKind::Approve => 0,
                ActionKind::Reject => 1,
                ActionKind::RequestChanges => 2,
            }] += 1;
            t.hours.push(facts::hours(a.since, a.at));
        }
    }
    let mut totals = [0i64; 3];
    let approvers: Vec<Vec<Cell>> = by_approver
        .into_iter()
        .map(|((name, _), mut t)| {
            for (total, n) in totals.iter_mut().zip(t.counts) {
                *total += n;
            }
            let (median, p90) = facts::median_p90(&mut t.hours)
                .map_or((Cell::Empty, Cell::Empty), |(m, p)| (Cell::Number(m), Cell::Number(p)));
            vec![
                Cell::Text(name),
                Cell::Integer(t.counts[0]),
                Cell::Integer(t.counts[1]),
                Cell::Integer(t.counts[2]),
                Cell::Integer(t.counts.iter().sum()),
                median,
                p90,
            ]
        })
        .collect();

    let stuck_before = now - Duration::days(i64::from(params.stuck_days));
    let mut stuck: Vec<(DateTime<Utc>, Uuid, Vec<Cell>)> = Vec::new();
    for r in &facts.requisitions {
        let (Some((role, people)), Some(since)) = (r.waiting_for(), r.step_since) else { continue };
        if since > stuck_before {
            continue;
        }
        let waiting_for = match people {
            Some(people) => {
                let mut names: Vec<String> = people.iter().map(|p| facts.name(*p)).collect();
                names.sort();
                names.join("; ")
            }
            None => format!("any {role}"),
        };
        stuck.push((
            since,
            r.id,
            vec![
                Cell::Text(r.id.to_string()),
                Cell::Text(facts.name(r.requester_id)),
                Cell::Money(r.amount),
                Cell::Text(r.currency.clone()),
                Cell::Text(role.to_string()),
                Cell::DateTime(since),
                Cell::Integer((now - since).num_days()),
                Cell::Text(waiting_for),
            ],
        ));
    }
    stuck.sort_by_key(|(since, id, _)| (*since, *id));

    let figure = |key: &str, title: &str, value: i64| Figure::new(key, title, Cell::Integer(value));
    Report {
        name: ReportName::Approvals,
        title: ReportName::Approvals.title().into(),
        params: params.clone(),
        filters: facts.filters.clone(),
        summary: vec![
            figure("actions", "Actions", totals.iter().sum()),
            figure("approvals", "Approvals", totals[0]),
            figure("rejections", "Rejections", totals[1]),
            figure("changes_requested", "Changes requested", totals[2]),
            figure("stuck", &format!("Stuck for more than {} days", params.stuck_days), stuck.len() as i64),
        ],
        sections: vec![
            Section {
                key: "approvers",
                title: "Approvers".into(),
                columns: APPROVERS.to_vec(),
                rows: approvers,
            },
            Section {
                key: "stuck",
                title: format!("Approvals waiting more than {} days", params.stuck_days),
                columns: STUCK.to_vec(),
                rows: stuck.into_iter().map(|(_, _, row)| row).collect(),
            },
        ],
        generated_at: now,
    }
}
