//! The test environment itself, against the real services: each helper gives a working,
//! isolated resource, and a missing service fails loudly under `KWS_TEST_REQUIRE=1`.

use std::process::Command;

/// Set in a child process that must act as a test whose service is missing.
const CHILD: &str = "KWS_TESTENV_CHILD";

#[tokio::test]
async fn missing_postgres_fails_under_require_naming_the_service() {
    if std::env::var(CHILD).is_ok() {
        // The child: PostgreSQL points at a closed port; this must panic under REQUIRE.
        let db = kws_testenv::postgres().await;
        assert!(db.is_none(), "a closed port cannot give a database");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let run = |require: &str| {
        Command::new(&exe)
            .args([
                "--exact",
                "missing_postgres_fails_under_require_naming_the_service",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("KWS_TEST_REQUIRE", require)
            .env("KWS_TEST_POSTGRES_URL", "postgres://postgres:x@127.0.0.1:1/postgres")
            .output()
            .expect("run child")
    };
    let required = run("1");
    let out = String::from_utf8_lossy(&required.stdout).into_owned()
        + &String::from_utf8_lossy(&required.stderr);
    assert!(!required.status.success(), "must fail under KWS_TEST_REQUIRE=1: {out}");
    assert!(out.contains("required service PostgreSQL is unavailable"), "{out}");

    let by_hand = run("0");
    let err = String::from_utf8_lossy(&by_hand.stderr).into_owned();
    assert!(by_hand.status.success(), "must skip by hand: {err}");
    assert!(err.contains("SKIPPED: PostgreSQL is unavailable"), "{err}");
}

#[tokio::test]
async fn postgres_gives_a_fresh_database_and_drops_it() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(db) = kws_testenv::postgres().await else { return };
    let name = db.name().to_owned();
    let admin_url = db.admin_url().to_owned();
    let pool = db.pool().await;
    let (current,): (String,) =
        sqlx::query_as("SELECT current_database()").fetch_one(&pool).await.expect("query");
    assert_eq!(current, name);
    drop(pool);
    drop(db);
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("admin");
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .expect("count");
    assert_eq!(left, 0, "the test database must be dropped");
}

#[tokio::test]
async fn redis_keyspaces_are_isolated_and_cleaned() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(space) = kws_testenv::redis().await else { return };
    let client = space.client();
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let key = format!("{}k", space.prefix());
    let _: () = redis::cmd("SET").arg(&key).arg("v").query_async(&mut conn).await.expect("set");
    drop(space);
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.expect("exists");
    assert_eq!(exists, 0, "keys of a dropped keyspace are deleted");
}

#[tokio::test]
async fn private_redis_server_can_be_killed_and_restarted() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(mut server) = kws_testenv::RedisServer::start().await else { return };
    let client = redis::Client::open(server.url()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await.expect("set");
    server.restart().await;
    let mut conn = client.get_multiplexed_async_connection().await.expect("reconnect");
    let v: Option<String> = redis::cmd("GET").arg("k").query_async(&mut conn).await.expect("get");
    assert_eq!(v, None, "a restarted server has lost its data");
}

#[test]
fn netns_is_isolated_and_deleted_on_drop() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(a) = kws_testenv::Netns::new() else { return };
    let Some(b) = kws_testenv::Netns::new() else { return };
    a.veth_to(&b, ("va", "10.250.0.1/30"), ("vb", "10.250.0.2/30"));
    let ping = a.exec(["ping", "-c", "1", "-W", "2", "10.250.0.2"]);
    assert!(ping.status.success(), "veth peers reach each other");
    let routes = a.run(["ip", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "a test namespace has no default route: {routes}");
    let links = a.enter(|| {
        std::fs::read_to_string("/proc/thread-self/net/dev")
            .expect("read /proc/thread-self/net/dev")
    });
    assert!(links.contains("va:"), "enter() runs inside the namespace: {links}");
    let name = a.name().to_owned();
    drop(a);
    let list = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name), "namespace deleted");
}

#[tokio::test]
async fn docker_answers_with_test_labels() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(docker) = kws_testenv::docker().await else { return };
    let version = docker.version().await.expect("version");
    assert!(version.api_version.is_some());
    let labels = kws_testenv::test_labels();
    assert_eq!(labels.get(kws_testenv::TEST_LABEL).map(String::as_str), Some("1"));
}
