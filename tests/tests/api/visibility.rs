//! One visibility rule (`pettycash_domain::visibility`): for a caller of every role, over
//! requisitions in every state, every item of every list they may call opens with 200, and
//! every requisition that opens with 200 is in their unfiltered list. Drafts are their
//! requester's, auditors' and admins'.

use pettycash_domain::{Actor, Role};
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
    for (role, caller) in &cast {
        let opens: BTreeSet<Uuid> = {
            let mut opens = BTreeSet::new();
            for id in &all {
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
            opens
        };
        let list = listed(&app, caller, "/api/requisitions/", "id").await.expect("anyone may list");
        assert_eq!(list, opens, "{role}: the list holds exactly what opens");
        let inbox = listed(&app, caller, "/api/approvals/", "id").await.expect("anyone may ask");
        assert!(inbox.is_subset(&opens), "{role}: every inbox item opens");
        if let Some(paid) = listed(&app, caller, "/api/treasury/payments/", "requisition_id").await {
            assert!(paid.is_subset(&opens), "{role}: every paid requisition of the payments list opens");
        }
        let ledger = listed(&app, caller, &format!("/api/funds/{fund}/ledger"), "requisition_id").await;
        if let Some(ledger) = ledger {
            // The cash book is every signed-in user's; its requisitions open for those who
            // may see payments at all.
            let actor = Actor::new(caller.id, [role.parse().unwrap_or(Role::Staff)]);
            if pettycash_domain::visibility::may_read_payments(&actor) {
                assert!(ledger.is_subset(&opens), "{role}: every requisition of the cash book opens");
            }
        }
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
