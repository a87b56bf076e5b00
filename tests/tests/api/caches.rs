//! The command side's caches (aggregates, sessions) with two servers on one database, as two
//! processes would be: a server deciding on what it cached must give the same answers as one
//! that reads everything from the store, and a session or role ended through the other server
//! must not let a command through.

use super::concurrency::{pay_at, second_server_with};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};

/// Sends a request as `user` to the server at `address`.
async fn at(
    app: &TestApp,
    address: &str,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = app.client.request(method, format!("{address}{path}")).bearer_auth(&user.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    TestApp::reply(req.send().await.expect("request failed")).await
}

/// A long session cache, so that what a test shows does not depend on timing.
const LONG: u64 = 600_000;

/// A test server and a second server on its database (its address), both caching sessions
/// for [`LONG`].
async fn two_servers_with_long_session_caches() -> (TestApp, String) {
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.session_cache_ms = LONG;
    })
    .await;
    let b = second_server_with(&app, |c| c.session_cache_ms = LONG).await;
    (app, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_cached_a_pending_requisition_pays_it_once_another_server_approved_it() {
    let (app, b) = two_servers_with_long_session_caches().await;
    let c = Cast::new(&app).await;
    // About caches, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "1000").await;
    let id = app.submitted(&c.staff, fund, "100").await;

    // Server B reads the requisition while it awaits approval (and caches it so).
    let seen = at(&app, &b, &c.treasury, Method::GET, &format!("/api/requisitions/{id}"), None).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    assert_eq!(seen.body["status"], "pending_approval");
    // Server A approves it.
    app.approve_by(id, &[&c.head]).await;

    // B's cached copy says "pending": a payment decided on it alone would be refused.
    let paid = pay_at(&app, &b, &c.treasury, id).await;
    assert_eq!(paid.status, StatusCode::CREATED, "a stale cache refused a valid payment: {paid:?}");
    assert_eq!(paid.body["fund_balance_after"], "900.00");
    // And B now knows it is paid: a second payment is refused, through either server.
    for server in [b.as_str(), app.address.as_str()] {
        let again = pay_at(&app, server, &c.treasury, id).await;
        assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already_paid"), "{again:?}");
    }
    let paid_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'RequisitionPaid' AND aggregate_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(paid_events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fund_cached_before_another_server_paid_from_it_is_never_overdrawn() {
    let app = TestApp::spawn().await;
    let b = second_server_with(&app, |_| {}).await;
    let c = Cast::new(&app).await;
    // About caches, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "100").await;
    let first = app.submitted(&c.staff, fund, "60").await;
    let second = app.submitted(&c.staff, fund, "60").await;
    app.approve_by(first, &[&c.head]).await;
    app.approve_by(second, &[&c.head]).await;

    // B caches the fund with its whole float; A then pays 60 of it.
    let seen = at(&app, &b, &c.admin, Method::GET, &format!("/api/funds/{fund}"), None).await;
    assert_eq!(seen.body["balance"], "100.00", "{seen:?}");
    let paid = app.pay(&c.treasury, first).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");

    // On B's cached balance (100) the second 60 would fit; on the real one (40) it does not.
    let refused = pay_at(&app, &b, &c.treasury, second).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "insufficient_funds"), "{refused:?}");
    assert_eq!(app.balance(&c.staff, fund).await, "40".parse().unwrap());
    let disbursed: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(disbursed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_revoked_through_another_server_stops_the_next_command_even_with_a_cached_session() {
    let (app, b) = two_servers_with_long_session_caches().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let first = app.submitted(&c.staff, fund, "100").await;
    let second = app.submitted(&c.staff, fund, "100").await;
    // The head's session (with the department_head role) is now cached by server A.
    app.approve_by(first, &[&c.head]).await;

    // An admin revokes the role through server B; A's cached session still lists it.
    let revoked = at(
        &app,
        &b,
        &c.admin,
        Method::DELETE,
        &format!("/api/users/{}/roles/department_head", c.head.id),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let events = app.event_count().await;

    // A decides with the cached roles, but the append re-checks them: nothing is recorded.
    let stale = app.post(&c.head, &format!("/api/requisitions/{second}/approve"), json!({})).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "session_changed"), "{stale:?}");
    assert_eq!(app.event_count().await, events, "a command with revoked roles wrote events");
    // Sent again, it is decided on the current roles: without the role the head no longer
    // sees the requisition at all.
    let again = app.post(&c.head, &format!("/api/requisitions/{second}/approve"), json!({})).await;
    assert_eq!((again.status, again.code()), (StatusCode::NOT_FOUND, "not_found"), "{again:?}");
    let status = app.get(&c.staff, &format!("/api/requisitions/{second}")).await;
    assert_eq!(status.body["status"], "pending_approval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_out_through_another_server_stops_commands_at_once() {
    let (app, b) = two_servers_with_long_session_caches().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let id = app.submitted(&c.staff, fund, "100").await;

    // Server A looks the head's session up (and caches it).
    let inbox = app.get(&c.head, "/api/approvals/").await;
    assert_eq!(inbox.status, StatusCode::OK, "{inbox:?}");

    let out = at(&app, &b, &c.head, Method::POST, "/api/auth/logout", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    let events = app.event_count().await;
    // A still has the session cached (reads may use it for SESSION_CACHE_MS), but the
    // command's append finds the session ended and records nothing.
    let approve = app.post(&c.head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!((approve.status, approve.code()), (StatusCode::CONFLICT, "session_changed"), "{approve:?}");
    assert_eq!(app.event_count().await, events, "a command of an ended session wrote events");
    let after = app.post(&c.head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{after:?}");
}

#[tokio::test]
async fn a_role_change_through_the_same_server_applies_to_the_next_request() {
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.session_cache_ms = LONG;
    })
    .await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let id = app.submitted(&c.staff, fund, "100").await;
    let inbox = app.get(&c.head, "/api/approvals/").await;
    assert_eq!(inbox.status, StatusCode::OK);

    let path = format!("/api/users/{}/roles/department_head", c.head.id);
    let revoked = app.send(Some(&c.admin), Method::DELETE, &path, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    // Without the role the head no longer sees the requisition.
    let refused = app.post(&c.head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::NOT_FOUND, "not_found"), "{refused:?}");

    let granted = app
        .post(&c.admin, &format!("/api/users/{}/roles", c.head.id), json!({"role": "department_head"}))
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
    let approved = app.post(&c.head, &format!("/api/requisitions/{id}/approve"), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
}
