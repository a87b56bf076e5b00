//! Funds: open (admin), read.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_commands::views::FundView;
use pettycash_domain::fund::FundSettings;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/funds", post(open_fund).get(super::reads::list_funds))
        .route("/api/funds/{id}", get(get_fund).patch(super::fund_ops::change_settings))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenFundRequest {
    #[schema(example = "Nairobi branch float")]
    pub name: String,
    /// ISO 4217 code.
    #[schema(example = "KES")]
    pub currency: String,
    /// The float: the fund's starting balance.
    pub float: Amount,
    pub custodian_id: Option<Uuid>,
    /// The unit that owns the fund, of the admin's company (default: the admin's company; an
    /// admin of no unit opens unscoped funds). Only the owning company's people see it.
    pub unit_id: Option<Uuid>,
    /// Below it a replenishment is due (default: none).
    pub reorder_level: Option<Amount>,
    /// Below it the fund is critical (default 0).
    pub minimum_balance: Option<Amount>,
    /// Raise a replenishment request by itself when a payment takes the balance below the
    /// reorder level (default true; acts only with a reorder level).
    pub auto_replenish: Option<bool>,
}

/// Open a fund with its float (admin).
#[utoipa::path(post, path = "/api/funds/", tag = "funds", request_body = OpenFundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = FundView), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn open_fund(State(state): State<AppState>, cmd: Command<OpenFundRequest>) -> ApiResult<Response> {
    let b = &cmd.body;
    let ctx = cmd.context(StatusCode::CREATED);
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.open_fund_with(
            &ctx,
            &b.name,
            &b.currency,
            b.float.0,
            b.custodian_id,
            b.unit_id,
            FundSettings {
                reorder_level: b.reorder_level.as_ref().map(|a| a.0),
                minimum_balance: b.minimum_balance.as_ref().map(|a| a.0).unwrap_or_default(),
                auto_replenish: b.auto_replenish.unwrap_or(true),
                custodian_id: b.custodian_id,
            },
        ),
    )
    .await
}

/// A fund and its balance, folded from its events. 404 for another company's fund.
#[utoipa::path(get, path = "/api/funds/{id}", tag = "funds", params(("id" = Uuid, Path)),
    responses((status = 200, body = FundView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_fund(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<FundView>> {
    state.commands.fund(&user.actor(), id).await?.map(Json).ok_or_else(|| ApiError::not_found("fund"))
}
