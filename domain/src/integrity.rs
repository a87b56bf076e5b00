//! Authentication of what the service writes to the event store (issue [security]).
//!
//! The database computes each event's hash itself (a trigger), so a row inserted by anyone
//! with INSERT rights gets a valid hash and, once sealed, a valid seal. What only the service
//! can produce is a MAC under a key the database does not hold: every event the service
//! appends carries `metadata.mac`, an HMAC-SHA256 over the event's stream, sequence, type,
//! version, payload and the rest of its metadata, and every fund snapshot carries one over its
//! state. The sealer refuses to seal an event whose MAC does not verify, `pettycash-replay
//! verify` reports it, and the command side refuses to decide on a stream that holds one.
//!
//! The MAC covers the JSON exactly as PostgreSQL prints the stored `jsonb` (its canonical
//! text, which the event hash covers too), so a reader holding the stored text checks it
//! without parsing. [`jsonb_text`] produces that text from a `serde_json::Value` before the
//! row exists. The key is derived from the secret that keys the seals (`SEAL_KEY`, else
//! `SECRET_KEY`).
//!
//! Pure: no I/O. Shared by `commands` (writes and checks), `projections` (the sealer) and
//! `pettycash-replay` (verify).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fmt::Write as _;

type HmacSha256 = Hmac<Sha256>;

/// The metadata key holding an event's MAC (lower-case hex).
pub const MAC_KEY: &str = "mac";

/// The stored content of one event that its MAC covers.
pub struct EventContent<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    /// `payload::text`: the jsonb's canonical text ([`jsonb_text`]).
    pub payload: &'a str,
    /// The metadata's canonical text *without* its `mac` key.
    pub metadata: &'a str,
}

/// What a snapshot's MAC covers: the state `payload` (canonical jsonb text) of stream
/// `aggregate_type`/`aggregate_id` after `last_sequence` events, in format `version`.
pub struct SnapshotContent<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub last_sequence: i64,
    pub version: i64,
    pub payload: &'a str,
}

/// The key that authenticates events and snapshots. Never stored in the database; `Debug`
/// shows only its id.
#[derive(Clone)]
pub struct EventKey {
    key: [u8; 32],
    /// Names the key without revealing it.
    pub id: String,
}

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventKey({})", self.id)
    }
}

/// HMAC-SHA256 under `key` over `parts`, one after the other.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn field(mac: &mut HmacSha256, value: &str) {
    mac.update(&(value.len() as u32).to_be_bytes());
    mac.update(value.as_bytes());
}

/// Constant-time equality of two byte strings (MACs).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl EventKey {
    /// The event key for a configured secret (the one the seals are keyed with; a different
    /// derivation, so neither key reveals the other).
    pub fn derive(secret: &str) -> Self {
        let key = hmac(secret.as_bytes(), &[b"pettycash-event-key-v1"]);
        let id = hex::encode(&hmac(&key, &[b"pettycash-event-key-id"])[..8]);
        Self { key, id }
    }

    /// The MAC of one event.
    pub fn event_mac(&self, e: &EventContent<'_>) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"pettycash-event-mac-v1");
        field(&mut mac, e.aggregate_type);
        field(&mut mac, e.aggregate_id);
        mac.update(&e.sequence.to_be_bytes());
        field(&mut mac, e.event_type);
        field(&mut mac, e.event_version);
        field(&mut mac, e.payload);
        field(&mut mac, e.metadata);
        mac.finalize().into_bytes().into()
    }

    /// True when `mac` (hex, as stored in the metadata) is this key's MAC of `e`.
    pub fn authenticates_event(&self, e: &EventContent<'_>, mac_hex: &str) -> bool {
        hex::decode(mac_hex).is_ok_and(|mac| same(&mac, &self.event_mac(e)))
    }

    /// The MAC of a snapshot.
    pub fn snapshot_mac(&self, s: &SnapshotContent<'_>) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"pettycash-snapshot-mac-v1");
        field(&mut mac, s.aggregate_type);
        field(&mut mac, s.aggregate_id);
        mac.update(&s.last_sequence.to_be_bytes());
        mac.update(&s.version.to_be_bytes());
        field(&mut mac, s.payload);
        mac.finalize().into_bytes().into()
    }

    /// True when `mac` is this key's MAC of the snapshot.
    pub fn authenticates_snapshot(&self, s: &SnapshotContent<'_>, mac: &[u8]) -> bool {
        same(mac, &self.snapshot_mac(s))
    }

    /// `metadata` with this key's MAC of the event added under [`MAC_KEY`], as the service
    /// stores it.
    pub fn sign(&self, e: &EventContent<'_>, metadata: &Map<String, Value>) -> Value {
        let mut signed = metadata.clone();
        signed.insert(MAC_KEY.into(), Value::String(hex::encode(self.event_mac(e))));
        Value::Object(signed)
    }
}

/// How an event's stored metadata stands with respect to its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticity {
    /// Its MAC verifies.
    Authentic,
    /// It carries no MAC (recorded before events were authenticated, or written by someone
    /// who bypassed the store's constraint).
    Unsigned,
    /// It carries a MAC that does not verify: not written by the service, changed since, or
    /// written under another key.
    Forged,
}

/// Checks a stored event, given its payload's canonical text (in `e`) and its parsed stored
/// metadata (`e.metadata` is not used: the text the MAC covers is made from `metadata`
/// without its `mac`).
pub fn check_event(key: &EventKey, e: &EventContent<'_>, metadata: &Map<String, Value>) -> Authenticity {
    let Some(mac) = metadata.get(MAC_KEY) else { return Authenticity::Unsigned };
    let Some(mac) = mac.as_str() else { return Authenticity::Forged };
    let mut rest = metadata.clone();
    rest.remove(MAC_KEY);
    let text = jsonb_text(&Value::Object(rest));
    if key.authenticates_event(&EventContent { metadata: &text, ..*e }, mac) {
        Authenticity::Authentic
    } else {
        Authenticity::Forged
    }
}

/// Checks a stored event on its stored texts: `payload` and `metadata` as PostgreSQL prints
/// them. The common case costs no parsing: jsonb prints keys shortest first, so the service's
/// `mac` (three letters, before every other key it writes) opens the metadata text, and the
/// text the MAC covers is the rest of it. Anything else is parsed ([`check_event`]).
pub fn check_stored_event(key: &EventKey, e: &EventContent<'_>, metadata: &str) -> Authenticity {
    const OPEN: &str = "{\"mac\": \"";
    if let Some(rest) = metadata.strip_prefix(OPEN) {
        let bytes = rest.as_bytes();
        // All ASCII up to the closing quote, so the split below falls on a character boundary.
        if bytes.len() > 65 && bytes[..64].iter().all(u8::is_ascii_hexdigit) && bytes[64] == b'"' {
            let (mac, after) = rest.split_at(64);
            let unsigned = match after {
                "\"}" => Some("{}".to_string()),
                _ => after.strip_prefix("\", ").map(|others| format!("{{{others}")),
            };
            if let Some(unsigned) = unsigned {
                let authentic = key.authenticates_event(&EventContent { metadata: &unsigned, ..*e }, mac);
                return if authentic { Authenticity::Authentic } else { Authenticity::Forged };
            }
        }
    }
    match serde_json::from_str::<Value>(metadata) {
        Ok(Value::Object(map)) => check_event(key, e, &map),
        _ => Authenticity::Forged,
    }
}

/// `value` as PostgreSQL prints it once stored as `jsonb`: object keys ordered by length,
/// then bytes; `", "` and `": "` separators; strings escaped as PostgreSQL's `escape_json`
/// does; numbers as `numeric` prints the literal serde_json sends. Tested against the
/// database in `tests/tests/api/integrity.rs`.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&numeric_text(&n.to_string())),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => write_joined(out, '[', items, ']', write_value),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes())));
            write_joined(out, '{', keys, '}', |out, k| {
                write_string(out, k);
                out.push_str(": ");
                write_value(out, &map[k]);
            });
        }
    }
}

/// `open`, the items separated by `", "`, `close`.
fn write_joined<T>(
    out: &mut String,
    open: char,
    items: impl IntoIterator<Item = T>,
    close: char,
    mut write: impl FnMut(&mut String, T),
) {
    out.push(open);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(out, item);
    }
    out.push(close);
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number literal as PostgreSQL's `numeric` prints it: plain notation, the scale of
/// the literal (`1.50` stays `1.50`, `1e3` is `1000`, `1E-7` is `0.0000001`), no negative
/// zero.
fn numeric_text(literal: &str) -> String {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    // value = digits × 10^(exponent − frac_len); numeric keeps max(0, frac_len − exponent)
    // digits after the point.
    let shift = exponent - frac_part.len() as i64;
    let scale = (-shift).max(0) as usize;
    let mut all = digits;
    if shift > 0 {
        all.extend(std::iter::repeat_n('0', shift as usize));
    }
    if all.len() <= scale {
        all = format!("{}{all}", "0".repeat(scale + 1 - all.len()));
    }
    let (int_digits, frac_digits) = all.split_at(all.len() - scale);
    let int_digits = int_digits.trim_start_matches('0');
    let int_digits = if int_digits.is_empty() { "0" } else { int_digits };
    let zero = int_digits == "0" && frac_digits.bytes().all(|b| b == b'0');
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int_digits);
    if scale > 0 {
        out.push('.');
        out.push_str(frac_digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_numeric_does() {
        for (literal, printed) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1.50", "1.50"),
            ("1e3", "1000"),
            ("1E-7", "0.0000001"),
            ("1.5e-7", "0.00000015"),
            ("1.50e1", "15.0"),
            ("-12.5", "-12.5"),
            ("100.0", "100.0"),
            ("1e21", "1000000000000000000000"),
            ("0.001", "0.001"),
            ("12345678901234567890", "12345678901234567890"),
        ] {
            assert_eq!(numeric_text(literal), printed, "{literal}");
        }
    }

    #[test]
    fn objects_sort_keys_by_length_then_bytes_and_strings_escape_like_postgres() {
        let v = json!({"bb": 1, "a": [1, 2, {"z": null, "y": true}], "ccc": "x\"\\/\u{1}\u{1f}\u{7f} é\n\t\u{8}\u{c}\r",
            "e": {}, "f": []});
        assert_eq!(
            jsonb_text(&v),
            "{\"a\": [1, 2, {\"y\": true, \"z\": null}], \"e\": {}, \"f\": [], \"bb\": 1, \
             \"ccc\": \"x\\\"\\\\/\\u0001\\u001f\u{7f} é\\n\\t\\b\\f\\r\"}"
        );
    }

    #[test]
    fn an_event_mac_covers_every_field_and_needs_the_key() {
        let key = EventKey::derive(&"s".repeat(40));
        let e = EventContent {
            aggregate_type: "requisition",
            aggregate_id: "r1",
            sequence: 3,
            event_type: "RequisitionApproved",
            event_version: "1",
            payload: "{\"a\": 1}",
            metadata: "{\"actor_id\": \"u\"}",
        };
        let mac = hex::encode(key.event_mac(&e));
        assert!(key.authenticates_event(&e, &mac));
        assert!(!EventKey::derive(&"t".repeat(40)).authenticates_event(&e, &mac));
        assert!(!key.authenticates_event(&EventContent { sequence: 4, ..e }, &mac));
        assert!(!key.authenticates_event(&EventContent { payload: "{\"a\": 2}", ..e }, &mac));
        assert!(!key.authenticates_event(&EventContent { aggregate_id: "r2", ..e }, &mac));
        assert!(!key.authenticates_event(&e, "not hex"));
        assert_eq!(format!("{key:?}"), format!("EventKey({})", key.id), "the key itself is never printed");
    }

    #[test]
    fn stored_metadata_checks_the_same_on_its_text_as_parsed() {
        let key = EventKey::derive(&"s".repeat(40));
        fn e(metadata: &str) -> EventContent<'_> {
            EventContent {
                aggregate_type: "fund",
                aggregate_id: "f",
                sequence: 2,
                event_type: "CashDisbursed",
                event_version: "1",
                payload: "{\"a\": 1}",
                metadata,
            }
        }
        for meta in [json!({"actor_id": "u1", "time": "t"}), json!({})] {
            let map = meta.as_object().unwrap().clone();
            let signed = key.sign(&e(&jsonb_text(&meta)), &map);
            let stored = jsonb_text(&signed);
            assert_eq!(check_stored_event(&key, &e(""), &stored), Authenticity::Authentic, "{stored}");
            let edited = stored.replace("u1", "u2");
            let expected = if meta == json!({}) { Authenticity::Authentic } else { Authenticity::Forged };
            assert_eq!(check_stored_event(&key, &e(""), &edited), expected, "{edited}");
        }
        // Not the service's shape: parsed, and judged the same way.
        assert_eq!(check_stored_event(&key, &e(""), "{\"a\": 1}"), Authenticity::Unsigned);
        assert_eq!(check_stored_event(&key, &e(""), "[\"mac\"]"), Authenticity::Forged);
        let not_hex = jsonb_text(&json!({"mac": "é".repeat(40)}));
        assert_eq!(check_stored_event(&key, &e(""), &not_hex), Authenticity::Forged);
        let short_key = json!({"ab": 1, "mac": "00"});
        assert_eq!(check_stored_event(&key, &e(""), &jsonb_text(&short_key)), Authenticity::Forged);
    }

    #[test]
    fn signed_metadata_checks_as_authentic_and_edits_do_not() {
        let key = EventKey::derive(&"s".repeat(40));
        let meta = json!({"actor_id": "u1", "time": "t"}).as_object().unwrap().clone();
        let text = jsonb_text(&Value::Object(meta.clone()));
        let e = EventContent {
            aggregate_type: "fund",
            aggregate_id: "f",
            sequence: 1,
            event_type: "FundOpened",
            event_version: "1",
            payload: "{}",
            metadata: &text,
        };
        let signed = key.sign(&e, &meta);
        let signed = signed.as_object().unwrap();
        assert_eq!(check_event(&key, &e, signed), Authenticity::Authentic);
        let mut edited = signed.clone();
        edited.insert("actor_id".into(), json!("u2"));
        assert_eq!(check_event(&key, &e, &edited), Authenticity::Forged);
        assert_eq!(check_event(&key, &e, &meta), Authenticity::Unsigned);
    }
}
