//! The service's scheduler: what happens because time passed, recorded as events, from inside
//! the service (no cron, no manual sweep).
//!
//! - Changes requested and not resubmitted by their deadline → `RequisitionExpired`.
//! - A step waiting past its reminder time → `ApprovalOverdue` (its approvers are mailed).
//! - A step waiting past its escalation time → `ApprovalEscalated { reason: overdue }` to the
//!   company's admins (never an approval).
//! - An advance unsettled past its due date → `AdvanceOverdue` (its holder is mailed), once.
//! - A requisition paid `receipt_reminder_days` ago (a setting; 0: off) with no receipt →
//!   `ReceiptOverdue` (its requester is mailed), once. Read from the requisitions read model
//!   (`paid_at`); each one the aggregate decided on (reminded, or it had a receipt) is noted in
//!   `receipt_reminder_checks` so that it is not loaded again; at most [`RECEIPT_BATCH`] a tick.
//! - A payment through a provider executing past `payment_timeout_minutes` →
//!   `PaymentTimedOut` (`provider_payments`; read from its table).
//! - A count's variance waiting for approval past `alert_variance_pending_hours` → a
//!   `variance_pending` alert (issue #15), written directly (`crate::alerts`; no event: the
//!   alert row is the record), once per count.
//!
//! What is due is read from the requisitions read model (`changes_deadline`, `remind_at`,
//! `escalate_at`, which the events set), so it survives restarts: a deadline that passed while
//! the service was down is acted on at the next tick. Each action is an ordinary command on the
//! requisition, decided by the aggregate on its own state with the service's clock: a
//! requisition someone acted on meanwhile, or that another process's scheduler got to first,
//! answers `not_due_yet` or a state error and is left alone. So any number of processes may
//! run it.

use crate::error::CommandError;
use crate::CommandService;
use chrono::{DateTime, Utc};
use pettycash_domain::requisition::Status;
use pettycash_domain::DomainError;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub expired: usize,
    pub reminded: usize,
    pub escalated: usize,
    pub advances_overdue: usize,
    pub receipt_reminders: usize,
    /// Payments through a provider found executing past their timeout.
    pub timed_out: usize,
    /// Payments through a provider settled, retried or sent again after asking the provider.
    pub chased: usize,
    /// `variance_pending` alerts raised.
    pub variance_alerts: usize,
}

/// Most paid requisitions looked at for a missing receipt in one tick.
pub const RECEIPT_BATCH: i64 = 200;

/// Paid requisitions past the receipt reminder time not yet decided on: (id, paid_at).
async fn receipts_due(
    service: &CommandService,
    now: DateTime<Utc>,
    days: u32,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT r.id, r.paid_at FROM rm_requisitions r
         WHERE r.status = $1 AND r.paid_at <= $2
           AND NOT EXISTS (SELECT 1 FROM receipt_reminder_checks c WHERE c.requisition_id = r.id)
         ORDER BY r.paid_at LIMIT $3",
    )
    .bind(Status::Paid)
    .bind(now - chrono::Duration::days(i64::from(days)))
    .bind(RECEIPT_BATCH)
    .fetch_all(service.store().pool())
    .await
}

/// Reminds the requesters of paid requisitions still without a receipt; notes each one decided.
async fn remind_receipts(service: &CommandService, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let days = service.settings().await?.receipt_reminder_days;
    if days == 0 {
        return Ok(0);
    }
    let due = match receipts_due(service, now, days).await {
        Err(e) if crate::error::is_undefined_table(&e) => return Ok(0),
        other => other?,
    };
    let mut reminded = 0;
    for (id, paid_at) in due {
        let decided = match service.remind_receipt(id, paid_at, days).await {
            Ok(_) => {
                reminded += 1;
                true
            }
            // A receipt is there, or it was reminded: nothing to do for it, ever again.
            Err(CommandError::Domain(DomainError::NotDueYet)) => true,
            Err(e) if moved_on(&e) => false,
            Err(e) => {
                tracing::warn!(requisition = %id, error = %e, "could not remind about a missing receipt");
                false
            }
        };
        if decided {
            sqlx::query(
                "INSERT INTO receipt_reminder_checks (requisition_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(service.store().pool())
            .await?;
        }
    }
    Ok(reminded)
}

/// The requisitions with something due at `now`, by what is due.
async fn due(
    service: &CommandService,
    now: DateTime<Utc>,
) -> sqlx::Result<(Vec<Uuid>, Vec<Uuid>, Vec<Uuid>)> {
    let pool = service.store().pool();
    let expire = sqlx::query_scalar(
        "SELECT id FROM rm_requisitions WHERE status = $1 AND changes_deadline < $2 ORDER BY changes_deadline",
    )
    .bind(Status::ChangesRequested)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let remind = sqlx::query_scalar(
        "SELECT id FROM rm_requisitions WHERE status = $1 AND remind_at <= $2 AND NOT reminded ORDER BY remind_at",
    )
    .bind(Status::PendingApproval)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let escalate = sqlx::query_scalar(
        "SELECT id FROM rm_requisitions WHERE status = $1 AND escalate_at <= $2 AND NOT escalated
         ORDER BY escalate_at",
    )
    .bind(Status::PendingApproval)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok((expire, remind, escalate))
}

/// True for an answer that means "nothing to do any more": acted on meanwhile.
fn moved_on(e: &CommandError) -> bool {
    matches!(e, CommandError::Domain(DomainError::NotDueYet | DomainError::InvalidTransition { .. }))
}

/// Acts on everything due by the service's clock now.
pub async fn tick(service: &CommandService) -> anyhow::Result<Tick> {
    let now = service.clock().now();
    let (expire, remind, escalate) = match due(service, now).await {
        // A new store whose read model the engine has not created yet: nothing can be due.
        Err(e) if crate::error::is_undefined_table(&e) => return Ok(Tick::default()),
        other => other?,
    };
    let mut done = Tick::default();
    for id in expire {
        match service.expire(id).await {
            Ok(_) => done.expired += 1,
            Err(e) if moved_on(&e) => {}
            Err(e) => tracing::warn!(requisition = %id, error = %e, "could not expire a requisition"),
        }
    }
    for id in remind {
        match service.remind_overdue(id).await {
            Ok(_) => done.reminded += 1,
            Err(e) if moved_on(&e) => {}
            Err(e) => tracing::warn!(requisition = %id, error = %e, "could not remind the approvers"),
        }
    }
    for id in escalate {
        match service.escalate_overdue(id).await {
            Ok(_) => done.escalated += 1,
            Err(e) if moved_on(&e) => {}
            Err(e) => tracing::warn!(requisition = %id, error = %e, "could not escalate an overdue step"),
        }
    }
    let overdue = match service.overdue_advances(now).await {
        Err(e) if crate::error::is_undefined_table(&e) => Vec::new(),
        other => other?,
    };
    for (holder, requisition) in overdue {
        match service.record_advance_overdue(holder, requisition).await {
            Ok(()) => done.advances_overdue += 1,
            Err(e) if moved_on(&e) => {}
            Err(e) => {
                tracing::warn!(requisition = %requisition, error = %e, "could not record an overdue advance")
            }
        }
    }
    done.receipt_reminders = remind_receipts(service, now).await?;
    match service.time_out_provider_payments().await {
        Ok(n) => done.timed_out = n,
        Err(CommandError::Database(e)) if crate::error::is_undefined_table(&e) => {}
        Err(e) => tracing::warn!(error = %e, "could not time out payments"),
    }
    match service.chase_provider_payments().await {
        Ok(n) => done.chased = n,
        Err(CommandError::Database(e)) if crate::error::is_undefined_table(&e) => {}
        Err(e) => tracing::warn!(error = %e, "could not ask the payment provider"),
    }
    match service.alert_pending_variances(now).await {
        Ok(n) => done.variance_alerts = n,
        Err(CommandError::Database(e)) if crate::error::is_undefined_table(&e) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise variance alerts"),
    }
    if done != Tick::default() {
        tracing::info!(
            expired = done.expired,
            reminded = done.reminded,
            escalated = done.escalated,
            advances_overdue = done.advances_overdue,
            receipt_reminders = done.receipt_reminders,
            timed_out = done.timed_out,
            chased = done.chased,
            variance_alerts = done.variance_alerts,
            "scheduler"
        );
    }
    Ok(done)
}

/// Ticks every `interval` until `shutdown` turns true.
pub async fn run(service: CommandService, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = tick(&service).await {
            tracing::warn!(error = format!("{e:#}"), "scheduler tick failed; trying again later");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
