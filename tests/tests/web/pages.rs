//! Sign-in, dashboard, reports, CSRF, narrow screens and security headers, as a browser sees
//! them (and, where a browser cannot tell, the status and headers over plain HTTP).

use crate::browser::{csrf_token_in, plain_client, Browser, Screen};
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, Cast, TestApp, TestUser, PASSWORD};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use std::time::Duration;
use uuid::Uuid;

/// A server with the standard cast, a fund with a reorder level, and one requisition paid out
/// of it and one waiting for approval: something for every chart.
struct Site {
    app: TestApp,
    cast: Cast,
    fund: Uuid,
}

impl Site {
    async fn new() -> Self {
        Self::with(TestApp::spawn().await).await
    }

    async fn with(app: TestApp) -> Self {
        let cast = Cast::new(&app).await;
        let body = json!({"name": "Nairobi branch cash", "currency": "KES", "float": "50000",
                          "reorder_level": "20000"});
        let r = app.post(&cast.admin, "/api/funds/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let fund = r.id();
        let paid = app.submitted(&cast.staff, fund, "850.50").await;
        app.approve_by(paid, &[&cast.head]).await;
        let r = app.pay(&cast.treasury, paid).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        app.submitted(&cast.staff, fund, "300").await;
        wait_for_projections(&app.pool, &["requisitions", "cash", "budgets"]).await;
        Site { app, cast, fund }
    }

    async fn browser(&self, screen: Screen, name: &str) -> Browser {
        Browser::open(&self.app.address, screen, name).await
    }

    /// The name a test user was registered with (`TestApp::user_in`).
    async fn name_of(&self, user: &TestUser) -> String {
        sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// `GET path` over HTTP, with `user`'s session cookie when given, no redirects followed.
    async fn http_get(&self, user: Option<&TestUser>, path: &str) -> reqwest::Response {
        let mut req = plain_client().get(format!("{}{path}", self.app.address));
        if let Some(u) = user {
            req = req.header(COOKIE, format!("pettycash_session={}", u.token));
        }
        req.send().await.expect("request")
    }
}

/// What must never be in front of a person: a panic, a backtrace, source paths, a JSON error.
fn assert_no_internals(html: &str) {
    for leak in ["panicked", "backtrace", "RUST_BACKTRACE", ".rs:", "{\"error\"", "sqlx", "stack trace"] {
        assert!(!html.contains(leak), "the page shows `{leak}`: {html}");
    }
}

#[tokio::test]
async fn signing_in_shows_the_dashboard_with_the_users_name_and_charts() {
    let site = Site::new().await;
    let treasury = &site.cast.treasury;
    let mut browser = site.browser(Screen::Desktop, "dashboard").await;

    browser.goto("/accounts/login/").await;
    browser.screenshot("sign-in").await;
    browser.sign_in(&treasury.email, PASSWORD).await;

    assert_eq!(browser.location().await, "/dashboard/");
    assert_eq!(browser.text("header .who .name").await, site.name_of(treasury).await);
    assert_eq!(browser.text("header .who .roles").await, "Treasury");
    assert_eq!(browser.text("nav a[aria-current=page]").await, "Dashboard");
    // The three charts, drawn: twelve months of spend, the fund's balance against its float
    // and reorder level, requisitions by status.
    assert_eq!(browser.count("svg.chart.columns rect.bar").await, 12);
    assert_eq!(browser.count("svg.chart.line polyline.series").await, 1);
    assert_eq!(browser.count("svg.chart.line line.level").await, 2);
    assert_eq!(browser.count("svg.chart.bars rect.bar").await, 7);
    let spend = browser.run("return document.querySelector('svg.chart.columns title').textContent").await;
    assert_eq!(spend, "Spend by month (KES)");
    // This month's column is the one paid: 850.50.
    let this_month =
        browser.run("return document.querySelectorAll('svg.chart.columns rect.bar')[11].textContent").await;
    assert!(this_month.as_str().unwrap().ends_with("KES 850.50"), "{this_month}");
    let statuses = browser
        .run("return [...document.querySelectorAll('svg.chart.bars rect.bar title')].map(t => t.textContent)")
        .await;
    let statuses: Vec<&str> = statuses.as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
    assert!(statuses.contains(&"Paid: 1") && statuses.contains(&"Pending approval: 1"), "{statuses:?}");
    let figures = browser.text("ul.figures").await;
    assert!(figures.contains("Paid this month\n1\nKES 850.50"), "{figures}");
    let funds = browser.text("table").await;
    assert!(funds.contains("Nairobi branch cash") && funds.contains("KES 49,149.50"), "{funds}");
    // The stylesheet was allowed by the Content-Security-Policy and applied.
    let header_colour =
        browser.run("return getComputedStyle(document.querySelector('header.site')).backgroundColor").await;
    assert_eq!(header_colour, "rgb(11, 79, 138)");
    browser.screenshot("dashboard").await;

    // The browser holds the API's session: an HttpOnly cookie the JSON API takes too.
    let cookie = browser.client.get_named_cookie("pettycash_session").await.expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    let me = plain_client()
        .get(format!("{}/api/me", site.app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<serde_json::Value>().await.unwrap()["email"], treasury.email.as_str());

    // The reports page lists what the API lists, with the fund to choose for the cash book.
    browser.click("nav a[href='/reports/']").await;
    assert_eq!(browser.location().await, "/reports/");
    let listed = site.app.get(treasury, "/api/reports/").await.body["reports"].as_array().unwrap().len();
    assert_eq!(browser.count("li.report").await, listed);
    let fund_option = format!("#report-cash-book select[name=fund_id] option[value='{}']", site.fund);
    assert_eq!(browser.count(&fund_option).await, 1);
    assert_eq!(browser.count("#report-cash-book button[name=format]").await, 3);
    browser.screenshot("reports").await;
    // What its CSV button asks for (a GET form: the fields as the query) downloads.
    let csv = plain_client()
        .get(format!("{}/api/reports/cash-book?from=&to=&fund_id={}&format=csv", site.app.address, site.fund))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"), "{:?}", csv.headers());
    assert!(csv.text().await.unwrap().contains("850.50"));

    browser.click("form.sign-out button").await;
    assert_eq!(browser.location().await, "/accounts/login/");
    let me = plain_client()
        .get(format!("{}/api/me", site.app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "signing out ends the session");
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_password_shows_an_error_beside_the_form_not_a_stack_trace() {
    let site = Site::new().await;
    let staff = &site.cast.staff;
    let mut browser = site.browser(Screen::Desktop, "wrong-password").await;

    browser.goto("/accounts/login/").await;
    browser.sign_in(&staff.email, "not the password").await;

    assert_eq!(browser.location().await, "/accounts/login/");
    assert_eq!(browser.text("p.error[role=alert]").await, "Invalid email or password.");
    assert_eq!(browser.count("form.stacked #password").await, 1, "the form is shown again");
    let kept = browser.run("return document.querySelector('#email').value").await;
    assert_eq!(kept, staff.email.as_str());
    let described =
        browser.run("return document.querySelector('#password').getAttribute('aria-describedby')").await;
    assert_eq!(described, "form-error");
    assert_no_internals(&browser.client.source().await.unwrap());
    browser.screenshot("error").await;

    // The form works again after the error.
    browser.sign_in(&staff.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/dashboard/");
    browser.close().await;
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused() {
    let site = Site::new().await;
    let staff = &site.cast.staff;
    let mut browser = site.browser(Screen::Desktop, "csrf").await;

    browser.goto("/accounts/login/").await;
    browser.sign_in(&staff.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/dashboard/");

    // Sign-out without its token: refused with a page saying so, and still signed in.
    browser.run("document.querySelector('form.sign-out input[name=csrf_token]').remove()").await;
    browser.click("form.sign-out button").await;
    assert_eq!(browser.text("h1").await, "Forbidden");
    assert!(browser.text("p.error").await.contains("could not be accepted"));
    assert_no_internals(&browser.client.source().await.unwrap());
    browser.screenshot("refused").await;
    browser.goto("/dashboard/").await;
    assert_eq!(browser.location().await, "/dashboard/", "the session is still there");

    // A token of another session is no better than none.
    let other = site.http_get(Some(&site.cast.head), "/dashboard/").await.text().await.unwrap();
    let script = format!(
        "document.querySelector('form.sign-out input[name=csrf_token]').value = '{}'",
        csrf_token_in(&other)
    );
    browser.run(&script).await;
    browser.click("form.sign-out button").await;
    assert_eq!(browser.text("h1").await, "Forbidden");

    // The sign-in form without its token is refused too (login CSRF), password right or not.
    let cookie = browser.client.get_named_cookie("pettycash_session").await.unwrap();
    browser.client.delete_cookie("pettycash_session").await.unwrap();
    browser.goto("/accounts/login/").await;
    browser.run("document.querySelector('form.stacked input[name=csrf_token]').remove()").await;
    browser.sign_in(&staff.email, PASSWORD).await;
    assert_eq!(browser.text("h1").await, "Forbidden");
    assert!(browser.client.get_named_cookie("pettycash_session").await.is_err(), "not signed in");
    browser.close().await;

    // Over HTTP: the status is 403, the answer a page, and nothing was done.
    let dashboard = site.http_get(Some(staff), "/dashboard/").await.text().await.unwrap();
    let token = csrf_token_in(&dashboard);
    let logout = |body: String| {
        plain_client()
            .post(format!("{}/accounts/logout/", site.app.address))
            .header(COOKIE, format!("pettycash_session={}", cookie.value()))
            .header(ORIGIN, site.app.address.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let refused = logout(String::new()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let refused = logout(format!("csrf_token={token}")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "a token of the user's other session");
    let still = plain_client()
        .get(format!("{}/api/me", site.app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK, "the refused sign-outs ended nothing");
    // The Origin check stays beside the token: the right token from another site is refused.
    let browser_token = {
        let page = plain_client()
            .get(format!("{}/dashboard/", site.app.address))
            .header(COOKIE, format!("pettycash_session={}", cookie.value()))
            .send()
            .await
            .unwrap();
        csrf_token_in(&page.text().await.unwrap())
    };
    let cross_site = plain_client()
        .post(format!("{}/accounts/logout/", site.app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={browser_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let accepted = plain_client()
        .post(format!("{}/accounts/logout/", site.app.address))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .header(ORIGIN, site.app.address.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={browser_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER, "with its token the same sign-out goes through");
}

#[tokio::test]
async fn at_375_px_wide_no_page_scrolls_sideways() {
    let site = Site::new().await;
    let treasury = &site.cast.treasury;
    let mut browser = site.browser(Screen::Phone, "phone").await;
    let overflow = "return [window.innerWidth, document.documentElement.scrollWidth]";

    browser.goto("/accounts/login/").await;
    assert_eq!(browser.run(overflow).await, json!([375, 375]));
    browser.screenshot("sign-in").await;
    browser.sign_in(&treasury.email, "not the password").await;
    assert_eq!(browser.run(overflow).await, json!([375, 375]), "the sign-in error");
    browser.screenshot("error").await;
    browser.sign_in(&treasury.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/dashboard/");
    let sizes = browser.run(overflow).await;
    assert_eq!(sizes[0], 375);
    assert!(sizes[1].as_u64().unwrap() <= 375, "the dashboard scrolls sideways: {sizes}");
    // The charts are drawn within the screen.
    let widest = browser.run("return Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right))").await;
    assert!(widest.as_f64().unwrap() <= 375.0, "{widest}");
    browser.screenshot("dashboard").await;
    browser.goto("/reports/").await;
    let sizes = browser.run(overflow).await;
    assert!(sizes[1].as_u64().unwrap() <= 375, "the reports page scrolls sideways: {sizes}");
    browser.screenshot("reports").await;
    browser.close().await;
}

#[tokio::test]
async fn pages_that_need_a_user_send_a_stranger_to_sign_in_and_back() {
    let site = Site::new().await;
    let staff = &site.cast.staff;
    let mut browser = site.browser(Screen::Desktop, "redirects").await;

    browser.goto("/dashboard/").await;
    assert!(browser.location().await.starts_with("/accounts/login/"), "{}", browser.location().await);
    assert_eq!(browser.count("form.stacked #password").await, 1);
    browser.screenshot("sign-in").await;
    browser.sign_in(&staff.email, PASSWORD).await;
    assert_eq!(browser.location().await.trim_end_matches('/'), "/dashboard");

    browser.click("form.sign-out button").await;
    browser.goto("/reports/").await;
    assert_eq!(browser.location().await, "/accounts/login/?next=%2Freports");
    browser.sign_in(&staff.email, PASSWORD).await;
    assert_eq!(browser.location().await, "/reports");
    // The old system's front door and a signed-in visit to the sign-in page lead to the
    // dashboard.
    browser.goto("/").await;
    assert_eq!(browser.location().await, "/dashboard/");
    browser.goto("/accounts/login/?next=/reports/").await;
    assert_eq!(browser.location().await, "/reports/");
    browser.close().await;

    // Over HTTP: 303 to the sign-in page; `next` never leads off the site.
    let r = site.http_get(None, "/dashboard/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/accounts/login/?next=%2Fdashboard");
    let page = site.http_get(None, "/accounts/login/?next=https://evil.example/").await;
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="next" value="/dashboard/""#), "{html}");
    let body = serde_urlencoded_form(&[
        ("csrf_token", &csrf_token_in(&html)),
        ("email", &staff.email),
        ("password", PASSWORD),
        ("next", "//evil.example/"),
    ]);
    let signed_in = plain_client()
        .post(format!("{}/accounts/login/", site.app.address))
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/dashboard/");
}

fn serde_urlencoded_form(fields: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://x/", fields).unwrap().query().unwrap_or_default().to_string()
}

#[tokio::test]
async fn every_page_has_a_policy_without_unsafe_inline_and_the_stylesheet_is_cached_forever() {
    let site = Site::new().await;
    let staff = &site.cast.staff;
    let mut pages = vec![
        site.http_get(None, "/accounts/login/").await,
        site.http_get(Some(staff), "/dashboard/").await,
        site.http_get(Some(staff), "/reports/").await,
        // Error pages too: a method the page does not take, a form without its token.
        site.http_get(Some(staff), "/accounts/logout/").await,
    ];
    pages.push(
        plain_client()
            .post(format!("{}/accounts/logout/", site.app.address))
            .header(COOKIE, format!("pettycash_session={}", staff.token))
            .send()
            .await
            .unwrap(),
    );
    let statuses: Vec<u16> = pages.iter().map(|p| p.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 405, 403]);
    for page in &pages {
        let headers = page.headers();
        assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{headers:?}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        for directive in
            ["default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "object-src 'none'"]
        {
            assert!(csp.contains(directive), "{directive} missing: {csp}");
        }
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert!(headers.get("strict-transport-security").is_none(), "not behind TLS");
    }
    let html = site.http_get(None, "/accounts/login/").await.text().await.unwrap();
    assert!(!html.contains("<script") && !html.contains("style="), "nothing inline: {html}");

    // The stylesheet: under its content's hash, cacheable for a year.
    let (_, after) = html.split_once(r#"<link rel="stylesheet" href=""#).unwrap();
    let href = after.split('"').next().unwrap();
    assert!(href.starts_with("/static/app.") && href.ends_with(".css") && href.len() > 20, "{href}");
    let css = site.http_get(None, href).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(css.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    assert!(css.text().await.unwrap().contains(":focus-visible"));
    assert_eq!(site.http_get(None, "/static/app.0000000000000000.css").await.status(), StatusCode::NOT_FOUND);

    // Behind TLS (the proxy on this machine says so), pages add HSTS.
    let tls = plain_client()
        .get(format!("{}/accounts/login/", site.app.address))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(tls.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");

    // And the browser renders the page under that policy with the stylesheet applied.
    let mut browser = site.browser(Screen::Desktop, "headers").await;
    browser.goto("/accounts/login/").await;
    let focus = browser
        .run("document.querySelector('#email').focus(); return getComputedStyle(document.querySelector('#email')).outlineStyle")
        .await;
    assert_eq!(focus, "solid", "a visible focus");
    browser.screenshot("sign-in").await;
    browser.close().await;

    // The JSON API is as it was: no page headers, JSON errors.
    let api = site.http_get(None, "/api/me").await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert!(api.headers().get("content-security-policy").is_none());
    assert!(api.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn the_sign_in_page_is_throttled_with_the_api_sign_in() {
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.login_throttle.base_delay = Duration::from_secs(600);
    })
    .await;
    let user = app.user(&[pettycash_domain::Role::Staff]).await;
    let limit = pettycash_commands::throttle::ThrottlePolicy::DEFAULT.account_limit;
    for _ in 0..limit {
        let r = app
            .send(
                None,
                reqwest::Method::POST,
                "/api/auth/login",
                Some(json!({"email": user.email, "password": "wrong"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    }
    // The account's guesses through the API hold back the page too, right password or not.
    let page = plain_client().get(format!("{}/accounts/login/", app.address)).send().await.unwrap();
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let token = csrf_token_in(&page.text().await.unwrap());
    let body =
        serde_urlencoded_form(&[("csrf_token", &token), ("email", &user.email), ("password", PASSWORD)]);
    let throttled = plain_client()
        .post(format!("{}/accounts/login/", app.address))
        .header(COOKIE, cookie)
        .header(ORIGIN, app.address.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers()[RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert!(throttled
        .headers()
        .get(SET_COOKIE)
        .is_none_or(|c| !c.to_str().unwrap().starts_with("pettycash_session=")));
    let html = throttled.text().await.unwrap();
    assert!(html.contains("Too many sign-in attempts; try again in"), "{html}");
    assert_no_internals(&html);
}

#[tokio::test]
async fn a_report_shows_on_its_page_with_its_chart_downloads_and_errors_beside_the_field() {
    let site = Site::new().await;
    let treasury = &site.cast.treasury;
    let mut browser = site.browser(Screen::Desktop, "report").await;
    browser.goto("/accounts/login/?next=/reports/").await;
    browser.sign_in(&treasury.email, PASSWORD).await;

    // From the list to the cash book's page: it waits for a fund to be chosen.
    browser.click("#report-cash-book h2 a").await;
    assert_eq!(browser.location().await, "/reports/cash-book");
    assert_eq!(browser.text("h1").await, "Cash book");
    assert_eq!(browser.count("table.report").await, 0);
    browser.select("#fund", &site.fund.to_string()).await;
    browser.click("#report-filters button[type=submit]").await;
    assert!(browser.location().await.contains(&format!("fund_id={}", site.fund)));
    // The payment is a movement with the balance after it, as the API's JSON has it.
    let json = site.app.get(treasury, &format!("/api/reports/cash-book?fund_id={}", site.fund)).await.body;
    let movements = json["sections"][0]["rows"].as_array().unwrap();
    assert_eq!(browser.count("table.report tbody tr").await, movements.len());
    let table = browser.text("table.report").await;
    assert!(table.contains("-850.50") && table.contains("49149.50"), "{table}");
    let figures = browser.text("ul.figures").await;
    assert!(figures.contains("KES 49,149.50"), "the closing balance: {figures}");
    assert_eq!(browser.count("svg.chart.line polyline.series").await, 1, "the balance by day");
    browser.screenshot("cash-book").await;

    // Its PDF download is the API's, for the same query.
    let cookie = browser.client.get_named_cookie("pettycash_session").await.expect("a session cookie");
    let action = browser.run("return document.querySelector('#report-downloads').action").await;
    assert!(action.as_str().unwrap().ends_with("/api/reports/cash-book"), "{action}");
    let fund_field =
        browser.run("return document.querySelector('#report-downloads input[name=fund_id]').value").await;
    assert_eq!(fund_field, site.fund.to_string());
    let pdf = plain_client()
        .get(format!("{}/api/reports/cash-book?fund_id={}&format=pdf", site.app.address, site.fund))
        .header(COOKIE, format!("pettycash_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()[CONTENT_TYPE], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));

    // A month that is not one: the API's message next to the field, nothing run.
    browser.goto(&format!("/reports/cash-book?fund_id={}&period=2026-13", site.fund)).await;
    assert!(browser.text("#form-error").await.contains("`period` must be a month"));
    assert_eq!(
        browser.run("return document.querySelector('#period').getAttribute('aria-invalid')").await,
        "true"
    );
    assert_eq!(browser.count("table.report").await, 0);
    browser.screenshot("report-error").await;

    // The spending report draws its categories.
    browser.goto("/reports/spending").await;
    assert_eq!(browser.count("svg.chart.bars").await, 1);
    assert!(browser.text("table.report").await.contains("850.50"));

    // A report the user may not run is a 404 page, as in the API.
    let staff = site.http_get(Some(&site.cast.staff), "/reports/approvals").await;
    assert_eq!(staff.status(), StatusCode::NOT_FOUND);
    assert_no_internals(&staff.text().await.unwrap());
    browser.close().await;
}
