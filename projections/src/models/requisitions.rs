//! `rm_requisitions`: one row per requisition, for lists and the approvals inbox; and the
//! dashboard's running totals, kept as the rows change so that the dashboard reads a few
//! dozen rows however many requisitions there are:
//!
//! - `rm_requisition_totals`: count and amount per (requester, status, currency);
//! - `rm_paid_daily`: payments per (requester, UTC day of payment, currency), with the summed
//!   seconds from (latest) submission to payment.
//!
//! Both hold each requester's rows and rows over a whole company, under the company's id, or
//! over every unscoped requisition (of no company) under [`UNSCOPED`] (the nil uuid). Ids are
//! UUIDs from one generator, so a requester's and a company's never collide.
//! Version 3: the requisition's organisation (company, region, branch, department, cost
//! centre, origin) and totals per company; version 2 summed everyone under one key; version 1
//! had no totals. Version 4: the budgets the latest submission exceeds (`budget_exceeded`).
//!
//! Catch-up speed: a requisition's events (5.3 on average) are spread over many batches, so
//! most batches change rows that an earlier batch wrote. The projection keeps the rows of open
//! requisitions in memory between batches ([`Cache`]) instead of reading them back each time,
//! and trusts that copy only while it describes exactly what the tables hold: it is tagged with
//! the checkpoint position it belongs to and used only when the next batch follows that very
//! position (see [`Projection::apply`]). A batch that fails or rolls back, a lost lease, another
//! process applying batches: each leaves the checkpoint elsewhere, and the copy is dropped.

use super::{BUSY_TABLE, HOT_TABLE};
use crate::event::EventRow;
use crate::{table_name, Phase, Projection};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use pettycash_domain::budget::BudgetFlag;
use pettycash_domain::organisation::Origin;
use pettycash_domain::requisition::{
    apply_edit, Dismissal, PaymentReview, RequisitionEvent, ReviewStatus, Status,
};
use pettycash_domain::routing::EscalationReason;
use pettycash_domain::Role;
use rust_decimal::Decimal;
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

pub const TABLE: &str = "rm_requisitions";
pub const TOTALS: &str = "rm_requisition_totals";
pub const PAID_DAILY: &str = "rm_paid_daily";
/// The key under which the totals over every unscoped requisition (of no company) are kept;
/// a company's are kept under its id.
pub const UNSCOPED: Uuid = Uuid::nil();

/// At most this many rows stay in memory between batches (about 0.5 KB each). On the 1M-event
/// store about 4,600 requisitions are touched per 20,000 events and ~15,000 are still open at
/// the end; paid, rejected and cancelled ones are dropped at once (no event follows them), and
/// past the limit the least recently changed go. A row not in memory is read from the table.
const CACHE_ROWS: usize = 10_000;

pub struct Requisitions {
    version: i32,
    generation: i32,
    table: String,
    totals: String,
    daily: String,
    /// Rows kept between batches; taken out while a batch runs and put back only when it has
    /// written everything (so a failed batch leaves nothing behind).
    cache: Mutex<Option<Cache>>,
}

impl Requisitions {
    /// `version`, generation 0.
    pub fn new(version: i32) -> Self {
        Self::at(version, 0)
    }

    /// `version`, build `generation`.
    pub fn at(version: i32, generation: i32) -> Self {
        Self {
            version,
            generation,
            table: table_name(TABLE, version, generation),
            totals: table_name(TOTALS, version, generation),
            daily: table_name(PAID_DAILY, version, generation),
            cache: Mutex::new(None),
        }
    }

    /// The rows kept between batches (a panic elsewhere does not make them unreachable: a
    /// stale copy is never used, see [`Cache`]).
    fn cache(&self) -> MutexGuard<'_, Option<Cache>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A requisition's row. `current_step` is not kept: it follows from status, chain and
/// approvers and is computed when the row is written.
#[derive(Debug, Clone)]
struct Row {
    id: Uuid,
    fund_id: Uuid,
    requester_id: Uuid,
    status: Status,
    amount: Decimal,
    /// Shared with the totals' keys (a few currencies, many rows).
    currency: Arc<str>,
    purpose: String,
    payee: Option<String>,
    category: Option<String>,
    /// The latest submission's chain (jsonb array of role names).
    chain: Vec<Role>,
    /// Approvals given since the latest submission (jsonb array of user ids).
    approvers: Vec<Uuid>,
    /// Who may act at each step, as routed at the latest submission (jsonb; `None` for one
    /// submitted before routing recorded people: any holder of the step's role).
    eligible: Option<Vec<Vec<Uuid>>>,
    /// The chain index after the last approval of this round (0 after a submission).
    step_from: i32,
    /// What the service's scheduler acts on: by when requested changes are due, when the
    /// current step's approvers are reminded and when it goes to the admins, and whether those
    /// happened.
    due: Due,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    last_position: i64,
    /// Its organisation, as created (never changes).
    org: Org,
    /// Possible duplicates and FP&A's review.
    checks: Checks,
}

/// A requisition's possible-duplicate flag and FP&A review (`requisition::review`), as the
/// events set them (jsonb columns; `null`: none).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
struct Checks {
    /// The ids the latest submission's flag names.
    possible_duplicates: Option<Json<Vec<Uuid>>>,
    /// A `DuplicateSuspected` waits for the `RequisitionSubmitted` after it (which keeps the
    /// flag; a submission without one clears it).
    duplicates_pending: bool,
    duplicate_dismissed: Option<Json<Dismissal>>,
    review: Option<Json<PaymentReview>>,
    /// The budgets the latest submission exceeds (`BudgetExceeded`; `null`: none).
    budget_exceeded: Option<Json<Vec<BudgetFlag>>>,
    /// `BudgetExceeded` events waiting for the `RequisitionSubmitted` after them.
    budget_pending: Option<Json<Vec<BudgetFlag>>>,
}

impl Checks {
    fn apply(&mut self, event: &RequisitionEvent) {
        use RequisitionEvent as E;
        match event {
            E::DuplicateSuspected { others, .. } => {
                self.possible_duplicates = Some(Json(others.clone()));
                self.duplicate_dismissed = None;
                self.duplicates_pending = true;
            }
            E::BudgetExceeded { budget_id, scope, month, budget, consumed, amount } => {
                let flag = BudgetFlag {
                    budget_id: *budget_id,
                    scope: *scope,
                    month: *month,
                    budget: *budget,
                    consumed: *consumed,
                    amount: *amount,
                };
                self.budget_pending.get_or_insert_with(|| Json(Vec::new())).0.push(flag);
            }
            E::RequisitionSubmitted { .. } => {
                self.budget_exceeded = self.budget_pending.take();
                let flagged = std::mem::take(&mut self.duplicates_pending);
                if !flagged {
                    self.possible_duplicates = None;
                    self.duplicate_dismissed = None;
                }
            }
            E::DuplicateDismissed { dismissed_by, reason } => {
                self.duplicate_dismissed =
                    Some(Json(Dismissal { by: *dismissed_by, reason: reason.clone() }));
            }
            E::PaymentReviewed { reviewed_by, comment, at } => {
                let review = PaymentReview {
                    status: ReviewStatus::Reviewed,
                    by: *reviewed_by,
                    at: *at,
                    comment: comment.clone(),
                    reason: None,
                };
                self.review = Some(Json(review));
            }
            E::PaymentFlagged { flagged_by, reason, at } => {
                let review = PaymentReview {
                    status: ReviewStatus::Flagged,
                    by: *flagged_by,
                    at: *at,
                    comment: None,
                    reason: Some(reason.clone()),
                };
                self.review = Some(Json(review));
            }
            _ => {}
        }
    }
}

/// A requisition's deadlines, as its events set them.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct Due {
    changes_deadline: Option<DateTime<Utc>>,
    remind_at: Option<DateTime<Utc>>,
    escalate_at: Option<DateTime<Utc>>,
    reminded: bool,
    escalated: bool,
}

/// A requisition's organisation: the path of the unit it was created in, and its origin.
/// All `None`: unscoped.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct Org {
    company_id: Option<Uuid>,
    region_id: Option<Uuid>,
    branch_id: Option<Uuid>,
    department_id: Option<Uuid>,
    cost_centre_id: Option<Uuid>,
    origin: Option<Origin>,
}

impl Org {
    /// The key of its company's totals.
    fn totals_key(&self) -> Uuid {
        self.company_id.unwrap_or(UNSCOPED)
    }
}

/// A row as the table holds it.
#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    fund_id: Uuid,
    requester_id: Uuid,
    status: Status,
    amount: Decimal,
    currency: String,
    purpose: String,
    payee: Option<String>,
    category: Option<String>,
    chain: Json<Vec<Role>>,
    approvers: Json<Vec<Uuid>>,
    eligible: Option<Json<Vec<Vec<Uuid>>>>,
    step_from: i32,
    #[sqlx(flatten)]
    due: Due,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    last_position: i64,
    #[sqlx(flatten)]
    org: Org,
    #[sqlx(flatten)]
    checks: Checks,
}

const COLUMNS: &str =
    "id, fund_id, requester_id, status, amount, currency, purpose, payee, category, chain, \
     approvers, current_step, created_at, submitted_at, paid_at, updated_at, last_position, \
     company_id, region_id, branch_id, department_id, cost_centre_id, origin, \
     eligible, step_from, current_eligible, \
     changes_deadline, remind_at, escalate_at, reminded, escalated, \
     possible_duplicates, duplicates_pending, duplicate_dismissed, review, budget_exceeded, budget_pending";

const STORED_COLUMNS: &str =
    "id, fund_id, requester_id, status, amount, currency, purpose, payee, category, chain, \
     approvers, created_at, submitted_at, paid_at, updated_at, last_position, \
     company_id, region_id, branch_id, department_id, cost_centre_id, origin, eligible, step_from, \
     changes_deadline, remind_at, escalate_at, reminded, escalated, \
     possible_duplicates, duplicates_pending, duplicate_dismissed, review, budget_exceeded, budget_pending";

impl TryFrom<Stored> for Row {
    type Error = anyhow::Error;
    fn try_from(s: Stored) -> anyhow::Result<Self> {
        Ok(Row {
            id: s.id,
            fund_id: s.fund_id,
            requester_id: s.requester_id,
            status: s.status,
            amount: s.amount,
            currency: s.currency.into(),
            purpose: s.purpose,
            payee: s.payee,
            category: s.category,
            chain: s.chain.0,
            approvers: s.approvers.0,
            eligible: s.eligible.map(|e| e.0),
            step_from: s.step_from,
            due: s.due,
            created_at: s.created_at,
            submitted_at: s.submitted_at,
            paid_at: s.paid_at,
            updated_at: s.updated_at,
            last_position: s.last_position,
            org: s.org,
            checks: s.checks,
        })
    }
}

impl Row {
    /// The chain index the next decision is for, while pending approval: the domain's rule
    /// (`routing::next_step`: escalated steps are skipped).
    fn current_index(&self) -> Option<usize> {
        if self.status != Status::PendingApproval {
            return None;
        }
        let from = usize::try_from(self.step_from).unwrap_or(0);
        pettycash_domain::routing::next_step(self.chain.len(), self.eligible.as_deref(), from)
    }

    /// The role the next approval needs, while pending approval.
    fn current_step(&self) -> Option<Role> {
        self.current_index().map(|i| self.chain[i])
    }

    /// Who may decide the current step (`None`: any holder of its role).
    fn current_eligible(&self) -> Option<&[Uuid]> {
        let i = self.current_index()?;
        self.eligible.as_ref().and_then(|lists| lists.get(i)).map(Vec::as_slice)
    }

    /// No more events follow (the row can leave memory).
    fn is_final(&self) -> bool {
        self.status.is_final()
    }

    fn apply(&mut self, event: RequisitionEvent, at: DateTime<Utc>) {
        use RequisitionEvent as E;
        self.checks.apply(&event);
        match event {
            E::RequisitionCreated { .. } => {}
            E::RequisitionEdited { amount, purpose, payee, category } => apply_edit(
                (&mut self.amount, &mut self.purpose, &mut self.payee, &mut self.category),
                (amount, purpose, payee, category),
            ),
            E::RequisitionSubmitted { amount, chain, eligible, due, .. } => {
                self.amount = amount;
                self.chain = chain;
                self.eligible = eligible;
                self.step_from = 0;
                self.due = Due {
                    remind_at: due.map(|d| d.remind_at),
                    escalate_at: due.map(|d| d.escalate_at),
                    ..Due::default()
                };
                self.approvers.clear();
                self.status = Status::PendingApproval;
                self.submitted_at = Some(at);
            }
            E::ApprovalEscalated { step, people, reason, .. } => {
                if let (Some(people), Some(lists)) = (people, self.eligible.as_mut()) {
                    if let Some(list) = lists.get_mut(step) {
                        *list = people;
                    }
                }
                if reason == EscalationReason::Overdue {
                    self.due.escalated = true;
                }
            }
            E::ApprovalOverdue { .. } => self.due.reminded = true,
            E::RequisitionExpired { .. } => {
                self.due = Due::default();
                self.status = Status::Expired;
            }
            E::RequisitionApproved { step, approver_id, completes_chain, due, .. } => {
                self.approvers.push(approver_id);
                self.step_from = i32::try_from(step + 1).unwrap_or(i32::MAX);
                self.due = Due {
                    remind_at: due.map(|d| d.remind_at),
                    escalate_at: due.map(|d| d.escalate_at),
                    ..Due::default()
                };
                if completes_chain {
                    self.status = Status::Approved;
                }
            }
            // Confirmed urgency on a threshold that allows it: the final step is next.
            E::UrgencyConfirmed { fast_tracked: true, due, .. } => {
                self.step_from = i32::try_from(self.chain.len().saturating_sub(1)).unwrap_or(i32::MAX);
                self.due = Due {
                    remind_at: due.map(|d| d.remind_at),
                    escalate_at: due.map(|d| d.escalate_at),
                    ..Due::default()
                };
            }
            // Back to the full chain: nothing was approved while fast-tracked (the final step's
            // approval completes it).
            E::FastTrackReverted { due, .. } => {
                self.step_from = 0;
                self.due = Due {
                    remind_at: due.map(|d| d.remind_at),
                    escalate_at: due.map(|d| d.escalate_at),
                    ..Due::default()
                };
            }
            E::ApprovalOverridden { .. } => {
                self.due = Due::default();
                self.status = Status::Approved;
            }
            E::UrgencyDeclared { .. } | E::UrgencyConfirmed { .. } | E::UrgencyDenied { .. } => {}
            E::RequisitionRejected { .. } => self.status = Status::Rejected,
            E::ChangesRequested { deadline, .. } => {
                self.due = Due { changes_deadline: deadline, ..Due::default() };
                self.status = Status::ChangesRequested;
            }
            E::RequisitionCancelled { .. } => self.status = Status::Cancelled,
            E::RequisitionPaid { .. } => {
                self.status = Status::Paid;
                self.paid_at = Some(at);
            }
            E::DuplicateSuspected { .. }
            | E::DuplicateDismissed { .. }
            | E::PaymentReviewed { .. }
            | E::PaymentFlagged { .. }
            | E::CategoryChosen { .. }
            | E::BudgetExceeded { .. }
            | E::ReceiptAttached { .. }
            | E::ReceiptOverdue { .. }
            | E::PaymentCodeIssued { .. }
            | E::PaymentCodeRejected { .. }
            | E::PaymentStarted { .. }
            | E::PaymentFailed { .. }
            | E::PaymentTimedOut { .. }
            | E::PaymentReconciled { .. } => {}
        }
    }
}

/// Rows kept between batches, as the tables hold them once the checkpoint is at `position`.
#[derive(Default)]
struct Cache {
    position: i64,
    rows: HashMap<Uuid, Row>,
    /// While building, the counts and amounts per status are not written batch by batch
    /// (every batch moves the same few thousand keys, which cost about as much as writing its
    /// rows) but once, when the build goes live ([`Projection::before_live`]): here, the sums
    /// of every move since position zero, if this cache has seen them all; `None` otherwise
    /// (they are then summed from the rows at go-live). Payments per day are written batch by
    /// batch in every phase: most keys are written once anyway (a day is soon over).
    deferred: Option<Totals>,
}

impl Cache {
    /// Keeps what later batches are likely to touch, within [`CACHE_ROWS`]: drops the rows
    /// among `touched` that reached a final status, then the least recently changed if there
    /// are too many.
    fn trim<'a>(&mut self, touched: impl Iterator<Item = &'a Uuid>) {
        for id in touched {
            if self.rows.get(id).is_some_and(Row::is_final) {
                self.rows.remove(id);
            }
        }
        if self.rows.len() > CACHE_ROWS {
            // Down to three quarters, so that this runs every few batches, not every batch.
            let keep = CACHE_ROWS * 3 / 4;
            let mut positions: Vec<i64> = self.rows.values().map(|r| r.last_position).collect();
            let drop = positions.len() - keep;
            let (_, oldest_kept, _) = positions.select_nth_unstable(drop);
            let oldest_kept = *oldest_kept;
            self.rows.retain(|_, r| r.last_position >= oldest_kept);
        }
    }
}

/// What the totals need of a row as it was before the batch.
struct Before {
    status: Status,
    currency: Arc<str>,
    amount: Decimal,
}

#[async_trait]
impl Projection for Requisitions {
    fn name(&self) -> &'static str {
        "requisitions"
    }
    fn version(&self) -> i32 {
        self.version
    }
    fn generation(&self) -> i32 {
        self.generation
    }
    fn at_generation(&self, generation: i32) -> Arc<dyn Projection> {
        Arc::new(Self::at(self.version, generation))
    }
    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["requisition"])
    }
    fn uses_metadata(&self) -> bool {
        false
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE, TOTALS, PAID_DAILY]
    }
    fn create_tables(&self) -> Vec<String> {
        let t = &self.table;
        let (totals, daily) = (&self.totals, &self.daily);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {totals} (
                    requester_id uuid NOT NULL, status text NOT NULL, currency text NOT NULL,
                    count bigint NOT NULL, amount numeric NOT NULL,
                    PRIMARY KEY (requester_id, status, currency))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {daily} (
                    requester_id uuid NOT NULL, day date NOT NULL, currency text NOT NULL,
                    count bigint NOT NULL, amount numeric NOT NULL,
                    timed bigint NOT NULL, seconds_to_payment numeric NOT NULL,
                    PRIMARY KEY (requester_id, day, currency))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    id uuid PRIMARY KEY, fund_id uuid NOT NULL, requester_id uuid NOT NULL, status text NOT NULL,
                    amount numeric NOT NULL, currency text NOT NULL, purpose text NOT NULL, payee text, category text,
                    chain jsonb NOT NULL, approvers jsonb NOT NULL, current_step text,
                    eligible jsonb, step_from integer NOT NULL, current_eligible jsonb,
                    changes_deadline timestamptz, remind_at timestamptz, escalate_at timestamptz,
                    reminded boolean NOT NULL, escalated boolean NOT NULL,
                    created_at timestamptz NOT NULL, submitted_at timestamptz, paid_at timestamptz,
                    updated_at timestamptz NOT NULL, last_position bigint NOT NULL,
                    company_id uuid, region_id uuid, branch_id uuid, department_id uuid, cost_centre_id uuid,
                    origin text,
                    possible_duplicates jsonb, duplicates_pending boolean NOT NULL, duplicate_dismissed jsonb,
                    review jsonb, budget_exceeded jsonb, budget_pending jsonb)"
            ),
            // Every change of a requisition updates the same few totals rows (its requester's
            // and everyone's): under a steady load they leave thousands of dead row versions a
            // second, and PostgreSQL's default (vacuum after 20 % of the table) lets a table of
            // a few thousand rows carry hundreds of thousands, which the dashboard then reads.
            // Vacuum these after a fixed number of dead rows, and leave room on each page so
            // updates stay on it (HOT: no index entry per update).
            format!("ALTER TABLE {totals} SET ({HOT_TABLE})"),
            format!("ALTER TABLE {daily} SET ({HOT_TABLE})"),
            format!("ALTER TABLE {t} SET ({BUSY_TABLE})"),
        ]
    }

    fn create_indexes(&self) -> Vec<String> {
        let t = &self.table;
        let pending = Status::PendingApproval.as_str();
        vec![
            format!("CREATE INDEX IF NOT EXISTS {t}_created_idx ON {t} (created_at DESC, id DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_requester_idx ON {t} (requester_id, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_fund_idx ON {t} (fund_id, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_status_idx ON {t} (status, created_at DESC)"),
            format!("CREATE INDEX IF NOT EXISTS {t}_inbox_idx ON {t} (current_step) WHERE current_step IS NOT NULL"),
            // What the service's scheduler looks for.
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_changes_due_idx ON {t} (changes_deadline)
                 WHERE changes_deadline IS NOT NULL"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_step_due_idx ON {t} (remind_at)
                 WHERE remind_at IS NOT NULL AND NOT (reminded AND escalated)"
            ),
            // The inbox of someone a step was routed to by name.
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_eligible_idx ON {t} USING gin (current_eligible)
                 WITH (fastupdate = off) WHERE current_eligible IS NOT NULL"
            ),
            // Lists of what someone approved (the visibility rule's "approved by them"): for a
            // user who reaches nothing else, with the requester index, the whole list.
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_approvers_idx ON {t} USING gin (approvers) WITH (fastupdate = off)"
            ),
            // The list of everyone who is scoped to a company reads its company's rows, newest
            // first.
            format!("CREATE INDEX IF NOT EXISTS {t}_company_idx ON {t} (company_id, created_at DESC, id DESC)"),
            // The dashboard's pending approvals by age, per company and per requester: only the
            // pending rows, with what the figure needs, so that it is read from the index alone
            // (13 → 2.5 ms for 5,500 pending; rows of pages changed since the last vacuum are
            // still read from the table). Added at start-up to a live build, no rebuild; they
            // replace two that held only the keys.
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_pending_company_cover_idx ON {t} (company_id, submitted_at)
                 INCLUDE (created_at, currency, amount) WHERE status = '{pending}'"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_pending_requester_cover_idx ON {t} (requester_id, submitted_at)
                 INCLUDE (created_at, currency, amount) WHERE status = '{pending}'"
            ),
            // A page of an approver's inbox (`queries::approval_inbox`): the pending rows needing
            // a role, in the inbox's order, so that a page reads a page of rows however many
            // wait, with what the inbox's filter reads (the visibility rule's columns), so
            // that its count is read from the index alone (a department head's 4,633: 1.7 →
            // 1.0 ms); and those routed by name, pending only (a requisition keeps its last
            // `current_eligible` once decided). Added at start-up, no rebuild; the first
            // replaces one that held only the keys.
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_inbox_role_cover_idx ON {t} (current_step, created_at, id)
                 INCLUDE (requester_id, approvers, company_id, submitted_at, chain, region_id, branch_id,
                          department_id, cost_centre_id)
                 WHERE status = '{pending}' AND current_eligible IS NULL"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {t}_inbox_eligible_pending_idx ON {t} USING gin (current_eligible)
                 WITH (fastupdate = off) WHERE status = '{pending}'"
            ),
            // The GIN indexes above without their pending list ("fast update"): with it, the
            // entries of rows written since the last vacuum wait in an unordered list that every
            // search reads through, up to 4 MB (after a few minutes of load, the named way's
            // index scan took 4.9 ms, and 0.3 ms once the list was flushed). Each write now goes into the index itself,
            // a little dearer for the projection, and a search costs the same whenever it runs.
            // Set at start-up on indexes built before (their list empties at the next vacuum).
            no_pending_list(&format!("{t}_eligible_idx")),
            no_pending_list(&format!("{t}_approvers_idx")),
            no_pending_list(&format!("{t}_inbox_eligible_pending_idx")),
            format!("DROP INDEX IF EXISTS {t}_inbox_role_order_idx"),
            format!("DROP INDEX IF EXISTS {t}_pending_company_idx"),
            format!("DROP INDEX IF EXISTS {t}_pending_requester_idx"),
            // The dashboard's all-time average time to payment sums a requester's (or a
            // company's) days of payments: 2,600 rows for a company over seven years, spread
            // over as many table pages. With what it sums in the index it is read from the index
            // alone (3 to 12 ms → 0.4 ms on the 1M-event store). Added at start-up, no rebuild.
            format!(
                "CREATE INDEX IF NOT EXISTS {daily}_timed_cover_idx ON {daily} (requester_id)
                 INCLUDE (timed, seconds_to_payment)",
                daily = self.daily
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        after: i64,
        phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()> {
        let Some(last) = events.last().map(|e| e.global_position) else { return Ok(()) };
        // The rows in memory, if they are still those of the tables at `after`.
        let taken = self.cache().take();
        let mut cache = taken.filter(|c| c.position == after).unwrap_or_else(|| Cache {
            // A build from its very first event sees every move.
            deferred: (phase == Phase::Building && after == 0).then(Totals::default),
            ..Cache::default()
        });
        let mut decoded = Vec::with_capacity(events.len());
        for e in events.iter().filter(|e| e.aggregate_type == "requisition") {
            let id: Uuid = e.aggregate_id.parse()?;
            decoded.push((id, e.decode::<RequisitionEvent>()?, e));
        }
        if !decoded.is_empty() {
            self.load_missing(tx, &mut cache, &decoded).await?;
            let touched = fold(&mut cache.rows, decoded)?;
            let (mut totals, mut daily) = (Totals::default(), Daily::default());
            add_moves(&touched, &cache.rows, &mut totals, &mut daily);
            match phase {
                Phase::Live => {
                    // Live tables hold their totals: a build goes live only through
                    // `before_live`, here or in whichever process made it live (so sums kept
                    // from its build, if the build ended elsewhere, are dropped).
                    cache.deferred = None;
                    self.write_totals(tx, &totals).await?;
                }
                Phase::Building => {
                    // Without them, the totals are summed from the rows at go-live.
                    if let Some(deferred) = cache.deferred.as_mut() {
                        for (key, (n, a)) in totals {
                            let sum = deferred.entry(key).or_default();
                            sum.0 += n;
                            sum.1 += a;
                        }
                    }
                }
            }
            self.write_daily(tx, &daily).await?;
            let (mut created, mut changed) = (Vec::new(), Vec::new());
            for (id, before) in &touched {
                let list = if before.is_none() { &mut created } else { &mut changed };
                list.extend(cache.rows.get(id));
            }
            write_rows(tx, &self.table, &created, Write::Insert).await?;
            write_rows(tx, &self.table, &changed, Write::Upsert).await?;
            cache.trim(touched.keys());
        }
        cache.position = last;
        *self.cache() = Some(cache);
        Ok(())
    }

    /// Writes the totals per status the build left out: the sums kept in memory if they cover
    /// everything up to `position`, else sums of the rows (a build resumed by another process,
    /// or after its memory was dropped). Either way the table is replaced, with the same rows.
    async fn before_live(&self, tx: &mut PgConnection, position: i64) -> anyhow::Result<()> {
        let taken = self.cache().take();
        let deferred = match taken.filter(|c| c.position == position) {
            Some(mut cache) => {
                let deferred = cache.deferred.take();
                // Put back before writing: a failure rolls back the checkpoint it is tagged with.
                *self.cache() = Some(cache);
                deferred
            }
            None => None,
        };
        sqlx::query(&format!("DELETE FROM {}", self.totals)).execute(&mut *tx).await?;
        match deferred {
            Some(totals) => self.write_totals(tx, &totals).await,
            None => self.sum_totals_from_rows(tx).await,
        }
    }
}

/// Applies the batch's events to the rows, in order; returns each touched row's state before
/// the batch (`None`: created in it).
fn fold(
    rows: &mut HashMap<Uuid, Row>,
    events: Vec<(Uuid, RequisitionEvent, &EventRow)>,
) -> anyhow::Result<HashMap<Uuid, Option<Before>>> {
    let mut touched: HashMap<Uuid, Option<Before>> = HashMap::new();
    for (id, event, e) in events {
        if let Entry::Vacant(v) = touched.entry(id) {
            v.insert(rows.get(&id).map(|r| Before {
                status: r.status,
                currency: r.currency.clone(),
                amount: r.amount,
            }));
        }
        if let RequisitionEvent::RequisitionCreated {
            requisition_id,
            fund_id,
            currency,
            amount,
            purpose,
            payee,
            category,
            requester_id,
            origin,
            unit,
            ..
        } = &event
        {
            rows.insert(
                *requisition_id,
                Row {
                    id: *requisition_id,
                    fund_id: *fund_id,
                    requester_id: *requester_id,
                    status: Status::Draft,
                    amount: *amount,
                    currency: currency.code().into(),
                    purpose: purpose.clone(),
                    payee: payee.clone(),
                    category: category.clone(),
                    chain: Vec::new(),
                    approvers: Vec::new(),
                    eligible: None,
                    step_from: 0,
                    due: Due::default(),
                    created_at: e.recorded_at,
                    submitted_at: None,
                    paid_at: None,
                    updated_at: e.recorded_at,
                    last_position: e.global_position,
                    org: Org {
                        company_id: unit.map(|u| u.company),
                        region_id: unit.and_then(|u| u.region),
                        branch_id: unit.and_then(|u| u.branch),
                        department_id: unit.and_then(|u| u.department),
                        cost_centre_id: unit.and_then(|u| u.cost_centre),
                        origin: *origin,
                    },
                    checks: Checks::default(),
                },
            );
        }
        let row = rows
            .get_mut(&id)
            .ok_or_else(|| anyhow::anyhow!("event at {} for unknown requisition {id}", e.global_position))?;
        row.apply(event, e.recorded_at);
        row.updated_at = e.recorded_at;
        row.last_position = e.global_position;
    }
    Ok(touched)
}

/// Payments of one day: count, amount, how many had a submission time, their summed seconds
/// from submission to payment.
type PaidDay = (i64, Decimal, i64, Decimal);

impl Requisitions {
    /// Reads the rows the batch changes that are not in memory, except those it creates.
    async fn load_missing(
        &self,
        tx: &mut PgConnection,
        cache: &mut Cache,
        events: &[(Uuid, RequisitionEvent, &EventRow)],
    ) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<Uuid> = events
            .iter()
            .filter(|(id, event, _)| {
                seen.insert(*id)
                    && !matches!(event, RequisitionEvent::RequisitionCreated { .. })
                    && !cache.rows.contains_key(id)
            })
            .map(|(id, ..)| *id)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let stored: Vec<Stored> =
            sqlx::query_as(&format!("SELECT {STORED_COLUMNS} FROM {} WHERE id = ANY($1)", self.table))
                .bind(&missing)
                .fetch_all(&mut *tx)
                .await?;
        tracing::debug!(missing = missing.len(), cached = cache.rows.len(), "requisitions read back");
        for s in stored {
            let row = Row::try_from(s)?;
            cache.rows.insert(row.id, row);
        }
        Ok(())
    }

    /// Adds `totals` to the table (one statement); keys left with no requisition are deleted,
    /// so that the table does not depend on how the events were batched (a rebuild equals the
    /// live build row for row).
    async fn write_totals(&self, tx: &mut PgConnection, totals: &Totals) -> anyhow::Result<()> {
        let totals: Vec<_> = totals.iter().filter(|(_, (n, a))| *n != 0 || !a.is_zero()).collect();
        if !totals.is_empty() {
            let (mut who, mut status, mut currency, mut count, mut amount) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((w, s, c), (n, a)) in totals {
                who.push(*w);
                status.push(*s);
                currency.push(&**c);
                count.push(*n);
                amount.push(*a);
            }
            // The keys nobody is in any more come back, to be deleted. Usually a few:
            // deleting by them is cheaper than by every key moved.
            let emptied: Vec<(Uuid, Status, String)> = sqlx::query_as(&format!(
                "WITH moved AS (
                    INSERT INTO {} AS t (requester_id, status, currency, count, amount)
                    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::numeric[])
                    ON CONFLICT (requester_id, status, currency)
                    DO UPDATE SET count = t.count + EXCLUDED.count, amount = t.amount + EXCLUDED.amount
                    RETURNING requester_id, status, currency, count)
                 SELECT requester_id, status, currency FROM moved WHERE count = 0",
                self.totals
            ))
            .bind(&who)
            .bind(&status)
            .bind(&currency)
            .bind(count)
            .bind(amount)
            .fetch_all(&mut *tx)
            .await?;
            if !emptied.is_empty() {
                let (who, status, currency): (Vec<Uuid>, Vec<Status>, Vec<String>) =
                    emptied.into_iter().fold((vec![], vec![], vec![]), |mut acc, (w, s, c)| {
                        acc.0.push(w);
                        acc.1.push(s);
                        acc.2.push(c);
                        acc
                    });
                sqlx::query(&format!(
                    "DELETE FROM {} t USING UNNEST($1::uuid[], $2::text[], $3::text[]) AS k(r, s, c)
                     WHERE t.requester_id = k.r AND t.status = k.s AND t.currency = k.c AND t.count = 0",
                    self.totals
                ))
                .bind(who)
                .bind(status)
                .bind(currency)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Adds `daily` to the payments per day (one statement).
    async fn write_daily(&self, tx: &mut PgConnection, daily: &Daily) -> anyhow::Result<()> {
        if !daily.is_empty() {
            let (mut who, mut day, mut currency, mut count, mut amount, mut timed, mut seconds) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for ((w, d, c), (n, a, t, s)) in daily {
                who.push(*w);
                day.push(*d);
                currency.push(&**c);
                count.push(*n);
                amount.push(*a);
                timed.push(*t);
                seconds.push(*s);
            }
            sqlx::query(&format!(
                "INSERT INTO {} AS t (requester_id, day, currency, count, amount, timed, seconds_to_payment)
                 SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::bigint[], $5::numeric[],
                                      $6::bigint[], $7::numeric[])
                 ON CONFLICT (requester_id, day, currency)
                 DO UPDATE SET count = t.count + EXCLUDED.count, amount = t.amount + EXCLUDED.amount,
                               timed = t.timed + EXCLUDED.timed,
                               seconds_to_payment = t.seconds_to_payment + EXCLUDED.seconds_to_payment",
                self.daily
            ))
            .bind(who)
            .bind(day)
            .bind(currency)
            .bind(count)
            .bind(amount)
            .bind(timed)
            .bind(seconds)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Fills the (emptied) totals per status with what the rows add up to: per (requester, status,
    /// currency) and per company (or [`UNSCOPED`]); the same rows the moves give, however the rows were
    /// built.
    async fn sum_totals_from_rows(&self, tx: &mut PgConnection) -> anyhow::Result<()> {
        let (rows, totals) = (&self.table, &self.totals);
        sqlx::query(&format!(
            "INSERT INTO {totals} (requester_id, status, currency, count, amount)
             SELECT requester_id, status, currency, count(*), sum(amount) FROM {rows}
             GROUP BY requester_id, status, currency
             UNION ALL
             SELECT coalesce(company_id, $1), status, currency, count(*), sum(amount) FROM {rows}
             GROUP BY coalesce(company_id, $1), status, currency"
        ))
        .bind(UNSCOPED)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Count and amount per (requester, status, currency), for the requester and for their
/// requisition's company (or [`UNSCOPED`]).
type Totals = HashMap<(Uuid, Status, Arc<str>), (i64, Decimal)>;
/// Payments per (requester, UTC day of payment, currency), for the requester and for their
/// requisition's company (or [`UNSCOPED`]).
type Daily = HashMap<(Uuid, NaiveDate, Arc<str>), PaidDay>;

/// Adds what a batch changed (`touched`: the rows' state before it, `None` for rows it
/// created; `rows`: their state after it) to `totals` and `daily`: each requisition leaves its
/// old (status, currency, amount) and enters its new one; one that became paid adds to its day.
fn add_moves(
    touched: &HashMap<Uuid, Option<Before>>,
    rows: &HashMap<Uuid, Row>,
    totals: &mut Totals,
    daily: &mut Daily,
) {
    for (id, old) in touched {
        let Some(row) = rows.get(id) else { continue };
        let changed = old
            .as_ref()
            .is_none_or(|o| o.status != row.status || o.currency != row.currency || o.amount != row.amount);
        if changed {
            for who in [row.requester_id, row.org.totals_key()] {
                if let Some(o) = old {
                    let t = totals.entry((who, o.status, o.currency.clone())).or_default();
                    t.0 -= 1;
                    t.1 -= o.amount;
                }
                let t = totals.entry((who, row.status, row.currency.clone())).or_default();
                t.0 += 1;
                t.1 += row.amount;
            }
        }
        let newly_paid = row.status == Status::Paid && old.as_ref().is_none_or(|o| o.status != Status::Paid);
        if let (true, Some(paid_at)) = (newly_paid, row.paid_at) {
            let (timed, seconds) = match row.submitted_at {
                // Exact (microseconds as a decimal): sums do not depend on batch sizes.
                Some(s) => (1, Decimal::new((paid_at - s).num_microseconds().unwrap_or(0), 6)),
                None => (0, Decimal::ZERO),
            };
            for who in [row.requester_id, row.org.totals_key()] {
                let d = daily.entry((who, paid_at.date_naive(), row.currency.clone())).or_default();
                d.0 += 1;
                d.1 += row.amount;
                d.2 += timed;
                d.3 += seconds;
            }
        }
    }
}

/// How [`write_rows`] writes.
#[derive(Clone, Copy, PartialEq)]
enum Write {
    /// Rows created in this batch: none of them is in the table yet. A plain insert costs about
    /// half an `ON CONFLICT` one, and with batches of 20,000 most rows written are new.
    Insert,
    /// Rows the table already holds.
    Upsert,
}

async fn write_rows(tx: &mut PgConnection, table: &str, rows: &[&Row], how: Write) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        (|$r:ident| $e:expr) => {
            rows.iter().map(|$r| $e).collect::<Vec<_>>()
        };
    }
    let on_conflict = match how {
        Write::Insert => "",
        Write::Upsert => {
            "ON CONFLICT (id) DO UPDATE SET
                status = EXCLUDED.status, amount = EXCLUDED.amount, purpose = EXCLUDED.purpose,
                payee = EXCLUDED.payee, category = EXCLUDED.category, chain = EXCLUDED.chain,
                approvers = EXCLUDED.approvers, current_step = EXCLUDED.current_step,
                eligible = EXCLUDED.eligible, step_from = EXCLUDED.step_from,
                current_eligible = EXCLUDED.current_eligible, changes_deadline = EXCLUDED.changes_deadline,
                remind_at = EXCLUDED.remind_at, escalate_at = EXCLUDED.escalate_at,
                reminded = EXCLUDED.reminded, escalated = EXCLUDED.escalated,
                submitted_at = EXCLUDED.submitted_at, paid_at = EXCLUDED.paid_at,
                updated_at = EXCLUDED.updated_at, last_position = EXCLUDED.last_position,
                possible_duplicates = EXCLUDED.possible_duplicates,
                duplicates_pending = EXCLUDED.duplicates_pending,
                duplicate_dismissed = EXCLUDED.duplicate_dismissed, review = EXCLUDED.review,
                budget_exceeded = EXCLUDED.budget_exceeded, budget_pending = EXCLUDED.budget_pending"
        }
    };
    sqlx::query(&format!(
        "INSERT INTO {table} ({COLUMNS})
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::text[], $7::text[],
                              $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::text[], $13::timestamptz[],
                              $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::bigint[],
                              $18::uuid[], $19::uuid[], $20::uuid[], $21::uuid[], $22::uuid[], $23::text[],
                              $24::jsonb[], $25::integer[], $26::jsonb[], $27::timestamptz[],
                              $28::timestamptz[], $29::timestamptz[], $30::boolean[], $31::boolean[],
                              $32::jsonb[], $33::boolean[], $34::jsonb[], $35::jsonb[], $36::jsonb[],
                              $37::jsonb[])
         {on_conflict}"
    ))
    .bind(col!(|r| r.id))
    .bind(col!(|r| r.fund_id))
    .bind(col!(|r| r.requester_id))
    .bind(col!(|r| r.status))
    .bind(col!(|r| r.amount))
    .bind(col!(|r| &*r.currency))
    .bind(col!(|r| r.purpose.as_str()))
    .bind(col!(|r| r.payee.as_deref()))
    .bind(col!(|r| r.category.as_deref()))
    .bind(col!(|r| Json(r.chain.as_slice())))
    .bind(col!(|r| Json(r.approvers.as_slice())))
    .bind(col!(|r| r.current_step()))
    .bind(col!(|r| r.created_at))
    .bind(col!(|r| r.submitted_at))
    .bind(col!(|r| r.paid_at))
    .bind(col!(|r| r.updated_at))
    .bind(col!(|r| r.last_position))
    .bind(col!(|r| r.org.company_id))
    .bind(col!(|r| r.org.region_id))
    .bind(col!(|r| r.org.branch_id))
    .bind(col!(|r| r.org.department_id))
    .bind(col!(|r| r.org.cost_centre_id))
    .bind(col!(|r| r.org.origin))
    .bind(col!(|r| r.eligible.as_ref().map(Json)))
    .bind(col!(|r| r.step_from))
    .bind(col!(|r| r.current_eligible().map(Json)))
    .bind(col!(|r| r.due.changes_deadline))
    .bind(col!(|r| r.due.remind_at))
    .bind(col!(|r| r.due.escalate_at))
    .bind(col!(|r| r.due.reminded))
    .bind(col!(|r| r.due.escalated))
    .bind(col!(|r| r.checks.possible_duplicates.as_ref().map(|d| Json(&d.0))))
    .bind(col!(|r| r.checks.duplicates_pending))
    .bind(col!(|r| r.checks.duplicate_dismissed.as_ref().map(|d| Json(&d.0))))
    .bind(col!(|r| r.checks.review.as_ref().map(|d| Json(&d.0))))
    .bind(col!(|r| r.checks.budget_exceeded.as_ref().map(|d| Json(&d.0))))
    .bind(col!(|r| r.checks.budget_pending.as_ref().map(|d| Json(&d.0))))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Turns off the pending list ("fast update") of the GIN index `index` if it is on: a statement
/// for `create_indexes`, which runs at every start-up, so it alters the index (a brief exclusive
/// lock) only the first time.
fn no_pending_list(index: &str) -> String {
    format!(
        "DO $$ BEGIN
           IF EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass('{index}')
                      AND NOT coalesce(reloptions @> '{{fastupdate=off}}', false)) THEN
             ALTER INDEX {index} SET (fastupdate = off);
           END IF;
         END $$"
    )
}
