//! Queries over the read models: requisition lists, the approvals inbox, treasury's payments,
//! funds, a fund's cash book and the dashboard.
//!
//! Every query honours `min_position` (query) / `X-Min-Position` (header): it waits until the
//! read models it uses include that event, or answers 503 with `Retry-After`. Every answer
//! carries `position` (and the `X-Projection-Position` header): the read models' position.

use super::{consistent, query_response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use pettycash_commands::auth::AuthUser;
use pettycash_commands::budgets::BudgetLine;
use pettycash_domain::alert::Severity;
use pettycash_domain::budget::Month;
use pettycash_domain::fund::FundStatus;
use pettycash_domain::requisition::Status;
use pettycash_domain::visibility::{self, AlertScope, DashboardScope, RequisitionScope};
use pettycash_projections::alerts;
use pettycash_projections::queries::{
    self, Cursor, FundRow, LedgerRow, PageRequest, PaymentFilter, PaymentRow, QueryError, RequisitionFilter,
    RequisitionRow, ReviewFilter, TimeRange,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Routes that exist only for reading. `GET /api/requisitions`, `/api/funds` and
/// `/api/treasury/payments` sit on the routers that own those paths' POSTs.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/approvals", get(approvals))
        .route("/api/funds/{id}/ledger", get(fund_ledger))
        .route("/api/dashboard", get(dashboard))
}

const REQUISITIONS: &[&str] = &["requisitions"];
const CASH: &[&str] = &["cash"];
const BOTH: &[&str] = &["requisitions", "cash"];
/// The dashboard of a caller who reads budgets also waits for what budgets consumed.
const DASHBOARD_WITH_BUDGETS: &[&str] = &["requisitions", "cash", "budgets"];

type Err = crate::error::ErrorBody;

// ---------------------------------------------------------------------------------------------
// Query parameters: taken as text and checked here, so that errors name the parameter.

pub(crate) fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_uuid(field: &str, v: &Option<String>) -> ApiResult<Option<Uuid>> {
    present(v)
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ApiError::unprocessable(field, format!("`{field}` must be an id (a UUID)")))
        })
        .transpose()
}

pub(crate) fn parse_limit(v: &Option<String>) -> ApiResult<Option<i64>> {
    present(v)
        .map(|s| match s.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n.min(queries::MAX_LIMIT)),
            _ => Err(ApiError::unprocessable(
                "limit",
                format!("`limit` must be a whole number from 1 to {}", queries::MAX_LIMIT),
            )),
        })
        .transpose()
}

pub(crate) fn parse_min_position(v: &Option<String>) -> ApiResult<Option<i64>> {
    present(v)
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_min_position", "`min_position` must be an integer")
                    .with_field("min_position")
            })
        })
        .transpose()
}

pub(crate) fn parse_cursor(v: &Option<String>) -> ApiResult<Option<Cursor>> {
    let cursor = present(v).map(Cursor::decode).transpose().map_err(query_error)?;
    // A cursor is ours only if its time is one a row can have.
    if cursor.as_ref().is_some_and(|c| !SUPPORTED_YEARS.contains(&c.at.year())) {
        return Err(query_error(QueryError::InvalidCursor));
    }
    Ok(cursor)
}

pub(crate) fn parse_bool(field: &str, v: &Option<String>) -> ApiResult<bool> {
    match present(v).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(_) => Err(ApiError::unprocessable(field, format!("`{field}` must be true or false"))),
    }
}

/// Years (UTC) a date or time filter may name: the four-digit years of RFC 3339 and ISO 8601's
/// basic form, without year 0 (1 BC to PostgreSQL). chrono reads `-200000-01-01` and
/// `99999-01-01` as dates, which PostgreSQL's `timestamptz` (4713 BC to 294276 AD) cannot
/// hold; no requisition or payment has such a time anyway.
const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A date (`YYYY-MM-DD`, a whole UTC day) or an RFC 3339 instant, in [`SUPPORTED_YEARS`].
/// Returns the first instant it covers and the first instant after it (microseconds,
/// PostgreSQL's precision).
pub(crate) fn parse_instant(field: &str, s: &str) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let invalid = || {
        ApiError::unprocessable(
            field,
            format!(
                "`{field}` must be a date (YYYY-MM-DD) or an RFC 3339 time (2024-05-01T09:30:00Z) \
                 in the years {} to {}",
                SUPPORTED_YEARS.start(),
                SUPPORTED_YEARS.end()
            ),
        )
    };
    let (start, next) = if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).ok_or_else(invalid)?.and_utc();
        let next = date.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).ok_or_else(invalid)?.and_utc();
        (start, next)
    } else {
        let at = DateTime::parse_from_rfc3339(s).map_err(|_| invalid())?.with_timezone(&Utc);
        let start = DateTime::from_timestamp_micros(at.timestamp_micros()).ok_or_else(invalid)?;
        (start, start + Duration::microseconds(1))
    };
    if !SUPPORTED_YEARS.contains(&start.year()) {
        return Err(invalid());
    }
    Ok((start, next))
}

/// `from` (inclusive) and `to` (inclusive: a date covers its whole day) as a half-open range.
fn parse_range(from: &Option<String>, to: &Option<String>) -> ApiResult<TimeRange> {
    let from = present(from).map(|s| parse_instant("from", s)).transpose()?.map(|(start, _)| start);
    let before = present(to).map(|s| parse_instant("to", s)).transpose()?.map(|(_, next)| next);
    if let (Some(f), Some(b)) = (from, before) {
        if b <= f {
            return Err(ApiError::unprocessable("to", "`to` is before `from`"));
        }
    }
    Ok(TimeRange { from, before })
}

pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::InvalidCursor => ApiError::bad_request(
            "invalid_cursor",
            "`cursor` is not valid: pass the `next_cursor` of a previous page unchanged",
        )
        .with_field("cursor"),
        QueryError::Database(e) => ApiError::internal(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Requisitions

/// Filters and paging of the requisitions list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequisitionListQuery {
    /// One of `draft`, `pending_approval`, `changes_requested`, `approved`, `rejected`,
    /// `cancelled`, `paid`.
    #[param(example = "pending_approval")]
    pub status: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub fund_id: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub requester_id: Option<String>,
    /// Created at or after: a date (`YYYY-MM-DD`, from its start, UTC) or an RFC 3339 time.
    #[param(example = "2024-05-01")]
    pub from: Option<String>,
    /// Created at or before: a date (the whole day, UTC) or an RFC 3339 time.
    #[param(example = "2024-05-31")]
    pub to: Option<String>,
    /// Text in the purpose or the payee (case-insensitive; `%` and `_` are literal).
    pub q: Option<String>,
    /// Only the caller's own requisitions.
    #[param(value_type = Option<bool>)]
    pub mine: Option<String>,
    /// FP&A's review after payment: `unreviewed` (paid, not reviewed yet), `reviewed` or
    /// `flagged`.
    #[param(example = "unreviewed")]
    pub review: Option<String>,
    /// Items per page: 1 to 200 (larger values are capped), default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read models include the event at this position (a command's
    /// `position`); 503 with `Retry-After` if they do not within the bounded wait.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

/// Paging of the approvals inbox.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: 1 to 200 (larger values are capped), default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

/// A page of requisitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequisitionPage {
    pub items: Vec<RequisitionRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The read models' position this answer reflects.
    pub position: i64,
}

/// List requisitions, newest first (`created_at`, then id), with filters and keyset paging.
///
/// What the caller may see (`pettycash_domain::visibility`): their own; and of their company
/// (of no company, for a caller of no unit): auditors and admins every requisition; treasury
/// and the finance leads every submitted one; approvers submitted ones whose chain has one of
/// their roles in their part of the organisation (a branch manager their branch's, a
/// department head their department's, a regional manager their region's), and those they
/// approved. Drafts are their requester's (and auditors' and admins'). Filters narrow further.
#[utoipa::path(get, path = "/api/requisitions/", tag = "requisitions",
    params(RequisitionListQuery,
           ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = RequisitionPage), (status = 400, body = Err), (status = 422, body = Err),
              (status = 503, body = Err, description = "`min_position` not reached in time; retry")))]
pub async fn list_requisitions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Query(q): Query<RequisitionListQuery>,
) -> ApiResult<Response> {
    let body = requisitions_of(&state, &user, &q, &headers).await?;
    Ok(query_response(body.position, body))
}

/// The requisitions `user` may see, filtered and paged as `q` asks: the answer of
/// `GET /api/requisitions/` and of the requisitions page (`crate::web`), one query and one
/// visibility rule.
pub(crate) async fn requisitions_of(
    state: &AppState,
    user: &AuthUser,
    q: &RequisitionListQuery,
    headers: &HeaderMap,
) -> ApiResult<RequisitionPage> {
    let actor = user.actor();
    let status = present(&q.status)
        .map(|s| {
            s.parse::<Status>().map_err(|_| {
                let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::unprocessable("status", format!("`status` must be one of {}", known.join(", ")))
            })
        })
        .transpose()?;
    let fund_id = parse_uuid("fund_id", &q.fund_id)?;
    let mut requester_id = parse_uuid("requester_id", &q.requester_id)?;
    let created = parse_range(&q.from, &q.to)?;
    let mine = parse_bool("mine", &q.mine)?;
    let page = PageRequest { limit: parse_limit(&q.limit)?, after: parse_cursor(&q.cursor)? };
    let min = parse_min_position(&q.min_position)?;
    if mine {
        requester_id = Some(user.id);
    }
    let review = present(&q.review)
        .map(|r| {
            ReviewFilter::parse(r).ok_or_else(|| {
                ApiError::unprocessable("review", format!("`review` must be one of {}", ReviewFilter::NAMES))
            })
        })
        .transpose()?;
    let filter = RequisitionFilter {
        status,
        fund_id,
        requester_id,
        created,
        text: present(&q.q).map(String::from),
        review,
    };

    let position = consistent(state, REQUISITIONS, min, headers).await?;
    let scope = RequisitionScope::of(&actor);
    let found = queries::list_requisitions(&state.pool, &scope, &filter, page).await.map_err(query_error)?;
    Ok(RequisitionPage { items: found.items, next_cursor: found.next_cursor, position })
}

/// The caller's approvals inbox: requisitions pending approval whose current step needs a
/// role the caller holds (routed to them, or to someone who delegated the role to them and has
/// not approved in this round), which they did not request and have not approved. Oldest first
/// (the longest-waiting on top), keyset paging like the list. Empty for callers without an
/// approver role.
#[utoipa::path(get, path = "/api/approvals/", tag = "requisitions",
    params(PageQuery, ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = RequisitionPage), (status = 400, body = Err), (status = 422, body = Err),
              (status = 503, body = Err)))]
pub async fn approvals(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let body = approvals_of(&state, &user, &q, &headers).await?;
    Ok(query_response(body.position, body))
}

/// The approvals inbox of `user`, paged as `q` asks: the answer of `GET /api/approvals/` and
/// of the approvals page (`crate::web`).
pub(crate) async fn approvals_of(
    state: &AppState,
    user: &AuthUser,
    q: &PageQuery,
    headers: &HeaderMap,
) -> ApiResult<RequisitionPage> {
    let scope = RequisitionScope::of(&user.actor());
    let page = PageRequest { limit: parse_limit(&q.limit)?, after: parse_cursor(&q.cursor)? };
    let min = parse_min_position(&q.min_position)?;
    let position = consistent(state, REQUISITIONS, min, headers).await?;
    let now = state.commands.clock().now();
    let found = queries::approval_inbox(&state.pool, &scope, now, page).await.map_err(query_error)?;
    Ok(RequisitionPage { items: found.items, next_cursor: found.next_cursor, position })
}

// ---------------------------------------------------------------------------------------------
// Payments

/// Filters and paging of the payments list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    #[param(value_type = Option<Uuid>)]
    pub fund_id: Option<String>,
    /// Paid at or after: a date (`YYYY-MM-DD`, UTC) or an RFC 3339 time.
    pub from: Option<String>,
    /// Paid at or before: a date (the whole day, UTC) or an RFC 3339 time.
    pub to: Option<String>,
    /// Items per page: 1 to 200 (larger values are capped), default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

/// A page of payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<PaymentRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    pub position: i64,
}

/// Payments from the funds of the caller's company, newest first (`paid_at`, then payment id).
/// Treasury, auditors, admins, CFO, FP&A and group finance managers.
#[utoipa::path(get, path = "/api/treasury/payments/", tag = "treasury",
    params(PaymentListQuery, ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = PaymentPage), (status = 400, body = Err), (status = 403, body = Err),
              (status = 422, body = Err), (status = 503, body = Err)))]
pub async fn list_payments(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Query(q): Query<PaymentListQuery>,
) -> ApiResult<Response> {
    if !visibility::may_read_payments(&user.actor()) {
        let readers: Vec<&str> = visibility::PAYMENT_READERS.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::forbidden(
            "missing_role",
            format!("reading payments needs one of the roles {}", readers.join(", ")),
        ));
    }
    let filter = PaymentFilter {
        company: user.actor().company(),
        fund_id: parse_uuid("fund_id", &q.fund_id)?,
        paid: parse_range(&q.from, &q.to)?,
    };
    let page = PageRequest { limit: parse_limit(&q.limit)?, after: parse_cursor(&q.cursor)? };
    let min = parse_min_position(&q.min_position)?;
    let position = consistent(&state, CASH, min, &headers).await?;
    let found = queries::list_payments(&state.pool, &filter, page).await.map_err(query_error)?;
    Ok(query_response(position, PaymentPage { items: found.items, next_cursor: found.next_cursor, position }))
}

// ---------------------------------------------------------------------------------------------
// Funds and the cash book

/// `min_position` alone.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

/// Every fund.
#[derive(Debug, Serialize, ToSchema)]
pub struct FundList {
    pub items: Vec<FundRow>,
    pub position: i64,
}

/// Every fund of the caller's company (unscoped funds for a caller of no unit) with its balance
/// against its float, in the order they were opened (any signed-in user).
#[utoipa::path(get, path = "/api/funds/", tag = "funds",
    params(ConsistencyQuery, ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = FundList), (status = 400, body = Err), (status = 503, body = Err)))]
pub async fn list_funds(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Response> {
    let min = parse_min_position(&q.min_position)?;
    if !visibility::may_read_funds(&user.actor()) {
        return Err(ApiError::forbidden("missing_role", "reading funds needs a role that may read them"));
    }
    let position = consistent(&state, CASH, min, &headers).await?;
    let items = queries::list_funds(&state.pool, user.actor().company()).await?;
    Ok(query_response(position, FundList { items, position }))
}

/// Paging of the cash book.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Movements after this position (`next_after` of the previous page).
    #[param(value_type = Option<i64>)]
    pub after: Option<String>,
    /// Items per page: 1 to 200 (larger values are capped), default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

/// A page of a fund's cash book.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ledger {
    pub fund_id: Uuid,
    #[schema(example = "KES")]
    pub currency: String,
    pub items: Vec<LedgerRow>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<i64>,
    pub position: i64,
}

/// A fund's cash book: every movement (opening, disbursements) in order, with signed amounts
/// and the running balance. Any signed-in user of the fund's company (as `GET
/// /api/funds/{id}`).
#[utoipa::path(get, path = "/api/funds/{id}/ledger", tag = "funds",
    params(("id" = Uuid, Path), LedgerQuery,
           ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = Ledger), (status = 400, body = Err), (status = 404, body = Err),
              (status = 422, body = Err), (status = 503, body = Err)))]
pub async fn fund_ledger(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
    headers: HeaderMap,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Response> {
    let after = present(&q.after)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::unprocessable("after", "`after` must be a position (an integer)"))
        })
        .transpose()?;
    let limit = parse_limit(&q.limit)?;
    let min = parse_min_position(&q.min_position)?;
    let actor = user.actor();
    let position = consistent(&state, CASH, min, &headers).await?;
    let fund = queries::fund(&state.pool, id)
        .await?
        .filter(|f| visibility::may_read_fund(&actor, f.company_id))
        .ok_or_else(|| ApiError::not_found("fund"))?;
    let page = queries::ledger(&state.pool, id, after, limit).await?;
    let items = page.items;
    let body = Ledger { fund_id: id, currency: fund.currency, items, next_after: page.next_after, position };
    Ok(query_response(position, body))
}

// ---------------------------------------------------------------------------------------------
// Dashboard

/// A count and its amount per currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Totals {
    pub count: i64,
    /// Currency code → total, as a decimal string.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"KES": "1500.00"}))]
    pub amount: BTreeMap<String, Decimal>,
}

impl From<queries::Totals> for Totals {
    fn from(t: queries::Totals) -> Self {
        Self { count: t.count, amount: t.amount }
    }
}

/// Requisitions pending approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingTotals {
    pub count: i64,
    /// Currency code → total, as a decimal string.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"KES": "1500.00"}))]
    pub amount: BTreeMap<String, Decimal>,
    /// How many wait on the caller (the size of their approvals inbox).
    pub awaiting_me: i64,
}

/// Pending approvals by age.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingByAge {
    /// Submitted less than a day ago.
    pub under_1_day: Totals,
    /// One to three days ago.
    pub days_1_to_3: Totals,
    /// Three to seven days ago.
    pub days_3_to_7: Totals,
    /// Seven days ago or earlier.
    pub over_7_days: Totals,
}

impl From<queries::PendingByAge> for PendingByAge {
    fn from(p: queries::PendingByAge) -> Self {
        Self {
            under_1_day: p.under_1_day.into(),
            days_1_to_3: p.days_1_to_3.into(),
            days_3_to_7: p.days_3_to_7.into(),
            over_7_days: p.over_7_days.into(),
        }
    }
}

/// Paid in one calendar month (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthTotals {
    #[schema(example = "2026-11")]
    pub month: String,
    pub count: i64,
    /// Currency code → total, as a decimal string.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"KES": "1500.00"}))]
    pub amount: BTreeMap<String, Decimal>,
}

/// Open alerts (open or acknowledged) the caller may read, by severity.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AlertCounts {
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
}

impl From<Vec<(Severity, i64)>> for AlertCounts {
    fn from(counts: Vec<(Severity, i64)>) -> Self {
        let mut out = Self::default();
        for (severity, n) in counts {
            *match severity {
                Severity::Critical => &mut out.critical,
                Severity::High => &mut out.high,
                Severity::Medium => &mut out.medium,
                Severity::Low => &mut out.low,
            } += n;
        }
        out
    }
}

/// How many of the caller's funds stand at each status.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FundStatusCounts {
    pub ok: i64,
    pub warning: i64,
    pub critical: i64,
}

/// One budget scope's figures this month in one currency: the sums over the month's budgets
/// of that scope (cost centre, department or branch; budgets of different scopes cover the
/// same spending, so they are never added together).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetTotals {
    /// `cost_centre`, `department` or `branch`.
    #[schema(example = "department")]
    pub scope: String,
    #[schema(example = "KES")]
    pub currency: String,
    /// How many budgets.
    pub budgets: i64,
    #[schema(value_type = String, example = "50000.00")]
    pub amount: Decimal,
    /// Paid this month by the requisitions they cover.
    #[schema(value_type = String, example = "48000.00")]
    pub consumed: Decimal,
    /// `amount − consumed` (negative when overspent).
    #[schema(value_type = String, example = "2000.00")]
    pub remaining: Decimal,
    /// `consumed / amount × 100`, one decimal.
    #[schema(example = "96.0")]
    pub percent_consumed: String,
}

/// Spend this month against the month's budgets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetMonth {
    #[schema(example = "2026-12")]
    pub month: String,
    pub items: Vec<BudgetTotals>,
}

/// A fund's closing balance on one UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalancePoint {
    pub day: NaiveDate,
    /// `null` before the fund was opened.
    #[schema(value_type = Option<String>, example = "41250.50")]
    pub balance: Option<Decimal>,
}

/// One fund's balance against its float, day by day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FundBalanceSeries {
    pub fund_id: Uuid,
    pub name: String,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, example = "50000.00")]
    pub float: Decimal,
    #[schema(value_type = Option<String>, example = "12500.00")]
    pub reorder_level: Option<Decimal>,
    /// Oldest first, ending today.
    pub points: Vec<BalancePoint>,
}

/// Series for the dashboard's charts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardSeries {
    /// Paid per month, the last 12 months (this one included), oldest first.
    pub spend_by_month: Vec<MonthTotals>,
    /// Closing balance per day over the last `days` days of at most
    /// [`MAX_SERIES_FUNDS`] of the caller's funds: those `series_fund_ids` names, in its order;
    /// without it the funds that most need attention (critical, then warning, then the rest,
    /// each in the order of `funds`).
    pub fund_balances: Vec<FundBalanceSeries>,
    /// The caller's funds without a series in this answer (ask for them by
    /// `series_fund_ids`).
    pub fund_balances_omitted: i64,
    /// The days of `fund_balances` (30 or 90).
    pub days: u32,
}

/// Funds whose balance series one dashboard answer carries at most (a chart of more lines
/// is not read; the fund cards list every fund).
pub const MAX_SERIES_FUNDS: usize = 12;

/// `GET /api/dashboard/`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
    /// Days of the fund balance chart: 30 (default) or 90.
    #[param(value_type = Option<u32>)]
    pub days: Option<String>,
    /// The funds whose balance series to return, comma-separated ids, at most 12 (default:
    /// the 12 that most need attention). A fund the caller may not read is 404.
    #[param(value_type = Option<String>, example = "0b5c6a1e-6f3a-4a59-9d65-1f1d2c3b4a5e")]
    pub series_fund_ids: Option<String>,
}

/// Requisitions per status; every status is present.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub draft: i64,
    pub pending_approval: i64,
    pub changes_requested: i64,
    pub approved: i64,
    pub rejected: i64,
    pub cancelled: i64,
    pub paid: i64,
}

impl StatusCounts {
    fn from_map(m: &BTreeMap<Status, i64>) -> Self {
        let n = |s: Status| m.get(&s).copied().unwrap_or_default();
        Self {
            draft: n(Status::Draft),
            pending_approval: n(Status::PendingApproval),
            changes_requested: n(Status::ChangesRequested),
            approved: n(Status::Approved),
            rejected: n(Status::Rejected),
            cancelled: n(Status::Cancelled),
            paid: n(Status::Paid),
        }
    }
}

/// The dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    /// `all` (every requisition of the caller's company; every unscoped one for a caller of no
    /// unit) or `own` (staff: the caller's requisitions only).
    #[schema(example = "all")]
    pub scope: String,
    pub pending_approval: PendingTotals,
    /// The requisitions of `pending_approval` by the age of their (latest) submission.
    pub pending_by_age: PendingByAge,
    /// Paid since midnight UTC.
    pub paid_today: Totals,
    /// Paid since the first of the month, midnight UTC.
    pub paid_month_to_date: Totals,
    pub by_status: StatusCounts,
    pub funds: Vec<FundRow>,
    /// Mean seconds from (latest) submission to payment over paid requisitions; `null` when
    /// none is paid.
    pub average_seconds_to_payment: Option<f64>,
    /// Paid since Monday, midnight UTC.
    pub paid_week_to_date: Totals,
    /// `funds` by status (`ok`, `warning`, `critical`: `FundStatus`).
    pub fund_status: FundStatusCounts,
    /// `funds` with a replenishment requested or approved and not yet funded or rejected.
    pub pending_replenishments: i64,
    /// Cash counts of `funds` whose variance waits for an approver.
    pub pending_variances: i64,
    /// Spend this month against budget; `null` for a caller who may not read budgets.
    pub budget_this_month: Option<BudgetMonth>,
    /// Alerts not yet resolved that the caller may read (`GET /api/alerts/`), by severity.
    pub open_alerts: AlertCounts,
    pub series: DashboardSeries,
    pub position: i64,
}

/// One view of the numbers: pending approvals (how many wait on the caller, and by age),
/// paid today, this week and month to date (UTC), requisitions by status, fund cards (balance
/// against float and reorder level, status), pending replenishments and variances, spend this
/// month against budget, and series for charts (spend by month, each fund's daily closing
/// balance over `days` days). Staff see their own requisitions' numbers; treasury, auditors,
/// admins and approvers their company's; funds and budgets are those the caller may read.
/// Amounts are per currency. Everything is read from small pre-aggregated read-model rows.
#[utoipa::path(get, path = "/api/dashboard/", tag = "dashboard",
    params(DashboardQuery, ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses((status = 200, body = Dashboard), (status = 400, body = Err), (status = 403, body = Err),
              (status = 503, body = Err)))]
pub async fn dashboard(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    Query(q): Query<DashboardQuery>,
) -> ApiResult<Response> {
    let min = parse_min_position(&q.min_position)?;
    let days = match present(&q.days) {
        None => queries::BALANCE_DAYS[0],
        Some(text) => {
            text.parse::<u32>().ok().filter(|d| queries::BALANCE_DAYS.contains(d)).ok_or_else(|| {
                ApiError::bad_request("invalid_days", "`days` must be 30 or 90").with_field("days")
            })?
        }
    };
    let series_funds = parse_series_funds(&q.series_fund_ids)?;
    let body = dashboard_of(&state, &user, days, &series_funds, min, &headers).await?;
    Ok(query_response(body.position, body))
}

/// `series_fund_ids`: at most [`MAX_SERIES_FUNDS`] distinct ids.
fn parse_series_funds(v: &Option<String>) -> ApiResult<Vec<Uuid>> {
    const FIELD: &str = "series_fund_ids";
    let mut ids: Vec<Uuid> = vec![];
    for part in present(v).into_iter().flat_map(|s| s.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let id = Uuid::parse_str(part).map_err(|_| {
            ApiError::unprocessable(FIELD, format!("`{FIELD}` must be fund ids (UUIDs) separated by commas"))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_SERIES_FUNDS {
        return Err(ApiError::unprocessable(
            FIELD,
            format!("`{FIELD}` names at most {MAX_SERIES_FUNDS} funds"),
        ));
    }
    Ok(ids)
}

/// A fund card's status (`ok` for a text the read model would never hold).
fn status_of(fund: &FundRow) -> FundStatus {
    FundStatus::parse(&fund.status).unwrap_or(FundStatus::Ok)
}

/// The funds whose balance series a dashboard carries: those `asked` for (each must be one of
/// `funds`, the caller's), else the [`MAX_SERIES_FUNDS`] that most need attention.
fn charted_funds<'a>(funds: &'a [FundRow], asked: &[Uuid]) -> ApiResult<Vec<&'a FundRow>> {
    if !asked.is_empty() {
        return asked
            .iter()
            .map(|id| {
                funds.iter().find(|f| f.id == *id).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "fund_not_found",
                        format!("no fund {id} you may read"),
                    )
                    .with_field("series_fund_ids")
                })
            })
            .collect();
    }
    let mut charted: Vec<&FundRow> = funds.iter().collect();
    // Stable: within a status, the order of `funds`.
    charted.sort_by_key(|f| std::cmp::Reverse(status_of(f)));
    charted.truncate(MAX_SERIES_FUNDS);
    Ok(charted)
}

/// The dashboard of `user` with `days` of fund balances (one of `queries::BALANCE_DAYS`) for
/// the funds `series_funds` names (empty: the default choice of [`charted_funds`]), once the
/// read models reach `min` (or the `X-Min-Position` of `headers`): the figures of
/// `GET /api/dashboard/` and of the dashboard page (`crate::web`), from one set of queries.
pub(crate) async fn dashboard_of(
    state: &AppState,
    user: &AuthUser,
    days: u32,
    series_funds: &[Uuid],
    min: Option<i64>,
    headers: &HeaderMap,
) -> ApiResult<Dashboard> {
    let actor = user.actor();
    let budgets = visibility::may_read_budgets(&actor);
    let models: &[&str] = if budgets { DASHBOARD_WITH_BUDGETS } else { BOTH };
    let position = consistent(state, models, min, headers).await?;
    let scope = DashboardScope::of(&actor);
    let all = scope != DashboardScope::Own;
    // Days and months as the read models date rows: by the time events were recorded.
    let today = Utc::now();
    let now = state.commands.clock().now();
    // The parts are independent reads: run side by side, each on its own connection, the
    // answer waits for the slowest rather than for their sum.
    let numbers = async { Ok::<_, ApiError>(queries::dashboard(&state.pool, scope, user.id, today).await?) };
    let awaiting_me = async {
        Ok::<_, ApiError>(
            queries::approval_inbox_count(&state.pool, &RequisitionScope::of(&actor), now).await?,
        )
    };
    let funds = async {
        if !visibility::may_read_funds(&actor) {
            return Ok::<_, ApiError>((vec![], vec![]));
        }
        let funds = queries::list_funds(&state.pool, actor.company()).await?;
        let charted: Vec<FundBalanceSeries> = charted_funds(&funds, series_funds)?
            .into_iter()
            .map(|f| FundBalanceSeries {
                fund_id: f.id,
                name: f.name.clone(),
                currency: f.currency.clone(),
                float: f.float,
                reorder_level: f.reorder_level,
                points: vec![],
            })
            .collect();
        let ids: Vec<Uuid> = charted.iter().map(|f| f.fund_id).collect();
        let balances = queries::balance_series(&state.pool, &ids, days, today).await?;
        let charted = charted
            .into_iter()
            .zip(balances)
            .map(|(f, b)| FundBalanceSeries {
                points: b.points.into_iter().map(|(day, balance)| BalancePoint { day, balance }).collect(),
                ..f
            })
            .collect();
        Ok((funds, charted))
    };
    let budget_this_month = async {
        if !budgets {
            return Ok::<_, ApiError>(None);
        }
        let month = Month::of(now);
        let lines = state.commands.budget_report(&actor, month).await?;
        Ok(Some(BudgetMonth { month: month.to_string(), items: budget_totals(&lines) }))
    };
    let open_alerts =
        async { Ok::<_, ApiError>(alerts::open_by_severity(&state.pool, &AlertScope::of(&actor)).await?) };
    let (numbers, awaiting_me, (funds, fund_balances), budget_this_month, open_alerts) =
        tokio::try_join!(numbers, awaiting_me, funds, budget_this_month, open_alerts)?;
    let mut fund_status = FundStatusCounts::default();
    for f in &funds {
        match status_of(f) {
            FundStatus::Critical => fund_status.critical += 1,
            FundStatus::Warning => fund_status.warning += 1,
            FundStatus::Ok => fund_status.ok += 1,
        }
    }
    Ok(Dashboard {
        scope: if all { "all" } else { "own" }.into(),
        pending_approval: PendingTotals {
            count: numbers.pending_approval.count,
            amount: numbers.pending_approval.amount,
            awaiting_me,
        },
        pending_by_age: numbers.pending_by_age.into(),
        paid_today: numbers.paid_today.into(),
        paid_month_to_date: numbers.paid_month_to_date.into(),
        by_status: StatusCounts::from_map(&numbers.by_status),
        average_seconds_to_payment: numbers.average_seconds_to_payment,
        paid_week_to_date: numbers.paid_week_to_date.into(),
        fund_status,
        pending_replenishments: funds.iter().filter(|f| f.open_replenishment_id.is_some()).count() as i64,
        pending_variances: funds.iter().map(|f| i64::from(f.pending_variances)).sum(),
        budget_this_month,
        open_alerts: open_alerts.into(),
        series: DashboardSeries {
            spend_by_month: numbers
                .spend_by_month
                .into_iter()
                .map(|m| MonthTotals { month: m.month, count: m.count, amount: m.amount })
                .collect(),
            fund_balances_omitted: (funds.len() - fund_balances.len()) as i64,
            fund_balances,
            days,
        },
        funds,
        position,
    })
}

/// The month's budget lines summed per scope kind and currency.
fn budget_totals(lines: &[BudgetLine]) -> Vec<BudgetTotals> {
    let mut sums: BTreeMap<(String, String), (i64, Decimal, Decimal)> = BTreeMap::new();
    for l in lines {
        let s = sums.entry((l.scope.clone(), l.currency.clone())).or_default();
        s.0 += 1;
        s.1 += l.amount;
        s.2 += l.consumed;
    }
    sums.into_iter()
        .map(|((scope, currency), (budgets, amount, consumed))| BudgetTotals {
            scope,
            currency,
            budgets,
            amount,
            consumed,
            remaining: amount - consumed,
            percent_consumed: queries::percent(consumed, amount),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_whole_days_and_times_are_inclusive() {
        let r = parse_range(&Some("2024-05-01".into()), &Some("2024-05-01".into())).unwrap();
        assert_eq!(r.from.unwrap().to_rfc3339(), "2024-05-01T00:00:00+00:00");
        assert_eq!(r.before.unwrap().to_rfc3339(), "2024-05-02T00:00:00+00:00");
        let r = parse_range(&None, &Some("2024-05-01T10:00:00+02:00".into())).unwrap();
        assert_eq!(r.before.unwrap().timestamp_micros(), r.before.unwrap().timestamp() * 1_000_000 + 1);
        for (from, to, field) in [
            ("2024-13-01", "", "from"),
            ("", "yesterday", "to"),
            ("2024-05-02", "2024-05-01", "to"),
            ("-200000-01-01", "", "from"),
            ("", "99999-01-01", "to"),
            ("0000-12-31", "", "from"),
            ("", "10000-01-01T00:00:00Z", "to"),
        ] {
            let err = parse_range(&Some(from.into()), &Some(to.into())).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{from} {to}");
        }
        let r = parse_range(&Some("0001-01-01".into()), &Some("9999-12-31".into())).unwrap();
        assert_eq!(r.before.unwrap().to_rfc3339(), "+10000-01-01T00:00:00+00:00");
    }
}
