//! Alerts' write side (issue #15 [reports]): raising one (with its mail), resolving the ones
//! whose condition cleared, and people's acknowledge and resolve. The `alerts` projection
//! decides *when* from events and calls [`raise`] and [`resolve_cleared`] inside its batch
//! transaction; the scheduler does the same for `variance_pending` (no event marks "a variance
//! waited too long", and recording one would only be a copy of the clock: the alert row is the
//! record, see [`CommandService::alert_pending_variances`]).
//!
//! Alerts are rows, not events: they are effects of events (like mail), never read back to
//! decide a command, and what people do to them is kept in `alert_history` (who, what, when,
//! with which note).
//!
//! **Once.** Raising is `INSERT … ON CONFLICT DO NOTHING` against the partial unique index on
//! `(alert_type, object_id) WHERE state <> 'resolved'`: however many batches, processes or
//! projection versions race, one alert of a type is open per object, and only the insert that
//! wrote the row mails.
//!
//! **Who is mailed** is decided here, from `users` as they are when it is raised: the people
//! named responsible (custodian, payer, holder) and the active holders of the given roles in
//! the alert's company (treasury for fund and payment alerts). Critical alerts come in
//! [`MailCategory::CriticalAlert`], which nobody can mute.

use crate::error::CommandError;
use crate::mail::templates::{self, AlertSummary};
use crate::mail::{enqueue, Links, Mail};
use crate::CommandService;
use chrono::{DateTime, Utc};
use pettycash_domain::alert::{AlertAction, AlertState, AlertType};
use pettycash_domain::visibility::AlertScope;
use pettycash_domain::{Actor, DomainError, Id, Role};
use sqlx::PgConnection;

/// An alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub alert_type: AlertType,
    /// Its object's id (a fund, requisition, advance's requisition or count).
    pub object_id: Id,
    /// The fund's or requisition's company (`None`: unscoped).
    pub company_id: Option<Id>,
    pub fund_id: Option<Id>,
    pub branch_id: Option<Id>,
    pub department_id: Option<Id>,
    /// People who see it and act on it besides the company's treasury and admins.
    pub responsible: Vec<Id>,
    /// Whether the responsible people are mailed: not when the event that raised it already
    /// mailed them a reminder (`ApprovalOverdue`, `ReceiptOverdue`, `AdvanceOverdue`: the
    /// `notifications` projection), so nobody gets the same news twice.
    pub mail_responsible: bool,
    /// Holders of these roles in the company are mailed too.
    pub roles: Vec<Role>,
    pub message: String,
    /// The event that raised it (`None`: the scheduler).
    pub source_position: Option<i64>,
    pub at: DateTime<Utc>,
}

/// Raises `alert` in `tx` unless one of its type is open for its object; when it was raised,
/// writes its history line and its mail. Returns the new alert's id (`None`: one was open),
/// and whether any mail was written (the caller wakes the sender after its commit).
pub async fn raise(
    tx: &mut PgConnection,
    alert: &NewAlert,
    links: &Links,
) -> sqlx::Result<(Option<Id>, bool)> {
    let t = alert.alert_type;
    let id: Option<Id> = sqlx::query_scalar(
        "INSERT INTO alerts (id, alert_type, severity, state, company_id, fund_id, object_type, object_id,
                             branch_id, department_id, responsible_ids, title, message, source_position, raised_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (alert_type, object_id) WHERE state <> 'resolved' DO NOTHING
         RETURNING id",
    )
    .bind(Id::new_v4())
    .bind(t)
    .bind(t.severity())
    .bind(AlertState::Open)
    .bind(alert.company_id)
    .bind(alert.fund_id)
    .bind(t.object_type())
    .bind(alert.object_id.to_string())
    .bind(alert.branch_id)
    .bind(alert.department_id)
    .bind(&alert.responsible)
    .bind(t.title())
    .bind(&alert.message)
    .bind(alert.source_position)
    .bind(alert.at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Ok((None, false)) };
    history(tx, id, AlertAction::Raise, None, None).await?;
    let recipients: Vec<(Id, String, String)> = sqlx::query_as(
        "SELECT id, email, name FROM users
         WHERE active AND (id = ANY ($1) OR (roles && $2 AND company_id IS NOT DISTINCT FROM $3))
         ORDER BY email",
    )
    .bind(if alert.mail_responsible { alert.responsible.as_slice() } else { &[] })
    .bind(&alert.roles)
    .bind(alert.company_id)
    .fetch_all(&mut *tx)
    .await?;
    let summary = AlertSummary {
        id,
        title: t.title().to_string(),
        message: alert.message.clone(),
        severity: t.severity().as_str().to_string(),
    };
    let mut mailed = false;
    for (user, email, name) in recipients {
        let letter = templates::alert(&name, &summary, links);
        let rendered = letter.render();
        let mail = Mail {
            category: letter.category,
            recipient_user_id: Some(user),
            recipient_email: email,
            subject: rendered.subject,
            body_text: rendered.text,
            body_html: rendered.html,
            link: Some(links.alert(id)),
            // The alert's row is what makes it once (an event may raise two alerts to one
            // person: the outbox's key on event, recipient and category would drop one).
            source_position: None,
        };
        mailed |= enqueue(tx, &mail).await?;
    }
    Ok((Some(id), mailed))
}

/// Resolves the open (or acknowledged) alert of `alert_type` for `object_id`, if any, because
/// its condition cleared: resolved by nobody, with `note`. True when one was.
pub async fn resolve_cleared(
    tx: &mut PgConnection,
    alert_type: AlertType,
    object_id: Id,
    note: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let id: Option<Id> = sqlx::query_scalar(
        "UPDATE alerts SET state = $3, resolved_at = $4, resolution_note = $5
         WHERE alert_type = $1 AND object_id = $2 AND state <> $3
         RETURNING id",
    )
    .bind(alert_type)
    .bind(object_id.to_string())
    .bind(AlertState::Resolved)
    .bind(at)
    .bind(note)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = id {
        history(tx, id, AlertAction::Resolve, None, Some(note)).await?;
    }
    Ok(id.is_some())
}

async fn history(
    tx: &mut PgConnection,
    alert: Id,
    action: AlertAction,
    by: Option<Id>,
    note: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alert_history (alert_id, action, by_user, note, at) VALUES ($1, $2, $3, $4, now())",
    )
    .bind(alert)
    .bind(action)
    .bind(by)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The fund's facts the scheduler's `variance_pending` alert needs (from the `alerts`
/// projection's `alert_funds`).
#[derive(sqlx::FromRow)]
struct PendingVariance {
    count_id: Id,
    fund_id: Id,
    name: String,
    company_id: Option<Id>,
    branch_id: Option<Id>,
    department_id: Option<Id>,
    custodian_id: Option<Id>,
    counted_at: DateTime<Utc>,
}

impl CommandService {
    /// Acknowledges alert `id` (with an optional note): it is being looked into.
    pub async fn acknowledge_alert(
        &self,
        actor: &Actor,
        id: Id,
        note: Option<&str>,
    ) -> Result<(), CommandError> {
        self.act_on_alert(actor, id, AlertAction::Acknowledge, note).await
    }

    /// Resolves alert `id` with `note` (required; the API checks it is not blank).
    pub async fn resolve_alert(&self, actor: &Actor, id: Id, note: &str) -> Result<(), CommandError> {
        self.act_on_alert(actor, id, AlertAction::Resolve, Some(note)).await
    }

    /// One person's action on an alert, under a row lock: 404 when they may not see it, 403
    /// when they may only read it, 409 when its state does not allow the action.
    async fn act_on_alert(
        &self,
        actor: &Actor,
        id: Id,
        action: AlertAction,
        note: Option<&str>,
    ) -> Result<(), CommandError> {
        let mut tx = self.store().pool().begin().await?;
        let row: Option<(AlertState, Option<Id>, Vec<Id>)> =
            sqlx::query_as("SELECT state, company_id, responsible_ids FROM alerts WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let scope = AlertScope::of(actor);
        let Some((state, company, responsible)) = row.filter(|(_, c, r)| scope.admits(*c, r)) else {
            return Err(CommandError::not_found("alert"));
        };
        if !scope.may_act(company, &responsible) {
            return Err(DomainError::AlertReadOnly.into());
        }
        if !state.allows(action) {
            return Err(DomainError::AlertState { state, action: action.as_str() }.into());
        }
        let now = self.clock().now();
        match action {
            AlertAction::Acknowledge => {
                sqlx::query(
                    "UPDATE alerts SET state = $2, acknowledged_at = $3, acknowledged_by = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(AlertState::Acknowledged)
                .bind(now)
                .bind(actor.user_id)
                .execute(&mut *tx)
                .await?;
            }
            AlertAction::Resolve => {
                sqlx::query(
                    "UPDATE alerts SET state = $2, resolved_at = $3, resolved_by = $4, resolution_note = $5
                     WHERE id = $1",
                )
                .bind(id)
                .bind(AlertState::Resolved)
                .bind(now)
                .bind(actor.user_id)
                .bind(note)
                .execute(&mut *tx)
                .await?;
            }
            AlertAction::Raise => unreachable!("people do not raise alerts"),
        }
        history(&mut tx, id, action, Some(actor.user_id), note).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The scheduler's `variance_pending` step: counts whose variance has waited for approval
    /// longer than `alert_variance_pending_hours` raise an alert (once each: `alerted`). The
    /// `alerts` projection keeps `alert_pending_variances` (from `CashCounted` until the
    /// variance is adjusted or rejected, which also resolves the alert). Returns how many
    /// were raised.
    pub async fn alert_pending_variances(&self, now: DateTime<Utc>) -> Result<usize, CommandError> {
        let hours = self.settings().await?.alerts.variance_pending_hours;
        let pool = self.store().pool();
        let due: Vec<PendingVariance> = sqlx::query_as(
            "SELECT v.count_id, v.fund_id, f.name, f.company_id, f.branch_id, f.department_id, f.custodian_id,
                    v.counted_at
             FROM alert_pending_variances v JOIN alert_funds f USING (fund_id)
             WHERE NOT v.alerted AND v.counted_at <= $1
             ORDER BY v.counted_at LIMIT 200",
        )
        .bind(now - chrono::Duration::hours(i64::from(hours)))
        .fetch_all(pool)
        .await?;
        let links = self.links().unwrap_or_else(|| Links::new(""));
        let mut raised = 0;
        for v in due {
            let mut tx = pool.begin().await?;
            // Claimed under the row's lock: another process's scheduler skips it.
            let claimed = sqlx::query(
                "UPDATE alert_pending_variances SET alerted = true WHERE count_id = $1 AND NOT alerted",
            )
            .bind(v.count_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !claimed {
                continue;
            }
            let alert = NewAlert {
                alert_type: AlertType::VariancePending,
                object_id: v.count_id,
                company_id: v.company_id,
                fund_id: Some(v.fund_id),
                branch_id: v.branch_id,
                department_id: v.department_id,
                responsible: v.custodian_id.into_iter().collect(),
                mail_responsible: true,
                roles: vec![Role::Treasury, Role::Admin],
                message: format!(
                    "The variance of the cash count of fund {} on {} has waited for approval for more than \
                     {hours} hours.",
                    v.name,
                    v.counted_at.format("%Y-%m-%d %H:%M UTC")
                ),
                source_position: None,
                at: now,
            };
            let (id, mailed) = raise(&mut tx, &alert, &links).await?;
            tx.commit().await?;
            raised += usize::from(id.is_some());
            if mailed {
                crate::mail::enqueued();
            }
        }
        Ok(raised)
    }
}
