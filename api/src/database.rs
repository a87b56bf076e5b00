//! Connecting to PostgreSQL: `DATABASE_URL` when set, otherwise the embedded default (a
//! private cluster started from the system's PostgreSQL binaries, under the data directory or,
//! as root when the `postgres` user cannot reach that, under /var/lib/pettycash-embedded).

use crate::config::Config;
use crate::embedded_pg::{ensure_database, EmbeddedPostgres};
use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::time::Duration;

/// Name of the database the embedded default creates in its private cluster.
pub const EMBEDDED_DATABASE: &str = "pettycash";

/// Where the service's database is, and whether this process started it.
pub struct Database {
    pub pool: PgPool,
    /// The URL without credentials, for logs.
    pub display_url: String,
    pub embedded: Option<EmbeddedPostgres>,
}

/// The connection options of `url` (see [`pettycash_projections::connect::connect_options`]:
/// no TLS to a loopback host unless `sslmode` asks for it).
pub fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    // The URL itself stays out of the message: it may hold a password.
    pettycash_projections::connect::connect_options(url).context("DATABASE_URL is not a PostgreSQL URL")
}

pub use pettycash_projections::connect::is_local;

/// Threads of the async runtime: half the cores when PostgreSQL runs on the same machine
/// (`database_url` local, or none: the embedded cluster), all of them otherwise.
/// `TOKIO_WORKER_THREADS` overrides it. On the 2-core development machine one thread served as
/// many commands per second as two when nothing else ran, and more in runs beside compiler
/// jobs (docs/performance.md): most of the server's own cost there is threads waking each
/// other, and PostgreSQL needs the other core.
pub fn runtime_threads(database_url: Option<String>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shares_the_machine = database_url.filter(|u| !u.trim().is_empty()).is_none_or(|u| is_local(&u));
    if shares_the_machine {
        (cores / 2).max(1)
    } else {
        cores
    }
}

/// Opens a pool on `url` with the service's settings.
pub async fn pool(url: &str, size: u32) -> anyhow::Result<PgPool> {
    pool_with(connect_options(url)?, size).await
}

/// Opens a pool on `options` with the service's settings.
pub async fn pool_with(options: PgConnectOptions, size: u32) -> anyhow::Result<PgPool> {
    let shown = redact(&options);
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {shown}"))
}

/// The pool of `serve`'s background work (projection workers, mail sender, sealer): the same
/// database as `requests`, at most `size` connections of its own, opened when first needed.
/// Apart from the requests' pool so that a burst of commands (each waking every worker) does
/// not leave requests waiting for connections the workers hold, nor the workers for the
/// requests'. The workers wait as long as it takes: their work is never answered to anyone.
pub fn background_pool(requests: &PgPool, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(60))
        .connect_lazy_with((*requests.connect_options()).clone())
}

/// Connects to the configured database, starting the embedded one if needed.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    if let Some(url) = &config.database_url {
        let options = connect_options(url.expose_secret())?;
        let display_url = redact(&options);
        let pool = pool_with(options, config.db_pool_size).await?;
        return Ok(Database { pool, display_url, embedded: None });
    }
    let cluster = EmbeddedPostgres::for_data_dir(&config.data_dir, config.embedded_pg_port)
        .context("placing the embedded PostgreSQL")?;
    tracing::info!(
        port = cluster.port,
        "no DATABASE_URL: using the embedded PostgreSQL cluster in {} (to remove it: stop the service, \
         then `rm -rf {}`)",
        cluster.data_dir.display(),
        cluster.home().display()
    );
    let admin = cluster.ensure_running().await.context("starting the embedded PostgreSQL")?;
    // Only now: a cluster kept in the data directory has created it (as root, with a mode that
    // lets `postgres` in); a moved one has not, and the demo's logins still go there.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let options = ensure_database(&admin, EMBEDDED_DATABASE).await?;
    let display_url = redact(&options);
    let pool = pool_with(options, config.db_pool_size).await?;
    Ok(Database { pool, display_url, embedded: Some(cluster) })
}

/// Applies pending migrations (sqlx takes an advisory lock: safe with several processes).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    pettycash_commands::MIGRATOR.run(pool).await.context("applying database migrations")
}

/// Applies migrations only when some are pending. The service's own role (see
/// `deploy/db-roles.sql`) may not create tables; when everything is applied already it then
/// starts without needing that right. `pettycash migrate` always runs the migrator.
pub async fn migrate_if_needed(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Result<Vec<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await;
    let pending = match applied {
        Ok(versions) => pettycash_commands::MIGRATOR.iter().any(|m| !versions.contains(&m.version)),
        Err(_) => true,
    };
    if pending {
        migrate(pool).await?;
    }
    Ok(())
}

/// Warns when the server's autovacuum is off (some CI and test clusters turn it off). The read
/// models rewrite their recent rows all the time and count on it: without it their indexes keep
/// every dead entry and their GIN indexes grow, and reads slow down by the minute (a department
/// head's dashboard took 3.4 ms after a vacuum, 8.9 ms after a few minutes of load). Only a
/// warning: the service still works, and an operator may vacuum on a schedule instead.
pub async fn warn_if_autovacuum_off(pool: &PgPool) {
    let on: Result<bool, sqlx::Error> =
        sqlx::query_scalar("SELECT current_setting('autovacuum')::boolean").fetch_one(pool).await;
    if let Ok(false) = on {
        tracing::warn!(
            "PostgreSQL's autovacuum is off: the read models will slow down as their dead rows \
             pile up; turn it on (autovacuum = on) or run VACUUM ANALYZE often (see the runbook)"
        );
    }
}

/// Where `options` connect, for logs and messages: `postgres://user@host:port/database`, never the
/// password (nor any other parameter).
pub fn redact(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None if options.get_host().contains(':') => format!("[{}]", options.get_host()),
        None => options.get_host().to_owned(),
    };
    let database = options.get_database().unwrap_or_default();
    format!("postgres://{}@{host}:{}/{database}", options.get_username(), options.get_port())
}

/// `options` as a URL for another program (the `DATABASE_URL` of a child process, `psql`): user,
/// password, host, port, database and TLS settings, in a form that both sqlx and libpq read.
pub fn url(options: &PgConnectOptions) -> String {
    let mut url = options.to_url_lossy();
    // sqlx adds its own `statement-cache-capacity`, which libpq rejects.
    let params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "statement-cache-capacity")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(params);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_leaves_half_the_cores_to_a_local_database() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let half = (cores / 2).max(1);
        assert_eq!(runtime_threads(None), half, "embedded cluster");
        assert_eq!(runtime_threads(Some("postgres://u@127.0.0.1/db".into())), half);
        assert_eq!(runtime_threads(Some("postgres://u@db.example.com/db".into())), cores);
    }

    #[test]
    fn redacted_locations_carry_no_password() {
        let options = connect_options("postgres://u:secret@db.example.com:6543/app?sslmode=require").unwrap();
        assert_eq!(redact(&options), "postgres://u@db.example.com:6543/app");
        let socket = connect_options("postgres://u@%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(redact(&socket), "postgres://u@/var/run/postgresql:5432/app");
        let err = connect_options("postgres//u:secret@h/app").unwrap_err();
        assert!(!format!("{err:#}").contains("secret"), "{err:#}");
    }

    #[test]
    fn urls_for_other_programs_keep_what_connects() {
        let options = connect_options("postgres://u:p%40ss@127.0.0.1:5432/admin").unwrap().database("pct_1");
        assert_eq!(url(&options), "postgres://u:p%40ss@127.0.0.1:5432/pct_1?sslmode=disable");
        let back = connect_options(&url(&options)).unwrap();
        assert_eq!(
            (back.get_username(), back.get_host(), back.get_port(), back.get_database()),
            ("u", "127.0.0.1", 5432, Some("pct_1"))
        );
    }
}
