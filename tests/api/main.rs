//! `kwsd`'s API against a real server on loopback, with the PostgreSQL store and accounts:
//! sessions and tokens, the authorization matrix, bad input, the flows, idempotency and
//! shutdown.
//!
//! Needs `KWS_TEST_POSTGRES_URL` (a fresh database per test); skips loudly without it and
//! fails under `KWS_TEST_REQUIRE=1`.

mod authz;
mod browser;
mod cli;
mod daemon;
mod dashboard;
mod flows;
mod ide;
mod ide_browser;
mod input;
mod openapi;
mod server;
mod sessions;
mod sse;
