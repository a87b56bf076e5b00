//! Payment reconciliation (issue #14 [treasury]): treasury matches a succeeded bank or
//! mobile-money payment with a statement line (`pettycash_domain::requisition`'s `reconcile`
//! module has the rules). The payment id leads to its requisition, whose stream records
//! `PaymentReconciled`: its sequence serialises concurrent reconciliations, so exactly one of
//! two racing references wins and the other is re-decided on the reconciled state
//! (`already_reconciled`).

use crate::context::CommandContext;
use crate::error::{is_undefined_table, CommandError};
use crate::service::CommandService;
use crate::store::{decide, StreamAppend};
use crate::Outcome;
use chrono::{DateTime, Utc};
use pettycash_domain::requisition::RequisitionCommand;
use pettycash_domain::Id;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A payment's reconciliation, as the command answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReconciliationView {
    pub payment_id: Uuid,
    pub requisition_id: Uuid,
    pub fund_id: Uuid,
    /// `bank` or `mobile_money`.
    pub method: String,
    pub statement_reference: String,
    pub reconciled_by: Uuid,
    pub reconciled_at: DateTime<Utc>,
    /// False when it was reconciled already with this reference: nothing was recorded.
    pub changed: bool,
    pub position: i64,
}

impl CommandService {
    /// The requisition a payment paid (or tried to pay): a payment through a provider from its
    /// row; a cash payment from the payments read model (so a cash payment made a moment ago
    /// may not be found yet: 404, and it could not be reconciled anyway).
    async fn payment_requisition(&self, payment_id: Id) -> Result<Option<Id>, CommandError> {
        let pool = self.store().pool();
        let provider: Option<Id> =
            sqlx::query_scalar("SELECT requisition_id FROM provider_payments WHERE id = $1")
                .bind(payment_id)
                .fetch_optional(pool)
                .await?;
        if provider.is_some() {
            return Ok(provider);
        }
        match sqlx::query_scalar("SELECT requisition_id FROM rm_payments WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_optional(pool)
            .await
        {
            Ok(found) => Ok(found),
            Err(e) if is_undefined_table(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Treasury reconciles `payment_id` against `statement_reference`: once; the same reference
    /// again answers `changed: false` and records nothing.
    pub async fn reconcile_payment(
        &self,
        ctx: &CommandContext,
        payment_id: Id,
        statement_reference: &str,
    ) -> Result<Outcome<ReconciliationView>, CommandError> {
        let actor =
            &ctx.actor.clone().ok_or(CommandError::Unauthenticated("this command needs a signed-in user"))?;
        let requisition_id =
            self.payment_requisition(payment_id).await?.ok_or(CommandError::not_found("payment"))?;
        // Microseconds, as the read models store it: every read shows the same instant.
        let now = chrono::SubsecRound::trunc_subsecs(self.clock().now(), 6);
        self.retrying(|source| async move {
            let loaded = self.visible_requisition(actor, requisition_id, source).await?;
            let mut requisition = loaded.state.clone();
            let command = RequisitionCommand::Reconcile {
                payment_id,
                statement_reference: statement_reference.to_string(),
                now,
                actor: actor.clone(),
            };
            let events = decide(&mut requisition, command).await?;
            let (Some(done), Some(payment), Some(fund_id)) =
                (&requisition.reconciliation, &requisition.payment, requisition.fund_id)
            else {
                return Err(anyhow::anyhow!("a reconciled requisition without its payment").into());
            };
            let view = ReconciliationView {
                payment_id,
                requisition_id,
                fund_id,
                method: payment.method.as_str().into(),
                statement_reference: done.statement_reference.clone(),
                reconciled_by: done.reconciled_by,
                reconciled_at: done.at,
                changed: !events.is_empty(),
                position: 0,
            };
            if events.is_empty() {
                return Ok(Outcome { value: view, position: 0 });
            }
            let stream = StreamAppend::of(&loaded, &events, &requisition)?;
            self.commit(ctx, &[stream], Vec::new(), view, |v, p| v.position = p).await
        })
        .await
    }
}
