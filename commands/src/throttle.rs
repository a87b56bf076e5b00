//! Sign-in throttling: how many passwords may be tried, by whom, how fast.
//!
//! Every sign-in attempt first takes a slot on the keys it is throttled by, in one statement
//! (`login_throttle_take`, migration 0007), before anything looks at the password: attempts
//! that race queue on the keys' row locks in PostgreSQL, so across any number of processes at
//! most the limit of them are checked before the delay applies. Each attempt counts until it
//! succeeds. After the limit an attempt is let through once the delay since the key's last
//! attempt has passed; the delay doubles with every further failure, up to a maximum. A
//! refused attempt checks nothing and changes nothing.
//!
//! The keys, HMAC-SHA256(SECRET_KEY, "<kind>:<value>") so the table holds no emails or
//! addresses:
//!
//! - `account`: the lower-cased email, whether or not such a user exists, so unknown emails
//!   are throttled exactly as known ones and the answers do not tell them apart;
//! - `client`: the client address (an IPv6 address by its /64, which one subscriber usually
//!   holds whole), so one address cannot try a few passwords on each of many accounts;
//! - `device`: the id in a `pettycash_device` cookie, which a successful sign-in hands out.
//!   An attempt that presents a valid one, issued for the account it signs in to, is throttled
//!   by that device alone: whoever guesses the password from elsewhere cannot lock the user
//!   out of the browser or client they usually sign in from.
//!
//! A correct password resets the key the attempt was throttled by (account or device). The
//! client key only gets back the one slot the success took: resetting it would let an
//! attacker clear their address's count by signing in to their own account between guesses.

use crate::error::CommandError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use pettycash_domain::settings::Lockout;
use rand::RngCore;
use sha2::Sha256;
use sqlx::PgPool;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use uuid::Uuid;

/// How many attempts each kind of key allows and how long it then makes them wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottlePolicy {
    /// Attempts on one account (from anywhere but its users' own devices) before the delay.
    pub account_limit: i32,
    /// Attempts from one client address, on any accounts, before the delay.
    pub client_limit: i32,
    /// Attempts from one device before the delay.
    pub device_limit: i32,
    /// The delay once the limit is reached; it doubles with every further failure...
    pub base_delay: Duration,
    /// ...up to this.
    pub max_delay: Duration,
    /// A counter without attempts for this long starts again from zero (its row is deleted).
    pub idle_reset: Duration,
}

impl ThrottlePolicy {
    /// The policy, in one place (a later issue makes it runtime settings).
    pub const DEFAULT: Self = Self {
        account_limit: 5,
        // Larger than the account limit: several people may sign in from behind one address
        // (an office's NAT), and each of them may mistype.
        client_limit: 20,
        device_limit: 5,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(15 * 60),
        // Longer than the maximum delay, so that waiting out a delay never resets a counter.
        idle_reset: Duration::from_secs(60 * 60),
    };
}

impl ThrottlePolicy {
    /// This policy with the admins' settings: the account and device limits, and the longest
    /// delay (the idle reset stays longer than it, so that waiting out a delay never resets a
    /// counter).
    pub fn with(&self, lockout: Lockout) -> Self {
        let limit = i32::try_from(lockout.threshold).unwrap_or(i32::MAX);
        let max_delay = Duration::from_secs(u64::from(lockout.minutes) * 60);
        Self {
            account_limit: limit,
            device_limit: limit,
            max_delay,
            idle_reset: self.idle_reset.max(max_delay * 2),
            ..*self
        }
    }
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How long a device cookie lasts.
pub const DEVICE_COOKIE_DAYS: i64 = 90;

/// What a throttle key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Account,
    Client,
    Device,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Client => "client",
            Kind::Device => "device",
        }
    }

    fn limit(self, policy: &ThrottlePolicy) -> i32 {
        match self {
            Kind::Account => policy.account_limit,
            Kind::Client => policy.client_limit,
            Kind::Device => policy.device_limit,
        }
    }
}

/// One key a sign-in attempt is throttled by.
#[derive(Debug)]
pub(crate) struct Key {
    kind: Kind,
    hash: Vec<u8>,
}

/// A device cookie whose signature holds: the device and the user it was issued to.
#[derive(Debug)]
pub(crate) struct Device {
    id: String,
    pub user_id: Uuid,
}

/// HMAC-SHA256 under `secret` over `parts`, one after the other.
pub(crate) fn keyed(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// `N` random bytes, base64url.
pub(crate) fn random_base64<const N: usize>() -> String {
    let mut raw = [0u8; N];
    rand::thread_rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The sign-in throttle: its keys, its table and the device cookies.
#[derive(Clone)]
pub(crate) struct Throttle {
    pool: PgPool,
    secret: Vec<u8>,
    policy: ThrottlePolicy,
}

impl Throttle {
    pub(crate) fn new(pool: PgPool, secret: &[u8], policy: ThrottlePolicy) -> Self {
        Self { pool, secret: secret.to_vec(), policy }
    }

    fn key(&self, kind: Kind, value: &str) -> Key {
        let hash = keyed(&self.secret, &[kind.name().as_bytes(), b":", value.as_bytes()]);
        Key { kind, hash: hash.finalize().into_bytes().to_vec() }
    }

    /// The keys an attempt to sign in to `email` (lower-cased) is throttled by: its device's
    /// alone when it presents one issued for this account, else the account's and the
    /// client's (when the address is known).
    pub(crate) fn keys(&self, email: &str, client_ip: Option<&str>, device: Option<&Device>) -> Vec<Key> {
        if let Some(device) = device {
            return vec![self.key(Kind::Device, &device.id)];
        }
        let client = client_ip.map(|ip| self.key(Kind::Client, &client_value(ip)));
        std::iter::once(self.key(Kind::Account, email)).chain(client).collect()
    }

    /// Takes a slot on every key, or on none and answers how long to wait. `lockout` (runtime
    /// settings) gives the account and device limits and the longest delay.
    pub(crate) async fn take(&self, keys: &[Key], lockout: Lockout) -> Result<(), CommandError> {
        let policy = self.policy.with(lockout);
        let hashes: Vec<&[u8]> = keys.iter().map(|k| k.hash.as_slice()).collect();
        let limits: Vec<i32> = keys.iter().map(|k| k.kind.limit(&policy)).collect();
        let wait: Option<f64> = sqlx::query_scalar("SELECT login_throttle_take($1, $2, $3, $4, $5)")
            .bind(hashes)
            .bind(limits)
            .bind(policy.base_delay.as_secs_f64())
            .bind(policy.max_delay.as_secs_f64())
            .bind(policy.idle_reset.as_secs_f64())
            .fetch_one(&self.pool)
            .await?;
        match wait {
            // Whole seconds, rounded up: a client that waits that long is let through.
            Some(secs) => {
                Err(CommandError::TooManyAttempts { retry_after_secs: secs.ceil().max(1.0) as u64 })
            }
            None => Ok(()),
        }
    }

    /// After a correct password: the account or device key starts again from zero, the client
    /// key gets back the slot this attempt took. One statement a key, each its own
    /// transaction: a statement holding one row lock while it waits for another could
    /// deadlock with an attempt taking them in key order.
    pub(crate) async fn succeeded(&self, keys: &[Key]) -> Result<(), sqlx::Error> {
        for key in keys {
            let sql = match key.kind {
                Kind::Account | Kind::Device => "DELETE FROM login_throttle WHERE key = $1",
                Kind::Client => {
                    "UPDATE login_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0"
                }
            };
            sqlx::query(sql).bind(&key.hash).execute(&self.pool).await?;
        }
        Ok(())
    }

    fn device_signature(&self, id: &str, user_id: Uuid) -> Hmac<Sha256> {
        keyed(&self.secret, &[b"device-cookie:", id.as_bytes(), b".", user_id.to_string().as_bytes()])
    }

    /// The device a device cookie's value names, if its signature holds.
    pub(crate) fn device(&self, cookie: &str) -> Option<Device> {
        let mut parts = cookie.split('.');
        let (id, user, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.is_empty() {
            return None;
        }
        let user_id = Uuid::parse_str(user).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.device_signature(id, user_id).verify_slice(&signature).ok()?;
        Some(Device { id: id.to_string(), user_id })
    }

    /// A signed device cookie value for `user_id`: the same device when the attempt presented
    /// one for this user (its counter goes on), else a new one.
    pub(crate) fn device_cookie(&self, device: Option<&Device>, user_id: Uuid) -> String {
        let id = device.map_or_else(random_base64::<16>, |d| d.id.clone());
        let signature = URL_SAFE_NO_PAD.encode(self.device_signature(&id, user_id).finalize().into_bytes());
        format!("{id}.{user_id}.{signature}")
    }
}

/// What the client key is made of: the address, or for IPv6 its /64 (an IPv4 address mapped
/// into IPv6 counts as the IPv4 address).
fn client_value(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://unused").unwrap();
        Throttle::new(pool, b"test secret", ThrottlePolicy::DEFAULT)
    }

    #[tokio::test]
    async fn device_cookies_verify_only_as_issued() {
        let t = throttle();
        let user = Uuid::new_v4();
        let cookie = t.device_cookie(None, user);

        let device = t.device(&cookie).expect("own cookie verifies");
        assert_eq!(device.user_id, user);
        assert_eq!(t.device_cookie(Some(&device), user), cookie, "the same device keeps its id");
        let (id, rest) = cookie.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let other_user = format!("{id}.{}.{signature}", Uuid::new_v4());
        assert!(t.device(&other_user).is_none(), "a cookie moved to another user");
        assert!(t.device(&format!("x{cookie}")).is_none(), "another id");
        assert!(t.device(&format!("{cookie}.x")).is_none());
        assert!(t.device("").is_none());
        let other_key = Throttle::new(t.pool.clone(), b"another secret", ThrottlePolicy::DEFAULT);
        assert!(other_key.device(&cookie).is_none(), "signed under another SECRET_KEY");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        assert_eq!(client_value("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_value("2001:db8:1:2:bbbb::2"), "2001:db8:1:2::/64");
        assert_eq!(client_value("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(client_value("192.0.2.7"), "192.0.2.7");
        assert_eq!(client_value("not an address"), "not an address");
    }
}
