//! `export`: every event (or a range of positions) as JSON Lines with its hash, and a manifest
//! an auditor keeps to compare a later export with (issue [replay]).
//!
//! Events are streamed in the global order `(transaction_id, global_position)`, one JSON
//! object per line: `position`, aggregate,
//! sequence, type, version, `recorded_at`, `payload` and `metadata` exactly as stored, and
//! `hash` (hex; `null` for events recorded before hashing existed). The manifest records the
//! count, the first and last position, the chain hash over the exported hashes in file order
//! (`c0 = 0³², c(n) = sha256(c(n-1) || hash(n))`: for a full export it equals the `chain hash`
//! `verify` prints and the `chain_hash` of the seal at the last position), the SHA-256 of the
//! file and the last seal at the time of export. The file is written beside its final name
//! and renamed when complete, so a file under the final name is always whole.

use crate::integrity::hex;
use crate::{EventHeader, Failure, HashedRow, Progress, EXIT_USAGE};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use pettycash_projections::reader::{self, Filter, Selection};
use pettycash_projections::seal::{chain_step, ZERO};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// First global position to export (default: the first).
    #[arg(long)]
    pub from: Option<i64>,
    /// Last global position to export (default: the last).
    #[arg(long)]
    pub to: Option<i64>,
    /// The JSON Lines file to write (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the manifest (default: OUT.manifest.json).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: EventHeader<'a>,
    payload: &'a RawValue,
    metadata: &'a RawValue,
    hash: Option<String>,
}

#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct LastSeal {
    pub seal_id: i64,
    pub last_position: i64,
    pub event_count: i64,
    pub chain_hash: String,
}

/// What an auditor keeps: enough to tell whether a later export of the same range is the same.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub exported_at: DateTime<Utc>,
    pub file: String,
    pub requested_from: Option<i64>,
    pub requested_to: Option<i64>,
    pub count: u64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    /// Chain over the exported hashes, in file order, from 32 zero bytes.
    pub chain_hash: String,
    pub file_sha256: String,
    /// The newest seal when the export ran (compare its chain hash with a full export's).
    pub last_seal: Option<LastSeal>,
}

/// Counts bytes through a SHA-256 as they are written.
struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

pub async fn export(pool: &PgPool, args: ExportArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            return Err(Failure {
                code: EXIT_USAGE,
                error: anyhow::anyhow!("--from {from} is after --to {to}"),
            });
        }
    }
    let manifest_path = args.manifest.clone().unwrap_or_else(|| {
        let mut name = args.out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".manifest.json");
        args.out.with_file_name(name)
    });
    let (from, to) = (args.from.unwrap_or(i64::MIN), args.to.unwrap_or(i64::MAX));
    let partial = partial_path(&args.out);
    let file = std::fs::File::create(&partial).map_err(|e| Failure {
        code: EXIT_USAGE,
        error: anyhow::Error::new(e).context(format!("cannot write {}", partial.display())),
    })?;
    let mut writer = Hashing { inner: std::io::BufWriter::with_capacity(1 << 20, file), sha: Sha256::new() };

    let last_seal: Option<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seal_id, last_position, event_count, chain_hash FROM event_seals ORDER BY seal_id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let read = reader::in_order(&Selection::hashed(), Filter::Positions { from, to });
    let total = read.count(pool).await?;
    let mut progress = Progress::new("export", total.max(0) as u64);
    let mut rows = read.fetch::<HashedRow>(pool);
    let (mut count, mut first, mut last, mut chain) = (0u64, None, None, ZERO);
    while let Some(row) = rows.try_next().await? {
        let e = &row.event;
        let hash = row.event_hash.as_deref();
        chain = chain_step(&chain, hash);
        count += 1;
        first.get_or_insert(e.global_position);
        last = Some(e.global_position);
        let line = Line {
            event: EventHeader::from(e),
            payload: &e.payload.to_raw()?,
            metadata: &e.metadata.to_raw()?,
            hash: hash.map(hex),
        };
        serde_json::to_writer(&mut writer, &line)?;
        writer.write_all(b"\n")?;
        progress.inc();
    }
    progress.finish();
    writer.flush()?;
    let file_sha256 = hex(&writer.sha.finalize());
    writer
        .inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", partial.display()))?
        .sync_all()?;
    std::fs::rename(&partial, &args.out)?;

    let manifest = Manifest {
        format: "pettycash-export-v1".into(),
        exported_at: Utc::now(),
        file: args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        requested_from: args.from,
        requested_to: args.to,
        count,
        first_position: first,
        last_position: last,
        chain_hash: hex(&chain),
        file_sha256,
        last_seal: last_seal.map(|(seal_id, last_position, event_count, chain)| LastSeal {
            seal_id,
            last_position,
            event_count,
            chain_hash: hex(&chain),
        }),
    };
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)? + "\n")?;
    writeln!(
        out,
        "exported {count} events (positions {}..{}) to {}\nchain hash: {}\nfile sha256: {}\nmanifest: {}",
        first.map_or("-".into(), |p| p.to_string()),
        last.map_or("-".into(), |p| p.to_string()),
        args.out.display(),
        manifest.chain_hash,
        manifest.file_sha256,
        manifest_path.display()
    )?;
    Ok(())
}
