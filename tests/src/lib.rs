//! Test harness: a real PostgreSQL (a fresh database per test), the real HTTP server on a
//! random port, and typed helpers for the common steps.
//!
//! The server is found in this order: `TEST_DATABASE_URL` (an admin URL), PostgreSQL on
//! 127.0.0.1:5432 (user postgres), or a private cluster started from the system's binaries
//! under `/tmp/pettycash-test-pg` (as the embedded default does). Set `TEST_LOG=1` for logs.

pub use pettycash_api::config::{Config, DEV_SECRET_KEY};
use pettycash_api::database;
use pettycash_api::embedded_pg::{probe, EmbeddedPostgres};
use pettycash_api::startup::Application;
use pettycash_commands::{CommandContext, CommandService, EventStore};
use pettycash_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub use serde_json;

pub mod daraja;
pub mod load;
pub mod mail;
pub mod pdf;
pub mod receipts;

pub use mail::{MailServer, ReceivedMail};
pub use receipts::S3Server;

/// The key the test applications authenticate events with (their secret is the development
/// default).
pub fn event_key() -> pettycash_domain::integrity::EventKey {
    pettycash_domain::integrity::EventKey::derive(DEV_SECRET_KEY)
}

/// `metadata` with the MAC the service would give the event (so that a test can insert a
/// valid event directly, as the store would).
pub fn signed_metadata(
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    payload: &Value,
    metadata: &Value,
) -> Value {
    use pettycash_domain::integrity::{jsonb_text, EventContent};
    let content = EventContent {
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version: "1",
        payload: &jsonb_text(payload),
        metadata: &[&jsonb_text(metadata)],
    };
    event_key().sign(&content, metadata.as_object().expect("metadata is an object"))
}

/// Inserts a version-1 event of `payload` (`{"EventType": {...}}`) at `sequence` of its stream,
/// with `metadata` signed as the service would ([`signed_metadata`]), as a store written by an
/// older service (or a faulty one) holds it. Returns its global position.
pub async fn insert_signed_event(
    pool: &sqlx::PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    payload: Value,
    metadata: &Value,
) -> i64 {
    let event_type =
        payload.as_object().and_then(|o| o.keys().next()).expect("{\"EventType\": {...}}").clone();
    let metadata = signed_metadata(aggregate_type, aggregate_id, sequence, &event_type, &payload, metadata);
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, $3, $4, '1', $5, $6)
         RETURNING global_position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .bind(metadata)
    .fetch_one(pool)
    .await
    .expect("inserting an event")
}

/// The password every test user gets.
pub const PASSWORD: &str = "Correct horse battery staple 1";

static SERVER: OnceCell<PgConnectOptions> = OnceCell::const_new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Admin connection options of the PostgreSQL server the tests use.
pub async fn server() -> &'static PgConnectOptions {
    SERVER
        .get_or_init(|| async {
            if std::env::var("TEST_LOG").is_ok() {
                let _ =
                    tracing_subscriber::fmt().with_env_filter("info,sqlx=warn").with_test_writer().try_init();
            }
            let admin = match std::env::var("TEST_DATABASE_URL") {
                Ok(url) => database::connect_options(&url).expect("TEST_DATABASE_URL is a PostgreSQL URL"),
                Err(_) => {
                    let local = database::connect_options("postgres://postgres@127.0.0.1:5432/postgres")
                        .expect("a PostgreSQL URL");
                    if probe(&local, Duration::from_secs(3)).await {
                        local
                    } else {
                        EmbeddedPostgres::new("/tmp/pettycash-test-pg/data", 54339)
                            .ensure_running()
                            .await
                            .expect("no PostgreSQL reachable and the private test cluster failed to start")
                    }
                }
            };
            drop_stale_databases(&admin).await;
            admin
        })
        .await
}

/// Drops test databases left by test processes that are gone (names carry the pid).
async fn drop_stale_databases(admin: &PgConnectOptions) {
    let Ok(pool) = PgPool::connect_with(admin.clone()).await else { return };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'pct\\_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&pool).await;
        }
    }
    pool.close().await;
}

/// A fresh database with the migrations applied: its URL and a pool.
pub async fn fresh_database() -> (String, PgPool) {
    fresh_database_on(server().await).await
}

/// A fresh database with the migrations applied, on the server `admin` connects to: its URL and a
/// pool.
pub async fn fresh_database_on(admin: &PgConnectOptions) -> (String, PgPool) {
    let name = format!("pct_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::SeqCst));
    let server = PgPool::connect_with(admin.clone()).await.expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&server).await.expect("create test database");
    server.close().await;
    let options = admin.clone().database(&name);
    let url = database::url(&options);
    let pool = database::pool_with(options, 40).await.expect("connect to the test database");
    database::migrate(&pool).await.expect("migrate the test database");
    (url, pool)
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// A running application on its own database.
pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub database_url: String,
    pub service: CommandService,
    pub client: reqwest::Client,
    /// The clock the server's commands decide with: a test moves it forward
    /// (`clock.advance(chrono::Duration::days(8))`) instead of waiting.
    pub clock: pettycash_commands::clock::Clock,
    /// Set by [`TestApp::waive_codes_below`]: [`TestApp::pay`] then pays without a code.
    pub codes_waived: std::sync::atomic::AtomicBool,
    /// The server's payment simulator (when it is the provider; else an idle one): tests
    /// script it per destination and read the requests it received. The test's own `service`
    /// sends through the server's provider too.
    pub simulator: pettycash_commands::providers::simulator::Simulator,
}

/// A response: status, headers and the JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `body.error.code`.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    /// `body.error.field`.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or_default()
    }
    pub fn id(&self) -> Uuid {
        self.body["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {:?}", self))
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        // The sealer seals once at start (nothing yet) and then not during a test, so that
        // tests decide when events are sealed (`seal_all`).
        Self::spawn_with(|c| c.seal_interval_secs = 3600).await
    }

    /// Like [`TestApp::spawn`], with the configuration adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(server().await, adjust).await
    }

    /// Like [`TestApp::spawn_with`], on the PostgreSQL server `admin` connects to (e.g. a private
    /// cluster a test stops and starts).
    pub async fn spawn_on(admin: &PgConnectOptions, adjust: impl FnOnce(&mut Config)) -> Self {
        let (database_url, pool) = fresh_database_on(admin).await;
        let mut config = Config::development();
        config.database_url = Some(database_url.clone().into());
        config.bind = "127.0.0.1:0".parse().unwrap();
        // No mail leaves a test app (nor lands in a folder) unless the test points it at a
        // `MailServer`: it waits in the outbox.
        config.mail.transport = pettycash_api::config::MailTransportConfig::Queue;
        // Receipts of tests that do not choose a place go to one shared temporary directory
        // (content-addressed: sharing is harmless), never into the working tree.
        config.media = pettycash_commands::receipts::StorageConfig::Local(
            std::env::temp_dir().join("pettycash-test-media"),
        );
        // The payment simulator decides unscripted requests quickly.
        config.payment_simulator_delay_ms = 100;
        adjust(&mut config);
        if config.payment_provider == "daraja" {
            // Daraja calls back at PUBLIC_URL, which must be known before the server listens.
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            config.bind = ([127, 0, 0, 1], port).into();
            config.mail.public_url = format!("http://127.0.0.1:{port}");
        }
        let app = Application::build(config, pool.clone()).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let clock = app.state().commands.clock().clone();
        let simulator = app.state().simulator.clone().unwrap_or_else(|| {
            pettycash_commands::providers::simulator::Simulator::new(b"idle", Duration::ZERO)
        });
        let provider = app.state().commands.provider().cloned().expect("the test server has a provider");
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        // The test's own service decides with the server's clock and pays through its provider.
        let service = CommandService::new(EventStore::new(pool.clone(), crate::event_key()))
            .with_clock(clock.clone())
            .with_provider(provider);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        TestApp {
            address,
            pool,
            database_url,
            service,
            client,
            clock,
            codes_waived: Default::default(),
            simulator,
        }
    }

    /// Registers a user with `roles` (as the operator would) and signs them in over HTTP.
    pub async fn user(&self, roles: &[Role]) -> TestUser {
        self.user_in(roles, None).await
    }

    /// Registers a user with `roles` in organisation unit `unit` (as the operator would) and
    /// signs them in over HTTP.
    pub async fn user_in(&self, roles: &[Role], unit: Option<Uuid>) -> TestUser {
        let email = format!("{}@test.example", Uuid::new_v4().simple());
        let name = format!("Test {}", roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("+"));
        let ctx = CommandContext::operator("test");
        let user = self
            .service
            .register_user_in(&ctx, &email, &name, roles.to_vec(), Some(PASSWORD), unit)
            .await
            .expect("register test user");
        let reply = self
            .send(None, Method::POST, "/api/auth/login", Some(json!({"email": email, "password": PASSWORD})))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login failed: {reply:?}");
        let token = reply.body["token"].as_str().unwrap().to_string();
        TestUser { id: user.value.id, email, token }
    }

    /// Sends a JSON request (or none) as `user` (or anonymously).
    pub async fn send(
        &self,
        user: Option<&TestUser>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.address));
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req.send().await.expect("request failed")).await
    }

    /// Sends raw bytes with a content type, for malformed-input tests.
    pub async fn send_raw(
        &self,
        user: &TestUser,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(body);
        Self::reply(req.send().await.expect("request failed")).await
    }

    /// POST with an Idempotency-Key.
    pub async fn post_idempotent(&self, user: &TestUser, path: &str, key: &str, body: Value) -> Reply {
        let req = self
            .client
            .post(format!("{}{path}", self.address))
            .bearer_auth(&user.token)
            .header("idempotency-key", key)
            .json(&body);
        Self::reply(req.send().await.expect("request failed")).await
    }

    pub async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    pub async fn get(&self, user: &TestUser, path: &str) -> Reply {
        self.send(Some(user), Method::GET, path, None).await
    }

    pub async fn post(&self, user: &TestUser, path: &str, body: Value) -> Reply {
        self.send(Some(user), Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, user: &TestUser, path: &str, body: Value) -> Reply {
        self.send(Some(user), Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, user: &TestUser, path: &str, body: Value) -> Reply {
        self.send(Some(user), Method::PUT, path, Some(body)).await
    }

    /// Opens an organisation unit as `admin` (`parent`: none for a company); its id.
    pub async fn unit(&self, admin: &TestUser, kind: &str, code: &str, parent: Option<Uuid>) -> Uuid {
        let body = json!({"kind": kind, "name": format!("{kind} {code}"), "code": code, "parent_id": parent});
        let r = self.post(admin, "/api/org/units/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "open {kind} {code}: {r:?}");
        r.id()
    }

    /// Opens a KES fund with `float` as `admin`.
    pub async fn fund(&self, admin: &TestUser, float: &str) -> Uuid {
        self.fund_in(admin, float, "KES").await
    }

    pub async fn fund_in(&self, admin: &TestUser, float: &str, currency: &str) -> Uuid {
        let r = self
            .post(admin, "/api/funds/", json!({"name": "Test fund", "currency": currency, "float": float}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "open fund: {r:?}");
        r.id()
    }

    /// Creates and submits a requisition as `requester`.
    pub async fn submitted(&self, requester: &TestUser, fund: Uuid, amount: &str) -> Uuid {
        let r = self
            .post(
                requester,
                "/api/requisitions/",
                json!({"fund_id": fund, "amount": amount, "purpose": "Test purchase", "submit": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create requisition: {r:?}");
        assert_eq!(r.body["status"], "pending_approval");
        r.id()
    }

    /// Approves `id` by each of `approvers` in turn, asserting success.
    pub async fn approve_by(&self, id: Uuid, approvers: &[&TestUser]) {
        for a in approvers {
            let r = self.post(a, &format!("/api/requisitions/{id}/approve"), json!({})).await;
            assert_eq!(r.status, StatusCode::OK, "approve: {r:?}");
        }
    }

    /// Pays `id` in cash as `treasurer` the way a person does: asks for a one-time code, reads
    /// it from the mail and pays with it. The mail is read in the outbox, where a test app
    /// without a `MailServer` keeps it with its body (use [`TestApp::pay_via`] in an app that
    /// sends mail). A refused code request is the reply.
    pub async fn pay(&self, treasurer: &TestUser, id: Uuid) -> Reply {
        if self.codes_waived.load(Ordering::Relaxed) {
            let body = json!({"requisition_id": id, "method": "cash"});
            return self.post(treasurer, "/api/treasury/payments/", body).await;
        }
        let r = self.request_code(treasurer, id, "cash").await;
        if r.status != StatusCode::CREATED {
            return r;
        }
        let code = self.queued_payment_code(&treasurer.email, id).await;
        self.pay_with_code(treasurer, id, "cash", &code).await
    }

    /// [`TestApp::pay`] in an app that sends mail to `smtp`: the code is read from the mail the
    /// SMTP server received (which is then cleared).
    pub async fn pay_via(&self, smtp: &MailServer, treasurer: &TestUser, id: Uuid) -> Reply {
        let r = self.request_code(treasurer, id, "cash").await;
        if r.status != StatusCode::CREATED {
            return r;
        }
        let code = self.mailed_payment_code(smtp, &treasurer.email, id).await;
        smtp.clear();
        self.pay_with_code(treasurer, id, "cash", &code).await
    }

    /// `POST /api/treasury/payments/code`.
    pub async fn request_code(&self, treasurer: &TestUser, id: Uuid, method: &str) -> Reply {
        self.post(treasurer, "/api/treasury/payments/code", json!({"requisition_id": id, "method": method}))
            .await
    }

    /// `POST /api/treasury/payments/` with `code`.
    pub async fn pay_with_code(&self, treasurer: &TestUser, id: Uuid, method: &str, code: &str) -> Reply {
        let body = json!({"requisition_id": id, "method": method, "code": code});
        self.post(treasurer, "/api/treasury/payments/", body).await
    }

    /// The code of the latest payment code mail to `email` for requisition `id` still waiting
    /// in the outbox.
    pub async fn queued_payment_code(&self, email: &str, id: Uuid) -> String {
        let body: String = sqlx::query_scalar(
            "SELECT body_text FROM mail_outbox
             WHERE recipient_email = $1 AND category = 'payment_code' AND strpos(body_text, $2) > 0
             ORDER BY id DESC LIMIT 1",
        )
        .bind(email)
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .expect("a payment code mail in the outbox");
        payment_code_in(&body)
            .unwrap_or_else(|| panic!("no code in the outbox's mail (sent already? use pay_via): {body}"))
    }

    /// The code of the latest payment code mail to `email` for requisition `id` that `smtp`
    /// received.
    pub async fn mailed_payment_code(&self, smtp: &MailServer, email: &str, id: Uuid) -> String {
        let mails = self.delivered(smtp).await;
        let id = id.to_string();
        let mail = mails
            .iter()
            .rev()
            .find(|m| {
                m.to.iter().any(|t| t == email)
                    && m.subject.starts_with("Payment code")
                    && m.text.contains(&id)
            })
            .unwrap_or_else(|| panic!("no payment code mail to {email}: {mails:#?}"));
        payment_code_in(&mail.text).unwrap_or_else(|| panic!("no code in {}", mail.text))
    }

    /// An admin of no unit sets `payment_code_waiver_below` to `below` (for tests that post
    /// payments directly, or race many payments, and are not about codes); with a waiver
    /// [`TestApp::pay`] pays cash without a code (amounts under `below` only).
    pub async fn waive_codes_below(&self, admin: &TestUser, below: u64) {
        let r = self.put(admin, "/api/settings/payment_code_waiver_below", json!({"value": below})).await;
        assert_eq!(r.status, StatusCode::OK, "waive payment codes: {r:?}");
        self.codes_waived.store(below > 0, Ordering::Relaxed);
    }

    /// The token of the latest invitation mail to `email`, from the outbox (a test app without
    /// a `MailServer` sends nothing, so the mail waits there with its body).
    pub async fn invitation_token(&self, email: &str) -> String {
        let body: String = sqlx::query_scalar(
            "SELECT body_text FROM mail_outbox WHERE recipient_email = $1 AND category = 'invitation'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(email)
        .fetch_one(&self.pool)
        .await
        .expect("an invitation mail in the outbox");
        invitation_token_in(&body).unwrap_or_else(|| panic!("no invitation link in {body}"))
    }

    /// Accepts an invitation over HTTP, without a session.
    pub async fn accept_invitation(&self, token: &str, password: &str) -> Reply {
        let body = json!({"token": token, "password": password});
        self.send(None, Method::POST, "/api/invitations/accept", Some(body)).await
    }

    /// Number of events in the store.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool).await.unwrap()
    }

    /// A fund's balance as the API shows it.
    pub async fn balance(&self, user: &TestUser, fund: Uuid) -> rust_decimal::Decimal {
        let r = self.get(user, &format!("/api/funds/{fund}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body["balance"].as_str().unwrap().parse().unwrap()
    }
}

/// The code after `Code: ` in a payment code mail's text.
pub fn payment_code_in(text: &str) -> Option<String> {
    let (_, after) = text.split_once("Code: ")?;
    let code: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    (code.len() == 6).then_some(code)
}

/// The token of the first invitation link (`…/invitations/{token}`) in a mail's text.
pub fn invitation_token_in(text: &str) -> Option<String> {
    let (_, after) = text.split_once("/invitations/")?;
    let token: String =
        after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (!token.is_empty()).then_some(token)
}

/// The standard cast for most tests.
pub struct Cast {
    pub admin: TestUser,
    pub staff: TestUser,
    pub head: TestUser,
    pub gfm: TestUser,
    pub cfo: TestUser,
    pub treasury: TestUser,
    pub auditor: TestUser,
}

impl Cast {
    pub async fn new(app: &TestApp) -> Self {
        let (admin, staff, head, gfm, cfo, treasury, auditor) = tokio::join!(
            app.user(&[Role::Admin]),
            app.user(&[Role::Staff]),
            app.user(&[Role::DepartmentHead]),
            app.user(&[Role::GroupFinanceManager]),
            app.user(&[Role::Cfo]),
            app.user(&[Role::Treasury]),
            app.user(&[Role::Auditor]),
        );
        Cast { admin, staff, head, gfm, cfo, treasury, auditor }
    }
}

/// Seals every event of the store with `key`, `per_seal` events a seal (events that do not
/// authenticate are refused, and count as done). Seals cover only events below the visibility
/// horizon, which is cluster-wide: a transaction of a test running beside this one can hold it
/// back for a moment, so this tries again until all are sealed.
pub async fn seal_everything(pool: &PgPool, key: &pettycash_projections::seal::SealKey, per_seal: i64) {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await.unwrap();
    for _ in 0..200 {
        pettycash_projections::seal::seal_all(pool, key, per_seal).await.expect("seal");
        let sealed: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(event_count), 0) + coalesce(sum(octet_length(refused) / 8), 0)::bigint
             FROM event_seals",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if sealed == events {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Waits until the `notifications` projection has applied every event and the sender has
    /// sent every mail it wrote (up to 20 s); returns what `smtp` received.
    pub async fn delivered(&self, smtp: &MailServer) -> Vec<ReceivedMail> {
        wait_for_projections(&self.pool, &["notifications"]).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if unsent == 0 {
                return smtp.received();
            }
            assert!(std::time::Instant::now() < deadline, "{unsent} mails still unsent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that the live builds of `projections` apply every event within 30 s: the last
/// event in their order, `(transaction_id, global_position)`, once applied, means all are.
pub async fn wait_for_projections(pool: &PgPool, projections: &[&str]) {
    let last: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let reached = pettycash_projections::wait::wait_for(pool, projections, last, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(reached, "{projections:?} did not catch up with the store");
}
