//! 32 writers over a pool of 8 connections, each making a password, 20 tokens and 5 sessions
//! for a user of its own, while 8 tasks revoke the tokens of a quarter of those users as they
//! appear and 8 tasks delete another quarter's users over and over.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use chrono::Duration;
use kws_accounts::{
    AccountStore, Error, PostgresAccountStore, SessionRecord, TokenRecord, testkit,
};
use kws_core::DnsLabel;

const WRITERS: usize = 32;
const TOKENS: usize = 20;
const SESSIONS: usize = 5;

/// Writer `i`'s user: `i % 4 == 1` is revoked, `i % 4 == 3` is deleted, the others are left.
fn role(i: usize) -> usize {
    i % 4
}

async fn write(
    store: Arc<PostgresAccountStore>,
    user: DnsLabel,
    done: Arc<AtomicBool>,
) -> (Vec<TokenRecord>, Vec<SessionRecord>) {
    let (mut tokens, mut sessions) = (Vec::new(), Vec::new());
    store.set_password(&user, "$phc$concurrent").await.expect("set_password");
    for k in 0..TOKENS {
        let t = testkit::token(&user, &format!("t{k}"), testkit::now());
        store.insert_token(&t).await.expect("insert_token");
        tokens.push(t);
        if k % (TOKENS / SESSIONS) == 0 {
            let s = testkit::session(&user, testkit::now(), Duration::hours(1));
            store.insert_session(&s).await.expect("insert_session");
            sessions.push(s);
        }
    }
    done.store(true, Ordering::Release);
    (tokens, sessions)
}

/// Revokes `target`'s tokens as they appear until its writer is done and all are revoked;
/// `stranger`'s attempts on them are `NotFound`.
async fn revoke(
    store: Arc<PostgresAccountStore>,
    target: DnsLabel,
    stranger: DnsLabel,
    done: Arc<AtomicBool>,
) {
    loop {
        let finished = done.load(Ordering::Acquire);
        let listed = store.tokens_of(&target).await.expect("tokens_of");
        for t in listed.iter().filter(|t| t.revoked_at.is_none()) {
            let e = store.revoke_token(&stranger, t.id, testkit::now()).await;
            assert!(matches!(e, Err(Error::NotFound { .. })), "a stranger's revoke: {e:?}");
            store.revoke_token(&target, t.id, testkit::now()).await.expect("revoke_token");
        }
        if finished && listed.len() == TOKENS {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Deletes `victim` until its writer is done, then once more.
async fn delete(store: Arc<PostgresAccountStore>, victim: DnsLabel, done: Arc<AtomicBool>) {
    loop {
        let finished = done.load(Ordering::Acquire);
        store.delete_user(&victim).await.expect("delete_user");
        if finished {
            return;
        }
        tokio::task::yield_now().await;
    }
}

async fn rows_of(store: &PostgresAccountStore, user: &DnsLabel) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM kws_accounts.passwords WHERE user_name = $1) \
              + (SELECT count(*) FROM kws_accounts.sessions WHERE user_name = $1) \
              + (SELECT count(*) FROM kws_accounts.tokens WHERE user_name = $1)",
    )
    .bind(user.as_str())
    .fetch_one(store.pool())
    .await
    .expect("count rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_revokers_and_deleters_leave_consistent_rows() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store = Arc::new(PostgresAccountStore::new(db.pool_with(8).await).await.expect("store"));
    let users: Vec<_> = (0..WRITERS).map(|i| testkit::unique_user(&format!("c{i}"))).collect();
    let flags: Vec<_> = (0..WRITERS).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut writers = Vec::new();
    let mut others = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let (s, u, f) = (store.clone(), user.clone(), flags[i].clone());
        writers.push(tokio::spawn(write(s.clone(), u.clone(), f.clone())));
        match role(i) {
            1 => others.push(tokio::spawn(revoke(s, u, users[i - 1].clone(), f))),
            3 => others.push(tokio::spawn(delete(s, u, f))),
            _ => {}
        }
    }
    let mut made = Vec::new();
    for w in writers {
        made.push(w.await.expect("a writer"));
    }
    for o in others {
        o.await.expect("a revoker or deleter");
    }

    for (i, (tokens, sessions)) in made.iter().enumerate() {
        let user = &users[i];
        if role(i) == 3 {
            assert_eq!(rows_of(&store, user).await, 0, "no row of deleted user {user} remains");
            for t in tokens {
                assert_eq!(store.token_by_hash(&t.hash).await.expect("token_by_hash"), None);
            }
            continue;
        }
        assert!(store.password(user).await.expect("password").is_some(), "{user}'s password");
        for t in tokens {
            let found = store.token_by_hash(&t.hash).await.expect("token_by_hash");
            let found = found.unwrap_or_else(|| panic!("token {} of {user} is lost", t.name));
            assert_eq!((found.id, &found.user, &found.name), (t.id, user, &t.name));
            assert_eq!(
                found.revoked_at.is_some(),
                role(i) == 1,
                "{user}: revoked exactly when targeted"
            );
        }
        assert_eq!(store.tokens_of(user).await.expect("tokens_of").len(), TOKENS);
        assert_eq!(sessions.len(), SESSIONS);
        for s in sessions {
            let found = store.session_by_hash(&s.hash).await.expect("session_by_hash");
            assert_eq!(found.as_ref(), Some(s), "{user}'s session reads back");
        }
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM kws_accounts.tokens")
        .fetch_one(store.pool())
        .await
        .expect("count tokens");
    assert_eq!(total, (WRITERS / 4 * 3 * TOKENS) as i64, "only the surviving users' tokens");
}
