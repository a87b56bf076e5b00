//! `/reports/` (the old system's address): the reports the user may run
//! (`routes::reports::available`, as `GET /api/reports/` lists them), each with a small form
//! that downloads it from the API as CSV, XLSX or PDF; `/reports/{name}`: one report on the
//! page (its figures and tables, a chart where one helps) for a period and fund, with the same
//! downloads. Filters by unit (region, branch, …) are the API's; the pages offer the period
//! and the fund.

use super::charts::{BarChart, LineChart};
use super::dashboard::money;
use super::layout::Layout;
use super::render;
use super::requisitions::{funds_of, Choice};
use super::session::PageUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::reads::present;
use crate::routes::reports::{available, context, report_error, report_name, ReportInfo, ReportQuery};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use pettycash_domain::report::{Cell, CellKind, Report, ReportName, Section};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The formats offered for download (the API also answers JSON, which is for programs).
const DOWNLOADS: [(&str, &str); 3] = [("csv", "CSV"), ("xlsx", "Excel"), ("pdf", "PDF")];

/// A report as the page lists it.
pub struct ReportEntry {
    pub info: ReportInfo,
    pub takes_fund: bool,
    pub needs_fund: bool,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    layout: Layout,
    reports: Vec<ReportEntry>,
    funds: Vec<Choice>,
    downloads: [(&'static str, &'static str); 3],
}

/// `GET /reports/`.
pub async fn page(State(state): State<AppState>, PageUser { user, token }: PageUser) -> ApiResult<Response> {
    let actor = user.actor();
    let reports: Vec<ReportEntry> = available(&actor)
        .into_iter()
        .map(|info| ReportEntry {
            takes_fund: info.filters.contains(&"fund_id"),
            needs_fund: info.required.contains(&"fund_id"),
            info,
        })
        .collect();
    let funds =
        if reports.iter().any(|r| r.takes_fund) { fund_choices(&state, &actor).await? } else { vec![] };
    let layout = Layout::signed_in(&state, "Reports", &user, &token, "/reports/")?;
    render(StatusCode::OK, &ReportsPage { layout, reports, funds, downloads: DOWNLOADS })
}

/// Rows of a section a page shows at most; the downloads carry them all.
pub const PAGE_ROWS: usize = 200;

/// One cell as the page shows it.
pub struct CellView {
    pub text: String,
    /// Right-aligned (numbers, money).
    pub num: bool,
}

/// One table of the report.
pub struct SectionView {
    pub title: String,
    pub columns: Vec<(String, bool)>,
    pub rows: Vec<Vec<CellView>>,
    /// Rows in the report (more than `rows` holds when cut at [`PAGE_ROWS`]).
    pub total_rows: usize,
}

/// The report's figures, tables and a chart where one helps.
pub struct ReportView {
    pub filters: Vec<(String, String)>,
    pub summary: Vec<(String, String)>,
    pub sections: Vec<SectionView>,
    pub line_charts: Vec<LineChart>,
    pub bar_charts: Vec<BarChart>,
    pub generated_at: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    layout: Layout,
    report: ReportEntry,
    funds: Vec<Choice>,
    /// The query as given, for the form and the downloads.
    from: String,
    to: String,
    period: String,
    fund_id: String,
    /// A parameter's error, next to it (`error_field`); or a report's.
    error: Option<String>,
    error_field: Option<String>,
    view: Option<ReportView>,
    downloads: [(&'static str, &'static str); 3],
    page_rows: usize,
}

/// `GET /reports/{name}`: the report on the page for the period and fund of the query (the
/// last 30 days without one), through the API's own report code (`routes::reports::context`
/// and `pettycash_projections::reports::run`: the same figures, the same visibility rule), and
/// the same query's CSV / XLSX / PDF downloads. A report the user may not run is 404.
pub async fn report_page(
    State(state): State<AppState>,
    PageUser { user, token }: PageUser,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let name = report_name(&user, &name)?;
    let actor = user.actor();
    let info = available(&actor)
        .into_iter()
        .find(|i| i.name == name.as_str())
        .ok_or_else(|| ApiError::not_found("report"))?;
    let report = ReportEntry {
        takes_fund: info.filters.contains(&"fund_id"),
        needs_fund: info.required.contains(&"fund_id"),
        info,
    };
    let funds = if report.takes_fund { fund_choices(&state, &actor).await? } else { vec![] };
    let fund_missing = report.needs_fund && present(&q.fund_id).is_none();
    let (view, error) = if fund_missing {
        // Nothing to show until a fund is chosen: not an error yet.
        (None, None)
    } else {
        let ran = async {
            let (ctx, _) = context(&state, &user, name, &q, &HeaderMap::new()).await?;
            pettycash_projections::reports::run(name, &ctx).await.map_err(report_error)
        }
        .await;
        match ran {
            Ok(r) => (Some(view_of(&r)), None),
            // The user's own mistakes are shown next to the field; anything else is an error page.
            Err(e) if e.status.is_client_error() => (None, Some(e)),
            Err(e) => return Err(e),
        }
    };
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let layout = Layout::signed_in(&state, report.info.title, &user, &token, "/reports/")?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let page = ReportPage {
        layout,
        report,
        funds,
        from: text(&q.from),
        to: text(&q.to),
        period: text(&q.period),
        fund_id: text(&q.fund_id),
        error_field: error.as_ref().and_then(|e| e.field.clone()),
        error: error.map(|e| e.message),
        view,
        downloads: DOWNLOADS,
        page_rows: PAGE_ROWS,
    };
    render(status, &page)
}

/// The funds the user may read, for the reports that take one.
async fn fund_choices(state: &AppState, actor: &pettycash_domain::Actor) -> ApiResult<Vec<Choice>> {
    Ok(super::requisitions::fund_choices(&funds_of(state, actor).await?))
}

fn view_of(r: &Report) -> ReportView {
    let cell = |c: &Cell| CellView {
        text: c.to_string(),
        num: matches!(c, Cell::Money(_) | Cell::Integer(_) | Cell::Number(_) | Cell::Percent(_)),
    };
    let sections = r
        .sections
        .iter()
        .map(|s| SectionView {
            title: s.title.clone(),
            columns: s
                .columns
                .iter()
                .map(|c| {
                    let num = matches!(
                        c.kind,
                        CellKind::Money | CellKind::Integer | CellKind::Number | CellKind::Percent
                    );
                    (c.title.to_string(), num)
                })
                .collect(),
            rows: s.rows.iter().take(PAGE_ROWS).map(|row| row.iter().map(cell).collect()).collect(),
            total_rows: s.rows.len(),
        })
        .collect();
    let summary = r
        .summary
        .iter()
        .map(|f| {
            let value = match (&f.currency, &f.value) {
                (Some(currency), Cell::Money(d)) => money(currency, *d),
                (Some(currency), v) => format!("{v} {currency}"),
                (None, v) => v.to_string(),
            };
            (f.title.clone(), value)
        })
        .collect();
    ReportView {
        filters: r.filters.clone(),
        summary,
        sections,
        line_charts: balance_chart(r).into_iter().collect(),
        bar_charts: category_chart(r).into_iter().collect(),
        generated_at: r.generated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// The index of column `key` in `section`.
fn column(section: &Section, key: &str) -> Option<usize> {
    section.columns.iter().position(|c| c.key == key)
}

/// A cash book's closing balance per day, as a line.
fn balance_chart(r: &Report) -> Option<LineChart> {
    if r.name != ReportName::CashBook {
        return None;
    }
    let s = r.sections.first()?;
    let (at, balance) = (column(s, "at")?, column(s, "balance")?);
    let mut closing: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    for row in &s.rows {
        if let (Cell::DateTime(t), Cell::Money(b)) = (&row[at], &row[balance]) {
            closing.insert(t.date_naive(), *b);
        }
    }
    let (first, last) = (*closing.keys().next()?, *closing.keys().next_back()?);
    let mut points = vec![];
    let mut current = None;
    for day in first.iter_days().take_while(|d| *d <= last) {
        current = closing.get(&day).copied().or(current);
        points.push((day, current));
    }
    Some(LineChart::new(
        "cash-book-balance",
        "Closing balance by day",
        "The fund's balance at the end of each day with a movement, carried over the days without one.",
        &points,
        &[],
    ))
}

/// The spending report's paid amounts by category (the first currency's, largest first).
fn category_chart(r: &Report) -> Option<BarChart> {
    if r.name != ReportName::Spending {
        return None;
    }
    let s = r.sections.first()?;
    let (name, currency, amount) = (column(s, "name")?, column(s, "currency")?, column(s, "amount")?);
    let first_currency = s.rows.iter().find_map(|row| match &row[currency] {
        Cell::Text(c) => Some(c.clone()),
        _ => None,
    })?;
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &s.rows {
        if let (Cell::Text(n), Cell::Text(c), Cell::Money(a)) = (&row[name], &row[currency], &row[amount]) {
            if *c == first_currency {
                *sums.entry(n.clone()).or_default() += *a;
            }
        }
    }
    let mut bars: Vec<(String, Decimal, String)> =
        sums.into_iter().map(|(n, a)| (n, a, money(&first_currency, a))).collect();
    bars.sort_by_key(|b| std::cmp::Reverse(b.1));
    bars.truncate(12);
    Some(BarChart::new(
        "spending-by-category",
        &format!("{} by category ({first_currency})", s.title),
        "Paid in the period per category, the largest first (at most twelve).",
        &bars,
    ))
}
