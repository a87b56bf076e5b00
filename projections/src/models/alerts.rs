//! `alerts` (issue #15 [reports]): raises alerts from events and resolves them when their
//! condition clears. [`Kind::SideEffecting`], like `notifications`: it writes `alerts`, their
//! history and their mail (`pettycash_commands::alerts`) in its batch transaction with its
//! checkpoint, so an event raises its alert exactly once whatever crashes; it starts at the end
//! of the store (a deployment never alerts about history) and `pettycash-replay rebuild` never
//! runs it. The partial unique index on open alerts keeps a second open alert of a type for an
//! object out even if two versions overlap.
//!
//! What raises and what clears (the object in brackets):
//!
//! | alert | raised by | resolved by itself by |
//! |---|---|---|
//! | `fund_low`, `fund_critical` (fund) | a movement or settings change that puts the balance below the reorder level / below 80 % of it or the minimum (`domain::alert::fund_level`) | a movement or settings change that lifts it (e.g. `ReplenishmentFunded`); a fund that goes from low to critical resolves `fund_low` and raises `fund_critical`; `FundClosed` |
//! | `replenishment_needed` (fund) | `ReplenishmentRequested` | `ReplenishmentFunded`, `ReplenishmentRejected`, `FundClosed` |
//! | `variance_pending` (count) | the scheduler, `alert_variance_pending_hours` after `CashCounted` | `VarianceAdjusted`, `VarianceRejected` |
//! | `large_payment` (requisition) | `CashDisbursed` above `alert_large_payment_above` | — (resolved by a person) |
//! | `payment_failed`, `payment_timeout` (requisition) | `PaymentFailed`, `PaymentTimedOut` | `RequisitionPaid`; rejected or cancelled (it will not be paid); `payment_timeout` also `PaymentFailed` (the provider answered) |
//! | `otp_failures` (requisition) | the `alert_otp_failures`-th `PaymentCodeRejected` by one payer within `alert_otp_window_minutes` | `RequisitionPaid`; rejected or cancelled |
//! | `approval_overdue` (requisition) | `ApprovalOverdue` | the step acted on (approved, rejected, sent back, overridden, cancelled, expired) |
//! | `receipt_missing` (requisition) | `ReceiptOverdue` | `ReceiptAttached` |
//! | `budget_exceeded` (requisition) | `BudgetExceeded` | rejected or cancelled (it will not spend); `RequisitionSubmitted` with no `BudgetExceeded` before it (submitted again within its budgets); `BudgetSet` raising every budget it exceeds to at least what the budget had consumed when it was flagged plus the requisition's amount |
//! | `advance_overdue` (advance) | `AdvanceOverdue` | `AdvanceSettled` leaving nothing outstanding |
//!
//! **Its memory is in tables, not in the process**: each fund's figures and the level it last
//! alerted on (`alert_funds`, so that only a change of level writes anything), the counts whose
//! variance waits (`alert_pending_variances`, for the scheduler), the budgets an open
//! `budget_exceeded` alert's requisition exceeds and what each must reach
//! (`alert_budget_flags`), wrong codes
//! (`alert_code_failures`). A fund met for the first time is folded from its stream once; its
//! level starts as "not alerted", so a fund already low when the projection started alerts at
//! its next movement. Requisitions that raise an alert in a batch are folded from their streams
//! (like `notifications`) for their company, units, requester, payer and approvers, and so is
//! one submitted again while its `budget_exceeded` alert is open (for that round's flags).

use crate::event::EventRow;
use crate::{reader, Kind, Phase, Projection};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use pettycash_commands::alerts::{raise, resolve_cleared, NewAlert};
use pettycash_commands::mail::Links;
use pettycash_domain::advance::{AdvanceAccount, AdvanceEvent};
use pettycash_domain::alert::{fund_level, AlertState, AlertType};
use pettycash_domain::budget::{BudgetEvent, BudgetPlan};
use pettycash_domain::fund::{Fund, FundEvent};
use pettycash_domain::payment::CodeProblem;
use pettycash_domain::requisition::{Requisition, RequisitionEvent};
use pettycash_domain::settings::AlertSettings;
use pettycash_domain::{Id, Role};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const NAME: &str = "alerts";

pub struct Alerts {
    version: i32,
    generation: i32,
    links: Links,
    /// A batch enqueued mail: wake the sender once it is committed.
    enqueued: AtomicBool,
}

impl Alerts {
    pub fn new(version: i32, links: Links) -> Self {
        Self::at(version, 0, links)
    }

    fn at(version: i32, generation: i32, links: Links) -> Self {
        Self { version, generation, links, enqueued: AtomicBool::new(false) }
    }
}

/// What the projection knows of a fund (a row of `alert_funds`).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
struct FundRow {
    fund_id: Id,
    sequence: i64,
    name: String,
    currency: String,
    company_id: Option<Id>,
    branch_id: Option<Id>,
    department_id: Option<Id>,
    custodian_id: Option<Id>,
    reorder_level: Option<Decimal>,
    minimum_balance: Decimal,
    balance: Decimal,
    level: Option<String>,
    closed: bool,
}

impl FundRow {
    /// Folds one event's figures in (no alerting).
    fn apply(&mut self, e: &FundEvent) {
        match e {
            FundEvent::FundOpened {
                fund_id,
                name,
                currency,
                float,
                custodian_id,
                unit,
                reorder_level,
                minimum_balance,
                ..
            } => {
                self.fund_id = *fund_id;
                self.name = name.clone();
                self.currency = currency.to_string();
                self.balance = *float;
                self.custodian_id = *custodian_id;
                self.company_id = unit.map(|u| u.company);
                self.branch_id = unit.and_then(|u| u.branch);
                self.department_id = unit.and_then(|u| u.department);
                self.reorder_level = *reorder_level;
                self.minimum_balance = minimum_balance.unwrap_or_default();
            }
            FundEvent::FundSettingsChanged { reorder_level, minimum_balance, custodian_id, .. } => {
                self.reorder_level = *reorder_level;
                self.minimum_balance = *minimum_balance;
                self.custodian_id = *custodian_id;
            }
            FundEvent::CashDisbursed { balance_after, .. }
            | FundEvent::ReplenishmentFunded { balance_after, .. }
            | FundEvent::VarianceAdjusted { balance_after, .. }
            | FundEvent::CashReturned { balance_after, .. }
            | FundEvent::AdvanceCashReturned { balance_after, .. } => self.balance = *balance_after,
            FundEvent::FundClosed { .. } => self.closed = true,
            FundEvent::CashReserved { .. }
            | FundEvent::ReservationReleased { .. }
            | FundEvent::ReplenishmentRequested { .. }
            | FundEvent::ReplenishmentApproved { .. }
            | FundEvent::ReplenishmentRejected { .. }
            | FundEvent::CashCounted { .. }
            | FundEvent::VarianceRejected { .. }
            | FundEvent::PeriodClosed { .. } => {}
        }
    }

    fn money(&self, amount: Decimal) -> String {
        format!("{} {}", amount.round_dp(2), self.currency)
    }

    /// An alert about this fund, for its custodian and `roles` of its company.
    fn alert(&self, alert_type: AlertType, message: String, roles: Vec<Role>, e: &EventRow) -> NewAlert {
        NewAlert {
            alert_type,
            object_id: self.fund_id,
            company_id: self.company_id,
            fund_id: Some(self.fund_id),
            branch_id: self.branch_id,
            department_id: self.department_id,
            responsible: self.custodian_id.into_iter().collect(),
            mail_responsible: true,
            roles,
            message,
            source_position: Some(e.global_position),
            at: e.recorded_at,
        }
    }
}

/// One batch's work: the open alerts of its objects (so that clearing costs a statement only
/// when something is open), and whether mail was written.
struct Batch<'a> {
    links: &'a Links,
    open: HashSet<(AlertType, String)>,
    mailed: bool,
}

impl Batch<'_> {
    async fn raise(&mut self, tx: &mut PgConnection, alert: NewAlert) -> anyhow::Result<()> {
        let (id, mailed) = raise(tx, &alert, self.links).await.context("raising an alert")?;
        self.mailed |= mailed;
        if id.is_some() {
            self.open.insert((alert.alert_type, alert.object_id.to_string()));
        }
        Ok(())
    }

    async fn clear(
        &mut self,
        tx: &mut PgConnection,
        alert_type: AlertType,
        object_id: Id,
        note: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if self.open.remove(&(alert_type, object_id.to_string())) {
            resolve_cleared(tx, alert_type, object_id, note, at).await.context("resolving an alert")?;
        }
        Ok(())
    }
}

/// One event of the batch, decoded.
enum Decoded {
    Fund(Id, FundEvent),
    Requisition(Id, RequisitionEvent),
    Advance(Id, AdvanceEvent),
    Budget(BudgetEvent),
}

/// Requisition events that raise an alert (the requisition is folded for them).
fn raises(e: &RequisitionEvent) -> bool {
    matches!(
        e,
        RequisitionEvent::PaymentFailed { .. }
            | RequisitionEvent::PaymentTimedOut { .. }
            | RequisitionEvent::PaymentCodeRejected { .. }
            | RequisitionEvent::ApprovalOverdue { .. }
            | RequisitionEvent::ReceiptOverdue { .. }
            | RequisitionEvent::BudgetExceeded { .. }
    )
}

#[async_trait]
impl Projection for Alerts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        self.version
    }

    fn generation(&self) -> i32 {
        self.generation
    }

    fn at_generation(&self, generation: i32) -> Arc<dyn Projection> {
        Arc::new(Self::at(self.version, generation, self.links.clone()))
    }

    fn kind(&self) -> Kind {
        Kind::SideEffecting
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Fund::TYPE, Requisition::TYPE, AdvanceAccount::TYPE, BudgetPlan::TYPE])
    }

    fn uses_metadata(&self) -> bool {
        false
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn create_tables(&self) -> Vec<String> {
        Vec::new()
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        _after: i64,
        _phase: Phase,
        events: &[EventRow],
    ) -> anyhow::Result<()> {
        let mut decoded = Vec::new();
        for e in events {
            let Ok(id) = e.aggregate_id.parse::<Id>() else { continue };
            let d = match e.aggregate_type.as_str() {
                t if t == Fund::TYPE => Decoded::Fund(id, e.decode()?),
                t if t == Requisition::TYPE => Decoded::Requisition(id, e.decode()?),
                t if t == AdvanceAccount::TYPE => Decoded::Advance(id, e.decode()?),
                t if t == BudgetPlan::TYPE => Decoded::Budget(e.decode()?),
                _ => continue,
            };
            decoded.push((e, d));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut batch = Batch { links: &self.links, open: HashSet::new(), mailed: false };
        batch.open = open_alerts(tx, &decoded).await.context("reading the open alerts")?;
        let mut funds = funds(tx, &decoded).await.context("reading the funds")?;
        let mut reqs = requisitions(tx, &decoded, &batch.open).await.context("folding the requisitions")?;
        let mut settings: Option<AlertSettings> = None;
        let touched: HashSet<Id> = funds.keys().copied().collect();

        for (e, d) in &decoded {
            match d {
                Decoded::Fund(id, event) => {
                    let Some(fund) = funds.get_mut(id) else { continue };
                    if e.sequence <= fund.sequence {
                        continue;
                    }
                    fund.apply(event);
                    fund.sequence = e.sequence;
                    self.on_fund(tx, &mut batch, &mut settings, fund, e, event).await?;
                }
                Decoded::Requisition(id, event) => {
                    // The state before this event (a failed payment's payer is in it).
                    if let Some(req) = reqs.get(id) {
                        if raises(event) {
                            let req = req.clone();
                            self.on_requisition_raise(tx, &mut batch, &mut settings, *id, &req, e, event)
                                .await?;
                        }
                    }
                    if let Some(req) = reqs.get_mut(id) {
                        req.apply(event.clone());
                    }
                    on_requisition_clear(tx, &mut batch, *id, reqs.get(id), e, event).await?;
                }
                Decoded::Advance(holder, event) => match event {
                    AdvanceEvent::AdvanceOverdue { requisition_id, due_at, outstanding, .. } => {
                        let req = reqs.get(requisition_id).cloned().unwrap_or_default();
                        let currency = req.currency.as_ref().map(|c| c.to_string()).unwrap_or_default();
                        let message = format!(
                            "The advance of requisition {requisition_id} ({}) was due to be settled by {}; \
                             {} {currency} is still outstanding.",
                            req.purpose,
                            due_at.format("%Y-%m-%d %H:%M UTC"),
                            outstanding.round_dp(2)
                        );
                        let mut alert =
                            requisition_alert(AlertType::AdvanceOverdue, *requisition_id, &req, message, e);
                        alert.responsible = vec![*holder];
                        // `notifications` mailed the holder a reminder for this event.
                        alert.mail_responsible = false;
                        alert.roles = vec![Role::Treasury];
                        batch.raise(tx, alert).await?;
                    }
                    AdvanceEvent::AdvanceSettled { requisition_id, outstanding_after, .. }
                        if outstanding_after.is_zero() =>
                    {
                        let note = "Settled: nothing is outstanding any more.";
                        batch
                            .clear(tx, AlertType::AdvanceOverdue, *requisition_id, note, e.recorded_at)
                            .await?;
                    }
                    _ => {}
                },
                Decoded::Budget(event) => on_budget(tx, e, event).await?,
            }
        }
        save_funds(tx, funds.values().filter(|f| touched.contains(&f.fund_id)))
            .await
            .context("saving the funds")?;
        if batch.mailed {
            self.enqueued.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn after_commit(&self) {
        if self.enqueued.swap(false, Ordering::Relaxed) {
            pettycash_commands::mail::enqueued();
        }
    }
}

impl Alerts {
    async fn on_fund(
        &self,
        tx: &mut PgConnection,
        batch: &mut Batch<'_>,
        settings: &mut Option<AlertSettings>,
        fund: &mut FundRow,
        e: &EventRow,
        event: &FundEvent,
    ) -> anyhow::Result<()> {
        let at = e.recorded_at;
        match event {
            FundEvent::CashDisbursed { requisition_id, amount, paid_by, .. } => {
                let above = alert_settings(tx, settings).await?.large_payment_above;
                if above > 0 && *amount > Decimal::from(above) {
                    let message = format!(
                        "A payment of {} from fund {} (requisition {requisition_id}) is above {}.",
                        fund.money(*amount),
                        fund.name,
                        fund.money(Decimal::from(above))
                    );
                    let mut alert = fund.alert(AlertType::LargePayment, message, vec![Role::Treasury], e);
                    alert.object_id = *requisition_id;
                    alert.responsible = vec![*paid_by];
                    batch.raise(tx, alert).await?;
                }
            }
            FundEvent::ReplenishmentRequested { amount, balance, .. } => {
                let message = format!(
                    "A replenishment of {} was requested for fund {} (balance {}).",
                    fund.money(*amount),
                    fund.name,
                    fund.money(*balance)
                );
                let alert =
                    fund.alert(AlertType::ReplenishmentNeeded, message, vec![Role::Treasury, Role::Cfo], e);
                batch.raise(tx, alert).await?;
            }
            FundEvent::ReplenishmentFunded { amount, .. } => {
                let note = format!("Replenished with {}.", fund.money(*amount));
                batch.clear(tx, AlertType::ReplenishmentNeeded, fund.fund_id, &note, at).await?;
            }
            FundEvent::ReplenishmentRejected { .. } => {
                let note = "The replenishment request was rejected.";
                batch.clear(tx, AlertType::ReplenishmentNeeded, fund.fund_id, note, at).await?;
            }
            FundEvent::CashCounted { count_id, variance, at: counted_at, .. } if !variance.is_zero() => {
                sqlx::query(
                    "INSERT INTO alert_pending_variances (count_id, fund_id, counted_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(count_id)
                .bind(fund.fund_id)
                .bind(counted_at)
                .execute(&mut *tx)
                .await?;
            }
            FundEvent::VarianceAdjusted { count_id, .. } | FundEvent::VarianceRejected { count_id, .. } => {
                sqlx::query("DELETE FROM alert_pending_variances WHERE count_id = $1")
                    .bind(count_id)
                    .execute(&mut *tx)
                    .await?;
                let note = if matches!(event, FundEvent::VarianceAdjusted { .. }) {
                    "The variance was approved and adjusted."
                } else {
                    "The variance was rejected."
                };
                // Raised by the scheduler after this batch's open alerts were read: ask the table.
                resolve_cleared(tx, AlertType::VariancePending, *count_id, note, at).await?;
            }
            FundEvent::FundClosed { .. } => {
                for t in [AlertType::FundLow, AlertType::FundCritical, AlertType::ReplenishmentNeeded] {
                    batch.clear(tx, t, fund.fund_id, "The fund was closed.", at).await?;
                }
                fund.level = None;
                return Ok(());
            }
            _ => {}
        }
        // Its cash goes back to the bank on closing (`FundClosed` follows): no alert for it.
        if fund.closed || matches!(event, FundEvent::CashReturned { .. }) {
            return Ok(());
        }
        self.judge(tx, batch, fund, e).await
    }

    /// Raises or clears `fund_low` / `fund_critical` when the fund's level changed.
    async fn judge(
        &self,
        tx: &mut PgConnection,
        batch: &mut Batch<'_>,
        fund: &mut FundRow,
        e: &EventRow,
    ) -> anyhow::Result<()> {
        let level = fund_level(fund.balance, fund.reorder_level, fund.minimum_balance);
        if level.map(AlertType::as_str) == fund.level.as_deref() {
            return Ok(());
        }
        for t in [AlertType::FundLow, AlertType::FundCritical] {
            if Some(t) != level {
                let note = match level {
                    Some(now) => format!("The fund is now {} (balance {}).", now, fund.money(fund.balance)),
                    None => format!(
                        "The balance is back at {}{}.",
                        fund.money(fund.balance),
                        fund.reorder_level
                            .map(|r| format!(", at or above the reorder level {}", fund.money(r)))
                            .unwrap_or_default()
                    ),
                };
                batch.clear(tx, t, fund.fund_id, &note, e.recorded_at).await?;
            }
        }
        if let Some(t) = level {
            let mut why = Vec::new();
            if let Some(r) = fund.reorder_level {
                why.push(format!("its reorder level is {}", fund.money(r)));
            }
            if fund.minimum_balance > Decimal::ZERO {
                why.push(format!("its minimum balance {}", fund.money(fund.minimum_balance)));
            }
            let message =
                format!("Fund {} holds {}; {}.", fund.name, fund.money(fund.balance), why.join(" and "));
            let alert = fund.alert(t, message, vec![Role::Treasury], e);
            batch.raise(tx, alert).await?;
        }
        fund.level = level.map(|l| l.as_str().to_string());
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_requisition_raise(
        &self,
        tx: &mut PgConnection,
        batch: &mut Batch<'_>,
        settings: &mut Option<AlertSettings>,
        id: Id,
        req: &Requisition,
        e: &EventRow,
        event: &RequisitionEvent,
    ) -> anyhow::Result<()> {
        use RequisitionEvent as E;
        let what = format!(
            "requisition {id} ({}, {} {})",
            req.purpose,
            req.amount.round_dp(2),
            req.currency.as_ref().map(|c| c.to_string()).unwrap_or_default()
        );
        let payer: Vec<Id> = req.payment_in_flight.iter().map(|p| p.paid_by).collect();
        let (alert_type, message, responsible, roles) = match event {
            E::PaymentFailed { reason, .. } => (
                AlertType::PaymentFailed,
                format!("The payment of {what} failed: {reason}."),
                payer,
                vec![Role::Treasury],
            ),
            E::PaymentTimedOut { minutes, .. } => (
                AlertType::PaymentTimeout,
                format!("The payment of {what} has had no result from the provider for {minutes} minutes."),
                payer,
                vec![Role::Treasury],
            ),
            E::PaymentCodeRejected { payer_id, problem, .. } => {
                if matches!(problem, CodeProblem::Missing | CodeProblem::NotIssued) {
                    return Ok(());
                }
                let s = *alert_settings(tx, settings).await?;
                sqlx::query(
                    "INSERT INTO alert_code_failures (requisition_id, payer_id, at) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(payer_id)
                .bind(e.recorded_at)
                .execute(&mut *tx)
                .await?;
                let failures: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM alert_code_failures WHERE requisition_id = $1 AND payer_id = $2 AND at > $3",
                )
                .bind(id)
                .bind(payer_id)
                .bind(e.recorded_at - chrono::Duration::minutes(i64::from(s.otp_window_minutes)))
                .fetch_one(&mut *tx)
                .await?;
                if failures < i64::from(s.otp_failures) {
                    return Ok(());
                }
                (
                    AlertType::OtpFailures,
                    format!(
                        "{failures} payment codes for {what} were refused within {} minutes (the latest: {}).",
                        s.otp_window_minutes,
                        problem.message()
                    ),
                    vec![*payer_id],
                    vec![Role::Treasury, Role::Admin],
                )
            }
            E::ApprovalOverdue { step, role } => {
                // The people routing recorded for the step (none recorded: the company's
                // readers see it); their reminder is `notifications`' mail.
                let eligible = req.eligible.as_ref().and_then(|l| l.get(*step)).cloned();
                (
                    AlertType::ApprovalOverdue,
                    format!("Step {} ({role}) of {what} has waited past its reminder time.", step + 1),
                    eligible.unwrap_or_default(),
                    vec![],
                )
            }
            E::ReceiptOverdue { days } => (
                AlertType::ReceiptMissing,
                format!("{what} was paid {days} day(s) ago or more and has no receipt."),
                req.requester_id.into_iter().collect(),
                vec![],
            ),
            E::BudgetExceeded { month, budget, consumed, amount, .. } => (
                AlertType::BudgetExceeded,
                format!(
                    "{what} would exceed a budget of {} for {month}: {} is consumed already, {} more asked.",
                    budget.round_dp(2),
                    consumed.round_dp(2),
                    amount.round_dp(2)
                ),
                vec![],
                vec![Role::Fpa],
            ),
            _ => return Ok(()),
        };
        if let E::BudgetExceeded { budget_id, consumed, amount, .. } = event {
            // What the budget must reach for this flag to clear (see `on_budget`).
            sqlx::query(
                "INSERT INTO alert_budget_flags (requisition_id, budget_id, needed) VALUES ($1, $2, $3)
                 ON CONFLICT (requisition_id, budget_id) DO UPDATE SET needed = EXCLUDED.needed",
            )
            .bind(id)
            .bind(budget_id)
            .bind(consumed + amount)
            .execute(&mut *tx)
            .await
            .context("recording a budget flag")?;
        }
        let mut alert = requisition_alert(alert_type, id, req, message, e);
        alert.responsible = responsible;
        // `notifications` mailed the approvers and the requester a reminder for these events.
        alert.mail_responsible =
            !matches!(alert_type, AlertType::ApprovalOverdue | AlertType::ReceiptMissing);
        alert.roles = roles;
        batch.raise(tx, alert).await
    }
}

/// Clears what a requisition's event resolves (`req`: the requisition after the event, when
/// the batch folded it).
async fn on_requisition_clear(
    tx: &mut PgConnection,
    batch: &mut Batch<'_>,
    id: Id,
    req: Option<&Requisition>,
    e: &EventRow,
    event: &RequisitionEvent,
) -> anyhow::Result<()> {
    use RequisitionEvent as E;
    let at = e.recorded_at;
    match event {
        E::RequisitionPaid { .. } => {
            for t in [AlertType::PaymentFailed, AlertType::PaymentTimeout, AlertType::OtpFailures] {
                batch.clear(tx, t, id, "The requisition was paid.", at).await?;
            }
        }
        E::PaymentFailed { .. } => {
            // A timeout means "no answer from the provider yet"; a failure is its answer, and
            // `payment_failed` (raised by this event) is what is left to act on.
            let note = "The provider answered: the payment failed.";
            batch.clear(tx, AlertType::PaymentTimeout, id, note, at).await?;
        }
        // This round's flags are the `BudgetExceeded` events just before it (folded into
        // `budget_exceeded` by now): none, and it no longer exceeds a budget. A requisition the
        // batch did not fold had no alert open (see `requisitions`).
        E::RequisitionSubmitted { .. } if req.is_some_and(|r| r.budget_exceeded.is_empty()) => {
            let note = "Submitted again within its budgets.";
            forget_budget_flags(tx, batch, id, &[]).await?;
            batch.clear(tx, AlertType::BudgetExceeded, id, note, at).await?;
        }
        // Submitted again over some budgets: only this round's flags can clear it now.
        E::RequisitionSubmitted { .. } => {
            if let Some(r) = req {
                let current: Vec<Id> = r.budget_exceeded.iter().map(|f| f.budget_id).collect();
                forget_budget_flags(tx, batch, id, &current).await?;
            }
        }
        E::RequisitionApproved { .. }
        | E::ApprovalOverridden { .. }
        | E::ChangesRequested { .. }
        | E::RequisitionExpired { .. } => {
            batch.clear(tx, AlertType::ApprovalOverdue, id, "The step was acted on.", at).await?;
        }
        E::RequisitionRejected { .. } | E::RequisitionCancelled { .. } => {
            let note = if matches!(event, E::RequisitionRejected { .. }) {
                "The requisition was rejected."
            } else {
                "The requisition was cancelled."
            };
            forget_budget_flags(tx, batch, id, &[]).await?;
            // It will not be paid: nothing is left to act on about its payment either.
            for t in [
                AlertType::ApprovalOverdue,
                AlertType::BudgetExceeded,
                AlertType::PaymentFailed,
                AlertType::PaymentTimeout,
                AlertType::OtpFailures,
            ] {
                batch.clear(tx, t, id, note, at).await?;
            }
        }
        E::ReceiptAttached { .. } => {
            batch.clear(tx, AlertType::ReceiptMissing, id, "A receipt was attached.", at).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Forgets the budget flags of requisition `id` other than those of budgets `keep` (its
/// current round's), when its `budget_exceeded` alert is open (flags exist only then).
async fn forget_budget_flags(
    tx: &mut PgConnection,
    batch: &Batch<'_>,
    id: Id,
    keep: &[Id],
) -> anyhow::Result<()> {
    if batch.open.contains(&(AlertType::BudgetExceeded, id.to_string())) {
        sqlx::query("DELETE FROM alert_budget_flags WHERE requisition_id = $1 AND NOT budget_id = ANY ($2)")
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .context("forgetting budget flags")?;
    }
    Ok(())
}

/// A budget set (again): the flags it now covers clear (the amount reaches what was consumed
/// when the requisition was flagged plus its amount), and a `budget_exceeded` alert whose
/// last flag cleared resolves itself.
async fn on_budget(tx: &mut PgConnection, e: &EventRow, event: &BudgetEvent) -> anyhow::Result<()> {
    let BudgetEvent::BudgetSet { budget_id, scope, month, currency, amount, .. } = event;
    // The statement sees the flags as they were before its delete: a requisition is cleared
    // when it had no flag of another budget.
    let cleared: Vec<Id> = sqlx::query_scalar(
        "WITH cleared AS (DELETE FROM alert_budget_flags WHERE budget_id = $1 AND needed <= $2
                          RETURNING requisition_id)
         SELECT c.requisition_id FROM cleared c
         WHERE NOT EXISTS (SELECT 1 FROM alert_budget_flags f
                           WHERE f.requisition_id = c.requisition_id AND f.budget_id <> $1)",
    )
    .bind(budget_id)
    .bind(amount)
    .fetch_all(&mut *tx)
    .await
    .context("clearing budget flags")?;
    if !cleared.is_empty() {
        let note = format!(
            "The {} budget for {month} was raised to {} {currency}.",
            scope.kind.as_str().replace('_', " "),
            amount.round_dp(2)
        );
        for id in cleared {
            resolve_cleared(tx, AlertType::BudgetExceeded, id, &note, e.recorded_at)
                .await
                .context("resolving an alert")?;
        }
    }
    Ok(())
}

/// An alert about requisition `id` (`req` folded), of its company and units.
fn requisition_alert(
    alert_type: AlertType,
    id: Id,
    req: &Requisition,
    message: String,
    e: &EventRow,
) -> NewAlert {
    NewAlert {
        alert_type,
        object_id: id,
        company_id: req.unit.map(|u| u.company),
        fund_id: req.fund_id,
        branch_id: req.unit.and_then(|u| u.branch),
        department_id: req.unit.and_then(|u| u.department),
        responsible: vec![],
        mail_responsible: true,
        roles: vec![],
        message,
        source_position: Some(e.global_position),
        at: e.recorded_at,
    }
}

/// The alert settings, read once per batch that needs them.
async fn alert_settings<'s>(
    tx: &mut PgConnection,
    cached: &'s mut Option<AlertSettings>,
) -> anyhow::Result<&'s AlertSettings> {
    if cached.is_none() {
        *cached = Some(super::notifications::settings(tx).await?.alerts);
    }
    Ok(cached.as_ref().expect("just read"))
}

/// The open alerts of the objects the batch's events concern.
async fn open_alerts(
    tx: &mut PgConnection,
    decoded: &[(&EventRow, Decoded)],
) -> sqlx::Result<HashSet<(AlertType, String)>> {
    let mut ids: HashSet<String> = HashSet::new();
    for (_, d) in decoded {
        match d {
            Decoded::Fund(id, event) => {
                ids.insert(id.to_string());
                if let FundEvent::CashDisbursed { requisition_id, .. } = event {
                    ids.insert(requisition_id.to_string());
                }
            }
            Decoded::Requisition(id, _) => {
                ids.insert(id.to_string());
            }
            Decoded::Advance(_, AdvanceEvent::AdvanceOverdue { requisition_id, .. })
            | Decoded::Advance(_, AdvanceEvent::AdvanceSettled { requisition_id, .. }) => {
                ids.insert(requisition_id.to_string());
            }
            Decoded::Advance(..) | Decoded::Budget(_) => {}
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let rows: Vec<(AlertType, String)> =
        sqlx::query_as("SELECT alert_type, object_id FROM alerts WHERE state <> $2 AND object_id = ANY ($1)")
            .bind(&ids)
            .bind(AlertState::Resolved)
            .fetch_all(&mut *tx)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The funds the batch's fund events concern, as the projection knows them before the batch:
/// from `alert_funds`, or (met for the first time, or after a gap: a new version starting at
/// the end) folded from their streams up to the batch.
async fn funds(
    tx: &mut PgConnection,
    decoded: &[(&EventRow, Decoded)],
) -> anyhow::Result<HashMap<Id, FundRow>> {
    let mut first: BTreeMap<Id, i64> = BTreeMap::new();
    for (e, d) in decoded {
        if let Decoded::Fund(id, _) = d {
            first.entry(*id).or_insert(e.sequence);
        }
    }
    if first.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Id> = first.keys().copied().collect();
    let rows: Vec<FundRow> = sqlx::query_as("SELECT * FROM alert_funds WHERE fund_id = ANY ($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut funds: HashMap<Id, FundRow> = rows
        .into_iter()
        .filter(|f| first.get(&f.fund_id).is_some_and(|s| f.sequence >= s - 1))
        .map(|f| (f.fund_id, f))
        .collect();
    let missing: Vec<(String, i64)> =
        first.iter().filter(|(id, _)| !funds.contains_key(id)).map(|(id, s)| (id.to_string(), *s)).collect();
    if !missing.is_empty() {
        // A stale row keeps the level it alerted on (its alert may still be open).
        let levels: HashMap<Id, Option<String>> = sqlx::query_as::<_, (Id, Option<String>)>(
            "SELECT fund_id, level FROM alert_funds WHERE fund_id = ANY ($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        for (id, sequence) in &missing {
            let fund_id: Id = id.parse()?;
            funds.insert(
                fund_id,
                FundRow {
                    fund_id,
                    sequence: sequence - 1,
                    level: levels.get(&fund_id).cloned().flatten(),
                    ..Default::default()
                },
            );
        }
        for e in reader::stream_prefixes(&mut *tx, Fund::TYPE, &missing).await? {
            let fund_id: Id = e.aggregate_id.parse()?;
            if let Some(f) = funds.get_mut(&fund_id) {
                f.apply(&e.decode()?);
            }
        }
    }
    Ok(funds)
}

/// Writes the funds back.
async fn save_funds<'a>(tx: &mut PgConnection, funds: impl Iterator<Item = &'a FundRow>) -> sqlx::Result<()> {
    for f in funds {
        sqlx::query(
            "INSERT INTO alert_funds (fund_id, sequence, name, currency, company_id, branch_id, department_id,
                                      custodian_id, reorder_level, minimum_balance, balance, level, closed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (fund_id) DO UPDATE SET
                sequence = excluded.sequence, name = excluded.name, currency = excluded.currency,
                company_id = excluded.company_id, branch_id = excluded.branch_id,
                department_id = excluded.department_id, custodian_id = excluded.custodian_id,
                reorder_level = excluded.reorder_level, minimum_balance = excluded.minimum_balance,
                balance = excluded.balance, level = excluded.level, closed = excluded.closed",
        )
        .bind(f.fund_id)
        .bind(f.sequence)
        .bind(&f.name)
        .bind(&f.currency)
        .bind(f.company_id)
        .bind(f.branch_id)
        .bind(f.department_id)
        .bind(f.custodian_id)
        .bind(f.reorder_level)
        .bind(f.minimum_balance)
        .bind(f.balance)
        .bind(&f.level)
        .bind(f.closed)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The requisitions that raise an alert in the batch (and those whose advance is overdue, and
/// those submitted again with a `budget_exceeded` alert `open`), as they stood before the
/// batch (each one's first event in it), folded from the store.
async fn requisitions(
    tx: &mut PgConnection,
    decoded: &[(&EventRow, Decoded)],
    open: &HashSet<(AlertType, String)>,
) -> anyhow::Result<HashMap<Id, Requisition>> {
    let mut wanted: HashSet<Id> = HashSet::new();
    for (_, d) in decoded {
        match d {
            Decoded::Requisition(id, event) if raises(event) => {
                wanted.insert(*id);
            }
            Decoded::Requisition(id, RequisitionEvent::RequisitionSubmitted { .. })
                if open.contains(&(AlertType::BudgetExceeded, id.to_string())) =>
            {
                wanted.insert(*id);
            }
            Decoded::Advance(_, AdvanceEvent::AdvanceOverdue { requisition_id, .. }) => {
                wanted.insert(*requisition_id);
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut first: BTreeMap<Id, i64> = wanted.iter().map(|id| (*id, i64::MAX)).collect();
    for (e, d) in decoded {
        if let Decoded::Requisition(id, _) = d {
            if let Some(s) = first.get_mut(id) {
                *s = (*s).min(e.sequence);
            }
        }
    }
    let before: Vec<(String, i64)> = first.iter().map(|(id, s)| (id.to_string(), *s)).collect();
    let mut states: HashMap<Id, Requisition> = HashMap::new();
    for e in reader::stream_prefixes(&mut *tx, Requisition::TYPE, &before).await? {
        states.entry(e.aggregate_id.parse()?).or_default().apply(e.decode()?);
    }
    for id in wanted {
        states.entry(id).or_default();
    }
    Ok(states)
}
