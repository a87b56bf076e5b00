//! `/reports/` (the old system's address): the reports the user may run
//! (`routes::reports::available`, as `GET /api/reports/` lists them), each with a small form
//! that downloads it from the API as CSV, XLSX or PDF. A first version: filters beyond the
//! period and the fund, and a chart per report, come with the reports' own pages.

use super::layout::Layout;
use super::render;
use super::session::PageUser;
use crate::error::ApiResult;
use crate::routes::reports::{available, ReportInfo};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use pettycash_domain::visibility;
use pettycash_projections::queries;

/// The formats offered for download (the API also answers JSON, which is for programs).
const DOWNLOADS: [(&str, &str); 3] = [("csv", "CSV"), ("xlsx", "Excel"), ("pdf", "PDF")];

/// A fund the user may read, for the reports that take one.
pub struct FundChoice {
    pub id: String,
    pub name: String,
}

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
    funds: Vec<FundChoice>,
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
    let funds = if reports.iter().any(|r| r.takes_fund) && visibility::may_read_funds(&actor) {
        queries::list_funds(&state.pool, actor.company())
            .await?
            .into_iter()
            .map(|f| FundChoice { id: f.id.to_string(), name: format!("{} ({})", f.name, f.currency) })
            .collect()
    } else {
        vec![]
    };
    let layout = Layout::signed_in(&state, "Reports", &user, &token, "/reports/")?;
    render(StatusCode::OK, &ReportsPage { layout, reports, funds, downloads: DOWNLOADS })
}
