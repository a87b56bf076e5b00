//! The admin and audit pages and the invitee's page, as a browser sees them: an invitation from
//! the admin's form to the invitee's first sign-in through the mailed link (a real SMTP server
//! on loopback), a fund opened with its thresholds (and a refused field shown beside it), an
//! auditor's event history and ledger as of an instant, and the refused page for everyone else.

use crate::browser::{csrf_token_in, plain_client, Browser, Screen};
use pettycash_tests::mail::{MailServer, PUBLIC_URL};
use pettycash_tests::serde_json::json;
use pettycash_tests::{invitation_token_in, wait_for_projections, Cast, TestApp, TestUser, PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
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
    let dashboard = plain_client()
        .get(format!("{}/dashboard/", app.address))
        .header(COOKIE, format!("pettycash_session={}", cast.staff.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token_in(&dashboard);
    let posted = plain_client()
        .post(format!("{}/admin/funds/", app.address))
        .header(COOKIE, format!("pettycash_session={}", cast.staff.token))
        .header(ORIGIN, app.address.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&name=Mine&currency=KES&float=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&cast.admin, "/api/funds/").await.body["items"].as_array().unwrap().len(), 0);

    // An admin's pages at 375 px: nothing wider than the screen (tables scroll in their box).
    app.fund(&cast.admin, "25000").await;
    let mut phone = signed_in(&app, &cast.admin, Screen::Phone, "admin-phone").await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";
    for page in ["/admin/users/", "/admin/funds/", "/admin/settings/"] {
        phone.goto(page).await;
        assert_eq!(phone.run(overflow).await, json!([375, 375]), "{page}");
    }
    phone.screenshot("settings-phone").await;
    phone.goto("/admin/funds/").await;
    phone.screenshot("funds-phone").await;
    phone.close().await;
}
