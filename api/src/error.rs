//! One error type at the HTTP edge: `{"error": {"code", "message", "field"}}` with one status
//! per kind of failure. Unexpected failures are logged with their cause chain and answered
//! as a plain 500 without detail.

use crate::db_health;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pettycash_commands::CommandError;
use pettycash_domain::error::ErrorKind;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `insufficient_funds`.
    #[schema(example = "insufficient_funds")]
    pub code: String,
    pub message: String,
    /// The request field the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The code of a 503 caused by an unreachable database.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), field: None, retry_after: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message).with_field(field)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 503 `database_unavailable` (with `Retry-After`): the database cannot be reached now.
    pub fn database_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE, "the database is unavailable")
    }

    /// Logs `err` with its cause chain and answers 500 without detail; or 503 when anything
    /// in the chain says the database cannot be reached ([`db_health::caused_by_outage`]).
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        if db_health::caused_by_outage(&err) {
            tracing::error!(error = format!("{err:#}"), "database unavailable");
            return Self::database_unavailable();
        }
        tracing::error!(error = format!("{err:#}"), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal server error")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.clone(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let retry_after = self.retry_after.or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(secs) = retry_after {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from(secs));
        }
        if self.code == DATABASE_UNAVAILABLE {
            // Tells `db_health::require_database` to have the database probed.
            response.extensions_mut().insert(db_health::Unavailable);
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> Self {
        match err {
            CommandError::Domain(e) => {
                let status = match e.kind() {
                    ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                    ErrorKind::Conflict => StatusCode::CONFLICT,
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::Gone => StatusCode::GONE,
                };
                let mut api = ApiError::new(status, e.code(), e.to_string());
                api.field = e.field().map(String::from);
                api
            }
            e @ CommandError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ CommandError::IdempotencyKeyReused => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string())
                    .with_field("Idempotency-Key")
            }
            e @ CommandError::IdempotentReplay => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ CommandError::SessionChanged => {
                ApiError::new(StatusCode::CONFLICT, "session_changed", e.to_string())
            }
            CommandError::Unauthenticated(m) => ApiError::unauthenticated(m),
            e @ CommandError::Tampered { .. } => {
                ApiError::new(StatusCode::CONFLICT, "integrity_violation", e.to_string())
            }
            e @ CommandError::TooManyAttempts { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", e.to_string())
            },
            e @ CommandError::CodeRateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                field: Some("requisition_id".into()),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "payment_code_rate_limited", e.to_string())
            },
            e @ CommandError::BatchRefused(_) => {
                let CommandError::BatchRefused(lines) = &e else { unreachable!() };
                let conflict = lines.iter().all(|l| l.conflict);
                let status = if conflict { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
                let code = match lines.as_slice() {
                    [one] if one.code == "invalid_file" => "invalid_file",
                    _ => "batch_refused",
                };
                let field = lines.first().map(|l| l.field.clone());
                ApiError { field, ..ApiError::new(status, code, e.to_string()) }
            }
            CommandError::Database(e) => ApiError::internal(e),
            e @ CommandError::Corrupt(_) => ApiError::internal(anyhow::anyhow!(e)),
            CommandError::Other(e) => ApiError::internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}
