//! Benchmark: projection lag under a steady command load.
//!
//! `cargo run --release -p pettycash-tests --example projection_lag -- [COMMANDS] [PER_SECOND]`
//! Starts the real server (projection workers inside) on a fresh database, then issues
//! requisition commands at a fixed rate in-process and measures, for each, the time from the
//! command's commit until both projections have applied its event (polled every 1 ms).
//! Prints p50/p95/p99/max. Nothing here is asserted; results go into `docs/performance.md`.

use pettycash_commands::service::NewRequisition;
use pettycash_commands::{CommandContext, RequestMeta};
use pettycash_domain::{Actor, Role};
use pettycash_tests::TestApp;
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let commands: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let rate: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100.0);
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000000").await;
    let ctx = CommandContext::user(Actor::new(staff.id, [Role::Staff]), RequestMeta::default());
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    let mut lags = Vec::with_capacity(commands);
    for i in 0..commands {
        ticker.tick().await;
        let input = NewRequisition {
            fund_id: fund,
            amount: Decimal::from(10 + (i % 90) as i64),
            currency: None,
            purpose: format!("Lag probe {i}"),
            payee: None,
            category: None,
            submit: true,
        };
        let outcome =
            app.service.create_requisition(&ctx, input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let committed = Instant::now();
        loop {
            let reached = pettycash_projections::wait::wait_for(
                &app.pool,
                &["requisitions"],
                outcome.position,
                Duration::ZERO,
            )
            .await?;
            if reached {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lags.push(committed.elapsed());
    }
    lags.sort();
    let pct =
        |p: f64| lags[((lags.len() as f64 * p).ceil() as usize).min(lags.len()) - 1].as_secs_f64() * 1e3;
    println!(
        "{commands} commands at {rate}/s: lag p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lags.last().unwrap().as_secs_f64() * 1e3
    );
    Ok(())
}
