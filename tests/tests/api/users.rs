//! User administration: role grants and revocations are events, take effect on the next
//! request, and only admins may make them.

use pettycash_domain::Role;
use pettycash_tests::serde_json::json;
use pettycash_tests::{Reply, TestApp, TestUser, PASSWORD};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn admin_grants_a_role_that_takes_effect_at_once_and_revokes_it_again() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let clerk = app.user(&[Role::Staff]).await;
    let head = app.user(&[Role::DepartmentHead]).await;
    let fund = app.fund(&admin, "1000").await;
    let id = app.submitted(&staff, fund, "100").await;
    app.approve_by(id, &[&head]).await;

    // The clerk cannot pay until granted treasury...
    assert_eq!(app.pay(&clerk, id).await.status, StatusCode::NOT_FOUND);
    let granted =
        app.post(&admin, &format!("/api/users/{}/roles", clerk.id), json!({"role": "treasury"})).await;
    assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
    assert_eq!(granted.body["roles"], json!(["staff", "treasury"]));

    // ...and is refused again once it is revoked.
    let revoked = app
        .send(Some(&admin), Method::DELETE, &format!("/api/users/{}/roles/treasury", clerk.id), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(revoked.body["roles"], json!(["staff"]));
    assert_eq!(app.pay(&clerk, id).await.status, StatusCode::NOT_FOUND);

    // Both changes are in the user's stream, with the admin as actor.
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(clerk.id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(types, ["UserRegistered", "RoleGranted", "RoleRevoked"]);
}

#[tokio::test]
async fn only_admins_change_roles_and_bad_input_is_named() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let treasury = app.user(&[Role::Treasury]).await;
    let staff = app.user(&[Role::Staff]).await;
    let before = app.event_count().await;

    let r = app.post(&treasury, &format!("/api/users/{}/roles", staff.id), json!({"role": "admin"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"));
    let r = app.post(&admin, &format!("/api/users/{}/roles", staff.id), json!({"role": "king"})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "role"));
    let r =
        app.post(&admin, &format!("/api/users/{}/roles", uuid::Uuid::new_v4()), json!({"role": "cfo"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.post(&admin, "/api/users/nope/roles", json!({"role": "cfo"})).await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "id"));
    assert_eq!(app.event_count().await, before);

    let list = app.get(&admin, "/api/users/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 3);
    assert_eq!(app.get(&staff, "/api/users/").await.status, StatusCode::FORBIDDEN);
}

/// `admin` registers a user over the API; their owner then sets a password (the operator here,
/// an invitation later) and signs in.
async fn registered_by(app: &TestApp, admin: &TestUser, roles: &[&str]) -> TestUser {
    let email = format!("{}@test.example", uuid::Uuid::new_v4().simple());
    let r =
        app.post(admin, "/api/users/", json!({"email": email, "name": "Sponsored", "roles": roles})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    app.service.set_password(&email, PASSWORD).await.expect("set password");
    let login = app
        .send(None, Method::POST, "/api/auth/login", Some(json!({"email": email, "password": PASSWORD})))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    TestUser { id: r.id(), email, token: login.body["token"].as_str().unwrap().to_string() }
}

fn assert_sponsored(r: &Reply) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(r.code(), "sponsored_by_participant", "{r:?}");
}

#[tokio::test]
async fn a_user_an_admin_registered_cannot_approve_or_pay_what_that_admin_requested() {
    let app = TestApp::spawn().await;
    // The admin also holds staff: they may request cash like anyone.
    let admin = app.user(&[Role::Admin, Role::Staff]).await;
    let fund = app.fund(&admin, "1000").await;
    let approver = registered_by(&app, &admin, &["department_head"]).await;
    let payer = registered_by(&app, &admin, &["treasury"]).await;
    let independent_head = app.user(&[Role::DepartmentHead]).await;
    let own = app.submitted(&admin, fund, "300").await;
    let before = app.event_count().await;

    assert_sponsored(&app.post(&approver, &format!("/api/requisitions/{own}/approve"), json!({})).await);
    assert_eq!(app.event_count().await, before);

    // Approved by someone else, the admin's puppet treasurer still cannot pay it.
    app.approve_by(own, &[&independent_head]).await;
    let balance = app.balance(&admin, fund).await;
    assert_sponsored(&app.pay(&payer, own).await);
    assert_eq!(app.balance(&admin, fund).await, balance);
    let independent = app.user(&[Role::Treasury]).await;
    assert_eq!(app.pay(&independent, own).await.status, StatusCode::CREATED);

    // What the admin did not request or approve, the users they registered may act on.
    let staff = app.user(&[Role::Staff]).await;
    let other = app.submitted(&staff, fund, "50").await;
    app.approve_by(other, &[&approver]).await;
    assert_eq!(app.pay(&payer, other).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_user_an_admin_granted_a_role_cannot_pay_what_that_admin_approved() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin, Role::DepartmentHead]).await;
    let staff = app.user(&[Role::Staff]).await;
    let clerk = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000").await;
    let id = app.submitted(&staff, fund, "100").await;
    app.approve_by(id, &[&admin]).await;
    let granted =
        app.post(&admin, &format!("/api/users/{}/roles", clerk.id), json!({"role": "treasury"})).await;
    assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
    let before = app.event_count().await;

    assert_sponsored(&app.pay(&clerk, id).await);
    assert_eq!(app.event_count().await, before);
    // Revoking the role again does not make the admin any less their sponsor.
    let revoke = format!("/api/users/{}/roles/treasury", clerk.id);
    assert_eq!(app.send(Some(&admin), Method::DELETE, &revoke, None).await.status, StatusCode::OK);
    let regrant = app.user(&[Role::Admin]).await;
    let r = app.post(&regrant, &format!("/api/users/{}/roles", clerk.id), json!({"role": "treasury"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_sponsored(&app.pay(&clerk, id).await);
}

#[tokio::test]
async fn the_last_admin_cannot_revoke_their_own_admin_role() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let path = format!("/api/users/{}/roles/admin", admin.id);

    let r = app.send(Some(&admin), Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.code(), "last_admin", "{r:?}");
    let me = app.get(&admin, "/api/me").await;
    assert_eq!(me.body["roles"], json!(["admin"]), "{me:?}");

    // With a second admin it may go.
    let second = app.user(&[Role::Admin]).await;
    assert_eq!(app.send(Some(&admin), Method::DELETE, &path, None).await.status, StatusCode::OK);
    let r =
        app.send(Some(&second), Method::DELETE, &format!("/api/users/{}/roles/admin", second.id), None).await;
    assert_eq!(r.code(), "last_admin", "{r:?}");
}

#[tokio::test]
async fn two_admins_revoking_each_other_at_once_leave_one_admin() {
    for _ in 0..3 {
        let app = TestApp::spawn().await;
        let (a, b) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Admin]));
        let (revoke_a, revoke_b) =
            (format!("/api/users/{}/roles/admin", a.id), format!("/api/users/{}/roles/admin", b.id));
        let (ra, rb) = tokio::join!(
            app.send(Some(&a), Method::DELETE, &revoke_b, None),
            app.send(Some(&b), Method::DELETE, &revoke_a, None),
        );
        let ok = [&ra, &rb].iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(ok, 1, "exactly one revocation goes through: {ra:?} {rb:?}");
        // The other is refused: no admin would be left, or (when it came second) its sender
        // is no admin any more.
        let refused = if ra.status == StatusCode::OK { &rb } else { &ra };
        assert!(["last_admin", "session_changed", "missing_role"].contains(&refused.code()), "{refused:?}");
        let admins: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE active AND 'admin' = ANY (roles)")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(admins, 1, "exactly one admin is left");
    }
}
