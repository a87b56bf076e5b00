//! One-time payment codes (issue #14 [treasury]): treasury pays in two steps, first asking
//! for a code (mailed to the paying user), then executing the payment with it.
//!
//! The code itself and its keyed hash never enter the event store: the `payment_codes` table
//! (migration 0016) holds the hash, bound to the requisition, the payer, the amount and the
//! method. The events only say that a code was issued (`PaymentCodeIssued`) or a code was
//! refused (`PaymentCodeRejected`), so that the audit trail (and the `otp_failures` alert of
//! [reports]) sees every attempt.
//!
//! This module holds the pure rules: how long a code lives, how many wrong attempts it takes,
//! how often one may be asked for, and the one decision on a code given at an instant
//! ([`check_code`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Digits of a code.
pub const CODE_DIGITS: u32 = 6;
/// How long a code may be used after it was issued.
pub const CODE_VALID_MINUTES: i64 = 5;
/// Wrong attempts after which the code is dead (a new one must be asked for).
pub const CODE_MAX_ATTEMPTS: u32 = 5;
/// A payer asks at most once in this many seconds for a code for one requisition.
pub const CODE_REQUEST_INTERVAL_SECS: i64 = 30;
/// A payer asks at most this many codes for one requisition within an hour.
pub const CODE_REQUESTS_PER_HOUR: i64 = 5;

/// The lifecycle of a payment through a provider (`provider_payments.status`):
/// `executing` → `succeeded` | `failed`. Its one text form is [`ProviderPaymentStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderPaymentStatus {
    /// Started; the money has not left yet (the fund holds it reserved).
    Executing,
    /// The provider paid it.
    Succeeded,
    /// It failed for good; the reservation was released.
    Failed,
}

impl ProviderPaymentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderPaymentStatus::Executing => "executing",
            ProviderPaymentStatus::Succeeded => "succeeded",
            ProviderPaymentStatus::Failed => "failed",
        }
    }

    /// Where a settled payment ends.
    pub const fn settled(succeeded: bool) -> Self {
        if succeeded {
            ProviderPaymentStatus::Succeeded
        } else {
            ProviderPaymentStatus::Failed
        }
    }
}

/// A bulk payment batch (`payment_batches.status`): `open` while any of its payments is
/// executing, then `settled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Open,
    Settled,
}

impl BatchStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Open => "open",
            BatchStatus::Settled => "settled",
        }
    }
}

/// Why a payment code was refused. Each has its own stable error code (`code()`), all name
/// the request field `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeProblem {
    /// The request carried no code, and none is waived for it.
    Missing,
    /// No code was issued to this payer for this requisition.
    NotIssued,
    /// The code given is the one issued to another user for this requisition.
    NotYours,
    /// The code is older than [`CODE_VALID_MINUTES`].
    Expired,
    /// The code was used already.
    Used,
    /// The code given is not the one issued.
    Wrong,
    /// [`CODE_MAX_ATTEMPTS`] wrong attempts were made: a new code is needed.
    Locked,
}

impl CodeProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeProblem::Missing => "missing",
            CodeProblem::NotIssued => "not_issued",
            CodeProblem::NotYours => "not_yours",
            CodeProblem::Expired => "expired",
            CodeProblem::Used => "used",
            CodeProblem::Wrong => "wrong",
            CodeProblem::Locked => "locked",
        }
    }

    /// The stable error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            CodeProblem::Missing => "payment_code_missing",
            CodeProblem::NotIssued => "payment_code_not_issued",
            CodeProblem::NotYours => "payment_code_not_yours",
            CodeProblem::Expired => "payment_code_expired",
            CodeProblem::Used => "payment_code_used",
            CodeProblem::Wrong => "payment_code_wrong",
            CodeProblem::Locked => "payment_code_locked",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CodeProblem::Missing => "this payment needs a one-time code: request one, it is mailed to you",
            CodeProblem::NotIssued => "no code was issued to you for this requisition: request one",
            CodeProblem::NotYours => "this code was issued to another user: request your own",
            CodeProblem::Expired => "the code expired: request a new one",
            CodeProblem::Used => "the code was used already: request a new one",
            CodeProblem::Wrong => "the code is not the one mailed to you",
            CodeProblem::Locked => "too many wrong codes: request a new one",
        }
    }
}

/// A code as stored, as far as the check needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCode {
    pub issued_at: DateTime<Utc>,
    pub attempts: u32,
    pub used: bool,
}

impl IssuedCode {
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.issued_at + Duration::minutes(CODE_VALID_MINUTES)
    }
}

/// The decision on a code given at `now` against the latest code issued to the payer for the
/// requisition (`None`: none); `matches` tells whether the given code's keyed hash is the
/// stored one. A used, locked or expired code is refused whatever was given.
pub fn check_code(issued: Option<&IssuedCode>, now: DateTime<Utc>, matches: bool) -> Result<(), CodeProblem> {
    let Some(code) = issued else {
        return Err(CodeProblem::NotIssued);
    };
    if code.used {
        return Err(CodeProblem::Used);
    }
    if code.attempts >= CODE_MAX_ATTEMPTS {
        return Err(CodeProblem::Locked);
    }
    if now >= code.expires_at() {
        return Err(CodeProblem::Expired);
    }
    if !matches {
        return Err(CodeProblem::Wrong);
    }
    Ok(())
}

/// Whether a payer who asked for codes for one requisition at `earlier` (newest first) may ask
/// again at `now`; `Err(seconds)` to wait otherwise.
pub fn may_request_code(earlier: &[DateTime<Utc>], now: DateTime<Utc>) -> Result<(), u64> {
    if let Some(last) = earlier.first() {
        let next = *last + Duration::seconds(CODE_REQUEST_INTERVAL_SECS);
        if now < next {
            return Err((next - now).num_seconds().max(1) as u64);
        }
    }
    let hour_ago = now - Duration::hours(1);
    let recent: Vec<_> = earlier.iter().filter(|t| **t > hour_ago).collect();
    if recent.len() as i64 >= CODE_REQUESTS_PER_HOUR {
        let oldest = recent.iter().min().copied().copied().unwrap_or(now);
        return Err(((oldest + Duration::hours(1)) - now).num_seconds().max(1) as u64);
    }
    Ok(())
}

/// Whether `code` is well-formed: exactly [`CODE_DIGITS`] ASCII digits.
pub fn well_formed(code: &str) -> bool {
    code.len() == CODE_DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn issued(attempts: u32, used: bool) -> IssuedCode {
        IssuedCode { issued_at: at(0), attempts, used }
    }

    #[test]
    fn a_fresh_code_that_matches_is_accepted_until_it_expires() {
        assert_eq!(check_code(Some(&issued(0, false)), at(4), true), Ok(()));
        assert_eq!(check_code(Some(&issued(4, false)), at(4), true), Ok(()), "four wrong attempts leave one");
        assert_eq!(check_code(Some(&issued(0, false)), at(5), true), Err(CodeProblem::Expired));
    }

    #[test]
    fn used_locked_missing_and_wrong_codes_are_refused_each_with_its_reason() {
        assert_eq!(check_code(None, at(1), true), Err(CodeProblem::NotIssued));
        assert_eq!(check_code(Some(&issued(0, true)), at(1), true), Err(CodeProblem::Used));
        assert_eq!(check_code(Some(&issued(5, false)), at(1), true), Err(CodeProblem::Locked));
        assert_eq!(check_code(Some(&issued(0, false)), at(1), false), Err(CodeProblem::Wrong));
        let codes: std::collections::HashSet<_> = [
            CodeProblem::Missing,
            CodeProblem::NotIssued,
            CodeProblem::NotYours,
            CodeProblem::Expired,
            CodeProblem::Used,
            CodeProblem::Wrong,
            CodeProblem::Locked,
        ]
        .map(CodeProblem::code)
        .into();
        assert_eq!(codes.len(), 7, "distinct error codes");
    }

    #[test]
    fn codes_are_asked_for_at_most_every_thirty_seconds_and_five_times_an_hour() {
        assert_eq!(may_request_code(&[], at(0)), Ok(()));
        let just = [at(0)];
        assert_eq!(may_request_code(&just, at(0) + Duration::seconds(10)), Err(20));
        assert_eq!(may_request_code(&just, at(0) + Duration::seconds(30)), Ok(()));
        let five = [at(40), at(30), at(20), at(10), at(0)];
        assert_eq!(may_request_code(&five, at(50)), Err(10 * 60));
        assert_eq!(may_request_code(&five, at(60) + Duration::seconds(1)), Ok(()));
    }

    #[test]
    fn only_six_digits_make_a_code() {
        assert!(well_formed("012345"));
        for bad in ["12345", "1234567", "12345a", " 12345", "１２３４５６"] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
