//! Sign in, sign out, who am I.

use crate::error::{ApiError, ApiResult};
use crate::extract::{check_same_origin, parse_json, session_token, CurrentUser, Meta, SESSION_COOKIE};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pettycash_commands::auth::AuthUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "treasury@demo.pettycash.local")]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`. The same token is set as an HttpOnly cookie.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: AuthUser,
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.debug { "" } else { "; Secure" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// Sign in with email and password. Five failures in a row lock the account for 15 minutes.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn login(State(state): State<AppState>, Meta(meta): Meta, body: Bytes) -> ApiResult<Response> {
    let req: LoginRequest = parse_json(&body)?;
    if req.email.trim().is_empty() {
        return Err(ApiError::unprocessable("email", "email is required"));
    }
    if req.password.is_empty() {
        return Err(ApiError::unprocessable("password", "password is required"));
    }
    let session = state.auth.login(&req.email, &req.password, &meta).await?;
    let max_age = (session.expires_at - Utc::now()).num_seconds().max(0);
    let mut response = Json(LoginResponse {
        token: session.token.clone(),
        expires_at: session.expires_at,
        user: session.user,
    })
    .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&state, &session.token, max_age));
    Ok(response)
}

/// End the current session (the bearer token or cookie stops working).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some((token, from_cookie)) = session_token(&headers) {
        if from_cookie {
            check_same_origin(&headers, &state)?;
        }
        state.auth.logout(&token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}

/// The signed-in user and their roles.
#[utoipa::path(get, path = "/api/me", tag = "auth",
    responses((status = 200, body = AuthUser), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(CurrentUser(user): CurrentUser) -> Json<AuthUser> {
    Json(user)
}
