//! A real VS Code (code-server, the `kws/ide:1` image built by scripts/images) in every
//! instance, in headless Chromium, through the dashboard's sign-in, the IDE gate and nginx
//! over HTTPS: alice signs in, opens the IDE from the instance's page, the workbench loads,
//! a terminal runs a command (the WebSocket works) that writes a file into the workspace,
//! and the file is still there after a redeploy. Prints launch-to-workbench time and the
//! container's memory idle and with the window open.
//!
//! Skips loudly without Chromium, PostgreSQL, Docker, nginx or the image; fails under
//! `KWS_TEST_REQUIRE=1`.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use fantoccini::{Locator, key::Key};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    browser::{Driver, Tab, chromium_installed},
    ide::Stage,
    server::{Auth, Client},
};

/// The IDE image.
const IDE_IMAGE: &str = "kws/ide:1";

/// `docker <args>` on the test engine; its stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The memory the container of `tenant`'s `name` uses now, in MiB (its cgroup's count).
fn memory_mib(tenant: &str, name: &str) -> f64 {
    let used = docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}",
        &format!("kws.{tenant}.{name}"),
    ]);
    let first = used.split('/').next().unwrap_or("").trim();
    let (number, unit) =
        first.split_at(first.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(first.len()));
    let n: f64 = number.trim().parse().unwrap_or(f64::NAN);
    match unit {
        "GiB" => n * 1024.0,
        "KiB" => n / 1024.0,
        _ => n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_vs_code_through_the_platforms_sign_in() {
    if !chromium_installed() {
        let _: Option<()> =
            kws_testenv::unavailable("Chromium", "chromedriver or chromium is not installed");
        return;
    }
    let Some((_engine, stage)) = Stage::on_docker(IDE_IMAGE).await else { return };
    let alice = stage.login("alice").await;
    let name = format!("code{}", kws_testenv::random_suffix(4));
    let launched = Instant::now();
    stage.launch(&alice, &name).await;
    let running = launched.elapsed();

    let kwsd_port: u16 =
        stage.kwsd.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let driver = Driver::start(&[kwsd_port, stage.https()]);
    driver.go_online();
    let session = driver.session_with(&["--ignore-certificate-errors"]).await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let tab = Tab { s: &session, base: &stage.kwsd.base, shots, violations: Vec::new() };
    tab.sign_in("alice", "alice-password-123").await;
    let idle = memory_mib(&stage.acme, &name);

    // The terminal draws into the DOM (not a canvas), so its text can be read: a setting of
    // alice's, in the workspace the image seeded.
    let container = format!("kws.{}.{name}", stage.acme);
    let settings = "/workspace/.kws/ide/data/User/settings.json";
    let dom = r#"1a\  "terminal.integrated.gpuAcceleration": "off","#;
    docker(&["exec", &container, "sed", "-i", dom, settings]);
    assert!(docker(&["exec", &container, "cat", settings]).contains("gpuAcceleration"));

    // "Open the IDE" on the instance's page (in this tab, not a new one).
    tab.goto(&format!("/t/{}/instances/{name}", stage.acme)).await;
    let link = format!("a[href='/ide/{name}']");
    tab.find(&link).await;
    tab.js(&format!("document.querySelector(\"{link}\").removeAttribute('target'); return true;"))
        .await;
    tab.click(&link).await;
    // The workbench, then its explorer: the server answered over the WebSocket.
    tab.find(".monaco-workbench").await;
    tab.find(".explorer-folders-view, .explorer-viewlet").await;
    let usable = launched.elapsed();
    let url = session.current_url().await.expect("url");
    assert_eq!(url.host_str(), Some(format!("{name}.kws.test").as_str()), "{url}");
    assert_eq!(url.scheme(), "https");
    assert!(!url.as_str().contains("ticket"), "the ticket left the address bar: {url}");

    // A terminal: Ctrl+` opens it; a command writes a file into the workspace and prints.
    let body = tab.find("body").await;
    let open: String = [char::from(Key::Control), '`', char::from(Key::Null)].iter().collect();
    body.send_keys(&open).await.expect("open the terminal");
    tab.find(".xterm-helper-textarea").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let marker = format!("kws-term-{}", kws_testenv::random_suffix(6));
    let command = format!(
        "echo {marker} > /workspace/made-in-ide.txt; echo ok-$((6*7))-{marker}{}",
        char::from(Key::Enter)
    );
    let mut typed_at: Option<Instant> = None;
    let file = loop {
        // Typed again if the shell was not ready to read it yet (the command is idempotent).
        if typed_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            if let Ok(terminal) = session.find(Locator::Css(".xterm")).await {
                let _ = terminal.click().await;
            }
            if let Ok(area) = session.active_element().await {
                if area.send_keys(&command).await.is_ok() {
                    typed_at = Some(Instant::now());
                }
            }
        }
        let found = docker(&["exec", &container, "cat", "/workspace/made-in-ide.txt"]);
        if found == marker {
            break found;
        }
        if Instant::now() > deadline {
            tab.failure_shot().await;
            panic!("the terminal's command did not run");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(file, marker);
    // Its output on the screen (the DOM renderer's rows).
    let shown = tab.text_when(".xterm-rows", |t| t.contains(&format!("ok-42-{marker}"))).await;
    assert!(shown.contains("ok-42"), "{shown}");
    let open_window = memory_mib(&stage.acme, &name);
    tab.shot("ide").await;

    // A redeploy keeps the workspace, with the file and the IDE's settings.
    let client = Client::new(&stage.kwsd.base, Auth::Cookie(alice.clone()));
    let route = format!("/api/v1/tenants/{}/instances/{name}/redeploy", stage.acme);
    client.send(Method::POST, &route, Some(json!({}))).await.expect(StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kept = docker(&["exec", &container, "cat", "/workspace/made-in-ide.txt"]);
        if kept == marker {
            break;
        }
        assert!(Instant::now() < deadline, "the file is gone after the redeploy: {kept:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let kept = docker(&["exec", &container, "cat", settings]);
    let both = kept.contains("chat.disableAIFeatures") && kept.contains("gpuAcceleration");
    assert!(both, "the image's settings and alice's survive: {kept}");
    eprintln!(
        "ide: launch to running {:.1} s, to a usable workbench {:.1} s; memory idle {idle:.0} MiB, \
         with one window and a terminal {open_window:.0} MiB",
        running.as_secs_f64(),
        usable.as_secs_f64()
    );
    // Launch to a usable IDE, again on fresh instances with the browser signed in: from the
    // launch request to the workbench's explorer showing the workspace's files (which the
    // server sends over the WebSocket).
    let mut samples = Vec::new();
    for round in 0..LAUNCH_SAMPLES {
        let fresh = format!("{name}x{round}");
        let start = Instant::now();
        stage.launch(&alice, &fresh).await;
        tab.goto(&format!("/ide/{fresh}")).await;
        tab.find(".explorer-folders-view .monaco-list-row").await;
        samples.push(start.elapsed());
        let route = format!("/api/v1/tenants/{}/instances/{fresh}", stage.acme);
        client.send(Method::DELETE, &route, None).await.expect(StatusCode::NO_CONTENT);
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    eprintln!(
        "ide: launch to a usable IDE p50 {:.1} s over {LAUNCH_SAMPLES} launches ({:?})",
        p50.as_secs_f64(),
        samples.iter().map(|d| format!("{:.1}", d.as_secs_f64())).collect::<Vec<_>>()
    );
    let _ = session.close().await;
}

/// How many launches the launch-to-IDE figure is the median of.
const LAUNCH_SAMPLES: usize = 3;
