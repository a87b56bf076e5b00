//! A stored event as the tailer reads it.

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The payload as stored, undecoded: each projection decodes only the events it uses,
    /// straight into the domain type.
    pub payload: sqlx::types::Json<Box<RawValue>>,
    /// The metadata as stored (PostgreSQL's canonical jsonb text, which the event hash covers).
    pub metadata: sqlx::types::Json<Box<RawValue>>,
    pub recorded_at: DateTime<Utc>,
}

fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
    static UPCASTERS: OnceLock<Vec<Box<dyn cqrs_es::persist::EventUpcaster>>> = OnceLock::new();
    UPCASTERS.get_or_init(pettycash_domain::upcast::upcasters)
}

impl EventRow {
    /// The event brought to its current version and decoded as the aggregate's event type.
    pub fn decode<E: DeserializeOwned>(&self) -> anyhow::Result<E> {
        let current = !upcasters().iter().any(|u| u.can_upcast(&self.event_type, &self.event_version));
        if current {
            // The common case: decode in place, without copying the payload.
            return serde_json::from_str(self.payload.get()).map_err(|e| self.undecodable(e));
        }
        let serialized = SerializedEvent::new(
            self.aggregate_id.clone(),
            self.sequence as usize,
            self.aggregate_type.clone(),
            self.event_type.clone(),
            self.event_version.clone(),
            serde_json::from_str(self.payload.get()).map_err(|e| self.undecodable(e))?,
            self.metadata_value(),
        );
        let upcast = pettycash_domain::upcast::upcast(upcasters(), serialized);
        serde_json::from_value(upcast.payload).map_err(|e| self.undecodable(e))
    }

    fn undecodable(&self, e: serde_json::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "event at position {} ({} v{}) does not decode: {e}",
            self.global_position,
            self.event_type,
            self.event_version
        )
    }

    /// The metadata, parsed.
    pub fn metadata_value(&self) -> Value {
        serde_json::from_str(self.metadata.get()).unwrap_or(Value::Null)
    }

    /// A text field of the metadata (`actor_id`, `request_id`, ...).
    pub fn meta(&self, key: &str) -> Option<String> {
        self.metadata_value().get(key).and_then(|v| v.as_str()).map(String::from)
    }

    /// The acting user's id from the metadata, when it is a user.
    pub fn actor_id(&self) -> Option<uuid::Uuid> {
        self.meta("actor_id").and_then(|s| s.parse().ok())
    }

    /// This event's hash as the database computes it at insert, given the stored hash of the
    /// stream's previous event (see [`crate::seal`]).
    pub fn content_hash(&self, previous: Option<&[u8]>) -> [u8; 32] {
        crate::seal::event_hash(
            previous,
            &crate::seal::HashInput {
                global_position: self.global_position,
                sequence: self.sequence,
                recorded_at: self.recorded_at,
                aggregate_type: &self.aggregate_type,
                aggregate_id: &self.aggregate_id,
                event_type: &self.event_type,
                event_version: &self.event_version,
                payload: self.payload.get(),
                metadata: self.metadata.get(),
            },
        )
    }
}

/// Columns selected for an [`EventRow`].
/// (Not `transaction_id`: converting `xid8` to text costs tens of microseconds a row, more
/// than everything else together; the engine reads it once per batch instead.)
pub const EVENT_COLUMNS: &str = "global_position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, recorded_at";
