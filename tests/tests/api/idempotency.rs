//! Idempotency-Key: a retried command answers what it answered the first time and appends
//! nothing more; a key reused for another request is refused; failures store nothing.

use futures::future::join_all;
use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::collections::HashSet;
use uuid::Uuid;

const REQUISITIONS: &str = "/api/requisitions/";
const PAYMENTS: &str = "/api/treasury/payments/";

async fn count_of(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn stored_keys(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&app.pool).await.unwrap()
}

fn replayed(r: &Reply) -> bool {
    r.headers.get("idempotent-replayed").is_some_and(|v| v == "true")
}

fn new_requisition(fund: Uuid, purpose: &str) -> Value {
    json!({"fund_id": fund, "amount": "120.00", "purpose": purpose})
}

fn payment(id: Uuid) -> Value {
    json!({"requisition_id": id, "method": "cash"})
}

#[tokio::test]
async fn a_create_retried_with_the_same_key_answers_the_same_and_appends_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let body = new_requisition(fund, "Toner");

    let first = app.post_idempotent(&c.staff, REQUISITIONS, "create-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert!(!replayed(&first), "the first answer is not a replay: {first:?}");
    let second = app.post_idempotent(&c.staff, REQUISITIONS, "create-1", body.clone()).await;
    assert_eq!(second.status, StatusCode::CREATED, "{second:?}");
    assert!(replayed(&second), "the retry is marked `idempotent-replayed: true`: {second:?}");
    assert_eq!(second.id(), first.id());
    assert_eq!(second.body, first.body, "the retry answers the same body");
    assert_eq!(second.headers.get("x-event-position"), first.headers.get("x-event-position"));

    // The same path without the trailing slash is the same request.
    let third = app.post_idempotent(&c.staff, "/api/requisitions", "create-1", body).await;
    assert_eq!(third.status, StatusCode::CREATED, "{third:?}");
    assert_eq!(third.id(), first.id());

    assert_eq!(count_of(&app, "RequisitionCreated").await, 1);
    assert_eq!(app.event_count().await, events + 1);
    let r = app.get(&c.staff, &format!("/api/requisitions/{}", first.id())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["purpose"], "Toner");
}

#[tokio::test]
async fn a_key_reused_with_a_different_body_is_refused_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let first = app.post_idempotent(&c.staff, REQUISITIONS, "k", new_requisition(fund, "Toner")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let events = app.event_count().await;

    let r = app.post_idempotent(&c.staff, REQUISITIONS, "k", new_requisition(fund, "Paper")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.code(), "idempotency_key_reused", "{r:?}");
    assert_eq!(app.event_count().await, events);

    // Also across endpoints: the key belongs to the first request, whatever it was.
    let r = app
        .post_idempotent(&c.staff, &format!("/api/requisitions/{}/submit", first.id()), "k", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.code(), "idempotency_key_reused", "{r:?}");
    assert_eq!(app.event_count().await, events);
    assert_eq!(count_of(&app, "RequisitionCreated").await, 1);
}

#[tokio::test]
async fn the_same_key_from_two_users_is_two_independent_requests() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let other = app.user(&[Role::Staff]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let body = new_requisition(fund, "Toner");

    let a = app.post_idempotent(&c.staff, REQUISITIONS, "shared-key", body.clone()).await;
    let b = app.post_idempotent(&other, REQUISITIONS, "shared-key", body.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(b.status, StatusCode::CREATED, "{b:?}");
    assert!(!replayed(&b), "another user's key is not replayed: {b:?}");
    assert_ne!(a.id(), b.id());
    assert_eq!(a.body["requester_id"], c.staff.id.to_string());
    assert_eq!(b.body["requester_id"], other.id.to_string());
    assert_eq!(count_of(&app, "RequisitionCreated").await, 2);

    // Each user's retry replays their own request.
    let b2 = app.post_idempotent(&other, REQUISITIONS, "shared-key", body).await;
    assert!(replayed(&b2), "{b2:?}");
    assert_eq!(b2.id(), b.id());
    assert_eq!(count_of(&app, "RequisitionCreated").await, 2);
}

#[tokio::test]
async fn a_payment_retried_with_its_key_debits_the_fund_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "300").await;
    app.approve_by(id, &[&c.head]).await;

    let first = app.post_idempotent(&c.treasury, PAYMENTS, "pay-1", payment(id)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let events = app.event_count().await;
    let retry = app.post_idempotent(&c.treasury, PAYMENTS, "pay-1", payment(id)).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert!(replayed(&retry));
    assert_eq!(retry.id(), first.id(), "the same payment id");
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.body["fund_balance_after"], "4700.00");

    assert_eq!(app.event_count().await, events);
    assert_eq!(app.balance(&c.staff, fund).await, "4700".parse::<Decimal>().unwrap());
    assert_eq!(count_of(&app, "CashDisbursed").await, 1);

    // Without the key, a second payment is refused as already paid.
    let again = app.pay(&c.treasury, id).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert_eq!(again.code(), "already_paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_payments_with_one_key_debit_the_fund_exactly_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "300").await;
    app.approve_by(id, &[&c.head]).await;

    let replies =
        join_all((0..10).map(|_| app.post_idempotent(&c.treasury, PAYMENTS, "pay-race", payment(id)))).await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    let replays = created.iter().filter(|r| replayed(r)).count();
    eprintln!(
        "10 payments with one key: {} x 201 ({} replayed), {} x 409, statuses {:?}",
        created.len(),
        replays,
        replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count(),
        replies.iter().map(|r| format!("{} {}", r.status.as_u16(), r.code())).collect::<Vec<_>>()
    );

    for r in &replies {
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT,
            "only 201 or 409, never a 500: {r:?}"
        );
    }
    assert!(!created.is_empty(), "one of them pays");
    let payment_ids: HashSet<Uuid> = created.iter().map(|r| r.id()).collect();
    assert_eq!(payment_ids.len(), 1, "every 201 shows the same payment");
    assert_eq!(created.len() - replays, 1, "exactly one answer is not a replay");
    assert_eq!(app.balance(&c.staff, fund).await, "4700".parse::<Decimal>().unwrap());
    assert_eq!(count_of(&app, "CashDisbursed").await, 1);
    assert_eq!(count_of(&app, "RequisitionPaid").await, 1);

    // A later retry with the key still answers the payment.
    let later = app.post_idempotent(&c.treasury, PAYMENTS, "pay-race", payment(id)).await;
    assert_eq!(later.status, StatusCode::CREATED, "{later:?}");
    assert!(payment_ids.contains(&later.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_payments_with_one_key_through_three_servers_debit_the_fund_exactly_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let servers = [
        app.address.clone(),
        crate::concurrency::second_server(&app).await,
        crate::concurrency::second_server(&app).await,
    ];
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "300").await;
    app.approve_by(id, &[&c.head]).await;

    let (app, treasury, servers) = (&app, &c.treasury, &servers);
    let replies = join_all((0..10).map(|i| async move {
        let server = &servers[i % servers.len()];
        let resp = app
            .client
            .post(format!("{server}{PAYMENTS}"))
            .bearer_auth(&treasury.token)
            .header("idempotency-key", "pay-race")
            .json(&payment(id))
            .send()
            .await
            .expect("request failed");
        TestApp::reply(resp).await
    }))
    .await;
    eprintln!(
        "10 payments with one key via 3 servers: {:?}",
        replies
            .iter()
            .map(|r| format!(
                "{} {}{}",
                r.status.as_u16(),
                r.code(),
                if replayed(r) { "replayed" } else { "" }
            ))
            .collect::<Vec<_>>()
    );
    for r in &replies {
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT,
            "only 201 or 409, never a 500: {r:?}"
        );
    }
    let payment_ids: HashSet<Uuid> =
        replies.iter().filter(|r| r.status == StatusCode::CREATED).map(Reply::id).collect();
    assert_eq!(payment_ids.len(), 1, "every 201 shows the same payment");
    assert_eq!(app.balance(&c.staff, fund).await, "4700".parse::<Decimal>().unwrap());
    assert_eq!(count_of(app, "CashDisbursed").await, 1);
    assert_eq!(stored_keys(app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_creations_with_one_key_create_one_requisition() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let body = new_requisition(fund, "Toner");
    let replies =
        join_all((0..10).map(|_| app.post_idempotent(&c.staff, REQUISITIONS, "create-race", body.clone())))
            .await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::CREATED, "every answer is the creation: {r:?}");
    }
    let ids: HashSet<Uuid> = replies.iter().map(Reply::id).collect();
    assert_eq!(ids.len(), 1, "one requisition id for all: {ids:?}");
    assert_eq!(replies.iter().filter(|r| !replayed(r)).count(), 1);
    assert_eq!(count_of(&app, "RequisitionCreated").await, 1);
    assert_eq!(stored_keys(&app).await, 1);
}

#[tokio::test]
async fn a_failed_command_with_a_key_stores_nothing_and_fails_the_same_way_again() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "500").await;
    let id = app.submitted(&c.staff, fund, "900").await;
    app.approve_by(id, &[&c.head]).await;
    let events = app.event_count().await;
    let keys = stored_keys(&app).await;

    for _ in 0..2 {
        let r = app.post_idempotent(&c.treasury, PAYMENTS, "pay-too-much", payment(id)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(r.code(), "insufficient_funds", "{r:?}");
        assert!(!replayed(&r), "a failure is not stored, so not replayed: {r:?}");
        assert_eq!(app.event_count().await, events);
        assert_eq!(stored_keys(&app).await, keys);
    }
    assert_eq!(app.balance(&c.staff, fund).await, "500".parse::<Decimal>().unwrap());

    // The key was not used up: it can carry another request that succeeds.
    let small = app.submitted(&c.staff, fund, "200").await;
    app.approve_by(small, &[&c.head]).await;
    let r = app.post_idempotent(&c.treasury, PAYMENTS, "pay-too-much", payment(small)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["fund_balance_after"], "300.00");
}

#[tokio::test]
async fn a_validation_failure_with_a_key_stores_nothing() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let bad = json!({"fund_id": fund, "amount": "-1", "purpose": "Toner"});
    for _ in 0..2 {
        let r = app.post_idempotent(&c.staff, REQUISITIONS, "v", bad.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(r.code(), "amount_not_positive", "{r:?}");
    }
    assert_eq!(stored_keys(&app).await, 0);
    let r = app.post_idempotent(&c.staff, REQUISITIONS, "v", new_requisition(fund, "Toner")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn an_empty_or_overlong_key_is_a_400_naming_the_header() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    for key in [String::new(), "   ".into(), "k".repeat(201)] {
        let r = app.post_idempotent(&c.staff, REQUISITIONS, &key, new_requisition(fund, "Toner")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "key {key:?}: {r:?}");
        assert_eq!(r.code(), "invalid_idempotency_key", "{r:?}");
        assert_eq!(r.field(), "Idempotency-Key", "{r:?}");
    }
    assert_eq!(app.event_count().await, events);
    let r = app.post_idempotent(&c.staff, REQUISITIONS, &"k".repeat(200), new_requisition(fund, "T")).await;
    assert_eq!(r.status, StatusCode::CREATED, "a 200-character key is fine: {r:?}");
}
