//! Payments through a provider (bank, mobile money; issue #14 [treasury]): the command side of
//! their lifecycle, `executing` → `succeeded` | `failed`.
//!
//! - [`CommandService::start_provider_payment`]: the payer's checks and one-time code as for
//!   cash; then, in one transaction, `PaymentStarted` on the requisition (which blocks another
//!   payment), `CashReserved` on the fund (checked against the fund's AVAILABLE balance, the
//!   fund stream's sequence serialising concurrent reservations), the `provider_payments` row
//!   and the code's use.
//! - [`CommandService::settle_provider_payment`]: the provider's final result. Success:
//!   `RequisitionPaid` and a `CashDisbursed` that consumes exactly the reservation; failure:
//!   `PaymentFailed` (approved again) and `ReservationReleased`. Idempotent: a result for a
//!   payment no longer executing changes nothing (`changed: false`), also when two results race
//!   (the loser re-runs on the settled state).
//!
//! - [`CommandService::time_out_provider_payments`] (the scheduler): a payment still executing
//!   `payment_timeout_minutes` after it started gets `PaymentTimedOut` once (for the alert of
//!   [reports]); its cash stays reserved.
//!
//! **Not here yet** (see the report of the branch): the provider interface and its simulator,
//! the authenticated callback endpoint, the status query and retries after a timeout,
//! reconciliation and the payments read model. Until a provider is wired, the
//! API refuses `bank` and `mobile_money` (`payments::paid_at_once`).

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::{CommandService, Source};
use crate::store::{decide, AppendError, SideWrite, StreamAppend};
use crate::Outcome;
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{FundCommand, PaymentMethod};
use pettycash_domain::requisition::{Requisition, RequisitionCommand};
use pettycash_domain::{DomainError, Id};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

/// A provider's final answer on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderResult {
    /// The money left: the provider's transaction id.
    Succeeded { transaction_id: String },
    /// It did not, for good: the provider's result code and description.
    Failed { result_code: String, description: String },
}

/// A payment through a provider, as a command answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderPaymentView {
    pub id: Uuid,
    pub requisition_id: Uuid,
    pub fund_id: Uuid,
    #[schema(value_type = String, example = "mobile_money")]
    pub method: PaymentMethod,
    #[schema(value_type = String, example = "1250.00")]
    pub amount: Decimal,
    pub currency: String,
    /// `executing`, `succeeded` or `failed`.
    pub status: String,
    /// False when the command found the payment settled already and changed nothing.
    pub changed: bool,
    /// The fund's available balance after the command (when it touched the fund).
    #[schema(value_type = Option<String>)]
    pub fund_available_after: Option<Decimal>,
    pub position: i64,
}

/// A write on `provider_payments`, in the transaction of the events it goes with.
#[derive(Debug, Clone)]
pub enum ProviderWrite {
    Start {
        id: Id,
        requisition_id: Id,
        fund_id: Id,
        method: PaymentMethod,
        amount: Decimal,
        currency: String,
        paid_by: Id,
        at: DateTime<Utc>,
    },
    /// Marks it timed out; refused (`not_due_yet`) unless still executing and not timed out.
    TimedOut { id: Id, at: DateTime<Utc> },
    /// Refused (`payment_not_in_flight`) unless the row is still executing.
    Settle {
        id: Id,
        succeeded: bool,
        provider_reference: Option<String>,
        result_code: String,
        at: DateTime<Utc>,
    },
}

pub(crate) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    write: ProviderWrite,
) -> Result<(), AppendError> {
    match write {
        ProviderWrite::Start { id, requisition_id, fund_id, method, amount, currency, paid_by, at } => {
            sqlx::query(
                "INSERT INTO provider_payments (id, requisition_id, fund_id, method, amount, currency, status,
                                                paid_by, started_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'executing', $7, $8, $8)",
            )
            .bind(id)
            .bind(requisition_id)
            .bind(fund_id)
            .bind(method.as_str())
            .bind(amount)
            .bind(currency)
            .bind(paid_by)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            Ok(())
        }
        ProviderWrite::TimedOut { id, at } => {
            let done = sqlx::query(
                "UPDATE provider_payments SET timed_out_at = $2, updated_at = $2
                 WHERE id = $1 AND status = 'executing' AND timed_out_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            if done.rows_affected() == 0 {
                return Err(AppendError::Rule(DomainError::NotDueYet));
            }
            Ok(())
        }
        ProviderWrite::Settle { id, succeeded, provider_reference, result_code, at } => {
            let done = sqlx::query(
                "UPDATE provider_payments
                 SET status = $2, provider_reference = coalesce($3, provider_reference), last_result_code = $4,
                     updated_at = $5
                 WHERE id = $1 AND status = 'executing'",
            )
            .bind(id)
            .bind(if succeeded { "succeeded" } else { "failed" })
            .bind(provider_reference)
            .bind(result_code)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            if done.rows_affected() == 0 {
                return Err(AppendError::Rule(DomainError::PaymentNotInFlight { payment_id: id }));
            }
            Ok(())
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    requisition_id: Id,
    fund_id: Id,
    method: String,
    amount: Decimal,
    currency: String,
    status: String,
}

impl CommandService {
    /// Starts paying `requisition_id` through a provider by `method` (`bank`, `mobile_money`)
    /// with the payer's one-time code: reserves the amount on the fund and marks the payment
    /// in flight, atomically. The provider is asked by the caller after the commit.
    pub async fn start_provider_payment(
        &self,
        ctx: &CommandContext,
        requisition_id: Id,
        method: PaymentMethod,
        reference: Option<String>,
        code: Option<&str>,
    ) -> Result<Outcome<ProviderPaymentView>, CommandError> {
        let payer =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        if !method.through_provider() {
            return Err(
                DomainError::invalid("method", "cash is paid at once: POST /api/treasury/payments").into()
            );
        }
        let before = self.visible_requisition(payer, requisition_id, Source::Store).await?;
        before.state.check_payer(payer)?;
        let code_id = self.check_payment_code(ctx, payer, &before.state, method, code).await?;
        let now = self.clock().now();
        let reference = &reference;
        self.retrying(|source| async move {
            let req = self.visible_requisition(payer, requisition_id, source).await?;
            let fund_id = req.state.fund_id.ok_or(CommandError::not_found("requisition"))?;
            let _guard = self.locks.lock(&fund_id.to_string()).await;
            let req = self.visible_requisition(payer, requisition_id, source).await?;
            let mut requisition = req.state.clone();
            let payment_id = Id::now_v7();
            let start = RequisitionCommand::StartPayment {
                payment_id,
                method,
                reference: reference.clone(),
                payer: payer.clone(),
            };
            let req_events = decide(&mut requisition, start).await?;
            let currency = requisition.currency.clone().ok_or(CommandError::not_found("requisition"))?;
            let fund = self.load_fund(fund_id, source).await?;
            let mut fund_state = fund.state.clone();
            let reserve = FundCommand::Reserve {
                payment_id,
                requisition_id,
                amount: requisition.amount,
                currency: currency.clone(),
                method,
                reserved_by: payer.user_id,
                now: self.clock().now(),
            };
            let fund_events = decide(&mut fund_state, reserve).await?;
            let streams = [
                StreamAppend::of(&req, &req_events, &requisition)?,
                StreamAppend::of(&fund, &fund_events, &fund_state)?,
            ];
            let mut writes = vec![SideWrite::ProviderPayment(ProviderWrite::Start {
                id: payment_id,
                requisition_id,
                fund_id,
                method,
                amount: requisition.amount,
                currency: currency.to_string(),
                paid_by: payer.user_id,
                at: now,
            })];
            if let Some(id) = code_id {
                writes.push(SideWrite::PaymentCode(crate::payments::CodeWrite::Use { id, at: now }));
            }
            let view = ProviderPaymentView {
                id: payment_id,
                requisition_id,
                fund_id,
                method,
                amount: requisition.amount,
                currency: currency.to_string(),
                status: "executing".into(),
                changed: true,
                fund_available_after: Some(fund_state.available()),
                position: 0,
            };
            let outcome = self.commit(ctx, &streams, writes, view, |v, p| v.position = p).await?;
            self.snapshot_if_due(&fund, &fund_state, fund_events.len()).await;
            Ok(outcome)
        })
        .await
    }

    /// Records the provider's final result for `payment_id` (the service itself acts: the
    /// provider's authenticated callback, or the scheduler's status query). A payment no longer
    /// executing is answered as it is, unchanged.
    pub async fn settle_provider_payment(
        &self,
        payment_id: Id,
        result: ProviderResult,
    ) -> Result<Outcome<ProviderPaymentView>, CommandError> {
        let row: Row = sqlx::query_as(
            "SELECT requisition_id, fund_id, method, amount, currency, status FROM provider_payments WHERE id = $1",
        )
        .bind(payment_id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or(CommandError::not_found("payment"))?;
        let method: PaymentMethod =
            row.method.parse().map_err(|e| CommandError::Other(anyhow::Error::new(e)))?;
        let view = |status: &str, changed: bool, available: Option<Decimal>| ProviderPaymentView {
            id: payment_id,
            requisition_id: row.requisition_id,
            fund_id: row.fund_id,
            method,
            amount: row.amount,
            currency: row.currency.clone(),
            status: status.into(),
            changed,
            fund_available_after: available,
            position: 0,
        };
        if row.status != "executing" {
            return Ok(Outcome { value: view(&row.status, false, None), position: 0 });
        }
        let ctx = &CommandContext::operator("provider");
        let now = self.clock().now();
        let result = &result;
        let view = &view;
        let settled = self
            .retrying(|_| async move {
                let _guard = self.locks.lock(&row.fund_id.to_string()).await;
                let req = self.load::<Requisition>(row.requisition_id, Source::Store).await?;
                let mut requisition = req.state.clone();
                let fund = self.load_fund(row.fund_id, Source::Store).await?;
                let mut fund_state = fund.state.clone();
                let (req_command, fund_command, succeeded, reference, code) = match result {
                    ProviderResult::Succeeded { transaction_id } => (
                        RequisitionCommand::CompletePayment { payment_id },
                        FundCommand::DisburseReserved {
                            payment_id,
                            requisition_id: row.requisition_id,
                            reference: Some(transaction_id.clone()),
                            paid_by: requisition
                                .payment_in_flight
                                .as_ref()
                                .map(|p| p.paid_by)
                                .unwrap_or_default(),
                            now: self.clock().now(),
                        },
                        true,
                        Some(transaction_id.clone()),
                        "0".to_string(),
                    ),
                    ProviderResult::Failed { result_code, description } => (
                        RequisitionCommand::FailPayment {
                            payment_id,
                            reason: format!("{result_code}: {description}"),
                        },
                        FundCommand::Release { payment_id, reason: format!("{result_code}: {description}") },
                        false,
                        None,
                        result_code.clone(),
                    ),
                };
                let req_events = decide(&mut requisition, req_command).await?;
                let fund_events = decide(&mut fund_state, fund_command).await?;
                let streams = [
                    StreamAppend::of(&req, &req_events, &requisition)?,
                    StreamAppend::of(&fund, &fund_events, &fund_state)?,
                ];
                let writes = vec![SideWrite::ProviderPayment(ProviderWrite::Settle {
                    id: payment_id,
                    succeeded,
                    provider_reference: reference,
                    result_code: code,
                    at: now,
                })];
                let status = if succeeded { "succeeded" } else { "failed" };
                let value = view(status, true, Some(fund_state.available()));
                let outcome = self.commit(ctx, &streams, writes, value, |v, p| v.position = p).await?;
                self.snapshot_if_due(&fund, &fund_state, fund_events.len()).await;
                Ok(outcome)
            })
            .await;
        match settled {
            // Settled meanwhile (a second callback racing the first): unchanged.
            Err(CommandError::Domain(DomainError::PaymentNotInFlight { .. })) => {
                let status: String = sqlx::query_scalar("SELECT status FROM provider_payments WHERE id = $1")
                    .bind(payment_id)
                    .fetch_one(self.store().pool())
                    .await?;
                Ok(Outcome { value: view(&status, false, None), position: 0 })
            }
            other => other,
        }
    }

    /// Records `PaymentTimedOut` for every payment through a provider still executing
    /// `payment_timeout_minutes` after it started (once each); how many. The provider's status
    /// query and a retry or failure should follow (not built yet): the cash stays reserved.
    pub async fn time_out_provider_payments(&self) -> Result<usize, CommandError> {
        let now = self.clock().now();
        let minutes = self.settings().await?.payments.timeout_minutes;
        let due: Vec<(Id, Id)> = sqlx::query_as(
            "SELECT id, requisition_id FROM provider_payments
             WHERE status = 'executing' AND timed_out_at IS NULL AND started_at <= $1
             ORDER BY started_at",
        )
        .bind(now - chrono::Duration::minutes(i64::from(minutes)))
        .fetch_all(self.store().pool())
        .await?;
        let ctx = &CommandContext::operator("scheduler");
        let mut done = 0;
        for (payment_id, requisition_id) in due {
            let timed_out = self
                .retrying(|_| async move {
                    let req = self.load::<Requisition>(requisition_id, Source::Store).await?;
                    let mut requisition = req.state.clone();
                    let command = RequisitionCommand::TimeOutPayment { payment_id, minutes };
                    let events = decide(&mut requisition, command).await?;
                    let stream = StreamAppend::of(&req, &events, &requisition)?;
                    let writes =
                        vec![SideWrite::ProviderPayment(ProviderWrite::TimedOut { id: payment_id, at: now })];
                    self.commit(ctx, &[stream], writes, (), |_, _| {}).await
                })
                .await;
            match timed_out {
                Ok(_) => done += 1,
                // Settled or timed out meanwhile (another process's scheduler).
                Err(CommandError::Domain(
                    DomainError::NotDueYet | DomainError::PaymentNotInFlight { .. },
                )) => {}
                Err(e) => tracing::warn!(payment = %payment_id, error = %e, "could not time out a payment"),
            }
        }
        Ok(done)
    }
}
