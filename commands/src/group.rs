//! Group commit: the events of commands that are ready at the same moment are appended by one
//! statement in one transaction.
//!
//! Most of what a single-event append costs PostgreSQL is per transaction, not per row: the
//! statement's execution set-up and the commit (WAL flush, the transaction's end in shared
//! memory). (Projection workers are woken after the commit, outside the transaction:
//! [`crate::wake`].) On the 2-core development machine an
//! append of one event per transaction reaches ~3,700 transactions/s at 32 clients, while four
//! events per transaction reach ~13,000 events/s (docs/performance.md). So a command that finds
//! other commands' appends waiting joins them.
//!
//! How: an append without side writes queues its rows. If fewer than [`FLUSHERS`] flushers
//! run, it starts one (a spawned task, so a caller that goes away never leaves the others
//! waiting). A flusher takes what is queued (at most [`MAX_GROUP`] commands, never two that
//! append to the same stream), sends it as one `INSERT`, answers each command, and goes on
//! until the queue is empty. A command that arrives alone is appended at once, as before: no
//! timer, no waiting for company; groups form only while other groups are in flight.
//!
//! What each command keeps, grouped or not:
//! - its own expected sequence per stream (the primary key refuses a stale one). A group that
//!   fails for any reason (a lost race, a constraint, a dropped connection) is retried one
//!   command at a time, so each command gets its own answer: exactly the one it would have
//!   got alone, and the others are not held back by it.
//! - its own session guard, checked per row inside the statement: a command whose session
//!   ended or whose user's roles changed writes nothing, the rest of its group is written.
//! - its own metadata (actor, request id, time), and each event its own MAC in it.
//! - its events in order: rows are inserted in the order given, so positions increase along
//!   each stream (the hash trigger also reads each row's predecessor).
//!
//! Commands of one group share a transaction id and `recorded_at` (the transaction's start),
//! as events of one command always did.

use crate::store::AppendError;
use crate::SessionGuard;
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Group appends in flight at once (per event store, i.e. per process). One: while a group is
/// being written the next one gathers, so groups grow with the load by themselves. At 32
/// connections on the 2-core machine one flusher gave 3,039 commands/s, two 2,611, four 2,074
/// (docs/performance.md): more groups in flight are smaller, and each costs a transaction.
pub const FLUSHERS: usize = 1;

/// Most commands in one group.
pub const MAX_GROUP: usize = 64;

/// Commands of a failed group appended at once while each is retried alone.
const RETRY_ALONE: usize = 4;

/// Postgres error code for a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// Raised by `SideWrite::KeepAnAdmin` when no active admin would be left.
const NO_ADMIN_LEFT: &str = "P0A01";

/// One event row of a command.
pub(crate) struct Row {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    /// The command's metadata with this event's MAC (`EventKey::sign`).
    pub metadata: Value,
}

/// One command's append: its rows in order and its guard.
pub(crate) struct Append {
    pub rows: Vec<Row>,
    pub guard: Option<SessionGuard>,
}

impl Append {
    fn streams(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.rows.iter().map(|r| (r.aggregate_type, r.aggregate_id.as_str()))
    }

    /// The aggregate type a conflict is reported for: the first stream's.
    pub fn kind(&self) -> &'static str {
        self.rows.first().map(|r| r.aggregate_type).unwrap_or("aggregate")
    }
}

struct Waiting {
    append: Append,
    reply: oneshot::Sender<Result<i64, AppendError>>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    flushers: usize,
}

/// The queue of appends waiting for a flusher, shared by the clones of one event store.
#[derive(Clone, Default)]
pub(crate) struct GroupCommit {
    queue: Arc<Mutex<Queue>>,
}

impl GroupCommit {
    /// Appends `append`'s rows, alone or with others ready at the same time. Returns the global
    /// position of its last event.
    pub async fn append(&self, pool: &PgPool, append: Append) -> Result<i64, AppendError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Waiting { append, reply });
            let start = queue.flushers < FLUSHERS;
            if start {
                queue.flushers += 1;
            }
            start
        };
        if start {
            let (this, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { this.flush(pool).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(AppendError::Database(sqlx::Error::Protocol("the group append was abandoned".into())))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes groups off the queue and appends them until it is empty.
    async fn flush(self, pool: PgPool) {
        let mut running = Running { commit: self, pool, done: false };
        loop {
            let group = {
                let mut queue = running.commit.lock();
                if queue.waiting.is_empty() {
                    queue.flushers -= 1;
                    running.done = true;
                    return;
                }
                take_group(&mut queue.waiting)
            };
            let pool = &running.pool;
            if group.len() == 1 {
                let Waiting { append, reply } = group.into_iter().next().expect("one");
                let _ = reply.send(append_one(pool, &append).await);
                continue;
            }
            let appends: Vec<&Append> = group.iter().map(|w| &w.append).collect();
            match insert(pool, &appends).await {
                Ok(positions) => {
                    for w in group {
                        let last = w
                            .append
                            .streams()
                            .filter_map(|(t, id)| positions.get(&(t.to_string(), id.to_string())).copied())
                            .max();
                        let _ = w.reply.send(last.ok_or(AppendError::SessionChanged));
                    }
                }
                Err(e) => {
                    // Which command caused it is not known: each runs alone for its own answer,
                    // a few side by side (they touch different streams; more would take more
                    // of the pool's connections).
                    tracing::debug!(error = %e, commands = group.len(), "group append failed; one at a time");
                    futures::stream::iter(group)
                        .for_each_concurrent(RETRY_ALONE, |w| async move {
                            let _ = w.reply.send(append_one(pool, &w.append).await);
                        })
                        .await;
                }
            }
        }
    }
}

/// A flusher while it runs. If it ends without emptying the queue (it panicked, or the
/// runtime is shutting down), the commands of the group it held get an error (their reply
/// senders are dropped) and another flusher is started for those still queued, so that they
/// never wait for a flusher that is gone.
struct Running {
    commit: GroupCommit,
    pool: PgPool,
    done: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let restart = {
            let mut queue = self.commit.lock();
            let restart = !queue.waiting.is_empty() && tokio::runtime::Handle::try_current().is_ok();
            if !restart {
                queue.flushers -= 1;
            }
            restart
        };
        if restart {
            // The count of running flushers stays: this one hands over.
            let (commit, pool) = (self.commit.clone(), self.pool.clone());
            tokio::spawn(async move { commit.flush(pool).await });
        }
    }
}

/// The next group: queued appends in order, skipping (and leaving queued) any that touches a
/// stream already in the group, at most [`MAX_GROUP`].
fn take_group(waiting: &mut VecDeque<Waiting>) -> Vec<Waiting> {
    let mut group = Vec::new();
    let mut streams: HashSet<(&'static str, String)> = HashSet::new();
    let mut left = VecDeque::new();
    while let Some(w) = waiting.pop_front() {
        if group.len() >= MAX_GROUP {
            left.push_back(w);
            break;
        }
        if w.append.streams().any(|(t, id)| streams.contains(&(t, id.to_string()))) {
            left.push_back(w);
            continue;
        }
        streams.extend(w.append.streams().map(|(t, id)| (t, id.to_string())));
        group.push(w);
    }
    left.append(waiting);
    *waiting = left;
    group
}

/// One command alone (on a pool: autocommit; or inside the caller's transaction), with its
/// failure classified. Returns the position of its last event.
pub(crate) async fn append_one<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    append: &Append,
) -> Result<i64, AppendError> {
    match insert(executor, &[append]).await {
        Ok(positions) => positions.into_values().max().ok_or(AppendError::SessionChanged),
        Err(e) => Err(classify(e, append.kind())),
    }
}

/// A failed append's cause: a stale expected sequence, another unique constraint, or the
/// database.
pub(crate) fn classify(e: sqlx::Error, kind: &'static str) -> AppendError {
    if let Some(db) = e.as_database_error() {
        if db.code().as_deref() == Some(NO_ADMIN_LEFT) {
            return AppendError::Rule(pettycash_domain::DomainError::LastAdmin);
        }
        if db.code().as_deref() == Some(UNIQUE_VIOLATION) {
            let constraint = db.constraint().unwrap_or_default().to_string();
            if constraint == "events_pkey" {
                return AppendError::Conflict(kind);
            }
            return AppendError::Unique(constraint);
        }
    }
    AppendError::Database(e)
}

/// The statement that appends rows, each row guarded by its command's session (when it has a
/// guard): the session is live, its user active, their roles, sponsors and unit as the command
/// saw them. Rows
/// are inserted in the order given (a stream's events follow each other, and the hash trigger
/// reads each one's predecessor). Returns the position of each stream's last row written.
const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
     SELECT x.t, x.i, x.s, x.e, x.v, x.p, x.m
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[],
                 $8::bytea[], $9::text[], $10::text[], $11::uuid[])
          WITH ORDINALITY AS x(t, i, s, e, v, p, m, g, r, o, u, n)
     WHERE x.g IS NULL OR EXISTS (
        SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.token_hash = x.g AND s.expires_at > now() AND s.revoked_at IS NULL
          AND u.active AND u.roles = string_to_array(x.r, ',')
          AND u.sponsors = string_to_array(x.o, ',')::uuid[]
          AND u.unit_id IS NOT DISTINCT FROM x.u)
     ORDER BY x.n
     RETURNING aggregate_type, aggregate_id, global_position";

/// Appends the rows of `appends` in one statement. Returns the position of each stream's
/// last row written, by (aggregate type, aggregate id).
async fn insert<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    appends: &[&Append],
) -> sqlx::Result<HashMap<(String, String), i64>> {
    let rows = appends.iter().map(|a| a.rows.len()).sum();
    let mut types = Vec::with_capacity(rows);
    let mut ids = Vec::with_capacity(rows);
    let mut sequences = Vec::with_capacity(rows);
    let mut event_types = Vec::with_capacity(rows);
    let mut versions = Vec::with_capacity(rows);
    let mut payloads = Vec::with_capacity(rows);
    let mut metadata = Vec::with_capacity(rows);
    let mut tokens = Vec::with_capacity(rows);
    let mut roles = Vec::with_capacity(rows);
    let mut sponsors = Vec::with_capacity(rows);
    let mut units = Vec::with_capacity(rows);
    for append in appends {
        for row in &append.rows {
            types.push(row.aggregate_type);
            ids.push(row.aggregate_id.as_str());
            sequences.push(row.sequence);
            event_types.push(row.event_type.as_str());
            versions.push(row.event_version.as_str());
            payloads.push(&row.payload);
            metadata.push(&row.metadata);
            tokens.push(append.guard.as_ref().map(|g| g.token_hash.as_slice()));
            roles.push(append.guard.as_ref().map(|g| g.roles.join(",")));
            sponsors.push(
                append
                    .guard
                    .as_ref()
                    .map(|g| g.sponsors.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")),
            );
            units.push(append.guard.as_ref().and_then(|g| g.unit_id));
        }
    }
    let written: Vec<(String, String, i64)> = sqlx::query_as(INSERT)
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .bind(&event_types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .bind(&tokens)
        .bind(&roles)
        .bind(&sponsors)
        .bind(&units)
        .fetch_all(executor)
        .await?;
    let mut positions: HashMap<(String, String), i64> = HashMap::new();
    for (aggregate_type, aggregate_id, position) in written {
        let entry = positions.entry((aggregate_type, aggregate_id)).or_insert(position);
        *entry = (*entry).max(position);
    }
    Ok(positions)
}
