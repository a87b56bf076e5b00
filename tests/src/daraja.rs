//! A fake Safaricom Daraja on the loopback (axum, a random port) speaking Daraja's wire format:
//! OAuth client credentials (basic auth) issuing bearer tokens, M-Pesa B2C payment requests
//! (refusing a duplicate `OriginatorConversationID` as Daraja does) and transaction status
//! queries, both answering synchronously and POSTing their `Result` to the request's ResultURL.
//! It records what it receives; tests script what happens to the next request to a number.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CONSUMER_KEY: &str = "fake-consumer-key";
pub const CONSUMER_SECRET: &str = "fake-consumer-secret";

/// What happens to the next payment request to a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Decided with this result code and its Result POSTed to the ResultURL.
    Callback(String),
    /// Decided with this result code, its callback lost (a status query finds it).
    Silent(String),
    /// Lost before it reached Daraja: accepted on the wire but never recorded.
    Lost,
}

impl Then {
    pub fn callback(code: &str) -> Self {
        Then::Callback(code.into())
    }
    pub fn silent(code: &str) -> Self {
        Then::Silent(code.into())
    }
}

#[derive(Debug, Clone)]
struct Decided {
    code: String,
    receipt: String,
    result_url: String,
}

#[derive(Default)]
struct Inner {
    tokens_issued: AtomicUsize,
    token: Mutex<Option<String>>,
    payments: Mutex<Vec<Value>>,
    queries: Mutex<Vec<Value>>,
    decided: Mutex<HashMap<String, Decided>>,
    scripts: Mutex<HashMap<String, VecDeque<Then>>>,
    client: reqwest::Client,
}

/// The fake; clones share their state.
#[derive(Clone)]
pub struct FakeDaraja {
    pub url: String,
    inner: Arc<Inner>,
}

fn description(code: &str) -> &'static str {
    match code {
        "0" => "The service request is processed successfully.",
        "1" => "The balance is insufficient for the transaction.",
        "2040" => "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service.",
        _ => "The transaction failed.",
    }
}

impl FakeDaraja {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/oauth/v1/generate", get(oauth))
            .route("/mpesa/b2c/v3/paymentrequest", post(payment))
            .route("/mpesa/transactionstatus/v1/query", post(query))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    /// Queues what happens to the next payment to `msisdn` (default: success, called back).
    pub fn script(&self, msisdn: &str, then: Then) {
        self.inner.scripts.lock().unwrap().entry(msisdn.into()).or_default().push_back(then);
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.inner.tokens_issued.load(Ordering::SeqCst)
    }

    /// Forgets the token issued (Daraja expired it): the next request with it gets 401.
    pub fn expire_token(&self) {
        *self.inner.token.lock().unwrap() = None;
    }

    /// The B2C request bodies received (with a valid token), in order.
    pub fn payments(&self) -> Vec<Value> {
        self.inner.payments.lock().unwrap().clone()
    }

    /// The status query bodies received, in order.
    pub fn queries(&self) -> Vec<Value> {
        self.inner.queries.lock().unwrap().clone()
    }

    /// The Result body Daraja sends for the decided payment `id`.
    pub fn result_body(&self, id: &str) -> Value {
        let d = self.inner.decided.lock().unwrap().get(id).cloned().expect("a decided payment");
        result_body(id, &d)
    }

    /// The ResultURL the payment `id` named.
    pub fn result_url(&self, id: &str) -> String {
        self.inner.decided.lock().unwrap().get(id).map(|d| d.result_url.clone()).expect("a decided payment")
    }
}

fn result_body(id: &str, d: &Decided) -> Value {
    let code: i64 = d.code.parse().unwrap_or(1);
    json!({"Result": {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": description(&d.code),
        "OriginatorConversationID": id,
        "ConversationID": format!("AG_20261206_{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
        "TransactionID": d.receipt,
        "ResultParameters": {"ResultParameter": [
            {"Key": "TransactionReceipt", "Value": d.receipt},
            {"Key": "ReceiverPartyPublicName", "Value": "254712000000 - Test Customer"},
            {"Key": "B2CUtilityAccountAvailableFunds", "Value": 100000.00},
        ]},
        "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": d.result_url}},
    }})
}

fn refused(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"requestId": uuid::Uuid::new_v4().simple().to_string(), "errorCode": code, "errorMessage": message});
    (status, Json(body)).into_response()
}

fn authorised(inner: &Inner, headers: &HeaderMap) -> bool {
    let given =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    matches!((given, inner.token.lock().unwrap().as_deref()), (Some(g), Some(t)) if g == t)
}

async fn oauth(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CONSUMER_KEY}:{CONSUMER_SECRET}"))
    );
    if q.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refused(StatusCode::BAD_REQUEST, "400.008.02", "Invalid grant type passed");
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return refused(StatusCode::BAD_REQUEST, "400.008.01", "Invalid Authentication passed");
    }
    let n = inner.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("fake-token-{n}");
    *inner.token.lock().unwrap() = Some(token.clone());
    Json(json!({"access_token": token, "expires_in": "3599"})).into_response()
}

async fn deliver(client: reqwest::Client, url: String, body: Value) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Err(e) = client.post(url).json(&body).send().await {
        eprintln!("the fake Daraja could not call back: {e}");
    }
}

async fn payment(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&inner, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "404.001.04", "Invalid Access Token");
    }
    let id = body["OriginatorConversationID"].as_str().unwrap_or_default().to_string();
    let msisdn = body["PartyB"].as_str().unwrap_or_default().to_string();
    let result_url = body["ResultURL"].as_str().unwrap_or_default().to_string();
    let then = inner
        .scripts
        .lock()
        .unwrap()
        .get_mut(&msisdn)
        .and_then(|q| q.pop_front())
        .unwrap_or_else(|| Then::callback("0"));
    let accepted = Json(json!({
        "ConversationID": format!("AG_20261206_{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
        "OriginatorConversationID": id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response();
    if then == Then::Lost {
        return accepted;
    }
    inner.payments.lock().unwrap().push(body);
    let decided = {
        let mut all = inner.decided.lock().unwrap();
        if all.contains_key(&id) {
            return refused(StatusCode::BAD_REQUEST, "400.002.05", "Duplicate OriginatorConversationID.");
        }
        let code = match &then {
            Then::Callback(c) | Then::Silent(c) => c.clone(),
            Then::Lost => unreachable!(),
        };
        let receipt = format!("UAB{}", &uuid::Uuid::new_v4().simple().to_string()[..7]).to_uppercase();
        let d = Decided { code, receipt, result_url: result_url.clone() };
        all.insert(id.clone(), d.clone());
        d
    };
    if matches!(then, Then::Callback(_)) {
        tokio::spawn(deliver(inner.client.clone(), result_url, result_body(&id, &decided)));
    }
    accepted
}

async fn query(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&inner, &headers) {
        return refused(StatusCode::UNAUTHORIZED, "404.001.04", "Invalid Access Token");
    }
    inner.queries.lock().unwrap().push(body.clone());
    let query_id = body["OriginatorConversationID"].as_str().unwrap_or_default().to_string();
    let original = body["OriginalConversationID"].as_str().unwrap_or_default().to_string();
    let result_url = body["ResultURL"].as_str().unwrap_or_default().to_string();
    let result = match inner.decided.lock().unwrap().get(&original) {
        Some(d) => {
            let status = if d.code == "0" { "Completed" } else { "Failed" };
            json!({"Result": {
                "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": query_id, "ConversationID": "AG_20261206_query",
                "TransactionID": d.receipt,
                "ResultParameters": {"ResultParameter": [
                    {"Key": "ReceiptNo", "Value": d.receipt},
                    {"Key": "TransactionStatus", "Value": status},
                    {"Key": "ReasonType", "Value": if d.code == "0" { "Business Payment to Customer via API".to_string() } else { d.code.clone() }},
                    {"Key": "OriginatorConversationID", "Value": original},
                ]},
            }})
        }
        None => json!({"Result": {
            "ResultType": 0, "ResultCode": 2032, "ResultDesc": "The transaction is not found.",
            "OriginatorConversationID": query_id, "ConversationID": "AG_20261206_query",
        }}),
    };
    tokio::spawn(deliver(inner.client.clone(), result_url, result));
    Json(json!({
        "ConversationID": "AG_20261206_query",
        "OriginatorConversationID": query_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
    .into_response()
}
