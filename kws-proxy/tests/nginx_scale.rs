//! 500 routes in one nginx: published in one batch, each served by its own host.

mod support;

use std::time::Instant;

use kws_proxy::{ProxyWriter, Route};
use support::{Fixture, route_files, upstream};

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_routes_publish_and_serve() {
    const ROUTES: usize = 500;
    let Some(fx) = Fixture::start().await else { return };
    let mut upstreams = Vec::new();
    for i in 0..5 {
        upstreams.push(upstream(&format!("u{i}")).await);
    }
    let routes: Vec<Route> = (0..ROUTES)
        .map(|i| Route::app(fx.host(&format!("app{i:03}")), upstreams[i % upstreams.len()]))
        .collect();
    let start = Instant::now();
    fx.proxy.publish_all(routes).await.expect("publish 500 routes");
    eprintln!("published {ROUTES} routes in {:?}", start.elapsed());
    assert_eq!(route_files(&fx.kws_dir()).len(), ROUTES);
    assert_eq!(fx.proxy.routes().await.expect("routes").len(), ROUTES);

    // One curl process fetches every host (a config file of url/resolve pairs).
    let port = fx.nginx.https_addr().port();
    let mut config = String::new();
    for i in 0..ROUTES {
        let host = format!("app{i:03}.example.test");
        config.push_str(&format!(
            "url = \"https://{host}:{port}/\"\nresolve = \"{host}:{port}:127.0.0.1\"\n"
        ));
    }
    let config_path = fx.tmp.path().join("curl.conf");
    std::fs::write(&config_path, config).expect("curl config");
    let out = support::curl(&[
        "--cacert".into(),
        fx.ca.display().to_string(),
        "-K".into(),
        config_path.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), ROUTES);
    for (i, line) in lines.iter().enumerate() {
        let expected = format!("upstream u{} host=app{i:03}.example.test ", i % 5);
        assert!(line.starts_with(&expected), "route {i}: {line}");
    }

    // One more route on top of 500, then one fewer: both single-route paths still work.
    let extra = fx.host("extra");
    fx.proxy.publish(Route::app(extra.clone(), upstreams[0])).await.expect("publish 501st");
    fx.proxy.unpublish(&extra).await.expect("unpublish 501st");
    assert_eq!(route_files(&fx.kws_dir()).len(), ROUTES);
}
