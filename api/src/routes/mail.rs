//! The signed-in user's mail preferences: which categories of mail they mute.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use pettycash_commands::views::MailPreferences;
use pettycash_domain::MailCategory;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/me/mail-preferences", get(get_preferences).put(put_preferences))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailPreferencesInput {
    /// The categories to mute, replacing the set before (`[]`: every mail). One of
    /// `approval_requested`, `requisition_outcome`, `ready_for_payment`, `paid`, `reminder`;
    /// `invitation`, `security` and `payment_code` cannot be muted.
    #[schema(example = json!(["paid", "reminder"]))]
    pub muted: Vec<String>,
}

/// The categories of mail the signed-in user muted.
#[utoipa::path(get, path = "/api/me/mail-preferences", tag = "auth",
    responses((status = 200, body = MailPreferences), (status = 401, body = crate::error::ErrorBody)))]
pub async fn get_preferences(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<MailPreferences>> {
    let (muted, position): (Vec<MailCategory>, i64) =
        sqlx::query_as("SELECT muted_mail, last_position FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&state.pool)
            .await?;
    Ok(Json(MailPreferences { muted, position }))
}

/// Mute categories of mail, replacing the set before.
///
/// Invitations, security mail and payment codes always come: muting one is refused (422,
/// field `muted`). Mail already queued goes out.
#[utoipa::path(put, path = "/api/me/mail-preferences", tag = "auth", request_body = MailPreferencesInput,
    responses((status = 200, body = MailPreferences), (status = 401, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_preferences(
    State(state): State<AppState>,
    cmd: Command<MailPreferencesInput>,
) -> ApiResult<Response> {
    let muted = cmd
        .body
        .muted
        .iter()
        .map(|c| c.parse::<MailCategory>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::unprocessable("muted", e.to_string()))?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.mute_mail(&ctx, muted)).await
}
