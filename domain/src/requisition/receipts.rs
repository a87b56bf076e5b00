//! Receipts on a requisition (issue #14 [treasury]).
//!
//! The file itself lives in object storage, addressed by its SHA-256 (the command side's
//! `receipts` module stores it and checks its type by content); the requisition records only
//! what identifies it: `ReceiptAttached { receipt_id, sha256, size, content_type,
//! original_name, attached_by }`. The name is sanitised here too ([`clean_file_name`]), so no
//! caller can record a path or control characters.
//!
//! Who may attach: the **requester**, in any status but `rejected`, `cancelled` or `expired`
//! (a quote before submission, the receipts after payment); and **treasury**, on a `paid`
//! requisition only (the payer files the signed cash slip), never on one they requested or
//! approved through another path than the requester rule. Anyone else: `not_requester`.
//! The same file (same SHA-256) is attached to a requisition once (`receipt_refused`); at most
//! [`MAX_RECEIPTS`] receipts per requisition.
//!
//! Paid requisitions with no receipt `receipt_reminder_days` after payment remind the
//! requester once: `ReceiptOverdue { days }`, recorded by the service's scheduler
//! (`RemindReceipt`), mailed by the `notifications` projection.

use super::{Requisition, RequisitionEvent, Status};
use crate::error::DomainError;
use crate::{Actor, Id, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most bytes a receipt may have.
pub const MAX_RECEIPT_BYTES: u64 = 10 * 1024 * 1024;
/// Most receipts one requisition may hold.
pub const MAX_RECEIPTS: usize = 20;
/// Longest original name kept, in characters.
pub const NAME_MAX: usize = 120;
/// The media types a receipt may have (checked by content where the file arrives).
pub const CONTENT_TYPES: [&str; 3] = ["image/jpeg", "image/png", "application/pdf"];

/// A receipt as the requisition records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: Id,
    /// Lowercase hex SHA-256 of the content: where the file is stored.
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub original_name: String,
    pub attached_by: Id,
}

/// A stored file, described by whoever stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFile {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// As uploaded; sanitised by [`clean_file_name`] before it is recorded.
    pub original_name: String,
}

/// The file name without any directory part, control or bidirectional-override characters,
/// quotes or backslashes, trimmed and cut to [`NAME_MAX`] characters (keeping the extension
/// when it is short); `receipt` when nothing is left.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '"' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        return "receipt".into();
    }
    if trimmed.chars().count() <= NAME_MAX {
        return trimmed.to_string();
    }
    let ext = trimmed.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.is_empty() && e.chars().count() <= 8);
    match ext {
        Some(ext) => {
            let keep = NAME_MAX - ext.chars().count() - 1;
            let stem: String = trimmed.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end())
        }
        None => trimmed.chars().take(NAME_MAX).collect(),
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Requisition {
    /// `AttachReceipt`: see the module's rules.
    pub(super) fn decide_attach_receipt(
        &self,
        receipt_id: Id,
        file: ReceiptFile,
        actor: &Actor,
    ) -> Result<RequisitionEvent, DomainError> {
        self.currency()?;
        const ACTION: &str = "attach a receipt to";
        if self.requester_id == Some(actor.user_id) {
            if matches!(self.status, Status::Rejected | Status::Cancelled | Status::Expired) {
                return Err(DomainError::InvalidTransition { status: self.status, action: ACTION });
            }
        } else if actor.has(Role::Treasury) {
            if self.status != Status::Paid {
                return Err(DomainError::Receipt(
                    "treasury attaches receipts to paid requisitions only; before payment, the requester does",
                ));
            }
        } else {
            return Err(DomainError::NotRequester { action: ACTION });
        }
        if !is_sha256(&file.sha256) {
            return Err(DomainError::invalid("file", "the SHA-256 must be 64 lowercase hex digits"));
        }
        if file.size == 0 || file.size > MAX_RECEIPT_BYTES {
            return Err(DomainError::invalid("file", format!("must be 1 to {MAX_RECEIPT_BYTES} bytes")));
        }
        if !CONTENT_TYPES.contains(&file.content_type.as_str()) {
            return Err(DomainError::invalid("file", "must be a JPEG, PNG or PDF file"));
        }
        if self.receipts.iter().any(|r| r.sha256 == file.sha256) {
            return Err(DomainError::Receipt("this file is already attached to the requisition"));
        }
        if self.receipts.len() >= MAX_RECEIPTS {
            return Err(DomainError::Receipt("the requisition has the most receipts it may hold (20)"));
        }
        Ok(RequisitionEvent::ReceiptAttached {
            receipt_id,
            sha256: file.sha256,
            size: file.size,
            content_type: file.content_type,
            original_name: clean_file_name(&file.original_name),
            attached_by: actor.user_id,
        })
    }

    /// `RemindReceipt`: paid at `paid_at` (the payment event's time, looked up by the caller),
    /// `days` (> 0) passed by `now`, no receipt, not reminded before.
    pub(super) fn decide_remind_receipt(
        &self,
        paid_at: DateTime<Utc>,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<RequisitionEvent, DomainError> {
        self.currency()?;
        self.require_status(&[Status::Paid], "remind about the receipts of")?;
        if days == 0
            || !self.receipts.is_empty()
            || self.receipt_reminded
            || paid_at + chrono::Duration::days(i64::from(days)) > now
        {
            return Err(DomainError::NotDueYet);
        }
        Ok(RequisitionEvent::ReceiptOverdue { days })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_control_characters_and_length() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\me\\taxi.pdf"), "taxi.pdf");
        assert_eq!(clean_file_name("a\u{0}b\r\n\"c\u{202E}fdp.exe"), "abcfdp.exe");
        assert_eq!(clean_file_name("  ..hidden.png "), "hidden.png");
        assert_eq!(clean_file_name("/"), "receipt");
        let long = format!("{}.jpeg", "x".repeat(500));
        let cleaned = clean_file_name(&long);
        assert_eq!(cleaned.chars().count(), NAME_MAX);
        assert!(cleaned.ends_with("x.jpeg"));
    }
}
