//! Authentication of what the service writes to the event store (issue [security]).
//!
//! The database computes each event's hash itself (a trigger), so a row inserted by anyone
//! with INSERT rights gets a valid hash and, once sealed, a valid seal. What only the service
//! can produce is a MAC under a key the database does not hold: every event the service
//! appends carries `metadata.mac`, an HMAC-SHA256 over the event's *content digest*
//! ([`content_digest`]: its stream, sequence, type, version, payload and the rest of its
//! metadata), and every fund snapshot carries one over its state. The sealer refuses to seal an
//! event whose MAC does not verify, `pettycash-replay verify` reports it, and the command side
//! refuses to decide on a stream that holds one. The event hash of events recorded since
//! (migration 0006) covers the same digest, so a reader hashes an event's content once for
//! both checks.
//!
//! The digest covers the JSON exactly as PostgreSQL prints the stored `jsonb` (its canonical
//! text), so a reader holding the stored text checks it without parsing. [`jsonb_text`]
//! produces that text from a `serde_json::Value` before the row exists. The key is derived
//! from the secret that keys the seals (`SEAL_KEY`, else `SECRET_KEY`).
//!
//! Pure: no I/O. Shared by `commands` (writes and checks), `projections` (the sealer) and
//! `pettycash-replay` (verify).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

type HmacSha256 = Hmac<Sha256>;

/// The metadata key holding an event's MAC (lower-case hex).
pub const MAC_KEY: &str = "mac";

/// The stored content of one event that its digest covers.
pub struct EventContent<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    /// `payload::text`: the jsonb's canonical text ([`jsonb_text`]).
    pub payload: &'a str,
    /// The metadata's canonical text *without* its `mac` key (`(metadata - 'mac')::text`), in
    /// pieces that follow each other (a reader need not copy the stored text to cut `mac` out).
    pub metadata: &'a [&'a str],
}

fn field(h: &mut impl Digest, value: &str) {
    fields(h, &[value]);
}

/// One field made of consecutive pieces: their total length, then each.
fn fields(h: &mut impl Digest, pieces: &[&str]) {
    h.update((pieces.iter().map(|p| p.len()).sum::<usize>() as u32).to_be_bytes());
    for p in pieces {
        h.update(p.as_bytes());
    }
}

/// SHA-256 over an event's content: `pettycash-event-content-v1`, then for aggregate type and
/// id a 4-byte big-endian length and the UTF-8 text, the sequence as 8 bytes big-endian, then
/// length and text of event type, version, payload and metadata (without `mac`). The same as
/// `event_content_digest()` in migration 0006.
pub fn content_digest(e: &EventContent<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pettycash-event-content-v1");
    field(&mut h, e.aggregate_type);
    field(&mut h, e.aggregate_id);
    h.update(e.sequence.to_be_bytes());
    field(&mut h, e.event_type);
    field(&mut h, e.event_version);
    field(&mut h, e.payload);
    fields(&mut h, e.metadata);
    h.finalize().into()
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
    /// HMAC keyed with the event key, cloned for every event MAC: keying costs two SHA-256
    /// blocks, a third of what checking one MAC costs.
    keyed: HmacSha256,
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
        let keyed = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        Self { key, keyed, id }
    }

    /// The MAC of an event, given its [`content_digest`].
    pub fn event_mac(&self, digest: &[u8; 32]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(b"pettycash-event-mac-v1");
        mac.update(digest);
        mac.finalize().into_bytes().into()
    }

    /// How an event with this digest and this stored `mac` (hex; `None`: it has none) stands.
    pub fn verdict(&self, digest: &[u8; 32], mac: Option<&str>) -> Authenticity {
        match mac {
            None => Authenticity::Unsigned,
            Some(hex_mac) => match decode_mac(hex_mac) {
                Some(mac) if same(&mac, &self.event_mac(digest)) => Authenticity::Authentic,
                _ => Authenticity::Forged,
            },
        }
    }

    /// The MAC of a snapshot.
    pub fn snapshot_mac(&self, s: &SnapshotContent<'_>) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        let field = |mac: &mut HmacSha256, value: &str| {
            mac.update(&(value.len() as u32).to_be_bytes());
            mac.update(value.as_bytes());
        };
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

    /// `metadata` with this key's MAC of the event (whose `metadata` pieces are the text of
    /// this map) added under [`MAC_KEY`], as the service stores it.
    pub fn sign(&self, e: &EventContent<'_>, metadata: &Map<String, Value>) -> Value {
        let mut signed = metadata.clone();
        signed.insert(MAC_KEY.into(), Value::String(hex::encode(self.event_mac(&content_digest(e)))));
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

/// The text of `mac` as PostgreSQL's `metadata ->> 'mac'` gives it.
fn mac_text(mac: &Value) -> String {
    match mac {
        Value::String(s) => s.clone(),
        other => jsonb_text(other),
    }
}

/// 64 hex digits as 32 bytes.
fn decode_mac(text: &str) -> Option<[u8; 32]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Metadata without its `mac` (what the content digest covers), as one or two consecutive
/// pieces, and the `mac` text. Borrowed from the stored text in the common case.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitMetadata<'a> {
    head: std::borrow::Cow<'a, str>,
    tail: &'a str,
    pub mac: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> SplitMetadata<'a> {
    /// The pieces of the text without `mac`.
    pub fn pieces(&self) -> [&str; 2] {
        [&self.head, self.tail]
    }

    fn owned(text: String, mac: Option<String>) -> Self {
        SplitMetadata { head: text.into(), tail: "", mac: mac.map(Into::into) }
    }
}

/// Parsed metadata split into its text without `mac` (what the digest covers) and its `mac`.
pub fn split_metadata(metadata: &Map<String, Value>) -> (String, Option<String>) {
    let mut rest = metadata.clone();
    let mac = rest.remove(MAC_KEY).map(|m| mac_text(&m));
    (jsonb_text(&Value::Object(rest)), mac)
}

/// Stored metadata text split the same way; `None` when it is not a JSON object. The common
/// case costs no parsing and no copy: jsonb prints keys shortest first, so the service's `mac`
/// (three letters, before every other key it writes) opens the text, and `{` followed by what
/// comes after it is the text without `mac`. Anything else is parsed.
pub fn split_stored_metadata(metadata: &str) -> Option<SplitMetadata<'_>> {
    const OPEN: &str = "{\"mac\": \"";
    if let Some(rest) = metadata.strip_prefix(OPEN) {
        let bytes = rest.as_bytes();
        // All ASCII up to the closing quote, so the split below falls on a character boundary.
        if bytes.len() > 65 && bytes[..64].iter().all(u8::is_ascii_hexdigit) && bytes[64] == b'"' {
            let (mac, after) = rest.split_at(64);
            let tail = match after {
                "\"}" => Some("}"),
                _ => after.strip_prefix("\", "),
            };
            if let Some(tail) = tail {
                return Some(SplitMetadata { head: "{".into(), tail, mac: Some(mac.into()) });
            }
        }
    }
    match serde_json::from_str::<Value>(metadata) {
        Ok(Value::Object(map)) => {
            let (text, mac) = split_metadata(&map);
            Some(SplitMetadata::owned(text, mac))
        }
        _ => None,
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

    fn content<'a>(metadata: &'a [&'a str]) -> EventContent<'a> {
        EventContent {
            aggregate_type: "requisition",
            aggregate_id: "r1",
            sequence: 3,
            event_type: "RequisitionApproved",
            event_version: "1",
            payload: "{\"a\": 1}",
            metadata,
        }
    }

    #[test]
    fn an_event_mac_covers_every_field_and_needs_the_key() {
        let key = EventKey::derive(&"s".repeat(40));
        let meta = ["{\"actor_id\": \"u\"}"];
        let e = content(&meta);
        let mac = hex::encode(key.event_mac(&content_digest(&e)));
        let verdict = |k: &EventKey, e: &EventContent<'_>| k.verdict(&content_digest(e), Some(&mac));
        assert_eq!(verdict(&key, &e), Authenticity::Authentic);
        assert_eq!(
            verdict(&key, &content(&["{\"actor_id\": ", "\"u\"}"])),
            Authenticity::Authentic,
            "pieces"
        );
        assert_eq!(verdict(&EventKey::derive(&"t".repeat(40)), &e), Authenticity::Forged);
        assert_eq!(verdict(&key, &EventContent { sequence: 4, ..content(&meta) }), Authenticity::Forged);
        assert_eq!(
            verdict(&key, &EventContent { payload: "{\"a\": 2}", ..content(&meta) }),
            Authenticity::Forged
        );
        assert_eq!(
            verdict(&key, &EventContent { aggregate_id: "r2", ..content(&meta) }),
            Authenticity::Forged
        );
        assert_eq!(verdict(&key, &content(&["{\"actor_id\": \"v\"}"])), Authenticity::Forged);
        assert_eq!(key.verdict(&content_digest(&e), Some("not hex")), Authenticity::Forged);
        assert_eq!(key.verdict(&content_digest(&e), Some(&mac.to_uppercase())), Authenticity::Authentic);
        assert_eq!(key.verdict(&content_digest(&e), None), Authenticity::Unsigned);
        assert_eq!(format!("{key:?}"), format!("EventKey({})", key.id), "the key itself is never printed");
    }

    #[test]
    fn stored_metadata_splits_the_same_on_its_text_as_parsed() {
        let key = EventKey::derive(&"s".repeat(40));
        for meta in [json!({"actor_id": "u1", "time": "t"}), json!({})] {
            let map = meta.as_object().unwrap().clone();
            let text = jsonb_text(&meta);
            let signed = key.sign(&content(&[&text]), &map);
            let stored = jsonb_text(&signed);
            let split = split_stored_metadata(&stored).unwrap();
            assert_eq!(split.pieces().concat(), text, "{stored}");
            assert_eq!(
                key.verdict(&content_digest(&content(&split.pieces())), split.mac.as_deref()),
                Authenticity::Authentic
            );
            let (parsed_text, parsed_mac) = split_metadata(signed.as_object().unwrap());
            assert_eq!((parsed_text, parsed_mac.as_deref()), (text, split.mac.as_deref()));
        }
        // Not the service's shape: parsed, and split the same way.
        let parsed = |text: &str| {
            split_stored_metadata(text).map(|s| (s.pieces().concat(), s.mac.map(|m| m.to_string())))
        };
        assert_eq!(parsed("{\"a\": 1}"), Some(("{\"a\": 1}".to_string(), None)));
        assert_eq!(parsed("[\"mac\"]"), None);
        assert_eq!(
            parsed(&jsonb_text(&json!({"mac": "é".repeat(40)}))),
            Some(("{}".to_string(), Some("é".repeat(40))))
        );
        assert_eq!(
            parsed(&jsonb_text(&json!({"ab": 1, "mac": 7}))),
            Some(("{\"ab\": 1}".to_string(), Some("7".to_string())))
        );
    }
}
