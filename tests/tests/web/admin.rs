//! The admin and audit pages and the invitee's page, as a browser sees them: an invitation from
//! the admin's form to the invitee's first sign-in through the mailed link (a real SMTP server
//! on loopback), a fund opened with its thresholds (and a refused field shown beside it), the
//! approval policy changed (tiers, then thresholds; refusals beside their fields) and the next
//! requisition's chain, a user moved to a unit, a unit and a category renamed, a fund's
//! custodian and auto-replenishment, an auditor's event history and ledger as of an instant,
//! and the refused page for everyone else.

use crate::browser::{post_form, session_csrf_token, Browser, Screen};
use pettycash_tests::mail::{MailServer, PUBLIC_URL};
use pettycash_tests::serde_json::json;
use pettycash_tests::{invitation_token_in, wait_for_projections, Cast, TestApp, TestUser, PASSWORD};
use reqwest::StatusCode;
use std::time::Duration;
use uuid::Uuid;

async fn signed_in(app: &TestApp, user: &TestUser, screen: Screen, name: &str) -> Browser {
    let browser = Browser::open(&app.address, screen, name).await;
    browser.goto("/accounts/login/").await;
    browser.sign_in(&user.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/dashboard/");
    browser
}

/// Ticks a checkbox (a click on it loads no page, so not `Browser::click`).
async fn tick(browser: &Browser, css: &str) {
    let script = format!("document.querySelector(\"{css}\").checked = true");
    browser.run(&script).await;
}

#[tokio::test]
async fn an_invitee_follows_the_mailed_link_chooses_a_password_and_signs_in() {
    let smtp = MailServer::start().await;
    let app = TestApp::spawn_with(|c| smtp.configure(c)).await;
    let cast = Cast::new(&app).await;
    let mut admin = signed_in(&app, &cast.admin, Screen::Desktop, "admin-invite").await;

    assert_eq!(admin.count("nav a[href='/admin/']").await, 1, "the admin area is in the navigation");
    admin.click("nav a[href='/admin/']").await;
    assert_eq!(admin.location().await, "/admin/");
    assert_eq!(admin.text("nav[aria-label=Main] a[aria-current=page]").await, "Admin");
    admin.screenshot("admin").await;
    admin.click(".subnav a[href='/admin/users/']").await;
    admin.fill("#invite-email", "wanjiru@example.com").await;
    admin.fill("#invite-name", "Wanjiru Kamau").await;
    tick(&admin, "#invite input[name=roles][value=treasury]").await;
    admin.screenshot("users").await;
    admin.click("#invite button[type=submit]").await;

    assert!(admin.location().await.starts_with("/admin/users/?min_position="));
    let sent = admin.text("#invitations").await;
    assert!(sent.contains("Wanjiru Kamau") && sent.contains("wanjiru@example.com"), "{sent}");
    assert!(sent.contains("Treasury") && sent.contains("Pending"), "{sent}");
    admin.screenshot("invited").await;
    admin.close().await;

    // The mail, as the invitee's mail program shows it: a link to the service.
    wait_for_projections(&app.pool, &["notifications"]).await;
    let mails = smtp.wait_for(1).await;
    let mail = mails.iter().find(|m| m.to == ["wanjiru@example.com"]).expect("a mail to the invitee");
    let token = invitation_token_in(&mail.text).expect("a link in the mail");
    let link = format!("/invitations/{token}");
    assert!(mail.text.contains(&format!("{PUBLIC_URL}{link}")), "{}", mail.text);

    let mut invitee = Browser::open(&app.address, Screen::Desktop, "invitee").await;
    invitee.goto(&link).await;
    assert_eq!(invitee.location().await, format!("/accounts/invitations/{token}"));
    assert_eq!(invitee.text(".invitee").await, "Wanjiru Kamau");
    assert_eq!(invitee.text(".invitee-email").await, "wanjiru@example.com");
    invitee.screenshot("invitation").await;

    // Two different passwords: said beside the second, nothing accepted.
    invitee.fill("#password", "a long enough password").await;
    invitee.fill("#confirm", "another password").await;
    invitee.click("form.stacked button[type=submit]").await;
    assert!(invitee.text("#confirm-error").await.contains("differ"));
    assert_eq!(
        invitee.run("return document.querySelector('#confirm').getAttribute('aria-invalid')").await,
        "true"
    );
    // One the password settings refuse: said beside the password, by the API's own rule.
    invitee.fill("#password", "short").await;
    invitee.fill("#confirm", "short").await;
    invitee.click("form.stacked button[type=submit]").await;
    let refused = invitee.text("#password-error").await;
    assert!(!refused.is_empty(), "the settings' reason is shown");
    assert_eq!(invitee.count("#confirm-error").await, 0);
    invitee.screenshot("password-refused").await;

    let chosen = "Wanjiru's own password 7";
    invitee.fill("#password", chosen).await;
    invitee.fill("#confirm", chosen).await;
    invitee.click("form.stacked button[type=submit]").await;
    assert_eq!(invitee.location().await, "/dashboard/");
    assert_eq!(invitee.text("header .who .name").await, "Wanjiru Kamau");
    assert_eq!(invitee.text("header .who .roles").await, "Treasury");
    invitee.screenshot("signed-in").await;

    // Signed out, the password chosen signs them in.
    invitee.click("form.sign-out button").await;
    invitee.sign_in("wanjiru@example.com", chosen).await;
    assert_eq!(invitee.location().await, "/dashboard/");

    // The link worked once.
    invitee.goto(&link).await;
    assert_eq!(invitee.text("h1").await, "Gone");
    assert!(invitee.text("main").await.contains("Error 410"));
    invitee.screenshot("link-used").await;
    invitee.close().await;
}

#[tokio::test]
async fn an_admin_opens_a_fund_with_thresholds_and_a_refused_field_is_shown_beside_it() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let mut browser = signed_in(&app, &cast.admin, Screen::Desktop, "admin-fund").await;

    browser.goto("/admin/funds/").await;
    assert_eq!(browser.text("#funds").await, "There are no funds yet.");
    browser.fill("#open-fund-name", "Mombasa till").await;
    browser.fill("#open-fund-float", "1000").await;
    browser.fill("#open-fund-reorder_level", "5000").await;
    browser.click("#open-fund button[type=submit]").await;

    // The domain's rule, beside the field it is about; what was typed is kept.
    let error = browser.text("#open-fund-reorder_level-error").await;
    assert_eq!(error, "Must not exceed the fund's float.", "without the field's name again");
    let invalid = "return document.querySelector('#open-fund-reorder_level').getAttribute('aria-invalid')";
    assert_eq!(browser.run(invalid).await, "true");
    let described =
        "return document.querySelector('#open-fund-reorder_level').getAttribute('aria-describedby')";
    assert!(browser.run(described).await.as_str().unwrap().contains("open-fund-reorder_level-error"));
    assert_eq!(browser.run("return document.querySelector('#open-fund-name').value").await, "Mombasa till");
    assert_eq!(browser.count("#funds tbody tr").await, 0, "nothing was opened");
    browser.screenshot("field-error").await;

    browser.fill("#open-fund-reorder_level", "400").await;
    browser.fill("#open-fund-minimum_balance", "100").await;
    browser.click("#open-fund button[type=submit]").await;
    // Back on the page, which waited for the funds' list to have the new fund.
    assert!(browser.location().await.starts_with("/admin/funds/?min_position="));
    let row = browser.text("#funds tbody tr").await;
    assert!(row.contains("Mombasa till (KES)"), "{row}");
    let funds = app.get(&cast.admin, "/api/funds/").await;
    let fund = &funds.body["items"][0];
    assert_eq!(fund["name"], "Mombasa till");
    for (field, shown) in [("float", "1,000"), ("reorder_level", "400"), ("minimum_balance", "100")] {
        let amount: rust_decimal::Decimal = fund[field].as_str().unwrap().parse().unwrap();
        assert_eq!(amount, shown.replace(',', "").parse().unwrap(), "{field}");
        assert!(row.contains(&format!("KES {shown}")), "{field} in {row}");
    }
    browser.screenshot("funds").await;

    // The organisation: a company opened from the form is in the tree.
    browser.click(".subnav a[href='/admin/organisation/']").await;
    browser.set_value("#open-unit-kind", "company").await;
    browser.fill("#open-unit-name", "Pwani Traders").await;
    browser.fill("#open-unit-code", "pwani").await;
    browser.click("#open-unit button[type=submit]").await;
    assert!(browser.location().await.starts_with("/admin/organisation/"));
    let units = browser.text("#units").await;
    assert!(units.contains("Pwani Traders") && units.contains("PWANI"), "{units}");
    browser.screenshot("organisation").await;

    // A category, and the other pages of the area.
    browser.click(".subnav a[href='/admin/categories/']").await;
    browser.fill("#create-category-code", "fuel").await;
    browser.fill("#create-category-name", "Fuel").await;
    browser.fill("#create-category-gl_code", "6200").await;
    browser.click("#create-category button[type=submit]").await;
    assert!(browser.text("#categories").await.contains("FUEL"));
    browser.screenshot("categories").await;
    for page in ["budgets", "settings", "imports"] {
        browser.click(&format!(".subnav a[href='/admin/{page}/']")).await;
        assert_eq!(browser.location().await, format!("/admin/{page}/"));
        assert!(!browser.text(".subnav a[aria-current=page]").await.is_empty());
        browser.screenshot(page).await;
    }
    // An import: a CSV file chosen in the form, every row's verdict on the page, the company
    // then in the organisation.
    let csv = std::env::temp_dir().join(format!("companies-{}.csv", Uuid::new_v4()));
    std::fs::write(&csv, "name,code\nKilifi Supplies,KLF\n,NONAME\n").unwrap();
    browser.goto("/admin/imports/").await;
    browser.set_value("#import-what", "companies").await;
    let file = browser.client.find(fantoccini::Locator::Css("#import-file")).await.unwrap();
    file.send_keys(csv.to_str().unwrap()).await.unwrap();
    browser.click("#import button[type=submit]").await;
    let report = browser.text("#import-report").await;
    assert!(report.contains("Rejected") && report.contains("Created"), "{report}");
    assert!(browser.text("main").await.contains("Nothing was recorded: 1 rejected."));
    browser.screenshot("import-rejected").await;
    tick(&browser, "#import-skip_invalid").await;
    let file = browser.client.find(fantoccini::Locator::Css("#import-file")).await.unwrap();
    file.send_keys(csv.to_str().unwrap()).await.unwrap();
    browser.click("#import button[type=submit]").await;
    assert!(browser.text("main").await.contains("Imported: 1 created, 0 unchanged, 1 rejected."));
    std::fs::remove_file(&csv).unwrap();
    browser.goto("/admin/organisation/").await;
    assert!(browser.text("#units").await.contains("Kilifi Supplies"));

    // A setting changed from its row's form is in force (the API reads it back).
    browser.goto("/admin/settings/").await;
    assert!(browser.text("#settings").await.contains("Password min length"));
    browser.fill("#setting-password_min_length-value", "14").await;
    browser.click("#setting-password_min_length button[type=submit]").await;
    let settings = app.get(&cast.admin, "/api/settings").await;
    let min =
        settings.body["settings"].as_array().unwrap().iter().find(|s| s["key"] == "password_min_length");
    assert_eq!(min.unwrap()["value"], 14);
    // A value the setting does not take: said beside that row's field.
    browser.fill("#setting-password_min_length-value", "2").await;
    browser.click("#setting-password_min_length button[type=submit]").await;
    assert!(!browser.text("#setting-password_min_length-value-error").await.is_empty());
    browser.screenshot("setting-refused").await;
    browser.close().await;
}

#[tokio::test]
async fn an_auditor_sees_a_requisitions_history_and_a_funds_ledger_before_a_payment() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let r = app
        .post(&cast.admin, "/api/funds/", json!({"name": "Kisumu cash", "currency": "KES", "float": "50000"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let fund = r.id();
    let requisition = app.submitted(&cast.staff, fund, "850.50").await;
    app.approve_by(requisition, &[&cast.head]).await;
    // An instant after the opening and before the payment, to the second (the form's precision).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_payment = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let paid = app.pay(&cast.treasury, requisition).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    wait_for_projections(&app.pool, &["requisitions", "cash"]).await;

    let mut browser = signed_in(&app, &cast.auditor, Screen::Desktop, "audit").await;
    browser.click("nav a[href='/audit/']").await;
    assert_eq!(browser.location().await, "/audit/");
    assert!(browser.text("main").await.contains("No result of `pettycash-replay verify` is recorded"));
    browser.screenshot("audit").await;

    browser.fill("#history-id", &requisition.to_string()).await;
    browser.click("#history button[type=submit]").await;
    assert!(browser.location().await.starts_with("/audit/history"));
    let events = browser.text("#events").await;
    assert!(events.contains("RequisitionCreated") && events.contains("RequisitionSubmitted"), "{events}");
    let staff_name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(cast.staff.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(events.contains(&staff_name), "who did it, by name: {events}");
    // The same events the API's history of the requisition lists.
    let api = app.get(&cast.auditor, &format!("/api/requisitions/{requisition}/history")).await;
    assert_eq!(browser.count("#events tbody tr").await, api.body.as_array().unwrap().len());
    browser.screenshot("history").await;

    // Something that is not there: said beside the id.
    browser.fill("#history-id", &Uuid::new_v4().to_string()).await;
    browser.click("#history button[type=submit]").await;
    assert!(browser.text("#history-id-error").await.contains("not found"));

    browser.click(".subnav a[href='/audit/ledger/']").await;
    browser.set_value("#ledger-fund_id", &fund.to_string()).await;
    browser.set_value("#ledger-as_of", &before_payment).await;
    browser.click("#ledger button[type=submit]").await;
    let summary = browser.text("#ledger-summary tbody").await;
    assert!(
        summary.contains("KES 50,000") && !summary.contains("49,149"),
        "the balance before the payment: {summary}"
    );
    assert_eq!(browser.count("#ledger-movements tbody tr").await, 1, "the opening only");
    browser.screenshot("ledger-before").await;

    let now = (chrono::Utc::now() + chrono::Duration::seconds(2)).format("%Y-%m-%dT%H:%M:%S").to_string();
    browser.set_value("#ledger-as_of", &now).await;
    browser.click("#ledger button[type=submit]").await;
    let summary = browser.text("#ledger-summary tbody").await;
    assert!(summary.contains("KES 49,149.5"), "after the payment: {summary}");
    assert!(browser.text("#ledger-movements").await.contains("disbursement"));
    browser.screenshot("ledger-after").await;
    browser.close().await;
}

#[tokio::test]
async fn staff_get_the_refused_page_for_admin_and_audit_and_the_pages_fit_a_phone() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let mut browser = signed_in(&app, &cast.staff, Screen::Desktop, "admin-refused").await;
    assert_eq!(browser.count("nav a[href='/admin/']").await, 0);
    assert_eq!(browser.count("nav a[href='/audit/']").await, 0);
    for path in ["/admin/", "/admin/users/", "/admin/funds/", "/audit/", "/audit/ledger/"] {
        browser.goto(path).await;
        assert_eq!(browser.text("h1").await, "Forbidden", "{path}");
        assert!(browser.text("main").await.contains("Error 403"), "{path}");
    }
    browser.screenshot("refused").await;
    browser.close().await;

    // A form posted by hand with the staff user's own valid token is refused too: nothing opens.
    let token = session_csrf_token(&app.address, &cast.staff.token).await;
    let fields = format!("csrf_token={token}&name=Mine&currency=KES&float=100");
    let posted = post_form(&app.address, "/admin/funds/", &cast.staff.token, &fields).await;
    assert_eq!(posted.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&cast.admin, "/api/funds/").await.body["items"].as_array().unwrap().len(), 0);

    // An admin's pages at 375 px: nothing wider than the screen (tables scroll in their box).
    app.fund(&cast.admin, "25000").await;
    let mut phone = signed_in(&app, &cast.admin, Screen::Phone, "admin-phone").await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";
    for page in ["/admin/users/", "/admin/funds/", "/admin/policy/", "/admin/settings/"] {
        phone.goto(page).await;
        assert_eq!(phone.run(overflow).await, json!([375, 375]), "{page}");
    }
    phone.screenshot("settings-phone").await;
    phone.goto("/admin/funds/").await;
    phone.screenshot("funds-phone").await;
    phone.close().await;
}

/// The `value` of the control matching `css`.
async fn value_of(browser: &Browser, css: &str) -> String {
    let value = browser.run(&format!("return document.querySelector(\"{css}\").value")).await;
    value.as_str().unwrap_or_default().to_string()
}

/// Whether the control matching `css` is marked invalid for assistive technology.
async fn marked_invalid(browser: &Browser, css: &str) -> bool {
    browser.run(&format!("return document.querySelector(\"{css}\").getAttribute('aria-invalid')")).await
        == "true"
}

/// The chain of roles `GET /api/requisitions/{id}` says the requisition waits on.
async fn chain_of(app: &TestApp, user: &TestUser, requisition: Uuid) -> pettycash_tests::serde_json::Value {
    let r = app.get(user, &format!("/api/requisitions/{requisition}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["chain"].clone()
}

#[tokio::test]
async fn an_admin_changes_the_approval_policy_and_the_next_requisition_waits_on_the_new_chain() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let fund = app.fund(&cast.admin, "50000").await;
    let mut browser = signed_in(&app, &cast.admin, Screen::Desktop, "admin-policy").await;
    browser.goto("/admin/").await;
    browser.click(".subnav a[href='/admin/policy/']").await;
    let tiers = browser.text("#tiers").await;
    assert!(tiers.contains("Up to 1,000") && tiers.contains("Above 10,000"), "the built-in tiers: {tiers}");
    assert!(tiers.contains("Department head → Group finance manager → CFO"), "{tiers}");
    assert_eq!(
        value_of(&browser, "#policy-tiers-tiers-2-chain").await,
        "Department head, Group finance manager, CFO"
    );
    browser.screenshot("policy").await;

    // Bounds that do not increase: the command's refusal under the tiers' legend, what was
    // typed kept, nothing changed.
    browser.fill("#policy-tiers-tiers-1-up_to", "500").await;
    browser.click("#policy-tiers button[type=submit]").await;
    assert_eq!(
        browser.text("#policy-tiers-tiers-error").await,
        "Tier bounds must be positive and increasing."
    );
    assert_eq!(value_of(&browser, "#policy-tiers-tiers-1-up_to").await, "500");
    // A role that is none: beside that row's chain.
    browser.fill("#policy-tiers-tiers-1-up_to", "5000").await;
    browser.fill("#policy-tiers-tiers-1-chain", "Department head, the boss").await;
    browser.click("#policy-tiers button[type=submit]").await;
    assert!(browser.text("#policy-tiers-tiers-1-chain-error").await.contains("the boss"));
    assert!(marked_invalid(&browser, "#policy-tiers-tiers-1-chain").await);
    assert_eq!(browser.count("#policy-tiers-tiers-error").await, 0, "said once, beside the row");
    browser.screenshot("policy-refused").await;
    assert_eq!(app.get(&cast.admin, "/api/approval-policy").await.body["version"], 0);

    // Two tiers, the second row emptied (left out), the last tier in a spare row.
    browser.fill("#policy-tiers-tiers-0-up_to", "500").await;
    browser.fill("#policy-tiers-tiers-0-chain", "department_head").await;
    for field in ["1-up_to", "1-chain", "2-up_to"] {
        browser.fill(&format!("#policy-tiers-tiers-{field}"), "").await;
    }
    browser.fill("#policy-tiers-tiers-2-chain", "").await;
    browser.fill("#policy-tiers-tiers-3-chain", "Department head, CFO").await;
    browser.click("#policy-tiers button[type=submit]").await;
    assert!(browser.location().await.starts_with("/admin/policy/?min_position="));
    let tiers = browser.text("#tiers").await;
    assert!(tiers.contains("Up to 500") && tiers.contains("Above 500"), "{tiers}");
    assert!(tiers.contains("Department head → CFO") && !tiers.contains("Group finance"), "{tiers}");
    browser.screenshot("policy-tiers").await;
    let policy = app.get(&cast.admin, "/api/approval-policy").await.body;
    assert_eq!(policy["version"], 1);
    let up_to: Vec<Option<rust_decimal::Decimal>> = policy["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["up_to"].as_str().map(|a| a.parse().unwrap()))
        .collect();
    assert_eq!(up_to, [Some(500.into()), None]);
    assert_eq!(policy["tiers"][1]["chain"], json!(["department_head", "cfo"]));
    let requisition = app.submitted(&cast.staff, fund, "850").await;
    assert_eq!(chain_of(&app, &cast.staff, requisition).await, json!(["department_head", "cfo"]));

    // Thresholds in place of the tiers (the form starts from the tiers read as thresholds).
    // First a gap between them: the command's refusal under the thresholds' legend.
    browser.fill("#policy-thresholds-thresholds-0-name", "Small").await;
    browser.fill("#policy-thresholds-thresholds-0-currency", "KES").await;
    browser.fill("#policy-thresholds-thresholds-0-min", "0").await;
    browser.fill("#policy-thresholds-thresholds-0-max", "1000").await;
    browser.fill("#policy-thresholds-thresholds-0-chain", "Department head").await;
    browser.fill("#policy-thresholds-thresholds-1-name", "Large").await;
    browser.fill("#policy-thresholds-thresholds-1-currency", "KES").await;
    browser.fill("#policy-thresholds-thresholds-1-min", "1200").await;
    browser.fill("#policy-thresholds-thresholds-1-chain", "Department head, Group finance manager").await;
    tick(&browser, "#policy-thresholds-thresholds-1-requires_cfo").await;
    browser.click("#policy-thresholds button[type=submit]").await;
    let gap = browser.text("#policy-thresholds-thresholds-error").await;
    assert!(gap.contains("KES"), "{gap}");
    assert_eq!(value_of(&browser, "#policy-thresholds-thresholds-1-min").await, "1200");
    let ticked = "return document.querySelector('#policy-thresholds-thresholds-1-requires_cfo').checked";
    assert_eq!(browser.run(ticked).await, true, "the box stays ticked");
    browser.screenshot("thresholds-refused").await;

    browser.fill("#policy-thresholds-thresholds-1-min", "1000.01").await;
    browser.click("#policy-thresholds button[type=submit]").await;
    assert!(browser.location().await.starts_with("/admin/policy/?min_position="));
    assert_eq!(browser.count("#tiers").await, 0, "thresholds took the tiers' place");
    let shown = browser.text("#thresholds").await;
    assert!(shown.contains("Small") && shown.contains("Large") && shown.contains("+ CFO"), "{shown}");
    assert!(shown.contains("KES 1,000.01"), "{shown}");
    browser.screenshot("policy-thresholds").await;
    let policy = app.get(&cast.admin, "/api/approval-policy").await.body;
    assert_eq!(policy["tiers"], json!([]));
    let names: Vec<&str> =
        policy["thresholds"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Small", "Large"]);
    assert_eq!(policy["thresholds"][1]["requires_cfo"], true);
    let requisition = app.submitted(&cast.staff, fund, "1500").await;
    assert_eq!(
        chain_of(&app, &cast.staff, requisition).await,
        json!(["department_head", "group_finance_manager", "cfo"])
    );
    browser.close().await;
}

#[tokio::test]
async fn an_admin_moves_a_user_renames_a_unit_and_a_category_and_sets_a_funds_custodian() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let company = app.unit(&cast.admin, "company", "ACME", None).await;
    let region = app.unit(&cast.admin, "region", "COAST", Some(company)).await;
    let admin = app.user_in(&[pettycash_domain::Role::Admin], Some(company)).await;
    let clerk = app.user_in(&[pettycash_domain::Role::Staff], Some(company)).await;
    let fund = app.fund(&admin, "20000").await;
    let r =
        app.post(&admin, "/api/categories", json!({"code": "FUEL", "name": "Fuel", "gl_code": "6200"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let category = r.id();
    let mut browser = signed_in(&app, &admin, Screen::Desktop, "admin-units").await;

    // A unit renamed from its row.
    browser.goto("/admin/organisation/").await;
    assert_eq!(value_of(&browser, &format!("#rename-{region}-name")).await, "region COAST");
    browser.fill(&format!("#rename-{region}-name"), "Coast region").await;
    browser.click(&format!("#rename-{region} button[type=submit]")).await;
    assert!(browser.location().await.starts_with("/admin/organisation/?min_position="));
    assert!(browser.text("#units").await.contains("Coast region"));
    let units = app.get(&admin, "/api/org/units").await.body;
    let renamed = units["items"].as_array().unwrap().iter().find(|u| u["id"] == json!(region)).cloned();
    assert_eq!(renamed.unwrap()["name"], "Coast region");
    browser.screenshot("unit-renamed").await;

    // A user moved to the region from their row.
    browser.click(".subnav a[href='/admin/users/']").await;
    browser.select(&format!("#unit-{}-unit_id", clerk.id), &region.to_string()).await;
    browser.click(&format!("#unit-{} button[type=submit]", clerk.id)).await;
    assert!(browser.location().await.starts_with("/admin/users/?min_position="));
    // The row's Unit cell (its form lists every unit).
    let emails = browser.texts("#users tbody tr td:nth-child(2)").await;
    let row = emails.iter().position(|e| *e == clerk.email).expect("the clerk's row") + 1;
    let unit = browser.text(&format!("#users tbody tr:nth-child({row}) td:nth-child(4)")).await;
    assert_eq!(unit, "Region · COAST · Coast region");
    assert_eq!(value_of(&browser, &format!("#unit-{}-unit_id", clerk.id)).await, region.to_string());
    let users = app.get(&admin, "/api/users").await.body;
    let moved = users.as_array().unwrap().iter().find(|u| u["id"] == json!(clerk.id)).cloned();
    assert_eq!(moved.unwrap()["unit_id"], json!(region));
    browser.screenshot("user-moved").await;

    // A category renamed; its code and general-ledger code stay.
    browser.click(".subnav a[href='/admin/categories/']").await;
    browser.fill(&format!("#rename-category-{category}-name"), "Fuel and transport").await;
    browser.click(&format!("#rename-category-{category} button[type=submit]")).await;
    assert!(browser.location().await.starts_with("/admin/categories/?min_position="));
    let shown = browser.text("#categories tbody").await;
    assert!(shown.contains("Fuel and transport") && shown.contains("6200"), "{shown}");
    let categories = app.get(&admin, "/api/categories").await.body;
    assert_eq!(categories["items"][0]["name"], "Fuel and transport");
    assert_eq!(categories["items"][0]["gl_code"], "6200");
    browser.screenshot("category-renamed").await;

    // The fund's custodian chosen, auto-replenishment turned off.
    browser.click(".subnav a[href='/admin/funds/']").await;
    let auto = format!("#settings-{fund}-auto_replenish");
    assert_eq!(browser.run(&format!("return document.querySelector('{auto}').checked")).await, true);
    browser.select(&format!("#settings-{fund}-custodian_id"), &clerk.id.to_string()).await;
    browser.run(&format!("document.querySelector('{auto}').checked = false")).await;
    browser.click(&format!("#settings-{fund} button[type=submit]")).await;
    assert!(browser.location().await.starts_with("/admin/funds/?min_position="));
    let clerk_name = users.as_array().unwrap().iter().find(|u| u["id"] == json!(clerk.id)).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    // The row's Custodian and Auto-replenish cells (its form lists everyone who may hold it).
    let cells = "#funds tbody tr td:nth-child(6), #funds tbody tr td:nth-child(7)";
    assert_eq!(browser.texts(cells).await, [clerk_name.as_str(), "No"]);
    assert_eq!(value_of(&browser, &format!("#settings-{fund}-custodian_id")).await, clerk.id.to_string());
    let shown = app.get(&admin, &format!("/api/funds/{fund}")).await.body;
    assert_eq!(
        (shown["custodian_id"].clone(), shown["auto_replenish"].clone()),
        (json!(clerk.id), json!(false))
    );
    browser.screenshot("custodian").await;

    // Nobody holds it any more; auto-replenishment back on.
    browser.select(&format!("#settings-{fund}-custodian_id"), "").await;
    tick(&browser, &auto).await;
    browser.click(&format!("#settings-{fund} button[type=submit]")).await;
    assert_eq!(browser.texts(cells).await, ["—", "Yes"]);
    let shown = app.get(&admin, &format!("/api/funds/{fund}")).await.body;
    assert_eq!((shown["custodian_id"].clone(), shown["auto_replenish"].clone()), (json!(null), json!(true)));

    // The policy is the whole organisation's: a company's admin reads it, changes nothing.
    browser.click(".subnav a[href='/admin/policy/']").await;
    assert!(browser.text("#thresholds").await.contains("Tier 1"));
    assert_eq!(browser.count("#policy-tiers").await, 0);
    assert!(browser.text("main").await.contains("an admin of the whole organisation"));
    browser.close().await;
}

#[tokio::test]
async fn someone_not_an_admin_posting_the_new_admin_forms_with_a_valid_token_is_refused() {
    let app = TestApp::spawn().await;
    let cast = Cast::new(&app).await;
    let company = app.unit(&cast.admin, "company", "ACME", None).await;
    let fund = app.fund(&cast.admin, "20000").await;
    let token = session_csrf_token(&app.address, &cast.head.token).await;
    let forms = [
        ("/admin/policy/tiers".to_string(), "tiers%5B0%5D.chain=cfo".to_string()),
        (
            "/admin/policy/thresholds".into(),
            "thresholds%5B0%5D.name=All&thresholds%5B0%5D.min=0&thresholds%5B0%5D.chain=cfo".into(),
        ),
        (format!("/admin/users/{}/unit", cast.head.id), format!("unit_id={company}")),
        (format!("/admin/organisation/units/{company}/rename"), "name=Mine".into()),
        (format!("/admin/funds/{fund}/settings"), format!("custodian_id={}&minimum_balance=0", cast.head.id)),
    ];
    for (path, fields) in forms {
        let posted =
            post_form(&app.address, &path, &cast.head.token, &format!("csrf_token={token}&{fields}")).await;
        assert_eq!(posted.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(posted.text().await.unwrap().contains("Forbidden"), "the refused page: {path}");
    }
    // Nothing changed.
    assert_eq!(app.get(&cast.admin, "/api/approval-policy").await.body["version"], 0);
    let users = app.get(&cast.admin, "/api/users").await.body;
    let head = users.as_array().unwrap().iter().find(|u| u["id"] == json!(cast.head.id)).cloned();
    assert_eq!(head.unwrap()["unit_id"], json!(null));
    let units = app.get(&cast.admin, "/api/org/units").await.body;
    assert_eq!(units["items"][0]["name"], "company ACME");
    assert_eq!(app.get(&cast.admin, &format!("/api/funds/{fund}")).await.body["custodian_id"], json!(null));
}
