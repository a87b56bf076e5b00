//! The `requisitions` read model does not depend on how its events were batched, nor on the
//! rows the projection keeps in memory between batches: built with batches of 1, 7 and 1,000
//! over a realistic generated history (`bench/generate_events.sql`: edits, changes requested,
//! rejections, cancellations, chains of one to three steps, payments until floats run out),
//! its three tables are the same row for row, and the dashboard totals are exactly what the
//! rows add up to. The memory is dropped whenever it may be stale: a batch that rolls back
//! after the projection applied it, or another projection object (another process) that
//! applied batches of the same build meanwhile.
//!
//! Builds from one object keep the totals per status in memory and write them when they go
//! live; builds whose memory was dropped sum them from the rows at go-live. The first test
//! builds the first way, the other two the second, and all compare with the same tables.

use crate::{AfterApply, Wrapped};
use pettycash_projections::engine::{prepare, step};
use pettycash_projections::models::requisitions::{Requisitions, PAID_DAILY, TABLE, TOTALS};
use pettycash_projections::{table_name, Engine, EngineOptions, Projection};
use pettycash_tests::fresh_database;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERSION: i32 = 2;
const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/generate_events.sql");
/// Bounds a hang only (another test's open transaction can hold the horizon back).
const DEADLINE: Duration = Duration::from_secs(120);

/// 5 funds, 400 requisitions by 10 staff (so that each requester's totals move often): about
/// 2,100 events through every path the generator knows.
async fn generated_store() -> PgPool {
    let (url, pool) = fresh_database().await;
    let out = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "funds=5",
            "-v",
            "requisitions=400",
            "-v",
            "staff=10",
        ])
        .args(["-f", GENERATOR, &url])
        .output()
        .await
        .expect("run psql (the PostgreSQL client) with bench/generate_events.sql");
    assert!(
        out.status.success(),
        "bench/generate_events.sql failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pool
}

/// Batches of exactly `batch_size` (no growth while behind).
fn options(batch_size: i64) -> EngineOptions {
    EngineOptions { batch_size, max_batch_size: batch_size, ..Default::default() }
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// True when `generation`'s cursor is the store's last event and it is live.
async fn done(pool: &PgPool, generation: i32) -> bool {
    let done: Option<bool> = sqlx::query_scalar(
        "SELECT c.state = 'live' AND (c.last_transaction_id, c.last_position) =
                (SELECT e.transaction_id, e.global_position FROM events e
                 ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1)
         FROM projection_checkpoints c WHERE c.name = 'requisitions' AND c.version = $1 AND c.generation = $2",
    )
    .bind(VERSION)
    .bind(generation)
    .fetch_optional(pool)
    .await
    .unwrap();
    done == Some(true)
}

/// Runs `catch_up` with `batch_size` until `projection`'s generation has applied the whole
/// store and gone live.
async fn build(pool: &PgPool, projection: Arc<dyn Projection>, batch_size: i64) {
    build_with(pool, projection, options(batch_size)).await
}

async fn build_with(pool: &PgPool, projection: Arc<dyn Projection>, options: EngineOptions) {
    let generation = projection.generation();
    let engine = Engine::new(pool.clone(), vec![projection], options);
    let deadline = Instant::now() + DEADLINE;
    loop {
        engine.catch_up().await.expect("catch_up");
        if done(pool, generation).await {
            return;
        }
        assert!(Instant::now() < deadline, "generation {generation} never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Steps `generation` with batches of `batch_size`, each step by the projection object
/// `pick(i)` chooses for the i-th step, until it has applied the whole store and gone live.
/// A step that fails is tried again (by the next object picked).
async fn build_stepwise(
    pool: &PgPool,
    generation: i32,
    batch_size: i64,
    pick: impl Fn(usize) -> Arc<dyn Projection>,
) -> usize {
    prepare(pool, pick(0).as_ref()).await.expect("prepare");
    let deadline = Instant::now() + DEADLINE;
    let mut failures = 0;
    for i in 0.. {
        match step(pool, pick(i).as_ref(), batch_size).await {
            Ok(outcome) if outcome.live && outcome.applied == 0 && done(pool, generation).await => break,
            Ok(_) => {}
            Err(_) => failures += 1,
        }
        assert!(Instant::now() < deadline, "generation {generation} never caught up");
    }
    failures
}

/// `a` and `b` hold the same rows (as multisets), and each value prints the same (a numeric
/// `1.50` is equal to `1.5` but would show differently in the API).
async fn assert_same_rows(pool: &PgPool, a: &str, b: &str) {
    let count = |t: &str| format!("SELECT count(*) FROM {t}");
    let only = |x: &str, y: &str| {
        format!("SELECT count(*) FROM (SELECT t::text FROM {x} t EXCEPT ALL SELECT t::text FROM {y} t) d")
    };
    let (n_a, n_b) = (scalar_i64(pool, &count(a)).await, scalar_i64(pool, &count(b)).await);
    let (only_a, only_b) = (scalar_i64(pool, &only(a, b)).await, scalar_i64(pool, &only(b, a)).await);
    assert_eq!(
        (n_a, only_a, only_b),
        (n_b, 0, 0),
        "{a} ({n_a} rows) and {b} ({n_b} rows) differ: {only_a} rows only in {a}, {only_b} only in {b}"
    );
}

/// Every table of generation `g` equals generation 0's.
async fn assert_same_as_generation_0(pool: &PgPool, g: i32) {
    for base in [TABLE, TOTALS, PAID_DAILY] {
        assert_same_rows(pool, &table_name(base, VERSION, 0), &table_name(base, VERSION, g)).await;
    }
}

/// The running totals of generation `g` are what its rows add up to: per (requester,
/// status, currency) and over everyone (nil uuid), no key without requisitions; per
/// (requester, day of payment, currency) for the paid ones, with the exact seconds from
/// submission to payment.
pub(crate) async fn assert_totals_add_up(pool: &PgPool, g: i32) {
    let rows = table_name(TABLE, VERSION, g);
    let expected_totals = format!(
        "SELECT requester_id, status, currency, count(*) AS count, sum(amount) AS amount FROM {rows}
         GROUP BY requester_id, status, currency
         UNION ALL
         SELECT '00000000-0000-0000-0000-000000000000', status, currency, count(*), sum(amount) FROM {rows}
         GROUP BY status, currency"
    );
    let day = "(paid_at AT TIME ZONE 'UTC')::date";
    let seconds = "coalesce(sum(extract(epoch FROM paid_at - submitted_at)), 0)";
    let expected_daily = format!(
        "SELECT requester_id, {day} AS day, currency, count(*) AS count, sum(amount) AS amount,
                count(submitted_at) AS timed, {seconds} AS seconds_to_payment
         FROM {rows} WHERE status = 'paid' GROUP BY requester_id, {day}, currency
         UNION ALL
         SELECT '00000000-0000-0000-0000-000000000000', {day}, currency, count(*), sum(amount),
                count(submitted_at), {seconds}
         FROM {rows} WHERE status = 'paid' GROUP BY {day}, currency"
    );
    for (table, expected) in [
        (table_name(TOTALS, VERSION, g), expected_totals),
        (table_name(PAID_DAILY, VERSION, g), expected_daily),
    ] {
        let extra = format!("SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ALL ({expected})) d");
        let missing = format!("SELECT count(*) FROM (({expected}) EXCEPT ALL SELECT * FROM {table}) d");
        let (extra, missing) = (scalar_i64(pool, &extra).await, scalar_i64(pool, &missing).await);
        assert_eq!((extra, missing), (0, 0), "{table} vs its rows: {extra} rows extra, {missing} missing");
    }
}

#[tokio::test]
async fn requisitions_read_model_is_the_same_whatever_the_batch_size() {
    let pool = generated_store().await;
    let events = scalar_i64(&pool, "SELECT count(*) FROM events").await;
    assert!(events > 1500, "a history of some size ({events} events)");

    for (generation, batch_size) in [(0, 1000), (1, 7), (2, 1)] {
        build(&pool, Arc::new(Requisitions::at(VERSION, generation)), batch_size).await;
    }
    // Batches growing from 1 while behind (1, 4, 16, ... up to 500), as a worker catching up
    // does: the same tables, in far fewer batches than one event each.
    let growing = Wrapped::new(Arc::new(Requisitions::at(VERSION, 3)), AfterApply::FailOn(vec![]));
    let grow = EngineOptions { batch_size: 1, max_batch_size: 500, ..Default::default() };
    build_with(&pool, growing.clone(), grow).await;
    assert!(
        growing.batches() < events as usize / 10,
        "{} batches for {events} events: the batches did not grow",
        growing.batches()
    );
    for g in [1, 2, 3] {
        assert_same_as_generation_0(&pool, g).await;
    }
    assert_totals_add_up(&pool, 0).await;
    let rows = table_name(TABLE, VERSION, 0);
    let paid = scalar_i64(&pool, &format!("SELECT count(*) FROM {rows} WHERE status = 'paid'")).await;
    assert!(paid > 100, "the history pays requisitions ({paid})");
    let statuses = scalar_i64(&pool, &format!("SELECT count(DISTINCT status) FROM {rows}")).await;
    assert_eq!(statuses, 7, "every status occurs");
}

/// Two projection objects on one build (as two processes would be: the engine's row lock
/// keeps them in turn) apply its batches in the order A, A, B, A, A, B, ...: each finds,
/// every now and then, that the other moved the checkpoint since its last batch, and must not
/// apply the next batch on top of the rows it remembers.
#[tokio::test]
async fn a_projection_forgets_its_rows_when_another_one_applied_batches_meanwhile() {
    let pool = generated_store().await;
    build(&pool, Arc::new(Requisitions::at(VERSION, 0)), 1000).await;

    let a: Arc<dyn Projection> = Arc::new(Requisitions::at(VERSION, 1));
    let b: Arc<dyn Projection> = Arc::new(Requisitions::at(VERSION, 1));
    let failures = build_stepwise(&pool, 1, 7, |i| if i % 3 == 2 { b.clone() } else { a.clone() }).await;
    assert_eq!(failures, 0);
    assert_same_as_generation_0(&pool, 1).await;
    assert_totals_add_up(&pool, 1).await;
}

/// The projection applies a batch, then the batch's transaction rolls back (here: the step
/// fails after `apply`). The rows it now remembers are ahead of the tables; the next batch
/// must not start from them.
#[tokio::test]
async fn a_projection_forgets_its_rows_when_a_batch_it_applied_rolls_back() {
    let pool = generated_store().await;
    build(&pool, Arc::new(Requisitions::at(VERSION, 0)), 1000).await;

    // Some early (only users and funds, or only creations), most in the thick of the history.
    let fail_on = [3, 40, 41, 120, 200, 250];
    let failing = Wrapped::new(Arc::new(Requisitions::at(VERSION, 1)), AfterApply::FailOn(fail_on.to_vec()));
    let failures = build_stepwise(&pool, 1, 7, |_| failing.clone()).await;
    assert_eq!(failures, fail_on.len(), "the batches chosen failed");
    assert_same_as_generation_0(&pool, 1).await;
    assert_totals_add_up(&pool, 1).await;
}

/// The tables every change updates are vacuumed after a fixed number of dead rows, not after
/// 20 % of the table (sustained load had left half a million dead rows under a few thousand
/// live ones in the totals, and the dashboard read them all).
#[tokio::test]
async fn hot_read_model_tables_vacuum_after_a_fixed_number_of_dead_rows() {
    let (_, pool) = fresh_database().await;
    // The settings come with the tables, which a projection makes when it prepares.
    prepare(&pool, &Requisitions::at(VERSION, 0)).await.expect("prepare requisitions");
    prepare(&pool, &pettycash_projections::models::cash::Cash::new(1)).await.expect("prepare cash");
    for (table, expected) in [
        (table_name(TOTALS, VERSION, 0), "autovacuum_vacuum_scale_factor=0"),
        (table_name(PAID_DAILY, VERSION, 0), "autovacuum_vacuum_scale_factor=0"),
        (table_name("rm_funds", 1, 0), "autovacuum_vacuum_scale_factor=0"),
        (table_name(TABLE, VERSION, 0), "autovacuum_vacuum_scale_factor=0.02"),
    ] {
        let options: Vec<String> = sqlx::query_scalar(
            "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = $1 AND relkind = 'r'",
        )
        .bind(&table)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert!(options.iter().any(|o| o == expected), "{table}: {options:?}");
        assert!(options.iter().any(|o| o == "autovacuum_vacuum_threshold=2000"), "{table}: {options:?}");
    }
}
