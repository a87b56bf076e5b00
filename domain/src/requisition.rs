//! A requisition: a request for cash from a fund, approved by a chain of roles, paid once.
//!
//! ```text
//! draft ──submit──▶ pending_approval ──approve (last step)──▶ approved ──pay──▶ paid
//!   ▲                 │  │  └─reject──▶ rejected
//!   │                 │  └─request changes──▶ changes_requested ──edit / submit──▶ pending_approval
//!   └──(create)       ├─cancel (requester, any time before payment)──▶ cancelled
//!                     └─override (an admin, emergency, justified)──▶ approved
//! ```
//!
//! A submission may be marked urgent with a reason: the first step's approver confirms or
//! denies the urgency before anyone approves; confirmed on a threshold that allows it, the
//! chain waits for its final step only (`fast_tracked`), and an approver can revert that.
//!
//! Each submission resolves its approval chain afresh from the amount being submitted and
//! records it, and clears earlier approvals: an edit after changes were requested can never
//! keep approvals given to a different amount ("self-approval through edits" in the old
//! system).

use crate::delegation::{DelegationStatus, OnBehalf, Received};
use crate::error::{clean_optional, clean_text, DomainError};
use crate::fund::PaymentMethod;
use crate::money::Currency;
use crate::organisation::{Origin, UnitPath};
use crate::policy::ApprovalPolicy;
use crate::role::Role;
use crate::routing::{Directory, EscalatedTo, EscalationReason, Holder};
use crate::{Actor, Id};
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

mod budget;
mod receipts;
mod reconcile;
mod review;
pub use receipts::{
    clean_file_name, Receipt, ReceiptFile, CONTENT_TYPES as RECEIPT_CONTENT_TYPES, MAX_RECEIPTS,
    MAX_RECEIPT_BYTES, NAME_MAX as RECEIPT_NAME_MAX,
};
pub use reconcile::{clean_statement_reference, Reconciliation, STATEMENT_REFERENCE_MAX};
pub use review::{Dismissal, DuplicateCheck, DuplicateFlag, PaymentReview, ReviewStatus};

pub const PURPOSE_MAX: usize = 1_000;
pub const PAYEE_MAX: usize = 200;
pub const CATEGORY_MAX: usize = 100;
pub const REASON_MAX: usize = 2_000;
pub const REFERENCE_MAX: usize = 100;

/// In lifecycle order (the order of [`Status::ALL`], also their `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Draft,
    PendingApproval,
    ChangesRequested,
    Approved,
    Rejected,
    Cancelled,
    Paid,
    /// Sent back for changes and not resubmitted by the deadline.
    Expired,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Draft,
        Status::PendingApproval,
        Status::ChangesRequested,
        Status::Approved,
        Status::Rejected,
        Status::Cancelled,
        Status::Paid,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::PendingApproval => "pending_approval",
            Status::ChangesRequested => "changes_requested",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Paid => "paid",
            Status::Expired => "expired",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a requisition status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown requisition status `{0}`")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    /// Exactly [`Status::as_str`]: statuses are stored and sent in that form only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

impl Status {
    /// True once nothing can happen to the requisition any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Rejected | Status::Cancelled | Status::Paid | Status::Expired)
    }
}

/// One approval given: which step of the chain, in which role, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub step: usize,
    pub role: Role,
    pub approver_id: Id,
    /// The person the approver decided for, as their delegate (`None`: in their own name).
    #[serde(default)]
    pub on_behalf_of: Option<Id>,
}

/// The payment that settled a requisition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_id: Id,
    pub paid_by: Id,
    pub method: PaymentMethod,
    pub reference: Option<String>,
}

/// The requisition's state, folded from its events. This is also what `GET
/// /api/requisitions/{id}` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requisition {
    pub id: Option<Id>,
    pub fund_id: Option<Id>,
    pub currency: Option<Currency>,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub purpose: String,
    pub payee: Option<String>,
    pub category: Option<String>,
    pub requester_id: Option<Id>,
    pub status: Status,
    /// The chain resolved at the latest submission.
    pub chain: Vec<Role>,
    pub policy_version: u32,
    /// Approvals given in the current round.
    pub approvals: Vec<Approval>,
    /// Everyone who approved in an earlier round (before changes were requested): they may
    /// not pay it either.
    pub former_approvers: Vec<Id>,
    /// How many times it was submitted.
    pub submissions: u32,
    /// Reason given with the latest rejection, change request or cancellation.
    pub last_reason: Option<String>,
    pub payment: Option<PaymentRecord>,
    /// A payment through a provider that started and has no result yet (issue #14): it stays
    /// approved, and no other payment may start, until the provider reports.
    #[serde(default)]
    pub payment_in_flight: Option<PaymentRecord>,
    /// The requester's organisation unit (with its path) when it was created; `None`:
    /// unscoped (no units, or created before units existed).
    #[serde(default)]
    pub unit: Option<UnitPath>,
    /// Branch, head office or field; `None` when unscoped.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// The threshold the latest submission fell under (`None` before routing recorded it).
    #[serde(default)]
    pub threshold: Option<String>,
    /// Who may act at each step of the chain, as resolved at the latest submission (an empty
    /// list: a step escalated to the next one). `None`: submitted before routing recorded
    /// people; any holder of a step's role may act on it.
    #[serde(default)]
    pub eligible: Option<Vec<Vec<Id>>>,
    /// Steps of the current round that went to the admins (`ApprovalEscalated`).
    #[serde(default)]
    pub escalated_to_admin: Vec<usize>,
    /// While changes are requested: by when the requester must resubmit (`None` for a request
    /// made before deadlines were recorded: no expiry).
    #[serde(default)]
    pub changes_deadline: Option<DateTime<Utc>>,
    /// The current step's deadlines: when its approvers are reminded, when it goes to the
    /// admins; and whether either happened.
    #[serde(default)]
    pub step_due: Option<StepDue>,
    #[serde(default)]
    pub step_reminded: bool,
    #[serde(default)]
    pub step_escalated: bool,
    /// The latest submission was marked urgent by the requester: why, and what the first
    /// approver decided (`None`: not urgent).
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// Confirmed urgency shortened the chain to its final step (the recorded chain is kept;
    /// an approver can revert the fast-track).
    #[serde(default)]
    pub fast_tracked: bool,
    /// The admin who approved it by emergency override (`ApprovalOverridden`).
    #[serde(default)]
    pub overridden_by: Option<Id>,
    // ----- possible duplicates and FP&A review (`review`) -----
    /// Everyone who sent it back for changes, in any round.
    #[serde(default)]
    pub sent_back_by: Vec<Id>,
    /// The latest submission's possible-duplicate flag.
    #[serde(default)]
    pub duplicates: Option<DuplicateFlag>,
    /// A `DuplicateSuspected` waiting for the `RequisitionSubmitted` that follows it.
    #[serde(default)]
    pub next_duplicates: Option<DuplicateFlag>,
    /// FP&A's review after payment.
    #[serde(default)]
    pub review: Option<PaymentReview>,
    // ----- category and budgets (`budget`, issue #14 [treasury]) -----
    /// The expense category chosen (`crate::category`; `None`: none, as requisitions before
    /// categories, whose free text stays in `category` as a label).
    #[serde(default)]
    pub category_id: Option<Id>,
    /// The cost centre chosen (an organisation unit of kind `cost_centre`; `None`: none).
    #[serde(default)]
    pub cost_centre_id: Option<Id>,
    /// The budgets the latest submission exceeds (`BudgetExceeded`), shown to its approvers.
    #[serde(default)]
    pub budget_exceeded: Vec<crate::budget::BudgetFlag>,
    /// `BudgetExceeded` events waiting for the `RequisitionSubmitted` that follows them.
    #[serde(default)]
    pub next_budget_exceeded: Vec<crate::budget::BudgetFlag>,
    // ----- receipts (`receipts`) -----
    /// The receipts attached, in order.
    #[serde(default)]
    pub receipts: Vec<Receipt>,
    /// The requester was reminded that a receipt is missing (`ReceiptOverdue`).
    #[serde(default)]
    pub receipt_reminded: bool,
    // ----- reconciliation (`reconcile`) -----
    /// Its payment matched with a bank or mobile-money statement line (`PaymentReconciled`).
    #[serde(default)]
    pub reconciliation: Option<Reconciliation>,
}

/// An urgent submission: the requester's reason, whether its threshold allows a fast-track,
/// and the first approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Urgency {
    pub reason: String,
    pub fast_track_allowed: bool,
    pub decision: UrgencyDecision,
}

/// What the first approver decided about an urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum UrgencyDecision {
    /// Nobody decided yet: the first step may not approve until someone does.
    Pending,
    Confirmed {
        by: Id,
    },
    Denied {
        by: Id,
    },
}

impl UrgencyDecision {
    /// Its one text form: `pending`, `confirmed`, `denied`.
    pub fn as_str(&self) -> &'static str {
        match self {
            UrgencyDecision::Pending => "pending",
            UrgencyDecision::Confirmed { .. } => "confirmed",
            UrgencyDecision::Denied { .. } => "denied",
        }
    }

    /// Who decided (`None` while pending).
    pub fn by(&self) -> Option<Id> {
        match self {
            UrgencyDecision::Pending => None,
            UrgencyDecision::Confirmed { by } | UrgencyDecision::Denied { by } => Some(*by),
        }
    }
}

/// When a step that became current is overdue: its approvers are reminded at `remind_at`, and
/// it goes to the admins at `escalate_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDue {
    pub remind_at: DateTime<Utc>,
    pub escalate_at: DateTime<Utc>,
}

/// How long a step may wait, from the runtime settings (`approval_reminder_hours`,
/// `approval_escalation_hours`), and the time now: what [`StepDue`] the next step gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub now: DateTime<Utc>,
    pub remind_after_hours: u32,
    pub escalate_after_hours: u32,
}

impl Deadlines {
    fn step_due(&self) -> StepDue {
        StepDue {
            remind_at: self.now + chrono::Duration::hours(i64::from(self.remind_after_hours)),
            escalate_at: self.now + chrono::Duration::hours(i64::from(self.escalate_after_hours)),
        }
    }
}

/// The longest a change request may give the requester.
pub const MAX_CHANGES_DAYS: i64 = 90;

impl Requisition {
    /// The index in the chain of the step the next decision is for, while pending approval:
    /// the first after the last approval that someone may act on (escalated steps are
    /// skipped, `routing::next_step`).
    pub fn current_step(&self) -> Option<usize> {
        if self.status != Status::PendingApproval {
            return None;
        }
        let after = self.approvals.last().map_or(0, |a| a.step + 1);
        crate::routing::waiting_step(self.chain.len(), self.eligible.as_deref(), after, self.fast_tracked)
    }

    /// The role the next approval needs, while pending.
    pub fn current_step_role(&self) -> Option<Role> {
        self.current_step().map(|step| self.chain[step])
    }

    /// Who may decide the current step (`None`: any holder of its role; before routing
    /// recorded people).
    pub fn current_eligible(&self) -> Option<&[Id]> {
        let step = self.current_step()?;
        self.eligible.as_ref().and_then(|lists| lists.get(step)).map(Vec::as_slice)
    }

    /// True when `actor` may read this requisition: the one rule of
    /// [`crate::visibility::RequisitionScope`].
    pub fn readable_by(&self, actor: &Actor) -> bool {
        let approvers: Vec<Id> = self.approvals.iter().map(|a| a.approver_id).collect();
        let facts = crate::visibility::RequisitionFacts { approvers: &approvers, ..self.into() };
        crate::visibility::RequisitionScope::of(actor).admits(&facts)
    }

    fn require_requester(&self, actor: &Actor, action: &'static str) -> Result<(), DomainError> {
        if self.requester_id == Some(actor.user_id) {
            Ok(())
        } else {
            Err(DomainError::NotRequester { action })
        }
    }

    fn require_status(&self, allowed: &[Status], action: &'static str) -> Result<(), DomainError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(DomainError::InvalidTransition { status: self.status, action })
        }
    }

    /// The checks shared by approve, reject and request changes: pending, not the requester,
    /// not someone who approved an earlier step, holding the current step's role.
    fn check_decider(&self, actor: &Actor, action: &'static str) -> Result<(usize, Role), DomainError> {
        self.currency()?;
        self.require_status(&[Status::PendingApproval], action)?;
        if self.requester_id == Some(actor.user_id) {
            return Err(DomainError::SelfApproval);
        }
        // Approving through a delegate counts as the delegator's approval.
        if self
            .approvals
            .iter()
            .any(|a| a.approver_id == actor.user_id || a.on_behalf_of == Some(actor.user_id))
        {
            return Err(DomainError::DuplicateApprover);
        }
        let step =
            self.current_step().ok_or(DomainError::InvalidTransition { status: self.status, action })?;
        let role = self.chain[step];
        // A step escalated to the admins is theirs; any other needs its role.
        let required = if self.escalated_to_admin.contains(&step) { Role::Admin } else { role };
        if !actor.has(required) {
            return Err(DomainError::MissingRole { required });
        }
        Ok((step, role))
    }

    /// The current step was routed to `actor` (when routing recorded people for it).
    fn check_eligible(&self, actor: &Actor, role: Role) -> Result<(), DomainError> {
        match self.current_eligible() {
            Some(eligible) if !eligible.contains(&actor.user_id) => Err(DomainError::NotEligible { role }),
            _ => Ok(()),
        }
    }

    /// Whether `actor` may decide this requisition now, in their own name or on a delegator's
    /// behalf: the checks approve, reject and request changes share ([`Self::check_decider`]
    /// and [`Self::check_eligible_or_delegated`]). Approve refuses a few more cases (an urgency
    /// not yet decided, a sponsored account), which its command still judges. The web pages
    /// ask this before they offer the decision forms, so a page and the command agree.
    pub fn check_may_decide(&self, actor: &Actor, received: &Received) -> Result<(), DomainError> {
        let (step, role) = self.check_decider(actor, "decide")?;
        self.check_eligible_or_delegated(actor, step, role, received).map(|_| ())
    }

    /// Confirm or deny an urgency: an approver of the current (first) step, while the urgency
    /// waits for a decision.
    fn check_urgency_decider(&self, actor: &Actor, action: &'static str) -> Result<(), DomainError> {
        self.currency()?;
        self.require_status(&[Status::PendingApproval], action)?;
        match self.urgency.as_ref().map(|u| u.decision) {
            Some(UrgencyDecision::Pending) => {}
            None => return Err(DomainError::Urgency("this requisition was not submitted as urgent")),
            Some(_) => return Err(DomainError::Urgency("the urgency was already decided")),
        }
        let (_, role) = self.check_decider(actor, action)?;
        self.check_eligible(actor, role)
    }

    /// The current step was routed to `actor`, or to someone who delegated `role` to them (see
    /// `crate::delegation`): then the decision is on that person's behalf (`Some`). A delegate
    /// never decides a requisition they approved before (any round), nor for someone who
    /// approved a step of this round, nor a step escalated to the admins; their delegation must
    /// be for the step's role and active at `received.now`.
    fn check_eligible_or_delegated(
        &self,
        actor: &Actor,
        step: usize,
        role: Role,
        received: &Received,
    ) -> Result<Option<OnBehalf>, DomainError> {
        let not_eligible = match self.check_eligible(actor, role) {
            Ok(()) => return Ok(None),
            Err(e) => e,
        };
        let eligible = self.current_eligible().unwrap_or_default();
        if self.escalated_to_admin.contains(&step) {
            return Err(not_eligible);
        }
        let from_step: Vec<_> = received
            .delegations
            .iter()
            .filter_map(|d| d.grant.as_ref().map(|g| (d, g)))
            .filter(|(_, g)| g.delegate_id == actor.user_id && eligible.contains(&g.delegator_id))
            .filter(|(_, g)| {
                !self
                    .approvals
                    .iter()
                    .any(|a| a.approver_id == g.delegator_id || a.on_behalf_of == Some(g.delegator_id))
            })
            .collect();
        if from_step.is_empty() {
            return Err(not_eligible);
        }
        if self.former_approvers.contains(&actor.user_id) {
            return Err(DomainError::DelegateAlreadyActed);
        }
        let usable = from_step
            .iter()
            .find(|(d, g)| g.role == role && d.status_at(received.now) == DelegationStatus::Active);
        if let Some((_, g)) = usable {
            return Ok(Some(OnBehalf { delegator_id: g.delegator_id, delegation_id: g.delegation_id }));
        }
        // Say why the closest one does not serve: its role, else its status.
        match from_step.iter().find(|(_, g)| g.role == role) {
            Some((d, _)) => Err(DomainError::DelegationInactive { status: d.status_at(received.now) }),
            None => Err(DomainError::DelegationWrongRole { delegated: from_step[0].1.role, required: role }),
        }
    }

    /// Refuses an actor registered or given a role by someone who requested or approved this
    /// requisition (in any round): an admin could otherwise create a puppet account and pay
    /// or approve their own request through it.
    fn check_not_sponsored(&self, actor: &Actor, action: &'static str) -> Result<(), DomainError> {
        let mut participants = self
            .requester_id
            .into_iter()
            .chain(self.approvals.iter().map(|a| a.approver_id))
            .chain(self.former_approvers.iter().copied())
            .chain(self.overridden_by);
        if participants.any(|p| actor.sponsors.contains(&p)) {
            return Err(DomainError::SponsoredByParticipant { action });
        }
        Ok(())
    }

    fn currency(&self) -> Result<&Currency, DomainError> {
        self.currency.as_ref().ok_or(DomainError::NotFound { what: "requisition" })
    }

    /// Whether `payer` may pay it now (asked before a payment and before a payment code is
    /// issued): treasury, neither its requester nor an approver (nor their puppet), and the
    /// requisition approved and not paid.
    pub fn check_payer(&self, payer: &Actor) -> Result<(), DomainError> {
        self.currency()?;
        if !payer.has(Role::Treasury) {
            return Err(DomainError::MissingRole { required: Role::Treasury });
        }
        if self.requester_id == Some(payer.user_id) {
            return Err(DomainError::PayerIsRequester);
        }
        if self.approvals.iter().any(|a| a.approver_id == payer.user_id)
            || self.former_approvers.contains(&payer.user_id)
            || self.overridden_by == Some(payer.user_id)
        {
            return Err(DomainError::PayerIsApprover);
        }
        self.check_not_sponsored(payer, "pay")?;
        if let Some(p) = &self.payment_in_flight {
            return Err(DomainError::PaymentInFlight { payment_id: p.payment_id });
        }
        match self.status {
            Status::Approved => Ok(()),
            Status::Paid => Err(DomainError::AlreadyPaid),
            other => Err(DomainError::NotApproved { status: other }),
        }
    }
}

/// Fields an edit may change; `None` leaves a field as it is. An empty payee or category
/// clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub amount: Option<Decimal>,
    pub purpose: Option<String>,
    pub payee: Option<String>,
    pub category: Option<String>,
}

/// Applies a `RequisitionEdited` event's fields to the current values: `None` keeps a field,
/// an empty payee or category clears it. Shared by the aggregate and the read model so the
/// two can never disagree on what an edit means.
#[allow(clippy::type_complexity)]
pub fn apply_edit(
    current: (&mut Decimal, &mut String, &mut Option<String>, &mut Option<String>),
    edit: (Option<Decimal>, Option<String>, Option<String>, Option<String>),
) {
    let (amount, purpose, payee, category) = current;
    if let Some(a) = edit.0 {
        *amount = a;
    }
    if let Some(p) = edit.1 {
        *purpose = p;
    }
    if let Some(p) = edit.2 {
        *payee = (!p.is_empty()).then_some(p);
    }
    if let Some(c) = edit.3 {
        *category = (!c.is_empty()).then_some(c);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequisitionCommand {
    /// Create a draft. `currency` is the fund's currency, looked up by the caller.
    Create {
        requisition_id: Id,
        fund_id: Id,
        currency: Currency,
        amount: Decimal,
        purpose: String,
        payee: Option<String>,
        category: Option<String>,
        /// The expense category, checked by the caller against the requester's company's
        /// catalogue (`Catalogue::resolve`).
        category_id: Option<Id>,
        /// A cost centre of the requester's company, checked by the caller.
        cost_centre_id: Option<Id>,
        /// The requester, with their unit as it is now (`Actor::unit`): the requisition
        /// belongs to it for good.
        requester: Actor,
        /// The origin the requester asked for (`None`: the one their unit gives).
        origin: Option<Origin>,
    },
    Edit {
        changes: Changes,
        actor: Actor,
    },
    /// Submit for approval, routed by the policy in force for the amount now: the threshold,
    /// the chain and who may act at each step among `directory` (looked up by the caller for
    /// the requisition's company).
    Submit {
        policy: ApprovalPolicy,
        directory: Directory,
        comment: Option<String>,
        /// The requester's reason when they mark it urgent (`None`: not urgent).
        urgency: Option<String>,
        deadlines: Deadlines,
        /// The requester's other requisitions that look like this one (`review`).
        duplicates: DuplicateCheck,
        actor: Actor,
    },
    /// The first step's approver agrees it is urgent: on a threshold that allows it, the
    /// chain is shortened to its final step (which gets fresh deadlines).
    ConfirmUrgency {
        comment: Option<String>,
        deadlines: Deadlines,
        actor: Actor,
    },
    /// The first step's approver does not agree it is urgent: the normal chain goes on.
    DenyUrgency {
        reason: String,
        actor: Actor,
    },
    /// Back to the full recorded chain after a fast-track: by whoever confirmed the urgency or
    /// an approver of the step it waits for.
    RevertFastTrack {
        reason: String,
        deadlines: Deadlines,
        actor: Actor,
    },
    /// Emergency approval by an admin, skipping the steps not yet approved: justification
    /// required, never on one's own requisition nor by someone who approved it.
    Override {
        justification: String,
        actor: Actor,
    },
    /// Approve the current step: in the actor's name when it was routed to them, else on the
    /// behalf of one of its people who delegated the step's role to the actor (`delegations`:
    /// what the actor received from them, looked up by the caller).
    Approve {
        comment: Option<String>,
        deadlines: Deadlines,
        delegations: Received,
        actor: Actor,
    },
    Reject {
        reason: String,
        delegations: Received,
        actor: Actor,
    },
    /// Send back for changes, to be resubmitted by `deadline` (after `now`).
    RequestChanges {
        reason: String,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
        delegations: Received,
        actor: Actor,
    },
    /// The service's scheduler: changes were requested and the deadline passed.
    Expire {
        now: DateTime<Utc>,
    },
    /// The service's scheduler: the current step waited past its reminder time.
    RemindOverdue {
        now: DateTime<Utc>,
    },
    /// The service's scheduler: the current step waited past its escalation time; it goes to
    /// `admins` (the company's active admins, looked up by the caller) but never to the
    /// requester, anyone who approved this round, or anyone they sponsored.
    EscalateOverdue {
        now: DateTime<Utc>,
        admins: Vec<Holder>,
    },
    Cancel {
        reason: Option<String>,
        actor: Actor,
    },
    Pay {
        payment_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
        payer: Actor,
    },
    /// A payment through a provider starts (the fund reserves the amount in the same
    /// transaction): the same checks as `Pay`; the requisition is paid only on `CompletePayment`.
    StartPayment {
        payment_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
        payer: Actor,
    },
    /// The provider reported success for the payment in flight: the money left.
    CompletePayment {
        payment_id: Id,
    },
    /// The service's scheduler: the payment in flight stayed executing past the timeout
    /// (`minutes`); recorded once (the caller guards that), for the alert. The cash stays
    /// reserved: the provider's status decides what follows.
    TimeOutPayment {
        payment_id: Id,
        minutes: u32,
    },
    /// The payment in flight failed for good: the requisition is approved (payable) again.
    FailPayment {
        payment_id: Id,
        reason: String,
    },
    /// Treasury asks for a one-time code to pay it (`payment`): the same checks as `Pay`, and
    /// a record that a code was issued (the code is not in the event).
    IssuePaymentCode {
        method: PaymentMethod,
        expires_at: DateTime<Utc>,
        payer: Actor,
    },
    /// A payment code given by `payer_id` was refused: recorded for the audit trail, whatever
    /// the requisition's state.
    RecordCodeRejected {
        payer_id: Id,
        problem: crate::payment::CodeProblem,
        attempts: u32,
    },
    /// An approver who may decide the current step dismisses the possible-duplicate flag.
    DismissDuplicate {
        reason: String,
        actor: Actor,
    },
    /// FP&A: the paid requisition was reviewed.
    MarkReviewed {
        comment: Option<String>,
        now: DateTime<Utc>,
        actor: Actor,
    },
    /// FP&A: the paid requisition needs a closer look.
    FlagAfterPayment {
        reason: String,
        now: DateTime<Utc>,
        actor: Actor,
    },
    /// The requester chooses the expense category and/or the cost centre (each checked by the
    /// caller; `None`: unchanged), while it is a draft or changes are requested.
    Categorise {
        category_id: Option<Id>,
        cost_centre_id: Option<Id>,
        actor: Actor,
    },
    /// Just before a submission: the budgets it would exceed (`flags`, computed by the caller,
    /// `crate::budget::overruns`). Flagged, or refused when `block` (the `budget_block`
    /// setting).
    CheckBudgets {
        flags: Vec<crate::budget::BudgetFlag>,
        block: bool,
        actor: Actor,
    },
    /// Record a receipt already stored (content-addressed) by the caller.
    AttachReceipt {
        receipt_id: Id,
        file: ReceiptFile,
        actor: Actor,
    },
    /// The service's scheduler: paid at `paid_at` (looked up by the caller), `days` ago or
    /// more, and still without a receipt: the requester is reminded, once.
    RemindReceipt {
        paid_at: DateTime<Utc>,
        days: u32,
        now: DateTime<Utc>,
    },
    /// Treasury matched the requisition's succeeded bank or mobile-money payment with a
    /// statement line (`reconcile`): once; the same reference again changes nothing.
    Reconcile {
        payment_id: Id,
        statement_reference: String,
        now: DateTime<Utc>,
        actor: Actor,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RequisitionEvent {
    RequisitionCreated {
        requisition_id: Id,
        fund_id: Id,
        currency: Currency,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        purpose: String,
        payee: Option<String>,
        /// The requester's free text (a label, as given; before categories the only record of
        /// one).
        category: Option<String>,
        requester_id: Id,
        /// Version 2: where it comes from (`None`: unscoped). Version 1 had neither this nor
        /// `unit` (`upcast::RequisitionCreatedV2`).
        origin: Option<Origin>,
        /// Version 2: the requester's unit and its path when it was created.
        unit: Option<UnitPath>,
        /// Version 3: the expense category chosen (`None`: none; and in versions 1 and 2).
        category_id: Option<Id>,
        /// Version 3: the cost centre chosen (`None`: none; and in versions 1 and 2).
        cost_centre_id: Option<Id>,
    },
    /// Only the changed fields are set.
    RequisitionEdited {
        #[serde(with = "rust_decimal::serde::str_option")]
        amount: Option<Decimal>,
        purpose: Option<String>,
        /// `Some(None)` is not representable in JSON; an empty string clears the field.
        payee: Option<String>,
        category: Option<String>,
    },
    RequisitionSubmitted {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        chain: Vec<Role>,
        policy_version: u32,
        submitted_by: Id,
        /// Version 2: the threshold the amount fell under (`None` in version 1).
        threshold: Option<String>,
        /// Version 2: who may act at each step of `chain` (an empty list: escalated to the
        /// next step). `None` in version 1: any holder of the step's role.
        eligible: Option<Vec<Vec<Id>>>,
        /// Version 2: the requester's comment.
        comment: Option<String>,
        /// Version 2: when the first step's approvers are reminded and the step escalated.
        due: Option<StepDue>,
    },
    /// The requester marked the submission urgent (follows `RequisitionSubmitted`).
    UrgencyDeclared {
        reason: String,
        /// Whether the threshold it fell under allows a fast-track.
        fast_track_allowed: bool,
    },
    /// The first step's approver agreed it is urgent. `fast_tracked`: the chain now waits for
    /// its final step only, due as `due` says.
    UrgencyConfirmed {
        confirmed_by: Id,
        fast_tracked: bool,
        comment: Option<String>,
        due: Option<StepDue>,
    },
    /// The first step's approver did not agree it is urgent: the normal chain goes on.
    UrgencyDenied {
        denied_by: Id,
        reason: String,
    },
    /// A fast-track was undone: the full recorded chain applies again from its first step not
    /// yet approved, due as `due` says.
    FastTrackReverted {
        reverted_by: Id,
        reason: String,
        due: Option<StepDue>,
    },
    /// An admin approved it in an emergency, skipping `skipped` (the steps not yet approved).
    /// Recorded as itself, never as approvals of those steps.
    ApprovalOverridden {
        overridden_by: Id,
        justification: String,
        skipped: Vec<usize>,
    },
    /// A step did not go to, or no longer waits for, the holders of its role: at submission,
    /// nobody in scope could take it (to the next step, or to the admins); or it waited past
    /// its escalation time (`overdue`: to the admins, `people`). Never an approval.
    ApprovalEscalated {
        step: usize,
        role: Role,
        reason: EscalationReason,
        to: EscalatedTo,
        /// Who the step goes to now, when the escalation names them (an overdue step); absent
        /// otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        people: Option<Vec<Id>>,
    },
    /// The current step waited past its reminder time: its approvers were reminded.
    ApprovalOverdue {
        step: usize,
        role: Role,
    },
    /// Changes were requested and not made by the deadline: final.
    RequisitionExpired {
        deadline: DateTime<Utc>,
    },
    RequisitionApproved {
        step: usize,
        role: Role,
        approver_id: Id,
        /// True when this approval completes the chain.
        completes_chain: bool,
        /// Version 2: the approver's comment.
        comment: Option<String>,
        /// Version 2: the deadlines of the step that becomes current (none when this approval
        /// completes the chain).
        due: Option<StepDue>,
        /// Version 3: the person the approver decided for, as their delegate (`None`: in their
        /// own name; and in versions 1 and 2).
        on_behalf_of: Option<Id>,
        /// Version 3: the delegation the approver acted by (with `on_behalf_of`).
        delegation_id: Option<Id>,
    },
    RequisitionRejected {
        step: usize,
        role: Role,
        rejected_by: Id,
        reason: String,
        /// Version 2: as in `RequisitionApproved` (version 3).
        on_behalf_of: Option<Id>,
        delegation_id: Option<Id>,
    },
    ChangesRequested {
        step: usize,
        role: Role,
        requested_by: Id,
        reason: String,
        /// Version 2: resubmit by then, or the requisition expires (`None` in version 1).
        deadline: Option<DateTime<Utc>>,
        /// Version 3: as in `RequisitionApproved` (version 3).
        on_behalf_of: Option<Id>,
        delegation_id: Option<Id>,
    },
    RequisitionCancelled {
        cancelled_by: Id,
        reason: Option<String>,
    },
    RequisitionPaid {
        payment_id: Id,
        fund_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        method: PaymentMethod,
        reference: Option<String>,
        paid_by: Id,
    },
    /// Recorded just before the `RequisitionSubmitted` it concerns, in its transaction: the
    /// requester has other requisitions with the same payee, amount and currency submitted
    /// within `window_days`.
    DuplicateSuspected {
        others: Vec<Id>,
        window_days: u32,
    },
    DuplicateDismissed {
        dismissed_by: Id,
        reason: String,
    },
    PaymentReviewed {
        reviewed_by: Id,
        comment: Option<String>,
        at: DateTime<Utc>,
    },
    PaymentFlagged {
        flagged_by: Id,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The requester chose the expense category and/or the cost centre (`None`: unchanged).
    CategoryChosen {
        category_id: Option<Id>,
        cost_centre_id: Option<Id>,
    },
    /// Recorded just before the `RequisitionSubmitted` it concerns, in its transaction: the
    /// submission takes a budget covering it over (`consumed + amount > budget`).
    BudgetExceeded {
        budget_id: Id,
        scope: crate::budget::BudgetScope,
        month: crate::budget::Month,
        #[serde(with = "rust_decimal::serde::str")]
        budget: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        consumed: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A receipt file, stored under its SHA-256 (`receipts`), was attached.
    ReceiptAttached {
        receipt_id: Id,
        /// Lowercase hex SHA-256 of the content.
        sha256: String,
        size: u64,
        /// `image/jpeg`, `image/png` or `application/pdf`, from the content.
        content_type: String,
        /// Sanitised: no directory, no control characters, at most 120 characters.
        original_name: String,
        attached_by: Id,
    },
    /// Paid `days` ago or more with no receipt: the requester was reminded (once).
    ReceiptOverdue {
        days: u32,
    },
    /// A payment through a provider started (the fund's `CashReserved` is in the same
    /// transaction); `RequisitionPaid` follows on success, `PaymentFailed` on failure.
    PaymentStarted {
        payment_id: Id,
        fund_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        method: PaymentMethod,
        reference: Option<String>,
        paid_by: Id,
    },
    /// The scheduler found the payment in flight still executing `minutes` after it started.
    PaymentTimedOut {
        payment_id: Id,
        minutes: u32,
    },
    /// The payment in flight failed for good (its reservation is released in the same
    /// transaction): approved again.
    PaymentFailed {
        payment_id: Id,
        reason: String,
    },
    /// A one-time payment code was mailed to `payer_id` (the code is in no event).
    PaymentCodeIssued {
        payer_id: Id,
        method: PaymentMethod,
        expires_at: DateTime<Utc>,
    },
    /// A payment code given by `payer_id` was refused (`attempts`: wrong attempts on the code
    /// so far, with this one).
    PaymentCodeRejected {
        payer_id: Id,
        problem: crate::payment::CodeProblem,
        attempts: u32,
    },
    /// Treasury matched the succeeded payment `payment_id` (bank or mobile money) with the
    /// statement line `statement_reference` (`reconcile`). At most one per requisition.
    PaymentReconciled {
        payment_id: Id,
        /// The fund it was paid from (its cash book shows the reconciliation).
        fund_id: Id,
        statement_reference: String,
        reconciled_by: Id,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RequisitionEvent {
    fn event_type(&self) -> String {
        match self {
            RequisitionEvent::RequisitionCreated { .. } => "RequisitionCreated",
            RequisitionEvent::RequisitionEdited { .. } => "RequisitionEdited",
            RequisitionEvent::RequisitionSubmitted { .. } => "RequisitionSubmitted",
            RequisitionEvent::UrgencyDeclared { .. } => "UrgencyDeclared",
            RequisitionEvent::UrgencyConfirmed { .. } => "UrgencyConfirmed",
            RequisitionEvent::UrgencyDenied { .. } => "UrgencyDenied",
            RequisitionEvent::FastTrackReverted { .. } => "FastTrackReverted",
            RequisitionEvent::ApprovalOverridden { .. } => "ApprovalOverridden",
            RequisitionEvent::ApprovalEscalated { .. } => "ApprovalEscalated",
            RequisitionEvent::ApprovalOverdue { .. } => "ApprovalOverdue",
            RequisitionEvent::RequisitionExpired { .. } => "RequisitionExpired",
            RequisitionEvent::RequisitionApproved { .. } => "RequisitionApproved",
            RequisitionEvent::RequisitionRejected { .. } => "RequisitionRejected",
            RequisitionEvent::ChangesRequested { .. } => "ChangesRequested",
            RequisitionEvent::RequisitionCancelled { .. } => "RequisitionCancelled",
            RequisitionEvent::RequisitionPaid { .. } => "RequisitionPaid",
            RequisitionEvent::DuplicateSuspected { .. } => "DuplicateSuspected",
            RequisitionEvent::DuplicateDismissed { .. } => "DuplicateDismissed",
            RequisitionEvent::PaymentReviewed { .. } => "PaymentReviewed",
            RequisitionEvent::PaymentFlagged { .. } => "PaymentFlagged",
            RequisitionEvent::CategoryChosen { .. } => "CategoryChosen",
            RequisitionEvent::BudgetExceeded { .. } => "BudgetExceeded",
            RequisitionEvent::ReceiptAttached { .. } => "ReceiptAttached",
            RequisitionEvent::ReceiptOverdue { .. } => "ReceiptOverdue",
            RequisitionEvent::PaymentCodeIssued { .. } => "PaymentCodeIssued",
            RequisitionEvent::PaymentStarted { .. } => "PaymentStarted",
            RequisitionEvent::PaymentFailed { .. } => "PaymentFailed",
            RequisitionEvent::PaymentTimedOut { .. } => "PaymentTimedOut",
            RequisitionEvent::PaymentCodeRejected { .. } => "PaymentCodeRejected",
            RequisitionEvent::PaymentReconciled { .. } => "PaymentReconciled",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            RequisitionEvent::RequisitionApproved { .. }
            | RequisitionEvent::ChangesRequested { .. }
            | RequisitionEvent::RequisitionCreated { .. } => "3",
            RequisitionEvent::RequisitionSubmitted { .. } | RequisitionEvent::RequisitionRejected { .. } => {
                "2"
            }
            _ => "1",
        }
        .into()
    }
}

impl Aggregate for Requisition {
    const TYPE: &'static str = "requisition";
    type Command = RequisitionCommand;
    type Event = RequisitionEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RequisitionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        use RequisitionCommand as C;
        use RequisitionEvent as E;
        match command {
            C::Create {
                requisition_id,
                fund_id,
                currency,
                amount,
                purpose,
                payee,
                category,
                category_id,
                cost_centre_id,
                requester,
                origin,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "requisition" });
                }
                if !requester.has(Role::Staff) {
                    return Err(DomainError::MissingRole { required: Role::Staff });
                }
                let amount =
                    currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                let event = E::RequisitionCreated {
                    requisition_id,
                    fund_id,
                    currency,
                    amount,
                    purpose: clean_text("purpose", &purpose, PURPOSE_MAX, true)?,
                    payee: clean_optional("payee", payee.as_deref(), PAYEE_MAX)?,
                    category: clean_optional("category", category.as_deref(), CATEGORY_MAX)?,
                    requester_id: requester.user_id,
                    origin: Origin::of(requester.unit.as_ref(), origin)?,
                    unit: requester.unit,
                    category_id,
                    cost_centre_id,
                };
                sink.write(event, self).await;
            }
            C::Edit { changes, actor } => {
                self.currency()?;
                self.require_requester(&actor, "edit")?;
                self.require_status(&[Status::Draft, Status::ChangesRequested], "edit")?;
                let currency = self.currency()?.clone();
                let amount = changes
                    .amount
                    .map(|a| currency.validate_positive(a).map_err(|e| DomainError::money("amount", e)))
                    .transpose()?;
                let purpose =
                    changes.purpose.map(|p| clean_text("purpose", &p, PURPOSE_MAX, true)).transpose()?;
                let payee = changes.payee.map(|p| clean_text("payee", &p, PAYEE_MAX, false)).transpose()?;
                let category =
                    changes.category.map(|c| clean_text("category", &c, CATEGORY_MAX, false)).transpose()?;
                if amount.is_none() && purpose.is_none() && payee.is_none() && category.is_none() {
                    return Err(DomainError::invalid("body", "nothing to change"));
                }
                sink.write(E::RequisitionEdited { amount, purpose, payee, category }, self).await;
            }
            C::Submit { policy, directory, comment, urgency, deadlines, duplicates, actor } => {
                let currency = self.currency()?.clone();
                self.require_requester(&actor, "submit")?;
                self.require_status(&[Status::Draft, Status::ChangesRequested], "submit")?;
                if let Some(deadline) = self.changes_deadline.filter(|d| *d < deadlines.now) {
                    return Err(DomainError::ChangesExpired { deadline });
                }
                let comment = clean_optional("comment", comment.as_deref(), REASON_MAX)?;
                let urgency =
                    urgency.map(|r| clean_text("urgent_reason", &r, REASON_MAX, true)).transpose()?;
                let origin = self.origin.unwrap_or(Origin::Hq);
                let route = crate::routing::route(
                    &policy.thresholds(),
                    &currency,
                    origin,
                    self.amount,
                    self.unit.as_ref(),
                    &actor,
                    &directory,
                )?;
                let escalations: Vec<E> = route
                    .steps
                    .iter()
                    .enumerate()
                    .filter_map(|(step, s)| {
                        s.escalation.as_ref().map(|e| E::ApprovalEscalated {
                            step,
                            role: s.role,
                            reason: e.reason,
                            to: e.to,
                            people: None,
                        })
                    })
                    .collect();
                let fast_track_allowed = route.fast_track;
                if let Some(suspected) = self.duplicate_event(duplicates) {
                    sink.write(suspected, self).await;
                }
                let event = E::RequisitionSubmitted {
                    amount: self.amount,
                    chain: route.chain,
                    policy_version: policy.version,
                    submitted_by: actor.user_id,
                    threshold: Some(route.threshold),
                    eligible: Some(route.steps.into_iter().map(|s| s.eligible).collect()),
                    comment,
                    due: Some(deadlines.step_due()),
                };
                sink.write(event, self).await;
                for escalation in escalations {
                    sink.write(escalation, self).await;
                }
                if let Some(reason) = urgency {
                    sink.write(E::UrgencyDeclared { reason, fast_track_allowed }, self).await;
                }
            }
            C::ConfirmUrgency { comment, deadlines, actor } => {
                self.check_urgency_decider(&actor, "confirm the urgency of")?;
                let comment = clean_optional("comment", comment.as_deref(), REASON_MAX)?;
                let urgency = self.urgency.as_ref().expect("checked: pending urgency");
                // Only a chain with steps after the current one can be shortened.
                let last = self.chain.len().saturating_sub(1);
                let fast_tracked =
                    urgency.fast_track_allowed && self.current_step().is_some_and(|step| step < last);
                let due = fast_tracked.then(|| deadlines.step_due());
                sink.write(
                    E::UrgencyConfirmed { confirmed_by: actor.user_id, fast_tracked, comment, due },
                    self,
                )
                .await;
            }
            C::DenyUrgency { reason, actor } => {
                self.check_urgency_decider(&actor, "deny the urgency of")?;
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                sink.write(E::UrgencyDenied { denied_by: actor.user_id, reason }, self).await;
            }
            C::RevertFastTrack { reason, deadlines, actor } => {
                self.currency()?;
                self.require_status(&[Status::PendingApproval], "revert the fast-track of")?;
                if !self.fast_tracked {
                    return Err(DomainError::Urgency("this requisition is not fast-tracked"));
                }
                let confirmer = matches!(
                    self.urgency.as_ref().map(|u| u.decision),
                    Some(UrgencyDecision::Confirmed { by }) if by == actor.user_id
                );
                if !confirmer {
                    let (_, role) = self.check_decider(&actor, "revert the fast-track of")?;
                    self.check_eligible(&actor, role)?;
                }
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                let due = Some(deadlines.step_due());
                sink.write(E::FastTrackReverted { reverted_by: actor.user_id, reason, due }, self).await;
            }
            C::Override { justification, actor } => {
                self.currency()?;
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                if self.requester_id == Some(actor.user_id) {
                    return Err(DomainError::SelfApproval);
                }
                self.require_status(&[Status::PendingApproval], "override the approval of")?;
                if self.approvals.iter().any(|a| a.approver_id == actor.user_id)
                    || self.former_approvers.contains(&actor.user_id)
                {
                    return Err(DomainError::DuplicateApprover);
                }
                self.check_not_sponsored(&actor, "override the approval of")?;
                let justification = clean_text("justification", &justification, REASON_MAX, true)?;
                let from = self.current_step().unwrap_or(self.chain.len());
                let skipped = (from..self.chain.len()).collect();
                sink.write(
                    E::ApprovalOverridden { overridden_by: actor.user_id, justification, skipped },
                    self,
                )
                .await;
            }
            C::Approve { comment, deadlines, delegations, actor } => {
                let (step, role) = self.check_decider(&actor, "approve")?;
                if self.urgency.as_ref().is_some_and(|u| u.decision == UrgencyDecision::Pending) {
                    return Err(DomainError::UrgencyUndecided);
                }
                self.check_not_sponsored(&actor, "approve")?;
                let on_behalf = self.check_eligible_or_delegated(&actor, step, role, &delegations)?;
                let comment = clean_optional("comment", comment.as_deref(), REASON_MAX)?;
                let completes_chain =
                    crate::routing::next_step(self.chain.len(), self.eligible.as_deref(), step + 1).is_none();
                let due = (!completes_chain).then(|| deadlines.step_due());
                sink.write(
                    E::RequisitionApproved {
                        step,
                        role,
                        approver_id: actor.user_id,
                        completes_chain,
                        comment,
                        due,
                        on_behalf_of: on_behalf.map(|o| o.delegator_id),
                        delegation_id: on_behalf.map(|o| o.delegation_id),
                    },
                    self,
                )
                .await;
            }
            C::Reject { reason, delegations, actor } => {
                let (step, role) = self.check_decider(&actor, "reject")?;
                let on_behalf = self.check_eligible_or_delegated(&actor, step, role, &delegations)?;
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                let event = E::RequisitionRejected {
                    step,
                    role,
                    rejected_by: actor.user_id,
                    reason,
                    on_behalf_of: on_behalf.map(|o| o.delegator_id),
                    delegation_id: on_behalf.map(|o| o.delegation_id),
                };
                sink.write(event, self).await;
            }
            C::RequestChanges { reason, deadline, now, delegations, actor } => {
                let (step, role) = self.check_decider(&actor, "request changes to")?;
                let on_behalf = self.check_eligible_or_delegated(&actor, step, role, &delegations)?;
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                if deadline <= now || deadline > now + chrono::Duration::days(MAX_CHANGES_DAYS) {
                    return Err(DomainError::invalid(
                        "deadline",
                        format!("must be in the future and within {MAX_CHANGES_DAYS} days"),
                    ));
                }
                let event = E::ChangesRequested {
                    step,
                    role,
                    requested_by: actor.user_id,
                    reason,
                    deadline: Some(deadline),
                    on_behalf_of: on_behalf.map(|o| o.delegator_id),
                    delegation_id: on_behalf.map(|o| o.delegation_id),
                };
                sink.write(event, self).await;
            }
            C::Expire { now } => {
                self.currency()?;
                self.require_status(&[Status::ChangesRequested], "expire")?;
                match self.changes_deadline {
                    Some(deadline) if deadline < now => {
                        sink.write(E::RequisitionExpired { deadline }, self).await;
                    }
                    _ => return Err(DomainError::NotDueYet),
                }
            }
            C::RemindOverdue { now } => {
                self.currency()?;
                self.require_status(&[Status::PendingApproval], "remind the approvers of")?;
                let step = self.current_step().ok_or(DomainError::NotDueYet)?;
                match self.step_due {
                    Some(due) if due.remind_at <= now && !self.step_reminded => {
                        sink.write(E::ApprovalOverdue { step, role: self.chain[step] }, self).await;
                    }
                    _ => return Err(DomainError::NotDueYet),
                }
            }
            C::EscalateOverdue { now, admins } => {
                self.currency()?;
                self.require_status(&[Status::PendingApproval], "escalate")?;
                let step = self.current_step().ok_or(DomainError::NotDueYet)?;
                if self.step_due.is_none_or(|d| d.escalate_at > now) || self.step_escalated {
                    return Err(DomainError::NotDueYet);
                }
                // Never the requester, anyone who approved this round, or their puppets.
                let participants: Vec<Id> = self
                    .requester_id
                    .into_iter()
                    .chain(self.approvals.iter().map(|x| x.approver_id))
                    .collect();
                let people: Vec<Id> = admins
                    .into_iter()
                    .filter(|a| {
                        !participants.contains(&a.user_id)
                            && !a.sponsors.iter().any(|s| participants.contains(s))
                    })
                    .map(|a| a.user_id)
                    .collect();
                if people.is_empty() {
                    return Err(DomainError::NoApprover { role: Role::Admin });
                }
                let event = E::ApprovalEscalated {
                    step,
                    role: self.chain[step],
                    reason: EscalationReason::Overdue,
                    to: EscalatedTo::Admin,
                    people: Some(people),
                };
                sink.write(event, self).await;
            }
            C::Cancel { reason, actor } => {
                self.currency()?;
                self.require_requester(&actor, "cancel")?;
                if self.status == Status::Paid {
                    return Err(DomainError::AlreadyPaid);
                }
                if let Some(p) = &self.payment_in_flight {
                    return Err(DomainError::PaymentInFlight { payment_id: p.payment_id });
                }
                self.require_status(
                    &[Status::Draft, Status::PendingApproval, Status::ChangesRequested, Status::Approved],
                    "cancel",
                )?;
                let reason = clean_optional("reason", reason.as_deref(), REASON_MAX)?;
                sink.write(E::RequisitionCancelled { cancelled_by: actor.user_id, reason }, self).await;
            }
            C::Pay { payment_id, method, reference, payer } => {
                self.check_payer(&payer)?;
                let reference = clean_optional("reference", reference.as_deref(), REFERENCE_MAX)?;
                let event = E::RequisitionPaid {
                    payment_id,
                    fund_id: self.fund_id.expect("created requisitions have a fund"),
                    amount: self.amount,
                    method,
                    reference,
                    paid_by: payer.user_id,
                };
                sink.write(event, self).await;
            }
            C::StartPayment { payment_id, method, reference, payer } => {
                self.check_payer(&payer)?;
                if !method.through_provider() {
                    return Err(DomainError::invalid("method", "cash is paid at once"));
                }
                let reference = clean_optional("reference", reference.as_deref(), REFERENCE_MAX)?;
                let event = E::PaymentStarted {
                    payment_id,
                    fund_id: self.fund_id.expect("created requisitions have a fund"),
                    amount: self.amount,
                    method,
                    reference,
                    paid_by: payer.user_id,
                };
                sink.write(event, self).await;
            }
            C::CompletePayment { payment_id } => {
                self.currency()?;
                let Some(p) = self.payment_in_flight.clone().filter(|p| p.payment_id == payment_id) else {
                    return Err(DomainError::PaymentNotInFlight { payment_id });
                };
                let event = E::RequisitionPaid {
                    payment_id,
                    fund_id: self.fund_id.expect("created requisitions have a fund"),
                    amount: self.amount,
                    method: p.method,
                    reference: p.reference,
                    paid_by: p.paid_by,
                };
                sink.write(event, self).await;
            }
            C::TimeOutPayment { payment_id, minutes } => {
                self.currency()?;
                if self.payment_in_flight.as_ref().is_none_or(|p| p.payment_id != payment_id) {
                    return Err(DomainError::PaymentNotInFlight { payment_id });
                }
                sink.write(E::PaymentTimedOut { payment_id, minutes }, self).await;
            }
            C::FailPayment { payment_id, reason } => {
                self.currency()?;
                if self.payment_in_flight.as_ref().is_none_or(|p| p.payment_id != payment_id) {
                    return Err(DomainError::PaymentNotInFlight { payment_id });
                }
                let reason = clean_text("reason", &reason, REASON_MAX, true)?;
                sink.write(E::PaymentFailed { payment_id, reason }, self).await;
            }
            C::IssuePaymentCode { method, expires_at, payer } => {
                self.check_payer(&payer)?;
                sink.write(E::PaymentCodeIssued { payer_id: payer.user_id, method, expires_at }, self).await;
            }
            C::RecordCodeRejected { payer_id, problem, attempts } => {
                self.currency()?;
                sink.write(E::PaymentCodeRejected { payer_id, problem, attempts }, self).await;
            }
            C::DismissDuplicate { reason, actor } => {
                let event = self.decide_dismiss_duplicate(&reason, &actor)?;
                sink.write(event, self).await;
            }
            C::MarkReviewed { comment, now, actor } => {
                let event = self.decide_review(comment, now, &actor)?;
                sink.write(event, self).await;
            }
            C::FlagAfterPayment { reason, now, actor } => {
                let event = self.decide_flag(&reason, now, &actor)?;
                sink.write(event, self).await;
            }
            C::Categorise { category_id, cost_centre_id, actor } => {
                let event = self.decide_categorise(category_id, cost_centre_id, &actor)?;
                sink.write(event, self).await;
            }
            C::CheckBudgets { flags, block, actor } => {
                for event in self.decide_budgets(flags, block, &actor)? {
                    sink.write(event, self).await;
                }
            }
            C::AttachReceipt { receipt_id, file, actor } => {
                let event = self.decide_attach_receipt(receipt_id, file, &actor)?;
                sink.write(event, self).await;
            }
            C::RemindReceipt { paid_at, days, now } => {
                let event = self.decide_remind_receipt(paid_at, days, now)?;
                sink.write(event, self).await;
            }
            C::Reconcile { payment_id, statement_reference, now, actor } => {
                if let Some(event) = self.decide_reconcile(payment_id, &statement_reference, now, &actor)? {
                    sink.write(event, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: RequisitionEvent) {
        use RequisitionEvent as E;
        match event {
            E::RequisitionCreated {
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
                category_id,
                cost_centre_id,
            } => {
                self.category_id = category_id;
                self.cost_centre_id = cost_centre_id;
                self.id = Some(requisition_id);
                self.origin = origin;
                self.unit = unit;
                self.fund_id = Some(fund_id);
                self.currency = Some(currency);
                self.amount = amount;
                self.purpose = purpose;
                self.payee = payee;
                self.category = category;
                self.requester_id = Some(requester_id);
                self.status = Status::Draft;
            }
            E::RequisitionEdited { amount, purpose, payee, category } => apply_edit(
                (&mut self.amount, &mut self.purpose, &mut self.payee, &mut self.category),
                (amount, purpose, payee, category),
            ),
            E::RequisitionSubmitted { chain, policy_version, threshold, eligible, due, .. } => {
                self.chain = chain;
                self.policy_version = policy_version;
                self.threshold = threshold;
                self.eligible = eligible;
                self.escalated_to_admin.clear();
                self.changes_deadline = None;
                self.step_due = due;
                self.step_reminded = false;
                self.step_escalated = false;
                self.duplicates = self.next_duplicates.take();
                self.budget_exceeded = std::mem::take(&mut self.next_budget_exceeded);
                for approval in self.approvals.drain(..) {
                    if !self.former_approvers.contains(&approval.approver_id) {
                        self.former_approvers.push(approval.approver_id);
                    }
                }
                self.submissions += 1;
                self.last_reason = None;
                self.urgency = None;
                self.fast_tracked = false;
                self.status = Status::PendingApproval;
            }
            E::UrgencyDeclared { reason, fast_track_allowed } => {
                self.urgency =
                    Some(Urgency { reason, fast_track_allowed, decision: UrgencyDecision::Pending });
            }
            E::UrgencyConfirmed { confirmed_by, fast_tracked, due, .. } => {
                if let Some(u) = self.urgency.as_mut() {
                    u.decision = UrgencyDecision::Confirmed { by: confirmed_by };
                }
                if fast_tracked {
                    self.fast_tracked = true;
                    self.step_due = due;
                    self.step_reminded = false;
                    self.step_escalated = false;
                }
            }
            E::UrgencyDenied { denied_by, .. } => {
                if let Some(u) = self.urgency.as_mut() {
                    u.decision = UrgencyDecision::Denied { by: denied_by };
                }
            }
            E::FastTrackReverted { due, .. } => {
                self.fast_tracked = false;
                self.step_due = due;
                self.step_reminded = false;
                self.step_escalated = false;
            }
            E::ApprovalOverridden { overridden_by, .. } => {
                self.overridden_by = Some(overridden_by);
                self.step_due = None;
                self.status = Status::Approved;
            }
            E::ApprovalEscalated { step, to, people, reason, .. } => {
                if to == EscalatedTo::Admin {
                    self.escalated_to_admin.push(step);
                }
                if let (Some(people), Some(lists)) = (people, self.eligible.as_mut()) {
                    if let Some(list) = lists.get_mut(step) {
                        *list = people;
                    }
                }
                if reason == EscalationReason::Overdue {
                    self.step_escalated = true;
                }
            }
            E::ApprovalOverdue { .. } => self.step_reminded = true,
            E::RequisitionExpired { .. } => {
                self.changes_deadline = None;
                self.status = Status::Expired;
            }
            E::RequisitionApproved {
                step, role, approver_id, completes_chain, due, on_behalf_of, ..
            } => {
                self.step_due = due;
                self.step_reminded = false;
                self.step_escalated = false;
                self.approvals.push(Approval { step, role, approver_id, on_behalf_of });
                if completes_chain {
                    self.status = Status::Approved;
                }
            }
            E::RequisitionRejected { reason, .. } => {
                self.last_reason = Some(reason);
                self.status = Status::Rejected;
            }
            E::ChangesRequested { reason, deadline, requested_by, .. } => {
                if !self.sent_back_by.contains(&requested_by) {
                    self.sent_back_by.push(requested_by);
                }
                self.last_reason = Some(reason);
                self.changes_deadline = deadline;
                self.step_due = None;
                self.status = Status::ChangesRequested;
            }
            E::RequisitionCancelled { reason, .. } => {
                self.last_reason = reason;
                self.status = Status::Cancelled;
            }
            E::RequisitionPaid { payment_id, method, reference, paid_by, .. } => {
                self.payment = Some(PaymentRecord { payment_id, paid_by, method, reference });
                self.payment_in_flight = None;
                self.status = Status::Paid;
            }
            E::PaymentStarted { payment_id, method, reference, paid_by, .. } => {
                self.payment_in_flight = Some(PaymentRecord { payment_id, paid_by, method, reference });
            }
            E::PaymentFailed { .. } => self.payment_in_flight = None,
            E::PaymentTimedOut { .. } => {}
            E::PaymentCodeIssued { .. } | E::PaymentCodeRejected { .. } => {}
            event @ (E::DuplicateSuspected { .. }
            | E::DuplicateDismissed { .. }
            | E::PaymentReviewed { .. }
            | E::PaymentFlagged { .. }) => self.apply_review(event),
            event @ (E::CategoryChosen { .. } | E::BudgetExceeded { .. }) => self.apply_budget(event),
            E::ReceiptAttached { receipt_id, sha256, size, content_type, original_name, attached_by } => {
                self.receipts.push(Receipt {
                    receipt_id,
                    sha256,
                    size,
                    content_type,
                    original_name,
                    attached_by,
                });
            }
            E::ReceiptOverdue { .. } => self.receipt_reminded = true,
            E::PaymentReconciled { payment_id, statement_reference, reconciled_by, at, .. } => {
                self.reconciliation =
                    Some(Reconciliation { payment_id, statement_reference, reconciled_by, at });
            }
        }
    }
}
