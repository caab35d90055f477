//! The dashboard's pages over HTTP against the real server: sign-in, every page read by CSS
//! selector, the forms (POST, then a redirect), escaping, the security headers, the static
//! files, the live stream, and the tenant boundary from the other side.

use reqwest::{Method, StatusCode, header, redirect::Policy};
use scraper::{Html, Selector};
use serde_json::json;

use super::server::{Auth, Client, Server};

/// A browser-like client: the session cookie, same-origin fetch metadata on posts, and no
/// redirect followed (the tests read each 303).
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

/// A page: status, headers, and the document.
struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    text: String,
}

impl Page {
    fn doc(&self) -> Html {
        Html::parse_document(&self.text)
    }

    /// The texts of the elements `css` selects.
    fn texts(&self, css: &str) -> Vec<String> {
        let selector = Selector::parse(css).expect("selector");
        self.doc()
            .select(&selector)
            .map(|e| e.text().collect::<String>().trim().to_owned())
            .collect()
    }

    /// Whether `css` selects anything.
    fn has(&self, css: &str) -> bool {
        let selector = Selector::parse(css).expect("selector");
        self.doc().select(&selector).next().is_some()
    }

    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Browser {
    fn new(server: &Server) -> Self {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
        Self { base: server.base.clone(), http, cookie: None }
    }

    async fn send(&self, method: Method, path: &str, form: &[(&str, &str)], site: &str) -> Page {
        let mut r = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header(header::COOKIE, c);
        }
        if method == Method::POST {
            r = r.header("sec-fetch-site", site).form(form);
        }
        let response = r.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Page { status, headers, text }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(Method::GET, path, &[], "same-origin").await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, form, "same-origin").await
    }

    /// Signs in through the form and keeps the cookie.
    async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let page =
            self.post("/login", &[("user", user), ("password", password), ("next", "/")]).await;
        if let Some(set) = page.headers.get(header::SET_COOKIE) {
            let set = set.to_str().expect("text");
            assert!(set.contains("HttpOnly"), "the session cookie is HttpOnly: {set}");
            assert!(set.contains("SameSite=Lax"), "and SameSite: {set}");
            self.cookie = Some(set.split(';').next().expect("pair").to_owned());
        }
        page
    }
}

/// A tenant `acme` with a member `alice`, a tenant `globex` with `bob`, signed in.
async fn two_tenants(server: &Server) -> (Browser, Browser) {
    server.tenant("acme").await;
    server.tenant("globex").await;
    server.member("alice", "acme", "admin").await;
    server.member("bob", "globex", "admin").await;
    let mut alice = Browser::new(server);
    let page = alice.sign_in("alice", "alice-password-123").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let mut bob = Browser::new(server);
    bob.sign_in("bob", "bob-password-123").await;
    (alice, bob)
}

#[tokio::test]
async fn signing_in_and_out() {
    let Some(server) = Server::start().await else { return };
    server.tenant("acme").await;
    server.member("alice", "acme", "member").await;
    let mut browser = Browser::new(&server);

    let home = browser.get("/t/acme/instances").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/login?next=/t/acme/instances", "back here after signing in");
    let form = browser.get("/login?next=//evil.example/").await;
    assert_eq!(form.status, StatusCode::OK);
    let next = Selector::parse("input[name=next]").expect("selector");
    let value = form.doc().select(&next).next().and_then(|e| e.attr("value").map(str::to_owned));
    assert_eq!(value.as_deref(), Some("/"), "only a local path is kept as next");
    assert!(form.has("label[for=user]") && form.has("label[for=password]"), "labelled");

    let wrong = browser.sign_in("alice", "not-her-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.texts("[role=alert]"), ["The user or the password is wrong."]);
    assert!(browser.cookie.is_none(), "no cookie for a wrong password");

    let right = browser.sign_in("alice", "alice-password-123").await;
    assert_eq!((right.status, right.location()), (StatusCode::SEE_OTHER, "/"));
    let home = browser.get("/").await;
    assert_eq!(home.location(), "/t/acme", "home is the user's tenant");
    let overview = browser.get("/t/acme").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert_eq!(overview.texts("header .user"), ["alice"]);
    assert_eq!(overview.texts("nav a[aria-current=page]"), ["Overview"]);

    let out = browser.post("/logout", &[]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/login"));
    let cleared = out.headers.get(header::SET_COOKIE).expect("cleared").to_str().expect("text");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let after = browser.get("/t/acme").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the old cookie no longer signs in");
}

#[tokio::test]
async fn the_flows_through_the_forms() {
    let Some(server) = Server::start().await else { return };
    let (alice, _bob) = two_tenants(&server).await;

    let made = alice
        .post(
            "/t/acme/instances",
            &[("name", "web"), ("image", ""), ("cpu_millis", "500"), ("memory_mb", "")],
        )
        .await;
    assert_eq!((made.status, made.location()), (StatusCode::SEE_OTHER, "/t/acme/instances/web"));
    let page = alice.get("/t/acme/instances/web").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.texts("#instance-web .state"), ["running"]);
    assert_eq!(page.texts("h1"), ["Instance web"]);
    assert!(page.has("#logs[data-follow]") && page.has("#stats-now[data-stats]"));
    let list = alice.get("/t/acme/instances").await;
    assert_eq!(list.texts("#instance-web td:nth-child(4)"), ["500 mCPU, 1024 MB"]);

    let stopped = alice.post("/t/acme/instances/web/stop", &[]).await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);
    let list = alice.get("/t/acme/instances").await;
    assert_eq!(list.texts("#instance-web .state"), ["exited"], "{}", list.text);
    assert!(list.has("form[action='/t/acme/instances/web/start']"), "now it can be started");
    alice.post("/t/acme/instances/web/start", &[]).await;

    let bad = alice.post("/t/acme/instances", &[("name", "Not A Name")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.texts("[role=alert]")[0].contains("name"), "the error names the field");
    let bad = alice.post("/t/acme/instances", &[("name", "x2"), ("cpu_millis", "lots")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let added = alice.post("/t/acme/devices", &[("name", "phone"), ("public_key", "")]).await;
    assert_eq!(added.status, StatusCode::OK, "the answer shows the device once");
    assert!(added.has(".qr svg"), "a QR code");
    let config = added.texts("#device-config");
    assert!(config[0].contains("[Interface]") && config[0].contains("PrivateKey"), "{config:?}");
    assert_eq!(added.headers[header::CACHE_CONTROL], "no-store", "no cache keeps the key");
    let devices = alice.get("/t/acme/devices").await;
    assert!(devices.has("#device-phone") && !devices.has("#device-config"), "shown once only");

    let app = alice.get("/t/acme/apps").await;
    assert_eq!(app.texts("#app-instance option"), ["web"]);
    let key = Selector::parse("input[name=idempotency_key]").expect("selector");
    let key = app.doc().select(&key).next().and_then(|e| e.attr("value").map(str::to_owned));
    let key = key.expect("a key in the form");
    let form = [("name", "shop"), ("instance", "web"), ("port", "3000"), ("idempotency_key", &key)];
    let published = alice.post("/t/acme/apps", &form).await;
    assert_eq!(published.status, StatusCode::SEE_OTHER);
    let again = alice.post("/t/acme/apps", &form).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "the same form posted twice publishes once");
    let apps = alice.get("/t/acme/apps").await;
    assert_eq!(apps.texts("#app-shop a"), ["https://shop.kws.localhost/"]);

    let db = alice.post("/t/acme/databases", &[("name", "main")]).await;
    assert_eq!(
        db.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "embedded parts have no database server"
    );
    assert!(db.texts("[role=alert]")[0].contains("database"), "{}", db.text);

    let runner = alice.get("/t/acme/run").await;
    assert!(runner.has("button[type=submit][disabled]"), "no engine: nothing to run");
    assert_eq!(runner.texts("[role=alert]").len(), 1, "and the page says why");

    let ops = alice.get("/t/acme/operations").await;
    let kinds = ops.texts("tbody tr td:nth-child(2)");
    assert!(kinds.contains(&"launch_instance".to_owned()), "{kinds:?}");
    assert!(ops.has("tbody tr .steps li.step-done"));

    let overview = alice.get("/t/acme").await;
    assert!(
        overview.has("#instance-web") && overview.has("#device-phone") && overview.has("#app-shop")
    );
    assert_eq!(overview.texts(".quota tbody tr:first-child td"), ["1", "5"]);

    assert_eq!(alice.post("/t/acme/apps/shop/unpublish", &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.post("/t/acme/devices/phone/revoke", &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.post("/t/acme/instances/web/remove", &[]).await.status, StatusCode::SEE_OTHER);
    let overview = alice.get("/t/acme").await;
    assert!(!overview.has("tbody[data-live-list] tr"), "all gone: {}", overview.text);
}

#[tokio::test]
async fn another_tenant_is_not_found_from_every_side() {
    let Some(server) = Server::start().await else { return };
    let (alice, bob) = two_tenants(&server).await;
    alice.post("/t/acme/instances", &[("name", "web")]).await;
    alice.post("/t/acme/devices", &[("name", "phone")]).await;

    for path in [
        "/t/acme",
        "/t/acme/instances",
        "/t/acme/instances/web",
        "/t/acme/devices",
        "/t/acme/apps",
        "/t/acme/databases",
        "/t/acme/run",
        "/t/acme/operations",
        "/t/acme/live",
        "/admin",
    ] {
        let page = bob.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path} for bob");
        assert!(!page.text.contains("phone"), "{path}: nothing of acme's shows");
    }
    for path in [
        "/t/acme/instances/web/stop",
        "/t/acme/instances/web/remove",
        "/t/acme/devices/phone/revoke",
    ] {
        assert_eq!(bob.post(path, &[]).await.status, StatusCode::NOT_FOUND, "{path} for bob");
    }
    let list = alice.get("/t/acme/instances").await;
    assert_eq!(list.texts("#instance-web .state"), ["running"], "bob changed nothing");
    let bobs = bob.get("/t/globex").await;
    assert!(!bobs.has("#instance-web") && !bobs.has("#device-phone"));
    assert!(!bobs.text.contains("acme"), "bob's tenant switch does not list acme");

    let anonymous = Browser::new(&server);
    for path in ["/t/acme", "/t/acme/instances/web", "/admin"] {
        assert_eq!(
            anonymous.get(path).await.status,
            StatusCode::SEE_OTHER,
            "{path}: sign in first"
        );
    }
    assert_eq!(anonymous.post("/t/acme/instances/web/stop", &[]).await.location(), "/login");
}

#[tokio::test]
async fn a_form_from_another_origin_is_refused() {
    let Some(server) = Server::start().await else { return };
    let (alice, _) = two_tenants(&server).await;
    let forged =
        alice.send(Method::POST, "/t/acme/instances", &[("name", "forged")], "cross-site").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let said = forged.texts("[role=alert]");
    assert!(said[0].contains("cross-site"), "the refusal is the error page: {said:?}");
    let sibling =
        alice.send(Method::POST, "/t/acme/instances", &[("name", "forged")], "same-site").await;
    assert_eq!(
        sibling.status,
        StatusCode::FORBIDDEN,
        "a tenant's app at <app>.<domain> is same-site"
    );
    let login = alice
        .send(
            Method::POST,
            "/login",
            &[("user", "alice"), ("password", "alice-password-123")],
            "cross-site",
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN, "no login CSRF");
    assert!(login.headers.get(header::SET_COOKIE).is_none());
    let list = alice.get("/t/acme/instances").await;
    assert!(!list.has("#instance-forged"), "nothing was made");
}

#[tokio::test]
async fn values_render_as_text() {
    let Some(server) = Server::start().await else { return };
    let hostile = "<script>alert(1)</script>\"'&";
    server
        .operator
        .send(Method::POST, "/api/v1/tenants", Some(json!({"id": "acme", "display_name": hostile})))
        .await
        .expect(StatusCode::CREATED);
    server.member("alice", "acme", "admin").await;
    let mut alice = Browser::new(&server);
    alice.sign_in("alice", "alice-password-123").await;
    let overview = alice.get("/t/acme").await;
    assert_eq!(overview.texts("h1"), [hostile], "the name shows as typed");
    assert!(!overview.text.contains("<script>alert"), "and never as markup");
    let page = alice.get("/t/%3Cscript%3E").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.text.contains("<script>"), "an id in the URL is escaped too");
    let bad = alice.get("/t/acme/operations?before=%3Cb%3E").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.texts("[role=alert]"), ["before is not an operation id"], "the page names it");
    let missing = alice.get("/nothing/<b>here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(!missing.text.contains("<b>"));
}

#[tokio::test]
async fn headers_assets_and_weight() {
    let Some(server) = Server::start().await else { return };
    let (alice, _) = two_tenants(&server).await;
    alice.post("/t/acme/instances", &[("name", "web")]).await;
    let mut weight = 0;
    for path in [
        "/login",
        "/t/acme",
        "/t/acme/instances",
        "/t/acme/instances/web",
        "/t/acme/devices",
        "/t/acme/apps",
        "/t/acme/databases",
        "/t/acme/run",
        "/t/acme/operations",
    ] {
        let page = alice.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().expect("text");
        assert!(!csp.contains("unsafe-inline") && csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            !page.text.contains(" style=") && !page.text.contains("<script>"),
            "{path}: nothing inline"
        );
        assert!(page.has("main#main") && page.has("a.skip[href='#main']"), "{path}: skip link");
        if path == "/t/acme" {
            weight += page.text.len();
        }
    }
    let page = alice.get("/t/acme").await;
    let select = |css: &str, attr: &str| {
        let s = Selector::parse(css).expect("selector");
        page.doc().select(&s).next().and_then(|e| e.attr(attr).map(str::to_owned)).expect(css)
    };
    for url in [select("link[rel=stylesheet]", "href"), select("script[src]", "src")] {
        let file = alice.get(&url).await;
        assert_eq!(file.status, StatusCode::OK, "{url}");
        assert!(file.headers[header::CACHE_CONTROL].to_str().expect("text").contains("immutable"));
        weight += file.text.len();
        let stale = url.replacen('.', ".0000000000.", 1);
        assert_eq!(alice.get(&stale).await.status, StatusCode::NOT_FOUND, "{stale}");
    }
    assert!(weight <= 60 * 1024, "the overview weighs {weight} bytes with its CSS and JS");
}

#[tokio::test]
async fn the_live_stream_sends_rendered_rows() {
    let Some(server) = Server::start().await else { return };
    let (alice, _) = two_tenants(&server).await;
    let cookie = alice.cookie.clone().expect("signed in");
    let client = Client::new(&server.base, Auth::Cookie(cookie));
    let mut live = client.request(Method::GET, "/t/acme/live").send().await.expect("stream");
    assert_eq!(live.status(), StatusCode::OK);
    alice.post("/t/acme/instances", &[("name", "web")]).await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let running = |e: &str| {
        e.contains("event: swap") && e.contains("instance-web") && e.contains("state-running")
    };
    while !text.split("\n\n").any(running) {
        let chunk = tokio::time::timeout_at(deadline, live.chunk()).await.expect("in time");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk").expect("open")));
    }
    let swap = text
        .split("\n\n")
        .filter(|e| running(e))
        .find_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .expect("a swap with the running row");
    let row: serde_json::Value = serde_json::from_str(swap).expect("json");
    assert_eq!(
        (row["id"].as_str(), row["list"].as_str()),
        (Some("instance-web"), Some("instance"))
    );
    let html = Html::parse_fragment(&format!(
        "<table><tbody>{}</tbody></table>",
        row["html"].as_str().expect("html")
    ));
    let state = Selector::parse("tr#instance-web .state").expect("selector");
    assert_eq!(
        html.select(&state).map(|e| e.text().collect::<String>()).collect::<Vec<_>>(),
        ["running"]
    );
    let list = alice.get("/t/acme/instances").await;
    let row_html = row["html"].as_str().expect("html").trim().to_owned();
    assert!(list.text.contains(&row_html), "the page renders the same row as the stream");
}

#[tokio::test]
async fn the_admin_page_shows_users_roles_tokens_and_the_host() {
    let Some(server) = Server::start().await else { return };
    server.tenant("acme").await;
    let (_, alice_token) = server.member("alice", "acme", "member").await;
    let body = json!({"name": "root", "display_name": "Root", "password": "root-password-123", "operator": true});
    server
        .operator
        .send(Method::POST, "/api/v1/users", Some(body))
        .await
        .expect(StatusCode::CREATED);
    let mut root = Browser::new(&server);
    root.sign_in("root", "root-password-123").await;
    let page = root.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    let roles = page.texts("#user-alice td:nth-child(2)");
    assert_eq!(roles, ["member in acme"]);
    let tokens = page.texts("#user-alice ul.tokens li");
    assert_eq!(tokens.len(), 1, "alice's one token: {tokens:?}");
    let facts = page.texts("dl.facts dt");
    let interface =
        facts.contains(&"Listen port".to_owned()) && facts.contains(&"Peers".to_owned());
    assert!(interface, "the WireGuard interface: {facts:?}");
    let pools = page.texts("h3 + table tbody th");
    assert!(pools.iter().any(|p| p.starts_with("vpn")), "the VPN pools: {pools:?}");

    // Revoking alice's token from the page: it no longer signs in.
    let revoke = Selector::parse("#user-alice form").expect("selector");
    let action =
        page.doc().select(&revoke).next().and_then(|f| f.attr("action").map(str::to_owned));
    let action = action.expect("a revoke form");
    assert_eq!(alice_token.get("/api/v1/me").await.status, StatusCode::OK);
    assert_eq!(root.post(&action, &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(alice_token.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    let page = root.get("/admin").await;
    assert!(page.texts("#user-alice ul.tokens li")[0].contains("revoked"));

    // Quotas from the form, at the version shown; a stale form is refused.
    let version = Selector::parse("#tenant-acme input[name=version]").expect("selector");
    let version =
        page.doc().select(&version).next().and_then(|e| e.attr("value").map(str::to_owned));
    let version = version.expect("a version");
    let form = [
        ("version", version.as_str()),
        ("instances", "3"),
        ("cpu_millis", ""),
        ("memory_mb", ""),
        ("devices", ""),
        ("apps", ""),
        ("databases", ""),
    ];
    assert_eq!(root.post("/admin/tenants/acme/quotas", &form).await.status, StatusCode::SEE_OTHER);
    assert_eq!(root.post("/admin/tenants/acme/quotas", &form).await.status, StatusCode::CONFLICT);
    let alice_overview = root.get("/t/acme").await;
    assert_eq!(alice_overview.texts(".quota tbody tr:first-child td"), ["0", "3"]);
}
