//! Treasury pays approved requisitions.

use super::run;
use crate::error::ApiResult;
use crate::extract::Command;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pettycash_commands::views::PaymentReceipt;
use pettycash_domain::fund::PaymentMethod;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/treasury/payments", post(pay).get(super::reads::list_payments))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub requisition_id: Uuid,
    /// Only `cash` for now.
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    /// Voucher or receipt number.
    pub reference: Option<String>,
}

/// Pay an approved requisition from its fund (treasury; not the requester nor an approver).
/// Pays at most once and never takes the fund below zero, however many requests race.
#[utoipa::path(post, path = "/api/treasury/payments/", tag = "treasury", request_body = PayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = PaymentReceipt), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn pay(State(state): State<AppState>, cmd: Command<PayRequest>) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let b = &cmd.body;
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.pay(&ctx, b.requisition_id, b.method, b.reference.clone()),
    )
    .await
}
