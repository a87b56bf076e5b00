//! Possible duplicates and FP&A's review after payment: dismissing a duplicate flag, marking
//! a paid requisition reviewed or flagging it (`pettycash_domain::requisition`'s `review`
//! module has the rules).

use super::requisitions::{OptionalComment, Reason};
use super::run;
use crate::error::ApiResult;
use crate::extract::{Command, IdPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pettycash_commands::views::RequisitionView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/requisitions/{id}/dismiss-duplicate", post(dismiss_duplicate))
        .route("/api/requisitions/{id}/review", post(review))
        .route("/api/requisitions/{id}/flag", post(flag))
}

type Err = crate::error::ErrorBody;

/// Dismiss the possible-duplicate flag, with a reason: someone who may decide the current step
/// (as for approve). Approving does not need it: the flag warns, it does not block. 409
/// `no_duplicate_flag` when there is no flag or it was dismissed already.
#[utoipa::path(post, path = "/api/requisitions/{id}/dismiss-duplicate", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn dismiss_duplicate(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Reason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.dismiss_duplicate(&ctx, id, &cmd.body.reason)).await
}

/// FP&A: mark a paid requisition reviewed, with an optional comment. Only `fpa`, only someone
/// who took no part in it (403 `reviewer_took_part`: requester, approver of any round, who
/// asked for changes, payer; 403 `sponsored_by_participant`); once (409 `already_reviewed`).
#[utoipa::path(post, path = "/api/requisitions/{id}/review", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = OptionalComment,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn review(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<OptionalComment>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let comment = cmd.body.comment.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.mark_reviewed(&ctx, id, comment)).await
}

/// FP&A: flag a paid requisition for a closer look, with a reason. The same people as for a
/// review; a flag may follow a review (something found later), nothing follows a flag.
#[utoipa::path(post, path = "/api/requisitions/{id}/flag", tag = "requisitions",
    params(("id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = RequisitionView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn flag(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Reason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.flag_after_payment(&ctx, id, &cmd.body.reason)).await
}
