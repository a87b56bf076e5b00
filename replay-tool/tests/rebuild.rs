//! `pettycash-replay rebuild` end to end: a real history written through the HTTP API while
//! the service (with its projection workers) runs, then the real binary rebuilds the read
//! models beside the live ones and swaps them in.

use futures::StreamExt;
use pettycash_projections::{
    ALERTS_VERSION, BUDGETS_VERSION, CASH_VERSION, REPORT_FACTS_VERSION, REQUISITIONS_VERSION,
};
use pettycash_tests::serde_json::json;
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;
use sqlx::PgPool;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Bounds a hang; not a speed assertion.
const DEADLINE: Duration = Duration::from_secs(120);

/// Every read-model view with a column list that orders its rows completely.
/// Every read-model view: name, a total order of its rows, the version of its projection.
const VIEWS: [(&str, &str, i32); 11] = [
    ("rm_requisitions", "id", REQUISITIONS_VERSION),
    ("rm_funds", "id", CASH_VERSION),
    ("rm_ledger", "fund_id, position", CASH_VERSION),
    ("rm_payments", "payment_id", CASH_VERSION),
    ("rm_fund_daily", "fund_id, day", CASH_VERSION),
    ("rm_requisition_totals", "requester_id, status, currency", REQUISITIONS_VERSION),
    ("rm_paid_daily", "requester_id, day, currency", REQUISITIONS_VERSION),
    ("rm_budget_spend", "id", BUDGETS_VERSION),
    ("rm_report_requisitions", "id", REPORT_FACTS_VERSION),
    ("rm_report_funds", "id", REPORT_FACTS_VERSION),
    ("rm_report_advances", "requisition_id", REPORT_FACTS_VERSION),
];

const BIN: &str = env!("CARGO_BIN_EXE_pettycash-replay");

async fn replay(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("run pettycash-replay")
}

fn ok_stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A history of a few hundred commands through the HTTP API: three funds, 90 requisitions
/// (one in ten needing two approvers), most approved and paid, some rejected, some approved
/// and left unpaid. Returns the number of commands sent.
async fn history(app: &TestApp, c: &Cast) -> usize {
    let mut funds = Vec::new();
    for _ in 0..3 {
        funds.push(app.fund(&c.admin, "1000000").await);
    }
    let flows = futures::stream::iter(0..90usize)
        .map(|i| {
            let fund = funds[i % 3];
            async move {
                let amount = if i % 10 == 0 { format!("{}.50", 1_500 + i) } else { format!("{}.25", 10 + i) };
                let id = app.submitted(&c.staff, fund, &amount).await;
                let mut commands = 1;
                if i % 6 == 5 {
                    let r = app
                        .post(
                            &c.head,
                            &format!("/api/requisitions/{id}/reject"),
                            json!({"reason": "not in budget"}),
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::OK, "reject: {r:?}");
                    return commands + 1;
                }
                if i % 10 == 0 {
                    app.approve_by(id, &[&c.head, &c.gfm]).await;
                    commands += 2;
                } else {
                    app.approve_by(id, &[&c.head]).await;
                    commands += 1;
                }
                if i % 6 != 4 {
                    let r = app.pay(&c.treasury, id).await;
                    assert_eq!(r.status, StatusCode::CREATED, "pay: {r:?}");
                    commands += 1;
                }
                commands
            }
        })
        .buffer_unordered(6)
        .collect::<Vec<usize>>()
        .await;
    3 + flows.iter().sum::<usize>()
}

/// A requisition of 75 paid by mobile money through the simulator, its cash reserved and then
/// disbursed, and reconciled against `STMT-R1` by a second treasurer: the ledger lines of
/// cash projection version 4 (a reservation, a reconciled disbursement).
async fn reconciled_payment(app: &TestApp, c: &Cast) {
    let fund = app.fund(&c.admin, "1000").await;
    let id = app.submitted(&c.staff, fund, "75").await;
    app.approve_by(id, &[&c.head]).await;
    let msisdn = "254712000901";
    app.simulator.script(msisdn, pettycash_commands::providers::simulator::Script::result("0"));
    let r = app.request_code(&c.treasury, id, "mobile_money").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let code = app.queued_payment_code(&c.treasury.email, id).await;
    let body = json!({"requisition_id": id, "method": "mobile_money", "destination": msisdn, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let payment = r.id();
    let reconciler = app.user(&[pettycash_domain::Role::Treasury]).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let body = json!({"statement_reference": "STMT-R1"});
        let r = app.post(&reconciler, &format!("/api/treasury/payments/{payment}/reconcile"), body).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.body["error"]["code"], "not_reconcilable", "{r:?}");
        assert!(Instant::now() < deadline, "the payment never succeeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every live projection (the read models and the side-effecting `notifications` and `alerts`)
/// has applied the last event of the store.
async fn caught_up(pool: &PgPool) -> bool {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projection_checkpoints c
         WHERE c.state = 'live'
           AND (c.last_transaction_id, c.last_position) =
               (SELECT e.transaction_id, e.global_position FROM events e
                ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    n == pettycash_projections::replayable().len() as i64 + 2
}

async fn wait_caught_up(pool: &PgPool) {
    let deadline = Instant::now() + DEADLINE;
    while !caught_up(pool).await {
        assert!(
            Instant::now() < deadline,
            "the service's projections never caught up: {:?}",
            checkpoints(pool).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of every read-model view (through the views, as readers see them), as JSON text,
/// in a deterministic order.
async fn snapshot(pool: &PgPool) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for (view, order, _) in VIEWS {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(t)::text FROM {view} t ORDER BY {order}"))
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{view}: {e}"));
        all.push(rows);
    }
    all
}

/// `(name, version, generation, state, last_position, events_applied)` of every checkpoint.
async fn checkpoints(pool: &PgPool) -> Vec<(String, i32, i32, String, i64, i64)> {
    sqlx::query_as(
        "SELECT name, version, generation, state, last_position, events_applied
         FROM projection_checkpoints ORDER BY name, version, generation",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn states(rows: &[(String, i32, i32, String, i64, i64)]) -> Vec<(String, i32, i32, String)> {
    rows.iter().map(|r| (r.0.clone(), r.1, r.2, r.3.clone())).collect()
}

fn row(name: &str, version: i32, generation: i32, state: &str) -> (String, i32, i32, String) {
    (name.into(), version, generation, state.into())
}

async fn view_definition(pool: &PgPool, view: &str) -> String {
    sqlx::query_scalar(
        "SELECT definition FROM pg_views WHERE viewname = $1 AND schemaname = current_schema()",
    )
    .bind(view)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("view {view}: {e}"))
}

async fn table_exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(pool).await.unwrap()
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn rebuild_all_swaps_in_identical_read_models_while_the_service_serves() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let commands = history(&app, &c).await;
    assert!(commands >= 250, "a few hundred commands ({commands})");
    reconciled_payment(&app, &c).await;
    wait_caught_up(&app.pool).await;
    let before = snapshot(&app.pool).await;
    assert_eq!(before[0].len(), 91, "requisitions");
    assert_eq!(before[1].len(), 4, "funds");
    let lines =
        |kind: &str| before[2].iter().filter(|l| l.contains(&format!("\"kind\": \"{kind}\""))).count();
    assert_eq!(lines("reservation"), 1, "{:?}", before[2]);
    let reconciled = before[2].iter().filter(|l| l.contains("\"reconciled_reference\": \"STMT-R1\"")).count();
    assert_eq!(reconciled, 1, "{:?}", before[2]);
    assert!(before[3].len() >= 50, "payments: {}", before[3].len());
    assert_eq!(
        states(&checkpoints(&app.pool).await),
        [
            row("alerts", ALERTS_VERSION, 0, "live"),
            row("budgets", BUDGETS_VERSION, 0, "live"),
            row("cash", CASH_VERSION, 0, "live"),
            row("notifications", 1, 0, "live"),
            row("report_facts", REPORT_FACTS_VERSION, 0, "live"),
            row("requisitions", REQUISITIONS_VERSION, 0, "live"),
        ]
    );
    let events = event_count(&app.pool).await;

    let out = replay(&app.database_url, &["rebuild", "--all"]).await;
    let text = ok_stdout(&out);
    let names = [
        format!("requisitions v{REQUISITIONS_VERSION}"),
        format!("cash v{CASH_VERSION}"),
        format!("budgets v{BUDGETS_VERSION}"),
        format!("report_facts v{REPORT_FACTS_VERSION}"),
    ];
    for name in names {
        assert!(
            text.contains(&format!("{name}: building generation 1 (serving from generation 0)")),
            "{text}"
        );
        assert!(text.contains(&format!("{name}: generation 1 is live; {events} events applied")), "{text}");
        assert!(text.contains("events/s"), "{text}");
    }
    assert!(
        text.contains(&format!(
            "requisitions v{r}: dropped rm_requisitions_v{r}, rm_requisition_totals_v{r}, rm_paid_daily_v{r}\n",
            r = REQUISITIONS_VERSION
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "cash v{c}: dropped rm_funds_v{c}, rm_ledger_v{c}, rm_payments_v{c}, rm_fund_daily_v{c}\n",
            c = CASH_VERSION
        )),
        "{text}"
    );

    // Generation 1 is live, generation 0 retired, its tables gone; the views read generation 1.
    let rows = checkpoints(&app.pool).await;
    assert_eq!(
        states(&rows),
        [
            row("alerts", ALERTS_VERSION, 0, "live"),
            row("budgets", BUDGETS_VERSION, 0, "retired"),
            row("budgets", BUDGETS_VERSION, 1, "live"),
            row("cash", CASH_VERSION, 0, "retired"),
            row("cash", CASH_VERSION, 1, "live"),
            row("notifications", 1, 0, "live"),
            row("report_facts", REPORT_FACTS_VERSION, 0, "retired"),
            row("report_facts", REPORT_FACTS_VERSION, 1, "live"),
            row("requisitions", REQUISITIONS_VERSION, 0, "retired"),
            row("requisitions", REQUISITIONS_VERSION, 1, "live"),
        ]
    );
    for r in rows.iter().filter(|r| r.2 == 1) {
        assert_eq!(r.5, events, "{}: every event applied exactly once", r.0);
    }
    for (view, _, v) in VIEWS {
        let definition = view_definition(&app.pool, view).await;
        assert!(definition.contains(&format!("{view}_v{v}_g1")), "view {view}: {definition}");
        assert!(!table_exists(&app.pool, &format!("{view}_v{v}")).await, "{view}_v{v} was not dropped");
    }
    // The readers' indexes, built when the generation went live, as generation 0 had them.
    let indexes: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('rm_requisitions_v{REQUISITIONS_VERSION}_g1', \
         'rm_payments_v{CASH_VERSION}_g1') ORDER BY 1"
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for wanted in [
        format!("rm_requisitions_v{REQUISITIONS_VERSION}_g1_status_idx"),
        format!("rm_requisitions_v{REQUISITIONS_VERSION}_g1_inbox_idx"),
        format!("rm_payments_v{CASH_VERSION}_g1_paid_idx"),
    ] {
        assert!(indexes.contains(&wanted), "{wanted} missing: {indexes:?}");
    }
    // Exactly the same rows.
    let after = snapshot(&app.pool).await;
    for (i, (view, _, _)) in VIEWS.iter().enumerate() {
        assert_eq!(after[i], before[i], "{view} differs after the rebuild");
    }

    // The service still answers from the read models.
    for path in ["/api/funds/", "/api/requisitions/", "/api/treasury/payments/", "/api/dashboard/"] {
        let r = app.get(&c.auditor, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
    }
    let funds = app.get(&c.auditor, "/api/funds/").await;
    assert_eq!(funds.body["items"].as_array().map(Vec::len), Some(4), "{funds:?}");

    // New commands reach the new generation: the service's workers followed the rebuild
    // without a restart.
    let r = app
        .post(&c.admin, "/api/funds/", json!({"name": "After rebuild", "currency": "KES", "float": "50"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let (fund, position) = (r.id(), r.body["position"].as_i64().expect("position"));
    let requisition = app.submitted(&c.staff, fund, "12").await;
    let listed = app.get(&c.auditor, &format!("/api/funds/?min_position={position}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    let ids: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(ids.contains(&fund.to_string().as_str()), "new fund not listed: {listed:?}");
    wait_caught_up(&app.pool).await;
    let status: String = sqlx::query_scalar("SELECT status FROM rm_requisitions WHERE id = $1")
        .bind(requisition)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "pending_approval");
    let rows = checkpoints(&app.pool).await;
    // `notifications` and `alerts` are not rebuilt: their generation 0 stays live and follows
    // the store.
    for r in rows.iter().filter(|r| r.0 != "notifications" && r.0 != "alerts") {
        if r.2 == 0 {
            assert_eq!(
                (r.3.as_str(), r.5),
                ("retired", events),
                "{}: generation 0 moved after retiring",
                r.0
            );
        } else {
            assert!(r.4 >= position, "{}: generation 1 did not follow: {rows:?}", r.0);
        }
    }
}

#[tokio::test]
async fn an_interrupted_rebuild_resumes_the_same_generation() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    history(&app, &c).await;
    wait_caught_up(&app.pool).await;
    let before = snapshot(&app.pool).await;
    let events = event_count(&app.pool).await;

    // One event per transaction, and killed (SIGKILL) once its checkpoint has moved but
    // before it went live.
    let mut child = tokio::process::Command::new(BIN)
        .args(["rebuild", "--projection", "requisitions", "--projection", "cash", "--batch-size", "1"])
        .env("DATABASE_URL", &app.database_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start pettycash-replay");
    let deadline = Instant::now() + DEADLINE;
    let interrupted_at = loop {
        let g1: Option<(String, i64)> = sqlx::query_as(
            "SELECT state, last_position FROM projection_checkpoints
             WHERE name = 'requisitions' AND version = $1 AND generation = 1",
        )
        .bind(REQUISITIONS_VERSION)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        match g1 {
            Some((state, position)) if state == "building" && position > 0 => {
                child.kill().await.expect("kill the rebuild");
                break position;
            }
            Some((state, _)) if state != "building" => {
                panic!("the rebuild finished before it was interrupted")
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the rebuild never moved its checkpoint");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    let (state, position, applied): (String, i64, i64) = sqlx::query_as(
        "SELECT state, last_position, events_applied FROM projection_checkpoints
         WHERE name = 'requisitions' AND version = $1 AND generation = 1",
    )
    .bind(REQUISITIONS_VERSION)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(state, "building");
    assert!(position >= interrupted_at && applied > 0 && applied < events, "{position} {applied}/{events}");
    // The service still serves generation 0.
    for (view, _, _) in VIEWS {
        let definition = view_definition(&app.pool, view).await;
        assert!(!definition.contains("_g1"), "view {view} switched by an interrupted rebuild: {definition}");
    }
    assert_eq!(snapshot(&app.pool).await, before);

    // Again: it resumes generation 1 where the killed run left it (keeping the old tables).
    let out = replay(&app.database_url, &["rebuild", "--all", "--keep-old"]).await;
    let text = ok_stdout(&out);
    assert!(
        text.contains(&format!(
            "requisitions v{REQUISITIONS_VERSION}: resuming generation 1 from position {position} ({applied} events applied so far; \
             serving from generation 0)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "requisitions v{REQUISITIONS_VERSION}: generation 1 is live; {} events applied",
            events - applied
        )),
        "{text}"
    );
    // cash was rebuilt side by side: killed before it started, or resumed, never a new one.
    assert!(
        text.contains(&format!("cash v{CASH_VERSION}: building generation 1 (serving from generation 0)"))
            || text.contains(&format!("cash v{CASH_VERSION}: resuming generation 1 from position")),
        "{text}"
    );

    let rows = checkpoints(&app.pool).await;
    assert_eq!(
        states(&rows),
        [
            row("alerts", ALERTS_VERSION, 0, "live"),
            row("budgets", BUDGETS_VERSION, 0, "retired"),
            row("budgets", BUDGETS_VERSION, 1, "live"),
            row("cash", CASH_VERSION, 0, "retired"),
            row("cash", CASH_VERSION, 1, "live"),
            row("notifications", 1, 0, "live"),
            row("report_facts", REPORT_FACTS_VERSION, 0, "retired"),
            row("report_facts", REPORT_FACTS_VERSION, 1, "live"),
            row("requisitions", REQUISITIONS_VERSION, 0, "retired"),
            row("requisitions", REQUISITIONS_VERSION, 1, "live"),
        ],
        "no second generation was started"
    );
    for r in rows.iter().filter(|r| r.2 == 1) {
        assert_eq!(r.5, events, "{}: every event applied exactly once across both runs", r.0);
    }
    for (view, _, v) in VIEWS {
        let definition = view_definition(&app.pool, view).await;
        assert!(definition.contains(&format!("{view}_v{v}_g1")), "view {view}: {definition}");
        assert!(table_exists(&app.pool, &format!("{view}_v{v}")).await, "--keep-old dropped {view}_v{v}");
    }
    assert!(
        text.contains(&format!(
            "requisitions v{REQUISITIONS_VERSION}: kept the tables of retired generations (--keep-old)"
        )),
        "{text}"
    );
    assert_eq!(snapshot(&app.pool).await, before);
}

#[tokio::test]
async fn rebuild_usage_errors_exit_2_a_first_build_is_generation_0_and_other_versions_refuse() {
    let (url, pool) = pettycash_tests::fresh_database().await;

    for args in [
        &["rebuild"][..],
        &["rebuild", "--all", "--projection", "cash"],
        &["rebuild", "--projection", "nope"],
        &["rebuild", "--all", "--batch-size", "0"],
        &["rebuild", "--all", "--batch-size", "many"],
    ] {
        let out = replay(&url, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = replay(&url, &["rebuild", "--projection", "nope"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requisitions") && stderr.contains("cash"), "names the known ones: {stderr}");
    let help = ok_stdout(&replay(&url, &["rebuild", "--help"]).await);
    assert!(help.contains("write access"), "{help}");
    let none: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints").fetch_one(&pool).await.unwrap();
    assert_eq!(none, 0, "a usage error must not touch the database");

    // A database no worker has run on yet: the first build is generation 0.
    let text = ok_stdout(&replay(&url, &["rebuild", "--projection", "cash"]).await);
    let cash = format!("cash v{CASH_VERSION}");
    assert!(text.contains(&format!("{cash}: building generation 0 (none live yet)")), "{text}");
    assert!(text.contains(&format!("{cash}: generation 0 is live")), "{text}");
    assert_eq!(states(&checkpoints(&pool).await), [row("cash", CASH_VERSION, 0, "live")]);
    let definition = view_definition(&pool, "rm_funds").await;
    assert!(
        definition.contains(&format!("rm_funds_v{CASH_VERSION}")) && !definition.contains("_g"),
        "{definition}"
    );

    // A tool whose version is not the deployed one refuses (exit 1) and touches nothing: here
    // a newer version of `cash` is live, and an older version 0 of `requisitions` is live
    // while this tool's version never ran.
    sqlx::raw_sql("UPDATE projection_checkpoints SET state = 'retired'").execute(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, version, generation, state)
         VALUES ('cash', $1, 0, 'live'), ('requisitions', 0, 0, 'live')",
    )
    .bind(CASH_VERSION + 1)
    .execute(&pool)
    .await
    .unwrap();
    let before = checkpoints(&pool).await;
    let newer_cash = format!(
        "cash: version {} is live and this pettycash-replay builds version {CASH_VERSION}",
        CASH_VERSION + 1
    );
    let older_requisitions = format!(
        "requisitions: version 0 is live and this pettycash-replay builds version {REQUISITIONS_VERSION}"
    );
    for (name, message) in [("cash", newer_cash.as_str()), ("requisitions", older_requisitions.as_str())] {
        let out = replay(&url, &["rebuild", "--projection", name]).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{out:?}");
    }
    assert_eq!(checkpoints(&pool).await, before);
}

#[tokio::test]
async fn rebuild_all_sends_no_mail_again() {
    let smtp = pettycash_tests::MailServer::start().await;
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "100000").await;
    let id = app.submitted(&c.staff, fund, "100").await;
    app.approve_by(id, &[&c.head]).await;
    wait_caught_up(&app.pool).await;
    // Approval requested (head), approved (staff), ready for payment (treasury).
    let mails = smtp.wait_for(3).await;
    let outbox = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM mail_outbox").fetch_one(&pool).await.unwrap()
    };
    assert_eq!(outbox(app.pool.clone()).await, 3);

    ok_stdout(&replay(&app.database_url, &["rebuild", "--all"]).await);
    wait_caught_up(&app.pool).await;

    assert_eq!(smtp.after(Duration::from_millis(1500)).await.len(), mails.len(), "nothing mailed again");
    assert_eq!(outbox(app.pool.clone()).await, 3, "nothing enqueued again");
    let notifications: Vec<_> =
        states(&checkpoints(&app.pool).await).into_iter().filter(|r| r.0 == "notifications").collect();
    assert_eq!(notifications, [row("notifications", 1, 0, "live")], "not rebuilt");
}
