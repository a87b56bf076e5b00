//! Benchmark: projection catch-up from position zero.
//!
//! `cargo run --release -p pettycash-tests --example projection_catchup -- [REQUISITIONS]`
//! Fills a fresh database with `bench/generate_events.sql` (~5.3 events per requisition, 100
//! funds), then runs every projection from zero and prints events/s. Results go into
//! `docs/performance.md`; nothing here is asserted.

use pettycash_projections::{Engine, EngineOptions};
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requisitions: i64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let batch: i64 = std::env::var("BATCH").ok().map(|b| b.parse()).transpose()?.unwrap_or(1000);
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let (url, pool) = pettycash_tests::fresh_database().await;
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/generate_events.sql");
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .args(["-q", &url, "-v", "funds=100", "-v", &format!("requisitions={requisitions}"), "-f", sql])
        .status()?;
    anyhow::ensure!(status.success(), "generator failed");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await?;
    println!("generated {events} events in {:.1} s", started.elapsed().as_secs_f64());
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;

    for projection in pettycash_projections::all() {
        let name = projection.name();
        let engine = Engine::new(
            pool.clone(),
            vec![projection],
            EngineOptions { batch_size: batch, ..Default::default() },
        );
        let started = Instant::now();
        let applied = engine.catch_up().await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name:<14} {applied} events in {secs:.2} s = {:.0} events/s (batch {batch})",
            applied as f64 / secs
        );
    }
    println!("database: {url}");
    Ok(())
}
