//! Set-up before the load: users of every role the load needs (registered through the real
//! command service, as the operator would), their sessions (signed in over HTTP), funds
//! (opened over the API by an admin) and requisitions in every state (over the API), then a
//! wait until the read models have caught up.

use super::workload::Workload;
use anyhow::{anyhow, bail, Context};
use futures::future::try_join_all;
use pettycash_commands::{CommandContext, CommandService, EventStore};
use pettycash_domain::money::MAX_AMOUNT;
use pettycash_domain::policy::Tiers;
use pettycash_domain::requisition::Status;
use pettycash_domain::Role;
use rand::distributions::{Alphanumeric, DistString};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A signed-in load user.
#[derive(Debug)]
pub struct User {
    pub role: Role,
    pub token: String,
}

/// The load's users by what they do.
pub struct Users {
    pub admin: Arc<User>,
    pub staff: Vec<Arc<User>>,
    /// Holders of each approver role that appears in a chain of the policy.
    pub approvers: BTreeMap<Role, Vec<Arc<User>>>,
    pub all_approvers: Vec<Arc<User>>,
    pub treasury: Vec<Arc<User>>,
    /// Who may read treasury's payment list (treasury, auditor, admin, cfo, fpa, gfm).
    pub payment_readers: Vec<Arc<User>>,
    pub all: Vec<Arc<User>>,
}

/// The label of requisitions seeded pending approval at a later step of their chain.
const LATER_STEP: &str = "pending_approval (later step)";

/// How many users of each kind, funds and seeded requisitions.
pub struct SetupOptions {
    /// The server's event key: the load's users are registered through the command service.
    pub event_key: pettycash_domain::integrity::EventKey,
    pub staff: usize,
    pub per_role: usize,
    pub funds: usize,
    pub seed_per_state: usize,
}

/// Requisition amounts in a fixed cycle of 20 over the policy's tiers: 16 in the first tier,
/// 3 in the second, 1 in the third (fewer tiers: the last one takes the rest), so most need
/// one approval and some need the longer chains.
pub struct Amounts {
    ranges: Vec<(Decimal, Decimal)>,
    turn: AtomicUsize,
}

impl Amounts {
    pub fn new(tiers: &Tiers) -> Self {
        let mut ranges = Vec::new();
        let mut low = Decimal::ZERO;
        for tier in &tiers.0 {
            let high = tier
                .up_to
                .unwrap_or_else(|| (low.max(Decimal::from(1_000)) * Decimal::from(3)).min(MAX_AMOUNT));
            ranges.push((low, high));
            low = high;
        }
        Amounts { ranges, turn: AtomicUsize::new(0) }
    }

    /// Which tier the k-th requisition of the cycle falls into.
    fn tier_of(&self, k: usize) -> usize {
        let tier = match k % 20 {
            0..=15 => 0,
            16..=18 => 1,
            _ => 2,
        };
        tier.min(self.ranges.len().saturating_sub(1))
    }

    /// A whole amount inside tier `tier`, varied by `k`.
    pub fn in_tier(&self, tier: usize, k: usize) -> Decimal {
        let (low, high) = self.ranges[tier.min(self.ranges.len() - 1)];
        let fraction = Decimal::from((k * 7919) % 97 + 1) / Decimal::from(100);
        let amount = (low + (high - low) * fraction).round_dp(0);
        if amount > low && amount <= high && amount > Decimal::ZERO {
            amount
        } else {
            high
        }
    }

    pub fn next(&self) -> Decimal {
        let k = self.turn.fetch_add(1, Ordering::Relaxed);
        self.in_tier(self.tier_of(k), k)
    }

    /// Approvals per requisition over one cycle, for the expected command split.
    pub fn mean_chain_length(&self, tiers: &Tiers) -> f64 {
        let steps: usize = (0..20).map(|k| tiers.0[self.tier_of(k)].chain.len()).sum();
        steps as f64 / 20.0
    }
}

/// What the set-up made, for the report.
pub struct Prepared {
    pub workload: Workload,
    pub tiers: Tiers,
    pub pool: PgPool,
    pub users: usize,
    pub fund_float: Decimal,
    pub seeded: BTreeMap<&'static str, usize>,
    pub events_before_setup: i64,
}

/// Number of events in the store.
pub async fn event_count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?)
}

pub async fn prepare(
    client: reqwest::Client,
    base: &str,
    database_url: &str,
    opts: &SetupOptions,
) -> anyhow::Result<Prepared> {
    let pool = pettycash_api::database::pool(database_url, 4).await?;
    let events_before_setup = event_count(&pool).await?;
    let service = CommandService::new(EventStore::new(pool.clone(), opts.event_key.clone()));
    let tiers = service
        .policy()
        .await
        .map_err(|e| anyhow!("reading the approval policy: {e}"))?
        .state
        .tiers()
        .ok_or_else(|| {
            anyhow!("the load follows a policy given as amount tiers (PUT /api/approval-policy)")
        })?;

    // Who to register: every approver role any chain names, plus staff, treasury, an
    // auditor and an admin.
    let mut chain_roles: Vec<Role> = tiers.0.iter().flat_map(|t| t.chain.iter().copied()).collect();
    chain_roles.sort();
    chain_roles.dedup();
    let mut wanted: Vec<Role> = vec![Role::Admin, Role::Auditor];
    wanted.extend(std::iter::repeat_n(Role::Staff, opts.staff.max(1)));
    for role in chain_roles.iter().copied().chain([Role::Treasury]) {
        wanted.extend(std::iter::repeat_n(role, opts.per_role.max(1)));
    }
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    // The default password policy: an upper-case letter, a lower-case letter and a digit.
    let password = format!("Load-7{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24));
    let ctx = CommandContext::operator("load");
    let registered = try_join_all(wanted.iter().enumerate().map(|(i, role)| {
        let (service, ctx, password) = (&service, &ctx, &password);
        let email = format!("load-{run}-{}-{i}@load.pettycash.local", role.as_str().replace('_', "."));
        async move {
            let name = format!("Load {} {i}", role.as_str().replace('_', " "));
            service
                .register_user(ctx, &email, &name, vec![*role], Some(password))
                .await
                .map_err(|e| anyhow!("registering {email}: {e}"))?;
            anyhow::Ok((email, *role))
        }
    }))
    .await?;

    // One sign-in at a time: each costs the server an argon2 verification, whose memory
    // (19 MiB with the default parameters) the server would otherwise hold for every
    // concurrent sign-in, and which the load is not about.
    let mut logins = Vec::new();
    for (email, role) in registered {
        let body = json!({"email": email, "password": password});
        let (status, body) = call(&client, base, None, Method::POST, "/api/auth/login", Some(body)).await?;
        if status != StatusCode::OK {
            bail!("signing in {email}: {status} {body}");
        }
        let token = body["token"].as_str().context("no token in the login response")?.to_string();
        logins.push(Arc::new(User { role, token }));
    }
    let users = group(logins);

    // Funds with the largest float the service accepts: a run pays out far less.
    let fund_float = MAX_AMOUNT;
    let mut funds = Vec::new();
    for i in 0..opts.funds.max(1) {
        let body = json!({"name": format!("Load fund {i} ({run})"), "currency": "KES", "float": fund_float.to_string()});
        let (status, reply) =
            call(&client, base, Some(&users.admin), Method::POST, "/api/funds/", Some(body)).await?;
        if status != StatusCode::CREATED {
            bail!("opening a fund: {status} {reply}");
        }
        funds.push(id_of(&reply)?);
    }

    let amounts = Amounts::new(&tiers);
    let user_count = users.all.len();
    let workload = Workload::new(client, base.to_string(), users, funds, amounts, &tiers);
    let seeded = seed(&workload, &tiers, opts.seed_per_state).await?;
    Ok(Prepared { workload, tiers, pool, users: user_count, fund_float, seeded, events_before_setup })
}

fn group(users: Vec<Arc<User>>) -> Users {
    let of = |pred: &dyn Fn(Role) -> bool| users.iter().filter(|u| pred(u.role)).cloned().collect::<Vec<_>>();
    let mut approvers: BTreeMap<Role, Vec<Arc<User>>> = BTreeMap::new();
    for u in users.iter().filter(|u| u.role.is_approver()) {
        approvers.entry(u.role).or_default().push(u.clone());
    }
    const PAYMENT_READERS: [Role; 6] =
        [Role::Treasury, Role::Auditor, Role::Admin, Role::Cfo, Role::Fpa, Role::GroupFinanceManager];
    Users {
        admin: of(&|r| r == Role::Admin).remove(0),
        staff: of(&|r| r == Role::Staff),
        all_approvers: of(&|r| r.is_approver()),
        approvers,
        treasury: of(&|r| r == Role::Treasury),
        payment_readers: of(&|r| PAYMENT_READERS.contains(&r)),
        all: users,
    }
}

/// One request with a JSON answer, for the set-up (which stops at the first failure).
async fn call(
    client: &reqwest::Client,
    base: &str,
    user: Option<&User>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = client.request(method.clone(), format!("{base}{path}"));
    if let Some(u) = user {
        req = req.bearer_auth(&u.token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| format!("{method} {base}{path}"))?;
    let status = resp.status();
    let bytes = resp.bytes().await.with_context(|| format!("{method} {base}{path}: reading the body"))?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn id_of(body: &Value) -> anyhow::Result<Uuid> {
    body["id"].as_str().and_then(|s| s.parse().ok()).with_context(|| format!("no id in {body}"))
}

/// Requisitions in every state, `per_state` of each, spread over the funds. They stay out of
/// the load's pipeline, so the lists and the inbox are never empty.
async fn seed(
    w: &Workload,
    tiers: &Tiers,
    per_state: usize,
) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let u = &w.users;
    let multi_step = tiers.0.iter().position(|t| t.chain.len() >= 2);
    let mut seeded = BTreeMap::new();
    let mut k = 0;
    for n in 0..per_state {
        let staff = &u.staff[n % u.staff.len()];
        let treasurer = &u.treasury[n % u.treasury.len()];
        let mut next = |tier: usize| {
            k += 1;
            (w.funds[k % w.funds.len()], w.amounts.in_tier(tier, k))
        };
        let post = |user: &Arc<User>, path: String, body: Value, expect: StatusCode| {
            let user = user.clone();
            async move {
                let (status, reply) =
                    call(&w.client, &w.base, Some(&user), Method::POST, &path, Some(body)).await?;
                if status != expect {
                    bail!("seeding: POST {path}: {status} {reply}");
                }
                anyhow::Ok(reply)
            }
        };
        let create = |(fund, amount): (Uuid, Decimal), submit: bool| {
            let body = json!({"fund_id": fund, "amount": amount.to_string(), "purpose": "Seeded by the load",
                              "payee": "Seed Stationers", "category": "load", "submit": submit});
            post(staff, "/api/requisitions/".into(), body, StatusCode::CREATED)
        };
        // Approves the current step until the requisition has `steps` approvals or is approved.
        let approve = |reply: Value, steps: usize| async move {
            let mut reply = reply;
            for _ in 0..steps {
                let role: Role =
                    reply["current_role"].as_str().and_then(|s| s.parse().ok()).context("no step")?;
                let approver = &u.approvers[&role][0];
                let id = id_of(&reply)?;
                reply = post(approver, format!("/api/requisitions/{id}/approve"), json!({}), StatusCode::OK)
                    .await?;
            }
            anyhow::Ok(reply)
        };
        let first_approver = |reply: &Value| -> anyhow::Result<Arc<User>> {
            let role: Role =
                reply["current_role"].as_str().and_then(|s| s.parse().ok()).context("no step")?;
            Ok(u.approvers[&role][0].clone())
        };

        create(next(0), false).await?;
        *seeded.entry(Status::Draft.as_str()).or_default() += 1;

        create(next(0), true).await?;
        *seeded.entry(Status::PendingApproval.as_str()).or_default() += 1;

        if let Some(tier) = multi_step {
            let r = create(next(tier), true).await?;
            approve(r, 1).await?;
            *seeded.entry(LATER_STEP).or_default() += 1;
        }

        let r = create(next(0), true).await?;
        let id = id_of(&r)?;
        let reason = json!({"reason": "Attach the receipt (seeded by the load)"});
        post(&first_approver(&r)?, format!("/api/requisitions/{id}/request-changes"), reason, StatusCode::OK)
            .await?;
        *seeded.entry(Status::ChangesRequested.as_str()).or_default() += 1;

        let r = create(next(0), true).await?;
        let steps = tiers.0[0].chain.len();
        approve(r, steps).await?;
        *seeded.entry(Status::Approved.as_str()).or_default() += 1;

        let r = create(next(0), true).await?;
        let id = id_of(&r)?;
        approve(r, steps).await?;
        post(
            treasurer,
            "/api/treasury/payments/".into(),
            json!({"requisition_id": id, "method": "cash", "reference": "SEED"}),
            StatusCode::CREATED,
        )
        .await?;
        *seeded.entry(Status::Paid.as_str()).or_default() += 1;

        let r = create(next(0), true).await?;
        let id = id_of(&r)?;
        let reason = json!({"reason": "Not covered (seeded by the load)"});
        post(&first_approver(&r)?, format!("/api/requisitions/{id}/reject"), reason, StatusCode::OK).await?;
        *seeded.entry(Status::Rejected.as_str()).or_default() += 1;

        let r = create(next(0), true).await?;
        let id = id_of(&r)?;
        post(staff, format!("/api/requisitions/{id}/cancel"), json!({"reason": "Seeded"}), StatusCode::OK)
            .await?;
        *seeded.entry(Status::Cancelled.as_str()).or_default() += 1;
    }
    Ok(seeded)
}

/// The server's `/health/` (status and body).
pub async fn health(client: &reqwest::Client, base: &str) -> anyhow::Result<(StatusCode, Value)> {
    call(client, base, None, Method::GET, "/health/", None).await
}

/// Total projection lag (events not yet applied) in a `/health/` body; `None` if it has no
/// projections list.
pub fn projection_lag(health: &Value) -> Option<i64> {
    health["projections"].as_array().map(|ps| ps.iter().map(|p| p["lag_events"].as_i64().unwrap_or(0)).sum())
}

/// Waits (up to `limit`) until `/health/` shows no projection lag. Returns the lag left.
pub async fn wait_for_projections(
    client: &reqwest::Client,
    base: &str,
    limit: Duration,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let (_, body) = health(client, base).await?;
        let lag = projection_lag(&body).unwrap_or(0);
        if lag == 0 || Instant::now() >= deadline {
            return Ok(lag);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
