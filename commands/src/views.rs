//! What commands and aggregate reads answer with. A command's response is stored verbatim
//! with its Idempotency-Key, so these are built on the command side.

use chrono::{DateTime, Utc};
use pettycash_domain::fund::{Fund, FundStatus, PaymentMethod};
use pettycash_domain::organisation::Origin;
use pettycash_domain::policy::{ApprovalPolicy, Tier};
use pettycash_domain::requisition::{Approval, PaymentReview, Requisition, ReviewStatus, Status, Urgency};
use pettycash_domain::routing::Threshold;
use pettycash_domain::Currency;
use pettycash_domain::Role;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The categories of mail a user muted (`GET`/`PUT /api/me/mail-preferences`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailPreferences {
    /// Sorted. Mutable categories: `approval_requested`, `requisition_outcome`,
    /// `ready_for_payment`, `paid`, `reminder`; `invitation`, `security` and `payment_code`
    /// always come.
    #[schema(value_type = Vec<String>, example = json!(["paid"]))]
    pub muted: Vec<pettycash_domain::MailCategory>,
    /// Global position of the command's event (or of the user's latest event).
    pub position: i64,
}

/// A fund as of its latest event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FundView {
    pub id: Uuid,
    pub name: String,
    /// ISO 4217 code.
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, example = "50000.00")]
    pub float: Decimal,
    #[schema(value_type = String, example = "41250.50")]
    pub balance: Decimal,
    pub custodian_id: Option<Uuid>,
    pub disbursements: u64,
    /// Cash reserved for payments in flight with a provider (still in `balance`).
    #[schema(value_type = String, example = "0.00")]
    pub reserved: Decimal,
    /// What may still be paid out: `balance` − `reserved`.
    #[schema(value_type = String, example = "41250.50")]
    pub available: Decimal,
    /// The unit that owns it and that unit's company (`null`: unscoped).
    pub unit_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// Below it a replenishment is due (`null`: none).
    #[schema(value_type = Option<String>, example = "12500.00")]
    pub reorder_level: Option<Decimal>,
    /// Below it the fund is critical.
    #[schema(value_type = String, example = "5000.00")]
    pub minimum_balance: Decimal,
    /// A replenishment request is raised by itself when a payment takes the balance below
    /// the reorder level.
    pub auto_replenish: bool,
    /// `ok`, `warning` (below the reorder level) or `critical` (below 80 % of it, or below the
    /// minimum balance).
    #[schema(example = "ok")]
    pub status: String,
    /// The open replenishment request (`null`: none).
    pub replenishment: Option<OpenReplenishmentView>,
    /// Counts whose variance waits for an approver.
    pub pending_variances: Vec<PendingVarianceView>,
    /// The latest closed period (`YYYY-MM`, UTC months): nothing moves into it or before.
    #[schema(example = "2026-11")]
    pub closed_through: Option<String>,
    /// Closed for good: its cash was returned.
    pub closed: bool,
    /// Global position of the fund's latest event (or of the command's last event).
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenReplenishmentView {
    pub id: Uuid,
    #[schema(value_type = String, example = "37500.00")]
    pub amount: Decimal,
    /// `requested` or `approved`.
    pub status: String,
    /// `null`: raised automatically.
    pub requested_by: Option<Uuid>,
    pub approved_by: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingVarianceView {
    pub count_id: Uuid,
    /// Counted − book at the count's instant.
    #[schema(value_type = String, example = "-150.00")]
    pub variance: Decimal,
    pub counted_by: Uuid,
}

/// A replenishment request after a command on it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplenishmentView {
    pub id: Uuid,
    pub fund_id: Uuid,
    #[schema(value_type = String, example = "37500.00")]
    pub amount: Decimal,
    /// `requested`, `approved`, `funded` or `rejected`.
    pub status: String,
    pub requested_by: Option<Uuid>,
    pub decided_by: Option<Uuid>,
    pub bank_reference: Option<String>,
    #[schema(value_type = String, example = "50000.00")]
    pub fund_balance: Decimal,
    pub position: i64,
}

/// A cash count (or a decision on its variance).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountView {
    pub id: Uuid,
    pub fund_id: Uuid,
    /// What was counted (`null` in the answer to a decision on the variance).
    #[schema(value_type = Option<String>, example = "12350.00")]
    pub counted: Option<Decimal>,
    /// The book balance at the count's instant.
    #[schema(value_type = Option<String>, example = "12500.00")]
    pub book_balance: Option<Decimal>,
    /// Counted − book.
    #[schema(value_type = String, example = "-150.00")]
    pub variance: Decimal,
    /// `matched` (no variance), `adjusted` (applied: within the tolerance or approved),
    /// `pending` (waits for an approver) or `rejected`.
    pub status: String,
    /// The period this count closed (`YYYY-MM`).
    pub period_closed: Option<String>,
    #[schema(value_type = String, example = "12350.00")]
    pub fund_balance: Decimal,
    pub position: i64,
}

impl FundView {
    pub fn new(id: Uuid, fund: &Fund, position: i64) -> Self {
        Self {
            id,
            name: fund.name.clone(),
            currency: fund.currency.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            float: fund.float,
            balance: fund.balance,
            custodian_id: fund.custodian_id,
            disbursements: fund.disbursements,
            reserved: fund.reserved(),
            available: fund.available(),
            unit_id: fund.unit.map(|u| u.unit_id),
            company_id: fund.unit.map(|u| u.company),
            reorder_level: fund.settings.reorder_level,
            minimum_balance: fund.settings.minimum_balance,
            auto_replenish: fund.settings.auto_replenish,
            status: FundStatus::of(fund.balance, fund.settings.reorder_level, fund.settings.minimum_balance)
                .as_str()
                .to_string(),
            replenishment: fund.replenishment.as_ref().map(|r| OpenReplenishmentView {
                id: r.id,
                amount: r.amount,
                status: r.status().as_str().to_string(),
                requested_by: r.requested_by,
                approved_by: r.approved_by,
            }),
            pending_variances: fund
                .pending_variances
                .iter()
                .map(|p| PendingVarianceView {
                    count_id: p.count_id,
                    variance: p.variance,
                    counted_by: p.counted_by,
                })
                .collect(),
            closed_through: fund.closed_through.map(|p| p.to_string()),
            closed: fund.closed,
            position,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalView {
    pub step: usize,
    #[schema(value_type = String, example = "department_head")]
    pub role: Role,
    pub approver_id: Uuid,
    /// The person the approver decided for, as their delegate (`null`: in their own name).
    pub on_behalf_of: Option<Uuid>,
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        Self { step: a.step, role: a.role, approver_id: a.approver_id, on_behalf_of: a.on_behalf_of }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentSummary {
    pub payment_id: Uuid,
    pub paid_by: Uuid,
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    pub reference: Option<String>,
}

/// One step of a requisition's route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    #[schema(value_type = String, example = "branch_manager")]
    pub role: Role,
    /// Who the step was routed to at submission; empty: escalated to the next step; `null`:
    /// submitted before routing recorded people (any holder of the role).
    pub eligible: Option<Vec<Uuid>>,
    /// The step went to the admins (nobody in scope could take it).
    pub escalated_to_admin: bool,
}

/// A requisition folded from its events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequisitionView {
    pub id: Uuid,
    pub fund_id: Uuid,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, example = "1250.00")]
    pub amount: Decimal,
    pub purpose: String,
    pub payee: Option<String>,
    pub category: Option<String>,
    pub requester_id: Uuid,
    #[schema(value_type = String, example = "pending_approval")]
    pub status: Status,
    /// Approver roles required, in order, as resolved at the latest submission.
    #[schema(value_type = Vec<String>)]
    pub chain: Vec<Role>,
    /// The role the next approval needs, while pending approval.
    #[schema(value_type = Option<String>)]
    pub current_role: Option<Role>,
    /// Approvals given since the latest submission (as in the lists)…
    pub approvals_count: usize,
    /// …and who gave them, for which step.
    pub approvals: Vec<ApprovalView>,
    pub policy_version: u32,
    /// The threshold the latest submission fell under.
    pub threshold: Option<String>,
    /// The latest submission's route, step by step (the chain with who may act).
    pub steps: Vec<StepView>,
    /// Who may decide the current step (`null`: any holder of its role, or not pending).
    pub current_eligible: Option<Vec<Uuid>>,
    /// While changes are requested: resubmit by then, or the requisition expires (`null`: no
    /// deadline, or none pending).
    pub changes_deadline: Option<DateTime<Utc>>,
    /// While pending approval: when the current step's approvers are reminded, and when it
    /// goes to the admins if nobody decided it (`null` when not pending, or submitted before
    /// deadlines were recorded).
    pub remind_at: Option<DateTime<Utc>>,
    pub escalate_at: Option<DateTime<Utc>>,
    pub submissions: u32,
    /// Reason given with the latest rejection, change request or cancellation.
    pub reason: Option<String>,
    pub payment: Option<PaymentSummary>,
    /// The organisation it was created in (the requester's unit then), as in the lists:
    /// `null` when unscoped.
    pub company_id: Option<Uuid>,
    pub region_id: Option<Uuid>,
    pub branch_id: Option<Uuid>,
    pub department_id: Option<Uuid>,
    pub cost_centre_id: Option<Uuid>,
    /// The requester's unit itself.
    pub unit_id: Option<Uuid>,
    /// `branch`, `hq` or `field`; `null` when unscoped.
    #[schema(value_type = Option<String>, example = "branch")]
    pub origin: Option<Origin>,
    /// The latest submission was marked urgent (`null`: it was not).
    pub urgency: Option<UrgencyView>,
    /// Confirmed urgency shortened the chain to its final step (`steps` still shows the
    /// whole recorded chain; an approver can revert the fast-track).
    pub fast_tracked: bool,
    /// The admin who approved it by emergency override (`null`: none).
    pub overridden_by: Option<Uuid>,
    /// The requester's other requisitions this one may duplicate (same payee, amount and
    /// currency within the `duplicate_window_days` setting), flagged at the latest submission;
    /// empty when none.
    pub possible_duplicates: DuplicateLinks,
    /// Set once an approver dismissed the flag.
    pub duplicate_dismissed: Option<DismissalView>,
    /// FP&A's review after payment (`null`: not reviewed).
    pub review: Option<ReviewView>,
    /// The expense category chosen (`GET /api/categories`; `null`: none, as requisitions made
    /// before categories, whose free text `category` is kept as their label).
    pub category_id: Option<Uuid>,
    /// The cost centre chosen (`cost_centre_id` in requests; `null`: none). `cost_centre_id`
    /// above is the one of the unit it was created in.
    pub chosen_cost_centre_id: Option<Uuid>,
    /// The budgets its latest submission exceeds (flagged to the approvers); empty when none.
    pub budget_exceeded: Vec<crate::budgets::BudgetFlagView>,
    /// The receipts attached, in order (download: `GET .../receipts/{receipt_id}`).
    pub receipts: Vec<ReceiptView>,
    pub position: i64,
}

/// A receipt attached to a requisition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptView {
    pub id: Uuid,
    /// The uploaded file's name, sanitised.
    #[schema(example = "taxi-receipt.pdf")]
    pub name: String,
    /// `image/jpeg`, `image/png` or `application/pdf`, from the content.
    #[schema(example = "application/pdf")]
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (where it is stored).
    pub sha256: String,
    pub attached_by: Uuid,
}

/// An urgent submission and what the first approver decided.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UrgencyView {
    /// The requester's reason.
    pub reason: String,
    /// Whether the threshold allows a fast-track.
    pub fast_track_allowed: bool,
    /// `pending`, `confirmed` or `denied`.
    #[schema(example = "confirmed")]
    pub decision: String,
    /// Who confirmed or denied it (`null` while pending).
    pub decided_by: Option<Uuid>,
}

impl From<&Urgency> for UrgencyView {
    fn from(u: &Urgency) -> Self {
        Self {
            reason: u.reason.clone(),
            fast_track_allowed: u.fast_track_allowed,
            decision: u.decision.as_str().to_string(),
            decided_by: u.decision.by(),
        }
    }
}

/// Another requisition a submission may duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DuplicateLink {
    pub id: Uuid,
    /// Where to read it: `/api/requisitions/{id}`.
    #[schema(example = "/api/requisitions/0190c2a4-7d1e-7c53-9a55-3b1f7f0f1a2b")]
    pub link: String,
}

impl DuplicateLink {
    pub fn to(id: Uuid) -> Self {
        Self { id, link: format!("/api/requisitions/{id}") }
    }
}

/// The other requisitions a submission may duplicate, each with its link; read from a list of
/// ids (the requisitions read model keeps the ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(from = "Vec<Uuid>")]
pub struct DuplicateLinks(pub Vec<DuplicateLink>);

impl From<Vec<Uuid>> for DuplicateLinks {
    fn from(ids: Vec<Uuid>) -> Self {
        Self(ids.into_iter().map(DuplicateLink::to).collect())
    }
}

/// Who dismissed a possible-duplicate flag, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DismissalView {
    pub by: Uuid,
    pub reason: String,
}

/// FP&A's review of a paid requisition: the latest outcome (a flag may follow a review; the
/// history has both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// `reviewed` or `flagged`.
    #[schema(value_type = String, example = "flagged")]
    pub status: ReviewStatus,
    pub by: Uuid,
    pub at: DateTime<Utc>,
    /// The reviewer's comment (reviewed).
    pub comment: Option<String>,
    /// Why it was flagged (flagged).
    pub reason: Option<String>,
}

impl From<&PaymentReview> for ReviewView {
    fn from(r: &PaymentReview) -> Self {
        Self { status: r.status, by: r.by, at: r.at, comment: r.comment.clone(), reason: r.reason.clone() }
    }
}

impl RequisitionView {
    pub fn new(r: &Requisition, position: i64) -> Self {
        Self {
            id: r.id.unwrap_or_default(),
            fund_id: r.fund_id.unwrap_or_default(),
            currency: r.currency.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            amount: r.amount,
            purpose: r.purpose.clone(),
            payee: r.payee.clone(),
            category: r.category.clone(),
            requester_id: r.requester_id.unwrap_or_default(),
            status: r.status,
            chain: r.chain.clone(),
            current_role: r.current_step_role(),
            approvals_count: r.approvals.len(),
            approvals: r.approvals.iter().map(ApprovalView::from).collect(),
            policy_version: r.policy_version,
            threshold: r.threshold.clone(),
            steps: r
                .chain
                .iter()
                .enumerate()
                .map(|(i, role)| StepView {
                    role: *role,
                    eligible: r.eligible.as_ref().and_then(|lists| lists.get(i).cloned()),
                    escalated_to_admin: r.escalated_to_admin.contains(&i),
                })
                .collect(),
            current_eligible: r.current_eligible().map(<[Uuid]>::to_vec),
            changes_deadline: r.changes_deadline.filter(|_| r.status == Status::ChangesRequested),
            remind_at: r.step_due.filter(|_| r.status == Status::PendingApproval).map(|d| d.remind_at),
            escalate_at: r.step_due.filter(|_| r.status == Status::PendingApproval).map(|d| d.escalate_at),
            submissions: r.submissions,
            reason: r.last_reason.clone(),
            payment: r.payment.as_ref().map(|p| PaymentSummary {
                payment_id: p.payment_id,
                paid_by: p.paid_by,
                method: p.method,
                reference: p.reference.clone(),
            }),
            company_id: r.unit.map(|u| u.company),
            region_id: r.unit.and_then(|u| u.region),
            branch_id: r.unit.and_then(|u| u.branch),
            department_id: r.unit.and_then(|u| u.department),
            cost_centre_id: r.unit.and_then(|u| u.cost_centre),
            unit_id: r.unit.map(|u| u.unit_id),
            origin: r.origin,
            urgency: r.urgency.as_ref().map(UrgencyView::from),
            fast_tracked: r.fast_tracked,
            overridden_by: r.overridden_by,
            possible_duplicates: r.duplicates.as_ref().map(|d| d.others.clone()).unwrap_or_default().into(),
            duplicate_dismissed: r
                .duplicates
                .as_ref()
                .and_then(|d| d.dismissed.as_ref())
                .map(|d| DismissalView { by: d.by, reason: d.reason.clone() }),
            review: r.review.as_ref().map(ReviewView::from),
            category_id: r.category_id,
            chosen_cost_centre_id: r.cost_centre_id,
            budget_exceeded: r.budget_exceeded.iter().map(crate::budgets::BudgetFlagView::from).collect(),
            receipts: r
                .receipts
                .iter()
                .map(|x| ReceiptView {
                    id: x.receipt_id,
                    name: x.original_name.clone(),
                    content_type: x.content_type.clone(),
                    size: x.size,
                    sha256: x.sha256.clone(),
                    attached_by: x.attached_by,
                })
                .collect(),
            position,
        }
    }
}

/// The result of paying a requisition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentReceipt {
    /// The payment id.
    pub id: Uuid,
    pub requisition_id: Uuid,
    pub fund_id: Uuid,
    #[schema(value_type = String, example = "1250.00")]
    pub amount: Decimal,
    #[schema(example = "KES")]
    pub currency: String,
    #[schema(value_type = String, example = "cash")]
    pub method: PaymentMethod,
    pub reference: Option<String>,
    /// The fund's balance right after this payment (as in the payments list).
    #[schema(value_type = String, example = "48750.00")]
    pub fund_balance_after: Decimal,
    pub paid_by: Uuid,
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierView {
    /// Inclusive upper bound; `null` for the last tier.
    #[schema(value_type = Option<String>, example = "1000")]
    pub up_to: Option<Decimal>,
    #[schema(value_type = Vec<String>)]
    pub chain: Vec<Role>,
}

/// One threshold of the approval policy (see `PUT /api/approval-policy/thresholds`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThresholdView {
    pub name: String,
    /// ISO 4217 code; `null`: any currency that has no thresholds of its own.
    #[schema(value_type = Option<String>, example = "KES")]
    pub currency: Option<Currency>,
    /// `branch`, `hq` or `field`; `null`: any origin.
    #[schema(value_type = Option<String>, example = "branch")]
    pub origin: Option<Origin>,
    /// Inclusive lower bound.
    #[schema(value_type = String, example = "1000.01")]
    pub min: Decimal,
    /// Inclusive upper bound; `null`: none.
    #[schema(value_type = Option<String>, example = "10000.00")]
    pub max: Option<Decimal>,
    /// Lower wins where an origin's own threshold and an any-origin one both match.
    pub priority: u32,
    #[schema(value_type = Vec<String>, example = json!(["branch_manager", "treasury"]))]
    pub chain: Vec<Role>,
    pub fast_track: bool,
    pub requires_cfo: bool,
    pub requires_ceo: bool,
}

impl From<&Threshold> for ThresholdView {
    fn from(t: &Threshold) -> Self {
        Self {
            name: t.name.clone(),
            currency: t.currency.clone(),
            origin: t.origin,
            min: t.min,
            max: t.max,
            priority: t.priority,
            chain: t.chain.clone(),
            fast_track: t.fast_track,
            requires_cfo: t.requires_cfo,
            requires_ceo: t.requires_ceo,
        }
    }
}

/// The approval policy in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyView {
    /// 0 is the built-in default.
    pub version: u32,
    /// The amount tiers, while the policy is given as tiers (the built-in default, or
    /// `PUT /api/approval-policy`); empty once thresholds replaced them.
    pub tiers: Vec<TierView>,
    /// The thresholds in force: the ones set, or the tiers read as thresholds (any currency,
    /// any origin).
    pub thresholds: Vec<ThresholdView>,
    pub position: i64,
}

impl PolicyView {
    pub fn new(p: &ApprovalPolicy, position: i64) -> Self {
        let tiers = p
            .tiers()
            .map(|t| t.0.into_iter().map(|Tier { up_to, chain }| TierView { up_to, chain }).collect())
            .unwrap_or_default();
        let thresholds = p.thresholds().0.iter().map(ThresholdView::from).collect();
        Self { version: p.version, tiers, thresholds, position }
    }
}

/// One event of a stream, for history views.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub sequence: i64,
    pub position: i64,
    #[schema(example = "RequisitionApproved")]
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The acting user's id, or `operator` for the command line.
    pub actor_id: Option<String>,
    /// The acting user's name, when the actor is a user.
    pub actor_name: Option<String>,
    pub request_id: Option<String>,
    /// The event's own data.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A user as of their latest event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub active: bool,
    /// The organisation unit they belong to (`null`: none, unscoped).
    pub unit_id: Option<Uuid>,
    pub position: i64,
}

/// One runtime setting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingView {
    #[schema(example = "password_min_length")]
    pub key: String,
    #[schema(value_type = Object, example = json!(12))]
    pub value: serde_json::Value,
}

/// The runtime settings in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsView {
    /// How many changes led to these values (0: the defaults).
    pub version: u32,
    pub settings: Vec<SettingView>,
    pub position: i64,
}

impl SettingsView {
    pub fn new(s: &pettycash_domain::settings::RuntimeSettings, position: i64) -> Self {
        let settings = pettycash_domain::settings::SettingKey::ALL
            .iter()
            .map(|k| SettingView { key: k.as_str().to_string(), value: s.values.get(*k) })
            .collect();
        Self { version: s.version, settings, position }
    }
}
