//! Sign in, sign out, who am I.

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    check_same_origin, cookie, parse_json, require_json, session_token, CurrentUser, Meta, SESSION_COOKIE,
};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pettycash_commands::auth::{AuthUser, Session};
use pettycash_commands::throttle::DEVICE_COOKIE_DAYS;
use pettycash_commands::RequestMeta;
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

/// The cookie that marks a browser or client a user has signed in from before: sign-ins
/// presenting it are throttled on their own, not with everyone else's guesses at the account
/// (`pettycash_commands::throttle`). Sent to the login endpoint only.
pub const DEVICE_COOKIE: &str = "pettycash_device";

/// An HttpOnly, `SameSite=Lax` cookie, `Secure` unless DEBUG (HTTPS only in production).
pub(crate) fn set_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.debug { "" } else { "; Secure" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

fn session_cookie(state: &AppState, token: &str, max_age: i64) -> HeaderValue {
    set_cookie(state, SESSION_COOKIE, token, "/", max_age)
}

/// Sign in with email and password.
///
/// Attempts are throttled per account, per client address and per device (the
/// `pettycash_device` cookie a sign-in sets): past the limit the answer is 429 with
/// `Retry-After`, and the password is not checked. JSON only, and not from another site's
/// page (login CSRF).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 403, description = "cross-site request", body = crate::error::ErrorBody),
              (status = 415, description = "body not sent as `application/json`", body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody),
              (status = 429, description = "too many attempts; wait `Retry-After` seconds",
               body = crate::error::ErrorBody,
               headers(("Retry-After" = u64, description = "seconds until an attempt is let through")))))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // A page on another site must not sign the browser in to an account of its choosing (login
    // CSRF): the Origin rule of cookie-authenticated writes, and JSON only, which a plain HTML
    // form cannot send (it can send `text/plain` without a CORS preflight).
    check_same_origin(&headers, &state)?;
    require_json(&headers)?;
    let req: LoginRequest = parse_json(&body)?;
    let session = sign_in(&state, &req.email, &req.password, &headers, &meta).await?;
    Ok(signed_in(&state, StatusCode::OK, session))
}

/// Checks an email and password and opens a session: the one sign-in of the API and of the
/// sign-in page (`crate::web`), throttled alike. The caller has checked the request's origin.
/// Both fields are required (422 naming the field); the device cookie of `headers` is that of
/// the endpoint's path (the API's and the page's are separate cookies: see
/// [`session_cookies`]).
pub(crate) async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> ApiResult<Session> {
    if email.trim().is_empty() {
        return Err(ApiError::unprocessable("email", "email is required"));
    }
    if password.is_empty() {
        return Err(ApiError::unprocessable("password", "password is required"));
    }
    let device = cookie(headers, DEVICE_COOKIE);
    let lockout = state.commands.settings().await?.lockout;
    Ok(state.auth.login(email, password, device, meta, lockout).await?)
}

/// The answer that signs someone in (a sign-in, an accepted invitation): the token in the body
/// and in the session cookie, and the device cookie.
pub(crate) fn signed_in(state: &AppState, status: StatusCode, session: Session) -> Response {
    let cookies = session_cookies(state, &session, LOGIN_PATH);
    let mut response = (
        status,
        Json(LoginResponse { token: session.token, expires_at: session.expires_at, user: session.user }),
    )
        .into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The path of `POST /api/auth/login`, to which the API's device cookie is sent.
const LOGIN_PATH: &str = "/api/auth/login";

/// The `Set-Cookie` values that sign a browser in with `session`: the session cookie (every
/// path) and the device cookie, sent back only to `login_path` (the sign-in endpoint that set
/// it: the API's or the sign-in page's, each with its own cookie).
pub(crate) fn session_cookies(state: &AppState, session: &Session, login_path: &str) -> [HeaderValue; 2] {
    let max_age = (session.expires_at - Utc::now()).num_seconds().max(0);
    let device_max_age = DEVICE_COOKIE_DAYS * 24 * 60 * 60;
    [
        session_cookie(state, &session.token, max_age),
        set_cookie(state, DEVICE_COOKIE, &session.device_cookie, login_path, device_max_age),
    ]
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn cleared_session_cookie(state: &AppState) -> HeaderValue {
    session_cookie(state, "", 0)
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
    response.headers_mut().insert(header::SET_COOKIE, cleared_session_cookie(&state));
    Ok(response)
}

/// The signed-in user and their roles.
#[utoipa::path(get, path = "/api/me", tag = "auth",
    responses((status = 200, body = AuthUser), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(CurrentUser(user): CurrentUser) -> Json<AuthUser> {
    Json(user)
}
