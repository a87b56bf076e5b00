//! Requests that really race: many payments of one requisition, payments that together exceed
//! the fund, two approvers at once, many creations at once. What a user observes must stay
//! consistent: no double payment, no negative balance, never a 500.

use futures::future::join_all;
use pettycash_api::config::Config;
use pettycash_api::startup::Application;
use pettycash_domain::Role;
use pettycash_tests::serde_json::json;
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::collections::HashSet;
use uuid::Uuid;

/// Number of `CashDisbursed` events for one requisition.
async fn disbursements_of(app: &TestApp, requisition: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'
         AND payload->'CashDisbursed'->>'requisition_id' = $1",
    )
    .bind(requisition.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Number of `CashDisbursed` events in the store.
async fn disbursement_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Sum of the amounts of every `CashDisbursed` event in the store.
async fn disbursed_total(app: &TestApp) -> Decimal {
    sqlx::query_scalar(
        "SELECT coalesce(sum((payload->'CashDisbursed'->>'amount')::numeric), 0)
         FROM events WHERE event_type = 'CashDisbursed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Held by a test that races three servers for its whole run. Each such server may open its
/// requests' pool, its background pool and a lease connection per projection worker; two of
/// these tests side by side (the test runner runs two at once) went past the shared test
/// PostgreSQL's 100 connections ("too many clients": 503 `database_unavailable`). A deployment
/// sizes its pools against `max_connections` (runbook); the tests, which share one server,
/// take turns instead.
static THREE_SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Another server on the same database, with its own pool and command service, as a second
/// process would be: it shares no in-process locks with `app`. Returns its base address.
pub(crate) async fn second_server(app: &TestApp) -> String {
    second_server_with(app, |_| {}).await
}

/// [`second_server`] with its configuration adjusted by `adjust`.
pub(crate) async fn second_server_with(app: &TestApp, adjust: impl FnOnce(&mut Config)) -> String {
    // Ten connections: enough for its share of a race, and two tests with three servers each
    // stay well under PostgreSQL's default of 100 connections.
    let pool = pettycash_api::database::pool(&app.database_url, 10).await.expect("second pool");
    let mut config = Config::development();
    config.database_url = Some(app.database_url.clone().into());
    config.bind = "127.0.0.1:0".parse().unwrap();
    // As the first server: mail waits in the outbox, no folder is written.
    config.mail.transport = pettycash_api::config::MailTransportConfig::Queue;
    adjust(&mut config);
    let server = Application::build(config, pool).await.expect("build second server");
    let address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    address
}

/// Pays `id` as `payer` through the server at `address`.
pub(crate) async fn pay_at(app: &TestApp, address: &str, payer: &TestUser, id: Uuid) -> Reply {
    let resp = app
        .client
        .post(format!("{address}/api/treasury/payments/"))
        .bearer_auth(&payer.token)
        .json(&json!({"requisition_id": id, "method": "cash"}))
        .send()
        .await
        .expect("request failed");
    TestApp::reply(resp).await
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn tally(replies: &[Reply]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in replies {
        *counts.entry(format!("{} {}", r.status.as_u16(), r.code())).or_default() += 1;
    }
    format!("{counts:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_payments_of_one_requisition_pay_it_exactly_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let (t2, t3, t4, t5) = tokio::join!(
        app.user(&[Role::Treasury]),
        app.user(&[Role::Treasury]),
        app.user(&[Role::Treasury]),
        app.user(&[Role::Treasury]),
    );
    let payers = [&c.treasury, &t2, &t3, &t4, &t5];
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "750.25").await;
    app.approve_by(id, &[&c.head]).await;

    let replies = join_all((0..50).map(|i| app.pay(payers[i % payers.len()], id))).await;
    eprintln!("50 payments of one requisition: {}", tally(&replies));

    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    assert_eq!(created.len(), 1, "exactly one payment succeeds: {}", tally(&replies));
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.status, StatusCode::CONFLICT, "a losing payment is a 409, never a 500: {r:?}");
        assert!(
            ["already_paid", "conflict"].contains(&r.code()),
            "a losing payment says already_paid or conflict: {r:?}"
        );
    }
    assert_eq!(created[0].body["amount"], "750.25");
    assert_eq!(created[0].body["fund_balance_after"], "4249.75");

    assert_eq!(app.balance(&c.staff, fund).await, dec("5000") - dec("750.25"));
    assert_eq!(disbursements_of(&app, id).await, 1, "exactly one CashDisbursed for the requisition");
    assert_eq!(disbursement_count(&app).await, 1);
    let paid = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["payment"]["payment_id"], created[0].body["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_exceeding_the_fund_never_overdraw_it() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let t2 = app.user(&[Role::Treasury]).await;
    let float = dec("1000");
    let amount = dec("100");
    let fund = app.fund(&c.admin, "1000").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let id = app.submitted(&c.staff, fund, "100").await;
        app.approve_by(id, &[&c.head]).await;
        ids.push(id);
    }
    let events_before = app.event_count().await;

    let replies = join_all(ids.iter().enumerate().map(|(i, id)| {
        let payer = if i % 2 == 0 { &c.treasury } else { &t2 };
        app.pay(payer, *id)
    }))
    .await;
    eprintln!("20 payments of 100 from a float of 1000: {}", tally(&replies));

    let mut successes = 0i64;
    let mut conflicted = Vec::new();
    for (id, r) in ids.iter().zip(&replies) {
        match r.status {
            StatusCode::CREATED => {
                successes += 1;
                assert_eq!(r.body["amount"], "100.00");
                let left: Decimal = r.body["fund_balance_after"].as_str().unwrap().parse().unwrap();
                assert!(left >= Decimal::ZERO, "a receipt shows a negative balance: {r:?}");
            }
            StatusCode::CONFLICT => {
                assert!(
                    ["insufficient_funds", "conflict"].contains(&r.code()),
                    "a refused payment says insufficient_funds or conflict: {r:?}"
                );
                if r.code() == "conflict" {
                    conflicted.push(*id);
                }
            }
            other => panic!("a payment answered {other} (only 201 or 409 are acceptable): {r:?}"),
        }
    }
    assert!(successes >= 1, "at least one payment goes through: {}", tally(&replies));
    assert!(successes <= 10, "more paid than the float holds: {}", tally(&replies));

    let balance = app.balance(&c.staff, fund).await;
    assert!(balance >= Decimal::ZERO, "the fund went negative: {balance}");
    assert_eq!(balance, float - amount * Decimal::from(successes));
    assert_eq!(disbursed_total(&app).await, float - balance, "CashDisbursed amounts add up to what left");
    assert_eq!(disbursement_count(&app).await, successes);
    // Each success appends RequisitionPaid + CashDisbursed; failures append nothing.
    assert_eq!(app.event_count().await, events_before + 2 * successes);

    // A refusal for insufficient funds must be true: the balance only goes down, so once one
    // payment was refused for it, the fund cannot cover another 100 at the end.
    if replies.iter().any(|r| r.code() == "insufficient_funds") {
        assert!(balance < amount, "insufficient_funds was answered while {balance} remained");
    }

    // With enough retries the feasible ones succeed: retrying the payments that lost a race
    // (one at a time now) leaves no requisition unpaid that the fund could still cover.
    for id in conflicted {
        let r = app.pay(&c.treasury, id).await;
        assert!(
            r.status == StatusCode::CREATED || r.code() == "insufficient_funds",
            "a retried payment: {r:?}"
        );
    }
    let balance = app.balance(&c.staff, fund).await;
    assert!(balance >= Decimal::ZERO && balance < amount, "feasible payments left unpaid: {balance}");
    assert_eq!(disbursed_total(&app).await, float - balance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_department_heads_approving_the_same_step_at_once_record_one_approval() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let head2 = app.user(&[Role::DepartmentHead]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "400").await;
    let events_before = app.event_count().await;

    let path = format!("/api/requisitions/{id}/approve");
    let (a, b) = tokio::join!(app.post(&c.head, &path, json!({})), app.post(&head2, &path, json!({})));
    eprintln!("two approvals: {} {} / {} {}", a.status, a.code(), b.status, b.code());

    let (ok, other) = match (a.status, b.status) {
        (StatusCode::OK, _) => (&a, &b),
        (_, StatusCode::OK) => (&b, &a),
        _ => panic!("neither approval succeeded: {a:?} {b:?}"),
    };
    assert_ne!(other.status, StatusCode::OK, "both approvals succeeded: {a:?} {b:?}");
    assert!(
        (other.status == StatusCode::CONFLICT && other.code() == "invalid_state")
            || other.status == StatusCode::FORBIDDEN,
        "the second approval is 409 invalid_state or 403: {other:?}"
    );
    assert_eq!(ok.body["status"], "approved");

    let r = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.body["status"], "approved");
    let approvals = r.body["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "exactly one approval: {r:?}");
    assert_eq!(approvals[0]["approver_id"], ok.body["approvals"][0]["approver_id"]);
    assert_eq!(app.event_count().await, events_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_creations_all_succeed_with_distinct_ids() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events_before = app.event_count().await;

    let replies = join_all((0..30).map(|i| {
        let who = if i % 2 == 0 { &c.staff } else { &staff2 };
        app.post(
            who,
            "/api/requisitions/",
            json!({"fund_id": fund, "amount": format!("{}.50", i + 1), "purpose": format!("Item {i}")}),
        )
    }))
    .await;

    for r in &replies {
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let ids: HashSet<Uuid> = replies.iter().map(Reply::id).collect();
    assert_eq!(ids.len(), 30, "ids are distinct");
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.body["amount"], format!("{}.50", i + 1));
        assert_eq!(r.body["status"], "draft");
    }
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'RequisitionCreated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(created, 30);
    assert_eq!(app.event_count().await, events_before + 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_payments_of_one_requisition_through_three_servers_pay_it_exactly_once() {
    let _turn = THREE_SERVERS.lock().await;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let t2 = app.user(&[Role::Treasury]).await;
    let servers = [app.address.clone(), second_server(&app).await, second_server(&app).await];
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "750.25").await;
    app.approve_by(id, &[&c.head]).await;

    let replies = join_all((0..50).map(|i| {
        let payer = if i % 2 == 0 { &c.treasury } else { &t2 };
        pay_at(&app, &servers[i % servers.len()], payer, id)
    }))
    .await;
    eprintln!("50 payments of one requisition via 3 servers: {}", tally(&replies));

    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "exactly one payment succeeds: {}", tally(&replies));
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.status, StatusCode::CONFLICT, "a losing payment is a 409, never a 500: {r:?}");
        assert!(["already_paid", "conflict"].contains(&r.code()), "{r:?}");
    }
    assert_eq!(app.balance(&c.staff, fund).await, dec("5000") - dec("750.25"));
    assert_eq!(disbursements_of(&app, id).await, 1);
    assert_eq!(disbursement_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_exceeding_the_fund_through_three_servers_never_overdraw_it() {
    let _turn = THREE_SERVERS.lock().await;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let servers = [app.address.clone(), second_server(&app).await, second_server(&app).await];
    let float = dec("1000");
    let amount = dec("100");
    let fund = app.fund(&c.admin, "1000").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let id = app.submitted(&c.staff, fund, "100").await;
        app.approve_by(id, &[&c.head]).await;
        ids.push(id);
    }
    let events_before = app.event_count().await;

    let replies = join_all(
        ids.iter().enumerate().map(|(i, id)| pay_at(&app, &servers[i % servers.len()], &c.treasury, *id)),
    )
    .await;
    eprintln!("20 payments of 100 from a float of 1000 via 3 servers: {}", tally(&replies));

    let mut successes = 0i64;
    for r in &replies {
        match r.status {
            StatusCode::CREATED => successes += 1,
            StatusCode::CONFLICT => assert!(
                ["insufficient_funds", "conflict"].contains(&r.code()),
                "a refused payment says insufficient_funds or conflict: {r:?}"
            ),
            other => panic!("a payment answered {other} (only 201 or 409 are acceptable): {r:?}"),
        }
    }
    assert!(successes >= 1, "at least one payment goes through: {}", tally(&replies));
    assert!(successes <= 10, "more paid than the float holds: {}", tally(&replies));
    let balance = app.balance(&c.staff, fund).await;
    assert!(balance >= Decimal::ZERO, "the fund went negative: {balance}");
    assert_eq!(balance, float - amount * Decimal::from(successes));
    assert_eq!(disbursed_total(&app).await, float - balance);
    assert_eq!(disbursement_count(&app).await, successes);
    assert_eq!(app.event_count().await, events_before + 2 * successes);
    if replies.iter().any(|r| r.code() == "insufficient_funds") {
        assert!(balance < amount, "insufficient_funds was answered while {balance} remained");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_and_paying_at_once_leaves_each_requisition_either_paid_or_cancelled() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About races and keys, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "5000").await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = app.submitted(&c.staff, fund, "100").await;
        app.approve_by(id, &[&c.head]).await;
        ids.push(id);
    }

    let (app, c) = (&app, &c);
    let races = join_all(ids.iter().map(|id| async move {
        let cancel = format!("/api/requisitions/{id}/cancel");
        tokio::join!(
            app.pay(&c.treasury, *id),
            app.post(&c.staff, &cancel, json!({"reason": "no longer needed"}))
        )
    }))
    .await;

    let mut paid = 0i64;
    for (id, (pay, cancel)) in ids.iter().zip(&races) {
        let state = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
        match (pay.status, cancel.status) {
            (StatusCode::CREATED, StatusCode::CONFLICT) => {
                assert_eq!(cancel.code(), "already_paid", "{cancel:?}");
                assert_eq!(state.body["status"], "paid");
                paid += 1;
            }
            (StatusCode::CONFLICT, StatusCode::OK) => {
                assert!(["not_approved", "conflict"].contains(&pay.code()), "{pay:?}");
                assert_eq!(state.body["status"], "cancelled");
            }
            _ => panic!("pay and cancel must not both succeed or both fail: {pay:?} {cancel:?}"),
        }
        assert_eq!(disbursements_of(app, *id).await, i64::from(state.body["status"] == "paid"));
    }
    eprintln!("pay vs cancel: {paid} paid, {} cancelled", 10 - paid);
    assert_eq!(app.balance(&c.staff, fund).await, dec("5000") - dec("100") * Decimal::from(paid));
}
