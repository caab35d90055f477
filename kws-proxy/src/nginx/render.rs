//! The text of kws's nginx files: `http.conf` (the route table, the admin server and the two
//! servers every route shares), `admin.conf` and the Lua code of the table. None of them names a
//! route: a route is a line in the table, so the configuration stays the same size whatever the
//! number of routes.

use std::{fmt::Write as _, path::Path, path::PathBuf, time::Duration};

use kws_core::Domain;

use crate::nginx::{NginxConfig, ProxyTimeouts, admin};

/// The route table's code, loaded by `init_by_lua`.
pub(crate) const LUA_MODULE: &str = include_str!("kws_routes.lua");

/// The variable that `http.conf` maps from `$http_upgrade`.
const CONNECTION_VAR: &str = "$kws_connection_upgrade";

/// The biggest batch body the admin server keeps in memory (larger ones go through a temporary
/// file, which the Lua code reads too).
const ADMIN_BODY_BUFFER: &str = "16m";

/// A path as an nginx (and Lua) string: double-quoted; `NginxConfig::check` refused paths with
/// quotes, backslashes, control characters or non-UTF-8 bytes.
pub(crate) fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// Every file kws writes into its folder, and whether TLS routes can be served with them.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// `(path, text, private)`: private files are written with mode 0600.
    pub(crate) files: Vec<(PathBuf, String, bool)>,
    /// Whether `http.conf` loads the certificate (its files existed when rendered).
    pub(crate) certificate: bool,
}

/// The files of kws's folder for `config`. `domain` names kws's servers when they are not the
/// default servers; `token` guards the admin server.
pub(crate) fn files(config: &NginxConfig, domain: Option<&Domain>, token: &str) -> Rendered {
    let certificate = config.certificate.chain.is_file() && config.certificate.key.is_file();
    Rendered {
        files: vec![
            (config.lua_path(), LUA_MODULE.to_string(), false),
            (config.admin_conf_path(), admin::admin_conf(token), true),
            (config.http_conf_path(), http_conf(config, domain, certificate), false),
        ],
        certificate,
    }
}

/// `http.conf`: the one file the operator includes inside nginx's `http {}` block.
pub(crate) fn http_conf(
    config: &NginxConfig,
    domain: Option<&Domain>,
    certificate: bool,
) -> String {
    let mut out = String::from(
        "# Written by kws: include this file inside nginx's http {} block. It needs nginx's Lua\n\
         # module (Debian: libnginx-mod-http-lua) and holds the http block's init_by_lua.\n",
    );
    let _ = writeln!(out, "lua_shared_dict kws_routes {};", config.route_table_bytes);
    let _ = writeln!(
        out,
        "init_by_lua_block {{\n    kws_routes = dofile({lua})\n    kws_routes.gate = {gate}\n    \
         kws_routes.load({journal})\n}}",
        lua = quoted(&config.lua_path()),
        gate = config.ide_gate.is_some(),
        journal = quoted(&config.journal_path()),
    );
    let _ = writeln!(
        out,
        "map $http_upgrade {CONNECTION_VAR} {{\n    default upgrade;\n    '' close;\n}}"
    );
    let _ = writeln!(
        out,
        "# kws's admin server: loopback only, and only with the token of admin.conf.\n\
         server {{\n    listen {admin};\n    allow 127.0.0.1;\n    allow ::1;\n    deny all;\n    \
         client_max_body_size 0;\n    client_body_buffer_size {ADMIN_BODY_BUFFER};\n    \
         include {admin_conf};\n    \
         location = /kws/routes {{\n        content_by_lua_block {{ kws_routes.admin() }}\n    }}\n    \
         location / {{\n        return 404;\n    }}\n}}",
        admin = config.admin_listen,
        admin_conf = quoted(&config.admin_conf_path()),
    );
    let (default, names) = match (config.default_server, domain) {
        (false, Some(domain)) => ("", format!("*.{domain}")),
        _ => (" default_server", "_".to_string()),
    };
    let https = config.https_listen;
    let port = if https.port() == 443 { String::new() } else { format!(":{}", https.port()) };
    let _ = writeln!(
        out,
        "server {{\n    listen {http}{default};\n    server_name {names};\n    \
         location / {{\n        set $kws_upstream \"\";\n        \
         set $kws_gate_cookie \"\";\n        \
         rewrite_by_lua_block {{ kws_routes.route(false) }}\n    }}\n    \
         location @kws_redirect {{\n        return 308 https://$host{port}$request_uri;\n    }}\n\
         {locations}}}",
        http = config.http_listen,
        locations = named_locations(config),
    );
    let tls = if certificate {
        format!(
            "    ssl_certificate {chain};\n    ssl_certificate_key {key};\n    \
             ssl_certificate_by_lua_block {{ kws_routes.check_sni() }}\n",
            chain = quoted(&config.certificate.chain),
            key = quoted(&config.certificate.key),
        )
    } else {
        // No certificate yet: every handshake is refused until `reload` finds its files.
        "    ssl_reject_handshake on;\n".to_string()
    };
    let _ = writeln!(
        out,
        "server {{\n    listen {https} ssl{default};\n    server_name {names};\n{tls}    \
         location / {{\n        set $kws_upstream \"\";\n        \
         set $kws_gate_cookie \"\";\n        \
         rewrite_by_lua_block {{ kws_routes.route(true) }}\n    }}\n\
         {locations}}}",
        locations = named_locations(config),
    );
    out
}

/// The named locations `kws_routes.route` sends a request to, one per mode of `journal::Op`.
///
/// `$kws_upstream` and `$kws_gate_cookie` are set in `location /`, not in the server: a subrequest runs the
/// server's rewrites again, and its variables are its parent's, so a server-level `set` would
/// empty them before the gate's check reads them and the IDE's request is proxied.
fn named_locations(config: &NginxConfig) -> String {
    let t = &config.timeouts;
    let mut out = String::new();
    // An app sees the host it was published under, without a port; an IDE sees the Host header
    // the browser sent (with its port), as Host and X-Forwarded-Host: code-server's WebSocket
    // origin check compares the Origin with X-Forwarded-Host when there is one.
    for (mode, host, websocket) in
        [("app", "$host", false), ("app_ws", "$host", true), ("ide", "$http_host", true)]
    {
        let read = if websocket { t.websocket_read } else { t.read };
        let _ = write!(
            out,
            "    location @kws_{mode} {{\n        proxy_pass http://$kws_upstream;\n        \
             proxy_http_version 1.1;\n        \
             proxy_set_header Host {host};\n        \
             proxy_set_header X-Real-IP $remote_addr;\n        \
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
             proxy_set_header X-Forwarded-Proto $scheme;\n        \
             proxy_set_header X-Forwarded-Host {host};\n        \
             proxy_set_header X-Forwarded-Port $server_port;\n"
        );
        if mode == "ide" {
            // Before its IDE listens (just after a start), a page that reloads itself.
            out.push_str("        error_page 502 504 = @kws_ide_starting;\n");
        }
        if let (Some(_), "ide") = (config.ide_gate, mode) {
            // Asked before every request and upgrade; 401 signs in, 403 is hidden as 404.
            out.push_str(&format!(
                "        auth_request {GATE_CHECK};\n        \
                 auth_request_set $kws_signin $upstream_http_x_kws_signin;\n        \
                 error_page 401 = @kws_signin;\n        error_page 403 = @kws_hidden;\n"
            ));
        }
        if websocket {
            let _ = writeln!(out, "        proxy_set_header Upgrade $http_upgrade;");
            let _ = writeln!(out, "        proxy_set_header Connection {CONNECTION_VAR};");
        } else {
            let _ = writeln!(out, "        proxy_set_header Connection \"\";");
        }
        let _ = writeln!(out, "        proxy_connect_timeout {};", secs(t.connect));
        let _ = writeln!(out, "        proxy_send_timeout {};", secs(t.send));
        let _ = writeln!(out, "        proxy_read_timeout {};", secs(read));
        out.push_str("    }\n");
    }
    out.push_str(IDE_STARTING);
    if let Some(gate) = config.ide_gate {
        out.push_str(&gate_locations(gate, t));
    }
    out
}

/// What an IDE route answers while its upstream does not accept connections yet: 503 with
/// `Retry-After`, and a page that reloads itself every second.
const IDE_STARTING: &str = "    location @kws_ide_starting {\n        \
     default_type text/html;\n        add_header Retry-After 1 always;\n        \
     add_header Cache-Control no-store always;\n        \
     return 503 '<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta http-equiv=\"refresh\" content=\"1\"><title>Starting the IDE</title></head>\
     <body><p>The IDE is starting; this page reloads by itself.</p></body></html>';\n    }\n";

/// The internal location `auth_request` asks.
const GATE_CHECK: &str = "/_kws_gate_check";

/// The locations of the IDE gate at `gate`: the check (internal: it gets only the IDE cookie
/// that `kws_routes.route` took out of the request, and no body), the gate's own `/_kws/…`
/// pages, the sign-in redirect the check names, and the 404 of a refused visitor.
fn gate_locations(gate: std::net::SocketAddr, t: &ProxyTimeouts) -> String {
    format!(
        "    location = {GATE_CHECK} {{\n        internal;\n        \
         proxy_pass http://{gate}/_kws/check;\n        \
         proxy_pass_request_body off;\n        proxy_set_header Content-Length \"\";\n        \
         proxy_set_header Host $http_host;\n        \
         proxy_set_header Cookie $kws_gate_cookie;\n        \
         proxy_set_header X-Original-URI $request_uri;\n        \
         proxy_set_header X-Kws-Upgrade $http_upgrade;\n        \
         proxy_set_header X-Kws-Peer \"$remote_addr $remote_port\";\n        \
         proxy_set_header X-Kws-Local \"$server_addr $server_port\";\n        \
         proxy_connect_timeout {connect};\n        proxy_read_timeout {read};\n    }}\n    \
         location @kws_gate {{\n        proxy_pass http://{gate};\n        \
         proxy_http_version 1.1;\n        proxy_set_header Host $http_host;\n        \
         proxy_set_header Cookie $kws_gate_cookie;\n        \
         proxy_set_header X-Forwarded-Proto $scheme;\n        \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
         proxy_set_header X-Kws-Upgrade \"\";\n        \
         proxy_set_header X-Kws-Peer \"\";\n        \
         proxy_set_header X-Kws-Local \"\";\n        \
         proxy_set_header Connection \"\";\n    }}\n    \
         location @kws_signin {{\n        return 302 $kws_signin;\n    }}\n    \
         location @kws_hidden {{\n        return 404;\n    }}\n",
        connect = secs(t.connect),
        read = secs(t.read),
    )
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{CertFiles, nginx::ProxyTimeouts};

    fn config() -> NginxConfig {
        NginxConfig {
            binary: "nginx".into(),
            main_config: "/etc/nginx/nginx.conf".into(),
            prefix: "/etc/nginx".into(),
            pid_file: "/run/nginx.pid".into(),
            reload_timeout: Duration::from_secs(5),
            dir: PathBuf::from("/etc/kws/nginx"),
            http_listen: "0.0.0.0:80".parse().expect("addr"),
            https_listen: "0.0.0.0:443".parse().expect("addr"),
            admin_listen: "127.0.0.1:8099".parse().expect("addr"),
            route_table_bytes: 1 << 20,
            default_server: false,
            certificate: CertFiles {
                chain: "/etc/kws/tls/chain.pem".into(),
                key: "/etc/kws/tls/key.pem".into(),
            },
            timeouts: ProxyTimeouts::default(),
            ide_gate: None,
        }
    }

    fn location<'a>(text: &'a str, name: &str) -> &'a str {
        let start = text.find(&format!("location @kws_{name} {{")).expect("location");
        let end = text[start..].find("\n    }").expect("end") + start;
        &text[start..end]
    }

    #[test]
    fn ide_location_carries_websocket_headers_the_browser_host_and_a_long_read_timeout() {
        let text = http_conf(&config(), None, true);
        let ide = location(&text, "ide");
        assert!(ide.contains("proxy_set_header Host $http_host;"), "{ide}");
        assert!(ide.contains("proxy_set_header X-Forwarded-Host $http_host;"), "{ide}");
        assert!(ide.contains("proxy_set_header Upgrade $http_upgrade;"));
        assert!(ide.contains("proxy_set_header Connection $kws_connection_upgrade;"));
        assert!(ide.contains("proxy_read_timeout 3600s;"));
        assert!(ide.contains("error_page 502 504 = @kws_ide_starting;"), "{ide}");
        assert!(text.contains("location @kws_ide_starting {"));
        let ws = location(&text, "app_ws");
        assert!(ws.contains("proxy_set_header Host $host;") && ws.contains("Upgrade"), "{ws}");
    }

    #[test]
    fn app_location_has_forwarded_headers_no_upgrade_and_the_published_host_only() {
        let text = http_conf(&config(), None, true);
        let app = location(&text, "app");
        for header in ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-IP"] {
            assert!(app.contains(header), "{header} missing");
        }
        assert!(app.contains("proxy_set_header Host $host;"));
        assert!(app.contains("proxy_pass http://$kws_upstream;"));
        assert!(!app.contains("Upgrade"));
        assert!(app.contains("proxy_read_timeout 60s;"));
        assert!(app.contains("proxy_connect_timeout 5s;"));
    }

    #[test]
    fn servers_name_the_domain_unless_default_and_redirect_without_port_443() {
        let mut config = config();
        let domain: Domain = "example.test".parse().expect("domain");
        let text = http_conf(&config, Some(&domain), true);
        assert!(text.contains("server_name *.example.test;"));
        assert!(!text.contains("default_server"));
        assert!(text.contains("return 308 https://$host$request_uri;"));
        assert!(text.contains("ssl_certificate \"/etc/kws/tls/chain.pem\";"));
        assert!(text.contains("ssl_certificate_by_lua_block { kws_routes.check_sni() }"));
        assert!(text.contains("listen 127.0.0.1:8099;"));
        assert!(text.contains("include \"/etc/kws/nginx/admin.conf\";"));
        assert!(text.contains("lua_shared_dict kws_routes 1048576;"));
        config.default_server = true;
        config.https_listen = "127.0.0.1:8443".parse().expect("addr");
        let text = http_conf(&config, Some(&domain), true);
        assert!(text.contains("listen 127.0.0.1:8443 ssl default_server;"));
        assert!(text.contains("server_name _;"));
        assert!(text.contains("return 308 https://$host:8443$request_uri;"));
        assert_eq!(text, http_conf(&config, None, true), "the domain is not used then");
    }

    #[test]
    fn a_gate_checks_the_ide_location_only_and_serves_its_own_pages() {
        let plain = http_conf(&config(), None, true);
        assert!(!plain.contains("auth_request") && plain.contains("kws_routes.gate = false"));
        let gated =
            NginxConfig { ide_gate: Some("127.0.0.1:7070".parse().expect("addr")), ..config() };
        let text = http_conf(&gated, None, true);
        assert!(text.contains("kws_routes.gate = true"));
        let ide = location(&text, "ide");
        assert!(ide.contains("auth_request /_kws_gate_check;"), "{ide}");
        assert!(
            ide.contains("error_page 401 = @kws_signin;")
                && ide.contains("error_page 403 = @kws_hidden;")
        );
        for mode in ["app", "app_ws"] {
            assert!(!location(&text, mode).contains("auth_request"), "{mode}");
        }
        assert!(text.contains("proxy_pass http://127.0.0.1:7070/_kws/check;"));
        // The check learns a WebSocket's two ends, so the gate can close it later.
        assert!(text.contains("proxy_set_header X-Kws-Peer \"$remote_addr $remote_port\";"));
        assert!(text.contains("proxy_set_header X-Kws-Local \"$server_addr $server_port\";"));
        assert!(text.contains("location @kws_gate {\n        proxy_pass http://127.0.0.1:7070;"));
        assert!(text.contains("internal;"));
    }

    #[test]
    fn without_certificate_every_handshake_is_refused() {
        let text = http_conf(&config(), None, false);
        assert!(text.contains("ssl_reject_handshake on;"));
        assert!(!text.contains("ssl_certificate"));
    }
}
