//! The Caddy backend against a real Caddy started by the test (admin API and listeners on
//! loopback, data in a temporary folder).

mod support;

use kws_proxy::{ProxyWriter, Route, caddy::CaddyProxy, testkit};
use support::{TestCa, caddy::LocalCaddy, https_get, policy, upstream};

struct Setup {
    proxy: CaddyProxy,
    caddy: LocalCaddy,
    ca: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    setup_with(None).await
}

async fn setup_with(ide_gate: Option<std::net::SocketAddr>) -> Option<Setup> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = TestCa::new("kws test CA").leaf(
        tmp.path(),
        "wildcard",
        &["*.example.test", "example.test"],
    );
    let caddy = LocalCaddy::start(certs)?;
    let config = kws_proxy::caddy::CaddyConfig { ide_gate, ..caddy.config.clone() };
    let proxy = CaddyProxy::open(policy(), config).await.expect("open caddy proxy");
    Some(Setup { proxy, caddy, ca: tmp.path().join("ca.pem"), _tmp: tmp })
}

fn host(s: &Setup, label: &str) -> kws_core::Hostname {
    s.proxy.policy().host(&format!("{label}.example.test")).expect("host")
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_direct_and_boxed() {
    let Some(s) = setup().await else { return };
    testkit::all(&s.proxy).await;
    let Setup { proxy, caddy: _caddy, _tmp, .. } = s;
    let boxed: Box<dyn ProxyWriter> = Box::new(proxy);
    testkit::all(boxed.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_serves_redirects_and_unpublish_forgets() {
    let Some(s) = setup().await else { return };
    let up = upstream("one").await;
    s.proxy.publish(Route::app(host(&s, "app"), up)).await.expect("publish");
    let https = s.caddy.config.https_listen;
    let (ok, body) = https_get("app.example.test", https, &s.ca).await;
    // Caddy passes the Host header on as the client sent it (with the port).
    assert!(ok && body.contains("upstream one host=app.example.test:"), "{body}");
    assert!(body.contains("xfp=https xff=127.0.0.1 xfh=app.example.test"), "{body}");

    let http = s.caddy.config.http_listen;
    let line = support::redirect_of("app.example.test", http, "/x?y=1").await;
    assert_eq!(line, format!("308 https://app.example.test:{}/x?y=1", https.port()));

    let status = |host: &'static str| {
        let ca = s.ca.clone();
        async move {
            let out = support::curl(&[
                "-o".into(),
                "/dev/null".into(),
                "-w".into(),
                "%{http_code}".into(),
                "--cacert".into(),
                ca.display().to_string(),
                "--resolve".into(),
                format!("{host}:{}:127.0.0.1", https.port()),
                format!("https://{host}:{}/", https.port()),
            ])
            .await;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    assert_eq!(status("other.example.test").await, "404");
    s.proxy.unpublish(&host(&s, "app")).await.expect("unpublish");
    assert_eq!(status("app.example.test").await, "404");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ide_route_with_a_gate_asks_it_before_every_request_and_upgrade() {
    let gate = support::gate::gate().await;
    let Some(s) = setup_with(Some(gate)).await else { return };
    let up = upstream("ide").await;
    s.proxy.publish(Route::ide(host(&s, "g"), up)).await.expect("publish ide");
    s.proxy.publish(Route::app(host(&s, "shop"), up)).await.expect("publish app");
    support::gate::gate_checks(s.caddy.config.https_listen, &s.ca).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_through_an_ide_route() {
    let Some(s) = setup().await else { return };
    let up = upstream("ide").await;
    s.proxy.publish(Route::ide(host(&s, "ide1"), up)).await.expect("publish ide");
    let https = s.caddy.config.https_listen;

    support::websocket_echo("ide1.example.test", https, &s.ca, &["hello", "second message"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_change_leaves_the_table_as_it_was() {
    let Some(mut s) = setup().await else { return };
    let up = upstream("kept").await;
    s.proxy.publish(Route::app(host(&s, "kept"), up)).await.expect("publish");
    s.caddy.stop();
    let err = s.proxy.publish(Route::app(host(&s, "lost"), up)).await;
    assert!(matches!(err, Err(kws_proxy::ProxyError::Unavailable { .. })), "{err:?}");
    let err = s.proxy.unpublish(&host(&s, "kept")).await;
    assert!(matches!(err, Err(kws_proxy::ProxyError::Unavailable { .. })), "{err:?}");
    let routes = s.proxy.routes().await.expect("routes");
    assert_eq!(routes, vec![Route::app(host(&s, "kept"), up)]);
    // Nothing of the failed changes was persisted.
    let journal = std::fs::read_to_string(s.caddy.config.dir.join("routes.journal")).expect("j");
    assert_eq!(support::journal_hosts(&s.caddy.config.dir), vec!["kept.example.test"], "{journal}");
}

/// Caddy restarts and forgets every route: `restore` loads them again from kws's journal, as
/// they stood after publishes (one and a batch), a replace and an unpublish; reopening reads
/// the same routes back, and a second writer on the folder is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_caddy_restart_serves_every_route_again_from_the_journal() {
    let Some(mut s) = setup().await else { return };
    let (a, b) = (upstream("a").await, upstream("b").await);
    s.proxy.publish(Route::app(host(&s, "one"), a)).await.expect("publish");
    let batch: Vec<Route> = (0..20).map(|i| Route::app(host(&s, &format!("b{i:02}")), a)).collect();
    s.proxy.publish_all(batch).await.expect("publish_all");
    s.proxy.replace(Route::ide(host(&s, "b00"), b)).await.expect("replace");
    s.proxy.unpublish(&host(&s, "b01")).await.expect("unpublish");
    let before = s.proxy.routes().await.expect("routes");
    assert_eq!(before.len(), 20);

    s.caddy.restart();
    let https = s.caddy.config.https_listen;
    let (ok, _) = https_get("one.example.test", https, &s.ca).await;
    assert!(!ok, "a restarted Caddy serves nothing before the restore");
    s.proxy.restore().await.expect("restore");
    for route in &before {
        let name = if route.upstream() == b { "upstream b" } else { "upstream a" };
        let (ok, body) = https_get(&route.host().to_string(), https, &s.ca).await;
        assert!(ok && body.contains(name), "{}: {body}", route.host());
    }
    support::websocket_echo("b00.example.test", https, &s.ca, &["after the restart"]).await;
    let out = support::redirect_of("b01.example.test", s.caddy.config.http_listen, "/").await;
    assert!(out.starts_with("404"), "an unpublished route came back: {out}");

    let second = CaddyProxy::open(policy(), s.caddy.config.clone()).await;
    assert!(matches!(second, Err(kws_proxy::ProxyError::Locked { .. })), "{second:?}");
    let Setup { proxy, caddy, .. } = s;
    drop(proxy);
    let reopened = CaddyProxy::open(policy(), caddy.config.clone()).await.expect("reopen");
    assert_eq!(reopened.routes().await.expect("routes"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_certificate_reload_keeps_serving() {
    let Some(s) = setup().await else { return };
    let up = upstream("kept").await;
    s.proxy.publish(Route::app(host(&s, "kept"), up)).await.expect("publish");
    // The certificate on disk gets corrupted: Caddy refuses the new configuration and keeps
    // running the previous one, with the good certificate and every route.
    let chain = s.caddy.config.certificate.chain.clone();
    let good = std::fs::read(&chain).expect("chain");
    std::fs::write(&chain, "not a certificate\n").expect("corrupt");
    let err = s.proxy.reload_certificate_files().await;
    assert!(matches!(err, Err(kws_proxy::ProxyError::Reload { .. })), "{err:?}");
    let (ok, body) = https_get("kept.example.test", s.caddy.config.https_listen, &s.ca).await;
    assert!(ok && body.contains("upstream kept"), "{body}");
    // And once the file is good again, the reload goes through.
    std::fs::write(&chain, good).expect("restore");
    s.proxy.reload_certificate_files().await.expect("reload");
    let (ok, body) = https_get("kept.example.test", s.caddy.config.https_listen, &s.ca).await;
    assert!(ok && body.contains("upstream kept"), "{body}");
}
