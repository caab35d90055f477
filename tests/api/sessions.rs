//! Signing in and out, and tokens: every failure is 401 with the same code, logins are
//! throttled, a session ends at logout, a token's scopes bound what it does, and a revoked or
//! expired token is 401.

use std::time::Duration;

use kws_accounts::AccountSettings;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::server::{Auth, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_begin_at_login_and_end_at_logout() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (session, _) = srv.member("ann", "acme", "member").await;
    let me = session.get("/api/v1/me").await.expect(StatusCode::OK);
    assert_eq!(me.body["user"], "ann");
    assert_eq!(me.body["via"], "session");
    assert_eq!(me.body["tenants"], json!([{"tenant": "acme", "role": "member"}]));
    // A second login is a second session: the first still works.
    let other = srv.anonymous().login("ann", "ann-password-123").await;
    assert_ne!(Auth::Cookie(other.clone()).cookie(), session.auth.cookie());
    let out = session.send(Method::DELETE, "/api/v1/sessions/current", None).await;
    let out = out.expect(StatusCode::NO_CONTENT);
    let cleared = out.headers.get(header::SET_COOKIE).expect("cleared").to_str().expect("text");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("HttpOnly"), "{cleared}");
    let gone = session.get("/api/v1/me").await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(gone.code(), "unauthenticated");
    assert!(gone.body["error"]["request_id"].is_string(), "{:?}", gone.body);
    session.with(Auth::Cookie(other)).get("/api/v1/me").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_look_alike_and_are_throttled() {
    let settings = AccountSettings { failures_per_account: 3, ..AccountSettings::default() };
    let Some(srv) = Server::start_with(settings).await else { return };
    srv.tenant("acme").await;
    srv.member("bob", "acme", "viewer").await;
    let anon = srv.anonymous();
    let wrong =
        anon.post("/api/v1/sessions", json!({"user": "bob", "password": "x".repeat(12)})).await;
    let unknown =
        anon.post("/api/v1/sessions", json!({"user": "nobody", "password": "x".repeat(12)})).await;
    assert_eq!(
        (wrong.status, unknown.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong.body["error"]["message"], unknown.body["error"]["message"]);
    for _ in 0..2 {
        anon.post("/api/v1/sessions", json!({"user": "bob", "password": "y".repeat(12)}))
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    // Throttled now, even with the right password.
    let right = json!({"user": "bob", "password": "bob-password-123"});
    let refused = anon.post("/api/v1/sessions", right).await.expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    let after: u64 =
        refused.headers[header::RETRY_AFTER].to_str().expect("text").parse().expect("secs");
    assert!((1..=300).contains(&after), "Retry-After {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_scoped_revocable_and_expire() {
    let Some(srv) = Server::start().await else { return };
    srv.tenant("acme").await;
    let (session, _) = srv.member("cat", "acme", "member").await;
    let read = session.make_token("reader", &["read"]).await;
    let reader = session.with(Auth::Token(read));
    reader.get("/api/v1/tenants/acme/instances").await.expect(StatusCode::OK);
    let write = reader.post("/api/v1/tenants/acme/devices", json!({"name": "laptop"})).await;
    assert_eq!(write.expect(StatusCode::FORBIDDEN).code(), "forbidden");
    // Listing shows no secret; revoking makes it 401.
    let listed = session.get("/api/v1/users/me/tokens").await.expect(StatusCode::OK);
    let items = listed.body["items"].as_array().expect("items").clone();
    assert!(items.iter().all(|t| t.get("token").is_none()), "{items:?}");
    let id = items.iter().find(|t| t["name"] == "reader").expect("reader")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Another user cannot revoke it: 404, and it keeps working.
    let (other, _) = srv.member("dan", "acme", "admin").await;
    let path = format!("/api/v1/users/me/tokens/{id}");
    other.send(Method::DELETE, &path, None).await.expect(StatusCode::NOT_FOUND);
    reader.get("/api/v1/me").await.expect(StatusCode::OK);
    session.send(Method::DELETE, &path, None).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(
        reader.get("/api/v1/me").await.expect(StatusCode::UNAUTHORIZED).code(),
        "unauthenticated"
    );
    // An expiring token stops at its time.
    let made = session
        .post(
            "/api/v1/users/me/tokens",
            json!({"name": "short", "scopes": ["read"], "expires_in": 1}),
        )
        .await
        .expect(StatusCode::CREATED);
    let short = session.with(Auth::Token(made.body["token"].as_str().expect("token").into()));
    short.get("/api/v1/me").await.expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    short.get("/api/v1/me").await.expect(StatusCode::UNAUTHORIZED);
    // Garbage is 401 too, never 500.
    for bad in ["kws_nope", "nope", ""] {
        session
            .with(Auth::Token(bad.into()))
            .get("/api/v1/me")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
}
