//! The nginx backend under load and crashes: no request dropped or misrouted while routes
//! change, many writers at once, and kws killed with SIGKILL in the middle of its changes (the
//! test binary re-executes itself as the writer process: the ignored `crash_writer` test).

mod support;

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use kws_proxy::{
    ProxyWriter, Route,
    nginx::{LocalNginx, NginxProxy},
};
use rand::Rng;
use support::{Fixture, journal_hosts, load, upstream};

/// 20 routes keep being requested by 6 tasks (half with a new TLS connection per request, half
/// on kept-alive connections) while 100 publishes and 100 unpublishes of other routes run. Each
/// published route serves right after `publish` returns and each unpublished one is gone right
/// after `unpublish` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_is_dropped_or_misrouted_while_200_changes_run() {
    let Some(fx) = Fixture::start().await else { return };
    let mut steady = Vec::new();
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("s{i}");
        steady.push(Route::app(fx.host(&name), upstream(&name).await));
        names.push((format!("{name}.example.test"), name));
    }
    fx.proxy.publish_all(steady).await.expect("publish the steady routes");
    let churn_up = upstream("churn").await;

    let https = fx.nginx.https_addr();
    let tls = load::connector(&fx.ca);
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(load::Tally::default()));
    let tasks = load::run(tls.clone(), https, Arc::new(names), 6, stop.clone(), tally.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let start = Instant::now();
    for i in 0..100 {
        let host = fx.host(&format!("c{i}"));
        fx.proxy.publish(Route::app(host.clone(), churn_up)).await.expect("publish");
        let served = load::get_once(&tls, https, &host.to_string()).await;
        assert_eq!(served, Ok((200, "churn".to_string())), "{host} right after publish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..100 {
        let host = fx.host(&format!("c{i}"));
        fx.proxy.unpublish(&host).await.expect("unpublish");
        // Gone: the handshake is refused, or (a resumed TLS session skips the certificate
        // callback) the request gets 404.
        let gone = load::get_once(&tls, https, &host.to_string()).await;
        assert!(
            matches!(gone, Err(_) | Ok((404, _))),
            "{host} still served after unpublish: {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let changes = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("load task");
    }

    let ok = tally.ok.load(Ordering::SeqCst);
    let errors = tally.errors.lock().expect("errors").clone();
    eprintln!("200 changes in {changes:?}; {ok} requests served during them");
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0, "failed requests: {errors:?}");
    assert_eq!(tally.wrong_upstream.load(Ordering::SeqCst), 0, "misrouted: {errors:?}");
    assert!(ok >= 500, "too few requests ran during the changes: {ok}");
    assert_eq!(fx.proxy.served().await.expect("served").routes.len(), 20);
}

/// 8 tasks change routes on one `NginxProxy` at once: journal, table and nginx agree after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_at_once_leave_journal_table_and_nginx_equal() {
    let Some(fx) = Fixture::start().await else { return };
    let up = upstream("w").await;
    let other = upstream("w2").await;
    let proxy = Arc::new(fx.proxy);
    let mut writers = Vec::new();
    for task in 0..8 {
        let proxy = proxy.clone();
        writers.push(tokio::spawn(async move {
            let host = |i: usize| proxy.policy().host(&format!("t{task}-{i}.example.test"));
            for i in 0..25 {
                proxy.publish(Route::app(host(i).expect("host"), up)).await.expect("publish");
                if i % 3 == 0 {
                    proxy.unpublish(&host(i).expect("host")).await.expect("unpublish");
                } else if i % 3 == 1 {
                    proxy
                        .replace(Route::ide(host(i).expect("host"), other))
                        .await
                        .expect("replace");
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let routes = proxy.routes().await.expect("routes");
    assert_eq!(routes.len(), 8 * 16);
    assert_eq!(proxy.served().await.expect("served").routes, routes);
    let hosts: Vec<String> = routes.iter().map(|r| r.host().to_string()).collect();
    let mut journal = journal_hosts(&fx.nginx.config().dir);
    journal.sort();
    let mut sorted = hosts.clone();
    sorted.sort();
    assert_eq!(journal, sorted);
    let (ok, body) = support::https_get("t7-1.example.test", fx.nginx.https_addr(), &fx.ca).await;
    assert!(ok && body.contains("upstream w2"), "{body}");
}

/// The writer process's deterministic sequence of changes: op `k` of run `run`.
fn crash_op(run: usize, k: usize, a: std::net::SocketAddr, b: std::net::SocketAddr) -> CrashOp {
    let (cycle, pos) = (k / 12, k % 12);
    let host = |j: usize| format!("r{run}c{cycle}-{j}.example.test");
    match pos {
        0 => CrashOp::Batch((0..10).map(|j| (host(j), a)).collect()),
        1 => CrashOp::Replace(host(0), b),
        _ => CrashOp::Remove(host(pos - 2)),
    }
}

#[derive(Debug)]
enum CrashOp {
    Batch(Vec<(String, std::net::SocketAddr)>),
    Replace(String, std::net::SocketAddr),
    Remove(String),
}

impl CrashOp {
    fn apply(&self, model: &mut BTreeMap<String, std::net::SocketAddr>) {
        match self {
            CrashOp::Batch(routes) => model.extend(routes.iter().cloned()),
            CrashOp::Replace(host, up) => {
                model.insert(host.clone(), *up);
            }
            CrashOp::Remove(host) => {
                model.remove(host);
            }
        }
    }
}

#[test]
#[ignore = "entry point of the writer process that crash_of_kws_mid_change kills"]
fn crash_writer() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} (set by the crash test)"));
    let ports: Vec<u16> =
        var("KWS_CRASH_PORTS").split(',').map(|p| p.parse().expect("port")).collect();
    let certs = kws_proxy::CertFiles {
        chain: var("KWS_CRASH_CHAIN").into(),
        key: var("KWS_CRASH_KEY").into(),
    };
    let config = LocalNginx::config_at(
        std::path::Path::new(&var("KWS_CRASH_PREFIX")),
        [ports[0], ports[1], ports[2]],
        certs,
    );
    let run: usize = var("KWS_CRASH_RUN").parse().expect("run");
    let a = var("KWS_CRASH_UP_A").parse().expect("addr");
    let b = var("KWS_CRASH_UP_B").parse().expect("addr");
    let log = var("KWS_CRASH_LOG");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let proxy = NginxProxy::open(support::policy(), config).await.expect("open");
        let host = |raw: &str| proxy.policy().host(raw).expect("host");
        let mut done =
            std::fs::OpenOptions::new().append(true).create(true).open(&log).expect("log");
        for k in 0.. {
            match crash_op(run, k, a, b) {
                CrashOp::Batch(routes) => {
                    let routes = routes.iter().map(|(h, up)| Route::app(host(h), *up)).collect();
                    proxy.publish_all(routes).await.expect("publish_all");
                }
                CrashOp::Replace(h, up) => {
                    proxy.replace(Route::app(host(&h), up)).await.expect("replace")
                }
                CrashOp::Remove(h) => proxy.unpublish(&host(&h)).await.expect("unpublish"),
            }
            std::io::Write::write_all(&mut done, format!("{k}\n").as_bytes()).expect("log");
        }
    });
}

/// kws (a writer process) is killed with SIGKILL at 8 random moments of a stream of batches,
/// replaces and unpublishes (with journal compactions among them). After each kill, `open`
/// reads back exactly the changes that returned, plus at most the one in flight, never part of
/// it; nginx's table matches after `open`, and the routes serve.
#[tokio::test(flavor = "multi_thread")]
async fn crash_of_kws_mid_change_loses_no_returned_change_and_leaves_no_half_batch() {
    let Some(fx) = Fixture::start().await else { return };
    let (a, b) = (upstream("a").await, upstream("b").await);
    let Fixture { proxy, nginx, ca, certs, tmp } = fx;
    drop(proxy);
    let config = nginx.config().clone();
    let ports = [config.http_listen.port(), config.https_listen.port(), config.admin_listen.port()];
    let mut model: BTreeMap<String, std::net::SocketAddr> = BTreeMap::new();
    let mut rng = rand::rng();
    for run in 0..8 {
        let log = tmp.path().join(format!("crash-{run}.log"));
        let mut child = spawn_writer(&config, &certs, run, ports, (a, b), &log);
        let target = rng.random_range(5..120);
        let start = Instant::now();
        while done_ops(&log).len() < target {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the writer exited: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the writer is stuck");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if run == 0 {
            // The writer process holds the folder: this process cannot open a second writer.
            let second = NginxProxy::open(support::policy(), config.clone()).await;
            assert!(matches!(second, Err(kws_proxy::ProxyError::Locked { .. })), "{second:?}");
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..3000))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let returned = done_ops(&log).len();

        let proxy = NginxProxy::open(support::policy(), config.clone()).await.expect("reopen");
        let read: BTreeMap<String, std::net::SocketAddr> = proxy
            .routes()
            .await
            .expect("routes")
            .iter()
            .map(|r| (r.host().to_string(), r.upstream()))
            .collect();
        let mut after = model.clone();
        for k in 0..returned {
            crash_op(run, k, a, b).apply(&mut after);
        }
        let mut in_flight = after.clone();
        crash_op(run, returned, a, b).apply(&mut in_flight);
        assert!(
            read == after || read == in_flight,
            "run {run}: after {returned} returned changes, kws read back {} routes, expected {} or {}",
            read.len(),
            after.len(),
            in_flight.len()
        );
        model = read;
        let served = proxy.served().await.expect("served").routes;
        assert_eq!(served, proxy.routes().await.expect("routes"), "run {run}: nginx differs");
    }
    eprintln!("{} routes after 8 kills", model.len());
    let (host, up) = model.iter().next_back().expect("a route");
    let name = if *up == a { "upstream a" } else { "upstream b" };
    let (ok, body) = support::https_get(host, nginx.https_addr(), &ca).await;
    assert!(ok && body.contains(name), "{host}: {body}");
    // Compactions ran: the journal holds at most twice the routes plus its slack of 64 lines.
    let journal = std::fs::read_to_string(config.journal_path()).expect("journal");
    let lines = journal.lines().filter(|l| l.starts_with(['+', '-'])).count();
    assert!(lines <= 2 * model.len() + 64, "{lines} journal lines for {} routes", model.len());
}

fn spawn_writer(
    config: &kws_proxy::nginx::NginxConfig,
    certs: &kws_proxy::CertFiles,
    run: usize,
    ports: [u16; 3],
    (a, b): (std::net::SocketAddr, std::net::SocketAddr),
    log: &std::path::Path,
) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args(["crash_writer", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("KWS_CRASH_PREFIX", &config.prefix)
        .env("KWS_CRASH_PORTS", ports.map(|p| p.to_string()).join(","))
        .env("KWS_CRASH_CHAIN", &certs.chain)
        .env("KWS_CRASH_KEY", &certs.key)
        .env("KWS_CRASH_RUN", run.to_string())
        .env("KWS_CRASH_UP_A", a.to_string())
        .env("KWS_CRASH_UP_B", b.to_string())
        .env("KWS_CRASH_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer")
}

/// The op numbers the writer logged as returned (complete lines only: a kill may cut one).
fn done_ops(log: &std::path::Path) -> Vec<usize> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n')?.parse().ok())
        .collect()
}
