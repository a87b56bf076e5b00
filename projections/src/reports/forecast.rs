//! `forecast`: per fund of the caller's company (open funds), its average daily spend over the
//! look-back (`lookback_days`, default 30) and when, at that rate, its balance reaches its
//! reorder level.
//!
//! - As of: the end of the period (`to`), or now if that is earlier: the balance is the cash
//!   book's after its last movement before then, and the look-back is the days before then.
//! - Spend: the disbursements (cash paid out for requisitions) recorded in the look-back;
//!   replenishments, returns to the bank and count adjustments are not spending.
//! - Daily spend = spend ÷ look-back days. Days left = ⌈(balance − reorder level) ÷ daily⌉;
//!   the predicted date is as-of's date plus that many days. No prediction (and a note saying
//!   why) when the fund has no reorder level, spent nothing, or is already at or below it.
//!
//! The reorder level is the fund's current setting in both paths (the read model's `rm_funds`
//! or the fund's events folded to the end).

use super::units::{self, push_company, Placed};
use super::{ReportContext, ReportError};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use futures::TryStreamExt;
use pettycash_domain::fund::{CashBook, Fund, FundEvent, MovementKind};
use pettycash_domain::report::{
    Cell, CellKind, Column, Figure, Report, ReportName, ReportParams, ReportScope, Section,
};
use pettycash_domain::Id;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{PgPool, QueryBuilder};
use std::collections::BTreeMap;

use crate::event::EventRow;
use crate::reader::{in_order, Filter, Selection};

/// Every fund event (the settings are the latest's): a bound PostgreSQL and chrono both hold.
const END_OF_TIME: DateTime<Utc> = DateTime::<Utc>::from_timestamp_nanos(i64::MAX);

/// One fund as of the forecast's instant.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Fact {
    pub fund_id: Id,
    pub name: String,
    pub currency: String,
    pub balance: Decimal,
    pub reorder_level: Option<Decimal>,
    /// Disbursed in the look-back (positive).
    pub spent: Decimal,
}

/// The instant the forecast is made at, and the start of its look-back.
pub fn window(params: &ReportParams, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let as_of = params.to.min(now);
    (as_of - Duration::days(i64::from(params.lookback_days.max(1))), as_of)
}

pub async fn facts(ctx: &ReportContext) -> Result<Vec<Fact>, ReportError> {
    let (start, as_of) = window(&ctx.params, ctx.now);
    let mut qb =
        QueryBuilder::new("SELECT * FROM (SELECT f.id AS fund_id, f.name, f.currency, f.reorder_level, ");
    qb.push("(SELECT l.balance_after FROM rm_ledger l WHERE l.fund_id = f.id AND l.at < ")
        .push_bind(as_of)
        .push(" ORDER BY l.position DESC LIMIT 1) AS balance, ")
        // The disbursements are `rm_payments`' rows, found by its (fund_id, paid_at) index.
        .push("coalesce((SELECT sum(p.amount) FROM rm_payments p WHERE p.fund_id = f.id AND p.paid_at >= ")
        .push_bind(start)
        .push(" AND p.paid_at < ")
        .push_bind(as_of)
        .push("), 0) AS spent FROM rm_funds f LEFT JOIN org_units u ON u.id = f.unit_id WHERE NOT f.closed");
    push_company(&mut qb, "f.company_id", ctx.scope.company);
    let p = &ctx.params.units;
    for (column, id) in [
        ("u.region_id", p.region_id),
        ("u.branch_id", p.branch_id),
        ("u.department_id", p.department_id),
        ("u.cost_centre_id", p.cost_centre_id),
        ("f.company_id", p.company_id),
        ("f.id", p.fund_id),
    ] {
        if let Some(id) = id {
            qb.push(format_args!(" AND {column} = ")).push_bind(id);
        }
    }
    // A fund opened after the instant has no balance then: not in the forecast.
    qb.push(") AS funds WHERE balance IS NOT NULL");
    Ok(qb.build_query_as::<Fact>().fetch_all(&ctx.pool).await?)
}

pub async fn run(ctx: &ReportContext) -> Result<Report, ReportError> {
    let filters = units::check_filters(&ctx.pool, &ctx.scope, &ctx.params.units).await?;
    Ok(build(&ctx.params, filters, facts(ctx).await?, ctx.now))
}

/// The same facts from the fund events: each fund's cash book folded up to the instant (the
/// one fold of `CashBook::record`), its settings from all its events.
pub async fn replay_facts(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Vec<Fact>, ReportError> {
    let (start, as_of) = window(params, now);
    struct State {
        fund: Fund,
        book: CashBook,
        /// The book as of the instant (`None`: not opened by then).
        balance: Option<Decimal>,
        spent: Decimal,
    }
    let read = in_order(&Selection::events(), Filter::Funds { as_of: END_OF_TIME });
    let mut rows = read.fetch::<EventRow>(pool);
    let mut funds: BTreeMap<Id, State> = BTreeMap::new();
    while let Some(e) = rows.try_next().await? {
        let id: Id = e.aggregate_id.parse().map_err(anyhow::Error::from)?;
        let event: FundEvent = e.decode()?;
        let s = funds.entry(id).or_insert_with(|| State {
            fund: Fund::default(),
            book: CashBook::default(),
            balance: None,
            spent: Decimal::ZERO,
        });
        if e.recorded_at < as_of {
            let movement =
                s.book.record(&event).map_err(|_| anyhow::anyhow!("fund {id} moved before it opened"))?;
            s.balance = Some(s.book.balance);
            if let Some(m) =
                movement.filter(|m| m.kind == MovementKind::Disbursement && e.recorded_at >= start)
            {
                s.spent -= m.amount;
            }
        }
        s.fund.apply(event);
    }
    Ok(funds
        .into_iter()
        .filter_map(|(id, s)| {
            let unit = s.fund.unit;
            let placed = Placed {
                company_id: unit.map(|u| u.company),
                region_id: unit.and_then(|u| u.region),
                branch_id: unit.and_then(|u| u.branch),
                department_id: unit.and_then(|u| u.department),
                cost_centre_id: unit.and_then(|u| u.cost_centre),
                fund_id: Some(id),
            };
            if placed.company_id != scope.company || !placed.admitted_by(&params.units) || s.fund.closed {
                return None;
            }
            Some(Fact {
                fund_id: id,
                name: s.fund.name.clone(),
                currency: s.fund.currency.as_ref().map(|c| c.code().to_string()).unwrap_or_default(),
                balance: s.balance?,
                reorder_level: s.fund.settings.reorder_level,
                spent: s.spent,
            })
        })
        .collect())
}

pub async fn replay(
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let filters = units::check_filters(pool, scope, &params.units).await?;
    Ok(build(params, filters, replay_facts(pool, scope, params, now).await?, now))
}

/// A fund's prediction: the average daily spend, and either (days left, date) or why none.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub daily: Decimal,
    pub outcome: Result<(i64, chrono::NaiveDate), &'static str>,
}

pub fn predict(f: &Fact, lookback_days: u32, as_of: DateTime<Utc>) -> Prediction {
    let daily = (f.spent / Decimal::from(lookback_days.max(1)))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let outcome = match f.reorder_level {
        None => Err("no reorder level"),
        Some(reorder) if f.balance <= reorder => Err("already at or below the reorder level"),
        Some(_) if f.spent <= Decimal::ZERO => Err("no spending in the look-back"),
        Some(reorder) => {
            // Exact rate (not the rounded one) so the printed figure's rounding moves no date.
            let rate = f.spent / Decimal::from(lookback_days.max(1));
            let days = ((f.balance - reorder) / rate).ceil().to_i64().unwrap_or(i64::MAX);
            let date = as_of.date_naive().checked_add_signed(Duration::days(days));
            date.map(|d| (days, d)).ok_or("beyond the calendar")
        }
    };
    Prediction { daily, outcome }
}

pub fn build(
    params: &ReportParams,
    filters: Vec<(String, String)>,
    mut facts: Vec<Fact>,
    now: DateTime<Utc>,
) -> Report {
    let (_, as_of) = window(params, now);
    facts.sort_by(|a, b| (&a.name, a.fund_id).cmp(&(&b.name, b.fund_id)));
    let mut predicted = 0;
    let rows = facts
        .iter()
        .map(|f| {
            let p = predict(f, params.lookback_days, as_of);
            let (days, date, note) = match p.outcome {
                Ok((days, date)) => {
                    predicted += 1;
                    (Cell::Integer(days), Cell::Date(date), Cell::Empty)
                }
                Err(why) => (Cell::Empty, Cell::Empty, Cell::Text(why.to_string())),
            };
            vec![
                Cell::Text(f.name.clone()),
                Cell::Text(f.currency.clone()),
                Cell::Money(f.balance),
                f.reorder_level.map_or(Cell::Empty, Cell::Money),
                Cell::Money(f.spent),
                Cell::Money(p.daily),
                days,
                date,
                note,
            ]
        })
        .collect();
    let summary = vec![
        Figure::new("funds", "Funds", Cell::Integer(facts.len() as i64)),
        Figure::new("predicted", "Funds with a predicted date", Cell::Integer(predicted)),
        Figure::new("as_of", "As of", Cell::DateTime(as_of)),
    ];
    Report {
        name: ReportName::Forecast,
        title: ReportName::Forecast.title().to_string(),
        params: params.clone(),
        filters,
        summary,
        sections: vec![Section {
            key: "funds",
            title: format!("Spending over the last {} days", params.lookback_days.max(1)),
            columns: vec![
                Column::new("fund", "Fund", CellKind::Text),
                Column::new("currency", "Currency", CellKind::Text),
                Column::new("balance", "Balance", CellKind::Money),
                Column::new("reorder_level", "Reorder level", CellKind::Money),
                Column::new("spent", "Spent", CellKind::Money),
                Column::new("daily_spend", "Daily spend", CellKind::Money),
                Column::new("days_left", "Days left", CellKind::Integer),
                Column::new("reorder_date", "Reaches reorder level", CellKind::Date),
                Column::new("note", "Note", CellKind::Text),
            ],
            rows,
        }],
        generated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fact(balance: &str, reorder: Option<&str>, spent: &str) -> Fact {
        Fact {
            fund_id: Id::nil(),
            name: "Petty cash".into(),
            currency: "KES".into(),
            balance: balance.parse().unwrap(),
            reorder_level: reorder.map(|r| r.parse().unwrap()),
            spent: spent.parse().unwrap(),
        }
    }

    #[test]
    fn the_date_is_when_the_daily_spend_reaches_the_reorder_level() {
        let as_of = Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap();
        // 3,000 over 30 days: 100 a day; 1,050 above the reorder level: 10.5 days, so the 11th.
        let p = predict(&fact("6050", Some("5000"), "3000"), 30, as_of);
        assert_eq!(p.daily, Decimal::from(100));
        assert_eq!(p.outcome, Ok((11, chrono::NaiveDate::from_ymd_opt(2026, 3, 21).unwrap())));
        // Exactly 10 days above it: the 10th day.
        let p = predict(&fact("6000", Some("5000"), "3000"), 30, as_of);
        assert_eq!(p.outcome.map(|o| o.0), Ok(10));
    }

    #[test]
    fn no_date_without_a_level_without_spending_or_at_the_level_already() {
        let as_of = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
        assert_eq!(predict(&fact("6000", None, "3000"), 30, as_of).outcome, Err("no reorder level"));
        assert_eq!(
            predict(&fact("6000", Some("5000"), "0"), 30, as_of).outcome,
            Err("no spending in the look-back")
        );
        assert_eq!(
            predict(&fact("5000", Some("5000"), "3000"), 30, as_of).outcome,
            Err("already at or below the reorder level")
        );
        // The printed daily spend is rounded to the cent; the date uses the exact rate.
        assert_eq!(predict(&fact("6000", Some("5000"), "100"), 3, as_of).daily, "33.33".parse().unwrap());
    }

    #[test]
    fn the_forecast_is_as_of_the_end_of_the_period_or_now() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
        let params = |to| ReportParams {
            from: now - Duration::days(30),
            to,
            units: Default::default(),
            stuck_days: 7,
            lookback_days: 30,
        };
        assert_eq!(window(&params(now + Duration::days(5)), now).1, now);
        let closed = now - Duration::days(9);
        assert_eq!(window(&params(closed), now), (closed - Duration::days(30), closed));
    }
}
