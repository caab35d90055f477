//! The `kws` CLI's streams against `kwsd` as a process on the Docker engine, with code
//! execution: `kws run` prints a real job's output and exits with its code, and
//! `kws instances logs -f` follows a real container's log. (The rest of the CLI runs against
//! the embedded server in `tests/cli.rs`, which also breaks a stream on purpose.)
//!
//! Needs PostgreSQL, the test Docker engine and the local images (scripts/images); skips
//! loudly without them and fails under `KWS_TEST_REQUIRE=1`.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::{
    daemon::{self, Kwsd, Network, docker_config, engine_lock},
    server::Auth,
};

/// `kws` with its own home and the server, token and tenant from the environment.
fn kws(home: &std::path::Path, kwsd: &Kwsd, token: &str, args: &[&str]) -> tokio::process::Command {
    let tenant = tenant();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kws"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("KWS_SERVER", &kwsd.base)
        .env("KWS_TOKEN", token)
        .env("KWS_TENANT", tenant)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The test's tenant, apart from an earlier run's (whose containers may still be there).
fn tenant() -> String {
    format!("cli{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kws_runs_code_and_follows_logs_on_a_real_kwsd() {
    let _engine = engine_lock().await;
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(docker) = kws_testenv::docker().await else { return };
    for image in [daemon::IMAGE, "kws-test/python3:1"] {
        if docker.inspect_image(image).await.is_err() {
            kws_testenv::unavailable::<()>(&format!("the image {image}"), "run scripts/images");
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config_path = dir.path().join("kws.toml");
    let net = Network { interface: "wgcli0", vpn: "10.79.0.0/24", owners: "10.216.0.0/16" };
    let exec = "[proxy]\nbackend = \"memory\"\n\n[exec]\nbackend = \"docker\"\npool_size = 1\n";
    std::fs::write(&config_path, docker_config(db.url(), net, exec)).expect("config");
    let kwsd = Kwsd::start(&config_path);
    let op = daemon::operator(&kwsd).await;
    let tenant = tenant();
    let body = json!({"id": tenant, "display_name": "cli", "quotas": {}});
    op.post("/api/v1/tenants", body).await.expect(StatusCode::CREATED);
    let Auth::Token(token) = &op.auth else { panic!("a token client") };
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    // `kws run`: the job's streams, and its exit code as the command's.
    let script = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("script");
        path.to_str().expect("path").to_owned()
    };
    let hello = script(
        "hello.py",
        "import sys\nprint('hello', 6 * 7)\nprint('oops', file=sys.stderr)\nsys.exit(3)\n",
    );
    let out = kws(&home, &kwsd, token, &["run", &hello]).output().await.expect("kws run");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (out.status.code(), stdout.as_ref(), stderr.as_ref()),
        (Some(3), "hello 42\n", "oops\n")
    );
    let sleepy = script("slow.sh", "echo start; sleep 30; echo never\n");
    let args = ["run", &sleepy, "--wall-time-ms", "500"];
    let out = kws(&home, &kwsd, token, &args).output().await.expect("kws run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "start\n");
    assert_eq!(out.status.code(), Some(124), "{out:?}");

    // `kws instances logs -f`: a request to the instance is a line, while the command follows.
    let made =
        op.post(&format!("/api/v1/tenants/{tenant}/instances"), json!({"name": "web"})).await;
    let made = made.expect(StatusCode::CREATED);
    let address = made.body["spec"]["address"].as_str().expect("an address").to_owned();
    let mut follow = kws(&home, &kwsd, token, &["instances", "logs", "-f", "web"])
        .spawn()
        .expect("kws instances logs -f");
    let mut lines = BufReader::new(follow.stderr.take().expect("stderr")).lines();
    let app = format!("http://{address}:3000/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        // Requests until one's log line arrives: the first may come before the stream opens.
        let _ = reqwest::get(&app).await;
        match tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await {
            Ok(Ok(Some(line))) if line.contains("response:200") => break line,
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(other) => panic!("the log stream ended: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no log line of a request reached kws");
    };
    assert!(line.starts_with('['), "busybox httpd's log line: {line}");
    assert_eq!(follow.try_wait().expect("wait"), None, "still following");
    follow.kill().await.expect("kill");
    op.send(reqwest::Method::DELETE, &format!("/api/v1/tenants/{tenant}/instances/web"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
}
