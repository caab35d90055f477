//! What an IDE route does with an IDE gate, the same on every backend: a stand-in gate (the
//! real one, kwsd's, is tested through kwsd in the root crate) and the checks through the proxy.

use std::net::SocketAddr;

use axum::{
    http::{HeaderMap, StatusCode, Uri},
    routing::get,
};

/// A stand-in for kwsd's gate: `/_kws/check` passes a request whose cookies hold
/// `kws_ide=member`, hides `kws_ide=stranger` (403) and sends anyone else to sign in (401
/// naming where); its other pages answer the path and the cookies they got.
pub async fn gate() -> SocketAddr {
    let cookie =
        |h: &HeaderMap| h.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let check = move |h: HeaderMap| async move {
        let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if text("x-kws-upgrade").eq_ignore_ascii_case("websocket") {
            let ends = format!("{} / {}", text("x-kws-peer"), text("x-kws-local"));
            *UPGRADES.lock().expect("upgrades") = Some(ends);
        }
        let cookies = cookie(&h);
        let has = |pair: &str| cookies.split(';').any(|p| p.trim() == pair);
        match (has("kws_ide=member"), has("kws_ide=stranger")) {
            (true, _) => (StatusCode::NO_CONTENT, [("x-kws-signin", "-")]),
            (_, true) => (StatusCode::FORBIDDEN, [("x-kws-signin", "-")]),
            _ => (StatusCode::UNAUTHORIZED, [("x-kws-signin", "https://dash.test/ide/g")]),
        }
    };
    let page = move |h: HeaderMap, uri: Uri| async move {
        let peer = h.get("x-kws-peer").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        format!("gate {} cookie={} peer={peer}", uri.path(), cookie(&h))
    };
    let app = axum::Router::new().route("/_kws/check", get(check)).fallback(page);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The ends of the last WebSocket upgrade a stand-in gate was asked about: `"<peer address>
/// <peer port> / <local address> <local port>"`.
static UPGRADES: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// `curl` of `https://<host><path>` through the proxy at `https` with `cookie` (and `extra`
/// arguments): `(status, Location, body)`.
pub async fn through(
    https: SocketAddr,
    ca: &std::path::Path,
    host: &str,
    path: &str,
    cookie: &str,
    extra: &[&str],
) -> (String, String, String) {
    let mut args: Vec<String> = vec![
        "-w".into(),
        "\n%{http_code} %{redirect_url}".into(),
        "--resolve".into(),
        format!("{host}:{}:127.0.0.1", https.port()),
        "--cacert".into(),
        ca.display().to_string(),
        "-H".into(),
        format!("Cookie: {cookie}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(format!("https://{host}:{}{path}", https.port()));
    let out = super::curl(&args).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (status, location) = last.split_once(' ').unwrap_or((last, ""));
    (status.to_owned(), location.to_owned(), body.to_owned())
}

/// With the IDE route `g.example.test` and the app route `shop.example.test` (both to
/// `support::upstream("ide")`) published behind the proxy at `https` and the stand-in gate:
/// no cookie redirects to the sign-in the gate names, another tenant's cookie is 404, a
/// member's passes without the IDE cookie reaching the IDE, the host's `/_kws/` is the gate's,
/// the check's own location is not reachable, an app is not checked, and a WebSocket upgrade
/// is checked too.
pub async fn gate_checks(https: SocketAddr, ca: &std::path::Path) {
    let ide = "g.example.test";
    let (status, location, _) = through(https, ca, ide, "/", "", &[]).await;
    assert_eq!((status.as_str(), location.as_str()), ("302", "https://dash.test/ide/g"));
    let (status, _, body) = through(https, ca, ide, "/", "kws_ide=stranger", &[]).await;
    assert_eq!(status, "404", "another tenant's visitor sees nothing: {body}");
    let (status, _, body) = through(https, ca, ide, "/", "a=1; kws_ide=member; b=2", &[]).await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("upstream ide"), "{body}");
    let seen = body.split("cookie=").nth(1).unwrap_or("").trim();
    let pairs: Vec<&str> = seen.split(';').map(str::trim).filter(|p| !p.is_empty()).collect();
    assert_eq!(pairs, ["a=1", "b=2"], "the IDE never sees its cookie: {body}");
    let (status, _, body) = through(https, ca, ide, "/_kws/enter?t=1", "kws_ide=x", &[]).await;
    assert_eq!(status, "200", "{body}");
    assert!(body.starts_with("gate /_kws/enter cookie=") && body.contains("kws_ide=x"), "{body}");
    let (status, _, _) = through(https, ca, ide, "/_kws_gate_check", "kws_ide=member", &[]).await;
    assert_ne!(status, "204", "the check is not a page");
    // What only the proxy tells the gate (a WebSocket's ends, which the gate may close) cannot
    // come from a browser: the gate's check is not public, and its page never sees them.
    let forged = ["-H", "X-Kws-Upgrade: websocket", "-H", "X-Kws-Peer: 127.0.0.1 5432"];
    let (status, _, _) = through(https, ca, ide, "/_kws/check", "kws_ide=member", &forged).await;
    assert_eq!(status, "404", "the gate's check through the IDE host");
    let (_, _, body) = through(https, ca, ide, "/_kws/enter", "kws_ide=x", &forged).await;
    assert!(body.ends_with("peer=-"), "a forged header reached the gate: {body}");
    let (status, _, body) = through(https, ca, "shop.example.test", "/_kws/enter", "", &[]).await;
    assert!(
        status == "200" && body.contains("upstream ide"),
        "an app is not gated: {status} {body}"
    );

    let upgrade = [
        "--http1.1",
        "-o",
        "/dev/null",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "--max-time",
        "3",
    ];
    let (status, _, _) = through(https, ca, ide, "/ws", "", &upgrade).await;
    assert_eq!(status, "302", "an upgrade without the cookie");
    super::websocket_echo_with(ide, https, ca, &["through the gate"], Some("kws_ide=member")).await;
    // The gate learnt the upgrade's two ends (to close it when access ends): the client's
    // loopback address and a port, and the proxy's HTTPS port.
    let ends = UPGRADES.lock().expect("upgrades").clone().unwrap_or_default();
    let (peer, local) = ends.split_once(" / ").unwrap_or_default();
    assert!(peer.starts_with("127.0.0.1 ") && peer[10..].parse::<u16>().is_ok(), "{ends}");
    assert!(local.ends_with(&format!(" {}", https.port())), "{ends}");
}
