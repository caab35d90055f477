//! The conformance suite every `ProxyWriter` backend's tests call, once directly and once
//! through `Box<dyn ProxyWriter>`. Each check needs a writer with no routes whose policy allows
//! `127.0.0.0/8`, and leaves it with no routes.

use std::net::SocketAddr;

use kws_core::Hostname;

use crate::{ProxyError, ProxyWriter, Route, RouteKind};

fn host(proxy: &dyn ProxyWriter, label: &str) -> Hostname {
    let raw = format!("{label}.{}", proxy.policy().domain());
    match proxy.policy().host(&raw) {
        Ok(host) => host,
        Err(e) => panic!("testkit: {raw} should parse: {e}"),
    }
}

fn upstream(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Publish, list, idempotent retry, duplicate refusal, unpublish, not found.
pub async fn publish_list_unpublish(proxy: &dyn ProxyWriter) {
    let app = Route::app(host(proxy, "tk-app"), upstream(18081));
    let ide = Route::ide(host(proxy, "tk-ide"), upstream(18082)).with_websocket(false);
    assert!(ide.websocket(), "an IDE route always carries WebSocket upgrades");
    assert_eq!(ide.kind(), RouteKind::Ide);
    proxy.publish(app.clone()).await.expect("publish app");
    proxy.publish(ide.clone()).await.expect("publish ide");
    proxy.publish(app.clone()).await.expect("publishing the same route again is a no-op");
    assert_eq!(proxy.routes().await.expect("routes"), vec![app.clone(), ide.clone()]);

    let other = Route::app(app.host().clone(), upstream(18083));
    match proxy.publish(other).await {
        Err(ProxyError::DuplicateHost { host, existing }) => {
            assert_eq!(&host, app.host());
            assert_eq!(existing, app.upstream());
        }
        other => panic!("expected DuplicateHost, got {other:?}"),
    }
    proxy.unpublish(app.host()).await.expect("unpublish app");
    assert!(matches!(proxy.unpublish(app.host()).await, Err(ProxyError::NotFound { .. })));
    proxy.unpublish(ide.host()).await.expect("unpublish ide");
    assert!(proxy.routes().await.expect("routes").is_empty());
}

/// Every refused route is a typed error and changes nothing.
pub async fn refusals_change_nothing(proxy: &dyn ProxyWriter) {
    let kept = Route::app(host(proxy, "tk-kept"), upstream(18084));
    proxy.publish(kept.clone()).await.expect("publish");

    let outside = Hostname::parse("tk-x.elsewhere.test").expect("hostname");
    let err = proxy.publish(Route::app(outside, upstream(18085))).await;
    assert!(matches!(err, Err(ProxyError::OutsideDomain { .. })), "{err:?}");

    let far = Route::app(host(proxy, "tk-far"), "192.0.2.1:80".parse().expect("addr"));
    let err = proxy.publish(far).await;
    assert!(matches!(err, Err(ProxyError::UpstreamNotAllowed { .. })), "{err:?}");

    let port_zero = Route::app(host(proxy, "tk-zero"), upstream(0));
    let err = proxy.publish(port_zero).await;
    assert!(matches!(err, Err(ProxyError::InvalidUpstream { .. })), "{err:?}");

    let twice = vec![
        Route::app(host(proxy, "tk-twice"), upstream(18086)),
        Route::app(host(proxy, "tk-twice"), upstream(18087)),
    ];
    let err = proxy.publish_all(twice).await;
    assert!(matches!(err, Err(ProxyError::DuplicateHost { .. })), "{err:?}");

    let domain = proxy.policy().domain().to_string();
    for label in ["a.b", "a b", "a;b", "a{b", "a}b", "a\"b", "a'b", "a\nb", "", "-a"] {
        let raw = format!("{label}.{domain}");
        let err = proxy.policy().host(&raw);
        assert!(matches!(err, Err(ProxyError::InvalidHost(_))), "{raw:?}: {err:?}");
    }
    let err = proxy.policy().host("tk-app.elsewhere.test");
    assert!(matches!(err, Err(ProxyError::InvalidHost(_))), "{err:?}");

    assert_eq!(proxy.routes().await.expect("routes"), vec![kept.clone()]);
    proxy.unpublish(kept.host()).await.expect("unpublish");
}

/// A batch is all or nothing: one refused route publishes none.
pub async fn batch_is_all_or_nothing(proxy: &dyn ProxyWriter) {
    let good: Vec<Route> =
        (0..5).map(|i| Route::app(host(proxy, &format!("tk-b{i}")), upstream(18090 + i))).collect();
    let mut bad = good.clone();
    bad.push(Route::app(host(proxy, "tk-bad"), "198.51.100.7:80".parse().expect("addr")));
    assert!(proxy.publish_all(bad).await.is_err());
    assert!(proxy.routes().await.expect("routes").is_empty());
    proxy.publish_all(good.clone()).await.expect("publish_all");
    assert_eq!(proxy.routes().await.expect("routes"), good);
    for route in &good {
        proxy.unpublish(route.host()).await.expect("unpublish");
    }
}

/// `replace` swaps a route, is a no-op for an equal route, refuses what `publish` refuses and
/// an unknown host, and a refusal keeps the old route.
pub async fn replace_swaps_one_route(proxy: &dyn ProxyWriter) {
    let old = Route::app(host(proxy, "tk-swap"), upstream(18101));
    proxy.publish(old.clone()).await.expect("publish");
    let new = Route::ide(old.host().clone(), upstream(18102));
    proxy.replace(new.clone()).await.expect("replace");
    assert_eq!(proxy.routes().await.expect("routes"), vec![new.clone()]);
    proxy.replace(new.clone()).await.expect("replacing with an equal route is a no-op");
    let plain = Route::app(old.host().clone(), upstream(18103)).with_tls(false);
    proxy.replace(plain.clone()).await.expect("replace with a plain HTTP route");
    assert_eq!(proxy.routes().await.expect("routes"), vec![plain.clone()]);

    let far = Route::app(old.host().clone(), "192.0.2.1:80".parse().expect("addr"));
    let err = proxy.replace(far).await;
    assert!(matches!(err, Err(ProxyError::UpstreamNotAllowed { .. })), "{err:?}");
    let err = proxy.replace(Route::app(old.host().clone(), upstream(0))).await;
    assert!(matches!(err, Err(ProxyError::InvalidUpstream { .. })), "{err:?}");
    let err = proxy.replace(Route::app(host(proxy, "tk-nobody"), upstream(18104))).await;
    assert!(matches!(err, Err(ProxyError::NotFound { .. })), "{err:?}");
    assert_eq!(proxy.routes().await.expect("routes"), vec![plain.clone()]);
    proxy.unpublish(plain.host()).await.expect("unpublish");
}

/// Runs every check.
pub async fn all(proxy: &dyn ProxyWriter) {
    publish_list_unpublish(proxy).await;
    refusals_change_nothing(proxy).await;
    batch_is_all_or_nothing(proxy).await;
    replace_swaps_one_route(proxy).await;
}
