//! The real `pettycash` binary refuses a bad setting from the environment before it starts
//! anything: exit status 2, one line naming the variable, no panic. These values used to
//! panic (`DATABASE_POOL_SIZE=-1`, `SESSION_HOURS=99999999999999`, `TOKIO_WORKER_THREADS=0`)
//! or pass silently (`MIN_POSITION_WAIT_MS=-5`).

use std::process::{Command, Output};

/// `pettycash <args>` with only `env` (and `PATH`) in its environment. The database is a port
/// nothing listens on and the data directory one that does not exist, so that a command that
/// got past its configuration would fail to connect rather than start anything.
fn pettycash(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pettycash"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing")
        .env("DEBUG", "True")
        .env("PETTYCASH_DATA_DIR", "/nonexistent/pettycash-config-test")
        .env("RUST_BACKTRACE", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run pettycash")
}

#[test]
fn bad_numbers_stop_serve_before_it_starts_naming_the_variable() {
    for (name, value, expected) in [
        ("DATABASE_POOL_SIZE", "-1", "must be between 1 and 1000"),
        ("SESSION_HOURS", "99999999999999", "must be between 1 and 8760"),
        ("MIN_POSITION_WAIT_MS", "-5", "must be between 0 and 60000"),
        ("TOKIO_WORKER_THREADS", "0", "must be between 1 and 1024"),
    ] {
        let out = pettycash(&["serve"], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!("error: invalid value '{value}' for {name}: {expected}"),
            "{name}={value}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty(), "{name}={value} started something");
    }
}

#[test]
fn production_without_a_secret_key_is_refused_but_migrate_needs_none() {
    let serve = pettycash(&["serve"], &[("DEBUG", "False")]);
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("pettycash: configuration error: SECRET_KEY is not set."), "{stderr}");

    // `migrate` gets past its configuration without any key and fails only to connect.
    let migrate = pettycash(&["migrate"], &[("DEBUG", "False")]);
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert_eq!(migrate.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("connecting to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("SECRET_KEY") && !stderr.contains("panicked"), "{stderr}");
}
