//! Invitations: admins invite, list, resend and revoke; the invitee looks their link up and
//! accepts it with a password, without a session, and is signed in.
//!
//! The invitee's page (`{PUBLIC_URL}/invitations/{token}`, arriving later) calls
//! `POST /api/invitations/lookup {"token"}` to greet them, then
//! `POST /api/invitations/accept {"token", "password"}`. The token travels in bodies, not in
//! API query strings, so that no access log of the API holds it. Every link that does not work
//! — unknown, used, revoked, replaced by a resend, expired — is one answer: 410
//! `invitation_invalid` (the service's log says which).

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_same_origin, parse_json, require_json, Command, CurrentUser, IdPath, Meta};
use crate::routes::auth::{signed_in, LoginResponse};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use pettycash_commands::invitations::{InvitationPreview, InvitationQuery, InvitationView, NewInvitation};
use pettycash_domain::invitation::InvitationStatus;
use pettycash_domain::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/invitations", post(invite).get(list))
        .route("/api/invitations/{id}/resend", post(resend))
        .route("/api/invitations/{id}/revoke", post(revoke))
        .route("/api/invitations/lookup", post(lookup))
        .route("/api/invitations/accept", post(accept))
}

type Err = crate::error::ErrorBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[schema(example = "Ann Achieng")]
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["staff"]))]
    pub roles: Vec<String>,
    /// The unit they will belong to. Default: an admin of a company invites into their company
    /// (at the company level); an admin of no unit, into no unit.
    pub unit_id: Option<Uuid>,
}

/// Invite someone (admin): an invitation, and a mail to `email` with a link that works once,
/// for `invitation_expiry_days` (default 7). 409 `already_exists` when a user or an open
/// (pending or expired) invitation has the email; 422 naming `unit_id` for a unit the admin
/// does not reach.
#[utoipa::path(post, path = "/api/invitations/", tag = "invitations", request_body = Invite,
    responses((status = 201, body = InvitationView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn invite(State(state): State<AppState>, cmd: Command<Invite>) -> ApiResult<Response> {
    let b = &cmd.body;
    let roles = b
        .roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::unprocessable("roles", e.to_string()))?;
    let input = NewInvitation { email: b.email.clone(), name: b.name.clone(), roles, unit_id: b.unit_id };
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.invite(&ctx, input)).await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: Option<String>,
    /// At most this many (1 to 200, default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPage {
    pub items: Vec<InvitationView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The invitations of the caller's company, and those the caller sent (admin, auditor); newest
/// first, each with its status as of now (`expired`: pending past its `expires_at`).
#[utoipa::path(get, path = "/api/invitations/", tag = "invitations", params(ListQuery),
    responses((status = 200, body = InvitationPage), (status = 400, body = Err), (status = 403, body = Err),
              (status = 422, body = Err)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<InvitationPage>> {
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<InvitationStatus>().map_err(|_| {
            ApiError::unprocessable("status", "`status` must be pending, accepted, revoked or expired")
        })?),
    };
    let after = match q.cursor.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` is not valid: pass the `next_cursor` of a previous page unchanged",
            )
            .with_field("cursor")
        })?),
    };
    let limit = super::reads::parse_limit(&q.limit)?.unwrap_or(pettycash_projections::queries::DEFAULT_LIMIT);
    let page = state.commands.invitations(&user.actor(), InvitationQuery { status, limit, after }).await?;
    Ok(Json(InvitationPage { items: page.items, next_cursor: page.next.map(|id| id.to_string()) }))
}

/// Send an invitation again (admin): a new link valid for `invitation_expiry_days` from now,
/// in a new mail; the old link stops working. Pending or expired invitations only (409
/// `invitation_not_pending`).
#[utoipa::path(post, path = "/api/invitations/{id}/resend", tag = "invitations", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvitationView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn resend(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<super::NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.resend_invitation(&ctx, id)).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    #[schema(example = "sent to the wrong address")]
    pub reason: Option<String>,
}

/// Revoke an invitation (admin): its link stops working. Revoking it again records nothing; an
/// accepted invitation cannot be revoked (409 `invitation_not_pending`: deactivate the user).
#[utoipa::path(post, path = "/api/invitations/{id}/revoke", tag = "invitations", params(("id" = Uuid, Path)),
    request_body = Revoke,
    responses((status = 200, body = InvitationView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn revoke(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<Revoke>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    let reason = cmd.body.reason.as_deref();
    run(&state, &cmd, StatusCode::OK, state.commands.revoke_invitation(&ctx, id, reason)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The token from the link (`{PUBLIC_URL}/invitations/{token}`).
    pub token: String,
}

/// What an invitation link is for (no session needed): the invitee's email and name, and
/// until when the link works. 410 `invitation_invalid` for any link that does not work.
#[utoipa::path(post, path = "/api/invitations/lookup", tag = "invitations", request_body = Lookup,
    security(()),
    responses((status = 200, body = InvitationPreview), (status = 410, body = Err),
              (status = 415, body = Err), (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn lookup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<InvitationPreview>> {
    require_json(&headers)?;
    let req: Lookup = parse_json(&body)?;
    Ok(Json(state.commands.invitation_by_token(&req.token).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The token from the link.
    pub token: String,
    /// The password the invitee chooses: it must pass the password settings (422 naming
    /// `password` otherwise, and the link still works).
    pub password: String,
}

/// Accept an invitation (no session needed): the invitee becomes a user with the invited roles
/// and unit and the password they chose, and is signed in — the answer is that of
/// `POST /api/auth/login` (token, cookie). The link then stops working. 410
/// `invitation_invalid` for any link that does not work, whatever the reason; 422 naming
/// `password` for a password the settings refuse. JSON only, and not from another site's
/// page (as sign-in).
#[utoipa::path(post, path = "/api/invitations/accept", tag = "invitations", request_body = Accept,
    security(()),
    responses((status = 201, body = LoginResponse, headers(("X-Event-Position" = i64))),
              (status = 403, description = "cross-site request", body = Err),
              (status = 409, description = "a user has the email meanwhile; the unit was closed", body = Err),
              (status = 410, body = Err), (status = 415, body = Err), (status = 422, body = Err)))]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // As sign-in: another site's page must not sign the browser in to an account of its
    // choosing (its own invitation), and JSON only.
    check_same_origin(&headers, &state)?;
    require_json(&headers)?;
    let req: Accept = parse_json(&body)?;
    let (session, position) = accept_and_sign_in(&state, &meta, &req.token, &req.password).await?;
    let mut response = signed_in(&state, StatusCode::CREATED, session);
    response.headers_mut().insert(super::POSITION_HEADER, HeaderValue::from(position));
    Ok(response)
}

/// Accepts the invitation of `token` with `password` and signs the new user in: the session
/// and the position of the acceptance. What `POST /api/invitations/accept` and the invitee's
/// page (`web::invitation`) both do, after their own transport checks.
pub async fn accept_and_sign_in(
    state: &AppState,
    meta: &pettycash_commands::RequestMeta,
    token: &str,
    password: &str,
) -> ApiResult<(pettycash_commands::auth::Session, i64)> {
    let accepted = state.commands.accept_invitation(meta, token, password).await?;
    let session = state.auth.sign_in_invited(accepted.value.user_id, meta).await?;
    Ok((session, accepted.position))
}
