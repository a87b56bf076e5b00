//! `verify` for possible duplicates and FP&A's review after payment
//! (`pettycash_domain::requisition`'s `review` module): a review or flag is by someone who held
//! `fpa` then, on a paid requisition, once (a flag may follow a review), by nobody who took
//! part in it (requester, approver of any round, who asked for changes, payer) nor anyone they
//! sponsored; a duplicate flag is dismissed by someone other than the requester, only while it
//! stands.

use super::{ReqV, Verifier};
use crate::EventRow;
use pettycash_domain::requisition::{RequisitionEvent, Status};
use pettycash_domain::Role;
use uuid::Uuid;

/// What `verify` follows of a requisition for these checks.
#[derive(Debug, Clone, Default)]
pub(super) struct ChecksV {
    /// Everyone who sent it back for changes, any round.
    pub(super) sent_back_by: Vec<Uuid>,
    pub(super) payer: Option<Uuid>,
    /// `reviewed` or `flagged`, once one was recorded.
    pub(super) review: Option<&'static str>,
    /// A duplicate flag waits for its submission / stands undismissed.
    pub(super) duplicate_pending: bool,
    pub(super) duplicate_standing: bool,
}

impl ChecksV {
    /// How `user` took part in `r`, if they did.
    fn part(r: &ReqV, user: Uuid) -> Option<&'static str> {
        if r.requester == Some(user) {
            Some("requester")
        } else if r.approvers.contains(&user) {
            Some("approver")
        } else if r.checks.sent_back_by.contains(&user) {
            Some("approver who asked for changes")
        } else if r.checks.payer == Some(user) {
            Some("payer")
        } else {
            None
        }
    }
}

impl Verifier {
    /// Follows what the other arms do not (who sent it back, who paid), before they run.
    pub(super) fn note_participants(&mut self, id: Uuid, ev: &RequisitionEvent) {
        let r = self.requisitions.entry(id).or_default();
        match ev {
            RequisitionEvent::ChangesRequested { requested_by, .. } => {
                r.checks.sent_back_by.push(*requested_by)
            }
            RequisitionEvent::RequisitionPaid { paid_by, .. } => r.checks.payer = Some(*paid_by),
            RequisitionEvent::RequisitionSubmitted { .. } => {
                r.checks.duplicate_standing = std::mem::take(&mut r.checks.duplicate_pending);
            }
            _ => {}
        }
    }

    /// Checks and folds `DuplicateSuspected`, `DuplicateDismissed`, `PaymentReviewed` and
    /// `PaymentFlagged`.
    pub(super) fn review_event(&mut self, e: &EventRow, id: Uuid, ev: RequisitionEvent) {
        use RequisitionEvent as E;
        match ev {
            E::DuplicateSuspected { .. } => {
                self.requisitions.entry(id).or_default().checks.duplicate_pending = true
            }
            E::DuplicateDismissed { dismissed_by, .. } => {
                let r = self.requisitions.entry(id).or_default();
                let standing = std::mem::take(&mut r.checks.duplicate_standing);
                let (requester, status) = (r.requester == Some(dismissed_by), r.status);
                if requester {
                    self.flag(
                        e,
                        "duplicate_dismissed_by_requester",
                        format!("dismissed by its requester {dismissed_by}"),
                    );
                }
                if !standing || status != Status::PendingApproval {
                    self.flag(
                        e,
                        "duplicate_dismissed_without_flag",
                        format!("dismissed while {status} with no standing duplicate flag"),
                    );
                }
            }
            E::PaymentReviewed { reviewed_by: by, .. } => self.reviewed(e, id, by, "reviewed"),
            E::PaymentFlagged { flagged_by: by, .. } => self.reviewed(e, id, by, "flagged"),
            _ => {}
        }
    }

    fn reviewed(&mut self, e: &EventRow, id: Uuid, by: Uuid, outcome: &'static str) {
        let lacks_role = !self.holds(by, Role::Fpa);
        let r = self.requisitions.entry(id).or_default();
        let part = ChecksV::part(r, by);
        let sponsored =
            self.sponsors.get(&by).is_some_and(|s| s.iter().any(|sp| ChecksV::part(r, *sp).is_some()));
        let status = r.status;
        let earlier = r.checks.review;
        // A flag may follow a review; nothing else follows either.
        let twice = earlier.is_some_and(|before| !(before == "reviewed" && outcome == "flagged"));
        r.checks.review = Some(outcome);
        if lacks_role {
            self.flag(
                e,
                "reviewer_lacks_role",
                format!("{outcome} by {by}, who did not hold fpa at this position"),
            );
        }
        if let Some(part) = part {
            self.flag(e, "reviewed_by_participant", format!("{outcome} by {by}, its {part}"));
        }
        if sponsored {
            self.flag(
                e,
                "reviewed_by_sponsored",
                format!("{outcome} by {by}, registered or given a role by someone who took part in it"),
            );
        }
        if status != Status::Paid {
            self.flag(e, "reviewed_before_payment", format!("{outcome} while {status}"));
        }
        if twice {
            self.flag(e, "reviewed_twice", format!("{outcome} after it was {}", earlier.unwrap_or_default()));
        }
    }
}
