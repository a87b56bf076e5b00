//! Treasury pays approved requisitions.

use super::run;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::extract::Command;
use crate::extract::{CurrentUser, IdPath};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_commands::payments::PaymentCodeIssued;
use pettycash_commands::provider_payments::{ProviderPaymentRead, ProviderPaymentView};
use pettycash_commands::providers::simulator::SIGNATURE_HEADER;
use pettycash_commands::providers::CallbackAuth;
use pettycash_commands::reconcile::ReconciliationView;
use pettycash_commands::views::PaymentReceipt;
use pettycash_commands::{CommandContext, CommandError, Outcome};
use pettycash_domain::fund::PaymentMethod;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/treasury/payments", post(pay).get(super::reads::list_payments))
        .route("/api/treasury/payments/code", post(request_code))
        .route("/api/treasury/payments/{id}", get(get_payment))
        .route("/api/treasury/payments/{id}/reconcile", post(reconcile))
        .route("/api/providers/{name}/callback", post(provider_callback))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub requisition_id: Uuid,
    /// `cash` (paid at once, 201), or `bank` / `mobile_money` (through the payment provider,
    /// 202: executing until the provider's result).
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    /// Where a payment through the provider goes (required for `bank` and `mobile_money`,
    /// refused for cash): a Kenyan mobile number (`0712345678`, `+254712345678`; answered as
    /// `254712345678`) or a bank account (`BANKCODE:ACCOUNT` or the account, 6–34 letters and
    /// digits).
    #[schema(example = "0712345678")]
    pub destination: Option<String>,
    /// Voucher or receipt number.
    pub reference: Option<String>,
    /// The one-time code mailed to the payer (`POST /api/treasury/payments/code`); not needed
    /// for cash below the `payment_code_waiver_below` setting.
    #[schema(example = "042917")]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// The bank or mobile-money statement line's reference: trimmed, 1 to 64 printable
    /// characters.
    #[schema(example = "STMT-2026-12-0042")]
    pub statement_reference: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub requisition_id: Uuid,
    /// `cash`, `bank` or `mobile_money`.
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
///
/// `bank` and `mobile_money` go through the payment provider to `destination`: the amount is
/// reserved on the fund, the payment is `executing` (202, [`ProviderPaymentView`]) and the
/// requisition is paid only when the provider's result comes (its callback, or the scheduler's
/// status query after `payment_timeout_minutes`); a failure releases the reservation and the
/// requisition is approved again.
#[utoipa::path(post, path = "/api/treasury/payments/", tag = "treasury", request_body = PayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = PaymentReceipt), (status = 202, body = ProviderPaymentView),
              (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 410, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn pay(State(state): State<AppState>, cmd: Command<PayRequest>) -> ApiResult<Response> {
    let b = &cmd.body;
    if b.method.through_provider() {
        let ctx = cmd.context(StatusCode::ACCEPTED);
        return run(&state, &cmd, StatusCode::ACCEPTED, pay_through_provider(&state, &ctx, b)).await;
    }
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, pay_cash(&state, &ctx, b)).await
}

/// A `bank` or `mobile_money` payment of `POST /api/treasury/payments/` (and of the treasury
/// page): started with the code, then sent to the provider.
pub async fn pay_through_provider(
    state: &AppState,
    ctx: &CommandContext,
    b: &PayRequest,
) -> Result<Outcome<ProviderPaymentView>, CommandError> {
    let Some(destination) = b.destination.clone() else {
        return Err(pettycash_domain::DomainError::invalid(
            "destination",
            "bank and mobile money payments need a destination",
        )
        .into());
    };
    let commands = &state.commands;
    let started = commands
        .start_provider_payment(
            ctx,
            b.requisition_id,
            b.method,
            Some(destination),
            b.reference.clone(),
            b.code.as_deref(),
        )
        .await?;
    // Committed: now the provider is asked (a failure to reach it is retried by the scheduler
    // with the same attempt id).
    if let Err(e) = commands.submit_provider_payment(started.value.id).await {
        tracing::warn!(payment = %started.value.id, error = %e, "could not send a payment to the provider");
    }
    Ok(started)
}

/// A cash payment of `POST /api/treasury/payments/` (and of the treasury page).
pub async fn pay_cash(
    state: &AppState,
    ctx: &CommandContext,
    b: &PayRequest,
) -> Result<Outcome<PaymentReceipt>, CommandError> {
    if b.destination.is_some() {
        return Err(pettycash_domain::DomainError::invalid(
            "destination",
            "cash is paid by hand: no destination",
        )
        .into());
    }
    state.commands.pay(ctx, b.requisition_id, b.method, b.reference.clone(), b.code.as_deref()).await
}

/// One payment through the payment provider: status (`executing`, `succeeded`, `failed`),
/// attempts, the current attempt id, the last result code and the provider's receipt (payment
/// readers of the fund's company: treasury, auditors, admins, CFO, FP&A, group finance
/// managers). Read from the payments table the commands write, so current at once.
#[utoipa::path(get, path = "/api/treasury/payments/{id}", tag = "treasury",
    params(("id" = Uuid, Path, description = "the payment id")),
    responses((status = 200, body = ProviderPaymentRead), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get_payment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<ProviderPaymentRead>> {
    Ok(Json(state.commands.provider_payment(&user.actor(), id).await?))
}

/// Reconcile a succeeded `bank` or `mobile_money` payment (the payment id) against a line of
/// the bank or mobile-money statement (treasury; not the person who made the payment: 403
/// `four_eyes`). Once: the same `statement_reference` again answers 200 `changed: false` and
/// records nothing; a different one is 409 `already_reconciled`, however many requests race.
/// A cash payment, a payment still executing or one that failed is 409 `not_reconcilable`.
/// The fund's ledger and the payment's read show the reference from then on.
#[utoipa::path(post, path = "/api/treasury/payments/{id}/reconcile", tag = "treasury",
    params(("id" = Uuid, Path, description = "the payment id"),
           ("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    request_body = ReconcileRequest,
    responses((status = 200, body = ReconciliationView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reconcile(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<ReconcileRequest>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reference = cmd.body.statement_reference.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.reconcile_payment(&ctx, id, &reference)).await
}

/// The callback URL's query: Daraja's shared secret.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    token: Option<String>,
}

/// The payment provider's result callback (the provider calls it; no session). The body is
/// the provider's result (M-Pesa B2C `Result`). The simulator signs it with HMAC-SHA256 under
/// the shared secret in `X-Provider-Signature` (hex); Daraja signs nothing, so its callback URL
/// carries the shared secret as `?token=`. A missing or wrong signature or token is 401 and
/// changes nothing.
/// A success pays the requisition; a failure retries (retryable codes, `payment_max_retries`)
/// or releases the reservation. A repeated callback changes nothing. Answers 200
/// `{"ResultCode": 0}` once acted on.
#[utoipa::path(post, path = "/api/providers/{name}/callback", tag = "treasury", security(()),
    params(("name" = String, Path, description = "the provider: `simulator` or `daraja`"),
           ("X-Provider-Signature" = Option<String>, Header, description = "simulator: hex HMAC-SHA256 of the body"),
           ("token" = Option<String>, Query, description = "daraja: the shared secret (`PAYMENT_PROVIDER_SECRET`)")),
    request_body(content = serde_json::Value, description = "the provider's result"),
    responses((status = 200, body = serde_json::Value), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn provider_callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let auth = CallbackAuth { signature, token: query.token.as_deref() };
    let acted = state.commands.provider_callback(&name, auth, &body).await.map_err(ApiError::from)?;
    tracing::info!(?acted, "provider callback");
    Ok((StatusCode::OK, Json(serde_json::json!({"ResultCode": 0, "ResultDesc": "Accepted"}))).into_response())
}
