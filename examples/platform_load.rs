//! The Platform's figures on real parts (the lab of `tests/platform`: a Docker engine, kws's
//! nftables table, wireguard-go and nginx in a namespace of their own, PostgreSQL for the
//! store, the allocator, the peers and the databases):
//!
//! - launch end to end (record, container, firewall, start, IDE route, observed) beside the
//!   bare runtime's create + start on the same engine, alternating, p50 of each and the ratio;
//! - add a device (record, leases, peer row, interface, firewall, config), p50;
//! - reconcile with K instances, K devices and K apps (the runtime in memory here: a 2-core
//!   machine cannot run a thousand containers): a pass that finds nothing to change, and a
//!   pass after one change (a route removed by hand), p50 of each.
//!
//! `cargo run --release --example platform_load --all-features -- --launches 20 --devices 50
//! --reconcile 1000` as root with the services of `scripts/services` (default 3, 10 and 50).

#[path = "../tests/platform/lab.rs"]
mod lab;
#[path = "support/stats.rs"]
mod stats;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kws::{
    core::{InstanceId, OwnerId},
    platform::{AddDevice, LaunchInstance, Platform, PublishApp, Scope, store::Quotas},
    runtime::{ImageRef, InstanceKey, InstanceSpec, MemoryRuntime, VolumePolicy},
};
use stats::{ms, percentile};

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            Ok(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("{name} needs a number"))?.parse()?)
        }
        None => Ok(default),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| !["--launches", "--devices", "--reconcile"].contains(&a.as_str()))
    {
        anyhow::bail!(
            "unknown argument {unknown:?} (usage: --launches N --devices M --reconcile K)"
        );
    }
    let (launches, devices, size) = (
        arg(&args, "--launches", 3)?,
        arg(&args, "--devices", 10)?,
        arg(&args, "--reconcile", 50)?,
    );
    let Some(mut lab) = lab::Lab::start().await else {
        anyhow::bail!("the lab needs root, Docker and PostgreSQL")
    };
    let op = Scope::Operator;
    let tenant = lab.tenant_of("load").await;
    let unlimited = Quotas::default();
    let t = lab.platform().store().get_tenant(&op, &tenant).await?;
    lab.platform().set_quotas(&op, &tenant, t.version, unlimited).await?;
    launch_overhead(&lab, &tenant, launches).await?;
    device_adds(lab.platform(), &tenant, devices).await?;
    reconcile_at(&mut lab, size).await?;
    Ok(())
}

async fn launch_overhead(lab: &lab::Lab, tenant: &OwnerId, rounds: usize) -> anyhow::Result<()> {
    let p = lab.platform();
    let runtime = p.runtime()?.clone();
    // An instance that stays, so the tenant's network exists for both kinds of launch.
    let anchor = format!("anchor-{}", tenant.as_str());
    p.launch_instance(&Scope::Operator, tenant, LaunchInstance::named(&anchor)?, None).await?;
    let (mut bare, mut full) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let name = format!("bare-{i}");
        let mut spec = InstanceSpec::new(tenant.clone(), InstanceId::parse(&name)?);
        spec.image = Some(ImageRef::parse(lab::BUSYBOX)?);
        let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
        let started = Instant::now();
        runtime.create(spec).await?;
        runtime.start(&key).await?;
        bare.push(started.elapsed());
        runtime.purge(&key, VolumePolicy::Delete).await?;
        let name = format!("full-{i}-{}", tenant.as_str());
        let started = Instant::now();
        p.launch_instance(&Scope::Operator, tenant, LaunchInstance::named(&name)?, None).await?;
        full.push(started.elapsed());
        p.remove_instance(&Scope::Operator, tenant, &name).await?;
    }
    p.remove_instance(&Scope::Operator, tenant, &anchor).await?;
    let (b, f) = (percentile(&mut bare, 0.5), percentile(&mut full, 0.5));
    println!(
        "launch: platform p50 {:.1} ms, bare create+start p50 {:.1} ms, ratio {:.2} (n={rounds})",
        ms(f),
        ms(b),
        f.as_secs_f64() / b.as_secs_f64()
    );
    Ok(())
}

async fn device_adds(p: &Platform, tenant: &OwnerId, n: usize) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        p.add_device(&Scope::Operator, tenant, AddDevice::named(&format!("dev-{i}")), None).await?;
        times.push(started.elapsed());
    }
    let (p50, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));
    println!("add device: p50 {:.1} ms, p99 {:.1} ms (n={n})", ms(p50), ms(p99));
    for i in 0..n {
        p.revoke_device(&Scope::Operator, tenant, &format!("dev-{i}")).await?;
    }
    Ok(())
}

async fn reconcile_at(lab: &mut lab::Lab, size: usize) -> anyhow::Result<()> {
    // One writer of nginx's folder at a time: the lab's Platform goes, this one comes.
    lab.release();
    // Its own instance range: the Docker runtime's pools hold 10.213.0.0/16 in the shared
    // allocator.
    let mut parts =
        lab.spec.parts(|s| s.instance_range = "10.214.0.0/16".parse().expect("range")).await;
    let image = ImageRef::parse(lab::BUSYBOX)?;
    let memory = MemoryRuntime::with_range(
        parts.allocator.clone(),
        image,
        parts.settings.instance_range,
        // One tenant holds every instance here: a /20 of 4,094 addresses.
        20,
    );
    parts.runtime = kws::platform::Backend::Ready(Arc::new(memory));
    let p = Platform::new(parts);
    let op = Scope::Operator;
    let tenant = OwnerId::parse(&format!("big-{}", kws_testenv::random_suffix(4)))?;
    p.create_tenant(&op, tenant.clone(), "big", Some(Quotas::default())).await?;
    let setup = Instant::now();
    for i in 0..size {
        let name = format!("i{i}-{tenant}");
        let mut launch = LaunchInstance::named(&name)?;
        launch.memory_mb = Some(16);
        p.launch_instance(&op, &tenant, launch, None).await?;
        p.publish_app(
            &op,
            &tenant,
            PublishApp { name: format!("a{i}-{tenant}"), instance: name, port: 3000 },
            None,
        )
        .await?;
        p.add_device(&op, &tenant, AddDevice::named(&format!("d{i}")), None).await?;
    }
    println!(
        "reconcile setup: {size} instances, apps and devices in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let first = p.reconcile().await?;
    anyhow::ensure!(first.errors.is_empty(), "reconcile errors: {:?}", first.errors);
    let mut unchanged = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let report = p.reconcile().await?;
        unchanged.push(started.elapsed());
        anyhow::ensure!(report.changed_nothing(), "an unchanged pass changed: {report:?}");
    }
    let mut one_change = Vec::new();
    for i in 0..7 {
        let host = format!("a{i}-{tenant}.{}", p.settings().domain).parse()?;
        p.proxy().unpublish(&host).await?;
        let started = Instant::now();
        let report = p.reconcile().await?;
        one_change.push(started.elapsed());
        anyhow::ensure!(report.routes_published.len() == 1, "one route put back: {report:?}");
    }
    println!(
        "reconcile with {size} instances, {size} devices, {size} apps: unchanged p50 {:.1} ms, one change p50 {:.1} ms",
        ms(percentile(&mut unchanged, 0.5)),
        ms(percentile(&mut one_change, 0.5))
    );
    p.delete_tenant(&op, &tenant).await?;
    let _ = Duration::ZERO;
    Ok(())
}
