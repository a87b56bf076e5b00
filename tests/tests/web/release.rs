//! The release check a person does after each deploy (issue #16), in one browser, as three
//! people: a requester asks for cash with a receipt, an approver approves it with a comment,
//! treasury pays it with the one-time code read from the real SMTP server on loopback; then the
//! dashboard's fund balance has dropped by the amount, the cash book shows the payment and its
//! PDF downloads, and the low-balance alert the payment raised is acknowledged.

use crate::browser::{upload, Browser, Screen};
use pettycash_tests::pdf::pdf_text;
use pettycash_tests::receipts::pdf;
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, Cast, MailServer, TestApp, TestUser, PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::StatusCode;
use uuid::Uuid;

/// The fund's balance as the dashboard's funds table shows it.
async fn dashboard_balance(browser: &Browser, fund: &str) -> String {
    browser.goto("/dashboard/").await;
    let rows = browser.texts("table tbody tr").await;
    rows.iter()
        .find(|r| r.starts_with(fund))
        .and_then(|r| r.split_whitespace().skip_while(|w| *w != "KES").nth(1).map(|a| format!("KES {a}")))
        .unwrap_or_else(|| panic!("no row of {fund} on the dashboard: {rows:?}"))
}

async fn sign_in_as(browser: &Browser, user: &TestUser) {
    browser.goto("/accounts/login/").await;
    browser.sign_in(&user.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/dashboard/");
}

async fn sign_out(browser: &Browser) {
    browser.click("form.sign-out button").await;
    assert_eq!(browser.location().await, "/accounts/login/");
}

#[tokio::test]
async fn release_check_request_approve_pay_with_the_mailed_code_then_dashboard_cash_book_and_alert() {
    let smtp = MailServer::start().await;
    let app = TestApp::spawn_with(|c| smtp.configure(c)).await;
    let cast = Cast::new(&app).await;
    let fund_name = "Mombasa branch cash";
    let body = json!({"name": fund_name, "currency": "KES", "float": "5000", "reorder_level": "4500"});
    let r = app.post(&cast.admin, "/api/funds/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let fund = r.id();
    wait_for_projections(&app.pool, &["cash"]).await;
    let mut browser = Browser::open(&app.address, Screen::Desktop, "release-check").await;

    // 1. The requester: a new requisition with its receipt, submitted.
    sign_in_as(&browser, &cast.staff).await;
    browser.click("nav a[href='/requisitions/']").await;
    browser.click("a[href='/requisitions/new']").await;
    browser.select("#fund_id", &fund.to_string()).await;
    browser.fill("#amount", "900").await;
    browser.fill("#purpose", "Generator diesel").await;
    browser.fill("#payee", "Coast Fuels Ltd").await;
    browser.choose_file("#file", &upload("diesel-receipt.pdf", &pdf("diesel"))).await;
    browser.screenshot("requester-new").await;
    browser.click("button[name=action][value=submit]").await;
    let location = browser.location().await;
    let id: Uuid = location.strip_prefix("/requisitions/").and_then(|s| s.parse().ok()).expect(&location);
    assert_eq!(browser.text("#status").await, "Pending approval");
    assert_eq!(browser.texts(".receipts li a").await, ["diesel-receipt.pdf"]);
    browser.screenshot("requester-submitted").await;
    sign_out(&browser).await;

    // 2. Someone else, with the approver role: approves it with a comment.
    sign_in_as(&browser, &cast.head).await;
    browser.click("nav a[href='/approvals/']").await;
    assert_eq!(browser.texts("table.inbox tbody td a").await, ["Generator diesel"]);
    browser.click("table.inbox tbody td a").await;
    browser.fill("#approve-comment", "Receipt matches the delivery note").await;
    browser.click("#approve-form button").await;
    assert_eq!(browser.text("#status").await, "Approved");
    assert_eq!(browser.text(".timeline li .comment").await, "“Receipt matches the delivery note”");
    browser.screenshot("approver-approved").await;
    sign_out(&browser).await;

    // 3. Treasury: the balance before, then the payment with the code from the mail.
    sign_in_as(&browser, &cast.treasury).await;
    assert_eq!(dashboard_balance(&browser, fund_name).await, "KES 5,000.00");
    browser.screenshot("dashboard-before").await;
    browser.click("nav a[href='/treasury/']").await;
    let row = format!("tr#requisition-{id}");
    assert!(browser.text(&row).await.contains("KES 900.00"));
    browser.click(&format!("{row} a.button")).await;
    browser.click("#code-form button[type=submit]").await;
    assert!(browser
        .text("#code-sent")
        .await
        .starts_with(&format!("A code was mailed to {}.", cast.treasury.email)));
    let code = app.mailed_payment_code(&smtp, &cast.treasury.email, id).await;
    browser.fill("#code", &code).await;
    browser.screenshot("treasury-code").await;
    browser.click("#pay-form button[type=submit]").await;
    assert!(browser.location().await.starts_with(&format!("/treasury/?paid={id}")));
    assert_eq!(browser.count(&row).await, 0, "paid: out of the queue");

    // 4. The dashboard: the fund's balance dropped by the amount.
    wait_for_projections(&app.pool, &["requisitions", "cash", "alerts"]).await;
    assert_eq!(dashboard_balance(&browser, fund_name).await, "KES 4,100.00");
    browser.screenshot("dashboard-after").await;

    // 5. The cash book shows the payment, and its PDF downloads with it.
    browser.goto("/reports/").await;
    browser.click("#report-cash-book h2 a").await;
    browser.select("#fund", &fund.to_string()).await;
    browser.click("#report-filters button[type=submit]").await;
    let movements = browser.texts("table.report tbody tr").await;
    let payment =
        movements.iter().find(|m| m.contains(&id.to_string())).unwrap_or_else(|| panic!("{movements:?}"));
    assert!(payment.contains("-900") && payment.contains("4100"), "{payment}");
    browser.screenshot("cash-book").await;
    let cookie = browser.client.get_named_cookie("pettycash_session").await.expect("a session cookie");
    let download = reqwest::Client::new()
        .get(format!("{}/api/reports/cash-book?fund_id={fund}&format=pdf", app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()[CONTENT_TYPE], "application/pdf");
    let text = pdf_text(&download.bytes().await.unwrap(), None).await;
    assert!(text.contains(fund_name) && text.contains("-900") && text.contains("4100"), "{text}");

    // 6. The low-balance alert (4,100 under the reorder level of 4,500), acknowledged.
    browser.click("nav a[href='/alerts/']").await;
    let listed = app.get(&cast.treasury, "/api/alerts/?type=fund_low").await;
    let alert = listed.body["items"][0]["id"].as_str().expect("a fund_low alert").to_string();
    let item = format!("#alert-{alert}");
    assert!(browser.text(&item).await.contains("Fund low"), "{}", browser.text(&item).await);
    assert_eq!(browser.text(&format!("{item} .state")).await, "open");
    browser.screenshot("alert-open").await;
    browser.fill(&format!("#ack-note-{alert}"), "Replenishment requested").await;
    browser.click(&format!("{item} form.acknowledge button")).await;
    assert_eq!(browser.text(&format!("{item} .state")).await, "acknowledged");
    browser.screenshot("alert-acknowledged").await;
    browser.close().await;
}
