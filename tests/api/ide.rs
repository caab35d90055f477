//! The IDE behind the platform's sign-in, through `kwsd` as a process and a private nginx on
//! real backends (the PostgreSQL store and accounts, the test Docker engine): the dashboard's
//! `/ide/{instance}` issues a one-time ticket, the IDE host trades it for its own cookie over
//! HTTPS, and nginx asks kwsd before every request. Members get in; a used ticket, a visitor
//! without the cookie, another tenant's user, a member removed and a session ended do not.
//!
//! Skips loudly without PostgreSQL, Docker or nginx; fails under `KWS_TEST_REQUIRE=1`.

use std::{collections::HashMap, time::Duration};

use kws::proxy::nginx::LocalNginx;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::{
    browser::{config, port_of, private_nginx},
    daemon::{IMAGE, Kwsd, engine_lock},
    server::{Auth, Client},
};

/// An answer as curl saw it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

/// `GET url` through nginx at loopback `port` (the URL's host resolved there, the test
/// certificate accepted), with `cookie`, following no redirect.
pub(crate) async fn fetch(url: &str, port: u16, cookie: Option<&str>) -> Seen {
    let host = url.split("://").nth(1).and_then(|r| r.split([':', '/']).next()).expect("host");
    let mut args = vec![
        "-sS".to_owned(),
        "-k".into(),
        "-i".into(),
        "--max-time".into(),
        "10".into(),
        "--resolve".into(),
        format!("{host}:{port}:127.0.0.1"),
    ];
    if let Some(cookie) = cookie {
        args.extend(["-H".into(), format!("Cookie: {cookie}")]);
    }
    args.push(url.to_owned());
    let out = tokio::process::Command::new("curl").args(&args).output().await.expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or_else(
            || panic!("no answer from {url}: {}", String::from_utf8_lossy(&out.stderr)),
        );
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Seen { status, headers, body: body.to_owned() }
}

/// The dashboard's `/ide/{name}` for the session `cookie`: its status and `Location`.
pub(crate) async fn open_ide(base: &str, name: &str, cookie: &str) -> (StatusCode, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = http
        .get(format!("{base}/ide/{name}"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("GET /ide");
    let location = answer
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (answer.status(), location)
}

/// Trades the ticket of `enter` (an `/_kws/enter?ticket=` URL) for the IDE host's cookie.
pub(crate) async fn enter(enter: &str, port: u16) -> String {
    let seen = fetch(enter, port, None).await;
    assert_eq!(seen.status, 303, "the ticket is traded: {seen:?}");
    assert_eq!(seen.headers.get("location").map(String::as_str), Some("/"));
    let set = seen.headers.get("set-cookie").expect("a cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "host-only: {set}");
    set.split(';').next().expect("pair").to_owned()
}

/// A platform, its nginx and kwsd, with the tenant `acme` (alice and bob, members) and another
/// (carol).
pub(crate) struct Stage {
    pub(crate) kwsd: Kwsd,
    pub(crate) nginx: LocalNginx,
    pub(crate) operator: Client,
    pub(crate) acme: String,
    _db: kws_testenv::TestDb,
    _tmp: tempfile::TempDir,
}

impl Stage {
    /// The stage with `image` as the IDE, holding the test engine (see `engine_lock`); `None`
    /// (a loud skip) without Docker, the image or PostgreSQL.
    pub(crate) async fn on_docker(
        image: &str,
    ) -> Option<(tokio::sync::MutexGuard<'static, ()>, Self)> {
        let docker = kws_testenv::docker().await?;
        if docker.inspect_image(image).await.is_err() {
            return kws_testenv::unavailable(&format!("the image {image}"), "run scripts/images");
        }
        drop(docker);
        let engine = engine_lock().await;
        Some((engine, Self::start(image).await?))
    }

    /// `None` (a loud skip) without PostgreSQL.
    async fn start(image: &str) -> Option<Self> {
        let db = kws_testenv::postgres().await?;
        let tmp = tempfile::tempdir().expect("tmp");
        let nginx = private_nginx(tmp.path());
        let db_port = port_of(&db);
        let kwsd_port = Kwsd::free_port();
        let https = nginx.config().https_listen.port();
        let text = config(&db, nginx.config(), db_port, kwsd_port)
            .replace("tls = false", &format!("tls = true\npublic_port = {https}"))
            .replace(&format!("ide_image = \"{IMAGE}\""), &format!("ide_image = \"{image}\""))
            .replace("instance_memory = \"64MiB\"", "instance_memory = \"1GiB\"");
        let path = tmp.path().join("kws.toml");
        std::fs::write(&path, text).expect("config");
        let kwsd = Kwsd::start_on(&path, kwsd_port);
        let password = kwsd.password.clone().expect("a first operator");
        let anon = Client::new(&kwsd.base, Auth::Anonymous);
        let operator = Client::new(&kwsd.base, Auth::Cookie(anon.login("admin", &password).await));
        let suffix = kws_testenv::random_suffix(5);
        let (acme, globex) = (format!("acme-{suffix}"), format!("globex-{suffix}"));
        for (tenant, users) in [(&acme, &["alice", "bob"][..]), (&globex, &["carol"][..])] {
            operator
                .post("/api/v1/tenants", json!({"id": tenant, "display_name": tenant}))
                .await
                .expect(StatusCode::CREATED);
            for user in users {
                let body =
                    json!({"name": user, "display_name": user, "password": password_of(user)});
                operator.post("/api/v1/users", body).await.expect(StatusCode::CREATED);
                let member = format!("/api/v1/tenants/{tenant}/members/{user}");
                operator
                    .send(Method::PUT, &member, Some(json!({"role": "member"})))
                    .await
                    .expect(StatusCode::OK);
            }
        }
        Some(Self { kwsd, nginx, operator, acme, _db: db, _tmp: tmp })
    }

    /// A session cookie of `user`.
    pub(crate) async fn login(&self, user: &str) -> String {
        Client::new(&self.kwsd.base, Auth::Anonymous).login(user, &password_of(user)).await
    }

    /// nginx's HTTPS port.
    pub(crate) fn https(&self) -> u16 {
        self.nginx.config().https_listen.port()
    }

    /// Launches `name` in acme as alice (`cookie`) and waits until it runs.
    pub(crate) async fn launch(&self, cookie: &str, name: &str) {
        let alice = Client::new(&self.kwsd.base, Auth::Cookie(cookie.to_owned()));
        let route = format!("/api/v1/tenants/{}/instances", self.acme);
        alice.post(&route, json!({"name": name})).await.expect(StatusCode::CREATED);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = alice.get(&format!("{route}/{name}")).await.expect(StatusCode::OK);
            if got.body["status"]["state"] == "running" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "not running: {:?}", got.body);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn password_of(user: &str) -> String {
    format!("{user}-password-123")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_of_the_tenant_get_into_an_instances_ide() {
    let Some((_engine, stage)) = Stage::on_docker(IMAGE).await else { return };
    let (alice, bob, carol) =
        (stage.login("alice").await, stage.login("bob").await, stage.login("carol").await);
    let name = format!("ide{}", kws_testenv::random_suffix(4));
    stage.launch(&alice, &name).await;
    let https = stage.https();
    let home = format!("https://{name}.kws.test:{https}/");

    // The dashboard's Open IDE: a ticket for this host, over HTTPS on the public port.
    let (status, to) = open_ide(&stage.kwsd.base, &name, &alice).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let prefix = format!("{home}_kws/enter?ticket=kwst_");
    assert!(to.starts_with(&prefix), "{to}");
    let cookie = enter(&to, https).await;
    assert!(cookie.starts_with("__Host-kws_ide="), "{cookie}");
    let page = fetch(&home, https, Some(&cookie)).await;
    assert!(page.status == 200 && page.body.contains("kws IDE stand-in"), "{page:?}");
    // Once only.
    let again = fetch(&to, https, None).await;
    assert_eq!(again.status, 403, "a used ticket: {again:?}");
    assert!(again.body.contains("/ide/"), "it says where to get a new one: {}", again.body);

    // Without the cookie (or with a made-up one): to the dashboard, which signs in and comes back.
    let signin = format!("{}/ide/{name}", stage.kwsd.base);
    for cookie in [None, Some("__Host-kws_ide=made-up")] {
        let seen = fetch(&home, https, cookie).await;
        assert_eq!(seen.status, 302, "{seen:?}");
        assert_eq!(seen.headers.get("location"), Some(&signin));
    }
    let anonymous = open_ide(&stage.kwsd.base, &name, "").await;
    assert_eq!(anonymous.0, StatusCode::SEE_OTHER);
    assert!(anonymous.1.starts_with("/login?next="), "{anonymous:?}");

    // Another tenant's user: no ticket, and the dashboard's cookie is worth nothing there.
    let (status, _) = open_ide(&stage.kwsd.base, &name, &carol).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "carol is not in acme");
    let carols = carol.replace("kws_session", "__Host-kws_ide");
    assert_eq!(fetch(&home, https, Some(&carols)).await.status, 302);
    // A member's cookie of this host on another instance's host: refused there.
    let other = format!("ide{}", kws_testenv::random_suffix(4));
    stage.launch(&alice, &other).await;
    let elsewhere = format!("https://{other}.kws.test:{https}/");
    assert_eq!(fetch(&elsewhere, https, Some(&cookie)).await.status, 302);

    // bob is a member: in. Removed from acme: the next request is 404.
    let (_, to) = open_ide(&stage.kwsd.base, &name, &bob).await;
    let bobs = enter(&to, https).await;
    assert_eq!(fetch(&home, https, Some(&bobs)).await.status, 200);
    let member = format!("/api/v1/tenants/{}/members/bob", stage.acme);
    stage.operator.send(Method::DELETE, &member, None).await.expect(StatusCode::NO_CONTENT);
    let hidden = fetch(&home, https, Some(&bobs)).await;
    assert_eq!(hidden.status, 404, "a removed member: {hidden:?}");

    // alice signs out of the dashboard: her IDE cookie ends with the session.
    let alice_client = Client::new(&stage.kwsd.base, Auth::Cookie(alice.clone()));
    let out = alice_client.send(Method::DELETE, "/api/v1/sessions/current", None).await;
    out.expect(StatusCode::NO_CONTENT);
    let ended = fetch(&home, https, Some(&cookie)).await;
    assert_eq!(ended.status, 302, "after logout: {ended:?}");
}

/// A WebSocket to the workbench of `host` through nginx at loopback `port` with `cookie`
/// (TLS by `openssl s_client`): the child once the upgrade answered 101.
async fn workbench_socket(
    host: &str,
    port: u16,
    path: &str,
    cookie: &str,
) -> (tokio::process::Child, tokio::process::ChildStdout) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}"), "-servername", host])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_client");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: https://{host}:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n\r\n"
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(request.as_bytes()).await.expect("send the upgrade");
    // Kept open: closing it would end the connection from this side.
    std::mem::forget(stdin);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut byte))
            .await
            .expect("an answer to the upgrade")
            .expect("read");
        assert_eq!(n, 1, "the connection closed before the upgrade answered: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "the upgrade: {head}");
    (child, stdout)
}

/// Whether the connection read by `stdout` closes within `within`.
async fn closes(stdout: &mut tokio::process::ChildStdout, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stdout.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_ide_websockets_close_when_access_ends() {
    let Some((_engine, stage)) = Stage::on_docker("kws/ide:1").await else { return };
    let (alice, bob) = (stage.login("alice").await, stage.login("bob").await);
    let name = format!("ws{}", kws_testenv::random_suffix(4));
    stage.launch(&alice, &name).await;
    let https = stage.https();
    let host = format!("{name}.kws.test");
    let mut cookies = Vec::new();
    for session in [&alice, &bob] {
        let (_, to) = open_ide(&stage.kwsd.base, &name, session).await;
        cookies.push(enter(&to, https).await);
    }
    let healthz = format!("https://{host}:{https}/healthz");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fetch(&healthz, https, Some(&cookies[0])).await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "code-server never answered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let container = format!("kws.{}.{name}", stage.acme);
    let product = std::process::Command::new("docker")
        .args(["exec", &container, "cat", "/opt/code-server/lib/vscode/product.json"])
        .output()
        .expect("docker exec");
    let product: serde_json::Value = serde_json::from_slice(&product.stdout).expect("product.json");
    let commit = product["commit"].as_str().expect("commit").to_owned();
    let path = |who: &str| {
        format!(
            "/stable-{commit}?reconnectionToken=kws-{who}-{}&reconnection=false\
             &skipWebSocketFrames=false",
            kws_testenv::random_suffix(6)
        )
    };
    let (_a, mut alices) = workbench_socket(&host, https, &path("alice"), &cookies[0]).await;
    let (_b, mut bobs) = workbench_socket(&host, https, &path("bob"), &cookies[1]).await;
    assert!(!closes(&mut bobs, Duration::from_secs(1)).await, "open while bob is a member");

    // bob leaves acme: his open WebSocket closes within seconds, alice's stays.
    let member = format!("/api/v1/tenants/{}/members/bob", stage.acme);
    stage.operator.send(Method::DELETE, &member, None).await.expect(StatusCode::NO_CONTENT);
    assert!(closes(&mut bobs, Duration::from_secs(5)).await, "bob's WebSocket after his removal");
    assert!(!closes(&mut alices, Duration::from_secs(1)).await, "alice's stays open");
    // alice signs out: hers closes too.
    let client = Client::new(&stage.kwsd.base, Auth::Cookie(alice.clone()));
    let out = client.send(Method::DELETE, "/api/v1/sessions/current", None).await;
    out.expect(StatusCode::NO_CONTENT);
    assert!(closes(&mut alices, Duration::from_secs(5)).await, "alice's WebSocket after logout");
}
