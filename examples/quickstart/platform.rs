//! The Platform on embedded defaults: a tenant, a VPN device with its config and QR code, an
//! instance with its IDE route, a published app, the firewall the host would get, a
//! reconcile, the operations, and the tenant's deletion with everything it owned.

use kws::{
    core::OwnerId,
    platform::{AddDevice, LaunchInstance, Platform, PublishApp, Role, Scope, store::Quotas},
};

pub(crate) async fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== the Platform (every in-memory backend; the host network only planned)");
    let platform = Platform::embedded().await?;
    let operator = Scope::Operator;
    let alice = OwnerId::parse("alice")?;
    let quotas = Quotas { instances: Some(2), ..platform.settings().default_quotas };
    platform.create_tenant(&operator, alice.clone(), "Alice's team", Some(quotas)).await?;
    let member = Scope::tenant(alice.clone(), Role::Member);

    let device =
        platform.add_device(&member, &alice, AddDevice::named("laptop"), Some("k-laptop")).await?;
    let address = device.device.spec.ipv4.ok_or("the device has no address")?;
    println!("   alice's laptop is {address} on the VPN; its wg-quick config:\n");
    println!("{}", device.config.render());
    println!("{}", device.config.qr_text()?);

    let web =
        platform.launch_instance(&member, &alice, LaunchInstance::named("web")?, None).await?;
    let host = web.spec.address.ok_or("no address")?;
    println!("   instance web runs at {host}; its IDE: https://web.{}", platform.settings().domain);
    let app = PublishApp { name: "shop".into(), instance: "web".into(), port: 3000 };
    platform.publish_app(&member, &alice, app, None).await?;
    for route in platform.proxy().routes().await? {
        println!("   route https://{} -> {} ({:?})", route.host(), route.upstream(), route.kind());
    }
    let firewall = platform.hostnet().current().await?;
    for rule in firewall.isolation.iter().flat_map(|i| &i.peers) {
        println!("   firewall: peer {} may reach {:?} only", rule.address, rule.allowed);
    }

    // Refusals: a quota, another tenant's object, a hostile name. Nothing is made by them.
    platform.launch_instance(&member, &alice, LaunchInstance::named("db")?, None).await?;
    let refused = [
        platform
            .launch_instance(&member, &alice, LaunchInstance::named("third")?, None)
            .await
            .map(drop),
        platform
            .stop_instance(&Scope::tenant(OwnerId::parse("bob")?, Role::Admin), &alice, "web")
            .await
            .map(drop),
        platform.add_device(&member, &alice, AddDevice::named("a;b"), None).await.map(drop),
    ];
    for result in refused {
        match result {
            Ok(()) => return Err("a refusal was accepted".into()),
            Err(e) => println!("   refused ({:?}): {e}", e.kind()),
        }
    }
    let report = platform.reconcile().await?;
    println!(
        "   reconcile: nothing to change: {} ({:.1} ms)",
        report.changed_nothing(),
        report.took_ms
    );
    for op in platform.store().list_operations(&operator, Some(&alice), None, 10).await? {
        println!(
            "   operation {} {} {}: {} steps",
            op.kind,
            op.target,
            op.state.as_str(),
            op.steps.len()
        );
    }
    platform.delete_tenant(&operator, &alice).await?;
    let left = platform.proxy().routes().await?.len() + platform.runtime()?.list_all().await?.len();
    println!("   alice deleted: {left} routes and instances left\n");
    Ok(())
}
