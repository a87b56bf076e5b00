//! Two checks on a requisition that sit beside its approval chain, never inside it (issue 13,
//! [workflow]):
//!
//! - **Possible duplicates.** At submission the command service looks up the requester's other
//!   requisitions with the same payee (trimmed, case-insensitive), amount and currency,
//!   submitted within the `duplicate_window_days` setting and not cancelled, and passes their
//!   ids in [`DuplicateCheck`]. When there are any, `DuplicateSuspected` is recorded, in the
//!   same transaction **just before** the `RequisitionSubmitted` it concerns: applying the
//!   submission takes it over as the round's flag (a submission without one clears the flag of
//!   an earlier round), so whoever folds the submission (the `notifications` projection mailing
//!   the approvers) already knows about it. An approver who may decide the current step can
//!   dismiss the flag with a reason (`DuplicateDismissed`). The flag warns; it does not block:
//!   approving while it stands is allowed, as the issue asks only that it be flagged.
//! - **Post-payment review by FP&A.** A paid requisition is marked reviewed
//!   (`PaymentReviewed`) or flagged (`PaymentFlagged`, with a reason) by an `fpa` user who took
//!   no part in it: not its requester, an approver of any round, someone who sent it back for
//!   changes, its payer, nor anyone one of those registered or gave a role to. Once: a second
//!   review, a review after a flag and a second flag are refused (`already_reviewed`), but a
//!   flag may follow a review, so that something found later can still be raised.

use super::{Requisition, RequisitionEvent, Status, REASON_MAX};
use crate::error::{clean_optional, clean_text, DomainError};
use crate::{Actor, Id, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the caller found at submission: the requester's other requisitions that look like this
/// one, within `window_days` (0: the check is off, and `others` is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicateCheck {
    pub others: Vec<Id>,
    pub window_days: u32,
}

/// The round's possible-duplicate flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateFlag {
    /// The other requisitions, sorted.
    pub others: Vec<Id>,
    pub window_days: u32,
    /// Set once an approver dismissed it.
    pub dismissed: Option<Dismissal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dismissal {
    pub by: Id,
    pub reason: String,
}

/// Reviewed, or flagged for a closer look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Reviewed,
    Flagged,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Reviewed => "reviewed",
            ReviewStatus::Flagged => "flagged",
        }
    }
}

/// FP&A's review of a paid requisition: the latest (a flag after a review replaces it in the
/// state; the history keeps both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReview {
    pub status: ReviewStatus,
    pub by: Id,
    pub at: DateTime<Utc>,
    /// The reviewer's comment (reviewed; optional).
    pub comment: Option<String>,
    /// Why it was flagged (flagged; required).
    pub reason: Option<String>,
}

impl Requisition {
    /// How `user` took part in this requisition, if they did: the reason an FP&A review by them
    /// is refused.
    pub fn part_taken_by(&self, user: Id) -> Option<&'static str> {
        if self.requester_id == Some(user) {
            Some("requester")
        } else if self.approvals.iter().any(|a| a.approver_id == user)
            || self.former_approvers.contains(&user)
        {
            Some("approver")
        } else if self.overridden_by == Some(user) {
            Some("admin who overrode its approval")
        } else if self.sent_back_by.contains(&user) {
            Some("approver who asked for changes")
        } else if self.payment.as_ref().is_some_and(|p| p.paid_by == user) {
            Some("payer")
        } else {
            None
        }
    }

    /// Everyone who took part: requester, approvers of every round, the admin who overrode its
    /// approval, those who asked for changes, the payer.
    fn participants(&self) -> Vec<Id> {
        self.requester_id
            .into_iter()
            .chain(self.approvals.iter().map(|a| a.approver_id))
            .chain(self.former_approvers.iter().copied())
            .chain(self.sent_back_by.iter().copied())
            .chain(self.overridden_by)
            .chain(self.payment.as_ref().map(|p| p.paid_by))
            .collect()
    }

    /// The checks of `MarkReviewed` and `FlagAfterPayment` (`flag`): the event's common facts.
    fn check_reviewer(&self, actor: &Actor, flag: bool) -> Result<(), DomainError> {
        let action = if flag { "flag" } else { "review" };
        self.currency()?;
        if !actor.has(Role::Fpa) {
            return Err(DomainError::MissingRole { required: Role::Fpa });
        }
        self.require_status(&[Status::Paid], action)?;
        // A flag may follow a review (something found later); nothing else follows either.
        if let Some(review) = &self.review {
            if !(flag && review.status == ReviewStatus::Reviewed) {
                return Err(DomainError::AlreadyReviewed { status: review.status.as_str() });
            }
        }
        if let Some(part) = self.part_taken_by(actor.user_id) {
            return Err(DomainError::ReviewerTookPart { part });
        }
        if self.participants().iter().any(|p| actor.sponsors.contains(p)) {
            return Err(DomainError::SponsoredByParticipant { action });
        }
        Ok(())
    }

    pub(super) fn decide_review(
        &self,
        comment: Option<String>,
        now: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<RequisitionEvent, DomainError> {
        self.check_reviewer(actor, false)?;
        let comment = clean_optional("comment", comment.as_deref(), REASON_MAX)?;
        Ok(RequisitionEvent::PaymentReviewed { reviewed_by: actor.user_id, comment, at: now })
    }

    pub(super) fn decide_flag(
        &self,
        reason: &str,
        now: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<RequisitionEvent, DomainError> {
        self.check_reviewer(actor, true)?;
        let reason = clean_text("reason", reason, REASON_MAX, true)?;
        Ok(RequisitionEvent::PaymentFlagged { flagged_by: actor.user_id, reason, at: now })
    }

    /// The `DuplicateSuspected` a submission records first, when the caller found others.
    pub(super) fn duplicate_event(&self, check: DuplicateCheck) -> Option<RequisitionEvent> {
        let mut others: Vec<Id> = check.others.into_iter().filter(|o| Some(*o) != self.id).collect();
        others.sort();
        others.dedup();
        (check.window_days > 0 && !others.is_empty())
            .then_some(RequisitionEvent::DuplicateSuspected { others, window_days: check.window_days })
    }

    /// Someone who may decide the current step dismisses the round's duplicate flag.
    pub(super) fn decide_dismiss_duplicate(
        &self,
        reason: &str,
        actor: &Actor,
    ) -> Result<RequisitionEvent, DomainError> {
        let action = "dismiss the duplicate flag of";
        let (_, role) = self.check_decider(actor, action)?;
        self.check_not_sponsored(actor, action)?;
        self.check_eligible(actor, role)?;
        if self.duplicates.as_ref().is_none_or(|d| d.dismissed.is_some()) {
            return Err(DomainError::NoDuplicateFlag);
        }
        let reason = clean_text("reason", reason, REASON_MAX, true)?;
        Ok(RequisitionEvent::DuplicateDismissed { dismissed_by: actor.user_id, reason })
    }

    /// Applies the events of this module.
    pub(super) fn apply_review(&mut self, event: RequisitionEvent) {
        use RequisitionEvent as E;
        match event {
            E::DuplicateSuspected { others, window_days } => {
                self.next_duplicates = Some(DuplicateFlag { others, window_days, dismissed: None });
            }
            E::DuplicateDismissed { dismissed_by, reason } => {
                if let Some(flag) = self.duplicates.as_mut() {
                    flag.dismissed = Some(Dismissal { by: dismissed_by, reason });
                }
            }
            E::PaymentReviewed { reviewed_by, comment, at } => {
                self.review = Some(PaymentReview {
                    status: ReviewStatus::Reviewed,
                    by: reviewed_by,
                    at,
                    comment,
                    reason: None,
                });
            }
            E::PaymentFlagged { flagged_by, reason, at } => {
                self.review = Some(PaymentReview {
                    status: ReviewStatus::Flagged,
                    by: flagged_by,
                    at,
                    comment: None,
                    reason: Some(reason),
                });
            }
            _ => {}
        }
    }
}
