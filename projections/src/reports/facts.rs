//! What the approvals, payments and exceptions reports know of one requisition: its
//! approval actions with the time each step became the actor's, its payment attempts, and the
//! exceptions it went through (fast-track, escalation, override, over budget, possible
//! duplicate). One pure fold of the requisition's events ([`RequisitionFacts::fold`]) feeds both
//! sources: the `report_facts` projection keeps the folded value per requisition
//! (`rm_report_requisitions`, [`crate::models::report_facts`]), and `pettycash-replay report`
//! folds the events in global order ([`replay`]). The reports' `build`s take the same values
//! from either, so their figures are equal by construction wherever the fold is.

use super::ReportError;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::payment::ProviderPaymentStatus;
use pettycash_domain::report::{ReportParams, ReportScope, UnitFilter};
use pettycash_domain::requisition::{RequisitionEvent, Status};
use pettycash_domain::routing::{waiting_step, EscalationReason};
use pettycash_domain::Role;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// What an approver did at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Approve,
    Reject,
    RequestChanges,
}

/// One approval action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    /// Who acted (a delegate acting for someone is counted as themself).
    pub by: Uuid,
    pub step: usize,
    pub role: Role,
    /// When the step became theirs: the submission, the previous approval, or a change of the
    /// chain's course (fast-track confirmed or reverted).
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// One attempt to pay it: a provider payment (`PaymentStarted` … `RequisitionPaid` or
/// `PaymentFailed`), or a payment recorded at once (`RequisitionPaid` alone: cash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub payment_id: Uuid,
    pub method: PaymentMethod,
    pub amount: Decimal,
    pub status: ProviderPaymentStatus,
    /// Who paid (started the payment).
    pub paid_by: Uuid,
    /// The scheduler found it still executing past its timeout (it may have settled since).
    pub timed_out: bool,
    pub started_at: DateTime<Utc>,
    /// When it succeeded or failed.
    pub settled_at: Option<DateTime<Utc>>,
    /// The (latest) submission before it: the start of "time from submission to payment".
    pub submitted_at: Option<DateTime<Utc>>,
}

/// The kinds of exception the exceptions report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    FastTracked,
    Escalated,
    Overridden,
    OverBudget,
    PossibleDuplicate,
}

impl ExceptionKind {
    pub const ALL: [ExceptionKind; 5] = [
        ExceptionKind::FastTracked,
        ExceptionKind::Escalated,
        ExceptionKind::Overridden,
        ExceptionKind::OverBudget,
        ExceptionKind::PossibleDuplicate,
    ];

    /// The one text form.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::FastTracked => "fast_tracked",
            ExceptionKind::Escalated => "escalated",
            ExceptionKind::Overridden => "overridden",
            ExceptionKind::OverBudget => "over_budget",
            ExceptionKind::PossibleDuplicate => "possible_duplicate",
        }
    }
}

/// One exception: what, when, and why (as the event gives it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub kind: ExceptionKind,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// One requisition as the reports see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequisitionFacts {
    pub id: Uuid,
    pub fund_id: Uuid,
    pub requester_id: Uuid,
    pub currency: String,
    pub amount: Decimal,
    pub purpose: String,
    pub status: Status,
    pub company_id: Option<Uuid>,
    pub region_id: Option<Uuid>,
    pub branch_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub cost_centre_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// The latest submission's chain and who may act at each step (`None`: any holder).
    pub chain: Vec<Role>,
    pub eligible: Option<Vec<Vec<Uuid>>>,
    /// The step after the last approval of this round.
    pub after: usize,
    pub fast_tracked: bool,
    /// When the step it waits for became the current one.
    pub step_since: Option<DateTime<Utc>>,
    pub actions: Vec<Action>,
    pub attempts: Vec<Attempt>,
    pub exceptions: Vec<Exception>,
    /// The latest event's time.
    pub updated_at: DateTime<Utc>,
}

impl RequisitionFacts {
    /// Applies one event recorded at `at`; `RequisitionCreated` makes the value (`None` before
    /// it: the event is ignored).
    pub fn fold(facts: Option<Self>, event: &RequisitionEvent, at: DateTime<Utc>) -> Option<Self> {
        use RequisitionEvent as E;
        let mut f = match (facts, event) {
            (
                _,
                E::RequisitionCreated {
                    requisition_id,
                    fund_id,
                    currency,
                    amount,
                    purpose,
                    requester_id,
                    unit,
                    ..
                },
            ) => RequisitionFacts {
                id: *requisition_id,
                fund_id: *fund_id,
                requester_id: *requester_id,
                currency: currency.code().to_string(),
                amount: *amount,
                purpose: purpose.clone(),
                status: Status::Draft,
                company_id: unit.map(|u| u.company),
                region_id: unit.and_then(|u| u.region),
                branch_id: unit.and_then(|u| u.branch),
                department_id: unit.and_then(|u| u.department),
                cost_centre_id: unit.and_then(|u| u.cost_centre),
                created_at: at,
                submitted_at: None,
                chain: Vec::new(),
                eligible: None,
                after: 0,
                fast_tracked: false,
                step_since: None,
                actions: Vec::new(),
                attempts: Vec::new(),
                exceptions: Vec::new(),
                updated_at: at,
            },
            (None, _) => return None,
            (Some(f), _) => f,
        };
        f.updated_at = at;
        let exception = |kind, reason: String| Exception { kind, at, reason };
        match event {
            E::RequisitionEdited { amount: Some(amount), purpose, .. } => {
                f.amount = *amount;
                if let Some(p) = purpose {
                    f.purpose = p.clone();
                }
            }
            E::RequisitionEdited { purpose: Some(p), .. } => f.purpose = p.clone(),
            E::RequisitionSubmitted { amount, chain, eligible, .. } => {
                f.amount = *amount;
                f.chain = chain.clone();
                f.eligible = eligible.clone();
                f.after = 0;
                f.fast_tracked = false;
                f.status = Status::PendingApproval;
                f.submitted_at = Some(at);
                f.step_since = Some(at);
            }
            E::UrgencyConfirmed { fast_tracked: true, comment, .. } => {
                f.fast_tracked = true;
                f.step_since = Some(at);
                let reason = comment.clone().unwrap_or_else(|| "urgency confirmed".into());
                f.exceptions.push(exception(ExceptionKind::FastTracked, reason));
            }
            E::FastTrackReverted { .. } => {
                f.fast_tracked = false;
                f.after = 0;
                f.step_since = Some(at);
            }
            E::ApprovalOverridden { justification, .. } => {
                f.status = Status::Approved;
                f.step_since = None;
                f.exceptions.push(exception(ExceptionKind::Overridden, justification.clone()));
            }
            E::ApprovalEscalated { step, role, reason, people, .. } => {
                if let (Some(people), Some(lists)) = (people, f.eligible.as_mut()) {
                    if let Some(list) = lists.get_mut(*step) {
                        *list = people.clone();
                    }
                }
                let why = match reason {
                    EscalationReason::NoEligibleApprover => "no eligible approver",
                    EscalationReason::SameApproverTwice => "same approver twice",
                    EscalationReason::Overdue => "overdue",
                };
                f.exceptions
                    .push(exception(ExceptionKind::Escalated, format!("step {} ({role}): {why}", step + 1)));
            }
            E::RequisitionApproved { step, role, approver_id, completes_chain, .. } => {
                f.actions.push(Action {
                    kind: ActionKind::Approve,
                    by: *approver_id,
                    step: *step,
                    role: *role,
                    since: f.step_since.unwrap_or(at),
                    at,
                });
                f.after = step + 1;
                f.step_since = Some(at);
                if *completes_chain {
                    f.status = Status::Approved;
                    f.step_since = None;
                }
            }
            E::RequisitionRejected { step, role, rejected_by, .. } => {
                f.actions.push(Action {
                    kind: ActionKind::Reject,
                    by: *rejected_by,
                    step: *step,
                    role: *role,
                    since: f.step_since.unwrap_or(at),
                    at,
                });
                f.status = Status::Rejected;
                f.step_since = None;
            }
            E::ChangesRequested { step, role, requested_by, .. } => {
                f.actions.push(Action {
                    kind: ActionKind::RequestChanges,
                    by: *requested_by,
                    step: *step,
                    role: *role,
                    since: f.step_since.unwrap_or(at),
                    at,
                });
                f.status = Status::ChangesRequested;
                f.step_since = None;
            }
            E::RequisitionCancelled { .. } => {
                f.status = Status::Cancelled;
                f.step_since = None;
            }
            E::RequisitionExpired { .. } => f.status = Status::Expired,
            E::BudgetExceeded { scope, month, budget, consumed, amount, .. } => {
                let reason = format!(
                    "{} budget {month}: {consumed} consumed + {amount} > {budget}",
                    scope.kind.as_str().replace('_', " ")
                );
                f.exceptions.push(exception(ExceptionKind::OverBudget, reason));
            }
            E::DuplicateSuspected { others, window_days } => {
                let reason = format!("{} similar within {window_days} days", others.len());
                f.exceptions.push(exception(ExceptionKind::PossibleDuplicate, reason));
            }
            E::PaymentStarted { payment_id, amount, method, paid_by, .. } => f.attempts.push(Attempt {
                payment_id: *payment_id,
                method: *method,
                amount: *amount,
                status: ProviderPaymentStatus::Executing,
                paid_by: *paid_by,
                timed_out: false,
                started_at: at,
                settled_at: None,
                submitted_at: f.submitted_at,
            }),
            E::PaymentTimedOut { payment_id, .. } => {
                if let Some(a) = f.attempts.iter_mut().find(|a| a.payment_id == *payment_id) {
                    a.timed_out = true;
                }
            }
            E::PaymentFailed { payment_id, .. } => {
                if let Some(a) = f.attempts.iter_mut().find(|a| a.payment_id == *payment_id) {
                    a.status = ProviderPaymentStatus::Failed;
                    a.settled_at = Some(at);
                }
            }
            E::RequisitionPaid { payment_id, amount, method, paid_by, .. } => {
                f.status = Status::Paid;
                match f.attempts.iter_mut().find(|a| a.payment_id == *payment_id) {
                    Some(a) => {
                        a.status = ProviderPaymentStatus::Succeeded;
                        a.settled_at = Some(at);
                    }
                    None => f.attempts.push(Attempt {
                        payment_id: *payment_id,
                        method: *method,
                        amount: *amount,
                        status: ProviderPaymentStatus::Succeeded,
                        paid_by: *paid_by,
                        timed_out: false,
                        started_at: at,
                        settled_at: Some(at),
                        submitted_at: f.submitted_at,
                    }),
                }
            }
            _ => {}
        }
        Some(f)
    }

    /// Whether the event changes anything here (the others are skipped without reading rows).
    pub fn concerns(event: &RequisitionEvent) -> bool {
        use RequisitionEvent as E;
        !matches!(
            event,
            E::ApprovalOverdue { .. }
                | E::UrgencyDeclared { .. }
                | E::UrgencyDenied { .. }
                | E::DuplicateDismissed { .. }
                | E::PaymentReviewed { .. }
                | E::PaymentFlagged { .. }
                | E::CategoryChosen { .. }
                | E::ReceiptAttached { .. }
                | E::ReceiptOverdue { .. }
                | E::PaymentCodeIssued { .. }
                | E::PaymentCodeRejected { .. }
                | E::PaymentReconciled { .. }
        )
    }

    /// The step it waits for and who may take it (`None` for the people: any holder of the
    /// role), while pending approval: the domain's rule (`routing::waiting_step`).
    pub fn waiting_for(&self) -> Option<(Role, Option<&[Uuid]>)> {
        if self.status != Status::PendingApproval {
            return None;
        }
        let i = waiting_step(self.chain.len(), self.eligible.as_deref(), self.after, self.fast_tracked)?;
        let people = self.eligible.as_ref().and_then(|l| l.get(i)).map(Vec::as_slice);
        Some((self.chain[i], people))
    }

    /// Whether it is in the unit filters (the fund filter included).
    pub fn matches(&self, units: &UnitFilter) -> bool {
        let is = |want: Option<Uuid>, have: Option<Uuid>| want.is_none() || want == have;
        is(units.company_id, self.company_id)
            && is(units.region_id, self.region_id)
            && is(units.branch_id, self.branch_id)
            && is(units.department_id, self.department_id)
            && is(units.cost_centre_id, self.cost_centre_id)
            && is(units.fund_id, Some(self.fund_id))
    }
}

/// What the three reports are built from: the requisitions in scope that may hold something
/// for the period (anything that happened from `from` on, or still waiting for approval), and
/// the names of the people they mention.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub requisitions: Vec<RequisitionFacts>,
    pub names: HashMap<Uuid, String>,
    /// The filters as people read them ([`super::units::check_filters`]).
    pub filters: Vec<(String, String)>,
}

impl Facts {
    /// Sorted by id: both sources give the same order.
    fn new(
        mut requisitions: Vec<RequisitionFacts>,
        names: HashMap<Uuid, String>,
        filters: Vec<(String, String)>,
    ) -> Self {
        requisitions.sort_by_key(|r| r.id);
        Self { requisitions, names, filters }
    }

    /// A person's name as printed (their id when unknown).
    pub fn name(&self, id: Uuid) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| id.to_string())
    }
}

pub use super::units::check_filters as check_units;

/// The people the facts mention, by id: display name (or email).
async fn names(
    pool: &PgPool,
    requisitions: &[RequisitionFacts],
) -> Result<HashMap<Uuid, String>, ReportError> {
    let mut ids: Vec<Uuid> = Vec::new();
    for r in requisitions {
        ids.push(r.requester_id);
        ids.extend(r.actions.iter().map(|a| a.by));
        if let Some((_, Some(people))) = r.waiting_for() {
            ids.extend_from_slice(people);
        }
    }
    ids.sort();
    ids.dedup();
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM users WHERE id = ANY($1)").bind(&ids).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// The facts from the read model, within the caller's scope (the visibility rule on
/// `rm_requisitions`) and the filters.
pub async fn read(
    pool: &PgPool,
    scope: &ReportScope,
    actor: Uuid,
    params: &ReportParams,
) -> Result<Facts, ReportError> {
    let filters = check_units(pool, scope, &params.units).await?;
    let mut qb: QueryBuilder<'_, Postgres> =
        QueryBuilder::new("SELECT facts FROM rm_report_requisitions WHERE (updated_at >= ");
    qb.push_bind(params.from).push(" OR status = ").push_bind(Status::PendingApproval).push(")");
    qb.push(" AND created_at < ").push_bind(params.to.max(params.from));
    qb.push(" AND");
    crate::queries::push_company(&mut qb, "company_id", scope.company);
    if scope.own_only {
        qb.push(" AND requester_id = ").push_bind(actor);
    } else if !scope.requisitions.everything {
        // Everyone's in the company (auditors, admins) needs no look at `rm_requisitions`.
        qb.push(" AND id IN (SELECT id FROM rm_requisitions WHERE true");
        crate::queries::push_scope(&mut qb, &scope.requisitions);
        qb.push(")");
    }
    let rows: Vec<Json<RequisitionFacts>> = qb.build_query_scalar().fetch_all(pool).await?;
    let requisitions: Vec<RequisitionFacts> =
        rows.into_iter().map(|j| j.0).filter(|r| r.matches(&params.units)).collect();
    let names = names(pool, &requisitions).await?;
    Ok(Facts::new(requisitions, names, filters))
}

/// The same facts folded from the events in global order (`pettycash-replay report`): the
/// requisitions of `scope.company` (the view of its auditor) that match the filters.
pub async fn replay(pool: &PgPool, scope: &ReportScope, params: &ReportParams) -> Result<Facts, ReportError> {
    let filters = check_units(pool, scope, &params.units).await?;
    let read =
        crate::reader::in_order(&crate::reader::Selection::events(), crate::reader::Filter::Everything);
    let mut events = read.fetch::<crate::EventRow>(pool);
    let mut all: BTreeMap<Uuid, RequisitionFacts> = BTreeMap::new();
    while let Some(e) = events.try_next().await? {
        if e.aggregate_type != "requisition" {
            continue;
        }
        let event: RequisitionEvent = e.decode()?;
        let id: Uuid = e.aggregate_id.parse().map_err(anyhow::Error::from)?;
        if let Some(f) = RequisitionFacts::fold(all.remove(&id), &event, e.recorded_at) {
            all.insert(id, f);
        }
    }
    let requisitions: Vec<RequisitionFacts> = all
        .into_values()
        .filter(|r| {
            r.company_id == scope.company
                && (r.updated_at >= params.from || r.status == Status::PendingApproval)
                && r.created_at < params.to.max(params.from)
                && r.matches(&params.units)
        })
        .collect();
    let names = names(pool, &requisitions).await?;
    Ok(Facts::new(requisitions, names, filters))
}

/// The median and the 90th percentile (nearest rank: the smallest value with at least 90 % of
/// the values at or below it) of `values`, sorted in place. The median of an even count is the
/// mean of the two middle values.
pub fn median_p90(values: &mut [Decimal]) -> Option<(Decimal, Decimal)> {
    if values.is_empty() {
        return None;
    }
    values.sort();
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / Decimal::TWO };
    let rank = (n * 9).div_ceil(10).max(1);
    Some((median, values[rank - 1]))
}

/// Hours between two instants, to two decimals (exact microseconds, then rounded: both sources
/// round the same values).
pub fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    let micros = (to - from).num_microseconds().unwrap_or(i64::MAX);
    (Decimal::new(micros, 6) / Decimal::from(3600)).round_dp(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let d = |v: i64| Decimal::from(v);
        let mut v: Vec<Decimal> = (1..=10).rev().map(d).collect();
        assert_eq!(median_p90(&mut v), Some((Decimal::new(55, 1), d(9))));
        assert_eq!(median_p90(&mut [d(4)]), Some((d(4), d(4))));
        assert_eq!(median_p90(&mut [d(1), d(3), d(2)]), Some((d(2), d(3))));
        assert_eq!(median_p90(&mut []), None);
    }
}
