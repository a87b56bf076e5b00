//! `verify` for fund operations (issue #14 [treasury]): replenishments, cash counts and their
//! variance adjustments, period close and closing a fund. Rules (names as printed):
//!
//! - `variance_mismatch`: a count whose recorded book balance is not the fund's running balance
//!   at that point, or whose variance is not counted − book; an adjustment whose amount is not
//!   its count's variance, or of no count.
//! - `variance_adjusted_twice`: a second adjustment (or a rejection after one) of a count.
//! - `variance_approved_by_counter`: an adjustment approved by the person who counted.
//! - `variance_approver_lacks_role`: an adjustment approved by someone who was neither an admin
//!   nor a holder of the `variance_approver_role` setting at the time
//!   (`fund::may_decide_variance`).
//! - `movement_in_closed_period`: a movement recorded at a time (its event's `at`; a
//!   disbursement's recording time) inside a period closed before it; or any movement after
//!   `FundClosed`.
//! - `replenishment_funded_twice`: a second `ReplenishmentFunded` of one request.
//! - `replenishment_not_approved`: funded without an approval, approved by its requester, or
//!   funded for an amount other than requested.
//! - `replenishment_approver_lacks_role`: approved by someone holding none of the roles that
//!   may (`fund::may_decide_replenishment`) at the time.
//! - Movements count into the running balance (`negative_balance`, `balance_mismatch`).

use super::Verifier;
use crate::EventRow;
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{may_decide_replenishment, may_decide_variance, FundEvent, Period};
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
    pub(super) fn fund_movement(
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
            | FundEvent::AdvanceCashReturned { .. }
            | FundEvent::CashReserved { .. }
            | FundEvent::ReservationReleased { .. }
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
                if !may_decide_replenishment(|r| self.holds(approved_by, r)) {
                    self.flag(
                        e,
                        "replenishment_approver_lacks_role",
                        format!("{approved_by} held none of cfo, admin, treasury"),
                    );
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
                        let role = self.settings.values.cash_counts.approver_role;
                        if let Some(by) =
                            approved_by.filter(|by| !may_decide_variance(|r| self.holds(*by, r), role))
                        {
                            self.flag(
                                e,
                                "variance_approver_lacks_role",
                                format!("{by} was neither admin nor {role}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::SealTracker;
    use pettycash_domain::role::Role;
    use serde_json::{json, Value};

    /// Feeds one fund's events, each at the next position and sequence, recorded at `at`.
    struct Feed {
        v: Verifier,
        position: i64,
        fund: Uuid,
    }

    impl Feed {
        fn new() -> Self {
            let mut f = Feed { v: Verifier::new(), position: 0, fund: Uuid::new_v4() };
            // The approver holds cfo (who may decide variances by default, and replenishments).
            f.v.users.insert(APPROVER, [Role::Cfo].into());
            let fund = f.fund;
            f.push(
                json!({"FundOpened": {"fund_id": fund, "name": "F", "currency": "KES", "float": "1000.00",
                "custodian_id": null, "opened_by": Uuid::nil()}}),
            );
            f
        }

        fn push(&mut self, payload: Value) -> i64 {
            self.push_at(payload, "2026-12-06T10:00:00Z".parse().unwrap())
        }

        fn push_at(&mut self, payload: Value, at: DateTime<Utc>) -> i64 {
            self.position += 1;
            let event_type = payload.as_object().unwrap().keys().next().unwrap().clone();
            let e = EventRow {
                global_position: self.position,
                aggregate_type: "fund".into(),
                aggregate_id: self.fund.to_string(),
                sequence: self.position,
                event_version: if event_type == "FundOpened" { "2" } else { "1" }.into(),
                event_type,
                payload: serde_json::value::to_raw_value(&payload).unwrap().into(),
                metadata: serde_json::value::to_raw_value(&json!({})).unwrap().into(),
                recorded_at: at,
            };
            self.v.feed(&e, None);
            self.position
        }

        /// The fund-operation rules reported, with their positions.
        fn rules(self) -> Vec<(i64, &'static str)> {
            self.v
                .finish(SealTracker::new(None), None)
                .violations
                .into_iter()
                .filter(|v| v.aggregate_type == "fund")
                .map(|v| (v.position, v.rule))
                .collect()
        }
    }

    const AT: &str = "2026-12-06T10:00:00Z";
    const COUNTER: Uuid = Uuid::from_u128(1);
    const APPROVER: Uuid = Uuid::from_u128(2);

    fn counted(count: Uuid, counted: &str, book: &str, variance: &str) -> Value {
        json!({"CashCounted": {"count_id": count, "counted_by": COUNTER, "pieces": [], "counted": counted,
            "book_balance": book, "variance": variance, "period": null, "at": AT}})
    }

    fn adjusted(count: Uuid, amount: &str, after: &str, by: Option<Uuid>) -> Value {
        json!({"VarianceAdjusted": {"count_id": count, "amount": amount, "balance_after": after,
            "approved_by": by, "at": AT}})
    }

    fn disbursed(amount: &str, after: &str) -> Value {
        json!({"CashDisbursed": {"payment_id": Uuid::new_v4(), "requisition_id": Uuid::new_v4(), "amount": amount,
            "balance_after": after, "method": "cash", "reference": null, "paid_by": APPROVER}})
    }

    fn requested(id: Uuid, amount: &str, by: Option<Uuid>) -> Value {
        json!({"ReplenishmentRequested": {"replenishment_id": id, "amount": amount, "balance": "0",
            "requested_by": by}})
    }

    fn funded(id: Uuid, amount: &str, after: &str) -> Value {
        json!({"ReplenishmentFunded": {"replenishment_id": id, "amount": amount, "balance_after": after,
            "bank_reference": "FT", "funded_by": APPROVER, "at": AT}})
    }

    /// Only fund-operation rules (a disbursement without its requisition side is
    /// `unmatched_payment`, which these tests do not look at).
    fn ops(rules: Vec<(i64, &'static str)>) -> Vec<(i64, &'static str)> {
        rules.into_iter().filter(|(_, r)| *r != "unmatched_payment").collect()
    }

    #[test]
    fn counts_adjustments_replenishment_period_close_and_closing_as_the_service_records_them_are_clean() {
        let mut f = Feed::new();
        let (count, rid) = (Uuid::new_v4(), Uuid::new_v4());
        f.push(counted(count, "900.00", "1000.00", "-100.00"));
        f.push(disbursed("300.00", "700.00"));
        f.push(adjusted(count, "-100.00", "600.00", Some(APPROVER)));
        f.push(requested(rid, "400.00", None));
        f.push(json!({"ReplenishmentApproved": {"replenishment_id": rid, "approved_by": APPROVER}}));
        f.push(funded(rid, "400.00", "1000.00"));
        f.push(json!({"PeriodClosed": {"period": "2026-12", "count_id": count, "closing_balance": "1000.00",
            "closed_by": COUNTER, "at": AT}}));
        f.push_at(disbursed("100.00", "900.00"), "2027-01-02T00:00:00Z".parse().unwrap());
        f.push(json!({"CashReturned": {"amount": "900.00", "balance_after": "0.00", "bank_reference": "DEP",
            "returned_by": APPROVER, "at": "2027-01-03T00:00:00Z"}}));
        f.push(json!({"FundClosed": {"closed_by": APPROVER, "at": "2027-01-03T00:00:00Z"}}));
        assert_eq!(ops(f.rules()), []);
    }

    #[test]
    fn approvals_by_someone_without_the_role_are_reported() {
        let mut f = Feed::new();
        let clerk = Uuid::from_u128(9);
        f.v.users.insert(clerk, [Role::Staff].into());
        let (count, rid) = (Uuid::new_v4(), Uuid::new_v4());
        f.push(counted(count, "900.00", "1000.00", "-100.00"));
        let variance = f.push(adjusted(count, "-100.00", "900.00", Some(clerk)));
        f.push(requested(rid, "100.00", None));
        let replenishment =
            f.push(json!({"ReplenishmentApproved": {"replenishment_id": rid, "approved_by": clerk}}));
        assert_eq!(
            ops(f.rules()),
            [
                (variance, "variance_approver_lacks_role"),
                (replenishment, "replenishment_approver_lacks_role")
            ]
        );
    }

    #[test]
    fn a_tampered_adjustment_is_reported() {
        // Not the count's variance (an overwrite to the counted amount would look like this).
        let mut f = Feed::new();
        let count = Uuid::new_v4();
        f.push(counted(count, "900.00", "1000.00", "-100.00"));
        f.push(disbursed("300.00", "700.00"));
        let bad = f.push(adjusted(count, "200.00", "900.00", Some(APPROVER)));
        assert_eq!(ops(f.rules()), [(bad, "variance_mismatch")]);

        // Approved by the counter (a cfo, so only four-eyes is broken); then adjusted again.
        let mut f = Feed::new();
        f.v.users.insert(COUNTER, [Role::Cfo].into());
        let count = Uuid::new_v4();
        f.push(counted(count, "900.00", "1000.00", "-100.00"));
        let own = f.push(adjusted(count, "-100.00", "900.00", Some(COUNTER)));
        let twice = f.push(adjusted(count, "-100.00", "800.00", Some(APPROVER)));
        assert_eq!(
            ops(f.rules()),
            [(own, "variance_approved_by_counter"), (twice, "variance_adjusted_twice")]
        );

        // A count whose book balance is not the running balance, or whose variance does not add up.
        let mut f = Feed::new();
        let wrong_book = f.push(counted(Uuid::new_v4(), "900.00", "950.00", "-50.00"));
        let wrong_sum = f.push(counted(Uuid::new_v4(), "900.00", "1000.00", "-90.00"));
        assert_eq!(ops(f.rules()), [(wrong_book, "variance_mismatch"), (wrong_sum, "variance_mismatch")]);
    }

    #[test]
    fn a_replenishment_funded_twice_or_unapproved_is_reported() {
        let mut f = Feed::new();
        let rid = Uuid::new_v4();
        f.push(disbursed("400.00", "600.00"));
        f.push(requested(rid, "400.00", Some(APPROVER)));
        let own =
            f.push(json!({"ReplenishmentApproved": {"replenishment_id": rid, "approved_by": APPROVER}}));
        f.push(funded(rid, "400.00", "1000.00"));
        let twice = f.push(funded(rid, "400.00", "1400.00"));
        let unrequested = f.push(funded(Uuid::new_v4(), "10.00", "1410.00"));
        assert_eq!(
            ops(f.rules()),
            [
                (own, "replenishment_not_approved"),
                (twice, "replenishment_funded_twice"),
                (unrequested, "replenishment_not_approved")
            ]
        );
    }

    #[test]
    fn a_movement_inside_a_closed_period_or_after_closing_is_reported() {
        let mut f = Feed::new();
        f.push(json!({"PeriodClosed": {"period": "2026-12", "count_id": Uuid::nil(), "closing_balance": "1000.00",
            "closed_by": COUNTER, "at": AT}}));
        let inside = f.push_at(disbursed("100.00", "900.00"), "2026-12-31T23:59:59Z".parse().unwrap());
        let earlier = f.push(json!({"CashReturned": {"amount": "900.00", "balance_after": "0.00",
            "bank_reference": "DEP", "returned_by": APPROVER, "at": "2026-11-30T00:00:00Z"}}));
        f.push(json!({"FundClosed": {"closed_by": APPROVER, "at": "2027-01-03T00:00:00Z"}}));
        let after = f.push_at(disbursed("0.01", "-0.01"), "2027-01-04T00:00:00Z".parse().unwrap());
        let rules = ops(f.rules());
        assert!(rules.contains(&(inside, "movement_in_closed_period")), "{rules:?}");
        assert!(rules.contains(&(earlier, "movement_in_closed_period")), "{rules:?}");
        assert!(rules.contains(&(after, "movement_in_closed_period")), "{rules:?}");
    }
}
