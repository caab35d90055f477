//! Public hosting: routes `<app>.<domain>` and `<instance>.<domain>` (IDE) to upstreams, in
//! memory here; the nginx backend writes, validates and reloads one file per route.

use kws::proxy::{MemoryProxy, ProxyWriter, Route, RoutePolicy};

pub(crate) fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== proxy: public routes (in-memory ProxyWriter) ==");
    let policy = RoutePolicy::new("kwscloud.in".parse()?, ["10.88.0.0/16".parse()?]);
    let proxy = MemoryProxy::new(policy);
    tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
        let app = proxy.policy().host("shop.kwscloud.in")?;
        let ide = proxy.policy().host("ws-42.kwscloud.in")?;
        proxy.publish(Route::app(app.clone(), "10.88.0.12:8080".parse()?)).await?;
        proxy.publish(Route::ide(ide, "10.88.0.42:8443".parse()?)).await?;
        for route in proxy.routes().await? {
            println!(
                "  https://{} -> {} ({:?}, websocket: {}, tls: {})",
                route.host(),
                route.upstream(),
                route.kind(),
                route.websocket(),
                route.tls()
            );
        }
        let refused = [
            proxy.policy().host("shop;}.kwscloud.in").map(|_| ()),
            proxy.policy().host("shop.evil.example").map(|_| ()),
            proxy.publish(Route::app(app.clone(), "192.0.2.1:80".parse()?)).await,
            proxy.publish(Route::app(app, "10.88.0.13:8080".parse()?)).await,
        ];
        for err in refused.into_iter().filter_map(Result::err) {
            println!("  refused: {err}");
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    println!();
    Ok(())
}
