//! Projection engine and read models.
//!
//! The engine tails the event store in one global order with no gaps and no skips (cursor
//! `(transaction_id, global_position)`, visible only below the oldest running transaction),
//! applies events in batches to read models, and moves each projection's checkpoint in the
//! same transaction as its writes. It owns the read-model tables; it never writes events.
//! The `api` crate queries the read models through [`queries`].

pub mod alerts;
pub mod connect;
pub mod engine;
pub mod event;
pub mod ledger;
pub mod models;
pub mod queries;
pub mod reader;
pub mod reports;
pub mod seal;
pub mod wait;

pub use engine::{Engine, EngineOptions, ProjectionStatus};

/// A projection build's checkpoint state (`projection_checkpoints.state`). One text form,
/// stored as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointState {
    /// Being built from position zero beside the live one; readers do not see it yet.
    Building,
    /// What readers' views point at; kept current by its worker.
    Live,
    /// Replaced by a newer build; nothing applies to it any more.
    Retired,
}

impl CheckpointState {
    pub const ALL: [CheckpointState; 3] =
        [CheckpointState::Building, CheckpointState::Live, CheckpointState::Retired];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointState::Building => "building",
            CheckpointState::Live => "live",
            CheckpointState::Retired => "retired",
        }
    }
}

impl std::fmt::Display for CheckpointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`: tables print it with a width.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for CheckpointState {
    type Err = pettycash_domain::fund::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| pettycash_domain::fund::UnknownWord {
            what: "checkpoint state",
            text: s.to_string(),
        })
    }
}

pettycash_domain::stored_as_text!(CheckpointState);
pub use event::EventRow;

use async_trait::async_trait;
use sqlx::PgConnection;
use std::sync::Arc;

/// What a rebuild may do with a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pure read-model writes: safe to run again from position zero.
    Replayable,
    /// Has effects outside its tables (mail, alerts): never re-run by a rebuild, and a new
    /// checkpoint of it starts at the end of the store, not at position zero (see
    /// [`engine::prepare`]): it acts on what happens from then on.
    SideEffecting,
}

/// Whether the tables a batch goes into are the ones readers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A build nobody reads yet (from position zero, beside the live one). A projection may
    /// leave tables derived from its other tables (running totals) to be completed by
    /// [`Projection::before_live`].
    Building,
    /// The live tables: every table is up to date after every batch.
    Live,
}

/// A read model built from events.
///
/// Its tables are named after its version and build generation (see [`table_name`]) and read
/// through a view `{base}` that points at the live one. A new version, or a new generation of
/// the same version (`pettycash-replay rebuild`), is built into its own tables from position
/// zero while the live one keeps serving, then the views are switched in one transaction.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The code version: bumped when the read model's shape or meaning changes.
    fn version(&self) -> i32;
    /// The build generation of this version: 0 for the first build, one more for each
    /// rebuild of the same version.
    fn generation(&self) -> i32;
    /// The same projection (same code, same version) building into `generation`'s tables.
    fn at_generation(&self, generation: i32) -> Arc<dyn Projection>;
    fn kind(&self) -> Kind {
        Kind::Replayable
    }
    /// The aggregate types whose events it uses (`None`: all). The engine still reads every
    /// event in order, but leaves out the payload and metadata of the others.
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }
    /// Single event types of other aggregate types that it uses too, as (aggregate type, event
    /// type): their payloads are read, and no other event of that aggregate type's.
    fn other_events(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// Whether it reads [`EventRow::metadata`]. When not, the engine leaves the metadata out
    /// (`null`) for every event: its jsonb-to-text output costs about as much as the payload's.
    fn uses_metadata(&self) -> bool {
        true
    }
    /// Base names of its tables (the views readers use).
    fn tables(&self) -> &'static [&'static str];
    /// DDL of the secondary indexes readers need (idempotent). Not created with the tables:
    /// a build from the first event would maintain them row by row; they are built in one go
    /// when the build goes live (and checked at every start of a live build).
    fn create_indexes(&self) -> Vec<String> {
        Vec::new()
    }
    /// DDL that creates this generation's tables (idempotent: `IF NOT EXISTS`), with the keys
    /// its writes need (primary keys for upserts) but not the indexes only readers need.
    fn create_tables(&self) -> Vec<String>;
    /// Applies a batch of events, in global order, inside the engine's transaction.
    ///
    /// `after` is the checkpoint position the batch follows (0 before the first event): the
    /// tables as `tx` sees them hold exactly the effects of the events up to that position
    /// (while [`Phase::Building`], except what the projection leaves to `before_live`).
    /// A projection that keeps state in memory between batches compares it with its own record
    /// of where that state stands; anything else (a rolled-back batch, another process that
    /// applied batches meanwhile) shows as a mismatch.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        after: i64,
        phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()>;
    /// Called after a transaction that applied a batch of events to it committed (never after
    /// a rollback). A side-effecting projection tells whoever acts on what it wrote (the
    /// mail sender) here, rather than waiting for their poll.
    fn after_commit(&self) {}
    /// Completes a build in the transaction that makes it live, after its last batch and
    /// before its indexes are built: whatever `apply` left undone while building.
    /// `position` is the checkpoint position the tables are at.
    async fn before_live(&self, _tx: &mut PgConnection, _position: i64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Table name of `base` for `version`, generation 0.
pub fn versioned(base: &str, version: i32) -> String {
    table_name(base, version, 0)
}

/// Table name of `base` for `version` and build `generation`: `{base}_v{version}` for
/// generation 0 (the name tables had before generations existed, so existing databases keep
/// working), `{base}_v{version}_g{generation}` after that.
pub fn table_name(base: &str, version: i32, generation: i32) -> String {
    if generation == 0 {
        format!("{base}_v{version}")
    } else {
        format!("{base}_v{version}_g{generation}")
    }
}

/// The current version of the `requisitions` projection (3: the requisition's organisation;
/// 4: the budgets its latest submission exceeds).
pub const REQUISITIONS_VERSION: i32 = 4;
/// The current version of the `cash` projection (2: the fund's company; 3: fund operations'
/// columns and movements; 4: reservations in the cash book, what each line comes from, and
/// payments' reconciliation; 5: funds' pending variances and `rm_fund_daily`, the closing
/// balance per fund and day, for the dashboard).
pub const CASH_VERSION: i32 = 5;
/// The current version of the side-effecting `alerts` projection (a new version starts at the
/// end of the store, like every side-effecting one).
pub const ALERTS_VERSION: i32 = 1;
/// The current version of the `budgets` projection (what budgets consume).
pub const BUDGETS_VERSION: i32 = 1;
/// The current version of the `report_facts` projection (what the approvals, payments and
/// exceptions reports know of each requisition).
pub const REPORT_FACTS_VERSION: i32 = 1;

/// The projections the service runs (`serve`, `project`), at their current versions
/// (generation 0; the engine resolves which generation of each version to run): the read
/// models, and the side-effecting `notifications` (mail) and `alerts`, whose links start with
/// `links`.
pub fn all(links: &pettycash_commands::mail::Links) -> Vec<Arc<dyn Projection>> {
    let mut all = replayable();
    all.push(Arc::new(models::notifications::Notifications::new(1, links.clone())));
    all.push(Arc::new(models::alerts::Alerts::new(ALERTS_VERSION, links.clone())));
    all
}

/// The read models only: what `pettycash-replay rebuild` may build again from position zero.
pub fn replayable() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(models::requisitions::Requisitions::new(REQUISITIONS_VERSION)),
        Arc::new(models::cash::Cash::new(CASH_VERSION)),
        Arc::new(models::budgets::Budgets::new(BUDGETS_VERSION)),
        Arc::new(models::report_facts::ReportFacts::new(REPORT_FACTS_VERSION)),
    ]
}
