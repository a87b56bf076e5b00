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
//! The provider side (submit after commit, callbacks, the status chase with retries, the read)
//! is in the second `impl` block below, over `crate::providers`. Reconciliation is in
//! `crate::reconcile`. **Not here yet**: a real (non-simulated) provider.

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::{CommandService, Source};
use crate::store::{decide, AppendError, SideWrite, StreamAppend};
use crate::Outcome;
use chrono::{DateTime, Utc};
use pettycash_domain::fund::{FundCommand, PaymentMethod};
use pettycash_domain::payment::ProviderPaymentStatus;
use pettycash_domain::requisition::{Requisition, RequisitionCommand};
use pettycash_domain::{DomainError, Id};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

/// `provider_payments.status` of a payment in flight.
pub(crate) const EXECUTING: &str = ProviderPaymentStatus::Executing.as_str();

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
        destination: Option<String>,
        at: DateTime<Utc>,
        /// A payment of a bulk batch: the batch's id and the payee's name for the batch file.
        /// Such a payment is never sent to the provider's API (the uploaded file pays it).
        batch: Option<(Id, String)>,
    },
    /// Marks it timed out; refused (`not_due_yet`) unless still executing and not timed out.
    TimedOut { id: Id, at: DateTime<Utc> },
    /// Refused (`payment_not_in_flight`) unless the row is still executing.
    Settle {
        id: Id,
        succeeded: bool,
        provider_reference: Option<String>,
        result_code: String,
        result_reason: Option<String>,
        at: DateTime<Utc>,
    },
}

pub(crate) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    write: ProviderWrite,
) -> Result<(), AppendError> {
    match write {
        ProviderWrite::Start {
            id,
            requisition_id,
            fund_id,
            method,
            amount,
            currency,
            paid_by,
            destination,
            at,
            batch,
        } => {
            let (batch_id, payee_name) = batch.unzip();
            sqlx::query(
                "INSERT INTO provider_payments (id, requisition_id, fund_id, method, amount, currency, status,
                                                paid_by, started_at, updated_at, destination, submitted_at,
                                                batch_id, payee_name)
                 VALUES ($1, $2, $3, $4, $5, $6, $12, $7, $8, $8, $9, $8, $10, $11)",
            )
            .bind(id)
            .bind(requisition_id)
            .bind(fund_id)
            .bind(method.as_str())
            .bind(amount)
            .bind(currency)
            .bind(paid_by)
            .bind(at)
            .bind(destination)
            .bind(batch_id)
            .bind(payee_name)
            .bind(EXECUTING)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            Ok(())
        }
        ProviderWrite::TimedOut { id, at } => {
            let done = sqlx::query(
                "UPDATE provider_payments SET timed_out_at = $2, updated_at = $2
                 WHERE id = $1 AND status = $3 AND timed_out_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .bind(EXECUTING)
            .execute(&mut **tx)
            .await
            .map_err(AppendError::Database)?;
            if done.rows_affected() == 0 {
                return Err(AppendError::Rule(DomainError::NotDueYet));
            }
            Ok(())
        }
        ProviderWrite::Settle { id, succeeded, provider_reference, result_code, result_reason, at } => {
            let done = sqlx::query(
                "UPDATE provider_payments
                 SET status = $2, provider_reference = coalesce($3, provider_reference), last_result_code = $4,
                     updated_at = $5, last_result_reason = $6
                 WHERE id = $1 AND status = $7",
            )
            .bind(id)
            .bind(ProviderPaymentStatus::settled(succeeded).as_str())
            .bind(provider_reference)
            .bind(result_code)
            .bind(at)
            .bind(result_reason)
            .bind(EXECUTING)
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
        destination: Option<String>,
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
        let destination = destination.map(|d| normalise_destination(method, &d)).transpose()?;
        let before = self.visible_requisition(payer, requisition_id, Source::Store).await?;
        before.state.check_payer(payer)?;
        if let Some(requester) = before.state.requester_id {
            self.advance_payable(requester, requisition_id, Source::Store).await?;
        }
        let code_id = self.check_payment_code(ctx, payer, &before.state, method, code).await?;
        let now = self.clock().now();
        let reference = &reference;
        let destination = &destination;
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
                destination: destination.clone(),
                at: now,
                batch: None,
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
                status: EXECUTING.into(),
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
        if row.status != EXECUTING {
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
                let (req_command, fund_command, succeeded, reference, code, reason) = match result {
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
                        None,
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
                        Some(description.clone()),
                    ),
                };
                let req_events = decide(&mut requisition, req_command).await?;
                let fund_events = decide(&mut fund_state, fund_command).await?;
                let mut streams = vec![
                    StreamAppend::of(&req, &req_events, &requisition)?,
                    StreamAppend::of(&fund, &fund_events, &fund_state)?,
                ];
                let mut writes = Vec::new();
                // An advance is issued when its money left, in the same commit.
                if succeeded {
                    let requester = requisition.requester_id.ok_or(CommandError::not_found("requisition"))?;
                    let company = fund_state.unit.map(|u| u.company);
                    let issued = self
                        .issue_advance(
                            requester,
                            row.requisition_id,
                            payment_id,
                            company,
                            false,
                            Source::Store,
                        )
                        .await?;
                    if let Some((account, advance_row)) = issued {
                        streams.push(account);
                        writes.push(advance_row);
                    }
                }
                writes.push(SideWrite::ProviderPayment(ProviderWrite::Settle {
                    id: payment_id,
                    succeeded,
                    provider_reference: reference,
                    result_code: code,
                    result_reason: reason,
                    at: now,
                }));
                let status = ProviderPaymentStatus::settled(succeeded).as_str();
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
    /// `payment_timeout_minutes` after it started (once each); how many. The status query
    /// follows ([`CommandService::chase_provider_payments`]); the cash stays reserved.
    pub async fn time_out_provider_payments(&self) -> Result<usize, CommandError> {
        let now = self.clock().now();
        let minutes = self.settings().await?.payments.timeout_minutes;
        let due: Vec<(Id, Id)> = sqlx::query_as(
            "SELECT id, requisition_id FROM provider_payments
             WHERE status = $2 AND timed_out_at IS NULL AND started_at <= $1 AND batch_id IS NULL
             ORDER BY started_at",
        )
        .bind(now - chrono::Duration::minutes(i64::from(minutes)))
        .bind(EXECUTING)
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

/// A destination as the provider needs it: a mobile number as `254` and nine digits (from
/// `07…`, `01…`, `+254…` or `254…`, spaces and dashes ignored); a bank account as 6 to 34
/// letters and digits (optionally `BANKCODE:ACCOUNT`). 422 naming `destination` otherwise.
pub fn normalise_destination(method: PaymentMethod, raw: &str) -> Result<String, CommandError> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    match method {
        PaymentMethod::MobileMoney => crate::bulk::normalise_msisdn(&compact).ok_or_else(|| {
            DomainError::invalid("destination", "a Kenyan mobile number, e.g. 0712345678 or 254712345678")
                .into()
        }),
        _ => {
            let ok = compact.split(':').count() <= 2
                && compact.split(':').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
                && (6..=45).contains(&compact.len());
            if ok {
                Ok(compact.to_uppercase())
            } else {
                Err(DomainError::invalid(
                    "destination",
                    "a bank account: 6 to 34 letters and digits, optionally BANKCODE:ACCOUNT",
                )
                .into())
            }
        }
    }
}

/// A payment through a provider as its readers see it (`GET /api/treasury/payments/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ProviderPaymentRead {
    pub id: Uuid,
    pub requisition_id: Uuid,
    pub fund_id: Uuid,
    /// `bank` or `mobile_money`.
    pub method: String,
    #[schema(value_type = String, example = "1250.00")]
    pub amount: Decimal,
    pub currency: String,
    /// `executing`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts sent to the provider (a new one only after the provider said the previous
    /// one failed with a retryable code).
    pub attempts: i32,
    /// The id of the current attempt, `{id}-{attempts}`.
    #[sqlx(skip)]
    pub current_attempt_id: String,
    pub destination: Option<String>,
    pub last_result_code: Option<String>,
    pub last_result_reason: Option<String>,
    /// The provider's receipt (transaction id) of a succeeded payment.
    pub provider_receipt: Option<String>,
    pub started_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub timed_out_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The statement reference treasury reconciled it against
    /// (`POST /api/treasury/payments/{id}/reconcile`); `null` until then.
    #[sqlx(skip)]
    pub reconciled_reference: Option<String>,
    #[sqlx(skip)]
    pub reconciled_by: Option<Uuid>,
    #[sqlx(skip)]
    pub reconciled_at: Option<DateTime<Utc>>,
}

const READ_COLUMNS: &str =
    "id, requisition_id, fund_id, method, amount, currency, status, attempts, destination,
     last_result_code, last_result_reason, provider_reference AS provider_receipt, started_at, submitted_at,
     timed_out_at, updated_at";

/// What acting on a provider's answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acted {
    /// Recorded as succeeded or failed.
    Settled,
    /// A new attempt was sent (a retryable failure with retries left).
    Retried,
    /// The same attempt was sent again (the provider never received it).
    Resent,
    /// Nothing to do (still pending, settled already, or an old attempt's failure).
    Unchanged,
}

impl CommandService {
    fn payment_provider(
        &self,
    ) -> Result<&std::sync::Arc<dyn crate::providers::PaymentProvider>, CommandError> {
        self.provider().ok_or_else(|| anyhow::anyhow!("this command service has no payment provider").into())
    }

    async fn read_provider_payment(
        &self,
        payment_id: Id,
    ) -> Result<Option<ProviderPaymentRead>, CommandError> {
        let found: Option<ProviderPaymentRead> =
            sqlx::query_as(&format!("SELECT {READ_COLUMNS} FROM provider_payments WHERE id = $1"))
                .bind(payment_id)
                .fetch_optional(self.store().pool())
                .await?;
        Ok(found.map(|mut p| {
            p.current_attempt_id = crate::providers::attempt_id(p.id, p.attempts);
            p
        }))
    }

    /// A payment through a provider, for a payment reader of its fund's company (404 otherwise,
    /// 403 without a payment reader's role).
    pub async fn provider_payment(
        &self,
        actor: &pettycash_domain::Actor,
        payment_id: Id,
    ) -> Result<ProviderPaymentRead, CommandError> {
        if !pettycash_domain::visibility::may_read_payments(actor) {
            return Err(DomainError::MissingRole { required: pettycash_domain::Role::Treasury }.into());
        }
        let mut payment =
            self.read_provider_payment(payment_id).await?.ok_or(CommandError::not_found("payment"))?;
        let fund = self.load_fund(payment.fund_id, Source::Store).await?;
        if !pettycash_domain::visibility::may_read_fund(actor, fund.state.unit.map(|u| u.company)) {
            return Err(CommandError::not_found("payment"));
        }
        // The reconciliation is on the requisition's stream (it owns its payment).
        let requisition = self.load::<Requisition>(payment.requisition_id, Source::Store).await?;
        if let Some(r) = requisition.state.reconciliation.filter(|r| r.payment_id == payment_id) {
            payment.reconciled_reference = Some(r.statement_reference);
            payment.reconciled_by = Some(r.reconciled_by);
            payment.reconciled_at = Some(r.at);
        }
        Ok(payment)
    }

    /// Sends the current attempt of `payment_id` to the provider (after the commit that
    /// started it, or again when the provider never received it): the same id each time, so
    /// the provider refuses a duplicate and it never pays twice.
    pub async fn submit_provider_payment(&self, payment_id: Id) -> Result<Acted, CommandError> {
        let provider = self.payment_provider()?.clone();
        let Some(p) = self.read_provider_payment(payment_id).await? else {
            return Err(CommandError::not_found("payment"));
        };
        if p.status != EXECUTING {
            return Ok(Acted::Unchanged);
        }
        // A payment of a bulk batch is paid by the uploaded batch file: sending it too would
        // pay it twice.
        let batch: Option<Id> = sqlx::query_scalar("SELECT batch_id FROM provider_payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(self.store().pool())
            .await?;
        if batch.is_some() {
            tracing::warn!(payment = %payment_id, "a payment of a bulk batch is never sent to the provider's API");
            return Ok(Acted::Unchanged);
        }
        let Some(destination) = p.destination.clone() else {
            tracing::warn!(payment = %payment_id, "a payment through a provider without a destination: not sent");
            return Ok(Acted::Unchanged);
        };
        let request = crate::providers::ProviderRequest {
            originator_conversation_id: p.current_attempt_id.clone(),
            amount: p.amount,
            currency: p.currency.clone(),
            destination,
            method: p.method.clone(),
        };
        match provider.submit(request).await {
            Ok(crate::providers::Submitted::Accepted) => Ok(Acted::Resent),
            // It has it already: its result comes by callback or status query.
            Ok(crate::providers::Submitted::Refused { code, .. }) if code == "duplicate" => {
                Ok(Acted::Unchanged)
            }
            Ok(crate::providers::Submitted::Refused { code, reason }) => {
                let status = crate::providers::AttemptStatus::Failed { result_code: code, reason };
                Box::pin(self.act_on_attempt(payment_id, p.attempts, status)).await
            }
            Err(e) => {
                // The scheduler asks again after the timeout (NotFound: sent again, same id).
                tracing::warn!(payment = %payment_id, error = %e, "the payment provider could not be reached");
                Ok(Acted::Unchanged)
            }
        }
    }

    /// A provider's callback at `/api/providers/{name}/callback`: verified (a missing or wrong
    /// signature or token: 401, nothing changes), then acted on like a status query's answer.
    pub async fn provider_callback(
        &self,
        name: &str,
        auth: crate::providers::CallbackAuth<'_>,
        body: &[u8],
    ) -> Result<Acted, CommandError> {
        let provider = self.payment_provider()?.clone();
        if provider.name() != name {
            return Err(CommandError::not_found("provider"));
        }
        let result = provider.read_callback(&auth, body).map_err(|e| match e {
            crate::providers::CallbackError::Forged => {
                CommandError::Unauthenticated("the callback's signature or token is missing or wrong")
            }
            crate::providers::CallbackError::Malformed(m) => DomainError::invalid("body", m).into(),
        })?;
        let (payment_id, attempt) = crate::providers::parse_attempt_id(&result.originator_conversation_id)
            .ok_or_else(|| {
                DomainError::invalid("OriginatorConversationID", "not an attempt id of this service")
            })?;
        self.act_on_attempt(payment_id, attempt, result.status).await
    }

    /// Acts on what the provider says of attempt `attempt` of `payment_id`: a success settles
    /// it (whichever attempt: the money left); a failure of the current attempt retries with a
    /// new attempt id when retryable and `payment_max_retries` allows, else settles it as
    /// failed (the reservation released, the requisition approved again); `NotFound` sends the
    /// same attempt again; pending changes nothing.
    pub async fn act_on_attempt(
        &self,
        payment_id: Id,
        attempt: i32,
        status: crate::providers::AttemptStatus,
    ) -> Result<Acted, CommandError> {
        use crate::providers::AttemptStatus;
        let p = self.read_provider_payment(payment_id).await?.ok_or(CommandError::not_found("payment"))?;
        if p.status != EXECUTING {
            return Ok(Acted::Unchanged);
        }
        let now = self.clock().now();
        match status {
            AttemptStatus::Pending => Ok(Acted::Unchanged),
            AttemptStatus::Succeeded { receipt } => {
                let done = self
                    .settle_provider_payment(
                        payment_id,
                        ProviderResult::Succeeded { transaction_id: receipt },
                    )
                    .await?;
                Ok(if done.value.changed { Acted::Settled } else { Acted::Unchanged })
            }
            AttemptStatus::NotFound => {
                if attempt != p.attempts {
                    return Ok(Acted::Unchanged);
                }
                sqlx::query(
                    "UPDATE provider_payments SET submitted_at = $2, updated_at = $2
                     WHERE id = $1 AND status = $4 AND attempts = $3",
                )
                .bind(payment_id)
                .bind(now)
                .bind(attempt)
                .bind(EXECUTING)
                .execute(self.store().pool())
                .await?;
                Box::pin(self.submit_provider_payment(payment_id)).await
            }
            AttemptStatus::Failed { result_code, reason } => {
                if attempt != p.attempts {
                    return Ok(Acted::Unchanged);
                }
                let max_retries = self.settings().await?.payments.max_retries;
                let retries_used = u32::try_from(p.attempts - 1).unwrap_or(u32::MAX);
                let retryable = self.payment_provider()?.retryable(&result_code);
                if retryable && retries_used < max_retries {
                    // Conditional on the attempt: one new attempt however many answers race.
                    let next = sqlx::query(
                        "UPDATE provider_payments
                         SET attempts = attempts + 1, submitted_at = $2, updated_at = $2,
                             last_result_code = $4, last_result_reason = $5
                         WHERE id = $1 AND status = $6 AND attempts = $3",
                    )
                    .bind(payment_id)
                    .bind(now)
                    .bind(attempt)
                    .bind(&result_code)
                    .bind(&reason)
                    .bind(EXECUTING)
                    .execute(self.store().pool())
                    .await?;
                    if next.rows_affected() == 0 {
                        return Ok(Acted::Unchanged);
                    }
                    Box::pin(self.submit_provider_payment(payment_id)).await?;
                    return Ok(Acted::Retried);
                }
                let done = self
                    .settle_provider_payment(
                        payment_id,
                        ProviderResult::Failed { result_code, description: reason },
                    )
                    .await?;
                Ok(if done.value.changed { Acted::Settled } else { Acted::Unchanged })
            }
        }
    }

    /// The scheduler's look at payments whose current attempt was sent more than
    /// `payment_timeout_minutes` ago and is still executing: the provider is asked for the
    /// attempt's status and the answer acted on ([`CommandService::act_on_attempt`]); how many
    /// changed. Nothing without a provider.
    pub async fn chase_provider_payments(&self) -> Result<usize, CommandError> {
        let Some(provider) = self.provider().cloned() else { return Ok(0) };
        let now = self.clock().now();
        let minutes = self.settings().await?.payments.timeout_minutes;
        let due: Vec<(Id, i32)> = sqlx::query_as(
            "SELECT id, attempts FROM provider_payments
             WHERE status = $2 AND coalesce(submitted_at, started_at) <= $1 AND destination IS NOT NULL
               AND batch_id IS NULL
             ORDER BY started_at",
        )
        .bind(now - chrono::Duration::minutes(i64::from(minutes)))
        .bind(EXECUTING)
        .fetch_all(self.store().pool())
        .await?;
        let mut changed = 0;
        for (payment_id, attempt) in due {
            let status = match provider.status(&crate::providers::attempt_id(payment_id, attempt)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(payment = %payment_id, error = %e, "could not ask the provider");
                    continue;
                }
            };
            match self.act_on_attempt(payment_id, attempt, status).await {
                Ok(Acted::Unchanged) => {}
                Ok(_) => changed += 1,
                Err(e) => {
                    tracing::warn!(payment = %payment_id, error = %e, "could not act on a payment's status")
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_are_normalised_and_bad_destinations_name_the_field() {
        let m = PaymentMethod::MobileMoney;
        for raw in ["0712345678", "+254 712 345 678", "254712345678", "712-345-678"] {
            assert_eq!(normalise_destination(m, raw).unwrap(), "254712345678", "{raw}");
        }
        assert_eq!(normalise_destination(m, "0112345678").unwrap(), "254112345678");
        for bad in ["", "12345", "0812345678", "07123456789", "07123x5678"] {
            let e = normalise_destination(m, bad).unwrap_err();
            assert!(
                matches!(&e, CommandError::Domain(d) if d.field() == Some("destination")),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(normalise_destination(PaymentMethod::Bank, "01:123 456 789").unwrap(), "01:123456789");
        for bad in ["", "12", "01:", "a:b:c123456", "acct#123456"] {
            assert!(normalise_destination(PaymentMethod::Bank, bad).is_err(), "{bad}");
        }
    }
}
