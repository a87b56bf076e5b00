//! The cash book of one fund: every movement of cash in the period with the running balance,
//! between the balance brought forward (the balance before `from`) and the balance carried
//! forward. Reservations (lines of amount 0 for payments in flight) move no cash and are left
//! out.
//!
//! From the read models: `rm_ledger`, in position order. From the events: the fund's events
//! folded by [`crate::ledger`] (the cash projection's own fold, `domain::fund::CashBook`).
//! Both give [`Line`]s to [`build`]; the CSV stream gives the same rows page by page.

use super::{ReportContext, ReportError, RowStream};
use crate::ledger;
use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use pettycash_domain::fund::MovementKind;
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use pettycash_domain::visibility;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

/// One movement of cash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Line {
    pub position: i64,
    pub at: DateTime<Utc>,
    pub kind: MovementKind,
    /// Signed: positive into the fund.
    pub amount: Decimal,
    pub balance_after: Decimal,
    pub reference: Option<String>,
    pub requisition_id: Option<Uuid>,
}

/// The fund a cash book is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fund {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
}

/// The columns of the movements section (and of the CSV).
pub const COLUMNS: [Column; 7] = [
    Column::new("position", "Position", CellKind::Integer),
    Column::new("at", "Time", CellKind::DateTime),
    Column::new("kind", "Movement", CellKind::Text),
    Column::new("reference", "Reference", CellKind::Text),
    Column::new("requisition_id", "Requisition", CellKind::Text),
    Column::new("amount", "Amount", CellKind::Money),
    Column::new("balance", "Balance", CellKind::Money),
];

/// The first row: the balance brought forward.
pub fn opening_row(opening: Decimal) -> Vec<Cell> {
    balance_row("balance brought forward", opening)
}

/// The last row: the balance carried forward.
pub fn closing_row(closing: Decimal) -> Vec<Cell> {
    balance_row("balance carried forward", closing)
}

fn balance_row(label: &str, balance: Decimal) -> Vec<Cell> {
    vec![
        Cell::Empty,
        Cell::Empty,
        Cell::Text(label.into()),
        Cell::Empty,
        Cell::Empty,
        Cell::Empty,
        Cell::Money(balance),
    ]
}

pub fn row(line: &Line) -> Vec<Cell> {
    vec![
        Cell::Integer(line.position),
        Cell::DateTime(line.at),
        Cell::Text(line.kind.as_str().into()),
        line.reference.clone().into(),
        line.requisition_id.map(|id| id.to_string()).into(),
        Cell::Money(line.amount),
        Cell::Money(line.balance_after),
    ]
}

/// The report from its facts: pure, shared by the read-model and the replay paths.
pub fn build(
    params: &ReportParams,
    fund: &Fund,
    opening: Decimal,
    lines: &[Line],
    now: DateTime<Utc>,
) -> Report {
    let closing = lines.last().map_or(opening, |l| l.balance_after);
    let money_in: Decimal = lines.iter().map(|l| l.amount).filter(|a| a.is_sign_positive()).sum();
    let money_out: Decimal = lines.iter().map(|l| l.amount).filter(|a| a.is_sign_negative()).sum();
    let money = |key: &str, title: &str, value: Decimal| {
        Figure::in_currency(&fund.currency, key, title, Cell::Money(value))
    };
    let mut rows = Vec::with_capacity(lines.len() + 2);
    rows.push(opening_row(opening));
    rows.extend(lines.iter().map(row));
    rows.push(closing_row(closing));
    Report {
        name: ReportName::CashBook,
        title: format!("{} — {}", ReportName::CashBook.title(), fund.name),
        params: params.clone(),
        filters: vec![("Fund".into(), fund.name.clone()), ("Currency".into(), fund.currency.clone())],
        summary: vec![
            money("opening_balance", "Opening balance", opening),
            money("money_in", "Money in", money_in),
            money("money_out", "Money out", money_out),
            money("closing_balance", "Closing balance", closing),
            Figure::new("movements", "Movements", Cell::Integer(lines.len() as i64)),
        ],
        sections: vec![Section {
            key: "movements",
            title: "Movements".into(),
            columns: COLUMNS.to_vec(),
            rows,
        }],
        generated_at: now,
    }
}

/// The fund the report is of: `fund_id` is required, and must be a fund the caller may read.
async fn fund(ctx: &ReportContext) -> Result<Fund, ReportError> {
    let id = ctx.params.units.fund_id.ok_or_else(|| ReportError::Invalid {
        field: "fund_id",
        message: "the cash book is of one fund: give `fund_id`".into(),
    })?;
    let row = crate::queries::fund(&ctx.pool, id)
        .await?
        .filter(|f| visibility::may_read_fund(&ctx.actor, f.company_id))
        .ok_or(ReportError::NotFound { field: "fund_id" })?;
    Ok(Fund { id, name: row.name, currency: row.currency })
}

/// The kinds of line that move no cash, as stored.
fn not_cash() -> Vec<&'static str> {
    MovementKind::ALL.into_iter().filter(|k| !k.moves_cash()).map(MovementKind::as_str).collect()
}

/// The balance before `from`: the latest line recorded before it (0 before the fund opened).
async fn opening(pool: &PgPool, fund: Uuid, from: DateTime<Utc>) -> Result<Decimal, ReportError> {
    let balance: Option<Decimal> = sqlx::query_scalar(
        "SELECT balance_after FROM rm_ledger WHERE fund_id = $1 AND at < $2 ORDER BY position DESC LIMIT 1",
    )
    .bind(fund)
    .bind(from)
    .fetch_optional(pool)
    .await?;
    Ok(balance.unwrap_or_default())
}

/// Lines of the period after position `after`, at most `limit`, in position order.
async fn page(
    pool: &PgPool,
    fund: Uuid,
    params: &ReportParams,
    after: i64,
    limit: i64,
) -> Result<Vec<Line>, ReportError> {
    Ok(sqlx::query_as(
        "SELECT position, at, kind, amount, balance_after, reference, requisition_id FROM rm_ledger
         WHERE fund_id = $1 AND at >= $2 AND at < $3 AND position > $4 AND kind <> ALL($5)
         ORDER BY position LIMIT $6",
    )
    .bind(fund)
    .bind(params.from)
    .bind(params.to)
    .bind(after)
    .bind(not_cash())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Rows per query of the stream: memory stays at one page however long the period.
const PAGE: i64 = 1000;

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let fund = fund(ctx).await?;
    let opening = opening(&ctx.pool, fund.id, ctx.params.from).await?;
    let lines = page(&ctx.pool, fund.id, &ctx.params, 0, i64::MAX).await?;
    Ok(build(&ctx.params, &fund, opening, &lines, ctx.now))
}

/// The rows of [`build`]'s movements section, a page at a time. The first item is an error
/// when the fund is missing or not the caller's (checked before any row).
pub fn stream(ctx: &ReportContext) -> RowStream {
    let ctx = ctx.clone();
    let rows = stream::once(async move {
        let fund = fund(&ctx).await?;
        let opening = opening(&ctx.pool, fund.id, ctx.params.from).await?;
        Ok::<_, ReportError>((ctx, fund, opening))
    })
    .map_ok(|(ctx, fund, opening)| {
        // State: the last position read, the balance after it, and whether the closing row
        // has been given.
        let pages = stream::try_unfold((0i64, opening, false), move |(after, balance, done)| {
            let (pool, params) = (ctx.pool.clone(), ctx.params.clone());
            async move {
                if done {
                    return Ok::<_, ReportError>(None);
                }
                let lines = page(&pool, fund.id, &params, after, PAGE).await?;
                let Some(last) = lines.last() else {
                    return Ok(Some((vec![closing_row(balance)], (after, balance, true))));
                };
                let next = (last.position, last.balance_after, false);
                Ok(Some((lines.iter().map(row).collect::<Vec<_>>(), next)))
            }
        });
        stream::iter([Ok(opening_row(opening))])
            .chain(pages.map_ok(|rows| stream::iter(rows.into_iter().map(Ok))).try_flatten())
    })
    .try_flatten();
    (COLUMNS.to_vec(), rows.boxed())
}

/// The same report from the fund's events alone (`pettycash-replay report cash-book`). The
/// caller is an auditor with the store itself: `scope` narrows nothing here (a fund's events
/// do not name its company; the API's path checks [`visibility::may_read_fund`]).
pub async fn replay(
    pool: &PgPool,
    _scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let id = params.units.fund_id.ok_or_else(|| ReportError::Invalid {
        field: "fund_id",
        message: "the cash book is of one fund: give `fund_id`".into(),
    })?;
    let mut opening = Decimal::ZERO;
    let mut lines = Vec::new();
    // Read up to `now` rather than `to`: the fund's name and currency are known even for a
    // period before it opened (as the read model knows them).
    let as_of = now.max(params.to);
    let (_, state) = ledger::for_each_ledger(pool, id, as_of, |m| {
        if m.at < params.from {
            opening = m.balance_after;
        } else if m.at < params.to && m.kind.moves_cash() {
            lines.push(Line {
                position: m.position,
                at: m.at,
                kind: m.kind,
                amount: m.amount,
                balance_after: m.balance_after,
                reference: m.reference,
                requisition_id: m.requisition_id,
            });
        }
        Ok(())
    })
    .await?;
    let state = state.ok_or(ReportError::NotFound { field: "fund_id" })?;
    let fund = Fund { id, name: state.name, currency: state.currency };
    Ok(build(params, &fund, opening, &lines, now))
}
