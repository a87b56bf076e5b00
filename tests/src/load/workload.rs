//! What the load sends: the endpoints, the mixes (weighted round robin, so that even a short
//! run reaches every endpoint of its mix), the command pipeline (approvals and payments act
//! only on requisitions that are really awaiting them) and the requests themselves.

use super::setup::{Amounts, User, Users};
use pettycash_domain::policy::Tiers;
use pettycash_domain::requisition::Status;
use pettycash_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// One endpoint as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Health,
    Requisitions,
    Payments,
    Dashboard,
    Ledger,
    Approvals,
    Fund,
    Advances,
    Budgets,
    Payment,
    CashBookReport,
    SpendingReport,
    TransactionsCsv,
    DashboardPage,
    RequisitionsPage,
    Create,
    Approve,
    Pay,
    PaymentCode,
    PayMobile,
}

impl Endpoint {
    pub const ALL: [Endpoint; 20] = [
        Endpoint::Health,
        Endpoint::Requisitions,
        Endpoint::Payments,
        Endpoint::Dashboard,
        Endpoint::Ledger,
        Endpoint::Approvals,
        Endpoint::Fund,
        Endpoint::Advances,
        Endpoint::Budgets,
        Endpoint::Payment,
        Endpoint::CashBookReport,
        Endpoint::SpendingReport,
        Endpoint::TransactionsCsv,
        Endpoint::DashboardPage,
        Endpoint::RequisitionsPage,
        Endpoint::Create,
        Endpoint::Approve,
        Endpoint::Pay,
        Endpoint::PaymentCode,
        Endpoint::PayMobile,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Health => "GET /health/",
            Endpoint::Requisitions => "GET /api/requisitions/",
            Endpoint::Payments => "GET /api/treasury/payments/",
            Endpoint::Dashboard => "GET /api/dashboard/",
            Endpoint::Ledger => "GET /api/funds/{id}/ledger",
            Endpoint::Approvals => "GET /api/approvals/",
            Endpoint::Fund => "GET /api/funds/{id}",
            Endpoint::Advances => "GET /api/advances/",
            Endpoint::Budgets => "GET /api/budgets?month=",
            Endpoint::Payment => "GET /api/treasury/payments/{id}",
            Endpoint::CashBookReport => "GET /api/reports/cash-book?fund_id=&period= (json)",
            Endpoint::SpendingReport => "GET /api/reports/spending?period= (json)",
            Endpoint::TransactionsCsv => "GET /api/reports/transactions?from=&to=&format=csv (a year)",
            Endpoint::DashboardPage => "GET /dashboard/ (page)",
            Endpoint::RequisitionsPage => "GET /requisitions/ (page)",
            Endpoint::Create => "POST /api/requisitions/ (create+submit)",
            Endpoint::Approve => "POST /api/requisitions/{id}/approve",
            Endpoint::Pay => "POST /api/treasury/payments/ (pay)",
            Endpoint::PaymentCode => "POST /api/treasury/payments/code (+ outbox read)",
            Endpoint::PayMobile => "POST /api/treasury/payments/ (mobile money: payment execution)",
        }
    }

    pub fn is_command(self) -> bool {
        matches!(
            self,
            Endpoint::Create
                | Endpoint::Approve
                | Endpoint::Pay
                | Endpoint::PaymentCode
                | Endpoint::PayMobile
        )
    }
}

/// Which workload `--mix` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MixKind {
    /// Mostly reads (75 %), plus the command pipeline (25 %).
    Mixed,
    /// Only the command pipeline: create+submit, approve, pay.
    Commands,
    /// Only reads.
    Reads,
}

impl MixKind {
    pub fn name(self) -> &'static str {
        match self {
            MixKind::Mixed => "mixed",
            MixKind::Commands => "commands",
            MixKind::Reads => "reads",
        }
    }
}

/// One slot of a mix: a given read, or the next step of the command pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Read(Endpoint),
    Command,
}

/// Read weights (out of 18) shared by `mixed` and `reads`. The reports finance users read
/// (issue #15): a month's cash book of a fund and a month's spending as JSON; every
/// `csv_every`th spending slot (the first one included; [`CSV_EVERY`] unless `--csv-every`
/// says otherwise, 0 never) is instead a year of transactions as CSV, the heavy export finance
/// runs now and then. People at a browser read the dashboard and the requisitions list as
/// pages (issue #16): one of the dashboard's two slots and one of the list's three.
const READ_WEIGHTS: [(Endpoint, i64); 14] = [
    (Endpoint::Health, 1),
    (Endpoint::Requisitions, 2),
    (Endpoint::RequisitionsPage, 1),
    (Endpoint::Payments, 1),
    (Endpoint::Dashboard, 1),
    (Endpoint::DashboardPage, 1),
    (Endpoint::Ledger, 1),
    (Endpoint::Approvals, 2),
    (Endpoint::Fund, 2),
    (Endpoint::Advances, 1),
    (Endpoint::Budgets, 1),
    (Endpoint::Payment, 1),
    (Endpoint::CashBookReport, 2),
    (Endpoint::SpendingReport, 1),
];

/// One spending-report slot in this many sends the year's transactions CSV instead (the
/// default of `--csv-every`).
pub const CSV_EVERY: usize = 20;

/// In `mixed`, command slots against the 18 read slots: 6 of 24, 25 %.
const COMMAND_WEIGHT: i64 = 6;

/// A mix: slots with integer weights, handed out by smooth weighted round robin (the order
/// nginx uses), so every slot comes up within one cycle of the total weight.
pub struct Mix {
    slots: Vec<(Slot, i64)>,
    current: Mutex<Vec<i64>>,
    /// One spending slot in this many is the year's CSV (0: none).
    csv_every: usize,
    /// Spending-report slots so far.
    spending_turn: AtomicUsize,
}

impl Mix {
    pub fn new(kind: MixKind) -> Self {
        let reads = READ_WEIGHTS.iter().map(|&(e, w)| (Slot::Read(e), w));
        let slots: Vec<(Slot, i64)> = match kind {
            MixKind::Mixed => reads.chain([(Slot::Command, COMMAND_WEIGHT)]).collect(),
            MixKind::Commands => vec![(Slot::Command, 1)],
            MixKind::Reads => reads.collect(),
        };
        let current = Mutex::new(vec![0; slots.len()]);
        Mix { slots, current, csv_every: CSV_EVERY, spending_turn: AtomicUsize::new(0) }
    }

    /// One spending-report slot in `n` sends the year's transactions CSV instead (0: never).
    pub fn with_csv_every(mut self, n: usize) -> Self {
        self.csv_every = n;
        self
    }

    pub fn next(&self) -> Slot {
        let total: i64 = self.slots.iter().map(|s| s.1).sum();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut best = 0;
        for (i, (_, weight)) in self.slots.iter().enumerate() {
            current[i] += weight;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        match self.slots[best].0 {
            Slot::Read(Endpoint::SpendingReport)
                if self.csv_every > 0
                    && self.spending_turn.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.csv_every) =>
            {
                Slot::Read(Endpoint::TransactionsCsv)
            }
            slot => slot,
        }
    }

    /// The endpoints this mix sends requests to, in report order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        Endpoint::ALL
            .into_iter()
            .filter(|e| {
                self.slots.iter().any(|(s, _)| match s {
                    Slot::Read(Endpoint::SpendingReport) => {
                        *e == Endpoint::SpendingReport
                            || (*e == Endpoint::TransactionsCsv && self.csv_every > 0)
                    }
                    Slot::Read(r) => r == e,
                    Slot::Command => e.is_command(),
                })
            })
            .collect()
    }

    /// Each endpoint's expected share of the requests, in percent. Commands split as the
    /// pipeline does in the long run: per requisition one create, one approval per step of
    /// its chain, and its payment: every other one in cash (one request), the others by mobile
    /// money (a code request, then the payment).
    pub fn proportions(&self, steps_per_requisition: f64) -> Vec<(Endpoint, f64)> {
        let total: i64 = self.slots.iter().map(|s| s.1).sum();
        let mut out = Vec::new();
        for (slot, weight) in &self.slots {
            let share = 100.0 * *weight as f64 / total as f64;
            match slot {
                Slot::Read(Endpoint::SpendingReport) => {
                    let csv = if self.csv_every == 0 { 0.0 } else { share / self.csv_every as f64 };
                    out.push((Endpoint::SpendingReport, share - csv));
                    out.push((Endpoint::TransactionsCsv, csv));
                }
                Slot::Read(e) => out.push((*e, share)),
                Slot::Command => {
                    let per = 2.5 + steps_per_requisition;
                    out.push((Endpoint::Create, share / per));
                    out.push((Endpoint::Approve, share * steps_per_requisition / per));
                    out.push((Endpoint::Pay, share * 0.5 / per));
                    out.push((Endpoint::PaymentCode, share * 0.5 / per));
                    out.push((Endpoint::PayMobile, share * 0.5 / per));
                }
            }
        }
        out.sort_by_key(|(e, _)| *e);
        out
    }
}

/// How a response counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Ok,
    /// An expected business refusal (409: invalid state, not approved, already paid,
    /// insufficient funds, concurrent change), with its error code.
    Refused(String),
    /// Anything else: other non-2xx statuses, transport errors, timeouts, unexpected bodies,
    /// panics. Carries a message for the report.
    Error(String),
}

/// The next command step for the pipeline.
#[derive(Debug, Clone)]
enum Step {
    Create,
    /// The step's role, the requisition, and who it was routed to (`current_eligible`).
    Approve(Role, Uuid, Vec<Uuid>),
    /// Pay in cash.
    Pay(Uuid),
    /// Ask for the code of a mobile-money payment.
    Code(Uuid),
    /// Pay by mobile money: who asked for the code (it is bound to them) and the code.
    PayMobile(Uuid, Arc<User>, String),
}

#[derive(Default)]
struct Queues {
    approve: BTreeMap<Role, VecDeque<(Uuid, Vec<Uuid>)>>,
    pay: VecDeque<Uuid>,
    /// Approved requisitions whose code was mailed, with the payer and the code.
    mobile: VecDeque<(Uuid, Arc<User>, String)>,
    /// Payments taken from `pay` so far: every other one goes by mobile money.
    payments: usize,
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Step::Create, Step::Create) => true,
            (Step::Approve(r, i, e), Step::Approve(r2, i2, e2)) => r == r2 && i == i2 && e == e2,
            (Step::Pay(a), Step::Pay(b)) | (Step::Code(a), Step::Code(b)) => a == b,
            (Step::PayMobile(a, u, c), Step::PayMobile(b, v, d)) => a == b && u.id == v.id && c == d,
            _ => false,
        }
    }
}

impl Eq for Step {}

/// Requisitions created by the load, by what they are waiting for. A step is taken out when
/// its command is sent and the requisition goes back in (awaiting its next step) only when
/// the command succeeded, so no two commands act on one requisition at once.
pub struct Pipeline {
    queues: Mutex<Queues>,
    /// Approver roles, the ones that come latest in a chain first: finishing work in flight
    /// first keeps the queues short.
    downstream_first: Vec<Role>,
}

impl Pipeline {
    pub fn new(tiers: &Tiers) -> Self {
        let mut depth: BTreeMap<Role, usize> = BTreeMap::new();
        for tier in &tiers.0 {
            for (i, role) in tier.chain.iter().enumerate() {
                let d = depth.entry(*role).or_default();
                *d = (*d).max(i);
            }
        }
        let mut downstream_first: Vec<Role> = depth.keys().copied().collect();
        downstream_first.sort_by_key(|r| std::cmp::Reverse(depth[r]));
        Pipeline { queues: Mutex::new(Queues::default()), downstream_first }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pay what has its code, else pay what is approved (in cash or by asking for a mobile-money
    /// code, in turn), else approve what waits (latest steps first), else create.
    fn next(&self) -> Step {
        let mut q = self.lock();
        if let Some((id, payer, code)) = q.mobile.pop_front() {
            return Step::PayMobile(id, payer, code);
        }
        if let Some(id) = q.pay.pop_front() {
            q.payments += 1;
            return if q.payments.is_multiple_of(2) { Step::Code(id) } else { Step::Pay(id) };
        }
        for role in &self.downstream_first {
            if let Some((id, eligible)) = q.approve.get_mut(role).and_then(VecDeque::pop_front) {
                return Step::Approve(*role, id, eligible);
            }
        }
        Step::Create
    }

    /// Files a requisition by the state a successful command left it in. `Err` when the body
    /// is not a requisition in a state the load expects.
    fn advance(&self, body: &Value) -> Result<(), String> {
        let id: Uuid = body["id"].as_str().and_then(|s| s.parse().ok()).ok_or("no id in the response")?;
        match body["status"].as_str().and_then(|s| s.parse::<Status>().ok()) {
            Some(Status::PendingApproval) => {
                let role: Role = body["current_role"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or("pending_approval without a current_role")?;
                let eligible = super::setup::eligible_of(body);
                self.lock().approve.entry(role).or_default().push_back((id, eligible));
                Ok(())
            }
            Some(Status::Approved) => {
                self.lock().pay.push_back(id);
                Ok(())
            }
            other => Err(format!("unexpected status {other:?} after the command")),
        }
    }

    /// A mobile-money code arrived for `id` (asked for by `payer`).
    fn coded(&self, id: Uuid, payer: Arc<User>, code: String) {
        self.lock().mobile.push_back((id, payer, code));
    }

    /// Requisitions waiting for an approval and for payment.
    pub fn backlog(&self) -> (usize, usize) {
        let q = self.lock();
        (q.approve.values().map(VecDeque::len).sum(), q.pay.len() + q.mobile.len())
    }
}

/// A request decided on (endpoint, user, target), not sent yet.
pub enum Planned {
    Health,
    Requisitions(Arc<User>),
    Payments(Arc<User>),
    Dashboard(Arc<User>),
    Ledger(Arc<User>, Uuid),
    Approvals(Arc<User>),
    Fund(Arc<User>, Uuid),
    Advances(Arc<User>),
    Budgets(Arc<User>),
    Payment(Arc<User>, Uuid),
    CashBookReport(Arc<User>, Uuid),
    SpendingReport(Arc<User>),
    TransactionsCsv(Arc<User>),
    DashboardPage(Arc<User>),
    RequisitionsPage(Arc<User>),
    Create(Arc<User>, Uuid, String),
    Approve(Arc<User>, Uuid),
    Pay(Arc<User>, Uuid),
    PaymentCode(Arc<User>, Uuid),
    PayMobile(Arc<User>, Uuid, String),
}

impl Planned {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Planned::Health => Endpoint::Health,
            Planned::Requisitions(_) => Endpoint::Requisitions,
            Planned::Payments(_) => Endpoint::Payments,
            Planned::Dashboard(_) => Endpoint::Dashboard,
            Planned::Ledger(..) => Endpoint::Ledger,
            Planned::Approvals(_) => Endpoint::Approvals,
            Planned::Fund(..) => Endpoint::Fund,
            Planned::Advances(_) => Endpoint::Advances,
            Planned::Budgets(_) => Endpoint::Budgets,
            Planned::Payment(..) => Endpoint::Payment,
            Planned::CashBookReport(..) => Endpoint::CashBookReport,
            Planned::SpendingReport(_) => Endpoint::SpendingReport,
            Planned::TransactionsCsv(_) => Endpoint::TransactionsCsv,
            Planned::DashboardPage(_) => Endpoint::DashboardPage,
            Planned::RequisitionsPage(_) => Endpoint::RequisitionsPage,
            Planned::Create(..) => Endpoint::Create,
            Planned::Approve(..) => Endpoint::Approve,
            Planned::Pay(..) => Endpoint::Pay,
            Planned::PaymentCode(..) => Endpoint::PaymentCode,
            Planned::PayMobile(..) => Endpoint::PayMobile,
        }
    }
}

/// Everything a request needs: the client, the server, the users, the funds, the pipeline.
pub struct Workload {
    pub client: reqwest::Client,
    pub base: String,
    pub users: Users,
    pub funds: Vec<Uuid>,
    pub amounts: Amounts,
    pub pipeline: Pipeline,
    /// The server's database: the load reads its mobile-money codes in the mail outbox.
    pub pool: sqlx::PgPool,
    /// Payments through the provider: (id, started during the load rather than the set-up).
    pub provider_payments: Mutex<Vec<(Uuid, bool)>>,
    /// The month the budget report is read for.
    pub month: String,
    /// The reports' month (`YYYY-MM`, `--report-month`; default this one).
    pub report_month: String,
    /// The transactions CSV's range: the twelve months ending with `report_month`
    /// (`YYYY-MM-DD`, `to` inclusive).
    pub year: (String, String),
    /// The funds whose cash book is read (the load's and the busiest the readers see).
    pub report_funds: Vec<Uuid>,
    turn: AtomicUsize,
}

fn pick<T: Clone>(items: &[T], turn: usize) -> T {
    items[turn % items.len()].clone()
}

impl Workload {
    pub fn new(
        client: reqwest::Client,
        base: String,
        users: Users,
        funds: Vec<Uuid>,
        amounts: Amounts,
        tiers: &Tiers,
        pool: sqlx::PgPool,
    ) -> Self {
        Workload {
            client,
            base,
            users,
            funds,
            amounts,
            pipeline: Pipeline::new(tiers),
            pool,
            provider_payments: Mutex::new(Vec::new()),
            month: chrono::Utc::now().format("%Y-%m").to_string(),
            report_month: String::new(),
            year: (String::new(), String::new()),
            report_funds: Vec::new(),
            turn: AtomicUsize::new(0),
        }
        .with_report_month(pettycash_domain::budget::Month::of(chrono::Utc::now()))
    }

    fn with_report_month(mut self, month: pettycash_domain::budget::Month) -> Self {
        self.set_report_month(month);
        self
    }

    /// The month the reports read, and the CSV's twelve months ending with it.
    pub fn set_report_month(&mut self, month: pettycash_domain::budget::Month) {
        let text = month.to_string();
        let first = chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").unwrap_or_default();
        let next = first + chrono::Months::new(1);
        let from = next - chrono::Months::new(12);
        self.year = (from.to_string(), (next - chrono::Days::new(1)).to_string());
        self.report_month = text;
    }

    /// A payment through the provider to read (`None` before the first).
    fn provider_payment(&self, turn: usize) -> Option<Uuid> {
        let payments = self.provider_payments.lock().unwrap_or_else(|p| p.into_inner());
        (!payments.is_empty()).then(|| payments[turn % payments.len()].0)
    }

    /// The code of the latest payment code mail about requisition `id` waiting in the outbox
    /// (the load's server sends no mail: `EMAIL_HOST` unset, `DEBUG` off).
    pub async fn queued_code(&self, id: Uuid) -> Result<String, String> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body_text FROM mail_outbox
             WHERE category = 'payment_code' AND strpos(body_text, $1) > 0 ORDER BY id DESC LIMIT 1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
        let body =
            body.ok_or("no payment code mail in the outbox (run the server without EMAIL_HOST, DEBUG off)")?;
        crate::payment_code_in(&body).ok_or_else(|| "no code in the payment code mail (sent already?)".into())
    }

    /// Chooses the request for a slot: who sends it and about what. Readers and targets
    /// rotate; commands take the pipeline's next step.
    pub fn plan(&self, slot: Slot) -> Planned {
        let t = self.turn.fetch_add(1, Ordering::Relaxed);
        let u = &self.users;
        match slot {
            Slot::Read(Endpoint::Health) => Planned::Health,
            Slot::Read(Endpoint::Requisitions) => Planned::Requisitions(pick(&u.all, t)),
            Slot::Read(Endpoint::Payments) => Planned::Payments(pick(&u.payment_readers, t)),
            Slot::Read(Endpoint::Dashboard) => Planned::Dashboard(pick(&u.all, t)),
            Slot::Read(Endpoint::DashboardPage) => Planned::DashboardPage(pick(&u.all, t)),
            Slot::Read(Endpoint::RequisitionsPage) => Planned::RequisitionsPage(pick(&u.all, t)),
            Slot::Read(Endpoint::Ledger) => Planned::Ledger(pick(&u.all, t), pick(&self.funds, t / 7)),
            Slot::Read(Endpoint::Approvals) => Planned::Approvals(pick(&u.all_approvers, t)),
            Slot::Read(Endpoint::Fund) => Planned::Fund(pick(&u.all, t), pick(&self.funds, t / 5)),
            Slot::Read(Endpoint::Advances) => Planned::Advances(pick(&u.all, t)),
            Slot::Read(Endpoint::Budgets) => Planned::Budgets(pick(&u.payment_readers, t)),
            // Before the first payment through the provider: the list of payments.
            Slot::Read(Endpoint::Payment) => match self.provider_payment(t / 3) {
                Some(id) => Planned::Payment(pick(&u.payment_readers, t), id),
                None => Planned::Payments(pick(&u.payment_readers, t)),
            },
            Slot::Read(Endpoint::CashBookReport) => {
                let funds = if self.report_funds.is_empty() { &self.funds } else { &self.report_funds };
                Planned::CashBookReport(pick(&u.payment_readers, t), pick(funds, t / 11))
            }
            Slot::Read(Endpoint::SpendingReport) => Planned::SpendingReport(pick(&u.payment_readers, t)),
            Slot::Read(Endpoint::TransactionsCsv) => Planned::TransactionsCsv(pick(&u.payment_readers, t)),
            Slot::Read(_) | Slot::Command => match self.pipeline.next() {
                Step::Create => Planned::Create(
                    pick(&u.staff, t),
                    pick(&self.funds, t / 3),
                    self.amounts.next().to_string(),
                ),
                Step::Approve(role, id, eligible) => match u.approver_for(role, &eligible, t) {
                    Some(approver) => Planned::Approve(approver, id),
                    // No user of this role (the policy changed during the run): the approve is
                    // sent by an approver without it and counted as the error it gets.
                    None => Planned::Approve(pick(&u.all_approvers, t), id),
                },
                Step::Pay(id) => Planned::Pay(pick(&u.treasury, t), id),
                Step::Code(id) => Planned::PaymentCode(pick(&u.treasury, t), id),
                Step::PayMobile(id, payer, code) => Planned::PayMobile(payer, id, code),
            },
        }
    }

    /// Sends the request and classifies the response; successful commands move their
    /// requisition along the pipeline.
    pub async fn perform(&self, planned: &Planned) -> Class {
        match planned {
            Planned::Health => self.read(None, "/health/".into()).await,
            Planned::Requisitions(user) => self.read(Some(user), "/api/requisitions/".into()).await,
            Planned::Payments(user) => self.read(Some(user), "/api/treasury/payments/".into()).await,
            Planned::Dashboard(user) => self.read(Some(user), "/api/dashboard/".into()).await,
            Planned::DashboardPage(user) => self.page(user, "/dashboard/").await,
            Planned::RequisitionsPage(user) => self.page(user, "/requisitions/").await,
            Planned::Ledger(user, fund) => self.read(Some(user), format!("/api/funds/{fund}/ledger")).await,
            Planned::Approvals(user) => self.read(Some(user), "/api/approvals/".into()).await,
            Planned::Fund(user, fund) => self.read(Some(user), format!("/api/funds/{fund}")).await,
            Planned::Advances(user) => self.read(Some(user), "/api/advances/".into()).await,
            Planned::Budgets(user) => {
                self.read(Some(user), format!("/api/budgets?month={}", self.month)).await
            }
            Planned::Payment(user, id) => self.read(Some(user), format!("/api/treasury/payments/{id}")).await,
            Planned::CashBookReport(user, fund) => {
                let path =
                    format!("/api/reports/cash-book?fund_id={fund}&period={}&format=json", self.report_month);
                self.read(Some(user), path).await
            }
            Planned::SpendingReport(user) => {
                let path = format!("/api/reports/spending?period={}&format=json", self.report_month);
                self.read(Some(user), path).await
            }
            Planned::TransactionsCsv(user) => {
                let (from, to) = &self.year;
                self.read(Some(user), format!("/api/reports/transactions?from={from}&to={to}&format=csv"))
                    .await
            }
            Planned::Create(user, fund, amount) => {
                let body = json!({
                    "fund_id": fund,
                    "amount": amount,
                    "purpose": "Load test purchase",
                    "payee": "Load Supplies Ltd",
                    "category": "load",
                    "submit": true,
                });
                self.command(user, "/api/requisitions/".into(), body, StatusCode::CREATED, true).await
            }
            Planned::Approve(user, id) => {
                self.command(user, format!("/api/requisitions/{id}/approve"), json!({}), StatusCode::OK, true)
                    .await
            }
            Planned::Pay(user, id) => {
                let body = json!({"requisition_id": id, "method": "cash", "reference": "LOAD"});
                self.command(user, "/api/treasury/payments/".into(), body, StatusCode::CREATED, false).await
            }
            Planned::PaymentCode(user, id) => {
                let body = json!({"requisition_id": id, "method": "mobile_money"});
                let class = self
                    .command(user, "/api/treasury/payments/code".into(), body, StatusCode::CREATED, false)
                    .await;
                if class != Class::Ok {
                    return class;
                }
                match self.queued_code(*id).await {
                    Ok(code) => {
                        self.pipeline.coded(*id, user.clone(), code);
                        Class::Ok
                    }
                    Err(e) => Class::Error(e),
                }
            }
            Planned::PayMobile(user, id, code) => {
                let body = json!({"requisition_id": id, "method": "mobile_money", "destination": "0712345678",
                                  "reference": "LOAD", "code": code});
                let (status, bytes) =
                    match self.send(Method::POST, Some(user), "/api/treasury/payments/", Some(body)).await {
                        Ok(r) => r,
                        Err(e) => return Class::Error(e),
                    };
                let class = classify(status, &bytes);
                if class != Class::Ok {
                    return class;
                }
                let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                match (status, reply["status"].as_str(), reply["id"].as_str().and_then(|s| s.parse().ok())) {
                    (StatusCode::ACCEPTED, Some("executing"), Some(payment)) => {
                        self.provider_payments
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((payment, true));
                        Class::Ok
                    }
                    _ => Class::Error(format!("{status} (expected 202 executing) {}", snippet(&bytes))),
                }
            }
        }
    }

    /// Waits (up to `limit`) until no payment the load started through the provider is still
    /// executing, reading each over `GET /api/treasury/payments/{id}`; then counts them by
    /// status (`executing`, `succeeded`, `failed`, or the error of the read).
    pub async fn settle_provider_payments(&self, limit: std::time::Duration) -> BTreeMap<String, u64> {
        let ids: Vec<Uuid> = self
            .provider_payments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, during_load)| *during_load)
            .map(|(id, _)| *id)
            .collect();
        let deadline = std::time::Instant::now() + limit;
        let reader = self.users.payment_readers.first().cloned();
        loop {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for id in &ids {
                let status = match self
                    .send(Method::GET, reader.as_deref(), &format!("/api/treasury/payments/{id}"), None)
                    .await
                {
                    Ok((StatusCode::OK, bytes)) => serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .and_then(|v| v["status"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "unreadable".into()),
                    Ok((status, _)) => format!("read answered {status}"),
                    Err(e) => e,
                };
                *counts.entry(status).or_default() += 1;
            }
            if !counts.contains_key("executing") || std::time::Instant::now() >= deadline {
                return counts;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn read(&self, user: Option<&User>, path: String) -> Class {
        match self.send(Method::GET, user, &path, None).await {
            Ok((status, body)) => classify(status, &body),
            Err(e) => Class::Error(e),
        }
    }

    /// A page as a browser asks for it: the session cookie, HTML expected. A redirect (to the
    /// sign-in page) is an error, not followed.
    async fn page(&self, user: &User, path: &str) -> Class {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, format!("pettycash_session={}", user.token));
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Class::Error(describe(e)),
        };
        let (status, url) = (resp.status(), resp.url().path().to_string());
        let html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/html"));
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Class::Error(describe(e)),
        };
        match (status, url == path, html) {
            (StatusCode::OK, true, true) => Class::Ok,
            (StatusCode::OK, false, _) => Class::Error(format!("{path} led to {url}")),
            _ => classify(status, &body),
        }
    }

    async fn command(
        &self,
        user: &User,
        path: String,
        body: Value,
        expect: StatusCode,
        advance: bool,
    ) -> Class {
        let (status, bytes) = match self.send(Method::POST, Some(user), &path, Some(body)).await {
            Ok(r) => r,
            Err(e) => return Class::Error(e),
        };
        let class = classify(status, &bytes);
        if class != Class::Ok {
            return class;
        }
        if status != expect {
            return Class::Error(format!("{status} (expected {expect}) {}", snippet(&bytes)));
        }
        if advance {
            let parsed: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => return Class::Error(format!("{status} with a body that is not JSON: {e}")),
            };
            if let Err(e) = self.pipeline.advance(&parsed) {
                return Class::Error(format!("{status}: {e}: {}", snippet(&bytes)));
            }
        }
        Class::Ok
    }

    /// One HTTP request; the whole body is read.
    pub async fn send(
        &self,
        method: Method,
        user: Option<&User>,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(describe)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(describe)?;
        Ok((status, bytes.to_vec()))
    }
}

fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut msg = format!("{kind} error: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn classify(status: StatusCode, body: &[u8]) -> Class {
    if status.is_success() {
        return Class::Ok;
    }
    if status == StatusCode::CONFLICT {
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| "conflict".into());
        return Class::Refused(code);
    }
    Class::Error(format!("{status} {}", snippet(body)))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_follows_the_weights_and_reaches_every_slot_in_one_cycle() {
        let mix = Mix::new(MixKind::Mixed).with_csv_every(0);
        let cycle: Vec<Slot> = (0..24).map(|_| mix.next()).collect();
        assert_eq!(READ_WEIGHTS.iter().map(|w| w.1).sum::<i64>(), 18);
        assert_eq!(cycle.iter().filter(|s| **s == Slot::Command).count(), 6);
        for (e, w) in READ_WEIGHTS {
            assert_eq!(cycle.iter().filter(|s| **s == Slot::Read(e)).count() as i64, w);
        }
        assert!(!mix.endpoints().contains(&Endpoint::TransactionsCsv));
        assert_eq!(
            mix.proportions(1.25).iter().find(|p| p.0 == Endpoint::TransactionsCsv).map(|p| p.1),
            Some(0.0)
        );
        // By default one spending slot in CSV_EVERY is the year's CSV, the first one included.
        let mix = Mix::new(MixKind::Mixed);
        let slots: Vec<Slot> = (0..24 * CSV_EVERY).map(|_| mix.next()).collect();
        let count = |e: Endpoint| slots.iter().filter(|s| **s == Slot::Read(e)).count();
        assert_eq!((count(Endpoint::TransactionsCsv), count(Endpoint::SpendingReport)), (1, CSV_EVERY - 1));
        let proportions = mix.proportions(1.25);
        let shares: f64 = proportions.iter().map(|p| p.1).sum();
        assert!((shares - 100.0).abs() < 1e-9);
        let share = |e: Endpoint| proportions.iter().find(|p| p.0 == e).map(|p| p.1).unwrap();
        let spending_slot = 100.0 / 24.0;
        assert!((share(Endpoint::TransactionsCsv) - spending_slot / CSV_EVERY as f64).abs() < 1e-9);
        assert!(
            (share(Endpoint::SpendingReport) + share(Endpoint::TransactionsCsv) - spending_slot).abs() < 1e-9
        );
        assert!(mix.endpoints().contains(&Endpoint::TransactionsCsv));
    }

    #[test]
    fn pipeline_pays_before_it_approves_before_it_creates() {
        let p = Pipeline::new(&Tiers::default_policy());
        assert_eq!(p.next(), Step::Create);
        let id = Uuid::new_v4();
        p.advance(&json!({"id": id, "status": "pending_approval", "current_role": "department_head"}))
            .unwrap();
        let other = Uuid::new_v4();
        p.advance(&json!({"id": other, "status": "pending_approval", "current_role": "cfo"})).unwrap();
        assert_eq!(p.next(), Step::Approve(Role::Cfo, other, vec![]));
        assert_eq!(p.next(), Step::Approve(Role::DepartmentHead, id, vec![]));
        p.advance(&json!({"id": id, "status": "approved", "current_role": null})).unwrap();
        assert_eq!(p.next(), Step::Pay(id));
        assert_eq!(p.next(), Step::Create);
        assert!(p.advance(&json!({"id": id, "status": "paid"})).is_err());
    }

    #[test]
    fn every_other_payment_goes_by_mobile_money_code_first() {
        let p = Pipeline::new(&Tiers::default_policy());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        p.advance(&json!({"id": a, "status": "approved"})).unwrap();
        p.advance(&json!({"id": b, "status": "approved"})).unwrap();
        assert_eq!(p.next(), Step::Pay(a));
        assert_eq!(p.next(), Step::Code(b));
        let payer = Arc::new(User { id: Uuid::new_v4(), role: Role::Treasury, token: String::new() });
        p.coded(b, payer.clone(), "123456".into());
        assert_eq!(p.backlog(), (0, 1));
        assert_eq!(p.next(), Step::PayMobile(b, payer, "123456".into()));
        assert_eq!(p.next(), Step::Create);
    }
}
