//! The approval policy: read (anyone signed in), change (admin).

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use pettycash_commands::views::PolicyView;
use pettycash_domain::policy::{Tier, Tiers};
use pettycash_domain::routing::{Origin, Threshold, Thresholds};
use pettycash_domain::Currency;
use pettycash_domain::Role;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/approval-policy", get(get_policy).put(put_policy))
        .route("/api/approval-policy/thresholds", put(put_thresholds))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    /// Inclusive upper bound; null for the last tier.
    pub up_to: Option<Amount>,
    #[schema(value_type = Vec<String>, example = json!(["department_head"]))]
    pub chain: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub tiers: Vec<TierInput>,
}

/// The approval policy in force (version 0 is the built-in default).
#[utoipa::path(get, path = "/api/approval-policy", tag = "policy", responses((status = 200, body = PolicyView)))]
pub async fn get_policy(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<Json<PolicyView>> {
    Ok(Json(policy_of(&state).await?))
}

/// The policy in force, as `GET /api/approval-policy` answers (and the admin's policy page shows).
pub async fn policy_of(state: &AppState) -> ApiResult<PolicyView> {
    let loaded = state.commands.policy().await?;
    Ok(PolicyView::new(&loaded.state, 0))
}

/// Replace the approval policy (admin; one policy for every company, so an admin of no unit:
/// an admin of a company gets 403 `organisation_admin_only`). Applies to requisitions
/// submitted from now on.
#[utoipa::path(put, path = "/api/approval-policy", tag = "policy", request_body = PolicyInput,
    responses((status = 200, body = PolicyView), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_policy(State(state): State<AppState>, cmd: Command<PolicyInput>) -> ApiResult<Response> {
    let tiers = tiers_of(&cmd.body.tiers)?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.change_policy(&ctx, tiers)).await
}

/// The tiers as given (the API's body, the admin page's rows): a role that is no role is
/// refused naming `tiers[i].chain`; the rules of a policy are the command's.
pub fn tiers_of(input: &[TierInput]) -> ApiResult<Tiers> {
    let mut tiers = Vec::new();
    for (i, t) in input.iter().enumerate() {
        let chain = roles_of(&t.chain, &format!("tiers[{i}].chain"))?;
        tiers.push(Tier { up_to: t.up_to.map(|a| a.0), chain });
    }
    Ok(Tiers(tiers))
}

fn roles_of(names: &[String], field: &str) -> ApiResult<Vec<Role>> {
    names
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::unprocessable(field, e.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdInput {
    #[schema(example = "Tier 1 branch")]
    pub name: String,
    /// ISO 4217 code; null or absent: any currency that has no thresholds of its own.
    #[schema(example = "KES")]
    pub currency: Option<String>,
    /// `branch`, `hq` or `field`; null or absent: any origin.
    #[schema(example = "branch")]
    pub origin: Option<String>,
    /// Inclusive lower bound.
    pub min: Amount,
    /// Inclusive upper bound; null or absent: none.
    pub max: Option<Amount>,
    /// Lower wins where an origin's own threshold and an any-origin one both match (default 10).
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Roles in order: approver roles, and `treasury` as a validation step.
    #[schema(value_type = Vec<String>, example = json!(["branch_manager", "treasury"]))]
    pub chain: Vec<String>,
    /// Urgent requisitions may be fast-tracked to the last step (default false).
    #[serde(default)]
    pub fast_track: bool,
    /// The chain gains a CFO step when it has none (default false).
    #[serde(default)]
    pub requires_cfo: bool,
    /// The chain gains a CEO step when it has none (default false).
    #[serde(default)]
    pub requires_ceo: bool,
}

/// A threshold's priority when none is given.
pub fn default_priority() -> u32 {
    10
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsInput {
    pub thresholds: Vec<ThresholdInput>,
}

/// Replace the approval policy with thresholds (admin): by currency (tiers may differ per
/// currency), origin and amount range, each with its chain of roles. The set must leave no
/// amount of a currency it covers without a threshold, for every origin, and no two
/// thresholds of equal priority may both match one requisition (422 `thresholds_gap` /
/// `thresholds_overlap`). Applies to requisitions submitted from now on.
#[utoipa::path(put, path = "/api/approval-policy/thresholds", tag = "policy", request_body = ThresholdsInput,
    responses((status = 200, body = PolicyView), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_thresholds(
    State(state): State<AppState>,
    cmd: Command<ThresholdsInput>,
) -> ApiResult<Response> {
    let thresholds = thresholds_of(&cmd.body.thresholds)?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.change_thresholds(&ctx, thresholds)).await
}

/// The thresholds as given (the API's body, the admin page's rows): a currency, origin or role
/// that is none is refused naming `thresholds[i].currency`, `.origin` or `.chain`; the rules
/// of a policy (no gap, no overlap, …) are the command's.
pub fn thresholds_of(input: &[ThresholdInput]) -> ApiResult<Thresholds> {
    let mut thresholds = Vec::new();
    for (i, t) in input.iter().enumerate() {
        let field = |name: &str| format!("thresholds[{i}].{name}");
        let currency = t
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| ApiError::unprocessable(&field("currency"), e.to_string()))?;
        let origin = t
            .origin
            .as_deref()
            .map(str::parse::<Origin>)
            .transpose()
            .map_err(|e| ApiError::unprocessable(&field("origin"), e.to_string()))?;
        let chain = roles_of(&t.chain, &field("chain"))?;
        thresholds.push(Threshold {
            name: t.name.clone(),
            currency,
            origin,
            min: t.min.0,
            max: t.max.map(|a| a.0),
            priority: t.priority,
            chain,
            fast_track: t.fast_track,
            requires_cfo: t.requires_cfo,
            requires_ceo: t.requires_ceo,
        });
    }
    Ok(Thresholds(thresholds))
}
