//! Payments with a one-time code (issue #14 [treasury]): the code is mailed (real SMTP) to the
//! paying user; it expires, is used once, dies after 5 wrong attempts, is the payer's own;
//! requests are rate-limited; every issue and refusal is an event.

use pettycash_domain::Role;
use pettycash_tests::{payment_code_in, Cast, MailServer, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

async fn app_with(smtp: &MailServer) -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await
}

/// An approved requisition of `amount` from a fund of 5000.
async fn approved(app: &TestApp, c: &Cast, amount: &str) -> (Uuid, Uuid) {
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    (fund, id)
}

/// Asks for a code as `payer` and reads it from the mail the SMTP server received.
async fn code_for(app: &TestApp, smtp: &MailServer, payer: &TestUser, id: Uuid) -> String {
    let r = app.request_code(payer, id, "cash").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["sent_to"], payer.email.as_str());
    let code = app.mailed_payment_code(smtp, &payer.email).await;
    smtp.clear();
    code
}

fn refused(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!((r.status, r.code(), r.field()), (status, code, "code"), "{r:?}");
}

/// The `PaymentCodeRejected` events of requisition `id`: (payer, problem, attempts).
async fn rejections(app: &TestApp, id: Uuid) -> Vec<(String, String, i64)> {
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload -> 'PaymentCodeRejected' FROM events
         WHERE aggregate_id = $1 AND event_type = 'PaymentCodeRejected' ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|v| {
            (
                v["payer_id"].as_str().unwrap().to_string(),
                v["problem"].as_str().unwrap().to_string(),
                v["attempts"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_code_is_mailed_to_the_payer_only_pays_once_and_is_in_no_event() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.delivered(&smtp).await;
    smtp.clear();

    let r = app.post(&c.treasury, "/api/treasury/payments/", json!({"requisition_id": id, "method": "cash"})).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "payment_code_missing");

    let r = app.request_code(&c.treasury, id, "cash").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 1, "one mail, to the payer: {mails:#?}");
    assert_eq!(mails[0].to, [c.treasury.email.as_str()]);
    let code = payment_code_in(&mails[0].text).expect("a code in the mail");
    assert!(mails[0].html.contains(&code));
    smtp.clear();
    // The outbox no longer holds it, no event does.
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE body_text LIKE '%' || $1 || '%'")
        .bind(&code)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "the sent mail's body is removed from the outbox");
    let in_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
        .bind(&code)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(in_events, 0);
    let issued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PaymentCodeIssued'")
            .bind(id.to_string())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(issued, 1);

    let paid = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "4700.00");

    // Reuse: refused as used, nothing paid again.
    let again = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    refused(&again, StatusCode::CONFLICT, "payment_code_used");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "4700.00");
    let treasury = c.treasury.id.to_string();
    assert_eq!(rejections(&app, id).await, [(treasury, "used".to_string(), 0)]);
}

#[tokio::test]
async fn a_code_expires_after_five_minutes_on_the_services_clock() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.delivered(&smtp).await;
    smtp.clear();
    let code = code_for(&app, &smtp, &c.treasury, id).await;
    app.clock.advance(chrono::Duration::seconds(5 * 60));
    let r = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    refused(&r, StatusCode::GONE, "payment_code_expired");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "5000.00");
    // A new code works.
    let code = code_for(&app, &smtp, &c.treasury, id).await;
    app.clock.advance(chrono::Duration::seconds(4 * 60 + 59));
    let r = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn five_wrong_attempts_kill_the_code_and_each_is_recorded() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.delivered(&smtp).await;
    smtp.clear();
    let code = code_for(&app, &smtp, &c.treasury, id).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..5 {
        let r = app.pay_with_code(&c.treasury, id, "cash", &wrong).await;
        refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "payment_code_wrong");
    }
    // The right code no longer works.
    let r = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    refused(&r, StatusCode::CONFLICT, "payment_code_locked");
    // A malformed code is a validation error, not an attempt.
    let r = app.pay_with_code(&c.treasury, id, "cash", "12ab").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "code"), "{r:?}");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "5000.00");
    let treasury = c.treasury.id.to_string();
    let mut expected: Vec<_> = (1..=5).map(|n| (treasury.clone(), "wrong".to_string(), n)).collect();
    expected.push((treasury.clone(), "locked".to_string(), 5));
    assert_eq!(rejections(&app, id).await, expected);

    // A new code is needed, and may be asked for 30 s after the last.
    let r = app.request_code(&c.treasury, id, "cash").await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "payment_code_rate_limited"), "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    app.clock.advance(chrono::Duration::seconds(30));
    let code = code_for(&app, &smtp, &c.treasury, id).await;
    let r = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn another_users_code_is_refused_as_theirs() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let other = app.user(&[Role::Treasury]).await;
    let (fund, id) = approved(&app, &c, "300").await;
    app.delivered(&smtp).await;
    smtp.clear();
    let code = code_for(&app, &smtp, &c.treasury, id).await;
    let r = app.pay_with_code(&other, id, "cash", &code).await;
    refused(&r, StatusCode::FORBIDDEN, "payment_code_not_yours");
    // Someone with no code of their own and a code that is nobody's: none issued.
    let r = app.pay_with_code(&other, id, "cash", "000000").await;
    let expected = if code == "000000" { "payment_code_not_yours" } else { "payment_code_not_issued" };
    assert_eq!(r.code(), expected, "{r:?}");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "5000.00");
    // Its owner still pays with it.
    let r = app.pay_with_code(&c.treasury, id, "cash", &code).await;
    assert_eq!(r.status, StatusCode::CREATED, "the owner still pays with it: {r:?}");
}

#[tokio::test]
async fn only_who_may_pay_gets_a_code_and_codes_are_rate_limited() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (_, id) = approved(&app, &c, "300").await;
    // The requester, an approver and a non-treasury user get no code.
    for (who, code) in [(&c.staff, "missing_role"), (&c.head, "missing_role"), (&c.auditor, "missing_role")] {
        let r = app.request_code(who, id, "cash").await;
        assert_eq!(r.code(), code, "{r:?}");
    }
    let r = app.request_code(&c.treasury, id, "cash").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = app.request_code(&c.treasury, id, "cash").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // Five an hour.
    for _ in 0..4 {
        app.clock.advance(chrono::Duration::seconds(31));
        let r = app.request_code(&c.treasury, id, "cash").await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    app.clock.advance(chrono::Duration::seconds(31));
    let r = app.request_code(&c.treasury, id, "cash").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // Only the latest code counts.
    let code = app.queued_payment_code(&c.treasury.email).await;
    assert_eq!(app.pay_with_code(&c.treasury, id, "cash", &code).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_waiver_setting_lets_cash_below_it_pay_without_a_code() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let small = app.submitted(&c.staff, fund, "99.99").await;
    let large = app.submitted(&c.staff, fund, "100").await;
    app.approve_by(small, &[&c.head]).await;
    app.approve_by(large, &[&c.head]).await;
    let r = app.put(&c.admin, "/api/settings/payment_code_waiver_below", json!({"value": -1})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "value"), "{r:?}");
    let r = app.put(&c.admin, "/api/settings/payment_code_waiver_below", json!({"value": 100})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let body = |id: Uuid| json!({"requisition_id": id, "method": "cash"});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body(small)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = app.post(&c.treasury, "/api/treasury/payments/", body(large)).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "payment_code_missing");
    assert_eq!(app.pay(&c.treasury, large).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bank_and_mobile_money_are_refused_until_a_provider_is_wired() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    for method in ["bank", "mobile_money"] {
        let r = app.request_code(&c.treasury, id, method).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "method"), "{r:?}");
        let body = json!({"requisition_id": id, "method": method, "code": "123456"});
        let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "method"), "{r:?}");
    }
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "5000.00");
}
