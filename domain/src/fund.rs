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

/// How cash left the fund. Mobile money and bank transfers come later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 1] = [PaymentMethod::Cash];

    /// The one text form (JSON, columns, lists).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "cash",
        }
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
    /// Change an advance's holder gave back when settling it.
    AdvanceReturn,
}

impl MovementKind {
    pub const ALL: [MovementKind; 3] =
        [MovementKind::Opening, MovementKind::Disbursement, MovementKind::AdvanceReturn];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Opening => "opening",
            MovementKind::Disbursement => "disbursement",
            MovementKind::AdvanceReturn => "advance_return",
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
            FundEvent::AdvanceCashReturned { requisition_id, amount, balance_after, .. } => {
                if !self.opened {
                    return None;
                }
                self.computed += *amount;
                self.balance = *balance_after;
                Movement {
                    kind: MovementKind::AdvanceReturn,
                    amount: *amount,
                    balance_after: *balance_after,
                    requisition_id: Some(*requisition_id),
                    payment_id: None,
                    reference: None,
                }
            }
        })
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
    /// The unit that owns the fund (`None`: unscoped). Its company's people see it.
    #[serde(default)]
    pub unit: Option<UnitPath>,
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
    /// pay and that it was not paid before; this side checks currency and balance.
    Disburse {
        payment_id: Id,
        requisition_id: Id,
        amount: Decimal,
        currency: Currency,
        method: PaymentMethod,
        reference: Option<String>,
        paid_by: Id,
    },
    /// Change from an advance comes back into the fund (its holder settles it; the advance
    /// account decides how much may be returned).
    ReceiveAdvanceReturn {
        requisition_id: Id,
        settlement_id: Id,
        amount: Decimal,
        currency: Currency,
        returned_by: Id,
    },
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
    },
    /// Cash an advance's holder returned when settling it (`AdvanceSettled` in the same commit).
    AdvanceCashReturned {
        requisition_id: Id,
        settlement_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        balance_after: Decimal,
        returned_by: Id,
    },
}

impl DomainEvent for FundEvent {
    fn event_type(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "FundOpened",
            FundEvent::CashDisbursed { .. } => "CashDisbursed",
            FundEvent::AdvanceCashReturned { .. } => "AdvanceCashReturned",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "2",
            FundEvent::CashDisbursed { .. } | FundEvent::AdvanceCashReturned { .. } => "1",
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
                let Some(fund_currency) = &self.currency else {
                    return Err(DomainError::NotFound { what: "fund" });
                };
                if *fund_currency != currency {
                    return Err(DomainError::CurrencyMismatch {
                        expected: fund_currency.to_string(),
                        got: currency.to_string(),
                    });
                }
                let amount =
                    fund_currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                if amount > self.balance {
                    return Err(DomainError::InsufficientFunds { balance: self.balance, amount });
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
                };
                sink.write(event, self).await;
            }
            FundCommand::ReceiveAdvanceReturn {
                requisition_id,
                settlement_id,
                amount,
                currency,
                returned_by,
            } => {
                let Some(fund_currency) = &self.currency else {
                    return Err(DomainError::NotFound { what: "fund" });
                };
                if *fund_currency != currency {
                    return Err(DomainError::CurrencyMismatch {
                        expected: fund_currency.to_string(),
                        got: currency.to_string(),
                    });
                }
                let amount =
                    fund_currency.validate_positive(amount).map_err(|e| DomainError::money("returned", e))?;
                let balance_after = fund_currency.rescale(self.balance + amount);
                let event = FundEvent::AdvanceCashReturned {
                    requisition_id,
                    settlement_id,
                    amount,
                    balance_after,
                    returned_by,
                };
                sink.write(event, self).await;
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
            FundEvent::CashDisbursed { balance_after, .. } => {
                self.balance = balance_after;
                self.disbursements += 1;
            }
            FundEvent::AdvanceCashReturned { balance_after, .. } => {
                self.balance = balance_after;
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
}
