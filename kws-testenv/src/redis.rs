//! An isolated Redis keyspace per test on the shared server, or a private server for tests that
//! must flush, kill or restart Redis.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{random_suffix, unavailable};

/// A key prefix of its own on the server named by `KWS_TEST_REDIS_URL`; its keys are deleted
/// when this value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
}

/// A keyspace on the shared test Redis.
///
/// Returns `None` (after a loud skip message) when `KWS_TEST_REDIS_URL` is unset or the server
/// does not answer; panics instead under `KWS_TEST_REQUIRE=1`.
pub async fn redis() -> Option<TestRedis> {
    let Ok(url) = std::env::var("KWS_TEST_REDIS_URL") else {
        return unavailable("Redis", "KWS_TEST_REDIS_URL is not set");
    };
    if let Err(e) = ping(&url).await {
        return unavailable("Redis", format!("{url} does not answer PING: {e}"));
    }
    Some(TestRedis { url, prefix: format!("kws-t-{}:", random_suffix(12)) })
}

async fn ping(url: &str) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ())
}

impl TestRedis {
    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key prefix this test owns (ends with `:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A client for the server.
    ///
    /// # Panics
    /// When the URL does not parse (it answered PING, so it does).
    pub fn client(&self) -> redis::Client {
        match redis::Client::open(self.url.as_str()) {
            Ok(c) => c,
            Err(e) => panic!("redis url {}: {e}", self.url),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query(&mut conn) {
            Ok(k) => k,
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// A private `redis-server` on a loopback port of its own, with no persistence; killed (and its
/// folder removed) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server (the `redis-server` on `PATH`) and waits until it answers.
    ///
    /// Returns `None` (after a loud skip message) when it cannot start; panics instead under
    /// `KWS_TEST_REQUIRE=1`.
    pub async fn start() -> Option<Self> {
        let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => return unavailable("redis-server", format!("no free port: {e}")),
        };
        let dir = std::env::temp_dir().join(format!("kws-t-redis-{}", random_suffix(8)));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return unavailable("redis-server", format!("cannot create {}: {e}", dir.display()));
        }
        let mut server = Self { port, dir, child: None };
        if let Err(e) = server.spawn() {
            return unavailable("redis-server", e);
        }
        match server.wait_ready().await {
            Ok(()) => Some(server),
            Err(e) => unavailable("redis-server", e),
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match ping(&self.url()).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("redis-server on port {} never answered: {e}", self.port));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server with SIGKILL (all its data is gone: it has no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    ///
    /// # Panics
    /// When the new server does not come up.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
        if let Err(e) = self.wait_ready().await {
            panic!("{e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
