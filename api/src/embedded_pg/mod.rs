//! Zero-configuration PostgreSQL: a private cluster run from the system's server binaries.
//!
//! When `DATABASE_URL` is not set, `pettycash serve` calls [`EmbeddedPostgres::ensure_running`] to get a
//! server, and the test suite does the same when no server is reachable. The private cluster:
//!
//! * keeps its data in [`EmbeddedPostgres::data_dir`]; the server log is `postgres.log` in the directory
//!   that contains the data directory, next to `<data_dir>.lock` (the start-up lock, see [`lock`]);
//! * listens on `127.0.0.1:<port>` only, plus a Unix socket inside the data directory itself (mode 0700,
//!   so only its owner can use it). The socket path `<data_dir>/.s.PGSQL.<port>` must fit in 107 bytes;
//! * uses `trust` authentication for the `postgres` superuser. That is acceptable only because the cluster
//!   is private and bound to the loopback interface: any local user of the machine can connect to it as
//!   superuser, so it is meant for single-user machines, development and CI. Deployments that need more
//!   set `DATABASE_URL` to a properly secured server instead.
//!
//! As root, the server binaries run as the `postgres` OS user ([`run_as`]), which must be able to enter
//! every directory above the data directory. The embedded default ([`EmbeddedPostgres::for_data_dir`])
//! therefore moves its cluster out of a data directory that user cannot reach ([`placement`]).
//!
//! One port, one cluster: when another server (another checkout's cluster, say) answers on the port,
//! [`EmbeddedPostgres::ensure_running`] fails and says so rather than use it.
//!
//! One job per module: [`placement`] decides where the embedded default's cluster lives, [`binaries`]
//! finds the server binaries, [`cluster`] initialises, starts and stops a cluster, [`lock`] serialises
//! start-ups, [`run_as`] runs the binaries as the right OS user, [`admin`] talks to the running server.

mod admin;
mod binaries;
mod cluster;
mod lock;
mod placement;
mod run_as;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tracing::debug;

pub use admin::{ensure_database, probe};
use admin::{Server, PROBE_TIMEOUT};
pub use binaries::find_pg_bin_dir;
use cluster::Cluster;
pub use placement::SHARED_ROOT;
use run_as::PG_USER;

/// The database that the admin connection options point at.
const ADMIN_DATABASE: &str = "postgres";

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

    /// The embedded default's cluster for the service's data directory `data_dir` (`./var` unless
    /// configured), listening on `127.0.0.1:port`: `<data_dir>/pgdata`, or, when this process is root
    /// and the `postgres` user cannot reach that, `/var/lib/pettycash-embedded/<name>-<hash>/pgdata`
    /// (see [`placement`]). Nothing is created yet.
    ///
    /// # Errors
    ///
    /// When the current directory is gone, or as root when the `postgres` user is missing or the check
    /// of what it can reach cannot run.
    pub fn for_data_dir(data_dir: &Path, port: u16) -> Result<Self> {
        Ok(Self::new(placement::locate(data_dir, Path::new(SHARED_ROOT))?, port))
    }

    /// The directory that holds the cluster's data directory, its log and its lock: what to delete,
    /// once the cluster is stopped, to remove it. For the embedded default that is either the service's
    /// data directory (which also holds the demo's logins) or the cluster's own directory in
    /// [`SHARED_ROOT`].
    pub fn home(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    /// The superuser's connection options for the `postgres` database of this cluster (over TCP,
    /// without TLS: the cluster has none, and the traffic stays on the loopback interface).
    pub fn admin_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(PG_USER)
            .database(ADMIN_DATABASE)
            .ssl_mode(PgSslMode::Disable)
    }

    /// Initialise (if needed) and start (if not running) the cluster; idempotent and safe when several
    /// processes call it at once.
    ///
    /// Does nothing when the cluster already answers on the port. Otherwise it takes the exclusive start-up
    /// lock and checks again; then it runs `initdb` when the data directory holds no cluster yet, removes
    /// a stale `postmaster.pid` (left by a crash or a reboot, and only when `pg_ctl status` says no server
    /// is running), and starts the server with `pg_ctl start -w`. Returns [`Self::admin_options`].
    ///
    /// # Errors
    ///
    /// When the server binaries cannot be found, the error says how to install them or what to set
    /// instead. When the server fails to start, the error includes the tail of its log. When another
    /// server answers on the port, the error names its data directory and says what to do.
    pub async fn ensure_running(&self) -> Result<PgConnectOptions> {
        if self.answers().await? {
            debug!(port = self.port, "private PostgreSQL cluster already running");
        } else {
            Cluster::resolve(self)?.start().await?;
        }
        Ok(self.admin_options())
    }

    /// Whether this cluster answers on its port; an error when another server does.
    async fn answers(&self) -> Result<bool> {
        let ours = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let theirs = match admin::server(&self.admin_options(), PROBE_TIMEOUT).await {
            Server::Down => return Ok(false),
            Server::Up { data_dir: Some(theirs) } if same_dir(&theirs, &ours) => return Ok(true),
            Server::Up { data_dir: Some(theirs) } => format!("the cluster in {}", theirs.display()),
            Server::Up { data_dir: None } => "a server that does not say where its data is".to_owned(),
        };
        bail!(
            "port {port} is taken by another PostgreSQL server ({theirs}), not the private cluster in {}. \
             Stop that server, or give this cluster a port of its own (the service: \
             PETTYCASH_EMBEDDED_PG_PORT=<port>)",
            ours.display(),
            port = self.port,
        )
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
        Cluster::resolve(self)?.stop().await
    }
}

/// Whether `a` and `b` name the same directory (also through symbolic links).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, PgConnection};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

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
    struct StopOnDrop(PathBuf);

    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            if !self.0.join("postmaster.pid").exists() {
                return;
            }
            if let (Some(bin_dir), Ok(run_as)) = (find_pg_bin_dir(), run_as::RunAs::detect()) {
                let _ = run_as
                    .command(&bin_dir.join("pg_ctl"))
                    .arg("stop")
                    .arg("-D")
                    .arg(&self.0)
                    .args(["-m", "immediate"])
                    .output();
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

    /// The whole life of a cluster placed for a checkout inside a private (0700) directory, as
    /// `pettycash serve` places it: as root it is moved where the `postgres` user can reach it (here a
    /// stand-in for /var/lib/pettycash-embedded), otherwise it stays in the checkout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn private_cluster_lifecycle() {
        if find_pg_bin_dir().is_none() {
            eprintln!("skipping private_cluster_lifecycle: {}", binaries::BINARIES_NOT_FOUND);
            return;
        }
        let tmp = TempDir::new("embedded-pg-test");
        let private = tmp.0.join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let app_dir = private.join("checkout").join("var");
        let shared = tmp.0.join("shared");
        let pg = EmbeddedPostgres::new(placement::locate(&app_dir, &shared).unwrap(), free_port());
        let _stop = StopOnDrop(pg.data_dir.clone());
        let expected_home = if run_as::effective_uid() == 0 { &shared } else { &private };
        assert!(pg.data_dir.starts_with(expected_home), "{}", pg.data_dir.display());

        let (first, second) = tokio::join!(pg.ensure_running(), pg.ensure_running());
        let admin = first.expect("first ensure_running");
        second.expect("second ensure_running");
        assert_eq!((admin.get_port(), admin.get_database()), (pg.port, Some("postgres")));
        assert!(probe(&admin, Duration::from_secs(5)).await);
        pg.ensure_running().await.expect("idempotent when running");

        let (db, again) = tokio::join!(
            ensure_database(&admin, "embedded_pg_test"),
            ensure_database(&admin, "embedded_pg_test")
        );
        let db = db.expect("ensure_database");
        again.expect("concurrent ensure_database");
        assert_eq!((db.get_port(), db.get_database()), (pg.port, Some("embedded_pg_test")));
        let mut conn = PgConnection::connect_with(&db).await.unwrap();
        let current: String =
            sqlx::query_scalar("select current_database()").fetch_one(&mut conn).await.unwrap();
        assert_eq!(current, "embedded_pg_test");
        conn.close().await.unwrap();

        // Another cluster on the same port is refused, not served by this one.
        let other = EmbeddedPostgres::new(tmp.0.join("other").join("data"), pg.port);
        let err = other.ensure_running().await.expect_err("the port belongs to the first cluster");
        let message = format!("{err:#}");
        assert!(message.contains("is taken by another PostgreSQL server"), "{message}");
        assert!(message.contains(&pg.data_dir.display().to_string()), "{message}");
        assert!(!tmp.0.join("other").exists(), "nothing was created for it");

        pg.stop().await.expect("stop");
        assert!(!probe(&admin, Duration::from_secs(2)).await);
        pg.stop().await.expect("stop is idempotent");

        // A postmaster.pid left by a crash must not prevent the next start.
        let pid_file = pg.data_dir.join("postmaster.pid");
        std::fs::write(&pid_file, format!("{}\n{}\n0\n{}\n", dead_pid(), pg.data_dir.display(), pg.port))
            .unwrap();
        pg.ensure_running().await.expect("start over a stale postmaster.pid");
        assert!(ensure_database(&admin, "embedded_pg_test").await.is_ok(), "data survived the restart");

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
        if cluster::is_zombie(pid) {
            eprintln!("skipping the crash check: nothing reaped the killed postmaster {pid}");
        } else {
            pg.ensure_running().await.expect("start after a crash");
            assert!(probe(&admin, Duration::from_secs(5)).await);
        }
        pg.stop().await.expect("second stop");
        assert!(!pid_file.exists());
    }
}
