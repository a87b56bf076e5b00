//! The organisation (issue #13 [workflow]) over HTTP: units and their rules, users in units,
//! what each role sees across departments, branches, regions and companies, deactivation,
//! and version-1 requisitions (from before units) still loading and listing.
//!
//! The world: two companies. ACME has the regions EAST (branches NBI with the departments
//! NBI-OPS and NBI-FIN, and MSA with MSA-OPS) and WEST (branch KSM with KSM-OPS); GLOBEX has
//! GEAST, its branch GNBI and department GOPS. Each company has its admin, cfo, treasurer,
//! auditor and fund; requesters, department heads, branch and regional managers sit in their
//! units. The policy asks a department head up to 1,000, then also the branch manager up to
//! 10,000, then also the regional manager and the cfo.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{TestApp, TestUser};
use reqwest::{Method, StatusCode};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

pub struct Company {
    pub id: Uuid,
    pub admin: TestUser,
    pub cfo: TestUser,
    pub treasury: TestUser,
    pub auditor: TestUser,
    pub fund: Uuid,
}

pub struct World {
    /// The organisation's admin: of no unit.
    pub org_admin: TestUser,
    pub acme: Company,
    pub globex: Company,
    /// Unit ids by code.
    pub units: HashMap<&'static str, Uuid>,
    /// People in units, by a name: `staff@NBI-OPS`, `head@NBI-OPS`, `manager@NBI`,
    /// `regional@EAST`, ...
    pub people: HashMap<String, TestUser>,
}

impl World {
    pub fn unit(&self, code: &str) -> Uuid {
        self.units[code]
    }

    pub fn person(&self, name: &str) -> &TestUser {
        self.people.get(name).unwrap_or_else(|| panic!("no {name}"))
    }

    pub async fn build(app: &TestApp) -> World {
        let org_admin = app.user(&[Role::Admin]).await;
        let policy = json!({"tiers": [
            {"up_to": "1000", "chain": ["department_head"]},
            {"up_to": "10000", "chain": ["department_head", "branch_manager"]},
            {"up_to": null, "chain": ["department_head", "branch_manager", "regional_manager", "cfo"]},
        ]});
        let r = app.put(&org_admin, "/api/approval-policy", policy).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let mut units = HashMap::new();
        // (kind, code, parent code)
        let plan: [(&str, &'static str, Option<&str>); 14] = [
            ("company", "ACME", None),
            ("region", "EAST", Some("ACME")),
            ("branch", "NBI", Some("EAST")),
            ("department", "NBI-OPS", Some("NBI")),
            ("department", "NBI-FIN", Some("NBI")),
            ("branch", "MSA", Some("EAST")),
            ("department", "MSA-OPS", Some("MSA")),
            ("region", "WEST", Some("ACME")),
            ("branch", "KSM", Some("WEST")),
            ("department", "KSM-OPS", Some("KSM")),
            ("company", "GLOBEX", None),
            ("region", "GEAST", Some("GLOBEX")),
            ("branch", "GNBI", Some("GEAST")),
            ("department", "GOPS", Some("GNBI")),
        ];
        for (kind, code, parent) in plan {
            let parent = parent.map(|p| units[p]);
            units.insert(code, app.unit(&org_admin, kind, code, parent).await);
        }
        let mut people = HashMap::new();
        let placed: [(&str, Role, &str); 20] = [
            ("staff", Role::Staff, "NBI-OPS"),
            ("staff", Role::Staff, "NBI-FIN"),
            ("staff", Role::Staff, "MSA-OPS"),
            ("staff", Role::Staff, "KSM-OPS"),
            ("staff", Role::Staff, "EAST"),
            ("head", Role::DepartmentHead, "NBI-OPS"),
            ("head", Role::DepartmentHead, "NBI-FIN"),
            ("head", Role::DepartmentHead, "MSA-OPS"),
            ("head", Role::DepartmentHead, "KSM-OPS"),
            ("manager", Role::BranchManager, "NBI"),
            ("manager", Role::BranchManager, "MSA"),
            ("manager", Role::BranchManager, "KSM"),
            ("regional", Role::RegionalManager, "EAST"),
            ("regional", Role::RegionalManager, "WEST"),
            ("staff", Role::Staff, "GOPS"),
            ("head", Role::DepartmentHead, "GOPS"),
            ("manager", Role::BranchManager, "GNBI"),
            ("regional", Role::RegionalManager, "GEAST"),
            ("hq-staff", Role::Staff, "ACME"),
            ("hq-staff", Role::Staff, "GLOBEX"),
        ];
        for (name, role, unit) in placed {
            let roles: Vec<Role> = if role == Role::Staff { vec![role] } else { vec![Role::Staff, role] };
            people.insert(format!("{name}@{unit}"), app.user_in(&roles, Some(units[unit])).await);
        }
        let company = |code: &str| {
            let id = units[code];
            async move {
                let admin = app.user_in(&[Role::Admin], Some(id)).await;
                let fund = app.fund(&admin, "1000000").await;
                Company {
                    id,
                    cfo: app.user_in(&[Role::Cfo], Some(id)).await,
                    treasury: app.user_in(&[Role::Treasury], Some(id)).await,
                    auditor: app.user_in(&[Role::Auditor], Some(id)).await,
                    admin,
                    fund,
                }
            }
        };
        let acme = company("ACME").await;
        let globex = company("GLOBEX").await;
        World { org_admin, acme, globex, units, people }
    }
}

/// Creates and submits a requisition of `amount` as `requester` from `fund`.
async fn submitted(app: &TestApp, requester: &TestUser, fund: Uuid, amount: &str) -> Uuid {
    app.submitted(requester, fund, amount).await
}

/// The ids of every page of the list at `path`.
async fn listed(app: &TestApp, user: &TestUser, path: &str) -> BTreeSet<Uuid> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = match &cursor {
            Some(c) => format!("{path}{sep}limit=50&cursor={c}"),
            None => format!("{path}{sep}limit=50"),
        };
        let r = app.get(user, &page).await;
        assert_eq!(r.status, StatusCode::OK, "{page}: {r:?}");
        for item in r.body["items"].as_array().unwrap() {
            let id = item.get("requisition_id").or(item.get("id")).and_then(Value::as_str).unwrap();
            ids.insert(id.parse().unwrap());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

async fn status_of(app: &TestApp, user: &TestUser, id: Uuid) -> StatusCode {
    app.get(user, &format!("/api/requisitions/{id}")).await.status
}

#[tokio::test]
async fn another_branchs_department_or_regions_requisition_is_404_and_absent_from_lists_and_inbox() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let fund = w.acme.fund;
    // 5,000: department head, then branch manager. 50,000: also the regional manager and cfo.
    let nbi = submitted(&app, w.person("staff@NBI-OPS"), fund, "5000").await;
    let nbi_fin = submitted(&app, w.person("staff@NBI-FIN"), fund, "5000").await;
    let msa = submitted(&app, w.person("staff@MSA-OPS"), fund, "5000").await;
    let east_big = submitted(&app, w.person("staff@NBI-OPS"), fund, "50000").await;
    let west_big = submitted(&app, w.person("staff@KSM-OPS"), fund, "50000").await;

    // The department head of NBI-OPS: their department's, not the one next door.
    let head = w.person("head@NBI-OPS");
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    assert_eq!(listed(&app, head, "/api/requisitions/").await, [nbi, east_big].into());
    assert_eq!(listed(&app, head, "/api/approvals/").await, [nbi, east_big].into());
    for other in [nbi_fin, msa, west_big] {
        assert_eq!(status_of(&app, head, other).await, StatusCode::NOT_FOUND);
        let h = app.get(head, &format!("/api/requisitions/{other}/history")).await;
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        let r = app.post(head, &format!("/api/requisitions/{other}/approve"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "not approvable either");
    }
    app.approve_by(nbi, &[head]).await;
    app.approve_by(nbi_fin, &[w.person("head@NBI-FIN")]).await;
    app.approve_by(msa, &[w.person("head@MSA-OPS")]).await;
    app.approve_by(east_big, &[head]).await;
    app.approve_by(west_big, &[w.person("head@KSM-OPS")]).await;

    // The branch manager of NBI: both NBI departments', not MSA's.
    let manager = w.person("manager@NBI");
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    assert_eq!(listed(&app, manager, "/api/requisitions/").await, [nbi, nbi_fin, east_big].into());
    assert_eq!(listed(&app, manager, "/api/approvals/").await, [nbi, nbi_fin, east_big].into());
    assert_eq!(status_of(&app, manager, msa).await, StatusCode::NOT_FOUND);
    let r = app.post(manager, &format!("/api/requisitions/{msa}/approve"), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.approve_by(msa, &[w.person("manager@MSA")]).await;
    app.approve_by(east_big, &[manager]).await;
    app.approve_by(west_big, &[w.person("manager@KSM")]).await;

    // The regional manager of EAST: EAST's requisitions that ask a regional manager, not WEST's.
    let regional = w.person("regional@EAST");
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    assert_eq!(listed(&app, regional, "/api/requisitions/").await, [east_big].into());
    assert_eq!(listed(&app, regional, "/api/approvals/").await, [east_big].into());
    assert_eq!(status_of(&app, regional, west_big).await, StatusCode::NOT_FOUND);
    app.approve_by(east_big, &[regional]).await;
    let r = app.get(w.person("regional@WEST"), &format!("/api/requisitions/{west_big}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["region_id"], json!(w.unit("WEST")));
    assert_eq!(r.body["department_id"], json!(w.unit("KSM-OPS")));
    assert_eq!(r.body["origin"], "branch");

    // And nobody of GLOBEX's.
    let globex = submitted(&app, w.person("staff@GOPS"), w.globex.fund, "5000").await;
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    for name in ["head@NBI-OPS", "manager@NBI", "regional@EAST", "staff@NBI-OPS"] {
        let user = w.person(name);
        assert_eq!(status_of(&app, user, globex).await, StatusCode::NOT_FOUND, "{name}");
        assert!(!listed(&app, user, "/api/requisitions/").await.contains(&globex), "{name}");
    }
    assert_eq!(status_of(&app, w.person("head@GOPS"), globex).await, StatusCode::OK);
}

#[tokio::test]
async fn company_wide_roles_see_their_whole_company_and_nothing_of_the_other() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let mut acme = Vec::new();
    for name in ["staff@NBI-OPS", "staff@MSA-OPS", "staff@KSM-OPS", "staff@EAST", "hq-staff@ACME"] {
        acme.push(submitted(&app, w.person(name), w.acme.fund, "500").await);
    }
    let acme_draft = app
        .post(
            w.person("staff@MSA-OPS"),
            "/api/requisitions/",
            json!({"fund_id": w.acme.fund, "amount": "10", "purpose": "Draft"}),
        )
        .await
        .id();
    let globex = submitted(&app, w.person("staff@GOPS"), w.globex.fund, "500").await;
    let globex_hq = submitted(&app, w.person("hq-staff@GLOBEX"), w.globex.fund, "600").await;
    // Paid in both companies.
    app.approve_by(acme[0], &[w.person("head@NBI-OPS")]).await;
    assert_eq!(app.pay(&w.acme.treasury, acme[0]).await.status, StatusCode::CREATED);
    app.approve_by(globex, &[w.person("head@GOPS")]).await;
    assert_eq!(app.pay(&w.globex.treasury, globex).await.status, StatusCode::CREATED);
    // A treasurer of one company cannot pay the other's.
    let r = app.pay(&w.acme.treasury, globex_hq).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions", "cash"]).await;

    let acme_submitted: BTreeSet<Uuid> = acme.iter().copied().collect();
    let mut acme_all = acme_submitted.clone();
    acme_all.insert(acme_draft);
    for (who, user, sees) in [
        ("cfo", &w.acme.cfo, &acme_submitted),
        ("treasury", &w.acme.treasury, &acme_submitted),
        ("auditor", &w.acme.auditor, &acme_all),
        ("admin", &w.acme.admin, &acme_all),
    ] {
        assert_eq!(&listed(&app, user, "/api/requisitions/").await, sees, "{who}: their company's list");
        for id in sees {
            assert_eq!(status_of(&app, user, *id).await, StatusCode::OK, "{who}");
        }
        for id in [globex, globex_hq] {
            assert_eq!(status_of(&app, user, id).await, StatusCode::NOT_FOUND, "{who}");
            let h = app.get(user, &format!("/api/requisitions/{id}/history")).await;
            assert_eq!(h.status, StatusCode::NOT_FOUND, "{who}: history");
        }
        // Funds, their cash books and payments: their company's only.
        let funds = app.get(user, "/api/funds/").await;
        let funds: Vec<&str> =
            funds.body["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert_eq!(funds, [w.acme.fund.to_string()], "{who}: funds");
        let other = app.get(user, &format!("/api/funds/{}", w.globex.fund)).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{who}: the other company's fund");
        let ledger = app.get(user, &format!("/api/funds/{}/ledger", w.globex.fund)).await;
        assert_eq!(ledger.status, StatusCode::NOT_FOUND, "{who}: the other company's cash book");
        let own = app.get(user, &format!("/api/funds/{}/ledger", w.acme.fund)).await;
        assert_eq!(own.status, StatusCode::OK, "{who}: their cash book");
        let paid = listed(&app, user, "/api/treasury/payments/").await;
        assert_eq!(paid, [acme[0]].into(), "{who}: their company's payments");
        let dashboard = app.get(user, "/api/dashboard/").await;
        assert_eq!(dashboard.body["funds"].as_array().unwrap().len(), 1, "{who}: dashboard funds");
    }
    // The inbox of the cfo: nothing of GLOBEX even when it waits on a cfo.
    let big = submitted(&app, w.person("staff@GOPS"), w.globex.fund, "50000").await;
    app.approve_by(big, &[w.person("head@GOPS"), w.person("manager@GNBI"), w.person("regional@GEAST")]).await;
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    assert!(listed(&app, &w.acme.cfo, "/api/approvals/").await.is_empty());
    assert_eq!(listed(&app, &w.globex.cfo, "/api/approvals/").await, [big].into());
    // The dashboard counts their company's requisitions.
    let d = app.get(&w.acme.auditor, "/api/dashboard/").await;
    let counted: i64 = d.body["by_status"].as_object().unwrap().values().map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(counted, acme_all.len() as i64, "{d:?}");

    // Users: each admin lists their company's; another company's user is not found.
    let users = app.get(&w.acme.admin, "/api/users/").await;
    let companies: BTreeSet<String> = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["company_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(companies, [w.acme.id.to_string()].into());
    let r = app
        .post(&w.acme.admin, &format!("/api/users/{}/roles", w.globex.cfo.id), json!({"role": "ceo"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // A requester cannot draw on another company's fund.
    let r = app
        .post(
            w.person("staff@NBI-OPS"),
            "/api/requisitions/",
            json!({"fund_id": w.globex.fund, "amount": "10", "purpose": "Theirs"}),
        )
        .await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "fund_id"), "{r:?}");

    // Someone of no unit sees no company's requisitions, funds or users.
    let unscoped = app.user(&[Role::Auditor, Role::Treasury]).await;
    assert!(listed(&app, &unscoped, "/api/requisitions/").await.is_empty());
    assert!(listed(&app, &unscoped, "/api/treasury/payments/").await.is_empty());
    assert_eq!(app.get(&unscoped, "/api/funds/").await.body["items"], json!([]));
    assert_eq!(status_of(&app, &unscoped, acme[1]).await, StatusCode::NOT_FOUND);
    // ...and the organisation's admin manages the structure, not the companies' data.
    assert_eq!(status_of(&app, &w.org_admin, acme[1]).await, StatusCode::NOT_FOUND);
    let units = app.get(&w.org_admin, "/api/org/units/").await;
    assert_eq!(units.body["items"].as_array().unwrap().len(), w.units.len());
}

#[tokio::test]
async fn units_open_under_the_kind_above_with_unique_codes_and_close_only_when_empty() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let admin = &w.acme.admin;
    let open = |kind: &str, code: &str, parent: Uuid| json!({"kind": kind, "name": "New", "code": code, "parent_id": parent});
    // The wrong parent, a taken code (another company may use it), an unknown kind.
    let r = app.post(admin, "/api/org/units/", open("branch", "X1", w.unit("ACME"))).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_parent", "parent_id")
    );
    let r = app.post(admin, "/api/org/units/", open("branch", "msa", w.unit("EAST"))).await;
    assert_eq!((r.status, r.code(), r.field()), (StatusCode::CONFLICT, "code_taken", "code"), "{r:?}");
    let r = app.post(&w.globex.admin, "/api/org/units/", open("region", "EAST", w.globex.id)).await;
    assert_eq!(r.status, StatusCode::CREATED, "codes are unique within a company: {r:?}");
    let r = app.post(admin, "/api/org/units/", open("shop", "X2", w.unit("EAST"))).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "kind"));
    // An admin of a company neither opens companies nor reaches the other company's units.
    let r =
        app.post(admin, "/api/org/units/", json!({"kind": "company", "name": "Mine", "code": "MINE"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "organisation_admin_only"));
    let r = app.post(admin, "/api/org/units/", open("region", "X3", w.globex.id)).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "parent_id"));
    let r = app.patch(admin, &format!("/api/org/units/{}", w.unit("GOPS")), json!({"name": "Ours"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r =
        app.post(w.person("manager@NBI"), "/api/org/units/", open("department", "X4", w.unit("NBI"))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"));
    // Everyone lists their company's units, parents first.
    let list = app.get(w.person("staff@NBI-OPS"), "/api/org/units/").await;
    let codes: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().map(|u| u["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["ACME", "EAST", "MSA", "MSA-OPS", "NBI", "NBI-FIN", "NBI-OPS", "WEST", "KSM", "KSM-OPS"]
    );

    // Rename; close: refused while a unit under it is open or an active user belongs to it.
    let r = app.patch(admin, &format!("/api/org/units/{}", w.unit("KSM")), json!({"name": "Kisumu"})).await;
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("Kisumu")));
    let close = |code: &str| format!("/api/org/units/{}/close", w.unit(code));
    let r = app.post(admin, &close("KSM"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "unit_not_empty"), "{r:?}");
    let r = app.post(admin, &close("KSM-OPS"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "unit_not_empty"), "its members: {r:?}");
    for name in ["staff@KSM-OPS", "head@KSM-OPS"] {
        let user = w.person(name);
        let r = app
            .put(admin, &format!("/api/users/{}/unit", user.id), json!({"unit_id": w.unit("NBI-OPS")}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let r = app.post(admin, &close("KSM-OPS"), json!({})).await;
    assert_eq!((r.status, r.body["closed"].as_bool()), (StatusCode::OK, Some(true)), "{r:?}");
    let r = app.post(admin, "/api/org/units/", open("cost_centre", "CC1", w.unit("KSM-OPS"))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "unit_closed"));
    let r = app
        .put(admin, &format!("/api/users/{}/unit", w.acme.cfo.id), json!({"unit_id": w.unit("KSM-OPS")}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "unit_closed"));

    // A user moved to another branch sees that branch's at once, and their requisitions keep
    // the unit they were created in.
    let mover = w.person("head@KSM-OPS");
    let r = app.get(mover, "/api/me").await;
    assert_eq!(r.body["unit_id"], json!(w.unit("NBI-OPS")), "{r:?}");
    let nbi = submitted(&app, w.person("staff@NBI-OPS"), w.acme.fund, "50").await;
    assert_eq!(status_of(&app, mover, nbi).await, StatusCode::OK);
}

#[tokio::test]
async fn deactivation_ends_sessions_at_once_and_keeps_history() {
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let staff = w.person("staff@NBI-OPS");
    let id = submitted(&app, staff, w.acme.fund, "100").await;
    assert_eq!(app.get(staff, "/api/me").await.status, StatusCode::OK);

    let path = format!("/api/users/{}/deactivate", staff.id);
    let r = app.post(&w.acme.admin, &path, json!({"reason": " "})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "reason"));
    let r = app.post(&w.globex.admin, &path, json!({"reason": "not yours"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another company's admin");
    let r = app.post(&w.acme.admin, &path, json!({"reason": "left the company"})).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (StatusCode::OK, Some(false)), "{r:?}");

    // The very next request with the old token is refused, and signing in again too.
    let r = app.get(staff, "/api/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = app.get(staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let login = json!({"email": staff.email, "password": pettycash_tests::PASSWORD});
    let r = app.send(None, Method::POST, "/api/auth/login", Some(login.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(staff.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(revoked, 0, "every session ended");

    // Their history stays: the requisition, its history with their name, their events.
    let r = app.get(&w.acme.auditor, &format!("/api/requisitions/{id}/history")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body[0]["actor_id"], json!(staff.id.to_string()));
    assert!(r.body[0]["actor_name"].is_string(), "{r:?}");
    let r = app.get(&w.acme.admin, "/api/users/").await;
    let them = r.body.as_array().unwrap().iter().find(|u| u["id"] == json!(staff.id)).cloned().unwrap();
    assert_eq!(them["active"], false);
    let types: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(staff.id.to_string())
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(types, ["UserRegistered", "UnitAssigned", "UserDeactivated"]);

    // Reactivated, they sign in again.
    let r = app.post(&w.acme.admin, &format!("/api/users/{}/reactivate", staff.id), json!({})).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (StatusCode::OK, Some(true)), "{r:?}");
    let r = app.send(None, Method::POST, "/api/auth/login", Some(login)).await;
    assert_eq!(r.status, StatusCode::OK);

    // The last active admin cannot be deactivated (here: the only admin of a fresh store).
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let r = app.post(&admin, &format!("/api/users/{}/deactivate", admin.id), json!({"reason": "bye"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "last_admin"), "{r:?}");
    assert_eq!(app.get(&admin, "/api/me").await.status, StatusCode::OK, "still signed in");
}

/// Inserts a version-1 `RequisitionCreated` (as recorded before units existed), signed as the
/// service would have.
async fn insert_v1_requisition(app: &TestApp, fund: Uuid, requester: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let payload = json!({"RequisitionCreated": {"requisition_id": id, "fund_id": fund, "currency": "KES",
        "amount": "42.00", "purpose": "From before units", "payee": null, "category": null,
        "requester_id": requester}});
    let actor = json!({"actor_id": requester.to_string()});
    pettycash_tests::insert_signed_event(&app.pool, "requisition", &id.to_string(), 1, payload, &actor).await;
    id
}

#[tokio::test]
async fn a_version_1_requisition_still_loads_lists_and_is_acted_on_as_unscoped() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let fund = app.fund(&admin, "1000").await;
    let id = insert_v1_requisition(&app, fund, staff.id).await;
    let r = app.get(&staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (r.body["amount"].as_str(), &r.body["company_id"], &r.body["origin"]),
        (Some("42.00"), &Value::Null, &Value::Null)
    );
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;
    assert!(listed(&app, &staff, "/api/requisitions/").await.contains(&id));
    assert!(listed(&app, &admin, "/api/requisitions/").await.contains(&id), "unscoped: the unscoped admin's");
    let r = app.post(&staff, &format!("/api/requisitions/{id}/submit"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let history = app.get(&staff, &format!("/api/requisitions/{id}/history")).await;
    assert_eq!(history.body[0]["event_version"], "1");
    // Someone of a company does not see it.
    let acme = app.unit(&admin, "company", "ACME", None).await;
    let cfo = app.user_in(&[Role::Cfo], Some(acme)).await;
    assert_eq!(status_of(&app, &cfo, id).await, StatusCode::NOT_FOUND);
}
