//! Failing fast while PostgreSQL is down.
//!
//! Without this, every request during an outage waits for a pool connection until the pool's
//! acquire timeout (5 s): the pool keeps retrying a refused connection for that whole time.
//! Instead, the first request that fails with "database unavailable" ([`is_unavailable`])
//! starts a prober ([`DbHealth::suspect`]): one task at a time opens a direct connection
//! (never the pool, whose acquire would retry for its whole timeout) with a short timeout,
//! every [`PROBE_INTERVAL`]. While the probe fails the database is marked down and
//! [`require_database`] answers every request that needs it with 503 `database_unavailable`
//! at once, without touching the pool; the first probe that connects marks it up again.
//!
//! A failure is only a *suspicion*: a pool timeout under heavy load while PostgreSQL is fine
//! makes the probe succeed, and nothing is refused.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest one probe may take (connect and close). A server that neither accepts nor refuses
/// within this time (a network partition) counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between probes while the database is down: how soon requests go through again
/// after PostgreSQL is back.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Marks a response as "the database was unavailable" for [`require_database`]; set by
/// [`ApiError`]'s `IntoResponse`.
#[derive(Debug, Clone, Copy)]
pub struct Unavailable;

/// Whether `err` means the database cannot be reached or is going away, rather than that
/// this request was wrong or the code is: the pool found no connection in time or is closed;
/// the socket failed (I/O, TLS); the byte stream stopped making sense (`Protocol`: what a
/// connection cut mid-message leaves); or PostgreSQL said so itself: SQLSTATE class `08`
/// (connection exception), `57P01` admin shutdown (also a fast shutdown's answer to a
/// statement in flight), `57P02` crash shutdown, `57P03` cannot connect now (starting up or
/// shutting down).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// Whether any cause in `err`'s chain is a [`sqlx::Error`] that [`is_unavailable`]: errors
/// reach the edge wrapped in context (`loading Requisition …`), not only at the top.
pub fn caused_by_outage(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(is_unavailable))
}

/// What the probes found so far.
#[derive(Debug, Clone, Copy, Default)]
struct Verdict {
    /// The last probe failed: answer 503 without touching the pool.
    down: bool,
    /// Probes completed, so that a request can wait for the next one.
    probes: u64,
}

/// Whether the database is known to be down; cheap to clone (one per [`crate::state::AppState`]).
#[derive(Clone)]
pub struct DbHealth {
    inner: Arc<Inner>,
}

struct Inner {
    options: Arc<PgConnectOptions>,
    verdict: watch::Sender<Verdict>,
    /// A prober task is running (at most one).
    probing: AtomicBool,
}

impl DbHealth {
    /// Probes with the connection options of `pool` (same server, user and TLS settings).
    pub fn new(pool: &PgPool) -> Self {
        let (verdict, _) = watch::channel(Verdict::default());
        Self {
            inner: Arc::new(Inner {
                options: pool.connect_options(),
                verdict,
                probing: AtomicBool::new(false),
            }),
        }
    }

    /// The last probe failed and none has succeeded since.
    pub fn is_down(&self) -> bool {
        self.inner.verdict.borrow().down
    }

    /// A request found the database unavailable: make sure a prober runs, and wait (at most
    /// about one [`PROBE_TIMEOUT`]) for its next verdict, so that by the time this request
    /// answers, the requests after it are already refused at once if the database is down.
    pub async fn suspect(&self) {
        let mut verdicts = self.inner.verdict.subscribe();
        let seen = verdicts.borrow_and_update().probes;
        if !self.inner.probing.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().probe_until_up());
        }
        let next = verdicts.wait_for(|v| v.probes > seen);
        let _ = tokio::time::timeout(PROBE_TIMEOUT + PROBE_INTERVAL, next).await;
    }

    /// Resolves once the database is marked down (at once if it is).
    async fn until_down(&self) {
        let mut verdicts = self.inner.verdict.subscribe();
        let _ = verdicts.wait_for(|v| v.down).await;
    }

    async fn probe_until_up(self) {
        loop {
            let down = !probe(&self.inner.options).await;
            if !down {
                // Before the verdict: a `suspect` that still sees this prober running is then
                // sure to see the verdict; one that comes after starts a new prober.
                self.inner.probing.store(false, Ordering::SeqCst);
            }
            self.inner.verdict.send_modify(|v| {
                if v.down != down {
                    if down {
                        tracing::error!("database unreachable: answering 503 until a probe connects");
                    } else {
                        tracing::info!("database reachable again");
                    }
                }
                v.down = down;
                v.probes += 1;
            });
            if !down {
                return;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}

/// Opens and closes one direct connection. False only when that fails in a way
/// [`is_unavailable`] calls an outage (or takes longer than [`PROBE_TIMEOUT`]); another
/// failure (a wrong password after a rotation, `too_many_connections`) is not something to
/// refuse every request for, while the pool's open connections may still work.
async fn probe(options: &PgConnectOptions) -> bool {
    let attempt = async {
        let conn = PgConnection::connect_with(options).await?;
        conn.close().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) if is_unavailable(&e) => {
            tracing::debug!(error = %e, "database probe failed");
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database probe failed, not counted as an outage");
            true
        }
        Err(_) => false,
    }
}

/// Middleware for every route that needs the database: 503 at once while it is known to be
/// down; otherwise runs the request, and when its answer says the database was unavailable,
/// has that checked before answering.
///
/// A request already running when the database is marked down is answered 503 at once too,
/// and dropped: otherwise whatever waits for a pool connection (payments queued behind one
/// another on their fund's lock) would still wait 5 s each. Dropping is safe: every append is
/// one transaction (a dropped one rolls back), and a group append runs in a task of its own
/// and ends as it would have. Such a command may still have been recorded, as when a
/// connection breaks at the commit: a 503 in an outage does not say it was not, which is what
/// `Idempotency-Key` is for.
pub async fn require_database(State(health): State<DbHealth>, req: Request, next: Next) -> Response {
    if health.is_down() {
        return ApiError::database_unavailable().into_response();
    }
    let response = tokio::select! {
        biased;
        response = next.run(req) => response,
        () = health.until_down() => return ApiError::database_unavailable().into_response(),
    };
    if response.extensions().get::<Unavailable>().is_some() {
        health.suspect().await;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_other_database_errors() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unavailable(&io));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::Protocol("unexpected end".into())));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn the_whole_cause_chain_is_searched() {
        let wrapped = anyhow::Error::new(sqlx::Error::PoolClosed).context("loading Requisition 1");
        assert!(caused_by_outage(&wrapped.context("paying")));
        assert!(!caused_by_outage(&anyhow::anyhow!("loading Requisition 1: pool timed out")));
    }
}
