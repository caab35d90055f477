//! Publishes app routes through two private nginx (started here on loopback ports with their own
//! prefix folders and a self-signed wildcard certificate), serves them over HTTPS, and measures
//! what a publish and an unpublish cost with 10 routes (the first nginx) and with 10 + N (the
//! second), sample by sample in turn so that both see the same load; the time to publish the N
//! in one batch; the memory of nginx's workers.
//!
//! `cargo run --release --example proxy_publish --features nginx -- [--routes N] [--samples M]`
//! (defaults: 10,000 routes, 50 samples). Needs `nginx` with its Lua module
//! (`libnginx-mod-http-lua`), `openssl` and `curl` on PATH.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use kws::proxy::{
    CertFiles, ProxyWriter, Route, RoutePolicy,
    nginx::{LocalNginx, NginxProxy, self_signed_certificate},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error>;

/// Routes published before the first measurement ("with 10 routes").
const FEW: usize = 10;

fn arg(name: &str, default: usize) -> Result<usize, Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).ok_or(format!("{name} needs a value"))?.parse()?),
        None => Ok(default),
    }
}

/// A tiny upstream HTTP server on loopback: answers every request with its own name.
async fn upstream(name: &'static str) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = format!("hello from upstream {name}\n");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

/// `curl --resolve` against `https://<host>:<port>/`; the body if 2xx.
async fn fetch(host: &str, port: u16, ca: &Path) -> Result<Option<String>, Error> {
    let out = tokio::process::Command::new("curl")
        .args(["-sSf", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/"))
        .output()
        .await?;
    Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Polls `fetch` until `host` is served (`served`) or refused (`!served`); the time it took.
async fn until(host: &str, served: bool, port: u16, ca: &Path) -> Result<Duration, Error> {
    let start = Instant::now();
    while fetch(host, port, ca).await?.is_some() != served {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "{host} was not {} within 10 s",
                if served { "served" } else { "gone" }
            )
            .into());
        }
    }
    Ok(start.elapsed())
}

/// Times of publish + unpublish rounds of one route each.
#[derive(Default)]
struct Rounds {
    publish_call: Vec<Duration>,
    publish_served: Vec<Duration>,
    unpublish_call: Vec<Duration>,
    unpublish_gone: Vec<Duration>,
}

impl Rounds {
    /// Publishes `<label>.example.test` on `site`, waits until curl gets it, unpublishes it and
    /// waits until curl is refused.
    async fn round(&mut self, site: &Site, label: &str) -> Result<(), Error> {
        let raw = format!("{label}.example.test");
        let host = site.proxy.policy().host(&raw)?;
        let start = Instant::now();
        site.proxy.publish(Route::app(host.clone(), site.up)).await?;
        self.publish_call.push(start.elapsed());
        until(&raw, true, site.port, &site.ca).await?;
        self.publish_served.push(start.elapsed());
        let start = Instant::now();
        site.proxy.unpublish(&host).await?;
        self.unpublish_call.push(start.elapsed());
        until(&raw, false, site.port, &site.ca).await?;
        self.unpublish_gone.push(start.elapsed());
        Ok(())
    }

    fn sort(&mut self) {
        for list in [
            &mut self.publish_call,
            &mut self.publish_served,
            &mut self.unpublish_call,
            &mut self.unpublish_gone,
        ] {
            list.sort();
        }
    }
}

/// One private nginx and its proxy.
struct Site {
    nginx: LocalNginx,
    proxy: NginxProxy,
    port: u16,
    ca: std::path::PathBuf,
    up: SocketAddr,
}

impl Site {
    async fn start(dir: &Path, cert: &CertFiles, up: SocketAddr) -> Result<Self, Error> {
        let nginx = LocalNginx::start(dir, cert.clone())?;
        let policy = RoutePolicy::new("example.test".parse()?, ["127.0.0.0/8".parse()?]);
        let proxy = NginxProxy::open(policy, nginx.config().clone()).await?;
        let port = nginx.https_addr().port();
        let few: Vec<Route> = (0..FEW)
            .map(|i| Ok(Route::app(proxy.policy().host(&format!("few{i}.example.test"))?, up)))
            .collect::<Result<_, Error>>()?;
        proxy.publish_all(few).await?;
        Ok(Self { nginx, proxy, port, ca: cert.chain.clone(), up })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The resident memory of nginx's workers, KiB (shared pages, the route table included, count in
/// each worker).
fn workers_rss_kib(nginx: &LocalNginx) -> u64 {
    nginx
        .worker_pids()
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (routes, samples) = (arg("--routes", 10_000)?, arg("--samples", 50)?);
    let dir = std::env::temp_dir().join(format!("kws-proxy-publish-{}", std::process::id()));
    let result = run(&dir, routes, samples).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &Path, routes: usize, samples: usize) -> Result<(), Error> {
    let cert = self_signed_certificate(&dir.join("certs"), &"example.test".parse()?)?;
    let up = upstream("demo").await?;
    let small = Site::start(&dir.join("nginx-small"), &cert, up).await?;
    let large = Site::start(&dir.join("nginx-large"), &cert, up).await?;
    let (port, ca) = (large.port, cert.chain.clone());
    println!("private nginx (pids {} and {})", small.nginx.pid(), large.nginx.pid());
    println!("load average at the start: {}", load_average());
    let body = fetch("few0.example.test", port, &ca).await?.ok_or("few0 not served")?;
    print!("https://few0.example.test:{port}/ -> {body}");

    // The cost of one curl to a route already served: part of every latency below.
    let mut baseline = Vec::new();
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        fetch("few0.example.test", port, &ca).await?.ok_or("few0 not served")?;
        baseline.push(start.elapsed());
    }
    baseline.sort();

    let batch: Vec<Route> = (0..routes)
        .map(|i| Ok(Route::app(large.proxy.policy().host(&format!("b{i}.example.test"))?, up)))
        .collect::<Result<_, Error>>()?;
    let start = Instant::now();
    large.proxy.publish_all(batch).await?;
    let batch_time = start.elapsed();
    for i in [0, routes / 2, routes.saturating_sub(1)] {
        if routes > 0 {
            fetch(&format!("b{i}.example.test"), port, &ca)
                .await?
                .ok_or("batch route not served")?;
        }
    }

    let (mut few, mut many) = (Rounds::default(), Rounds::default());
    for i in 0..samples {
        few.round(&small, &format!("s{i}")).await?;
        many.round(&large, &format!("l{i}")).await?;
    }
    few.sort();
    many.sort();
    let table = large.proxy.served().await?;
    let (served, table_bytes) = (table.routes, table.bytes_in_use);
    let (small_rss, large_rss) = (workers_rss_kib(&small.nginx), workers_rss_kib(&large.nginx));

    // The batch goes again one route at a time (the journal compacts itself along the way).
    let mut sweep = Vec::with_capacity(routes);
    for i in 0..routes {
        let host = large.proxy.policy().host(&format!("b{i}.example.test"))?;
        let start = Instant::now();
        large.proxy.unpublish(&host).await?;
        sweep.push(start.elapsed());
    }
    let sweep_total: Duration = sweep.iter().sum();
    sweep.sort();
    if fetch(&format!("b{}.example.test", routes / 2), port, &ca).await?.is_some() {
        return Err("an unpublished batch route is still served".into());
    }
    println!("load average at the end: {}", load_average());

    let total = FEW + routes;
    let p50 = |list: &[Duration]| percentile(list, 0.5);
    let ratio = |a: &[Duration], b: &[Duration]| p50(a).as_secs_f64() / p50(b).as_secs_f64();
    println!("\n| measure | {FEW} routes | {total} routes | ratio |\n|---|---|---|---|");
    for (name, a, b) in [
        ("publish -> served (call + curl), p50", &few.publish_served, &many.publish_served),
        ("publish call alone, p50", &few.publish_call, &many.publish_call),
        ("unpublish -> refused (call + curl), p50", &few.unpublish_gone, &many.unpublish_gone),
        ("unpublish call alone, p50", &few.unpublish_call, &many.unpublish_call),
    ] {
        println!("| {name} | {} | {} | {:.2} |", ms(p50(a)), ms(p50(b)), ratio(b, a));
    }
    println!(
        "| publish -> served, p90 / max | {} / {} | {} / {} | |",
        ms(percentile(&few.publish_served, 0.9)),
        ms(few.publish_served.last().copied().unwrap_or_default()),
        ms(percentile(&many.publish_served, 0.9)),
        ms(many.publish_served.last().copied().unwrap_or_default()),
    );
    println!("| nginx workers' RSS (2 workers) | {small_rss} KiB | {large_rss} KiB | |");
    println!("\n| measure | value |\n|---|---|");
    println!("| curl to a served route, p50 (in every latency above) | {} |", ms(p50(&baseline)));
    println!("| publish {routes} routes in one batch (publish_all) | {} |", ms(batch_time));
    println!("| route table in use with {} routes | {table_bytes} bytes |", served.len());
    println!(
        "| unpublish the {routes} one by one: total, p50, p99, max | {:.2} s, {}, {}, {} |",
        sweep_total.as_secs_f64(),
        ms(percentile(&sweep, 0.5)),
        ms(percentile(&sweep, 0.99)),
        ms(sweep.last().copied().unwrap_or_default()),
    );
    println!("| samples per measure | {samples} |");
    Ok(())
}
