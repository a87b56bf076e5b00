//! Errors of the command side. Domain rule violations pass through unchanged; the API maps
//! each variant to one status code.

use cqrs_es::persist::PersistenceError;
use pettycash_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The aggregate kept changing underneath the command; retries were exhausted.
    #[error("the {aggregate} was changed by another request at the same time; try again")]
    Conflict { aggregate: &'static str },
    /// The same Idempotency-Key was used earlier for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// Another request with the same Idempotency-Key committed first: answer with its
    /// stored response.
    #[error("a request with this Idempotency-Key was completed concurrently")]
    IdempotentReplay,
    /// The session ended, or the user's roles or status changed, while the command ran;
    /// nothing was written. Sending the request again decides it on the current roles.
    #[error("your session or your roles changed while this request was handled; nothing was recorded, send it again")]
    SessionChanged,
    /// The user could not be authenticated (bad credentials, deactivated, expired session).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Too many sign-in attempts on the account, from the device or from the client address
    /// (`crate::throttle`): nothing was checked.
    #[error("too many sign-in attempts; try again in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    /// Payment codes for one requisition were asked for too often (`crate::payments`).
    #[error("a payment code was asked for too often; try again in {retry_after_secs} seconds")]
    CodeRateLimited { retry_after_secs: u64 },
    /// Lines of a bulk payment batch that cannot be paid (`crate::bulk_payments`): every one
    /// named, nothing started.
    #[error("{}", batch_message(.0))]
    BatchRefused(Vec<BatchRefusal>),
    #[error("stored event could not be read: {0}")]
    Corrupt(String),
    /// The stream holds an event whose MAC does not verify: the service did not write it (a
    /// row inserted into the database directly) or it was changed. Nothing is decided on such
    /// a stream until an auditor has looked at it.
    #[error(
        "{aggregate} {id} holds an event (#{sequence}) that this service did not record or that was \
         changed; it cannot be acted on until an auditor has run `pettycash-replay verify`"
    )]
    Tampered { aggregate: &'static str, id: String, sequence: usize },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CommandError {
    pub fn not_found(what: &'static str) -> Self {
        CommandError::Domain(DomainError::NotFound { what })
    }

    /// Loading `aggregate` `id` failed because of `cause`, which stays in the error's cause
    /// chain (not only in its text), so that the API can tell an unreachable database (503)
    /// from a bug (500).
    pub fn loading(aggregate: &str, id: &str, cause: impl Into<anyhow::Error>) -> Self {
        CommandError::Other(cause.into().context(format!("loading {aggregate} {id}")))
    }
}

/// postgres-es's `PersistenceError` prints the error it wraps but does not give it as its
/// `source()`: this takes it out, so that a `sqlx::Error` inside is found in the cause chain.
/// True when PostgreSQL answered `undefined_table` (42P01): a read model queried before the
/// projection engine first created it (a new store, or a tool that runs no engine).
pub(crate) fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01"))
}

pub(crate) fn persistence_cause(e: PersistenceError) -> anyhow::Error {
    match e {
        PersistenceError::ConnectionError(inner)
        | PersistenceError::DeserializationError(inner)
        | PersistenceError::UnknownError(inner) => match inner.downcast::<sqlx::Error>() {
            Ok(sqlx) => anyhow::Error::new(*sqlx),
            Err(other) => anyhow::Error::from_boxed(other),
        },
        e @ PersistenceError::OptimisticLockError => anyhow::Error::new(e),
    }
}

/// Why one line of a bulk payment batch is refused.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BatchRefusal {
    pub requisition_id: uuid::Uuid,
    /// `requisition_ids.<id>` or `destinations.<id>`.
    pub field: String,
    pub code: String,
    pub message: String,
    /// The requisition's state refuses it (409 rather than 422).
    #[serde(skip)]
    pub conflict: bool,
}

fn batch_message(lines: &[BatchRefusal]) -> String {
    let each: Vec<String> = lines.iter().map(|l| format!("{}: {}", l.field, l.message)).collect();
    match lines {
        // A result file that cannot be read (`import_batch_results`): no batch is started.
        [one] if one.code == "invalid_file" => format!("nothing was imported: {}", each.join("; ")),
        _ => format!("nothing was started; refused: {}", each.join("; ")),
    }
}
