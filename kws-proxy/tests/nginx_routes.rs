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

/// A stand-in for kwsd's gate (the real one is tested through kwsd in the root crate's
/// browser test): `/_kws/check` passes the cookie `kws_ide=member`, hides `kws_ide=stranger`
/// (403) and sends anyone else to sign in (401 naming where); `/_kws/…` answers what it got.
async fn gate() -> std::net::SocketAddr {
    use axum::{http::HeaderMap, routing::get};
    let cookie =
        |h: &HeaderMap| h.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let check = move |h: HeaderMap| async move {
        match cookie(&h).as_str() {
            "kws_ide=member" => (axum::http::StatusCode::NO_CONTENT, [("x-kws-signin", "-")]),
            "kws_ide=stranger" => (axum::http::StatusCode::FORBIDDEN, [("x-kws-signin", "-")]),
            _ => (
                axum::http::StatusCode::UNAUTHORIZED,
                [("x-kws-signin", "https://dash.test/ide/g")],
            ),
        }
    };
    let page = move |h: HeaderMap, uri: axum::http::Uri| async move {
        format!("gate {} cookie={}", uri.path(), cookie(&h))
    };
    let app = axum::Router::new().route("/_kws/check", get(check)).fallback(page);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `curl` of `https://<host>/<path>` through nginx with `cookie`: `(status, Location, body)`.
async fn through(fx: &Fixture, host: &str, path: &str, cookie: &str) -> (String, String, String) {
    let https = fx.nginx.https_addr();
    let out = support::curl(&[
        "-w".into(),
        "\n%{http_code} %{redirect_url}".into(),
        "--resolve".into(),
        format!("{host}:{}:127.0.0.1", https.port()),
        "--cacert".into(),
        fx.ca.display().to_string(),
        "-H".into(),
        format!("Cookie: {cookie}"),
        format!("https://{host}:{}{path}", https.port()),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (status, location) = last.split_once(' ').unwrap_or((last, ""));
    (status.to_owned(), location.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ide_route_with_a_gate_asks_it_before_every_request_and_upgrade() {
    let gate = gate().await;
    let Some(fx) = Fixture::start_with(Some(gate)).await else { return };
    let up = upstream("ide").await;
    fx.proxy.publish(Route::ide(fx.host("g"), up)).await.expect("publish ide");
    fx.proxy.publish(Route::app(fx.host("shop"), up)).await.expect("publish app");

    let (status, location, _) = through(&fx, "g.example.test", "/", "").await;
    assert_eq!((status.as_str(), location.as_str()), ("302", "https://dash.test/ide/g"));
    let (status, _, body) = through(&fx, "g.example.test", "/", "kws_ide=stranger").await;
    assert_eq!(status, "404", "another tenant's visitor sees nothing: {body}");
    let (status, _, body) = through(&fx, "g.example.test", "/", "a=1; kws_ide=member; b=2").await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("upstream ide") && body.contains("cookie=a=1; b=2\n"), "{body}");
    // The gate's own pages on the IDE host get the IDE cookie, and no other.
    let (status, _, body) =
        through(&fx, "g.example.test", "/_kws/enter?t=1", "a=1; kws_ide=x").await;
    assert_eq!((status.as_str(), body.as_str()), ("200", "gate /_kws/enter cookie=kws_ide=x"));
    // The check's location is not reachable from outside.
    let (status, _, _) = through(&fx, "g.example.test", "/_kws_gate_check", "kws_ide=member").await;
    assert_ne!(status, "204");
    // An app route is not checked, and its /_kws/ is the app's.
    let (status, _, body) = through(&fx, "shop.example.test", "/_kws/enter", "kws_ide=x").await;
    assert!(status == "200" && body.contains("upstream ide"), "{status} {body}");

    // A WebSocket upgrade is checked too: refused without the cookie, through with it.
    let https = fx.nginx.https_addr();
    let out = support::curl(&[
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "--resolve".into(),
        format!("g.example.test:{}:127.0.0.1", https.port()),
        "--cacert".into(),
        fx.ca.display().to_string(),
        "--http1.1".into(),
        "-H".into(),
        "Connection: Upgrade".into(),
        "-H".into(),
        "Upgrade: websocket".into(),
        "-H".into(),
        "Sec-WebSocket-Version: 13".into(),
        "-H".into(),
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".into(),
        format!("https://g.example.test:{}/ws", https.port()),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "302", "an upgrade without the cookie");
    support::websocket_echo_with(
        "g.example.test",
        https,
        &fx.ca,
        &["through the gate"],
        Some("kws_ide=member"),
    )
    .await;
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
