//! Receipts in tests: a private receipt directory per test, uploads as `multipart/form-data`,
//! small files of each type, and a local S3-compatible server (`moto`, from PyPI) started on a
//! random free port for the S3 tests.
//!
//! `moto` is installed with `python3 -m pip install 'moto[server]'` when `python3 -c 'import
//! moto.server'` fails; if it still cannot be imported, [`S3Server::start`] panics saying so
//! (the S3 tests fail, they are never skipped).

use crate::{Reply, TestApp, TestUser};
use pettycash_commands::receipts::{S3Config, StorageConfig};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// A fresh, empty directory under the system's temporary directory.
pub fn media_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pettycash-media-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a media directory");
    dir
}

/// The smallest files whose first bytes make them a JPEG, a PNG or a PDF; `tag` makes each
/// call's content (and so its hash) distinct.
pub fn jpeg(tag: &str) -> Vec<u8> {
    [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"\x00\x10JFIF\x00", tag.as_bytes(), &[0xFF, 0xD9]].concat()
}
pub fn png(tag: &str) -> Vec<u8> {
    [&b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"[..], tag.as_bytes()].concat()
}
pub fn pdf(tag: &str) -> Vec<u8> {
    [&b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n"[..], tag.as_bytes(), b"\n%%EOF\n"].concat()
}

impl TestApp {
    /// Uploads `bytes` as the multipart field `field` named `name` with the declared type
    /// `declared` to requisition `id`.
    pub async fn upload_as(
        &self,
        user: &TestUser,
        id: Uuid,
        field: &str,
        name: &str,
        declared: &str,
        bytes: &[u8],
    ) -> Reply {
        let boundary = format!("----pettycash{}", Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\
                 Content-Type: {declared}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .client
            .post(format!("{}/api/requisitions/{id}/receipts", self.address))
            .bearer_auth(&user.token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .expect("upload failed");
        Self::reply(resp).await
    }

    /// Uploads `bytes` as the field `file` named `name`.
    pub async fn upload(&self, user: &TestUser, id: Uuid, name: &str, bytes: &[u8]) -> Reply {
        self.upload_as(user, id, "file", name, "application/octet-stream", bytes).await
    }

    /// Downloads a receipt: status, headers, bytes.
    pub async fn download(
        &self,
        user: &TestUser,
        id: Uuid,
        receipt: Uuid,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{}/api/requisitions/{id}/receipts/{receipt}", self.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("download failed");
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }
}

/// Makes sure `moto`'s server can be imported, installing it from PyPI once when it cannot.
async fn ensure_moto() {
    static READY: OnceCell<()> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let importable = || async {
                tokio::process::Command::new("python3")
                    .args(["-c", "import moto.server"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success())
            };
            if importable().await {
                return;
            }
            let install = tokio::process::Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "moto[server]"])
                .status()
                .await;
            assert!(
                importable().await,
                "the S3 tests need a local S3-compatible server: `python3 -m pip install 'moto[server]'` \
                 did not make `moto.server` importable ({install:?}); install it by hand and run again"
            );
        })
        .await;
}

/// A `moto` S3 server on 127.0.0.1 at a free port, stopped when dropped.
pub struct S3Server {
    child: tokio::process::Child,
    pub endpoint: String,
}

impl S3Server {
    pub async fn start() -> Self {
        ensure_moto().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("find a free port");
            listener.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3 -m moto.server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on port {port} within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        S3Server { child, endpoint }
    }

    /// Creates a bucket named `name` and the storage settings that use it.
    pub async fn bucket(&self, name: &str) -> StorageConfig {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket {name}: {}", r.status());
        StorageConfig::S3(S3Config {
            bucket: name.into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
        })
    }

    /// The environment the service and `pettycash-replay` read for `bucket`.
    pub fn env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        vec![
            ("MEDIA_S3_BUCKET", bucket.into()),
            ("MEDIA_S3_ENDPOINT", self.endpoint.clone()),
            ("MEDIA_S3_REGION", "us-east-1".into()),
            ("MEDIA_S3_ACCESS_KEY_ID", "testing".into()),
            ("MEDIA_S3_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
