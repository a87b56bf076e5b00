//! Tamper evidence (issue [replay]): the per-stream event hash, the global chain and its seals.
//!
//! - **Event hash.** The database computes it at insert (`migrations/0004_tamper_evidence.sql`,
//!   trigger `events_hash_chain`); [`event_hash`] computes the same bytes in Rust so that
//!   `pettycash-replay verify` can check every stored hash against the event's content and its
//!   stream predecessor's stored hash. A changed payload or metadata breaks its own event's hash.
//! - **Chain.** Over every event hash in the global order `(transaction_id, global_position)`:
//!   `c0 = 0³², c(n) = sha256(c(n-1) || hash(n))` ([`chain_step`]).
//! - **Seals.** The sealer ([`run`], [`seal_once`]) periodically appends a row to `event_seals`
//!   recording how far the chain got, its value there, the `(position, hash prefix)` of each
//!   event the seal covers and an HMAC-SHA256 over all of it plus the previous seal's MAC,
//!   keyed by a secret from configuration ([`SealKey`]) that is not in the database. Whoever
//!   rewrites events *and* their hashes (or inserts, removes or reorders them) cannot make the
//!   seals agree without the key.
//!
//! - **Only the service's events.** Each event the service appends carries a MAC under a key
//!   the database does not hold (`pettycash_domain::integrity`). The sealer seals only events
//!   whose MAC verifies (or that were recorded before events were authenticated, at or below
//!   `event_authentication.unsigned_through`); any other event in its range is *refused*: it
//!   is left out of the chain and the seal records its position (`refused`), so `verify`
//!   names it even without the key, and sealing goes on past it.
//!
//! The sealer only seals events below the visibility horizon (like the projection engine), so
//! the order it seals is final: no transaction still running can commit an event before them.
//! Several sealers (in several processes) may run: a seal's id is the previous one's plus one,
//! so a race ends in a primary-key conflict and the loser tries again later.

use crate::event::HashedRow;
use chrono::{DateTime, SubsecRound, Utc};
use pettycash_domain::integrity::{hmac, same, Authenticity, EventKey};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;

/// The hash of "nothing before": a stream's first event, and the chain's start.
pub const ZERO: [u8; 32] = [0; 32];
/// Bytes of an event hash kept per entry of a seal (enough to name the event that differs).
pub const PREFIX: usize = 8;
/// Bytes of one seal entry: int8 position, then the hash prefix.
pub const ENTRY: usize = 8 + PREFIX;

/// The content of one stored event that its hash covers.
pub struct HashInput<'a> {
    pub global_position: i64,
    pub sequence: i64,
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub event_type: &'a str,
    pub event_version: &'a str,
    /// `payload::text` exactly as PostgreSQL prints the jsonb.
    pub payload: &'a str,
    /// `metadata::text` exactly as PostgreSQL prints the jsonb.
    pub metadata: &'a str,
}

fn field(h: &mut Sha256, value: &str) {
    h.update((value.len() as i32).to_be_bytes());
    h.update(value.as_bytes());
}

/// The version-1 event hash (events recorded before migration 0006; `event_hash()` in
/// migration 0004), given the
/// stored hash of the stream's previous event (`None` for the first event, or a predecessor
/// recorded before hashing existed).
pub fn event_hash(previous: Option<&[u8]>, e: &HashInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pettycash-event-v1");
    h.update(previous.unwrap_or(&ZERO));
    h.update(e.global_position.to_be_bytes());
    h.update(e.sequence.to_be_bytes());
    h.update(e.recorded_at.timestamp_micros().to_be_bytes());
    field(&mut h, e.aggregate_type);
    field(&mut h, e.aggregate_id);
    field(&mut h, e.event_type);
    field(&mut h, e.event_version);
    field(&mut h, e.payload);
    field(&mut h, e.metadata);
    h.finalize().into()
}

/// The version-2 event hash (events recorded since migration 0006, `event_hash_v2()` there):
/// over the stream predecessor's stored hash, position, sequence, time, the event's content
/// digest (`pettycash_domain::integrity::content_digest`) and its `mac` text.
pub fn event_hash_v2(
    previous: Option<&[u8]>,
    global_position: i64,
    sequence: i64,
    recorded_at: DateTime<Utc>,
    digest: &[u8; 32],
    mac: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pettycash-event-v2");
    h.update(previous.unwrap_or(&ZERO));
    h.update(global_position.to_be_bytes());
    h.update(sequence.to_be_bytes());
    h.update(recorded_at.timestamp_micros().to_be_bytes());
    h.update(digest);
    field(&mut h, mac);
    h.finalize().into()
}

/// One step of the global chain. An event without a hash (recorded before hashing existed)
/// counts as 32 zero bytes.
pub fn chain_step(chain: &[u8; 32], event_hash: Option<&[u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(chain);
    h.update(event_hash.unwrap_or(&ZERO));
    h.finalize().into()
}

/// The first [`PREFIX`] bytes of an event hash (zeros for an event without one).
pub fn prefix(event_hash: Option<&[u8]>) -> [u8; PREFIX] {
    let mut p = [0u8; PREFIX];
    if let Some(h) = event_hash {
        let n = h.len().min(PREFIX);
        p[..n].copy_from_slice(&h[..n]);
    }
    p
}

/// The entry a seal keeps for one event.
pub fn entry(position: i64, event_hash: Option<&[u8]>) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..8].copy_from_slice(&position.to_be_bytes());
    e[8..].copy_from_slice(&prefix(event_hash));
    e
}

/// The key that authenticates seals. Derived from a configured secret (`SEAL_KEY`, or the
/// service's `SECRET_KEY`), never stored in the database.
#[derive(Clone)]
pub struct SealKey {
    key: [u8; 32],
    /// Names the key without revealing it (stored with each seal).
    pub id: String,
    /// The key of the same secret that authenticates events: the sealer seals only events it
    /// verifies.
    pub events: EventKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id)
    }
}

impl SealKey {
    /// The seal key for a configured secret.
    pub fn derive(secret: &str) -> Self {
        let key = hmac(secret.as_bytes(), &[b"pettycash-seal-key-v1"]);
        let id = hex::encode(&hmac(&key, &[b"pettycash-seal-key-id"])[..8]);
        Self { key, id, events: EventKey::derive(secret) }
    }

    /// The MAC of a seal, chained to the previous seal's MAC (`None` for the first seal).
    pub fn mac(&self, seal: &Seal, previous_mac: Option<&[u8]>) -> [u8; 32] {
        let entries_digest: [u8; 32] = Sha256::digest(&seal.entries).into();
        let refused_digest: [u8; 32] = Sha256::digest(&seal.refused).into();
        let (seal_id, position, count) =
            (seal.seal_id.to_be_bytes(), seal.last_position.to_be_bytes(), seal.event_count.to_be_bytes());
        let txid_len = (seal.last_transaction_id.len() as i32).to_be_bytes();
        let key_id_len = (seal.key_id.len() as i32).to_be_bytes();
        let sealed_at = seal.sealed_at.timestamp_micros().to_be_bytes();
        let mut parts: Vec<&[u8]> = vec![
            b"pettycash-seal-v1",
            &seal_id,
            &txid_len,
            seal.last_transaction_id.as_bytes(),
            &position,
            &count,
            &seal.chain_hash,
            &entries_digest,
            &key_id_len,
            seal.key_id.as_bytes(),
            &sealed_at,
            previous_mac.unwrap_or(&ZERO),
        ];
        // Refused positions are covered when there are any; a seal without (every seal made
        // before events were authenticated) keeps the MAC it was made with.
        if !seal.refused.is_empty() {
            parts.extend([b"refused".as_slice(), &refused_digest]);
        }
        hmac(&self.key, &parts)
    }

    /// True when the seal's MAC is this key's MAC of it (constant-time comparison).
    pub fn authenticates(&self, seal: &Seal, previous_mac: Option<&[u8]>) -> bool {
        same(&self.mac(seal, previous_mac), &seal.mac)
    }
}

/// One row of `event_seals`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Seal {
    pub seal_id: i64,
    pub last_transaction_id: String,
    pub last_position: i64,
    pub event_count: i64,
    pub chain_hash: Vec<u8>,
    pub entries: Vec<u8>,
    pub key_id: String,
    pub sealed_at: DateTime<Utc>,
    pub mac: Vec<u8>,
    /// Positions (int8 each) of the events in this seal's range that the sealer refused: their
    /// MAC did not verify. Not in the chain.
    pub refused: Vec<u8>,
}

/// Columns selected for a [`Seal`].
pub const SEAL_COLUMNS: &str = "seal_id, last_transaction_id::text AS last_transaction_id, last_position, \
     event_count, chain_hash, entries, key_id, sealed_at, mac, refused";

impl Seal {
    /// `(position, hash prefix)` of each event the seal covers, in order.
    pub fn entries(&self) -> impl Iterator<Item = (i64, [u8; PREFIX])> + '_ {
        self.entries.chunks_exact(ENTRY).map(|c| {
            let position = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            (position, c[8..].try_into().expect("prefix bytes"))
        })
    }

    pub fn chain(&self) -> [u8; 32] {
        self.chain_hash.as_slice().try_into().unwrap_or(ZERO)
    }

    /// Positions of the events the sealer refused, in order.
    pub fn refused(&self) -> impl Iterator<Item = i64> + '_ {
        self.refused.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes")))
    }
}

/// The last position recorded before events were authenticated (migration 0006): events at
/// or below it are accepted without a MAC.
pub async fn unsigned_through(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT unsigned_through FROM event_authentication").fetch_one(pool).await
}

/// Whether the sealer may seal `event`: its MAC verifies, or it predates authentication.
pub fn sealable(key: &EventKey, event: &crate::event::EventRow, unsigned_through: i64) -> bool {
    match event.authenticity(key) {
        Authenticity::Authentic => true,
        Authenticity::Unsigned => event.global_position <= unsigned_through,
        Authenticity::Forged => false,
    }
}

#[derive(Debug, Clone)]
pub struct SealerOptions {
    /// Most events one seal covers.
    pub max_events: i64,
    /// Pause between seals when caught up.
    pub interval: Duration,
}

impl Default for SealerOptions {
    fn default() -> Self {
        Self { max_events: 10_000, interval: Duration::from_secs(10) }
    }
}

/// Why the sealer will not seal.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "seal #{0} was made with key {1}, not with the configured key {2}; configure the key that \
         made it (SEAL_KEY / SECRET_KEY)"
    )]
    OtherKey(i64, String, String),
    #[error(
        "seal #{0} does not authenticate with the configured key: the seals were altered; run \
         `pettycash-replay verify` and investigate before sealing anything more"
    )]
    Forged(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The last seal, checked against `key` (with the one before it, whose MAC it chains).
pub async fn last_seal(pool: &PgPool, key: &SealKey) -> Result<Option<Seal>, SealError> {
    let seals: Vec<Seal> =
        sqlx::query_as(&format!("SELECT {SEAL_COLUMNS} FROM event_seals ORDER BY seal_id DESC LIMIT 2"))
            .fetch_all(pool)
            .await?;
    let Some(last) = seals.first() else { return Ok(None) };
    if last.key_id != key.id {
        return Err(SealError::OtherKey(last.seal_id, last.key_id.clone(), key.id.clone()));
    }
    let previous = seals.get(1).filter(|p| p.seal_id == last.seal_id - 1);
    if (last.seal_id > 1 && previous.is_none())
        || !key.authenticates(last, previous.map(|p| p.mac.as_slice()))
    {
        return Err(SealError::Forged(last.seal_id));
    }
    Ok(Some(last.clone()))
}

/// What one sealing attempt did.
#[derive(Debug)]
pub enum Sealed {
    /// A new seal.
    Seal(Seal),
    /// Nothing new to seal.
    Nothing,
    /// Another sealer wrote the same seal first (try again).
    Lost,
}

/// Seals the next events below the visibility horizon (at most `max_events`).
pub async fn seal_once(pool: &PgPool, key: &SealKey, max_events: i64) -> Result<Sealed, SealError> {
    let last = last_seal(pool, key).await?;
    let (txid, position, count, mut chain, previous_mac) = match &last {
        Some(s) => {
            (s.last_transaction_id.clone(), s.last_position, s.event_count, s.chain(), Some(s.mac.clone()))
        }
        None => ("0".to_string(), 0, 0, ZERO, None),
    };
    let rows: Vec<HashedRow> = crate::reader::hashed_after(pool, &txid, position, max_events).await?;
    let Some(newest) = rows.last() else { return Ok(Sealed::Nothing) };
    let last_position = newest.event.global_position;
    let unsigned_through = unsigned_through(pool).await?;
    let mut entries = Vec::with_capacity(rows.len() * ENTRY);
    let mut refused = Vec::new();
    let mut covered = 0i64;
    for row in &rows {
        let (e, hash) = (&row.event, row.event_hash.as_deref());
        if !sealable(&key.events, e, unsigned_through) {
            tracing::error!(
                position = e.global_position,
                aggregate = %e.aggregate_type,
                id = %e.aggregate_id,
                sequence = e.sequence,
                event_type = %e.event_type,
                "refusing to seal an event whose MAC does not verify: the service did not write it; \
                 run `pettycash-replay verify`"
            );
            refused.extend_from_slice(&e.global_position.to_be_bytes());
            continue;
        }
        chain = chain_step(&chain, hash);
        entries.extend_from_slice(&entry(e.global_position, hash));
        covered += 1;
    }
    let last_transaction_id: String =
        sqlx::query_scalar("SELECT transaction_id::text FROM events WHERE global_position = $1")
            .bind(last_position)
            .fetch_one(pool)
            .await?;
    let mut seal = Seal {
        seal_id: last.as_ref().map_or(1, |s| s.seal_id + 1),
        last_transaction_id,
        last_position,
        event_count: count + covered,
        chain_hash: chain.to_vec(),
        entries,
        key_id: key.id.clone(),
        // PostgreSQL keeps microseconds: the MAC covers exactly what is stored.
        sealed_at: Utc::now().trunc_subsecs(6),
        mac: Vec::new(),
        refused,
    };
    seal.mac = key.mac(&seal, previous_mac.as_deref()).to_vec();
    let inserted = sqlx::query(
        "INSERT INTO event_seals (seal_id, last_transaction_id, last_position, event_count, chain_hash,
                                  entries, key_id, sealed_at, mac, refused)
         VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (seal_id) DO NOTHING",
    )
    .bind(seal.seal_id)
    .bind(&seal.last_transaction_id)
    .bind(seal.last_position)
    .bind(seal.event_count)
    .bind(&seal.chain_hash)
    .bind(&seal.entries)
    .bind(&seal.key_id)
    .bind(seal.sealed_at)
    .bind(&seal.mac)
    .bind(&seal.refused)
    .execute(pool)
    .await?;
    Ok(if inserted.rows_affected() == 1 { Sealed::Seal(seal) } else { Sealed::Lost })
}

/// Seals everything visible now; returns the seals written.
pub async fn seal_all(pool: &PgPool, key: &SealKey, max_events: i64) -> Result<Vec<Seal>, SealError> {
    let mut seals = Vec::new();
    loop {
        match seal_once(pool, key, max_events).await? {
            Sealed::Seal(seal) => seals.push(seal),
            Sealed::Lost => continue,
            Sealed::Nothing => return Ok(seals),
        }
    }
}

/// The sealer: seals as events arrive (a full seal at once, otherwise every `interval`) until
/// `shutdown`. A seal that does not authenticate stops it (loudly): sealing on top of altered
/// seals would hide the alteration.
pub async fn run(pool: PgPool, key: SealKey, options: SealerOptions, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(key_id = key.id, "sealer running");
    loop {
        let pause = match seal_once(&pool, &key, options.max_events).await {
            Ok(Sealed::Seal(seal)) => {
                tracing::debug!(seal = seal.seal_id, position = seal.last_position, "sealed");
                if (seal.entries.len() / ENTRY + seal.refused.len() / 8) as i64 >= options.max_events {
                    Duration::ZERO
                } else {
                    options.interval
                }
            }
            Ok(Sealed::Lost) => Duration::ZERO,
            Ok(Sealed::Nothing) => options.interval,
            Err(e @ (SealError::Forged(_) | SealError::OtherKey(..))) => {
                tracing::error!(error = %e, "sealer stopped");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "sealing failed; trying again");
                options.interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_secret_and_do_not_reveal_it() {
        let a = SealKey::derive("a secret of at least thirty-two characters");
        let b = SealKey::derive("another secret of at least thirty-two chars");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 16);
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn a_seal_authenticates_only_unchanged_and_with_its_key() {
        let key = SealKey::derive("k".repeat(40).as_str());
        let mut seal = Seal {
            seal_id: 1,
            last_transaction_id: "740".into(),
            last_position: 3,
            event_count: 3,
            chain_hash: vec![7; 32],
            entries: [entry(1, Some(&[1; 32])), entry(2, None), entry(3, Some(&[3; 32]))].concat(),
            key_id: key.id.clone(),
            sealed_at: Utc::now().trunc_subsecs(6),
            mac: vec![],
            refused: vec![],
        };
        seal.mac = key.mac(&seal, None).to_vec();
        assert!(key.authenticates(&seal, None));
        assert!(!key.authenticates(&seal, Some(&[1; 32])), "chained to another previous seal");
        assert!(!SealKey::derive(&"x".repeat(40)).authenticates(&seal, None));
        let mut changed = seal.clone();
        changed.entries[20] ^= 1;
        assert!(!key.authenticates(&changed, None));
        let mut changed = seal.clone();
        changed.event_count = 4;
        assert!(!key.authenticates(&changed, None));
        assert_eq!(seal.entries().collect::<Vec<_>>(), vec![(1, [1; 8]), (2, [0; 8]), (3, [3; 8])]);
        // Refused positions are covered once there are any.
        let mut with_refused = seal.clone();
        with_refused.refused = 2i64.to_be_bytes().to_vec();
        assert!(!key.authenticates(&with_refused, None));
        with_refused.mac = key.mac(&with_refused, None).to_vec();
        assert!(key.authenticates(&with_refused, None));
        assert_eq!(with_refused.refused().collect::<Vec<_>>(), vec![2]);
    }
}
