//! The start-up lock of a cluster: whoever initialises or starts it holds an exclusive `flock(2)` lock on
//! `<data_dir>.lock`, so that several processes (test binaries run in parallel) calling
//! [`super::EmbeddedPostgres::ensure_running`] at once never run `initdb` or `pg_ctl start` twice.
//!
//! The kernel releases the lock when its file is closed, also when the holder dies, so there are no stale
//! locks to detect. The lock file itself stays (deleting it would let a waiter lock a file that is no
//! longer the one others open). Each [`StartLock::acquire`] opens the file anew, and `flock` locks belong
//! to an open file: two tasks of one process exclude each other too. (`File::try_lock` does the same from
//! Rust 1.89, newer than the workspace's `rust-version`.)

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often a waiter tries again.
const RETRY: Duration = Duration::from_millis(100);

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub(super) struct StartLock {
    /// The open lock file; closing it releases the lock.
    _file: File,
}

impl StartLock {
    /// Locks the file at `path` (created if missing), waiting at most `timeout` for its current holder.
    ///
    /// Polls without blocking rather than blocking a thread in `flock`, so that waiting can time out and
    /// does not hold up the async runtime.
    pub(super) async fn acquire(path: &Path, timeout: Duration) -> Result<Self> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("could not open the lock file {}", path.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock only operates on the descriptor, which `file` keeps open during the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                return Err(err).with_context(|| format!("could not lock {}", path.display()));
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {}s waiting for the lock {}: another process is initialising or \
                     starting the cluster",
                    timeout.as_secs(),
                    path.display()
                );
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_lock_is_exclusive_until_dropped() {
        let path = std::env::temp_dir().join(format!("embedded-pg-lock-{:016x}", rand::random::<u64>()));
        let held = StartLock::acquire(&path, Duration::from_secs(5)).await.unwrap();
        let err = StartLock::acquire(&path, Duration::from_millis(300)).await.expect_err("lock is held");
        assert!(err.to_string().contains("timed out"), "{err:#}");

        let waiter = tokio::spawn({
            let path = path.clone();
            async move { StartLock::acquire(&path, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "a waiter waits while the lock is held");
        drop(held);
        waiter.await.unwrap().expect("the waiter gets the lock once it is released");
        std::fs::remove_file(&path).unwrap();
    }
}
