//! Payments with a one-time code (issue #14 [treasury]): the code is mailed (real SMTP) to the
//! paying user; it expires, is used once, dies after 5 wrong attempts, is the payer's own;
//! requests are rate-limited; every issue and refusal is an event.

use pettycash_domain::{DomainError, Role};
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
    let code = app.mailed_payment_code(smtp, &payer.email, id).await;
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

    let r = app
        .post(&c.treasury, "/api/treasury/payments/", json!({"requisition_id": id, "method": "cash"}))
        .await;
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
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE body_text LIKE '%' || $1 || '%'")
            .bind(&code)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept, 0, "the sent mail's body is removed from the outbox");
    let in_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
            .bind(&code)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(in_events, 0);
    let issued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PaymentCodeIssued'",
    )
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
    let code = app.queued_payment_code(&c.treasury.email, id).await;
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
async fn bank_and_mobile_money_need_a_destination_and_cash_refuses_one() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, id) = approved(&app, &c, "300").await;
    for method in ["bank", "mobile_money"] {
        let r = app.request_code(&c.treasury, id, method).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let body = json!({"requisition_id": id, "method": method, "code": "123456"});
        let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "destination"), "{r:?}");
        app.clock.advance(chrono::Duration::seconds(30));
    }
    let body = json!({"requisition_id": id, "method": "cash", "destination": "0712345678", "code": "123456"});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "destination"), "{r:?}");
    assert_eq!(app.balance(&c.admin, fund).await.to_string(), "5000.00");
    // A bank payment to an account: accepted, executing, the cash reserved.
    let r = app.request_code(&c.treasury, id, "bank").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let body = json!({"requisition_id": id, "method": "bank", "destination": "01:1234567890", "code": code});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::ACCEPTED, Some("executing")), "{r:?}");
}

// ----- payments through a provider: the command side -----

/// A command service on the app's store with the server's secret (codes hash under it), as the
/// provider's callback handler would use.
fn provider_side(app: &TestApp) -> pettycash_commands::CommandService {
    use pettycash_commands::invitations::InvitationSetup;
    use pettycash_commands::mail::Links;
    pettycash_commands::CommandService::new(pettycash_commands::EventStore::new(
        app.pool.clone(),
        pettycash_tests::event_key(),
    ))
    .with_clock(app.clock.clone())
    .with_invitations(InvitationSetup::new(
        pettycash_tests::DEV_SECRET_KEY.as_bytes(),
        Links::new("https://cash.test"),
    ))
}

fn as_treasury(user: &TestUser) -> pettycash_commands::CommandContext {
    let actor = pettycash_domain::Actor::new(user.id, [Role::Treasury]);
    pettycash_commands::CommandContext::user(actor, Default::default())
}

async fn fund_figures(app: &TestApp, c: &Cast, fund: Uuid) -> (String, String, String) {
    let r = app.get(&c.admin, &format!("/api/funds/{fund}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let s = |k: &str| r.body[k].as_str().unwrap().to_string();
    (s("balance"), s("reserved"), s("available"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_provider_payments_reserve_at_most_what_the_fund_has_available() {
    use pettycash_commands::provider_payments::ProviderResult;
    use pettycash_domain::fund::PaymentMethod;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let service = provider_side(&app);
    let ctx = as_treasury(&c.treasury);
    let fund = app.fund(&c.admin, "1000").await;
    let mut paying = Vec::new();
    for _ in 0..20 {
        let id = app.submitted(&c.staff, fund, "70").await;
        app.approve_by(id, &[&c.head]).await;
        // The command side issues the code (the API does too: tests/tests/api/providers.rs).
        service.request_payment_code(&ctx, id, PaymentMethod::MobileMoney).await.expect("code");
        paying.push((id, app.queued_payment_code(&c.treasury.email, id).await));
    }
    // Without a code: refused, nothing reserved.
    let r =
        service.start_provider_payment(&ctx, paying[0].0, PaymentMethod::MobileMoney, None, None, None).await;
    assert!(
        matches!(r, Err(pettycash_commands::CommandError::Domain(DomainError::PaymentCode { .. }))),
        "{r:?}"
    );

    let starts = futures::future::join_all(paying.iter().map(|(id, code)| {
        let (service, ctx) = (service.clone(), ctx.clone());
        async move {
            service
                .start_provider_payment(&ctx, *id, PaymentMethod::MobileMoney, None, None, Some(code))
                .await
        }
    }))
    .await;
    let started: Vec<_> = starts.iter().filter_map(|r| r.as_ref().ok()).map(|o| o.value.clone()).collect();
    let short = starts
        .iter()
        .filter(|r| {
            matches!(r, Err(pettycash_commands::CommandError::Domain(DomainError::InsufficientFunds { .. })))
        })
        .count();
    assert_eq!((started.len(), short), (14, 6), "14 x 70 fit in 1000: {starts:?}");
    assert_eq!(fund_figures(&app, &c, fund).await, ("1000.00".into(), "980.00".into(), "20.00".into()));
    // In flight: not paid, and no other payment.
    let first = &started[0];
    let r = app.get(&c.admin, &format!("/api/requisitions/{}", first.requisition_id)).await;
    assert_eq!(r.body["status"], "approved", "{r:?}");
    let r = app.request_code(&c.treasury, first.requisition_id, "cash").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "payment_in_flight"), "{r:?}");

    // A failure releases the reservation (once) and the requisition is payable again.
    let failed =
        ProviderResult::Failed { result_code: "2001".into(), description: "unregistered recipient".into() };
    let r = service.settle_provider_payment(first.id, failed.clone()).await.unwrap();
    assert_eq!((r.value.status.as_str(), r.value.changed), ("failed", true));
    let r = service.settle_provider_payment(first.id, failed).await.unwrap();
    assert_eq!(
        (r.value.status.as_str(), r.value.changed),
        ("failed", false),
        "a second result changes nothing"
    );
    assert_eq!(fund_figures(&app, &c, fund).await, ("1000.00".into(), "910.00".into(), "90.00".into()));
    let r = app.get(&c.admin, &format!("/api/requisitions/{}", first.requisition_id)).await;
    assert_eq!(r.body["status"], "approved", "{r:?}");

    // A success disburses the reserved amount; two callbacks for it pay once.
    let second = &started[1];
    let ok = ProviderResult::Succeeded { transaction_id: "SIM123".into() };
    let (a, b) = tokio::join!(
        service.settle_provider_payment(second.id, ok.clone()),
        service.settle_provider_payment(second.id, ok.clone())
    );
    let changed: Vec<bool> = [a.unwrap(), b.unwrap()].iter().map(|o| o.value.changed).collect();
    assert_eq!(changed.iter().filter(|c| **c).count(), 1, "{changed:?}");
    assert_eq!(fund_figures(&app, &c, fund).await, ("930.00".into(), "840.00".into(), "90.00".into()));
    let r = app.get(&c.admin, &format!("/api/requisitions/{}", second.requisition_id)).await;
    assert_eq!(r.body["status"], "paid", "{r:?}");
    // The failed one is paid in cash now (with a new code, 30 s after the last).
    app.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(app.pay(&c.treasury, first.requisition_id).await.status, StatusCode::CREATED);
    assert_eq!(fund_figures(&app, &c, fund).await, ("860.00".into(), "840.00".into(), "20.00".into()));
}

#[tokio::test]
async fn a_provider_payment_executing_past_the_timeout_is_recorded_once_and_stays_reserved() {
    use pettycash_commands::provider_payments::ProviderResult;
    use pettycash_domain::fund::PaymentMethod;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let service = provider_side(&app);
    let ctx = as_treasury(&c.treasury);
    let (fund, id) = approved(&app, &c, "300").await;
    let r = app.put(&c.admin, "/api/settings/payment_timeout_minutes", json!({"value": 0})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "value"), "{r:?}");
    service.request_payment_code(&ctx, id, PaymentMethod::Bank).await.expect("code");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let started =
        service.start_provider_payment(&ctx, id, PaymentMethod::Bank, None, None, Some(&code)).await.unwrap();
    let timed_out = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE event_type = 'PaymentTimedOut'")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Not yet at 9 minutes (default timeout 10).
    app.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(pettycash_commands::scheduler::tick(&service).await.unwrap().timed_out, 0);
    app.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(pettycash_commands::scheduler::tick(&service).await.unwrap().timed_out, 1);
    assert_eq!(pettycash_commands::scheduler::tick(&service).await.unwrap().timed_out, 0, "once");
    assert_eq!(timed_out(&app).await, 1);
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "300.00".into(), "4700.00".into()));
    // Its result still settles it.
    let failed =
        ProviderResult::Failed { result_code: "1".into(), description: "insufficient balance".into() };
    service.settle_provider_payment(started.value.id, failed).await.unwrap();
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));
}
