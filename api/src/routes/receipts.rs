//! Receipts on a requisition (issue #14 [treasury]): upload (multipart, field `file`, a JPEG,
//! PNG or PDF of at most 10 MB, checked by content), download.
//!
//! An upload first checks that the caller may see the requisition (404 otherwise, before
//! anything is stored), reads the file, checks its type from its first bytes (a text file named
//! `.pdf` is a 422 naming `file`), stores it content-addressed
//! (`pettycash_commands::receipts::ReceiptStore`) and records `ReceiptAttached`; the aggregate
//! decides who may attach (domain `requisition::receipts`). A file refused by that decision
//! stays stored: content-addressed, it is at most one more copy of bytes someone who may see
//! the requisition sent.

use crate::error::{ApiError, ApiResult};
use crate::extract::{CurrentUser, IdPath, MultipartCommand};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::BytesMut;
use pettycash_commands::receipts::sniff;
use pettycash_commands::views::RequisitionView;
use pettycash_commands::{CommandContext, CommandError, Outcome, SessionGuard};
use pettycash_domain::requisition::MAX_RECEIPT_BYTES;
use utoipa::ToSchema;
use uuid::Uuid;

/// The body limit of an upload: the largest file plus room for the multipart framing. Past
/// it the body is refused (413 naming `file`); a file over [`MAX_RECEIPT_BYTES`] within it is
/// refused the same way.
pub const UPLOAD_BODY_LIMIT: usize = MAX_RECEIPT_BYTES as usize + 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/requisitions/{id}/receipts",
            axum::routing::post(upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/api/requisitions/{id}/receipts/{receipt_id}", get(download))
}

/// `multipart/form-data` with one file in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReceiptUpload {
    /// A JPEG, PNG or PDF file of at most 10 MB (its type is read from its content).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

type Err = crate::error::ErrorBody;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than {MAX_RECEIPT_BYTES} bytes (10 MB)"),
    )
    .with_field("file")
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request(
            "invalid_multipart",
            format!("the multipart body cannot be read: {}", e.body_text()),
        )
        .with_field("file")
    }
}

/// The `file` part: its name as sent and its bytes (at most [`MAX_RECEIPT_BYTES`]).
async fn read_file(multipart: &mut axum::extract::Multipart) -> ApiResult<(String, bytes::Bytes)> {
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let (name, bytes) = read_part(field).await?;
        if bytes.is_empty() {
            return Err(ApiError::unprocessable("file", "the file is empty"));
        }
        return Ok((name, bytes));
    }
    Err(ApiError::unprocessable("file", "send the file in the multipart field `file`"))
}

/// A file part of a multipart body: its name as sent and its bytes, refused past
/// [`MAX_RECEIPT_BYTES`] (413 naming `file`). Also the new requisition page's upload.
pub(crate) async fn read_part(
    mut field: axum::extract::multipart::Field<'_>,
) -> ApiResult<(String, bytes::Bytes)> {
    let name = field.file_name().unwrap_or_default().to_string();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (bytes.len() + chunk.len()) as u64 > MAX_RECEIPT_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((name, bytes.freeze()))
}

/// Refuses a file that is not a JPEG, PNG or PDF by its content (422 naming `file`), before
/// anything is stored.
pub(crate) fn check_receipt(bytes: &[u8]) -> ApiResult<()> {
    if sniff(bytes).is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file",
            "the file is not a JPEG, PNG or PDF (its content says so, whatever its name or declared type)",
        )
        .with_field("file"));
    }
    Ok(())
}

/// Stores a checked receipt ([`check_receipt`]) and attaches it to requisition `id`: the
/// upload of the API and of the pages. A changed session is forgotten, as `super::run` does.
pub(crate) async fn attach(
    state: &AppState,
    ctx: &CommandContext,
    session: &SessionGuard,
    id: Uuid,
    name: &str,
    bytes: bytes::Bytes,
) -> ApiResult<Outcome<RequisitionView>> {
    let stored = state.receipts.put(bytes).await.map_err(ApiError::internal)?;
    match state.commands.attach_receipt(ctx, id, &stored, name).await {
        Ok(outcome) => Ok(outcome),
        Err(err @ CommandError::SessionChanged) => {
            state.auth.forget_session(&session.token_hash);
            Err(err.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Attach a receipt: multipart field `file`, a JPEG, PNG or PDF (by content) of at most 10 MB.
/// The requester may attach to their requisition unless it was rejected, cancelled or expired;
/// treasury to a paid one. The same file twice on one requisition: 409 `receipt_refused`.
#[utoipa::path(post, path = "/api/requisitions/{id}/receipts", tag = "requisitions",
    params(("id" = Uuid, Path)),
    request_body(content = ReceiptUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = RequisitionView), (status = 403, body = Err), (status = 404, body = Err),
              (status = 409, body = Err), (status = 413, body = Err, description = "larger than 10 MB (`file`)"),
              (status = 422, body = Err, description = "not a JPEG, PNG or PDF by content (`file`)")))]
#[tracing::instrument(skip_all, fields(requisition = %id))]
pub async fn upload(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    mut cmd: MultipartCommand,
) -> ApiResult<Response> {
    // Nothing is stored for a requisition the caller may not see.
    state.commands.requisition(&cmd.user.actor(), id).await?;
    let (name, bytes) = read_file(&mut cmd.multipart).await?;
    check_receipt(&bytes)?;
    let outcome = attach(&state, &cmd.context(), &cmd.session, id, &name, bytes).await?;
    Ok(super::respond(StatusCode::CREATED, outcome.position, &outcome.value))
}

/// `filename` for an ASCII-only reader (others replaced by `_`) and `filename*` in UTF-8.
fn content_disposition(name: &str) -> HeaderValue {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let ascii = ascii.replace(['"', '\\'], "_");
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Download a receipt, if the caller may see the requisition (otherwise 404, as the
/// requisition itself). Sent as an attachment with its type and `nosniff`.
#[utoipa::path(get, path = "/api/requisitions/{id}/receipts/{receipt_id}", tag = "requisitions",
    params(("id" = Uuid, Path), ("receipt_id" = Uuid, Path)),
    responses((status = 200, description = "the file, as `image/jpeg`, `image/png` or `application/pdf`",
               content_type = "application/octet-stream"),
              (status = 404, body = Err)))]
pub async fn download(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, receipt_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let parse = |raw: &str, field: &str| {
        Uuid::parse_str(raw).map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid id")).with_field(field)
        })
    };
    let (id, receipt_id) = (parse(&id, "id")?, parse(&receipt_id, "receipt_id")?);
    let receipt = state.commands.receipt(&user.actor(), id, receipt_id).await?;
    let Some(bytes) = state.receipts.get(&receipt.sha256).await.map_err(ApiError::internal)? else {
        tracing::error!(sha256 = %receipt.sha256, "a recorded receipt is missing from storage");
        return Err(ApiError::not_found("receipt file"));
    };
    let content_type = HeaderValue::from_str(&receipt.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(&receipt.original_name));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disposition_carries_the_name_safely() {
        let v = content_disposition("reçu taxi.pdf");
        assert_eq!(
            v.to_str().unwrap(),
            "attachment; filename=\"re_u taxi.pdf\"; filename*=UTF-8''re%C3%A7u%20taxi.pdf"
        );
    }
}
