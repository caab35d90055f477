//! The streams: the tenant's events resume from `Last-Event-ID` with nothing missed or twice
//! and never carry another tenant's; 1,000 subscribers all receive every event; shutdown ends
//! open streams with a final event within the drain bound; logs stream as `log` events.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kws::http::Drained;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::server::{Client, Server};

/// One event as read off the wire.
#[derive(Debug, Clone)]
pub(crate) struct Sse {
    pub(crate) name: String,
    pub(crate) id: Option<u64>,
    pub(crate) data: Value,
}

/// A stream of events from `path` (after `Last-Event-ID: last` when given).
pub(crate) async fn open(
    client: &Client,
    path: &str,
    last: Option<u64>,
) -> (StatusCode, reqwest::header::HeaderMap, futures::stream::BoxStream<'static, Sse>) {
    let mut r = client.request(Method::GET, path);
    if let Some(last) = last {
        r = r.header("last-event-id", last.to_string());
    }
    let response = r.send().await.expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = response.bytes_stream();
    let events = async_stream(move |tx| async move {
        let mut buf = String::new();
        while let Some(chunk) = bytes.next().await {
            let Ok(chunk) = chunk else { return };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && block.lines().all(|l| l.starts_with(':')) {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                if tx.send(Sse { name, id, data }).is_err() {
                    return;
                }
            }
        }
    });
    (status, headers, events)
}

/// A stream fed by `body` through a channel.
fn async_stream<F, Fut>(body: F) -> futures::stream::BoxStream<'static, Sse>
where
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Sse>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(body(tx));
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed()
}

/// Reads until `n` events named `name` came (others are kept too); panics after 10 s.
async fn read(
    events: &mut futures::stream::BoxStream<'static, Sse>,
    name: &str,
    n: usize,
) -> Vec<Sse> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().filter(|e: &&Sse| e.name == name).count() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(e)) => got.push(e),
            Ok(None) => panic!("the stream ended after {got:?}"),
            Err(_) => panic!("{n} {name} events did not come within 10 s: {got:?}"),
        }
    }
    got
}

/// Adds devices `names` to `tenant` by `client`.
async fn add_devices(client: &Client, tenant: &str, names: &[String]) {
    for name in names {
        let path = format!("/api/v1/tenants/{tenant}/devices");
        client.post(&path, json!({"name": name})).await.expect(StatusCode::CREATED);
    }
}

fn created(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.name == "object" && e.data["change"] == "created")
        .map(|e| e.data["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reconnects_misses_nothing_and_gets_nothing_twice() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    srv.tenant("other").await;
    let (_, member) = srv.member("ann", "acme", "member").await;
    let (status, headers, mut events) = open(&member, "/api/v1/tenants/acme/events", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers[header::CONTENT_TYPE].to_str().expect("text").starts_with("text/event-stream"));
    let first: Vec<String> = (0..3).map(|i| format!("a{i}")).collect();
    add_devices(&member, "acme", &first).await;
    // The other tenant's events go on meanwhile.
    add_devices(&srv.operator, "other", &["secret".into()]).await;
    let seen = read(&mut events, "object", 3).await;
    let seen: Vec<_> =
        seen.into_iter().filter(|e| e.name == "object" && e.data["change"] == "created").collect();
    assert_eq!(created(&seen), first);
    let last = seen.last().and_then(|e| e.id).expect("ids");
    drop(events);
    // While nobody listens: more of both tenants.
    let second: Vec<String> = (0..3).map(|i| format!("b{i}")).collect();
    add_devices(&member, "acme", &second).await;
    add_devices(&srv.operator, "other", &["hidden".into()]).await;
    let (_, _, mut events) = open(&member, "/api/v1/tenants/acme/events", Some(last)).await;
    let all = read(&mut events, "object", 3).await;
    let ids: Vec<u64> = all.iter().filter_map(|e| e.id).collect();
    assert!(ids.iter().all(|id| *id > last), "nothing twice: {ids:?} after {last}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    let names = created(&all);
    assert_eq!(names.iter().filter(|n| n.starts_with('b')).cloned().collect::<Vec<_>>(), second);
    assert!(all.iter().all(|e| e.data["tenant"] == "acme"), "only acme's: {all:?}");
    // The operator's view of acme's stream is acme's only too.
    let (_, _, mut op_events) = open(&srv.operator, "/api/v1/tenants/acme/events", Some(0)).await;
    let op_all = read(&mut op_events, "object", 6).await;
    assert!(op_all.iter().all(|e| e.data["tenant"] == "acme"), "{op_all:?}");
    // Another tenant's stream is 404 to a member, 401 to nobody.
    let other = member.get("/api/v1/tenants/other/events").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(
        srv.anonymous().get("/api/v1/tenants/acme/events").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_all_receive_every_event() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let op = srv.operator.clone();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(open(&op, "/api/v1/tenants/acme/events", None).await.2);
    }
    let names: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    add_devices(&op, "acme", &names).await;
    let readers =
        streams.into_iter().map(|mut s| async move { created(&read(&mut s, "object", 5).await) });
    let got = futures::future::join_all(readers).await;
    for (i, g) in got.iter().enumerate() {
        let g: Vec<_> = g.iter().filter(|n| n.starts_with('d')).cloned().collect();
        assert_eq!(g, names, "subscriber {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_a_final_event_within_the_bound() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    srv.operator
        .post("/api/v1/tenants/acme/instances", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(open(&srv.operator, "/api/v1/tenants/acme/events", None).await.2);
    }
    let (_, _, logs) =
        open(&srv.operator, "/api/v1/tenants/acme/instances/web/logs?follow=true", None).await;
    streams.push(logs);
    let bound = srv.state.settings().drain;
    let started = Instant::now();
    assert_eq!(srv.stop().await, Drained::Clean);
    assert!(started.elapsed() < bound, "stopped in {:?}", started.elapsed());
    for mut s in streams {
        let all: Vec<Sse> = s.by_ref().collect().await;
        let end = all.last().expect("a final event");
        assert_eq!(end.name, "end", "{all:?}");
        assert!(
            ["shutdown", "done"].contains(&end.data["reason"].as_str().unwrap_or("")),
            "{end:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_stream_to_the_tenant_only() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    srv.tenant("other").await;
    let (_, outsider) = srv.member("eve", "other", "admin").await;
    srv.operator
        .post("/api/v1/tenants/acme/instances", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    let (status, _, events) =
        open(&srv.operator, "/api/v1/tenants/acme/instances/web/logs?tail=10", None).await;
    assert_eq!(status, StatusCode::OK);
    let all: Vec<Sse> = events.collect().await;
    assert_eq!(all.last().map(|e| e.name.as_str()), Some("end"), "{all:?}");
    assert_eq!(
        outsider.get("/api/v1/tenants/acme/instances/web/logs").await.status,
        StatusCode::NOT_FOUND
    );
    let missing = srv.operator.get("/api/v1/tenants/acme/instances/nope/logs").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
