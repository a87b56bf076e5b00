//! Payments through Safaricom Daraja M-Pesa B2C (`PAYMENT_PROVIDER=daraja`, issue #14
//! [treasury]) against a fake Daraja on the loopback speaking its wire format: the token is
//! fetched once and reused, the requisition is paid when Daraja's Result comes to the
//! callback URL with the shared token (401 and nothing changes without it), a failure releases
//! the reservation, and after the timeout the transaction status query's result settles it.

use super::providers::{approved, fund_figures, pay_mobile, payment, settled, status_of};
use pettycash_commands::provider_payments::Acted;
use pettycash_tests::daraja::{FakeDaraja, Then, CONSUMER_KEY, CONSUMER_SECRET};
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

const TOKEN: &str = "callback-token-0123456789";

async fn app() -> (TestApp, FakeDaraja) {
    let fake = FakeDaraja::start().await;
    let url = fake.url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
        c.payment_provider = "daraja".into();
        c.payment_provider_secret = Some(TOKEN.to_string().into());
        c.daraja.base_url = url;
        c.daraja.consumer_key = Some(CONSUMER_KEY.to_string().into());
        c.daraja.consumer_secret = Some(CONSUMER_SECRET.to_string().into());
        c.daraja.initiator_name = Some("testapi".into());
        c.daraja.security_credential = Some("Q2wSZCN8HxC5F1Hx==".to_string().into());
        c.daraja.short_code = Some("600997".into());
    })
    .await;
    (app, fake)
}

/// POSTs `body` to the Daraja callback with `token` (None: no query).
async fn callback(app: &TestApp, body: &Value, token: Option<&str>) -> StatusCode {
    let mut url = format!("{}/api/providers/daraja/callback", app.address);
    if let Some(t) = token {
        url = format!("{url}?token={t}");
    }
    app.client.post(url).json(body).send().await.unwrap().status()
}

/// The fund's cash-book line of requisition `requisition` once it shows (the read model
/// catches up).
/// The requisition's disbursement line in the fund's cash book (its reservation is a line too).
async fn ledger_line(app: &TestApp, c: &Cast, fund: Uuid, requisition: Uuid) -> Value {
    for _ in 0..200 {
        let r = app.get(&c.treasury, &format!("/api/funds/{fund}/ledger")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if let Some(line) = items
            .into_iter()
            .find(|m| m["requisition_id"] == requisition.to_string() && m["kind"] == "disbursement")
        {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no disbursement of requisition {requisition} in fund {fund}");
}

#[tokio::test]
async fn a_mobile_payment_is_sent_to_daraja_and_paid_by_its_result_with_one_token() {
    let (app, fake) = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    let r = pay_mobile(&app, &c, id, "0712 000 001").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "executing");
    let pid = r.id();
    let p = settled(&app, &c, pid).await;
    assert_eq!(p["status"], "succeeded", "{p}");
    let sent = fake.payments();
    assert_eq!(sent.len(), 1);
    let b = &sent[0];
    let url = format!("{}/api/providers/daraja/callback?token={TOKEN}", app.address);
    assert_eq!(b["OriginatorConversationID"], format!("{pid}-1"));
    assert_eq!((b["CommandID"].as_str(), b["Amount"].as_i64()), (Some("BusinessPayment"), Some(300)));
    assert_eq!((b["PartyA"].as_str(), b["PartyB"].as_str()), (Some("600997"), Some("254712000001")));
    assert_eq!(
        (b["InitiatorName"].as_str(), b["SecurityCredential"].as_str()),
        (Some("testapi"), Some("Q2wSZCN8HxC5F1Hx=="))
    );
    assert_eq!(
        (b["ResultURL"].as_str(), b["QueueTimeOutURL"].as_str()),
        (Some(url.as_str()), Some(url.as_str()))
    );
    // Daraja's TransactionID is the receipt; the requisition is paid out of the fund.
    assert_eq!(p["provider_receipt"], fake.result_body(&format!("{pid}-1"))["Result"]["TransactionID"]);
    assert_eq!(status_of(&app, &c, id).await, "paid");
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
    let line = ledger_line(&app, &c, fund, id).await;
    assert_eq!(
        (line["kind"].as_str(), line["amount"].as_str()),
        (Some("disbursement"), Some("-300.00")),
        "{line}"
    );

    // A second payment reuses the token.
    let (_, id2) = approved(&app, &c, "120").await;
    app.clock.advance(chrono::Duration::seconds(30));
    let r = pay_mobile(&app, &c, id2, "0712000002").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(settled(&app, &c, r.id()).await["status"], "succeeded");
    assert_eq!(fake.tokens_issued(), 1, "the token is reused until it expires");
    // Daraja forgot it (401): a fresh one is fetched and the request goes through.
    fake.expire_token();
    let (_, id3) = approved(&app, &c, "80").await;
    app.clock.advance(chrono::Duration::seconds(30));
    let r = pay_mobile(&app, &c, id3, "0712000003").await;
    assert_eq!(settled(&app, &c, r.id()).await["status"], "succeeded");
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test]
async fn a_callback_without_the_token_is_refused_and_changes_nothing() {
    let (app, fake) = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    fake.script("254712000004", Then::silent("0"));
    let r = pay_mobile(&app, &c, id, "0712000004").await;
    let pid = r.id();
    let attempt = format!("{pid}-1");
    for _ in 0..100 {
        if !fake.payments().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = fake.result_body(&attempt);
    assert_eq!(
        fake.result_url(&attempt),
        format!("{}/api/providers/daraja/callback?token={TOKEN}", app.address)
    );
    for token in [None, Some("wrong"), Some("callback-token-012345678"), Some("")] {
        assert_eq!(callback(&app, &body, token).await, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // The simulator's route is not Daraja's.
    let sim =
        app.client.post(format!("{}/api/providers/simulator/callback", app.address)).json(&body).send().await;
    assert_eq!(sim.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(payment(&app, &c, pid).await["status"], "executing");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
    assert_eq!(callback(&app, &body, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(payment(&app, &c, pid).await["status"], "succeeded");
    // Repeated: nothing more.
    assert_eq!(callback(&app, &body, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
}

#[tokio::test]
async fn a_final_failure_releases_the_reservation_and_a_float_shortage_retries() {
    let (app, fake) = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    fake.script("254712000005", Then::callback("2040"));
    let r = pay_mobile(&app, &c, id, "0712000005").await;
    let p = settled(&app, &c, r.id()).await;
    assert_eq!((p["status"].as_str(), p["last_result_code"].as_str()), (Some("failed"), Some("2040")), "{p}");
    assert_eq!(status_of(&app, &c, id).await, "approved");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));

    // 1 (the short code's float is short) is retried with a new attempt id.
    let (_, id2) = approved(&app, &c, "200").await;
    fake.script("254712000006", Then::callback("1"));
    app.clock.advance(chrono::Duration::seconds(30));
    let r = pay_mobile(&app, &c, id2, "0712000006").await;
    let pid = r.id();
    let p = settled(&app, &c, pid).await;
    assert_eq!((p["status"].as_str(), p["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{p}");
    let ids: Vec<Value> = fake.payments().iter().map(|b| b["OriginatorConversationID"].clone()).collect();
    assert_eq!(ids[1..], [format!("{pid}-1"), format!("{pid}-2")].map(Value::from));
}

#[tokio::test]
async fn after_the_timeout_the_status_query_settles_it_and_a_lost_request_is_sent_again_with_its_id() {
    use pettycash_commands::scheduler::tick;
    let (app, fake) = app().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    let to = "254712000007";
    // Lost on the way; sent again, decided but its callback lost.
    fake.script(to, Then::Lost);
    fake.script(to, Then::silent("0"));
    let r = pay_mobile(&app, &c, id, to).await;
    let pid = r.id();
    let attempt = format!("{pid}-1");
    assert!(fake.payments().is_empty());
    app.clock.advance(chrono::Duration::minutes(10));
    let t = tick(&app.service).await.unwrap();
    assert_eq!(t.timed_out, 1, "{t:?}");
    // The query asks about the attempt; its result (not found) comes to the callback, and the
    // same id is sent again.
    for _ in 0..100 {
        if !fake.payments().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let q = fake.queries();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0]["CommandID"].as_str(), q[0]["OriginalConversationID"].as_str()),
        (Some("TransactionStatusQuery"), Some(attempt.as_str()))
    );
    assert_eq!(q[0]["OriginatorConversationID"], format!("{attempt}-q1"));
    let ids: Vec<Value> = fake.payments().iter().map(|b| b["OriginatorConversationID"].clone()).collect();
    assert_eq!(ids, [Value::from(attempt.clone())]);
    assert_eq!(payment(&app, &c, pid).await["status"], "executing");
    // Sending it again now is refused as a duplicate, and changes nothing.
    assert_eq!(app.service.submit_provider_payment(pid).await.unwrap(), Acted::Unchanged);
    assert_eq!(fake.payments().len(), 2);
    // At the next timeout the query finds it completed: paid, once.
    app.clock.advance(chrono::Duration::minutes(10));
    tick(&app.service).await.unwrap();
    let p = settled(&app, &c, pid).await;
    assert_eq!(p["status"], "succeeded", "{p}");
    assert_eq!(p["provider_receipt"], fake.result_body(&attempt)["Result"]["TransactionID"]);
    assert_eq!(fake.queries().len(), 2);
    assert_eq!(status_of(&app, &c, id).await, "paid");
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "0".into(), "4700.00".into()));
}
