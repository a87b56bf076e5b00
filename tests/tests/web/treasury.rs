//! The treasury and alerts pages as a browser sees them: paying an approved requisition with
//! the code read from the real SMTP server on loopback, a wrong code refused beside its field,
//! a cash count, the low-balance alert acknowledged, a requester refused, a 375 px screen.

use crate::browser::{csrf_token_in, Browser, Screen};
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, Cast, MailServer, TestApp, PASSWORD};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use uuid::Uuid;

/// A fund of KES 5,000 with a reorder level of 4,500, and a requisition of 900 from it
/// approved (the department head's step only): paying it takes the fund to 4,100, below the
/// reorder level but above 80 % of it (`fund_low`, not `fund_critical`).
struct Desk {
    app: TestApp,
    cast: Cast,
    fund: Uuid,
    requisition: Uuid,
}

impl Desk {
    async fn new(smtp: Option<&MailServer>) -> Self {
        let app = match smtp {
            Some(smtp) => {
                TestApp::spawn_with(|c| {
                    c.seal_interval_secs = 3600;
                    smtp.configure(c);
                })
                .await
            }
            None => TestApp::spawn().await,
        };
        let cast = Cast::new(&app).await;
        let body = json!({"name": "Kisumu branch cash", "currency": "KES", "float": "5000",
                          "reorder_level": "4500"});
        let r = app.post(&cast.admin, "/api/funds/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let fund = r.id();
        let requisition = app.submitted(&cast.staff, fund, "900").await;
        app.approve_by(requisition, &[&cast.head]).await;
        wait_for_projections(&app.pool, &["requisitions", "cash"]).await;
        Desk { app, cast, fund, requisition }
    }

    async fn signed_in(&self, screen: Screen, name: &str, email: &str) -> Browser {
        let browser = Browser::open(&self.app.address, screen, name).await;
        browser.goto("/accounts/login/").await;
        browser.sign_in(email, PASSWORD).await;
        assert_eq!(browser.location().await, "/dashboard/");
        browser
    }
}

#[tokio::test]
async fn treasury_pays_an_approved_requisition_with_the_mailed_code_and_a_wrong_code_is_refused_beside_it() {
    let smtp = MailServer::start().await;
    let desk = Desk::new(Some(&smtp)).await;
    let treasury = &desk.cast.treasury;
    let id = desk.requisition;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-pay", &treasury.email).await;

    // The queue, from the navigation: the approved requisition with its pay action.
    browser.click("nav a[href='/treasury/']").await;
    assert_eq!(browser.location().await, "/treasury/");
    assert_eq!(browser.text("nav a[aria-current=page]").await, "Treasury");
    let row = format!("tr#requisition-{id}");
    assert_eq!(browser.count(&row).await, 1);
    let line = browser.text(&row).await;
    assert!(
        line.contains("Test purchase") && line.contains("KES 900.00") && line.contains("Kisumu branch cash"),
        "{line}"
    );
    browser.screenshot("queue").await;
    browser.goto("/treasury/funds/").await;
    assert_eq!(browser.text(&format!("#fund-{} .balance", desk.fund)).await, "KES 5,000.00");
    browser.screenshot("funds").await;

    browser.goto("/treasury/").await;
    browser.click(&format!("{row} a.button")).await;
    assert_eq!(browser.location().await, format!("/treasury/pay/{id}"));
    browser.screenshot("pay").await;

    // Step 1: the code, mailed through the outbox to the SMTP server.
    browser.click("#code-form button[type=submit]").await;
    let sent = browser.text("#code-sent").await;
    assert!(sent.starts_with(&format!("A code was mailed to {}.", treasury.email)), "{sent}");
    let code = desk.app.mailed_payment_code(&smtp, &treasury.email, id).await;
    browser.screenshot("code-sent").await;

    // A wrong code: refused beside the code field, nothing paid.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    browser.fill("#code", wrong).await;
    browser.click("#pay-form button[type=submit]").await;
    assert_eq!(browser.location().await, format!("/treasury/pay/{id}"));
    assert_eq!(browser.text("#code-error").await, "The code is not the one mailed to you.");
    let invalid = browser.run("return document.querySelector('#code').getAttribute('aria-invalid')").await;
    assert_eq!(invalid, "true");
    let described =
        browser.run("return document.querySelector('#code').getAttribute('aria-describedby')").await;
    assert_eq!(described, "code-error");
    assert_eq!(browser.count("#destination-error").await, 0);
    browser.screenshot("wrong-code").await;
    assert_eq!(desk.app.balance(treasury, desk.fund).await.to_string(), "5000.00");

    // The right code pays: back to the queue, which is empty now.
    browser.fill("#code", &code).await;
    browser.click("#pay-form button[type=submit]").await;
    assert!(
        browser.location().await.starts_with(&format!("/treasury/?paid={id}")),
        "{}",
        browser.location().await
    );
    assert!(browser.text("p.notice").await.starts_with("Paid: requisition"));
    assert_eq!(browser.count(&row).await, 0);
    assert_eq!(browser.text("p.empty").await, "Nothing is waiting to be paid.");
    browser.screenshot("paid").await;
    let r = desk.app.get(treasury, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.body["status"], "paid", "{r:?}");

    // The fund's balance dropped by the amount, on the funds page and the fund's page.
    browser.goto("/treasury/funds/").await;
    assert_eq!(browser.text(&format!("#fund-{} .balance", desk.fund)).await, "KES 4,100.00");
    browser.click(&format!("#fund-{} a", desk.fund)).await;
    assert_eq!(browser.text("dd.balance").await, "KES 4,100.00");
    browser.screenshot("fund").await;
    browser.close().await;
}

#[tokio::test]
async fn a_cash_count_is_recorded_and_the_low_balance_alert_is_acknowledged_from_the_alerts_page() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let r = desk.app.pay(treasury, desk.requisition).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    wait_for_projections(&desk.app.pool, &["cash", "alerts"]).await;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-count-alerts", &treasury.email).await;

    // The count form: four 1,000 notes and one 100 note are the book balance of 4,100.
    browser.goto(&format!("/treasury/funds/{}", desk.fund)).await;
    assert_eq!(browser.count("fieldset.denominations input[type=number]").await, 10, "KES notes and coins");
    assert_eq!(browser.text("label[for=count-0-50]").await, "KES 0.50 coins");
    browser.fill("#count-1000", "4").await;
    browser.fill("#count-100", "1").await;
    browser.screenshot("count-form").await;
    browser.click("#count-form button[type=submit]").await;
    assert!(browser.location().await.starts_with(&format!("/treasury/funds/{}?done=count", desk.fund)));
    assert_eq!(browser.text("#fund-notice").await, "The count was recorded: variance KES 0.00 (matched).");
    browser.screenshot("counted").await;
    let counts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CashCounted'",
    )
    .bind(desk.fund.to_string())
    .fetch_one(&desk.app.pool)
    .await
    .unwrap();
    assert_eq!(counts, 1, "the count is an event of the fund");

    // A count that is not a whole number of pieces is refused beside the count.
    browser.run("document.querySelector('#count-500').type = 'text'").await;
    browser.fill("#count-1000", "4").await;
    browser.fill("#count-500", "two").await;
    browser.click("#count-form button[type=submit]").await;
    assert!(browser.text("#counts-error").await.contains("is not a whole number"));
    // What was typed is sent back (a number field shows no word, but its `value` holds it).
    let kept = browser.run("return document.querySelector('#count-500').getAttribute('value')").await;
    assert_eq!(kept, "two");
    assert_eq!(browser.run("return document.querySelector('#count-1000').value").await, "4");

    // The alerts page lists the low-balance alert; acknowledging it changes its state.
    let listed = desk.app.get(treasury, "/api/alerts/?type=fund_low").await;
    let alert = listed.body["items"][0]["id"].as_str().expect("a fund_low alert").to_string();
    browser.click("nav a[href='/alerts/']").await;
    assert_eq!(browser.location().await, "/alerts/");
    let item = format!("#alert-{alert}");
    assert!(browser.text(&item).await.contains("Fund low"), "{}", browser.text(&item).await);
    assert_eq!(browser.text(&format!("{item} .state")).await, "open");
    browser.screenshot("alerts").await;
    // Filtered by type: that alert alone.
    browser.goto("/alerts/?type=fund_low&state=open").await;
    assert_eq!(browser.count("li.alert").await, 1);
    assert_eq!(browser.count(&item).await, 1);
    browser.fill(&format!("#ack-note-{alert}"), "Replenishment on its way").await;
    browser.click(&format!("{item} form.acknowledge button")).await;
    assert_eq!(browser.location().await, "/alerts/");
    assert_eq!(browser.text(&format!("{item} .state")).await, "acknowledged");
    assert_eq!(browser.count(&format!("{item} form.acknowledge")).await, 0);
    let r = desk.app.get(treasury, &format!("/api/alerts/{alert}")).await;
    assert_eq!(r.body["state"], "acknowledged", "{r:?}");
    assert_eq!(r.body["history"][1]["note"], "Replenishment on its way", "{r:?}");
    // Resolving needs a note: refused beside the alert's form without one.
    browser.click(&format!("{item} form.resolve button")).await;
    assert_eq!(
        browser.text(&format!("#resolve-error-{alert}")).await,
        "Resolving an alert needs a `note` saying what was done."
    );
    browser.screenshot("alerts-acknowledged").await;
    browser.close().await;
}

#[tokio::test]
async fn a_requester_cannot_reach_the_treasury_pages() {
    let desk = Desk::new(None).await;
    let staff = &desk.cast.staff;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-refused", &staff.email).await;

    assert_eq!(browser.count("nav a[href='/treasury/']").await, 0, "no Treasury in the navigation");
    assert_eq!(browser.count("nav a[href='/alerts/']").await, 1);
    for page in ["/treasury/", "/treasury/funds/", &format!("/treasury/pay/{}", desk.requisition)] {
        browser.goto(page).await;
        assert_eq!(browser.text("h1").await, "Forbidden", "{page}");
        assert!(browser.text("p.error").await.contains("the treasury pages need one of the roles"), "{page}");
    }
    browser.screenshot("refused").await;
    browser.close().await;

    // Over HTTP: 403 pages, and a pay form posted anyway is refused by the command.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client
        .get(format!("{}/treasury/", desk.app.address))
        .header(COOKIE, format!("pettycash_session={}", staff.token))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let dashboard = client
        .get(format!("{}/dashboard/", desk.app.address))
        .header(COOKIE, format!("pettycash_session={}", staff.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token_in(&dashboard);
    let posted = client
        .post(format!("{}/treasury/pay/{}", desk.app.address, desk.requisition))
        .header(COOKIE, format!("pettycash_session={}", staff.token))
        .header(reqwest::header::ORIGIN, desk.app.address.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&method=cash&code=123456"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::FORBIDDEN);
    let r = desk.app.get(staff, &format!("/api/requisitions/{}", desk.requisition)).await;
    assert_eq!(r.body["status"], "approved", "nothing was paid");
}

#[tokio::test]
async fn the_treasury_and_alerts_pages_fit_a_375_px_screen() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let mut browser = desk.signed_in(Screen::Phone, "treasury-phone", &treasury.email).await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";
    for (page, name) in [
        ("/treasury/".to_string(), "queue"),
        (format!("/treasury/pay/{}", desk.requisition), "pay"),
        ("/treasury/funds/".to_string(), "funds"),
        (format!("/treasury/funds/{}", desk.fund), "fund"),
        ("/treasury/advances/".to_string(), "advances"),
        ("/treasury/bulk-payments/".to_string(), "bulk-payments"),
        ("/alerts/".to_string(), "alerts"),
    ] {
        browser.goto(&page).await;
        assert_eq!(browser.location().await, page);
        let sizes = browser.run(overflow).await;
        assert_eq!(sizes[0], 375, "{page}");
        assert!(sizes[1].as_u64().unwrap() <= 375, "{page} scrolls sideways: {sizes}");
        browser.screenshot(name).await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_mobile_money_payment_shows_the_providers_status_until_it_is_confirmed() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let id = desk.requisition;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-mobile-money", &treasury.email).await;

    browser.goto(&format!("/treasury/pay/{id}")).await;
    browser.run("document.querySelector('#code-method').value = 'mobile_money'").await;
    browser.click("#code-form button[type=submit]").await;
    assert!(browser.text("#code-sent").await.starts_with("A code was mailed to"));
    let chosen = browser.run("return document.querySelector('#pay-method').value").await;
    assert_eq!(chosen, "mobile_money", "the method the code was asked for");
    let code = desk.app.queued_payment_code(&treasury.email, id).await;

    // Without a mobile number: refused beside that field, the code not spent.
    browser.fill("#code", &code).await;
    browser.click("#pay-form button[type=submit]").await;
    assert_eq!(
        browser.text("#destination-error").await,
        "Destination: bank and mobile money payments need a destination."
    );
    assert_eq!(browser.count("#code-error").await, 0);

    browser.fill("#code", &code).await;
    browser.fill("#destination", "0712345678").await;
    browser.click("#pay-form button[type=submit]").await;
    let location = browser.location().await;
    assert!(location.starts_with("/treasury/payments/"), "{location}");
    let shown = browser.text(".payment-status").await;
    assert!(shown == "Pending (executing)" || shown == "Confirmed (succeeded)", "{shown}");
    browser.screenshot("status").await;
    // The simulator answers within moments: the page says so once it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.text(".payment-status .status-label").await != "Confirmed" {
        assert!(std::time::Instant::now() < deadline, "still {}", browser.text(".payment-status").await);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        browser.goto(&location).await;
    }
    assert_eq!(browser.text(".payment-status .muted").await, "(succeeded)");
    let payment = location.trim_start_matches("/treasury/payments/");
    let api = desk.app.get(treasury, &format!("/api/treasury/payments/{payment}")).await;
    assert_eq!(api.body["status"], "succeeded", "{api:?}");
    assert_eq!(api.body["destination"], "254712345678");
    browser.screenshot("confirmed").await;
    browser.close().await;
}

#[tokio::test]
async fn a_bulk_payment_batch_is_created_with_its_code_and_its_file_downloads() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let id = desk.requisition;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-bulk", &treasury.email).await;

    browser.goto("/treasury/bulk-payments/").await;
    assert_eq!(browser.text("p.empty").await, "No batches yet.");
    browser.run(&format!("document.querySelector('#r-{id}').click()")).await;
    browser.click("#batch-form button[value=code]").await;
    let sent = browser.text("#batch-code-sent").await;
    assert!(sent.starts_with("A code for 1 payments, KES 900.00 in all, was mailed to"), "{sent}");
    let checked = browser.run(&format!("return document.querySelector('#r-{id}').checked")).await;
    assert_eq!(checked, true, "the choice is kept");
    let mail: String = sqlx::query_scalar(
        "SELECT body_text FROM mail_outbox WHERE recipient_email = $1 AND category = 'payment_code'
         ORDER BY id DESC LIMIT 1",
    )
    .bind(&treasury.email)
    .fetch_one(&desk.app.pool)
    .await
    .unwrap();
    let code = pettycash_tests::payment_code_in(&mail).expect("a code");

    // Without the payee's mobile number: refused, the line marked.
    browser.fill("#batch-code", &code).await;
    browser.click("#batch-form button[value=create]").await;
    assert!(!browser.text("#batch-error").await.is_empty());
    let invalid =
        browser.run(&format!("return document.querySelector('#d-{id}').getAttribute('aria-invalid')")).await;
    assert_eq!(invalid, "true");
    browser.screenshot("refused").await;

    browser.fill(&format!("#d-{id}"), "0712345678").await;
    browser.fill("#batch-code", &code).await;
    browser.click("#batch-form button[value=create]").await;
    assert!(
        browser.location().await.starts_with("/treasury/bulk-payments/?created="),
        "{}",
        browser.location().await
    );
    assert!(browser.text("#batch-created").await.starts_with("Batch "));
    assert_eq!(browser.count("table.batches tbody tr").await, 1);
    assert!(browser.text("table.batches").await.contains("KES 900.00"));
    browser.screenshot("created").await;

    // Its file, from the link the page offers.
    let href = browser
        .run("return document.querySelector('table.batches a[href$=\"format=csv\"]').getAttribute('href')")
        .await;
    let cookie = browser.client.get_named_cookie("pettycash_session").await.unwrap();
    let csv = reqwest::Client::new()
        .get(format!("{}{}", desk.app.address, href.as_str().unwrap()))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    let body = csv.text().await.unwrap();
    assert!(body.contains("254712345678") && body.contains("900.00"), "{body}");
    browser.close().await;
}
