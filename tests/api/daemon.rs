//! `kwsd` as a process, on a config with the PostgreSQL store and the Docker engine:
//! - `kill -9` during instance launches, then a restart: every launch's operation is completed
//!   or compensated, and the API shows the truth, which the Docker engine confirms (an
//!   instance the API shows runs in a container; one it does not show has none);
//! - without a Docker engine `serve` runs, and instances answer 503 naming it;
//! - a job's events reach 1,000 subscribers, every one of them, in order;
//! - the admin commands, `migrate` and `check-config`.
//!
//! Needs the test services (PostgreSQL and the test Docker engine with the local image
//! `kws-test/busybox:1`, built by scripts/images); skips loudly without them and fails under
//! `KWS_TEST_REQUIRE=1`.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bollard::query_parameters::ListContainersOptions;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Auth, Client};

pub(crate) const IMAGE: &str = "kws-test/busybox:1";

/// Held by each test whose `kwsd` uses the test Docker engine, so they run one at a time: a
/// Platform owns its engine (its reconcile removes every kws-labelled container it has no
/// record of, and its exec pool's sandboxes are counted by the job test).
pub(crate) async fn engine_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ENGINE.lock().await
}

/// A `kwsd` process.
pub(crate) struct Kwsd {
    child: Child,
    pub(crate) base: String,
    pub(crate) password: Option<String>,
}

impl Kwsd {
    /// Starts `kwsd serve` on `config`, on a free loopback port, and waits until it serves.
    pub(crate) fn start(config: &std::path::Path) -> Self {
        Self::start_with(config, &[])
    }

    /// As [`Kwsd::start`], with `env` set for the process.
    pub(crate) fn start_with(config: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(Some(config), env, Stdio::inherit())
    }

    /// As [`Kwsd::start`], on loopback `port` (which its config may name, as nginx's IDE
    /// gate does).
    pub(crate) fn start_on(config: &std::path::Path, port: u16) -> Self {
        Self::spawn_on(Some(config), &[], Stdio::inherit(), port)
    }

    /// A free loopback port.
    pub(crate) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
    }

    /// `kwsd serve` on `config` (the embedded defaults without one), `RUST_LOG=warn` unless
    /// `env` sets it, its logs to `stderr`; waits until it serves.
    fn spawn(config: Option<&std::path::Path>, env: &[(&str, &str)], stderr: Stdio) -> Self {
        Self::spawn_on(config, env, stderr, Self::free_port())
    }

    fn spawn_on(
        config: Option<&std::path::Path>,
        env: &[(&str, &str)],
        stderr: Stdio,
        port: u16,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kwsd"));
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("kwsd");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut password = None;
        for line in stdout.lines() {
            let line = line.expect("line");
            if let Some((_, pw)) = line.split_once("(shown once): ") {
                password = Some(pw.trim().to_owned());
            }
            if line.starts_with("kwsd: serving") {
                break;
            }
        }
        Self { child, base: format!("http://127.0.0.1:{port}"), password }
    }

    fn kill9(mut self) {
        // `Child::kill` is SIGKILL on Unix: no handler runs, nothing drains.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Kwsd {
    /// SIGTERM, then waits for the exit (SIGKILL after 20 s); answers whether it exited 0.
    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Kwsd {
    /// A graceful stop, so that the process removes what it made (its exec sandboxes).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A config on the test database and the test Docker engine, with code execution when
/// `exec` (the crash test leaves it out: a killed process cannot remove its sandboxes).
fn config(db_url: &str, exec: bool) -> String {
    let exec = if exec { "[exec]\nbackend = \"docker\"\npool_size = 1\n" } else { "" };
    let sections = format!("[proxy]\nbackend = \"memory\"\n\n{exec}");
    docker_config(
        db_url,
        Network { interface: "wgcrash0", vpn: "10.77.0.0/24", owners: "10.214.0.0/16" },
        &sections,
    )
}

/// The addresses a test's `kwsd` takes, apart from other tests' (which may run beside it).
pub(crate) struct Network {
    /// The VPN interface's name.
    pub(crate) interface: &'static str,
    /// The VPN's subnet.
    pub(crate) vpn: &'static str,
    /// The instances' range.
    pub(crate) owners: &'static str,
}

/// A config with the store, the allocator and the peers on the test database, instances on the
/// test Docker engine (the busybox image as the IDE), a memory VPN interface and the plan
/// host network, on `net`; `sections` adds the rest (`[proxy]`, `[exec]`, `[databases]`).
pub(crate) fn docker_config(db_url: &str, net: Network, sections: &str) -> String {
    let Network { interface, vpn, owners } = net;
    format!(
        r#"[platform]
domain = "kws.test"
tls = false

[store]
backend = "postgres"
url = "{db_url}"

[ipam]
backend = "postgres"

[vpn]
interface = "{interface}"
device = "memory"
peers = "postgres"
subnet = "{vpn}"
endpoint = "vpn.kws.test:51820"

[hostnet]
backend = "plan"

[runtime]
backend = "docker"
ide_image = "{IMAGE}"
ide_port = 8080
owner_range = "{owners}"
stop_timeout = "1s"
instance_memory = "64MiB"

{sections}
[operations]
lease = "2s"
"#
    )
}

/// The names of the containers of `tenant` the engine has, with whether they run.
async fn containers(docker: &bollard::Docker, tenant: &str) -> HashMap<String, bool> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("kws.owner={tenant}")])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await.expect("list");
    list.into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let name = labels.get("kws.instance")?.clone();
            Some((name, c.state.map(|s| s.to_string()).as_deref() == Some("running")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_launches_then_a_restart_shows_the_truth() {
    let _engine = engine_lock().await;
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(docker) = kws_testenv::docker().await else { return };
    if docker.inspect_image(IMAGE).await.is_err() {
        kws_testenv::unavailable::<()>("the image kws-test/busybox:1", "run scripts/images");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config_path = dir.path().join("kws.toml");
    std::fs::write(&config_path, config(db.url(), false)).expect("config");
    let first = Kwsd::start(&config_path);
    let password = first.password.clone().expect("a first operator on a fresh store");
    let anonymous = Client::new(&first.base, Auth::Anonymous);
    let cookie = anonymous.login("admin", &password).await;
    let token = Client::new(&first.base, Auth::Cookie(cookie))
        .make_token("crash", &["read", "write"])
        .await;
    let client = |base: &str| Client::new(base, Auth::Token(token.clone()));
    let tenant = format!("crash{}", std::process::id());
    let body = json!({"id": tenant, "display_name": "crash", "quotas": {}});
    client(&first.base).post("/api/v1/tenants", body).await.expect(StatusCode::CREATED);
    let mut kwsd = first;
    let rounds = 4usize;
    for round in 0..rounds {
        let api = client(&kwsd.base);
        let route = format!("/api/v1/tenants/{tenant}/instances");
        let body = json!({"name": format!("c{round}")});
        // The answer is lost with the process; what counts is what the restart shows.
        let launch =
            tokio::spawn(
                async move { api.request(Method::POST, &route).json(&body).send().await.ok() },
            );
        // From just after the request to past the end of a launch.
        tokio::time::sleep(Duration::from_millis([40, 300, 900, 3000][round])).await;
        kwsd.kill9();
        let _ = launch.await;
        kwsd = Kwsd::start(&config_path);
        assert!(kwsd.password.is_none(), "the operator exists: no new password");
    }
    // The restart's reaper finished or undid every launch: wait for no operation in flight.
    let api = client(&kwsd.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    let truth = loop {
        let listed =
            api.get(&format!("/api/v1/tenants/{tenant}/instances")).await.expect(StatusCode::OK);
        let shown: HashMap<String, String> = listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap_or("").to_owned(),
                    i["status"]["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let settled = shown.values().all(|s| s == "running");
        let engine = containers(&docker, &tenant).await;
        let agrees = shown.keys().all(|n| engine.get(n) == Some(&true))
            && engine.keys().all(|n| shown.contains_key(n));
        if settled && agrees {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the API and the engine disagree after 60 s: API {shown:?}, engine {engine:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "after {rounds} kill -9s: {} of {rounds} launches completed ({truth:?}), the others compensated",
        truth.len()
    );
    // Removing the tenant leaves nothing in the engine.
    api.send(Method::DELETE, &format!("/api/v1/tenants/{tenant}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(containers(&docker, &tenant).await.is_empty(), "no container left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_docker_engine_serve_runs_and_instances_answer_503() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let config_path = dir.path().join("kws.toml");
    std::fs::write(&config_path, config(db.url(), false)).expect("config");
    let nowhere = format!("unix://{}/no-docker.sock", dir.path().display());
    let kwsd = Kwsd::start_with(&config_path, &[("DOCKER_HOST", nowhere.as_str())]);
    let password = kwsd.password.clone().expect("a first operator");
    let cookie = Client::new(&kwsd.base, Auth::Anonymous).login("admin", &password).await;
    let op = Client::new(&kwsd.base, Auth::Cookie(cookie));
    let body = json!({"id": "nodocker", "display_name": "n", "quotas": {}});
    op.post("/api/v1/tenants", body).await.expect(StatusCode::CREATED);
    let a = op.post("/api/v1/tenants/nodocker/instances", json!({"name": "web"})).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{:?}",
        a.body
    );
    let message = a.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("Docker"), "names what is missing: {message}");
    assert!(a.headers.contains_key("retry-after"));
    // The other features work.
    op.post("/api/v1/tenants/nodocker/devices", json!({"name": "laptop"}))
        .await
        .expect(StatusCode::CREATED);
    op.get("/api/v1/tenants/nodocker/instances").await.expect(StatusCode::OK);
}

/// Signs in as the first operator of `kwsd` and answers a client with a token of every scope.
pub(crate) async fn operator(kwsd: &Kwsd) -> Client {
    let password = kwsd.password.clone().expect("a first operator on a fresh store");
    let cookie = Client::new(&kwsd.base, Auth::Anonymous).login("admin", &password).await;
    let session = Client::new(&kwsd.base, Auth::Cookie(cookie));
    let token = session.make_token("test", &["read", "write", "exec"]).await;
    Client::new(&kwsd.base, Auth::Token(token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_events_reach_a_thousand_subscribers_every_one_in_order() {
    let _engine = engine_lock().await;
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(docker) = kws_testenv::docker().await else { return };
    if docker.inspect_image("kws-test/busybox:1").await.is_err() {
        kws_testenv::unavailable::<()>("the image kws-test/busybox:1", "run scripts/images");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config_path = dir.path().join("kws.toml");
    std::fs::write(&config_path, config(db.url(), true)).expect("config");
    let before = sandboxes(&docker).await;
    let mut kwsd = Kwsd::start(&config_path);
    let op = operator(&kwsd).await;
    let body = json!({"id": "jobs", "display_name": "jobs", "quotas": {}});
    op.post("/api/v1/tenants", body).await.expect(StatusCode::CREATED);
    let source = "for i in $(seq 1 20); do echo line $i; sleep 0.05; done; echo bye >&2; exit 3";
    let submit = |body: serde_json::Value| {
        let op = op.clone();
        async move {
            let r = op
                .request(Method::POST, "/api/v1/tenants/jobs/jobs")
                .header("idempotency-key", "job-1")
                .json(&body);
            crate::server::answer(r.send().await.expect("send")).await
        }
    };
    let job =
        submit(json!({"language": "sh", "source": source})).await.expect(StatusCode::ACCEPTED);
    let id = job.body["name"].as_str().expect("the job's id").to_owned();
    // The key again: the same job; the key with other code: 422, and nothing runs.
    let again = submit(json!({"language": "sh", "source": source})).await;
    assert_eq!(again.expect(StatusCode::ACCEPTED).body["name"], id.as_str());
    let other = submit(json!({"language": "sh", "source": "echo other"})).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch")
    );
    let path = format!("/api/v1/tenants/jobs/jobs/{id}/events");
    let subscribers = (0..1000).map(|_| {
        let (op, path) = (op.clone(), path.clone());
        async move {
            let (status, _, events) = crate::sse::open(&op, &path, None).await;
            assert_eq!(status, StatusCode::OK);
            let events: Vec<crate::sse::Sse> = futures::StreamExt::collect(events).await;
            events
        }
    });
    let all = futures::future::join_all(subscribers).await;
    let first = &all[0];
    let text = |events: &[crate::sse::Sse], name: &str| -> String {
        events
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.data["text"].as_str().unwrap_or(""))
            .collect()
    };
    let expected: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text(first, "stdout"), expected);
    assert_eq!(text(first, "stderr"), "bye\n");
    let exited = first.iter().find(|e| e.name == "exited").expect("exited");
    assert_eq!(exited.data["code"], 3);
    assert_eq!(first.last().map(|e| e.name.as_str()), Some("end"));
    for (i, events) in all.iter().enumerate() {
        let ids: Vec<_> = events.iter().map(|e| e.id).collect();
        let want: Vec<_> = first.iter().map(|e| e.id).collect();
        assert_eq!(ids, want, "subscriber {i} got every event, in order");
    }
    // Resuming after the fifth event gives the rest only.
    let (_, _, rest) = crate::sse::open(&op, &path, Some(5)).await;
    let rest: Vec<crate::sse::Sse> = futures::StreamExt::collect(rest).await;
    assert_eq!(rest.first().and_then(|e| e.id), Some(6));
    assert_eq!(rest.len(), first.len() - 5);
    // SIGTERM: kwsd exits 0 and its engine's sandboxes are gone.
    assert!(kwsd.terminate(), "kwsd exited 0 on SIGTERM");
    let left: Vec<_> = sandboxes(&docker).await.difference(&before).cloned().collect();
    assert!(left.is_empty(), "sandboxes left after a clean stop: {left:?}");
}

/// The exec sandboxes the engine has now, by name.
async fn sandboxes(docker: &bollard::Docker) -> std::collections::BTreeSet<String> {
    let filters = HashMap::from([("label".to_owned(), vec!["kws.exec=1".to_owned()])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await.expect("list");
    list.into_iter().flat_map(|c| c.names.unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_migrate_and_check_config_work_on_the_store() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let config_path = dir.path().join("kws.toml");
    std::fs::write(&config_path, config(db.url(), false)).expect("config");
    let kwsd = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kwsd"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}/none.sock", dir.path().display()))
            .env("RUST_LOG", "error")
            .output()
            .expect("kwsd");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = kwsd(&["migrate"]);
    assert!(ok, "{out} {err}");
    let (ok, out, _) = kwsd(&["check-config"]);
    assert!(ok && out.contains("Postgres"), "{out}");
    let url = url::Url::parse(db.url()).expect("url");
    if let Some(secret) = url.password() {
        assert!(!out.contains(secret), "check-config printed the store's password: {out}");
    }
    let (ok, out, err) = kwsd(&["admin", "create-user", "ops", "--operator"]);
    assert!(ok, "{out} {err}");
    let password = out.rsplit("(shown once): ").next().expect("password").trim().to_owned();
    let (ok, token, err) = kwsd(&["admin", "create-token", "ops", "--scopes", "read"]);
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("kws_"), "{token}");
    let (ok, _, err) = kwsd(&["admin", "create-user", "ops"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = kwsd(&["admin", "create-token", "nobody"]);
    assert!(!ok && err.contains("not found"), "{err}");
    // The server on the same store knows them.
    let server =
        Kwsd::start_with(&config_path, &[("DOCKER_HOST", "unix:///nonexistent/none.sock")]);
    let anonymous = Client::new(&server.base, Auth::Anonymous);
    anonymous.login("ops", &password).await;
    let reader = Client::new(&server.base, Auth::Token(token));
    let me = reader.get("/api/v1/me").await.expect(StatusCode::OK);
    assert_eq!(
        (me.body["user"].as_str(), me.body["operator"].as_bool()),
        (Some("ops"), Some(true))
    );
    reader
        .post("/api/v1/tenants", json!({"id": "x", "display_name": "x"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    let (ok, out, _) = kwsd(&["admin", "reset-password", "ops"]);
    assert!(ok);
    let fresh = out.rsplit("(shown once): ").next().expect("password").trim().to_owned();
    let old =
        anonymous.post("/api/v1/sessions", json!({"user": "ops", "password": password})).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    anonymous.login("ops", &fresh).await;
    // A bad config: one error naming the section and key.
    std::fs::write(
        &config_path,
        "[platform]\ndomain = \"kws.test\"\n[store]\nbackend = \"floppy\"\n",
    )
    .expect("config");
    let (ok, _, err) = kwsd(&["check-config"]);
    assert!(!ok && err.contains("[store] backend") && err.contains("floppy"), "{err}");
}

/// Logs written to a file (or a journal) carry no terminal colour codes: `kwsd serve` on the
/// embedded defaults, stderr into a file, one request, then SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("kwsd.log");
    let nowhere = format!("unix://{}/none.sock", dir.path().display());
    let env = [("RUST_LOG", "info"), ("DOCKER_HOST", nowhere.as_str())];
    let file = std::fs::File::create(&log).expect("log file");
    let mut kwsd = Kwsd::spawn(None, &env, Stdio::from(file));
    Client::new(&kwsd.base, Auth::Anonymous)
        .get("/api/v1/openapi.json")
        .await
        .expect(StatusCode::OK);
    assert!(kwsd.terminate(), "kwsd exited 0 on SIGTERM");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("served"), "the request's log line: {text}");
    assert!(!text.contains('\u{1b}'), "a colour code in a file: {text:?}");
}
