//! Running the server binaries as the right OS user.
//!
//! `initdb` and `postgres` refuse to run as root. When this process is root (`geteuid() == 0`), they run
//! as the `postgres` OS user instead: the child process gets that user's uid and primary gid
//! (`CommandExt::uid`/`gid`; std then also drops root's supplementary groups), looked up with
//! `getpwnam_r`. Unlike `runuser -u postgres --` or `su`, that needs no other program, no PAM session and
//! no shell quoting. The child keeps this process's environment: the server binaries read nothing
//! user-specific from it. Files that root creates for the server (the initdb staging directory, the log)
//! are handed to that user with `chown`. Otherwise the binaries run as this process's own user.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

/// The OS user that runs the server when this process is root; also the cluster's superuser.
pub const PG_USER: &str = "postgres";

/// Who the server binaries run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunAs {
    /// This process is not root: its own user.
    Me,
    /// This process is root: the `postgres` user.
    PgUser {
        /// Its uid.
        uid: libc::uid_t,
        /// Its primary group.
        gid: libc::gid_t,
    },
}

impl RunAs {
    /// Who runs the server binaries for this process.
    ///
    /// # Errors
    ///
    /// As root, when there is no `postgres` user (the message says how to create one).
    pub(super) fn detect() -> Result<Self> {
        if effective_uid() != 0 {
            return Ok(Self::Me);
        }
        match lookup_user(PG_USER).with_context(|| format!("could not look up the `{PG_USER}` OS user"))? {
            Some((uid, gid)) => Ok(Self::PgUser { uid, gid }),
            None => bail!(
                "this process runs as root, which PostgreSQL refuses, and there is no `{PG_USER}` OS user to \
                 run it as. Create one (`useradd --system --user-group --home-dir /var/lib/postgresql \
                 {PG_USER}`), run as a non-root user, or set DATABASE_URL to an existing server"
            ),
        }
    }

    /// Whether the binaries run as another user than this process's (the `postgres` user, as root).
    pub(super) fn is_pg_user(&self) -> bool {
        matches!(self, Self::PgUser { .. })
    }

    /// A command running `program` as the right user, from `/` (which every user can enter) and with
    /// standard input closed.
    pub(super) fn command(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        if let Self::PgUser { uid, gid } = *self {
            command.uid(uid).gid(gid);
        }
        command.current_dir("/").stdin(Stdio::null());
        command
    }

    /// Gives `path` (not what is inside) to the user the binaries run as; nothing to do for [`Self::Me`].
    pub(super) fn hand_over(&self, path: &Path) -> Result<()> {
        if let Self::PgUser { uid, gid } = *self {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("could not give {} to the `{PG_USER}` user", path.display()))?;
        }
        Ok(())
    }

    /// The first directory on the way to `dir` (those of its ancestors that exist, and `dir` itself if
    /// it does) that the user the binaries run as may not enter; `None` when it can reach them all. This
    /// process's own user is taken to reach them: it made or chose them.
    ///
    /// The check runs as that user (`[ -x dir ]` in a shell), so ACLs and group memberships count as
    /// they will for the server.
    pub(super) fn first_unreachable(&self, dir: &Path) -> Result<Option<PathBuf>> {
        const SCRIPT: &str = r#"for d in "$@"; do [ -x "$d" ] || { printf '%s' "$d"; exit 1; }; done"#;
        if !self.is_pg_user() {
            return Ok(None);
        }
        let mut existing: Vec<&Path> = dir.ancestors().filter(|ancestor| ancestor.is_dir()).collect();
        existing.reverse();
        let output = self
            .command(Path::new("/bin/sh"))
            .args(["-c", SCRIPT, "sh"])
            .args(existing)
            .output()
            .with_context(|| format!("could not run a shell as the `{PG_USER}` user"))?;
        if output.status.success() {
            return Ok(None);
        }
        if output.stdout.is_empty() {
            bail!(
                "could not check that the `{PG_USER}` user can reach {} ({}): {}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Some(PathBuf::from(OsString::from_vec(output.stdout))))
    }
}

/// This process's effective uid.
pub(super) fn effective_uid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid and primary gid of the OS user `name`, `None` when there is no such user.
fn lookup_user(name: &str) -> std::io::Result<Option<(libc::uid_t, libc::gid_t)>> {
    let name = CString::new(name)?;
    let mut buffer: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero `passwd` is valid (null pointers and zero ids); getpwnam_r fills it in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call, and `buffer.len()` is the size of
        // the buffer that the strings of `entry` are written to (they are not read afterwards).
        let code = unsafe {
            libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found)
        };
        match code {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some((entry.pw_uid, entry.pw_gid))),
            libc::ERANGE if buffer.len() < 1 << 20 => buffer.resize(buffer.len() * 2, 0),
            code => return Err(std::io::Error::from_raw_os_error(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_binaries_run_as_the_postgres_user_when_root() {
        let run_as = RunAs::detect().expect("root has a postgres user here");
        let output =
            run_as.command(Path::new("/bin/sh")).args(["-c", "id -un; id -G; pwd"]).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        match run_as {
            RunAs::PgUser { gid, .. } => {
                assert_eq!(lines[0], PG_USER);
                assert_eq!(lines[1], gid.to_string(), "only its primary group: root's groups are dropped");
            }
            RunAs::Me => assert_ne!(effective_uid(), 0),
        }
        assert_eq!(lines[2], "/");
    }

    #[test]
    fn users_are_looked_up() {
        assert_eq!(lookup_user("root").unwrap(), Some((0, 0)));
        assert_eq!(lookup_user("no-such-user-here").unwrap(), None);
    }

    #[test]
    fn a_private_directory_is_unreachable_for_the_postgres_user() {
        let run_as = RunAs::detect().unwrap();
        let base = std::env::temp_dir().join(format!("embedded-pg-reach-{:016x}", rand::random::<u64>()));
        let private = base.join("private");
        std::fs::create_dir_all(private.join("checkout")).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let blocked = run_as.first_unreachable(&private.join("checkout").join("var"));
        let open = run_as.first_unreachable(&base.join("not-yet"));
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(open.unwrap(), None);
        if run_as.is_pg_user() {
            assert_eq!(blocked.unwrap(), Some(private));
        } else {
            assert_eq!(blocked.unwrap(), None, "this process's own user reaches its own directories");
        }
    }
}
