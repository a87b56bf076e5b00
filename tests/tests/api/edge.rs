//! The HTTP edge: `/health/` headers.

use pettycash_tests::TestApp;
use reqwest::{Method, StatusCode};

// ----- /health/ --------------------------------------------------------------------------------

#[tokio::test]
async fn a_healthy_health_answer_has_no_retry_after() {
    let app = TestApp::spawn().await;

    let r = app.send(None, Method::GET, "/health/", None).await;

    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(!r.headers.contains_key("retry-after"), "{r:?}");
    assert_eq!(r.body["database"], "ok");
}
