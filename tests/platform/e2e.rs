//! The whole story on one host, in namespaces: alice's VPN client (wireguard-go in its own
//! namespace, configured only from the rendered file) reaches her instance's IDE port through
//! the tunnel and not bob's; her app is served by nginx over HTTPS with the wildcard
//! certificate; her database credentials, used from inside her instance, open her database
//! and are refused by bob's.

use std::collections::BTreeMap;

use kws::{
    platform::{AddDevice, LaunchInstance, PublishApp, Scope},
    runtime::{ExecRequest, InstanceKey},
};
use kws_testenv::{Netns, WgQuickClient, random_suffix};

use super::lab::{DB_ADDR, Lab, PYTHON, VPN_VETH};

const PROBE: &str = include_str!("pg_probe.py");

/// `GET http://<addr>:<port>/` from `ns`, within `seconds`.
fn http_from(ns: &Netns, addr: &str, port: u16, seconds: u32) -> Option<String> {
    let out = ns.exec([
        "curl",
        "-sS",
        "--max-time",
        &seconds.to_string(),
        &format!("http://{addr}:{port}/"),
    ]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alice_reaches_her_own_things_and_nothing_of_bob() {
    let Some(mut lab) = Lab::start().await else { return };
    let platform = lab.platform().clone();
    let p = &platform;
    let (alice, bob) = (lab.tenant_of("alice").await, lab.tenant_of("bob").await);
    let op = Scope::Operator;
    let alice_ide = p
        .launch_instance(
            &op,
            &alice,
            LaunchInstance::named(&format!("ide-{alice}")).expect("req"),
            None,
        )
        .await
        .expect("launch");
    let bob_ide = p
        .launch_instance(
            &op,
            &bob,
            LaunchInstance::named(&format!("ide-{bob}")).expect("req"),
            None,
        )
        .await
        .expect("launch");

    // The VPN: a client namespace joined to the server's by veth, configured from the file.
    let client = Netns::new().expect("client namespace");
    lab.engine.netns().veth_to(
        &client,
        ("kwsv0", &format!("{VPN_VETH}/30")),
        ("kwsvc0", "10.99.0.2/30"),
    );
    let device = p.add_device(&op, &alice, AddDevice::named("laptop"), None).await.expect("device");
    let config = device.config.render();
    assert!(config.contains(&format!("Endpoint = {VPN_VETH}:{}", lab.vpn_port)), "{config}");
    let wg_if = format!("kwsc{}", random_suffix(5));
    let _wg = WgQuickClient::start(&client, &wg_if, &config);
    let alice_addr = alice_ide.spec.address.expect("address").to_string();
    let bob_addr = bob_ide.spec.address.expect("address").to_string();
    let mut page = None;
    for _ in 0..20 {
        page = http_from(&client, &alice_addr, 8080, 2);
        if page.is_some() {
            break;
        }
    }
    let page = page.unwrap_or_else(|| {
        let server = lab.engine.netns();
        panic!(
            "alice's IDE port through the tunnel\nclient wg: {}\nserver wg: {}\nserver routes: {}\nclient routes: {}\nnft: {}\niptables: {}",
            client.run(["wg", "show"]),
            server.run(["wg", "show"]),
            server.run(["ip", "route"]),
            client.run(["ip", "route"]),
            server.run(["nft", "list", "table", "inet", "kws"]),
            server.run(["iptables", "-t", "raw", "-S"]),
        )
    });
    assert!(page.contains("kws IDE stand-in"), "{page}");
    assert!(
        http_from(&client, &bob_addr, 8080, 3).is_none(),
        "bob's instance is dropped for alice's device"
    );
    // Nor the host's other side: the VPN reaches only her instances.
    assert!(
        http_from(&client, "10.250.0.1", 5432, 2).is_none(),
        "the database address is not routed to peers"
    );

    // Her app, over HTTPS through nginx with the wildcard certificate.
    let web = format!("web-{alice}");
    let mut launch = LaunchInstance::named(&web).expect("req");
    launch.command = Some(["httpd", "-f", "-p", "3000", "-h", "/www"].map(String::from).to_vec());
    launch.app_ports = vec![3000];
    p.launch_instance(&op, &alice, launch, None).await.expect("launch web");
    let shop = format!("shop-{alice}");
    p.publish_app(&op, &alice, PublishApp { name: shop.clone(), instance: web, port: 3000 }, None)
        .await
        .expect("publish");
    let (ok, body) = lab.https_get(&shop, "/");
    assert!(ok && body.contains("kws IDE stand-in") && body.ends_with("200"), "{body}");

    // Databases: alice's credentials work from inside her instance, on her database only.
    let py = format!("py-{alice}");
    let mut launch = LaunchInstance::named(&py).expect("req");
    launch.image = Some(PYTHON.to_owned());
    launch.command = Some(["sleep", "3600"].map(String::from).to_vec());
    p.launch_instance(&op, &alice, launch, None).await.expect("launch python");
    let mine = p
        .create_database(&op, &alice, "shop", None)
        .await
        .expect("alice's db")
        .credentials
        .expect("credentials");
    let theirs = p
        .create_database(&op, &bob, "shop", None)
        .await
        .expect("bob's db")
        .credentials
        .expect("credentials");
    assert_eq!(mine.host, DB_ADDR.to_string());
    let probe = |database: &str| {
        let mut env = BTreeMap::new();
        env.insert("PGHOST".to_owned(), mine.host.clone());
        env.insert("PGPORT".to_owned(), mine.port.to_string());
        env.insert("PGUSER".to_owned(), mine.role.clone());
        env.insert("PGPASSWORD".to_owned(), mine.password.expose().to_owned());
        env.insert("PGDATABASE".to_owned(), database.to_owned());
        let mut request = ExecRequest::new(["python3", "-c", PROBE]);
        request.env = env;
        request
    };
    let key = InstanceKey::new(alice.clone(), py.parse().expect("name"));
    let runtime = p.runtime().expect("runtime");
    let out = runtime.exec(&key, probe(&mine.database)).await.expect("exec");
    assert_eq!(out.stdout_text().trim(), format!("OK {}", mine.database), "{}", out.stderr_text());
    let out = runtime.exec(&key, probe(&theirs.database)).await.expect("exec");
    let refused = out.stdout_text();
    assert!(
        refused.starts_with("ERROR 42501"),
        "bob's database refuses alice's role: {refused} {}",
        out.stderr_text()
    );

    // The wildcard certificate from a real ACME server (pebble), issued by reconcile (a
    // restarted Platform with an issuer) and installed in nginx.
    drop(platform);
    let pebble_dir = lab.tmp.path().join("pebble");
    let pebble = kws_testenv::Pebble::start(&pebble_dir).expect("pebble");
    let report = lab.use_pebble(&pebble).await.reconcile().await.expect("reconcile");
    assert!(report.certificate_renewed.is_some(), "{report:?}");
    let root = pebble.root();
    let (ok, body) = lab.https_get_trusting(&shop, "/", &root);
    assert!(ok && body.contains("kws IDE stand-in"), "served with pebble's certificate: {body}");
    let (ok, _) = lab.https_get(&shop, "/");
    assert!(!ok, "the self-signed certificate is no longer what nginx serves");
}
