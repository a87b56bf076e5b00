//! Static files, embedded in the binary and served under content-hashed names
//! (`/static/app.<hash>.css`) that browsers may keep for a year: a changed file is a new name,
//! so no one ever sees a stale stylesheet, and nothing has to be deployed beside the binary.
//!
//! The names are computed once, at first use, from the embedded bytes; templates get them from
//! [`stylesheet`] only (through `Layout`), never spelled out.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The route the files are served from.
pub const ROUTE: &str = "/static/{file}";

/// A year, and never revalidated: the name changes with the content.
pub const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// An embedded file and its hashed name.
pub struct Asset {
    /// `app.<first 16 hex digits of its SHA-256>.css`.
    pub file_name: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn hashed(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = hex::encode(Sha256::digest(bytes));
        Self { file_name: format!("{stem}.{}.{extension}", &digest[..16]), content_type, bytes }
    }

    /// The path a page links to.
    pub fn href(&self) -> String {
        format!("/static/{}", self.file_name)
    }
}

static STYLESHEET: LazyLock<(Asset, String)> = LazyLock::new(|| {
    let asset = Asset::hashed("app", "css", "text/css; charset=utf-8", include_bytes!("static/app.css"));
    let href = asset.href();
    (asset, href)
});

/// The path of the site's one stylesheet, `/static/app.<hash>.css`.
pub fn stylesheet() -> &'static str {
    &STYLESHEET.1
}

fn all() -> [&'static Asset; 1] {
    [&STYLESHEET.0]
}

/// `GET /static/{file}`: the file under its current name, cacheable forever; 404 for any
/// other name (an old hash included: the page that asked for it is older than the binary).
pub async fn serve(Path(file): Path<String>) -> Response {
    match all().into_iter().find(|a| a.file_name == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_FOREVER)),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_is_named_after_its_content() {
        let digest = hex::encode(Sha256::digest(include_bytes!("static/app.css")));
        assert_eq!(stylesheet(), format!("/static/app.{}.css", &digest[..16]));
    }
}
