//! Passwords (argon2), login (throttled: `crate::throttle`), and session tokens.
//!
//! Tokens are 32 random bytes, given to the client once and stored only as
//! HMAC-SHA256(SECRET_KEY, token). Authenticating a request is one indexed lookup that
//! also returns the user's current roles; no password hashing happens per request.
//!
//! Lookups are cached in the process for a short time (`SESSION_CACHE_MS`, default 2 s).
//! Signing out, role changes, unit changes and deactivation through this process take effect at
//! once (their entries are dropped); through another process, within that time for reads.
//! Commands do not depend on the cache being fresh: their append re-checks the session (ended
//! sessions, a deactivated user) and the roles, sponsors and unit it decided with
//! (`SessionGuard`).

use crate::error::CommandError;
use crate::throttle::{keyed, random_base64, Throttle, ThrottlePolicy};
use crate::RequestMeta;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use hmac::Mac;
use pettycash_domain::organisation::UnitPath;
use pettycash_domain::settings::Lockout;
use pettycash_domain::{Actor, Id, Role};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A signed-in user, as of their latest event.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuthUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<String>,
    pub active: bool,
    /// Who registered the user or granted them a role (not shown: it decides segregation of
    /// duties, see `User::sponsors`).
    #[serde(skip)]
    #[schema(ignore)]
    pub sponsors: Vec<uuid::Uuid>,
    /// The organisation unit the user belongs to (`null`: none, unscoped).
    pub unit_id: Option<uuid::Uuid>,
    /// The company of that unit: what the user sees is this company's.
    pub company_id: Option<uuid::Uuid>,
    #[serde(skip)]
    #[schema(ignore)]
    pub region_id: Option<uuid::Uuid>,
    #[serde(skip)]
    #[schema(ignore)]
    pub branch_id: Option<uuid::Uuid>,
    #[serde(skip)]
    #[schema(ignore)]
    pub department_id: Option<uuid::Uuid>,
    #[serde(skip)]
    #[schema(ignore)]
    pub cost_centre_id: Option<uuid::Uuid>,
}

impl AuthUser {
    /// The user as a command actor, with their unit's path. Unknown role names (none exist
    /// today) are ignored.
    pub fn actor(&self) -> Actor {
        Actor::new(self.id, self.roles.iter().filter_map(|r| r.parse::<Role>().ok()))
            .with_sponsors(self.sponsors.iter().copied())
            .in_unit(self.unit())
    }

    /// The user's unit and its path, as the `users` row holds it.
    pub fn unit(&self) -> Option<UnitPath> {
        Some(UnitPath {
            unit_id: self.unit_id?,
            company: self.company_id?,
            region: self.region_id,
            branch: self.branch_id,
            department: self.department_id,
            cost_centre: self.cost_centre_id,
        })
    }
}

/// A new session.
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: AuthUser,
    /// The value of the device cookie to hand out with it (`crate::throttle`).
    pub device_cookie: String,
}

#[derive(Clone)]
pub struct Authenticator {
    pool: PgPool,
    secret: Vec<u8>,
    session_ttl: Duration,
    cache: Arc<SessionCache>,
    throttle: Throttle,
}

/// A session looked up: its user, when the session expires, when it was looked up.
type CachedSession = (AuthUser, DateTime<Utc>, Instant);

/// Sessions looked up recently, by token hash.
struct SessionCache {
    max_age: std::time::Duration,
    entries: Mutex<HashMap<Vec<u8>, CachedSession>>,
}

/// Cached sessions kept at most; the cache starts over when it is full.
const SESSION_CACHE_ENTRIES: usize = 10_000;

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, CachedSession>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Password hashings running at once. Each argon2id hash takes 19 MiB and tens of
/// milliseconds of a core: a burst of sign-ins queues here instead of taking all memory and
/// both cores.
const CONCURRENT_HASHES: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

async fn verify_password(password: String, hash: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A valid argon2 hash of a random password, verified against when the email is unknown so
/// that the response time does not reveal which emails exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Jm1fJ0nKZ2Fz3l0Kc7Rk4w7v2m6sF0bD1lYpJ0Vq0xU";

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Id,
    password_hash: String,
    active: bool,
}

const USER_COLUMNS: &str = "u.id, u.email, u.name, u.roles, u.active, u.sponsors, u.unit_id, u.company_id, \
     u.region_id, u.branch_id, u.department_id, u.cost_centre_id";

impl Authenticator {
    /// `session_cache`: how long a session lookup is reused (zero: not at all).
    pub fn new(
        pool: PgPool,
        secret: &[u8],
        session_ttl: Duration,
        session_cache: std::time::Duration,
        throttle: ThrottlePolicy,
    ) -> Self {
        let cache = SessionCache { max_age: session_cache, entries: Mutex::default() };
        let throttle = Throttle::new(pool.clone(), secret, throttle);
        Self { pool, secret: secret.to_vec(), session_ttl, cache: Arc::new(cache), throttle }
    }

    /// HMAC-SHA256 of a session token under the secret key, as `sessions.token_hash` stores it.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        keyed(&self.secret, &[token.as_bytes()]).finalize().into_bytes().to_vec()
    }

    /// Checks email and password; on success opens a session. Throttled first, before the
    /// password is looked at (`crate::throttle`): by the device of `device_cookie` when it
    /// was issued for this account, else by the account and the client address.
    ///
    /// Unknown emails take the same steps as known ones (lookup, throttle, one argon2
    /// verification, against a dummy hash) and get the same answers, so neither the answer
    /// nor its time tells whether an email exists.
    ///
    /// `lockout` is the admins' part of the throttle (runtime settings): how many failures an
    /// account or device may have before the delay, and the longest delay.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_cookie: Option<&str>,
        meta: &RequestMeta,
        lockout: Lockout,
    ) -> Result<Session, CommandError> {
        const BAD: CommandError = CommandError::Unauthenticated("invalid email or password");
        let email = email.trim().to_ascii_lowercase();
        // Looked up before the throttle only to tell whether the device cookie belongs to
        // this account; a throttled attempt goes no further, whatever the lookup found.
        let row: Option<LoginRow> = sqlx::query_as(
            "SELECT u.id, c.password_hash, u.active
             FROM users u JOIN credentials c ON c.user_id = u.id WHERE u.email = $1",
        )
        .bind(&email)
        .fetch_optional(&self.pool)
        .await?;
        let device = device_cookie
            .and_then(|c| self.throttle.device(c))
            .filter(|d| row.as_ref().is_some_and(|r| r.id == d.user_id));
        let keys = self.throttle.keys(&email, meta.client_ip.as_deref(), device.as_ref());
        self.throttle.take(&keys, lockout).await?;
        let Some(LoginRow { id: user_id, password_hash: hash, active }) = row else {
            verify_password(password.to_string(), DUMMY_HASH.to_string()).await;
            return Err(BAD);
        };
        if !verify_password(password.to_string(), hash).await {
            return Err(BAD);
        }
        if !active {
            return Err(CommandError::Unauthenticated("this account is deactivated"));
        }
        self.throttle.succeeded(&keys).await?;
        self.open_session(user_id, device.as_ref(), meta).await?.ok_or(BAD)
    }

    /// Opens a session for `user_id`, who has just proved who they are (a password checked,
    /// an invitation accepted), with the device cookie to hand out (that of `device`, else a
    /// new one). `None` when the user does not exist.
    async fn open_session(
        &self,
        user_id: Id,
        device: Option<&crate::throttle::Device>,
        meta: &RequestMeta,
    ) -> Result<Option<Session>, CommandError> {
        let token = random_base64::<32>();
        let expires_at = Utc::now() + self.session_ttl;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, expires_at, client_ip, user_agent) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.token_hash(&token))
        .bind(user_id)
        .bind(expires_at)
        .bind(&meta.client_ip)
        .bind(meta.user_agent.as_deref().map(|ua| ua.chars().take(500).collect::<String>()))
        .execute(&self.pool)
        .await?;
        let Some(user) = self.user(user_id).await? else { return Ok(None) };
        let device_cookie = self.throttle.device_cookie(device, user_id);
        Ok(Some(Session { token, expires_at, user, device_cookie }))
    }

    /// Signs in a user who has just accepted their invitation (they chose their password a
    /// moment ago, in the acceptance's transaction): their first session and device cookie.
    pub async fn sign_in_invited(&self, user_id: Id, meta: &RequestMeta) -> Result<Session, CommandError> {
        self.open_session(user_id, None, meta).await?.ok_or(CommandError::not_found("user"))
    }

    /// The user a session token belongs to, if the session is live and the user active:
    /// from the session cache when it was looked up less than its maximum age ago.
    pub async fn authenticate(&self, token: &str) -> Result<Option<AuthUser>, sqlx::Error> {
        let hash = self.token_hash(token);
        if !self.cache.max_age.is_zero() {
            if let Some((user, expires_at, at)) = self.cache.lock().get(&hash) {
                if at.elapsed() < self.cache.max_age && *expires_at > Utc::now() {
                    return Ok(Some(user.clone()));
                }
            }
        }
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: AuthUser,
            expires_at: DateTime<Utc>,
        }
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > now() AND s.revoked_at IS NULL AND u.active"
        ))
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(Row { user, expires_at }) = row else {
            self.forget_session(&hash);
            return Ok(None);
        };
        if !self.cache.max_age.is_zero() {
            let mut entries = self.cache.lock();
            if entries.len() >= SESSION_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (user.clone(), expires_at, Instant::now()));
        }
        Ok(Some(user))
    }

    /// Drops a cached session (its command found it changed): the next request looks it up.
    pub fn forget_session(&self, token_hash: &[u8]) {
        self.cache.lock().remove(token_hash);
    }

    /// Drops every cached session of a user (roles changed, deactivated).
    pub fn forget_user(&self, user_id: Id) {
        self.cache.lock().retain(|_, (user, _, _)| user.id != user_id);
    }

    /// Ends a session. Unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<(), sqlx::Error> {
        let hash = self.token_hash(token);
        self.forget_session(&hash);
        sqlx::query("UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .execute(&self.pool)
            .await?;
        // Again: a lookup that raced the update may have cached the session meanwhile.
        self.forget_session(&hash);
        Ok(())
    }

    /// The users of `company` (`None`: those of no company), ordered by email
    /// (`visibility::may_see_user`).
    pub async fn list_users(&self, company: Option<Id>) -> Result<Vec<AuthUser>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.company_id IS NOT DISTINCT FROM $1 ORDER BY u.email"
        ))
        .bind(company)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn user(&self, id: Id) -> Result<Option<AuthUser>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dummy_hash_parses_and_passwords_verify() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(verify_password("correct horse battery".into(), hash.clone()).await);
        assert!(!verify_password("wrong".into(), hash).await);
    }
}
