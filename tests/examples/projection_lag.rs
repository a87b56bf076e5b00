//! Benchmark: projection lag under a steady command load.
//!
//! ```sh
//! cargo run --release -p pettycash-tests --example projection_lag -- [COMMANDS] [PER_SECOND] [--workers in-process|process]
//! ```
//!
//! Starts the real server on a fresh database and issues create-and-submit commands in-process
//! on an open-loop schedule (command *i* starts at *i / rate* s, whatever the earlier ones are
//! doing). For each it measures the time from its commit until the `requisitions` projection
//! has applied its event: one watcher looks at the checkpoint every millisecond for every
//! command still waiting. Prints p50/p95/p99/max. Nothing is asserted; results go into
//! `docs/performance.md`.
//!
//! `--workers in-process` (default): the workers run inside the server, as with
//! `pettycash serve`, and are woken in memory. `--workers process`: they run in a separate
//! `pettycash project` process (the binary `$PETTYCASH`, else
//! `$CARGO_TARGET_DIR/release/pettycash`, else `target/release/pettycash`), woken by the
//! notifications the commands' process sends.

use pettycash_commands::service::NewRequisition;
use pettycash_commands::{CommandContext, RequestMeta};
use pettycash_domain::{Actor, Role};
use pettycash_projections::CheckpointState;
use pettycash_tests::TestApp;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut positional = Vec::new();
    let mut in_process = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => match args.next().as_deref() {
                Some("in-process") => in_process = true,
                Some("process") => in_process = false,
                other => anyhow::bail!("--workers in-process|process, not {other:?}"),
            },
            _ => positional.push(arg),
        }
    }
    let commands: usize = positional.first().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rate: f64 = positional.get(1).map(|a| a.parse()).transpose()?.unwrap_or(100.0);

    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.run_projections = in_process;
    })
    .await;
    let _workers = if in_process { None } else { Some(Workers::start(&app.database_url)?) };
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000000").await;
    wait_live(&app.pool).await?;
    let ctx = CommandContext::user(Actor::new(staff.id, [Role::Staff]), RequestMeta::default());

    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch(app.pool.clone(), committed_rx, commands));
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut late = 0usize;
    for i in 0..commands {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        if due.elapsed() > Duration::from_millis(5) {
            late += 1;
        }
        let (service, ctx, committed) = (app.service.clone(), ctx.clone(), committed_tx.clone());
        tokio::spawn(async move {
            let input = NewRequisition {
                fund_id: fund,
                amount: Decimal::from(10 + (i % 90) as i64),
                currency: None,
                purpose: format!("Lag probe {i}"),
                payee: None,
                category: None,
                submit: true,
                origin: None,
                advance: false,
                urgent_reason: None,
            };
            match service.create_requisition(&ctx, input).await {
                Ok(outcome) => {
                    let _ = committed.send((outcome.position, Instant::now()));
                }
                Err(e) => eprintln!("command {i} failed: {e}"),
            }
        });
    }
    drop(committed_tx);
    let mut lags = watcher.await??;
    let sent = start.elapsed().as_secs_f64();
    lags.sort();
    let pct =
        |p: f64| lags[((lags.len() as f64 * p).ceil() as usize).min(lags.len()) - 1].as_secs_f64() * 1e3;
    println!(
        "{} commands at {rate}/s ({:.0}/s achieved, {late} started ≥ 5 ms late), workers {}: \
         lag p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        commands as f64 / sent,
        if in_process { "in-process" } else { "in a `pettycash project` process" },
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lags.last().unwrap().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Until `expected` commands were seen applied (or the senders are gone and nothing waits):
/// every millisecond, which waiting commands the live `requisitions` checkpoint covers.
async fn watch(
    pool: PgPool,
    mut committed: mpsc::UnboundedReceiver<(i64, Instant)>,
    expected: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut waiting: HashMap<i64, Instant> = HashMap::new();
    let mut lags = Vec::with_capacity(expected);
    let mut open = true;
    while open || !waiting.is_empty() {
        loop {
            match committed.try_recv() {
                Ok((position, at)) => {
                    waiting.insert(position, at);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !waiting.is_empty() {
            let positions: Vec<i64> = waiting.keys().copied().collect();
            let reached: Vec<i64> = sqlx::query_scalar(
                "SELECT e.global_position FROM events e, projection_checkpoints c
                 WHERE e.global_position = ANY($1) AND c.name = 'requisitions' AND c.state = $2
                   AND (e.transaction_id, e.global_position) <= (c.last_transaction_id, c.last_position)",
            )
            .bind(&positions)
            .bind(CheckpointState::Live)
            .fetch_all(&pool)
            .await?;
            let now = Instant::now();
            for position in reached {
                if let Some(at) = waiting.remove(&position) {
                    lags.push(now - at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(lags)
}

/// Both projections live and at the end of the store (the set-up's events applied).
async fn wait_live(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (VALUES ('requisitions'), ('cash')) AS p(name)
             WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c
                               WHERE c.name = p.name AND c.state = $1
                                 AND c.last_position >= (SELECT coalesce(max(global_position), 0) FROM events))",
        )
        .bind(CheckpointState::Live)
        .fetch_one(pool)
        .await?;
        if behind == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the projections did not catch up with the set-up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `pettycash project` process, killed on drop.
struct Workers(std::process::Child);

impl Workers {
    fn start(database_url: &str) -> anyhow::Result<Self> {
        let binary = std::env::var_os("PETTYCASH").map(PathBuf::from).unwrap_or_else(|| {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join("release/pettycash")
        });
        let child = Command::new(&binary)
            .arg("project")
            .env("DATABASE_URL", database_url)
            .env("DEBUG", "True")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {} project: {e}", binary.display()))?;
        Ok(Self(child))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
