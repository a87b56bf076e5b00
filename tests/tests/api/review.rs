//! Possible duplicates and FP&A's review after payment, over HTTP: who may review or flag a
//! paid requisition and how often; the list's `review` filter; a submission like another of
//! the same requester flagged with a link to it, in the view and in the approvers' mail, by the
//! `duplicate_window_days` setting; dismissing the flag; and the `currency_display` setting in
//! mail.

use chrono::Duration;
use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{wait_for_projections, Cast, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

async fn set(app: &TestApp, admin: &TestUser, key: &str, value: Value) {
    let r = app
        .send(Some(admin), Method::PUT, &format!("/api/settings/{key}"), Some(json!({"value": value})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

/// Creates and submits a requisition to `payee` for `amount`.
async fn submit_to(app: &TestApp, requester: &TestUser, fund: Uuid, payee: &str, amount: &str) -> Reply {
    let body = json!({"fund_id": fund, "amount": amount, "purpose": "Toner", "payee": payee, "submit": true});
    let r = app.post(requester, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // The next submission looks for this one in the read model.
    wait_for_projections(&app.pool, &["requisitions"]).await;
    r
}

fn duplicates(r: &Reply) -> Vec<Value> {
    r.body["possible_duplicates"]
        .as_array()
        .unwrap_or_else(|| panic!("no possible_duplicates: {r:?}"))
        .clone()
}

/// The text bodies of the mail written for `user` so far (the test app sends none: it waits in
/// the outbox).
async fn mail_to(app: &TestApp, user: &TestUser) -> Vec<String> {
    wait_for_projections(&app.pool, &["notifications"]).await;
    sqlx::query_scalar("SELECT body_text FROM mail_outbox WHERE recipient_email = $1 ORDER BY id")
        .bind(&user.email)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// A requisition of 1,500 (the default policy's chain: department head, group finance
/// manager), approved and paid.
async fn paid(app: &TestApp, c: &Cast) -> Uuid {
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "1500").await;
    app.approve_by(id, &[&c.head, &c.gfm]).await;
    let r = app.pay(&c.treasury, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    id
}

async fn review(app: &TestApp, by: &TestUser, id: Uuid, comment: Option<&str>) -> Reply {
    app.post(by, &format!("/api/requisitions/{id}/review"), json!({"comment": comment})).await
}

async fn flag(app: &TestApp, by: &TestUser, id: Uuid, reason: &str) -> Reply {
    app.post(by, &format!("/api/requisitions/{id}/flag"), json!({"reason": reason})).await
}

// ---------------------------------------------------------------------------------------------
// FP&A review after payment
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_analyst_who_took_no_part_reviews_a_paid_requisition_once_and_the_views_show_it() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let analyst = app.user(&[Role::Fpa]).await;
    let id = paid(&app, &c).await;

    let r = review(&app, &analyst, id, Some("Receipt matches")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["review"]["status"], "reviewed");
    assert_eq!(r.body["review"]["by"], analyst.id.to_string());
    assert_eq!(r.body["review"]["comment"], "Receipt matches");
    assert_eq!(r.body["review"]["at"].as_str().map(|s| s.is_empty()), Some(false));

    let detail = app.get(&c.auditor, &format!("/api/requisitions/{id}")).await;
    assert_eq!(detail.body["review"], r.body["review"]);
    let position = r.body["position"].as_i64().unwrap();
    let list = app.get(&analyst, &format!("/api/requisitions/?min_position={position}")).await;
    assert_eq!(list.body["items"][0]["review"], r.body["review"], "{list:?}");

    // Once: another review is refused, by anyone.
    let second = app.user(&[Role::Fpa]).await;
    let again = review(&app, &second, id, None).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already_reviewed"), "{again:?}");

    let history = app.get(&c.auditor, &format!("/api/requisitions/{id}/history")).await;
    let last = history.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "PaymentReviewed");
    assert_eq!(last["actor_id"], analyst.id.to_string());
}

#[tokio::test]
async fn a_flag_needs_a_reason_may_follow_a_review_and_nothing_follows_it() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (a, b) = tokio::join!(app.user(&[Role::Fpa]), app.user(&[Role::Fpa]));
    let id = paid(&app, &c).await;

    let blank = flag(&app, &a, id, "  ").await;
    assert_eq!((blank.status, blank.field()), (StatusCode::UNPROCESSABLE_ENTITY, "reason"), "{blank:?}");
    let missing = app.post(&a, &format!("/api/requisitions/{id}/flag"), json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY, "{missing:?}");

    assert_eq!(review(&app, &a, id, None).await.status, StatusCode::OK);
    let r = flag(&app, &b, id, "Same receipt as another claim").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["review"]["status"], "flagged");
    assert_eq!(r.body["review"]["reason"], "Same receipt as another claim");
    assert_eq!(r.body["review"]["by"], b.id.to_string());

    for again in [review(&app, &a, id, None).await, flag(&app, &a, id, "again").await] {
        assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already_reviewed"), "{again:?}");
    }
}

#[tokio::test]
async fn nobody_who_took_part_or_holds_no_fpa_reviews_and_only_paid_ones_are_reviewed() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let id = paid(&app, &c).await;
    // Requester, approvers and payer, each given fpa by an admin who took no part.
    for (who, part) in
        [(&c.staff, "requester"), (&c.head, "approver"), (&c.gfm, "approver"), (&c.treasury, "payer")]
    {
        let granted =
            app.post(&c.admin, &format!("/api/users/{}/roles", who.id), json!({"role": "fpa"})).await;
        assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
        let r = review(&app, who, id, None).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "reviewer_took_part"), "{part}: {r:?}");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(part), "{r:?}");
        let r = flag(&app, who, id, "x").await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "reviewer_took_part"), "{part}: {r:?}");
    }
    // An admin or auditor is no analyst.
    for who in [&c.admin, &c.auditor] {
        let r = review(&app, who, id, None).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");
    }
    // An analyst the requester's admin registered is a puppet of a participant.
    let requesting_admin = app.user(&[Role::Staff, Role::Admin]).await;
    let fund = app.fund(&requesting_admin, "5000").await;
    let own = app.submitted(&requesting_admin, fund, "1500").await;
    app.approve_by(own, &[&c.head, &c.gfm]).await;
    assert_eq!(app.pay(&c.treasury, own).await.status, StatusCode::CREATED);
    let invited = app
        .post(
            &requesting_admin,
            "/api/users/",
            json!({"email": "puppet-fpa@test.example", "name": "Puppet", "roles": ["fpa"]}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    app.service.set_password("puppet-fpa@test.example", pettycash_tests::PASSWORD).await.unwrap();
    let login = app
        .send(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"email": "puppet-fpa@test.example", "password": pettycash_tests::PASSWORD})),
        )
        .await;
    let puppet = TestUser {
        id: invited.id(),
        email: "puppet-fpa@test.example".into(),
        token: login.body["token"].as_str().unwrap().into(),
    };
    let r = review(&app, &puppet, own, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "sponsored_by_participant"), "{r:?}");

    // Not paid yet: 409.
    let analyst = app.user(&[Role::Fpa]).await;
    let pending = app.submitted(&c.staff, fund, "20").await;
    let r = review(&app, &analyst, pending, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "invalid_state"), "{r:?}");
    assert_eq!(review(&app, &analyst, id, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_list_filters_paid_requisitions_by_review() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let analyst = app.user(&[Role::Fpa]).await;
    let (first, second, third) = (paid(&app, &c).await, paid(&app, &c).await, paid(&app, &c).await);
    assert_eq!(review(&app, &analyst, first, None).await.status, StatusCode::OK);
    let r = flag(&app, &analyst, second, "Check the receipt").await;
    let position = r.body["position"].as_i64().unwrap();
    let ids = |filter: &'static str| {
        let (app, analyst) = (&app, &analyst);
        async move {
            let r = app
                .get(analyst, &format!("/api/requisitions/?review={filter}&min_position={position}"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("unreviewed").await, [third.to_string()]);
    assert_eq!(ids("reviewed").await, [first.to_string()]);
    assert_eq!(ids("flagged").await, [second.to_string()]);
    let bad = app.get(&analyst, "/api/requisitions/?review=maybe").await;
    assert_eq!((bad.status, bad.field()), (StatusCode::UNPROCESSABLE_ENTITY, "review"), "{bad:?}");
}

// ---------------------------------------------------------------------------------------------
// Possible duplicates
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_submission_like_another_of_the_requester_is_flagged_with_a_link_and_the_approvers_are_told() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let first = submit_to(&app, &c.staff, fund, "Office Mart", "250").await;
    assert_eq!(duplicates(&first), Vec::<Value>::new());

    // Same payee (other case and spacing), same amount: flagged, with a link to the first.
    let second = submit_to(&app, &c.staff, fund, "  office mart ", "250.00").await;
    let first_id = first.id();
    assert_eq!(
        duplicates(&second),
        [json!({"id": first_id, "link": format!("/api/requisitions/{first_id}")})]
    );
    assert_eq!(second.body["duplicate_dismissed"], Value::Null);
    let detail = app.get(&c.head, &format!("/api/requisitions/{}", second.id())).await;
    assert_eq!(detail.body["possible_duplicates"], second.body["possible_duplicates"]);
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let inbox = app.get(&c.head, "/api/approvals/").await;
    let row = inbox.body["items"].as_array().unwrap().iter().find(|i| i["id"] == second.body["id"]).cloned();
    assert_eq!(row.unwrap()["possible_duplicates"], second.body["possible_duplicates"], "{inbox:?}");

    // The approvers' mail says so and links to the other one; the first one's mail did not.
    let mails = mail_to(&app, &c.head).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(!mails[0].contains("Possible duplicate"), "{}", mails[0]);
    assert!(mails[1].contains("Possible duplicate: "), "{}", mails[1]);
    assert!(mails[1].contains(&format!("/requisitions/{first_id}")), "{}", mails[1]);

    // Another payee, or another amount, or the same from someone else: not flagged.
    let other_payee = submit_to(&app, &c.staff, fund, "Office Depot", "250").await;
    assert_eq!(duplicates(&other_payee), Vec::<Value>::new());
    let other_amount = submit_to(&app, &c.staff, fund, "Office Mart", "250.01").await;
    assert_eq!(duplicates(&other_amount), Vec::<Value>::new());
    let colleague = app.user(&[Role::Staff]).await;
    let someone_else = submit_to(&app, &colleague, fund, "Office Mart", "250").await;
    assert_eq!(duplicates(&someone_else), Vec::<Value>::new());

    // A cancelled one is no duplicate.
    for id in [first_id, second.id()] {
        let r = app.post(&c.staff, &format!("/api/requisitions/{id}/cancel"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let after_cancel = submit_to(&app, &c.staff, fund, "Office Mart", "250").await;
    assert_eq!(duplicates(&after_cancel), Vec::<Value>::new());
}

#[tokio::test]
async fn the_duplicate_window_setting_decides_how_far_back_and_zero_turns_it_off() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let first = submit_to(&app, &c.staff, fund, "Office Mart", "90").await;

    // 0: off.
    set(&app, &c.admin, "duplicate_window_days", json!(0)).await;
    assert_eq!(duplicates(&submit_to(&app, &c.staff, fund, "Office Mart", "90").await), Vec::<Value>::new());

    // Default 30 days: 29 days later it is flagged, 31 days later not.
    set(&app, &c.admin, "duplicate_window_days", json!(30)).await;
    app.clock.advance(Duration::days(29));
    let within = submit_to(&app, &c.staff, fund, "Office Mart", "90").await;
    assert!(duplicates(&within).iter().any(|d| d["id"] == first.body["id"]), "{within:?}");
    app.clock.advance(Duration::days(2));
    let outside = submit_to(&app, &c.staff, fund, "Office Mart", "90").await;
    assert!(!duplicates(&outside).iter().any(|d| d["id"] == first.body["id"]), "{outside:?}");

    // A longer window reaches it again.
    set(&app, &c.admin, "duplicate_window_days", json!(60)).await;
    let longer = submit_to(&app, &c.staff, fund, "Office Mart", "90").await;
    assert!(duplicates(&longer).iter().any(|d| d["id"] == first.body["id"]), "{longer:?}");
}

#[tokio::test]
async fn an_approver_of_the_current_step_dismisses_the_flag_with_a_reason_and_approval_is_not_blocked() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    submit_to(&app, &c.staff, fund, "Office Mart", "75").await;
    let flagged = submit_to(&app, &c.staff, fund, "Office Mart", "75").await;
    let id = flagged.id();
    assert_eq!(duplicates(&flagged).len(), 1);
    let dismiss = |by: &TestUser, body: Value| {
        let (app, by) = (&app, by.clone());
        async move { app.post(&by, &format!("/api/requisitions/{id}/dismiss-duplicate"), body).await }
    };

    let r = dismiss(&c.head, json!({"reason": " "})).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "reason"), "{r:?}");
    let r = dismiss(&c.staff, json!({"reason": "It is not"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "self_approval"), "{r:?}");
    // Someone holding another role may not.
    let r = dismiss(&c.gfm, json!({"reason": "Fine"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");

    let r = dismiss(&c.head, json!({"reason": "Two deliveries, two invoices"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body["duplicate_dismissed"],
        json!({"by": c.head.id, "reason": "Two deliveries, two invoices"})
    );
    assert_eq!(duplicates(&r).len(), 1, "the link stays, marked dismissed");
    let again = dismiss(&c.head, json!({"reason": "again"})).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "no_duplicate_flag"), "{again:?}");

    // A flag does not block approval: a third, undismissed, is approved all the way.
    let third = submit_to(&app, &c.staff, fund, "Office Mart", "75").await;
    assert_eq!(duplicates(&third).len(), 2);
    app.approve_by(third.id(), &[&c.head]).await;
    let r = app.get(&c.staff, &format!("/api/requisitions/{}", third.id())).await;
    assert_eq!((r.body["status"].as_str(), &r.body["duplicate_dismissed"]), (Some("approved"), &Value::Null));
}

// ---------------------------------------------------------------------------------------------
// currency_display
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_currency_display_setting_changes_how_mail_writes_amounts() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    app.submitted(&c.staff, fund, "1500").await;
    let mails = mail_to(&app, &c.head).await;
    assert!(mails[0].contains("asks for 1500.00 KES."), "{}", mails[0]);

    set(&app, &c.admin, "currency_display", json!("symbol")).await;
    app.submitted(&c.staff, fund, "2500.5").await;
    let mails = mail_to(&app, &c.head).await;
    assert!(mails[1].contains("asks for KSh 2,500.50."), "{}", mails[1]);
    assert!(mails[1].contains("Amount: KSh 2,500.50"), "{}", mails[1]);
    // The API's amounts are untouched.
    wait_for_projections(&app.pool, &["requisitions"]).await;
    let list = app.get(&c.head, "/api/approvals/").await;
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["amount"] == "2500.50" && i["currency"] == "KES"));
}
