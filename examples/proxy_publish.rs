//! Publishes app routes through a private nginx (started here on loopback ports with its own
//! prefix folder and a self-signed wildcard certificate), serves them over HTTPS, and measures
//! publish-to-served latency and the time to publish a batch of routes.
//!
//! `cargo run --release --example proxy_publish --features nginx -- [--routes N] [--samples M]`
//! (defaults: 200 routes, 20 samples). Needs `nginx`, `openssl` and `curl` on PATH.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use kws::proxy::{
    ProxyWriter, Route, RoutePolicy,
    nginx::{LocalNginx, NginxProxy, self_signed_certificate},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error>;

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

/// `curl` with the given extra arguments against `https://<host>:<port>/`; the body if 2xx.
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

/// Publishes `route` and polls until it is served; the time from the call to the first answer.
async fn publish_to_served(
    proxy: &NginxProxy,
    route: Route,
    port: u16,
    ca: &Path,
) -> Result<Duration, Error> {
    let host = route.host().to_string();
    let start = Instant::now();
    proxy.publish(route).await?;
    loop {
        if fetch(&host, port, ca).await?.is_some() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("{host} was not served within 10 s").into());
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (routes, samples) = (arg("--routes", 200)?, arg("--samples", 20)?);
    let dir = std::env::temp_dir().join(format!("kws-proxy-publish-{}", std::process::id()));
    let result = run(&dir, routes, samples).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &Path, routes: usize, samples: usize) -> Result<(), Error> {
    let domain = "example.test".parse()?;
    let cert = self_signed_certificate(&dir.join("certs"), &domain)?;
    let ca = cert.chain.clone();
    let nginx = LocalNginx::start(&dir.join("nginx"), cert)?;
    let policy = RoutePolicy::new(domain, ["127.0.0.0/8".parse()?]);
    let proxy = NginxProxy::open(policy, nginx.config().clone()).await?;
    let port = nginx.https_addr().port();
    println!(
        "private nginx (pid {}) on {} and {}",
        nginx.pid(),
        nginx.http_addr(),
        nginx.https_addr()
    );

    let up = upstream("demo").await?;
    let hello = proxy.policy().host("hello.example.test")?;
    proxy.publish(Route::app(hello.clone(), up)).await?;
    let body = fetch("hello.example.test", port, &ca).await?.ok_or("hello not served")?;
    print!("https://hello.example.test:{port}/ -> {body}");
    println!("route file: {}", nginx.config().dir.join("routes/hello.example.test.conf").display());

    // The cost of one curl to a route already served: part of every latency below.
    let mut baseline = Vec::new();
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        fetch("hello.example.test", port, &ca).await?.ok_or("hello not served")?;
        baseline.push(start.elapsed());
    }
    baseline.sort();

    let mut latencies = Vec::new();
    for i in 0..samples {
        let host = proxy.policy().host(&format!("lat{i}.example.test"))?;
        latencies.push(publish_to_served(&proxy, Route::app(host, up), port, &ca).await?);
    }
    latencies.sort();

    let batch: Vec<Route> = (0..routes)
        .map(|i| Ok(Route::app(proxy.policy().host(&format!("b{i}.example.test"))?, up)))
        .collect::<Result<_, Error>>()?;
    let start = Instant::now();
    proxy.publish_all(batch).await?;
    let batch_time = start.elapsed();
    for i in [0, routes / 2, routes.saturating_sub(1)] {
        if routes > 0 {
            fetch(&format!("b{i}.example.test"), port, &ca)
                .await?
                .ok_or("batch route not served")?;
        }
    }
    let after = proxy.policy().host("after-batch.example.test")?;
    let single_after = publish_to_served(&proxy, Route::app(after, up), port, &ca).await?;

    println!("\n| measure | value |\n|---|---|");
    println!("| curl to a served route, p50 (baseline) | {} |", ms(percentile(&baseline, 0.5)));
    println!(
        "| publish-to-served, p50 ({samples} routes, one by one) | {} |",
        ms(percentile(&latencies, 0.5))
    );
    println!("| publish-to-served, p90 | {} |", ms(percentile(&latencies, 0.9)));
    println!("| publish-to-served, max | {} |", ms(latencies.last().copied().unwrap_or_default()));
    println!("| publish {routes} routes in one batch (publish_all) | {} |", ms(batch_time));
    println!(
        "| publish-to-served of one route on top of {} | {} |",
        routes + samples + 1,
        ms(single_after)
    );
    Ok(())
}
