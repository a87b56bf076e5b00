//! Fund operations (issue #14 [treasury]): an admin's settings (`PATCH /api/funds/{id}`),
//! replenishment requests, cash counts with their variances, period close and closing a fund.
//!
//! Who may: settings and closing, an admin; raising a replenishment by hand and recording the
//! cash received, treasury; approving or rejecting one, cfo, admin or treasury other than its
//! requester (an automatic one has none). Counting, the fund's custodian or a treasury user
//! (treasury stands in for a custodian who is away, or a fund with none); a variance is
//! decided by an admin or the role of setting `variance_approver_role` (default `cfo`), never by
//! who counted; within `variance_tolerance_basis_points` of the float it is adjusted at once.

use super::run;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::extract::{Amount, Command, IdPath};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pettycash_commands::service::FundSettingsPatch;
use pettycash_commands::views::{CountView, FundView, ReplenishmentView};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

type Err = crate::error::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/funds/{id}/replenishments", post(request_replenishment))
        .route("/api/funds/{id}/replenishments/{sub}/approve", post(approve_replenishment))
        .route("/api/funds/{id}/replenishments/{sub}/reject", post(reject_replenishment))
        .route("/api/funds/{id}/replenishments/{sub}/fund", post(fund_replenishment))
        .route("/api/funds/{id}/counts", post(record_count))
        .route("/api/funds/{id}/counts/{sub}/approve", post(approve_variance))
        .route("/api/funds/{id}/counts/{sub}/reject", post(reject_variance))
        .route("/api/funds/{id}/periods/close", post(close_period))
        .route("/api/funds/{id}/close", post(close_fund))
}

/// A fund's id and the id of something of it, from the path.
pub struct FundAndId(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for FundAndId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((fund, sub)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid_id", "the path needs two ids"))?;
        let parse = |raw: &str, field: &'static str| {
            Uuid::parse_str(raw).map_err(|_| {
                ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid id")).with_field(field)
            })
        };
        Ok(FundAndId(parse(&fund, "id")?, parse(&sub, "sub_id")?))
    }
}

/// `Some(value)` when the field is present, even as `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The fields given replace the fund's; the others stay. Never the balance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundSettingsRequest {
    /// Below it a replenishment is due; `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "12500.00")]
    pub reorder_level: Option<Option<Amount>>,
    /// Below it the fund is critical (`0` for none).
    #[schema(value_type = Option<String>, example = "5000.00")]
    pub minimum_balance: Option<Amount>,
    pub auto_replenish: Option<bool>,
    /// The custodian; `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub custodian_id: Option<Option<Uuid>>,
}

/// Change a fund's reorder level, minimum balance, auto-replenish or custodian (admin of its
/// company). An event records the new settings; the balance never changes here.
#[utoipa::path(patch, path = "/api/funds/{id}", tag = "funds", params(("id" = Uuid, Path)),
    request_body = FundSettingsRequest,
    responses((status = 200, body = FundView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn change_settings(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<FundSettingsRequest>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let b = &cmd.body;
    let patch = FundSettingsPatch {
        reorder_level: b.reorder_level.as_ref().map(|r| r.as_ref().map(|a| a.0)),
        minimum_balance: b.minimum_balance.as_ref().map(|a| a.0),
        auto_replenish: b.auto_replenish,
        custodian_id: b.custodian_id,
    };
    run(&state, &cmd, StatusCode::OK, state.commands.change_fund_settings(&ctx, id, patch)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionalReason {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankReference {
    /// The bank's reference of the transfer.
    #[schema(example = "FT2612061234")]
    pub bank_reference: String,
}

/// Raise a replenishment request by hand, for float − balance (treasury). One at a time: 409
/// `replenishment_open` while one is open (an automatic one included).
#[utoipa::path(post, path = "/api/funds/{id}/replenishments", tag = "funds", params(("id" = Uuid, Path)),
    request_body = NoBody,
    responses((status = 201, body = ReplenishmentView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn request_replenishment(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.request_replenishment(&ctx, id)).await
}

/// Approve the fund's open replenishment request: cfo, admin or treasury, not its requester
/// (403 `four_eyes`).
#[utoipa::path(post, path = "/api/funds/{id}/replenishments/{sub}/approve", tag = "funds",
    params(("id" = Uuid, Path), ("sub" = Uuid, Path, description = "the replenishment")), request_body = NoBody,
    responses((status = 200, body = ReplenishmentView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn approve_replenishment(
    State(state): State<AppState>,
    FundAndId(id, sub): FundAndId,
    cmd: Command<NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.decide_replenishment(&ctx, id, sub, true, None)).await
}

/// Reject the fund's open replenishment request (same people as approving).
#[utoipa::path(post, path = "/api/funds/{id}/replenishments/{sub}/reject", tag = "funds",
    params(("id" = Uuid, Path), ("sub" = Uuid, Path, description = "the replenishment")),
    request_body = OptionalReason,
    responses((status = 200, body = ReplenishmentView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn reject_replenishment(
    State(state): State<AppState>,
    FundAndId(id, sub): FundAndId,
    cmd: Command<OptionalReason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reason = cmd.body.reason.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.decide_replenishment(&ctx, id, sub, false, reason)).await
}

/// Record the cash of an approved replenishment as received (treasury): a movement of the
/// requested amount into the fund.
#[utoipa::path(post, path = "/api/funds/{id}/replenishments/{sub}/fund", tag = "funds",
    params(("id" = Uuid, Path), ("sub" = Uuid, Path, description = "the replenishment")),
    request_body = BankReference,
    responses((status = 200, body = ReplenishmentView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn fund_replenishment(
    State(state): State<AppState>,
    FundAndId(id, sub): FundAndId,
    cmd: Command<BankReference>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reference = cmd.body.bank_reference.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.fund_replenishment(&ctx, id, sub, reference)).await
}

/// A physical count: pieces per denomination, keyed by face value in the major unit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// Pieces per denomination; 422 (field `counts`) names one that is not of the fund's
    /// currency.
    #[schema(example = json!({"1000": 12, "500": 1, "0.50": 4}))]
    pub counts: BTreeMap<String, u64>,
}

impl CountRequest {
    fn lines(&self) -> Vec<(String, u64)> {
        self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Record a cash count (the fund's custodian, or treasury). The variance (count − book
/// balance now) is recorded; within the tolerance setting it is adjusted at once, otherwise it
/// waits for an approver.
#[utoipa::path(post, path = "/api/funds/{id}/counts", tag = "funds", params(("id" = Uuid, Path)),
    request_body = CountRequest,
    responses((status = 201, body = CountView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn record_count(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<CountRequest>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let lines = cmd.body.lines();
    run(&state, &cmd, StatusCode::CREATED, state.commands.record_count(&ctx, id, lines, false)).await
}

/// Close the current month (UTC) with a count (custodian or treasury): its figures are final,
/// its closing balance opens the next month, and no movement can be recorded into it (409
/// `period_closed`).
#[utoipa::path(post, path = "/api/funds/{id}/periods/close", tag = "funds", params(("id" = Uuid, Path)),
    request_body = CountRequest,
    responses((status = 201, body = CountView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn close_period(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<CountRequest>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::CREATED);
    let lines = cmd.body.lines();
    run(&state, &cmd, StatusCode::CREATED, state.commands.record_count(&ctx, id, lines, true)).await
}

/// Approve a count's variance: the difference is applied to the balance of now, once (409
/// `variance_settled` after). An admin or the `variance_approver_role`, not who counted.
#[utoipa::path(post, path = "/api/funds/{id}/counts/{sub}/approve", tag = "funds",
    params(("id" = Uuid, Path), ("sub" = Uuid, Path, description = "the count")), request_body = NoBody,
    responses((status = 200, body = CountView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn approve_variance(
    State(state): State<AppState>,
    FundAndId(id, sub): FundAndId,
    cmd: Command<NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.decide_variance(&ctx, id, sub, true, None)).await
}

/// Reject a count's variance (the balance stays).
#[utoipa::path(post, path = "/api/funds/{id}/counts/{sub}/reject", tag = "funds",
    params(("id" = Uuid, Path), ("sub" = Uuid, Path, description = "the count")), request_body = OptionalReason,
    responses((status = 200, body = CountView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn reject_variance(
    State(state): State<AppState>,
    FundAndId(id, sub): FundAndId,
    cmd: Command<OptionalReason>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reason = cmd.body.reason.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.decide_variance(&ctx, id, sub, false, reason)).await
}

/// Close a fund (admin): its cash goes back to the bank (a final movement to zero), then no
/// payment or other movement is possible. Refused while a replenishment or a variance is open.
#[utoipa::path(post, path = "/api/funds/{id}/close", tag = "funds", params(("id" = Uuid, Path)),
    request_body = BankReference,
    responses((status = 200, body = FundView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn close_fund(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<BankReference>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reference = cmd.body.bank_reference.clone();
    run(&state, &cmd, StatusCode::OK, state.commands.close_fund(&ctx, id, reference)).await
}
