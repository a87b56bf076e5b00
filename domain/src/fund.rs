//! A petty cash fund (imprest float): one currency, a float amount, a custodian and a
//! balance that never goes below zero.
//!
//! The fund's state is deliberately small (no list of payments): it must load quickly even
//! with a long history. The "paid at most once" rule lives on the requisition; a payment
//! appends to both streams in one transaction (see `docs/architecture.md`).

use crate::error::{clean_text, DomainError};
use crate::money::Currency;
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
}

#[derive(Debug, Clone, PartialEq)]
pub enum FundCommand {
    Open {
        fund_id: Id,
        name: String,
        currency: String,
        float: Decimal,
        custodian_id: Option<Id>,
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
}

impl DomainEvent for FundEvent {
    fn event_type(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "FundOpened",
            FundEvent::CashDisbursed { .. } => "CashDisbursed",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
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
            FundCommand::Open { fund_id, name, currency, float, custodian_id, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
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
        }
        Ok(())
    }

    fn apply(&mut self, event: FundEvent) {
        match event {
            FundEvent::FundOpened { fund_id, name, currency, float, custodian_id, .. } => {
                self.id = Some(fund_id);
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
