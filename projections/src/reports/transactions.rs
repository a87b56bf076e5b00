//! `transactions`: the requisitions *created* in the period (`created_at` in `[from, to)`),
//! whatever their status now, with requester, unit, category and amount; per currency their
//! count, sum and average. The visibility rule is the requisitions list's
//! (`RequisitionScope`: a requester gets their own). The unit filters read the requisition's
//! own path (the unit it was created in); the category is the requisition's label as given.
//!
//! A year of it can be long: [`stream`] sends the rows for CSV straight from one PostgreSQL
//! query (names joined in SQL), in chunks through a bounded channel, so memory stays flat.

use super::units::{self, Folded, Labels};
use super::{ReportContext, ReportError, RowStream};
use crate::queries::push_scope;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use pettycash_domain::requisition::Status;
use pettycash_domain::Id;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::BTreeMap;

/// One requisition as the report prints it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Fact {
    pub id: Id,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    pub requester_name: String,
    pub requester_email: String,
    pub branch: Option<String>,
    pub department: Option<String>,
    pub category: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    pub paid_at: Option<DateTime<Utc>>,
}

pub const COLUMNS: [Column; 11] = [
    Column::new("id", "Requisition", CellKind::Text),
    Column::new("created_at", "Created", CellKind::DateTime),
    Column::new("status", "Status", CellKind::Text),
    Column::new("requester", "Requester", CellKind::Text),
    Column::new("requester_email", "Email", CellKind::Text),
    Column::new("branch", "Branch", CellKind::Text),
    Column::new("department", "Department", CellKind::Text),
    Column::new("category", "Category", CellKind::Text),
    Column::new("amount", "Amount", CellKind::Money),
    Column::new("currency", "Currency", CellKind::Text),
    Column::new("paid_at", "Paid", CellKind::DateTime),
];

/// A fact's row, in [`COLUMNS`] order (shared by the report and the stream).
pub fn row(f: &Fact) -> Vec<Cell> {
    vec![
        Cell::Text(f.id.to_string()),
        Cell::DateTime(f.created_at),
        Cell::Text(f.status.as_str().to_string()),
        Cell::Text(f.requester_name.clone()),
        Cell::Text(f.requester_email.clone()),
        f.branch.clone().into(),
        f.department.clone().into(),
        f.category.clone().into(),
        Cell::Money(f.amount),
        Cell::Text(f.currency.clone()),
        f.paid_at.map_or(Cell::Empty, Cell::DateTime),
    ]
}

/// The query of the facts, oldest first (`created_at, id`).
fn query<'a>(scope: &ReportScope, params: &ReportParams) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(
        "SELECT r.id, r.created_at, r.status, coalesce(u.name, r.requester_id::text) AS requester_name, \
         coalesce(u.email, '') AS requester_email, b.code || ' — ' || b.name AS branch, \
         d.code || ' — ' || d.name AS department, r.category, r.amount, r.currency, r.paid_at \
         FROM (SELECT * FROM rm_requisitions WHERE created_at >= ",
    );
    qb.push_bind(params.from).push(" AND created_at < ").push_bind(params.to);
    if scope.own_only {
        qb.push(" AND requester_id = ").push_bind(scope.requisitions.user_id);
    } else {
        push_scope(&mut qb, &scope.requisitions);
    }
    units::push_units(&mut qb, &params.units, "", "cost_centre_id");
    qb.push(
        ") r LEFT JOIN users u ON u.id = r.requester_id LEFT JOIN org_units b ON b.id = r.branch_id \
         LEFT JOIN org_units d ON d.id = r.department_id ORDER BY r.created_at, r.id",
    );
    qb
}

pub async fn facts(ctx: &ReportContext) -> Result<Vec<Fact>, ReportError> {
    Ok(query(&ctx.scope, &ctx.params).build_query_as::<Fact>().fetch_all(&ctx.pool).await?)
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let filters = units::check_filters(&ctx.pool, &ctx.scope, &ctx.params.units).await?;
    Ok(build(&ctx.params, filters, facts(ctx).await?, ctx.now))
}

/// Rows per message from the query to the reader: few enough to keep memory flat, many
/// enough that the channel costs nothing per row.
const CHUNK: usize = 512;

/// The rows for CSV, streamed from the read model. The caller checks the filters first
/// ([`units::check_filters`], before it answers 200); the stream checks them again and then
/// yields [`ReportError::NotFound`] instead of any row.
pub fn stream(ctx: &ReportContext) -> RowStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<Vec<Cell>>, ReportError>>(4);
    let (pool, scope, params): (PgPool, _, _) = (ctx.pool.clone(), ctx.scope.clone(), ctx.params.clone());
    tokio::spawn(async move {
        if let Err(e) = units::check_filters(&pool, &scope, &params.units).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut qb = query(&scope, &params);
        let mut rows = qb.build_query_as::<Fact>().fetch(&pool).map_ok(|f| row(&f)).try_chunks(CHUNK);
        while let Some(chunk) = rows.next().await {
            let chunk = chunk.map_err(|e| ReportError::Db(e.1));
            let failed = chunk.is_err();
            // The reader went away (the client hung up): stop reading.
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let rows = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .flat_map(|chunk| match chunk {
            Ok(rows) => futures::stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => futures::stream::iter(vec![Err(e)]),
        })
        .boxed();
    (COLUMNS.to_vec(), rows)
}

/// The same facts from the events (an auditor's view of `scope.company`).
pub async fn replay_facts(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
) -> Result<Vec<Fact>, ReportError> {
    let all = units::fold_requisitions(pool, scope).await?;
    let chosen: Vec<&Folded> = all
        .values()
        .filter(|f| f.created_at >= params.from && f.created_at < params.to)
        .filter(|f| f.placed(false).admitted_by(&params.units))
        .collect();
    let users: Vec<Id> = chosen.iter().filter_map(|f| f.state.requester_id).collect();
    let units: Vec<Id> =
        chosen.iter().filter_map(|f| f.state.unit).flat_map(|u| [u.branch, u.department]).flatten().collect();
    let labels = Labels::load(pool, scope.company, &users, &units).await?;
    Ok(chosen.into_iter().map(|f| replayed(f, &labels)).collect())
}

fn replayed(f: &Folded, labels: &Labels) -> Fact {
    let s = &f.state;
    let (requester_name, requester_email) = labels.user(s.requester_id.unwrap_or_default());
    Fact {
        id: s.id.unwrap_or_default(),
        created_at: f.created_at,
        status: s.status,
        requester_name,
        requester_email,
        branch: labels.unit(s.unit.and_then(|u| u.branch)),
        department: labels.unit(s.unit.and_then(|u| u.department)),
        category: s.category.clone(),
        amount: s.amount,
        currency: s.currency.as_ref().map(|c| c.code().to_string()).unwrap_or_default(),
        paid_at: f.paid_at,
    }
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

/// The report from its facts: the rows oldest first; per currency count, sum and average
/// (rounded to the cent, half away from zero).
pub fn build(
    params: &ReportParams,
    filters: Vec<(String, String)>,
    mut facts: Vec<Fact>,
    now: DateTime<Utc>,
) -> Report {
    facts.sort_by_key(|f| (f.created_at, f.id));
    let mut per_currency: BTreeMap<&str, (i64, Decimal)> = BTreeMap::new();
    for f in &facts {
        let e = per_currency.entry(&f.currency).or_default();
        e.0 += 1;
        e.1 += f.amount;
    }
    let mut summary = Vec::new();
    for (currency, (count, sum)) in &per_currency {
        let figure = |key: &str, title: &str, value| Figure::in_currency(currency, key, title, value);
        summary.push(figure("count", "Requisitions", Cell::Integer(*count)));
        summary.push(figure("sum", "Total amount", Cell::Money(*sum)));
        summary.push(figure(
            "average",
            "Average amount",
            Cell::Money(
                (*sum / Decimal::from(*count))
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            ),
        ));
    }
    Report {
        name: ReportName::Transactions,
        title: ReportName::Transactions.title().to_string(),
        params: params.clone(),
        filters,
        summary,
        sections: vec![Section {
            key: "requisitions",
            title: "Requisitions created in the period".to_string(),
            columns: COLUMNS.to_vec(),
            rows: facts.iter().map(row).collect(),
        }],
        generated_at: now,
    }
}
