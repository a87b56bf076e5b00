//! The command side of Petty Cash.
//!
//! Owns the event store (postgres-es's `events` table plus a global position), the execution
//! of commands against the pure aggregates of `pettycash-domain` with optimistic concurrency
//! and retries, event metadata, idempotency keys, and authentication (credentials and
//! sessions). It does not know about HTTP: the `api` crate maps its errors to responses.
//!
//! Why not `CqrsFramework::execute`: a payment must append to the requisition and the fund in
//! one transaction, an idempotency record must commit with the events it answers for, and
//! every command must return the global position of its last event. cqrs-es's framework does
//! none of these, so this crate uses the cqrs-es `Aggregate`/`EventSink` contract and
//! postgres-es's repository for reading, and appends itself (see `docs/architecture.md`).

pub mod advances;
pub mod alerts;
pub mod auth;
pub mod budgets;
pub mod bulk;
pub mod bulk_payments;
pub mod cache;
pub mod clock;
pub mod context;
pub mod delegations;
pub mod error;
pub mod group;
pub mod import;
pub mod invitations;
pub mod locks;
pub mod mail;
pub mod org;
pub mod payments;
pub mod provider_payments;
pub mod providers;
pub mod receipts;
pub mod reconcile;
pub mod review;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod throttle;
pub mod views;
pub mod wake;

pub use context::{CommandContext, IdempotencyRecord, RequestMeta, SessionGuard};
pub use error::CommandError;
pub use service::{CommandService, Outcome};
pub use store::EventStore;

/// The embedded sqlx migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
