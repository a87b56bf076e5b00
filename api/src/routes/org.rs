//! The organisation: units (open, list, rename, close). Changes are admins' (of their own company's units; an admin of no unit opens companies);
//! everyone lists their company's units.

use super::run;
use crate::error::ApiResult;
use crate::extract::{Command, CurrentUser, IdPath};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use pettycash_commands::org::{NewUnit, UnitView};
use pettycash_domain::organisation::UnitKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/org/units", post(open_unit).get(list_units))
        .route("/api/org/units/{id}", axum::routing::patch(rename_unit))
        .route("/api/org/units/{id}/close", post(close_unit))
}

type Err = crate::error::ErrorBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenUnit {
    /// `company`, `region`, `branch`, `department`, `cost_centre` or `position`.
    #[schema(value_type = String, example = "branch")]
    pub kind: UnitKind,
    #[schema(example = "Nairobi CBD")]
    pub name: String,
    /// Unique within the company (company codes across companies); upper-cased.
    #[schema(example = "NBI-01")]
    pub code: String,
    pub phone: Option<String>,
    /// The unit directly above: a company for a region, a region for a branch, a branch for a
    /// department, a department for a cost centre or a position; none for a company.
    pub parent_id: Option<Uuid>,
}

/// Open an organisation unit (admin). A company only by an admin of no unit.
#[utoipa::path(post, path = "/api/org/units/", tag = "organisation", request_body = OpenUnit,
    responses((status = 201, body = UnitView), (status = 403, body = Err), (status = 409, body = Err),
              (status = 422, body = Err)))]
pub async fn open_unit(State(state): State<AppState>, cmd: Command<OpenUnit>) -> ApiResult<Response> {
    let b = &cmd.body;
    let input = NewUnit {
        kind: b.kind,
        name: b.name.clone(),
        code: b.code.clone(),
        phone: b.phone.clone(),
        parent_id: b.parent_id,
    };
    let ctx = cmd.context(StatusCode::CREATED);
    run(&state, &cmd, StatusCode::CREATED, state.commands.open_unit(&ctx, input)).await
}

/// The units.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitList {
    pub items: Vec<UnitView>,
}

/// The organisation units of the caller's company (every unit for an admin of no unit; none
/// for anyone else of no unit), each company followed by its units, every unit right after
/// its parent. Closed units included (`closed`).
#[utoipa::path(get, path = "/api/org/units/", tag = "organisation",
    responses((status = 200, body = UnitList), (status = 401, body = Err)))]
pub async fn list_units(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> ApiResult<Json<UnitList>> {
    Ok(Json(UnitList { items: state.commands.units(&user.actor()).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameUnit {
    pub name: String,
}

/// Rename a unit (admin). The same name records nothing; a closed unit is not renamed.
#[utoipa::path(patch, path = "/api/org/units/{id}", tag = "organisation", params(("id" = Uuid, Path)),
    request_body = RenameUnit,
    responses((status = 200, body = UnitView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 422, body = Err)))]
pub async fn rename_unit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<RenameUnit>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.rename_unit(&ctx, id, &cmd.body.name)).await
}

/// Close a unit (admin): refused (409 `unit_not_empty`) while units under it are open or
/// active users belong to it (deactivated users may stay). Nothing opens under a closed unit
/// and nobody is put in it; its history and its requisitions stay.
#[utoipa::path(post, path = "/api/org/units/{id}/close", tag = "organisation", params(("id" = Uuid, Path)),
    responses((status = 200, body = UnitView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err)))]
pub async fn close_unit(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    cmd: Command<super::NoBody>,
) -> ApiResult<Response> {
    let ctx = cmd.context(StatusCode::OK);
    run(&state, &cmd, StatusCode::OK, state.commands.close_unit(&ctx, id)).await
}
