//! The figures of the `transactions`, `spending`, `budget-vs-actual` and `forecast` reports
//! (issue #15 [reports]): a small history seeded over HTTP, the expected figures computed here
//! from what was seeded, the visibility per role (a requester gets their own; another
//! company's unit or fund is not found), the CSV stream's rows, and the same report replayed
//! from the events.

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use pettycash_domain::organisation::UnitPath;
use pettycash_domain::report::{Cell, Report, ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_domain::{Actor, Role};
use pettycash_projections::reports::{self, ReportContext, ReportError};
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The actor of `user` as the API builds it (roles and unit path from the `users` row).
pub(crate) async fn actor(app: &TestApp, user: &TestUser) -> Actor {
    type Row =
        (Vec<String>, Option<Uuid>, Option<Uuid>, Option<Uuid>, Option<Uuid>, Option<Uuid>, Option<Uuid>);
    let (roles, unit, company, region, branch, department, cost_centre): Row = sqlx::query_as(
        "SELECT roles, unit_id, company_id, region_id, branch_id, department_id, cost_centre_id \
         FROM users WHERE id = $1",
    )
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let path = unit.zip(company).map(|(unit_id, company)| UnitPath {
        unit_id,
        company,
        region,
        branch,
        department,
        cost_centre,
    });
    Actor::new(user.id, roles.iter().filter_map(|r| r.parse::<Role>().ok())).in_unit(path)
}

struct World {
    staff_a: TestUser,
    staff_b: TestUser,
    treasury: TestUser,
    cfo: TestUser,
    auditor: TestUser,
    other_admin: TestUser,
    company: Uuid,
    branch: Uuid,
    department: Uuid,
    cost_centre: Uuid,
    other_branch: Uuid,
    fund: Uuid,
    other_fund: Uuid,
    /// Every requisition created: (requester is A, amount, paid, category code).
    paid_a: Vec<Decimal>,
}

/// One company (region, branch, department, cost centre, a KES fund of 100,000 with reorder
/// level 90,000, categories OFFICE and FUEL, budgets) and another company with its own branch
/// and fund. A pays 1,000 (OFFICE, charged to the cost centre) and 250.50 (FUEL) and keeps a
/// draft of 300; B pays 400 (OFFICE) and has 700 pending.
async fn seed(app: &TestApp) -> World {
    let org_admin = app.user(&[Role::Admin]).await;
    let policy = json!({"tiers": [{"up_to": null, "chain": ["department_head"]}]});
    assert_eq!(app.put(&org_admin, "/api/approval-policy", policy).await.status, StatusCode::OK);
    let company = app.unit(&org_admin, "company", "ACME", None).await;
    let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
    let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
    let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
    let cost_centre = app.unit(&org_admin, "cost_centre", "CC-1", Some(department)).await;
    let other = app.unit(&org_admin, "company", "GLOBEX", None).await;
    let other_region = app.unit(&org_admin, "region", "WEST", Some(other)).await;
    let other_branch = app.unit(&org_admin, "branch", "MSA", Some(other_region)).await;
    let admin = app.user_in(&[Role::Admin], Some(company)).await;
    let other_admin = app.user_in(&[Role::Admin], Some(other)).await;
    let body = json!({"name": "Ops fund", "currency": "KES", "float": "100000", "reorder_level": "90000"});
    let r = app.post(&admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let fund = r.id();
    let other_fund = app.fund(&other_admin, "5000").await;
    let w = World {
        staff_a: app.user_in(&[Role::Staff], Some(department)).await,
        staff_b: app.user_in(&[Role::Staff], Some(department)).await,
        treasury: app.user_in(&[Role::Treasury], Some(company)).await,
        cfo: app.user_in(&[Role::Cfo], Some(company)).await,
        auditor: app.user_in(&[Role::Auditor], Some(company)).await,
        other_admin,
        company,
        branch,
        department,
        cost_centre,
        other_branch,
        fund,
        other_fund,
        paid_a: vec![d("1000"), d("250.50")],
    };
    let head = app.user_in(&[Role::Staff, Role::DepartmentHead], Some(department)).await;
    let mut categories = std::collections::HashMap::new();
    for code in ["OFFICE", "FUEL"] {
        let body = json!({"code": code, "name": format!("Category {code}"), "gl_code": "6100"});
        let r = app.post(&admin, "/api/categories", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        categories.insert(code, r.id());
    }
    let month = Utc::now().format("%Y-%m").to_string();
    for (scope, id, amount) in [("department", department, "1500"), ("cost_centre", cost_centre, "1000")] {
        let body =
            json!({"scope": scope, "scope_id": id, "month": month, "currency": "KES", "amount": amount});
        let r = app.put(&w.cfo, "/api/budgets", body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let create = |who: &TestUser, amount: &str, category: &str, submit: bool, cc: Option<Uuid>| {
        let mut body = json!({"fund_id": fund, "amount": amount, "purpose": "Toner",
                              "category_id": categories[category], "submit": submit});
        if let Some(cc) = cc {
            body["cost_centre_id"] = json!(cc);
        }
        let who = TestUser { id: who.id, email: who.email.clone(), token: who.token.clone() };
        async move {
            let r = app.post(&who, "/api/requisitions/", body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            r.id()
        }
    };
    for (who, amount, category, cc) in [
        (&w.staff_a, "1000", "OFFICE", Some(cost_centre)),
        (&w.staff_a, "250.50", "FUEL", None),
        (&w.staff_b, "400", "OFFICE", None),
    ] {
        let id = create(who, amount, category, true, cc).await;
        app.approve_by(id, &[&head]).await;
        let r = app.pay(&w.treasury, id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    create(&w.staff_a, "300", "OFFICE", false, None).await;
    create(&w.staff_b, "700", "FUEL", true, None).await;
    wait_for_projections(&app.pool, &["requisitions", "budgets", "cash"]).await;
    w
}

fn params(units: UnitFilter, now: DateTime<Utc>) -> ReportParams {
    ReportParams { from: now - Duration::days(30), to: now, units, stuck_days: 7, lookback_days: 30 }
}

async fn run(
    app: &TestApp,
    user: &TestUser,
    name: ReportName,
    units: UnitFilter,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let actor = actor(app, user).await;
    let scope = ReportScope::of(&actor, name).expect("may run it");
    let ctx = ReportContext { pool: app.pool.clone(), actor, scope, params: params(units, now), now };
    reports::run(name, &ctx).await
}

/// The cells of column `key` of section `section`.
fn column(r: &Report, section: &str, key: &str) -> Vec<Cell> {
    let s = r.sections.iter().find(|s| s.key == section).unwrap_or_else(|| panic!("no {section}"));
    let i = s.columns.iter().position(|c| c.key == key).unwrap_or_else(|| panic!("no {key}"));
    s.rows.iter().map(|row| row[i].clone()).collect()
}

fn figure(r: &Report, key: &str) -> Cell {
    r.summary
        .iter()
        .find(|f| f.key == key)
        .unwrap_or_else(|| panic!("no {key}: {:?}", r.summary))
        .value
        .clone()
}

/// The replay from the events, as an auditor of the company, equals the read models' report
/// run by that auditor, figure by figure.
async fn replay_equals(app: &TestApp, w: &World, name: ReportName, units: UnitFilter, now: DateTime<Utc>) {
    let from_models = run(app, &w.auditor, name, units, now).await.unwrap();
    let actor = actor(app, &w.auditor).await;
    let scope = ReportScope::of(&actor, name).unwrap();
    let replayed = reports::replay(name, &app.pool, &scope, &params(units, now), now).await.unwrap();
    assert_eq!(replayed.sections, from_models.sections, "{name}: sections");
    assert_eq!(replayed.summary, from_models.summary, "{name}: summary");
    assert_eq!(replayed.filters, from_models.filters, "{name}: filters");
    assert!(from_models.sections.iter().any(|s| !s.rows.is_empty()), "{name}: compares something");
}

#[tokio::test]
async fn transactions_and_spending_figures_visibility_stream_and_replay() {
    let app = TestApp::spawn().await;
    let w = seed(&app).await;
    let now = Utc::now() + Duration::seconds(1);
    let none = UnitFilter::default();

    // Treasury: every requisition of the company created in the period, drafts excepted
    // (treasury sees submitted ones) — 1000, 250.50, 400, 700.
    let t = run(&app, &w.treasury, ReportName::Transactions, none, now).await.unwrap();
    let seen: Vec<Decimal> = [d("1000"), d("250.50"), d("400"), d("700")].into();
    let sum: Decimal = seen.iter().sum();
    let mut amounts: Vec<Cell> = column(&t, "requisitions", "amount");
    amounts.sort_by_key(|c| c.to_string());
    let mut expected: Vec<Cell> = seen.iter().map(|a| Cell::Money(*a)).collect();
    expected.sort_by_key(|c| c.to_string());
    assert_eq!(amounts, expected);
    assert_eq!(figure(&t, "count"), Cell::Integer(seen.len() as i64));
    assert_eq!(figure(&t, "sum"), Cell::Money(sum));
    let average = (sum / Decimal::from(seen.len()))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    assert_eq!(figure(&t, "average"), Cell::Money(average));
    assert_eq!(average, d("587.63"), "2350.50 / 4, half away from zero");
    assert_eq!(t.summary[0].currency.as_deref(), Some("KES"));
    let statuses = column(&t, "requisitions", "status");
    assert_eq!(statuses.iter().filter(|s| **s == Cell::Text("paid".into())).count(), 3, "{statuses:?}");
    assert!(column(&t, "requisitions", "department").iter().all(|c| c.to_string().starts_with("OPS")));
    assert!(column(&t, "requisitions", "branch").iter().all(|c| c.to_string().starts_with("NBI")));
    let json = pettycash_tests::serde_json::to_value(&t).unwrap();
    assert_eq!(json["name"], "transactions");
    assert_eq!(json["sections"][0]["columns"][8]["kind"], "money");

    // A requester: their own, draft included (300), nobody else's.
    let own = run(&app, &w.staff_a, ReportName::Transactions, none, now).await.unwrap();
    let mine = [d("1000"), d("250.50"), d("300")];
    assert_eq!(figure(&own, "count"), Cell::Integer(3));
    assert_eq!(figure(&own, "sum"), Cell::Money(mine.iter().sum()));
    assert!(column(&own, "requisitions", "requester_email")
        .iter()
        .all(|e| *e == Cell::Text(w.staff_a.email.clone())));
    // Another company's admin sees none of it.
    let other = run(&app, &w.other_admin, ReportName::Transactions, none, now).await.unwrap();
    assert!(other.sections[0].rows.is_empty() && other.summary.is_empty(), "{other:?}");

    // Unit filters: the company's own narrow; another company's branch or fund is not found.
    let in_branch = UnitFilter { branch_id: Some(w.branch), ..none };
    let t2 = run(&app, &w.treasury, ReportName::Transactions, in_branch, now).await.unwrap();
    assert_eq!(t2.sections, t.sections);
    assert_eq!(t2.filters[0].0, "Branch");
    for (filter, field) in [
        (UnitFilter { branch_id: Some(w.other_branch), ..none }, "branch_id"),
        (UnitFilter { fund_id: Some(w.other_fund), ..none }, "fund_id"),
        (UnitFilter { department_id: Some(w.branch), ..none }, "department_id"),
        (UnitFilter { company_id: Some(Uuid::now_v7()), ..none }, "company_id"),
    ] {
        for name in [ReportName::Transactions, ReportName::Spending] {
            match run(&app, &w.treasury, name, filter, now).await {
                Err(ReportError::NotFound { field: f }) => assert_eq!(f, field),
                other => panic!("{name} {field}: {other:?}"),
            }
        }
    }
    let cc = UnitFilter { cost_centre_id: Some(w.cost_centre), ..none };
    let charged = run(&app, &w.treasury, ReportName::Spending, cc, now).await.unwrap();
    assert_eq!(figure(&charged, "paid"), Cell::Money(d("1000")), "charged to the cost centre");

    // The CSV stream: the same rows in the same order.
    let actor_t = actor(&app, &w.treasury).await;
    let ctx = ReportContext {
        pool: app.pool.clone(),
        scope: ReportScope::of(&actor_t, ReportName::Transactions).unwrap(),
        actor: actor_t,
        params: params(none, now),
        now,
    };
    let (columns, rows) = reports::stream(ReportName::Transactions, &ctx).expect("streamed");
    let rows: Vec<Vec<Cell>> = rows.try_collect().await.unwrap();
    assert_eq!(columns, t.sections[0].columns);
    assert_eq!(rows, t.sections[0].rows);
    // Another company's branch: the stream yields not found, never a row.
    let foreign =
        ReportContext { params: params(UnitFilter { branch_id: Some(w.other_branch), ..none }, now), ..ctx };
    let (_, mut rows) = reports::stream(ReportName::Transactions, &foreign).unwrap();
    match rows.try_next().await {
        Err(ReportError::NotFound { field }) => assert_eq!(field, "branch_id"),
        other => panic!("{other:?}"),
    }

    // Spending: paid only (1000 + 250.50 + 400), per month by each dimension.
    let s = run(&app, &w.treasury, ReportName::Spending, none, now).await.unwrap();
    let paid = d("1000") + w.paid_a[1] + d("400");
    assert_eq!(figure(&s, "paid"), Cell::Money(paid));
    assert_eq!(figure(&s, "payments"), Cell::Integer(3));
    let month = Utc::now().format("%Y-%m").to_string();
    let by = |section: &str| -> Vec<(String, Cell)> {
        let names = column(&s, section, "name");
        let amounts = column(&s, section, "amount");
        assert!(column(&s, section, "month").iter().all(|m| *m == Cell::Text(month.clone())));
        names.iter().map(|n| n.to_string()).zip(amounts).collect()
    };
    assert_eq!(
        by("by_category"),
        vec![
            ("Category FUEL".to_string(), Cell::Money(d("250.50"))),
            ("Category OFFICE".to_string(), Cell::Money(d("1400")))
        ]
    );
    let requesters = by("by_requester");
    let of = |u: &TestUser| requesters.iter().find(|(n, _)| n.contains(&u.email)).map(|(_, a)| a.clone());
    assert_eq!(of(&w.staff_a), Some(Cell::Money(w.paid_a.iter().sum())));
    assert_eq!(of(&w.staff_b), Some(Cell::Money(d("400"))));
    let cost_centres = by("by_cost_centre");
    assert_eq!(cost_centres.len(), 2, "{cost_centres:?}");
    assert!(cost_centres.contains(&("CC-1 — cost_centre CC-1".to_string(), Cell::Money(d("1000")))));
    assert!(cost_centres.contains(&("(none)".to_string(), Cell::Money(d("650.50")))));
    assert_eq!(by("by_department"), vec![("OPS — department OPS".to_string(), Cell::Money(paid))]);
    assert_eq!(by("by_branch"), vec![("NBI — branch NBI".to_string(), Cell::Money(paid))]);
    // A requester's spending is their own.
    let own = run(&app, &w.staff_b, ReportName::Spending, none, now).await.unwrap();
    assert_eq!(figure(&own, "paid"), Cell::Money(d("400")));
    // An empty period has no figures.
    let before = now - Duration::days(60);
    let empty = run(&app, &w.treasury, ReportName::Spending, none, before).await.unwrap();
    assert!(empty.summary.is_empty() && empty.sections.iter().all(|s| s.rows.is_empty()));

    replay_equals(&app, &w, ReportName::Transactions, none, now).await;
    replay_equals(&app, &w, ReportName::Spending, none, now).await;
    replay_equals(&app, &w, ReportName::Transactions, in_branch, now).await;
    replay_equals(&app, &w, ReportName::Spending, cc, now).await;
}

#[tokio::test]
async fn budget_against_actual_and_forecast_figures_visibility_and_replay() {
    let app = TestApp::spawn().await;
    let w = seed(&app).await;
    let now = Utc::now() + Duration::seconds(1);
    let none = UnitFilter::default();
    let paid = d("1000") + d("250.50") + d("400");

    // Budget against actual: the department's 1500 against everything paid in it; the cost
    // centre's 1000 against what was charged to it. Finance only.
    let b = run(&app, &w.cfo, ReportName::BudgetVsActual, none, now).await.unwrap();
    let pct = |a: Decimal, b: Decimal| {
        (a * Decimal::ONE_HUNDRED / b)
            .round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    };
    assert_eq!(column(&b, "departments", "budget"), vec![Cell::Money(d("1500"))]);
    assert_eq!(column(&b, "departments", "actual"), vec![Cell::Money(paid)]);
    assert_eq!(column(&b, "departments", "variance"), vec![Cell::Money(d("1500") - paid)]);
    assert_eq!(column(&b, "departments", "percent"), vec![Cell::Percent(pct(paid, d("1500")))]);
    assert_eq!(column(&b, "cost_centres", "actual"), vec![Cell::Money(d("1000"))]);
    assert_eq!(column(&b, "cost_centres", "percent"), vec![Cell::Percent(d("100.0"))]);
    assert!(column(&b, "branches", "unit").is_empty());
    assert_eq!(figure(&b, "budgets"), Cell::Integer(2));
    assert_eq!(figure(&b, "over_budget"), Cell::Integer(1));
    // The department filter keeps both (the cost centre lies in it); the company's branch too.
    let dep = UnitFilter { department_id: Some(w.department), ..none };
    assert_eq!(run(&app, &w.cfo, ReportName::BudgetVsActual, dep, now).await.unwrap().sections, b.sections);
    let cc = UnitFilter { cost_centre_id: Some(w.cost_centre), ..none };
    let only_cc = run(&app, &w.cfo, ReportName::BudgetVsActual, cc, now).await.unwrap();
    assert_eq!(figure(&only_cc, "budgets"), Cell::Integer(1));
    match run(
        &app,
        &w.cfo,
        ReportName::BudgetVsActual,
        UnitFilter { branch_id: Some(w.other_branch), ..none },
        now,
    )
    .await
    {
        Err(ReportError::NotFound { field }) => assert_eq!(field, "branch_id"),
        other => panic!("{other:?}"),
    }
    let staff = actor(&app, &w.staff_a).await;
    assert!(ReportScope::of(&staff, ReportName::BudgetVsActual).is_none(), "not a requester's");
    assert!(ReportScope::of(&staff, ReportName::Forecast).is_none(), "not a requester's");
    // Another company's finance sees none of these budgets.
    let other = run(&app, &w.other_admin, ReportName::BudgetVsActual, none, now).await.unwrap();
    assert!(other.sections.iter().all(|s| s.rows.is_empty()));

    // Forecast: the fund spent `paid` in the last 30 days; balance 100000 − paid; reorder
    // level 90000.
    let f = run(&app, &w.treasury, ReportName::Forecast, none, now).await.unwrap();
    let balance = d("100000") - paid;
    let rate = paid / Decimal::from(30);
    let days = ((balance - d("90000")) / rate).ceil();
    assert_eq!(column(&f, "funds", "balance"), vec![Cell::Money(balance)]);
    assert_eq!(column(&f, "funds", "spent"), vec![Cell::Money(paid)]);
    assert_eq!(column(&f, "funds", "daily_spend"), vec![Cell::Money(rate.round_dp(2))]);
    let days_i: i64 = days.to_string().parse().unwrap();
    assert_eq!(column(&f, "funds", "days_left"), vec![Cell::Integer(days_i)]);
    assert_eq!(
        column(&f, "funds", "reorder_date"),
        vec![Cell::Date(now.date_naive() + Duration::days(days_i))]
    );
    assert_eq!(figure(&f, "predicted"), Cell::Integer(1));
    // A fund filter of its own company narrows to it; another company's is not found.
    let mine = UnitFilter { fund_id: Some(w.fund), ..none };
    assert_eq!(run(&app, &w.treasury, ReportName::Forecast, mine, now).await.unwrap().sections, f.sections);
    match run(
        &app,
        &w.treasury,
        ReportName::Forecast,
        UnitFilter { fund_id: Some(w.other_fund), ..none },
        now,
    )
    .await
    {
        Err(ReportError::NotFound { field }) => assert_eq!(field, "fund_id"),
        other => panic!("{other:?}"),
    }
    // Forecast as of 60 days ago: the fund did not exist yet.
    let early = run(&app, &w.treasury, ReportName::Forecast, none, now - Duration::days(60)).await.unwrap();
    assert!(early.sections[0].rows.is_empty());
    // The other company's fund spent nothing: no prediction, and the note says why.
    let theirs = run(&app, &w.other_admin, ReportName::Forecast, none, now).await.unwrap();
    assert_eq!(column(&theirs, "funds", "balance"), vec![Cell::Money(d("5000"))]);
    assert_eq!(column(&theirs, "funds", "note"), vec![Cell::Text("no reorder level".into())]);
    assert_eq!(column(&theirs, "funds", "days_left"), vec![Cell::Empty]);
    let company = UnitFilter { company_id: Some(w.company), ..none };
    assert_eq!(
        run(&app, &w.treasury, ReportName::Forecast, company, now).await.unwrap().sections,
        f.sections
    );

    replay_equals(&app, &w, ReportName::BudgetVsActual, none, now).await;
    replay_equals(&app, &w, ReportName::Forecast, none, now).await;
    replay_equals(&app, &w, ReportName::BudgetVsActual, cc, now).await;
    replay_equals(&app, &w, ReportName::Forecast, mine, now).await;
}

/// A year of transactions as CSV rows streams at ≥ 50,000 rows a second (issue #15's target on
/// the 1M-event store; here 300,000 requisition rows written straight into the read model), in
/// the order of the report. A measurement, so not run by default:
/// `cargo test --release -p pettycash-tests --test api a_years_transactions -- --ignored`.
#[tokio::test]
#[ignore = "a measurement"]
async fn a_years_transactions_stream_at_fifty_thousand_rows_a_second() {
    let app = TestApp::spawn().await;
    let treasury = app.user(&[Role::Treasury]).await;
    let staff = app.user(&[Role::Staff]).await;
    wait_for_projections(&app.pool, &["requisitions"]).await;
    const ROWS: i64 = 300_000;
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO rm_requisitions (id, fund_id, requester_id, status, amount, currency, purpose, category, \
         chain, approvers, step_from, reminded, escalated, created_at, submitted_at, updated_at, last_position, \
         duplicates_pending) \
         SELECT gen_random_uuid(), gen_random_uuid(), $1, 'paid', (i % 5000) + 0.5, 'KES', 'Toner', 'office', \
         '[\"department_head\"]', '[]', 1, false, false, $2 - (i * interval '100 seconds'), $2, $2, i, false \
         FROM generate_series(1, $3) AS i",
    )
    .bind(staff.id)
    .bind(now)
    .bind(ROWS)
    .execute(&app.pool)
    .await
    .unwrap();
    let actor = actor(&app, &treasury).await;
    let ctx = ReportContext {
        pool: app.pool.clone(),
        scope: ReportScope::of(&actor, ReportName::Transactions).unwrap(),
        actor,
        params: ReportParams {
            from: now - Duration::days(366),
            to: now + Duration::seconds(1),
            units: UnitFilter::default(),
            stuck_days: 7,
            lookback_days: 30,
        },
        now,
    };
    let started = std::time::Instant::now();
    let (_, mut rows) = reports::stream(ReportName::Transactions, &ctx).unwrap();
    let (mut count, mut last) = (0i64, None);
    while let Some(row) = rows.try_next().await.unwrap() {
        let at = row[1].clone();
        if let (Some(Cell::DateTime(before)), Cell::DateTime(at)) = (&last, &at) {
            assert!(before <= at, "oldest first");
        }
        last = Some(at);
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    println!("{count} rows in {:?}: {rate:.0} rows/s", started.elapsed());
    assert_eq!(count, ROWS);
    assert!(rate >= 50_000.0, "{rate:.0} rows/s");
}
