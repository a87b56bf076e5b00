//! The projection engine against a real PostgreSQL: no event skipped or applied twice while
//! writers commit out of position order, a worker killed mid-batch, a shadow version (or a
//! new generation of the same version) built and swapped in while the old one serves, and
//! read-your-writes (`wait::wait_for`).
//!
//! Every test gets a fresh database. Other tests (and other databases on the same server)
//! run at the same time, and any transaction holding an xid anywhere on the server holds the
//! engine's horizon back (`pg_snapshot_xmin` is cluster-wide). So "caught up" is always
//! checked against the store (the checkpoint's cursor is the last event in
//! `(transaction_id, global_position)` order) and polled with a deadline; a single
//! `catch_up()` is never assumed to have seen everything.

use crate::{AfterApply, Wrapped};
use futures::future::join_all;
use pettycash_commands::service::NewRequisition;
use pettycash_commands::{CommandContext, CommandService, EventStore, RequestMeta};
use pettycash_domain::fund::{FundEvent, PaymentMethod};
use pettycash_domain::requisition::Changes;
use pettycash_domain::{Actor, Currency, Role};
use pettycash_projections::engine::{prepare, step};
use pettycash_projections::models::cash::Cash;
use pettycash_projections::models::requisitions::Requisitions;
use pettycash_projections::CheckpointState;
use pettycash_projections::{wait, Engine, EngineOptions, Projection};
use pettycash_tests::{fresh_database, PASSWORD};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long anything may take to converge before the test gives up (not a speed assertion:
/// the engine is normally done in milliseconds; this only bounds a hang).
const DEADLINE: Duration = Duration::from_secs(60);

/// Projection names and their read-model base tables.
const NAMES: [&str; 2] = ["requisitions", "cash"];
const TABLES: [&str; 4] = ["rm_requisitions", "rm_funds", "rm_ledger", "rm_payments"];

// ----- harness -------------------------------------------------------------------------------

fn options(batch_size: i64) -> EngineOptions {
    EngineOptions {
        batch_size,
        max_batch_size: batch_size,
        poll_interval: Duration::from_millis(50),
        lease_retry: Duration::from_millis(100),
        ..Default::default()
    }
}

fn projections(version: i32) -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(Requisitions::new(version)), Arc::new(Cash::new(version))]
}

fn ctx(actor: &Actor) -> CommandContext {
    CommandContext::user(actor.clone(), RequestMeta::default())
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn scalar_decimal(pool: &PgPool, sql: &str) -> Decimal {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn event_count(pool: &PgPool) -> i64 {
    scalar_i64(pool, "SELECT count(*) FROM events").await
}

/// `(state, events_applied)` of one projection version's checkpoint (generation 0).
async fn checkpoint(pool: &PgPool, name: &str, version: i32) -> Option<(CheckpointState, i64)> {
    checkpoint_of(pool, name, version, 0).await
}

/// `(state, events_applied)` of one projection build's checkpoint.
async fn checkpoint_of(
    pool: &PgPool,
    name: &str,
    version: i32,
    generation: i32,
) -> Option<(CheckpointState, i64)> {
    sqlx::query_as(
        "SELECT state, events_applied FROM projection_checkpoints
         WHERE name = $1 AND version = $2 AND generation = $3",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn state(pool: &PgPool, name: &str, version: i32) -> Option<CheckpointState> {
    state_of(pool, name, version, 0).await
}

/// The build's checkpoint state (`None`: no checkpoint).
async fn state_of(pool: &PgPool, name: &str, version: i32, generation: i32) -> Option<CheckpointState> {
    checkpoint_of(pool, name, version, generation).await.map(|c| c.0)
}

/// True when the build's cursor is the last event of the store in the engine's order (or
/// the store is empty and nothing was applied).
async fn at_end_of(pool: &PgPool, name: &str, version: i32, generation: i32) -> bool {
    let done: Option<bool> = sqlx::query_scalar(
        "SELECT coalesce(
                (SELECT (c.last_transaction_id, c.last_position) = (e.transaction_id, e.global_position)
                 FROM events e ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1),
                c.last_position = 0)
         FROM projection_checkpoints c WHERE c.name = $1 AND c.version = $2 AND c.generation = $3",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .fetch_optional(pool)
    .await
    .unwrap();
    done == Some(true)
}

/// Both projections of `version` (generation 0) are at the end of the store.
async fn all_at_end(pool: &PgPool, version: i32) -> bool {
    all_at_end_of(pool, version, 0).await
}

async fn all_at_end_of(pool: &PgPool, version: i32, generation: i32) -> bool {
    for name in NAMES {
        if !at_end_of(pool, name, version, generation).await {
            return false;
        }
    }
    true
}

async fn checkpoints_text(pool: &PgPool) -> String {
    let rows: Vec<(String, i32, i32, String, String, i64, i64)> = sqlx::query_as(
        "SELECT name, version, generation, state, last_transaction_id::text, last_position, events_applied
         FROM projection_checkpoints ORDER BY name, version, generation",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    format!("{rows:?} (events in store: {})", event_count(pool).await)
}

/// Runs `catch_up` until both projections of `version` have applied the whole store.
async fn settle(pool: &PgPool, version: i32, batch_size: i64) {
    let engine = Engine::new(pool.clone(), projections(version), options(batch_size));
    let deadline = Instant::now() + DEADLINE;
    loop {
        engine.catch_up().await.expect("catch_up");
        if all_at_end(pool, version).await {
            return;
        }
        assert!(Instant::now() < deadline, "v{version} never caught up: {}", checkpoints_text(pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until both projections of `version` (run by someone else) have applied the store.
async fn wait_at_end(pool: &PgPool, version: i32) {
    let deadline = Instant::now() + DEADLINE;
    while !all_at_end(pool, version).await {
        assert!(Instant::now() < deadline, "v{version} never caught up: {}", checkpoints_text(pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An engine running in a task until [`Running::stop`].
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn start(pool: &PgPool, projections: Vec<Arc<dyn Projection>>, batch_size: i64) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let engine = Engine::new(pool.clone(), projections, options(batch_size));
    Running { stop, task: tokio::spawn(engine.run(stop_rx)) }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the engine did not stop after shutdown")
            .expect("engine task panicked");
    }
}

/// `a` and `b` hold exactly the same rows (as multisets), whatever order they were built in.
async fn assert_same_rows(pool: &PgPool, a: &str, b: &str) {
    let n_a = scalar_i64(pool, &format!("SELECT count(*) FROM {a}")).await;
    let n_b = scalar_i64(pool, &format!("SELECT count(*) FROM {b}")).await;
    let only_a =
        scalar_i64(pool, &format!("SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x"))
            .await;
    let only_b =
        scalar_i64(pool, &format!("SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) x"))
            .await;
    assert_eq!(
        (n_a, only_a, only_b),
        (n_b, 0, 0),
        "{a} ({n_a} rows) and {b} ({n_b} rows) differ: {only_a} rows only in {a}, {only_b} only in {b}"
    );
}

/// The SQL text of the view readers use for `base`.
async fn view_definition(pool: &PgPool, base: &str) -> String {
    sqlx::query_scalar(
        "SELECT definition FROM pg_views WHERE viewname = $1 AND schemaname = current_schema()",
    )
    .bind(base)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("view {base}: {e}"))
}

/// Every `base` view reads `{base}_v{version}` and no other version.
async fn assert_views_read(pool: &PgPool, bases: &[&str], version: i32) {
    for base in bases {
        let definition = view_definition(pool, base).await;
        let wanted = format!("{base}_v{version}");
        assert!(definition.contains(&wanted), "view {base} should read {wanted}: {definition}");
        for other in (1..=4).filter(|v| *v != version) {
            let other = format!("{base}_v{other}");
            assert!(!definition.contains(&other), "view {base} still reads {other}: {definition}");
        }
    }
}

// ----- the cast and their commands --------------------------------------------------------

#[derive(Clone)]
struct People {
    admin: Actor,
    staff: Actor,
    head: Actor,
    gfm: Actor,
    treasury: Actor,
}

async fn register(service: &CommandService, roles: &[Role]) -> Actor {
    let email = format!("{}@engine.test", Uuid::new_v4().simple());
    let user = service
        .register_user(
            &CommandContext::operator("engine test"),
            &email,
            "Engine Test",
            roles.to_vec(),
            Some(PASSWORD),
        )
        .await
        .expect("register user");
    Actor::new(user.value.id, roles.iter().copied())
}

impl People {
    async fn register(service: &CommandService) -> Self {
        let (admin, staff, head, gfm, treasury) = tokio::join!(
            register(service, &[Role::Admin]),
            register(service, &[Role::Staff]),
            register(service, &[Role::DepartmentHead]),
            register(service, &[Role::GroupFinanceManager]),
            register(service, &[Role::Treasury]),
        );
        Self { admin, staff, head, gfm, treasury }
    }
}

async fn open_fund(service: &CommandService, people: &People, name: &str) -> (Uuid, i64) {
    let fund = service
        .open_fund(&ctx(&people.admin), name, "KES", Decimal::new(500_000_000, 2), None, None)
        .await
        .expect("open fund");
    (fund.value.id, fund.position)
}

async fn create(
    service: &CommandService,
    people: &People,
    fund: Uuid,
    amount: Decimal,
    submit: bool,
) -> Uuid {
    let input = NewRequisition {
        fund_id: fund,
        amount,
        currency: None,
        purpose: "Engine test purchase".into(),
        payee: Some("Stationers Ltd".into()),
        category: None,
        submit,
        origin: None,
        advance: false,
        urgent_reason: None,
    };
    service.create_requisition(&ctx(&people.staff), input).await.expect("create requisition").value.id
}

/// Creates, submits, approves through the whole chain and pays a requisition. Amounts over
/// 1,000 need the group finance manager too (default policy).
async fn paid(service: &CommandService, people: &People, fund: Uuid, amount: Decimal, submit_apart: bool) {
    let id = create(service, people, fund, amount, !submit_apart).await;
    if submit_apart {
        service.submit_requisition(&ctx(&people.staff), id, None, None).await.expect("submit");
    }
    service.approve_requisition(&ctx(&people.head), id, None).await.expect("approve (head)");
    if amount > Decimal::from(1_000) {
        service.approve_requisition(&ctx(&people.gfm), id, None).await.expect("approve (gfm)");
    }
    service.pay_without_code(&ctx(&people.treasury), id, PaymentMethod::Cash, None).await.expect("pay");
}

/// A history with every requisition event type: paid (one and two approvers), rejected,
/// changes requested then edited and resubmitted and approved, cancelled.
async fn mixed_history(service: &CommandService, people: &People, funds: usize, per_fund: usize) {
    let mut opened = Vec::new();
    for f in 0..funds {
        opened.push(open_fund(service, people, &format!("Fund {f}")).await.0);
    }
    for i in 0..per_fund {
        for (f, fund) in opened.iter().enumerate() {
            let small = Decimal::new(1_000 + 137 * (i as i64) + 11 * (f as i64), 2);
            match i % 5 {
                0 => paid(service, people, *fund, small, false).await,
                1 => paid(service, people, *fund, Decimal::new(250_050 + i as i64, 2), true).await,
                2 => {
                    let id = create(service, people, *fund, small, true).await;
                    service
                        .reject_requisition(&ctx(&people.head), id, "not in budget")
                        .await
                        .expect("reject");
                }
                3 => {
                    let id = create(service, people, *fund, small, true).await;
                    service
                        .request_changes(&ctx(&people.head), id, "receipt missing", None)
                        .await
                        .expect("changes");
                    let changes = Changes {
                        amount: Some(small + Decimal::ONE),
                        category: Some("office".into()),
                        ..Changes::default()
                    };
                    service.edit_requisition(&ctx(&people.staff), id, changes).await.expect("edit");
                    service.submit_requisition(&ctx(&people.staff), id, None, None).await.expect("resubmit");
                    service.approve_requisition(&ctx(&people.head), id, None).await.expect("approve");
                }
                _ => {
                    let id = create(service, people, *fund, small, false).await;
                    service
                        .cancel_requisition(&ctx(&people.staff), id, Some("duplicate"))
                        .await
                        .expect("cancel");
                }
            }
        }
    }
}

/// Inserts a valid `FundOpened` of version 1 (without a unit; read through its upcaster) for a
/// new fund directly (as the store would), on `conn`, in whatever transaction it is in. Returns
/// the fund id and the event's position.
async fn insert_fund_opened(conn: &mut PgConnection, name: &str) -> (Uuid, i64) {
    let fund_id = Uuid::now_v7();
    let mut payload = serde_json::to_value(FundEvent::FundOpened {
        fund_id,
        name: name.into(),
        currency: Currency::parse("KES").unwrap(),
        float: Decimal::new(2_500_000, 2),
        custodian_id: None,
        opened_by: Uuid::new_v4(),
        unit: None,
        reorder_level: None,
        minimum_balance: None,
        auto_replenish: None,
    })
    .unwrap();
    assert!(payload.get("FundOpened").is_some(), "externally tagged: {payload}");
    for later in ["unit", "reorder_level", "minimum_balance", "auto_replenish"] {
        payload["FundOpened"].as_object_mut().unwrap().remove(later);
    }
    let metadata = pettycash_tests::signed_metadata(
        "fund",
        &fund_id.to_string(),
        1,
        "FundOpened",
        &payload,
        &serde_json::json!({}),
    );
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('fund', $1, 1, 'FundOpened', '1', $2, $3) RETURNING global_position",
    )
    .bind(fund_id.to_string())
    .bind(payload)
    .bind(metadata)
    .fetch_one(conn)
    .await
    .expect("insert FundOpened");
    (fund_id, position)
}

// ----- the read models equal the store -------------------------------------------------------

/// Everything `version`'s read models hold is exactly what the event store says: every
/// event applied once, none missing, none twice. Expects no resubmissions (approver lists
/// are compared with the count of approvals).
async fn assert_read_models_match_store(pool: &PgPool, version: i32, check_approvers: bool) {
    let v = version;
    let events = event_count(pool).await;
    for name in NAMES {
        let (_, applied) = checkpoint(pool, name, v).await.expect("checkpoint");
        assert_eq!(applied, events, "{name} v{v}: events_applied must count every event read exactly once");
    }
    let created =
        scalar_i64(pool, "SELECT count(*) FROM events WHERE event_type = 'RequisitionCreated'").await;
    let requisitions = scalar_i64(pool, &format!("SELECT count(*) FROM rm_requisitions_v{v}")).await;
    assert_eq!(requisitions, created, "one requisition row per RequisitionCreated");

    let opened = scalar_i64(pool, "SELECT count(*) FROM events WHERE event_type = 'FundOpened'").await;
    let disbursed = scalar_i64(pool, "SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'").await;
    let funds = scalar_i64(pool, &format!("SELECT count(*) FROM rm_funds_v{v}")).await;
    let ledger = scalar_i64(pool, &format!("SELECT count(*) FROM rm_ledger_v{v}")).await;
    let payments = scalar_i64(pool, &format!("SELECT count(*) FROM rm_payments_v{v}")).await;
    assert_eq!(funds, opened, "one fund row per FundOpened");
    assert_eq!(ledger, opened + disbursed, "one ledger row per FundOpened and CashDisbursed");
    assert_eq!(payments, disbursed, "one payment row per CashDisbursed");

    // The very same events, by position: none missing, none extra.
    let missing = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM (SELECT global_position FROM events WHERE aggregate_type = 'fund'
                                   EXCEPT ALL SELECT position FROM rm_ledger_v{v}) x"
        ),
    )
    .await;
    let extra = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM (SELECT position FROM rm_ledger_v{v}
                                   EXCEPT ALL SELECT global_position FROM events WHERE aggregate_type = 'fund') x"
        ),
    )
    .await;
    assert_eq!((missing, extra), (0, 0), "ledger positions vs fund events: {missing} missing, {extra} extra");
    let twice = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM (SELECT payment_id FROM rm_ledger_v{v} WHERE payment_id IS NOT NULL
                                   GROUP BY payment_id HAVING count(*) > 1) d"
        ),
    )
    .await;
    assert_eq!(twice, 0, "a payment appears twice in the ledger");

    let ledger_out = scalar_decimal(
        pool,
        &format!("SELECT coalesce(sum(-amount), 0) FROM rm_ledger_v{v} WHERE kind = 'disbursement'"),
    )
    .await;
    let events_out = scalar_decimal(
        pool,
        "SELECT coalesce(sum((payload->'CashDisbursed'->>'amount')::numeric), 0) FROM events
         WHERE event_type = 'CashDisbursed'",
    )
    .await;
    assert_eq!(ledger_out, events_out, "sum of disbursements: ledger vs events");

    // Per fund: the number and total of disbursements, and the balance.
    let bad_funds = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM rm_funds_v{v} f
             LEFT JOIN (SELECT aggregate_id, count(*) AS n, sum((payload->'CashDisbursed'->>'amount')::numeric) AS total
                        FROM events WHERE event_type = 'CashDisbursed' GROUP BY aggregate_id) e
               ON e.aggregate_id = f.id::text
             WHERE f.disbursements <> coalesce(e.n, 0) OR f.disbursed_total <> coalesce(e.total, 0)
                OR f.balance <> f.float - f.disbursed_total"
        ),
    )
    .await;
    assert_eq!(bad_funds, 0, "funds whose disbursements, total or balance disagree with the events");

    // Per requisition: paid exactly when a RequisitionPaid exists.
    let paid_mismatch = scalar_i64(
        pool,
        &format!(
            "SELECT count(*) FROM (
                (SELECT aggregate_id::uuid FROM events WHERE event_type = 'RequisitionPaid'
                 EXCEPT SELECT id FROM rm_requisitions_v{v} WHERE status = 'paid')
                UNION ALL
                (SELECT id FROM rm_requisitions_v{v} WHERE status = 'paid'
                 EXCEPT SELECT aggregate_id::uuid FROM events WHERE event_type = 'RequisitionPaid')) x"
        ),
    )
    .await;
    assert_eq!(paid_mismatch, 0, "requisitions paid in the read model vs RequisitionPaid events");
    if check_approvers {
        // An approval applied twice would append its approver twice.
        let bad = scalar_i64(
            pool,
            &format!(
                "SELECT count(*) FROM rm_requisitions_v{v} r
                 WHERE jsonb_array_length(r.approvers) <> (SELECT count(*) FROM events e
                     WHERE e.aggregate_type = 'requisition' AND e.aggregate_id = r.id::text
                       AND e.event_type = 'RequisitionApproved')"
            ),
        )
        .await;
        assert_eq!(bad, 0, "requisitions whose approver list disagrees with their approvals");
    }
}

// ----- 1. no gaps, no duplicates ---------------------------------------------------------------

/// 16 writers append through the command service while other sessions hold transactions
/// open with an event inserted (so later positions commit first), and some of those roll
/// back (holes in the positions). The engine tails it all in batches of 5 the whole time (small
/// enough to be full often, so that each next batch is read ahead while one is applied).
/// Afterwards the read models are exactly the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_long_transactions_lose_nothing_and_apply_nothing_twice() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    let engine = start(&pool, projections(1), 5);

    const WRITERS: usize = 16;
    const REQUISITIONS_PER_WRITER: usize = 6;
    const HOLDERS: usize = 4;
    let writers_done = Arc::new(AtomicUsize::new(0));
    // Events committed at higher positions while a held event was still uncommitted.
    let overtaken = Arc::new(AtomicI64::new(0));
    let held_committed = Arc::new(AtomicUsize::new(0));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (service, people, done) = (service.clone(), people.clone(), writers_done.clone());
        writers.push(tokio::spawn(async move {
            let (fund, _) = open_fund(&service, &people, &format!("Writer {w}")).await;
            for i in 0..REQUISITIONS_PER_WRITER {
                let amount = if (w + i) % 4 == 0 {
                    Decimal::new(150_000 + (w * 100 + i) as i64, 2)
                } else {
                    Decimal::new(1_000 + (w * 100 + i) as i64, 2)
                };
                paid(&service, &people, fund, amount, (w + i) % 2 == 0).await;
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let mut holders = Vec::new();
    for h in 0..HOLDERS {
        let (pool, done, overtaken, committed) =
            (pool.clone(), writers_done.clone(), overtaken.clone(), held_committed.clone());
        holders.push(tokio::spawn(async move {
            let mut round = 0u64;
            // At least two rounds each, and keep going while writers are still writing.
            while round < 2 || done.load(Ordering::SeqCst) < WRITERS {
                let mut tx = pool.begin().await.unwrap();
                let (_, position) = insert_fund_opened(&mut tx, &format!("Held {h}.{round}")).await;
                let hold = 200 + (h as u64 * 97 + round * 61) % 300;
                tokio::time::sleep(Duration::from_millis(hold)).await;
                let later: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > $1")
                    .bind(position)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                overtaken.fetch_add(later, Ordering::SeqCst);
                if (h + round as usize) % 3 == 2 {
                    // A transaction that never commits: its position stays a hole for good.
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.fetch_add(1, Ordering::SeqCst);
                }
                round += 1;
            }
        }));
    }
    for w in join_all(writers).await {
        w.expect("writer panicked");
    }
    for h in join_all(holders).await {
        h.expect("holder panicked");
    }
    assert!(
        overtaken.load(Ordering::SeqCst) > 0,
        "the test must make later positions commit before earlier ones"
    );
    let holes = scalar_i64(&pool, "SELECT max(global_position) - count(*) FROM events").await;
    assert!(holes > 0, "rolled-back inserts should leave holes in the positions");

    wait_at_end(&pool, 1).await;
    engine.stop().await;

    let opened = scalar_i64(&pool, "SELECT count(*) FROM events WHERE event_type = 'FundOpened'").await;
    assert_eq!(opened as usize, WRITERS + held_committed.load(Ordering::SeqCst));
    let paid = scalar_i64(&pool, "SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'").await;
    assert_eq!(paid as usize, WRITERS * REQUISITIONS_PER_WRITER);
    assert_read_models_match_store(&pool, 1, true).await;
    for name in NAMES {
        assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Live));
    }
}

/// Why the cursor is `(transaction_id, global_position)` below the oldest running
/// transaction: a reader by `global_position` alone skips an event whose transaction
/// commits after a later position's. The engine waits for it instead, and returns both.
#[tokio::test]
async fn a_reader_by_position_alone_skips_an_event_the_engine_does_not() {
    let (_url, pool) = fresh_database().await;
    let engine = Engine::new(pool.clone(), projections(1), options(50));
    engine.catch_up().await.expect("first catch_up (empty store)");
    for name in NAMES {
        assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Live), "an empty build goes live");
    }

    let naive = |after: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT global_position FROM events WHERE global_position > $1 ORDER BY global_position",
            )
            .bind(after)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let mut naive_cursor = 0;
    let mut naive_seen = Vec::new();

    // A inserts first (position p1) and stays open.
    let mut a = pool.begin().await.unwrap();
    let (fund_a, p1) = insert_fund_opened(&mut a, "Slow writer").await;
    // B inserts after (p2 > p1) and commits first.
    let mut b = pool.begin().await.unwrap();
    let (fund_b, p2) = insert_fund_opened(&mut b, "Fast writer").await;
    b.commit().await.unwrap();
    assert!(p2 > p1);

    // The naive reader sees p2 and moves its cursor past p1.
    let seen = naive(naive_cursor).await;
    assert_eq!(seen, vec![p2], "only B is committed");
    naive_seen.extend(&seen);
    naive_cursor = *seen.last().unwrap();

    // The engine applies nothing while A, an older transaction, is still open: B's event
    // sorts after A's, which may yet commit.
    let applied = engine.catch_up().await.unwrap();
    assert_eq!(applied, 0, "the engine must not pass an open older transaction");
    assert_eq!(scalar_i64(&pool, "SELECT count(*) FROM rm_funds_v1").await, 0);
    for name in NAMES {
        let (_, events_applied) = checkpoint(&pool, name, 1).await.unwrap();
        assert_eq!(events_applied, 0);
    }

    a.commit().await.unwrap();
    let seen = naive(naive_cursor).await;
    naive_seen.extend(&seen);
    assert!(seen.is_empty(), "the naive reader's cursor is past p1");
    assert!(!naive_seen.contains(&p1), "the naive reader never returned p1 ({naive_seen:?}): it skipped it");
    assert_eq!(event_count(&pool).await, 2, "both events are in the store");

    // The engine returns both, A's first (its transaction is older).
    settle(&pool, 1, 50).await;
    let ledger: Vec<(i64, Uuid)> =
        sqlx::query_as("SELECT position, fund_id FROM rm_ledger_v1 ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(ledger, vec![(p1, fund_a), (p2, fund_b)]);
    let mut funds: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM rm_funds").fetch_all(&pool).await.unwrap();
    funds.sort();
    let mut expected = vec![fund_a, fund_b];
    expected.sort();
    assert_eq!(funds, expected, "the view readers use shows both funds");
    assert_read_models_match_store(&pool, 1, true).await;
}

// ----- 2. a worker killed mid-batch ------------------------------------------------------------

/// Waits until every event in the store is below the oldest running transaction on the
/// server, so any `catch_up` from now on sees all of them (another test's open transaction
/// may hold the horizon back for a while).
async fn wait_all_visible(pool: &PgPool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let visible: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot()))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if visible {
            return;
        }
        assert!(Instant::now() < deadline, "events never became visible below the horizon");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows of `version`'s tables that come from events after its checkpoint: must be none.
async fn rows_beyond_checkpoint(pool: &PgPool, version: i32) -> i64 {
    let v = version;
    let beyond = |name: &str, table: String, column: &str| {
        format!(
            "SELECT count(*) FROM {table} t JOIN events e ON e.global_position = t.{column}
             JOIN projection_checkpoints c ON c.name = '{name}' AND c.version = {v} AND c.generation = 0
             WHERE (e.transaction_id, e.global_position) > (c.last_transaction_id, c.last_position)"
        )
    };
    let mut n =
        scalar_i64(pool, &beyond("requisitions", format!("rm_requisitions_v{v}"), "last_position")).await;
    n += scalar_i64(pool, &beyond("cash", format!("rm_funds_v{v}"), "last_position")).await;
    n += scalar_i64(pool, &beyond("cash", format!("rm_ledger_v{v}"), "position")).await;
    n += scalar_i64(pool, &beyond("cash", format!("rm_payments_v{v}"), "position")).await;
    n
}

/// Builds version 2 from zero and checks it equals version 1 table by table.
async fn assert_equals_fresh_rebuild(pool: &PgPool) {
    settle(pool, 2, 1000).await;
    for table in TABLES {
        assert_same_rows(pool, &format!("{table}_v1"), &format!("{table}_v2")).await;
    }
    let events = event_count(pool).await;
    for name in NAMES {
        for version in [1, 2] {
            let (_, applied) = checkpoint(pool, name, version).await.unwrap();
            assert_eq!(applied, events, "{name} v{version} events_applied");
        }
    }
}

#[tokio::test]
async fn a_worker_killed_mid_batch_leaves_no_trace_and_a_restart_equals_a_fresh_rebuild() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 3, 10).await;
    let events = event_count(&pool).await;
    const BATCH: i64 = 16;
    const CRASH_ON: usize = 3;
    assert!(events > BATCH * CRASH_ON as i64 + BATCH, "enough events for several batches ({events})");
    wait_all_visible(&pool).await;

    for inner in projections(1) {
        let name = inner.name();
        let dying = Wrapped::new(inner, AfterApply::KillSessionOn(CRASH_ON));
        let engine = Engine::new(pool.clone(), vec![dying.clone() as Arc<dyn Projection>], options(BATCH));
        let result = engine.catch_up().await;
        assert!(
            dying.went_wrong.load(Ordering::SeqCst),
            "{name}: the third batch should have killed its session"
        );
        assert!(result.is_err(), "{name}: catch_up must fail when its session dies mid-batch");
        // The two batches before the crash are committed; the third left nothing.
        let (state, applied) = checkpoint(&pool, name, 1).await.unwrap();
        assert_eq!(applied, BATCH * (CRASH_ON as i64 - 1), "{name}: events_applied after the crash");
        assert_eq!(state, CheckpointState::Building);
    }
    assert_eq!(rows_beyond_checkpoint(&pool, 1).await, 0, "a read-model row survived the killed batch");

    // Restart with the plain projections.
    settle(&pool, 1, BATCH).await;
    for name in NAMES {
        assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Live));
    }
    assert_read_models_match_store(&pool, 1, false).await;
    assert_equals_fresh_rebuild(&pool).await;
}

/// The same crash under the real worker loop (`run`): it logs, waits and starts again by
/// itself, and ends where a fresh rebuild ends.
#[tokio::test]
async fn a_running_worker_recovers_by_itself_after_its_session_dies_mid_batch() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 2, 10).await;

    let dying: Vec<Arc<Wrapped>> =
        projections(1).into_iter().map(|p| Wrapped::new(p, AfterApply::KillSessionOn(2))).collect();
    let engine = start(&pool, dying.iter().map(|d| d.clone() as Arc<dyn Projection>).collect(), 16);
    wait_at_end(&pool, 1).await;
    // More events after the recovery reach it too.
    mixed_history(&service, &people, 1, 5).await;
    wait_at_end(&pool, 1).await;
    engine.stop().await;
    for d in &dying {
        assert!(d.went_wrong.load(Ordering::SeqCst), "{}: never crashed", d.name());
    }
    assert_read_models_match_store(&pool, 1, false).await;
    assert_equals_fresh_rebuild(&pool).await;
}

// ----- 3. a new version built in the shadow of the live one ----------------------------------

#[tokio::test]
async fn a_new_version_builds_while_the_old_one_serves_then_takes_over() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 2, 10).await;
    settle(&pool, 1, 1000).await;
    assert_views_read(&pool, &TABLES, 1).await;
    let v1_events = event_count(&pool).await;

    let shadows: Vec<(Arc<dyn Projection>, &[&str])> = vec![
        (Arc::new(Requisitions::new(2)), &["rm_requisitions"]),
        (Arc::new(Cash::new(2)), &["rm_funds", "rm_ledger", "rm_payments"]),
    ];
    for (v2, bases) in &shadows {
        let name = v2.name();
        assert_eq!(prepare(&pool, v2.as_ref()).await.unwrap(), CheckpointState::Building);
        assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Live));
        let mut partial_steps = 0;
        loop {
            let outcome = step(&pool, v2.as_ref(), 10).await.expect("step v2");
            assert!(!outcome.retired);
            if outcome.applied == 0 {
                break;
            }
            // Mid-build: readers still get v1, whole, through the views.
            assert_eq!(state(&pool, name, 2).await, Some(CheckpointState::Building));
            assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Live));
            assert_views_read(&pool, bases, 1).await;
            for base in *bases {
                assert_same_rows(&pool, base, &format!("{base}_v1")).await;
            }
            let (_, applied) = checkpoint(&pool, name, 2).await.unwrap();
            if applied < v1_events {
                partial_steps += 1;
            }
        }
        assert!(partial_steps >= 2, "{name}: the build should have taken several batches ({partial_steps})");
        // The step that found nothing left swapped the views.
        assert_eq!(state(&pool, name, 2).await, Some(CheckpointState::Live));
        assert_eq!(state(&pool, name, 1).await, Some(CheckpointState::Retired));
        assert_views_read(&pool, bases, 2).await;
    }
    settle(&pool, 2, 1000).await;
    for table in TABLES {
        assert_same_rows(&pool, &format!("{table}_v1"), &format!("{table}_v2")).await;
        assert_same_rows(&pool, table, &format!("{table}_v2")).await;
    }

    // A v1 worker that runs afterwards sees that it was retired and stops.
    for v1 in projections(1) {
        let outcome = step(&pool, v1.as_ref(), 1000).await.unwrap();
        assert!(outcome.retired, "{}: v1 step after the swap", v1.name());
        assert_eq!(outcome.applied, 0);
        assert_eq!(prepare(&pool, v1.as_ref()).await.unwrap(), CheckpointState::Retired);
    }
    let (_never_stop, stop_rx) = watch::channel(false);
    let v1_engine = Engine::new(pool.clone(), projections(1), options(1000));
    tokio::time::timeout(DEADLINE, v1_engine.run(stop_rx))
        .await
        .expect("retired v1 workers should stop by themselves");

    // New events reach v2 only.
    mixed_history(&service, &people, 1, 3).await;
    settle(&pool, 2, 1000).await;
    assert_read_models_match_store(&pool, 2, false).await;
    for name in NAMES {
        let (state, applied) = checkpoint(&pool, name, 1).await.unwrap();
        assert_eq!(
            (state, applied),
            (CheckpointState::Retired, v1_events),
            "{name} v1 must not move once retired"
        );
    }
    assert_views_read(&pool, &TABLES, 2).await;
}

/// One process brings a build up to the end of the store, another (finding nothing left) makes
/// it live and, not having seen the build, sums its totals from the rows. The first one's
/// memory still matches the checkpoint, and it goes on with live batches: on the totals the
/// tables hold, not on the sums it kept while building.
#[tokio::test]
async fn a_build_made_live_by_another_process_goes_on_from_the_totals_in_its_tables() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 2, 10).await;
    wait_all_visible(&pool).await;

    let first: Arc<dyn Projection> = Arc::new(Requisitions::new(2));
    let second: Arc<dyn Projection> = Arc::new(Requisitions::new(2));
    assert_eq!(prepare(&pool, first.as_ref()).await.unwrap(), CheckpointState::Building);
    let events = event_count(&pool).await;
    let built = step(&pool, first.as_ref(), 1000).await.expect("first builds");
    assert_eq!(
        (built.applied as i64, built.live),
        (events, false),
        "the whole store in one batch, not live yet"
    );
    let swapped = step(&pool, second.as_ref(), 1000).await.expect("second makes it live");
    assert_eq!((swapped.applied, swapped.live), (0, true));
    crate::batching::assert_totals_add_up(&pool, 0).await;

    mixed_history(&service, &people, 1, 5).await;
    wait_all_visible(&pool).await;
    let live = step(&pool, first.as_ref(), 1000).await.expect("first goes on, live");
    assert!(live.applied > 0 && live.live);
    assert!(at_end_of(&pool, "requisitions", 2, 0).await);
    crate::batching::assert_totals_add_up(&pool, 0).await;
}

/// Two versions building at once (a second bump deployed before the first finished, or two
/// releases rolling out on a fresh database): the older one finishing first must not retire
/// the newer one, which must go on to build and take over.
#[tokio::test]
async fn an_older_version_going_live_does_not_retire_a_newer_one_still_building() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 1, 5).await;
    settle(&pool, 1, 1000).await;

    let v2 = Requisitions::new(2);
    let v3 = Requisitions::new(3);
    assert_eq!(prepare(&pool, &v3).await.unwrap(), CheckpointState::Building);
    assert_eq!(prepare(&pool, &v2).await.unwrap(), CheckpointState::Building);
    // v2 finishes first.
    while step(&pool, &v2, 1000).await.unwrap().applied > 0 {}
    assert_eq!(state(&pool, "requisitions", 2).await, Some(CheckpointState::Live));
    assert_eq!(state(&pool, "requisitions", 1).await, Some(CheckpointState::Retired));
    assert_eq!(
        state(&pool, "requisitions", 3).await,
        Some(CheckpointState::Building),
        "v2 going live retired v3, a newer version still building: v3 will never go live"
    );
    // v3 then finishes and takes over.
    loop {
        let outcome = step(&pool, &v3, 1000).await.unwrap();
        assert!(!outcome.retired, "v3 was retired by the older v2");
        if outcome.applied == 0 {
            break;
        }
    }
    assert_eq!(state(&pool, "requisitions", 3).await, Some(CheckpointState::Live));
    assert_eq!(state(&pool, "requisitions", 2).await, Some(CheckpointState::Retired));
    assert_views_read(&pool, &["rm_requisitions"], 3).await;
}

/// The other order: the newer version finishes first and retires the older one still
/// building, which then stops instead of swapping the views back.
#[tokio::test]
async fn a_newer_version_going_live_retires_an_older_one_still_building() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 1, 5).await;
    settle(&pool, 1, 1000).await;

    let v2 = Requisitions::new(2);
    let v3 = Requisitions::new(3);
    assert_eq!(prepare(&pool, &v2).await.unwrap(), CheckpointState::Building);
    assert_eq!(prepare(&pool, &v3).await.unwrap(), CheckpointState::Building);
    // v2 gets part of the way, then v3 finishes.
    assert!(step(&pool, &v2, 5).await.unwrap().applied > 0);
    while step(&pool, &v3, 1000).await.unwrap().applied > 0 {}
    assert_eq!(state(&pool, "requisitions", 3).await, Some(CheckpointState::Live));
    assert_eq!(state(&pool, "requisitions", 2).await, Some(CheckpointState::Retired));
    assert_eq!(state(&pool, "requisitions", 1).await, Some(CheckpointState::Retired));
    let outcome = step(&pool, &v2, 1000).await.unwrap();
    assert!(outcome.retired, "the older v2 must stop once v3 is live");
    assert_views_read(&pool, &["rm_requisitions"], 3).await;
    assert_same_rows(&pool, "rm_requisitions_v1", "rm_requisitions_v3").await;
}

/// The bug this guards against: an older version whose build ends after a newer one went live
/// (an old release's worker still running, or started late, during a deploy) swapped the
/// views to itself before noticing that it had lost, and committed. It must check first and
/// retire without touching the views.
#[tokio::test]
async fn an_older_version_finishing_after_a_newer_one_is_live_leaves_the_views_alone() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 1, 5).await;
    settle(&pool, 1, 1000).await;

    let v3 = Requisitions::new(3);
    assert_eq!(prepare(&pool, &v3).await.unwrap(), CheckpointState::Building);
    while step(&pool, &v3, 1000).await.unwrap().applied > 0 {}
    assert_eq!(state(&pool, "requisitions", 3).await, Some(CheckpointState::Live));
    assert_views_read(&pool, &["rm_requisitions"], 3).await;

    // v2 appears only now and builds to the end.
    let v2 = Requisitions::new(2);
    assert_eq!(prepare(&pool, &v2).await.unwrap(), CheckpointState::Building);
    let mut steps = 0;
    let last = loop {
        let outcome = step(&pool, &v2, 7).await.unwrap();
        steps += 1;
        if outcome.applied == 0 {
            break outcome;
        }
    };
    assert!(steps > 2, "v2 should have built in several batches");
    assert!(last.retired && !last.live, "v2 must lose to the live v3");
    assert_eq!(state(&pool, "requisitions", 2).await, Some(CheckpointState::Retired));
    assert_eq!(state(&pool, "requisitions", 3).await, Some(CheckpointState::Live));
    assert_views_read(&pool, &["rm_requisitions"], 3).await;
    assert_same_rows(&pool, "rm_requisitions", "rm_requisitions_v3").await;
    // A retired build stays retired: preparing it again creates nothing.
    assert_eq!(prepare(&pool, &v2).await.unwrap(), CheckpointState::Retired);
}

/// A rebuild of the same version (generation 1, as `pettycash-replay rebuild` does) builds
/// beside generation 0 while a running engine keeps generation 0 current and serving, swaps
/// in, and the running worker follows it to generation 1 without a restart.
#[tokio::test]
async fn a_rebuilt_generation_takes_over_and_the_running_workers_follow_it() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 2, 10).await;
    let engine = start(&pool, projections(1), 50);
    wait_at_end(&pool, 1).await;
    // At the end is not yet live: the swap comes with the worker's next step.
    let deadline = Instant::now() + DEADLINE;
    for name in NAMES {
        while state_of(&pool, name, 1, 0).await != Some(CheckpointState::Live) {
            assert!(Instant::now() < deadline, "{name}: generation 0 never went live");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    for p in projections(1) {
        let name = p.name();
        let g1 = p.at_generation(1);
        assert_eq!((g1.name(), g1.version(), g1.generation()), (name, 1, 1));
        assert_eq!(prepare(&pool, g1.as_ref()).await.unwrap(), CheckpointState::Building);
        let deadline = Instant::now() + DEADLINE;
        let mut partial_steps = 0;
        loop {
            let outcome = step(&pool, g1.as_ref(), 25).await.expect("step generation 1");
            assert!(!outcome.retired, "{name}: generation 1 retired");
            if outcome.live {
                break;
            }
            partial_steps += 1;
            // Mid-build: readers still get generation 0.
            assert_eq!(state_of(&pool, name, 1, 0).await, Some(CheckpointState::Live));
            for base in p.tables() {
                let definition = view_definition(&pool, base).await;
                assert!(!definition.contains("_g1"), "view {base} switched mid-build: {definition}");
            }
            assert!(Instant::now() < deadline, "{name}: generation 1 never went live");
        }
        assert!(partial_steps >= 2, "{name}: the build should have taken several batches ({partial_steps})");
        assert_eq!(state_of(&pool, name, 1, 1).await, Some(CheckpointState::Live));
        assert_eq!(state_of(&pool, name, 1, 0).await, Some(CheckpointState::Retired));
        for base in p.tables() {
            let definition = view_definition(&pool, base).await;
            assert!(definition.contains(&format!("{base}_v1_g1")), "view {base}: {definition}");
        }
    }
    let frozen: Vec<(CheckpointState, i64)> = join_all(NAMES.map(|n| checkpoint_of(&pool, n, 1, 0)))
        .await
        .into_iter()
        .map(|c| c.expect("generation 0 checkpoint"))
        .collect();

    // New events reach generation 1 through the engine that was started on generation 0.
    mixed_history(&service, &people, 1, 5).await;
    let deadline = Instant::now() + DEADLINE;
    while !all_at_end_of(&pool, 1, 1).await {
        assert!(Instant::now() < deadline, "the workers did not follow: {}", checkpoints_text(&pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.stop().await;
    for (name, before) in NAMES.iter().zip(frozen) {
        assert_eq!(checkpoint_of(&pool, name, 1, 0).await.unwrap(), before, "{name}: generation 0 moved");
    }
    // Generation 1 is exactly what a fresh build of the whole store gives.
    settle(&pool, 2, 1000).await;
    for table in TABLES {
        assert_same_rows(&pool, &format!("{table}_v1_g1"), &format!("{table}_v2")).await;
    }
}

/// Under continuous load some transaction is always in flight. A build goes live once
/// nothing *visible* is left, even though a committed event still waits behind an open older
/// transaction; that event reaches it afterwards like any other.
#[tokio::test]
async fn a_build_goes_live_while_an_open_transaction_holds_events_back() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    mixed_history(&service, &people, 1, 3).await;
    settle(&pool, 1, 1000).await;

    // An older transaction with an xid stays open; a fund opened after it commits but is not
    // visible below the horizon until the older one ends.
    let mut older = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *older).await.unwrap();
    let (held_fund, _) = open_fund(&service, &people, "Behind the horizon").await;

    let g1 = Cash::at(1, 1);
    assert_eq!(prepare(&pool, &g1).await.unwrap(), CheckpointState::Building);
    let mut last = None;
    for _ in 0..100 {
        let outcome = step(&pool, &g1, 1000).await.unwrap();
        assert!(!outcome.retired);
        if outcome.applied == 0 || outcome.live {
            last = Some(outcome);
            break;
        }
    }
    let last = last.expect("the build never ran out of visible events");
    assert!(last.pending, "the held-back event should count as pending");
    assert!(last.live, "a build with only pending events left must go live");
    assert_eq!(state_of(&pool, "cash", 1, 1).await, Some(CheckpointState::Live));
    assert_eq!(state_of(&pool, "cash", 1, 0).await, Some(CheckpointState::Retired));
    for base in ["rm_funds", "rm_ledger", "rm_payments"] {
        let definition = view_definition(&pool, base).await;
        assert!(definition.contains(&format!("{base}_v1_g1")), "view {base}: {definition}");
    }
    let count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm_funds WHERE id = $1")
            .bind(held_fund)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count(pool.clone()).await, 0, "not visible yet");

    older.rollback().await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !at_end_of(&pool, "cash", 1, 1).await {
        step(&pool, &g1, 1000).await.unwrap();
        assert!(Instant::now() < deadline, "generation 1 never caught up: {}", checkpoints_text(&pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(pool.clone()).await, 1, "the held-back fund reached the new generation");
}

// ----- 4. read-your-writes ---------------------------------------------------------------------

#[tokio::test]
async fn a_commands_position_is_reached_only_once_the_engine_has_applied_it() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    settle(&pool, 1, 100).await;
    let both = ["requisitions", "cash"];
    let short = Duration::from_millis(300);

    // Without the engine the position is not reached.
    let (fund, position) = open_fund(&service, &people, "Read your writes").await;
    assert!(!wait::wait_for(&pool, &both, position, short).await.unwrap(), "reached before any engine ran");
    assert!(!wait::wait_for(&pool, &["cash"], position, short).await.unwrap());

    // After the engine applied it, it is, and the fund is in the read model.
    settle(&pool, 1, 100).await;
    assert!(wait::wait_for(&pool, &both, position, DEADLINE).await.unwrap());
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_funds WHERE id = $1")
        .bind(fund)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(found, 1);
    // A position beyond the end of the store is never reached.
    assert!(!wait::wait_for(&pool, &both, position + 1_000, short).await.unwrap());

    // With the engine running: a command committed behind an older open transaction is not
    // reached until that transaction ends, then it is.
    let engine = start(&pool, projections(1), 50);
    let mut older = pool.begin().await.unwrap();
    let (held_fund, held_position) = insert_fund_opened(&mut older, "Held").await;
    let requisition = create(&service, &people, fund, Decimal::new(4_200, 2), true).await;
    let position: i64 = sqlx::query_scalar(
        "SELECT max(global_position) FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = $1",
    )
    .bind(requisition.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(position > held_position);
    assert!(
        !wait::wait_for(&pool, &["requisitions"], position, short).await.unwrap(),
        "reached while an older transaction that may still commit an earlier event is open"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_requisitions WHERE id = $1")
        .bind(requisition)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    older.commit().await.unwrap();
    assert!(wait::wait_for(&pool, &["requisitions"], position, DEADLINE).await.unwrap());
    assert!(wait::wait_for(&pool, &both, held_position, DEADLINE).await.unwrap());
    let status: String = sqlx::query_scalar("SELECT status FROM rm_requisitions WHERE id = $1")
        .bind(requisition)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "pending_approval");
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_funds WHERE id = $1")
        .bind(held_fund)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 1);
    engine.stop().await;
}

// ----- 5. wake-ups -------------------------------------------------------------------------

/// Workers learn of commits made in their own process in memory (no trigger notifies any
/// more): with polling turned down to once an hour, every command is still applied. Events
/// written by anything else (here: psql-like inserts) are found by that poll alone, so they
/// wait for the next command's wake-up.
#[tokio::test]
async fn workers_are_woken_by_commits_in_their_own_process_without_polling() {
    let (_url, pool) = fresh_database().await;
    let service = CommandService::new(EventStore::new(pool.clone(), pettycash_tests::event_key()));
    let people = People::register(&service).await;
    let (stop, stop_rx) = watch::channel(false);
    let options = EngineOptions { poll_interval: Duration::from_secs(3600), ..options(100) };
    let engine = tokio::spawn(Engine::new(pool.clone(), projections(1), options).run(stop_rx));
    // The first build of an empty-ish store goes live by itself; after that, only wake-ups.
    wait_at_end(&pool, 1).await;

    for round in 0..3 {
        let (fund, _) = open_fund(&service, &people, &format!("Woken {round}")).await;
        paid(&service, &people, fund, Decimal::new(2_500, 2), round % 2 == 0).await;
        wait_at_end(&pool, 1).await;
    }
    // An insert that bypasses the service wakes nobody; the next command's wake-up covers it.
    let mut conn = pool.acquire().await.unwrap();
    let (bypassed, _) = insert_fund_opened(&mut conn, "Bypassed").await;
    drop(conn);
    open_fund(&service, &people, "After the bypass").await;
    wait_at_end(&pool, 1).await;
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_funds WHERE id = $1")
        .bind(bypassed)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(found, 1);
    assert_read_models_match_store(&pool, 1, true).await;

    let _ = stop.send(true);
    tokio::time::timeout(DEADLINE, engine).await.expect("engine stops").expect("engine task");
}
