//! The flows through the API: an instance launched, read with its `ETag`, stopped, waited
//! for, started, redeployed and removed; one create sent 50 times at once with one
//! `Idempotency-Key` makes one instance, and the key with another body is 422; a device's
//! config is in its create's answer only; shutdown with a long poll open drains in bound.

use std::time::{Duration, Instant};

use kws::http::Drained;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_goes_through_its_life_over_http() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let base = "/api/v1/tenants/acme/instances";
    let made = member.post(base, json!({"name": "web"})).await.expect(StatusCode::CREATED);
    assert_eq!(made.body["name"], "web");
    assert_eq!(made.body["status"]["state"], "running", "{:?}", made.body);
    let got = member.get(&format!("{base}/web")).await.expect(StatusCode::OK);
    let etag = got.headers["etag"].to_str().expect("text").to_owned();
    assert_eq!(etag, format!("\"{}\"", got.body["version"]));
    member.post(&format!("{base}/web/stop"), json!({})).await.expect(StatusCode::OK);
    let waited = member.get(&format!("{base}/web/wait?state=exited&timeout=5")).await;
    assert_eq!(waited.expect(StatusCode::OK).body["status"]["state"], "exited");
    // A state that does not come: 408 at the timeout.
    let started = Instant::now();
    let timeout = member.get(&format!("{base}/web/wait?state=running&timeout=1")).await;
    assert_eq!((timeout.status, timeout.code()), (StatusCode::REQUEST_TIMEOUT, "timeout"));
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    member.post(&format!("{base}/web/start"), json!({})).await.expect(StatusCode::OK);
    member.get(&format!("{base}/web/wait?state=running&timeout=5")).await.expect(StatusCode::OK);
    let redeployed = member
        .post(&format!("{base}/web/redeploy"), json!({"env": {"MODE": "prod"}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(redeployed.body["spec"]["env"]["MODE"], "prod");
    assert!(redeployed.body["version"].as_u64() > got.body["version"].as_u64());
    let bad = member.get(&format!("{base}/web/wait?state=sleeping")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = member.post(&format!("{base}/web/explode"), json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    member.send(Method::DELETE, &format!("{base}/web"), None).await.expect(StatusCode::NO_CONTENT);
    member.get(&format!("{base}/web")).await.expect(StatusCode::NOT_FOUND);
    // Pages: limit and cursor.
    for i in 0..3 {
        member.post(base, json!({"name": format!("p{i}")})).await.expect(StatusCode::CREATED);
    }
    let first = member.get(&format!("{base}?limit=2")).await.expect(StatusCode::OK);
    assert_eq!(first.body["items"].as_array().expect("items").len(), 2);
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let second = member.get(&format!("{base}?limit=2&after={next}")).await.expect(StatusCode::OK);
    let names: Vec<_> =
        second.body["items"].as_array().expect("items").iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, [json!("p2")]);
    assert!(second.body["next"].is_null());
    member.get(&format!("{base}?limit=0")).await.expect(StatusCode::BAD_REQUEST);
}

/// The items of a list page by name.
async fn listed(client: &crate::server::Client, path: &str) -> Vec<serde_json::Value> {
    let page = client.get(path).await.expect(StatusCode::OK);
    page.body["items"].as_array().expect("items").clone()
}

/// Lists are answered from views kept between requests (src/api/listing.rs): every change of
/// an object's spec, status or life shows in the next list, and a listed item is the object as
/// `GET` answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_shows_every_change_at_once() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let base = "/api/v1/tenants/acme/instances";
    for name in ["db", "web"] {
        member.post(base, json!({"name": name})).await.expect(StatusCode::CREATED);
    }
    let agree = |items: Vec<serde_json::Value>| {
        let member = member.clone();
        async move {
            for item in &items {
                let name = item["name"].as_str().expect("name");
                let got = member.get(&format!("{base}/{name}")).await.expect(StatusCode::OK);
                assert_eq!(item, &got.body, "the listed {name} is the object");
            }
            items
        }
    };
    let first = agree(listed(&member, base).await).await;
    assert_eq!(agree(listed(&member, base).await).await, first, "nothing changed");
    member.post(&format!("{base}/web/stop"), json!({})).await.expect(StatusCode::OK);
    let stopped = agree(listed(&member, base).await).await;
    assert!(stopped[1]["version"].as_u64() > first[1]["version"].as_u64(), "{stopped:?}");
    member.get(&format!("{base}/web/wait?state=exited&timeout=5")).await.expect(StatusCode::OK);
    let exited = agree(listed(&member, base).await).await;
    assert_eq!(exited[1]["status"]["state"], "exited", "{exited:?}");
    member.send(Method::DELETE, &format!("{base}/db"), None).await.expect(StatusCode::NO_CONTENT);
    let left = agree(listed(&member, base).await).await;
    let names: Vec<_> = left.iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, [json!("web")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_fifty_times_at_once_makes_one_instance() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let path = "/api/v1/tenants/acme/instances";
    let sends = (0..50).map(|_| {
        let member = member.clone();
        async move {
            let r = member
                .request(Method::POST, path)
                .header("idempotency-key", "k-1")
                .json(&json!({"name": "once"}));
            crate::server::answer(r.send().await.expect("send")).await
        }
    });
    let answers = futures::future::join_all(sends).await;
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|a| {
            assert!(a.status == StatusCode::CREATED, "{} {:?}", a.status, a.body);
            a.body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one instance for every answer");
    let listed = member.get(path).await.expect(StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);
    let other = member
        .request(Method::POST, path)
        .header("idempotency-key", "k-1")
        .json(&json!({"name": "other"}))
        .send()
        .await
        .expect("send");
    let other = crate::server::answer(other).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_config_is_shown_once_and_revoking_removes_it() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let path = "/api/v1/tenants/acme/devices";
    let made = member.post(path, json!({"name": "laptop"})).await.expect(StatusCode::CREATED);
    let config = made.body["config"].as_str().expect("config");
    assert!(config.contains("[Interface]") && config.contains("PrivateKey"), "{config}");
    let got = member.get(&format!("{path}/laptop")).await.expect(StatusCode::OK);
    assert!(!got.body.to_string().contains("PrivateKey"), "{:?}", got.body);
    member
        .send(Method::DELETE, &format!("{path}/laptop"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    member.get(&format!("{path}/laptop")).await.expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_open_long_polls_and_drains_within_its_bound() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let op = srv.operator.clone();
    op.post("/api/v1/tenants/acme/instances", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    let polls: Vec<_> = (0..5)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                op.get("/api/v1/tenants/acme/instances/web/wait?state=dead&timeout=60").await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bound = srv.state.settings().drain;
    let started = Instant::now();
    assert_eq!(srv.stop().await, Drained::Clean);
    assert!(started.elapsed() < bound, "drained in {:?}", started.elapsed());
    for poll in polls {
        let a = poll.await.expect("poll");
        assert_eq!((a.status, a.code()), (StatusCode::SERVICE_UNAVAILABLE, "busy"), "{:?}", a.body);
        assert!(a.headers.contains_key("retry-after"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let base = "/api/v1/tenants/acme/instances";
    let made = member.post(base, json!({"name": "web"})).await.expect(StatusCode::CREATED);
    let etag = made.headers["etag"].to_str().expect("text").to_owned();
    let send = |etag: String, body: serde_json::Value| {
        let member = member.clone();
        async move {
            let r = member
                .request(Method::POST, &format!("{base}/web/redeploy"))
                .header("if-match", etag)
                .json(&body);
            crate::server::answer(r.send().await.expect("send")).await
        }
    };
    let first = send(etag.clone(), json!({"env": {"A": "1"}})).await.expect(StatusCode::OK);
    let fresh = first.headers["etag"].to_str().expect("text").to_owned();
    assert_ne!(fresh, etag);
    // The same ETag again is stale now: 412, and the spec stays as the first change left it.
    let stale = send(etag.clone(), json!({"env": {"A": "2"}})).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        "{:?}",
        stale.body
    );
    let now = member.get(&format!("{base}/web")).await.expect(StatusCode::OK);
    assert_eq!(now.body["spec"]["env"]["A"], "1");
    let stop = member
        .request(Method::POST, &format!("{base}/web/stop"))
        .header("if-match", etag)
        .send()
        .await
        .expect("send");
    assert_eq!(stop.status(), StatusCode::PRECONDITION_FAILED);
    let bad = send("7".into(), json!({})).await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("If-Match"))
    );
    send(fresh, json!({"env": {"A": "3"}})).await.expect(StatusCode::OK);
    // A tenant's quotas, the same way.
    let tenant = srv.operator.get("/api/v1/tenants/acme").await.expect(StatusCode::OK);
    let etag = tenant.headers["etag"].to_str().expect("text").to_owned();
    let patch = |etag: &str, n: u64| {
        srv.operator
            .request(Method::PATCH, "/api/v1/tenants/acme")
            .header("if-match", etag)
            .json(&json!({"quotas": {"instances": n}}))
            .send()
    };
    assert_eq!(patch(&etag, 7).await.expect("send").status(), StatusCode::OK);
    assert_eq!(patch(&etag, 8).await.expect("send").status(), StatusCode::PRECONDITION_FAILED);
    let tenant = srv.operator.get("/api/v1/tenants/acme").await.expect(StatusCode::OK);
    assert_eq!(tenant.body["quotas"]["instances"], 7);
}
