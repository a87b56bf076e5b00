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
use pettycash_commands::payments::PaymentCodeIssued;
use pettycash_commands::views::PaymentReceipt;
use pettycash_domain::fund::PaymentMethod;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/treasury/payments", post(pay).get(super::reads::list_payments))
        .route("/api/treasury/payments/code", post(request_code))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub requisition_id: Uuid,
    /// `cash`; `bank` and `mobile_money` are refused (422 naming `method`) until a payment
    /// provider is wired.
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    /// Voucher or receipt number.
    pub reference: Option<String>,
    /// The one-time code mailed to the payer (`POST /api/treasury/payments/code`); not needed
    /// for cash below the `payment_code_waiver_below` setting.
    #[schema(example = "042917")]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub requisition_id: Uuid,
    /// `cash` (`bank` and `mobile_money`: refused until a payment provider is wired).
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
}

/// Ask for a one-time code to pay an approved requisition (treasury; the same people who may
/// pay it). Six digits, mailed to the signed-in payer, valid 5 minutes, single use, 5 wrong
/// attempts; asked for at most once every 30 seconds and 5 times an hour per requisition.
#[utoipa::path(post, path = "/api/treasury/payments/code", tag = "treasury", request_body = CodeRequest,
    responses((status = 201, body = PaymentCodeIssued), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_code(State(state): State<AppState>, cmd: Command<CodeRequest>) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let b = &cmd.body;
    // Bank and mobile money go through a provider, which is not wired to the API yet.
    pettycash_commands::payments::paid_at_once(b.method)?;
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.request_payment_code(&ctx, b.requisition_id, b.method),
    )
    .await
}

/// Pay an approved requisition from its fund (treasury; not the requester nor an approver),
/// with the one-time code mailed to the payer (`code`; missing, not issued, another user's,
/// expired, used, wrong or locked codes are refused with distinct codes naming `code`).
/// Pays at most once and never takes the fund below zero, however many requests race.
#[utoipa::path(post, path = "/api/treasury/payments/", tag = "treasury", request_body = PayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = PaymentReceipt), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 410, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn pay(State(state): State<AppState>, cmd: Command<PayRequest>) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let b = &cmd.body;
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.pay(&ctx, b.requisition_id, b.method, b.reference.clone(), b.code.as_deref()),
    )
    .await
}
