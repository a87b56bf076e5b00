//! `pettycash`: the service binary. Parses arguments and calls into the library.

use anyhow::Context;
use clap::Parser;
use pettycash_api::cli::{Cli, Command, ProjectionsCommand, UserCommand};
use pettycash_api::config::Config;
use pettycash_api::startup::{shutdown_signal, Application};
use pettycash_api::{database, demo};
use pettycash_commands::{CommandContext, CommandService, EventStore};
use pettycash_projections::{Engine, EngineOptions};
use std::io::Read;
use std::process::ExitCode;

fn init_tracing(debug: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if debug {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// Large allocations (an argon2 hash takes 19 MiB) are given back to the system when freed.
/// glibc otherwise raises its mmap threshold after the first such free and keeps later ones in
/// each thread's heap, so every blocking thread that ever hashed a password would hold 19 MiB.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    // Every setting is checked before anything starts (the runtime's size is one of them): a
    // bad value ends here, with clap's one line naming the variable and exit status 2.
    let cli = Cli::parse();
    let config = match cli.command.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pettycash: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(async_main(cli.command, config)),
        Err(e) => {
            eprintln!("pettycash: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main(command: Command, config: Config) -> ExitCode {
    init_tracing(config.debug);
    match run(command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pettycash: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` with its resolved `config`.
async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => serve(config).await,
        Command::Project { .. } => {
            let db = database::connect(&config).await?;
            database::migrate_if_needed(&db.pool).await?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let projections = pettycash_projections::all(&config.mail.links());
            let engine = Engine::new(db.pool.clone(), projections, EngineOptions::default());
            let workers = tokio::spawn(engine.run(stop_rx.clone()));
            let mail_sender = pettycash_api::mail::sender(&config, &db.pool)?
                .map(|sender| tokio::spawn(sender.run(stop_rx.clone())));
            let sealer = match config.seal_key() {
                Some(key) => Some(tokio::spawn(pettycash_projections::seal::run(
                    db.pool.clone(),
                    key,
                    config.sealer_options(),
                    stop_rx,
                ))),
                None => {
                    tracing::warn!(
                        "neither SEAL_KEY nor SECRET_KEY is set: this process does not seal events"
                    );
                    None
                }
            };
            println!("projection workers running against {}; Ctrl-C to stop", db.display_url);
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            let _ = workers.await;
            if let Some(sealer) = sealer {
                let _ = sealer.await;
            }
            if let Some(sender) = mail_sender {
                let _ = sender.await;
            }
            Ok(())
        }
        Command::Seal { .. } => {
            let key = config
                .seal_key()
                .context("set SEAL_KEY (or SECRET_KEY): the key seals are authenticated with")?;
            let db = database::connect(&config).await?;
            database::migrate_if_needed(&db.pool).await?;
            let seals = pettycash_projections::seal::seal_all(&db.pool, &key, 10_000).await?;
            match (seals.first(), seals.last()) {
                (Some(first), Some(last)) => println!(
                    "sealed seals #{}..#{} up to position {} ({} events in the chain, key {})",
                    first.seal_id, last.seal_id, last.last_position, last.event_count, key.id
                ),
                _ => println!("nothing new to seal (key {})", key.id),
            }
            Ok(())
        }
        Command::Projections { command: ProjectionsCommand::Status { .. } } => {
            let db = database::connect(&config).await?;
            let rows = pettycash_projections::engine::status(&db.pool).await?;
            println!(
                "{:<16} {:>7} {:>10} {:<9} {:>14} {:>14} {:>10}  updated",
                "projection", "version", "generation", "state", "position", "applied", "lag"
            );
            for r in rows {
                println!(
                    "{:<16} {:>7} {:>10} {:<9} {:>14} {:>14} {:>10}  {}",
                    r.name,
                    r.version,
                    r.generation,
                    r.state,
                    r.last_position,
                    r.events_applied,
                    r.lag_events,
                    r.updated_at.to_rfc3339()
                );
            }
            Ok(())
        }
        Command::Migrate { .. } => {
            let db = database::connect(&config).await?;
            database::migrate(&db.pool).await?;
            println!("migrations applied to {}", db.display_url);
            Ok(())
        }
        Command::User { command: UserCommand::Password { email, .. } } => {
            let password = read_password()?;
            let db = database::connect(&config).await?;
            database::migrate_if_needed(&db.pool).await?;
            let service = CommandService::new(EventStore::new(db.pool.clone(), config.event_key()?));
            let id = service.set_password(&email, &password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("password set for {email} (id {id})");
            Ok(())
        }
        Command::User { command: UserCommand::Add { email, name, roles, .. } } => {
            let password = read_password()?;
            let password = password.as_str();
            let key = config.event_key()?;
            let db = database::connect(&config).await?;
            database::migrate_if_needed(&db.pool).await?;
            let service = CommandService::new(EventStore::new(db.pool.clone(), key));
            let user = service
                .register_user(&CommandContext::operator("user add"), &email, &name, roles, Some(password))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let roles: Vec<&str> = user.value.roles.iter().map(|r| r.as_str()).collect();
            println!(
                "registered {} <{}> with roles {} (id {})",
                user.value.name,
                user.value.email,
                roles.join(", "),
                user.value.id
            );
            Ok(())
        }
        Command::Demo { .. } => {
            let key = config.event_key()?;
            let db = database::connect(&config).await?;
            database::migrate_if_needed(&db.pool).await?;
            let service = CommandService::new(EventStore::new(db.pool.clone(), key));
            let logins = demo::load(&service).await?;
            print!("{}", demo::format_logins(&logins));
            Ok(())
        }
    }
}

/// A password from standard input, without the line end.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_string())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let db = database::connect(&config).await?;
    database::migrate_if_needed(&db.pool).await?;
    if db.embedded.is_some() {
        embedded_demo(&config, &db).await?;
    }
    let data_dir = config.data_dir.clone();
    let app = Application::build(config, db.pool.clone()).await?;
    println!(
        "Petty Cash {} listening on http://{}/ (database {})",
        env!("CARGO_PKG_VERSION"),
        app.local_addr(),
        db.display_url
    );
    println!("API index: http://{0}/api/  health: http://{0}/health/", app.local_addr());
    let result = app.run_until_stopped(shutdown_signal()).await;
    db.pool.close().await;
    if let Some(cluster) = &db.embedded {
        if let Err(e) = cluster.stop().await {
            eprintln!("pettycash: stopping the embedded PostgreSQL in {}: {e:#}", data_dir.display());
        }
    }
    result.context("serving HTTP")
}

/// First start of the embedded default: load the demo and keep its logins (mode 0600) under
/// the data directory so later starts can print them again.
async fn embedded_demo(config: &Config, db: &database::Database) -> anyhow::Result<()> {
    let file = config.data_dir.join("demo-logins.txt");
    if !demo::is_loaded(&db.pool).await? {
        let service = CommandService::new(EventStore::new(db.pool.clone(), config.event_key()?));
        let logins = demo::load(&service).await.context("loading the demo organisation")?;
        let text = demo::format_logins(&logins);
        std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    match std::fs::read_to_string(&file) {
        Ok(text) => println!("{text}(kept in {})", file.display()),
        Err(_) => println!("demo organisation loaded earlier; its logins file {} is gone", file.display()),
    }
    Ok(())
}
