//! `docs/openapi.json` is generated from the code: this test fails when it is stale.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p pettycash-api --test openapi_doc`.

use pettycash_api::openapi::ApiDoc;
use utoipa::OpenApi;

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = ApiDoc::openapi().to_pretty_json().expect("serialise OpenAPI") + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(path, &generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p pettycash-api --test openapi_doc`"
    );
}
