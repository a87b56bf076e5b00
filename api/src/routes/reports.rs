//! Reports: `GET /api/reports/` lists the ones the caller may run, `GET /api/reports/{name}`
//! runs one in JSON, CSV, XLSX or PDF (`format=` or the `Accept` header).
//!
//! The figures are `pettycash_projections::reports`'s (from the read models, within what
//! `ReportScope` lets the caller see); the formats are [`crate::reports`]'. A report the caller
//! may not run answers 404, as an object they may not see does. Bad parameters answer 400
//! naming the parameter.

use super::reads::{parse_instant, present};
use super::{consistent, PROJECTION_POSITION_HEADER};
use crate::error::{ApiError, ApiResult};
use crate::extract::CurrentUser;
use crate::reports::{self, Format};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use pettycash_commands::auth::AuthUser;
use pettycash_domain::report::{ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_domain::Actor;
use pettycash_projections::reports::{ReportContext, ReportError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/reports", get(list)).route("/api/reports/{name}", get(run))
}

/// The read models reports are made from (`min_position` waits for all of them).
const PROJECTIONS: &[&str] = &["requisitions", "cash", "budgets"];

type Err = crate::error::ErrorBody;

/// A report the caller may run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportInfo {
    /// The `{name}` of `GET /api/reports/{name}`.
    #[schema(example = "cash-book")]
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// `json`, `csv`, `xlsx`, `pdf`.
    pub formats: Vec<&'static str>,
    /// The query parameters it takes besides `from`, `to`, `period` and `format`.
    pub filters: &'static [&'static str],
    /// Those it cannot run without.
    pub required: &'static [&'static str],
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub reports: Vec<ReportInfo>,
}

/// The reports the caller may run (each then narrowed to what they may see).
#[utoipa::path(get, path = "/api/reports/", tag = "reports",
    responses((status = 200, body = ReportList), (status = 401, body = Err)))]
pub async fn list(CurrentUser(user): CurrentUser) -> Json<ReportList> {
    Json(ReportList { reports: available(&user.actor()) })
}

/// The reports `actor` may run: `GET /api/reports/`'s list and the reports page's
/// (`crate::web`).
pub(crate) fn available(actor: &Actor) -> Vec<ReportInfo> {
    ReportName::ALL
        .into_iter()
        .filter(|n| ReportScope::of(actor, *n).is_some())
        .map(|n| ReportInfo {
            name: n.as_str(),
            title: n.title(),
            description: n.description(),
            formats: Format::ALL.iter().map(|f| f.as_str()).collect(),
            filters: n.parameters(),
            required: n.required(),
        })
        .collect()
}

/// Parameters of a report.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// From (inclusive): a date (`YYYY-MM-DD`, from its start, UTC) or an RFC 3339 time.
    /// Default: 30 days before now.
    #[param(example = "2026-11-01")]
    pub from: Option<String>,
    /// To (inclusive): a date (the whole day, UTC) or an RFC 3339 time. Default: now.
    #[param(example = "2026-11-30")]
    pub to: Option<String>,
    /// A calendar month (UTC), e.g. a closed period: instead of `from` and `to`.
    #[param(example = "2026-11")]
    pub period: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub company_id: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub region_id: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub branch_id: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub department_id: Option<String>,
    #[param(value_type = Option<Uuid>)]
    pub cost_centre_id: Option<String>,
    /// The fund (required by `cash-book`).
    #[param(value_type = Option<Uuid>)]
    pub fund_id: Option<String>,
    /// `approvals`: approvals waiting longer than this many days are stuck (default 7).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub stuck_days: Option<String>,
    /// `forecast`: days of history the daily spend is taken from (default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub lookback_days: Option<String>,
    /// `json` (default), `csv`, `xlsx` or `pdf`; else the `Accept` header decides.
    pub format: Option<String>,
    /// Wait until the read models include the event at this position.
    #[param(value_type = Option<i64>)]
    pub min_position: Option<String>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_field(field)
}

/// Any 4xx of a shared parser, as this route's 400 naming the same field.
fn as_bad(e: ApiError) -> ApiError {
    match e.field {
        Some(field) if e.status.is_client_error() => bad(&field, e.message),
        _ => e,
    }
}

fn uuid(field: &str, v: &Option<String>) -> ApiResult<Option<Uuid>> {
    present(v)
        .map(|s| Uuid::parse_str(s).map_err(|_| bad(field, format!("`{field}` must be an id (a UUID)"))))
        .transpose()
}

fn days(field: &str, v: &Option<String>, default: u32) -> ApiResult<u32> {
    match present(v) {
        None => Ok(default),
        Some(s) => match s.parse::<u32>() {
            Ok(n @ 1..=3650) => Ok(n),
            _ => Err(bad(field, format!("`{field}` must be a whole number of days from 1 to 3650"))),
        },
    }
}

/// `YYYY-MM` as the instants `[first day, first day of the next month)`.
fn month(s: &str) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    ReportParams::month(s).ok_or_else(|| bad("period", "`period` must be a month, YYYY-MM (e.g. 2026-11)"))
}

/// The period: `period`, or `from`/`to`, or the last 30 days up to `now`.
fn range(q: &ReportQuery, now: DateTime<Utc>) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    if let Some(p) = present(&q.period) {
        if present(&q.from).is_some() || present(&q.to).is_some() {
            return Err(bad("period", "give either `period` or `from`/`to`, not both"));
        }
        return month(p);
    }
    let from = present(&q.from).map(|s| parse_instant("from", s)).transpose().map_err(as_bad)?;
    let to = present(&q.to).map(|s| parse_instant("to", s)).transpose().map_err(as_bad)?;
    // `to` is inclusive: a date covers its whole day, an instant itself.
    let to = to.map_or(now, |(_, next)| next);
    let from = from.map_or(to - Duration::days(ReportParams::DEFAULT_DAYS), |(start, _)| start);
    if to <= from {
        return Err(bad("to", "`to` is before `from`"));
    }
    Ok((from, to))
}

fn format(q: &ReportQuery, headers: &HeaderMap) -> ApiResult<Format> {
    if let Some(f) = present(&q.format) {
        return Format::parse(f).ok_or_else(|| bad("format", "`format` must be one of json, csv, xlsx, pdf"));
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    Ok(Format::from_accept(accept).unwrap_or(Format::Json))
}

fn params(q: &ReportQuery, now: DateTime<Utc>) -> ApiResult<ReportParams> {
    let (from, to) = range(q, now)?;
    Ok(ReportParams {
        from,
        to,
        units: UnitFilter {
            company_id: uuid("company_id", &q.company_id)?,
            region_id: uuid("region_id", &q.region_id)?,
            branch_id: uuid("branch_id", &q.branch_id)?,
            department_id: uuid("department_id", &q.department_id)?,
            cost_centre_id: uuid("cost_centre_id", &q.cost_centre_id)?,
            fund_id: uuid("fund_id", &q.fund_id)?,
        },
        stuck_days: days("stuck_days", &q.stuck_days, ReportParams::DEFAULT_STUCK_DAYS)?,
        lookback_days: days("lookback_days", &q.lookback_days, ReportParams::DEFAULT_LOOKBACK_DAYS)?,
    })
}

/// The report `name` if `user` may run it; 404 for an unknown one and for one they may not
/// run (as the visibility rule says of what is not theirs).
pub(crate) fn report_name(user: &AuthUser, name: &str) -> ApiResult<ReportName> {
    name.parse::<ReportName>()
        .ok()
        .filter(|n| ReportScope::of(&user.actor(), *n).is_some())
        .ok_or_else(|| ApiError::not_found("report"))
}

/// What running `name` for `user` takes, from the query (its period and filters, checked,
/// errors naming the parameter), once the read models reach the query's `min_position`, and
/// the position they reflect. The API's `run` and the report pages (`crate::web`) both start
/// here: one path to a report.
pub(crate) async fn context(
    state: &AppState,
    user: &AuthUser,
    name: ReportName,
    q: &ReportQuery,
    headers: &HeaderMap,
) -> ApiResult<(ReportContext, i64)> {
    let actor = user.actor();
    let scope = ReportScope::of(&actor, name).ok_or_else(|| ApiError::not_found("report"))?;
    let now = state.commands.clock().now();
    let params = params(q, now)?;
    let min = present(&q.min_position)
        .map(|s| s.parse::<i64>().map_err(|_| bad("min_position", "`min_position` must be an integer")))
        .transpose()?;
    let position = consistent(state, PROJECTIONS, min, headers).await?;
    Ok((ReportContext { pool: state.pool.clone(), actor, scope, params, now }, position))
}

/// A report's error as the API answers it.
pub fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::NotFound { field } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("`{field}`: not found"))
                .with_field(field)
        }
        ReportError::Invalid { field, message } => bad(field, message),
        ReportError::Db(e) => ApiError::internal(e),
        ReportError::Other(e) => ApiError::internal(e),
    }
}

/// The most rows a PDF is laid out with: typst takes about 1.5 ms of CPU a row (a debug
/// build; a few thousand rows take seconds), and a PDF of tens of thousands of rows is read
/// by nobody. Longer reports are for CSV (streamed) or XLSX.
pub const MAX_PDF_ROWS: usize = 10_000;

/// 400 `format` when `report` has more rows than a PDF takes.
fn fits_a_pdf(report: &pettycash_domain::report::Report) -> ApiResult<()> {
    let rows: usize = report.sections.iter().map(|s| s.rows.len()).sum();
    if rows > MAX_PDF_ROWS {
        return Err(bad(
            "format",
            format!(
                "the report has {rows} rows and a PDF at most {MAX_PDF_ROWS}: ask for csv or xlsx, \
                 or a shorter period"
            ),
        ));
    }
    Ok(())
}

/// The file name: `cash-book-2026-11.csv` for a calendar month, else
/// `cash-book-2026-11-03-to-2026-11-20.pdf` (the last day included).
pub fn file_name(name: ReportName, params: &ReportParams, format: Format) -> String {
    let (from, to) = (params.from, params.to);
    let midnight = |t: DateTime<Utc>| t.time() == chrono::NaiveTime::MIN;
    let whole_month = midnight(from)
        && midnight(to)
        && from.date_naive().format("%d").to_string() == "01"
        && from.date_naive().checked_add_months(chrono::Months::new(1)) == Some(to.date_naive());
    let period = if whole_month {
        from.format("%Y-%m").to_string()
    } else {
        let last = if midnight(to) { to - Duration::days(1) } else { to };
        format!("{}-to-{}", from.format("%Y-%m-%d"), last.format("%Y-%m-%d"))
    };
    format!("{name}-{period}.{}", format.as_str())
}

/// Run a report.
///
/// `{name}`: one of `GET /api/reports/`'s names. 404 for an unknown name, a report the caller
/// may not run, or a filter naming something they may not see (`field` says which). The
/// period is `period=YYYY-MM`, or `from`/`to`, default the last 30 days. The format is
/// `format=` or the first of the `Accept` header's media types that is one
/// (`application/json`, `text/csv`,
/// `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`, `application/pdf`),
/// default JSON. CSV is streamed for long reports; a text cell starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a leading `'`. Files come with `Content-Disposition`
/// (`attachment` except JSON) and a name like `cash-book-2026-11.csv`.
#[utoipa::path(get, path = "/api/reports/{name}", tag = "reports",
    params(("name" = String, Path, example = "cash-book"), ReportQuery,
           ("X-Min-Position" = Option<i64>, Header, description = "same as `min_position`")),
    responses(
        (status = 200, description = "The report: JSON (`Report`), CSV, XLSX or PDF",
         content(("application/json"), ("text/csv"),
                 ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("application/pdf"))),
        (status = 400, body = Err), (status = 404, body = Err), (status = 503, body = Err)))]
pub async fn run(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let name = report_name(&user, &name)?;
    let format = format(&q, &headers)?;
    let (ctx, position) = context(&state, &user, name, &q, &headers).await?;

    let streamed =
        if format == Format::Csv { pettycash_projections::reports::stream(name, &ctx) } else { None };
    let body = match streamed {
        Some((columns, rows)) => {
            // The first row (or the error that stops the report before any row) is awaited
            // here, so that a 404 or 400 is still an error response.
            let mut rows = rows.peekable();
            if let Some(Err(_)) = std::pin::Pin::new(&mut rows).peek().await {
                if let Some(Err(e)) = rows.next().await {
                    return Err(report_error(e));
                }
            }
            let header = reports::csv::header(&columns);
            let body = futures::stream::iter([Ok::<_, ReportError>(header)])
                .chain(rows.map_ok(|cells| reports::csv::row(&cells)));
            Body::from_stream(body.map_err(|e| {
                tracing::error!(error = format!("{e:#}"), "report stream failed");
                std::io::Error::other(e.to_string())
            }))
        }
        None => {
            let report = pettycash_projections::reports::run(name, &ctx).await.map_err(report_error)?;
            if format == Format::Pdf {
                fits_a_pdf(&report)?;
            }
            // XLSX and PDF take a moment of CPU: off the async workers.
            let bytes = tokio::task::spawn_blocking(move || reports::render(&report, format))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            Body::from(bytes)
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    let disposition = if format == Format::Json { "inline" } else { "attachment" };
    let file = file_name(name, &ctx.params, format);
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Figures of the caller's scope: not for shared caches.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(PROJECTION_POSITION_HEADER, HeaderValue::from(position));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pettycash_domain::report::{Cell, Report, Section};

    #[test]
    fn a_pdf_takes_at_most_max_pdf_rows_and_file_names_follow_the_period() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let params = ReportParams {
            from: at("2026-11-01T00:00:00Z"),
            to: at("2026-12-01T00:00:00Z"),
            units: UnitFilter::default(),
            stuck_days: 7,
            lookback_days: 30,
        };
        let report = |rows: usize| Report {
            name: ReportName::CashBook,
            title: "t".into(),
            params: params.clone(),
            filters: vec![],
            summary: vec![],
            sections: vec![Section {
                key: "s",
                title: "s".into(),
                columns: vec![],
                rows: vec![vec![Cell::Empty]; rows],
            }],
            generated_at: at("2026-12-01T00:00:00Z"),
        };
        assert!(fits_a_pdf(&report(MAX_PDF_ROWS)).is_ok());
        let e = fits_a_pdf(&report(MAX_PDF_ROWS + 1)).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some("format")));

        assert_eq!(file_name(ReportName::CashBook, &params, Format::Csv), "cash-book-2026-11.csv");
        let days =
            ReportParams { to: at("2026-11-21T00:00:00Z"), from: at("2026-11-03T00:00:00Z"), ..params };
        assert_eq!(
            file_name(ReportName::Spending, &days, Format::Pdf),
            "spending-2026-11-03-to-2026-11-20.pdf"
        );
    }

    #[test]
    fn the_accept_header_picks_the_first_known_format() {
        assert_eq!(Format::from_accept("text/html, text/csv;q=0.9, application/pdf"), Some(Format::Csv));
        assert_eq!(Format::from_accept("*/*"), None);
        assert_eq!(
            Format::from_accept("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            Some(Format::Xlsx)
        );
    }
}
