//! Checks of the lifecycle: create, use, list, rotate, drop, quota, bad input, races.

use futures::future::join_all;
use sqlx::Row;

use super::{connect, create_ok, drop_ok, label, refused_connection, unique_owner};
use crate::{DatabaseProvisioner, DatabaseProvisionerExt, Error};

/// SQLSTATE 28P01: invalid_password (also what a role that does not exist gets).
const INVALID_PASSWORD: &str = "28P01";

/// A tenant connects with the returned URL, creates a table, writes and reads it; `list` shows
/// the database; after `drop_database` it is gone from `list` and from the server.
pub async fn tenant_uses_its_database<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("use");
    let name = label("shop");
    let creds = create_ok(p, &owner, &name).await;
    assert!(creds.password.expose().len() >= 22, "a password of at least 128 bits");
    let mut conn = connect(&creds).await;
    sqlx::raw_sql(
        "CREATE TABLE items (id serial PRIMARY KEY, title text NOT NULL); \
         INSERT INTO items (title) VALUES ('first'), ('second'); \
         UPDATE items SET title = 'zweite' WHERE id = 2; CREATE INDEX ON items (title)",
    )
    .execute(&mut conn)
    .await
    .expect("the tenant creates and writes a table");
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM items ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("the tenant reads its table");
    assert_eq!(titles, ["first", "zweite"]);
    let who = sqlx::query("SELECT current_user::text AS u, current_database()::text AS d")
        .fetch_one(&mut conn)
        .await
        .expect("session info");
    assert_eq!(who.get::<String, _>("u"), creds.role);
    assert_eq!(who.get::<String, _>("d"), creds.database);
    drop(conn);

    let listed = p.list(&owner).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((&listed[0].name, &listed[0].database), (&name, &creds.database));
    assert_eq!(listed[0].owner, owner);

    drop_ok(p, &owner, &name).await;
    assert!(p.list(&owner).await.expect("list").is_empty());
    let code = refused_connection(&creds.url(), "connect after drop").await;
    assert_eq!(code, INVALID_PASSWORD, "the role is gone");
}

/// `drop_database` succeeds while the tenant is connected; the session ends.
pub async fn drop_works_while_connected<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("busy");
    let name = label("busy");
    let creds = create_ok(p, &owner, &name).await;
    let mut first = connect(&creds).await;
    let mut second = connect(&creds).await;
    sqlx::raw_sql("CREATE TABLE t (x int); BEGIN; INSERT INTO t VALUES (1)")
        .execute(&mut second)
        .await
        .expect("an open transaction");
    drop_ok(p, &owner, &name).await;
    for conn in [&mut first, &mut second] {
        assert!(sqlx::raw_sql("SELECT 1").execute(conn).await.is_err(), "the session ended");
    }
    assert!(p.list(&owner).await.expect("list").is_empty());
    assert_eq!(refused_connection(&creds.url(), "connect after drop").await, INVALID_PASSWORD);
}

/// After `rotate_password` the old password is refused and the new one works; the database
/// and its data are unchanged.
pub async fn rotation_replaces_the_password<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("rot");
    let name = label("keys");
    let old = create_ok(p, &owner, &name).await;
    let mut conn = connect(&old).await;
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .expect("write");
    drop(conn);
    let new = p.rotate_password(&owner, &name).await.expect("rotate");
    assert_ne!(new.password, old.password);
    assert_eq!((&new.database, &new.role), (&old.database, &old.role));
    assert_eq!(refused_connection(&old.url(), "old password").await, INVALID_PASSWORD);
    let mut conn = connect(&new).await;
    let kept: String =
        sqlx::query_scalar("SELECT v FROM kept").fetch_one(&mut conn).await.expect("read");
    assert_eq!(kept, "still here");
    drop(conn);
    drop_ok(p, &owner, &name).await;
}

/// The owner's quota is enforced: the next `create` fails with `QuotaExceeded` and creates
/// nothing; after a drop there is room again.
pub async fn quota_is_enforced<P: DatabaseProvisioner + ?Sized>(p: &P, quota: u32) {
    let owner = unique_owner("quota");
    let other = unique_owner("quota");
    let names: Vec<_> = (0..quota).map(|i| label(&format!("db{i}"))).collect();
    for name in &names {
        create_ok(p, &owner, name).await;
    }
    let extra = label("one-more");
    match p.create(&owner, &extra).await {
        Err(Error::QuotaExceeded { owner: o, limit }) => {
            assert_eq!((o, limit), (owner.clone(), quota))
        }
        other => panic!("create beyond the quota: {other:?}"),
    }
    assert_eq!(p.list(&owner).await.expect("list").len(), quota as usize);
    // Another owner's quota is its own.
    create_ok(p, &other, &extra).await;
    drop_ok(p, &other, &extra).await;
    if let Some(first) = names.first() {
        drop_ok(p, &owner, first).await;
        create_ok(p, &owner, &extra).await;
        drop_ok(p, &owner, &extra).await;
    }
    for name in names.iter().skip(1) {
        drop_ok(p, &owner, name).await;
    }
    assert!(p.list(&owner).await.expect("list").is_empty());
}

/// Concurrent creates of distinct names by one owner: exactly `quota` succeed, the others are
/// `QuotaExceeded`.
pub async fn concurrent_creates_respect_the_quota<P: DatabaseProvisioner + ?Sized>(
    p: &P,
    quota: u32,
) {
    let owner = unique_owner("rush");
    let names: Vec<_> = (0..quota + 2).map(|i| label(&format!("rush{i}"))).collect();
    let results = join_all(names.iter().map(|name| p.create(&owner, name))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, quota as usize, "{results:?}");
    for r in &results {
        assert!(matches!(r, Ok(_) | Err(Error::QuotaExceeded { .. })), "{r:?}");
    }
    for db in p.list(&owner).await.expect("list") {
        drop_ok(p, &owner, &db.name).await;
    }
}

/// A second `create` of a name fails with `AlreadyExists` and leaves the first database as it
/// was (its password still works).
pub async fn duplicates_are_refused<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("dup");
    let name = label("twice");
    let creds = create_ok(p, &owner, &name).await;
    match p.create(&owner, &name).await {
        Err(Error::AlreadyExists { owner: o, name: n }) => {
            assert_eq!((o, n), (owner.clone(), name.clone()))
        }
        other => panic!("duplicate create: {other:?}"),
    }
    drop(connect(&creds).await);
    assert_eq!(p.list(&owner).await.expect("list").len(), 1);
    drop_ok(p, &owner, &name).await;
}

/// Dropping or rotating a name the owner does not have is `NotFound`, also when another owner
/// has that name (and that owner's database survives).
pub async fn unknown_names_are_not_found<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("nf");
    let stranger = unique_owner("nf");
    let name = label("mine");
    let creds = create_ok(p, &owner, &name).await;
    assert!(matches!(p.drop_database(&stranger, &name).await, Err(Error::NotFound { .. })));
    assert!(matches!(p.rotate_password(&stranger, &name).await, Err(Error::NotFound { .. })));
    drop(connect(&creds).await);
    drop_ok(p, &owner, &name).await;
    assert!(matches!(p.drop_database(&owner, &name).await, Err(Error::NotFound { .. })));
}

/// Hostile, overlong and uppercase names given as strings are typed errors, and nothing is
/// created for the owner.
pub async fn hostile_names_create_nothing<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("bad");
    let long = "a".repeat(64);
    for raw in [
        "x\"; DROP ROLE postgres; --",
        "x'; DROP ROLE postgres; --",
        "my db",
        "",
        "a$b",
        "a/b",
        &long,
    ] {
        match p.create_named(owner.as_str(), raw).await {
            Err(Error::InvalidName(e)) => assert_eq!(e.what, "database name", "{raw:?}"),
            other => panic!("create of {raw:?}: {other:?}"),
        }
    }
    assert!(matches!(p.create_named(owner.as_str(), "Shop").await, Err(Error::Uppercase { .. })));
    assert!(matches!(
        p.create_named(&format!("{owner}\"--"), "shop").await,
        Err(Error::InvalidName(e)) if e.what == "owner id"
    ));
    assert!(p.list(&owner).await.expect("list").is_empty(), "nothing was created");
}

/// Concurrent creates of one name: exactly one succeeds, the others are `AlreadyExists`.
pub async fn concurrent_creates_of_one_name<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("race");
    let name = label("contended");
    let results = join_all((0..4).map(|_| p.create(&owner, &name))).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        assert!(matches!(r, Ok(_) | Err(Error::AlreadyExists { .. })), "{r:?}");
    }
    if let Some(creds) = won.first() {
        drop(connect(creds).await);
    }
    drop_ok(p, &owner, &name).await;
}
