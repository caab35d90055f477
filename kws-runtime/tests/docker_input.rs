//! Hostile input: typed errors, and nothing left on the engine or in the allocator.

mod docker_env;

use std::collections::HashMap;

use bollard::{models::ContainerCreateBody, query_parameters::CreateContainerOptions};
use docker_env::{BUSYBOX, TestEnv};
use kws_core::{InstanceId, OwnerId};
use kws_ipam::IpAllocator;
use kws_runtime::{Error, ImageRef, InstanceKey, InstanceSpec, Runtime, VolumePolicy, testkit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_leave_no_network_container_volume_or_lease() {
    let Some(env) = TestEnv::new().await else { return };
    let owner = env.owner().clone();
    // A fresh owner: not even its network appears.
    testkit::bad_specs(env.rt.as_ref(), &env.fixture()).await;
    assert_eq!(env.rt.owner_network(&owner).await.expect("network"), None, "no network");
    assert_eq!(env.objects_of(&owner).await, (vec![], vec![]), "no container, no volume");
    assert_eq!(env.leases().await, 0, "no lease");

    // An owner with a network and an instance: the bad specs add nothing to it.
    let ok = InstanceSpec::new(owner.clone(), InstanceId::parse("ok").expect("name"));
    let ok = env.rt.create(ok).await.expect("create");
    let net = env.rt.owner_network(&owner).await.expect("network").expect("made");
    testkit::bad_specs(env.rt.as_ref(), &env.fixture()).await;
    let again = env.rt.create(InstanceSpec::new(owner.clone(), ok.key.name.clone())).await;
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    let (containers, volumes) = env.objects_of(&owner).await;
    assert_eq!(containers, vec![format!("/kws.{owner}.ok")]);
    assert_eq!(volumes, vec![format!("kws.{owner}.ok.workspace")]);
    assert_eq!(env.allocator.usage(&net.pool).await.expect("usage").allocated, 1, "one lease");
    assert_eq!(env.leases().await, 1, "and no other anywhere");
    env.rt.remove(&ok.key, VolumePolicy::Delete).await.expect("remove");
    assert_eq!(env.allocator.usage(&net.pool).await.expect("usage").allocated, 0);
    assert_eq!(env.objects_of(&owner).await, (vec![], vec![]));
}

#[test]
fn invalid_names_and_images_are_typed_errors() {
    for bad in ["", "a;b", "../x", "a/b", "x y", "-a", "a-", "$(id)", "a\nb", "é", &"a".repeat(64)]
    {
        assert!(OwnerId::parse(bad).is_err(), "owner {bad:?}");
        assert!(InstanceId::parse(bad).is_err(), "instance {bad:?}");
    }
    let json = r#"{"owner":"alice","name":"x;rm -rf /"}"#;
    assert!(serde_json::from_str::<InstanceSpec>(json).is_err(), "a spec with a bad name");
    let e = Error::from(InstanceId::parse("a;b").expect_err("bad"));
    assert!(matches!(e, Error::InvalidName(_)) && e.to_string().contains("a;b"), "{e}");
    for bad in
        ["", " busybox", "busybox; rm", "a/../b", "-v", "x\0", "img`id`", "a b", &"a".repeat(256)]
    {
        let e = ImageRef::parse(bad).expect_err(bad);
        assert!(matches!(e, Error::InvalidSpec { field: "image", .. }), "{e}");
    }
    assert!(ImageRef::parse("registry.example:5000/team/ide:4.1@sha256:abc").is_ok());
}

/// A container under the runtime's naming scheme but without `kws.managed` is invisible and
/// untouched; a create that collides with it fails and takes back the network, lease and volume
/// it had made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_containers_are_never_touched() {
    let Some(env) = TestEnv::new().await else { return };
    let owner = env.owner().clone();
    let name = format!("kws.{owner}.stranger");
    let mut labels: HashMap<String, String> = kws_testenv::test_labels();
    labels.insert("kws.owner".into(), owner.to_string());
    labels.insert("kws.instance".into(), "stranger".into());
    let body = ContainerCreateBody {
        image: Some(BUSYBOX.into()),
        labels: Some(labels),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    env.docker.create_container(Some(options), body).await.expect("create the stranger");

    let key = InstanceKey::new(owner.clone(), InstanceId::parse("stranger").expect("name"));
    assert!(matches!(env.rt.inspect(&key).await, Err(Error::NotFound { .. })));
    assert!(matches!(env.rt.start(&key).await, Err(Error::NotFound { .. })));
    assert!(matches!(env.rt.remove(&key, VolumePolicy::Delete).await, Err(Error::NotFound { .. })));
    assert!(env.rt.list(&owner).await.expect("list").is_empty());

    let spec = InstanceSpec::new(owner.clone(), key.name.clone());
    let r = env.rt.create(spec).await;
    assert!(matches!(r, Err(Error::Unmanaged(_))), "{r:?}");
    assert_eq!(env.rt.owner_network(&owner).await.expect("network"), None, "network taken back");
    let (containers, volumes) = env.objects_of(&owner).await;
    assert_eq!((containers, volumes), (vec![format!("/{name}")], vec![]), "volume taken back");
    assert_eq!(env.leases().await, 0, "lease taken back");
    let still = env
        .docker
        .inspect_container(&name, None::<bollard::query_parameters::InspectContainerOptions>)
        .await;
    assert!(still.is_ok(), "the stranger is still there");
}
