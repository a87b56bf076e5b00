//! Delegation while away, over HTTP (issue #13 [workflow]): an approver delegates a role to
//! another holder of it in the same scope for a period; the delegate decides on their behalf
//! (the history says so), never on their own requisition or one they approved, and only while
//! the delegation is active.
//!
//! Routing gives a step to every holder of its role in scope at submission, so a delegate in
//! these tests is someone who was not routed the step: they got the role (joined) after the
//! requisition was submitted, as a stand-in does.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, MailServer, TestApp, TestUser};
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// `by` delegates `role` to `to` until `days` from now (the server's clock).
async fn delegate(app: &TestApp, by: &TestUser, to: &TestUser, role: &str, days: i64) -> Uuid {
    let ends_at = (app.clock.now() + chrono::Duration::days(days)).to_rfc3339();
    let r = app
        .post(by, "/api/delegations/", json!({"delegate_id": to.id, "role": role, "ends_at": ends_at}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "active");
    r.id()
}

async fn approve(app: &TestApp, by: &TestUser, id: Uuid) -> pettycash_tests::Reply {
    app.post(by, &format!("/api/requisitions/{id}/approve"), json!({"comment": "covering"})).await
}

async fn inbox(app: &TestApp, user: &TestUser) -> Vec<String> {
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let r = app.get(user, "/api/approvals/").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_delegate_approves_on_behalf_of_the_delegator_and_the_history_says_so() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "500").await;
    let deputy = app.user(&[Role::DepartmentHead]).await;
    assert!(inbox(&app, &deputy).await.is_empty(), "not routed to the deputy");
    let refused = approve(&app, &deputy, id).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "not_eligible"), "{refused:?}");

    let delegation = delegate(&app, &c.head, &deputy, "department_head", 7).await;
    assert_eq!(inbox(&app, &deputy).await, [id.to_string()], "the delegate's inbox has the head's step");
    let both = |r: &pettycash_tests::Reply| -> Vec<Value> { r.body["items"].as_array().unwrap().clone() };
    let given = app.get(&c.head, "/api/delegations/").await;
    let received = app.get(&deputy, "/api/delegations/").await;
    assert_eq!(both(&given), both(&received), "the delegator and the delegate see the same one");
    assert_eq!(both(&given)[0]["delegator_id"], c.head.id.to_string());

    let r = approve(&app, &deputy, id).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["approvals"][0]["approver_id"], deputy.id.to_string());
    assert_eq!(r.body["approvals"][0]["on_behalf_of"], c.head.id.to_string());
    let history = app.get(&c.auditor, &format!("/api/requisitions/{id}/history")).await;
    let approval = &history.body[2];
    assert_eq!(approval["event_type"], "RequisitionApproved");
    assert_eq!(approval["event_version"], "3");
    assert_eq!(approval["actor_id"], deputy.id.to_string());
    assert_eq!(approval["data"]["approver_id"], deputy.id.to_string());
    assert_eq!(approval["data"]["on_behalf_of"], c.head.id.to_string());
    assert_eq!(approval["data"]["delegation_id"], delegation.to_string());
    // A delegate's approval completes the chain like any other.
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
}

/// Inserts a requisition submitted before routing recorded people (version-1 events, signed as
/// the service would have): its step waits on any holder of the step's role.
async fn insert_v1_submitted(app: &TestApp, fund: Uuid, requester: Uuid, role: &str) -> Uuid {
    let id = Uuid::now_v7();
    let events = [
        json!({"RequisitionCreated": {"requisition_id": id, "fund_id": fund, "currency": "KES",
            "amount": "42.00", "purpose": "From before routing", "payee": null, "category": null,
            "requester_id": requester}}),
        json!({"RequisitionSubmitted": {"amount": "42.00", "chain": [role], "policy_version": 1,
            "submitted_by": requester}}),
    ];
    let actor = json!({"actor_id": requester.to_string()});
    for (sequence, payload) in (1i64..).zip(events) {
        pettycash_tests::insert_signed_event(
            &app.pool,
            "requisition",
            &id.to_string(),
            sequence,
            payload,
            &actor,
        )
        .await;
    }
    id
}

/// An inbox that comes through all three ways (routed by name, delegated, and by role for a
/// requisition submitted before routing named anyone), paged one at a time: each page takes
/// the first rows of each way and merges them, so every requisition comes once, oldest first,
/// and the count on the dashboard counts each once and every way.
#[tokio::test]
async fn an_inbox_routed_and_delegated_pages_oldest_first_and_counts_each_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    // Waits on any department head: the head, and the deputy once they hold the role.
    let legacy = insert_v1_submitted(&app, fund, c.staff.id, "department_head").await;
    // Routed to the head only: the deputy takes the role afterwards.
    let before = app.submitted(&c.staff, fund, "100").await;
    let deputy = app.user(&[Role::DepartmentHead]).await;
    // Routed to both.
    let routed = [app.submitted(&c.staff, fund, "200").await, app.submitted(&c.staff, fund, "300").await];
    let expected: Vec<String> = [legacy, routed[0], routed[1]].iter().map(Uuid::to_string).collect();
    assert_eq!(inbox(&app, &deputy).await, expected);
    // The head's delegation adds the one routed to the head only (the other two come both ways).
    delegate(&app, &c.head, &deputy, "department_head", 7).await;
    let all: Vec<String> = [legacy, before, routed[0], routed[1]].iter().map(Uuid::to_string).collect();
    assert_eq!(inbox(&app, &deputy).await, all, "oldest first, each once");
    assert_eq!(inbox(&app, &c.head).await, all, "the head's own, by name and by role");

    let mut paged = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/approvals/?limit=1&cursor={c}"),
            None => "/api/approvals/?limit=1".to_string(),
        };
        let r = app.get(&deputy, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{r:?}");
        paged.push(items[0]["id"].as_str().unwrap().to_string());
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(paged.len() < 6, "paging does not end: {paged:?}");
    }
    assert_eq!(paged, all);

    let d = app.get(&deputy, "/api/dashboard/").await;
    assert_eq!(d.status, StatusCode::OK, "{d:?}");
    assert_eq!(d.body["pending_approval"]["awaiting_me"], 4, "{}", d.body["pending_approval"]);
    let d = app.get(&c.head, "/api/dashboard/").await;
    assert_eq!(d.body["pending_approval"]["awaiting_me"], 4, "{}", d.body["pending_approval"]);
}

#[tokio::test]
async fn a_delegate_never_decides_their_own_requisition_nor_one_they_already_approved() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let own_later = app.user(&[Role::Staff, Role::DepartmentHead]).await;
    delegate(&app, &c.head, &own_later, "department_head", 7).await;
    let own = app.submitted(&own_later, fund, "500").await;
    let r = approve(&app, &own_later, own).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "self_approval"), "{r:?}");
    assert!(!inbox(&app, &own_later).await.contains(&own.to_string()));

    // Two steps; the deputy joined after the submission and stands in for both approvers.
    let id = app.submitted(&c.staff, fund, "1500").await;
    let deputy = app.user(&[Role::DepartmentHead, Role::GroupFinanceManager]).await;
    delegate(&app, &c.head, &deputy, "department_head", 7).await;
    delegate(&app, &c.gfm, &deputy, "group_finance_manager", 7).await;
    assert_eq!(approve(&app, &deputy, id).await.status, StatusCode::OK);
    assert!(!inbox(&app, &deputy).await.contains(&id.to_string()), "already approved by the deputy");
    let r = approve(&app, &deputy, id).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "duplicate_approver"), "{r:?}");
    // The group finance manager decides their step themselves.
    assert_eq!(approve(&app, &c.gfm, id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_delegation_serves_nothing_after_its_end_date_or_once_revoked() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let (first, second) =
        (app.submitted(&c.staff, fund, "100").await, app.submitted(&c.staff, fund, "200").await);
    let (deputy, stand_in) =
        tokio::join!(app.user(&[Role::DepartmentHead]), app.user(&[Role::DepartmentHead]));

    // Ended: a day's delegation, two days later.
    delegate(&app, &c.head, &deputy, "department_head", 1).await;
    assert_eq!(inbox(&app, &deputy).await.len(), 2);
    app.clock.advance(chrono::Duration::days(2));
    let r = approve(&app, &deputy, first).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "delegation_inactive"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("ended"), "{r:?}");
    assert!(inbox(&app, &deputy).await.is_empty(), "gone from the inbox at its end");
    let listed = app.get(&deputy, "/api/delegations/").await;
    assert_eq!(listed.body["items"][0]["status"], "ended");

    // Revoked by the delegator (not by the delegate).
    let delegation = delegate(&app, &c.head, &stand_in, "department_head", 7).await;
    let path = format!("/api/delegations/{delegation}/revoke");
    let r = app.post(&stand_in, &path, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "delegation_not_yours"), "{r:?}");
    let r = app.post(&c.head, &path, json!({"reason": "back early"})).await;
    assert_eq!((r.status, &r.body["status"]), (StatusCode::OK, &json!("revoked")), "{r:?}");
    let r = approve(&app, &stand_in, second).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "delegation_inactive"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("revoked"), "{r:?}");
    assert!(inbox(&app, &stand_in).await.is_empty());
    // The head still decides both.
    app.approve_by(first, &[&c.head]).await;
    app.approve_by(second, &[&c.head]).await;
}

#[tokio::test]
async fn a_grant_to_someone_of_another_scope_or_for_a_role_not_held_is_refused_naming_why() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let company = app.unit(&admin, "company", "ACME", None).await;
    let region = app.unit(&admin, "region", "R1", Some(company)).await;
    let one = app.unit(&admin, "branch", "B1", Some(region)).await;
    let two = app.unit(&admin, "branch", "B2", Some(region)).await;
    let ann = app.user_in(&[Role::BranchManager], Some(one)).await;
    let bob = app.user_in(&[Role::BranchManager], Some(one)).await;
    let carol = app.user_in(&[Role::BranchManager], Some(two)).await;
    let dave = app.user_in(&[Role::DepartmentHead], Some(one)).await;
    let ends_at = (app.clock.now() + chrono::Duration::days(7)).to_rfc3339();
    async fn grant(app: &TestApp, by: &TestUser, to: &TestUser, role: &str) -> pettycash_tests::Reply {
        let ends_at = (app.clock.now() + chrono::Duration::days(7)).to_rfc3339();
        app.post(by, "/api/delegations/", json!({"delegate_id": to.id, "role": role, "ends_at": ends_at}))
            .await
    }

    let r = grant(&app, &ann, &carol, "branch_manager").await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "delegate_not_eligible", "delegate_id")
    );
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("another part of the organisation"),
        "{r:?}"
    );
    let r = grant(&app, &ann, &dave, "branch_manager").await;
    assert_eq!((r.code(), r.field()), ("delegate_not_eligible", "delegate_id"), "{r:?}");
    let r = grant(&app, &ann, &bob, "cfo").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "role"), "{r:?}");
    let too_long = (app.clock.now() + chrono::Duration::days(91)).to_rfc3339();
    let r = app
        .post(
            &ann,
            "/api/delegations/",
            json!({"delegate_id": bob.id, "role": "branch_manager", "ends_at": too_long}),
        )
        .await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "ends_at"), "{r:?}");
    // Someone else's approvals are not theirs to give; their admin may.
    let r = app
        .post(
            &bob,
            "/api/delegations/",
            json!({"delegator_id": ann.id, "delegate_id": bob.id, "role": "branch_manager", "ends_at": ends_at}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "delegation_not_yours"), "{r:?}");
    let company_admin = app.user_in(&[Role::Admin], Some(company)).await;
    let r = app
        .post(
            &company_admin,
            "/api/delegations/",
            json!({"delegator_id": ann.id, "delegate_id": bob.id, "role": "branch_manager", "ends_at": ends_at}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["granted_by"], company_admin.id.to_string());
    let listed = app.get(&company_admin, "/api/delegations/").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "{listed:?}");
    assert!(app.get(&carol, "/api/delegations/").await.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_delegate_of_a_steps_approver_is_mailed_when_the_step_waits() {
    let smtp = MailServer::start().await;
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "1500").await;
    // The group finance manager is away; a stand-in joins and takes their step.
    let deputy = app.user(&[Role::GroupFinanceManager]).await;
    delegate(&app, &c.gfm, &deputy, "group_finance_manager", 7).await;
    delivered(&app).await;
    smtp.clear();

    app.approve_by(id, &[&c.head]).await;
    delivered(&app).await;
    let mails = smtp.received();
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    let mut expected = vec![c.gfm.email.clone(), deputy.email.clone()];
    expected.sort();
    assert_eq!(to, expected, "the step's approver and their delegate: {mails:#?}");
    let mail = mails.iter().find(|m| m.to == [deputy.email.clone()]).unwrap();
    assert!(mail.subject.starts_with("Approval requested:"), "{}", mail.subject);
    assert!(mail.text.contains(&format!("/requisitions/{id}")), "{}", mail.text);
}

/// Waits until the notifications projection has applied every event and every mail it wrote
/// was sent.
async fn delivered(app: &TestApp) {
    wait_for_projections(&app.pool, &["notifications"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if unsent == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{unsent} mails still unsent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sessions of this test's database waiting for a lock.
async fn waiting(app: &TestApp, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{waiting} waiting, not {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_approval_decided_while_its_delegation_is_being_revoked_does_not_commit_after_the_revocation() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "500").await;
    let deputy = app.user(&[Role::DepartmentHead]).await;
    let delegation = delegate(&app, &c.head, &deputy, "department_head", 7).await;

    // Hold the delegation's row so that the revocation is in flight (its event appended, its
    // row not yet written) while the deputy's approval is decided on the delegation as it was.
    let mut hold = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM delegations WHERE id = $1 FOR UPDATE")
        .bind(delegation)
        .execute(&mut *hold)
        .await
        .unwrap();
    let revoke = {
        let (app_address, head) = (app.address.clone(), c.head.clone());
        let client = app.client.clone();
        tokio::spawn(async move {
            client
                .post(format!("{app_address}/api/delegations/{delegation}/revoke"))
                .bearer_auth(&head.token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    waiting(&app, 1).await;
    let approval = {
        let (app_address, deputy) = (app.address.clone(), deputy.clone());
        let client = app.client.clone();
        tokio::spawn(async move {
            let r = client
                .post(format!("{app_address}/api/requisitions/{id}/approve"))
                .bearer_auth(&deputy.token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            TestApp::reply(r).await
        })
    };
    waiting(&app, 2).await;
    hold.commit().await.unwrap();

    assert_eq!(revoke.await.unwrap(), StatusCode::OK);
    let r = approval.await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "delegation_inactive"), "{r:?}");
    let detail = app.get(&c.head, &format!("/api/requisitions/{id}")).await;
    assert_eq!(detail.body["approvals"], json!([]), "nothing recorded on the revoked delegation's behalf");
}
