//! The one state struct every handler receives.

use crate::config::Config;
use pettycash_commands::auth::Authenticator;
use pettycash_commands::{CommandService, EventStore};
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub commands: CommandService,
    pub auth: Authenticator,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> Self {
        let auth = Authenticator::new(
            pool.clone(),
            config.secret_key.as_bytes(),
            chrono::Duration::hours(config.session_hours),
        );
        let commands = CommandService::new(EventStore::new(pool.clone()));
        Self { config: Arc::new(config), pool, commands, auth }
    }
}
