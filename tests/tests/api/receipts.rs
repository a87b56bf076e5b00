//! Receipts over HTTP (issue #14 [treasury]): JPEG, PNG and PDF uploads accepted by content
//! and listed on the requisition; a text file named `.pdf` and a file over 10 MB refused naming
//! `file`; the same content stored once; downloads for whoever may see the requisition (404 for
//! another company's user) with the stored bytes, type and a safe name; the same through a
//! local S3-compatible server (`moto`); the requester reminded once, by mail, of a paid
//! requisition without a receipt.

use chrono::Duration;
use pettycash_commands::receipts::{ReceiptStore, StorageConfig};
use pettycash_domain::Role;
use pettycash_tests::receipts::{jpeg, media_dir, pdf, png};
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, MailServer, Reply, S3Server, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use std::path::Path;
use uuid::Uuid;

async fn app_in(dir: &Path) -> TestApp {
    let dir = dir.to_path_buf();
    TestApp::spawn_with(move |c| {
        c.seal_interval_secs = 3600;
        c.media = StorageConfig::Local(dir);
    })
    .await
}

/// A draft of `requester` on a new fund.
async fn draft(app: &TestApp, admin: &TestUser, requester: &TestUser) -> Uuid {
    let fund = app.fund(admin, "10000").await;
    let r = app
        .post(requester, "/api/requisitions/", json!({"fund_id": fund, "amount": "250", "purpose": "Taxi"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.id()
}

fn receipts(r: &Reply) -> Vec<Value> {
    r.body["receipts"].as_array().unwrap_or_else(|| panic!("no receipts: {r:?}")).clone()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn receipt_id(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn jpeg_png_and_pdf_files_are_accepted_by_content_and_listed_on_the_requisition() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let c = Cast::new(&app).await;
    let id = draft(&app, &c.admin, &c.staff).await;

    for (name, bytes, expected) in [
        ("photo.jpg", jpeg("a"), "image/jpeg"),
        // The declared name does not decide the type: a PNG named .pdf is a PNG.
        ("scan.pdf", png("b"), "image/png"),
        ("../../etc/slip\u{202E}.pdf", pdf("c"), "application/pdf"),
    ] {
        let r = app.upload(&c.staff, id, name, &bytes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {r:?}");
        let last = receipts(&r).last().cloned().unwrap();
        assert_eq!(last["content_type"], expected, "{name}");
        assert_eq!(last["size"], bytes.len() as u64);
        assert_eq!(last["sha256"], pettycash_commands::receipts::sha256_hex(&bytes));
    }

    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    let names: Vec<String> =
        receipts(&view).iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["photo.jpg", "scan.pdf", "slip.pdf"], "paths and direction overrides are dropped");
    assert_eq!(files_under(&dir).len(), 3);
}

#[tokio::test]
async fn a_text_file_named_pdf_is_refused_naming_the_file() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let c = Cast::new(&app).await;
    let id = draft(&app, &c.admin, &c.staff).await;

    let r = app
        .upload_as(&c.staff, id, "file", "invoice.pdf", "application/pdf", b"just some text, not a PDF")
        .await;

    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!((r.code(), r.field()), ("invalid_file", "file"));
    let view = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert!(receipts(&view).is_empty());
    assert!(files_under(&dir).is_empty(), "nothing stored");
    // No `file` field at all.
    let r = app.upload_as(&c.staff, id, "attachment", "a.pdf", "application/pdf", &pdf("x")).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "file"), "{r:?}");
}

#[tokio::test]
async fn a_file_over_10_mb_is_refused_naming_the_file() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let c = Cast::new(&app).await;
    let id = draft(&app, &c.admin, &c.staff).await;

    let mut big = pdf("big");
    big.resize(10 * 1024 * 1024 + 1, b' ');
    let r = app.upload(&c.staff, id, "big.pdf", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    assert_eq!(r.field(), "file");

    // Well past the route's body limit too.
    big.resize(12 * 1024 * 1024, b' ');
    let r = app.upload(&c.staff, id, "bigger.pdf", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    assert_eq!(r.field(), "file");

    // Exactly 10 MB is fine (and more than the 2 MB of other requests).
    big.truncate(10 * 1024 * 1024);
    let r = app.upload(&c.staff, id, "ten.pdf", &big).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body["error"]);
    assert_eq!(receipts(&r).len(), 1);
}

#[tokio::test]
async fn the_same_content_is_stored_once_and_attached_once_per_requisition() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let first = draft(&app, &c.admin, &c.staff).await;
    let second = draft(&app, &c.admin, &staff2).await;
    let bytes = jpeg("shared");

    let a = app.upload(&c.staff, first, "a.jpg", &bytes).await;
    let b = app.upload(&staff2, second, "b.jpg", &bytes).await;
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED), "{a:?} {b:?}");
    assert_eq!(receipts(&a)[0]["sha256"], receipts(&b)[0]["sha256"]);
    assert_eq!(files_under(&dir).len(), 1, "one copy of the content");

    let again = app.upload(&c.staff, first, "again.jpg", &bytes).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "receipt_refused"), "{again:?}");
}

#[tokio::test]
async fn downloads_give_the_requester_the_bytes_and_another_companys_user_a_404() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let admin = app.user(&[Role::Admin]).await;
    let (acme, globex) =
        (app.unit(&admin, "company", "ACME", None).await, app.unit(&admin, "company", "GLX", None).await);
    let requester = app.user_in(&[Role::Staff], Some(acme)).await;
    let outsider_staff = app.user_in(&[Role::Staff], Some(globex)).await;
    let outsider_admin = app.user_in(&[Role::Admin], Some(globex)).await;
    let acme_admin = app.user_in(&[Role::Admin], Some(acme)).await;
    let fund = app.fund(&acme_admin, "10000").await;
    let r = app
        .post(&requester, "/api/requisitions/", json!({"fund_id": fund, "amount": "250", "purpose": "Taxi"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    let bytes = pdf("download me");
    let r = app.upload(&requester, id, "reçu taxi.pdf", &bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let receipt = receipt_id(&receipts(&r)[0]);

    let (status, headers, body) = app.download(&requester, id, receipt).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"re_u taxi.pdf\""), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''re%C3%A7u%20taxi.pdf"), "{disposition}");

    for outsider in [&outsider_staff, &outsider_admin] {
        let (status, _, _) = app.download(outsider, id, receipt).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Nor can they attach anything to it.
        let r = app.upload(outsider, id, "x.pdf", &pdf("outsider")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
    // A receipt id of another requisition, or none, is not found either.
    let (status, _, _) = app.download(&requester, id, Uuid::now_v7()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn receipts_round_trip_through_an_s3_compatible_server() {
    let s3 = S3Server::start().await;
    let storage = s3.bucket("receipts-round-trip").await;
    let media = storage.clone();
    let app = TestApp::spawn_with(move |c| {
        c.seal_interval_secs = 3600;
        c.media = media;
    })
    .await;
    let c = Cast::new(&app).await;
    let id = draft(&app, &c.admin, &c.staff).await;
    let bytes = png("through s3");

    let r = app.upload(&c.staff, id, "s3.png", &bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let listed = &receipts(&r)[0];
    let (status, headers, body) = app.download(&c.staff, id, receipt_id(listed)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(headers["content-type"], "image/png");
    let store = ReceiptStore::open(&storage).unwrap();
    assert_eq!(store.list().await.unwrap(), [listed["sha256"].as_str().unwrap()]);
}

#[tokio::test]
async fn treasury_attaches_to_paid_requisitions_only_and_other_staff_not_at_all() {
    let dir = media_dir();
    let app = app_in(&dir).await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "10000").await;
    let id = app.submitted(&c.staff, fund, "500").await;
    app.approve_by(id, &[&c.head]).await;

    let early = app.upload(&c.treasury, id, "slip.pdf", &pdf("slip")).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "receipt_refused"), "{early:?}");
    let r = app.pay(&c.treasury, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let paid = app.upload(&c.treasury, id, "slip.pdf", &pdf("slip")).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    // An approver may see it but is not its requester.
    let head = app.upload(&c.head, id, "mine.pdf", &pdf("head")).await;
    assert_eq!((head.status, head.code()), (StatusCode::FORBIDDEN, "not_requester"), "{head:?}");
}

#[tokio::test]
async fn a_paid_requisition_without_a_receipt_reminds_its_requester_once() {
    let smtp = MailServer::start().await;
    let dir = media_dir();
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 1;
        c.media = StorageConfig::Local(dir.clone());
        smtp.configure(c);
    })
    .await;
    let c = Cast::new(&app).await;
    let r = app
        .send(Some(&c.admin), Method::PUT, "/api/settings/receipt_reminder_days", Some(json!({"value": 2})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fund = app.fund(&c.admin, "10000").await;
    let (without, with) =
        (app.submitted(&c.staff, fund, "500").await, app.submitted(&c.staff, fund, "600").await);
    for id in [without, with] {
        app.approve_by(id, &[&c.head]).await;
        let r = app.pay(&c.treasury, id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let r = app.upload(&c.staff, with, "receipt.jpg", &jpeg("kept")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    app.delivered(&smtp).await;
    smtp.clear();

    // Not yet due: a few ticks remind nobody.
    app.clock.advance(Duration::days(1));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(app.delivered(&smtp).await.is_empty());

    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, [c.staff.email.as_str()]);
    assert!(mails[0].subject.starts_with("Receipt missing: 500.00 KES"), "{}", mails[0].subject);
    assert!(mails[0].text.contains("has no receipt yet"), "{}", mails[0].text);

    // Once: later ticks send nothing more, for either requisition.
    app.clock.advance(Duration::days(5));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(app.delivered(&smtp).await.len(), 1);
    let history = app.get(&c.staff, &format!("/api/requisitions/{without}/history")).await;
    let overdue =
        history.body.as_array().unwrap().iter().filter(|e| e["event_type"] == "ReceiptOverdue").count();
    assert_eq!(overdue, 1);
}
