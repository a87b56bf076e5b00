//! Advances over HTTP (issue #14 [treasury]): a requisition asked for as an advance is paid
//! before the spend and then settled by its holder, in parts, with what was spent and the
//! change returned to the fund; never more than is outstanding, only in its currency;
//! spending beyond it is claimed by a reimbursement requisition; an unsettled advance blocks
//! another; an overdue one reminds its holder once.

use chrono::Duration;
use futures::future::join_all;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, MailServer, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use uuid::Uuid;

async fn advance(app: &TestApp, holder: &TestUser, fund: Uuid, amount: &str) -> Uuid {
    let body = json!({"fund_id": fund, "amount": amount, "purpose": "Field trip fuel", "submit": true, "advance": true});
    let r = app.post(holder, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.id()
}

/// An advance of 1,000.00 KES asked for by the staff member, approved and paid.
async fn paid_advance(app: &TestApp, c: &Cast, fund: Uuid) -> Uuid {
    let id = advance(app, &c.staff, fund, "1000").await;
    app.approve_by(id, &[&c.head]).await;
    let paid = app.pay(&c.treasury, id).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    id
}

async fn settle(app: &TestApp, by: &TestUser, id: Uuid, body: Value) -> Reply {
    app.post(by, &format!("/api/advances/{id}/settlements"), body).await
}

async fn view(app: &TestApp, by: &TestUser, id: Uuid) -> Reply {
    app.get(by, &format!("/api/advances/{id}")).await
}

#[tokio::test]
async fn an_advance_is_paid_then_settled_in_parts_with_the_change_returned_to_the_fund() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = advance(&app, &c.staff, fund, "1000").await;

    let early = settle(&app, &c.staff, id, json!({"spent": "10"})).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "advance_not_issued"), "{early:?}");
    let r = view(&app, &c.staff, id).await;
    assert_eq!((&r.body["status"], &r.body["outstanding"]), (&json!("requested"), &json!("0")), "{r:?}");

    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let r = view(&app, &c.staff, id).await;
    assert_eq!(r.body["status"], "outstanding", "{r:?}");
    assert_eq!(r.body["outstanding"], "1000.00");
    let paid_at: chrono::DateTime<chrono::Utc> = r.body["paid_at"].as_str().unwrap().parse().unwrap();
    let due_at: chrono::DateTime<chrono::Utc> = r.body["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due_at - paid_at, Duration::days(7), "due after the default 7 days");

    // Part one: receipts for 600, attached to the advance's requisition first.
    let unknown = settle(&app, &c.staff, id, json!({"spent": "600", "receipt_ids": [Uuid::now_v7()]})).await;
    assert_eq!(
        (unknown.status, unknown.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "receipt_ids"),
        "{unknown:?}"
    );
    let attached = app.upload(&c.staff, id, "fuel.pdf", &pettycash_tests::receipts::pdf("fuel")).await;
    assert_eq!(attached.status, StatusCode::CREATED, "{attached:?}");
    let receipt =
        app.get(&c.staff, &format!("/api/requisitions/{id}")).await.body["receipts"][0]["id"].clone();
    let r = settle(
        &app,
        &c.staff,
        id,
        json!({"spent": "600", "note": "fuel receipts", "receipt_ids": [receipt]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!((&r.body["outstanding"], &r.body["fund_balance_after"]), (&json!("400.00"), &Value::Null));

    // Never return more than is outstanding, never settle more than remains, only in KES.
    let over = settle(&app, &c.staff, id, json!({"returned": "400.01"})).await;
    assert_eq!(
        (over.status, over.code(), over.field()),
        (StatusCode::CONFLICT, "settlement_exceeds_advance", "returned"),
        "{over:?}"
    );
    let over = settle(&app, &c.staff, id, json!({"spent": "300", "returned": "100.01"})).await;
    assert_eq!((over.status, over.field()), (StatusCode::CONFLICT, "spent"), "{over:?}");
    let usd = settle(&app, &c.staff, id, json!({"spent": "1", "currency": "USD"})).await;
    assert_eq!((usd.status, usd.code()), (StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch"), "{usd:?}");
    let nothing = settle(&app, &c.staff, id, json!({"spent": "0"})).await;
    assert_eq!((nothing.status, nothing.field()), (StatusCode::UNPROCESSABLE_ENTITY, "spent"), "{nothing:?}");
    let negative = settle(&app, &c.staff, id, json!({"returned": "-5"})).await;
    assert_eq!(
        (negative.status, negative.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "returned"),
        "{negative:?}"
    );

    // Only the holder settles; others do not even see it, treasury reads it.
    let other = app.user(&[pettycash_domain::Role::Staff]).await;
    assert_eq!(settle(&app, &other, id, json!({"spent": "1"})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(settle(&app, &c.treasury, id, json!({"spent": "1"})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(view(&app, &other, id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(view(&app, &c.treasury, id).await.status, StatusCode::OK);

    // Part two settles the rest: 300 spent, 100 back into the fund.
    let r = settle(&app, &c.staff, id, json!({"spent": "300", "returned": "100", "currency": "KES"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!((&r.body["outstanding"], &r.body["fund_balance_after"]), (&json!("0.00"), &json!("9100.00")));
    assert_eq!(app.balance(&c.staff, fund).await.to_string(), "9100.00");
    let r = view(&app, &c.staff, id).await;
    assert_eq!(
        (&r.body["status"], &r.body["spent"], &r.body["returned"], &r.body["settlements"]),
        (&json!("settled"), &json!("900.00"), &json!("100.00"), &json!(2)),
        "{r:?}"
    );
    let done = settle(&app, &c.staff, id, json!({"spent": "1"})).await;
    assert_eq!((done.status, done.code()), (StatusCode::CONFLICT, "settlement_exceeds_advance"), "{done:?}");

    // The cash book shows the change coming back.
    pettycash_tests::wait_for_projections(&app.pool, &["cash"]).await;
    let ledger = app.get(&c.treasury, &format!("/api/funds/{fund}/ledger")).await;
    let kinds: Vec<&str> =
        ledger.body["items"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"advance_return"), "{ledger:?}");
    let lists = app.get(&c.treasury, "/api/advances/?status=settled").await;
    assert_eq!(lists.body["items"].as_array().unwrap().len(), 1, "{lists:?}");
    assert_eq!(app.get(&other, "/api/advances/").await.body["items"], json!([]));
    assert_eq!(
        app.get(&c.staff, "/api/advances/?status=bogus").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn spending_beyond_the_advance_is_claimed_by_a_reimbursement_routed_for_approval() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = paid_advance(&app, &c, fund).await;

    let partial = settle(&app, &c.staff, id, json!({"spent": "500", "extra_owed": "250"})).await;
    assert_eq!(
        (partial.status, partial.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "extra_owed"),
        "{partial:?}"
    );

    let r = settle(&app, &c.staff, id, json!({"spent": "1000", "extra_owed": "250"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let claim: Uuid = r.body["reimbursement_requisition_id"].as_str().unwrap().parse().unwrap();
    let claim = app.get(&c.staff, &format!("/api/requisitions/{claim}")).await;
    assert_eq!(
        (&claim.body["status"], &claim.body["amount"], &claim.body["requester_id"]),
        (&json!("pending_approval"), &json!("250.00"), &json!(c.staff.id)),
        "the extra goes through the normal approval: {claim:?}"
    );
    assert_eq!(app.balance(&c.staff, fund).await.to_string(), "9000.00", "nothing paid for the claim yet");
}

#[tokio::test]
async fn concurrent_settlements_never_settle_more_than_was_advanced() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = paid_advance(&app, &c, fund).await;

    let replies = join_all((0..12).map(|_| settle(&app, &c.staff, id, json!({"returned": "100"})))).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(ok, 10, "{replies:#?}");
    assert!(replies
        .iter()
        .all(|r| r.status == StatusCode::CREATED || r.code() == "settlement_exceeds_advance"));
    assert_eq!(app.balance(&c.staff, fund).await.to_string(), "10000.00");
    assert_eq!(view(&app, &c.staff, id).await.body["returned"], "1000.00");
}

#[tokio::test]
async fn an_unsettled_advance_blocks_another_when_asked_for_and_when_paid() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // The refused payment would hold back a new code for 30 s (the code step is tested in
    // `payments`).
    app.waive_codes_below(&c.admin, 1_000_000).await;
    let fund = app.fund(&c.admin, "10000").await;
    // Two asked for before either is paid: both may be asked for.
    let first = advance(&app, &c.staff, fund, "1000").await;
    let second = advance(&app, &c.staff, fund, "200").await;
    app.approve_by(first, &[&c.head]).await;
    app.approve_by(second, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, first).await.status, StatusCode::CREATED);

    // The first is unsettled: the second is not paid, a third is not asked for.
    let blocked = app.pay(&c.treasury, second).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (StatusCode::CONFLICT, "advance_outstanding"),
        "{blocked:?}"
    );
    let body = json!({"fund_id": fund, "amount": "50", "purpose": "x", "submit": true, "advance": true});
    let third = app.post(&c.staff, "/api/requisitions/", body.clone()).await;
    assert_eq!((third.status, third.code()), (StatusCode::CONFLICT, "advance_outstanding"), "{third:?}");
    // An ordinary requisition is not blocked.
    app.submitted(&c.staff, fund, "50").await;

    // Settled, the next one goes.
    assert_eq!(settle(&app, &c.staff, first, json!({"spent": "1000"})).await.status, StatusCode::CREATED);
    assert_eq!(app.pay(&c.treasury, second).await.status, StatusCode::CREATED);

    // The setting lifts the block.
    let r = app.put(&c.admin, "/api/settings/advance_block_while_unsettled", json!({"value": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(app.post(&c.staff, "/api/requisitions/", body).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_overdue_advance_reminds_its_holder_once() {
    let smtp = MailServer::start().await;
    let app = TestApp::spawn_with(|c| smtp.configure(c)).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = paid_advance(&app, &c, fund).await;
    assert_eq!(settle(&app, &c.staff, id, json!({"spent": "250"})).await.status, StatusCode::CREATED);
    app.delivered(&smtp).await;
    let before = smtp.received().len();

    let tick = pettycash_commands::scheduler::tick(&app.service).await.unwrap();
    assert_eq!(tick.advances_overdue, 0, "not due yet");
    app.clock.advance(Duration::days(8));
    let ticks = join_all((0..3).map(|_| pettycash_commands::scheduler::tick(&app.service))).await;
    assert_eq!(ticks.iter().map(|t| t.as_ref().unwrap().advances_overdue).sum::<usize>(), 1);
    assert_eq!(view(&app, &c.staff, id).await.body["status"], "overdue");

    let mails = app.delivered(&smtp).await;
    let reminders: Vec<_> =
        mails[before..].iter().filter(|m| m.subject.starts_with("Advance overdue")).collect();
    assert_eq!(reminders.len(), 1, "{mails:#?}");
    assert_eq!(reminders[0].to, [c.staff.email.as_str()]);
    assert!(reminders[0].text.contains("750.00 KES"), "{}", reminders[0].text);
    assert_eq!(pettycash_commands::scheduler::tick(&app.service).await.unwrap().advances_overdue, 0);
}
