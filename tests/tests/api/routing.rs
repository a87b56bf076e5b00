//! Approval routing over HTTP: thresholds by currency, origin and amount, validated as a set,
//! and the chain a submission gets from them (issue [workflow]).

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, TestApp, TestUser};
use reqwest::StatusCode;
use uuid::Uuid;

const THRESHOLDS: &str = "/api/approval-policy/thresholds";

fn threshold(name: &str, currency: Option<&str>, min: &str, max: Option<&str>, chain: &[&str]) -> Value {
    json!({"name": name, "currency": currency, "min": min, "max": max, "chain": chain})
}

/// KES in cents: 0–1,000.00 one step, 1,000.01–10,000.00 two, above that three with the CFO
/// required; UGX (no minor unit) with its own bounds; anything else one CFO step.
fn policy() -> Value {
    json!({"thresholds": [
        threshold("KES small", Some("KES"), "0", Some("1000.00"), &["department_head"]),
        threshold("KES medium", Some("KES"), "1000.01", Some("10000.00"), &["department_head", "treasury"]),
        {"name": "KES large", "currency": "KES", "min": "10000.01", "max": null,
         "chain": ["department_head", "group_finance_manager"], "requires_cfo": true},
        threshold("UGX", Some("UGX"), "0", Some("3000000"), &["department_head"]),
        threshold("UGX large", Some("UGX"), "3000001", None, &["group_finance_manager"]),
        threshold("Any", None, "0", None, &["cfo"]),
    ]})
}

async fn chain_of(app: &TestApp, requester: &TestUser, fund: Uuid, amount: &str) -> Value {
    let r = app
        .post(
            requester,
            "/api/requisitions/",
            json!({"fund_id": fund, "amount": amount, "purpose": "Routing", "submit": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["chain"].clone()
}

#[tokio::test]
async fn thresholds_pick_the_chain_by_currency_and_amount_at_the_exact_boundaries() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), reqwest::Method::PUT, THRESHOLDS, Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["tiers"], json!([]), "thresholds replace the tiers");
    assert_eq!(r.body["thresholds"].as_array().unwrap().len(), 6);
    let shown = app.get(&c.staff, "/api/approval-policy").await;
    assert_eq!(shown.body["thresholds"][2]["requires_cfo"], true);

    let kes = app.fund_in(&c.admin, "1000000", "KES").await;
    let ugx = app.fund_in(&c.admin, "100000000", "UGX").await;
    let usd = app.fund_in(&c.admin, "100000", "USD").await;
    assert_eq!(chain_of(&app, &c.staff, kes, "1000.00").await, json!(["department_head"]));
    assert_eq!(chain_of(&app, &c.staff, kes, "1000.01").await, json!(["department_head", "treasury"]));
    assert_eq!(chain_of(&app, &c.staff, kes, "10000.00").await, json!(["department_head", "treasury"]));
    assert_eq!(
        chain_of(&app, &c.staff, kes, "10000.01").await,
        json!(["department_head", "group_finance_manager", "cfo"]),
        "requires CFO: the chain gains the step"
    );
    // 1,000.01 in UGX is no amount at all; 3,000,000 UGX is still the small tier.
    assert_eq!(chain_of(&app, &c.staff, ugx, "3000000").await, json!(["department_head"]));
    assert_eq!(chain_of(&app, &c.staff, ugx, "3000001").await, json!(["group_finance_manager"]));
    assert_eq!(chain_of(&app, &c.staff, usd, "5").await, json!(["cfo"]), "a currency without its own");
}

#[tokio::test]
async fn a_treasury_requester_never_meets_a_treasury_step_and_a_validating_treasurer_may_not_pay() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), reqwest::Method::PUT, THRESHOLDS, Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fund = app.fund_in(&c.admin, "1000000", "KES").await;
    let treasurer_requester = app.user(&[Role::Treasury, Role::Staff]).await;
    assert_eq!(
        chain_of(&app, &treasurer_requester, fund, "5000").await,
        json!(["department_head", "group_finance_manager"]),
        "finance leadership instead of treasury"
    );

    // Treasury validates a staff requisition (its inbox has it), then may not pay it.
    let r = app
        .post(
            &c.staff,
            "/api/requisitions/",
            json!({"fund_id": fund, "amount": "5000", "purpose": "Validated", "submit": true}),
        )
        .await;
    let id = r.id();
    app.approve_by(id, &[&c.head]).await;
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(&c.treasury, "/api/approvals/").await;
    let ids: Vec<String> = inbox.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&id.to_string()), "treasury's inbox holds its validation step: {inbox:?}");
    app.approve_by(id, &[&c.treasury]).await;
    let paid = app.pay(&c.treasury, id).await;
    assert_eq!(paid.status, StatusCode::FORBIDDEN, "{paid:?}");
    assert_eq!(paid.code(), "payer_is_approver");
    let other = app.user(&[Role::Treasury]).await;
    assert_eq!(app.pay(&other, id).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_set_with_a_gap_or_an_ambiguous_overlap_is_refused_naming_it_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let put = |body: Value| app.send(Some(&c.admin), reqwest::Method::PUT, THRESHOLDS, Some(body));

    // 1,000.00 then 1,000.02: 1,000.01 matches nothing (the old system failed to create it).
    let gap = json!({"thresholds": [
        threshold("Small", Some("KES"), "0", Some("1000.00"), &["department_head"]),
        threshold("Large", Some("KES"), "1000.02", None, &["cfo"]),
    ]});
    let r = put(gap).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "thresholds_gap", "thresholds"),
        "{r:?}"
    );
    assert!(r.body["error"]["message"].as_str().unwrap().contains("1000.01"), "{r:?}");

    let overlap = json!({"thresholds": [
        threshold("All", Some("KES"), "0", None, &["department_head"]),
        {"name": "Branch", "currency": "KES", "origin": "branch", "min": "0", "max": "500", "chain": ["branch_manager"]},
    ]});
    let r = put(overlap.clone()).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "thresholds_overlap"), "{r:?}");
    let mut prioritised = overlap;
    prioritised["thresholds"][1]["priority"] = json!(1);
    assert_eq!(put(prioritised).await.status, StatusCode::OK, "a lower priority number settles it");

    for (body, field) in [
        (
            json!({"thresholds": [{"name": "X", "origin": "office", "min": "0", "chain": ["cfo"]}]}),
            "thresholds[0].origin",
        ),
        (
            json!({"thresholds": [{"name": "X", "currency": "XXX", "min": "0", "chain": ["cfo"]}]}),
            "thresholds[0].currency",
        ),
        (json!({"thresholds": [{"name": "X", "min": "0", "chain": ["boss"]}]}), "thresholds[0].chain"),
        (json!({"thresholds": [{"name": "X", "min": "0", "chain": ["staff"]}]}), "thresholds"),
    ] {
        let r = put(body).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{r:?}");
    }
    let r = app.send(Some(&c.cfo), reqwest::Method::PUT, THRESHOLDS, Some(policy())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let shown = app.get(&c.staff, "/api/approval-policy").await;
    assert_eq!(shown.body["version"], 1, "only the one valid set was recorded");
}

// ----- who the steps go to ------------------------------------------------------------------

use crate::organisation::World;

fn event_types(history: &pettycash_tests::Reply) -> Vec<String> {
    history.body.as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn steps_go_to_the_people_of_the_requisitions_unit_recorded_at_submission() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    // 5,000: the department head, then the branch manager (the world's policy).
    let r = app
        .post(
            w.person("staff@NBI-OPS"),
            "/api/requisitions/",
            json!({"fund_id": w.acme.fund, "amount": "5000", "purpose": "Routed", "submit": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    let (head, manager) = (w.person("head@NBI-OPS"), w.person("manager@NBI"));
    assert_eq!(r.body["threshold"], "Tier 2");
    assert_eq!(
        r.body["steps"],
        json!([
            {"role": "department_head", "eligible": [head.id], "escalated_to_admin": false},
            {"role": "branch_manager", "eligible": [manager.id], "escalated_to_admin": false},
        ])
    );
    assert_eq!(r.body["current_eligible"], json!([head.id]));

    // A department head placed in NBI-OPS after the submission sees it (their department's),
    // but the step was routed to the people in place then.
    let late = app.user_in(&[Role::Staff, Role::DepartmentHead], Some(w.unit("NBI-OPS"))).await;
    assert_eq!(app.get(&late, &format!("/api/requisitions/{id}")).await.status, StatusCode::OK);
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(&late, "/api/approvals/").await;
    assert_eq!(inbox.body["items"], json!([]), "not in their inbox");
    let refused = app.post(&late, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "not_eligible"), "{refused:?}");

    // The people routed to decide it, with comments in the history.
    let approved = app
        .post(head, &format!("/api/requisitions/{id}/approve"), json!({"comment": "Quote attached"}))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
    assert_eq!(approved.body["current_eligible"], json!([manager.id]));
    app.approve_by(id, &[manager]).await;
    let history = app.get(head, &format!("/api/requisitions/{id}/history")).await;
    let comment =
        history.body.as_array().unwrap().iter().find(|e| e["event_type"] == "RequisitionApproved").unwrap();
    assert_eq!(comment["data"]["comment"], "Quote attached", "{comment}");
}

#[tokio::test]
async fn a_step_nobody_in_scope_holds_escalates_to_the_next_step_or_to_the_admins_as_an_event() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    // A requester at region level: no department and no branch above them, so neither the
    // department head's step nor the branch manager's has anybody; the last goes to the admins.
    let id = app.submitted(w.person("staff@EAST"), w.acme.fund, "5000").await;
    let admin = &w.acme.admin;
    let view = app.get(admin, &format!("/api/requisitions/{id}")).await;
    assert_eq!(
        view.body["steps"],
        json!([
            {"role": "department_head", "eligible": [], "escalated_to_admin": false},
            {"role": "branch_manager", "eligible": [admin.id], "escalated_to_admin": true},
        ]),
        "{view:?}"
    );
    let history = app.get(admin, &format!("/api/requisitions/{id}/history")).await;
    assert_eq!(
        event_types(&history),
        ["RequisitionCreated", "RequisitionSubmitted", "ApprovalEscalated", "ApprovalEscalated"]
    );
    let escalations: Vec<Value> =
        history.body.as_array().unwrap()[2..].iter().map(|e| e["data"].clone()).collect();
    assert_eq!(
        escalations,
        [
            json!({"step": 0, "role": "department_head", "reason": "no_eligible_approver", "to": "next_step"}),
            json!({"step": 1, "role": "branch_manager", "reason": "no_eligible_approver", "to": "admin"}),
        ]
    );
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(admin, "/api/approvals/").await;
    assert_eq!(inbox.body["items"][0]["id"], json!(id), "in the admin's inbox: {inbox:?}");
    // The organisation's admin (of no unit) is not ACME's: the step is not theirs.
    let r = app.post(&w.org_admin, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let done = app.post(admin, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["status"], "approved");
}

#[tokio::test]
async fn nobody_is_asked_twice_in_a_row() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    // KSM's department head is made its branch manager too, and KSM's manager leaves.
    let head = w.person("head@KSM-OPS");
    let admin = &w.acme.admin;
    let r =
        app.post(admin, &format!("/api/users/{}/roles", head.id), json!({"role": "branch_manager"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let manager = w.person("manager@KSM");
    let r = app
        .post(admin, &format!("/api/users/{}/deactivate", manager.id), json!({"reason": "left the company"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let id = app.submitted(w.person("staff@KSM-OPS"), w.acme.fund, "5000").await;
    let view = app.get(admin, &format!("/api/requisitions/{id}")).await;
    assert_eq!(view.body["steps"][0]["eligible"], json!([head.id]));
    assert_eq!(
        view.body["steps"][1],
        json!({"role": "branch_manager", "eligible": [admin.id], "escalated_to_admin": true})
    );
    let history = app.get(admin, &format!("/api/requisitions/{id}/history")).await;
    let escalated =
        history.body.as_array().unwrap().iter().find(|e| e["event_type"] == "ApprovalEscalated").unwrap();
    assert_eq!(escalated["data"]["reason"], "same_approver_twice");
    app.approve_by(id, &[head]).await;
    let again = app.post(head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{again:?}");
    app.approve_by(id, &[admin]).await;
}
