//! Applies a kws-hostnet state file to this host with the Linux backend, and optionally keeps
//! it applied (reconcile loop) until SIGTERM or Ctrl-C. This is what the systemd unit in
//! `docs/hostnet-systemd.md` runs at boot.
//!
//! ```text
//! hostnet_apply STATE.toml              apply once, print what changed
//! hostnet_apply STATE.toml --watch 5    apply, then re-apply every 5 s (restores a flushed table)
//! hostnet_apply STATE.toml --teardown   remove everything kws created
//! hostnet_apply STATE.toml --plan       print the commands instead (changes nothing)
//! ```
//!
//! Changes the host's network: run it as root, on the router (or inside `ip netns exec NS`).
//! kws:example-needs-args

use std::{path::PathBuf, time::Duration};

use kws::hostnet::{HostNetState, HostNetwork, LinuxHostNetwork, plan, reconcile};

const CACHE_DIR: &str = "/run/kws-hostnet";

fn usage() -> ! {
    eprintln!("usage: hostnet_apply STATE_FILE [--watch SECONDS | --teardown | --plan]");
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else { usage() };
    let mode = args.next();
    let state = HostNetState::load(&path)?;
    match mode.as_deref() {
        Some("--plan") => {
            print!("{}", plan::render_apply(&state));
            return Ok(());
        }
        None | Some("--watch" | "--teardown") => {}
        Some(_) => usage(),
    }
    // /run is empty after a reboot, exactly when the ruleset is: the cache lets a restarted
    // service recognise the table it wrote and change nothing.
    let _ = std::fs::create_dir_all(CACHE_DIR);
    let network = LinuxHostNetwork::with_cache_file(format!("{CACHE_DIR}/table.json"))?;
    let rt = tokio::runtime::Runtime::new()?;
    match mode.as_deref() {
        Some("--teardown") => {
            rt.block_on(network.teardown())?;
            println!("kws-hostnet: removed kws's table, bridges and DOCKER-USER rule");
        }
        Some("--watch") => {
            let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            let report = rt.block_on(network.apply(&state))?;
            println!(
                "kws-hostnet: applied {} ({report:?}); watching every {secs} s",
                path.display()
            );
            let stats = rt.block_on(reconcile::reconcile_loop(
                &network,
                &state,
                Duration::from_secs(secs.max(1)),
                shutdown_signal(),
                |pass| match pass {
                    Ok(report) if report.changed_nothing() => {}
                    Ok(report) => eprintln!("kws-hostnet: host drifted, re-applied ({report:?})"),
                    Err(e) => eprintln!("kws-hostnet: reconcile pass failed: {e}"),
                },
            ));
            println!("kws-hostnet: stopped ({stats:?})");
        }
        _ => {
            let report = rt.block_on(network.apply(&state))?;
            println!("kws-hostnet: applied {} ({report:?})", path.display());
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
