//! Projection engine and read models.
//!
//! The engine tails the event store in one global order with no gaps and no skips (cursor
//! `(transaction_id, global_position)`, visible only below the oldest running transaction),
//! applies events in batches to read models, and moves each projection's checkpoint in the
//! same transaction as its writes. It owns the read-model tables; it never writes events.
//! The `api` crate queries the read models through [`queries`].

pub mod engine;
pub mod event;
pub mod models;
pub mod queries;
pub mod seal;
pub mod wait;

pub use engine::{Engine, EngineOptions, ProjectionStatus};
pub use event::EventRow;

use async_trait::async_trait;
use sqlx::PgConnection;

/// What a rebuild may do with a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pure read-model writes: safe to run again from position zero.
    Replayable,
    /// Has effects outside its tables (mail, alerts): never re-run by a rebuild.
    SideEffecting,
}

/// A read model built from events.
///
/// Its tables are named `{base}_v{version}` and read through a view `{base}` that points at the
/// live version. A new version is built into its own tables from position zero while the old
/// one keeps serving, then the views are switched in one transaction.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn version(&self) -> i32;
    fn kind(&self) -> Kind {
        Kind::Replayable
    }
    /// Base names of its tables (the views readers use).
    fn tables(&self) -> &'static [&'static str];
    /// DDL that creates this version's tables (idempotent: `IF NOT EXISTS`).
    fn create_tables(&self) -> Vec<String>;
    /// Applies a batch of events, in global order, inside the engine's transaction.
    async fn apply(&self, tx: &mut PgConnection, events: &[EventRow]) -> anyhow::Result<()>;
}

/// Table name of `base` for `version`.
pub fn versioned(base: &str, version: i32) -> String {
    format!("{base}_v{version}")
}

/// The projections the service runs, at their current versions.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(models::requisitions::Requisitions::new(1)),
        std::sync::Arc::new(models::cash::Cash::new(1)),
    ]
}
