//! `verify` for payment reconciliation (`pettycash_domain::requisition`'s `reconcile` module):
//! a `PaymentReconciled` names the payment of the requisition's `RequisitionPaid` (a payment
//! that succeeded), by bank or mobile money, and is recorded once per payment.
//!
//! Findings: `reconciled_unpaid` (no `RequisitionPaid` with that payment id on the
//! requisition before it: in flight, failed or unknown), `reconciled_cash` (a cash payment),
//! `double_reconciliation` (a second one for the same payment).

use super::Verifier;
use crate::EventRow;
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::requisition::RequisitionEvent;
use uuid::Uuid;

/// What `verify` follows of a requisition's payment for these checks.
#[derive(Debug, Clone, Default)]
pub(super) struct ReconcileV {
    /// The payment that paid it (`RequisitionPaid`) and its method.
    pub(super) paid: Option<(Uuid, PaymentMethod)>,
    /// The statement reference it was reconciled against, once it was.
    pub(super) reconciled: Option<String>,
}

impl Verifier {
    /// Follows `RequisitionPaid` and checks `PaymentReconciled`.
    pub(super) fn reconcile_step(&mut self, e: &EventRow, id: Uuid, ev: &RequisitionEvent) {
        match ev {
            RequisitionEvent::RequisitionPaid { payment_id, method, .. } => {
                self.requisitions.entry(id).or_default().reconcile.paid = Some((*payment_id, *method));
            }
            RequisitionEvent::PaymentReconciled { payment_id, statement_reference, .. } => {
                let r = &mut self.requisitions.entry(id).or_default().reconcile;
                let (paid, before) = (r.paid, r.reconciled.clone());
                if before.is_none() {
                    r.reconciled = Some(statement_reference.clone());
                }
                match paid {
                    Some((paid_id, method)) if paid_id == *payment_id => {
                        if method == PaymentMethod::Cash {
                            self.flag(
                                e,
                                "reconciled_cash",
                                format!("payment {payment_id} was paid in cash: it is on no statement"),
                            );
                        }
                    }
                    _ => self.flag(
                        e,
                        "reconciled_unpaid",
                        format!("payment {payment_id} did not succeed on this requisition before it was reconciled"),
                    ),
                }
                if let Some(first) = before {
                    self.flag(
                        e,
                        "double_reconciliation",
                        format!(
                            "payment {payment_id} reconciled a second time (`{statement_reference}`; first `{first}`)"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}
