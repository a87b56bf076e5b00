//! CSRF tokens for the pages' forms (issue #16): every unsafe request a page makes carries a
//! token in a hidden field, checked before anything else the request asks for is done.
//!
//! A token is an HMAC under `SECRET_KEY` of what it is bound to, so nothing is stored:
//!
//! - the session (`Binding::Session`): forms of a signed-in user. A token is good for as long
//!   as the session, and for that session only; signing out or in makes new ones.
//! - a random cookie (`Binding::Anonymous`, [`ANONYMOUS_COOKIE`]): the sign-in form, before
//!   there is a session (login CSRF: another site's page must not sign a browser in to an
//!   account of its choosing). The sign-in page sets the cookie when the browser has none.
//!
//! This is on top of the Origin check every cookie-authenticated write has
//! (`crate::extract::check_same_origin`), which stays: it refuses what a browser says came from
//! elsewhere; the token refuses what cannot prove it came from one of our pages (a browser that
//! sends neither `Origin` nor `Sec-Fetch-Site`, a subdomain we do not control). The session
//! cookie's `SameSite=Lax` is a third, weaker line.

use crate::error::{ApiError, ApiResult};
use crate::extract::{command_parts, session_token};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use pettycash_commands::auth::AuthUser;
use pettycash_commands::{CommandContext, RequestMeta, SessionGuard};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// The hidden field of every form.
pub const FIELD: &str = "csrf_token";

/// The cookie the sign-in form's token is bound to (HttpOnly, sent to `/accounts/` only).
pub const ANONYMOUS_COOKIE: &str = "pettycash_csrf";

/// What a token is bound to.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// A session token (the session cookie's value).
    Session(&'a str),
    /// The value of [`ANONYMOUS_COOKIE`].
    Anonymous(&'a str),
}

fn mac(state: &AppState, binding: Binding<'_>) -> ApiResult<Hmac<Sha256>> {
    // `AppState::new` refuses a configuration without SECRET_KEY, so this is always there.
    let secret = state.config.secret_key.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("no SECRET_KEY: CSRF tokens are signed with it"))
    })?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(ApiError::internal)?;
    // The purpose and the kind of binding first: a CSRF token is never the MAC of anything
    // else keyed with SECRET_KEY (session token hashes, invitation tokens).
    let (kind, value) = match binding {
        Binding::Session(token) => ("session", token),
        Binding::Anonymous(cookie) => ("anonymous", cookie),
    };
    for part in ["pettycash csrf v1", kind, value] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    Ok(mac)
}

/// The token of the forms bound to `binding` (URL-safe base64, no padding).
pub fn token(state: &AppState, binding: Binding<'_>) -> ApiResult<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(state, binding)?.finalize().into_bytes()))
}

/// The answer to a form whose token is missing or wrong: 403 `csrf_failed` (a page, through
/// `super::html_errors`).
pub fn refused() -> ApiError {
    ApiError::forbidden(
        "csrf_failed",
        "This form could not be accepted: it has expired or did not come from this site. \
         Go back, reload the page and try again.",
    )
    .with_field(FIELD)
}

/// Checks `presented` against the token of `binding` (in constant time); an empty binding
/// value (no session, no cookie) never matches.
pub fn verify(state: &AppState, binding: Binding<'_>, presented: Option<&str>) -> ApiResult<()> {
    let (Binding::Session(value) | Binding::Anonymous(value)) = binding;
    let presented = presented
        .filter(|_| !value.is_empty())
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim()).ok())
        .ok_or_else(refused)?;
    mac(state, binding)?.verify_slice(&presented).map_err(|_| refused())
}

/// A new value for [`ANONYMOUS_COOKIE`].
pub fn new_anonymous_value() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The value of the field `name` of a form body (the first, when sent twice).
pub fn field(body: &[u8], name: &str) -> ApiResult<Option<String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request("malformed_form", format!("the form could not be read: {e}")))?;
    Ok(pairs.into_iter().find(|(n, _)| n == name).map(|(_, v)| v))
}

/// A form body (`application/x-www-form-urlencoded`) as `T`; a field of the wrong kind is 422
/// naming it.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("the form is not valid: {e}"),
        )
    })
}

/// A form posted by a signed-in user from one of the pages, its CSRF token checked: the user,
/// the session token, what a command needs (session guard, metadata) and the other fields as
/// `T` (which does not declare [`FIELD`]).
///
/// Refused, in this order and before the handler runs: no valid session (to the sign-in page),
/// a cookie write from another site (403, `check_same_origin`, as for the API), a missing or
/// wrong token (403 [`refused`]), fields that are not a `T` (422).
pub struct PageForm<T> {
    pub user: AuthUser,
    pub token: String,
    pub session: SessionGuard,
    pub meta: RequestMeta,
    pub form: T,
}

impl<T> PageForm<T> {
    /// The context of the command the form asks for.
    pub fn context(&self) -> CommandContext {
        CommandContext::user(self.user.actor(), self.meta.clone()).with_session(Some(self.session.clone()))
    }
}

/// What a form posted by a signed-in user's page carries besides its fields: the user, their
/// session, the request's metadata and the session token its CSRF token is bound to (the
/// API's `command_parts`: the same-origin check included). A session that ended sends the
/// browser to sign in again (the form's fields are not kept; its address is no page to come
/// back to). Shared by [`PageForm`] and the pages' file uploads (`PageUpload`).
pub(crate) async fn form_parts(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(AuthUser, SessionGuard, RequestMeta, String), Response> {
    let (user, session, meta) = command_parts(parts, state).await.map_err(|e| match e.status {
        StatusCode::UNAUTHORIZED => super::session::to_sign_in(None),
        _ => e.into_response(),
    })?;
    let token = session_token(&parts.headers).map(|(t, _)| t).unwrap_or_default();
    Ok((user, session, meta, token))
}

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let (user, session, meta, token) = form_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|e| {
            ApiError::new(e.status(), "payload_too_large", format!("request body refused: {}", e.body_text()))
                .into_response()
        })?;
        let presented = field(&bytes, FIELD).map_err(IntoResponse::into_response)?;
        verify(state, Binding::Session(&token), presented.as_deref()).map_err(IntoResponse::into_response)?;
        let form = parse_form(&bytes).map_err(IntoResponse::into_response)?;
        Ok(PageForm { user, token, session, meta, form })
    }
}
