//! Reports' figures, from the read models: one module per report. Each module has
//!
//! - its facts (the rows a report is made of: a requisition, a cash-book line, an approval
//!   action), read from the read models within the caller's [`ReportScope`] and the
//!   [`ReportParams`];
//! - `build`, the pure step from facts to a [`Report`] (sections, summary figures), shared with
//!   `pettycash-replay report`, which gets the same facts by folding the events
//!   ([`replay`]): a test compares the two figure by figure;
//! - for the reports that can be long (a year of transactions), a stream of rows for CSV, so
//!   the rows never sit in memory together.
//!
//! The formats (JSON, CSV, XLSX, PDF) are the `api`'s; nothing here knows them.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use pettycash_domain::report::{Cell, Column, Report, ReportName, ReportParams, ReportScope};
use pettycash_domain::Actor;
use sqlx::PgPool;

pub mod approvals;
pub mod budget_vs_actual;
pub mod cash_book;
pub mod exceptions;
pub mod facts;
pub mod forecast;
pub mod payments;
pub mod spending;
pub mod transactions;
pub mod treasury;
pub mod units;
pub mod user_activity;

/// Why a report could not be run. The API maps these to 404 / 400 with the field named.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A filter names something the caller may not see (or that does not exist): 404, as for
    /// any object they may not see.
    #[error("{field}: not found")]
    NotFound { field: &'static str },
    /// A filter is missing or malformed: 400 naming the field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What every report's query needs: the store, who asks, what they may see, what for.
#[derive(Clone)]
pub struct ReportContext {
    pub pool: PgPool,
    pub actor: Actor,
    pub scope: ReportScope,
    pub params: ReportParams,
    /// The generation time printed on the report (and "today" for ages and forecasts).
    pub now: DateTime<Utc>,
}

/// The columns of a long report and its rows, in order.
pub type RowStream = (Vec<Column>, BoxStream<'static, Result<Vec<Cell>, ReportError>>);

/// Runs report `name` from the read models.
pub async fn run(name: ReportName, ctx: &ReportContext) -> Result<Report, ReportError> {
    match name {
        ReportName::Transactions => transactions::run(ctx).await,
        ReportName::Spending => spending::run(ctx).await,
        ReportName::BudgetVsActual => budget_vs_actual::run(ctx).await,
        ReportName::Forecast => forecast::run(ctx).await,
        ReportName::CashBook => cash_book::run(ctx).await,
        ReportName::Approvals => approvals::run(ctx).await,
        ReportName::Payments => payments::run(ctx).await,
        ReportName::Exceptions => exceptions::run(ctx).await,
        ReportName::Treasury => treasury::run(ctx).await,
        ReportName::UserActivity => user_activity::run(ctx).await,
    }
}

/// The rows of a report that may be long, for CSV: its columns and a stream of rows in order
/// (`None`: the report is small; write [`run`]'s sections).
pub fn stream(name: ReportName, ctx: &ReportContext) -> Option<RowStream> {
    match name {
        ReportName::Transactions => Some(transactions::stream(ctx)),
        ReportName::CashBook => Some(cash_book::stream(ctx)),
        _ => None,
    }
}

/// Runs report `name` from the events (for `pettycash-replay report`): the same facts folded
/// from the store in global order through [`crate::reader`], built by the same `build`.
/// `scope` is the organisation-wide view of an auditor of `scope.company`.
pub async fn replay(
    name: ReportName,
    pool: &PgPool,
    scope: &ReportScope,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    match name {
        ReportName::Transactions => transactions::replay(pool, scope, params, now).await,
        ReportName::Spending => spending::replay(pool, scope, params, now).await,
        ReportName::BudgetVsActual => budget_vs_actual::replay(pool, scope, params, now).await,
        ReportName::Forecast => forecast::replay(pool, scope, params, now).await,
        ReportName::CashBook => cash_book::replay(pool, scope, params, now).await,
        ReportName::Approvals => approvals::replay(pool, scope, params, now).await,
        ReportName::Payments => payments::replay(pool, scope, params, now).await,
        ReportName::Exceptions => exceptions::replay(pool, scope, params, now).await,
        ReportName::Treasury => treasury::replay(pool, scope, params, now).await,
        ReportName::UserActivity => user_activity::replay(pool, scope, params, now).await,
    }
}
