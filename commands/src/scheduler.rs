//! The service's scheduler: what happens because time passed, recorded as events, from inside
//! the service (no cron, no manual sweep).
//!
//! - Changes requested and not resubmitted by their deadline → `RequisitionExpired`.
//! - A step waiting past its reminder time → `ApprovalOverdue` (its approvers are mailed).
//! - A step waiting past its escalation time → `ApprovalEscalated { reason: overdue }` to the
//!   company's admins (never an approval).
//! - A payment through a provider executing past `payment_timeout_minutes` →
//!   `PaymentTimedOut` (`provider_payments`; read from its table).
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
    /// Payments through a provider found executing past their timeout.
    pub timed_out: usize,
    /// Payments through a provider settled, retried or sent again after asking the provider.
    pub chased: usize,
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
    if done != Tick::default() {
        tracing::info!(
            expired = done.expired,
            reminded = done.reminded,
            escalated = done.escalated,
            timed_out = done.timed_out,
            chased = done.chased,
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
