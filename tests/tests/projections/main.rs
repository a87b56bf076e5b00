//! Projection engine tests against real PostgreSQL.

mod batching;
mod engine;

use pettycash_projections::{EventRow, Kind, Phase, Projection};
use sqlx::PgConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What goes wrong on the chosen batches (counted from 1), after the inner `apply` succeeded.
pub enum AfterApply {
    /// `apply` returns an error: the engine rolls the batch back.
    FailOn(Vec<usize>),
    /// The batch's database session kills itself: its transaction dies after the read-model
    /// writes and before the checkpoint moves.
    KillSessionOn(usize),
}

/// A real projection wrapped so that chosen batches go wrong after it applied them.
pub struct Wrapped {
    inner: Arc<dyn Projection>,
    after: AfterApply,
    batches: AtomicUsize,
    /// Set once a batch went wrong.
    pub went_wrong: AtomicBool,
}

impl Wrapped {
    pub fn new(inner: Arc<dyn Projection>, after: AfterApply) -> Arc<Self> {
        Arc::new(Self { inner, after, batches: AtomicUsize::new(0), went_wrong: AtomicBool::new(false) })
    }

    /// Batches applied so far (including those that then went wrong).
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }
}

// Written out instead of `#[async_trait]` (this crate does not depend on async-trait); the
// signatures are the ones the macro generates for `Projection::apply` and `before_live`.
impl Projection for Wrapped {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn version(&self) -> i32 {
        self.inner.version()
    }
    fn generation(&self) -> i32 {
        self.inner.generation()
    }
    fn at_generation(&self, generation: i32) -> Arc<dyn Projection> {
        self.inner.at_generation(generation)
    }
    fn kind(&self) -> Kind {
        self.inner.kind()
    }
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        self.inner.aggregate_types()
    }
    fn uses_metadata(&self) -> bool {
        self.inner.uses_metadata()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }
    fn create_tables(&self) -> Vec<String> {
        self.inner.create_tables()
    }
    fn create_indexes(&self) -> Vec<String> {
        self.inner.create_indexes()
    }
    fn apply<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        tx: &'life1 mut PgConnection,
        after: i64,
        phase: Phase,
        events: &'life2 [EventRow],
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let n = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
            self.inner.apply(&mut *tx, after, phase, events).await?;
            match &self.after {
                AfterApply::FailOn(batches) if batches.contains(&n) => {
                    self.went_wrong.store(true, Ordering::SeqCst);
                    anyhow::bail!("batch {n} fails after it was applied (test)")
                }
                AfterApply::KillSessionOn(batch) if *batch == n => {
                    self.went_wrong.store(true, Ordering::SeqCst);
                    // The session dies here; the engine then fails to move the checkpoint.
                    let _ =
                        sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())").execute(&mut *tx).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
    fn before_live<'life0, 'life1, 'async_trait>(
        &'life0 self,
        tx: &'life1 mut PgConnection,
        position: i64,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.before_live(tx, position)
    }
}
