//! Load runner of the exec engine: submit-to-`Exited` latency of hello-world python on warm
//! pools (p50, p99), the same snippet through a cold `docker run --rm` as the baseline, and
//! jobs per second with jobs in flight.
//!
//! `cargo run --release --example exec_load --features docker -- [SEQUENTIAL] [THROUGHPUT]
//! [COLD] [POOL]` (defaults 50, 100, 3 and a pool of 5, sized for CI; the figures in
//! docs/PERFORMANCE.md use 300 600 10 5). Needs Docker at `DOCKER_HOST` and the images of
//! `scripts/images`.
//!
//! When Docker runs on this host, it also prints the CPU time per job of the throughput run,
//! read from /proc: dockerd, containerd, the sandboxes' shims with the processes they reaped
//! (runc and every program of the sandbox), and this process. Unlike jobs per second, that
//! figure does not depend on what else shares the cores.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kws_core::{DnsLabel, OwnerId};
use kws_runtime::exec::{ExecConfig, ExecEngine, JobEvent, Language, Languages, Limits, RateLimit};

const HELLO: &str = "print('hello')";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn hello(engine: &ExecEngine, user: &OwnerId, python: &DnsLabel) -> Result<Duration, String> {
    let started = Instant::now();
    let id = engine
        .submit(user, python, HELLO, "", Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut events = engine.events(id).ok_or("the job vanished")?;
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Exited { code: 0, .. } => return Ok(started.elapsed()),
            event if event.is_terminal() => return Err(format!("job {id} ended with {event:?}")),
            _ => {}
        }
    }
    Err(format!("job {id} has no terminal event"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let sequential = args.first().copied().unwrap_or(50);
    let throughput = args.get(1).copied().unwrap_or(100);
    let cold = args.get(2).copied().unwrap_or(3);
    let pool = args.get(3).copied().unwrap_or(5);
    let python = Language::python3();
    let name = python.name.clone();
    let config = ExecConfig {
        languages: Languages::new([python.clone()])?,
        pool_size: pool,
        max_concurrent: pool,
        queue_capacity: 10_000,
        rate: RateLimit { per_second: 1e6, burst: 1_000_000 },
        ..ExecConfig::default()
    };
    let engine = ExecEngine::start_local(config).await?;
    let user: OwnerId = "load".parse()?;
    let result = measure(&engine, &user, &name, sequential, throughput).await;

    let pools = engine.pools();
    engine.shutdown().await?;
    let (warm, jobs_per_second, cpu) = result?;

    let mut cold_runs = Vec::new();
    for _ in 0..cold {
        let started = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", "--network", "none", &python.image, "python3", "-c", HELLO])
            .output()?;
        if !status.status.success() || status.stdout != b"hello\n" {
            return Err(format!("docker run failed: {status:?}").into());
        }
        cold_runs.push(started.elapsed());
    }
    cold_runs.sort();
    let cold_p50 = percentile(&cold_runs, 0.5);
    let (p50, p99) = (percentile(&warm, 0.5), percentile(&warm, 0.99));
    println!(
        "exec engine, hello-world python ({} sequential jobs on a warm pool of {pool})",
        warm.len()
    );
    println!(
        "  submit -> Exited  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(p50),
        ms(p99),
        ms(warm.last().copied().unwrap_or_default())
    );
    println!("cold baseline: docker run --rm (CLI), {cold} runs  p50 {:.1} ms", ms(cold_p50));
    println!("  cold p50 / warm p50 = {:.1}x", ms(cold_p50) / ms(p50).max(1e-9));
    println!(
        "throughput: {throughput} jobs, 25 in flight on {pool} sandboxes  {jobs_per_second:.1} jobs/s"
    );
    match cpu {
        Some(cpu) => {
            let per_job = |ticks: u64| ticks as f64 * 10.0 / throughput as f64;
            println!(
                "  CPU per job: {:.1} ms = dockerd {:.1} + containerd {:.1} + shims with runc and \
                 the sandboxes' programs {:.1} + this engine {:.1}",
                per_job(cpu.total()),
                per_job(cpu.dockerd),
                per_job(cpu.containerd),
                per_job(cpu.shims),
                per_job(cpu.engine)
            );
        }
        None => println!("  CPU per job: Docker is not on this host (no /proc figures)"),
    }
    for (language, pool) in pools {
        println!("  {language}: {} sandboxes reused, {} retired", pool.reused, pool.retired);
    }
    Ok(())
}

/// Sequential latencies (sorted), jobs per second with the pool kept busy, and the CPU time
/// that throughput run cost.
async fn measure(
    engine: &ExecEngine,
    user: &OwnerId,
    python: &DnsLabel,
    sequential: usize,
    throughput: usize,
) -> Result<(Vec<Duration>, f64, Option<CpuTicks>), Box<dyn std::error::Error>> {
    for _ in 0..5 {
        hello(engine, user, python).await?;
    }
    engine.wait_until_full(Duration::from_secs(30)).await?;
    let mut warm = Vec::with_capacity(sequential);
    for _ in 0..sequential {
        warm.push(hello(engine, user, python).await?);
        // Measure a warm pool: let the sandbox be proven clean and come back first.
        engine.wait_until_full(Duration::from_secs(30)).await?;
    }
    warm.sort();
    let containers: Vec<String> = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=kws.exec.engine={}", engine.engine_id()))
        .output()?
        .stdout
        .split(u8::is_ascii_whitespace)
        .filter(|id| !id.is_empty())
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .collect();
    let cpu_before = CpuTicks::read(&containers);
    let started = Instant::now();
    let in_flight = 25;
    let results: Vec<Result<Duration, String>> = futures::stream::iter(0..throughput)
        .map(|_| hello(engine, user, python))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu_before.zip(CpuTicks::read(&containers)).map(|(a, b)| b.since(&a));
    if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
        return Err(err.into());
    }
    Ok((warm, throughput as f64 / elapsed.as_secs_f64(), cpu))
}

/// CPU time in clock ticks (1/100 s, Linux's USER_HZ): user + system, with the reaped
/// children's.
#[derive(Debug, Default)]
struct CpuTicks {
    dockerd: u64,
    containerd: u64,
    /// The sandboxes' `containerd-shim` processes: runc and the sandboxes' processes are
    /// their children once reaped.
    shims: u64,
    engine: u64,
}

impl CpuTicks {
    /// Reads /proc; `None` unless dockerd and a shim of every one of `containers` are here.
    fn read(containers: &[String]) -> Option<Self> {
        let mut ticks = Self { engine: process_ticks("self")?, ..Self::default() };
        let mut shims = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let program = args.first().and_then(|a| a.rsplit(|b| *b == b'/').next());
            let slot = match program.unwrap_or_default() {
                b"dockerd" => &mut ticks.dockerd,
                b"containerd" => &mut ticks.containerd,
                name if name.starts_with(b"containerd-shim")
                    && args.windows(2).any(|w| {
                        w[0] == b"-id" && containers.iter().any(|c| c.as_bytes() == w[1])
                    }) =>
                {
                    shims += 1;
                    &mut ticks.shims
                }
                _ => continue,
            };
            *slot += process_ticks(&pid).unwrap_or(0);
        }
        (ticks.dockerd > 0 && shims == containers.len()).then_some(ticks)
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            dockerd: self.dockerd.saturating_sub(before.dockerd),
            containerd: self.containerd.saturating_sub(before.containerd),
            shims: self.shims.saturating_sub(before.shims),
            engine: self.engine.saturating_sub(before.engine),
        }
    }

    fn total(&self) -> u64 {
        self.dockerd + self.containerd + self.shims + self.engine
    }
}

/// utime + stime + cutime + cstime of a process (fields 14 to 17 of /proc/PID/stat).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    fields.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum()
}
