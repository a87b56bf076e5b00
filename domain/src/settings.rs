//! Runtime settings: one typed aggregate (one stream, id [`SETTINGS_ID`]), changed by admins,
//! each change a `SettingChanged` event naming the setting and its new value. Every setting
//! here is read by the code it names (see [`SettingKey`]); a setting joins this list with the
//! feature that reads it.

use crate::error::DomainError;
pub use crate::money::CurrencyDisplay;
use crate::role::Role;
use crate::{Actor, Id};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// The single settings stream's aggregate id.
pub const SETTINGS_ID: &str = "settings";

/// A setting's name: one text form, as in the API and the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingKey {
    /// Shortest password a person may set (`check_password`), 8 to 128.
    PasswordMinLength,
    /// Passwords need an upper-case letter.
    PasswordRequireUpper,
    /// Passwords need a lower-case letter.
    PasswordRequireLower,
    /// Passwords need a digit.
    PasswordRequireDigit,
    /// Failed sign-ins on one account (or device) before sign-in is throttled, 1 to 100.
    LockoutThreshold,
    /// The longest a throttled account waits between attempts, in minutes, 1 to 1440.
    LockoutMinutes,
    /// How long a requester has to make the changes an approver asked for (unless the approver
    /// gives a deadline), in hours, 1 to 720. Past it the requisition expires.
    ChangeRequestHours,
    /// How long a step may wait before its approvers are reminded, in hours, 1 to 720.
    ApprovalReminderHours,
    /// How long a step may wait before it goes to the admins, in hours, 1 to 2160.
    ApprovalEscalationHours,
    /// How many days an invitation's link works (from issuing or resending it), 1 to 90.
    InvitationExpiryDays,
    /// A submission is flagged as a possible duplicate of the requester's other requisitions
    /// with the same payee and amount submitted within this many days, 0 (off) to 365.
    DuplicateWindowDays,
    /// How amounts are written for people (mail): `code` (`1500.00 KES`) or `symbol`
    /// (`KSh 1,500.00`).
    CurrencyDisplay,
    /// A cash count's variance up to this many basis points (1/100 %) of the fund's float is
    /// adjusted without an approver, 0 (every variance needs one) to 1000 (10 %).
    VarianceToleranceBasisPoints,
    /// Who approves a count's variance besides an admin (never the counter): a role name,
    /// default `cfo`.
    VarianceApproverRole,
    /// Days after its payment by which an advance is to be settled, 1 to 90; past it the
    /// advance is overdue and its holder is reminded.
    AdvanceDueDays,
    /// An unsettled advance blocks a new advance for the same person (asking for it, and paying
    /// it).
    AdvanceBlockWhileUnsettled,
    /// A submission that would exceed a budget covering it is refused (409
    /// `budget_exceeded`) rather than flagged to its approvers (`crate::budget`).
    BudgetBlock,
    /// A paid requisition with no receipt this many days after payment reminds its requester,
    /// once; 0 (off) to 365.
    ReceiptReminderDays,
    /// Cash payments below this whole amount need no one-time payment code, 0 (never waived,
    /// the default) to 1,000,000,000.
    PaymentCodeWaiverBelow,
    /// Minutes a payment through a provider may stay executing before the scheduler records
    /// `PaymentTimedOut`, 1 to 1440 (default 10).
    PaymentTimeoutMinutes,
    /// Attempts a payment through a provider may make after a retryable failure before it
    /// fails for good, 0 to 10 (default 3).
    PaymentMaxRetries,
    /// A payment above this whole amount (of its fund's currency) raises a `large_payment`
    /// alert, 0 (off, the default) to 1,000,000,000.
    AlertLargePaymentAbove,
    /// Wrong payment codes by one payer for one requisition within
    /// `alert_otp_window_minutes` that raise an `otp_failures` alert, 1 to 100 (default 3).
    AlertOtpFailures,
    /// The window of `alert_otp_failures`, in minutes, 1 to 1440 (default 60).
    AlertOtpWindowMinutes,
    /// Hours a count's variance may wait for approval before a `variance_pending` alert, 1 to
    /// 720 (default 48).
    AlertVariancePendingHours,
}

impl SettingKey {
    pub const ALL: [SettingKey; 25] = [
        SettingKey::PasswordMinLength,
        SettingKey::PasswordRequireUpper,
        SettingKey::PasswordRequireLower,
        SettingKey::PasswordRequireDigit,
        SettingKey::LockoutThreshold,
        SettingKey::LockoutMinutes,
        SettingKey::ChangeRequestHours,
        SettingKey::ApprovalReminderHours,
        SettingKey::ApprovalEscalationHours,
        SettingKey::InvitationExpiryDays,
        SettingKey::DuplicateWindowDays,
        SettingKey::CurrencyDisplay,
        SettingKey::VarianceToleranceBasisPoints,
        SettingKey::VarianceApproverRole,
        SettingKey::AdvanceDueDays,
        SettingKey::AdvanceBlockWhileUnsettled,
        SettingKey::BudgetBlock,
        SettingKey::ReceiptReminderDays,
        SettingKey::PaymentCodeWaiverBelow,
        SettingKey::PaymentTimeoutMinutes,
        SettingKey::PaymentMaxRetries,
        SettingKey::AlertLargePaymentAbove,
        SettingKey::AlertOtpFailures,
        SettingKey::AlertOtpWindowMinutes,
        SettingKey::AlertVariancePendingHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::PasswordMinLength => "password_min_length",
            SettingKey::PasswordRequireUpper => "password_require_upper",
            SettingKey::PasswordRequireLower => "password_require_lower",
            SettingKey::PasswordRequireDigit => "password_require_digit",
            SettingKey::LockoutThreshold => "lockout_threshold",
            SettingKey::LockoutMinutes => "lockout_minutes",
            SettingKey::ChangeRequestHours => "change_request_hours",
            SettingKey::ApprovalReminderHours => "approval_reminder_hours",
            SettingKey::ApprovalEscalationHours => "approval_escalation_hours",
            SettingKey::InvitationExpiryDays => "invitation_expiry_days",
            SettingKey::DuplicateWindowDays => "duplicate_window_days",
            SettingKey::CurrencyDisplay => "currency_display",
            SettingKey::VarianceToleranceBasisPoints => "variance_tolerance_basis_points",
            SettingKey::VarianceApproverRole => "variance_approver_role",
            SettingKey::AdvanceDueDays => "advance_due_days",
            SettingKey::AdvanceBlockWhileUnsettled => "advance_block_while_unsettled",
            SettingKey::BudgetBlock => "budget_block",
            SettingKey::ReceiptReminderDays => "receipt_reminder_days",
            SettingKey::PaymentCodeWaiverBelow => "payment_code_waiver_below",
            SettingKey::PaymentTimeoutMinutes => "payment_timeout_minutes",
            SettingKey::PaymentMaxRetries => "payment_max_retries",
            SettingKey::AlertLargePaymentAbove => "alert_large_payment_above",
            SettingKey::AlertOtpFailures => "alert_otp_failures",
            SettingKey::AlertOtpWindowMinutes => "alert_otp_window_minutes",
            SettingKey::AlertVariancePendingHours => "alert_variance_pending_hours",
        }
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a setting's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown setting `{0}`")]
pub struct UnknownSetting(pub String);

impl FromStr for SettingKey {
    type Err = UnknownSetting;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SettingKey::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownSetting(s.to_string()))
    }
}

/// The password rules (issue [workflow]: length ≥ 12, an upper-case letter, a lower-case
/// letter and a digit, unless an admin changes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub require_upper: bool,
    pub require_lower: bool,
    pub require_digit: bool,
}

impl PasswordPolicy {
    /// Checks a new password; the error names what is missing.
    pub fn check(&self, password: &str) -> Result<(), DomainError> {
        let invalid = |message: String| Err(DomainError::invalid("password", message));
        if password.chars().count() < self.min_length as usize {
            return invalid(format!("must be at least {} characters", self.min_length));
        }
        if password.len() > 1024 {
            return invalid("must be at most 1024 bytes".into());
        }
        if self.require_upper && !password.chars().any(char::is_uppercase) {
            return invalid("must contain an upper-case letter".into());
        }
        if self.require_lower && !password.chars().any(char::is_lowercase) {
            return invalid("must contain a lower-case letter".into());
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            return invalid("must contain a digit".into());
        }
        Ok(())
    }
}

/// Sign-in throttling as admins set it (the rest of the throttle is the service's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockout {
    pub threshold: u32,
    pub minutes: u32,
}

/// How long requisitions may wait, in hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// For the requester's changes (default 48).
    pub change_request_hours: u32,
    /// For a step, before its approvers are reminded (default 24).
    pub approval_reminder_hours: u32,
    /// For a step, before it goes to the admins (default 72).
    pub approval_escalation_hours: u32,
}

/// Invitations as admins set them (read where invitations are issued and resent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationSettings {
    /// How many days a link works.
    pub expiry_days: u32,
}

/// Cash counts as admins set them (read where counts and their variances are decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashCountSettings {
    /// Tolerance in basis points of the fund's float (default 0: every variance is approved
    /// by someone).
    pub tolerance_basis_points: u32,
    /// Who approves a variance besides an admin (default `cfo`).
    pub approver_role: Role,
}

impl Default for CashCountSettings {
    fn default() -> Self {
        Self { tolerance_basis_points: 0, approver_role: Role::Cfo }
    }
}

impl CashCountSettings {
    /// The tolerance for a fund of `float`, as an amount.
    pub fn tolerance(&self, float: rust_decimal::Decimal) -> rust_decimal::Decimal {
        float * rust_decimal::Decimal::from(self.tolerance_basis_points) / rust_decimal::Decimal::from(10_000)
    }
}

/// Advances as admins set them (read where advances are asked for, paid and found overdue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceSettings {
    /// Days after payment by which an advance is due (default 7).
    pub due_days: u32,
    /// An unsettled advance blocks another for the same person (default true).
    pub block_while_unsettled: bool,
}

impl Default for AdvanceSettings {
    fn default() -> Self {
        Self { due_days: 7, block_while_unsettled: true }
    }
}

/// Every setting with its value in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub password: PasswordPolicy,
    pub lockout: Lockout,
    #[serde(default)]
    pub waiting: Waiting,
    #[serde(default)]
    pub invitations: InvitationSettings,
    /// Days within which a submission with the same payee and amount as another of the same
    /// requester is flagged (0: never).
    #[serde(default = "default_duplicate_window_days")]
    pub duplicate_window_days: u32,
    #[serde(default)]
    pub currency_display: CurrencyDisplay,
    #[serde(default)]
    pub cash_counts: CashCountSettings,
    #[serde(default)]
    pub advances: AdvanceSettings,
    /// Over-budget submissions are refused rather than flagged (default false).
    #[serde(default)]
    pub budget_block: bool,
    /// Days after payment without a receipt before the requester is reminded (0: never).
    #[serde(default = "default_receipt_reminder_days")]
    pub receipt_reminder_days: u32,
    #[serde(default)]
    pub payments: PaymentSettings,
    #[serde(default)]
    pub alerts: AlertSettings,
}

/// What raises alerts, as admins set it (issue #15; read by the `alerts` projection and the
/// scheduler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    /// Payments above this whole amount raise `large_payment`; 0: never.
    #[serde(default)]
    pub large_payment_above: u64,
    /// Wrong codes within the window that raise `otp_failures`.
    #[serde(default = "default_alert_otp_failures")]
    pub otp_failures: u32,
    #[serde(default = "default_alert_otp_window_minutes")]
    pub otp_window_minutes: u32,
    /// Hours before a pending variance raises `variance_pending`.
    #[serde(default = "default_alert_variance_pending_hours")]
    pub variance_pending_hours: u32,
}

fn default_alert_otp_failures() -> u32 {
    3
}

fn default_alert_otp_window_minutes() -> u32 {
    60
}

fn default_alert_variance_pending_hours() -> u32 {
    48
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            large_payment_above: 0,
            otp_failures: default_alert_otp_failures(),
            otp_window_minutes: default_alert_otp_window_minutes(),
            variance_pending_hours: default_alert_variance_pending_hours(),
        }
    }
}

fn default_receipt_reminder_days() -> u32 {
    3
}

/// Payments as admins set them (issue #14 [treasury]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSettings {
    /// Cash payments below this whole amount (of the fund's currency) need no one-time code;
    /// 0 (the default): every payment needs one.
    #[serde(default)]
    pub code_waiver_below: u64,
    /// Minutes a payment through a provider may stay executing before it is timed out.
    #[serde(default = "default_payment_timeout_minutes")]
    pub timeout_minutes: u32,
    /// Retries (new provider attempts) after a retryable failure.
    #[serde(default = "default_payment_max_retries")]
    pub max_retries: u32,
}

fn default_payment_timeout_minutes() -> u32 {
    10
}

fn default_payment_max_retries() -> u32 {
    3
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            code_waiver_below: 0,
            timeout_minutes: default_payment_timeout_minutes(),
            max_retries: default_payment_max_retries(),
        }
    }
}

/// The largest `payment_code_waiver_below`.
pub const CODE_WAIVER_MAX: u64 = 1_000_000_000;

fn default_duplicate_window_days() -> u32 {
    30
}

impl Default for Waiting {
    fn default() -> Self {
        Self { change_request_hours: 48, approval_reminder_hours: 24, approval_escalation_hours: 72 }
    }
}

impl Default for InvitationSettings {
    fn default() -> Self {
        Self { expiry_days: 7 }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            password: PasswordPolicy {
                min_length: 12,
                require_upper: true,
                require_lower: true,
                require_digit: true,
            },
            lockout: Lockout { threshold: 5, minutes: 15 },
            waiting: Waiting::default(),
            invitations: InvitationSettings::default(),
            duplicate_window_days: default_duplicate_window_days(),
            currency_display: CurrencyDisplay::default(),
            cash_counts: CashCountSettings::default(),
            advances: AdvanceSettings::default(),
            budget_block: false,
            receipt_reminder_days: default_receipt_reminder_days(),
            payments: PaymentSettings::default(),
            alerts: AlertSettings::default(),
        }
    }
}

impl Settings {
    /// The value of one setting, as the API shows it.
    pub fn get(&self, key: SettingKey) -> Value {
        match key {
            SettingKey::PasswordMinLength => self.password.min_length.into(),
            SettingKey::PasswordRequireUpper => self.password.require_upper.into(),
            SettingKey::PasswordRequireLower => self.password.require_lower.into(),
            SettingKey::PasswordRequireDigit => self.password.require_digit.into(),
            SettingKey::LockoutThreshold => self.lockout.threshold.into(),
            SettingKey::LockoutMinutes => self.lockout.minutes.into(),
            SettingKey::ChangeRequestHours => self.waiting.change_request_hours.into(),
            SettingKey::ApprovalReminderHours => self.waiting.approval_reminder_hours.into(),
            SettingKey::ApprovalEscalationHours => self.waiting.approval_escalation_hours.into(),
            SettingKey::InvitationExpiryDays => self.invitations.expiry_days.into(),
            SettingKey::DuplicateWindowDays => self.duplicate_window_days.into(),
            SettingKey::CurrencyDisplay => self.currency_display.as_str().into(),
            SettingKey::VarianceToleranceBasisPoints => self.cash_counts.tolerance_basis_points.into(),
            SettingKey::VarianceApproverRole => self.cash_counts.approver_role.as_str().into(),
            SettingKey::AdvanceDueDays => self.advances.due_days.into(),
            SettingKey::AdvanceBlockWhileUnsettled => self.advances.block_while_unsettled.into(),
            SettingKey::BudgetBlock => self.budget_block.into(),
            SettingKey::ReceiptReminderDays => self.receipt_reminder_days.into(),
            SettingKey::PaymentCodeWaiverBelow => self.payments.code_waiver_below.into(),
            SettingKey::PaymentTimeoutMinutes => self.payments.timeout_minutes.into(),
            SettingKey::PaymentMaxRetries => self.payments.max_retries.into(),
            SettingKey::AlertLargePaymentAbove => self.alerts.large_payment_above.into(),
            SettingKey::AlertOtpFailures => self.alerts.otp_failures.into(),
            SettingKey::AlertOtpWindowMinutes => self.alerts.otp_window_minutes.into(),
            SettingKey::AlertVariancePendingHours => self.alerts.variance_pending_hours.into(),
        }
    }

    /// Sets one setting from its JSON value, if the value is of its type and in its range.
    pub fn set(&mut self, key: SettingKey, value: &Value) -> Result<(), DomainError> {
        let whole = |min: u32, max: u32| -> Result<u32, DomainError> {
            value.as_u64().and_then(|v| u32::try_from(v).ok()).filter(|v| (min..=max).contains(v)).ok_or_else(
                || DomainError::invalid("value", format!("{key} is a whole number from {min} to {max}")),
            )
        };
        let flag = || {
            value.as_bool().ok_or_else(|| DomainError::invalid("value", format!("{key} is true or false")))
        };
        match key {
            SettingKey::PaymentCodeWaiverBelow => {
                self.payments.code_waiver_below =
                    value.as_u64().filter(|v| *v <= CODE_WAIVER_MAX).ok_or_else(|| {
                        DomainError::invalid(
                            "value",
                            format!("{key} is a whole amount from 0 to {CODE_WAIVER_MAX}"),
                        )
                    })?
            }
            SettingKey::PaymentTimeoutMinutes => self.payments.timeout_minutes = whole(1, 1440)?,
            SettingKey::PaymentMaxRetries => self.payments.max_retries = whole(0, 10)?,
            SettingKey::AlertLargePaymentAbove => {
                self.alerts.large_payment_above =
                    value.as_u64().filter(|v| *v <= CODE_WAIVER_MAX).ok_or_else(|| {
                        DomainError::invalid(
                            "value",
                            format!("{key} is a whole amount from 0 to {CODE_WAIVER_MAX}"),
                        )
                    })?
            }
            SettingKey::AlertOtpFailures => self.alerts.otp_failures = whole(1, 100)?,
            SettingKey::AlertOtpWindowMinutes => self.alerts.otp_window_minutes = whole(1, 1440)?,
            SettingKey::AlertVariancePendingHours => self.alerts.variance_pending_hours = whole(1, 720)?,
            SettingKey::PasswordMinLength => self.password.min_length = whole(8, 128)?,
            SettingKey::PasswordRequireUpper => self.password.require_upper = flag()?,
            SettingKey::PasswordRequireLower => self.password.require_lower = flag()?,
            SettingKey::PasswordRequireDigit => self.password.require_digit = flag()?,
            SettingKey::LockoutThreshold => self.lockout.threshold = whole(1, 100)?,
            SettingKey::LockoutMinutes => self.lockout.minutes = whole(1, 1440)?,
            SettingKey::ChangeRequestHours => self.waiting.change_request_hours = whole(1, 720)?,
            SettingKey::ApprovalReminderHours => self.waiting.approval_reminder_hours = whole(1, 720)?,
            SettingKey::ApprovalEscalationHours => self.waiting.approval_escalation_hours = whole(1, 2160)?,
            SettingKey::InvitationExpiryDays => self.invitations.expiry_days = whole(1, 90)?,
            SettingKey::DuplicateWindowDays => self.duplicate_window_days = whole(0, 365)?,
            SettingKey::BudgetBlock => self.budget_block = flag()?,
            SettingKey::ReceiptReminderDays => self.receipt_reminder_days = whole(0, 365)?,
            SettingKey::CurrencyDisplay => {
                self.currency_display = value.as_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
                    DomainError::invalid("value", format!("{key} is one of {}", CurrencyDisplay::NAMES))
                })?
            }
            SettingKey::VarianceToleranceBasisPoints => {
                self.cash_counts.tolerance_basis_points = whole(0, 1000)?
            }
            SettingKey::AdvanceDueDays => self.advances.due_days = whole(1, 90)?,
            SettingKey::AdvanceBlockWhileUnsettled => self.advances.block_while_unsettled = flag()?,
            SettingKey::VarianceApproverRole => {
                self.cash_counts.approver_role =
                    value.as_str().and_then(|v| v.parse::<Role>().ok()).ok_or_else(|| {
                        DomainError::invalid("value", format!("{key} is a role name, e.g. `cfo`"))
                    })?
            }
        }
        Ok(())
    }
}

/// The settings aggregate: the values, and how many changes led to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeSettings {
    pub version: u32,
    pub values: Settings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SettingsCommand {
    Change { key: SettingKey, value: Value, actor: Actor },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SettingsEvent {
    SettingChanged { key: SettingKey, value: Value, changed_by: Id },
}

impl DomainEvent for SettingsEvent {
    fn event_type(&self) -> String {
        match self {
            SettingsEvent::SettingChanged { .. } => "SettingChanged".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

impl Aggregate for RuntimeSettings {
    const TYPE: &'static str = "settings";
    type Command = SettingsCommand;
    type Event = SettingsEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            SettingsCommand::Change { key, value, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                let mut next = self.values.clone();
                next.set(key, &value)?;
                sink.write(SettingsEvent::SettingChanged { key, value, changed_by: actor.user_id }, self)
                    .await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SettingsEvent::SettingChanged { key, value, .. } => {
                // Checked when decided; a value that no longer fits (a range narrowed by a later
                // release) keeps the previous one.
                let _ = self.values.set(key, &value);
                self.version += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    fn admin() -> Actor {
        Actor::new(Id::nil(), [Role::Admin])
    }

    #[test]
    fn the_default_password_policy_is_twelve_with_upper_lower_and_digit() {
        let policy = Settings::default().password;
        assert!(policy.check("Twelve chars1").is_ok());
        for (bad, why) in [
            ("Short1a", "at least 12"),
            ("no upper case 1", "upper-case"),
            ("NO LOWER CASE 1", "lower-case"),
            ("No digits at all", "digit"),
        ] {
            let err = policy.check(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn an_admin_changes_a_setting_within_its_range() {
        TestFramework::<RuntimeSettings>::with(())
            .given_no_previous_events()
            .when(SettingsCommand::Change {
                key: SettingKey::PasswordMinLength,
                value: json!(16),
                actor: admin(),
            })
            .then_expect_events(vec![SettingsEvent::SettingChanged {
                key: SettingKey::PasswordMinLength,
                value: json!(16),
                changed_by: Id::nil(),
            }]);
        for (key, value) in [
            (SettingKey::PasswordMinLength, json!(7)),
            (SettingKey::PasswordMinLength, json!("16")),
            (SettingKey::PasswordRequireDigit, json!(1)),
            (SettingKey::LockoutThreshold, json!(0)),
            (SettingKey::LockoutMinutes, json!(1441)),
            (SettingKey::LockoutMinutes, json!(-5)),
            (SettingKey::InvitationExpiryDays, json!(0)),
            (SettingKey::InvitationExpiryDays, json!(91)),
            (SettingKey::DuplicateWindowDays, json!(366)),
            (SettingKey::DuplicateWindowDays, json!(-1)),
            (SettingKey::CurrencyDisplay, json!("dollars")),
            (SettingKey::CurrencyDisplay, json!(1)),
            (SettingKey::VarianceToleranceBasisPoints, json!(1001)),
            (SettingKey::VarianceApproverRole, json!("banker")),
            (SettingKey::ReceiptReminderDays, json!(366)),
        ] {
            let err = Settings::default().set(key, &value).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field: "value", message } if message.starts_with(key.as_str())),
                "{key} = {value}: {err}"
            );
        }
        TestFramework::<RuntimeSettings>::with(())
            .given_no_previous_events()
            .when(SettingsCommand::Change {
                key: SettingKey::LockoutThreshold,
                value: json!(3),
                actor: Actor::new(Id::nil(), [Role::Cfo]),
            })
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
    }

    #[test]
    fn changes_fold_into_the_values() {
        let mut s = RuntimeSettings::default();
        s.apply(SettingsEvent::SettingChanged {
            key: SettingKey::LockoutThreshold,
            value: json!(3),
            changed_by: Id::nil(),
        });
        s.apply(SettingsEvent::SettingChanged {
            key: SettingKey::PasswordRequireUpper,
            value: json!(false),
            changed_by: Id::nil(),
        });
        assert_eq!(s.version, 2);
        assert_eq!(s.values.lockout.threshold, 3);
        assert!(s.values.password.check("all lower case 1").is_ok());
        for key in SettingKey::ALL {
            assert_eq!(key.as_str().parse::<SettingKey>().unwrap(), key);
            assert_eq!(serde_json::to_value(key).unwrap(), key.as_str());
        }
    }
}
