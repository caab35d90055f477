//! Running `nginx -t` and `nginx -s reload`.

use std::path::Path;

use tokio::process::Command;

use crate::nginx::{NginxConfig, workers};

/// `nginx -t -c <config> -p <prefix>`; `Err` carries what nginx printed.
pub(crate) async fn test(config: &NginxConfig, conf: &Path) -> Result<(), String> {
    run(config, &["-t", "-q"], conf).await
}

/// `nginx -s reload -c <main> -p <prefix>` (signals the master named by the `pid` file), then
/// waits until the master's new workers serve and the old ones stopped accepting. nginx's
/// master waits 100 ms after starting new workers before it stops the old ones, so a reload
/// takes at least that long.
pub(crate) async fn reload(config: &NginxConfig) -> Result<(), String> {
    let master = workers::master(&config.pid_file);
    let before = master.map(workers::workers).unwrap_or_default();
    run(config, &["-s", "reload"], &config.main_config).await?;
    let Some(master) = master else { return Ok(()) };
    let timeout = config.reload_timeout;
    tokio::task::spawn_blocking(move || workers::wait_reloaded(master, &before, timeout))
        .await
        .map_err(|e| format!("waiting for the reload: {e}"))?
}

/// Whether the master named by the pid file runs (a pid file left by a crash may name a process
/// that is gone, or that is not nginx).
pub(crate) fn running(config: &NginxConfig) -> bool {
    workers::master(&config.pid_file).is_some_and(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|title| String::from_utf8_lossy(&title).contains("nginx"))
    })
}

async fn run(config: &NginxConfig, args: &[&str], conf: &Path) -> Result<(), String> {
    // `-e stderr`: nginx's early error log goes to us, not to its compiled-in log file.
    let output = Command::new(&config.binary)
        .args(["-e", "stderr"])
        .args(args)
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(&config.prefix)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", config.binary.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(format!("{} ({})", text.trim(), output.status))
    }
}
