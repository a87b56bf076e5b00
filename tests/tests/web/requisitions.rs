//! The requisitions and approvals pages as a requester and an approver use them: a new
//! requisition with its receipt, the list and its filters, the approver's inbox and decision,
//! the timeline, changes requested and resubmitted, cancelling, errors beside their field,
//! delegation while away, what a requester may not reach, and a phone-sized screen.

use crate::browser::{upload, Browser, Screen};
use pettycash_tests::receipts::pdf;
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, Cast, TestApp, TestUser, PASSWORD};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use uuid::Uuid;

/// A server with the standard cast and one KES fund; nothing requested yet.
struct Office {
    app: TestApp,
    cast: Cast,
    fund: Uuid,
}

impl Office {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let cast = Cast::new(&app).await;
        let body = json!({"name": "Front office cash", "currency": "KES", "float": "50000"});
        let r = app.post(&cast.admin, "/api/funds/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let fund = r.id();
        // The forms offer the funds of the read model: wait until it holds this one (a busy
        // machine may take a while).
        wait_for_projections(&app.pool, &["cash"]).await;
        Office { app, cast, fund }
    }

    async fn browser(&self, screen: Screen, name: &str, user: &TestUser) -> Browser {
        let browser = Browser::open(&self.app.address, screen, name).await;
        browser.goto("/accounts/login/").await;
        browser.sign_in(&user.email, PASSWORD).await;
        assert_eq!(browser.location().await, "/dashboard/");
        browser
    }

    async fn name_of(&self, user: &TestUser) -> String {
        sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// `GET path` over HTTP as `user`: the status.
    async fn status_of(&self, user: &TestUser, path: &str) -> StatusCode {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path}", self.app.address))
            .header(COOKIE, format!("pettycash_session={}", user.token))
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// The requisition id of the page shown (`/requisitions/{id}`).
async fn shown_id(browser: &Browser) -> Uuid {
    let location = browser.location().await;
    let id =
        location.strip_prefix("/requisitions/").unwrap_or_else(|| panic!("not a requisition: {location}"));
    id.parse().unwrap_or_else(|_| panic!("not a requisition: {location}"))
}

#[tokio::test]
async fn a_requester_submits_with_a_receipt_and_an_approver_approves_with_a_comment() {
    let office = Office::new().await;
    let (staff, head) = (&office.cast.staff, &office.cast.head);
    // A draft of the requester's, for the filters to leave out.
    let r = office
        .app
        .post(
            staff,
            "/api/requisitions/",
            json!({"fund_id": office.fund, "amount": "80", "purpose": "Stationery"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mut browser = office.browser(Screen::Desktop, "requisitions-approve", staff).await;

    // The requester: the list, then a new requisition with its receipt, submitted.
    browser.click("nav a[href='/requisitions/']").await;
    assert_eq!(browser.location().await, "/requisitions/");
    assert_eq!(browser.text("nav a[aria-current=page]").await, "Requisitions");
    assert_eq!(browser.count("nav a[href='/approvals/']").await, 0, "a requester has no approvals inbox");
    browser.click("a[href='/requisitions/new']").await;
    assert_eq!(browser.count("label[for=amount]").await, 1);
    browser.select("#fund_id", &office.fund.to_string()).await;
    browser.fill("#amount", "850.50").await;
    browser.fill("#purpose", "Printer toner").await;
    browser.fill("#payee", "Office Mart").await;
    let receipt = upload("toner-receipt.pdf", &pdf("toner"));
    browser.choose_file("#file", &receipt).await;
    browser.screenshot("new").await;
    browser.click("button[name=action][value=submit]").await;

    let id = shown_id(&browser).await;
    assert_eq!(browser.text("h1").await, "Printer toner");
    assert_eq!(browser.text("#status").await, "Pending approval");
    assert_eq!(browser.text("#amount").await, "KES 850.50");
    assert_eq!(browser.texts(".receipts li a").await, ["toner-receipt.pdf"]);
    let head_name = office.name_of(head).await;
    assert!(browser.text("#waits-on").await.contains(&head_name), "{}", browser.text("#waits-on").await);
    assert_eq!(browser.texts(".chain .step.current .step-role").await, ["1. Department head"]);
    assert_eq!(browser.count("#approve-form").await, 0, "the requester does not decide");
    browser.screenshot("submitted").await;
    // The API sees what the page did: submitted, the receipt attached and downloadable.
    let api = office.app.get(staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(api.body["status"], "pending_approval");
    assert_eq!(api.body["receipts"][0]["name"], "toner-receipt.pdf");
    let download = office
        .app
        .get(
            staff,
            &format!("/api/requisitions/{id}/receipts/{}", api.body["receipts"][0]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(download.status, StatusCode::OK);

    // The list and its filters.
    wait_for_projections(&office.app.pool, &["requisitions"]).await;
    browser.goto("/requisitions/").await;
    assert_eq!(browser.texts("table.requisitions tbody td a").await, ["Printer toner", "Stationery"]);
    browser.select("#f-status", "pending_approval").await;
    browser.click("form.filters button[type=submit]").await;
    assert_eq!(browser.location().await, "/requisitions/?status=pending_approval&fund_id=&from=&to=&q=");
    assert_eq!(browser.texts("table.requisitions tbody td a").await, ["Printer toner"]);
    browser.screenshot("list-filtered").await;
    browser.goto("/requisitions/?status=draft").await;
    assert_eq!(browser.texts("table.requisitions tbody td a").await, ["Stationery"]);
    browser.goto("/requisitions/?q=TONER").await;
    assert_eq!(browser.texts("table.requisitions tbody td a").await, ["Printer toner"]);
    browser.goto(&format!("/requisitions/?fund_id={}&q=nothing+like+it", office.fund)).await;
    assert_eq!(browser.count("table.requisitions").await, 0);
    assert_eq!(browser.text("p.empty").await, "No requisition matches.");
    // A filter the API refuses shows its reason beside the field, not an error page.
    browser.goto("/requisitions/?from=2026-12-31&to=2026-01-01").await;
    assert!(browser.text("#f-to-error").await.contains("before"), "{}", browser.text("#f-to-error").await);

    // The requester cannot reach the approvals pages.
    browser.goto("/approvals/").await;
    assert_eq!(browser.text("h1").await, "Forbidden");
    assert_eq!(office.status_of(staff, "/approvals/").await, StatusCode::FORBIDDEN);
    assert_eq!(office.status_of(staff, "/approvals/delegation").await, StatusCode::FORBIDDEN);
    browser.screenshot("approvals-refused").await;
    browser.goto("/dashboard/").await;
    browser.click("form.sign-out button").await;

    // The approver: the inbox, the requisition, approved with a comment.
    browser.sign_in(&head.email, PASSWORD).await;
    browser.click("nav a[href='/approvals/']").await;
    assert_eq!(browser.location().await, "/approvals/");
    assert_eq!(browser.texts("table.inbox tbody td a").await, ["Printer toner"]);
    browser.screenshot("inbox").await;
    browser.click("table.inbox tbody td a").await;
    assert_eq!(shown_id(&browser).await, id);
    assert_eq!(browser.count("#approve-form").await, 1);
    assert_eq!(browser.count("#cancel-form").await, 0, "only the requester cancels");
    browser.screenshot("to-decide").await;
    browser.fill("#approve-comment", "Receipt checked").await;
    browser.click("#approve-form button").await;

    assert_eq!(shown_id(&browser).await, id);
    assert_eq!(browser.text("#status").await, "Approved");
    assert!(browser.text(".chain .step.approved .step-detail").await.contains(&head_name));
    // The timeline, newest first: who, what, when, and the comment.
    assert_eq!(browser.text(".timeline li .what").await, "Approved");
    assert_eq!(browser.text(".timeline li .by").await, head_name);
    assert_eq!(browser.text(".timeline li .comment").await, "“Receipt checked”");
    let at = browser.run("return document.querySelector('.timeline li time').getAttribute('datetime')").await;
    let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - at.to_utc()).num_seconds().abs() < 120, "{at}");
    let whats = browser.texts(".timeline li .what").await;
    assert_eq!(whats.last().map(String::as_str), Some("Created"), "{whats:?}");
    assert!(whats.contains(&"Receipt attached".to_string()), "{whats:?}");
    browser.screenshot("approved").await;
    // Decided: out of the inbox.
    wait_for_projections(&office.app.pool, &["requisitions"]).await;
    browser.goto("/approvals/").await;
    assert_eq!(browser.text("#inbox-empty").await, "Nothing waits on you.");
    browser.close().await;
}

#[tokio::test]
async fn changes_are_requested_made_and_resubmitted_then_the_requisition_is_cancelled() {
    let office = Office::new().await;
    let (staff, head) = (&office.cast.staff, &office.cast.head);
    let id = office.app.submitted(staff, office.fund, "300").await;
    let mut browser = office.browser(Screen::Desktop, "requisitions-changes", head).await;

    browser.goto(&format!("/requisitions/{id}")).await;
    // A refusal of the command shows beside its field: a deadline in the past.
    browser.fill("#changes-reason", "Attach the quote").await;
    browser.run("document.querySelector('#changes-deadline').value = '2020-01-01T09:00'").await;
    browser.click("#changes-form button").await;
    assert!(!browser.text("#changes-deadline-error").await.is_empty());
    assert_eq!(browser.text("#status").await, "Pending approval", "nothing was done");
    browser.screenshot("deadline-refused").await;
    browser.fill("#changes-reason", "Attach the quote").await;
    browser.click("#changes-form button").await;
    assert_eq!(browser.text("#status").await, "Changes requested");
    assert_eq!(browser.text(".timeline li .what").await, "Changes requested");
    assert_eq!(browser.text(".timeline li .comment").await, "“Attach the quote”");
    browser.click("form.sign-out button").await;

    browser.sign_in(&staff.email, PASSWORD).await;
    browser.goto(&format!("/requisitions/{id}")).await;
    assert_eq!(browser.text("#reason").await, "Attach the quote");
    browser.click("#edit-link").await;
    assert_eq!(browser.location().await, format!("/requisitions/{id}/edit"));
    assert!(browser.text("#changes-reason").await.contains("Attach the quote"));
    browser.screenshot("edit").await;
    browser.fill("#amount", "280").await;
    browser.fill("#comment", "Quote attached").await;
    browser.click("button[name=action][value=submit]").await;

    assert_eq!(shown_id(&browser).await, id);
    assert_eq!(browser.text("#status").await, "Pending approval");
    assert_eq!(browser.text("#amount").await, "KES 280.00");
    assert_eq!(browser.text(".timeline li .comment").await, "“Quote attached”");
    let whats = browser.texts(".timeline li .what").await;
    assert!(whats.iter().any(|w| w == "Edited"), "{whats:?}");
    let api = office.app.get(staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(api.body["status"], "pending_approval");
    assert_eq!(api.body["amount"], "280.00");
    browser.screenshot("resubmitted").await;

    // Cancelled by the requester, with a reason: nothing left to do.
    browser.fill("#cancel-reason", "No longer needed").await;
    browser.click("#cancel-form button").await;
    assert_eq!(browser.text("#status").await, "Cancelled");
    assert_eq!(browser.text(".timeline li .what").await, "Cancelled");
    assert_eq!(browser.text(".timeline li .comment").await, "“No longer needed”");
    assert_eq!(browser.count("#cancel-form, #edit-link, #receipt-form").await, 0);
    assert_eq!(office.app.get(staff, &format!("/api/requisitions/{id}")).await.body["status"], "cancelled");
    browser.screenshot("cancelled").await;
    browser.close().await;
}

#[tokio::test]
async fn errors_show_beside_their_field_and_another_requesters_requisition_is_not_found() {
    let office = Office::new().await;
    let staff = &office.cast.staff;
    let other = office.app.user(&[pettycash_domain::Role::Staff]).await;
    let theirs = office.app.submitted(&other, office.fund, "120").await;
    let mut browser = office.browser(Screen::Desktop, "requisitions-errors", staff).await;

    // An amount of 0: refused by the domain, shown beside the amount, the rest kept.
    browser.goto("/requisitions/new").await;
    browser.select("#fund_id", &office.fund.to_string()).await;
    browser.fill("#amount", "0").await;
    browser.fill("#purpose", "Taxi to the bank").await;
    browser.click("button[name=action][value=submit]").await;
    assert_eq!(browser.location().await, "/requisitions/new");
    assert!(!browser.text("#amount-error").await.is_empty());
    let invalid = browser.run("return document.querySelector('#amount').getAttribute('aria-invalid')").await;
    assert_eq!(invalid, "true");
    let described =
        browser.run("return document.querySelector('#amount').getAttribute('aria-describedby')").await;
    assert_eq!(described, "amount-error");
    assert_eq!(browser.run("return document.querySelector('#purpose').value").await, "Taxi to the bank");
    assert_eq!(browser.count(".field-error").await, 1, "only the amount is wrong");
    browser.screenshot("amount-refused").await;

    // A text file named .pdf: refused beside the file control before anything is created.
    browser.fill("#amount", "450").await;
    browser.choose_file("#file", &upload("receipt.pdf", b"not a receipt at all")).await;
    browser.click("button[name=action][value=draft]").await;
    assert!(browser.text("#file-error").await.contains("not a JPEG, PNG or PDF"));
    browser.screenshot("file-refused").await;
    wait_for_projections(&office.app.pool, &["requisitions"]).await;
    let mine = office.app.get(staff, "/api/requisitions/?mine=true").await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 0, "{mine:?}");

    // Saved as a draft it is the requester's, and the draft can be submitted from its page.
    browser.fill("#amount", "450").await;
    browser.click("button[name=action][value=draft]").await;
    assert_eq!(browser.text("#status").await, "Draft");
    assert_eq!(browser.text("#no-receipts").await, "No receipt yet.");
    browser.choose_file("#receipt-file", &upload("taxi.pdf", &pdf("taxi"))).await;
    browser.click("#receipt-form button").await;
    assert_eq!(browser.texts(".receipts li a").await, ["taxi.pdf"]);
    browser.click("#submit-form button").await;
    assert_eq!(browser.text("#status").await, "Pending approval");

    // Another requester's requisition is not found, as in the API.
    browser.goto(&format!("/requisitions/{theirs}")).await;
    assert_eq!(browser.text("h1").await, "Not Found");
    assert_eq!(office.status_of(staff, &format!("/requisitions/{theirs}")).await, StatusCode::NOT_FOUND);
    assert_eq!(office.status_of(staff, &format!("/requisitions/{theirs}/edit")).await, StatusCode::NOT_FOUND);
    assert_eq!(
        office.app.get(staff, &format!("/api/requisitions/{theirs}")).await.status,
        StatusCode::NOT_FOUND
    );
    browser.screenshot("not-found").await;
    browser.close().await;
}

#[tokio::test]
async fn an_approver_delegates_while_away_and_revokes_it() {
    let office = Office::new().await;
    let head = &office.cast.head;
    // A requisition routed to the holders of the role when it was submitted: a deputy who
    // took the role afterwards is offered no decision until the head delegates to them (the
    // commands' rule, not a page's guess).
    let waiting = office.app.submitted(&office.cast.staff, office.fund, "900").await;
    let deputy = office.app.user(&[pettycash_domain::Role::DepartmentHead]).await;
    let deputy_view = office.browser(Screen::Desktop, "requisitions-delegate", &deputy).await;
    let routed = office.app.get(head, &format!("/api/requisitions/{waiting}")).await;
    assert_eq!(routed.body["current_eligible"], json!([head.id]), "{routed:?}");
    deputy_view.goto(&format!("/requisitions/{waiting}")).await;
    assert_eq!(deputy_view.count(".chain").await, 1, "the deputy reads it");
    assert_eq!(deputy_view.count("#approve-form").await, 0, "not routed to the deputy");
    let mut browser = office.browser(Screen::Desktop, "requisitions-delegation", head).await;

    browser.goto("/approvals/").await;
    browser.click("a[href='/approvals/delegation']").await;
    assert_eq!(browser.location().await, "/approvals/delegation");
    browser.select("#delegate_id", &deputy.id.to_string()).await;
    // The last day before the first: refused beside it.
    let today = chrono::Utc::now().date_naive();
    let set = |css: &str, day: chrono::NaiveDate| format!("document.querySelector('{css}').value = '{day}'");
    browser.run(&set("#starts_on", today + chrono::Days::new(5))).await;
    browser.run(&set("#ends_on", today + chrono::Days::new(2))).await;
    browser.click("#grant-form button").await;
    assert_eq!(browser.count(".field-error").await, 1, "{}", browser.client.source().await.unwrap());
    browser.screenshot("refused").await;
    browser.run("document.querySelector('#starts_on').value = ''").await;
    browser.run(&set("#ends_on", today + chrono::Days::new(7))).await;
    browser.click("#grant-form button").await;

    let cells = browser.texts("table.delegations tbody td").await;
    assert_eq!(cells[0], "Department head");
    assert_eq!(cells[1], "You");
    assert_eq!(cells[2], office.name_of(&deputy).await);
    assert_eq!(cells[4], "Active");
    let api = office.app.get(head, "/api/delegations/").await;
    assert_eq!(api.body["items"][0]["delegate_id"], deputy.id.to_string());
    assert_eq!(api.body["items"][0]["status"], "active");
    browser.screenshot("delegated").await;
    // Starting today, the delegation is in force: the deputy is offered the decision forms.
    deputy_view.goto(&format!("/requisitions/{waiting}")).await;
    assert_eq!(deputy_view.count("#approve-form").await, 1, "{}", deputy_view.client.source().await.unwrap());
    browser.click("form.row-action button").await;
    assert_eq!(browser.texts("table.delegations tbody td").await[4], "Revoked");
    assert_eq!(office.app.get(head, "/api/delegations/").await.body["items"][0]["status"], "revoked");
    // Revoked: the deputy may no longer decide, and the page no longer offers it.
    deputy_view.goto(&format!("/requisitions/{waiting}")).await;
    assert_eq!(deputy_view.count("#approve-form").await, 0, "the delegation was revoked");
    deputy_view.close().await;
    browser.close().await;
}

#[tokio::test]
async fn the_requisition_pages_fit_a_375_px_screen() {
    let office = Office::new().await;
    let (staff, head) = (&office.cast.staff, &office.cast.head);
    let id = office.app.submitted(staff, office.fund, "1200").await;
    // More than a page of them: 25 a page, the rest behind "Next page".
    let drafts = (0..25).map(|n| {
        let body =
            json!({"fund_id": office.fund, "amount": format!("{}", 10 + n), "purpose": format!("Draft {n}")});
        office.app.post(staff, "/api/requisitions/", body)
    });
    for r in futures::future::join_all(drafts).await {
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    wait_for_projections(&office.app.pool, &["requisitions"]).await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";
    let mut browser = office.browser(Screen::Phone, "requisitions-phone", staff).await;

    for (path, name) in [
        ("/requisitions/".to_string(), "list"),
        ("/requisitions/new".to_string(), "new"),
        (format!("/requisitions/{id}"), "detail"),
    ] {
        browser.goto(&path).await;
        let sizes = browser.run(overflow).await;
        assert_eq!(sizes[0], 375);
        assert!(sizes[1].as_u64().unwrap() <= 375, "{path} scrolls sideways: {sizes}");
        browser.screenshot(name).await;
    }
    // Paging: the first page, then the last one.
    browser.goto("/requisitions/").await;
    assert_eq!(browser.count("table.requisitions tbody tr").await, 25);
    browser.click("a[rel=next]").await;
    assert!(browser.location().await.contains("cursor="), "{}", browser.location().await);
    assert_eq!(browser.texts("table.requisitions tbody td a").await, ["Test purchase"]);
    assert_eq!(browser.count("a[rel=next]").await, 0);
    browser.screenshot("list-last-page").await;
    browser.click("form.sign-out button").await;
    browser.sign_in(&head.email, PASSWORD).await;
    for (path, name) in [
        ("/approvals/".to_string(), "inbox"),
        (format!("/requisitions/{id}"), "decide"),
        ("/approvals/delegation".to_string(), "delegation"),
    ] {
        browser.goto(&path).await;
        let sizes = browser.run(overflow).await;
        assert!(sizes[1].as_u64().unwrap() <= 375, "{path} scrolls sideways: {sizes}");
        browser.screenshot(name).await;
    }
    browser.close().await;
}

#[tokio::test]
async fn the_holder_settles_an_advance_from_its_page_in_parts() {
    let office = Office::new().await;
    let (staff, head, treasury) = (&office.cast.staff, &office.cast.head, &office.cast.treasury);
    let body = json!({"fund_id": office.fund, "amount": "500", "purpose": "Field trip fuel", "submit": true,
                      "advance": true});
    let r = office.app.post(staff, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    office.app.approve_by(id, &[head]).await;
    let r = office.app.pay(treasury, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mut browser = office.browser(Screen::Desktop, "advance-settle", staff).await;
    browser.goto(&format!("/requisitions/{id}")).await;
    assert_eq!(browser.text("#advance-outstanding").await, "KES 500.00");
    assert_eq!(browser.text("#advance-status").await, "outstanding");
    browser.screenshot("advance").await;

    // Not a number: beside the field, nothing settled.
    browser.fill("#settle-spent", "lots").await;
    browser.click("#settle-form button").await;
    assert!(
        browser.text("#settle-spent-error").await.contains("number"),
        "{}",
        browser.text("#settle-spent-error").await
    );
    // More than is left: refused, shown in the form, nothing settled.
    browser.fill("#settle-spent", "700").await;
    browser.click("#settle-form button").await;
    assert!(browser.text("#settle-spent-error").await.contains("exceeds what remains to settle"));
    assert_eq!(browser.text("#advance-outstanding").await, "KES 500.00");
    browser.screenshot("advance-refused").await;

    // A part, then the rest: the figures follow, the form goes once nothing is left.
    browser.fill("#settle-spent", "300").await;
    browser.fill("#settle-returned", "50").await;
    browser.click("#settle-form button").await;
    assert_eq!(browser.text("#advance-outstanding").await, "KES 150.00");
    assert_eq!(browser.text("#advance-spent").await, "KES 300.00");
    browser.fill("#settle-returned", "150").await;
    browser.fill("#settle-note", "Change handed to the custodian").await;
    browser.click("#settle-form button").await;
    assert_eq!(browser.text("#advance-status").await, "settled");
    assert_eq!(browser.text("#advance-returned").await, "KES 200.00");
    assert_eq!(browser.count("#settle-form").await, 0);
    browser.screenshot("advance-settled").await;
    // The API agrees.
    let api = office.app.get(staff, &format!("/api/advances/{id}")).await;
    assert_eq!(api.body["status"], "settled", "{api:?}");
    assert_eq!(
        api.body["outstanding"].as_str().map(|o| o.parse::<rust_decimal::Decimal>().unwrap()),
        Some(0.into())
    );
    browser.close().await;
}
