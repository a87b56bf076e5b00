//! A fund's stream grows with every payment; loading it must not: the command side keeps a
//! snapshot next to the stream. The snapshot must always agree with folding every event.

use pettycash_commands::store::{Snapshotted, SNAPSHOT_EVERY};
use pettycash_commands::EventStore;
use pettycash_domain::fund::Fund;
use pettycash_tests::{Cast, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::str::FromStr;

async fn snapshot_row(app: &TestApp, fund: uuid::Uuid) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT last_sequence, current_snapshot FROM snapshots WHERE aggregate_type = 'fund' AND aggregate_id = $1",
    )
    .bind(fund.to_string())
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_long_fund_history_loads_from_a_snapshot_that_equals_the_full_fold() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000000").await;
    let payments = SNAPSHOT_EVERY + 10;
    let mut paid = Decimal::ZERO;
    for i in 0..payments {
        let amount = format!("{}.25", 10 + i);
        let id = app.submitted(&c.staff, fund, &amount).await;
        app.approve_by(id, &[&c.head]).await;
        assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
        paid += Decimal::from_str(&amount).unwrap();
    }
    let store = EventStore::new(app.pool.clone(), pettycash_tests::event_key());
    let id = fund.to_string();
    let full = store.load::<Fund>(&id).await.unwrap();
    assert_eq!(full.version, payments + 1);
    assert_eq!(full.state.balance, Decimal::from(1_000_000) - paid);

    // Past SNAPSHOT_EVERY events a snapshot was written (by the payments, which decided on
    // the cached fund and never folded its stream): a load folds at most SNAPSHOT_EVERY events.
    let (last_sequence, version) = snapshot_row(&app, fund).await.expect("a snapshot");
    assert_eq!(version, Fund::SNAPSHOT_VERSION);
    assert!(last_sequence as usize >= SNAPSHOT_EVERY, "{last_sequence}");
    assert!(full.version - last_sequence as usize <= SNAPSHOT_EVERY, "{last_sequence} of {}", full.version);
    let fast = store.load_snapshotted::<Fund>(&id).await.unwrap();
    assert_eq!(fast.version, full.version);
    assert_eq!(fast.state, full.state);
    // The balance the API shows agrees.
    assert_eq!(app.balance(&c.auditor, fund).await, full.state.balance);

    // A snapshot of another version is ignored (and replaced).
    sqlx::query("UPDATE snapshots SET current_snapshot = 0, payload = '{\"balance\": \"1e9\"}' WHERE aggregate_id = $1")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let reloaded = store.load_snapshotted::<Fund>(&id).await.unwrap();
    assert_eq!(reloaded.state, full.state);
    assert_eq!(snapshot_row(&app, fund).await.unwrap().1, Fund::SNAPSHOT_VERSION);

    // An unreadable snapshot of the right version is ignored too, and replaced.
    sqlx::query("UPDATE snapshots SET payload = '{\"not\": \"a fund\"}' WHERE aggregate_id = $1")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let reloaded = store.load_snapshotted::<Fund>(&id).await.unwrap();
    assert_eq!(reloaded.state, full.state);
    let again = store.load_snapshotted::<Fund>(&id).await.unwrap();
    assert_eq!(again.state, full.state);

    // Paying still works on top of the snapshot, and the balance stays exact.
    let id2 = app.submitted(&c.staff, fund, "1.00").await;
    app.approve_by(id2, &[&c.head]).await;
    let r = app.pay(&c.treasury, id2).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let after = store.load::<Fund>(&id).await.unwrap();
    assert_eq!(after.state.balance, full.state.balance - Decimal::ONE);
    assert_eq!(store.load_snapshotted::<Fund>(&id).await.unwrap().state, after.state);
}

/// A payment of `id` through a server that has never seen the fund (as after a restart).
async fn pay_after_restart(app: &TestApp, payer: &TestUser, id: uuid::Uuid) -> pettycash_tests::Reply {
    let address = crate::concurrency::second_server(app).await;
    crate::concurrency::pay_at(app, &address, payer, id).await
}

#[tokio::test]
async fn a_forged_or_edited_snapshot_is_ignored_and_cannot_fund_a_payment() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // About snapshots, not codes: cash is paid without one.
    app.waive_codes_below(&c.admin, 1_000_000_000).await;
    let fund = app.fund(&c.admin, "100.00").await;
    let big = app.submitted(&c.staff, fund, "900.00").await;
    app.approve_by(big, &[&c.head]).await;
    let store = EventStore::new(app.pool.clone(), pettycash_tests::event_key());
    let id = fund.to_string();
    let real = store.load::<Fund>(&id).await.unwrap();
    let mut rich = real.state.clone();
    rich.balance = Decimal::from_str("100000.00").unwrap();
    let rich = serde_json::to_value(&rich).unwrap();

    // 1. Inserted with a made-up balance (no MAC, or a MAC made without the key).
    for mac in [None, Some(vec![7u8; 32])] {
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload, mac)
             VALUES ('fund', $1, $2, $3, $4, $5)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET payload = $4, mac = $5",
        )
        .bind(&id)
        .bind(real.version as i64)
        .bind(Fund::SNAPSHOT_VERSION)
        .bind(&rich)
        .bind(&mac)
        .execute(&app.pool)
        .await
        .unwrap();
        assert_eq!(store.load_snapshotted::<Fund>(&id).await.unwrap().state, real.state, "mac {mac:?}");
        let r = pay_after_restart(&app, &c.treasury, big).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "mac {mac:?}: {r:?}");
        assert_eq!(r.code(), "insufficient_funds", "{r:?}");
    }

    // 2. A snapshot the service wrote, its balance edited afterwards.
    store.save_snapshot(&id, &real.state, real.version).await.unwrap();
    assert_eq!(store.load_snapshotted::<Fund>(&id).await.unwrap().state, real.state, "a genuine one is used");
    sqlx::query("UPDATE snapshots SET payload = $2 WHERE aggregate_type = 'fund' AND aggregate_id = $1")
        .bind(&id)
        .bind(&rich)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(store.load_snapshotted::<Fund>(&id).await.unwrap().state, real.state);
    let r = pay_after_restart(&app, &c.treasury, big).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.code(), "insufficient_funds", "{r:?}");
    let address = crate::concurrency::second_server(&app).await;
    let shown = app
        .client
        .get(format!("{address}/api/funds/{fund}"))
        .bearer_auth(&c.auditor.token)
        .send()
        .await
        .unwrap();
    let shown: serde_json::Value = shown.json().await.unwrap();
    assert_eq!(shown["balance"], "100.00", "{shown}");
    // The ignored snapshot was replaced by a genuine one.
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM snapshots WHERE aggregate_type = 'fund' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(payload["balance"], "100.00", "{payload}");
}

/// A company's budget plan grows by an event for every budget set, every month: past
/// [`SNAPSHOT_EVERY`] of them it loads from a snapshot that equals the full fold, and the
/// budget report (what every budget reader's dashboard shows) reads the latest amounts.
#[tokio::test]
async fn a_long_budget_plan_loads_from_a_snapshot_and_reports_the_latest_amounts() {
    use pettycash_domain::budget::{plan_id, BudgetPlan};
    let app = TestApp::spawn().await;
    let org_admin = app.user(&[pettycash_domain::Role::Admin]).await;
    let company = app.unit(&org_admin, "company", "ACME", None).await;
    let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
    let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
    let cfo = app.user_in(&[pettycash_domain::Role::Cfo], Some(company)).await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let sets = SNAPSHOT_EVERY + 6;
    for i in 0..sets {
        // The same budget set again and again, as a CFO revising it: the last amount counts.
        let body = serde_json::json!({"scope": "branch", "scope_id": branch, "month": month,
                                      "currency": "KES", "amount": format!("{}", 1000 + i)});
        let r = app.put(&cfo, "/api/budgets", body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let store = EventStore::new(app.pool.clone(), pettycash_tests::event_key());
    let id = plan_id(Some(company)).to_string();
    let full = store.load::<BudgetPlan>(&id).await.unwrap();
    assert_eq!(full.version, sets);
    let (last_sequence, version): (i64, i64) = sqlx::query_as(
        "SELECT last_sequence, current_snapshot FROM snapshots
          WHERE aggregate_type = 'budget_plan' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("a snapshot of the budget plan");
    assert_eq!(version, BudgetPlan::SNAPSHOT_VERSION);
    assert!(full.version - last_sequence as usize <= SNAPSHOT_EVERY, "{last_sequence} of {}", full.version);
    let fast = store.load_snapshotted::<BudgetPlan>(&id).await.unwrap();
    assert_eq!((fast.version, &fast.state), (full.version, &full.state));
    let report = app.get(&cfo, &format!("/api/budgets?month={month}")).await;
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
    assert_eq!(report.body["items"].as_array().map(Vec::len), Some(1), "{report:?}");
    assert_eq!(report.body["items"][0]["amount"], format!("{}.00", 1000 + sets - 1), "{report:?}");
}
