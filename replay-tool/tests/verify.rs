//! `verify`: a clean history written through the API passes; forged events inserted as raw
//! SQL (as someone with write access to the store could) are reported with the right rule at
//! the forged event's global position.

use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::process::Output;
use std::str::FromStr;
use uuid::Uuid;

async fn replay(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("run pettycash-replay")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A fund and requisitions in every state, written through the API.
struct History {
    app: TestApp,
    c: Cast,
    fund: Uuid,
    /// Paid after one approval.
    paid: Uuid,
    /// Changes requested at the second step, edited, resubmitted, approved and paid.
    resubmitted: Uuid,
    /// Submitted, no approval yet.
    pending: Uuid,
    /// Fully approved, not paid.
    approved: Uuid,
}

async fn post_ok(app: &TestApp, user: &pettycash_tests::TestUser, path: &str, body: Value) {
    let r = app.post(user, path, body).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
}

async fn pay_ok(app: &TestApp, c: &Cast, id: Uuid) {
    let r = app.pay(&c.treasury, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "pay: {r:?}");
}

async fn history() -> History {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;

    let paid = app.submitted(&c.staff, fund, "100.50").await;
    app.approve_by(paid, &[&c.head]).await;
    pay_ok(&app, &c, paid).await;

    let rejected = app.submitted(&c.staff, fund, "200").await;
    post_ok(&app, &c.head, &format!("/api/requisitions/{rejected}/reject"), json!({"reason": "no"})).await;

    let cancelled = app.submitted(&c.staff, fund, "300").await;
    post_ok(&app, &c.staff, &format!("/api/requisitions/{cancelled}/cancel"), json!({"reason": "oops"}))
        .await;

    let resubmitted = app.submitted(&c.staff, fund, "1500").await;
    app.approve_by(resubmitted, &[&c.head]).await;
    post_ok(
        &app,
        &c.gfm,
        &format!("/api/requisitions/{resubmitted}/request-changes"),
        json!({"reason": "too much"}),
    )
    .await;
    let r = app.patch(&c.staff, &format!("/api/requisitions/{resubmitted}"), json!({"amount": "400"})).await;
    assert_eq!(r.status, StatusCode::OK, "edit: {r:?}");
    post_ok(&app, &c.staff, &format!("/api/requisitions/{resubmitted}/submit"), json!({})).await;
    app.approve_by(resubmitted, &[&c.head]).await;
    pay_ok(&app, &c, resubmitted).await;

    let two_step = app.submitted(&c.staff, fund, "2000").await;
    app.approve_by(two_step, &[&c.head, &c.gfm]).await;
    pay_ok(&app, &c, two_step).await;

    let pending = app.submitted(&c.staff, fund, "50").await;
    let approved = app.submitted(&c.staff, fund, "75").await;
    app.approve_by(approved, &[&c.head]).await;

    History { app, c, fund, paid, resubmitted, pending, approved }
}

/// Appends an event breaking a business rule at the end of its stream, signed with the
/// service's key (as a faulty service, or one whose key leaked, would write it: the business
/// rules are checked whoever wrote the event); returns its global position.
async fn forge(app: &TestApp, aggregate_type: &str, aggregate_id: Uuid, payload: Value) -> i64 {
    let id = aggregate_id.to_string();
    let sequence: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let metadata = json!({"actor_id": Uuid::nil().to_string(), "request_id": "forged"});
    pettycash_tests::insert_signed_event(&app.pool, aggregate_type, &id, sequence, payload, &metadata).await
}

fn paid(payment_id: Uuid, fund: Uuid, amount: &str, paid_by: Uuid) -> Value {
    json!({"RequisitionPaid": {"payment_id": payment_id, "fund_id": fund, "amount": amount,
        "method": "cash", "reference": null, "paid_by": paid_by}})
}

fn disbursed(payment_id: Uuid, requisition: Uuid, amount: &str, balance_after: &str, paid_by: Uuid) -> Value {
    json!({"CashDisbursed": {"payment_id": payment_id, "requisition_id": requisition, "amount": amount,
        "balance_after": balance_after, "method": "cash", "reference": null, "paid_by": paid_by}})
}

fn approved(step: usize, role: &str, approver: Uuid, completes_chain: bool) -> Value {
    json!({"RequisitionApproved": {"step": step, "role": role, "approver_id": approver,
        "completes_chain": completes_chain}})
}

/// The fund's balance as the events record it (last `balance_after`, or the float).
async fn recorded_balance(h: &History) -> Decimal {
    let v: String = sqlx::query_scalar(
        "SELECT coalesce(payload->'CashDisbursed'->>'balance_after', payload->'FundOpened'->>'float')
         FROM events WHERE aggregate_type = 'fund' AND aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(h.fund.to_string())
    .fetch_one(&h.app.pool)
    .await
    .unwrap();
    Decimal::from_str(&v).unwrap()
}

/// Runs `verify` in both formats, asserts exit 1 and that `rule` is reported at `position`
/// for `aggregate`.
async fn assert_violation(app: &TestApp, position: i64, aggregate: &str, rule: &str) -> Value {
    let url = &app.database_url;
    let out = replay(url, &["verify"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = format!("VIOLATION position={position} aggregate={aggregate} rule={rule}: ");
    assert!(text.lines().any(|l| l.starts_with(&line)), "no `{line}` in:\n{text}");

    let out = replay(url, &["verify", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let vs = report["violations"].as_array().unwrap();
    assert!(
        vs.iter().any(|v| v["position"] == position
            && v["rule"] == rule
            && format!("{}/{}", v["aggregate_type"].as_str().unwrap(), v["aggregate_id"].as_str().unwrap())
                == aggregate),
        "{report:#}"
    );
    assert_eq!(report["summary"]["violations"].as_u64().unwrap() as usize, vs.len());
    report
}

#[tokio::test]
async fn a_clean_history_verifies_and_the_summary_matches_the_store() {
    let h = history().await;
    let url = &h.app.database_url;
    let out = replay(url, &["verify", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let s = &report["summary"];
    assert_eq!(report["violations"], json!([]), "{report:#}");

    let (count, min, max): (i64, i64, i64) =
        sqlx::query_as("SELECT count(*), min(global_position), max(global_position) FROM events")
            .fetch_one(&h.app.pool)
            .await
            .unwrap();
    assert_eq!(s["events"], count);
    assert_eq!(s["first_position"], min);
    assert_eq!(s["last_position"], max);
    let aggregates: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_type, count(DISTINCT aggregate_id) FROM events GROUP BY 1")
            .fetch_all(&h.app.pool)
            .await
            .unwrap();
    assert_eq!(s["aggregates"].as_object().unwrap().len(), aggregates.len(), "{s}");
    for (t, n) in aggregates {
        assert_eq!(s["aggregates"][&t], n, "{t}: {s}");
    }
    assert_eq!(s["aggregates"]["requisition"], 7);
    assert_eq!(s["funds"], 1);

    // Balance and total agree with the API; the digest is SHA-256 of `fund_id|balance\n`.
    let live = h.app.balance(&h.c.auditor, h.fund).await;
    assert_eq!(live, Decimal::from_str("2499.50").unwrap());
    let balance = Decimal::from_str(s["balances"][h.fund.to_string()]["balance"].as_str().unwrap()).unwrap();
    assert_eq!(balance, live);
    let total = Decimal::from_str(s["totals"]["KES"].as_str().unwrap()).unwrap();
    assert_eq!(total, live);
    let digest: String = Sha256::digest(format!(
        "{}|{}\n",
        h.fund,
        s["balances"][h.fund.to_string()]["balance"].as_str().unwrap()
    ))
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect();
    assert_eq!(s["ledger_digest"], digest.as_str());
    // Without a key the seals are matched but not authenticated, and the report says so.
    assert!(s["not_checked"][0].as_str().unwrap().contains("no key given"), "{s}");
    assert_eq!(s["hashed_events"], count);
    assert_eq!(s["unhashed_events"], 0);

    let out = replay(url, &["verify"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("events: {count}")), "{text}");
    assert!(text.contains("violations: 0") && !text.contains("VIOLATION"), "{text}");
    assert!(text.contains(&digest), "{text}");
    assert!(text.contains("not checked: seal MACs: no key given"), "{text}");
}

#[tokio::test]
async fn a_second_payment_is_a_double_payment() {
    let h = history().await;
    let req = format!("requisition/{}", h.paid);
    let after = recorded_balance(&h).await - Decimal::from_str("100.50").unwrap();
    let payment = Uuid::new_v4();
    let p = forge(&h.app, "requisition", h.paid, paid(payment, h.fund, "100.50", h.c.treasury.id)).await;
    let d = forge(
        &h.app,
        "fund",
        h.fund,
        disbursed(payment, h.paid, "100.50", &after.to_string(), h.c.treasury.id),
    )
    .await;
    assert_violation(&h.app, p, &req, "double_payment").await;
    assert_violation(&h.app, d, &format!("fund/{}", h.fund), "double_payment").await;
}

#[tokio::test]
async fn an_approval_by_the_requester_is_reported() {
    let h = history().await;
    let pos =
        forge(&h.app, "requisition", h.pending, approved(0, "department_head", h.c.staff.id, true)).await;
    assert_violation(&h.app, pos, &format!("requisition/{}", h.pending), "approved_by_requester").await;
}

#[tokio::test]
async fn a_payment_by_an_approver_is_reported() {
    let h = history().await;
    let payment = Uuid::new_v4();
    let after = recorded_balance(&h).await - Decimal::from(75);
    let p = forge(&h.app, "requisition", h.approved, paid(payment, h.fund, "75.00", h.c.head.id)).await;
    forge(&h.app, "fund", h.fund, disbursed(payment, h.approved, "75.00", &after.to_string(), h.c.head.id))
        .await;
    let report =
        assert_violation(&h.app, p, &format!("requisition/{}", h.approved), "paid_by_approver").await;
    // The head does not hold treasury either; the payment itself matches its disbursement.
    let rules: Vec<&str> =
        report["violations"].as_array().unwrap().iter().map(|v| v["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"payer_lacks_role"), "{rules:?}");
    assert!(!rules.contains(&"unmatched_payment") && !rules.contains(&"payment_mismatch"), "{rules:?}");
}

#[tokio::test]
async fn a_disbursement_below_zero_is_reported() {
    let h = history().await;
    let balance = recorded_balance(&h).await;
    let amount = balance + Decimal::ONE;
    let payment = Uuid::new_v4();
    let p =
        forge(&h.app, "requisition", h.approved, paid(payment, h.fund, &amount.to_string(), h.c.treasury.id))
            .await;
    let d = forge(
        &h.app,
        "fund",
        h.fund,
        disbursed(payment, h.approved, &amount.to_string(), "-1.00", h.c.treasury.id),
    )
    .await;
    let report = assert_violation(&h.app, d, &format!("fund/{}", h.fund), "negative_balance").await;
    assert!(p < d);
    assert!(report["summary"]["totals"]["KES"].as_str().unwrap().starts_with('-'), "{report:#}");
}

#[tokio::test]
async fn an_approval_without_the_role_is_reported() {
    let h = history().await;
    // The auditor is neither the requester nor a department head.
    let pos =
        forge(&h.app, "requisition", h.pending, approved(0, "department_head", h.c.auditor.id, true)).await;
    let report =
        assert_violation(&h.app, pos, &format!("requisition/{}", h.pending), "approver_lacks_role").await;
    // Nor is the step routed to them.
    assert_violation(&h.app, pos, &format!("requisition/{}", h.pending), "approver_not_eligible").await;
    assert_eq!(report["violations"].as_array().unwrap().len(), 2, "{report:#}");
}

#[tokio::test]
async fn a_deleted_event_is_a_sequence_gap_at_the_next_event() {
    let h = history().await;
    let id = h.resubmitted.to_string();
    let next: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = $1 AND sequence = 4",
    )
    .bind(&id)
    .fetch_one(&h.app.pool)
    .await
    .unwrap();
    let mut tx = h.app.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleted = sqlx::query(
        "DELETE FROM events WHERE aggregate_type = 'requisition' AND aggregate_id = $1 AND sequence = 3",
    )
    .bind(&id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let report = assert_violation(&h.app, next, &format!("requisition/{id}"), "sequence_gap").await;
    let gap = report["violations"].as_array().unwrap().iter().find(|v| v["rule"] == "sequence_gap").unwrap();
    assert!(gap["detail"].as_str().unwrap().contains("3..=3"), "{gap}");
}

#[tokio::test]
async fn an_organised_history_verifies_and_an_approval_by_a_deactivated_user_is_reported() {
    use pettycash_domain::Role;
    let app = TestApp::spawn().await;
    let org_admin = app.user(&[Role::Admin]).await;
    let company = app.unit(&org_admin, "company", "ACME", None).await;
    let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
    let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
    let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
    let r = app.patch(&org_admin, &format!("/api/org/units/{branch}"), json!({"name": "Nairobi"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let admin = app.user_in(&[Role::Admin], Some(company)).await;
    let staff = app.user_in(&[Role::Staff], Some(department)).await;
    let head = app.user_in(&[Role::Staff, Role::DepartmentHead], Some(department)).await;
    let treasury = app.user_in(&[Role::Treasury], Some(company)).await;
    let fund = app.fund(&admin, "5000").await;
    // Version 2 of `RequisitionCreated` (with the unit) and of `FundOpened`, unit events, a
    // deactivation and a reactivation.
    let paid = app.submitted(&staff, fund, "100").await;
    app.approve_by(paid, &[&head]).await;
    assert_eq!(app.pay(&treasury, paid).await.status, StatusCode::CREATED);
    let pending = app.submitted(&staff, fund, "50").await;
    for (action, body) in [("deactivate", json!({"reason": "leave"})), ("reactivate", json!({}))] {
        let r = app.post(&admin, &format!("/api/users/{}/{action}", staff.id), body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {r:?}");
    }
    let out = replay(&app.database_url, &["verify", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["violations"], json!([]), "{report:#}");
    assert_eq!(report["summary"]["aggregates"]["org_unit"], 4);

    // A deactivated user acts in no role: an approval in their name is reported.
    let r = app.post(&admin, &format!("/api/users/{}/deactivate", head.id), json!({"reason": "left"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let position = forge(&app, "requisition", pending, approved(0, "department_head", head.id, true)).await;
    assert_violation(&app, position, &format!("requisition/{pending}"), "approver_lacks_role").await;
}

#[tokio::test]
async fn a_history_with_invitations_verifies() {
    use pettycash_domain::Role;
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let mut ids = Vec::new();
    for who in ["accepted", "resent", "revoked"] {
        let body = json!({"email": format!("{who}@example.com"), "name": who, "roles": ["staff"]});
        let r = app.post(&admin, "/api/invitations/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        ids.push(r.id());
    }
    post_ok(&app, &admin, &format!("/api/invitations/{}/resend", ids[1]), json!({})).await;
    post_ok(&app, &admin, &format!("/api/invitations/{}/revoke", ids[2]), json!({"reason": "no"})).await;
    for who in ["accepted", "resent"] {
        let token = app.invitation_token(&format!("{who}@example.com")).await;
        let r = app.accept_invitation(&token, pettycash_tests::PASSWORD).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let out = replay(&app.database_url, &["verify", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["violations"], json!([]), "{report:#}");
    assert_eq!(report["summary"]["aggregates"]["invitation"], 3);
    assert_eq!(report["summary"]["aggregates"]["user"], 3, "the admin and two who accepted");
}

#[tokio::test]
async fn a_history_with_delegations_verifies() {
    use pettycash_domain::Role;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "500").await;
    // A stand-in who joined after the submission decides the head's step for them.
    let deputy = app.user(&[Role::DepartmentHead]).await;
    let ends_at = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let r = app
        .post(
            &c.head,
            "/api/delegations/",
            json!({"delegate_id": deputy.id, "role": "department_head", "ends_at": ends_at}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let delegation = r.id();
    post_ok(&app, &deputy, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    post_ok(&app, &c.head, &format!("/api/delegations/{delegation}/revoke"), json!({})).await;
    pay_ok(&app, &c, id).await;
    let out = replay(&app.database_url, &["verify", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["violations"], json!([]), "{report:#}");
    assert_eq!(report["summary"]["aggregates"]["delegation"], 1);
}
