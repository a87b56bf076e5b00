//! Who issues a command, from where, and with which idempotency key.

use chrono::{SecondsFormat, Utc};
use pettycash_domain::{Actor, Id};
use serde_json::{Map, Value};

/// Facts about the request that every event records in its metadata.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A POST command sent with an `Idempotency-Key`: the response is stored with the events.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub key: String,
    /// SHA-256 of method, path and body: the same key with a different request is refused.
    pub request_hash: Vec<u8>,
    /// The HTTP status the command answers with when it succeeds (201 or 200).
    pub status: u16,
}

/// The session a user command came with and the roles the command was decided with. The
/// append re-checks both in the same statement that writes the events (see
/// `EventStore::append`): a session that ended, a user deactivated, or roles, sponsors or unit
/// changed since the session was read (perhaps from the session cache) writes nothing.
#[derive(Debug, Clone)]
pub struct SessionGuard {
    /// HMAC of the session token, as stored in `sessions.token_hash`.
    pub token_hash: Vec<u8>,
    /// The user's roles as the command saw them (`users.roles`, in stored order).
    pub roles: Vec<String>,
    /// The user's sponsors as the command saw them (`users.sponsors`, sorted).
    pub sponsors: Vec<uuid::Uuid>,
    /// The user's organisation unit as the command saw it (`users.unit_id`): what they may
    /// see and where their requisitions belong follow from it.
    pub unit_id: Option<uuid::Uuid>,
}

/// Everything a command needs besides its own arguments.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// `None` for the operator at the command line (`pettycash user add`, `pettycash demo`).
    pub actor: Option<Actor>,
    pub meta: RequestMeta,
    pub idempotency: Option<IdempotencyRecord>,
    /// For commands from an HTTP session: re-checked when the events are appended.
    pub session: Option<SessionGuard>,
}

impl CommandContext {
    pub fn user(actor: Actor, meta: RequestMeta) -> Self {
        Self { actor: Some(actor), meta, idempotency: None, session: None }
    }

    /// A command issued by someone with shell access to the server.
    pub fn operator(what: &str) -> Self {
        let meta = RequestMeta {
            request_id: format!("cli-{}", Id::new_v4()),
            client_ip: None,
            user_agent: Some(format!("pettycash-cli/{} {what}", env!("CARGO_PKG_VERSION"))),
        };
        Self { actor: None, meta, idempotency: None, session: None }
    }

    pub fn with_session(mut self, guard: Option<SessionGuard>) -> Self {
        self.session = guard;
        self
    }

    pub fn with_idempotency(mut self, record: Option<IdempotencyRecord>) -> Self {
        self.idempotency = record;
        self
    }

    /// Event metadata: acting user, request id, client address, user agent, time.
    pub fn metadata(&self) -> Value {
        let mut m = Map::new();
        let actor = match &self.actor {
            Some(a) => a.user_id.to_string(),
            None => "operator".to_string(),
        };
        m.insert("actor_id".into(), Value::String(actor));
        m.insert("request_id".into(), Value::String(self.meta.request_id.clone()));
        if let Some(ip) = &self.meta.client_ip {
            m.insert("client_ip".into(), Value::String(ip.clone()));
        }
        if let Some(ua) = &self.meta.user_agent {
            m.insert("user_agent".into(), Value::String(ua.clone()));
        }
        m.insert("time".into(), Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)));
        Value::Object(m)
    }
}
