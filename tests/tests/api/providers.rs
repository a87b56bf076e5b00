//! Payments through the payment provider (issue #14 [treasury]), with the in-process simulator
//! behaving like M-Pesa B2C: the requisition is paid only when the provider's signed callback
//! (or, after the timeout, its status) says so; forged and repeated callbacks change nothing;
//! a failure releases the reservation; a lost request is sent again with the same id and a
//! retryable failure with a new one, never paying twice.

use pettycash_commands::providers::simulator::{Callback, Script, Simulator, SIGNATURE_HEADER};
use pettycash_commands::providers::AttemptStatus;
use pettycash_commands::providers::PaymentProvider;
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn app() -> TestApp {
    // The tests tick the scheduler themselves.
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
    })
    .await
}

/// An approved requisition of `amount` from a fund of 5000.
pub(crate) async fn approved(app: &TestApp, c: &Cast, amount: &str) -> (Uuid, Uuid) {
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    (fund, id)
}

/// Pays requisition `id` by mobile money to `destination` (with a code): the reply.
pub(crate) async fn pay_mobile(
    app: &TestApp,
    c: &Cast,
    id: Uuid,
    destination: &str,
) -> pettycash_tests::Reply {
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let body =
        json!({"requisition_id": id, "method": "mobile_money", "destination": destination, "code": code});
    app.post(&c.treasury, "/api/treasury/payments/", body).await
}

pub(crate) async fn payment(app: &TestApp, c: &Cast, payment: Uuid) -> Value {
    let r = app.get(&c.auditor, &format!("/api/treasury/payments/{payment}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

/// The payment once it is no longer executing (the callback came).
pub(crate) async fn settled(app: &TestApp, c: &Cast, id: Uuid) -> Value {
    for _ in 0..200 {
        let p = payment(app, c, id).await;
        if p["status"] != "executing" {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("payment {id} still executing");
}

/// Waits until the simulator has decided attempt `attempt`.
async fn decided(app: &TestApp, attempt: &str) -> AttemptStatus {
    for _ in 0..200 {
        let s = app.simulator.status(attempt).await.unwrap();
        if s != AttemptStatus::Pending {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the simulator never decided {attempt}");
}

pub(crate) async fn fund_figures(app: &TestApp, c: &Cast, fund: Uuid) -> (String, String, String) {
    let r = app.get(&c.admin, &format!("/api/funds/{fund}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let s = |k: &str| r.body[k].as_str().unwrap().to_string();
    (s("balance"), s("reserved"), s("available"))
}

pub(crate) async fn status_of(app: &TestApp, c: &Cast, requisition: Uuid) -> String {
    let r = app.get(&c.admin, &format!("/api/requisitions/{requisition}")).await;
    r.body["status"].as_str().unwrap_or_default().to_string()
}

async fn count(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// POSTs a callback body with `signature` (None: no header).
async fn callback(app: &TestApp, body: &Value, signature: Option<String>) -> StatusCode {
    let mut req = app.client.post(format!("{}/api/providers/simulator/callback", app.address)).json(body);
    if let Some(s) = signature {
        req = req.header(SIGNATURE_HEADER, s);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn mobile_money_is_paid_only_when_the_provider_calls_back() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    // A destination is needed and must be a mobile number.
    for bad in [json!(null), json!("12345"), json!("0812345678")] {
        let r = app.request_code(&c.treasury, id, "mobile_money").await;
        let code = match r.status {
            StatusCode::CREATED => app.queued_payment_code(&c.treasury.email, id).await,
            _ => "000000".into(),
        };
        let body = json!({"requisition_id": id, "method": "mobile_money", "destination": bad, "code": code});
        let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "destination"), "{r:?}");
        app.clock.advance(chrono::Duration::seconds(30));
    }
    app.simulator.script("254712000001", Script::result("0").delay(Duration::from_secs(3)));
    let r = pay_mobile(&app, &c, id, "0712 000 001").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "executing");
    let pid = r.id();
    // Sent, not paid yet: the cash is reserved.
    let p = payment(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["attempts"].as_i64()), (Some("executing"), Some(1)), "{p}");
    assert_eq!(p["destination"], "254712000001");
    assert_eq!(p["current_attempt_id"], format!("{pid}-1"));
    assert_eq!(status_of(&app, &c, id).await, "approved");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
    let sent = app.simulator.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].originator_conversation_id.as_str(),
            sent[0].destination.as_str(),
            sent[0].amount.to_string()
        ),
        (format!("{pid}-1").as_str(), "254712000001", "300.00".to_string())
    );

    let p = settled(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["last_result_code"].as_str()), (Some("succeeded"), Some("0")), "{p}");
    assert!(p["provider_receipt"].as_str().unwrap().starts_with("SIM"), "{p}");
    assert_eq!(status_of(&app, &c, id).await, "paid");
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
    // Only payment readers read it; an unknown id is 404.
    let r = app.get(&c.staff, &format!("/api/treasury/payments/{pid}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = app.get(&c.auditor, &format!("/api/treasury/payments/{}", Uuid::now_v7())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}

#[tokio::test]
async fn two_callbacks_for_one_payment_pay_once() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.simulator.script("254712000002", Script::result("0").callback(Callback::Twice));
    let r = pay_mobile(&app, &c, id, "254712000002").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let pid = r.id();
    let p = settled(&app, &c, pid).await;
    assert_eq!(p["status"], "succeeded", "{p}");
    // Both deliveries are in; one more, replayed by hand, signed: still once.
    let status = decided(&app, &format!("{pid}-1")).await;
    let body = Simulator::callback_body(&format!("{pid}-1"), &status);
    let signature = app.simulator.sign(&serde_json::to_vec(&body).unwrap());
    assert_eq!(callback(&app, &body, Some(signature)).await, StatusCode::OK);
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
    assert_eq!((count(&app, "RequisitionPaid").await, count(&app, "CashDisbursed").await), (1, 1));
    assert_eq!(payment(&app, &c, pid).await, p, "nothing changed");
}

#[tokio::test]
async fn a_forged_callback_is_refused_and_changes_nothing() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.simulator.script("254712000003", Script::result("0").callback(Callback::Never));
    let r = pay_mobile(&app, &c, id, "254712000003").await;
    let pid = r.id();
    let receipt = AttemptStatus::Succeeded { receipt: "FORGED0001".into() };
    let body = Simulator::callback_body(&format!("{pid}-1"), &receipt);
    let other_key = Simulator::new(b"not the shared secret", Duration::ZERO);
    for signature in [None, Some("zz".to_string()), Some(other_key.sign(&serde_json::to_vec(&body).unwrap()))]
    {
        assert_eq!(callback(&app, &body, signature).await, StatusCode::UNAUTHORIZED);
    }
    // Signed over another body: refused too.
    let signature = app.simulator.sign(b"{}");
    assert_eq!(callback(&app, &body, Some(signature)).await, StatusCode::UNAUTHORIZED);
    let p = payment(&app, &c, pid).await;
    assert_eq!(p["status"], "executing", "{p}");
    assert_eq!(status_of(&app, &c, id).await, "approved");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
    assert_eq!(count(&app, "RequisitionPaid").await, 0);
}

#[tokio::test]
async fn a_provider_failure_releases_the_reservation_and_the_requisition_can_be_paid_again() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.simulator.script("254712000004", Script::result("2003"));
    let r = pay_mobile(&app, &c, id, "254712000004").await;
    let pid = r.id();
    let p = settled(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["last_result_code"].as_str()), (Some("failed"), Some("2003")), "{p}");
    assert_eq!(p["attempts"], 1, "an unregistered recipient is not retried: {p}");
    assert_eq!(status_of(&app, &c, id).await, "approved");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));
    // Paid again, to a good number: a new payment.
    app.clock.advance(chrono::Duration::seconds(30));
    let r = pay_mobile(&app, &c, id, "254712000005").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_ne!(r.id(), pid);
    assert_eq!(settled(&app, &c, r.id()).await["status"], "succeeded");
    assert_eq!(status_of(&app, &c, id).await, "paid");
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
}

#[tokio::test]
async fn a_timed_out_payment_is_asked_after_then_sent_again_or_retried_and_never_paid_twice() {
    use pettycash_commands::scheduler::tick;
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    let to = "254712000006";
    // The first request never reaches the provider; sent again (same id), it fails with a
    // retryable code and no callback; the new attempt succeeds, its callback lost too.
    app.simulator.script(to, Script::result("0").callback(Callback::LostRequest));
    app.simulator.script(to, Script::result("2001").callback(Callback::Never));
    app.simulator.script(to, Script::result("0").callback(Callback::Never).delay(Duration::from_secs(2)));
    let r = pay_mobile(&app, &c, id, to).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let pid = r.id();
    let first = format!("{pid}-1");
    assert!(app.simulator.requests().is_empty(), "lost on the way");

    // Before the timeout nothing is asked.
    app.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(tick(&app.service).await.unwrap().chased, 0);
    // At the timeout: NotFound at the provider → sent again with the same id.
    app.clock.advance(chrono::Duration::minutes(1));
    let t = tick(&app.service).await.unwrap();
    assert_eq!((t.timed_out, t.chased), (1, 1), "{t:?}");
    let ids = |app: &TestApp| {
        app.simulator.requests().into_iter().map(|r| r.originator_conversation_id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&app), std::slice::from_ref(&first));
    assert_eq!(payment(&app, &c, pid).await["attempts"], 1);
    // It fails (2001, retryable) without a callback; found by the status query after the
    // timeout: a new attempt id, the cash still reserved.
    assert!(matches!(decided(&app, &first).await, AttemptStatus::Failed { .. }));
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(tick(&app.service).await.unwrap().chased, 1);
    let second = format!("{pid}-2");
    assert_eq!(ids(&app), [first.clone(), second.clone()]);
    let p = payment(&app, &c, pid).await;
    assert_eq!(
        (p["status"].as_str(), p["attempts"].as_i64(), p["last_result_code"].as_str()),
        (Some("executing"), Some(2), Some("2001")),
        "{p}"
    );
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
    // Still pending at the provider: left alone.
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(tick(&app.service).await.unwrap().chased, 0);
    assert_eq!(ids(&app).len(), 2);
    // Succeeded at the provider: settled from the status query, once.
    assert!(matches!(decided(&app, &second).await, AttemptStatus::Succeeded { .. }));
    assert_eq!(tick(&app.service).await.unwrap().chased, 1);
    assert_eq!(tick(&app.service).await.unwrap().chased, 0);
    let p = payment(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{p}");
    assert_eq!(status_of(&app, &c, id).await, "paid");
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
    assert_eq!((count(&app, "RequisitionPaid").await, count(&app, "CashDisbursed").await), (1, 1));
    assert_eq!(ids(&app), [first, second], "no further request");
}

#[tokio::test]
async fn a_retryable_failure_with_no_retries_left_fails_the_payment() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    let r = app.put(&c.admin, "/api/settings/payment_max_retries", json!({"value": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let to = "254712000007";
    app.simulator.script(to, Script::result("2004"));
    app.simulator.script(to, Script::result("2004"));
    let pid = pay_mobile(&app, &c, id, to).await.id();
    let p = settled(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["attempts"].as_i64()), (Some("failed"), Some(2)), "{p}");
    assert_eq!(app.simulator.requests().len(), 2);
    assert_eq!(status_of(&app, &c, id).await, "approved");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));
}

#[tokio::test]
async fn a_payment_sent_again_with_its_idempotency_key_is_answered_as_before_and_sent_once() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    app.simulator.script("254712000008", Script::result("0").callback(Callback::Never));
    let body =
        json!({"requisition_id": id, "method": "mobile_money", "destination": "254712000008", "code": code});
    let first = app.post_idempotent(&c.treasury, "/api/treasury/payments/", "pay-once", body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    let again = app.post_idempotent(&c.treasury, "/api/treasury/payments/", "pay-once", body).await;
    assert_eq!((again.status, again.id()), (StatusCode::ACCEPTED, first.id()), "{again:?}");
    assert_eq!(app.simulator.requests().len(), 1, "sent to the provider once");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
}
