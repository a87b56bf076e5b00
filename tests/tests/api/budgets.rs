//! Expense categories, cost centres and budgets over HTTP (issue #14 [treasury]): a category
//! is required and validated once the company has categories (an inactive or another
//! company's is 422 naming the field), free-text requisitions from before stay readable,
//! budgets consume paid amounts only, an over-budget submission is flagged to the approver
//! (view, inbox, mail) and refused with `budget_block`.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use uuid::Uuid;

/// One company with a department and a cost centre in it, its people, a fund; and another
/// company with its own admin and staff.
struct Org {
    org_admin: TestUser,
    admin: TestUser,
    cfo: TestUser,
    treasury: TestUser,
    staff: TestUser,
    head: TestUser,
    department: Uuid,
    branch: Uuid,
    cost_centre: Uuid,
    fund: Uuid,
    other_admin: TestUser,
    other_staff: TestUser,
}

impl Org {
    async fn build(app: &TestApp) -> Org {
        let org_admin = app.user(&[Role::Admin]).await;
        let policy = json!({"tiers": [{"up_to": null, "chain": ["department_head"]}]});
        let r = app.put(&org_admin, "/api/approval-policy", policy).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let company = app.unit(&org_admin, "company", "ACME", None).await;
        let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
        let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
        let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
        let cost_centre = app.unit(&org_admin, "cost_centre", "CC-1", Some(department)).await;
        let other = app.unit(&org_admin, "company", "GLOBEX", None).await;
        let admin = app.user_in(&[Role::Admin], Some(company)).await;
        let fund = app.fund(&admin, "100000").await;
        Org {
            cfo: app.user_in(&[Role::Cfo], Some(company)).await,
            treasury: app.user_in(&[Role::Treasury], Some(company)).await,
            staff: app.user_in(&[Role::Staff], Some(department)).await,
            head: app.user_in(&[Role::Staff, Role::DepartmentHead], Some(department)).await,
            other_admin: app.user_in(&[Role::Admin], Some(other)).await,
            other_staff: app.user_in(&[Role::Staff], Some(other)).await,
            org_admin,
            admin,
            department,
            branch,
            cost_centre,
            fund,
        }
    }

    async fn category(&self, app: &TestApp, admin: &TestUser, code: &str) -> Uuid {
        let body = json!({"code": code, "name": format!("Category {code}"), "gl_code": "6100"});
        let r = app.post(admin, "/api/categories", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.id()
    }

    async fn create(&self, app: &TestApp, amount: &str, extra: Value) -> Reply {
        let mut body = json!({"fund_id": self.fund, "amount": amount, "purpose": "Toner"});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        app.post(&self.staff, "/api/requisitions/", body).await
    }

    /// The department's budget for this month.
    async fn budget(&self, app: &TestApp, amount: &str) -> Reply {
        let body = json!({"scope": "department", "scope_id": self.department, "month": this_month(),
                          "currency": "KES", "amount": amount});
        let r = app.put(&self.cfo, "/api/budgets", body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r
    }

    /// Creates, submits, approves and (when `pay`) pays a requisition of `amount`.
    async fn spent(&self, app: &TestApp, category: Uuid, amount: &str, pay: bool) -> Uuid {
        let r = self.create(app, amount, json!({"category_id": category, "submit": true})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.id();
        app.approve_by(id, &[&self.head]).await;
        if pay {
            let r = app.pay(&self.treasury, id).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        }
        id
    }

    /// Budget against actual for this month, once the read models hold everything so far.
    async fn report(&self, app: &TestApp, user: &TestUser) -> Reply {
        wait_for_projections(&app.pool, &["budgets"]).await;
        app.get(user, &format!("/api/budgets?month={}", this_month())).await
    }
}

fn this_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

fn ids(r: &Reply) -> Vec<Value> {
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {r:?}"))
        .iter()
        .map(|i| i["id"].clone())
        .collect()
}

#[tokio::test]
async fn admins_manage_their_companys_categories_and_its_people_list_them_and_its_cost_centres() {
    let app = TestApp::spawn().await;
    let o = Org::build(&app).await;
    let office = o.category(&app, &o.admin, " office ").await;
    let r = app.get(&o.staff, "/api/categories").await;
    assert_eq!(r.body["items"][0]["code"], "OFFICE", "{r:?}");
    assert_eq!(
        (r.body["items"][0]["gl_code"].as_str(), r.body["items"][0]["active"].as_bool()),
        (Some("6100"), Some(true))
    );

    let body = json!({"code": "Office", "name": "Again", "gl_code": "6200"});
    let taken = app.post(&o.admin, "/api/categories", body.clone()).await;
    assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "code_taken"), "{taken:?}");
    let staff =
        app.post(&o.staff, "/api/categories", json!({"code": "X", "name": "X", "gl_code": "1"})).await;
    assert_eq!(staff.status, StatusCode::FORBIDDEN, "{staff:?}");
    // The same code is free in another company, whose people see only their own.
    o.category(&app, &o.other_admin, "OFFICE").await;
    assert_eq!(ids(&app.get(&o.other_staff, "/api/categories").await).len(), 1);
    assert_eq!(ids(&app.get(&o.staff, "/api/categories").await), vec![json!(office)]);

    let r = app.patch(&o.admin, &format!("/api/categories/{office}"), json!({"name": "Stationery"})).await;
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("Stationery")), "{r:?}");
    let foreign =
        app.patch(&o.other_admin, &format!("/api/categories/{office}"), json!({"name": "Mine"})).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another company's category: {foreign:?}");
    let r = app.post(&o.admin, &format!("/api/categories/{office}/deactivate"), json!({})).await;
    assert_eq!(r.body["active"], false, "{r:?}");

    let r = app.get(&o.staff, "/api/cost-centres").await;
    assert_eq!(ids(&r), vec![json!(o.cost_centre)], "{r:?}");
    assert_eq!(r.body["items"][0]["department_id"], json!(o.department));
    assert!(ids(&app.get(&o.other_staff, "/api/cost-centres").await).is_empty());
}

#[tokio::test]
async fn a_category_is_required_and_validated_once_the_company_has_categories() {
    let app = TestApp::spawn().await;
    let o = Org::build(&app).await;
    // No categories yet: the free text is a label, as before.
    let before = o.create(&app, "100", json!({"category": "office"})).await;
    assert_eq!(before.status, StatusCode::CREATED, "{before:?}");
    assert_eq!((&before.body["category"], &before.body["category_id"]), (&json!("office"), &Value::Null));

    let office = o.category(&app, &o.admin, "OFFICE").await;
    let fuel = o.category(&app, &o.admin, "FUEL").await;
    let foreign = o.category(&app, &o.other_admin, "TRAVEL").await;
    app.post(&o.admin, &format!("/api/categories/{fuel}/deactivate"), json!({})).await;

    for (extra, field) in [
        (json!({}), "category_id"),
        (json!({"category_id": fuel}), "category_id"),
        (json!({"category_id": foreign}), "category_id"),
        (json!({"category": "travel"}), "category"),
        (json!({"category_id": office, "cost_centre_id": o.department}), "cost_centre_id"),
    ] {
        let r = o.create(&app, "100", extra.clone()).await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{extra}: {r:?}");
    }
    // The old field still works: a code or name of an active category chooses it.
    let by_text = o.create(&app, "100", json!({"category": "office"})).await;
    assert_eq!(
        (by_text.status, &by_text.body["category_id"]),
        (StatusCode::CREATED, &json!(office)),
        "{by_text:?}"
    );
    let chosen = o.create(&app, "100", json!({"category_id": office, "cost_centre_id": o.cost_centre})).await;
    assert_eq!(chosen.body["chosen_cost_centre_id"], json!(o.cost_centre), "{chosen:?}");

    // The draft from before categories needs one to be submitted, given then or by an edit.
    let draft = before.id();
    let r = app.post(&o.staff, &format!("/api/requisitions/{draft}/submit"), json!({})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "category_id"), "{r:?}");
    let r = app.patch(&o.staff, &format!("/api/requisitions/{draft}"), json!({"category_id": foreign})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "category_id"), "{r:?}");
    let r = app
        .post(&o.staff, &format!("/api/requisitions/{draft}/submit"), json!({"category_id": office}))
        .await;
    assert_eq!((r.status, &r.body["status"]), (StatusCode::OK, &json!("pending_approval")), "{r:?}");
    assert_eq!(
        (&r.body["category_id"], &r.body["category"]),
        (&json!(office), &json!("office")),
        "label kept"
    );
}

/// Inserts a `RequisitionCreated` of version 1 (before units and categories) with a free-text
/// category, signed as the service would have.
async fn insert_v1_requisition(app: &TestApp, fund: Uuid, requester: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let payload = json!({"RequisitionCreated": {"requisition_id": id, "fund_id": fund, "currency": "KES",
        "amount": "42.00", "purpose": "From before categories", "payee": null, "category": "Stationery",
        "requester_id": requester}});
    let metadata = pettycash_tests::signed_metadata(
        "requisition",
        &id.to_string(),
        1,
        "RequisitionCreated",
        &payload,
        &json!({"actor_id": requester.to_string()}),
    );
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('requisition', $1, 1, 'RequisitionCreated', '1', $2, $3)",
    )
    .bind(id.to_string())
    .bind(payload)
    .bind(metadata)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_free_text_requisition_from_before_categories_stays_readable_with_its_label() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000").await;
    let id = insert_v1_requisition(&app, fund, staff.id).await;
    let r = app.get(&staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!((&r.body["category"], &r.body["category_id"]), (&json!("Stationery"), &Value::Null));
    wait_for_projections(&app.pool, &["requisitions", "budgets"]).await;
    let list = app.get(&staff, "/api/requisitions/").await;
    let row = list.body["items"].as_array().unwrap().iter().find(|i| i["id"] == json!(id)).cloned();
    assert_eq!(row.map(|r| r["category"].clone()), Some(json!("Stationery")), "{list:?}");
    let history = app.get(&staff, &format!("/api/requisitions/{id}/history")).await;
    assert_eq!(history.body[0]["event_version"], "1");
    // It can still be submitted: its company (none) has no categories.
    let r = app.post(&staff, &format!("/api/requisitions/{id}/submit"), json!({})).await;
    assert_eq!((r.status, &r.body["category"]), (StatusCode::OK, &json!("Stationery")), "{r:?}");
}

#[tokio::test]
async fn budgets_consume_paid_amounts_only() {
    let app = TestApp::spawn().await;
    let o = Org::build(&app).await;
    let office = o.category(&app, &o.admin, "OFFICE").await;
    let set = o.budget(&app, "1000").await;
    assert_eq!((set.body["amount"].as_str(), set.body["consumed"].as_str()), (Some("1000.00"), Some("0")));
    o.spent(&app, office, "300", true).await;
    // Approved, not paid: consumes nothing.
    o.spent(&app, office, "200", false).await;
    let r = o.report(&app, &o.cfo).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let line = &r.body["items"][0];
    assert_eq!(
        (line["scope"].as_str(), line["scope_code"].as_str(), line["amount"].as_str()),
        (Some("department"), Some("OPS"), Some("1000.00"))
    );
    assert_eq!(
        (line["consumed"].as_str(), line["remaining"].as_str()),
        (Some("300.00"), Some("700.00")),
        "{r:?}"
    );
    let staff = app.get(&o.staff, &format!("/api/budgets?month={}", this_month())).await;
    assert_eq!(staff.status, StatusCode::FORBIDDEN, "{staff:?}");
    let bad = app.get(&o.cfo, "/api/budgets?month=2026-13").await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "month"), "{bad:?}");
    // Another company sees none of it.
    let other = app.user_in(&[Role::Cfo], None).await;
    assert!(o.report(&app, &other).await.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_over_budget_submission_is_flagged_to_the_approver_in_the_view_inbox_and_mail() {
    let app = TestApp::spawn().await;
    let o = Org::build(&app).await;
    let office = o.category(&app, &o.admin, "OFFICE").await;
    let budget = o.budget(&app, "1000").await.body["budget_id"].clone();
    o.spent(&app, office, "800", true).await;
    wait_for_projections(&app.pool, &["budgets"]).await;

    // Exactly the budget: not over.
    let within = o.create(&app, "200", json!({"category_id": office, "submit": true})).await;
    assert_eq!(within.body["budget_exceeded"], json!([]), "{within:?}");
    let over = o.create(&app, "300", json!({"category_id": office, "submit": true})).await;
    assert_eq!(over.status, StatusCode::CREATED, "flagged, not blocked: {over:?}");
    let flag = &over.body["budget_exceeded"][0];
    assert_eq!(
        (&flag["budget_id"], flag["budget"].as_str(), flag["consumed"].as_str(), flag["amount"].as_str()),
        (&budget, Some("1000.00"), Some("800.00"), Some("300.00")),
        "{over:?}"
    );
    let id = over.id();
    let view = app.get(&o.head, &format!("/api/requisitions/{id}")).await;
    assert_eq!(view.body["budget_exceeded"][0]["budget_id"], budget);

    wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(&o.head, "/api/approvals").await;
    let row = inbox.body["items"].as_array().unwrap().iter().find(|i| i["id"] == json!(id)).cloned();
    assert_eq!(row.map(|r| r["budget_exceeded"][0]["consumed"].clone()), Some(json!("800.00")), "{inbox:?}");

    wait_for_projections(&app.pool, &["notifications"]).await;
    let mails: Vec<String> = sqlx::query_scalar(
        "SELECT body_text FROM mail_outbox WHERE recipient_email = $1 AND body_text LIKE '%Over budget%'",
    )
    .bind(&o.head.email)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(mails.len(), 1, "one approval request over budget");
    assert!(mails[0].contains("department budget"), "{}", mails[0]);
}

#[tokio::test]
async fn with_budget_block_an_over_budget_submission_is_refused_and_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    let o = Org::build(&app).await;
    let office = o.category(&app, &o.admin, "OFFICE").await;
    let r = app.put(&o.org_admin, "/api/settings/budget_block", json!({"value": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let budget = o.budget(&app, "500").await.body["budget_id"].as_str().unwrap().to_string();

    let events = app.event_count().await;
    let r = o.create(&app, "500.01", json!({"category_id": office, "submit": true})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "budget_exceeded"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains(&budget), "names the budget: {r:?}");
    assert_eq!(app.event_count().await, events, "nothing recorded");

    let draft = o.create(&app, "600", json!({"category_id": office})).await.id();
    let r = app.post(&o.staff, &format!("/api/requisitions/{draft}/submit"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "budget_exceeded"), "{r:?}");
    let view = app.get(&o.staff, &format!("/api/requisitions/{draft}")).await;
    assert_eq!(view.body["status"], "draft");
    // Within the budget it goes through; a cost centre's budget covers what chose it.
    let ok = o.create(&app, "500", json!({"category_id": office, "submit": true})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
    let cc = json!({"scope": "cost_centre", "scope_id": o.cost_centre, "month": this_month(),
                    "currency": "KES", "amount": "10"});
    assert_eq!(app.put(&o.cfo, "/api/budgets", cc).await.status, StatusCode::OK);
    let r = o
        .create(&app, "11", json!({"category_id": office, "cost_centre_id": o.cost_centre, "submit": true}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "budget_exceeded"), "{r:?}");
    let branch = json!({"scope": "department", "scope_id": o.branch, "month": this_month(),
                        "currency": "KES", "amount": "10"});
    let r = app.put(&o.cfo, "/api/budgets", branch).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "scope_id"),
        "a branch is no department: {r:?}"
    );
}
