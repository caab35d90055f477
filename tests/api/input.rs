//! Bad input over HTTP: every hostile name in every path parameter and body field is 400
//! naming the field, with nothing made; a malformed body is 400, an oversized one 413; the
//! session cookie from another origin is refused; unknown routes are JSON 404s.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::server::{Auth, Server};

/// The hostile values of TESTING.md.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> =
        ["", "a b", "a;b", "-a", "a/..", "x\0y", "$(id)", "a'b", "a\"b", "a\nb", "..", "é", "a`b"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    v.push("n".repeat(64));
    v
}

/// Every byte but ASCII letters and digits percent-encoded (so `..` and `/` stay one segment).
fn segment(raw: &str) -> String {
    raw.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_400_naming_the_field_and_make_nothing() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let op = &srv.operator;
    op.post("/api/v1/tenants/acme/instances", json!({"name": "web", "app_ports": [3000]}))
        .await
        .expect(StatusCode::CREATED);
    let before = srv.operations().await.len();
    let mut wrong = Vec::new();
    let mut check = |what: String, a: crate::server::Answer, field: &str| {
        let ok = a.status == StatusCode::BAD_REQUEST
            && a.body["error"]["field"].as_str() == Some(field)
            && ["invalid", "malformed_body"].contains(&a.code());
        if !ok {
            wrong.push(format!("{what}: {} {}", a.status, a.body));
        }
    };
    for bad in hostile() {
        let b = || bad.clone();
        let bodies: Vec<(&str, Value, &str)> = vec![
            ("instances", json!({"name": b()}), "name"),
            ("instances", json!({"name": "ok1", "image": b()}), "image"),
            ("devices", json!({"name": b()}), "name"),
            ("devices", json!({"name": "ok2", "public_key": b()}), "public_key"),
            ("apps", json!({"name": b(), "instance": "web", "port": 3000}), "name"),
            ("apps", json!({"name": "ok3", "instance": b(), "port": 3000}), "instance"),
        ];
        for (kind, body, field) in bodies {
            if bad.len() == 64 && field == "image" {
                continue; // 64 letters are a well-formed image reference
            }
            let a = op.post(&format!("/api/v1/tenants/acme/{kind}"), body.clone()).await;
            check(format!("POST {kind} {body}"), a, field);
        }
        // An empty segment is another route, and `..` a dot segment the client resolves.
        if !bad.is_empty() && bad != ".." {
            let mut env = serde_json::Map::new();
            env.insert(bad.clone(), json!("x"));
            if bad.len() < 64 {
                let a = op
                    .post("/api/v1/tenants/acme/instances", json!({"name": "ok4", "env": env}))
                    .await;
                check(format!("POST instances env {bad:?}"), a, "env");
            }
            let seg = segment(&bad);
            for path in [
                format!("/api/v1/tenants/acme/instances/{seg}"),
                format!("/api/v1/tenants/acme/devices/{seg}"),
                format!("/api/v1/tenants/acme/apps/{seg}"),
            ] {
                let a = op.get(&path).await;
                check(format!("GET {path}"), a, "name");
                let a = op.send(Method::DELETE, &path, None).await;
                check(format!("DELETE {path}"), a, "name");
            }
            let path = format!("/api/v1/tenants/acme/instances/{seg}/stop");
            check(format!("POST {path}"), op.post(&path, json!({})).await, "name");
            let path = format!("/api/v1/tenants/{seg}/instances");
            check(format!("GET {path}"), op.get(&path).await, "tenant");
        }
        let a = op.post("/api/v1/tenants", json!({"id": bad, "display_name": "x"})).await;
        check(format!("POST tenants {bad:?}"), a, "id");
        let a = op.post("/api/v1/users", json!({"name": bad, "display_name": "x"})).await;
        check(format!("POST users {bad:?}"), a, "user");
    }
    // Numbers out of range, wrong types.
    for (body, field) in [
        (json!({"name": "ok5", "instance": "web", "port": 70000}), "port"),
        (json!({"name": "ok5", "instance": "web", "port": "80"}), "port"),
    ] {
        let a = op.post("/api/v1/tenants/acme/apps", body.clone()).await;
        check(format!("POST apps {body}"), a, field);
    }
    let a =
        op.post("/api/v1/tenants/acme/instances", json!({"name": "ok6", "cpu_millis": -1})).await;
    check("cpu_millis -1".into(), a, "cpu_millis");
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
    // Nothing was made.
    for kind in ["instances", "devices", "apps"] {
        let listed = op.get(&format!("/api/v1/tenants/acme/{kind}")).await.expect(StatusCode::OK);
        let names: Vec<_> = listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        let want: Vec<Value> = if kind == "instances" { vec![json!("web")] } else { vec![] };
        assert_eq!(names, want, "{kind}");
    }
    let after = srv.operations().await.len();
    assert_eq!(after, before, "no operation recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unrouted_requests_get_json_errors() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let op = &srv.operator;
    let send = |body: &'static str| {
        op.request(Method::POST, "/api/v1/tenants/acme/instances")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    for body in ["{", "[]", "null", "{\"name\": 3}", ""] {
        let a = crate::server::answer(send(body).await.expect("send")).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "malformed_body"),
            "{body:?}: {:?}",
            a.body
        );
    }
    let big = json!({"name": "big", "env": {"K": "v".repeat(70 << 10)}});
    let a = op.post("/api/v1/tenants/acme/instances", big).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{:?}",
        a.body
    );
    let a = op.get("/api/v1/nothing/here").await;
    assert_eq!((a.status, a.code()), (StatusCode::NOT_FOUND, "not_found"));
    let a = op.send(Method::PATCH, "/api/v1/tenants", None).await;
    assert_eq!((a.status, a.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert!(a.headers.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_refused_from_another_origin() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (session, token) = srv.member("eve", "acme", "member").await;
    let host = srv.base.trim_start_matches("http://").to_owned();
    let post =
        |client: &crate::server::Client, site: Option<&str>, origin: Option<&str>, name: &str| {
            let mut r = client
                .request(Method::POST, "/api/v1/tenants/acme/devices")
                .json(&json!({"name": name}));
            if let Some(site) = site {
                r = r.header("sec-fetch-site", site);
            }
            if let Some(origin) = origin {
                r = r.header(header::ORIGIN, origin);
            }
            r.send()
        };
    // A tenant's app at <app>.<domain> is same-site: refused like a cross-site page.
    for (site, origin) in [
        (Some("same-site"), None),
        (Some("cross-site"), None),
        (None, Some("http://evil.example")),
        (None, Some(format!("http://shop.{host}").leak() as &str)),
    ] {
        let a =
            crate::server::answer(post(&session, site, origin, "x1").await.expect("send")).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::FORBIDDEN, "cross_origin"),
            "{site:?} {origin:?}"
        );
    }
    let own = format!("http://{host}");
    for (site, origin, name) in
        [(Some("same-origin"), None, "ok1"), (None, Some(own.as_str()), "ok2"), (None, None, "ok3")]
    {
        let a =
            crate::server::answer(post(&session, site, origin, name).await.expect("send")).await;
        assert_eq!(a.status, StatusCode::CREATED, "{site:?} {origin:?}: {:?}", a.body);
    }
    // A bearer token is no ambient credential: a cross-site header does not matter.
    let a =
        crate::server::answer(post(&token, Some("cross-site"), None, "ok4").await.expect("send"))
            .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    // Reads are not state changes.
    let a = session
        .request(Method::GET, "/api/v1/me")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("send");
    assert_eq!(a.status(), StatusCode::OK);
    let _ = Auth::Anonymous;
}
