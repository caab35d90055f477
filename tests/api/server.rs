//! A real `kwsd` for the API tests: the Platform on its embedded parts with the PostgreSQL
//! store, accounts in PostgreSQL, served on a port of loopback chosen by the kernel, and a
//! client per caller.

use std::{sync::Arc, time::Duration};

use kws::{
    daemon,
    http::{AppState, Drained, HttpSettings, serve},
    platform::{Platform, PlatformParts, store::PostgresStore},
};
use kws_accounts::{AccountSettings, Accounts, PostgresAccountStore};
use kws_testenv::TestDb;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running server and its operator's client.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) state: AppState,
    pub(crate) operator: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<Drained>>>,
    _db: TestDb,
}

/// A caller: a token, a session cookie, or nothing (anonymous).
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) auth: Auth,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Auth {
    Anonymous,
    Token(String),
    Cookie(String),
}

impl Auth {
    /// The cookie, for a session.
    pub(crate) fn cookie(&self) -> Option<&str> {
        match self {
            Auth::Cookie(c) => Some(c),
            _ => None,
        }
    }
}

/// An answer: status, headers, body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Panics unless the status is `want`.
    #[track_caller]
    pub(crate) fn expect(self, want: StatusCode) -> Self {
        assert_eq!(self.status, want, "answer {:?}", self.body);
        self
    }
}

pub(crate) fn settings() -> HttpSettings {
    HttpSettings { max_body: 64 << 10, drain: Duration::from_secs(3), ..HttpSettings::default() }
}

impl Server {
    /// Starts a server on a fresh database; `None` when PostgreSQL is not there (the test
    /// then skips, or fails under `KWS_TEST_REQUIRE=1`).
    pub(crate) async fn start() -> Option<Self> {
        Self::start_with(AccountSettings::default()).await
    }

    pub(crate) async fn start_with(accounts: AccountSettings) -> Option<Self> {
        let db = kws_testenv::postgres().await?;
        let mut parts = PlatformParts::embedded().await.expect("embedded parts");
        parts.store = Arc::new(PostgresStore::connect(db.pool_with(8).await).await.expect("store"));
        let platform = Platform::new(parts);
        platform.start().await.expect("platform start");
        let store = PostgresAccountStore::new(db.pool_with(4).await).await.expect("accounts");
        let accounts = Accounts::new(Arc::new(store), accounts);
        let started = daemon::start(platform, accounts, settings()).await.expect("daemon");
        let first = started.first_admin.expect("a first operator on a fresh store");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = started.state.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let router = kws::web::app(state.clone());
        let task = tokio::spawn(serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            state.shutdown().clone(),
            state.settings().drain,
        ));
        let anonymous = Client::new(&base, Auth::Anonymous);
        let cookie = anonymous.login(&first.user, first.password.expose()).await;
        let session = Client::new(&base, Auth::Cookie(cookie));
        let token = session.make_token("operator", &["read", "write", "exec"]).await;
        let operator = Client::new(&base, Auth::Token(token));
        Some(Self { base, state, operator, stop: Some(stop), task: Some(task), _db: db })
    }

    /// A client with no credentials.
    pub(crate) fn anonymous(&self) -> Client {
        Client::new(&self.base, Auth::Anonymous)
    }

    /// Makes tenant `id` (by the operator).
    pub(crate) async fn tenant(&self, id: &str) {
        self.operator
            .send(Method::POST, "/api/v1/tenants", Some(json!({"id": id, "display_name": id})))
            .await
            .expect(StatusCode::CREATED);
    }

    /// Makes user `name` with `role` in `tenant` and answers its session client and a token
    /// client with every scope.
    pub(crate) async fn member(&self, name: &str, tenant: &str, role: &str) -> (Client, Client) {
        let password = format!("{name}-password-123");
        let body = json!({"name": name, "display_name": name, "password": password});
        self.operator
            .send(Method::POST, "/api/v1/users", Some(body))
            .await
            .expect(StatusCode::CREATED);
        let path = format!("/api/v1/tenants/{tenant}/members/{name}");
        self.operator
            .send(Method::PUT, &path, Some(json!({"role": role})))
            .await
            .expect(StatusCode::OK);
        let cookie = self.anonymous().login(name, &password).await;
        let session = Client::new(&self.base, Auth::Cookie(cookie));
        let token = session.make_token("all", &["read", "write", "exec"]).await;
        (session, Client::new(&self.base, Auth::Token(token)))
    }

    /// Every operation the Platform recorded, newest first (1,000 at most).
    pub(crate) async fn operations(&self) -> Vec<kws::platform::store::Operation> {
        let scope = kws::platform::Scope::Operator;
        let store = self.state.platform().store();
        store.list_operations(&scope, None, None, 1000).await.expect("operations")
    }

    /// Shuts down and answers how the drain went.
    pub(crate) async fn stop(mut self) -> Drained {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        task.await.expect("server task").expect("serve")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Client {
    pub(crate) fn new(base: &str, auth: Auth) -> Self {
        Self { base: base.to_owned(), http: reqwest::Client::new(), auth }
    }

    /// The same caller with another credential.
    pub(crate) fn with(&self, auth: Auth) -> Self {
        Self { auth, ..self.clone() }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Anonymous => r,
            Auth::Token(t) => r.bearer_auth(t),
            Auth::Cookie(c) => r.header(header::COOKIE, c),
        }
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self.request(method, path);
        if let Some(body) = body {
            r = r.json(&body);
        }
        answer(r.send().await.expect("send")).await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Signs in and answers the `Cookie` header value of the session.
    pub(crate) async fn login(&self, user: &str, password: &str) -> String {
        let a = self.post("/api/v1/sessions", json!({"user": user, "password": password})).await;
        assert_eq!(a.status, StatusCode::CREATED, "login of {user}: {:?}", a.body);
        let set = a.headers.get(header::SET_COOKIE).expect("Set-Cookie").to_str().expect("text");
        set.split(';').next().expect("pair").to_owned()
    }

    /// Makes a token with `scopes` and answers it.
    pub(crate) async fn make_token(&self, name: &str, scopes: &[&str]) -> String {
        let a = self.post("/api/v1/users/me/tokens", json!({"name": name, "scopes": scopes})).await;
        let a = a.expect(StatusCode::CREATED);
        a.body["token"].as_str().expect("token").to_owned()
    }
}

pub(crate) async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body }
}
