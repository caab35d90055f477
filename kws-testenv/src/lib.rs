//! kws-testenv gives each test the real parts it needs: a fresh PostgreSQL database, an
//! isolated Redis keyspace (or a private Redis server), a Docker client, and network namespaces
//! that are deleted on drop. A test whose service is missing skips with a loud message when run
//! by hand, and fails under `KWS_TEST_REQUIRE=1` (as `scripts/test` and CI set it).
//!
//! ```no_run
//! # async fn t() {
//! # #[cfg(feature = "postgres")] {
//! let Some(db) = kws_testenv::postgres().await else { return };
//! let pool = db.pool().await;
//! # }
//! # }
//! ```

#[cfg(feature = "docker")]
mod docker;
mod forward;
mod netns;
#[cfg(feature = "docker")]
mod netns_docker;
mod pebble;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod require;
mod wg_quick;

#[cfg(feature = "docker")]
pub use docker::{TEST_LABEL, docker, test_labels};
pub use forward::forward;
pub use netns::Netns;
#[cfg(feature = "docker")]
pub use netns_docker::NetnsDocker;
pub use pebble::Pebble;
#[cfg(feature = "postgres")]
pub use postgres::{TestDb, postgres};
#[cfg(feature = "redis")]
pub use redis::{RedisServer, TestRedis, redis};
pub use require::{random_suffix, required, run_id, unavailable};
pub use wg_quick::{WgQuickClient, split_wg_quick};
