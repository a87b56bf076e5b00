//! HTTP routes, one module per area, merged by [`crate::startup::router`].

pub mod auth;
pub mod funds;
pub mod meta;
pub mod payments;
pub mod policy;
pub mod requisitions;
pub mod users;

use crate::error::{ApiError, ApiResult};
use crate::extract::Command;
use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pettycash_commands::{CommandError, Outcome};
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
