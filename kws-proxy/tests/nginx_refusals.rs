//! The nginx backend's refusals against a real nginx started by the test: bad input, a batch
//! nginx refuses, no room in the table, an operator's broken file, a corrupted or missing
//! certificate, nginx stopped. Each is a typed error, persists nothing, and every route already
//! published keeps serving.

mod support;

use std::time::Duration;

use kws_proxy::{
    CheckStage, ProxyError, ProxyWriter, Route,
    nginx::{NginxProxy, Stop},
};
use support::{Fixture, https_get, journal_hosts, upstream, wait_served};

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_broken_file_breaks_no_publish_and_a_reload_is_refused() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("old").await;
    fx.proxy.publish(Route::app(fx.host("old"), up)).await.expect("publish");
    let https = fx.nginx.https_addr();

    // An operator's file that breaks the whole configuration: publishing reloads nothing, so it
    // still works; a reload (a new certificate) is refused and nginx keeps what it runs.
    let extra = fx.nginx.config().prefix.join("conf/extra/broken.conf");
    std::fs::write(&extra, "server { listen 127.0.0.1:1; this_is_not_a_directive; }\n")
        .expect("write broken file");
    fx.proxy.publish(Route::app(fx.host("new"), up)).await.expect("publish beside it");
    let (ok, body) = https_get("new.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream old"), "{body}");
    match fx.proxy.reload().await {
        Err(ProxyError::Reload { output }) => {
            assert!(output.contains("this_is_not_a_directive"), "{output}")
        }
        other => panic!("expected a refused reload, got {other:?}"),
    }
    for host in ["old.example.test", "new.example.test"] {
        let (ok, body) = https_get(host, https, &fx.ca).await;
        assert!(ok && body.contains("upstream old"), "{host} broke: {body}");
    }
    std::fs::remove_file(&extra).expect("remove broken file");
    fx.proxy.reload().await.expect("reload once fixed");
    // The table survives a reload.
    assert_eq!(fx.proxy.served().await.expect("served").routes.len(), 2);
    wait_served("new.example.test", https, &fx.ca, "upstream old").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_certificate_is_refused_at_reload_and_every_route_keeps_serving() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("kept").await;
    fx.proxy.publish(Route::app(fx.host("kept"), up)).await.expect("publish");
    let https = fx.nginx.https_addr();

    // The certificate on disk gets corrupted: the reload is refused and the old files come
    // back; the running nginx still holds the good certificate in memory.
    let good = std::fs::read(&fx.certs.chain).expect("chain");
    let http_conf = std::fs::read(fx.nginx.config().http_conf_path()).expect("http.conf");
    std::fs::write(&fx.certs.chain, "not a certificate\n").expect("corrupt chain");
    match fx.proxy.reload().await {
        Err(ProxyError::Reload { output }) => {
            assert!(output.contains("ssl_certificate") || output.contains("PEM"), "{output}")
        }
        other => panic!("expected a refused reload, got {other:?}"),
    }
    assert_eq!(std::fs::read(fx.nginx.config().http_conf_path()).expect("http.conf"), http_conf);
    fx.proxy.publish(Route::app(fx.host("fresh"), up)).await.expect("publishing needs no reload");
    for host in ["kept.example.test", "fresh.example.test"] {
        let (ok, body) = https_get(host, https, &fx.ca).await;
        assert!(ok && body.contains("upstream kept"), "{host} broke: {body}");
    }
    std::fs::write(&fx.certs.chain, good).expect("restore chain");
    fx.proxy.reload().await.expect("reload once restored");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_certificate_tls_routes_are_refused_until_reload_loads_it() {
    let Some(fx) = Fixture::start().await else { return };
    // A second nginx whose certificate files do not exist yet (as before a first ACME order).
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = kws_proxy::CertFiles {
        chain: tmp.path().join("tls/chain.pem"),
        key: tmp.path().join("tls/key.pem"),
    };
    let nginx = kws_proxy::nginx::LocalNginx::start(&tmp.path().join("nginx"), files.clone())
        .expect("nginx");
    let proxy = NginxProxy::open(support::policy(), nginx.config().clone()).await.expect("open");
    let up = upstream("later").await;
    let err = proxy.publish(Route::app(fx.host("later"), up)).await;
    assert!(matches!(err, Err(ProxyError::CertificateMissing { .. })), "{err:?}");
    proxy
        .publish(Route::app(fx.host("plain"), up).with_tls(false))
        .await
        .expect("a plain HTTP route needs no certificate");

    std::fs::create_dir_all(tmp.path().join("tls")).expect("tls dir");
    std::fs::copy(&fx.certs.chain, &files.chain).expect("chain");
    std::fs::copy(&fx.certs.key, &files.key).expect("key");
    proxy.reload().await.expect("reload with the certificate");
    proxy.publish(Route::app(fx.host("later"), up)).await.expect("publish once loaded");
    let (ok, body) = https_get("later.example.test", nginx.https_addr(), &fx.ca).await;
    assert!(ok && body.contains("upstream later"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_typed_error_and_persists_nothing() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("x").await;
    fx.proxy.publish(Route::app(fx.host("taken"), up)).await.expect("publish");
    let before = journal_hosts(&fx.kws_dir());
    let policy = fx.proxy.policy().clone();

    // Hosts outside the platform domain, parsed or built.
    for raw in ["app.other.test", "app.example.test.evil", "app.sub.example.test", "example.test"] {
        let err = policy.host(raw);
        assert!(matches!(err, Err(ProxyError::InvalidHost(_))), "{raw}: {err:?}");
    }
    let outside = kws_core::Hostname::parse("app.other.test").expect("hostname");
    let err = fx.proxy.publish(Route::app(outside, up)).await;
    assert!(matches!(err, Err(ProxyError::OutsideDomain { .. })), "{err:?}");

    // nginx and Lua injections never become a Hostname.
    for label in
        ["a.b", "a b", "a;b", "a{b", "a}b", "a\"b", "a'b", "a\nb", "a\rb", "a$b", "a/b", "a\0b"]
    {
        let raw = format!("{label}.example.test");
        let err = policy.host(&raw);
        let Err(ProxyError::InvalidHost(parse)) = err else { panic!("{raw:?} accepted: {err:?}") };
        assert_eq!(parse.what, "hostname", "{parse}");
    }
    assert!("x;}".parse::<kws_core::DnsLabel>().is_err());

    // Upstreams outside 127.0.0.0/8, and upstreams no proxy can dial.
    for addr in ["10.0.0.1:80", "192.0.2.1:443", "[::1]:80", "0.0.0.0:80"] {
        let err = fx.proxy.publish(Route::app(fx.host("far"), addr.parse().expect("addr"))).await;
        match err {
            Err(ProxyError::UpstreamNotAllowed { upstream, .. }) => {
                assert_eq!(upstream.to_string(), addr)
            }
            other => panic!("{addr}: expected UpstreamNotAllowed, got {other:?}"),
        }
    }
    let err =
        fx.proxy.publish(Route::app(fx.host("zero"), "127.0.0.1:0".parse().expect("a"))).await;
    assert!(matches!(err, Err(ProxyError::InvalidUpstream { .. })), "{err:?}");

    // A duplicate host, to another upstream or as a kind change.
    let other = upstream("y").await;
    for route in [Route::app(fx.host("taken"), other), Route::ide(fx.host("taken"), up)] {
        let err = fx.proxy.publish(route).await;
        assert!(matches!(err, Err(ProxyError::DuplicateHost { .. })), "{err:?}");
    }
    assert_eq!(journal_hosts(&fx.kws_dir()), before);

    // Configurations that cannot work are refused before anything is created.
    let mut config = fx.nginx.config().clone();
    config.dir = fx.tmp.path().join("bad\";dir");
    let err = NginxProxy::open(policy.clone(), config.clone()).await;
    assert!(matches!(err, Err(ProxyError::UnsafePath { .. })), "{err:?}");
    assert!(!config.dir.exists());
    let mut config = fx.nginx.config().clone();
    config.dir = fx.tmp.path().join("other-dir");
    config.admin_listen = "0.0.0.0:8099".parse().expect("addr");
    let err = NginxProxy::open(policy.clone(), config.clone()).await;
    assert!(matches!(err, Err(ProxyError::InvalidConfig { field: "admin_listen", .. })), "{err:?}");
    config.admin_listen = fx.nginx.config().admin_listen;
    config.route_table_bytes = 1024;
    let err = NginxProxy::open(policy.clone(), config.clone()).await;
    assert!(
        matches!(err, Err(ProxyError::InvalidConfig { field: "route_table_bytes", .. })),
        "{err:?}"
    );
    assert!(!config.dir.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nginx_stopped_every_change_fails_and_persists_nothing() {
    let Some(mut fx) = Fixture::start().await else { return };
    let up = upstream("z").await;
    fx.proxy.publish(Route::app(fx.host("stay"), up)).await.expect("publish");
    let journal = std::fs::read(fx.nginx.config().journal_path()).expect("journal");
    // nginx goes away: nothing answers on the admin address.
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
    assert!(matches!(err, Err(ProxyError::Unavailable { .. })), "{err:?}");
    let err = fx.proxy.replace(Route::ide(fx.host("stay"), up)).await;
    assert!(matches!(err, Err(ProxyError::Unavailable { .. })), "{err:?}");
    let err = fx.proxy.unpublish(&fx.host("stay")).await;
    assert!(matches!(err, Err(ProxyError::Unavailable { .. })), "{err:?}");
    let err = fx.proxy.reload().await;
    assert!(matches!(err, Err(ProxyError::Reload { .. })), "{err:?}");
    assert_eq!(std::fs::read(fx.nginx.config().journal_path()).expect("journal"), journal);
    assert_eq!(fx.proxy.routes().await.expect("routes"), vec![Route::app(fx.host("stay"), up)]);

    // Started again, nginx serves what kws persisted, and changes go through again.
    fx.nginx.restart(Stop::Graceful).expect("start nginx again");
    let (ok, body) = https_get("stay.example.test", fx.nginx.https_addr(), &fx.ca).await;
    assert!(ok && body.contains("upstream z"), "{body}");
    fx.proxy.publish(Route::app(fx.host("lost"), up)).await.expect("publish after the restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_route_among_good_ones_is_refused_whole_by_kws_and_by_nginx() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("good").await;
    fx.proxy.publish(Route::app(fx.host("good"), up)).await.expect("publish");
    let https = fx.nginx.https_addr();

    // A route nobody can dial among good ones: the batch is refused whole, the other hosts serve.
    let mut batch: Vec<Route> =
        (0..5).map(|i| Route::app(fx.host(&format!("among{i}")), up)).collect();
    batch.insert(2, Route::app(fx.host("broken"), "127.0.0.1:0".parse().expect("addr")));
    let err = fx.proxy.publish_all(batch).await;
    assert!(matches!(err, Err(ProxyError::InvalidUpstream { .. })), "{err:?}");
    let (ok, _) = https_get("among0.example.test", https, &fx.ca).await;
    assert!(!ok, "a good route of a refused batch serves");
    let (ok, body) = https_get("good.example.test", https, &fx.ca).await;
    assert!(ok && body.contains("upstream good"), "{body}");
    assert_eq!(journal_hosts(&fx.kws_dir()), vec!["good.example.test"]);

    // Lines that got past kws (or did not come from it) are checked by nginx before any of the
    // batch applies: a good line beside a bad one does not serve either.
    let admin = fx.nginx.config().admin_listen;
    let conf = std::fs::read_to_string(fx.nginx.config().dir.join("admin.conf")).expect("conf");
    let token = conf.split("Bearer ").nth(1).and_then(|t| t.split('"').next()).expect("token");
    for bad in [
        format!("+ ok.example.test {up} app tls\n+ bad.example.test evil.example.org:80 app tls\n"),
        format!("+ ok.example.test {up} app tls\n+ bad.example.test 127.0.0.1:0 app tls\n"),
        format!("+ ok.example.test {up} app tls\n+ bad.example.test {up} php tls\n"),
        format!("+ ok.example.test {up} app tls\n+ BAD;.example.test {up} app tls\n"),
        format!("+ ok.example.test {up} app tls\n- good.example.test extra\n"),
    ] {
        let out = support::curl(&[
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "-H".into(),
            format!("Authorization: Bearer {token}"),
            "--data-binary".into(),
            bad.clone(),
            format!("http://{admin}/kws/routes"),
        ])
        .await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "{bad}");
    }
    // Without the token, nothing at all.
    let out = support::curl(&[
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "--data-binary".into(),
        format!("+ ok.example.test {up} app tls\n"),
        format!("http://{admin}/kws/routes"),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    let (ok, _) = https_get("ok.example.test", https, &fx.ca).await;
    assert!(!ok, "a line of a refused batch serves");

    // A table with no room for a batch: refused whole, undone in nginx, cut off the journal.
    let tmp = tempfile::tempdir().expect("tempdir");
    let small = kws_proxy::nginx::LocalNginx::start(&tmp.path().join("nginx"), fx.certs.clone());
    let mut small = small.expect("nginx");
    let mut config = small.config().clone();
    config.route_table_bytes = 64 << 10;
    let proxy = NginxProxy::open(support::policy(), config.clone()).await.expect("open");
    // The new table size takes a restart of the shared memory: open reloaded nginx with it.
    let mut first: Vec<Route> =
        (0..20).map(|i| Route::app(fx.host(&format!("fit{i:02}")), up)).collect();
    proxy.publish_all(first.clone()).await.expect("a batch that fits");
    first.sort_by(|a, b| a.host().cmp(b.host()));
    let huge: Vec<Route> =
        (0..2000).map(|i| Route::app(fx.host(&format!("huge{i}")), up)).collect();
    match proxy.publish_all(huge).await {
        Err(ProxyError::Rejected { stage: CheckStage::RouteTable, output, .. }) => {
            assert!(output.contains("no memory"), "{output}")
        }
        other => panic!("expected a RouteTable rejection, got {other:?}"),
    }
    assert_eq!(proxy.routes().await.expect("routes"), first);
    assert_eq!(proxy.served().await.expect("served").routes, first);
    assert_eq!(journal_hosts(&config.dir).len(), first.len());
    let (ok, body) = https_get("fit19.example.test", small.https_addr(), &fx.ca).await;
    assert!(ok && body.contains("upstream good"), "{body}");
    // And after a restart, nginx serves the same 20.
    small.restart(Stop::Kill).expect("restart");
    assert_eq!(proxy.served().await.expect("served").routes, first);
}
