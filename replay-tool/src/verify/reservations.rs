//! `verify` for payments through a provider (issue #14 [treasury]): a fund's reservations.
//!
//! - `reservation_twice`: a second `CashReserved` for one payment id.
//! - `reservation_not_open`: a `ReservationReleased`, or a `CashDisbursed` that says it
//!   consumes a reservation (`reserved`), for a payment whose reservation is not open on that
//!   fund (never made, released already, consumed already): a reservation ends exactly once.
//! - `reservation_mismatch`: a release or a consuming disbursement whose amount is not the
//!   reserved amount.
//! - `overdrawn_by_reservation`: a reservation larger than what the fund had available
//!   (balance less its open reservations).
//! - `provider_payment_without_start`: a `RequisitionPaid` by `bank` or `mobile_money`, or a
//!   `PaymentFailed`, without a `PaymentStarted` of that payment in flight on the requisition
//!   (no success without an execution; a payment ends once); `payment_started_twice`: a
//!   `PaymentStarted` while another payment of the requisition is in flight.

use super::Verifier;
use crate::EventRow;
use pettycash_domain::requisition::RequisitionEvent;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What `verify` follows of reservations.
#[derive(Debug, Clone, Default)]
pub(super) struct ReservationsV {
    /// Open reservations: payment id → (fund, amount).
    open: HashMap<Uuid, (Uuid, Decimal)>,
    /// Every payment id that was ever reserved.
    seen: HashSet<Uuid>,
    /// Requisition → its payment in flight with a provider.
    in_flight: HashMap<Uuid, Uuid>,
}

impl ReservationsV {
    /// The open reservations of `fund`, summed.
    fn reserved_on(&self, fund: Uuid) -> Decimal {
        self.open.values().filter(|(f, _)| *f == fund).map(|(_, a)| *a).sum()
    }
}

impl Verifier {
    /// `CashReserved` of `amount` for `payment` on `fund`, whose running balance is `balance`.
    pub(super) fn reserved(
        &mut self,
        e: &EventRow,
        fund: Uuid,
        payment: Uuid,
        amount: Decimal,
        balance: Option<Decimal>,
    ) {
        if !self.reservations.seen.insert(payment) {
            self.flag(e, "reservation_twice", format!("a second reservation for payment {payment}"));
            return;
        }
        let available = balance.unwrap_or_default() - self.reservations.reserved_on(fund);
        if amount > available {
            self.flag(
                e,
                "overdrawn_by_reservation",
                format!("reserving {amount} with {available} available"),
            );
        }
        self.reservations.open.insert(payment, (fund, amount));
    }

    /// A reservation ends: released (`consumed` false) or consumed by a disbursement of `amount`.
    pub(super) fn reservation_ended(
        &mut self,
        e: &EventRow,
        fund: Uuid,
        payment: Uuid,
        amount: Decimal,
        consumed: bool,
    ) {
        let what = if consumed { "disbursement of a reservation" } else { "release" };
        match self.reservations.open.get(&payment).copied() {
            Some((f, reserved)) if f == fund => {
                self.reservations.open.remove(&payment);
                if reserved != amount {
                    self.flag(
                        e,
                        "reservation_mismatch",
                        format!("{what} of {amount} for payment {payment}, {reserved} reserved"),
                    );
                }
            }
            _ => self.flag(
                e,
                "reservation_not_open",
                format!("{what} for payment {payment} without an open reservation on this fund"),
            ),
        }
    }

    /// The requisition side of a payment through a provider.
    pub(super) fn provider_step(&mut self, e: &EventRow, requisition: Uuid, ev: &RequisitionEvent) {
        match ev {
            RequisitionEvent::PaymentStarted { payment_id, .. } => {
                if let Some(other) = self.reservations.in_flight.insert(requisition, *payment_id) {
                    self.flag(
                        e,
                        "payment_started_twice",
                        format!("payment {payment_id} started while {other} was in flight"),
                    );
                }
            }
            RequisitionEvent::PaymentFailed { payment_id, .. } => {
                self.provider_end(e, requisition, *payment_id)
            }
            RequisitionEvent::RequisitionPaid { payment_id, method, .. } if method.through_provider() => {
                self.provider_end(e, requisition, *payment_id)
            }
            _ => {}
        }
    }

    fn provider_end(&mut self, e: &EventRow, requisition: Uuid, payment: Uuid) {
        if self.reservations.in_flight.get(&requisition) == Some(&payment) {
            self.reservations.in_flight.remove(&requisition);
        } else {
            self.flag(
                e,
                "provider_payment_without_start",
                format!("a result for payment {payment}, which is not in flight on this requisition"),
            );
        }
    }
}
