//! The user-activity report: per user of the caller's company, in the period, the requisitions
//! they created, the approval actions they took (approve, reject, request changes), the
//! payments they made (that succeeded) and their sign-ins.
//!
//! Sign-ins are no events: a sign-in opens a row of `sessions` (never deleted; revoked or
//! expired rows stay), and that table is the record counted here, by both sources — the replay
//! folds the events for the other three counts and reads the same rows for sign-ins. Event
//! metadata names the request (id, client address, user agent), not the session, so it cannot
//! tell sign-ins apart. The unit filters narrow the requisitions by their unit and the users by
//! theirs.

use super::facts::{self, Facts};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Utc};
use pettycash_domain::payment::ProviderPaymentStatus;
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One user of the company: name, email, sign-ins in the period.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserFacts {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub sign_ins: i64,
}

/// The company's users (within the unit filters) and their sign-ins in the period.
async fn users(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
) -> Result<Vec<UserFacts>, ReportError> {
    let mut qb: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT u.id, u.name, u.email,
                (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.created_at >= ",
    );
    qb.push_bind(params.from)
        .push(" AND s.created_at < ")
        .push_bind(params.to)
        .push(") AS sign_ins FROM users u WHERE");
    crate::queries::push_company(&mut qb, "u.company_id", scope.company);
    let u = &params.units;
    for (column, id) in [
        ("u.region_id", u.region_id),
        ("u.branch_id", u.branch_id),
        ("u.department_id", u.department_id),
        ("u.cost_centre_id", u.cost_centre_id),
    ] {
        if let Some(id) = id {
            qb.push(format_args!(" AND {column} = ")).push_bind(id);
        }
    }
    qb.push(" ORDER BY u.id");
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let facts = facts::read(&ctx.pool, &ctx.scope, ctx.actor.user_id, &ctx.params).await?;
    let users = users(&ctx.pool, &ctx.scope, &ctx.params).await?;
    Ok(build(&ctx.params, &facts, &users, ctx.now))
}

pub async fn replay(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let facts = facts::replay(pool, scope, params).await?;
    let users = users(pool, scope, params).await?;
    Ok(build(params, &facts, &users, now))
}

const COLUMNS: [Column; 6] = [
    Column::new("user", "User", CellKind::Text),
    Column::new("email", "Email", CellKind::Text),
    Column::new("requisitions", "Requisitions created", CellKind::Integer),
    Column::new("approval_actions", "Approval actions", CellKind::Integer),
    Column::new("payments", "Payments made", CellKind::Integer),
    Column::new("sign_ins", "Sign-ins", CellKind::Integer),
];

/// The report from its facts (pure; shared by the read models and the replay). Users with no
/// activity in the period are left out.
pub fn build(params: &ReportParams, facts: &Facts, users: &[UserFacts], now: DateTime<Utc>) -> Report {
    let within = |t: DateTime<Utc>| t >= params.from && t < params.to;
    let mut counts: BTreeMap<Uuid, [i64; 3]> = BTreeMap::new();
    for r in &facts.requisitions {
        if within(r.created_at) {
            counts.entry(r.requester_id).or_default()[0] += 1;
        }
        for a in r.actions.iter().filter(|a| within(a.at)) {
            counts.entry(a.by).or_default()[1] += 1;
        }
        for a in &r.attempts {
            if a.status == ProviderPaymentStatus::Succeeded && a.settled_at.is_some_and(within) {
                counts.entry(a.paid_by).or_default()[2] += 1;
            }
        }
    }
    let mut totals = [0i64; 4];
    let mut rows: Vec<(String, Uuid, Vec<Cell>)> = Vec::new();
    for u in users {
        let [created, actions, payments] = counts.get(&u.id).copied().unwrap_or_default();
        if created + actions + payments + u.sign_ins == 0 {
            continue;
        }
        for (t, n) in totals.iter_mut().zip([created, actions, payments, u.sign_ins]) {
            *t += n;
        }
        rows.push((
            u.name.clone(),
            u.id,
            vec![
                Cell::Text(u.name.clone()),
                Cell::Text(u.email.clone()),
                Cell::Integer(created),
                Cell::Integer(actions),
                Cell::Integer(payments),
                Cell::Integer(u.sign_ins),
            ],
        ));
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let figure = |key: &str, title: &str, value: i64| Figure::new(key, title, Cell::Integer(value));
    Report {
        name: ReportName::UserActivity,
        title: ReportName::UserActivity.title().into(),
        params: params.clone(),
        filters: facts.filters.clone(),
        summary: vec![
            figure("active_users", "Active users", rows.len() as i64),
            figure("requisitions", "Requisitions created", totals[0]),
            figure("approval_actions", "Approval actions", totals[1]),
            figure("payments", "Payments made", totals[2]),
            figure("sign_ins", "Sign-ins", totals[3]),
        ],
        sections: vec![Section {
            key: "users",
            title: "Users".into(),
            columns: COLUMNS.to_vec(),
            rows: rows.into_iter().map(|(_, _, r)| r).collect(),
        }],
        generated_at: now,
    }
}
