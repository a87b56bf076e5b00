//! Reconciliation of a payment against the bank's statement (issue #14 [treasury]).
//!
//! Treasury matches a succeeded `bank` or `mobile_money` payment with a line of the bank or
//! mobile-money statement and records the line's reference (`PaymentReconciled`, on the
//! requisition's stream, which owns its payment). The rules:
//!
//! - only a **paid** requisition, and only **its** payment (the payment id must be the one of
//!   its `RequisitionPaid`): a payment still in flight, or one that failed, did not succeed
//!   (`not_reconcilable`);
//! - a **cash** payment is refused (`not_reconcilable`): it leaves the fund by hand and is on no
//!   statement; the cash count (`CashCounted`) is what reconciles the cash box;
//! - by **treasury** (`missing_role` otherwise), the role that pays, and never by the person
//!   who made the payment (four eyes: `four_eyes`);
//! - **once**: the same statement reference again changes nothing (idempotent, no event); a
//!   different one is refused (`already_reconciled`). Two concurrent reconciliations append at
//!   the same stream sequence: one wins, the other is re-decided on the reconciled state.
//! - `statement_reference`: trimmed, 1 to [`STATEMENT_REFERENCE_MAX`] characters, no control
//!   characters (422 naming `statement_reference`).

use super::{Requisition, RequisitionEvent, Status};
use crate::error::DomainError;
use crate::fund::PaymentMethod;
use crate::{Actor, Id, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const STATEMENT_REFERENCE_MAX: usize = 64;

/// A payment matched with a statement line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub payment_id: Id,
    pub statement_reference: String,
    pub reconciled_by: Id,
    pub at: DateTime<Utc>,
}

/// A statement reference as it is recorded: trimmed, 1..=64 characters, printable.
pub fn clean_statement_reference(raw: &str) -> Result<String, DomainError> {
    const FIELD: &str = "statement_reference";
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(FIELD, "must not be blank"));
    }
    let len = trimmed.chars().count();
    if len > STATEMENT_REFERENCE_MAX {
        return Err(DomainError::invalid(
            FIELD,
            format!("must be at most {STATEMENT_REFERENCE_MAX} characters (got {len})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(FIELD, "must be printable: no control characters"));
    }
    Ok(trimmed.to_string())
}

impl Requisition {
    /// `PaymentReconciled`, or nothing when it is reconciled already with this reference.
    pub(super) fn decide_reconcile(
        &self,
        payment_id: Id,
        statement_reference: &str,
        now: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<Option<RequisitionEvent>, DomainError> {
        self.currency()?;
        let statement_reference = clean_statement_reference(statement_reference)?;
        if !actor.has(Role::Treasury) {
            return Err(DomainError::MissingRole { required: Role::Treasury });
        }
        let paid = self.payment.as_ref().filter(|p| p.payment_id == payment_id);
        let Some(payment) = paid else {
            if self.payment_in_flight.as_ref().is_some_and(|p| p.payment_id == payment_id) {
                return Err(DomainError::NotReconcilable {
                    reason: "the payment is still executing with the provider",
                });
            }
            if self.status == Status::Paid {
                // Paid, but by another payment: this one (a failed attempt) never succeeded.
                return Err(DomainError::NotReconcilable { reason: "this payment did not succeed" });
            }
            return Err(DomainError::NotReconcilable { reason: "the requisition is not paid" });
        };
        if payment.method == PaymentMethod::Cash {
            return Err(DomainError::NotReconcilable {
                reason: "a cash payment is on no bank statement (the cash count reconciles the cash box)",
            });
        }
        if let Some(done) = &self.reconciliation {
            if done.statement_reference == statement_reference {
                return Ok(None);
            }
            return Err(DomainError::AlreadyReconciled { reference: done.statement_reference.clone() });
        }
        if payment.paid_by == actor.user_id {
            return Err(DomainError::FourEyes { action: "made the payment" });
        }
        Ok(Some(RequisitionEvent::PaymentReconciled {
            payment_id,
            fund_id: self.fund_id.expect("created requisitions have a fund"),
            statement_reference,
            reconciled_by: actor.user_id,
            at: now,
        }))
    }
}
