//! The tamper-evidence half of `verify` (issue [replay]): the global chain against the seals.
//!
//! The per-stream hash of each event is checked in [`crate::verify::Verifier`] (it keeps the
//! per-stream state); this module follows the global order `(transaction_id,
//! global_position)` and matches it against `event_seals` (see `projections/src/seal.rs`):
//!
//! - `seal_unauthenticated`: a seal whose HMAC does not verify with the key given (changed
//!   seal, a seal written without the key, or the wrong key).
//! - `seal_missing`: seal ids are not consecutive (a seal was removed).
//! - `event_missing`: an event a seal covers is not in the store (deleted, or its position
//!   changed).
//! - `event_not_sealed`: an event read inside a seal's range that the seal does not cover
//!   (inserted afterwards, whatever hash it carries).
//! - `event_rewritten`: an event whose stored hash differs from the one sealed (its content
//!   and hash were rewritten together, so its own hash check passes).
//! - `event_reordered`: events a seal covers read in another order than sealed.
//! - `seal_chain_mismatch`: the chain recomputed up to a seal differs from the sealed chain;
//!   reported at the seal's last position, after the event-level findings that explain it.
//! - `event_refused`: an event in a seal's range that the sealer refused to seal because its
//!   MAC did not verify (the seal lists it; it is not in the chain). Found without the key.
//!
//! After each seal the chain continues from the sealed value, so one alteration is reported
//! once, not at every later seal. Events after the last seal are counted as unsealed.

use crate::verify::Violation;
use pettycash_projections::seal::{self, chain_step, Seal, SealKey, PREFIX, ZERO};
use std::collections::HashMap;

struct Window {
    seal: Seal,
    /// position → (index in the seal, hash prefix).
    expected: HashMap<i64, (usize, [u8; PREFIX])>,
    seen: usize,
    max_index: Option<usize>,
    seen_positions: std::collections::HashSet<i64>,
    /// Positions the sealer refused in this seal's range, and how many of them were read.
    refused: std::collections::HashSet<i64>,
    seen_refused: usize,
}

impl Window {
    fn new(seal: Seal) -> Self {
        let expected = seal.entries().enumerate().map(|(i, (p, prefix))| (p, (i, prefix))).collect();
        let refused = seal.refused().collect();
        Window {
            seal,
            expected,
            seen: 0,
            max_index: None,
            seen_positions: Default::default(),
            refused,
            seen_refused: 0,
        }
    }

    /// True when the seal names `position`, as sealed or as refused.
    fn names(&self, position: i64) -> bool {
        self.expected.contains_key(&position) || self.refused.contains(&position)
    }

    fn complete(&self) -> bool {
        self.seen == self.expected.len() && self.seen_refused == self.refused.len()
    }
}

/// Follows the chain through the seals.
pub struct SealTracker {
    key: Option<SealKey>,
    chain: [u8; 32],
    read: i64,
    window: Option<Window>,
    ahead: Option<Window>,
    exhausted: bool,
    previous: Option<(i64, Vec<u8>)>,
    pub seals: u64,
    pub sealed_through: Option<i64>,
    pub unsealed: u64,
    pub violations: Vec<Violation>,
}

fn seal_violation(seal: &Seal, rule: &'static str, detail: String) -> Violation {
    Violation {
        position: seal.last_position,
        aggregate_type: "seal".into(),
        aggregate_id: seal.seal_id.to_string(),
        rule,
        detail,
    }
}

impl SealTracker {
    pub fn new(key: Option<SealKey>) -> Self {
        SealTracker {
            key,
            chain: ZERO,
            read: 0,
            window: None,
            ahead: None,
            exhausted: false,
            previous: None,
            seals: 0,
            sealed_through: None,
            unsealed: 0,
            violations: Vec::new(),
        }
    }

    /// The chain over every event read so far.
    pub fn chain(&self) -> [u8; 32] {
        self.chain
    }

    /// True while the tracker needs the next seal before it can place the next event.
    pub fn wants_seal(&self) -> bool {
        !self.exhausted && (self.window.is_none() || self.ahead.is_none())
    }

    /// The next seal in id order, or `None` when there are no more.
    pub fn push_seal(&mut self, seal: Option<Seal>) {
        let Some(seal) = seal else {
            self.exhausted = true;
            return;
        };
        self.seals += 1;
        let expected_id = self.previous.as_ref().map_or(1, |(id, _)| id + 1);
        if seal.seal_id != expected_id {
            self.violations.push(seal_violation(
                &seal,
                "seal_missing",
                format!("seal #{} follows seal #{}: seal(s) removed", seal.seal_id, expected_id - 1),
            ));
        }
        if let Some(key) = &self.key {
            let previous_mac = self.previous.as_ref().map(|(_, mac)| mac.as_slice());
            if !key.authenticates(&seal, previous_mac) {
                let why = if seal.key_id != key.id {
                    format!("made with key {}, the key given is {}", seal.key_id, key.id)
                } else {
                    "its contents were changed or it was not made with the key".to_string()
                };
                self.violations.push(seal_violation(
                    &seal,
                    "seal_unauthenticated",
                    format!("seal #{} does not authenticate: {why}", seal.seal_id),
                ));
            }
        }
        self.previous = Some((seal.seal_id, seal.mac.clone()));
        let window = Window::new(seal);
        if self.window.is_none() {
            self.window = Some(window);
        } else {
            self.ahead = Some(window);
        }
    }

    /// One event in global order, with its stored hash.
    pub fn event(&mut self, position: i64, aggregate: (&str, &str), hash: Option<&[u8]>) {
        let in_ahead = self.ahead.as_ref().is_some_and(|a| a.names(position));
        if in_ahead && self.window.as_ref().is_some_and(|w| !w.names(position)) {
            // The next seal's events have begun: the current seal's remaining ones never came.
            self.close_window();
        }
        if let Some(w) = self.window.as_mut().filter(|w| w.refused.contains(&position)) {
            // Refused by the sealer: not in the chain.
            w.seen_refused += 1;
            let seal_id = w.seal.seal_id;
            let complete = w.complete();
            self.violations.push(Violation {
                position,
                aggregate_type: aggregate.0.to_string(),
                aggregate_id: aggregate.1.to_string(),
                rule: "event_refused",
                detail: format!(
                    "the sealer refused to seal it (seal #{seal_id}): its MAC did not verify, the service did \
                     not write it"
                ),
            });
            if complete {
                self.close_window();
            }
            return;
        }
        self.chain = chain_step(&self.chain, hash);
        self.read += 1;
        let Some(w) = self.window.as_mut() else {
            self.unsealed += 1;
            return;
        };
        let violation = |rule: &'static str, detail: String| Violation {
            position,
            aggregate_type: aggregate.0.to_string(),
            aggregate_id: aggregate.1.to_string(),
            rule,
            detail,
        };
        match w.expected.get(&position) {
            Some(&(index, prefix)) if w.seen_positions.insert(position) => {
                w.seen += 1;
                let stored: [u8; PREFIX] = seal::prefix(hash);
                if stored != prefix {
                    self.violations.push(violation(
                        "event_rewritten",
                        format!(
                            "its hash {} differs from the one sealed in seal #{} ({}): content and hash were rewritten",
                            hex(&stored),
                            w.seal.seal_id,
                            hex(&prefix)
                        ),
                    ));
                }
                if w.max_index.is_some_and(|m| index < m) {
                    self.violations.push(violation(
                        "event_reordered",
                        format!("read after events that seal #{} placed after it", w.seal.seal_id),
                    ));
                }
                w.max_index = Some(w.max_index.map_or(index, |m| m.max(index)));
            }
            _ => {
                self.violations.push(violation(
                    "event_not_sealed",
                    format!(
                        "read inside the range of seal #{} (up to position {}), which does not cover it: inserted afterwards",
                        w.seal.seal_id, w.seal.last_position
                    ),
                ));
            }
        }
        if w.complete() {
            self.close_window();
        }
    }

    fn close_window(&mut self) {
        let Some(w) = self.window.take() else { return };
        let mut missing: Vec<(i64, usize)> = w
            .expected
            .iter()
            .filter(|(p, _)| !w.seen_positions.contains(p))
            .map(|(p, (i, _))| (*p, *i))
            .collect();
        missing.sort_by_key(|(_, i)| *i);
        for (position, _) in &missing {
            self.violations.push(Violation {
                position: *position,
                aggregate_type: "?".into(),
                aggregate_id: "?".into(),
                rule: "event_missing",
                detail: format!("sealed in seal #{}, not in the store: deleted or moved", w.seal.seal_id),
            });
        }
        if self.chain != w.seal.chain() || self.read != w.seal.event_count {
            self.violations.push(seal_violation(
                &w.seal,
                "seal_chain_mismatch",
                format!(
                    "seal #{} covers {} events with chain {}; the store gives {} events with chain {}",
                    w.seal.seal_id,
                    w.seal.event_count,
                    hex(&w.seal.chain()),
                    self.read,
                    hex(&self.chain)
                ),
            ));
        }
        self.chain = w.seal.chain();
        self.read = w.seal.event_count;
        self.sealed_through = Some(w.seal.last_position);
        self.window = self.ahead.take();
    }

    /// After the last event: every seal left covers events that are not there.
    pub fn finish_window(&mut self) {
        while self.window.is_some() {
            self.close_window();
        }
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }
}

/// Lower-case hex, as the reports print hashes.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
