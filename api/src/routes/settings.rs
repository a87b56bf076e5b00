//! Runtime settings: read (signed in), change one (admin). Each change is an event.

use super::run;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Command, CurrentUser};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use pettycash_commands::views::SettingsView;
use pettycash_domain::settings::{SettingKey, UnknownSetting};
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/settings", get(get_settings)).route("/api/settings/{key}", put(put_setting))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingInput {
    /// The new value: a whole number or true/false, as the setting takes.
    #[schema(value_type = Object, example = json!(16))]
    pub value: serde_json::Value,
}

/// The runtime settings in force, every one with its value: `password_min_length` (8–128),
/// `password_require_upper`, `password_require_lower`, `password_require_digit`
/// (true/false), `lockout_threshold` (failed sign-ins on an account before it is throttled,
/// 1–100), `lockout_minutes` (the longest wait between attempts, 1–1440),
/// `payment_code_waiver_below` (cash payments below this whole amount need no one-time code;
/// 0–1,000,000,000, default 0: never waived), `payment_timeout_minutes` (a payment through a
/// provider executing longer is recorded as timed out and its provider asked, 1–1440, default 10),
/// `payment_max_retries` (new provider attempts after a retryable failure, 0–10, default 3),
/// `alert_large_payment_above` (payments above this whole amount raise a `large_payment` alert;
/// 0–1,000,000,000, default 0: never), `alert_otp_failures` (wrong payment codes by one payer
/// for one requisition within `alert_otp_window_minutes` that raise `otp_failures`, 1–100,
/// default 3; window 1–1440, default 60), `alert_variance_pending_hours` (a count's variance
/// waiting longer raises `variance_pending`, 1–720, default 48).
#[utoipa::path(get, path = "/api/settings", tag = "settings", responses((status = 200, body = SettingsView)))]
pub async fn get_settings(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> ApiResult<Json<SettingsView>> {
    Ok(Json(SettingsView::new(&state.commands.runtime_settings().await?, 0)))
}

/// Change one setting (admin). 422 names `value` when it is not of the setting's type or
/// range, `key` when there is no such setting.
#[utoipa::path(put, path = "/api/settings/{key}", tag = "settings", request_body = SettingInput,
    params(("key" = String, Path, description = "the setting's name")),
    responses((status = 200, body = SettingsView), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_setting(
    State(state): State<AppState>,
    Path(key): Path<String>,
    cmd: Command<SettingInput>,
) -> ApiResult<Response> {
    let key: SettingKey =
        key.parse().map_err(|e: UnknownSetting| ApiError::unprocessable("key", e.to_string()))?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.change_setting(&ctx, key, cmd.body.value.clone())).await
}
