//! Deadlines over HTTP, with the running server's scheduler (ticking every second) and its
//! clock moved forward instead of waiting: requested changes not made in time expire; a step
//! that waits is reminded, then goes to the admins. Each as an event, each mailed over real
//! SMTP, each following its runtime setting.

use chrono::{DateTime, Duration, Utc};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, MailServer, ReceivedMail, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use std::time::Instant;
use uuid::Uuid;

async fn app_with(smtp: &MailServer) -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 1;
        smtp.configure(c);
    })
    .await
}

async fn set(app: &TestApp, admin: &TestUser, key: &str, value: Value) {
    let r = app
        .send(Some(admin), Method::PUT, &format!("/api/settings/{key}"), Some(json!({"value": value})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

fn time(r: &Reply, field: &str) -> DateTime<Utc> {
    r.body[field].as_str().unwrap_or_else(|| panic!("no {field}: {r:?}")).parse().unwrap()
}

/// True when `at` is `hours` after the clock's now, within a minute.
fn in_hours(app: &TestApp, at: DateTime<Utc>, hours: i64) -> bool {
    (at - (app.clock.now() + Duration::hours(hours))).num_seconds().abs() < 60
}

/// The event types of `id`'s history.
async fn history(app: &TestApp, user: &TestUser, id: Uuid) -> Vec<String> {
    let r = app.get(user, &format!("/api/requisitions/{id}/history")).await;
    r.body.as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect()
}

/// Waits (up to 20 s) until `id`'s history holds `count` events of `event_type`.
async fn until_recorded(app: &TestApp, user: &TestUser, id: Uuid, event_type: &str, count: usize) {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = history(app, user, id).await;
        let n = events.iter().filter(|e| *e == event_type).count();
        if n >= count {
            assert_eq!(n, count, "{events:?}");
            return;
        }
        assert!(Instant::now() < deadline, "no {event_type} ×{count}: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Gives the scheduler a few ticks, then asserts `event_type` was not recorded for `id`.
async fn still_not(app: &TestApp, user: &TestUser, id: Uuid, event_type: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let events = history(app, user, id).await;
    assert!(!events.iter().any(|e| e == event_type), "{event_type} too early: {events:?}");
}

fn subjects_to(mails: &[ReceivedMail], user: &TestUser) -> Vec<String> {
    mails.iter().filter(|m| m.to == [user.email.clone()]).map(|m| m.subject.clone()).collect()
}

async fn request_changes(app: &TestApp, by: &TestUser, id: Uuid, body: Value) -> Reply {
    app.post(by, &format!("/api/requisitions/{id}/request-changes"), body).await
}

async fn resubmit(app: &TestApp, requester: &TestUser, id: Uuid) -> Reply {
    app.post(requester, &format!("/api/requisitions/{id}/submit"), json!({})).await
}

#[tokio::test]
async fn changes_not_made_by_the_deadline_expire_the_requisition_and_the_requester_is_told() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "100").await;

    // A deadline that is not a time, is past, or is too far off: 422 on `deadline`, nothing
    // recorded.
    for deadline in ["tomorrow", "2020-01-01T00:00:00Z", &(Utc::now() + Duration::days(91)).to_rfc3339()] {
        let r =
            request_changes(&app, &c.head, id, json!({"reason": "Attach the quote", "deadline": deadline}))
                .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "deadline"),
            "{deadline}: {r:?}"
        );
    }
    assert!(!history(&app, &c.head, id).await.contains(&"ChangesRequested".to_string()));

    // Without one: the `change_request_hours` setting, 48 hours by default.
    let r = request_changes(&app, &c.head, id, json!({"reason": "Attach the quote"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(in_hours(&app, time(&r, "changes_deadline"), 48), "{r:?}");
    assert_eq!(r.body["remind_at"], Value::Null);

    app.clock.advance(Duration::hours(47));
    still_not(&app, &c.staff, id, "RequisitionExpired").await;
    app.clock.advance(Duration::hours(2));
    until_recorded(&app, &c.staff, id, "RequisitionExpired", 1).await;
    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(view.body["status"], "expired", "{view:?}");
    assert_eq!(view.body["changes_deadline"], Value::Null);
    let r = resubmit(&app, &c.staff, id).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "invalid_state"), "{r:?}");
    let r = app.post(&c.staff, &format!("/api/requisitions/{id}/cancel"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "invalid_state"), "{r:?}");

    let mails = app.delivered(&smtp).await;
    let to_staff = subjects_to(&mails, &c.staff);
    assert!(to_staff.iter().any(|s| s.starts_with("Changes requested")), "{to_staff:?}");
    assert!(to_staff.iter().any(|s| s.starts_with("Expired")), "{to_staff:?}");
    let expired = mails.iter().find(|m| m.subject.starts_with("Expired")).unwrap();
    assert!(expired.text.contains(&format!("/requisitions/{id}")), "{}", expired.text);

    // The organisation's admin shortens the time: the next request gives five hours.
    set(&app, &c.admin, "change_request_hours", json!(5)).await;
    let other = app.submitted(&c.staff, fund, "200").await;
    let r = request_changes(&app, &c.head, other, json!({"reason": "Which project?"})).await;
    assert!(in_hours(&app, time(&r, "changes_deadline"), 5), "{r:?}");
    // An approver may give longer than the setting (up to 90 days).
    let third = app.submitted(&c.staff, fund, "300").await;
    let deadline = (app.clock.now() + Duration::days(10)).to_rfc3339();
    let r = request_changes(&app, &c.head, third, json!({"reason": "Quote", "deadline": deadline})).await;
    assert!(in_hours(&app, time(&r, "changes_deadline"), 240), "{r:?}");
    app.clock.advance(Duration::hours(6));
    until_recorded(&app, &c.staff, other, "RequisitionExpired", 1).await;
    still_not(&app, &c.staff, third, "RequisitionExpired").await;
    assert_eq!(resubmit(&app, &c.staff, third).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_resubmission_after_the_deadline_is_refused_even_before_the_scheduler_comes_round() {
    // The scheduler looks once at start, then not for an hour.
    let app = TestApp::spawn_with(|c| c.scheduler_interval_secs = 3600).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "100").await;
    let deadline = (app.clock.now() + Duration::hours(1)).to_rfc3339();
    let r = request_changes(&app, &c.head, id, json!({"reason": "Quote", "deadline": deadline})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    app.clock.advance(Duration::minutes(61));
    let r = resubmit(&app, &c.staff, id).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "changes_expired"), "{r:?}");
    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(view.body["status"], "changes_requested", "the refusal recorded nothing");
}

#[tokio::test]
async fn a_waiting_step_is_reminded_after_the_reminder_hours_then_goes_to_the_admins_after_the_escalation_hours(
) {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let c = Cast::new(&app).await;
    set(&app, &c.admin, "approval_reminder_hours", json!(2)).await;
    set(&app, &c.admin, "approval_escalation_hours", json!(5)).await;
    let fund = app.fund(&c.admin, "100000").await;
    // Two steps: the department head's, then the group finance manager's.
    let id = app.submitted(&c.staff, fund, "5000").await;
    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert!(in_hours(&app, time(&view, "remind_at"), 2), "{view:?}");
    assert!(in_hours(&app, time(&view, "escalate_at"), 5), "{view:?}");

    app.clock.advance(Duration::minutes(110));
    still_not(&app, &c.staff, id, "ApprovalOverdue").await;
    app.clock.advance(Duration::minutes(11));
    until_recorded(&app, &c.staff, id, "ApprovalOverdue", 1).await;
    // Once per step, however many ticks pass.
    app.clock.advance(Duration::hours(1));
    still_not(&app, &c.staff, id, "ApprovalEscalated").await;
    until_recorded(&app, &c.staff, id, "ApprovalOverdue", 1).await;

    app.clock.advance(Duration::hours(2));
    until_recorded(&app, &c.staff, id, "ApprovalEscalated", 1).await;
    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(view.body["current_eligible"], json!([c.admin.id]), "{view:?}");
    assert_eq!(view.body["steps"][0]["escalated_to_admin"], true, "{view:?}");
    // The head it was routed to no longer decides it; the admin's inbox has it.
    let r = app.post(&c.head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(&c.admin, "/api/approvals/").await;
    assert!(inbox.body["items"].as_array().unwrap().iter().any(|i| i["id"] == json!(id)), "{inbox:?}");
    let r = app.post(&c.admin, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // The next step starts its own wait.
    assert_eq!(r.body["current_role"], "group_finance_manager");
    assert!(in_hours(&app, time(&r, "remind_at"), 2), "{r:?}");

    let mails = app.delivered(&smtp).await;
    let to_head = subjects_to(&mails, &c.head);
    assert_eq!(to_head.iter().filter(|s| s.starts_with("Waiting for you")).count(), 1, "{to_head:?}");
    let to_admin = subjects_to(&mails, &c.admin);
    assert!(to_admin.iter().any(|s| s.starts_with("Approval requested")), "{to_admin:?}");
    let history = history(&app, &c.staff, id).await;
    assert_eq!(
        history,
        [
            "RequisitionCreated",
            "RequisitionSubmitted",
            "ApprovalOverdue",
            "ApprovalEscalated",
            "RequisitionApproved"
        ]
    );
}

#[tokio::test]
async fn schedulers_racing_on_the_same_deadline_record_it_once() {
    let app = TestApp::spawn_with(|c| c.scheduler_interval_secs = 1).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let mut ids = Vec::new();
    for amount in ["10", "20", "30", "40", "50"] {
        let id = app.submitted(&c.staff, fund, amount).await;
        let r = request_changes(&app, &c.head, id, json!({"reason": "Quote"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        ids.push(id);
    }
    wait_for_projections(&app.pool, &["requisitions"]).await;
    app.clock.advance(Duration::hours(49));
    // The server's scheduler and four more (as other processes would run) at once.
    let ticks =
        futures::future::join_all((0..4).map(|_| pettycash_commands::scheduler::tick(&app.service))).await;
    let by_others: usize = ticks.into_iter().map(|t| t.unwrap().expired).sum();
    for id in &ids {
        until_recorded(&app, &c.staff, *id, "RequisitionExpired", 1).await;
    }
    // More ticks of everyone change nothing.
    for _ in 0..3 {
        assert_eq!(pettycash_commands::scheduler::tick(&app.service).await.unwrap().expired, 0);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for id in &ids {
        until_recorded(&app, &c.staff, *id, "RequisitionExpired", 1).await;
    }
    assert!(by_others <= ids.len(), "{by_others}");
}
