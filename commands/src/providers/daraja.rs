//! Safaricom Daraja M-Pesa B2C (`PAYMENT_PROVIDER=daraja`): mobile-money payments to a
//! customer's M-Pesa number from the organisation's short code.
//!
//! The wire format (Daraja's JSON, field names as Safaricom spells them):
//! - OAuth: `GET {base}/oauth/v1/generate?grant_type=client_credentials`, basic auth
//!   `consumer key:consumer secret`, answers `{"access_token", "expires_in"}` (seconds, as text).
//!   The token is reused until [`TOKEN_MARGIN`] before it expires, and fetched again at once
//!   when Daraja answers 401.
//! - Payment: `POST {base}/mpesa/b2c/v3/paymentrequest` (bearer token) with
//!   `OriginatorConversationID` (our attempt id), `InitiatorName`, `SecurityCredential`,
//!   `CommandID: BusinessPayment`, `Amount`, `PartyA` (the short code), `PartyB` (the number),
//!   `Remarks`, `QueueTimeOutURL`, `ResultURL`, `Occasion`. `ResponseCode "0"`: accepted, the
//!   result comes later to the ResultURL. A refusal whose message says the id is a duplicate
//!   is `Refused { code: "duplicate" }` (the service then waits for the first one's result);
//!   another 4xx refusal is `Refused` with Daraja's `errorCode`; 5xx or no answer is
//!   [`ProviderUnavailable`].
//! - Result callback: `{"Result": {ResultType, ResultCode, ResultDesc, OriginatorConversationID,
//!   ConversationID, TransactionID, ResultParameters}}` POSTed to the ResultURL.
//! - Status: `POST {base}/mpesa/transactionstatus/v1/query` (`CommandID:
//!   TransactionStatusQuery`, `OriginalConversationID` the attempt id, its own
//!   `OriginatorConversationID` `{attempt id}-q{n}`). It is asynchronous: [`PaymentProvider::status`]
//!   answers `Pending` once Daraja accepted the query, and the query's result comes to the
//!   same callback, recognised by its `-q{n}` suffix and read as the attempt's status.
//!
//! Daraja does not sign its callbacks: the ResultURL we send carries a shared secret,
//! `{PUBLIC_URL}/api/providers/daraja/callback?token={PAYMENT_PROVIDER_SECRET}`, and a callback
//! is read only when its `token` equals it (compared in constant time).
//!
//! Result codes of a payment (its callback; Daraja's B2C list):
//!
//! | Code | Meaning | Our status |
//! |------|---------|------------|
//! | `0` | processed | succeeded, receipt = `TransactionID` |
//! | `1` | insufficient balance (the short code's float) | failed, **retryable** |
//! | `26` | traffic blocking (system busy) | failed, **retryable** |
//! | `15` | duplicate detected (a re-send of an id Daraja has) | pending: the first request's result settles it |
//! | `2` / `3` | below minimum / above maximum transaction value | failed, final |
//! | `4` / `8` | would exceed a daily / maximum balance limit | failed, final |
//! | `6` / `7` / `11`–`14` | unresolved or invalid party or account | failed, final |
//! | `17` | internal failure | failed, final |
//! | `20` / `2001` | unresolved or invalid initiator (credentials) | failed, final |
//! | `2006` | declined by an account rule | failed, final |
//! | `2040` | the recipient is not a registered M-Pesa customer | failed, final |
//! | `8006` | the security credential is locked | failed, final |
//! | any other | | failed, final |
//!
//! A status query's result: `ResultCode 0` with `TransactionStatus` `Completed` → succeeded
//! (`ReceiptNo`), `Failed`/`Declined`/`Cancelled`/`Expired` → failed (code `ReasonType` or the
//! query's own), anything else → pending; a non-zero query result whose description says the
//! transaction is not found → `NotFound` (the service sends the SAME id again), any other →
//! pending (the scheduler asks again).

use super::{
    AttemptStatus, CallbackAuth, CallbackError, CallbackResult, PaymentProvider, ProviderRequest,
    ProviderUnavailable, Submitted,
};
use async_trait::async_trait;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token is fetched again this long before Daraja says it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Everything the provider needs (from the environment: `DARAJA_*`, `PUBLIC_URL`,
/// `PAYMENT_PROVIDER_SECRET`).
#[derive(Clone)]
pub struct DarajaConfig {
    /// `https://sandbox.safaricom.co.ke` or `https://api.safaricom.co.ke`, no trailing slash.
    pub base_url: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub initiator_name: String,
    /// The initiator's password encrypted with Safaricom's certificate (base64), as the portal
    /// gives it.
    pub security_credential: String,
    /// PartyA: the organisation's B2C short code.
    pub short_code: String,
    /// Where the service is reachable from Daraja (`PUBLIC_URL`), no trailing slash.
    pub public_url: String,
    /// The shared secret in the callback URL.
    pub callback_token: String,
}

impl std::fmt::Debug for DarajaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DarajaConfig")
            .field("base_url", &self.base_url)
            .field("initiator_name", &self.initiator_name)
            .field("short_code", &self.short_code)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl DarajaConfig {
    /// The ResultURL and QueueTimeOutURL sent with every request.
    pub fn callback_url(&self) -> String {
        format!("{}/api/providers/daraja/callback?token={}", self.public_url, urlencode(&self.callback_token))
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Daraja B2C provider.
pub struct Daraja {
    config: DarajaConfig,
    client: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
    queries: AtomicU64,
}

/// Result codes after which a new attempt may succeed.
pub fn retryable(result_code: &str) -> bool {
    matches!(result_code, "1" | "26")
}

/// What a payment's result code says of the attempt.
pub fn payment_status(code: &str, description: &str, transaction_id: Option<&str>) -> AttemptStatus {
    match code {
        "0" => match transaction_id.filter(|t| !t.is_empty()) {
            Some(receipt) => AttemptStatus::Succeeded { receipt: receipt.into() },
            None => AttemptStatus::Pending,
        },
        // A re-sent id: the first request's result decides.
        "15" => AttemptStatus::Pending,
        _ => AttemptStatus::Failed { result_code: code.into(), reason: description.into() },
    }
}

/// What a status query's result says of the attempt it asked about.
pub fn query_status(code: &str, description: &str, parameters: &Value) -> AttemptStatus {
    if code != "0" {
        return if description.to_ascii_lowercase().contains("not found") {
            AttemptStatus::NotFound
        } else {
            AttemptStatus::Pending
        };
    }
    let status = parameter(parameters, "TransactionStatus").unwrap_or_default();
    match status.to_ascii_lowercase().as_str() {
        "completed" => match parameter(parameters, "ReceiptNo").filter(|r| !r.is_empty()) {
            Some(receipt) => AttemptStatus::Succeeded { receipt },
            None => AttemptStatus::Pending,
        },
        "failed" | "declined" | "cancelled" | "expired" => AttemptStatus::Failed {
            result_code: parameter(parameters, "ReasonType")
                .filter(|r| !r.is_empty())
                .unwrap_or(status.clone()),
            reason: format!("the status query says {status}"),
        },
        _ => AttemptStatus::Pending,
    }
}

/// `ResultParameters.ResultParameter[Key == key].Value` (a list, or one object).
fn parameter(parameters: &Value, key: &str) -> Option<String> {
    let list = &parameters["ResultParameter"];
    let items: Vec<&Value> = match list {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![list],
        _ => vec![],
    };
    items.into_iter().find(|p| p["Key"] == key).map(|p| match &p["Value"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Equal in constant time (for the length of `expected`).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    diff == 0
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Daraja's amount: whole shillings (it refuses cents).
fn whole_amount(amount: Decimal) -> Value {
    json!(amount.round().normalize().to_string().parse::<i64>().unwrap_or_default())
}

impl Daraja {
    pub fn new(config: DarajaConfig) -> Self {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self { config, client, token: Mutex::new(None), queries: AtomicU64::new(0) }
    }

    /// The B2C request body of `request`.
    pub fn payment_body(&self, request: &ProviderRequest) -> Value {
        let c = &self.config;
        json!({
            "OriginatorConversationID": request.originator_conversation_id,
            "InitiatorName": c.initiator_name,
            "SecurityCredential": c.security_credential,
            "CommandID": "BusinessPayment",
            "Amount": whole_amount(request.amount),
            "PartyA": c.short_code,
            "PartyB": request.destination,
            "Remarks": "Petty cash payment",
            "QueueTimeOutURL": c.callback_url(),
            "ResultURL": c.callback_url(),
            "Occasion": request.originator_conversation_id,
        })
    }

    /// The transaction status query body asking about attempt `id`, itself `query_id`.
    pub fn status_body(&self, id: &str, query_id: &str) -> Value {
        let c = &self.config;
        json!({
            "OriginatorConversationID": query_id,
            "Initiator": c.initiator_name,
            "SecurityCredential": c.security_credential,
            "CommandID": "TransactionStatusQuery",
            "TransactionID": "",
            "OriginalConversationID": id,
            "PartyA": c.short_code,
            "IdentifierType": "4",
            "ResultURL": c.callback_url(),
            "QueueTimeOutURL": c.callback_url(),
            "Remarks": "Petty cash status query",
            "Occasion": id,
        })
    }

    async fn token(&self, fresh: bool) -> Result<String, ProviderUnavailable> {
        if !fresh {
            if let Some((token, until)) = self.token.lock().expect("token lock").clone() {
                if Instant::now() < until {
                    return Ok(token);
                }
            }
        }
        let url = format!("{}/oauth/v1/generate?grant_type=client_credentials", self.config.base_url);
        let reply = self
            .client
            .get(url)
            .basic_auth(&self.config.consumer_key, Some(&self.config.consumer_secret))
            .send()
            .await
            .map_err(|e| ProviderUnavailable(format!("Daraja OAuth: {e}")))?;
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or_default();
        let token = body["access_token"].as_str().filter(|_| status.is_success()).ok_or_else(|| {
            ProviderUnavailable(format!("Daraja OAuth answered {status}: {}", body["errorMessage"]))
        })?;
        let seconds = text(&body["expires_in"]).and_then(|s| s.parse::<u64>().ok()).unwrap_or(3599);
        let until = Instant::now() + Duration::from_secs(seconds).saturating_sub(TOKEN_MARGIN);
        *self.token.lock().expect("token lock") = Some((token.to_string(), until));
        Ok(token.to_string())
    }

    /// POSTs `body` to `path` with a token (fetched again once on 401): Daraja's status and body.
    async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(reqwest::StatusCode, Value), ProviderUnavailable> {
        let url = format!("{}{path}", self.config.base_url);
        for fresh in [false, true] {
            let token = self.token(fresh).await?;
            let reply = self
                .client
                .post(&url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .map_err(|e| ProviderUnavailable(format!("Daraja {path}: {e}")))?;
            let status = reply.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            if status.is_server_error() {
                return Err(ProviderUnavailable(format!("Daraja {path} answered {status}")));
            }
            return Ok((status, reply.json().await.unwrap_or_default()));
        }
        Err(ProviderUnavailable(format!("Daraja {path} refused a fresh token")))
    }
}

/// Daraja's synchronous answer to a request: accepted, or why not.
pub fn read_answer(status: reqwest::StatusCode, body: &Value) -> Submitted {
    if status.is_success() && text(&body["ResponseCode"]).as_deref() == Some("0") {
        return Submitted::Accepted;
    }
    let code =
        text(&body["errorCode"]).or_else(|| text(&body["ResponseCode"])).unwrap_or(status.as_str().into());
    let reason = body["errorMessage"]
        .as_str()
        .or(body["ResponseDescription"].as_str())
        .unwrap_or("refused by Daraja")
        .to_string();
    if reason.to_ascii_lowercase().contains("duplicate") {
        return Submitted::Refused { code: "duplicate".into(), reason };
    }
    Submitted::Refused { code, reason }
}

/// The attempt id a query id (`{attempt id}-q{n}`) asked about, if it is one.
fn queried_attempt(id: &str) -> Option<&str> {
    let (attempt, n) = id.rsplit_once("-q")?;
    n.parse::<u64>().ok().map(|_| attempt)
}

#[async_trait]
impl PaymentProvider for Daraja {
    fn name(&self) -> &str {
        "daraja"
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submitted, ProviderUnavailable> {
        if request.method != "mobile_money" {
            return Ok(Submitted::Refused {
                code: "method".into(),
                reason: "Daraja B2C pays mobile money only".into(),
            });
        }
        let (status, body) = self.post("/mpesa/b2c/v3/paymentrequest", &self.payment_body(&request)).await?;
        Ok(read_answer(status, &body))
    }

    async fn status(&self, originator_conversation_id: &str) -> Result<AttemptStatus, ProviderUnavailable> {
        let n = self.queries.fetch_add(1, Ordering::Relaxed) + 1;
        let query_id = format!("{originator_conversation_id}-q{n}");
        let (status, body) = self
            .post(
                "/mpesa/transactionstatus/v1/query",
                &self.status_body(originator_conversation_id, &query_id),
            )
            .await?;
        match read_answer(status, &body) {
            // Its result comes by callback.
            Submitted::Accepted => Ok(AttemptStatus::Pending),
            Submitted::Refused { code, reason } => {
                tracing::warn!(%code, %reason, "Daraja refused a transaction status query");
                Ok(AttemptStatus::Pending)
            }
        }
    }

    fn retryable(&self, result_code: &str) -> bool {
        retryable(result_code)
    }

    fn read_callback(&self, auth: &CallbackAuth<'_>, body: &[u8]) -> Result<CallbackResult, CallbackError> {
        let token = auth.token.ok_or(CallbackError::Forged)?;
        if !same_secret(token.as_bytes(), self.config.callback_token.as_bytes()) {
            return Err(CallbackError::Forged);
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        let result = &value["Result"];
        let id = result["OriginatorConversationID"]
            .as_str()
            .ok_or_else(|| CallbackError::Malformed("no Result.OriginatorConversationID".into()))?;
        let code = text(&result["ResultCode"])
            .ok_or_else(|| CallbackError::Malformed("no Result.ResultCode".into()))?;
        let description = result["ResultDesc"].as_str().unwrap_or_default();
        Ok(match queried_attempt(id) {
            Some(attempt) => CallbackResult {
                originator_conversation_id: attempt.into(),
                status: query_status(&code, description, &result["ResultParameters"]),
            },
            None => CallbackResult {
                originator_conversation_id: id.into(),
                status: payment_status(&code, description, result["TransactionID"].as_str()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daraja() -> Daraja {
        Daraja::new(DarajaConfig {
            base_url: "http://127.0.0.1:9".into(),
            consumer_key: "key".into(),
            consumer_secret: "secret".into(),
            initiator_name: "testapi".into(),
            security_credential: "CRED==".into(),
            short_code: "600997".into(),
            public_url: "https://cash.example.com".into(),
            callback_token: "s3cr/t".into(),
        })
    }

    fn auth(token: Option<&str>) -> CallbackAuth<'_> {
        CallbackAuth { signature: None, token }
    }

    #[test]
    fn the_payment_body_is_daraja_b2c_with_the_attempt_id_and_the_tokened_callback_url() {
        let d = daraja();
        let body = d.payment_body(&ProviderRequest {
            originator_conversation_id: "p-1".into(),
            amount: Decimal::new(150000, 2),
            currency: "KES".into(),
            destination: "254712345678".into(),
            method: "mobile_money".into(),
        });
        let url = "https://cash.example.com/api/providers/daraja/callback?token=s3cr%2Ft";
        assert_eq!(
            body,
            json!({"OriginatorConversationID": "p-1", "InitiatorName": "testapi", "SecurityCredential": "CRED==",
                   "CommandID": "BusinessPayment", "Amount": 1500, "PartyA": "600997", "PartyB": "254712345678",
                   "Remarks": "Petty cash payment", "QueueTimeOutURL": url, "ResultURL": url, "Occasion": "p-1"})
        );
        let q = d.status_body("p-1", "p-1-q1");
        assert_eq!(q["CommandID"], "TransactionStatusQuery");
        assert_eq!(q["OriginalConversationID"], "p-1");
        assert_eq!(q["OriginatorConversationID"], "p-1-q1");
        assert_eq!(q["PartyA"], "600997");
    }

    #[test]
    fn result_codes_map_to_statuses_and_only_float_and_busy_retry() {
        assert_eq!(
            payment_status("0", "ok", Some("UAB1CD2EF3")),
            AttemptStatus::Succeeded { receipt: "UAB1CD2EF3".into() }
        );
        assert_eq!(payment_status("15", "Duplicate detected", None), AttemptStatus::Pending);
        for code in ["1", "2", "17", "2001", "2040", "8006"] {
            assert!(
                matches!(payment_status(code, "x", None), AttemptStatus::Failed { result_code, .. } if result_code == code)
            );
        }
        assert!(retryable("1") && retryable("26"));
        for code in ["0", "2", "17", "2001", "2004", "2040"] {
            assert!(!retryable(code), "{code}");
        }
    }

    #[test]
    fn status_query_results_read_the_transaction_status() {
        let params = |status: &str| {
            json!({"ResultParameter": [{"Key": "ReceiptNo", "Value": "UAB1"}, {"Key": "TransactionStatus", "Value": status},
                                        {"Key": "ReasonType", "Value": "Salary Payment via API"}]})
        };
        assert_eq!(
            query_status("0", "", &params("Completed")),
            AttemptStatus::Succeeded { receipt: "UAB1".into() }
        );
        assert!(matches!(query_status("0", "", &params("Failed")), AttemptStatus::Failed { .. }));
        assert_eq!(query_status("0", "", &params("Pending")), AttemptStatus::Pending);
        assert_eq!(
            query_status("2032", "The transaction is not found", &json!(null)),
            AttemptStatus::NotFound
        );
        assert_eq!(query_status("17", "Internal failure", &json!(null)), AttemptStatus::Pending);
    }

    #[test]
    fn callbacks_are_read_only_with_the_token_and_query_results_name_their_attempt() {
        let d = daraja();
        let body =
            serde_json::to_vec(&json!({"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok",
            "OriginatorConversationID": "p-1", "ConversationID": "AG_1", "TransactionID": "UAB1"}}))
            .unwrap();
        assert_eq!(d.read_callback(&auth(None), &body), Err(CallbackError::Forged));
        assert_eq!(d.read_callback(&auth(Some("s3cr/u")), &body), Err(CallbackError::Forged));
        assert_eq!(d.read_callback(&auth(Some("s3cr/")), &body), Err(CallbackError::Forged));
        let read = d.read_callback(&auth(Some("s3cr/t")), &body).unwrap();
        assert_eq!(read.status, AttemptStatus::Succeeded { receipt: "UAB1".into() });
        let query = serde_json::to_vec(&json!({"Result": {"ResultType": 0, "ResultCode": "2032",
            "ResultDesc": "The transaction is not found", "OriginatorConversationID": "p-1-q7"}}))
        .unwrap();
        let read = d.read_callback(&auth(Some("s3cr/t")), &query).unwrap();
        assert_eq!(
            read,
            CallbackResult { originator_conversation_id: "p-1".into(), status: AttemptStatus::NotFound }
        );
    }

    #[test]
    fn synchronous_answers_accept_refuse_or_name_a_duplicate() {
        let ok = reqwest::StatusCode::OK;
        assert_eq!(
            read_answer(ok, &json!({"ResponseCode": "0", "ConversationID": "AG_1"})),
            Submitted::Accepted
        );
        let bad = reqwest::StatusCode::BAD_REQUEST;
        assert!(
            matches!(read_answer(bad, &json!({"errorCode": "400.002.02", "errorMessage": "Duplicate OriginatorConversationID"})),
            Submitted::Refused { code, .. } if code == "duplicate")
        );
        assert!(
            matches!(read_answer(bad, &json!({"errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid PartyB"})),
            Submitted::Refused { code, .. } if code == "400.002.02")
        );
    }
}
