//! The nginx backend against a real nginx started by the test (own prefix, loopback ports, two
//! workers, Debian's Lua module).

mod support;

use kws_proxy::{ProxyError, ProxyWriter, Route, nginx::NginxProxy, testkit};
use support::{Fixture, https_get, journal_hosts, upstream};

#[tokio::test(flavor = "multi_thread")]
async fn conformance_direct_and_boxed() {
    let Some(fx) = Fixture::start().await else { return };
    testkit::all(&fx.proxy).await;
    let Fixture { proxy, nginx: _nginx, tmp: _tmp, .. } = fx;
    let boxed: Box<dyn ProxyWriter> = Box::new(proxy);
    testkit::all(boxed.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_serves_redirects_and_unpublish_forgets() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("one").await;
    let host = fx.host("app");
    fx.proxy.publish(Route::app(host.clone(), up)).await.expect("publish");
    assert_eq!(journal_hosts(&fx.kws_dir()), vec!["app.example.test"]);

    // publish returns once every worker serves the route: no retry here.
    let https = fx.nginx.https_addr();
    let (ok, body) = https_get("app.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream one"), "not served right after publish: {body}");
    // An app sees the host it was published under, without the port the client used.
    assert!(body.contains("host=app.example.test "), "{body}");
    assert!(body.contains("xfp=https"), "{body}");
    assert!(body.contains("xff=127.0.0.1"), "{body}");
    assert!(body.contains("xfh=app.example.test"), "{body}");

    // Plain HTTP redirects to HTTPS on the same host.
    let http = fx.nginx.http_addr();
    let line = support::redirect_of("app.example.test", http, "/x?y=1").await;
    assert_eq!(line, format!("308 https://app.example.test:{}/x?y=1", https.port()));

    // A host nobody published gets no route (TLS refused), before and after unpublish.
    let (ok, err) = https_get("other.example.test", https, &fx.ca).await;
    assert!(!ok, "unknown host served: {err}");
    assert_eq!(support::redirect_of("other.example.test", http, "/").await, "404 ");
    fx.proxy.unpublish(&host).await.expect("unpublish");
    assert!(journal_hosts(&fx.kws_dir()).is_empty());
    for _ in 0..20 {
        let (ok, _) = https_get("app.example.test", https, &fx.ca).await;
        assert!(!ok, "still served after unpublish returned");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_through_an_ide_route() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("ide").await;
    fx.proxy.publish(Route::ide(fx.host("ide1"), up)).await.expect("publish ide");
    let https = fx.nginx.https_addr();
    let (ok, body) = https_get("ide1.example.test", https, &fx.ca).await;
    // An IDE sees the Host header the browser sent, port included (its origin check needs it).
    assert!(ok && body.contains(&format!("host=ide1.example.test:{} ", https.port())), "{body}");

    support::websocket_echo("ide1.example.test", https, &fx.ca, &["hello", "second message"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ide_route_with_a_gate_asks_it_before_every_request_and_upgrade() {
    let gate = support::gate::gate().await;
    let Some(fx) = Fixture::start_with(Some(gate)).await else { return };
    let up = upstream("ide").await;
    fx.proxy.publish(Route::ide(fx.host("g"), up)).await.expect("publish ide");
    fx.proxy.publish(Route::app(fx.host("shop"), up)).await.expect("publish app");
    support::gate::gate_checks(fx.nginx.https_addr(), &fx.ca).await;

    // An IDE that does not listen yet: a page that reloads itself, not a 502.
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    fx.proxy.publish(Route::ide(fx.host("starting"), closed)).await.expect("publish");
    let https = fx.nginx.https_addr();
    let (status, _, body) = support::gate::through(
        https,
        &fx.ca,
        "starting.example.test",
        "/",
        "kws_ide=member",
        &["-i"],
    )
    .await;
    assert_eq!(status, "503", "{body}");
    assert!(body.contains("Retry-After: 1") && body.contains("http-equiv=\"refresh\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_swaps_the_upstream_and_the_kind() {
    let Some(fx) = Fixture::start().await else { return };
    let (a, b) = (upstream("a").await, upstream("b").await);
    let https = fx.nginx.https_addr();
    fx.proxy.publish(Route::app(fx.host("swap"), a)).await.expect("publish");
    fx.proxy.replace(Route::app(fx.host("swap"), b)).await.expect("replace");
    let (ok, body) = https_get("swap.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream b"), "{body}");
    fx.proxy.replace(Route::ide(fx.host("swap"), a)).await.expect("to an IDE route");
    support::websocket_echo("swap.example.test", https, &fx.ca, &["after replace"]).await;
    let plain = Route::app(fx.host("swap"), b).with_tls(false);
    fx.proxy.replace(plain.clone()).await.expect("to plain HTTP");
    let (ok, _) = https_get("swap.example.test", https, &fx.ca).await;
    assert!(!ok, "a plain HTTP route is not served over HTTPS");
    assert_eq!(fx.proxy.served().await.expect("served").routes, vec![plain]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_reads_the_routes_back_from_the_journal() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("r").await;
    let longest = "l".repeat(63);
    let routes = vec![
        Route::app(fx.host(&longest), up),
        Route::app(fx.host("r1"), up),
        Route::ide(fx.host("r2"), up),
        Route::app(fx.host("r3"), up).with_tls(false).with_websocket(true),
    ];
    fx.proxy.publish_all(routes.clone()).await.expect("publish_all");
    // A batch a crash left without its commit line is cut off on open, and never served.
    let journal = fx.nginx.config().journal_path();
    let committed = std::fs::read(&journal).expect("journal");
    let mut torn = committed.clone();
    torn.extend_from_slice(format!("+ r9.example.test {up} app tls\n+ r10.exa").as_bytes());
    std::fs::write(&journal, &torn).expect("torn tail");
    // One writer per folder: a second open is refused while the first lives.
    let second = NginxProxy::open(support::policy(), fx.nginx.config().clone()).await;
    assert!(matches!(second, Err(ProxyError::Locked { .. })), "{second:?}");
    let Fixture { proxy, nginx, ca, tmp: _tmp, .. } = fx;
    drop(proxy);
    let reopened =
        NginxProxy::open(support::policy(), nginx.config().clone()).await.expect("reopen");
    assert_eq!(reopened.routes().await.expect("routes"), routes);
    assert_eq!(std::fs::read(&journal).expect("journal"), committed);
    assert_eq!(reopened.served().await.expect("served").routes, routes);
    let (ok, body) = https_get(&format!("{longest}.example.test"), nginx.https_addr(), &ca).await;
    assert!(ok && body.contains("upstream r"), "63-character label: {body}");

    // A plain-HTTP route is served over HTTP.
    let http = nginx.http_addr();
    let out = support::curl(&[
        "--resolve".into(),
        format!("r3.example.test:{}:127.0.0.1", http.port()),
        format!("http://r3.example.test:{}/", http.port()),
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("upstream r host=r3.example.test xfp=http"), "{body}");

    // A journal changed by hand into something kws did not write is refused.
    std::fs::write(&journal, "# kws routes 1\n+ r1.example.test not-an-address app tls\n.\n")
        .expect("corrupt");
    drop(reopened);
    let err = NginxProxy::open(support::policy(), nginx.config().clone()).await;
    assert!(matches!(err, Err(ProxyError::CorruptRouteFile { .. })), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_puts_back_what_was_changed_in_nginx_by_hand() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("kept").await;
    for name in ["kept", "lost"] {
        fx.proxy.publish(Route::app(fx.host(name), up)).await.expect("publish");
    }
    assert!(fx.proxy.repair().await.expect("repair").is_empty(), "nothing drifted yet");
    // By hand, through nginx's admin server: one route removed, one added that kws never made.
    let admin = fx.nginx.config().admin_listen;
    let conf = std::fs::read_to_string(fx.nginx.config().dir.join("admin.conf")).expect("conf");
    let token = conf.split("Bearer ").nth(1).and_then(|t| t.split('"').next()).expect("token");
    let by_hand = format!("- lost.example.test\n+ stray.example.test {up} app tls\n");
    let out = support::curl(&[
        "-sS".into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        "--data-binary".into(),
        by_hand,
        format!("http://{admin}/kws/routes"),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let https = fx.nginx.https_addr();
    assert!(!https_get("lost.example.test", https, &fx.ca).await.0, "removed by hand");
    let repaired: Vec<String> =
        fx.proxy.repair().await.expect("repair").iter().map(ToString::to_string).collect();
    assert_eq!(repaired, ["lost.example.test", "stray.example.test"]);
    let (ok, body) = https_get("lost.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream kept"), "served again: {body}");
    assert!(!https_get("stray.example.test", https, &fx.ca).await.0, "the stray route is gone");
    assert!(fx.proxy.repair().await.expect("repair").is_empty(), "nothing left to repair");
}
