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
use chrono::{DateTime, Datelike, Utc};
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
    /// Cash received from the bank for a replenishment request.
    Replenishment,
    /// A cash count's variance (count − book), approved: positive for a surplus.
    Adjustment,
    /// The cash returned to the bank when the fund closes.
    Return,
    /// Change an advance's holder gave back when settling it.
    AdvanceReturn,
    /// A payment through a provider started: its amount is reserved (amount 0: no cash moved;
    /// `reserved` says how much).
    Reservation,
    /// A reservation ended without the cash leaving (the payment failed): amount 0.
    ReservationReleased,
}

impl MovementKind {
    pub const ALL: [MovementKind; 8] = [
        MovementKind::Opening,
        MovementKind::Disbursement,
        MovementKind::Replenishment,
        MovementKind::Adjustment,
        MovementKind::Return,
        MovementKind::AdvanceReturn,
        MovementKind::Reservation,
        MovementKind::ReservationReleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Opening => "opening",
            MovementKind::Disbursement => "disbursement",
            MovementKind::Replenishment => "replenishment",
            MovementKind::Adjustment => "adjustment",
            MovementKind::Return => "return",
            MovementKind::AdvanceReturn => "advance_return",
            MovementKind::Reservation => "reservation",
            MovementKind::ReservationReleased => "reservation_released",
        }
    }

    /// Whether the line moves cash (a reservation's lines only change what is reserved): the
    /// cash-book report prints only these.
    pub fn moves_cash(self) -> bool {
        !matches!(self, MovementKind::Reservation | MovementKind::ReservationReleased)
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
    /// Signed: positive into the fund, negative out of it (0 for a reservation's lines).
    pub amount: Decimal,
    /// The balance after it, as recorded (an opening's is its float).
    pub balance_after: Decimal,
    /// Signed change of the cash reserved for payments in flight: positive for a reservation,
    /// negative for its release or for the disbursement that consumes it; 0 otherwise.
    pub reserved: Decimal,
    /// The cash reserved after it (in the balance, not available to another outflow).
    pub reserved_after: Decimal,
    pub requisition_id: Option<Id>,
    pub payment_id: Option<Id>,
    /// The outside reference: the voucher or provider receipt of a disbursement, the bank
    /// reference of a replenishment or of the closing return.
    pub reference: Option<String>,
    /// What it comes from inside the service: the replenishment request (`replenishment`), the
    /// cash count (`adjustment`) or the advance's settlement (`advance_return`).
    pub source_id: Option<Id>,
}

impl Movement {
    /// What other outflows may still use after it: balance − reserved.
    pub fn available_after(&self) -> Decimal {
        self.balance_after - self.reserved_after
    }
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
    /// Cash reserved for payments in flight (reservations neither released nor consumed).
    pub reserved: Decimal,
}

impl CashBook {
    /// A cash book that stands at `balance` with nothing reserved.
    pub fn at(balance: Decimal) -> Self {
        Self::at_reserved(balance, Decimal::ZERO)
    }

    /// A cash book that stands at `balance` with `reserved` of it reserved (read back from a
    /// read model).
    pub fn at_reserved(balance: Decimal, reserved: Decimal) -> Self {
        Self { balance, computed: balance, opened: true, reserved }
    }

    /// Records `event`; its movement (`Ok(None)`: the event is no line of the book, e.g. a
    /// settings change or a count). Reservations are lines of amount 0 that change
    /// `reserved`. `Err` for a movement of a fund never opened.
    pub fn record(&mut self, event: &FundEvent) -> Result<Option<Movement>, NotOpened> {
        let line = |kind, amount: Decimal, balance_after: Decimal| Movement {
            kind,
            amount,
            balance_after,
            reserved: Decimal::ZERO,
            reserved_after: Decimal::ZERO,
            requisition_id: None,
            payment_id: None,
            reference: None,
            source_id: None,
        };
        let m = match event {
            FundEvent::FundOpened { float, .. } => {
                *self = Self::at(*float);
                line(MovementKind::Opening, *float, *float)
            }
            FundEvent::CashDisbursed {
                payment_id,
                requisition_id,
                amount,
                balance_after,
                reference,
                reserved,
                ..
            } => Movement {
                requisition_id: Some(*requisition_id),
                payment_id: Some(*payment_id),
                reference: reference.clone(),
                reserved: reserved.map_or(Decimal::ZERO, |r| -r),
                ..line(MovementKind::Disbursement, -*amount, *balance_after)
            },
            FundEvent::ReplenishmentFunded {
                replenishment_id,
                amount,
                balance_after,
                bank_reference,
                ..
            } => Movement {
                reference: Some(bank_reference.clone()),
                source_id: Some(*replenishment_id),
                ..line(MovementKind::Replenishment, *amount, *balance_after)
            },
            FundEvent::VarianceAdjusted { count_id, amount, balance_after, .. } => Movement {
                source_id: Some(*count_id),
                ..line(MovementKind::Adjustment, *amount, *balance_after)
            },
            FundEvent::CashReturned { amount, balance_after, bank_reference, .. } => Movement {
                reference: Some(bank_reference.clone()),
                ..line(MovementKind::Return, -*amount, *balance_after)
            },
            FundEvent::AdvanceCashReturned {
                requisition_id, settlement_id, amount, balance_after, ..
            } => Movement {
                requisition_id: Some(*requisition_id),
                source_id: Some(*settlement_id),
                ..line(MovementKind::AdvanceReturn, *amount, *balance_after)
            },
            // Reservations change what is available, not the cash: lines of amount 0.
            FundEvent::CashReserved { payment_id, requisition_id, amount, .. } => Movement {
                requisition_id: Some(*requisition_id),
                payment_id: Some(*payment_id),
                reserved: *amount,
                ..line(MovementKind::Reservation, Decimal::ZERO, self.balance)
            },
            FundEvent::ReservationReleased { payment_id, amount, .. } => Movement {
                payment_id: Some(*payment_id),
                reserved: -*amount,
                ..line(MovementKind::ReservationReleased, Decimal::ZERO, self.balance)
            },
            FundEvent::FundSettingsChanged { .. }
            | FundEvent::ReplenishmentRequested { .. }
            | FundEvent::ReplenishmentApproved { .. }
            | FundEvent::ReplenishmentRejected { .. }
            | FundEvent::CashCounted { .. }
            | FundEvent::VarianceRejected { .. }
            | FundEvent::PeriodClosed { .. }
            | FundEvent::FundClosed { .. } => return Ok(None),
        };
        if !self.opened {
            return Err(NotOpened);
        }
        if m.kind != MovementKind::Opening {
            self.computed += m.amount;
            self.balance = m.balance_after;
        }
        self.reserved += m.reserved;
        // Never `-0` (a release of everything reserved).
        if self.reserved.is_zero() {
            self.reserved.set_sign_positive(true);
        }
        Ok(Some(Movement { reserved_after: self.reserved, ..m }))
    }
}

/// A movement recorded for a fund never opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a movement of a fund that was never opened")]
pub struct NotOpened;

/// A calendar month (UTC) of a fund's book, written `2026-12`: what a period close closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Self {
        Self { year: at.year(), month: at.month() }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Period {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownWord { what: "period (YYYY-MM)", text: s.to_string() };
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let (year, month) = (y.parse::<i32>().map_err(|_| bad())?, m.parse::<u32>().map_err(|_| bad())?);
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }
}

impl TryFrom<String> for Period {
    type Error = UnknownWord;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        p.to_string()
    }
}

/// How a fund stands against its reorder level and minimum balance (`rm_funds.status`).
/// Ordered by how much attention it needs: `Ok < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundStatus {
    /// At or above its reorder level (or it has none) and its minimum.
    Ok,
    /// Below its reorder level.
    Warning,
    /// Below 80 % of its reorder level, or below its minimum balance.
    Critical,
}

impl FundStatus {
    pub fn of(balance: Decimal, reorder_level: Option<Decimal>, minimum_balance: Decimal) -> Self {
        let reorder = reorder_level.unwrap_or(Decimal::ZERO);
        if balance < minimum_balance || balance < reorder * Decimal::new(8, 1) {
            FundStatus::Critical
        } else if balance < reorder {
            FundStatus::Warning
        } else {
            FundStatus::Ok
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FundStatus::Ok => "ok",
            FundStatus::Warning => "warning",
            FundStatus::Critical => "critical",
        }
    }

    /// The status [`as_str`](Self::as_str) wrote, `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        [FundStatus::Ok, FundStatus::Warning, FundStatus::Critical].into_iter().find(|s| s.as_str() == text)
    }
}

/// What an admin sets on a fund besides its float (`FundCommand::ChangeSettings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FundSettings {
    /// Below it a replenishment is due (`None`: never).
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub reorder_level: Option<Decimal>,
    /// Below it the fund is critical.
    #[serde(default)]
    pub minimum_balance: Decimal,
    /// Raise a replenishment request by itself when an outflow takes the balance below the
    /// reorder level.
    #[serde(default)]
    pub auto_replenish: bool,
    #[serde(default)]
    pub custodian_id: Option<Id>,
}

/// A replenishment request not yet funded or rejected (at most one per fund).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenReplenishment {
    pub id: Id,
    pub amount: Decimal,
    /// `None`: raised automatically.
    pub requested_by: Option<Id>,
    pub approved_by: Option<Id>,
}

impl OpenReplenishment {
    pub fn status(&self) -> ReplenishmentStatus {
        if self.approved_by.is_some() {
            ReplenishmentStatus::Approved
        } else {
            ReplenishmentStatus::Requested
        }
    }
}

/// Where a replenishment request stands. One text form ([`ReplenishmentStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplenishmentStatus {
    Requested,
    Approved,
    Rejected,
    Funded,
}

impl ReplenishmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplenishmentStatus::Requested => "requested",
            ReplenishmentStatus::Approved => "approved",
            ReplenishmentStatus::Rejected => "rejected",
            ReplenishmentStatus::Funded => "funded",
        }
    }
}

/// Where a cash count's variance stands. One text form ([`VarianceStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceStatus {
    /// The count equals the book: nothing to adjust.
    Matched,
    /// Waits for an approver.
    Pending,
    Adjusted,
    Rejected,
}

impl VarianceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VarianceStatus::Matched => "matched",
            VarianceStatus::Pending => "pending",
            VarianceStatus::Adjusted => "adjusted",
            VarianceStatus::Rejected => "rejected",
        }
    }
}

/// A count whose variance waits for an approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingVariance {
    pub count_id: Id,
    /// Count − book at the count's instant.
    pub variance: Decimal,
    pub counted_by: Id,
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
    /// Reorder level, minimum balance, auto-replenish (funds opened before they existed: none,
    /// zero, off).
    #[serde(default)]
    pub settings: FundSettings,
    /// The open replenishment request, if any.
    #[serde(default)]
    pub replenishment: Option<OpenReplenishment>,
    /// Counts whose variance waits for approval.
    #[serde(default)]
    pub pending_variances: Vec<PendingVariance>,
    /// The latest closed period: no movement may be recorded at a time within it or before.
    #[serde(default)]
    pub closed_through: Option<Period>,
    /// Closed for good (`FundClosed`).
    #[serde(default)]
    pub closed: bool,
}

/// Who may approve or reject a replenishment request (someone other than its requester):
/// a holder of one of these roles. The decision and `pettycash-replay verify` ask this.
pub fn may_decide_replenishment(holds: impl Fn(Role) -> bool) -> bool {
    [Role::Cfo, Role::Admin, Role::Treasury].into_iter().any(holds)
}

/// Who may approve or reject a count's variance (someone other than the counter): an admin or
/// a holder of the configured `variance_approver_role`. The decision and `verify` ask this.
pub fn may_decide_variance(holds: impl Fn(Role) -> bool, approver_role: Role) -> bool {
    holds(Role::Admin) || holds(approver_role)
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
        /// Reorder level (default none), minimum balance (default zero), auto-replenish
        /// (default on; it acts only with a reorder level). The custodian is `custodian_id`.
        settings: FundSettings,
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
        /// The service clock's time: no payment into a closed period.
        now: DateTime<Utc>,
    },
    /// An admin changes reorder level, minimum balance, auto-replenish or custodian (never
    /// the balance).
    ChangeSettings { settings: FundSettings, actor: Actor },
    /// Treasury raises a replenishment request by hand, for float − balance.
    RequestReplenishment { replenishment_id: Id, actor: Actor, now: DateTime<Utc> },
    /// Approve (or reject) the open replenishment: cfo, admin or treasury, not its requester.
    DecideReplenishment { replenishment_id: Id, approve: bool, reason: Option<String>, actor: Actor },
    /// Treasury records the cash received for the approved replenishment.
    FundReplenishment { replenishment_id: Id, bank_reference: String, actor: Actor, now: DateTime<Utc> },
    /// The custodian (or treasury) counts the cash by denomination; with `close_period` the
    /// count closes the month of `now`.
    RecordCount {
        count_id: Id,
        counts: Vec<(String, u64)>,
        close_period: bool,
        /// Variances up to this amount (absolute) are adjusted at once (setting).
        tolerance: Decimal,
        actor: Actor,
        now: DateTime<Utc>,
    },
    /// Approve (or reject) a count's variance: admin or `approver_role` (setting), not the
    /// counter.
    DecideVariance {
        count_id: Id,
        approve: bool,
        reason: Option<String>,
        approver_role: Role,
        actor: Actor,
        now: DateTime<Utc>,
    },
    /// An admin closes the fund: its cash goes back to the bank (a final movement to zero).
    Close { bank_reference: String, actor: Actor, now: DateTime<Utc> },
    /// Change from an advance comes back into the fund (its holder settles it; the advance
    /// account decides how much may be returned).
    ReceiveAdvanceReturn {
        requisition_id: Id,
        settlement_id: Id,
        amount: Decimal,
        currency: Currency,
        returned_by: Id,
        now: DateTime<Utc>,
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
        /// The service clock's time: nothing is reserved in a closed period.
        now: DateTime<Utc>,
    },
    /// The provider reported success: the reserved cash leaves the fund (a `CashDisbursed` that
    /// consumes the reservation, exactly its amount).
    DisburseReserved {
        payment_id: Id,
        requisition_id: Id,
        reference: Option<String>,
        paid_by: Id,
        /// The service clock's time: no payment into a closed period.
        now: DateTime<Utc>,
    },
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
        /// Version 3: reorder level (`null`: none), minimum balance (`null`: zero),
        /// auto-replenish (`null`: off). Versions 1 and 2 had none of them.
        #[serde(default, with = "rust_decimal::serde::str_option")]
        reorder_level: Option<Decimal>,
        #[serde(default, with = "rust_decimal::serde::str_option")]
        minimum_balance: Option<Decimal>,
        #[serde(default)]
        auto_replenish: Option<bool>,
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
    /// The fund's settings as they are from now on (all of them, not only the changed ones).
    FundSettingsChanged {
        #[serde(with = "rust_decimal::serde::str_option")]
        reorder_level: Option<Decimal>,
        #[serde(with = "rust_decimal::serde::str")]
        minimum_balance: Decimal,
        auto_replenish: bool,
        custodian_id: Option<Id>,
        changed_by: Id,
    },
    /// A replenishment request for float − balance. `requested_by` `None`: raised by the
    /// outflow that took the balance below the reorder level (its id is that outflow's id).
    ReplenishmentRequested {
        replenishment_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// The balance when it was raised.
        #[serde(with = "rust_decimal::serde::str")]
        balance: Decimal,
        requested_by: Option<Id>,
    },
    ReplenishmentApproved {
        replenishment_id: Id,
        approved_by: Id,
    },
    ReplenishmentRejected {
        replenishment_id: Id,
        rejected_by: Id,
        reason: Option<String>,
    },
    /// The cash of an approved replenishment received: a movement into the fund.
    ReplenishmentFunded {
        replenishment_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        balance_after: Decimal,
        bank_reference: String,
        funded_by: Id,
        at: DateTime<Utc>,
    },
    /// A physical count: what was counted, the book balance at that instant and the variance
    /// (counted − book). `period`: the count closes this month (a `PeriodClosed` follows).
    CashCounted {
        count_id: Id,
        counted_by: Id,
        pieces: Vec<crate::denomination::Pieces>,
        #[serde(with = "rust_decimal::serde::str")]
        counted: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        book_balance: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        variance: Decimal,
        period: Option<Period>,
        at: DateTime<Utc>,
    },
    /// A count's variance applied as a movement to the balance of the moment (never an
    /// overwrite). `approved_by` `None`: within the tolerance, approved automatically.
    VarianceAdjusted {
        count_id: Id,
        /// Signed: the count's variance.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        balance_after: Decimal,
        approved_by: Option<Id>,
        at: DateTime<Utc>,
    },
    VarianceRejected {
        count_id: Id,
        rejected_by: Id,
        reason: Option<String>,
    },
    /// The month is final: its closing balance opens the next one; nothing moves into it.
    PeriodClosed {
        period: Period,
        count_id: Id,
        #[serde(with = "rust_decimal::serde::str")]
        closing_balance: Decimal,
        closed_by: Id,
        at: DateTime<Utc>,
    },
    /// The fund's remaining cash returned to the bank: a movement out, to zero.
    CashReturned {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        balance_after: Decimal,
        bank_reference: String,
        returned_by: Id,
        at: DateTime<Utc>,
    },
    FundClosed {
        closed_by: Id,
        at: DateTime<Utc>,
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
            FundEvent::FundSettingsChanged { .. } => "FundSettingsChanged",
            FundEvent::ReplenishmentRequested { .. } => "ReplenishmentRequested",
            FundEvent::ReplenishmentApproved { .. } => "ReplenishmentApproved",
            FundEvent::ReplenishmentRejected { .. } => "ReplenishmentRejected",
            FundEvent::ReplenishmentFunded { .. } => "ReplenishmentFunded",
            FundEvent::CashCounted { .. } => "CashCounted",
            FundEvent::VarianceAdjusted { .. } => "VarianceAdjusted",
            FundEvent::VarianceRejected { .. } => "VarianceRejected",
            FundEvent::PeriodClosed { .. } => "PeriodClosed",
            FundEvent::CashReturned { .. } => "CashReturned",
            FundEvent::FundClosed { .. } => "FundClosed",
            FundEvent::AdvanceCashReturned { .. } => "AdvanceCashReturned",
            FundEvent::CashReserved { .. } => "CashReserved",
            FundEvent::ReservationReleased { .. } => "ReservationReleased",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            FundEvent::FundOpened { .. } => "3",
            FundEvent::CashDisbursed { .. } => "2",
            _ => "1",
        }
        .into()
    }
}

impl Fund {
    /// Whether cash may move at `now`: the fund is open and `now` is after its latest closed
    /// period. Every arm that moves cash calls it.
    pub fn may_move_cash(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        if self.closed {
            return Err(DomainError::FundClosed);
        }
        match self.closed_through {
            Some(closed) if Period::of(now) <= closed => {
                Err(DomainError::PeriodClosed { period: closed.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// THE below-reorder check, called by every outflow arm after its movement is applied:
    /// the automatic replenishment request to append in the same decision, if the balance is
    /// now below the reorder level, auto-replenish is on and no request is open. Decided with
    /// the outflow on the same stream, so concurrent outflows (serialised by the stream's
    /// sequence) raise one. Its id is the outflow's (`trigger_id`).
    pub fn replenishment_due(&self, trigger_id: Id) -> Option<FundEvent> {
        let reorder = self.settings.reorder_level?;
        if !self.settings.auto_replenish || self.replenishment.is_some() || self.balance >= reorder {
            return None;
        }
        let amount = self.float - self.balance;
        (amount > Decimal::ZERO).then_some(FundEvent::ReplenishmentRequested {
            replenishment_id: trigger_id,
            amount,
            balance: self.balance,
            requested_by: None,
        })
    }

    fn currency(&self) -> Result<&Currency, DomainError> {
        self.currency.as_ref().ok_or(DomainError::NotFound { what: "fund" })
    }

    fn open_replenishment(&self, id: Id) -> Result<&OpenReplenishment, DomainError> {
        self.replenishment
            .as_ref()
            .filter(|r| r.id == id)
            .ok_or(DomainError::NotFound { what: "replenishment" })
    }

    /// Checks and rescales an admin's settings against the fund's currency and float.
    fn checked_settings(&self, s: FundSettings) -> Result<FundSettings, DomainError> {
        let currency = self.currency()?;
        let reorder_level = match s.reorder_level {
            Some(r) => {
                Some(currency.validate_positive(r).map_err(|e| DomainError::money("reorder_level", e))?)
            }
            None => None,
        };
        let minimum_balance = if s.minimum_balance.is_zero() {
            currency.rescale(Decimal::ZERO)
        } else {
            currency
                .validate_positive(s.minimum_balance)
                .map_err(|e| DomainError::money("minimum_balance", e))?
        };
        if reorder_level.is_some_and(|r| r > self.float) {
            return Err(DomainError::invalid("reorder_level", "must not exceed the fund's float"));
        }
        if minimum_balance > reorder_level.unwrap_or(self.float) {
            return Err(DomainError::invalid(
                "minimum_balance",
                "must not exceed the reorder level (or the float, without one)",
            ));
        }
        Ok(FundSettings { reorder_level, minimum_balance, ..s })
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
            FundCommand::Open { fund_id, name, currency, float, custodian_id, unit, settings, actor } => {
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
                let probe = Fund { currency: Some(currency.clone()), float, ..Fund::default() };
                let settings = probe.checked_settings(settings)?;
                let event = FundEvent::FundOpened {
                    fund_id,
                    name,
                    currency,
                    float,
                    custodian_id,
                    opened_by: actor.user_id,
                    unit,
                    reorder_level: settings.reorder_level,
                    minimum_balance: Some(settings.minimum_balance),
                    auto_replenish: Some(settings.auto_replenish),
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
                now,
            } => {
                self.may_move_cash(now)?;
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
                if let Some(raised) = self.replenishment_due(payment_id) {
                    sink.write(raised, self).await;
                }
            }
            FundCommand::Reserve {
                payment_id,
                requisition_id,
                amount,
                currency,
                method,
                reserved_by,
                now,
            } => {
                self.may_move_cash(now)?;
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
            FundCommand::DisburseReserved { payment_id, requisition_id, reference, paid_by, now } => {
                self.may_move_cash(now)?;
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
                if let Some(raised) = self.replenishment_due(payment_id) {
                    sink.write(raised, self).await;
                }
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
            other => return self.handle_operation(other, sink).await,
        }
        Ok(())
    }

    fn apply(&mut self, event: FundEvent) {
        match event {
            FundEvent::FundOpened {
                fund_id,
                name,
                currency,
                float,
                custodian_id,
                unit,
                reorder_level,
                minimum_balance,
                auto_replenish,
                ..
            } => {
                self.settings = FundSettings {
                    reorder_level,
                    minimum_balance: minimum_balance.unwrap_or_default(),
                    auto_replenish: auto_replenish.unwrap_or(false),
                    custodian_id,
                };
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
            FundEvent::FundSettingsChanged {
                reorder_level,
                minimum_balance,
                auto_replenish,
                custodian_id,
                ..
            } => {
                self.settings = FundSettings { reorder_level, minimum_balance, auto_replenish, custodian_id };
                self.custodian_id = custodian_id;
            }
            FundEvent::ReplenishmentRequested { replenishment_id, amount, requested_by, .. } => {
                self.replenishment =
                    Some(OpenReplenishment { id: replenishment_id, amount, requested_by, approved_by: None });
            }
            FundEvent::ReplenishmentApproved { approved_by, .. } => {
                if let Some(r) = &mut self.replenishment {
                    r.approved_by = Some(approved_by);
                }
            }
            FundEvent::ReplenishmentRejected { .. } => self.replenishment = None,
            FundEvent::ReplenishmentFunded { balance_after, .. } => {
                self.balance = balance_after;
                self.replenishment = None;
            }
            FundEvent::CashCounted { count_id, counted_by, variance, .. } => {
                if !variance.is_zero() {
                    self.pending_variances.push(PendingVariance { count_id, variance, counted_by });
                }
            }
            FundEvent::VarianceAdjusted { count_id, balance_after, .. } => {
                self.balance = balance_after;
                self.pending_variances.retain(|p| p.count_id != count_id);
            }
            FundEvent::VarianceRejected { count_id, .. } => {
                self.pending_variances.retain(|p| p.count_id != count_id);
            }
            FundEvent::PeriodClosed { period, .. } => self.closed_through = Some(period),
            FundEvent::CashReturned { balance_after, .. } => self.balance = balance_after,
            FundEvent::FundClosed { .. } => self.closed = true,
            FundEvent::AdvanceCashReturned { balance_after, .. } => self.balance = balance_after,
        }
    }
}

impl Fund {
    /// The fund operations' arms of `handle` (settings, replenishment, counts, period close,
    /// closing).
    async fn handle_operation(
        &mut self,
        command: FundCommand,
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let currency = self.currency()?.clone();
        match command {
            FundCommand::Open { .. }
            | FundCommand::Disburse { .. }
            | FundCommand::Reserve { .. }
            | FundCommand::DisburseReserved { .. }
            | FundCommand::Release { .. } => {
                unreachable!("handled by `handle`")
            }
            FundCommand::ChangeSettings { settings, actor } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                if self.closed {
                    return Err(DomainError::FundClosed);
                }
                let s = self.checked_settings(settings)?;
                let event = FundEvent::FundSettingsChanged {
                    reorder_level: s.reorder_level,
                    minimum_balance: s.minimum_balance,
                    auto_replenish: s.auto_replenish,
                    custodian_id: s.custodian_id,
                    changed_by: actor.user_id,
                };
                sink.write(event, self).await;
            }
            FundCommand::RequestReplenishment { replenishment_id, actor, now } => {
                if !actor.has(Role::Treasury) {
                    return Err(DomainError::MissingRole { required: Role::Treasury });
                }
                self.may_move_cash(now)?;
                if self.replenishment.is_some() {
                    return Err(DomainError::ReplenishmentOpen);
                }
                let amount = self.float - self.balance;
                if amount <= Decimal::ZERO {
                    return Err(DomainError::NothingToReplenish);
                }
                let event = FundEvent::ReplenishmentRequested {
                    replenishment_id,
                    amount,
                    balance: self.balance,
                    requested_by: Some(actor.user_id),
                };
                sink.write(event, self).await;
            }
            FundCommand::DecideReplenishment { replenishment_id, approve, reason, actor } => {
                let open = self.open_replenishment(replenishment_id)?;
                if !may_decide_replenishment(|r| actor.has(r)) {
                    return Err(DomainError::MissingRole { required: Role::Cfo });
                }
                if open.approved_by.is_some() {
                    let action = if approve { "approve" } else { "reject" };
                    return Err(DomainError::ReplenishmentState {
                        status: ReplenishmentStatus::Approved.as_str(),
                        action,
                    });
                }
                if open.requested_by == Some(actor.user_id) {
                    return Err(DomainError::FourEyes { action: "requested the replenishment" });
                }
                let event = if approve {
                    FundEvent::ReplenishmentApproved { replenishment_id, approved_by: actor.user_id }
                } else {
                    let reason = crate::error::clean_optional("reason", reason.as_deref(), 500)?;
                    FundEvent::ReplenishmentRejected { replenishment_id, rejected_by: actor.user_id, reason }
                };
                sink.write(event, self).await;
            }
            FundCommand::FundReplenishment { replenishment_id, bank_reference, actor, now } => {
                let open = self.open_replenishment(replenishment_id)?.clone();
                if !actor.has(Role::Treasury) {
                    return Err(DomainError::MissingRole { required: Role::Treasury });
                }
                if open.approved_by.is_none() {
                    return Err(DomainError::ReplenishmentState {
                        status: ReplenishmentStatus::Requested.as_str(),
                        action: "fund",
                    });
                }
                self.may_move_cash(now)?;
                let bank_reference = clean_text("bank_reference", &bank_reference, 100, true)?;
                let event = FundEvent::ReplenishmentFunded {
                    replenishment_id,
                    amount: open.amount,
                    balance_after: currency.rescale(self.balance + open.amount),
                    bank_reference,
                    funded_by: actor.user_id,
                    at: now,
                };
                sink.write(event, self).await;
            }
            FundCommand::RecordCount { count_id, counts, close_period, tolerance, actor, now } => {
                if self.custodian_id != Some(actor.user_id) && !actor.has(Role::Treasury) {
                    return Err(DomainError::MissingRole { required: Role::Treasury });
                }
                self.may_move_cash(now)?;
                let (pieces, counted) = crate::denomination::total(&currency, &counts)?;
                let variance = currency.rescale(counted - self.balance);
                let period = close_period.then(|| Period::of(now));
                let event = FundEvent::CashCounted {
                    count_id,
                    counted_by: actor.user_id,
                    pieces,
                    counted,
                    book_balance: self.balance,
                    variance,
                    period,
                    at: now,
                };
                sink.write(event, self).await;
                if !variance.is_zero()
                    && variance.abs() <= tolerance
                    && self.balance + variance >= Decimal::ZERO
                {
                    let event = FundEvent::VarianceAdjusted {
                        count_id,
                        amount: variance,
                        balance_after: currency.rescale(self.balance + variance),
                        approved_by: None,
                        at: now,
                    };
                    sink.write(event, self).await;
                }
                if let Some(period) = period {
                    let event = FundEvent::PeriodClosed {
                        period,
                        count_id,
                        closing_balance: self.balance,
                        closed_by: actor.user_id,
                        at: now,
                    };
                    sink.write(event, self).await;
                }
            }
            FundCommand::DecideVariance { count_id, approve, reason, approver_role, actor, now } => {
                let Some(pending) = self.pending_variances.iter().find(|p| p.count_id == count_id).cloned()
                else {
                    return Err(DomainError::VarianceSettled);
                };
                if !may_decide_variance(|r| actor.has(r), approver_role) {
                    return Err(DomainError::MissingRole { required: approver_role });
                }
                if pending.counted_by == actor.user_id {
                    return Err(DomainError::FourEyes { action: "counted the cash" });
                }
                if !approve {
                    let reason = crate::error::clean_optional("reason", reason.as_deref(), 500)?;
                    sink.write(
                        FundEvent::VarianceRejected { count_id, rejected_by: actor.user_id, reason },
                        self,
                    )
                    .await;
                    return Ok(());
                }
                self.may_move_cash(now)?;
                let balance_after = currency.rescale(self.balance + pending.variance);
                if balance_after < Decimal::ZERO {
                    return Err(DomainError::InsufficientFunds {
                        balance: self.balance,
                        amount: -pending.variance,
                    });
                }
                let event = FundEvent::VarianceAdjusted {
                    count_id,
                    amount: pending.variance,
                    balance_after,
                    approved_by: Some(actor.user_id),
                    at: now,
                };
                sink.write(event, self).await;
                // A shortage is an outflow: the below-reorder check applies.
                if let Some(raised) = self.replenishment_due(count_id) {
                    sink.write(raised, self).await;
                }
            }
            FundCommand::Close { bank_reference, actor, now } => {
                if !actor.has(Role::Admin) {
                    return Err(DomainError::MissingRole { required: Role::Admin });
                }
                self.may_move_cash(now)?;
                if self.replenishment.is_some() {
                    return Err(DomainError::FundHasOpenItems { what: "an open replenishment request" });
                }
                if !self.pending_variances.is_empty() {
                    return Err(DomainError::FundHasOpenItems { what: "a count variance awaiting approval" });
                }
                let bank_reference = clean_text("bank_reference", &bank_reference, 100, true)?;
                if self.balance > Decimal::ZERO {
                    let event = FundEvent::CashReturned {
                        amount: self.balance,
                        balance_after: currency.rescale(Decimal::ZERO),
                        bank_reference,
                        returned_by: actor.user_id,
                        at: now,
                    };
                    sink.write(event, self).await;
                }
                sink.write(FundEvent::FundClosed { closed_by: actor.user_id, at: now }, self).await;
            }
            FundCommand::ReceiveAdvanceReturn {
                requisition_id,
                settlement_id,
                amount,
                currency: given,
                returned_by,
                now,
            } => {
                self.may_move_cash(now)?;
                if given != currency {
                    return Err(DomainError::CurrencyMismatch {
                        expected: currency.to_string(),
                        got: given.to_string(),
                    });
                }
                let amount =
                    currency.validate_positive(amount).map_err(|e| DomainError::money("returned", e))?;
                let balance_after = currency.rescale(self.balance + amount);
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
        assert_eq!(book.record(&paid("1", "0")), Err(NotOpened), "nothing before the opening");
        let m = book.record(&opened("100.00")).unwrap().unwrap();
        assert_eq!((m.kind, m.amount, m.balance_after), (MovementKind::Opening, d("100.00"), d("100.00")));
        let m = book.record(&paid("30.50", "69.50")).unwrap().unwrap();
        assert_eq!(
            (m.kind, m.amount, m.balance_after),
            (MovementKind::Disbursement, d("-30.50"), d("69.50"))
        );
        assert_eq!(m.reference.as_deref(), Some("PCV-1"));
        // A wrong recorded balance is kept as recorded; the computed one tells.
        book.record(&paid("10", "50.00")).unwrap().unwrap();
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
            reorder_level: None,
            minimum_balance: Some(d("0.00")),
            auto_replenish: Some(true),
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
            now: now(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-06T10:00:00Z".parse().unwrap()
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
                settings: FundSettings { auto_replenish: true, ..FundSettings::default() },
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
                settings: FundSettings::default(),
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
                settings: FundSettings { auto_replenish: true, ..FundSettings::default() },
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

    // ----- fund operations ---------------------------------------------------------------

    fn user(n: u128, roles: &[Role]) -> Actor {
        Actor::new(Id::from_u128(n), roles.iter().copied())
    }

    fn settings_changed(reorder: &str, minimum: &str, auto: bool, custodian: Option<Id>) -> FundEvent {
        FundEvent::FundSettingsChanged {
            reorder_level: Some(d(reorder)),
            minimum_balance: d(minimum),
            auto_replenish: auto,
            custodian_id: custodian,
            changed_by: Id::nil(),
        }
    }

    fn paid(amount: &str, after: &str) -> FundEvent {
        FundEvent::CashDisbursed {
            payment_id: Id::from_u128(99),
            requisition_id: Id::nil(),
            amount: d(amount),
            balance_after: d(after),
            method: PaymentMethod::Cash,
            reference: None,
            paid_by: Id::nil(),
            reserved: None,
        }
    }

    fn requested(by: Option<u128>, amount: &str, balance: &str) -> FundEvent {
        FundEvent::ReplenishmentRequested {
            replenishment_id: Id::from_u128(7),
            amount: d(amount),
            balance: d(balance),
            requested_by: by.map(Id::from_u128),
        }
    }

    fn counted(by: u128, counted: &str, book: &str, variance: &str) -> FundEvent {
        FundEvent::CashCounted {
            count_id: Id::from_u128(5),
            counted_by: Id::from_u128(by),
            pieces: vec![],
            counted: d(counted),
            book_balance: d(book),
            variance: d(variance),
            period: None,
            at: now(),
        }
    }

    fn count(by: Actor, counts: &[(&str, u64)], close: bool, tolerance: &str) -> FundCommand {
        FundCommand::RecordCount {
            count_id: Id::from_u128(5),
            counts: counts.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
            close_period: close,
            tolerance: d(tolerance),
            actor: by,
            now: now(),
        }
    }

    fn decide_variance(by: Actor, approve: bool) -> FundCommand {
        FundCommand::DecideVariance {
            count_id: Id::from_u128(5),
            approve,
            reason: None,
            approver_role: Role::Cfo,
            actor: by,
            now: now(),
        }
    }

    #[test]
    fn an_admin_changes_reorder_level_minimum_and_custodian_by_an_event_never_the_balance() {
        let custodian = Some(Id::from_u128(3));
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("100", "900.00")])
            .when(FundCommand::ChangeSettings {
                settings: FundSettings {
                    reorder_level: Some(d("300")),
                    minimum_balance: d("50"),
                    auto_replenish: true,
                    custodian_id: custodian,
                },
                actor: admin(),
            })
            .then_expect_events(vec![settings_changed("300.00", "50.00", true, custodian)]);
        let result = TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00")])
            .when(FundCommand::ChangeSettings {
                settings: FundSettings { reorder_level: Some(d("1000.01")), ..FundSettings::default() },
                actor: admin(),
            })
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: "reorder_level", .. })), "{result:?}");
        let result = TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00")])
            .when(FundCommand::ChangeSettings {
                settings: FundSettings {
                    reorder_level: Some(d("100")),
                    minimum_balance: d("200"),
                    ..FundSettings::default()
                },
                actor: admin(),
            })
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: "minimum_balance", .. })), "{result:?}");
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00")])
            .when(FundCommand::ChangeSettings {
                settings: FundSettings::default(),
                actor: user(1, &[Role::Cfo]),
            })
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
        let mut fund = Fund::default();
        fund.apply(opened("1000.00"));
        fund.apply(paid("100", "900.00"));
        fund.apply(settings_changed("300.00", "50.00", true, custodian));
        assert_eq!((fund.balance, fund.custodian_id), (d("900.00"), custodian));
    }

    #[test]
    fn the_status_is_ok_warning_below_reorder_and_critical_below_80_percent_or_the_minimum() {
        let status = |b: &str| FundStatus::of(d(b), Some(d("100")), d("50"));
        assert_eq!(status("100"), FundStatus::Ok);
        assert_eq!(status("99.99"), FundStatus::Warning);
        assert_eq!(status("80"), FundStatus::Warning);
        assert_eq!(status("79.99"), FundStatus::Critical);
        assert_eq!(FundStatus::of(d("40"), None, d("50")), FundStatus::Critical);
        assert_eq!(FundStatus::of(d("0"), None, d("0")), FundStatus::Ok);
    }

    #[test]
    fn a_payment_below_the_reorder_level_raises_one_replenishment_for_float_minus_balance() {
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), settings_changed("300.00", "0.00", true, None)])
            .when(disburse("750", "KES"))
            .then_expect_events(vec![
                FundEvent::CashDisbursed {
                    payment_id: Id::nil(),
                    requisition_id: Id::nil(),
                    amount: d("750.00"),
                    balance_after: d("250.00"),
                    method: PaymentMethod::Cash,
                    reference: None,
                    paid_by: Id::nil(),
                    reserved: None,
                },
                FundEvent::ReplenishmentRequested {
                    replenishment_id: Id::nil(),
                    amount: d("750.00"),
                    balance: d("250.00"),
                    requested_by: None,
                },
            ]);
        // Once while one is open; never with auto-replenish off.
        for given in [
            vec![
                opened("1000.00"),
                settings_changed("300.00", "0.00", true, None),
                requested(None, "750", "250"),
            ],
            vec![opened("1000.00"), settings_changed("300.00", "0.00", false, None)],
        ] {
            let events = TestFramework::<Fund>::with(())
                .given(given)
                .when(disburse("100", "KES"))
                .inspect_result()
                .unwrap();
            assert_eq!(events.len(), 1, "{events:?}");
        }
    }

    #[test]
    fn treasury_raises_a_replenishment_by_hand_once_and_someone_else_approves_it() {
        let treasurer = user(1, &[Role::Treasury]);
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("400", "600.00")])
            .when(FundCommand::RequestReplenishment {
                replenishment_id: Id::from_u128(7),
                actor: treasurer.clone(),
                now: now(),
            })
            .then_expect_events(vec![requested(Some(1), "400.00", "600.00")]);
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("400", "600.00"), requested(Some(1), "400.00", "600.00")])
            .when(FundCommand::RequestReplenishment {
                replenishment_id: Id::from_u128(8),
                actor: treasurer.clone(),
                now: now(),
            })
            .then_expect_error(DomainError::ReplenishmentOpen);
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00")])
            .when(FundCommand::RequestReplenishment {
                replenishment_id: Id::from_u128(7),
                actor: treasurer.clone(),
                now: now(),
            })
            .then_expect_error(DomainError::NothingToReplenish);
        let decide = |actor: Actor| FundCommand::DecideReplenishment {
            replenishment_id: Id::from_u128(7),
            approve: true,
            reason: None,
            actor,
        };
        let given = || vec![opened("1000.00"), paid("400", "600.00"), requested(Some(1), "400.00", "600.00")];
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide(user(1, &[Role::Treasury, Role::Cfo])))
            .then_expect_error(DomainError::FourEyes { action: "requested the replenishment" });
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide(user(2, &[Role::Staff])))
            .then_expect_error(DomainError::MissingRole { required: Role::Cfo });
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide(user(2, &[Role::Cfo])))
            .then_expect_events(vec![FundEvent::ReplenishmentApproved {
                replenishment_id: Id::from_u128(7),
                approved_by: Id::from_u128(2),
            }]);
    }

    #[test]
    fn an_approved_replenishment_is_funded_once_as_a_movement_into_the_fund() {
        let approved = FundEvent::ReplenishmentApproved {
            replenishment_id: Id::from_u128(7),
            approved_by: Id::from_u128(2),
        };
        let fund = |actor: Actor| FundCommand::FundReplenishment {
            replenishment_id: Id::from_u128(7),
            bank_reference: " BNK-1 ".into(),
            actor,
            now: now(),
        };
        let given = vec![opened("1000.00"), paid("750", "250.00"), requested(None, "750.00", "250.00")];
        TestFramework::<Fund>::with(())
            .given(given.clone())
            .when(fund(user(1, &[Role::Treasury])))
            .then_expect_error(DomainError::ReplenishmentState { status: "requested", action: "fund" });
        let mut with_approval = given.clone();
        with_approval.push(approved.clone());
        // Paid again meanwhile: the funding adds the requested amount to the balance of now.
        with_approval.push(paid("50", "200.00"));
        let funded = FundEvent::ReplenishmentFunded {
            replenishment_id: Id::from_u128(7),
            amount: d("750.00"),
            balance_after: d("950.00"),
            bank_reference: "BNK-1".into(),
            funded_by: Id::from_u128(1),
            at: now(),
        };
        TestFramework::<Fund>::with(())
            .given(with_approval.clone())
            .when(fund(user(1, &[Role::Treasury])))
            .then_expect_events(vec![funded.clone()]);
        with_approval.push(funded.clone());
        TestFramework::<Fund>::with(())
            .given(with_approval)
            .when(fund(user(1, &[Role::Treasury])))
            .then_expect_error(DomainError::NotFound { what: "replenishment" });
        let mut book = CashBook::at(d("200.00"));
        let m = book.record(&funded).unwrap().unwrap();
        assert_eq!(
            (m.kind, m.amount, m.reference.as_deref()),
            (MovementKind::Replenishment, d("750.00"), Some("BNK-1"))
        );
        assert_eq!(book.record(&approved), Ok(None), "a decision moves no cash");
    }

    #[test]
    fn a_count_records_the_variance_against_the_book_and_a_tolerated_one_is_adjusted_at_once() {
        let custodian = user(3, &[Role::Staff]);
        let given =
            || vec![opened("1000.00"), settings_changed("100.00", "0.00", true, Some(Id::from_u128(3)))];
        let events = TestFramework::<Fund>::with(())
            .given(given())
            .when(count(custodian.clone(), &[("500", 1), ("200", 2), ("50", 1), ("20", 2)], false, "0"))
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 1, "outside the tolerance: waits for approval");
        assert!(matches!(&events[0], FundEvent::CashCounted { counted, book_balance, variance, .. }
            if (*counted, *book_balance, *variance) == (d("990.00"), d("1000.00"), d("-10.00"))));
        let events = TestFramework::<Fund>::with(())
            .given(given())
            .when(count(custodian.clone(), &[("1000", 1), ("0.50", 1)], false, "1"))
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[1], FundEvent::VarianceAdjusted { amount, balance_after, approved_by: None, .. }
            if (*amount, *balance_after) == (d("0.50"), d("1000.50")))
        );
        let result = TestFramework::<Fund>::with(())
            .given(given())
            .when(count(custodian.clone(), &[("3", 1)], false, "0"))
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Invalid { field: "counts", .. })), "{result:?}");
        TestFramework::<Fund>::with(())
            .given(given())
            .when(count(user(4, &[Role::Cfo]), &[("1000", 1)], false, "0"))
            .then_expect_error(DomainError::MissingRole { required: Role::Treasury });
    }

    #[test]
    fn a_variance_is_approved_by_someone_other_than_the_counter_as_the_difference_applied_once() {
        // Counted 990 against a book of 1000; 300 paid since: the adjustment is −10 on 700.
        let given =
            || vec![opened("1000.00"), counted(1, "990.00", "1000.00", "-10.00"), paid("300", "700.00")];
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide_variance(user(1, &[Role::Treasury, Role::Cfo]), true))
            .then_expect_error(DomainError::FourEyes { action: "counted the cash" });
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide_variance(user(2, &[Role::Treasury]), true))
            .then_expect_error(DomainError::MissingRole { required: Role::Cfo });
        let adjusted = FundEvent::VarianceAdjusted {
            count_id: Id::from_u128(5),
            amount: d("-10.00"),
            balance_after: d("690.00"),
            approved_by: Some(Id::from_u128(2)),
            at: now(),
        };
        TestFramework::<Fund>::with(())
            .given(given())
            .when(decide_variance(user(2, &[Role::Cfo]), true))
            .then_expect_events(vec![adjusted.clone()]);
        let mut done = given();
        done.push(adjusted);
        TestFramework::<Fund>::with(())
            .given(done)
            .when(decide_variance(user(6, &[Role::Admin]), true))
            .then_expect_error(DomainError::VarianceSettled);
        let result = TestFramework::<Fund>::with(())
            .given(given())
            .when(decide_variance(user(2, &[Role::Cfo]), false))
            .inspect_result()
            .unwrap();
        assert!(matches!(&result[..], [FundEvent::VarianceRejected { .. }]));
    }

    #[test]
    fn a_period_close_counts_fixes_the_closing_balance_and_nothing_moves_into_the_closed_month() {
        let custodian = user(3, &[Role::Staff]);
        let given =
            || vec![opened("1000.00"), settings_changed("100.00", "0.00", true, Some(Id::from_u128(3)))];
        let events = TestFramework::<Fund>::with(())
            .given(given())
            .when(count(custodian.clone(), &[("1000", 1)], true, "0"))
            .inspect_result()
            .unwrap();
        let closed = events.last().unwrap().clone();
        assert!(matches!(&closed, FundEvent::PeriodClosed { period, closing_balance, .. }
            if period.to_string() == "2026-12" && *closing_balance == d("1000.00")));
        let mut after = given();
        after.extend(events);
        TestFramework::<Fund>::with(())
            .given(after.clone())
            .when(disburse("1", "KES"))
            .then_expect_error(DomainError::PeriodClosed { period: "2026-12".into() });
        let mut next_month = disburse("1", "KES");
        if let FundCommand::Disburse { now, .. } = &mut next_month {
            *now = "2027-01-01T00:00:00Z".parse().unwrap();
        }
        assert!(TestFramework::<Fund>::with(()).given(after).when(next_month).inspect_result().is_ok());
        assert_eq!("2026-12".parse::<Period>().unwrap(), Period { year: 2026, month: 12 });
        for bad in ["2026-13", "2026-1", "26-01", "x"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_value(Period { year: 2026, month: 1 }).unwrap(), "2026-01");
    }

    #[test]
    fn closing_a_fund_returns_its_cash_to_zero_and_then_nothing_is_paid_from_it() {
        let close = |actor: Actor| FundCommand::Close { bank_reference: "DEP-9".into(), actor, now: now() };
        let returned = FundEvent::CashReturned {
            amount: d("600.00"),
            balance_after: d("0.00"),
            bank_reference: "DEP-9".into(),
            returned_by: Id::nil(),
            at: now(),
        };
        let closed = FundEvent::FundClosed { closed_by: Id::nil(), at: now() };
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("400", "600.00")])
            .when(close(admin()))
            .then_expect_events(vec![returned.clone(), closed.clone()]);
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("400", "600.00"), requested(None, "400", "600")])
            .when(close(admin()))
            .then_expect_error(DomainError::FundHasOpenItems { what: "an open replenishment request" });
        TestFramework::<Fund>::with(())
            .given(vec![opened("1000.00"), paid("400", "600.00"), returned.clone(), closed.clone()])
            .when(disburse("1", "KES"))
            .then_expect_error(DomainError::FundClosed);
        let mut book = CashBook::at(d("600.00"));
        let m = book.record(&returned).unwrap().unwrap();
        assert_eq!((m.kind, m.amount, book.balance), (MovementKind::Return, d("-600.00"), d("0.00")));
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
            now: now(),
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
            now: now(),
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
        // Released: the cash is available again; the cash book shows the reservation and its
        // release as lines of amount 0, the balance untouched.
        let mut fund = Fund::default();
        let mut book = CashBook::default();
        let mut lines = Vec::new();
        for e in [opened("100.00"), reserved(1, "60.00"), released(1, "60.00")] {
            let m = book.record(&e).unwrap().expect("each is a line of the book");
            lines.push((
                m.kind,
                m.amount,
                m.balance_after,
                m.reserved,
                m.reserved_after,
                m.available_after(),
            ));
            fund.apply(e);
        }
        let z = Decimal::ZERO;
        assert_eq!(
            lines,
            [
                (MovementKind::Opening, d("100.00"), d("100.00"), z, z, d("100.00")),
                (MovementKind::Reservation, z, d("100.00"), d("60.00"), d("60.00"), d("40.00")),
                (MovementKind::ReservationReleased, z, d("100.00"), d("-60.00"), z, d("100.00")),
            ]
        );
        assert_eq!((fund.available(), book.balance, book.computed), (d("100.00"), d("100.00"), d("100.00")));
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
