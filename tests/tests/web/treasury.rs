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
    // A batch of a second approved requisition, for its page.
    let id = desk.approved(desk.fund, "300").await;
    let r =
        desk.app.post(treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": [id]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let body = json!({"requisition_ids": [id], "destinations": {id.to_string(): "0712345678"},
                      "code": desk.batch_code().await});
    let batch = desk.app.post(treasury, "/api/treasury/bulk-payments/", body).await.id();
    let mut browser = desk.signed_in(Screen::Phone, "treasury-phone", &treasury.email).await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";
    for (page, name) in [
        (format!("/treasury/bulk-payments/{batch}"), "batch"),
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
    let body = desk.download(&browser, "table.batches a[href$=\"format=csv\"]").await;
    assert!(body.contains("254712345678") && body.contains("900.00"), "{body}");
    browser.close().await;
}

impl Desk {
    /// The file behind the link `css` of the page shown, fetched with the browser's session.
    async fn download(&self, browser: &Browser, css: &str) -> String {
        let href = browser.run(&format!("return document.querySelector('{css}').getAttribute('href')")).await;
        let cookie = browser.client.get_named_cookie("pettycash_session").await.unwrap();
        let file = reqwest::Client::new()
            .get(format!("{}{}", self.app.address, href.as_str().unwrap()))
            .header(COOKIE, format!("pettycash_session={}", cookie.value()))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{href}");
        file.text().await.unwrap()
    }

    /// Signs `browser` out and in again as `email`.
    async fn sign_in_as(&self, browser: &Browser, email: &str) {
        browser.click("form.sign-out button").await;
        assert_eq!(browser.location().await, "/accounts/login/");
        browser.sign_in(email, PASSWORD).await;
        assert_eq!(browser.location().await, "/dashboard/");
    }

    /// The fund as `GET /api/funds/{id}` shows it.
    async fn fund_read(&self, fund: Uuid) -> pettycash_tests::serde_json::Value {
        let r = self.app.get(&self.cast.admin, &format!("/api/funds/{fund}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body
    }

    /// An approved requisition of `amount` from `fund`.
    async fn approved(&self, fund: Uuid, amount: &str) -> Uuid {
        let id = self.app.submitted(&self.cast.staff, fund, amount).await;
        self.app.approve_by(id, &[&self.cast.head]).await;
        id
    }

    /// The code of the latest batch code mail to the treasurer, from the outbox.
    async fn batch_code(&self) -> String {
        let mail: String = sqlx::query_scalar(
            "SELECT body_text FROM mail_outbox WHERE recipient_email = $1 AND category = 'payment_code'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&self.cast.treasury.email)
        .fetch_one(&self.app.pool)
        .await
        .unwrap();
        pettycash_tests::payment_code_in(&mail).expect("a code")
    }
}

#[tokio::test]
async fn reloading_the_pay_page_after_asking_for_a_code_mails_no_second_one() {
    let smtp = MailServer::start().await;
    let desk = Desk::new(Some(&smtp)).await;
    let treasury = &desk.cast.treasury;
    let id = desk.requisition;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-code-reload", &treasury.email).await;

    browser.goto(&format!("/treasury/pay/{id}")).await;
    assert_eq!(browser.count("#code-sent").await, 0, "no code asked for yet");
    browser.select("#code-method", "mobile_money").await;
    browser.click("#code-form button[type=submit]").await;
    // Answered with a redirect: the page shown is the pay page's GET.
    assert_eq!(browser.location().await, format!("/treasury/pay/{id}"));
    let sent = browser.text("#code-sent").await;
    assert!(
        sent.starts_with(&format!("A code was mailed to {}. It works once, until ", treasury.email)),
        "{sent}"
    );
    assert_eq!(browser.run("return document.querySelector('#pay-method').value").await, "mobile_money");
    // The mails of payment codes the SMTP server received (the others: the approval's).
    let codes_mailed = |mails: Vec<pettycash_tests::ReceivedMail>| -> Vec<pettycash_tests::ReceivedMail> {
        mails.into_iter().filter(|m| m.subject.starts_with("Payment code")).collect()
    };
    let mails = codes_mailed(desk.app.delivered(&smtp).await);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, std::slice::from_ref(&treasury.email));
    // The page says until when, as the mail does (`HH:MM UTC`).
    let (_, until) = mails[0].text.split_once("until ").expect("the mail says until when");
    let until: String = until.chars().take(9).collect();
    assert!(sent.contains(&until), "{sent} / {until}");
    browser.screenshot("code-sent").await;

    // Past the interval between two codes, a reload would be allowed to ask again: it does not.
    desk.app.clock.advance(chrono::Duration::seconds(31));
    browser.client.refresh().await.unwrap();
    assert_eq!(browser.location().await, format!("/treasury/pay/{id}"));
    assert_eq!(browser.text("#code-sent").await, sent);
    assert_eq!(browser.count("#code-request-error").await, 0);
    desk.app.delivered(&smtp).await;
    let mails = codes_mailed(smtp.after(std::time::Duration::from_millis(500)).await);
    assert_eq!(mails.len(), 1, "a reload mailed another code: {mails:#?}");
    let codes: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_codes WHERE requisition_id = $1")
        .bind(id)
        .fetch_one(&desk.app.pool)
        .await
        .unwrap();
    assert_eq!(codes, 1);
    browser.close().await;
}

#[tokio::test]
async fn a_batchs_result_file_is_imported_from_its_page_and_pays_one_requisition_and_fails_the_other() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let (a, b) = (desk.requisition, desk.approved(desk.fund, "300").await);
    wait_for_projections(&desk.app.pool, &["requisitions"]).await;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-bulk-results", &treasury.email).await;

    // The batch, from the page: both requisitions, each with a mobile number.
    browser.goto("/treasury/bulk-payments/").await;
    for (id, number) in [(a, "0712000001"), (b, "0712000002")] {
        browser.run(&format!("document.querySelector('#r-{id}').click()")).await;
        browser.fill(&format!("#d-{id}"), number).await;
    }
    browser.click("#batch-form button[value=code]").await;
    assert!(browser.text("#batch-code-sent").await.starts_with("A code for 2 payments, KES 1,200.00 in all"));
    let code = desk.batch_code().await;
    browser.fill("#batch-code", &code).await;
    browser.click("#batch-form button[value=create]").await;
    let location = browser.location().await;
    let batch = location.strip_prefix("/treasury/bulk-payments/?created=").expect(&location).to_string();
    browser.click(&format!("#batch-{batch} a.open")).await;
    assert_eq!(browser.location().await, format!("/treasury/bulk-payments/{batch}"));
    assert_eq!(browser.text(&format!("#payment-{a} .state")).await, "Waiting for the result");
    assert_eq!(browser.text("#imports-heading + p.empty").await, "None yet.");
    browser.screenshot("batch").await;

    // Its file, from the link the page offers: the references of the result file.
    let file = desk.download(&browser, "dl.facts a[href$=\"format=csv\"]").await;
    let reference = |number: &str| -> (String, String) {
        let line = file.lines().find(|l| l.starts_with(number)).unwrap_or_else(|| panic!("{number}: {file}"));
        let cells: Vec<&str> = line.split(',').collect();
        (cells[2].to_string(), cells[1].to_string())
    };
    let ((ref_a, amount_a), (ref_b, amount_b)) = (reference("254712000001"), reference("254712000002"));

    // A file without the Status column: refused beside the file field, nothing applied.
    let wrong =
        crate::browser::upload("results.csv", format!("Reference,Amount\n{ref_a},{amount_a}\n").as_bytes());
    browser.choose_file("#results-file", &wrong).await;
    browser.click("#results-form button[type=submit]").await;
    let refused = browser.text("#results-file-error").await;
    assert!(
        refused.starts_with("Nothing was imported: Status: the file has no `Status` column"),
        "{refused}"
    );
    let invalid =
        browser.run("return document.querySelector('#results-file').getAttribute('aria-invalid')").await;
    assert_eq!(invalid, "true");
    browser.screenshot("refused").await;
    assert_eq!(desk.app.get(treasury, &format!("/api/requisitions/{a}")).await.body["status"], "approved");

    // The provider's answer: a paid, b failed, and a line of no payment of this batch.
    let unknown = Uuid::now_v7();
    let results = format!(
        "Reference,Status,Amount,ReceiptNumber,ResultCode,Reason\n\
         {ref_a},Completed,{amount_a},QKA1,,\n\
         {ref_b},Failed,{amount_b},,2001,Invalid account\n\
         {unknown},Completed,100.00,QKZ9,,\n"
    );
    let path = crate::browser::upload("results.csv", results.as_bytes());
    browser.choose_file("#results-file", &path).await;
    browser.click("#results-form button[type=submit]").await;
    assert!(
        browser.location().await.starts_with(&format!("/treasury/bulk-payments/{batch}?import=")),
        "{}",
        browser.location().await
    );
    assert_eq!(browser.text("#import-summary").await, "3 lines: 1 paid, 1 failed, 1 unknown reference.");
    assert_eq!(browser.texts("table.results td.outcome").await, ["Paid", "Failed", "Unknown reference"]);
    assert_eq!(browser.text("#result-row-4 td.reference").await, unknown.to_string());
    assert_eq!(browser.text(&format!("#payment-{a} .state")).await, "Paid");
    assert_eq!(browser.text(&format!("#payment-{b} .state")).await, "Failed");
    assert!(browser.text(&format!("#payment-{b}")).await.contains("Invalid account"));
    assert_eq!(browser.count("ul.imports li").await, 1);
    browser.screenshot("imported").await;

    // The requisitions: a paid, b still approved (its amount back in the fund), on their pages
    // and in the API.
    wait_for_projections(&desk.app.pool, &["requisitions", "cash"]).await;
    browser.click(&format!("#payment-{a} a")).await;
    assert_eq!(browser.location().await, format!("/requisitions/{a}"));
    assert_eq!(browser.text("#status").await, "Paid");
    browser.goto(&format!("/requisitions/{b}")).await;
    assert_eq!(browser.text("#status").await, "Approved");
    assert_eq!(desk.app.get(treasury, &format!("/api/requisitions/{a}")).await.body["status"], "paid");
    assert_eq!(desk.app.get(treasury, &format!("/api/requisitions/{b}")).await.body["status"], "approved");
    let fund = desk.fund_read(desk.fund).await;
    assert_eq!((fund["balance"].as_str(), fund["available"].as_str()), (Some("4100.00"), Some("4100.00")));
    browser.goto(&format!("/treasury/funds/{}", desk.fund)).await;
    assert_eq!(browser.text("dd.balance").await, "KES 4,100.00");
    browser.close().await;
}

#[tokio::test]
async fn the_bulk_form_pages_through_the_queue_so_a_requisition_past_the_first_fifty_is_batched() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    // The desk's requisition is the oldest of 51: the queue's second page.
    let fund = desk.app.fund(&desk.cast.admin, "100000").await;
    for _ in 0..50 {
        desk.approved(fund, "10").await;
    }
    let oldest = desk.requisition;
    wait_for_projections(&desk.app.pool, &["requisitions"]).await;
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-bulk-pages", &treasury.email).await;

    browser.goto("/treasury/bulk-payments/").await;
    assert_eq!(browser.count("ul.candidates li").await, 50);
    assert_eq!(browser.count(&format!("#candidate-{oldest}")).await, 0);
    assert_eq!(browser.count("#candidates-first").await, 0);
    browser.click("#candidates-next").await;
    assert!(browser.location().await.starts_with("/treasury/bulk-payments/?cursor="));
    assert_eq!(browser.count("ul.candidates li").await, 1);
    assert_eq!(browser.count("#candidates-next").await, 0);
    assert_eq!(browser.count("#candidates-first").await, 1);
    browser.screenshot("second-page").await;

    browser.run(&format!("document.querySelector('#r-{oldest}').click()")).await;
    browser.fill(&format!("#d-{oldest}"), "0712345678").await;
    browser.click("#batch-form button[value=code]").await;
    // The answer shows the same page of the queue, the choice kept.
    assert!(browser.text("#batch-code-sent").await.starts_with("A code for 1 payments, KES 900.00"));
    assert_eq!(browser.run(&format!("return document.querySelector('#r-{oldest}').checked")).await, true);
    assert_eq!(browser.count("ul.candidates li").await, 1);
    browser.fill("#batch-code", &desk.batch_code().await).await;
    browser.click("#batch-form button[value=create]").await;
    let location = browser.location().await;
    let batch = location.strip_prefix("/treasury/bulk-payments/?created=").expect(&location).to_string();
    let r = desk.app.get(treasury, &format!("/api/treasury/bulk-payments/{batch}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let lines = r.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["requisition_id"], oldest.to_string());
    browser.close().await;
}

#[tokio::test]
async fn a_replenishment_is_raised_approved_by_a_second_treasurer_and_funded_with_a_bank_reference() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let second = desk.app.user(&[pettycash_domain::Role::Treasury]).await;
    // A fund without a reorder level (nothing raised by itself), 900 paid out of its 5,000.
    let body = json!({"name": "Eldoret branch cash", "currency": "KES", "float": "5000"});
    let fund = desk.app.post(&desk.cast.admin, "/api/funds/", body).await.id();
    let paid = desk.approved(fund, "900").await;
    assert_eq!(desk.app.pay(treasury, paid).await.status, StatusCode::CREATED);
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-replenishment", &treasury.email).await;

    let page = format!("/treasury/funds/{fund}");
    browser.goto(&page).await;
    assert_eq!(browser.text("dd.balance").await, "KES 4,100.00");
    browser.click("#replenishment-heading ~ form button").await;
    assert_eq!(browser.location().await, format!("{page}?done=replenishment_requested"));
    assert_eq!(browser.text("#fund-notice").await, "The replenishment was requested.");
    assert_eq!(browser.text("#replenishment").await, "Open request for KES 900.00: requested.");
    // Four eyes: the treasurer who raised it may not approve it.
    browser.click("form[action$='/approve'] button").await;
    let refused = browser.text("#replenishment-error").await;
    assert!(refused.contains("other than the person who requested the replenishment"), "{refused}");
    browser.screenshot("four-eyes").await;
    assert_eq!(desk.fund_read(fund).await["replenishment"]["status"], "requested");

    // A second treasurer approves it, then records the cash as received.
    desk.sign_in_as(&browser, &second.email).await;
    browser.goto(&page).await;
    browser.click("form[action$='/approve'] button").await;
    assert_eq!(browser.text("#fund-notice").await, "The replenishment was approved.");
    assert_eq!(browser.text("#replenishment").await, "Open request for KES 900.00: approved.");
    browser.screenshot("approved").await;
    browser.fill("#bank-reference", "KCB-TRF-20931").await;
    browser.click("form[action$='/fund'] button").await;
    assert_eq!(browser.location().await, format!("{page}?done=replenishment_funded"));
    assert_eq!(browser.text("#fund-notice").await, "The replenishment's cash was recorded as received.");
    assert_eq!(browser.text("dd.balance").await, "KES 5,000.00");
    assert_eq!(browser.count("#replenishment").await, 0, "no replenishment is open");
    browser.screenshot("funded").await;
    let read = desk.fund_read(fund).await;
    assert_eq!(read["balance"], "5000.00", "{read}");
    assert!(read["replenishment"].is_null(), "{read}");
    let funded: String = sqlx::query_scalar(
        "SELECT payload->'ReplenishmentFunded'->>'bank_reference' FROM events
         WHERE aggregate_id = $1 AND event_type = 'ReplenishmentFunded'",
    )
    .bind(fund.to_string())
    .fetch_one(&desk.app.pool)
    .await
    .unwrap();
    assert_eq!(funded, "KCB-TRF-20931");
    wait_for_projections(&desk.app.pool, &["cash"]).await;
    browser.goto("/treasury/funds/").await;
    assert_eq!(browser.text(&format!("#fund-{fund} .balance")).await, "KES 5,000.00");
    browser.close().await;
}

#[tokio::test]
async fn a_count_short_of_the_balance_waits_for_another_user_who_approves_or_rejects_the_variance() {
    let desk = Desk::new(None).await;
    let (treasury, cfo) = (&desk.cast.treasury, &desk.cast.cfo);
    let fund = desk.fund;
    let page = format!("/treasury/funds/{fund}");
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-variance", &treasury.email).await;

    // 4,900 counted against a book balance of 5,000: a shortage of 100 waits for approval.
    browser.goto(&page).await;
    browser.fill("#count-1000", "4").await;
    browser.fill("#count-100", "9").await;
    browser.click("#count-form button[type=submit]").await;
    assert_eq!(browser.text("#fund-notice").await, "The count was recorded: variance KES -100.00 (pending).");
    let pending = desk.fund_read(fund).await["pending_variances"].clone();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    let first = pending[0]["count_id"].as_str().unwrap().to_string();
    let item = format!("#variance-{first}");
    assert!(browser.text(&item).await.contains("variance KES -100.00"));
    // The counter may not decide it.
    browser.click(&format!("{item} form[action$='/approve'] button")).await;
    assert!(!browser.text(&format!("{item} p.error")).await.is_empty());
    browser.screenshot("pending").await;

    // The CFO approves it: applied to the balance.
    desk.sign_in_as(&browser, &cfo.email).await;
    browser.goto(&page).await;
    browser.click(&format!("{item} form[action$='/approve'] button")).await;
    assert_eq!(browser.text("#fund-notice").await, "The variance was approved and applied.");
    assert_eq!(browser.text("dd.balance").await, "KES 4,900.00");
    assert_eq!(browser.count(&item).await, 0);
    browser.screenshot("approved").await;
    let read = desk.fund_read(fund).await;
    assert_eq!(read["balance"], "4900.00", "{read}");
    assert_eq!(read["pending_variances"], json!([]), "{read}");

    // Another short count, rejected with a reason: the balance stays.
    desk.sign_in_as(&browser, &treasury.email).await;
    browser.goto(&page).await;
    browser.fill("#count-1000", "4").await;
    browser.fill("#count-100", "8").await;
    browser.click("#count-form button[type=submit]").await;
    assert_eq!(browser.text("#fund-notice").await, "The count was recorded: variance KES -100.00 (pending).");
    let second = desk.fund_read(fund).await["pending_variances"][0]["count_id"].as_str().unwrap().to_string();
    desk.sign_in_as(&browser, &cfo.email).await;
    browser.goto(&page).await;
    browser.fill(&format!("#reason-{second}"), "Recount: a note was in the other drawer").await;
    browser.click(&format!("#variance-{second} form[action$='/reject'] button")).await;
    assert_eq!(browser.text("#fund-notice").await, "The variance was rejected.");
    assert_eq!(browser.text("dd.balance").await, "KES 4,900.00");
    assert_eq!(browser.text("#variances-heading + p").await, "None.");
    let read = desk.fund_read(fund).await;
    assert_eq!((read["balance"].clone(), read["pending_variances"].clone()), (json!("4900.00"), json!([])));
    browser.close().await;
}

#[tokio::test]
async fn closing_the_month_with_the_count_shows_the_period_closed_and_a_second_close_is_refused() {
    let desk = Desk::new(None).await;
    let treasury = &desk.cast.treasury;
    let fund = desk.fund;
    let page = format!("/treasury/funds/{fund}");
    let mut browser = desk.signed_in(Screen::Desktop, "treasury-close", &treasury.email).await;
    let month = desk.app.clock.now().format("%Y-%m").to_string();

    browser.goto(&page).await;
    assert_eq!(browser.count("#closed-through").await, 0);
    browser.fill("#count-1000", "5").await;
    browser.run("document.querySelector('#close-period').click()").await;
    browser.click("#count-form button[type=submit]").await;
    assert!(browser.location().await.starts_with(&format!("{page}?done=close")));
    assert_eq!(
        browser.text("#fund-notice").await,
        "The period was closed with the count: variance KES 0.00 (matched)."
    );
    assert_eq!(browser.text("#closed-through").await, month);
    browser.screenshot("closed").await;
    assert_eq!(desk.fund_read(fund).await["closed_through"], month);

    // The same month again: refused beside the count, nothing recorded.
    browser.fill("#count-1000", "5").await;
    browser.run("document.querySelector('#close-period').click()").await;
    browser.click("#count-form button[type=submit]").await;
    assert_eq!(browser.location().await, format!("{page}/counts"));
    let refused = browser.text("#counts-error").await;
    assert!(refused.contains(&format!("period {month} is closed")), "{refused}");
    assert_eq!(browser.run("return document.querySelector('#count-1000').value").await, "5");
    browser.screenshot("second-close-refused").await;
    let closes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PeriodClosed'",
    )
    .bind(fund.to_string())
    .fetch_one(&desk.app.pool)
    .await
    .unwrap();
    assert_eq!(closes, 1);
    browser.close().await;
}
