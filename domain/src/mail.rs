//! The kinds of mail the service sends, one word each. A user may mute a category
//! ([`crate::user::UserEvent::MailMuted`]) except the ones they must receive whatever they
//! prefer ([`MailCategory::is_mutable`]): an invitation, security mail, a payment code.
//!
//! The words are stored (`mail_outbox.category`, `users.muted_mail`) and sent
//! (`GET/PUT /api/me/mail-preferences`) in their one text form, [`MailCategory::as_str`].

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailCategory {
    /// A requisition waits for the recipient's approval.
    ApprovalRequested,
    /// The recipient's requisition was approved, rejected or sent back for changes (and,
    /// later, expired).
    RequisitionOutcome,
    /// An approved requisition waits for the recipient (treasury) to pay it.
    ReadyForPayment,
    /// The recipient's requisition was paid.
    Paid,
    /// Something waits for the recipient for too long (overdue approvals, unpaid approvals).
    Reminder,
    /// An invitation to set a password and sign in. Not mutable.
    Invitation,
    /// Sign-ins, password and role changes of the recipient's own account. Not mutable.
    Security,
    /// A code that confirms a payment (mobile money, later). Not mutable.
    PaymentCode,
    /// An alert about something the recipient is responsible for (a fund, a payment, an
    /// advance; issue #15), of high, medium or low severity.
    Alert,
    /// A critical alert (a fund about to run dry, repeated wrong payment codes). Not mutable.
    CriticalAlert,
}

impl MailCategory {
    pub const ALL: [MailCategory; 10] = [
        MailCategory::ApprovalRequested,
        MailCategory::RequisitionOutcome,
        MailCategory::ReadyForPayment,
        MailCategory::Paid,
        MailCategory::Reminder,
        MailCategory::Invitation,
        MailCategory::Security,
        MailCategory::PaymentCode,
        MailCategory::Alert,
        MailCategory::CriticalAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailCategory::ApprovalRequested => "approval_requested",
            MailCategory::RequisitionOutcome => "requisition_outcome",
            MailCategory::ReadyForPayment => "ready_for_payment",
            MailCategory::Paid => "paid",
            MailCategory::Reminder => "reminder",
            MailCategory::Invitation => "invitation",
            MailCategory::Security => "security",
            MailCategory::PaymentCode => "payment_code",
            MailCategory::Alert => "alert",
            MailCategory::CriticalAlert => "critical_alert",
        }
    }

    /// Whether a user may mute it. An invitation, security mail and a payment code are what
    /// an account depends on, and a critical alert is what the money depends on: they come
    /// whatever the user's preferences say.
    pub fn is_mutable(self) -> bool {
        !matches!(
            self,
            MailCategory::Invitation
                | MailCategory::Security
                | MailCategory::PaymentCode
                | MailCategory::CriticalAlert
        )
    }

    /// Whether its mail carries a secret (an invitation's link, a payment code): its body waits
    /// in the outbox only until it is sent, then the sender removes it.
    pub fn carries_secret(self) -> bool {
        matches!(self, MailCategory::Invitation | MailCategory::PaymentCode)
    }
}

impl fmt::Display for MailCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MailCategory {
    type Err = crate::fund::UnknownWord;

    /// Exactly [`MailCategory::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| crate::fund::UnknownWord { what: "mail category", text: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_round_trip_in_text_and_json() {
        for c in MailCategory::ALL {
            assert_eq!(c.as_str().parse::<MailCategory>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
        }
        assert!("Approval_Requested".parse::<MailCategory>().is_err());
    }

    #[test]
    fn invitations_security_mail_and_payment_codes_cannot_be_muted() {
        let unmutable: Vec<_> = MailCategory::ALL.into_iter().filter(|c| !c.is_mutable()).collect();
        assert_eq!(
            unmutable,
            [
                MailCategory::Invitation,
                MailCategory::Security,
                MailCategory::PaymentCode,
                MailCategory::CriticalAlert
            ]
        );
    }
}
