//! Sign-in throttling (issue #17): per account, per client address and per device, counted in
//! the database before any password is checked, answered with 429 and `Retry-After`; and the
//! login endpoint's own CSRF rules (JSON only, same origin).
//!
//! Clients are told apart by `X-Forwarded-For`, which the service believes from a peer on
//! this machine, as it does from nginx in production.

use super::concurrency::second_server_with;
use futures::future::join_all;
use pettycash_api::config::Config;
use pettycash_commands::throttle::ThrottlePolicy;
use pettycash_domain::Role;
use pettycash_tests::serde_json::json;
use pettycash_tests::{Reply, TestApp, TestUser, PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use std::time::Duration;

const DEVICE_COOKIE: &str = "pettycash_device";
const WRONG: &str = "not the password at all";
const ACCOUNT_LIMIT: usize = ThrottlePolicy::DEFAULT.account_limit as usize;
const CLIENT_LIMIT: usize = ThrottlePolicy::DEFAULT.client_limit as usize;
const DEVICE_LIMIT: usize = ThrottlePolicy::DEFAULT.device_limit as usize;

/// A delay far longer than any test: a throttled key stays throttled until the test ends.
fn long_delay(config: &mut Config) {
    config.seal_interval_secs = 3600;
    config.login_throttle.base_delay = Duration::from_secs(600);
}

/// A client signing in: its address and, once it has one, its device cookie.
#[derive(Debug, Clone)]
struct Client {
    address: String,
    device: Option<String>,
}

impl Client {
    fn at(address: impl Into<String>) -> Self {
        Client { address: address.into(), device: None }
    }

    /// `POST /api/auth/login` at the server `server` (a base URL).
    async fn sign_in_at(&self, app: &TestApp, server: &str, email: &str, password: &str) -> Reply {
        let mut req = app
            .client
            .post(format!("{server}/api/auth/login"))
            .header("x-forwarded-for", &self.address)
            .json(&json!({"email": email, "password": password}));
        if let Some(device) = &self.device {
            req = req.header(COOKIE, format!("{DEVICE_COOKIE}={device}"));
        }
        TestApp::reply(req.send().await.expect("request failed")).await
    }

    async fn sign_in(&self, app: &TestApp, email: &str, password: &str) -> Reply {
        self.sign_in_at(app, &app.address, email, password).await
    }

    /// Signs in with the right password, asserts success and keeps the device cookie.
    async fn sign_in_and_remember(&mut self, app: &TestApp, user: &TestUser) {
        let r = self.sign_in(app, &user.email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        self.device = Some(device_cookie(&r).expect("a successful sign-in sets the device cookie"));
    }
}

/// The value of the device cookie a response sets.
fn device_cookie(reply: &Reply) -> Option<String> {
    reply.headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.strip_prefix(&format!("{DEVICE_COOKIE}="))
            .map(|rest| rest.split(';').next().unwrap_or_default().into())
    })
}

/// `Retry-After` in seconds.
fn retry_after(reply: &Reply) -> u64 {
    let value = reply.headers.get(RETRY_AFTER).unwrap_or_else(|| panic!("no Retry-After: {reply:?}"));
    value.to_str().unwrap().parse().unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {reply:?}"))
}

/// Asserts a 401 for bad credentials.
fn assert_refused(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(reply.code(), "unauthenticated", "{reply:?}");
}

/// Asserts a 429 `too_many_attempts` whose message and `Retry-After` name the same wait; returns
/// the wait.
fn assert_throttled(reply: &Reply) -> u64 {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    assert_eq!(reply.code(), "too_many_attempts", "{reply:?}");
    assert!(reply.body.get("token").is_none(), "{reply:?}");
    let secs = retry_after(reply);
    assert!(secs >= 1, "{reply:?}");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.ends_with(&format!("try again in {secs} seconds")), "{reply:?}");
    secs
}

/// An app (with [`long_delay`]), a user, and the client at `address` the user has signed in
/// from, holding its device cookie.
async fn signed_in_before(address: &str) -> (TestApp, TestUser, Client) {
    let app = TestApp::spawn_with(long_delay).await;
    let user = app.user(&[Role::Staff]).await;
    let mut client = Client::at(address);
    client.sign_in_and_remember(&app, &user).await;
    (app, user, client)
}

fn tally(replies: &[Reply]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in replies {
        *counts.entry(format!("{} {}", r.status.as_u16(), r.code())).or_default() += 1;
    }
    format!("{counts:?}")
}

/// `n` wrong passwords for `email` at once, each from its own address (`10.<net>.x.y`), spread
/// over `servers`.
async fn parallel_guesses(app: &TestApp, servers: &[&str], net: u8, email: &str, n: usize) -> Vec<Reply> {
    join_all((0..n).map(|i| {
        let client = Client::at(format!("10.{net}.{}.{}", i / 250, i % 250 + 1));
        let server = servers[i % servers.len()];
        async move { client.sign_in_at(app, server, email, WRONG).await }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_over_two_servers_check_at_most_the_account_limit() {
    let app = TestApp::spawn_with(long_delay).await;
    let other = second_server_with(&app, long_delay).await;
    let user = app.user(&[Role::Staff]).await;

    let replies = parallel_guesses(&app, &[&app.address, &other], 1, &user.email, 200).await;
    eprintln!("200 parallel wrong passwords: {}", tally(&replies));

    let checked = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    assert!(checked <= ACCOUNT_LIMIT, "{checked} passwords were checked: {}", tally(&replies));
    for r in replies.iter().filter(|r| r.status != StatusCode::UNAUTHORIZED) {
        assert_throttled(r);
    }
    // The right password, from an address that made no attempt and without a device cookie,
    // is not checked either: the account's delay holds for everyone.
    let right = Client::at("10.200.0.1").sign_in(&app, &user.email, PASSWORD).await;
    assert_throttled(&right);
    assert!(!right.headers.contains_key(SET_COOKIE), "{right:?}");
}

#[tokio::test]
async fn a_device_that_signed_in_before_signs_in_while_the_account_is_throttled() {
    let (app, user, usual) = signed_in_before("10.2.0.1").await;
    let guesses = parallel_guesses(&app, &[&app.address], 3, &user.email, 20).await;
    assert!(guesses.iter().any(|r| r.status == StatusCode::TOO_MANY_REQUESTS), "{}", tally(&guesses));

    let with_device = usual.sign_in(&app, &user.email, PASSWORD).await;
    let travelling =
        Client { address: "10.2.0.2".into(), ..usual.clone() }.sign_in(&app, &user.email, PASSWORD).await;

    for r in [&with_device, &travelling] {
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["user"]["email"], user.email);
    }
    assert_eq!(device_cookie(&with_device), usual.device, "the device keeps its cookie");
    // The same browser without its cookie, and everyone else, are still throttled.
    assert_throttled(&Client::at("10.2.0.1").sign_in(&app, &user.email, PASSWORD).await);
    assert_throttled(&Client::at("10.2.0.3").sign_in(&app, &user.email, WRONG).await);
}

#[tokio::test]
async fn a_device_cookie_exempts_only_the_account_it_was_issued_for() {
    let app = TestApp::spawn_with(long_delay).await;
    let (victim, attacker) = tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::Staff]));
    let mut own = Client::at("10.4.0.1");
    own.sign_in_and_remember(&app, &attacker).await;
    parallel_guesses(&app, &[&app.address], 4, &victim.email, ACCOUNT_LIMIT).await;

    let r = own.sign_in(&app, &victim.email, PASSWORD).await;

    assert_throttled(&r);
}

#[tokio::test]
async fn a_device_is_throttled_on_its_own_after_its_limit() {
    let (app, user, device) = signed_in_before("10.5.0.1").await;
    for _ in 0..DEVICE_LIMIT {
        assert_refused(&device.sign_in(&app, &user.email, WRONG).await);
    }

    let r = device.sign_in(&app, &user.email, PASSWORD).await;

    assert_throttled(&r);
    // The account itself was not throttled by the device's failures.
    assert_eq!(Client::at("10.5.0.2").sign_in(&app, &user.email, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_known_emails_are_answered_alike_before_and_after_throttling() {
    let app = TestApp::spawn_with(long_delay).await;
    let user = app.user(&[Role::Staff]).await;
    let unknown = "nobody.at.all@test.example";
    let client = Client::at("10.6.0.1");
    let (mut known_replies, mut unknown_replies) = (Vec::new(), Vec::new());

    for _ in 0..ACCOUNT_LIMIT + 1 {
        let (k, u) =
            tokio::join!(client.sign_in(&app, &user.email, WRONG), client.sign_in(&app, unknown, WRONG));
        known_replies.push(k);
        unknown_replies.push(u);
    }

    for (k, u) in known_replies.iter().zip(&unknown_replies).take(ACCOUNT_LIMIT) {
        assert_refused(k);
        assert_eq!((k.status, &k.body), (u.status, &u.body), "a wrong password and an unknown email");
        assert!(!k.headers.contains_key(RETRY_AFTER) && !u.headers.contains_key(RETRY_AFTER));
    }
    let (k, u) = (&known_replies[ACCOUNT_LIMIT], &unknown_replies[ACCOUNT_LIMIT]);
    let (known_wait, unknown_wait) = (assert_throttled(k), assert_throttled(u));
    // The same answer; the wait (also in the message) is the same but for the moments between
    // the two attempts.
    assert!(known_wait.abs_diff(unknown_wait) <= 1, "{k:?} {u:?}");
    let without_wait = |r: &Reply| r.body.to_string().replace(&retry_after(r).to_string(), "N");
    assert_eq!(without_wait(k), without_wait(u));
}

#[tokio::test]
async fn the_delay_grows_with_every_failure_after_the_limit() {
    // The built-in delays (1 s, 2 s, 4 s, ...): the test waits out the first two, 3 s in all.
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;
    let client = Client::at("10.7.0.1");
    let mut waits = Vec::new();

    // Each round sends one attempt more than the account lets through: they queue on its
    // counter, and the one refused reports the delay the others' failures have just started.
    for let_through in [ACCOUNT_LIMIT, 1, 1] {
        if let Some(&wait) = waits.last() {
            tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
        }
        let replies = join_all((0..=let_through).map(|_| client.sign_in(&app, &user.email, WRONG))).await;
        let throttled: Vec<&Reply> =
            replies.iter().filter(|r| r.status != StatusCode::UNAUTHORIZED).collect();
        assert_eq!(throttled.len(), 1, "after waiting {waits:?}: {}", tally(&replies));
        waits.push(assert_throttled(throttled[0]));
    }

    assert_eq!(waits, [1, 2, 4]);
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_throttled_by_its_address() {
    let app = TestApp::spawn_with(long_delay).await;
    let emails: Vec<String> = (0..6).map(|i| format!("account{i}@test.example")).collect();
    let guesser = Client::at("10.8.0.1");
    let per_account = ACCOUNT_LIMIT - 1;

    let mut replies = Vec::new();
    for email in &emails {
        for _ in 0..per_account {
            replies.push(guesser.sign_in(&app, email, WRONG).await);
        }
    }

    assert!(replies.len() > CLIENT_LIMIT);
    for r in &replies[..CLIENT_LIMIT] {
        assert_refused(r);
    }
    for r in &replies[CLIENT_LIMIT..] {
        assert_throttled(r);
    }
    // None of the accounts reached its own limit: from another address they are checked.
    assert_refused(&Client::at("10.8.0.2").sign_in(&app, &emails[5], WRONG).await);
}

#[tokio::test]
async fn a_success_starts_the_account_count_again_from_zero() {
    let app = TestApp::spawn_with(long_delay).await;
    let user = app.user(&[Role::Staff]).await;
    let client = Client::at("10.9.0.1");
    for _ in 0..ACCOUNT_LIMIT - 1 {
        assert_refused(&client.sign_in(&app, &user.email, WRONG).await);
    }
    assert_eq!(client.sign_in(&app, &user.email, PASSWORD).await.status, StatusCode::OK);

    let after: Vec<Reply> =
        join_all((0..ACCOUNT_LIMIT + 1).map(|_| client.sign_in(&app, &user.email, WRONG))).await;

    let checked = after.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    assert_eq!(checked, ACCOUNT_LIMIT, "{}", tally(&after));
    assert_eq!(
        after.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count(),
        1,
        "{}",
        tally(&after)
    );
}

// ----- login CSRF ---------------------------------------------------------------------------

#[tokio::test]
async fn a_login_body_not_sent_as_json_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;
    let body = json!({"email": user.email, "password": PASSWORD}).to_string();

    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = app.client.post(format!("{}/api/auth/login", app.address)).body(body.clone());
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = TestApp::reply(req.send().await.unwrap()).await;

        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}: {r:?}");
        assert_eq!(r.code(), "unsupported_media_type", "{r:?}");
        assert!(!r.headers.contains_key(SET_COOKIE), "{r:?}");
    }
}

#[tokio::test]
async fn a_login_from_a_foreign_origin_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.user(&[Role::Staff]).await;
    let login = |origin: String| {
        app.client
            .post(format!("{}/api/auth/login", app.address))
            .header(ORIGIN, origin)
            .json(&json!({"email": user.email, "password": PASSWORD}))
            .send()
    };

    let forged = TestApp::reply(login("http://evil.example".into()).await.unwrap()).await;
    let own = TestApp::reply(login(app.address.clone()).await.unwrap()).await;

    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    assert_eq!(forged.code(), "cross_site_request", "{forged:?}");
    assert!(!forged.headers.contains_key(SET_COOKIE), "{forged:?}");
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
}
