//! Benchmark: projection catch-up from position zero.
//!
//! `cargo run --release -p pettycash-tests --example projection_catchup -- [REQUISITIONS]`
//! Fills a fresh database with `bench/generate_events.sql` (~5.3 events per requisition, 100
//! funds), then runs every projection from zero and prints events/s. Results go into
//! `docs/performance.md`; nothing here is asserted.
//!
//! `... --example projection_catchup -- --database URL [PROJECTION ...]` instead uses a store
//! that already holds events (generating 1M events takes ~35 s and holds the snapshot horizon
//! of the whole cluster meanwhile). Each projection is built from zero as a new generation of
//! its version beside whatever is there, goes live, and the generations it replaces are
//! dropped, as `pettycash-replay rebuild` does; so the database stays usable and the
//! example can be run again on it. `BATCH` sets the batch size in both modes (default: the
//! engine's).

use pettycash_projections::engine::drop_retired_generations;
use pettycash_projections::{Engine, EngineOptions, Projection};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch: i64 = std::env::var("BATCH")
        .ok()
        .map(|b| b.parse())
        .transpose()?
        .unwrap_or(EngineOptions::default().batch_size);
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let (url, pool, only) = match args.first().map(String::as_str) {
        Some("--database") => {
            let url = args.get(1).ok_or_else(|| anyhow::anyhow!("--database needs a URL"))?.clone();
            // As the service connects (no TLS to a loopback server unless the URL asks for it).
            let pool = pettycash_api::database::pool(&url, 4).await?;
            (url, pool, args[2..].to_vec())
        }
        _ => {
            let requisitions: i64 = args.first().map(|a| a.parse()).transpose()?.unwrap_or(200_000);
            let (url, pool) = generate(requisitions).await?;
            (url, pool, Vec::new())
        }
    };
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;

    for projection in pettycash_projections::replayable() {
        let name = projection.name();
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let projection = next_generation(&pool, projection).await?;
        let engine = Engine::new(
            pool.clone(),
            vec![projection.clone()],
            EngineOptions { batch_size: batch, ..Default::default() },
        );
        let started = Instant::now();
        let applied = engine.catch_up().await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name:<14} {applied} events in {secs:.2} s = {:.0} events/s (batch {batch}, generation {})",
            applied as f64 / secs,
            projection.generation()
        );
        drop_retired_generations(&pool, projection.as_ref()).await?;
    }
    println!("database: {url}");
    Ok(())
}

/// A fresh database filled by the generator.
async fn generate(requisitions: i64) -> anyhow::Result<(String, PgPool)> {
    let (url, pool) = pettycash_tests::fresh_database().await;
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/generate_events.sql");
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .args(["-q", &url, "-v", "funds=100", "-v", &format!("requisitions={requisitions}"), "-f", sql])
        .status()?;
    anyhow::ensure!(status.success(), "generator failed");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await?;
    println!("generated {events} events in {:.1} s", started.elapsed().as_secs_f64());
    Ok((url, pool))
}

/// `p` at a generation of its version that has never been built here (0 on a fresh store).
async fn next_generation(pool: &PgPool, p: Arc<dyn Projection>) -> anyhow::Result<Arc<dyn Projection>> {
    let next: Option<i32> = sqlx::query_scalar(
        "SELECT max(generation) + 1 FROM projection_checkpoints WHERE name = $1 AND version = $2",
    )
    .bind(p.name())
    .bind(p.version())
    .fetch_one(pool)
    .await?;
    Ok(match next {
        Some(g) => p.at_generation(g),
        None => p,
    })
}
