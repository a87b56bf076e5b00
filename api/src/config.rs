//! Configuration from the environment. Names follow the Django system being replaced:
//! `DATABASE_URL`, `SECRET_KEY`, `DEBUG`, `ALLOWED_HOSTS`, `CORS_ALLOWED_ORIGINS`, plus `BIND`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The development secret. Refused in production (`DEBUG=False`).
pub const DEV_SECRET_KEY: &str = "insecure-development-secret-key-do-not-use-in-production";
/// Stands in for SECRET_KEY in commands that never sign anything (`migrate`, `user add`,
/// `demo`, `project`, `projections status`).
pub const UNUSED_SECRET_KEY: &str = "unused-by-this-command-0123456789abcdef-0123456789abcdef";
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Port of the private PostgreSQL cluster of the embedded default (not 5432).
pub const DEFAULT_EMBEDDED_PG_PORT: u16 = 54329;

#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: the embedded default, a private PostgreSQL cluster under `data_dir`.
    pub database_url: Option<String>,
    pub secret_key: String,
    pub debug: bool,
    /// Host names the service answers to. `*` allows any; `.example.com` allows subdomains.
    pub allowed_hosts: Vec<String>,
    pub cors_allowed_origins: Vec<String>,
    pub bind: SocketAddr,
    /// Where the embedded default keeps its database and demo logins (`./var`).
    pub data_dir: PathBuf,
    pub embedded_pg_port: u16,
    pub session_hours: i64,
    /// Maximum database connections.
    pub db_pool_size: u32,
    /// Run the projection workers inside `serve` (off with `--no-projections`).
    pub run_projections: bool,
    /// Longest a query waits for `min_position` before answering 503.
    pub min_position_wait_ms: u64,
    /// The secret the seals of the event store are keyed with: `SEAL_KEY`, else `SECRET_KEY`
    /// (`None` in commands run without either: they do not seal).
    pub seal_secret: Option<String>,
    /// Seconds between seals when the sealer has caught up (`SEAL_INTERVAL_SECS`).
    pub seal_interval_secs: u64,
    /// How long a session lookup is reused, in milliseconds (`SESSION_CACHE_MS`, default
    /// 2000; 0 looks every request up).
    pub session_cache_ms: u64,
    /// Aggregates the command service keeps in memory (`AGGREGATE_CACHE_SIZE`, default 8192;
    /// 0 loads every aggregate from the store).
    pub aggregate_cache_size: usize,
    /// Sign-in throttling: the built-in policy (not read from the environment yet).
    pub login_throttle: pettycash_commands::throttle::ThrottlePolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "SECRET_KEY is {0}. With DEBUG=False (production) the service refuses to start without a \
         secret key of its own: set SECRET_KEY to a random value of at least 32 characters, e.g. \
         `openssl rand -hex 32`. It keys the session-token hashes; changing it signs everyone out."
    )]
    BadSecretKey(&'static str),
    #[error("{name} is not valid: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Django-style booleans: True/False, true/false, 1/0, yes/no, on/off.
fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(ConfigError::Invalid { name, message: format!("`{other}` is not True or False") }),
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = get("DATABASE_URL").filter(|s| !s.trim().is_empty());
        // Without DATABASE_URL this is the embedded development default: DEBUG defaults on.
        // With a database configured it defaults off, so production never runs in debug by
        // omission.
        let debug = match get("DEBUG") {
            Some(v) => parse_bool("DEBUG", &v)?,
            None => database_url.is_none(),
        };
        let secret_key = match get("SECRET_KEY").filter(|s| !s.is_empty()) {
            Some(k) if !debug && k == DEV_SECRET_KEY => {
                return Err(ConfigError::BadSecretKey("the development default"))
            }
            Some(k) if !debug && k.len() < 32 => {
                return Err(ConfigError::BadSecretKey("shorter than 32 characters"))
            }
            Some(k) => k,
            None if debug => DEV_SECRET_KEY.to_string(),
            None => return Err(ConfigError::BadSecretKey("not set")),
        };
        let mut allowed_hosts = list(get("ALLOWED_HOSTS"));
        if allowed_hosts.is_empty() {
            allowed_hosts = if debug {
                vec!["*".into()]
            } else {
                vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
            };
        }
        let bind_text = get("BIND").unwrap_or_else(|| DEFAULT_BIND.to_string());
        let bind = bind_text
            .parse()
            .map_err(|e| ConfigError::Invalid { name: "BIND", message: format!("`{bind_text}`: {e}") })?;
        let number = |name: &'static str, default: i64| -> Result<i64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|e| ConfigError::Invalid { name, message: format!("`{v}`: {e}") })
            })
        };
        let seal_secret = match get("SEAL_KEY").filter(|s| !s.is_empty()) {
            Some(k) if !debug && k.len() < 32 => {
                return Err(ConfigError::Invalid {
                    name: "SEAL_KEY",
                    message: "shorter than 32 characters".into(),
                })
            }
            Some(k) => Some(k),
            None => (secret_key != UNUSED_SECRET_KEY).then(|| secret_key.clone()),
        };
        Ok(Self {
            database_url,
            secret_key,
            debug,
            allowed_hosts,
            cors_allowed_origins: list(get("CORS_ALLOWED_ORIGINS")),
            bind,
            data_dir: PathBuf::from(get("PETTYCASH_DATA_DIR").unwrap_or_else(|| "var".into())),
            embedded_pg_port: number("PETTYCASH_EMBEDDED_PG_PORT", DEFAULT_EMBEDDED_PG_PORT.into())? as u16,
            session_hours: number("SESSION_HOURS", 12)?,
            db_pool_size: number("DATABASE_POOL_SIZE", 20)? as u32,
            run_projections: true,
            min_position_wait_ms: number("MIN_POSITION_WAIT_MS", 3000)? as u64,
            seal_secret,
            seal_interval_secs: number("SEAL_INTERVAL_SECS", 10)?.max(1) as u64,
            session_cache_ms: number("SESSION_CACHE_MS", 2000)?.max(0) as u64,
            aggregate_cache_size: number(
                "AGGREGATE_CACHE_SIZE",
                pettycash_commands::cache::DEFAULT_CAPACITY as i64,
            )?
            .max(0) as usize,
            login_throttle: Default::default(),
        })
    }

    /// The key seals are made with, when one is configured.
    pub fn seal_key(&self) -> Option<pettycash_projections::seal::SealKey> {
        self.seal_secret.as_deref().map(pettycash_projections::seal::SealKey::derive)
    }

    /// The key events and snapshots are authenticated with (same secret as the seals), or an
    /// error naming what to set: nothing may write events without it.
    pub fn event_key(&self) -> anyhow::Result<pettycash_domain::integrity::EventKey> {
        self.seal_secret.as_deref().map(pettycash_domain::integrity::EventKey::derive).ok_or_else(|| {
            anyhow::anyhow!(
                "set SEAL_KEY (or SECRET_KEY): every event is authenticated with it, and the service \
                 refuses events written under another key"
            )
        })
    }

    pub fn sealer_options(&self) -> pettycash_projections::seal::SealerOptions {
        pettycash_projections::seal::SealerOptions {
            interval: std::time::Duration::from_secs(self.seal_interval_secs),
            ..Default::default()
        }
    }

    /// True when `host` (a Host header, possibly with a port) is allowed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = if host.starts_with('[') {
            host.split_inclusive(']').next().unwrap_or(host)
        } else {
            host.rsplit_once(':').map_or(host, |(h, _)| h)
        }
        .to_ascii_lowercase();
        self.allowed_hosts.iter().any(|allowed| {
            allowed == "*"
                || *allowed == name
                || (allowed.starts_with('.') && (name.ends_with(allowed.as_str()) || name == allowed[1..]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_configuration_is_the_embedded_debug_default() {
        let c = config(&[]).unwrap();
        assert!(c.debug);
        assert!(c.database_url.is_none());
        assert_eq!(c.secret_key, DEV_SECRET_KEY);
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
    }

    #[test]
    fn production_refuses_missing_or_default_secret_key() {
        let missing = config(&[("DEBUG", "False")]).unwrap_err();
        assert!(missing.to_string().contains("SECRET_KEY is not set"), "{missing}");
        let default = config(&[("DEBUG", "False"), ("SECRET_KEY", DEV_SECRET_KEY)]).unwrap_err();
        assert!(default.to_string().contains("development default"));
        let with_db = config(&[("DATABASE_URL", "postgres://x/y")]).unwrap_err();
        assert!(matches!(with_db, ConfigError::BadSecretKey(_)));
        let ok = config(&[("DEBUG", "False"), ("SECRET_KEY", &"k".repeat(40))]).unwrap();
        assert!(!ok.debug);
    }

    #[test]
    fn allowed_hosts_match_like_django() {
        let c = config(&[("ALLOWED_HOSTS", "cash.example.com, .branch.example.com")]).unwrap();
        assert!(c.host_allowed("cash.example.com:8000"));
        assert!(c.host_allowed("nairobi.branch.example.com"));
        assert!(c.host_allowed("branch.example.com"));
        assert!(!c.host_allowed("evil.com"));
        assert!(!c.host_allowed("cash.example.com.evil.com"));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(config(&[("DEBUG", "maybe")]).unwrap_err().to_string().contains("DEBUG"));
        assert!(config(&[("BIND", "nowhere")]).unwrap_err().to_string().contains("BIND"));
    }
}
