//! PostgreSQL shut down (fast) under a burst of commands, then started again: no answer is a
//! 500, nothing is half-written, once the service knows the database is down it refuses at
//! once instead of waiting for a pool connection, and it serves again by itself.

use pettycash_api::embedded_pg::EmbeddedPostgres;
use pettycash_tests::serde_json::json;
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// This test's own cluster (stopping the shared server would fail every other test).
const DIR: &str = "/tmp/pettycash-outage-test";
const PORT: u16 = 54349;
/// Requisitions approved before the burst, each paid at most once during it.
const READY: usize = 100;
const WORKERS: usize = 16;
const FLOAT: i64 = 1_000_000;

/// The private cluster; stopped and removed when the test ends, also when it fails.
struct Cluster(EmbeddedPostgres);

impl Cluster {
    async fn fresh() -> Self {
        let pg = EmbeddedPostgres::new(format!("{DIR}/data"), PORT);
        // One left running by an interrupted run.
        let _ = pg.stop().await;
        let _ = std::fs::remove_dir_all(DIR);
        Self(pg)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `stop` is async and this runs inside the test's runtime: stop on a thread of its own.
        let pg = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = rt.block_on(pg.stop());
            }
        })
        .join();
        let _ = std::fs::remove_dir_all(DIR);
    }
}

#[derive(Debug, Clone)]
enum Job {
    Pay(Uuid),
    /// Create and submit a requisition with this purpose: two events on one stream.
    Create(String),
}

#[derive(Debug)]
struct Answer {
    job: Job,
    reply: Reply,
    sent: Instant,
    answered: Instant,
}

/// The people and the fund the commands use.
#[derive(Clone)]
struct Actors {
    staff: TestUser,
    treasury: TestUser,
    fund: Uuid,
}

async fn run(app: &TestApp, who: &Actors, job: &Job) -> Reply {
    match job {
        Job::Pay(id) => app.pay(&who.treasury, *id).await,
        Job::Create(purpose) => {
            app.post(&who.staff, "/api/requisitions/", create_body(who.fund, purpose)).await
        }
    }
}

fn create_body(fund: Uuid, purpose: &str) -> pettycash_tests::serde_json::Value {
    json!({"fund_id": fund, "amount": "10", "purpose": purpose, "submit": true})
}

/// Set by the test (`stop`) and by the workers (`saw_503`).
struct Flags {
    stop: Arc<AtomicBool>,
    saw_503: Arc<AtomicBool>,
}

/// Sends commands until `stop`: every other one pays the next ready requisition (while there
/// are any), the rest create requisitions.
async fn worker(
    app: Arc<TestApp>,
    who: Actors,
    ready: Arc<Vec<Uuid>>,
    next: Arc<AtomicUsize>,
    flags: Flags,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !flags.stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let job = match ready.get(n / 2) {
            Some(id) if n.is_multiple_of(2) => Job::Pay(*id),
            _ => Job::Create(format!("outage {n}")),
        };
        let sent = Instant::now();
        let reply = run(&app, &who, &job).await;
        let answered = Instant::now();
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            flags.saw_503.store(true, Ordering::SeqCst);
            // Not a busy loop while the database is away.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answers.push(Answer { job, reply, sent, answered });
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_shutdown_under_load_is_answered_503_at_once_and_leaves_nothing_half_written() {
    let cluster = Cluster::fresh().await;
    let admin = cluster.0.ensure_running().await.expect("start the private cluster");
    let app = Arc::new(TestApp::spawn_on(&admin, |c| c.seal_interval_secs = 3600).await);
    let c = Cast::new(&app).await;
    // About shutdown, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, &FLOAT.to_string()).await;
    let who = Actors { staff: c.staff.clone(), treasury: c.treasury.clone(), fund };
    let mut ready = Vec::new();
    for _ in 0..READY {
        let id = app.submitted(&c.staff, fund, "10").await;
        app.approve_by(id, &[&c.head]).await;
        ready.push(id);
    }
    let ready = Arc::new(ready);

    // A burst of commands; PostgreSQL stops (fast shutdown) while they are in flight.
    let next = Arc::new(AtomicUsize::new(0));
    let (stop, saw_503) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let flags = Flags { stop: stop.clone(), saw_503: saw_503.clone() };
            tokio::spawn(worker(app.clone(), who.clone(), ready.clone(), next.clone(), flags))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.0.stop().await.expect("fast shutdown");
    // The first 503 comes at once from a command whose statement was cut off, or after the
    // pool's 5 s acquire timeout when none was running one: then go on for a second.
    let stopped = Instant::now();
    while !saw_503.load(Ordering::SeqCst) && stopped.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.expect("worker"));
    }

    // Every answer is a success, a refusal or a 503 with Retry-After; never a 500.
    for a in &answers {
        let status = a.reply.status;
        assert!(
            status.is_success() || status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{a:?}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(a.reply.code(), "database_unavailable", "{a:?}");
            assert!(a.reply.headers.contains_key("retry-after"), "{a:?}");
        }
    }
    assert!(answers.iter().any(|a| a.reply.status.is_success()), "some commands ran before the outage");
    // Once the first 503 came back, the service knows: every later command is refused at
    // once (the pool would have made each wait 5 s).
    let first_503 = answers
        .iter()
        .filter(|a| a.reply.status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|a| a.answered)
        .min()
        .expect("the outage was answered with 503");
    let later: Vec<&Answer> = answers.iter().filter(|a| a.sent > first_503).collect();
    assert!(later.len() >= WORKERS, "commands were sent during the outage: {}", later.len());
    let slowest = later.iter().map(|a| a.answered - a.sent).max().unwrap_or_default();
    eprintln!(
        "outage: {} answers ({} successes, {} 503s); {} sent after the first 503, slowest {slowest:?}",
        answers.len(),
        answers.iter().filter(|a| a.reply.status.is_success()).count(),
        answers.iter().filter(|a| a.reply.status == StatusCode::SERVICE_UNAVAILABLE).count(),
        later.len(),
    );
    for a in &later {
        assert_eq!(a.reply.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
        assert!(a.answered - a.sent < Duration::from_secs(1), "answered in {:?}", a.answered - a.sent);
    }

    // PostgreSQL comes back: commands succeed again within a few seconds, without a restart.
    cluster.0.ensure_running().await.expect("restart the private cluster");
    let restarted = Instant::now();
    loop {
        let r = run(&app, &who, &Job::Create("after the outage".into())).await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "still refused after {:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = app.submitted(&c.staff, fund, "10").await;
    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED, "payments work again");

    // Nothing half-written: each payment wrote the requisition's and the fund's event, or
    // neither; each creation both of its events, or neither; a success was written.
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT r.id,
                (SELECT count(*) FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = r.id
                   AND event_type = 'RequisitionPaid'),
                (SELECT count(*) FROM events WHERE aggregate_type = 'fund' AND event_type = 'CashDisbursed'
                   AND payload->'CashDisbursed'->>'requisition_id' = r.id)
         FROM unnest($1::text[]) AS r(id)",
    )
    .bind(ready.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let paid: HashMap<String, (i64, i64)> = counts.into_iter().map(|(id, p, d)| (id, (p, d))).collect();
    for (id, (requisition, fund)) in &paid {
        assert_eq!(
            requisition, fund,
            "requisition {id}: RequisitionPaid {requisition}, CashDisbursed {fund}"
        );
        assert!(*requisition <= 1, "requisition {id} paid {requisition} times");
    }
    let streams: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT e.aggregate_id, min(c.payload->'RequisitionCreated'->>'purpose'), array_agg(e.event_type ORDER BY e.sequence)
         FROM events c JOIN events e ON e.aggregate_type = c.aggregate_type AND e.aggregate_id = c.aggregate_id
         WHERE c.aggregate_type = 'requisition' AND c.event_type = 'RequisitionCreated'
           AND c.payload->'RequisitionCreated'->>'purpose' LIKE 'outage %'
         GROUP BY e.aggregate_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut created = HashMap::new();
    for (id, purpose, types) in streams {
        assert_eq!(types, ["RequisitionCreated", "RequisitionSubmitted"], "{purpose} ({id})");
        assert!(created.insert(purpose.clone(), id).is_none(), "{purpose} written twice");
    }
    for a in answers.iter().filter(|a| a.reply.status.is_success()) {
        match &a.job {
            Job::Pay(id) => assert_eq!(paid[&id.to_string()], (1, 1), "a paid requisition was recorded"),
            Job::Create(purpose) => assert_eq!(created.get(purpose), Some(&a.reply.id().to_string())),
        }
    }
    // And the fund's balance went down by exactly what was disbursed.
    let (disbursed, balance_after): (i64, String) = sqlx::query_as(
        "SELECT count(*), (array_agg(payload->'CashDisbursed'->>'balance_after' ORDER BY sequence DESC))[1]
         FROM events WHERE aggregate_type = 'fund' AND aggregate_id = $1 AND event_type = 'CashDisbursed'",
    )
    .bind(fund.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let expected = rust_decimal::Decimal::from(FLOAT - 10 * disbursed);
    assert_eq!(balance_after.parse::<rust_decimal::Decimal>().unwrap(), expected);
    assert_eq!(app.balance(&c.staff, fund).await, expected);
}
