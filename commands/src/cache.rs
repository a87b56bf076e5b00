//! An in-process cache of aggregates as of their last known event, so that a command on a
//! requisition or a fund that this process touched recently costs one round trip (the append)
//! instead of two or three (load, then append).
//!
//! Why it is safe, even with several server processes writing the same store:
//!
//! - An entry is only ever a fold of committed events (a load, or the state decided by a
//!   command whose append committed), and events never change, so an entry at version `v` is
//!   exactly the aggregate after its first `v` events.
//! - If another process appended since, the entry is *stale but not wrong*: a command decided
//!   on it appends at `v + 1`, which the events' primary key refuses; the command then runs
//!   again on a fresh load (see `CommandService::retrying`).
//! - A command *refused* on a cached state (a business-rule error, "not found") is run once
//!   more on a fresh load before the refusal is answered, so a stale entry never turns a
//!   valid request away.
//!
//! Entries that carry rules from outside their stream (the approval policy) are read with a
//! maximum age (see [`AggregateCache::get`]).
//!
//! The cache holds at most `capacity` entries in two generations: new and used entries go to
//! the young one; when it is full it becomes the old one and the previous old one is dropped.
//! Memory is bounded, recently used entries survive, and nothing scans.

use crate::store::Loaded;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Key = (&'static str, String);

#[derive(Clone)]
struct Entry {
    state: Arc<dyn Any + Send + Sync>,
    version: usize,
    stored: Instant,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Key, Entry>,
    old: HashMap<Key, Entry>,
}

pub struct AggregateCache {
    inner: Mutex<Generations>,
    /// Entries per generation.
    half: usize,
}

/// Aggregates kept by default: a requisition's state is a few hundred bytes.
pub const DEFAULT_CAPACITY: usize = 8192;

impl Default for AggregateCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl AggregateCache {
    /// A cache of at most `capacity` aggregates; 0 disables it.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { inner: Mutex::default(), half: capacity / 2 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding this lock cannot leave a half-written entry: recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached aggregate, if any and (when `max_age` is given) not older than that.
    pub fn get<A: cqrs_es::Aggregate + Clone + 'static>(
        &self,
        id: &str,
        max_age: Option<Duration>,
    ) -> Option<Loaded<A>> {
        if self.half == 0 {
            return None;
        }
        let key = (A::TYPE, id.to_string());
        let mut g = self.lock();
        let entry = match g.young.get(&key) {
            Some(e) => e.clone(),
            None => {
                let e = g.old.remove(&key)?;
                self.insert(&mut g, key, e.clone());
                e
            }
        };
        drop(g);
        if max_age.is_some_and(|max| entry.stored.elapsed() > max) {
            return None;
        }
        let state = entry.state.downcast_ref::<A>()?.clone();
        Some(Loaded { id: id.to_string(), state, version: entry.version })
    }

    /// Keeps `state` as the aggregate after its first `version` events, unless a later
    /// version is already cached (two commands can finish out of order).
    pub fn put<A: cqrs_es::Aggregate + 'static>(&self, id: &str, state: A, version: usize) {
        self.put_any(A::TYPE, id, Arc::new(state), version);
    }

    pub(crate) fn put_any(
        &self,
        aggregate_type: &'static str,
        id: &str,
        state: Arc<dyn Any + Send + Sync>,
        version: usize,
    ) {
        if self.half == 0 {
            return;
        }
        let key = (aggregate_type, id.to_string());
        let mut g = self.lock();
        let newer_cached = g.young.get(&key).or_else(|| g.old.get(&key)).is_some_and(|e| e.version > version);
        if newer_cached {
            return;
        }
        g.old.remove(&key);
        self.insert(&mut g, key, Entry { state, version, stored: Instant::now() });
    }

    /// Forgets an aggregate (after a lost race: its entry is stale).
    pub fn evict(&self, aggregate_type: &'static str, id: &str) {
        let key = (aggregate_type, id.to_string());
        let mut g = self.lock();
        g.young.remove(&key);
        g.old.remove(&key);
    }

    fn insert(&self, g: &mut Generations, key: Key, entry: Entry) {
        if g.young.len() >= self.half && !g.young.contains_key(&key) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, entry);
    }

    /// How many aggregates are cached.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pettycash_domain::requisition::Requisition;

    fn get(cache: &AggregateCache, id: &str) -> Option<usize> {
        cache.get::<Requisition>(id, None).map(|l| l.version)
    }

    #[test]
    fn keeps_the_latest_version_and_forgets_on_evict() {
        let cache = AggregateCache::with_capacity(8);
        assert_eq!(get(&cache, "a"), None);
        cache.put("a", Requisition::default(), 3);
        cache.put("a", Requisition::default(), 2); // finished later, decided earlier
        assert_eq!(get(&cache, "a"), Some(3));
        cache.put("a", Requisition::default(), 4);
        assert_eq!(get(&cache, "a"), Some(4));
        cache.evict("requisition", "a");
        assert_eq!(get(&cache, "a"), None);
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_what_is_used() {
        let cache = AggregateCache::with_capacity(4);
        for i in 0..100 {
            cache.put(&format!("r{i}"), Requisition::default(), 1);
            // r0 is read after every insert: it stays.
            assert_eq!(get(&cache, "r0"), Some(1), "after {i}");
            assert!(cache.len() <= 4, "{} entries", cache.len());
        }
        assert_eq!(get(&cache, "r1"), None);
        assert_eq!(get(&cache, "r99"), Some(1));
    }

    #[test]
    fn entries_older_than_the_asked_age_are_not_used() {
        let cache = AggregateCache::with_capacity(4);
        cache.put("a", Requisition::default(), 1);
        assert_eq!(cache.get::<Requisition>("a", Some(Duration::from_secs(60))).map(|l| l.version), Some(1));
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.get::<Requisition>("a", Some(Duration::from_millis(10))).is_none());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = AggregateCache::with_capacity(0);
        cache.put("a", Requisition::default(), 1);
        assert_eq!(get(&cache, "a"), None);
        assert!(cache.is_empty());
    }
}
