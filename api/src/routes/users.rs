//! User administration (admin): register users with roles.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::Command;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pettycash_commands::views::UserView;
use pettycash_domain::Role;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/users", post(create_user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["staff"]))]
    pub roles: Vec<String>,
    /// At least 12 characters.
    pub password: String,
}

/// Register a user with roles and an initial password (admin).
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
        state.commands.register_user(&ctx, &b.email, &b.name, roles, &b.password),
    )
    .await
}
