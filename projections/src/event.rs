//! A stored event as the tailer reads it.

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use pettycash_domain::integrity::{
    content_digest, split_stored_metadata, Authenticity, EventContent, EventKey,
};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::types::{Json, Type};
use sqlx::{Row, ValueRef};
use std::sync::OnceLock;

/// A JSON value as PostgreSQL prints it (for jsonb: its canonical text), not parsed: the
/// engine reads every event, and each projection parses only the payloads it uses, straight
/// into the domain type (checking the text as JSON first would cost a tenth of reading).
#[derive(Debug, Clone)]
pub struct JsonText(Box<str>);

impl JsonText {
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The value checked as JSON, to be written out as it is.
    pub fn to_raw(&self) -> serde_json::Result<Box<RawValue>> {
        RawValue::from_string(self.0.to_string())
    }
}

impl From<Box<RawValue>> for JsonText {
    fn from(json: Box<RawValue>) -> Self {
        JsonText(json.get().into())
    }
}

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        <Json<()> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Json<()> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for JsonText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let jsonb = *value.type_info() == <Json<()> as Type<Postgres>>::type_info();
        let mut bytes = value.as_bytes()?;
        if value.format() == PgValueFormat::Binary && jsonb {
            // jsonb's binary form: a format version (1), then the text.
            match bytes.split_first() {
                Some((1, text)) => bytes = text,
                _ => return Err("unsupported jsonb binary format".into()),
            }
        }
        Ok(JsonText(std::str::from_utf8(bytes)?.into()))
    }
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The payload as stored, undecoded: each projection decodes only the events it uses,
    /// straight into the domain type.
    pub payload: JsonText,
    /// The metadata as stored (PostgreSQL's canonical jsonb text, which the event hash covers).
    pub metadata: JsonText,
    pub recorded_at: DateTime<Utc>,
}

/// By position: the columns of [`EVENT_COLUMNS`], which come first in every query that reads
/// events (looking each column up by name cost more than decoding most of them).
impl<'r> sqlx::FromRow<'r, PgRow> for EventRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            global_position: row.try_get(0)?,
            aggregate_type: row.try_get(1)?,
            aggregate_id: row.try_get(2)?,
            sequence: row.try_get(3)?,
            event_type: row.try_get(4)?,
            event_version: row.try_get(5)?,
            payload: row.try_get(6)?,
            metadata: row.try_get(7)?,
            recorded_at: row.try_get(8)?,
        })
    }
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

    /// This event's content digest (`pettycash_domain::integrity::content_digest`, over the
    /// stored text) and its `mac` text; `None` when the metadata is not a JSON object.
    pub fn stored_digest(&self) -> Option<StoredDigest<'_>> {
        let split = split_stored_metadata(self.metadata.get())?;
        let content = EventContent {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: self.payload.get(),
            metadata: &split.pieces(),
        };
        Some((content_digest(&content), split.mac))
    }

    /// Whether the service wrote this event: its MAC (in the metadata) verifies with `key`.
    pub fn authenticity(&self, key: &EventKey) -> Authenticity {
        self.stored_digest()
            .map_or(Authenticity::Forged, |(digest, mac)| key.verdict(&digest, mac.as_deref()))
    }

    /// This event's version-2 hash (recorded since migration 0006), given its stream
    /// predecessor's stored hash and its [`EventRow::stored_digest`].
    pub fn hash_v2(&self, previous: Option<&[u8]>, digest: &[u8; 32], mac: Option<&str>) -> [u8; 32] {
        crate::seal::event_hash_v2(
            previous,
            self.global_position,
            self.sequence,
            self.recorded_at,
            digest,
            mac.unwrap_or(""),
        )
    }

    /// This event's version-1 hash (recorded before migration 0006), given the stored hash of the
    /// stream's previous event (see [`crate::seal`]).
    pub fn hash_v1(&self, previous: Option<&[u8]>) -> [u8; 32] {
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

/// An event with its stored hash (`SELECT {EVENT_COLUMNS}, event_hash`), for the sealer,
/// `verify` and `export`.
#[derive(sqlx::FromRow)]
pub struct HashedRow {
    #[sqlx(flatten)]
    pub event: EventRow,
    pub event_hash: Option<Vec<u8>>,
}

/// An event's content digest and its `mac` text ([`EventRow::stored_digest`]).
pub type StoredDigest<'a> = ([u8; 32], Option<std::borrow::Cow<'a, str>>);

/// Columns selected for an [`EventRow`], in the order it decodes them.
/// (Not `transaction_id`: converting `xid8` to text costs tens of microseconds a row, more
/// than everything else together; the engine reads it once per batch instead.)
pub const EVENT_COLUMNS: &str = "global_position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, recorded_at";
