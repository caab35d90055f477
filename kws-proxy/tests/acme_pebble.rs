//! Wildcard certificates from a real ACME server (pebble + pebble-challtestsrv, started by the
//! test) installed in a real nginx (started by the test).

mod support;

use std::{
    os::unix::fs::PermissionsExt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use kws_proxy::{
    CertFiles, ProxyWriter, Route,
    nginx::{LocalNginx, NginxProxy},
    tls::{CertIssuer, ChallTestSrv, IssuerConfig, RenewOutcome},
};
use support::{https_get, nginx_available, pebble::Pebble, policy, upstream};

struct Setup {
    issuer: CertIssuer,
    proxy: Arc<NginxProxy>,
    nginx: LocalNginx,
    pebble: Pebble,
    files: CertFiles,
    _tmp: tempfile::TempDir,
}

async fn setup(renew_within: Duration) -> Option<Setup> {
    if !nginx_available() {
        return None;
    }
    let pebble = Pebble::start()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = CertFiles {
        chain: tmp.path().join("tls/wildcard.pem"),
        key: tmp.path().join("tls/wildcard.key"),
    };
    let nginx = LocalNginx::start(&tmp.path().join("nginx"), files.clone()).expect("nginx");
    let proxy =
        Arc::new(NginxProxy::open(policy(), nginx.config().clone()).await.expect("open proxy"));
    let dns = ChallTestSrv::new(pebble.challtestsrv.clone()).expect("challtestsrv client");
    let mut config = pebble.issuer_config(&tmp.path().join("tls"), files.clone());
    config.renew_within = renew_within;
    let issuer = CertIssuer::new(config, Arc::new(dns), Some(proxy.clone()));
    Some(Setup { issuer, proxy, nginx, pebble, files, _tmp: tmp })
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// The serial of the certificate nginx serves for `host`, as uppercase hex.
async fn served_serial(host: &str, addr: std::net::SocketAddr) -> String {
    let script = format!(
        "openssl s_client -connect {addr} -servername {host} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = tokio::process::Command::new("sh").args(["-c", &script]).output().await.expect("sh");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches("serial=").to_string()
}

fn normalize(serial: &str) -> String {
    serial.replace(':', "").to_uppercase().trim_start_matches('0').to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn wildcard_is_issued_installed_and_served_to_two_app_hosts() {
    let Some(s) = setup(IssuerConfig::days(30)).await else { return };
    assert!(s.issuer.current().expect("current").is_none());
    let RenewOutcome::Renewed(info) =
        s.issuer.renew_if_due(SystemTime::now()).await.expect("issue")
    else {
        panic!("no certificate yet: renew_if_due must issue");
    };
    let mut names = info.names.clone();
    names.sort();
    assert_eq!(names, vec!["*.example.test", "example.test"]);
    assert_eq!(mode(&s.files.key), 0o600);
    assert_eq!(mode(&s.files.chain), 0o600);
    assert_eq!(mode(&s.issuer.config().account_file), 0o600);

    let (a, b) = (upstream("alpha").await, upstream("beta").await);
    let host = |l: &str| s.proxy.policy().host(&format!("{l}.example.test")).expect("host");
    s.proxy.publish(Route::app(host("alpha"), a)).await.expect("publish alpha");
    s.proxy.publish(Route::app(host("beta"), b)).await.expect("publish beta");

    let root = s.pebble.root().await;
    let https = s.nginx.https_addr();
    for (name, expected) in [("alpha", "upstream alpha"), ("beta", "upstream beta")] {
        let (ok, body) = https_get(&format!("{name}.example.test"), https, &root).await;
        assert!(ok && body.contains(expected), "{name}: {body}");
    }
    // The test CA of the routing tests is not what nginx serves now: only pebble's root works.
    let (ok, _) = https_get("alpha.example.test", https, &s.pebble.tls_root).await;
    assert!(!ok, "served a certificate that pebble did not issue");
    assert_eq!(
        normalize(&served_serial("beta.example.test", https).await),
        normalize(&info.serial)
    );

    // Not due: nothing changes.
    match s.issuer.renew_if_due(SystemTime::now()).await.expect("check") {
        RenewOutcome::Fresh(fresh) => assert_eq!(fresh, info),
        other => panic!("expected Fresh, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_replaces_the_certificate_without_dropping_a_request() {
    let Some(s) = setup(IssuerConfig::days(30)).await else { return };
    let first = s.issuer.issue().await.expect("first issue");
    let up = upstream("steady").await;
    let host = s.proxy.policy().host("steady.example.test").expect("host");
    s.proxy.publish(Route::app(host, up)).await.expect("publish");
    let root = s.pebble.root().await;
    let https = s.nginx.https_addr();
    assert_eq!(
        normalize(&served_serial("steady.example.test", https).await),
        normalize(&first.serial)
    );

    // Requests run back to back during the renewal.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, done, failed, root) = (stop.clone(), done.clone(), failed.clone(), root.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (ok, body) = https_get("steady.example.test", https, &root).await;
                if ok && body.contains("upstream steady") {
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    errors.push(body);
                }
            }
            errors
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A renewal window longer than the certificate's remaining life makes it due now.
    let left = first.not_after.duration_since(SystemTime::now()).expect("valid");
    let mut config = s.issuer.config().clone();
    config.renew_within = left + IssuerConfig::days(1);
    let renewing = CertIssuer::new(
        config,
        Arc::new(ChallTestSrv::new(s.pebble.challtestsrv.clone()).expect("dns")),
        Some(s.proxy.clone()),
    );
    let second = match renewing.renew_if_due(SystemTime::now()).await.expect("renew") {
        RenewOutcome::Renewed(info) => info,
        other => panic!("expected a renewal, got {other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let errors = load.await.expect("load task");

    assert_ne!(normalize(&second.serial), normalize(&first.serial));
    assert_eq!(
        normalize(&served_serial("steady.example.test", https).await),
        normalize(&second.serial)
    );
    assert!(errors.is_empty(), "requests failed during renewal: {errors:?}");
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(done.load(Ordering::SeqCst) >= 5, "too few requests ran during the renewal");
    assert_eq!(mode(&s.files.key), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_renewal_loop_issues_when_due_and_stops_on_shutdown() {
    let Some(s) = setup(IssuerConfig::days(30)).await else { return };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let issuer = s.issuer.clone();
    let task = tokio::spawn(async move {
        issuer.run(Duration::from_millis(50), async { stopped.await.unwrap_or(()) }).await
    });
    let start = std::time::Instant::now();
    while s.issuer.current().expect("current").is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "the loop issued nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several more ticks pass: the certificate is fresh, nothing is issued again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.send(()).expect("stop");
    let issued = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stops on shutdown")
        .expect("loop task");
    assert_eq!(issued, 1);
}

/// The same wildcard served by Caddy: issued through the Caddy backend's reload, then renewed.
#[cfg(feature = "caddy")]
#[tokio::test(flavor = "multi_thread")]
async fn wildcard_is_served_by_caddy_and_renewed() {
    let Some(pebble) = Pebble::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = CertFiles { chain: tmp.path().join("chain.pem"), key: tmp.path().join("key.pem") };
    // Caddy needs a certificate to load: a first one from pebble, without a reload target.
    let config = pebble.issuer_config(tmp.path(), files.clone());
    let dns = || Arc::new(ChallTestSrv::new(pebble.challtestsrv.clone()).expect("dns"));
    let first = CertIssuer::new(config.clone(), dns(), None).issue().await.expect("issue");
    let Some(caddy) = support::caddy::LocalCaddy::start(files.clone()) else { return };
    let proxy = Arc::new(
        kws_proxy::caddy::CaddyProxy::open(policy(), caddy.config.clone()).await.expect("open"),
    );
    let (a, b) = (upstream("alpha").await, upstream("beta").await);
    let host = |l: &str| proxy.policy().host(&format!("{l}.example.test")).expect("host");
    proxy.publish(Route::app(host("alpha"), a)).await.expect("publish alpha");
    proxy.publish(Route::app(host("beta"), b)).await.expect("publish beta");
    let root = pebble.root().await;
    let https = caddy.config.https_listen;
    for (name, expected) in [("alpha", "upstream alpha"), ("beta", "upstream beta")] {
        let (ok, body) = https_get(&format!("{name}.example.test"), https, &root).await;
        assert!(ok && body.contains(expected), "{name}: {body}");
    }
    assert_eq!(
        normalize(&served_serial("alpha.example.test", https).await),
        normalize(&first.serial)
    );

    let second = CertIssuer::new(config, dns(), Some(proxy.clone())).issue().await.expect("renew");
    assert_ne!(normalize(&second.serial), normalize(&first.serial));
    assert_eq!(
        normalize(&served_serial("alpha.example.test", https).await),
        normalize(&second.serial)
    );
    let (ok, body) = https_get("beta.example.test", https, &root).await;
    assert!(ok && body.contains("upstream beta"), "routes survive the certificate reload: {body}");
}
