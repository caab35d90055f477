//! SSE fan-out of kwsd's platform events: opens `--subscribers` connections to
//! `GET /api/v1/tenants/{tenant}/events`, waits until every one has its response headers (the
//! handler subscribes before it answers), then publishes events by adding `--events` VPN
//! devices (`POST /api/v1/tenants/{tenant}/devices`) at `--rate` per second through one more
//! connection, and measures, for every event every subscriber receives, the time from its
//! publication (the event's `at`, the server's clock: the same machine's) to its arrival
//! (`Utc::now()` when the read that brought it returned).
//!
//! ```text
//! cargo build --release --features server --example sse_fanout
//! target/release/examples/sse_fanout --base http://127.0.0.1:PORT --token kws_... \
//!     --tenant bench --subscribers 1000 --events 200
//! ```
//!
//! `scripts/api-bench` starts kwsd, makes the token and the tenant, and runs it. The client is
//! plain HTTP/1.1 on `tokio::net::TcpStream` (chunked body, SSE lines), so it adds little of
//! its own to the latency; it shares the machine's cores with the server all the same.
//!
//! kws:example-needs-args (a server and a load runner: scripts/api-bench runs them)

#[path = "support/stats.rs"]
mod stats;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use clap::Parser;
use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{Semaphore, watch},
    task::JoinSet,
};

/// SSE fan-out of kwsd's tenant events: publish-to-delivery latency.
#[derive(Debug, Parser)]
struct Args {
    /// kwsd's base URL (`http://HOST:PORT`, plain HTTP).
    #[arg(long)]
    base: String,
    /// An API token with `read` and `write` in the tenant (`kws_...`).
    #[arg(long, env = "KWS_TOKEN")]
    token: String,
    /// The tenant whose events are subscribed to and whose devices are added.
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// How many SSE connections.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// How many devices to add (each publishes a few events).
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// Devices added per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// The devices' names: PREFIX0001, PREFIX0002, ...
    #[arg(long, default_value = "fan")]
    prefix: String,
    /// Connections being opened at once while subscribing.
    #[arg(long, default_value_t = 50)]
    connect_parallel: usize,
    /// kwsd's process id, to report its CPU time per delivery (read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The user and system CPU time of process `pid` (`self`: this one) so far, in seconds.
fn cpu_seconds(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, which may hold spaces): utime and
    // stime are the 14th and 15th fields of the line, the 12th and 13th after `) `.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // In USER_HZ ticks, 100 per second on Linux whatever the kernel's own HZ.
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).map(|t| t / 100.0);
    Some((tick(11)?, tick(12)?))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sse_fanout: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sse_fanout: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `host:port` of a `http://host:port[/...]` URL.
fn authority(base: &str) -> Result<String, String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("--base {base:?}: only http:// URLs are supported"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("--base {base:?}: no host"));
    }
    Ok(if host.contains(':') { host.to_owned() } else { format!("{host}:80") })
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// Publish-to-delivery of each event it received, in microseconds (negative: the
    /// event's `at` is after the arrival, which a shared clock should not give).
    latencies_us: Vec<i64>,
    /// Events by SSE event name (`object`, `operation`, ...).
    by_type: BTreeMap<String, u64>,
    /// `gap` events (events lost to a slow subscriber).
    gaps: u64,
    /// Events of another tenant (must be 0).
    foreign: u64,
    /// Events whose `seq` was not above the previous one (must be 0).
    out_of_order: u64,
    /// The stream's final `end` event arrived.
    ended: bool,
    /// When the last event arrived.
    last_at: Option<Instant>,
    /// Why it stopped early.
    error: Option<String>,
}

/// The fields of an event's data this runner reads.
#[derive(Debug, Deserialize)]
struct EventData {
    at: DateTime<Utc>,
    tenant: String,
    seq: u64,
}

/// Reads the response head from `stream`: the status, whether the body is chunked, its
/// `Content-Length`, and the bytes read after the head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(u16, bool, Option<usize>, Vec<u8>), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            buf.clear();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let mut chunked = false;
            let mut length = None;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else { continue };
                let value = value.trim();
                if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                } else if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().ok();
                }
            }
            return Ok((status, chunked, length, rest));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP/1.1 chunked-body decoder fed with what the socket gives.
#[derive(Debug, Default)]
struct Chunked {
    raw: Vec<u8>,
    /// Bytes left in the current chunk; `None`: a size line comes next.
    left: Option<usize>,
    /// The CRLF after a chunk's data is due.
    crlf: bool,
    done: bool,
}

impl Chunked {
    /// Appends `input` and moves every complete piece of body into `body`.
    fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<(), String> {
        self.raw.extend_from_slice(input);
        let mut at = 0;
        loop {
            if self.done {
                break;
            }
            if self.crlf {
                if self.raw.len() - at < 2 {
                    break;
                }
                at += 2;
                self.crlf = false;
            }
            match self.left {
                None => {
                    let Some(nl) = self.raw[at..].windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = String::from_utf8_lossy(&self.raw[at..at + nl]).into_owned();
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size {line:?}"))?;
                    at += nl + 2;
                    if size == 0 {
                        self.done = true;
                    } else {
                        self.left = Some(size);
                    }
                }
                Some(left) => {
                    let n = left.min(self.raw.len() - at);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&self.raw[at..at + n]);
                    at += n;
                    if n == left {
                        self.left = None;
                        self.crlf = true;
                    } else {
                        self.left = Some(left - n);
                    }
                }
            }
        }
        self.raw.drain(..at);
        Ok(())
    }
}

/// One subscriber: connects, sends the request, reports the head (`ready`), then reads events
/// until `stop` (or the stream ends).
async fn subscribe(
    authority: Arc<str>,
    request: Arc<str>,
    tenant: Arc<str>,
    gate: Arc<Semaphore>,
    ready: tokio::sync::mpsc::Sender<Result<(), String>>,
    count: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let permit = gate.acquire_owned().await;
    let opened = async {
        let mut stream =
            TcpStream::connect(&*authority).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let (status, chunked, _, rest) = read_head(&mut stream, &mut buf).await?;
        if status != 200 {
            return Err(format!("status {status}"));
        }
        Ok::<_, String>((stream, chunked, rest))
    }
    .await;
    drop(permit);
    let (mut stream, chunked, rest) = match opened {
        Ok(o) => {
            let _ = ready.send(Ok(())).await;
            o
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone())).await;
            seen.error = Some(e);
            return seen;
        }
    };
    drop(ready);

    let mut decoder = Chunked::default();
    let mut body = Vec::new();
    let mut event_name = String::new();
    let mut last_seq = 0u64;
    let mut input = rest;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let now = Utc::now();
        if chunked {
            if let Err(e) = decoder.feed(&input, &mut body) {
                seen.error = Some(e);
                break;
            }
        } else {
            body.extend_from_slice(&input);
        }
        // Every complete line of the body.
        let mut start = 0;
        while let Some(nl) = body[start..].iter().position(|&b| b == b'\n') {
            let mut line = &body[start..start + nl];
            start += nl + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if let Some(name) = line.strip_prefix(b"event:") {
                event_name = String::from_utf8_lossy(name).trim().to_owned();
            } else if let Some(data) = line.strip_prefix(b"data:") {
                match event_name.as_str() {
                    "gap" => seen.gaps += 1,
                    "end" => seen.ended = true,
                    _ => match serde_json::from_slice::<EventData>(data) {
                        Ok(e) => {
                            let us = (now - e.at).num_microseconds().unwrap_or(i64::MAX);
                            seen.latencies_us.push(us);
                            if *e.tenant != *tenant {
                                seen.foreign += 1;
                            }
                            if e.seq <= last_seq {
                                seen.out_of_order += 1;
                            }
                            last_seq = e.seq;
                            *seen.by_type.entry(event_name.clone()).or_default() += 1;
                            seen.last_at = Some(Instant::now());
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            seen.error = Some(format!("event data: {e}"));
                        }
                    },
                }
            } else if line.is_empty() {
                event_name.clear();
            }
        }
        body.drain(..start);
        if seen.ended || decoder.done {
            break;
        }
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) => {
                    seen.error.get_or_insert_with(|| "the server closed the stream".into());
                    break;
                }
                Ok(n) => input = chunk[..n].to_vec(),
                Err(e) => {
                    seen.error = Some(format!("read: {e}"));
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    seen
}

/// The publisher's keep-alive connection.
struct Publisher {
    stream: TcpStream,
    authority: String,
    token: String,
    tenant: String,
}

impl Publisher {
    /// `POST /api/v1/tenants/{tenant}/devices {"name": name}`: the status and body.
    async fn add_device(&mut self, name: &str) -> Result<(u16, String), String> {
        let body = serde_json::json!({ "name": name }).to_string();
        let request = format!(
            "POST /api/v1/tenants/{}/devices HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.tenant,
            self.authority,
            self.token,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let (status, chunked, length, mut rest) = read_head(&mut self.stream, &mut buf).await?;
        if chunked {
            return Err("the publisher expects a Content-Length answer, got chunked".into());
        }
        let length = length.ok_or("an answer without Content-Length")?;
        let mut chunk = [0u8; 4096];
        while rest.len() < length {
            let n = self.stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed in the answer's body".into());
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        Ok((status, String::from_utf8_lossy(&rest[..length]).into_owned()))
    }
}

fn pct_ms(sorted_us: &[i64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

async fn run(args: Args) -> Result<(), String> {
    let authority = authority(&args.base)?;
    if args.subscribers == 0 || args.events == 0 || args.rate <= 0.0 {
        return Err("--subscribers, --events and --rate must be above 0".into());
    }
    let request = format!(
        "GET /api/v1/tenants/{}/events HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Accept: text/event-stream\r\n\r\n",
        args.tenant, args.token
    );
    let authority_arc: Arc<str> = authority.clone().into();
    let request: Arc<str> = request.into();
    let tenant: Arc<str> = args.tenant.clone().into();
    let gate = Arc::new(Semaphore::new(args.connect_parallel.max(1)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.subscribers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let counts: Vec<Arc<AtomicU64>> =
        (0..args.subscribers).map(|_| Arc::new(AtomicU64::new(0))).collect();

    // 1. Subscribe, and wait for every response head.
    let begun = Instant::now();
    let mut subscribers = JoinSet::new();
    for (i, count) in counts.iter().enumerate() {
        let task = subscribe(
            authority_arc.clone(),
            request.clone(),
            tenant.clone(),
            gate.clone(),
            ready_tx.clone(),
            count.clone(),
            stop_rx.clone(),
        );
        subscribers.spawn(async move { (i, task.await) });
    }
    drop(ready_tx);
    let mut connected = 0usize;
    let mut failed = Vec::new();
    while let Some(r) = ready_rx.recv().await {
        match r {
            Ok(()) => connected += 1,
            Err(e) => failed.push(e),
        }
        if connected + failed.len() == args.subscribers {
            break;
        }
    }
    println!(
        "sse_fanout: {connected} of {} subscribers connected in {:.2} s",
        args.subscribers,
        begun.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        let _ = stop_tx.send(true);
        return Err(format!("{} subscribers failed, the first: {}", failed.len(), failed[0]));
    }
    // Let the last subscribers' tasks reach their first read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let server_pid = args.server_pid.map(|p| p.to_string());
    let server_cpu0 = server_pid.as_deref().and_then(cpu_seconds);
    let own_cpu0 = cpu_seconds("self");

    // 2. Publish: add devices at a steady pace through one keep-alive connection.
    let stream = TcpStream::connect(&authority).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut publisher = Publisher {
        stream,
        authority: authority.clone(),
        token: args.token.clone(),
        tenant: args.tenant.clone(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut post_times = Vec::with_capacity(args.events);
    let publishing = Instant::now();
    for n in 1..=args.events {
        tick.tick().await;
        let name = format!("{}{n:04}", args.prefix);
        let sent = Instant::now();
        let (status, body) = publisher.add_device(&name).await?;
        post_times.push(sent.elapsed());
        if status != 201 {
            let _ = stop_tx.send(true);
            return Err(format!("POST devices {name}: status {status}: {body}"));
        }
    }
    let published = publishing.elapsed();
    let last_answer = Instant::now();

    // 3. Wait until every subscriber has the same count and nothing arrives for 2 s.
    let quiet = Duration::from_secs(2);
    let bound = Instant::now() + Duration::from_secs(60);
    let mut last_total = u64::MAX;
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let total: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet || Instant::now() > bound {
            break;
        }
    }
    let server_cpu1 = server_pid.as_deref().and_then(cpu_seconds);
    let own_cpu1 = cpu_seconds("self");
    let _ = stop_tx.send(true);
    let mut seen = Vec::with_capacity(args.subscribers);
    while let Some(joined) = subscribers.join_next().await {
        seen.push(joined.map_err(|e| format!("a subscriber panicked: {e}"))?);
    }
    seen.sort_by_key(|(i, _)| *i);

    // 4. Report.
    let drain = seen
        .iter()
        .filter_map(|(_, s)| s.last_at)
        .max()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(last_answer));
    // From the first POST to the last delivery: the CPU times are read after it (idle since).
    let window = (last_answer + drain).saturating_duration_since(publishing).as_secs_f64();
    let mut posts = post_times.clone();
    let post_p50 = stats::ms(stats::percentile(&mut posts, 0.50));
    let post_p99 = stats::ms(stats::percentile(&mut posts, 0.99));
    println!(
        "sse_fanout: {} devices added in {:.2} s ({:.1}/s), POST p50 {post_p50:.2} ms, p99 \
         {post_p99:.2} ms; the last delivery {:.1} ms after the last POST's answer",
        args.events,
        published.as_secs_f64(),
        args.events as f64 / published.as_secs_f64(),
        stats::ms(drain)
    );
    let per: Vec<usize> = seen.iter().map(|(_, s)| s.latencies_us.len()).collect();
    let min = per.iter().copied().min().unwrap_or(0);
    let max = per.iter().copied().max().unwrap_or(0);
    let total: usize = per.iter().sum();
    let types = seen.first().map(|(_, s)| s.by_type.clone()).unwrap_or_default();
    let types: Vec<String> = types
        .iter()
        .map(|(t, n)| format!("{t} {n} ({:.2} per device)", *n as f64 / args.events as f64))
        .collect();
    let gaps: u64 = seen.iter().map(|(_, s)| s.gaps).sum();
    let foreign: u64 = seen.iter().map(|(_, s)| s.foreign).sum();
    let disorder: u64 = seen.iter().map(|(_, s)| s.out_of_order).sum();
    let ended = seen.iter().filter(|(_, s)| s.ended).count();
    let errors: Vec<&String> = seen.iter().filter_map(|(_, s)| s.error.as_ref()).collect();
    println!(
        "sse_fanout: events per subscriber min {min}, max {max} ({:.2} per device; {} before \
         publishing); {total} deliveries; subscriber 0: {}",
        max as f64 / args.events as f64,
        before,
        types.join(", ")
    );
    println!(
        "sse_fanout: gaps {gaps}, other tenant's events {foreign}, out of order {disorder}, \
         streams ended early {ended}, subscriber errors {}{}",
        errors.len(),
        errors.first().map(|e| format!(" (the first: {e})")).unwrap_or_default()
    );
    let cpu = |label: &str, a: Option<(f64, f64)>, b: Option<(f64, f64)>| {
        if let (Some((u0, s0)), Some((u1, s1))) = (a, b) {
            let (user, sys) = (u1 - u0, s1 - s0);
            let per = (user + sys) * 1e6 / total.max(1) as f64;
            format!(
                "{label} {:.2} s CPU ({user:.2} user + {sys:.2} system, {:.0}% of a core) = \
                 {per:.2} us per delivery",
                user + sys,
                (user + sys) * 100.0 / window
            )
        } else {
            format!("{label} CPU not read")
        }
    };
    println!(
        "sse_fanout: over the {window:.1} s of publishing and delivery: {}; {}",
        cpu("kwsd", server_cpu0, server_cpu1),
        cpu("this runner", own_cpu0, own_cpu1)
    );
    let mut all: Vec<i64> = seen.iter().flat_map(|(_, s)| s.latencies_us.iter().copied()).collect();
    all.sort_unstable();
    let negative = all.iter().filter(|&&us| us < 0).count();
    println!(
        "sse_fanout: publish -> delivery over {} deliveries: p50 {:.2} ms, p90 {:.2} ms, p99 \
         {:.2} ms, p99.9 {:.2} ms, max {:.2} ms{}",
        all.len(),
        pct_ms(&all, 0.50),
        pct_ms(&all, 0.90),
        pct_ms(&all, 0.99),
        pct_ms(&all, 0.999),
        all.last().map_or(0.0, |&us| us as f64 / 1000.0),
        if negative > 0 { format!(" ({negative} negative)") } else { String::new() }
    );
    // One line for scripts.
    println!(
        "RESULT subscribers={} devices={} deliveries={total} per_subscriber_min={min} \
         per_subscriber_max={max} gaps={gaps} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.subscribers,
        args.events,
        pct_ms(&all, 0.50),
        pct_ms(&all, 0.99),
        all.last().map_or(0.0, |&us| us as f64 / 1000.0),
    );
    Ok(())
}
