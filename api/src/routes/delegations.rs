//! Delegation while away (issue #13 [workflow]): an approver delegates their approvals in one
//! role to another holder of it in the same scope for a period; the delegate then decides the
//! steps routed to them, on their behalf (the requisition's history records `on_behalf_of`).

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pettycash_commands::delegations::{DelegationView, NewDelegation};
use pettycash_domain::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/delegations", post(grant).get(list))
        .route("/api/delegations/{id}/revoke", post(revoke))
}

type Err = crate::error::ErrorBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Who decides on the delegator's behalf: an active holder of `role` in the same scope
    /// (same branch, department or region for the roles that reach one; same company for the
    /// company-wide roles).
    pub delegate_id: Uuid,
    #[schema(example = "branch_manager")]
    pub role: String,
    /// Whose approvals; default: the caller's (an admin may grant for someone of their
    /// company).
    pub delegator_id: Option<Uuid>,
    /// RFC 3339; default: now.
    #[schema(example = "2026-03-02T08:00:00Z")]
    pub starts_at: Option<String>,
    /// RFC 3339: after `starts_at`, at most 90 days from now.
    #[schema(example = "2026-03-16T18:00:00Z")]
    pub ends_at: String,
}

fn time(field: &'static str, value: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::unprocessable(field, format!("`{field}` must be an RFC 3339 time")))
}

/// Delegate approvals in `role` to `delegate_id` from `starts_at` (default now) until `ends_at`
/// (at most 90 days ahead). The delegator must hold the role; the delegate must be someone
/// else, active, holding it in the same scope (422 `delegate_not_eligible` naming
/// `delegate_id`, with the reason). The delegator grants, or an admin of their company (403
/// `delegation_not_yours`). The delegation ends by itself at `ends_at`, or when revoked.
#[utoipa::path(post, path = "/api/delegations/", tag = "delegations", request_body = Grant,
    responses((status = 201, body = DelegationView), (status = 403, body = Err), (status = 422, body = Err)))]
pub async fn grant(State(state): State<AppState>, cmd: Command<Grant>) -> ApiResult<Response> {
    let input = new_delegation(&cmd.body)?;
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.grant_delegation(&ctx, input)).await
}

/// What a grant asks the command service for: the API's and the delegation page's
/// (`crate::web`).
pub(crate) fn new_delegation(b: &Grant) -> ApiResult<NewDelegation> {
    let role = b.role.parse::<Role>().map_err(|e| ApiError::unprocessable("role", e.to_string()))?;
    Ok(NewDelegation {
        delegator_id: b.delegator_id,
        delegate_id: b.delegate_id,
        role,
        starts_at: b.starts_at.as_deref().map(|s| time("starts_at", s)).transpose()?,
        ends_at: time("ends_at", &b.ends_at)?,
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (1 to 200, default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// Delegations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DelegationList {
    pub items: Vec<DelegationView>,
}

/// The delegations the caller gave or received (admins and auditors: also every one of their
/// company), newest first, each with its status as of now: `scheduled`, `active`, `ended` or
/// `revoked`.
#[utoipa::path(get, path = "/api/delegations/", tag = "delegations", params(ListQuery),
    responses((status = 200, body = DelegationList), (status = 422, body = Err)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<DelegationList>> {
    let limit = super::reads::parse_limit(&q.limit)?.unwrap_or(pettycash_projections::queries::DEFAULT_LIMIT);
    Ok(Json(DelegationList { items: state.commands.delegations(&user.actor(), limit).await? }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    #[schema(example = "back early")]
    pub reason: Option<String>,
}

/// Revoke a delegation now (its delegator, or an admin of their company; 403
/// `delegation_not_yours` for anyone else). Revoking it again records nothing.
#[utoipa::path(post, path = "/api/delegations/{id}/revoke", tag = "delegations", params(("id" = Uuid, Path)),
    request_body = Revoke,
    responses((status = 200, body = DelegationView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 422, body = Err)))]
pub async fn revoke(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Revoke>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reason = cmd.body.reason.as_deref();
    run(&state, &cmd, StatusCode::OK, state.commands.revoke_delegation(&ctx, id, reason)).await
}
