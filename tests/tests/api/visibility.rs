//! One visibility rule (`pettycash_domain::visibility`): for a caller of every role, over
//! requisitions in every state, every item of every list they may call opens with 200, and
//! every requisition that opens with 200 is in their unfiltered list. Drafts are their
//! requester's, auditors' and admins'. Twice: in an organisation without units, and over two
//! companies with regions, branches and departments (where nothing crosses companies).

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{TestApp, TestUser};
use reqwest::StatusCode;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Every id the list at `path` (all its pages) holds under `field`.
async fn listed(app: &TestApp, user: &TestUser, path: &str, field: &str) -> Option<BTreeSet<Uuid>> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = match &cursor {
            Some(c) => format!("{path}{sep}limit=3&cursor={c}"),
            None => format!("{path}{sep}limit=3"),
        };
        let r = app.get(user, &page).await;
        if r.status == StatusCode::FORBIDDEN {
            return None;
        }
        assert_eq!(r.status, StatusCode::OK, "{page}: {r:?}");
        for item in r.body["items"].as_array().unwrap() {
            if let Some(id) = item[field].as_str() {
                ids.insert(id.parse().unwrap());
            }
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Some(ids),
        }
    }
}

async fn act(app: &TestApp, user: &TestUser, id: Uuid, action: &str, body: Value) {
    let r = app.post(user, &format!("/api/requisitions/{id}/{action}"), body).await;
    assert!(r.status.is_success(), "{action}: {r:?}");
}

#[tokio::test]
async fn every_listed_requisition_opens_and_every_one_that_opens_is_listed_for_every_role() {
    let app = TestApp::spawn().await;
    let mut cast = Vec::new();
    for role in Role::ALL {
        cast.push((role.as_str().to_string(), app.user(&[role]).await));
    }
    let user = |role: Role| cast.iter().find(|(r, _)| r == role.as_str()).map(|(_, u)| u.clone()).unwrap();
    let (admin, head, gfm, treasury) = (
        user(Role::Admin),
        user(Role::DepartmentHead),
        user(Role::GroupFinanceManager),
        user(Role::Treasury),
    );
    let staff = user(Role::Staff);
    let staff2 = app.user(&[Role::Staff]).await;
    cast.push(("second staff".into(), staff2.clone()));
    let fund = app.fund(&admin, "1000000").await;

    // Requisitions of two requesters in every state; chains: up to 1,000 the department head,
    // up to 10,000 also the group finance manager, above that also the cfo.
    let mut all = Vec::new();
    for requester in [staff, staff2.clone()] {
        let draft = app
            .post(
                &requester,
                "/api/requisitions/",
                json!({"fund_id": fund, "amount": "10", "purpose": "Draft"}),
            )
            .await
            .id();
        let cancelled_draft = app
            .post(
                &requester,
                "/api/requisitions/",
                json!({"fund_id": fund, "amount": "11", "purpose": "Gone"}),
            )
            .await
            .id();
        act(&app, &requester, cancelled_draft, "cancel", json!({})).await;
        let pending = app.submitted(&requester, fund, "100").await;
        let second_step = app.submitted(&requester, fund, "5000").await;
        act(&app, &head, second_step, "approve", json!({})).await;
        let at_cfo = app.submitted(&requester, fund, "50000").await;
        app.approve_by(at_cfo, &[&head, &gfm]).await;
        let changes = app.submitted(&requester, fund, "120").await;
        act(&app, &head, changes, "request-changes", json!({"reason": "receipt"})).await;
        let rejected = app.submitted(&requester, fund, "130").await;
        act(&app, &head, rejected, "reject", json!({"reason": "no"})).await;
        let withdrawn = app.submitted(&requester, fund, "140").await;
        act(&app, &requester, withdrawn, "cancel", json!({})).await;
        let approved = app.submitted(&requester, fund, "150").await;
        app.approve_by(approved, &[&head]).await;
        let paid = app.submitted(&requester, fund, "160").await;
        app.approve_by(paid, &[&head]).await;
        assert_eq!(app.pay(&treasury, paid).await.status, StatusCode::CREATED);
        all.extend([
            draft,
            cancelled_draft,
            pending,
            second_step,
            at_cfo,
            changes,
            rejected,
            withdrawn,
            approved,
            paid,
        ]);
    }
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions", "cash"]).await;

    let drafts: BTreeSet<Uuid> = [all[0], all[1], all[10], all[11]].into();
    let opened = lists_agree_with_details(&app, &cast, &all, &[fund]).await;
    for (role, _) in &cast {
        let opens = &opened[role];
        let sees_drafts = matches!(role.as_str(), "auditor" | "admin");
        let own: BTreeSet<Uuid> = if role == "staff" {
            all[..10].iter().copied().collect()
        } else if role == "second staff" {
            all[10..].iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        for draft in &drafts {
            assert_eq!(opens.contains(draft), sees_drafts || own.contains(draft), "{role}: draft {draft}");
        }
    }
}

/// For every caller: every requisition of `all` opens (detail and history) or is not found
/// (both); the unfiltered list holds exactly those that open; every item of the inbox, of the
/// payments list (when they may read it) and of the cash book of each of `funds` (when they may
/// read it and its payments) opens. Returns what opens, by caller.
async fn lists_agree_with_details(
    app: &TestApp,
    cast: &[(String, TestUser)],
    all: &[Uuid],
    funds: &[Uuid],
) -> std::collections::HashMap<String, BTreeSet<Uuid>> {
    let mut opened = std::collections::HashMap::new();
    for (role, caller) in cast {
        let mut opens = BTreeSet::new();
        for id in all {
            let r = app.get(caller, &format!("/api/requisitions/{id}")).await;
            match r.status {
                StatusCode::OK => {
                    opens.insert(*id);
                    let h = app.get(caller, &format!("/api/requisitions/{id}/history")).await;
                    assert_eq!(h.status, StatusCode::OK, "{role}: history of what opens");
                }
                StatusCode::NOT_FOUND => {
                    let h = app.get(caller, &format!("/api/requisitions/{id}/history")).await;
                    assert_eq!(h.status, StatusCode::NOT_FOUND, "{role}: history of what does not");
                }
                other => panic!("{role}: {id} answered {other}: {r:?}"),
            }
        }
        let list = listed(app, caller, "/api/requisitions/", "id").await.expect("anyone may list");
        assert_eq!(list, opens, "{role}: the list holds exactly what opens");
        let inbox = listed(app, caller, "/api/approvals/", "id").await.expect("anyone may ask");
        assert!(inbox.is_subset(&opens), "{role}: every inbox item opens");
        let payments = listed(app, caller, "/api/treasury/payments/", "requisition_id").await;
        if let Some(paid) = &payments {
            assert!(paid.is_subset(&opens), "{role}: every paid requisition of the payments list opens");
        }
        for fund in funds {
            let ledger = app.get(caller, &format!("/api/funds/{fund}/ledger")).await;
            let detail = app.get(caller, &format!("/api/funds/{fund}")).await;
            assert_eq!(ledger.status, detail.status, "{role}: the cash book opens as its fund does");
            if ledger.status == StatusCode::NOT_FOUND {
                continue;
            }
            let book =
                listed(app, caller, &format!("/api/funds/{fund}/ledger"), "requisition_id").await.unwrap();
            // The cash book is every signed-in user's of the fund's company; its
            // requisitions open for those who may see payments at all.
            if payments.is_some() {
                assert!(book.is_subset(&opens), "{role}: every requisition of the cash book opens");
            }
        }
        opened.insert(role.clone(), opens);
    }
    opened
}

/// The same over two companies with regions, branches and departments: besides the lists
/// agreeing with the details for everyone, nothing of another company opens for anyone but its
/// requester, and the unscoped see only what belongs to no company.
#[tokio::test]
async fn with_units_every_list_agrees_with_the_details_and_nothing_crosses_companies() {
    use crate::organisation::World;
    let app = TestApp::spawn().await;
    let w = World::build(&app).await;
    let mut all = Vec::new();
    // Each requester: a draft, one pending at its first step; those in a department also one
    // at its second step, one rejected and one paid.
    let requesters = [
        ("staff@NBI-OPS", w.acme.fund),
        ("staff@MSA-OPS", w.acme.fund),
        ("staff@KSM-OPS", w.acme.fund),
        ("staff@EAST", w.acme.fund),
        ("hq-staff@ACME", w.acme.fund),
        ("staff@GOPS", w.globex.fund),
        ("hq-staff@GLOBEX", w.globex.fund),
    ];
    for (name, fund) in requesters {
        let requester = w.person(name);
        let draft = app
            .post(
                requester,
                "/api/requisitions/",
                json!({"fund_id": fund, "amount": "10", "purpose": "Draft"}),
            )
            .await
            .id();
        all.extend([draft, app.submitted(requester, fund, "5000").await]);
        let Some(department) = name.strip_prefix("staff@").filter(|d| d.ends_with("OPS")) else { continue };
        let head = w.person(&format!("head@{department}"));
        let treasury = if fund == w.acme.fund { &w.acme.treasury } else { &w.globex.treasury };
        let second = app.submitted(requester, fund, "5000").await;
        app.approve_by(second, &[head]).await;
        let rejected = app.submitted(requester, fund, "200").await;
        act(&app, head, rejected, "reject", json!({"reason": "no"})).await;
        let paid = app.submitted(requester, fund, "300").await;
        app.approve_by(paid, &[head]).await;
        assert_eq!(app.pay(treasury, paid).await.status, StatusCode::CREATED);
        all.extend([second, rejected, paid]);
    }
    // And one of no company, by someone of no unit.
    let unscoped_admin = &w.org_admin;
    let unscoped_fund = app.fund(unscoped_admin, "1000").await;
    let unscoped_staff = app.user(&[Role::Staff]).await;
    let unscoped = app.submitted(&unscoped_staff, unscoped_fund, "100").await;
    all.push(unscoped);
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions", "cash"]).await;

    let mut cast: Vec<(String, TestUser)> = w.people.iter().map(|(n, u)| (n.clone(), u.clone())).collect();
    for (company, c) in [("acme", &w.acme), ("globex", &w.globex)] {
        for (role, user) in
            [("admin", &c.admin), ("cfo", &c.cfo), ("treasury", &c.treasury), ("auditor", &c.auditor)]
        {
            cast.push((format!("{role}@{company}"), user.clone()));
        }
    }
    cast.push(("organisation admin".into(), unscoped_admin.clone()));
    cast.push(("unscoped staff".into(), unscoped_staff.clone()));
    cast.sort_by(|a, b| a.0.cmp(&b.0));
    let funds = [w.acme.fund, w.globex.fund, unscoped_fund];
    let opened = lists_agree_with_details(&app, &cast, &all, &funds).await;

    // Whose company each requisition is, and each caller's.
    let mut company_of = std::collections::HashMap::new();
    let mut requester_of = std::collections::HashMap::new();
    for id in &all {
        let r = app.get(&w.acme.auditor, &format!("/api/requisitions/{id}")).await;
        let r = if r.status == StatusCode::OK {
            r
        } else {
            app.get(&w.globex.auditor, &format!("/api/requisitions/{id}")).await
        };
        let r = if r.status == StatusCode::OK {
            r
        } else {
            app.get(unscoped_admin, &format!("/api/requisitions/{id}")).await
        };
        assert_eq!(r.status, StatusCode::OK, "some auditor or admin sees {id}");
        company_of.insert(*id, r.body["company_id"].clone());
        requester_of.insert(*id, r.body["requester_id"].clone());
    }
    for (who, caller) in &cast {
        let me = app.get(caller, "/api/me").await;
        for id in &opened[who] {
            let own = requester_of[id] == json!(caller.id);
            assert!(own || company_of[id] == me.body["company_id"], "{who} sees {id} of another company");
        }
    }
    // Company-wide roles see every submitted requisition of their company; the unscoped the
    // unscoped one only.
    let acme_count = all.iter().filter(|id| company_of[*id] == json!(w.acme.id)).count();
    assert_eq!(opened["auditor@acme"].len(), acme_count);
    assert_eq!(opened["admin@acme"].len(), acme_count);
    assert_eq!(opened["cfo@acme"].len(), acme_count - 5, "all but the five drafts");
    assert_eq!(opened["organisation admin"], [unscoped].into());
    assert_eq!(opened["unscoped staff"], [unscoped].into());
    assert!(opened["head@NBI-OPS"].iter().all(|id| company_of[id] == json!(w.acme.id)));
}
