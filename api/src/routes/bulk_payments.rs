//! Bulk payments (issue #14 [treasury]): a batch of approved requisitions paid by mobile money
//! through the provider's batch file, settled by importing the provider's result file
//! (`pettycash_commands::bulk_payments`).

use super::{command_error, run};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser, IdPath, Upload};
use crate::state::AppState;
use crate::upload;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_commands::bulk_payments::{BatchCodeIssued, BatchRead, BatchSummary, ResultImportReport};
use pettycash_commands::{CommandContext, CommandError, SessionGuard};
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most bytes of a result file (like a receipt upload).
pub const RESULTS_BODY_LIMIT: usize = 10 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/treasury/bulk-payments", post(create).get(list))
        .route("/api/treasury/bulk-payments/code", post(request_code))
        .route("/api/treasury/bulk-payments/{id}", get(get_one))
        .route("/api/treasury/bulk-payments/{id}/file", get(file))
        .route(
            "/api/treasury/bulk-payments/{id}/results",
            post(import_results).layer(DefaultBodyLimit::max(RESULTS_BODY_LIMIT)),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCodeRequest {
    pub requisition_ids: Vec<Uuid>,
    /// The fund they are all paid from (checked when given).
    pub fund_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatchRequest {
    pub requisition_ids: Vec<Uuid>,
    pub fund_id: Option<Uuid>,
    /// The mobile number of each requisition's payee (`0712345678`, `+254712345678`); every
    /// requisition needs one (users have no phone on record).
    #[serde(default)]
    pub destinations: HashMap<Uuid, String>,
    /// The one-time code mailed for this selection (`POST /api/treasury/bulk-payments/code`).
    #[schema(example = "042917")]
    pub code: Option<String>,
}

/// Ask for one one-time code to pay a selection of approved requisitions as a batch (treasury).
/// Every line is checked as for a payment; any bad line refuses the request naming
/// `requisition_ids.<id>` for each (409 when all are refused by their state, 422 otherwise).
/// The code is bound to the selection and its total; 6 digits, 5 minutes, single use, 5 wrong
/// attempts, rate-limited like a single payment's.
#[utoipa::path(post, path = "/api/treasury/bulk-payments/code", tag = "treasury", request_body = BatchCodeRequest,
    responses((status = 201, body = BatchCodeIssued), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_code(
    State(state): State<AppState>,
    cmd: Command<BatchCodeRequest>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let b = &cmd.body;
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.request_batch_code(&ctx, &b.requisition_ids, b.fund_id),
    )
    .await
}

/// Start paying a selection of approved requisitions as one mobile money batch (treasury),
/// with the batch's one-time code. All or nothing: every bad line (not approved, not payable
/// by this payer, another fund, a bad or missing mobile number) is named at once
/// (`requisition_ids.<id>`, `destinations.<id>`) and nothing starts. Each line's amount is
/// reserved on the fund; the payments are `executing` until the result file is imported.
/// They are NEVER sent to the provider's API: treasury uploads the batch file
/// (`GET /api/treasury/bulk-payments/{id}/file`) to the provider's portal.
#[utoipa::path(post, path = "/api/treasury/bulk-payments/", tag = "treasury", request_body = CreateBatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = BatchSummary), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 410, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(State(state): State<AppState>, cmd: Command<CreateBatchRequest>) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let b = &cmd.body;
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.create_payment_batch(
            &ctx,
            &b.requisition_ids,
            b.fund_id,
            &b.destinations,
            b.code.as_deref(),
        ),
    )
    .await
}

/// The batches of the caller's company, newest first (payment readers).
#[utoipa::path(get, path = "/api/treasury/bulk-payments/", tag = "treasury",
    responses((status = 200, body = Vec<BatchSummary>), (status = 403, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<BatchSummary>>> {
    Ok(Json(state.commands.payment_batches(&user.actor()).await?))
}

/// One batch: its lines with their payments' status, and the result files imported into it.
#[utoipa::path(get, path = "/api/treasury/bulk-payments/{id}", tag = "treasury",
    params(("id" = Uuid, Path, description = "the batch id")),
    responses((status = 200, body = BatchRead), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get_one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<BatchRead>> {
    Ok(Json(state.commands.payment_batch(&user.actor(), id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FileQuery {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
}

/// The provider's batch file (MobileNumber, Amount, Reference = the payment id, Name), as CSV
/// or XLSX, as an attachment. Names that a spreadsheet would run as a formula are neutralised.
#[utoipa::path(get, path = "/api/treasury/bulk-payments/{id}/file", tag = "treasury",
    params(("id" = Uuid, Path, description = "the batch id"), FileQuery),
    responses((status = 200, description = "the batch file", content_type = "text/csv"),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn file(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
    Query(q): Query<FileQuery>,
) -> ApiResult<Response> {
    let format = q.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "xlsx") {
        return Err(ApiError::unprocessable("format", "`csv` or `xlsx`"));
    }
    let lines = state.commands.batch_file_lines(&user.actor(), id).await?;
    let (bytes, media_type) = match format {
        "csv" => (pettycash_commands::bulk::batch_csv(&lines), upload::CSV),
        _ => (pettycash_commands::bulk::batch_xlsx(&lines).map_err(ApiError::internal)?, upload::XLSX),
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    let disposition = format!("attachment; filename=\"batch-{id}.{format}\"");
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// Import the provider's result file into a batch (treasury): the body is the file, sent as
/// `Content-Type: text/csv` or the XLSX media type (at most 10 MB), with the columns
/// `Reference`, `Status` (Completed / Failed), `Amount` and optionally `ReceiptNumber`,
/// `ResultCode`, `Reason`, `MobileNumber`. Each line is matched by reference to a payment OF
/// THIS BATCH with the same amount and applied (a success pays the requisition, a failure
/// releases the reservation); the report says per line `applied`, `already_applied`,
/// `unknown_reference`, `amount_mismatch` or `invalid` (with the column). Invalid and unknown
/// lines are never applied; importing the same file again changes nothing. Each import is
/// recorded with the file's SHA-256.
#[utoipa::path(post, path = "/api/treasury/bulk-payments/{id}/results", tag = "treasury",
    params(("id" = Uuid, Path, description = "the batch id")),
    request_body(content = Vec<u8>, content_type = "text/csv", description = "the provider's result file (CSV or XLSX)"),
    responses((status = 200, body = ResultImportReport), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
              (status = 415, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn import_results(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    upload: Upload,
) -> ApiResult<Response> {
    let report = import_results_file(
        &state,
        &upload.context(),
        &upload.session,
        id,
        &upload.media_type,
        &upload.bytes,
    )
    .await?;
    Ok(Json(report).into_response())
}

/// Imports the result file `bytes` (of `media_type`: CSV or XLSX) into batch `id`: the body of
/// `POST /api/treasury/bulk-payments/{id}/results` and of the batch page's form
/// (`web::treasury::import_results`). Treasury only (403 before the file is read); a file that
/// cannot be read is a 4xx naming `file` (415 for another type); a session that changed under
/// the command is forgotten, as `super::run` does.
pub async fn import_results_file(
    state: &AppState,
    ctx: &CommandContext,
    session: &SessionGuard,
    id: Uuid,
    media_type: &str,
    bytes: &[u8],
) -> ApiResult<ResultImportReport> {
    if !ctx.actor.as_ref().is_some_and(|a| a.has(pettycash_domain::Role::Treasury)) {
        return Err(CommandError::from(pettycash_domain::DomainError::MissingRole {
            required: pettycash_domain::Role::Treasury,
        })
        .into());
    }
    let table = upload::read(media_type, bytes)?;
    let sha256 = hex::encode(sha2::Sha256::digest(bytes));
    state
        .commands
        .import_batch_results(ctx, id, &table, sha256)
        .await
        .map_err(|e| command_error(state, session, e))
}
