//! How the service and the auditor's tool connect to PostgreSQL (one rule for both).

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Whether `url` names a database on this machine (a loopback host or a Unix socket).
pub fn is_local(url: &str) -> bool {
    url.parse::<PgConnectOptions>().is_ok_and(|o| {
        let host = o.get_host();
        host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
    })
}

/// The connection options of `url`. On a loopback host (or a Unix socket) with no `sslmode`
/// given, TLS is off: the traffic never leaves the machine, and encrypting every round trip
/// cost 15 % of command throughput (docs/performance.md). An explicit `sslmode` always wins;
/// a remote host keeps PostgreSQL's default (`prefer`).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(if is_local(url) && !url.contains("sslmode=") {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_connections_skip_tls_unless_asked() {
        let mode = |url: &str| format!("{:?}", connect_options(url).unwrap().get_ssl_mode());
        assert_eq!(mode("postgres://u@127.0.0.1:5432/db"), "Disable");
        assert_eq!(mode("postgres://u@localhost/db"), "Disable");
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=require"), "Require");
        assert_eq!(mode("postgres://u@db.example.com/db"), "Prefer");
        assert!(is_local("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"));
        assert!(!is_local("postgres://u@db.example.com/db"));
    }
}
