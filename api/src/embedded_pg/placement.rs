//! Where the embedded default keeps its cluster.
//!
//! Normally beside the service's other files: `<data_dir>/pgdata` (`./var/pgdata` by default). But as
//! root the server runs as the `postgres` OS user ([`super::run_as`]), and that user cannot enter a
//! checkout under a private directory such as `/root` or one made by `mktemp -d` (mode 0700). Then the
//! cluster lives in `/var/lib/pettycash-embedded/<name>-<hash>/` instead: its data in `pgdata/`, beside
//! its log and its lock. `<name>` is the name of the directory that contains the data directory (the
//! checkout, for `./var`) and `<hash>` 12 hex digits of the SHA-256 of the data directory's absolute
//! path, so the same checkout finds the same cluster on every start, two checkouts never share one, and
//! a listing shows which is whose. Once a cluster lives there, later starts keep it, even when the
//! checkout has become reachable meanwhile. Only the cluster moves: the service's own files (such as
//! `demo-logins.txt`) stay in the data directory.
//!
//! Why `/var/lib`: it is where the system keeps services' state, it survives reboots, and root can make
//! a directory there that every user can enter. `/tmp` is emptied at boot, and systemd-tmpfiles deletes
//! what nobody touched for 30 days in `/var/tmp`, which would corrupt an idle cluster. Asking the user to
//! `chmod` their home directory instead would open it to every local user.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::run_as::{effective_uid, RunAs};

/// The directory that holds the clusters moved out of unreachable data directories.
pub const SHARED_ROOT: &str = "/var/lib/pettycash-embedded";
/// The name of a cluster's data directory, in the service's data directory or in its moved home.
const CLUSTER_DIR: &str = "pgdata";
/// The longest `<name>` in a moved cluster's directory name (so that the socket path stays short).
const MAX_NAME: usize = 24;

/// The cluster data directory for the service's data directory `data_dir` (absolute), for a process
/// with effective uid `euid`, when the `postgres` user can (`reachable`) or cannot reach
/// `<data_dir>/pgdata`. Moved clusters go under `shared_root`. Looks at nothing: [`locate`] does.
pub(super) fn choose(data_dir: &Path, shared_root: &Path, euid: libc::uid_t, reachable: bool) -> PathBuf {
    if euid == 0 && !reachable {
        moved_home(data_dir, shared_root).join(CLUSTER_DIR)
    } else {
        data_dir.join(CLUSTER_DIR)
    }
}

/// The cluster data directory for the service's data directory `data_dir`, for this process: an
/// existing moved cluster if there is one, else what [`choose`] says.
pub(super) fn locate(data_dir: &Path, shared_root: &Path) -> Result<PathBuf> {
    let data_dir = std::path::absolute(data_dir)
        .with_context(|| format!("invalid data directory {}", data_dir.display()))?;
    let euid = effective_uid();
    if euid != 0 {
        return Ok(choose(&data_dir, shared_root, euid, true));
    }
    let moved = moved_home(&data_dir, shared_root).join(CLUSTER_DIR);
    if moved.join("PG_VERSION").is_file() {
        return Ok(moved);
    }
    let reachable = RunAs::detect()?.first_unreachable(&data_dir.join(CLUSTER_DIR))?.is_none();
    Ok(choose(&data_dir, shared_root, euid, reachable))
}

/// `<shared_root>/<name>-<hash>`: the home of the cluster moved out of `data_dir` (see the module docs).
fn moved_home(data_dir: &Path, shared_root: &Path) -> PathBuf {
    let name: String = data_dir
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(MAX_NAME)
        .collect();
    let name = if name.is_empty() || name.starts_with('.') { format!("pettycash{name}") } else { name };
    let hash = hex::encode(Sha256::digest(data_dir.as_os_str().as_encoded_bytes()));
    shared_root.join(format!("{name}-{}", &hash[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SHARED: &str = "/var/lib/pettycash-embedded";

    #[test]
    fn the_cluster_moves_only_for_root_when_the_postgres_user_cannot_reach_it() {
        let data_dir = Path::new("/root/work/pettycash/var");
        let in_place = data_dir.join("pgdata");
        let shared = Path::new(SHARED);
        assert_eq!(choose(data_dir, shared, 1000, true), in_place);
        assert_eq!(choose(data_dir, shared, 1000, false), in_place, "not root: its own files");
        assert_eq!(choose(data_dir, shared, 0, true), in_place);
        let moved = choose(data_dir, shared, 0, false);
        assert_eq!(moved.parent().unwrap().parent().unwrap(), shared);
        assert_eq!(moved.file_name().unwrap(), "pgdata");
        let home = moved.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert!(home.starts_with("pettycash-") && home.len() == "pettycash-".len() + 12, "{home}");
    }

    #[test]
    fn a_moved_cluster_has_one_home_per_data_directory() {
        let shared = Path::new(SHARED);
        let home = |dir: &str| moved_home(Path::new(dir), shared);
        assert_eq!(home("/root/a/var"), home("/root/a/var"), "the same on every start");
        assert_ne!(home("/root/a/var"), home("/root/b/var"));
        assert_ne!(home("/root/x/a/var"), home("/root/y/a/var"), "same name, other checkout");
        assert!(home("/root/a/var").to_str().unwrap().starts_with("/var/lib/pettycash-embedded/a-"));

        let odd = home("/root/my checkout (copy)/var");
        assert!(odd.file_name().unwrap().to_str().unwrap().starts_with("my_checkout__copy_-"), "{odd:?}");
        assert!(home("/var").file_name().unwrap().to_str().unwrap().starts_with("pettycash-"));
        assert!(home("/root/.hidden/var")
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("pettycash.hidden-"));
        let long = home(&format!("/root/{}/var", "n".repeat(200)));
        let socket = long.join("pgdata").join(".s.PGSQL.54329");
        assert!(socket.as_os_str().len() < 100, "{socket:?}");
    }

    /// The directory tree of one test: `<base>/private` (mode 0700) holds a checkout, `<base>/shared`
    /// stands for /var/lib/pettycash-embedded.
    struct Tree {
        base: PathBuf,
    }

    impl Tree {
        fn new() -> Self {
            let base = std::env::temp_dir().join(format!("embedded-pg-place-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(base.join("private").join("checkout")).unwrap();
            std::fs::create_dir_all(base.join("open").join("checkout")).unwrap();
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(base.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(base.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
            Self { base }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn a_checkout_in_a_private_directory_gets_a_moved_cluster_as_root() {
        let tree = Tree::new();
        let shared = tree.base.join("shared");
        let private = tree.base.join("private").join("checkout").join("var");
        let open = tree.base.join("open").join("checkout").join("var");
        let placed = locate(&private, &shared).unwrap();
        assert_eq!(locate(&private, &shared).unwrap(), placed, "the same on every start");
        assert_eq!(locate(&open, &shared).unwrap(), open.join("pgdata"));
        if effective_uid() == 0 {
            assert_eq!(placed, moved_home(&private, &shared).join("pgdata"));
        } else {
            assert_eq!(placed, private.join("pgdata"), "not root: the server runs as this user");
        }
    }

    #[test]
    fn a_moved_cluster_stays_where_it_is() {
        if effective_uid() != 0 {
            eprintln!("skipping: only root moves clusters");
            return;
        }
        let tree = Tree::new();
        let shared = tree.base.join("shared");
        let open = tree.base.join("open").join("checkout").join("var");
        let moved = moved_home(&open, &shared).join("pgdata");
        std::fs::create_dir_all(&moved).unwrap();
        std::fs::write(moved.join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(locate(&open, &shared).unwrap(), moved, "reachable now, but its cluster lives there");
    }
}
