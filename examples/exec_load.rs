//! Load runner of the exec engine: hello-world python on warm pools, on both job runners in the
//! same run (the resident supervisor, then the `docker exec` fallback), and a cold
//! `docker run --rm` of the same snippet as the baseline. For each runner: submit-to-`Exited`
//! latency one job at a time (p50, p99), jobs per second with jobs in flight, and the CPU time
//! per job split by process.
//!
//! `cargo run --release --example exec_load --features "exec docker" -- [SEQUENTIAL]
//! [THROUGHPUT] [COLD] [POOL]` (defaults 50, 100, 3 and a pool of 5, sized for CI; the figures
//! in docs/PERFORMANCE.md use 300 600 10 5). Needs Docker at `DOCKER_HOST` and the images of
//! `scripts/images`.
//!
//! The CPU per job is read from /proc when Docker runs on this host: dockerd, containerd, the
//! sandboxes' shims (their own time, and what they reaped: runc and, with `docker exec`, every
//! program of a job), the sandboxes' process 1 (its own time: the supervisor; and what it
//! reaped: every program of a job under the supervisor), and this engine. Unlike jobs per
//! second, it barely depends on what else shares the cores.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kws_core::{DnsLabel, OwnerId};
use kws_exec::{
    ExecConfig, ExecEngine, JobEvent, JobRunner, Language, Languages, Limits, RateLimit,
};

const HELLO: &str = "print('hello')";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs one hello job; returns its submit-to-`Exited` time and the job's own wall time.
async fn hello(
    engine: &ExecEngine,
    user: &OwnerId,
    python: &DnsLabel,
) -> Result<(Duration, Duration), String> {
    let started = Instant::now();
    let id = engine
        .submit(user, python, HELLO, "", Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut events = engine.events(id).ok_or("the job vanished")?;
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Exited { code: 0, wall_ms } => {
                return Ok((started.elapsed(), Duration::from_millis(wall_ms)));
            }
            event if event.is_terminal() => return Err(format!("job {id} ended with {event:?}")),
            _ => {}
        }
    }
    Err(format!("job {id} has no terminal event"))
}

/// One runner's figures.
struct Figures {
    runner: JobRunner,
    /// Sequential latencies, sorted.
    warm: Vec<Duration>,
    /// Sequential latencies less the job's own wall time, sorted.
    overhead: Vec<Duration>,
    jobs_per_second: f64,
    cpu: Option<CpuTicks>,
    reused: u64,
    retired: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let sequential = args.first().copied().unwrap_or(50);
    let throughput = args.get(1).copied().unwrap_or(100);
    let cold = args.get(2).copied().unwrap_or(3);
    let pool = args.get(3).copied().unwrap_or(5);
    let python = Language::python3();
    let mut figures = Vec::new();
    for runner in [JobRunner::Supervisor, JobRunner::DockerExec] {
        figures.push(measure_runner(runner, &python, pool, sequential, throughput).await?);
    }
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

    println!("exec engine, hello-world python, warm pool of {pool}, one language");
    for f in &figures {
        let (p50, p99) = (percentile(&f.warm, 0.5), percentile(&f.warm, 0.99));
        println!("{:?} runner", f.runner);
        println!(
            "  submit -> Exited ({} sequential)  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            f.warm.len(),
            ms(p50),
            ms(p99),
            ms(f.warm.last().copied().unwrap_or_default())
        );
        println!(
            "  of which not the job's own wall time (ms resolution)  p50 {:.1} ms  p99 {:.1} ms",
            ms(percentile(&f.overhead, 0.5)),
            ms(percentile(&f.overhead, 0.99))
        );
        println!("  throughput: {throughput} jobs, 25 in flight  {:.1} jobs/s", f.jobs_per_second);
        println!("  cold docker run p50 / warm p50 = {:.1}x", ms(cold_p50) / ms(p50).max(1e-9));
        match &f.cpu {
            Some(cpu) => println!("  CPU per job: {}", cpu.per_job(throughput)),
            None => println!("  CPU per job: Docker is not on this host (no /proc figures)"),
        }
        println!("  {} sandboxes reused, {} retired", f.reused, f.retired);
    }
    println!("cold baseline: docker run --rm (CLI), {cold} runs  p50 {:.1} ms", ms(cold_p50));
    if let [supervisor, exec] = &figures[..] {
        println!(
            "supervisor / docker exec: {:.2}x the jobs/s, {:.2}x the p50 latency",
            supervisor.jobs_per_second / exec.jobs_per_second.max(1e-9),
            ms(percentile(&supervisor.warm, 0.5)) / ms(percentile(&exec.warm, 0.5)).max(1e-9)
        );
    }
    Ok(())
}

/// Starts an engine of `runner`, measures it, and shuts it down.
async fn measure_runner(
    runner: JobRunner,
    python: &Language,
    pool: usize,
    sequential: usize,
    throughput: usize,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let config = ExecConfig {
        runner,
        languages: Languages::new([python.clone()])?,
        pool_size: pool,
        max_concurrent: pool,
        queue_capacity: 10_000,
        rate: RateLimit { per_second: 1e6, burst: 1_000_000 },
        ..ExecConfig::default()
    };
    let engine = ExecEngine::start_local(config).await?;
    let user: OwnerId = "load".parse()?;
    let measured = measure(&engine, &user, &python.name, sequential, throughput).await;
    let pools = engine.pools();
    engine.shutdown().await?;
    let (runs, jobs_per_second, cpu) = measured?;
    let (reused, retired) = pools.values().fold((0, 0), |(u, r), p| (u + p.reused, r + p.retired));
    let mut warm: Vec<Duration> = runs.iter().map(|(took, _)| *took).collect();
    let mut overhead: Vec<Duration> =
        runs.iter().map(|(took, wall)| took.saturating_sub(*wall)).collect();
    warm.sort();
    overhead.sort();
    Ok(Figures { runner, warm, overhead, jobs_per_second, cpu, reused, retired })
}

/// Sequential runs (latency and the job's wall time), jobs per second with the pool kept
/// busy, and the CPU time that throughput run cost.
async fn measure(
    engine: &ExecEngine,
    user: &OwnerId,
    python: &DnsLabel,
    sequential: usize,
    throughput: usize,
) -> Result<(Vec<(Duration, Duration)>, f64, Option<CpuTicks>), Box<dyn std::error::Error>> {
    for _ in 0..5 {
        hello(engine, user, python).await?;
    }
    engine.wait_until_full(Duration::from_secs(30)).await?;
    let mut warm = Vec::with_capacity(sequential);
    for _ in 0..sequential {
        warm.push(hello(engine, user, python).await?);
        // Measure a warm pool: let the sandbox come back first.
        engine.wait_until_full(Duration::from_secs(30)).await?;
    }
    let containers = Sandbox::list(engine.engine_id())?;
    let cpu_before = Sample::read(&containers);
    let started = Instant::now();
    let in_flight = 25;
    let results: Vec<Result<_, String>> = futures::stream::iter(0..throughput)
        .map(|_| hello(engine, user, python))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu_before.zip(Sample::read(&containers)).map(|(a, b)| b.since(&a));
    if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
        return Err(err.into());
    }
    Ok((warm, throughput as f64 / elapsed.as_secs_f64(), cpu))
}

/// A sandbox container: its full id and the host pid of its process 1.
struct Sandbox {
    id: String,
    pid: String,
}

impl Sandbox {
    /// The engine's running sandboxes.
    fn list(engine_id: &str) -> Result<Vec<Self>, Box<dyn std::error::Error>> {
        let ids = Command::new("docker")
            .args(["ps", "-q", "--no-trunc", "--filter"])
            .arg(format!("label=kws.exec.engine={engine_id}"))
            .output()?
            .stdout;
        let ids: Vec<String> =
            String::from_utf8_lossy(&ids).split_whitespace().map(str::to_owned).collect();
        let mut sandboxes = Vec::new();
        for id in ids {
            let pid = Command::new("docker")
                .args(["inspect", "-f", "{{.State.Pid}}", &id])
                .output()?
                .stdout;
            let pid = String::from_utf8_lossy(&pid).trim().to_owned();
            sandboxes.push(Self { id, pid });
        }
        Ok(sandboxes)
    }
}

/// CPU time in clock ticks (1/100 s, Linux's USER_HZ), user + system; "reaped" is what a
/// process's ended children used.
#[derive(Debug, Default)]
struct CpuTicks {
    dockerd: u64,
    containerd: u64,
    shims: u64,
    shims_reaped: u64,
    init: u64,
    init_reaped: u64,
    engine: u64,
}

/// What a process counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dockerd,
    Containerd,
    Shim,
    Init,
    Engine,
}

/// One read of every process that counts: pid, kind, own and reaped ticks.
struct Sample(Vec<(String, Kind, u64, u64)>);

impl Sample {
    /// Reads /proc; `None` unless dockerd and a shim of every one of `sandboxes` are here.
    fn read(sandboxes: &[Sandbox]) -> Option<Self> {
        let (own, reaped) = process_ticks("self")?;
        let mut found = vec![("self".to_owned(), Kind::Engine, own, reaped)];
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let program = args.first().and_then(|a| a.rsplit(|b| *b == b'/').next());
            let kind = match program.unwrap_or_default() {
                b"dockerd" => Kind::Dockerd,
                b"containerd" => Kind::Containerd,
                name if name.starts_with(b"containerd-shim")
                    && args.windows(2).any(|w| {
                        w[0] == b"-id" && sandboxes.iter().any(|s| s.id.as_bytes() == w[1])
                    }) =>
                {
                    Kind::Shim
                }
                _ if sandboxes.iter().any(|s| s.pid == pid) => Kind::Init,
                _ => continue,
            };
            let (own, reaped) = process_ticks(&pid).unwrap_or_default();
            found.push((pid, kind, own, reaped));
        }
        let count = |kind| found.iter().filter(|(_, k, ..)| *k == kind).count();
        (count(Kind::Dockerd) > 0 && count(Kind::Shim) == sandboxes.len()).then_some(Self(found))
    }

    /// What each kind used since `before`, over the processes present in both reads (another
    /// test's engine that came or went in between would otherwise count).
    fn since(&self, before: &Self) -> CpuTicks {
        let mut ticks = CpuTicks::default();
        for (pid, kind, own, reaped) in &self.0 {
            let Some((_, _, own0, reaped0)) = before.0.iter().find(|(p, ..)| p == pid) else {
                continue;
            };
            let (own, reaped) = (own.saturating_sub(*own0), reaped.saturating_sub(*reaped0));
            match kind {
                Kind::Dockerd => ticks.dockerd += own + reaped,
                Kind::Containerd => ticks.containerd += own + reaped,
                Kind::Shim => {
                    ticks.shims += own;
                    ticks.shims_reaped += reaped;
                }
                Kind::Init => {
                    ticks.init += own;
                    ticks.init_reaped += reaped;
                }
                Kind::Engine => ticks.engine += own + reaped,
            }
        }
        ticks
    }
}

impl CpuTicks {
    fn per_job(&self, jobs: usize) -> String {
        let ms = |ticks: u64| ticks as f64 * 10.0 / jobs as f64;
        let total = self.dockerd
            + self.containerd
            + self.shims
            + self.shims_reaped
            + self.init
            + self.init_reaped
            + self.engine;
        format!(
            "{:.1} ms = dockerd {:.1} + containerd {:.1} + shims {:.1} + reaped by the shims \
             (runc, docker exec's programs) {:.1} + process 1 {:.1} + reaped by process 1 (the \
             supervisor's jobs) {:.1} + this engine {:.1}",
            ms(total),
            ms(self.dockerd),
            ms(self.containerd),
            ms(self.shims),
            ms(self.shims_reaped),
            ms(self.init),
            ms(self.init_reaped),
            ms(self.engine)
        )
    }
}

/// A process's own (utime + stime) and reaped children's (cutime + cstime) ticks (fields 14 to
/// 17 of /proc/PID/stat).
fn process_ticks(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    match fields[..] {
        [utime, stime, cutime, cstime] => Some((utime + stime, cutime + cstime)),
        _ => None,
    }
}
