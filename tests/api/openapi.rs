//! The OpenAPI document: generated from the handlers, served at `/api/v1/openapi.json`, and
//! kept in `tests/api/openapi.json` so that every change of the API shows in review. After
//! a deliberate change: `KWS_UPDATE_SNAPSHOTS=1 cargo test --all-features --test api openapi`.

use reqwest::StatusCode;

use crate::server::Server;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/openapi.json");

#[test]
fn the_document_matches_its_snapshot() {
    let doc = kws::api::openapi().to_pretty_json().expect("json") + "\n";
    if std::env::var("KWS_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(SNAPSHOT, &doc).expect("write the snapshot");
        return;
    }
    let kept = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        kept == doc,
        "the OpenAPI document changed: review it, then KWS_UPDATE_SNAPSHOTS=1 cargo test \
         --all-features --test api openapi (first differing line: {:?})",
        kept.lines().zip(doc.lines()).find(|(a, b)| a != b)
    );
    let parsed: serde_json::Value = serde_json::from_str(&doc).expect("json");
    assert!(parsed["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");
    for (path, item) in parsed["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            assert!(
                op["responses"]["4XX"]["content"]["application/json"].is_object(),
                "{method} {path}: its errors"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_generated_one() {
    let Some(srv) = Server::start().await else { return };
    let served = srv.anonymous().get("/api/v1/openapi.json").await.expect(StatusCode::OK).body;
    let generated = serde_json::to_value(kws::api::openapi()).expect("json");
    assert_eq!(served, generated);
}
