//! Possible duplicates and FP&A's review after payment (`pettycash_domain::requisition`'s
//! `review` module has the rules): what the commands look up and pass in.

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::CommandService;
use crate::views::RequisitionView;
use crate::Outcome;
use chrono::Duration;
use pettycash_domain::requisition::{DuplicateCheck, Requisition, RequisitionCommand, Status};
use pettycash_domain::Id;

/// At most this many other requisitions are named in one flag (the newest).
const MAX_DUPLICATES: i64 = 20;

impl CommandService {
    /// The requester's other requisitions that `r` may duplicate: same payee (trimmed,
    /// case-insensitive), amount and currency, submitted within the `duplicate_window_days`
    /// setting (0: no check), not cancelled. Read from the requisitions read model (its
    /// requester index narrows it to one person's rows), so one submitted a few milliseconds
    /// earlier may not be there yet: the flag is advice for the approvers, not a rule, and a
    /// double click is the Idempotency-Key's business. A requisition without a payee is never
    /// flagged.
    pub(crate) async fn duplicate_check(&self, r: &Requisition) -> Result<DuplicateCheck, CommandError> {
        let window_days = self.settings().await?.duplicate_window_days;
        let (Some(id), Some(requester), Some(currency), Some(payee)) =
            (r.id, r.requester_id, r.currency.as_ref(), r.payee.as_deref())
        else {
            return Ok(DuplicateCheck::default());
        };
        if window_days == 0 {
            return Ok(DuplicateCheck::default());
        }
        let since = self.clock().now() - Duration::days(i64::from(window_days));
        let found = sqlx::query_scalar(
            "SELECT id FROM rm_requisitions
             WHERE requester_id = $1 AND id <> $2 AND currency = $3 AND amount = $4
               AND lower(btrim(payee)) = lower(btrim($5)) AND status <> $6
               AND submitted_at >= $7
             ORDER BY submitted_at DESC LIMIT $8",
        )
        .bind(requester)
        .bind(id)
        .bind(currency.code())
        .bind(r.amount)
        .bind(payee)
        .bind(Status::Cancelled)
        .bind(since)
        .bind(MAX_DUPLICATES)
        .fetch_all(self.store().pool())
        .await;
        let others: Vec<Id> = match found {
            Ok(others) => others,
            // The read model is not there yet (a new store before the projection engine first
            // ran, or a tool without it): nothing to compare with, and no reason to refuse the
            // submission.
            Err(e) if crate::error::is_undefined_table(&e) => {
                // A new store (its first submissions, e.g. the demo's, before the engine ran)
                // has nothing to be a duplicate of: not a warning.
                tracing::info!(
                    "no requisitions read model yet (a new store): submission not checked for duplicates"
                );
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(DuplicateCheck { others, window_days })
    }

    /// An approver who may decide the current step dismisses the possible-duplicate flag.
    pub async fn dismiss_duplicate(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::DismissDuplicate {
            reason: reason.into(),
            actor,
        })
        .await
    }

    /// FP&A marks a paid requisition reviewed, with an optional comment.
    pub async fn mark_reviewed(
        &self,
        ctx: &CommandContext,
        id: Id,
        comment: Option<String>,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock().now();
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::MarkReviewed {
            comment: comment.clone(),
            now,
            actor,
        })
        .await
    }

    /// FP&A flags a paid requisition, with a reason.
    pub async fn flag_after_payment(
        &self,
        ctx: &CommandContext,
        id: Id,
        reason: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock().now();
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::FlagAfterPayment {
            reason: reason.into(),
            now,
            actor,
        })
        .await
    }
}
