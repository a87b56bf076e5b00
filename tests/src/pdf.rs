//! Reading a PDF's text in tests (`pdftotext`, from Debian's poppler-utils).

use std::process::Stdio;
use uuid::Uuid;

/// `pdftotext` (Debian's poppler-utils), installed with apt-get when missing: the PDF tests
/// fail, never skip, without it.
async fn ensure_pdftotext() {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let present = || async {
                tokio::process::Command::new("pdftotext")
                    .arg("-v")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success())
            };
            if present().await {
                return;
            }
            let install = |update: bool| async move {
                let script = if update {
                    "apt-get update -qq && apt-get install -y -qq poppler-utils"
                } else {
                    "apt-get install -y -qq poppler-utils"
                };
                tokio::process::Command::new("sh")
                    .args(["-c", script])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .status()
                    .await
            };
            let first = install(false).await;
            if !present().await {
                let second = install(true).await;
                assert!(
                    present().await,
                    "the PDF tests need `pdftotext`: `apt-get install poppler-utils` failed ({first:?}, {second:?}); \
                     install it by hand and run again"
                );
            }
        })
        .await;
}

/// The text of pages `first..=last` of `pdf` (`pdftotext -layout`).
pub async fn pdf_text(pdf: &[u8], pages: Option<(u32, u32)>) -> String {
    ensure_pdftotext().await;
    let path = std::env::temp_dir().join(format!("pettycash-report-{}.pdf", Uuid::new_v4()));
    std::fs::write(&path, pdf).unwrap();
    let mut cmd = tokio::process::Command::new("pdftotext");
    cmd.arg("-layout");
    if let Some((first, last)) = pages {
        cmd.args(["-f", &first.to_string(), "-l", &last.to_string()]);
    }
    let out = cmd.arg(&path).arg("-").output().await.expect("run pdftotext");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
