//! The text of kws's nginx files: the shared `http.conf`, one file per route, and the wrapper
//! that checks one route file alone.

use std::{fmt::Write as _, net::SocketAddr, path::Path, time::Duration};

use crate::{Route, nginx::NginxConfig};

/// The first line of every route file: `# kws-route <route as JSON>`.
pub(crate) const HEADER: &str = "# kws-route ";

/// The variable that `http.conf` maps from `$http_upgrade`.
const CONNECTION_VAR: &str = "$kws_connection_upgrade";

/// A path as an nginx string (double-quoted; `NginxConfig::check_paths` refused paths with
/// quotes, backslashes, control characters or non-UTF-8 bytes).
pub(crate) fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// The part every check needs: the WebSocket `Connection` map.
pub(crate) fn shared_conf() -> String {
    format!(
        "# Written by kws. The Connection header for WebSocket routes.\n\
         map $http_upgrade {CONNECTION_VAR} {{\n    default upgrade;\n    '' close;\n}}\n"
    )
}

/// `http.conf`: the one file the operator includes inside nginx's `http {}` block.
pub(crate) fn http_conf(config: &NginxConfig) -> String {
    let mut out =
        String::from("# Written by kws: include this file inside nginx's http {} block.\n");
    let _ = writeln!(out, "include {};", quoted(&config.shared_conf_path()));
    if config.default_server {
        // Unknown hosts get 404 over HTTP and a refused TLS handshake over HTTPS, never some
        // other route's upstream.
        let _ = writeln!(
            out,
            "server {{\n    listen {} default_server;\n    return 404;\n}}",
            config.http_listen
        );
        let _ = writeln!(
            out,
            "server {{\n    listen {} ssl default_server;\n    ssl_reject_handshake on;\n}}",
            config.https_listen
        );
    }
    let _ = writeln!(out, "include {};", quoted(&config.routes_dir().join("*.conf")));
    out
}

/// The wrapper that checks `route_file` alone with `nginx -t -c`. Its temporary paths lie in
/// kws's check folder, so a check never creates folders elsewhere.
pub(crate) fn wrapper_conf(config: &NginxConfig, route_file: &Path) -> String {
    let check = config.check_dir();
    let mut out = format!(
        "# Written by kws: checks one route file alone.\npid {pid};\nevents {{}}\nhttp {{\n",
        pid = quoted(&check.join("nginx.pid")),
    );
    for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(out, "    {kind}_temp_path {};", quoted(&check.join("tmp").join(kind)));
    }
    let _ = writeln!(out, "    server_names_hash_bucket_size 256;");
    let _ = writeln!(out, "    include {};", quoted(&config.shared_conf_path()));
    let _ = writeln!(out, "    include {};\n}}", quoted(route_file));
    out
}

/// The file of one route.
pub(crate) fn route_conf(config: &NginxConfig, route: &Route) -> String {
    let host = route.host();
    let mut out = String::new();
    // The header carries the route so the table can be rebuilt from the files.
    let json = serde_json::to_string(route).unwrap_or_default();
    let _ = writeln!(out, "{HEADER}{json}");
    if route.tls() {
        let https = config.https_listen;
        let port = if https.port() == 443 { String::new() } else { format!(":{}", https.port()) };
        let _ = writeln!(
            out,
            "server {{\n    listen {http};\n    server_name {host};\n    \
             return 308 https://{host}{port}$request_uri;\n}}",
            http = config.http_listen
        );
        let _ = writeln!(
            out,
            "server {{\n    listen {https} ssl;\n    server_name {host};\n    \
             ssl_certificate {chain};\n    ssl_certificate_key {key};\n{location}}}",
            chain = quoted(&config.certificate.chain),
            key = quoted(&config.certificate.key),
            location = location(config, route, route.upstream()),
        );
    } else {
        let _ = writeln!(
            out,
            "server {{\n    listen {http};\n    server_name {host};\n{location}}}",
            http = config.http_listen,
            location = location(config, route, route.upstream()),
        );
    }
    out
}

fn location(config: &NginxConfig, route: &Route, upstream: SocketAddr) -> String {
    let t = &config.timeouts;
    let read = if route.websocket() { t.websocket_read } else { t.read };
    let mut out = format!(
        "    location / {{\n        proxy_pass http://{upstream};\n        \
         proxy_http_version 1.1;\n        \
         proxy_set_header Host $host;\n        \
         proxy_set_header X-Real-IP $remote_addr;\n        \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        \
         proxy_set_header X-Forwarded-Proto $scheme;\n        \
         proxy_set_header X-Forwarded-Host $host;\n        \
         proxy_set_header X-Forwarded-Port $server_port;\n"
    );
    if route.websocket() {
        let _ = writeln!(out, "        proxy_set_header Upgrade $http_upgrade;");
        let _ = writeln!(out, "        proxy_set_header Connection {CONNECTION_VAR};");
    } else {
        let _ = writeln!(out, "        proxy_set_header Connection \"\";");
    }
    let _ = writeln!(out, "        proxy_connect_timeout {};", secs(t.connect));
    let _ = writeln!(out, "        proxy_send_timeout {};", secs(t.send));
    let _ = writeln!(out, "        proxy_read_timeout {};", secs(read));
    out.push_str("    }\n");
    out
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
            default_server: false,
            certificate: CertFiles {
                chain: "/etc/kws/tls/chain.pem".into(),
                key: "/etc/kws/tls/key.pem".into(),
            },
            timeouts: ProxyTimeouts::default(),
        }
    }

    fn host(raw: &str) -> kws_core::Hostname {
        kws_core::Hostname::parse(raw).expect("host")
    }

    #[test]
    fn ide_route_carries_websocket_headers_and_long_read_timeout() {
        let route = Route::ide(host("ws1.example.test"), "10.1.2.3:8443".parse().expect("addr"));
        let text = route_conf(&config(), &route);
        assert!(text.starts_with(HEADER));
        assert!(text.contains("proxy_set_header Upgrade $http_upgrade;"));
        assert!(text.contains("proxy_set_header Connection $kws_connection_upgrade;"));
        assert!(text.contains("proxy_read_timeout 3600s;"));
        // Port 443 is not written in the redirect.
        assert!(text.contains("return 308 https://ws1.example.test$request_uri;"));
        assert!(text.contains("ssl_certificate \"/etc/kws/tls/chain.pem\";"));
    }

    #[test]
    fn app_route_has_forwarded_headers_and_no_upgrade() {
        let route = Route::app(host("shop.example.test"), "[fd00::5]:8080".parse().expect("addr"));
        let text = route_conf(&config(), &route);
        for header in ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-IP"] {
            assert!(text.contains(header), "{header} missing");
        }
        assert!(text.contains("proxy_pass http://[fd00::5]:8080;"));
        assert!(!text.contains("Upgrade"));
        assert!(text.contains("proxy_read_timeout 60s;"));
        assert!(text.contains("proxy_connect_timeout 5s;"));
    }

    #[test]
    fn plain_http_route_has_no_tls_and_no_redirect() {
        let route = Route::app(host("p.example.test"), "10.0.0.1:80".parse().expect("addr"))
            .with_tls(false);
        let text = route_conf(&config(), &route);
        assert!(!text.contains("ssl"));
        assert!(!text.contains("return 308"));
        assert!(text.contains("listen 0.0.0.0:80;"));
    }

    #[test]
    fn http_conf_declares_default_servers_only_when_asked() {
        let mut config = config();
        assert!(!http_conf(&config).contains("default_server"));
        config.default_server = true;
        let text = http_conf(&config);
        assert!(text.contains("ssl_reject_handshake on;"));
        assert!(text.contains("include \"/etc/kws/nginx/routes/*.conf\";"));
    }
}
