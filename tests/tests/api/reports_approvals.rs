//! The approvals, payments, exceptions, treasury and user-activity reports (issue #15
//! [reports]) against a small history seeded over HTTP, their figures computed here from the
//! events' own times; run by `pettycash_projections::reports::run` as the API runs them, and
//! compared with the replay from the events (`reports::replay`, what `pettycash-replay report`
//! prints).

use chrono::{DateTime, Duration, Utc};
use pettycash_domain::report::{Cell, Report, ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_domain::{Actor, Role};
use pettycash_projections::reports::{self, ReportContext, ReportError};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use uuid::Uuid;

/// KES: up to 1,000.00 one step; above, three steps and a fast-track allowed.
fn policy() -> Value {
    json!({"thresholds": [
        {"name": "Small", "currency": "KES", "min": "0", "max": "1000.00", "chain": ["department_head"]},
        {"name": "Large", "currency": "KES", "min": "1000.01", "max": null,
         "chain": ["department_head", "group_finance_manager", "cfo"], "fast_track": true},
        {"name": "Dollars", "currency": "USD", "min": "0", "max": null,
         "chain": ["regional_manager", "department_head"]},
    ]})
}

async fn act(app: &TestApp, by: &TestUser, id: Uuid, action: &str, body: Value) {
    let r = app.post(by, &format!("/api/requisitions/{id}/{action}"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{action}: {r:?}");
}

async fn create(app: &TestApp, by: &TestUser, body: Value) -> Uuid {
    let r = app.post(by, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.id()
}

/// A requisition's events: (type, recorded at).
async fn events(app: &TestApp, id: Uuid) -> Vec<(String, DateTime<Utc>)> {
    sqlx::query_as("SELECT event_type, recorded_at FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id.to_string())
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// When the first event of `kind` (the `nth`, from 0) was recorded.
fn at(events: &[(String, DateTime<Utc>)], kind: &str, nth: usize) -> DateTime<Utc> {
    events.iter().filter(|(t, _)| t == kind).nth(nth).unwrap_or_else(|| panic!("no {kind} #{nth}")).1
}

fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    (Decimal::new((to - from).num_microseconds().unwrap(), 6) / Decimal::from(3600)).round_dp(2)
}

fn ctx(
    app: &TestApp,
    actor: Actor,
    name: ReportName,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Option<ReportContext> {
    let scope = ReportScope::of(&actor, name)?;
    Some(ReportContext { pool: app.pool.clone(), actor, scope, params: params.clone(), now })
}

async fn run(
    app: &TestApp,
    user: &TestUser,
    roles: &[Role],
    name: ReportName,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Option<Result<Report, ReportError>> {
    let ctx = ctx(app, Actor::new(user.id, roles.iter().copied()), name, params, now)?;
    Some(reports::run(name, &ctx).await)
}

fn figure(report: &Report, key: &str) -> Cell {
    report
        .summary
        .iter()
        .find(|f| f.key == key && f.currency.is_none())
        .unwrap_or_else(|| panic!("no {key}"))
        .value
        .clone()
}

fn column(report: &Report, section: usize, key: &str) -> usize {
    report.sections[section].columns.iter().position(|c| c.key == key).unwrap()
}

/// The row of section `section` whose column `key` holds `text`.
fn row<'a>(report: &'a Report, section: usize, key: &str, text: &str) -> &'a [Cell] {
    let i = column(report, section, key);
    report.sections[section]
        .rows
        .iter()
        .find(|r| r[i] == Cell::Text(text.into()))
        .unwrap_or_else(|| panic!("no row {text}: {report:?}"))
}

fn median_p90(mut v: Vec<Decimal>) -> (Decimal, Decimal) {
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / Decimal::TWO };
    (median, v[(n * 9).div_ceil(10) - 1])
}

/// Run by the auditor from the read models and replayed from the events: equal figures.
async fn assert_replay_equal(
    app: &TestApp,
    c: &Cast,
    name: ReportName,
    params: &ReportParams,
    now: DateTime<Utc>,
) -> Report {
    let live = run(app, &c.auditor, &[Role::Auditor], name, params, now).await.unwrap().unwrap();
    let scope = ReportScope::of(&Actor::new(c.auditor.id, [Role::Auditor]), name).unwrap();
    let replayed = reports::replay(name, &app.pool, &scope, params, now).await.unwrap();
    assert_eq!(live.summary, replayed.summary, "{name} summary");
    assert_eq!(live.sections, replayed.sections, "{name} sections");
    live
}

#[tokio::test]
async fn approvals_payments_and_exceptions_from_a_seeded_history() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), Method::PUT, "/api/approval-policy/thresholds", Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fund = app.fund_in(&c.admin, "1000000", "KES").await;
    let start = Utc::now() - Duration::minutes(1);

    let small = app.submitted(&c.staff, fund, "500").await;
    app.approve_by(small, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, small).await.status, StatusCode::CREATED);
    let large = app.submitted(&c.staff, fund, "5000").await;
    app.approve_by(large, &[&c.head, &c.gfm, &c.cfo]).await;
    assert_eq!(app.pay(&c.treasury, large).await.status, StatusCode::CREATED);
    let rejected = app.submitted(&c.staff, fund, "5000").await;
    act(&app, &c.head, rejected, "reject", json!({"reason": "Not needed"})).await;
    let returned = app.submitted(&c.staff, fund, "400").await;
    act(&app, &c.head, returned, "request-changes", json!({"reason": "Attach a quote"})).await;
    let waiting = app.submitted(&c.staff, fund, "5000").await;
    app.approve_by(waiting, &[&c.head]).await;
    let urgent = create(
        &app,
        &c.staff,
        json!({"fund_id": fund, "amount": "6000", "purpose": "Generator fuel",
        "submit": true, "urgent_reason": "Power cut tonight"}),
    )
    .await;
    act(&app, &c.head, urgent, "confirm-urgency", json!({"comment": "Agreed, urgent"})).await;
    let overridden = app.submitted(&c.staff, fund, "7000").await;
    act(&app, &c.admin, overridden, "override", json!({"justification": "Flood; approvers away"})).await;
    let toner =
        json!({"fund_id": fund, "amount": "700", "purpose": "Toner", "payee": "ACME", "submit": true});
    let first = create(&app, &c.staff, toner.clone()).await;
    // The duplicate check reads the requisitions read model.
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let duplicate = create(&app, &c.staff, toner).await;
    // Nobody holds the regional manager's role: the dollar requisition's first step is
    // escalated at submission, the head approves it, it is paid.
    let usd = app.fund_in(&c.admin, "1000", "USD").await;
    let escalated = app.submitted(&c.staff, usd, "40").await;
    app.approve_by(escalated, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, escalated).await.status, StatusCode::CREATED);
    wait_for_projections(&app.pool, &["requisitions", "report_facts"]).await;

    let params = ReportParams {
        from: start,
        to: Utc::now() + Duration::minutes(1),
        units: UnitFilter::default(),
        stuck_days: 7,
        lookback_days: 30,
    };
    let now = Utc::now() + Duration::days(8);

    // Approvals: each approver's counts and hours to act, from the events' own times.
    let report = assert_replay_equal(&app, &c, ReportName::Approvals, &params, now).await;
    let mut head_hours = Vec::new();
    for (id, kind) in [
        (small, "RequisitionApproved"),
        (large, "RequisitionApproved"),
        (waiting, "RequisitionApproved"),
        (escalated, "RequisitionApproved"),
        (rejected, "RequisitionRejected"),
        (returned, "ChangesRequested"),
    ] {
        let e = events(&app, id).await;
        head_hours.push(hours(at(&e, "RequisitionSubmitted", 0), at(&e, kind, 0)));
    }
    let large_events = events(&app, large).await;
    let gfm_hours =
        hours(at(&large_events, "RequisitionApproved", 0), at(&large_events, "RequisitionApproved", 1));
    let (median, p90) = median_p90(head_hours);
    let head = row(&report, 0, "approver", "Test department_head");
    assert_eq!(
        head[1..],
        [
            Cell::Integer(4),
            Cell::Integer(1),
            Cell::Integer(1),
            Cell::Integer(6),
            Cell::Number(median),
            Cell::Number(p90)
        ]
    );
    let gfm = row(&report, 0, "approver", "Test group_finance_manager");
    assert_eq!(
        gfm[1..],
        [
            Cell::Integer(1),
            Cell::Integer(0),
            Cell::Integer(0),
            Cell::Integer(1),
            Cell::Number(gfm_hours),
            Cell::Number(gfm_hours)
        ]
    );
    assert_eq!(report.sections[0].rows.len(), 3, "head, GFM, CFO: {report:?}");
    assert_eq!(
        (figure(&report, "actions"), figure(&report, "approvals")),
        (Cell::Integer(8), Cell::Integer(6))
    );
    // Stuck after 8 days: the one waiting for the GFM, the fast-tracked one for the CFO, the
    // two toner requisitions for the head; not the one sent back for changes.
    assert_eq!(figure(&report, "stuck"), Cell::Integer(4));
    let waiting_row = row(&report, 1, "requisition_id", &waiting.to_string());
    let w = events(&app, waiting).await;
    assert_eq!(
        waiting_row[column(&report, 1, "waiting_since")],
        Cell::DateTime(at(&w, "RequisitionApproved", 0))
    );
    assert_eq!(waiting_row[column(&report, 1, "step")], Cell::Text("group_finance_manager".into()));
    assert_eq!(waiting_row[column(&report, 1, "days_waiting")], Cell::Integer(8));
    assert_eq!(
        waiting_row[column(&report, 1, "waiting_for")],
        Cell::Text("Test group_finance_manager".into())
    );
    let urgent_row = row(&report, 1, "requisition_id", &urgent.to_string());
    assert_eq!(urgent_row[column(&report, 1, "step")], Cell::Text("cfo".into()));
    // Seven days on, nothing has waited more than seven days yet.
    let early = run(&app, &c.auditor, &[Role::Auditor], ReportName::Approvals, &params, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(figure(&early, "stuck"), Cell::Integer(0));

    // Payments: three in cash, all succeeded, in two currencies; hours from submission to
    // payment.
    let report = assert_replay_equal(&app, &c, ReportName::Payments, &params, now).await;
    let cash = |currency: &str, n: i64, amount: i64| {
        vec![
            Cell::Text("cash".into()),
            Cell::Text("succeeded".into()),
            Cell::Text(currency.into()),
            Cell::Integer(n),
            Cell::Money(Decimal::from(amount)),
        ]
    };
    assert_eq!(report.sections[0].rows, [cash("KES", 2, 5500), cash("USD", 1, 40)]);
    let mut to_pay = Vec::new();
    for id in [small, large, escalated] {
        let e = events(&app, id).await;
        to_pay.push(hours(at(&e, "RequisitionSubmitted", 0), at(&e, "RequisitionPaid", 0)));
    }
    let (median, p90) = median_p90(to_pay.clone());
    assert_eq!(figure(&report, "success_rate"), Cell::Percent(Decimal::from(100)));
    assert_eq!(figure(&report, "median_hours_to_payment"), Cell::Number(median));
    assert_eq!(figure(&report, "p90_hours_to_payment"), Cell::Number(p90));
    let mean = (to_pay.iter().sum::<Decimal>() / Decimal::from(3)).round_dp(2);
    assert_eq!(figure(&report, "mean_hours_to_payment"), Cell::Number(mean));
    let paid: Vec<(Option<&str>, &Cell)> = report
        .summary
        .iter()
        .filter(|f| f.key == "paid")
        .map(|f| (f.currency.as_deref(), &f.value))
        .collect();
    let (kes, usd) = (Cell::Money(Decimal::from(5500)), Cell::Money(Decimal::from(40)));
    assert_eq!(paid, [(Some("KES"), &kes), (Some("USD"), &usd)]);
    // Treasury gets the same figures as the auditor.
    let by_treasury =
        run(&app, &c.treasury, &[Role::Treasury], ReportName::Payments, &params, now).await.unwrap().unwrap();
    assert_eq!(by_treasury.sections, report.sections);

    // Exceptions: the fast-tracked, the overridden and the possible duplicate, one row each.
    let report = assert_replay_equal(&app, &c, ReportName::Exceptions, &params, now).await;
    let kinds =
        |id: Uuid| row(&report, 0, "requisition_id", &id.to_string())[column(&report, 0, "kinds")].clone();
    assert_eq!(kinds(urgent), Cell::Text("fast_tracked".into()));
    assert_eq!(kinds(overridden), Cell::Text("overridden".into()));
    assert_eq!(kinds(duplicate), Cell::Text("possible_duplicate".into()));
    let reasons =
        row(&report, 0, "requisition_id", &overridden.to_string())[column(&report, 0, "reasons")].to_string();
    assert_eq!(reasons, "overridden: Flood; approvers away");
    assert_eq!(kinds(escalated), Cell::Text("escalated".into()));
    let reasons =
        row(&report, 0, "requisition_id", &escalated.to_string())[column(&report, 0, "reasons")].to_string();
    assert_eq!(reasons, "escalated: step 1 (regional_manager): no eligible approver");
    assert_eq!(report.sections[0].rows.len(), 4, "{report:?}");
    assert_eq!(figure(&report, "requisitions"), Cell::Integer(4));
    assert_eq!(figure(&report, "escalated"), Cell::Integer(1));
    assert!(!report.sections[0].rows.iter().any(|r| r[0] == Cell::Text(first.to_string())));

    // A period before all this: nothing.
    let before = ReportParams { from: start - Duration::days(30), to: start, ..params.clone() };
    let empty =
        run(&app, &c.auditor, &[Role::Auditor], ReportName::Exceptions, &before, now).await.unwrap().unwrap();
    assert_eq!(figure(&empty, "requisitions"), Cell::Integer(0));
}

#[tokio::test]
async fn visibility_and_unit_filters() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund_in(&c.admin, "100000", "KES").await;
    let id = app.submitted(&c.staff, fund, "500").await;
    app.approve_by(id, &[&c.head]).await;
    wait_for_projections(&app.pool, &["requisitions", "report_facts"]).await;
    let now = Utc::now();
    let params = ReportParams {
        from: now - Duration::days(1),
        to: now + Duration::days(1),
        units: UnitFilter::default(),
        stuck_days: 7,
        lookback_days: 30,
    };

    // A requester may not run these at all (the API answers 404); the head may not run payments.
    for name in [ReportName::Approvals, ReportName::Payments, ReportName::Exceptions] {
        assert!(run(&app, &c.staff, &[Role::Staff], name, &params, now).await.is_none(), "{name}");
    }
    assert!(run(&app, &c.head, &[Role::DepartmentHead], ReportName::Payments, &params, now).await.is_none());
    // The head sees their own action.
    let report = run(&app, &c.head, &[Role::DepartmentHead], ReportName::Approvals, &params, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row(&report, 0, "approver", "Test department_head")[1], Cell::Integer(1));

    // A fund that does not exist, a company the caller is not in: 404 naming the filter.
    let unknown = ReportParams {
        units: UnitFilter { fund_id: Some(Uuid::new_v4()), ..Default::default() },
        ..params.clone()
    };
    let e = run(&app, &c.auditor, &[Role::Auditor], ReportName::Approvals, &unknown, now)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ReportError::NotFound { field: "fund_id" }), "{e:?}");
    let company = app.unit(&c.admin, "company", "OTHER", None).await;
    let other = ReportParams {
        units: UnitFilter { company_id: Some(company), ..Default::default() },
        ..params.clone()
    };
    let e = run(&app, &c.auditor, &[Role::Auditor], ReportName::Exceptions, &other, now)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ReportError::NotFound { field: "company_id" }), "{e:?}");
    let scope = ReportScope::of(&Actor::new(c.auditor.id, [Role::Auditor]), ReportName::Payments).unwrap();
    let e = reports::replay(ReportName::Payments, &app.pool, &scope, &other, now).await.unwrap_err();
    assert!(matches!(e, ReportError::NotFound { field: "company_id" }), "{e:?}");
    // Their own fund as a filter: the figures of that fund.
    let own =
        ReportParams { units: UnitFilter { fund_id: Some(fund), ..Default::default() }, ..params.clone() };
    let report =
        run(&app, &c.auditor, &[Role::Auditor], ReportName::Approvals, &own, now).await.unwrap().unwrap();
    assert_eq!(figure(&report, "approvals"), Cell::Integer(1));
    // Printed as people read it: the fund's name, not its id.
    assert_eq!(report.filters, [("Fund".to_string(), "Test fund".to_string())]);
}

/// Pays a one-step requisition of `amount` from `fund`.
async fn paid(app: &TestApp, c: &Cast, fund: Uuid, amount: &str) {
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, id).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn treasury_fund_health_replenishments_variances_and_advances_by_age() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), Method::PUT, "/api/approval-policy/thresholds", Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let start = Utc::now() - Duration::minutes(1);
    // Fund A: reorder level 500. 600 paid → 400, an automatic request for 600, approved and
    // funded; then 2 × 450 paid → 100 (critical: below 80 % of 500), a second request.
    let body = json!({"name": "A fund", "currency": "KES", "float": "1000", "reorder_level": "500", "minimum_balance": "50"});
    let r = app.post(&c.admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let a = r.id();
    paid(&app, &c, a, "600").await;
    let view = app.get(&c.admin, &format!("/api/funds/{a}")).await;
    let rid = view.body["replenishment"]["id"].as_str().unwrap_or_else(|| panic!("{view:?}")).to_string();
    let path = format!("/api/funds/{a}/replenishments/{rid}");
    assert_eq!(app.post(&c.cfo, &format!("{path}/approve"), json!({})).await.status, StatusCode::OK);
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": "FT-1"})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");
    paid(&app, &c, a, "450").await;
    paid(&app, &c, a, "450").await;
    // Fund B ("B fund"), no reorder level: a count 100 short, pending; an advance of 300 paid.
    let custodian = app.user(&[Role::Staff]).await;
    let body = json!({"name": "B fund", "currency": "KES", "float": "1000", "custodian_id": custodian.id});
    let r = app.post(&c.admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let b = r.id();
    let count = app
        .post(&custodian, &format!("/api/funds/{b}/counts"), json!({"counts": {"500": 1, "200": 2}}))
        .await;
    assert_eq!(count.status, StatusCode::CREATED, "{count:?}");
    let body =
        json!({"fund_id": b, "amount": "300", "purpose": "Field trip fuel", "submit": true, "advance": true});
    let advance = create(&app, &c.staff, body).await;
    app.approve_by(advance, &[&c.head]).await;
    assert_eq!(app.pay(&c.treasury, advance).await.status, StatusCode::CREATED);
    wait_for_projections(&app.pool, &["cash", "report_facts"]).await;

    let params = ReportParams {
        from: start,
        to: Utc::now() + Duration::minutes(1),
        units: UnitFilter::default(),
        stuck_days: 7,
        lookback_days: 30,
    };
    let now = Utc::now() + Duration::days(10);
    let report = assert_replay_equal(&app, &c, ReportName::Treasury, &params, now).await;
    let money = |v: i64| Cell::Money(Decimal::from(v));
    let text = |t: &str| Cell::Text(t.into());
    assert_eq!(
        report.sections[0].rows,
        [
            vec![
                text("A fund"),
                text("KES"),
                money(100),
                money(1000),
                money(500),
                money(50),
                Cell::Percent(Decimal::from(10)),
                text("critical")
            ],
            vec![
                text("B fund"),
                text("KES"),
                money(700),
                money(1000),
                Cell::Empty,
                money(0),
                Cell::Percent(Decimal::from(70)),
                text("ok")
            ],
        ]
    );
    // Each fund's balance as the cash book has it.
    assert_eq!(app.balance(&c.admin, a).await, Decimal::from(100));
    assert_eq!(app.balance(&c.admin, b).await, Decimal::from(700));
    let statuses: Vec<&Cell> = report.sections[1].rows.iter().map(|r| &r[6]).collect();
    assert_eq!(statuses, [&text("funded"), &text("requested")]);
    assert_eq!(report.sections[1].rows[0][2], money(600));
    for (key, n) in [
        ("funds_ok", 1),
        ("funds_critical", 1),
        ("replenishments_requested", 2),
        ("replenishments_approved", 1),
        ("replenishments_funded", 1),
        ("counts", 1),
        ("counts_with_variance", 1),
        ("variances_pending", 1),
    ] {
        assert_eq!(figure(&report, key), Cell::Integer(n), "{key}");
    }
    assert_eq!(report.sections[2].rows[0][3..], [money(1000), money(900), money(-100), text("pending")]);
    // The advance, paid ten days before `now`: 8–30 days.
    assert_eq!(report.sections[3].rows, [vec![text("8-30"), text("KES"), Cell::Integer(1), money(300)]]);
    let fresh = run(&app, &c.treasury, &[Role::Treasury], ReportName::Treasury, &params, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh.sections[3].rows, [vec![text("0-7"), text("KES"), Cell::Integer(1), money(300)]]);
    // One fund as a filter; a requester may not run it.
    let only_b =
        ReportParams { units: UnitFilter { fund_id: Some(b), ..Default::default() }, ..params.clone() };
    let report =
        run(&app, &c.treasury, &[Role::Treasury], ReportName::Treasury, &only_b, now).await.unwrap().unwrap();
    assert_eq!(report.sections[0].rows.len(), 1);
    assert_eq!(report.sections[1].rows.len(), 0);
    assert!(run(&app, &c.staff, &[Role::Staff], ReportName::Treasury, &params, now).await.is_none());
}

#[tokio::test]
async fn user_activity_counts_requests_actions_payments_and_sign_ins() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let r = app.send(Some(&c.admin), Method::PUT, "/api/approval-policy/thresholds", Some(policy())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fund = app.fund_in(&c.admin, "100000", "KES").await;
    let start = Utc::now() - Duration::minutes(1);
    paid(&app, &c, fund, "100").await;
    paid(&app, &c, fund, "200").await;
    let rejected = app.submitted(&c.staff, fund, "300").await;
    act(&app, &c.head, rejected, "reject", json!({"reason": "No"})).await;
    // The head signs in twice more (each user signed in once when the cast was made).
    for _ in 0..2 {
        let body = json!({"email": c.head.email, "password": pettycash_tests::PASSWORD});
        assert_eq!(app.send(None, Method::POST, "/api/auth/login", Some(body)).await.status, StatusCode::OK);
    }
    wait_for_projections(&app.pool, &["requisitions", "report_facts"]).await;
    let params = ReportParams {
        from: start,
        to: Utc::now() + Duration::minutes(1),
        units: UnitFilter::default(),
        stuck_days: 7,
        lookback_days: 30,
    };
    let now = Utc::now();
    let report = assert_replay_equal(&app, &c, ReportName::UserActivity, &params, now).await;
    let counts = |u: &TestUser| -> Vec<Cell> { row(&report, 0, "email", &u.email)[2..].to_vec() };
    let n = |v: [i64; 4]| v.map(Cell::Integer).to_vec();
    assert_eq!(counts(&c.staff), n([3, 0, 0, 1]));
    assert_eq!(counts(&c.head), n([0, 3, 0, 3]));
    assert_eq!(counts(&c.treasury), n([0, 0, 2, 1]));
    assert_eq!(counts(&c.gfm), n([0, 0, 0, 1]));
    assert_eq!(figure(&report, "sign_ins"), Cell::Integer(9), "7 of the cast, 2 more");
    assert_eq!(figure(&report, "payments"), Cell::Integer(2));
    // A later period: nobody was active.
    let later = ReportParams { from: params.to, to: params.to + Duration::days(1), ..params.clone() };
    let report =
        run(&app, &c.cfo, &[Role::Cfo], ReportName::UserActivity, &later, now).await.unwrap().unwrap();
    assert_eq!(report.sections[0].rows, Vec::<Vec<Cell>>::new());
    // Only auditors, admins, the CFO and CEO may run it.
    assert!(run(&app, &c.treasury, &[Role::Treasury], ReportName::UserActivity, &params, now)
        .await
        .is_none());
    assert!(run(&app, &c.staff, &[Role::Staff], ReportName::UserActivity, &params, now).await.is_none());
}
