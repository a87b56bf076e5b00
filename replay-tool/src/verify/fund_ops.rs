//! `verify` for fund operations (issue #14 [treasury]): replenishments, cash counts and their
//! variance adjustments, period close and closing a fund. Rules (names as printed):
//!
//! - `variance_mismatch`: a count whose recorded book balance is not the fund's running balance
//!   at that point, or whose variance is not counted − book; an adjustment whose amount is not
//!   its count's variance, or of no count.
//! - `variance_adjusted_twice`: a second adjustment (or a rejection after one) of a count.
//! - `variance_approved_by_counter`: an adjustment approved by the person who counted.
//! - `movement_in_closed_period`: a movement recorded at a time (its event's `at`; a
//!   disbursement's recording time) inside a period closed before it; or any movement after
//!   `FundClosed`.
//! - `replenishment_funded_twice`: a second `ReplenishmentFunded` of one request.
//! - `replenishment_not_approved`: funded without an approval, approved by its requester, or
//!   funded for an amount other than requested.
//! - Movements count into the running balance (`negative_balance`, `balance_mismatch`).

use super::Verifier;
use crate::EventRow;
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{FundEvent, Period};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What `verify` follows of a fund's operations.
#[derive(Debug, Default)]
pub(super) struct FundOpsV {
    closed_through: Option<Period>,
    closed: bool,
    /// Requests: amount, requester (`None`: automatic), approved.
    requests: HashMap<Uuid, (Decimal, Option<Uuid>, bool)>,
    funded: HashSet<Uuid>,
    /// Counts: variance, counter, settled (adjusted or rejected).
    counts: HashMap<Uuid, (Decimal, Uuid, bool)>,
}

impl Verifier {
    /// A movement of fund `id` recorded at `at`: refused inside a closed period or after the
    /// fund closed.
    pub(super) fn fund_moved_at(&mut self, e: &EventRow, id: Uuid, at: DateTime<Utc>) {
        let ops = self.fund_ops.entry(id).or_default();
        let (closed, through) = (ops.closed, ops.closed_through);
        if closed {
            self.flag(e, "movement_in_closed_period", "a movement after the fund was closed".into());
        } else if let Some(p) = through.filter(|p| Period::of(at) <= *p) {
            self.flag(
                e,
                "movement_in_closed_period",
                format!("a movement at {at}, inside the closed period {p}"),
            );
        }
    }

    /// A movement of `amount` (signed) with its recorded `balance_after`.
    fn fund_movement(
        &mut self,
        e: &EventRow,
        id: Uuid,
        amount: Decimal,
        balance_after: Decimal,
        at: DateTime<Utc>,
    ) {
        self.fund_moved_at(e, id, at);
        let Some(f) = self.funds.get_mut(&id) else {
            self.flag(e, "negative_balance", "a movement of a fund never opened".into());
            return;
        };
        f.balance += amount;
        let b = f.balance;
        if b < Decimal::ZERO {
            self.flag(e, "negative_balance", format!("moving {amount} leaves the fund at {b}"));
        }
        if b != balance_after {
            self.flag(
                e,
                "balance_mismatch",
                format!("balance_after {balance_after} recorded, {b} computed from the amounts"),
            );
        }
    }

    /// The fund events other than the opening and disbursements.
    pub(super) fn fund_op(&mut self, e: &EventRow, id: Uuid, ev: FundEvent) {
        match ev {
            FundEvent::FundOpened { .. }
            | FundEvent::CashDisbursed { .. }
            | FundEvent::FundSettingsChanged { .. } => {}
            FundEvent::ReplenishmentRequested { replenishment_id, amount, requested_by, .. } => {
                self.fund_ops
                    .entry(id)
                    .or_default()
                    .requests
                    .insert(replenishment_id, (amount, requested_by, false));
            }
            FundEvent::ReplenishmentApproved { replenishment_id, approved_by } => {
                let ops = self.fund_ops.entry(id).or_default();
                let request = ops.requests.get_mut(&replenishment_id).map(|r| {
                    r.2 = true;
                    r.1
                });
                match request {
                    None => self.flag(e, "replenishment_not_approved", "an approval of no request".into()),
                    Some(requester) if requester == Some(approved_by) => self.flag(
                        e,
                        "replenishment_not_approved",
                        format!("approved by its requester {approved_by}"),
                    ),
                    Some(_) => {}
                }
            }
            FundEvent::ReplenishmentRejected { replenishment_id, .. } => {
                self.fund_ops.entry(id).or_default().requests.remove(&replenishment_id);
            }
            FundEvent::ReplenishmentFunded { replenishment_id, amount, balance_after, at, .. } => {
                let ops = self.fund_ops.entry(id).or_default();
                let twice = !ops.funded.insert(replenishment_id);
                let request = ops.requests.get(&replenishment_id).copied();
                if twice {
                    self.flag(
                        e,
                        "replenishment_funded_twice",
                        format!("request {replenishment_id} funded again"),
                    );
                } else {
                    match request {
                        Some((requested, _, true)) if requested == amount => {}
                        Some((requested, _, true)) => self.flag(
                            e,
                            "replenishment_not_approved",
                            format!("funded {amount}, {requested} was requested"),
                        ),
                        _ => self.flag(
                            e,
                            "replenishment_not_approved",
                            "funded without an approved request".into(),
                        ),
                    }
                }
                self.fund_movement(e, id, amount, balance_after, at);
            }
            FundEvent::CashCounted { count_id, counted_by, counted, book_balance, variance, .. } => {
                let running = self.funds.get(&id).map(|f| f.balance);
                if running != Some(book_balance) || counted - book_balance != variance {
                    self.flag(
                        e,
                        "variance_mismatch",
                        format!(
                            "count {count_id}: counted {counted}, book {book_balance} (running balance {}), variance {variance}",
                            running.map(|b| b.to_string()).unwrap_or_default()
                        ),
                    );
                }
                self.fund_ops.entry(id).or_default().counts.insert(count_id, (variance, counted_by, false));
            }
            FundEvent::VarianceAdjusted { count_id, amount, balance_after, approved_by, at } => {
                let count = self.fund_ops.entry(id).or_default().counts.get_mut(&count_id).map(|c| {
                    let before = *c;
                    c.2 = true;
                    before
                });
                match count {
                    None => {
                        self.flag(e, "variance_mismatch", format!("an adjustment of no count ({count_id})"))
                    }
                    Some((_, _, true)) => {
                        self.flag(e, "variance_adjusted_twice", format!("count {count_id} adjusted again"))
                    }
                    Some((variance, counter, false)) => {
                        if variance != amount {
                            self.flag(
                                e,
                                "variance_mismatch",
                                format!("adjusted by {amount}; the count's variance was {variance}"),
                            );
                        }
                        if approved_by == Some(counter) {
                            self.flag(
                                e,
                                "variance_approved_by_counter",
                                format!("{counter} counted and approved"),
                            );
                        }
                    }
                }
                self.fund_movement(e, id, amount, balance_after, at);
            }
            FundEvent::VarianceRejected { count_id, .. } => {
                let settled = self.fund_ops.entry(id).or_default().counts.get_mut(&count_id).map(|c| {
                    let was = c.2;
                    c.2 = true;
                    was
                });
                if settled == Some(true) {
                    self.flag(
                        e,
                        "variance_adjusted_twice",
                        format!("count {count_id} rejected after it was settled"),
                    );
                }
            }
            FundEvent::PeriodClosed { period, .. } => {
                let ops = self.fund_ops.entry(id).or_default();
                ops.closed_through = ops.closed_through.max(Some(period));
            }
            FundEvent::CashReturned { amount, balance_after, at, .. } => {
                self.fund_movement(e, id, -amount, balance_after, at);
            }
            FundEvent::FundClosed { .. } => self.fund_ops.entry(id).or_default().closed = true,
        }
    }
}
