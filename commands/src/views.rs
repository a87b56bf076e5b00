//! What commands and aggregate reads answer with. A command's response is stored verbatim
//! with its Idempotency-Key, so these are built on the command side.

use chrono::{DateTime, Utc};
use pettycash_domain::fund::{Fund, PaymentMethod};
use pettycash_domain::organisation::Origin;
use pettycash_domain::policy::{ApprovalPolicy, Tier};
use pettycash_domain::requisition::{Approval, Requisition, Status};
use pettycash_domain::Role;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

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
    /// The unit that owns it and that unit's company (`null`: unscoped).
    pub unit_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// Global position of the fund's latest event (or of the command's last event).
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
            unit_id: fund.unit.map(|u| u.unit_id),
            company_id: fund.unit.map(|u| u.company),
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
}

impl From<&Approval> for ApprovalView {
    fn from(a: &Approval) -> Self {
        Self { step: a.step, role: a.role, approver_id: a.approver_id }
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
    pub position: i64,
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

/// The approval policy in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyView {
    /// 0 is the built-in default.
    pub version: u32,
    pub tiers: Vec<TierView>,
    pub position: i64,
}

impl PolicyView {
    pub fn new(p: &ApprovalPolicy, position: i64) -> Self {
        let tiers = p.tiers().0.into_iter().map(|Tier { up_to, chain }| TierView { up_to, chain }).collect();
        Self { version: p.version, tiers, position }
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
