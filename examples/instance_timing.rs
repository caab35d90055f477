//! Times instance start-up and redeploy through the library beside `docker run` of the same
//! image through the CLI, in the same run, on the same engine.
//!
//! `cargo run --release --example instance_timing --features docker -- --runs 30`
//! (default 5 runs). Needs `DOCKER_HOST` (or the default socket), the `docker` CLI and the test
//! images. Everything it makes carries `kws.test=1` and is removed at the end.

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use kws::{
    core::{InstanceId, OwnerId},
    ipam::MemoryAllocator,
    runtime::{
        ImageRef, InstanceKey, InstanceSpec, Redeploy, Runtime, VolumePolicy,
        docker::{DockerConfig, DockerRuntime, IdeConfig},
    },
};

const IMAGE: &str = "kws-test/busybox:1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut runs = 5usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?} (usage: --runs N)"),
        }
    }
    let mut config = DockerConfig::new(IdeConfig { image: ImageRef::parse(IMAGE)?, port: 8080 });
    config.extra_labels.insert("kws.test".into(), "1".into());
    config.stop_timeout = Duration::from_secs(3);
    let settle = config.redeploy_settle;
    let allocator = Arc::new(MemoryAllocator::new());
    let rt = DockerRuntime::connect(allocator.clone(), config.clone()).await?;
    // The same runtime without the settle time, to show what the switch itself costs.
    config.redeploy_settle = Duration::ZERO;
    let unsettled = DockerRuntime::with_client(rt.client().clone(), allocator, config).await?;
    let owner = OwnerId::parse(&format!("timing-{}", std::process::id()))?;
    let result = measure(&rt, &unsettled, &owner, runs).await;
    for info in rt.list(&owner).await? {
        rt.remove(&info.key, VolumePolicy::Delete).await?;
    }
    rt.remove_network(&owner).await?;
    let table = result?;
    println!("instance timing, {runs} runs each, image {IMAGE}, redeploy settle {settle:?}");
    println!("| operation | p50 ms | p90 ms | min ms |");
    println!("|---|---|---|---|");
    for (name, samples) in table {
        let [p50, p90, min] = percentiles(samples);
        println!("| {name} | {p50:.0} | {p90:.0} | {min:.0} |");
    }
    Ok(())
}

type Table = Vec<(&'static str, Vec<Duration>)>;

async fn measure(
    rt: &DockerRuntime,
    unsettled: &DockerRuntime,
    owner: &OwnerId,
    runs: usize,
) -> anyhow::Result<Table> {
    let mut library = Vec::new();
    let mut cli = Vec::new();
    let mut cli_hardened = Vec::new();
    // Warm-up: the owner's network and the image's layers.
    let key = |i: usize| -> anyhow::Result<InstanceKey> {
        Ok(InstanceKey::new(owner.clone(), InstanceId::parse(&format!("i{i}"))?))
    };
    let warm = InstanceSpec::new(owner.clone(), key(0)?.name);
    rt.create(warm).await?;
    rt.start(&key(0)?).await?;
    let network = format!("kws.{owner}");
    for i in 1..=runs {
        let spec = InstanceSpec::new(owner.clone(), key(i)?.name);
        let t = Instant::now();
        rt.create(spec).await?;
        rt.start(&key(i)?).await?;
        library.push(t.elapsed());

        let name = format!("kws-timing-{}-{i}", std::process::id());
        cli.push(docker(&["run", "-d", "--name", &name, "--label", "kws.test=1", IMAGE]).await?);
        docker(&["rm", "-f", &name]).await?;
        let volume = format!("{name}-ws");
        let hardened = [
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "kws.test=1",
            "--network",
            &network,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--init",
            "--memory",
            "1g",
            "--memory-swap",
            "1g",
            "--cpus",
            "1",
            "--pids-limit",
            "512",
            "--user",
            "1000:1000",
            "--mount",
            &format!("type=volume,source={volume},target=/workspace"),
            "--label",
            "kws.test.volume=1",
            IMAGE,
        ];
        cli_hardened.push(docker(&hardened).await?);
        docker(&["rm", "-f", "-v", &name]).await?;
        docker(&["volume", "rm", "-f", &volume]).await?;
    }
    let mut redeploy = Vec::new();
    let mut redeploy_unsettled = Vec::new();
    for i in 0..runs {
        for (runtime, samples) in [(rt, &mut redeploy), (unsettled, &mut redeploy_unsettled)] {
            let change = Redeploy {
                env: Some([("GENERATION".to_owned(), i.to_string())].into()),
                ..Redeploy::default()
            };
            let t = Instant::now();
            runtime.redeploy(&key(0)?, change).await?;
            samples.push(t.elapsed());
        }
    }
    Ok(vec![
        ("library create+start", library),
        ("docker run -d (CLI, plain)", cli),
        ("docker run -d (CLI, same hardening, network, volume)", cli_hardened),
        ("library redeploy (includes the settle time)", redeploy),
        ("library redeploy, settle time 0", redeploy_unsettled),
    ])
}

/// Runs the docker CLI; how long it took.
async fn docker(args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out =
        tokio::process::Command::new("docker").args(args).stdin(Stdio::null()).output().await?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    if samples.is_empty() { [0.0; 3] } else { [at(0.5), at(0.9), ms(samples[0])] }
}
