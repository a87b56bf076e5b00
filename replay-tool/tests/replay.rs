//! End to end: a real history written through the API, then the real binary over the store.

use chrono::{DateTime, Utc};
use pettycash_tests::serde_json::{self, Value};
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::process::Output;
use std::str::FromStr;
use uuid::Uuid;

async fn replay(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("run pettycash-replay")
}

fn ok_stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    ok_stdout(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn d(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}"))).unwrap()
}

fn t(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A fund and three paid requisitions, with the instants between them.
struct History {
    app: TestApp,
    c: Cast,
    fund: Uuid,
    requisitions: Vec<Uuid>,
    amounts: Vec<Decimal>,
    /// instants[0]: after the opening; instants[i]: after the i-th payment.
    instants: Vec<DateTime<Utc>>,
    last_position: i64,
}

async fn history() -> History {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut instants = vec![Utc::now()];
    let mut requisitions = Vec::new();
    let mut amounts = Vec::new();
    let mut last_position = 0;
    for amount in ["100.50", "250", "999.99"] {
        let id = app.submitted(&c.staff, fund, amount).await;
        app.approve_by(id, &[&c.head]).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = app.pay(&c.treasury, id).await;
        assert_eq!(r.status, StatusCode::CREATED, "pay: {r:?}");
        last_position = r.body["position"].as_i64().unwrap_or_else(|| panic!("no position: {r:?}"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        instants.push(Utc::now());
        requisitions.push(id);
        amounts.push(Decimal::from_str(amount).unwrap());
    }
    History { app, c, fund, requisitions, amounts, instants, last_position }
}

#[tokio::test]
async fn ledger_balance_history_and_stats_from_events_alone() {
    let h = history().await;
    let url = &h.app.database_url;
    let fund = h.fund.to_string();

    // ledger --as-of each instant: exactly the movements so far, with running balances.
    for (i, instant) in h.instants.iter().enumerate() {
        let as_of = instant.to_rfc3339();
        let lines = json_lines(
            &replay(url, &["ledger", "--fund", &fund, "--as-of", &as_of, "--format", "json"]).await,
        );
        assert_eq!(lines.len(), i + 1, "as of {as_of}: {lines:?}");
        let mut balance = Decimal::from(5000);
        assert_eq!(lines[0]["kind"], "opening");
        assert_eq!(d(&lines[0]["amount"]), balance);
        assert_eq!(d(&lines[0]["balance_after"]), balance);
        for (j, line) in lines.iter().enumerate().skip(1) {
            balance -= h.amounts[j - 1];
            assert_eq!(line["kind"], "disbursement");
            assert_eq!(d(&line["amount"]), -h.amounts[j - 1]);
            assert_eq!(d(&line["balance_after"]), balance);
            assert_eq!(line["requisition_id"], h.requisitions[j - 1].to_string());
            assert!(line["position"].as_i64() > lines[j - 1]["position"].as_i64());
        }

        // balance --as-of agrees.
        let funds = json_lines(&replay(url, &["balance", "--as-of", &as_of, "--format", "json"]).await);
        let f = funds.iter().find(|f| f["id"] == fund.as_str()).expect("fund in balance");
        assert_eq!(d(&f["balance"]), balance);
        assert_eq!(d(&f["float"]), Decimal::from(5000));
        assert_eq!(f["currency"], "KES");
    }

    // Before the fund existed: an empty cash book (header only).
    let before = (h.instants[0] - chrono::Duration::hours(1)).to_rfc3339();
    let csv = ok_stdout(&replay(url, &["ledger", "--fund", &fund, "--as-of", &before]).await);
    assert_eq!(csv.trim(), pettycash_replay::LEDGER_CSV_HEADER);

    // ledger at now equals the live read model.
    let live =
        h.app.get(&h.c.auditor, &format!("/api/funds/{fund}/ledger?min_position={}", h.last_position)).await;
    assert_eq!(live.status, StatusCode::OK, "{live:?}");
    let items = live.body["items"].as_array().unwrap();
    let lines = json_lines(&replay(url, &["ledger", "--fund", &fund, "--format", "json"]).await);
    assert_eq!(lines.len(), items.len());
    for (mine, theirs) in lines.iter().zip(items) {
        assert_eq!(mine["position"], theirs["position"]);
        assert_eq!(mine["kind"], theirs["kind"]);
        assert_eq!(t(&mine["at"]), t(&theirs["at"]));
        assert_eq!(d(&mine["amount"]), d(&theirs["amount"]));
        assert_eq!(d(&mine["balance_after"]), d(&theirs["balance_after"]));
        assert_eq!(mine["requisition_id"], theirs["requisition_id"]);
        assert_eq!(mine["payment_id"], theirs["payment_id"]);
        assert_eq!(mine["reference"], theirs["reference"]);
    }

    // CSV has the same rows.
    let csv = ok_stdout(&replay(url, &["ledger", "--fund", &fund, "--format", "csv"]).await);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), items.len() + 1);
    assert!(rows[1].contains(",opening,5000.00,5000.00,"), "{csv}");

    // history: the requisition's events in order, with the right actors.
    let req = h.requisitions[0].to_string();
    let events = json_lines(&replay(url, &["history", &req, "--format", "json"]).await);
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "RequisitionCreated",
            "RequisitionSubmitted",
            "RequisitionApproved",
            "PaymentCodeIssued",
            "RequisitionPaid"
        ]
    );
    let actors: Vec<String> = events.iter().map(|e| e["actor_id"].as_str().unwrap().to_string()).collect();
    let (staff, head, treasury) =
        (h.c.staff.id.to_string(), h.c.head.id.to_string(), h.c.treasury.id.to_string());
    assert_eq!(actors, [staff.clone(), staff, head, treasury.clone(), treasury]);
    let sequences: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    assert!(events.iter().all(|e| e["payload"].is_object() && e["request_id"].is_string()));
    let text = ok_stdout(&replay(url, &["history", &req]).await);
    assert_eq!(text.lines().count(), 5);
    assert!(text.lines().last().unwrap().contains("RequisitionPaid"), "{text}");

    // stats: counts match the store.
    let stats = json_lines(&replay(url, &["stats", "--format", "json"]).await);
    let stats = &stats[0];
    let (count, max): (i64, i64) = sqlx::query_as("SELECT count(*), max(global_position) FROM events")
        .fetch_one(&h.app.pool)
        .await
        .unwrap();
    assert_eq!(stats["total_events"], count);
    assert_eq!(stats["last_position"], max);
    let funds_events: i64 =
        stats["events"]["fund"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(funds_events, 4);
    assert_eq!(stats["events"]["fund"]["CashDisbursed"], 3);
    assert_eq!(stats["aggregates"]["fund"], 1);
    assert_eq!(stats["aggregates"]["requisition"], 3);
    assert!(stats["database_size"].as_str().unwrap().ends_with("B"), "{stats}");
    let text = ok_stdout(&replay(url, &["stats"]).await);
    assert!(text.contains(&format!("events: {count}")), "{text}");
}

#[tokio::test]
async fn usage_and_connection_errors_exit_2() {
    let (url, _pool) = pettycash_tests::fresh_database().await;
    let fund = Uuid::new_v4().to_string();

    let out = replay(&url, &["ledger", "--fund", &fund, "--as-of", "last tuesday"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"), "{out:?}");
    let out = replay(&url, &["balance", "--as-of", "2026-02-30"]).await;
    assert_eq!(out.status.code(), Some(2));

    let out = replay(&url, &["frobnicate"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = replay(&url, &[]).await;
    assert_eq!(out.status.code(), Some(2));

    let out = replay("postgres://nobody@127.0.0.1:1/nothing", &["stats"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"), "{out:?}");

    // A date alone is accepted; an unknown fund is a failure (1), not a usage error.
    let out = replay(&url, &["ledger", "--fund", &fund, "--as-of", "2026-11-27"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = replay(&url, &["balance", "--as-of", "2026-11-27"]).await;
    assert_eq!(ok_stdout(&out).trim(), "id,name,currency,float,balance");
}

#[tokio::test]
async fn a_recorded_balance_that_does_not_add_up_is_warned_about() {
    let (url, pool) = pettycash_tests::fresh_database().await;
    let fund = Uuid::new_v4();
    let user = Uuid::new_v4();
    let events = [
        (
            1,
            "FundOpened",
            serde_json::json!({"FundOpened": {"fund_id": fund, "name": "Raw", "currency": "KES",
            "float": "1000.00", "custodian_id": null, "opened_by": user}}),
        ),
        (
            2,
            "CashDisbursed",
            serde_json::json!({"CashDisbursed": {"payment_id": Uuid::new_v4(),
            "requisition_id": Uuid::new_v4(), "amount": "100.00", "balance_after": "850.00", "method": "cash",
            "reference": "a, \"quoted\" ref", "paid_by": user}}),
        ),
    ];
    for (seq, kind, payload) in events {
        let metadata = serde_json::json!({"actor_id": user.to_string(), "request_id": "test"});
        let metadata = pettycash_tests::signed_metadata(
            "fund",
            &fund.to_string(),
            seq as i64,
            kind,
            &payload,
            &metadata,
        );
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('fund', $1, $2, $3, '1', $4, $5)",
        )
        .bind(fund.to_string())
        .bind(seq as i64)
        .bind(kind)
        .bind(payload)
        .bind(metadata)
        .execute(&pool)
        .await
        .unwrap();
    }
    let out = replay(&url, &["ledger", "--fund", &fund.to_string()]).await;
    let csv = ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning") && stderr.contains("850.00") && stderr.contains("900.00"), "{stderr}");
    // The book shows what was recorded; the reference is quoted as CSV needs.
    let last = csv.lines().last().unwrap();
    assert!(last.contains(",disbursement,-100.00,850.00,"), "{csv}");
    assert!(last.contains(",\"a, \"\"quoted\"\" ref\",0,0,850.00,,,"), "{csv}");
}

#[tokio::test]
async fn fund_operations_show_in_the_ledger_and_verify_finds_nothing_wrong() {
    use pettycash_tests::serde_json::json;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let custodian = app.user(&[pettycash_domain::Role::Staff]).await;
    let r = app
        .post(
            &c.admin,
            "/api/funds/",
            json!({"name": "Ops", "currency": "KES", "float": "1000", "reorder_level": "800"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let fund = r.id();
    let r = app.patch(&c.admin, &format!("/api/funds/{fund}"), json!({"custodian_id": custodian.id})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // Counted 900 against 1000; then a payment of 300 raises a replenishment (float − 700).
    let count = app
        .post(&custodian, &format!("/api/funds/{fund}/counts"), json!({"counts": {"500": 1, "200": 2}}))
        .await;
    assert_eq!(count.status, StatusCode::CREATED, "{count:?}");
    let id = app.submitted(&c.staff, fund, "300").await;
    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
    let r = app.post(&c.cfo, &format!("/api/funds/{fund}/counts/{}/approve", count.id()), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let f = app.get(&c.admin, &format!("/api/funds/{fund}")).await;
    let rid = f.body["replenishment"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/funds/{fund}/replenishments/{rid}");
    assert_eq!(app.post(&c.cfo, &format!("{path}/approve"), json!({})).await.status, StatusCode::OK);
    let r = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-9"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let url = &app.database_url;
    let lines = json_lines(&replay(url, &["ledger", "--fund", &fund.to_string(), "--format", "json"]).await);
    let got: Vec<(String, Decimal, Decimal)> = lines
        .iter()
        .map(|l| (l["kind"].as_str().unwrap().to_string(), d(&l["amount"]), d(&l["balance_after"])))
        .collect();
    let n = |s: &str| Decimal::from_str(s).unwrap();
    assert_eq!(
        got,
        [
            ("opening".to_string(), n("1000"), n("1000")),
            ("disbursement".to_string(), n("-300"), n("700")),
            ("adjustment".to_string(), n("-100"), n("600")),
            ("replenishment".to_string(), n("300"), n("900")),
        ]
    );
    let report: Value =
        serde_json::from_str(&ok_stdout(&replay(url, &["verify", "--format", "json"]).await)).unwrap();
    assert_eq!(report["summary"]["violations"], 0, "{report:#}");
    assert_eq!(d(&report["summary"]["balances"][fund.to_string()]["balance"]), n("900"));
}

/// A mobile-money payment of `amount` for a new approved requisition of `fund`, scripted
/// `script` at `msisdn`: (requisition, payment).
async fn pay_mobile(
    app: &TestApp,
    c: &Cast,
    fund: Uuid,
    amount: &str,
    msisdn: &str,
    script: pettycash_commands::providers::simulator::Script,
) -> (Uuid, Uuid) {
    use pettycash_tests::serde_json::json;
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    app.simulator.script(msisdn, script);
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let body = json!({"requisition_id": id, "method": "mobile_money", "destination": msisdn, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    (id, r.id())
}

#[tokio::test]
async fn ledger_as_of_shows_reconciliations_recorded_by_then_and_reservations_in_flight() {
    use pettycash_commands::providers::simulator::{Callback, Script};
    use pettycash_tests::serde_json::json;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(20));
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
    })
    .await;
    let c = Cast::new(&app).await;
    let reconciler = app.user(&[pettycash_domain::Role::Treasury]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let (_, paid) = pay_mobile(&app, &c, fund, "300", "254712000301", Script::result("0")).await;
    for _ in 0..200 {
        let p = app.get(&c.auditor, &format!("/api/treasury/payments/{paid}")).await;
        if p.body["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    pause().await;
    let before = Utc::now();
    pause().await;
    let body = json!({"statement_reference": "STMT-7"});
    let r = app.post(&reconciler, &format!("/api/treasury/payments/{paid}/reconcile"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    pause().await;
    let after = Utc::now();
    pause().await;
    // A second payment stays in flight: its cash is reserved.
    let never = Script::result("0").callback(Callback::Never);
    let (in_flight_req, in_flight) = pay_mobile(&app, &c, fund, "200", "254712000302", never).await;
    let (url, fund_s) = (&app.database_url, fund.to_string());
    let ledger = |as_of: Option<DateTime<Utc>>| {
        let mut args =
            vec!["ledger".to_string(), "--fund".into(), fund_s.clone(), "--format".into(), "json".into()];
        if let Some(t) = as_of {
            args.extend(["--as-of".to_string(), t.to_rfc3339()]);
        }
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            json_lines(&replay(url, &args).await)
        }
    };
    let kinds =
        |lines: &[Value]| lines.iter().map(|l| l["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    // Before the reconciliation: the payment's lines, not reconciled.
    let lines = ledger(Some(before)).await;
    assert_eq!(kinds(&lines), ["opening", "reservation", "disbursement"], "{lines:#?}");
    assert_eq!((d(&lines[1]["amount"]), d(&lines[1]["reserved"])), (Decimal::ZERO, Decimal::from(300)));
    assert_eq!(d(&lines[1]["available_after"]), Decimal::from(4700));
    assert_eq!(lines[2]["payment_id"], paid.to_string());
    assert_eq!(lines[2]["reconciled_reference"], Value::Null);
    // After it: reconciled.
    let lines = ledger(Some(after)).await;
    assert_eq!(kinds(&lines), ["opening", "reservation", "disbursement"]);
    assert_eq!(lines[2]["reconciled_reference"], "STMT-7");
    assert_eq!(t(&lines[2]["reconciled_at"]), t(&r.body["reconciled_at"]));
    // Now: the second payment's reservation, amount 0, the balance untouched.
    let lines = ledger(None).await;
    assert_eq!(kinds(&lines), ["opening", "reservation", "disbursement", "reservation"]);
    let last = &lines[3];
    assert_eq!(
        (last["payment_id"].as_str(), last["requisition_id"].as_str()),
        (Some(in_flight.to_string().as_str()), Some(in_flight_req.to_string().as_str()))
    );
    assert_eq!(
        (
            d(&last["amount"]),
            d(&last["balance_after"]),
            d(&last["reserved_after"]),
            d(&last["available_after"])
        ),
        (Decimal::ZERO, Decimal::from(4700), Decimal::from(200), Decimal::from(4500))
    );
    // The same lines as the API's ledger.
    let position = r.body["position"].as_i64().unwrap();
    let mut items = Vec::new();
    for _ in 0..100 {
        let live = app.get(&c.auditor, &format!("/api/funds/{fund}/ledger?min_position={position}")).await;
        assert_eq!(live.status, StatusCode::OK, "{live:?}");
        items = live.body["items"].as_array().unwrap().clone();
        if items.len() == lines.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(items.len(), lines.len(), "{items:#?}");
    for (mine, theirs) in lines.iter().zip(&items) {
        for k in [
            "position",
            "kind",
            "requisition_id",
            "payment_id",
            "reference",
            "source_id",
            "reconciled_reference",
        ] {
            assert_eq!(mine[k], theirs[k], "{k}: {mine} vs {theirs}");
        }
        for k in ["amount", "balance_after", "reserved", "reserved_after", "available_after"] {
            assert_eq!(d(&mine[k]), d(&theirs[k]), "{k}: {mine} vs {theirs}");
        }
    }
    assert_eq!(t(&items[2]["reconciled_at"]), t(&lines[2]["reconciled_at"]));
    // CSV carries the reconciliation too; verify finds nothing wrong.
    let csv = ok_stdout(&replay(url, &["ledger", "--fund", &fund_s]).await);
    assert!(csv.lines().nth(3).unwrap().contains(",STMT-7,"), "{csv}");
    let report: Value =
        serde_json::from_str(&ok_stdout(&replay(url, &["verify", "--format", "json"]).await)).unwrap();
    assert_eq!(report["summary"]["violations"], 0, "{report:#}");
}
