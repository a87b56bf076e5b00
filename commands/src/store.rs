//! The event store: postgres-es's repository for reading streams, and one transactional
//! append for any number of streams.

use crate::error::CommandError;
use crate::group::{append_one, classify, Append, GroupCommit, Row};
use crate::wake::Notifier;
use crate::SessionGuard;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use pettycash_domain::integrity::{
    content_digest, jsonb_text, split_metadata, Authenticity, EventContent, EventKey, SnapshotContent,
};
use pettycash_domain::organisation::{UnitKind, UnitPath};
use pettycash_domain::DomainError;
use postgres_es::PostgresEventRepository;
use serde_json::{Map, Value};
use sqlx::{PgPool, Postgres, Transaction};
use std::any::Any;
use std::sync::Arc;

/// An aggregate folded from its stream, with the sequence of its last event (0 when new).
pub struct Loaded<A> {
    pub id: String,
    pub state: A,
    pub version: usize,
}

/// Folding more events than this past a snapshot writes a new snapshot.
pub const SNAPSHOT_EVERY: usize = 64;

/// An aggregate whose stream grows without bound and whose state stays small (a fund), kept
/// in the `snapshots` table next to its stream so that loading it costs at most
/// [`SNAPSHOT_EVERY`] events, however long its history (see `docs/architecture.md`).
pub trait Snapshotted: Aggregate {
    /// Bump whenever the state's fields or its `apply` change: snapshots of another version
    /// are ignored (and replaced on the next load).
    const SNAPSHOT_VERSION: i64;
}

impl Snapshotted for pettycash_domain::fund::Fund {
    const SNAPSHOT_VERSION: i64 = 2;
}

/// A company's budgets: one event per budget set, every month, for ever (the dashboard of every
/// budget reader and each submission read it).
impl Snapshotted for pettycash_domain::budget::BudgetPlan {
    const SNAPSHOT_VERSION: i64 = 1;
}

/// A row of [`EventStore::load_snapshotted`]'s query: the snapshot (with its MAC), or an event.
/// Payload and metadata as PostgreSQL's text, which their MACs cover.
#[derive(sqlx::FromRow)]
struct SnapshotOrEvent {
    is_snapshot: bool,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: Option<String>,
    mac: Option<Vec<u8>>,
}

/// New events for one stream, to be appended after `expected_version`.
pub struct StreamAppend {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub expected_version: usize,
    pub events: Vec<(String, String, Value)>,
    /// The aggregate after these events, for the aggregate cache once they are committed.
    pub after: Option<Arc<dyn Any + Send + Sync>>,
}

impl StreamAppend {
    /// Serialises domain events decided on `loaded`; `after` is the state they lead to.
    pub fn of<A: Aggregate + Clone + 'static>(
        loaded: &Loaded<A>,
        events: &[A::Event],
        after: &A,
    ) -> Result<Self, CommandError> {
        let events = events
            .iter()
            .map(|e| {
                Ok((e.event_type(), e.event_version(), serde_json::to_value(e).map_err(anyhow::Error::from)?))
            })
            .collect::<Result<Vec<_>, CommandError>>()?;
        Ok(Self {
            aggregate_type: A::TYPE,
            aggregate_id: loaded.id.clone(),
            expected_version: loaded.version,
            events,
            after: Some(Arc::new(after.clone())),
        })
    }
}

/// Runs `command` on `state` (which then holds the new state) and returns the new events.
pub async fn decide<A: Aggregate<Services = ()>>(
    state: &mut A,
    command: A::Command,
) -> Result<Vec<A::Event>, A::Error> {
    let sink = EventSink::<A>::default();
    state.handle(command, &(), &sink).await?;
    Ok(sink.collect().await)
}

#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    repo: Arc<PostgresEventRepository>,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    group: GroupCommit,
    /// Signs every event appended and every snapshot written; checks them when they are
    /// read back (`pettycash_domain::integrity`).
    key: EventKey,
    /// Tells projection workers, here and in other processes, of every commit.
    notifier: Notifier,
}

/// What went wrong with an append that the caller handles.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to one of the streams first (same aggregate, same sequence).
    #[error("concurrent append to {0}")]
    Conflict(&'static str),
    /// The guarding session ended, or its user was deactivated or had roles changed, before
    /// the events were written; nothing was written.
    #[error("the session changed")]
    SessionChanged,
    /// A unique constraint other than the events key was violated (e.g. users.email,
    /// idempotency_keys): the constraint's name.
    #[error("unique constraint {0} violated")]
    Unique(String),
    /// A side write found a rule broken (e.g. no admin would be left); nothing was written.
    #[error(transparent)]
    Rule(pettycash_domain::DomainError),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl EventStore {
    /// An event store that signs and checks with `key` (derived from SEAL_KEY, else
    /// SECRET_KEY: every process writing to one store must use the same secret).
    pub fn new(pool: PgPool, key: EventKey) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        Self {
            notifier: Notifier::new(pool.clone()),
            pool,
            repo: Arc::new(repo),
            upcasters: Arc::new(pettycash_domain::upcast::upcasters()),
            group: GroupCommit::default(),
            key,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Loads one aggregate by folding its whole stream (after upcasting old event versions).
    /// A stream holding an event whose MAC does not verify is refused
    /// ([`CommandError::Tampered`]).
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, CommandError> {
        let events = self
            .repo
            .get_events::<A>(id)
            .await
            .map_err(|e| CommandError::loading(A::TYPE, id, crate::error::persistence_cause(e)))?;
        let mut state = A::default();
        let mut version = 0;
        for serialized in events {
            self.authenticate::<A>(&serialized, &jsonb_text(&serialized.payload))?;
            version = serialized.sequence;
            state.apply(self.deserialize::<A>(serialized)?);
        }
        Ok(Loaded { id: id.to_string(), state, version })
    }

    /// Refuses an event that carries a MAC this store's key does not verify. An event without
    /// a MAC is accepted: the store's constraint (migration 0006) makes every insert carry
    /// one, so only events recorded before it — or by someone able to drop the constraint, who
    /// `pettycash-replay verify` reports — have none.
    fn authenticate<A: Aggregate>(
        &self,
        e: &SerializedEvent,
        payload_text: &str,
    ) -> Result<(), CommandError> {
        let verdict = match &e.metadata {
            Value::Object(meta) => {
                let (metadata, mac) = split_metadata(meta);
                let digest = content_digest(&EventContent {
                    aggregate_type: A::TYPE,
                    aggregate_id: &e.aggregate_id,
                    sequence: e.sequence as i64,
                    event_type: &e.event_type,
                    event_version: &e.event_version,
                    payload: payload_text,
                    metadata: &[&metadata],
                });
                self.key.verdict(&digest, mac.as_deref())
            }
            _ => Authenticity::Forged,
        };
        if verdict == Authenticity::Forged {
            tracing::error!(
                aggregate = A::TYPE,
                id = %e.aggregate_id,
                sequence = e.sequence,
                "an event does not authenticate: the service did not write it, or it was changed"
            );
            return Err(CommandError::Tampered {
                aggregate: A::TYPE,
                id: e.aggregate_id.clone(),
                sequence: e.sequence,
            });
        }
        Ok(())
    }

    /// Loads an aggregate whose stream grows without bound (a fund: one event per payment)
    /// from its snapshot plus the events after it, in one round trip. When more than
    /// [`SNAPSHOT_EVERY`] events were folded past the snapshot, writes a new one (best effort:
    /// the state comes from committed events only, so it is correct whenever it is written;
    /// a failure only costs a longer fold next time). A snapshot of another
    /// [`Snapshotted::SNAPSHOT_VERSION`], without a MAC, or whose MAC does not verify (it was
    /// not written by the service, or was changed) is ignored: the stream is folded from the
    /// start, and the snapshot replaced.
    pub async fn load_snapshotted<A: Snapshotted>(&self, id: &str) -> Result<Loaded<A>, CommandError> {
        let rows: Vec<SnapshotOrEvent> = sqlx::query_as(
            "WITH s AS (SELECT last_sequence, payload, mac FROM snapshots
                        WHERE aggregate_type = $1 AND aggregate_id = $2 AND current_snapshot = $3
                          AND mac IS NOT NULL)
             SELECT true AS is_snapshot, last_sequence AS sequence, '' AS event_type, '' AS event_version,
                    payload::text AS payload, NULL::text AS metadata, mac
             FROM s
             UNION ALL
             (SELECT false, sequence, event_type, event_version, payload::text, metadata::text, NULL::bytea FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2
                AND sequence > coalesce((SELECT last_sequence FROM s), 0)
              ORDER BY sequence)",
        )
        .bind(A::TYPE)
        .bind(id)
        .bind(A::SNAPSHOT_VERSION)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| CommandError::loading(A::TYPE, id, e))?;
        let mut state = A::default();
        let mut version = 0usize;
        let mut folded = 0usize;
        for row in rows {
            if row.is_snapshot {
                let mac = row.mac.unwrap_or_default();
                let content = SnapshotContent {
                    aggregate_type: A::TYPE,
                    aggregate_id: id,
                    last_sequence: row.sequence,
                    version: A::SNAPSHOT_VERSION,
                    payload: &row.payload,
                };
                let authentic = self.key.authenticates_snapshot(&content, &mac);
                match serde_json::from_str(&row.payload) {
                    Ok(s) if authentic => state = s,
                    other => {
                        // Forged, changed or unreadable: fold the whole stream instead and
                        // replace it.
                        let why =
                            other.err().map_or("its MAC does not verify".to_string(), |e| e.to_string());
                        tracing::warn!(aggregate = A::TYPE, id, reason = %why, "ignoring a snapshot");
                        let loaded = self.load::<A>(id).await?;
                        self.write_snapshot(id, &loaded.state, loaded.version, true).await.ok();
                        return Ok(loaded);
                    }
                }
                version = row.sequence as usize;
                continue;
            }
            let parse = |text: &str| {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| CommandError::Corrupt(format!("{} {id} #{}: {e}", A::TYPE, row.sequence)))
            };
            let serialized = SerializedEvent::new(
                id.to_string(),
                row.sequence as usize,
                A::TYPE.to_string(),
                row.event_type.clone(),
                row.event_version.clone(),
                parse(&row.payload)?,
                parse(row.metadata.as_deref().unwrap_or("null"))?,
            );
            self.authenticate::<A>(&serialized, &row.payload)?;
            version = serialized.sequence;
            state.apply(self.deserialize::<A>(serialized)?);
            folded += 1;
        }
        if folded > SNAPSHOT_EVERY {
            if let Err(e) = self.save_snapshot(id, &state, version).await {
                tracing::warn!(aggregate = A::TYPE, id, error = %e, "could not save a snapshot");
            }
        }
        Ok(Loaded { id: id.to_string(), state, version })
    }

    /// Keeps `state` as the snapshot of `id` at `version` (unless a later one is kept), with
    /// its MAC.
    pub async fn save_snapshot<A: Snapshotted>(
        &self,
        id: &str,
        state: &A,
        version: usize,
    ) -> anyhow::Result<()> {
        self.write_snapshot(id, state, version, false).await
    }

    /// `replace`: also over a later snapshot (one found not to authenticate).
    async fn write_snapshot<A: Snapshotted>(
        &self,
        id: &str,
        state: &A,
        version: usize,
        replace: bool,
    ) -> anyhow::Result<()> {
        let payload = serde_json::to_value(state)?;
        let mac = self.key.snapshot_mac(&SnapshotContent {
            aggregate_type: A::TYPE,
            aggregate_id: id,
            last_sequence: version as i64,
            version: A::SNAPSHOT_VERSION,
            payload: &jsonb_text(&payload),
        });
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload, mac)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
             SET last_sequence = EXCLUDED.last_sequence, current_snapshot = EXCLUDED.current_snapshot,
                 payload = EXCLUDED.payload, mac = EXCLUDED.mac
             WHERE snapshots.last_sequence <= EXCLUDED.last_sequence
                OR snapshots.current_snapshot <> EXCLUDED.current_snapshot
                OR snapshots.mac IS NULL OR $7",
        )
        .bind(A::TYPE)
        .bind(id)
        .bind(version as i64)
        .bind(A::SNAPSHOT_VERSION)
        .bind(&payload)
        .bind(mac.as_slice())
        .bind(replace)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Upcasts and deserialises one stored event.
    pub fn deserialize<A: Aggregate>(&self, event: SerializedEvent) -> Result<A::Event, CommandError> {
        let event = pettycash_domain::upcast::upcast(&self.upcasters, event);
        serde_json::from_value(event.payload).map_err(|e| {
            CommandError::Corrupt(format!(
                "{} {} #{} ({} v{}): {e}",
                A::TYPE,
                event.aggregate_id,
                event.sequence,
                event.event_type,
                event.event_version
            ))
        })
    }

    /// Appends the events of one or more streams in one transaction, then applies the side
    /// writes in the same transaction. Returns the global position of the last event.
    ///
    /// A stream whose expected version is stale makes the whole append fail with
    /// [`AppendError::Conflict`] and write nothing. With a `guard`, the same statement checks
    /// that the session is still live, its user active and their roles as the command saw
    /// them; if not, nothing is written ([`AppendError::SessionChanged`]). Without side
    /// writes, the statement may also carry other commands' events ([`crate::group`]): each
    /// keeps its own checks and answer.
    pub async fn append(
        &self,
        streams: &[StreamAppend],
        metadata: &Value,
        side_writes: Vec<SideWrite>,
        guard: Option<&SessionGuard>,
    ) -> Result<i64, AppendError> {
        let meta = match metadata {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let meta_text = jsonb_text(&Value::Object(meta.clone()));
        let rows = streams
            .iter()
            .flat_map(|stream| {
                stream.events.iter().enumerate().map(|(i, (event_type, version, payload))| {
                    let sequence = (stream.expected_version + i + 1) as i64;
                    let content = EventContent {
                        aggregate_type: stream.aggregate_type,
                        aggregate_id: &stream.aggregate_id,
                        sequence,
                        event_type,
                        event_version: version,
                        payload: &jsonb_text(payload),
                        metadata: &[&meta_text],
                    };
                    Row {
                        aggregate_type: stream.aggregate_type,
                        aggregate_id: stream.aggregate_id.clone(),
                        sequence,
                        event_type: event_type.clone(),
                        event_version: version.clone(),
                        payload: payload.clone(),
                        metadata: self.key.sign(&content, &meta),
                    }
                })
            })
            .collect::<Vec<_>>();
        let append = Append { rows, guard: guard.cloned() };
        if side_writes.is_empty() && !append.rows.is_empty() {
            // One statement is atomic on its own; it may share it with other commands.
            let position = self.group.append(&self.pool, append).await?;
            self.notifier.committed();
            return Ok(position);
        }
        let wrote_events = !append.rows.is_empty();
        let mut tx = self.pool.begin().await.map_err(AppendError::Database)?;
        let position = if append.rows.is_empty() {
            self.last_position(&mut tx).await.map_err(AppendError::Database)?
        } else {
            append_one(&mut *tx, &append).await?
        };
        let kind = append.kind();
        let mut mailed = false;
        for write in side_writes {
            mailed |= matches!(write, SideWrite::Mail(_));
            write.apply(&mut tx, position).await?;
        }
        tx.commit().await.map_err(|e| classify(e, kind))?;
        if wrote_events {
            self.notifier.committed();
        }
        if mailed {
            crate::mail::enqueued();
        }
        Ok(position)
    }

    async fn last_position(&self, tx: &mut Transaction<'static, Postgres>) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events").fetch_one(&mut **tx).await
    }

    /// Every event of one stream with its position, time and metadata, for history views.
    pub async fn stream_history(&self, aggregate_type: &str, id: &str) -> sqlx::Result<Vec<StoredEvent>> {
        sqlx::query_as(
            "SELECT sequence, event_type, event_version, payload, metadata, global_position, recorded_at
             FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(id)
        .fetch_all(&self.pool)
        .await
    }
}

/// How many open units are under `unit_id` and how many active users belong to it.
pub async fn count_unit_contents<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    unit_id: uuid::Uuid,
) -> sqlx::Result<(u64, u64)> {
    let (children, members): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM org_units WHERE parent_id = $1 AND NOT closed),
                (SELECT count(*) FROM users WHERE unit_id = $1 AND active)",
    )
    .bind(unit_id)
    .fetch_one(executor)
    .await?;
    Ok((children as u64, members as u64))
}

/// One event as stored.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct StoredEvent {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub global_position: i64,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Rows written in the same transaction as the events they belong to.
pub enum SideWrite {
    /// The `payment_batches` row of a bulk payment batch.
    PaymentBatch(crate::bulk_payments::BatchWrite),
    /// The response to a command sent with an Idempotency-Key; `body` gets the position.
    Idempotency {
        user_id: uuid::Uuid,
        record: crate::IdempotencyRecord,
        body: Box<dyn FnOnce(i64) -> Value + Send>,
    },
    /// The users row, as of the user's latest event.
    UpsertUser {
        id: uuid::Uuid,
        email: String,
        name: String,
        roles: Vec<String>,
        active: bool,
        sponsors: Vec<uuid::Uuid>,
        muted_mail: Vec<pettycash_domain::MailCategory>,
    },
    /// Refuses the command (`DomainError::LastAdmin`) when, after the writes before it, no
    /// active user holds `admin`. Concurrent commands serialise on a transaction lock here, so
    /// two admins revoking each other's role cannot both succeed.
    KeepAnAdmin,
    /// A new password hash (never in the event store).
    SetPassword { user_id: uuid::Uuid, hash: String },
    /// A mail into the outbox ([`crate::mail::enqueue`]), sent once the command commits: for
    /// mail whose content must not be an event (an invitation's secret link). Mail about
    /// events is written by the `notifications` projection instead.
    Mail(Box<crate::mail::Mail>),
    /// The user's unit and its path (`None`: unscoped), as of their `UnitAssigned` event.
    SetUserUnit { user_id: uuid::Uuid, unit: Option<UnitPath> },
    /// Ends every session of a user (deactivated): their next request is 401.
    EndSessions { user_id: uuid::Uuid },
    /// The `org_units` row, as of the unit's latest event. Its unique keys make codes unique
    /// within a company (`org_units_code_key`) and company codes across companies
    /// (`org_units_company_code_key`).
    UpsertUnit(UnitRow),
    /// Refuses the command (`DomainError::UnitClosed`) when the unit is closed, holding a
    /// share lock on its row until the commit: a unit cannot be closed while a child is opened
    /// under it or a member assigned to it.
    UnitIsOpen { unit_id: uuid::Uuid },
    /// Refuses the command (`DomainError::UnitNotEmpty`) when the unit has open children or
    /// active members, after taking an exclusive lock on its row (which waits for the
    /// commands holding [`SideWrite::UnitIsOpen`] on it, and makes later ones wait).
    UnitIsEmpty { unit_id: uuid::Uuid },
    /// The `invitations` row, as of the invitation's latest event (issued, resent, revoked).
    /// `invitations_open_email_key` keeps one open invitation per email.
    UpsertInvitation(InvitationRow),
    /// Marks the invitation accepted by `user_id` if it is still pending with the link
    /// `token_hash`; otherwise refuses the command (`DomainError::InvitationInvalid`). A link
    /// is used once whatever raced it: the invitation stream's next sequence is the first
    /// guard, this conditional update the second.
    ClaimInvitation { id: uuid::Uuid, token_hash: String, user_id: uuid::Uuid },
    /// The `delegations` row, as of the delegation's latest event (granted, revoked).
    UpsertDelegation(DelegationRow),
    /// Refuses the command (`DomainError::DelegationInactive`) unless delegation `id` is active
    /// at `at`, holding a share lock on its row until the commit: a decision on someone's
    /// behalf never commits after the revocation of the delegation it used (a revocation
    /// waits for it, or it sees the revocation).
    DelegationInForce { id: uuid::Uuid, at: chrono::DateTime<chrono::Utc> },
    /// The `advances` row, as of the advance's latest event (requested, issued, settled,
    /// overdue).
    UpsertAdvance(AdvanceRow),
    /// A write on `payment_codes` (issued, wrong attempt, used), refusing the command when a
    /// conditional update finds the code used or locked (`crate::payments::CodeWrite`).
    PaymentCode(crate::payments::CodeWrite),
    /// The `provider_payments` row of a payment through a provider (started, settled),
    /// refusing a settlement of a payment no longer executing
    /// (`crate::provider_payments::ProviderWrite`).
    ProviderPayment(crate::provider_payments::ProviderWrite),
}

/// An advance as the `advances` table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvanceRow {
    pub holder_id: uuid::Uuid,
    /// The fund's company (`None`: unscoped): whose treasury reads it.
    pub company_id: Option<uuid::Uuid>,
    pub advance: pettycash_domain::advance::Advance,
}

/// A delegation as the `delegations` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRow {
    pub grant: pettycash_domain::delegation::Grant,
    /// When it was revoked (the clock of the command that revoked it), and by whom.
    pub revoked: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
}

/// An invitation as the `invitations` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<pettycash_domain::Role>,
    pub unit_id: Option<uuid::Uuid>,
    pub company_id: Option<uuid::Uuid>,
    pub token_hash: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// As recorded: pending, accepted or revoked.
    pub status: pettycash_domain::invitation::InvitationStatus,
    pub invited_by: Option<uuid::Uuid>,
}

/// A unit as the `org_units` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub kind: UnitKind,
    pub name: String,
    pub code: String,
    pub phone: Option<String>,
    pub parent_id: Option<uuid::Uuid>,
    /// Its path; `path.unit_id` is its id.
    pub path: UnitPath,
    pub closed: bool,
}

impl SideWrite {
    /// Writes this in `tx`, the transaction that appended the events ending at `position`.
    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
        position: i64,
    ) -> Result<(), AppendError> {
        match self {
            SideWrite::UnitIsOpen { unit_id } => {
                let closed: Option<bool> =
                    sqlx::query_scalar("SELECT closed FROM org_units WHERE id = $1 FOR SHARE")
                        .bind(unit_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(AppendError::Database)?;
                match closed {
                    Some(false) => Ok(()),
                    Some(true) => Err(AppendError::Rule(DomainError::UnitClosed)),
                    None => Err(AppendError::Rule(DomainError::NotFound { what: "unit" })),
                }
            }
            SideWrite::UnitIsEmpty { unit_id } => {
                sqlx::query("SELECT 1 FROM org_units WHERE id = $1 FOR UPDATE")
                    .bind(unit_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(AppendError::Database)?;
                // A statement of its own after the lock: it sees what the lock's previous
                // holders committed.
                let (open_children, members) =
                    count_unit_contents(&mut **tx, unit_id).await.map_err(AppendError::Database)?;
                if open_children > 0 || members > 0 {
                    return Err(AppendError::Rule(DomainError::UnitNotEmpty { open_children, members }));
                }
                Ok(())
            }
            SideWrite::ClaimInvitation { id, token_hash, user_id } => {
                let claimed = sqlx::query(
                    "UPDATE invitations SET status = 'accepted', user_id = $3, last_position = $4
                     WHERE id = $1 AND token_hash = $2 AND status = 'pending'",
                )
                .bind(id)
                .bind(token_hash)
                .bind(user_id)
                .bind(position)
                .execute(&mut **tx)
                .await
                .map_err(AppendError::Database)?;
                if claimed.rows_affected() == 0 {
                    return Err(AppendError::Rule(DomainError::InvitationInvalid {
                        reason: "claimed meanwhile",
                    }));
                }
                Ok(())
            }
            SideWrite::DelegationInForce { id, at } => {
                let status: Option<pettycash_domain::delegation::DelegationStatus> = sqlx::query_scalar(
                    "SELECT CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN $2 < starts_at THEN 'scheduled'
                                 WHEN $2 < ends_at THEN 'active' ELSE 'ended' END
                     FROM delegations WHERE id = $1 FOR SHARE",
                )
                .bind(id)
                .bind(at)
                .fetch_optional(&mut **tx)
                .await
                .map_err(AppendError::Database)?;
                match status {
                    Some(pettycash_domain::delegation::DelegationStatus::Active) => Ok(()),
                    Some(status) => Err(AppendError::Rule(DomainError::DelegationInactive { status })),
                    None => Err(AppendError::Rule(DomainError::NotFound { what: "delegation" })),
                }
            }
            SideWrite::PaymentCode(write) => crate::payments::apply(tx, write).await,
            SideWrite::ProviderPayment(write) => crate::provider_payments::apply(tx, write).await,
            SideWrite::PaymentBatch(write) => crate::bulk_payments::apply(tx, write).await,
            other => other.write(tx, position).await.map_err(|e| classify(e, "user")),
        }
    }

    async fn write(self, tx: &mut Transaction<'static, Postgres>, position: i64) -> sqlx::Result<()> {
        match self {
            SideWrite::Idempotency { user_id, record, body } => {
                sqlx::query(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user_id)
                .bind(&record.key)
                .bind(&record.request_hash)
                .bind(record.status as i16)
                .bind(body(position))
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UpsertUser { id, email, name, roles, active, sponsors, muted_mail } => {
                sqlx::query(
                    "INSERT INTO users (id, email, name, roles, active, last_position, sponsors, muted_mail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE
                     SET email = $2, name = $3, roles = $4, active = $5, last_position = $6, sponsors = $7,
                         muted_mail = $8",
                )
                .bind(id)
                .bind(email)
                .bind(name)
                .bind(roles)
                .bind(active)
                .bind(position)
                .bind(sponsors)
                .bind(muted_mail)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::KeepAnAdmin => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pettycash: at least one admin'))")
                    .execute(&mut **tx)
                    .await?;
                // A statement of its own after the lock: it sees what the lock's previous
                // holder committed.
                sqlx::query(
                    "DO $$ BEGIN
                        IF NOT EXISTS (SELECT 1 FROM users WHERE active AND 'admin' = ANY (roles)) THEN
                            RAISE EXCEPTION 'no active admin would be left' USING ERRCODE = 'P0A01';
                        END IF;
                     END $$",
                )
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::SetUserUnit { user_id, unit } => {
                sqlx::query(
                    "UPDATE users SET unit_id = $2, company_id = $3, region_id = $4, branch_id = $5,
                            department_id = $6, cost_centre_id = $7, last_position = $8
                     WHERE id = $1",
                )
                .bind(user_id)
                .bind(unit.map(|u| u.unit_id))
                .bind(unit.map(|u| u.company))
                .bind(unit.and_then(|u| u.region))
                .bind(unit.and_then(|u| u.branch))
                .bind(unit.and_then(|u| u.department))
                .bind(unit.and_then(|u| u.cost_centre))
                .bind(position)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::EndSessions { user_id } => {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UpsertUnit(u) => {
                sqlx::query(
                    "INSERT INTO org_units (id, kind, name, code, phone, parent_id, company_id, region_id, branch_id,
                                            department_id, cost_centre_id, closed, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (id) DO UPDATE SET name = $3, phone = $5, closed = $12, last_position = $13",
                )
                .bind(u.path.unit_id)
                .bind(u.kind)
                .bind(&u.name)
                .bind(&u.code)
                .bind(&u.phone)
                .bind(u.parent_id)
                .bind(u.path.company)
                .bind(u.path.region)
                .bind(u.path.branch)
                .bind(u.path.department)
                .bind(u.path.cost_centre)
                .bind(u.closed)
                .bind(position)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UpsertInvitation(i) => {
                sqlx::query(
                    "INSERT INTO invitations (id, email, name, roles, unit_id, company_id, token_hash, expires_at,
                                              status, invited_by, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (id) DO UPDATE
                     SET token_hash = $7, expires_at = $8, status = $9, last_position = $11",
                )
                .bind(i.id)
                .bind(&i.email)
                .bind(&i.name)
                .bind(&i.roles)
                .bind(i.unit_id)
                .bind(i.company_id)
                .bind(&i.token_hash)
                .bind(i.expires_at)
                .bind(i.status)
                .bind(i.invited_by)
                .bind(position)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UpsertDelegation(d) => {
                let g = &d.grant;
                sqlx::query(
                    "INSERT INTO delegations (id, delegator_id, delegate_id, role, starts_at, ends_at, company_id,
                                              granted_by, revoked_at, revoked_by, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (id) DO UPDATE SET revoked_at = $9, revoked_by = $10, last_position = $11",
                )
                .bind(g.delegation_id)
                .bind(g.delegator_id)
                .bind(g.delegate_id)
                .bind(g.role)
                .bind(g.starts_at)
                .bind(g.ends_at)
                .bind(g.company_id)
                .bind(g.granted_by)
                .bind(d.revoked.map(|r| r.0))
                .bind(d.revoked.map(|r| r.1))
                .bind(position)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UpsertAdvance(row) => {
                let a = &row.advance;
                sqlx::query(
                    "INSERT INTO advances (requisition_id, holder_id, fund_id, company_id, currency, amount, spent,
                                           returned, outstanding, payment_id, paid_at, due_at, settlements,
                                           overdue_recorded, last_position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                     ON CONFLICT (requisition_id) DO UPDATE SET spent = $7, returned = $8, outstanding = $9,
                         payment_id = $10, paid_at = $11, due_at = $12, settlements = $13,
                         overdue_recorded = $14, last_position = $15",
                )
                .bind(a.requisition_id)
                .bind(row.holder_id)
                .bind(a.fund_id)
                .bind(row.company_id)
                .bind(a.currency.to_string())
                .bind(a.amount)
                .bind(a.spent)
                .bind(a.returned)
                .bind(a.outstanding())
                .bind(a.issued.map(|i| i.payment_id))
                .bind(a.issued.map(|i| i.paid_at))
                .bind(a.issued.map(|i| i.due_at))
                .bind(i32::try_from(a.settlements).unwrap_or(i32::MAX))
                .bind(a.overdue_recorded)
                .bind(position)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::UnitIsOpen { .. }
            | SideWrite::UnitIsEmpty { .. }
            | SideWrite::ClaimInvitation { .. }
            | SideWrite::PaymentCode(_)
            | SideWrite::ProviderPayment(_)
            | SideWrite::PaymentBatch(_)
            | SideWrite::DelegationInForce { .. } => {
                unreachable!("checked by SideWrite::apply")
            }
            SideWrite::SetPassword { user_id, hash } => {
                sqlx::query(
                    "INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET password_hash = $2, updated_at = now()",
                )
                .bind(user_id)
                .bind(hash)
                .execute(&mut **tx)
                .await?;
            }
            SideWrite::Mail(mail) => {
                crate::mail::enqueue(tx, &mail).await?;
            }
        }
        Ok(())
    }
}
