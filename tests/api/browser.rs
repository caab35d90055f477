//! The dashboard in headless Chromium (Debian's `chromium` and `chromium-driver`, driven over
//! WebDriver) against `kwsd` as a process on real backends: the PostgreSQL store, accounts,
//! allocator and databases, the test Docker engine (instances, code execution), and a private
//! nginx that serves the apps. One user signs in, launches an instance and watches it change
//! state without a reload, watches a log line arrive, adds a VPN device and sees its QR code,
//! publishes an app and follows its URL through nginx, creates a database, runs Python and
//! watches its output stream, removes everything and signs out. The same run checks that a
//! second tenant sees none of it, that a form another origin submits is refused, that
//! `document.cookie` does not show the session, and that axe-core finds no serious or
//! critical violation on any page; it saves a screenshot of every page under
//! `docs/screenshots/` and prints the first contentful paint of the overview.
//!
//! Skips loudly without Chromium, PostgreSQL or Docker; fails under `KWS_TEST_REQUIRE=1`.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client as Session, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use kws::{core::Domain, proxy::nginx::LocalNginx};
use kws_testenv::Netns;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    daemon::{Kwsd, Network, docker_config, engine_lock},
    server::{Auth, Client},
};

const AXE: &str = include_str!("../vendor/axe.min.js");
/// How long anything the test waits for may take.
const PATIENCE: Duration = Duration::from_secs(45);

fn free_port() -> u16 {
    Kwsd::free_port()
}

/// A private nginx under `dir` with a self-signed certificate of `*.kws.test`.
pub(crate) fn private_nginx(dir: &Path) -> LocalNginx {
    let domain: Domain = "kws.test".parse().expect("domain");
    let certificate =
        kws::proxy::nginx::self_signed_certificate(&dir.join("tls"), &domain).expect("cert");
    LocalNginx::start(&dir.join("nginx"), certificate).expect("nginx")
}

/// The port of the test database's URL.
pub(crate) fn port_of(db: &kws_testenv::TestDb) -> u16 {
    db.url()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next()?.parse().ok())
        .expect("port of the test database")
}

/// Whether Debian's `chromium` and `chromium-driver` are installed.
pub(crate) fn chromium_installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v chromedriver && command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `chromedriver`, and so Chromium, in a network namespace of its own; killed on drop.
///
/// Docker adds and removes links on the machine as containers start and stop, and Chromium,
/// seeing the network change, fails the requests in flight (`net::ERR_NETWORK_CHANGED`). In
/// its namespace it sees only its loopback, where the ports of the machine's loopback the test
/// names (kwsd, nginx) are forwarded to the same ports.
pub(crate) struct Driver {
    child: Child,
    url: String,
    forwards: Vec<tokio::task::JoinHandle<()>>,
    // Last: the processes and sockets in it go first.
    ns: Netns,
}

impl Driver {
    pub(crate) fn start(ports: &[u16]) -> Self {
        let ns = Netns::new().expect("a namespace for the browser");
        let port = free_port();
        let child = ns
            .command([
                "chromedriver",
                &format!("--port={port}"),
                "--verbose",
                "--log-path=/tmp/chromedriver.log",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ns.enter(|| TcpStream::connect((Ipv4Addr::LOCALHOST, port))).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let front = TcpListener::bind(local).expect("bind");
        let url = format!("http://{}", front.local_addr().expect("addr"));
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut forwards = vec![kws_testenv::forward(front, target, Some(ns.name().to_owned()))];
        for &p in ports {
            let inside = SocketAddr::from((Ipv4Addr::LOCALHOST, p));
            let listener = ns.enter(|| TcpListener::bind(inside)).expect("bind in the namespace");
            forwards.push(kws_testenv::forward(listener, inside, None));
        }
        Self { child, url, forwards, ns }
    }

    /// Makes the browser see a network besides its loopback (a veth pair with both ends in
    /// its namespace and the default route on one: what it sends there reaches the other end,
    /// which has no address, and is dropped), so that pages which check `navigator.onLine`,
    /// as VS Code's workbench does, believe they are online.
    pub(crate) fn go_online(&self) {
        let ns = &self.ns;
        ns.run(["ip", "link", "add", "kwson0", "type", "veth", "peer", "name", "kwson1"]);
        ns.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "kwson0"]);
        ns.run(["ip", "link", "set", "kwson1", "up"]);
        ns.run(["ip", "link", "set", "kwson0", "up"]);
        ns.run(["ip", "route", "add", "default", "dev", "kwson0"]);
    }

    /// A listener on the browser's loopback (another origin for it), served from here.
    fn listener(&self) -> tokio::net::TcpListener {
        let listener = self
            .ns
            .enter(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind in the namespace");
        listener.set_nonblocking(true).expect("nonblocking");
        tokio::net::TcpListener::from_std(listener).expect("tokio listener")
    }

    /// A new headless browser session; `*.kws.test` resolves to loopback (where nginx is).
    async fn session(&self) -> Session {
        self.session_with(&[]).await
    }

    /// As [`Driver::session`], with `extra` arguments for Chromium.
    pub(crate) async fn session_with(&self, extra: &[&str]) -> Session {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--host-resolver-rules=MAP *.kws.test 127.0.0.1",
        ];
        args.extend_from_slice(extra);
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `ip netns exec` execs chromedriver: the child is chromedriver itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // And whatever it left in the namespace (Chromium, when a session was not closed).
        let pids = Command::new("ip").args(["netns", "pids", self.ns.name()]).output();
        for pid in pids
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        for f in &self.forwards {
            f.abort();
        }
    }
}

/// kwsd's config: PostgreSQL for everything kept, the test Docker engine, code execution,
/// a private nginx for the apps (plain HTTP) whose IDE gate is kwsd on `gate_port`, a VPN on
/// a memory interface.
pub(crate) fn config(
    db: &kws_testenv::TestDb,
    nginx: &kws::proxy::nginx::NginxConfig,
    db_port: u16,
    gate_port: u16,
) -> String {
    let admin_url = db.admin_url();
    let sections = format!(
        r#"[proxy]
backend = "nginx"
dir = "{dir}"
binary = "nginx"
main_config = "{main}"
prefix = "{prefix}"
pid_file = "{pid}"
http_listen = "{http}"
https_listen = "{https}"
admin_listen = "{admin}"
certificate = "{chain}"
certificate_key = "{key}"
ide_gate = "127.0.0.1:{gate_port}"

[databases]
backend = "postgres"
admin_url = "{admin_url}"
tenant_host = "127.0.0.1"
tenant_port = {db_port}

[exec]
backend = "docker"
pool_size = 1

"#,
        dir = nginx.dir.display(),
        main = nginx.main_config.display(),
        prefix = nginx.prefix.display(),
        pid = nginx.pid_file.display(),
        http = nginx.http_listen,
        https = nginx.https_listen,
        admin = nginx.admin_listen,
        chain = nginx.certificate.chain.display(),
        key = nginx.certificate.key.display(),
    );
    let net = Network { interface: "wgweb0", vpn: "10.78.0.0/24", owners: "10.215.0.0/16" };
    docker_config(db.url(), net, &sections)
}

/// One browser and what it checks.
pub(crate) struct Tab<'a> {
    pub(crate) s: &'a Session,
    pub(crate) base: &'a str,
    pub(crate) shots: PathBuf,
    /// Every page's serious and critical axe violations.
    pub(crate) violations: Vec<String>,
}

impl Tab<'_> {
    pub(crate) async fn goto(&self, path: &str) {
        self.s.goto(&format!("{}{path}", self.base)).await.expect("goto");
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.s.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await;
        match found {
            Ok(element) => element,
            Err(e) => {
                self.failure_shot().await;
                panic!("{css} never showed: {e}")
            }
        }
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub(crate) async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The text of `css` once `ok` holds for it.
    pub(crate) async fn text_when(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(e) = self.s.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if ok(&t) {
                        return t;
                    }
                    last = Some(t);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.failure_shot().await;
        panic!("{css} never matched; last text {last:?}");
    }

    /// Waits until nothing matches `css`.
    async fn gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.s.find(Locator::Css(css)).await.is_ok() {
            assert!(Instant::now() < deadline, "{css} stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.s.execute(script, vec![]).await.expect("script")
    }

    /// Marks the document, so [`Tab::not_reloaded`] can tell it is the same one.
    async fn mark(&self) {
        self.js("window.kwsMark = 'same page'; return true;").await;
    }

    async fn not_reloaded(&self) {
        let mark = self.js("return window.kwsMark || null;").await;
        assert_eq!(mark, json!("same page"), "the page changed without a reload");
    }

    /// Runs axe-core on the page and keeps its serious and critical violations.
    async fn audit(&mut self, page: &str) {
        self.s.execute(&format!("{AXE}\nreturn true;"), vec![]).await.expect("axe loads");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
              .filter(v => v.impact === 'serious' || v.impact === 'critical')
              .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(e => done(['axe failed: ' + e]));";
        let found = self.s.execute_async(script, vec![]).await.expect("axe runs");
        for v in found.as_array().into_iter().flatten() {
            self.violations.push(format!("{page}: {}", v.as_str().unwrap_or("?")));
        }
    }

    /// Saves a screenshot as `docs/screenshots/<name>.png`.
    pub(crate) async fn shot(&self, name: &str) {
        if let Ok(png) = self.s.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// Saves what the browser shows when a wait fails, under the target folder.
    pub(crate) async fn failure_shot(&self) {
        if let Ok(png) = self.s.screenshot().await {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-failure.png");
            let _ = std::fs::write(&path, png);
            eprintln!("the browser's screen at the failure: {}", path.display());
        }
    }

    /// Signs in through the form.
    pub(crate) async fn sign_in(&self, user: &str, password: &str) {
        self.goto("/login").await;
        self.fill("#user", user).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.text_when("header .user", |t| t == user).await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.find("#password").await;
    }
}

/// A page on another origin (`localhost`, another port) that posts a form to kwsd as soon as
/// it loads: what a hostile site would do.
async fn hostile_site(
    listener: tokio::net::TcpListener,
    target: String,
) -> (String, tokio::task::JoinHandle<()>) {
    let port = listener.local_addr().expect("addr").port();
    let page = format!(
        "<!doctype html><title>win a prize</title><form id=f method=post action=\"{target}\">\
         <input name=name value=forged></form><script>document.getElementById('f').submit()</script>"
    );
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = socket.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(page.as_bytes()).await;
        }
    });
    (format!("http://localhost:{port}/"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    if !chromium_installed() {
        let _: Option<()> =
            kws_testenv::unavailable("Chromium", "chromedriver or chromium is not installed");
        return;
    }
    let Some(docker) = kws_testenv::docker().await else { return };
    drop(docker);
    let _engine = engine_lock().await;
    let Some(db) = kws_testenv::postgres().await else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let nginx = private_nginx(tmp.path());
    let db_port = port_of(&db);
    let path = tmp.path().join("kws.toml");
    let kwsd_port = free_port();
    std::fs::write(&path, config(&db, nginx.config(), db_port, kwsd_port)).expect("config");
    let kwsd = Kwsd::start_on(&path, kwsd_port);
    let operator_password = kwsd.password.clone().expect("a first operator");

    // The operator makes two tenants and their users over the API.
    let anon = Client::new(&kwsd.base, Auth::Anonymous);
    let operator =
        Client::new(&kwsd.base, Auth::Cookie(anon.login("admin", &operator_password).await));
    let suffix = kws_testenv::random_suffix(5);
    let (acme, globex) = (format!("acme-{suffix}"), format!("globex-{suffix}"));
    for (tenant, user) in [(&acme, "alice"), (&globex, "bob")] {
        operator
            .post("/api/v1/tenants", json!({"id": tenant, "display_name": tenant}))
            .await
            .expect(StatusCode::CREATED);
        let body =
            json!({"name": user, "display_name": user, "password": format!("{user}-password-123")});
        operator.post("/api/v1/users", body).await.expect(StatusCode::CREATED);
        let member = format!("/api/v1/tenants/{tenant}/members/{user}");
        operator
            .send(Method::PUT, &member, Some(json!({"role": "admin"})))
            .await
            .expect(StatusCode::OK);
    }

    let driver = Driver::start(&[kwsd_port, nginx.config().http_listen.port()]);
    let session = driver.session().await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshots folder");
    let mut tab = Tab { s: &session, base: &kwsd.base, shots, violations: Vec::new() };

    // 1. Sign in.
    tab.goto("/login").await;
    tab.audit("login").await;
    tab.shot("login").await;
    tab.sign_in("alice", "alice-password-123").await;
    let cookie = tab.js("return document.cookie;").await;
    assert!(
        !cookie.as_str().unwrap_or("").contains("kws_session"),
        "the session is HttpOnly: {cookie}"
    );

    // 2. An instance, made with the form; it turns running, and stop/start change it live.
    tab.goto(&format!("/t/{acme}/instances")).await;
    tab.fill("#name", "web").await;
    tab.click(&format!("form[action='/t/{acme}/instances'] button[type=submit]")).await;
    tab.text_when("h1", |t| t == "Instance web").await;
    tab.text_when("#instance-web .state", |t| t == "running").await;
    tab.goto(&format!("/t/{acme}/instances")).await;
    tab.mark().await;
    tab.click("#instance-web button[aria-label='stop web']").await;
    tab.text_when("#instance-web .state", |t| t == "exited").await;
    tab.click("#instance-web button[aria-label='start web']").await;
    tab.text_when("#instance-web .state", |t| t == "running").await;
    tab.not_reloaded().await;
    tab.audit("instances").await;
    tab.shot("instances").await;

    // 5. The app: published with the form, followed through nginx.
    tab.goto(&format!("/t/{acme}/apps")).await;
    tab.fill("#app-name", &format!("shop-{suffix}")).await;
    tab.fill("#app-port", "3000").await;
    tab.click(&format!("form[action='/t/{acme}/apps'] button[type=submit]")).await;
    let url = tab.text_when(&format!("#app-shop-{suffix} a"), |t| t.starts_with("http://")).await;
    assert_eq!(url, format!("http://shop-{suffix}.kws.test/"));
    tab.audit("apps").await;
    tab.shot("apps").await;
    let http_port = nginx.config().http_listen.port();
    let app_url = format!("http://shop-{suffix}.kws.test:{http_port}/");
    tab.s.goto(&app_url).await.expect("the app");
    tab.text_when("body", |t| t.contains("kws demo app")).await;

    // 3. The logs: a request to the app is a new line, arriving without a reload.
    tab.goto(&format!("/t/{acme}/instances/web")).await;
    tab.mark().await;
    let before = tab.find("#logs").await.text().await.expect("logs").lines().count();
    let client = reqwest::Client::builder()
        .resolve(
            &format!("shop-{suffix}.kws.test"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
        )
        .build()
        .expect("client");
    let answer = client.get(&app_url).send().await.expect("through nginx");
    assert_eq!(answer.status(), StatusCode::OK);
    tab.text_when("#logs", |t| t.lines().count() > before).await;
    tab.not_reloaded().await;
    tab.text_when("#stats-now", |t| t.starts_with("CPU ")).await;
    tab.audit("instance").await;
    tab.shot("instance").await;

    // 4. A VPN device: its QR code, once.
    tab.goto(&format!("/t/{acme}/devices")).await;
    tab.fill("#dev-name", "phone").await;
    tab.click(&format!("form[action='/t/{acme}/devices'] button[type=submit]")).await;
    tab.find(".qr svg").await;
    let download = tab.find("button[data-download]").await;
    assert!(download.is_displayed().await.expect("visible"), "the script offers the download");
    tab.audit("device added").await;
    tab.shot("device-added").await;

    // 6. A database: its credentials, once.
    tab.goto(&format!("/t/{acme}/databases")).await;
    tab.fill("#db-name", "main").await;
    tab.click(&format!("form[action='/t/{acme}/databases'] button[type=submit]")).await;
    tab.text_when("#cred-h + p + dl", |t| t.contains("postgres://")).await;
    tab.audit("database created").await;
    tab.shot("database-created").await;

    // 7. Python, its output streaming.
    tab.goto(&format!("/t/{acme}/run")).await;
    tab.audit("runner").await;
    let source =
        "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.5)\n";
    tab.fill("#source", source).await;
    tab.click(&format!("form[action='/t/{acme}/run'] button[type=submit]")).await;
    tab.text_when("#output", |t| t.contains("line 0")).await;
    tab.text_when("#output", |t| t.contains("line 2")).await;
    tab.text_when("#outcome", |t| t.starts_with("Exited with code 0")).await;
    tab.audit("job").await;
    tab.shot("job").await;

    // The overview with everything, its first paint, the operations.
    tab.goto(&format!("/t/{acme}")).await;
    tab.find(&format!("#app-shop-{suffix}")).await;
    let paint = tab
        .js("return performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] || null;")
        .await;
    println!("figure: first contentful paint of the overview in headless Chromium: {paint} ms");
    tab.audit("overview").await;
    tab.shot("overview").await;
    tab.goto(&format!("/t/{acme}/operations")).await;
    tab.audit("operations").await;
    tab.shot("operations").await;

    // A second tenant sees none of it; acme's pages are 404 to bob.
    tab.sign_out().await;
    tab.sign_in("bob", "bob-password-123").await;
    let page = tab.find("main").await.text().await.expect("text");
    assert!(!page.contains("phone") && !page.contains("web"), "bob's overview: {page}");
    tab.goto(&format!("/t/{acme}/instances/web")).await;
    tab.text_when("h1", |t| t == "404 Not Found").await;
    tab.goto("/").await;
    tab.sign_out().await;

    // A form posted from another origin changes nothing.
    tab.sign_in("alice", "alice-password-123").await;
    let (site, server) =
        hostile_site(driver.listener(), format!("{}/t/{acme}/instances", kwsd.base)).await;
    tab.s.goto(&site).await.expect("the hostile page");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let forged = operator.get(&format!("/api/v1/tenants/{acme}/instances/forged")).await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND, "the forged form made nothing");
    server.abort();

    // 8. Revoke, unpublish, drop, remove: in place, each row goes.
    tab.goto(&format!("/t/{acme}")).await;
    tab.mark().await;
    tab.click("#device-phone button[aria-label='revoke phone']").await;
    tab.gone("#device-phone").await;
    tab.click(&format!("#app-shop-{suffix} button")).await;
    tab.gone(&format!("#app-shop-{suffix}")).await;
    tab.click("#database-main button[aria-label='drop main']").await;
    tab.gone("#database-main").await;
    tab.click("#instance-web button[aria-label='remove web']").await;
    tab.gone("#instance-web").await;
    tab.not_reloaded().await;

    // 9. Sign out; then the operator's page.
    tab.sign_out().await;
    tab.sign_in("admin", &operator_password).await;
    tab.goto("/admin").await;
    tab.audit("admin").await;
    tab.shot("admin").await;
    tab.sign_out().await;

    let violations = std::mem::take(&mut tab.violations);
    drop(tab);
    session.close().await.expect("close");
    assert!(
        violations.is_empty(),
        "axe found serious or critical violations:\n{}",
        violations.join("\n")
    );
    drop(kwsd);
}
