//! Configuration. Every setting is one `clap` argument that also reads an environment variable
//! (`--database-pool-size` / `DATABASE_POOL_SIZE`), as `pettycash-replay` does, and is
//! validated while it is parsed: a bad value stops the program before it starts anything, with
//! one line naming the variable and what it accepts. The names follow the Django system being
//! replaced (`DATABASE_URL`, `SECRET_KEY`, `DEBUG`, `ALLOWED_HOSTS`, `CORS_ALLOWED_ORIGINS`)
//! plus `BIND` and the rest; `docs/runbook.md#configuration` lists them all with their ranges.
//!
//! The argument structs ([`CommonArgs`], [`KeyArgs`], [`SealArgs`], [`HttpArgs`],
//! [`MailArgs`]) are flattened into the commands that read them (`crate::cli`): `migrate` takes
//! no secret at all. [`Config`] is what they resolve to, the one settings value the service
//! passes around. Secrets are [`SecretString`]s, which `Debug` never shows.

use clap::builder::{Resettable, TypedValueParser};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, Args, Command, FromArgMatches};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::num::IntErrorKind;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

pub use secrecy::{ExposeSecret, SecretString};

/// The development secret. Refused in production (`DEBUG=False`).
pub const DEV_SECRET_KEY: &str = "insecure-development-secret-key-do-not-use-in-production";
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Port of the private PostgreSQL cluster of the embedded default (not 5432).
pub const DEFAULT_EMBEDDED_PG_PORT: u16 = 54329;
/// The sender of mail when `DEFAULT_FROM_EMAIL` is not set.
pub const DEFAULT_FROM_EMAIL: &str = "pettycash@localhost";

pub use pettycash_commands::mail::Mailbox;

/// Settings every command reads: the database, the runtime, debug mode.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database and runtime (every command)")]
pub struct CommonArgs {
    /// PostgreSQL URL, postgres://user:password@host:5432/db. Unset: the embedded development
    /// cluster under PETTYCASH_DATA_DIR (as root, under /var/lib/pettycash-embedded when the
    /// postgres user cannot enter that directory).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL",
          value_parser = secret("DATABASE_URL"))]
    pub database_url: Option<SecretString>,
    /// True/False (also 1/0, yes/no, on/off). Default: True without DATABASE_URL, False with
    /// it. Off: SECRET_KEY required, JSON logs, Secure session cookie.
    #[arg(long, env = "DEBUG", value_name = "BOOL", value_parser = boolean("DEBUG"))]
    pub debug: Option<bool>,
    /// Maximum PostgreSQL connections of this process, 1 to 1000.
    #[arg(long, env = "DATABASE_POOL_SIZE", value_name = "N", default_value_t = 20,
          value_parser = number::<u32>("DATABASE_POOL_SIZE", 1..=1000))]
    pub database_pool_size: u32,
    /// `serve` only: maximum PostgreSQL connections of its background work (projection
    /// workers, mail sender, sealer), 1 to 1000, on top of DATABASE_POOL_SIZE: a pool of their
    /// own, so that they never take the connections requests wait for, nor the other way round.
    #[arg(long, env = "DATABASE_WORKER_POOL_SIZE", value_name = "N", default_value_t = 4,
          value_parser = number::<u32>("DATABASE_WORKER_POOL_SIZE", 1..=1000))]
    pub database_worker_pool_size: u32,
    /// Threads of the async runtime, 1 to 1024. Default: half the cores when PostgreSQL runs on
    /// this machine (loopback DATABASE_URL or the embedded cluster), all of them otherwise.
    #[arg(long, env = "TOKIO_WORKER_THREADS", value_name = "N",
          value_parser = number::<usize>("TOKIO_WORKER_THREADS", 1..=1024))]
    pub worker_threads: Option<usize>,
    /// Embedded default only: where the private cluster and the demo logins live.
    #[arg(long, env = "PETTYCASH_DATA_DIR", value_name = "DIR", default_value = "var",
          value_parser = path("PETTYCASH_DATA_DIR"))]
    pub data_dir: PathBuf,
    /// Embedded default only: the private cluster's port on 127.0.0.1, 1 to 65535.
    #[arg(long, env = "PETTYCASH_EMBEDDED_PG_PORT", value_name = "PORT",
          default_value_t = DEFAULT_EMBEDDED_PG_PORT,
          value_parser = number::<u16>("PETTYCASH_EMBEDDED_PG_PORT", 1..=65535))]
    pub embedded_pg_port: u16,
}

/// The secrets, for the commands that sign sessions (`serve`) or write events (`serve`,
/// `project`, `seal`, `user add`, `user password`, `demo`). Set them in the environment: a
/// command line is visible to every user of the machine.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Keys")]
pub struct KeyArgs {
    /// Keys the session-token hashes (serve), at least 32 characters: `openssl rand -hex 32`.
    /// Required with DEBUG off; while DEBUG is on, a development key stands in.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true, value_name = "SECRET",
          value_parser = secret("SECRET_KEY"))]
    pub secret_key: Option<SecretString>,
    /// Authenticates every event and keys the seals over the event store, at least 32
    /// characters with DEBUG off. Default: SECRET_KEY.
    #[arg(long, env = "SEAL_KEY", hide_env_values = true, value_name = "SECRET",
          value_parser = secret("SEAL_KEY"))]
    pub seal_key: Option<SecretString>,
}

/// The sealer that runs beside the projection workers (`serve`, `project`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sealing")]
pub struct SealArgs {
    /// Seconds between seals once the sealer has caught up, 1 to 86400.
    #[arg(long, env = "SEAL_INTERVAL_SECS", value_name = "SECONDS", default_value_t = 10,
          value_parser = number::<u64>("SEAL_INTERVAL_SECS", 1..=86_400))]
    pub seal_interval_secs: u64,
}

/// The HTTP service (`serve`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP service")]
pub struct HttpArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", value_name = "ADDR", default_value = DEFAULT_BIND,
          value_parser = address("BIND"))]
    pub bind: SocketAddr,
    /// Host names the service answers to, comma-separated: `.example.com` also allows its
    /// subdomains, `*` any. Default: `*` with DEBUG on, localhost,127.0.0.1,[::1] off.
    #[arg(long, env = "ALLOWED_HOSTS", value_name = "HOSTS", value_parser = text("ALLOWED_HOSTS"))]
    pub allowed_hosts: Option<String>,
    /// Origins of browser front-ends on other sites that may call the API with credentials,
    /// comma-separated. Default: none.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "ORIGINS",
          value_parser = text("CORS_ALLOWED_ORIGINS"))]
    pub cors_allowed_origins: Option<String>,
    /// How long a sign-in lasts, in hours, 1 to 8760 (a year).
    #[arg(long, env = "SESSION_HOURS", value_name = "HOURS", default_value_t = 12,
          value_parser = number::<u32>("SESSION_HOURS", 1..=8760))]
    pub session_hours: u32,
    /// How long a session lookup is reused, in milliseconds, 0 (look every request up) to
    /// 3600000 (an hour).
    #[arg(long, env = "SESSION_CACHE_MS", value_name = "MS", default_value_t = 2000,
          value_parser = number::<u64>("SESSION_CACHE_MS", 0..=3_600_000))]
    pub session_cache_ms: u64,
    /// Aggregates the command side keeps in memory, 0 (none) to 1000000.
    #[arg(long, env = "AGGREGATE_CACHE_SIZE", value_name = "N",
          default_value_t = pettycash_commands::cache::DEFAULT_CAPACITY,
          value_parser = number::<usize>("AGGREGATE_CACHE_SIZE", 0..=1_000_000))]
    pub aggregate_cache_size: usize,
    /// Longest a query with `min_position` waits for the read models before answering 503, in
    /// milliseconds, 0 to 60000.
    #[arg(long, env = "MIN_POSITION_WAIT_MS", value_name = "MS", default_value_t = 3000,
          value_parser = number::<u64>("MIN_POSITION_WAIT_MS", 0..=60_000))]
    pub min_position_wait_ms: u64,
    /// Seconds between the scheduler's looks for what is due (changes past their deadline,
    /// overdue approvals), 1 to 3600.
    #[arg(long, env = "SCHEDULER_INTERVAL_SECS", value_name = "SECONDS", default_value_t = 30,
          value_parser = number::<u64>("SCHEDULER_INTERVAL_SECS", 1..=3600))]
    pub scheduler_interval_secs: u64,
    /// The payment provider bank and mobile-money payments go through: `simulator` (an
    /// in-process provider behaving like M-Pesa B2C) or `daraja` (Safaricom M-Pesa B2C; needs
    /// the `DARAJA_*` settings, `PUBLIC_URL` and `PAYMENT_PROVIDER_SECRET`).
    #[arg(long, env = "PAYMENT_PROVIDER", value_name = "NAME", default_value = "simulator",
          value_parser = Setting::new("PAYMENT_PROVIDER", payment_provider))]
    pub payment_provider: String,
    /// The secret the provider authenticates its callbacks with (the simulator: HMAC-SHA256;
    /// daraja: the `token` in the callback URL, required); default (simulator): derived from
    /// SECRET_KEY.
    #[arg(long, env = "PAYMENT_PROVIDER_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub payment_provider_secret: Option<String>,
    /// Milliseconds the simulator takes before it decides a payment and calls back, 0 to
    /// 600000.
    #[arg(long, env = "PAYMENT_SIMULATOR_DELAY_MS", value_name = "MS", default_value_t = 2000,
          value_parser = number::<u64>("PAYMENT_SIMULATOR_DELAY_MS", 0..=600_000))]
    pub payment_simulator_delay_ms: u64,
    /// Daraja's address: https://sandbox.safaricom.co.ke (default) or https://api.safaricom.co.ke.
    #[arg(long, env = "DARAJA_BASE_URL", value_name = "URL", default_value = "https://sandbox.safaricom.co.ke",
          value_parser = public_url("DARAJA_BASE_URL"))]
    pub daraja_base_url: String,
    /// The Daraja app's consumer key (OAuth).
    #[arg(long, env = "DARAJA_CONSUMER_KEY", value_name = "KEY", hide_env_values = true)]
    pub daraja_consumer_key: Option<String>,
    /// The Daraja app's consumer secret (OAuth).
    #[arg(long, env = "DARAJA_CONSUMER_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub daraja_consumer_secret: Option<String>,
    /// The B2C initiator's user name.
    #[arg(long, env = "DARAJA_INITIATOR_NAME", value_name = "NAME")]
    pub daraja_initiator_name: Option<String>,
    /// The initiator's password encrypted with Safaricom's certificate (base64).
    #[arg(long, env = "DARAJA_SECURITY_CREDENTIAL", value_name = "CREDENTIAL", hide_env_values = true)]
    pub daraja_security_credential: Option<String>,
    /// The organisation's B2C short code (PartyA).
    #[arg(long, env = "DARAJA_SHORT_CODE", value_name = "CODE")]
    pub daraja_short_code: Option<String>,
}

/// Mail, for the commands that run the mail sender and the `notifications` projection that
/// writes the mail (`serve`, `project`). Named as in the Django system being replaced.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mail")]
pub struct MailArgs {
    /// SMTP server that sends the mail. Unset: with DEBUG on, each mail is written to
    /// PETTYCASH_DATA_DIR/mail as a .eml file; with DEBUG off, mail waits in the outbox until it
    /// is set.
    #[arg(long, env = "EMAIL_HOST", value_name = "HOST", value_parser = host("EMAIL_HOST"))]
    pub email_host: Option<String>,
    /// SMTP port, 1 to 65535 (587 for submission with STARTTLS).
    #[arg(long, env = "EMAIL_PORT", value_name = "PORT", default_value_t = 25,
          value_parser = number::<u16>("EMAIL_PORT", 1..=65535))]
    pub email_port: u16,
    /// True/False: upgrade every SMTP connection with STARTTLS, and send nothing without it.
    /// Default: False.
    #[arg(long, env = "EMAIL_USE_TLS", value_name = "BOOL", value_parser = boolean("EMAIL_USE_TLS"))]
    pub email_use_tls: Option<bool>,
    /// User to sign in to the SMTP server as. Unset: no sign-in.
    #[arg(long, env = "EMAIL_HOST_USER", value_name = "USER", value_parser = text("EMAIL_HOST_USER"))]
    pub email_host_user: Option<String>,
    /// Password of EMAIL_HOST_USER. Set it in the environment.
    #[arg(long, env = "EMAIL_HOST_PASSWORD", hide_env_values = true, value_name = "SECRET",
          value_parser = secret("EMAIL_HOST_PASSWORD"))]
    pub email_host_password: Option<SecretString>,
    /// Sender of every mail: `cash@example.com` or `Petty Cash <cash@example.com>`. Its domain
    /// names the messages (`Message-ID: <outbox-42@example.com>`).
    #[arg(long, env = "DEFAULT_FROM_EMAIL", value_name = "ADDRESS", default_value = DEFAULT_FROM_EMAIL,
          value_parser = mailbox("DEFAULT_FROM_EMAIL"))]
    pub default_from_email: Mailbox,
    /// Where the service's pages are, for the links in mail: `https://cash.example.com`.
    /// Default: http://BIND in `serve`, http://127.0.0.1:8000 in `project`.
    #[arg(long, env = "PUBLIC_URL", value_name = "URL", value_parser = public_url("PUBLIC_URL"))]
    pub public_url: Option<String>,
}

/// Everything `serve` reads.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Do not run the projection workers in this process (run `pettycash project` elsewhere).
    #[arg(long)]
    pub no_projections: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub sealing: SealArgs,
    #[command(flatten)]
    pub mail: MailArgs,
    #[command(flatten)]
    pub storage: pettycash_commands::receipts::StorageArgs,
}

/// The resolved settings of one command.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: the embedded default, a private PostgreSQL cluster under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Keys the session-token hashes: `Some` in `serve`, `None` in commands that sign no
    /// session (they neither need nor invent one).
    pub secret_key: Option<SecretString>,
    pub debug: bool,
    /// Host names the service answers to. `*` allows any; `.example.com` allows subdomains.
    pub allowed_hosts: Vec<String>,
    pub cors_allowed_origins: Vec<String>,
    pub bind: SocketAddr,
    /// Where the embedded default keeps its database and demo logins (`./var`).
    pub data_dir: PathBuf,
    pub embedded_pg_port: u16,
    /// `TOKIO_WORKER_THREADS`; `None`: see [`Config::runtime_threads`].
    pub worker_threads: Option<usize>,
    pub session_hours: u32,
    /// Maximum database connections of requests (and of everything in commands other than
    /// `serve`).
    pub db_pool_size: u32,
    /// Maximum database connections of `serve`'s background work (its own pool).
    pub worker_pool_size: u32,
    /// Run the projection workers inside `serve` (off with `--no-projections`).
    pub run_projections: bool,
    /// Longest a query waits for `min_position` before answering 503.
    pub min_position_wait_ms: u64,
    /// Seconds between the scheduler's ticks (`SCHEDULER_INTERVAL_SECS`).
    pub scheduler_interval_secs: u64,
    /// `PAYMENT_PROVIDER`: `simulator` or `daraja`.
    pub payment_provider: String,
    /// `PAYMENT_PROVIDER_SECRET`; `None`: derived from the session secret.
    pub payment_provider_secret: Option<SecretString>,
    /// `PAYMENT_SIMULATOR_DELAY_MS`.
    pub payment_simulator_delay_ms: u64,
    /// `DARAJA_*` (read with `PAYMENT_PROVIDER=daraja`, see [`Config::daraja`]).
    pub daraja: DarajaSettings,
    /// The secret events are authenticated and the event store sealed with: `SEAL_KEY`, else
    /// `SECRET_KEY` (`None` without either: such a process neither writes events nor seals).
    pub seal_secret: Option<SecretString>,
    /// Seconds between seals when the sealer has caught up (`SEAL_INTERVAL_SECS`).
    pub seal_interval_secs: u64,
    /// How long a session lookup is reused, in milliseconds (0 looks every request up).
    pub session_cache_ms: u64,
    /// Aggregates the command service keeps in memory (0 loads every aggregate from the store).
    pub aggregate_cache_size: usize,
    /// Sign-in throttling: the built-in policy (not read from the environment yet).
    pub login_throttle: pettycash_commands::throttle::ThrottlePolicy,
    /// Where mail goes and what it links to (`serve`, `project`).
    pub mail: MailConfig,
    /// Where receipt files are kept: `MEDIA_ROOT` (default `media` under `data_dir`) or an
    /// S3-compatible bucket (`MEDIA_S3_*`).
    pub media: pettycash_commands::receipts::StorageConfig,
}

/// The mail settings, resolved.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: MailTransportConfig,
    /// `DEFAULT_FROM_EMAIL`.
    pub from: Mailbox,
    /// `PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    /// Polling, claims and backoff of the sender: the built-in values (not read from the
    /// environment; tests shorten them).
    pub sender: pettycash_commands::mail::sender::SenderOptions,
}

/// Where this process's mail sender delivers.
#[derive(Debug, Clone)]
pub enum MailTransportConfig {
    /// `EMAIL_HOST` is set.
    Smtp { host: String, port: u16, starttls: bool, user: Option<String>, password: Option<SecretString> },
    /// No `EMAIL_HOST`, DEBUG on: `.eml` files in this folder (`PETTYCASH_DATA_DIR/mail`).
    Folder(PathBuf),
    /// No `EMAIL_HOST`, DEBUG off: no sender; mail waits in the outbox (and `/health/` counts
    /// it) until `EMAIL_HOST` is set. Refusing to start instead would take a running service
    /// down at an upgrade for want of a setting that nothing else depends on.
    Queue,
}

impl MailConfig {
    /// `args` resolved: SMTP when `EMAIL_HOST` is set, else the folder under `data_dir` with
    /// `debug`, else the queue. `default_url`: `PUBLIC_URL` when unset.
    fn resolve(
        args: MailArgs,
        debug: bool,
        data_dir: &std::path::Path,
        default_url: String,
    ) -> Result<Self, ConfigError> {
        let password = non_empty(args.email_host_password);
        let user = args.email_host_user.filter(|u| !u.is_empty());
        if password.is_some() && user.is_none() {
            return Err(ConfigError::Invalid {
                name: "EMAIL_HOST_USER",
                message: "must be set when EMAIL_HOST_PASSWORD is (the user the password is for)".into(),
            });
        }
        // An empty variable (`EMAIL_HOST=` in an environment file) counts as unset.
        let transport = match args.email_host.filter(|h| !h.is_empty()) {
            Some(host) => MailTransportConfig::Smtp {
                host,
                port: args.email_port,
                starttls: args.email_use_tls.unwrap_or(false),
                user,
                password,
            },
            None if debug => MailTransportConfig::Folder(data_dir.join("mail")),
            None => MailTransportConfig::Queue,
        };
        Ok(Self {
            transport,
            from: args.default_from_email,
            public_url: args.public_url.unwrap_or(default_url),
            sender: Default::default(),
        })
    }

    /// The links mail carries.
    pub fn links(&self) -> pettycash_commands::mail::Links {
        pettycash_commands::mail::Links::new(&self.public_url)
    }
}

/// A configuration that parses but is refused as a whole (a value alone cannot say: the rules
/// about keys depend on `DEBUG`).
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

impl Config {
    /// The configuration of a command that reads only [`CommonArgs`]: no secret, no key, the
    /// HTTP, sealing and mail settings at their defaults.
    pub fn new(common: CommonArgs) -> Self {
        Self::assemble(common, defaults(), defaults())
    }

    /// Everything `serve` reads; refuses a missing or weak `SECRET_KEY` with `DEBUG` off.
    pub fn for_serve(args: ServeArgs) -> Result<Self, ConfigError> {
        let mut config = Self::assemble(args.common, args.http, args.sealing);
        config.secret_key = Some(session_secret(args.keys.secret_key.clone(), config.debug)?);
        config.run_projections = !args.no_projections;
        let default_url = format!("http://{}", config.bind);
        let public_url_set = args.mail.public_url.is_some();
        config.mail = MailConfig::resolve(args.mail, config.debug, &config.data_dir, default_url)?;
        config.media = args.storage.resolve(&config.data_dir);
        if config.payment_provider == "daraja" {
            if !public_url_set {
                return Err(ConfigError::Invalid {
                    name: "PUBLIC_URL",
                    message: "must be set with PAYMENT_PROVIDER=daraja (Daraja calls back there)".into(),
                });
            }
            config.daraja()?;
        }
        config.with_keys(args.keys)
    }

    /// The Daraja provider's configuration, refusing every missing `DARAJA_*` setting (and
    /// `PAYMENT_PROVIDER_SECRET`, the callback token) by name.
    pub fn daraja(&self) -> Result<pettycash_commands::providers::daraja::DarajaConfig, ConfigError> {
        let d = &self.daraja;
        let token = self.payment_provider_secret.as_ref();
        let missing: Vec<&str> = [
            ("DARAJA_CONSUMER_KEY", d.consumer_key.is_none()),
            ("DARAJA_CONSUMER_SECRET", d.consumer_secret.is_none()),
            ("DARAJA_INITIATOR_NAME", d.initiator_name.is_none()),
            ("DARAJA_SECURITY_CREDENTIAL", d.security_credential.is_none()),
            ("DARAJA_SHORT_CODE", d.short_code.is_none()),
            ("PAYMENT_PROVIDER_SECRET", token.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid {
                name: "PAYMENT_PROVIDER",
                message: format!("daraja needs {} (unset)", missing.join(", ")),
            });
        }
        let secret =
            |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_string()).unwrap_or_default();
        Ok(pettycash_commands::providers::daraja::DarajaConfig {
            base_url: d.base_url.trim_end_matches('/').to_string(),
            consumer_key: secret(&d.consumer_key),
            consumer_secret: secret(&d.consumer_secret),
            initiator_name: d.initiator_name.clone().unwrap_or_default().trim().to_string(),
            security_credential: secret(&d.security_credential),
            short_code: d.short_code.clone().unwrap_or_default().trim().to_string(),
            public_url: self.mail.public_url.trim_end_matches('/').to_string(),
            callback_token: secret(&self.payment_provider_secret),
        })
    }

    /// Takes the mail settings from `mail` (`project`: its links default to the default `BIND`).
    pub fn with_mail(mut self, mail: MailArgs) -> Result<Self, ConfigError> {
        let default_url = format!("http://{DEFAULT_BIND}");
        self.mail = MailConfig::resolve(mail, self.debug, &self.data_dir, default_url)?;
        Ok(self)
    }

    /// Everything but the keys.
    fn assemble(common: CommonArgs, http: HttpArgs, sealing: SealArgs) -> Self {
        let database_url = common.database_url.filter(|url| !url.expose_secret().trim().is_empty());
        // Without DATABASE_URL this is the embedded development default: DEBUG defaults on.
        // With a database configured it defaults off, so production never runs in debug by
        // omission.
        let debug = common.debug.unwrap_or(database_url.is_none());
        let mut allowed_hosts = list(http.allowed_hosts.as_deref());
        if allowed_hosts.is_empty() {
            allowed_hosts = if debug {
                vec!["*".into()]
            } else {
                vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
            };
        }
        let mail = MailConfig::resolve(defaults(), debug, &common.data_dir, format!("http://{}", http.bind))
            .expect("the default mail settings are valid");
        let media = pettycash_commands::receipts::StorageArgs::default().resolve(&common.data_dir);
        Self {
            database_url,
            secret_key: None,
            debug,
            allowed_hosts,
            cors_allowed_origins: list(http.cors_allowed_origins.as_deref()),
            bind: http.bind,
            data_dir: common.data_dir,
            embedded_pg_port: common.embedded_pg_port,
            worker_threads: common.worker_threads,
            session_hours: http.session_hours,
            db_pool_size: common.database_pool_size,
            worker_pool_size: common.database_worker_pool_size,
            run_projections: true,
            min_position_wait_ms: http.min_position_wait_ms,
            scheduler_interval_secs: http.scheduler_interval_secs,
            payment_provider: http.payment_provider,
            payment_provider_secret: http.payment_provider_secret.filter(|s| !s.is_empty()).map(Into::into),
            payment_simulator_delay_ms: http.payment_simulator_delay_ms,
            daraja: DarajaSettings {
                base_url: http.daraja_base_url,
                consumer_key: http.daraja_consumer_key.filter(|s| !s.is_empty()).map(Into::into),
                consumer_secret: http.daraja_consumer_secret.filter(|s| !s.is_empty()).map(Into::into),
                initiator_name: http.daraja_initiator_name.filter(|s| !s.trim().is_empty()),
                security_credential: http
                    .daraja_security_credential
                    .filter(|s| !s.is_empty())
                    .map(Into::into),
                short_code: http.daraja_short_code.filter(|s| !s.trim().is_empty()),
            },
            seal_secret: None,
            seal_interval_secs: sealing.seal_interval_secs,
            session_cache_ms: http.session_cache_ms,
            aggregate_cache_size: http.aggregate_cache_size,
            login_throttle: Default::default(),
            media,
            mail,
        }
    }

    /// The embedded development default of `serve`, as with an empty environment. Tests start
    /// from it.
    pub fn development() -> Self {
        Self::for_serve(defaults()).expect("the defaults are a valid development configuration")
    }

    /// Takes the event and seal key from `keys`: `SEAL_KEY`, else `SECRET_KEY` when it would do
    /// for `serve` (so the development key only while `DEBUG` is on), else none.
    pub fn with_keys(mut self, keys: KeyArgs) -> Result<Self, ConfigError> {
        self.seal_secret = match non_empty(keys.seal_key) {
            Some(key) if !self.debug && key.expose_secret().len() < 32 => {
                return Err(ConfigError::Invalid {
                    name: "SEAL_KEY",
                    message: "shorter than 32 characters".into(),
                })
            }
            Some(key) => Some(key),
            None => session_secret(keys.secret_key, self.debug).ok(),
        };
        Ok(self)
    }

    pub fn with_sealing(mut self, sealing: SealArgs) -> Self {
        self.seal_interval_secs = sealing.seal_interval_secs;
        self
    }

    /// Threads of the async runtime: `TOKIO_WORKER_THREADS`, else
    /// [`crate::database::runtime_threads`].
    pub fn runtime_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            crate::database::runtime_threads(
                self.database_url.as_ref().map(|url| url.expose_secret().to_string()),
            )
        })
    }

    /// The key seals are made with, when one is configured.
    pub fn seal_key(&self) -> Option<pettycash_projections::seal::SealKey> {
        self.seal_secret
            .as_ref()
            .map(|secret| pettycash_projections::seal::SealKey::derive(secret.expose_secret()))
    }

    /// The key events and snapshots are authenticated with (same secret as the seals), or an
    /// error naming what to set: nothing may write events without it.
    pub fn event_key(&self) -> anyhow::Result<pettycash_domain::integrity::EventKey> {
        self.seal_secret
            .as_ref()
            .map(|secret| pettycash_domain::integrity::EventKey::derive(secret.expose_secret()))
            .ok_or_else(|| {
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

/// The secret that keys session tokens. With `DEBUG` off it must be the service's own: set,
/// at least 32 characters and not the development key; with `DEBUG` on an unset one is the
/// development key.
fn session_secret(secret: Option<SecretString>, debug: bool) -> Result<SecretString, ConfigError> {
    match non_empty(secret) {
        Some(key) if !debug && key.expose_secret() == DEV_SECRET_KEY => {
            Err(ConfigError::BadSecretKey("the development default"))
        }
        Some(key) if !debug && key.expose_secret().len() < 32 => {
            Err(ConfigError::BadSecretKey("shorter than 32 characters"))
        }
        Some(key) => Ok(key),
        None if debug => Ok(DEV_SECRET_KEY.into()),
        None => Err(ConfigError::BadSecretKey("not set")),
    }
}

/// An empty variable (`SEAL_KEY=` in an environment file) counts as unset.
fn non_empty(secret: Option<SecretString>) -> Option<SecretString> {
    secret.filter(|s| !s.expose_secret().is_empty())
}

fn list(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// `A` with every setting at its default, whatever the process environment holds.
fn defaults<A: Args + FromArgMatches>() -> A {
    let command = with_env(A::augment_args(Command::new("defaults")), &|_| None);
    let matches = command.try_get_matches_from(["defaults"]).expect("every default is valid");
    A::from_arg_matches(&matches).expect("every default is valid")
}

/// `command` and its subcommands reading their settings from `env` instead of the process
/// environment. clap reads the environment when an argument is declared, and changing the
/// process environment in tests that run in parallel is a data race; here each value of `env`
/// becomes the argument's default instead, which is parsed (and refused) like a value from the
/// environment.
pub fn with_env(command: Command, env: &dyn Fn(&str) -> Option<String>) -> Command {
    command
        .mut_args(|arg| {
            let value = arg.get_env().and_then(|name| name.to_str()).and_then(env);
            let arg = arg.env(Resettable::Reset);
            match value {
                Some(value) => arg.default_value(value),
                None => arg,
            }
        })
        .mut_subcommands(|sub| with_env(sub, env))
}

// ----- value parsers -------------------------------------------------------------------------

/// A value parser whose errors name the environment variable: "invalid value '-1' for
/// DATABASE_POOL_SIZE: must be between 1 and 1000" (or the `--flag`, for a value given on the
/// command line). clap's own parsers name only the flag, even for a value read from the
/// environment. The name is given here again, not read from the argument, because
/// [`with_env`] takes the variable off the argument; the test
/// `every_setting_names_its_variable` checks that the two agree.
#[derive(Clone)]
pub struct Setting<T> {
    name: &'static str,
    /// A secret is never repeated in an error.
    secret: bool,
    parse: Parse<T>,
}

/// Text to value, or why not.
type Parse<T> = Arc<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

impl<T> Setting<T> {
    fn new(name: &'static str, parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static) -> Self {
        Self { name, secret: false, parse: Arc::new(parse) }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Setting<T> {
    type Value = T;

    fn parse_ref(&self, command: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        self.parse_ref_(command, arg, value, ValueSource::EnvVariable)
    }

    fn parse_ref_(
        &self,
        command: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<T, clap::Error> {
        let parsed = match value.to_str() {
            Some(text) => (self.parse)(text),
            None => Err("not valid UTF-8".to_string()),
        };
        parsed.map_err(|why| {
            let name = match (source, arg.and_then(Arg::get_long)) {
                (ValueSource::CommandLine, Some(long)) => format!("--{long}"),
                _ => self.name.to_string(),
            };
            let message = if self.secret {
                format!("invalid value for {name}: {why}")
            } else {
                format!("invalid value '{}' for {name}: {why}", value.to_string_lossy())
            };
            clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n")).with_cmd(command)
        })
    }
}

/// A whole number in `range`. The range must fit `T` (checked when the argument is declared):
/// the value is then converted without truncation.
pub fn number<T>(name: &'static str, range: RangeInclusive<i64>) -> Setting<T>
where
    T: TryFrom<i64> + Clone + Send + Sync + 'static,
{
    let (min, max) = (*range.start(), *range.end());
    assert!(
        T::try_from(min).is_ok() && T::try_from(max).is_ok(),
        "{name}: {min}..={max} does not fit its type"
    );
    Setting::new(name, move |text| {
        let out_of_range = || format!("must be between {min} and {max}");
        let value: i64 = text.trim().parse().map_err(|e: std::num::ParseIntError| match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => out_of_range(),
            _ => format!("must be a whole number between {min} and {max}"),
        })?;
        if !range.contains(&value) {
            return Err(out_of_range());
        }
        T::try_from(value).map_err(|_| out_of_range())
    })
}

/// A payment provider's name: `simulator` or `daraja`.
fn payment_provider(text: &str) -> Result<String, String> {
    match text.trim() {
        "simulator" => Ok("simulator".into()),
        "daraja" => Ok("daraja".into()),
        _ => Err("must be `simulator` or `daraja`".into()),
    }
}

/// The `DARAJA_*` settings as read (all but the address optional: required only with
/// `PAYMENT_PROVIDER=daraja`, see [`Config::daraja`]).
#[derive(Debug, Clone)]
pub struct DarajaSettings {
    pub base_url: String,
    pub consumer_key: Option<SecretString>,
    pub consumer_secret: Option<SecretString>,
    pub initiator_name: Option<String>,
    pub security_credential: Option<SecretString>,
    pub short_code: Option<String>,
}

/// Django-style booleans: True/False, true/false, 1/0, yes/no, on/off (empty: false).
pub fn boolean(name: &'static str) -> Setting<bool> {
    Setting::new(name, |text| match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err("must be True or False (also 1/0, yes/no, on/off)".into()),
    })
}

/// `host:port`, e.g. `127.0.0.1:8000` or `[::1]:8000`.
pub fn address(name: &'static str) -> Setting<SocketAddr> {
    Setting::new(name, |text| {
        text.trim().parse().map_err(|_| "must be an IP address and port, e.g. 127.0.0.1:8000".to_string())
    })
}

/// Any text.
pub fn text(name: &'static str) -> Setting<String> {
    Setting::new(name, |text| Ok(text.to_string()))
}

/// A path, not empty.
pub fn path(name: &'static str) -> Setting<PathBuf> {
    Setting::new(name, |text| {
        if text.is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(PathBuf::from(text))
        }
    })
}

/// A host name or address, without spaces, a scheme or a port (empty: unset).
pub fn host(name: &'static str) -> Setting<String> {
    Setting::new(name, |text| {
        let host = text.trim();
        if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') || host.starts_with(':') {
            Err("must be a host name or address, e.g. smtp.example.com (the port is EMAIL_PORT)".into())
        } else {
            Ok(host.to_string())
        }
    })
}

/// A mail address, optionally with a name: `cash@example.com`, `Petty Cash <cash@example.com>`.
pub fn mailbox(name: &'static str) -> Setting<Mailbox> {
    Setting::new(name, |text| {
        text.trim().parse::<Mailbox>().map_err(|e| {
            format!(
                "must be a mail address such as cash@example.com or `Petty Cash <cash@example.com>` ({e})"
            )
        })
    })
}

/// An `http://` or `https://` URL with a host and no query or fragment; a trailing slash is
/// dropped.
pub fn public_url(name: &'static str) -> Setting<String> {
    Setting::new(name, |text| {
        let url = text.trim().trim_end_matches('/');
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.starts_with('/')
                    && !rest.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') =>
            {
                Ok(url.to_string())
            }
            _ => Err("must be an http:// or https:// URL such as https://cash.example.com".into()),
        }
    })
}

/// A secret: kept in a [`SecretString`] and never repeated in an error.
pub fn secret(name: &'static str) -> Setting<SecretString> {
    Setting { secret: true, ..Setting::new(name, |text| Ok(SecretString::from(text))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    /// `pettycash <args>` with exactly the environment `env`.
    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let argv = std::iter::once("pettycash").chain(args.iter().copied());
        Cli::try_parse_with_env(argv, lookup).map_err(|e| e.to_string())
    }

    /// The configuration of `pettycash <args>` with the environment `env`, or the error.
    fn config_of(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        parse(args, env)?.command.config().map_err(|e| e.to_string())
    }

    fn serve(env: &[(&str, &str)]) -> Result<Config, String> {
        config_of(&["serve"], env)
    }

    #[test]
    fn receipts_go_under_the_data_dir_or_media_root_or_to_an_s3_bucket() {
        use pettycash_commands::receipts::{S3Config, StorageConfig};
        assert_eq!(serve(&[]).unwrap().media, StorageConfig::Local("var/media".into()));
        let c = serve(&[("PETTYCASH_DATA_DIR", "/srv/pc")]).unwrap();
        assert_eq!(c.media, StorageConfig::Local("/srv/pc/media".into()));
        let c = serve(&[("MEDIA_ROOT", "/data/receipts"), ("MEDIA_S3_BUCKET", "")]).unwrap();
        assert_eq!(c.media, StorageConfig::Local("/data/receipts".into()));
        let c = serve(&[
            ("MEDIA_S3_BUCKET", "cash-receipts"),
            ("MEDIA_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("MEDIA_S3_ACCESS_KEY_ID", "AKIA1"),
            ("MEDIA_S3_SECRET_ACCESS_KEY", "s3cr3t"),
        ])
        .unwrap();
        let expected = S3Config {
            bucket: "cash-receipts".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            access_key_id: Some("AKIA1".into()),
            secret_access_key: Some("s3cr3t".into()),
            allow_http: true,
        };
        assert_eq!(c.media, StorageConfig::S3(expected));
        assert!(!format!("{:?}", c.media).contains("s3cr3t"), "Debug never shows the secret");
        let error = serve(&[("MEDIA_S3_BUCKET", "Not_A_Bucket")]).unwrap_err();
        assert!(error.contains("for MEDIA_S3_BUCKET: "), "{error}");
    }

    #[test]
    fn no_configuration_is_the_embedded_debug_default() {
        let c = serve(&[]).unwrap();
        assert!(c.debug);
        assert!(c.database_url.is_none());
        assert_eq!(c.secret_key.as_ref().map(|s| s.expose_secret()), Some(DEV_SECRET_KEY));
        assert_eq!(c.seal_secret.as_ref().map(|s| s.expose_secret()), Some(DEV_SECRET_KEY));
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!(c.allowed_hosts, ["*"]);
        assert_eq!(
            (c.db_pool_size, c.session_hours, c.min_position_wait_ms, c.seal_interval_secs),
            (20, 12, 3000, 10)
        );
        assert_eq!((c.session_cache_ms, c.aggregate_cache_size), (2000, 8192));
        assert_eq!((c.embedded_pg_port, c.data_dir.clone(), c.worker_threads), (54329, "var".into(), None));
        assert!(c.run_projections);
    }

    #[test]
    fn development_config_is_the_serve_default_whatever_the_process_environment() {
        let c = Config::development();
        assert!(c.debug && c.database_url.is_none() && c.run_projections);
        assert_eq!(c.secret_key.as_ref().map(|s| s.expose_secret()), Some(DEV_SECRET_KEY));
        assert_eq!((c.db_pool_size, c.worker_pool_size), (20, 4));
    }

    #[test]
    fn a_full_production_configuration_parses() {
        let secret = "s".repeat(40);
        let seal = "t".repeat(40);
        let c = serve(&[
            ("DATABASE_URL", "postgres://app:pw@db.internal:5432/pettycash"),
            ("SECRET_KEY", &secret),
            ("SEAL_KEY", &seal),
            ("DEBUG", "False"),
            ("ALLOWED_HOSTS", "cash.example.com, 127.0.0.1"),
            ("CORS_ALLOWED_ORIGINS", ""),
            ("BIND", "127.0.0.1:8001"),
            ("SESSION_HOURS", "8760"),
            ("DATABASE_POOL_SIZE", "1000"),
            ("DATABASE_WORKER_POOL_SIZE", "12"),
            ("MIN_POSITION_WAIT_MS", "0"),
            ("SEAL_INTERVAL_SECS", "86400"),
            ("SESSION_CACHE_MS", "0"),
            ("AGGREGATE_CACHE_SIZE", "0"),
            ("TOKIO_WORKER_THREADS", "2"),
            ("PETTYCASH_EMBEDDED_PG_PORT", "65535"),
            ("PETTYCASH_DATA_DIR", "/var/lib/pettycash"),
            ("EMAIL_HOST", "smtp.example.com"),
            ("EMAIL_PORT", "587"),
            ("EMAIL_USE_TLS", "True"),
            ("EMAIL_HOST_USER", "cash"),
            ("EMAIL_HOST_PASSWORD", "smtp-password"),
            ("DEFAULT_FROM_EMAIL", "Petty Cash <cash@example.com>"),
            ("PUBLIC_URL", "https://cash.example.com/"),
        ])
        .unwrap();
        assert!(!c.debug);
        assert_eq!(
            c.database_url.as_ref().unwrap().expose_secret(),
            "postgres://app:pw@db.internal:5432/pettycash"
        );
        assert_eq!(c.secret_key.as_ref().unwrap().expose_secret(), secret);
        assert_eq!(c.seal_secret.as_ref().unwrap().expose_secret(), seal);
        assert_eq!(c.allowed_hosts, ["cash.example.com", "127.0.0.1"]);
        assert!(c.cors_allowed_origins.is_empty());
        assert_eq!(c.bind.to_string(), "127.0.0.1:8001");
        assert_eq!((c.session_hours, c.db_pool_size, c.min_position_wait_ms), (8760, 1000, 0));
        assert_eq!(c.worker_pool_size, 12);
        assert_eq!((c.seal_interval_secs, c.session_cache_ms, c.aggregate_cache_size), (86400, 0, 0));
        assert_eq!((c.worker_threads, c.runtime_threads()), (Some(2), 2));
        assert_eq!((c.embedded_pg_port, c.data_dir.to_str()), (65535, Some("/var/lib/pettycash")));
        match &c.mail.transport {
            MailTransportConfig::Smtp { host, port, starttls, user, password } => {
                assert_eq!(
                    (host.as_str(), *port, *starttls, user.as_deref()),
                    ("smtp.example.com", 587, true, Some("cash"))
                );
                assert_eq!(password.as_ref().map(|p| p.expose_secret()), Some("smtp-password"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.mail.from.to_string(), "Petty Cash <cash@example.com>");
        assert_eq!(c.mail.public_url, "https://cash.example.com");
    }

    #[test]
    fn without_email_host_mail_goes_to_a_folder_in_development_and_waits_in_production() {
        let dev = serve(&[("PETTYCASH_DATA_DIR", "/tmp/pc"), ("BIND", "127.0.0.1:9000"), ("EMAIL_HOST", "")])
            .unwrap();
        assert!(
            matches!(&dev.mail.transport, MailTransportConfig::Folder(dir) if dir.to_str() == Some("/tmp/pc/mail"))
        );
        assert_eq!(dev.mail.public_url, "http://127.0.0.1:9000", "links default to the bind address");
        assert_eq!(dev.mail.from.email.to_string(), DEFAULT_FROM_EMAIL);
        assert_eq!(crate::mail::sender_kind(&dev), "folder");

        let production = serve(&[("DEBUG", "False"), ("SECRET_KEY", &"k".repeat(40))]).unwrap();
        assert!(matches!(production.mail.transport, MailTransportConfig::Queue));
        assert_eq!(crate::mail::sender_kind(&production), "off");
        assert!(crate::mail::transport(&production).unwrap().is_none(), "no sender: mail waits");

        let project = config_of(&["project"], &[("EMAIL_HOST", "mail.internal")]).unwrap();
        assert!(matches!(
            &project.mail.transport,
            MailTransportConfig::Smtp { port: 25, starttls: false, user: None, .. }
        ));
        assert_eq!(project.mail.public_url, "http://127.0.0.1:8000");
        let no_workers =
            config_of(&["serve", "--no-projections"], &[("EMAIL_HOST", "mail.internal")]).unwrap();
        assert_eq!(crate::mail::sender_kind(&no_workers), "off");
    }

    #[test]
    fn mail_settings_are_checked_naming_the_variable() {
        for (name, value, why) in [
            ("PUBLIC_URL", "cash.example.com", "must be an http:// or https:// URL"),
            ("PUBLIC_URL", "https://cash.example.com/?x=1", "must be an http:// or https:// URL"),
            ("DEFAULT_FROM_EMAIL", "nobody", "must be a mail address"),
            ("EMAIL_HOST", "smtp://mail.example.com", "must be a host name or address"),
            ("EMAIL_USE_TLS", "sometimes", "must be True or False"),
        ] {
            let error = config_of(&["project"], &[(name, value)]).unwrap_err();
            assert!(error.contains(&format!("invalid value '{value}' for {name}: {why}")), "{error}");
        }
        let error = serve(&[("EMAIL_HOST", "mail.internal"), ("EMAIL_HOST_PASSWORD", "pw")]).unwrap_err();
        assert!(
            error.contains("EMAIL_HOST_USER is not valid: must be set when EMAIL_HOST_PASSWORD is"),
            "{error}"
        );
    }

    #[test]
    fn flags_override_the_environment() {
        let c = config_of(
            &["serve", "--bind", "127.0.0.1:9000", "--no-projections"],
            &[("BIND", "127.0.0.1:8001")],
        )
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert!(!c.run_projections);
    }

    #[test]
    fn reported_crashes_are_refused_naming_the_variable() {
        for (name, value, range) in [
            ("DATABASE_POOL_SIZE", "-1", "between 1 and 1000"),
            ("SESSION_HOURS", "99999999999999", "between 1 and 8760"),
            ("MIN_POSITION_WAIT_MS", "-5", "between 0 and 60000"),
        ] {
            let error = serve(&[(name, value)]).unwrap_err();
            assert!(
                error.contains(&format!("invalid value '{value}' for {name}: must be {range}")),
                "{error}"
            );
            assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
        }
    }

    /// Every numeric setting: its bounds parse, one past them and text do not, and the error
    /// names the variable and the range.
    #[test]
    fn every_numeric_setting_is_checked_against_its_range() {
        let settings: [(&str, i64, i64); 10] = [
            ("EMAIL_PORT", 1, 65535),
            ("DATABASE_POOL_SIZE", 1, 1000),
            ("DATABASE_WORKER_POOL_SIZE", 1, 1000),
            ("TOKIO_WORKER_THREADS", 1, 1024),
            ("PETTYCASH_EMBEDDED_PG_PORT", 1, 65535),
            ("SEAL_INTERVAL_SECS", 1, 86_400),
            ("SESSION_HOURS", 1, 8760),
            ("SESSION_CACHE_MS", 0, 3_600_000),
            ("AGGREGATE_CACHE_SIZE", 0, 1_000_000),
            ("MIN_POSITION_WAIT_MS", 0, 60_000),
        ];
        for (name, min, max) in settings {
            for good in [min, max] {
                assert!(serve(&[(name, &good.to_string())]).is_ok(), "{name}={good} should parse");
            }
            for bad in [(min - 1).to_string(), (max + 1).to_string(), "99999999999999999999999".into()] {
                let error = serve(&[(name, &bad)]).unwrap_err();
                let expected = format!("invalid value '{bad}' for {name}: must be between {min} and {max}");
                assert!(error.contains(&expected), "{name}={bad}: {error}");
            }
            let error = serve(&[(name, "ten")]).unwrap_err();
            assert!(error.contains(&format!("for {name}: must be a whole number")), "{error}");
        }
    }

    /// The name a parser reports is the variable its argument reads: an unparsable value for
    /// each such argument, in each command, names its own variable.
    #[test]
    fn every_setting_names_its_variable() {
        use clap::CommandFactory;
        /// The arguments a command requires besides its settings.
        fn required(path: &[String]) -> &'static [&'static str] {
            match path.join(" ").as_str() {
                "user add" => {
                    &["--email", "a@example.com", "--name", "A", "--role", "staff", "--password-stdin"]
                }
                "user password" => &["--email", "a@example.com", "--password-stdin"],
                _ => &[],
            }
        }
        fn check(command: &Command, path: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let Some(name) = arg.get_env().and_then(|n| n.to_str()) else { continue };
                // Invalid for every setting but text and secrets, which take anything (a path
                // takes anything but the empty text).
                let bad =
                    if ["PETTYCASH_DATA_DIR", "MEDIA_ROOT"].contains(&name) { "" } else { "not a value" };
                let args: Vec<&str> =
                    path.iter().map(String::as_str).chain(required(path).iter().copied()).collect();
                match parse(&args, &[(name, bad)]) {
                    Err(error) => {
                        assert!(error.contains(&format!(" for {name}: ")), "{args:?} {name}: {error}")
                    }
                    Ok(_) => assert!(
                        [
                            "DATABASE_URL",
                            "SECRET_KEY",
                            "SEAL_KEY",
                            "ALLOWED_HOSTS",
                            "CORS_ALLOWED_ORIGINS",
                            "EMAIL_HOST_USER",
                            "EMAIL_HOST_PASSWORD",
                            "MEDIA_S3_SECRET_ACCESS_KEY",
                            "PAYMENT_PROVIDER_SECRET",
                            "DARAJA_CONSUMER_KEY",
                            "DARAJA_CONSUMER_SECRET",
                            "DARAJA_INITIATOR_NAME",
                            "DARAJA_SECURITY_CREDENTIAL",
                            "DARAJA_SHORT_CODE"
                        ]
                        .contains(&name),
                        "{args:?}: `{bad}` accepted for {name}"
                    ),
                }
            }
            for sub in command.get_subcommands() {
                path.push(sub.get_name().to_string());
                check(sub, path);
                path.pop();
            }
        }
        check(&Cli::command(), &mut Vec::new());
    }

    #[test]
    fn daraja_needs_its_settings_each_missing_one_named() {
        let error =
            serve(&[("PAYMENT_PROVIDER", "daraja"), ("PUBLIC_URL", "https://cash.example.com")]).unwrap_err();
        for name in [
            "DARAJA_CONSUMER_KEY",
            "DARAJA_CONSUMER_SECRET",
            "DARAJA_INITIATOR_NAME",
            "DARAJA_SECURITY_CREDENTIAL",
            "DARAJA_SHORT_CODE",
            "PAYMENT_PROVIDER_SECRET",
        ] {
            assert!(error.contains(name), "{name}: {error}");
        }
        let full = [
            ("PAYMENT_PROVIDER", "daraja"),
            ("PUBLIC_URL", "https://cash.example.com/"),
            ("DARAJA_CONSUMER_KEY", "key"),
            ("DARAJA_CONSUMER_SECRET", "secret"),
            ("DARAJA_INITIATOR_NAME", "testapi"),
            ("DARAJA_SECURITY_CREDENTIAL", "CRED=="),
            ("DARAJA_SHORT_CODE", "600997"),
            ("PAYMENT_PROVIDER_SECRET", "tok"),
        ];
        let partial: Vec<_> = full.iter().copied().filter(|(n, _)| *n != "DARAJA_SHORT_CODE").collect();
        let error = serve(&partial).unwrap_err();
        assert!(error.contains("DARAJA_SHORT_CODE") && !error.contains("DARAJA_CONSUMER_KEY"), "{error}");
        let no_url: Vec<_> = full.iter().copied().filter(|(n, _)| *n != "PUBLIC_URL").collect();
        assert!(serve(&no_url).unwrap_err().contains("PUBLIC_URL"));
        let c = serve(&full).unwrap();
        let d = c.daraja().unwrap();
        assert_eq!(d.base_url, "https://sandbox.safaricom.co.ke");
        assert_eq!(d.callback_url(), "https://cash.example.com/api/providers/daraja/callback?token=tok");
        assert_eq!((d.short_code.as_str(), d.initiator_name.as_str()), ("600997", "testapi"));
        let error = serve(&[("PAYMENT_PROVIDER", "paypal")]).unwrap_err();
        assert!(error.contains("PAYMENT_PROVIDER"), "{error}");
    }

    #[test]
    fn a_value_given_as_a_flag_is_named_by_its_flag() {
        let error = parse(&["serve", "--database-pool-size", "0"], &[]).unwrap_err();
        assert!(
            error.contains("invalid value '0' for --database-pool-size: must be between 1 and 1000"),
            "{error}"
        );
    }

    #[test]
    fn production_refuses_missing_short_or_default_secret_key() {
        let missing = serve(&[("DEBUG", "False")]).unwrap_err();
        assert!(missing.contains("SECRET_KEY is not set"), "{missing}");
        let default = serve(&[("DEBUG", "False"), ("SECRET_KEY", DEV_SECRET_KEY)]).unwrap_err();
        assert!(default.contains("SECRET_KEY is the development default"), "{default}");
        let short = serve(&[("DEBUG", "False"), ("SECRET_KEY", "short")]).unwrap_err();
        assert!(short.contains("SECRET_KEY is shorter than 32 characters"), "{short}");
        let with_db = serve(&[("DATABASE_URL", "postgres://x/y")]).unwrap_err();
        assert!(with_db.contains("SECRET_KEY is not set"), "{with_db}");
        let ok = serve(&[("DEBUG", "False"), ("SECRET_KEY", &"k".repeat(40))]).unwrap();
        assert!(!ok.debug);
        let short_seal = serve(&[("DEBUG", "no"), ("SECRET_KEY", &"k".repeat(40)), ("SEAL_KEY", "short")]);
        assert!(short_seal.unwrap_err().contains("SEAL_KEY is not valid: shorter than 32 characters"));
    }

    #[test]
    fn commands_that_sign_no_session_neither_need_nor_invent_a_secret() {
        let production = [("DATABASE_URL", "postgres://x/y"), ("DEBUG", "False")];
        for args in [
            &["migrate"][..],
            &["projections", "status"],
            &["project"],
            &["demo"],
            &["user", "password", "--email", "a@example.com", "--password-stdin"],
            &[
                "user",
                "add",
                "--email",
                "a@example.com",
                "--name",
                "A",
                "--role",
                "staff",
                "--password-stdin",
            ],
        ] {
            let c = config_of(args, &production).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(c.secret_key.is_none(), "{args:?}");
            assert!(c.seal_secret.is_none(), "{args:?} has no key to write events with");
            assert!(c.event_key().unwrap_err().to_string().contains("set SEAL_KEY"));
        }
        // A seal key is enough to write events.
        let seal = "t".repeat(40);
        let c = config_of(&["demo"], &[production[0], production[1], ("SEAL_KEY", &seal)]).unwrap();
        assert!(c.secret_key.is_none() && c.event_key().is_ok());
        // `migrate` takes no key at all.
        let error = parse(&["migrate", "--secret-key", "x"], &[]).unwrap_err();
        assert!(error.contains("unexpected argument '--secret-key'"), "{error}");
    }

    #[test]
    fn the_embedded_default_writes_events_with_the_development_key() {
        let c = config_of(&["demo"], &[]).unwrap();
        assert!(c.debug && c.secret_key.is_none());
        assert_eq!(c.seal_secret.as_ref().map(|s| s.expose_secret()), Some(DEV_SECRET_KEY));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secret = "session-secret-0123456789abcdef-0123456789";
        let seal = "seal-secret-0123456789abcdef-0123456789abc";
        let smtp = "smtp-password-0123456789";
        let c = serve(&[
            ("DATABASE_URL", "postgres://app:db-password-xyz@127.0.0.1/pettycash"),
            ("SECRET_KEY", secret),
            ("SEAL_KEY", seal),
            ("EMAIL_HOST", "mail.internal"),
            ("EMAIL_HOST_USER", "cash"),
            ("EMAIL_HOST_PASSWORD", smtp),
        ])
        .unwrap();
        let shown = format!(
            "{c:?} {:?}",
            parse(&["serve"], &[("SECRET_KEY", secret), ("EMAIL_HOST_PASSWORD", smtp)]).unwrap()
        );
        for hidden in [secret, seal, "db-password-xyz", smtp] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn debug_accepts_django_booleans() {
        for (text, expected) in [("True", true), ("on", true), ("1", true), ("False", false), ("no", false)] {
            assert_eq!(config_of(&["migrate"], &[("DEBUG", text)]).unwrap().debug, expected, "{text}");
        }
        assert!(serve(&[("DEBUG", "maybe")]).unwrap_err().contains("invalid value 'maybe' for DEBUG"));
        assert!(serve(&[("BIND", "nowhere")]).unwrap_err().contains("invalid value 'nowhere' for BIND"));
    }

    #[test]
    fn empty_secrets_and_database_url_count_as_unset() {
        let c = serve(&[("DATABASE_URL", " "), ("SECRET_KEY", ""), ("SEAL_KEY", "")]).unwrap();
        assert!(c.database_url.is_none() && c.debug);
        assert_eq!(c.seal_secret.as_ref().map(|s| s.expose_secret()), Some(DEV_SECRET_KEY));
    }

    #[test]
    fn allowed_hosts_match_like_django() {
        let c = serve(&[("ALLOWED_HOSTS", "cash.example.com, .branch.example.com")]).unwrap();
        assert!(c.host_allowed("cash.example.com:8000"));
        assert!(c.host_allowed("nairobi.branch.example.com"));
        assert!(c.host_allowed("branch.example.com"));
        assert!(!c.host_allowed("evil.com"));
        assert!(!c.host_allowed("cash.example.com.evil.com"));
        let production = serve(&[("DEBUG", "False"), ("SECRET_KEY", &"k".repeat(40))]).unwrap();
        assert_eq!(production.allowed_hosts, ["localhost", "127.0.0.1", "[::1]"]);
    }
}
