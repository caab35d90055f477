//! 10,000 routes in one nginx: published in one batch, each served by its own host and the
//! right upstream (checked with `curl --resolve`), then single publishes, unpublishes and
//! replaces on top of them, then an nginx crash and restart that serves all of them again from
//! kws's journal.

mod support;

use std::{path::Path, time::Instant};

use kws_proxy::{ProxyWriter, Route, nginx::Stop};
use support::{Fixture, journal_hosts, upstream};

const ROUTES: usize = 10_000;
const UPSTREAMS: usize = 5;

/// One curl process fetches `https://<host>/` for every host (a config file of urls, 8
/// transfers at once; `--connect-to` sends them all to 127.0.0.1, as `--resolve` per host would,
/// which costs curl a pass over every entry per transfer) and prints `<host> <status>
/// <x-upstream>` per transfer.
async fn fetch_all(hosts: &[String], port: u16, ca: &Path, dir: &Path) -> Vec<String> {
    let mut config = String::new();
    for host in hosts {
        config.push_str(&format!("url = \"https://{host}:{port}/\"\noutput = \"/dev/null\"\n"));
    }
    let path = dir.join("curl-all.conf");
    std::fs::write(&path, config).expect("curl config");
    let out = support::curl(&[
        "--parallel".into(),
        "--parallel-max".into(),
        "8".into(),
        "--connect-to".into(),
        format!("::127.0.0.1:{port}"),
        "--cacert".into(),
        ca.display().to_string(),
        "-w".into(),
        "%{url_effective} %{http_code} %header{x-upstream}\\n".into(),
        "-K".into(),
        path.display().to_string(),
    ])
    .await;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (url, rest) = line.split_once(' ').unwrap_or((line, ""));
            let host = url.trim_start_matches("https://").split(':').next().unwrap_or("");
            format!("{host} {rest}")
        })
        .collect();
    lines.sort();
    lines
}

/// Asserts `got == want` (sorted lines), printing only the lines that differ.
fn assert_same(what: &str, got: &[String], want: &[String]) {
    let extra: Vec<&String> = got.iter().filter(|l| want.binary_search(l).is_err()).collect();
    let missing: Vec<&String> = want.iter().filter(|l| got.binary_search(l).is_err()).collect();
    assert!(
        extra.is_empty() && missing.is_empty() && got.len() == want.len(),
        "{what}: {} lines, {} expected; unexpected {:?}; missing {:?}",
        got.len(),
        want.len(),
        &extra[..extra.len().min(10)],
        &missing[..missing.len().min(10)],
    );
}

fn expected(routes: &[(String, String)]) -> Vec<String> {
    let mut lines: Vec<String> =
        routes.iter().map(|(host, up)| format!("{host} 200 {up}")).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_routes_publish_change_serve_and_survive_a_restart() {
    let Some(mut fx) = Fixture::start().await else { return };
    let mut upstreams = Vec::new();
    for i in 0..UPSTREAMS {
        upstreams.push(upstream(&format!("u{i}")).await);
    }
    let routes: Vec<Route> = (0..ROUTES)
        .map(|i| Route::app(fx.host(&format!("app{i:05}")), upstreams[i % UPSTREAMS]))
        .collect();
    let start = Instant::now();
    fx.proxy.publish_all(routes).await.expect("publish 10,000 routes");
    eprintln!("published {ROUTES} routes in one batch in {:?}", start.elapsed());
    assert_eq!(fx.proxy.routes().await.expect("routes").len(), ROUTES);
    assert_eq!(journal_hosts(&fx.kws_dir()).len(), ROUTES);

    let mut want: Vec<(String, String)> = (0..ROUTES)
        .map(|i| (format!("app{i:05}.example.test"), format!("u{}", i % UPSTREAMS)))
        .collect();
    let hosts: Vec<String> = want.iter().map(|(h, _)| h.clone()).collect();
    let port = fx.nginx.https_addr().port();
    let start = Instant::now();
    let lines = fetch_all(&hosts, port, &fx.ca, fx.tmp.path()).await;
    assert_same("curl after the batch", &lines, &expected(&want));
    eprintln!("checked {ROUTES} routes with curl in {:?}", start.elapsed());

    // Single changes on top of 10,000: each is served (or gone) when its call returns.
    let https = fx.nginx.https_addr();
    let extra = fx.host("extra");
    fx.proxy.publish(Route::app(extra.clone(), upstreams[1])).await.expect("publish 10,001st");
    let (ok, body) = support::https_get("extra.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream u1"), "{body}");
    fx.proxy.unpublish(&fx.host("app00042")).await.expect("unpublish one");
    let (ok, body) = support::https_get("app00042.example.test", https, &fx.ca).await;
    assert!(!ok, "unpublished route still served: {body}");
    fx.proxy.replace(Route::app(fx.host("app00007"), upstreams[4])).await.expect("replace one");
    let (ok, body) = support::https_get("app00007.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream u4"), "{body}");
    want.retain(|(h, _)| h != "app00042.example.test");
    want.push(("extra.example.test".into(), "u1".into()));
    for (host, up) in &mut want {
        if host == "app00007.example.test" {
            *up = "u4".into();
        }
    }

    let table = fx.proxy.served().await.expect("served");
    let (served, used) = (table.routes, table.bytes_in_use);
    assert!(served == fx.proxy.routes().await.expect("routes"), "nginx's table differs");
    let rss: u64 = fx.nginx.worker_pids().iter().map(|pid| rss_kib(*pid)).sum();
    eprintln!("{} routes: table {used} bytes in use, workers' RSS {rss} KiB", served.len());

    // nginx crashes (every process killed) and starts again: it reads the journal before it
    // accepts a connection, and serves every route as it stood. Every host is checked by its
    // Host header on kept-alive connections (a TLS handshake per host was checked above), and
    // 500 of them with a handshake of their own.
    fx.nginx.restart(Stop::Kill).expect("restart nginx");
    let start = Instant::now();
    let served = fx.proxy.served().await.expect("served").routes;
    assert!(served == fx.proxy.routes().await.expect("routes"), "nginx's table differs");
    let hosts: Vec<String> = want.iter().map(|(h, _)| h.clone()).collect();
    let tls = support::load::connector(&fx.ca);
    let lines = support::load::get_all_by_host(&tls, https, "extra.example.test", &hosts, 4).await;
    assert_same("by Host after the restart", &lines, &expected(&want));
    let sample: Vec<(String, String)> = want.iter().step_by(want.len() / 500).cloned().collect();
    let hosts: Vec<String> = sample.iter().map(|(h, _)| h.clone()).collect();
    let lines = fetch_all(&hosts, port, &fx.ca, fx.tmp.path()).await;
    assert_same("curl after the restart", &lines, &expected(&sample));
    eprintln!("after the restart, checked {} routes in {:?}", want.len(), start.elapsed());
    let (ok, _) = support::https_get("app00042.example.test", https, &fx.ca).await;
    assert!(!ok, "an unpublished route came back with the restart");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
