//! The Cloudflare DNS provider against an in-process HTTP server that speaks Cloudflare's v4
//! API (zones by name, TXT records created and deleted, bearer token), and a whole issuance
//! through it with pebble, the fake mirroring its records into pebble-challtestsrv.

mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    routing::{delete, get, post},
};
use kws_proxy::{
    CertFiles,
    tls::{CertIssuer, ChallengeName, Cloudflare, DnsError, DnsProvider},
};
use serde_json::{Value, json};

const TOKEN: &str = "cf-test-token";

#[derive(Debug, Clone, PartialEq)]
struct Record {
    zone: String,
    kind: String,
    name: String,
    content: String,
    ttl: u64,
}

#[derive(Default)]
struct Fake {
    zones: BTreeMap<String, String>,
    records: BTreeMap<String, Record>,
    zone_queries: Vec<String>,
    next: u32,
    /// challtestsrv's management API, to mirror TXT records into pebble's DNS.
    mirror: Option<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn denied(headers: &HeaderMap) -> Option<(StatusCode, Json<Value>)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    (auth != Some(&format!("Bearer {TOKEN}"))).then(|| {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"success": false, "errors": [{"code": 9109, "message": "Invalid access token"}], "result": null})),
        )
    })
}

async fn list_zones(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(no) = denied(&headers) {
        return no;
    }
    let name = q.get("name").cloned().unwrap_or_default();
    let mut fake = fake.lock().expect("lock");
    fake.zone_queries.push(name.clone());
    let result: Vec<Value> =
        fake.zones.get(&name).map(|id| json!({"id": id, "name": name})).into_iter().collect();
    (StatusCode::OK, Json(json!({"success": true, "errors": [], "result": result})))
}

async fn create_record(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(zone): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Some(no) = denied(&headers) {
        return no;
    }
    let (id, record, mirror) = {
        let mut fake = fake.lock().expect("lock");
        if !fake.zones.values().any(|z| z == &zone) {
            return (
                StatusCode::NOT_FOUND,
                Json(
                    json!({"success": false, "errors": [{"code": 7003, "message": "Could not route"}]}),
                ),
            );
        }
        let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let record = Record {
            zone,
            kind: s("type"),
            name: s("name"),
            content: s("content"),
            ttl: body.get("ttl").and_then(Value::as_u64).unwrap_or(1),
        };
        fake.next += 1;
        let id = format!("rec{}", fake.next);
        fake.records.insert(id.clone(), record.clone());
        (id, record, fake.mirror.clone())
    };
    if let Some(base) = mirror {
        let body = json!({"host": format!("{}.", record.name), "value": record.content});
        let out = support::curl(&[
            "-X".into(),
            "POST".into(),
            "-d".into(),
            body.to_string(),
            format!("{base}/set-txt"),
        ])
        .await;
        assert!(out.status.success(), "mirror to challtestsrv");
    }
    let result = json!({"id": id, "type": record.kind, "name": record.name, "content": record.content, "ttl": record.ttl});
    (StatusCode::OK, Json(json!({"success": true, "errors": [], "result": result})))
}

async fn delete_record(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path((zone, id)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    if let Some(no) = denied(&headers) {
        return no;
    }
    let mut fake = fake.lock().expect("lock");
    match fake.records.get(&id) {
        Some(r) if r.zone == zone => {
            fake.records.remove(&id);
            (StatusCode::OK, Json(json!({"success": true, "errors": [], "result": {"id": id}})))
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}]}),
            ),
        ),
    }
}

/// Starts the fake with zone `example.test`; returns its API base URL and its state.
async fn fake_cloudflare(mirror: Option<String>) -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake { mirror, ..Fake::default() }));
    fake.lock().expect("lock").zones.insert("example.test".into(), "zone-example".into());
    let app = Router::new()
        .route("/client/v4/zones", get(list_zones))
        .route("/client/v4/zones/{zone}/dns_records", post(create_record))
        .route("/client/v4/zones/{zone}/dns_records/{id}", delete(delete_record))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/client/v4"), fake)
}

fn name(domain: &str) -> ChallengeName {
    ChallengeName::for_domain(&domain.parse().expect("domain"))
}

#[tokio::test]
async fn creates_and_deletes_txt_records_in_the_right_zone() {
    let (base, fake) = fake_cloudflare(None).await;
    let cf = Cloudflare::new(base, TOKEN).expect("client");
    let provider: &dyn DnsProvider = &cf;
    let first = provider.add_txt(&name("example.test"), "value-one").await.expect("add one");
    let second = provider.add_txt(&name("example.test"), "value-two").await.expect("add two");
    {
        let fake = fake.lock().expect("lock");
        let records: Vec<&Record> = fake.records.values().collect();
        assert_eq!(records.len(), 2, "both values coexist under one name");
        for (record, value) in records.iter().zip(["value-one", "value-two"]) {
            assert_eq!(record.zone, "zone-example");
            assert_eq!(record.kind, "TXT");
            assert_eq!(record.name, "_acme-challenge.example.test");
            assert_eq!(record.content, value);
            assert_eq!(record.ttl, 120);
        }
    }
    provider.remove_txt(&first).await.expect("remove one");
    let left: Vec<String> =
        fake.lock().expect("lock").records.values().map(|r| r.content.clone()).collect();
    assert_eq!(left, vec!["value-two"]);
    provider.remove_txt(&first).await.expect("removing a record already gone is Ok");
    provider.remove_txt(&second).await.expect("remove two");
    assert!(fake.lock().expect("lock").records.is_empty());
    assert!(format!("{cf:?}").contains("Cloudflare") && !format!("{cf:?}").contains(TOKEN));
}

#[tokio::test]
async fn finds_the_zone_of_a_subdomain() {
    let (base, fake) = fake_cloudflare(None).await;
    let cf = Cloudflare::new(base, TOKEN).expect("client");
    let record = cf.add_txt(&name("apps.example.test"), "v").await.expect("add");
    assert!(record.id.as_deref().is_some_and(|id| id.starts_with("zone-example/")));
    let fake = fake.lock().expect("lock");
    assert_eq!(fake.zone_queries, vec!["apps.example.test", "example.test"]);
    assert_eq!(
        fake.records.values().next().expect("record").name,
        "_acme-challenge.apps.example.test"
    );
}

#[tokio::test]
async fn refusals_are_typed() {
    let (base, fake) = fake_cloudflare(None).await;
    let wrong = Cloudflare::new(base.clone(), "not-the-token").expect("client");
    let err = wrong.add_txt(&name("example.test"), "v").await;
    assert!(matches!(err, Err(DnsError::Unauthorized { status: 403, .. })), "{err:?}");

    let cf = Cloudflare::new(base, TOKEN).expect("client");
    let err = cf.add_txt(&name("other.test"), "v").await;
    match err {
        Err(DnsError::ZoneNotFound { name, .. }) => assert_eq!(name, "_acme-challenge.other.test"),
        other => panic!("expected ZoneNotFound, got {other:?}"),
    }
    let unreachable = Cloudflare::new("http://127.0.0.1:1/client/v4", TOKEN).expect("client");
    let err = unreachable.add_txt(&name("example.test"), "v").await;
    assert!(matches!(err, Err(DnsError::Transport { .. })), "{err:?}");
    assert!(fake.lock().expect("lock").records.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn issues_a_wildcard_through_cloudflare_with_pebble() {
    let Some(pebble) = support::pebble::Pebble::start() else { return };
    let (base, fake) = fake_cloudflare(Some(pebble.challtestsrv.clone())).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = CertFiles { chain: tmp.path().join("chain.pem"), key: tmp.path().join("key.pem") };
    let mut config = pebble.issuer_config(tmp.path(), files);
    config.propagation_delay = Duration::from_millis(10);
    let cf = Cloudflare::new(base, TOKEN).expect("client");
    let info = CertIssuer::new(config, Arc::new(cf), None).issue().await.expect("issue");
    assert!(info.names.contains(&"*.example.test".to_string()), "{:?}", info.names);
    // Both challenge records were created in the zone, then deleted.
    let fake = fake.lock().expect("lock");
    assert_eq!(fake.next, 2, "one TXT record per authorization");
    assert!(fake.records.is_empty(), "TXT records left behind: {:?}", fake.records);
}
