//! Real `pettycash project` processes against one database: each projection is worked on by
//! one of them at a time, no event is ever applied twice, and when the holder of a lease
//! stops (SIGTERM) or dies (SIGKILL), another process takes the work over.
//!
//! Events are appended in-process through the command service while the processes run. The
//! processes' stderr goes to files under /tmp (`pettycash-project-<db>-<label>.stderr.log`),
//! from which the test reports who held which lease ("projection worker holds the lease").

use futures::future::join_all;
use pettycash_api::database;
use pettycash_api::embedded_pg::{probe, EmbeddedPostgres};
use pettycash_commands::service::NewRequisition;
use pettycash_commands::{CommandContext, CommandService, EventStore, RequestMeta};
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::{Actor, Role};
use rust_decimal::Decimal;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Bounds a hang, nothing more: convergence normally takes a lease retry (2 s) or less.
const DEADLINE: Duration = Duration::from_secs(30);
const NAMES: [&str; 2] = ["requisitions", "cash"];
const PASSWORD: &str = "Correct horse battery staple 1";

// ----- database ----------------------------------------------------------------------------

/// The test server's admin connection, found as the tests crate finds it.
async fn admin_options() -> PgConnectOptions {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return database::connect_options(&url).expect("TEST_DATABASE_URL is a PostgreSQL URL");
    }
    let local = database::connect_options("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    if probe(&local, Duration::from_secs(3)).await {
        return local;
    }
    EmbeddedPostgres::new("/tmp/pettycash-test-pg/data", 54339)
        .ensure_running()
        .await
        .expect("no PostgreSQL reachable and the private test cluster failed to start")
}

/// A fresh, migrated database: its name, its URL (for the processes) and a pool. Named like the
/// tests crate's (`pct_<pid>_…`), so its stale-database sweep drops it if this process dies
/// before dropping it itself.
async fn fresh_database(admin: &PgConnectOptions) -> (String, String, PgPool) {
    let name = format!("pct_{}_procs_{}", std::process::id(), Uuid::new_v4().simple());
    let pool = PgPool::connect_with(admin.clone()).await.expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&pool).await.expect("create database");
    pool.close().await;
    let options = admin.clone().database(&name);
    let url = database::url(&options);
    let pool = database::pool_with(options, 10).await.expect("connect to the test database");
    database::migrate(&pool).await.expect("migrate");
    (name, url, pool)
}

async fn drop_database(admin: &PgConnectOptions, name: &str) {
    if let Ok(pool) = PgPool::connect_with(admin.clone()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&pool).await;
        pool.close().await;
    }
}

// ----- processes ---------------------------------------------------------------------------

struct Proc {
    label: String,
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
    exited: Option<ExitStatus>,
}

/// The `pettycash project` children; all killed on drop, whatever happened.
struct Procs {
    db: String,
    url: String,
    list: Vec<Proc>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.list {
            if p.exited.is_none() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Procs {
    fn spawn(&mut self, label: &str) -> usize {
        self.spawn_command(label, &["project"])
    }

    /// `pettycash ARGS`, logging to files named after `label`.
    fn spawn_command(&mut self, label: &str, args: &[&str]) -> usize {
        let base = format!("/tmp/pettycash-project-{}-{label}", self.db);
        let stderr = PathBuf::from(format!("{base}.stderr.log"));
        let stdout = PathBuf::from(format!("{base}.stdout.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_pettycash"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.url)
            .env("DEBUG", "True")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .env("DATABASE_POOL_SIZE", "6")
            // DEBUG without EMAIL_HOST writes mail into PETTYCASH_DATA_DIR/mail: not the checkout.
            .env("PETTYCASH_DATA_DIR", format!("/tmp/pettycash-project-{}-data", self.db))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout log"))
            .stderr(File::create(&stderr).expect("stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `pettycash {}`: {e}", args.join(" ")));
        self.list.push(Proc { label: label.into(), child, stderr, stdout, exited: None });
        self.list.len() - 1
    }

    fn log(&self, i: usize) -> String {
        strip_ansi(&std::fs::read_to_string(&self.list[i].stderr).unwrap_or_default())
    }

    /// How many times process `i` logged taking the lease of `projection`.
    fn leases(&self, i: usize, projection: &str) -> usize {
        self.log(i)
            .lines()
            .filter(|l| {
                l.contains("projection worker holds the lease") && l.contains(&format!("\"{projection}\""))
            })
            .count()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.list.iter().enumerate() {
            out.push_str(&format!("\n--- {} ({}) ---\n{}", p.label, p.stderr.display(), self.log(i)));
        }
        out
    }

    /// Panics (with the logs) if a process that should be running has exited.
    fn check_alive(&mut self) {
        for p in &mut self.list {
            if p.exited.is_none() {
                if let Some(status) = p.child.try_wait().expect("try_wait") {
                    p.exited = Some(status);
                    let log = std::fs::read_to_string(&p.stderr).unwrap_or_default();
                    panic!("`pettycash project` {} exited unexpectedly ({status}):\n{log}", p.label);
                }
            }
        }
    }

    async fn wait_for_log(&self, i: usize, what: &str, file_is_stdout: bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let path = if file_is_stdout { &self.list[i].stdout } else { &self.list[i].stderr };
            if std::fs::read_to_string(path).unwrap_or_default().contains(what) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never logged {what:?}:{}",
                self.list[i].label,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    async fn terminate(&mut self, i: usize) {
        let pid = self.list[i].child.id();
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.list[i].child.try_wait().expect("try_wait") {
                self.list[i].exited = Some(status);
                assert!(
                    status.success(),
                    "{} should exit cleanly on SIGTERM: {status}{}",
                    self.list[i].label,
                    self.logs()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM{}",
                self.list[i].label,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: a crash. Its sessions (and advisory locks) die with its connections.
    fn kill(&mut self, i: usize) {
        let p = &mut self.list[i];
        p.child.kill().expect("kill");
        p.exited = Some(p.child.wait().expect("wait"));
    }
}

// ----- commands ----------------------------------------------------------------------------

#[derive(Clone)]
struct People {
    admin: Actor,
    staff: Actor,
    head: Actor,
    gfm: Actor,
    treasury: Actor,
}

fn ctx(actor: &Actor) -> CommandContext {
    CommandContext::user(actor.clone(), RequestMeta::default())
}

async fn register(service: &CommandService, roles: &[Role]) -> Actor {
    let email = format!("{}@processes.test", Uuid::new_v4().simple());
    let user = service
        .register_user(
            &CommandContext::operator("process test"),
            &email,
            "Process Test",
            roles.to_vec(),
            Some(PASSWORD),
        )
        .await
        .expect("register user");
    Actor::new(user.value.id, roles.iter().copied())
}

impl People {
    async fn register(service: &CommandService) -> Self {
        let (admin, staff, head, gfm, treasury) = tokio::join!(
            register(service, &[Role::Admin]),
            register(service, &[Role::Staff]),
            register(service, &[Role::DepartmentHead]),
            register(service, &[Role::GroupFinanceManager]),
            register(service, &[Role::Treasury]),
        );
        Self { admin, staff, head, gfm, treasury }
    }
}

/// One burst: `funds` new funds, each with `per_fund` requisitions created, approved and paid,
/// the funds' flows running concurrently.
async fn burst(service: &CommandService, people: &People, tag: &str, funds: usize, per_fund: usize) {
    let flows = (0..funds).map(|f| {
        let (service, people) = (service.clone(), people.clone());
        let name = format!("Burst {tag} fund {f}");
        async move {
            let fund = service
                .open_fund(&ctx(&people.admin), &name, "KES", Decimal::new(100_000_000, 2), None, None)
                .await
                .expect("open fund")
                .value
                .id;
            for i in 0..per_fund {
                let big = i % 3 == 0;
                let amount =
                    if big { Decimal::new(200_000 + i as i64, 2) } else { Decimal::new(5_000 + i as i64, 2) };
                let input = NewRequisition {
                    fund_id: fund,
                    amount,
                    currency: None,
                    purpose: format!("{name} item {i}"),
                    payee: None,
                    category: None,
                    submit: true,
                    origin: None,
                    advance: false,
                    urgent_reason: None,
                };
                let id =
                    service.create_requisition(&ctx(&people.staff), input).await.expect("create").value.id;
                service.approve_requisition(&ctx(&people.head), id, None).await.expect("approve");
                if big {
                    service.approve_requisition(&ctx(&people.gfm), id, None).await.expect("approve (gfm)");
                }
                service
                    .pay_without_code(&ctx(&people.treasury), id, PaymentMethod::Cash, None)
                    .await
                    .expect("pay");
            }
        }
    });
    join_all(flows).await;
}

// ----- convergence -------------------------------------------------------------------------

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn checkpoints(pool: &PgPool) -> Vec<(String, i32, String, i64, i64)> {
    sqlx::query_as(
        "SELECT name, version, state, last_position, events_applied FROM projection_checkpoints
         WHERE name = ANY ($1) ORDER BY name, version",
    )
    .bind(&NAMES[..])
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Both read models live with their cursor on the last event of the store.
async fn converged(pool: &PgPool) -> bool {
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projection_checkpoints c
         WHERE c.state = 'live' AND c.name = ANY ($1)
           AND (c.last_transaction_id, c.last_position) =
               (SELECT e.transaction_id, e.global_position FROM events e
                ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1)",
    )
    .bind(&NAMES[..])
    .fetch_one(pool)
    .await
    .unwrap();
    done == NAMES.len() as i64
}

async fn wait_converged(pool: &PgPool, procs: &mut Procs, phase: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !converged(pool).await {
        procs.check_alive();
        assert!(
            Instant::now() < deadline,
            "{phase}: projections never caught up: {:?} (events: {}){}",
            checkpoints(pool).await,
            count(pool, "SELECT count(*) FROM events").await,
            procs.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event counted once per projection, and the read models hold each event once.
async fn assert_exact(pool: &PgPool, phase: &str) {
    let events = count(pool, "SELECT count(*) FROM events").await;
    let rows = checkpoints(pool).await;
    assert_eq!(rows.len(), NAMES.len(), "{phase}: one checkpoint per projection: {rows:?}");
    for (name, version, state, _, applied) in &rows {
        let current = if name == "requisitions" {
            pettycash_projections::REQUISITIONS_VERSION
        } else {
            pettycash_projections::CASH_VERSION
        };
        assert_eq!((*version, state.as_str()), (current, "live"), "{phase}: {name}");
        assert_eq!(*applied, events, "{phase}: {name} events_applied vs events in the store: {rows:?}");
    }
    let fund_events = count(pool, "SELECT count(*) FROM events WHERE aggregate_type = 'fund'").await;
    let cash = pettycash_projections::CASH_VERSION;
    let ledger = count(pool, &format!("SELECT count(*) FROM rm_ledger_v{cash}")).await;
    assert_eq!(ledger, fund_events, "{phase}: one ledger row per fund event");
    let differ = count(
        pool,
        &format!(
            "SELECT count(*) FROM (
            (SELECT global_position FROM events WHERE aggregate_type = 'fund' EXCEPT ALL SELECT position FROM rm_ledger_v{cash})
            UNION ALL
            (SELECT position FROM rm_ledger_v{cash} EXCEPT ALL SELECT global_position FROM events WHERE aggregate_type = 'fund')) x"
        ),
    )
    .await;
    assert_eq!(differ, 0, "{phase}: ledger positions differ from the fund events'");
    let payments = count(pool, &format!("SELECT count(*) FROM rm_payments_v{cash}")).await;
    let disbursed = count(pool, "SELECT count(*) FROM events WHERE event_type = 'CashDisbursed'").await;
    assert_eq!(payments, disbursed, "{phase}: one payment row per CashDisbursed");
    let requisitions_table = format!("rm_requisitions_v{}", pettycash_projections::REQUISITIONS_VERSION);
    let requisitions = count(pool, &format!("SELECT count(*) FROM {requisitions_table}")).await;
    let created = count(pool, "SELECT count(*) FROM events WHERE event_type = 'RequisitionCreated'").await;
    assert_eq!(requisitions, created, "{phase}: one requisition row per RequisitionCreated");
    // An approval applied twice would list its approver twice.
    let bad = count(
        pool,
        &format!(
            "SELECT count(*) FROM {requisitions_table} r
             WHERE r.status <> 'paid' OR jsonb_array_length(r.approvers) <> (SELECT count(*) FROM events e
                 WHERE e.aggregate_id = r.id::text AND e.event_type = 'RequisitionApproved')"
        ),
    )
    .await;
    assert_eq!(bad, 0, "{phase}: requisitions not paid or with approvals applied other than once");
    let bad_funds = count(
        pool,
        &format!(
            "SELECT count(*) FROM rm_funds_v{cash} f
         WHERE f.disbursements <> (SELECT count(*) FROM events e
                                   WHERE e.aggregate_id = f.id::text AND e.event_type = 'CashDisbursed')
            OR f.balance <> f.float - f.disbursed_total"
        ),
    )
    .await;
    assert_eq!(bad_funds, 0, "{phase}: funds whose disbursements disagree with the events");
}

/// Who took which lease so far, for the report.
fn lease_report(procs: &Procs, phase: &str) -> String {
    let mut out = format!("[{phase}] lease acquisitions:");
    for (i, p) in procs.list.iter().enumerate() {
        let state = match p.exited {
            Some(s) => format!("exited {s}"),
            None => "running".into(),
        };
        out.push_str(&format!(
            " {} (pid {}, {state}): requisitions x{}, cash x{};",
            p.label,
            p.child.id(),
            procs.leases(i, "requisitions"),
            procs.leases(i, "cash")
        ));
    }
    out
}

/// The running process that took `projection`'s lease most recently (the one holding it:
/// a lease is only given up by exiting).
fn holder(procs: &Procs, projection: &str) -> usize {
    let holders: Vec<usize> = (0..procs.list.len())
        .filter(|&i| procs.list[i].exited.is_none() && procs.leases(i, projection) > 0)
        .collect();
    assert_eq!(holders.len(), 1, "exactly one running process should hold {projection}:{}", procs.logs());
    holders[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_project_processes_share_the_work_without_applying_anything_twice() {
    let admin = admin_options().await;
    let (db, url, pool) = fresh_database(&admin).await;
    let service = CommandService::new(EventStore::new(
        pool.clone(),
        pettycash_domain::integrity::EventKey::derive(pettycash_api::config::DEV_SECRET_KEY),
    ));
    let people = People::register(&service).await;
    let mut procs = Procs { db: db.clone(), url, list: Vec::new() };

    // Events before any worker exists, then two processes start on them together.
    burst(&service, &people, "1", 3, 4).await;
    let a = procs.spawn("A");
    let b = procs.spawn("B");
    wait_converged(&pool, &mut procs, "initial build").await;
    assert_exact(&pool, "initial build").await;
    for name in NAMES {
        let total = procs.leases(a, name) + procs.leases(b, name);
        assert_eq!(total, 1, "{name}: one lease taken, by one process, once:{}", procs.logs());
    }
    eprintln!("{}", lease_report(&procs, "after the initial build"));

    // More events while both run.
    burst(&service, &people, "2", 4, 3).await;
    wait_converged(&pool, &mut procs, "second burst").await;
    assert_exact(&pool, "second burst").await;

    // Stop the holder of `requisitions` with SIGTERM while events keep coming.
    let first = holder(&procs, "requisitions");
    let other = if first == a { b } else { a };
    let writing = {
        let (service, people) = (service.clone(), people.clone());
        tokio::spawn(async move { burst(&service, &people, "3", 4, 4).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    procs.terminate(first).await;
    writing.await.expect("burst 3");
    burst(&service, &people, "3b", 2, 2).await;
    wait_converged(&pool, &mut procs, "after SIGTERM").await;
    assert_exact(&pool, "after SIGTERM").await;
    for name in NAMES {
        assert_eq!(holder(&procs, name), other, "{name}: the survivor should hold the lease now");
    }
    eprintln!("{}", lease_report(&procs, "after SIGTERM"));

    // A replacement joins and stays idle while the survivor holds both leases.
    let c = procs.spawn("C");
    procs.wait_for_log(c, "projection workers running", true).await;
    burst(&service, &people, "4", 3, 2).await;
    wait_converged(&pool, &mut procs, "with the replacement").await;
    assert_exact(&pool, "with the replacement").await;
    for name in NAMES {
        assert_eq!(
            procs.leases(c, name),
            0,
            "{name}: the replacement took a lease still held:{}",
            procs.logs()
        );
    }

    // Crash the survivor (SIGKILL) in the middle of a burst: the replacement takes over.
    let writing = {
        let (service, people) = (service.clone(), people.clone());
        tokio::spawn(async move { burst(&service, &people, "5", 4, 4).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    procs.kill(other);
    writing.await.expect("burst 5");
    burst(&service, &people, "5b", 2, 2).await;
    wait_converged(&pool, &mut procs, "after SIGKILL").await;
    assert_exact(&pool, "after SIGKILL").await;
    for name in NAMES {
        assert_eq!(holder(&procs, name), c, "{name}: the replacement should hold the lease now");
    }
    eprintln!("{}", lease_report(&procs, "after SIGKILL"));

    // `pettycash projections status` agrees.
    let status = Command::new(env!("CARGO_BIN_EXE_pettycash"))
        .args(["projections", "status"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &procs.url)
        .env("DEBUG", "True")
        .env("NO_COLOR", "1")
        .output()
        .expect("run `pettycash projections status`");
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.status.success(),
        "projections status failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    for name in NAMES {
        assert!(
            text.lines().any(|l| l.starts_with(name) && l.contains(" live ")),
            "status should show {name} live:\n{text}"
        );
    }
    eprintln!("`pettycash projections status`:\n{text}");
    for (i, p) in procs.list.iter().enumerate() {
        let failures = procs.log(i).lines().filter(|l| l.contains("projection worker failed")).count();
        eprintln!("{}: {} ({} worker failures logged)", p.label, p.stderr.display(), failures);
    }

    drop(procs);
    pool.close().await;
    drop_database(&admin, &db).await;
}

/// Workers learn of commits made by another process from its notification (no trigger sends
/// one any more): a `pettycash serve --no-projections` process takes a command over HTTP, a
/// listener in this process hears that process's notification on the events channel (not one
/// of ours: its token differs), and an engine here whose polling is turned down to once an
/// hour applies the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_in_one_process_are_woken_by_commits_in_another() {
    use pettycash_commands::wake;
    use pettycash_projections::{Engine, EngineOptions};

    let admin = admin_options().await;
    let (db, url, pool) = fresh_database(&admin).await;
    let service = CommandService::new(EventStore::new(
        pool.clone(),
        pettycash_domain::integrity::EventKey::derive(pettycash_api::config::DEV_SECRET_KEY),
    ));
    let email = format!("{}@processes.test", Uuid::new_v4().simple());
    service
        .register_user(
            &CommandContext::operator("process test"),
            &email,
            "Admin",
            vec![Role::Admin],
            Some(PASSWORD),
        )
        .await
        .expect("register admin");

    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.expect("listen");
    listener.listen(wake::CHANNEL).await.expect("listen on the events channel");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = EngineOptions { poll_interval: Duration::from_secs(3600), ..EngineOptions::default() };
    let engine =
        tokio::spawn(Engine::new(pool.clone(), pettycash_projections::replayable(), options).run(stop_rx));
    wait_at_end(&pool).await;

    let mut procs = Procs { db: db.clone(), url, list: Vec::new() };
    let server = procs.spawn_command("serve", &["serve", "--no-projections", "--bind", "127.0.0.1:0"]);
    procs.wait_for_log(server, "listening on http://", true).await;
    let stdout = std::fs::read_to_string(&procs.list[server].stdout).unwrap();
    let address = stdout
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the server's address")
        .to_string();
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("http://{address}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("a token").to_string();
    while tokio::time::timeout(Duration::from_millis(50), listener.try_recv()).await.is_ok() {}

    let opened = client
        .post(format!("http://{address}/api/funds/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Opened elsewhere", "currency": "KES", "float": "1000"}))
        .send()
        .await
        .expect("open a fund");
    assert_eq!(opened.status(), reqwest::StatusCode::CREATED);
    let fund: serde_json::Value = opened.json().await.unwrap();

    let heard = tokio::time::timeout(DEADLINE, async {
        loop {
            let n = listener.recv().await.expect("a notification");
            if n.payload() != wake::process_token() {
                return n.payload().to_string();
            }
        }
    })
    .await
    .expect("the server's commit is announced on the events channel");
    assert!(!heard.is_empty(), "it names its process");
    wait_at_end(&pool).await;
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_funds WHERE id = $1::uuid")
        .bind(fund["id"].as_str().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(found, 1, "the engine here applied the other process's event");

    let _ = stop.send(true);
    engine.await.expect("engine");
    drop(procs);
    pool.close().await;
    drop_database(&admin, &db).await;
}

/// Both projections' live checkpoints are at the last event of the store.
async fn wait_at_end(pool: &PgPool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM unnest($1::text[]) AS p(name)
             WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c
                               WHERE c.name = p.name AND c.state = $2
                                 AND c.last_position >= (SELECT coalesce(max(global_position), 0) FROM events))",
        )
        .bind(&NAMES[..])
        .bind(pettycash_projections::CheckpointState::Live)
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the projections never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
