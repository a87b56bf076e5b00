//! The one state struct every handler receives.

use crate::config::Config;
use crate::db_health::DbHealth;
use anyhow::Context;
use pettycash_commands::auth::Authenticator;
use pettycash_commands::cache::AggregateCache;
use pettycash_commands::invitations::InvitationSetup;
use pettycash_commands::providers::simulator::Simulator;
use pettycash_commands::receipts::ReceiptStore;
use pettycash_commands::{CommandService, EventStore};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub commands: CommandService,
    pub auth: Authenticator,
    /// Whether the database is known to be down (requests then fail fast).
    pub db: DbHealth,
    /// Receipt files (`Config::media`).
    pub receipts: ReceiptStore,
    /// The payment simulator, when it is the provider (`PAYMENT_PROVIDER=simulator`): tests
    /// steer it; the server tells it where to call back once it listens.
    pub simulator: Option<Simulator>,
}

impl AppState {
    /// Fails when the configuration holds no key to authenticate events with.
    pub fn new(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let key = config.event_key()?;
        let secret = config
            .secret_key
            .as_ref()
            .context("no SECRET_KEY: the service signs session tokens with it (Config::for_serve sets it)")?;
        let auth = Authenticator::new(
            pool.clone(),
            secret.expose_secret().as_bytes(),
            chrono::Duration::hours(i64::from(config.session_hours)),
            std::time::Duration::from_millis(config.session_cache_ms),
            config.login_throttle,
        );
        // Invitation tokens are hashed under SECRET_KEY, like session tokens.
        let invitations = InvitationSetup::new(secret.expose_secret().as_bytes(), config.mail.links());
        let commands = CommandService::with_cache(
            EventStore::new(pool.clone(), key),
            AggregateCache::with_capacity(config.aggregate_cache_size),
        )
        .with_invitations(invitations);
        if config.payment_provider == "daraja" {
            let daraja = pettycash_commands::providers::daraja::Daraja::new(config.daraja()?);
            let commands = commands.with_provider(Arc::new(daraja));
            let db = DbHealth::new(&pool);
            let receipts = ReceiptStore::open(&config.media)?;
            return Ok(Self {
                config: Arc::new(config),
                pool,
                commands,
                auth,
                db,
                receipts,
                simulator: None,
            });
        }
        // Else the simulator (`PAYMENT_PROVIDER=simulator`, the default).
        let provider_secret = match &config.payment_provider_secret {
            Some(s) => s.expose_secret().as_bytes().to_vec(),
            None => {
                use sha2::Digest;
                sha2::Sha256::digest(
                    [b"payment-provider:".as_slice(), secret.expose_secret().as_bytes()].concat(),
                )
                .to_vec()
            }
        };
        let simulator = Simulator::new(
            &provider_secret,
            std::time::Duration::from_millis(config.payment_simulator_delay_ms),
        );
        let commands = commands.with_provider(Arc::new(simulator.clone()));
        let db = DbHealth::new(&pool);
        let receipts = ReceiptStore::open(&config.media)?;
        Ok(Self { config: Arc::new(config), pool, commands, auth, db, receipts, simulator: Some(simulator) })
    }
}
