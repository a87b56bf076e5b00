//! Payment reconciliation (issue #14 [treasury]): treasury matches a succeeded bank or
//! mobile-money payment with a statement line, once, never their own payment; a cash payment
//! or one that has not succeeded is refused; the fund's ledger and the payment's read show it.

use pettycash_commands::providers::simulator::{Callback, Script};
use pettycash_domain::Role;
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
    })
    .await
}

/// An approved requisition of `amount` from a fund of 5000: (fund, requisition).
async fn approved(app: &TestApp, c: &Cast, amount: &str) -> (Uuid, Uuid) {
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    (fund, id)
}

/// Pays `id` by mobile money to `msisdn` (scripted `script`), as `c.treasury`: the payment id.
async fn pay_mobile(app: &TestApp, c: &Cast, id: Uuid, msisdn: &str, script: Script) -> Uuid {
    app.simulator.script(msisdn, script);
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let body = json!({"requisition_id": id, "method": "mobile_money", "destination": msisdn, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    r.id()
}

async fn payment(app: &TestApp, c: &Cast, payment: Uuid) -> Value {
    let r = app.get(&c.auditor, &format!("/api/treasury/payments/{payment}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

/// Waits until the provider's result settled payment `id`.
async fn succeeded(app: &TestApp, c: &Cast, id: Uuid) {
    for _ in 0..200 {
        if payment(app, c, id).await["status"] == "succeeded" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("payment {id} never succeeded");
}

/// A succeeded mobile-money payment of 300: (fund, requisition, payment).
async fn paid_by_mobile(app: &TestApp, c: &Cast, msisdn: &str) -> (Uuid, Uuid, Uuid) {
    let (fund, id) = approved(app, c, "300").await;
    let pid = pay_mobile(app, c, id, msisdn, Script::result("0")).await;
    succeeded(app, c, pid).await;
    (fund, id, pid)
}

async fn reconcile(app: &TestApp, by: &TestUser, payment: Uuid, reference: &str) -> Reply {
    let body = json!({"statement_reference": reference});
    app.post(by, &format!("/api/treasury/payments/{payment}/reconcile"), body).await
}

/// The fund's ledger once the read model has `position`.
async fn ledger(app: &TestApp, c: &Cast, fund: Uuid, position: i64) -> Vec<Value> {
    let r = app.get(&c.auditor, &format!("/api/funds/{fund}/ledger?min_position={position}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

async fn count(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_succeeded_mobile_payment_is_reconciled_once_and_the_ledger_shows_it() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let reconciler = app.user(&[Role::Treasury]).await;
    let (fund, id, pid) = paid_by_mobile(&app, &c, "254712000101").await;

    // Bad references name the field.
    for bad in ["", "   ", &"x".repeat(65), "STMT\u{7}1"] {
        let r = reconcile(&app, &reconciler, pid, bad).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "statement_reference"), "{r:?}");
    }
    // Not treasury: 403; the person who paid: 403 four eyes.
    let r = reconcile(&app, &c.staff, pid, "STMT-1").await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");
    let r = reconcile(&app, &c.treasury, pid, "STMT-1").await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "four_eyes"), "{r:?}");
    assert_eq!(count(&app, "PaymentReconciled").await, 0);

    let r = reconcile(&app, &reconciler, pid, "  STMT-1  ").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["statement_reference"], &r.body["changed"], &r.body["method"], &r.body["requisition_id"]),
        (&json!("STMT-1"), &json!(true), &json!("mobile_money"), &json!(id.to_string())),
        "{r:?}"
    );
    assert_eq!(r.body["reconciled_by"], reconciler.id.to_string());
    let position = r.body["position"].as_i64().unwrap();
    assert!(position > 0);

    // The same reference again: nothing recorded; another one: 409.
    let again = reconcile(&app, &reconciler, pid, "STMT-1").await;
    assert_eq!((again.status, &again.body["changed"]), (StatusCode::OK, &json!(false)), "{again:?}");
    assert_eq!(again.body["reconciled_at"], r.body["reconciled_at"]);
    let other = reconcile(&app, &c.treasury, pid, "STMT-2").await;
    assert_eq!((other.status, other.code()), (StatusCode::CONFLICT, "already_reconciled"), "{other:?}");
    assert_eq!(count(&app, "PaymentReconciled").await, 1);

    // The payment's read shows it.
    let p = payment(&app, &c, pid).await;
    assert_eq!((&p["reconciled_reference"], &p["reconciled_by"]), (&json!("STMT-1"), &json!(reconciler.id)));
    assert_eq!(p["reconciled_at"], r.body["reconciled_at"]);

    // The ledger: the reservation (amount 0, reserved 300), then the disbursement that
    // consumes it, reconciled.
    let lines = ledger(&app, &c, fund, position).await;
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opening", "reservation", "disbursement"], "{lines:#?}");
    let (reservation, disbursement) = (&lines[1], &lines[2]);
    assert_eq!(
        (&reservation["amount"], &reservation["balance_after"], &reservation["reserved"]),
        (&json!("0"), &json!("5000.00"), &json!("300.00"))
    );
    assert_eq!(
        (&reservation["reserved_after"], &reservation["available_after"]),
        (&json!("300.00"), &json!("4700.00"))
    );
    assert_eq!(reservation["reconciled_reference"], Value::Null);
    assert_eq!(
        (&disbursement["amount"], &disbursement["balance_after"], &disbursement["reserved_after"]),
        (&json!("-300.00"), &json!("4700.00"), &json!("0"))
    );
    assert_eq!(disbursement["payment_id"], pid.to_string());
    assert_eq!(disbursement["reconciled_reference"], "STMT-1");
    assert_eq!(disbursement["reconciled_at"], r.body["reconciled_at"]);
    // The payments list too.
    let list = app.get(&c.auditor, &format!("/api/treasury/payments?fund_id={fund}")).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    assert_eq!(list.body["items"][0]["reconciled_reference"], "STMT-1", "{list:?}");
}

#[tokio::test]
async fn a_cash_payment_or_one_not_succeeded_cannot_be_reconciled() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let reconciler = app.user(&[Role::Treasury]).await;
    // Cash.
    let (fund, id) = approved(&app, &c, "120").await;
    let r = app.pay(&c.treasury, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let cash = r.id();
    ledger(&app, &c, fund, r.body["position"].as_i64().unwrap()).await;
    let r = reconcile(&app, &reconciler, cash, "STMT-9").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_reconcilable"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("cash"), "{r:?}");
    // Still executing with the provider.
    let (_, id) = approved(&app, &c, "80").await;
    let pid = pay_mobile(&app, &c, id, "254712000102", Script::result("0").callback(Callback::Never)).await;
    let r = reconcile(&app, &reconciler, pid, "STMT-9").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_reconcilable"), "{r:?}");
    // Unknown payment.
    let r = reconcile(&app, &reconciler, Uuid::now_v7(), "STMT-9").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(count(&app, "PaymentReconciled").await, 0);
}

#[tokio::test]
async fn concurrent_reconciliations_with_different_references_record_exactly_one() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let (a, b) = tokio::join!(app.user(&[Role::Treasury]), app.user(&[Role::Treasury]));
    for round in 0..3 {
        let (_, _, pid) = paid_by_mobile(&app, &c, &format!("25471200020{round}")).await;
        let (ra, rb) = tokio::join!(reconcile(&app, &a, pid, "STMT-A"), reconcile(&app, &b, pid, "STMT-B"));
        let mut statuses = [(ra.status, ra.code().to_string()), (rb.status, rb.code().to_string())];
        statuses.sort();
        assert_eq!(
            statuses,
            [(StatusCode::OK, String::new()), (StatusCode::CONFLICT, "already_reconciled".to_string())],
            "round {round}: {ra:?} {rb:?}"
        );
        let winner = if ra.status == StatusCode::OK { "STMT-A" } else { "STMT-B" };
        assert_eq!(payment(&app, &c, pid).await["reconciled_reference"], winner);
    }
    assert_eq!(count(&app, "PaymentReconciled").await, 3);
}
