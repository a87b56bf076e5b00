//! Urgent requisitions and the admin's emergency override over HTTP (issue [workflow]): the
//! requester gives a reason, the first approver confirms or denies the urgency, a threshold
//! that allows it shortens the chain to its final step and an approver can revert that; an
//! admin overrides with a justification, never on their own requisition, and may not pay it.
//! Also: a changed amount re-runs routing on resubmission, up and down.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, MailServer, ReceivedMail, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

/// KES: up to 1,000.00 one step; above, three steps and a fast-track allowed.
fn policy() -> Value {
    json!({"thresholds": [
        {"name": "Small", "currency": "KES", "min": "0", "max": "1000.00", "chain": ["department_head"]},
        {"name": "Large", "currency": "KES", "min": "1000.01", "max": null,
         "chain": ["department_head", "group_finance_manager", "cfo"], "fast_track": true},
        {"name": "Other currencies", "currency": null, "min": "0", "max": null,
         "chain": ["department_head", "group_finance_manager", "cfo"]},
    ]})
}

async fn world() -> (TestApp, Cast, Uuid) {
    world_with(TestApp::spawn().await).await
}

async fn world_with(app: TestApp) -> (TestApp, Cast, Uuid) {
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), Method::PUT, "/api/approval-policy/thresholds", Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fund = app.fund_in(&c.admin, "1000000", "KES").await;
    (app, c, fund)
}

async fn urgent(app: &TestApp, c: &Cast, fund: Uuid, amount: &str) -> Reply {
    let body = json!({"fund_id": fund, "amount": amount, "purpose": "Generator fuel", "submit": true,
        "urgent_reason": "Power cut tonight"});
    let r = app.post(&c.staff, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r
}

async fn act(app: &TestApp, by: &TestUser, id: Uuid, action: &str, body: Value) -> Reply {
    app.post(by, &format!("/api/requisitions/{id}/{action}"), body).await
}

async fn history(app: &TestApp, user: &TestUser, id: Uuid) -> Vec<Value> {
    app.get(user, &format!("/api/requisitions/{id}/history")).await.body.as_array().unwrap().clone()
}

#[tokio::test]
async fn confirmed_urgency_goes_straight_to_the_final_step_and_an_approver_can_revert_it() {
    let (app, c, fund) = world().await;
    let r = urgent(&app, &c, fund, "5000").await;
    let id = r.id();
    assert_eq!(
        (
            &r.body["urgency"]["reason"],
            &r.body["urgency"]["decision"],
            &r.body["urgency"]["fast_track_allowed"]
        ),
        (&json!("Power cut tonight"), &json!("pending"), &json!(true)),
        "{r:?}"
    );

    // Nobody approves before the urgency is decided; the requester cannot decide it.
    let early = act(&app, &c.head, id, "approve", json!({})).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "urgency_undecided"), "{early:?}");
    let own = act(&app, &c.staff, id, "confirm-urgency", json!({})).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{own:?}");

    let r = act(&app, &c.head, id, "confirm-urgency", json!({"comment": "Agreed, urgent"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["fast_tracked"], true);
    assert_eq!(r.body["urgency"]["decided_by"], json!(c.head.id));
    assert_eq!(r.body["current_role"], "cfo", "only the final step is left: {r:?}");
    assert_eq!(r.body["chain"], json!(["department_head", "group_finance_manager", "cfo"]), "chain kept");
    let again = act(&app, &c.head, id, "confirm-urgency", json!({})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "urgency_state"), "{again:?}");

    // The CFO sends it back through the whole chain.
    let blank = act(&app, &c.cfo, id, "revert-fast-track", json!({"reason": " "})).await;
    assert_eq!((blank.status, blank.field()), (StatusCode::UNPROCESSABLE_ENTITY, "reason"), "{blank:?}");
    let r = act(&app, &c.cfo, id, "revert-fast-track", json!({"reason": "Too large to skip steps"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["fast_tracked"], &r.body["current_role"]),
        (&json!(false), &json!("department_head"))
    );
    app.approve_by(id, &[&c.head, &c.gfm, &c.cfo]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);

    let events: Vec<Value> = history(&app, &c.auditor, id).await;
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "RequisitionCreated",
            "RequisitionSubmitted",
            "UrgencyDeclared",
            "UrgencyConfirmed",
            "FastTrackReverted",
            "RequisitionApproved",
            "RequisitionApproved",
            "RequisitionApproved",
            "PaymentCodeIssued",
            "RequisitionPaid"
        ]
    );
    let confirmed = &events[3];
    assert_eq!(confirmed["data"]["comment"], "Agreed, urgent");
    assert_eq!(confirmed["actor_id"], json!(c.head.id.to_string()));
}

#[tokio::test]
async fn a_fast_tracked_requisition_is_approved_by_the_final_step_alone() {
    let (app, c, fund) = world().await;
    let id = urgent(&app, &c, fund, "5000").await.id();
    act(&app, &c.head, id, "confirm-urgency", json!({})).await;
    let gfm = act(&app, &c.gfm, id, "approve", json!({})).await;
    assert_eq!(gfm.status, StatusCode::FORBIDDEN, "a skipped step's approver: {gfm:?}");
    let r = act(&app, &c.cfo, id, "approve", json!({})).await;
    assert_eq!((r.status, &r.body["status"]), (StatusCode::OK, &json!("approved")), "{r:?}");
}

#[tokio::test]
async fn denied_urgency_or_a_threshold_without_fast_track_keeps_the_whole_chain() {
    let (app, c, fund) = world().await;
    let id = urgent(&app, &c, fund, "5000").await.id();
    let no_reason = act(&app, &c.head, id, "deny-urgency", json!({})).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY, "{no_reason:?}");
    let r = act(&app, &c.head, id, "deny-urgency", json!({"reason": "It can wait"})).await;
    assert_eq!((r.status, &r.body["urgency"]["decision"]), (StatusCode::OK, &json!("denied")), "{r:?}");
    assert_eq!(r.body["current_role"], "department_head");
    app.approve_by(id, &[&c.head]).await;
    let r = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.body["current_role"], "group_finance_manager");

    // USD falls under a threshold that allows no fast-track: confirmed, still three steps.
    let usd = app.fund_in(&c.admin, "100000", "USD").await;
    let id = urgent(&app, &c, usd, "50").await.id();
    let r = act(&app, &c.head, id, "confirm-urgency", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["fast_tracked"], &r.body["urgency"]["fast_track_allowed"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(r.body["current_role"], "department_head");

    // A reason without submitting is refused naming the field; nothing is created.
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    let before = app.get(&c.staff, "/api/requisitions/").await.body["items"].as_array().unwrap().len();
    let body = json!({"fund_id": fund, "amount": "10", "purpose": "p", "urgent_reason": "now"});
    let r = app.post(&c.staff, "/api/requisitions/", body).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "urgent_reason"), "{r:?}");
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    let after = app.get(&c.staff, "/api/requisitions/").await.body["items"].as_array().unwrap().len();
    assert_eq!(before, after);
}

#[tokio::test]
async fn an_admin_overrides_with_a_justification_never_on_their_own_and_may_not_pay_it() {
    let (app, c, fund) = world().await;
    let id = app.submitted(&c.staff, fund, "5000").await;
    app.approve_by(id, &[&c.head]).await;

    let none = act(&app, &c.admin, id, "override", json!({"justification": ""})).await;
    assert_eq!((none.status, none.field()), (StatusCode::UNPROCESSABLE_ENTITY, "justification"), "{none:?}");
    let not_admin = act(&app, &c.gfm, id, "override", json!({"justification": "urgent"})).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN, "{not_admin:?}");

    // An admin who is also a treasurer overrides, then may not pay; another treasurer may.
    let admin_treasurer = app.user(&[Role::Admin, Role::Treasury]).await;
    let r =
        act(&app, &admin_treasurer, id, "override", json!({"justification": "Flood; approvers away"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (&r.body["status"], &r.body["overridden_by"]),
        (&json!("approved"), &json!(admin_treasurer.id))
    );
    assert_eq!(r.body["approvals_count"], 1, "the override is not an approval");
    let paid = app.pay(&admin_treasurer, id).await;
    assert_eq!((paid.status, paid.code()), (StatusCode::FORBIDDEN, "payer_is_approver"), "{paid:?}");
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let events = history(&app, &c.auditor, id).await;
    let overridden = events.iter().find(|e| e["event_type"] == "ApprovalOverridden").expect("recorded");
    assert_eq!(overridden["data"]["justification"], "Flood; approvers away");
    assert_eq!(overridden["data"]["skipped"], json!([1, 2]));

    // An admin's own requisition: 403 self_approval, nothing recorded.
    let admin_staff = app.user(&[Role::Admin, Role::Staff]).await;
    let own = app.submitted(&admin_staff, fund, "5000").await;
    let r = act(&app, &admin_staff, own, "override", json!({"justification": "mine"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "self_approval"), "{r:?}");
    let r = app.get(&admin_staff, &format!("/api/requisitions/{own}")).await;
    assert_eq!(r.body["status"], "pending_approval");
}

#[tokio::test]
async fn a_changed_amount_re_runs_routing_on_resubmission_up_and_down() {
    let (app, c, fund) = world().await;
    let id = app.submitted(&c.staff, fund, "500").await;
    let r = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!((&r.body["threshold"], &r.body["chain"]), (&json!("Small"), &json!(["department_head"])));

    // Up: 500 → 1,000.01 is the three-step threshold; the head's earlier approval is gone.
    act(&app, &c.head, id, "request-changes", json!({"reason": "Add the delivery"})).await;
    let r = app
        .send(
            Some(&c.staff),
            Method::PATCH,
            &format!("/api/requisitions/{id}"),
            Some(json!({"amount": "1000.01"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = act(&app, &c.staff, id, "submit", json!({})).await;
    assert_eq!(
        (&r.body["threshold"], &r.body["chain"]),
        (&json!("Large"), &json!(["department_head", "group_finance_manager", "cfo"])),
        "{r:?}"
    );
    app.approve_by(id, &[&c.head, &c.gfm]).await;

    // Down: sent back at the last step, lowered to 1,000.00: one step, no approval kept.
    act(&app, &c.cfo, id, "request-changes", json!({"reason": "Too much"})).await;
    app.send(
        Some(&c.staff),
        Method::PATCH,
        &format!("/api/requisitions/{id}"),
        Some(json!({"amount": "1000.00"})),
    )
    .await;
    let r = act(&app, &c.staff, id, "submit", json!({})).await;
    assert_eq!(
        (&r.body["threshold"], &r.body["chain"]),
        (&json!("Small"), &json!(["department_head"])),
        "{r:?}"
    );
    assert_eq!((&r.body["approvals_count"], &r.body["current_role"]), (&json!(0), &json!("department_head")));
    // The head and gfm approved in an earlier round: the head decides again; nobody pays on
    // the old approvals.
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CONFLICT);
    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
}

fn bodies_to<'a>(mails: &'a [ReceivedMail], user: &TestUser, subject: &str) -> Vec<&'a ReceivedMail> {
    mails.iter().filter(|m| m.to == [user.email.clone()] && m.subject.starts_with(subject)).collect()
}

#[tokio::test]
async fn the_final_steps_people_are_mailed_when_fast_tracked_and_an_override_tells_requester_and_treasury() {
    let smtp = MailServer::start().await;
    let (app, c, fund) = world_with(TestApp::spawn_with(|cfg| smtp.configure(cfg)).await).await;
    let id = urgent(&app, &c, fund, "5000").await.id();
    let before = app.delivered(&smtp).await;
    assert_eq!(bodies_to(&before, &c.head, "Approval requested").len(), 1, "the first step is asked");
    assert!(bodies_to(&before, &c.cfo, "Approval requested").is_empty());

    act(&app, &c.head, id, "confirm-urgency", json!({})).await;
    let mails = app.delivered(&smtp).await;
    let to_cfo = bodies_to(&mails, &c.cfo, "Approval requested");
    assert_eq!(to_cfo.len(), 1, "{mails:?}");
    assert!(to_cfo[0].text.contains("step 3 of 3"), "{}", to_cfo[0].text);
    assert!(to_cfo[0].text.contains(&id.to_string()), "a link to it: {}", to_cfo[0].text);
    assert!(bodies_to(&mails, &c.gfm, "Approval requested").is_empty(), "the skipped step is not asked");

    let id = app.submitted(&c.staff, fund, "5000").await;
    act(&app, &c.admin, id, "override", json!({"justification": "Emergency"})).await;
    let mails = app.delivered(&smtp).await;
    let approved = bodies_to(&mails, &c.staff, "Approved");
    assert!(approved.iter().any(|m| m.text.contains(&id.to_string())), "{mails:?}");
    let ready = bodies_to(&mails, &c.treasury, "Ready for payment");
    assert!(ready.iter().any(|m| m.text.contains(&id.to_string())), "{mails:?}");
}
