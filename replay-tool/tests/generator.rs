//! Smoke test of the benchmark data generator, `bench/generate_events.sql` (no timing): on a
//! fresh database it writes a history with every path a requisition can take, the real
//! `pettycash-replay verify` finds no violation in it, its users can sign in over HTTP with
//! the bench password, and the service's own commands carry on from it (an approval and a
//! payment), after which it still verifies clean; with an organisation, routed as the service
//! routes; and its cash counts, advances and budgets are those the service would record and
//! fill the treasury and budget reports.

use pettycash_api::startup::Application;
use pettycash_tests::serde_json::{self, json, Value};
use pettycash_tests::{Config, DEV_SECRET_KEY};
use reqwest::StatusCode;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/generate_events.sql");
/// Every generated user's password (documented in the generator).
const BENCH_PASSWORD: &str = "bench password 2026";

/// Runs the generator through psql, as the benchmarks do.
async fn generate(url: &str, funds: u32, requisitions: u32) {
    generate_with(url, &[("funds", &funds.to_string()), ("requisitions", &requisitions.to_string())]).await
}

/// Runs the generator with these psql variables.
async fn generate_with(url: &str, vars: &[(&str, &str)]) {
    let mut command = tokio::process::Command::new("psql");
    command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    for (name, value) in vars {
        command.arg("-v").arg(format!("{name}={value}"));
    }
    let out = command.args(["-f", GENERATOR, url]).output().await;
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "psql is not installed (or not on PATH): this test runs bench/generate_events.sql with it. \
             Install the PostgreSQL client (apt-get install postgresql-client)"
        ),
        Err(e) => panic!("could not run psql: {e}"),
    };
    assert!(
        out.status.success(),
        "bench/generate_events.sql failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pettycash-replay verify --format json`: asserts exit 0 and no violation; returns the summary.
async fn verify_clean(url: &str) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(["verify", "--format", "json"])
        .env("DATABASE_URL", url)
        .env("SEAL_KEY", DEV_SECRET_KEY)
        .env_remove("SECRET_KEY")
        .output()
        .await
        .expect("run pettycash-replay");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report["summary"]["violations"], 0, "{report}");
    assert_eq!(report["violations"], json!([]));
    report["summary"].clone()
}

async fn scalar<T>(pool: &PgPool, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Each fund's latest recorded balance (its float until something moved): the movements that
/// record a `balance_after`.
const BALANCES: &str = "SELECT DISTINCT ON (aggregate_id) aggregate_id,
            coalesce(payload->event_type->>'balance_after', payload->'FundOpened'->>'float')::numeric AS balance
     FROM events WHERE aggregate_type = 'fund'
       AND event_type IN ('FundOpened', 'CashDisbursed', 'ReplenishmentFunded', 'VarianceAdjusted', 'AdvanceCashReturned')
     ORDER BY aggregate_id, sequence DESC";

/// The read models a rebuild makes that these tests read.
const READ_MODELS: [&str; 4] = ["requisitions", "cash", "budgets", "report_facts"];

/// `pettycash-replay rebuild --all` (exit 0), until its read models include the store's last
/// event. A rebuild sees only the events committed before the oldest transaction still running
/// on the cluster: while another test's generator holds one open (seconds, on another
/// database), it goes live without the newer events, and with no service running nothing
/// carries them on; so it is run again until it sees them all.
async fn rebuild_all(url: &str, pool: &PgPool) {
    let last: i64 = scalar(pool, "SELECT max(global_position) FROM events").await;
    for _ in 0..30 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
            .args(["rebuild", "--all"])
            .env("DATABASE_URL", url)
            .output()
            .await
            .expect("run pettycash-replay rebuild");
        assert_eq!(out.status.code(), Some(0), "rebuild: {}", String::from_utf8_lossy(&out.stderr));
        let timeout = std::time::Duration::ZERO;
        if pettycash_projections::wait::wait_for(pool, &READ_MODELS, last, timeout).await.unwrap() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("the rebuilt read models never reached the store's last event ({last})");
}

/// `pettycash-replay rebuild --all`, then the cash read models against the cash book: each
/// fund's balance its latest recorded `balance_after` (or its float), nothing left reserved,
/// the settings the funds were opened with, and the payments by method.
async fn rebuild_agrees_with_the_cash_book(url: &str, pool: &PgPool, cash: i64, mobile_money: i64) {
    rebuild_all(url, pool).await;
    let disagreeing: i64 = scalar(
        pool,
        &format!(
            "WITH book AS (SELECT aggregate_id::uuid AS id, balance FROM ({BALANCES}) b)
             SELECT count(*) FROM book b FULL JOIN rm_funds f USING (id)
             WHERE f.balance IS DISTINCT FROM b.balance OR f.reorder_level IS NULL
                OR f.minimum_balance <> 0"
        ),
    )
    .await;
    assert_eq!(disagreeing, 0, "rm_funds disagrees with the cash book");
    let reserved: rust_decimal::Decimal = scalar(pool, "SELECT sum(reserved) FROM rm_funds").await;
    assert!(reserved.is_zero(), "{reserved} still reserved");
    let payments: Vec<(String, i64)> =
        sqlx::query_as("SELECT method, count(*) FROM rm_payments GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    let want = [("cash", cash), ("mobile_money", mobile_money)];
    assert_eq!(payments, want.map(|(m, n)| (m.to_string(), n)));
}

/// Each requisition's last event: (id, event type, payload of that event).
const LAST_EVENTS: &str = "SELECT DISTINCT ON (aggregate_id) aggregate_id, event_type, payload FROM events
                           WHERE aggregate_type = 'requisition' ORDER BY aggregate_id, sequence DESC";

struct Api {
    client: reqwest::Client,
    address: String,
}

impl Api {
    async fn send(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Signs in with the bench password; returns the token and `/api/me`.
    async fn login(&self, email: &str) -> (String, Value) {
        let (status, body) = self
            .send(
                None,
                reqwest::Method::POST,
                "/api/auth/login",
                Some(json!({"email": email, "password": BENCH_PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        let token = body["token"].as_str().expect("token").to_string();
        let (status, me) = self.send(Some(&token), reqwest::Method::GET, "/api/me", None).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        (token, me)
    }
}

#[tokio::test]
async fn generated_history_covers_every_path_verifies_clean_and_serves() {
    let (url, pool) = pettycash_tests::fresh_database().await;
    generate(&url, 5, 300).await;

    // --- verify: zero violations, every event seen -------------------------------------------
    let summary = verify_clean(&url).await;
    let events: i64 = scalar(&pool, "SELECT count(*) FROM events").await;
    assert_eq!(summary["events"], events);
    assert_eq!(summary["hashed_events"], events, "every event hashed by the trigger");
    assert_eq!(summary["authenticated_events"], events, "every event signed as the service would");
    assert_eq!(summary["aggregates"]["requisition"], 300);
    assert_eq!(summary["funds"], 5);

    // --- every event type, every path --------------------------------------------------------
    let counts: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT event_type, count(*) FROM events GROUP BY event_type")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for t in [
        "UserRegistered",
        "RoleGranted",
        "RoleRevoked",
        "FundOpened",
        "CashDisbursed",
        "RequisitionCreated",
        "RequisitionEdited",
        "RequisitionSubmitted",
        "RequisitionApproved",
        "RequisitionRejected",
        "ChangesRequested",
        "RequisitionCancelled",
        "RequisitionPaid",
        "PaymentStarted",
        "CashReserved",
        "ReplenishmentRequested",
        "ReplenishmentApproved",
        "ReplenishmentFunded",
        "SettingChanged",
        "CashCounted",
        "VarianceAdjusted",
        "VarianceRejected",
        "AdvanceRequested",
        "AdvanceIssued",
        "AdvanceSettled",
        "AdvanceCashReturned",
        "AdvanceOverdue",
        "ReceiptOverdue",
    ] {
        assert!(counts.get(t).copied().unwrap_or(0) > 0, "no {t} generated: {counts:?}");
    }
    assert_eq!(counts["RequisitionPaid"], counts["CashDisbursed"]);
    assert_eq!(counts["ReplenishmentRequested"], counts["ReplenishmentFunded"]);
    assert_eq!(counts["ReplenishmentApproved"], counts["ReplenishmentFunded"]);
    // Raised automatically by the disbursement (or approved shortage) that took the fund below
    // its reorder level (a quarter of the float), for float − balance, in the same command.
    let raised_wrongly: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events r
         JOIN events d ON d.aggregate_id = r.aggregate_id AND d.sequence = r.sequence - 1
         JOIN events o ON o.aggregate_id = r.aggregate_id AND o.sequence = 1
         WHERE r.event_type = 'ReplenishmentRequested' AND NOT (
               (d.event_type = 'CashDisbursed' OR (d.event_type = 'VarianceAdjusted'
                                                   AND d.payload->'VarianceAdjusted'->'approved_by' <> 'null'))
           AND d.recorded_at = r.recorded_at
           AND d.metadata->>'request_id' = r.metadata->>'request_id'
           AND r.payload->'ReplenishmentRequested'->>'replenishment_id'
               = coalesce(d.payload->'CashDisbursed'->>'payment_id', d.payload->'VarianceAdjusted'->>'count_id')
           AND r.payload->'ReplenishmentRequested'->'requested_by' = 'null'
           AND (r.payload->'ReplenishmentRequested'->>'balance')::numeric = (d.payload->d.event_type->>'balance_after')::numeric
           AND (r.payload->'ReplenishmentRequested'->>'balance')::numeric < (o.payload->'FundOpened'->>'reorder_level')::numeric
           AND (r.payload->'ReplenishmentRequested'->>'amount')::numeric
               = (o.payload->'FundOpened'->>'float')::numeric - (d.payload->d.event_type->>'balance_after')::numeric
           AND (o.payload->'FundOpened'->>'auto_replenish')::bool)",
    )
    .await;
    assert_eq!(raised_wrongly, 0);

    // --- what the code writes today: current versions, payments through the provider ---------
    let versions: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT event_type, event_version, count(*) FROM events
         WHERE event_type IN ('FundOpened', 'CashDisbursed', 'CashReserved', 'PaymentStarted')
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let started = counts["PaymentStarted"];
    let want = [
        ("CashDisbursed", "2", counts["CashDisbursed"]),
        ("CashReserved", "1", started),
        ("FundOpened", "3", 5),
        ("PaymentStarted", "1", started),
    ];
    assert_eq!(versions, want.map(|(t, v, n)| (t.to_string(), v.to_string(), n)));
    // About one payment in four by mobile money.
    let share = started as f64 / counts["RequisitionPaid"] as f64;
    assert!((0.15..0.35).contains(&share), "{started} of {} paid by mobile money", counts["RequisitionPaid"]);
    // Each started payment: PaymentStarted then RequisitionPaid (mobile money, same payer and
    // payment) on the requisition, CashReserved then a CashDisbursed consuming exactly the
    // reservation on the fund, and its provider_payments row, succeeded with the receipt the
    // disbursement records. Cash disbursements consume nothing.
    let consistent: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events s
         JOIN events p ON p.aggregate_id = s.aggregate_id AND p.event_type = 'RequisitionPaid'
          AND p.sequence = s.sequence + 1
         JOIN events r ON r.event_type = 'CashReserved'
          AND r.payload->'CashReserved'->>'payment_id' = s.payload->'PaymentStarted'->>'payment_id'
         JOIN events d ON d.event_type = 'CashDisbursed' AND d.aggregate_id = r.aggregate_id
          AND d.payload->'CashDisbursed'->>'payment_id' = s.payload->'PaymentStarted'->>'payment_id'
         JOIN provider_payments pp ON pp.id = (s.payload->'PaymentStarted'->>'payment_id')::uuid
         WHERE s.event_type = 'PaymentStarted'
           AND p.payload->'RequisitionPaid'->>'method' = 'mobile_money'
           AND p.payload->'RequisitionPaid'->>'payment_id' = s.payload->'PaymentStarted'->>'payment_id'
           AND p.payload->'RequisitionPaid'->>'paid_by' = s.payload->'PaymentStarted'->>'paid_by'
           AND r.aggregate_id = s.payload->'PaymentStarted'->>'fund_id' AND r.sequence < d.sequence
           AND r.recorded_at = s.recorded_at AND d.recorded_at = p.recorded_at AND s.recorded_at < p.recorded_at
           AND d.payload->'CashDisbursed'->>'reserved' = r.payload->'CashReserved'->>'amount'
           AND d.payload->'CashDisbursed'->>'amount' = r.payload->'CashReserved'->>'amount'
           AND d.payload->'CashDisbursed'->>'method' = 'mobile_money'
           AND pp.status = 'succeeded' AND pp.method = 'mobile_money' AND pp.requisition_id::text = s.aggregate_id
           AND pp.fund_id::text = r.aggregate_id AND pp.amount = (r.payload->'CashReserved'->>'amount')::numeric
           AND pp.provider_reference = d.payload->'CashDisbursed'->>'reference'
           AND pp.paid_by::text = s.payload->'PaymentStarted'->>'paid_by' AND pp.destination ~ '^2547[0-9]{8}$'",
    )
    .await;
    assert_eq!(consistent, started, "every mobile-money payment complete and consistent");
    let provider_rows: i64 = scalar(&pool, "SELECT count(*) FROM provider_payments").await;
    assert_eq!(provider_rows, started);
    let cash_consuming: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'
           AND (payload->'CashDisbursed'->>'method' = 'cash') <> (payload->'CashDisbursed'->'reserved' = 'null')",
    )
    .await;
    assert_eq!(cash_consuming, 0, "cash consumes no reservation, mobile money always does");

    let roles: BTreeSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT jsonb_array_elements_text(payload->'UserRegistered'->'roles') FROM events
         WHERE event_type = 'UserRegistered'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(roles.len(), 11, "users of every role: {roles:?}");

    let chain_lengths: BTreeSet<i32> = sqlx::query_scalar(
        "SELECT DISTINCT jsonb_array_length(payload->'RequisitionSubmitted'->'chain') FROM events
         WHERE event_type = 'RequisitionSubmitted'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(chain_lengths, BTreeSet::from([1, 2, 3]), "approval chains of 1, 2 and 3 steps");

    let currencies: i64 = scalar(
        &pool,
        "SELECT count(DISTINCT payload->'FundOpened'->>'currency') FROM events WHERE event_type = 'FundOpened'",
    )
    .await;
    assert!(currencies >= 3, "funds in several currencies: {currencies}");

    // Changes requested, then edited, resubmitted, approved and paid.
    let resubmitted_and_paid: i64 = scalar(
        &pool,
        "SELECT count(*) FROM (SELECT aggregate_id FROM events WHERE aggregate_type = 'requisition'
         GROUP BY aggregate_id
         HAVING bool_or(event_type = 'ChangesRequested') AND bool_or(event_type = 'RequisitionEdited')
            AND count(*) FILTER (WHERE event_type = 'RequisitionSubmitted') = 2
            AND bool_or(event_type = 'RequisitionPaid')) x",
    )
    .await;
    assert!(resubmitted_and_paid > 0, "no requisition was sent back, edited, resubmitted and paid");

    // Open states at the end of the history, from each requisition's last event.
    let last: Vec<(String, String, Value)> = sqlx::query_as(LAST_EVENTS).fetch_all(&pool).await.unwrap();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, event_type, payload) in &last {
        let state = match event_type.as_str() {
            "RequisitionCreated" => "draft",
            "RequisitionSubmitted" => "pending_approval (no approval yet)",
            "RequisitionApproved" if payload["RequisitionApproved"]["completes_chain"] == json!(true) => {
                "approved, unpaid"
            }
            "RequisitionApproved" => "pending_approval (partly approved)",
            "ChangesRequested" => "changes_requested",
            "RequisitionEdited" => "edited (draft or sent back)",
            // The scheduler's reminder about the receipt follows the payment.
            "RequisitionPaid" | "ReceiptOverdue" => "paid",
            "RequisitionRejected" => "rejected",
            "RequisitionCancelled" => "cancelled",
            other => panic!("unexpected last event {other}"),
        };
        *states.entry(state).or_default() += 1;
    }
    for state in [
        "draft",
        "pending_approval (no approval yet)",
        "pending_approval (partly approved)",
        "approved, unpaid",
        "changes_requested",
        "paid",
        "rejected",
        "cancelled",
    ] {
        assert!(states.get(state).copied().unwrap_or(0) > 0, "no requisition ends {state}: {states:?}");
    }

    // --- receipt reminders: the scheduler's, recorded once, as it would have ---------------------
    // Each right after its payment (the requisition's next event), the default 3 days (plus a
    // tick's delay) later, from the scheduler, and noted in `receipt_reminder_checks`; every
    // payment whose reminder fell before the last payment has one.
    let reminders_wrong: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events o
         LEFT JOIN events p ON p.aggregate_id = o.aggregate_id AND p.sequence = o.sequence - 1
          AND p.event_type = 'RequisitionPaid'
         LEFT JOIN receipt_reminder_checks c ON c.requisition_id = o.aggregate_id::uuid
         WHERE o.event_type = 'ReceiptOverdue' AND NOT (
               p.aggregate_id IS NOT NULL AND o.payload = '{\"ReceiptOverdue\": {\"days\": 3}}'
           AND o.recorded_at BETWEEN p.recorded_at + interval '3 days 30 seconds' AND p.recorded_at + interval '3 days 10 minutes'
           AND o.metadata->>'actor_id' = 'operator' AND o.metadata->>'user_agent' LIKE '% scheduler'
           AND c.checked_at = o.recorded_at)",
    )
    .await;
    assert_eq!(reminders_wrong, 0);
    let checks: i64 = scalar(&pool, "SELECT count(*) FROM receipt_reminder_checks").await;
    assert_eq!(checks, counts["ReceiptOverdue"]);
    let unreminded_early: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events p WHERE p.event_type = 'RequisitionPaid'
           AND p.recorded_at + interval '3 days 10 minutes'
               < (SELECT max(recorded_at) FROM events WHERE event_type = 'RequisitionPaid')
           AND NOT EXISTS (SELECT 1 FROM events o WHERE o.aggregate_id = p.aggregate_id AND o.event_type = 'ReceiptOverdue')",
    )
    .await;
    assert_eq!(unreminded_early, 0, "a payment old enough without its reminder");
    // What the service's scheduler still has to remind about: the last few days' payments.
    let unreminded: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events p WHERE p.event_type = 'RequisitionPaid'
           AND NOT EXISTS (SELECT 1 FROM events o WHERE o.aggregate_id = p.aggregate_id AND o.event_type = 'ReceiptOverdue')",
    )
    .await;

    // The users table matches the user events; every user has a credential.
    let users: i64 = scalar(&pool, "SELECT count(*) FROM users").await;
    let credentials: i64 = scalar(&pool, "SELECT count(*) FROM credentials").await;
    assert_eq!(users, counts["UserRegistered"]);
    assert_eq!(credentials, users);

    // --- the HTTP API on the generated database ----------------------------------------------
    let mut config = Config::development();
    config.database_url = Some(url.clone().into());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.seal_interval_secs = 3600;
    // Its one tick at start-up finds no read model yet; the test's own tick below is the next.
    config.scheduler_interval_secs = 3600;
    // Mail waits in the outbox: nothing is written into the crate's folder.
    config.mail.transport = pettycash_api::config::MailTransportConfig::Queue;
    let app = Application::build(config, pool.clone()).await.expect("build app");
    let service = app.state().commands.clone();
    let api = Api {
        client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap(),
        address: format!("http://127.0.0.1:{}", app.port()),
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let (_, me) = api.login("admin.1@bench.example").await;
    assert_eq!(me["roles"], json!(["admin"]));
    // Granted department_head halfway through the history: roles as of the latest event.
    let (_, me) = api.login("staff.1@bench.example").await;
    assert_eq!(me["roles"], json!(["staff", "department_head"]));
    let (head, me) = api.login("department_head.2@bench.example").await;
    let head_id = me["id"].as_str().unwrap().to_string();
    let (treasurer, _) = api.login("treasury.2@bench.example").await;

    // A department head approves a requisition waiting for its first approval.
    let pending: Uuid = sqlx::query_scalar::<_, String>(&format!(
        "SELECT aggregate_id FROM ({LAST_EVENTS}) l WHERE event_type = 'RequisitionSubmitted'
           AND payload->'RequisitionSubmitted'->>'submitted_by' <> $1 ORDER BY aggregate_id LIMIT 1"
    ))
    .bind(&head_id)
    .fetch_one(&pool)
    .await
    .unwrap()
    .parse()
    .unwrap();
    let (status, body) = api
        .send(
            Some(&head),
            reqwest::Method::POST,
            &format!("/api/requisitions/{pending}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "approve {pending}: {body}");

    // Treasury pays an approved requisition its fund can still cover (not an advance: its
    // payment would also issue the advance).
    let payable: Uuid = sqlx::query_scalar::<_, String>(&format!(
        "WITH balances AS (SELECT aggregate_id AS fund_id, balance FROM ({BALANCES}) b),
         amounts AS (
             SELECT DISTINCT ON (aggregate_id) aggregate_id, (payload->'RequisitionSubmitted'->>'amount')::numeric AS amount
             FROM events WHERE event_type = 'RequisitionSubmitted' ORDER BY aggregate_id, sequence DESC),
         funds AS (
             SELECT aggregate_id, payload->'RequisitionCreated'->>'fund_id' AS fund_id FROM events
             WHERE event_type = 'RequisitionCreated')
         SELECT l.aggregate_id FROM ({LAST_EVENTS}) l
         JOIN amounts a USING (aggregate_id) JOIN funds f USING (aggregate_id) JOIN balances b USING (fund_id)
         WHERE l.event_type = 'RequisitionApproved' AND (l.payload->'RequisitionApproved'->>'completes_chain')::bool
           AND a.amount <= b.balance
           AND NOT EXISTS (SELECT 1 FROM events v WHERE v.event_type = 'AdvanceRequested'
                           AND v.payload->'AdvanceRequested'->>'requisition_id' = l.aggregate_id)
         ORDER BY l.aggregate_id LIMIT 1"
    ))
    .fetch_one(&pool)
    .await
    .unwrap()
    .parse()
    .unwrap();
    // With a one-time code, read where the service without a mail server keeps it: the outbox.
    let (status, body) = api
        .send(
            Some(&treasurer),
            reqwest::Method::POST,
            "/api/treasury/payments/code",
            Some(json!({"requisition_id": payable, "method": "cash"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "code for {payable}: {body}");
    let mail: String = sqlx::query_scalar(
        "SELECT body_text FROM mail_outbox WHERE category = 'payment_code' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let code = pettycash_tests::payment_code_in(&mail).expect("a code in the mail");
    let (status, body) = api
        .send(
            Some(&treasurer),
            reqwest::Method::POST,
            "/api/treasury/payments/",
            Some(json!({"requisition_id": payable, "method": "cash", "reference": "SMOKE-1", "code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "pay {payable}: {body}");

    // The commands appended after the generated history, and it all still verifies.
    let summary = verify_clean(&url).await;
    let appended: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT event_type, count(*) FROM events WHERE global_position > {events} GROUP BY 1 ORDER BY 1"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        summary["events"],
        events + 4,
        "one approval, one code issued, one payment (two events): {appended:?}"
    );

    // --- a projection rebuild agrees with the cash book ------------------------------------------
    // After the service's commands (its scheduler reads the read models: built earlier, they
    // would have it act on the history's receipts before the counts above).
    rebuild_agrees_with_the_cash_book(&url, &pool, counts["CashDisbursed"] - started + 1, started).await;

    // On the built read models the service's scheduler reminds only the payments the history
    // left unreminded, once (not the one paid above: it is not 3 days old), and never again.
    let tick = pettycash_commands::scheduler::tick(&service).await.unwrap();
    assert_eq!(tick.receipt_reminders as i64, unreminded);
    assert_eq!(pettycash_commands::scheduler::tick(&service).await.unwrap().receipt_reminders, 0);
    let reminded: i64 =
        scalar(&pool, "SELECT count(*) FROM events WHERE event_type = 'ReceiptOverdue'").await;
    assert_eq!(reminded, counts["ReceiptOverdue"] + unreminded);
}

/// The generator with an organisation (2 regions × 2 branches × 2 departments): units opened
/// and kept in `org_units`, users placed in them, funds owned by branches, requisitions
/// scoped to their requester's department and routed to its heads (version 2 submissions with
/// threshold and eligible people), all verifying clean, and a routed head can approve over
/// HTTP.
#[tokio::test]
async fn generated_organisation_routes_to_the_requesters_department_and_verifies_clean() {
    let (url, pool) = pettycash_tests::fresh_database().await;
    generate_with(
        &url,
        &[("funds", "6"), ("requisitions", "300"), ("regions", "2"), ("branches", "2"), ("departments", "2")],
    )
    .await;

    // verify recomputes every route (`route_mismatch`) and checks every decider against it.
    let summary = verify_clean(&url).await;
    let events: i64 = scalar(&pool, "SELECT count(*) FROM events").await;
    assert_eq!(summary["events"], events);
    assert_eq!(summary["authenticated_events"], events, "every event signed as the service would");
    assert_eq!(summary["aggregates"]["org_unit"], 1 + 2 + 4 + 8 + 8, "a cost centre per department");
    assert_eq!(summary["aggregates"]["requisition"], 300);

    // The units, as events and as the service's table.
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->'UnitOpened'->>'kind', count(*) FROM events WHERE event_type = 'UnitOpened'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let want = [("branch", 4), ("company", 1), ("cost_centre", 8), ("department", 8), ("region", 2)];
    assert_eq!(kinds, want.map(|(k, n)| (k.to_string(), n)));
    let table: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM org_units WHERE NOT closed GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(table, kinds);

    // Every user but admin.1 (who opened the units) is placed, by a UnitAssigned event and in
    // the users table; every department has a department head.
    let users: i64 = scalar(&pool, "SELECT count(*) FROM users").await;
    let unplaced: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE unit_id IS NULL").fetch_all(&pool).await.unwrap();
    assert_eq!(unplaced, ["admin.1@bench.example"]);
    let assigned: i64 = scalar(&pool, "SELECT count(*) FROM events WHERE event_type = 'UnitAssigned'").await;
    assert_eq!(assigned, users - 1);
    let headless: i64 = scalar(
        &pool,
        "SELECT count(*) FROM org_units d WHERE d.kind = 'department' AND NOT EXISTS
           (SELECT 1 FROM users u WHERE u.department_id = d.id AND 'department_head' = ANY (u.roles))",
    )
    .await;
    assert_eq!(headless, 0, "every department has a head");

    // Funds belong to branches (version 3, with the unit).
    let unowned: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events e WHERE e.event_type = 'FundOpened' AND (e.event_version <> '3'
           OR NOT EXISTS (SELECT 1 FROM org_units b WHERE b.kind = 'branch'
                          AND b.id = (e.payload->'FundOpened'->'unit'->>'unit_id')::uuid))",
    )
    .await;
    assert_eq!(unowned, 0, "every fund is owned by a branch");

    // Requisitions carry their requester's unit (a department) and origin; submissions are
    // version 2 with the default policy's threshold and one non-empty list per step.
    let unscoped: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events e JOIN users u ON u.id = (e.payload->'RequisitionCreated'->>'requester_id')::uuid
         WHERE e.event_type = 'RequisitionCreated' AND (e.event_version <> '2'
           OR e.payload->'RequisitionCreated'->>'origin' IS DISTINCT FROM 'branch'
           OR (e.payload->'RequisitionCreated'->'unit'->>'department')::uuid IS DISTINCT FROM u.department_id)",
    )
    .await;
    assert_eq!(unscoped, 0);
    let badly_routed: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events e, LATERAL (SELECT e.payload->'RequisitionSubmitted' AS p) s
         WHERE e.event_type = 'RequisitionSubmitted' AND (e.event_version <> '2'
           OR s.p->>'threshold' IS DISTINCT FROM 'Tier ' || jsonb_array_length(s.p->'chain')
           OR jsonb_array_length(s.p->'eligible') <> jsonb_array_length(s.p->'chain')
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(s.p->'eligible') l WHERE jsonb_array_length(l) = 0))",
    )
    .await;
    assert_eq!(badly_routed, 0);
    let tiers: i64 = scalar(
        &pool,
        "SELECT count(DISTINCT payload->'RequisitionSubmitted'->>'threshold') FROM events
         WHERE event_type = 'RequisitionSubmitted'",
    )
    .await;
    assert_eq!(tiers, 3, "Tier 1, 2 and 3");

    // The first step goes to the heads of the requester's department, but never the requester:
    // after the role changes halfway (2025-07-02) the users table holds the roles then.
    const SUBMISSIONS: &str = "SELECT s.payload->'RequisitionSubmitted'->'eligible'->0 AS heads, s.recorded_at,
                (c.payload->'RequisitionCreated'->'unit'->>'department')::uuid AS dept,
                (c.payload->'RequisitionCreated'->>'requester_id')::uuid AS requester
         FROM events s JOIN events c ON c.aggregate_id = s.aggregate_id AND c.event_type = 'RequisitionCreated'
         WHERE s.event_type = 'RequisitionSubmitted'";
    let late: i64 =
        scalar(&pool, &format!("SELECT count(*) FROM ({SUBMISSIONS}) x WHERE recorded_at > '2025-07-03'"))
            .await;
    assert!(late > 50, "{late} submissions in the second half");
    let wrong_heads: i64 = scalar(
        &pool,
        &format!(
            "SELECT count(*) FROM ({SUBMISSIONS}) x WHERE recorded_at > '2025-07-03'
               AND ARRAY(SELECT h::uuid FROM jsonb_array_elements_text(x.heads) h ORDER BY 1)
                   <> ARRAY(SELECT id FROM users WHERE 'department_head' = ANY (roles) AND department_id = x.dept
                            AND id <> x.requester ORDER BY 1)"
        ),
    )
    .await;
    assert_eq!(wrong_heads, 0, "second-half submissions routed to exactly their department's heads");
    let outsiders: i64 = scalar(
        &pool,
        &format!(
            "SELECT count(*) FROM ({SUBMISSIONS}) x, jsonb_array_elements_text(x.heads) h
             JOIN users u ON u.id = h::uuid WHERE u.department_id <> x.dept OR u.id = x.requester"
        ),
    )
    .await;
    assert_eq!(outsiders, 0, "never a head of another department, never the requester");

    // --- over HTTP: a head approves a requisition routed to them -------------------------------
    let mut config = Config::development();
    config.database_url = Some(url.clone().into());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.seal_interval_secs = 3600;
    config.mail.transport = pettycash_api::config::MailTransportConfig::Queue;
    let app = Application::build(config, pool.clone()).await.expect("build app");
    let api = Api {
        client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap(),
        address: format!("http://127.0.0.1:{}", app.port()),
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let (pending, email): (String, String) = sqlx::query_as(&format!(
        "SELECT l.aggregate_id, u.email FROM ({LAST_EVENTS}) l
         JOIN users u ON u.id = (l.payload->'RequisitionSubmitted'->'eligible'->0->>0)::uuid
         WHERE l.event_type = 'RequisitionSubmitted' ORDER BY l.aggregate_id LIMIT 1"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let (head, _) = api.login(&email).await;
    let (status, body) = api
        .send(
            Some(&head),
            reqwest::Method::POST,
            &format!("/api/requisitions/{pending}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "approve {pending} as {email}: {body}");

    let summary = verify_clean(&url).await;
    assert_eq!(summary["events"], events + 1);
}

/// The cash counts, advances and budgets the treasury, budget and alert-driven reports read,
/// at a small scale with an organisation (2 × 2 × 2, 6 funds, 2,000 requisitions by 19
/// requesters) and a
/// history that ends a few weeks ago: written as the service writes them (pieces adding up to
/// the count, variances within the tolerance adjusted at once and the others decided by a
/// CFO; advances asked for, issued and settled in the commands of their requisition's
/// creation and payment, never two unsettled at once, the `advances` table their fold; every
/// budget flag the service would record and no other), `verify` clean before and after
/// `rebuild --all` (budget consumption compared), and over HTTP the treasury report with
/// counts, variances and advances by age, budget against actual per cost centre, department
/// and branch, and this month's budget on the dashboard.
#[tokio::test]
async fn generated_counts_advances_and_budgets_feed_the_reports() {
    let (url, pool) = pettycash_tests::fresh_database().await;
    // 365 days ending 35 days ago: the history's tail (last steps, late settlements, overdue
    // advances) is in the past, and the budgets set ahead reach this month.
    let start = (chrono::Utc::now() - chrono::Duration::days(400)).format("%Y-%m-%d 00:00:00+00").to_string();
    // Few requesters (10 staff, 4 branch managers, 5 department heads), each with many
    // requisitions: the block on a second unsettled advance is exercised.
    let vars = [
        ("funds", "6"),
        ("requisitions", "2000"),
        ("staff", "10"),
        ("regions", "2"),
        ("branches", "2"),
        ("departments", "2"),
        ("start", start.as_str()),
    ];
    generate_with(&url, &vars).await;
    let summary = verify_clean(&url).await;
    let events: i64 = scalar(&pool, "SELECT count(*) FROM events").await;
    assert_eq!(summary["authenticated_events"], events, "every event signed as the service would");
    let counts: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT event_type, count(*) FROM events GROUP BY event_type")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for t in [
        "CashCounted",
        "VarianceAdjusted",
        "VarianceRejected",
        "AdvanceRequested",
        "AdvanceIssued",
        "AdvanceSettled",
        "AdvanceCashReturned",
        "AdvanceOverdue",
        "BudgetSet",
        "BudgetExceeded",
    ] {
        assert!(counts.get(t).copied().unwrap_or(0) > 0, "no {t} generated: {counts:?}");
    }

    // --- counts ----------------------------------------------------------------------------------
    // The pieces add up to what was counted.
    let miscounted: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events e WHERE e.event_type = 'CashCounted'
           AND (e.payload->'CashCounted'->>'counted')::numeric IS DISTINCT FROM
               (SELECT sum((p->>'denomination')::numeric * (p->>'count')::numeric)
                FROM jsonb_array_elements(e.payload->'CashCounted'->'pieces') p)",
    )
    .await;
    assert_eq!(miscounted, 0);
    // Adjusted at once (in the count's command, `approved_by` null) only within the tolerance
    // set (1 basis point of the float); otherwise by a CFO other than the counter, or rejected.
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN a.event_type = 'VarianceRejected' THEN 'rejected'
                     WHEN a.payload->'VarianceAdjusted'->'approved_by' = 'null' THEN
                          CASE WHEN a.metadata->>'request_id' = c.metadata->>'request_id'
                                AND abs((a.payload->'VarianceAdjusted'->>'amount')::numeric)
                                    <= (o.payload->'FundOpened'->>'float')::numeric / 10000
                               THEN 'within tolerance' ELSE 'wrongly automatic' END
                     WHEN 'cfo' = ANY (u.roles) AND u.id::text <> c.payload->'CashCounted'->>'counted_by'
                     THEN 'approved' ELSE 'wrongly approved' END, count(*)
         FROM events a
         JOIN events c ON c.event_type = 'CashCounted'
          AND c.payload->'CashCounted'->>'count_id' = a.payload->a.event_type->>'count_id'
         JOIN events o ON o.aggregate_id = a.aggregate_id AND o.sequence = 1
         LEFT JOIN users u ON u.id::text = a.metadata->>'actor_id'
         WHERE a.event_type IN ('VarianceAdjusted', 'VarianceRejected') GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = decisions.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["approved", "rejected", "within tolerance"], "{decisions:?}");

    // --- advances --------------------------------------------------------------------------------
    // Asked for in the requisition's creation, issued in its payment's command (same request id).
    let detached: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events a WHERE a.aggregate_type = 'advance_account' AND NOT EXISTS (
             SELECT 1 FROM events r WHERE r.aggregate_id = a.payload->a.event_type->>'requisition_id'
               AND r.metadata->>'request_id' = a.metadata->>'request_id'
               AND CASE a.event_type
                   WHEN 'AdvanceRequested' THEN r.event_type = 'RequisitionCreated'
                   WHEN 'AdvanceIssued' THEN r.event_type = 'RequisitionPaid'
                        AND r.payload->'RequisitionPaid'->>'payment_id' = a.payload->'AdvanceIssued'->>'payment_id'
                        AND (a.payload->'AdvanceIssued'->>'paid_at')::timestamptz = r.recorded_at
                        AND (a.payload->'AdvanceIssued'->>'due_at')::timestamptz = r.recorded_at + interval '7 days'
                   END)
           AND a.event_type IN ('AdvanceRequested', 'AdvanceIssued')",
    )
    .await;
    assert_eq!(detached, 0, "advances asked for and issued in their requisition's commands");
    // Never asked for or issued while another advance of the holder is paid and unsettled
    // (`advance_block_while_unsettled`, on by default).
    let blocked: i64 = scalar(
        &pool,
        "WITH adv AS (SELECT aggregate_id AS holder, global_position AS pos, event_type, payload->event_type AS p
                      FROM events WHERE aggregate_type = 'advance_account'),
              asked AS (SELECT holder, p->>'requisition_id' AS req, (p->>'amount')::numeric AS amount
                        FROM adv WHERE event_type = 'AdvanceRequested')
         SELECT count(*) FROM adv e
         JOIN asked o ON o.holder = e.holder AND o.req <> e.p->>'requisition_id'
         JOIN adv i ON i.event_type = 'AdvanceIssued' AND i.p->>'requisition_id' = o.req AND i.pos < e.pos
         WHERE e.event_type IN ('AdvanceRequested', 'AdvanceIssued')
           AND o.amount > coalesce((SELECT sum((s.p->>'spent')::numeric + (s.p->>'returned')::numeric) FROM adv s
                                    WHERE s.event_type = 'AdvanceSettled' AND s.p->>'requisition_id' = o.req
                                      AND s.pos < e.pos), 0)",
    )
    .await;
    assert_eq!(blocked, 0, "an advance while another is unsettled");
    // The advances table is the fold of the events.
    let unfolded: i64 = scalar(
        &pool,
        "WITH adv AS (SELECT aggregate_id::uuid AS holder, event_type, payload->event_type AS p
                      FROM events WHERE aggregate_type = 'advance_account'),
              fold AS (
                  SELECT (r.p->>'requisition_id')::uuid AS requisition_id, r.holder, (r.p->>'amount')::numeric AS amount,
                         coalesce(sum((s.p->>'spent')::numeric), 0) AS spent,
                         coalesce(sum((s.p->>'returned')::numeric), 0) AS returned, count(s.p)::int AS settlements,
                         (SELECT (i.p->>'payment_id')::uuid FROM adv i WHERE i.event_type = 'AdvanceIssued'
                            AND i.p->>'requisition_id' = r.p->>'requisition_id') AS payment_id,
                         EXISTS (SELECT 1 FROM adv d WHERE d.event_type = 'AdvanceOverdue'
                                   AND d.p->>'requisition_id' = r.p->>'requisition_id') AS overdue
                  FROM adv r LEFT JOIN adv s ON s.event_type = 'AdvanceSettled' AND s.p->>'requisition_id' = r.p->>'requisition_id'
                  WHERE r.event_type = 'AdvanceRequested' GROUP BY r.p, r.holder)
         SELECT count(*) FROM fold f FULL JOIN advances a USING (requisition_id)
         WHERE a.holder_id IS DISTINCT FROM f.holder OR a.amount IS DISTINCT FROM f.amount
            OR a.spent IS DISTINCT FROM f.spent OR a.returned IS DISTINCT FROM f.returned
            OR a.settlements IS DISTINCT FROM f.settlements OR a.payment_id IS DISTINCT FROM f.payment_id
            OR a.overdue_recorded IS DISTINCT FROM f.overdue
            OR a.outstanding IS DISTINCT FROM CASE WHEN f.payment_id IS NULL THEN 0 ELSE f.amount - f.spent - f.returned END",
    )
    .await;
    assert_eq!(unfolded, 0, "the advances table disagrees with the advance events");
    // Some still outstanding at the end, each already recorded overdue (nothing left for the
    // scheduler: the history ends after their due dates).
    let (outstanding, reminded): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE overdue_recorded) FROM advances WHERE outstanding > 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(outstanding > 0, "no advance outstanding at the end");
    assert_eq!(reminded, outstanding);

    // --- budgets ---------------------------------------------------------------------------------
    // Exactly the flags `CommandService::budget_flags` gives: per submission, each budget set
    // before it for its month (UTC) and currency covering its requisition's unit (cost centre,
    // department, branch of the path it was created with) whose payments of that month before
    // it plus its amount exceed the budget; each with what was consumed.
    let wrong_flags: i64 = scalar(
        &pool,
        "WITH created AS MATERIALIZED (
             SELECT aggregate_id AS req, payload->'RequisitionCreated'->>'currency' AS currency,
                    payload->'RequisitionCreated'->'unit' AS unit
             FROM events WHERE event_type = 'RequisitionCreated'),
         budgets AS MATERIALIZED (
             SELECT global_position AS pos, b->>'budget_id' AS budget_id, b->'scope'->>'kind' AS kind,
                    b->'scope'->>'unit_id' AS unit_id, b->>'month' AS month, b->>'currency' AS currency,
                    (b->>'amount')::numeric AS amount
             FROM events, LATERAL (SELECT payload->'BudgetSet' AS b) x WHERE event_type = 'BudgetSet'),
         paid AS MATERIALIZED (
             SELECT e.global_position AS pos, to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
                    c.currency, c.unit, (e.payload->'RequisitionPaid'->>'amount')::numeric AS amount
             FROM events e JOIN created c ON c.req = e.aggregate_id WHERE e.event_type = 'RequisitionPaid'),
         subs AS MATERIALIZED (
             SELECT e.global_position AS pos, e.metadata->>'request_id' AS rq,
                    to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, c.currency, c.unit,
                    (e.payload->'RequisitionSubmitted'->>'amount')::numeric AS amount
             FROM events e JOIN created c ON c.req = e.aggregate_id WHERE e.event_type = 'RequisitionSubmitted'),
         expected AS (
             SELECT s.rq, b.budget_id, b.amount AS budget, s.amount, coalesce(sum(p.amount), 0) AS consumed
             FROM subs s JOIN budgets b ON b.month = s.month AND b.currency = s.currency
              AND s.unit->>b.kind = b.unit_id AND b.pos < s.pos
             LEFT JOIN paid p ON p.pos < s.pos AND p.month = b.month AND p.currency = b.currency
              AND p.unit->>b.kind = b.unit_id
             GROUP BY s.pos, s.rq, b.budget_id, b.amount, s.amount
             HAVING coalesce(sum(p.amount), 0) + s.amount > b.amount),
         recorded AS (
             SELECT e.metadata->>'request_id' AS rq, f->>'budget_id' AS budget_id, (f->>'budget')::numeric AS budget,
                    (f->>'amount')::numeric AS amount, (f->>'consumed')::numeric AS consumed
             FROM events e, LATERAL (SELECT e.payload->'BudgetExceeded' AS f) x WHERE e.event_type = 'BudgetExceeded')
         SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT SELECT * FROM recorded) a)
              + (SELECT count(*) FROM (SELECT * FROM recorded EXCEPT SELECT * FROM expected) b)",
    )
    .await;
    assert_eq!(wrong_flags, 0, "budget flags other than those the service records");
    // Each flag just before its submission, in its command.
    let stray_flags: i64 = scalar(
        &pool,
        "SELECT count(*) FROM events f WHERE f.event_type = 'BudgetExceeded' AND NOT EXISTS (
             SELECT 1 FROM events s WHERE s.aggregate_id = f.aggregate_id AND s.event_type = 'RequisitionSubmitted'
               AND s.sequence > f.sequence AND s.metadata->>'request_id' = f.metadata->>'request_id'
               AND NOT EXISTS (SELECT 1 FROM events m WHERE m.aggregate_id = f.aggregate_id
                                 AND m.sequence > f.sequence AND m.sequence < s.sequence
                                 AND m.event_type <> 'BudgetExceeded'))",
    )
    .await;
    assert_eq!(stray_flags, 0);

    // --- the projections apply it; verify compares the budgets' consumption ------------------------
    rebuild_all(&url, &pool).await;
    let summary = verify_clean(&url).await;
    assert_eq!(summary["not_checked"], json!([]), "budget consumption compared with the read model");

    // --- over HTTP -------------------------------------------------------------------------------
    let mut config = Config::development();
    config.database_url = Some(url.clone().into());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.seal_interval_secs = 3600;
    config.mail.transport = pettycash_api::config::MailTransportConfig::Queue;
    let app = Application::build(config, pool.clone()).await.expect("build app");
    let api = Api {
        client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap(),
        address: format!("http://127.0.0.1:{}", app.port()),
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let (cfo, _) = api.login("cfo.1@bench.example").await;
    let period = format!("from={}&to={}", &start[..10], chrono::Utc::now().format("%Y-%m-%d"));
    let report = |name: &'static str| {
        let (api, cfo, period) = (&api, &cfo, &period);
        async move {
            let (status, body) = api
                .send(Some(cfo), reqwest::Method::GET, &format!("/api/reports/{name}?{period}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            body
        }
    };
    let figure = |report: &Value, key: &str| -> Vec<Value> {
        report["summary"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["key"] == key)
            .map(|f| f["value"].clone())
            .collect()
    };
    let rows = |report: &Value, key: &str| -> Vec<Value> {
        let section = report["sections"].as_array().unwrap().iter().find(|s| s["key"] == key);
        section.unwrap_or_else(|| panic!("no section {key}: {report}"))["rows"].as_array().unwrap().clone()
    };

    let treasury = report("treasury").await;
    for key in ["counts", "counts_with_variance", "replenishments_funded"] {
        let n = figure(&treasury, key);
        assert!(n.len() == 1 && n[0].as_i64().unwrap_or(0) > 0, "{key}: {n:?}");
    }
    assert!(!figure(&treasury, "advances_outstanding").is_empty(), "{treasury}");
    let statuses: BTreeSet<String> =
        rows(&treasury, "counts").iter().map(|r| r["status"].as_str().unwrap().to_string()).collect();
    for status in ["matched", "adjusted", "rejected"] {
        assert!(statuses.contains(status), "no count {status}: {statuses:?}");
    }
    let ages: BTreeSet<String> =
        rows(&treasury, "advances").iter().map(|r| r["age"].as_str().unwrap().to_string()).collect();
    assert!(ages.len() >= 2, "advances outstanding in one age bucket only: {ages:?}");

    let budgets = report("budget-vs-actual").await;
    for key in ["cost_centres", "departments", "branches"] {
        assert!(!rows(&budgets, key).is_empty(), "no budget per {key}: {budgets}");
    }
    let over: i64 = figure(&budgets, "over_budget").iter().map(|v| v.as_i64().unwrap()).sum();
    assert!(over > 0, "no budget overspent: {budgets}");

    let (status, dashboard) = api.send(Some(&cfo), reqwest::Method::GET, "/api/dashboard/", None).await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    let items = dashboard["budget_this_month"]["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty(), "no budget this month: {}", dashboard["budget_this_month"]);
}
