//! Runtime settings: changed by admins over the API, each change an event, each read by the
//! code it names — one test per setting shows the behaviour changing with it.

use pettycash_commands::CommandContext;
use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{TestApp, TestUser, PASSWORD};
use reqwest::{Method, StatusCode};
use std::time::Duration;
use uuid::Uuid;

async fn put(app: &TestApp, user: &TestUser, key: &str, value: Value) -> pettycash_tests::Reply {
    app.send(Some(user), Method::PUT, &format!("/api/settings/{key}"), Some(json!({"value": value}))).await
}

async fn set(app: &TestApp, admin: &TestUser, key: &str, value: Value) {
    let r = put(app, admin, key, value.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body["settings"].as_array().unwrap().iter().any(|s| s["key"] == key && s["value"] == value),
        "{r:?}"
    );
}

/// Registers a user with `password` as the operator would; the error's text if refused.
async fn register(app: &TestApp, password: &str) -> Result<(), String> {
    let email = format!("{}@settings.test", Uuid::new_v4().simple());
    app.service
        .register_user(
            &CommandContext::operator("test"),
            &email,
            "Settings Test",
            vec![Role::Staff],
            Some(password),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn settings_are_listed_changed_by_admins_only_as_events_and_checked() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let r = app.get(&staff, "/api/settings").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 0);
    let keys: Vec<&str> =
        r.body["settings"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "password_min_length",
            "password_require_upper",
            "password_require_lower",
            "password_require_digit",
            "lockout_threshold",
            "lockout_minutes",
            "change_request_hours",
            "approval_reminder_hours",
            "approval_escalation_hours",
            "invitation_expiry_days",
            "duplicate_window_days",
            "currency_display",
            "variance_tolerance_basis_points",
            "variance_approver_role",
            "advance_due_days",
            "advance_block_while_unsettled",
            "budget_block",
            "receipt_reminder_days",
            "payment_code_waiver_below",
            "payment_timeout_minutes",
            "payment_max_retries",
            "alert_large_payment_above",
            "alert_otp_failures",
            "alert_otp_window_minutes",
            "alert_variance_pending_hours"
        ]
    );
    assert_eq!(put(&app, &staff, "lockout_threshold", json!(3)).await.status, StatusCode::FORBIDDEN);
    for (key, value, field) in [
        ("lockout_threshold", json!(0), "value"),
        ("lockout_threshold", json!("3"), "value"),
        ("password_require_digit", json!("no"), "value"),
        ("password_min_length", json!(4), "value"),
        ("invitation_expiry_days", json!(91), "value"),
        ("duplicate_window_days", json!(366), "value"),
        ("budget_block", json!("yes"), "value"),
        ("receipt_reminder_days", json!(366), "value"),
        ("currency_display", json!("dollars"), "value"),
        ("advance_due_days", json!(0), "value"),
        ("advance_block_while_unsettled", json!("yes"), "value"),
        ("no_such_setting", json!(1), "key"),
    ] {
        let r = put(&app, &admin, key, value).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{key}: {r:?}");
    }
    let before = app.event_count().await;
    set(&app, &admin, "lockout_threshold", json!(3)).await;
    assert_eq!(app.event_count().await, before + 1, "one event per change");
    let history: String = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE aggregate_type = 'settings' ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(history.contains("lockout_threshold") && history.contains(&admin.id.to_string()), "{history}");
    assert_eq!(app.get(&staff, "/api/settings").await.body["version"], 1);
}

/// Sets a setting through the server and waits until `app.service` (another command service,
/// as the operator's `pettycash user …` is another process) sees it: cached settings are at
/// most `SETTINGS_MAX_AGE` old.
async fn set_everywhere(app: &TestApp, admin: &TestUser, key: &str, value: Value) {
    set(app, admin, key, value).await;
    tokio::time::sleep(pettycash_commands::service::SETTINGS_MAX_AGE + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn password_min_length_and_complexity_follow_the_settings() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    // The defaults: 12 characters with an upper-case letter, a lower-case letter and a digit.
    assert!(register(&app, "Abcdefghij1").await.unwrap_err().contains("at least 12"));
    register(&app, "Abcdefghijk1").await.unwrap();
    assert!(register(&app, "abcdefghijk1").await.unwrap_err().contains("upper-case"));
    assert!(register(&app, "ABCDEFGHIJK1").await.unwrap_err().contains("lower-case"));
    assert!(register(&app, "Abcdefghijkl").await.unwrap_err().contains("digit"));

    set_everywhere(&app, &admin, "password_min_length", json!(16)).await;
    assert!(register(&app, "Abcdefghijklmn1").await.unwrap_err().contains("at least 16"));
    register(&app, "Abcdefghijklmno1").await.unwrap();
    set_everywhere(&app, &admin, "password_require_upper", json!(false)).await;
    register(&app, "abcdefghijklmno1").await.unwrap();
    set_everywhere(&app, &admin, "password_require_lower", json!(false)).await;
    register(&app, "ABCDEFGHIJKLMNO1").await.unwrap();
    set_everywhere(&app, &admin, "password_require_digit", json!(false)).await;
    register(&app, "Abcdefghijklmnop").await.unwrap();
    // The operator's `pettycash user password` follows them too.
    assert!(app
        .service
        .set_password(&admin.email, "Short1")
        .await
        .unwrap_err()
        .to_string()
        .contains("at least 16"));
}

/// Signs in with a wrong password from one address; the status and Retry-After.
async fn wrong(app: &TestApp, email: &str) -> (StatusCode, Option<u64>) {
    let r = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .header("x-forwarded-for", "10.20.0.1")
        .json(&json!({"email": email, "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (r.status(), retry)
}

#[tokio::test]
async fn the_lockout_threshold_and_minutes_follow_the_settings() {
    // A first delay of 10 minutes: capped by `lockout_minutes`.
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.login_throttle.base_delay = Duration::from_secs(600);
    })
    .await;
    let admin = app.user(&[Role::Admin]).await;
    let default = app.user(&[Role::Staff]).await;
    for _ in 0..5 {
        assert_eq!(wrong(&app, &default.email).await.0, StatusCode::UNAUTHORIZED, "five checked by default");
    }
    assert_eq!(wrong(&app, &default.email).await, (StatusCode::TOO_MANY_REQUESTS, Some(600)));

    set(&app, &admin, "lockout_threshold", json!(2)).await;
    set(&app, &admin, "lockout_minutes", json!(1)).await;
    let strict = app.user(&[Role::Staff]).await;
    for _ in 0..2 {
        assert_eq!(wrong(&app, &strict.email).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, retry) = wrong(&app, &strict.email).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the third attempt with a threshold of 2");
    assert_eq!(retry, Some(60), "capped at lockout_minutes");
    // The right password is throttled too, until the wait is over.
    let r = app
        .send(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"email": strict.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn invitation_expiry_days_is_how_long_a_new_link_works() {
    use chrono::{DateTime, Duration, Utc};
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let invite = |email: &'static str| {
        let body = json!({"email": email, "name": "Invitee", "roles": ["staff"]});
        app.post(&admin, "/api/invitations/", body)
    };
    let expiry =
        |r: &pettycash_tests::Reply| r.body["expires_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    let close_to = |at: DateTime<Utc>, days: i64| {
        let wanted = Utc::now() + Duration::days(days);
        (at - wanted).num_seconds().abs() < 60
    };
    // The default: a week.
    let r = invite("week@settings.test").await;
    assert!(close_to(expiry(&r), 7), "{r:?}");

    // One day: the link of an invitation sent now works for a day, not longer.
    set(&app, &admin, "invitation_expiry_days", json!(1)).await;
    let r = invite("day@settings.test").await;
    assert!(close_to(expiry(&r), 1), "{r:?}");
    let day = r.id();
    let token = app.invitation_token("day@settings.test").await;
    app.clock.advance(Duration::hours(25));
    let r = app.accept_invitation(&token, PASSWORD).await;
    assert_eq!((r.status, r.code()), (StatusCode::GONE, "invitation_invalid"), "{r:?}");

    // Thirty days: a resent link works for thirty days from the resend.
    set(&app, &admin, "invitation_expiry_days", json!(30)).await;
    let r = app.post(&admin, &format!("/api/invitations/{day}/resend"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(close_to(expiry(&r) - Duration::hours(25), 30), "{r:?}");
    let token = app.invitation_token("day@settings.test").await;
    app.clock.advance(Duration::days(29));
    let r = app.accept_invitation(&token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}
