//! The invitee's page (issue #16): the mailed link `{PUBLIC_URL}/invitations/{token}`
//! (`commands::mail`) answers 303 to `/accounts/invitations/{token}`, which greets them
//! (`POST /api/invitations/lookup`'s preview) and takes the password they choose. Accepting is
//! the API's (`routes::invitations::accept_and_sign_in`: the same command, the same password
//! settings, the same session and cookies); the new user is then on the dashboard.
//!
//! Why the redirect: the form is shown before there is a session, so its CSRF token is bound to
//! the `pettycash_csrf` cookie, which is sent to `/accounts/` only (as for the sign-in form);
//! the page lives there rather than widening that cookie to the whole site. Every link that
//! does not work is the API's one answer, 410 `invitation_invalid`, as a page.

use super::csrf::{self, Binding, ANONYMOUS_COOKIE};
use super::layout::Layout;
use super::render;
use super::session::{anonymous_csrf, sentence, with_cookie, HOME, LOGIN_PATH};
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_same_origin, cookie, Meta};
use crate::routes::auth::session_cookies;
use crate::routes::invitations::accept_and_sign_in;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Where the page is; the mailed link's path is `/invitations/{token}`.
pub const PAGE: &str = "/accounts/invitations";

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    layout: Layout,
    csrf_token: String,
    token: String,
    name: String,
    email: String,
    expires: String,
    /// A refusal that names no field of the form.
    error: Option<String>,
    password_error: Option<String>,
    confirm_error: Option<String>,
}

/// Whether `token` can go into a `Location` as it is (the tokens the service makes are
/// URL-safe base64); anything else is no link of ours.
fn plain(token: &str) -> bool {
    !token.is_empty()
        && token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
}

/// `GET /invitations/{token}` (the mailed link): 303 to the page under `/accounts/`.
pub async fn link(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    if !plain(&token) {
        // The API's answer for a link that does not work (410), never a redirect built from it.
        state.commands.invitation_by_token(&token).await?;
        return Err(ApiError::not_found("invitation"));
    }
    Ok(Redirect::to(&format!("{PAGE}/{token}")).into_response())
}

/// `GET /accounts/invitations/{token}`: who the link is for, and the password form.
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let page = preview(&state, &token).await?;
    show(&state, &headers, StatusCode::OK, page)
}

async fn preview(state: &AppState, token: &str) -> ApiResult<InvitationPage> {
    let preview = state.commands.invitation_by_token(token).await?;
    Ok(InvitationPage {
        layout: Layout::anonymous("Choose your password"),
        csrf_token: String::new(),
        token: token.into(),
        name: preview.name,
        email: preview.email,
        expires: preview.expires_at.format("%-d %B %Y, %H:%M UTC").to_string(),
        error: None,
        password_error: None,
        confirm_error: None,
    })
}

fn show(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut page: InvitationPage,
) -> ApiResult<Response> {
    let (token, cookie) = anonymous_csrf(state, headers)?;
    page.csrf_token = token;
    with_cookie(render(status, &page)?, cookie)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    password: String,
    confirm: String,
    csrf_token: Option<String>,
}

/// `POST /accounts/invitations/{token}` (form fields `password`, `confirm`, `csrf_token`):
/// accepts the invitation and signs the new user in (303 to the dashboard). A password the
/// settings refuse, or two that differ, shows the form again with the reason beside the field
/// (422); the link keeps working.
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_same_origin(&headers, &state)?;
    let form: PasswordForm = csrf::parse_form(&body)?;
    let bound = cookie(&headers, ANONYMOUS_COOKIE).unwrap_or_default();
    csrf::verify(&state, Binding::Anonymous(bound), form.csrf_token.as_deref())?;
    let refused = if form.password != form.confirm {
        ApiError::unprocessable("confirm", "the two passwords differ: type the same password twice")
    } else {
        match accept_and_sign_in(&state, &meta, &token, &form.password).await {
            Ok((session, _)) => {
                let mut response = Redirect::to(HOME).into_response();
                for cookie in session_cookies(&state, &session, LOGIN_PATH) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                return Ok(response);
            }
            Err(e) if [409, 422].contains(&e.status.as_u16()) => e,
            Err(e) => return Err(e),
        }
    };
    let mut page = preview(&state, &token).await?;
    let message = sentence(&refused.message);
    match refused.field.as_deref() {
        Some("password") => page.password_error = Some(message),
        Some("confirm") => page.confirm_error = Some(message),
        _ => page.error = Some(message),
    }
    show(&state, &headers, refused.status, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_url_safe_tokens_are_redirected() {
        assert!(plain("abc-DEF_123"));
        for refused in ["", "a/b", "a b", "a\r\nLocation: x", "%2F", "a?b"] {
            assert!(!plain(refused), "{refused:?}");
        }
    }
}
