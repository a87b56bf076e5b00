//! How projection workers learn that events were committed, without any command's commit
//! waiting for it.
//!
//! PostgreSQL delivers `NOTIFY` at commit under one cluster-wide lock: every transaction that
//! notifies queues behind every other one that does. While a trigger on `events` notified
//! (migrations 0003 to 0008), that lock set the ceiling for all writers together (4.0k
//! single-event transactions/s against 9.7k without it on the 2-core development machine).
//! Now no command's transaction notifies:
//!
//! - **The same process** learns in memory: [`EventStore::append`](crate::EventStore::append)
//!   calls [`Notifier::committed`] after its transaction committed, which bumps a process-wide
//!   counter that every [`subscribe`]r (the projection engine's listener) watches.
//! - **Other processes** (a `pettycash project` process, other API nodes) get one `NOTIFY` on
//!   [`CHANNEL`] per burst of commits: a task per event store sends it in a transaction of its
//!   own, and whatever commits while one is on its way, or within [`MIN_SPACING`] after it,
//!   is covered by the next one. So at most one notification per store is in flight (at most
//!   200 a second), and only these notifications queue on the lock, never a command. The notification's transaction does not wait for its commit record
//!   to reach the disk (`synchronous_commit = off`): it is a hint, and a lost one only delays a
//!   worker until its next poll.
//! - Workers still poll (500 ms) for notifications lost to a dropped connection and for
//!   events written by anything else (psql, the data generator).
//!
//! A notification carries the sending process's [`process_token`], so a listener can ignore
//! the ones its own process sent: it already heard of those commits in memory.

use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::watch;

/// The `LISTEN`/`NOTIFY` channel of committed events.
pub const CHANNEL: &str = "pettycash_events";

/// Commits of events in this process, counted.
static LOCAL: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// A random token naming this process in the notifications it sends.
static TOKEN: LazyLock<String> = LazyLock::new(|| format!("{:016x}", rand::random::<u64>()));

/// After a failed notification, the wait before the next attempt.
const RETRY: Duration = Duration::from_secs(1);

/// The least time between two notifications of one event store: under a steady load, at most
/// 200 a second (each is a transaction, and wakes every listening process), whatever the
/// command rate; a commit after a quiet spell is announced at once. Workers in other
/// processes learn of a commit at most this much later than they would from the commit
/// itself (they let events gather 10 ms after a batch anyway).
pub const MIN_SPACING: Duration = Duration::from_millis(5);

/// A receiver that changes whenever events were committed in this process (by any event
/// store of any database: a spurious wake-up only costs the woken worker a look).
pub fn subscribe() -> watch::Receiver<u64> {
    LOCAL.subscribe()
}

/// The payload of this process's notifications.
pub fn process_token() -> &'static str {
    TOKEN.as_str()
}

/// One event store's notifications to other processes. Clones share the one sender task.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    commits: watch::Sender<u64>,
    started: AtomicBool,
}

impl Notifier {
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner { pool, commits: watch::channel(0).0, started: AtomicBool::new(false) }),
        }
    }

    /// Events were committed: wake this process's workers now and other processes' soon.
    /// Never waits.
    pub fn committed(&self) {
        // The sender task subscribes when it starts: start it first, so that it sees this commit.
        if !self.inner.started.load(Ordering::Relaxed) {
            self.start();
        }
        LOCAL.send_modify(|n| *n = n.wrapping_add(1));
        self.inner.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts the sender task (once, and only inside a runtime: without one there is nobody
    /// to wake in this process, and other processes poll).
    fn start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut commits = self.inner.commits.subscribe();
        // The task holds the pool but not the sender: it ends when the last clone of this
        // notifier (and so of its event store) is dropped.
        let pool = self.inner.pool.clone();
        runtime.spawn(async move {
            while commits.changed().await.is_ok() {
                commits.borrow_and_update();
                while let Err(e) = notify(&pool).await {
                    tracing::warn!(error = %e, "could not notify other processes of new events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        closed = commits.changed() => if closed.is_err() { return },
                    }
                }
                // Commits meanwhile are covered by the next notification.
                tokio::time::sleep(MIN_SPACING).await;
            }
        });
    }
}

/// One notification, in a transaction of its own that does not wait for the disk.
async fn notify(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(process_token())
        .execute(pool)
        .await
        .map(|_| ())
}
