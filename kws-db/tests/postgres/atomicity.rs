//! `create` is atomic (a failure at any step leaves nothing; a crash is cleaned up by the next
//! call), never touches objects it did not make, and the catalogue outlives the provisioner.

use kws_db::{
    DatabaseProvisioner, Error,
    postgres::{CreateStep, Fault, PostgresProvisioner},
    testkit,
};

use crate::support::{Fixture, objects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_of_create_leaves_nothing() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let owner = testkit::unique_owner("fail");
    let name = testkit::label("half");
    let ident = format!("kws_{owner}_{name}");
    for step in CreateStep::ALL {
        let failing = fx.failing(1, step, Fault::Fail).await;
        match failing.create(&owner, &name).await {
            Err(Error::Backend { source, .. }) => {
                assert!(source.to_string().contains("fault injected"), "{step:?}: {source}");
            }
            other => panic!("{step:?}: {other:?}"),
        }
        assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0], "after a failure at {step:?}");
    }
    // Nothing of the quota of 1 was used up.
    let p = PostgresProvisioner::builder(fx.admin_options())
        .max_databases_per_owner(1)
        .build()
        .await
        .expect("provisioner");
    let creds = testkit::create_ok(&p, &owner, &name).await;
    drop(testkit::connect(&creds).await);
    testkit::drop_ok(&p, &owner, &name).await;
    assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_create_is_cleaned_up_by_the_next_call_for_the_owner() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let p = fx.provisioner(1).await;
    let owner = testkit::unique_owner("crash");
    let name = testkit::label("orphan");
    let ident = format!("kws_{owner}_{name}");
    for (i, step) in CreateStep::ALL.into_iter().enumerate() {
        let crashing = fx.failing(5, step, Fault::Crash).await;
        assert!(crashing.create(&owner, &name).await.is_err(), "{step:?}");
        let [roles, dbs, rows] = objects(&mut admin, &ident).await;
        assert_eq!(rows, 1, "{step:?}: the row records the interrupted create");
        assert_eq!((roles, dbs), (i64::from(i >= 1), i64::from(i >= 2)), "{step:?}");
        if step == CreateStep::DatabaseCreated {
            // Before PUBLIC's CONNECT is revoked, nobody may connect at all.
            let open: bool =
                sqlx::query_scalar("SELECT datallowconn FROM pg_database WHERE datname = $1")
                    .bind(&ident)
                    .fetch_one(&mut admin)
                    .await
                    .expect("pg_database");
            assert!(!open, "a fresh database is closed until it is restricted");
        }
        assert!(p.list(&owner).await.expect("list").is_empty(), "{step:?}: not listed");
        // The next operation for the owner (here a create of the same name, under a quota of
        // one) removes the leftovers first.
        let creds = testkit::create_ok(&p, &owner, &name).await;
        drop(testkit::connect(&creds).await);
        testkit::drop_ok(&p, &owner, &name).await;
        assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0], "{step:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_role_or_database_of_the_derived_name_is_left_alone() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let p = fx.provisioner(5).await;
    let owner = testkit::unique_owner("foreign");
    for (kind, statement) in [("role", "CREATE ROLE"), ("database", "CREATE DATABASE")] {
        let name = testkit::label(kind);
        let ident = format!("kws_{owner}_{name}");
        let quoted = testkit::quote(&ident);
        sqlx::raw_sql(&format!("{statement} {quoted}"))
            .execute(&mut admin)
            .await
            .expect("an object made by someone else");
        let result = p.create(&owner, &name).await;
        let left = objects(&mut admin, &ident).await;
        let undo = if kind == "role" { "DROP ROLE" } else { "DROP DATABASE" };
        sqlx::raw_sql(&format!("{undo} {quoted}"))
            .execute(&mut admin)
            .await
            .expect("drop the foreign object");
        match result {
            Err(Error::IdentifierTaken { kind: k, identifier }) => {
                assert_eq!((k, identifier), (kind, ident));
            }
            other => panic!("{kind}: {other:?}"),
        }
        // Only the foreign object is left: create undid its own steps and nothing else.
        let expected = if kind == "role" { [1, 0, 0] } else { [0, 1, 0] };
        assert_eq!(left, expected, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_survives_a_restart() {
    let Some(fx) = Fixture::new().await else { return };
    let owner = testkit::unique_owner("restart");
    let (a, b) = (testkit::label("a"), testkit::label("b"));
    {
        let first = fx.provisioner(2).await;
        testkit::create_ok(&first, &owner, &a).await;
        testkit::create_ok(&first, &owner, &b).await;
    }
    let second = fx.provisioner(2).await;
    let listed = second.list(&owner).await.expect("list");
    let names: Vec<_> = listed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "oldest first");
    assert!(listed[0].created_at <= listed[1].created_at);
    let c = testkit::label("c");
    assert!(matches!(second.create(&owner, &c).await, Err(Error::QuotaExceeded { limit: 2, .. })));
    testkit::drop_ok(&second, &owner, &a).await;
    testkit::drop_ok(&second, &owner, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_admin_session_is_reported_and_cleaned_up_by_the_next_call() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let p = fx.provisioner(1).await;
    let owner = testkit::unique_owner("lost");
    let name = testkit::label("cut");
    let ident = format!("kws_{owner}_{name}");
    for step in [CreateStep::RoleCreated, CreateStep::DatabaseRestricted] {
        let cut = fx.failing(5, step, Fault::Disconnect).await;
        match cut.create(&owner, &name).await {
            Err(Error::CleanupPending { cause, cleanup }) => {
                assert!(matches!(*cause, Error::Backend { .. }), "{step:?}: {cause}");
                assert!(matches!(*cleanup, Error::Backend { .. }), "{step:?}: {cleanup}");
            }
            other => panic!("{step:?}: {other:?}"),
        }
        let [roles, _, rows] = objects(&mut admin, &ident).await;
        assert_eq!((roles, rows), (1, 1), "{step:?}: left for the next call");
        let creds = testkit::create_ok(&p, &owner, &name).await;
        drop(testkit::connect(&creds).await);
        testkit::drop_ok(&p, &owner, &name).await;
        assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0], "{step:?}");
    }
}
