//! A petty cash fund (imprest float): one currency, a float amount, a custodian and a
//! balance that never goes below zero.
//!
//! The fund's state is deliberately small (no list of payments): it must load quickly even
//! with a long history. The "paid at most once" rule lives on the requisition; a payment
//! appends to both streams in one transaction (see `docs/architecture.md`).

use crate::error::{clean_text, DomainError};
use crate::money::Currency;
use crate::organisation::UnitPath;
use crate::role::Role;
use crate::{Actor, Id};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How cash left the fund: over the counter (synchronous), or through a provider (bank
/// transfer, mobile money: the amount is reserved first and leaves when the provider reports
/// success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    Bank,
    MobileMoney,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] =
        [PaymentMethod::Cash, PaymentMethod::Bank, PaymentMethod::MobileMoney];

    /// The one text form (JSON, columns, lists).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "cash",
            PaymentMethod::Bank => "bank",
            PaymentMethod::MobileMoney => "mobile_money",
        }
    }

    /// Whether it goes through a provider (reserved, then disbursed on the provider's success).
    pub fn through_provider(self) -> bool {
        !matches!(self, PaymentMethod::Cash)
    }
}

/// A word that is not one of an enum's text forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{text}`")]
pub struct UnknownWord {
    pub what: &'static str,
    pub text: String,
}

impl std::str::FromStr for PaymentMethod {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownWord { what: "payment method", text: s.to_string() })
    }
}

/// What moved cash in or out of a fund: a line of its cash book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// The float the fund was opened with.
    Opening,
    /// Cash paid out for a requisition.
    Disbursement,
}

impl MovementKind {
    pub const ALL: [MovementKind; 2] = [MovementKind::Opening, MovementKind::Disbursement];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Opening => "opening",
            MovementKind::Disbursement => "disbursement",
        }
    }
}

impl std::str::FromStr for MovementKind {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownWord { what: "cash book movement", text: s.to_string() })
    }
}

/// One line of a fund's cash book, as its event records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub kind: MovementKind,
    /// Signed: positive into the fund, negative out of it.
    pub amount: Decimal,
    /// The balance after it, as recorded (an opening's is its float).
    pub balance_after: Decimal,
    pub requisition_id: Option<Id>,
    pub payment_id: Option<Id>,
    pub reference: Option<String>,
}

/// A fund's cash book as its events build it: the one fold of fund events into movements,
/// used by the cash projection (`rm_ledger`, `rm_funds`) and by `pettycash-replay ledger` and
/// `balance`, so that they can never disagree on what an event moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CashBook {
    /// The balance the events record (`balance_after` of the latest).
    pub balance: Decimal,
    /// The balance the amounts add up to; differs from `balance` only when an event's
    /// recorded `balance_after` is wrong (`verify` reports that).
    pub computed: Decimal,
    pub opened: bool,
}

impl CashBook {
    /// A cash book that stands at `balance` (read back from a read model).
    pub fn at(balance: Decimal) -> Self {
        Self { balance, computed: balance, opened: true }
    }

    /// Records `event`; its movement. `None` for a disbursement from a fund never opened.
    /// Events that move no cash ([`FundEvent::moves_cash`]: reservations) are no movement:
    /// callers skip them.
    pub fn record(&mut self, event: &FundEvent) -> Option<Movement> {
        Some(match event {
            FundEvent::FundOpened { float, .. } => {
                *self = Self::at(*float);
                Movement {
                    kind: MovementKind::Opening,
                    amount: *float,
                    balance_after: *float,
                    requisition_id: None,
                    payment_id: None,
                    reference: None,
                }
            }
            FundEvent::CashDisbursed {
                payment_id, requisition_id, amount, balance_after, reference, ..
            } => {
                if !self.opened {
                    return None;
                }
                self.computed -= *amount;
                self.balance = *balance_after;
                Movement {
                    kind: MovementKind::Disbursement,
                    amount: -*amount,
                    balance_after: *balance_after,
                    requisition_id: Some(*requisition_id),
                    payment_id: Some(*payment_id),
                    reference: reference.clone(),
                }
            }
            FundEvent::CashReserved { .. } | FundEvent::ReservationReleased { .. } => return None,
        })
    }
}

impl FundEvent {
    /// Whether it is a line of the cash book (the balance changes); reservations are not: they
    /// change the available balance only.
    pub fn moves_cash(&self) -> bool {
        !matches!(self, FundEvent::CashReserved { .. } | FundEvent::ReservationReleased { .. })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fund {
    pub id: Option<Id>,
    pub name: String,
    pub currency: Option<Currency>,
    pub float: Decimal,
    pub balance: Decimal,
    pub custodian_id: Option<Id>,
    /// Number of disbursements, for the read side and sanity checks.
    pub disbursements: u64,
    /// Cash reserved for payments in flight with a provider, by payment id (issue #14): it
    /// still is in the balance but no other outflow may use it ([`Fund::available`]).
    #[serde(default)]
    pub reservations: std::collections::BTreeMap<Id, Reservation>,
    /// The unit that owns the fund (`None`: unscoped). Its company's people see it.
    #[serde(default)]
    pub unit: Option<UnitPath>,
}

/// Cash held back for a payment in flight with a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub method: PaymentMethod,
}

impl Fund {
    /// What may still leave the fund: the balance less the cash reserved for payments in
    /// flight. Every outflow is checked against it.
    pub fn available(&self) -> Decimal {
        self.balance - self.reserved()
    }

    /// The cash reserved for payments in flight.
    pub fn reserved(&self) -> Decimal {
        self.reservations.values().map(|r| r.amount).sum()
    }

    fn check_currency(&self, currency: &Currency) -> Result<Currency, DomainError> {
        let Some(fund_currency) = &self.currency else {
            return Err(DomainError::NotFound { what: "fund" });
        };
        if fund_currency != currency {
            return Err(DomainError::CurrencyMismatch {
                expected: fund_currency.to_string(),
                got: currency.to_string(),
            });
        }
        Ok(fund_currency.clone())
    }
}

// A command lives for one decision: boxing the opener's actor to even out the variants would
// buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum FundCommand {
    Open {
        fund_id: Id,
        name: String,
        currency: String,
        float: Decimal,
        custodian_id: Option<Id>,
        /// The owning unit as looked up by the caller; must be of the admin's company (`None`
        /// for an admin of no unit).
        unit: Option<UnitPath>,
        actor: Actor,
    },
    /// Cash leaves the fund for an approved requisition. The requisition side checks who may
    /// pay and that it was not paid before; this side checks currency and the available
    /// balance (reservations count against it).
    Disburse {
        payment_id: Id,
        requisition_id: Id,
        amount: Decimal,
        currency: Currency,
        method: PaymentMethod,
        reference: Option<String>,
        paid_by: Id,
    },
    /// A payment through a provider starts: its amount is held back from the available
    /// balance at once (the cash leaves when the provider reports success).
    Reserve {
        payment_id: Id,
        requisition_id: Id,
        amount: Decimal,
        currency: Currency,
        method: PaymentMethod,
        reserved_by: Id,
    },
    /// The provider reported success: the reserved cash leaves the fund (a `CashDisbursed` that
    /// consumes the reservation, exactly its amount).
    DisburseReserved { payment_id: Id, requisition_id: Id, reference: Option<String>, paid_by: Id },
    /// The payment failed for good (or was cancelled): its reservation is released, once.
    Release { payment_id: Id, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FundEvent {
    FundOpened {
        fund_id: Id,
        name: String,
        currency: Currency,
        #[serde(with = "rust_decimal::serde::str")]
        float: Decimal,
        custodian_id: Option<Id>,
        opened_by: Id,
        /// Version 2: the owning unit and its path (version 1 had none: unscoped).
        unit: Option<UnitPath>,
    },
    CashDisbursed {
        payment_id: Id,
        requisition_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// The fund's balance after this payment: the cash book reads it directly.
        #[serde(with = "rust_decimal::serde::str")]
        balance_after: Decimal,
        method: PaymentMethod,
        reference: Option<String>,
        paid_by: Id,
        /// Version 2: the reservation this disbursement consumes (its amount, equal to
        /// `amount`), for a payment through a provider; `null` for cash paid at once (and in
        /// version 1).
        #[serde(with = "rust_decimal::serde::str_option")]
        reserved: Option<Decimal>,
    },
    /// A payment through a provider started: `amount` is reserved (issue #14). The balance is
    /// unchanged; the available balance drops at once.
    CashReserved {
        payment_id: Id,
        requisition_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        method: PaymentMethod,
        reserved_by: Id,
    },
    /// A reservation ended without the cash leaving (the payment failed or was cancelled).
    ReservationReleased {
        payment_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        reason: String,
    },
}

impl DomainEvent for FundEvent {
    fn event_type(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "FundOpened",
            FundEvent::CashDisbursed { .. } => "CashDisbursed",
            FundEvent::CashReserved { .. } => "CashReserved",
            FundEvent::ReservationReleased { .. } => "ReservationReleased",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "2",
            FundEvent::CashDisbursed { .. } => "2",
            FundEvent::CashReserved { .. } | FundEvent::ReservationReleased { .. } => "1",
        }
        .into()
    }
}

impl Aggregate for Fund {
    const TYPE: &'static str = "fund";
    type Command = FundCommand;
    type Event = FundEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: FundCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            FundCommand::Open { fund_id, name, currency, float, custodian_id, unit, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                if unit.map(|u| u.company) != actor.company() {
                    return Err(DomainError::invalid(
                        "unit_id",
                        "a fund belongs to a unit of your own company (none, for an admin of no unit)",
                    ));
                }
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists { what: "fund" });
                }
                let name = clean_text("name", &name, 200, true)?;
                let currency = Currency::parse(&currency).map_err(|e| DomainError::money("currency", e))?;
                let float = currency.validate_positive(float).map_err(|e| DomainError::money("float", e))?;
                let event = FundEvent::FundOpened {
                    fund_id,
                    name,
                    currency,
                    float,
                    custodian_id,
                    opened_by: actor.user_id,
                    unit,
                };
                sink.write(event, self).await;
            }
            FundCommand::Disburse {
                payment_id,
                requisition_id,
                amount,
                currency,
                method,
                reference,
                paid_by,
            } => {
                let fund_currency = self.check_currency(&currency)?;
                if method.through_provider() {
                    return Err(DomainError::invalid(
                        "method",
                        "bank and mobile money are reserved first and disbursed on the provider's success",
                    ));
                }
                let amount =
                    fund_currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                if amount > self.available() {
                    return Err(DomainError::InsufficientFunds { balance: self.available(), amount });
                }
                let balance_after = fund_currency.rescale(self.balance - amount);
                let event = FundEvent::CashDisbursed {
                    payment_id,
                    requisition_id,
                    amount,
                    balance_after,
                    method,
                    reference,
                    paid_by,
                    reserved: None,
                };
                sink.write(event, self).await;
            }
            FundCommand::Reserve { payment_id, requisition_id, amount, currency, method, reserved_by } => {
                let fund_currency = self.check_currency(&currency)?;
                if !method.through_provider() {
                    return Err(DomainError::invalid("method", "cash is paid at once, not reserved"));
                }
                let amount =
                    fund_currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                if self.reservations.contains_key(&payment_id) {
                    return Err(DomainError::AlreadyExists { what: "reservation for this payment" });
                }
                if amount > self.available() {
                    return Err(DomainError::InsufficientFunds { balance: self.available(), amount });
                }
                let event =
                    FundEvent::CashReserved { payment_id, requisition_id, amount, method, reserved_by };
                sink.write(event, self).await;
            }
            FundCommand::DisburseReserved { payment_id, requisition_id, reference, paid_by } => {
                let Some(fund_currency) = self.currency.clone() else {
                    return Err(DomainError::NotFound { what: "fund" });
                };
                let Some(reservation) = self.reservations.get(&payment_id).copied() else {
                    return Err(DomainError::NotFound { what: "reservation" });
                };
                // Exactly the reserved amount leaves; the reservation covered it (the balance
                // never goes below what is reserved).
                let event = FundEvent::CashDisbursed {
                    payment_id,
                    requisition_id,
                    amount: reservation.amount,
                    balance_after: fund_currency.rescale(self.balance - reservation.amount),
                    method: reservation.method,
                    reference,
                    paid_by,
                    reserved: Some(reservation.amount),
                };
                sink.write(event, self).await;
            }
            FundCommand::Release { payment_id, reason } => {
                if self.currency.is_none() {
                    return Err(DomainError::NotFound { what: "fund" });
                }
                let Some(Reservation { amount, .. }) = self.reservations.get(&payment_id).copied() else {
                    return Err(DomainError::NotFound { what: "reservation" });
                };
                let reason = clean_text("reason", &reason, 500, true)?;
                sink.write(FundEvent::ReservationReleased { payment_id, amount, reason }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: FundEvent) {
        match event {
            FundEvent::FundOpened { fund_id, name, currency, float, custodian_id, unit, .. } => {
                self.id = Some(fund_id);
                self.unit = unit;
                self.name = name;
                self.currency = Some(currency);
                self.float = float;
                self.balance = float;
                self.custodian_id = custodian_id;
            }
            FundEvent::CashDisbursed { payment_id, balance_after, reserved, .. } => {
                self.balance = balance_after;
                self.disbursements += 1;
                if reserved.is_some() {
                    self.reservations.remove(&payment_id);
                }
            }
            FundEvent::CashReserved { payment_id, amount, method, .. } => {
                self.reservations.insert(payment_id, Reservation { amount, method });
            }
            FundEvent::ReservationReleased { payment_id, .. } => {
                self.reservations.remove(&payment_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn the_cash_book_records_the_opening_and_each_disbursement_with_its_balance() {
        let mut book = CashBook::default();
        let paid = |amount: &str, after: &str| FundEvent::CashDisbursed {
            payment_id: Id::nil(),
            requisition_id: Id::nil(),
            amount: d(amount),
            balance_after: d(after),
            method: PaymentMethod::Cash,
            reference: Some("PCV-1".into()),
            paid_by: Id::nil(),
            reserved: None,
        };
        assert_eq!(book.record(&paid("1", "0")), None, "nothing before the opening");
        let opened = FundEvent::FundOpened {
            fund_id: Id::nil(),
            name: "F".into(),
            currency: Currency::parse("KES").unwrap(),
            float: d("100.00"),
            custodian_id: None,
            opened_by: Id::nil(),
            unit: None,
        };
        let m = book.record(&opened).unwrap();
        assert_eq!((m.kind, m.amount, m.balance_after), (MovementKind::Opening, d("100.00"), d("100.00")));
        let m = book.record(&paid("30.50", "69.50")).unwrap();
        assert_eq!(
            (m.kind, m.amount, m.balance_after),
            (MovementKind::Disbursement, d("-30.50"), d("69.50"))
        );
        assert_eq!(m.reference.as_deref(), Some("PCV-1"));
        // A wrong recorded balance is kept as recorded; the computed one tells.
        book.record(&paid("10", "50.00")).unwrap();
        assert_eq!((book.balance, book.computed), (d("50.00"), d("59.50")));
        for kind in MovementKind::ALL {
            assert_eq!(kind.as_str().parse::<MovementKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(serde_json::to_value(PaymentMethod::Cash).unwrap(), PaymentMethod::Cash.as_str());
    }

    fn admin() -> Actor {
        Actor::new(Id::nil(), [Role::Admin])
    }

    fn opened(float: &str) -> FundEvent {
        FundEvent::FundOpened {
            fund_id: Id::nil(),
            name: "Nairobi".into(),
            currency: Currency::parse("KES").unwrap(),
            float: d(float),
            custodian_id: None,
            opened_by: Id::nil(),
            unit: None,
        }
    }

    fn disburse(amount: &str, currency: &str) -> FundCommand {
        FundCommand::Disburse {
            payment_id: Id::nil(),
            requisition_id: Id::nil(),
            amount: d(amount),
            currency: Currency::parse(currency).unwrap(),
            method: PaymentMethod::Cash,
            reference: None,
            paid_by: Id::nil(),
        }
    }

    #[test]
    fn admin_opens_fund_with_its_float_as_balance() {
        TestFramework::<Fund>::with(())
            .given_no_previous_events()
            .when(FundCommand::Open {
                fund_id: Id::nil(),
                name: " Nairobi ".into(),
                currency: "kes".into(),
                float: d("5000"),
                custodian_id: None,
                unit: None,
                actor: admin(),
            })
            .then_expect_events(vec![opened("5000.00")]);
    }

    #[test]
    fn only_admin_opens_funds() {
        TestFramework::<Fund>::with(())
            .given_no_previous_events()
            .when(FundCommand::Open {
                fund_id: Id::nil(),
                name: "X".into(),
                currency: "KES".into(),
                float: d("1"),
                custodian_id: None,
                unit: None,
                actor: Actor::new(Id::nil(), [Role::Treasury, Role::Cfo]),
            })
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
    }

    #[test]
    fn fund_float_must_be_valid_money() {
        let result = TestFramework::<Fund>::with(())
            .given_no_previous_events()
            .when(FundCommand::Open {
                fund_id: Id::nil(),
                name: "X".into(),
                currency: "JPY".into(),
                float: d("100.5"),
                custodian_id: None,
                unit: None,
                actor: admin(),
            })
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Money { field: "float", .. })));
    }

    #[test]
    fn disbursement_records_balance_after() {
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00")])
            .when(disburse("250.5", "KES"))
            .then_expect_events(vec![FundEvent::CashDisbursed {
                payment_id: Id::nil(),
                requisition_id: Id::nil(),
                amount: d("250.50"),
                balance_after: d("749.50"),
                method: PaymentMethod::Cash,
                reference: None,
                paid_by: Id::nil(),
                reserved: None,
            }]);
    }

    #[test]
    fn payment_never_takes_fund_below_zero() {
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00")])
            .when(disburse("100.01", "KES"))
            .then_expect_error(DomainError::InsufficientFunds { balance: d("100.00"), amount: d("100.01") });
    }

    #[test]
    fn payment_may_empty_the_fund_exactly() {
        let events = TestFramework::<Fund>::with(())
            .given(vec![opened("100.00")])
            .when(disburse("100", "KES"))
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[0], FundEvent::CashDisbursed { balance_after, .. } if balance_after.is_zero())
        );
    }

    #[test]
    fn payment_in_another_currency_is_refused() {
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00")])
            .when(disburse("1", "USD"))
            .then_expect_error(DomainError::CurrencyMismatch { expected: "KES".into(), got: "USD".into() });
    }

    #[test]
    fn unknown_fund_cannot_pay() {
        TestFramework::<Fund>::with(())
            .given_no_previous_events()
            .when(disburse("1", "KES"))
            .then_expect_error(DomainError::NotFound { what: "fund" });
    }

    // ----- reservations (payments through a provider) -----

    fn id(n: u128) -> Id {
        Id::from_u128(n)
    }

    fn reserved(payment: u128, amount: &str) -> FundEvent {
        FundEvent::CashReserved {
            payment_id: id(payment),
            requisition_id: id(100 + payment),
            amount: d(amount),
            method: PaymentMethod::MobileMoney,
            reserved_by: Id::nil(),
        }
    }

    fn reserve(payment: u128, amount: &str) -> FundCommand {
        FundCommand::Reserve {
            payment_id: id(payment),
            requisition_id: id(100 + payment),
            amount: d(amount),
            currency: Currency::parse("KES").unwrap(),
            method: PaymentMethod::MobileMoney,
            reserved_by: Id::nil(),
        }
    }

    fn released(payment: u128, amount: &str) -> FundEvent {
        FundEvent::ReservationReleased { payment_id: id(payment), amount: d(amount), reason: "failed".into() }
    }

    #[test]
    fn a_reservation_counts_against_the_available_balance_at_once() {
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00")])
            .when(reserve(1, "60"))
            .then_expect_events(vec![reserved(1, "60.00")]);
        let mut fund = Fund::default();
        fund.apply(opened("100.00"));
        fund.apply(reserved(1, "60.00"));
        assert_eq!((fund.balance, fund.reserved(), fund.available()), (d("100.00"), d("60.00"), d("40.00")));
        // Neither another reservation nor cash may use the reserved part.
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00")])
            .when(reserve(2, "40.01"))
            .then_expect_error(DomainError::InsufficientFunds { balance: d("40.00"), amount: d("40.01") });
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00")])
            .when(disburse("40.01", "KES"))
            .then_expect_error(DomainError::InsufficientFunds { balance: d("40.00"), amount: d("40.01") });
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00")])
            .when(reserve(1, "1"))
            .then_expect_error(DomainError::AlreadyExists { what: "reservation for this payment" });
    }

    #[test]
    fn cash_is_not_reserved_and_a_reservation_is_in_the_funds_currency() {
        let mut cash = reserve(1, "10");
        if let FundCommand::Reserve { method, .. } = &mut cash {
            *method = PaymentMethod::Cash;
        }
        let result =
            TestFramework::<Fund>::with(()).given(vec![opened("100.00")]).when(cash).inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: "method", .. })), "{result:?}");
        let mut usd = reserve(1, "10");
        if let FundCommand::Reserve { currency, .. } = &mut usd {
            *currency = Currency::parse("USD").unwrap();
        }
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00")])
            .when(usd)
            .then_expect_error(DomainError::CurrencyMismatch { expected: "KES".into(), got: "USD".into() });
    }

    #[test]
    fn success_disburses_exactly_the_reserved_amount_and_consumes_the_reservation() {
        let success = || FundCommand::DisburseReserved {
            payment_id: id(1),
            requisition_id: id(101),
            reference: Some("MPESA-1".into()),
            paid_by: Id::nil(),
        };
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00")])
            .when(success())
            .then_expect_events(vec![FundEvent::CashDisbursed {
                payment_id: id(1),
                requisition_id: id(101),
                amount: d("60.00"),
                balance_after: d("40.00"),
                method: PaymentMethod::MobileMoney,
                reference: Some("MPESA-1".into()),
                paid_by: Id::nil(),
                reserved: Some(d("60.00")),
            }]);
        let paid = FundEvent::CashDisbursed {
            payment_id: id(1),
            requisition_id: id(101),
            amount: d("60.00"),
            balance_after: d("40.00"),
            method: PaymentMethod::MobileMoney,
            reference: None,
            paid_by: Id::nil(),
            reserved: Some(d("60.00")),
        };
        let mut fund = Fund::default();
        for e in [opened("100.00"), reserved(1, "60.00"), paid.clone()] {
            fund.apply(e);
        }
        assert_eq!((fund.balance, fund.reserved(), fund.available()), (d("40.00"), d("0"), d("40.00")));
        // Consumed: neither a second success nor a release finds it.
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00"), paid.clone()])
            .when(success())
            .then_expect_error(DomainError::NotFound { what: "reservation" });
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00"), paid])
            .when(FundCommand::Release { payment_id: id(1), reason: "late".into() })
            .then_expect_error(DomainError::NotFound { what: "reservation" });
    }

    #[test]
    fn a_failure_releases_the_reservation_exactly_once() {
        let release = || FundCommand::Release { payment_id: id(1), reason: "failed".into() };
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00")])
            .when(release())
            .then_expect_events(vec![released(1, "60.00")]);
        TestFramework::<Fund>::with(())
            .given(vec![opened("100.00"), reserved(1, "60.00"), released(1, "60.00")])
            .when(release())
            .then_expect_error(DomainError::NotFound { what: "reservation" });
        // Released: the cash is available again, and the cash book never saw it.
        let mut fund = Fund::default();
        let mut book = CashBook::default();
        for e in [opened("100.00"), reserved(1, "60.00"), released(1, "60.00")] {
            assert_eq!(book.record(&e).is_some(), e.moves_cash());
            fund.apply(e);
        }
        assert_eq!((fund.available(), book.balance), (d("100.00"), d("100.00")));
    }

    #[test]
    fn many_reservations_never_take_the_available_balance_below_zero() {
        let mut fund = Fund::default();
        fund.apply(opened("100.00"));
        let mut accepted = 0;
        for n in 0..20u128 {
            let mut events = Vec::new();
            let result = TestFramework::<Fund>::with(())
                .given(
                    std::iter::once(opened("100.00"))
                        .chain(fund.reservations.iter().map(|(p, r)| FundEvent::CashReserved {
                            payment_id: *p,
                            requisition_id: id(0),
                            amount: r.amount,
                            method: r.method,
                            reserved_by: Id::nil(),
                        }))
                        .collect(),
                )
                .when(reserve(n + 1, "7"))
                .inspect_result();
            if let Ok(e) = result {
                accepted += 1;
                events.extend(e);
            }
            for e in events {
                fund.apply(e);
            }
            assert!(fund.available() >= Decimal::ZERO);
        }
        assert_eq!(accepted, 14, "14 x 7 = 98 fits in 100, a 15th does not");
        assert_eq!(fund.available(), d("2.00"));
    }
}
