//! The conformance suite (feature `testkit`): [`conformance`] checks an [`AccountStore`]
//! against the contract documented on the trait, [`service_conformance`] checks [`Accounts`]
//! end to end over whatever store it has. Every store's tests run both.
//!
//! Each check makes users of its own (`t-<tag>-<random>`), so the suite can run again on the
//! same store (the same database) and beside other tests. The one exception is the purge
//! check, which counts every row of the store that ended before a day in 2000: do not run two
//! suites on one store at the same time.
//!
//! The checks panic with a message naming what broke.

mod grants;
mod purge;
mod service;
mod service_tokens;
mod sessions;
mod throttle;
mod tokens;
mod users;

pub use grants::{grant, grants_follow_their_session, tickets_end_to_end};
pub use purge::purge_counts_and_removes_only_the_ended;
pub use service::{hostile_input_is_invalid, login_logout_and_password};
pub use service_tokens::tokens_end_to_end;
pub use sessions::{passwords_replace_and_end_sessions, sessions_by_digest_and_by_user};
pub use throttle::throttles_accounts_and_addresses;
pub use tokens::{revoke_keeps_the_first_time, tokens_by_digest_and_newest_first};
pub use users::delete_user_removes_that_user_only;

use std::net::{IpAddr, Ipv6Addr};

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use kws_core::DnsLabel;
use rand::Rng as _;
use uuid::Uuid;

use crate::{AccountStore, Accounts, Secret, SessionRecord, TokenRecord, TokenScopes};

/// Runs every store check on `store`.
pub async fn conformance(store: &dyn AccountStore) {
    sessions_by_digest_and_by_user(store).await;
    grants_follow_their_session(store).await;
    passwords_replace_and_end_sessions(store).await;
    tokens_by_digest_and_newest_first(store).await;
    revoke_keeps_the_first_time(store).await;
    delete_user_removes_that_user_only(store).await;
    purge_counts_and_removes_only_the_ended(store).await;
}

/// Runs every service check on `accounts`, whose settings must allow at least 3 failed logins
/// per account and per address (the defaults do). The throttling check makes services of its
/// own, with small limits, over the same store.
pub async fn service_conformance(accounts: &Accounts) {
    login_logout_and_password(accounts).await;
    tokens_end_to_end(accounts).await;
    tickets_end_to_end(accounts).await;
    hostile_input_is_invalid(accounts).await;
    throttles_accounts_and_addresses(accounts).await;
}

/// A user no other check (and no other run) has: `t-<tag>-<12 random hex digits>`.
///
/// # Panics
/// When `tag` makes the name not a DNS label.
pub fn unique_user(tag: &str) -> DnsLabel {
    let n: u64 = rand::rng().random_range(0..1 << 48);
    match DnsLabel::parse(&format!("t-{tag}-{n:012x}")) {
        Ok(user) => user,
        Err(e) => panic!("testkit tag {tag:?} makes a bad user name: {e}"),
    }
}

/// An address of its own (in `fd00::/8`), so throttling counts of one check never reach
/// another.
pub fn unique_address() -> IpAddr {
    let n: u128 = rand::rng().random();
    IpAddr::V6(Ipv6Addr::from((0xfd_u128 << 120) | (n >> 8)))
}

/// Now, in whole microseconds (what every store keeps).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A session of `user` begun at `created_at`, ending after `ttl`, with a fresh id and secret.
pub fn session(user: &DnsLabel, created_at: DateTime<Utc>, ttl: Duration) -> SessionRecord {
    SessionRecord {
        id: Uuid::now_v7(),
        user: user.clone(),
        hash: Secret::generate("").digest(),
        created_at,
        expires_at: created_at + ttl,
    }
}

/// A token of `user` named `name`, made at `created_at`, never ending, not revoked, with every
/// scope, a fresh id and secret.
pub fn token(user: &DnsLabel, name: &str, created_at: DateTime<Utc>) -> TokenRecord {
    TokenRecord {
        id: Uuid::now_v7(),
        user: user.clone(),
        name: name.to_owned(),
        hash: Secret::generate(crate::TOKEN_PREFIX).digest(),
        scopes: TokenScopes::all(),
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

/// `result`'s value, or a panic naming `what` and the error.
#[track_caller]
fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// `result`'s error, or a panic naming `what`.
#[track_caller]
fn err<T: std::fmt::Debug, E>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}
