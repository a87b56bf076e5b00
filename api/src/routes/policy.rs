//! The approval policy: read (anyone signed in), change (admin).

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use pettycash_commands::views::PolicyView;
use pettycash_domain::policy::{Tier, Tiers};
use pettycash_domain::Role;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/approval-policy", get(get_policy).put(put_policy))
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
    let loaded = state.commands.policy().await?;
    Ok(Json(PolicyView::new(&loaded.state, 0)))
}

/// Replace the approval policy (admin; one policy for every company, so an admin of no unit:
/// an admin of a company gets 403 `organisation_admin_only`). Applies to requisitions
/// submitted from now on.
#[utoipa::path(put, path = "/api/approval-policy", tag = "policy", request_body = PolicyInput,
    responses((status = 200, body = PolicyView), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_policy(State(state): State<AppState>, cmd: Command<PolicyInput>) -> ApiResult<Response> {
    let mut tiers = Vec::new();
    for (i, t) in cmd.body.tiers.iter().enumerate() {
        let chain = t
            .chain
            .iter()
            .map(|r| r.parse::<Role>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::unprocessable(&format!("tiers[{i}].chain"), e.to_string()))?;
        tiers.push(Tier { up_to: t.up_to.map(|a| a.0), chain });
    }
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.change_policy(&ctx, Tiers(tiers))).await
}
