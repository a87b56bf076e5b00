//! `verify` for receipts (domain `requisition::receipts`): every file a `ReceiptAttached`
//! names is read back from the receipt store (the service's `MEDIA_ROOT` or S3 bucket) and
//! its SHA-256 compared: `receipt_missing` when it is not there, `receipt_changed` when its
//! content no longer has the recorded hash. From the events alone: a receipt attached by
//! someone who was neither the requester nor (on a paid requisition) a treasury holder is
//! `receipt_not_allowed`; a `ReceiptOverdue` on a requisition that was not paid, or had a
//! receipt, is `receipt_reminder_not_due`.

use super::Verifier;
use crate::{EventRow, Failure};
use pettycash_commands::receipts::{FileCheck, ReceiptStore};
use pettycash_domain::requisition::{RequisitionEvent, Status};
use pettycash_domain::Role;
use uuid::Uuid;

/// What `verify` could not check without a receipt store.
pub const NO_RECEIPT_STORE: &str = "receipt files: no receipt store given; files were not read back";

/// Where a file was first named.
#[derive(Debug, Clone)]
pub(super) struct Named {
    position: i64,
    aggregate_id: String,
}

impl Verifier {
    pub(super) fn receipt_event(&mut self, e: &EventRow, id: Uuid, ev: RequisitionEvent) {
        use RequisitionEvent as E;
        match ev {
            E::ReceiptAttached { sha256, attached_by, .. } => {
                let (requester, status) = {
                    let r = self.requisitions.entry(id).or_default();
                    r.receipts += 1;
                    (r.requester, r.status)
                };
                let allowed = requester == Some(attached_by)
                    || (status == Status::Paid && self.holds(attached_by, Role::Treasury));
                if !allowed {
                    self.flag(
                        e,
                        "receipt_not_allowed",
                        format!(
                            "attached by {attached_by}, neither its requester nor treasury on a paid requisition (it was {status})"
                        ),
                    );
                }
                self.receipt_files
                    .entry(sha256)
                    .or_insert(Named { position: e.global_position, aggregate_id: e.aggregate_id.clone() });
            }
            E::ReceiptOverdue { .. } => {
                let r = self.requisitions.entry(id).or_default();
                let (status, receipts) = (r.status, r.receipts);
                if status != Status::Paid || receipts > 0 {
                    self.flag(
                        e,
                        "receipt_reminder_not_due",
                        format!("a missing-receipt reminder on a requisition that was {status} with {receipts} receipt(s)"),
                    );
                }
            }
            _ => {}
        }
    }

    /// Reads back every file named so far.
    pub(super) async fn check_receipts(&mut self, store: &ReceiptStore) -> Result<(), Failure> {
        let files: Vec<(String, Named)> = std::mem::take(&mut self.receipt_files).into_iter().collect();
        for (sha256, named) in &files {
            let problem = match store.check(sha256).await? {
                FileCheck::Intact => continue,
                FileCheck::Missing => {
                    ("receipt_missing", format!("receipt file {sha256} is not in the receipt store"))
                }
                FileCheck::Changed { sha256: actual, size } => (
                    "receipt_changed",
                    format!("receipt file {sha256} now holds other content ({size} bytes, SHA-256 {actual})"),
                ),
            };
            self.violations.push(super::Violation {
                position: named.position,
                aggregate_type: "requisition".into(),
                aggregate_id: named.aggregate_id.clone(),
                rule: problem.0,
                detail: problem.1,
            });
        }
        self.receipt_files = files.into_iter().collect();
        Ok(())
    }
}
