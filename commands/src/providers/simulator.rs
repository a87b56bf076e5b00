//! A payment provider that behaves like M-Pesa B2C, in process: it accepts a request, then
//! (in a tokio task, after a delay) decides its result and POSTs an authenticated callback to
//! the service's `/api/providers/simulator/callback`, signed with HMAC-SHA256 over the body
//! under a shared secret (hex, header [`SIGNATURE_HEADER`]).
//!
//! Result codes: `0` success; `2001` insufficient balance at the provider and `2004` provider
//! busy (retryable); `2002` limit exceeded and `2003` unregistered recipient (final).
//!
//! It keeps its own record of requests, so [`PaymentProvider::status`] answers truthfully and
//! a duplicate id is refused. Tests steer it per destination with [`Simulator::script`]:
//! delay, result code, no callback (the result is kept but its callback is lost), two
//! callbacks, or a request lost before it reached the provider (status `NotFound`).

use super::{
    AttemptStatus, CallbackAuth, CallbackError, CallbackResult, PaymentProvider, ProviderRequest,
    ProviderUnavailable, Submitted,
};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header the simulator signs its callbacks in.
pub const SIGNATURE_HEADER: &str = "X-Provider-Signature";

/// How the callback of a scripted request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    Once,
    /// Twice, the same body (as a provider retrying its delivery).
    Twice,
    /// Never: the result is decided (a status query finds it) but the callback is lost.
    Never,
    /// The request is lost before it reaches the provider: it is accepted but never
    /// recorded (a status query answers `NotFound`).
    LostRequest,
}

/// What the simulator does with the next request to one destination.
#[derive(Debug, Clone)]
pub struct Script {
    pub result_code: String,
    pub delay: Duration,
    pub callback: Callback,
}

impl Script {
    pub fn result(code: &str) -> Self {
        Self { result_code: code.into(), delay: Duration::from_millis(50), callback: Callback::Once }
    }
    pub fn callback(mut self, callback: Callback) -> Self {
        self.callback = callback;
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Clone)]
struct Record {
    request: ProviderRequest,
    status: AttemptStatus,
}

struct Inner {
    secret: Vec<u8>,
    delay: Duration,
    callback_url: Mutex<Option<String>>,
    client: reqwest::Client,
    scripts: Mutex<HashMap<String, VecDeque<Script>>>,
    records: Mutex<Vec<Record>>,
}

/// The simulator; clones share their state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn description(code: &str) -> &'static str {
    match code {
        "0" => "The service request is processed successfully.",
        "2001" => "Insufficient balance at the provider.",
        "2002" => "Transaction limit exceeded.",
        "2003" => "The recipient is not registered.",
        "2004" => "The provider is busy.",
        _ => "The transaction failed.",
    }
}

impl Simulator {
    /// A simulator signing with `secret`, deciding results `delay` after a request.
    pub fn new(secret: &[u8], delay: Duration) -> Self {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self {
            inner: Arc::new(Inner {
                secret: secret.to_vec(),
                delay,
                callback_url: Mutex::new(None),
                client,
                scripts: Mutex::default(),
                records: Mutex::default(),
            }),
        }
    }

    /// Where it POSTs callbacks (known once the service listens).
    pub fn set_callback_url(&self, url: String) {
        *self.inner.callback_url.lock().expect("simulator lock") = Some(url);
    }

    /// Queues what happens to the next request to `destination` (default: success, one
    /// callback after the configured delay).
    pub fn script(&self, destination: &str, script: Script) {
        self.inner
            .scripts
            .lock()
            .expect("simulator lock")
            .entry(destination.into())
            .or_default()
            .push_back(script);
    }

    /// The requests it received (not those lost on the way), in order.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.inner.records.lock().expect("simulator lock").iter().map(|r| r.request.clone()).collect()
    }

    /// The hex HMAC-SHA256 of `body` under the shared secret.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.secret).expect("HMAC takes any key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The callback body M-Pesa B2C would send for an attempt's result.
    pub fn callback_body(originator_conversation_id: &str, status: &AttemptStatus) -> Value {
        let (code, receipt) = match status {
            AttemptStatus::Succeeded { receipt } => ("0".to_string(), Some(receipt.clone())),
            AttemptStatus::Failed { result_code, .. } => (result_code.clone(), None),
            _ => ("1".to_string(), None),
        };
        json!({"Result": {
            "ResultType": 0,
            "ResultCode": code.parse::<i64>().unwrap_or(1),
            "ResultDesc": description(&code),
            "OriginatorConversationID": originator_conversation_id,
            "ConversationID": format!("AG_{}", uuid::Uuid::new_v4().simple()),
            "TransactionID": receipt,
        }})
    }

    fn set_status(&self, id: &str, status: AttemptStatus) {
        let mut records = self.inner.records.lock().expect("simulator lock");
        if let Some(r) = records.iter_mut().find(|r| r.request.originator_conversation_id == id) {
            r.status = status;
        }
    }

    async fn deliver(&self, body: Vec<u8>) {
        let Some(url) = self.inner.callback_url.lock().expect("simulator lock").clone() else {
            tracing::warn!("the payment simulator has no callback URL");
            return;
        };
        let sent = self
            .inner
            .client
            .post(url)
            .header(SIGNATURE_HEADER, self.sign(&body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "the payment simulator could not deliver a callback");
        }
    }
}

#[async_trait]
impl PaymentProvider for Simulator {
    fn name(&self) -> &str {
        "simulator"
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submitted, ProviderUnavailable> {
        let id = request.originator_conversation_id.clone();
        let script = self
            .inner
            .scripts
            .lock()
            .expect("simulator lock")
            .get_mut(&request.destination)
            .and_then(|q| q.pop_front())
            .unwrap_or_else(|| Script::result("0").delay(self.inner.delay));
        {
            let mut records = self.inner.records.lock().expect("simulator lock");
            if records.iter().any(|r| r.request.originator_conversation_id == id) {
                return Ok(Submitted::Refused {
                    code: "duplicate".into(),
                    reason: format!("originator conversation id {id} was received before"),
                });
            }
            if script.callback == Callback::LostRequest {
                return Ok(Submitted::Accepted);
            }
            records.push(Record { request, status: AttemptStatus::Pending });
        }
        let simulator = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(script.delay).await;
            let status = match script.result_code.as_str() {
                "0" => AttemptStatus::Succeeded {
                    receipt: format!("SIM{}", &uuid::Uuid::new_v4().simple().to_string()[..9]).to_uppercase(),
                },
                code => AttemptStatus::Failed { result_code: code.into(), reason: description(code).into() },
            };
            simulator.set_status(&id, status.clone());
            let body = serde_json::to_vec(&Simulator::callback_body(&id, &status)).expect("JSON");
            let times = match script.callback {
                Callback::Once => 1,
                Callback::Twice => 2,
                Callback::Never | Callback::LostRequest => 0,
            };
            for _ in 0..times {
                simulator.deliver(body.clone()).await;
            }
        });
        Ok(Submitted::Accepted)
    }

    async fn status(&self, originator_conversation_id: &str) -> Result<AttemptStatus, ProviderUnavailable> {
        let records = self.inner.records.lock().expect("simulator lock");
        Ok(records
            .iter()
            .find(|r| r.request.originator_conversation_id == originator_conversation_id)
            .map(|r| r.status.clone())
            .unwrap_or(AttemptStatus::NotFound))
    }

    fn read_callback(&self, auth: &CallbackAuth<'_>, body: &[u8]) -> Result<CallbackResult, CallbackError> {
        let signature =
            auth.signature.and_then(|s| hex::decode(s.trim()).ok()).ok_or(CallbackError::Forged)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.secret).expect("HMAC takes any key");
        mac.update(body);
        mac.verify_slice(&signature).map_err(|_| CallbackError::Forged)?;
        read_result(body)
    }
}

/// Reads an M-Pesa B2C result body.
pub fn read_result(body: &[u8]) -> Result<CallbackResult, CallbackError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    let result = &value["Result"];
    let id = result["OriginatorConversationID"]
        .as_str()
        .ok_or_else(|| CallbackError::Malformed("no Result.OriginatorConversationID".into()))?;
    let code = match &result["ResultCode"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(CallbackError::Malformed("no Result.ResultCode".into())),
    };
    let status = if code == "0" {
        let receipt = result["TransactionID"]
            .as_str()
            .ok_or_else(|| CallbackError::Malformed("a success without Result.TransactionID".into()))?;
        AttemptStatus::Succeeded { receipt: receipt.into() }
    } else {
        AttemptStatus::Failed {
            result_code: code,
            reason: result["ResultDesc"].as_str().unwrap_or_default().to_string(),
        }
    };
    Ok(CallbackResult { originator_conversation_id: id.into(), status })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(signature: &str) -> CallbackAuth<'_> {
        CallbackAuth { signature: Some(signature), token: None }
    }

    #[test]
    fn callbacks_verify_only_under_the_shared_secret_and_over_the_same_body() {
        let sim = Simulator::new(b"shared", Duration::ZERO);
        let status = AttemptStatus::Succeeded { receipt: "SIMABC".into() };
        let body = serde_json::to_vec(&Simulator::callback_body("p-1", &status)).unwrap();
        let read = sim.read_callback(&signed(&sim.sign(&body)), &body).unwrap();
        assert_eq!(read, CallbackResult { originator_conversation_id: "p-1".into(), status });
        let other = Simulator::new(b"other", Duration::ZERO);
        assert_eq!(sim.read_callback(&signed(&other.sign(&body)), &body), Err(CallbackError::Forged));
        assert_eq!(sim.read_callback(&CallbackAuth::default(), &body), Err(CallbackError::Forged));
        let mut tampered = body.clone();
        tampered[5] ^= 1;
        assert_eq!(sim.read_callback(&signed(&sim.sign(&body)), &tampered), Err(CallbackError::Forged));
        let failed = AttemptStatus::Failed { result_code: "2003".into(), reason: "x".into() };
        let body = serde_json::to_vec(&Simulator::callback_body("p-2", &failed)).unwrap();
        let read = sim.read_callback(&signed(&sim.sign(&body)), &body).unwrap();
        assert!(
            matches!(read.status, AttemptStatus::Failed { ref result_code, .. } if result_code == "2003")
        );
    }

    #[tokio::test]
    async fn a_duplicate_id_is_refused_and_status_answers_truthfully() {
        let sim = Simulator::new(b"shared", Duration::from_millis(1));
        let req = ProviderRequest {
            originator_conversation_id: "p-1".into(),
            amount: rust_decimal::Decimal::new(100, 0),
            currency: "KES".into(),
            destination: "254700000000".into(),
            method: "mobile_money".into(),
        };
        assert_eq!(sim.status("p-1").await.unwrap(), AttemptStatus::NotFound);
        sim.script("254700000000", Script::result("2002").callback(Callback::Never));
        assert_eq!(sim.submit(req.clone()).await.unwrap(), Submitted::Accepted);
        assert!(
            matches!(sim.submit(req).await.unwrap(), Submitted::Refused { code, .. } if code == "duplicate")
        );
        for _ in 0..100 {
            if sim.status("p-1").await.unwrap() != AttemptStatus::Pending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            matches!(sim.status("p-1").await.unwrap(), AttemptStatus::Failed { result_code, .. } if result_code == "2002")
        );
        assert_eq!(sim.requests().len(), 1);
    }
}
