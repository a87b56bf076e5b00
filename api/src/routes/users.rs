//! User administration: register users with roles (admin), grant and revoke roles (admin), put
//! users in organisation units (admin), deactivate and reactivate them (admin), list users
//! (admin, auditor). Every change is an event of the user's stream. Admins manage the users of
//! their own company (an admin of no unit: the users of no unit); others are "not found".

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use pettycash_commands::views::UserView;
use pettycash_domain::Role;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(create_user).get(list_users))
        .route("/api/users/{id}/roles", post(grant_role))
        .route("/api/users/{id}/roles/{role}", delete(revoke_role))
        .route("/api/users/{id}/unit", put(assign_unit))
        .route("/api/users/{id}/deactivate", post(deactivate))
        .route("/api/users/{id}/reactivate", post(reactivate))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["staff"]))]
    pub roles: Vec<String>,
    /// Refused: admins do not set other people's passwords (an admin who knew them could act
    /// as those people). The person sets their own (invitations, [workflow]); until then an
    /// operator sets it on the server with `pettycash user password`.
    #[serde(default)]
    #[schema(value_type = Option<String>, deprecated)]
    pub password: Option<String>,
    /// The organisation unit they belong to. Default: an admin of a company registers into
    /// their company (at the company level); an admin of no unit registers users of no unit.
    pub unit_id: Option<uuid::Uuid>,
}

/// Register a user with roles (admin). The account has no password until its owner sets one
/// (an operator: `pettycash user password --email ... --password-stdin`).
#[utoipa::path(post, path = "/api/users/", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_user(State(state): State<AppState>, cmd: Command<CreateUser>) -> ApiResult<Response> {
    let b = &cmd.body;
    let roles = b
        .roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::unprocessable("roles", e.to_string()))?;
    let ctx = cmd.context(StatusCode::CREATED);
    run(
        &state,
        &cmd,
        StatusCode::CREATED,
        state.commands.register_user_in(&ctx, &b.email, &b.name, roles, b.password.as_deref(), b.unit_id),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    #[schema(example = "treasury")]
    pub role: String,
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>().map_err(|e| ApiError::unprocessable("role", e.to_string()))
}

pub(crate) fn parse_user_id(text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("`{text}` is not a valid id")).with_field("id")
    })
}

/// Grant a role (admin). Granting a role the user holds records nothing.
#[utoipa::path(post, path = "/api/users/{id}/roles", tag = "users", params(("id" = uuid::Uuid, Path)),
    request_body = RoleInput,
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn grant_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    cmd: Command<RoleInput>,
) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let role = parse_role(&cmd.body.role)?;
    let ctx = cmd.context(StatusCode::OK);
    let answer = run(&state, &cmd, StatusCode::OK, state.commands.change_role(&ctx, id, role, true)).await;
    // Their cached sessions carry the old roles.
    state.auth.forget_user(id);
    answer
}

/// Revoke a role (admin). Revoking a role the user does not hold records nothing.
#[utoipa::path(delete, path = "/api/users/{id}/roles/{role}", tag = "users",
    params(("id" = uuid::Uuid, Path), ("role" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn revoke_role(
    State(state): State<AppState>,
    Path((id, role)): Path<(String, String)>,
    cmd: Command<super::NoBody>,
) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let role = parse_role(&role)?;
    let ctx = cmd.context(StatusCode::OK);
    let answer = run(&state, &cmd, StatusCode::OK, state.commands.change_role(&ctx, id, role, false)).await;
    // Their cached sessions carry the old roles.
    state.auth.forget_user(id);
    answer
}

/// The users of the caller's company (of no company, for a caller of no unit) with their
/// current roles and unit (admin, auditor), ordered by email.
#[utoipa::path(get, path = "/api/users/", tag = "users",
    responses((status = 200, body = Vec<pettycash_commands::auth::AuthUser>), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<Vec<pettycash_commands::auth::AuthUser>>> {
    Ok(Json(users_of(&state, &user.actor()).await?))
}

/// The users `actor` may list (admin, auditor: those of their company), ordered by email: what
/// `GET /api/users/` answers and the admin and audit pages show.
pub async fn users_of(
    state: &AppState,
    actor: &pettycash_domain::Actor,
) -> ApiResult<Vec<pettycash_commands::auth::AuthUser>> {
    if !(actor.has(Role::Admin) || actor.has(Role::Auditor)) {
        return Err(ApiError::forbidden("missing_role", "listing users needs the admin or auditor role"));
    }
    Ok(state.auth.list_users(actor.company()).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitInput {
    /// The unit (the most specific one: a department, a position, ...); `null`: none.
    pub unit_id: Option<uuid::Uuid>,
}

/// Put a user in an organisation unit (admin; a unit of the admin's company, any unit for an
/// admin of no unit), or in none (`"unit_id": null`). What they see follows at once; a command
/// of theirs decided on the old unit is refused (409 `session_changed`).
#[utoipa::path(put, path = "/api/users/{id}/unit", tag = "users", params(("id" = uuid::Uuid, Path)),
    request_body = UnitInput,
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn assign_unit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    cmd: Command<UnitInput>,
) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, assign_unit_of(&state, &ctx, id, cmd.body.unit_id)).await
}

/// Puts `user` in `unit` (or in none), the API's and the admin page's way: the command, then
/// their cached sessions forgotten, which carry the old unit.
pub async fn assign_unit_of(
    state: &AppState,
    ctx: &pettycash_commands::CommandContext,
    user: uuid::Uuid,
    unit: Option<uuid::Uuid>,
) -> Result<pettycash_commands::Outcome<UserView>, pettycash_commands::CommandError> {
    let answer = state.commands.assign_unit(ctx, user, unit).await;
    state.auth.forget_user(user);
    answer
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateInput {
    #[schema(example = "left the company")]
    pub reason: String,
}

/// Deactivate a user (admin): every session of theirs ends at once (their next request is
/// 401), they cannot sign in, their history stays. The last active admin cannot be
/// deactivated (409 `last_admin`). Deactivating a deactivated user records nothing.
#[utoipa::path(post, path = "/api/users/{id}/deactivate", tag = "users", params(("id" = uuid::Uuid, Path)),
    request_body = DeactivateInput,
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn deactivate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    cmd: Command<DeactivateInput>,
) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let ctx = cmd.context(StatusCode::OK);
    let answer =
        run(&state, &cmd, StatusCode::OK, state.commands.deactivate_user(&ctx, id, &cmd.body.reason)).await;
    // This process's cached sessions of theirs go at once; other processes stop serving them
    // within SESSION_CACHE_MS (their commands are refused at once: the append checks the
    // session).
    state.auth.forget_user(id);
    answer
}

/// Reactivate a user (admin), in the unit they were in (409 `unit_closed` if it was closed
/// meanwhile: assign another first). They sign in again with their password.
#[utoipa::path(post, path = "/api/users/{id}/reactivate", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn reactivate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    cmd: Command<super::NoBody>,
) -> ApiResult<Response> {
    let id = parse_user_id(&id)?;
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.reactivate_user(&ctx, id)).await
}
