//! Requisitions: create, edit, submit, approve, reject, request changes, cancel, read, history;
//! urgency (confirm, deny, revert a fast-track) and an admin's emergency override.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_commands::budgets::CategoryChoice;
use pettycash_commands::service::NewRequisition;
use pettycash_commands::views::{HistoryEntry, RequisitionView};
use pettycash_domain::organisation::Origin;
use pettycash_domain::requisition::Changes;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/requisitions", get(super::reads::list_requisitions).post(create))
        .route("/api/requisitions/{id}", get(get_one).patch(edit))
        .route("/api/requisitions/{id}/history", get(history))
        .route("/api/requisitions/{id}/submit", post(submit))
        .route("/api/requisitions/{id}/approve", post(approve))
        .route("/api/requisitions/{id}/reject", post(reject))
        .route("/api/requisitions/{id}/request-changes", post(request_changes))
        .route("/api/requisitions/{id}/cancel", post(cancel))
        .route("/api/requisitions/{id}/confirm-urgency", post(confirm_urgency))
        .route("/api/requisitions/{id}/deny-urgency", post(deny_urgency))
        .route("/api/requisitions/{id}/revert-fast-track", post(revert_fast_track))
        .route("/api/requisitions/{id}/override", post(override_approval))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequisition {
    pub fund_id: Uuid,
    pub amount: Amount,
    #[schema(example = "Printer toner for the front office")]
    pub purpose: String,
    pub payee: Option<String>,
    /// Free text. While your company has expense categories it must be the code or name of an
    /// active one (it then chooses it); while it has none it is kept as a label.
    pub category: Option<String>,
    /// The expense category (`GET /api/categories`): required while your company has active
    /// categories (unless `category` names one); an inactive or another company's is 422.
    pub category_id: Option<Uuid>,
    /// Optional: an open cost centre of your company (`GET /api/cost-centres`).
    pub cost_centre_id: Option<Uuid>,
    /// Optional; when given it must be the fund's currency.
    pub currency: Option<String>,
    /// Submit for approval right away (default false: a draft).
    #[serde(default)]
    pub submit: bool,
    /// Where it comes from. Default: `branch` for a requester whose unit is a branch or below
    /// it, `hq` for one at a company or region; `field` may be chosen by a requester whose unit
    /// is in a region. Unscoped requesters (no unit) give none.
    #[schema(value_type = Option<String>, example = "field")]
    pub origin: Option<Origin>,
    /// With `submit`: mark it urgent, for this reason. The first approver confirms or denies
    /// the urgency before anyone approves.
    #[schema(example = "Generator fuel for tonight's outage")]
    pub urgent_reason: Option<String>,
    /// An advance: cash paid before the spend, settled afterwards by the requester with what
    /// they spent and the change they return (`/api/advances/{id}/settlements`). Default false.
    #[serde(default)]
    pub advance: bool,
}

/// Submit, with an optional comment, optionally marked urgent with a reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    #[schema(example = "Quote attached")]
    pub comment: Option<String>,
    /// Mark it urgent, for this reason: the first approver confirms (on a threshold that
    /// allows it the chain shortens to its final step) or denies the urgency before anyone
    /// approves.
    #[schema(example = "Generator fuel for tonight's outage")]
    pub urgent_reason: Option<String>,
    /// Choose the expense category now (a draft made before your company had categories
    /// needs one to be submitted).
    pub category_id: Option<Uuid>,
    /// Choose a cost centre now.
    pub cost_centre_id: Option<Uuid>,
}

/// Why the approval is overridden.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Justification {
    #[schema(example = "Flood at the branch; the approvers cannot be reached")]
    pub justification: String,
}

/// Fields to change while the requisition is a draft or changes were requested. Omitted or
/// null fields stay as they are; an empty payee or category clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequisition {
    pub amount: Option<Amount>,
    pub purpose: Option<String>,
    pub payee: Option<String>,
    pub category: Option<String>,
    /// Choose another expense category (an active one of your company).
    pub category_id: Option<Uuid>,
    /// Choose a cost centre (an open one of your company).
    pub cost_centre_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// What to change, and by when.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesRequest {
    pub reason: String,
    /// RFC 3339, in the future and within 90 days; default: now plus the
    /// `change_request_hours` setting (48 h). Past it, the requisition expires.
    #[schema(example = "2026-12-08T17:00:00Z")]
    pub deadline: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionalReason {
    pub reason: Option<String>,
}

/// An optional comment on a transition (an empty body is fine); it shows in the history.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionalComment {
    #[schema(example = "Receipt checked")]
    pub comment: Option<String>,
}

type Err = crate::error::ErrorBody;

/// Create a requisition (a draft, or submitted with `"submit": true`).
#[utoipa::path(post, path = "/api/requisitions/", tag = "requisitions", request_body = CreateRequisition,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = RequisitionView), (status = 403, body = Err), (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn create(State(state): State<AppState>, cmd: Command<CreateRequisition>) -> ApiResult<Response> {
    let (input, choice) = new_requisition(&cmd.body)?;
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.create_requisition_with(&ctx, input, choice)).await
}

/// What a create request asks the command service for: the API's and the new requisition
/// page's (`crate::web`).
pub(crate) fn new_requisition(b: &CreateRequisition) -> ApiResult<(NewRequisition, CategoryChoice)> {
    if b.urgent_reason.is_some() && !b.submit {
        return Err(ApiError::unprocessable(
            "urgent_reason",
            "`urgent_reason` marks a submission urgent: give it with `\"submit\": true`, or when submitting",
        ));
    }
    let input = NewRequisition {
        fund_id: b.fund_id,
        amount: b.amount.0,
        currency: b.currency.clone(),
        purpose: b.purpose.clone(),
        payee: b.payee.clone(),
        category: b.category.clone(),
        submit: b.submit,
        origin: b.origin,
        urgent_reason: b.urgent_reason.clone(),
        advance: b.advance,
    };
    Ok((input, CategoryChoice { category_id: b.category_id, cost_centre_id: b.cost_centre_id }))
}

/// A requisition folded from its events. 404 for ids the caller may not see (another
/// company's, another branch's for a branch manager, ...: `pettycash_domain::visibility`).
#[utoipa::path(get, path = "/api/requisitions/{id}", tag = "requisitions", params(("id" = Uuid, Path)),
    responses((status = 200, body = RequisitionView), (status = 404, body = Err)))]
pub async fn get_one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<RequisitionView>> {
    Ok(Json(state.commands.requisition(&user.actor(), id).await?))
}

/// Every event of the requisition with its type, time and actor.
#[utoipa::path(get, path = "/api/requisitions/{id}/history", tag = "requisitions", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<HistoryEntry>), (status = 404, body = Err)))]
pub async fn history(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    Ok(Json(state.commands.requisition_history(&user.actor(), id).await?))
}

/// Edit a draft or a requisition sent back for changes (requester only).
#[utoipa::path(patch, path = "/api/requisitions/{id}", tag = "requisitions", params(("id" = Uuid, Path)),
    request_body = EditRequisition,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn edit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<EditRequisition>,
) -> ApiResult<Response> {
    let (changes, choice) = changes_of(&cmd.body)?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.edit_requisition_with(&ctx, id, changes, choice)).await
}

/// What an edit request changes: the API's and the edit page's (`crate::web`). 422 naming
/// `body` when it changes nothing.
pub(crate) fn changes_of(b: &EditRequisition) -> ApiResult<(Changes, CategoryChoice)> {
    let changes = Changes {
        amount: b.amount.map(|a| a.0),
        purpose: b.purpose.clone(),
        payee: b.payee.clone(),
        category: b.category.clone(),
    };
    let choice = CategoryChoice { category_id: b.category_id, cost_centre_id: b.cost_centre_id };
    if changes == Changes::default() && choice.is_empty() {
        return Err(ApiError::unprocessable(
            "body",
            "give at least one of amount, purpose, payee, category, category_id, cost_centre_id",
        ));
    }
    Ok((changes, choice))
}

/// Submit for approval (requester only), with an optional comment, optionally marked urgent
/// (`urgent_reason`). The route is resolved now and recorded: the threshold, the chain and who
/// may act at each step (steps nobody in scope can take escalate, each an `ApprovalEscalated`
/// event).
#[utoipa::path(post, path = "/api/requisitions/{id}/submit", tag = "requisitions", params(("id" = Uuid, Path)),
    request_body = Submission,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn submit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Submission>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let (comment, urgent) = (cmd.body.comment.clone(), cmd.body.urgent_reason.clone());
    let choice =
        CategoryChoice { category_id: cmd.body.category_id, cost_centre_id: cmd.body.cost_centre_id };
    run(
        &state,
        &cmd,
        StatusCode::OK,
        state.commands.submit_requisition_with(&ctx, id, comment, urgent, choice),
    )
    .await
}

/// Approve the current step, with an optional comment: someone the step was routed to
/// (`current_eligible`), holding its role (an admin, for a step escalated to the admins); not
/// the requester; not an earlier approver of this round.
#[utoipa::path(post, path = "/api/requisitions/{id}/approve", tag = "requisitions", params(("id" = Uuid, Path)),
    request_body = OptionalComment,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn approve(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<OptionalComment>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let comment = cmd.body.comment.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.approve_requisition(&ctx, id, comment)).await
}

/// Reject at the current step, with a reason. Final.
#[utoipa::path(post, path = "/api/requisitions/{id}/reject", tag = "requisitions", params(("id" = Uuid, Path)),
    request_body = Reason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn reject(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Reason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.reject_requisition(&ctx, id, &cmd.body.reason)).await
}

/// Send back to the requester for changes, with a reason and a deadline (default 48 h, the
/// `change_request_hours` setting). If they do not resubmit by then, the service's scheduler
/// expires the requisition (`RequisitionExpired`); a resubmission after it is 409
/// `changes_expired`.
#[utoipa::path(post, path = "/api/requisitions/{id}/request-changes", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = ChangesRequest,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn request_changes(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<ChangesRequest>,
) -> ApiResult<Response> {
    let deadline = cmd
        .body
        .deadline
        .as_deref()
        .map(|d| {
            chrono::DateTime::parse_from_rfc3339(d.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| ApiError::unprocessable("deadline", "`deadline` must be an RFC 3339 time"))
        })
        .transpose()?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.request_changes(&ctx, id, &cmd.body.reason, deadline))
        .await
}

/// Cancel (requester only, any time before payment).
#[utoipa::path(post, path = "/api/requisitions/{id}/cancel", tag = "requisitions", params(("id" = Uuid, Path)),
    request_body = OptionalReason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err)))]
pub async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<OptionalReason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.cancel_requisition(&ctx, id, cmd.body.reason.as_deref()))
        .await
}

/// Confirm that an urgent requisition is urgent, with an optional comment: an approver of the
/// first step, before anyone approves. On a threshold that allows a fast-track the chain then
/// waits for its final step only (`fast_tracked`); the recorded chain is kept.
#[utoipa::path(post, path = "/api/requisitions/{id}/confirm-urgency", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = OptionalComment,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn confirm_urgency(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<OptionalComment>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let comment = cmd.body.comment.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.confirm_urgency(&ctx, id, comment)).await
}

/// Deny the urgency, with a reason: an approver of the first step. The normal chain goes on.
#[utoipa::path(post, path = "/api/requisitions/{id}/deny-urgency", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn deny_urgency(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Reason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.deny_urgency(&ctx, id, &cmd.body.reason)).await
}

/// Undo a fast-track, with a reason: whoever confirmed the urgency, or an approver of the step
/// it waits for. The full recorded chain applies again from its first step.
#[utoipa::path(post, path = "/api/requisitions/{id}/revert-fast-track", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn revert_fast_track(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Reason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.revert_fast_track(&ctx, id, &cmd.body.reason)).await
}

/// Emergency approval by an admin, with a justification: recorded as an override
/// (`ApprovalOverridden`, naming the skipped steps), never as approvals. Refused on one's own
/// requisition (403 `self_approval`), to anyone who approved it, and to anyone a participant
/// registered. The overriding admin may not pay it.
#[utoipa::path(post, path = "/api/requisitions/{id}/override", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = Justification,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn override_approval(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Justification>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.override_approval(&ctx, id, &cmd.body.justification))
        .await
}
