//! Drift: things removed behind the Platform's back on the real engines: a container, kws's
//! nftables table, a route in nginx's table (the proxy keeps routes in nginx's shared table,
//! not in files), a peer on the interface. One reconcile restores each, and its report names
//! each.

use std::collections::HashMap;

use bollard::query_parameters::RemoveContainerOptions;
use kws::platform::{AddDevice, LaunchInstance, PublishApp, Scope};

use super::lab::{DOMAIN, Lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_reconcile_restores_a_container_the_table_a_route_and_a_peer() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    let web = format!("web-{alice}");
    let shop = format!("shop-{alice}");
    p.launch_instance(&op, &alice, LaunchInstance::named(&web).expect("req"), None)
        .await
        .expect("launch");
    p.publish_app(
        &op,
        &alice,
        PublishApp { name: shop.clone(), instance: web.clone(), port: 8081 },
        None,
    )
    .await
    .expect("publish");
    let device = p.add_device(&op, &alice, AddDevice::named("laptop"), None).await.expect("device");
    assert!(
        p.reconcile().await.expect("reconcile").changed_nothing(),
        "a fresh platform has no drift"
    );
    let (ok, page) = lab.https_get(&web, "/");
    assert!(ok && page.contains("kws IDE stand-in"), "{page}");

    // By hand: the container, kws's table, the app's route file, the interface peer.
    let force = RemoveContainerOptions { force: true, ..Default::default() };
    lab.engine
        .client()
        .remove_container(&format!("kws.{alice}.{web}"), Some(force))
        .await
        .expect("rm");
    lab.engine.netns().run(["nft", "delete", "table", "inet", "kws"]);
    let route = format!("{shop}.{DOMAIN}");
    assert!(lab.served_hosts().contains(&route), "nginx serves the app");
    lab.remove_served_by_hand(&route);
    assert!(!lab.served_hosts().contains(&route), "removed by hand");
    let key = device.device.spec.public_key.clone();
    let wg = &lab.spec.wg_interface;
    lab.engine.netns().run(["wg", "set", wg, "peer", &key, "remove"]);

    let report = p.reconcile().await.expect("reconcile");
    assert_eq!(report.instances_recreated, [format!("{alice}/{web}")], "{report:?}");
    assert!(report.firewall_replaced, "{report:?}");
    assert_eq!(report.routes_repaired, std::slice::from_ref(&route), "{report:?}");
    assert_eq!(report.interface_added, [key], "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let again = p.reconcile().await.expect("second reconcile");
    assert!(again.changed_nothing(), "{again:?}");
    assert!(lab.served_hosts().contains(&route), "nginx serves the app again");
    let (ok, page) = lab.https_get(&web, "/");
    assert!(ok && page.contains("kws IDE stand-in"), "the IDE serves again: {page}");
    let nft = p.hostnet().current().await.expect("nft");
    assert_eq!(
        nft.isolation.as_ref().expect("isolation").peers.len(),
        1,
        "the device's rule is back"
    );
    let labels = HashMap::from([("label".to_owned(), vec![format!("kws.owner={alice}")])]);
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(labels),
        ..Default::default()
    };
    assert_eq!(lab.engine.client().list_containers(Some(options)).await.expect("list").len(), 1);

    // A kws-labelled container without a record is an orphan: removed, and named.
    let ghost = kws::runtime::InstanceSpec::new(alice.clone(), "ghost".parse().expect("name"));
    p.runtime().expect("runtime").create(ghost).await.expect("orphan");
    let report = p.reconcile().await.expect("reconcile");
    assert_eq!(report.orphans_removed, [format!("{alice}/ghost")], "{report:?}");
}
