//! Alerts (issue #15 [reports]) that `alerts.rs` does not reach, end to end over HTTP:
//! `payment_timeout` (a provider payment the scheduler finds executing past its timeout),
//! `budget_exceeded` (a submission over a budget), `advance_overdue` (an advance unsettled past
//! its due date) and `replenishment_needed` (a replenishment request open). Each is raised once
//! for its object however often its trigger comes while it is open, shown in
//! `GET /api/alerts/`, mailed through a real SMTP server to the people responsible, and
//! resolved by itself (with a note) when its condition clears. Also the `exceptions` report's
//! over-budget row, against the replay from the events.

use crate::alerts::{alert_mail, alerts, app_with, approved, the_alert};
use crate::providers::{payment, settled};
use futures::future::join_all;
use pettycash_commands::providers::simulator::{Callback, Script, Simulator};
use pettycash_commands::providers::AttemptStatus;
use pettycash_commands::scheduler::tick;
use pettycash_domain::report::{Json, ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_domain::Role;
use pettycash_tests::mail::MailServer;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use std::time::Duration;
use uuid::Uuid;

/// An app that mails to `smtp` and whose scheduler the test ticks itself.
async fn quiet_app(smtp: &MailServer) -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
        smtp.configure(c);
    })
    .await
}

/// The alert mail `user` received with `subject`, once the alert projection and the sender
/// caught up.
async fn mailed(app: &TestApp, smtp: &MailServer, user: &TestUser, subject: &str) -> Vec<String> {
    wait_for_projections(&app.pool, &["alerts"]).await;
    let mails = app.delivered(smtp).await;
    alert_mail(&mails, user).into_iter().filter(|m| m.subject == subject).map(|m| m.text.clone()).collect()
}

/// Every alert of `alert_type` about `object`, in any state, newest first.
async fn all_about(app: &TestApp, user: &TestUser, alert_type: &str, object: Uuid) -> Vec<Value> {
    alerts(app, user, &format!("type={alert_type}"))
        .await
        .into_iter()
        .filter(|a| a["object_id"] == json!(object.to_string()))
        .collect()
}

/// Asserts that `alert` resolved itself (nobody resolved it) with `note`.
fn resolved_by_itself(alert: &Value, note: &str) {
    assert_eq!(
        (&alert["state"], &alert["resolved_by"], &alert["resolution_note"]),
        (&json!("resolved"), &Value::Null, &json!(note)),
        "{alert:#}"
    );
}

/// Pays `id` by mobile money to `destination` as `c.treasury`, with the code the SMTP server
/// received: the payment's id (executing).
async fn pay_mobile_via(app: &TestApp, smtp: &MailServer, c: &Cast, id: Uuid, destination: &str) -> Uuid {
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.mailed_payment_code(smtp, &c.treasury.email, id).await;
    let body =
        json!({"requisition_id": id, "method": "mobile_money", "destination": destination, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!((r.status, &r.body["status"]), (StatusCode::ACCEPTED, &json!("executing")), "{r:?}");
    r.id()
}

/// The provider's signed callback for attempt 1 of `payment`, as the provider sends it.
async fn provider_answers(app: &TestApp, payment: Uuid, status: AttemptStatus) {
    let body = Simulator::callback_body(&format!("{payment}-1"), &status);
    let signature = app.simulator.sign(&pettycash_tests::serde_json::to_vec(&body).unwrap());
    let r = app
        .client
        .post(format!("{}/api/providers/simulator/callback", app.address))
        .header(pettycash_commands::providers::simulator::SIGNATURE_HEADER, signature)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A request the provider takes and never decides while the test runs (no callback either).
fn never_answered() -> Script {
    Script::result("0").callback(Callback::Never).delay(Duration::from_secs(3600))
}

#[tokio::test]
async fn a_provider_payment_past_its_timeout_alerts_once_and_resolves_when_the_provider_answers() {
    let smtp = MailServer::start().await;
    let app = quiet_app(&smtp).await;
    let c = Cast::new(&app).await;
    let t2 = app.user(&[Role::Treasury]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = approved(&app, &c, fund, "300").await;
    app.simulator.script("254712000201", never_answered());
    let first = pay_mobile_via(&app, &smtp, &c, id, "254712000201").await;

    // Not at 9 minutes (`payment_timeout_minutes`, default 10).
    app.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(tick(&app.service).await.unwrap().timed_out, 0);
    assert!(alerts(&app, &c.treasury, "type=payment_timeout").await.is_empty(), "not yet");
    // At 10 minutes three schedulers find it at once: one alert.
    app.clock.advance(chrono::Duration::minutes(1));
    let ticks = join_all((0..3).map(|_| tick(&app.service))).await;
    let ticks: Vec<_> = ticks.into_iter().map(Result::unwrap).collect();
    assert_eq!(ticks.iter().map(|t| t.timed_out).sum::<usize>(), 1, "{ticks:?}");
    assert_eq!(ticks.iter().map(|t| t.chased).sum::<usize>(), 0, "the provider still has it pending");
    let alert = the_alert(&app, &c.treasury, "payment_timeout", id).await;
    assert_eq!(
        (&alert["severity"], &alert["state"], &alert["object_type"], &alert["fund_id"]),
        (&json!("high"), &json!("open"), &json!("requisition"), &json!(fund)),
        "{alert:#}"
    );
    assert_eq!(alert["responsible_ids"], json!([c.treasury.id]), "the payer");
    assert_eq!(
        alert["message"],
        format!(
            "The payment of requisition {id} (Test purchase, 300.00 KES) has had no result from the \
             provider for 10 minutes."
        )
    );
    let alert_id = alert["id"].as_str().unwrap().to_string();
    for user in [&c.auditor, &t2] {
        assert_eq!(the_alert(&app, user, "payment_timeout", id).await["id"], json!(alert_id));
    }
    assert!(alerts(&app, &c.staff, "").await.is_empty(), "the requester is not responsible");

    // Mailed once to the payer (a treasurer) and to the other treasurer; not to the requester.
    let subject = "Alert (high): Payment timed out";
    for user in [&c.treasury, &t2] {
        let mails = mailed(&app, &smtp, user, subject).await;
        assert_eq!(mails.len(), 1, "{mails:#?}");
        assert!(mails[0].contains(&format!("/alerts/{alert_id}")), "{}", mails[0]);
    }
    assert!(alert_mail(&smtp.received(), &c.staff).is_empty());

    // Still executing ten minutes on: no second alert, no second mail.
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(tick(&app.service).await.unwrap().timed_out, 0);
    assert_eq!(the_alert(&app, &c.treasury, "payment_timeout", id).await["state"], "open");
    assert_eq!(mailed(&app, &smtp, &c.treasury, subject).await.len(), 1);

    // The provider answers at last: failed for good. No longer waiting on the provider, the
    // timeout resolves itself; the failure is its own alert.
    let unregistered = AttemptStatus::Failed {
        result_code: "2003".into(),
        reason: "The recipient is not registered.".into(),
    };
    provider_answers(&app, first, unregistered).await;
    assert_eq!(settled(&app, &c, first).await["status"], "failed");
    let timeout = the_alert(&app, &c.treasury, "payment_timeout", id).await;
    resolved_by_itself(&timeout, "The provider answered: the payment failed.");
    assert_eq!(the_alert(&app, &c.treasury, "payment_failed", id).await["state"], "open");

    // Paid again, it times out again: a new alert (the first stays resolved); the provider's
    // success resolves it, and the failure with it.
    app.clock.advance(chrono::Duration::seconds(30));
    app.simulator.script("254712000202", never_answered());
    let second = pay_mobile_via(&app, &smtp, &c, id, "254712000202").await;
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(tick(&app.service).await.unwrap().timed_out, 1);
    let both = all_about(&app, &c.treasury, "payment_timeout", id).await;
    let states: Vec<&Value> = both.iter().map(|a| &a["state"]).collect();
    assert_eq!(states, [&json!("open"), &json!("resolved")], "{both:#?}");
    assert_eq!(both[1]["id"], json!(alert_id));
    provider_answers(&app, second, AttemptStatus::Succeeded { receipt: "SIMTIMEOUT1".into() }).await;
    assert_eq!(settled(&app, &c, second).await["status"], "succeeded");
    assert_eq!(payment(&app, &c, second).await["provider_receipt"], "SIMTIMEOUT1");
    let both = all_about(&app, &c.treasury, "payment_timeout", id).await;
    resolved_by_itself(&both[0], "The requisition was paid.");
    resolved_by_itself(
        &the_alert(&app, &c.treasury, "payment_failed", id).await,
        "The requisition was paid.",
    );
    assert_eq!(mailed(&app, &smtp, &c.treasury, subject).await.len(), 2, "one a timeout");
}

/// One company with a department and a cost centre under it, its people, a fund, a category
/// and the month's budgets: 1,000.00 KES for the department, 100.00 KES for the cost centre.
struct Org {
    cfo: TestUser,
    fpa: TestUser,
    treasury: TestUser,
    staff: TestUser,
    head: TestUser,
    department: Uuid,
    cost_centre: Uuid,
    fund: Uuid,
    office: Uuid,
}

impl Org {
    async fn build(app: &TestApp) -> Org {
        let org_admin = app.user(&[Role::Admin]).await;
        let policy = json!({"tiers": [{"up_to": null, "chain": ["department_head"]}]});
        assert_eq!(app.put(&org_admin, "/api/approval-policy", policy).await.status, StatusCode::OK);
        let company = app.unit(&org_admin, "company", "ACME", None).await;
        let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
        let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
        let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
        let cost_centre = app.unit(&org_admin, "cost_centre", "CC-1", Some(department)).await;
        let admin = app.user_in(&[Role::Admin], Some(company)).await;
        let fund = app.fund(&admin, "100000").await;
        let r = app
            .post(&admin, "/api/categories", json!({"code": "OFFICE", "name": "Office", "gl_code": "6100"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let o = Org {
            cfo: app.user_in(&[Role::Cfo], Some(company)).await,
            fpa: app.user_in(&[Role::Fpa], Some(company)).await,
            treasury: app.user_in(&[Role::Treasury], Some(company)).await,
            staff: app.user_in(&[Role::Staff], Some(department)).await,
            head: app.user_in(&[Role::Staff, Role::DepartmentHead], Some(department)).await,
            department,
            cost_centre,
            fund,
            office: r.id(),
        };
        for (scope, unit, amount) in [("department", department, "1000"), ("cost_centre", cost_centre, "100")]
        {
            let body = json!({"scope": scope, "scope_id": unit, "month": this_month(), "currency": "KES",
                              "amount": amount});
            let r = app.put(&o.cfo, "/api/budgets", body).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
        }
        o
    }

    /// Creates and submits a requisition of `amount` in the office category (`extra` added).
    async fn submit(&self, app: &TestApp, amount: &str, extra: Value) -> Reply {
        let mut body = json!({"fund_id": self.fund, "amount": amount, "purpose": "Toner",
                              "category_id": self.office, "submit": true});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let r = app.post(&self.staff, "/api/requisitions/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r
    }

    /// 800.00 of the department's budget spent: submitted, approved and paid.
    async fn spend_800(&self, app: &TestApp, smtp: &MailServer) {
        let id = self.submit(app, "800", json!({})).await.id();
        app.approve_by(id, &[&self.head]).await;
        assert_eq!(app.pay_via(smtp, &self.treasury, id).await.status, StatusCode::CREATED);
        wait_for_projections(&app.pool, &["budgets"]).await;
    }

    async fn act(&self, app: &TestApp, by: &TestUser, id: Uuid, action: &str, body: Value) -> Reply {
        let r = app.post(by, &format!("/api/requisitions/{id}/{action}"), body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {r:?}");
        r
    }
}

fn this_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

async fn event_count(app: &TestApp, id: Uuid, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2")
        .bind(id.to_string())
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_over_budget_submission_alerts_fpa_once_for_the_requisition_until_it_is_within_or_rejected() {
    let smtp = MailServer::start().await;
    let app = quiet_app(&smtp).await;
    let o = Org::build(&app).await;
    o.spend_800(&app, &smtp).await;

    // Exactly the budget: no alert.
    let within = o.submit(&app, "200", json!({})).await;
    assert_eq!(within.body["budget_exceeded"], json!([]), "{within:?}");
    // Over the department's budget and the cost centre's at once: two flags, one alert.
    let over = o.submit(&app, "300", json!({"cost_centre_id": o.cost_centre})).await;
    assert_eq!(over.body["budget_exceeded"].as_array().map(Vec::len), Some(2), "{over:?}");
    let id = over.id();
    let listed = alerts(&app, &o.fpa, "type=budget_exceeded").await;
    assert_eq!(listed.len(), 1, "one alert, for the requisition over budget only: {listed:#?}");
    let alert = the_alert(&app, &o.fpa, "budget_exceeded", id).await;
    assert_eq!(
        (&alert["severity"], &alert["state"], &alert["object_type"]),
        (&json!("medium"), &json!("open"), &json!("requisition")),
        "{alert:#}"
    );
    assert_eq!(
        (&alert["fund_id"], &alert["department_id"], &alert["responsible_ids"]),
        (&json!(o.fund), &json!(o.department), &json!([])),
        "{alert:#}"
    );
    let message = alert["message"].as_str().unwrap();
    let what = format!("requisition {id} (Toner, 300.00 KES) would exceed a budget of ");
    assert!(message.starts_with(&what) && message.ends_with("300.00 more asked."), "{message}");
    // FP&A is mailed; treasury, the requester and the approver are not (the approver's
    // approval request says it is over budget).
    let subject = "Alert (medium): Budget exceeded";
    let mails = mailed(&app, &smtp, &o.fpa, subject).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].contains(&format!("/alerts/{}", alert["id"].as_str().unwrap())), "{}", mails[0]);
    for user in [&o.treasury, &o.staff, &o.head] {
        assert!(alert_mail(&smtp.received(), user).is_empty(), "{}", user.email);
    }
    assert!(alerts(&app, &o.staff, "").await.is_empty(), "the requester does not see it");
    assert_eq!(the_alert(&app, &o.cfo, "budget_exceeded", id).await["id"], alert["id"]);

    // Sent back and submitted again, still over both: flagged again, still the one alert.
    o.act(&app, &o.head, id, "request-changes", json!({"reason": "Split it?"})).await;
    let again = o.act(&app, &o.staff, id, "submit", json!({})).await;
    assert_eq!(again.body["budget_exceeded"].as_array().map(Vec::len), Some(2), "{again:?}");
    assert_eq!(event_count(&app, id, "BudgetExceeded").await, 4);
    let still = the_alert(&app, &o.fpa, "budget_exceeded", id).await;
    assert_eq!((&still["id"], &still["state"]), (&alert["id"], &json!("open")));
    assert_eq!(mailed(&app, &smtp, &o.fpa, subject).await.len(), 1, "mailed once");

    // Sent back and submitted within both budgets: resolved by itself.
    o.act(&app, &o.head, id, "request-changes", json!({"reason": "Less, please"})).await;
    let r = app.patch(&o.staff, &format!("/api/requisitions/{id}"), json!({"amount": "50"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let within_now = o.act(&app, &o.staff, id, "submit", json!({})).await;
    assert_eq!(within_now.body["budget_exceeded"], json!([]), "{within_now:?}");
    resolved_by_itself(
        &the_alert(&app, &o.fpa, "budget_exceeded", id).await,
        "Submitted again within its budgets.",
    );

    // Another over the department's budget, rejected: resolved by itself.
    let rejected = o.submit(&app, "400", json!({})).await.id();
    assert_eq!(the_alert(&app, &o.fpa, "budget_exceeded", rejected).await["state"], "open");
    o.act(&app, &o.head, rejected, "reject", json!({"reason": "No budget left"})).await;
    resolved_by_itself(
        &the_alert(&app, &o.fpa, "budget_exceeded", rejected).await,
        "The requisition was rejected.",
    );
    assert_eq!(mailed(&app, &smtp, &o.fpa, subject).await.len(), 2);
    assert!(alerts(&app, &o.fpa, "type=budget_exceeded&state=open,acknowledged").await.is_empty());
}

#[tokio::test]
async fn the_exceptions_report_shows_an_over_budget_requisition_with_its_reason_as_the_replay_does() {
    let smtp = MailServer::start().await;
    let app = quiet_app(&smtp).await;
    let o = Org::build(&app).await;
    o.spend_800(&app, &smtp).await;
    let within = o.submit(&app, "200", json!({})).await.id();
    let over = o.submit(&app, "300", json!({})).await;
    let id = over.id();
    assert_eq!(over.body["budget_exceeded"].as_array().map(Vec::len), Some(1), "{over:?}");
    wait_for_projections(&app.pool, &["requisitions", "report_facts"]).await;

    let today = chrono::Utc::now().format("%Y-%m-%d");
    let r = app.get(&o.fpa, &format!("/api/reports/exceptions?from={today}&to={today}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let rows = r.body["sections"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the requisition over budget: {rows:#?}");
    let row = &rows[0];
    assert_eq!(
        (&row["requisition_id"], &row["kinds"], &row["status"], &row["amount"]),
        (&json!(id.to_string()), &json!("over_budget"), &json!("pending_approval"), &json!("300.00")),
        "{row:#}"
    );
    assert_eq!(
        row["reasons"],
        format!("over_budget: department budget {}: 800.00 consumed + 300.00 > 1000.00", this_month()),
    );
    assert!(rows.iter().all(|r| r["requisition_id"] != json!(within.to_string())));
    let figure = |key: &str| {
        r.body["summary"].as_array().unwrap().iter().find(|f| f["key"] == key).unwrap()["value"].clone()
    };
    assert_eq!((figure("requisitions"), figure("over_budget")), (json!(1), json!(1)));

    // The same report from the events alone, for the same caller and parameters.
    let actor = crate::reports_figures::actor(&app, &o.fpa).await;
    let scope = ReportScope::of(&actor, ReportName::Exceptions).unwrap();
    let params = ReportParams {
        from: r.body["params"]["from"].as_str().unwrap().parse().unwrap(),
        to: r.body["params"]["to"].as_str().unwrap().parse().unwrap(),
        units: UnitFilter::default(),
        stuck_days: 7,
        lookback_days: 30,
    };
    let replayed = pettycash_projections::reports::replay(
        ReportName::Exceptions,
        &app.pool,
        &scope,
        &params,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let replayed = pettycash_tests::serde_json::to_value(Json(&replayed)).unwrap();
    for part in ["sections", "summary", "title", "filters", "params"] {
        assert_eq!(replayed[part], r.body[part], "{part}: replay against API");
    }
}

#[tokio::test]
async fn an_overdue_advance_alerts_treasury_once_and_resolves_when_settled_in_full() {
    let smtp = MailServer::start().await;
    let app = quiet_app(&smtp).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let body = json!({"fund_id": fund, "amount": "1000", "purpose": "Field trip fuel", "submit": true,
                      "advance": true});
    let r = app.post(&c.staff, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay_via(&smtp, &c.treasury, id).await.status, StatusCode::CREATED);
    let settlements = format!("/api/advances/{id}/settlements");
    let settle = |body: Value| app.post(&c.staff, &settlements, body);
    assert_eq!(settle(json!({"spent": "250"})).await.status, StatusCode::CREATED);

    assert_eq!(tick(&app.service).await.unwrap().advances_overdue, 0, "not due yet");
    assert!(alerts(&app, &c.treasury, "type=advance_overdue").await.is_empty());
    // Past its due date (7 days): three schedulers at once, one alert.
    app.clock.advance(chrono::Duration::days(8));
    let ticks = join_all((0..3).map(|_| tick(&app.service))).await;
    assert_eq!(ticks.iter().map(|t| t.as_ref().unwrap().advances_overdue).sum::<usize>(), 1);
    let alert = the_alert(&app, &c.treasury, "advance_overdue", id).await;
    assert_eq!(
        (&alert["severity"], &alert["state"], &alert["object_type"], &alert["fund_id"]),
        (&json!("medium"), &json!("open"), &json!("advance"), &json!(fund)),
        "{alert:#}"
    );
    assert_eq!(alert["responsible_ids"], json!([c.staff.id]), "the holder");
    let message = alert["message"].as_str().unwrap();
    assert!(message.ends_with("750.00 KES is still outstanding."), "{message}");
    // The holder sees it (they are responsible); a bystander does not.
    assert_eq!(the_alert(&app, &c.staff, "advance_overdue", id).await["id"], alert["id"]);
    let bystander = app.user(&[Role::Staff]).await;
    assert!(alerts(&app, &bystander, "").await.is_empty());

    // Treasury is mailed the alert; the holder gets the reminder instead (not twice the news).
    let subject = "Alert (medium): Advance overdue";
    let mails = mailed(&app, &smtp, &c.treasury, subject).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].contains(&format!("/alerts/{}", alert["id"].as_str().unwrap())), "{}", mails[0]);
    let to_holder: Vec<String> = smtp
        .received()
        .into_iter()
        .filter(|m| m.to == [c.staff.email.clone()] && m.subject.contains("verdue"))
        .map(|m| m.subject)
        .collect();
    assert_eq!(to_holder, ["Advance overdue: 750.00 KES to settle"]);

    // Later ticks record nothing again: still the one alert and the one mail.
    app.clock.advance(chrono::Duration::days(3));
    assert_eq!(tick(&app.service).await.unwrap().advances_overdue, 0);
    // A settlement that leaves something outstanding does not clear it; settling the rest does.
    assert_eq!(settle(json!({"spent": "500"})).await.status, StatusCode::CREATED);
    assert_eq!(the_alert(&app, &c.treasury, "advance_overdue", id).await["state"], "open");
    let r = settle(json!({"spent": "100", "returned": "150"})).await;
    assert_eq!((r.status, &r.body["outstanding"]), (StatusCode::CREATED, &json!("0.00")), "{r:?}");
    resolved_by_itself(
        &the_alert(&app, &c.treasury, "advance_overdue", id).await,
        "Settled: nothing is outstanding any more.",
    );
    assert_eq!(mailed(&app, &smtp, &c.treasury, subject).await.len(), 1);
}

#[tokio::test]
async fn an_open_replenishment_request_alerts_once_and_resolves_when_rejected_or_funded() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let custodian = app.user(&[Role::Staff]).await;
    app.waive_codes_below(&c.admin, 1_000_000).await;
    // Auto-replenish on: the payment that takes the balance below the reorder level requests
    // the top-up.
    let body = json!({"name": "Branch box", "currency": "KES", "float": "3000", "reorder_level": "2500",
                      "custodian_id": custodian.id, "auto_replenish": true});
    let r = app.post(&c.admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let fund = r.id();
    let id = approved(&app, &c, fund, "600").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);

    let alert = the_alert(&app, &c.treasury, "replenishment_needed", fund).await;
    assert_eq!(
        (&alert["severity"], &alert["state"], &alert["object_type"], &alert["fund_id"]),
        (&json!("medium"), &json!("open"), &json!("fund"), &json!(fund)),
        "{alert:#}"
    );
    assert_eq!(alert["responsible_ids"], json!([custodian.id]));
    assert_eq!(
        alert["message"],
        "A replenishment of 600.00 KES was requested for fund Branch box (balance 2400.00 KES)."
    );
    let subject = "Alert (medium): Fund needs replenishment";
    for user in [&custodian, &c.treasury, &c.cfo] {
        assert_eq!(mailed(&app, &smtp, user, subject).await.len(), 1, "{}", user.email);
    }
    assert!(alert_mail(&smtp.received(), &c.staff).is_empty());

    // Lower still while the request is open: no second request, no second alert; nor by hand.
    let more = approved(&app, &c, fund, "100").await;
    assert_eq!(app.pay(&c.treasury, more).await.status, StatusCode::CREATED);
    let requests = format!("/api/funds/{fund}/replenishments");
    let r = app.post(&c.treasury, &requests, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "replenishment_open"), "{r:?}");
    assert_eq!(the_alert(&app, &c.treasury, "replenishment_needed", fund).await["id"], alert["id"]);
    assert_eq!(mailed(&app, &smtp, &c.treasury, subject).await.len(), 1);

    // Rejected: resolved by itself.
    let open = app.get(&c.treasury, &format!("/api/funds/{fund}")).await;
    let request = open.body["replenishment"]["id"].as_str().unwrap().to_string();
    let r = app.post(&c.cfo, &format!("{requests}/{request}/reject"), json!({"reason": "Count first"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    resolved_by_itself(
        &the_alert(&app, &c.treasury, "replenishment_needed", fund).await,
        "The replenishment request was rejected.",
    );

    // Requested again by hand: a new alert; approved and funded: resolved by itself.
    let r = app.post(&c.treasury, &requests, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let path = format!("{requests}/{}", r.id());
    let both = all_about(&app, &c.treasury, "replenishment_needed", fund).await;
    let states: Vec<&Value> = both.iter().map(|a| &a["state"]).collect();
    assert_eq!(states, [&json!("open"), &json!("resolved")], "{both:#?}");
    assert_eq!(app.post(&c.cfo, &format!("{path}/approve"), json!({})).await.status, StatusCode::OK);
    let r = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-10"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let both = all_about(&app, &c.treasury, "replenishment_needed", fund).await;
    resolved_by_itself(&both[0], "Replenished with 700.00 KES.");
    assert!(alerts(&app, &c.treasury, &format!("fund_id={fund}&state=open,acknowledged")).await.is_empty());
    assert_eq!(mailed(&app, &smtp, &c.treasury, subject).await.len(), 2);
}

/// A budget raised to cover what a requisition asks clears its flag: over the department's
/// and the cost centre's budgets, raising only one leaves the alert open; raising the other
/// too (to exactly what was consumed when flagged plus the amount) resolves it by itself,
/// with the budget in the note. Raising a budget too little clears nothing.
#[tokio::test]
async fn raising_every_budget_a_requisition_exceeds_resolves_its_alert() {
    let smtp = MailServer::start().await;
    let app = quiet_app(&smtp).await;
    let o = Org::build(&app).await;
    o.spend_800(&app, &smtp).await;
    // 800 + 300 over the department's 1,000; 0 + 300 over the cost centre's 100.
    let over = o.submit(&app, "300", json!({"cost_centre_id": o.cost_centre})).await;
    assert_eq!(over.body["budget_exceeded"].as_array().map(Vec::len), Some(2), "{over:?}");
    let id = over.id();
    assert_eq!(the_alert(&app, &o.fpa, "budget_exceeded", id).await["state"], "open");
    let set = |scope: &str, unit: Uuid, amount: &str| json!({"scope": scope, "scope_id": unit, "month": this_month(), "currency": "KES", "amount": amount});
    for (scope, unit, amount) in [
        ("department", o.department, "1099.99"), // a cent short
        ("department", o.department, "1100"),    // covers it; the cost centre's still does not
        ("cost_centre", o.cost_centre, "250"),   // short
    ] {
        let r = app.put(&o.cfo, "/api/budgets", set(scope, unit, amount)).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let alert = the_alert(&app, &o.fpa, "budget_exceeded", id).await;
        assert_eq!(alert["state"], "open", "after {scope} {amount}: {alert:#}");
    }
    let r = app.put(&o.cfo, "/api/budgets", set("cost_centre", o.cost_centre, "300")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    resolved_by_itself(
        &the_alert(&app, &o.fpa, "budget_exceeded", id).await,
        &format!("The cost centre budget for {} was raised to 300.00 KES.", this_month()),
    );
}
