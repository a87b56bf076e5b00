//! The projection engine: one worker per projection version, exactly one at a time across
//! processes, tailing the event store in global order.
//!
//! Order without gaps: events are read by `(transaction_id, global_position)` and only when
//! `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`, i.e. when every transaction
//! that could still commit an earlier-ordered event has finished. Reading by
//! `global_position` alone skips events: positions are taken at insert, but transactions
//! commit in another order.
//!
//! Exactly once: each batch runs in one transaction that locks the projection's checkpoint
//! row, reads the events after it, applies them and moves the checkpoint. A crash anywhere
//! rolls all of it back. Two workers on one projection serialise on that row lock, so even
//! without the advisory lock nothing is applied twice; the advisory lock (session-level, freed
//! when its connection dies) just keeps the others idle until the holder goes away.

use crate::event::{EventRow, EVENT_COLUMNS};
use crate::{versioned, Kind, Projection};
use anyhow::Context;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How soon a worker looks again when events exist that are not visible yet.
const PENDING_RETRY: Duration = Duration::from_millis(5);

/// Channel the events insert trigger notifies.
pub const CHANNEL: &str = "pettycash_events";

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Events per transaction.
    pub batch_size: i64,
    /// Polling fallback when no notification arrives.
    pub poll_interval: Duration,
    /// How often a worker that does not hold the lock tries again.
    pub lease_retry: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            lease_retry: Duration::from_secs(2),
        }
    }
}

/// Runs projection workers until shutdown.
pub struct Engine {
    pool: PgPool,
    projections: Vec<Arc<dyn Projection>>,
    options: EngineOptions,
}

/// One projection version's progress.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i32,
    pub state: String,
    pub last_position: i64,
    pub events_applied: i64,
    /// Events in the store beyond this projection's position (approximate while
    /// transactions are in flight).
    pub lag_events: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Every projection version's progress, live versions first.
pub async fn status(pool: &PgPool) -> sqlx::Result<Vec<ProjectionStatus>> {
    sqlx::query_as(
        "SELECT c.name, c.version, c.state, c.last_position, c.events_applied,
                greatest(coalesce((SELECT max(global_position) FROM events), 0) - c.last_position, 0) AS lag_events,
                c.updated_at
         FROM projection_checkpoints c
         ORDER BY c.name, (c.state = 'live') DESC, c.version DESC",
    )
    .fetch_all(pool)
    .await
}

fn lock_key(name: &str, version: i32) -> String {
    format!("pettycash.projection.{name}.v{version}")
}

impl Engine {
    pub fn new(pool: PgPool, projections: Vec<Arc<dyn Projection>>, options: EngineOptions) -> Self {
        Self { pool, projections, options }
    }

    /// Only the replayable projections (what a rebuild may run).
    pub fn replayable_only(mut self) -> Self {
        self.projections.retain(|p| p.kind() == Kind::Replayable);
        self
    }

    /// Runs every worker until `shutdown` turns true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(self.pool.clone(), wake.clone(), shutdown.clone()));
        let mut workers = Vec::new();
        for projection in self.projections {
            let worker = Worker {
                pool: self.pool.clone(),
                projection,
                options: self.options.clone(),
                wake: wake.clone(),
                shutdown: shutdown.clone(),
            };
            workers.push(tokio::spawn(worker.run()));
        }
        for w in workers {
            let _ = w.await;
        }
        listener.abort();
    }

    /// Applies everything visible now, for every projection, then returns (used by tests and
    /// `pettycash-replay rebuild`). Does not take the advisory lock: the row lock on the
    /// checkpoint keeps it exact even if a worker runs at the same time.
    pub async fn catch_up(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for projection in &self.projections {
            prepare(&self.pool, projection.as_ref()).await?;
            loop {
                let n = step(&self.pool, projection.as_ref(), self.options.batch_size).await?;
                total += n.applied;
                if n.applied == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }
}

async fn listen(pool: PgPool, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let result: anyhow::Result<()> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            loop {
                tokio::select! {
                    n = listener.recv() => { n?; wake.notify_waiters(); }
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
        .await;
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(
                error = format!("{e:#}"),
                "projection listener failed; polling until it reconnects"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Worker {
    pool: PgPool,
    projection: Arc<dyn Projection>,
    options: EngineOptions,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        let name = self.projection.name();
        let version = self.projection.version();
        while !*self.shutdown.borrow() {
            match self.run_while_holding_lock().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(
                        projection = name,
                        version,
                        error = format!("{e:#}"),
                        "projection worker failed; restarting"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Waits for the lease, then tails until shutdown. Returns Ok on shutdown or retirement.
    async fn run_while_holding_lock(&mut self) -> anyhow::Result<()> {
        let p = self.projection.as_ref();
        // A connection of its own: the advisory lock lives as long as this session.
        let mut lock_conn = self.pool.acquire().await?.detach();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(lock_key(p.name(), p.version()))
                .fetch_one(&mut lock_conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.lease_retry) => {}
                _ = self.shutdown.changed() => return Ok(()),
            }
        }
        tracing::info!(projection = p.name(), version = p.version(), "projection worker holds the lease");
        if prepare(&self.pool, p).await? == "retired" {
            tracing::warn!(
                projection = p.name(),
                version = p.version(),
                "this version was retired by a newer one; idle"
            );
            return Ok(());
        }
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let outcome = step(&self.pool, p, self.options.batch_size).await?;
            if outcome.retired {
                return Ok(());
            }
            if outcome.applied > 0 {
                if *self.shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
            // Check the lease connection is alive; if it died the lock is gone.
            lock_conn.ping().await.context("lease connection lost")?;
            let pause = if outcome.pending { PENDING_RETRY } else { self.options.poll_interval };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.changed() => return Ok(()),
            }
        }
    }
}

/// Creates the version's tables and checkpoint if missing; gives readers a view if there is
/// none yet (first build). Returns the checkpoint's state.
pub async fn prepare(pool: &PgPool, p: &dyn Projection) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    // Serialise preparation of one projection across processes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
        .bind(lock_key(p.name(), p.version()))
        .execute(&mut *tx)
        .await?;
    for ddl in p.create_tables() {
        sqlx::query(&ddl)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("creating tables of {}", p.name()))?;
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, version, state) VALUES ($1, $2, 'building')
         ON CONFLICT (name, version) DO NOTHING",
    )
    .bind(p.name())
    .bind(p.version())
    .execute(&mut *tx)
    .await?;
    for base in p.tables() {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(base).fetch_one(&mut *tx).await?;
        if !exists {
            sqlx::query(&format!("CREATE VIEW {base} AS SELECT * FROM {}", versioned(base, p.version())))
                .execute(&mut *tx)
                .await?;
        }
    }
    let state: String =
        sqlx::query_scalar("SELECT state FROM projection_checkpoints WHERE name = $1 AND version = $2")
            .bind(p.name())
            .bind(p.version())
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(state)
}

pub struct StepOutcome {
    pub applied: u64,
    pub retired: bool,
    /// Nothing was visible, but events after the cursor exist: their transaction, or an older
    /// one still running (possibly another worker's batch, which sends no notification), holds
    /// the horizon back. Worth trying again in a few milliseconds rather than waiting to be
    /// woken.
    pub pending: bool,
}

/// One batch in one transaction: lock the checkpoint, read visible events after it, apply,
/// move the checkpoint. When a building version finds nothing left, it goes live.
pub async fn step(pool: &PgPool, p: &dyn Projection, batch_size: i64) -> anyhow::Result<StepOutcome> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let (state, txid, position): (String, String, i64) = sqlx::query_as(
        "SELECT state, last_transaction_id::text, last_position FROM projection_checkpoints
         WHERE name = $1 AND version = $2 FOR UPDATE",
    )
    .bind(p.name())
    .bind(p.version())
    .fetch_one(&mut *tx)
    .await
    .context("reading the checkpoint")?;
    if state == "retired" {
        return Ok(StepOutcome { applied: 0, retired: true, pending: false });
    }
    let events: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY transaction_id, global_position
         LIMIT $3"
    ))
    .bind(&txid)
    .bind(position)
    .bind(batch_size)
    // Unnamed statement: a custom plan for these cursor values every time. A cached generic
    // plan does not know the cursor and may not use the (transaction_id, global_position)
    // index range.
    .persistent(false)
    .fetch_all(&mut *tx)
    .await
    .context("reading events")?;
    let Some(last) = events.last() else {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2))",
        )
        .bind(&txid)
        .bind(position)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        if state == "building" && !pending {
            go_live(&mut tx, p).await?;
        }
        tx.commit().await?;
        return Ok(StepOutcome { applied: 0, retired: false, pending });
    };
    let fetched = started.elapsed();
    p.apply(&mut tx, &events).await.with_context(|| format!("applying events to {}", p.name()))?;
    let applied = started.elapsed();
    sqlx::query(
        "UPDATE projection_checkpoints
         SET last_transaction_id = (SELECT transaction_id FROM events WHERE global_position = $3),
             last_position = $3, events_applied = events_applied + $4, updated_at = now()
         WHERE name = $1 AND version = $2",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(last.global_position)
    .bind(events.len() as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(
        projection = p.name(),
        events = events.len(),
        fetch_ms = fetched.as_secs_f64() * 1e3,
        apply_ms = (applied - fetched).as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - applied).as_secs_f64() * 1e3,
        "batch applied"
    );
    Ok(StepOutcome { applied: events.len() as u64, retired: false, pending: false })
}

/// The atomic swap: readers' views now point at this version; other versions retire.
async fn go_live(tx: &mut PgConnection, p: &dyn Projection) -> anyhow::Result<()> {
    // Only older versions retire; a newer one still building goes on and takes over later.
    sqlx::query("UPDATE projection_checkpoints SET state = 'retired' WHERE name = $1 AND version < $2 AND state <> 'retired'")
        .bind(p.name())
        .bind(p.version())
        .execute(&mut *tx)
        .await?;
    for base in p.tables() {
        sqlx::query(&format!("DROP VIEW IF EXISTS {base}")).execute(&mut *tx).await?;
        sqlx::query(&format!("CREATE VIEW {base} AS SELECT * FROM {}", versioned(base, p.version())))
            .execute(&mut *tx)
            .await?;
    }
    // A newer version already live wins: this one retires and the views stay as they are.
    let newer_live: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projection_checkpoints WHERE name = $1 AND version > $2 AND state = 'live')",
    )
    .bind(p.name())
    .bind(p.version())
    .fetch_one(&mut *tx)
    .await?;
    if newer_live {
        sqlx::query("UPDATE projection_checkpoints SET state = 'retired' WHERE name = $1 AND version = $2")
            .bind(p.name())
            .bind(p.version())
            .execute(&mut *tx)
            .await?;
        tracing::warn!(
            projection = p.name(),
            version = p.version(),
            "a newer version is live; this one retires"
        );
        return Ok(());
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET state = 'live', live_since = now(), updated_at = now()
         WHERE name = $1 AND version = $2",
    )
    .bind(p.name())
    .bind(p.version())
    .execute(&mut *tx)
    .await?;
    tracing::info!(projection = p.name(), version = p.version(), "projection version is live");
    Ok(())
}
