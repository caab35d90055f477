//! Creates a managed PostgreSQL database for an owner, uses it as the tenant through the
//! returned URL, rotates its password, lists the owner's databases and drops it again.
//!
//! ```text
//! cargo run --example db_create --features postgres -- \
//!     [--admin-url postgres://postgres:...@127.0.0.1:5432/postgres] [--owner alice] [--name shop] [--keep]
//! ```
//! The admin URL defaults to `$KWS_TEST_POSTGRES_URL` (what `scripts/services env` exports);
//! the owner defaults to a fresh `demo-<random>`. With `--keep` the database stays.

use std::error::Error;

use kws_core::{DnsLabel, OwnerId};
use kws_db::{DatabaseProvisioner, postgres::PostgresProvisioner};
use rand::Rng;
use sqlx::{Connection, PgConnection};

struct Args {
    admin_url: String,
    owner: OwnerId,
    name: DnsLabel,
    keep: bool,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut admin_url = std::env::var("KWS_TEST_POSTGRES_URL").ok();
    let suffix: u32 = rand::rng().random();
    let mut owner: OwnerId = format!("demo-{suffix:08x}").parse()?;
    let mut name: DnsLabel = "app".parse()?;
    let mut keep = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--admin-url" => admin_url = Some(value()?),
            "--owner" => owner = kws_db::parse_name("owner id", &value()?).map(OwnerId::from)?,
            "--name" => name = kws_db::parse_name("database name", &value()?)?,
            "--keep" => keep = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let admin_url = admin_url.ok_or("give --admin-url or set KWS_TEST_POSTGRES_URL")?;
    Ok(Args { admin_url, owner, name, keep })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let Args { admin_url, owner, name, keep } = args()?;
    let provisioner = PostgresProvisioner::builder(admin_url.parse()?).build().await?;

    let creds = provisioner.create(&owner, &name).await?;
    println!("created {owner}/{name}: database {} for role {}", creds.database, creds.role);
    println!("  url: {}", creds.url().replace(creds.password.expose(), "<password>"));

    let mut tenant = PgConnection::connect(&creds.url()).await?;
    sqlx::raw_sql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        .execute(&mut tenant)
        .await?;
    sqlx::query("INSERT INTO notes (body) VALUES ($1)").bind("hello").execute(&mut tenant).await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notes").fetch_one(&mut tenant).await?;
    println!("  as the tenant: created table notes, {count} row");
    let denied = sqlx::raw_sql("CREATE DATABASE not_allowed").execute(&mut tenant).await.is_err();
    println!("  as the tenant: CREATE DATABASE refused: {denied}");
    tenant.close().await?;

    let rotated = provisioner.rotate_password(&owner, &name).await?;
    let old_refused = PgConnection::connect(&creds.url()).await.is_err();
    PgConnection::connect(&rotated.url()).await?.close().await?;
    println!("rotated the password: old refused: {old_refused}, new accepted: true");

    for db in provisioner.list(&owner).await? {
        println!("listed {}/{}: {} (created {})", db.owner, db.name, db.database, db.created_at);
    }
    if keep {
        println!("kept; connect with {}", rotated.url());
    } else {
        provisioner.drop_database(&owner, &name).await?;
        println!("dropped {owner}/{name}; {} left", provisioner.list(&owner).await?.len());
    }
    Ok(())
}
