//! The authorization matrix: every route × {anonymous, viewer, member of another tenant,
//! member, admin, operator} → the status expected, on the PostgreSQL store. A tenant the
//! caller is not a member of is 404 on every route, never 403; afterwards nothing the
//! outsider, the anonymous caller or the viewer tried exists or is gone.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Client, Server};

/// What a route needs.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Any signed-in caller.
    Anyone,
    /// The operator; others 403.
    Operator,
    /// The operator, on a tenant nobody else is a member of; others 404.
    OperatorTenant,
    /// At least this role in `acme`; a non-member 404, a lower role 403.
    Role(u8),
}

const VIEWER: u8 = 1;
const MEMBER: u8 = 2;
const ADMIN: u8 = 3;

/// The routes: method, path, body (`{c}` is the caller's key), need, the status on success.
fn routes() -> Vec<(Method, &'static str, Option<Value>, Need, StatusCode)> {
    use Need::*;
    use StatusCode as S;
    let t = |p: &'static str| p;
    vec![
        (Method::GET, t("/api/v1/me"), None, Anyone, S::OK),
        (Method::GET, t("/api/v1/tenants"), None, Anyone, S::OK),
        (Method::GET, t("/api/v1/users/me/tokens"), None, Anyone, S::OK),
        (
            Method::POST,
            t("/api/v1/users/me/tokens"),
            Some(json!({"name": "t", "scopes": ["read"]})),
            Anyone,
            S::CREATED,
        ),
        (
            Method::POST,
            t("/api/v1/tenants"),
            Some(json!({"id": "n-{c}", "display_name": "n"})),
            Operator,
            S::CREATED,
        ),
        (
            Method::POST,
            t("/api/v1/users"),
            Some(json!({"name": "u-{c}", "display_name": "u"})),
            Operator,
            S::CREATED,
        ),
        (Method::DELETE, t("/api/v1/tenants/t-{c}"), None, OperatorTenant, S::NO_CONTENT),
        (Method::GET, t("/api/v1/tenants/acme"), None, Role(VIEWER), S::OK),
        (Method::GET, t("/api/v1/tenants/acme/members"), None, Role(VIEWER), S::OK),
        (
            Method::PUT,
            t("/api/v1/tenants/acme/members/zed-{c}"),
            Some(json!({"role": "viewer"})),
            Role(ADMIN),
            S::OK,
        ),
        (
            Method::DELETE,
            t("/api/v1/tenants/acme/members/zed-{c}"),
            None,
            Role(ADMIN),
            S::NO_CONTENT,
        ),
        (Method::GET, t("/api/v1/tenants/acme/instances"), None, Role(VIEWER), S::OK),
        (
            Method::POST,
            t("/api/v1/tenants/acme/instances"),
            Some(json!({"name": "i-{c}"})),
            Role(MEMBER),
            S::CREATED,
        ),
        (Method::GET, t("/api/v1/tenants/acme/instances/web"), None, Role(VIEWER), S::OK),
        (Method::POST, t("/api/v1/tenants/acme/instances/web/restart"), None, Role(MEMBER), S::OK),
        (
            Method::GET,
            t("/api/v1/tenants/acme/instances/web/wait?state=running&timeout=5"),
            None,
            Role(VIEWER),
            S::OK,
        ),
        (
            Method::DELETE,
            t("/api/v1/tenants/acme/instances/r-{c}"),
            None,
            Role(MEMBER),
            S::NO_CONTENT,
        ),
        (Method::GET, t("/api/v1/tenants/acme/devices"), None, Role(VIEWER), S::OK),
        (
            Method::POST,
            t("/api/v1/tenants/acme/devices"),
            Some(json!({"name": "d-{c}"})),
            Role(MEMBER),
            S::CREATED,
        ),
        (Method::GET, t("/api/v1/tenants/acme/devices/phone"), None, Role(VIEWER), S::OK),
        (
            Method::DELETE,
            t("/api/v1/tenants/acme/devices/rd-{c}"),
            None,
            Role(MEMBER),
            S::NO_CONTENT,
        ),
        (Method::GET, t("/api/v1/tenants/acme/apps"), None, Role(VIEWER), S::OK),
        (
            Method::POST,
            t("/api/v1/tenants/acme/apps"),
            Some(json!({"name": "a-{c}", "instance": "web", "port": 3000})),
            Role(MEMBER),
            S::CREATED,
        ),
        (Method::GET, t("/api/v1/tenants/acme/apps/shop"), None, Role(VIEWER), S::OK),
        (Method::DELETE, t("/api/v1/tenants/acme/apps/ra-{c}"), None, Role(MEMBER), S::NO_CONTENT),
        (Method::GET, t("/api/v1/tenants/acme/databases"), None, Role(VIEWER), S::OK),
        // Embedded parts have no database server: an allowed caller learns that.
        (
            Method::POST,
            t("/api/v1/tenants/acme/databases"),
            Some(json!({"name": "db-{c}"})),
            Role(MEMBER),
            S::SERVICE_UNAVAILABLE,
        ),
        (Method::GET, t("/api/v1/tenants/acme/operations/{op}"), None, Role(VIEWER), S::OK),
    ]
}

/// The status `caller` (its role in `acme`, `None` for the outsider) should get.
fn expected(need: Need, caller: &str, ok: StatusCode) -> StatusCode {
    let role = match caller {
        "anonymous" => return StatusCode::UNAUTHORIZED,
        "operator" => return ok,
        "viewer" => Some(VIEWER),
        "member" => Some(MEMBER),
        "admin" => Some(ADMIN),
        _ => None,
    };
    match (need, role) {
        (Need::Anyone, _) => ok,
        (Need::Operator, _) => StatusCode::FORBIDDEN,
        (Need::OperatorTenant, _) | (Need::Role(_), None) => StatusCode::NOT_FOUND,
        (Need::Role(need), Some(have)) if have >= need => ok,
        (Need::Role(_), Some(_)) => StatusCode::FORBIDDEN,
    }
}

const CALLERS: [&str; 6] = ["anonymous", "viewer", "outsider", "member", "admin", "operator"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_its_role_allows() {
    let Some(srv) = Server::start().await else { return };
    let op = &srv.operator;
    // No quota: the matrix makes more instances than the default allows.
    let acme = json!({"id": "acme", "display_name": "Acme", "quotas": {}});
    op.post("/api/v1/tenants", acme).await.expect(StatusCode::CREATED);
    srv.tenant("other").await;
    let web = op
        .post("/api/v1/tenants/acme/instances", json!({"name": "web", "app_ports": [3000]}))
        .await
        .expect(StatusCode::CREATED);
    assert!(web.headers.contains_key("etag"));
    op.post("/api/v1/tenants/acme/devices", json!({"name": "phone"}))
        .await
        .expect(StatusCode::CREATED);
    let shop = json!({"name": "shop", "instance": "web", "port": 3000});
    op.post("/api/v1/tenants/acme/apps", shop).await.expect(StatusCode::CREATED);
    let mut callers: Vec<(&str, Client)> =
        vec![("anonymous", srv.anonymous()), ("operator", op.clone())];
    for (name, tenant, role) in [
        ("viewer", "acme", "viewer"),
        ("outsider", "other", "admin"),
        ("member", "acme", "member"),
        ("boss", "acme", "admin"),
    ] {
        let key = if name == "boss" { "admin" } else { name };
        callers.push((key, srv.member(name, tenant, role).await.1));
    }
    // What each caller's destructive rows act on.
    for c in CALLERS {
        op.post("/api/v1/tenants", json!({"id": format!("t-{c}"), "display_name": "t"}))
            .await
            .expect(StatusCode::CREATED);
        let user = json!({"name": format!("zed-{c}"), "display_name": "z"});
        op.post("/api/v1/users", user).await.expect(StatusCode::CREATED);
        op.post("/api/v1/tenants/acme/instances", json!({"name": format!("r-{c}")}))
            .await
            .expect(StatusCode::CREATED);
        op.post("/api/v1/tenants/acme/devices", json!({"name": format!("rd-{c}")}))
            .await
            .expect(StatusCode::CREATED);
        let app = json!({"name": format!("ra-{c}"), "instance": "web", "port": 3000});
        op.post("/api/v1/tenants/acme/apps", app).await.expect(StatusCode::CREATED);
    }
    let ops = srv
        .state
        .platform()
        .store()
        .list_operations(&kws::platform::Scope::Operator, None, None, 1)
        .await
        .expect("ops");
    let op_id = ops[0].id.to_string();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (method, path, body, need, ok) in routes() {
        for (caller, client) in &callers {
            let path = path.replace("{c}", caller).replace("{op}", &op_id);
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("{c}", caller)).expect("json")
            });
            let got = client.send(method.clone(), &path, body).await;
            let want = expected(need, caller, ok);
            checked += 1;
            if got.status != want {
                wrong.push(format!(
                    "{method} {path} as {caller}: {} (want {want}) {}",
                    got.status, got.body
                ));
            }
            if got.status.is_client_error() && got.status != StatusCode::NOT_FOUND {
                assert!(got.body["error"]["code"].is_string(), "{method} {path}: {:?}", got.body);
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {checked} answers wrong:\n{}", wrong.len(), wrong.join("\n"));
    // Nothing the callers without the right made or removed anything.
    for c in ["anonymous", "viewer", "outsider"] {
        op.get(&format!("/api/v1/tenants/acme/instances/i-{c}"))
            .await
            .expect(StatusCode::NOT_FOUND);
        op.get(&format!("/api/v1/tenants/acme/instances/r-{c}")).await.expect(StatusCode::OK);
        op.get(&format!("/api/v1/tenants/acme/devices/rd-{c}")).await.expect(StatusCode::OK);
        op.get(&format!("/api/v1/tenants/t-{c}")).await.expect(StatusCode::OK);
    }
    let others = op.get("/api/v1/tenants/other/instances").await.expect(StatusCode::OK);
    assert_eq!(others.body["items"], json!([]), "the outsider's tenant got nothing");
}
