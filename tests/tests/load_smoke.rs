//! Keeps `pettycash-load` working: runs the real binary for about two seconds in each mode
//! against a test server at a low rate and checks the shape of its JSON report. Not a
//! performance test: no duration is asserted.

use pettycash_tests::serde_json::{self, Value};
use pettycash_tests::TestApp;
use std::path::PathBuf;
use std::time::Duration;

const MIXED: [&str; 20] = [
    "GET /health/",
    "GET /api/requisitions/",
    "GET /api/treasury/payments/",
    "GET /api/dashboard/",
    "GET /api/funds/{id}/ledger",
    "GET /api/approvals/",
    "GET /api/funds/{id}",
    "GET /api/advances/",
    "GET /api/budgets?month=",
    "GET /api/treasury/payments/{id}",
    "GET /api/reports/cash-book?fund_id=&period= (json)",
    "GET /api/reports/spending?period= (json)",
    "GET /api/reports/transactions?from=&to=&format=csv (a year)",
    "GET /dashboard/ (page)",
    "GET /requisitions/ (page)",
    "POST /api/requisitions/ (create+submit)",
    "POST /api/requisitions/{id}/approve",
    "POST /api/treasury/payments/ (pay)",
    "POST /api/treasury/payments/code (+ outbox read)",
    "POST /api/treasury/payments/ (mobile money: payment execution)",
];

/// The commands' part of [`MIXED`].
const COMMANDS: usize = 15;

/// Every mobile-money payment the load started reached `succeeded` (the simulator's callback
/// paid it) and the requisitions are paid in the ledger's view.
async fn check_provider_payments(app: &TestApp, report: &Value) {
    let counts = report["provider_payments"].as_object().expect("provider_payments");
    let succeeded = counts.get("succeeded").and_then(Value::as_u64).unwrap_or(0);
    assert!(succeeded > 0, "no mobile-money payment succeeded: {report:#}");
    assert_eq!(counts.len(), 1, "every payment succeeded: {counts:?}");
    let paid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'RequisitionPaid'
           AND payload::text LIKE '%mobile_money%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(paid as u64 >= succeeded, "{paid} mobile-money RequisitionPaid events for {succeeded} payments");
}

/// Runs the load binary with `args` against `app` and returns its JSON report.
async fn run_load(app: &TestApp, name: &str, args: &[&str]) -> Value {
    let json = std::env::temp_dir().join(format!("pettycash-load-smoke-{}-{name}.json", std::process::id()));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-load"));
    command
        .args(["--url", &app.address, "--database-url", &app.database_url, "--json"])
        .arg(&json)
        .args(["--staff", "2", "--per-role", "1", "--funds", "2", "--seed-per-state", "1"])
        .args(args)
        .env_remove("DATABASE_URL")
        .kill_on_drop(true);
    // Generous: a hung tool fails the test instead of hanging it (the run itself is ~2 s).
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("pettycash-load did not finish within 300 s")
        .expect("run pettycash-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pettycash-load {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("p99 ms"), "no table on stdout:\n{stdout}");
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    report
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Every expected endpoint has requests, no unexpected errors, and ordered percentiles.
fn check(report: &Value, expected: &[&str]) {
    let endpoints = report["endpoints"].as_array().expect("endpoints");
    let names: Vec<&str> = endpoints.iter().map(|e| e["endpoint"].as_str().unwrap()).collect();
    assert_eq!(names, expected, "{report:#}");
    for e in endpoints {
        let name = &e["endpoint"];
        assert!(e["requests"].as_u64().unwrap() > 0, "{name}: no requests\n{report:#}");
        assert_eq!(e["errors"], 0, "{name}: unexpected errors: {}", e["error_samples"]);
        let [p50, p95, p99, max] = ["p50_ms", "p95_ms", "p99_ms", "max_ms"].map(|k| e[k].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p95 && p95 <= p99 && p99 <= max, "{name}: {p50} {p95} {p99} {max}");
    }
    assert_eq!(report["total"]["errors"], 0, "{report:#}");
    assert!(report["total"]["requests"].as_u64().unwrap() > 0);
    assert_eq!(report["health_after"]["status"], "ok", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_mixed_and_closed_loop_commands() {
    let app = TestApp::spawn().await;

    let open = run_load(&app, "open", &["--rate", "30", "--duration", "2", "--mix", "mixed"]).await;
    assert_eq!(open["mode"], "open");
    assert_eq!(open["open_loop"]["scheduled"], 60, "{open:#}");
    check(&open, &MIXED);
    check_provider_payments(&app, &open).await;

    let closed =
        run_load(&app, "closed", &["--connections", "2", "--duration", "2", "--mix", "commands"]).await;
    assert_eq!(closed["mode"], "closed");
    check(&closed, &MIXED[COMMANDS..]);
    check_provider_payments(&app, &closed).await;
    assert!(closed["total"]["commands"].as_u64().unwrap() > 0);
}

/// `--org`: the company is built over the API, the load's requisitions are routed through it
/// and every approval is sent by someone the step was routed to (an approval by anyone else
/// would be a 403, counted as an error by `check`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_mixed_through_an_organisation() {
    let app = TestApp::spawn().await;
    let org = ["--org", "2x2x2", "--org-users", "40", "--active-departments", "3"];
    let report = run_load(
        &app,
        "org",
        &[&["--rate", "30", "--duration", "2", "--mix", "mixed"][..], &org[..]].concat(),
    )
    .await;
    check(&report, &MIXED);
    check_provider_payments(&app, &report).await;
    let units: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'UnitOpened'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(units, 1 + 2 + 4 + 8, "company, regions, branches, departments");
    let routed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'RequisitionSubmitted'
           AND jsonb_array_length(payload->'RequisitionSubmitted'->'eligible'->0) = 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(routed > 0, "first steps routed to their department's one head");
}
