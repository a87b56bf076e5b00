//! `pettycash-replay report`: a report from the events alone, printed as the API's JSON, with
//! the same figures as `GET /api/reports/{name}`.

use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use std::process::Output;

async fn replay(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("run pettycash-replay")
}

#[tokio::test]
async fn the_cash_book_from_events_equals_the_api_figure_for_figure() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    app.waive_codes_below(&c.admin, 1_000_000).await;
    let fund = app.fund(&c.admin, "5000").await;
    let mut last = None;
    for amount in ["700", "123.45", "0.55"] {
        let id = app.submitted(&c.staff, fund, amount).await;
        app.approve_by(id, &[&c.head]).await;
        last = Some(app.pay(&c.treasury, id).await);
    }
    let position = last.unwrap().headers["x-event-position"].to_str().unwrap().to_string();
    let day = chrono::Utc::now().date_naive().to_string();
    let path = format!("/api/reports/cash-book?fund_id={fund}&from={day}&to={day}&min_position={position}");
    let api = app.get(&c.auditor, &path).await;
    assert_eq!(api.status, StatusCode::OK, "{api:?}");

    let fund_arg = fund.to_string();
    let args = ["report", "cash-book", "--fund-id", &fund_arg, "--from", &day, "--to", &day];
    let out = replay(&app.database_url, &args).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    for part in ["name", "title", "params", "filters", "summary", "sections"] {
        assert_eq!(replayed[part], api.body[part], "{part}");
    }
    let closing =
        replayed["summary"].as_array().unwrap().iter().find(|f| f["key"] == "closing_balance").unwrap();
    assert_eq!(closing["value"], json!("4176.00"), "5000 − 700 − 123.45 − 0.55");

    let out = replay(&app.database_url, &["report", "cash-book"]).await;
    assert_eq!(out.status.code(), Some(2), "fund_id is required");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fund_id"));
    let out = replay(&app.database_url, &["report", "no-such", "--period", "2026-11"]).await;
    assert_eq!(out.status.code(), Some(2));
}
