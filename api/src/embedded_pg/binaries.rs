//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) to run a cluster with.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{anyhow, bail, Result};

/// The error returned when no PostgreSQL server binaries can be found.
pub const BINARIES_NOT_FOUND: &str = "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: \
    `apt-get install postgresql`) or set DATABASE_URL to an existing server (or PG_BIN_DIR to the \
    directory containing initdb).";
/// Where Debian and Ubuntu install the server binaries of each major version (`<root>/<version>/bin`).
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// Where the system's PostgreSQL server binaries live (initdb, pg_ctl, postgres).
///
/// Looks, in order, at: the `PG_BIN_DIR` environment variable (taken as given when set and not empty);
/// the highest version under `/usr/lib/postgresql/*/bin` that contains `initdb`; `pg_config --bindir`;
/// the directory of `initdb` on `PATH`. Returns `None` when none of them yields a directory.
pub fn find_pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = pinned_bin_dir() {
        return Some(dir);
    }
    debian_bin_dirs()
        .into_iter()
        .next()
        .or_else(pg_config_bin_dir)
        .or_else(|| find_on_path("initdb").and_then(|initdb| initdb.parent().map(Path::to_path_buf)))
}

/// The binaries to run the cluster in `data_dir` with. Unless `PG_BIN_DIR` is set, an existing cluster
/// gets the binaries of its own major version when they are installed, so that installing a newer
/// PostgreSQL next to the old one does not break it; otherwise [`find_pg_bin_dir`] decides.
pub(super) fn bin_dir_for(data_dir: &Path) -> Result<PathBuf> {
    let same_version = if pinned_bin_dir().is_some() {
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

/// `PG_BIN_DIR`, when set and not empty.
fn pinned_bin_dir() -> Option<PathBuf> {
    std::env::var_os("PG_BIN_DIR").filter(|dir| !dir.is_empty()).map(PathBuf::from)
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

/// The executable `name` on `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        candidate.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut versions = ["9.6", "15", "10", "16"].map(|name| parse_version(name).unwrap());
        versions.sort();
        assert_eq!(versions, [vec![9, 6], vec![10], vec![15], vec![16]]);
        assert_eq!(parse_version("15beta1"), None);
    }
}
