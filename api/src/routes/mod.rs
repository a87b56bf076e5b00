//! HTTP routes, one module per area, merged by [`crate::startup::router`].

pub mod advances;
pub mod alerts;
pub mod auth;
pub mod budgets;
pub mod bulk_payments;
pub mod delegations;
pub mod fund_ops;
pub mod funds;
pub mod invitations;
pub mod mail;
pub mod meta;
pub mod org;
pub mod payments;
pub mod policy;
pub mod reads;
pub mod receipts;
pub mod reports;
pub mod requisitions;
pub mod review;
pub mod settings;
pub mod users;

use crate::error::{ApiError, ApiResult};
use crate::extract::Command;
use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pettycash_commands::{CommandError, Outcome, SessionGuard};
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::ToSchema;

/// Header carrying the global position of a command's last event.
pub const POSITION_HEADER: &str = "x-event-position";

/// A JSON response with the event position header.
fn respond(status: StatusCode, position: i64, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(POSITION_HEADER, HeaderValue::from(position));
    response
}

/// A command's error as the API answers it; a session that changed under the command is
/// forgotten, as [`run`] does (for the commands that do not go through it: file imports, the
/// pages' forms).
pub fn command_error(state: &AppState, session: &SessionGuard, err: CommandError) -> ApiError {
    if matches!(err, CommandError::SessionChanged) {
        state.auth.forget_session(&session.token_hash);
    }
    err.into()
}

/// Runs a command with idempotency: a request whose `Idempotency-Key` was seen before gets the
/// stored response (and appends nothing), or 422 if the key came with a different request.
pub async fn run<B, T, F>(
    state: &AppState,
    cmd: &Command<B>,
    status: StatusCode,
    command: F,
) -> ApiResult<Response>
where
    T: Serialize,
    F: Future<Output = Result<Outcome<T>, CommandError>>,
{
    if let Some(stored) = replay(state, cmd).await? {
        return Ok(stored);
    }
    match command.await {
        Ok(outcome) => Ok(respond(status, outcome.position, &outcome.value)),
        Err(err @ CommandError::SessionChanged) => {
            state.auth.forget_session(&cmd.session.token_hash);
            Err(err.into())
        }
        // A concurrent request with the same key may have committed first.
        Err(err) if cmd.idempotency_key().is_some() => match replay(state, cmd).await? {
            Some(stored) => Ok(stored),
            None => Err(err.into()),
        },
        Err(err) => Err(err.into()),
    }
}

async fn replay<B>(state: &AppState, cmd: &Command<B>) -> ApiResult<Option<Response>> {
    let Some(key) = cmd.idempotency_key() else { return Ok(None) };
    let row: Option<(Vec<u8>, i16, serde_json::Value)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(cmd.user.id)
    .bind(key)
    .fetch_optional(&state.pool)
    .await?;
    let Some((hash, status, body)) = row else { return Ok(None) };
    if hash != cmd.request_hash() {
        return Err(CommandError::IdempotencyKeyReused.into());
    }
    let status = StatusCode::from_u16(status as u16).map_err(ApiError::internal)?;
    let position = body.get("position").and_then(|p| p.as_i64()).unwrap_or_default();
    let mut response = respond(status, position, body);
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Some(response))
}

/// A command without a body (an empty body or `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// Header with the projection position a query response reflects.
pub const PROJECTION_POSITION_HEADER: &str = "x-projection-position";

/// `min_position` (query parameter) or `X-Min-Position` (header): read-your-writes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct Consistency {
    /// Wait until the read models include the event at this position (from a command's
    /// `position`); 503 with `Retry-After` if they do not within the bounded wait.
    pub min_position: Option<i64>,
}

/// Waits for `min` (from the query or the `X-Min-Position` header) on `projections`, then
/// returns the position the read models reflect.
pub async fn consistent(
    state: &AppState,
    projections: &[&str],
    min: Option<i64>,
    headers: &axum::http::HeaderMap,
) -> ApiResult<i64> {
    let header_min = match headers.get("x-min-position") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_min_position", "X-Min-Position must be an integer")
                .with_field("X-Min-Position")
        })?),
    };
    if let Some(min) = min.into_iter().chain(header_min).max() {
        let wait = std::time::Duration::from_millis(state.config.min_position_wait_ms);
        if !pettycash_projections::wait::wait_for(&state.pool, projections, min, wait).await? {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "projection_behind",
                format!("the read models have not reached position {min} yet; retry shortly"),
            );
            err.field = Some("min_position".into());
            return Err(err);
        }
    }
    let position: Option<i64> = sqlx::query_scalar(
        "SELECT min(last_position) FROM projection_checkpoints WHERE name = ANY($1) AND state = $2",
    )
    .bind(projections)
    .bind(pettycash_projections::CheckpointState::Live)
    .fetch_one(&state.pool)
    .await?;
    Ok(position.unwrap_or(0))
}

/// A query answer: the body, which carries the read models' `position` itself (every query
/// answer's type has the field), and that position in the `X-Projection-Position` header.
/// Serialised straight to bytes: a dashboard is 80 kB of JSON, and building it as a
/// `serde_json::Value` first allocated a map entry for every field of it (a profile of the
/// server under dashboards: a fifth of its time in the allocator).
pub fn query_response(position: i64, body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(PROJECTION_POSITION_HEADER, HeaderValue::from(position));
    response
}
