//! The HTTP edge: request ids, the same-origin check of cookie sessions, `/health/` headers.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Reply, TestApp, TestUser};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};

const SESSION_COOKIE: &str = "pettycash_session";

fn fund_body() -> Value {
    json!({"name": "Float", "currency": "KES", "float": "100"})
}

/// POSTs `body` to `path` as `user`, with `headers`; by the session cookie when `cookie`,
/// else by the bearer token.
async fn post_with(
    app: &TestApp,
    user: &TestUser,
    cookie: bool,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    let mut req = app.client.request(Method::POST, format!("{}{path}", app.address)).json(&body);
    req = if cookie {
        req.header(COOKIE, format!("{SESSION_COOKIE}={}", user.token))
    } else {
        req.bearer_auth(&user.token)
    };
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    TestApp::reply(req.send().await.expect("request failed")).await
}

// ----- X-Request-Id --------------------------------------------------------------------------

#[tokio::test]
async fn an_over_long_or_invalid_request_id_is_a_400_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let events = app.event_count().await;
    let too_long = "a".repeat(129);
    let huge = "a".repeat(390_005);

    for id in [too_long.as_str(), huge.as_str(), "a b", "<script>", "id;drop", "\"quoted\""] {
        let r = post_with(&app, &admin, false, "/api/funds/", &[("x-request-id", id)], fund_body()).await;
        let shown: String = id.chars().take(20).collect();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "`{shown}`: {r:?}");
        assert_eq!(r.code(), "invalid_request_id", "`{shown}`: {r:?}");
        assert_eq!(r.field(), "X-Request-Id", "`{shown}`: {r:?}");
        assert!(!r.headers.contains_key("x-request-id"), "an invalid id is not echoed: {r:?}");
        assert_eq!(app.event_count().await, events, "`{shown}`: nothing written");
    }

    // Every route, reads and the index too.
    for path in ["/health/", "/api/", "/api/funds/"] {
        let req = app.client.get(format!("{}{path}", app.address)).header("x-request-id", too_long.as_str());
        let r = TestApp::reply(req.bearer_auth(&admin.token).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {r:?}");
        assert_eq!(r.code(), "invalid_request_id", "{path}: {r:?}");
    }
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_recorded() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let longest = "r".repeat(128);
    for id in [
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "8e2c1f0b3a4d5e6f7a8b9c0d1e2f3a4b",
        "svc:api@h/1+a=b.c_d",
        &longest,
    ] {
        let r = post_with(&app, &admin, false, "/api/funds/", &[("x-request-id", id)], fund_body()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{id}: {r:?}");
        assert_eq!(r.headers["x-request-id"], id, "{r:?}");
        let recorded: String = sqlx::query_scalar(
            "SELECT metadata->>'request_id' FROM events WHERE aggregate_id = $1 ORDER BY sequence LIMIT 1",
        )
        .bind(r.id().to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(recorded, id);
    }
    // Without one, the service makes one up.
    let r = post_with(&app, &admin, false, "/api/funds/", &[], fund_body()).await;
    assert!(r.headers.get("x-request-id").is_some_and(|v| v.len() == 36), "{r:?}");
}

// ----- the same-origin check -----------------------------------------------------------------

#[tokio::test]
async fn a_cookie_write_with_the_wrong_scheme_or_from_another_site_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let own = app.address.clone();
    let https_own = own.replacen("http://", "https://", 1);
    let events = app.event_count().await;

    let refused: [&[(&str, &str)]; 5] = [
        &[("origin", &https_own)],
        &[("origin", &own), ("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "cross-site")],
        &[("origin", &own), ("sec-fetch-site", "same-site")],
        &[("origin", "null")],
    ];
    for headers in refused {
        let r = post_with(&app, &admin, true, "/api/funds/", headers, fund_body()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}: {r:?}");
        assert_eq!(r.code(), "cross_site_request", "{headers:?}: {r:?}");
        assert_eq!(app.event_count().await, events, "{headers:?}: nothing written");
    }

    // The service's own origin, as the browser sees it directly or behind a TLS proxy on
    // this machine (X-Forwarded-Proto), goes through.
    let allowed: [&[(&str, &str)]; 4] = [
        &[("origin", &own)],
        &[("origin", &own), ("sec-fetch-site", "same-origin")],
        &[("origin", &https_own), ("x-forwarded-proto", "https")],
        &[("sec-fetch-site", "none")],
    ];
    for headers in allowed {
        let r = post_with(&app, &admin, true, "/api/funds/", headers, fund_body()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{headers:?}: {r:?}");
    }
    // A bearer token is no ambient credential: no Origin needed.
    let r = post_with(&app, &admin, false, "/api/funds/", &[], fund_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn a_configured_cors_origin_may_write_with_the_cookie_from_its_site() {
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let admin = app.user(&[Role::Admin]).await;

    let from_app = [("origin", "https://app.example.com"), ("sec-fetch-site", "cross-site")];
    let r = post_with(&app, &admin, true, "/api/funds/", &from_app, fund_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let wrong_scheme = [("origin", "http://app.example.com"), ("sec-fetch-site", "cross-site")];
    let r = post_with(&app, &admin, true, "/api/funds/", &wrong_scheme, fund_body()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
}

// ----- /health/ --------------------------------------------------------------------------------

#[tokio::test]
async fn a_healthy_health_answer_has_no_retry_after() {
    let app = TestApp::spawn().await;

    let r = app.send(None, Method::GET, "/health/", None).await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(!r.headers.contains_key("retry-after"), "{r:?}");
    assert_eq!(r.body["database"], "ok");
}
