//! Advances (issue #14 [treasury]): cash paid before the spend (a requisition created with
//! `"advance": true`), then settled by its holder with what they spent and the change they
//! return; what they spent beyond it is claimed by a reimbursement requisition.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Amount, Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use pettycash_commands::advances::{AdvanceFilter, AdvanceView, Settlement, SettlementReceipt, STATUSES};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/advances", get(list))
        .route("/api/advances/{id}", get(get_one))
        .route("/api/advances/{id}/settlements", post(settle))
}

type Err = crate::error::ErrorBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Spent on the advance's purpose (with receipts), in the advance's currency.
    #[schema(value_type = String, example = "3200.00")]
    pub spent: Option<Amount>,
    /// Cash given back to the fund.
    #[schema(value_type = String, example = "300.00")]
    pub returned: Option<Amount>,
    /// When given, must be the advance's currency (409 `currency_mismatch` otherwise).
    #[schema(example = "KES")]
    pub currency: Option<String>,
    /// Receipts attached to the advance's requisition that support what was spent.
    #[serde(default)]
    pub receipt_ids: Vec<Uuid>,
    pub note: Option<String>,
    /// Spent beyond the advance: a new requisition for it is created and submitted for the
    /// normal approval. Only with the settlement that settles all that remains.
    #[schema(value_type = Option<String>, example = "450.00")]
    pub extra_owed: Option<Amount>,
}

/// Settle (part of) your advance: `spent` and/or `returned`, together at most what remains to
/// settle (409 `settlement_exceeds_advance` naming the field); returned cash is recorded in the
/// fund's cash book in the same transaction. Only the holder settles (404 for anyone else's);
/// only once it was paid (409 `advance_not_issued`).
#[utoipa::path(post, path = "/api/advances/{id}/settlements", tag = "advances", params(("id" = Uuid, Path)),
    request_body = SettleRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe key")),
    responses((status = 201, body = SettlementReceipt), (status = 404, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn settle(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<SettleRequest>,
) -> ApiResult<Response> {
    let b = &cmd.body;
    let input = Settlement {
        spent: b.spent.as_ref().map_or_else(Default::default, |a| a.0),
        returned: b.returned.as_ref().map_or_else(Default::default, |a| a.0),
        currency: b.currency.clone(),
        receipt_ids: b.receipt_ids.clone(),
        note: b.note.clone(),
        extra_owed: b.extra_owed.as_ref().map(|a| a.0),
    };
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.settle_advance(&ctx, id, input)).await
}

/// An advance: amount, spent, returned, remaining to settle, due date and status (its holder,
/// or treasury and the other payment readers of the fund's company; 404 otherwise).
#[utoipa::path(get, path = "/api/advances/{id}", tag = "advances", params(("id" = Uuid, Path)),
    responses((status = 200, body = AdvanceView), (status = 404, body = Err)))]
pub async fn get_one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> ApiResult<Json<AdvanceView>> {
    Ok(Json(state.commands.advance(&user.actor(), id).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this holder's.
    pub holder_id: Option<Uuid>,
    /// `requested`, `outstanding`, `overdue` or `settled`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdvanceList {
    pub items: Vec<AdvanceView>,
}

/// Advances, newest first (at most 500): treasury and the other payment readers see their
/// company's, everyone else their own.
#[utoipa::path(get, path = "/api/advances/", tag = "advances", params(ListQuery),
    responses((status = 200, body = AdvanceList), (status = 422, body = Err)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AdvanceList>> {
    if let Some(status) = q.status.as_deref() {
        if !STATUSES.contains(&status) {
            return Err(ApiError::unprocessable(
                "status",
                format!("`status` is one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let filter = AdvanceFilter { holder_id: q.holder_id, status: q.status.clone() };
    Ok(Json(AdvanceList { items: state.commands.advances(&user.actor(), &filter).await? }))
}
