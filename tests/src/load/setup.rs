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
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A signed-in load user.
#[derive(Debug)]
pub struct User {
    pub id: Uuid,
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
    /// Every signed-in user by id: routing names who may approve a step.
    pub by_id: HashMap<Uuid, Arc<User>>,
}

impl Users {
    /// Who approves the step `reply` (a requisition) waits for: a signed-in user it was routed
    /// to (`current_eligible`), else a holder of its role (unrouted, or nobody signed in).
    pub fn approver_for(&self, role: Role, eligible: &[Uuid], turn: usize) -> Option<Arc<User>> {
        let routed: Vec<&Arc<User>> = eligible.iter().filter_map(|id| self.by_id.get(id)).collect();
        if !routed.is_empty() {
            return Some(routed[turn % routed.len()].clone());
        }
        self.approvers.get(&role).filter(|h| !h.is_empty()).map(|h| h[turn % h.len()].clone())
    }
}

/// The ids of a requisition's `current_eligible` (empty when not routed by name).
pub fn eligible_of(reply: &Value) -> Vec<Uuid> {
    reply["current_eligible"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|i| i.as_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default()
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
    /// The reports' month (`None`: this one).
    pub report_month: Option<pettycash_domain::budget::Month>,
    /// An organisation to build and route through (`None`: unscoped users, as before units).
    pub org: Option<OrgShape>,
}

/// A company of `regions` regions × `branches` branches each × `departments` departments each,
/// with `users` users in all; the load signs in the people of `active` departments (spread
/// over the branches) and the company-wide roles, and its staff are those departments' staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgShape {
    pub regions: usize,
    pub branches: usize,
    pub departments: usize,
    pub users: usize,
    pub active: usize,
}

impl OrgShape {
    /// Parses `RxBxD` (e.g. `5x20x5`).
    pub fn parse(shape: &str, users: usize, active: usize) -> anyhow::Result<Self> {
        let parts: Vec<usize> = shape
            .split('x')
            .map(|p| p.trim().parse::<usize>().ok().filter(|n| *n > 0))
            .collect::<Option<_>>()
            .filter(|p: &Vec<usize>| p.len() == 3)
            .with_context(|| format!("--org {shape:?}: give REGIONSxBRANCHESxDEPARTMENTS, e.g. 5x20x5"))?;
        let departments = parts[0] * parts[1] * parts[2];
        if users < departments * 2 {
            bail!("--org-users {users}: at least two per department ({departments} departments)");
        }
        Ok(OrgShape {
            regions: parts[0],
            branches: parts[1],
            departments: parts[2],
            users,
            active: active.clamp(1, departments),
        })
    }
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

    // Every approver role any chain names.
    let mut chain_roles: Vec<Role> = tiers.0.iter().flat_map(|t| t.chain.iter().copied()).collect();
    chain_roles.sort();
    chain_roles.dedup();
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    // The default password policy: an upper-case letter, a lower-case letter and a digit.
    let password = format!("Load-7{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24));
    let ctx = CommandContext::operator("load");
    let people = People { service: &service, ctx: &ctx, run: &run, password: &password };
    let (logins, fund_unit) = match &opts.org {
        None => {
            // Staff, the chains' approver roles, treasury, an auditor and an admin.
            let mut wanted: Vec<Role> = vec![Role::Admin, Role::Auditor];
            wanted.extend(std::iter::repeat_n(Role::Staff, opts.staff.max(1)));
            for role in chain_roles.iter().copied().chain([Role::Treasury]) {
                wanted.extend(std::iter::repeat_n(role, opts.per_role.max(1)));
            }
            let registered = try_join_all(
                wanted.iter().enumerate().map(|(i, role)| people.register(i, *role, None, true)),
            )
            .await?;
            let mut logins = Vec::new();
            for person in registered.into_iter().flatten() {
                logins.push(sign_in(&client, base, person, &password).await?);
            }
            // The admin (of no unit) waives payment codes.
            let admin = logins.iter().find(|u| u.role == Role::Admin).context("the admin")?;
            waive_payment_codes(&client, base, admin).await?;
            (logins, None)
        }
        Some(shape) => organise(&client, base, &people, shape, &chain_roles, opts.per_role).await?,
    };
    let users = group(logins);

    // Funds with the largest float the service accepts: a run pays out far less.
    let fund_float = MAX_AMOUNT;
    let mut funds = Vec::new();
    for i in 0..opts.funds.max(1) {
        let body = json!({"name": format!("Load fund {i} ({run})"), "currency": "KES",
                          "float": fund_float.to_string(), "unit_id": fund_unit});
        let (status, reply) =
            call(&client, base, Some(&users.admin), Method::POST, "/api/funds/", Some(body)).await?;
        if status != StatusCode::CREATED {
            bail!("opening a fund: {status} {reply}");
        }
        funds.push(id_of(&reply)?);
    }

    let amounts = Amounts::new(&tiers);
    let user_count = users.all.len();
    let mut workload = Workload::new(client, base.to_string(), users, funds, amounts, &tiers, pool.clone());
    if let Some(month) = opts.report_month {
        workload.set_report_month(month);
    }
    let seeded = seed(&workload, &tiers, opts.seed_per_state).await?;
    // The cash-book report reads the busiest funds the readers see (on a generated store, its
    // own funds with a year of history), as well as the load's.
    let busiest: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM rm_funds WHERE company_id IS NOT DISTINCT FROM $1
         ORDER BY disbursements DESC, id LIMIT 20",
    )
    .bind(fund_unit)
    .fetch_all(&pool)
    .await
    .context("reading the funds the reports read")?;
    workload.report_funds = busiest.into_iter().chain(workload.funds.iter().copied()).collect();
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
        by_id: users.iter().map(|u| (u.id, u.clone())).collect(),
        all: users,
    }
}

/// Registers the load's people through the command service, as the operator would.
struct People<'a> {
    service: &'a CommandService,
    ctx: &'a CommandContext,
    run: &'a str,
    password: &'a str,
}

/// Someone registered: who to sign in as.
struct Registered {
    email: String,
    role: Role,
    id: Uuid,
}

impl People<'_> {
    /// Registers the `i`-th person with `role` in `unit`; with a password (and returned, to be
    /// signed in) when `signs_in`, else without one (they only fill the directory routing
    /// reads: hashing 2,000 passwords would cost the set-up minutes of argon2).
    async fn register(
        &self,
        i: usize,
        role: Role,
        unit: Option<Uuid>,
        signs_in: bool,
    ) -> anyhow::Result<Option<Registered>> {
        let email = format!("load-{}-{}-{i}@load.pettycash.local", self.run, role.as_str().replace('_', "."));
        let name = format!("Load {} {i}", role.as_str().replace('_', " "));
        let password = signs_in.then_some(self.password);
        let out = self
            .service
            .register_user_in(self.ctx, &email, &name, vec![role], password, unit)
            .await
            .map_err(|e| anyhow!("registering {email}: {e}"))?;
        Ok(signs_in.then_some(Registered { email, role, id: out.value.id }))
    }
}

/// Signs one person in over HTTP. One sign-in at a time: each costs the server an argon2
/// verification, whose memory (19 MiB with the default parameters) the server would otherwise
/// hold for every concurrent sign-in, and which the load is not about.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    person: Registered,
    password: &str,
) -> anyhow::Result<Arc<User>> {
    let body = json!({"email": person.email, "password": password});
    let (status, body) = call(client, base, None, Method::POST, "/api/auth/login", Some(body)).await?;
    if status != StatusCode::OK {
        bail!("signing in {}: {status} {body}", person.email);
    }
    let token = body["token"].as_str().context("no token in the login response")?.to_string();
    Ok(Arc::new(User { id: person.id, role: person.role, token }))
}

/// Builds the organisation over the API (company, regions, branches, departments, as an admin
/// of no unit) and registers its people: in every department a department head and staff, a
/// branch manager per branch, a regional manager per region, and at the company `per_role`
/// holders of each company-wide chain role and of treasury, an auditor and an admin — `users`
/// in all (and the admin of no unit who built it). Signs in the company-wide people and everyone of `active` departments spread over
/// the branches. Returns them and the company (the funds' unit).
async fn organise(
    client: &reqwest::Client,
    base: &str,
    people: &People<'_>,
    shape: &OrgShape,
    chain_roles: &[Role],
    per_role: usize,
) -> anyhow::Result<(Vec<Arc<User>>, Option<Uuid>)> {
    let password = people.password;
    let admin = people.register(0, Role::Admin, None, true).await?.context("the admin")?;
    let admin = sign_in(client, base, admin, password).await?;
    let mut code = 0usize;
    let mut unit = |kind: &'static str, name: String, parent: Option<Uuid>| {
        code += 1;
        let body = json!({"kind": kind, "name": name, "code": format!("L{}-{code}", people.run), "parent_id": parent});
        let admin = admin.clone();
        async move {
            let (status, reply) =
                call(client, base, Some(&admin), Method::POST, "/api/org/units/", Some(body)).await?;
            if status != StatusCode::CREATED {
                bail!("opening a {kind}: {status} {reply}");
            }
            id_of(&reply)
        }
    };
    let company = unit("company", format!("Load company {}", people.run), None).await?;
    let mut departments = Vec::new();
    let mut branches = Vec::new();
    let mut regions = Vec::new();
    for r in 0..shape.regions {
        let region = unit("region", format!("Region {r}"), Some(company)).await?;
        regions.push(region);
        for b in 0..shape.branches {
            let branch = unit("branch", format!("Branch {r}.{b}"), Some(region)).await?;
            branches.push(branch);
            for d in 0..shape.departments {
                departments.push(unit("department", format!("Department {r}.{b}.{d}"), Some(branch)).await?);
            }
        }
    }

    // Who: (role, unit, signs in).
    // The company's own admin opens its funds (an admin of no unit opens none in a company).
    let mut wanted: Vec<(Role, Uuid, bool)> =
        vec![(Role::Admin, company, true), (Role::Auditor, company, true)];
    let company_wide = chain_roles
        .iter()
        .copied()
        .filter(|r| !matches!(r, Role::DepartmentHead | Role::BranchManager | Role::RegionalManager));
    for role in company_wide.chain([Role::Treasury]) {
        wanted.extend(std::iter::repeat_n((role, company, true), per_role.max(1)));
    }
    let active_every = (departments.len() / shape.active).max(1);
    let active = |i: usize| i.is_multiple_of(active_every) && i / active_every < shape.active;
    for (i, branch) in branches.iter().enumerate() {
        wanted.push((Role::BranchManager, *branch, active(i * shape.departments)));
    }
    for region in &regions {
        wanted.push((Role::RegionalManager, *region, true));
    }
    let rest = shape.users.saturating_sub(wanted.len() + 1);
    let per_department = (rest + departments.len() / 2) / departments.len();
    for (i, department) in departments.iter().enumerate() {
        wanted.push((Role::DepartmentHead, *department, active(i)));
        wanted.extend(std::iter::repeat_n((Role::Staff, *department, active(i)), per_department.max(2) - 1));
    }
    let mut registered = Vec::new();
    for chunk in wanted.chunks(64) {
        let base_i = registered.len() + 1;
        let batch =
            try_join_all(chunk.iter().enumerate().map(|(j, (role, unit, signs_in))| {
                people.register(base_i + j, *role, Some(*unit), *signs_in)
            }))
            .await?;
        registered.extend(batch);
    }
    eprintln!(
        "set-up: {} units, {} users registered ({} to sign in)",
        1 + regions.len() + branches.len() + departments.len(),
        registered.len() + 1,
        registered.iter().flatten().count()
    );
    // The admin of no unit built the organisation and waives payment codes.
    waive_payment_codes(client, base, &admin).await?;
    drop(admin);
    let mut logins = Vec::new();
    for person in registered.into_iter().flatten() {
        logins.push(sign_in(client, base, person, password).await?);
    }
    Ok((logins, Some(company)))
}

/// One request with a JSON answer, for the set-up (which stops at the first failure).
/// The load pays cash without one-time codes: `admin`, an admin of no unit, sets
/// `payment_code_waiver_below` to its largest value, which waives the code for every cash
/// payment. Mobile-money payments always need a code: the load asks for it and reads it in the
/// mail outbox (its server sends no mail).
async fn waive_payment_codes(client: &reqwest::Client, base: &str, admin: &User) -> anyhow::Result<()> {
    let body = json!({"value": pettycash_domain::settings::CODE_WAIVER_MAX});
    let (status, reply) =
        call(client, base, Some(admin), Method::PUT, "/api/settings/payment_code_waiver_below", Some(body))
            .await?;
    if status != StatusCode::OK {
        bail!("waiving payment codes for the load: {status} {reply}");
    }
    Ok(())
}

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
        let first_approver = |reply: &Value| -> anyhow::Result<Arc<User>> {
            let role: Role =
                reply["current_role"].as_str().and_then(|s| s.parse().ok()).context("no step")?;
            u.approver_for(role, &eligible_of(reply), 0)
                .with_context(|| format!("nobody signed in may approve {reply}"))
        };
        // Approves the current step until the requisition has `steps` approvals or is approved.
        let approve = |reply: Value, steps: usize| async move {
            let mut reply = reply;
            for _ in 0..steps {
                let approver = first_approver(&reply)?;
                let id = id_of(&reply)?;
                reply = post(&approver, format!("/api/requisitions/{id}/approve"), json!({}), StatusCode::OK)
                    .await?;
            }
            anyhow::Ok(reply)
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

        // Paid by mobile money through the provider: a code (read in the outbox), then the
        // payment (202 executing; the provider's callback pays it).
        let r = create(next(0), true).await?;
        let id = id_of(&r)?;
        approve(r, steps).await?;
        post(
            treasurer,
            "/api/treasury/payments/code".into(),
            json!({"requisition_id": id, "method": "mobile_money"}),
            StatusCode::CREATED,
        )
        .await?;
        let code = w.queued_code(id).await.map_err(|e| anyhow!("seeding a mobile-money payment: {e}"))?;
        let reply = post(
            treasurer,
            "/api/treasury/payments/".into(),
            json!({"requisition_id": id, "method": "mobile_money", "destination": "0712345678",
                   "reference": "SEED", "code": code}),
            StatusCode::ACCEPTED,
        )
        .await?;
        w.provider_payments.lock().unwrap_or_else(|p| p.into_inner()).push((id_of(&reply)?, false));
        *seeded.entry("paid (mobile money)").or_default() += 1;

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
