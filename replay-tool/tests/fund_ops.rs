//! `verify` and fund operations (issue #14 [treasury]): counts, variance approvals and
//! replenishments as the service records them are clean, also when the variance approver is
//! the configured role rather than the default — `verify` follows the setting and the roles
//! held at the time, as the decision did.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;

async fn violations(url: &str) -> Vec<Value> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(["verify", "--format", "json"])
        .env("DATABASE_URL", url)
        .env_remove("SEAL_KEY")
        .env_remove("SECRET_KEY")
        .output()
        .await
        .expect("run pettycash-replay");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    report["violations"].as_array().unwrap_or_else(|| panic!("no report: {out:?}")).clone()
}

#[tokio::test]
async fn variance_approvals_and_replenishments_by_the_configured_roles_verify_clean() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let custodian = app.user(&[Role::Staff]).await;
    let fund = app.fund(&c.admin, "1000").await;
    let r = app.patch(&c.admin, &format!("/api/funds/{fund}"), json!({"custodian_id": custodian.id})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // The default approver (cfo) decides one variance ...
    let counts = format!("/api/funds/{fund}/counts");
    let count = app.post(&custodian, &counts, json!({"counts": {"500": 1, "200": 2}})).await;
    assert_eq!(count.status, StatusCode::CREATED, "{count:?}");
    let ok = app.post(&c.cfo, &format!("{counts}/{}/approve", count.id()), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");

    // ... then treasury is made the approver role, and a treasurer decides the next.
    let set = app.put(&c.admin, "/api/settings/variance_approver_role", json!({"value": "treasury"})).await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let count = app.post(&custodian, &counts, json!({"counts": {"500": 1, "200": 1}})).await;
    assert_eq!(count.status, StatusCode::CREATED, "{count:?}");
    let ok = app.post(&c.treasury, &format!("{counts}/{}/approve", count.id()), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");

    // A replenishment raised by treasury, approved by the cfo, funded.
    let raised = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(raised.status, StatusCode::CREATED, "{raised:?}");
    let path = format!("/api/funds/{fund}/replenishments/{}", raised.id());
    assert_eq!(app.post(&c.cfo, &format!("{path}/approve"), json!({})).await.status, StatusCode::OK);
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-1"})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");

    let found = violations(&app.database_url).await;
    assert!(found.is_empty(), "clean: {found:#?}");
}
