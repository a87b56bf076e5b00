//! Sign in, sessions (bearer and cookie), user administration and CSRF. Sign-in throttling is
//! in `login_throttle`.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Reply, TestApp, TestUser, PASSWORD};
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

const SESSION_COOKIE: &str = "pettycash_session";

async fn login(app: &TestApp, body: Value) -> Reply {
    app.send(None, Method::POST, "/api/auth/login", Some(body)).await
}

/// Asserts a 401 `unauthenticated` that hands out no token.
fn assert_unauthenticated(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(reply.code(), "unauthenticated", "{reply:?}");
    assert!(reply.body.get("token").is_none(), "{reply:?}");
}

/// A user holding `token`, for sending arbitrary bearer tokens.
fn bearer(token: &str) -> TestUser {
    TestUser { id: Uuid::nil(), email: "nobody@test.example".into(), token: token.into() }
}

/// Sends `method path` authenticated by the session cookie only, with optional `Origin`.
async fn with_cookie(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header(COOKIE, format!("{SESSION_COOKIE}={token}"));
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    TestApp::reply(req.send().await.expect("request failed")).await
}

fn new_user(email: &str, roles: &[&str]) -> Value {
    json!({"email": email, "name": "New Person", "roles": roles})
}

// ----- authentication -----------------------------------------------------------------------

#[tokio::test]
async fn requests_without_a_session_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;

    let me = app.send(None, Method::GET, "/api/me", None).await;
    let create = app
        .send(
            None,
            Method::POST,
            "/api/requisitions/",
            Some(json!({"fund_id": Uuid::new_v4(), "amount": "1"})),
        )
        .await;
    let pay = app
        .send(
            None,
            Method::POST,
            "/api/treasury/payments/",
            Some(json!({"requisition_id": Uuid::new_v4(), "method": "cash"})),
        )
        .await;

    for r in [&me, &create, &pay] {
        assert_unauthenticated(r);
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_garbage_bearer_token_is_unauthenticated() {
    let app = TestApp::spawn().await;

    let r = app.get(&bearer("not-a-real-token"), "/api/me").await;

    assert_unauthenticated(&r);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_refused_alike() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;

    let wrong = login(&app, json!({"email": user.email, "password": "not the password at all"})).await;
    let unknown = login(&app, json!({"email": "nobody@test.example", "password": PASSWORD})).await;

    assert_unauthenticated(&wrong);
    assert_unauthenticated(&unknown);
    assert_eq!(wrong.body["error"]["message"], unknown.body["error"]["message"]);
    assert!(!wrong.headers.contains_key(SET_COOKIE), "{wrong:?}");
}

#[tokio::test]
async fn login_without_a_password_is_a_validation_error() {
    let app = TestApp::spawn().await;

    for body in
        [json!({"email": "someone@test.example"}), json!({"email": "someone@test.example", "password": ""})]
    {
        let r = login(&app, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
        assert_eq!(r.field(), "password", "{body}: {r:?}");
    }
}

#[tokio::test]
async fn malformed_login_json_is_a_bad_request() {
    let app = TestApp::spawn().await;

    let resp = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .header("content-type", "application/json")
        .body(r#"{"email": "a@test.example", "password": "#)
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(resp).await;

    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.code(), "malformed_json");
}

#[tokio::test]
async fn login_sets_an_http_only_session_cookie_that_authenticates_on_its_own() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;

    let r = login(&app, json!({"email": user.email, "password": PASSWORD})).await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let cookie = r.headers.get(SET_COOKIE).expect("Set-Cookie").to_str().unwrap().to_string();
    let token = r.body["token"].as_str().expect("token");
    assert!(cookie.starts_with(&format!("{SESSION_COOKIE}={token};")), "{cookie}");
    assert!(cookie.split(';').any(|a| a.trim().eq_ignore_ascii_case("HttpOnly")), "{cookie}");
    let me = with_cookie(&app, token, Method::GET, "/api/me", None, None).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["email"], user.email);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;
    assert_eq!(app.get(&user, "/api/me").await.status, StatusCode::OK);

    let out = app.send(Some(&user), Method::POST, "/api/auth/logout", None).await;

    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    assert_unauthenticated(&app.get(&user, "/api/me").await);
    assert_unauthenticated(&with_cookie(&app, &user.token, Method::GET, "/api/me", None, None).await);
}

#[tokio::test]
async fn me_shows_the_signed_in_users_email_and_roles() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff, Role::Treasury]).await;

    let r = app.get(&user, "/api/me").await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["id"], user.id.to_string());
    assert_eq!(r.body["email"], user.email);
    let mut roles: Vec<&str> = r.body["roles"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["staff", "treasury"]);
}

// ----- user administration ------------------------------------------------------------------

#[tokio::test]
async fn admin_registers_a_user_who_signs_in_once_they_have_a_password_of_their_own() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let password = "A long enough password 1";

    let r = app.post(&admin, "/api/users/", new_user("New.Person@Test.Example", &["staff"])).await;

    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["email"], "new.person@test.example");
    assert_eq!(r.body["roles"], json!(["staff"]));
    // No password yet: nobody, the admin included, can sign in as them.
    let before = login(&app, json!({"email": "new.person@test.example", "password": password})).await;
    assert_unauthenticated(&before);
    // The operator on the server sets it (`pettycash user password`; invitations later).
    app.service.set_password("new.person@test.example", password).await.expect("set password");
    let signed_in = login(&app, json!({"email": "new.person@test.example", "password": password})).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    assert_eq!(signed_in.body["user"]["id"], r.body["id"]);
}

#[tokio::test]
async fn an_admin_cannot_set_another_persons_password() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let before = app.event_count().await;

    let mut body = new_user("puppet@test.example", &["treasury"]);
    body["password"] = json!("a password the admin knows");
    let r = app.post(&admin, "/api/users/", body).await;

    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.field(), "password", "{r:?}");
    assert_eq!(app.event_count().await, before, "nothing registered");
    let login =
        login(&app, json!({"email": "puppet@test.example", "password": "a password the admin knows"})).await;
    assert_unauthenticated(&login);
}

#[tokio::test]
async fn only_admin_registers_users() {
    let app = TestApp::spawn().await;
    let treasury = app.user(&[Role::Treasury]).await;
    let before = app.event_count().await;

    let r = app.post(&treasury, "/api/users/", new_user("x@test.example", &["admin"])).await;

    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(r.code(), "missing_role");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_taken_email_cannot_be_registered_again() {
    let app = TestApp::spawn().await;
    let (admin, existing) = tokio::join!(app.user(&[Role::Admin]), app.user(&[Role::Staff]));
    let before = app.event_count().await;

    for email in [existing.email.clone(), existing.email.to_uppercase()] {
        let r = app.post(&admin, "/api/users/", new_user(&email, &["staff"])).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{email}: {r:?}");
        assert_eq!(r.code(), "already_exists", "{r:?}");
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn registration_refuses_unknown_roles() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let before = app.event_count().await;

    let unknown = app.post(&admin, "/api/users/", new_user("b@test.example", &["wizard"])).await;

    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{unknown:?}");
    assert_eq!(unknown.field(), "roles", "{unknown:?}");
    assert_eq!(app.event_count().await, before);
}

// ----- cross-site requests ------------------------------------------------------------------

#[tokio::test]
async fn cookie_authenticated_write_from_a_foreign_origin_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let fund = json!({"name": "Float", "currency": "KES", "float": "100"});
    let before = app.event_count().await;

    let forged = with_cookie(
        &app,
        &admin.token,
        Method::POST,
        "/api/funds/",
        Some("http://evil.example"),
        Some(fund.clone()),
    )
    .await;

    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    assert_eq!(forged.code(), "cross_site_request");
    assert_eq!(app.event_count().await, before);
    // The same request from the service's own origin goes through.
    let own_origin = app.address.clone();
    let same_site =
        with_cookie(&app, &admin.token, Method::POST, "/api/funds/", Some(&own_origin), Some(fund)).await;
    assert_eq!(same_site.status, StatusCode::CREATED, "{same_site:?}");
}

/// Logout is a cookie-authenticated write too, so the same Origin rule should apply to it.
#[tokio::test]
async fn a_foreign_origin_cannot_sign_a_cookie_session_out() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;

    let forged =
        with_cookie(&app, &user.token, Method::POST, "/api/auth/logout", Some("http://evil.example"), None)
            .await;

    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    assert_eq!(forged.code(), "cross_site_request");
    assert_eq!(app.get(&user, "/api/me").await.status, StatusCode::OK, "the session was ended cross-site");
}
