//! `verify` and budgets (issue #14 [treasury]): what budgets consumed, recomputed from the
//! payments, equals the budgets read model (a changed read model is reported); a submission
//! over budget while `budget_block` was on is reported (here made by changing the setting's
//! recorded value, as an attacker with write access to the database would).

use pettycash_domain::Role;
use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{wait_for_projections, TestApp, TestUser};
use reqwest::StatusCode;
use std::process::Output;
use uuid::Uuid;

async fn verify(url: &str) -> (Output, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(["verify", "--format", "json"])
        .env("DATABASE_URL", url)
        .env_remove("SEAL_KEY")
        .env_remove("SECRET_KEY")
        .output()
        .await
        .expect("run pettycash-replay");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

fn rules(report: &Value) -> Vec<(i64, String)> {
    report["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {report:#}"))
        .iter()
        .map(|v| (v["position"].as_i64().unwrap(), v["rule"].as_str().unwrap().to_string()))
        .collect()
}

struct Org {
    org_admin: TestUser,
    cfo: TestUser,
    treasury: TestUser,
    staff: TestUser,
    head: TestUser,
    department: Uuid,
    fund: Uuid,
}

async fn org(app: &TestApp) -> Org {
    let org_admin = app.user(&[Role::Admin]).await;
    let policy = json!({"tiers": [{"up_to": null, "chain": ["department_head"]}]});
    assert_eq!(app.put(&org_admin, "/api/approval-policy", policy).await.status, StatusCode::OK);
    let company = app.unit(&org_admin, "company", "ACME", None).await;
    let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
    let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
    let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
    let admin = app.user_in(&[Role::Admin], Some(company)).await;
    Org {
        fund: app.fund(&admin, "100000").await,
        cfo: app.user_in(&[Role::Cfo], Some(company)).await,
        treasury: app.user_in(&[Role::Treasury], Some(company)).await,
        staff: app.user_in(&[Role::Staff], Some(department)).await,
        head: app.user_in(&[Role::Staff, Role::DepartmentHead], Some(department)).await,
        org_admin,
        department,
    }
}

impl Org {
    async fn budget(&self, app: &TestApp, amount: &str) {
        let body = json!({"scope": "department", "scope_id": self.department,
                          "month": chrono::Utc::now().format("%Y-%m").to_string(), "currency": "KES", "amount": amount});
        assert_eq!(app.put(&self.cfo, "/api/budgets", body).await.status, StatusCode::OK);
    }

    async fn submit(&self, app: &TestApp, amount: &str) -> Uuid {
        let body = json!({"fund_id": self.fund, "amount": amount, "purpose": "Toner", "submit": true});
        let r = app.post(&self.staff, "/api/requisitions/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.id()
    }
}

async fn tamper(app: &TestApp, sql: &str) {
    let mut tx = app.pool.begin().await.unwrap();
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        sql,
        "ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete",
    ] {
        sqlx::raw_sql(statement).execute(&mut *tx).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn consumption_recomputed_from_the_payments_equals_the_read_model_and_a_changed_one_is_reported() {
    let app = TestApp::spawn().await;
    let o = org(&app).await;
    o.budget(&app, "1000").await;
    for amount in ["300", "250.50"] {
        let id = o.submit(&app, amount).await;
        app.approve_by(id, &[&o.head]).await;
        assert_eq!(app.pay(&o.treasury, id).await.status, StatusCode::CREATED);
    }
    o.submit(&app, "100").await;
    wait_for_projections(&app.pool, &["budgets"]).await;
    let (out, report) = verify(&app.database_url).await;
    assert!(rules(&report).is_empty(), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    let not_checked = report["summary"]["not_checked"].to_string();
    assert!(!not_checked.contains("budget"), "compared: {not_checked}");

    sqlx::query("UPDATE rm_budget_spend SET paid_amount = paid_amount + 1 WHERE paid_amount = 300")
        .execute(&app.pool)
        .await
        .unwrap();
    let (out, report) = verify(&app.database_url).await;
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let found: Vec<&Value> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["rule"] == "budget_consumption_mismatch")
        .collect();
    // The department's and the branch's consumption.
    assert_eq!(found.len(), 2, "{report:#}");
    assert!(
        found[0]["detail"].as_str().unwrap().contains("550.50 paid per the events, 551.50"),
        "{report:#}"
    );
}

#[tokio::test]
async fn a_submission_over_budget_while_budgets_block_is_reported() {
    let app = TestApp::spawn().await;
    let o = org(&app).await;
    let r = app.put(&o.org_admin, "/api/settings/budget_block", json!({"value": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    o.budget(&app, "500").await;
    let id = o.submit(&app, "600").await;
    let (_, report) = verify(&app.database_url).await;
    assert!(rules(&report).is_empty(), "flagged, not blocked, is allowed: {report:#}");

    // The history made to say that budgets blocked at the time.
    tamper(
        &app,
        "UPDATE events SET payload = jsonb_set(payload, '{SettingChanged,value}', 'true')
         WHERE event_type = 'SettingChanged'",
    )
    .await;
    let submitted: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE aggregate_id = $1 AND event_type = 'RequisitionSubmitted'",
    )
    .bind(id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let (out, report) = verify(&app.database_url).await;
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(rules(&report).contains(&(submitted, "over_budget_submitted".to_string())), "{report:#}");
}
