//! Request extractors: the signed-in user, request metadata, JSON bodies whose errors name
//! the field, idempotency keys, path ids and money amounts.

use crate::error::ApiError;
use crate::input::{refuse_nul_in_json, REQUEST_ID_HEADER};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, Method, StatusCode};
use pettycash_commands::auth::AuthUser;
use pettycash_commands::{CommandContext, IdempotencyRecord, RequestMeta, SessionGuard};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use uuid::Uuid;

pub const SESSION_COOKIE: &str = "pettycash_session";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The session token a request carries: `Authorization: Bearer` first, then the cookie.
pub fn session_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
            return Some((token.trim().to_string(), false));
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| (value.to_string(), true))
}

/// The authenticated user of a request; 401 when there is none.
pub struct CurrentUser(pub AuthUser);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, from_cookie) = session_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthenticated("sign in: send `Authorization: Bearer <token>` or the session cookie")
        })?;
        if from_cookie && !is_safe(&parts.method) {
            check_same_origin(&parts.headers, state)?;
        }
        let user = state.auth.authenticate(&token).await?.ok_or_else(|| {
            ApiError::unauthenticated("the session is invalid or has expired; sign in again")
        })?;
        Ok(CurrentUser(user))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Cookie-authenticated writes from another site's page are refused (CSRF): 403
/// `cross_site_request`. A browser says where a request comes from in `Origin` and
/// `Sec-Fetch-Site`; the request passes when
///
/// - its `Origin` is a configured `CORS_ALLOWED_ORIGINS` entry, or
/// - `Sec-Fetch-Site` is not `cross-site` or `same-site` (a sibling subdomain is another site's
///   page too), and `Origin`, when sent, is this service's own origin: scheme, host and port
///   ([`own_origin`]).
///
/// Requests with neither header (non-browser clients) pass.
pub fn check_same_origin(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let refused =
        |why: &str| ApiError::forbidden("cross_site_request", format!("cross-site request refused: {why}"));
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().ok().and_then(Origin::parse));
    if let Some(Some(origin)) = &origin {
        if state.config.cors_allowed_origins.iter().any(|o| Origin::parse(o).as_ref() == Some(origin)) {
            return Ok(());
        }
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site") {
        return Err(refused("the browser says it comes from another site (Sec-Fetch-Site)"));
    }
    match origin {
        None => Ok(()),
        Some(Some(origin)) if own_origin(headers).as_ref() == Some(&origin) => Ok(()),
        Some(_) => Err(refused("the Origin is not allowed")),
    }
}

/// A web origin, normalised: scheme and host in lower case, the port always present.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// `scheme://host[:port]` (an `Origin` header or a `CORS_ALLOWED_ORIGINS` entry); `None` for
    /// anything else (`null`, a path).
    fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.trim().split_once("://")?;
        let authority: Authority = authority.strip_suffix('/').unwrap_or(authority).parse().ok()?;
        Self::new(scheme, &authority)
    }

    fn new(scheme: &str, authority: &Authority) -> Option<Self> {
        let scheme = scheme.to_ascii_lowercase();
        let port = match (authority.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "http") => 80,
            (None, "https") => 443,
            _ => return None,
        };
        Some(Self { scheme, host: authority.host().to_ascii_lowercase(), port })
    }
}

/// This service's origin as the browser sees it: `https` when [`behind_tls`], else `http`;
/// host and port from `Host`.
fn own_origin(headers: &HeaderMap) -> Option<Origin> {
    let scheme = if behind_tls(headers) { "https" } else { "http" };
    let host: Authority = headers.get(header::HOST)?.to_str().ok()?.parse().ok()?;
    Origin::new(scheme, &host)
}

/// Whether the browser reached the service over HTTPS: the proxy in front of it says so in
/// `X-Forwarded-Proto` (only ever present from a trusted proxy:
/// [`crate::input::drop_untrusted_forwarded`]). The service itself speaks plain HTTP.
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("https"))
}

/// Request id, client address and user agent, for event metadata and logs.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        // Present only when sent by a trusted proxy (`input::drop_untrusted_forwarded`).
        let forwarded =
            header("x-forwarded-for").and_then(|v| v.split(',').next().map(|s| s.trim().to_string()));
        Ok(Meta(RequestMeta {
            // Checked by `input::check_request_id` for every route.
            request_id: header(REQUEST_ID_HEADER).unwrap_or_else(|| Uuid::new_v4().to_string()),
            client_ip: forwarded.or(peer),
            user_agent: header("user-agent").map(|ua| ua.chars().take(500).collect()),
        }))
    }
}

/// A path id; a malformed one is a 400 naming `id`.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        Uuid::parse_str(&raw).map(IdPath).map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid id")).with_field("id")
        })
    }
}

/// A command request: the signed-in user, metadata, optional Idempotency-Key and a JSON body
/// (an empty body counts as `{}`).
pub struct Command<T> {
    pub user: AuthUser,
    pub meta: RequestMeta,
    pub body: T,
    idempotency_key: Option<String>,
    request_hash: Vec<u8>,
    /// The session and roles the command is decided with, re-checked by its append.
    pub session: SessionGuard,
}

impl<T> Command<T> {
    /// The command context; `status` is what a success answers with (stored for replays).
    pub fn context(&self, status: StatusCode) -> CommandContext {
        CommandContext::user(self.user.actor(), self.meta.clone())
            .with_idempotency(self.idempotency_key.as_ref().map(|key| IdempotencyRecord {
                key: key.clone(),
                request_hash: self.request_hash.clone(),
                status: status.as_u16(),
            }))
            .with_session(Some(self.session.clone()))
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    pub fn request_hash(&self) -> &[u8] {
        &self.request_hash
    }
}

/// The signed-in user of a command request, the session guard its append re-checks, and its
/// metadata.
pub(crate) async fn command_parts(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(AuthUser, SessionGuard, RequestMeta), ApiError> {
    let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
    let token = session_token(&parts.headers).map(|(t, _)| t).unwrap_or_default();
    let session = SessionGuard {
        token_hash: state.auth.token_hash(&token),
        roles: user.roles.clone(),
        sponsors: user.sponsors.clone(),
        unit_id: user.unit_id,
    };
    let Meta(meta) = Meta::from_request_parts(parts, state).await?;
    Ok((user, session, meta))
}

/// The body's bytes; 413 past the body limit.
async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        ApiError::new(e.status(), "payload_too_large", format!("request body refused: {}", e.body_text()))
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for Command<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let (user, session, meta) = command_parts(&mut parts, state).await?;
        let idempotency_key = match parts.headers.get(IDEMPOTENCY_HEADER) {
            None => None,
            Some(v) => {
                let key = v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200);
                Some(key.map(String::from).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 200 visible characters",
                    )
                    .with_field("Idempotency-Key")
                })?)
            }
        };
        let req = Request::from_parts(parts, body);
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_string();
        let has_json_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = body_bytes(req, state).await?;
        if !bytes.is_empty() && !has_json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let body = parse_json(if bytes.is_empty() { b"{}" } else { &bytes })?;
        let mut hasher = Sha256::new();
        hasher.update(method.as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(&bytes);
        Ok(Command { user, meta, body, idempotency_key, request_hash: hasher.finalize().to_vec(), session })
    }
}

/// A command whose body is a file (the organisation import): the signed-in user, metadata,
/// the body's media type (lower case, without parameters) and its bytes.
pub struct Upload {
    pub user: AuthUser,
    pub meta: RequestMeta,
    pub session: SessionGuard,
    pub media_type: String,
    pub bytes: Bytes,
}

impl Upload {
    /// The command context (no Idempotency-Key: an import of the same file is idempotent by
    /// itself).
    pub fn context(&self) -> CommandContext {
        CommandContext::user(self.user.actor(), self.meta.clone()).with_session(Some(self.session.clone()))
    }
}

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let (user, session, meta) = command_parts(&mut parts, state).await?;
        let media_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = body_bytes(Request::from_parts(parts, body), state).await?;
        Ok(Upload { user, meta, session, media_type, bytes })
    }
}

/// A command whose body is `multipart/form-data` (a receipt upload): the caller and the parts,
/// read by the handler as they arrive (the route's body limit applies).
pub struct MultipartCommand {
    pub user: AuthUser,
    pub meta: RequestMeta,
    pub session: SessionGuard,
    pub multipart: axum::extract::Multipart,
}

impl MultipartCommand {
    /// The command context (no Idempotency-Key: attaching the same file twice is refused).
    pub fn context(&self) -> CommandContext {
        CommandContext::user(self.user.actor(), self.meta.clone()).with_session(Some(self.session.clone()))
    }
}

impl FromRequest<AppState> for MultipartCommand {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let (user, session, meta) = command_parts(&mut parts, state).await?;
        let multipart = axum::extract::Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send the file as multipart/form-data, in the field `file`: {}", e.body_text()),
                )
                .with_field("file")
            })?;
        Ok(MultipartCommand { user, meta, session, multipart })
    }
}

/// Parses JSON, turning serde's errors into 400 (malformed) or 422 naming the field. A string
/// with U+0000 anywhere (value or key) is a 422 naming it ([`refuse_nul_in_json`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul_in_json(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        json_error(Some(path), err.into_inner())
    })?;
    de.end().map_err(|e| json_error(None, e))?;
    Ok(value)
}

fn json_error(path: Option<String>, inner: serde_json::Error) -> ApiError {
    // `?` marks a position serde could not name (e.g. truncated input).
    let path = path.filter(|p| p != "." && !p.contains('?'));
    if inner.classify() == serde_json::error::Category::Eof {
        return ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {inner}"));
    }
    let message = inner.to_string();
    // serde names a missing field in the message only (the path is its parent's).
    let named = message.split('`').nth(1).map(String::from);
    let field = if message.starts_with("unknown field") {
        path.or(named)
    } else if message.starts_with("missing field") {
        let prefix = path.as_ref().map(|p| format!("{p}.")).unwrap_or_default();
        named.map(|n| format!("{prefix}{n}"))
    } else {
        path
    };
    let clean = message.split(" at line ").next().unwrap_or(&message).to_string();
    match (inner.classify(), field) {
        (_, Some(field)) => ApiError::unprocessable(&field, clean),
        (serde_json::error::Category::Data, None) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", clean)
        }
        _ => ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {message}")),
    }
}

/// A money amount given as a decimal string (`"12.50"`) or a JSON number (`12.5`). Parsed
/// exactly; never through a float's binary value (numbers are read back from their shortest
/// decimal form, which is exact for any amount the service accepts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount as a string or number, e.g. \"12.50\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                let t = v.trim();
                let valid = !t.is_empty()
                    && t.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
                if !valid {
                    return Err(E::custom(format!("`{v}` is not a decimal number")));
                }
                Decimal::from_str_exact(t)
                    .or_else(|_| Decimal::from_scientific(t))
                    .map(Amount)
                    .map_err(|_| E::custom(format!("`{v}` is not a decimal number in range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                if !v.is_finite() {
                    return Err(E::custom("amount must be finite"));
                }
                Decimal::from_str(&v.to_string())
                    .or_else(|_| Decimal::from_scientific(&format!("{v:e}")))
                    .map(Amount)
                    .map_err(|_| E::custom("amount is out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::Type(utoipa::openapi::Type::String))
            .description(Some("Decimal amount as a string (\"12.50\"); JSON numbers are accepted too."))
            .examples([serde_json::json!("12.50")])
            .into()
    }
}

impl utoipa::ToSchema for Amount {}

/// The value of the cookie `name`, when the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let pairs =
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';'));
    pairs.filter_map(|pair| pair.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, value)| value)
}

/// 415 unless the body is declared as `application/json`.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let media_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|ct| ct.split(';').next());
    if media_type.is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with `Content-Type: application/json`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        amount: Amount,
        #[allow(dead_code)]
        purpose: String,
    }

    #[test]
    fn amounts_parse_exactly_from_strings_and_numbers() {
        let b: Body = parse_json(br#"{"amount": "12.50", "purpose": "x"}"#).unwrap();
        assert_eq!(b.amount.0.to_string(), "12.50");
        let b: Body = parse_json(br#"{"amount": 0.1, "purpose": "x"}"#).unwrap();
        assert_eq!(b.amount.0.to_string(), "0.1");
        let b: Body = parse_json(br#"{"amount": 1234567.89, "purpose": "x"}"#).unwrap();
        assert_eq!(b.amount.0.to_string(), "1234567.89");
    }

    #[test]
    fn origins_are_compared_by_scheme_host_and_port() {
        let origin = |s: &str| Origin::parse(s);
        assert_eq!(origin("https://Cash.Example.com"), origin("https://cash.example.com:443"));
        assert_eq!(origin("http://127.0.0.1:8000/"), origin("http://127.0.0.1:8000"));
        assert_ne!(origin("https://127.0.0.1:8000"), origin("http://127.0.0.1:8000"));
        assert_ne!(origin("http://127.0.0.1:8001"), origin("http://127.0.0.1:8000"));
        for not_an_origin in ["null", "127.0.0.1:8000", "https://a.example/path", "ftp://a.example", ""] {
            assert_eq!(origin(not_an_origin), None, "{not_an_origin}");
        }

        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "cash.example.com".parse().unwrap());
        assert_eq!(own_origin(&headers), origin("http://cash.example.com"));
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(own_origin(&headers), origin("https://cash.example.com"));
        headers.remove(header::HOST);
        assert_eq!(own_origin(&headers), None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&[u8], u16, Option<&str>); 6] = [
            (br#"{"amount": "abc", "purpose": "x"}"#, 422, Some("amount")),
            (br#"{"amount": 1e400, "purpose": "x"}"#, 422, Some("amount")),
            (br#"{"amount": "1", "purpose": "x", "extra": 1}"#, 422, Some("extra")),
            (br#"{"purpose": "x"}"#, 422, Some("amount")),
            (br#"{"amount": "1", "purpose": 5}"#, 422, Some("purpose")),
            (br#"{"amount": "1", "#, 400, None),
        ];
        for (body, status, field) in cases {
            let err = parse_json::<Body>(body).unwrap_err();
            assert_eq!(err.status.as_u16(), status, "{}: {err:?}", String::from_utf8_lossy(body));
            assert_eq!(err.field.as_deref(), field, "{}", String::from_utf8_lossy(body));
        }
    }
}
