//! What is done over a cluster's admin connection: checking that a server answers, creating a database.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::{Connection, PgConnection};
use tracing::{debug, info};

/// How long one attempt to reach the server may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Returns `true` when a TCP connection + `select 1` succeeds at `url` within `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut conn = PgConnection::connect(url).await?;
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(one == 1)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(answered)) => answered,
        Ok(Err(err)) => {
            debug!(url = %redact(url), error = %err, "PostgreSQL probe failed");
            false
        }
        Err(_) => {
            debug!(url = %redact(url), "PostgreSQL probe timed out");
            false
        }
    }
}

/// Probes `url` repeatedly until it answers or `total` has passed.
pub(super) async fn wait_for_probe(url: &str, total: Duration) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if probe(url, PROBE_TIMEOUT).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Create database `name` on the server at `admin_url` if it does not exist; returns its URL.
///
/// `name` must be 1 to 63 characters from `[a-zA-Z0-9_]` (it is case-sensitive). A concurrent creator
/// of the same database is fine. The returned URL is `admin_url` with its path (and any `dbname` query
/// parameter) replaced by `name`.
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<String> {
    validate_database_name(name)?;
    let database_url = with_database(admin_url, name)?;
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("could not connect to {}", redact(admin_url)))?;
    let result = create_database_if_missing(&mut conn, name).await;
    let _ = conn.close().await;
    result.with_context(|| format!("could not create database {name} at {}", redact(admin_url)))?;
    Ok(database_url)
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

/// `url` with its path set to `/database` and any `dbname` query parameter removed.
fn with_database(url: &str, database: &str) -> Result<String> {
    let authority_start = url
        .find("://")
        .map(|index| index + 3)
        .with_context(|| format!("not a database URL: {}", redact(url)))?;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after_authority = &rest[authority_end..];
    let query = after_authority.find('?').map_or("", |index| &after_authority[index + 1..]);
    let params: Vec<&str> =
        query.split('&').filter(|param| !param.is_empty() && !param.starts_with("dbname=")).collect();
    let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
    Ok(format!("{}/{database}{query}", &url[..authority_start + authority_end]))
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..].find(['/', '?']).map_or(url.len(), |index| start + index);
    let authority = &url[start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/app"),
            ("postgres://u:p@h:1", "postgres://u:p@h:1/app"),
            ("postgres://u@h/postgres?sslmode=disable", "postgres://u@h/app?sslmode=disable"),
            ("postgresql://h/x?dbname=y&sslmode=require", "postgresql://h/app?sslmode=require"),
            ("postgres://h?dbname=y", "postgres://h/app"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "app").unwrap(), expected, "{url}");
        }
        assert!(with_database("not a url", "app").is_err());
        assert_eq!(redact("postgres://u:secret@h:1/db"), "postgres://u:***@h:1/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

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
