//! Advances and their settlement (issue #14 [treasury]): cash paid *before* the spend, to a
//! holder who then settles it with what they spent (receipts) and the change they return.
//!
//! One `advance_account` stream per holder (its id is the holder's user id) holds every
//! advance they asked for. Keeping them in one stream makes the holder's rules hold under
//! concurrency: "an unsettled advance blocks a new one" is decided on the account, and two
//! racing requests or payments for the same person append to the same stream, so one of them
//! decides again on the state the other left.
//!
//! An advance is *requested* with its requisition (`AdvanceRequested`, same commit as the
//! requisition's creation), goes through the normal approval, and is *issued* when the
//! requisition is paid (`AdvanceIssued`, same commit as the payment; due a number of days
//! later). The holder then settles, possibly in parts (`AdvanceSettled`): an amount spent and
//! an amount of cash returned (which the fund records as a movement back in, in the same
//! commit). Never more than is outstanding, only in the advance's currency. Spending more than
//! was advanced is claimed by a reimbursement: a new requisition for the extra, routed through
//! the normal approval rules, linked from the settlement that settled the rest.
//! Past the due date with something outstanding the advance is overdue; the scheduler records
//! `AdvanceOverdue` once, which reminds the holder by mail.

use crate::error::{clean_optional, DomainError};
use crate::money::Currency;
use crate::{Actor, Id};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const NOTE_MAX: usize = 2_000;
/// Most receipts one settlement may name.
pub const RECEIPTS_MAX: usize = 50;

/// One advance of a holder, as their account's events build it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advance {
    pub requisition_id: Id,
    pub fund_id: Id,
    pub currency: Currency,
    /// What was asked for (and, once issued, paid).
    pub amount: Decimal,
    pub issued: Option<Issued>,
    /// Settled so far as spent.
    pub spent: Decimal,
    /// Settled so far as cash returned to the fund.
    pub returned: Decimal,
    pub settlements: u32,
    /// `AdvanceOverdue` was recorded (the holder was reminded).
    pub overdue_recorded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub payment_id: Id,
    pub paid_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

impl Advance {
    /// What remains to settle: nothing before the advance is paid.
    pub fn outstanding(&self) -> Decimal {
        if self.issued.is_some() {
            self.amount - self.spent - self.returned
        } else {
            Decimal::ZERO
        }
    }

    /// Paid and not fully settled.
    pub fn unsettled(&self) -> bool {
        self.issued.is_some() && self.outstanding() > Decimal::ZERO
    }

    /// Unsettled past its due date at `now`.
    pub fn overdue_at(&self, now: DateTime<Utc>) -> bool {
        self.unsettled() && self.issued.is_some_and(|i| now > i.due_at)
    }
}

/// A holder's advances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdvanceAccount {
    pub holder_id: Option<Id>,
    pub advances: BTreeMap<Id, Advance>,
}

impl AdvanceAccount {
    pub fn advance(&self, requisition_id: Id) -> Option<&Advance> {
        self.advances.get(&requisition_id)
    }

    /// An advance of this holder that is paid and not settled, other than `except`.
    fn unsettled_other(&self, except: Id) -> Option<&Advance> {
        self.advances.values().find(|a| a.requisition_id != except && a.unsettled())
    }
}

/// What a settlement claims beyond the advance: the extra spent, as a new requisition (created
/// by the caller, routed through the normal approval) that this settlement links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reimbursement {
    pub requisition_id: Id,
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdvanceCommand {
    /// The holder asks for an advance (their requisition is created in the same commit).
    Request {
        requisition_id: Id,
        fund_id: Id,
        currency: Currency,
        amount: Decimal,
        holder: Actor,
        /// Setting `advance_block_while_unsettled`.
        block_while_unsettled: bool,
    },
    /// The advance's requisition was paid.
    Issue {
        requisition_id: Id,
        payment_id: Id,
        paid_at: DateTime<Utc>,
        /// Setting `advance_due_days`.
        due_days: u32,
        block_while_unsettled: bool,
    },
    /// The holder settles part or all of what is outstanding.
    Settle {
        requisition_id: Id,
        settlement_id: Id,
        spent: Decimal,
        returned: Decimal,
        /// When given, must be the advance's currency.
        currency: Option<Currency>,
        receipt_ids: Vec<Id>,
        note: Option<String>,
        reimbursement: Option<Reimbursement>,
        actor: Actor,
        now: DateTime<Utc>,
    },
    /// The scheduler: the advance is unsettled past its due date.
    RecordOverdue { requisition_id: Id, now: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdvanceEvent {
    AdvanceRequested {
        holder_id: Id,
        requisition_id: Id,
        fund_id: Id,
        currency: Currency,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    AdvanceIssued {
        requisition_id: Id,
        payment_id: Id,
        paid_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    },
    AdvanceSettled {
        requisition_id: Id,
        settlement_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        spent: Decimal,
        /// Cash given back to the fund (the fund's `AdvanceCashReturned` records it).
        #[serde(with = "rust_decimal::serde::str")]
        returned: Decimal,
        /// What is left to settle after this settlement.
        #[serde(with = "rust_decimal::serde::str")]
        outstanding_after: Decimal,
        receipt_ids: Vec<Id>,
        note: Option<String>,
        /// The requisition claiming what was spent beyond the advance, if any.
        reimbursement_requisition_id: Option<Id>,
        #[serde(with = "rust_decimal::serde::str_option")]
        extra_owed: Option<Decimal>,
        settled_by: Id,
        at: DateTime<Utc>,
    },
    AdvanceOverdue {
        requisition_id: Id,
        due_at: DateTime<Utc>,
        #[serde(with = "rust_decimal::serde::str")]
        outstanding: Decimal,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for AdvanceEvent {
    fn event_type(&self) -> String {
        match self {
            AdvanceEvent::AdvanceRequested { .. } => "AdvanceRequested",
            AdvanceEvent::AdvanceIssued { .. } => "AdvanceIssued",
            AdvanceEvent::AdvanceSettled { .. } => "AdvanceSettled",
            AdvanceEvent::AdvanceOverdue { .. } => "AdvanceOverdue",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

fn not_found() -> DomainError {
    DomainError::NotFound { what: "advance" }
}

/// A non-negative amount of `currency` (zero allowed), or the error naming `field`.
fn non_negative(currency: &Currency, field: &'static str, amount: Decimal) -> Result<Decimal, DomainError> {
    if amount.is_zero() {
        return Ok(currency.rescale(Decimal::ZERO));
    }
    currency.validate_positive(amount).map_err(|e| DomainError::money(field, e))
}

impl Aggregate for AdvanceAccount {
    const TYPE: &'static str = "advance_account";
    type Command = AdvanceCommand;
    type Event = AdvanceEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AdvanceCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        use AdvanceCommand as C;
        use AdvanceEvent as E;
        let event = match command {
            C::Request { requisition_id, fund_id, currency, amount, holder, block_while_unsettled } => {
                if self.holder_id.is_some_and(|h| h != holder.user_id) {
                    return Err(DomainError::NotRequester { action: "ask for an advance on" });
                }
                if self.advances.contains_key(&requisition_id) {
                    return Err(DomainError::AlreadyExists { what: "advance" });
                }
                if block_while_unsettled {
                    if let Some(open) = self.unsettled_other(requisition_id) {
                        return Err(DomainError::AdvanceOutstanding { requisition_id: open.requisition_id });
                    }
                }
                let amount =
                    currency.validate_positive(amount).map_err(|e| DomainError::money("amount", e))?;
                E::AdvanceRequested { holder_id: holder.user_id, requisition_id, fund_id, currency, amount }
            }
            C::Issue { requisition_id, payment_id, paid_at, due_days, block_while_unsettled } => {
                let advance = self.advance(requisition_id).ok_or_else(not_found)?;
                if advance.issued.is_some() {
                    return Err(DomainError::AlreadyPaid);
                }
                if block_while_unsettled {
                    if let Some(open) = self.unsettled_other(requisition_id) {
                        return Err(DomainError::AdvanceOutstanding { requisition_id: open.requisition_id });
                    }
                }
                let due_at = paid_at + Duration::days(i64::from(due_days));
                E::AdvanceIssued { requisition_id, payment_id, paid_at, due_at }
            }
            C::Settle {
                requisition_id,
                settlement_id,
                spent,
                returned,
                currency,
                receipt_ids,
                note,
                reimbursement,
                actor,
                now,
            } => {
                let advance = self.advance(requisition_id).ok_or_else(not_found)?;
                if self.holder_id != Some(actor.user_id) {
                    return Err(DomainError::NotRequester { action: "settle" });
                }
                if advance.issued.is_none() {
                    return Err(DomainError::AdvanceNotIssued);
                }
                if let Some(given) = currency {
                    if given != advance.currency {
                        return Err(DomainError::CurrencyMismatch {
                            expected: advance.currency.to_string(),
                            got: given.to_string(),
                        });
                    }
                }
                let spent = non_negative(&advance.currency, "spent", spent)?;
                let returned = non_negative(&advance.currency, "returned", returned)?;
                if spent.is_zero() && returned.is_zero() {
                    return Err(DomainError::invalid(
                        "spent",
                        "give what was spent, what is returned, or both",
                    ));
                }
                let outstanding = advance.outstanding();
                if returned > outstanding {
                    return Err(DomainError::SettlementTooLarge { field: "returned", outstanding });
                }
                if spent + returned > outstanding {
                    return Err(DomainError::SettlementTooLarge { field: "spent", outstanding });
                }
                let outstanding_after = advance.currency.rescale(outstanding - spent - returned);
                if let Some(r) = &reimbursement {
                    if !outstanding_after.is_zero() {
                        return Err(DomainError::invalid(
                            "extra_owed",
                            "spending beyond the advance is claimed by the settlement that settles all of it",
                        ));
                    }
                    advance
                        .currency
                        .validate_positive(r.amount)
                        .map_err(|e| DomainError::money("extra_owed", e))?;
                }
                if receipt_ids.len() > RECEIPTS_MAX {
                    return Err(DomainError::invalid(
                        "receipt_ids",
                        format!("at most {RECEIPTS_MAX} receipts per settlement"),
                    ));
                }
                let note = clean_optional("note", note.as_deref(), NOTE_MAX)?;
                E::AdvanceSettled {
                    requisition_id,
                    settlement_id,
                    spent,
                    returned,
                    outstanding_after,
                    receipt_ids,
                    note,
                    reimbursement_requisition_id: reimbursement.map(|r| r.requisition_id),
                    extra_owed: reimbursement.map(|r| advance.currency.rescale(r.amount)),
                    settled_by: actor.user_id,
                    at: now,
                }
            }
            C::RecordOverdue { requisition_id, now } => {
                let advance = self.advance(requisition_id).ok_or_else(not_found)?;
                if advance.overdue_recorded || !advance.overdue_at(now) {
                    return Err(DomainError::NotDueYet);
                }
                let issued = advance.issued.expect("an unsettled advance was issued");
                E::AdvanceOverdue {
                    requisition_id,
                    due_at: issued.due_at,
                    outstanding: advance.outstanding(),
                    at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AdvanceEvent) {
        match event {
            AdvanceEvent::AdvanceRequested { holder_id, requisition_id, fund_id, currency, amount } => {
                self.holder_id = Some(holder_id);
                self.advances.insert(
                    requisition_id,
                    Advance {
                        requisition_id,
                        fund_id,
                        currency,
                        amount,
                        issued: None,
                        spent: Decimal::ZERO,
                        returned: Decimal::ZERO,
                        settlements: 0,
                        overdue_recorded: false,
                    },
                );
            }
            AdvanceEvent::AdvanceIssued { requisition_id, payment_id, paid_at, due_at } => {
                if let Some(a) = self.advances.get_mut(&requisition_id) {
                    a.issued = Some(Issued { payment_id, paid_at, due_at });
                }
            }
            AdvanceEvent::AdvanceSettled { requisition_id, spent, returned, .. } => {
                if let Some(a) = self.advances.get_mut(&requisition_id) {
                    a.spent += spent;
                    a.returned += returned;
                    a.settlements += 1;
                }
            }
            AdvanceEvent::AdvanceOverdue { requisition_id, .. } => {
                if let Some(a) = self.advances.get_mut(&requisition_id) {
                    a.overdue_recorded = true;
                }
            }
        }
    }
}
