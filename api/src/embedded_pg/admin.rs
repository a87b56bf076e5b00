//! What is done over a cluster's admin connection: checking that a server answers, creating a database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tracing::{debug, info};

use crate::database::redact;

/// How long one attempt to reach the server may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Returns `true` when a server answers at `options` within `timeout`.
pub async fn probe(options: &PgConnectOptions, timeout: Duration) -> bool {
    server(options, timeout).await != Server::Down
}

/// What answers at a cluster's address.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Server {
    /// Nothing, within the timeout.
    Down,
    /// A server, with the data directory it reports (`None` when it will not say: `data_directory` is
    /// for superusers).
    Up { data_dir: Option<PathBuf> },
}

/// Whether a server answers at `options` within `timeout`, and where its data is.
pub(super) async fn server(options: &PgConnectOptions, timeout: Duration) -> Server {
    let attempt = async {
        let mut conn = PgConnection::connect_with(options).await?;
        let data_dir: Result<String, sqlx::Error> =
            sqlx::query_scalar("SELECT current_setting('data_directory')").fetch_one(&mut conn).await;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(data_dir.ok().map(PathBuf::from))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(data_dir)) => Server::Up { data_dir },
        Ok(Err(err)) => {
            debug!(server = %redact(options), error = %err, "PostgreSQL probe failed");
            Server::Down
        }
        Err(_) => {
            debug!(server = %redact(options), "PostgreSQL probe timed out");
            Server::Down
        }
    }
}

/// Probes `options` repeatedly until it answers or `total` has passed.
pub(super) async fn wait_for_probe(options: &PgConnectOptions, total: Duration) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if probe(options, PROBE_TIMEOUT).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Create database `name` on the server `admin` connects to if it does not exist; returns the options
/// that connect to it (`admin` with its database set to `name`).
///
/// `name` must be 1 to 63 characters from `[a-zA-Z0-9_]` (it is case-sensitive). A concurrent creator
/// of the same database is fine.
pub async fn ensure_database(admin: &PgConnectOptions, name: &str) -> Result<PgConnectOptions> {
    validate_database_name(name)?;
    let mut conn = PgConnection::connect_with(admin)
        .await
        .with_context(|| format!("could not connect to {}", redact(admin)))?;
    let result = create_database_if_missing(&mut conn, name).await;
    let _ = conn.close().await;
    result.with_context(|| format!("could not create database {name} at {}", redact(admin)))?;
    Ok(admin.clone().database(name))
}

/// The body of [`ensure_database`], on an open admin connection.
async fn create_database_if_missing(conn: &mut PgConnection, name: &str) -> Result<()> {
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let create = format!("CREATE DATABASE {}", quote_identifier(name));
    match sqlx::raw_sql(&create).execute(&mut *conn).await {
        Ok(_) => {
            info!(database = name, "created database");
            Ok(())
        }
        Err(err) if is_concurrent_create(&err) => {
            debug!(database = name, "database was created concurrently");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether `err` says the database already exists: `duplicate_database` (42P04), or `unique_violation`
/// (23505), which a creator racing another one can get from the catalog's unique index.
fn is_concurrent_create(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|db| db.code()).is_some_and(|code| code == "42P04" || code == "23505")
}

/// Accepts database names of 1 to 63 (PostgreSQL's identifier limit) characters from `[a-zA-Z0-9_]`.
fn validate_database_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if !valid {
        bail!("invalid database name {name:?}: use 1 to 63 characters from [a-zA-Z0-9_]");
    }
    Ok(())
}

/// Quotes `name` as an SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_validated_and_quoted() {
        for name in ["app", "App_2", "_x", &"a".repeat(63)] {
            assert!(validate_database_name(name).is_ok(), "{name}");
        }
        for name in ["", "a-b", "a b", "x\"; drop", "é", &"a".repeat(64)] {
            assert!(validate_database_name(name).is_err(), "{name}");
        }
        assert_eq!(quote_identifier("App_2"), "\"App_2\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
