//! The lifecycle of one cluster: `initdb`, `pg_ctl start` and `pg_ctl stop`, and recovery from what a
//! crash leaves behind. [`super::EmbeddedPostgres`] decides when; this module knows how.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::process::Command;
use tracing::{info, warn};

use super::admin::wait_for_probe;
use super::binaries::bin_dir_for;
use super::lock::StartLock;
use super::run_as::{RunAs, PG_USER};
use super::EmbeddedPostgres;

/// The server log's file name, in the directory that contains the data directory.
const LOG_FILE_NAME: &str = "postgres.log";
/// How long to wait for another process that is initialising or starting the same cluster.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a server that `pg_ctl status` reports as running gets to start answering.
const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// How many seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// The longest Unix socket path (`sun_path` holds 108 bytes including the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Everything needed to operate on one cluster, resolved from an [`EmbeddedPostgres`].
#[derive(Debug)]
pub(super) struct Cluster {
    /// The cluster, with an absolute data directory.
    pg: EmbeddedPostgres,
    /// The directory that contains the data directory, the log and the lock file.
    parent: PathBuf,
    /// Directory of initdb, pg_ctl and postgres.
    bin_dir: PathBuf,
    /// Who runs them.
    run_as: RunAs,
}

impl Cluster {
    /// Resolves paths, binaries and the user for `pg`, checking what can be checked up front.
    pub(super) fn resolve(pg: &EmbeddedPostgres) -> Result<Self> {
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
        let run_as = RunAs::detect()?;
        Ok(Self { pg: EmbeddedPostgres::new(data_dir, pg.port), parent, bin_dir, run_as })
    }

    /// The data directory (absolute).
    pub(super) fn data_dir(&self) -> &Path {
        &self.pg.data_dir
    }

    /// `<data_dir><suffix>`, a sibling of the data directory.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut path = self.data_dir().as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    }

    /// The server log file.
    fn log_path(&self) -> PathBuf {
        self.parent.join(LOG_FILE_NAME)
    }

    /// A `pg_ctl` command (no arguments yet), run as the right user.
    fn pg_ctl(&self) -> std::process::Command {
        self.run_as.command(&self.bin_dir.join("pg_ctl"))
    }

    /// Initialises (if needed) and starts the cluster under its start-up lock (see [`super::lock`]).
    pub(super) async fn start(&self) -> Result<()> {
        create_dir_tree(&self.parent, self.run_as.is_pg_user())?;
        let lock = StartLock::acquire(&self.sibling(".lock"), LOCK_TIMEOUT).await?;
        let result = self.start_locked().await;
        drop(lock);
        result.with_context(|| {
            format!("could not start the private PostgreSQL cluster in {}", self.data_dir().display())
        })
    }

    /// The body of [`Self::start`], with the lock held.
    async fn start_locked(&self) -> Result<()> {
        if self.pg.answers().await? {
            // Started by whoever held the lock before us.
            return Ok(());
        }
        if let Some(blocked) = self.run_as.first_unreachable(&self.parent)? {
            bail!(
                "this process runs as root, so PostgreSQL runs as the `{PG_USER}` OS user, but that user \
                 cannot enter the directory {} on the way to the data directory {}. Grant it search \
                 permission (e.g. `chmod o+x {}`) or choose a data directory under a path every user can \
                 enter",
                blocked.display(),
                self.data_dir().display(),
                blocked.display()
            );
        }
        if !self.data_dir().join("PG_VERSION").is_file() {
            self.initdb().await?;
        }
        let log = self.log_path();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("could not create the server log {}", log.display()))?;
        self.run_as.hand_over(&log)?;
        if self.handle_pid_file().await? {
            return Ok(());
        }
        self.pg_ctl_start().await
    }

    /// Creates the cluster with `initdb` in a staging directory, then renames that into place, so that an
    /// interrupted initdb never leaves a half-made data directory behind.
    async fn initdb(&self) -> Result<()> {
        let data_dir = self.data_dir();
        if let Ok(mut entries) = std::fs::read_dir(data_dir) {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty but holds no PostgreSQL cluster (it has no PG_VERSION file); move it \
                     away or choose another data directory",
                    data_dir.display()
                );
            }
        }
        let staging = self.sibling(".initdb");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("could not remove the leftover {}", staging.display()))?;
        }
        std::fs::create_dir(&staging).with_context(|| format!("could not create {}", staging.display()))?;
        self.run_as.hand_over(&staging)?;
        info!(data_dir = %data_dir.display(), "initialising private PostgreSQL cluster");
        // Trust authentication: see the module docs for why that is acceptable here.
        let mut initdb = self.run_as.command(&self.bin_dir.join("initdb"));
        initdb.arg("-D").arg(&staging).args(["-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--locale=C"]);
        run_checked(initdb, "initdb").await?;
        if data_dir.exists() {
            // Empty, as checked above.
            std::fs::remove_dir(data_dir)
                .with_context(|| format!("could not replace {}", data_dir.display()))?;
        }
        std::fs::rename(&staging, data_dir)
            .with_context(|| format!("could not move {} to {}", staging.display(), data_dir.display()))
    }

    /// Deals with a `postmaster.pid` in the data directory. Returns `Ok(true)` when its server answers;
    /// removes the file when `pg_ctl status` reports no running server (a stale file after a crash or
    /// reboot); fails when a live server does not answer on our port within [`STARTUP_GRACE`] (it may be
    /// starting up, e.g. running crash recovery, or it may have crashed and still await reaping).
    async fn handle_pid_file(&self) -> Result<bool> {
        let data_dir = self.data_dir();
        let pid_file = data_dir.join("postmaster.pid");
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
            let ours = port.is_none_or(|port| port == self.pg.port);
            if ours && self.pg.answers().await? {
                return Ok(true);
            }
            if !ours || Instant::now() >= deadline {
                let pid_text = pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
                if pid.is_some_and(is_zombie) {
                    bail!(
                        "the PostgreSQL server (pid {pid_text}) of {} has exited, but its parent has not reaped \
                         it, so it still counts as running and PostgreSQL refuses to start. Run this process \
                         under an init that reaps orphans (e.g. `docker run --init`)",
                        data_dir.display()
                    );
                }
                bail!(
                    "a PostgreSQL server (pid {pid_text}, port {}) is running from {} but does not answer on \
                     127.0.0.1:{}. Stop it (`pg_ctl stop -D {}`) and retry; if no such server exists, delete the \
                     stale {}",
                    port.map_or_else(|| "unknown".to_owned(), |port| port.to_string()),
                    data_dir.display(),
                    self.pg.port,
                    data_dir.display(),
                    pid_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Whether `pg_ctl status` reports a running server for the data directory.
    pub(super) async fn server_alive(&self) -> Result<bool> {
        let mut status = self.pg_ctl();
        status.arg("status").arg("-D").arg(self.data_dir());
        let output = Command::from(status).output().await.context("could not run pg_ctl status")?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => bail!("pg_ctl status failed ({}): {}", output.status, describe_output(&output)),
        }
    }

    /// Starts the server with `pg_ctl start -w` and checks that it answers over TCP.
    async fn pg_ctl_start(&self) -> Result<()> {
        let (data_dir, port) = (self.data_dir(), self.pg.port);
        let log = self.log_path();
        // pg_ctl hands `-o` to /bin/sh, so the socket directory is shell-quoted.
        let mut options = format!("-p {port} -k ").into_bytes();
        options.extend(sh_quote(data_dir.as_os_str().as_bytes()));
        options.extend_from_slice(
            b" -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 -c shared_buffers=128MB",
        );
        info!(data_dir = %data_dir.display(), port, "starting private PostgreSQL cluster");
        let mut start = self.pg_ctl();
        start
            .arg("start")
            .arg("-D")
            .arg(data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "-o"])
            .arg(OsString::from_vec(options));
        let failure = match run_checked(start, "pg_ctl start").await {
            Ok(_) if wait_for_probe(&self.pg.admin_options(), Duration::from_secs(15)).await => return Ok(()),
            Ok(_) => {
                anyhow!("pg_ctl reported the server as started, but it does not answer on 127.0.0.1:{port}")
            }
            Err(err) => err,
        };
        let with_log =
            anyhow!("{failure:#}\n--- last lines of {} ---\n{}", log.display(), log_tail(&log, 30));
        Err(with_log.context(format!("PostgreSQL failed to start on port {port}")))
    }

    /// Stops the server (`pg_ctl stop -m fast`), when `pg_ctl status` says one runs.
    pub(super) async fn stop(&self) -> Result<()> {
        if !self.server_alive().await? {
            return Ok(());
        }
        let data_dir = self.data_dir();
        info!(data_dir = %data_dir.display(), "stopping private PostgreSQL cluster");
        let mut stop = self.pg_ctl();
        stop.arg("stop").arg("-D").arg(data_dir).args(["-m", "fast", "-w", "-t", PG_CTL_WAIT_SECS]);
        run_checked(stop, "pg_ctl stop").await.with_context(|| {
            format!("could not stop the private PostgreSQL cluster in {}", data_dir.display())
        })?;
        Ok(())
    }
}

/// Whether process `pid` has exited but not been reaped. `kill(pid, 0)`, and so `pg_ctl status` and the
/// postmaster's own lock-file checks, still see such a process, e.g. a crashed postmaster whose parent is a
/// container's PID 1 that does not reap orphans.
pub(super) fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces and parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|end| stat[end + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Quotes `arg` for a POSIX shell.
fn sh_quote(arg: &[u8]) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &byte in arg {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn shell_quoting() {
        assert_eq!(sh_quote(b"a b"), b"'a b'");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
    }

    #[test]
    fn socket_path_length_is_checked() {
        let pg = EmbeddedPostgres::new(format!("/tmp/{}", "d".repeat(120)), 5432);
        let err = Cluster::resolve(&pg).expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err:#}");
    }
}
