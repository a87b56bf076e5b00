//! Signing in and out from a browser: `/accounts/login/` (the old system's address) and
//! `/accounts/logout/`, and the extractor of pages that need a signed-in user.
//!
//! The sign-in is the API's (`routes::auth::sign_in`): the same password check, the same
//! throttle (per account, client address and device), the same session and HttpOnly session
//! cookie; a browser signed in here may call the JSON API with its cookie and the other way
//! round. What differs is the transport: a form body, a CSRF token bound to a cookie of its own
//! (`csrf::Binding::Anonymous`), errors shown next to the form instead of JSON, and a redirect
//! to `next` on success.

use super::csrf::{self, Binding, PageForm, ANONYMOUS_COOKIE};
use super::layout::Layout;
use super::render;
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_same_origin, cookie, session_token, Meta};
use crate::routes::auth::{cleared_session_cookie, session_cookies, set_cookie, sign_in};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use pettycash_commands::auth::AuthUser;
use serde::Deserialize;

/// The sign-in page (also where its device cookie is sent: see `session_cookies`).
pub const LOGIN_PATH: &str = "/accounts/login";

/// Where a sign-in goes when it was not sent from somewhere.
pub const HOME: &str = "/dashboard/";

/// A signed-in user of a page and their session token; a request without a valid session is
/// sent to the sign-in page, which brings it back here afterwards (`next`).
pub struct PageUser {
    pub user: AuthUser,
    pub token: String,
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some((token, _)) = session_token(&parts.headers) else {
            return Err(to_sign_in(parts.uri.path_and_query().map(|p| p.as_str())));
        };
        match state.auth.authenticate(&token).await {
            Ok(Some(user)) => Ok(PageUser { user, token }),
            Ok(None) => Err(to_sign_in(parts.uri.path_and_query().map(|p| p.as_str()))),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// A redirect to the sign-in page, which comes back to `next` (a local path) afterwards.
pub fn to_sign_in(next: Option<&str>) -> Response {
    let target = match next.and_then(local_path) {
        Some(next) if next != HOME => {
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            format!("{LOGIN_PATH}/?{query}")
        }
        _ => format!("{LOGIN_PATH}/"),
    };
    Redirect::to(&target).into_response()
}

/// `next` when it is a path of this site, else `None`. Only a path that starts with one `/`
/// is: `//host` and `/\host` are other sites to a browser, and browsers drop tabs and line
/// breaks from addresses (`/\t/host` is `//host`), so no backslash, whitespace or control
/// character is accepted anywhere.
pub fn local_path(next: &str) -> Option<&str> {
    let plain = !next.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    (plain && next.starts_with('/') && !next.starts_with("//")).then_some(next)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf_token: String,
    next: String,
    email: String,
    error: Option<String>,
    /// The field the error is about (`email`, `password`), when it is one of them.
    error_field: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /accounts/login/`: the form; a signed-in user goes straight on to `next`.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> ApiResult<Response> {
    let next = q.next.as_deref().and_then(local_path).unwrap_or(HOME);
    if let Some((token, _)) = session_token(&headers) {
        if state.auth.authenticate(&token).await?.is_some() {
            return Ok(Redirect::to(next).into_response());
        }
    }
    let page = LoginPage {
        layout: Layout::anonymous("Sign in"),
        csrf_token: String::new(),
        next: next.into(),
        email: String::new(),
        error: None,
        error_field: None,
    };
    login_page(&state, &headers, StatusCode::OK, page)
}

/// The sign-in page with its CSRF token, setting the cookie the token is bound to when the
/// browser has none.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut page: LoginPage,
) -> ApiResult<Response> {
    let (token, cookie) = anonymous_csrf(state, headers)?;
    page.csrf_token = token;
    with_cookie(render(status, &page)?, cookie)
}

/// `response` with the `Set-Cookie` of [`anonymous_csrf`], when there is one to set.
pub(crate) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> ApiResult<Response> {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The CSRF token of a form shown before there is a session (under `/accounts/`: the sign-in,
/// the invitee's password), bound to [`ANONYMOUS_COOKIE`], and the `Set-Cookie` to send when
/// the browser has no such cookie yet.
pub fn anonymous_csrf(state: &AppState, headers: &HeaderMap) -> ApiResult<(String, Option<HeaderValue>)> {
    let existing = cookie(headers, ANONYMOUS_COOKIE).filter(|v| !v.is_empty());
    let value = existing.map_or_else(csrf::new_anonymous_value, String::from);
    let token = csrf::token(state, Binding::Anonymous(&value))?;
    // A day: a form left open longer than that is reloaded.
    let cookie =
        existing.is_none().then(|| set_cookie(state, ANONYMOUS_COOKIE, &value, "/accounts", 24 * 60 * 60));
    Ok((token, cookie))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    next: String,
    csrf_token: Option<String>,
}

/// `POST /accounts/login/` (form-encoded `email`, `password`, `next`, `csrf_token`): signs in
/// and goes to `next`; a refused sign-in shows the form again with the reason beside it (401,
/// 422, or 429 with `Retry-After` when throttled).
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_same_origin(&headers, &state)?;
    let form: LoginForm = csrf::parse_form(&body)?;
    let bound = cookie(&headers, ANONYMOUS_COOKIE).unwrap_or_default();
    csrf::verify(&state, Binding::Anonymous(bound), form.csrf_token.as_deref())?;
    let next = local_path(&form.next).unwrap_or(HOME);
    match sign_in(&state, &form.email, &form.password, &headers, &meta).await {
        Ok(session) => {
            let mut response = Redirect::to(next).into_response();
            for cookie in session_cookies(&state, &session, LOGIN_PATH) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Err(refused) if [401, 422, 429].contains(&refused.status.as_u16()) => {
            let page = LoginPage {
                layout: Layout::anonymous("Sign in"),
                csrf_token: String::new(),
                next: next.into(),
                email: form.email,
                error: Some(sentence(&refused.message)),
                error_field: refused.field.clone(),
            };
            let mut response = login_page(&state, &headers, refused.status, page)?;
            if let Some(secs) = refused.retry_after {
                response.headers_mut().insert("retry-after", HeaderValue::from(secs));
            }
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// The API's message as a sentence: a capital first letter and a full stop.
pub(crate) fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut text: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The sign-out form's fields: its token only.
#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

/// `POST /accounts/logout/`: ends the session (`Authenticator::logout`, as the API's sign-out)
/// and goes to the sign-in page.
pub async fn logout(State(state): State<AppState>, form: PageForm<NoFields>) -> ApiResult<Response> {
    state.auth.logout(&form.token).await?;
    let mut response = Redirect::to(&format!("{LOGIN_PATH}/")).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cleared_session_cookie(&state));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_path_of_this_site() {
        for ok in ["/dashboard/", "/reports/?period=2026-03", "/a//b", "/"] {
            assert_eq!(local_path(ok), Some(ok), "{ok}");
        }
        for refused in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /x",
            "javascript:alert(1)",
            "dashboard",
            "",
        ] {
            assert_eq!(local_path(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn sign_in_redirects_carry_where_to_come_back_to() {
        let location = |r: Response| r.headers()[header::LOCATION].to_str().unwrap().to_string();
        assert_eq!(location(to_sign_in(Some("/reports?x=1"))), "/accounts/login/?next=%2Freports%3Fx%3D1");
        assert_eq!(location(to_sign_in(Some("/dashboard/"))), "/accounts/login/");
        assert_eq!(location(to_sign_in(Some("//evil.example"))), "/accounts/login/");
        assert_eq!(location(to_sign_in(None)), "/accounts/login/");
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("invalid email or password"), "Invalid email or password.");
        assert_eq!(sentence("Try again."), "Try again.");
    }
}
