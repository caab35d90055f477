//! The nginx backend against a real nginx started by the test (own prefix, loopback ports).

mod support;

use std::time::Duration;

use kws_proxy::{CheckStage, ProxyError, ProxyWriter, Route, testkit};
use support::{Fixture, https_get, route_files, upstream, wait_served};

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
    assert_eq!(route_files(&fx.kws_dir()), vec!["app.example.test.conf"]);

    // publish returns once nginx's new workers serve and the old ones stopped accepting.
    let https = fx.nginx.https_addr();
    let (ok, body) = https_get("app.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream one"), "not served right after publish: {body}");
    assert!(body.contains("host=app.example.test"), "{body}");
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
    fx.proxy.unpublish(&host).await.expect("unpublish");
    assert!(route_files(&fx.kws_dir()).is_empty());
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
    wait_served("ide1.example.test", https, &fx.ca, "upstream ide").await;

    support::websocket_echo("ide1.example.test", https, &fx.ca, &["hello", "second message"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_whole_config_is_refused_and_old_routes_keep_serving() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("old").await;
    fx.proxy.publish(Route::app(fx.host("old"), up)).await.expect("publish");
    let https = fx.nginx.https_addr();
    wait_served("old.example.test", https, &fx.ca, "upstream old").await;

    // An operator's file that breaks the whole configuration (the new route alone is fine).
    let extra = fx.nginx.config().prefix.join("conf/extra/broken.conf");
    std::fs::write(&extra, "server { listen 127.0.0.1:1; this_is_not_a_directive; }\n")
        .expect("write broken file");
    let err = fx.proxy.publish(Route::app(fx.host("new"), up)).await;
    match err {
        Err(ProxyError::Rejected { host, stage: CheckStage::WholeConfig, output }) => {
            assert_eq!(host.to_string(), "new.example.test");
            assert!(output.contains("this_is_not_a_directive"), "{output}");
        }
        other => panic!("expected a WholeConfig rejection, got {other:?}"),
    }
    assert_eq!(route_files(&fx.kws_dir()), vec!["old.example.test.conf"]);
    assert_eq!(fx.proxy.routes().await.expect("routes").len(), 1);
    // Unpublish is refused the same way and the route stays.
    let err = fx.proxy.unpublish(&fx.host("old")).await;
    assert!(matches!(err, Err(ProxyError::Rejected { .. })), "{err:?}");
    assert_eq!(route_files(&fx.kws_dir()), vec!["old.example.test.conf"]);
    let (ok, body) = https_get("old.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream old"), "old route broke: {body}");

    std::fs::remove_file(&extra).expect("remove broken file");
    fx.proxy.publish(Route::app(fx.host("new"), up)).await.expect("publish once fixed");
    wait_served("new.example.test", https, &fx.ca, "upstream old").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn route_file_refused_alone_writes_nothing_and_old_routes_keep_serving() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("kept").await;
    fx.proxy.publish(Route::app(fx.host("kept"), up)).await.expect("publish");
    let https = fx.nginx.https_addr();
    wait_served("kept.example.test", https, &fx.ca, "upstream kept").await;

    // The certificate on disk gets corrupted: a new route file no longer passes alone. The
    // running nginx still holds the good certificate in memory.
    let good = std::fs::read(&fx.certs.chain).expect("chain");
    std::fs::write(&fx.certs.chain, "not a certificate\n").expect("corrupt chain");
    let err = fx.proxy.publish(Route::app(fx.host("fresh"), up)).await;
    match err {
        Err(ProxyError::Rejected { stage: CheckStage::RouteAlone, output, .. }) => {
            assert!(output.contains("ssl_certificate") || output.contains("PEM"), "{output}");
        }
        other => panic!("expected a RouteAlone rejection, got {other:?}"),
    }
    assert_eq!(route_files(&fx.kws_dir()), vec!["kept.example.test.conf"]);
    assert!(support::check_files(&fx.kws_dir()).is_empty(), "wrapper files left behind");
    let (ok, body) = https_get("kept.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream kept"), "old route broke: {body}");
    std::fs::write(&fx.certs.chain, good).expect("restore chain");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_typed_error_and_writes_no_file() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("x").await;
    fx.proxy.publish(Route::app(fx.host("taken"), up)).await.expect("publish");
    let before = route_files(&fx.kws_dir());
    let policy = fx.proxy.policy().clone();

    // Hosts outside the platform domain, parsed or built.
    for raw in ["app.other.test", "app.example.test.evil", "app.sub.example.test", "example.test"] {
        let err = policy.host(raw);
        assert!(matches!(err, Err(ProxyError::InvalidHost(_))), "{raw}: {err:?}");
    }
    let outside = kws_core::Hostname::parse("app.other.test").expect("hostname");
    let err = fx.proxy.publish(Route::app(outside, up)).await;
    assert!(matches!(err, Err(ProxyError::OutsideDomain { .. })), "{err:?}");

    // nginx injections never become a Hostname.
    for label in
        ["a.b", "a b", "a;b", "a{b", "a}b", "a\"b", "a'b", "a\nb", "a\rb", "a$b", "a/b", "a\0b"]
    {
        let raw = format!("{label}.example.test");
        let err = policy.host(&raw);
        let Err(ProxyError::InvalidHost(parse)) = err else { panic!("{raw:?} accepted: {err:?}") };
        assert_eq!(parse.what, "hostname", "{parse}");
    }
    assert!("x;}".parse::<kws_core::DnsLabel>().is_err());

    // Upstreams outside 127.0.0.0/8.
    for addr in ["10.0.0.1:80", "192.0.2.1:443", "[::1]:80", "0.0.0.0:80"] {
        let err = fx.proxy.publish(Route::app(fx.host("far"), addr.parse().expect("addr"))).await;
        match err {
            Err(ProxyError::UpstreamNotAllowed { upstream, .. }) => {
                assert_eq!(upstream.to_string(), addr)
            }
            other => panic!("{addr}: expected UpstreamNotAllowed, got {other:?}"),
        }
    }

    // A duplicate host, to another upstream or as a kind change.
    let other = upstream("y").await;
    for route in [Route::app(fx.host("taken"), other), Route::ide(fx.host("taken"), up)] {
        let err = fx.proxy.publish(route).await;
        assert!(matches!(err, Err(ProxyError::DuplicateHost { .. })), "{err:?}");
    }
    assert_eq!(route_files(&fx.kws_dir()), before);

    // A kws folder whose path cannot be written into an nginx configuration is refused
    // before anything is created.
    let mut config = fx.nginx.config().clone();
    config.dir = fx.tmp.path().join("bad\";dir");
    let err = kws_proxy::nginx::NginxProxy::open(policy.clone(), config.clone()).await;
    assert!(matches!(err, Err(ProxyError::UnsafePath { .. })), "{err:?}");
    assert!(!config.dir.exists());
    assert!(support::check_files(&fx.kws_dir()).is_empty(), "wrapper files left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_reads_the_routes_back_from_their_files() {
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
    wait_served("r1.example.test", fx.nginx.https_addr(), &fx.ca, "upstream r").await;
    // A leftover temporary file from a crash is cleaned up on open.
    std::fs::write(fx.kws_dir().join("routes/r9.example.test.conf.tmp"), "junk").expect("tmp");
    let reopened = kws_proxy::nginx::NginxProxy::open(support::policy(), fx.nginx.config().clone())
        .await
        .expect("reopen");
    assert_eq!(reopened.routes().await.expect("routes"), routes);
    assert_eq!(route_files(&fx.kws_dir()).len(), 4);
    let (ok, body) =
        https_get(&format!("{longest}.example.test"), fx.nginx.https_addr(), &fx.ca).await;
    assert!(ok && body.contains("upstream r"), "63-character label: {body}");

    // A plain-HTTP route is served over HTTP.
    let http = fx.nginx.http_addr();
    let out = support::curl(&[
        "--resolve".into(),
        format!("r3.example.test:{}:127.0.0.1", http.port()),
        format!("http://r3.example.test:{}/", http.port()),
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("upstream r host=r3.example.test xfp=http"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_reload_restores_the_files() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("z").await;
    fx.proxy.publish(Route::app(fx.host("stay"), up)).await.expect("publish");
    // nginx goes away: the checks pass, the reload cannot happen.
    let pid = fx.nginx.pid().to_string();
    let status = std::process::Command::new("kill").args(["-QUIT", &pid]).status().expect("kill");
    assert!(status.success());
    let start = std::time::Instant::now();
    // A stopped child is a zombie with an empty command line until it is reaped.
    while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(10), "nginx did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = fx.proxy.publish(Route::app(fx.host("lost"), up)).await;
    assert!(matches!(err, Err(ProxyError::Reload { .. })), "{err:?}");
    assert_eq!(route_files(&fx.kws_dir()), vec!["stay.example.test.conf"]);
    let err = fx.proxy.unpublish(&fx.host("stay")).await;
    assert!(matches!(err, Err(ProxyError::Reload { .. })), "{err:?}");
    assert_eq!(route_files(&fx.kws_dir()), vec!["stay.example.test.conf"]);
    assert_eq!(fx.proxy.routes().await.expect("routes").len(), 1);
}
