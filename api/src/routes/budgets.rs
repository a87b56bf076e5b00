//! Expense categories (list; admin: create, rename, deactivate), cost centres (list), budgets
//! (cfo/admin: set; budget against actual). Issue #14 [treasury]; the rules are
//! `pettycash_domain::category` and `pettycash_domain::budget`.

use super::{consistent, query_response, run, Consistency};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use pettycash_commands::budgets::{BudgetLine, CategoryView, NewBudget};
use pettycash_commands::org::UnitView;
use pettycash_domain::budget::{Month, ScopeKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/categories", get(list_categories).post(create_category))
        .route("/api/categories/{id}", patch(rename_category))
        .route("/api/categories/{id}/deactivate", post(deactivate_category))
        .route("/api/cost-centres", get(list_cost_centres))
        .route("/api/budgets", get(budget_report).put(set_budget))
}

/// Which projection budget against actual reads.
const BUDGETS: &[&str] = &["budgets"];

type Err = crate::error::ErrorBody;

/// The expense categories of your company.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryView>,
}

/// The expense categories of the caller's company, active and inactive (requisitions may
/// choose the active ones), in the order they were created.
#[utoipa::path(get, path = "/api/categories", tag = "budgets", responses((status = 200, body = CategoryList)))]
pub async fn list_categories(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<CategoryList>> {
    Ok(Json(CategoryList { items: state.commands.categories(&user.actor()).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    /// Unique within the company (inactive categories included); upper-cased.
    #[schema(example = "OFFICE")]
    pub code: String,
    #[schema(example = "Office supplies")]
    pub name: String,
    /// The general-ledger account its spending is booked to.
    #[schema(example = "6100")]
    pub gl_code: String,
}

/// Create an expense category in your company (admin). A code in use is 409 `code_taken`.
#[utoipa::path(post, path = "/api/categories", tag = "budgets", request_body = NewCategory,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = CategoryView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn create_category(
    State(state): State<AppState>,
    cmd: Command<NewCategory>,
) -> ApiResult<Response> {
    let b = &cmd.body;
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.create_category(&ctx, &b.code, &b.name, &b.gl_code))
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameCategory {
    pub name: String,
}

/// Rename an expense category of your company (admin).
#[utoipa::path(patch, path = "/api/categories/{id}", tag = "budgets", params(("id" = Uuid, Path)),
    request_body = RenameCategory,
    responses((status = 200, body = CategoryView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 422, body = Err)))]
pub async fn rename_category(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<RenameCategory>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.rename_category(&ctx, id, &cmd.body.name)).await
}

/// Deactivate an expense category of your company (admin): requisitions can no longer choose
/// it (a draft that did must choose another before it is submitted); those that did keep it.
#[utoipa::path(post, path = "/api/categories/{id}/deactivate", tag = "budgets", params(("id" = Uuid, Path)),
    responses((status = 200, body = CategoryView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn deactivate_category(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<super::NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.deactivate_category(&ctx, id)).await
}

/// The cost centres of your company.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostCentreList {
    pub items: Vec<UnitView>,
}

/// The cost centres of the caller's company, by code: the organisation's `cost_centre` units
/// (code, name, owning department as `department_id`; opened, renamed and closed through
/// `/api/org/units`). A requisition may choose an open one (`cost_centre_id`).
#[utoipa::path(get, path = "/api/cost-centres", tag = "budgets", responses((status = 200, body = CostCentreList)))]
pub async fn list_cost_centres(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<CostCentreList>> {
    Ok(Json(CostCentreList { items: state.commands.cost_centres(&user.actor()).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// `cost_centre`, `department` or `branch`.
    #[schema(example = "department")]
    pub scope: String,
    /// The unit (of your company, of that kind).
    pub scope_id: Uuid,
    #[schema(example = "2026-12")]
    pub month: String,
    #[schema(example = "KES")]
    pub currency: String,
    pub amount: Amount,
}

/// Set the budget of a cost centre, department or branch of your company for a month (CFO or
/// admin). Setting the same scope, month and currency again replaces its amount.
#[utoipa::path(put, path = "/api/budgets", tag = "budgets", request_body = SetBudget,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 200, body = BudgetLine), (status = 403, body = Err), (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn set_budget(State(state): State<AppState>, cmd: Command<SetBudget>) -> ApiResult<Response> {
    let b = &cmd.body;
    let scope: ScopeKind = b
        .scope
        .parse()
        .map_err(|_| ApiError::unprocessable("scope", format!("`scope` is one of {}", ScopeKind::NAMES)))?;
    let input = NewBudget {
        scope,
        scope_id: b.scope_id,
        month: b.month.clone(),
        currency: b.currency.clone(),
        amount: b.amount.0,
    };
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.set_budget(&ctx, input)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetQuery {
    /// `YYYY-MM` (required).
    pub month: Option<String>,
    /// Wait until the read models include the event at this position.
    pub min_position: Option<i64>,
}

/// Budget against actual for a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetReport {
    #[schema(example = "2026-12")]
    pub month: String,
    pub items: Vec<BudgetLine>,
    /// The position of the read model the consumption comes from.
    pub position: i64,
}

/// Budget against actual: every budget of your company for `month`, with what it consumed
/// (amounts **paid** in the month by the requisitions it covers; approved but unpaid ones
/// consume nothing) and what remains. CFO, admin, FP&A, group finance manager, CEO, auditor,
/// treasury.
#[utoipa::path(get, path = "/api/budgets", tag = "budgets", params(BudgetQuery),
    responses((status = 200, body = BudgetReport), (status = 403, body = Err), (status = 422, body = Err),
              (status = 503, body = Err)))]
pub async fn budget_report(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<BudgetQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let text = q.month.as_deref().unwrap_or_default();
    let month = Month::parse(text).map_err(|m| ApiError::unprocessable("month", m))?;
    let consistency = Consistency { min_position: q.min_position };
    let position = consistent(&state, BUDGETS, consistency.min_position, &headers).await?;
    let items = state.commands.budget_report(&user.actor(), month).await?;
    Ok(query_response(position, BudgetReport { month: month.to_string(), items, position }))
}
