//! Receipt files (issue #14 [treasury]): what a file is (by its content, never its name), where
//! it is kept, and recording it on a requisition.
//!
//! Files are stored **content-addressed**: under `receipts/<first two hex digits>/<sha256>`
//! of an [`ObjectStore`] — a local directory (`MEDIA_ROOT`, by default `media` under
//! `PETTYCASH_DATA_DIR`, i.e. `./var/media`) or an S3-compatible bucket (`MEDIA_S3_BUCKET` and
//! the rest of [`StorageArgs`]). The same content is stored once, whoever uploads it on
//! whichever requisition. A stored file never changes: `pettycash-replay verify` reads each
//! one the events name and reports one that is missing or whose SHA-256 differs.
//!
//! [`ReceiptStore`] is the one wrapper around `Arc<dyn ObjectStore>` the service, the replay
//! tool and the tests share; anything that attaches files later (the settlement of an advance)
//! stores through it and records the returned [`StoredFile`].

use crate::context::CommandContext;
use crate::error::CommandError;
use crate::service::CommandService;
use crate::views::RequisitionView;
use crate::Outcome;
use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use pettycash_domain::requisition::{Receipt, ReceiptFile, RequisitionCommand, MAX_RECEIPT_BYTES};
use pettycash_domain::Id;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use pettycash_domain::requisition::clean_file_name;

/// What a file's first bytes say it is: `image/jpeg`, `image/png` or `application/pdf`;
/// `None` for anything else (whatever its name or declared type).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where files are kept, resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A local directory.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Config),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// `None`: AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain HTTP to the endpoint (a local server).
    pub allow_http: bool,
}

impl std::fmt::Debug for StorageConfig {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Local(root) => f.debug_tuple("Local").field(root).finish(),
            StorageConfig::S3(s3) => f
                .debug_struct("S3")
                .field("bucket", &s3.bucket)
                .field("endpoint", &s3.endpoint)
                .field("region", &s3.region)
                .field("access_key_id", &s3.access_key_id)
                .field("allow_http", &s3.allow_http)
                .finish_non_exhaustive(),
        }
    }
}

/// Receipt storage settings, one `clap` argument per environment variable, shared by `serve`
/// and `pettycash-replay verify` (which must read the same files). Each value is checked while
/// it is parsed, and a bad one is named by its variable, as the service's other settings are.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Receipt storage")]
pub struct StorageArgs {
    /// Directory receipts are stored in when no S3 bucket is set. Default: `media` under
    /// PETTYCASH_DATA_DIR (`./var/media`).
    #[arg(long, env = "MEDIA_ROOT", value_name = "DIR", value_parser = Setting::new("MEDIA_ROOT", non_empty))]
    pub media_root: Option<String>,
    /// S3-compatible bucket to store receipts in instead of MEDIA_ROOT (empty: none).
    #[arg(long, env = "MEDIA_S3_BUCKET", value_name = "BUCKET",
          value_parser = Setting::new("MEDIA_S3_BUCKET", bucket_name))]
    pub media_s3_bucket: Option<String>,
    /// Endpoint of an S3-compatible service, `http://127.0.0.1:9000`. Default: AWS.
    #[arg(long, env = "MEDIA_S3_ENDPOINT", value_name = "URL",
          value_parser = Setting::new("MEDIA_S3_ENDPOINT", endpoint))]
    pub media_s3_endpoint: Option<String>,
    /// Region of the bucket. Default: us-east-1.
    #[arg(long, env = "MEDIA_S3_REGION", value_name = "REGION",
          value_parser = Setting::new("MEDIA_S3_REGION", word))]
    pub media_s3_region: Option<String>,
    /// Access key id. Unset: no credentials are configured here.
    #[arg(long, env = "MEDIA_S3_ACCESS_KEY_ID", value_name = "ID",
          value_parser = Setting::new("MEDIA_S3_ACCESS_KEY_ID", word))]
    pub media_s3_access_key_id: Option<String>,
    /// Secret access key (with MEDIA_S3_ACCESS_KEY_ID). Set it in the environment.
    #[arg(long, env = "MEDIA_S3_SECRET_ACCESS_KEY", hide_env_values = true, value_name = "SECRET",
          value_parser = Setting::secret("MEDIA_S3_SECRET_ACCESS_KEY"))]
    pub media_s3_secret_access_key: Option<String>,
}

fn non_empty(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        Err("must not be empty")
    } else {
        Ok(())
    }
}

/// S3's rules: 3 to 63 lowercase letters, digits, dots and hyphens (empty: unset).
fn bucket_name(text: &str) -> Result<(), &'static str> {
    let ok = text.is_empty()
        || ((3..=63).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'));
    ok.then_some(()).ok_or("must be 3 to 63 lowercase letters, digits, dots and hyphens")
}

fn endpoint(text: &str) -> Result<(), &'static str> {
    let ok = text.is_empty()
        || ((text.starts_with("http://") || text.starts_with("https://"))
            && !text.contains(char::is_whitespace));
    ok.then_some(()).ok_or("must be an http:// or https:// URL, e.g. http://127.0.0.1:9000")
}

/// Letters, digits, `-` and `_` (a region, a key id).
fn word(text: &str) -> Result<(), &'static str> {
    let ok = text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(()).ok_or("must be letters, digits, `-` and `_` only")
}

/// Whether a setting's text is acceptable, or why not.
type Check = fn(&str) -> Result<(), &'static str>;

/// A value checked while parsed; the error names the variable (`invalid value 'x' for NAME:
/// why`) and never repeats a secret.
#[derive(Clone)]
struct Setting {
    name: &'static str,
    /// `None`: a secret, taken as it is.
    check: Option<Check>,
}

impl Setting {
    fn new(name: &'static str, check: Check) -> Self {
        Self { name, check: Some(check) }
    }

    fn secret(name: &'static str) -> Self {
        Self { name, check: None }
    }
}

impl clap::builder::TypedValueParser for Setting {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        self.parse_ref_(command, arg, value, clap::parser::ValueSource::EnvVariable)
    }

    fn parse_ref_(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
        source: clap::parser::ValueSource,
    ) -> Result<String, clap::Error> {
        let fail = |why: &str| {
            let name = match (source, arg.and_then(clap::Arg::get_long)) {
                (clap::parser::ValueSource::CommandLine, Some(long)) => format!("--{long}"),
                _ => self.name.to_string(),
            };
            let message = match self.check {
                None => format!("invalid value for {name}: {why}"),
                Some(_) => format!("invalid value '{}' for {name}: {why}", value.to_string_lossy()),
            };
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{message}\n"))
                .with_cmd(command)
        };
        let text = value.to_str().ok_or_else(|| fail("not valid UTF-8"))?;
        if let Some(check) = self.check {
            check(text).map_err(fail)?;
        }
        Ok(text.to_string())
    }
}

impl StorageArgs {
    /// S3 when a bucket is set (an empty variable counts as unset), else the directory
    /// (`MEDIA_ROOT`, else `media` under `data_dir`).
    pub fn resolve(self, data_dir: &Path) -> StorageConfig {
        let set = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        match set(self.media_s3_bucket) {
            Some(bucket) => {
                let endpoint = set(self.media_s3_endpoint);
                StorageConfig::S3(S3Config {
                    bucket,
                    allow_http: endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
                    endpoint,
                    region: set(self.media_s3_region).unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: set(self.media_s3_access_key_id),
                    secret_access_key: self.media_s3_secret_access_key.filter(|v| !v.is_empty()),
                })
            }
            None => StorageConfig::Local(
                self.media_root
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("media")),
            ),
        }
    }
}

/// A file as stored: its address and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub sha256: String,
    pub size: u64,
    pub content_type: &'static str,
    /// False when the same content was there already.
    pub newly_stored: bool,
}

/// What a stored file looks like against what the events say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    Intact,
    Missing,
    /// The content's hash is now this.
    Changed {
        sha256: String,
        size: u64,
    },
}

/// Receipt files in an object store, addressed by their SHA-256.
#[derive(Debug, Clone)]
pub struct ReceiptStore {
    inner: Arc<dyn ObjectStore>,
}

impl ReceiptStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Opens the configured store (creating a local directory when missing).
    pub fn open(config: &StorageConfig) -> anyhow::Result<Self> {
        let inner: Arc<dyn ObjectStore> = match config {
            StorageConfig::Local(root) => {
                std::fs::create_dir_all(root)
                    .with_context(|| format!("creating the receipt directory {}", root.display()))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .with_context(|| format!("opening the receipt directory {}", root.display()))?,
                )
            }
            StorageConfig::S3(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                }
                Arc::new(builder.build().context("configuring the S3 receipt storage")?)
            }
        };
        Ok(Self::new(inner))
    }

    /// Opens the configured store to read only (`pettycash-replay verify`): a local directory
    /// that does not exist is not created; it holds nothing, so every file named is missing.
    pub fn open_to_read(config: &StorageConfig) -> anyhow::Result<Self> {
        match config {
            StorageConfig::Local(root) if !root.exists() => {
                Ok(Self::new(Arc::new(object_store::memory::InMemory::new())))
            }
            _ => Self::open(config),
        }
    }

    /// Where content with this hash is kept.
    pub fn location(sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("receipts/{}/{sha256}", &sha256[..2.min(sha256.len())]))
    }

    /// Stores `bytes` under its hash; content already there is not written again. Refuses
    /// anything but a JPEG, PNG or PDF of at most 10 MB (callers check first, to answer
    /// naming the field).
    pub async fn put(&self, bytes: Bytes) -> anyhow::Result<StoredFile> {
        let content_type = sniff(&bytes).context("not a JPEG, PNG or PDF file")?;
        anyhow::ensure!(bytes.len() as u64 <= MAX_RECEIPT_BYTES, "larger than {MAX_RECEIPT_BYTES} bytes");
        let sha256 = sha256_hex(&bytes);
        let size = bytes.len() as u64;
        let location = Self::location(&sha256);
        // The same content is the same file: only a missing or damaged copy is (re)written.
        let present = match self.inner.head(&location).await {
            Ok(meta) => meta.size == size,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e).context("looking for the receipt in storage"),
        };
        if !present {
            self.inner
                .put(&location, PutPayload::from_bytes(bytes))
                .await
                .context("writing the receipt to storage")?;
        }
        Ok(StoredFile { sha256, size, content_type, newly_stored: !present })
    }

    /// The content stored under `sha256` (`None`: not there).
    pub async fn get(&self, sha256: &str) -> anyhow::Result<Option<Bytes>> {
        match self.inner.get(&Self::location(sha256)).await {
            Ok(found) => Ok(Some(found.bytes().await.context("reading the receipt from storage")?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).context("reading the receipt from storage"),
        }
    }

    /// Whether the file stored under `sha256` is still that content.
    pub async fn check(&self, sha256: &str) -> anyhow::Result<FileCheck> {
        Ok(match self.get(sha256).await? {
            None => FileCheck::Missing,
            Some(bytes) => {
                let actual = sha256_hex(&bytes);
                if actual == sha256 {
                    FileCheck::Intact
                } else {
                    FileCheck::Changed { sha256: actual, size: bytes.len() as u64 }
                }
            }
        })
    }

    /// Every stored file's hash (tests, operators).
    pub async fn list(&self) -> anyhow::Result<Vec<String>> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::from("receipts");
        let found: Vec<_> = self.inner.list(Some(&prefix)).try_collect().await.context("listing receipts")?;
        let mut names: Vec<String> =
            found.into_iter().filter_map(|m| m.location.filename().map(String::from)).collect();
        names.sort();
        Ok(names)
    }
}

impl CommandService {
    /// Records a stored file on a requisition the actor may see (see the domain's
    /// `requisition::receipts` for who may attach).
    pub async fn attach_receipt(
        &self,
        ctx: &CommandContext,
        id: Id,
        file: &StoredFile,
        original_name: &str,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let receipt_id = Id::now_v7();
        let file = ReceiptFile {
            sha256: file.sha256.clone(),
            size: file.size,
            content_type: file.content_type.to_string(),
            original_name: original_name.to_string(),
        };
        self.on_requisition(ctx, id, |actor, _| RequisitionCommand::AttachReceipt {
            receipt_id,
            file: file.clone(),
            actor,
        })
        .await
    }

    /// One receipt of a requisition the actor may see (another's: not found, as the
    /// requisition itself).
    pub async fn receipt(
        &self,
        actor: &pettycash_domain::Actor,
        id: Id,
        receipt_id: Id,
    ) -> Result<Receipt, CommandError> {
        let requisition = self.visible_requisition_state(actor, id).await?;
        requisition
            .receipts
            .into_iter()
            .find(|r| r.receipt_id == receipt_id)
            .ok_or_else(|| CommandError::not_found("receipt"))
    }

    /// The scheduler: reminds the requester of a requisition paid at `paid_at` with no receipt
    /// `days` later (once; `not_due_yet` otherwise).
    pub async fn remind_receipt(
        &self,
        id: Id,
        paid_at: DateTime<Utc>,
        days: u32,
    ) -> Result<Outcome<RequisitionView>, CommandError> {
        let now = self.clock().now();
        self.on_requisition_as_system(id, move |_| RequisitionCommand::RemindReceipt { paid_at, days, now })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_first_bytes_only() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff(b"hello.pdf"), None);
        assert_eq!(sniff(b" %PDF-1.7"), None);
        assert_eq!(sniff(b""), None);
    }

    #[tokio::test]
    async fn the_same_content_is_stored_once_under_its_hash_and_a_change_is_seen() {
        let store = ReceiptStore::new(Arc::new(object_store::memory::InMemory::new()));
        let bytes = Bytes::from_static(b"%PDF-1.4 a receipt");
        let first = store.put(bytes.clone()).await.unwrap();
        let second = store.put(bytes.clone()).await.unwrap();
        assert!(first.newly_stored && !second.newly_stored);
        assert_eq!(first.sha256, sha256_hex(&bytes));
        assert_eq!(store.list().await.unwrap(), std::slice::from_ref(&first.sha256));
        assert_eq!(store.get(&first.sha256).await.unwrap(), Some(bytes));
        assert_eq!(store.check(&first.sha256).await.unwrap(), FileCheck::Intact);
        assert_eq!(store.check(&"0".repeat(64)).await.unwrap(), FileCheck::Missing);
        assert!(store.put(Bytes::from_static(b"plain text")).await.is_err());
    }
}
