//! `verify` reads every receipt file the events name back from the receipt store the service
//! uses (MEDIA_ROOT, or an S3-compatible bucket by MEDIA_S3_*): a clean store passes; a file
//! changed in place is `receipt_changed`, a deleted one `receipt_missing`, each at the event
//! that attached it.

use pettycash_commands::receipts::{sha256_hex, ReceiptStore, StorageConfig};
use pettycash_tests::receipts::{jpeg, media_dir, pdf, png};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, S3Server, TestApp};
use reqwest::StatusCode;
use std::path::Path;
use std::process::Output;
use uuid::Uuid;

async fn verify(url: &str, env: &[(&str, String)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pettycash-replay"))
        .args(["verify", "--format", "json"])
        .env("DATABASE_URL", url)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run pettycash-replay")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn rules(report: &Value) -> Vec<(String, String)> {
    report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["rule"].as_str().unwrap().to_string(), v["detail"].as_str().unwrap().to_string()))
        .collect()
}

/// A draft of the cast's staff with `files` attached; the hashes.
async fn with_receipts(app: &TestApp, files: &[Vec<u8>]) -> (Uuid, Vec<String>) {
    let c = Cast::new(app).await;
    let fund = app.fund(&c.admin, "1000").await;
    let r = app
        .post(&c.staff, "/api/requisitions/", json!({"fund_id": fund, "amount": "50", "purpose": "Taxi"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    for (i, bytes) in files.iter().enumerate() {
        let r = app.upload(&c.staff, id, &format!("r{i}"), bytes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    (id, files.iter().map(|b| sha256_hex(b)).collect())
}

fn stored_at(dir: &Path, sha256: &str) -> std::path::PathBuf {
    dir.join("receipts").join(&sha256[..2]).join(sha256)
}

#[tokio::test]
async fn verify_reports_a_changed_and_a_missing_receipt_file() {
    let dir = media_dir();
    let media = dir.clone();
    let app = TestApp::spawn_with(move |c| {
        c.seal_interval_secs = 3600;
        c.media = StorageConfig::Local(media);
    })
    .await;
    let (id, hashes) = with_receipts(&app, &[jpeg("one"), png("two"), pdf("three")]).await;
    let env = [("MEDIA_ROOT", dir.display().to_string())];

    let clean = verify(&app.database_url, &env).await;
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stdout));
    assert!(rules(&report(&clean)).is_empty());

    std::fs::write(stored_at(&dir, &hashes[0]), b"\xFF\xD8\xFF tampered").unwrap();
    std::fs::remove_file(stored_at(&dir, &hashes[1])).unwrap();
    let out = verify(&app.database_url, &env).await;

    assert_eq!(out.status.code(), Some(1));
    let found_report = report(&out);
    let found = rules(&found_report);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().any(|(rule, detail)| rule == "receipt_changed" && detail.contains(&hashes[0])),
        "{found:?}"
    );
    assert!(
        found.iter().any(|(rule, detail)| rule == "receipt_missing" && detail.contains(&hashes[1])),
        "{found:?}"
    );
    for v in found_report["violations"].as_array().unwrap() {
        assert_eq!(v["aggregate_id"], id.to_string());
    }

    // A directory that is not there is not created: every file is missing from it.
    let nowhere = dir.join("not-there");
    let out = verify(&app.database_url, &[("MEDIA_ROOT", nowhere.display().to_string())]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rules(&report(&out)).iter().filter(|(rule, _)| rule == "receipt_missing").count(), 3);
    assert!(!nowhere.exists());
}

#[tokio::test]
async fn verify_reads_receipts_from_an_s3_compatible_store() {
    let s3 = S3Server::start().await;
    let storage = s3.bucket("verify-receipts").await;
    s3.bucket("verify-empty").await;
    let media = storage.clone();
    let app = TestApp::spawn_with(move |c| {
        c.seal_interval_secs = 3600;
        c.media = media;
    })
    .await;
    let (_, hashes) = with_receipts(&app, &[pdf("in s3")]).await;
    assert_eq!(ReceiptStore::open(&storage).unwrap().list().await.unwrap(), hashes);

    let clean = verify(&app.database_url, &s3.env("verify-receipts")).await;
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stdout));

    // The same events against a bucket without the file: verify read the bucket it was given.
    let out = verify(&app.database_url, &s3.env("verify-empty")).await;
    assert_eq!(out.status.code(), Some(1));
    let found = rules(&report(&out));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "receipt_missing");
}
