//! The organisation: units (open, list, rename, close) and the bulk import from CSV or XLSX.
//! Changes are admins' (of their own company's units; an admin of no unit opens companies);
//! everyone lists their company's units.

use super::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Command, CurrentUser, IdPath, Upload};
use crate::state::AppState;
use crate::upload;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pettycash_commands::import::{ImportError, ImportKind, ImportOptions, ImportReport, RowStatus};
use pettycash_commands::org::{NewUnit, UnitView};
use pettycash_domain::organisation::UnitKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/org/units", post(open_unit).get(list_units))
        .route("/api/org/units/{id}", axum::routing::patch(rename_unit))
        .route("/api/org/units/{id}/close", post(close_unit))
        .route("/api/org/import/{what}", post(import))
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

/// How to import.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Record the valid rows even when others are rejected (default false: with any rejected
    /// row nothing is recorded).
    #[param(value_type = Option<bool>)]
    pub skip_invalid: Option<String>,
    /// Decide every row and record nothing (default false).
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
}

/// The answer when rows were rejected and nothing was recorded: the error and the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRejected {
    pub error: crate::error::ErrorDetail,
    pub report: ImportReport,
}

/// Import organisation units or users from a file (admin): `what` is `companies`, `regions`,
/// `branches`, `departments`, `cost-centres` or `users`; the body is the file, `text/csv` or
/// XLSX (`application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`, the first sheet),
/// its first row naming the columns (`docs/api.md`). Every row gets a verdict (`created`,
/// `unchanged`, `rejected` with its errors per column). With a rejected row and without
/// `skip_invalid`, nothing is recorded and the answer is 422 `import_rejected` with the report.
/// Importing the same file again changes nothing (every row `unchanged`). Users are registered
/// without a password; the report gives their ids.
#[utoipa::path(post, path = "/api/org/import/{what}", tag = "organisation",
    params(("what" = String, Path, example = "branches"), ImportQuery),
    request_body(description = "the file: CSV (UTF-8) or XLSX (its first sheet)",
                 content((String = "text/csv"),
                         (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
    responses((status = 200, body = ImportReport), (status = 403, body = Err), (status = 404, body = Err),
              (status = 413, body = Err), (status = 415, body = Err),
              (status = 422, body = ImportRejected, description = "rows rejected, nothing recorded; or a malformed file (`invalid_file`) or columns (`validation_error`)"),
              (status = 409, body = Err)))]
#[tracing::instrument(skip_all, fields(what = %what))]
pub async fn import(
    State(state): State<AppState>,
    Path(what): Path<String>,
    Query(q): Query<ImportQuery>,
    upload: Upload,
) -> ApiResult<Response> {
    let kind = what.parse::<ImportKind>().map_err(|_| ApiError::not_found("import"))?;
    let options = ImportOptions {
        skip_invalid: super::reads::parse_bool("skip_invalid", &q.skip_invalid)?,
        dry_run: super::reads::parse_bool("dry_run", &q.dry_run)?,
    };
    let ctx = upload.context();
    let report =
        import_file(&state, &ctx, &upload.session, kind, &upload.media_type, &upload.bytes, options).await?;
    if report.totals.rejected > 0 && !report.skip_invalid {
        let rows: Vec<String> = report
            .rows
            .iter()
            .filter(|r| r.status == RowStatus::Rejected)
            .map(|r| r.row.to_string())
            .collect();
        let error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "import_rejected",
            match rows.as_slice() {
                [row] => format!("row {row} is invalid: nothing was recorded (see `report`)"),
                rows => format!("rows {} are invalid: nothing was recorded (see `report`)", rows.join(", ")),
            },
        )
        .with_field("rows");
        let body = ImportRejected { error: error.body().error, report };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let mut response = Json(&report).into_response();
    response.headers_mut().insert(super::POSITION_HEADER, HeaderValue::from(report.position));
    Ok(response)
}

/// Imports a file (`media_type`, `bytes`) as `kind` for the caller of `ctx` (in `session`): the
/// admin check first (nobody else learns anything of the file), the file read, every row
/// decided. Rejected rows are in the report (`imported` false): what `POST /api/org/import/..`
/// answers (422 with the report then) and the admin page's import shows.
pub async fn import_file(
    state: &AppState,
    ctx: &pettycash_commands::CommandContext,
    session: &pettycash_commands::SessionGuard,
    kind: ImportKind,
    media_type: &str,
    bytes: &[u8],
    options: ImportOptions,
) -> ApiResult<ImportReport> {
    pettycash_commands::org::check_admin(ctx)?;
    let table = upload::read(media_type, bytes)?;
    match state.commands.import(ctx, kind, &table, options).await {
        Ok(outcome) => Ok(outcome.value),
        Err(ImportError::Column { column, message }) => {
            Err(ApiError::unprocessable(&crate::input::printable(&column), message))
        }
        Err(e @ ImportError::TooManyRows) => Err(ApiError::unprocessable("file", e.to_string())),
        Err(ImportError::Command(e)) => {
            if matches!(e, pettycash_commands::CommandError::SessionChanged) {
                state.auth.forget_session(&session.token_hash);
            }
            Err(e.into())
        }
    }
}
