//! Alerts (issue #15 [reports]): something about a fund, a payment, a requisition, an advance
//! or a cash count that the people responsible for it should look at. The `alerts` projection
//! raises them from events (and the scheduler the one time-based kind no event marks,
//! `variance_pending`); people acknowledge and resolve them; an alert whose condition cleared
//! resolves itself with a note.
//!
//! What is here is the vocabulary and the pure rules: each type's one text form and severity,
//! when a fund's balance is low or critical, the lifecycle `open → acknowledged → resolved`.
//! Who may read and act on alerts is [`crate::visibility::AlertScope`].

use crate::fund::UnknownWord;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What an alert is about. At most one alert of a type is open (open or acknowledged) per
/// object at a time (a partial unique index on `alerts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    /// A fund's balance is below its reorder level (object: the fund).
    FundLow,
    /// Below 80 % of its reorder level, or below its minimum balance (object: the fund).
    FundCritical,
    /// A payment through a provider failed for good (object: the requisition).
    PaymentFailed,
    /// A payment through a provider stayed executing past its timeout (object: the
    /// requisition).
    PaymentTimeout,
    /// Repeated wrong payment codes for one requisition by one payer within a window (object:
    /// the requisition).
    OtpFailures,
    /// A count's variance waits for approval past its deadline (object: the count).
    VariancePending,
    /// A replenishment request is open (object: the fund).
    ReplenishmentNeeded,
    /// A step waits past its reminder time (object: the requisition).
    ApprovalOverdue,
    /// An advance is unsettled past its due date (object: its requisition).
    AdvanceOverdue,
    /// A payment above the configured amount (object: the requisition).
    LargePayment,
    /// A submission exceeds a budget covering it (object: the requisition).
    BudgetExceeded,
    /// A paid requisition still has no receipt (object: the requisition).
    ReceiptMissing,
}

impl AlertType {
    pub const ALL: [AlertType; 12] = [
        AlertType::FundLow,
        AlertType::FundCritical,
        AlertType::PaymentFailed,
        AlertType::PaymentTimeout,
        AlertType::OtpFailures,
        AlertType::VariancePending,
        AlertType::ReplenishmentNeeded,
        AlertType::ApprovalOverdue,
        AlertType::AdvanceOverdue,
        AlertType::LargePayment,
        AlertType::BudgetExceeded,
        AlertType::ReceiptMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::FundLow => "fund_low",
            AlertType::FundCritical => "fund_critical",
            AlertType::PaymentFailed => "payment_failed",
            AlertType::PaymentTimeout => "payment_timeout",
            AlertType::OtpFailures => "otp_failures",
            AlertType::VariancePending => "variance_pending",
            AlertType::ReplenishmentNeeded => "replenishment_needed",
            AlertType::ApprovalOverdue => "approval_overdue",
            AlertType::AdvanceOverdue => "advance_overdue",
            AlertType::LargePayment => "large_payment",
            AlertType::BudgetExceeded => "budget_exceeded",
            AlertType::ReceiptMissing => "receipt_missing",
        }
    }

    /// How urgent it is. Critical alerts mail even people who muted alert mail.
    pub fn severity(self) -> Severity {
        match self {
            // A box about to run dry, and someone guessing payment codes.
            AlertType::FundCritical | AlertType::OtpFailures => Severity::Critical,
            AlertType::FundLow | AlertType::PaymentFailed | AlertType::PaymentTimeout => Severity::High,
            AlertType::VariancePending
            | AlertType::ReplenishmentNeeded
            | AlertType::AdvanceOverdue
            | AlertType::LargePayment
            | AlertType::BudgetExceeded => Severity::Medium,
            AlertType::ApprovalOverdue | AlertType::ReceiptMissing => Severity::Low,
        }
    }

    /// The kind of object it concerns (`alerts.object_type`).
    pub fn object_type(self) -> ObjectType {
        match self {
            AlertType::FundLow | AlertType::FundCritical | AlertType::ReplenishmentNeeded => ObjectType::Fund,
            AlertType::VariancePending => ObjectType::Count,
            AlertType::AdvanceOverdue => ObjectType::Advance,
            AlertType::PaymentFailed
            | AlertType::PaymentTimeout
            | AlertType::OtpFailures
            | AlertType::ApprovalOverdue
            | AlertType::LargePayment
            | AlertType::BudgetExceeded
            | AlertType::ReceiptMissing => ObjectType::Requisition,
        }
    }

    /// A short title for lists and mail subjects.
    pub fn title(self) -> &'static str {
        match self {
            AlertType::FundLow => "Fund below its reorder level",
            AlertType::FundCritical => "Fund critically low",
            AlertType::PaymentFailed => "Payment failed",
            AlertType::PaymentTimeout => "Payment timed out",
            AlertType::OtpFailures => "Repeated wrong payment codes",
            AlertType::VariancePending => "Cash count variance awaiting approval",
            AlertType::ReplenishmentNeeded => "Fund needs replenishment",
            AlertType::ApprovalOverdue => "Approval overdue",
            AlertType::AdvanceOverdue => "Advance overdue",
            AlertType::LargePayment => "Large payment",
            AlertType::BudgetExceeded => "Budget exceeded",
            AlertType::ReceiptMissing => "Receipt missing",
        }
    }
}

/// The kind of object an alert concerns; `alerts.object_id` is its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Fund,
    Requisition,
    /// An advance, by its requisition's id.
    Advance,
    /// A cash count, by its id.
    Count,
}

impl ObjectType {
    pub const ALL: [ObjectType; 4] =
        [ObjectType::Fund, ObjectType::Requisition, ObjectType::Advance, ObjectType::Count];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Fund => "fund",
            ObjectType::Requisition => "requisition",
            ObjectType::Advance => "advance",
            ObjectType::Count => "count",
        }
    }
}

/// How urgent an alert is, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// Where an alert is in its lifecycle: `open → acknowledged → resolved` (or straight from
/// open to resolved). Resolved is final; a new alert of the same type for the same object may
/// be raised after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 3] = [AlertState::Open, AlertState::Acknowledged, AlertState::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// Whether `action` may be taken in this state: acknowledging an open alert, resolving an
    /// open or acknowledged one. Anything else is an invalid transition (409).
    pub fn allows(self, action: AlertAction) -> bool {
        matches!(
            (self, action),
            (AlertState::Open, AlertAction::Acknowledge)
                | (AlertState::Open | AlertState::Acknowledged, AlertAction::Resolve)
        )
    }
}

/// What a person (or the projection, resolving) does to an alert; the history's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    Raise,
    Acknowledge,
    Resolve,
}

impl AlertAction {
    pub const ALL: [AlertAction; 3] = [AlertAction::Raise, AlertAction::Acknowledge, AlertAction::Resolve];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Raise => "raise",
            AlertAction::Acknowledge => "acknowledge",
            AlertAction::Resolve => "resolve",
        }
    }
}

macro_rules! text_form {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = UnknownWord;
            /// Exactly `as_str`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord { what: $what, text: s.to_string() })
            }
        }
    )*};
}

text_form!(
    AlertType => "alert type",
    ObjectType => "alert object type",
    Severity => "severity",
    AlertState => "alert state",
    AlertAction => "alert action",
);

/// The share of the reorder level below which a fund is critical.
pub const CRITICAL_SHARE: Decimal = Decimal::from_parts(8, 0, 0, false, 1);

/// How a fund's balance stands against its reorder level and minimum balance: the alert it
/// calls for, if any.
///
/// - `fund_critical`: below [`CRITICAL_SHARE`] (80 %) of the reorder level, or below the
///   minimum balance (when one is set, i.e. above zero);
/// - `fund_low`: below the reorder level;
/// - none otherwise (no reorder level and no minimum: never). Reaching the level again clears
///   the alert (it resolves itself).
pub fn fund_level(
    balance: Decimal,
    reorder_level: Option<Decimal>,
    minimum_balance: Decimal,
) -> Option<AlertType> {
    let below_minimum = minimum_balance > Decimal::ZERO && balance < minimum_balance;
    match reorder_level {
        _ if below_minimum => Some(AlertType::FundCritical),
        Some(level) if balance < level * CRITICAL_SHARE => Some(AlertType::FundCritical),
        Some(level) if balance < level => Some(AlertType::FundLow),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn words_round_trip_and_severities_are_ordered() {
        for t in AlertType::ALL {
            assert_eq!(t.as_str().parse::<AlertType>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        for s in AlertState::ALL {
            assert_eq!(s.as_str().parse::<AlertState>().unwrap(), s);
        }
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
        }
        assert!("Fund_Low".parse::<AlertType>().is_err());
        assert!(Severity::Critical < Severity::Low);
        assert_eq!(AlertType::FundCritical.severity(), Severity::Critical);
        assert_eq!(AlertType::FundLow.severity(), Severity::High);
    }

    #[test]
    fn a_fund_is_low_below_its_reorder_level_and_critical_below_80_percent_or_its_minimum() {
        let level = Some(d("1000"));
        assert_eq!(fund_level(d("1000"), level, Decimal::ZERO), None, "at the level");
        assert_eq!(fund_level(d("999.99"), level, Decimal::ZERO), Some(AlertType::FundLow));
        assert_eq!(fund_level(d("800"), level, Decimal::ZERO), Some(AlertType::FundLow));
        assert_eq!(fund_level(d("799.99"), level, Decimal::ZERO), Some(AlertType::FundCritical));
        assert_eq!(fund_level(d("900"), level, d("950")), Some(AlertType::FundCritical), "below minimum");
        assert_eq!(fund_level(d("10"), None, Decimal::ZERO), None, "no level, no minimum");
        assert_eq!(fund_level(d("10"), None, d("50")), Some(AlertType::FundCritical));
    }

    #[test]
    fn only_open_alerts_are_acknowledged_and_resolved_is_final() {
        assert!(AlertState::Open.allows(AlertAction::Acknowledge));
        assert!(!AlertState::Acknowledged.allows(AlertAction::Acknowledge));
        assert!(AlertState::Acknowledged.allows(AlertAction::Resolve));
        assert!(!AlertState::Resolved.allows(AlertAction::Resolve));
        assert!(!AlertState::Resolved.allows(AlertAction::Acknowledge));
    }
}
