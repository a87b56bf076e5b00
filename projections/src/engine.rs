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
//!
//! Versions and generations: each build of a projection has its own tables and checkpoint
//! row, keyed `(name, version, generation)`. A new code version starts at generation 0;
//! `pettycash-replay rebuild` builds the same version again as generation max+1. Either way
//! the build runs from position zero beside the live one, and when it finds nothing visible
//! left to apply it swaps the views in one transaction ([`step`]). The newest
//! `(version, generation)` wins: older ones retire, a build older than the live one retires
//! without touching the views. A worker runs the live generation of its version and, when a
//! rebuild retires that generation, carries on with the new one (no restart).

use crate::event::EventRow;
use crate::reader::{self, After, Selection};
use crate::CheckpointState;
use crate::{table_name, Kind, Phase, Projection};
use anyhow::Context;
use pettycash_commands::wake;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How soon a worker looks again when events exist that are not visible yet.
const PENDING_RETRY: Duration = Duration::from_millis(5);

/// How often an idle worker checks that the connection holding its lease is alive.
const LEASE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Events per transaction.
    pub batch_size: i64,
    /// Largest batch a worker grows to while it is behind: each full batch reads the next one
    /// four times as large, up to this; a batch that is not full starts again at
    /// `batch_size`. Tailing a live store keeps batches small (short transactions, low lag);
    /// catching up after a deploy or an outage gets rebuild-sized batches.
    pub max_batch_size: i64,
    /// Polling fallback when no notification arrives.
    pub poll_interval: Duration,
    /// After a batch that caught up with the visible events, how long a live worker lets new
    /// events gather before it looks again. Adds at most this to the lag under a steady load,
    /// and saves a transaction per handful of events; zero looks again at once.
    pub gather: Duration,
    /// How often a worker that does not hold the lock tries again.
    pub lease_retry: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            max_batch_size: 20_000,
            poll_interval: Duration::from_millis(500),
            gather: Duration::from_millis(10),
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

/// One projection build's progress (a version at one generation).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i32,
    /// The build generation of that version (0 unless rebuilt).
    pub generation: i32,
    pub state: CheckpointState,
    pub last_position: i64,
    pub events_applied: i64,
    /// Events in the store beyond this projection's position (approximate while
    /// transactions are in flight).
    pub lag_events: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Every projection build's progress, the live one of each projection first, then the
/// newest.
pub async fn status(pool: &PgPool) -> sqlx::Result<Vec<ProjectionStatus>> {
    sqlx::query_as(
        "SELECT c.name, c.version, c.generation, c.state, c.last_position, c.events_applied,
                greatest(coalesce((SELECT max(global_position) FROM events), 0) - c.last_position, 0) AS lag_events,
                c.updated_at
         FROM projection_checkpoints c
         ORDER BY c.name, (c.state = $1) DESC, c.version DESC, c.generation DESC",
    )
    .bind(CheckpointState::Live)
    .fetch_all(pool)
    .await
}

/// The lease (and preparation lock) of one projection version, whatever its generation.
fn lock_key(name: &str, version: i32) -> String {
    format!("pettycash.projection.{name}.v{version}")
}

/// Taken by every swap attempt of a projection before it locks the checkpoint rows of all
/// its versions and generations (in one order): swaps never interleave or deadlock.
fn swap_key(name: &str) -> String {
    format!("pettycash.projection.{name}.swap")
}

/// Which generation of `(name, version)` a worker runs: the live one, else the highest one
/// building, else (nothing yet) 0. When every generation is retired (a newer version is
/// live), the highest one, whose worker then idles.
pub async fn resolve_generation(pool: &PgPool, name: &str, version: i32) -> sqlx::Result<i32> {
    let generation: Option<i32> = sqlx::query_scalar(
        "SELECT generation FROM projection_checkpoints WHERE name = $1 AND version = $2
         ORDER BY (state = $3) DESC, (state = $4) DESC, generation DESC LIMIT 1",
    )
    .bind(name)
    .bind(version)
    .bind(CheckpointState::Live)
    .bind(CheckpointState::Building)
    .fetch_optional(pool)
    .await?;
    Ok(generation.unwrap_or(0))
}

/// The live generation of `(name, version)`, if that version is live.
pub async fn live_generation(pool: &PgPool, name: &str, version: i32) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "SELECT generation FROM projection_checkpoints WHERE name = $1 AND version = $2 AND state = $3",
    )
    .bind(name)
    .bind(version)
    .bind(CheckpointState::Live)
    .fetch_optional(pool)
    .await
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
            let mut stepper = Stepper::new(
                &self.pool,
                projection.as_ref(),
                self.options.batch_size,
                self.options.max_batch_size,
            );
            loop {
                let n = stepper.step().await?;
                total += n.applied;
                if n.applied == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }
}

/// Wakes the workers when events were committed: in this process (in memory), or in another
/// one (its notification; ours come back to us too and are skipped). See
/// [`pettycash_commands::wake`].
async fn listen(pool: PgPool, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut local = wake::subscribe();
    loop {
        let result: anyhow::Result<()> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(wake::CHANNEL).await?;
            loop {
                tokio::select! {
                    n = listener.recv() => {
                        if n?.payload() != wake::process_token() {
                            wake.notify_waiters();
                        }
                    }
                    _ = local.changed() => wake.notify_waiters(),
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
        // Commits in this process still wake the workers meanwhile.
        let pause = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = local.changed() => wake.notify_waiters(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

struct Worker {
    pool: PgPool,
    projection: Arc<dyn Projection>,
    options: EngineOptions,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

/// How a worker's tailing of one generation ended.
enum Tail {
    Shutdown,
    Retired,
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

    /// Waits for the lease of its version, then tails the generation it resolves to until
    /// shutdown, following rebuilds. Returns Ok on shutdown or when the version is retired.
    async fn run_while_holding_lock(&mut self) -> anyhow::Result<()> {
        let base = self.projection.clone();
        let (name, version) = (base.name(), base.version());
        // A connection of its own: the advisory lock lives as long as this session.
        let mut lock_conn = self.pool.acquire().await?.detach();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(lock_key(name, version))
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
        let mut generation = resolve_generation(&self.pool, name, version).await?;
        loop {
            let p =
                if generation == base.generation() { base.clone() } else { base.at_generation(generation) };
            tracing::info!(projection = name, version, generation, "projection worker holds the lease");
            match self.tail(p.as_ref(), &mut lock_conn).await? {
                Tail::Shutdown => return Ok(()),
                Tail::Retired => match live_generation(&self.pool, name, version).await? {
                    // A rebuild of this version went live: carry on with it.
                    Some(live) if live != generation => {
                        tracing::info!(
                            projection = name,
                            version,
                            from = generation,
                            to = live,
                            "generation retired by a rebuild; following the new generation"
                        );
                        generation = live;
                    }
                    _ => {
                        tracing::warn!(
                            projection = name,
                            version,
                            generation,
                            "this version was retired by a newer one; idle"
                        );
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Tails one generation until shutdown or until it is retired.
    async fn tail(&mut self, p: &dyn Projection, lock_conn: &mut PgConnection) -> anyhow::Result<Tail> {
        if prepare(&self.pool, p).await? == CheckpointState::Retired {
            return Ok(Tail::Retired);
        }
        let mut pinged = std::time::Instant::now();
        let mut stepper = Stepper::new(&self.pool, p, self.options.batch_size, self.options.max_batch_size);
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let outcome = match probe(&self.pool, p).await? {
                Probe::Idle { pending } => StepOutcome { applied: 0, retired: false, pending, live: true },
                Probe::Step => stepper.step().await?,
            };
            if outcome.retired {
                return Ok(Tail::Retired);
            }
            if outcome.applied > 0 {
                if *self.shutdown.borrow() {
                    return Ok(Tail::Shutdown);
                }
                // Caught up with what was visible (the batch was not full): under a steady
                // load more events follow at once. Let them gather for a moment instead of
                // running a transaction for every few; a lone event after a quiet spell is
                // still applied as soon as it is notified.
                if outcome.applied < self.options.batch_size as u64 && !self.options.gather.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.gather) => {}
                        _ = self.shutdown.changed() => return Ok(Tail::Shutdown),
                    }
                }
                continue;
            }
            // Check the lease connection is alive (if it died the lock is gone), once a
            // second: an idle worker under load looks for events every few milliseconds.
            if pinged.elapsed() >= LEASE_CHECK {
                lock_conn.ping().await.context("lease connection lost")?;
                pinged = std::time::Instant::now();
            }
            let pause = if outcome.pending { PENDING_RETRY } else { self.options.poll_interval };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.changed() => return Ok(Tail::Shutdown),
            }
        }
    }
}

/// What a worker should do next, as seen without locking anything.
enum Probe {
    /// Live, nothing visible after the checkpoint; `pending`: events exist that are not
    /// visible yet.
    Idle { pending: bool },
    /// Events are visible, or the generation is not live (a building one may go live): run a
    /// [`step`].
    Step,
}

/// Looks at the checkpoint and the events after it in one statement, outside any
/// transaction. Under load most wake-ups find nothing visible yet (the command that woke the
/// worker, or another worker's batch, has not committed); a [`step`] would lock the checkpoint
/// row for that, which takes a transaction id, which in turn holds back the visibility horizon
/// of every other worker and the sealer until it commits: workers then keep each other polling.
/// This probe takes no transaction id and costs one round trip.
async fn probe(pool: &PgPool, p: &dyn Projection) -> anyhow::Result<Probe> {
    // The first event after the cursor in (transaction, position) order is visible exactly
    // when its transaction id is below the horizon: every later one has a larger id.
    let row: Option<(CheckpointState, Option<bool>)> = sqlx::query_as(
        "SELECT c.state, n.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         FROM projection_checkpoints c
         LEFT JOIN LATERAL (
             SELECT e.transaction_id FROM events e
             WHERE (e.transaction_id, e.global_position) > (c.last_transaction_id, c.last_position)
             ORDER BY e.transaction_id, e.global_position LIMIT 1) n ON true
         WHERE c.name = $1 AND c.version = $2 AND c.generation = $3",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(p.generation())
    .fetch_optional(pool)
    .await
    .context("probing for events")?;
    Ok(match row {
        // Nothing after the cursor, or only events not visible yet.
        Some((CheckpointState::Live, next_visible)) if next_visible != Some(true) => {
            Probe::Idle { pending: next_visible.is_some() }
        }
        _ => Probe::Step,
    })
}

/// Creates the generation's tables and checkpoint if missing; gives readers a view if there
/// is none yet (first build). Returns the checkpoint's state. A retired generation stays
/// retired and gets no tables back (a rebuild may have dropped them).
pub async fn prepare(pool: &PgPool, p: &dyn Projection) -> anyhow::Result<CheckpointState> {
    let (name, version, generation) = (p.name(), p.version(), p.generation());
    let mut tx = pool.begin().await?;
    // Serialise preparation of one projection version across processes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
        .bind(lock_key(name, version))
        .execute(&mut *tx)
        .await?;
    let existing = checkpoint_state(&mut tx, p).await?;
    if existing == Some(CheckpointState::Retired) {
        tx.commit().await?;
        return Ok(CheckpointState::Retired);
    }
    for ddl in p.create_tables() {
        sqlx::query(&ddl).execute(&mut *tx).await.with_context(|| format!("creating tables of {name}"))?;
    }
    // A new checkpoint starts at position zero, except a side-effecting projection's: it acts
    // on what happens from now on, and starts after the last event visible now (a deployment
    // must not mail about the whole history). Events still in flight sort after that one (their
    // transaction ids are at least the horizon), so it acts on them.
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, version, generation, state, last_transaction_id, last_position)
         SELECT $1, $2, $3, $4, coalesce(e.transaction_id, '0'::xid8), coalesce(e.global_position, 0)
         FROM (VALUES (1)) AS one
         LEFT JOIN LATERAL (
             SELECT transaction_id, global_position FROM events
             WHERE $5 AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1) e ON true
         ON CONFLICT (name, version, generation) DO NOTHING",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .bind(CheckpointState::Building)
    .bind(p.kind() == Kind::SideEffecting)
    .execute(&mut *tx)
    .await?;
    for base in p.tables() {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(base).fetch_one(&mut *tx).await?;
        if !exists {
            sqlx::query(&format!(
                "CREATE VIEW {base} AS SELECT * FROM {}",
                table_name(base, version, generation)
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    let state = checkpoint_state(&mut tx, p).await?.context("checkpoint row missing after insert")?;
    if state == CheckpointState::Live {
        // A live build has its indexes; a release may have added some.
        for ddl in p.create_indexes() {
            sqlx::query(&ddl).execute(&mut *tx).await.with_context(|| format!("indexing {name}"))?;
        }
    }
    tx.commit().await?;
    Ok(state)
}

async fn checkpoint_state(
    tx: &mut PgConnection,
    p: &dyn Projection,
) -> sqlx::Result<Option<CheckpointState>> {
    sqlx::query_scalar(
        "SELECT state FROM projection_checkpoints WHERE name = $1 AND version = $2 AND generation = $3",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(p.generation())
    .fetch_optional(&mut *tx)
    .await
}

/// Drops the tables of the retired generations of `p`'s version other than `p`'s own, and
/// returns their names (`pettycash-replay rebuild` calls it once its generation is live).
/// Their checkpoint rows stay, retired, so nothing builds them again ([`prepare`] creates no
/// tables for a retired generation; this takes the same lock, so the two never interleave). A
/// table a view still reads is never dropped: no CASCADE, so that would fail.
pub async fn drop_retired_generations(pool: &PgPool, p: &dyn Projection) -> anyhow::Result<Vec<String>> {
    let (name, version) = (p.name(), p.version());
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
        .bind(lock_key(name, version))
        .execute(&mut *tx)
        .await?;
    let generations: Vec<i32> = sqlx::query_scalar(
        "SELECT generation FROM projection_checkpoints
         WHERE name = $1 AND version = $2 AND state = $4 AND generation <> $3 ORDER BY generation",
    )
    .bind(name)
    .bind(version)
    .bind(p.generation())
    .bind(CheckpointState::Retired)
    .fetch_all(&mut *tx)
    .await?;
    let mut dropped = Vec::new();
    for generation in generations {
        for base in p.tables() {
            let table = table_name(base, version, generation);
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&table)
                .fetch_one(&mut *tx)
                .await?;
            if exists {
                sqlx::query(&format!("DROP TABLE {table}"))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("dropping {table}"))?;
                dropped.push(table);
            }
        }
    }
    tx.commit().await?;
    Ok(dropped)
}

pub struct StepOutcome {
    pub applied: u64,
    pub retired: bool,
    /// Nothing was visible, but events after the cursor exist: their transaction, or an older
    /// one still running (possibly another worker's batch, which sends no notification), holds
    /// the horizon back. Worth trying again in a few milliseconds rather than waiting to be
    /// woken.
    pub pending: bool,
    /// This generation is live after the step (it may just have gone live).
    pub live: bool,
}

/// One batch in one transaction: lock the checkpoint, read visible events after it, apply,
/// move the checkpoint. When a building generation finds nothing visible left, it tries to go
/// live ([`swap`]); events still pending (not visible yet) do not hold it back, or a build
/// under continuous load might never go live.
pub async fn step(pool: &PgPool, p: &dyn Projection, batch_size: i64) -> anyhow::Result<StepOutcome> {
    Ok(step_with(pool, p, batch_size, None, None).await?.0)
}

/// Steps one build batch after batch (workers, `catch_up`, `pettycash-replay rebuild`), reading each
/// next batch on a connection of its own while the current one is applied, so that the
/// server producing events and the client applying them overlap (the two cost about the same
/// when a build catches up).
///
/// Why a batch read ahead is the one [`step`] would read: it holds the first events after the
/// cursor `c` (the current batch's last event) with a transaction id below the horizon `h` it
/// saw. Every transaction below `h` had finished, so no such event can appear later, and
/// every event that becomes visible afterwards has a transaction id of at least `h`, which
/// sorts after all of them. So it is a prefix (the whole, when it is a full batch) of what a
/// step reading after `c` would get at any later time. It is used only if the checkpoint is
/// still at `c` when the next step has locked it; otherwise (the batch rolled back, another
/// process moved on) it is dropped and the step reads as usual. Any prefix is a valid batch,
/// so the batch read ahead may be larger than the one before it: after a full batch the next
/// is read four times as large, up to `max_batch_size`; a step without a batch read ahead
/// reads `batch_size`.
pub struct Stepper<'a> {
    pool: &'a PgPool,
    p: &'a dyn Projection,
    batch_size: i64,
    max_batch_size: i64,
    ahead: Option<ReadAhead>,
}

impl<'a> Stepper<'a> {
    pub fn new(pool: &'a PgPool, p: &'a dyn Projection, batch_size: i64, max_batch_size: i64) -> Self {
        Self { pool, p, batch_size, max_batch_size: max_batch_size.max(batch_size), ahead: None }
    }

    /// One [`step`], with the batch read ahead by the previous one if it still applies.
    pub async fn step(&mut self) -> anyhow::Result<StepOutcome> {
        // Waited for before the step takes a connection: the pool may be small.
        let read = match self.ahead.take() {
            Some(mut ahead) => match (&mut ahead.task).await {
                Ok(Ok(events)) => Some((ahead.after, ahead.limit, events)),
                Ok(Err(e)) => {
                    tracing::debug!(error = format!("{e:#}"), "reading ahead failed; reading again");
                    None
                }
                Err(_) => None,
            },
            None => None,
        };
        let (outcome, ahead) =
            step_with(self.pool, self.p, self.batch_size, read, Some(self.max_batch_size)).await?;
        self.ahead = ahead;
        Ok(outcome)
    }
}

/// The next batch, being read after the event at position `after`, at most `limit` events.
struct ReadAhead {
    after: i64,
    limit: i64,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<EventRow>>>,
}

impl ReadAhead {
    fn start(pool: &PgPool, p: &dyn Projection, after: i64, limit: i64) -> Self {
        let (pool, selection) = (pool.clone(), Selection::for_projection(p));
        let task = tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            reader::visible_after(&mut *conn, &selection, After::Event(after), limit)
                .await
                .context("reading events ahead")
        });
        Self { after, limit, task }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// [`step`], applying `read` (a batch read ahead after the position it names, with the limit
/// it was read with) instead of reading if the checkpoint is at that position, and, given
/// `read_ahead` (the largest batch to grow to) and a full batch, starting to read the next
/// one, four times as large within that bound.
async fn step_with(
    pool: &PgPool,
    p: &dyn Projection,
    batch_size: i64,
    read: Option<(i64, i64, Vec<EventRow>)>,
    read_ahead: Option<i64>,
) -> anyhow::Result<(StepOutcome, Option<ReadAhead>)> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    // A replayable projection's batch need not wait for its commit to reach the disk: a crash
    // loses the last few batches whole (rows and checkpoint together) and they are applied
    // again from the events. A side-effecting one waits, or its effects could repeat.
    let durability = if p.kind() == Kind::Replayable { "off" } else { "on" };
    let (state, txid, position, _): (CheckpointState, String, i64, String) = sqlx::query_as(
        "SELECT state, last_transaction_id::text, last_position, set_config('synchronous_commit', $4, true)
         FROM projection_checkpoints
         WHERE name = $1 AND version = $2 AND generation = $3 FOR UPDATE",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(p.generation())
    .bind(durability)
    .fetch_one(&mut *tx)
    .await
    .context("reading the checkpoint")?;
    if state == CheckpointState::Retired {
        return Ok((StepOutcome { applied: 0, retired: true, pending: false, live: false }, None));
    }
    let (events, limit, was_read_ahead) = match read {
        Some((after, limit, events)) if after == position && !events.is_empty() => (events, limit, true),
        _ => (visible_events(&mut tx, p, &txid, position, batch_size).await?, batch_size, false),
    };
    let live = state == CheckpointState::Live;
    if events.is_empty() {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2))",
        )
        .bind(&txid)
        .bind(position)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if state == CheckpointState::Building {
            let swapped = swap(pool, p, batch_size).await?;
            return Ok((StepOutcome { pending, ..swapped }, None));
        }
        return Ok((StepOutcome { applied: 0, retired: false, pending, live }, None));
    }
    let fetched = started.elapsed();
    let ahead = match (events.last(), read_ahead) {
        (Some(last), Some(max)) if events.len() as i64 >= limit => {
            Some(ReadAhead::start(pool, p, last.global_position, limit.saturating_mul(4).min(max).max(limit)))
        }
        _ => None,
    };
    let phase = if live { Phase::Live } else { Phase::Building };
    advance(&mut tx, p, position, phase, &events).await?;
    let applied = started.elapsed();
    tx.commit().await?;
    p.after_commit();
    tracing::debug!(
        projection = p.name(),
        generation = p.generation(),
        events = events.len(),
        read_ahead = was_read_ahead,
        fetch_ms = fetched.as_secs_f64() * 1e3,
        apply_ms = (applied - fetched).as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - applied).as_secs_f64() * 1e3,
        "batch applied"
    );
    let outcome = StepOutcome { applied: events.len() as u64, retired: false, pending: false, live };
    Ok((outcome, ahead))
}

/// Up to `limit` events after the cursor that no running transaction can still precede.
async fn visible_events(
    tx: &mut PgConnection,
    p: &dyn Projection,
    txid: &str,
    position: i64,
    limit: i64,
) -> anyhow::Result<Vec<EventRow>> {
    let after = After::Cursor { transaction_id: txid, position };
    reader::visible_after(&mut *tx, &Selection::for_projection(p), after, limit)
        .await
        .context("reading events")
}

/// Applies `events` (not empty), which follow checkpoint position `after`, and moves the
/// checkpoint to the last one, in `tx`.
async fn advance(
    tx: &mut PgConnection,
    p: &dyn Projection,
    after: i64,
    phase: Phase,
    events: &[EventRow],
) -> anyhow::Result<()> {
    let Some(last) = events.last() else { return Ok(()) };
    p.apply(&mut *tx, after, phase, events)
        .await
        .with_context(|| format!("applying events to {}", p.name()))?;
    sqlx::query(
        "UPDATE projection_checkpoints
         SET last_transaction_id = (SELECT transaction_id FROM events WHERE global_position = $4),
             last_position = $4, events_applied = events_applied + $5, updated_at = now()
         WHERE name = $1 AND version = $2 AND generation = $3",
    )
    .bind(p.name())
    .bind(p.version())
    .bind(p.generation())
    .bind(last.global_position)
    .bind(events.len() as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A building generation that found nothing visible left tries to go live, in a transaction
/// of its own: the swap lock, then every checkpoint row of the projection (so the live worker
/// stands still), then
///
/// 1. if a newer `(version, generation)` is already live, this build retires and the views
///    stay as they are (checked before anything is touched);
/// 2. it applies whatever became visible since its step looked, so that the views never go
///    back to a position older than the one the live build had reached (if that is a whole
///    batch or more, it stays building and the next step tries again);
/// 3. [`go_live`].
async fn swap(pool: &PgPool, p: &dyn Projection, batch_size: i64) -> anyhow::Result<StepOutcome> {
    let (name, version, generation) = (p.name(), p.version(), p.generation());
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))")
        .bind(swap_key(name))
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(i32, i32, CheckpointState, String, i64)> = sqlx::query_as(
        "SELECT version, generation, state, last_transaction_id::text, last_position
         FROM projection_checkpoints WHERE name = $1 ORDER BY version, generation FOR UPDATE",
    )
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    let (_, _, state, txid, position) = rows
        .iter()
        .find(|r| (r.0, r.1) == (version, generation))
        .context("the checkpoint row of the build going live is missing")?;
    if *state != CheckpointState::Building {
        let live = *state == CheckpointState::Live;
        tx.commit().await?;
        return Ok(StepOutcome { applied: 0, retired: !live, pending: false, live });
    }
    if let Some((v, g, ..)) =
        rows.iter().find(|r| (r.0, r.1) > (version, generation) && r.2 == CheckpointState::Live)
    {
        sqlx::query(
            "UPDATE projection_checkpoints SET state = $4, updated_at = now()
             WHERE name = $1 AND version = $2 AND generation = $3",
        )
        .bind(name)
        .bind(version)
        .bind(generation)
        .bind(CheckpointState::Retired)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(
            projection = name,
            version,
            generation,
            live_version = v,
            live_generation = g,
            "a newer build is live; this one retires"
        );
        return Ok(StepOutcome { applied: 0, retired: true, pending: false, live: false });
    }
    let events = visible_events(&mut tx, p, txid, *position, batch_size).await?;
    advance(&mut tx, p, *position, Phase::Building, &events).await?;
    let applied = events.len() as u64;
    if events.len() as i64 >= batch_size {
        tx.commit().await?;
        p.after_commit();
        return Ok(StepOutcome { applied, retired: false, pending: false, live: false });
    }
    go_live(&mut tx, p, events.last().map_or(*position, |e| e.global_position)).await?;
    tx.commit().await?;
    if applied > 0 {
        p.after_commit();
    }
    tracing::info!(projection = name, version, generation, "projection build is live");
    Ok(StepOutcome { applied, retired: false, pending: false, live: true })
}

/// The atomic swap: the build completes its tables ([`Projection::before_live`], at
/// checkpoint `position`) and builds its indexes, readers' views now point at its tables;
/// older versions and older generations of this version retire (a newer one still building
/// goes on and takes over later). The caller holds the swap lock and has checked that nothing
/// newer is live.
async fn go_live(tx: &mut PgConnection, p: &dyn Projection, position: i64) -> anyhow::Result<()> {
    let (name, version, generation) = (p.name(), p.version(), p.generation());
    sqlx::query(
        "UPDATE projection_checkpoints SET state = $4, updated_at = now()
         WHERE name = $1 AND (version, generation) < ($2, $3) AND state <> $4",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .bind(CheckpointState::Retired)
    .execute(&mut *tx)
    .await?;
    p.before_live(&mut *tx, position)
        .await
        .with_context(|| format!("completing {name} before it goes live"))?;
    for ddl in p.create_indexes() {
        sqlx::query(&ddl).execute(&mut *tx).await.with_context(|| format!("indexing {name}"))?;
    }
    // Statistics before the first query: a table filled from zero has none until autovacuum
    // comes round, and meanwhile the planner misjudges how rare a company's rows are (a list
    // that takes 1 ms with them took 18–186 ms without, right after a rebuild).
    for base in p.tables() {
        sqlx::query(&format!("ANALYZE {}", table_name(base, version, generation)))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("analysing {name}"))?;
    }
    for base in p.tables() {
        sqlx::query(&format!("DROP VIEW IF EXISTS {base}")).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "CREATE VIEW {base} AS SELECT * FROM {}",
            table_name(base, version, generation)
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET state = $4, live_since = now(), updated_at = now()
         WHERE name = $1 AND version = $2 AND generation = $3",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .bind(CheckpointState::Live)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
