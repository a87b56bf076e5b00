//! The dashboard of issue #15: pending approvals by age, payments today / this week / this
//! month, fund cards with their status, pending replenishments and variances, spend this month
//! against budget, and the chart series (spend by month, each fund's daily closing balance,
//! requisitions by status), over a seeded history whose figures the test computes itself, per
//! role: a requester sees their own numbers, finance their company's, another company none.

use crate::organisation::World;
use chrono::{Datelike, Duration, Months, NaiveDate, Utc};
use pettycash_domain::visibility::DashboardScope;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// `{"count": n, "amount": {...}}` with the amounts compared as decimals.
fn assert_totals(v: &Value, count: i64, amounts: &[(&str, &str)], what: &str) {
    assert_eq!(v["count"], count, "{what}: {v}");
    let got = v["amount"].as_object().unwrap_or_else(|| panic!("{what}: {v}"));
    assert_eq!(got.len(), amounts.len(), "{what}: {v}");
    for (currency, amount) in amounts {
        assert_eq!(got[*currency].as_str().map(d), Some(d(amount)), "{what}: {v}");
    }
}

async fn latest_position(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&app.pool).await.unwrap()
}

async fn dashboard(app: &TestApp, user: &TestUser, query: &str) -> Reply {
    let p = latest_position(app).await;
    let r = app.get(user, &format!("/api/dashboard/?min_position={p}{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r
}

async fn paid(
    app: &TestApp,
    requester: &TestUser,
    approver: &TestUser,
    treasurer: &TestUser,
    fund: Uuid,
    amount: &str,
) {
    let id = app.submitted(requester, fund, amount).await;
    app.approve_by(id, &[approver]).await;
    let r = app.pay(treasurer, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn dashboard_figures_match_a_seeded_history_per_role() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let (acme, globex) = (&w.acme, &w.globex);
    let (ops, fin) = (w.person("staff@NBI-OPS"), w.person("staff@NBI-FIN"));

    // A second ACME fund with a reorder level: paid below it, it is `warning` and raises a
    // replenishment; a count short of the book leaves a variance for an approver.
    let body = json!({"name": "Branch fund", "currency": "KES", "float": "1000", "reorder_level": "500"});
    let r = app.post(&acme.admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let branch = r.id();
    let budget = json!({"scope": "department", "scope_id": w.unit("NBI-OPS"),
                        "month": Utc::now().format("%Y-%m").to_string(), "currency": "KES", "amount": "1000"});
    let r = app.put(&acme.cfo, "/api/budgets", budget).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    app.submitted(ops, acme.fund, "100").await;
    paid(&app, ops, w.person("head@NBI-OPS"), &acme.treasury, acme.fund, "250").await;
    paid(&app, fin, w.person("head@NBI-FIN"), &acme.treasury, branch, "600").await;
    app.submitted(fin, acme.fund, "50").await;
    let count =
        app.post(&acme.treasury, &format!("/api/funds/{branch}/counts"), json!({"counts": {"200": 1}})).await;
    assert_eq!(
        (count.status, count.body["status"].as_str()),
        (StatusCode::CREATED, Some("pending")),
        "{count:?}"
    );
    // GLOBEX: one pending, one paid.
    let gops = w.person("staff@GOPS");
    app.submitted(gops, globex.fund, "70").await;
    paid(&app, gops, w.person("head@GOPS"), &globex.treasury, globex.fund, "80").await;
    wait_for_projections(&app.pool, &["requisitions", "cash", "budgets"]).await;

    let today = Utc::now().date_naive();
    let this_month = today.format("%Y-%m").to_string();
    let months: Vec<String> = (0..12)
        .rev()
        .map(|back| (today.with_day(1).unwrap() - Months::new(back)).format("%Y-%m").to_string())
        .collect();

    // Finance of ACME: the company's numbers.
    let b = dashboard(&app, &acme.cfo, "").await.body;
    assert_eq!(b["scope"], "all", "{b}");
    assert_totals(&b["pending_approval"], 2, &[("KES", "150")], "pending");
    assert_totals(&b["pending_by_age"]["under_1_day"], 2, &[("KES", "150")], "under a day");
    for older in ["days_1_to_3", "days_3_to_7", "over_7_days"] {
        assert_totals(&b["pending_by_age"][older], 0, &[], older);
    }
    for paid in ["paid_today", "paid_week_to_date", "paid_month_to_date"] {
        assert_totals(&b[paid], 2, &[("KES", "850")], paid);
    }
    let spend = b["series"]["spend_by_month"].as_array().unwrap();
    assert_eq!(spend.iter().map(|m| m["month"].as_str().unwrap()).collect::<Vec<_>>(), months);
    assert_totals(&spend[11], 2, &[("KES", "850")], "this month's spend");
    assert!(spend[..11].iter().all(|m| m["count"] == 0 && m["amount"] == json!({})), "{spend:?}");
    assert_eq!(b["by_status"]["pending_approval"], 2);
    assert_eq!(b["by_status"]["paid"], 2);
    let funds = b["funds"].as_array().unwrap();
    let ids: Vec<&str> = funds.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [acme.fund.to_string(), branch.to_string()]);
    assert_eq!(
        funds.iter().map(|f| (f["balance"].as_str().map(d), f["status"].as_str())).collect::<Vec<_>>(),
        [(Some(d("999750")), Some("ok")), (Some(d("400")), Some("warning"))]
    );
    assert_eq!(b["fund_status"], json!({"ok": 1, "warning": 1, "critical": 0}));
    assert_eq!(b["pending_replenishments"], 1, "the branch fund's, raised below its reorder level");
    assert_eq!(b["pending_variances"], 1, "{b}");
    let budget = &b["budget_this_month"];
    assert_eq!(budget["month"], this_month);
    let items = budget["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{budget}");
    assert_eq!(
        (&items[0]["scope"], &items[0]["currency"], &items[0]["budgets"]),
        (&json!("department"), &json!("KES"), &json!(1))
    );
    assert_eq!(
        ["amount", "consumed", "remaining"].map(|k| items[0][k].as_str().map(d)),
        [Some(d("1000")), Some(d("250")), Some(d("750"))],
        "NBI-OPS paid 250 of its 1000"
    );
    assert_eq!(items[0]["percent_consumed"], "25.0");
    assert_eq!(b["series"]["days"], 30);
    // The funds that most need attention first: the branch fund (warning), then ACME's (ok).
    let series = b["series"]["fund_balances"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(b["series"]["fund_balances_omitted"], 0);
    for (s, (fund, balance, float)) in
        series.iter().zip([(branch, "400", "1000"), (acme.fund, "999750", "1000000")])
    {
        assert_eq!(s["fund_id"], fund.to_string());
        assert_eq!(s["float"].as_str().map(d), Some(d(float)));
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), 30);
        assert_eq!(points[29]["day"], today.to_string(), "ends today");
        assert_eq!(points[29]["balance"].as_str().map(d), Some(d(balance)), "today's closing balance");
        assert!(points[..29].iter().all(|p| p["balance"].is_null()), "opened today: {points:?}");
    }
    assert_eq!(series[0]["reorder_level"].as_str().map(d), Some(d("500")));
    // The series of the funds asked for, in that order; the others are counted as omitted.
    let asked = dashboard(&app, &acme.cfo, &format!("&series_fund_ids={}", acme.fund)).await.body;
    let ids: Vec<&str> = asked["series"]["fund_balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["fund_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [acme.fund.to_string()]);
    assert_eq!(asked["series"]["fund_balances_omitted"], 1);
    assert_eq!(asked["funds"].as_array().unwrap().len(), 2, "the cards list every fund");
    let r = app.get(&acme.cfo, "/api/dashboard/?series_fund_ids=not-an-id").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "series_fund_ids"), "{r:?}");
    let too_many = (0..13).map(|_| Uuid::new_v4().to_string()).collect::<Vec<_>>().join(",");
    let r = app.get(&acme.cfo, &format!("/api/dashboard/?series_fund_ids={too_many}")).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "series_fund_ids"), "{r:?}");
    let r = app.get(&acme.cfo, &format!("/api/dashboard/?series_fund_ids={}", globex.fund)).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "fund_not_found"), "another company's: {r:?}");
    let long = dashboard(&app, &acme.cfo, "&days=90").await.body;
    assert_eq!(long["series"]["days"], 90);
    assert_eq!(long["series"]["fund_balances"][0]["points"].as_array().unwrap().len(), 90);
    for bad in ["7", "abc", "-30"] {
        let r = app.get(&acme.cfo, &format!("/api/dashboard/?days={bad}")).await;
        assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "days"), "{bad}: {r:?}");
    }

    // A requester: their own requisitions only; no budgets.
    let b = dashboard(&app, fin, "").await.body;
    assert_eq!(b["scope"], "own");
    assert_totals(&b["pending_approval"], 1, &[("KES", "50")], "own pending");
    assert_totals(&b["pending_by_age"]["under_1_day"], 1, &[("KES", "50")], "own under a day");
    for paid in ["paid_today", "paid_week_to_date", "paid_month_to_date"] {
        assert_totals(&b[paid], 1, &[("KES", "600")], paid);
    }
    assert_totals(&b["series"]["spend_by_month"][11], 1, &[("KES", "600")], "own spend");
    assert_eq!(b["budget_this_month"], Value::Null);

    // Another company: none of ACME's figures, funds or series.
    let b = dashboard(&app, &globex.cfo, "").await.body;
    assert_totals(&b["pending_approval"], 1, &[("KES", "70")], "globex pending");
    assert_totals(&b["paid_month_to_date"], 1, &[("KES", "80")], "globex paid");
    assert_totals(&b["series"]["spend_by_month"][11], 1, &[("KES", "80")], "globex spend");
    let ids: Vec<&str> = b["funds"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [globex.fund.to_string()]);
    let series: Vec<&str> = b["series"]["fund_balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fund_id"].as_str().unwrap())
        .collect();
    assert_eq!(series, [globex.fund.to_string()]);
    assert_eq!((&b["pending_replenishments"], &b["pending_variances"]), (&json!(0), &json!(0)));
    assert_eq!(b["budget_this_month"]["items"], json!([]));

    // Ages and closing balances as days pass (the queries take the time they answer for).
    use pettycash_projections::queries;
    let company = DashboardScope::Company(Some(acme.id));
    for (later, bucket) in [(2, "days_1_to_3"), (5, "days_3_to_7"), (8, "over_7_days")] {
        let n = queries::dashboard(&app.pool, company, Uuid::nil(), Utc::now() + Duration::days(later))
            .await
            .unwrap();
        let by_age = pettycash_tests::serde_json::to_value(&n.pending_by_age).unwrap();
        let pending_amount = pettycash_tests::serde_json::to_value(&n.pending_approval.amount).unwrap();
        for (name, totals) in by_age.as_object().unwrap() {
            let (count, amount) = if name == bucket { (2, pending_amount.clone()) } else { (0, json!({})) };
            assert_eq!(totals["count"], count, "{later} days later, {name}: {by_age}");
            assert_eq!(totals["amount"], amount, "{later} days later, {name}: {by_age}");
        }
        assert_eq!(n.paid_today.count, 0, "{later} days later nothing is paid that day");
    }
    let later = Utc::now() + Duration::days(3);
    let s = queries::balance_series(&app.pool, &[branch], 30, later).await.unwrap();
    let last: Vec<(NaiveDate, Option<Decimal>)> = s[0].points[26..].to_vec();
    assert_eq!(
        last,
        (0..4).map(|i| (today + chrono::Days::new(i), Some(d("400")))).collect::<Vec<_>>(),
        "a day without a movement keeps the day before's closing balance"
    );
}
