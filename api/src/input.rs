//! Text is checked where it enters the service, once for every route, before any handler or
//! SQL statement sees it: the request id, query parameters, and NUL in JSON bodies (called by
//! [`crate::extract::parse_json`]). Each refusal is a 4xx naming the field. Also decides whom
//! to believe `X-Forwarded-*` from.
//!
//! PostgreSQL's `text` and `jsonb` cannot hold U+0000: a NUL that reached a statement used to
//! fail it with a 500.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Query, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest accepted `X-Request-Id`: a UUID is 36 characters, nginx's `$request_id` 32,
/// a W3C trace id with its span 55.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `id` is an acceptable `X-Request-Id`: 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// `[A-Za-z0-9._:@/+=-]`, what proxies and tracing systems send. It is stored in the metadata
/// of every event the request writes, so it must not be arbitrary text.
pub fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || b"._:@/+=-".contains(b))
}

/// Refuses a request whose `X-Request-Id` is not acceptable (or is sent twice) with 400
/// `invalid_request_id`, before anything is stored or echoed.
pub async fn check_request_id(req: Request, next: Next) -> Response {
    let mut ids = req.headers().get_all(REQUEST_ID_HEADER).iter();
    let valid = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => is_valid_request_id(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !valid {
        return ApiError::bad_request(
            "invalid_request_id",
            format!("X-Request-Id must be one header of 1 to {MAX_REQUEST_ID_LEN} characters from A-Z a-z 0-9 . _ : @ / + = -"),
        )
        .with_field("X-Request-Id")
        .into_response();
    }
    next.run(req).await
}

/// Refuses a query parameter whose decoded name or value contains a control character with
/// 422 naming the parameter. Not only NUL (which PostgreSQL cannot store): every Unicode
/// control character (U+0000–U+001F, U+007F–U+009F). Query parameters are filters, ids,
/// dates and numbers; a tab or a line break in one is never meaningful, and refusing them
/// here keeps them out of SQL and logs alike. (Bodies keep their per-field rules: a purpose
/// may hold a line break.)
pub async fn check_query(req: Request, next: Next) -> Response {
    if let Err(refused) = check_query_text(&req) {
        return refused.into_response();
    }
    next.run(req).await
}

fn check_query_text(req: &Request) -> Result<(), ApiError> {
    if req.uri().query().is_none() {
        return Ok(());
    }
    // Decoded as the handlers' `Query` extractors decode it (percent escapes, `+`).
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(req.uri()) else {
        return Ok(()); // the handler's own extractor reports it
    };
    for (name, value) in pairs {
        if has_control(&name) {
            return Err(ApiError::unprocessable(
                &printable(&name),
                "query parameter names must not contain control characters",
            ));
        }
        if has_control(&value) {
            let field = printable(&name);
            return Err(ApiError::unprocessable(
                &field,
                format!("`{field}` must not contain control characters (U+0000–U+001F, U+007F–U+009F)"),
            ));
        }
    }
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// `name` with its control characters written out as `\u0000`, so that an error can name a
/// field without carrying the character it refuses.
pub fn printable(name: &str) -> String {
    if !has_control(name) {
        return name.to_string();
    }
    name.chars()
        .map(|c| if c.is_control() { format!("\\u{:04X}", c as u32) } else { c.to_string() })
        .collect()
}

/// Refuses a JSON body with U+0000 in any string, value or key, at any depth: 422
/// `validation_error` naming its path (`tiers[0].chain[1]`, as the body's other errors do).
///
/// Cheap for every other body: JSON can only carry U+0000 as the escape `\u0000` (a raw NUL
/// byte is a syntax error, `\u` is always lower case and the digits of 0 have no case), so
/// bodies without those six bytes are not looked at. Bodies with them are scanned once
/// without building a value; a body that turns out not to be JSON is left to the parser,
/// whose error names the problem.
pub fn refuse_nul_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == br"\u0000") {
        return Ok(());
    }
    let mut scan = NulScan::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = Node(&mut scan).deserialize(&mut de);
    match scan.found {
        None => Ok(()),
        Some(path) if path.is_empty() => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "the body must not contain the NUL character (U+0000)",
        )),
        Some(path) => Err(ApiError::unprocessable(
            &path,
            format!("`{path}` must not contain the NUL character (U+0000)"),
        )),
    }
}

/// Where [`Node`] is in the document, and the path of the first string with a NUL.
#[derive(Default)]
struct NulScan {
    path: Vec<Segment>,
    found: Option<String>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl NulScan {
    /// Stops the scan at the current path (an error unwinds the deserializer).
    fn stop<E: de::Error>(&mut self) -> E {
        let mut path = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) if path.is_empty() => path.push_str(&printable(key)),
                Segment::Key(key) => path.push_str(&format!(".{}", printable(key))),
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        self.found = Some(path);
        E::custom("NUL")
    }
}

/// One JSON value of the scan.
struct Node<'s>(&'s mut NulScan);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.contains('\0') {
            return Err(self.0.stop());
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for i in 0.. {
            self.0.path.push(Segment::Index(i));
            let more = seq.next_element_seed(Node(&mut *self.0))?;
            self.0.path.pop();
            if more.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let nul = key.contains('\0');
            self.0.path.push(Segment::Key(key));
            if nul {
                return Err(self.0.stop());
            }
            map.next_value_seed(Node(&mut *self.0))?;
            self.0.path.pop();
        }
        Ok(())
    }
}

/// The `X-Forwarded-*` headers the service reads: the client's address (event metadata,
/// sessions) and scheme (the same-origin check).
const FORWARDED_HEADERS: [HeaderName; 2] =
    [HeaderName::from_static("x-forwarded-for"), HeaderName::from_static("x-forwarded-proto")];

/// Whether `X-Forwarded-*` from `peer` are believed: only from a proxy on this machine (nginx
/// in `deploy/`). Without a peer address (the router served without a socket) there is no
/// one else to believe.
pub fn trusts_forwarded(peer: Option<IpAddr>) -> bool {
    peer.is_none_or(|ip| ip.is_loopback())
}

/// Removes the `X-Forwarded-*` headers the service reads from requests of peers it does not
/// believe, so that everything after this takes them as the trusted proxy's word.
pub async fn drop_untrusted_forwarded(mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if !trusts_forwarded(peer) {
        for name in &FORWARDED_HEADERS {
            req.headers_mut().remove(name);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_and_of_a_safe_alphabet() {
        for id in [
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "8e2c1f0b3a4d5e6f7a8b9c0d1e2f3a4b",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "svc:api@host/req+1=a.b_c",
            &"a".repeat(MAX_REQUEST_ID_LEN),
        ] {
            assert!(is_valid_request_id(id.as_bytes()), "{id}");
        }
        for id in ["", "a b", "<script>", "id\"", "é", &"a".repeat(MAX_REQUEST_ID_LEN + 1)] {
            assert!(!is_valid_request_id(id.as_bytes()), "{id}");
        }
    }

    #[test]
    fn nul_is_found_in_values_and_keys_at_any_depth() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (br#"{"purpose": "a\u0000b"}"#, Some("purpose")),
            (br#"{"tiers": [{"chain": ["cfo", "x\u0000"]}]}"#, Some("tiers[0].chain[1]")),
            (br#"{"a": {"b\u0000c": 1}}"#, Some("a.b\\u0000c")),
            (br#""\u0000""#, Some("")),
            (br#"{"purpose": "a\\u0000b"}"#, None),
            (br#"{"purpose": "plain"}"#, None),
            (br#"{"purpose": "\u0000"#, None),
        ];
        for (body, field) in cases {
            let shown = String::from_utf8_lossy(body);
            match (refuse_nul_in_json(body), field) {
                (Ok(()), None) => {}
                (Err(e), Some(field)) => {
                    assert_eq!(e.status.as_u16(), 422, "{shown}");
                    assert_eq!(e.field.as_deref().unwrap_or_default(), field, "{shown}");
                    assert!(
                        !e.message.contains('\0') && e.message.contains("U+0000"),
                        "{shown}: {}",
                        e.message
                    );
                }
                (got, _) => panic!("{shown}: {got:?}"),
            }
        }
    }

    #[test]
    fn control_characters_are_written_out_in_names() {
        assert_eq!(printable("q"), "q");
        assert_eq!(printable("a\0b\t"), "a\\u0000b\\u0009");
    }
}
