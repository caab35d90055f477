//! The `kws` binary against a real `kwsd` on loopback (the API tests' server: the Platform on
//! its embedded parts, with the PostgreSQL store and accounts): signing in and out, instances,
//! devices, apps, and the errors of the features the embedded server lacks; and `kws run` and
//! `kws instances logs` against a stub of the streams (see `cli/stub.rs`), which breaks a stream
//! on purpose to test the resume. The same two commands run on real jobs and a real container
//! against `kwsd` on Docker in `tests/api/cli.rs`.
//!
//! Each run of `kws` gets its own `HOME` and `XDG_CONFIG_HOME` in a temporary directory.
//! Needs `KWS_TEST_POSTGRES_URL`; skips loudly without it and fails under `KWS_TEST_REQUIRE=1`.

#[allow(dead_code)]
#[path = "api/server.rs"]
mod server;
#[path = "cli/stub.rs"]
mod stub;

use std::{os::unix::fs::PermissionsExt as _, path::PathBuf, process::Stdio, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::server::{Auth, Client, Server};

/// A user of `kws`: a home of its own.
struct Kws {
    home: tempfile::TempDir,
}

/// How a run of `kws` ended.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "kws failed: {self:?}");
        self
    }

    /// Panics unless it failed with one line on stderr that starts with `kws: `.
    #[track_caller]
    fn fails(self) -> Self {
        assert!(self.code.is_some_and(|c| c != 0), "kws should fail: {self:?}");
        let line = self.stderr.trim_end();
        assert!(line.starts_with("kws: ") && !line.contains('\n'), "one line: {self:?}");
        self
    }
}

impl Kws {
    fn new() -> Self {
        Self { home: tempfile::tempdir().expect("tempdir") }
    }

    fn credentials(&self) -> PathBuf {
        self.home.path().join("config/kws/credentials.json")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_owned()
    }

    /// Runs `kws args` with `env`, feeding `stdin`.
    async fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Out {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kws"));
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in ["KWS_SERVER", "KWS_TOKEN", "KWS_TENANT", "KWS_PASSWORD"] {
            command.env_remove(var);
        }
        for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("spawn kws");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("stdin");
        drop(input);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kws {args:?} did not end within 60 s"))
            .expect("kws output");
        Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[], "").await
    }

    /// `kws login` as `user` (password `<user>-password-123` in `KWS_PASSWORD`).
    async fn login(&self, srv: &Server, user: &str) -> Out {
        let password = format!("{user}-password-123");
        let args = ["login", "--server", &srv.base, "--user", user];
        self.run_with(&args, &[("KWS_PASSWORD", &password)], "").await
    }

    fn token(&self) -> String {
        let text = std::fs::read_to_string(self.credentials()).expect("credentials");
        let stored: Value = serde_json::from_str(&text).expect("json");
        stored["token"].as_str().expect("token").to_owned()
    }
}

/// The `NAME STATE VERSION` row of `name` in `kws instances ls`.
fn state_of(ls: &Out, name: &str) -> String {
    let row = ls.stdout.lines().find(|l| l.split_whitespace().next() == Some(name));
    let row = row.unwrap_or_else(|| panic!("no {name} in {:?}", ls.stdout));
    row.split_whitespace().nth(1).expect("a state").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_drives_the_platform_from_the_command_line() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    srv.tenant("other").await;
    srv.member("ann", "acme", "member").await;
    let kws = Kws::new();
    let signed = kws.login(&srv, "ann").await.ok();
    assert!(signed.stdout.contains("acme"), "{signed:?}");
    let mode = std::fs::metadata(kws.credentials()).expect("credentials").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = kws.credentials().parent().expect("dir").to_owned();
    assert_eq!(std::fs::metadata(dir).expect("dir").permissions().mode() & 0o777, 0o700);
    let me = kws.run(&["whoami"]).await.ok();
    assert!(me.stdout.contains("ann") && me.stdout.contains("acme (member)"), "{me:?}");

    // Instances: launch, list, stop, start, logs.
    kws.run(&["instances", "create", "web", "--port", "3000"]).await.ok();
    let ls = kws.run(&["instances", "ls"]).await.ok();
    assert_eq!(
        ls.stdout.lines().next().map(str::split_whitespace).map(Iterator::collect),
        Some(vec!["NAME", "STATE", "VERSION"])
    );
    assert_eq!(state_of(&ls, "web"), "running");
    kws.run(&["instances", "stop", "web"]).await.ok();
    assert_eq!(state_of(&kws.run(&["instances", "ls"]).await.ok(), "web"), "exited");
    kws.run(&["instances", "start", "web"]).await.ok();
    assert_eq!(state_of(&kws.run(&["instances", "ls"]).await.ok(), "web"), "running");
    kws.run(&["instances", "logs", "web"]).await.ok();
    let json = kws.run(&["--json", "instances", "ls"]).await.ok();
    let listed: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(listed[0]["name"], "web");
    let missing = kws.run(&["instances", "stop", "nope"]).await.fails();
    assert!(missing.stderr.contains("not_found"), "{missing:?}");

    // A device: its config and its QR code.
    let device = kws.run(&["devices", "add", "laptop"]).await.ok();
    assert!(device.stdout.contains("[Interface]"), "{device:?}");
    assert!(device.stdout.contains('█') || device.stdout.contains('▀'), "{device:?}");
    assert!(kws.run(&["devices", "ls"]).await.ok().stdout.contains("laptop"));

    // An app on the instance's port.
    let app = kws.run(&["apps", "publish", "shop", "--instance", "web", "--port", "3000"]).await;
    assert!(app.ok().stdout.contains("shop"));
    assert!(kws.run(&["apps", "ls"]).await.ok().stdout.contains("shop"));
    kws.run(&["apps", "rm", "shop"]).await.ok();

    // What the embedded server lacks: a database server and a code-execution engine.
    let db = kws.run(&["db", "create", "main"]).await.fails();
    assert!(db.stderr.contains("databases") && db.stderr.contains("unavailable"), "{db:?}");
    assert!(db.stderr.contains("503"), "{db:?}");
    let hello = kws.file("hello.py", "print('hello')\n");
    let run = kws.run(&["run", &hello]).await.fails();
    if run.stderr.contains("route") {
        assert!(run.stderr.contains("not_found"), "{run:?}"); // the jobs route not there yet
    } else {
        assert!(run.stderr.contains("code execution") && run.stderr.contains("503"), "{run:?}");
    }
    let rb = kws.file("hello.rb", "puts 1\n");
    assert!(kws.run(&["run", &rb]).await.fails().stderr.contains("--language"));

    // Another tenant: not found, whatever the command.
    for args in [
        &["--tenant", "other", "instances", "ls"][..],
        &["instances", "rm", "web", "--tenant", "other"],
    ] {
        let refused = kws.run(args).await.fails();
        assert!(refused.stderr.contains("not_found"), "{refused:?}");
    }
    let env = kws.run_with(&["instances", "ls"], &[("KWS_TENANT", "other")], "").await.fails();
    assert!(env.stderr.contains("not_found"), "{env:?}");

    kws.run(&["instances", "rm", "web"]).await.ok();
    assert!(!kws.run(&["instances", "ls"]).await.ok().stdout.contains("web"));

    // Logout: the file goes, and so does the token.
    let token = kws.token();
    kws.run(&["logout"]).await.ok();
    assert!(!kws.credentials().exists());
    let me = Client::new(&srv.base, Auth::Token(token)).get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(kws.run(&["instances", "ls"]).await.fails().stderr.contains("kws login"));
    kws.run(&["logout"]).await.fails();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_tokens_come_from_stdin_or_the_environment() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (_, token) = srv.member("bob", "acme", "member").await;
    let kws = Kws::new();
    let wrong = json!({"user": "bob", "password": "not-the-password"});
    let refused = srv.anonymous().post("/api/v1/sessions", wrong).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let message = refused.body["error"]["message"].as_str().expect("message").to_owned();
    let args = ["login", "--server", &srv.base, "--user", "bob"];
    let out = kws.run_with(&args, &[("KWS_PASSWORD", "not-the-password")], "").await.fails();
    assert!(out.stderr.contains(&message) && out.stderr.contains("401"), "{out:?}");
    assert!(!kws.credentials().exists());
    let none = kws.run(&args).await.fails();
    assert!(none.stderr.contains("KWS_PASSWORD"), "{none:?}");

    // The password on stdin.
    let stdin_args = ["login", "--server", &srv.base, "--user", "bob", "--password-stdin"];
    kws.run_with(&stdin_args, &[], "bob-password-123\n").await.ok();
    assert!(kws.run(&["instances", "ls"]).await.ok().stdout.starts_with("NAME"));
    kws.run(&["logout"]).await.ok();

    // No file: KWS_SERVER and KWS_TOKEN (and KWS_TENANT) are enough.
    let Auth::Token(secret) = &token.auth else { panic!("a token client") };
    let env =
        [("KWS_SERVER", srv.base.as_str()), ("KWS_TOKEN", secret.as_str()), ("KWS_TENANT", "acme")];
    let ls = kws.run_with(&["instances", "ls"], &env, "").await.ok();
    assert!(ls.stdout.starts_with("NAME"), "{ls:?}");
    let bad =
        [("KWS_SERVER", srv.base.as_str()), ("KWS_TOKEN", "kws_wrong"), ("KWS_TENANT", "acme")];
    let out = kws.run_with(&["instances", "ls"], &bad, "").await.fails();
    assert!(out.stderr.contains("unauthenticated"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_the_jobs_output_and_exits_with_its_code() {
    let base = stub::start().await;
    let kws = Kws::new();
    let env = [("KWS_SERVER", base.as_str()), ("KWS_TOKEN", "stub-token"), ("KWS_TENANT", "acme")];
    let exit3 = kws.file("exit3.py", "exit3\n");
    let out = kws.run_with(&["run", &exit3], &env, "").await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "hello world\n", "oops\n")
    );
    let timeout = kws.file("timeout.py", "timeout");
    let out = kws.run_with(&["run", &timeout], &env, "").await;
    assert_eq!(out.code, Some(124), "{out:?}");
    assert!(out.stderr.contains("wall-time"), "{out:?}");
    // A stream that breaks is resumed after its last event.
    let reconnect = kws.file("reconnect", "reconnect");
    let out = kws.run_with(&["run", &reconnect, "--language", "python3"], &env, "").await.ok();
    assert_eq!(out.stdout, "ab\n");
    let logs = kws.run_with(&["instances", "logs", "web"], &env, "").await.ok();
    assert_eq!(logs.stdout, "listening on :3000\nGET / 200\n");
    assert_eq!(logs.stderr, "warning: debug build\n");
    let unknown = kws.file("unknown.py", "unknown");
    let out = kws.run_with(&["run", &unknown], &env, "").await.fails();
    assert!(out.stderr.contains("404"), "{out:?}");
}
