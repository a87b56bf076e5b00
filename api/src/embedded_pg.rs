//! Zero-configuration PostgreSQL: a private cluster run from the system's server binaries.
//!
//! When `DATABASE_URL` is not set, `pettycash serve` calls [`EmbeddedPostgres::ensure_running`] to get a
//! server, and the test suite does the same when no server is reachable. The private cluster:
//!
//! * keeps its data in [`EmbeddedPostgres::data_dir`]; the server log is `postgres.log` in the directory
//!   that contains the data directory, next to `<data_dir>.lock` (the start-up lock, see below);
//! * listens on `127.0.0.1:<port>` only, plus a Unix socket inside the data directory itself (mode 0700,
//!   so only its owner can use it). The socket path `<data_dir>/.s.PGSQL.<port>` must fit in 107 bytes;
//! * uses `trust` authentication for the `postgres` superuser. That is acceptable only because the cluster
//!   is private and bound to the loopback interface: any local user of the machine can connect to it as
//!   superuser, so it is meant for single-user machines, development and CI. Deployments that need more
//!   set `DATABASE_URL` to a properly secured server instead.
//!
//! # Running as root
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root, every server binary runs as
//! the `postgres` OS user (`runuser -u postgres -- …`, or `su -s /bin/sh -c '…' postgres` where runuser is
//! missing), after the data directory and the log file have been handed to that user with `chown`. Every
//! directory above the data directory must therefore be searchable by `postgres`; when one is not (e.g.
//! `/root`, mode 0700) the error names it. Directories this module creates are made mode 0755.
//!
//! # Concurrency
//!
//! [`EmbeddedPostgres::ensure_running`] may be called by several processes (or tasks) at once. Whoever
//! finds the server down takes an exclusive lock before initialising or starting it, then checks again.
//! The lock is a `flock(2)` lock on `<data_dir>.lock`, held by a `flock(1)` child process (util-linux,
//! always present on Debian/Ubuntu) for as long as its standard input stays open: it needs no `libc`
//! binding, and the kernel releases it even when the holder is killed, since the pipe then closes. Where
//! `flock(1)` is missing, a `<data_dir>.lock.pid` file created with `create_new` serves instead. It holds
//! the owner's pid and counts as stale once that process no longer exists.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tracing::{debug, info, warn};

/// The error returned when no PostgreSQL server binaries can be found.
const BINARIES_NOT_FOUND: &str = "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: \
    `apt-get install postgresql`) or set DATABASE_URL to an existing server (or PG_BIN_DIR to the \
    directory containing initdb).";
/// Where Debian and Ubuntu install the server binaries of each major version (`<root>/<version>/bin`).
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The OS user that runs the server when this process is root; also the cluster's superuser.
const PG_USER: &str = "postgres";
/// The database that the admin URL points at.
const ADMIN_DATABASE: &str = "postgres";
/// The server log's file name, in the directory that contains the data directory.
const LOG_FILE_NAME: &str = "postgres.log";
/// How long one attempt to reach the server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for another process that is initialising or starting the same cluster.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a server that `pg_ctl status` reports as running gets to start answering.
const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// How many seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// The longest Unix socket path (`sun_path` holds 108 bytes including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Directories searched, after `PATH`, for `runuser` and `su`.
const SYSTEM_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Where the system's PostgreSQL server binaries live (initdb, pg_ctl, postgres).
///
/// Looks, in order, at: the `PG_BIN_DIR` environment variable (taken as given when set and not empty);
/// the highest version under `/usr/lib/postgresql/*/bin` that contains `initdb`; `pg_config --bindir`;
/// the directory of `initdb` on `PATH`. Returns `None` when none of them yields a directory.
pub fn find_pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    debian_bin_dirs()
        .into_iter()
        .next()
        .or_else(pg_config_bin_dir)
        .or_else(|| find_executable("initdb", &[]).and_then(|initdb| initdb.parent().map(Path::to_path_buf)))
}

/// The `/usr/lib/postgresql/<version>/bin` directories that contain `initdb`, highest version first.
fn debian_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(DEBIAN_PG_ROOT) else {
        return Vec::new();
    };
    let mut dirs: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    dirs.into_iter().map(|(_, bin)| bin).collect()
}

/// Parses a version directory name such as `15` or `9.6` into comparable numeric parts.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The directory printed by `pg_config --bindir`, if it contains `initdb` (pg_config also ships with the
/// client development packages, which lack the server).
fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = std::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    dir.join("initdb").is_file().then_some(dir)
}

/// Finds the executable `name` on `PATH`, then in `extra_dirs`.
fn find_executable(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The binaries to run the cluster in `data_dir` with. Unless `PG_BIN_DIR` is set, an existing cluster
/// gets the binaries of its own major version when they are installed, so that installing a newer
/// PostgreSQL next to the old one does not break it; otherwise [`find_pg_bin_dir`] decides.
fn bin_dir_for(data_dir: &Path) -> Result<PathBuf> {
    let pinned = std::env::var_os("PG_BIN_DIR").is_some_and(|dir| !dir.is_empty());
    let same_version = if pinned {
        None
    } else {
        std::fs::read_to_string(data_dir.join("PG_VERSION"))
            .ok()
            .filter(|version| parse_version(version.trim()).is_some())
            .map(|version| Path::new(DEBIAN_PG_ROOT).join(version.trim()).join("bin"))
            .filter(|bin| bin.join("postgres").is_file())
    };
    let bin_dir = same_version.or_else(find_pg_bin_dir).ok_or_else(|| anyhow!(BINARIES_NOT_FOUND))?;
    if let Some(missing) =
        ["initdb", "pg_ctl", "postgres"].into_iter().find(|tool| !bin_dir.join(tool).is_file())
    {
        bail!("`{missing}` is missing from {}. {BINARIES_NOT_FOUND}", bin_dir.display());
    }
    Ok(bin_dir)
}

/// Configuration for a private cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedPostgres {
    /// The cluster's data directory; created (with its parents) on first start. Its parent directory
    /// also holds the server log (`postgres.log`) and the start-up lock (`<data_dir>.lock`).
    pub data_dir: PathBuf,
    /// The TCP port the server listens on, on 127.0.0.1 only.
    pub port: u16,
}

impl EmbeddedPostgres {
    /// Describes a private cluster in `data_dir` listening on `127.0.0.1:port`; nothing is touched yet.
    pub fn new(data_dir: impl Into<PathBuf>, port: u16) -> Self {
        Self { data_dir: data_dir.into(), port }
    }

    /// The superuser URL for the `postgres` database of this cluster.
    fn admin_url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{ADMIN_DATABASE}", self.port)
    }

    /// Initialise (if needed) and start (if not running) the cluster; idempotent and safe when several
    /// processes call it at once.
    ///
    /// Does nothing when a server already answers on the port. Otherwise it takes the exclusive start-up
    /// lock described in the [module docs](self) and checks again; then it runs `initdb` when the data
    /// directory holds no cluster yet, removes a stale `postmaster.pid` (left by a crash or a reboot,
    /// and only when `pg_ctl status` says no server is running), and starts the server with
    /// `pg_ctl start -w`. Returns the admin connection URL for database `postgres`, e.g.
    /// `postgres://postgres@127.0.0.1:54329/postgres`.
    ///
    /// # Errors
    ///
    /// When the server binaries cannot be found, the error says how to install them or what to set
    /// instead. When the server fails to start, the error includes the tail of its log.
    pub async fn ensure_running(&self) -> Result<String> {
        let url = self.admin_url();
        if probe(&url, PROBE_TIMEOUT).await {
            debug!(port = self.port, "private PostgreSQL cluster already running");
            return Ok(url);
        }
        let cluster = Cluster::resolve(self)?;
        create_dir_tree(&cluster.parent, cluster.runner.is_root())?;
        let lock = ClusterLock::acquire(&cluster.sibling(".lock"), LOCK_TIMEOUT).await?;
        let result = cluster.start_locked().await;
        lock.release().await;
        result.with_context(|| {
            format!("could not start the private PostgreSQL cluster in {}", cluster.data_dir.display())
        })?;
        Ok(url)
    }

    /// Stop the cluster (`pg_ctl stop -m fast`). Used on service shutdown when this process started it.
    ///
    /// Succeeds without doing anything when the cluster is not running.
    pub async fn stop(&self) -> Result<()> {
        let data_dir = std::path::absolute(&self.data_dir)
            .with_context(|| format!("invalid data directory {}", self.data_dir.display()))?;
        if !data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let cluster = Cluster::resolve(self)?;
        if !cluster.server_alive().await? {
            return Ok(());
        }
        info!(data_dir = %cluster.data_dir.display(), "stopping private PostgreSQL cluster");
        let stop = cluster.pg_ctl([
            "stop".as_ref(),
            "-D".as_ref(),
            cluster.data_dir.as_os_str(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_WAIT_SECS.as_ref(),
        ]);
        run_checked(stop, "pg_ctl stop").await.with_context(|| {
            format!("could not stop the private PostgreSQL cluster in {}", cluster.data_dir.display())
        })?;
        Ok(())
    }
}

/// Everything needed to operate on one cluster, resolved from an [`EmbeddedPostgres`].
#[derive(Debug)]
struct Cluster {
    /// Absolute data directory.
    data_dir: PathBuf,
    /// The directory that contains the data directory.
    parent: PathBuf,
    /// Directory of initdb, pg_ctl and postgres.
    bin_dir: PathBuf,
    /// How the server binaries are run.
    runner: Runner,
    /// TCP port.
    port: u16,
    /// Admin connection URL.
    url: String,
}

impl Cluster {
    /// Resolves paths, binaries and the runner for `pg`, checking what can be checked up front.
    fn resolve(pg: &EmbeddedPostgres) -> Result<Self> {
        let data_dir = std::path::absolute(&pg.data_dir)
            .with_context(|| format!("invalid data directory {}", pg.data_dir.display()))?;
        let parent = data_dir
            .parent()
            .filter(|parent| data_dir.file_name().is_some() && !parent.as_os_str().is_empty())
            .with_context(|| format!("the data directory {} has no parent directory", data_dir.display()))?
            .to_path_buf();
        let socket = data_dir.join(format!(".s.PGSQL.{}", pg.port));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "the data directory path {} is too long: PostgreSQL's Unix socket {} would exceed {} bytes; \
                 choose a shorter data directory path",
                data_dir.display(),
                socket.display(),
                MAX_SOCKET_PATH
            );
        }
        let bin_dir = bin_dir_for(&data_dir)?;
        let runner = Runner::detect()?;
        Ok(Self { data_dir, parent, bin_dir, runner, port: pg.port, url: pg.admin_url() })
    }

    /// `<data_dir><suffix>`, a sibling of the data directory.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut path = self.data_dir.clone().into_os_string();
        path.push(suffix);
        PathBuf::from(path)
    }

    /// The server log file.
    fn log_path(&self) -> PathBuf {
        self.parent.join(LOG_FILE_NAME)
    }

    /// A `pg_ctl` command with `args`, run as the right user.
    fn pg_ctl<'a>(&self, args: impl IntoIterator<Item = &'a OsStr>) -> std::process::Command {
        self.runner.command(&self.bin_dir.join("pg_ctl"), args)
    }

    /// Initialises and starts the cluster; the caller holds the start-up lock.
    async fn start_locked(&self) -> Result<()> {
        if probe(&self.url, PROBE_TIMEOUT).await {
            // Started by whoever held the lock before us.
            return Ok(());
        }
        if self.runner.is_root() {
            self.check_traversable().await?;
        }
        if !self.data_dir.join("PG_VERSION").is_file() {
            self.initdb().await?;
        }
        if self.runner.is_root() {
            self.hand_over_to_pg_user().await?;
        }
        if self.handle_pid_file().await? {
            return Ok(());
        }
        self.start().await
    }

    /// Fails with a clear message when the `postgres` user cannot reach the data directory's parent.
    async fn check_traversable(&self) -> Result<()> {
        const SCRIPT: &str = r#"for d in "$@"; do [ -x "$d" ] || { printf '%s' "$d"; exit 1; }; done"#;
        let mut dirs: Vec<&Path> = self.parent.ancestors().collect();
        dirs.reverse();
        let args = ["-c".as_ref(), SCRIPT.as_ref(), "sh".as_ref()]
            .into_iter()
            .chain(dirs.iter().map(|dir| dir.as_os_str()));
        let check = self.runner.command(Path::new("/bin/sh"), args);
        let output = Command::from(check)
            .output()
            .await
            .with_context(|| format!("could not run a shell as the `{PG_USER}` user"))?;
        if output.status.success() {
            return Ok(());
        }
        let blocked = String::from_utf8_lossy(&output.stdout);
        if blocked.is_empty() {
            bail!(
                "could not check that the `{PG_USER}` user can reach {}: {}",
                self.parent.display(),
                describe_output(&output)
            );
        }
        bail!(
            "this process runs as root, so PostgreSQL runs as the `{PG_USER}` OS user, but that user cannot \
             traverse the directory {blocked} on the way to the data directory {}. Grant it search \
             permission (e.g. `chmod o+x {blocked}`) or choose a data directory under a path every user can \
             traverse, such as /var/lib or /tmp",
            self.data_dir.display()
        );
    }

    /// Creates the cluster with `initdb` in a staging directory, then renames that into place, so that an
    /// interrupted initdb never leaves a half-made data directory behind.
    async fn initdb(&self) -> Result<()> {
        if let Ok(mut entries) = std::fs::read_dir(&self.data_dir) {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty but holds no PostgreSQL cluster (it has no PG_VERSION file); move it \
                     away or choose another data directory",
                    self.data_dir.display()
                );
            }
        }
        let staging = self.sibling(".initdb");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("could not remove the leftover {}", staging.display()))?;
        }
        std::fs::create_dir(&staging).with_context(|| format!("could not create {}", staging.display()))?;
        if self.runner.is_root() {
            chown_to_pg_user(&[&staging]).await?;
        }
        info!(data_dir = %self.data_dir.display(), "initialising private PostgreSQL cluster");
        // Trust authentication: see the module docs for why that is acceptable here.
        let initdb = self.runner.command(
            &self.bin_dir.join("initdb"),
            [
                "-D".as_ref(),
                staging.as_os_str(),
                "-U".as_ref(),
                PG_USER.as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        );
        run_checked(initdb, "initdb").await?;
        if self.data_dir.exists() {
            // Empty, as checked above.
            std::fs::remove_dir(&self.data_dir)
                .with_context(|| format!("could not replace {}", self.data_dir.display()))?;
        }
        std::fs::rename(&staging, &self.data_dir).with_context(|| {
            format!("could not move {} to {}", staging.display(), self.data_dir.display())
        })?;
        Ok(())
    }

    /// Gives the data directory and the log file to the `postgres` user.
    async fn hand_over_to_pg_user(&self) -> Result<()> {
        let log = self.log_path();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("could not create the server log {}", log.display()))?;
        chown_to_pg_user(&[&self.data_dir, &log]).await
    }

    /// Deals with a `postmaster.pid` in the data directory. Returns `Ok(true)` when its server answers;
    /// removes the file when `pg_ctl status` reports no running server (a stale file after a crash or
    /// reboot); fails when a live server does not answer on our port within [`STARTUP_GRACE`] (it may be
    /// starting up, e.g. running crash recovery, or it may have crashed and still await reaping).
    async fn handle_pid_file(&self) -> Result<bool> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let deadline = Instant::now() + STARTUP_GRACE;
        loop {
            if !pid_file.exists() {
                return Ok(false);
            }
            // postmaster.pid lines: pid, data directory, start time, port, ...
            let contents = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let mut lines = contents.lines();
            let pid = lines.next().and_then(|pid| pid.trim().parse::<u32>().ok());
            let port = lines.nth(2).and_then(|port| port.trim().parse::<u16>().ok());
            if !self.server_alive().await? {
                warn!(pid_file = %pid_file.display(), "removing stale postmaster.pid: no server is running");
                return match std::fs::remove_file(&pid_file) {
                    Err(err) if err.kind() != ErrorKind::NotFound => {
                        Err(err).with_context(|| format!("could not remove {}", pid_file.display()))
                    }
                    _ => Ok(false),
                };
            }
            let ours = port.is_none_or(|port| port == self.port);
            if ours && probe(&self.url, PROBE_TIMEOUT).await {
                return Ok(true);
            }
            if !ours || Instant::now() >= deadline {
                let pid_text = pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
                if pid.is_some_and(is_zombie) {
                    bail!(
                        "the PostgreSQL server (pid {pid_text}) of {} has exited, but its parent has not reaped \
                         it, so it still counts as running and PostgreSQL refuses to start. Run this process \
                         under an init that reaps orphans (e.g. `docker run --init`)",
                        self.data_dir.display()
                    );
                }
                bail!(
                    "a PostgreSQL server (pid {pid_text}, port {}) is running from {} but does not answer at \
                     {}. Stop it (`pg_ctl stop -D {}`) and retry; if no such server exists, delete the stale {}",
                    port.map_or_else(|| "unknown".to_owned(), |port| port.to_string()),
                    self.data_dir.display(),
                    self.url,
                    self.data_dir.display(),
                    pid_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Whether `pg_ctl status` reports a running server for the data directory.
    async fn server_alive(&self) -> Result<bool> {
        let status = self.pg_ctl(["status".as_ref(), "-D".as_ref(), self.data_dir.as_os_str()]);
        let output = Command::from(status).output().await.context("could not run pg_ctl status")?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => bail!("pg_ctl status failed ({}): {}", output.status, describe_output(&output)),
        }
    }

    /// Starts the server with `pg_ctl start -w` and checks that it answers over TCP.
    async fn start(&self) -> Result<()> {
        let log = self.log_path();
        // pg_ctl hands `-o` to /bin/sh, so the socket directory is shell-quoted.
        let mut options = format!("-p {} -k ", self.port).into_bytes();
        options.extend(sh_quote(self.data_dir.as_os_str()));
        options.extend_from_slice(
            b" -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 -c shared_buffers=128MB",
        );
        let options = OsString::from_vec(options);
        info!(data_dir = %self.data_dir.display(), port = self.port, "starting private PostgreSQL cluster");
        let start = self.pg_ctl([
            "start".as_ref(),
            "-D".as_ref(),
            self.data_dir.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_WAIT_SECS.as_ref(),
            "-o".as_ref(),
            options.as_os_str(),
        ]);
        let failure = match run_checked(start, "pg_ctl start").await {
            Ok(_) if wait_for_probe(&self.url, Duration::from_secs(15)).await => return Ok(()),
            Ok(_) => anyhow!("pg_ctl reported the server as started, but it does not answer at {}", self.url),
            Err(err) => err,
        };
        let with_log =
            anyhow!("{failure:#}\n--- last lines of {} ---\n{}", log.display(), log_tail(&log, 30));
        Err(with_log.context(format!("PostgreSQL failed to start on port {}", self.port)))
    }
}

/// How the server binaries are run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Runner {
    /// Not root: run them directly as the current user.
    Direct,
    /// Root: `runuser -u postgres -- program args…`.
    Runuser(PathBuf),
    /// Root without runuser: `su -s /bin/sh -c 'exec program args…' postgres`.
    Su(PathBuf),
}

impl Runner {
    /// Picks how to run the server binaries for the current process.
    fn detect() -> Result<Self> {
        if !running_as_root() {
            return Ok(Self::Direct);
        }
        let user_exists = std::process::Command::new("id")
            .args(["-u", PG_USER])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !user_exists {
            bail!(
                "this process runs as root, which PostgreSQL refuses, and there is no `{PG_USER}` OS user to \
                 run it as. Create one (`useradd --system --user-group --home-dir /var/lib/postgresql \
                 {PG_USER}`), run as a non-root user, or set DATABASE_URL to an existing server"
            );
        }
        if let Some(runuser) = find_executable("runuser", SYSTEM_BIN_DIRS) {
            Ok(Self::Runuser(runuser))
        } else if let Some(su) = find_executable("su", SYSTEM_BIN_DIRS) {
            Ok(Self::Su(su))
        } else {
            bail!(
                "this process runs as root, which PostgreSQL refuses, and neither `runuser` nor `su` is \
                 available to run it as the `{PG_USER}` user"
            )
        }
    }

    /// Whether this process is root (and so runs the binaries as the `postgres` user).
    fn is_root(&self) -> bool {
        !matches!(self, Self::Direct)
    }

    /// A command running `program` with `args` as the right user, from `/` (which every user can enter)
    /// and with standard input closed.
    fn command<'a>(
        &self,
        program: &Path,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> std::process::Command {
        let mut command = match self {
            Self::Direct => {
                let mut command = std::process::Command::new(program);
                command.args(args);
                command
            }
            Self::Runuser(runuser) => {
                let mut command = std::process::Command::new(runuser);
                command.args(["-u", PG_USER, "--"]).arg(program).args(args);
                command
            }
            Self::Su(su) => {
                let mut script = b"exec ".to_vec();
                script.extend(sh_quote(program.as_os_str()));
                for arg in args {
                    script.push(b' ');
                    script.extend(sh_quote(arg));
                }
                let mut command = std::process::Command::new(su);
                command.args(["-s", "/bin/sh", "-c"]).arg(OsString::from_vec(script)).arg(PG_USER);
                command
            }
        };
        command.current_dir("/").stdin(Stdio::null());
        command
    }
}

/// Whether the effective user is root: the `Uid:` line of `/proc/self/status`, else `id -u`, else `$USER`.
fn running_as_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        // "Uid:  real  effective  saved  filesystem"
        if let Some(line) = status.lines().find(|line| line.starts_with("Uid:")) {
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    if let Ok(output) = std::process::Command::new("id").arg("-u").stdin(Stdio::null()).output() {
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).trim() == "0";
        }
    }
    std::env::var("USER").is_ok_and(|user| user == "root")
}

/// Whether process `pid` has exited but not been reaped. `kill(pid, 0)`, and so `pg_ctl status` and the
/// postmaster's own lock-file checks, still see such a process, e.g. a crashed postmaster whose parent is a
/// container's PID 1 that does not reap orphans.
fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces and parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|end| stat[end + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Quotes `arg` for a POSIX shell.
fn sh_quote(arg: &OsStr) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &byte in arg.as_bytes() {
        if byte == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(byte);
        }
    }
    quoted.push(b'\'');
    quoted
}

/// Creates `dir` and its missing parents; when `world_traversable`, the created ones get mode 0755 whatever
/// the umask, so that the `postgres` user can pass through them.
fn create_dir_tree(dir: &Path, world_traversable: bool) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|ancestor| !ancestor.exists()).collect();
    for ancestor in missing.into_iter().rev() {
        match std::fs::create_dir(ancestor) {
            Ok(()) if world_traversable => {
                std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("could not set the mode of {}", ancestor.display()))?;
            }
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("could not create {}", ancestor.display())),
        }
    }
    Ok(())
}

/// `chown -R postgres: paths…` (the `postgres` user and its login group).
async fn chown_to_pg_user(paths: &[&Path]) -> Result<()> {
    let mut chown = std::process::Command::new("chown");
    chown.arg("-R").arg(format!("{PG_USER}:")).args(paths).stdin(Stdio::null());
    run_checked(chown, "chown").await.map(drop)
}

/// Runs `command` to completion, failing with its output when it exits unsuccessfully.
async fn run_checked(command: std::process::Command, name: &str) -> Result<Output> {
    let shown = format!("{command:?}");
    let output =
        Command::from(command).output().await.with_context(|| format!("could not run {name}: {shown}"))?;
    if !output.status.success() {
        bail!("{name} failed ({}): {shown}\n{}", output.status, describe_output(&output));
    }
    Ok(output)
}

/// A command's standard output and error, for an error message.
fn describe_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    [stdout.trim(), stderr.trim()].into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join("\n")
}

/// The last `lines` lines of the log file at `path` (reading at most its last 16 KiB).
fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(could not read the log: {err})"),
    }
}

/// The exclusive start-up lock of one cluster (see the module docs); released on drop.
enum ClusterLock {
    /// A `flock(1)` child that holds the lock until its standard input closes (or it is killed on drop).
    Flock {
        /// The `flock` process (boxed: it is much larger than the other variant).
        child: Box<Child>,
        /// Its standard input; closing it releases the lock.
        stdin: ChildStdin,
    },
    /// The fallback lock file.
    PidFile(PidFileLock),
}

impl ClusterLock {
    /// Takes the lock at `path`, waiting at most `timeout` for its current holder.
    async fn acquire(path: &Path, timeout: Duration) -> Result<Self> {
        match Self::acquire_flock(path, timeout).await? {
            Some(lock) => Ok(lock),
            None => Ok(Self::PidFile(PidFileLock::acquire(&pid_lock_path(path), timeout).await?)),
        }
    }

    /// Takes the lock with `flock(1)`; `Ok(None)` when `flock` is not installed.
    async fn acquire_flock(path: &Path, timeout: Duration) -> Result<Option<Self>> {
        let spawned = Command::new("flock")
            .arg("--exclusive")
            .arg(path)
            .args(["/bin/sh", "-c", "echo locked && exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).context("could not run flock"),
        };
        let stdin = child.stdin.take().context("flock has no standard input")?;
        let mut stdout = BufReader::new(child.stdout.take().context("flock has no standard output")?);
        let mut line = String::new();
        match tokio::time::timeout(timeout, stdout.read_line(&mut line)).await {
            Ok(Ok(_)) if line.trim() == "locked" => Ok(Some(Self::Flock { child: Box::new(child), stdin })),
            Ok(_) => {
                drop(stdin);
                let output = child.wait_with_output().await.context("could not wait for flock")?;
                bail!(
                    "flock could not lock {} ({}): {}",
                    path.display(),
                    output.status,
                    describe_output(&output)
                )
            }
            Err(_) => bail!(
                "timed out after {}s waiting for the lock {}: another process is initialising or starting \
                 the cluster",
                timeout.as_secs(),
                path.display()
            ),
        }
    }

    /// Releases the lock and waits (briefly) until it is free for others.
    async fn release(self) {
        match self {
            Self::Flock { mut child, stdin } => {
                drop(stdin);
                if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                    warn!("flock did not exit after its input closed; killing it");
                }
            }
            Self::PidFile(lock) => drop(lock),
        }
    }
}

/// The fallback lock file's path for the flock lock file `path`.
fn pid_lock_path(path: &Path) -> PathBuf {
    let mut pid_path = path.as_os_str().to_owned();
    pid_path.push(".pid");
    PathBuf::from(pid_path)
}

/// A lock file created with `create_new` that holds its owner's pid; removed on drop.
struct PidFileLock(PathBuf);

impl PidFileLock {
    /// Creates the lock file at `path`, waiting at most `timeout` while another live process holds it.
    async fn acquire(path: &Path, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let lock = Self(path.to_path_buf());
                    writeln!(file, "{}", std::process::id())
                        .with_context(|| format!("could not write the lock file {}", path.display()))?;
                    return Ok(lock);
                }
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                    if pid_file_is_stale(path, timeout) {
                        warn!(lock = %path.display(), "removing a stale lock file");
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        bail!(
                            "timed out after {}s waiting for the lock {}: another process is initialising or \
                             starting the cluster (delete the file if no such process exists)",
                            timeout.as_secs(),
                            path.display()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("could not create the lock file {}", path.display()))
                }
            }
        }
    }
}

impl Drop for PidFileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether the lock file at `path` was left by a process that no longer exists; when the pid cannot be
/// read (or there is no `/proc`), whether the file is older than `max_age`.
fn pid_file_is_stale(path: &Path, max_age: Duration) -> bool {
    let pid = std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new("/proc/self").exists() => !Path::new("/proc").join(pid.to_string()).exists(),
        _ => path
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > max_age),
    }
}

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
async fn wait_for_probe(url: &str, total: Duration) -> bool {
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

    /// A fresh directory under /tmp that every user can traverse; removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        /// Creates `/tmp/<prefix>-<random>` with mode 0755.
        fn new(prefix: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("{prefix}-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Stops the test cluster (immediately) even when the test fails halfway.
    struct StopOnDrop {
        /// The cluster's data directory.
        data_dir: PathBuf,
        /// Its binaries.
        bin_dir: PathBuf,
    }

    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            if self.data_dir.join("postmaster.pid").exists() {
                if let Ok(runner) = Runner::detect() {
                    let args = ["stop".as_ref(), "-D".as_ref(), self.data_dir.as_os_str(), "-m".as_ref()];
                    let _ = runner
                        .command(&self.bin_dir.join("pg_ctl"), args.into_iter().chain(["immediate".as_ref()]))
                        .output();
                }
            }
        }
    }

    /// A TCP port that was free a moment ago.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// The pid of a process that has exited.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn private_cluster_lifecycle() {
        let Some(bin_dir) = find_pg_bin_dir() else {
            eprintln!(
                "skipping private_cluster_lifecycle: no PostgreSQL server binaries ({BINARIES_NOT_FOUND})"
            );
            return;
        };
        let tmp = TempDir::new("embedded-pg-test");
        let pg = EmbeddedPostgres::new(tmp.0.join("cluster").join("data"), free_port());
        let _stop = StopOnDrop { data_dir: pg.data_dir.clone(), bin_dir };

        let (first, second) = tokio::join!(pg.ensure_running(), pg.ensure_running());
        let url = first.expect("first ensure_running");
        assert_eq!(second.expect("second ensure_running"), url);
        assert_eq!(url, format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port));
        assert!(probe(&url, Duration::from_secs(5)).await);
        assert_eq!(pg.ensure_running().await.unwrap(), url, "idempotent when running");

        let (db_url, again) = tokio::join!(
            ensure_database(&url, "embedded_pg_test"),
            ensure_database(&url, "embedded_pg_test")
        );
        let db_url = db_url.expect("ensure_database");
        assert_eq!(again.expect("concurrent ensure_database"), db_url);
        assert_eq!(db_url, format!("postgres://postgres@127.0.0.1:{}/embedded_pg_test", pg.port));
        let mut conn = PgConnection::connect(&db_url).await.unwrap();
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        let current: String =
            sqlx::query_scalar("select current_database()").fetch_one(&mut conn).await.unwrap();
        assert_eq!(current, "embedded_pg_test");
        conn.close().await.unwrap();

        pg.stop().await.expect("stop");
        assert!(!probe(&url, Duration::from_secs(2)).await);
        pg.stop().await.expect("stop is idempotent");

        // A postmaster.pid left by a crash must not prevent the next start.
        let pid_file = pg.data_dir.join("postmaster.pid");
        std::fs::write(&pid_file, format!("{}\n{}\n0\n{}\n", dead_pid(), pg.data_dir.display(), pg.port))
            .unwrap();
        assert_eq!(pg.ensure_running().await.expect("start over a stale postmaster.pid"), url);
        assert!(ensure_database(&url, "embedded_pg_test").await.is_ok(), "data survived the restart");

        // So must a crashed postmaster, once it has been reaped: until then it counts as running, for
        // PostgreSQL too. Where nothing reaps orphans (a container without an init), skip this part.
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().lines().next().unwrap().parse().unwrap();
        assert!(std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if is_zombie(pid) {
            eprintln!("skipping the crash check: nothing reaped the killed postmaster {pid}");
        } else {
            assert_eq!(pg.ensure_running().await.expect("start after a crash"), url);
            assert!(probe(&url, Duration::from_secs(5)).await);
        }
        pg.stop().await.expect("second stop");
        assert!(!pid_file.exists());
    }

    #[tokio::test]
    async fn cluster_lock_is_exclusive() {
        let tmp = TempDir::new("embedded-pg-lock");
        let path = tmp.0.join("data.lock");
        let held = ClusterLock::acquire(&path, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(held, ClusterLock::Flock { .. }), "flock(1) is installed here");
        let err = ClusterLock::acquire(&path, Duration::from_millis(300)).await.err().expect("lock is held");
        assert!(err.to_string().contains("timed out"), "{err:#}");
        held.release().await;
        ClusterLock::acquire(&path, Duration::from_secs(5)).await.unwrap().release().await;
    }

    #[tokio::test]
    async fn pid_file_lock_is_exclusive_and_recovers_stale_files() {
        let tmp = TempDir::new("embedded-pg-pidlock");
        let path = tmp.0.join("data.lock.pid");
        let held = PidFileLock::acquire(&path, Duration::from_secs(5)).await.unwrap();
        assert!(PidFileLock::acquire(&path, Duration::from_millis(300)).await.is_err());
        drop(held);
        assert!(!path.exists());

        std::fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        let recovered =
            PidFileLock::acquire(&path, Duration::from_secs(1)).await.expect("stale lock removed");
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), std::process::id().to_string());
        drop(recovered);
    }

    #[test]
    fn runners_run_as_the_postgres_user_when_root() {
        let Ok(runner) = Runner::detect() else {
            eprintln!("skipping: root without a postgres user");
            return;
        };
        let mut runners = vec![runner.clone()];
        if runner.is_root() {
            runners.push(Runner::Su(find_executable("su", SYSTEM_BIN_DIRS).expect("su")));
        }
        let expected_user = if runner.is_root() {
            PG_USER.to_owned()
        } else {
            let output = std::process::Command::new("id").arg("-un").output().unwrap();
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        };
        for runner in runners {
            let args = ["-c".as_ref(), r#"printf '%s|%s' "$(id -un)" "$1""#.as_ref(), "sh".as_ref()];
            let output = runner
                .command(Path::new("/bin/sh"), args.into_iter().chain(["it's a \"test\" $HOME".as_ref()]))
                .output()
                .unwrap();
            assert!(output.status.success(), "{runner:?}: {}", describe_output(&output));
            assert_eq!(
                String::from_utf8(output.stdout).unwrap(),
                format!("{expected_user}|it's a \"test\" $HOME"),
                "{runner:?}"
            );
        }
    }

    #[test]
    fn zombies_are_detected() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_zombie(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_zombie(pid), "an exited, unreaped child is a zombie");
        child.wait().unwrap();
        assert!(!is_zombie(pid));
        assert!(!is_zombie(std::process::id()));
    }

    #[test]
    fn versions_sort_numerically() {
        let mut versions = ["9.6", "15", "10", "16"].map(|name| parse_version(name).unwrap());
        versions.sort();
        assert_eq!(versions, [vec![9, 6], vec![10], vec![15], vec![16]]);
        assert_eq!(parse_version("15beta1"), None);
    }

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

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote(OsStr::new("a b")), b"'a b'");
        assert_eq!(sh_quote(OsStr::new("it's")), b"'it'\\''s'");
    }

    #[test]
    fn socket_path_length_is_checked() {
        let pg = EmbeddedPostgres::new(format!("/tmp/{}", "d".repeat(120)), 5432);
        let err = Cluster::resolve(&pg).expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err:#}");
    }
}
