//! Round trip: thousands of commands through the HTTP API, then the auditor's tools over the
//! store: `verify` is clean (seals authenticated), `ledger`/`balance --as-of` at several
//! instants equal the balances this test computed itself, `export` agrees with `verify` and
//! the seals and is reproducible, and `rebuild --all` leaves the read models as they were.

use chrono::{DateTime, Utc};
use futures::future::join_all;
use pettycash_projections::seal::SealKey;
use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{seal_everything, wait_for_projections};
use pettycash_tests::{Cast, TestApp, DEV_SECRET_KEY};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::process::Output;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

async fn replay(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("SEAL_KEY", DEV_SECRET_KEY)
        .output()
        .await
        .expect("run pettycash-replay")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a decimal: {v}"))).unwrap()
}

/// What happens to the i-th requisition of a phase.
#[derive(Clone, Copy)]
enum Path {
    Paid,
    PaidAfterTwoApprovals,
    Rejected,
    Cancelled,
    Pending,
}

fn path(i: usize) -> Path {
    match i % 10 {
        0 => Path::Rejected,
        1 => Path::Cancelled,
        2 => Path::Pending,
        3 => Path::PaidAfterTwoApprovals,
        _ => Path::Paid,
    }
}

/// Runs one requisition through its path; returns the amount paid out, if any.
async fn run(app: &TestApp, c: &Cast, fund: Uuid, i: usize) -> Option<Decimal> {
    let p = path(i);
    let amount = match p {
        Path::PaidAfterTwoApprovals => format!("{}.{:02}", 1000 + i % 500, i % 100),
        _ => format!("{}.{:02}", 10 + i % 90, (i * 7) % 100),
    };
    let id = app.submitted(&c.staff, fund, &amount).await;
    match p {
        Path::Rejected => {
            let r =
                app.post(&c.head, &format!("/api/requisitions/{id}/reject"), json!({"reason": "no"})).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            None
        }
        Path::Cancelled => {
            let r =
                app.post(&c.staff, &format!("/api/requisitions/{id}/cancel"), json!({"reason": "x"})).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            None
        }
        Path::Pending => None,
        Path::Paid | Path::PaidAfterTwoApprovals => {
            if matches!(p, Path::Paid) {
                app.approve_by(id, &[&c.head]).await;
            } else {
                app.approve_by(id, &[&c.head, &c.gfm]).await;
            }
            let r = app.pay(&c.treasury, id).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            Some(Decimal::from_str(&amount).unwrap())
        }
    }
}

#[tokio::test]
async fn thousands_of_commands_replay_to_the_balances_the_test_computed() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let float = Decimal::from(10_000_000);
    let funds = [
        app.fund_in(&c.admin, "10000000", "KES").await,
        app.fund_in(&c.admin, "10000000", "KES").await,
        app.fund_in(&c.admin, "10000000", "USD").await,
    ];
    let mut balances: BTreeMap<Uuid, Decimal> = funds.iter().map(|f| (*f, float)).collect();
    // (instant, every fund's balance at it), taken between phases of concurrent commands.
    let mut expected: Vec<(DateTime<Utc>, BTreeMap<Uuid, Decimal>)> = Vec::new();
    let per_phase = 120;
    for phase in 0..5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        expected.push((Utc::now(), balances.clone()));
        tokio::time::sleep(Duration::from_millis(5)).await;
        for chunk in (0..per_phase).collect::<Vec<_>>().chunks(12) {
            let paid = join_all(chunk.iter().map(|&k| {
                let i = phase * per_phase + k;
                let fund = funds[i % funds.len()];
                let (app, c) = (&app, &c);
                async move { (fund, run(app, c, fund, i).await) }
            }))
            .await;
            for (fund, amount) in paid {
                if let Some(a) = amount {
                    *balances.get_mut(&fund).unwrap() -= a;
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    expected.push((Utc::now(), balances.clone()));
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert!(events > 2500, "a history of thousands of events: {events}");

    seal_everything(&app.pool, &SealKey::derive(DEV_SECRET_KEY), 1000).await;

    // verify: clean, everything hashed and sealed, balances as computed.
    let report: Value =
        serde_json::from_str(&ok(&replay(&app.database_url, &["verify", "--format", "json"]).await)).unwrap();
    let s = &report["summary"];
    assert_eq!(s["violations"], 0, "{report:#}");
    assert_eq!(s["events"], events);
    assert_eq!(s["hashed_events"], events);
    assert_eq!(s["unsealed_events"], 0);
    assert_eq!(s["not_checked"], json!([]));
    for (fund, balance) in &balances {
        assert_eq!(dec(&s["balances"][fund.to_string()]["balance"]), *balance, "fund {fund}");
    }

    // ledger and balance as of every instant.
    for (at, want) in &expected {
        let at_text = at.to_rfc3339();
        let lines =
            ok(&replay(&app.database_url, &["balance", "--as-of", &at_text, "--format", "json"]).await);
        let got: BTreeMap<Uuid, Decimal> = lines
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().parse().unwrap(), dec(&v["balance"]))
            })
            .collect();
        assert_eq!(&got, want, "balances as of {at_text}");
        for (fund, balance) in want {
            let out = ok(&replay(
                &app.database_url,
                &["ledger", "--fund", &fund.to_string(), "--as-of", &at_text, "--format", "json"],
            )
            .await);
            let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
            assert_eq!(dec(&last["balance_after"]), *balance, "ledger of {fund} as of {at_text}");
        }
    }

    // export: the chain hash of a full export is verify's and the last seal's; reproducible.
    let dir = std::env::temp_dir().join(format!("pettycash-export-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let file_text = file.to_str().unwrap();
    ok(&replay(&app.database_url, &["export", "--out", file_text]).await);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("events.jsonl.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["count"], events);
    assert_eq!(manifest["chain_hash"], s["chain_hash"]);
    assert_eq!(manifest["last_seal"]["chain_hash"], s["chain_hash"]);
    assert_eq!(manifest["first_position"], s["first_position"]);
    assert_eq!(manifest["last_position"], s["last_position"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count() as i64, events);
    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT global_position, encode(event_hash, 'hex') FROM events ORDER BY transaction_id, global_position")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for (line, (position, hash)) in text.lines().zip(&stored) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["position"], *position);
        assert_eq!(v["hash"], hash.as_str());
    }
    let again = dir.join("again.jsonl");
    ok(&replay(&app.database_url, &["export", "--out", again.to_str().unwrap()]).await);
    let manifest2: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("again.jsonl.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest2["file_sha256"], manifest["file_sha256"]);
    // A range.
    let part = dir.join("part.jsonl");
    ok(&replay(
        &app.database_url,
        &["export", "--from", "10", "--to", "19", "--out", part.to_str().unwrap()],
    )
    .await);
    let part_manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("part.jsonl.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(part_manifest["count"], 10);
    assert_eq!(std::fs::read_to_string(&part).unwrap().lines().count(), 10);
    let bad =
        replay(&app.database_url, &["export", "--from", "9", "--to", "3", "--out", part.to_str().unwrap()])
            .await;
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();

    // rebuild --all: the read models come back identical.
    let snapshot = || async {
        let mut all = Vec::new();
        for (view, order) in [
            ("rm_requisitions", "id"),
            ("rm_funds", "id"),
            ("rm_ledger", "fund_id, position"),
            ("rm_payments", "payment_id"),
            ("rm_requisition_totals", "requester_id, status, currency"),
            ("rm_paid_daily", "requester_id, day, currency"),
        ] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT to_jsonb(t)::text FROM {view} t ORDER BY {order}"))
                    .fetch_all(&app.pool)
                    .await
                    .unwrap();
            all.push(rows);
        }
        all
    };
    wait_for_projections(&app.pool, &["requisitions", "cash"]).await;
    let before = snapshot().await;
    ok(&replay(&app.database_url, &["rebuild", "--all"]).await);
    assert_eq!(snapshot().await, before);
}
