//! Alerts (issue #15 [reports]): raised once under concurrent payments, resolved by themselves
//! when their condition clears, never raised again by a rebuild, mailed through a real SMTP
//! server to the custodian and treasury (critical ones even to someone who muted alert mail);
//! acknowledge and resolve with notes, their errors, and who sees which alert.

use futures::future::join_all;
use pettycash_domain::Role;
use pettycash_tests::mail::{MailServer, ReceivedMail};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, TestApp, TestUser};
use reqwest::StatusCode;
use uuid::Uuid;

pub(crate) async fn app_with(smtp: &MailServer) -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await
}

/// Opens a KES fund with a reorder level, a custodian and no automatic replenishment.
async fn fund_with(
    app: &TestApp,
    admin: &TestUser,
    float: &str,
    reorder: &str,
    custodian: &TestUser,
) -> Uuid {
    let body = json!({"name": "Alert fund", "currency": "KES", "float": float, "reorder_level": reorder,
                      "custodian_id": custodian.id, "auto_replenish": false});
    let r = app.post(admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.id()
}

pub(crate) async fn approved(app: &TestApp, c: &Cast, fund: Uuid, amount: &str) -> Uuid {
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    id
}

/// The alerts `user` lists with `query`, once the projection applied every event.
pub(crate) async fn alerts(app: &TestApp, user: &TestUser, query: &str) -> Vec<Value> {
    wait_for_projections(&app.pool, &["alerts"]).await;
    let r = app.get(user, &format!("/api/alerts/?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

pub(crate) fn alert_mail<'a>(mails: &'a [ReceivedMail], user: &TestUser) -> Vec<&'a ReceivedMail> {
    mails.iter().filter(|m| m.to == [user.email.clone()] && m.subject.starts_with("Alert")).collect()
}

#[tokio::test]
async fn concurrent_payments_raise_one_fund_alert_that_funding_resolves_and_a_rebuild_never_raises_again() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let (t2, custodian) = tokio::join!(app.user(&[Role::Treasury]), app.user(&[Role::Staff]));
    // The custodian mutes alert mail; critical alerts cannot be muted.
    let mute = |muted: Value| {
        app.send(
            Some(&custodian),
            reqwest::Method::PUT,
            "/api/me/mail-preferences",
            Some(json!({"muted": muted})),
        )
    };
    let r = mute(json!(["critical_alert"])).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "muted"), "{r:?}");
    assert_eq!(mute(json!(["alert"])).await.status, StatusCode::OK);
    app.waive_codes_below(&c.admin, 1_000_000).await;
    let fund = fund_with(&app, &c.admin, "3000", "2500", &custodian).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(approved(&app, &c, fund, "100").await);
    }
    // 20 payments at once: the balance crosses the reorder level (2500, low) and 80 % of it
    // (2000, critical) while they race.
    let replies = join_all(
        ids.iter().enumerate().map(|(i, id)| app.pay(if i % 2 == 0 { &c.treasury } else { &t2 }, *id)),
    )
    .await;
    for (id, r) in ids.iter().zip(&replies) {
        if r.status != StatusCode::CREATED {
            assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"), "only lost races: {r:?}");
            assert_eq!(app.pay(&c.treasury, *id).await.status, StatusCode::CREATED);
        }
    }
    assert_eq!(app.balance(&c.admin, fund).await, "1000".parse().unwrap());

    let open = alerts(&app, &c.treasury, &format!("fund_id={fund}&state=open,acknowledged")).await;
    let types: Vec<&str> = open.iter().map(|a| a["alert_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["fund_critical"], "exactly one open fund alert: {open:#?}");
    let critical = &open[0];
    assert_eq!((&critical["severity"], &critical["object_type"]), (&json!("critical"), &json!("fund")));
    assert_eq!(critical["object_id"], json!(fund.to_string()));
    // The balance when it became critical (the first below 2000: payments take turns on the
    // fund), and the level it is measured against.
    assert_eq!(critical["message"], "Fund Alert fund holds 1900.00 KES; its reorder level is 2500.00 KES.");
    let low = alerts(&app, &c.treasury, &format!("fund_id={fund}&type=fund_low")).await;
    assert_eq!(low.len(), 1, "raised once: {low:#?}");
    assert_eq!(low[0]["state"], "resolved");
    assert!(low[0]["resolved_by"].is_null(), "resolved by itself");
    assert!(low[0]["resolution_note"].as_str().unwrap().contains("fund_critical"), "{}", low[0]);
    let in_db: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE fund_id = $1 AND alert_type IN ('fund_low', 'fund_critical')
         AND state <> 'resolved'",
    )
    .bind(fund)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(in_db, 1);

    // Mail: the custodian (who muted alerts) only the critical one; each treasurer both.
    let mails = app.delivered(&smtp).await;
    let to_custodian = alert_mail(&mails, &custodian);
    assert_eq!(to_custodian.len(), 1, "{to_custodian:#?}");
    assert_eq!(to_custodian[0].subject, "Alert (critical): Fund critically low");
    assert!(to_custodian[0].text.contains(&format!("/alerts/{}", critical["id"].as_str().unwrap())));
    for t in [&c.treasury, &t2] {
        let mut subjects: Vec<&str> = alert_mail(&mails, t).iter().map(|m| m.subject.as_str()).collect();
        subjects.sort();
        assert_eq!(
            subjects,
            ["Alert (critical): Fund critically low", "Alert (high): Fund below its reorder level"]
        );
    }
    assert!(alert_mail(&mails, &c.staff).is_empty(), "the requester is not responsible");

    // A replenishment: requested (an alert), approved by someone else, funded: the balance is
    // back at the float, and both alerts resolve themselves.
    let r = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let path = format!("/api/funds/{fund}/replenishments/{}", r.id());
    let needed = alerts(&app, &c.treasury, &format!("fund_id={fund}&type=replenishment_needed")).await;
    assert_eq!((needed.len(), &needed[0]["state"]), (1, &json!("open")), "{needed:#?}");
    assert_eq!(app.post(&c.cfo, &format!("{path}/approve"), json!({})).await.status, StatusCode::OK);
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-9"})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");
    let open = alerts(&app, &c.treasury, &format!("fund_id={fund}&state=open,acknowledged")).await;
    assert!(open.is_empty(), "{open:#?}");
    let all = alerts(&app, &c.treasury, &format!("fund_id={fund}")).await;
    let critical = all.iter().find(|a| a["alert_type"] == "fund_critical").unwrap();
    assert_eq!(critical["state"], "resolved");
    assert!(critical["resolution_note"].as_str().unwrap().contains("3000.00 KES"), "{critical}");
    let r = app.get(&c.treasury, &format!("/api/alerts/{}", critical["id"].as_str().unwrap())).await;
    let history: Vec<&str> =
        r.body["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(history, ["raise", "resolve"]);

    // `pettycash-replay rebuild --all` replays every event into the read models: no alert, no
    // mail again.
    let before_alerts = all.len();
    let mails_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail_outbox").fetch_one(&app.pool).await.unwrap();
    let args = pettycash_replay::rebuild::RebuildArgs {
        projections: vec![],
        all: true,
        keep_old: false,
        batch_size: 7,
    };
    let mut out = Vec::new();
    pettycash_replay::rebuild::rebuild(&app.pool, args, &mut out).await.expect("rebuild");
    let report = String::from_utf8_lossy(&out);
    assert!(!report.contains("alerts"), "the rebuild never runs alerts: {report}");
    let after = alerts(&app, &c.treasury, &format!("fund_id={fund}")).await;
    assert_eq!(after.len(), before_alerts);
    let alerts_total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alerts").fetch_one(&app.pool).await.unwrap();
    assert_eq!(alerts_total as usize, before_alerts);
    let mails_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail_outbox").fetch_one(&app.pool).await.unwrap();
    assert_eq!(mails_after, mails_before);
    assert!(pettycash_projections::replayable().iter().all(|p| p.name() != "alerts"));
}

#[tokio::test]
async fn alerts_are_acknowledged_and_resolved_with_notes_by_those_who_may_and_404_for_others() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (custodian, bystander) = tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::Staff]));
    let company = app.unit(&c.admin, "company", "OTHER", None).await;
    let elsewhere = app.user_in(&[Role::Treasury], Some(company)).await;
    app.waive_codes_below(&c.admin, 1_000_000).await;
    let fund = fund_with(&app, &c.admin, "1200", "1000", &custodian).await;
    let id = approved(&app, &c, fund, "300").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);

    let open = alerts(&app, &c.treasury, "state=open").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!((&open[0]["alert_type"], &open[0]["severity"]), (&json!("fund_low"), &json!("high")));
    let alert = open[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/alerts/{alert}");
    // The dashboard counts what each reader may read: treasury the company's, the custodian the
    // one naming them, a bystander none.
    for (user, high) in [(&c.treasury, 1), (&custodian, 1), (&bystander, 0), (&elsewhere, 0)] {
        let d = app.get(user, "/api/dashboard/").await;
        assert_eq!(d.status, StatusCode::OK, "{d:?}");
        assert_eq!(d.body["open_alerts"], json!({"critical": 0, "high": high, "medium": 0, "low": 0}));
    }

    // Who sees it: treasury, auditor and the custodian; not a bystander, not another company.
    for u in [&c.auditor, &custodian, &c.cfo] {
        assert_eq!(app.get(u, &path).await.status, StatusCode::OK);
    }
    for u in [&bystander, &elsewhere] {
        assert_eq!(app.get(u, &path).await.status, StatusCode::NOT_FOUND);
        assert!(alerts(&app, u, "").await.is_empty());
        let r = app.post(u, &format!("{path}/acknowledge"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
    // The auditor reads only.
    let r = app.post(&c.auditor, &format!("{path}/acknowledge"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "alert_read_only"), "{r:?}");

    // Resolving needs a note.
    for body in [json!({}), json!({"note": "  "})] {
        let r = app.post(&c.treasury, &format!("{path}/resolve"), body).await;
        assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "note"), "{r:?}");
    }
    let r = app.post(&custodian, &format!("{path}/acknowledge"), json!({"note": "Counting the box"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["state"], &r.body["acknowledged_by"]),
        (&json!("acknowledged"), &json!(custodian.id))
    );
    let again = app.post(&c.treasury, &format!("{path}/acknowledge"), json!({})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "alert_state"), "{again:?}");
    // Acknowledged is still open: the dashboard still counts it.
    let d = app.get(&c.treasury, "/api/dashboard/").await;
    assert_eq!(d.body["open_alerts"], json!({"critical": 0, "high": 1, "medium": 0, "low": 0}));

    let r = app.post(&c.treasury, &format!("{path}/resolve"), json!({"note": "Top-up ordered"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!((&r.body["state"], &r.body["resolved_by"]), (&json!("resolved"), &json!(c.treasury.id)));
    assert_eq!(r.body["resolution_note"], "Top-up ordered");
    let history: Vec<(Value, Value, Value)> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["action"].clone(), h["by"].clone(), h["note"].clone()))
        .collect();
    assert_eq!(
        history,
        [
            (json!("raise"), Value::Null, Value::Null),
            (json!("acknowledge"), json!(custodian.id), json!("Counting the box")),
            (json!("resolve"), json!(c.treasury.id), json!("Top-up ordered")),
        ]
    );
    let twice = app.post(&c.treasury, &format!("{path}/resolve"), json!({"note": "again"})).await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "alert_state"), "{twice:?}");
    let missing =
        app.post(&c.treasury, &format!("/api/alerts/{}/resolve", Uuid::new_v4()), json!({"note": "x"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Filters.
    assert_eq!(alerts(&app, &c.treasury, "state=resolved&severity=high&type=fund_low").await.len(), 1);
    assert!(alerts(&app, &c.treasury, "state=open").await.is_empty());
    assert!(alerts(&app, &c.treasury, "severity=critical").await.is_empty());
    assert!(alerts(&app, &c.treasury, &format!("unit={company}")).await.is_empty());
    for (query, field) in [("type=nope", "type"), ("state=closed", "state"), ("fund_id=x", "fund_id")] {
        let r = app.get(&c.treasury, &format!("/api/alerts/?{query}")).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{query}: {r:?}");
    }
    let d = app.get(&c.treasury, "/api/dashboard/").await;
    assert_eq!(d.body["open_alerts"], json!({"critical": 0, "high": 0, "medium": 0, "low": 0}));
    // The counts the dashboard reads (kept by a trigger) equal a count of the rows.
    let drift: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT company_key, severity, open FROM alert_open_counts WHERE open <> 0
                               EXCEPT
                               SELECT coalesce(company_id, '00000000-0000-0000-0000-000000000000'), severity, count(*)
                               FROM alerts WHERE state <> 'resolved' GROUP BY 1, 2) d",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(drift, 0);
}

/// The one alert of `alert_type` about `object` (any state), once the projection caught up.
pub(crate) async fn the_alert(app: &TestApp, user: &TestUser, alert_type: &str, object: Uuid) -> Value {
    let found: Vec<Value> = alerts(app, user, &format!("type={alert_type}"))
        .await
        .into_iter()
        .filter(|a| a["object_id"] == json!(object.to_string()))
        .collect();
    assert_eq!(found.len(), 1, "one {alert_type} about {object}: {found:#?}");
    found[0].clone()
}

#[tokio::test]
async fn wrong_codes_large_payments_overdue_approvals_and_waiting_variances_alert_and_clear() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let custodian = app.user(&[Role::Staff]).await;
    let fund = fund_with(&app, &c.admin, "10000", "1000", &custodian).await;

    // Three wrong codes by one payer within the hour: critical; paying clears it.
    let id = approved(&app, &c, fund, "300").await;
    assert_eq!(app.request_code(&c.treasury, id, "cash").await.status, StatusCode::CREATED);
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for n in 1..=3 {
        let r = app.pay_with_code(&c.treasury, id, "cash", &wrong).await;
        assert_eq!(r.code(), "payment_code_wrong", "{r:?}");
        if n == 2 {
            assert!(alerts(&app, &c.treasury, "type=otp_failures").await.is_empty(), "two are not enough");
        }
    }
    let otp = the_alert(&app, &c.treasury, "otp_failures", id).await;
    assert_eq!((&otp["severity"], &otp["state"]), (&json!("critical"), &json!("open")));
    assert_eq!(otp["responsible_ids"], json!([c.treasury.id]));
    assert_eq!(app.pay_with_code(&c.treasury, id, "cash", &code).await.status, StatusCode::CREATED);
    let otp = the_alert(&app, &c.treasury, "otp_failures", id).await;
    assert_eq!(
        (&otp["state"], &otp["resolution_note"]),
        (&json!("resolved"), &json!("The requisition was paid."))
    );

    // A payment above `alert_large_payment_above` (off by default).
    let small = approved(&app, &c, fund, "400").await;
    assert_eq!(app.pay(&c.treasury, small).await.status, StatusCode::CREATED);
    let r = app.put(&c.admin, "/api/settings/alert_large_payment_above", json!({"value": 450})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let large = approved(&app, &c, fund, "450.01").await;
    assert_eq!(app.pay(&c.treasury, large).await.status, StatusCode::CREATED);
    let alert = the_alert(&app, &c.treasury, "large_payment", large).await;
    assert_eq!((&alert["severity"], &alert["fund_id"]), (&json!("medium"), &json!(fund)));
    assert!(alerts(&app, &c.treasury, "type=large_payment").await.len() == 1, "not the 400 one");

    // A step waiting past its reminder time (24 h): the scheduler's `ApprovalOverdue` raises
    // it; the approval clears it.
    let waiting = app.submitted(&c.staff, fund, "200").await;
    wait_for_projections(&app.pool, &["requisitions"]).await;
    app.clock.advance(chrono::Duration::hours(25));
    pettycash_commands::scheduler::tick(&app.service).await.expect("tick");
    let overdue = the_alert(&app, &c.treasury, "approval_overdue", waiting).await;
    assert_eq!((&overdue["severity"], &overdue["state"]), (&json!("low"), &json!("open")));
    app.approve_by(waiting, &[&c.head]).await;
    let overdue = the_alert(&app, &c.treasury, "approval_overdue", waiting).await;
    assert_eq!(overdue["state"], "resolved", "{overdue}");

    // A count's variance waiting for approval past `alert_variance_pending_hours` (48).
    let balance = app.balance(&c.admin, fund).await;
    let short = balance - rust_decimal::Decimal::from(1000);
    let counts = format!("/api/funds/{fund}/counts");
    let pieces = (short / rust_decimal::Decimal::from(50)).trunc().to_string().parse::<u64>().unwrap();
    let count = app.post(&custodian, &counts, json!({"counts": {"50": pieces}})).await;
    assert_eq!((count.status, &count.body["status"]), (StatusCode::CREATED, &json!("pending")), "{count:?}");
    wait_for_projections(&app.pool, &["alerts"]).await;
    app.clock.advance(chrono::Duration::hours(47));
    pettycash_commands::scheduler::tick(&app.service).await.expect("tick");
    assert!(alerts(&app, &c.treasury, "type=variance_pending").await.is_empty(), "not yet");
    app.clock.advance(chrono::Duration::hours(2));
    let tick = pettycash_commands::scheduler::tick(&app.service).await.expect("tick");
    assert_eq!(tick.variance_alerts, 1);
    let pending = the_alert(&app, &custodian, "variance_pending", count.id()).await;
    assert_eq!((&pending["state"], &pending["object_type"]), (&json!("open"), &json!("count")));
    let again = pettycash_commands::scheduler::tick(&app.service).await.expect("tick");
    assert_eq!(again.variance_alerts, 0, "once");
    let ok = app.post(&c.cfo, &format!("{counts}/{}/approve", count.id()), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let pending = the_alert(&app, &c.treasury, "variance_pending", count.id()).await;
    assert_eq!(
        (&pending["state"], &pending["resolution_note"]),
        (&json!("resolved"), &json!("The variance was approved and adjusted."))
    );
}

/// A server (no seals, no scheduler passes) with the cast and a requisition of 300.00 KES
/// approved in a 5,000.00 fund whose mobile-money payment by treasury failed for good (an
/// unregistered recipient): the app, the cast, the fund and the requisition.
async fn a_failed_provider_payment() -> (TestApp, Cast, Uuid, Uuid) {
    use crate::providers::{pay_mobile, settled};
    use pettycash_commands::providers::simulator::Script;
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
    })
    .await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = approved(&app, &c, fund, "300").await;
    app.simulator.script("254712000104", Script::result("2003"));
    let r = pay_mobile(&app, &c, id, "254712000104").await;
    assert_eq!(settled(&app, &c, r.id()).await["status"], "failed");
    (app, c, fund, id)
}

#[tokio::test]
async fn a_failed_provider_payment_alerts_its_payer_and_treasury_until_it_is_paid() {
    use crate::providers::{pay_mobile, settled};
    let (app, c, fund, id) = a_failed_provider_payment().await;
    let failed = the_alert(&app, &c.treasury, "payment_failed", id).await;
    assert_eq!((&failed["severity"], &failed["state"]), (&json!("high"), &json!("open")));
    assert_eq!(failed["responsible_ids"], json!([c.treasury.id]), "the payer");
    assert_eq!(failed["fund_id"], json!(fund));
    // Paid to a good number: resolved by itself.
    app.clock.advance(chrono::Duration::seconds(30));
    let r = pay_mobile(&app, &c, id, "254712000105").await;
    assert_eq!(settled(&app, &c, r.id()).await["status"], "succeeded");
    let failed = the_alert(&app, &c.treasury, "payment_failed", id).await;
    assert_eq!(
        (&failed["state"], &failed["resolution_note"]),
        (&json!("resolved"), &json!("The requisition was paid."))
    );
}

/// A requisition that will not be paid leaves nothing to act on about its payment: cancelled
/// after a failed provider payment and three wrong codes, its `payment_failed` and
/// `otp_failures` alerts resolve by themselves, with the reason as the note.
#[tokio::test]
async fn a_cancelled_requisition_resolves_its_payment_alerts() {
    let (app, c, _, id) = a_failed_provider_payment().await;
    app.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(app.request_code(&c.treasury, id, "cash").await.status, StatusCode::CREATED);
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..3 {
        let r = app.pay_with_code(&c.treasury, id, "cash", &wrong).await;
        assert_eq!(r.code(), "payment_code_wrong", "{r:?}");
    }
    for alert_type in ["payment_failed", "otp_failures"] {
        assert_eq!(the_alert(&app, &c.treasury, alert_type, id).await["state"], "open", "{alert_type}");
    }
    let r = app
        .post(&c.staff, &format!("/api/requisitions/{id}/cancel"), json!({"reason": "Bought it myself"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    for alert_type in ["payment_failed", "otp_failures"] {
        let alert = the_alert(&app, &c.treasury, alert_type, id).await;
        assert_eq!(
            (&alert["state"], &alert["resolution_note"], &alert["resolved_by"]),
            (&json!("resolved"), &json!("The requisition was cancelled."), &Value::Null),
            "{alert_type}: {alert:#}"
        );
    }
}
