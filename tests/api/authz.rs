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
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in caller.
    Anyone,
    /// The operator; others 403.
    Operator,
    /// The operator, on a tenant nobody else is a member of; others 404.
    OperatorTenant,
    /// The operator, on `acme`: its members 403, others 404.
    OperatorIn,
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
        (Method::POST, t("/api/v1/tenants/acme/instances/web/start"), None, Role(MEMBER), S::OK),
        (Method::POST, t("/api/v1/tenants/acme/instances/web/stop"), None, Role(MEMBER), S::OK),
        (Method::POST, t("/api/v1/tenants/acme/instances/web/redeploy"), None, Role(MEMBER), S::OK),
        (Method::GET, t("/api/v1/tenants/acme/instances/web/logs"), None, Role(VIEWER), S::OK),
        (Method::GET, t("/api/v1/tenants/acme/instances/web/stats"), None, Role(VIEWER), S::OK),
        (Method::GET, t("/api/v1/tenants/acme/events?after=999999"), None, Role(VIEWER), S::OK),
        (Method::DELETE, t("/api/v1/users/me/tokens/{token}"), None, Anyone, S::NO_CONTENT),
        // Signing out needs no credential (it ends the cookie's session, if any).
        (Method::DELETE, t("/api/v1/sessions/current"), None, Public, S::NO_CONTENT),
        (
            Method::POST,
            t("/api/v1/sessions"),
            Some(json!({"user": "nobody-{c}", "password": "wrong-password"})),
            Public,
            S::UNAUTHORIZED,
        ),
        (Method::GET, t("/api/v1/openapi.json"), None, Public, S::OK),
        (Method::GET, t("/api/v1/tenants/acme/jobs"), None, Role(VIEWER), S::OK),
        (Method::PATCH, t("/api/v1/tenants/acme"), Some(json!({"quotas": {}})), OperatorIn, S::OK),
        // Embedded parts have no execution engine: an allowed caller learns that.
        (
            Method::POST,
            t("/api/v1/tenants/acme/jobs"),
            Some(json!({"language": "python3", "source": "print(1)"})),
            Role(MEMBER),
            S::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            t("/api/v1/tenants/acme/jobs/0190c1f00000700080000000000000aa"),
            None,
            Role(VIEWER),
            S::NOT_FOUND,
        ),
        (
            Method::GET,
            t("/api/v1/tenants/acme/jobs/0190c1f00000700080000000000000aa/events"),
            None,
            Role(VIEWER),
            S::NOT_FOUND,
        ),
        (Method::GET, t("/api/v1/tenants/acme/databases/nodb"), None, Role(VIEWER), S::NOT_FOUND),
        (
            Method::DELETE,
            t("/api/v1/tenants/acme/databases/nodb"),
            None,
            Role(MEMBER),
            S::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            t("/api/v1/tenants/acme/databases/nodb/rotate-password"),
            None,
            Role(MEMBER),
            S::SERVICE_UNAVAILABLE,
        ),
    ]
}

/// The status `caller` (its role in `acme`, `None` for the outsider) should get.
fn expected(need: Need, caller: &str, ok: StatusCode) -> StatusCode {
    if matches!(need, Need::Public) {
        return ok;
    }
    let role = match caller {
        "anonymous" => return StatusCode::UNAUTHORIZED,
        "operator" => return ok,
        "viewer" => Some(VIEWER),
        "member" => Some(MEMBER),
        "admin" => Some(ADMIN),
        _ => None,
    };
    match (need, role) {
        (Need::Public | Need::Anyone, _) => ok,
        (Need::Operator, _) | (Need::OperatorIn, Some(_)) => StatusCode::FORBIDDEN,
        (Need::OperatorIn, None) => StatusCode::NOT_FOUND,
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
    // A token of each caller's own for the revoke row (anonymous: a stranger's id).
    let mut spare = std::collections::HashMap::new();
    for (caller, client) in &callers {
        let id = if *caller == "anonymous" {
            uuid::Uuid::now_v7().to_string()
        } else {
            let body = json!({"name": "spare", "scopes": ["read"]});
            let made = client.post("/api/v1/users/me/tokens", body).await;
            made.expect(StatusCode::CREATED).body["id"].as_str().expect("id").to_owned()
        };
        spare.insert(*caller, id);
    }
    let ops = srv.operations().await;
    let op_id = ops[0].id.to_string();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (method, path, body, need, ok) in routes() {
        for (caller, client) in &callers {
            let path = path
                .replace("{c}", caller)
                .replace("{op}", &op_id)
                .replace("{token}", &spare[caller]);
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("{c}", caller)).expect("json")
            });
            // A stream's status comes with its headers; its body never ends.
            let stream =
                method == Method::GET && path.contains("/events") && !path.contains("/jobs/");
            let got = if stream {
                let r = client.request(method.clone(), &path).send().await.expect("send");
                if r.status() == StatusCode::OK {
                    let (status, headers) = (r.status(), r.headers().clone());
                    crate::server::Answer { status, headers, body: json!(null) }
                } else {
                    crate::server::answer(r).await
                }
            } else {
                client.send(method.clone(), &path, body).await
            };
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
    every_documented_route_has_a_row(&srv).await;
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

/// The rows cover the OpenAPI document exactly: a route added without a row fails here, and
/// so does a row for a route the document does not have.
async fn every_documented_route_has_a_row(srv: &Server) {
    let doc = srv.anonymous().get("/api/v1/openapi.json").await.expect(StatusCode::OK).body;
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let matches = |template: &str, path: &str| {
        let path = path.split('?').next().unwrap_or(path);
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
    };
    let mut covered = std::collections::BTreeSet::new();
    for (method, path, ..) in routes() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        // The most specific template: the one with the fewest parameters.
        let found = documented
            .iter()
            .filter(|(m, t)| *m == method.as_str() && matches(t, path))
            .min_by_key(|(_, t)| t.matches('{').count());
        let found =
            found.unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
        covered.insert(found.clone());
    }
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(missing.is_empty(), "documented routes without a row in the matrix: {missing:?}");
}
