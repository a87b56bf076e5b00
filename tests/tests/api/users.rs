//! User administration: role grants and revocations are events, take effect on the next
//! request, and only admins may make them.

use pettycash_domain::Role;
use pettycash_tests::serde_json::json;
use pettycash_tests::TestApp;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn admin_grants_a_role_that_takes_effect_at_once_and_revokes_it_again() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let clerk = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000").await;
    let id = app.submitted(&staff, fund, "100").await;
    app.approve_by(id, &[&app.user(&[Role::DepartmentHead]).await]).await;

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
