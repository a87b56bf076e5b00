//! Server-rendered pages for people at a browser (issue #16): the sign-in, the dashboard, the
//! reports; the frame, stylesheet, CSRF protection, security headers and error pages every
//! later page uses.
//!
//! Owns: templates (`templates/`, askama: compiled into the binary and HTML-escaped by
//! default), the embedded static files (`assets`), the pages' routes. Must not: hold a business
//! rule or a query of its own. A page calls the code the JSON API calls (the sign-in,
//! `routes::reads::dashboard_of`, `routes::reports::available`, the commands), so that there is
//! one path to the data and one visibility rule. The pages are not part of the OpenAPI
//! document: they are no API.
//!
//! No page carries a script or an inline style (the Content-Security-Policy allows neither);
//! charts are SVG drawn on the server (`charts`).

pub mod admin;
pub mod alerts;
pub mod approvals;
pub mod assets;
pub mod audit;
pub mod charts;
pub mod csrf;
pub mod dashboard;
pub mod forms;
pub mod invitation;
pub mod layout;
pub mod reports;
pub mod requisitions;
pub mod session;
pub mod treasury;

use crate::db_health;
use crate::error::{ApiError, ApiResult};
use crate::extract::behind_tls;
use crate::routes::receipts::UPLOAD_BODY_LIMIT;
use crate::state::AppState;
use askama::Template;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use layout::Layout;

/// The pages' routes (paths without their trailing slash: `startup` trims it before routing,
/// so `/dashboard/` and `/dashboard` are one page) and the static files.
pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/accounts/login", get(session::login_form).post(session::login))
        .route("/accounts/logout", post(session::logout))
        .route("/dashboard", get(dashboard::page))
        .route("/reports", get(reports::page))
        .route("/reports/{name}", get(reports::report_page))
        .route("/treasury", get(treasury::queue))
        .route("/treasury/pay/{id}", get(treasury::pay_form).post(treasury::pay))
        .route("/treasury/pay/{id}/code", post(treasury::request_code))
        .route("/treasury/payments/{id}", get(treasury::payment))
        .route("/treasury/funds", get(treasury::funds))
        .route("/treasury/funds/{id}", get(treasury::fund))
        .route("/treasury/funds/{id}/counts", post(treasury::record_count))
        .route("/treasury/funds/{id}/counts/{sub}/{action}", post(treasury::variance))
        .route("/treasury/funds/{id}/replenishments", post(treasury::request_replenishment))
        .route("/treasury/funds/{id}/replenishments/{sub}/{action}", post(treasury::replenishment))
        .route("/treasury/advances", get(treasury::advances))
        .route("/treasury/bulk-payments", get(treasury::batches).post(treasury::create_batch))
        .route("/treasury/bulk-payments/{id}", get(treasury::batch))
        .route(
            "/treasury/bulk-payments/{id}/results",
            post(treasury::import_results).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .merge(requisitions::router())
        .merge(approvals::router())
        // Admin, audit, the invitee's page (issue #16).
        .route("/invitations/{token}", get(invitation::link))
        .route("/accounts/invitations/{token}", get(invitation::form).post(invitation::accept))
        .route("/admin", get(admin::overview))
        .route("/admin/{*rest}", get(admin::page).post(admin::act))
        .route("/audit", get(audit::overview))
        .route("/audit/history", get(audit::history))
        .route("/audit/ledger", get(audit::ledger))
        .route_layer(middleware::from_fn_with_state(state.db.clone(), db_health::require_database));
    Router::new()
        .route("/", get(|| async { Redirect::to(session::HOME) }))
        .route(assets::ROUTE, get(assets::serve))
        .merge(pages)
        .layer(middleware::from_fn(html_errors))
        .layer(middleware::from_fn(security_headers))
}

/// A page as the response: `text/html`, with `status`. A template that fails to render is a
/// 500 (logged, answered without detail).
pub fn render(status: StatusCode, page: &impl Template) -> ApiResult<Response> {
    let html = page.render().map_err(ApiError::internal)?;
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static(HTML))], html).into_response())
}

const HTML: &str = "text/html; charset=utf-8";

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

/// Every error of a page as a page: the `ApiError`s of handlers and extractors (their JSON
/// shape's message, which for a 500 says nothing more than that), axum's own refusals (405,
/// 413, a malformed query) and the database outage's 503, with their status and
/// `Retry-After`. Never a stack trace or a JSON body in front of a person.
async fn html_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .filter(|_| !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap_or_else(|| match status {
            StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong on our side. Please try again.".into(),
            s => s.canonical_reason().unwrap_or("Error").into(),
        });
    let title = status.canonical_reason().unwrap_or("Error");
    let page = ErrorPage { layout: Layout::anonymous(title), status: status.as_u16(), message };
    let mut page = match render(status, &page) {
        Ok(page) => page,
        Err(_) => (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], title).into_response(),
    };
    if let Some(retry) = parts.headers.get(header::RETRY_AFTER) {
        page.headers_mut().insert(header::RETRY_AFTER, retry.clone());
    }
    page
}

/// The Content-Security-Policy of every page: our own origin only, no inline script or style
/// (no `unsafe-inline`), no plug-ins, not framed by anyone, forms posted only to us.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// HSTS, once the browser reached us over HTTPS: a year, subdomains too (as `deploy/nginx.conf`).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Security headers on every response of the pages (errors and static files included).
///
/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer` a browser sends
/// `Origin: null` with a form's POST, which the same-origin check refuses; `same-origin` keeps
/// the `Origin` for our own forms and sends nothing to other sites. Pages are `no-store`
/// (figures of a user on a shared counter's browser); static files keep their own caching.
async fn security_headers(req: Request, next: Next) -> Response {
    let tls = behind_tls(req.headers());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if tls {
        set(headers, header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn app(status: StatusCode, body: &'static str, content_type: &'static str) -> Router {
        Router::new()
            .route("/", get(move || async move { (status, [(header::CONTENT_TYPE, content_type)], body) }))
            .layer(middleware::from_fn(html_errors))
            .layer(middleware::from_fn(security_headers))
    }

    async fn call(app: Router, forwarded_proto: Option<&str>) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut req = Request::builder().uri("/");
        if let Some(proto) = forwarded_proto {
            req = req.header("x-forwarded-proto", proto);
        }
        let response = app.oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn errors_become_pages_with_the_message_and_no_detail_of_a_500() {
        let json = r#"{"error":{"code":"csrf_failed","message":"This form could not be accepted."}}"#;
        let (status, headers, body) = call(app(StatusCode::FORBIDDEN, json, "application/json"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers[header::CONTENT_TYPE], HTML);
        assert!(body.contains("This form could not be accepted."), "{body}");
        assert!(!body.contains("csrf_failed"), "{body}");

        let leak = r#"{"error":{"code":"internal_error","message":"thread panicked at src/x.rs:1"}}"#;
        let (status, _, body) =
            call(app(StatusCode::INTERNAL_SERVER_ERROR, leak, "application/json"), None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("panicked") && body.contains("Something went wrong"), "{body}");

        let (status, _, body) = call(app(StatusCode::METHOD_NOT_ALLOWED, "", "text/plain"), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("Method Not Allowed"), "{body}");
    }

    #[tokio::test]
    async fn every_response_has_the_security_headers_and_hsts_only_behind_tls() {
        let (_, headers, _) = call(app(StatusCode::OK, "<p>hi</p>", HTML), None).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());

        let (_, headers, _) = call(app(StatusCode::OK, "<p>hi</p>", HTML), Some("https")).await;
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], STRICT_TRANSPORT_SECURITY);
        let (_, headers, _) = call(app(StatusCode::NOT_FOUND, "", "text/plain"), Some("https")).await;
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], STRICT_TRANSPORT_SECURITY);
    }
}
