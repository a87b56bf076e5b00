//! Every business rule is a variant here. The HTTP edge maps each to a status code; the
//! `code()` string is the stable machine-readable name clients see.

use crate::money::MoneyError;
use crate::role::Role;
use rust_decimal::Decimal;

/// What kind of failure a rule violation is; the HTTP edge turns it into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is well-formed but invalid (422).
    Validation,
    /// The actor may not do this: missing role, segregation of duties (403).
    Forbidden,
    /// The aggregate is not in a state that allows this (409).
    Conflict,
    /// The thing does not exist (404).
    NotFound,
    /// It existed for a while and is no longer usable: an invitation link (410).
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{field}: {source}")]
    Money {
        field: &'static str,
        #[source]
        source: MoneyError,
    },
    #[error("the requisition is in the fund's currency {expected}, not {got}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("{what} does not exist")]
    NotFound { what: &'static str },
    #[error("{what} already exists")]
    AlreadyExists { what: &'static str },
    #[error("cannot {action} a requisition that is {status}")]
    InvalidTransition { status: crate::requisition::Status, action: &'static str },
    #[error("only the requester may {action} this requisition")]
    NotRequester { action: &'static str },
    #[error("no one may approve, reject or send back their own requisition")]
    SelfApproval,
    #[error("you already approved an earlier step of this requisition")]
    DuplicateApprover,
    #[error("this step needs the role {required}")]
    MissingRole { required: Role },
    #[error("the requester may not pay their own requisition")]
    PayerIsRequester,
    #[error("an approver of this requisition may not also pay it")]
    PayerIsApprover,
    #[error("the requisition was already paid")]
    AlreadyPaid,
    #[error("only approved requisitions can be paid; this one is {status}")]
    NotApproved { status: crate::requisition::Status },
    #[error("the fund holds {balance}, which does not cover {amount}")]
    InsufficientFunds { balance: Decimal, amount: Decimal },
    #[error("the fund is closed")]
    FundClosed,
    #[error(
        "you were registered or given a role by someone who requested or approved this requisition; \
         someone else must {action} it"
    )]
    SponsoredByParticipant { action: &'static str },
    #[error("this would leave no active admin; grant the admin role to someone else first")]
    LastAdmin,
    #[error(
        "thresholds `{first}` and `{second}` have the same priority and could both match one requisition"
    )]
    ThresholdsOverlap { first: String, second: String },
    #[error("no threshold covers {origin} requisitions{} from {from}", currency.as_ref().map(|c| format!(" in {c}")).unwrap_or_default())]
    ThresholdsGap { currency: Option<String>, origin: crate::routing::Origin, from: Decimal },
    #[error("no threshold covers a {origin} requisition of {amount} {currency}")]
    NoThreshold { currency: String, origin: crate::routing::Origin, amount: Decimal },
    #[error("nobody may approve the {role} step: no eligible approver and no admin")]
    NoApprover { role: Role },
    #[error("this {role} step was routed to other people")]
    NotEligible { role: Role },
    #[error("the deadline for the changes passed on {deadline}: the requisition has expired")]
    ChangesExpired { deadline: chrono::DateTime<chrono::Utc> },
    #[error("nothing is due yet")]
    NotDueYet,
    #[error("the requester marked this requisition urgent: confirm or deny the urgency first")]
    UrgencyUndecided,
    #[error("{0}")]
    Urgency(&'static str),
    #[error(
        "only an admin who belongs to no organisation unit may {action}: it concerns every company; \
         an admin of a company manages that company"
    )]
    OrganisationAdminOnly { action: &'static str },
    #[error("{}", wrong_parent(*kind, *expected, *got))]
    WrongParent {
        kind: crate::organisation::UnitKind,
        expected: Option<crate::organisation::UnitKind>,
        got: Option<crate::organisation::UnitKind>,
    },
    #[error("the unit is closed")]
    UnitClosed,
    #[error("the code is taken: codes are unique within a company, and company codes across companies")]
    CodeTaken,
    #[error(
        "the unit still has {open_children} open unit(s) under it and {members} active member(s); \
         close or move them first"
    )]
    UnitNotEmpty { open_children: u64, members: u64 },
    /// An invitation link that does not work, whatever the reason (unknown, used, revoked,
    /// replaced by a newer link, expired): one message for all, so that the answer tells nothing
    /// about the link. `reason` is for the log only.
    #[error(
        "this invitation link is not valid: it may have expired, been used or been withdrawn; \
         ask an administrator to send you a new one"
    )]
    InvitationInvalid { reason: &'static str },
    #[error("the invitation is {status}: only a pending or expired invitation can be resent or revoked")]
    InvitationNotPending { status: crate::invitation::InvitationStatus },
    // ----- possible duplicates and FP&A review -----
    #[error("you took part in this requisition as its {part}; its review needs someone who took no part")]
    ReviewerTookPart { part: &'static str },
    #[error("the requisition was already {status} after payment")]
    AlreadyReviewed { status: &'static str },
    #[error("the requisition is not flagged as a possible duplicate, or the flag was dismissed already")]
    NoDuplicateFlag,
    // ----- delegation (issue #13 [workflow]) -----
    #[error("only the delegator or an admin of their company may {action} a delegation")]
    DelegationNotYours { action: &'static str },
    #[error("cannot delegate `{role}` to this person: {reason}")]
    DelegateNotEligible { role: Role, reason: &'static str },
    #[error("you approved this requisition before: you may not decide it as a delegate")]
    DelegateAlreadyActed,
    #[error("your delegation from the people of this step is {status}: you may not act on their behalf")]
    DelegationInactive { status: crate::delegation::DelegationStatus },
    #[error(
        "your delegation from the people of this step is for `{delegated}`; this step needs `{required}`"
    )]
    DelegationWrongRole { delegated: Role, required: Role },
    // ----- advances (issue #14 [treasury]) -----
    #[error("you hold an advance that is not settled yet (requisition {requisition_id}): settle it first")]
    AdvanceOutstanding { requisition_id: uuid::Uuid },
    #[error("the advance has not been paid: there is nothing to settle yet")]
    AdvanceNotIssued,
    #[error("{field}: the settlement exceeds what remains to settle ({outstanding})")]
    SettlementTooLarge { field: &'static str, outstanding: Decimal },
    // ----- fund operations (issue #14 [treasury]) -----
    #[error("someone other than the person who {action} must decide it")]
    FourEyes { action: &'static str },
    #[error("the fund's period {period} is closed: no movement can be recorded into it")]
    PeriodClosed { period: String },
    #[error("the fund already has an open replenishment request")]
    ReplenishmentOpen,
    #[error("cannot {action} a replenishment that is {status}")]
    ReplenishmentState { status: &'static str, action: &'static str },
    #[error("the fund holds its float or more: there is nothing to replenish")]
    NothingToReplenish,
    #[error("this count's variance was already adjusted or rejected")]
    VarianceSettled,
    #[error("the fund still has {what}: settle it first")]
    FundHasOpenItems { what: &'static str },
    // ----- categories and budgets (issue #14 [treasury]) -----
    #[error("the category is already inactive")]
    CategoryInactive,
    #[error(
        "this requisition of {amount} would exceed budget {budget_id} ({scope} for {month}): \
         {consumed} of {budget} is consumed already, and budgets block over-budget submissions"
    )]
    BudgetExceeded {
        budget_id: crate::Id,
        /// The budget's scope as text: `department 0190…`.
        scope: String,
        month: String,
        budget: Decimal,
        consumed: Decimal,
        amount: Decimal,
    },
    // ----- receipts (issue #14 [treasury]) -----
    #[error("receipt refused: {0}")]
    Receipt(&'static str),
    // ----- payments (issue #14 [treasury]) -----
    /// A payment's one-time code was missing or refused; each reason has its own code.
    #[error("{}", problem.message())]
    PaymentCode { problem: crate::payment::CodeProblem },
    #[error("payment {payment_id} of this requisition is in flight with the provider: wait for its result")]
    PaymentInFlight { payment_id: crate::Id },
    #[error("no payment {payment_id} of this requisition is in flight")]
    PaymentNotInFlight { payment_id: crate::Id },
    // ----- reconciliation (issue #14 [treasury]) -----
    #[error("the payment cannot be reconciled: {reason}")]
    NotReconcilable { reason: &'static str },
    #[error("the payment is reconciled already, against statement reference `{reference}`")]
    AlreadyReconciled { reference: String },
    // ----- alerts (issue #15 [reports]) -----
    #[error("cannot {action} an alert that is {state}")]
    AlertState { state: crate::alert::AlertState, action: &'static str },
    #[error("you may read this alert but not act on it: treasury, an admin or the person responsible may")]
    AlertReadOnly,
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid { field, message: message.into() }
    }

    pub fn money(field: &'static str, source: MoneyError) -> Self {
        DomainError::Money { field, source }
    }

    /// Stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid { .. } => "validation_error",
            DomainError::Money { source, .. } => match source {
                MoneyError::UnknownCurrency(_) => "unknown_currency",
                MoneyError::NotPositive => "amount_not_positive",
                MoneyError::TooLarge(_) => "amount_too_large",
                MoneyError::TooManyDecimals { .. } => "too_many_decimals",
            },
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::NotFound { .. } => "not_found",
            DomainError::AlreadyExists { .. } => "already_exists",
            DomainError::InvalidTransition { .. } => "invalid_state",
            DomainError::NotRequester { .. } => "not_requester",
            DomainError::SelfApproval => "self_approval",
            DomainError::DuplicateApprover => "duplicate_approver",
            DomainError::MissingRole { .. } => "missing_role",
            DomainError::PayerIsRequester => "payer_is_requester",
            DomainError::PayerIsApprover => "payer_is_approver",
            DomainError::AlreadyPaid => "already_paid",
            DomainError::NotApproved { .. } => "not_approved",
            DomainError::InsufficientFunds { .. } => "insufficient_funds",
            DomainError::FundClosed => "fund_closed",
            DomainError::SponsoredByParticipant { .. } => "sponsored_by_participant",
            DomainError::LastAdmin => "last_admin",
            DomainError::ThresholdsOverlap { .. } => "thresholds_overlap",
            DomainError::ThresholdsGap { .. } => "thresholds_gap",
            DomainError::NoThreshold { .. } => "no_threshold",
            DomainError::NoApprover { .. } => "no_approver",
            DomainError::NotEligible { .. } => "not_eligible",
            DomainError::ChangesExpired { .. } => "changes_expired",
            DomainError::NotDueYet => "not_due_yet",
            DomainError::UrgencyUndecided => "urgency_undecided",
            DomainError::Urgency(_) => "urgency_state",
            DomainError::Receipt(_) => "receipt_refused",
            DomainError::OrganisationAdminOnly { .. } => "organisation_admin_only",
            DomainError::WrongParent { .. } => "wrong_parent",
            DomainError::UnitClosed => "unit_closed",
            DomainError::CodeTaken => "code_taken",
            DomainError::UnitNotEmpty { .. } => "unit_not_empty",
            DomainError::InvitationInvalid { .. } => "invitation_invalid",
            DomainError::InvitationNotPending { .. } => "invitation_not_pending",
            DomainError::ReviewerTookPart { .. } => "reviewer_took_part",
            DomainError::AlreadyReviewed { .. } => "already_reviewed",
            DomainError::NoDuplicateFlag => "no_duplicate_flag",
            DomainError::DelegationNotYours { .. } => "delegation_not_yours",
            DomainError::DelegateNotEligible { .. } => "delegate_not_eligible",
            DomainError::DelegateAlreadyActed => "delegate_already_acted",
            DomainError::DelegationInactive { .. } => "delegation_inactive",
            DomainError::DelegationWrongRole { .. } => "delegation_wrong_role",
            DomainError::AdvanceOutstanding { .. } => "advance_outstanding",
            DomainError::AdvanceNotIssued => "advance_not_issued",
            DomainError::SettlementTooLarge { .. } => "settlement_exceeds_advance",
            DomainError::FourEyes { .. } => "four_eyes",
            DomainError::PeriodClosed { .. } => "period_closed",
            DomainError::ReplenishmentOpen => "replenishment_open",
            DomainError::ReplenishmentState { .. } => "replenishment_state",
            DomainError::NothingToReplenish => "nothing_to_replenish",
            DomainError::VarianceSettled => "variance_settled",
            DomainError::FundHasOpenItems { .. } => "fund_has_open_items",
            DomainError::CategoryInactive => "category_inactive",
            DomainError::BudgetExceeded { .. } => "budget_exceeded",
            DomainError::PaymentCode { problem } => problem.code(),
            DomainError::PaymentInFlight { .. } => "payment_in_flight",
            DomainError::PaymentNotInFlight { .. } => "payment_not_in_flight",
            DomainError::NotReconcilable { .. } => "not_reconcilable",
            DomainError::AlreadyReconciled { .. } => "already_reconciled",
            DomainError::AlertState { .. } => "alert_state",
            DomainError::AlertReadOnly => "alert_read_only",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::Invalid { .. }
            | DomainError::Money { .. }
            | DomainError::CurrencyMismatch { .. }
            | DomainError::ThresholdsOverlap { .. }
            | DomainError::ThresholdsGap { .. }
            | DomainError::WrongParent { .. }
            | DomainError::DelegateNotEligible { .. } => ErrorKind::Validation,
            DomainError::NotFound { .. } => ErrorKind::NotFound,
            DomainError::NotRequester { .. }
            | DomainError::SelfApproval
            | DomainError::DuplicateApprover
            | DomainError::MissingRole { .. }
            | DomainError::PayerIsRequester
            | DomainError::PayerIsApprover
            | DomainError::SponsoredByParticipant { .. }
            | DomainError::NotEligible { .. }
            | DomainError::OrganisationAdminOnly { .. }
            | DomainError::ReviewerTookPart { .. }
            | DomainError::DelegationNotYours { .. }
            | DomainError::DelegateAlreadyActed
            | DomainError::DelegationInactive { .. }
            | DomainError::DelegationWrongRole { .. }
            | DomainError::FourEyes { .. } => ErrorKind::Forbidden,
            DomainError::AlreadyExists { .. }
            | DomainError::InvalidTransition { .. }
            | DomainError::AlreadyPaid
            | DomainError::NotApproved { .. }
            | DomainError::InsufficientFunds { .. }
            | DomainError::FundClosed
            | DomainError::LastAdmin
            | DomainError::NoThreshold { .. }
            | DomainError::NoApprover { .. }
            | DomainError::ChangesExpired { .. }
            | DomainError::NotDueYet
            | DomainError::UrgencyUndecided
            | DomainError::Urgency(_)
            | DomainError::Receipt(_)
            | DomainError::UnitClosed
            | DomainError::CodeTaken
            | DomainError::UnitNotEmpty { .. }
            | DomainError::InvitationNotPending { .. }
            | DomainError::AlreadyReviewed { .. }
            | DomainError::NoDuplicateFlag
            | DomainError::AdvanceOutstanding { .. }
            | DomainError::AdvanceNotIssued
            | DomainError::SettlementTooLarge { .. }
            | DomainError::PeriodClosed { .. }
            | DomainError::ReplenishmentOpen
            | DomainError::ReplenishmentState { .. }
            | DomainError::NothingToReplenish
            | DomainError::VarianceSettled
            | DomainError::FundHasOpenItems { .. }
            | DomainError::CategoryInactive
            | DomainError::BudgetExceeded { .. } => ErrorKind::Conflict,
            DomainError::InvitationInvalid { .. } => ErrorKind::Gone,
            DomainError::PaymentInFlight { .. }
            | DomainError::PaymentNotInFlight { .. }
            | DomainError::NotReconcilable { .. }
            | DomainError::AlreadyReconciled { .. }
            | DomainError::AlertState { .. } => ErrorKind::Conflict,
            DomainError::AlertReadOnly => ErrorKind::Forbidden,
            DomainError::PaymentCode { problem } => {
                use crate::payment::CodeProblem as P;
                match problem {
                    P::Missing | P::Wrong => ErrorKind::Validation,
                    P::NotYours => ErrorKind::Forbidden,
                    P::Expired => ErrorKind::Gone,
                    P::NotIssued | P::Used | P::Locked => ErrorKind::Conflict,
                }
            }
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::Invalid { field, .. } | DomainError::Money { field, .. } => Some(field),
            DomainError::CurrencyMismatch { .. } => Some("currency"),
            DomainError::InsufficientFunds { .. } => Some("amount"),
            DomainError::ThresholdsOverlap { .. } | DomainError::ThresholdsGap { .. } => Some("thresholds"),
            DomainError::WrongParent { .. } => Some("parent_id"),
            DomainError::CodeTaken => Some("code"),
            DomainError::DelegateNotEligible { .. } => Some("delegate_id"),
            DomainError::SettlementTooLarge { field, .. } => Some(field),
            DomainError::PeriodClosed { .. } => Some("period"),
            DomainError::PaymentCode { .. } => Some("code"),
            _ => None,
        }
    }
}

fn wrong_parent(
    kind: crate::organisation::UnitKind,
    expected: Option<crate::organisation::UnitKind>,
    got: Option<crate::organisation::UnitKind>,
) -> String {
    match (expected, got) {
        (None, _) => format!("a {kind} is a top-level unit: it has no parent"),
        (Some(e), None) => format!("a {kind} goes under a {e}: give its parent"),
        (Some(e), Some(g)) => format!("a {kind} goes under a {e}, not under a {g}"),
    }
}

/// Trims `value` and checks its length in characters. Required fields must not be blank.
pub fn clean_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if required && trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be blank"));
    }
    let len = trimmed.chars().count();
    if len > max {
        return Err(DomainError::invalid(field, format!("must be at most {max} characters (got {len})")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

/// Like [`clean_text`] for optional fields: blank becomes `None`.
pub fn clean_optional(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match value {
        None => Ok(None),
        Some(v) => {
            let v = clean_text(field, v, max, false)?;
            Ok(if v.is_empty() { None } else { Some(v) })
        }
    }
}
