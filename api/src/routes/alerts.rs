//! Alerts (issue #15 [reports]): what the `alerts` projection raised for the people
//! responsible, and their acknowledge and resolve. Who sees and acts on which alert is
//! `domain::visibility::AlertScope`: treasury, admins, auditors and the finance leads see their
//! company's; anyone else the alerts naming them responsible (a custodian's fund, a payer's
//! payment, a holder's advance); treasury, admins and the people responsible act, the others
//! read only.

use super::reads::parse_limit;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_domain::alert::{AlertState, AlertType, Severity};
use pettycash_domain::visibility::AlertScope;
use pettycash_projections::alerts::{self, AlertFilter, AlertHistoryLine, AlertView};
use pettycash_projections::queries::{Cursor, PageRequest};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/alerts", get(list))
        .route("/api/alerts/{id}", get(get_one))
        .route("/api/alerts/{id}/acknowledge", post(acknowledge))
        .route("/api/alerts/{id}/resolve", post(resolve))
}

type Err = crate::error::ErrorBody;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `open`, `acknowledged` or `resolved`; several comma-separated.
    pub state: Option<String>,
    /// `critical`, `high`, `medium` or `low`; several comma-separated.
    pub severity: Option<String>,
    /// An alert type (`fund_low`, `payment_failed`, …); several comma-separated.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub alert_type: Option<String>,
    /// A company, branch or department id: alerts of that unit.
    pub unit: Option<String>,
    pub fund_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    /// Who did what, oldest first.
    pub history: Vec<AlertHistoryLine>,
}

/// Words of a comma-separated filter, each one of `T`'s (422 naming `field` otherwise).
fn words<T: FromStr>(field: &str, v: &Option<String>, all: &[&str]) -> ApiResult<Vec<T>> {
    let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) else { return Ok(Vec::new()) };
    v.split(',')
        .map(|w| {
            w.trim().parse().map_err(|_| {
                ApiError::unprocessable(field, format!("`{field}` is one or more of {}", all.join(", ")))
            })
        })
        .collect()
}

fn id(field: &str, v: &Option<String>) -> ApiResult<Option<Uuid>> {
    v.as_deref()
        .filter(|v| !v.trim().is_empty())
        .map(|s| {
            Uuid::parse_str(s.trim())
                .map_err(|_| ApiError::unprocessable(field, format!("`{field}` must be an id (a UUID)")))
        })
        .transpose()
}

/// The list's filters from its query (422 naming the parameter that is not one of its words).
pub fn filter_of(q: &ListQuery) -> ApiResult<AlertFilter> {
    let names = |all: &[&'static str]| all.to_vec();
    Ok(AlertFilter {
        states: words("state", &q.state, &names(&AlertState::ALL.map(AlertState::as_str)))?,
        severities: words("severity", &q.severity, &names(&Severity::ALL.map(Severity::as_str)))?,
        types: words("type", &q.alert_type, &names(&AlertType::ALL.map(AlertType::as_str)))?,
        unit: id("unit", &q.unit)?,
        fund_id: id("fund_id", &q.fund_id)?,
    })
}

/// Alerts the caller may see, newest first, a page at a time (`limit`, `cursor`), filtered by
/// state, severity, type, unit (company, branch or department) and fund.
#[utoipa::path(get, path = "/api/alerts/", tag = "alerts", params(ListQuery),
    responses((status = 200, body = AlertPage), (status = 422, body = Err)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AlertPage>> {
    let filter = filter_of(&q)?;
    let after = match q.cursor.as_deref().filter(|c| !c.trim().is_empty()) {
        None => None,
        Some(c) => Some(Cursor::decode(c).map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` is not valid: pass the `next_cursor` of a previous page unchanged",
            )
            .with_field("cursor")
        })?),
    };
    let page = PageRequest { limit: parse_limit(&q.limit)?, after };
    let scope = AlertScope::of(&user.actor());
    let found = alerts::list(&state.pool, &scope, &filter, page).await?;
    Ok(Json(AlertPage { items: found.items, next_cursor: found.next_cursor }))
}

/// One alert with its history (404 when it does not exist or is not the caller's to see).
#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts", params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = Err)))]
pub async fn get_one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<AlertDetail>> {
    detail(&state, &AlertScope::of(&user.actor()), id).await.map(Json)
}

async fn detail(state: &AppState, scope: &AlertScope, id: Uuid) -> ApiResult<AlertDetail> {
    let (alert, history) =
        alerts::get(&state.pool, scope, id).await?.ok_or_else(|| ApiError::not_found("alert"))?;
    Ok(AlertDetail { alert, history })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertNote {
    /// Optional to acknowledge; required (not blank) to resolve.
    pub note: Option<String>,
}

/// The note, trimmed; `None` when blank. At most 2,000 characters (422 `note`).
pub fn note(body: &AlertNote) -> ApiResult<Option<String>> {
    let note = body.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::unprocessable("note", "`note` is at most 2000 characters"));
    }
    Ok(note.map(str::to_string))
}

/// The note of a resolution: required, not blank (400 `note_required`), as [`note`] checks it.
pub fn resolution_note(body: &AlertNote) -> ApiResult<String> {
    note(body)?.ok_or_else(|| {
        ApiError::bad_request("note_required", "resolving an alert needs a `note` saying what was done")
            .with_field("note")
    })
}

/// Acknowledge an open alert (someone is looking into it), with an optional note. 404 when
/// the caller may not see it, 403 `alert_read_only` for readers who may not act (auditors, the
/// finance leads), 409 `alert_state` unless it is open.
#[utoipa::path(post, path = "/api/alerts/{id}/acknowledge", tag = "alerts", params(("id" = Uuid, Path)),
    request_body = AlertNote,
    responses((status = 200, body = AlertDetail), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<AlertNote>,
) -> ApiResult<Json<AlertDetail>> {
    let actor = cmd.user.actor();
    let note = note(&cmd.body)?;
    state.commands.acknowledge_alert(&actor, id, note.as_deref()).await?;
    detail(&state, &AlertScope::of(&actor), id).await.map(Json)
}

/// Resolve an open or acknowledged alert with a note saying what was done (400 `note` when
/// missing or blank). 404, 403 and 409 as for acknowledging (resolving a resolved alert: 409).
#[utoipa::path(post, path = "/api/alerts/{id}/resolve", tag = "alerts", params(("id" = Uuid, Path)),
    request_body = AlertNote,
    responses((status = 200, body = AlertDetail), (status = 400, body = Err), (status = 403, body = Err),
              (status = 404, body = Err), (status = 409, body = Err)))]
pub async fn resolve(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<AlertNote>,
) -> ApiResult<Json<AlertDetail>> {
    let actor = cmd.user.actor();
    let note = resolution_note(&cmd.body)?;
    state.commands.resolve_alert(&actor, id, &note).await?;
    detail(&state, &AlertScope::of(&actor), id).await.map(Json)
}
