//! The command line of the `pettycash` binary. Each command takes the settings it reads
//! ([`crate::config`]) and nothing else: `migrate` and `projections status` take no key, and
//! only `serve` needs `SECRET_KEY`.

use crate::config::{with_env, CommonArgs, Config, ConfigError, KeyArgs, MailArgs, SealArgs, ServeArgs};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use pettycash_domain::Role;
use std::ffi::OsString;

#[derive(Debug, Parser)]
#[command(name = "pettycash", version, about = "Petty Cash: event-sourced petty cash management")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (migrates first). Without DATABASE_URL: the embedded default.
    // Boxed: its settings are by far the largest.
    Serve(Box<ServeArgs>),
    /// Run only the projection workers, the sealer and the mail sender (no HTTP). Any number of
    /// processes may run: each projection is worked on by exactly one of them at a time.
    Project {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        sealing: SealArgs,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Seal every event committed so far (the service also seals every SEAL_INTERVAL_SECS).
    /// Needs SEAL_KEY or SECRET_KEY: the key that authenticates the seals.
    Seal {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Inspect projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Load the demo organisation (one user per role, two funds, requisitions in every state).
    Demo {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each projection version: state, position, events applied, lag.
    Status {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user. The password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// A role (repeat for several): staff, branch_manager, department_head, regional_manager,
        /// group_finance_manager, fpa, cfo, ceo, treasury, auditor, admin.
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Set a registered user's password (e.g. one an admin registered over the API). The
    /// password is read from standard input.
    Password {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

impl Cli {
    /// Parses `args` (the program name first) reading settings from `env` instead of the
    /// process environment: for tests, which must not change the environment of a process
    /// whose other threads read it.
    pub fn try_parse_with_env<I, T>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = with_env(Self::command(), &env).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

impl Command {
    /// The settings of this command, resolved and checked as a whole (the keys against
    /// `DEBUG`). Each value was checked alone while the command line was parsed.
    pub fn config(&self) -> Result<Config, ConfigError> {
        match self {
            Command::Serve(args) => Config::for_serve(ServeArgs::clone(args)),
            Command::Project { common, keys, sealing, mail } => Config::new(common.clone())
                .with_sealing(sealing.clone())
                .with_mail(mail.clone())?
                .with_keys(keys.clone()),
            Command::Seal { common, keys }
            | Command::Demo { common, keys }
            | Command::User { command: UserCommand::Add { common, keys, .. } }
            | Command::User { command: UserCommand::Password { common, keys, .. } } => {
                Config::new(common.clone()).with_keys(keys.clone())
            }
            Command::Migrate { common }
            | Command::Projections { command: ProjectionsCommand::Status { common } } => {
                Ok(Config::new(common.clone()))
            }
        }
    }
}
