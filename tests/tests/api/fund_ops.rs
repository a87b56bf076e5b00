//! Fund operations (issue #14 [treasury]): settings, replenishment (raised once under
//! concurrent payments), cash counts and variances (the difference, applied once), period
//! close and closing a fund. What a user observes: replies, balances, the cash book.

use futures::future::join_all;
use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use uuid::Uuid;

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("not an amount: {v}")).parse().unwrap()
}

async fn events_of(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Opens a KES fund with a reorder level.
async fn fund_with_reorder(app: &TestApp, admin: &TestUser, float: &str, reorder: &str) -> Uuid {
    let body = json!({"name": "Ops fund", "currency": "KES", "float": float, "reorder_level": reorder});
    let r = app.post(admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["reorder_level"], reorder);
    assert_eq!(r.body["auto_replenish"], true, "on by default");
    r.id()
}

/// An approved requisition of `amount` from `fund`.
async fn approved(app: &TestApp, c: &Cast, fund: Uuid, amount: &str) -> Uuid {
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    id
}

async fn fund_view(app: &TestApp, user: &TestUser, fund: Uuid) -> Value {
    let r = app.get(user, &format!("/api/funds/{fund}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

/// The cash book as the read model has it once it caught up with `reply`'s event.
async fn ledger_after(app: &TestApp, user: &TestUser, fund: Uuid, reply: &Reply) -> Vec<Value> {
    let position = reply.headers["x-event-position"].to_str().unwrap();
    let r = app.get(user, &format!("/api/funds/{fund}/ledger?min_position={position}&limit=200")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

/// The fund's row in the funds list (`rm_funds`) once it caught up with `reply`'s event.
async fn listed_after(app: &TestApp, user: &TestUser, fund: Uuid, reply: &Reply) -> Value {
    let position = reply.headers["x-event-position"].to_str().unwrap();
    let r = app.get(user, &format!("/api/funds/?min_position={position}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    items.iter().find(|f| f["id"] == json!(fund)).cloned().expect("the fund is listed")
}

#[tokio::test]
async fn a_replenishment_is_raised_once_under_20_concurrent_payments_and_funding_adds_it() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let t2 = app.user(&[Role::Treasury]).await;
    let fund = fund_with_reorder(&app, &c.admin, "3000", "2500.00").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(approved(&app, &c, fund, "100").await);
    }
    let replies = join_all(
        ids.iter().enumerate().map(|(i, id)| app.pay(if i % 2 == 0 { &c.treasury } else { &t2 }, *id)),
    )
    .await;
    let paid = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"), "only lost races fail: {r:?}");
    }
    assert!(paid >= 6, "enough payments to cross the reorder level: {paid}");
    assert_eq!(events_of(&app, "ReplenishmentRequested").await, 1, "raised once");

    let f = fund_view(&app, &c.admin, fund).await;
    let balance = dec(&f["balance"]);
    assert_eq!(balance, Decimal::from(3000 - 100 * paid as i64));
    let open = &f["replenishment"];
    // Raised by the payment that crossed the level: float − the balance it left (2400).
    assert_eq!(open["amount"], "600.00");
    assert_eq!((open["status"].as_str(), open["requested_by"].is_null()), (Some("requested"), true));
    assert_ne!(f["status"], "ok", "below its reorder level");
    let rid = open["id"].as_str().unwrap();

    // Nothing to fund before an approval; the automatic one is approved by any cfo.
    let path = format!("/api/funds/{fund}/replenishments/{rid}");
    let early = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-1"})).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "replenishment_state"), "{early:?}");
    let by_staff = app.post(&c.staff, &format!("{path}/approve"), json!({})).await;
    assert_eq!(by_staff.status, StatusCode::FORBIDDEN, "{by_staff:?}");
    let ok = app.post(&c.cfo, &format!("{path}/approve"), json!({})).await;
    assert_eq!((ok.status, ok.body["status"].as_str()), (StatusCode::OK, Some("approved")), "{ok:?}");
    let row = listed_after(&app, &c.admin, fund, &ok).await;
    assert_eq!(
        (&row["open_replenishment_id"], &row["open_replenishment_status"]),
        (&json!(rid), &json!("approved"))
    );
    assert_eq!(
        (&row["open_replenishment_amount"], &row["status"]),
        (&json!("600.00"), &f["status"]),
        "{row}"
    );
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-1"})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");
    assert_eq!(funded.body["status"], "funded");
    assert_eq!(dec(&funded.body["fund_balance"]), balance + Decimal::from(600));
    assert_eq!(app.balance(&c.admin, fund).await, balance + Decimal::from(600));
    let row = listed_after(&app, &c.admin, fund, &funded).await;
    assert!(row["open_replenishment_id"].is_null(), "{row}");
    assert_eq!(dec(&row["balance"]), balance + Decimal::from(600));
    let again = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-1"})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "funded once: {again:?}");

    let ledger = ledger_after(&app, &c.admin, fund, &funded).await;
    let line = ledger.iter().find(|m| m["kind"] == "replenishment").expect("a replenishment line");
    assert_eq!((line["amount"].as_str(), line["reference"].as_str()), (Some("600.00"), Some("FT-1")));
    assert_eq!(ledger.len(), 1 + paid + 1, "opening, payments, replenishment: {ledger:?}");
}

#[tokio::test]
async fn a_replenishment_raised_by_hand_is_approved_by_someone_else_and_only_one_is_open() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let none = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!((none.status, none.code()), (StatusCode::CONFLICT, "nothing_to_replenish"), "{none:?}");
    let id = approved(&app, &c, fund, "400").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);

    let raised = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(raised.status, StatusCode::CREATED, "{raised:?}");
    assert_eq!(
        (raised.body["amount"].as_str(), raised.body["status"].as_str()),
        (Some("400.00"), Some("requested"))
    );
    let second = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!((second.status, second.code()), (StatusCode::CONFLICT, "replenishment_open"), "{second:?}");
    let by_cfo = app.post(&c.cfo, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(by_cfo.status, StatusCode::FORBIDDEN, "treasury raises: {by_cfo:?}");

    let path = format!("/api/funds/{fund}/replenishments/{}", raised.id());
    let own = app.post(&c.treasury, &format!("{path}/approve"), json!({})).await;
    assert_eq!((own.status, own.code()), (StatusCode::FORBIDDEN, "four_eyes"), "{own:?}");
    let t2 = app.user(&[Role::Treasury]).await;
    let ok = app.post(&t2, &format!("{path}/approve"), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": " "})).await;
    assert_eq!(
        (funded.status, funded.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "bank_reference"),
        "{funded:?}"
    );
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-77"})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");
    assert_eq!(app.balance(&c.admin, fund).await, Decimal::from(1000));
    assert!(fund_view(&app, &c.admin, fund).await["replenishment"].is_null());

    // A rejected request closes too; a new one may be raised after it.
    let id = approved(&app, &c, fund, "10").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let raised = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    let path = format!("/api/funds/{fund}/replenishments/{}", raised.id());
    let rejected = app.post(&c.cfo, &format!("{path}/reject"), json!({"reason": "not yet"})).await;
    assert_eq!(rejected.body["status"], "rejected", "{rejected:?}");
    let raised = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(raised.status, StatusCode::CREATED, "{raised:?}");
}

#[tokio::test]
async fn an_admin_changes_fund_settings_by_an_event_never_its_balance() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let id = approved(&app, &c, fund, "250").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let path = format!("/api/funds/{fund}");
    let r = app
        .patch(
            &c.admin,
            &path,
            json!({"reorder_level": "800", "minimum_balance": "100", "custodian_id": c.staff.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["reorder_level"], &r.body["minimum_balance"], &r.body["custodian_id"], &r.body["balance"]),
        (&json!("800.00"), &json!("100.00"), &json!(c.staff.id), &json!("750.00"))
    );
    assert_eq!(r.body["status"], "warning", "750 is below 800, above 80 % of it");
    let row = listed_after(&app, &c.admin, fund, &r).await;
    assert_eq!(
        (&row["reorder_level"], &row["minimum_balance"], &row["status"], &row["custodian_id"]),
        (&json!("800.00"), &json!("100.00"), &json!("warning"), &json!(c.staff.id))
    );
    let r = app.patch(&c.admin, &path, json!({"balance": "5000"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "the balance is not a setting: {r:?}");
    let r = app.patch(&c.admin, &path, json!({"reorder_level": "1000.01"})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "reorder_level"), "{r:?}");
    let r = app.patch(&c.cfo, &path, json!({"auto_replenish": false})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = app.patch(&c.admin, &path, json!({"reorder_level": null})).await;
    assert!(r.body["reorder_level"].is_null(), "{r:?}");
    assert_eq!(r.body["minimum_balance"], "100.00", "untouched");
    assert_eq!(app.balance(&c.admin, fund).await, Decimal::from(750));
    assert_eq!(events_of(&app, "FundSettingsChanged").await, 2);
}

/// A fund of 1000 KES whose custodian is a new user with `roles`.
async fn counted_fund(app: &TestApp, c: &Cast, roles: &[Role]) -> (Uuid, TestUser) {
    let custodian = app.user(roles).await;
    let fund = app.fund(&c.admin, "1000").await;
    let r = app.patch(&c.admin, &format!("/api/funds/{fund}"), json!({"custodian_id": custodian.id})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    (fund, custodian)
}

#[tokio::test]
async fn a_variance_approved_by_another_moves_the_balance_by_the_difference_kept_payments_included() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, custodian) = counted_fund(&app, &c, &[Role::Staff, Role::Cfo]).await;
    let counts = format!("/api/funds/{fund}/counts");
    let bad = app.post(&custodian, &counts, json!({"counts": {"1000": 0, "3": 1}})).await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "counts"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("`3`"), "names it: {bad:?}");
    let stranger = app.post(&c.staff, &counts, json!({"counts": {"1000": 1}})).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{stranger:?}");

    // 500 + 2 × 200 = 900 against a book of 1000.
    let count = app.post(&custodian, &counts, json!({"counts": {"500": 1, "200": 2}})).await;
    assert_eq!(count.status, StatusCode::CREATED, "{count:?}");
    assert_eq!(
        (&count.body["counted"], &count.body["book_balance"], &count.body["variance"], &count.body["status"]),
        (&json!("900.00"), &json!("1000.00"), &json!("-100.00"), &json!("pending"))
    );
    assert_eq!(app.balance(&c.admin, fund).await, Decimal::from(1000), "not applied before approval");

    // A payment between the count and the approval is kept.
    let id = approved(&app, &c, fund, "300").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let path = format!("{counts}/{}", count.id());
    let own = app.post(&custodian, &format!("{path}/approve"), json!({})).await;
    assert_eq!((own.status, own.code()), (StatusCode::FORBIDDEN, "four_eyes"), "{own:?}");
    let by_treasury = app.post(&c.treasury, &format!("{path}/approve"), json!({})).await;
    assert_eq!(by_treasury.status, StatusCode::FORBIDDEN, "cfo or admin by default: {by_treasury:?}");
    let ok = app.post(&c.cfo, &format!("{path}/approve"), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(
        (ok.body["status"].as_str(), ok.body["variance"].as_str()),
        (Some("adjusted"), Some("-100.00"))
    );
    assert_eq!(app.balance(&c.admin, fund).await, Decimal::from(1000 - 300 - 100), "the difference, not 900");
    let ledger = ledger_after(&app, &c.admin, fund, &ok).await;
    let kinds: Vec<&str> = ledger.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opening", "disbursement", "adjustment"]);
    assert_eq!(ledger[2]["amount"], "-100.00");
}

#[tokio::test]
async fn concurrent_approvals_of_one_variance_apply_it_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, custodian) = counted_fund(&app, &c, &[Role::Staff]).await;
    let count = app
        .post(&custodian, &format!("/api/funds/{fund}/counts"), json!({"counts": {"1000": 1, "50": 1}}))
        .await;
    assert_eq!(count.body["variance"], "50.00", "{count:?}");
    let approvers = [&c.cfo, &c.admin];
    let path = format!("/api/funds/{fund}/counts/{}/approve", count.id());
    let replies = join_all((0..10).map(|i| app.post(approvers[i % 2], &path, json!({})))).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(ok, 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(["variance_settled", "conflict"].contains(&r.code()), "{r:?}");
    }
    assert_eq!(app.balance(&c.admin, fund).await, Decimal::from(1050));
    assert_eq!(events_of(&app, "VarianceAdjusted").await, 1);
}

#[tokio::test]
async fn a_variance_within_the_tolerance_is_adjusted_at_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.put(&c.admin, "/api/settings/variance_tolerance_basis_points", json!({"value": 100})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let (fund, custodian) = counted_fund(&app, &c, &[Role::Staff]).await;
    // 1 % of 1000 is 10: a shortage of 9.50 is tolerated, one of 11 is not.
    let count = app
        .post(
            &custodian,
            &format!("/api/funds/{fund}/counts"),
            json!({"counts": {"500": 1, "200": 2, "50": 1, "20": 2, "0.50": 1}}),
        )
        .await;
    assert_eq!(
        (count.body["variance"].as_str(), count.body["status"].as_str()),
        (Some("-9.50"), Some("adjusted")),
        "{count:?}"
    );
    assert_eq!(app.balance(&c.admin, fund).await, "990.50".parse().unwrap());
    let count = app
        .post(
            &custodian,
            &format!("/api/funds/{fund}/counts"),
            json!({"counts": {"500": 1, "200": 2, "50": 1, "20": 1, "0.50": 1}}),
        )
        .await;
    assert_eq!(
        (count.body["variance"].as_str(), count.body["status"].as_str()),
        (Some("-20.00"), Some("pending")),
        "{count:?}"
    );
}

#[tokio::test]
async fn no_movement_into_a_closed_period_and_a_closed_fund_pays_nothing() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, custodian) = counted_fund(&app, &c, &[Role::Staff]).await;
    let id = approved(&app, &c, fund, "100").await;
    let close = app
        .post(&custodian, &format!("/api/funds/{fund}/periods/close"), json!({"counts": {"1000": 1}}))
        .await;
    assert_eq!(close.status, StatusCode::CREATED, "{close:?}");
    let period = close.body["period_closed"].as_str().unwrap().to_string();
    assert_eq!(fund_view(&app, &c.admin, fund).await["closed_through"], period.as_str());

    let refused = app.pay(&c.treasury, id).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "period_closed"), "{refused:?}");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains(&period), "names it: {refused:?}");
    let replenish = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(replenish.status, StatusCode::CONFLICT, "{replenish:?}");

    // The next month is open; its opening balance is the closing one.
    app.clock.advance(chrono::Duration::days(32));
    let paid = app.pay(&c.treasury, id).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    assert_eq!(paid.body["fund_balance_after"], "900.00");

    // Closing the fund: its cash goes back, then nothing is paid from it.
    let closing =
        app.post(&c.admin, &format!("/api/funds/{fund}/close"), json!({"bank_reference": "DEP-1"})).await;
    assert_eq!(closing.status, StatusCode::OK, "{closing:?}");
    assert_eq!(
        (closing.body["balance"].as_str(), closing.body["closed"].as_bool()),
        (Some("0.00"), Some(true))
    );
    let id = approved(&app, &c, fund, "1").await;
    let after = app.pay(&c.treasury, id).await;
    assert_eq!((after.status, after.code()), (StatusCode::CONFLICT, "fund_closed"), "{after:?}");
    let ledger = ledger_after(&app, &c.admin, fund, &closing).await;
    let last = ledger.last().unwrap();
    assert_eq!((last["kind"].as_str(), last["amount"].as_str()), (Some("return"), Some("-900.00")));
    assert!(dec(&last["balance_after"]).is_zero(), "{last}");
}
