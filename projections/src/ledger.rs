//! A fund's cash book folded from its events alone, never from the read models: what
//! `pettycash-replay ledger` prints and the cash-book report's replay path
//! ([`crate::reports::cash_book`]) builds on. The fold is [`CashBook`], the same one the cash
//! projection uses, so the two can never disagree on what an event moves; reading is through
//! [`reader::in_order`] (global commit order, streamed).

use crate::event::EventRow;
use crate::reader::{self, Filter, Selection};
use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use pettycash_domain::fund::{CashBook, FundEvent, MovementKind};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One movement of cash, as `GET /api/funds/{id}/ledger` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Movement {
    pub position: i64,
    pub at: DateTime<Utc>,
    pub kind: MovementKind,
    /// Signed: positive into the fund, negative out of it (0 for a reservation's lines).
    pub amount: Decimal,
    pub balance_after: Decimal,
    pub requisition_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub reference: Option<String>,
    /// Signed change of the cash reserved for payments in flight.
    pub reserved: Decimal,
    pub reserved_after: Decimal,
    /// `balance_after − reserved_after`.
    pub available_after: Decimal,
    /// The replenishment, count or advance settlement the line comes from.
    pub source_id: Option<Uuid>,
    /// A disbursement's statement reference, when it was reconciled by the ledger's instant.
    pub reconciled_reference: Option<String>,
    pub reconciled_at: Option<DateTime<Utc>>,
}

/// A fund as folded from its events.
#[derive(Debug, Clone, Serialize)]
pub struct FundState {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub float: Decimal,
    /// The balance the events record.
    pub balance: Decimal,
    /// Its cash book (the same fold as the cash projection's).
    #[serde(skip)]
    pub book: CashBook,
}

/// Folds one fund event through its cash book; returns its movement (`None`: the event moves
/// no cash). Warns on stderr when the recorded balance differs from the one computed from the
/// amounts.
pub fn fold(
    funds: &mut BTreeMap<Uuid, FundState>,
    e: &EventRow,
    event: FundEvent,
) -> anyhow::Result<Option<Movement>> {
    let id: Uuid = e
        .aggregate_id
        .parse()
        .with_context(|| format!("fund id `{}` at {}", e.aggregate_id, e.global_position))?;
    if let FundEvent::FundOpened { name, currency, float, .. } = &event {
        let (name, currency, float) = (name.clone(), currency.to_string(), *float);
        funds.insert(id, FundState { id, name, currency, float, balance: float, book: CashBook::default() });
    }
    let fund = funds
        .get_mut(&id)
        .ok_or_else(|| anyhow::anyhow!("disbursement at {} from unopened fund {id}", e.global_position))?;
    let Some(m) = fund
        .book
        .record(&event)
        .map_err(|_| anyhow::anyhow!("movement at {} of unopened fund {id}", e.global_position))?
    else {
        return Ok(None);
    };
    if fund.book.computed != fund.book.balance {
        eprintln!(
            "warning: fund {id} at position {}: balance_after {} recorded, {} computed from the amounts",
            e.global_position, fund.book.balance, fund.book.computed
        );
    }
    fund.balance = fund.book.balance;
    Ok(Some(Movement {
        position: e.global_position,
        at: e.recorded_at,
        kind: m.kind,
        amount: m.amount,
        balance_after: m.balance_after,
        requisition_id: m.requisition_id,
        payment_id: m.payment_id,
        reference: m.reference.clone(),
        reserved: m.reserved,
        reserved_after: m.reserved_after,
        available_after: m.available_after(),
        source_id: m.source_id,
        reconciled_reference: None,
        reconciled_at: None,
    }))
}

/// The fund's movements up to `as_of`, with the running balance checked.
pub async fn ledger_movements(
    pool: &PgPool,
    fund: Uuid,
    as_of: DateTime<Utc>,
) -> anyhow::Result<Vec<Movement>> {
    let mut out = Vec::new();
    for_each_ledger(pool, fund, as_of, |m| {
        out.push(m);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Calls `f` with each of the fund's movements recorded up to `as_of`, in order; returns how
/// many there were and the fund as it stood then (`None`: not opened by then).
pub async fn for_each_ledger(
    pool: &PgPool,
    fund: Uuid,
    as_of: DateTime<Utc>,
    mut f: impl FnMut(Movement) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, Option<FundState>)> {
    let reconciled = reconciliations(pool, fund, as_of).await?;
    let read = reader::in_order(&Selection::events(), Filter::Fund { id: fund.to_string(), as_of });
    let mut rows = read.fetch::<EventRow>(pool);
    let mut funds = BTreeMap::new();
    let mut n = 0;
    while let Some(e) = rows.try_next().await? {
        let event: FundEvent = e.decode()?;
        if let Some(mut m) = fold(&mut funds, &e, event)? {
            if m.kind == MovementKind::Disbursement {
                if let Some((reference, at)) = m.payment_id.and_then(|p| reconciled.get(&p)) {
                    m.reconciled_reference = Some(reference.clone());
                    m.reconciled_at = Some(*at);
                }
            }
            f(m)?;
            n += 1;
        }
    }
    Ok((n, funds.remove(&fund)))
}

/// The fund's payments reconciled up to `as_of` (the first reconciliation of each): payment
/// id → (statement reference, when). Read before the fund's events, since a reconciliation
/// comes after the disbursement it concerns.
async fn reconciliations(
    pool: &PgPool,
    fund: Uuid,
    as_of: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<Uuid, (String, DateTime<Utc>)>> {
    use pettycash_domain::requisition::RequisitionEvent;
    let read =
        reader::in_order(&Selection::events(), Filter::Reconciliations { fund: fund.to_string(), as_of });
    let mut rows = read.fetch::<EventRow>(pool);
    let mut out = BTreeMap::new();
    while let Some(e) = rows.try_next().await? {
        if let RequisitionEvent::PaymentReconciled { payment_id, statement_reference, at, .. } = e.decode()? {
            out.entry(payment_id).or_insert((statement_reference, at));
        }
    }
    Ok(out)
}
