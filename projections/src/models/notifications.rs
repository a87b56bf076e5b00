//! `notifications`: mail about what happens to requisitions. [`Kind::SideEffecting`]: it
//! writes no read model, only rows of the mail outbox (`pettycash_commands::mail`), in its
//! batch transaction with its checkpoint, so each event is mailed about exactly once whatever
//! crashes (the outbox's key on event, recipient and category also stops a second version that
//! overlaps this one from mailing twice). The sender delivers them after the commit.
//!
//! - **It starts at the end.** Its checkpoint is created after the last event visible then
//!   (`engine::prepare` does that for every side-effecting projection): a deployment, a new
//!   version, never mails about history. `pettycash-replay rebuild` never runs it.
//! - **It keeps no state.** To know a requisition as it stood at an event (requester, chain,
//!   approvals), it folds the stream's earlier events from the store with the domain's own
//!   `apply` (one query per batch, `reader::stream_prefixes`), only for requisitions that get
//!   mail in the batch.
//! - **Who gets what is decided at apply time from `users`** (roles, active, sponsors, email,
//!   muted categories as they are when the batch is applied, not as they were when the event
//!   was recorded): a worker that is behind mails today's approvers, and a user who muted a
//!   category after the event but before the batch gets no mail about it. Normally the two
//!   are milliseconds apart.
//!
//! A mail for a new event: a [`Notice`] variant, its arm in [`Notice::of`], its [`Audience`]
//! and a template in `pettycash_commands::mail::templates`.

use crate::event::EventRow;
use crate::{reader, Kind, Phase, Projection};
use anyhow::Context;
use async_trait::async_trait;
use cqrs_es::Aggregate;
use pettycash_commands::mail::templates::{self, Letter, RequisitionSummary};
use pettycash_commands::mail::{enqueue, Links, Mail};
use pettycash_domain::advance::{AdvanceAccount, AdvanceEvent};
use pettycash_domain::fund::{Fund, FundEvent};
use pettycash_domain::requisition::{Requisition, RequisitionEvent};
use pettycash_domain::routing::EscalationReason;
use pettycash_domain::settings::{RuntimeSettings, Settings, SETTINGS_ID};
use pettycash_domain::Currency;
use pettycash_domain::{Id, Role};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const NAME: &str = "notifications";

/// The requisition events that may cause mail (the others only matter to the fold).
const MAILED: [&str; 12] = [
    "RequisitionSubmitted",
    "RequisitionApproved",
    "RequisitionRejected",
    "ChangesRequested",
    "RequisitionPaid",
    "ApprovalOverdue",
    "ApprovalEscalated",
    "RequisitionExpired",
    "UrgencyConfirmed",
    "FastTrackReverted",
    "ApprovalOverridden",
    "ReceiptOverdue",
];

pub struct Notifications {
    version: i32,
    generation: i32,
    links: Links,
    /// A batch enqueued mail: wake the sender once it is committed.
    enqueued: AtomicBool,
}

impl Notifications {
    pub fn new(version: i32, links: Links) -> Self {
        Self::at(version, 0, links)
    }

    fn at(version: i32, generation: i32, links: Links) -> Self {
        Self { version, generation, links, enqueued: AtomicBool::new(false) }
    }
}

/// Something a requisition's event makes worth telling someone.
#[derive(Debug, Clone, PartialEq)]
enum Notice {
    /// Step `step` of the chain waits for a decision.
    ApprovalRequested {
        step: usize,
    },
    /// The last step approved it.
    Approved,
    /// Approved: treasury may pay it.
    ReadyForPayment,
    Rejected {
        by: Id,
        reason: String,
    },
    ChangesRequested {
        by: Id,
        reason: String,
    },
    Paid {
        reference: Option<String>,
    },
    /// Step `step` waited past its reminder time.
    Reminder {
        step: usize,
    },
    /// The changes were not made by `deadline`.
    Expired {
        deadline: chrono::DateTime<chrono::Utc>,
    },
    /// Paid `days` ago and still no receipt.
    ReceiptMissing {
        days: u32,
    },
}

/// Who a notice is for, resolved by [`recipients`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    Requester,
    /// Whoever may decide step `step` of the chain.
    Approvers {
        step: usize,
    },
    /// Whoever may pay it.
    Payers,
}

impl Notice {
    /// The notices `event` gives, `after` being the requisition with the event applied.
    fn of(event: &RequisitionEvent, after: &Requisition) -> Vec<Notice> {
        use RequisitionEvent as E;
        match event {
            E::RequisitionSubmitted { .. } | E::RequisitionApproved { completes_chain: false, .. } => {
                after.current_step().map(|step| Notice::ApprovalRequested { step }).into_iter().collect()
            }
            E::RequisitionApproved { completes_chain: true, .. } | E::ApprovalOverridden { .. } => {
                vec![Notice::Approved, Notice::ReadyForPayment]
            }
            // The step the requisition waits for changed: its people are asked.
            E::UrgencyConfirmed { fast_tracked: true, .. } | E::FastTrackReverted { .. } => {
                after.current_step().map(|step| Notice::ApprovalRequested { step }).into_iter().collect()
            }
            E::RequisitionRejected { rejected_by, reason, .. } => {
                vec![Notice::Rejected { by: *rejected_by, reason: reason.clone() }]
            }
            E::ChangesRequested { requested_by, reason, .. } => {
                vec![Notice::ChangesRequested { by: *requested_by, reason: reason.clone() }]
            }
            E::RequisitionPaid { reference, .. } => vec![Notice::Paid { reference: reference.clone() }],
            E::ApprovalOverdue { step, .. } => vec![Notice::Reminder { step: *step }],
            E::RequisitionExpired { deadline } => vec![Notice::Expired { deadline: *deadline }],
            E::ReceiptOverdue { days } => vec![Notice::ReceiptMissing { days: *days }],
            // An overdue step goes to new people: they are asked.
            E::ApprovalEscalated { step, reason: EscalationReason::Overdue, .. } => {
                vec![Notice::ApprovalRequested { step: *step }]
            }
            // Escalated at submission: the submission's notice already went to the step's
            // people, the admins included.
            // A possible duplicate is told in the submission's mail (the flag comes first).
            E::RequisitionCreated { .. }
            | E::RequisitionEdited { .. }
            | E::RequisitionCancelled { .. }
            | E::UrgencyDeclared { .. }
            | E::UrgencyConfirmed { .. }
            | E::UrgencyDenied { .. }
            | E::ApprovalEscalated { .. }
            | E::DuplicateSuspected { .. }
            | E::DuplicateDismissed { .. }
            | E::PaymentReviewed { .. }
            | E::PaymentFlagged { .. }
            // Budget flags are told in the submission's mail (they come first).
            | E::CategoryChosen { .. }
            | E::BudgetExceeded { .. }
            | E::ReceiptAttached { .. } => vec![],
            // The code's mail is the command's own (it carries the code); a refusal is for the
            // audit trail.
            E::PaymentCodeIssued { .. } | E::PaymentCodeRejected { .. } => vec![],
            // A payment through a provider is told when it succeeds (`RequisitionPaid`).
            E::PaymentStarted { .. } | E::PaymentFailed { .. } | E::PaymentTimedOut { .. } => vec![],
            // Treasury's bookkeeping: nobody is told.
            E::PaymentReconciled { .. } => vec![],
        }
    }

    fn audience(&self) -> Audience {
        match self {
            Notice::ApprovalRequested { step } | Notice::Reminder { step } => {
                Audience::Approvers { step: *step }
            }
            Notice::ReadyForPayment => Audience::Payers,
            Notice::Approved
            | Notice::Rejected { .. }
            | Notice::ChangesRequested { .. }
            | Notice::Paid { .. }
            | Notice::Expired { .. }
            | Notice::ReceiptMissing { .. } => Audience::Requester,
        }
    }

    /// The letter to `to` about `r` (`req` as it stood after the event).
    fn letter(
        &self,
        to: &str,
        r: &RequisitionSummary,
        req: &Requisition,
        names: &HashMap<Id, String>,
        links: &Links,
    ) -> Letter {
        let name = |id: &Id| names.get(id).cloned().unwrap_or_else(|| "an approver".into());
        match self {
            Notice::ApprovalRequested { step } => {
                let role = req.chain.get(*step).copied().unwrap_or(Role::Staff);
                templates::approval_requested(to, r, role, *step, req.chain.len(), links)
            }
            Notice::Approved => templates::approved(to, r, links),
            Notice::ReadyForPayment => templates::ready_for_payment(to, r, links),
            Notice::Rejected { by, reason } => templates::rejected(to, r, &name(by), reason, links),
            Notice::ChangesRequested { by, reason } => {
                templates::changes_requested(to, r, &name(by), reason, links)
            }
            Notice::Paid { reference } => templates::paid(to, r, reference.as_deref(), links),
            Notice::Reminder { step } => {
                let role = req.chain.get(*step).copied().unwrap_or(Role::Staff);
                templates::reminder(to, r, role, *step, req.chain.len(), links)
            }
            Notice::Expired { deadline } => {
                templates::expired(to, r, &deadline.format("%Y-%m-%d %H:%M UTC").to_string(), links)
            }
            Notice::ReceiptMissing { days } => templates::receipt_missing(to, r, *days, links),
        }
    }
}

/// Someone to mail.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Recipient {
    id: Id,
    email: String,
    name: String,
}

/// Who receives mail for `audience` about `req` (as it stood after the event): the one place
/// that decides it, from `users` as it is now.
///
/// - the requester, while active;
/// - the approvers of a step: the people routing recorded for it at submission (or, for a
///   requisition submitted before routing recorded people, the active holders of the step's
///   role), active, never the requester, nobody who approved an earlier step of this round,
///   nobody a participant (requester, approvers of any round) registered or gave a role to —
///   exactly who `Requisition` would let decide it; and the delegates of those people for the
///   step's role (table `delegations`, active now, unless the step went to the admins), who
///   hold the role and took no part in it (delegation, issue #13);
/// - the payers: active treasury holders who are neither requester nor approver (of any
///   round) nor the admin who overrode its approval, nor sponsored by a participant — who `Requisition` would let pay it.
async fn recipients(
    tx: &mut PgConnection,
    audience: Audience,
    req: &Requisition,
) -> sqlx::Result<Vec<Recipient>> {
    let requester: Vec<Id> = req.requester_id.into_iter().collect();
    let approvers: Vec<Id> = req.approvals.iter().map(|a| a.approver_id).collect();
    let participants: Vec<Id> = requester
        .iter()
        .chain(&approvers)
        .chain(&req.former_approvers)
        .chain(&req.overridden_by)
        .copied()
        .collect();
    if let Audience::Approvers { step } = audience {
        if let Some(eligible) = req.eligible.as_ref().and_then(|lists| lists.get(step)) {
            // Delegates act for people who have not approved in this round; never on a step
            // that went to the admins.
            let delegators: Vec<Id> = if req.escalated_to_admin.contains(&step) {
                Vec::new()
            } else {
                eligible.iter().copied().filter(|id| !approvers.contains(id)).collect()
            };
            let role = req.chain.get(step).copied();
            return sqlx::query_as(
                "SELECT id, email, name FROM users
                 WHERE active AND NOT (sponsors && $3)
                   AND ((id = ANY ($1) AND id <> ALL ($2))
                        OR (id <> ALL ($3) AND $5 = ANY (roles) AND id IN (
                              SELECT delegate_id FROM delegations
                              WHERE delegator_id = ANY ($4) AND role = $5 AND revoked_at IS NULL
                                AND starts_at <= now() AND ends_at > now())))
                 ORDER BY email",
            )
            .bind(eligible)
            .bind([requester.as_slice(), &approvers].concat())
            .bind(&participants)
            .bind(&delegators)
            .bind(role)
            .fetch_all(&mut *tx)
            .await;
        }
    }
    let (role, excluded) = match audience {
        Audience::Requester => {
            return sqlx::query_as("SELECT id, email, name FROM users WHERE id = ANY ($1) AND active")
                .bind(&requester)
                .fetch_all(&mut *tx)
                .await;
        }
        Audience::Approvers { step } => match req.chain.get(step) {
            Some(role) => (*role, [requester.as_slice(), &approvers].concat()),
            None => return Ok(vec![]),
        },
        Audience::Payers => (Role::Treasury, participants.clone()),
    };
    sqlx::query_as(
        "SELECT id, email, name FROM users
         WHERE active AND $1 = ANY (roles) AND id <> ALL ($2) AND NOT (sponsors && $3)
         ORDER BY email",
    )
    .bind(role)
    .bind(&excluded)
    .bind(&participants)
    .fetch_all(&mut *tx)
    .await
}

#[async_trait]
impl Projection for Notifications {
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
        Some(&[Requisition::TYPE, AdvanceAccount::TYPE])
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
        self.advances(tx, events).await.context("mailing about advances")?;
        let batch: Vec<&EventRow> = events.iter().filter(|e| e.aggregate_type == Requisition::TYPE).collect();
        // The requisitions that get mail, and the first sequence of each in the batch.
        let mailing: HashSet<&str> = batch
            .iter()
            .filter(|e| MAILED.contains(&e.event_type.as_str()))
            .map(|e| e.aggregate_id.as_str())
            .collect();
        if mailing.is_empty() {
            return Ok(());
        }
        let mut first: BTreeMap<&str, i64> = BTreeMap::new();
        for e in batch.iter().filter(|e| mailing.contains(e.aggregate_id.as_str())) {
            first.entry(&e.aggregate_id).or_insert(e.sequence);
        }
        let before: Vec<(String, i64)> =
            first.iter().map(|(id, sequence)| (id.to_string(), *sequence)).collect();
        // Each as it stood before the batch, then through the batch.
        let mut states: HashMap<String, Requisition> = HashMap::new();
        let prefixes = reader::stream_prefixes(&mut *tx, Requisition::TYPE, &before)
            .await
            .context("reading the requisitions' earlier events")?;
        for e in prefixes {
            states.entry(e.aggregate_id.clone()).or_default().apply(e.decode()?);
        }
        let mut notices = Vec::new();
        for e in batch.iter().filter(|e| mailing.contains(e.aggregate_id.as_str())) {
            let event: RequisitionEvent = e.decode()?;
            let state = states.entry(e.aggregate_id.clone()).or_default();
            state.apply(event.clone());
            for notice in Notice::of(&event, state) {
                notices.push((e.global_position, state.clone(), notice));
            }
        }
        if notices.is_empty() {
            return Ok(());
        }
        let names = names(tx, &notices).await.context("reading the names mail mentions")?;
        let funds = fund_names(tx, &notices).await.context("reading the funds' names")?;
        let display = settings(tx).await.context("reading the runtime settings")?.currency_display;
        for (position, req, notice) in &notices {
            let Some(id) = req.id else { continue };
            let summary = RequisitionSummary {
                id,
                purpose: req.purpose.clone(),
                amount: req.currency.as_ref().map(|c| display.format(req.amount, c)).unwrap_or_default(),
                requester: req.requester_id.and_then(|r| names.get(&r).cloned()).unwrap_or_default(),
                fund: req.fund_id.and_then(|f| funds.get(&f).cloned()),
                payee: req.payee.clone(),
                possible_duplicates: req
                    .duplicates
                    .iter()
                    .filter(|d| d.dismissed.is_none())
                    .flat_map(|d| d.others.clone())
                    .collect(),
                duplicate_window_days: req.duplicates.as_ref().map_or(0, |d| d.window_days),
                budget_exceeded: req
                    .budget_exceeded
                    .iter()
                    .map(|f| {
                        let money =
                            |a| req.currency.as_ref().map(|c| display.format(a, c)).unwrap_or_default();
                        format!(
                            "the {} budget for {} of {} ({} paid already)",
                            f.scope.kind.as_str().replace('_', " "),
                            f.month,
                            money(f.budget),
                            money(f.consumed)
                        )
                    })
                    .collect(),
            };
            let audience = notice.audience();
            let recipients = recipients(tx, audience, req)
                .await
                .with_context(|| format!("finding the recipients ({audience:?})"))?;
            for to in recipients {
                let letter = notice.letter(&to.name, &summary, req, &names, &self.links);
                let rendered = letter.render();
                let mail = Mail {
                    category: letter.category,
                    recipient_user_id: Some(to.id),
                    recipient_email: to.email,
                    subject: rendered.subject,
                    body_text: rendered.text,
                    body_html: rendered.html,
                    link: Some(self.links.requisition(id)),
                    source_position: Some(*position),
                };
                if enqueue(tx, &mail).await.context("writing a mail into the outbox")? {
                    self.enqueued.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn after_commit(&self) {
        if self.enqueued.swap(false, Ordering::Relaxed) {
            pettycash_commands::mail::enqueued();
        }
    }
}

impl Notifications {
    /// Mail about advances: an overdue one reminds its holder (the account stream's id).
    async fn advances(&self, tx: &mut PgConnection, events: &[EventRow]) -> anyhow::Result<()> {
        let overdue: Vec<(&EventRow, AdvanceEvent)> = events
            .iter()
            .filter(|e| e.aggregate_type == AdvanceAccount::TYPE && e.event_type == "AdvanceOverdue")
            .map(|e| Ok((e, e.decode::<AdvanceEvent>()?)))
            .collect::<anyhow::Result<_>>()?;
        if overdue.is_empty() {
            return Ok(());
        }
        let display = settings(tx).await.context("reading the runtime settings")?.currency_display;
        for (e, event) in overdue {
            let AdvanceEvent::AdvanceOverdue { requisition_id, due_at, outstanding, .. } = event else {
                continue;
            };
            let Ok(holder) = e.aggregate_id.parse::<Id>() else { continue };
            let currency: Option<(String,)> =
                sqlx::query_as("SELECT currency FROM advances WHERE requisition_id = $1")
                    .bind(requisition_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let amount = match currency.and_then(|(c,)| Currency::parse(&c).ok()) {
                Some(c) => display.format(outstanding, &c),
                None => outstanding.to_string(),
            };
            let to: Option<(String, String)> =
                sqlx::query_as("SELECT name, email FROM users WHERE id = $1 AND active")
                    .bind(holder)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name, email)) = to else { continue };
            let letter = templates::advance_overdue(
                &name,
                requisition_id,
                &amount,
                &due_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                &self.links,
            );
            let rendered = letter.render();
            let mail = Mail {
                category: letter.category,
                recipient_user_id: Some(holder),
                recipient_email: email,
                subject: rendered.subject,
                body_text: rendered.text,
                body_html: rendered.html,
                link: Some(self.links.requisition(requisition_id)),
                source_position: Some(e.global_position),
            };
            if enqueue(tx, &mail).await.context("writing a mail into the outbox")? {
                self.enqueued.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The names of the requesters and deciders the notices mention.
async fn names(
    tx: &mut PgConnection,
    notices: &[(i64, Requisition, Notice)],
) -> sqlx::Result<HashMap<Id, String>> {
    let mut ids: Vec<Id> = Vec::new();
    for (_, req, notice) in notices {
        ids.extend(req.requester_id);
        if let Notice::Rejected { by, .. } | Notice::ChangesRequested { by, .. } = notice {
            ids.push(*by);
        }
    }
    let rows: Vec<(Id, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ANY ($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The runtime settings as they are now (like `users`, read when the batch is applied): how
/// amounts are written (`currency_display`). The settings stream is short (one event per
/// change), and read only for batches that mail.
pub(crate) async fn settings(tx: &mut PgConnection) -> anyhow::Result<Settings> {
    let mut settings = RuntimeSettings::default();
    for e in reader::stream_prefixes(&mut *tx, RuntimeSettings::TYPE, &[(SETTINGS_ID.to_string(), i64::MAX)])
        .await?
    {
        settings.apply(e.decode()?);
    }
    Ok(settings.values)
}

/// The names of the notices' funds, from each fund's first event (`FundOpened`; a fund's name
/// never changes).
async fn fund_names(
    tx: &mut PgConnection,
    notices: &[(i64, Requisition, Notice)],
) -> anyhow::Result<HashMap<Id, String>> {
    let mut funds: Vec<(String, i64)> =
        notices.iter().filter_map(|(_, r, _)| r.fund_id).map(|f| (f.to_string(), 2)).collect();
    funds.sort();
    funds.dedup();
    let mut names = HashMap::new();
    for e in reader::stream_prefixes(&mut *tx, Fund::TYPE, &funds).await? {
        if let (Ok(id), FundEvent::FundOpened { name, .. }) = (e.aggregate_id.parse(), e.decode()?) {
            names.insert(id, name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pettycash_domain::requisition::{Approval, Status};
    use rust_decimal::Decimal;

    fn pending(chain: Vec<Role>, approved: usize) -> Requisition {
        Requisition {
            chain: chain.clone(),
            status: if approved < chain.len() { Status::PendingApproval } else { Status::Approved },
            approvals: (0..approved)
                .map(|step| Approval {
                    step,
                    role: chain[step],
                    approver_id: Id::new_v4(),
                    on_behalf_of: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn each_approval_but_the_last_asks_the_next_step_and_the_last_tells_requester_and_treasury() {
        let chain = vec![Role::DepartmentHead, Role::GroupFinanceManager, Role::Cfo];
        let approved = |step, completes_chain| RequisitionEvent::RequisitionApproved {
            step,
            role: chain[step],
            approver_id: Id::new_v4(),
            completes_chain,
            comment: None,
            due: None,
            on_behalf_of: None,
            delegation_id: None,
        };
        let submitted = RequisitionEvent::RequisitionSubmitted {
            amount: Decimal::ONE,
            chain: chain.clone(),
            policy_version: 1,
            submitted_by: Id::new_v4(),
            threshold: None,
            eligible: None,
            comment: None,
            due: None,
        };
        assert_eq!(
            Notice::of(&submitted, &pending(chain.clone(), 0)),
            [Notice::ApprovalRequested { step: 0 }]
        );
        assert_eq!(
            Notice::of(&approved(0, false), &pending(chain.clone(), 1)),
            [Notice::ApprovalRequested { step: 1 }]
        );
        assert_eq!(
            Notice::of(&approved(2, true), &pending(chain.clone(), 3)),
            [Notice::Approved, Notice::ReadyForPayment]
        );
        // A step escalated to the next one at submission is skipped: the next step is asked.
        let skipping = Requisition {
            eligible: Some(vec![vec![], vec![Id::new_v4()], vec![]]),
            ..pending(chain.clone(), 0)
        };
        assert_eq!(Notice::of(&submitted, &skipping), [Notice::ApprovalRequested { step: 1 }]);
        assert_eq!(Notice::ApprovalRequested { step: 1 }.audience(), Audience::Approvers { step: 1 });
        assert_eq!(Notice::ReadyForPayment.audience(), Audience::Payers);
        assert_eq!(Notice::Approved.audience(), Audience::Requester);
    }

    #[test]
    fn drafts_edits_and_cancellations_mail_nobody() {
        let cancelled = RequisitionEvent::RequisitionCancelled { cancelled_by: Id::new_v4(), reason: None };
        assert!(Notice::of(&cancelled, &Requisition::default()).is_empty());
        assert!(!MAILED.contains(&"RequisitionCancelled") && !MAILED.contains(&"RequisitionEdited"));
    }
}
