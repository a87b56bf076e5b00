//! Payment providers (issue #14 [treasury]): what the service asks a bank or mobile-money
//! provider, and how it reads the provider's authenticated callback.
//!
//! A payment through a provider is sent as numbered attempts; each attempt has the
//! idempotency id `{payment_id}-{attempt}` (the originator conversation id of M-Pesa B2C). The
//! provider refuses a second request with an id it has seen, so re-sending the SAME id after a
//! lost request can never pay twice; a NEW attempt id is used only after the provider said the
//! previous attempt failed.
//!
//! Two providers are built: the [`simulator::Simulator`] (the default, `PAYMENT_PROVIDER=simulator`,
//! in process, HMAC-signed callbacks) and [`daraja::Daraja`], Safaricom's M-Pesa B2C
//! (`PAYMENT_PROVIDER=daraja`: OAuth consumer key and secret, initiator name and security
//! credential, short code, callbacks to `{PUBLIC_URL}/api/providers/daraja/callback?token=…`
//! authenticated by the token). Each decides which of its result codes are retryable.

pub mod daraja;
pub mod simulator;

use async_trait::async_trait;
use rust_decimal::Decimal;
use uuid::Uuid;

/// One attempt of a payment, as sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    /// `{payment_id}-{attempt}`: the provider refuses an id it has seen.
    pub originator_conversation_id: String,
    pub amount: Decimal,
    pub currency: String,
    /// A mobile number (`254…`) or a bank account.
    pub destination: String,
    /// `bank` or `mobile_money`.
    pub method: String,
}

/// The provider's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Accepted for processing: the result comes by callback (or status query).
    Accepted,
    /// Refused at once (e.g. a duplicate id).
    Refused { code: String, reason: String },
}

/// What the provider knows of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptStatus {
    Pending,
    Succeeded {
        receipt: String,
    },
    Failed {
        result_code: String,
        reason: String,
    },
    /// The provider never received it.
    NotFound,
}

/// A callback's content, once its signature is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackResult {
    pub originator_conversation_id: String,
    pub status: AttemptStatus,
}

/// What authenticates a callback: the simulator signs the body (`signature`, its header);
/// Daraja signs nothing, so the callback URL carries a shared secret (`token`, the query).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackAuth<'a> {
    pub signature: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback's signature or token is missing or wrong")]
    Forged,
    #[error("the callback's body is not a result: {0}")]
    Malformed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("the payment provider could not be reached: {0}")]
pub struct ProviderUnavailable(pub String);

/// A payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name in its callback path, `/api/providers/{name}/callback`.
    fn name(&self) -> &str;
    /// Sends one attempt.
    async fn submit(&self, request: ProviderRequest) -> Result<Submitted, ProviderUnavailable>;
    /// What the provider knows of an attempt.
    async fn status(&self, originator_conversation_id: &str) -> Result<AttemptStatus, ProviderUnavailable>;
    /// Whether a failure with `result_code` may succeed on a new attempt (default: the
    /// simulator's codes, [`retryable`]).
    fn retryable(&self, result_code: &str) -> bool {
        retryable(result_code)
    }
    /// Verifies and reads a callback.
    fn read_callback(&self, auth: &CallbackAuth<'_>, body: &[u8]) -> Result<CallbackResult, CallbackError>;
}

/// The attempt id of attempt `attempt` of payment `payment_id`.
pub fn attempt_id(payment_id: Uuid, attempt: i32) -> String {
    format!("{payment_id}-{attempt}")
}

/// The payment id and attempt of an attempt id, if it is one.
pub fn parse_attempt_id(id: &str) -> Option<(Uuid, i32)> {
    let (payment, attempt) = id.rsplit_once('-')?;
    Some((payment.parse().ok()?, attempt.parse().ok()?))
}

/// The simulator's result codes after which a new attempt may succeed (the provider's own
/// float was short, or it was busy); any other failure is final.
pub fn retryable(result_code: &str) -> bool {
    matches!(result_code, "2001" | "2004")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_ids_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(parse_attempt_id(&attempt_id(id, 3)), Some((id, 3)));
        assert_eq!(parse_attempt_id("nonsense"), None);
    }
}
