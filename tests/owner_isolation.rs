//! Owners' instance networks kept apart by kws's own firewall, as the Platform composes it: the
//! runtime lists its owner bridges, kws-hostnet drops traffic routed between them in `table inet
//! kws`. Docker's own isolation chains are rewritten by the engine every time a network is
//! created, and traffic crosses owners while they are; kws's table is replaced only as a whole,
//! in one nftables transaction, so no such window exists.
//!
//! The Docker engine here runs inside a network namespace this test made
//! ([`kws_testenv::NetnsDocker`]): its bridges and every netfilter rule, Docker's and kws's, are
//! in that namespace, and the test may flush Docker's chains there to hold the window open.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use kws::{
    core::{InstanceId, OwnerId},
    hostnet::{HostNetSpec, HostNetState, HostNetwork, LinuxHostNetwork},
    ipam::MemoryAllocator,
    runtime::{
        ExecRequest, ImageRef, InstanceInfo, InstanceKey, InstanceSpec, Runtime, VolumePolicy,
        docker::{DockerConfig, DockerRuntime, IdeConfig},
    },
};
use kws_testenv::NetnsDocker;

const BUSYBOX: &str = "kws-test/busybox:1";
const IDE_PORT: u16 = 8080;

fn config() -> DockerConfig {
    let ide = IdeConfig { image: ImageRef::parse(BUSYBOX).expect("image"), port: IDE_PORT };
    let mut config = DockerConfig::new(ide);
    config.extra_labels = kws_testenv::test_labels().into_iter().collect();
    config.stop_timeout = Duration::from_secs(2);
    config
}

/// Creates and starts an instance in the order a Platform follows: when a firewall is given,
/// the table is re-applied with the owner's (possibly new) bridge after `create` made the
/// network and before `start` puts anything on it.
async fn launch(
    rt: &DockerRuntime,
    firewall: Option<&LinuxHostNetwork>,
    owner: &OwnerId,
    name: &str,
) -> InstanceInfo {
    let spec = InstanceSpec::new(owner.clone(), InstanceId::parse(name).expect("name"));
    let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
    rt.create(spec).await.expect("create");
    if let Some(firewall) = firewall {
        firewall.apply(&isolation_state(rt).await).await.expect("apply");
    }
    rt.start(&key).await.expect("start");
    rt.inspect(&key).await.expect("inspect")
}

/// Whether `from` gets an HTTP answer from `to`'s IDE port (one try, 1 s to connect).
async fn reaches(rt: &DockerRuntime, from: &InstanceInfo, to: &InstanceInfo) -> bool {
    let probe = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {} {IDE_PORT}", to.address);
    let out = rt.exec(&from.key, ExecRequest::new(["sh", "-c", &probe])).await.expect("exec");
    out.stdout_text().starts_with("HTTP/1.")
}

/// `GET /` from the engine's namespace (the host side of the bridges) to `addr`'s IDE port.
fn host_get(engine: &NetnsDocker, addr: Ipv4Addr) -> Result<String, String> {
    engine.netns().enter(move || {
        let target = SocketAddr::from((addr, IDE_PORT));
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        Ok(answer)
    })
}

/// The firewall state a Platform derives from the runtime: every owner bridge isolated.
async fn isolation_state(rt: &DockerRuntime) -> HostNetState {
    let networks = rt.owner_networks().await.expect("owner networks");
    let spec = HostNetSpec {
        isolated_bridges: networks.into_iter().map(|(_, net)| net.bridge).collect(),
        ..HostNetSpec::default()
    };
    HostNetState::new(spec).expect("state")
}

/// A plain network (not an owner's) in `10.99.<i>.0/24`: creating it makes the engine rewrite
/// its isolation chains.
fn churn_network(i: u8) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: format!("churn-{i}"),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(format!("10.99.{i}.0/24")),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        labels: Some(HashMap::from([("kws.test".to_owned(), "1".to_owned())])),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_bridges_stay_apart_while_docker_rewrites_its_chains() {
    let Some(host_engine) = kws_testenv::docker().await else { return };
    let host_engine = host_engine.negotiate_version().await.expect("API version");
    let Some(engine) = NetnsDocker::start().await else { return };
    engine.copy_image(&host_engine, BUSYBOX).await;
    let allocator = Arc::new(MemoryAllocator::new());
    let rt = DockerRuntime::with_client(engine.client().clone(), allocator, config())
        .await
        .expect("runtime");
    let (a, b) = (OwnerId::parse("alice").expect("id"), OwnerId::parse("bob").expect("id"));
    let a1 = launch(&rt, None, &a, "a1").await;
    let a2 = launch(&rt, None, &a, "a2").await;
    let b1 = launch(&rt, None, &b, "b1").await;
    assert!(reaches(&rt, &a2, &a1).await, "an owner's instances reach each other");

    // Docker's isolation as it is while the engine rewrites it: flushed. Owners now cross.
    engine.netns().run(["iptables", "-F", "DOCKER-ISOLATION-STAGE-1"]);
    assert!(
        reaches(&rt, &a1, &b1).await,
        "control: without Docker's chains and without kws's table, A reaches B"
    );

    let firewall = engine.netns().enter(LinuxHostNetwork::new).expect("hostnet backend");
    let state = isolation_state(&rt).await;
    assert_eq!(state.isolated_bridges.len(), 2, "both owner bridges: {state:?}");
    firewall.apply(&state).await.expect("apply");
    assert!(!reaches(&rt, &a1, &b1).await, "A reaches B through kws's table");
    assert!(!reaches(&rt, &b1, &a1).await, "B reaches A through kws's table");
    assert!(reaches(&rt, &a2, &a1).await, "same-owner traffic (bridged) still flows");
    let answer = host_get(&engine, a1.address);
    assert!(answer.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.")), "host to IDE: {answer:?}");
    assert_eq!(firewall.current().await.expect("read back"), state, "the live table reads back");

    // Networks created and removed while probing, and the table re-applied with each new owner
    // bridge as a Platform does: A never reaches B.
    let c = OwnerId::parse("carol").expect("id");
    let churn = {
        let docker = engine.client().clone();
        tokio::spawn(async move {
            for i in 0..12u8 {
                docker.create_network(churn_network(i)).await.expect("create network");
                if i >= 2 {
                    docker.remove_network(&format!("churn-{}", i - 2)).await.expect("remove");
                }
            }
            for i in 10..12u8 {
                docker.remove_network(&format!("churn-{i}")).await.expect("remove");
            }
        })
    };
    let c1 = launch(&rt, Some(&firewall), &c, "c1").await;
    assert_eq!(firewall.current().await.expect("read back").isolated_bridges.len(), 3);
    let mut crossed = 0;
    for _ in 0..8 {
        for (from, to) in [(&a1, &b1), (&b1, &a1), (&c1, &a1), (&a1, &c1)] {
            crossed += usize::from(reaches(&rt, from, to).await);
        }
    }
    churn.await.expect("churn task");
    assert_eq!(crossed, 0, "probes that crossed owners while networks changed");
    assert!(reaches(&rt, &a2, &a1).await, "same-owner traffic after the churn");

    for info in [a1, a2, b1, c1] {
        rt.remove(&info.key, VolumePolicy::Delete).await.expect("remove");
    }
    for owner in [&a, &b, &c] {
        rt.remove_network(owner).await.expect("remove network");
    }
    assert!(rt.owner_networks().await.expect("list").is_empty(), "no owner network left");
    firewall.teardown().await.expect("teardown");
}
