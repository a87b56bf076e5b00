//! Business rules over HTTP: segregation of duties, roles, states, visibility, policy, funds,
//! and the HTTP surface (paths, index, OpenAPI, errors, event positions). Every refused
//! command is checked to have appended nothing.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

/// `/api/requisitions/{id}/{action}`.
fn action(id: Uuid, action: &str) -> String {
    format!("/api/requisitions/{id}/{action}")
}

fn requisition(id: Uuid) -> String {
    format!("/api/requisitions/{id}")
}

/// Asserts that `reply` was refused with `status` and `code`, and that the event store still
/// holds `before` events.
async fn assert_refused(app: &TestApp, before: i64, reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.code(), code, "{reply:?}");
    assert_eq!(app.event_count().await, before, "a refused command appended events: {reply:?}");
}

/// POSTs `{}` to a requisition action as `user`.
async fn act(app: &TestApp, user: &TestUser, id: Uuid, name: &str) -> Reply {
    app.post(user, &action(id, name), json!({})).await
}

/// Creates a draft (not submitted) as `requester`.
async fn draft(app: &TestApp, requester: &TestUser, fund: Uuid, amount: &str) -> Uuid {
    let r = app
        .post(requester, "/api/requisitions/", json!({"fund_id": fund, "amount": amount, "purpose": "Toner"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "draft");
    r.id()
}

async fn put_policy(app: &TestApp, user: &TestUser, policy: Value) -> Reply {
    app.send(Some(user), Method::PUT, "/api/approval-policy", Some(policy)).await
}

fn event_types(history: &Reply) -> Vec<String> {
    history
        .body
        .as_array()
        .expect("history is a list")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ----- segregation of duties on approval ----------------------------------------------------

#[tokio::test]
async fn requester_holding_an_approver_role_cannot_approve_their_own_requisition() {
    let app = TestApp::spawn().await;
    let (admin, requester) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff, Role::DepartmentHead]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&requester, fund, "500").await;
    let before = app.event_count().await;

    let r = act(&app, &requester, id, "approve").await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "self_approval").await;
}

#[tokio::test]
async fn one_person_cannot_approve_two_steps_of_the_same_chain() {
    let app = TestApp::spawn().await;
    let (admin, staff, both) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead, Role::GroupFinanceManager]),
    );
    let fund = app.fund(&admin, "10000").await;
    let id = app.submitted(&staff, fund, "5000").await;
    app.approve_by(id, &[&both]).await;
    let before = app.event_count().await;

    let r = act(&app, &both, id, "approve").await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "duplicate_approver").await;
    let view = app.get(&staff, &requisition(id)).await;
    assert_eq!(view.body["status"], "pending_approval");
    assert_eq!(view.body["current_role"], "group_finance_manager");
}

#[tokio::test]
async fn approving_needs_the_role_of_the_current_step_and_admin_does_not_grant_it() {
    let app = TestApp::spawn().await;
    // The chain's people exist when it is submitted: its first step is the department head's.
    let (admin, staff, gfm, _head) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::GroupFinanceManager]),
        app.user(&[Role::DepartmentHead])
    );
    let fund = app.fund(&admin, "10000").await;
    let id = app.submitted(&staff, fund, "5000").await;
    let before = app.event_count().await;

    let out_of_turn = act(&app, &gfm, id, "approve").await;
    assert_refused(&app, before, &out_of_turn, StatusCode::FORBIDDEN, "missing_role").await;

    let by_admin = act(&app, &admin, id, "approve").await;
    assert_refused(&app, before, &by_admin, StatusCode::FORBIDDEN, "missing_role").await;
}

// ----- payment ------------------------------------------------------------------------------

#[tokio::test]
async fn only_treasury_may_pay() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, auditor) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Auditor]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    app.approve_by(id, &[&head]).await;
    let before = app.event_count().await;

    // All of them may read it; none holds treasury.
    for payer in [&admin, &auditor, &staff] {
        let r = app.pay(payer, id).await;
        assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "missing_role").await;
    }
    assert_eq!(app.balance(&admin, fund).await.to_string(), "5000.00");
}

#[tokio::test]
async fn treasury_cannot_pay_their_own_requisition() {
    let app = TestApp::spawn().await;
    let (admin, head, requester) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Staff, Role::Treasury]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&requester, fund, "500").await;
    app.approve_by(id, &[&head]).await;
    let before = app.event_count().await;

    let r = app.pay(&requester, id).await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "payer_is_requester").await;
}

#[tokio::test]
async fn treasury_cannot_pay_a_requisition_they_approved() {
    let app = TestApp::spawn().await;
    let (admin, staff, approver) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead, Role::Treasury]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    app.approve_by(id, &[&approver]).await;
    let before = app.event_count().await;

    let r = app.pay(&approver, id).await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "payer_is_approver").await;
}

#[tokio::test]
async fn pending_requisition_cannot_be_paid() {
    let app = TestApp::spawn().await;
    let (admin, staff, treasury) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::Treasury]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    let before = app.event_count().await;

    let r = app.pay(&treasury, id).await;

    assert_refused(&app, before, &r, StatusCode::CONFLICT, "not_approved").await;
}

#[tokio::test]
async fn requisition_is_paid_once_and_the_fund_debited_once() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, treasury) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Treasury]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "750.25").await;
    app.approve_by(id, &[&head]).await;
    let first = app.pay(&treasury, id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let before = app.event_count().await;

    let second = app.pay(&treasury, id).await;

    assert_refused(&app, before, &second, StatusCode::CONFLICT, "already_paid").await;
    assert_eq!(app.balance(&treasury, fund).await.to_string(), "4249.75");
}

#[tokio::test]
async fn payment_larger_than_the_fund_balance_is_refused_and_nothing_moves() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, treasury) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Treasury]),
    );
    let fund = app.fund(&admin, "100").await;
    // About the balance, not codes: cash is paid without one.
    app.waive_codes_below(&admin, 1_000_000_000).await;
    let id = app.submitted(&staff, fund, "150").await;
    app.approve_by(id, &[&head]).await;
    let before = app.event_count().await;

    let r = app.pay(&treasury, id).await;

    assert_refused(&app, before, &r, StatusCode::CONFLICT, "insufficient_funds").await;
    assert_eq!(r.field(), "amount");
    assert_eq!(app.balance(&treasury, fund).await.to_string(), "100.00");
    assert_eq!(app.get(&staff, &requisition(id)).await.body["status"], "approved");
}

// ----- state transitions --------------------------------------------------------------------

#[tokio::test]
async fn approving_a_draft_is_an_invalid_transition() {
    let app = TestApp::spawn().await;
    let (admin, staff, head) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]));
    let fund = app.fund(&admin, "5000").await;
    let id = draft(&app, &staff, fund, "500").await;
    let before = app.event_count().await;

    // A draft has no chain yet, so a department head does not even see it.
    let by_head = act(&app, &head, id, "approve").await;
    assert_refused(&app, before, &by_head, StatusCode::NOT_FOUND, "not_found").await;
    // Admin sees everything; the state is checked before the role.
    let by_admin = act(&app, &admin, id, "approve").await;
    assert_refused(&app, before, &by_admin, StatusCode::CONFLICT, "invalid_state").await;
}

#[tokio::test]
async fn editing_a_pending_requisition_is_refused() {
    let app = TestApp::spawn().await;
    let (admin, staff) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    let before = app.event_count().await;

    let r = app.patch(&staff, &requisition(id), json!({"amount": "400"})).await;

    assert_refused(&app, before, &r, StatusCode::CONFLICT, "invalid_state").await;
    assert_eq!(app.get(&staff, &requisition(id)).await.body["amount"], "500.00");
}

#[tokio::test]
async fn paid_requisition_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, treasury) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Treasury]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    app.approve_by(id, &[&head]).await;
    assert_eq!(app.pay(&treasury, id).await.status, StatusCode::CREATED);
    let before = app.event_count().await;

    let r = act(&app, &staff, id, "cancel").await;

    assert_refused(&app, before, &r, StatusCode::CONFLICT, "already_paid").await;
}

#[tokio::test]
async fn rejected_requisition_cannot_be_rejected_again() {
    let app = TestApp::spawn().await;
    let (admin, staff, head) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    let first = app.post(&head, &action(id, "reject"), json!({"reason": "No budget"})).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["status"], "rejected");
    assert_eq!(first.body["reason"], "No budget");
    let before = app.event_count().await;

    let again = app.post(&head, &action(id, "reject"), json!({"reason": "Still no budget"})).await;

    assert_refused(&app, before, &again, StatusCode::CONFLICT, "invalid_state").await;
}

#[tokio::test]
async fn requester_cancels_an_approved_requisition_and_it_can_no_longer_be_paid() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, treasury) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Treasury]),
    );
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    app.approve_by(id, &[&head]).await;

    let cancelled = app.post(&staff, &action(id, "cancel"), json!({"reason": "Bought it myself"})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    let before = app.event_count().await;

    let r = app.pay(&treasury, id).await;

    assert_refused(&app, before, &r, StatusCode::CONFLICT, "not_approved").await;
    assert_eq!(app.balance(&treasury, fund).await.to_string(), "5000.00");
}

// ----- who may act and who may read ---------------------------------------------------------

#[tokio::test]
async fn other_staff_cannot_submit_edit_or_cancel_someone_elses_requisition() {
    let app = TestApp::spawn().await;
    let (admin, owner, other) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::Staff]));
    let fund = app.fund(&admin, "5000").await;
    let id = draft(&app, &owner, fund, "500").await;
    let before = app.event_count().await;

    let submit = act(&app, &other, id, "submit").await;
    assert_refused(&app, before, &submit, StatusCode::NOT_FOUND, "not_found").await;
    let edit = app.patch(&other, &requisition(id), json!({"amount": "1"})).await;
    assert_refused(&app, before, &edit, StatusCode::NOT_FOUND, "not_found").await;
    let cancel = act(&app, &other, id, "cancel").await;
    assert_refused(&app, before, &cancel, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get(&owner, &requisition(id)).await.body["status"], "draft");
}

#[tokio::test]
async fn auditor_can_read_a_requisition_but_cannot_approve_it() {
    let app = TestApp::spawn().await;
    let (admin, staff, auditor) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::Auditor]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    let before = app.event_count().await;

    let read = app.get(&auditor, &requisition(id)).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let approve = act(&app, &auditor, id, "approve").await;

    assert_refused(&app, before, &approve, StatusCode::FORBIDDEN, "missing_role").await;
}

#[tokio::test]
async fn requisition_is_visible_to_requester_chain_roles_company_wide_roles_auditor_and_admin_only() {
    let app = TestApp::spawn().await;
    let (c, stranger, regional) =
        tokio::join!(Cast::new(&app), app.user(&[Role::Staff]), app.user(&[Role::RegionalManager]));
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "500").await;

    let hidden = app.get(&stranger, &requisition(id)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{hidden:?}");
    assert_eq!(hidden.code(), "not_found");
    assert_eq!(app.get(&stranger, &action(id, "history")).await.status, StatusCode::NOT_FOUND);
    // Not in this requisition's chain ([department_head]), and not a company-wide role.
    assert_eq!(app.get(&regional, &requisition(id)).await.status, StatusCode::NOT_FOUND);

    for reader in [&c.staff, &c.head, &c.treasury, &c.cfo, &c.gfm, &c.auditor, &c.admin] {
        let r = app.get(reader, &requisition(id)).await;
        assert_eq!(r.status, StatusCode::OK, "{} should read it: {r:?}", reader.email);
        assert_eq!(r.body["id"], id.to_string());
    }
}

#[tokio::test]
async fn unknown_requisition_is_not_found_and_a_malformed_id_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;

    let unknown = app.get(&admin, &requisition(Uuid::new_v4())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    assert_eq!(unknown.code(), "not_found");

    let malformed = app.get(&admin, "/api/requisitions/not-a-uuid").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{malformed:?}");
    assert_eq!(malformed.field(), "id");
}

// ----- changes requested --------------------------------------------------------------------

#[tokio::test]
async fn resubmitting_after_changes_resolves_the_chain_again_from_the_new_amount() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, _gfm) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::GroupFinanceManager])
    );
    let fund = app.fund(&admin, "10000").await;
    let id = app.submitted(&staff, fund, "800").await;
    assert_eq!(app.get(&staff, &requisition(id)).await.body["chain"], json!(["department_head"]));
    let sent_back = app.post(&head, &action(id, "request-changes"), json!({"reason": "Add a quote"})).await;
    assert_eq!(sent_back.status, StatusCode::OK, "{sent_back:?}");
    assert_eq!(sent_back.body["status"], "changes_requested");

    let edited = app.patch(&staff, &requisition(id), json!({"amount": "5000"})).await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    let resubmitted = act(&app, &staff, id, "submit").await;

    assert_eq!(resubmitted.status, StatusCode::OK, "{resubmitted:?}");
    assert_eq!(resubmitted.body["status"], "pending_approval");
    assert_eq!(resubmitted.body["amount"], "5000.00");
    assert_eq!(resubmitted.body["chain"], json!(["department_head", "group_finance_manager"]));
    assert_eq!(resubmitted.body["approvals"], json!([]));
    assert_eq!(resubmitted.body["submissions"], 2);
    let history = app.get(&staff, &action(id, "history")).await;
    assert_eq!(
        event_types(&history),
        [
            "RequisitionCreated",
            "RequisitionSubmitted",
            "ChangesRequested",
            "RequisitionEdited",
            "RequisitionSubmitted"
        ]
    );
}

#[tokio::test]
async fn resubmission_clears_earlier_approvals_and_a_former_approver_cannot_pay() {
    let app = TestApp::spawn().await;
    let (c, head_treasurer) =
        tokio::join!(Cast::new(&app), app.user(&[Role::DepartmentHead, Role::Treasury]));
    let fund = app.fund(&c.admin, "50000").await;
    let id = app.submitted(&c.staff, fund, "1500").await;
    app.approve_by(id, &[&head_treasurer]).await;
    let sent_back = app.post(&c.gfm, &action(id, "request-changes"), json!({"reason": "Too little"})).await;
    assert_eq!(sent_back.status, StatusCode::OK, "{sent_back:?}");
    assert_eq!(
        app.patch(&c.staff, &requisition(id), json!({"amount": "20000"})).await.status,
        StatusCode::OK
    );

    let resubmitted = act(&app, &c.staff, id, "submit").await;

    assert_eq!(resubmitted.status, StatusCode::OK, "{resubmitted:?}");
    assert_eq!(resubmitted.body["approvals"], json!([]));
    assert_eq!(resubmitted.body["current_role"], "department_head");
    assert_eq!(resubmitted.body["chain"], json!(["department_head", "group_finance_manager", "cfo"]));
    // The earlier approval does not count: the first step is open again.
    let before = app.event_count().await;
    let skip = act(&app, &c.gfm, id, "approve").await;
    assert_refused(&app, before, &skip, StatusCode::FORBIDDEN, "missing_role").await;
    app.approve_by(id, &[&c.head, &c.gfm, &c.cfo]).await;
    // Whoever approved an earlier round still may not pay it.
    let before = app.event_count().await;
    let pay = app.pay(&head_treasurer, id).await;
    assert_refused(&app, before, &pay, StatusCode::FORBIDDEN, "payer_is_approver").await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn reject_and_request_changes_need_a_reason() {
    let app = TestApp::spawn().await;
    let (admin, staff, head) =
        tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]));
    let fund = app.fund(&admin, "5000").await;
    let id = app.submitted(&staff, fund, "500").await;
    let before = app.event_count().await;

    for name in ["reject", "request-changes"] {
        for body in [json!({}), json!({"reason": "   "})] {
            let r = app.post(&head, &action(id, name), body.clone()).await;
            assert_refused(&app, before, &r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
            assert_eq!(r.field(), "reason", "{name} {body}: {r:?}");
        }
    }
    assert_eq!(app.get(&staff, &requisition(id)).await.body["status"], "pending_approval");
}

// ----- approval policy ----------------------------------------------------------------------

#[tokio::test]
async fn approval_policy_starts_at_the_built_in_default() {
    let app = TestApp::spawn().await;
    let staff = app.user(&[Role::Staff]).await;

    let r = app.get(&staff, "/api/approval-policy").await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["version"], 0);
    let tiers = r.body["tiers"].as_array().expect("tiers");
    assert_eq!(tiers.len(), 3);
    assert_eq!(tiers[0]["chain"], json!(["department_head"]));
    assert_eq!(tiers[2]["up_to"], Value::Null);
    assert_eq!(tiers[2]["chain"], json!(["department_head", "group_finance_manager", "cfo"]));
}

fn cfo_policy() -> Value {
    json!({"tiers": [{"up_to": "500", "chain": ["branch_manager"]}, {"up_to": null, "chain": ["cfo"]}]})
}

#[tokio::test]
async fn only_admin_changes_the_approval_policy() {
    let app = TestApp::spawn().await;
    let cfo = app.user(&[Role::Cfo]).await;
    let before = app.event_count().await;

    let r = put_policy(&app, &cfo, cfo_policy()).await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "missing_role").await;
    assert_eq!(app.get(&cfo, "/api/approval-policy").await.body["version"], 0);
}

#[tokio::test]
async fn a_new_policy_applies_to_requisitions_submitted_afterwards_only() {
    let app = TestApp::spawn().await;
    let (admin, staff) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let fund = app.fund(&admin, "5000").await;
    let earlier = app.submitted(&staff, fund, "600").await;

    let changed = put_policy(&app, &admin, cfo_policy()).await;

    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["version"], 1);
    assert_eq!(app.get(&staff, "/api/approval-policy").await.body["version"], 1);
    let later = app.submitted(&staff, fund, "600").await;
    let later = app.get(&staff, &requisition(later)).await;
    assert_eq!(later.body["chain"], json!(["cfo"]));
    assert_eq!(later.body["policy_version"], 1);
    let earlier = app.get(&staff, &requisition(earlier)).await;
    assert_eq!(earlier.body["chain"], json!(["department_head"]));
    assert_eq!(earlier.body["policy_version"], 0);
}

#[tokio::test]
async fn an_invalid_approval_policy_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let before = app.event_count().await;
    let bounded_last = json!({"tiers": [{"up_to": "500", "chain": ["cfo"]}]});
    let treasury_approves = json!({"tiers": [{"up_to": null, "chain": ["treasury"]}]});

    for policy in [bounded_last, treasury_approves] {
        let r = put_policy(&app, &admin, policy.clone()).await;
        assert_refused(&app, before, &r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(r.field(), "tiers", "{policy}: {r:?}");
    }
    assert_eq!(app.get(&admin, "/api/approval-policy").await.body["version"], 0);
}

// ----- funds --------------------------------------------------------------------------------

#[tokio::test]
async fn only_admin_opens_a_fund() {
    let app = TestApp::spawn().await;
    let treasury = app.user(&[Role::Treasury]).await;
    let before = app.event_count().await;

    let r =
        app.post(&treasury, "/api/funds/", json!({"name": "Float", "currency": "KES", "float": "100"})).await;

    assert_refused(&app, before, &r, StatusCode::FORBIDDEN, "missing_role").await;
}

#[tokio::test]
async fn fund_shows_its_float_and_balance_as_decimal_strings() {
    let app = TestApp::spawn().await;
    let (admin, staff) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let fund = app.fund(&admin, "5000").await;

    let r = app.get(&staff, &format!("/api/funds/{fund}")).await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["currency"], "KES");
    assert_eq!(r.body["float"], "5000.00");
    assert_eq!(r.body["balance"], "5000.00");
}

#[tokio::test]
async fn amount_with_more_decimals_than_the_currency_has_is_refused() {
    let app = TestApp::spawn().await;
    let (admin, staff) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let fund = app.fund_in(&admin, "100000", "JPY").await;
    let before = app.event_count().await;

    let r = app
        .post(&staff, "/api/requisitions/", json!({"fund_id": fund, "amount": "10.5", "purpose": "Tea"}))
        .await;

    assert_refused(&app, before, &r, StatusCode::UNPROCESSABLE_ENTITY, "too_many_decimals").await;
    assert_eq!(r.field(), "amount");
}

#[tokio::test]
async fn requisition_in_another_currency_than_its_fund_is_refused() {
    let app = TestApp::spawn().await;
    let (admin, staff) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let fund = app.fund(&admin, "5000").await;
    let before = app.event_count().await;

    let r = app
        .post(
            &staff,
            "/api/requisitions/",
            json!({"fund_id": fund, "amount": "10", "currency": "USD", "purpose": "Tea"}),
        )
        .await;

    assert_refused(&app, before, &r, StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch").await;
    assert_eq!(r.field(), "currency");
}

// ----- the HTTP surface ---------------------------------------------------------------------

#[tokio::test]
async fn paths_work_with_and_without_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;

    for path in ["/api/funds", "/api/funds/"] {
        let r = app.post(&admin, path, json!({"name": "Float", "currency": "KES", "float": "100"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {r:?}");
    }
}

#[tokio::test]
async fn health_reports_ok_with_and_without_a_trailing_slash() {
    let app = TestApp::spawn().await;

    for path in ["/health", "/health/"] {
        let r = app.send(None, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        assert_eq!(r.body["status"], "ok");
        assert_eq!(r.body["database"], "ok");
        assert!(r.body["version"].as_str().is_some_and(|v| !v.is_empty()), "{r:?}");
    }
}

#[tokio::test]
async fn api_index_lists_the_version_and_endpoints() {
    let app = TestApp::spawn().await;

    for path in ["/api/", "/api"] {
        let r = app.send(None, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        assert!(r.body["version"].is_string(), "{r:?}");
        assert!(r.body["endpoints"].as_array().is_some_and(|e| !e.is_empty()), "{r:?}");
    }
}

#[tokio::test]
async fn openapi_document_describes_the_endpoints() {
    let app = TestApp::spawn().await;

    let r = app.send(None, Method::GET, "/api/openapi.json", None).await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{:?}", r.body["openapi"]);
    let paths = r.body["paths"].as_object().expect("paths");
    for path in ["/api/treasury/payments/", "/api/requisitions/{id}/approve"] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn unknown_path_is_a_json_not_found() {
    let app = TestApp::spawn().await;

    let r = app.send(None, Method::GET, "/api/no-such-thing", None).await;

    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_json_method_not_allowed() {
    let app = TestApp::spawn().await;

    let r = app.send(None, Method::DELETE, "/api/funds/", None).await;

    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{r:?}");
    assert_eq!(r.code(), "method_not_allowed");
    assert!(r.body["error"]["message"].is_string(), "{r:?}");
}

#[tokio::test]
async fn every_command_reports_its_event_position_and_positions_increase() {
    let app = TestApp::spawn().await;
    let (admin, staff, head, treasury) = tokio::join!(
        app.user(&[Role::Admin]),
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::Treasury]),
    );

    let fund =
        app.post(&admin, "/api/funds/", json!({"name": "F", "currency": "KES", "float": "1000"})).await;
    let created = app
        .post(&staff, "/api/requisitions/", json!({"fund_id": fund.id(), "amount": "10", "purpose": "Pens"}))
        .await;
    let id = created.id();
    let submitted = act(&app, &staff, id, "submit").await;
    let approved = act(&app, &head, id, "approve").await;
    let paid = app.pay(&treasury, id).await;
    let policy = put_policy(&app, &admin, cfo_policy()).await;

    let mut last = 0;
    for r in [&fund, &created, &submitted, &approved, &paid, &policy] {
        assert!(r.status.is_success(), "{r:?}");
        let header: i64 = r
            .headers
            .get("x-event-position")
            .unwrap_or_else(|| panic!("no X-Event-Position: {r:?}"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r.body["position"], header, "{r:?}");
        assert!(header > last, "position {header} does not follow {last}: {r:?}");
        last = header;
    }
}
