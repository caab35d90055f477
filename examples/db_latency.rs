//! Measures the latency of `create`, `rotate_password` and `drop_database` of the PostgreSQL
//! provisioner against a real server: p50, p90 and max over a number of rounds. Each round also
//! times a bare `CREATE DATABASE ... TEMPLATE template0` and `DROP DATABASE` on the admin
//! connection, interleaved, so the provisioner's overhead shows as a ratio that load on the
//! machine does not distort much.
//!
//! ```text
//! cargo run --release --example db_latency --features postgres -- [--rounds 30] [--admin-url URL]
//! ```
//! The admin URL defaults to `$KWS_TEST_POSTGRES_URL`.

use std::{
    error::Error,
    time::{Duration, Instant},
};

use kws_core::{DnsLabel, OwnerId};
use kws_db::{DatabaseProvisioner, postgres::PostgresProvisioner};
use rand::Rng;
use sqlx::{Connection, PgConnection};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    percentile(&sorted, 0.5)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what:<16} n={:<4} p50 {:>7.1} ms   p90 {:>7.1} ms   max {:>7.1} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut admin_url = std::env::var("KWS_TEST_POSTGRES_URL").ok();
    let mut rounds = 10usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--rounds", Some(n)) => rounds = n.parse()?,
            ("--admin-url", Some(url)) => admin_url = Some(url),
            _ => return Err("usage: db_latency [--rounds N] [--admin-url URL]".into()),
        }
    }
    let admin_url = admin_url.ok_or("give --admin-url or set KWS_TEST_POSTGRES_URL")?;
    let provisioner = PostgresProvisioner::builder(admin_url.parse()?).build().await?;
    let mut admin = PgConnection::connect(&admin_url).await?;
    let suffix: u32 = rand::rng().random();
    let owner: OwnerId = format!("bench-{suffix:08x}").parse()?;
    let (mut create, mut rotate, mut drop) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare_create, mut bare_drop) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let name: DnsLabel = format!("db{round}").parse()?;
        let t = Instant::now();
        provisioner.create(&owner, &name).await?;
        create.push(t.elapsed());
        let t = Instant::now();
        provisioner.rotate_password(&owner, &name).await?;
        rotate.push(t.elapsed());
        let t = Instant::now();
        provisioner.drop_database(&owner, &name).await?;
        drop.push(t.elapsed());

        let bare = format!("\"kws_bare_{suffix:08x}_{round}\"");
        let t = Instant::now();
        sqlx::raw_sql(&format!("CREATE DATABASE {bare} TEMPLATE template0"))
            .execute(&mut admin)
            .await?;
        bare_create.push(t.elapsed());
        let t = Instant::now();
        sqlx::raw_sql(&format!("DROP DATABASE {bare}")).execute(&mut admin).await?;
        bare_drop.push(t.elapsed());
    }
    let ratio = |a: &[Duration], b: &[Duration]| {
        median(a).as_secs_f64() / median(b).as_secs_f64().max(f64::MIN_POSITIVE)
    };
    println!(
        "p50 ratios: create / bare CREATE DATABASE = {:.2}, drop_database / bare DROP DATABASE = {:.2}",
        ratio(&create, &bare_create),
        ratio(&drop, &bare_drop)
    );
    report("create", create);
    report("rotate_password", rotate);
    report("drop_database", drop);
    report("bare CREATE DB", bare_create);
    report("bare DROP DB", bare_drop);
    Ok(())
}
